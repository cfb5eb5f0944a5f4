//! The sans-IO DHCP server and ProxyDHCP: address pool, static reservations, the RFC 2131
//! state machine, and the PXE boot decision in every OFFER/ACK to a boot client.
//!
//! [`Server::handle`] takes one parsed [`Request`], where it arrived ([`Arrival`]) and a reply
//! buffer, and returns an [`Outcome`]: the reply length and where to send it ([`Delivery`], RFC
//! 2131 §4.1), the lease change to journal *before* the reply leaves, and the reason for the
//! decision (for the log). Nothing here touches a socket, a file or the clock.
//!
//! Rules kept throughout:
//! - One address is never bound to two clients: `by_ip` has one binding per address and
//!   `by_key` one address per client; an address is only reused once its binding expired.
//! - Clients are keyed by option 61, else by `htype` + `chaddr` ([`ClientKey`]; EDK2 sends no
//!   option 61). Transactions are not cached by xid at all: iPXE repeats xids after a reboot, so
//!   every message is judged on the client's key and the bindings alone.
//! - Steady state allocates nothing: the tables are sized for the pool at start-up.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

use super::leases::{ClientKey, LeaseRecord, RecordKind};
use super::options::reply_capacity;
use super::pxe::{ClientInfo, DecisionKind, Family, MacHistory, Mode, PolicyConfig, VendorClass, decide};
use super::reply::Reply;
use super::request::Request;
use super::wire::{MessageType, Packet};
use crate::config::DhcpConfig;

/// The DHCP server port.
pub const SERVER_PORT: u16 = 67;
/// The DHCP client port.
pub const CLIENT_PORT: u16 = 68;
/// The PXE boot server (ProxyDHCP) port.
pub const PXE_PORT: u16 = 4011;

/// A static reservation (a `[nodes."mac"]` entry).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    pub mac: [u8; 6],
    /// The fixed address; `None`: a pool address, but still the hostname.
    pub ip: Option<Ipv4Addr>,
    /// Sent as option 12.
    pub hostname: Option<String>,
}

/// Everything the server decides with.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    pub mode: Mode,
    /// The server identifier (option 54) and source address; `None`: the address the request
    /// arrived on.
    pub server_address: Option<Ipv4Addr>,
    /// Subnet, netmask, range and the options handed out (router, DNS, domain, lease time).
    pub dhcp: DhcpConfig,
    pub reservations: Vec<Reservation>,
    pub policy: PolicyConfig,
    /// How long an OFFER holds its address for the client (default 30 s).
    pub offer_hold: Duration,
    /// How long a DECLINEd address stays out of the pool (default 10 min).
    pub decline_quarantine: Duration,
    /// How long the per-MAC PXE history is remembered (default 5 min).
    pub history_ttl: Duration,
    /// Most MACs in the PXE history table (default 4096).
    pub max_history: usize,
    /// Largest UDP payload the link carries (default 1472, a 1500 MTU).
    pub link_cap: usize,
}

impl ServerSettings {
    /// Settings with the defaults above.
    pub fn new(mode: Mode, dhcp: DhcpConfig, policy: PolicyConfig) -> ServerSettings {
        ServerSettings {
            mode,
            server_address: None,
            dhcp,
            reservations: Vec::new(),
            policy,
            offer_hold: Duration::from_secs(30),
            decline_quarantine: Duration::from_secs(600),
            history_ttl: Duration::from_secs(300),
            max_history: 4096,
            link_cap: 1472,
        }
    }
}

/// Why settings cannot run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SettingsError {
    /// Server mode needs `dhcp.subnet`, `dhcp.netmask` and `dhcp.range`.
    MissingPool,
    /// The range is not inside the subnet.
    RangeOutsideSubnet,
}

impl std::fmt::Display for SettingsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SettingsError::MissingPool => "server mode needs dhcp.subnet, dhcp.netmask and dhcp.range",
            SettingsError::RangeOutsideSubnet => "dhcp.range is not inside dhcp.subnet",
        })
    }
}

impl std::error::Error for SettingsError {}

/// Where a request arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arrival {
    /// Interface index (IP_PKTINFO; 0 unknown).
    pub ifindex: u32,
    /// The local address of that interface (IP_PKTINFO `ipi_spec_dst`).
    pub local_addr: Ipv4Addr,
    /// The interface's network holding `local_addr` (address, prefix), when known.
    pub subnet: Option<(Ipv4Addr, u8)>,
    /// The local port (67, or 4011 in proxy mode).
    pub port: u16,
    /// The sender.
    pub src: SocketAddrV4,
}

/// Where a reply goes (RFC 2131 §4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// To the relay agent at giaddr, port 67.
    Relay(Ipv4Addr),
    /// To the client's configured address (ciaddr), port 68.
    Client(Ipv4Addr),
    /// To 255.255.255.255:68 on the arrival interface.
    Broadcast,
    /// To yiaddr:68 at the client's MAC, without ARP (a raw link-layer frame).
    Link { ip: Ipv4Addr, mac: [u8; 6] },
    /// Back to the sender's address and port (ProxyDHCP on 4011).
    Source(SocketAddrV4),
}

/// What the server did with one message, for counters and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    Offered,
    Acked,
    Naked,
    Informed,
    Released,
    Declined,
    ProxyOffered,
    ProxyAcked,
    /// Nothing to answer (another server's client, unknown INIT-REBOOT, non-PXE in proxy...).
    Ignored,
    /// Could not be parsed.
    Malformed,
    /// A DISCOVER found no free address.
    PoolExhausted,
}

/// A reply ready in the caller's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplyPlan {
    pub len: usize,
    pub message_type: MessageType,
    pub delivery: Delivery,
    pub yiaddr: Ipv4Addr,
    /// The source address to send from (the server identifier).
    pub server_id: Ipv4Addr,
}

/// The result of [`Server::handle`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    pub event: Event,
    pub reply: Option<ReplyPlan>,
    /// To append to the journal and make durable before the reply is sent.
    pub journal: Option<LeaseRecord>,
    /// Why, for the log.
    pub reason: &'static str,
    /// The PXE boot decision, when one went into the reply.
    pub boot: Option<BootNote>,
}

/// What the boot policy decided for one client, for the log and the node lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BootNote {
    pub kind: DecisionKind,
    /// Why, for the log.
    pub reason: &'static str,
    /// The architecture the client sent (option 93 or the vendor class), if any.
    pub arch: Option<u16>,
    /// The binary family chosen (the default one when the architecture is unknown).
    pub family: Option<Family>,
}

impl BootNote {
    fn of(d: &super::pxe::Decision<'_>, info: &ClientInfo) -> BootNote {
        BootNote { kind: d.kind, reason: d.reason, arch: info.arch, family: d.family }
    }

    /// The file name or URL the decision handed out, as the policy spells it.
    pub fn file(self, policy: &PolicyConfig) -> &str {
        match (self.kind, self.family) {
            (DecisionKind::IpxeScript, _) => &policy.ipxe_script_url,
            (DecisionKind::TftpBinary, Some(f)) => policy.binaries.get(f),
            (DecisionKind::HttpBoot, Some(f)) => policy.binary_urls.get(f),
            _ => "",
        }
    }
}

impl Outcome {
    fn ignored(reason: &'static str) -> Outcome {
        Outcome { event: Event::Ignored, reply: None, journal: None, reason, boot: None }
    }
}

/// Counters by event.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServerStats {
    pub offers: u64,
    pub acks: u64,
    pub naks: u64,
    pub informs: u64,
    pub releases: u64,
    pub declines: u64,
    pub proxy_offers: u64,
    pub proxy_acks: u64,
    pub ignored: u64,
    pub malformed: u64,
    pub pool_exhausted: u64,
}

impl ServerStats {
    fn count(&mut self, e: Event) {
        let c = match e {
            Event::Offered => &mut self.offers,
            Event::Acked => &mut self.acks,
            Event::Naked => &mut self.naks,
            Event::Informed => &mut self.informs,
            Event::Released => &mut self.releases,
            Event::Declined => &mut self.declines,
            Event::ProxyOffered => &mut self.proxy_offers,
            Event::ProxyAcked => &mut self.proxy_acks,
            Event::Ignored => &mut self.ignored,
            Event::Malformed => &mut self.malformed,
            Event::PoolExhausted => &mut self.pool_exhausted,
        };
        *c += 1;
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Offered,
    Leased,
    Declined,
}

#[derive(Debug, Clone, Copy)]
struct Binding {
    key: ClientKey,
    mac: [u8; 6],
    state: State,
    until: Instant,
}

/// A lease as seen from outside (tests, status).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseView {
    pub ip: Ipv4Addr,
    pub mac: [u8; 6],
    pub key: ClientKey,
    pub offered: bool,
    pub declined: bool,
    pub expires: Instant,
}

fn in_net(ip: Ipv4Addr, net: Ipv4Addr, mask: Ipv4Addr) -> bool {
    u32::from(ip) & u32::from(mask) == u32::from(net) & u32::from(mask)
}

fn prefix_mask(prefix: u8) -> Ipv4Addr {
    Ipv4Addr::from(if prefix == 0 { 0 } else { u32::MAX << (32 - u32::from(prefix.min(32))) })
}

/// One subnet: its network, range (inclusive) and allocation cursor as numbers, and the options
/// its clients get.
#[derive(Debug)]
struct Pool {
    net: u32,
    mask: u32,
    start: u32,
    end: u32,
    cursor: u32,
    cfg: DhcpConfig,
}

impl Pool {
    fn new(cfg: DhcpConfig) -> Result<Pool, SettingsError> {
        let (Some(n), Some(m), Some((s, e))) = (cfg.subnet, cfg.netmask, cfg.range) else {
            return Err(SettingsError::MissingPool);
        };
        if !in_net(s, n, m) || !in_net(e, n, m) || u32::from(s) > u32::from(e) {
            return Err(SettingsError::RangeOutsideSubnet);
        }
        let (net, mask) = (u32::from(n) & u32::from(m), u32::from(m));
        Ok(Pool { net, mask, start: u32::from(s), end: u32::from(e), cursor: 0, cfg })
    }

    /// A host address of the subnet (not its network or broadcast address).
    fn has_host(&self, ip: Ipv4Addr) -> bool {
        let v = u32::from(ip);
        v & self.mask == self.net && v != self.net && v != self.net | !self.mask
    }

    fn size(&self) -> usize {
        (self.end - self.start) as usize + 1
    }
}

/// The server state.
#[derive(Debug)]
pub struct Server {
    settings: ServerSettings,
    /// The `[dhcp]` pool first, then `[[dhcp.pools]]`; none in proxy mode.
    pools: Vec<Pool>,
    /// The pool of the request being handled (see [`Server::select_pool`]).
    active: usize,
    by_ip: HashMap<Ipv4Addr, Binding>,
    by_key: HashMap<ClientKey, Ipv4Addr>,
    reserved_by_mac: HashMap<[u8; 6], usize>,
    reserved_ip: HashMap<Ipv4Addr, [u8; 6]>,
    history: HashMap<[u8; 6], (MacHistory, Instant)>,
    epoch: Instant,
    epoch_unix: u64,
    stats: ServerStats,
    /// Bindings in state Leased (kept so the count is O(1)).
    leased: usize,
    /// Without a configured server address, the policy for each local address requests arrived
    /// on (a multi-homed host): `siaddr` and the URLs name the interface the client can reach.
    /// Built the first time an address is seen, at most [`MAX_LOCAL_POLICIES`].
    local_policies: Vec<(Ipv4Addr, PolicyConfig)>,
}

/// Local addresses with a policy of their own; beyond them, the configured policy is used.
pub const MAX_LOCAL_POLICIES: usize = 16;

impl Server {
    /// A server with an empty lease table. `epoch`/`epoch_unix` pin the monotonic clock to wall
    /// time (for journal expiry times): the same instant in both.
    pub fn new(settings: ServerSettings, epoch: Instant, epoch_unix: u64) -> Result<Server, SettingsError> {
        let mut pools = Vec::new();
        if settings.mode == Mode::Server {
            let main = DhcpConfig { pools: Vec::new(), ..settings.dhcp.clone() };
            pools.push(Pool::new(main)?);
            for p in &settings.dhcp.pools {
                pools.push(Pool::new(settings.dhcp.for_pool(p))?);
            }
        }
        let size: usize = pools.iter().map(Pool::size).sum::<usize>().max(1);
        let cap = (size + settings.reservations.len() + 16).min(1 << 20);
        let mut reserved_by_mac = HashMap::with_capacity(settings.reservations.len());
        let mut reserved_ip = HashMap::with_capacity(settings.reservations.len());
        for (i, r) in settings.reservations.iter().enumerate() {
            reserved_by_mac.insert(r.mac, i);
            if let Some(ip) = r.ip {
                reserved_ip.insert(ip, r.mac);
            }
        }
        Ok(Server {
            by_ip: HashMap::with_capacity(cap),
            by_key: HashMap::with_capacity(cap),
            history: HashMap::with_capacity(settings.max_history),
            reserved_by_mac,
            reserved_ip,
            pools,
            active: 0,
            epoch,
            epoch_unix,
            stats: ServerStats::default(),
            leased: 0,
            local_policies: Vec::with_capacity(MAX_LOCAL_POLICIES),
            settings,
        })
    }

    /// The boot policy for replies sent from `sid`: the configured one, or with no configured
    /// server address, the one naming `sid`, built when `sid` was first seen.
    pub fn policy(&self, sid: Ipv4Addr) -> &PolicyConfig {
        let own = self.settings.server_address.is_none() && sid != self.settings.policy.server;
        own.then(|| self.local_policies.iter().find(|(a, _)| *a == sid).map(|(_, p)| p))
            .flatten()
            .unwrap_or(&self.settings.policy)
    }

    /// Makes sure [`Server::policy`] has `sid`'s policy (allocates once per local address).
    fn learn_policy(&mut self, sid: Ipv4Addr) {
        let s = &self.settings;
        if s.server_address.is_some()
            || sid == s.policy.server
            || sid.is_unspecified()
            || self.local_policies.len() == MAX_LOCAL_POLICIES
            || self.local_policies.iter().any(|(a, _)| *a == sid)
        {
            return;
        }
        let p = s.policy.for_server(sid);
        self.local_policies.push((sid, p));
    }

    pub fn settings(&self) -> &ServerSettings {
        &self.settings
    }

    pub fn stats(&self) -> ServerStats {
        self.stats
    }

    /// Unix seconds at `now`.
    pub fn unix_at(&self, now: Instant) -> u64 {
        self.epoch_unix + now.saturating_duration_since(self.epoch).as_secs()
    }

    fn instant_at(&self, unix: u64) -> Instant {
        if unix >= self.epoch_unix {
            self.epoch + Duration::from_secs(unix - self.epoch_unix)
        } else {
            self.epoch.checked_sub(Duration::from_secs(self.epoch_unix - unix)).unwrap_or(self.epoch)
        }
    }

    /// Loads the live records of a replayed journal. Records outside every pool are skipped;
    /// a record for an address already bound to another client is skipped too (so a damaged
    /// journal can never make two clients share one address).
    pub fn restore(&mut self, records: &[LeaseRecord]) -> usize {
        let mut n = 0;
        for r in records {
            if self.pool_of(r.ip).is_none() {
                continue;
            }
            let state = match r.kind {
                RecordKind::Lease => State::Leased,
                RecordKind::Decline => State::Declined,
                RecordKind::Release => continue,
            };
            if self.by_ip.get(&r.ip).is_some_and(|b| b.key != r.key) {
                continue;
            }
            let until = self.instant_at(r.expires);
            self.bind(r.ip, r.key, r.mac, state, until);
            n += 1;
        }
        n
    }

    /// Every binding (offers, leases and quarantined addresses).
    pub fn leases(&self) -> impl Iterator<Item = LeaseView> + '_ {
        self.by_ip.iter().map(|(ip, b)| LeaseView {
            ip: *ip,
            mac: b.mac,
            key: b.key,
            offered: b.state == State::Offered,
            declined: b.state == State::Declined,
            expires: b.until,
        })
    }

    /// Leases and live quarantines, as journal records (for compaction).
    pub fn live_records(&self, now: Instant) -> impl Iterator<Item = LeaseRecord> + '_ {
        self.by_ip.iter().filter_map(move |(ip, b)| {
            let kind = match b.state {
                State::Leased => RecordKind::Lease,
                State::Declined if b.until > now => RecordKind::Decline,
                _ => return None,
            };
            Some(LeaseRecord { kind, ip: *ip, expires: self.unix_at(b.until), mac: b.mac, key: b.key })
        })
    }

    /// Leases held (not offers, not quarantines).
    pub fn lease_count(&self) -> usize {
        self.leased
    }

    fn put(&mut self, ip: Ipv4Addr, b: Binding) {
        if b.state == State::Leased {
            self.leased += 1;
        }
        if self.by_ip.insert(ip, b).is_some_and(|old| old.state == State::Leased) {
            self.leased -= 1;
        }
    }

    fn take(&mut self, ip: Ipv4Addr) -> Option<Binding> {
        let b = self.by_ip.remove(&ip)?;
        if b.state == State::Leased {
            self.leased -= 1;
        }
        Some(b)
    }

    /// The pool whose subnet has `ip` as a host address.
    fn pool_of(&self, ip: Ipv4Addr) -> Option<usize> {
        self.pools.iter().position(|p| p.has_host(ip))
    }

    /// A host address of the active pool's subnet.
    fn in_subnet(&self, ip: Ipv4Addr) -> bool {
        self.pools.get(self.active).is_some_and(|p| p.has_host(ip))
    }

    fn in_range(&self, ip: Ipv4Addr) -> bool {
        self.pools.get(self.active).is_some_and(|p| (p.start..=p.end).contains(&u32::from(ip)))
    }

    /// The pool a request is for: the subnet a relay names in its link-selection sub-option
    /// (RFC 3527), else the relay's (giaddr), else the one holding the address a configured
    /// client renews or releases from (ciaddr: a relayed client unicasts those to us directly),
    /// else the one of the link it arrived on (any prefix overlap), else, when the link is
    /// unknown, the first.
    fn select_pool(&self, req: &Request<'_>, arrival: &Arrival) -> Result<usize, &'static str> {
        if let Some(link) = req.link_selection() {
            let v = u32::from(link);
            return self
                .pools
                .iter()
                .position(|p| v & p.mask == p.net)
                .ok_or("relay's link selection names a subnet outside every pool");
        }
        if !req.giaddr.is_unspecified() {
            return self.pool_of(req.giaddr).ok_or("relayed from a giaddr outside every pool's subnet");
        }
        if let Some(i) = (!req.ciaddr.is_unspecified()).then(|| self.pool_of(req.ciaddr)).flatten() {
            return Ok(i);
        }
        let Some((addr, prefix)) = arrival.subnet else { return Ok(0) };
        // The shorter of the two prefixes: either network may contain the other.
        self.pools
            .iter()
            .position(|p| {
                let m = u32::from(prefix_mask(prefix)) & p.mask;
                u32::from(addr) & m == p.net & m
            })
            .ok_or("arrived on a link outside every pool's subnet")
    }

    fn reservation(&self, mac: Option<[u8; 6]>) -> Option<&Reservation> {
        mac.and_then(|m| self.reserved_by_mac.get(&m)).and_then(|&i| self.settings.reservations.get(i))
    }

    /// May `key` (with `mac`) hold `ip` at `now`?
    fn available(
        &self,
        ip: Ipv4Addr,
        key: &ClientKey,
        mac: Option<[u8; 6]>,
        sid: Ipv4Addr,
        now: Instant,
    ) -> bool {
        if !self.in_subnet(ip) || ip == sid {
            return false;
        }
        match self.reserved_ip.get(&ip) {
            Some(owner) if Some(*owner) != mac => return false,
            Some(_) => {}
            None if !self.in_range(ip) => return false,
            None => {}
        }
        match self.by_ip.get(&ip) {
            None => true,
            Some(b) if b.state == State::Declined => b.until <= now,
            Some(b) => b.key == *key || b.until <= now,
        }
    }

    /// Picks the address for a DISCOVER: the reservation, the client's current binding, its
    /// requested address, then a free one (never bound first, else the first expired one).
    fn choose(
        &mut self,
        key: &ClientKey,
        mac: Option<[u8; 6]>,
        requested: Option<Ipv4Addr>,
        sid: Ipv4Addr,
        now: Instant,
    ) -> Result<Ipv4Addr, &'static str> {
        if let Some(ip) = self.reservation(mac).and_then(|r| r.ip) {
            return if self.available(ip, key, mac, sid, now) {
                Ok(ip)
            } else if !self.in_subnet(ip) {
                Err("reserved address is not on the subnet the client is on")
            } else {
                Err("reserved address is still leased to another client")
            };
        }
        if let Some(&ip) = self.by_key.get(key) {
            if self.available(ip, key, mac, sid, now) {
                return Ok(ip);
            }
        }
        if let Some(ip) = requested {
            if self.available(ip, key, mac, sid, now) {
                return Ok(ip);
            }
        }
        let Some(p) = self.pools.get(self.active) else { return Err("no pool") };
        let (start, size, cursor) = (p.start, p.end - p.start + 1, p.cursor);
        let mut expired = None;
        for i in 0..size {
            let off = (cursor.wrapping_add(i)) % size;
            let ip = Ipv4Addr::from(start + off);
            if !self.available(ip, key, mac, sid, now) {
                continue;
            }
            if !self.by_ip.contains_key(&ip) {
                self.pools[self.active].cursor = off.wrapping_add(1) % size;
                return Ok(ip);
            }
            if expired.is_none() {
                expired = Some(ip);
            }
        }
        expired.ok_or("no free address in the pool")
    }

    /// Binds `ip` to `key`, dropping whatever `ip` and `key` were bound to before.
    fn bind(&mut self, ip: Ipv4Addr, key: ClientKey, mac: [u8; 6], state: State, until: Instant) {
        if let Some(old) = self.by_ip.get(&ip) {
            if old.key != key && self.by_key.get(&old.key) == Some(&ip) {
                self.by_key.remove(&old.key);
            }
        }
        if state == State::Declined {
            if self.by_key.get(&key) == Some(&ip) {
                self.by_key.remove(&key);
            }
        } else if let Some(prev) = self.by_key.insert(key, ip) {
            if prev != ip && self.by_ip.get(&prev).is_some_and(|b| b.key == key) {
                self.take(prev);
            }
        }
        self.put(ip, Binding { key, mac, state, until });
    }

    fn unbind(&mut self, ip: Ipv4Addr) {
        if let Some(b) = self.take(ip) {
            if self.by_key.get(&b.key) == Some(&ip) {
                self.by_key.remove(&b.key);
            }
        }
    }

    fn history_of(&self, mac: Option<[u8; 6]>, now: Instant) -> MacHistory {
        match mac.and_then(|m| self.history.get(&m)) {
            Some((h, at)) if now.saturating_duration_since(*at) < self.settings.history_ttl => *h,
            _ => MacHistory::Fresh,
        }
    }

    fn remember(&mut self, mac: Option<[u8; 6]>, h: MacHistory, now: Instant) {
        let Some(mac) = mac else { return };
        if h == MacHistory::Fresh {
            self.history.remove(&mac);
            return;
        }
        if self.history.len() >= self.settings.max_history && !self.history.contains_key(&mac) {
            let ttl = self.settings.history_ttl;
            self.history.retain(|_, (_, at)| now.saturating_duration_since(*at) < ttl);
            if self.history.len() >= self.settings.max_history {
                return;
            }
        }
        self.history.insert(mac, (h, now));
    }

    /// Parses and handles a raw datagram; malformed input is an [`Event::Malformed`] outcome.
    pub fn handle_packet(&mut self, now: Instant, data: &[u8], arrival: &Arrival, out: &mut [u8]) -> Outcome {
        let packet = Packet::new_unchecked(data);
        match Request::parse(&packet) {
            Ok(req) => self.handle(now, &req, arrival, out),
            Err(_) => {
                let o = Outcome {
                    event: Event::Malformed,
                    reply: None,
                    journal: None,
                    reason: "malformed",
                    boot: None,
                };
                self.stats.count(o.event);
                o
            }
        }
    }

    /// Handles one client message; the reply (if any) is written into `out`.
    pub fn handle(&mut self, now: Instant, req: &Request<'_>, arrival: &Arrival, out: &mut [u8]) -> Outcome {
        let o = match self.settings.mode {
            Mode::Server => self.handle_server(now, req, arrival, out),
            Mode::Proxy => self.handle_proxy(now, req, arrival, out),
        };
        self.stats.count(o.event);
        o
    }

    fn server_id(&self, arrival: &Arrival) -> Ipv4Addr {
        self.settings.server_address.unwrap_or(arrival.local_addr)
    }

    fn handle_server(
        &mut self,
        now: Instant,
        req: &Request<'_>,
        arrival: &Arrival,
        out: &mut [u8],
    ) -> Outcome {
        let Some(mt) = req.message_type else { return Outcome::ignored("plain BOOTP is not served") };
        if arrival.port != SERVER_PORT {
            return Outcome::ignored("not on port 67");
        }
        let sid = self.server_id(arrival);
        if sid.is_unspecified() || sid.is_broadcast() {
            return Outcome::ignored("no local address to answer from on this interface");
        }
        match self.select_pool(req, arrival) {
            Ok(i) => self.active = i,
            Err(reason) => return Outcome::ignored(reason),
        }
        if req.chaddr.is_empty() && req.client_id.is_none() {
            return Outcome::ignored("no client identifier and no hardware address");
        }
        let key = ClientKey::new(req.client_id, req.htype, req.chaddr);
        let mac = req.mac();
        match mt {
            MessageType::Discover => self.discover(now, req, &key, mac, sid, out),
            MessageType::Request => self.request(now, req, &key, mac, sid, out),
            MessageType::Decline => self.decline(now, req, &key, mac, sid),
            MessageType::Release => self.release(req, &key, sid),
            MessageType::Inform => self.inform(now, req, mac, sid, out),
            _ => Outcome::ignored("not a client message type"),
        }
    }

    fn discover(
        &mut self,
        now: Instant,
        req: &Request<'_>,
        key: &ClientKey,
        mac: Option<[u8; 6]>,
        sid: Ipv4Addr,
        out: &mut [u8],
    ) -> Outcome {
        let ip = match self.choose(key, mac, req.requested_ip, sid, now) {
            Ok(ip) => ip,
            Err(reason) => {
                return Outcome {
                    event: Event::PoolExhausted,
                    reply: None,
                    journal: None,
                    reason,
                    boot: None,
                };
            }
        };
        let keep_lease =
            self.by_ip.get(&ip).is_some_and(|b| b.key == *key && b.state == State::Leased && b.until > now);
        if !keep_lease {
            let until = now + self.settings.offer_hold;
            self.bind(ip, *key, mac.unwrap_or_default(), State::Offered, until);
        }
        let reason = if keep_lease { "offering the client's current lease" } else { "offering an address" };
        self.answer(now, req, MessageType::Offer, ip, sid, mac, out, Event::Offered, None, reason)
    }

    fn request(
        &mut self,
        now: Instant,
        req: &Request<'_>,
        key: &ClientKey,
        mac: Option<[u8; 6]>,
        sid: Ipv4Addr,
        out: &mut [u8],
    ) -> Outcome {
        let fixed = self.reservation(mac).and_then(|r| r.ip);
        let (ip, reason) = if let Some(server) = req.server_id {
            // SELECTING: the client picked an offer.
            if server != sid {
                if let Some(&ip) = self.by_key.get(key) {
                    if self.by_ip.get(&ip).is_some_and(|b| b.state == State::Offered) {
                        self.unbind(ip);
                    }
                }
                return Outcome::ignored("client selected another server");
            }
            let Some(ip) = req.requested_ip.or((!req.ciaddr.is_unspecified()).then_some(req.ciaddr)) else {
                return self.nak(req, sid, out, "SELECTING without a requested address");
            };
            (ip, "SELECTING: requested address granted")
        } else if let Some(ip) = req.requested_ip.filter(|_| req.ciaddr.is_unspecified()) {
            // INIT-REBOOT: the client asks to keep an address it remembers.
            if !self.in_subnet(ip) {
                return self.nak(req, sid, out, "INIT-REBOOT: address not on this network");
            }
            match self.by_ip.get(&ip) {
                Some(b) if b.key == *key && b.state != State::Declined => {}
                Some(b) if b.until > now || b.state == State::Declined => {
                    return self.nak(req, sid, out, "INIT-REBOOT: address belongs to another client");
                }
                _ if fixed == Some(ip) => {}
                _ if fixed.is_some() => {
                    return self.nak(req, sid, out, "INIT-REBOOT: client has another reserved address");
                }
                _ => return Outcome::ignored("INIT-REBOOT: no record of this client"),
            }
            (ip, "INIT-REBOOT: client's lease confirmed")
        } else if !req.ciaddr.is_unspecified() {
            // RENEWING (unicast) or REBINDING (broadcast).
            let ip = req.ciaddr;
            if !self.in_subnet(ip) {
                return self.nak(req, sid, out, "RENEWING/REBINDING: address not on this network");
            }
            match self.by_ip.get(&ip) {
                Some(b) if b.key == *key && b.state == State::Leased => {}
                Some(b) if b.key != *key && (b.until > now || b.state == State::Declined) => {
                    return self.nak(req, sid, out, "RENEWING/REBINDING: address belongs to another client");
                }
                Some(b) if b.key == *key => {}
                // No record (a lost or replaced lease database, a server taking over from
                // another): re-create the lease when the address is free for this client, as
                // Kea does, instead of making every renewing machine start over. A unicast
                // RENEWING for an address it cannot have is told so; a broadcast REBINDING
                // might be another server's client, so that stays silent.
                _ if self.available(ip, key, mac, sid, now) => {
                    return self.grant(
                        now,
                        req,
                        key,
                        mac,
                        sid,
                        ip,
                        out,
                        "RENEWING/REBINDING: lease re-created",
                    );
                }
                _ if req.broadcast() => {
                    return Outcome::ignored("REBINDING: no lease on record and the address is not free");
                }
                _ => {
                    return self.nak(
                        req,
                        sid,
                        out,
                        "RENEWING: no lease on record and the address is not free",
                    );
                }
            }
            (ip, if req.broadcast() { "REBINDING: lease extended" } else { "RENEWING: lease extended" })
        } else {
            return Outcome::ignored("REQUEST with neither server id, requested address nor ciaddr");
        };
        if fixed.is_some_and(|f| f != ip) {
            return self.nak(req, sid, out, "client has another reserved address");
        }
        if !self.available(ip, key, mac, sid, now) {
            return self.nak(req, sid, out, "requested address is not available");
        }
        self.grant(now, req, key, mac, sid, ip, out, reason)
    }

    /// Leases `ip` to the client, journals it and answers ACK.
    #[allow(clippy::too_many_arguments)]
    fn grant(
        &mut self,
        now: Instant,
        req: &Request<'_>,
        key: &ClientKey,
        mac: Option<[u8; 6]>,
        sid: Ipv4Addr,
        ip: Ipv4Addr,
        out: &mut [u8],
        reason: &'static str,
    ) -> Outcome {
        let lease = self.settings.dhcp.lease_time;
        let until = now + lease;
        let m = mac.unwrap_or_default();
        self.bind(ip, *key, m, State::Leased, until);
        let rec =
            LeaseRecord { kind: RecordKind::Lease, ip, expires: self.unix_at(until), mac: m, key: *key };
        self.answer(now, req, MessageType::Ack, ip, sid, mac, out, Event::Acked, Some(rec), reason)
    }

    fn decline(
        &mut self,
        now: Instant,
        req: &Request<'_>,
        key: &ClientKey,
        mac: Option<[u8; 6]>,
        sid: Ipv4Addr,
    ) -> Outcome {
        if req.server_id.is_some_and(|s| s != sid) {
            return Outcome::ignored("DECLINE for another server");
        }
        let Some(ip) = req.requested_ip else { return Outcome::ignored("DECLINE without an address") };
        if !self.by_ip.get(&ip).is_some_and(|b| b.key == *key && b.state != State::Declined) {
            return Outcome::ignored("DECLINE of an address this client does not hold");
        }
        let until = now + self.settings.decline_quarantine;
        let m = mac.unwrap_or_default();
        self.bind(ip, *key, m, State::Declined, until);
        let rec =
            LeaseRecord { kind: RecordKind::Decline, ip, expires: self.unix_at(until), mac: m, key: *key };
        Outcome {
            event: Event::Declined,
            reply: None,
            journal: Some(rec),
            reason: "address declined by the client (in use?): quarantined",
            boot: None,
        }
    }

    fn release(&mut self, req: &Request<'_>, key: &ClientKey, sid: Ipv4Addr) -> Outcome {
        if req.server_id.is_some_and(|s| s != sid) {
            return Outcome::ignored("RELEASE for another server");
        }
        let ip = req.ciaddr;
        let Some(b) = self.by_ip.get(&ip).filter(|b| b.key == *key && b.state == State::Leased).copied()
        else {
            return Outcome::ignored("RELEASE of an address this client does not hold");
        };
        self.unbind(ip);
        let rec = LeaseRecord { kind: RecordKind::Release, ip, expires: 0, mac: b.mac, key: *key };
        Outcome {
            event: Event::Released,
            reply: None,
            journal: Some(rec),
            reason: "lease released by the client",
            boot: None,
        }
    }

    fn inform(
        &mut self,
        now: Instant,
        req: &Request<'_>,
        mac: Option<[u8; 6]>,
        sid: Ipv4Addr,
        out: &mut [u8],
    ) -> Outcome {
        if req.ciaddr.is_unspecified() {
            return Outcome::ignored("INFORM without ciaddr");
        }
        self.answer(
            now,
            req,
            MessageType::Ack,
            Ipv4Addr::UNSPECIFIED,
            sid,
            mac,
            out,
            Event::Informed,
            None,
            "INFORM: configuration without a lease",
        )
    }

    fn nak(&mut self, req: &Request<'_>, sid: Ipv4Addr, out: &mut [u8], reason: &'static str) -> Outcome {
        let r = Reply::nak(req, sid, Some(reason.as_bytes()));
        let cap = reply_capacity(req.max_message_size, self.settings.link_cap).min(out.len());
        let Ok(len) = r.emit(&mut out[..cap]) else { return Outcome::ignored("NAK does not fit the buffer") };
        let delivery =
            if req.giaddr.is_unspecified() { Delivery::Broadcast } else { Delivery::Relay(req.giaddr) };
        Outcome {
            event: Event::Naked,
            reply: Some(ReplyPlan {
                len,
                message_type: MessageType::Nak,
                delivery,
                yiaddr: Ipv4Addr::UNSPECIFIED,
                server_id: sid,
            }),
            journal: None,
            reason,
            boot: None,
        }
    }

    /// Builds and emits an OFFER/ACK (server mode) with the network options, the reservation's
    /// hostname and the PXE decision, then records the PXE history after an ACK.
    #[allow(clippy::too_many_arguments)]
    fn answer(
        &mut self,
        now: Instant,
        req: &Request<'_>,
        mt: MessageType,
        yiaddr: Ipv4Addr,
        sid: Ipv4Addr,
        mac: Option<[u8; 6]>,
        out: &mut [u8],
        event: Event,
        journal: Option<LeaseRecord>,
        reason: &'static str,
    ) -> Outcome {
        self.learn_policy(sid);
        let history = self.history_of(mac, now);
        let info = ClientInfo::from_request(req);
        let s = &self.settings;
        let d = decide(&info, self.policy(sid), &history);
        let net = self.pools.get(self.active).map_or(&s.dhcp, |p| &p.cfg);
        let mut r = Reply::answering(req, mt).with_network(net);
        r.server_id = Some(sid);
        r.yiaddr = yiaddr;
        if event == Event::Informed {
            r.ciaddr = req.ciaddr;
            r.lease_time = None;
            r.renewal_time = None;
            r.rebinding_time = None;
        }
        let host = mac.and_then(|m| self.reserved_by_mac.get(&m)).and_then(|&i| s.reservations.get(i));
        r.hostname = host.and_then(|h| h.hostname.as_deref()).map(str::as_bytes);
        d.apply(&mut r, req);
        let cap = reply_capacity(req.max_message_size, s.link_cap).min(out.len());
        let len = match r.emit(&mut out[..cap]) {
            Ok(n) => n,
            Err(_) => return Outcome::ignored("reply does not fit the client's buffer"),
        };
        let boot = (d.kind != DecisionKind::NotPxe).then(|| BootNote::of(&d, &info));
        let next = history.after(&d);
        if mt == MessageType::Ack && event == Event::Acked {
            self.remember(mac, next, now);
        }
        let delivery = delivery(req, yiaddr, mac);
        Outcome {
            event,
            reply: Some(ReplyPlan { len, message_type: mt, delivery, yiaddr, server_id: sid }),
            journal,
            reason,
            boot,
        }
    }

    fn handle_proxy(
        &mut self,
        now: Instant,
        req: &Request<'_>,
        arrival: &Arrival,
        out: &mut [u8],
    ) -> Outcome {
        let Some(mt) = req.message_type else { return Outcome::ignored("plain BOOTP is not served") };
        if !matches!(VendorClass::of(req.vendor_class), VendorClass::Pxe | VendorClass::Http) {
            return Outcome::ignored("ProxyDHCP: not a PXEClient/HTTPClient");
        }
        let sid = self.server_id(arrival);
        if sid.is_unspecified() || sid.is_broadcast() {
            return Outcome::ignored("no local address to answer from on this interface");
        }
        let (reply_type, event, reason) = match (arrival.port, mt) {
            (SERVER_PORT, MessageType::Discover) => {
                (MessageType::Offer, Event::ProxyOffered, "ProxyDHCP offer (boot file only)")
            }
            // A REQUEST naming us that asks for no address is for the ProxyDHCP. One that asks
            // for an address (option 50) belongs to the DHCP server even when it names our
            // address: a site server on this very host shares it, and answering would hand the
            // client an ACK without an address (EDK2 then fails with PXE-E07).
            (SERVER_PORT, MessageType::Request)
                if req.server_id == Some(sid) && req.requested_ip.is_none() =>
            {
                (MessageType::Ack, Event::ProxyAcked, "ProxyDHCP ack on port 67")
            }
            (SERVER_PORT, _) => return Outcome::ignored("ProxyDHCP: message for the DHCP server"),
            (PXE_PORT, MessageType::Request | MessageType::Discover | MessageType::Inform) => {
                (MessageType::Ack, Event::ProxyAcked, "ProxyDHCP boot server ack on port 4011")
            }
            _ => return Outcome::ignored("ProxyDHCP: unexpected message type"),
        };
        let mac = req.mac();
        self.learn_policy(sid);
        let history = self.history_of(mac, now);
        let info = ClientInfo::from_request(req);
        let s = &self.settings;
        let d = decide(&info, self.policy(sid), &history);
        if d.kind == DecisionKind::NotPxe {
            return Outcome::ignored(d.reason);
        }
        let mut r = Reply::answering(req, reply_type);
        r.server_id = Some(sid);
        d.apply(&mut r, req);
        let cap = reply_capacity(req.max_message_size, s.link_cap).min(out.len());
        let Ok(len) = r.emit(&mut out[..cap]) else {
            return Outcome::ignored("reply does not fit the client's buffer");
        };
        let boot = Some(BootNote::of(&d, &info));
        let next = history.after(&d);
        if reply_type == MessageType::Ack {
            self.remember(mac, next, now);
        }
        let delivery = if !req.giaddr.is_unspecified() {
            Delivery::Relay(req.giaddr)
        } else if arrival.port == PXE_PORT && !arrival.src.ip().is_unspecified() {
            Delivery::Source(arrival.src)
        } else if !req.ciaddr.is_unspecified() {
            Delivery::Client(req.ciaddr)
        } else {
            Delivery::Broadcast
        };
        Outcome {
            event,
            reply: Some(ReplyPlan {
                len,
                message_type: reply_type,
                delivery,
                yiaddr: Ipv4Addr::UNSPECIFIED,
                server_id: sid,
            }),
            journal: None,
            reason,
            boot,
        }
    }
}

/// RFC 2131 §4.1: giaddr → the relay; ciaddr → the client; broadcast bit → broadcast; else
/// unicast to yiaddr at chaddr (no ARP possible), or broadcast when there is no MAC.
pub fn delivery(req: &Request<'_>, yiaddr: Ipv4Addr, mac: Option<[u8; 6]>) -> Delivery {
    if !req.giaddr.is_unspecified() {
        Delivery::Relay(req.giaddr)
    } else if !req.ciaddr.is_unspecified() {
        Delivery::Client(req.ciaddr)
    } else if req.broadcast() || yiaddr.is_unspecified() {
        Delivery::Broadcast
    } else {
        match mac {
            Some(mac) => Delivery::Link { ip: yiaddr, mac },
            None => Delivery::Broadcast,
        }
    }
}

#[cfg(test)]
mod tests;
