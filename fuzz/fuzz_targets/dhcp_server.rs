//! The sans-IO DHCP server fed arbitrary packet sequences, in server and proxy mode. The input
//! is a series of `[ctrl, len_hi, len_lo, bytes...]` records: `ctrl` picks the mode, the arrival
//! port, a relay-ish arrival and how far the clock moves. After every message: no panic, every
//! reply is a well-formed BOOTREPLY inside the buffer, offers and ACKs carry a pool address (or
//! none from the proxy), and no address is ever bound to two clients.
#![no_main]

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

use ferroboot::config::{DhcpConfig, DhcpMode, PoolConfig};
use ferroboot::dhcp::pxe::{Mode, PolicyConfig};
use ferroboot::dhcp::server::{Arrival, Reservation, Server, ServerSettings};
use ferroboot::dhcp::wire::{BOOTREPLY, Packet};
use libfuzzer_sys::fuzz_target;

const SID: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);

fn server(mode: Mode, now: Instant) -> Server {
    let dhcp = DhcpConfig {
        mode: if mode == Mode::Server { DhcpMode::Server } else { DhcpMode::Proxy },
        subnet: Some(Ipv4Addr::new(10, 0, 0, 0)),
        netmask: Some(Ipv4Addr::new(255, 255, 255, 0)),
        range: Some((Ipv4Addr::new(10, 0, 0, 10), Ipv4Addr::new(10, 0, 0, 17))),
        router: Some(SID),
        domain_name: Some("fuzz".into()),
        // A relayed subnet too, so pool selection (giaddr, ciaddr, link) is fuzzed.
        pools: vec![PoolConfig {
            subnet: Ipv4Addr::new(10, 0, 1, 0),
            netmask: Ipv4Addr::new(255, 255, 255, 0),
            range: (Ipv4Addr::new(10, 0, 1, 10), Ipv4Addr::new(10, 0, 1, 13)),
            router: Some(Ipv4Addr::new(10, 0, 1, 1)),
            broadcast: None,
            domain_name_servers: None,
        }],
        ..DhcpConfig::default()
    };
    let mut s = ServerSettings::new(mode, dhcp, PolicyConfig::new(mode, SID, 8080));
    s.reservations.push(Reservation {
        mac: [2, 0, 0, 0, 0, 1],
        ip: Some(Ipv4Addr::new(10, 0, 0, 12)),
        hostname: Some("r".into()),
    });
    Server::new(s, now, 1_700_000_000).expect("valid settings")
}

thread_local! {
    static OUT: RefCell<Vec<u8>> = RefCell::new(vec![0u8; 1500]);
}

fuzz_target!(|data: &[u8]| {
    let mut now = Instant::now();
    let mut servers = [server(Mode::Server, now), server(Mode::Proxy, now)];
    OUT.with(|out| {
        let out = &mut out.borrow_mut()[..];
        let mut rest = data;
        while let [ctrl, hi, lo, tail @ ..] = rest {
            let len = (usize::from(*hi) << 8 | usize::from(*lo)).min(tail.len());
            let (msg, next) = tail.split_at(len);
            rest = next;
            now += Duration::from_secs(u64::from(ctrl >> 4) * 40);
            let mode = usize::from(ctrl & 1);
            let arrival = Arrival {
                ifindex: 2,
                local_addr: SID,
                subnet: if ctrl & 4 != 0 { None } else { Some((SID, 24)) },
                port: if ctrl & 2 != 0 { 4011 } else { 67 },
                src: SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 99), 68),
            };
            let s = &mut servers[mode];
            let o = s.handle_packet(now, msg, &arrival, out);
            if let Some(r) = o.reply {
                assert!(r.len <= out.len());
                let p = Packet::new_checked(&out[..r.len]).expect("reply holds a header");
                assert_eq!(p.op(), BOOTREPLY);
                assert_eq!(p.check_cookie(), Ok(()));
                assert!(p.options().all(|o| o.is_ok()), "our own options parse");
                let y = u32::from(r.yiaddr);
                if mode == 1 {
                    assert_eq!(y, 0, "a ProxyDHCP never offers an address");
                } else {
                    assert!(
                        y == 0
                            || (0x0a00_000a..=0x0a00_0011).contains(&y)
                            || (0x0a00_010a..=0x0a00_010d).contains(&y),
                        "{}",
                        r.yiaddr
                    );
                }
            }
            let mut by_ip = HashMap::new();
            for l in s.leases() {
                assert!(by_ip.insert(l.ip, l.key).is_none(), "{} bound twice", l.ip);
            }
            let mut by_key = HashMap::new();
            for l in s.leases().filter(|l| !l.declined) {
                assert!(by_key.insert(l.key, l.ip).is_none(), "{:?} holds two addresses", l.key);
            }
        }
    });
});
