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

use ferroboot::http::{HttpLimits, Match};
use ferroboot::lifecycle::{NodeState, Step, Store, api::Api};
use std::rc::Rc;
use std::sync::Mutex;

/// The allocator counts every thread: the two tests must not run at once.
static SERIAL: Mutex<()> = Mutex::new(());

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

/// The service with the iPXE builds and script routes; with `follow`, the node lifecycle is
/// attached too (observer of static files, the scripts' `NodeState`, the API), `node01` is
/// already installed and machines outside the inventory are ignored, so every round repeats the
/// same observations: 52:54:00:12:34:56 fetches its `exit` script (it is `local` after round 1)
/// from 127.0.0.1, which makes every static file of the round its download (its profile's kernel
/// and initrd included: refused transitions in `local`, bytes counted).
fn serve(t: &http_support::Tree, follow: bool) -> http_support::Server {
    let efi = t.dir.path().join("usr-lib-ipxe/ipxe.efi");
    std::fs::create_dir_all(efi.parent().unwrap()).unwrap();
    std::fs::write(&efi, vec![0x4d; 65_536]).unwrap();
    http_support::start_setup(
        &t.root,
        HttpLimits { max_connections: 64, write_budget: 64 << 10, ..HttpLimits::default() },
        |_| {},
        move |svc| {
            svc.add_file("ipxe.efi", Some(&efi), true).unwrap();
            let toml = if follow {
                "[ipxe]\nunknown = \"ignore\"\n[nodes.\"52:54:00:12:34:56\"]\nprofile = \"p\"\nhostname = \"node01\"\n\
                 [profiles.p]\nkernel = \"nixos/control-plane/bzImage\"\ninitrd = [\"nixos/control-plane/initrd\"]\n\
                 cmdline = \"h={hostname} m={mac} ip={ip}\"\n"
            } else {
                "[nodes.\"52:54:00:12:34:56\"]\nprofile = \"p\"\nhostname = \"node01\"\n\
                 [profiles.p]\nkernel = \"k\"\ninitrd = [\"i1\", \"i2\"]\ncmdline = \"h={hostname} m={mac} ip={ip}\"\n"
            };
            let c = ferroboot::config::Config::from_toml(std::path::Path::new("alloc.toml"), toml).unwrap();
            let inv = Rc::new(ferroboot::ipxe::Inventory::from_config(&c).unwrap());
            let life: Rc<dyn NodeState> = if follow {
                let (known, files) = ferroboot::lifecycle::store::inventory(&c);
                let store = Rc::new(Store::in_memory(&known, files, ferroboot::lifecycle::store::now_ms));
                let mac = known[0].mac;
                store.event(mac, Step::Booted, "").unwrap();
                store.event(mac, Step::Installed, "").unwrap();
                svc.set_observer(store.clone());
                svc.add_route(
                    Match::Prefix(ferroboot::lifecycle::api::PREFIX),
                    Box::new(Api::new(store.clone())),
                );
                store
            } else {
                Rc::new(ferroboot::lifecycle::NoLifecycle)
            };
            // Not /boot/ipxe/boot.ipxe: the static requests above use that file of the tree.
            ferroboot::ipxe::route::register(inv, life, |m, r| {
                if m != Match::Exact("/boot/ipxe/boot.ipxe") {
                    svc.add_route(m, r)
                }
            });
        },
    )
}

/// Rounds counted after the warm-up.
const N: usize = 200;

/// 20 warm-up rounds, then the allocations made during [`N`] more.
fn steady_state_allocations(addr: SocketAddr, keep: &mut TcpStream, buf: &mut [u8]) -> u64 {
    for _ in 0..20 {
        round(addr, keep, buf);
    }
    let before = ALLOCS.load(Ordering::SeqCst);
    for _ in 0..N {
        round(addr, keep, buf);
    }
    ALLOCS.load(Ordering::SeqCst) - before
}

#[test]
fn steady_state_requests_do_not_allocate() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let t = http_support::tree();
    let s = serve(&t, false);
    let mut keep = TcpStream::connect(s.addr).unwrap();
    let mut buf = vec![0u8; 1 << 20];
    let allocs = steady_state_allocations(s.addr, &mut keep, &mut buf);
    println!("{} requests, {allocs} allocations", N * (REQS.len() + 1));
    assert_eq!(allocs, 0, "allocations during {} steady-state requests", N * (REQS.len() + 1));
    drop(keep);
    s.stop();
}

/// The same rounds with the node lifecycle attached and following the client's address (see
/// [`serve`]): a repeat of the same observation must not allocate either.
#[test]
fn steady_state_requests_of_a_followed_node_do_not_allocate() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let t = http_support::tree();
    let s = serve(&t, true);
    let mut keep = TcpStream::connect(s.addr).unwrap();
    let mut buf = vec![0u8; 1 << 20];
    let allocs = steady_state_allocations(s.addr, &mut keep, &mut buf);
    assert_eq!(allocs, 0, "allocations during {} followed steady-state requests", N * (REQS.len() + 1));
    // The lifecycle saw them (read through the API): local after its exit script, and the bytes
    // of every static file of every round.
    keep.write_all(b"GET /api/v1/nodes/52:54:00:12:34:56 HTTP/1.1\r\n\r\n").unwrap();
    let (status, len) = one_response(&mut keep, &mut buf, false);
    assert_eq!(status, 200);
    let start = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let v: serde_json::Value = serde_json::from_slice(&buf[start..start + len]).unwrap();
    assert_eq!(v["state"], "local", "{v}");
    assert_eq!(v["ip_address"], "127.0.0.1");
    // Round 1's files came before its script taught the address (all but its last, fresh
    // connection's boot.ipxe): 219 rounds of 100,000 + 100 + 2 (bzImage and ranges) + 300,000
    // (initrd) + 65,536 + 10 (ipxe.efi at the top level and below /boot/) + 24 (boot.ipxe), and
    // 24; 304s, 404s, 416s and HEAD send no file bytes.
    let round = 100_000 + 100 + 2 + 300_000 + 65_536 + 10 + 24;
    assert_eq!(v["bytes_served"].as_u64(), Some(219 * round + 24), "{v}");
    drop(keep);
    s.stop();
}
