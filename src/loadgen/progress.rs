//! Live counters shared by the node threads, and the progress line drawn from them: a bar
//! redrawn in place on a terminal, a plain line every few seconds otherwise (logs, CI).

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

#[derive(Debug, Default)]
pub struct Counters {
    pub dhcp_done: AtomicUsize,
    pub tftp_done: AtomicUsize,
    pub booted: AtomicUsize,
    pub failed: AtomicUsize,
    pub bytes: AtomicU64,
    pub retries: AtomicU64,
}

/// One progress line: `[#####.....] 5/8 booted, 0 failed | dhcp 8 tftp 8 | 1.2 GB, 850 MB/s`.
pub fn line(c: &Counters, total: usize, elapsed: Duration, rate_mb_s: f64, width: usize) -> String {
    let booted = c.booted.load(Relaxed);
    let failed = c.failed.load(Relaxed);
    let done = (booted + failed).min(total);
    let filled = (done * width).checked_div(total).unwrap_or(width);
    format!(
        "[{}{}] {booted}/{total} booted, {failed} failed | dhcp {} tftp {} | {:.1} GB, {:.0} MB/s, {} retries, {:.1} s",
        "#".repeat(filled),
        ".".repeat(width - filled),
        c.dhcp_done.load(Relaxed),
        c.tftp_done.load(Relaxed),
        c.bytes.load(Relaxed) as f64 / 1e9,
        rate_mb_s,
        c.retries.load(Relaxed),
        elapsed.as_secs_f64(),
    )
}

/// Draws progress to stderr until `stop` is set.
pub fn spawn(c: Arc<Counters>, total: usize, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    // SAFETY: isatty has no preconditions.
    let tty = unsafe { libc::isatty(2) } == 1;
    let every = if tty { Duration::from_millis(250) } else { Duration::from_secs(2) };
    std::thread::spawn(move || {
        let start = Instant::now();
        let (mut last_bytes, mut last_t) = (0u64, start);
        let mut rate = 0.0;
        let mut err = std::io::stderr();
        loop {
            let stopped = stop.load(Relaxed);
            let now = Instant::now();
            let b = c.bytes.load(Relaxed);
            let dt = now.duration_since(last_t).as_secs_f64();
            if dt > 0.0 {
                rate = (b - last_bytes) as f64 / 1e6 / dt;
            }
            (last_bytes, last_t) = (b, now);
            let l = line(&c, total, now.duration_since(start), rate, 30);
            let _ = if tty { write!(err, "\r\x1b[2K{l}") } else { writeln!(err, "{l}") };
            if stopped {
                if tty {
                    let _ = writeln!(err);
                }
                return;
            }
            let deadline = Instant::now() + every;
            while Instant::now() < deadline && !stop.load(Relaxed) {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_shows_counts_and_a_proportional_bar() {
        let c = Counters::default();
        c.booted.store(5, Relaxed);
        c.failed.store(1, Relaxed);
        c.dhcp_done.store(8, Relaxed);
        c.bytes.store(1_500_000_000, Relaxed);
        let l = line(&c, 8, Duration::from_millis(2500), 850.0, 8);
        assert!(l.starts_with("[######..] 5/8 booted, 1 failed | dhcp 8 tftp 0 | 1.5 GB, 850 MB/s"), "{l}");
        assert!(l.ends_with("2.5 s"), "{l}");
    }
}
