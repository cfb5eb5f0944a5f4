//! The job table behind `/api/v1/jobs`: the slow orchestration actions (provision, cluster check)
//! run on worker threads and hand their progress and results back here; the HTTP route (on the
//! event-loop thread) only reads it, under a mutex held for a copy, so it never waits on a job.
//!
//! Plain data, `Send`, with the clock passed in: unit-tested without threads.

use serde::Serialize;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// Finished jobs kept (the oldest finished one is dropped beyond this).
pub const MAX_JOBS: usize = 50;
/// Progress lines kept per job (the last ones).
pub const MAX_PROGRESS: usize = 200;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Provision,
    ClusterCheck,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Running,
    Succeeded,
    Failed,
}

/// One job, as `GET /api/v1/jobs/{id}` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Job {
    pub job: String,
    pub kind: Kind,
    pub state: JobState,
    pub started_ms: u64,
    pub ended_ms: Option<u64>,
    /// The request as understood (defaults filled in).
    pub request: serde_json::Value,
    /// Per-node results: for provision the summary table's rows, for a check the `--json` output.
    pub result: serde_json::Value,
    /// Why it failed, in one line (`null` while running or when it succeeded).
    pub error: Option<String>,
    /// Why it was told to stop (`cancelled through the API`, `ferroboot stopped`), once it was.
    pub cancelled: Option<String>,
    /// The plain progress lines (`[+12s] node01: installing (attempt 1/3)`), the last ones.
    pub progress: VecDeque<String>,
}

/// Why a job was not started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// A provision job is already running: its id.
    Busy(String),
}

/// Why a job could not be cancelled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CancelError {
    NotFound,
    /// It already ended: how.
    Ended(JobState),
    /// Cluster checks end by themselves within their `wait_s`; only provisions stop early.
    NotCancellable(Kind),
}

#[derive(Default)]
struct Table {
    next: u64,
    jobs: VecDeque<Job>,
    /// The stop flag of each running provision job, which its runner polls.
    stops: HashMap<String, Arc<AtomicBool>>,
}

/// The shared table; clones share it.
#[derive(Clone, Default)]
pub struct Jobs(Arc<Mutex<Table>>);

impl Jobs {
    pub fn new() -> Jobs {
        Jobs::default()
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        // A worker that panicked while holding the lock left plain data: keep using it.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a running job and returns it; a second provision while one runs is refused
    /// (two would install the same machines at once).
    pub fn start(
        &self,
        kind: Kind,
        request: serde_json::Value,
        result: serde_json::Value,
        now_ms: u64,
    ) -> Result<Job, Refused> {
        let mut t = self.lock();
        if kind == Kind::Provision {
            if let Some(j) = t.jobs.iter().find(|j| j.kind == Kind::Provision && j.state == JobState::Running)
            {
                return Err(Refused::Busy(j.job.clone()));
            }
        }
        t.next += 1;
        let job = Job {
            job: t.next.to_string(),
            kind,
            state: JobState::Running,
            started_ms: now_ms,
            ended_ms: None,
            request,
            result,
            error: None,
            cancelled: None,
            progress: VecDeque::new(),
        };
        if kind == Kind::Provision {
            t.stops.insert(job.job.clone(), Arc::new(AtomicBool::new(false)));
        }
        t.jobs.push_back(job.clone());
        // Drop the oldest finished jobs beyond the cap; running ones always stay.
        while t.jobs.len() > MAX_JOBS {
            match t.jobs.iter().position(|j| j.state != JobState::Running) {
                Some(i) => {
                    t.jobs.remove(i);
                }
                None => break,
            }
        }
        Ok(job)
    }

    /// Appends a progress line.
    pub fn progress(&self, id: &str, line: &str) {
        let mut t = self.lock();
        if let Some(j) = t.jobs.iter_mut().find(|j| j.job == id) {
            if j.progress.len() == MAX_PROGRESS {
                j.progress.pop_front();
            }
            j.progress.push_back(line.to_string());
        }
    }

    /// Ends a job: `error` `None` is success. A job ends once; later calls are ignored.
    pub fn finish(&self, id: &str, result: serde_json::Value, error: Option<String>, now_ms: u64) {
        let mut t = self.lock();
        if let Some(j) = t.jobs.iter_mut().find(|j| j.job == id && j.state == JobState::Running) {
            j.state = if error.is_some() { JobState::Failed } else { JobState::Succeeded };
            j.result = result;
            j.error = error;
            j.ended_ms = Some(now_ms);
        }
        t.stops.remove(id);
    }

    /// The flag a provision job's runner polls: set, its installs are stopped (SIGTERM, then
    /// SIGKILL) and reported failed, and nothing new starts. `None` for other jobs.
    pub fn stop_flag(&self, id: &str) -> Option<Arc<AtomicBool>> {
        self.lock().stops.get(id).cloned()
    }

    /// Tells a running provision job to stop, recording why; it ends (failed) once its installs
    /// are stopped. Returns the job as it is now (still running).
    pub fn cancel(&self, id: &str, reason: &str) -> Result<Job, CancelError> {
        let mut t = self.lock();
        let t = &mut *t;
        let j = t.jobs.iter_mut().find(|j| j.job == id).ok_or(CancelError::NotFound)?;
        if j.state != JobState::Running {
            return Err(CancelError::Ended(j.state));
        }
        let stop = t.stops.get(id).ok_or(CancelError::NotCancellable(j.kind))?;
        stop.store(true, Ordering::SeqCst);
        j.cancelled.get_or_insert_with(|| reason.to_string());
        Ok(j.clone())
    }

    /// [`Jobs::cancel`] for every running provision job (the server is stopping); their ids.
    pub fn cancel_all(&self, reason: &str) -> Vec<String> {
        let ids: Vec<String> = self.lock().stops.keys().cloned().collect();
        ids.into_iter().filter(|id| self.cancel(id, reason).is_ok()).collect()
    }

    pub fn get(&self, id: &str) -> Option<Job> {
        self.lock().jobs.iter().find(|j| j.job == id).cloned()
    }

    /// Every job kept, oldest first.
    pub fn list(&self) -> Vec<Job> {
        self.lock().jobs.iter().cloned().collect()
    }

    pub fn running(&self) -> usize {
        self.lock().jobs.iter().filter(|j| j.state == JobState::Running).count()
    }
}

/// A `Write` that feeds a job's progress lines (what the runner prints when not on a terminal).
pub struct ProgressSink {
    jobs: Jobs,
    id: String,
    partial: Vec<u8>,
}

impl ProgressSink {
    pub fn new(jobs: Jobs, id: &str) -> ProgressSink {
        ProgressSink { jobs, id: id.to_string(), partial: Vec::new() }
    }
}

impl std::io::Write for ProgressSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.partial.extend_from_slice(buf);
        while let Some(i) = self.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=i).collect();
            let line = String::from_utf8_lossy(&line[..i]);
            if !line.trim().is_empty() {
                self.jobs.progress(&self.id, line.trim_end());
            }
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::io::Write;

    #[test]
    fn lifecycle_of_a_job() {
        let jobs = Jobs::new();
        let j = jobs.start(Kind::ClusterCheck, json!({"nodes":[]}), json!(null), 10).unwrap();
        assert_eq!((j.job.as_str(), j.state, j.started_ms, j.ended_ms), ("1", JobState::Running, 10, None));
        jobs.progress("1", "[+0s] node01: waiting");
        jobs.finish("1", json!({"ok": false}), Some("2 of 5 checks failing".into()), 20);
        let j = jobs.get("1").unwrap();
        assert_eq!(j.state, JobState::Failed);
        assert_eq!(j.ended_ms, Some(20));
        assert_eq!(j.result, json!({"ok": false}));
        assert_eq!(j.progress, ["[+0s] node01: waiting"]);
        // Once ended it stays as it ended.
        jobs.finish("1", json!(null), None, 30);
        assert_eq!(jobs.get("1").unwrap().state, JobState::Failed);
        let k = jobs.start(Kind::ClusterCheck, json!({}), json!(null), 40).unwrap();
        jobs.finish(&k.job, json!({"ok": true}), None, 50);
        assert_eq!(jobs.get("2").unwrap().state, JobState::Succeeded);
        assert!(jobs.get("3").is_none());
        assert_eq!(jobs.list().iter().map(|j| j.job.as_str()).collect::<Vec<_>>(), ["1", "2"]);
    }

    #[test]
    fn one_provision_at_a_time_checks_in_parallel() {
        let jobs = Jobs::new();
        let p = jobs.start(Kind::Provision, json!({}), json!(null), 1).unwrap();
        assert_eq!(jobs.start(Kind::Provision, json!({}), json!(null), 2), Err(Refused::Busy(p.job.clone())));
        jobs.start(Kind::ClusterCheck, json!({}), json!(null), 3).unwrap();
        assert_eq!(jobs.running(), 2);
        jobs.finish(&p.job, json!(null), Some("node01 failed".into()), 4);
        assert_eq!(jobs.start(Kind::Provision, json!({}), json!(null), 5).unwrap().job, "3");
    }

    #[test]
    fn old_finished_jobs_go_running_ones_stay() {
        let jobs = Jobs::new();
        let first = jobs.start(Kind::Provision, json!({}), json!(null), 0).unwrap();
        for i in 0..MAX_JOBS + 10 {
            let j = jobs.start(Kind::ClusterCheck, json!({}), json!(null), i as u64).unwrap();
            jobs.finish(&j.job, json!(null), None, i as u64);
        }
        let list = jobs.list();
        assert_eq!(list.len(), MAX_JOBS);
        assert_eq!(list[0].job, first.job, "the running provision is kept");
        assert_eq!(list.last().unwrap().job, (MAX_JOBS + 11).to_string());
    }

    #[test]
    fn progress_lines_are_split_and_capped() {
        let jobs = Jobs::new();
        let j = jobs.start(Kind::Provision, json!({}), json!(null), 0).unwrap();
        let mut sink = ProgressSink::new(jobs.clone(), &j.job);
        sink.write_all(b"[+0s] node01: wait").unwrap();
        assert!(jobs.get(&j.job).unwrap().progress.is_empty(), "no partial line");
        sink.write_all(b"ing\n\n[+1s] node01: installing\n").unwrap();
        assert_eq!(jobs.get(&j.job).unwrap().progress, ["[+0s] node01: waiting", "[+1s] node01: installing"]);
        for i in 0..MAX_PROGRESS + 5 {
            writeln!(sink, "line {i}").unwrap();
        }
        let p = jobs.get(&j.job).unwrap().progress;
        assert_eq!(p.len(), MAX_PROGRESS);
        assert_eq!(p.back().unwrap(), &format!("line {}", MAX_PROGRESS + 4));
    }

    #[test]
    fn cancelling_sets_the_stop_flag_once_and_only_for_running_provisions() {
        let jobs = Jobs::new();
        let p = jobs.start(Kind::Provision, json!({}), json!(null), 0).unwrap();
        let c = jobs.start(Kind::ClusterCheck, json!({}), json!(null), 0).unwrap();
        let flag = jobs.stop_flag(&p.job).unwrap();
        assert!(jobs.stop_flag(&c.job).is_none());
        assert!(!flag.load(Ordering::SeqCst));
        let j = jobs.cancel(&p.job, "cancelled through the API").unwrap();
        assert_eq!((j.state, j.cancelled.as_deref()), (JobState::Running, Some("cancelled through the API")));
        assert!(flag.load(Ordering::SeqCst));
        // A second request keeps the first reason.
        jobs.cancel(&p.job, "ferroboot stopped").unwrap();
        assert_eq!(jobs.get(&p.job).unwrap().cancelled.as_deref(), Some("cancelled through the API"));
        assert_eq!(jobs.cancel(&c.job, "x"), Err(CancelError::NotCancellable(Kind::ClusterCheck)));
        assert_eq!(jobs.cancel("99", "x"), Err(CancelError::NotFound));
        jobs.finish(&p.job, json!(null), Some("cancelled".into()), 1);
        assert_eq!(jobs.cancel(&p.job, "x"), Err(CancelError::Ended(JobState::Failed)));
        assert!(jobs.stop_flag(&p.job).is_none(), "the flag goes with the job's end");
    }

    #[test]
    fn cancel_all_reaches_every_running_provision() {
        let jobs = Jobs::new();
        let done = jobs.start(Kind::Provision, json!({}), json!(null), 0).unwrap();
        jobs.finish(&done.job, json!(null), None, 1);
        let p = jobs.start(Kind::Provision, json!({}), json!(null), 2).unwrap();
        jobs.start(Kind::ClusterCheck, json!({}), json!(null), 3).unwrap();
        assert_eq!(jobs.cancel_all("ferroboot stopped"), vec![p.job.clone()]);
        assert_eq!(jobs.get(&p.job).unwrap().cancelled.as_deref(), Some("ferroboot stopped"));
        assert!(jobs.get(&done.job).unwrap().cancelled.is_none());
    }

    #[test]
    fn job_json_shape() {
        let jobs = Jobs::new();
        let j = jobs.start(Kind::ClusterCheck, json!({"wait_s": 5}), json!(null), 7).unwrap();
        let v = serde_json::to_value(&j).unwrap();
        assert_eq!(v["job"], "1");
        assert_eq!(v["kind"], "cluster_check");
        assert_eq!(v["state"], "running");
        assert_eq!(v["started_ms"], 7);
        assert!(v["ended_ms"].is_null() && v["error"].is_null() && v["cancelled"].is_null());
    }
}
