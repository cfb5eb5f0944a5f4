//! One simulated machine's boot, on its own thread: PXE DHCP → TFTP of the boot file → iPXE DHCP
//! → HTTP (the script, then the kernel/initrd it names or the `--http-file`s). The protocol
//! logic is in the sans-IO clients; this is the thin blocking driver around them.

use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, ToSocketAddrs, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::dhcp::{self, Identity, Lease, Profile};
use super::http::{self, Connection, Url};
use super::progress::Counters;
use super::stats::Span;
use super::tftp;

/// The phases of a boot, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Phase {
    Dhcp,
    Tftp,
    IpxeDhcp,
    Http,
}

impl Phase {
    pub const ALL: [Phase; 4] = [Phase::Dhcp, Phase::Tftp, Phase::IpxeDhcp, Phase::Http];
    pub fn name(self) -> &'static str {
        match self {
            Phase::Dhcp => "dhcp",
            Phase::Tftp => "tftp",
            Phase::IpxeDhcp => "ipxe-dhcp",
            Phase::Http => "http",
        }
    }
}

/// Everything the nodes share, fixed for the run.
#[derive(Debug, Clone)]
pub struct Plan {
    pub server: Ipv4Addr,
    pub mode: dhcp::Mode,
    pub dhcp: bool,
    pub dhcp_timing: dhcp::Timing,
    pub arch: u16,
    pub tftp_file: Option<String>,
    pub tftp_port: u16,
    pub blksize: Option<u16>,
    pub windowsize: Option<u16>,
    pub tftp_timeout: Duration,
    pub tftp_retries: u32,
    pub http_files: Vec<String>,
    pub http_port: u16,
    pub script: bool,
    pub http_timeout: Duration,
    pub verify: bool,
    pub interface: Option<String>,
    pub stagger: Duration,
}

/// One downloaded file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileResult {
    pub name: String,
    pub bytes: u64,
    pub sha256: Option<String>,
}

/// How one node did; times are offsets from the common start.
#[derive(Debug, Clone, Default)]
pub struct NodeResult {
    pub index: usize,
    pub mac: [u8; 6],
    pub ip: Option<Ipv4Addr>,
    pub phases: Vec<(Phase, Span, u64)>,
    pub files: Vec<FileResult>,
    pub dhcp_retransmits: u32,
    pub tftp_retransmits: u32,
    pub http_connects: u32,
    pub error: Option<(Phase, String)>,
    /// Start to the last byte of the last file.
    pub booted: Option<Duration>,
}

/// Replies on the shared port-68 socket, handed to the node waiting for their xid.
pub struct Demux {
    pub sock: UdpSocket,
    waiting: Mutex<HashMap<u32, mpsc::Sender<Vec<u8>>>>,
    /// Replies no node waited for (another client's, or late duplicates).
    pub unmatched: std::sync::atomic::AtomicU64,
}

impl Demux {
    /// Binds 0.0.0.0:68 with SO_BROADCAST (and SO_BINDTODEVICE when `interface` is given).
    pub fn bind(interface: Option<&str>) -> io::Result<Arc<Demux>> {
        use socket2::{Domain, Protocol, Socket, Type};
        let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
        s.set_reuse_address(true)?;
        s.set_broadcast(true)?;
        s.set_recv_buffer_size(4 << 20)?;
        if let Some(dev) = interface {
            s.bind_device(Some(dev.as_bytes()))
                .map_err(|e| io::Error::new(e.kind(), format!("SO_BINDTODEVICE {dev}: {e}")))?;
        }
        let addr: SocketAddr = "0.0.0.0:68".parse().expect("literal");
        s.bind(&addr.into()).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot bind UDP 0.0.0.0:68 (needs root or CAP_NET_BIND_SERVICE): {e}"),
            )
        })?;
        let sock: UdpSocket = s.into();
        sock.set_read_timeout(Some(Duration::from_millis(100)))?;
        Ok(Arc::new(Demux { sock, waiting: Mutex::new(HashMap::new()), unmatched: Default::default() }))
    }

    /// Reads replies until `stop` is set.
    pub fn spawn(self: &Arc<Self>, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
        let d = Arc::clone(self);
        std::thread::spawn(move || {
            let mut buf = [0u8; 1500];
            while !stop.load(Relaxed) {
                let Ok((n, _)) = d.sock.recv_from(&mut buf) else { continue };
                let p = crate::dhcp::wire::Packet::new_unchecked(&buf[..n]);
                if p.check_len().is_err() {
                    continue;
                }
                let tx = d.waiting.lock().expect("demux lock").get(&p.xid()).cloned();
                match tx {
                    Some(tx) if tx.send(buf[..n].to_vec()).is_ok() => {}
                    _ => {
                        d.unmatched.fetch_add(1, Relaxed);
                    }
                }
            }
        })
    }

    fn register(&self, xid: u32) -> mpsc::Receiver<Vec<u8>> {
        let (tx, rx) = mpsc::channel();
        self.waiting.lock().expect("demux lock").insert(xid, tx);
        rx
    }

    fn unregister(&self, xid: u32) {
        self.waiting.lock().expect("demux lock").remove(&xid);
    }
}

/// A per-node pseudo-random xid.
fn xid(index: usize, stage: u32) -> u32 {
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let mut x = (t.as_nanos() as u64) ^ ((index as u64) << 20) ^ u64::from(stage) ^ 0x9e37_79b9_7f4a_7c15;
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x as u32
}

/// The MAC of node `index`: locally administered `02:fb:..`.
pub fn mac_of(index: usize) -> [u8; 6] {
    let i = index as u32 + 1;
    [0x02, 0xfb, (i >> 24) as u8, (i >> 16) as u8, (i >> 8) as u8, i as u8]
}

pub fn mac_string(m: &[u8; 6]) -> String {
    m.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

fn run_dhcp(
    demux: &Demux,
    plan: &Plan,
    id: Identity,
    profile: Profile,
    xid: u32,
) -> (Result<Lease, String>, u32) {
    let rx = demux.register(xid);
    let now = Instant::now();
    let mut c = dhcp::Client::new(now, id, profile, plan.mode, plan.dhcp_timing, xid);
    let mut buf = [0u8; 1500];
    let dst = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::BROADCAST, 67));
    let result = loop {
        let now = Instant::now();
        while let Some(n) = c.poll_transmit(now, &mut buf) {
            // A failed send is like a lost datagram: the timeout resends it.
            let _ = demux.sock.send_to(&buf[..n], dst);
        }
        match c.outcome() {
            dhcp::Outcome::Bound(l) => break Ok(l.clone()),
            dhcp::Outcome::Failed(m) => break Err(m.clone()),
            dhcp::Outcome::Running => {}
        }
        let wait = c.poll_timeout().map_or(Duration::ZERO, |d| d.saturating_duration_since(Instant::now()));
        match rx.recv_timeout(wait) {
            Ok(pkt) => c.handle(Instant::now(), &pkt),
            Err(mpsc::RecvTimeoutError::Timeout) => c.handle_timeout(Instant::now()),
            Err(mpsc::RecvTimeoutError::Disconnected) => break Err("DHCP receiver stopped".into()),
        }
    };
    demux.unregister(xid);
    (result, c.retransmits())
}

/// Bytes counter plus an optional SHA-256.
struct Sink<'a> {
    bytes: u64,
    hash: Option<Sha256>,
    counters: &'a Counters,
}

impl<'a> Sink<'a> {
    fn new(verify: bool, counters: &'a Counters) -> Sink<'a> {
        Sink { bytes: 0, hash: verify.then(Sha256::new), counters }
    }
    fn take(&mut self, b: &[u8]) {
        self.bytes += b.len() as u64;
        self.counters.bytes.fetch_add(b.len() as u64, Relaxed);
        if let Some(h) = &mut self.hash {
            h.update(b);
        }
    }
    fn finish(self, name: String) -> FileResult {
        let sha256 = self.hash.map(|h| h.finalize().iter().map(|b| format!("{b:02x}")).collect());
        FileResult { name, bytes: self.bytes, sha256 }
    }
}

fn run_tftp(
    plan: &Plan,
    server: Ipv4Addr,
    file: &str,
    counters: &Counters,
) -> (Result<FileResult, String>, u32) {
    let sock = match tftp_socket(plan.interface.as_deref()) {
        Ok(s) => s,
        Err(e) => return (Err(format!("TFTP socket: {e}")), 0),
    };
    let req = tftp::Request {
        file: file.to_string(),
        blksize: plan.blksize,
        windowsize: plan.windowsize,
        tsize: true,
        timeout: plan.tftp_timeout,
        retries: plan.tftp_retries,
    };
    let mut c = tftp::Client::new(Instant::now(), req);
    let mut out = vec![0u8; 1024];
    let mut inb = vec![0u8; crate::tftp::wire::MAX_PACKET + 4];
    let mut sink = Sink::new(plan.verify, counters);
    loop {
        while let Some((n, dest)) = c.poll_transmit(&mut out) {
            let port = match dest {
                tftp::Dest::Server => plan.tftp_port,
                tftp::Dest::Tid(p) | tftp::Dest::Stray(p) => p,
            };
            let _ = sock.send_to(&out[..n], SocketAddrV4::new(server, port));
        }
        match c.outcome() {
            tftp::Outcome::Done => return (Ok(sink.finish(file.to_string())), c.retransmits()),
            tftp::Outcome::Failed(m) => return (Err(m.clone()), c.retransmits()),
            tftp::Outcome::Running => {}
        }
        let wait = c.poll_timeout().map_or(Duration::ZERO, |d| d.saturating_duration_since(Instant::now()));
        if wait.is_zero() {
            c.handle_timeout(Instant::now());
            continue;
        }
        let _ = sock.set_read_timeout(Some(wait));
        match sock.recv_from(&mut inb) {
            Ok((n, SocketAddr::V4(from))) if *from.ip() == server => {
                c.handle(Instant::now(), from.port(), &inb[..n], &mut |b| sink.take(b))
            }
            Ok(_) => {} // not from the server: ignore
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                c.handle_timeout(Instant::now())
            }
            Err(e) => return (Err(format!("TFTP receive: {e}")), c.retransmits()),
        }
    }
}

fn tftp_socket(interface: Option<&str>) -> io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    // Room for a whole window of 64 KiB blocks.
    s.set_recv_buffer_size(1 << 20)?;
    if let Some(dev) = interface {
        s.bind_device(Some(dev.as_bytes()))?;
    }
    let addr: SocketAddr = "0.0.0.0:0".parse().expect("literal");
    s.bind(&addr.into())?;
    Ok(s.into())
}

fn resolve(u: &Url) -> Result<SocketAddr, String> {
    (u.host.as_str(), u.port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {}: {e}", u.host))?
        .find(SocketAddr::is_ipv4)
        .ok_or_else(|| format!("no IPv4 address for {}", u.host))
}

fn http_get(
    c: &mut Connection,
    u: &Url,
    verify: bool,
    counters: &Counters,
    keep: Option<&mut Vec<u8>>,
) -> Result<FileResult, String> {
    let addr = resolve(u)?;
    let mut sink = Sink::new(verify, counters);
    let mut keep = keep;
    let f = c
        .get(addr, u, &mut |b| {
            sink.take(b);
            if let Some(k) = keep.as_deref_mut() {
                if k.len() < (1 << 20) {
                    k.extend_from_slice(b);
                }
            }
        })
        .map_err(|e| format!("GET {u}: {e}"))?;
    if f.status != 200 {
        return Err(format!("GET {u}: HTTP {}", f.status));
    }
    let path = u.path.split('?').next().unwrap_or("");
    Ok(sink.finish(path.rsplit('/').next().unwrap_or("").to_string()))
}

fn since(t0: Instant) -> Duration {
    Instant::now().saturating_duration_since(t0)
}

/// Boots node `index`; `t0` is the common start.
pub fn boot(
    index: usize,
    plan: &Plan,
    demux: Option<&Demux>,
    counters: &Counters,
    t0: Instant,
) -> NodeResult {
    std::thread::sleep(plan.stagger.saturating_mul(index as u32));
    let start = since(t0);
    let mac = mac_of(index);
    let mut r = NodeResult { index, mac, ..NodeResult::default() };
    let mut uuid = [0u8; 16];
    uuid[..6].copy_from_slice(&mac);
    let id = Identity { mac, arch: plan.arch, uuid };
    let fail = |r: &mut NodeResult, p: Phase, m: String| {
        r.error = Some((p, m));
        counters.failed.fetch_add(1, Relaxed);
    };

    // 1. The PXE ROM's DHCP.
    let mut next_server = plan.server;
    let mut boot_file = plan.tftp_file.clone();
    if let (true, Some(d)) = (plan.dhcp, demux) {
        let s = since(t0);
        let (res, retx) = run_dhcp(d, plan, id, Profile::Pxe, xid(index, 1));
        r.dhcp_retransmits += retx;
        counters.retries.fetch_add(u64::from(retx), Relaxed);
        match res {
            Ok(l) => {
                r.phases.push((Phase::Dhcp, Span { start: s, end: since(t0) }, 0));
                r.ip = Some(l.ip);
                if !l.next_server.is_unspecified() {
                    next_server = l.next_server;
                }
                if boot_file.is_none() {
                    boot_file = l.boot_file;
                }
                counters.dhcp_done.fetch_add(1, Relaxed);
            }
            Err(m) => {
                fail(&mut r, Phase::Dhcp, m);
                return r;
            }
        }
    }

    // 2. TFTP of the boot file (the iPXE binary).
    let Some(file) = boot_file else {
        fail(&mut r, Phase::Dhcp, "no boot file in the DHCP answer (and no --tftp-file)".into());
        return r;
    };
    let s = since(t0);
    let (res, retx) = run_tftp(plan, next_server, &file, counters);
    r.tftp_retransmits = retx;
    counters.retries.fetch_add(u64::from(retx), Relaxed);
    match res {
        Ok(f) => {
            r.phases.push((Phase::Tftp, Span { start: s, end: since(t0) }, f.bytes));
            r.files.push(f);
            counters.tftp_done.fetch_add(1, Relaxed);
        }
        Err(m) => {
            fail(&mut r, Phase::Tftp, format!("{file} from {next_server}: {m}"));
            return r;
        }
    }

    // 3. iPXE's DHCP: the script URL.
    let mut script_url = None;
    if let (true, Some(d)) = (plan.dhcp, demux) {
        let s = since(t0);
        let (res, retx) = run_dhcp(d, plan, id, Profile::Ipxe, xid(index, 2));
        r.dhcp_retransmits += retx;
        counters.retries.fetch_add(u64::from(retx), Relaxed);
        match res {
            Ok(l) => {
                r.phases.push((Phase::IpxeDhcp, Span { start: s, end: since(t0) }, 0));
                script_url = l.boot_file.filter(|f| f.starts_with("http://"));
                if plan.script && script_url.is_none() && plan.http_files.is_empty() {
                    fail(&mut r, Phase::IpxeDhcp, "the iPXE DHCP answer has no http:// boot URL".into());
                    return r;
                }
            }
            Err(m) => {
                fail(&mut r, Phase::IpxeDhcp, m);
                return r;
            }
        }
    }

    // 4. HTTP: the script, then what it names (or the --http-file list).
    let base = Url { host: plan.server.to_string(), port: plan.http_port, path: "/".into() };
    let mut conn = Connection::new(plan.http_timeout, 256 * 1024);
    let s = since(t0);
    let mut http_bytes = 0;
    let mut urls = Vec::new();
    if let (true, Some(u)) = (plan.script, &script_url) {
        // The script, and the scripts it chains to (at most 4), then what the last one names.
        let vars =
            http::ipxe_vars(&mac, r.ip.unwrap_or(Ipv4Addr::UNSPECIFIED), next_server, plan.arch, &uuid);
        let mut next = Url::parse(u);
        for depth in 0.. {
            let result = next.clone().and_then(|url| {
                let mut text = Vec::new();
                let f = http_get(&mut conn, &url, plan.verify, counters, Some(&mut text))?;
                Ok((url, f, text))
            });
            let (url, f, text) = match result {
                Ok(x) => x,
                Err(m) => {
                    fail(&mut r, Phase::Http, m);
                    return r;
                }
            };
            http_bytes += f.bytes;
            r.files.push(f);
            if !plan.http_files.is_empty() {
                break;
            }
            match http::script_plan(&String::from_utf8_lossy(&text), &url, &vars) {
                Ok(p) if p.chain.is_some() && depth < 4 => next = Ok(p.chain.expect("checked")),
                Ok(p) if p.chain.is_some() => {
                    fail(&mut r, Phase::Http, format!("script {url}: more than 4 chained scripts"));
                    return r;
                }
                Ok(p) => {
                    urls = p.fetches;
                    break;
                }
                Err(m) => {
                    fail(&mut r, Phase::Http, format!("script {url}: {m}"));
                    return r;
                }
            }
        }
    }
    for f in &plan.http_files {
        let target = if f.starts_with("http://") || f.starts_with('/') { f.clone() } else { format!("/{f}") };
        match base.join(&target) {
            Ok(u) => urls.push(u),
            Err(m) => {
                fail(&mut r, Phase::Http, m);
                return r;
            }
        }
    }
    for u in &urls {
        match http_get(&mut conn, u, plan.verify, counters, None) {
            Ok(f) => {
                http_bytes += f.bytes;
                r.files.push(f);
            }
            Err(m) => {
                r.http_connects = conn.connects;
                fail(&mut r, Phase::Http, m);
                return r;
            }
        }
    }
    r.http_connects = conn.connects;
    if !urls.is_empty() || script_url.is_some() && plan.script {
        r.phases.push((Phase::Http, Span { start: s, end: since(t0) }, http_bytes));
    }
    r.booted = Some(since(t0).saturating_sub(start));
    counters.booted.fetch_add(1, Relaxed);
    r
}
