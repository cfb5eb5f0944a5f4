//! Drives the [`plan::Scheduler`] with real effects, kept thin: readiness probes (the lifecycle
//! API + a TCP connect to the SSH port) and nixos-anywhere processes run on their own threads and
//! answer over one channel; the main thread feeds the answers to the scheduler, does what it
//! says, reports lifecycle events and draws the progress.

use super::api::Api;
use super::plan::{self, Action, Outcome, Probe, Scheduler};
use super::progress;
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant, SystemTime};

/// One node to install.
#[derive(Debug, Clone)]
pub struct Target {
    pub name: String,
    /// As the API spells it (`52:54:00:12:34:56`).
    pub mac: String,
    pub bootstrap: bool,
    /// The installer's SSH address.
    pub ssh: SocketAddr,
    /// The full nixos-anywhere command line.
    pub argv: Vec<String>,
}

pub struct Options {
    pub policy: plan::Policy,
    pub log_dir: PathBuf,
    /// Redraw a live block (a terminal) instead of printing plain lines.
    pub live: bool,
    /// After SIGTERM, how long before SIGKILL.
    pub kill_grace: Duration,
    /// Set (by SIGINT/SIGTERM) to stop: running installs are killed and reported failed.
    pub interrupt: Arc<AtomicBool>,
}

enum Msg {
    Probed(usize, Probe),
    Exited(usize, Result<(), String>),
}

/// How it went, for the summary and the exit code.
pub struct Report {
    pub scheduler: Scheduler,
    pub finished_at: Instant,
    /// Lifecycle updates that did not go through (the node's next boot may not be right).
    pub warnings: Vec<String>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.warnings.is_empty()
            && (0..self.scheduler.jobs.len())
                .all(|i| !matches!(self.scheduler.outcome(i), Some(Outcome::Failed(_))))
    }
}

pub fn probe(api: &Api, mac: &str, ssh: SocketAddr) -> Probe {
    let node = match api.node(mac) {
        Err(e) => return Probe::Wait(format!("server: {e}")),
        Ok(None) => return Probe::Wait("not known to the server yet".into()),
        Ok(Some(n)) => n,
    };
    match node.state.as_str() {
        "installed" | "local" => {
            Probe::Skip(format!("already {} (use reinstall to install again)", node.state))
        }
        // A failed install leaves the installer up; try again once SSH answers.
        "booted" | "failed" => match TcpStream::connect_timeout(&ssh, Duration::from_secs(1)) {
            Ok(_) => Probe::Ready,
            Err(e) => Probe::Wait(format!("{}; SSH {ssh}: {e}", node.state)),
        },
        s => Probe::Wait(format!("lifecycle state {s}")),
    }
}

/// The last `lines` lines of a log, at most 4 KiB of it.
pub fn log_tail(path: &Path, lines: usize) -> String {
    let Ok(mut f) = File::open(path) else { return String::new() };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let start = len.saturating_sub(4096);
    let _ = f.seek(SeekFrom::Start(start));
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    let all: Vec<&str> = text.lines().filter(|l| !l.starts_with("=== ")).collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// `2025-12-10T10:30:45Z`.
pub fn utc_now() -> String {
    let secs = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let (days, rem) = (secs / 86400, secs % 86400);
    // Civil from days (Howard Hinnant).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, (rem % 3600) / 60, rem % 60)
}

fn describe_exit(status: std::process::ExitStatus) -> Result<(), String> {
    if status.success() {
        Ok(())
    } else if let Some(code) = status.code() {
        Err(format!("exit status {code}"))
    } else {
        Err(format!("killed by signal {}", status.signal().unwrap_or(0)))
    }
}

struct Running {
    pid: i32,
    term_sent: Option<Instant>,
    killed: bool,
    started: Instant,
}

pub fn run(targets: &[Target], api: &Api, opts: &Options, out: &mut dyn Write) -> Report {
    let start = Instant::now();
    let jobs = targets.iter().map(|t| (t.name.clone(), t.bootstrap)).collect();
    let mut s = Scheduler::new(jobs, opts.policy.clone(), start);
    let (tx, rx) = mpsc::channel::<Msg>();
    let mut running: BTreeMap<usize, Running> = BTreeMap::new();
    let mut warnings = Vec::new();
    let mut shown: Vec<String> = vec![String::new(); targets.len()];
    let mut drawn = 0usize;
    let _ = std::fs::create_dir_all(&opts.log_dir);
    let log_path = |i: usize| opts.log_dir.join(format!("{}.log", targets[i].name));
    let attempts = opts.policy.attempts;
    let mut interrupted = false;

    loop {
        let now = Instant::now();
        if !interrupted && opts.interrupt.load(Ordering::SeqCst) {
            interrupted = true;
            let _ = writeln!(out, "interrupted: stopping {} running install(s)", running.len());
            for (i, r) in running.iter_mut() {
                append(&log_path(*i), "=== interrupted: sending SIGTERM to the process group ===\n");
                // SAFETY: kill(2) on the child's own process group.
                unsafe { libc::kill(-r.pid, libc::SIGTERM) };
                r.term_sent = Some(now);
            }
        }
        if interrupted && running.is_empty() {
            s.abort("interrupted", now);
        }
        for action in s.poll(now) {
            match action {
                // Once interrupted, nothing new starts (the running ones are being stopped).
                Action::Probe(_) if interrupted => {}
                Action::Start { job, .. } if interrupted => s.exited(job, Err("interrupted".into()), now),
                Action::Probe(i) => {
                    let (tx, api, t) = (tx.clone(), api.clone(), targets[i].clone());
                    std::thread::spawn(move || {
                        let _ = tx.send(Msg::Probed(i, probe(&api, &t.mac, t.ssh)));
                    });
                }
                Action::Start { job, attempt } => {
                    let t = &targets[job];
                    if attempt == 1 {
                        if let Err(e) = api.event(&t.mac, "installing", None) {
                            warnings.push(format!("{}: reporting installing: {e}", t.name));
                        }
                    }
                    match spawn(t, attempt, attempts, &log_path(job)) {
                        Ok(mut child) => {
                            running.insert(
                                job,
                                Running {
                                    pid: child.id() as i32,
                                    term_sent: None,
                                    killed: false,
                                    started: now,
                                },
                            );
                            let tx = tx.clone();
                            std::thread::spawn(move || {
                                let r = match child.wait() {
                                    Ok(st) => describe_exit(st),
                                    Err(e) => Err(format!("wait: {e}")),
                                };
                                let _ = tx.send(Msg::Exited(job, r));
                            });
                        }
                        Err(e) => {
                            append(&log_path(job), &format!("=== could not start: {e} ===\n"));
                            s.exited(job, Err(e), now);
                        }
                    }
                }
                Action::Kill(i) => {
                    if let Some(r) = running.get_mut(&i) {
                        append(&log_path(i), "=== timed out: sending SIGTERM to the process group ===\n");
                        // SAFETY: kill(2) on the child's own process group.
                        unsafe { libc::kill(-r.pid, libc::SIGTERM) };
                        r.term_sent = Some(now);
                    }
                }
                Action::Finished(i) => {
                    let t = &targets[i];
                    let r = match s.outcome(i) {
                        Some(Outcome::Installed) => Some(api.event(&t.mac, "installed", None)),
                        Some(Outcome::Failed(why)) => {
                            let tail = log_tail(&log_path(i), 20);
                            let detail = if tail.is_empty() { why.clone() } else { format!("{why}\n{tail}") };
                            Some(api.event(&t.mac, "failed", Some(&detail)))
                        }
                        _ => None,
                    };
                    if let Some(Err(e)) = r {
                        warnings.push(format!("{}: reporting the outcome: {e}", t.name));
                    }
                }
            }
        }
        // Escalate to SIGKILL when SIGTERM was not enough.
        for r in running.values_mut() {
            if let Some(t) = r.term_sent {
                if !r.killed && now.duration_since(t) >= opts.kill_grace {
                    // SAFETY: as above.
                    unsafe { libc::kill(-r.pid, libc::SIGKILL) };
                    r.killed = true;
                }
            }
        }
        draw(&s, now, opts.live, &mut shown, &mut drawn, out);
        if s.is_done() {
            break;
        }
        let mut wait =
            s.next_wakeup().map(|w| w.saturating_duration_since(now)).unwrap_or(Duration::from_secs(1));
        wait = wait.min(Duration::from_millis(250)).max(Duration::from_millis(5));
        match rx.recv_timeout(wait) {
            Ok(m) => {
                let mut next = Some(m);
                while let Some(m) = next {
                    let now = Instant::now();
                    match m {
                        Msg::Probed(i, p) => {
                            if !interrupted {
                                s.probed(i, p, now)
                            }
                        }
                        Msg::Exited(i, r) => {
                            if let Some(run) = running.remove(&i) {
                                let took = plan::fmt_duration(now.duration_since(run.started));
                                let what = match &r {
                                    Ok(()) => "success".to_string(),
                                    Err(e) => e.clone(),
                                };
                                append(&log_path(i), &format!("=== {what} after {took} ===\n"));
                            }
                            let r = if interrupted { Err("interrupted".to_string()) } else { r };
                            s.exited(i, r, now);
                        }
                    }
                    next = rx.try_recv().ok();
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => unreachable!("the loop holds a sender"),
        }
    }
    Report { scheduler: s, finished_at: Instant::now(), warnings }
}

fn draw(
    s: &Scheduler,
    now: Instant,
    live: bool,
    shown: &mut [String],
    drawn: &mut usize,
    out: &mut dyn Write,
) {
    if live {
        let lines = progress::live_lines(s, now);
        let _ = out.write_all(progress::redraw(*drawn, &lines).as_bytes());
        *drawn = lines.len();
    } else {
        for (i, last) in shown.iter_mut().enumerate() {
            let key = progress::phase_key(&s.jobs[i], s.policy.attempts);
            if *last != key {
                let _ = writeln!(out, "{}", progress::plain_line(s, i, now));
                *last = key;
            }
        }
    }
    let _ = out.flush();
}

fn append(path: &Path, text: &str) {
    if let Ok(mut f) = OpenOptions::new().create(true).append(true).open(path) {
        let _ = f.write_all(text.as_bytes());
    }
}

fn spawn(t: &Target, attempt: u32, attempts: u32, log: &Path) -> Result<std::process::Child, String> {
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| format!("log {}: {e}", log.display()))?;
    let _ =
        writeln!(f, "=== {} attempt {attempt}/{attempts} at {}: {} ===", t.name, utc_now(), t.argv.join(" "));
    let err = f.try_clone().map_err(|e| format!("log: {e}"))?;
    let out = f.try_clone().map_err(|e| format!("log: {e}"))?;
    Command::new(&t.argv[0])
        .args(&t.argv[1..])
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0)
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", t.argv[0]))
}
