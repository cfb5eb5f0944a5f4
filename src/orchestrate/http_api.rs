//! The orchestration actions on the JSON API (`docs/api.md`, "Orchestration"), for a UI or CI:
//!
//! - `GET /api/v1/cluster-config`, `GET /api/v1/nodes/{mac|hostname}/cluster-config`: the
//!   first-boot JSON, computed on the spot (a pure function of the inventory);
//! - `POST /api/v1/provision`, `POST /api/v1/cluster/check`: start a job on a worker thread and
//!   answer 202 at once; `GET /api/v1/jobs[/{id}]` reads the [`Jobs`] table.
//!
//! The workers never touch the lifecycle store (it lives on the event-loop thread and is not
//! `Send`): a provision job reports `installing`/`installed`/`failed` through this same server's
//! HTTP API, exactly as `ferroboot provision` does. Every other path below `/api/v1/` goes to the
//! lifecycle route this one wraps.

use super::cluster_check::{self, Checker};
use super::cluster_config::{self, FirstBootConfig};
use super::commands::{Choice, find, provision_targets};
use super::jobs::{CancelError, JobState, Jobs, Kind, ProgressSink, Refused};
use super::plan::{Outcome, Phase, Policy, Scheduler};
use super::runner::{self, Target};
use crate::config::cluster::ClusterSettings;
use crate::http::request::Method;
use crate::http::{Reply, Route, RouteRequest};
use crate::lifecycle::parse_mac_path;
use crate::lifecycle::store::now_ms;
use serde::Deserialize;
use serde_json::{Value, json};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// `POST /api/v1/provision`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProvisionRequest {
    pub flake: String,
    #[serde(default)]
    pub nodes: Vec<String>,
    #[serde(default)]
    pub all: bool,
    #[serde(default = "default_parallel")]
    pub parallel: u16,
    #[serde(default)]
    pub build_on_remote: bool,
    #[serde(default)]
    pub with_cluster_config: bool,
    /// One nixos-anywhere attempt, seconds.
    #[serde(default = "default_timeout")]
    pub timeout_s: u64,
    /// Waiting for booted + SSH, seconds.
    #[serde(default = "default_timeout")]
    pub ready_timeout_s: u64,
    #[serde(default = "default_retries")]
    pub retries: u32,
    #[serde(default = "default_backoff")]
    pub backoff_s: u64,
}

fn default_parallel() -> u16 {
    4
}
fn default_timeout() -> u64 {
    30 * 60
}
fn default_retries() -> u32 {
    2
}
fn default_backoff() -> u64 {
    10
}

/// `POST /api/v1/cluster/check`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct CheckRequest {
    #[serde(default)]
    pub nodes: Vec<String>,
    #[serde(default)]
    pub insecure: bool,
    /// Retry until healthy or this many seconds (the CLI's `--wait`).
    #[serde(default)]
    pub wait_s: Option<u64>,
    /// Per-request timeout, seconds.
    #[serde(default = "default_check_timeout")]
    pub timeout_s: u64,
}

fn default_check_timeout() -> u64 {
    5
}

/// A week: the longest duration a body may ask for.
const MAX_SECONDS: u64 = 7 * 24 * 3600;

fn json_body<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, String> {
    serde_json::from_slice(body.trim_ascii()).map_err(|e| format!("body: {e}"))
}

/// Parses and checks a provision body.
pub fn parse_provision(body: &[u8]) -> Result<ProvisionRequest, String> {
    let r: ProvisionRequest = json_body(body)?;
    if r.flake.trim().is_empty() {
        return Err("\"flake\" is empty".into());
    }
    if r.all != r.nodes.is_empty() {
        return Err("give exactly one of \"nodes\":[...] and \"all\":true".into());
    }
    if r.parallel == 0 {
        return Err("\"parallel\" must be at least 1".into());
    }
    for (v, k) in
        [(r.timeout_s, "timeout_s"), (r.ready_timeout_s, "ready_timeout_s"), (r.backoff_s, "backoff_s")]
    {
        if v > MAX_SECONDS {
            return Err(format!("\"{k}\": {v} is more than a week"));
        }
    }
    if r.timeout_s == 0 || r.ready_timeout_s == 0 {
        return Err("\"timeout_s\" and \"ready_timeout_s\" must be at least 1".into());
    }
    if r.retries > 100 {
        return Err("\"retries\": at most 100".into());
    }
    Ok(r)
}

/// Parses and checks a cluster check body (empty: every node, defaults).
pub fn parse_check(body: &[u8]) -> Result<CheckRequest, String> {
    if body.trim_ascii().is_empty() {
        return Ok(CheckRequest { timeout_s: default_check_timeout(), ..CheckRequest::default() });
    }
    let r: CheckRequest = json_body(body)?;
    if r.timeout_s == 0 || r.timeout_s > 3600 {
        return Err("\"timeout_s\" must be 1..=3600".into());
    }
    if r.wait_s.is_some_and(|w| w > MAX_SECONDS) {
        return Err("\"wait_s\" is more than a week".into());
    }
    Ok(r)
}

/// What a request path names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiTarget {
    ClusterConfigAll,
    ClusterConfig(String),
    Provision,
    Check,
    Jobs,
    Job(String),
    /// `jobs/{id}/cancel`.
    JobCancel(String),
    /// Not ours: the lifecycle route's.
    Other,
}

pub fn parse_target(path: &[u8]) -> ApiTarget {
    let Some(rest) = path.strip_prefix(crate::lifecycle::api::PREFIX.as_bytes()) else {
        return ApiTarget::Other;
    };
    let text = |b: &[u8]| std::str::from_utf8(b).ok().map(str::to_string);
    match rest {
        b"cluster-config" => ApiTarget::ClusterConfigAll,
        b"provision" => ApiTarget::Provision,
        b"cluster/check" => ApiTarget::Check,
        b"jobs" | b"jobs/" => ApiTarget::Jobs,
        _ => {
            if let Some(id) = rest.strip_prefix(b"jobs/") {
                let (id, cancel) = match id.strip_suffix(b"/cancel") {
                    Some(id) => (id, true),
                    None => (id, false),
                };
                if !id.is_empty() && !id.contains(&b'/') {
                    if let Some(id) = text(id) {
                        return if cancel { ApiTarget::JobCancel(id) } else { ApiTarget::Job(id) };
                    }
                }
            }
            if let Some(node) = rest.strip_prefix(b"nodes/").and_then(|r| r.strip_suffix(b"/cluster-config"))
            {
                if !node.is_empty() && !node.contains(&b'/') {
                    if let Some(n) = text(node) {
                        return ApiTarget::ClusterConfig(n);
                    }
                }
            }
            ApiTarget::Other
        }
    }
}

/// The route: the orchestration paths, everything else to `lifecycle`.
pub struct OrchestrationApi {
    cluster: Option<Arc<ClusterSettings>>,
    jobs: Jobs,
    /// This server's base URL, for the provision jobs' lifecycle reports.
    server: String,
    lifecycle: Box<dyn Route>,
}

const JSON: &str = "application/json";

fn reply(status: u16) -> Reply {
    Reply { status, content_type: JSON, cache_control: Some("no-store") }
}

fn write_json(body: &mut Vec<u8>, status: u16, v: &impl serde::Serialize) -> Reply {
    let _ = serde_json::to_writer(&mut *body, v);
    body.push(b'\n');
    reply(status)
}

fn error(body: &mut Vec<u8>, status: u16, msg: &str) -> Reply {
    write_json(body, status, &json!({ "error": msg }))
}

/// The first-boot set, or the 422 listing every validation error.
fn sound_set(c: &ClusterSettings, body: &mut Vec<u8>) -> Result<Vec<FirstBootConfig>, Reply> {
    let set = cluster_config::build(c);
    match cluster_config::validate(&set) {
        Ok(()) => Ok(set),
        Err(errs) => {
            Err(write_json(body, 422, &json!({ "error": "invalid cluster configuration", "errors": errs })))
        }
    }
}

impl OrchestrationApi {
    pub fn new(
        cluster: Option<ClusterSettings>,
        jobs: Jobs,
        server: String,
        lifecycle: Box<dyn Route>,
    ) -> OrchestrationApi {
        OrchestrationApi { cluster: cluster.map(Arc::new), jobs, server, lifecycle }
    }

    fn cluster(&self, body: &mut Vec<u8>) -> Result<&Arc<ClusterSettings>, Reply> {
        self.cluster.as_ref().ok_or_else(|| {
            error(
                body,
                404,
                "the config has no [cluster] section: no cluster to configure, provision or check",
            )
        })
    }

    fn cluster_config(&self, body: &mut Vec<u8>, node: Option<&str>) -> Reply {
        let c = match self.cluster(body) {
            Ok(c) => c,
            Err(r) => return r,
        };
        let set = match sound_set(c, body) {
            Ok(s) => s,
            Err(r) => return r,
        };
        let Some(name) = node else {
            let nodes: serde_json::Map<String, Value> = set
                .iter()
                .map(|x| (x.node_id.clone(), serde_json::to_value(x).unwrap_or(Value::Null)))
                .collect();
            return write_json(body, 200, &json!({ "nodes": nodes }));
        };
        // A MAC in any accepted spelling (`%3A` too), else a hostname.
        let member = match parse_mac_path(name.as_bytes()) {
            Some(mac) => c.members.iter().find(|m| m.mac == mac).ok_or_else(|| "unknown".to_string()),
            None => find(c, name).map_err(|e| e.to_string()),
        };
        match member {
            Ok(m) => {
                let cfg = set.iter().find(|x| x.node_id == m.hostname).expect("built for every member");
                body.extend_from_slice(cfg.to_json().as_bytes());
                reply(200)
            }
            Err(_) => error(
                body,
                404,
                &format!("no cluster node {:?}", crate::lifecycle::machine::truncate(name, 64)),
            ),
        }
    }

    fn provision(&self, req: &RouteRequest<'_>, body: &mut Vec<u8>) -> Reply {
        let r = match parse_provision(req.body) {
            Ok(r) => r,
            Err(e) => return error(body, 400, &e),
        };
        let c = match self.cluster(body) {
            Ok(c) => c.clone(),
            Err(r) => return r,
        };
        let set = match sound_set(&c, body) {
            Ok(s) => s,
            Err(r) => return r,
        };
        if let Some(j) =
            self.jobs.list().iter().find(|j| j.kind == Kind::Provision && j.state == JobState::Running)
        {
            return write_json(
                body,
                409,
                &json!({ "error": format!("provision job {} is running", j.job), "job": j.job }),
            );
        }
        let log_dir = c.log_dir.clone();
        let choice = Choice {
            nodes: &r.nodes,
            all: r.all,
            flake: &r.flake,
            build_on_remote: r.build_on_remote,
            with_cluster_config: r.with_cluster_config,
        };
        let targets = match provision_targets(&c, &set, &choice, &log_dir) {
            Ok(t) if t.is_empty() => return error(body, 400, "no cluster nodes to provision"),
            Ok(t) => t,
            Err(e) => return error(body, 400, &e),
        };
        let request = json!({
            "flake": r.flake, "nodes": targets.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(),
            "all": r.all, "parallel": r.parallel, "build_on_remote": r.build_on_remote,
            "with_cluster_config": r.with_cluster_config, "timeout_s": r.timeout_s,
            "ready_timeout_s": r.ready_timeout_s, "retries": r.retries, "backoff_s": r.backoff_s,
            "log_dir": log_dir.display().to_string(),
        });
        let pending: Vec<Value> = targets
            .iter()
            .map(|t| json!({ "node": t.name, "mac": t.mac, "result": null, "log": log_path(&log_dir, &t.name) }))
            .collect();
        let job = match self.jobs.start(Kind::Provision, request, Value::Array(pending), now_ms()) {
            Ok(j) => j,
            Err(Refused::Busy(id)) => {
                return write_json(
                    body,
                    409,
                    &json!({ "error": format!("provision job {id} is running"), "job": id }),
                );
            }
        };
        let policy = Policy {
            parallel: usize::from(r.parallel),
            attempts: r.retries.saturating_add(1),
            backoff: Duration::from_secs(r.backoff_s),
            backoff_max: Duration::from_secs(300).max(Duration::from_secs(r.backoff_s)),
            attempt_timeout: Duration::from_secs(r.timeout_s),
            ready_timeout: Duration::from_secs(r.ready_timeout_s),
            probe_interval: Duration::from_secs(2),
        };
        // Set by a cancel request or when the server stops (`Jobs::cancel`).
        let stop = self.jobs.stop_flag(&job.job).unwrap_or_default();
        let (jobs, id, server) = (self.jobs.clone(), job.job.clone(), self.server.clone());
        let spawned = std::thread::Builder::new().name(format!("provision-{id}")).spawn(move || {
            let api = super::api::Api::new(&server, Duration::from_secs(10));
            let opts = runner::Options {
                policy,
                log_dir: log_dir.clone(),
                live: false,
                kill_grace: Duration::from_secs(5),
                interrupt: stop,
            };
            let mut sink = ProgressSink::new(jobs.clone(), &id);
            let report = runner::run(&targets, &api, &opts, &mut sink);
            let rows = provision_rows(&report.scheduler, &targets, &log_dir, report.finished_at);
            let failed: Vec<&str> = (0..targets.len())
                .filter(|&i| matches!(report.scheduler.outcome(i), Some(Outcome::Failed(_))))
                .map(|i| targets[i].name.as_str())
                .collect();
            let cancelled = jobs.get(&id).and_then(|j| j.cancelled);
            let error = if let Some(why) = cancelled {
                let stopped = if failed.is_empty() {
                    String::new()
                } else {
                    format!("; failed: {}", failed.join(", "))
                };
                Some(format!("{why}{stopped}"))
            } else if !failed.is_empty() {
                Some(format!("failed: {}", failed.join(", ")))
            } else if !report.warnings.is_empty() {
                Some(format!("lifecycle update failed: {}", report.warnings.join("; ")))
            } else {
                None
            };
            for w in &report.warnings {
                jobs.progress(&id, &format!("warning: lifecycle update failed: {w}"));
            }
            jobs.finish(&id, Value::Array(rows), error, now_ms());
        });
        if let Err(e) = spawned {
            self.jobs.finish(&job.job, Value::Null, Some(format!("cannot start a thread: {e}")), now_ms());
        }
        self.accepted(body, &job.job)
    }

    fn check(&self, req: &RouteRequest<'_>, body: &mut Vec<u8>) -> Reply {
        let r = match parse_check(req.body) {
            Ok(r) => r,
            Err(e) => return error(body, 400, &e),
        };
        let c = match self.cluster(body) {
            Ok(c) => c.clone(),
            Err(r) => return r,
        };
        let targets = match cluster_check::targets(&c, &r.nodes) {
            Ok(t) if t.is_empty() => return error(body, 400, "no cluster nodes to check"),
            Ok(t) => t,
            Err(e) => return error(body, 400, &e),
        };
        let tls = match cluster_check::tls_config(if r.insecure { None } else { c.ca.as_deref() }, r.insecure)
        {
            Ok(t) => t,
            Err(e) => return error(body, 400, &e),
        };
        let expected: Vec<String> = targets.iter().map(|t| t.id.clone()).collect();
        let request = json!({
            "nodes": expected, "insecure": r.insecure, "wait_s": r.wait_s, "timeout_s": r.timeout_s,
        });
        let job = match self.jobs.start(Kind::ClusterCheck, request, Value::Null, now_ms()) {
            Ok(j) => j,
            Err(Refused::Busy(id)) => return error(body, 409, &format!("job {id} is running")),
        };
        let (jobs, id) = (self.jobs.clone(), job.job.clone());
        let spawned = std::thread::Builder::new().name(format!("check-{id}")).spawn(move || {
            let checker = Checker::new(&c, tls, Duration::from_secs(r.timeout_s));
            let exp: Vec<&str> = expected.iter().map(String::as_str).collect();
            let wait = r.wait_s.map(Duration::from_secs);
            let results =
                cluster_check::check_until(&checker, &targets, &exp, wait, |failed, total, left| {
                    jobs.progress(
                        &id,
                        &format!(
                            "{failed} of {total} checks failing; retrying for {} more",
                            super::plan::fmt_duration(left)
                        ),
                    );
                });
            let ok = results.iter().all(|x| x.ok);
            let error = (!ok).then(|| {
                let bad: Vec<_> = results.iter().filter(|x| !x.ok).collect();
                let first = bad[0];
                format!(
                    "{} of {} checks failing; first: {} {} {}: {}",
                    bad.len(),
                    results.len(),
                    first.node,
                    first.service.as_str(),
                    first.check,
                    first.detail
                )
            });
            let v = json!({ "ok": ok, "expected_members": expected, "checks": results });
            jobs.finish(&id, v, error, now_ms());
        });
        if let Err(e) = spawned {
            self.jobs.finish(&job.job, Value::Null, Some(format!("cannot start a thread: {e}")), now_ms());
        }
        self.accepted(body, &job.job)
    }

    /// `POST /api/v1/jobs/{id}/cancel`: 202 with the job (still running until its installs are
    /// stopped), 404, or 409 when it ended already or is a cluster check.
    fn cancel(&self, id: &str, body: &mut Vec<u8>) -> Reply {
        match self.jobs.cancel(id, "cancelled through the API") {
            Ok(j) => {
                log::info!("orchestration: job {id} cancelled through the API");
                write_json(body, 202, &j)
            }
            Err(CancelError::NotFound) => {
                error(body, 404, &format!("no job {:?}", crate::lifecycle::machine::truncate(id, 64)))
            }
            Err(CancelError::Ended(state)) => {
                let state = serde_json::to_value(state).unwrap_or(Value::Null);
                write_json(body, 409, &json!({ "error": format!("job {id} already ended"), "state": state }))
            }
            Err(CancelError::NotCancellable(_)) => {
                error(body, 409, &format!("job {id} is a cluster check: it ends by itself within its wait_s"))
            }
        }
    }

    fn accepted(&self, body: &mut Vec<u8>, id: &str) -> Reply {
        match self.jobs.get(id) {
            Some(j) => {
                let status = if j.state == JobState::Running { 202 } else { 500 };
                write_json(body, status, &j)
            }
            None => error(body, 500, "job vanished"),
        }
    }
}

fn log_path(dir: &Path, node: &str) -> String {
    dir.join(format!("{node}.log")).display().to_string()
}

/// The summary table's rows as JSON: node, mac, result, detail, attempts, seconds installing, log.
pub fn provision_rows(s: &Scheduler, targets: &[Target], log_dir: &Path, now: Instant) -> Vec<Value> {
    s.jobs
        .iter()
        .zip(targets)
        .map(|(j, t)| {
            let (result, detail) = match &j.phase {
                Phase::Done(Outcome::Installed) => ("installed", String::new()),
                Phase::Done(Outcome::Failed(e)) => ("failed", e.clone()),
                Phase::Done(Outcome::Skipped(e)) => ("skipped", e.clone()),
                _ => ("unfinished", String::new()),
            };
            let secs = j.first_start.map(|t| j.since.min(now).saturating_duration_since(t).as_secs_f64());
            json!({
                "node": j.name, "mac": t.mac, "result": result, "detail": detail,
                "attempts": j.attempts_made, "install_s": secs,
                "log": (j.attempts_made > 0).then(|| log_path(log_dir, &j.name)),
            })
        })
        .collect()
}

impl Route for OrchestrationApi {
    fn respond(&self, req: &RouteRequest<'_>, body: &mut Vec<u8>) -> Reply {
        let t = parse_target(req.path);
        let get = matches!(req.method, Method::Get | Method::Head);
        match (&t, req.method) {
            (ApiTarget::Other, _) => self.lifecycle.respond(req, body),
            (ApiTarget::ClusterConfigAll, _) if get => self.cluster_config(body, None),
            (ApiTarget::ClusterConfig(n), _) if get => self.cluster_config(body, Some(n)),
            (ApiTarget::Jobs, _) if get => write_json(body, 200, &json!({ "jobs": self.jobs.list() })),
            (ApiTarget::Job(id), _) if get => match self.jobs.get(id) {
                Some(j) => write_json(body, 200, &j),
                None => {
                    error(body, 404, &format!("no job {:?}", crate::lifecycle::machine::truncate(id, 64)))
                }
            },
            (ApiTarget::JobCancel(id), Method::Post) => self.cancel(id, body),
            (ApiTarget::Provision, Method::Post) => self.provision(req, body),
            (ApiTarget::Check, Method::Post) => self.check(req, body),
            (t, m) => {
                error(body, 405, &format!("{} is not allowed here (allowed: {})", m.as_str(), allow(t)))
            }
        }
    }

    fn accepts_post(&self) -> bool {
        true
    }

    fn allow(&self, path: &[u8]) -> &'static str {
        match parse_target(path) {
            ApiTarget::Other => self.lifecycle.allow(path),
            t => allow(&t),
        }
    }
}

fn allow(t: &ApiTarget) -> &'static str {
    match t {
        ApiTarget::Provision | ApiTarget::Check | ApiTarget::JobCancel(_) => "POST",
        _ => "GET, HEAD",
    }
}

/// Where a stopped server tells its provision jobs to stop and waits (up to `grace`) for them
/// to kill their installs. Returns the MACs those jobs were installing.
pub fn wait_for_jobs(jobs: &Jobs, grace: Duration) -> Vec<String> {
    let stopped = jobs.cancel_all("ferroboot stopped");
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline
        && jobs.list().iter().any(|j| j.kind == Kind::Provision && j.state == JobState::Running)
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    stopped
        .iter()
        .filter_map(|id| jobs.get(id))
        .filter_map(|j| match j.result {
            Value::Array(rows) => Some(rows),
            _ => None,
        })
        .flatten()
        .filter_map(|row| row["mac"].as_str().map(str::to_string))
        .collect()
}

/// The base URL the jobs reach this server at.
pub fn self_url(listen: std::net::Ipv4Addr, port: u16) -> String {
    let ip = if listen.is_unspecified() { std::net::Ipv4Addr::LOCALHOST } else { listen };
    format!("http://{ip}:{port}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse() {
        assert_eq!(parse_target(b"/api/v1/cluster-config"), ApiTarget::ClusterConfigAll);
        assert_eq!(
            parse_target(b"/api/v1/nodes/node01/cluster-config"),
            ApiTarget::ClusterConfig("node01".into())
        );
        assert_eq!(
            parse_target(b"/api/v1/nodes/52:54:00:00:00:01/cluster-config"),
            ApiTarget::ClusterConfig("52:54:00:00:00:01".into())
        );
        assert_eq!(parse_target(b"/api/v1/nodes//cluster-config"), ApiTarget::Other);
        assert_eq!(parse_target(b"/api/v1/nodes/a/b/cluster-config"), ApiTarget::Other);
        assert_eq!(parse_target(b"/api/v1/provision"), ApiTarget::Provision);
        assert_eq!(parse_target(b"/api/v1/cluster/check"), ApiTarget::Check);
        assert_eq!(parse_target(b"/api/v1/jobs"), ApiTarget::Jobs);
        assert_eq!(parse_target(b"/api/v1/jobs/12"), ApiTarget::Job("12".into()));
        assert_eq!(parse_target(b"/api/v1/jobs/12/x"), ApiTarget::Other);
        assert_eq!(parse_target(b"/api/v1/jobs/12/cancel"), ApiTarget::JobCancel("12".into()));
        assert_eq!(parse_target(b"/api/v1/jobs//cancel"), ApiTarget::Other);
        assert_eq!(parse_target(b"/api/v1/jobs/1/2/cancel"), ApiTarget::Other);
        assert_eq!(parse_target(b"/api/v1/nodes/52:54:00:00:00:01"), ApiTarget::Other);
        assert_eq!(parse_target(b"/api/v1/nodes"), ApiTarget::Other);
    }

    #[test]
    fn provision_bodies() {
        let r = parse_provision(br#"{"flake":"/srv/p","nodes":["node01"]}"#).unwrap();
        assert_eq!((r.parallel, r.timeout_s, r.retries, r.all), (4, 1800, 2, false));
        let r = parse_provision(
            br#"{"flake":"/srv/p","all":true,"parallel":8,"build_on_remote":true,"timeout_s":60}"#,
        )
        .unwrap();
        assert!(r.all && r.build_on_remote && r.parallel == 8 && r.timeout_s == 60);
        for (bad, why) in [
            (&br#"{"nodes":["a"]}"#[..], "flake"),
            (br#"{"flake":"x"}"#, "exactly one"),
            (br#"{"flake":"x","all":true,"nodes":["a"]}"#, "exactly one"),
            (br#"{"flake":"x","all":true,"parallel":0}"#, "parallel"),
            (br#"{"flake":"x","all":true,"paralel":2}"#, "unknown field"),
            (br#"{"flake":"x","all":true,"timeout_s":0}"#, "at least 1"),
            (br#"{"flake":"x","all":true,"timeout_s":99999999999}"#, "week"),
            (br#"{"flake":" ","all":true}"#, "empty"),
            (b"", "body"),
            (b"flake=x", "body"),
        ] {
            let e = parse_provision(bad).unwrap_err();
            assert!(e.contains(why), "{}: {e}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn check_bodies() {
        let r = parse_check(b"").unwrap();
        assert_eq!((r.nodes.len(), r.insecure, r.wait_s, r.timeout_s), (0, false, None, 5));
        let r = parse_check(br#"{"nodes":["node01"],"insecure":true,"wait_s":60}"#).unwrap();
        assert_eq!((r.nodes, r.insecure, r.wait_s), (vec!["node01".to_string()], true, Some(60)));
        assert!(parse_check(br#"{"timeout_s":0}"#).is_err());
        assert!(parse_check(br#"{"wait":5}"#).unwrap_err().contains("unknown field"));
        assert!(parse_check(b"[1]").is_err());
    }

    #[test]
    fn self_url_prefers_loopback_for_any() {
        assert_eq!(self_url("0.0.0.0".parse().unwrap(), 8080), "http://127.0.0.1:8080");
        assert_eq!(self_url("10.0.100.10".parse().unwrap(), 80), "http://10.0.100.10:80");
    }

    struct Lifecycle;
    impl Route for Lifecycle {
        fn respond(&self, _: &RouteRequest<'_>, body: &mut Vec<u8>) -> Reply {
            body.extend_from_slice(b"lifecycle");
            reply(200)
        }
    }

    fn route(edit: impl FnOnce(&mut ClusterSettings)) -> OrchestrationApi {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("ferroboot.toml");
        std::fs::write(
            &p,
            "[nodes.\"52:54:00:00:04:01\"]\nhostname = \"node01\"\nrole = \"control-plane\"\n\
             ip_address = \"10.0.100.50\"\ncluster_address = \"10.0.200.10\"\n\n\
             [cluster]\ncluster_name = \"prod-cluster\"\n",
        )
        .unwrap();
        let mut c = crate::config::Config::load(&p).unwrap().cluster.unwrap();
        edit(&mut c);
        OrchestrationApi::new(Some(c), Jobs::new(), "http://127.0.0.1:1".into(), Box::new(Lifecycle))
    }

    fn call(r: &OrchestrationApi, method: Method, path: &'static [u8], body: &'static [u8]) -> (u16, String) {
        let req = RouteRequest {
            method,
            path,
            query: b"",
            peer: "127.0.0.1:1".parse().unwrap(),
            host: None,
            user_agent: None,
            body,
        };
        let mut out = Vec::new();
        let reply = r.respond(&req, &mut out);
        (reply.status, String::from_utf8(out).unwrap())
    }

    #[test]
    fn cancel_answers() {
        let r = route(|_| {});
        let check = r.jobs.start(Kind::ClusterCheck, json!({}), Value::Null, 0).unwrap();
        let prov = r.jobs.start(Kind::Provision, json!({}), Value::Null, 0).unwrap();
        let path = |id: &str| -> &'static [u8] { format!("/api/v1/jobs/{id}/cancel").leak().as_bytes() };
        let (code, body) = call(&r, Method::Post, path(&check.job), b"");
        assert_eq!(code, 409, "{body}");
        assert!(body.contains("cluster check"), "{body}");
        for _ in 0..2 {
            let (code, body) = call(&r, Method::Post, path(&prov.job), b"");
            assert_eq!(code, 202, "{body}");
            let v: Value = serde_json::from_str(&body).unwrap();
            assert_eq!(
                (v["state"].as_str(), v["cancelled"].as_str()),
                (Some("running"), Some("cancelled through the API"))
            );
        }
        assert!(r.jobs.stop_flag(&prov.job).unwrap().load(std::sync::atomic::Ordering::SeqCst));
        r.jobs.finish(&prov.job, Value::Null, Some("cancelled through the API".into()), 1);
        let (code, body) = call(&r, Method::Post, path(&prov.job), b"");
        assert_eq!(code, 409, "{body}");
        assert!(body.contains("already ended") && body.contains("failed"), "{body}");
    }

    #[test]
    fn answers_without_jobs() {
        let r = route(|_| {});
        let (code, body) = call(&r, Method::Get, b"/api/v1/nodes/52-54-00-00-04-01/cluster-config", b"");
        assert_eq!(code, 200, "{body}");
        assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["node_id"], "node01");
        assert_eq!(call(&r, Method::Get, b"/api/v1/nodes/52:54:00:00:04:09/cluster-config", b"").0, 404);
        assert_eq!(call(&r, Method::Get, b"/api/v1/nodes", b""), (200, "lifecycle".into()));
        assert_eq!(call(&r, Method::Get, b"/api/v1/jobs/1", b"").0, 404);
        assert_eq!(call(&r, Method::Post, b"/api/v1/jobs", b"").0, 405);
        assert_eq!(call(&r, Method::Post, b"/api/v1/jobs/1/cancel", b"").0, 404);
        assert_eq!(call(&r, Method::Get, b"/api/v1/jobs/1/cancel", b"").0, 405);
        assert_eq!(r.allow(b"/api/v1/jobs/1/cancel"), "POST");
        assert_eq!(call(&r, Method::Get, b"/api/v1/cluster/check", b"").0, 405);
        assert_eq!(r.allow(b"/api/v1/provision"), "POST");
        assert_eq!(call(&r, Method::Post, b"/api/v1/provision", b"{}").0, 400);
        assert_eq!(call(&r, Method::Post, b"/api/v1/cluster/check", br#"{"nodes":["node09"]}"#).0, 400);
    }

    #[test]
    fn an_unsound_inventory_is_a_422_with_every_error() {
        // The config loader refuses most of these; the API still checks what it serves.
        let r = route(|c| c.cluster_name.clear());
        for (m, path, body) in [
            (Method::Get, &b"/api/v1/cluster-config"[..], &b""[..]),
            (Method::Get, b"/api/v1/nodes/node01/cluster-config", b""),
            (Method::Post, b"/api/v1/provision", br#"{"flake":"/srv/p","all":true}"#),
        ] {
            let req = RouteRequest {
                method: m,
                path,
                query: b"",
                peer: "127.0.0.1:1".parse().unwrap(),
                host: None,
                user_agent: None,
                body,
            };
            let mut out = Vec::new();
            assert_eq!(r.respond(&req, &mut out).status, 422);
            let v: Value = serde_json::from_slice(&out).unwrap();
            assert_eq!(v["errors"], json!(["node01: cluster_name is required"]), "{v}");
        }
        assert!(r.jobs.list().is_empty(), "no job started");
    }
}
