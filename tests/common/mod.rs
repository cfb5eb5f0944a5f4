//! Shared helpers for integration tests: start the real binary, require real tools, make files.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// True when `prog` is on PATH. Missing under CI=true is a test failure with an install hint;
/// elsewhere the caller skips with a printed notice.
pub fn require(prog: &str, package: &str) -> bool {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {prog}"))
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        if in_ci() {
            panic!("{prog} is required (apt-get install {package}); CI=true so this is a failure");
        }
        eprintln!("SKIPPED: {prog} not found (apt-get install {package})");
    }
    found
}

/// True when running as root (network namespaces, port 69). Under CI=true not being root fails.
pub fn require_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        if in_ci() {
            panic!("this test needs root (network namespaces); CI=true so this is a failure");
        }
        eprintln!("SKIPPED: needs root");
    }
    root
}

pub fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A file of `len` pseudo-random bytes (fast xorshift, not /dev/urandom, so 500 MiB is quick).
pub fn random_file(path: &Path, len: u64, seed: u64) {
    use std::io::Write;
    let mut f = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path).unwrap());
    let mut x = seed | 1;
    let mut chunk = vec![0u8; 1 << 20];
    let mut left = len;
    while left > 0 {
        for w in chunk.chunks_exact_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            w.copy_from_slice(&x.to_le_bytes());
        }
        let n = left.min(chunk.len() as u64) as usize;
        f.write_all(&chunk[..n]).unwrap();
        left -= n as u64;
    }
    f.flush().unwrap();
}

pub fn sha256(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().expect("sha256sum");
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout).split_whitespace().next().unwrap().to_string()
}

/// A running `ferroboot serve`; stopped with SIGTERM on drop.
pub struct Server {
    pub child: Child,
    pub log: mpsc::Receiver<String>,
    pub lines: Vec<String>,
}

impl Server {
    /// Starts the binary with `args` (optionally inside a network namespace) and waits for the
    /// "serving" log line.
    pub fn start(args: &[&str], netns: Option<&str>) -> Server {
        let bin = env!("CARGO_BIN_EXE_ferroboot");
        let mut cmd = match netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, bin]);
                c
            }
            None => Command::new(bin),
        };
        cmd.arg("serve").args(args).env("RUST_LOG", std::env::var("FB_LOG").unwrap_or("info".into()));
        let mut s = Server::spawn(cmd);
        s.wait_for("tftp: serving", Duration::from_secs(10));
        s
    }

    /// Spawns `cmd` (a ferroboot command line) with its stderr read into [`Server::log`] line by
    /// line; stdout is discarded. Waits for nothing.
    /// [`Server::start`] without a namespace, with owned arguments.
    pub fn start_with(args: &[String]) -> Server {
        Server::start(&args.iter().map(String::as_str).collect::<Vec<_>>(), None)
    }

    pub fn spawn(mut cmd: Command) -> Server {
        let mut child = cmd.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().expect("start ferroboot");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Server { child, log: rx, lines: Vec::new() }
    }

    /// Waits for a log line containing `needle`; panics with the log so far on timeout.
    pub fn wait_for(&mut self, needle: &str, timeout: Duration) -> String {
        let deadline = std::time::Instant::now() + timeout;
        if let Some(l) = self.lines.iter().find(|l| l.contains(needle)) {
            return l.clone();
        }
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.log.recv_timeout(left) {
                Ok(line) => {
                    let hit = line.contains(needle);
                    self.lines.push(line.clone());
                    if hit {
                        return line;
                    }
                }
                Err(_) => {
                    let status = self.child.try_wait().ok().flatten();
                    panic!(
                        "no log line {needle:?} within {timeout:?} (exit: {status:?}); log:\n{}",
                        self.lines.join("\n")
                    );
                }
            }
        }
    }

    /// Sends SIGTERM and returns the exit status.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                while let Ok(l) = self.log.try_recv() {
                    self.lines.push(l);
                }
                return st;
            }
            if std::time::Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("ferroboot did not stop within 15 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A scratch directory with a `root/` inside.
pub struct Scratch {
    pub dir: tempfile::TempDir,
}

impl Scratch {
    pub fn new() -> Scratch {
        let dir = tempfile::Builder::new().prefix("ferroboot-test").tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("root")).unwrap();
        std::fs::create_dir_all(dir.path().join("state")).unwrap();
        Scratch { dir }
    }
    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }
    pub fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    /// `serve` with `cfg`, this root and state dir, on 127.0.0.1 at these ports: start it with
    /// [`Server::start_with`] (again, on the same state, after a stop).
    pub fn serve_args(&self, cfg: &Path, http: u16, tftp: u16) -> Vec<String> {
        let [cfg, root, state] =
            [cfg.to_path_buf(), self.root(), self.state()].map(|p| p.display().to_string());
        let args = ["--config", &cfg, "--root", &root, "--state-dir", &state, "--listen", "127.0.0.1"];
        let ports = ["--http-port".to_string(), http.to_string(), "--tftp-port".into(), tftp.to_string()];
        args.map(str::to_string).into_iter().chain(ports).collect()
    }
}

/// Runs a command, returns (success, stdout+stderr).
pub fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let mut s = String::from_utf8_lossy(&out.stdout).into_owned();
    s.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), s)
}

/// A network namespace, deleted (with its processes) on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(name: &str) -> Netns {
        let _ = Command::new("ip").args(["netns", "del", name]).stderr(Stdio::null()).status();
        let (ok, out) = run(Command::new("ip").args(["netns", "add", name]));
        assert!(ok, "ip netns add {name}: {out}");
        let ns = Netns { name: name.to_string() };
        ns.exec_ok(&["ip", "link", "set", "lo", "up"]);
        ns
    }
    pub fn exec(&self, args: &[&str]) -> (bool, String) {
        run(Command::new("ip").args(["netns", "exec", &self.name]).args(args))
    }
    pub fn exec_ok(&self, args: &[&str]) -> String {
        let (ok, out) = self.exec(args);
        assert!(ok, "in netns {}: {args:?} failed: {out}", self.name);
        out
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Ok(out) = Command::new("ip").args(["netns", "pids", &self.name]).output() {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = Command::new("kill").args(["-KILL", pid]).status();
            }
        }
        let _ = Command::new("ip").args(["netns", "del", &self.name]).status();
    }
}
