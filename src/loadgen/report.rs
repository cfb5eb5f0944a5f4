//! The run's summary: per-phase latency percentiles, aggregate throughput, files and their
//! digests, failures and retries; as a text table or JSON.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Duration;

use super::node::{NodeResult, Phase, Plan, mac_string};
use super::stats::{Percentiles, Span, Throughput, ms};

/// One file name across the nodes that fetched it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSummary {
    pub name: String,
    pub nodes: usize,
    /// Distinct sizes seen (one when every node got the same).
    pub sizes: Vec<u64>,
    /// Distinct SHA-256 digests (with --verify).
    pub sha256: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Report {
    pub server: String,
    pub mode: &'static str,
    pub nodes: usize,
    pub booted: usize,
    pub failed: usize,
    pub wall: Duration,
    pub phases: Vec<(Phase, Percentiles)>,
    pub booted_latency: Percentiles,
    pub tftp: Throughput,
    pub http: Throughput,
    pub files: Vec<FileSummary>,
    pub failures: Vec<(usize, [u8; 6], Phase, String)>,
    pub dhcp_retransmits: u64,
    pub tftp_retransmits: u64,
    pub http_reconnects: u64,
    pub dhcp_unmatched: u64,
    pub blksize: Option<u16>,
    pub windowsize: Option<u16>,
}

impl Report {
    pub fn new(plan: &Plan, results: &[NodeResult], wall: Duration, unmatched: u64) -> Report {
        let mut phases = Vec::new();
        for p in Phase::ALL {
            let samples: Vec<Duration> = results
                .iter()
                .flat_map(|r| r.phases.iter())
                .filter(|x| x.0 == p)
                .map(|x| x.1.len())
                .collect();
            if !samples.is_empty() {
                phases.push((p, Percentiles::of(&samples)));
            }
        }
        let spans = |p: Phase| -> Vec<(Span, u64)> {
            results.iter().flat_map(|r| r.phases.iter()).filter(|x| x.0 == p).map(|x| (x.1, x.2)).collect()
        };
        let booted: Vec<Duration> = results.iter().filter_map(|r| r.booted).collect();
        let mut files: BTreeMap<String, FileSummary> = BTreeMap::new();
        for f in results.iter().flat_map(|r| r.files.iter()) {
            let e = files.entry(f.name.clone()).or_insert_with(|| FileSummary {
                name: f.name.clone(),
                nodes: 0,
                sizes: Vec::new(),
                sha256: Vec::new(),
            });
            e.nodes += 1;
            if !e.sizes.contains(&f.bytes) {
                e.sizes.push(f.bytes);
            }
            if let Some(s) = &f.sha256 {
                if !e.sha256.contains(s) {
                    e.sha256.push(s.clone());
                }
            }
        }
        let failures: Vec<_> = results
            .iter()
            .filter_map(|r| r.error.as_ref().map(|(p, m)| (r.index, r.mac, *p, m.clone())))
            .collect();
        Report {
            server: plan.server.to_string(),
            mode: match (plan.dhcp, plan.mode) {
                (false, _) => "no-dhcp",
                (true, super::dhcp::Mode::Server) => "server",
                (true, super::dhcp::Mode::Proxy) => "proxy",
            },
            nodes: results.len(),
            booted: booted.len(),
            failed: failures.len(),
            wall,
            phases,
            booted_latency: Percentiles::of(&booted),
            tftp: Throughput::of(&spans(Phase::Tftp)),
            http: Throughput::of(&spans(Phase::Http)),
            files: files.into_values().collect(),
            failures,
            dhcp_retransmits: results.iter().map(|r| u64::from(r.dhcp_retransmits)).sum(),
            tftp_retransmits: results.iter().map(|r| u64::from(r.tftp_retransmits)).sum(),
            http_reconnects: results.iter().map(|r| u64::from(r.http_connects.saturating_sub(1))).sum(),
            dhcp_unmatched: unmatched,
            blksize: plan.blksize,
            windowsize: plan.windowsize,
        }
    }

    pub fn text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "loadgen: {} nodes against {} ({} mode): {} booted, {} failed in {:.2} s",
            self.nodes,
            self.server,
            self.mode,
            self.booted,
            self.failed,
            self.wall.as_secs_f64()
        );
        let _ = writeln!(
            s,
            "{:<10} {:>6} {:>10} {:>10} {:>10} {:>10}",
            "phase", "nodes", "p50 ms", "p90 ms", "p99 ms", "max ms"
        );
        let rows = self
            .phases
            .iter()
            .map(|(p, q)| (p.name(), q))
            .chain(std::iter::once(("booted", &self.booted_latency)));
        for (name, q) in rows {
            let _ = writeln!(
                s,
                "{:<10} {:>6} {:>10.1} {:>10.1} {:>10.1} {:>10.1}",
                name,
                q.count,
                ms(q.p50),
                ms(q.p90),
                ms(q.p99),
                ms(q.max)
            );
        }
        for (name, t) in [("tftp", &self.tftp), ("http", &self.http)] {
            if t.bytes > 0 {
                let _ = writeln!(
                    s,
                    "{name} throughput: {:.1} MB/s ({:.1} MB in {:.2} s, all nodes)",
                    t.mb_per_s(),
                    t.bytes as f64 / 1e6,
                    t.wall.as_secs_f64()
                );
            }
        }
        let _ = writeln!(
            s,
            "retries: dhcp {} retransmissions, tftp {} retransmissions, http {} reconnects; {} unmatched DHCP replies",
            self.dhcp_retransmits, self.tftp_retransmits, self.http_reconnects, self.dhcp_unmatched
        );
        for f in &self.files {
            let sizes: Vec<String> = f.sizes.iter().map(u64::to_string).collect();
            let sha = match f.sha256.len() {
                0 => String::new(),
                1 => format!(", sha256 {}", f.sha256[0]),
                n => format!(", {n} DIFFERENT sha256 digests"),
            };
            let _ = writeln!(s, "file {}: {} nodes, {} bytes{sha}", f.name, f.nodes, sizes.join("/"));
        }
        for (i, mac, p, m) in self.failures.iter().take(20) {
            let _ = writeln!(s, "FAILED node {i} ({}) in {}: {m}", mac_string(mac), p.name());
        }
        if self.failures.len() > 20 {
            let _ = writeln!(s, "... and {} more failures", self.failures.len() - 20);
        }
        s
    }

    pub fn to_json(&self) -> serde_json::Value {
        let phases: serde_json::Map<String, serde_json::Value> =
            self.phases.iter().map(|(p, q)| (p.name().to_string(), q.to_json())).collect();
        let tp = |t: &Throughput| serde_json::json!({ "bytes": t.bytes, "wall_s": t.wall.as_secs_f64(), "mb_per_s": t.mb_per_s() });
        serde_json::json!({
            "server": self.server,
            "mode": self.mode,
            "nodes": self.nodes,
            "booted": self.booted,
            "failed": self.failed,
            "wall_s": self.wall.as_secs_f64(),
            "blksize": self.blksize,
            "windowsize": self.windowsize,
            "phases": phases,
            "time_to_booted": self.booted_latency.to_json(),
            "throughput": { "tftp": tp(&self.tftp), "http": tp(&self.http) },
            "retries": {
                "dhcp_retransmits": self.dhcp_retransmits,
                "tftp_retransmits": self.tftp_retransmits,
                "http_reconnects": self.http_reconnects,
                "dhcp_unmatched_replies": self.dhcp_unmatched,
            },
            "files": self.files.iter().map(|f| serde_json::json!({
                "name": f.name, "nodes": f.nodes, "sizes": f.sizes, "sha256": f.sha256,
            })).collect::<Vec<_>>(),
            "failures": self.failures.iter().map(|(i, mac, p, m)| serde_json::json!({
                "node": i, "mac": mac_string(mac), "phase": p.name(), "error": m,
            })).collect::<Vec<_>>(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loadgen::node::FileResult;

    #[test]
    fn summary_of_two_nodes_one_failed() {
        let a = crate::loadgen::LoadgenArgs {
            server: "10.0.0.1".parse().unwrap(),
            nodes: 2,
            mode: crate::loadgen::ModeArg::Server,
            tftp_file: Some("ipxe.efi".into()),
            http_file: vec![],
            blksize: 1468,
            windowsize: 4,
            interface: None,
            json: false,
            arch: 7,
            no_dhcp: true,
            no_script: true,
            http_port: 8080,
            tftp_port: 69,
            verify: true,
            dhcp_timeout_ms: 1000,
            tftp_timeout_ms: 1000,
            http_timeout_ms: 1000,
            stagger_ms: 0,
        };
        let plan = crate::loadgen::plan(&a).unwrap();
        let d = Duration::from_millis;
        let ok = NodeResult {
            index: 0,
            mac: [2, 0xfb, 0, 0, 0, 1],
            phases: vec![(Phase::Tftp, Span { start: d(0), end: d(500) }, 1_000_000)],
            files: vec![FileResult { name: "ipxe.efi".into(), bytes: 1_000_000, sha256: Some("ab".into()) }],
            booted: Some(d(500)),
            tftp_retransmits: 2,
            ..Default::default()
        };
        let bad = NodeResult {
            index: 1,
            mac: [2, 0xfb, 0, 0, 0, 2],
            error: Some((Phase::Tftp, "TFTP error 1 from server: not found".into())),
            ..Default::default()
        };
        let r = Report::new(&plan, &[ok, bad], d(600), 0);
        assert_eq!((r.booted, r.failed, r.tftp_retransmits), (1, 1, 2));
        assert!((r.tftp.mb_per_s() - 2.0).abs() < 1e-9);
        let t = r.text();
        assert!(t.contains("1 booted, 1 failed"), "{t}");
        assert!(t.contains("FAILED node 1 (02:fb:00:00:00:02) in tftp: TFTP error 1"), "{t}");
        assert!(t.contains("file ipxe.efi: 1 nodes, 1000000 bytes, sha256 ab"), "{t}");
        let j = r.to_json();
        assert_eq!(j["phases"]["tftp"]["p50_ms"], 500.0);
        assert_eq!(j["failures"][0]["phase"], "tftp");
        assert_eq!(j["throughput"]["tftp"]["bytes"], 1_000_000);
    }
}
