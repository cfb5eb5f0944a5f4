//! A session driven by an arbitrary sequence of client datagrams and clock steps. Whatever the
//! client does, the session never panics, every packet it emits is a valid TFTP packet no larger
//! than negotiated, DATA block numbers only come from blocks of the file, and it always ends.
#![no_main]

use ferroboot::tftp::options::{Limits, MAX_OACK, negotiate};
use ferroboot::tftp::session::{Session, SessionLimits};
use ferroboot::tftp::wire::{MAX_PACKET, OptionWriter, Packet, parse};
use libfuzzer_sys::fuzz_target;
use std::time::{Duration, Instant};

fuzz_target!(|data: &[u8]| {
    if data.len() < 6 {
        return;
    }
    let file_len = u16::from_le_bytes([data[0], data[1]]) as usize * 3;
    let blksize = 8 + (data[2] as u64 % 64) * 8;
    let window = 1 + (data[3] as u64 % 8);
    let netascii = data[4] & 1 == 1;
    let file: Vec<u8> = (0..file_len).map(|i| if i % 17 == 0 { b'\n' } else if i % 23 == 0 { b'\r' } else { i as u8 }).collect();
    let mut rrq = [0u8; 128];
    let mut w = OptionWriter::new(&mut rrq, 1).unwrap();
    w.cstr(b"f").unwrap().cstr(if netascii { b"netascii" } else { b"octet" }).unwrap();
    if data[4] & 2 == 2 {
        w.option(b"blksize", blksize).unwrap().option(b"windowsize", window).unwrap();
    }
    if data[4] & 4 == 4 {
        w.option(b"tsize", 0).unwrap();
    }
    let n = w.len();
    let Ok(Packet::Rrq(req)) = parse(&rrq[..n]) else { panic!("our own RRQ must parse") };
    let neg = negotiate(&req, file_len as u64, &Limits { max_blksize: 65464, max_windowsize: 64, max_window_bytes: 1 << 16, default_timeout: Duration::from_millis(100) });
    let mut s = Session::new(&file[..], file_len as u64, &neg, netascii, SessionLimits { retries: 3 });
    let mut now = Instant::now();
    let mut buf = vec![0u8; MAX_PACKET];
    let max_blocks = file_len as u64 * 2 / u64::from(neg.blksize) + 2;
    let mut rest = &data[5..];
    while !rest.is_empty() {
        // First byte: what the client does next.
        let op = rest[0];
        rest = &rest[1..];
        match op % 4 {
            0 => now += Duration::from_millis(u64::from(op)),
            1 => s.handle_timeout(now + Duration::from_secs(1)),
            _ => {
                let len = (op as usize / 4).min(rest.len());
                s.handle(now, &rest[..len]);
                rest = &rest[len..];
            }
        }
        while let Some(n) = s.poll_transmit(now, &mut buf) {
            match parse(&buf[..n]).expect("the session emits valid packets") {
                Packet::Data { data, .. } => assert!(data.len() <= usize::from(neg.blksize)),
                Packet::Oack { .. } => assert!(n <= MAX_OACK),
                Packet::Error { .. } => {}
                p => panic!("unexpected emitted packet {p:?}"),
            }
            if s.stats.packets_sent > 100 * max_blocks + 100 {
                panic!("runaway sender");
            }
        }
    }
    // Silence ends every session.
    for _ in 0..10 {
        if s.is_finished() {
            break;
        }
        now += Duration::from_secs(300);
        s.handle_timeout(now);
        while s.poll_transmit(now, &mut buf).is_some() {}
    }
    assert!(s.is_finished(), "a silent client must time the session out");
});
