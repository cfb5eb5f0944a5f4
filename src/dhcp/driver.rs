//! The DHCP service on the event loop: UDP 67 (and 4011 in proxy mode), the lease journal, and
//! reply delivery per RFC 2131 §4.1. All protocol decisions are in [`super::server`].
//!
//! One wake-up: every datagram waiting on a socket is handled into a preallocated reply slot.
//! Replies that change nothing durable (OFFER, NAK, INFORM, ProxyDHCP) leave at once; the lease
//! changes of ACKs are appended to the journal, then one `fdatasync` makes them durable and only
//! then are those ACKs sent (so an ACK never leaves before its lease is on
//! disk, and a burst of ACKs costs one fsync). If the sync fails, the ACKs are dropped (the
//! clients retry) and the failure is counted.
//!
//! Replies to a client without an address and without the broadcast bit go as a link-layer
//! unicast to yiaddr at chaddr through an `AF_PACKET`/`SOCK_DGRAM` socket (the kernel adds the
//! Ethernet header for the given MAC; we build the IPv4 and UDP headers). Without
//! `CAP_NET_RAW` the service falls back to broadcast and says so once.
//!
//! Steady state allocates nothing: fixed receive and reply buffers, a fixed pending queue, and
//! a server whose tables are sized at start-up.

use super::leases::Journal;
use super::pxe::{IpxeChainload, Mode, PolicyConfig};
use super::server::{
    Arrival, CLIENT_PORT, Delivery, Event, PXE_PORT, Reservation, SERVER_PORT, Server, ServerSettings,
};
use super::wire::MessageType;
use crate::config::{Config, DhcpMode, IpxeChainloadMode};
use crate::lifecycle::{NoLifecycle, Observer};
use crate::net::{Service, iface, sock};
use crate::status::{Counters, ServiceState, Status};
use mio::net::UdpSocket;
use mio::{Interest, Registry, Token};
use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// IPv4 + UDP header room kept in front of every reply (for the link-layer unicast path).
const HEADROOM: usize = 28;
/// Largest reply payload.
const MAX_REPLY: usize = 1472;
/// ACKs buffered in one wake-up (waiting for the journal sync) before a forced flush.
const QUEUE: usize = 64;

/// Everything the service needs to run.
#[derive(Debug, Clone)]
pub struct DhcpSettings {
    pub server: ServerSettings,
    /// Where `dhcp-leases.journal` lives (server mode).
    pub state_dir: PathBuf,
    /// Bind to this interface (SO_BINDTODEVICE).
    pub device: Option<String>,
    /// Ports (67 and 4011 normally; tests may move them).
    pub port: u16,
    pub proxy_port: u16,
    /// Send link-layer unicasts (needs CAP_NET_RAW); `false`: broadcast instead.
    pub raw_unicast: bool,
}

/// Builds the settings from the configuration: the pool and options from `[dhcp]`, the
/// reservations from `[nodes]`, the server address from `server_address`, else an address of
/// `interface` (preferring one in the pool's subnet), else an address of any interface in the
/// subnet; the PXE policy for the HTTP port.
pub fn settings_from_config(c: &Config) -> Result<DhcpSettings, String> {
    let mode = match c.dhcp.mode {
        DhcpMode::Server => Mode::Server,
        DhcpMode::Proxy => Mode::Proxy,
        DhcpMode::Off => return Err("DHCP is off".into()),
    };
    if mode == Mode::Proxy && !c.dhcp.pools.is_empty() {
        log::warn!(
            "dhcp: [[dhcp.pools]] is ignored in proxy mode (the site's DHCP server hands out addresses)"
        );
    }
    let in_pool = |a: Ipv4Addr| match (c.dhcp.subnet, c.dhcp.netmask) {
        (Some(n), Some(m)) => u32::from(a) & u32::from(m) == u32::from(n) & u32::from(m),
        _ => true,
    };
    let ifaces = iface::interfaces();
    let candidates = ifaces
        .iter()
        .filter(|i| c.interface.as_deref().is_none_or(|n| n == i.name))
        .filter(|i| !i.loopback || c.interface.is_some())
        .flat_map(|i| i.ipv4.iter().map(|(a, _)| *a));
    let mut found: Vec<Ipv4Addr> = candidates.collect();
    found.sort_by_key(|a| !in_pool(*a));
    // Without a pool subnet (proxy mode) and without an interface, every address is a guess:
    // answer from whichever address each request arrived on instead.
    let subnet_known = c.dhcp.subnet.is_some() && c.dhcp.netmask.is_some();
    let server_address = c.server_address.or_else(|| {
        let in_subnet = if subnet_known { found.iter().copied().find(|a| in_pool(*a)) } else { None };
        in_subnet.or(if c.interface.is_some() { found.first().copied() } else { None })
    });
    let policy_addr = server_address.or(found.first().copied()).unwrap_or(Ipv4Addr::UNSPECIFIED);
    let mut policy = PolicyConfig::new(mode, policy_addr, c.http.port);
    policy.ipxe_chainload = match c.dhcp.ipxe_chainload {
        IpxeChainloadMode::Never => IpxeChainload::Never,
        IpxeChainloadMode::IfNoHttp => IpxeChainload::IfNoHttp,
        IpxeChainloadMode::Always => IpxeChainload::Always,
    };
    let mut server = ServerSettings::new(mode, c.dhcp.clone(), policy);
    server.server_address = server_address;
    server.reservations = c
        .nodes
        .iter()
        .map(|n| Reservation { mac: n.mac, ip: n.ip_address, hostname: n.hostname.clone() })
        .collect();
    let mtu = iface::serving_mtu(c.interface.as_deref(), c.listen) as usize;
    server.link_cap = crate::dhcp::options::payload_cap_for_mtu(mtu).min(MAX_REPLY);
    Ok(DhcpSettings {
        server,
        state_dir: c.state_dir.clone(),
        device: c.interface.clone(),
        port: SERVER_PORT,
        proxy_port: PXE_PORT,
        raw_unicast: true,
    })
}

/// A MAC for logs, formatted without allocating.
struct Mac<'a>(&'a [u8]);

impl fmt::Display for Mac<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(":")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy)]
struct Pending {
    len: usize,
    delivery: Delivery,
    server_id: Ipv4Addr,
    ifindex: u32,
    /// Which socket it came in on (0: port 67, 1: port 4011).
    socket: usize,
    /// Its lease change is in the journal buffer: send only after a successful sync.
    durable: bool,
}

/// The DHCP / ProxyDHCP service.
pub struct DhcpService {
    settings: DhcpSettings,
    server: Server,
    journal: Option<Journal>,
    sockets: [Option<UdpSocket>; 2],
    raw: Option<OwnedFd>,
    raw_warned: bool,
    rbuf: Box<[u8]>,
    slots: Box<[[u8; HEADROOM + MAX_REPLY]]>,
    pending: [Option<Pending>; QUEUE],
    npending: usize,
    /// ifindex → that interface's IPv4 networks; refreshed when an unknown index shows up.
    ifaces: HashMap<u32, Vec<(Ipv4Addr, u8)>>,
    ifaces_at: Option<Instant>,
    base: usize,
    status: Rc<Status>,
    /// Told about boot decisions and client addresses (the node lifecycle).
    observer: Rc<dyn Observer>,
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

impl DhcpService {
    /// Binds the sockets (a port in use is reported at start-up), opens and replays the
    /// journal (server mode) and restores its leases.
    pub fn new(settings: DhcpSettings, status: Rc<Status>) -> io::Result<DhcpService> {
        status.dhcp.set(ServiceState::Starting);
        let now = Instant::now();
        let mut server = Server::new(settings.server.clone(), now, unix_now())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        let journal = if settings.server.mode == Mode::Server {
            std::fs::create_dir_all(&settings.state_dir).map_err(|e| {
                io::Error::new(e.kind(), format!("state dir {}: {e}", settings.state_dir.display()))
            })?;
            let (j, replay) = Journal::open(&settings.state_dir)?;
            let n = server.restore(&replay.live);
            log::info!(
                "dhcp: journal {}: {} record(s), {} lease(s) restored{}",
                j.path().display(),
                replay.records,
                n,
                if replay.truncated > 0 {
                    format!(", {} byte(s) of torn tail cut off", replay.truncated)
                } else {
                    String::new()
                }
            );
            Some(j)
        } else {
            None
        };
        let opts =
            sock::UdpOpts { reuse_addr: true, broadcast: true, recv_buffer: 1 << 20, send_buffer: 1 << 20 };
        let bind = |port| -> io::Result<UdpSocket> {
            let s = sock::udp(
                SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port)),
                opts,
                settings.device.as_deref(),
            )?;
            sock::set_pktinfo(&s)?;
            Ok(s)
        };
        let main = bind(settings.port)?;
        let proxy = if settings.server.mode == Mode::Proxy { Some(bind(settings.proxy_port)?) } else { None };
        let raw = if settings.raw_unicast { open_raw().ok() } else { None };
        let raw_warned = settings.raw_unicast && raw.is_none();
        if raw_warned {
            log::warn!(
                "dhcp: no packet socket (needs CAP_NET_RAW): replies to clients without an address are broadcast"
            );
        }
        Ok(DhcpService {
            server,
            journal,
            sockets: [Some(main), proxy],
            raw,
            raw_warned,
            rbuf: vec![0u8; 1 << 16].into_boxed_slice(),
            slots: vec![[0u8; HEADROOM + MAX_REPLY]; QUEUE].into_boxed_slice(),
            pending: [None; QUEUE],
            npending: 0,
            ifaces: HashMap::with_capacity(64),
            ifaces_at: None,
            base: 0,
            status,
            observer: Rc::new(NoLifecycle),
            settings,
        })
    }

    /// Who is told about boot decisions and the addresses clients have (the node lifecycle;
    /// nobody by default).
    pub fn set_observer(&mut self, observer: Rc<dyn Observer>) {
        self.observer = observer;
    }

    /// The sans-IO server (for tests and status).
    pub fn server(&self) -> &Server {
        &self.server
    }

    /// The bound port of the main socket (useful with port 0).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.sockets[0].as_ref().and_then(|s| s.local_addr().ok())
    }

    fn refresh_ifaces(&mut self, now: Instant) {
        if self.ifaces_at.is_some_and(|t| now.saturating_duration_since(t).as_secs() < 5) {
            return;
        }
        self.ifaces_at = Some(now);
        self.ifaces.clear();
        for i in iface::interfaces() {
            self.ifaces.insert(i.index, i.ipv4);
        }
    }

    fn subnet_of(&mut self, ifindex: u32, local: Ipv4Addr, now: Instant) -> Option<(Ipv4Addr, u8)> {
        if ifindex == 0 {
            return None;
        }
        if !self.ifaces.contains_key(&ifindex) {
            self.refresh_ifaces(now);
        }
        let nets = self.ifaces.get(&ifindex)?;
        nets.iter().find(|(a, _)| *a == local).or(nets.first()).copied()
    }

    fn on_readable(&mut self, which: usize, now: Instant) {
        loop {
            let Some(sock) = self.sockets[which].as_ref() else { return };
            let meta = match sock::recv_pktinfo(sock, &mut self.rbuf) {
                Ok(m) => m,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    log::warn!("dhcp: receive failed: {e}");
                    break;
                }
            };
            Counters::inc(&self.status.dhcp_counters.packets_in);
            if self.npending == QUEUE {
                self.flush_pending(now);
            }
            let local = meta.local.unwrap_or(Ipv4Addr::UNSPECIFIED);
            let arrival = Arrival {
                ifindex: meta.ifindex,
                local_addr: local,
                subnet: self.subnet_of(meta.ifindex, local, now),
                port: if which == 0 { SERVER_PORT } else { PXE_PORT },
                src: meta.src,
            };
            let slot = &mut self.slots[self.npending][HEADROOM..];
            let data = &self.rbuf[..meta.len];
            let o = self.server.handle_packet(now, data, &arrival, slot);
            log_outcome(data, &o, &arrival);
            let policy = self.server.policy(o.reply.map_or(arrival.local_addr, |r| r.server_id));
            observe(&*self.observer, policy, data, &o, &arrival);
            self.count(o.event);
            if let Some(rec) = o.journal {
                if let Some(j) = self.journal.as_mut() {
                    j.append(&rec);
                }
            }
            if let Some(plan) = o.reply {
                let p = Pending {
                    len: plan.len,
                    delivery: plan.delivery,
                    server_id: plan.server_id,
                    ifindex: meta.ifindex,
                    socket: which,
                    durable: o.journal.is_some(),
                };
                if p.durable {
                    self.pending[self.npending] = Some(p);
                    self.npending += 1;
                } else {
                    // OFFER, NAK, INFORM and ProxyDHCP replies change nothing durable: no wait.
                    self.send(self.npending, &p);
                }
            }
        }
        self.flush_pending(now);
    }

    fn count(&self, e: Event) {
        let c = &self.status.dhcp_counters;
        match e {
            Event::Malformed => Counters::inc(&c.malformed),
            Event::Naked | Event::PoolExhausted => Counters::inc(&c.refused),
            Event::Acked | Event::ProxyAcked | Event::Informed => Counters::inc(&c.completed),
            _ => {}
        }
    }

    /// Syncs the journal, then sends every queued reply.
    fn flush_pending(&mut self, now: Instant) {
        let synced = match self.journal.as_mut() {
            Some(j) if j.has_pending() => match j.sync() {
                Ok(()) => true,
                Err(e) => {
                    log::error!("dhcp: journal write failed: {e}; the ACKs of this batch are not sent");
                    Counters::inc(&self.status.dhcp_counters.failed);
                    false
                }
            },
            _ => true,
        };
        for i in 0..self.npending {
            let Some(p) = self.pending[i].take() else { continue };
            if p.durable && !synced {
                continue;
            }
            self.send(i, &p);
        }
        self.npending = 0;
        self.status.dhcp_counters.active.set(self.server.lease_count() as u64);
        if let Some(j) = self.journal.as_mut() {
            if j.needs_compaction(self.server.lease_count()) {
                let before = j.len();
                match j.compact(self.server.live_records(now)) {
                    Ok(()) => log::info!("dhcp: journal compacted from {before} to {} bytes", j.len()),
                    Err(e) => log::warn!("dhcp: journal compaction failed: {e}"),
                }
            }
        }
    }

    fn send(&mut self, slot: usize, p: &Pending) {
        let sock_idx = if p.socket == 1 && self.sockets[1].is_some() { 1 } else { 0 };
        let (dst, ifindex) = match p.delivery {
            Delivery::Relay(g) => (SocketAddrV4::new(g, SERVER_PORT), 0),
            Delivery::Client(c) => (SocketAddrV4::new(c, CLIENT_PORT), 0),
            Delivery::Source(s) => (s, 0),
            Delivery::Broadcast => (SocketAddrV4::new(Ipv4Addr::BROADCAST, CLIENT_PORT), p.ifindex),
            Delivery::Link { ip, mac } => {
                if self.send_link(slot, p, ip, mac) {
                    return;
                }
                (SocketAddrV4::new(Ipv4Addr::BROADCAST, CLIENT_PORT), p.ifindex)
            }
        };
        let Some(sock) = self.sockets[sock_idx].as_ref() else { return };
        let payload = &self.slots[slot][HEADROOM..HEADROOM + p.len];
        match sock::send_pktinfo(sock, payload, dst, ifindex, p.server_id) {
            Ok(n) => {
                Counters::inc(&self.status.dhcp_counters.packets_out);
                Counters::add(&self.status.dhcp_counters.bytes_out, n as u64);
            }
            Err(e) => log::warn!("dhcp: send to {dst} failed: {e}"),
        }
    }

    /// Sends the reply in `slot` as an IPv4/UDP datagram straight to `mac`. False when the
    /// packet socket is missing or refuses (the caller broadcasts instead).
    fn send_link(&mut self, slot: usize, p: &Pending, ip: Ipv4Addr, mac: [u8; 6]) -> bool {
        let Some(raw) = self.raw.as_ref() else { return false };
        if p.ifindex == 0 {
            return false;
        }
        let frame = &mut self.slots[slot][..HEADROOM + p.len];
        write_ipv4_udp(frame, p.server_id, SERVER_PORT, ip, CLIENT_PORT);
        match send_packet(raw, frame, p.ifindex, mac) {
            Ok(n) => {
                Counters::inc(&self.status.dhcp_counters.packets_out);
                Counters::add(&self.status.dhcp_counters.bytes_out, n as u64);
                true
            }
            Err(e) => {
                if !self.raw_warned {
                    self.raw_warned = true;
                    log::warn!("dhcp: link-layer unicast failed ({e}); broadcasting such replies instead");
                }
                self.raw = None;
                false
            }
        }
    }
}

fn log_outcome(data: &[u8], o: &super::server::Outcome, a: &Arrival) {
    let (xid, chaddr) = match data.get(4..8).zip(data.get(28..34)) {
        Some((x, c)) => (u32::from_be_bytes([x[0], x[1], x[2], x[3]]), c),
        None => (0, &[][..]),
    };
    match o.event {
        Event::Ignored | Event::Malformed => {
            log::debug!("dhcp: from {} ({}, xid {xid:#010x}): no reply: {}", a.src, Mac(chaddr), o.reason)
        }
        _ => {
            let what = o.reply.map(|r| r.message_type);
            let ip = o.reply.map(|r| r.yiaddr).or(o.journal.map(|j| j.ip)).unwrap_or(Ipv4Addr::UNSPECIFIED);
            let kind = match what {
                Some(MessageType::Offer) => "OFFER",
                Some(MessageType::Ack) => "ACK",
                Some(MessageType::Nak) => "NAK",
                _ => match o.event {
                    Event::Released => "RELEASE",
                    Event::Declined => "DECLINE",
                    _ => "no reply",
                },
            };
            match o.boot {
                Some(b) => log::info!(
                    "dhcp: {kind} {ip} to {} (xid {xid:#010x}) via if {}: {}; boot {:?}: {}",
                    Mac(chaddr),
                    a.ifindex,
                    o.reason,
                    b.kind,
                    b.reason
                ),
                None => log::info!(
                    "dhcp: {kind} {ip} to {} (xid {xid:#010x}) via if {}: {}",
                    Mac(chaddr),
                    a.ifindex,
                    o.reason
                ),
            }
        }
    }
}

/// Tells the lifecycle what this exchange showed: a boot decision the client takes (an ACK from
/// us as the server; any answer as a ProxyDHCP, whose client gets its address elsewhere), and
/// the client's address (the ACK's yiaddr, else ciaddr, else the source of a direct request).
/// Allocation-free: everything is read from the packet in place.
fn observe(
    obs: &dyn Observer,
    policy: &super::pxe::PolicyConfig,
    data: &[u8],
    o: &super::server::Outcome,
    a: &Arrival,
) {
    let (Some(&[1, 6]), Some(chaddr)) = (data.get(1..3).map(|h| [h[0], h[1]]).as_ref(), data.get(28..34))
    else {
        return;
    };
    let Ok(mac) = <[u8; 6]>::try_from(chaddr) else { return };
    let quad = |r: std::ops::Range<usize>| {
        data.get(r).map(|b| Ipv4Addr::new(b[0], b[1], b[2], b[3])).filter(|ip| !ip.is_unspecified())
    };
    let acked = o
        .reply
        .filter(|r| r.message_type == MessageType::Ack)
        .map(|r| r.yiaddr)
        .filter(|ip| !ip.is_unspecified());
    let direct = (quad(24..28).is_none() && !a.src.ip().is_unspecified()).then(|| *a.src.ip());
    let ip = acked.or(quad(12..16)).or(direct);
    let taken = matches!(o.event, Event::Acked | Event::ProxyOffered | Event::ProxyAcked);
    match o.boot {
        Some(b) if taken => {
            let what = match b.kind {
                super::pxe::DecisionKind::TftpBinary => "iPXE binary over TFTP",
                super::pxe::DecisionKind::IpxeScript => "iPXE script",
                super::pxe::DecisionKind::HttpBoot => "UEFI HTTP boot",
                super::pxe::DecisionKind::NotPxe => return,
            };
            obs.dhcp_boot(mac, what, b.arch, b.file(policy), ip);
        }
        _ => {
            if let Some(ip) = ip.filter(|_| o.event != Event::Ignored && o.event != Event::Malformed) {
                obs.ip_seen(mac, ip);
            }
        }
    }
}

fn open_raw() -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2); protocol 0 means the socket receives nothing.
    let fd = unsafe {
        libc::socket(libc::AF_PACKET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK, 0)
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn checksum_add(mut sum: u32, data: &[u8]) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [b] = chunks.remainder() {
        sum += u32::from(*b) << 8;
    }
    sum
}

fn checksum_fold(mut sum: u32) -> u16 {
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Writes IPv4 (no options, TTL 64, DF) and UDP headers into the first 28 bytes of `frame`,
/// whose remaining bytes are the UDP payload; both checksums are computed.
pub fn write_ipv4_udp(frame: &mut [u8], src: Ipv4Addr, sport: u16, dst: Ipv4Addr, dport: u16) {
    let total = frame.len() as u16;
    let udp_len = total - 20;
    let ip = &mut frame[..20];
    ip[0] = 0x45;
    ip[1] = 0;
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip[4..6].copy_from_slice(&[0, 0]);
    ip[6..8].copy_from_slice(&0x4000u16.to_be_bytes());
    ip[8] = 64;
    ip[9] = 17;
    ip[10..12].copy_from_slice(&[0, 0]);
    ip[12..16].copy_from_slice(&src.octets());
    ip[16..20].copy_from_slice(&dst.octets());
    let c = checksum_fold(checksum_add(0, ip));
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    frame[20..22].copy_from_slice(&sport.to_be_bytes());
    frame[22..24].copy_from_slice(&dport.to_be_bytes());
    frame[24..26].copy_from_slice(&udp_len.to_be_bytes());
    frame[26..28].copy_from_slice(&[0, 0]);
    let mut sum = checksum_add(0, &src.octets());
    sum = checksum_add(sum, &dst.octets());
    sum += 17 + u32::from(udp_len);
    sum = checksum_add(sum, &frame[20..]);
    let c = match checksum_fold(sum) {
        0 => 0xffff,
        c => c,
    };
    frame[26..28].copy_from_slice(&c.to_be_bytes());
}

fn send_packet(fd: &OwnedFd, frame: &[u8], ifindex: u32, mac: [u8; 6]) -> io::Result<usize> {
    // SAFETY: sockaddr_ll is plain data; every pointer passed to sendto points at a live local
    // of the stated size.
    unsafe {
        let mut sll: libc::sockaddr_ll = std::mem::zeroed();
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = (libc::ETH_P_IP as u16).to_be();
        sll.sll_ifindex = ifindex as i32;
        sll.sll_halen = 6;
        sll.sll_addr[..6].copy_from_slice(&mac);
        let n = libc::sendto(
            fd.as_raw_fd(),
            frame.as_ptr() as *const libc::c_void,
            frame.len(),
            0,
            &sll as *const libc::sockaddr_ll as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        );
        if n < 0 { Err(io::Error::last_os_error()) } else { Ok(n as usize) }
    }
}

impl Service for DhcpService {
    fn name(&self) -> &'static str {
        "dhcp"
    }

    fn register(&mut self, registry: &Registry, base: usize) -> io::Result<()> {
        self.base = base;
        for (i, s) in self.sockets.iter_mut().enumerate() {
            if let Some(s) = s.as_mut() {
                registry.register(s, Token(base + i), Interest::READABLE)?;
            }
        }
        self.status.dhcp.set(ServiceState::Running);
        let s = &self.settings.server;
        let what = match (s.mode, s.dhcp.range) {
            (Mode::Server, Some((a, b))) => {
                let more = s.dhcp.pools.iter().map(|p| format!(", {}-{}", p.range.0, p.range.1));
                format!("server, pool {a}-{b}{}", more.collect::<String>())
            }
            (Mode::Server, None) => "server".to_string(),
            (Mode::Proxy, _) => format!("proxy, also on :{}", self.settings.proxy_port),
        };
        log::info!(
            "dhcp: serving ({what}) on :{}{}, server address {}, {} reservation(s), {} lease(s)",
            self.settings.port,
            self.settings.device.as_deref().map(|d| format!(" on {d}")).unwrap_or_default(),
            s.server_address.map_or("per interface".to_string(), |a| a.to_string()),
            s.reservations.len(),
            self.server.lease_count()
        );
        Ok(())
    }

    fn handle_event(&mut self, _registry: &Registry, event: &mio::event::Event, now: Instant) {
        let which = event.token().0 - self.base;
        if which < 2 {
            self.on_readable(which, now);
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        None
    }

    fn handle_timeouts(&mut self, _registry: &Registry, _now: Instant) {}

    fn begin_shutdown(&mut self, registry: &Registry, _now: Instant) {
        for s in self.sockets.iter_mut() {
            if let Some(mut s) = s.take() {
                let _ = registry.deregister(&mut s);
            }
        }
        self.status.dhcp.set(ServiceState::Stopping);
    }

    fn is_idle(&self) -> bool {
        true
    }

    fn flush(&mut self, _registry: &Registry) {
        if let Some(j) = self.journal.as_mut() {
            if let Err(e) = j.sync() {
                log::error!("dhcp: journal sync at exit failed: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dhcp::pxe::{DecisionKind, Family};
    use crate::dhcp::server::{BootNote, Outcome, ReplyPlan};
    use std::cell::RefCell;

    #[derive(Default)]
    struct Seen(RefCell<Vec<String>>);

    impl Observer for Seen {
        fn dhcp_boot(
            &self,
            mac: [u8; 6],
            what: &'static str,
            arch: Option<u16>,
            file: &str,
            ip: Option<Ipv4Addr>,
        ) {
            self.0.borrow_mut().push(format!("boot {} {what} {arch:?} {file} {ip:?}", Mac(&mac)));
        }
        fn ip_seen(&self, mac: [u8; 6], ip: Ipv4Addr) {
            self.0.borrow_mut().push(format!("ip {} {ip}", Mac(&mac)));
        }
    }

    fn packet(ciaddr: [u8; 4], giaddr: [u8; 4]) -> Vec<u8> {
        let mut p = vec![0u8; 300];
        p[..3].copy_from_slice(&[1, 1, 6]);
        p[12..16].copy_from_slice(&ciaddr);
        p[24..28].copy_from_slice(&giaddr);
        p[28..34].copy_from_slice(&[2, 0, 0, 0, 0, 7]);
        p
    }

    fn outcome(event: Event, mt: MessageType, yiaddr: [u8; 4], kind: Option<DecisionKind>) -> Outcome {
        Outcome {
            event,
            reply: Some(ReplyPlan {
                len: 300,
                message_type: mt,
                delivery: Delivery::Broadcast,
                yiaddr: yiaddr.into(),
                server_id: Ipv4Addr::new(10, 0, 0, 1),
            }),
            journal: None,
            reason: "",
            boot: kind.map(|kind| BootNote { kind, reason: "", arch: Some(7), family: Some(Family::EfiX64) }),
        }
    }

    #[test]
    fn the_lifecycle_sees_taken_boot_decisions_and_client_addresses() {
        let policy = PolicyConfig::new(Mode::Server, Ipv4Addr::new(10, 0, 0, 1), 8080);
        let arrival = |src: [u8; 4], port| Arrival {
            ifindex: 1,
            local_addr: Ipv4Addr::new(10, 0, 0, 1),
            subnet: None,
            port,
            src: SocketAddrV4::new(src.into(), 68),
        };
        let seen = Seen::default();
        let tftp = Some(DecisionKind::TftpBinary);
        // An OFFER is not taken yet; the ACK is, with its yiaddr.
        observe(
            &seen,
            &policy,
            &packet([0; 4], [0; 4]),
            &outcome(Event::Offered, MessageType::Offer, [10, 0, 0, 50], tftp),
            &arrival([0; 4], 67),
        );
        observe(
            &seen,
            &policy,
            &packet([0; 4], [0; 4]),
            &outcome(Event::Acked, MessageType::Ack, [10, 0, 0, 50], tftp),
            &arrival([0; 4], 67),
        );
        // ProxyDHCP: the offer is the decision; the address is ciaddr, else the source.
        let script = Some(DecisionKind::IpxeScript);
        observe(
            &seen,
            &policy,
            &packet([10, 0, 0, 60], [0; 4]),
            &outcome(Event::ProxyOffered, MessageType::Offer, [0; 4], script),
            &arrival([0; 4], 67),
        );
        observe(
            &seen,
            &policy,
            &packet([0; 4], [0; 4]),
            &outcome(Event::ProxyAcked, MessageType::Ack, [0; 4], Some(DecisionKind::HttpBoot)),
            &arrival([10, 0, 0, 61], 4011),
        );
        // A relayed renewal without boot information: ciaddr, not the relay's address.
        observe(
            &seen,
            &policy,
            &packet([10, 0, 0, 62], [10, 0, 9, 1]),
            &outcome(Event::Acked, MessageType::Ack, [0; 4], None),
            &arrival([10, 0, 9, 1], 67),
        );
        // A relayed request with neither: nothing to learn.
        observe(
            &seen,
            &policy,
            &packet([0; 4], [10, 0, 9, 1]),
            &outcome(Event::Naked, MessageType::Nak, [0; 4], None),
            &arrival([10, 0, 9, 1], 67),
        );
        assert_eq!(
            *seen.0.borrow(),
            [
                "boot 02:00:00:00:00:07 iPXE binary over TFTP Some(7) ipxe.efi Some(10.0.0.50)",
                "boot 02:00:00:00:00:07 iPXE script Some(7) http://10.0.0.1:8080/boot.ipxe Some(10.0.0.60)",
                "boot 02:00:00:00:00:07 UEFI HTTP boot Some(7) http://10.0.0.1:8080/ipxe.efi Some(10.0.0.61)",
                "ip 02:00:00:00:00:07 10.0.0.62",
            ]
        );
    }

    #[test]
    fn ipv4_and_udp_checksums_verify() {
        let mut f = vec![0u8; 28 + 301];
        for (i, b) in f[28..].iter_mut().enumerate() {
            *b = i as u8;
        }
        write_ipv4_udp(&mut f, Ipv4Addr::new(10, 0, 0, 1), 67, Ipv4Addr::new(10, 0, 0, 50), 68);
        assert_eq!(checksum_fold(checksum_add(0, &f[..20])), 0, "IPv4 header sums to 0xffff");
        let mut sum = checksum_add(0, &f[12..20]);
        sum += 17 + (f.len() as u32 - 20);
        sum = checksum_add(sum, &f[20..]);
        assert_eq!(checksum_fold(sum), 0, "UDP checksum verifies");
        assert_eq!(u16::from_be_bytes([f[2], f[3]]) as usize, f.len());
        assert_eq!(u16::from_be_bytes([f[24], f[25]]) as usize, f.len() - 20);
    }
}
