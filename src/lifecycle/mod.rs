//! The node lifecycle: where each machine is on its way from its first DHCP packet to an installed
//! system that boots from its own disk.
//!
//! ```text
//! discovered → dhcp → ipxe → kernel → initrd → booted → installing → installed → local
//!                                                              ↘ failed      (reinstall → discovered)
//! ```
//!
//! This module is the contract between the services that *observe* a boot (DHCP, TFTP, HTTP, the
//! iPXE script route) and the store that *keeps* it (persisted crash-safely, served by the JSON API
//! documented in `docs/api.md`). Everything runs on the one event loop, so observers take `&self`
//! and the store uses interior mutability.

pub mod api;
pub mod client;
pub mod machine;
pub mod record;
pub mod store;

pub use machine::{Step, Verdict, next};
pub use store::{LifecycleService, Store};

use std::net::Ipv4Addr;

/// A node's place in the lifecycle. The wire/JSON name is [`State::as_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum State {
    /// Listed in the inventory (or first seen), nothing served yet.
    Discovered,
    /// Got a DHCP/ProxyDHCP answer with boot information.
    Dhcp,
    /// Fetched its iPXE script.
    Ipxe,
    /// Fetched its kernel.
    Kernel,
    /// Fetched its initrd(s).
    Initrd,
    /// The installer called back: it is up and reachable.
    Booted,
    /// An install is running (nixos-anywhere).
    Installing,
    /// The install finished; the next boot falls through to the local disk.
    Installed,
    /// Its script answered `exit`: it booted from its disk.
    Local,
    /// Something failed; the event's detail says what.
    Failed,
}

impl State {
    pub const ALL: [State; 10] = [
        State::Discovered,
        State::Dhcp,
        State::Ipxe,
        State::Kernel,
        State::Initrd,
        State::Booted,
        State::Installing,
        State::Installed,
        State::Local,
        State::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            State::Discovered => "discovered",
            State::Dhcp => "dhcp",
            State::Ipxe => "ipxe",
            State::Kernel => "kernel",
            State::Initrd => "initrd",
            State::Booted => "booted",
            State::Installing => "installing",
            State::Installed => "installed",
            State::Local => "local",
            State::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<State> {
        State::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// True when the node's next network boot should fall through to its disk (`exit`).
    pub fn boots_local(self) -> bool {
        matches!(self, State::Installed | State::Local)
    }
}

/// What the iPXE script route and the file services tell the lifecycle store, and ask of it.
/// All methods are called on the event loop; implementations must not block.
pub trait NodeState {
    /// True when this MAC's next boot should be `exit` (fall through to the local disk).
    fn boots_local(&self, mac: [u8; 6]) -> bool;
    /// A script was served to `mac` from `peer`; `local` says it was the `exit` script.
    fn script_served(&self, mac: [u8; 6], peer: Ipv4Addr, local: bool);
}

/// What the file and address services tell the lifecycle store as they serve. Every method has a
/// no-op default. Implementations must not allocate when an observation repeats one already
/// made (the DHCP, TFTP and HTTP steady states are allocation-free); a transition may allocate.
pub trait Observer {
    /// DHCP/ProxyDHCP handed `mac` boot information: `what` kind of answer (`"iPXE binary over
    /// TFTP"`...), the client's architecture, the file or URL; `ip` is the address it has or got.
    fn dhcp_boot(
        &self,
        _mac: [u8; 6],
        _what: &'static str,
        _arch: Option<u16>,
        _file: &str,
        _ip: Option<Ipv4Addr>,
    ) {
    }
    /// DHCP saw `mac` at `ip` (an ACK's yiaddr, a request's ciaddr or source address).
    fn ip_seen(&self, _mac: [u8; 6], _ip: Ipv4Addr) {}
    /// True when requests from `peer` are attributed to a node (lets a service skip the work of
    /// describing a transfer for everyone else).
    fn follows(&self, _peer: Ipv4Addr) -> bool {
        false
    }
    /// TFTP sent `bytes` of `file` (relative to the root) to `peer`; `complete` when the whole
    /// file went out.
    fn tftp_served(&self, _peer: Ipv4Addr, _file: &[u8], _bytes: u64, _complete: bool) {}
    /// HTTP sent `bytes` of the static `file` (relative to the root, percent-decoded) to `peer`;
    /// `mac` when the URL named the machine (`?mac=`); `complete` when the response finished.
    fn http_served(
        &self,
        _peer: Ipv4Addr,
        _mac: Option<[u8; 6]>,
        _file: &[u8],
        _bytes: u64,
        _complete: bool,
    ) {
    }
}

/// The stand-in when no lifecycle is kept (`ferroboot boot`, unit tests): every machine installs,
/// nothing is recorded.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoLifecycle;

impl NodeState for NoLifecycle {
    fn boots_local(&self, _mac: [u8; 6]) -> bool {
        false
    }
    fn script_served(&self, _mac: [u8; 6], _peer: Ipv4Addr, _local: bool) {}
}

impl Observer for NoLifecycle {}

/// Parses a MAC as the API accepts it in a path: six hex pairs separated by `:` or `-` (any
/// case), a separator also accepted percent-encoded (`%3A`, what some clients send for `:`).
pub fn parse_mac_path(s: &[u8]) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut i = 0;
    for (n, b) in mac.iter_mut().enumerate() {
        if n > 0 {
            match s.get(i..) {
                Some([b':' | b'-', ..]) => i += 1,
                Some([b'%', h, l, ..]) if (h, l.to_ascii_uppercase()) == (&b'3', b'A') => i += 3,
                _ => return None,
            }
        }
        let hi = hex(*s.get(i)?)?;
        let lo = hex(*s.get(i + 1)?)?;
        *b = hi << 4 | lo;
        i += 2;
    }
    (i == s.len()).then_some(mac)
}

/// A MAC in a query value: what [`parse_mac_path`] takes, or 12 bare hex digits
/// (`525400123456`).
pub fn parse_mac_query(s: &[u8]) -> Option<[u8; 6]> {
    if s.len() == 12 {
        let mut mac = [0u8; 6];
        for (i, b) in mac.iter_mut().enumerate() {
            *b = hex(s[2 * i])? << 4 | hex(s[2 * i + 1])?;
        }
        return Some(mac);
    }
    parse_mac_path(s)
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// `52:54:00:12:34:56`: the canonical MAC spelling in URLs, JSON and logs.
pub fn format_mac(mac: [u8; 6]) -> String {
    let [a, b, c, d, e, f] = mac;
    format!("{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{f:02x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_names_round_trip() {
        for s in State::ALL {
            assert_eq!(State::parse(s.as_str()), Some(s));
        }
        assert_eq!(State::parse("bogus"), None);
        assert!(State::Installed.boots_local() && State::Local.boots_local());
        assert!(!State::Booted.boots_local() && !State::Failed.boots_local());
        assert_eq!(format_mac([0x52, 0x54, 0, 0x12, 0x34, 0xab]), "52:54:00:12:34:ab");
    }

    #[test]
    fn mac_paths() {
        let m = Some([0x52, 0x54, 0, 0x12, 0x34, 0xab]);
        for ok in
            ["52:54:00:12:34:ab", "52-54-00-12-34-AB", "52%3a54%3A00%3a12%3a34%3aab", "52:54-00:12-34:aB"]
        {
            assert_eq!(parse_mac_path(ok.as_bytes()), m, "{ok}");
        }
        for bad in [
            "",
            "52:54:00:12:34",
            "52:54:00:12:34:ab:",
            "52:54:00:12:34:abc",
            "5254.0012.34ab",
            "525400123 4ab",
            "52::54:00:12:34",
            "g2:54:00:12:34:ab",
            "52%3b54:00:12:34:ab",
            "52%3",
            "52:54:00:12:34:a",
        ] {
            assert_eq!(parse_mac_path(bad.as_bytes()), None, "{bad}");
        }
        assert_eq!(parse_mac_query(b"5254001234aB"), m);
        assert_eq!(parse_mac_query(b"52-54-00-12-34-ab"), m);
        assert_eq!(parse_mac_query(b"5254001234a"), None);
        assert_eq!(parse_mac_query(b"5254001234ag"), None);
    }
}
