//! Slowloris: 1,000 connections that are idle or trickle a request head byte by byte.
//!
//! The test that CI runs is functional (no timing thresholds): with them open, a 500 MiB download
//! completes, and every one of them is cut off by the head deadline. The speed ratio (loaded vs
//! unloaded, target ≥ 90 %) is a measurement, not a test: run it with
//! `cargo test --release --test http_slowloris -- --ignored --nocapture`.

mod http_support;

use std::io::Write;
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ferroboot::http::HttpLimits;
use http_support::{curl, need, start, write_random_file};

const SIZE: u64 = 500 << 20;

fn download_mbps(url: &str) -> f64 {
    let o = curl(&["-o", "/dev/null", "-w", "%{size_download} %{time_total}", url]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8(o.stdout).unwrap();
    let (size, secs) = out.split_once(' ').unwrap();
    assert_eq!(size.parse::<u64>().unwrap(), SIZE);
    SIZE as f64 / 1e6 / secs.parse::<f64>().unwrap()
}

fn best_of_3(url: &str) -> f64 {
    (0..3).map(|_| download_mbps(url)).fold(0.0, f64::max)
}

/// Opens 500 idle and 500 trickling connections; returns them and the trickler's stop flag.
fn slow_clients(
    addr: std::net::SocketAddr,
) -> (Vec<TcpStream>, Arc<AtomicBool>, std::thread::JoinHandle<Vec<TcpStream>>) {
    let idle: Vec<TcpStream> = (0..500).map(|_| TcpStream::connect(addr).unwrap()).collect();
    let trickle: Vec<TcpStream> = (0..500).map(|_| TcpStream::connect(addr).unwrap()).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let trickler = std::thread::spawn(move || {
        let head = b"GET /boot/big.img HTTP/1.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
        let mut trickle = trickle;
        let mut i = 0;
        while !stop2.load(Ordering::SeqCst) {
            for c in &mut trickle {
                let _ = c.write_all(&head[i % head.len()..][..1]);
            }
            i += 1;
            std::thread::sleep(Duration::from_millis(200));
        }
        trickle
    });
    (idle, stop, trickler)
}

fn count_closed(conns: &mut [TcpStream]) -> usize {
    let mut closed = 0;
    for c in conns.iter_mut() {
        c.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let mut b = [0u8; 1];
        if matches!(std::io::Read::read(c, &mut b), Ok(0) | Err(_)) {
            closed += 1;
        }
    }
    closed
}

#[test]
fn slow_connections_neither_block_a_download_nor_stay_open() {
    if !need("curl", "curl") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    write_random_file(&root.join("big.img"), SIZE);
    let limits = HttpLimits { header_timeout: Duration::from_secs(3), ..HttpLimits::default() };
    let s = start(&root, limits);
    let url = s.url("/boot/big.img");
    let (mut idle, stop, trickler) = slow_clients(s.addr);
    let mbps = download_mbps(&url);
    println!("500 MiB with 1000 slow connections open: {mbps:.0} MB/s");
    stop.store(true, Ordering::SeqCst);
    let mut trickle = trickler.join().unwrap();
    assert_eq!(count_closed(&mut idle), 500, "idle connections are closed by the head deadline");
    assert_eq!(count_closed(&mut trickle), 500, "trickling connections are closed by the head deadline");
}

#[test]
#[ignore = "a measurement: run with --ignored --nocapture"]
fn measure_download_speed_with_1000_slow_connections() {
    if !need("curl", "curl") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    write_random_file(&root.join("big.img"), SIZE);
    // Default limits: the head deadline is 10 s.
    let s = start(&root, HttpLimits::default());
    let url = s.url("/boot/big.img");
    download_mbps(&url); // warm the page cache
    let unloaded = best_of_3(&url);

    // 500 idle connections and 500 that send one byte of a head every 200 ms.
    let (_idle, stop, trickler) = slow_clients(s.addr);
    let loaded = best_of_3(&url);
    stop.store(true, Ordering::SeqCst);
    let trickle = trickler.join().unwrap();
    println!(
        "unloaded {unloaded:.0} MB/s, with 1000 slow connections {loaded:.0} MB/s ({:.0}%)",
        100.0 * loaded / unloaded
    );
    drop(trickle);
}
