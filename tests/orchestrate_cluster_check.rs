//! `ferroboot cluster check` against a fake 3-node cluster: per node, HTTPS servers (rustls, a
//! CA and node certificates made with rcgen for node0N.example.com) on Chainfire, FlareDB and IAM
//! ports of its own 127.0.0.2x address, answering the runbook's /health and
//! /admin/cluster/members bodies, or what a scenario puts there. curl (the runbook's client)
//! checks the fake speaks real TLS under the runbook's names.

mod common;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const N: usize = 3;
const SERVICES: [&str; 3] = ["chainfire", "flaredb", "iam"];

fn ip(i: usize) -> String {
    format!("127.0.0.{}", 21 + i)
}
fn name(i: usize) -> String {
    format!("node0{}", i + 1)
}

type Answers = Arc<Mutex<BTreeMap<(usize, &'static str, &'static str), (u16, String)>>>;

struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Ca {
    fn new(cn: &str) -> Ca {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name.push(DnType::CommonName, cn);
        Ca { issuer: CertifiedIssuer::self_signed(p, KeyPair::generate().unwrap()).unwrap() }
    }
    fn leaf(&self, host: &str, addr: &str) -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
        let key = KeyPair::generate().unwrap();
        let p = CertificateParams::new(vec![host.to_string(), addr.to_string()]).unwrap();
        let cert = p.signed_by(&key, &self.issuer).unwrap();
        (cert.der().clone(), PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())))
    }
}

fn members(leaders: &[usize], ids: &[usize], sick: &[usize], raft_port: u16) -> String {
    let m: Vec<String> = ids
        .iter()
        .map(|&i| {
            format!(
                r#"{{"id":"{}","raft_addr":"10.0.200.{}:{raft_port}","status":"{}","role":"{}"}}"#,
                name(i),
                10 + i,
                if sick.contains(&i) { "unhealthy" } else { "healthy" },
                if leaders.contains(&i) { "leader" } else { "follower" }
            )
        })
        .collect();
    format!(r#"{{"members":[{}]}}"#, m.join(","))
}

struct Cluster {
    dir: tempfile::TempDir,
    answers: Answers,
    ports: [u16; 3],
}

impl Cluster {
    /// A healthy cluster; `down`: nodes with nothing listening; `silent`: (node, service) whose
    /// port accepts TCP but never answers.
    fn start(down: &[usize], silent: &[(usize, usize)]) -> Cluster {
        let dir = tempfile::Builder::new().prefix("ferroboot-orch-check").tempdir().unwrap();
        let ca = Ca::new("ferroboot test cluster CA");
        std::fs::write(dir.path().join("ca.pem"), ca.issuer.pem()).unwrap();
        std::fs::write(dir.path().join("other-ca.pem"), Ca::new("someone else").issuer.pem()).unwrap();
        let ports = [common::free_tcp_port(), common::free_tcp_port(), common::free_tcp_port()];
        let c = Cluster { dir, answers: Arc::default(), ports };
        c.set_healthy();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        for i in 0..N {
            if down.contains(&i) {
                continue;
            }
            let (cert, key) = ca.leaf(&format!("{}.example.com", name(i)), &ip(i));
            let cfg = rustls::ServerConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(vec![cert], key)
                .unwrap();
            let cfg = Arc::new(cfg);
            for (s, service) in SERVICES.iter().enumerate() {
                let l = TcpListener::bind((ip(i).as_str(), ports[s])).unwrap();
                if silent.contains(&(i, s)) {
                    std::thread::spawn(move || {
                        let mut held = Vec::new();
                        for conn in l.incoming().flatten() {
                            held.push(conn);
                        }
                    });
                    continue;
                }
                let (cfg, answers) = (cfg.clone(), c.answers.clone());
                std::thread::spawn(move || {
                    for conn in l.incoming().flatten() {
                        let (cfg, answers) = (cfg.clone(), answers.clone());
                        std::thread::spawn(move || serve(conn, cfg, answers, i, service));
                    }
                });
            }
        }
        let mut toml = String::new();
        for i in 0..N {
            toml += &format!(
                "[nodes.\"52:54:00:00:02:0{}\"]\nhostname = \"{}\"\nrole = \"control-plane\"\ncluster_address = \"{}\"\n\n",
                i + 1,
                name(i),
                ip(i)
            );
        }
        toml += &format!(
            "[cluster]\ncluster_name = \"prod-cluster\"\ndomain = \"example.com\"\nca = \"ca.pem\"\nchainfire_port = {}\nflaredb_port = {}\niam_port = {}\n",
            ports[0], ports[1], ports[2]
        );
        std::fs::write(c.dir.path().join("ferroboot.toml"), toml).unwrap();
        c
    }

    fn path(&self, f: &str) -> PathBuf {
        self.dir.path().join(f)
    }

    fn set(&self, node: usize, service: &'static str, path: &'static str, status: u16, body: &str) {
        self.answers.lock().unwrap().insert((node, service, path), (status, body.to_string()));
    }

    fn set_healthy(&self) {
        for i in 0..N {
            let raft = if i == 0 { "leader" } else { "follower" };
            self.set(
                i,
                "chainfire",
                "/health",
                200,
                &format!(r#"{{"status":"healthy","raft":"{raft}","cluster_size":3}}"#),
            );
            self.set(
                i,
                "flaredb",
                "/health",
                200,
                &format!(r#"{{"status":"healthy","raft":"{raft}","chainfire":"connected"}}"#),
            );
            self.set(
                i,
                "iam",
                "/health",
                200,
                r#"{"status":"healthy","database":"connected","version":"1.0.0"}"#,
            );
            self.set(i, "chainfire", "/admin/cluster/members", 200, &members(&[0], &[0, 1, 2], &[], 2380));
            self.set(i, "flaredb", "/admin/cluster/members", 200, &members(&[0], &[0, 1, 2], &[], 2480));
        }
    }

    fn check(&self, args: &[&str]) -> (i32, String, String, Duration) {
        let t = Instant::now();
        let out = Command::new(env!("CARGO_BIN_EXE_ferroboot"))
            .args(["cluster", "check", "--config", self.path("ferroboot.toml").to_str().unwrap()])
            .args(args)
            .output()
            .unwrap();
        let o = String::from_utf8_lossy(&out.stdout).into_owned();
        let e = String::from_utf8_lossy(&out.stderr).into_owned();
        (out.status.code().unwrap_or(-1), o, e, t.elapsed())
    }
}

fn serve(
    conn: std::net::TcpStream,
    cfg: Arc<rustls::ServerConfig>,
    answers: Answers,
    node: usize,
    service: &'static str,
) {
    let tls = rustls::ServerConnection::new(cfg).unwrap();
    let mut s = rustls::StreamOwned::new(tls, conn);
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut b) {
            Ok(1) => head.push(b[0]),
            _ => return, // handshake refused (wrong CA at the client) or closed
        }
    }
    let head = String::from_utf8_lossy(&head);
    let path = head.split_whitespace().nth(1).unwrap_or("").to_string();
    let found = answers
        .lock()
        .unwrap()
        .iter()
        .find(|((n, sv, p), _)| *n == node && *sv == service && *p == path)
        .map(|(_, v)| v.clone());
    let (status, body) = found.unwrap_or((404, r#"{"error":"not found"}"#.into()));
    let _ = write!(
        s,
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = s.flush();
    s.conn.send_close_notify();
    let _ = s.flush();
}

fn fails(out: &str) -> Vec<&str> {
    out.lines().filter(|l| l.contains(" FAIL ")).collect()
}

#[test]
fn healthy_cluster_passes_and_curl_sees_the_runbook_answer() {
    let c = Cluster::start(&[], &[]);
    let (code, out, err, _) = c.check(&[]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.ends_with("all 17 checks passed\n"), "{out}");
    assert!(
        out.contains("node01   chainfire  health   ok      healthy, raft leader, cluster_size 3"),
        "{out}"
    );
    assert!(out.contains("cluster  chainfire  leader   ok      leader node01, agreed by 3 node(s)"), "{out}");
    let (code, json, _, _) = c.check(&["--json"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["ok"], true);
    assert_eq!(v["checks"].as_array().unwrap().len(), 17);
    assert_eq!(v["expected_members"], serde_json::json!(["node01", "node02", "node03"]));

    if common::require("curl", "curl") {
        let host = format!("node01.example.com:{}", c.ports[0]);
        let (ok, body) = common::run(Command::new("curl").args([
            "-sS",
            "--cacert",
            c.path("ca.pem").to_str().unwrap(),
            "--resolve",
            &format!("{host}:{}", ip(0)),
            &format!("https://{host}/health"),
        ]));
        assert!(ok, "{body}");
        assert_eq!(body, r#"{"status":"healthy","raft":"leader","cluster_size":3}"#);
    }
}

#[test]
fn degraded_cluster_fails_the_affected_checks() {
    let c = Cluster::start(&[], &[]);
    c.set(
        1,
        "flaredb",
        "/health",
        503,
        r#"{"status":"degraded","raft":"follower","chainfire":"disconnected"}"#,
    );
    c.set(2, "chainfire", "/admin/cluster/members", 200, &members(&[0], &[0, 1, 2], &[1], 2380));
    let (code, out, _, _) = c.check(&[]);
    assert_eq!(code, 1, "{out}");
    let f = fails(&out);
    assert_eq!(f.len(), 2, "{out}");
    assert!(f[0].starts_with("node03   chainfire  members  FAIL    node02 is unhealthy"), "{out}");
    assert!(
        f[1].starts_with("node02   flaredb    health   FAIL    HTTP 503: {\"status\":\"degraded\""),
        "{out}"
    );
    assert!(out.ends_with("2 of 17 checks failed\n"), "{out}");
}

#[test]
fn split_brain_is_detected_within_and_across_nodes() {
    let c = Cluster::start(&[], &[]);
    // node01 sees two leaders; node03 follows itself and says so in /health.
    c.set(0, "chainfire", "/admin/cluster/members", 200, &members(&[0, 2], &[0, 1, 2], &[], 2380));
    c.set(2, "chainfire", "/admin/cluster/members", 200, &members(&[2], &[0, 1, 2], &[], 2380));
    c.set(2, "chainfire", "/health", 200, r#"{"status":"healthy","raft":"leader","cluster_size":3}"#);
    let (code, out, _, _) = c.check(&[]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("node01   chainfire  members  FAIL    2 leaders: node01, node03 (split brain)"),
        "{out}"
    );
    assert!(
        out.contains("cluster  chainfire  leader   FAIL    nodes disagree on the leader: node01 per node02; node03 per node03 (split brain); 2 nodes report raft leader: node01, node03"),
        "{out}"
    );
}

#[test]
fn wrong_member_count_fails() {
    let c = Cluster::start(&[], &[]);
    for i in 0..N {
        c.set(i, "flaredb", "/admin/cluster/members", 200, &members(&[0], &[0, 1], &[], 2480));
        c.set(i, "chainfire", "/health", 200, r#"{"status":"healthy","raft":"follower","cluster_size":2}"#);
    }
    let (code, out, _, _) = c.check(&[]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("node02   flaredb    members  FAIL    2 members, expected 3; missing node03"),
        "{out}"
    );
    assert!(out.contains("node01   chainfire  health   FAIL    cluster_size 2, expected 3"), "{out}");
    // Checking only the two nodes that are there expects two members.
    let (_, out, _, _) = c.check(&["--nodes", "node01,node02"]);
    assert!(
        out.contains("node01   flaredb    members  ok      2 members, all healthy, leader node01"),
        "{out}"
    );
}

#[test]
fn unreachable_and_silent_nodes_fail_within_the_timeout() {
    let c = Cluster::start(&[2], &[(1, 2)]);
    let (code, out, _, took) = c.check(&["--timeout", "1s"]);
    assert_eq!(code, 1, "{out}");
    assert!(took < Duration::from_secs(8), "took {took:?}");
    let f = fails(&out);
    assert_eq!(
        f.iter().filter(|l| l.starts_with("node03 ") && l.contains("unreachable: ")).count(),
        5,
        "{out}"
    );
    let silent: Vec<_> = f.iter().filter(|l| l.starts_with("node02   iam")).collect();
    assert_eq!(silent.len(), 1, "{out}");
    assert!(silent[0].contains("unreachable: ") && silent[0].to_lowercase().contains("timed out"), "{out}");
}

#[test]
fn certificates_are_verified_against_the_cluster_ca_unless_insecure() {
    let c = Cluster::start(&[], &[]);
    let other = c.path("other-ca.pem");
    let (code, out, _, _) = c.check(&["--ca", other.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert_eq!(fails(&out).len(), 17, "{out}");
    assert!(out.contains("UnknownIssuer"), "{out}");
    let (code, out, _, _) = c.check(&["--insecure"]);
    assert_eq!(code, 0, "{out}");
    let (code, _, err, _) = c.check(&["--ca", c.path("missing.pem").to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("missing.pem"), "{err}");
}

#[test]
fn wait_retries_until_healthy_or_the_deadline() {
    let c = Cluster::start(&[], &[]);
    c.set(1, "chainfire", "/health", 503, r#"{"status":"starting"}"#);
    let answers = c.answers.clone();
    let healer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(2));
        answers.lock().unwrap().insert(
            (1, "chainfire", "/health"),
            (200, r#"{"status":"healthy","raft":"follower","cluster_size":3}"#.into()),
        );
    });
    let (code, out, err, took) = c.check(&["--wait", "30s"]);
    healer.join().unwrap();
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(err.contains("1 of 17 checks failing; retrying for"), "{err}");
    assert!(took >= Duration::from_secs(2) && took < Duration::from_secs(15), "took {took:?}");

    c.set(1, "chainfire", "/health", 503, r#"{"status":"starting"}"#);
    let (code, _, _, took) = c.check(&["--wait", "3s"]);
    assert_eq!(code, 1);
    assert!(took >= Duration::from_secs(3) && took < Duration::from_secs(10), "took {took:?}");
}
