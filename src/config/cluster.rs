//! `[cluster]`: the settings `cluster-config`, `provision` and `cluster check` need beyond the
//! inventory, validated like the rest of the file (every error with file, line and key), and the
//! inventory resolved into cluster [`Member`]s: who bootstraps, who joins, and at which addresses.

use super::raw::{OneOrMany, RawCluster, RawNode, S};
use super::{Config, Validator, parse_mac};
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::path::PathBuf;

/// The roles the first-boot automation knows (`node_role`).
pub const ROLES: [&str; 3] = ["control-plane", "worker", "all-in-one"];
pub const DEFAULT_LOG_DIR: &str = "provision-logs";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClusterPorts {
    pub chainfire: u16,
    pub chainfire_raft: u16,
    pub flaredb: u16,
    pub flaredb_raft: u16,
    pub iam: u16,
}

impl Default for ClusterPorts {
    /// The runbook's ports: Chainfire 2379/2380, FlareDB 2479/2480, IAM 8080.
    fn default() -> Self {
        ClusterPorts { chainfire: 2379, chainfire_raft: 2380, flaredb: 2479, flaredb_raft: 2480, iam: 8080 }
    }
}

/// TLS paths written into each node's cluster-config.json; `{node}` becomes the node id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsPaths {
    pub ca_path: String,
    pub cert_path: String,
    pub key_path: String,
}

/// One inventory node as the cluster sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub mac: [u8; 6],
    /// The node id (`node_id`), the flake attribute (`PATH#<hostname>`) and the first DNS label.
    pub hostname: String,
    /// `control-plane`, `worker` or `all-in-one` (the node's `role`, else its profile).
    pub role: String,
    /// The installer's address (DHCP reservation): SSH target of nixos-anywhere.
    pub ip_address: Option<Ipv4Addr>,
    /// The production address: `raft_addr`, and where `cluster check` connects.
    pub address: Ipv4Addr,
    pub ssh_port: u16,
    pub datacenter: Option<String>,
    pub rack: Option<String>,
    /// One of the nodes that initialise the Raft cluster together.
    pub bootstrap: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterSettings {
    pub cluster_name: String,
    /// When set, peers and URLs use `<hostname>.<domain>`.
    pub domain: Option<String>,
    /// Bootstrap nodes first (in bootstrap order), then the others by hostname.
    pub members: Vec<Member>,
    /// The hostname of the node join-mode nodes contact (`leader_url`).
    pub leader: String,
    pub ports: ClusterPorts,
    /// Emit the optional `node_ip` and `node_fqdn` fields.
    pub node_details: bool,
    /// The cluster CA (PEM) `cluster check` trusts.
    pub ca: Option<PathBuf>,
    pub tls: Option<TlsPaths>,
    /// The optional `network` object: name → CIDR.
    pub network: BTreeMap<String, String>,
    /// The nixos-anywhere command: program and leading arguments.
    pub nixos_anywhere: Vec<String>,
    pub ssh_user: String,
    pub log_dir: PathBuf,
}

impl ClusterSettings {
    /// `node01.example.com` with a domain, else `node01`.
    pub fn fqdn(&self, hostname: &str) -> String {
        match &self.domain {
            Some(d) => format!("{hostname}.{d}"),
            None => hostname.to_string(),
        }
    }

    pub fn member(&self, hostname: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.hostname == hostname)
    }
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

impl Validator<'_> {
    fn port(&mut self, v: &Option<S<i64>>, key: &str, default: u16) -> u16 {
        v.as_ref().and_then(|p| self.int(p, key, 1, 65535)).map(|p| p as u16).unwrap_or(default)
    }

    /// Validates the per-node cluster keys, and `[cluster]` when present.
    pub(super) fn cluster(
        &mut self,
        nodes: &BTreeMap<String, S<RawNode>>,
        cluster: &Option<S<RawCluster>>,
        c: &Config,
    ) -> Option<ClusterSettings> {
        // Per-node keys are checked even without [cluster].
        let mut extras: BTreeMap<[u8; 6], (Option<Ipv4Addr>, Option<u16>)> = BTreeMap::new();
        let mut seen_addr: BTreeMap<Ipv4Addr, String> = BTreeMap::new();
        for (mac_s, n) in nodes {
            let Some(mac) = parse_mac(mac_s) else { continue };
            let key = format!("nodes.\"{mac_s}\"");
            let node = n.get_ref();
            let addr = self.opt_ip(&node.cluster_address, &format!("{key}.cluster_address"));
            if let (Some(a), Some(s)) = (addr, &node.cluster_address) {
                if let Some(other) = seen_addr.insert(a, mac_s.clone()) {
                    self.err(
                        s.span(),
                        &format!("{key}.cluster_address"),
                        format!("{a} is also given to {other}"),
                    );
                }
            }
            let ssh = node.ssh_port.as_ref().and_then(|p| self.int(p, &format!("{key}.ssh_port"), 1, 65535));
            extras.insert(mac, (addr, ssh.map(|p| p as u16)));
        }
        let rc = cluster.as_ref()?;
        let section = rc.span();
        let rc = rc.get_ref();
        let cluster_name = match &rc.cluster_name {
            Some(n) if n.get_ref().trim().is_empty() => {
                self.err(n.span(), "cluster.cluster_name", "must not be empty");
                String::new()
            }
            Some(n) => n.get_ref().clone(),
            None => {
                self.err(section.clone(), "cluster.cluster_name", "required in [cluster]");
                String::new()
            }
        };
        let domain = rc.domain.as_ref().map(|d| {
            let s = d.get_ref().trim_matches('.').to_string();
            if s.is_empty() || !s.split('.').all(is_dns_label) {
                self.err(d.span(), "cluster.domain", format!("{:?} is not a DNS domain", d.get_ref()));
            }
            s
        });
        let d = ClusterPorts::default();
        let ports = ClusterPorts {
            chainfire: self.port(&rc.chainfire_port, "cluster.chainfire_port", d.chainfire),
            chainfire_raft: self.port(
                &rc.chainfire_raft_port,
                "cluster.chainfire_raft_port",
                d.chainfire_raft,
            ),
            flaredb: self.port(&rc.flaredb_port, "cluster.flaredb_port", d.flaredb),
            flaredb_raft: self.port(&rc.flaredb_raft_port, "cluster.flaredb_raft_port", d.flaredb_raft),
            iam: self.port(&rc.iam_port, "cluster.iam_port", d.iam),
        };
        let ssh_port = self.port(&rc.ssh_port, "cluster.ssh_port", 22);
        let ssh_user = match &rc.ssh_user {
            Some(u) if u.get_ref().is_empty() || u.get_ref().contains(['@', ' ']) => {
                self.err(u.span(), "cluster.ssh_user", format!("{:?} is not a user name", u.get_ref()));
                String::new()
            }
            Some(u) => u.get_ref().clone(),
            None => "root".into(),
        };
        let nixos_anywhere = match &rc.nixos_anywhere {
            None => vec!["nixos-anywhere".to_string()],
            Some(v) => {
                let list = match v.get_ref() {
                    OneOrMany::One(s) => vec![s.clone()],
                    OneOrMany::Many(l) => l.clone(),
                };
                if list.first().is_none_or(|p| p.is_empty()) {
                    self.err(v.span(), "cluster.nixos_anywhere", "must name a program");
                }
                list
            }
        };
        let tls = rc.tls.as_ref().map(|t| {
            let t = t.get_ref();
            for (v, k) in [(&t.ca_path, "ca_path"), (&t.cert_path, "cert_path"), (&t.key_path, "key_path")] {
                if !v.get_ref().starts_with('/') {
                    self.err(v.span(), &format!("cluster.tls.{k}"), "must be an absolute path on the node");
                }
            }
            TlsPaths {
                ca_path: t.ca_path.get_ref().clone(),
                cert_path: t.cert_path.get_ref().clone(),
                key_path: t.key_path.get_ref().clone(),
            }
        });
        let mut network = BTreeMap::new();
        for (name, cidr) in &rc.network {
            if cidr.get_ref().parse::<ipnetwork::IpNetwork>().is_err() || !cidr.get_ref().contains('/') {
                self.err(
                    cidr.span(),
                    &format!("cluster.network.{name}"),
                    format!("{:?} is not a CIDR", cidr.get_ref()),
                );
            }
            network.insert(name.clone(), cidr.get_ref().clone());
        }

        // The inventory as cluster members: every node with a hostname.
        let mut members: Vec<(Member, &S<RawNode>)> = Vec::new();
        for (mac_s, n) in nodes {
            let Some(mac) = parse_mac(mac_s) else { continue };
            let node = n.get_ref();
            let Some(h) = &node.hostname else { continue };
            let key = format!("nodes.\"{mac_s}\"");
            let hostname = h.get_ref().clone();
            // The general hostname rules are checked with the inventory; a cluster node id is one
            // label (the domain comes from [cluster] domain).
            if hostname.contains('.') {
                self.err(
                    h.span(),
                    &format!("{key}.hostname"),
                    format!("{hostname:?}: a cluster node's hostname is one label; set [cluster] domain for the rest"),
                );
            }
            if let Some((other, _)) = members.iter().find(|(m, _)| m.hostname == hostname) {
                let other = crate::lifecycle::format_mac(other.mac);
                self.err(
                    h.span(),
                    &format!("{key}.hostname"),
                    format!("{hostname:?} is also the hostname of {other}"),
                );
            }
            let (role, role_span, role_key) = match (&node.role, &node.profile) {
                (Some(r), _) => (r.get_ref().clone(), r.span(), format!("{key}.role")),
                (None, Some(p)) => (p.get_ref().clone(), p.span(), format!("{key}.profile")),
                (None, None) => (String::new(), n.span(), format!("{key}.role")),
            };
            if !ROLES.contains(&role.as_str()) {
                self.err(
                    role_span,
                    &role_key,
                    format!("cluster node {hostname}: role {role:?} is not one of {}", ROLES.join(", ")),
                );
            }
            let node_cfg = c.nodes.iter().find(|x| x.mac == mac);
            let ip_address = node_cfg.and_then(|x| x.ip_address);
            let (cluster_address, own_ssh) = extras.get(&mac).copied().unwrap_or((None, None));
            let address = match cluster_address.or(ip_address) {
                Some(a) => a,
                None => {
                    if node.cluster_address.is_none() && node.ip_address.is_none() {
                        self.err(
                            n.span(),
                            &format!("{key}.cluster_address"),
                            format!(
                                "cluster node {hostname} needs ip_address or cluster_address (its raft_addr)"
                            ),
                        );
                    }
                    Ipv4Addr::UNSPECIFIED
                }
            };
            members.push((
                Member {
                    mac,
                    hostname,
                    role,
                    ip_address,
                    address,
                    ssh_port: own_ssh.unwrap_or(ssh_port),
                    datacenter: node.datacenter.as_ref().map(|s| s.get_ref().clone()),
                    rack: node.rack.as_ref().map(|s| s.get_ref().clone()),
                    bootstrap: false,
                },
                n,
            ));
        }
        // Two nodes on one production address would share a raft_addr.
        let mut by_addr: BTreeMap<Ipv4Addr, &str> = BTreeMap::new();
        for (m, n) in &members {
            if m.address.is_unspecified() {
                continue;
            }
            if let Some(other) = by_addr.insert(m.address, &m.hostname) {
                self.err(
                    n.span(),
                    &format!("nodes.\"{}\"", crate::lifecycle::format_mac(m.mac)),
                    format!("{}: raft address {} is also {other}'s", m.hostname, m.address),
                );
            }
        }
        members.sort_by(|a, b| a.0.hostname.cmp(&b.0.hostname));

        let can_bootstrap = |m: &Member| m.role == "control-plane" || m.role == "all-in-one";
        let bootstrap: Vec<String> = match &rc.bootstrap {
            Some(list) => {
                let mut seen = BTreeSet::new();
                for h in list.get_ref() {
                    let name = h.get_ref();
                    match members.iter().find(|(m, _)| &m.hostname == name) {
                        None => {
                            self.err(h.span(), "cluster.bootstrap", format!("no node has hostname {name:?}"))
                        }
                        Some((m, _)) if !can_bootstrap(m) => self.err(
                            h.span(),
                            "cluster.bootstrap",
                            format!(
                                "{name} is a {} node; bootstrap nodes are control-plane or all-in-one",
                                m.role
                            ),
                        ),
                        _ => {}
                    }
                    if !seen.insert(name.clone()) {
                        self.err(h.span(), "cluster.bootstrap", format!("{name} is listed twice"));
                    }
                }
                if list.get_ref().is_empty() {
                    self.err(list.span(), "cluster.bootstrap", "must name at least one node");
                }
                list.get_ref().iter().map(|h| h.get_ref().clone()).collect()
            }
            None => members
                .iter()
                .filter(|(m, _)| can_bootstrap(m))
                .take(3)
                .map(|(m, _)| m.hostname.clone())
                .collect(),
        };
        if bootstrap.is_empty() && !members.is_empty() && rc.bootstrap.is_none() {
            self.err(
                section.clone(),
                "cluster.bootstrap",
                "no control-plane or all-in-one node to bootstrap the cluster",
            );
        }
        let leader = match &rc.leader {
            Some(l) => {
                if !bootstrap.contains(l.get_ref()) {
                    self.err(
                        l.span(),
                        "cluster.leader",
                        format!("{:?} is not a bootstrap node ({})", l.get_ref(), bootstrap.join(", ")),
                    );
                }
                l.get_ref().clone()
            }
            None => bootstrap.first().cloned().unwrap_or_default(),
        };
        let mut ordered: Vec<Member> = Vec::with_capacity(members.len());
        for b in &bootstrap {
            if let Some(pos) = members.iter().position(|(m, _)| &m.hostname == b) {
                let (mut m, _) = members.remove(pos);
                m.bootstrap = true;
                ordered.push(m);
            }
        }
        ordered.extend(members.into_iter().map(|(m, _)| m));

        Some(ClusterSettings {
            cluster_name,
            domain,
            members: ordered,
            leader,
            ports,
            node_details: rc.node_details.unwrap_or(false),
            ca: rc.ca.as_ref().map(|p| {
                let p = PathBuf::from(p.get_ref());
                match self.file.parent() {
                    Some(dir) if p.is_relative() => dir.join(p),
                    _ => p,
                }
            }),
            tls,
            network,
            nixos_anywhere,
            ssh_user,
            log_dir: rc
                .log_dir
                .as_ref()
                .map(|p| PathBuf::from(p.get_ref()))
                .unwrap_or_else(|| DEFAULT_LOG_DIR.into()),
        })
    }
}
