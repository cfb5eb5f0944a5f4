//! `ferroboot cluster-config` and `check-config` on [cluster] configs: the runbook's 3-node
//! bootstrap + node04 join must produce the first-boot README's JSON (tests/golden/cluster-config,
//! written by hand from the documents), read back with jq as the README reads it.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

fn ferroboot(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ferroboot")).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn golden(node: &str) -> String {
    std::fs::read_to_string(repo(&format!("tests/golden/cluster-config/{node}.json"))).unwrap()
}

#[test]
fn runbook_cluster_matches_the_golden_first_boot_files() {
    let cfg = repo("examples/runbook-cluster.toml");
    let cfg = cfg.to_str().unwrap();
    let (code, out, err) = ferroboot(&["check-config", cfg]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("cluster prod-cluster (3 bootstrap, 1 join)"), "{out}");

    let dir = tempfile::tempdir().unwrap();
    let (code, out, err) =
        ferroboot(&["cluster-config", "--config", cfg, "--all", "--out", dir.path().to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().count(), 4, "{out}");
    for node in ["node01", "node02", "node03", "node04"] {
        let got = std::fs::read_to_string(dir.path().join(format!("cluster-config-{node}.json"))).unwrap();
        assert_eq!(got, golden(node), "{node}");
    }
    // One node to stdout, by hostname or by MAC.
    let (code, out, _) = ferroboot(&["cluster-config", "--config", cfg, "node04"]);
    assert_eq!(code, 0);
    assert_eq!(out, golden("node04"));
    let (_, out, _) = ferroboot(&["cluster-config", "--config", cfg, "52:54:00:12:34:57"]);
    assert_eq!(out, golden("node02"));

    // The first-boot README's own check: jq '.node_id, .bootstrap, .leader_url'.
    if common::require("jq", "jq") {
        let f = dir.path().join("cluster-config-node04.json");
        let (ok, out) = common::run(Command::new("jq").args([".node_id, .bootstrap, .leader_url"]).arg(&f));
        assert!(ok, "{out}");
        assert_eq!(out, "\"node04\"\nfalse\n\"https://node01.example.com:2379\"\n");
        let f = dir.path().join("cluster-config-node02.json");
        let (_, out) = common::run(Command::new("jq").args(["-c", ".initial_peers"]).arg(&f));
        assert_eq!(
            out,
            "[\"node01.example.com:2380\",\"node02.example.com:2380\",\"node03.example.com:2380\"]\n"
        );
    }
}

#[test]
fn optional_fields_and_explicit_bootstrap() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        r#"
[nodes."52:54:00:00:00:01"]
hostname = "aio01"
role = "all-in-one"
cluster_address = "10.0.2.10"
datacenter = "dc1"
rack = "r7"

[nodes."52:54:00:00:00:02"]
hostname = "w01"
role = "worker"
cluster_address = "10.0.2.11"

[cluster]
cluster_name = "dev"
bootstrap = ["aio01"]
node_details = true
tls = { ca_path = "/etc/nixos/secrets/ca.crt", cert_path = "/etc/nixos/secrets/{node}.crt", key_path = "/etc/nixos/secrets/{node}.key" }
network = { cluster = "10.0.2.0/24" }
"#,
    )
    .unwrap();
    let (code, out, err) = ferroboot(&["cluster-config", "--config", cfg.to_str().unwrap(), "aio01"]);
    assert_eq!(code, 0, "{err}");
    // The first-boot README's Example 3 (single-node all-in-one), plus the optional fields.
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["initial_peers"], serde_json::json!(["aio01:2380"]));
    assert_eq!(v["flaredb_peers"], serde_json::json!(["aio01:2480"]));
    assert_eq!(v["raft_addr"], "10.0.2.10:2380");
    assert_eq!(v["bootstrap"], true);
    assert_eq!(v["node_ip"], "10.0.2.10");
    assert!(v.get("node_fqdn").is_none(), "no domain, no FQDN");
    assert_eq!(v["datacenter"], "dc1");
    assert_eq!(v["rack"], "r7");
    assert_eq!(v["tls"]["cert_path"], "/etc/nixos/secrets/aio01.crt");
    assert_eq!(v["network"]["cluster"], "10.0.2.0/24");
    let (_, out, _) = ferroboot(&["cluster-config", "--config", cfg.to_str().unwrap(), "w01"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["bootstrap"], false);
    assert_eq!(v["leader_url"], "https://aio01:2379");
}

#[test]
fn cluster_config_errors_name_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.toml");
    std::fs::write(
        &cfg,
        r#"[nodes."52:54:00:00:00:01"]
hostname = "node01"
role = "control-plane"
cluster_address = "10.0.2.10"

[nodes."52:54:00:00:00:02"]
hostname = "node01"
role = "storage"
cluster_address = "10.0.2.10"
ssh_port = 0

[cluster]
cluster_name = ""
bootstrap = ["node01", "node09"]
leader = "node07"
chainfire_port = 70000
network = { cluster = "10.0.2.0" }
nixos_anywhere = []
"#,
    )
    .unwrap();
    let (code, _, err) = ferroboot(&["check-config", cfg.to_str().unwrap()]);
    assert_eq!(code, 1);
    let f = cfg.display().to_string();
    for want in [
        format!(
            "{f}:9: nodes.\"52:54:00:00:00:02\".cluster_address: 10.0.2.10 is also given to 52:54:00:00:00:01"
        ),
        format!("{f}:10: nodes.\"52:54:00:00:00:02\".ssh_port: 0 is out of range 1..=65535"),
        format!("{f}:13: cluster.cluster_name: must not be empty"),
        format!("{f}:16: cluster.chainfire_port: 70000 is out of range 1..=65535"),
        format!("{f}:18: cluster.nixos_anywhere: must name a program"),
        format!(
            "{f}:7: nodes.\"52:54:00:00:00:02\".hostname: \"node01\" is also the hostname of 52:54:00:00:00:01"
        ),
        format!(
            "{f}:8: nodes.\"52:54:00:00:00:02\".role: cluster node node01: role \"storage\" is not one of control-plane, worker, all-in-one"
        ),
        format!("{f}:14: cluster.bootstrap: no node has hostname \"node09\""),
        format!("{f}:15: cluster.leader: \"node07\" is not a bootstrap node (node01, node09)"),
        format!("{f}:17: cluster.network.cluster: \"10.0.2.0\" is not a CIDR"),
    ] {
        assert!(err.contains(&want), "missing {want:?} in:\n{err}");
    }
    // Without [cluster], the cluster commands say what is missing.
    let plain = repo("examples/ferroboot.toml");
    let (code, _, err) = ferroboot(&["cluster-config", "--config", plain.to_str().unwrap(), "node01"]);
    assert_eq!(code, 2);
    assert!(err.contains("no [cluster] section"), "{err}");
}
