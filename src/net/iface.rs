//! Interface discovery: names, MACs, IPv4 addresses and MTU.

use std::net::Ipv4Addr;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    pub name: String,
    pub index: u32,
    pub mac: Option<[u8; 6]>,
    /// (address, prefix length)
    pub ipv4: Vec<(Ipv4Addr, u8)>,
    pub mtu: u32,
    pub up: bool,
    pub loopback: bool,
}

/// Every interface the kernel reports.
pub fn interfaces() -> Vec<Interface> {
    pnet_datalink::interfaces()
        .into_iter()
        .map(|i| Interface {
            mtu: mtu_of(&i.name).unwrap_or(1500),
            mac: i.mac.map(|m| m.octets()),
            ipv4: i
                .ips
                .iter()
                .filter_map(|n| match n {
                    ipnetwork::IpNetwork::V4(v4) => Some((v4.ip(), v4.prefix())),
                    _ => None,
                })
                .collect(),
            up: i.is_up(),
            loopback: i.is_loopback(),
            index: i.index,
            name: i.name,
        })
        .collect()
}

pub fn by_name(name: &str) -> Option<Interface> {
    interfaces().into_iter().find(|i| i.name == name)
}

/// The interface that holds `ip`, if any.
pub fn by_address(ip: Ipv4Addr) -> Option<Interface> {
    interfaces().into_iter().find(|i| i.ipv4.iter().any(|(a, _)| *a == ip))
}

fn mtu_of(name: &str) -> Option<u32> {
    std::fs::read_to_string(format!("/sys/class/net/{name}/mtu")).ok()?.trim().parse().ok()
}

/// The MTU to size TFTP blocks for when serving on `listen` (or `interface` when given): the
/// named interface's MTU, the MTU of the interface holding `listen`, else the smallest MTU of the
/// non-loopback interfaces that are up (a wildcard listener may answer on any), else 1500.
pub fn serving_mtu(interface: Option<&str>, listen: Ipv4Addr) -> u32 {
    if let Some(i) = interface.and_then(by_name) {
        return i.mtu;
    }
    if !listen.is_unspecified() {
        if let Some(i) = by_address(listen) {
            return i.mtu;
        }
    }
    interfaces()
        .iter()
        .filter(|i| i.up && !i.loopback && !i.ipv4.is_empty())
        .map(|i| i.mtu)
        .min()
        .unwrap_or(1500)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_discovered_with_its_address_and_mtu() {
        let lo = interfaces().into_iter().find(|i| i.loopback).expect("a loopback interface");
        assert!(lo.ipv4.iter().any(|(a, _)| *a == Ipv4Addr::LOCALHOST), "{lo:?}");
        assert!(lo.mtu >= 1500, "{lo:?}");
        assert_eq!(by_address(Ipv4Addr::LOCALHOST).map(|i| i.name), Some(lo.name.clone()));
        assert_eq!(serving_mtu(Some(&lo.name), Ipv4Addr::UNSPECIFIED), lo.mtu);
    }
}
