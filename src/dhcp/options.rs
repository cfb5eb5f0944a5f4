//! DHCP options: codes, a borrowing iterator (with option overload), an encapsulated-option
//! iterator (43, 175), a writer that never overflows its buffer, and reply sizing.

use super::wire::{BOOTP_MIN_LEN, Error, HEADER_LEN};

/// Option codes used by ferroboot (RFC 2132 unless noted).
pub mod code {
    pub const PAD: u8 = 0;
    pub const SUBNET_MASK: u8 = 1;
    pub const ROUTER: u8 = 3;
    pub const DNS_SERVERS: u8 = 6;
    pub const HOSTNAME: u8 = 12;
    pub const DOMAIN_NAME: u8 = 15;
    pub const BROADCAST_ADDR: u8 = 28;
    pub const VENDOR_SPECIFIC: u8 = 43;
    pub const REQUESTED_IP: u8 = 50;
    pub const LEASE_TIME: u8 = 51;
    pub const OVERLOAD: u8 = 52;
    pub const MESSAGE_TYPE: u8 = 53;
    pub const SERVER_ID: u8 = 54;
    pub const PARAMETER_LIST: u8 = 55;
    pub const MESSAGE: u8 = 56;
    pub const MAX_MESSAGE_SIZE: u8 = 57;
    pub const RENEWAL_TIME: u8 = 58;
    pub const REBINDING_TIME: u8 = 59;
    pub const VENDOR_CLASS: u8 = 60;
    pub const CLIENT_ID: u8 = 61;
    pub const TFTP_SERVER: u8 = 66;
    pub const BOOTFILE: u8 = 67;
    /// RFC 3004.
    pub const USER_CLASS: u8 = 77;
    /// RFC 3046.
    pub const RELAY_AGENT: u8 = 82;
    /// RFC 4578: client system architecture.
    pub const CLIENT_ARCH: u8 = 93;
    /// RFC 4578: client network interface identifier (UNDI version).
    pub const CLIENT_NDI: u8 = 94;
    /// RFC 4578: client machine identifier (UUID/GUID).
    pub const CLIENT_UUID: u8 = 97;
    /// iPXE's encapsulated options.
    pub const IPXE: u8 = 175;
    pub const END: u8 = 255;
}

/// iPXE sub-options inside option 175 (iPXE `include/ipxe/dhcp.h`).
pub mod ipxe {
    pub const PXEEXT: u8 = 16;
    pub const ISCSI: u8 = 17;
    pub const AOE: u8 = 18;
    pub const HTTP: u8 = 19;
    pub const HTTPS: u8 = 20;
    pub const TFTP: u8 = 21;
    pub const DNS: u8 = 23;
    pub const BZIMAGE: u8 = 24;
    pub const MULTIBOOT: u8 = 25;
    pub const SRP: u8 = 27;
    pub const PXE: u8 = 33;
    pub const ELF: u8 = 34;
    pub const EFI: u8 = 36;
    pub const MENU: u8 = 39;
    pub const NFS: u8 = 41;
    /// "Do not wait for ProxyDHCP offers" (what dnsmasq's `dhcp-no-override`-less configs send).
    pub const NO_PXEDHCP: u8 = 176;
    pub const BUSID: u8 = 177;
    pub const VERSION: u8 = 235;
}

/// PXE sub-options inside option 43 for a `PXEClient` (PXE 2.1 spec, table 2-1).
pub mod pxe {
    pub const DISCOVERY_CONTROL: u8 = 6;
    pub const BOOT_SERVERS: u8 = 8;
    pub const BOOT_MENU: u8 = 9;
    pub const MENU_PROMPT: u8 = 10;
    /// Discovery control bit 3: "boot file is in this packet, download it, skip discovery".
    pub const DISCOVERY_USE_BOOTFILE: u8 = 0x08;
}

/// Which part of the message the iterator is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Region {
    Options,
    File,
    Sname,
    Done,
}

/// Iterator over `(code, data)` pairs of a DHCP message.
///
/// Skips PAD (0), stops a region at END (255), yields unknown options unchanged, and after the
/// options area continues into `file` and then `sname` when option 52 (overload, RFC 2132 §9.3)
/// asked for it. A region that ends without END ends the iteration cleanly; an option whose
/// length runs past the end of its region yields `Err(Truncated)` once and the iterator then
/// stops. An overload option that is not one byte of 1, 2 or 3 yields `Err(Malformed)`.
/// Option 52 is only honoured in the options area (RFC 2131 §4.1).
#[derive(Debug, Clone)]
pub struct Options<'a> {
    region: Region,
    data: &'a [u8],
    file: &'a [u8],
    sname: &'a [u8],
    overload: u8,
}

impl<'a> Options<'a> {
    /// Iterates `options` (the bytes after the cookie); `file` and `sname` are used only when an
    /// overload option says so. Pass empty slices to iterate a plain option buffer.
    pub fn new(options: &'a [u8], file: &'a [u8], sname: &'a [u8]) -> Options<'a> {
        Options { region: Region::Options, data: options, file, sname, overload: 0 }
    }

    /// The overload value seen so far (0 when none): bit 0 = `file`, bit 1 = `sname`.
    pub fn overload(&self) -> u8 {
        self.overload
    }

    /// Moves on to the next region once the current one ended.
    fn next_region(&mut self) {
        let (region, data) = match self.region {
            Region::Options if self.overload & 1 != 0 => (Region::File, self.file),
            Region::Options | Region::File if self.overload & 2 != 0 => (Region::Sname, self.sname),
            _ => (Region::Done, &[][..]),
        };
        self.region = region;
        self.data = data;
    }

    fn fail(&mut self, e: Error) -> Option<Result<(u8, &'a [u8]), Error>> {
        self.region = Region::Done;
        self.data = &[];
        Some(Err(e))
    }
}

impl<'a> Iterator for Options<'a> {
    type Item = Result<(u8, &'a [u8]), Error>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.region == Region::Done {
                return None;
            }
            let Some((&c, rest)) = self.data.split_first() else {
                self.next_region();
                continue;
            };
            match c {
                code::PAD => self.data = rest,
                code::END => self.next_region(),
                _ => {
                    let Some((&len, rest)) = rest.split_first() else {
                        return self.fail(Error::Truncated);
                    };
                    let Some((value, rest)) = rest.split_at_checked(usize::from(len)) else {
                        return self.fail(Error::Truncated);
                    };
                    self.data = rest;
                    if c == code::OVERLOAD && self.region == Region::Options {
                        match value {
                            [v @ 1..=3] => self.overload |= v,
                            _ => return self.fail(Error::Malformed),
                        }
                    }
                    return Some(Ok((c, value)));
                }
            }
        }
    }
}

/// Iterator over encapsulated sub-options (option 43, option 175, option 82 sub-options).
///
/// Same TLV format as options: PAD is skipped, END stops (dnsmasq closes 175 with its own END,
/// fixtures README point 11), a sub-option running past the end yields `Err(Truncated)` once.
#[derive(Debug, Clone)]
pub struct SubOptions<'a> {
    data: &'a [u8],
}

impl<'a> SubOptions<'a> {
    pub fn new(data: &'a [u8]) -> SubOptions<'a> {
        SubOptions { data }
    }

    /// The first sub-option with `code`, ignoring anything after a malformed one.
    pub fn find(data: &'a [u8], code: u8) -> Option<&'a [u8]> {
        SubOptions::new(data).map_while(Result::ok).find(|&(c, _)| c == code).map(|(_, v)| v)
    }
}

impl<'a> Iterator for SubOptions<'a> {
    type Item = Result<(u8, &'a [u8]), Error>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let (&c, rest) = self.data.split_first()?;
            match c {
                code::PAD => self.data = rest,
                code::END => {
                    self.data = &[];
                    return None;
                }
                _ => {
                    let parsed =
                        rest.split_first().and_then(|(&len, rest)| rest.split_at_checked(usize::from(len)));
                    let Some((value, rest)) = parsed else {
                        self.data = &[];
                        return Some(Err(Error::Truncated));
                    };
                    self.data = rest;
                    return Some(Ok((c, value)));
                }
            }
        }
    }
}

/// User class (option 77): iPXE sends the raw text `iPXE`, not RFC 3004 instances (fixtures
/// README point 1), so both readings are offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserClass<'a>(pub &'a [u8]);

impl<'a> UserClass<'a> {
    /// The option bytes as sent.
    pub fn raw(&self) -> &'a [u8] {
        self.0
    }

    /// RFC 3004 instances (each one length byte + data), or `None` when the bytes are not a
    /// well-formed RFC 3004 list (as with iPXE's raw `iPXE`).
    pub fn rfc3004_instances(&self) -> Option<Rfc3004Instances<'a>> {
        let mut rest = self.0;
        if rest.is_empty() {
            return None;
        }
        while let Some((&len, tail)) = rest.split_first() {
            if len == 0 {
                return None;
            }
            rest = tail.get(usize::from(len)..)?;
        }
        Some(Rfc3004Instances { data: self.0 })
    }

    /// True when the raw text or any RFC 3004 instance equals `value`.
    pub fn matches(&self, value: &[u8]) -> bool {
        self.0 == value || self.rfc3004_instances().is_some_and(|mut it| it.any(|i| i == value))
    }
}

/// The instances of a well-formed RFC 3004 user class list.
#[derive(Debug, Clone)]
pub struct Rfc3004Instances<'a> {
    data: &'a [u8],
}

impl<'a> Iterator for Rfc3004Instances<'a> {
    type Item = &'a [u8];
    fn next(&mut self) -> Option<&'a [u8]> {
        let (&len, rest) = self.data.split_first()?;
        let (v, rest) = rest.split_at_checked(usize::from(len))?;
        self.data = rest;
        Some(v)
    }
}

/// Options area length that makes a whole message [`BOOTP_MIN_LEN`] bytes.
pub const MIN_OPTIONS_LEN: usize = BOOTP_MIN_LEN - HEADER_LEN;

/// Writes options into a caller buffer. Every `push` keeps one byte free for END, so
/// [`OptionWriter::finish`] can always close the list; an option that does not fit returns
/// `Err(Full)` and leaves the buffer as it was.
#[derive(Debug)]
pub struct OptionWriter<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl<'a> OptionWriter<'a> {
    pub fn new(buf: &'a mut [u8]) -> OptionWriter<'a> {
        OptionWriter { buf, pos: 0 }
    }

    /// Bytes written so far (without the END that `finish` adds).
    pub fn len(&self) -> usize {
        self.pos
    }

    pub fn is_empty(&self) -> bool {
        self.pos == 0
    }

    /// Bytes still free for options (one byte is kept for END).
    pub fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos + 1)
    }

    /// Appends one option. `code` 0 or 255 or data over 255 bytes is `Err(Malformed)`.
    pub fn push(&mut self, code: u8, data: &[u8]) -> Result<(), Error> {
        let len = u8::try_from(data.len()).map_err(|_| Error::Malformed)?;
        if code == code::PAD || code == code::END {
            return Err(Error::Malformed);
        }
        if data.len() + 2 > self.remaining() {
            return Err(Error::Full);
        }
        let out = &mut self.buf[self.pos..self.pos + 2 + data.len()];
        out[0] = code;
        out[1] = len;
        out[2..].copy_from_slice(data);
        self.pos += 2 + data.len();
        Ok(())
    }

    pub fn push_u8(&mut self, code: u8, v: u8) -> Result<(), Error> {
        self.push(code, &[v])
    }
    pub fn push_u16(&mut self, code: u8, v: u16) -> Result<(), Error> {
        self.push(code, &v.to_be_bytes())
    }
    pub fn push_u32(&mut self, code: u8, v: u32) -> Result<(), Error> {
        self.push(code, &v.to_be_bytes())
    }
    pub fn push_ip(&mut self, code: u8, v: std::net::Ipv4Addr) -> Result<(), Error> {
        self.push(code, &v.octets())
    }
    /// A list of addresses (at most 63 fit in one option).
    pub fn push_ips(&mut self, code: u8, v: &[std::net::Ipv4Addr]) -> Result<(), Error> {
        let mut tmp = [0u8; 252];
        let n = v.len().checked_mul(4).filter(|&n| n <= tmp.len()).ok_or(Error::Malformed)?;
        for (chunk, ip) in tmp.chunks_exact_mut(4).zip(v) {
            chunk.copy_from_slice(&ip.octets());
        }
        self.push(code, &tmp[..n])
    }

    /// Writes END, then zeros until at least `min_len` bytes of this buffer are used. Returns
    /// the number of bytes used. `Err(Full)` only when `min_len` is beyond the buffer.
    pub fn finish_padded(self, min_len: usize) -> Result<usize, Error> {
        let end = (self.pos + 1).max(min_len);
        if end > self.buf.len() {
            return Err(Error::Full);
        }
        self.buf[self.pos] = code::END;
        self.buf[self.pos + 1..end].fill(0);
        Ok(end)
    }

    /// [`OptionWriter::finish_padded`] to [`MIN_OPTIONS_LEN`]: with the 240-byte header in front,
    /// the message is never under [`BOOTP_MIN_LEN`] (300) bytes.
    pub fn finish(self) -> Result<usize, Error> {
        self.finish_padded(MIN_OPTIONS_LEN)
    }

    /// Closes an encapsulated option list *without* END or padding (for building 43 / 175 data
    /// in a scratch buffer); returns the bytes used.
    pub fn finish_encapsulated(self) -> usize {
        self.pos
    }
}

/// IPv4 + UDP header bytes that a DHCP maximum message size (57) counts on top of the payload:
/// RFC 2131 §2's 576-byte minimum is 20 + 8 + 548, so the value is an IP datagram size.
pub const IP_UDP_HEADERS: usize = 28;
/// The smallest value option 57 may legally carry (RFC 2132 §9.10).
pub const MIN_MAX_MESSAGE_SIZE: u16 = 576;

/// The most UDP payload bytes a link with this MTU carries unfragmented (1472 for 1500).
pub fn payload_cap_for_mtu(mtu: usize) -> usize {
    mtu.saturating_sub(IP_UDP_HEADERS)
}

/// How large a reply may be: the client's option 57 (less IP/UDP headers; 576 when absent or
/// below the legal minimum), capped by `link_cap` (UDP payload bytes, see
/// [`payload_cap_for_mtu`]), and never under [`BOOTP_MIN_LEN`]. EDK2 asks for 65280 in its
/// REQUEST (fixtures README point 4), so the link cap matters.
pub fn reply_capacity(client_max_message_size: Option<u16>, link_cap: usize) -> usize {
    let client = client_max_message_size.unwrap_or(MIN_MAX_MESSAGE_SIZE).max(MIN_MAX_MESSAGE_SIZE);
    (usize::from(client) - IP_UDP_HEADERS).min(link_cap).max(BOOTP_MIN_LEN)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(it: Options<'_>) -> Vec<Result<(u8, Vec<u8>), Error>> {
        it.map(|r| r.map(|(c, v)| (c, v.to_vec()))).collect()
    }

    #[test]
    fn iterates_skips_pad_and_stops_at_end() {
        let data = [0, 53, 1, 1, 0, 0, 12, 2, b'h', b'i', 255, 53, 1, 2];
        let got = collect(Options::new(&data, &[], &[]));
        assert_eq!(got, vec![Ok((53, vec![1])), Ok((12, b"hi".to_vec()))]);
    }

    #[test]
    fn missing_end_is_a_clean_stop() {
        let data = [53, 1, 1];
        assert_eq!(collect(Options::new(&data, &[], &[])), vec![Ok((53, vec![1]))]);
    }

    #[test]
    fn truncated_length_and_value_error_once() {
        for data in [&[53u8][..], &[53, 2, 1][..]] {
            assert_eq!(collect(Options::new(data, &[], &[])), vec![Err(Error::Truncated)]);
        }
    }

    #[test]
    fn unknown_options_are_yielded() {
        let data = [224, 3, 1, 2, 3, 255];
        assert_eq!(collect(Options::new(&data, &[], &[])), vec![Ok((224, vec![1, 2, 3]))]);
    }

    #[test]
    fn overload_file_then_sname() {
        let opts = [52, 1, 3, 53, 1, 1, 255];
        let file = [67, 3, b'a', b'b', b'c', 255, 0, 0];
        let sname = [12, 1, b'h', 255];
        let got = collect(Options::new(&opts, &file, &sname));
        assert_eq!(
            got,
            vec![Ok((52, vec![3])), Ok((53, vec![1])), Ok((67, b"abc".to_vec())), Ok((12, b"h".to_vec()))]
        );
        // sname only: file is not read.
        let opts = [52, 1, 2, 255];
        let got = collect(Options::new(&opts, &file, &sname));
        assert_eq!(got, vec![Ok((52, vec![2])), Ok((12, b"h".to_vec()))]);
        // no overload: neither is read.
        let got = collect(Options::new(&[53, 1, 1], &file, &sname));
        assert_eq!(got, vec![Ok((53, vec![1]))]);
    }

    #[test]
    fn overload_inside_file_is_ignored_and_bad_overload_is_malformed() {
        let opts = [52, 1, 1];
        let file = [52, 1, 2, 255];
        let sname = [12, 1, b'h'];
        let got = collect(Options::new(&opts, &file, &sname));
        assert_eq!(got, vec![Ok((52, vec![1])), Ok((52, vec![2]))]);
        assert_eq!(collect(Options::new(&[52, 1, 4], &[], &[])), vec![Err(Error::Malformed)]);
        assert_eq!(collect(Options::new(&[52, 2, 1, 1], &[], &[])), vec![Err(Error::Malformed)]);
    }

    #[test]
    fn truncation_inside_overloaded_file() {
        let got = collect(Options::new(&[52, 1, 1], &[67, 9, b'a'], &[]));
        assert_eq!(got, vec![Ok((52, vec![1])), Err(Error::Truncated)]);
    }

    #[test]
    fn sub_options_accept_inner_end() {
        let data = [176, 1, 1, 255];
        let got: Vec<_> = SubOptions::new(&data).collect();
        assert_eq!(got, vec![Ok((176, &[1u8][..]))]);
        assert_eq!(SubOptions::find(&data, 176), Some(&[1u8][..]));
        assert_eq!(SubOptions::find(&data, 19), None);
        let got: Vec<_> = SubOptions::new(&[19, 5, 1]).collect();
        assert_eq!(got, vec![Err(Error::Truncated)]);
    }

    #[test]
    fn user_class_raw_and_rfc3004() {
        let raw = UserClass(b"iPXE");
        assert!(raw.rfc3004_instances().is_none());
        assert!(raw.matches(b"iPXE"));
        let rfc = UserClass(b"\x04iPXE\x03abc");
        let inst: Vec<_> = rfc.rfc3004_instances().unwrap().collect();
        assert_eq!(inst, vec![&b"iPXE"[..], &b"abc"[..]]);
        assert!(rfc.matches(b"iPXE"));
        assert!(!rfc.matches(b"ipxe"));
        assert!(UserClass(b"\x00").rfc3004_instances().is_none());
        assert!(UserClass(b"").rfc3004_instances().is_none());
    }

    #[test]
    fn writer_pads_and_reports_full() {
        let mut buf = [0xa5u8; 80];
        let mut w = OptionWriter::new(&mut buf);
        w.push_u8(code::MESSAGE_TYPE, 2).unwrap();
        w.push_ip(code::SERVER_ID, std::net::Ipv4Addr::new(10, 0, 0, 1)).unwrap();
        assert_eq!(w.len(), 9);
        assert_eq!(w.finish().unwrap(), MIN_OPTIONS_LEN);
        assert_eq!(&buf[..10], &[53, 1, 2, 54, 4, 10, 0, 0, 1, 255]);
        assert!(buf[10..MIN_OPTIONS_LEN].iter().all(|&b| b == 0));
        assert!(buf[MIN_OPTIONS_LEN..].iter().all(|&b| b == 0xa5));

        let mut small = [0xa5u8; 6];
        let mut w = OptionWriter::new(&mut small);
        assert_eq!(w.push(12, b"abcd"), Err(Error::Full));
        assert_eq!(w.push(12, b"abc"), Ok(()));
        assert_eq!(w.push(12, b""), Err(Error::Full));
        assert_eq!(w.finish_padded(0), Ok(6));
        assert_eq!(small, [12, 3, b'a', b'b', b'c', 255]);
    }

    #[test]
    fn writer_rejects_bad_codes_and_long_data() {
        let mut buf = [0u8; 600];
        let mut w = OptionWriter::new(&mut buf);
        assert_eq!(w.push(0, b""), Err(Error::Malformed));
        assert_eq!(w.push(255, b""), Err(Error::Malformed));
        assert_eq!(w.push(12, &[0; 256]), Err(Error::Malformed));
        assert_eq!(w.push_ips(6, &[std::net::Ipv4Addr::LOCALHOST; 64]), Err(Error::Malformed));
        assert!(w.is_empty());
    }

    #[test]
    fn reply_capacity_clamps() {
        assert_eq!(reply_capacity(Some(65280), payload_cap_for_mtu(1500)), 1472);
        assert_eq!(reply_capacity(Some(1472), 1472), 1444);
        assert_eq!(reply_capacity(Some(576), 1472), 548);
        assert_eq!(reply_capacity(None, 1472), 548);
        assert_eq!(reply_capacity(Some(100), 1472), 548);
        assert_eq!(reply_capacity(Some(65280), 200), BOOTP_MIN_LEN);
    }
}
