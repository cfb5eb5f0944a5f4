//! What `provision` shows: a live block of one line per node on a terminal (redrawn in place),
//! plain timestamped lines on each change otherwise, and the summary table at the end.

use super::plan::{Job, Outcome, Phase, Scheduler, fmt_duration};
use std::path::Path;
use std::time::Instant;

/// The phase in words, e.g. `installing (attempt 2/3)`.
pub fn phase_label(job: &Job, attempts: u32, now: Instant) -> String {
    match &job.phase {
        Phase::Waiting { why, .. } => format!("waiting: {why}"),
        Phase::Ready if job.bootstrap => "ready, waiting for the other bootstrap nodes".into(),
        Phase::Ready => "ready, waiting for bootstrap / a free slot".into(),
        Phase::Running { attempt, .. } => format!("installing (attempt {attempt}/{attempts})"),
        Phase::Killing { attempt } => format!("timed out, stopping attempt {attempt}"),
        Phase::Backoff { next_attempt, until, last_error } => format!(
            "retry {next_attempt}/{attempts} in {}: {}",
            fmt_duration(until.saturating_duration_since(now)),
            last_error
        ),
        Phase::Done(Outcome::Installed) => "installed".into(),
        Phase::Done(Outcome::Failed(e)) => format!("FAILED: {e}"),
        Phase::Done(Outcome::Skipped(e)) => format!("skipped: {e}"),
    }
}

/// The phase without its countdown, to tell when a plain line is due.
pub fn phase_key(job: &Job, attempts: u32) -> String {
    match &job.phase {
        Phase::Backoff { next_attempt, .. } => format!("retry {next_attempt}"),
        _ => phase_label(job, attempts, job.since),
    }
}

fn width(s: &Scheduler) -> usize {
    s.jobs.iter().map(|j| j.name.len()).max().unwrap_or(4).max(4)
}

/// One line per node: name, phase, time in this phase.
pub fn live_lines(s: &Scheduler, now: Instant) -> Vec<String> {
    let w = width(s);
    s.jobs
        .iter()
        .map(|j| {
            let elapsed = fmt_duration(now.saturating_duration_since(j.since));
            format!("{:w$}  {:>6}  {}", j.name, elapsed, phase_label(j, s.policy.attempts, now))
        })
        .collect()
}

/// A plain line for a change: `[+1m05s] node01: installing (attempt 1/3)`.
pub fn plain_line(s: &Scheduler, i: usize, now: Instant) -> String {
    let j = &s.jobs[i];
    format!(
        "[+{}] {}: {}",
        fmt_duration(now.saturating_duration_since(s.started())),
        j.name,
        phase_label(j, s.policy.attempts, now)
    )
}

/// The summary table: node, result, attempts, time installing, log file.
pub fn summary(s: &Scheduler, now: Instant, log_dir: &Path) -> String {
    let w = width(s);
    let mut out =
        format!("{:w$}  {:10}  {:8}  {:>7}  {:30}  DETAIL\n", "NODE", "RESULT", "ATTEMPTS", "TIME", "LOG");
    for j in &s.jobs {
        let (result, detail) = match &j.phase {
            Phase::Done(Outcome::Installed) => ("installed", String::new()),
            Phase::Done(Outcome::Failed(e)) => ("FAILED", e.clone()),
            Phase::Done(Outcome::Skipped(e)) => ("skipped", e.clone()),
            _ => ("unfinished", String::new()),
        };
        let time = j.first_start.map(|t| fmt_duration(j.since.min(now).saturating_duration_since(t)));
        let log = if j.attempts_made > 0 {
            log_dir.join(format!("{}.log", j.name)).display().to_string()
        } else {
            "-".into()
        };
        let detail = detail.lines().next().unwrap_or("").to_string();
        let line = format!(
            "{:w$}  {:10}  {:<8}  {:>7}  {:30}  {}",
            j.name,
            result,
            j.attempts_made,
            time.unwrap_or_else(|| "-".into()),
            log,
            detail
        );
        out += line.trim_end();
        out += "\n";
    }
    let n = |f: fn(&Phase) -> bool| s.jobs.iter().filter(|j| f(&j.phase)).count();
    out += &format!(
        "{} installed, {} failed, {} skipped\n",
        n(|p| matches!(p, Phase::Done(Outcome::Installed))),
        n(|p| matches!(p, Phase::Done(Outcome::Failed(_)))),
        n(|p| matches!(p, Phase::Done(Outcome::Skipped(_))))
    );
    out
}

/// Redraws the live block in place: up over the previous block, each line cleared.
pub fn redraw(previous_lines: usize, lines: &[String]) -> String {
    let mut s = String::new();
    if previous_lines > 0 {
        s += &format!("\x1b[{previous_lines}A");
    }
    for l in lines {
        s += "\r\x1b[2K";
        s += l;
        s += "\n";
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::orchestrate::plan::{Policy, Probe};
    use std::time::Duration;

    #[test]
    fn lines_and_summary_show_each_phase() {
        let t0 = Instant::now();
        let mut s = Scheduler::new(
            vec![("node01".into(), true), ("node02".into(), true), ("node04".into(), false)],
            Policy { attempts: 2, ..Policy::default() },
            t0,
        );
        s.poll(t0);
        s.probed(0, Probe::Ready, t0);
        s.probed(1, Probe::Ready, t0);
        s.probed(2, Probe::Wait("lifecycle state ipxe".into()), t0);
        s.poll(t0);
        let t = t0 + Duration::from_secs(75);
        s.exited(1, Err("exit status 1".into()), t);
        let lines = live_lines(&s, t);
        assert_eq!(lines[0], "node01   1m15s  installing (attempt 1/2)");
        assert_eq!(lines[1], "node02      0s  retry 2/2 in 10s: exit status 1");
        assert_eq!(lines[2], "node04   1m15s  waiting: lifecycle state ipxe");
        assert_eq!(plain_line(&s, 0, t), "[+1m15s] node01: installing (attempt 1/2)");
        s.exited(0, Ok(()), t);
        let sum = summary(&s, t, Path::new("logs"));
        assert!(sum.contains("node01  installed   1           1m15s  logs/node01.log\n"), "{sum}");
        assert!(sum.contains("node04  unfinished  0               -  -\n"), "{sum}");
        assert!(sum.ends_with("1 installed, 0 failed, 0 skipped\n"), "{sum}");
        assert_eq!(redraw(2, &["a".into()]), "\x1b[2A\r\x1b[2Ka\n");
    }
}
