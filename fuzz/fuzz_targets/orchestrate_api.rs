//! The orchestration API's parsers and read-only routes on arbitrary input: the provision and
//! cluster check bodies, the path parser, and GET/HEAD requests (cluster-config, jobs) answered by
//! the route over a small inventory. Never panics; accepted bodies respect their limits; every
//! answer of ours is JSON with an expected status. (POSTs that pass the parsers would start real
//! jobs, so the route sees only GET/HEAD and POSTs the parsers refuse.)
#![no_main]

use std::net::SocketAddr;
use std::sync::OnceLock;

use ferroboot::config::cluster::ClusterSettings;
use ferroboot::http::request::Method;
use ferroboot::http::routes::split_target;
use ferroboot::http::{Reply, Route, RouteRequest};
use ferroboot::orchestrate::http_api::{OrchestrationApi, parse_check, parse_provision, parse_target};
use ferroboot::orchestrate::jobs::Jobs;
use libfuzzer_sys::fuzz_target;

struct Lifecycle;
impl Route for Lifecycle {
    fn respond(&self, _: &RouteRequest<'_>, body: &mut Vec<u8>) -> Reply {
        body.extend_from_slice(b"{\"nodes\":[]}");
        Reply { status: 200, content_type: "application/json", cache_control: None }
    }
}

fn cluster() -> ClusterSettings {
    static C: OnceLock<ClusterSettings> = OnceLock::new();
    C.get_or_init(|| {
        let p = std::env::temp_dir().join(format!("ferroboot-fuzz-orchestrate-{}.toml", std::process::id()));
        std::fs::write(
            &p,
            "[nodes.\"52:54:00:00:04:01\"]\nhostname = \"node01\"\nrole = \"control-plane\"\n\
             ip_address = \"10.0.100.50\"\ncluster_address = \"10.0.200.10\"\n\n\
             [nodes.\"52:54:00:00:04:02\"]\nhostname = \"node02\"\nrole = \"worker\"\n\
             ip_address = \"10.0.100.51\"\ncluster_address = \"10.0.200.11\"\n\n\
             [cluster]\ncluster_name = \"prod-cluster\"\n",
        )
        .unwrap();
        let c = ferroboot::config::Config::load(&p).unwrap().cluster.unwrap();
        let _ = std::fs::remove_file(&p);
        c
    })
    .clone()
}

fuzz_target!(|data: &[u8]| {
    match parse_provision(data) {
        Ok(r) => {
            assert!(r.parallel >= 1 && r.timeout_s >= 1 && r.all == r.nodes.is_empty());
            assert!(!r.flake.trim().is_empty());
        }
        Err(e) => assert!(!e.is_empty()),
    }
    if let Ok(r) = parse_check(data) {
        assert!((1..=3600).contains(&r.timeout_s));
    }
    let _ = parse_target(data);

    // A request: first byte the method, then the target up to a newline, the rest the body.
    let Some((&m, rest)) = data.split_first() else { return };
    let (target, body) = match rest.iter().position(|&b| b == b'\n') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &b""[..]),
    };
    let method = match m % 3 {
        0 => Method::Get,
        1 => Method::Head,
        // Only bodies both parsers refuse: no job starts.
        _ if parse_provision(body).is_err() && parse_check(body).is_err() => Method::Post,
        _ => Method::Get,
    };
    let mut full = b"/api/v1/".to_vec();
    full.extend_from_slice(target);
    let (path, query) = split_target(&full);
    let api = OrchestrationApi::new(
        Some(cluster()),
        Jobs::new(),
        "http://127.0.0.1:1".into(),
        Box::new(Lifecycle),
    );
    let req = RouteRequest {
        method,
        path,
        query,
        peer: SocketAddr::from(([10, 0, 0, 1], 1)),
        host: None,
        user_agent: None,
        body,
    };
    let mut out = Vec::new();
    let reply = api.respond(&req, &mut out);
    assert!(matches!(reply.status, 200 | 400 | 404 | 405 | 422), "{}", reply.status);
    let v: serde_json::Value = serde_json::from_slice(&out).expect("JSON answer");
    if reply.status >= 400 {
        assert!(v.get("error").and_then(|e| e.as_str()).is_some_and(|e| !e.is_empty()));
    }
});
