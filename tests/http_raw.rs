//! The HTTP service over raw sockets: the iPXE request byte for byte, pipelining, HTTP/1.0,
//! head limits, timeouts (slowloris), the connection cap and graceful shutdown.

mod http_support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use ferroboot::http::HttpLimits;
use http_support::{exchange, parse_responses, start, tree};

const IPXE_GET: &[u8] = include_bytes!("fixtures/http/ipxe-get.txt");

fn ipxe_request(path: &str) -> Vec<u8> {
    String::from_utf8(IPXE_GET.to_vec()).unwrap().replace("/boot.ipxe", path).into_bytes()
}

/// Reads until `n` complete responses (HEAD-free) have arrived.
fn read_responses(s: &mut TcpStream, n: usize) -> Vec<http_support::Resp> {
    let mut data = Vec::new();
    let mut buf = [0u8; 65536];
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(r) = try_parse(&data, n) {
            return r;
        }
        assert!(Instant::now() < deadline, "timed out with {} bytes", data.len());
        let k = s.read(&mut buf).unwrap();
        assert!(k > 0, "closed early after {} bytes: {:?}", data.len(), String::from_utf8_lossy(&data));
        data.extend_from_slice(&buf[..k]);
    }
}

fn try_parse(data: &[u8], n: usize) -> Option<Vec<http_support::Resp>> {
    // Count complete responses by walking heads and Content-Length.
    let mut at = 0;
    for _ in 0..n {
        let end = data[at..].windows(4).position(|w| w == b"\r\n\r\n")? + 4;
        let head = std::str::from_utf8(&data[at..at + end]).ok()?.to_ascii_lowercase();
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .map(|v| v.trim().parse().unwrap())?;
        if data.len() < at + end + len {
            return None;
        }
        at += end + len;
    }
    Some(parse_responses(&data[..at], &[]))
}

#[test]
fn ipxe_request_is_served_with_keep_alive() {
    let t = tree();
    let s = start(&t.root, HttpLimits::default());
    let mut c = TcpStream::connect(s.addr).unwrap();
    c.write_all(&ipxe_request("/boot/nixos/control-plane/bzImage")).unwrap();
    let r = read_responses(&mut c, 1).remove(0);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("connection"), Some("keep-alive"));
    assert_eq!(r.body.len(), 100_000);
    for (name, value) in &r.headers {
        assert!(!value.is_empty(), "empty header value for {name}");
    }
    // Same connection, the second file (what iPXE does for kernel then initrd).
    c.write_all(&ipxe_request("/boot/nixos/control-plane/initrd")).unwrap();
    let r = read_responses(&mut c, 1).remove(0);
    assert_eq!((r.status, r.body.len()), (200, 300_000));
    // The /boot.ipxe path itself is not registered on this branch: a 404 with a body length.
    c.write_all(IPXE_GET).unwrap();
    let r = read_responses(&mut c, 1).remove(0);
    assert_eq!(r.status, 404);
    assert!(r.header("content-length").is_some());
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let t = tree();
    let s = start(&t.root, HttpLimits::default());
    let mut c = TcpStream::connect(s.addr).unwrap();
    let mut reqs = Vec::new();
    reqs.extend_from_slice(b"GET /boot/ipxe/boot.ipxe HTTP/1.1\r\nHost: x\r\n\r\n");
    reqs.extend_from_slice(b"GET /boot/nixos/control-plane/bzImage HTTP/1.1\r\nRange: bytes=0-9\r\n\r\n");
    reqs.extend_from_slice(b"GET /health HTTP/1.1\r\n\r\n");
    reqs.extend_from_slice(b"GET /boot/missing HTTP/1.1\r\n\r\n");
    reqs.extend_from_slice(b"GET /boot/ipxe/snp.efi HTTP/1.1\r\nConnection: close\r\n\r\n");
    // Sent in awkward pieces to exercise partial parsing.
    for chunk in reqs.chunks(7) {
        c.write_all(chunk).unwrap();
    }
    let mut data = Vec::new();
    c.read_to_end(&mut data).unwrap();
    let rs = parse_responses(&data, &[]);
    let got: Vec<(u16, usize)> = rs.iter().map(|r| (r.status, r.body.len())).collect();
    assert_eq!(got, vec![(200, 24), (206, 10), (200, rs[2].body.len()), (404, 14), (200, 11)]);
    assert!(rs[2].body.starts_with(b"{\"status\":\"healthy\""));
    assert_eq!(rs[4].header("connection"), Some("close"));
}

#[test]
fn http10_closes_after_the_response() {
    let t = tree();
    let s = start(&t.root, HttpLimits::default());
    let data = exchange(s.addr, b"GET /boot/ipxe/boot.ipxe HTTP/1.0\r\n\r\n", Duration::from_secs(5));
    let rs = parse_responses(&data, &[]);
    assert_eq!(rs.len(), 1);
    assert_eq!(rs[0].header("connection"), Some("close"));
    assert_eq!(rs[0].body, b"#!ipxe\nchain http://x/y\n");
}

#[test]
fn oversized_heads_get_414_and_431() {
    let t = tree();
    let limits = HttpLimits { max_header_bytes: 1024, ..HttpLimits::default() };
    let s = start(&t.root, limits);
    let long_uri = format!("GET /boot/{} HTTP/1.1\r\n\r\n", "a".repeat(2000));
    let data = exchange(s.addr, long_uri.as_bytes(), Duration::from_secs(5));
    assert!(data.starts_with(b"HTTP/1.1 414 "), "{}", String::from_utf8_lossy(&data));
    let big_head = format!("GET /health HTTP/1.1\r\nX-Big: {}\r\n\r\n", "b".repeat(2000));
    let data = exchange(s.addr, big_head.as_bytes(), Duration::from_secs(5));
    assert!(data.starts_with(b"HTTP/1.1 431 "), "{}", String::from_utf8_lossy(&data));
    let many = format!("GET /health HTTP/1.1\r\n{}\r\n", "X: y\r\n".repeat(40));
    let data = exchange(s.addr, many.as_bytes(), Duration::from_secs(5));
    assert!(data.starts_with(b"HTTP/1.1 431 "), "{}", String::from_utf8_lossy(&data));
    let data = exchange(s.addr, b"GET / HTTP/2.0\r\n\r\n", Duration::from_secs(5));
    assert!(data.starts_with(b"HTTP/1.1 505 "), "{}", String::from_utf8_lossy(&data));
    let data =
        exchange(s.addr, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", Duration::from_secs(5));
    assert!(data.starts_with(b"HTTP/1.1 400 "), "{}", String::from_utf8_lossy(&data));
}

#[test]
fn slow_heads_and_idle_connections_time_out() {
    let t = tree();
    let limits = HttpLimits {
        header_timeout: Duration::from_millis(300),
        keep_alive_timeout: Duration::from_millis(600),
        ..HttpLimits::default()
    };
    let s = start(&t.root, limits);
    // Slowloris: one byte every 100 ms never completes the head within 300 ms.
    let mut c = TcpStream::connect(s.addr).unwrap();
    let started = Instant::now();
    let mut closed = false;
    for b in b"GET /health HTTP/1.1\r\nX-a: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".iter() {
        if c.write_all(&[*b]).is_err() {
            closed = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        c.set_read_timeout(Some(Duration::from_millis(1))).unwrap();
        let mut buf = [0u8; 16];
        if matches!(c.read(&mut buf), Ok(0)) {
            closed = true;
            break;
        }
    }
    let took = started.elapsed();
    assert!(closed, "trickling connection was not closed");
    assert!(took < Duration::from_secs(5), "closed only after {took:?}");
    assert!(took >= Duration::from_millis(250), "closed too early: {took:?}");
    // Idle after a response: closed after the keep-alive timeout, not before.
    let mut c = TcpStream::connect(s.addr).unwrap();
    c.write_all(b"GET /health HTTP/1.1\r\n\r\n").unwrap();
    read_responses(&mut c, 1);
    let idle_from = Instant::now();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(c.read(&mut buf).unwrap(), 0);
    let idle = idle_from.elapsed();
    assert!(idle >= Duration::from_millis(500) && idle < Duration::from_secs(5), "{idle:?}");
    // A connection that never sends anything counts as a slow head.
    let mut c = TcpStream::connect(s.addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let t0 = Instant::now();
    assert_eq!(c.read(&mut buf).unwrap_or(0), 0);
    assert!(t0.elapsed() < Duration::from_secs(5));
}

#[test]
fn connections_over_the_cap_get_503_and_others_are_undisturbed() {
    let t = tree();
    let s = start(&t.root, HttpLimits { max_connections: 4, ..HttpLimits::default() });
    let mut held: Vec<TcpStream> = (0..4).map(|_| TcpStream::connect(s.addr).unwrap()).collect();
    // Make sure all four are accepted (each answers a request).
    for c in &mut held {
        c.write_all(b"GET /health HTTP/1.1\r\n\r\n").unwrap();
        assert_eq!(read_responses(c, 1)[0].status, 200);
    }
    let mut extra = TcpStream::connect(s.addr).unwrap();
    extra.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut data = Vec::new();
    let _ = extra.read_to_end(&mut data);
    assert!(data.starts_with(b"HTTP/1.1 503 "), "{}", String::from_utf8_lossy(&data));
    assert!(String::from_utf8_lossy(&data).contains("Content-Length: 24\r\n"));
    for c in &mut held {
        c.write_all(b"GET /boot/ipxe/boot.ipxe HTTP/1.1\r\n\r\n").unwrap();
        assert_eq!(read_responses(c, 1)[0].status, 200);
    }
    // Closing one frees its slot.
    drop(held.pop());
    std::thread::sleep(Duration::from_millis(200));
    let mut c = TcpStream::connect(s.addr).unwrap();
    c.write_all(b"GET /health HTTP/1.1\r\n\r\n").unwrap();
    assert_eq!(read_responses(&mut c, 1)[0].status, 200);
}

#[test]
fn shutdown_closes_idle_connections_and_finishes_transfers() {
    let t = tree();
    http_support::write_random_file(&t.root.join("big"), 64 << 20);
    let s = start(&t.root, HttpLimits::default());
    let mut idle = TcpStream::connect(s.addr).unwrap();
    idle.write_all(b"GET /health HTTP/1.1\r\n\r\n").unwrap();
    read_responses(&mut idle, 1);
    // A download in flight, read slowly so it is still running at the stop.
    let mut busy = TcpStream::connect(s.addr).unwrap();
    busy.write_all(b"GET /boot/big HTTP/1.1\r\n\r\n").unwrap();
    let mut first = [0u8; 4096];
    let n = busy.read(&mut first).unwrap();
    assert!(n > 0);
    let stopper = std::thread::spawn(move || s.stop());
    idle.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(idle.read(&mut buf).unwrap_or(0), 0, "idle keep-alive connection closed at shutdown");
    let mut total = n;
    let mut big = vec![0u8; 1 << 20];
    loop {
        match busy.read(&mut big) {
            Ok(0) => break,
            Ok(k) => total += k,
            Err(e) => panic!("{e}"),
        }
    }
    let head_len = first.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert_eq!(total - head_len, 64 << 20, "transfer in flight completed before exit");
    stopper.join().unwrap();
}

#[test]
fn request_bodies_are_framed_bounded_and_timed() {
    let t = tree();
    let limits = HttpLimits { header_timeout: Duration::from_millis(300), ..HttpLimits::default() };
    let s = start(&t.root, limits);
    // A complete body is read (and refused by the static tree: 405), the connection kept.
    let mut c = TcpStream::connect(s.addr).unwrap();
    c.write_all(b"POST /boot/nixos/control-plane/bzImage HTTP/1.1\r\nContent-Length: 5\r\n\r\nhelloGET /health HTTP/1.1\r\n\r\n")
        .unwrap();
    let r = read_responses(&mut c, 2);
    assert_eq!((r[0].status, r[1].status), (405, 200));
    assert_eq!(r[0].header("allow"), Some("GET, HEAD"));
    // A body that stalls is held to the head's deadline: closed, no answer.
    let mut c = TcpStream::connect(s.addr).unwrap();
    let started = Instant::now();
    c.write_all(b"POST /health HTTP/1.1\r\nContent-Length: 100\r\n\r\n0123456789").unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = Vec::new();
    let _ = c.read_to_end(&mut buf);
    let took = started.elapsed();
    assert!(buf.is_empty(), "{:?}", String::from_utf8_lossy(&buf));
    assert!(took >= Duration::from_millis(250) && took < Duration::from_secs(3), "closed after {took:?}");
    // Over 16 KiB: 413 at once, without reading the body; chunked: 411. Both close.
    for (head, status) in [
        (&b"POST /health HTTP/1.1\r\nContent-Length: 16385\r\n\r\n"[..], 413),
        (b"POST /health HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 411),
    ] {
        let mut c = TcpStream::connect(s.addr).unwrap();
        c.write_all(head).unwrap();
        let mut all = Vec::new();
        c.read_to_end(&mut all).unwrap();
        let text = String::from_utf8_lossy(&all);
        assert!(text.starts_with(&format!("HTTP/1.1 {status} ")), "{text}");
        assert!(text.contains("Connection: close"), "{text}");
    }
    // A route that takes no POST (/health) answers 405 after reading the body.
    let mut c = TcpStream::connect(s.addr).unwrap();
    c.write_all(b"POST /health HTTP/1.1\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi").unwrap();
    let r = read_responses(&mut c, 1);
    assert_eq!(r[0].status, 405);
}
