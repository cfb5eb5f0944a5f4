//! A sans-IO TFTP read client (RFC 1350, options RFC 2347/2348/2349/7440): RRQ with blksize,
//! tsize and windowsize, OACK → ACK 0, windowed receive (one ACK per window, the last in-order
//! block ACKed on a gap or duplicate), block-number rollover, retransmission on timeout, and
//! ERROR 5 to packets from a foreign TID. Packets are read and built with
//! [`crate::tftp::wire`].

use std::time::{Duration, Instant};

use crate::tftp::wire::{self, ErrorCode, OP_RRQ, OptionWriter, Packet};

/// What to ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub file: String,
    /// RFC 2348 blksize to request (`None`: no option, 512).
    pub blksize: Option<u16>,
    /// RFC 7440 windowsize to request (`None` or 1: lock-step).
    pub windowsize: Option<u16>,
    /// Ask for RFC 2349 tsize (the size is then checked at the end).
    pub tsize: bool,
    /// Retransmission timeout.
    pub timeout: Duration,
    /// Consecutive timeouts before giving up.
    pub retries: u32,
}

/// Where a datagram from [`Client::poll_transmit`] goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dest {
    /// The server's request port (69).
    Server,
    /// The transfer's port (the TID the server chose).
    Tid(u16),
    /// A stray sender (ERROR 5 "unknown transfer ID").
    Stray(u16),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Running,
    Done,
    Failed(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Requesting,
    Receiving,
    Finished,
}

/// One download.
#[derive(Debug)]
pub struct Client {
    req: Request,
    state: State,
    tid: Option<u16>,
    blksize: usize,
    window: u16,
    /// Blocks received in order (the next wanted is `received + 1`, on the wire mod 65536).
    received: u64,
    in_window: u16,
    bytes: u64,
    tsize: Option<u64>,
    send_rrq: bool,
    send_ack: bool,
    stray: Option<u16>,
    /// A gap or duplicate was already answered with an ACK since the last in-order block.
    gap_acked: bool,
    deadline: Instant,
    timeouts: u32,
    retransmits: u32,
    oack: bool,
    outcome: Outcome,
}

impl Client {
    pub fn new(now: Instant, req: Request) -> Client {
        Client {
            state: State::Requesting,
            tid: None,
            blksize: 512,
            window: 1,
            received: 0,
            in_window: 0,
            bytes: 0,
            tsize: None,
            send_rrq: true,
            send_ack: false,
            stray: None,
            gap_acked: false,
            deadline: now + req.timeout,
            timeouts: 0,
            retransmits: 0,
            oack: false,
            outcome: Outcome::Running,
            req,
        }
    }

    pub fn outcome(&self) -> &Outcome {
        &self.outcome
    }
    pub fn bytes(&self) -> u64 {
        self.bytes
    }
    /// The size the server announced (tsize), if any.
    pub fn tsize(&self) -> Option<u64> {
        self.tsize
    }
    /// Our retransmissions (RRQ or ACK resent after a timeout).
    pub fn retransmits(&self) -> u32 {
        self.retransmits
    }
    /// The negotiated (blksize, windowsize).
    pub fn negotiated(&self) -> (usize, u16) {
        (self.blksize, self.window)
    }
    pub fn got_oack(&self) -> bool {
        self.oack
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        (self.state != State::Finished).then_some(self.deadline)
    }

    fn fail(&mut self, why: String) {
        self.state = State::Finished;
        self.outcome = Outcome::Failed(why);
        self.send_ack = false;
        self.send_rrq = false;
    }

    fn ack_last_good(&mut self) {
        self.send_ack = true;
        self.in_window = 0;
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if self.state == State::Finished || now < self.deadline {
            return;
        }
        if self.timeouts >= self.req.retries {
            let what =
                if self.state == State::Requesting { "no answer to the RRQ" } else { "transfer stalled" };
            self.fail(format!("{what}: {} timeouts at block {}", self.timeouts + 1, self.received));
            return;
        }
        self.timeouts += 1;
        self.retransmits += 1;
        self.gap_acked = false;
        match self.state {
            State::Requesting => self.send_rrq = true,
            _ => self.ack_last_good(),
        }
        self.deadline = now + self.req.timeout;
    }

    /// Handles one datagram from the server's address, source port `port`; in-order file bytes
    /// go to `sink`.
    pub fn handle(&mut self, now: Instant, port: u16, pkt: &[u8], sink: &mut dyn FnMut(&[u8])) {
        if self.state == State::Finished {
            return;
        }
        if self.tid.is_some_and(|t| t != port) {
            self.stray = Some(port);
            return;
        }
        let Ok(p) = wire::parse(pkt) else { return };
        match p {
            Packet::Oack { options } if self.state == State::Requesting => {
                self.tid = Some(port);
                self.oack = true;
                for (name, value) in options {
                    let v = wire::parse_decimal(value);
                    if name.eq_ignore_ascii_case(b"blksize") {
                        match v {
                            Some(b @ 8..=65464) if b <= u64::from(self.req.blksize.unwrap_or(512)) => {
                                self.blksize = b as usize
                            }
                            _ => return self.fail(format!("OACK blksize {:?} not acceptable", v)),
                        }
                    } else if name.eq_ignore_ascii_case(b"windowsize") {
                        match v {
                            Some(w @ 1..=65535) if w <= u64::from(self.req.windowsize.unwrap_or(1)) => {
                                self.window = w as u16
                            }
                            _ => return self.fail(format!("OACK windowsize {:?} not acceptable", v)),
                        }
                    } else if name.eq_ignore_ascii_case(b"tsize") {
                        self.tsize = v;
                    }
                }
                self.state = State::Receiving;
                self.deadline = now + self.req.timeout;
                self.timeouts = 0;
                self.ack_last_good();
            }
            Packet::Oack { .. } if self.received == 0 => self.ack_last_good(), // our ACK 0 was lost
            Packet::Data { block, data } => {
                if self.state == State::Requesting {
                    // No OACK: the server ignored every option (RFC 2347 §4): 512 × 1.
                    self.tid = Some(port);
                    self.state = State::Receiving;
                }
                if self.state != State::Receiving {
                    return;
                }
                if data.len() > self.blksize {
                    return self.fail(format!(
                        "block {block} of {} bytes > blksize {}",
                        data.len(),
                        self.blksize
                    ));
                }
                if block != (self.received + 1) as u16 {
                    if !self.gap_acked {
                        self.gap_acked = true;
                        self.ack_last_good();
                    }
                    return;
                }
                sink(data);
                self.received += 1;
                self.bytes += data.len() as u64;
                self.gap_acked = false;
                self.timeouts = 0;
                self.deadline = now + self.req.timeout;
                self.in_window += 1;
                if data.len() < self.blksize {
                    self.send_ack = true;
                    self.state = State::Finished;
                    self.outcome = match self.tsize {
                        Some(t) if t != self.bytes => {
                            Outcome::Failed(format!("received {} bytes, tsize said {t}", self.bytes))
                        }
                        _ => Outcome::Done,
                    };
                } else if self.in_window >= self.window {
                    self.ack_last_good();
                }
            }
            Packet::Error { code, message } => {
                let m = String::from_utf8_lossy(message);
                self.fail(format!("TFTP error {} from server: {m}", code.as_u16()));
            }
            _ => {}
        }
    }

    /// The next datagram to send, written into `buf` (at least 516 bytes + the file name).
    pub fn poll_transmit(&mut self, buf: &mut [u8]) -> Option<(usize, Dest)> {
        if let Some(port) = self.stray.take() {
            return Some((
                wire::put_error(buf, ErrorCode::UnknownTid, "unknown transfer ID"),
                Dest::Stray(port),
            ));
        }
        if self.send_rrq {
            self.send_rrq = false;
            return match self.build_rrq(buf) {
                Some(n) => Some((n, Dest::Server)),
                None => {
                    self.fail("file name too long for an RRQ".into());
                    None
                }
            };
        }
        if self.send_ack {
            self.send_ack = false;
            let tid = self.tid?;
            return Some((wire::put_ack(buf, self.received as u16), Dest::Tid(tid)));
        }
        None
    }

    fn build_rrq(&self, buf: &mut [u8]) -> Option<usize> {
        let mut w = OptionWriter::new(buf, OP_RRQ).ok()?;
        w.cstr(self.req.file.as_bytes()).ok()?.cstr(b"octet").ok()?;
        if let Some(b) = self.req.blksize {
            w.option(b"blksize", u64::from(b)).ok()?;
        }
        if self.req.tsize {
            w.option(b"tsize", 0).ok()?;
        }
        if let Some(ws) = self.req.windowsize.filter(|&w| w > 1) {
            w.option(b"windowsize", u64::from(ws)).ok()?;
        }
        Some(w.len())
    }
}

#[cfg(test)]
mod tests;
