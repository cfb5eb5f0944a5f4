//! A counting global allocator proves the DHCP service's steady state allocates nothing per
//! packet: the real service on the real event loop in one namespace, a client with fixed buffers
//! in another, thousands of DISCOVER→OFFER and REQUEST→ACK exchanges (PXE clients, so the boot
//! decision and its history table are in the path, and every ACK journalled and fsynced).

mod counting_alloc;
use counting_alloc::ALLOCS;

mod common;
mod dhcp_common;

use common::{Scratch, require_root};
use dhcp_common::{Lab, client_socket};
use ferroboot::config::{DhcpConfig, DhcpMode};
use ferroboot::dhcp::driver::{DhcpService, DhcpSettings};
use ferroboot::dhcp::pxe::{Mode, PolicyConfig};
use ferroboot::dhcp::server::ServerSettings;
use ferroboot::lifecycle::machine::BootFiles;
use ferroboot::lifecycle::{LifecycleService, Store};
use ferroboot::net::EventLoop;
use ferroboot::status::Status;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

fn setns(ns: &str) {
    let f = std::fs::File::open(format!("/var/run/netns/{ns}")).unwrap();
    // SAFETY: setns on a valid namespace fd; affects only the calling thread.
    assert_eq!(unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) }, 0);
}

/// Writes a broadcast-flagged PXE DISCOVER (`ip` None) or SELECTING REQUEST into `buf`.
fn build(buf: &mut [u8; 400], mac: [u8; 6], xid: u32, req: Option<(Ipv4Addr, Ipv4Addr)>) -> usize {
    buf.fill(0);
    buf[..3].copy_from_slice(&[1, 1, 6]);
    buf[4..8].copy_from_slice(&xid.to_be_bytes());
    buf[10] = 0x80;
    buf[28..34].copy_from_slice(&mac);
    buf[236..240].copy_from_slice(&[99, 130, 83, 99]);
    let mut n = 240;
    let mut put = |c: u8, v: &[u8]| {
        buf[n] = c;
        buf[n + 1] = v.len() as u8;
        buf[n + 2..n + 2 + v.len()].copy_from_slice(v);
        n += 2 + v.len();
    };
    put(53, &[if req.is_some() { 3 } else { 1 }]);
    put(60, b"PXEClient:Arch:00007:UNDI:003016");
    put(93, &[0, 7]);
    put(55, &[1, 3, 6, 43, 60, 66, 67]);
    if let Some((ip, sid)) = req {
        put(50, &ip.octets());
        put(54, &sid.octets());
    }
    buf[n] = 255;
    (n + 1).max(300)
}

/// Waits for the reply to `xid`; returns its yiaddr.
fn reply(sock: &UdpSocket, xid: u32, rbuf: &mut [u8; 1500]) -> Option<Ipv4Addr> {
    loop {
        let (len, _) = sock.recv_from(rbuf).ok()?;
        if len >= 240 && rbuf[4..8] == xid.to_be_bytes() {
            return Some(Ipv4Addr::new(rbuf[16], rbuf[17], rbuf[18], rbuf[19]));
        }
    }
}

/// One DORA; returns the ACKed address.
fn dora(
    sock: &UdpSocket,
    i: u32,
    mac: [u8; 6],
    server: Ipv4Addr,
    buf: &mut [u8; 400],
    rbuf: &mut [u8; 1500],
) -> Option<Ipv4Addr> {
    let to = SocketAddrV4::new(Ipv4Addr::BROADCAST, 67);
    let n = build(buf, mac, i, None);
    sock.send_to(&buf[..n], to).ok()?;
    let offer = reply(sock, i, rbuf)?;
    let n = build(buf, mac, i, Some((offer, server)));
    sock.send_to(&buf[..n], to).ok()?;
    reply(sock, i, rbuf)
}

/// The allocator counts every thread: the tests must not run at once.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Runs the service in `tag`'s lab (optionally with the node lifecycle observing it), warms up
/// with `warm` DORAs, then counts the allocations of `n` more; DORA `i` uses `mac_of(i)`.
fn count_doras(
    tag: &str,
    net: u8,
    observe: bool,
    warm: u32,
    n: u32,
    mac_of: fn(u32) -> [u8; 6],
) -> (u64, u32, u64) {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let lab = Lab::new(tag, net);
    let scratch = Scratch::new();
    let (srv_ns, srv_if, state) = (lab.srv.name.clone(), lab.srv_if(), scratch.state());
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = Arc::clone(&stop);
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let server = std::thread::spawn(move || {
        setns(&srv_ns);
        let dhcp = DhcpConfig {
            mode: DhcpMode::Server,
            subnet: Some(Ipv4Addr::new(10, net, 0, 0)),
            netmask: Some(Ipv4Addr::new(255, 255, 0, 0)),
            range: Some((Ipv4Addr::new(10, net, 1, 0), Ipv4Addr::new(10, net, 200, 0))),
            router: Some(Ipv4Addr::new(10, net, 0, 1)),
            ..DhcpConfig::default()
        };
        let policy = PolicyConfig::new(Mode::Server, Ipv4Addr::new(10, net, 0, 1), 8080);
        let settings = DhcpSettings {
            server: ServerSettings::new(Mode::Server, dhcp, policy),
            state_dir: state,
            device: Some(srv_if),
            port: 67,
            proxy_port: 4011,
            raw_unicast: true,
        };
        let status = Rc::new(Status::default());
        let mut svc = DhcpService::new(settings, Rc::clone(&status)).unwrap();
        let mut ev = EventLoop::new().unwrap();
        let store = observe.then(|| {
            let s = Rc::new(Store::in_memory(&[], BootFiles::default(), ferroboot::lifecycle::store::now_ms));
            svc.set_observer(s.clone());
            s
        });
        ev.add(Box::new(svc)).unwrap();
        if let Some(s) = &store {
            ev.add(Box::new(LifecycleService(s.clone()))).unwrap();
        }
        ready_tx.send(()).unwrap();
        ev.run(false, || stop2.load(Ordering::Relaxed)).unwrap();
        let nodes = store.map_or(0, |s| s.with_nodes(|n| n.len()) as u64);
        (status.dhcp_counters.completed.get(), nodes)
    });
    ready_rx.recv().unwrap();
    lab.srv.exec_ok(&["ip", "addr", "flush", "dev", &lab.srv_if()]);
    lab.srv.exec_ok(&["ip", "addr", "add", &format!("10.{net}.0.1/16"), "dev", &lab.srv_if()]);
    let (cli_ns, cli_if) = (lab.cli.name.clone(), lab.cli_if());
    let (allocs, done) = std::thread::spawn(move || {
        setns(&cli_ns);
        let sock = client_socket(&cli_if, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 68));
        sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut buf = [0u8; 400];
        let mut rbuf = [0u8; 1500];
        for i in 1..=warm {
            dora(&sock, i, mac_of(i), Ipv4Addr::new(10, net, 0, 1), &mut buf, &mut rbuf)
                .expect("warm-up DORA");
        }
        let before = ALLOCS.load(Ordering::SeqCst);
        let mut done = 0;
        for i in 1000..1000 + n {
            if dora(&sock, i, mac_of(i), Ipv4Addr::new(10, net, 0, 1), &mut buf, &mut rbuf).is_some() {
                done += 1;
            }
        }
        (ALLOCS.load(Ordering::SeqCst) - before, done)
    })
    .join()
    .unwrap();
    stop.store(true, Ordering::Relaxed);
    let (acks, nodes) = server.join().unwrap();
    assert!(acks >= u64::from(warm + n) - 100, "{acks} ACKs counted");
    (allocs, done, nodes)
}

#[test]
fn steady_state_dora_allocates_nothing() {
    if !require_root() {
        return;
    }
    let (allocs, done, _) = count_doras("fbda", 89, false, 300, 2000, |i| {
        let b = i.to_be_bytes();
        [2, 0xa1, b[0], b[1], b[2], b[3]]
    });
    assert_eq!(done, 2000, "every DORA completed");
    assert_eq!(allocs, 0, "{allocs} allocations in 2000 steady-state DORAs");
}

/// With the node lifecycle observing: 50 PXE machines boot again and again (the same boot
/// decision, the same address); after each was seen once, their DORAs allocate nothing.
/// Repeated leases make the lease journal compact itself once it holds 1,024 records for 50 live
/// leases (that rewrite allocates, once per ~1,000 ACKs, not per packet): the warm-up runs past
/// the first compaction (at the 1,024th ACK) and the 800 counted DORAs end before the next.
#[test]
fn steady_state_dora_of_followed_nodes_allocates_nothing() {
    if !require_root() {
        return;
    }
    let (allocs, done, nodes) =
        count_doras("lifea", 96, true, 1100, 800, |i| [2, 0x1f, 0, 0, 0, (i % 50) as u8]);
    assert_eq!(done, 800, "every DORA completed");
    assert_eq!(nodes, 50, "each machine is one node");
    assert_eq!(allocs, 0, "{allocs} allocations in 800 steady-state DORAs of 50 followed machines");
}
