//! The query string iPXE sends to `/ipxe/node` (see `docs/api.md`, "iPXE script URLs"):
//! `mac=52-54-00-12-34-56&uuid=...&buildarch=x86_64&platform=efi&hostname=node01[&profile=worker]`.
//!
//! Values are percent-decoded into fixed-size buffers (no allocation) and checked against what
//! each may contain; a value that does not fit is treated as absent, never copied into a script,
//! so nothing a client sends can add a line or a word to the script it gets back.

use heapless::String as HString;

/// What iPXE told us about itself. Empty strings mean "not sent" (or not valid).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeQuery {
    pub mac: Option<[u8; 6]>,
    /// Lowercase, 8-4-4-4-12.
    pub uuid: HString<36>,
    /// `${buildarch}`: `i386`, `x86_64`, `arm32`, `arm64`, ...
    pub arch: HString<16>,
    /// `${platform}`: `pcbios`, `efi`.
    pub platform: HString<16>,
    /// `${hostname}` from DHCP.
    pub hostname: HString<253>,
    /// The profile chosen in the unknown-machine menu.
    pub profile: HString<64>,
    /// A `mac` was sent but is not a MAC address.
    pub bad_mac: bool,
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Percent-decodes `raw` (`+` is a space) into `out`; `None` if it does not fit or is malformed.
fn decode<'o>(raw: &[u8], out: &'o mut [u8]) -> Option<&'o [u8]> {
    let mut n = 0;
    let mut i = 0;
    while i < raw.len() {
        let b = match raw[i] {
            b'%' => {
                let v = hex(*raw.get(i + 1)?)? << 4 | hex(*raw.get(i + 2)?)?;
                i += 3;
                v
            }
            b'+' => {
                i += 1;
                b' '
            }
            b => {
                i += 1;
                b
            }
        };
        *out.get_mut(n)? = b;
        n += 1;
    }
    Some(&out[..n])
}

/// Copies `v` into a bounded string when every byte passes `ok`.
fn bounded<const N: usize>(v: &[u8], ok: impl Fn(u8) -> bool) -> HString<N> {
    let mut s = HString::new();
    if v.iter().all(|&b| ok(b)) {
        if let Ok(t) = std::str::from_utf8(v) {
            let _ = s.push_str(t);
            if s.len() != t.len() {
                s.clear();
            }
        }
    }
    s
}

/// Parses `52:54:00:12:34:56`, `52-54-00-12-34-56` or `525400123456`.
pub fn parse_mac(v: &[u8]) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let digits: &mut [u8; 12] = &mut [0; 12];
    let mut n = 0;
    for (i, &b) in v.iter().enumerate() {
        if (b == b':' || b == b'-') && v.len() == 17 && i % 3 == 2 {
            continue;
        }
        *digits.get_mut(n)? = hex(b)?;
        n += 1;
    }
    if n != 12 || !(v.len() == 12 || v.len() == 17) {
        return None;
    }
    for (k, m) in mac.iter_mut().enumerate() {
        *m = digits[2 * k] << 4 | digits[2 * k + 1];
    }
    Some(mac)
}

/// `.` and `..` are words too, but not ones a path may be built from.
fn no_dots<const N: usize>(mut s: HString<N>) -> HString<N> {
    if s.bytes().all(|b| b == b'.') {
        s.clear();
    }
    s
}

fn word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"._-".contains(&b)
}

impl NodeQuery {
    /// Parses a query string (without the `?`). Unknown keys are ignored; the last value of a
    /// repeated key wins.
    pub fn parse(query: &[u8]) -> NodeQuery {
        let mut q = NodeQuery::default();
        let mut buf = [0u8; 256];
        for pair in query.split(|&b| b == b'&') {
            let (k, v) = match pair.iter().position(|&b| b == b'=') {
                Some(i) => (&pair[..i], &pair[i + 1..]),
                None => (pair, &b""[..]),
            };
            let Some(v) = decode(v, &mut buf) else {
                if k == b"mac" {
                    q.bad_mac = true;
                }
                continue;
            };
            match k {
                b"mac" => {
                    q.mac = parse_mac(v);
                    q.bad_mac = q.mac.is_none() && !v.is_empty();
                }
                b"uuid" => {
                    q.uuid = bounded(v, |b| b.is_ascii_hexdigit() || b == b'-');
                    q.uuid.make_ascii_lowercase_inplace();
                    if !crate::config::is_uuid(&q.uuid) {
                        q.uuid.clear();
                    }
                }
                b"buildarch" | b"arch" => q.arch = no_dots(bounded(v, word)),
                b"platform" => q.platform = no_dots(bounded(v, word)),
                b"hostname" => {
                    q.hostname = bounded(v, |b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
                    if !q.hostname.is_empty() && !crate::config::is_hostname(&q.hostname) {
                        q.hostname.clear();
                    }
                }
                b"profile" => q.profile = bounded(v, word),
                _ => {}
            }
        }
        q
    }

    /// True for UEFI iPXE (`${platform}` = `efi`), whose Linux loader needs `initrd=<name>`.
    pub fn is_efi(&self) -> bool {
        self.platform.as_str() == "efi"
    }
}

trait AsciiLower {
    fn make_ascii_lowercase_inplace(&mut self);
}

impl<const N: usize> AsciiLower for HString<N> {
    fn make_ascii_lowercase_inplace(&mut self) {
        let lower: HString<N> = self.chars().map(|c| c.to_ascii_lowercase()).collect();
        *self = lower;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_ipxe_sends() {
        let q = NodeQuery::parse(
            b"mac=52-54-00-12-34-56&uuid=4C4C4544-0000-1000-8000-000000000001&buildarch=x86_64&platform=efi&hostname=node01",
        );
        assert_eq!(q.mac, Some([0x52, 0x54, 0, 0x12, 0x34, 0x56]));
        assert_eq!(q.uuid.as_str(), "4c4c4544-0000-1000-8000-000000000001");
        assert_eq!((q.arch.as_str(), q.platform.as_str(), q.hostname.as_str()), ("x86_64", "efi", "node01"));
        assert!(q.is_efi() && !q.bad_mac);
    }

    #[test]
    fn mac_forms_and_percent_encoding() {
        let m = Some([0x52, 0x54, 0, 0xab, 0xcd, 0xef]);
        assert_eq!(NodeQuery::parse(b"mac=52:54:00:ab:cd:ef").mac, m);
        assert_eq!(NodeQuery::parse(b"mac=52%3A54%3A00%3AAB%3ACD%3AEF").mac, m);
        assert_eq!(NodeQuery::parse(b"mac=525400abcdef").mac, m);
        for bad in [
            &b"mac=52:54:00:ab:cd"[..],
            b"mac=52:54:00:ab:cd:ef:01",
            b"mac=zz",
            b"mac=%zz",
            b"mac=5254:00ab:cdef",
        ] {
            let q = NodeQuery::parse(bad);
            assert_eq!(q.mac, None, "{}", String::from_utf8_lossy(bad));
            assert!(q.bad_mac);
        }
        assert!(!NodeQuery::parse(b"mac=").bad_mac, "an empty MAC is just absent");
    }

    #[test]
    fn hostile_values_are_dropped() {
        let q =
            NodeQuery::parse(b"hostname=a%0Aexit&platform=efi%20x&uuid=1234&buildarch=x86_64%0a&profile=a+b");
        assert_eq!(q.hostname.as_str(), "");
        assert_eq!(q.platform.as_str(), "");
        assert_eq!(q.uuid.as_str(), "");
        assert_eq!(q.arch.as_str(), "");
        assert_eq!(q.profile.as_str(), "");
        let long = format!("hostname={}", "a".repeat(300));
        assert_eq!(NodeQuery::parse(long.as_bytes()).hostname.as_str(), "");
        assert_eq!(NodeQuery::parse(b"&&=&x&platform=pcbios&").platform.as_str(), "pcbios");
        assert_eq!(NodeQuery::parse(b"buildarch=..&platform=.").arch.as_str(), "", "no path steering");
        assert_eq!(NodeQuery::parse(b"platform=.").platform.as_str(), "");
    }
}
