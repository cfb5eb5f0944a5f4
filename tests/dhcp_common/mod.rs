//! Helpers shared by the DHCP integration tests: namespaces joined by veth, starting the real
//! binary, a raw DHCP client on a socket inside a namespace.
#![allow(dead_code)]

use crate::common::{Netns, Server, run};
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Two namespaces joined by a veth pair: `<tag>s` (server, `10.<n>.0.1/24` on `<tag>0`) and
/// `<tag>c` (client, `<tag>1`, no address).
pub struct Lab {
    pub srv: Netns,
    pub cli: Netns,
    pub n: u8,
    pub tag: String,
}

impl Lab {
    pub fn new(tag: &str, n: u8) -> Lab {
        let srv = Netns::new(&format!("{tag}s"));
        let cli = Netns::new(&format!("{tag}c"));
        let (a, b) = (format!("{tag}0"), format!("{tag}1"));
        let _ = Command::new("ip").args(["link", "del", &a]).stderr(Stdio::null()).status();
        let (ok, out) = run(Command::new("ip").args(["link", "add", &a, "type", "veth", "peer", "name", &b]));
        assert!(ok, "veth: {out}");
        for (dev, ns) in [(&a, &srv), (&b, &cli)] {
            let (ok, out) = run(Command::new("ip").args(["link", "set", dev, "netns", &ns.name]));
            assert!(ok, "{out}");
            ns.exec_ok(&["ip", "link", "set", dev, "up"]);
        }
        srv.exec_ok(&["ip", "addr", "add", &format!("10.{n}.0.1/24"), "dev", &a]);
        Lab { srv, cli, n, tag: tag.to_string() }
    }
    pub fn srv_if(&self) -> String {
        format!("{}0", self.tag)
    }
    pub fn cli_if(&self) -> String {
        format!("{}1", self.tag)
    }
    pub fn ip(&self, host: u8) -> Ipv4Addr {
        Ipv4Addr::new(10, self.n, 0, host)
    }
    /// A second client link into the server namespace: `<tag>b0` there with `10.<n>.0.1/24`,
    /// `<tag>b1` in the returned namespace `<tag>bc`.
    pub fn second_link(&self, n: u8) -> Netns {
        let cli = Netns::new(&format!("{}bc", self.tag));
        let (a, b) = (format!("{}b0", self.tag), format!("{}b1", self.tag));
        let (ok, out) = run(Command::new("ip").args(["link", "add", &a, "type", "veth", "peer", "name", &b]));
        assert!(ok, "veth: {out}");
        for (dev, ns) in [(&a, &self.srv), (&b, &cli)] {
            let (ok, out) = run(Command::new("ip").args(["link", "set", dev, "netns", &ns.name]));
            assert!(ok, "{out}");
            ns.exec_ok(&["ip", "link", "set", dev, "up"]);
        }
        self.srv.exec_ok(&["ip", "addr", "add", &format!("10.{n}.0.1/24"), "dev", &a]);
        cli
    }
}

/// Starts `ferroboot serve --config <cfg>` in `ns` and waits for the DHCP service.
pub fn start(cfg: &std::path::Path, ns: &str) -> Server {
    let bin = env!("CARGO_BIN_EXE_ferroboot");
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns, bin, "serve", "--config"]).arg(cfg).env("RUST_LOG", "debug");
    let mut s = Server::spawn(cmd);
    s.wait_for("dhcp: serving", Duration::from_secs(10));
    s
}

/// Runs `f` on a thread inside network namespace `ns` (sockets it opens live there).
pub fn in_netns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/var/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).unwrap();
        // SAFETY: setns on a valid namespace fd; affects only this thread.
        let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
        f()
    })
    .join()
    .unwrap()
}

/// A DHCP client message.
pub fn message(mt: u8, mac: [u8; 6], xid: u32, ciaddr: Ipv4Addr, opts: &[(u8, &[u8])]) -> Vec<u8> {
    let mut b = vec![0u8; 240];
    b[0] = 1;
    b[1] = 1;
    b[2] = 6;
    b[4..8].copy_from_slice(&xid.to_be_bytes());
    b[10] = 0x80;
    b[12..16].copy_from_slice(&ciaddr.octets());
    b[28..34].copy_from_slice(&mac);
    b[236..240].copy_from_slice(&[99, 130, 83, 99]);
    b.extend_from_slice(&[53, 1, mt]);
    for (c, v) in opts {
        b.push(*c);
        b.push(v.len() as u8);
        b.extend_from_slice(v);
    }
    b.push(255);
    b.resize(b.len().max(300), 0);
    b
}

/// (code → value) of a reply, plus yiaddr, siaddr and the `file` field.
pub struct Parsed {
    pub yiaddr: Ipv4Addr,
    pub siaddr: Ipv4Addr,
    pub src: Ipv4Addr,
    pub file: String,
    pub opts: Vec<(u8, Vec<u8>)>,
}

impl Parsed {
    pub fn opt(&self, c: u8) -> Option<&[u8]> {
        self.opts.iter().find(|(k, _)| *k == c).map(|(_, v)| &v[..])
    }
}

pub fn parse(buf: &[u8], src: Ipv4Addr) -> Option<Parsed> {
    let p = ferroboot::dhcp::wire::Packet::new_checked(buf).ok()?;
    let opts = p.options().filter_map(Result::ok).map(|(c, v)| (c, v.to_vec())).collect();
    let file = String::from_utf8_lossy(ferroboot::dhcp::wire::c_str(p.file())).into_owned();
    Some(Parsed { yiaddr: p.yiaddr(), siaddr: p.siaddr(), src, file, opts })
}

/// Sends `msg` and collects the replies to `xid` arriving within `wait` (stops early once
/// `want` replies are in).
pub fn exchange_n(
    sock: &UdpSocket,
    msg: &[u8],
    to: SocketAddrV4,
    xid: u32,
    wait: Duration,
    want: usize,
) -> Vec<Parsed> {
    sock.send_to(msg, to).unwrap();
    let deadline = Instant::now() + wait;
    let mut out = Vec::new();
    let mut buf = [0u8; 1500];
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        sock.set_read_timeout(Some(left.max(Duration::from_millis(1)))).unwrap();
        let Ok((n, from)) = sock.recv_from(&mut buf) else { break };
        if n >= 8 && buf[0] == 2 && buf[4..8] == xid.to_be_bytes() {
            let std::net::SocketAddr::V4(from) = from else { continue };
            out.extend(parse(&buf[..n], *from.ip()));
            if out.len() >= want {
                break;
            }
        }
    }
    out
}

pub fn client_socket(dev: &str, bind: SocketAddrV4) -> UdpSocket {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
    s.set_reuse_address(true).unwrap();
    s.set_broadcast(true).unwrap();
    s.bind_device(Some(dev.as_bytes())).unwrap();
    s.bind(&bind.into()).unwrap();
    s.into()
}

/// [`exchange_n`] waiting for the first reply only.
pub fn exchange(sock: &UdpSocket, msg: &[u8], to: SocketAddrV4, xid: u32, wait: Duration) -> Vec<Parsed> {
    exchange_n(sock, msg, to, xid, wait, 1)
}
