//! The TFTP service on the event loop: the well-known port, plus one ephemeral socket per
//! session (its TID). All protocol decisions are in [`super::session`]; this file moves bytes.
//!
//! Steady state (a transfer in progress) allocates nothing: one shared receive buffer, one shared
//! send buffer, a preallocated session table and timer heap.

use super::fs::{FileTable, OpenFile, PathError, Root};
use super::options::{Limits, negotiate};
use super::session::{Input, Outcome, Session, SessionLimits};
use super::wire::{self, ErrorCode, Mode, Packet};
use crate::lifecycle::{NoLifecycle, Observer};
use crate::net::{Service, sock};
use crate::status::{Counters, ServiceState, Status};
use mio::net::UdpSocket;
use mio::{Interest, Registry, Token};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Instant;

/// Everything the service needs to run.
#[derive(Debug, Clone)]
pub struct TftpSettings {
    pub listen: SocketAddrV4,
    pub root: PathBuf,
    pub limits: Limits,
    pub retries: u8,
    pub max_sessions: usize,
    /// Bind sockets to this interface (SO_BINDTODEVICE).
    pub device: Option<String>,
}

struct Slot {
    generation: u64,
    socket: UdpSocket,
    peer: SocketAddr,
    session: Session<Rc<OpenFile>>,
    path: PathBuf,
    started: Instant,
    /// Deadline of this slot's entry in the timer heap, if it has one.
    timer_at: Option<Instant>,
    writable_wait: bool,
}

pub struct TftpService {
    settings: TftpSettings,
    listener: Option<UdpSocket>,
    root: Root,
    /// Files served from outside the root: (name below the root, real path). See `add_file`.
    extra: Vec<(String, PathBuf)>,
    files: FileTable,
    slots: Vec<Option<Slot>>,
    free: Vec<usize>,
    active: usize,
    timers: BinaryHeap<Reverse<(Instant, usize, u64)>>,
    rbuf: Box<[u8]>,
    sbuf: Box<[u8]>,
    base: usize,
    next_gen: u64,
    status: Rc<Status>,
    /// Send windows with UDP GSO (turned off if the kernel refuses it).
    gso: bool,
    /// Told about every transfer that ends (the node lifecycle).
    observer: Rc<dyn Observer>,
}

impl TftpService {
    /// Binds the listening socket (so a port in use is reported at start-up) and opens the root.
    pub fn new(settings: TftpSettings, status: Rc<Status>) -> io::Result<TftpService> {
        let root = Root::new(&settings.root)?;
        let opts = sock::UdpOpts { reuse_addr: true, recv_buffer: 1 << 20, ..Default::default() };
        let listener = sock::udp(SocketAddr::V4(settings.listen), opts, settings.device.as_deref())?;
        sock::set_pktinfo(&listener)?;
        let n = settings.max_sessions;
        status.tftp.set(ServiceState::Starting);
        Ok(TftpService {
            listener: Some(listener),
            root,
            extra: Vec::new(),
            files: FileTable::default(),
            slots: (0..n).map(|_| None).collect(),
            free: (0..n).rev().collect(),
            active: 0,
            timers: BinaryHeap::with_capacity(2 * n + 16),
            rbuf: vec![0u8; wire::MAX_PACKET].into_boxed_slice(),
            sbuf: vec![0u8; wire::MAX_PACKET + sock::GSO_MAX_BYTES].into_boxed_slice(),
            base: 0,
            next_gen: 1,
            status,
            gso: true,
            observer: Rc::new(NoLifecycle),
            settings,
        })
    }

    /// Who is told about the transfers that end (the node lifecycle; nobody by default).
    pub fn set_observer(&mut self, observer: Rc<dyn Observer>) {
        self.observer = observer;
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// Serves `path` (anywhere on disk) under `name` when the root has no such file: the iPXE
    /// builds from `[ipxe] binaries_dir`, `ferroboot boot`'s images.
    pub fn add_file(&mut self, name: &str, path: PathBuf) {
        self.extra.push((name.trim_start_matches('/').to_string(), path));
    }

    fn extra_file(&self, req_name: &[u8]) -> Option<PathBuf> {
        let name = super::fs::normalize_name(req_name)?;
        self.extra.iter().find(|(n, _)| *n == name).map(|(_, p)| p.clone())
    }

    pub fn active_sessions(&self) -> usize {
        self.active
    }

    fn counters(&self) -> &Counters {
        &self.status.tftp_counters
    }

    fn on_listener_readable(&mut self, registry: &Registry, now: Instant) {
        loop {
            let Some(listener) = self.listener.as_ref() else { return };
            let meta = match sock::recv_pktinfo(listener, &mut self.rbuf) {
                Ok(m) => m,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    log::warn!("tftp: receive failed: {e}");
                    return;
                }
            };
            Counters::inc(&self.counters().packets_in);
            self.on_request(registry, now, meta);
        }
    }

    /// Answers one datagram that arrived on the well-known port.
    fn on_request(&mut self, registry: &Registry, now: Instant, meta: sock::RecvMeta) {
        let peer = SocketAddr::V4(meta.src);
        // The packet borrows rbuf; copy what we need out of it before using self mutably.
        let (req_name, mode, raw_len) = match wire::parse(&self.rbuf[..meta.len]) {
            Ok(Packet::Rrq(r)) => (r.filename.to_vec(), r.mode, meta.len),
            Ok(Packet::Wrq(r)) => {
                log::info!(
                    "tftp: refused write of {:?} from {peer}: read-only server",
                    String::from_utf8_lossy(r.filename)
                );
                self.reply_error(peer, ErrorCode::AccessViolation, "read-only server");
                return;
            }
            Ok(_) => {
                // Stray DATA/ACK/ERROR to port 69 (an old session's packets): no reply.
                Counters::inc(&self.counters().malformed);
                return;
            }
            Err(e) => {
                log::debug!("tftp: dropped malformed datagram from {peer}: {e}");
                Counters::inc(&self.counters().malformed);
                return;
            }
        };
        let name = String::from_utf8_lossy(&req_name).into_owned();
        if !matches!(mode, Mode::Octet | Mode::Netascii) {
            log::info!("tftp: refused {name:?} from {peer}: unsupported mode");
            self.reply_error(peer, ErrorCode::IllegalOperation, "unsupported transfer mode");
            return;
        }
        let Some(slot_idx) = self.free.pop() else {
            log::warn!("tftp: refused {name:?} from {peer}: {} sessions already running", self.active);
            self.reply_error(peer, ErrorCode::NotDefined, "server busy, try again later");
            return;
        };
        let resolved = match self.root.resolve(&req_name) {
            Err(PathError::NotFound) => self.extra_file(&req_name).ok_or(PathError::NotFound),
            other => other,
        };
        let path = match resolved {
            Ok(p) => p,
            Err(e) => {
                self.free.push(slot_idx);
                let (code, msg) = match e {
                    PathError::NotFound => (ErrorCode::FileNotFound, "file not found"),
                    PathError::AccessViolation(m) => (ErrorCode::AccessViolation, m),
                };
                log::info!("tftp: refused {name:?} from {peer}: {msg}");
                self.reply_error(peer, code, msg);
                return;
            }
        };
        let file = match self.files.open(&path) {
            Ok(f) => f,
            Err(e) => {
                self.free.push(slot_idx);
                log::warn!("tftp: cannot open {}: {e}", path.display());
                self.reply_error(peer, ErrorCode::AccessViolation, "cannot open file");
                return;
            }
        };
        // Reparse: the request still sits in rbuf (nothing was received since).
        let Ok(Packet::Rrq(req)) = wire::parse(&self.rbuf[..raw_len]) else { unreachable!("parsed above") };
        let neg = negotiate(&req, file.size, &self.settings.limits);
        let local_ip = match (meta.local, self.settings.listen.ip()) {
            (_, ip) if !ip.is_unspecified() => *ip,
            (Some(l), _) => l,
            (None, _) => Ipv4Addr::UNSPECIFIED,
        };
        let opts = sock::UdpOpts { recv_buffer: 256 << 10, send_buffer: 1 << 20, ..Default::default() };
        let mut socket = match sock::udp(
            SocketAddr::new(IpAddr::V4(local_ip), 0),
            opts,
            self.settings.device.as_deref(),
        ) {
            Ok(s) => s,
            Err(e) => {
                self.free.push(slot_idx);
                log::warn!("tftp: cannot open a session socket: {e}");
                self.reply_error(peer, ErrorCode::NotDefined, "server error");
                return;
            }
        };
        let token = Token(self.base + 1 + slot_idx);
        if let Err(e) = registry.register(&mut socket, token, Interest::READABLE) {
            self.free.push(slot_idx);
            log::warn!("tftp: cannot register a session socket: {e}");
            return;
        }
        let size = file.size;
        let session = Session::new(
            file,
            size,
            &neg,
            mode == Mode::Netascii,
            SessionLimits { retries: self.settings.retries },
        );
        let opts_log: Vec<String> = neg.accepted_names().map(|(n, v)| format!("{n}={v}")).collect();
        log::info!(
            "tftp: RRQ {name:?} from {peer}: {size} bytes, mode {}, options [{}]",
            if mode == Mode::Netascii { "netascii" } else { "octet" },
            opts_log.join(" ")
        );
        let generation = self.next_gen;
        self.next_gen += 1;
        self.slots[slot_idx] = Some(Slot {
            generation,
            socket,
            peer,
            session,
            path,
            started: now,
            timer_at: None,
            writable_wait: false,
        });
        self.active += 1;
        Counters::inc(&self.counters().active);
        self.pump(registry, slot_idx, now);
    }

    /// Sends an ERROR from the well-known port.
    fn reply_error(&mut self, peer: SocketAddr, code: ErrorCode, msg: &str) {
        Counters::inc(&self.counters().refused);
        let n = wire::put_error(&mut self.sbuf, code, msg);
        if let Some(l) = self.listener.as_ref() {
            if l.send_to(&self.sbuf[..n], peer).is_ok() {
                Counters::inc(&self.counters().packets_out);
            }
        }
    }

    fn on_session_event(&mut self, registry: &Registry, idx: usize, event: &mio::event::Event, now: Instant) {
        if event.is_readable() {
            loop {
                let Some(slot) = self.slots[idx].as_mut() else { return };
                let (len, src) = match slot.socket.recv_from(&mut self.rbuf) {
                    Ok(x) => x,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        // ICMP port unreachable surfaces here: the client is gone.
                        log::debug!("tftp: session {idx} receive error: {e}");
                        break;
                    }
                };
                Counters::inc(&self.status.tftp_counters.packets_in);
                if src != slot.peer {
                    // RFC 1350: a packet from another TID gets ERROR 5; the session is unaffected.
                    let n = wire::put_error(&mut self.sbuf, ErrorCode::UnknownTid, "unknown transfer ID");
                    let _ = slot.socket.send_to(&self.sbuf[..n], src);
                    Counters::inc(&self.status.tftp_counters.refused);
                    continue;
                }
                let r = slot.session.handle(now, &self.rbuf[..len]);
                log::trace!("tftp: session {idx} got {:?} -> {r:?}", &self.rbuf[..len.min(4)]);
                match r {
                    Input::Malformed | Input::Unexpected => {
                        Counters::inc(&self.status.tftp_counters.malformed)
                    }
                    Input::Progress | Input::Duplicate | Input::Finished => {}
                }
            }
        }
        if event.is_writable() {
            if let Some(slot) = self.slots[idx].as_mut() {
                if slot.writable_wait {
                    slot.writable_wait = false;
                    let token = Token(self.base + 1 + idx);
                    let _ = registry.reregister(&mut slot.socket, token, Interest::READABLE);
                }
            }
        }
        self.pump(registry, idx, now);
    }

    /// Sends whatever the session has due, then either finishes it or files its next deadline.
    ///
    /// Consecutive full DATA blocks of a window leave in one `sendmsg` with UDP GSO (the kernel
    /// splits them into ordinary datagrams), which roughly halves the server's CPU per block; if
    /// the kernel refuses GSO the service falls back to one `send_to` per block for good.
    fn pump(&mut self, registry: &Registry, idx: usize, now: Instant) {
        let Some(slot) = self.slots[idx].as_mut() else { return };
        let counters = &self.status.tftp_counters;
        let before = slot.session.stats.retransmits;
        let mut send_error = None;
        let seg = 4 + slot.session.blksize();
        while !slot.writable_wait {
            let max_segs = if self.gso { (sock::GSO_MAX_BYTES / seg).min(sock::GSO_MAX_SEGMENTS) } else { 1 };
            // Gather: [0, len) holds `count` full-size DATA packets (the last may be short).
            let (mut len, mut count, mut lone) = (0usize, 0usize, None);
            while count < max_segs.max(1) {
                let Some(n) = slot.session.poll_transmit(now, &mut self.sbuf[len..]) else { break };
                let is_data = self.sbuf[len + 1] == wire::OP_DATA as u8;
                if !is_data {
                    // OACK or ERROR: never part of a batch.
                    lone = Some((len, n));
                    break;
                }
                len += n;
                count += 1;
                if n < seg || max_segs <= 1 {
                    break;
                }
            }
            if count == 0 && lone.is_none() {
                break;
            }
            let mut sends: [(usize, usize, usize); 2] = [(0, len, count), (0, 0, 0)];
            if let Some((at, n)) = lone {
                sends[1] = (at, at + n, 1);
            }
            for (i, &(from, to, k)) in sends.iter().enumerate() {
                if k == 0 {
                    continue;
                }
                let buf = &self.sbuf[from..to];
                let r = if k > 1 {
                    sock::send_gso(&slot.socket, buf, seg as u16, slot.peer)
                } else {
                    slot.socket.send_to(buf, slot.peer)
                };
                match r {
                    Ok(_) => {
                        Counters::add(&counters.packets_out, k as u64);
                        Counters::add(&counters.bytes_out, buf.len() as u64);
                    }
                    Err(e) => {
                        // Nothing of this send left: take back what it held, and what follows.
                        let later: usize = sends[i..].iter().map(|s| s.2).sum();
                        for _ in 0..later {
                            slot.session.unsend();
                        }
                        match e.kind() {
                            io::ErrorKind::WouldBlock => {
                                slot.writable_wait = true;
                                let token = Token(self.base + 1 + idx);
                                let _ = registry.reregister(
                                    &mut slot.socket,
                                    token,
                                    Interest::READABLE | Interest::WRITABLE,
                                );
                            }
                            io::ErrorKind::Interrupted => {}
                            _ if k > 1 => {
                                log::warn!(
                                    "tftp: UDP GSO send failed ({e}); sending one datagram per block from now on"
                                );
                                self.gso = false;
                            }
                            _ => send_error = Some(e),
                        }
                        break;
                    }
                }
            }
            if send_error.is_some() {
                break;
            }
        }
        Counters::add(&counters.retransmits, slot.session.stats.retransmits - before);
        if let Some(e) = send_error {
            log::info!("tftp: send to {} failed: {e}; ending session", slot.peer);
            slot.session.abort(ErrorCode::NotDefined, "send failed");
            let _ = slot.session.poll_transmit(now, &mut self.sbuf);
        }
        if slot.session.is_finished() {
            self.finish(registry, idx, now);
            return;
        }
        if let Some(d) = slot.session.poll_timeout() {
            // Keep at most one heap entry per slot: deadlines only move later in the steady
            // state, and a stale entry is re-filed when it pops.
            if slot.timer_at.is_none_or(|t| d < t) {
                slot.timer_at = Some(d);
                self.timers.push(Reverse((d, idx, slot.generation)));
            }
        }
    }

    fn finish(&mut self, registry: &Registry, idx: usize, now: Instant) {
        let Some(mut slot) = self.slots[idx].take() else { return };
        let _ = registry.deregister(&mut slot.socket);
        let outcome = slot.session.outcome().unwrap_or(Outcome::Aborted);
        let st = slot.session.stats;
        let secs = now.duration_since(slot.started).as_secs_f64();
        let size = slot.session.file_size();
        let name = slot.path.strip_prefix(self.root.path()).unwrap_or(&slot.path).display().to_string();
        if let SocketAddr::V4(peer) = slot.peer {
            use std::os::unix::ffi::OsStrExt;
            let complete = matches!(outcome, Outcome::Completed | Outcome::CompletedUnacked);
            if outcome != Outcome::Probe && self.observer.follows(*peer.ip()) {
                let rel = slot.path.strip_prefix(self.root.path()).unwrap_or(&slot.path);
                let bytes = if complete { size } else { st.bytes_sent };
                self.observer.tftp_served(*peer.ip(), rel.as_os_str().as_bytes(), bytes, complete);
            }
        }
        let c = &self.status.tftp_counters;
        Counters::dec(&c.active);
        match outcome {
            Outcome::Completed | Outcome::CompletedUnacked => {
                Counters::inc(&c.completed);
                log::info!(
                    "tftp: sent {name} to {}: {size} bytes in {:.3} s ({:.1} MB/s), {} packets, {} retransmits{}",
                    slot.peer,
                    secs,
                    size as f64 / secs.max(1e-6) / 1e6,
                    st.packets_sent,
                    st.retransmits,
                    if outcome == Outcome::CompletedUnacked { ", final ACK not seen" } else { "" }
                );
            }
            Outcome::Probe => {
                log::info!(
                    "tftp: size probe of {name} by {} (ERROR 8 after OACK; a new request follows)",
                    slot.peer
                )
            }
            Outcome::TimedOut => {
                Counters::inc(&c.timeouts);
                Counters::inc(&c.failed);
                log::warn!(
                    "tftp: transfer of {name} to {} timed out after {} retries",
                    slot.peer,
                    self.settings.retries
                );
            }
            other => {
                Counters::inc(&c.failed);
                log::warn!("tftp: transfer of {name} to {} ended: {other:?}", slot.peer);
            }
        }
        drop(slot.session);
        self.files.release(&slot.path);
        self.free.push(idx);
        self.active -= 1;
    }

    /// Aborts every session with an ERROR to its client.
    fn abort_all(&mut self, registry: &Registry, now: Instant) {
        for idx in 0..self.slots.len() {
            if let Some(slot) = self.slots[idx].as_mut() {
                slot.session.abort(ErrorCode::NotDefined, "server shutting down");
                slot.writable_wait = false;
                self.pump(registry, idx, now);
            }
        }
    }
}

impl Service for TftpService {
    fn name(&self) -> &'static str {
        "tftp"
    }

    fn register(&mut self, registry: &Registry, base: usize) -> io::Result<()> {
        self.base = base;
        if let Some(l) = self.listener.as_mut() {
            registry.register(l, Token(base), Interest::READABLE)?;
        }
        self.status.tftp.set(ServiceState::Running);
        log::info!(
            "tftp: serving {} on {} (blksize ≤ {}, windowsize ≤ {}, {} sessions max)",
            self.root.path().display(),
            self.local_addr().map(|a| a.to_string()).unwrap_or_default(),
            self.settings.limits.max_blksize,
            self.settings.limits.max_windowsize,
            self.settings.max_sessions
        );
        Ok(())
    }

    fn handle_event(&mut self, registry: &Registry, event: &mio::event::Event, now: Instant) {
        let t = event.token().0 - self.base;
        if t == 0 {
            self.on_listener_readable(registry, now);
        } else if t - 1 < self.slots.len() {
            self.on_session_event(registry, t - 1, event, now);
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.timers.peek().map(|Reverse((t, _, _))| *t)
    }

    fn handle_timeouts(&mut self, registry: &Registry, now: Instant) {
        while let Some(&Reverse((t, idx, generation))) = self.timers.peek() {
            if t > now {
                break;
            }
            self.timers.pop();
            let Some(slot) = self.slots[idx].as_mut() else { continue };
            if slot.generation != generation {
                continue;
            }
            slot.timer_at = None;
            match slot.session.poll_timeout() {
                Some(d) if d <= now => {
                    slot.session.handle_timeout(now);
                    Counters::inc(&self.status.tftp_counters.timeouts);
                    self.pump(registry, idx, now);
                }
                Some(d) => {
                    slot.timer_at = Some(d);
                    self.timers.push(Reverse((d, idx, generation)));
                }
                None => {}
            }
        }
    }

    fn begin_shutdown(&mut self, registry: &Registry, _now: Instant) {
        if let Some(mut l) = self.listener.take() {
            let _ = registry.deregister(&mut l);
        }
        self.status.tftp.set(ServiceState::Stopping);
        if self.active > 0 {
            log::info!("tftp: no new requests; waiting for {} transfer(s) to finish", self.active);
        }
    }

    fn is_idle(&self) -> bool {
        self.active == 0
    }

    fn flush(&mut self, registry: &Registry) {
        if self.active > 0 {
            // Grace period over: tell the remaining clients instead of going silent.
            self.abort_all(registry, Instant::now());
        }
    }
}

/// The blksize cap for an MTU: the largest block whose IPv4 + UDP + TFTP headers fit.
pub fn blksize_for_mtu(mtu: u32) -> u16 {
    let b = mtu.saturating_sub(20 + 8 + 4);
    b.clamp(u32::from(super::options::MIN_BLKSIZE), u32::from(super::options::MAX_BLKSIZE)) as u16
}
