//! Each node's `cluster-config.json` in the first-boot automation's format, from the inventory:
//! the bootstrap nodes (the first three control-plane nodes unless `[cluster] bootstrap` says
//! otherwise) get `bootstrap: true`, the same `initial_peers`/`flaredb_peers` and their own
//! `leader_url`; every later node gets `bootstrap: false` and the leader's URL to join through.
//! [`validate`] checks a whole set the way first boot would trip over it.

use crate::config::cluster::{ClusterSettings, ROLES};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddrV4;

/// TLS certificate paths on the node (the runbook's `tls` settings).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsJson {
    pub cert_path: String,
    pub key_path: String,
    pub ca_path: String,
}

/// One cluster-config.json. Field order is the first-boot README's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FirstBootConfig {
    pub node_id: String,
    pub node_role: String,
    pub bootstrap: bool,
    pub cluster_name: String,
    pub leader_url: String,
    pub raft_addr: String,
    pub initial_peers: Vec<String>,
    pub flaredb_peers: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_fqdn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datacenter: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rack: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsJson>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<BTreeMap<String, String>>,
}

impl FirstBootConfig {
    /// Pretty JSON with a trailing newline, as written to disk.
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).expect("plain data serializes");
        s.push('\n');
        s
    }
}

/// The configs of every member, bootstrap nodes first.
pub fn build(c: &ClusterSettings) -> Vec<FirstBootConfig> {
    let peers = |port: u16| -> Vec<String> {
        c.members.iter().filter(|m| m.bootstrap).map(|m| format!("{}:{port}", c.fqdn(&m.hostname))).collect()
    };
    let initial_peers = peers(c.ports.chainfire_raft);
    let flaredb_peers = peers(c.ports.flaredb_raft);
    let url = |host: &str| format!("https://{}:{}", c.fqdn(host), c.ports.chainfire);
    c.members
        .iter()
        .map(|m| FirstBootConfig {
            node_id: m.hostname.clone(),
            node_role: m.role.clone(),
            bootstrap: m.bootstrap,
            cluster_name: c.cluster_name.clone(),
            // The README's decision matrix: bootstrap nodes point at themselves, joiners at node 1.
            leader_url: if m.bootstrap { url(&m.hostname) } else { url(&c.leader) },
            raft_addr: format!("{}:{}", m.address, c.ports.chainfire_raft),
            initial_peers: initial_peers.clone(),
            flaredb_peers: flaredb_peers.clone(),
            node_ip: c.node_details.then(|| m.address.to_string()),
            node_fqdn: (c.node_details && c.domain.is_some()).then(|| c.fqdn(&m.hostname)),
            datacenter: m.datacenter.clone(),
            rack: m.rack.clone(),
            tls: c.tls.as_ref().map(|t| TlsJson {
                cert_path: t.cert_path.replace("{node}", &m.hostname),
                key_path: t.key_path.replace("{node}", &m.hostname),
                ca_path: t.ca_path.replace("{node}", &m.hostname),
            }),
            network: (!c.network.is_empty()).then(|| c.network.clone()),
        })
        .collect()
}

fn host_of_url(url: &str) -> Option<(&str, u16)> {
    let rest = url.strip_prefix("https://")?;
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let (host, port) = rest.rsplit_once(':')?;
    if host.is_empty() || host.contains('/') {
        return None;
    }
    Some((host, port.parse().ok()?))
}

fn host_of_peer(peer: &str) -> Option<&str> {
    let (host, port) = peer.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    (!host.is_empty()).then_some(host)
}

/// Checks a set of configs the way first boot depends on them; every problem, one line each,
/// prefixed with the node id.
pub fn validate(set: &[FirstBootConfig]) -> Result<(), Vec<String>> {
    let mut errs = Vec::new();
    if set.is_empty() {
        errs.push("no cluster nodes (inventory nodes with a hostname)".to_string());
        return Err(errs);
    }
    let mut ids = BTreeSet::new();
    let mut raft: BTreeMap<&str, &str> = BTreeMap::new();
    let first = &set[0];
    let bootstrap_ids: Vec<&str> = set.iter().filter(|c| c.bootstrap).map(|c| c.node_id.as_str()).collect();
    if bootstrap_ids.is_empty() {
        errs.push("no node has bootstrap: true; nothing would initialise the cluster".into());
    }
    for c in set {
        let id = if c.node_id.is_empty() { "(empty node_id)" } else { c.node_id.as_str() };
        let mut e = |m: String| errs.push(format!("{id}: {m}"));
        if c.node_id.is_empty() {
            e("node_id is required".into());
        }
        if !ids.insert(c.node_id.as_str()) {
            e("node_id is not unique".into());
        }
        if !ROLES.contains(&c.node_role.as_str()) {
            e(format!("node_role {:?} is not one of {}", c.node_role, ROLES.join(", ")));
        }
        if c.cluster_name.is_empty() {
            e("cluster_name is required".into());
        } else if c.cluster_name != first.cluster_name {
            e(format!(
                "cluster_name {:?} differs from {}'s {:?}",
                c.cluster_name, first.node_id, first.cluster_name
            ));
        }
        match c.raft_addr.parse::<SocketAddrV4>() {
            Ok(a) if a.ip().is_unspecified() || a.port() == 0 => {
                e(format!("raft_addr {} is not routable", c.raft_addr))
            }
            Ok(_) => {}
            Err(_) => e(format!("raft_addr {:?} is not IP:port", c.raft_addr)),
        }
        if let Some(other) = raft.insert(c.raft_addr.as_str(), c.node_id.as_str()) {
            e(format!("raft_addr {} is also {other}'s", c.raft_addr));
        }
        if c.initial_peers.is_empty() {
            e("initial_peers is empty".into());
        }
        if c.flaredb_peers.len() != c.initial_peers.len() {
            e(format!("{} flaredb_peers for {} initial_peers", c.flaredb_peers.len(), c.initial_peers.len()));
        }
        if c.initial_peers != first.initial_peers || c.flaredb_peers != first.flaredb_peers {
            e(format!("peers differ from {}'s; bootstrap needs the same list on every node", first.node_id));
        }
        for p in c.initial_peers.iter().chain(&c.flaredb_peers) {
            if host_of_peer(p).is_none() {
                e(format!("peer {p:?} is not host:port"));
            }
        }
        let peer_hosts: Vec<&str> = c.initial_peers.iter().filter_map(|p| host_of_peer(p)).collect();
        if peer_hosts.len() != bootstrap_ids.len() && !bootstrap_ids.is_empty() {
            e(format!("{} initial_peers for {} bootstrap nodes", peer_hosts.len(), bootstrap_ids.len()));
        }
        let own = peer_hosts.iter().any(|h| h.split('.').next() == Some(c.node_id.as_str()));
        match host_of_url(&c.leader_url) {
            None => e(format!("leader_url {:?} is not https://host:port", c.leader_url)),
            Some((host, _)) => {
                let leader_id = host.split('.').next().unwrap_or(host);
                if c.bootstrap && leader_id != c.node_id {
                    e(format!("bootstrap node's leader_url points at {leader_id}, not itself"));
                }
                if !c.bootstrap && !bootstrap_ids.contains(&leader_id) {
                    e(format!("leader_url points at {leader_id}, which is not a bootstrap node"));
                }
            }
        }
        if c.bootstrap && !own {
            e("bootstrap node is missing from its own initial_peers".into());
        }
        if !c.bootstrap && own {
            e("join node is listed in initial_peers (it would try to bootstrap)".into());
        }
    }
    if errs.is_empty() { Ok(()) } else { Err(errs) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use std::path::Path;

    fn runbook() -> Vec<FirstBootConfig> {
        let text = include_str!("../../examples/runbook-cluster.toml");
        let c = Config::from_toml(Path::new("runbook-cluster.toml"), text).unwrap();
        build(c.cluster.as_ref().unwrap())
    }

    #[test]
    fn runbook_set_is_valid() {
        let set = runbook();
        assert_eq!(
            set.iter().map(|c| c.node_id.as_str()).collect::<Vec<_>>(),
            ["node01", "node02", "node03", "node04"]
        );
        validate(&set).unwrap();
    }

    #[test]
    fn broken_sets_are_reported() {
        let mut set = runbook();
        set[1].raft_addr = set[0].raft_addr.clone();
        set[2].initial_peers.pop();
        set[3].leader_url = "https://node04.example.com:2379".into();
        set[3].node_role = "storage".into();
        let errs = validate(&set).unwrap_err();
        let all = errs.join("\n");
        assert!(all.contains("node02: raft_addr 10.0.200.10:2380 is also node01's"), "{all}");
        assert!(all.contains("node03: peers differ from node01's"), "{all}");
        assert!(all.contains("node04: leader_url points at node04, which is not a bootstrap node"), "{all}");
        assert!(all.contains("node04: node_role \"storage\""), "{all}");

        let mut set = runbook();
        set[0].bootstrap = false;
        set[3].bootstrap = true;
        let all = validate(&set).unwrap_err().join("\n");
        assert!(all.contains("node01: join node is listed in initial_peers"), "{all}");
        assert!(all.contains("node04: bootstrap node is missing from its own initial_peers"), "{all}");
        assert!(all.contains("node04: bootstrap node's leader_url points at node01"), "{all}");
        assert!(validate(&[]).is_err());
    }
}
