//! Shared helpers for the HTTP integration tests: run [`HttpService`] in-process on its own event
//! loop thread, find client programs, and talk raw HTTP over `TcpStream`.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use ferroboot::http::{HttpLimits, HttpService};
use ferroboot::net::EventLoop;
use ferroboot::status::{ServiceState, Status};

/// A running service; stopped and joined on drop.
pub struct Server {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.addr.port())
    }

    /// Asks the loop to stop gracefully and waits for it.
    pub fn stop(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.join().expect("server thread panicked");
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

/// Starts the service on 127.0.0.1 with an ephemeral port, serving `root`. DHCP and TFTP are
/// marked running so `/health` reads like the runbook.
pub fn start(root: &Path, limits: HttpLimits) -> Server {
    start_with(root, limits, |s| {
        s.dhcp.set(ServiceState::Running);
        s.tftp.set(ServiceState::Running);
    })
}

pub fn start_with(root: &Path, limits: HttpLimits, prepare: fn(&Status)) -> Server {
    start_setup(root, limits, prepare, |_| {})
}

/// [`start_with`], plus `setup` on the service before it runs (extra files, routes).
pub fn start_setup(
    root: &Path,
    limits: HttpLimits,
    prepare: fn(&Status),
    setup: impl FnOnce(&mut HttpService) + Send + 'static,
) -> Server {
    let root = root.to_path_buf();
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = std::sync::mpsc::channel();
    let stop2 = stop.clone();
    let thread = std::thread::spawn(move || {
        let status = Rc::new(Status::default());
        prepare(&status);
        let mut svc = HttpService::new("127.0.0.1:0".parse().unwrap(), root, limits, status).expect("bind");
        setup(&mut svc);
        let mut ev = EventLoop::new().unwrap();
        tx.send(svc.local_addr()).unwrap();
        ev.add(Box::new(svc)).unwrap();
        ev.run(false, || stop2.load(Ordering::SeqCst)).unwrap();
    });
    let addr = rx.recv_timeout(Duration::from_secs(10)).expect("server did not start");
    Server { addr, stop, thread: Some(thread) }
}

/// True if `program` can be run. If not: panics when `CI=true` (with an install hint), else
/// prints a notice and returns false so the test can skip.
pub fn need(program: &str, package: &str) -> bool {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {program}"))
        .output()
        .is_ok_and(|o| o.status.success());
    if found {
        return true;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{program} is required in CI: apt-get install -y {package}");
    }
    eprintln!("NOTICE: {program} not found, skipping (apt-get install -y {package})");
    false
}

pub fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program).args(args).output().unwrap_or_else(|e| panic!("{program}: {e}"))
}

pub fn curl(args: &[&str]) -> Output {
    let mut all = vec!["-sS", "--max-time", "60"];
    all.extend_from_slice(args);
    run("curl", &all)
}

/// Sends `req` and reads until the server closes (or `timeout`).
pub fn exchange(addr: SocketAddr, req: &[u8], timeout: Duration) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(timeout)).unwrap();
    s.write_all(req).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    out
}

/// A parsed response: status, headers (lowercased names), body.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// Splits a byte stream of responses (no body for HEAD/304 heads: pass `head_only`).
pub fn parse_responses(mut data: &[u8], head_only: &[bool]) -> Vec<Resp> {
    let mut out = Vec::new();
    let mut i = 0;
    while !data.is_empty() {
        let end = data.windows(4).position(|w| w == b"\r\n\r\n").expect("incomplete head") + 4;
        let head = std::str::from_utf8(&data[..end]).unwrap();
        let mut lines = head.split("\r\n");
        let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
        let headers: Vec<(String, String)> = lines
            .filter(|l| !l.is_empty())
            .map(|l| {
                let (n, v) = l.split_once(':').unwrap();
                (n.to_ascii_lowercase(), v.trim().to_string())
            })
            .collect();
        let len: usize =
            headers.iter().find(|(n, _)| n == "content-length").expect("Content-Length").1.parse().unwrap();
        let skip = head_only.get(i).copied().unwrap_or(false) || status == 304;
        let blen = if skip { 0 } else { len };
        out.push(Resp { status, headers, body: data[end..end + blen].to_vec() });
        data = &data[end + blen..];
        i += 1;
    }
    out
}

/// A temporary boot tree: `root/` with a few files, plus a secret outside it.
pub struct Tree {
    pub dir: tempfile::TempDir,
    pub root: PathBuf,
}

pub fn tree() -> Tree {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir_all(root.join("nixos/control-plane")).unwrap();
    std::fs::create_dir_all(root.join("ipxe")).unwrap();
    let kernel: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(root.join("nixos/control-plane/bzImage"), &kernel).unwrap();
    std::fs::write(root.join("nixos/control-plane/initrd"), vec![7u8; 300_000]).unwrap();
    std::fs::write(root.join("ipxe/boot.ipxe"), b"#!ipxe\nchain http://x/y\n").unwrap();
    std::fs::write(root.join("ipxe/snp.efi"), b"MZ fake efi").unwrap();
    std::fs::write(root.join("empty"), b"").unwrap();
    std::fs::write(dir.path().join("secret"), b"top secret").unwrap();
    std::os::unix::fs::symlink("../secret", root.join("escape")).unwrap();
    std::os::unix::fs::symlink("nixos/control-plane/bzImage", root.join("kernel-link")).unwrap();
    Tree { dir, root }
}

/// Deterministic pseudo-random bytes (xorshift), fast enough for hundreds of MiB.
pub fn write_random_file(path: &Path, len: u64) {
    let mut f = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path).unwrap());
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut left = len;
    let mut block = [0u8; 8192];
    while left > 0 {
        for chunk in block.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            chunk.copy_from_slice(&x.to_le_bytes());
        }
        let n = left.min(block.len() as u64) as usize;
        f.write_all(&block[..n]).unwrap();
        left -= n as u64;
    }
    f.flush().unwrap();
}

pub fn sha256(path: &Path) -> String {
    let out = run("sha256sum", &[path.to_str().unwrap()]);
    String::from_utf8(out.stdout).unwrap().split_whitespace().next().unwrap().to_string()
}
