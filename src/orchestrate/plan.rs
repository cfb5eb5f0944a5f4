//! The provisioning schedule, sans-IO: which node waits, which installs, when to retry, when to
//! give up. The runner feeds it probe answers and process exits with the current time and does
//! what [`Scheduler::poll`] returns; tests drive it on a virtual clock.
//!
//! Rules (the runbook's phases 4 and 5):
//! - every node first waits to be ready (lifecycle `booted` and its SSH port open), probed every
//!   `probe_interval`, failing after `ready_timeout`;
//! - the bootstrap nodes start together, once all of them are ready (or have failed to become
//!   ready), whatever `parallel` says: Raft initialises from all of them at once;
//! - join nodes start after every bootstrap node has finished, at most `parallel` installs at a
//!   time; if a bootstrap node failed they are skipped (there is no cluster to join);
//! - a failed attempt is retried after `backoff`, doubling up to `backoff_max`; an attempt running
//!   past `attempt_timeout` is killed and counts as failed.

use std::time::{Duration, Instant};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub parallel: usize,
    /// Attempts per node (1 + retries).
    pub attempts: u32,
    pub backoff: Duration,
    pub backoff_max: Duration,
    pub attempt_timeout: Duration,
    pub ready_timeout: Duration,
    pub probe_interval: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            parallel: 4,
            attempts: 3,
            backoff: Duration::from_secs(10),
            backoff_max: Duration::from_secs(300),
            attempt_timeout: Duration::from_secs(30 * 60),
            ready_timeout: Duration::from_secs(30 * 60),
            probe_interval: Duration::from_secs(2),
        }
    }
}

/// What a readiness probe found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    Ready,
    /// Not yet: why (lifecycle state, SSH port closed, server unreachable...).
    Wait(String),
    /// Nothing to do (already installed).
    Skip(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Installed,
    Failed(String),
    Skipped(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    Waiting {
        probing: bool,
        next_probe: Instant,
        why: String,
    },
    /// Ready, held for the bootstrap barrier or a free slot.
    Ready,
    Running {
        attempt: u32,
        started: Instant,
        deadline: Instant,
    },
    /// Past its deadline: killed, waiting for the exit.
    Killing {
        attempt: u32,
    },
    Backoff {
        next_attempt: u32,
        until: Instant,
        last_error: String,
    },
    Done(Outcome),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Check readiness and answer with [`Scheduler::probed`].
    Probe(usize),
    /// Start attempt `attempt` (1-based); answer with [`Scheduler::exited`].
    Start { job: usize, attempt: u32 },
    /// Stop the running attempt (timeout); it still answers with `exited`.
    Kill(usize),
    /// The job reached `Done`; report it.
    Finished(usize),
}

#[derive(Debug, Clone)]
pub struct Job {
    pub name: String,
    pub bootstrap: bool,
    pub phase: Phase,
    /// When the phase last changed (for "elapsed").
    pub since: Instant,
    /// When its first attempt started.
    pub first_start: Option<Instant>,
    pub attempts_made: u32,
}

pub struct Scheduler {
    pub policy: Policy,
    pub jobs: Vec<Job>,
    started: Instant,
    finished_reported: Vec<bool>,
}

impl Scheduler {
    /// `jobs`: (name, bootstrap) in the order they should start.
    pub fn new(jobs: Vec<(String, bool)>, policy: Policy, now: Instant) -> Scheduler {
        let n = jobs.len();
        let jobs = jobs
            .into_iter()
            .map(|(name, bootstrap)| Job {
                name,
                bootstrap,
                phase: Phase::Waiting { probing: false, next_probe: now, why: "not checked yet".into() },
                since: now,
                first_start: None,
                attempts_made: 0,
            })
            .collect();
        Scheduler { policy, jobs, started: now, finished_reported: vec![false; n] }
    }

    pub fn started(&self) -> Instant {
        self.started
    }

    fn set(&mut self, i: usize, phase: Phase, now: Instant) {
        self.jobs[i].phase = phase;
        self.jobs[i].since = now;
    }

    /// A probe's answer.
    pub fn probed(&mut self, i: usize, result: Probe, now: Instant) {
        let Phase::Waiting { why, .. } = &self.jobs[i].phase else { return };
        let why = why.clone();
        match result {
            Probe::Ready => self.set(i, Phase::Ready, now),
            Probe::Skip(reason) => self.set(i, Phase::Done(Outcome::Skipped(reason)), now),
            Probe::Wait(reason) => {
                let next_probe = now + self.policy.probe_interval;
                let since = self.jobs[i].since;
                self.jobs[i].phase = Phase::Waiting { probing: false, next_probe, why: reason.clone() };
                // Keep `since` (elapsed waiting) unless the reason changed.
                self.jobs[i].since = if why == reason { since } else { now };
            }
        }
    }

    /// An attempt ended: `Ok` on success, else why it failed.
    pub fn exited(&mut self, i: usize, result: Result<(), String>, now: Instant) {
        let (attempt, timed_out) = match &self.jobs[i].phase {
            Phase::Running { attempt, .. } => (*attempt, false),
            Phase::Killing { attempt } => (*attempt, true),
            _ => return,
        };
        let err = match (result, timed_out) {
            (_, true) => format!("timed out after {}", fmt_duration(self.policy.attempt_timeout)),
            (Ok(()), false) => return self.set(i, Phase::Done(Outcome::Installed), now),
            (Err(e), false) => e,
        };
        if attempt < self.policy.attempts {
            let factor = 1u32.checked_shl(attempt - 1).unwrap_or(u32::MAX);
            let delay = self.policy.backoff.saturating_mul(factor).min(self.policy.backoff_max);
            self.set(
                i,
                Phase::Backoff { next_attempt: attempt + 1, until: now + delay, last_error: err },
                now,
            );
        } else {
            let msg =
                if self.policy.attempts > 1 { format!("{err} (attempt {attempt}/{attempt})") } else { err };
            self.set(i, Phase::Done(Outcome::Failed(msg)), now);
        }
    }

    fn running(&self) -> usize {
        self.jobs.iter().filter(|j| matches!(j.phase, Phase::Running { .. } | Phase::Killing { .. })).count()
    }

    fn start(&mut self, i: usize, attempt: u32, now: Instant, out: &mut Vec<Action>) {
        let deadline = now + self.policy.attempt_timeout;
        self.set(i, Phase::Running { attempt, started: now, deadline }, now);
        self.jobs[i].first_start.get_or_insert(now);
        self.jobs[i].attempts_made = attempt;
        out.push(Action::Start { job: i, attempt });
    }

    /// Everything due at `now`.
    pub fn poll(&mut self, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        let p = self.policy.clone();
        for i in 0..self.jobs.len() {
            match self.jobs[i].phase.clone() {
                Phase::Waiting { probing, next_probe, why } => {
                    let waited = now.saturating_duration_since(self.started);
                    if waited >= p.ready_timeout {
                        let msg = format!("not ready after {}: {why}", fmt_duration(p.ready_timeout));
                        self.set(i, Phase::Done(Outcome::Failed(msg)), now);
                    } else if !probing && now >= next_probe {
                        self.jobs[i].phase = Phase::Waiting { probing: true, next_probe, why };
                        out.push(Action::Probe(i));
                    }
                }
                Phase::Running { deadline, attempt, .. } if now >= deadline => {
                    self.jobs[i].phase = Phase::Killing { attempt };
                    out.push(Action::Kill(i));
                }
                _ => {}
            }
        }
        // The bootstrap group: all at once, when none of them is still waiting.
        let boot: Vec<usize> = (0..self.jobs.len()).filter(|&i| self.jobs[i].bootstrap).collect();
        let boot_waiting = boot.iter().any(|&i| matches!(self.jobs[i].phase, Phase::Waiting { .. }));
        if !boot_waiting {
            for &i in &boot {
                if self.jobs[i].phase == Phase::Ready {
                    self.start(i, 1, now, &mut out);
                }
            }
        }
        // Retries are due whatever the group (their slot is theirs).
        for i in 0..self.jobs.len() {
            if let Phase::Backoff { next_attempt, until, .. } = self.jobs[i].phase.clone() {
                if now >= until && (self.jobs[i].bootstrap || self.running() < p.parallel.max(1)) {
                    self.start(i, next_attempt, now, &mut out);
                }
            }
        }
        let boot_done = boot.iter().all(|&i| matches!(self.jobs[i].phase, Phase::Done(_)));
        if boot_done {
            let failed: Vec<&str> = boot
                .iter()
                .filter(|&&i| matches!(self.jobs[i].phase, Phase::Done(Outcome::Failed(_))))
                .map(|&i| self.jobs[i].name.as_str())
                .collect();
            let skip = (!failed.is_empty()).then(|| format!("bootstrap failed ({})", failed.join(", ")));
            for i in 0..self.jobs.len() {
                if self.jobs[i].bootstrap || matches!(self.jobs[i].phase, Phase::Done(_)) {
                    continue;
                }
                if let Some(why) = &skip {
                    if !matches!(
                        self.jobs[i].phase,
                        Phase::Running { .. } | Phase::Killing { .. } | Phase::Backoff { .. }
                    ) {
                        let why = why.clone();
                        self.set(i, Phase::Done(Outcome::Skipped(why)), now);
                    }
                } else if self.jobs[i].phase == Phase::Ready && self.running() < p.parallel.max(1) {
                    self.start(i, 1, now, &mut out);
                }
            }
        }
        for i in 0..self.jobs.len() {
            if matches!(self.jobs[i].phase, Phase::Done(_)) && !self.finished_reported[i] {
                self.finished_reported[i] = true;
                out.push(Action::Finished(i));
            }
        }
        out
    }

    /// Stops everything (the operator's Ctrl-C): jobs that had started fail with `why`, the others
    /// are skipped. The caller has stopped the running attempts; `poll` then reports them.
    pub fn abort(&mut self, why: &str, now: Instant) {
        for i in 0..self.jobs.len() {
            if matches!(self.jobs[i].phase, Phase::Done(_)) {
                continue;
            }
            let o = if self.jobs[i].attempts_made > 0 {
                Outcome::Failed(why.to_string())
            } else {
                Outcome::Skipped(why.to_string())
            };
            self.set(i, Phase::Done(o), now);
        }
    }

    /// When `poll` next has something to do (besides answers arriving).
    pub fn next_wakeup(&self) -> Option<Instant> {
        let ready_deadline = self.started + self.policy.ready_timeout;
        self.jobs
            .iter()
            .filter_map(|j| match &j.phase {
                Phase::Waiting { probing: false, next_probe, .. } => Some((*next_probe).min(ready_deadline)),
                Phase::Waiting { probing: true, .. } => Some(ready_deadline),
                Phase::Running { deadline, .. } => Some(*deadline),
                Phase::Backoff { until, .. } => Some(*until),
                _ => None,
            })
            .min()
    }

    pub fn is_done(&self) -> bool {
        self.jobs.iter().all(|j| matches!(j.phase, Phase::Done(_)))
            && self.finished_reported.iter().all(|&r| r)
    }

    pub fn outcome(&self, i: usize) -> Option<&Outcome> {
        match &self.jobs[i].phase {
            Phase::Done(o) => Some(o),
            _ => None,
        }
    }
}

/// `45s`, `2m13s`, `1h02m`.
pub fn fmt_duration(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    } else if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else if d.subsec_millis() > 0 && s < 10 {
        format!("{:.1}s", d.as_secs_f64())
    } else {
        format!("{s}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    struct Sim {
        s: Scheduler,
        t0: Instant,
        now: Instant,
        log: Vec<String>,
    }

    impl Sim {
        fn new(jobs: &[(&str, bool)], policy: Policy) -> Sim {
            let t0 = Instant::now();
            let jobs = jobs.iter().map(|(n, b)| (n.to_string(), *b)).collect();
            Sim { s: Scheduler::new(jobs, policy, t0), t0, now: t0, log: Vec::new() }
        }
        fn at(&mut self, t: u64) -> Vec<Action> {
            self.now = self.t0 + secs(t);
            let acts = self.s.poll(self.now);
            for a in &acts {
                let line = match a {
                    Action::Probe(i) => format!("{t} probe {}", self.s.jobs[*i].name),
                    Action::Start { job, attempt } => {
                        format!("{t} start {} #{attempt}", self.s.jobs[*job].name)
                    }
                    Action::Kill(i) => format!("{t} kill {}", self.s.jobs[*i].name),
                    Action::Finished(i) => {
                        format!("{t} done {} {:?}", self.s.jobs[*i].name, self.s.outcome(*i).unwrap())
                    }
                };
                self.log.push(line);
            }
            acts
        }
        fn ready(&mut self, name: &str) {
            let i = self.idx(name);
            self.s.probed(i, Probe::Ready, self.now);
        }
        fn exit(&mut self, name: &str, r: Result<(), &str>) {
            let i = self.idx(name);
            self.s.exited(i, r.map_err(str::to_string), self.now);
        }
        fn idx(&self, name: &str) -> usize {
            self.s.jobs.iter().position(|j| j.name == name).unwrap()
        }
        fn starts(&self) -> Vec<&str> {
            self.log.iter().filter(|l| l.contains(" start ")).map(String::as_str).collect()
        }
    }

    #[test]
    fn bootstrap_nodes_start_together_then_joiners_within_the_limit() {
        let p = Policy { parallel: 1, ..Policy::default() };
        let mut sim = Sim::new(&[("n1", true), ("n2", true), ("n3", true), ("n4", false), ("n5", false)], p);
        assert_eq!(sim.at(0).len(), 5, "every node is probed at once");
        sim.ready("n1");
        sim.ready("n4");
        sim.ready("n5");
        sim.s.probed(1, Probe::Wait("state dhcp".into()), sim.now);
        sim.s.probed(2, Probe::Wait("ssh port 22 closed".into()), sim.now);
        sim.at(1);
        assert!(sim.starts().is_empty(), "n1 waits for its bootstrap peers; joiners wait for bootstrap");
        sim.at(2);
        sim.ready("n2");
        sim.ready("n3");
        sim.at(2);
        assert_eq!(
            sim.starts(),
            ["2 start n1 #1", "2 start n2 #1", "2 start n3 #1"],
            "parallel 1 does not split the bootstrap group"
        );
        sim.exit("n1", Ok(()));
        sim.exit("n2", Ok(()));
        sim.at(100);
        assert_eq!(sim.starts().len(), 3, "joiners wait for the whole bootstrap group");
        sim.exit("n3", Ok(()));
        sim.at(200);
        assert_eq!(&sim.starts()[3..], ["200 start n4 #1"], "one joiner at a time with parallel 1");
        sim.exit("n4", Ok(()));
        sim.at(300);
        sim.exit("n5", Ok(()));
        sim.at(301);
        assert_eq!(&sim.starts()[4..], ["300 start n5 #1"]);
        assert!(sim.s.is_done());
        assert_eq!(sim.log.iter().filter(|l| l.contains("Installed")).count(), 5);
    }

    #[test]
    fn failures_retry_with_doubling_backoff_then_fail() {
        let p = Policy { attempts: 3, backoff: secs(10), backoff_max: secs(15), ..Policy::default() };
        let mut sim = Sim::new(&[("n1", false)], p);
        sim.at(0);
        sim.ready("n1");
        sim.at(0);
        sim.exit("n1", Err("exit status 1"));
        sim.at(9);
        sim.at(10);
        sim.exit("n1", Err("exit status 1"));
        sim.at(24);
        sim.at(25); // 10 * 2 = 20, capped at 15
        sim.exit("n1", Err("exit status 2"));
        sim.at(1000);
        assert_eq!(sim.starts(), ["0 start n1 #1", "10 start n1 #2", "25 start n1 #3"]);
        assert_eq!(sim.log.last().unwrap(), "1000 done n1 Failed(\"exit status 2 (attempt 3/3)\")");
        assert!(sim.s.is_done());
    }

    #[test]
    fn a_hung_attempt_is_killed_at_its_deadline_and_retried() {
        let p = Policy { attempts: 2, attempt_timeout: secs(60), backoff: secs(5), ..Policy::default() };
        let mut sim = Sim::new(&[("n1", false)], p);
        sim.at(0);
        sim.ready("n1");
        sim.at(0);
        assert!(sim.at(59).is_empty());
        assert_eq!(sim.at(60), [Action::Kill(0)]);
        assert!(sim.at(61).is_empty(), "killed once");
        sim.exit("n1", Err("killed by signal 15"));
        sim.at(66);
        sim.exit("n1", Ok(()));
        sim.at(67);
        assert_eq!(sim.starts(), ["0 start n1 #1", "66 start n1 #2"]);
        assert!(sim.log.last().unwrap().ends_with("Installed"));
        assert_eq!(sim.s.next_wakeup(), None);
    }

    #[test]
    fn never_ready_nodes_fail_and_a_failed_bootstrap_skips_joiners() {
        let p = Policy { ready_timeout: secs(30), probe_interval: secs(2), attempts: 1, ..Policy::default() };
        let mut sim = Sim::new(&[("n1", true), ("n2", true), ("n4", false)], p);
        sim.at(0);
        sim.ready("n1");
        sim.ready("n4");
        sim.s.probed(1, Probe::Wait("state ipxe".into()), sim.now);
        assert_eq!(sim.s.next_wakeup(), Some(sim.t0 + secs(2)));
        for t in 1..30 {
            let acts = sim.at(t);
            for a in acts {
                if a == Action::Probe(1) {
                    sim.s.probed(1, Probe::Wait("state ipxe".into()), sim.now);
                }
            }
        }
        assert_eq!(
            sim.log.iter().filter(|l| l.ends_with("probe n2")).count(),
            15,
            "every 2 s: {:?}",
            sim.log
        );
        assert!(sim.starts().is_empty());
        sim.at(30);
        assert_eq!(sim.starts(), ["30 start n1 #1"], "the barrier opens when n2 gives up");
        assert!(
            sim.log.iter().any(|l| l == "30 done n2 Failed(\"not ready after 30s: state ipxe\")"),
            "{:?}",
            sim.log
        );
        sim.exit("n1", Ok(()));
        sim.at(40);
        assert!(
            sim.log.iter().any(|l| l == "40 done n4 Skipped(\"bootstrap failed (n2)\")"),
            "{:?}",
            sim.log
        );
        assert!(sim.s.is_done());
    }

    #[test]
    fn abort_fails_started_jobs_and_skips_the_rest() {
        let mut sim = Sim::new(&[("n1", false), ("n2", false)], Policy::default());
        sim.at(0);
        sim.ready("n1");
        sim.at(0);
        sim.s.abort("interrupted", sim.now);
        sim.at(1);
        assert!(sim.log.contains(&"1 done n1 Failed(\"interrupted\")".to_string()), "{:?}", sim.log);
        assert!(sim.log.contains(&"1 done n2 Skipped(\"interrupted\")".to_string()), "{:?}", sim.log);
        assert!(sim.s.is_done());
    }

    #[test]
    fn already_installed_nodes_are_skipped() {
        let mut sim = Sim::new(&[("n1", false)], Policy::default());
        sim.at(0);
        sim.s.probed(0, Probe::Skip("already installed".into()), sim.now);
        sim.at(0);
        assert_eq!(sim.log.last().unwrap(), "0 done n1 Skipped(\"already installed\")");
        assert!(sim.s.is_done());
    }

    #[test]
    fn durations_read_like_a_clock() {
        assert_eq!(fmt_duration(secs(45)), "45s");
        assert_eq!(fmt_duration(secs(133)), "2m13s");
        assert_eq!(fmt_duration(secs(3720)), "1h02m");
        assert_eq!(fmt_duration(Duration::from_millis(1500)), "1.5s");
    }
}
