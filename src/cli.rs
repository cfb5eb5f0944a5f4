//! Command-line interface (clap). This is the public interface users and scripts rely on.

use clap::{Parser, Subcommand, ValueEnum};
use std::net::Ipv4Addr;
use std::path::PathBuf;

const EXAMPLES: &str = "\
Examples:
  # Serve TFTP and HTTP from the runbook's layout with the built-in defaults
  ferroboot serve --root /var/lib/pxe-boot

  # Everything from a config file (see examples/ferroboot.toml), TFTP on a test port
  ferroboot serve --config /etc/ferroboot.toml --tftp-port 6969

  # Validate a config file (like `dhcpd -t -cf`)
  ferroboot check-config /etc/ferroboot.toml

  # Fetch a file the way the runbook checks it
  tftp localhost -c get undionly.kpxe /tmp/test.kpxe

  # Where is every machine in its install? Boot node01 into the installer again.
  ferroboot status
  ferroboot node reinstall 52:54:00:12:34:56";

#[derive(Debug, Parser)]
#[command(name = "ferroboot", version, about = "Network-boot server: DHCP/ProxyDHCP, TFTP, HTTP and iPXE in one binary", after_help = EXAMPLES)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DhcpArg {
    Off,
    Server,
    Proxy,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the boot services (TFTP; HTTP and DHCP as they become available).
    #[command(after_help = EXAMPLES)]
    Serve(ServeArgs),
    /// Validate a config file: exit 0 and a one-line summary, or exit 1 and every error with file,
    /// line and key.
    CheckConfig {
        /// The TOML file to check.
        file: PathBuf,
    },
    /// Install NixOS on booted nodes with nixos-anywhere: bootstrap nodes together, then the
    /// rest in parallel; per-node logs, retries, timeouts, lifecycle updates, a summary table.
    Provision(crate::orchestrate::args::ProvisionArgs),
    /// Print a node's first-boot cluster-config.json, or write every node's (--all --out DIR).
    ClusterConfig(crate::orchestrate::args::ClusterConfigArgs),
    /// Cluster operations: `cluster check` runs the runbook's health checks.
    Cluster(crate::orchestrate::args::ClusterArgs),
    /// Show every node's lifecycle state (a running server's API): MAC, hostname, profile,
    /// state, time in state, last event.
    Status(crate::lifecycle::client::StatusArgs),
    /// Act on one node through a running server's API (`node reinstall MAC`).
    Node(crate::lifecycle::client::NodeArgs),
    /// Simulate N PXE machines booting at once against any PXE server (DHCP, TFTP, HTTP) and
    /// report per-phase latency percentiles, throughput, failures and retries.
    Loadgen(crate::loadgen::LoadgenArgs),
    /// One-line mode (like pixiecore): every PXE machine boots this kernel and initrd, no config.
    Boot(crate::ipxe::boot_cmd::BootArgs),
}

#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// TOML config file (flags below override it).
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Directory boot files are served from: TFTP name X and HTTP /boot/X map to <root>/X
    /// [default: /var/lib/pxe-boot].
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// IPv4 address to listen on [default: 0.0.0.0].
    #[arg(long, value_name = "IP")]
    pub listen: Option<Ipv4Addr>,
    /// Serve only on this interface (SO_BINDTODEVICE); its MTU sets the TFTP blksize cap.
    #[arg(long, value_name = "NAME")]
    pub interface: Option<String>,
    /// TFTP port [default: 69].
    #[arg(long, value_name = "N")]
    pub tftp_port: Option<u16>,
    /// HTTP port [default: 8080].
    #[arg(long, value_name = "N")]
    pub http_port: Option<u16>,
    /// Do not run the TFTP service.
    #[arg(long)]
    pub no_tftp: bool,
    /// Do not run the HTTP service.
    #[arg(long)]
    pub no_http: bool,
    /// DHCP mode [default: off, unless the config turns it on].
    #[arg(long, value_enum, value_name = "MODE")]
    pub dhcp: Option<DhcpArg>,
    /// Same as --dhcp proxy.
    #[arg(long, conflicts_with = "dhcp")]
    pub proxy_dhcp: bool,
    /// Where leases and node state are kept [default: /var/lib/ferroboot].
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Log format; RUST_LOG sets the level (default: info).
    #[arg(long, value_enum, default_value = "text")]
    pub log_format: LogFormat,
}
