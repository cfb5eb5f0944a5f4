//! Transfers over impaired paths: a veth pair between two network namespaces (the server sizes
//! blocks for the veth's 1500-byte MTU), and 5 % loss + 5 % duplication + 10 % reordering in both
//! directions. `tc netem` is used when the kernel has it; these machines' kernel does not
//! (CONFIG_NET_SCH_NETEM unset), so the impairment then comes from a userspace relay.

mod common;
#[path = "common/impair.rs"]
mod impair;

use common::*;
use std::process::Command;
use std::time::Duration;

fn config(s: &Scratch) -> std::path::PathBuf {
    let p = s.path("ferroboot.toml");
    std::fs::write(&p, "[tftp]\ntimeout_ms = 1000\nretries = 30\n").unwrap();
    p
}

#[test]
fn veth_pair_blksize_is_capped_by_the_mtu_and_netem_if_available() {
    if !require_root() || !require("atftp", "atftp") || !require("curl", "curl") {
        return;
    }
    let s = Scratch::new();
    random_file(&s.root().join("f.bin"), 8 << 20, 77);
    let want = sha256(&s.root().join("f.bin"));
    let srv_ns = Netns::new("fb-imp-s");
    let cli_ns = Netns::new("fb-imp-c");
    let (ok, out) =
        run(Command::new("ip").args(["link", "add", "fbimp-s", "type", "veth", "peer", "name", "fbimp-c"]));
    assert!(ok, "{out}");
    for (ns, dev, ip) in [(&srv_ns, "fbimp-s", "10.98.0.1/24"), (&cli_ns, "fbimp-c", "10.98.0.2/24")] {
        let (ok, out) = run(Command::new("ip").args(["link", "set", dev, "netns", &ns.name]));
        assert!(ok, "{out}");
        ns.exec_ok(&["ip", "addr", "add", ip, "dev", dev]);
        ns.exec_ok(&["ip", "link", "set", dev, "up"]);
    }
    let netem = ["fb-imp-s fbimp-s", "fb-imp-c fbimp-c"].iter().all(|p| {
        let (ns, dev) = p.split_once(' ').unwrap();
        run(Command::new("ip").args([
            "netns",
            "exec",
            ns,
            "tc",
            "qdisc",
            "add",
            "dev",
            dev,
            "root",
            "netem",
            "delay",
            "1ms",
            "loss",
            "5%",
            "duplicate",
            "5%",
            "reorder",
            "10%",
            "50%",
        ]))
        .0
    });
    eprintln!("tc netem available: {netem}");
    let cfg = config(&s);
    let mut srv = Server::start(
        &[
            "--config",
            cfg.to_str().unwrap(),
            "--root",
            s.root().to_str().unwrap(),
            "--no-http",
            "--state-dir",
            s.state().to_str().unwrap(),
        ],
        Some(&srv_ns.name),
    );
    let line = srv.wait_for("blksize ≤", Duration::from_secs(1));
    assert!(line.contains("blksize ≤ 1468"), "a 1500-byte MTU caps blksize at 1468: {line}");
    // atftp asks for 8192; the OACK grants 1468.
    let out = s.path("atftp.bin");
    let (ok, log) = cli_ns.exec(&[
        "timeout",
        "300",
        "atftp",
        "--option",
        "blksize 8192",
        "--option",
        "windowsize 16",
        "-g",
        "-r",
        "f.bin",
        "-l",
        out.to_str().unwrap(),
        "10.98.0.1",
        "69",
    ]);
    assert!(ok, "{log}");
    assert_eq!(sha256(&out), want);
    srv.wait_for("blksize=1468 windowsize=16", Duration::from_secs(5));
    let out = s.path("curl.bin");
    let (ok, log) = cli_ns.exec(&[
        "timeout",
        "300",
        "curl",
        "-sS",
        "tftp://10.98.0.1/f.bin",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(ok, "{log}");
    assert_eq!(sha256(&out), want);
    assert!(srv.stop().success());
}

/// `size`: curl negotiates `timeout` (RFC 2349), so each loss costs it a fixed timeout; it gets
/// a smaller file. The other clients leave the timer adaptive.
fn impaired_transfer(client: &str, size: u64) {
    let s = Scratch::new();
    random_file(&s.root().join("f.bin"), size, 78);
    let want = sha256(&s.root().join("f.bin"));
    let port = free_udp_port();
    let cfg = config(&s);
    let mut srv = Server::start(
        &[
            "--config",
            cfg.to_str().unwrap(),
            "--root",
            s.root().to_str().unwrap(),
            "--listen",
            "127.0.0.1",
            "--tftp-port",
            &port.to_string(),
            "--no-http",
            "--state-dir",
            s.state().to_str().unwrap(),
        ],
        None,
    );
    let relay = impair::Relay::start(
        format!("127.0.0.1:{port}").parse().unwrap(),
        impair::Model { loss_pct: 5, dup_pct: 5, reorder_pct: 10 },
        42,
    );
    let rport = relay.addr.port().to_string();
    let out = s.path("out.bin");
    let t = std::time::Instant::now();
    let (ok, log) = match client {
        "atftp" => run(Command::new("timeout").args([
            "300",
            "atftp",
            "--option",
            "blksize 1468",
            "--option",
            "windowsize 16",
            "-g",
            "-r",
            "f.bin",
            "-l",
            out.to_str().unwrap(),
            "127.0.0.1",
            &rport,
        ])),
        "tftp-hpa" => run(Command::new("timeout")
            .args(["300", "tftp", "-m", "binary", "127.0.0.1", &rport, "-c", "get", "f.bin"])
            .arg(&out)),
        _ => run(Command::new("timeout")
            .args([
                "300",
                "curl",
                "-sS",
                "--connect-timeout",
                "3",
                "--tftp-blksize",
                "1468",
                &format!("tftp://127.0.0.1:{rport}/f.bin"),
                "-o",
            ])
            .arg(&out)),
    };
    if !ok {
        let _ = srv.stop();
        let tail: Vec<&String> = srv.lines.iter().rev().take(60).collect();
        let log: String =
            log.lines().filter(|l| !l.starts_with("got wrong block")).collect::<Vec<_>>().join("\n");
        let trace: Vec<String> = relay
            .trace
            .lock()
            .unwrap()
            .iter()
            .map(|(c, op, b, what)| format!("{} op{op} #{b} {what}", if *c { "S->C" } else { "C->S" }))
            .collect();
        panic!(
            "{client} failed: {log}\nserver log (last lines, newest first): {tail:#?}\nrelay trace: {trace:#?}"
        );
    }
    assert_eq!(sha256(&out), want, "{client}: file differs after the lossy path");
    let st = &relay.stats;
    let (dropped, dup, reord) = (
        st.dropped.load(std::sync::atomic::Ordering::Relaxed),
        st.duplicated.load(std::sync::atomic::Ordering::Relaxed),
        st.reordered.load(std::sync::atomic::Ordering::Relaxed),
    );
    eprintln!(
        "{client}: {size} bytes in {:.1} s; relay dropped {dropped}, duplicated {dup}, reordered {reord}",
        t.elapsed().as_secs_f64()
    );
    assert!(dropped > 5 && dup > 5 && reord > 5, "the relay must really impair the path");
    let line = srv.wait_for("sent f.bin", Duration::from_secs(60));
    assert!(!line.contains(" 0 retransmits"), "loss must have caused retransmits: {line}");
    assert!(srv.stop().success());
}

#[test]
fn atftp_windowsize_16_through_loss_duplication_reordering() {
    if require("atftp", "atftp") {
        impaired_transfer("atftp", 8 << 20);
    }
}

#[test]
fn tftp_hpa_lock_step_through_loss_duplication_reordering() {
    if require("tftp", "tftp-hpa") {
        impaired_transfer("tftp-hpa", 2 << 20);
    }
}

#[test]
fn curl_through_loss_duplication_reordering() {
    if require("curl", "curl") {
        impaired_transfer("curl", 256 << 10);
    }
}
