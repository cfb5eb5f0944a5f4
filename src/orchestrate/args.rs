//! Command-line arguments of `provision`, `cluster-config` and `cluster check` (clap derive;
//! `cli.rs` only names them).

use super::parse_duration;
use clap::{Args, Subcommand};
use std::path::PathBuf;
use std::time::Duration;

pub const DEFAULT_CONFIG: &str = "/etc/ferroboot.toml";

fn dur(s: &str) -> Result<Duration, String> {
    parse_duration(s)
}

#[derive(Debug, Clone, Args)]
#[command(after_help = "\
Examples:
  # The runbook's phase 4: the three bootstrap nodes together, logs in ./provision-logs/
  ferroboot provision --flake /srv/provisioning --nodes node01,node02,node03 --build-on-remote

  # Everything in the inventory: bootstrap nodes first, then up to 8 joiners at a time
  ferroboot provision --flake /srv/provisioning --all --parallel 8")]
pub struct ProvisionArgs {
    /// The flake holding one nixosConfiguration per node (`PATH#<hostname>`).
    #[arg(long, value_name = "PATH")]
    pub flake: String,
    /// Nodes to install, by hostname or MAC.
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "a,b,c",
        required_unless_present = "all",
        conflicts_with = "all"
    )]
    pub nodes: Vec<String>,
    /// Every cluster node of the inventory.
    #[arg(long)]
    pub all: bool,
    /// Installs at a time (the bootstrap nodes always run together).
    #[arg(long, default_value_t = 4, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub parallel: u16,
    /// Pass --build-on-remote to nixos-anywhere (build on the target, as the runbook does).
    #[arg(long)]
    pub build_on_remote: bool,
    /// Also install each node's cluster-config.json: written to
    /// <log dir>/extra-files/<node>/etc/nixos/secrets/cluster-config.json (mode 0600) and passed
    /// as nixos-anywhere --extra-files, so first boot finds it without a manual copy.
    #[arg(long)]
    pub with_cluster_config: bool,
    /// Longest one nixos-anywhere attempt may run before it is killed.
    #[arg(long, default_value = "30m", value_parser = dur, value_name = "D")]
    pub timeout: Duration,
    /// Longest to wait for a node to be booted (lifecycle) with its SSH port open.
    #[arg(long, default_value = "30m", value_parser = dur, value_name = "D")]
    pub ready_timeout: Duration,
    /// Retries after a failed attempt.
    #[arg(long, default_value_t = 2, value_name = "N")]
    pub retries: u32,
    /// Pause before the first retry; doubled for each further one (at most 5m).
    #[arg(long, default_value = "10s", value_parser = dur, value_name = "D")]
    pub backoff: Duration,
    /// Where per-node logs go [default: [cluster] log_dir, else ./provision-logs].
    #[arg(long, value_name = "DIR")]
    pub log_dir: Option<PathBuf>,
    /// The ferroboot server whose lifecycle API tracks the nodes.
    #[arg(long, default_value = super::api::DEFAULT_SERVER, value_name = "URL")]
    pub server: String,
    /// The config file with the inventory and [cluster].
    #[arg(long, short = 'c', default_value = DEFAULT_CONFIG, value_name = "FILE")]
    pub config: PathBuf,
}

#[derive(Debug, Clone, Args)]
#[command(after_help = "\
Examples:
  ferroboot cluster-config node01
  ferroboot cluster-config --all --out /srv/provisioning/secrets")]
pub struct ClusterConfigArgs {
    /// The node (hostname or MAC) whose cluster-config.json is printed.
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    pub node: Option<String>,
    /// Write every node's file, as DIR/cluster-config-<node>.json.
    #[arg(long, requires = "out")]
    pub all: bool,
    /// The directory for --all.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    #[arg(long, short = 'c', default_value = DEFAULT_CONFIG, value_name = "FILE")]
    pub config: PathBuf,
}

#[derive(Debug, Clone, Args)]
pub struct ClusterArgs {
    #[command(subcommand)]
    pub command: ClusterCommand,
}

#[derive(Debug, Clone, Subcommand)]
pub enum ClusterCommand {
    /// The runbook's §6 checks: /health of Chainfire, FlareDB and IAM on every node and the Raft
    /// member lists, over HTTPS with the cluster CA. Exit 0 only when every check passes.
    #[command(after_help = "\
Examples:
  # Right after phase 4: the bootstrap nodes, retried for up to 60 s while Raft settles
  ferroboot cluster check --ca /srv/provisioning/ca-cert.pem --nodes node01,node02,node03 --wait 60s

  # Machine-readable, for CI
  ferroboot cluster check --json")]
    Check(CheckArgs),
}

#[derive(Debug, Clone, Args)]
pub struct CheckArgs {
    /// The cluster CA (PEM) [default: [cluster] ca].
    #[arg(long, value_name = "FILE")]
    pub ca: Option<PathBuf>,
    /// Do not verify certificates (curl -k). Only when asked.
    #[arg(long, conflicts_with = "ca")]
    pub insecure: bool,
    /// Nodes to check, by hostname [default: every cluster node]; the member lists must hold
    /// exactly these.
    #[arg(long, value_delimiter = ',', value_name = "a,b,c")]
    pub nodes: Vec<String>,
    /// Retry until everything passes or this much time has gone.
    #[arg(long, value_parser = dur, value_name = "D")]
    pub wait: Option<Duration>,
    /// Timeout of each request.
    #[arg(long, default_value = "5s", value_parser = dur, value_name = "D")]
    pub timeout: Duration,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    #[arg(long, short = 'c', default_value = DEFAULT_CONFIG, value_name = "FILE")]
    pub config: PathBuf,
}
