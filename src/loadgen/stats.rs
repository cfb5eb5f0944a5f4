//! Latency percentiles and throughput over the nodes of one load run.

use std::time::Duration;

/// Percentiles of a set of durations (nearest-rank: the smallest sample with at least p % of the
/// samples at or below it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Percentiles {
    pub count: usize,
    pub p50: Duration,
    pub p90: Duration,
    pub p99: Duration,
    pub max: Duration,
}

/// The nearest-rank `p`-th percentile (0 < p <= 100) of sorted samples; zero when empty.
pub fn nearest_rank(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

impl Percentiles {
    pub fn of(samples: &[Duration]) -> Percentiles {
        let mut s = samples.to_vec();
        s.sort_unstable();
        Percentiles {
            count: s.len(),
            p50: nearest_rank(&s, 50.0),
            p90: nearest_rank(&s, 90.0),
            p99: nearest_rank(&s, 99.0),
            max: s.last().copied().unwrap_or_default(),
        }
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "count": self.count,
            "p50_ms": ms(self.p50),
            "p90_ms": ms(self.p90),
            "p99_ms": ms(self.p99),
            "max_ms": ms(self.max),
        })
    }
}

/// Milliseconds with microsecond precision.
pub fn ms(d: Duration) -> f64 {
    (d.as_micros() as f64) / 1000.0
}

/// One time span, as offsets from the run's start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub start: Duration,
    pub end: Duration,
}

impl Span {
    pub fn len(&self) -> Duration {
        self.end.saturating_sub(self.start)
    }
}

/// Aggregate throughput of a phase: all bytes over the wall time from the first node's start to
/// the last node's end (what the server sustained while the phase ran).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Throughput {
    pub bytes: u64,
    pub wall: Duration,
}

impl Throughput {
    pub fn of(parts: &[(Span, u64)]) -> Throughput {
        let bytes = parts.iter().map(|(_, b)| b).sum();
        let first = parts.iter().map(|(s, _)| s.start).min();
        let last = parts.iter().map(|(s, _)| s.end).max();
        let wall = match (first, last) {
            (Some(a), Some(b)) => b.saturating_sub(a),
            _ => Duration::ZERO,
        };
        Throughput { bytes, wall }
    }

    /// Megabytes (10^6) per second; 0 when nothing was timed.
    pub fn mb_per_s(&self) -> f64 {
        let s = self.wall.as_secs_f64();
        if s > 0.0 { self.bytes as f64 / 1e6 / s } else { 0.0 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    #[test]
    fn nearest_rank_matches_the_definition() {
        let s: Vec<Duration> = (1..=100).map(d).collect();
        assert_eq!(nearest_rank(&s, 50.0), d(50));
        assert_eq!(nearest_rank(&s, 90.0), d(90));
        assert_eq!(nearest_rank(&s, 99.0), d(99));
        assert_eq!(nearest_rank(&s, 100.0), d(100));
        assert_eq!(nearest_rank(&[], 50.0), Duration::ZERO);
        // Small sets: p99 of 8 samples is the largest, p50 the 4th.
        let s: Vec<Duration> = (1..=8).map(d).collect();
        assert_eq!(nearest_rank(&s, 50.0), d(4));
        assert_eq!(nearest_rank(&s, 99.0), d(8));
        assert_eq!(nearest_rank(&[d(7)], 1.0), d(7));
    }

    #[test]
    fn percentiles_sort_unsorted_input() {
        let p = Percentiles::of(&[d(30), d(10), d(20), d(1000)]);
        assert_eq!(p.count, 4);
        assert_eq!(p.p50, d(20));
        assert_eq!(p.p90, d(1000));
        assert_eq!(p.max, d(1000));
        assert_eq!(Percentiles::of(&[]), Percentiles::default());
        let j = p.to_json();
        assert_eq!(j["p50_ms"], 20.0);
    }

    #[test]
    fn throughput_spans_first_start_to_last_end() {
        let parts = [
            (Span { start: d(100), end: d(600) }, 50_000_000),
            (Span { start: d(200), end: d(1100) }, 50_000_000),
        ];
        let t = Throughput::of(&parts);
        assert_eq!(t.bytes, 100_000_000);
        assert_eq!(t.wall, d(1000));
        assert!((t.mb_per_s() - 100.0).abs() < 1e-9);
        assert_eq!(Throughput::of(&[]).mb_per_s(), 0.0);
    }
}
