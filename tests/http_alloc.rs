//! Proof that the steady state allocates nothing: a counting global allocator, the service on an
//! in-process event loop, and a raw `TcpStream` client with fixed buffers. After warm-up (which
//! allocates each connection slot's buffers once), N more requests must not allocate at all:
//! keep-alive and fresh connections, full files, ranges (single and multipart), HEAD, 304, 404,
//! 416, `/health`, iPXE builds served from outside the root and the iPXE script routes, with a write budget small enough that large bodies go through the
//! fairness queue.

mod counting_alloc;
use counting_alloc::ALLOCS;

mod http_support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::Ordering;

use ferroboot::http::HttpLimits;

/// Reads one response into `buf` (fixed), returns (status, body length). No allocation.
fn one_response(c: &mut TcpStream, buf: &mut [u8], head_only: bool) -> (u16, usize) {
    let mut have = 0;
    loop {
        let n = c.read(&mut buf[have..]).unwrap();
        assert!(n > 0, "connection closed");
        have += n;
        if let Some(end) = buf[..have].windows(4).position(|w| w == b"\r\n\r\n") {
            let head = &buf[..end];
            let status = parse_num(&head[9..12]);
            let cl = find_content_length(head);
            let want = end + 4 + if head_only || status == 304 { 0 } else { cl };
            while have < want {
                let n = c.read(&mut buf[have..want]).unwrap();
                assert!(n > 0);
                have += n;
            }
            assert_eq!(have, want, "extra bytes after the response");
            return (status as u16, want - end - 4);
        }
    }
}

fn parse_num(s: &[u8]) -> usize {
    s.iter().take_while(|b| b.is_ascii_digit()).fold(0, |n, &b| n * 10 + usize::from(b - b'0'))
}

fn find_content_length(head: &[u8]) -> usize {
    let key = b"Content-Length: ";
    let at = head.windows(key.len()).position(|w| w == key).expect("Content-Length") + key.len();
    parse_num(&head[at..])
}

const REQS: &[(&[u8], u16, usize, bool)] = &[
    (b"GET /boot/nixos/control-plane/bzImage HTTP/1.1\r\nHost: x\r\n\r\n", 200, 100_000, false),
    (b"GET /boot/nixos/control-plane/bzImage HTTP/1.1\r\nRange: bytes=100-199\r\n\r\n", 206, 100, false),
    (b"GET /boot/nixos/control-plane/bzImage HTTP/1.1\r\nRange: bytes=0-0,-1\r\n\r\n", 206, 0, false),
    (b"HEAD /boot/ipxe/snp.efi HTTP/1.1\r\n\r\n", 200, 0, true),
    (
        b"GET /boot/ipxe/boot.ipxe HTTP/1.1\r\nIf-Modified-Since: Fri, 31 Dec 9999 23:59:59 GMT\r\n\r\n",
        304,
        0,
        false,
    ),
    (b"GET /boot/missing HTTP/1.1\r\n\r\n", 404, 14, false),
    (b"GET /boot/nixos/control-plane/bzImage HTTP/1.1\r\nRange: bytes=999999-\r\n\r\n", 416, 0, false),
    (b"GET /boot//nixos/./control-plane/initrd HTTP/1.1\r\n\r\n", 200, 300_000, false),
    (b"GET /health HTTP/1.1\r\n\r\n", 200, 0, false),
    // iPXE builds from outside the root, at the top level and below /boot/.
    (b"GET /ipxe.efi HTTP/1.1\r\n\r\n", 200, 65_536, false),
    (b"GET /boot/ipxe.efi HTTP/1.1\r\nRange: bytes=0-9\r\n\r\n", 206, 10, false),
    // iPXE scripts: the chain script and a per-machine install script.
    (b"GET /boot.ipxe HTTP/1.1\r\nHost: 10.0.100.10:8080\r\n\r\n", 200, 0, false),
    (
        b"GET /ipxe/node?mac=52-54-00-12-34-56&uuid=&buildarch=x86_64&platform=efi&hostname= HTTP/1.1\r\nHost: 10.0.100.10:8080\r\n\r\n",
        200,
        0,
        false,
    ),
    (b"GET /ipxe/node?mac=02-00-00-00-00-99&platform=pcbios HTTP/1.1\r\nHost: 10.0.100.10:8080\r\n\r\n", 200, 0, false),
];

fn round(addr: SocketAddr, keep: &mut TcpStream, buf: &mut [u8]) {
    for &(req, status, len, head_only) in REQS {
        keep.write_all(req).unwrap();
        let (s, l) = one_response(keep, buf, head_only);
        assert_eq!(s, status, "{}", String::from_utf8_lossy(req));
        if len > 0 {
            assert_eq!(l, len, "{}", String::from_utf8_lossy(req));
        }
    }
    // A fresh connection per request too (what iPXE does against an HTTP/1.0 server).
    let mut c = TcpStream::connect(addr).unwrap();
    c.write_all(b"GET /boot/ipxe/boot.ipxe HTTP/1.1\r\nConnection: close\r\n\r\n").unwrap();
    assert_eq!(one_response(&mut c, buf, false), (200, 24));
}

#[test]
fn steady_state_requests_do_not_allocate() {
    let t = http_support::tree();
    let efi = t.dir.path().join("usr-lib-ipxe/ipxe.efi");
    std::fs::create_dir_all(efi.parent().unwrap()).unwrap();
    std::fs::write(&efi, vec![0x4d; 65_536]).unwrap();
    let s = http_support::start_setup(
        &t.root,
        HttpLimits { max_connections: 64, write_budget: 64 << 10, ..HttpLimits::default() },
        |_| {},
        move |svc| {
            svc.add_file("ipxe.efi", Some(&efi), true).unwrap();
            let c = ferroboot::config::Config::from_toml(
                std::path::Path::new("alloc.toml"),
                "[nodes.\"52:54:00:12:34:56\"]\nprofile = \"p\"\nhostname = \"node01\"\n\
                 [profiles.p]\nkernel = \"k\"\ninitrd = [\"i1\", \"i2\"]\ncmdline = \"h={hostname} m={mac} ip={ip}\"\n",
            )
            .unwrap();
            let inv = std::rc::Rc::new(ferroboot::ipxe::Inventory::from_config(&c).unwrap());
            // Not /boot/ipxe/boot.ipxe: the static requests above use that file of the tree.
            let life = std::rc::Rc::new(ferroboot::lifecycle::NoLifecycle);
            ferroboot::ipxe::route::register(inv, life, |m, r| {
                if m != ferroboot::http::Match::Exact("/boot/ipxe/boot.ipxe") {
                    svc.add_route(m, r)
                }
            });
        },
    );
    let addr = s.addr;
    let mut keep = TcpStream::connect(addr).unwrap();
    let mut buf = vec![0u8; 1 << 20];
    for _ in 0..20 {
        round(addr, &mut keep, &mut buf);
    }
    let before = ALLOCS.load(Ordering::SeqCst);
    const N: usize = 200;
    for _ in 0..N {
        round(addr, &mut keep, &mut buf);
    }
    let after = ALLOCS.load(Ordering::SeqCst);
    println!("{} requests, {} allocations", N * (REQS.len() + 1), after - before);
    assert_eq!(after - before, 0, "allocations during {} steady-state requests", N * (REQS.len() + 1));
    drop(keep);
    s.stop();
}
