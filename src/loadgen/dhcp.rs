//! A sans-IO DHCP client for one simulated PXE/iPXE node: DISCOVER → OFFER(s) → REQUEST → ACK,
//! with the broadcast flag set, retransmission with doubling timeouts, and ProxyDHCP support
//! (address from the site server's offer, boot file from the proxy's).
//!
//! Messages are built and read with the server's own zero-copy code ([`crate::dhcp::wire`],
//! [`crate::dhcp::options`]). The driver calls [`Client::poll_transmit`] after every input,
//! [`Client::handle`] for each reply with this client's xid, [`Client::handle_timeout`] when
//! [`Client::poll_timeout`] passes, until [`Client::outcome`] is no longer `Running`.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use crate::dhcp::options::{OptionWriter, code, ipxe};
use crate::dhcp::wire::{self, BOOTREPLY, BOOTREQUEST, FLAG_BROADCAST, HTYPE_ETHERNET, MessageType, Packet};

/// Who the simulated client is at this stage of the boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// The firmware's PXE ROM (vendor class `PXEClient:Arch:…`, option 93).
    Pxe,
    /// The iPXE binary it chainloaded (same, plus user class `iPXE` and option 175 with HTTP).
    Ipxe,
}

/// Where the address and the boot file come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// One server offers both.
    Server,
    /// A site DHCP server offers the address (yiaddr ≠ 0); a ProxyDHCP offers the boot file
    /// (yiaddr 0, vendor class `PXEClient`).
    Proxy,
}

/// The identity a node presents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    pub mac: [u8; 6],
    /// RFC 4578 architecture (0 BIOS, 7 x64 UEFI, ...).
    pub arch: u16,
    pub uuid: [u8; 16],
}

/// Retransmission settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// The first timeout; each retransmission doubles it.
    pub initial: Duration,
    /// Transmissions per message before giving up.
    pub tries: u32,
    /// In proxy mode, how long to wait for the other kind of offer once one has arrived.
    pub proxy_wait: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing { initial: Duration::from_millis(1000), tries: 5, proxy_wait: Duration::from_millis(500) }
    }
}

/// The result of a completed exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub ip: Ipv4Addr,
    /// Option 54 of the ACK.
    pub server_id: Ipv4Addr,
    /// Boot file (option 67, else `file`), from the ACK/offer, or the proxy's offer.
    pub boot_file: Option<String>,
    /// `siaddr`, else option 66 when it is an address, else the answering server.
    pub next_server: Ipv4Addr,
    /// The ProxyDHCP that gave the boot file (proxy mode).
    pub proxy: Option<Ipv4Addr>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Running,
    Bound(Lease),
    Failed(String),
}

/// What one reply says.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Reply {
    kind: MessageType,
    yiaddr: Ipv4Addr,
    server_id: Option<Ipv4Addr>,
    boot_file: Option<String>,
    next_server: Ipv4Addr,
    pxe_vendor: bool,
}

fn parse_reply(pkt: &[u8], xid: u32, mac: &[u8; 6]) -> Option<Reply> {
    let p = Packet::new_checked(pkt).ok()?;
    p.check_cookie().ok()?;
    if p.op() != BOOTREPLY || p.xid() != xid || p.chaddr().get(..6) != Some(&mac[..]) {
        return None;
    }
    let (mut kind, mut server_id, mut file67, mut tftp66, mut pxe_vendor) = (None, None, None, None, false);
    for opt in p.options() {
        let (c, v) = opt.ok()?;
        match (c, v) {
            (code::MESSAGE_TYPE, [t]) => kind = Some(MessageType::from(*t)),
            (code::SERVER_ID, [a, b, c, d]) => server_id = Some(Ipv4Addr::new(*a, *b, *c, *d)),
            (code::BOOTFILE, f) => file67 = Some(String::from_utf8_lossy(wire::c_str(f)).into_owned()),
            (code::TFTP_SERVER, s) => {
                tftp66 = String::from_utf8_lossy(wire::c_str(s)).parse::<Ipv4Addr>().ok()
            }
            (code::VENDOR_CLASS, v) if v.starts_with(b"PXEClient") => pxe_vendor = true,
            _ => {}
        }
    }
    let file = if p.options().overload() & 1 == 0 { wire::c_str(p.file()) } else { &[][..] };
    let boot_file = file67
        .or_else(|| (!file.is_empty()).then(|| String::from_utf8_lossy(file).into_owned()))
        .filter(|f| !f.is_empty());
    let next_server = Some(p.siaddr())
        .filter(|a| !a.is_unspecified())
        .or(tftp66)
        .or(server_id)
        .unwrap_or(Ipv4Addr::UNSPECIFIED);
    Some(Reply { kind: kind?, yiaddr: p.yiaddr(), server_id, boot_file, next_server, pxe_vendor })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Selecting,
    Requesting,
    Done,
}

/// One node's DHCP exchange.
#[derive(Debug)]
pub struct Client {
    id: Identity,
    profile: Profile,
    mode: Mode,
    timing: Timing,
    xid: u32,
    state: State,
    started: Instant,
    /// A message is due (first send or retransmission).
    pending: bool,
    deadline: Instant,
    /// Transmissions of the current message.
    sent: u32,
    /// Retransmissions over the whole exchange.
    retransmits: u32,
    /// Offers received (all kinds).
    offers: u32,
    address_offer: Option<Reply>,
    boot_offer: Option<(Reply, Ipv4Addr)>,
    outcome: Outcome,
}

impl Client {
    pub fn new(now: Instant, id: Identity, profile: Profile, mode: Mode, timing: Timing, xid: u32) -> Client {
        Client {
            id,
            profile,
            mode,
            timing,
            xid,
            state: State::Selecting,
            started: now,
            pending: true,
            deadline: now,
            sent: 0,
            retransmits: 0,
            offers: 0,
            address_offer: None,
            boot_offer: None,
            outcome: Outcome::Running,
        }
    }

    pub fn xid(&self) -> u32 {
        self.xid
    }
    pub fn retransmits(&self) -> u32 {
        self.retransmits
    }
    pub fn offers(&self) -> u32 {
        self.offers
    }
    pub fn outcome(&self) -> &Outcome {
        &self.outcome
    }

    /// When [`Client::handle_timeout`] wants to run; `None` once done.
    pub fn poll_timeout(&self) -> Option<Instant> {
        (self.state != State::Done).then_some(self.deadline)
    }

    fn fail(&mut self, why: String) {
        self.state = State::Done;
        self.pending = false;
        self.outcome = Outcome::Failed(why);
    }

    fn arm(&mut self, now: Instant) {
        let backoff = self.timing.initial.saturating_mul(1 << self.sent.saturating_sub(1).min(6));
        self.deadline = now + backoff;
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if self.state == State::Done || now < self.deadline {
            return;
        }
        // Proxy mode: one kind of offer is in and the wait for the other has run out.
        if self.state == State::Selecting && self.ready_to_request(true) {
            self.start_requesting(now);
            return;
        }
        if self.sent >= self.timing.tries {
            let what = match self.state {
                State::Selecting if self.mode == Mode::Proxy && self.address_offer.is_some() => {
                    "no ProxyDHCP offer with a boot file"
                }
                State::Selecting if self.mode == Mode::Proxy && self.boot_offer.is_some() => {
                    "ProxyDHCP offer but no address offer"
                }
                State::Selecting => "no DHCPOFFER",
                _ => "no DHCPACK",
            };
            self.fail(format!("{what} after {} transmissions", self.sent));
            return;
        }
        self.pending = true;
        self.deadline = now;
        self.retransmits += 1;
    }

    /// Proxy mode needs both offers; `waited` accepts an address offer that carries a boot file
    /// itself once the proxy wait ran out.
    fn ready_to_request(&self, waited: bool) -> bool {
        match (self.mode, &self.address_offer, &self.boot_offer) {
            (Mode::Server, Some(_), _) => true,
            (Mode::Proxy, Some(_), Some(_)) => true,
            (Mode::Proxy, Some(a), None) => waited && a.boot_file.is_some(),
            _ => false,
        }
    }

    fn start_requesting(&mut self, now: Instant) {
        self.state = State::Requesting;
        self.sent = 0;
        self.pending = true;
        self.deadline = now;
    }

    pub fn handle(&mut self, now: Instant, pkt: &[u8]) {
        if self.state == State::Done {
            return;
        }
        let Some(r) = parse_reply(pkt, self.xid, &self.id.mac) else { return };
        match (self.state, r.kind) {
            (State::Selecting, MessageType::Offer) => {
                self.offers += 1;
                let proxy_offer = r.yiaddr.is_unspecified();
                if proxy_offer {
                    if r.boot_file.is_some() && r.pxe_vendor && self.boot_offer.is_none() {
                        let from = r.server_id.unwrap_or(r.next_server);
                        self.boot_offer = Some((r, from));
                    }
                } else if self.address_offer.is_none() && r.server_id.is_some() {
                    self.address_offer = Some(r);
                }
                if self.ready_to_request(false) {
                    self.start_requesting(now);
                } else if self.mode == Mode::Proxy && self.address_offer.is_some() {
                    // Wait a little for the proxy's offer, as PXE ROMs do.
                    self.deadline = self.deadline.min(now + self.timing.proxy_wait);
                }
            }
            (State::Requesting, MessageType::Ack) => {
                let Some(a) = &self.address_offer else { return };
                if r.server_id.is_some() && r.server_id != a.server_id {
                    return; // another server's ACK for the same xid (not ours to take)
                }
                let server_id = a.server_id.unwrap_or(Ipv4Addr::UNSPECIFIED);
                let (boot_file, next_server, proxy) = match &self.boot_offer {
                    Some((b, from)) if self.mode == Mode::Proxy => {
                        (b.boot_file.clone(), b.next_server, Some(*from))
                    }
                    _ => {
                        let file = r.boot_file.clone().or_else(|| a.boot_file.clone());
                        let next = if r.next_server.is_unspecified() { a.next_server } else { r.next_server };
                        (file, next, None)
                    }
                };
                let ip = if r.yiaddr.is_unspecified() { a.yiaddr } else { r.yiaddr };
                self.state = State::Done;
                self.pending = false;
                self.outcome = Outcome::Bound(Lease { ip, server_id, boot_file, next_server, proxy });
            }
            (State::Requesting, MessageType::Nak) => {
                let Some(a) = &self.address_offer else { return };
                if r.server_id.is_none() || r.server_id == a.server_id {
                    self.fail(format!("DHCPNAK from {}", a.server_id.unwrap_or(Ipv4Addr::UNSPECIFIED)));
                }
            }
            _ => {}
        }
    }

    /// Writes the message that is due into `buf` (at least 576 bytes); returns its length.
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<usize> {
        if !self.pending || self.state == State::Done {
            return None;
        }
        self.pending = false;
        self.sent += 1;
        self.arm(now);
        let n = self.build(now, buf);
        if n.is_none() {
            self.fail("DHCP message does not fit the buffer".into());
        }
        n
    }

    fn build(&self, now: Instant, buf: &mut [u8]) -> Option<usize> {
        buf.get_mut(..wire::HEADER_LEN)?.fill(0);
        let mut p = Packet::new_unchecked(&mut buf[..]);
        p.set_op(BOOTREQUEST);
        p.set_htype(HTYPE_ETHERNET);
        p.set_hlen(6);
        p.set_xid(self.xid);
        p.set_secs(u16::try_from(now.duration_since(self.started).as_secs()).unwrap_or(u16::MAX));
        p.set_flags(FLAG_BROADCAST);
        p.set_chaddr(&self.id.mac).ok()?;
        p.set_magic_cookie();
        let mut w = OptionWriter::new(p.options_area_mut());
        let request = self.state == State::Requesting;
        w.push_u8(code::MESSAGE_TYPE, if request { 3 } else { 1 }).ok()?;
        if let (true, Some(a)) = (request, &self.address_offer) {
            w.push_ip(code::REQUESTED_IP, a.yiaddr).ok()?;
            if let Some(s) = a.server_id {
                w.push_ip(code::SERVER_ID, s).ok()?;
            }
        }
        w.push_u16(code::MAX_MESSAGE_SIZE, 1472).ok()?;
        let mut cid = [1u8; 7];
        cid[1..].copy_from_slice(&self.id.mac);
        w.push(code::CLIENT_ID, &cid).ok()?;
        let params = [1, 3, 6, 12, 15, 28, 43, 60, 66, 67, 93, 97, 175];
        w.push(code::PARAMETER_LIST, &params).ok()?;
        w.push_u16(code::CLIENT_ARCH, self.id.arch).ok()?;
        w.push(code::CLIENT_NDI, &[1, 3, 16]).ok()?;
        let mut uuid = [0u8; 17];
        uuid[1..].copy_from_slice(&self.id.uuid);
        w.push(code::CLIENT_UUID, &uuid).ok()?;
        let mut vc = *b"PXEClient:Arch:00000:UNDI:003016";
        let digits = format!("{:05}", self.id.arch);
        vc[15..20].copy_from_slice(&digits.as_bytes()[..5]);
        w.push(code::VENDOR_CLASS, &vc).ok()?;
        if self.profile == Profile::Ipxe {
            w.push(code::USER_CLASS, b"iPXE").ok()?;
            // Like iPXE: feature flags, HTTP among them, and its version.
            let enc = [ipxe::HTTP, 1, 1, ipxe::PXEEXT, 1, 2, ipxe::VERSION, 3, 1, 21, 1];
            w.push(code::IPXE, &enc).ok()?;
        }
        Some(wire::HEADER_LEN + w.finish().ok()?)
    }
}

#[cfg(test)]
mod tests;
