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
}
