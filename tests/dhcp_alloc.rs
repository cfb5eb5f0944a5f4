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
fn dora(sock: &UdpSocket, i: u32, buf: &mut [u8; 400], rbuf: &mut [u8; 1500]) -> Option<Ipv4Addr> {
    let b = i.to_be_bytes();
    let mac = [2, 0xa1, b[0], b[1], b[2], b[3]];
    let to = SocketAddrV4::new(Ipv4Addr::BROADCAST, 67);
    let n = build(buf, mac, i, None);
    sock.send_to(&buf[..n], to).ok()?;
    let offer = reply(sock, i, rbuf)?;
    let n = build(buf, mac, i, Some((offer, Ipv4Addr::new(10, 89, 0, 1))));
    sock.send_to(&buf[..n], to).ok()?;
    reply(sock, i, rbuf)
}

#[test]
fn steady_state_dora_allocates_nothing() {
    if !require_root() {
        return;
    }
    let lab = Lab::new("fbda", 89);
    let scratch = Scratch::new();
    let (srv_ns, srv_if, state) = (lab.srv.name.clone(), lab.srv_if(), scratch.state());
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = Arc::clone(&stop);
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let server = std::thread::spawn(move || {
        setns(&srv_ns);
        let dhcp = DhcpConfig {
            mode: DhcpMode::Server,
            subnet: Some(Ipv4Addr::new(10, 89, 0, 0)),
            netmask: Some(Ipv4Addr::new(255, 255, 0, 0)),
            range: Some((Ipv4Addr::new(10, 89, 1, 0), Ipv4Addr::new(10, 89, 200, 0))),
            router: Some(Ipv4Addr::new(10, 89, 0, 1)),
            ..DhcpConfig::default()
        };
        let policy = PolicyConfig::new(Mode::Server, Ipv4Addr::new(10, 89, 0, 1), 8080);
        let settings = DhcpSettings {
            server: ServerSettings::new(Mode::Server, dhcp, policy),
            state_dir: state,
            device: Some(srv_if),
            port: 67,
            proxy_port: 4011,
            raw_unicast: true,
        };
        let status = Rc::new(Status::default());
        let svc = DhcpService::new(settings, Rc::clone(&status)).unwrap();
        let mut ev = EventLoop::new().unwrap();
        ev.add(Box::new(svc)).unwrap();
        ready_tx.send(()).unwrap();
        ev.run(false, || stop2.load(Ordering::Relaxed)).unwrap();
        status.dhcp_counters.completed.get()
    });
    ready_rx.recv().unwrap();
    lab.srv.exec_ok(&["ip", "addr", "flush", "dev", &lab.srv_if()]);
    lab.srv.exec_ok(&["ip", "addr", "add", "10.89.0.1/16", "dev", &lab.srv_if()]);
    let (cli_ns, cli_if) = (lab.cli.name.clone(), lab.cli_if());
    let (allocs, done) = std::thread::spawn(move || {
        setns(&cli_ns);
        let sock = client_socket(&cli_if, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 68));
        sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut buf = [0u8; 400];
        let mut rbuf = [0u8; 1500];
        for i in 1..=300 {
            dora(&sock, i, &mut buf, &mut rbuf).expect("warm-up DORA");
        }
        let before = ALLOCS.load(Ordering::SeqCst);
        let mut done = 0;
        for i in 1000..3000 {
            if dora(&sock, i, &mut buf, &mut rbuf).is_some() {
                done += 1;
            }
        }
        (ALLOCS.load(Ordering::SeqCst) - before, done)
    })
    .join()
    .unwrap();
    stop.store(true, Ordering::Relaxed);
    let acks = server.join().unwrap();
    assert_eq!(done, 2000, "every DORA completed");
    assert!(acks >= 2300, "{acks} ACKs counted");
    assert_eq!(allocs, 0, "{allocs} allocations in 2000 steady-state DORAs");
}
