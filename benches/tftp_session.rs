//! The sans-IO TFTP session's cost per block: a whole 8 MiB transfer from memory, the client's
//! ACKs fed straight back, at several blksize/windowsize pairs. This is the protocol core's
//! ceiling; the side-by-side comparison with real servers is `benches/tftp_compare.sh`.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ferroboot::tftp::options::{Limits, negotiate};
use ferroboot::tftp::session::{Session, SessionLimits};
use ferroboot::tftp::wire::{MAX_PACKET, OptionWriter, Packet, parse};
use std::hint::black_box;
use std::time::Instant;

fn transfer(file: &[u8], blksize: u64, window: u64, buf: &mut [u8]) -> u64 {
    let mut rrq = [0u8; 96];
    let mut w = OptionWriter::new(&mut rrq, 1).unwrap();
    w.cstr(b"f").unwrap().cstr(b"octet").unwrap();
    w.option(b"blksize", blksize).unwrap().option(b"windowsize", window).unwrap();
    let n = w.len();
    let Ok(Packet::Rrq(req)) = parse(&rrq[..n]) else { unreachable!() };
    let limits = Limits {
        max_blksize: 65464,
        max_windowsize: 1024,
        max_window_bytes: usize::MAX,
        ..Limits::default()
    };
    let neg = negotiate(&req, file.len() as u64, &limits);
    let mut s = Session::new(file, file.len() as u64, &neg, false, SessionLimits { retries: 5 });
    let now = Instant::now();
    let mut bytes = 0u64;
    let mut last_block = [0u8; 2];
    while !s.is_finished() {
        while let Some(n) = s.poll_transmit(now, buf) {
            bytes += n as u64;
            // ACK 0 acknowledges the OACK; otherwise the last DATA block of the window.
            last_block = if buf[1] == 6 { [0, 0] } else { [buf[2], buf[3]] };
        }
        s.handle(now, &[0, 4, last_block[0], last_block[1]]);
    }
    bytes
}

fn bench(c: &mut Criterion) {
    let file: Vec<u8> = (0..8u32 << 20).map(|i| i as u8).collect();
    let mut buf = vec![0u8; MAX_PACKET];
    let mut g = c.benchmark_group("tftp_session_8MiB");
    g.throughput(Throughput::Bytes(file.len() as u64));
    g.sample_size(20);
    for (blksize, window) in [(512u64, 1u64), (1468, 1), (1468, 16), (1468, 64), (8192, 16)] {
        g.bench_with_input(
            BenchmarkId::from_parameter(format!("b{blksize}_w{window}")),
            &(blksize, window),
            |b, &(bs, w)| b.iter(|| black_box(transfer(black_box(&file), bs, w, &mut buf))),
        );
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
