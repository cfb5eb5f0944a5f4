//! The orchestration actions through the JSON API of the real `ferroboot serve`, driven with curl
//! as a UI or CI would: cluster-config is what `ferroboot cluster-config NODE` prints; a provision
//! job (the fake nixos-anywhere of tests/orchestrate_support/) goes running → succeeded and the
//! node's own lifecycle record shows installing → installed; a second provision meanwhile gets
//! 409; `/health` answers at once while the job runs (the event loop is not blocked); a cluster
//! check job against an unreachable node ends failed with the reason. A hung install is stopped
//! by cancelling its job, and by stopping the server; either way the node ends `failed`, also
//! across a restart.

mod common;

use serde_json::Value;
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const MAC: &str = "52:54:00:00:04:01";

/// (HTTP status, body) of a curl call.
fn curl(args: &[&str]) -> (u16, String) {
    let (ok, out) = common::run(Command::new("curl").args(["-sS", "-w", "\n%{http_code}"]).args(args));
    assert!(ok, "curl {args:?}: {out}");
    let (body, code) = out.rsplit_once('\n').unwrap();
    (code.trim().parse().unwrap_or_else(|_| panic!("{out}")), body.to_string())
}

fn json(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("{e}: {s}"))
}

fn post(url: &str, body: &str) -> (u16, Value) {
    let (code, b) = curl(&["-X", "POST", "-H", "Content-Type: application/json", "-d", body, url]);
    (code, json(&b))
}

/// Polls a job until it is no longer running; returns it and how long that took.
fn wait_job(base: &str, id: &str, limit: Duration) -> (Value, Duration) {
    let start = Instant::now();
    loop {
        let (code, b) = curl(&[&format!("{base}/api/v1/jobs/{id}")]);
        assert_eq!(code, 200, "{b}");
        let v = json(&b);
        if v["state"] != "running" {
            return (v, start.elapsed());
        }
        assert!(start.elapsed() < limit, "job {id} still running after {limit:?}: {b}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

struct Setup {
    scratch: common::Scratch,
    server: common::Server,
    base: String,
    fake_dir: std::path::PathBuf,
    logs: std::path::PathBuf,
    cfg: std::path::PathBuf,
    ssh: u16,
    _ssh: TcpListener,
    /// The server's arguments, to start it again on the same state.
    args: Vec<String>,
}

/// The server with node01 (control-plane, its installer's SSH port open) and node02 (worker);
/// the cluster's service ports closed; the fake installer sleeping `sleep` seconds.
fn setup(sleep: u32) -> Setup {
    let scratch = common::Scratch::new();
    let (http, tftp, ssh) = (common::free_tcp_port(), common::free_udp_port(), common::free_tcp_port());
    // The installer's SSH port; the cluster service ports stay closed (an unreachable cluster).
    let _ssh = TcpListener::bind(("127.0.0.41", ssh)).unwrap();
    let (cf, fdb, iam) = (common::free_tcp_port(), common::free_tcp_port(), common::free_tcp_port());
    let fake = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/orchestrate_support/fake-nixos-anywhere");
    let fake_dir = scratch.path("fake");
    std::fs::create_dir_all(&fake_dir).unwrap();
    let logs = scratch.path("logs");
    let cfg = scratch.path("ferroboot.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"[nodes."{MAC}"]
hostname = "node01"
role = "control-plane"
ip_address = "127.0.0.41"
cluster_address = "127.0.0.41"

[nodes."52:54:00:00:04:02"]
hostname = "node02"
role = "worker"
ip_address = "127.0.0.42"
cluster_address = "127.0.0.42"

[cluster]
cluster_name = "prod-cluster"
domain = "example.com"
nixos_anywhere = ["/usr/bin/env", "FAKE_DIR={}", "FAKE_SLEEP={sleep}", "{}"]
ssh_port = {ssh}
log_dir = "{}"
chainfire_port = {cf}
flaredb_port = {fdb}
iam_port = {iam}
"#,
            fake_dir.display(),
            fake.display(),
            logs.display()
        ),
    )
    .unwrap();
    let args = scratch.serve_args(&cfg, http, tftp);
    let server = common::Server::start_with(&args);
    let base = format!("http://127.0.0.1:{http}");
    Setup { scratch, server, base, fake_dir, logs, cfg, ssh, _ssh, args }
}

/// node01 booted and a provision job whose install of it hangs: the job's id and the pid of the
/// install's child (which must die with it).
fn hung_install(s: &Setup) -> (String, String) {
    std::fs::write(s.fake_dir.join("hang-node01"), "").unwrap();
    let (code, v) = post(&format!("{}/api/v1/nodes/{MAC}/events", s.base), r#"{"event":"booted"}"#);
    assert_eq!(code, 200, "{v}");
    let (code, job) =
        post(&format!("{}/api/v1/provision", s.base), r#"{"flake":"/srv/provisioning","all":true}"#);
    assert_eq!(code, 202, "{job}");
    let id = job["job"].as_str().unwrap().to_string();
    // node02 is never booted: node01 (bootstrap) installs alone and hangs.
    let pid_file = s.fake_dir.join("hang-node01.pid");
    let start = Instant::now();
    while !pid_file.exists() {
        if start.elapsed() > Duration::from_secs(15) {
            let (_, j) = curl(&[&format!("{}/api/v1/jobs/{id}", s.base)]);
            panic!("the install never started: {j}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(200));
    let pid = std::fs::read_to_string(&pid_file).unwrap().trim().to_string();
    assert!(Path::new(&format!("/proc/{pid}")).exists(), "the hung install's child runs");
    (id, pid)
}

/// Waits for the hung install's child to go (its whole process group got SIGTERM; a zombie may
/// linger until reaped by init).
fn wait_gone(pid: &str) {
    let gone = |pid: &str| {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map_or(true, |st| st.rsplit(')').next().is_some_and(|r| r.trim_start().starts_with('Z')))
    };
    let deadline = Instant::now() + Duration::from_secs(3);
    while !gone(pid) {
        assert!(Instant::now() < deadline, "install child {pid} survived");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// node01's lifecycle record: (state, detail of its last entry).
fn node01(base: &str) -> (String, String) {
    let (code, n) = curl(&[&format!("{base}/api/v1/nodes/{MAC}")]);
    assert_eq!(code, 200, "{n}");
    let n = json(&n);
    let last = n["history"].as_array().and_then(|h| h.last()).cloned().unwrap_or_default();
    (n["state"].as_str().unwrap_or("").to_string(), last["detail"].as_str().unwrap_or("").to_string())
}

#[test]
fn orchestration_through_the_api() {
    if !common::require("curl", "curl") {
        return;
    }
    let Setup { scratch: _scratch, mut server, base, fake_dir, logs, cfg, ssh, _ssh, .. } = setup(3);

    // cluster-config: the CLI's bytes, by hostname and by MAC; all nodes at once.
    let out = Command::new(env!("CARGO_BIN_EXE_ferroboot"))
        .args(["cluster-config", "--config", cfg.to_str().unwrap(), "node01"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let cli = String::from_utf8(out.stdout).unwrap();
    for who in ["node01", "52-54-00-00-04-01", "52%3A54%3A00%3A00%3A04%3A01"] {
        let (code, body) = curl(&[&format!("{base}/api/v1/nodes/{who}/cluster-config")]);
        assert_eq!((code, body.as_str()), (200, cli.as_str()), "{who}");
    }
    let (code, all) = curl(&[&format!("{base}/api/v1/cluster-config")]);
    assert_eq!(code, 200, "{all}");
    let all = json(&all);
    assert_eq!(all["nodes"]["node01"], json(&cli));
    assert_eq!(all["nodes"]["node02"]["bootstrap"], false, "{all}");
    assert_eq!(all["nodes"]["node02"]["node_role"], "worker", "{all}");
    let (code, body) = curl(&[&format!("{base}/api/v1/nodes/node99/cluster-config")]);
    assert_eq!(code, 404, "{body}");
    assert!(json(&body)["error"].as_str().unwrap().contains("node99"), "{body}");

    // Bad requests are refused before any job starts.
    let (code, v) = post(&format!("{base}/api/v1/provision"), r#"{"flake":"/srv/p","nodes":["node99"]}"#);
    assert_eq!(code, 400, "{v}");
    assert!(v["error"].as_str().unwrap().contains("node99"), "{v}");
    let (code, v) = post(&format!("{base}/api/v1/provision"), r#"{"flake":"/srv/p","paralel":2,"all":true}"#);
    assert_eq!(code, 400, "{v}");
    let (code, head) = curl(&["-i", &format!("{base}/api/v1/provision")]);
    assert_eq!(code, 405, "{head}");
    assert!(head.to_ascii_lowercase().contains("allow: post\r\n"), "{head}");

    // The installer's callback, then a provision job through the API.
    let (code, v) = post(&format!("{base}/api/v1/nodes/{MAC}/events"), r#"{"event":"booted"}"#);
    assert_eq!((code, v["state"].as_str()), (200, Some("booted")), "{v}");
    let (code, job) = post(
        &format!("{base}/api/v1/provision"),
        r#"{"flake":"/srv/provisioning","nodes":["node01"],"parallel":2,"build_on_remote":true,"timeout_s":60,"retries":0}"#,
    );
    assert_eq!(code, 202, "{job}");
    assert_eq!((job["kind"].as_str(), job["state"].as_str()), (Some("provision"), Some("running")), "{job}");
    let id = job["job"].as_str().unwrap().to_string();
    let log = logs.join("node01.log");
    assert_eq!(job["result"][0]["log"], log.display().to_string(), "{job}");

    // While it runs: a second provision is refused, /health and the job answer at once.
    let (code, v) = post(&format!("{base}/api/v1/provision"), r#"{"flake":"/srv/provisioning","all":true}"#);
    assert_eq!(code, 409, "{v}");
    assert_eq!(v["job"], id.as_str(), "{v}");
    let mut saw_installing = false;
    for _ in 0..10 {
        let t = Instant::now();
        let (code, body) = curl(&["--max-time", "2", &format!("{base}/health")]);
        let took = t.elapsed();
        assert_eq!(code, 200, "{body}");
        assert!(took < Duration::from_millis(500), "/health took {took:?} while a job runs");
        let (_, j) = curl(&[&format!("{base}/api/v1/jobs/{id}")]);
        let j = json(&j);
        assert_eq!(j["state"], "running", "the fake sleeps 3 s: {j}");
        let (_, n) = curl(&[&format!("{base}/api/v1/nodes/{MAC}")]);
        saw_installing |= json(&n)["state"] == "installing";
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(saw_installing, "the lifecycle showed installing while the job ran");
    let (done, took) = wait_job(&base, &id, Duration::from_secs(30));
    assert_eq!(done["state"], "succeeded", "{done}");
    assert!(took < Duration::from_secs(10), "{took:?}");
    assert!(done["ended_ms"].as_u64().unwrap() >= done["started_ms"].as_u64().unwrap() + 2000, "{done}");
    assert!(done["error"].is_null(), "{done}");
    let row = &done["result"][0];
    assert_eq!((row["node"].as_str(), row["result"].as_str()), (Some("node01"), Some("installed")), "{done}");
    assert_eq!(row["attempts"], 1, "{done}");
    assert_eq!(row["log"], log.display().to_string(), "{done}");
    let progress: Vec<&str> = done["progress"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert!(progress.iter().any(|l| l.contains("node01")), "{done}");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("Installation complete"), "{text}");
    let calls = std::fs::read_to_string(fake_dir.join("calls.log")).unwrap();
    let argv = format!("--flake /srv/provisioning#node01 --build-on-remote -p {ssh} root@127.0.0.41");
    assert!(calls.contains(&argv), "{calls}");
    assert_eq!(calls.lines().count(), 2, "one start, one end: {calls}");

    let (_, n) = curl(&[&format!("{base}/api/v1/nodes/{MAC}")]);
    let n = json(&n);
    assert_eq!(n["state"], "installed", "{n}");
    let states: Vec<&str> =
        n["history"].as_array().unwrap().iter().filter_map(|h| h["state"].as_str()).collect();
    assert_eq!(states[states.len() - 3..], ["booted", "installing", "installed"], "{n}");

    // A check job against the unreachable cluster ends failed with the reason.
    let (code, job) = post(
        &format!("{base}/api/v1/cluster/check"),
        r#"{"nodes":["node01"],"insecure":true,"timeout_s":1}"#,
    );
    assert_eq!(code, 202, "{job}");
    assert_eq!(job["kind"], "cluster_check", "{job}");
    let cid = job["job"].as_str().unwrap().to_string();
    let (done, _) = wait_job(&base, &cid, Duration::from_secs(20));
    assert_eq!(done["state"], "failed", "{done}");
    let err = done["error"].as_str().unwrap();
    assert!(err.contains("node01") && err.contains("unreachable"), "{done}");
    assert_eq!(done["result"]["ok"], false, "{done}");
    let checks = done["result"]["checks"].as_array().unwrap();
    assert!(!checks.is_empty() && checks.iter().all(|c| c["ok"] == false), "{done}");
    assert_eq!(done["result"]["expected_members"], serde_json::json!(["node01"]), "{done}");

    // Both jobs are listed, oldest first; an unknown one is a 404.
    let (code, list) = curl(&[&format!("{base}/api/v1/jobs")]);
    assert_eq!(code, 200);
    let ids: Vec<String> = json(&list)["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["job"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, [id, cid], "{list}");
    let (code, _) = curl(&[&format!("{base}/api/v1/jobs/999")]);
    assert_eq!(code, 404);
    server.stop();
}

#[test]
fn cancelling_a_job_stops_its_install() {
    if !common::require("curl", "curl") {
        return;
    }
    let s = setup(0);
    let (id, pid) = hung_install(&s);
    let url = format!("{}/api/v1/jobs/{id}/cancel", s.base);
    let (code, v) = post(&url, "");
    assert_eq!(code, 202, "{v}");
    assert_eq!(v["cancelled"], "cancelled through the API", "{v}");
    wait_gone(&pid);
    let (done, _) = wait_job(&s.base, &id, Duration::from_secs(15));
    assert_eq!(done["state"], "failed", "{done}");
    let err = done["error"].as_str().unwrap();
    assert!(err.starts_with("cancelled through the API") && err.contains("node01"), "{done}");
    assert_eq!(done["result"][0]["result"], "failed", "{done}");
    // node02 (never booted) is not started once cancelled.
    assert_ne!(done["result"][1]["result"], "installed", "{done}");
    let log = std::fs::read_to_string(s.logs.join("node01.log")).unwrap();
    assert!(log.contains("=== interrupted: sending SIGTERM to the process group ==="), "{log}");
    let (state, detail) = node01(&s.base);
    assert_eq!(state, "failed", "{detail}");
    assert!(detail.contains("interrupted"), "{detail}");
    // Once it ended, a cancel is a conflict; an unknown job is not found.
    let (code, v) = post(&url, "");
    assert_eq!((code, v["state"].as_str()), (409, Some("failed")), "{v}");
    let (code, _) = post(&format!("{}/api/v1/jobs/999/cancel", s.base), "");
    assert_eq!(code, 404);
    // The server keeps serving: a new provision may start.
    std::fs::remove_file(s.fake_dir.join("hang-node01")).unwrap();
    let (code, job) =
        post(&format!("{}/api/v1/provision", s.base), r#"{"flake":"/srv/provisioning","nodes":["node01"]}"#);
    assert_eq!(code, 202, "{job}");
    let mut server = s.server;
    server.stop();
}

#[test]
fn stopping_the_server_stops_a_running_install() {
    if !common::require("curl", "curl") {
        return;
    }
    let mut s = setup(0);
    let (_, pid) = hung_install(&s);
    let t = Instant::now();
    let status = s.server.stop();
    assert!(status.success(), "{status:?}: {:?}", s.server.lines);
    assert!(t.elapsed() < Duration::from_secs(10), "stopped in {:?}", t.elapsed());
    wait_gone(&pid);
    let log = std::fs::read_to_string(s.logs.join("node01.log")).unwrap();
    assert!(log.contains("=== interrupted: sending SIGTERM to the process group ==="), "{log}");
    assert!(
        s.server.lines.iter().any(|l| l.contains("orchestration: stopping 1 running job")),
        "{:?}",
        s.server.lines
    );
    // Started again on the same state, the node is not left `installing` by an install that no
    // longer runs.
    let mut again = common::Server::start_with(&s.args);
    let (state, detail) = node01(&s.base);
    assert_eq!((state.as_str(), detail.as_str()), ("failed", "install interrupted: ferroboot stopped"));
    again.stop();
}
