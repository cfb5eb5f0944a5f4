//! A lossy UDP relay for TFTP: drops, duplicates and reorders datagrams between a client and the
//! server, in both directions. Used where the kernel has no `tc netem` (these CI machines' kernel
//! is built without CONFIG_NET_SCH_NETEM); the packets are real, only the impairment is ours.
//!
//! The client talks to the relay's one port; the relay forwards requests (RRQ/WRQ) to the
//! server's well-known port and everything else to the server's current TID, and answers the
//! client from that same one port (clients take the first reply's port as the server TID).

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Clone, Copy)]
pub struct Model {
    pub loss_pct: u64,
    pub dup_pct: u64,
    pub reorder_pct: u64,
}

#[derive(Debug, Default)]
pub struct Stats {
    pub forwarded: AtomicU64,
    pub dropped: AtomicU64,
    pub duplicated: AtomicU64,
    pub reordered: AtomicU64,
}

/// The last datagrams seen: (to_client, opcode, block, what happened to it).
pub type Trace = Arc<Mutex<std::collections::VecDeque<(bool, u8, u16, &'static str)>>>;

pub struct Relay {
    pub addr: SocketAddr,
    /// The last datagrams seen, for failure reports: (to_client, opcode, block, action).
    pub trace: Trace,
    pub stats: Arc<Stats>,
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

struct Impairer {
    to_client: bool,
    trace: Trace,
    model: Model,
    rng: u64,
    held: Option<(Vec<u8>, SocketAddr)>,
    stats: Arc<Stats>,
}

impl Impairer {
    fn roll(&mut self, pct: u64) -> bool {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng % 100 < pct
    }

    fn note(&self, pkt: &[u8], what: &'static str) {
        let mut t = self.trace.lock().unwrap();
        if t.len() >= 80 {
            t.pop_front();
        }
        let block = if pkt.len() >= 4 { u16::from_be_bytes([pkt[2], pkt[3]]) } else { 0 };
        t.push_back((self.to_client, pkt.get(1).copied().unwrap_or(0), block, what));
    }

    fn send(&mut self, sock: &UdpSocket, pkt: &[u8], to: SocketAddr) {
        if self.roll(self.model.loss_pct) {
            self.note(pkt, "dropped");
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if self.held.is_none() && self.roll(self.model.reorder_pct) {
            // Hold this one back; it goes out after the next datagram (or after a short pause).
            self.held = Some((pkt.to_vec(), to));
            self.note(pkt, "held");
            self.stats.reordered.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let _ = sock.send_to(pkt, to);
        self.note(pkt, "sent");
        self.stats.forwarded.fetch_add(1, Ordering::Relaxed);
        if self.roll(self.model.dup_pct) {
            let _ = sock.send_to(pkt, to);
            self.note(pkt, "sent twice");
            self.stats.duplicated.fetch_add(1, Ordering::Relaxed);
        }
        self.flush(sock);
    }

    fn flush(&mut self, sock: &UdpSocket) {
        if let Some((p, to)) = self.held.take() {
            let _ = sock.send_to(&p, to);
            self.note(&p, "released");
        }
    }
}

impl Relay {
    pub fn start(server: SocketAddr, model: Model, seed: u64) -> Relay {
        let down = UdpSocket::bind("127.0.0.1:0").unwrap();
        let up = UdpSocket::bind("127.0.0.1:0").unwrap();
        for s in [&down, &up] {
            s.set_read_timeout(Some(Duration::from_millis(3))).unwrap();
        }
        let addr = down.local_addr().unwrap();
        let client: Arc<Mutex<Option<SocketAddr>>> = Arc::default();
        let tid: Arc<Mutex<Option<SocketAddr>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(Stats::default());
        let trace: Trace = Arc::default();
        let mut threads = Vec::new();
        {
            // client -> server
            let (down, up) = (down.try_clone().unwrap(), up.try_clone().unwrap());
            let (client, tid, stop) = (client.clone(), tid.clone(), stop.clone());
            let mut imp = Impairer {
                to_client: false,
                trace: trace.clone(),
                model,
                rng: seed | 1,
                held: None,
                stats: stats.clone(),
            };
            threads.push(std::thread::spawn(move || {
                let mut buf = vec![0u8; 70_000];
                while !stop.load(Ordering::Relaxed) {
                    let Ok((n, from)) = down.recv_from(&mut buf) else {
                        imp.flush(&up);
                        continue;
                    };
                    *client.lock().unwrap() = Some(from);
                    let is_request = n >= 2 && buf[0] == 0 && (buf[1] == 1 || buf[1] == 2);
                    if is_request {
                        *tid.lock().unwrap() = None;
                        let _ = up.send_to(&buf[..n], server);
                        continue;
                    }
                    let to = *tid.lock().unwrap();
                    if let Some(to) = to {
                        imp.send(&up, &buf[..n], to);
                    }
                }
            }));
        }
        {
            // server -> client
            let (down, up) = (down, up);
            let (client, tid, stop) = (client, tid, stop.clone());
            let mut imp = Impairer {
                to_client: true,
                trace: trace.clone(),
                model,
                rng: (seed ^ 0x9e37_79b9) | 1,
                held: None,
                stats: stats.clone(),
            };
            threads.push(std::thread::spawn(move || {
                let mut buf = vec![0u8; 70_000];
                while !stop.load(Ordering::Relaxed) {
                    let Ok((n, from)) = up.recv_from(&mut buf) else {
                        imp.flush(&down);
                        continue;
                    };
                    tid.lock().unwrap().get_or_insert(from);
                    let to = *client.lock().unwrap();
                    if let Some(to) = to {
                        imp.send(&down, &buf[..n], to);
                    }
                }
            }));
        }
        Relay { addr, stats, stop, threads, trace }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}
