//! What the user wrote: the TOML file as serde sees it. Every table denies unknown keys, and every
//! value that needs validation keeps its span so errors can name the line.

use serde::Deserialize;
use std::collections::BTreeMap;
use toml::Spanned;

pub type S<T> = Spanned<T>;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub interface: Option<S<String>>,
    pub server_address: Option<S<String>>,
    pub listen: Option<S<String>>,
    pub root: Option<S<String>>,
    pub state_dir: Option<S<String>>,
    pub dhcp: Option<RawDhcp>,
    pub tftp: Option<RawTftp>,
    pub http: Option<RawHttp>,
    pub ipxe: Option<RawIpxe>,
    #[serde(default)]
    pub nodes: BTreeMap<String, S<RawNode>>,
    #[serde(default)]
    pub profiles: BTreeMap<String, S<RawProfile>>,
    pub cluster: Option<S<RawCluster>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDhcp {
    pub mode: Option<S<String>>,
    pub subnet: Option<S<String>>,
    pub netmask: Option<S<String>>,
    pub broadcast: Option<S<String>>,
    pub range: Option<S<RawRange>>,
    pub router: Option<S<String>>,
    #[serde(default)]
    pub domain_name_servers: Vec<S<String>>,
    pub domain_name: Option<S<String>>,
    pub lease_time: Option<S<i64>>,
    pub ipxe_chainload: Option<S<String>>,
    #[serde(default)]
    pub pools: Vec<S<RawPool>>,
}

/// A further subnet (`[[dhcp.pools]]`), reached through a relay or another interface.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPool {
    pub subnet: S<String>,
    pub netmask: S<String>,
    pub range: S<RawRange>,
    pub router: Option<S<String>>,
    pub broadcast: Option<S<String>>,
    pub domain_name_servers: Option<Vec<S<String>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRange {
    pub start: S<String>,
    pub end: S<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTftp {
    pub enabled: Option<bool>,
    pub port: Option<S<i64>>,
    pub max_sessions: Option<S<i64>>,
    pub max_blksize: Option<S<i64>>,
    pub max_windowsize: Option<S<i64>>,
    pub max_window_bytes: Option<S<i64>>,
    pub timeout_ms: Option<S<i64>>,
    pub retries: Option<S<i64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHttp {
    pub enabled: Option<bool>,
    pub port: Option<S<i64>>,
    pub max_connections: Option<S<i64>>,
    pub max_header_bytes: Option<S<i64>>,
    pub header_timeout_ms: Option<S<i64>>,
    pub keepalive_timeout_ms: Option<S<i64>>,
    pub write_timeout_ms: Option<S<i64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIpxe {
    pub binaries_dir: Option<S<String>>,
    pub binaries: Option<S<Vec<S<String>>>>,
    pub unknown: Option<S<String>>,
    pub retries: Option<S<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNode {
    pub profile: Option<S<String>>,
    pub hostname: Option<S<String>>,
    pub ip_address: Option<S<String>>,
    pub role: Option<S<String>>,
    pub uuid: Option<S<String>>,
    /// Production address (raft_addr, cluster checks); defaults to `ip_address`.
    pub cluster_address: Option<S<String>>,
    /// SSH port of the installer, when not `[cluster] ssh_port`.
    pub ssh_port: Option<S<i64>>,
    pub datacenter: Option<S<String>>,
    pub rack: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProfile {
    pub kernel: S<String>,
    #[serde(default)]
    pub initrd: Option<S<OneOrMany>>,
    #[serde(default)]
    pub cmdline: Option<S<String>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

/// `[cluster]`: what `cluster-config`, `provision` and `cluster check` need beyond the inventory.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCluster {
    pub cluster_name: Option<S<String>>,
    pub domain: Option<S<String>>,
    pub bootstrap: Option<S<Vec<S<String>>>>,
    pub leader: Option<S<String>>,
    pub chainfire_port: Option<S<i64>>,
    pub chainfire_raft_port: Option<S<i64>>,
    pub flaredb_port: Option<S<i64>>,
    pub flaredb_raft_port: Option<S<i64>>,
    pub iam_port: Option<S<i64>>,
    pub node_details: Option<bool>,
    pub ca: Option<S<String>>,
    pub tls: Option<S<RawClusterTls>>,
    #[serde(default)]
    pub network: BTreeMap<String, S<String>>,
    pub nixos_anywhere: Option<S<OneOrMany>>,
    pub ssh_user: Option<S<String>>,
    pub ssh_port: Option<S<i64>>,
    pub log_dir: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawClusterTls {
    pub ca_path: S<String>,
    pub cert_path: S<String>,
    pub key_path: S<String>,
}
