//! Real TFTP clients (tftp-hpa, atftp, curl) against the real binary on loopback: 16 MiB and
//! 500 MiB random files must arrive with the same sha256, plus the runbook's own check, error
//! replies, the EDK2 probe sequence over the wire, and a clean SIGTERM stop.

mod common;

use common::*;
use std::net::UdpSocket;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

struct Files {
    _scratch: Scratch,
    root: PathBuf,
    small_sha: String,
    big_sha: String,
}

const SMALL: u64 = 16 << 20;
const BIG: u64 = 500 << 20;

fn files() -> &'static Files {
    static F: OnceLock<Files> = OnceLock::new();
    F.get_or_init(|| {
        let s = Scratch::new();
        let root = s.root();
        random_file(&root.join("small.bin"), SMALL, 0x5eed);
        random_file(&root.join("big.bin"), BIG, 0xb16);
        std::fs::create_dir_all(root.join("nixos/control-plane")).unwrap();
        random_file(&root.join("nixos/control-plane/bzImage"), 123_457, 3);
        random_file(&root.join("undionly.kpxe"), 74_213, 4);
        std::fs::write(root.join("boot.txt"), "line 1\nline 2\r\nend\n").unwrap();
        let small_sha = sha256(&root.join("small.bin"));
        let big_sha = sha256(&root.join("big.bin"));
        Files { root, small_sha, big_sha, _scratch: s }
    })
}

fn server() -> (Server, u16, Scratch) {
    let f = files();
    let port = free_udp_port();
    let state = Scratch::new();
    let srv = Server::start(
        &[
            "--root",
            f.root.to_str().unwrap(),
            "--listen",
            "127.0.0.1",
            "--tftp-port",
            &port.to_string(),
            "--no-http",
            "--state-dir",
            state.state().to_str().unwrap(),
        ],
        None,
    );
    (srv, port, state)
}

fn check(out: &std::path::Path, sha: &str, what: &str, log: &str) {
    assert!(out.exists(), "{what}: no output file; {log}");
    assert_eq!(sha256(out), sha, "{what}: sha256 differs; {log}");
}

fn tftp_hpa(port: u16, name: &str, out: &std::path::Path, mode: &str) -> (bool, String) {
    run(Command::new("timeout")
        .args(["300", "tftp", "-m", mode, "127.0.0.1", &port.to_string(), "-c", "get", name])
        .arg(out))
}

fn atftp(port: u16, name: &str, out: &std::path::Path) -> (bool, String) {
    run(Command::new("timeout").args([
        "300",
        "atftp",
        "--option",
        "blksize 1468",
        "--option",
        "windowsize 16",
        "-g",
        "-r",
        name,
        "-l",
        out.to_str().unwrap(),
        "127.0.0.1",
        &port.to_string(),
    ]))
}

fn curl(port: u16, name: &str, out: &std::path::Path) -> (bool, String) {
    run(Command::new("timeout")
        .args([
            "300",
            "curl",
            "-sS",
            "--tftp-blksize",
            "1468",
            &format!("tftp://127.0.0.1:{port}/{name}"),
            "-o",
        ])
        .arg(out))
}

fn fetch_both_sizes(client: &str, get: fn(u16, &str, &std::path::Path) -> (bool, String)) {
    let (mut srv, port, s) = server();
    let f = files();
    for (name, sha) in [("small.bin", &f.small_sha), ("big.bin", &f.big_sha)] {
        let out = s.path(&format!("{client}-{name}"));
        let t = std::time::Instant::now();
        let (ok, log) = get(port, name, &out);
        assert!(ok, "{client} {name} failed: {log}");
        check(&out, sha, &format!("{client} {name}"), &log);
        eprintln!("{client}: {name} in {:.2} s", t.elapsed().as_secs_f64());
        std::fs::remove_file(&out).unwrap();
    }
    srv.wait_for("sent big.bin", Duration::from_secs(10));
    assert!(srv.stop().success());
}

#[test]
fn tftp_hpa_fetches_16m_and_500m() {
    if !require("tftp", "tftp-hpa") {
        return;
    }
    fetch_both_sizes("tftp-hpa", |p, n, o| tftp_hpa(p, n, o, "binary"));
}

#[test]
fn atftp_with_blksize_1468_windowsize_16_fetches_16m_and_500m() {
    if !require("atftp", "atftp") {
        return;
    }
    fetch_both_sizes("atftp", atftp);
}

#[test]
fn curl_with_blksize_1468_fetches_16m_and_500m() {
    if !require("curl", "curl") {
        return;
    }
    fetch_both_sizes("curl", curl);
}

#[test]
fn netascii_through_tftp_hpa_round_trips_line_ends() {
    if !require("tftp", "tftp-hpa") {
        return;
    }
    let (mut srv, port, s) = server();
    let out = s.path("boot.txt");
    let (ok, log) = tftp_hpa(port, "boot.txt", &out, "netascii");
    assert!(ok, "{log}");
    // tftp-hpa converts CR LF back to the local LF convention.
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(files().root.join("boot.txt")).unwrap());
    assert!(srv.stop().success());
}

#[test]
fn errors_for_missing_files_escapes_and_writes() {
    if !require("tftp", "tftp-hpa") || !require("curl", "curl") {
        return;
    }
    let (mut srv, port, s) = server();
    let out = s.path("x");
    let (_, log) = tftp_hpa(port, "does-not-exist", &out, "binary");
    assert!(log.contains("File not found") || log.contains("file not found"), "{log}");
    let (ok, log) = run(Command::new("curl")
        .args(["-sS", &format!("tftp://127.0.0.1:{port}/../etc/passwd"), "-o"])
        .arg(&out));
    assert!(!ok, "escape must fail: {log}");
    let (_, log) = run(Command::new("timeout")
        .args(["20", "tftp", "127.0.0.1", &port.to_string(), "-c", "put"])
        .arg(files().root.join("boot.txt"))
        .arg("uploaded.txt"));
    assert!(log.to_lowercase().contains("read-only"), "WRQ must be refused as read-only: {log}");
    assert!(!files().root.join("uploaded.txt").exists());
    srv.wait_for("refused write", Duration::from_secs(5));
    assert!(srv.stop().success());
}

/// The EDK2 sequence from the fixtures, replayed on the wire: RRQ with tsize → OACK →
/// ERROR 8 → new RRQ from a new port → the whole file, lock-step.
#[test]
fn edk2_tsize_probe_then_real_transfer() {
    let (mut srv, port, _s) = server();
    let server_addr = format!("127.0.0.1:{port}");
    let probe = UdpSocket::bind("127.0.0.1:0").unwrap();
    probe.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let rrq = b"\x00\x01undionly.kpxe\x00octet\x00tsize\x000\x00blksize\x001468\x00windowsize\x004\x00";
    probe.send_to(rrq, &server_addr).unwrap();
    let mut buf = [0u8; 2048];
    let (n, tid) = probe.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"\x00\x06tsize\x0074213\x00blksize\x001468\x00windowsize\x004\x00");
    probe.send_to(include_bytes!("fixtures/tftp/edk2-error-8-after-oack.bin"), tid).unwrap();
    srv.wait_for("size probe of undionly.kpxe", Duration::from_secs(5));

    let real = UdpSocket::bind("127.0.0.1:0").unwrap();
    real.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    real.send_to(b"\x00\x01undionly.kpxe\x00octet\x00blksize\x001468\x00windowsize\x004\x00", &server_addr)
        .unwrap();
    let (n, tid) = real.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"\x00\x06blksize\x001468\x00windowsize\x004\x00", "no tsize when not asked");
    real.send_to(b"\x00\x04\x00\x00", tid).unwrap();
    let mut data = Vec::new();
    let mut expected: u16 = 1;
    loop {
        let (n, from) = real.recv_from(&mut buf).unwrap();
        assert_eq!(from, tid);
        assert_eq!(&buf[..2], b"\x00\x03");
        let block = u16::from_be_bytes([buf[2], buf[3]]);
        assert_eq!(block, expected);
        data.extend_from_slice(&buf[4..n]);
        if block % 4 == 0 || n - 4 < 1468 {
            real.send_to(&[0, 4, buf[2], buf[3]], tid).unwrap();
        }
        if n - 4 < 1468 {
            break;
        }
        expected += 1;
    }
    assert_eq!(data, std::fs::read(files().root.join("undionly.kpxe")).unwrap());
    srv.wait_for("sent undionly.kpxe", Duration::from_secs(5));
    assert!(srv.stop().success());
}

/// A packet from another port to a session's TID gets ERROR 5 and the session carries on.
#[test]
fn wrong_tid_gets_error_5_and_the_transfer_continues() {
    let (mut srv, port, _s) = server();
    let c = UdpSocket::bind("127.0.0.1:0").unwrap();
    let intruder = UdpSocket::bind("127.0.0.1:0").unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    intruder.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.send_to(b"\x00\x01undionly.kpxe\x00octet\x00", format!("127.0.0.1:{port}")).unwrap();
    let mut buf = [0u8; 600];
    let (n, tid) = c.recv_from(&mut buf).unwrap();
    assert_eq!((n, &buf[..4]), (516, &b"\x00\x03\x00\x01"[..]));
    intruder.send_to(b"\x00\x04\x00\x01", tid).unwrap();
    let (n, from) = intruder.recv_from(&mut buf).unwrap();
    assert_eq!(from, tid);
    assert_eq!(&buf[..4], b"\x00\x05\x00\x05", "ERROR 5 unknown TID: {:?}", &buf[..n]);
    let mut total = 0;
    let mut block = 1u16;
    loop {
        c.send_to(&[0, 4, (block >> 8) as u8, block as u8], tid).unwrap();
        let (n, _) = c.recv_from(&mut buf).unwrap();
        block += 1;
        assert_eq!(u16::from_be_bytes([buf[2], buf[3]]), block);
        total += n - 4;
        if n < 516 {
            c.send_to(&[0, 4, (block >> 8) as u8, block as u8], tid).unwrap();
            break;
        }
    }
    assert_eq!(total + 512, 74_213);
    srv.wait_for("sent undionly.kpxe", Duration::from_secs(5));
    assert!(srv.stop().success());
}

/// The runbook's check exactly as written: `tftp localhost -c get undionly.kpxe /tmp/test.kpxe`
/// against port 69, inside a namespace of its own so nothing else on the machine is touched.
#[test]
fn runbook_tftp_localhost_get_undionly() {
    if !require("tftp", "tftp-hpa") || !require_root() {
        return;
    }
    let ns = Netns::new("fb-runbook");
    let f = files();
    let state = Scratch::new();
    let mut srv = Server::start(
        &["--root", f.root.to_str().unwrap(), "--no-http", "--state-dir", state.state().to_str().unwrap()],
        Some(&ns.name),
    );
    let dir = Scratch::new();
    let out = dir.path("test.kpxe");
    let (ok, log) = ns.exec(&["tftp", "localhost", "-c", "get", "undionly.kpxe", out.to_str().unwrap()]);
    assert!(ok, "{log}");
    assert_eq!(std::fs::metadata(&out).unwrap().len(), 74_213);
    assert_eq!(sha256(&out), sha256(&f.root.join("undionly.kpxe")));
    assert!(srv.stop().success());
}

#[test]
fn sigterm_during_a_transfer_finishes_it_then_exits_0() {
    let (mut srv, port, _s) = server();
    let c = UdpSocket::bind("127.0.0.1:0").unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.send_to(b"\x00\x01undionly.kpxe\x00octet\x00", format!("127.0.0.1:{port}")).unwrap();
    let mut buf = [0u8; 600];
    let (_, tid) = c.recv_from(&mut buf).unwrap();
    let _ = Command::new("kill").args(["-TERM", &srv.child.id().to_string()]).status();
    srv.wait_for("waiting for 1 transfer", Duration::from_secs(5));
    // New requests are no longer answered...
    let late = UdpSocket::bind("127.0.0.1:0").unwrap();
    late.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    late.send_to(b"\x00\x01undionly.kpxe\x00octet\x00", format!("127.0.0.1:{port}")).unwrap();
    assert!(late.recv_from(&mut buf).is_err(), "a stopping server must not start new transfers");
    // ...but the running one completes.
    let mut block = 1u16;
    loop {
        c.send_to(&[0, 4, (block >> 8) as u8, block as u8], tid).unwrap();
        let (n, _) = c.recv_from(&mut buf).unwrap();
        block += 1;
        if n < 516 {
            c.send_to(&[0, 4, (block >> 8) as u8, block as u8], tid).unwrap();
            break;
        }
    }
    assert!(srv.stop().success(), "exit status 0 after a graceful stop");
    assert!(srv.lines.iter().any(|l| l.contains("sent undionly.kpxe")), "{:?}", srv.lines);
}
