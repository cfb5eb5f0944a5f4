//! The runbook's §6 checks, sans-IO: given what each node's `/health` and
//! `/admin/cluster/members` answered (or why they did not), decide pass/fail per check.
//! `cluster_check` does the HTTPS; this module only reads bodies, so it is fuzzed and unit-tested
//! on plain bytes.
//!
//! Answers it expects (runbook §5.4, §6.1; first-boot README "Verify Cluster Membership"):
//! - Chainfire `/health`: `{"status":"healthy","raft":"leader","cluster_size":3}`
//! - FlareDB `/health`: `{"status":"healthy","raft":"leader","chainfire":"connected"}`
//! - IAM `/health`: `{"status":"healthy","database":"connected","version":"1.0.0"}`
//! - `/admin/cluster/members`: `{"members":[{"id":"node01","raft_addr":"10.0.200.10:2380",
//!   "status":"healthy","role":"leader"}, ...]}`

use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Service {
    Chainfire,
    Flaredb,
    Iam,
}

impl Service {
    pub const ALL: [Service; 3] = [Service::Chainfire, Service::Flaredb, Service::Iam];
    pub fn as_str(self) -> &'static str {
        match self {
            Service::Chainfire => "chainfire",
            Service::Flaredb => "flaredb",
            Service::Iam => "iam",
        }
    }
    /// Raft services have a member list.
    pub fn has_members(self) -> bool {
        self != Service::Iam
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Endpoint {
    Health,
    Members,
}

impl Endpoint {
    pub fn path(self) -> &'static str {
        match self {
            Endpoint::Health => "/health",
            Endpoint::Members => "/admin/cluster/members",
        }
    }
}

/// What one request produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Http {
        status: u16,
        body: Vec<u8>,
    },
    /// Connection refused, TLS failure, timeout...: the transport's message.
    Failed(String),
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckResult {
    /// A node id, or `cluster` for checks across nodes.
    pub node: String,
    pub service: Service,
    /// `health`, `members` or `leader`.
    pub check: &'static str,
    pub ok: bool,
    pub detail: String,
}

/// All answers of one round, keyed by (node, service, endpoint).
pub type Replies = BTreeMap<(String, Service, Endpoint), Reply>;

fn body_json(reply: Option<&Reply>) -> Result<Value, String> {
    match reply {
        None => Err("not checked".into()),
        Some(Reply::Failed(e)) => Err(format!("unreachable: {e}")),
        Some(Reply::Http { status, body }) => {
            let text = String::from_utf8_lossy(body);
            let snippet: String = text.trim().chars().take(120).collect();
            if !(200..300).contains(status) {
                return Err(format!("HTTP {status}: {snippet}"));
            }
            serde_json::from_slice(body).map_err(|e| format!("not JSON ({e}): {snippet}"))
        }
    }
}

fn str_field<'a>(v: &'a Value, k: &str) -> Option<&'a str> {
    v.get(k).and_then(Value::as_str)
}

struct Health {
    ok: bool,
    detail: String,
    raft: Option<String>,
}

fn health(service: Service, reply: Option<&Reply>, expected: usize) -> Health {
    let v = match body_json(reply) {
        Ok(v) => v,
        Err(detail) => return Health { ok: false, detail, raft: None },
    };
    let mut problems = Vec::new();
    let mut facts = Vec::new();
    match str_field(&v, "status") {
        Some("healthy") => facts.push("healthy".to_string()),
        Some(s) => problems.push(format!("status {s:?}")),
        None => problems.push("no \"status\"".to_string()),
    }
    let raft = str_field(&v, "raft").map(str::to_string);
    if let Some(r) = &raft {
        facts.push(format!("raft {r}"));
    }
    match service {
        Service::Chainfire => match v.get("cluster_size") {
            Some(n) if n.as_u64() == Some(expected as u64) => facts.push(format!("cluster_size {n}")),
            Some(n) => problems.push(format!("cluster_size {n}, expected {expected}")),
            None => {}
        },
        Service::Flaredb => match str_field(&v, "chainfire") {
            Some("connected") | None => {}
            Some(s) => problems.push(format!("chainfire {s:?}")),
        },
        Service::Iam => {
            match str_field(&v, "database") {
                Some("connected") => facts.push("database connected".into()),
                Some(s) => problems.push(format!("database {s:?}")),
                None => {}
            }
            if let Some(ver) = str_field(&v, "version") {
                facts.push(format!("version {ver}"));
            }
        }
    }
    if problems.is_empty() {
        Health { ok: true, detail: facts.join(", "), raft }
    } else {
        Health { ok: false, detail: problems.join(", "), raft }
    }
}

/// The leader this node's member list names, when the list is well formed.
fn members(reply: Option<&Reply>, expected: &[&str]) -> (bool, String, Option<String>) {
    let v = match body_json(reply) {
        Ok(v) => v,
        Err(detail) => return (false, detail, None),
    };
    let Some(list) = v.get("members").and_then(Value::as_array) else {
        return (false, "no \"members\" list".into(), None);
    };
    let mut problems = Vec::new();
    let mut ids = Vec::new();
    let mut leaders = Vec::new();
    for (i, m) in list.iter().enumerate() {
        let id = str_field(m, "id").map(str::to_string).unwrap_or_else(|| format!("#{i}"));
        match str_field(m, "status") {
            Some("healthy") => {}
            Some(s) => problems.push(format!("{id} is {s}")),
            None => problems.push(format!("{id} has no status")),
        }
        if str_field(m, "role") == Some("leader") {
            leaders.push(id.clone());
        }
        ids.push(id);
    }
    if list.len() != expected.len() {
        problems.push(format!("{} members, expected {}", list.len(), expected.len()));
    }
    let missing: Vec<&str> = expected.iter().copied().filter(|e| !ids.iter().any(|i| i == e)).collect();
    if !missing.is_empty() {
        problems.push(format!("missing {}", missing.join(", ")));
    }
    let unknown: Vec<&str> = ids.iter().map(String::as_str).filter(|i| !expected.contains(i)).collect();
    if !unknown.is_empty() {
        problems.push(format!("unexpected {}", unknown.join(", ")));
    }
    match leaders.len() {
        1 => {}
        0 => problems.push("no leader".into()),
        _ => problems.push(format!("{} leaders: {} (split brain)", leaders.len(), leaders.join(", "))),
    }
    let leader = (leaders.len() == 1).then(|| leaders[0].clone());
    if problems.is_empty() {
        (true, format!("{} members, all healthy, leader {}", list.len(), leaders[0]), leader)
    } else {
        (false, problems.join("; "), leader)
    }
}

/// Every check of one round. `nodes` are the node ids checked; `expected` the ids the member lists
/// must hold (the whole cluster, or `nodes`). A (node, service) without any reply is not checked.
pub fn evaluate(nodes: &[&str], expected: &[&str], replies: &Replies) -> Vec<CheckResult> {
    let mut out = Vec::new();
    let get = |n: &str, s: Service, e: Endpoint| replies.get(&(n.to_string(), s, e));
    for service in Service::ALL {
        let mut raft_leaders: Vec<&str> = Vec::new();
        let mut views: BTreeMap<String, Vec<&str>> = BTreeMap::new();
        for &node in nodes {
            // A service not asked of this node (IAM on a worker) is not checked.
            if get(node, service, Endpoint::Health).is_none()
                && get(node, service, Endpoint::Members).is_none()
            {
                continue;
            }
            let h = health(service, get(node, service, Endpoint::Health), expected.len());
            if h.raft.as_deref() == Some("leader") {
                raft_leaders.push(node);
            }
            out.push(CheckResult { node: node.into(), service, check: "health", ok: h.ok, detail: h.detail });
            if service.has_members() {
                let (ok, detail, leader) = members(get(node, service, Endpoint::Members), expected);
                if let Some(l) = leader {
                    views.entry(l).or_default().push(node);
                }
                out.push(CheckResult { node: node.into(), service, check: "members", ok, detail });
            }
        }
        if service.has_members() {
            // Across nodes: one leader that every node agrees on, and one node saying it leads.
            let mut problems = Vec::new();
            if views.len() > 1 {
                let seen: Vec<String> =
                    views.iter().map(|(l, by)| format!("{} per {}", l, by.join(","))).collect();
                problems.push(format!("nodes disagree on the leader: {} (split brain)", seen.join("; ")));
            }
            if raft_leaders.len() > 1 {
                problems.push(format!(
                    "{} nodes report raft leader: {}",
                    raft_leaders.len(),
                    raft_leaders.join(", ")
                ));
            }
            let (ok, detail) = if !problems.is_empty() {
                (false, problems.join("; "))
            } else if let Some(l) = views.keys().next() {
                (true, format!("leader {l}, agreed by {} node(s)", views[l].len()))
            } else {
                (false, "no node named a leader".to_string())
            };
            out.push(CheckResult { node: "cluster".into(), service, check: "leader", ok, detail });
        }
    }
    out
}

/// The report as a plain table.
pub fn table(results: &[CheckResult]) -> String {
    let w = results.iter().map(|r| r.node.len()).max().unwrap_or(4).max(4);
    let mut s = format!("{:w$}  {:9}  {:7}  {:6}  DETAIL\n", "NODE", "SERVICE", "CHECK", "RESULT");
    for r in results {
        s += &format!(
            "{:w$}  {:9}  {:7}  {:6}  {}\n",
            r.node,
            r.service.as_str(),
            r.check,
            if r.ok { "ok" } else { "FAIL" },
            r.detail
        );
    }
    let failed = results.iter().filter(|r| !r.ok).count();
    if failed == 0 {
        s += &format!("all {} checks passed\n", results.len());
    } else {
        s += &format!("{failed} of {} checks failed\n", results.len());
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const NODES: [&str; 3] = ["node01", "node02", "node03"];

    fn ok(body: &str) -> Reply {
        Reply::Http { status: 200, body: body.as_bytes().to_vec() }
    }

    fn members_body(leaders: &[&str], ids: &[&str], sick: &[&str]) -> String {
        let m: Vec<String> = ids
            .iter()
            .map(|id| {
                let role = if leaders.contains(id) { "leader" } else { "follower" };
                let st = if sick.contains(id) { "unhealthy" } else { "healthy" };
                format!(r#"{{"id":"{id}","raft_addr":"10.0.200.1:2380","status":"{st}","role":"{role}"}}"#)
            })
            .collect();
        format!(r#"{{"members":[{}]}}"#, m.join(","))
    }

    fn healthy() -> Replies {
        let mut r = Replies::new();
        for n in NODES {
            let raft = if n == "node01" { "leader" } else { "follower" };
            r.insert(
                (n.into(), Service::Chainfire, Endpoint::Health),
                ok(&format!(r#"{{"status":"healthy","raft":"{raft}","cluster_size":3}}"#)),
            );
            r.insert(
                (n.into(), Service::Flaredb, Endpoint::Health),
                ok(&format!(r#"{{"status":"healthy","raft":"{raft}","chainfire":"connected"}}"#)),
            );
            r.insert(
                (n.into(), Service::Iam, Endpoint::Health),
                ok(r#"{"status":"healthy","database":"connected","version":"1.0.0"}"#),
            );
            for s in [Service::Chainfire, Service::Flaredb] {
                r.insert((n.into(), s, Endpoint::Members), ok(&members_body(&["node01"], &NODES, &[])));
            }
        }
        r
    }

    fn failing(r: &[CheckResult]) -> Vec<String> {
        r.iter()
            .filter(|c| !c.ok)
            .map(|c| format!("{} {} {}: {}", c.node, c.service.as_str(), c.check, c.detail))
            .collect()
    }

    #[test]
    fn healthy_cluster_passes_every_check() {
        let r = evaluate(&NODES, &NODES, &healthy());
        assert_eq!(r.len(), 3 * 5 + 2);
        assert!(failing(&r).is_empty(), "{:?}", failing(&r));
        assert!(table(&r).ends_with("all 17 checks passed\n"));
    }

    #[test]
    fn each_fault_fails_its_check() {
        let mut r = healthy();
        r.insert(
            ("node02".into(), Service::Iam, Endpoint::Health),
            Reply::Failed("connection refused".into()),
        );
        r.insert(
            ("node03".into(), Service::Chainfire, Endpoint::Health),
            Reply::Http { status: 503, body: br#"{"status":"degraded"}"#.to_vec() },
        );
        r.insert(
            ("node01".into(), Service::Flaredb, Endpoint::Members),
            ok(&members_body(&["node01", "node02"], &NODES, &[])),
        );
        r.insert(
            ("node02".into(), Service::Chainfire, Endpoint::Members),
            ok(&members_body(&["node01"], &NODES[..2], &["node02"])),
        );
        let f = failing(&evaluate(&NODES, &NODES, &r)).join("\n");
        assert!(f.contains("node02 iam health: unreachable: connection refused"), "{f}");
        assert!(f.contains("node03 chainfire health: HTTP 503"), "{f}");
        assert!(f.contains("node01 flaredb members: 2 leaders: node01, node02 (split brain)"), "{f}");
        assert!(
            f.contains(
                "node02 chainfire members: node02 is unhealthy; 2 members, expected 3; missing node03"
            ),
            "{f}"
        );
        assert_eq!(f.lines().count(), 4, "{f}");
    }

    #[test]
    fn nodes_that_disagree_on_the_leader_are_a_split_brain() {
        let mut r = healthy();
        r.insert(
            ("node03".into(), Service::Chainfire, Endpoint::Members),
            ok(&members_body(&["node03"], &NODES, &[])),
        );
        r.insert(
            ("node03".into(), Service::Chainfire, Endpoint::Health),
            ok(r#"{"status":"healthy","raft":"leader","cluster_size":3}"#),
        );
        let f = failing(&evaluate(&NODES, &NODES, &r)).join("\n");
        assert!(f.contains("cluster chainfire leader: nodes disagree on the leader: node01 per node01,node02; node03 per node03 (split brain); 2 nodes report raft leader: node01, node03"), "{f}");
    }

    #[test]
    fn services_not_asked_of_a_node_are_not_checked() {
        let mut r = healthy();
        r.remove(&("node03".to_string(), Service::Iam, Endpoint::Health));
        let res = evaluate(&NODES, &NODES, &r);
        assert_eq!(res.len(), 16);
        assert!(!res.iter().any(|c| c.node == "node03" && c.service == Service::Iam));
        assert!(res.iter().all(|c| c.ok));
    }

    #[test]
    fn garbage_bodies_fail_without_panicking() {
        let mut r = healthy();
        for (i, body) in
            [&b"\xff\xfe"[..], b"[]", b"{\"members\":7}", b"{\"status\":1}", b""].iter().enumerate()
        {
            let n = NODES[i % 3];
            r.insert(
                (n.into(), Service::Chainfire, Endpoint::Members),
                Reply::Http { status: 200, body: body.to_vec() },
            );
            r.insert(
                (n.into(), Service::Iam, Endpoint::Health),
                Reply::Http { status: 200, body: body.to_vec() },
            );
        }
        let res = evaluate(&NODES, &NODES, &r);
        assert!(res.iter().filter(|c| !c.ok).count() >= 6);
    }
}
