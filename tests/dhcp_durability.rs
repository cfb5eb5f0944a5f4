//! Durability: the real binary under DORA load from many clients is killed with SIGKILL; every
//! lease a client saw ACKed is in the journal afterwards, no address is held by two MACs, and
//! the restarted server confirms those leases (INIT-REBOOT) and never hands them to others.

mod common;
mod dhcp_common;

use common::{Scratch, require_root};
use dhcp_common::{Lab, client_socket, exchange, in_netns, message, start};
use ferroboot::dhcp::leases::{RecordKind, decode_all, fold};
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

fn mac_of(i: u32) -> [u8; 6] {
    let b = i.to_be_bytes();
    [0x02, 0xd0, b[0], b[1], b[2], b[3]]
}

/// Pipelined DORA load: keeps up to `window` clients in flight until `stop`; returns every
/// (MAC → address) the clients saw ACKed.
fn load(dev: String, stop: Arc<AtomicBool>, window: usize) -> HashMap<[u8; 6], Ipv4Addr> {
    let sock = client_socket(&dev, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 68));
    sock.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
    let bcast = SocketAddrV4::new(Ipv4Addr::BROADCAST, 67);
    let mut acked = HashMap::new();
    let mut inflight: HashMap<u32, Instant> = HashMap::new();
    let mut next = 1u32;
    let mut buf = [0u8; 1500];
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        inflight.retain(|_, t| now.duration_since(*t) < Duration::from_secs(2));
        while inflight.len() < window {
            let xid = next;
            next += 1;
            sock.send_to(&message(1, mac_of(xid), xid, Ipv4Addr::UNSPECIFIED, &[]), bcast).unwrap();
            inflight.insert(xid, now);
        }
        let Ok((n, _)) = sock.recv_from(&mut buf) else { continue };
        let Ok(p) = ferroboot::dhcp::wire::Packet::new_checked(&buf[..n]) else { continue };
        let xid = p.xid();
        if p.op() != 2 || !inflight.contains_key(&xid) {
            continue;
        }
        let mt = p.options().filter_map(Result::ok).find(|(c, _)| *c == 53).map(|(_, v)| v[0]);
        let sid = p.options().filter_map(Result::ok).find(|(c, _)| *c == 54).map(|(_, v)| v.to_vec());
        match (mt, sid) {
            (Some(2), Some(sid)) => {
                let req = message(
                    3,
                    mac_of(xid),
                    xid,
                    Ipv4Addr::UNSPECIFIED,
                    &[(50, &p.yiaddr().octets()), (54, &sid)],
                );
                sock.send_to(&req, bcast).unwrap();
            }
            (Some(5), _) => {
                acked.insert(mac_of(xid), p.yiaddr());
                inflight.remove(&xid);
            }
            _ => {
                inflight.remove(&xid);
            }
        }
    }
    acked
}

#[test]
fn kill_9_under_load_loses_no_acknowledged_lease() {
    if !require_root() {
        return;
    }
    let lab = Lab::new("fbdk", 88);
    let scratch = Scratch::new();
    let cfg = scratch.path("ferroboot.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"root = "{}"
state_dir = "{}"
interface = "{}"
[dhcp]
mode = "server"
subnet = "10.88.0.0"
netmask = "255.255.0.0"
range = {{ start = "10.88.1.0", end = "10.88.250.255" }}
lease_time = 3600
[tftp]
enabled = false
[http]
enabled = false
"#,
            scratch.root().display(),
            scratch.state().display(),
            lab.srv_if()
        ),
    )
    .unwrap();
    // The address needs a /16 so the pool is on-link.
    lab.srv.exec_ok(&["ip", "addr", "flush", "dev", &lab.srv_if()]);
    lab.srv.exec_ok(&["ip", "addr", "add", "10.88.0.1/16", "dev", &lab.srv_if()]);
    let mut srv = start(&cfg, &lab.srv.name);
    let stop = Arc::new(AtomicBool::new(false));
    let (dev, ns, stop2) = (lab.cli_if(), lab.cli.name.clone(), Arc::clone(&stop));
    let loader = std::thread::spawn(move || in_netns(&ns, move || load(dev, stop2, 32)));
    std::thread::sleep(Duration::from_millis(1500));
    srv.child.kill().unwrap(); // SIGKILL, mid-load
    srv.child.wait().unwrap();
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::Relaxed);
    let acked = loader.join().unwrap();
    assert!(acked.len() > 50, "load too small to prove anything: {} ACKs", acked.len());
    eprintln!("{} leases ACKed before SIGKILL", acked.len());

    let data = std::fs::read(scratch.state().join("dhcp-leases.journal")).unwrap();
    let (records, _good) = decode_all(&data);
    let mut owner: HashMap<Ipv4Addr, [u8; 6]> = HashMap::new();
    for r in records.iter().filter(|r| r.kind == RecordKind::Lease) {
        let prev = owner.insert(r.ip, r.mac);
        assert!(prev.is_none_or(|m| m == r.mac), "{} held by two MACs: {prev:?} and {:?}", r.ip, r.mac);
    }
    let live: HashMap<[u8; 6], Ipv4Addr> = fold(&records).iter().map(|r| (r.mac, r.ip)).collect();
    for (mac, ip) in &acked {
        assert_eq!(live.get(mac), Some(ip), "ACKed lease {mac:02x?} → {ip} missing from the journal");
    }

    // Restart: every ACKed lease is restored, confirmed on INIT-REBOOT, and new clients get others.
    let mut srv = start(&cfg, &lab.srv.name);
    let line = srv.wait_for("lease(s) restored", Duration::from_secs(5));
    assert!(line.contains(&format!("{} lease(s) restored", live.len())), "{line}");
    let sample: Vec<([u8; 6], Ipv4Addr)> = acked.iter().take(20).map(|(m, i)| (*m, *i)).collect();
    let (dev, ns) = (lab.cli_if(), lab.cli.name.clone());
    let taken: Vec<Ipv4Addr> = acked.values().copied().collect();
    let (confirmed, fresh) = in_netns(&ns, move || {
        let sock = client_socket(&dev, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 68));
        let bcast = SocketAddrV4::new(Ipv4Addr::BROADCAST, 67);
        let mut confirmed = 0;
        for (i, (mac, ip)) in sample.iter().enumerate() {
            let xid = 0x7000_0000 + i as u32;
            let r = exchange(
                &sock,
                &message(3, *mac, xid, Ipv4Addr::UNSPECIFIED, &[(50, &ip.octets())]),
                bcast,
                xid,
                Duration::from_millis(500),
            );
            if r.iter().any(|p| p.opt(53) == Some(&[5]) && p.yiaddr == *ip) {
                confirmed += 1;
            }
        }
        let mut fresh = Vec::new();
        for i in 0..20u32 {
            let xid = 0x7100_0000 + i;
            let r = exchange(
                &sock,
                &message(1, mac_of(xid), xid, Ipv4Addr::UNSPECIFIED, &[]),
                bcast,
                xid,
                Duration::from_millis(500),
            );
            fresh.extend(r.iter().map(|p| p.yiaddr));
        }
        (confirmed, fresh)
    });
    assert_eq!(confirmed, acked.len().min(20), "INIT-REBOOT confirmations after restart");
    assert_eq!(fresh.len(), 20);
    for ip in fresh {
        assert!(!taken.contains(&ip), "{ip} offered to a new client though it is leased");
    }
    srv.stop();
}
