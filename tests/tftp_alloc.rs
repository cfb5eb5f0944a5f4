//! A counting global allocator proves the steady state of a transfer allocates nothing per block:
//! the real TFTP service on the real event loop (in a thread), a raw UDP client with fixed buffers.

mod counting_alloc;
use counting_alloc::ALLOCS;

use ferroboot::net::EventLoop;
use ferroboot::status::Status;
use ferroboot::tftp::driver::{TftpService, TftpSettings};
use ferroboot::tftp::options::Limits;
use std::net::{SocketAddrV4, UdpSocket};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Fetches `name` with `blksize`/`windowsize`, returning the allocation count seen between
/// block `from` and block `to` (all of them in the steady state), and the bytes received.
fn transfer(port: u16, rrq: &[u8], blksize: usize, window: u16, from: u64, to: u64) -> (u64, u64) {
    let c = UdpSocket::bind("127.0.0.1:0").unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let server = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    c.send_to(rrq, server).unwrap();
    let mut buf = vec![0u8; 4 + blksize];
    let (n, tid) = c.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..2], b"\x00\x06", "expected an OACK, got {:?}", &buf[..n.min(32)]);
    c.send_to(&[0, 4, 0, 0], tid).unwrap();
    let mut idx: u64 = 0;
    let mut bytes: u64 = 0;
    let mut in_window = 0u16;
    let (mut start, mut end) = (0, 0);
    loop {
        let (n, _) = c.recv_from(&mut buf).unwrap();
        let block = u16::from_be_bytes([buf[2], buf[3]]);
        if block != ((idx + 1) as u16) {
            continue; // a resend after a timeout; not expected on loopback
        }
        idx += 1;
        bytes += (n - 4) as u64;
        in_window += 1;
        if idx == from {
            start = ALLOCS.load(Ordering::SeqCst);
        }
        if idx == to {
            end = ALLOCS.load(Ordering::SeqCst);
        }
        let last = n - 4 < blksize;
        if in_window == window || last {
            in_window = 0;
            c.send_to(&[0, 4, buf[2], buf[3]], tid).unwrap();
        }
        if last {
            return (end - start, bytes);
        }
    }
}

#[test]
fn steady_state_transfer_allocates_nothing_per_block() {
    let dir = tempfile::tempdir().unwrap();
    let len: u64 = 40 << 20;
    {
        use std::io::Write;
        let mut f = std::fs::File::create(dir.path().join("big.bin")).unwrap();
        let chunk: Vec<u8> = (0..1 << 20).map(|i: u32| (i * 31) as u8).collect();
        for _ in 0..(len >> 20) {
            f.write_all(&chunk).unwrap();
        }
    }
    let port = UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let root = dir.path().to_path_buf();
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let th = std::thread::spawn(move || {
        let settings = TftpSettings {
            listen: SocketAddrV4::new([127, 0, 0, 1].into(), port),
            root,
            limits: Limits { max_blksize: 1468, ..Limits::default() },
            retries: 5,
            max_sessions: 64,
            device: None,
        };
        let mut ev = EventLoop::new().unwrap();
        ev.add(Box::new(TftpService::new(settings, Rc::new(Status::default())).unwrap())).unwrap();
        ready_tx.send(()).unwrap();
        ev.run(false, || stop2.load(Ordering::Relaxed)).unwrap();
    });
    ready_rx.recv().unwrap();
    let blocks = len / 1468 + 1;
    for (window, rrq) in [
        (1u16, &b"\x00\x01big.bin\x00octet\x00blksize\x001468\x00tsize\x000\x00"[..]),
        (16, &b"\x00\x01big.bin\x00octet\x00blksize\x001468\x00windowsize\x0016\x00"[..]),
    ] {
        // Warm-up transfer: first-use allocations (file table, session slot) happen here.
        let (_, bytes) = transfer(port, rrq, 1468, window, 1, 2);
        assert_eq!(bytes, len);
        let (allocs, bytes) = transfer(port, rrq, 1468, window, 100, blocks - 100);
        assert_eq!(bytes, len);
        assert_eq!(
            allocs,
            0,
            "windowsize {window}: {allocs} allocations during {} steady-state blocks",
            blocks - 200
        );
    }
    stop.store(true, Ordering::Relaxed);
    th.join().unwrap();
}
