//! The client against the project's own sans-IO TFTP session (the server core), over a simulated
//! network on a virtual clock, plus hand-made packets for the paths the session never takes.

use super::*;
use crate::tftp::options::{Limits, negotiate};
use crate::tftp::session::{Session, SessionLimits};
use crate::tftp::wire::{OP_DATA, OP_OACK, put_ack, put_data_header, put_error};
use std::collections::VecDeque;

const TID: u16 = 40000;

fn req(blksize: Option<u16>, windowsize: Option<u16>) -> Request {
    Request {
        file: "ipxe.efi".into(),
        blksize,
        windowsize,
        tsize: true,
        timeout: Duration::from_millis(200),
        retries: 8,
    }
}

fn file(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

struct Rng(u64);
impl Rng {
    fn chance(&mut self, percent: u64) -> bool {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % 100 < percent
    }
}

/// Runs one transfer: client ↔ ferroboot's session, dropping `loss` % of datagrams each way,
/// reordering `reorder` %. Returns (bytes received, client).
fn transfer(data: &[u8], r: Request, loss: u64, reorder: u64, seed: u64) -> (Vec<u8>, Client) {
    let mut now = Instant::now();
    let mut rng = Rng(seed | 1);
    let mut c = Client::new(now, r);
    let mut buf = vec![0u8; 70000];
    // The RRQ goes to port 69: the server negotiates and starts a session.
    let (n, dest) = c.poll_transmit(&mut buf).unwrap();
    assert_eq!(dest, Dest::Server);
    let limits = Limits {
        max_blksize: 1468,
        max_windowsize: 64,
        max_window_bytes: 65536,
        default_timeout: Duration::from_millis(300),
    };
    let neg = match wire::parse(&buf[..n]).unwrap() {
        Packet::Rrq(rq) => negotiate(&rq, data.len() as u64, &limits),
        p => panic!("{p:?}"),
    };
    let mut s = Session::new(data, data.len() as u64, &neg, false, SessionLimits { retries: 10 });
    let mut got = Vec::new();
    let mut to_client: VecDeque<Vec<u8>> = VecDeque::new();
    for _ in 0..2_000_000 {
        while let Some(n) = s.poll_transmit(now, &mut buf) {
            if !rng.chance(loss) {
                let d = buf[..n].to_vec();
                if rng.chance(reorder) && !to_client.is_empty() {
                    let last = to_client.len() - 1;
                    to_client.insert(last, d);
                } else {
                    to_client.push_back(d);
                }
            }
        }
        if let Some(d) = to_client.pop_front() {
            c.handle(now, TID, &d, &mut |b| got.extend_from_slice(b));
            while let Some((n, dest)) = c.poll_transmit(&mut buf) {
                assert_eq!(dest, Dest::Tid(TID));
                if !rng.chance(loss) {
                    s.handle(now, &buf[..n]);
                }
            }
            if c.outcome() != &Outcome::Running {
                return (got, c);
            }
        } else {
            // Nothing in flight: advance the virtual clock to the next timer.
            let next = [c.poll_timeout(), s.poll_timeout()].into_iter().flatten().min().unwrap();
            now = now.max(next);
            c.handle_timeout(now);
            s.handle_timeout(now);
            while let Some((n, _)) = c.poll_transmit(&mut buf) {
                if !rng.chance(loss) {
                    s.handle(now, &buf[..n]);
                }
            }
            if c.outcome() != &Outcome::Running {
                return (got, c);
            }
        }
    }
    panic!("transfer did not finish");
}

#[test]
fn windowed_transfer_from_the_real_session() {
    let data = file(1468 * 100 + 7);
    let (got, c) = transfer(&data, req(Some(1468), Some(16)), 0, 0, 1);
    assert_eq!(c.outcome(), &Outcome::Done);
    assert!(got == data);
    assert_eq!(c.negotiated(), (1468, 16));
    assert_eq!(c.tsize(), Some(data.len() as u64));
    assert_eq!(c.retransmits(), 0);
}

#[test]
fn exact_multiple_of_blksize_ends_with_an_empty_block() {
    let data = file(1468 * 32);
    let (got, c) = transfer(&data, req(Some(1468), Some(8)), 0, 0, 2);
    assert_eq!(c.outcome(), &Outcome::Done);
    assert!(got == data);
}

#[test]
fn survives_loss_and_reordering() {
    for seed in 1..6 {
        let data = file(1468 * 300 + 11);
        let (got, c) = transfer(&data, req(Some(1468), Some(16)), 5, 10, seed);
        assert_eq!(c.outcome(), &Outcome::Done, "seed {seed}");
        assert!(got == data, "seed {seed}: bytes differ");
        let (got, c) = transfer(&data, req(Some(1468), None), 5, 0, seed);
        assert_eq!(c.outcome(), &Outcome::Done, "lock-step, seed {seed}");
        assert!(got == data);
    }
}

#[test]
fn block_numbers_roll_over() {
    // 70,000 blocks of 8 bytes: past 65535.
    let data = file(8 * 70_000 + 3);
    let mut r = req(Some(8), Some(64));
    r.timeout = Duration::from_millis(50);
    let (got, c) = transfer(&data, r, 0, 0, 3);
    assert_eq!(c.outcome(), &Outcome::Done);
    assert!(got == data);
}

#[test]
fn rrq_carries_the_options_and_no_windowsize_when_lock_step() {
    let mut c = Client::new(Instant::now(), req(Some(1468), Some(4)));
    let mut buf = [0u8; 600];
    let (n, _) = c.poll_transmit(&mut buf).unwrap();
    let Packet::Rrq(r) = wire::parse(&buf[..n]).unwrap() else { panic!() };
    assert_eq!(r.filename, b"ipxe.efi");
    let opts: Vec<_> = r.options().collect();
    assert_eq!(opts, vec![(&b"blksize"[..], &b"1468"[..]), (b"tsize", b"0"), (b"windowsize", b"4")]);
    let mut c = Client::new(Instant::now(), req(None, Some(1)));
    let (n, _) = c.poll_transmit(&mut buf).unwrap();
    let Packet::Rrq(r) = wire::parse(&buf[..n]).unwrap() else { panic!() };
    assert_eq!(r.options().count(), 1, "only tsize");
}

fn data_pkt(block: u16, payload: &[u8]) -> Vec<u8> {
    let mut b = vec![0u8; 4 + payload.len()];
    put_data_header(&mut b, block);
    b[4..].copy_from_slice(payload);
    b
}

#[test]
fn server_without_options_means_512_lock_step_and_strays_get_error_5() {
    let t = Instant::now();
    let mut c = Client::new(t, req(Some(1468), Some(16)));
    let mut buf = [0u8; 600];
    c.poll_transmit(&mut buf).unwrap();
    let mut got = Vec::new();
    c.handle(t, TID, &data_pkt(1, &[1; 512]), &mut |b| got.extend_from_slice(b));
    assert_eq!(c.negotiated(), (512, 1));
    let (n, d) = c.poll_transmit(&mut buf).unwrap();
    assert_eq!((d, wire::parse(&buf[..n]).unwrap()), (Dest::Tid(TID), Packet::Ack { block: 1 }));
    // A packet from another port: ERROR 5 to it, the transfer goes on.
    c.handle(t, TID + 1, &data_pkt(2, &[2; 512]), &mut |b| got.extend_from_slice(b));
    let (n, d) = c.poll_transmit(&mut buf).unwrap();
    assert_eq!(d, Dest::Stray(TID + 1));
    assert!(matches!(wire::parse(&buf[..n]).unwrap(), Packet::Error { code: ErrorCode::UnknownTid, .. }));
    c.handle(t, TID, &data_pkt(2, &[2; 10]), &mut |b| got.extend_from_slice(b));
    assert_eq!(c.outcome(), &Outcome::Done);
    assert_eq!(got.len(), 522);
    let (n, _) = c.poll_transmit(&mut buf).unwrap();
    assert_eq!(wire::parse(&buf[..n]).unwrap(), Packet::Ack { block: 2 }, "final ACK");
}

#[test]
fn error_oversized_oack_and_tsize_mismatch_fail() {
    let t = Instant::now();
    let mut buf = [0u8; 600];
    let mut c = Client::new(t, req(Some(1468), None));
    c.poll_transmit(&mut buf).unwrap();
    let n = put_error(&mut buf, ErrorCode::FileNotFound, "no such file");
    c.handle(t, TID, &buf[..n], &mut |_| {});
    assert!(matches!(c.outcome(), Outcome::Failed(m) if m.contains("error 1") && m.contains("no such file")));

    let mut c = Client::new(t, req(Some(1468), None));
    c.poll_transmit(&mut buf).unwrap();
    let mut w = OptionWriter::new(&mut buf, OP_OACK).unwrap();
    w.option(b"blksize", 9000).unwrap();
    let n = w.len();
    c.handle(t, TID, &buf[..n], &mut |_| {});
    assert!(matches!(c.outcome(), Outcome::Failed(m) if m.contains("blksize")));

    let mut c = Client::new(t, req(Some(1468), None));
    c.poll_transmit(&mut buf).unwrap();
    let mut w = OptionWriter::new(&mut buf, OP_OACK).unwrap();
    w.option(b"blksize", 512).unwrap().option(b"tsize", 100).unwrap();
    let n = w.len();
    c.handle(t, TID, &buf[..n], &mut |_| {});
    let (n, _) = c.poll_transmit(&mut buf).unwrap();
    assert_eq!(wire::parse(&buf[..n]).unwrap(), Packet::Ack { block: 0 });
    c.handle(t, TID, &data_pkt(1, &[0; 50]), &mut |_| {});
    assert!(matches!(c.outcome(), Outcome::Failed(m) if m.contains("tsize said 100")));
    assert_eq!(OP_DATA, 3);
}

#[test]
fn timeouts_resend_then_give_up() {
    let t = Instant::now();
    let mut r = req(Some(1468), None);
    r.retries = 2;
    let mut c = Client::new(t, r);
    let mut buf = [0u8; 600];
    assert_eq!(c.poll_transmit(&mut buf).unwrap().1, Dest::Server);
    let mut now = t;
    for _ in 0..2 {
        now = c.poll_timeout().unwrap();
        c.handle_timeout(now);
        assert_eq!(c.poll_transmit(&mut buf).unwrap().1, Dest::Server, "RRQ resent");
    }
    c.handle_timeout(c.poll_timeout().unwrap());
    assert!(matches!(c.outcome(), Outcome::Failed(m) if m.contains("no answer to the RRQ")));
    assert_eq!(c.retransmits(), 2);
    let _ = put_ack(&mut buf, 0);
    let _ = now;
}
