//! The three commands: load the config, do the work, map the outcome to an exit code
//! (0 all good, 1 something failed, 2 unusable input).

use super::api::Api;
use super::args::{CheckArgs, ClusterArgs, ClusterCommand, ClusterConfigArgs, ProvisionArgs};
use super::cluster_check::{self, Checker};
use super::cluster_config::{self, FirstBootConfig};
use super::health;
use super::plan::{Policy, fmt_duration};
use super::progress;
use super::runner::{self, Target};
use crate::config::cluster::{ClusterSettings, Member};
use crate::config::{Config, parse_mac};
use crate::lifecycle::format_mac;
use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

fn fail(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("ferroboot: error: {msg}");
    ExitCode::from(2)
}

/// The config and its `[cluster]`, or the message saying why not.
fn load(path: &Path) -> Result<(Config, ClusterSettings), String> {
    let c = Config::load(path).map_err(|e| e.to_string())?;
    let cluster = c.cluster.clone().ok_or_else(|| {
        format!("{}: no [cluster] section (cluster_name, domain, ...); see the README", path.display())
    })?;
    Ok((c, cluster))
}

/// Finds a member by hostname or MAC.
pub fn find<'a>(c: &'a ClusterSettings, name: &str) -> Result<&'a Member, String> {
    let by_mac = parse_mac(name);
    c.members.iter().find(|m| m.hostname == name || Some(m.mac) == by_mac).ok_or_else(|| {
        let names: Vec<&str> = c.members.iter().map(|m| m.hostname.as_str()).collect();
        format!("no cluster node {name:?} (cluster nodes: {})", names.join(", "))
    })
}

fn checked_set(c: &ClusterSettings) -> Result<Vec<FirstBootConfig>, String> {
    let set = cluster_config::build(c);
    cluster_config::validate(&set)
        .map_err(|errs| format!("invalid cluster configuration:\n  {}", errs.join("\n  ")))?;
    Ok(set)
}

pub fn cluster_config_main(a: &ClusterConfigArgs) -> ExitCode {
    let (_, c) = match load(&a.config) {
        Ok(x) => x,
        Err(e) => return fail(e),
    };
    let set = match checked_set(&c) {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    if let Some(name) = &a.node {
        let m = match find(&c, name) {
            Ok(m) => m,
            Err(e) => return fail(e),
        };
        let cfg = set.iter().find(|x| x.node_id == m.hostname).expect("built for every member");
        print!("{}", cfg.to_json());
        return ExitCode::SUCCESS;
    }
    let dir = a.out.as_deref().expect("clap: --all requires --out");
    if let Err(e) = std::fs::create_dir_all(dir) {
        return fail(format!("{}: {e}", dir.display()));
    }
    for cfg in &set {
        let path = dir.join(format!("cluster-config-{}.json", cfg.node_id));
        if let Err(e) = std::fs::write(&path, cfg.to_json()) {
            return fail(format!("{}: {e}", path.display()));
        }
        let mode = if cfg.bootstrap { "bootstrap" } else { "join" };
        println!("{}  {} ({mode})", path.display(), cfg.node_role);
    }
    ExitCode::SUCCESS
}

/// The nixos-anywhere command line for one node.
pub fn nixos_anywhere_argv(
    c: &ClusterSettings,
    m: &Member,
    flake: &str,
    build_on_remote: bool,
) -> Result<Vec<String>, String> {
    let ip = m.ip_address.ok_or_else(|| {
        format!("{}: no ip_address (the installer's address nixos-anywhere connects to)", m.hostname)
    })?;
    let mut argv = c.nixos_anywhere.clone();
    argv.push("--flake".into());
    argv.push(format!("{flake}#{}", m.hostname));
    if build_on_remote {
        argv.push("--build-on-remote".into());
    }
    if m.ssh_port != 22 {
        argv.push("-p".into());
        argv.push(m.ssh_port.to_string());
    }
    argv.push(format!("{}@{ip}", c.ssh_user));
    Ok(argv)
}

/// `<root>/etc/nixos/secrets/cluster-config.json`, where first boot reads it (mode 0600, as the
/// first-boot README recommends).
fn write_extra_files(root: &Path, cfg: &FirstBootConfig) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let dir = root.join("etc/nixos/secrets");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("cluster-config.json");
    let mut f =
        std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&path)?;
    f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    f.write_all(cfg.to_json().as_bytes())
}

/// What to provision, as the command line or the API's POST body says it.
pub struct Choice<'a> {
    /// Hostnames or MACs (ignored with `all`).
    pub nodes: &'a [String],
    pub all: bool,
    pub flake: &'a str,
    pub build_on_remote: bool,
    pub with_cluster_config: bool,
}

/// The install targets, bootstrap nodes first; with `with_cluster_config` each node's
/// cluster-config.json is written below `log_dir/extra-files/` for `--extra-files`.
pub fn provision_targets(
    c: &ClusterSettings,
    set: &[FirstBootConfig],
    a: &Choice<'_>,
    log_dir: &Path,
) -> Result<Vec<Target>, String> {
    let chosen: Vec<&Member> = if a.all {
        c.members.iter().collect()
    } else {
        let mut v: Vec<&Member> = Vec::new();
        for n in a.nodes {
            let m = find(c, n)?;
            if !v.iter().any(|x| x.mac == m.mac) {
                v.push(m);
            }
        }
        // Bootstrap nodes first, as in the inventory.
        v.sort_by_key(|m| c.members.iter().position(|x| x.mac == m.mac));
        v
    };
    let mut targets = Vec::new();
    for m in chosen {
        let mut argv = nixos_anywhere_argv(c, m, a.flake, a.build_on_remote)?;
        if a.with_cluster_config {
            let cfg = set.iter().find(|x| x.node_id == m.hostname).expect("built for every member");
            let root = log_dir.join("extra-files").join(&m.hostname);
            write_extra_files(&root, cfg).map_err(|e| format!("{}: {e}", root.display()))?;
            // Before the final user@host argument.
            let at = argv.len() - 1;
            argv.splice(at..at, ["--extra-files".to_string(), root.display().to_string()]);
        }
        let ip = m.ip_address.expect("checked by nixos_anywhere_argv");
        targets.push(Target {
            name: m.hostname.clone(),
            mac: format_mac(m.mac),
            bootstrap: m.bootstrap,
            ssh: SocketAddr::new(ip.into(), m.ssh_port),
            argv,
        });
    }
    Ok(targets)
}

pub fn provision_main(a: &ProvisionArgs) -> ExitCode {
    let (_, c) = match load(&a.config) {
        Ok(x) => x,
        Err(e) => return fail(e),
    };
    // The cluster-config must be sound before anything is installed with it.
    let set = match checked_set(&c) {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let log_dir = a.log_dir.clone().unwrap_or_else(|| c.log_dir.clone());
    let choice = Choice {
        nodes: &a.nodes,
        all: a.all,
        flake: &a.flake,
        build_on_remote: a.build_on_remote,
        with_cluster_config: a.with_cluster_config,
    };
    let targets = match provision_targets(&c, &set, &choice, &log_dir) {
        Ok(t) => t,
        Err(e) => return fail(e),
    };
    let policy = Policy {
        parallel: a.parallel as usize,
        attempts: a.retries.saturating_add(1),
        backoff: a.backoff,
        backoff_max: Duration::from_secs(300).max(a.backoff),
        attempt_timeout: a.timeout,
        ready_timeout: a.ready_timeout,
        probe_interval: Duration::from_secs(2),
    };
    let boot: Vec<&str> = targets.iter().filter(|t| t.bootstrap).map(|t| t.name.as_str()).collect();
    let mut err = std::io::stderr();
    let live = err.is_terminal();
    let _ = writeln!(
        err,
        "provisioning {} node(s) from {} (bootstrap together: {}; up to {} at a time after; logs in {}; server {})",
        targets.len(),
        a.flake,
        if boot.is_empty() { "none".to_string() } else { boot.join(", ") },
        a.parallel,
        log_dir.display(),
        a.server
    );
    let api = Api::new(&a.server, Duration::from_secs(10));
    // Ctrl-C stops the installs (their own process groups do not get the terminal's SIGINT).
    let interrupt = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        if let Err(e) = signal_hook::flag::register(sig, interrupt.clone()) {
            return fail(format!("cannot handle signal {sig}: {e}"));
        }
    }
    let opts = runner::Options {
        policy,
        log_dir: log_dir.clone(),
        live,
        kill_grace: Duration::from_secs(10),
        interrupt: interrupt.clone(),
    };
    let report = runner::run(&targets, &api, &opts, &mut err);
    let _ = writeln!(err);
    print!("{}", progress::summary(&report.scheduler, report.finished_at, &log_dir));
    for w in &report.warnings {
        eprintln!("warning: lifecycle update failed: {w}");
    }
    let took = fmt_duration(report.finished_at.duration_since(report.scheduler.started()));
    if interrupt.load(Ordering::SeqCst) {
        eprintln!("interrupted after {took}");
        return ExitCode::from(130);
    }
    if report.ok() {
        eprintln!("done in {took}");
        ExitCode::SUCCESS
    } else {
        eprintln!("finished in {took} with failures");
        ExitCode::from(1)
    }
}

pub fn cluster_main(a: &ClusterArgs) -> ExitCode {
    match &a.command {
        ClusterCommand::Check(c) => check_main(c),
    }
}

fn check_main(a: &CheckArgs) -> ExitCode {
    let (_, c) = match load(&a.config) {
        Ok(x) => x,
        Err(e) => return fail(e),
    };
    let targets = match cluster_check::targets(&c, &a.nodes) {
        Ok(t) if t.is_empty() => return fail("no cluster nodes to check"),
        Ok(t) => t,
        Err(e) => return fail(e),
    };
    let ca = a.ca.clone().or_else(|| c.ca.clone());
    let tls = match cluster_check::tls_config(ca.as_deref(), a.insecure) {
        Ok(t) => t,
        Err(e) => return fail(e),
    };
    let checker = Checker::new(&c, tls, a.timeout);
    let expected: Vec<&str> = targets.iter().map(|t| t.id.as_str()).collect();
    let results = cluster_check::check_until(&checker, &targets, &expected, a.wait, |failed, total, left| {
        eprintln!("{failed} of {total} checks failing; retrying for {} more", fmt_duration(left));
    });
    let ok = results.iter().all(|r| r.ok);
    if a.json {
        let v = serde_json::json!({ "ok": ok, "expected_members": expected, "checks": results });
        println!("{}", serde_json::to_string_pretty(&v).expect("plain data"));
    } else {
        print!("{}", health::table(&results));
    }
    if ok { ExitCode::SUCCESS } else { ExitCode::from(1) }
}
