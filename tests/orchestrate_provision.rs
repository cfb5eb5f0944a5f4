//! `ferroboot provision` end to end with a fake nixos-anywhere (tests/orchestrate_support/
//! fake-nixos-anywhere: records its arguments and times, sleeps, fails or hangs on demand) and a
//! fake lifecycle API (docs/api.md) on loopback. Each node's installer "SSH port" is a real TCP
//! listener on its own 127.0.0.x address.

mod common;
#[path = "orchestrate_support/fake_api.rs"]
mod fake_api;

use fake_api::FakeApi;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const NODES: [(&str, &str, &str); 5] = [
    ("node01", "52:54:00:00:01:01", "control-plane"),
    ("node02", "52:54:00:00:01:02", "control-plane"),
    ("node03", "52:54:00:00:01:03", "control-plane"),
    ("node04", "52:54:00:00:01:04", "worker"),
    ("node05", "52:54:00:00:01:05", "worker"),
];

fn ip(i: usize) -> String {
    format!("127.0.0.{}", 11 + i)
}

struct Rig {
    dir: tempfile::TempDir,
    api: FakeApi,
    ssh_port: u16,
    _ssh: Vec<TcpListener>,
}

impl Rig {
    /// `open_ssh`: which nodes' SSH ports listen from the start.
    fn new(open_ssh: &[usize]) -> Rig {
        let dir = tempfile::Builder::new().prefix("ferroboot-orch").tempdir().unwrap();
        let api = FakeApi::start();
        let ssh_port = common::free_tcp_port();
        let mut ssh = Vec::new();
        for &i in open_ssh {
            ssh.push(TcpListener::bind((ip(i).as_str(), ssh_port)).unwrap());
        }
        let fake =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/orchestrate_support/fake-nixos-anywhere");
        let mut toml = String::new();
        for (i, (name, mac, role)) in NODES.iter().enumerate() {
            toml += &format!(
                "[nodes.\"{mac}\"]\nhostname = \"{name}\"\nrole = \"{role}\"\nip_address = \"{}\"\ncluster_address = \"10.0.200.{}\"\n\n",
                ip(i),
                10 + i
            );
            api.set(mac, name, "booted");
        }
        toml += &format!(
            "[cluster]\ncluster_name = \"test-cluster\"\ndomain = \"example.com\"\nnixos_anywhere = \"{}\"\nssh_port = {ssh_port}\n",
            fake.display()
        );
        std::fs::write(dir.path().join("ferroboot.toml"), toml).unwrap();
        Rig { dir, api, ssh_port, _ssh: ssh }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn provision(&self, args: &[&str], sleep: &str) -> (i32, String, String, Duration) {
        let t = Instant::now();
        let out = Command::new(env!("CARGO_BIN_EXE_ferroboot"))
            .arg("provision")
            .args(["--config", self.path("ferroboot.toml").to_str().unwrap()])
            .args(["--flake", "/srv/provisioning", "--server", &self.api.url])
            .args(["--log-dir", self.path("logs").to_str().unwrap()])
            .args(args)
            .env("FAKE_DIR", self.dir.path())
            .env("FAKE_SLEEP", sleep)
            .output()
            .unwrap();
        let (o, e) = (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        );
        (out.status.code().unwrap_or(-1), o, e, t.elapsed())
    }

    /// (node, start, end, ok) per call, from calls.log.
    fn calls(&self) -> Vec<(String, f64, f64, bool, String)> {
        let text = std::fs::read_to_string(self.path("calls.log")).unwrap_or_default();
        let mut open: Vec<(String, f64, String)> = Vec::new();
        let mut done = Vec::new();
        for l in text.lines() {
            let f: Vec<&str> = l.splitn(4, ' ').collect();
            let t: f64 = f[2].parse().unwrap();
            if f[0] == "start" {
                open.push((f[1].to_string(), t, f.get(3).unwrap_or(&"").to_string()));
            } else {
                let pos = open.iter().position(|o| o.0 == f[1]).expect("end without start");
                let (n, s, args) = open.remove(pos);
                done.push((n, s, t, f[3] == "ok", args));
            }
        }
        done.sort_by(|a, b| a.1.partial_cmp(&b.1).unwrap());
        done
    }
}

#[test]
fn bootstrap_nodes_run_together_then_joiners_one_at_a_time() {
    let rig = Rig::new(&[0, 1, 2, 3, 4]);
    let (code, out, err, _) = rig.provision(&["--all", "--parallel", "1", "--build-on-remote"], "1");
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    let calls = rig.calls();
    assert_eq!(calls.len(), 5, "{calls:?}");
    let by = |n: &str| calls.iter().find(|c| c.0 == n).unwrap().clone();
    // The three bootstrap installs overlap: each started before any of them ended.
    let boot_end = ["node01", "node02", "node03"].iter().map(|n| by(n).2).fold(f64::MAX, f64::min);
    for n in ["node01", "node02", "node03"] {
        assert!(by(n).1 < boot_end, "{n} started after a bootstrap peer ended: {calls:?}");
    }
    // Joiners after the whole bootstrap group, and (--parallel 1) not overlapping each other.
    let boot_last = ["node01", "node02", "node03"].iter().map(|n| by(n).2).fold(0.0, f64::max);
    let (n4, n5) = (by("node04"), by("node05"));
    assert!(n4.1 >= boot_last && n5.1 >= boot_last, "{calls:?}");
    assert!(n5.1 >= n4.2 || n4.1 >= n5.2, "joiners overlapped with --parallel 1: {calls:?}");
    // The command line: the runbook's, with the configured executable and SSH port.
    assert_eq!(
        by("node01").4,
        format!("--flake /srv/provisioning#node01 --build-on-remote -p {} root@127.0.0.11", rig.ssh_port)
    );
    // Lifecycle: installing then installed for each.
    for (_, mac, _) in NODES {
        assert_eq!(rig.api.events_of(mac), ["installing", "installed"], "{mac}");
        assert_eq!(rig.api.state_of(mac).as_deref(), Some("installed"));
    }
    // One log per node with the tool's output and our header.
    for (name, _, _) in NODES {
        let log = std::fs::read_to_string(rig.path(&format!("logs/{name}.log"))).unwrap();
        assert!(log.contains(&format!("=== {name} attempt 1/3 at ")), "{log}");
        assert!(log.contains(&format!("Provisioning {name}...")), "{log}");
        assert!(log.contains("Running disko to partition disks..."), "stderr goes to the log too: {log}");
        assert!(log.contains("Installation complete. Rebooting..."), "{log}");
        assert!(log.contains("=== success after "), "{log}");
    }
    assert!(out.contains("5 installed, 0 failed, 0 skipped"), "{out}");
    assert!(err.contains("bootstrap together: node01, node02, node03"), "{err}");
    // Not a terminal: plain progress lines.
    assert!(err.contains("node04: installing (attempt 1/3)"), "{err}");
    assert!(!err.contains('\x1b'), "no escape codes when stderr is not a terminal");
}

#[test]
fn failures_are_retried_with_backoff_and_reported_with_the_log_tail() {
    let rig = Rig::new(&[3, 4]);
    std::fs::write(rig.path("fail-node04"), "2").unwrap(); // fails twice, then succeeds
    std::fs::write(rig.path("fail-node05"), "9").unwrap(); // always fails
    let (code, out, err, _) =
        rig.provision(&["--nodes", "node04,node05", "--retries", "2", "--backoff", "1s"], "0");
    assert_eq!(code, 1, "a failed node makes the exit non-zero\n{out}\n{err}");
    let calls = rig.calls();
    let n4: Vec<_> = calls.iter().filter(|c| c.0 == "node04").collect();
    let n5: Vec<_> = calls.iter().filter(|c| c.0 == "node05").collect();
    assert_eq!(n4.iter().map(|c| c.3).collect::<Vec<_>>(), [false, false, true], "{calls:?}");
    assert_eq!(n5.len(), 3, "1 + 2 retries: {calls:?}");
    // Backoff 1 s then 2 s between attempts (a little slack for the runner's tick).
    assert!(n4[1].1 - n4[0].2 >= 0.95, "{calls:?}");
    assert!(n4[2].1 - n4[1].2 >= 1.95, "{calls:?}");
    assert_eq!(rig.api.events_of("52:54:00:00:01:04"), ["installing", "installed"]);
    assert_eq!(rig.api.events_of("52:54:00:00:01:05"), ["installing", "failed"]);
    let failed = rig.api.events().into_iter().find(|e| e.event == "failed").unwrap();
    let detail = failed.detail.unwrap();
    assert!(detail.starts_with("exit status 1 (attempt 3/3)"), "{detail}");
    assert!(detail.contains("disko: partition table error on /dev/sda"), "the log's tail: {detail}");
    let log = std::fs::read_to_string(rig.path("logs/node05.log")).unwrap();
    assert_eq!(log.matches("=== node05 attempt ").count(), 3, "{log}");
    assert!(out.contains("node04  installed   3"), "{out}");
    assert!(out.contains("node05  FAILED      3"), "{out}");
    assert!(out.contains("1 installed, 1 failed, 0 skipped"), "{out}");
    assert!(err.contains("node04: retry 2/3 in"), "{err}");
}

#[test]
fn a_hung_install_is_killed_at_the_timeout_with_its_children() {
    let rig = Rig::new(&[3]);
    std::fs::write(rig.path("hang-node04"), "").unwrap();
    let (code, out, err, took) =
        rig.provision(&["--nodes", "node04", "--timeout", "2s", "--retries", "0"], "0");
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(took < Duration::from_secs(10), "took {took:?}");
    assert!(out.contains("timed out after 2s"), "{out}");
    let pid: i32 = std::fs::read_to_string(rig.path("hang-node04.pid")).unwrap().trim().parse().unwrap();
    // Gone, or a zombie waiting for its new parent to reap it: either way no longer running.
    let running = || {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| !s.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')))
            .unwrap_or(false)
    };
    let deadline = Instant::now() + Duration::from_secs(2);
    while running() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!running(), "the tool's own child (sleep {pid}) was killed with its process group");
    let events = rig.api.events();
    let failed = events.iter().find(|e| e.event == "failed").expect("failed reported");
    assert!(failed.detail.as_deref().unwrap().starts_with("timed out after 2s"), "{failed:?}");
    let log = std::fs::read_to_string(rig.path("logs/node04.log")).unwrap();
    assert!(log.contains("=== timed out: sending SIGTERM to the process group ==="), "{log}");
}

#[test]
fn waits_for_booted_and_ssh_and_skips_installed_nodes() {
    let rig = Rig::new(&[]);
    rig.api.set("52:54:00:00:01:04", "node04", "ipxe");
    rig.api.set("52:54:00:00:01:05", "node05", "installed");
    let (api, port) = (rig.api.clone(), rig.ssh_port);
    let t0 = std::time::SystemTime::now();
    let flip = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(1500));
        api.set("52:54:00:00:01:04", "node04", "booted");
        std::thread::sleep(Duration::from_millis(2500));
        let l = TcpListener::bind(("127.0.0.14", port)).unwrap();
        std::thread::sleep(Duration::from_secs(20));
        drop(l);
    });
    let (code, out, err, _) = rig.provision(&["--nodes", "node04,node05"], "0");
    assert_eq!(code, 0, "{out}\n{err}");
    let calls = rig.calls();
    assert_eq!(calls.len(), 1, "node05 is already installed: {calls:?}");
    let start = calls[0].1 - t0.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    assert!(start >= 3.9, "started {start:.1}s in, before the SSH port opened");
    assert!(err.contains("node04: waiting: lifecycle state ipxe"), "{err}");
    assert!(err.contains("node04: waiting: booted; SSH 127.0.0.14"), "{err}");
    assert!(out.contains("node05  skipped") && out.contains("already installed"), "{out}");
    assert!(rig.api.events_of("52:54:00:00:01:05").is_empty());
    drop(flip);
}

#[test]
fn bad_selections_are_refused_before_anything_runs() {
    let rig = Rig::new(&[]);
    let (code, _, err, _) = rig.provision(&["--nodes", "node09"], "0");
    assert_eq!(code, 2);
    assert!(
        err.contains("no cluster node \"node09\" (cluster nodes: node01, node02, node03, node04, node05)"),
        "{err}"
    );
    assert!(rig.calls().is_empty());
}

#[test]
fn a_terminal_gets_a_live_block_redrawn_in_place() {
    if !common::require("script", "util-linux") {
        return;
    }
    let rig = Rig::new(&[3]);
    let cmd = format!(
        "{} provision --config {} --flake /srv/provisioning --server {} --log-dir {} --nodes node04",
        env!("CARGO_BIN_EXE_ferroboot"),
        rig.path("ferroboot.toml").display(),
        rig.api.url,
        rig.path("logs").display()
    );
    // script(1) runs the command on a pseudo-terminal and copies what it drew to stdout.
    let out = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .env("FAKE_DIR", rig.dir.path())
        .env("FAKE_SLEEP", "2")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("\r\x1b[2Knode04"), "live lines are cleared and redrawn: {text:?}");
    assert!(text.contains("\x1b[1A"), "the cursor goes back up over the block: {text:?}");
    assert!(text.contains("installing (attempt 1/3)") && text.contains("1 installed, 0 failed"), "{text:?}");
    assert!(!text.contains("[+"), "no plain lines on a terminal: {text:?}");
}

#[test]
fn sigint_stops_running_installs_and_reports_them_failed() {
    let rig = Rig::new(&[3]);
    std::fs::write(rig.path("hang-node04"), "").unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_ferroboot"))
        .arg("provision")
        .args(["--config", rig.path("ferroboot.toml").to_str().unwrap()])
        .args(["--flake", "/srv/provisioning", "--server", &rig.api.url, "--nodes", "node04"])
        .args(["--log-dir", rig.path("logs").to_str().unwrap()])
        .env("FAKE_DIR", rig.dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !rig.path("hang-node04.pid").exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let t = Instant::now();
    let out = child.wait_with_output().unwrap();
    assert!(t.elapsed() < Duration::from_secs(8), "stopped within the grace period");
    assert_eq!(out.status.code(), Some(130));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("node04  FAILED") && stdout.contains("interrupted"), "{stdout}");
    assert_eq!(rig.api.events_of("52:54:00:00:01:04"), ["installing", "failed"]);
    let pid: i32 = std::fs::read_to_string(rig.path("hang-node04.pid")).unwrap().trim().parse().unwrap();
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    assert!(stat.is_empty() || stat.contains(") Z"), "the install's children were stopped: {stat}");
}

#[test]
fn a_node_that_never_becomes_ready_fails_at_the_ready_timeout() {
    let rig = Rig::new(&[]);
    rig.api.set("52:54:00:00:01:04", "node04", "ipxe");
    let (code, out, err, took) = rig.provision(&["--nodes", "node04", "--ready-timeout", "2s"], "0");
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(took < Duration::from_secs(8), "took {took:?}");
    assert!(
        out.contains("node04  FAILED      0") && out.contains("not ready after 2s: lifecycle state ipxe"),
        "{out}"
    );
    assert!(rig.calls().is_empty());
    let e = rig.api.events();
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(e[0].event, "failed");
    assert_eq!(e[0].detail.as_deref(), Some("not ready after 2s: lifecycle state ipxe"));
}

#[test]
fn with_cluster_config_installs_each_nodes_first_boot_file() {
    use std::os::unix::fs::PermissionsExt;
    let rig = Rig::new(&[0, 3]);
    let (code, out, err, _) = rig.provision(&["--nodes", "node04,node01", "--with-cluster-config"], "0");
    assert_eq!(code, 0, "{out}\n{err}");
    for (node, i) in [("node01", 0), ("node04", 3)] {
        let root = rig.path(&format!("logs/extra-files/{node}"));
        let call = rig.calls().into_iter().find(|c| c.0 == node).unwrap();
        assert_eq!(
            call.4,
            format!(
                "--flake /srv/provisioning#{node} -p {} --extra-files {} root@{}",
                rig.ssh_port,
                root.display(),
                ip(i)
            )
        );
        let file = root.join("etc/nixos/secrets/cluster-config.json");
        let got = std::fs::read_to_string(&file).unwrap();
        let want = Command::new(env!("CARGO_BIN_EXE_ferroboot"))
            .args(["cluster-config", "--config", rig.path("ferroboot.toml").to_str().unwrap(), node])
            .output()
            .unwrap();
        assert_eq!(got, String::from_utf8_lossy(&want.stdout));
        assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    }
    let v: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(rig.path("logs/extra-files/node04/etc/nixos/secrets/cluster-config.json"))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(v["bootstrap"], false);
    assert_eq!(v["leader_url"], "https://node01.example.com:2379");
}
