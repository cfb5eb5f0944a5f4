//! One read transfer as a sans-IO state machine (the quinn-proto pattern): bytes and time in,
//! bytes and a wake-up time out. The driver owns the socket; tests drive it with a virtual clock.
//!
//! Input: [`Session::handle`] (a datagram from the client's TID) and [`Session::handle_timeout`].
//! Output: [`Session::poll_transmit`] (call until `None`; writes into the caller's buffer) and
//! [`Session::poll_timeout`]. [`Session::outcome`] says when and how it ended.
//!
//! Block indices are `u64` internally and truncated to the 16-bit wire number, so transfers roll
//! over past block 65535 (to 0) without limit. An ACK maps to the unique block inside the
//! in-flight window with the same low 16 bits.

use super::options::Negotiated;
use super::wire::{self, ErrorCode, Packet};
use std::io;
use std::time::{Duration, Instant};

/// Random-access reads of the file being served. `std::fs::File` reads with pread from the page
/// cache; tests use in-memory byte slices.
pub trait ReadAt {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;
}

impl ReadAt for std::fs::File {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        std::os::unix::fs::FileExt::read_at(self, buf, offset)
    }
}

impl ReadAt for [u8] {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let start = usize::try_from(offset).unwrap_or(usize::MAX).min(self.len());
        let n = buf.len().min(self.len() - start);
        buf[..n].copy_from_slice(&self[start..start + n]);
        Ok(n)
    }
}

impl<T: ReadAt + ?Sized> ReadAt for std::rc::Rc<T> {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        (**self).read_at(buf, offset)
    }
}

impl<T: ReadAt + ?Sized> ReadAt for std::sync::Arc<T> {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        (**self).read_at(buf, offset)
    }
}

impl<T: ReadAt + ?Sized> ReadAt for &T {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        (**self).read_at(buf, offset)
    }
}

/// Reads until `buf` is full or the file ends.
fn read_full<F: ReadAt + ?Sized>(f: &F, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read_at(&mut buf[n..], offset + n as u64) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// How a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Every block was acknowledged.
    Completed,
    /// The final block was sent (and retransmitted) but its ACK never arrived. Tolerated: many
    /// clients stop listening after the last block.
    CompletedUnacked,
    /// The client ended option negotiation with ERROR 8 right after our OACK: EDK2's size probe.
    /// It will send a new RRQ from a new port for the real transfer.
    Probe,
    /// The client sent an ERROR packet with this code.
    ClientError(ErrorCode),
    /// No answer after the configured retransmissions.
    TimedOut,
    /// The file could not be read; the client was sent ERROR 0.
    ReadError,
    /// The server aborted the session (shutdown grace period over).
    Aborted,
}

impl Outcome {
    pub fn is_success(self) -> bool {
        matches!(self, Outcome::Completed | Outcome::CompletedUnacked | Outcome::Probe)
    }
}

/// What one input datagram did, for counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// Acknowledged new data (or the OACK).
    Progress,
    /// A duplicate or stale ACK: ignored, and nothing is resent because of it (RFC 1123
    /// "Sorcerer's Apprentice").
    Duplicate,
    /// The session ended because of it (final ACK or client ERROR).
    Finished,
    /// Not a TFTP packet.
    Malformed,
    /// A valid packet that has no meaning here (DATA, RRQ, OACK to a read session).
    Unexpected,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// OACK sent (or due); waiting for ACK 0.
    Oack,
    Data,
    Done(Outcome),
}

/// Netascii conversion state at a block boundary: file offset, and the second byte of a CR LF
/// or CR NUL pair that did not fit in the previous block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct AsciiPos {
    offset: u64,
    carry: Option<u8>,
}

/// Netascii transfers are lock-step (windowsize is declined), so one block is in flight: we keep
/// where it starts (to resend it) and where it ends (to continue after its ACK).
#[derive(Debug)]
struct Netascii {
    scratch: Box<[u8]>,
    start: AsciiPos,
    end: AsciiPos,
}

/// Retransmissions of the final window before a silent client counts as done.
pub const FINAL_BLOCK_RETRIES: u8 = 3;

/// Shortest adaptive retransmission timeout.
pub const MIN_RTO: Duration = Duration::from_millis(25);
/// Consecutive timeouts back off up to this multiple of the configured timeout. Some clients
/// (atftp 0.8) answer a retransmitted window they already have with silence and only resend
/// their lost ACK when *they* time out (5 s): a server that keeps retransmitting every second
/// keeps resetting that timer and the transfer stalls until it gives up. Backing off past the
/// client's timeout lets its ACK through.
pub const BACKOFF_LIMIT: u32 = 8;

/// The retransmission timer. A timeout the client negotiated (RFC 2349) is used exactly.
/// Otherwise it adapts to the measured round trip as TCP does (RFC 6298: SRTT + 4·RTTVAR, no
/// samples from retransmitted blocks per Karn), between [`MIN_RTO`] and the configured default,
/// and doubles on each consecutive timeout, up to [`BACKOFF_LIMIT`] times that default. On a LAN that means a lost
/// block costs tens of milliseconds instead of a second.
#[derive(Debug, Clone, Copy)]
struct Rto {
    fixed: bool,
    max: Duration,
    current: Duration,
    srtt: Option<Duration>,
    rttvar: Duration,
    /// A fresh (never retransmitted) packet being timed: when it left and its block index.
    sample: Option<(Instant, u64)>,
}

impl Rto {
    fn new(timeout: Duration, fixed: bool) -> Rto {
        Rto { fixed, max: timeout, current: timeout, srtt: None, rttvar: Duration::ZERO, sample: None }
    }

    fn on_fresh_send(&mut self, now: Instant, idx: u64) {
        if !self.fixed && self.sample.is_none() {
            self.sample = Some((now, idx));
        }
    }

    fn on_ack(&mut self, now: Instant, acked: u64) {
        let Some((t, idx)) = self.sample else { return };
        if acked < idx {
            return;
        }
        self.sample = None;
        let r = now.saturating_duration_since(t);
        let (srtt, rttvar) = match self.srtt {
            None => (r, r / 2),
            Some(s) => {
                let diff = s.abs_diff(r);
                ((s * 7 + r) / 8, (self.rttvar * 3 + diff) / 4)
            }
        };
        self.srtt = Some(srtt);
        self.rttvar = rttvar;
        self.current = (srtt + rttvar * 4).clamp(MIN_RTO, self.max.max(MIN_RTO));
    }

    fn on_timeout(&mut self) {
        self.sample = None;
        if !self.fixed {
            self.current = (self.current * 2).min(self.max.max(MIN_RTO) * BACKOFF_LIMIT);
        }
    }
}

/// Session parameters that do not come from negotiation.
#[derive(Debug, Clone, Copy)]
pub struct SessionLimits {
    /// Retransmissions of one window (or OACK) before giving up.
    pub retries: u8,
}

/// One read transfer.
#[derive(Debug)]
pub struct Session<F> {
    file: F,
    size: u64,
    blksize: usize,
    windowsize: u64,
    rto: Rto,
    max_retries: u8,
    oack: [u8; super::options::MAX_OACK],
    oack_len: usize,
    netascii: Option<Netascii>,
    phase: Phase,
    oack_due: bool,
    /// Highest block index acknowledged (0: none yet).
    acked: u64,
    /// Next block index to send.
    next: u64,
    /// Highest block index ever sent (a block at or below it is a retransmission).
    highest_sent: u64,
    /// Index of the final (short) block once known.
    last: Option<u64>,
    deadline: Option<Instant>,
    retries: u8,
    pending_error: Option<(ErrorCode, &'static str)>,
    /// The newest ACK (as a block index) for a block before `acked` since the last progress.
    stale_ack: Option<u64>,
    /// Statistics.
    pub stats: SessionStats,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionStats {
    pub packets_sent: u64,
    pub bytes_sent: u64,
    pub retransmits: u64,
    pub timeouts: u64,
    pub duplicates: u64,
    /// Times the client's stale ACKs made us go back (see `handle_timeout`).
    pub rewinds: u64,
}

impl<F: ReadAt> Session<F> {
    /// Starts a transfer of `file` (`size` bytes) with the negotiated parameters.
    pub fn new(file: F, size: u64, neg: &Negotiated, netascii: bool, limits: SessionLimits) -> Session<F> {
        let mut oack = [0u8; super::options::MAX_OACK];
        let oack_len = neg.write_oack(&mut oack);
        let blksize = usize::from(neg.blksize);
        let netascii = netascii.then(|| Netascii {
            scratch: vec![0u8; blksize].into_boxed_slice(),
            start: AsciiPos::default(),
            end: AsciiPos::default(),
        });
        let last = if netascii.is_some() { None } else { Some(size / blksize as u64 + 1) };
        Session {
            file,
            size,
            blksize,
            windowsize: if netascii.is_some() { 1 } else { u64::from(neg.windowsize.max(1)) },
            rto: Rto::new(neg.timeout, neg.timeout_negotiated),
            max_retries: limits.retries,
            oack,
            oack_len,
            netascii,
            phase: if oack_len > 0 { Phase::Oack } else { Phase::Data },
            oack_due: oack_len > 0,
            acked: 0,
            next: 1,
            highest_sent: 0,
            last,
            deadline: None,
            retries: 0,
            pending_error: None,
            stale_ack: None,
            stats: SessionStats::default(),
        }
    }

    /// How the session ended, once it has.
    pub fn outcome(&self) -> Option<Outcome> {
        match self.phase {
            Phase::Done(o) => Some(o),
            _ => None,
        }
    }

    /// True when the session has ended and has nothing left to send.
    pub fn is_finished(&self) -> bool {
        matches!(self.phase, Phase::Done(_)) && self.pending_error.is_none()
    }

    pub fn blksize(&self) -> usize {
        self.blksize
    }

    pub fn file_size(&self) -> u64 {
        self.size
    }

    /// The instant [`Session::handle_timeout`] should be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.phase {
            Phase::Done(_) => None,
            _ => self.deadline,
        }
    }

    /// Handles one datagram from the client's TID.
    pub fn handle(&mut self, now: Instant, datagram: &[u8]) -> Input {
        let pkt = match wire::parse(datagram) {
            Ok(p) => p,
            Err(_) => return Input::Malformed,
        };
        match (self.phase, pkt) {
            (Phase::Done(_), _) => Input::Unexpected,
            (_, Packet::Error { code, .. }) => {
                let probe = self.phase == Phase::Oack && code == ErrorCode::OptionNegotiation;
                self.phase = Phase::Done(if probe { Outcome::Probe } else { Outcome::ClientError(code) });
                Input::Finished
            }
            (Phase::Oack, Packet::Ack { block: 0 }) => {
                self.rto.on_ack(now, 0);
                self.phase = Phase::Data;
                self.oack_due = false;
                self.retries = 0;
                self.deadline = None;
                Input::Progress
            }
            (Phase::Oack, Packet::Ack { .. }) => {
                self.stats.duplicates += 1;
                Input::Duplicate
            }
            (Phase::Data, Packet::Ack { block }) => self.on_ack(now, block),
            _ => Input::Unexpected,
        }
    }

    fn on_ack(&mut self, now: Instant, block: u16) -> Input {
        // The distance from the last acknowledged block, modulo 2^16. Blocks acked+1 ..=
        // highest_sent have been sent (after a rewind, some of them before the current window);
        // anything else is stale or a duplicate.
        let d = u64::from(block.wrapping_sub(self.acked as u16));
        if d == 0 || self.acked + d > self.highest_sent {
            self.stats.duplicates += 1;
            // An ACK for a block before the last acknowledged one: remember it (see
            // `handle_timeout`), resend nothing now.
            let back = u64::from((self.acked as u16).wrapping_sub(block));
            if d != 0 && back > 0 && back < self.acked {
                self.stale_ack = Some(self.acked - back);
            }
            return Input::Duplicate;
        }
        self.stale_ack = None;
        self.acked += d;
        self.retries = 0;
        self.rto.on_ack(now, self.acked);
        // RFC 7440: an ACK inside the window means the client has everything up to it; resume
        // from the block after it.
        self.next = self.acked + 1;
        self.deadline = None;
        if let Some(na) = self.netascii.as_mut() {
            na.start = na.end;
        }
        if Some(self.acked) == self.last {
            self.phase = Phase::Done(Outcome::Completed);
            return Input::Finished;
        }
        Input::Progress
    }

    /// Handles the deadline from [`Session::poll_timeout`]; a call before it is a no-op.
    pub fn handle_timeout(&mut self, now: Instant) {
        match (self.phase, self.deadline) {
            (Phase::Done(_), _) | (_, None) => return,
            (_, Some(d)) if now < d => return,
            _ => {}
        }
        self.stats.timeouts += 1;
        // Once the final block is out, a silent client has usually just left with the file (its
        // final ACK lost): resend a few times for the case where it did not get the block, then
        // end as completed instead of holding the session through every backed-off retry.
        let final_sent = self.phase == Phase::Data && self.last.is_some_and(|l| self.next > l);
        let limit = if final_sent { self.max_retries.min(FINAL_BLOCK_RETRIES) } else { self.max_retries };
        if self.retries >= limit {
            self.phase = Phase::Done(if final_sent { Outcome::CompletedUnacked } else { Outcome::TimedOut });
            self.deadline = None;
            return;
        }
        self.retries += 1;
        self.rto.on_timeout();
        match self.phase {
            Phase::Oack => self.oack_due = true,
            Phase::Data => {
                // A client that keeps acknowledging an older block after we went silent has
                // lost track (atftp 0.8 under reordering acknowledges a block it rejected and
                // then waits for the one before it): go back to what it says it has. A correct
                // client never does this, so it only costs a resend of a few blocks when an old
                // ACK was merely delayed. Netascii is lock-step and keeps no older positions.
                if let Some(x) = self.stale_ack.take() {
                    if self.netascii.is_none() && x < self.acked {
                        self.acked = x;
                        self.stats.rewinds += 1;
                    }
                }
                self.next = self.acked + 1;
            }
            Phase::Done(_) => {}
        }
        // Re-armed when the resend goes out; this guards against a driver that cannot send.
        self.deadline = Some(now + self.rto.current);
    }

    /// The current retransmission timeout.
    pub fn rto(&self) -> Duration {
        self.rto.current
    }

    /// Aborts the session: the client is sent ERROR `code`.
    pub fn abort(&mut self, code: ErrorCode, message: &'static str) {
        if !matches!(self.phase, Phase::Done(_)) {
            self.phase = Phase::Done(Outcome::Aborted);
            self.pending_error = Some((code, message));
        }
    }

    /// Writes the next datagram to send into `buf` (at least `4 + blksize` bytes) and returns its
    /// length, or `None` when nothing is due now.
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<usize> {
        match self.phase {
            Phase::Done(_) => {
                let (code, msg) = self.pending_error.take()?;
                Some(wire::put_error(buf, code, msg))
            }
            Phase::Oack => {
                if !self.oack_due {
                    return None;
                }
                self.oack_due = false;
                buf[..self.oack_len].copy_from_slice(&self.oack[..self.oack_len]);
                let retransmit = self.retries > 0;
                if !retransmit {
                    self.rto.on_fresh_send(now, 0);
                }
                self.sent(now, self.oack_len, retransmit);
                Some(self.oack_len)
            }
            Phase::Data => {
                if self.next > self.acked + self.windowsize || self.last.is_some_and(|l| self.next > l) {
                    return None;
                }
                let idx = self.next;
                let len = match self.fill_block(idx, &mut buf[4..4 + self.blksize]) {
                    Ok(n) => n,
                    Err(_) => {
                        self.phase = Phase::Done(Outcome::ReadError);
                        self.deadline = None;
                        return Some(wire::put_error(buf, ErrorCode::NotDefined, "read error"));
                    }
                };
                wire::put_data_header(buf, idx as u16);
                if len < self.blksize {
                    self.last = Some(idx);
                }
                self.next = idx + 1;
                let retransmit = idx <= self.highest_sent;
                if retransmit {
                    // Karn: a resent block's ACK says nothing about the round trip.
                    self.rto.sample = None;
                } else {
                    self.highest_sent = idx;
                    self.rto.on_fresh_send(now, idx);
                }
                self.sent(now, 4 + len, retransmit);
                Some(4 + len)
            }
        }
    }

    /// Undoes the last [`Session::poll_transmit`] of a DATA block because the driver could not send
    /// it (socket buffer full); it will be produced again by the next call.
    pub fn unsend(&mut self) {
        if self.phase == Phase::Data && self.next > self.acked + 1 {
            self.next -= 1;
            if self.highest_sent == self.next {
                self.highest_sent -= 1;
                if self.rto.sample.is_some_and(|(_, i)| i == self.next) {
                    self.rto.sample = None;
                }
            }
            self.stats.packets_sent = self.stats.packets_sent.saturating_sub(1);
        } else if self.phase == Phase::Oack {
            self.oack_due = true;
        }
    }

    fn sent(&mut self, now: Instant, len: usize, retransmit: bool) {
        self.stats.packets_sent += 1;
        self.stats.bytes_sent += len as u64;
        if retransmit {
            self.stats.retransmits += 1;
        }
        self.deadline = Some(now + self.rto.current);
    }

    fn fill_block(&mut self, idx: u64, out: &mut [u8]) -> io::Result<usize> {
        match self.netascii.as_mut() {
            None => {
                let offset = (idx - 1) * self.blksize as u64;
                let want = self.size.saturating_sub(offset).min(self.blksize as u64) as usize;
                // A file that shrank under us ends the transfer early with a short block.
                read_full(&self.file, &mut out[..want], offset)
            }
            Some(na) => {
                let (n, end) = netascii_block(&self.file, &mut na.scratch, na.start, out)?;
                na.end = end;
                Ok(n)
            }
        }
    }
}

/// Produces one netascii block starting at `pos`: LF becomes CR LF, CR becomes CR NUL.
fn netascii_block<F: ReadAt + ?Sized>(
    file: &F,
    scratch: &mut [u8],
    pos: AsciiPos,
    out: &mut [u8],
) -> io::Result<(usize, AsciiPos)> {
    let mut n = 0;
    let mut offset = pos.offset;
    if let Some(c) = pos.carry {
        out[0] = c;
        n = 1;
    }
    while n < out.len() {
        // Each raw byte expands to at most two, so reading (room) bytes never overshoots by much;
        // bytes read but not consumed are simply read again next time.
        let room = out.len() - n;
        let got = read_full(file, &mut scratch[..room], offset)?;
        if got == 0 {
            return Ok((n, AsciiPos { offset, carry: None }));
        }
        for &b in &scratch[..got] {
            let pair = match b {
                b'\n' => Some(b'\n'),
                b'\r' => Some(0),
                _ => None,
            };
            let first = if pair.is_some() { b'\r' } else { b };
            out[n] = first;
            n += 1;
            offset += 1;
            if let Some(second) = pair {
                if n == out.len() {
                    return Ok((n, AsciiPos { offset, carry: Some(second) }));
                }
                out[n] = second;
                n += 1;
            }
            if n == out.len() {
                return Ok((n, AsciiPos { offset, carry: None }));
            }
        }
    }
    Ok((n, AsciiPos { offset, carry: None }))
}

#[cfg(test)]
mod tests;
