//! Slowloris proof: 1,000 connections that are idle or trickle a request head byte by byte do
//! not slow a 500 MiB download below 90% of its unloaded speed, and are cut off by the head
//! deadline. Timing-based, so each speed is the best of three runs.

mod http_support;

use std::io::Write;
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

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

#[test]
fn thousand_slow_connections_do_not_slow_a_download() {
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
    let mut idle: Vec<TcpStream> = (0..500).map(|_| TcpStream::connect(s.addr).unwrap()).collect();
    let trickle: Vec<TcpStream> = (0..500).map(|_| TcpStream::connect(s.addr).unwrap()).collect();
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
    let loaded = best_of_3(&url);
    stop.store(true, Ordering::SeqCst);
    let trickle = trickler.join().unwrap();
    println!(
        "unloaded {unloaded:.0} MB/s, with 1000 slow connections {loaded:.0} MB/s ({:.0}%)",
        100.0 * loaded / unloaded
    );
    assert!(loaded >= 0.9 * unloaded, "download slowed to {loaded:.0} MB/s from {unloaded:.0} MB/s");

    // The slow ones are still connected (within their deadline) but get nothing; then they are cut.
    let t0 = Instant::now();
    let mut closed = 0;
    for c in idle.iter_mut() {
        c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut b = [0u8; 1];
        if matches!(std::io::Read::read(c, &mut b), Ok(0) | Err(_)) {
            closed += 1;
        }
    }
    assert_eq!(closed, 500, "idle connections closed by the head deadline");
    assert!(t0.elapsed() < Duration::from_secs(12));
    drop(trickle);
}
