//! `ferroboot provision` against the real `ferroboot serve` and its lifecycle API (docs/api.md):
//! the installer callback is sent with curl as the initramfs would, the fake nixos-anywhere
//! installs, and the server's own node record ends `installed` with the whole history.

mod common;

use std::net::TcpListener;
use std::path::Path;
use std::process::Command;

#[test]
fn provision_drives_the_real_lifecycle_from_booted_to_installed() {
    if !common::require("curl", "curl") {
        return;
    }
    let scratch = common::Scratch::new();
    let (http, tftp, ssh) = (common::free_tcp_port(), common::free_udp_port(), common::free_tcp_port());
    let _ssh = TcpListener::bind(("127.0.0.31", ssh)).unwrap();
    let fake = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/orchestrate_support/fake-nixos-anywhere");
    let cfg = scratch.path("ferroboot.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"[nodes."52:54:00:00:03:01"]
hostname = "node01"
role = "control-plane"
ip_address = "127.0.0.31"
cluster_address = "10.0.200.10"

[cluster]
cluster_name = "prod-cluster"
nixos_anywhere = "{}"
ssh_port = {ssh}
"#,
            fake.display()
        ),
    )
    .unwrap();
    let mut server = common::Server::start_with(&scratch.serve_args(&cfg, http, tftp));
    let base = format!("http://127.0.0.1:{http}");
    // The installer's callback, as docs/api.md shows it.
    let (ok, out) = common::run(Command::new("curl").args([
        "-sS",
        "-X",
        "POST",
        "-d",
        r#"{"event":"booted"}"#,
        &format!("{base}/api/v1/nodes/52:54:00:00:03:01/events"),
    ]));
    assert!(ok, "{out}");
    assert!(out.contains(r#""state":"booted""#), "{out}");

    let fake_dir = scratch.path("fake");
    std::fs::create_dir_all(&fake_dir).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ferroboot"))
        .args(["provision", "--config", cfg.to_str().unwrap(), "--flake", "/srv/provisioning", "--all"])
        .args(["--server", &base, "--log-dir", scratch.path("logs").to_str().unwrap()])
        .env("FAKE_DIR", &fake_dir)
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{text}");
    assert!(text.contains("1 installed, 0 failed, 0 skipped"), "{text}");

    let (ok, node) =
        common::run(Command::new("curl").args(["-sS", &format!("{base}/api/v1/nodes/52-54-00-00-03-01")]));
    assert!(ok, "{node}");
    let v: serde_json::Value = serde_json::from_str(&node).unwrap_or_else(|e| panic!("{e}: {node}"));
    assert_eq!(v["state"], "installed", "{node}");
    let states: Vec<&str> =
        v["history"].as_array().unwrap().iter().filter_map(|h| h["state"].as_str()).collect();
    let tail: Vec<&str> = states.iter().rev().take(3).rev().copied().collect();
    assert_eq!(tail, ["booted", "installing", "installed"], "{node}");

    // Run again: the node is installed, so nothing is installed twice.
    let out = Command::new(env!("CARGO_BIN_EXE_ferroboot"))
        .args(["provision", "--config", cfg.to_str().unwrap(), "--flake", "/srv/provisioning", "--all"])
        .args(["--server", &base, "--log-dir", scratch.path("logs").to_str().unwrap()])
        .env("FAKE_DIR", &fake_dir)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains("0 installed, 0 failed, 1 skipped"), "{text}");
    assert_eq!(
        std::fs::read_to_string(fake_dir.join("calls.log")).unwrap().lines().count(),
        2,
        "one start, one end"
    );
    server.stop();
}
