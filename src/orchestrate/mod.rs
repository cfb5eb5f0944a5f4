//! Orchestration: from a booted installer to a healthy cluster (the runbook's phases 3-5 and §6).
//!
//! - [`cluster_config`]: each node's first-boot `cluster-config.json` from the inventory.
//! - [`plan`]: the provisioning schedule (sans-IO: waits, bootstrap group, parallelism, retries,
//!   timeouts on a virtual clock); [`runner`] drives it with real processes and the API.
//! - [`progress`]: the live display and the summary table.
//! - [`health`]: the §6 checks on answers (sans-IO); [`cluster_check`] fetches them over HTTPS.
//! - [`api`]: the client of the lifecycle API (`docs/api.md`).
//! - [`jobs`], [`http_api`]: the same actions on the JSON API, as background jobs.
//! - [`args`]: the command-line arguments; [`commands`]: the commands themselves.

pub mod api;
pub mod args;
pub mod cluster_check;
pub mod cluster_config;
pub mod commands;
pub mod health;
pub mod http_api;
pub mod jobs;
pub mod plan;
pub mod progress;
pub mod runner;

use std::time::Duration;

/// `90`, `90s`, `500ms`, `5m`, `1h`, `1h30m`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("empty duration".into());
    }
    if let Ok(n) = s.parse::<u64>() {
        return Ok(Duration::from_secs(n));
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        if digits == 0 {
            return Err(format!("{s:?}: expected a number like 30s, 5m, 1h"));
        }
        let n: u64 = rest[..digits].parse().map_err(|_| format!("{s:?}: number too large"))?;
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n.saturating_mul(60)),
            "h" => Duration::from_secs(n.saturating_mul(3600)),
            u => return Err(format!("{s:?}: unknown unit {u:?} (ms, s, m, h)")),
        };
        total = total.saturating_add(unit);
        rest = &rest[unit_len..];
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        for bad in ["", "m", "5x", "1.5s", "s5"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
