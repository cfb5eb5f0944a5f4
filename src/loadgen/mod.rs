//! `ferroboot loadgen`: N simulated PXE machines booting at once against any PXE server
//! (ferroboot, dnsmasq + nginx, ...), each with its own MAC, through DHCP (PXE ROM, then iPXE),
//! TFTP of the boot file and HTTP of the script, kernel and initrd. Reports per-phase latency
//! percentiles, aggregate throughput, failures and retries.
//!
//! - [`dhcp`], [`tftp`]: sans-IO clients (unit-tested on a virtual clock; the TFTP one against
//!   the server's own session core).
//! - [`http`]: a blocking keep-alive GET client and the iPXE script reader.
//! - [`node`]: one machine's boot sequence on its own thread; the shared port-68 socket.
//! - [`stats`], [`report`], [`progress`]: percentiles, the table / JSON, the progress line.

pub mod dhcp;
pub mod http;
pub mod node;
pub mod progress;
pub mod report;
pub mod stats;
pub mod tftp;

use std::net::Ipv4Addr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use clap::ValueEnum;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModeArg {
    /// The server hands out the address and the boot file.
    Server,
    /// A site DHCP server hands out the address, a ProxyDHCP the boot file.
    Proxy,
}

const EXAMPLES: &str = "\
Examples:
  # 32 UEFI machines boot from ferroboot (DHCP, TFTP of ipxe.efi, the iPXE script and what it names)
  ferroboot loadgen --server 10.0.100.1 --nodes 32 --interface eth1

  # The same against dnsmasq + nginx, a fixed kernel and initrd, JSON for a script
  ferroboot loadgen --server 10.0.100.1 --nodes 128 --no-script \\
      --http-file /boot/vmlinuz --http-file /boot/initrd.img --json

  # TFTP and HTTP only (no DHCP), 1,000 at once
  ferroboot loadgen --server 127.0.0.1 --nodes 1000 --no-dhcp --tftp-file ipxe.efi --http-file /boot/big.img";

/// `ferroboot loadgen` options.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct LoadgenArgs {
    /// The boot server's address (TFTP when DHCP gives no next-server; HTTP base for --http-file).
    #[arg(long, value_name = "IP")]
    pub server: Ipv4Addr,
    /// Simulated machines, all started at once.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub nodes: usize,
    /// Where address and boot file come from.
    #[arg(long, value_enum, default_value = "server")]
    pub mode: ModeArg,
    /// TFTP this file instead of the DHCP boot file.
    #[arg(long, value_name = "F")]
    pub tftp_file: Option<String>,
    /// Fetch these over HTTP (repeatable; a URL, or a path on http://SERVER:HTTP_PORT) instead of
    /// the files the iPXE script names.
    #[arg(long, value_name = "F")]
    pub http_file: Vec<String>,
    /// RFC 2348 blksize to ask for (0: no option, 512-byte blocks).
    #[arg(long, value_name = "B", default_value_t = 1468)]
    pub blksize: u16,
    /// RFC 7440 windowsize to ask for (1: lock-step, no option).
    #[arg(long, value_name = "W", default_value_t = 4)]
    pub windowsize: u16,
    /// Send DHCP on this interface only (SO_BINDTODEVICE) [default: the one whose subnet holds
    /// --server].
    #[arg(long, value_name = "IF")]
    pub interface: Option<String>,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// RFC 4578 architecture the machines announce (0 BIOS, 7 x64 UEFI, 11 arm64 UEFI).
    #[arg(long, value_name = "CODE", default_value_t = 7)]
    pub arch: u16,
    /// Skip both DHCP stages (TFTP/HTTP only; needs --tftp-file).
    #[arg(long)]
    pub no_dhcp: bool,
    /// Do not fetch the boot script the iPXE DHCP answer points to.
    #[arg(long)]
    pub no_script: bool,
    /// HTTP port for --http-file paths.
    #[arg(long, value_name = "N", default_value_t = 8080)]
    pub http_port: u16,
    /// The server's TFTP request port.
    #[arg(long, value_name = "N", default_value_t = 69)]
    pub tftp_port: u16,
    /// Hash every file (SHA-256) and report the digests (costs client CPU).
    #[arg(long)]
    pub verify: bool,
    /// First DHCP retransmission timeout (doubling, 5 transmissions).
    #[arg(long, value_name = "MS", default_value_t = 1000)]
    pub dhcp_timeout_ms: u64,
    /// TFTP retransmission timeout (10 consecutive timeouts fail the node).
    #[arg(long, value_name = "MS", default_value_t = 1000)]
    pub tftp_timeout_ms: u64,
    /// HTTP connect/read timeout.
    #[arg(long, value_name = "MS", default_value_t = 30000)]
    pub http_timeout_ms: u64,
    /// Start node i after i × this (0: all at once).
    #[arg(long, value_name = "MS", default_value_t = 0)]
    pub stagger_ms: u64,
}

fn default_interface(server: Ipv4Addr) -> Option<String> {
    crate::net::iface::interfaces()
        .into_iter()
        .filter(|i| !i.loopback)
        .find(|i| {
            i.ipv4.iter().any(|&(a, len)| {
                let mask = if len == 0 { 0 } else { u32::MAX << (32 - u32::from(len.min(32))) };
                u32::from(a) & mask == u32::from(server) & mask
            })
        })
        .map(|i| i.name)
}

/// Builds the plan from the arguments, or says what is wrong with them.
pub fn plan(a: &LoadgenArgs) -> Result<node::Plan, String> {
    if a.nodes == 0 {
        return Err("--nodes must be at least 1".into());
    }
    if a.no_dhcp && a.tftp_file.is_none() {
        return Err("--no-dhcp needs --tftp-file".into());
    }
    if a.blksize != 0 && !(8..=65464).contains(&a.blksize) {
        return Err(format!("--blksize {} outside 8..65464", a.blksize));
    }
    if a.windowsize == 0 {
        return Err("--windowsize must be at least 1".into());
    }
    let interface =
        a.interface.clone().or_else(|| if a.no_dhcp { None } else { default_interface(a.server) });
    Ok(node::Plan {
        server: a.server,
        mode: match a.mode {
            ModeArg::Server => dhcp::Mode::Server,
            ModeArg::Proxy => dhcp::Mode::Proxy,
        },
        dhcp: !a.no_dhcp,
        dhcp_timing: dhcp::Timing {
            initial: Duration::from_millis(a.dhcp_timeout_ms.max(1)),
            ..Default::default()
        },
        arch: a.arch,
        tftp_file: a.tftp_file.clone(),
        tftp_port: a.tftp_port,
        blksize: (a.blksize != 0).then_some(a.blksize),
        windowsize: (a.windowsize > 1).then_some(a.windowsize),
        tftp_timeout: Duration::from_millis(a.tftp_timeout_ms.max(1)),
        tftp_retries: 10,
        http_files: a.http_file.clone(),
        http_port: a.http_port,
        script: !a.no_script,
        http_timeout: Duration::from_millis(a.http_timeout_ms.max(1)),
        verify: a.verify,
        interface,
        stagger: Duration::from_millis(a.stagger_ms),
    })
}

/// Runs the load and returns every node's result and the wall time.
pub fn run(plan: &node::Plan, nodes: usize) -> Result<(Vec<node::NodeResult>, Duration, u64), String> {
    let stop = Arc::new(AtomicBool::new(false));
    let demux = if plan.dhcp {
        Some(node::Demux::bind(plan.interface.as_deref()).map_err(|e| e.to_string())?)
    } else {
        None
    };
    let demux_thread = demux.as_ref().map(|d| d.spawn(Arc::clone(&stop)));
    let counters = Arc::new(progress::Counters::default());
    let progress = progress::spawn(Arc::clone(&counters), nodes, Arc::clone(&stop));
    let barrier = Arc::new(Barrier::new(nodes + 1));
    let t0 = Arc::new(std::sync::OnceLock::<Instant>::new());
    let mut handles = Vec::with_capacity(nodes);
    for i in 0..nodes {
        let (plan, demux, counters, barrier, t0) =
            (plan.clone(), demux.clone(), Arc::clone(&counters), Arc::clone(&barrier), Arc::clone(&t0));
        let h = std::thread::Builder::new()
            .name(format!("node{i}"))
            .stack_size(512 * 1024)
            .spawn(move || {
                barrier.wait();
                let t0 = *t0.get().expect("set before the barrier opens");
                node::boot(i, &plan, demux.as_deref(), &counters, t0)
            })
            .map_err(|e| format!("cannot start node thread {i}: {e}"))?;
        handles.push(h);
    }
    let start = *t0.get_or_init(Instant::now);
    barrier.wait();
    let mut results = Vec::with_capacity(nodes);
    for (i, h) in handles.into_iter().enumerate() {
        results.push(h.join().unwrap_or_else(|_| node::NodeResult {
            index: i,
            mac: node::mac_of(i),
            error: Some((node::Phase::Dhcp, "node thread panicked".into())),
            ..Default::default()
        }));
    }
    let wall = start.elapsed();
    stop.store(true, Relaxed);
    let _ = progress.join();
    if let Some(t) = demux_thread {
        let _ = t.join();
    }
    let unmatched = demux.map_or(0, |d| d.unmatched.load(Relaxed));
    Ok((results, wall, unmatched))
}

/// The subcommand: exit 0 when every node booted, 1 when any failed, 2 on a usage error.
pub fn main(args: LoadgenArgs) -> ExitCode {
    let plan = match plan(&args) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("ferroboot loadgen: {e}");
            return ExitCode::from(2);
        }
    };
    let (results, wall, unmatched) = match run(&plan, args.nodes) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ferroboot loadgen: {e}");
            return ExitCode::from(2);
        }
    };
    let rep = report::Report::new(&plan, &results, wall, unmatched);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rep.to_json()).unwrap_or_default());
    } else {
        print!("{}", rep.text());
    }
    if rep.failed == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) }
}
