//! The §6 health evaluation on arbitrary answers: never panics, always one result per check
//! (3 nodes × 5 + 2 cluster-wide), and an answer that is not a 2xx JSON body never passes.
#![no_main]

use ferroboot::orchestrate::health::{self, Endpoint, Replies, Reply, Service};
use libfuzzer_sys::fuzz_target;

const NODES: [&str; 3] = ["node01", "node02", "node03"];

fuzz_target!(|data: &[u8]| {
    let mut replies = Replies::new();
    let mut parts = data.split(|&b| b == 0xff);
    let mut slots = Vec::new();
    for n in NODES {
        for s in Service::ALL {
            slots.push((n, s, Endpoint::Health));
            if s.has_members() {
                slots.push((n, s, Endpoint::Members));
            }
        }
    }
    let mut bad = Vec::new();
    for (n, s, e) in slots {
        let p = parts.next().unwrap_or(&[]);
        let (status, body) = match p.split_first() {
            Some((&b, rest)) if b < 0x80 => (200 + u16::from(b % 4) * 100, rest.to_vec()),
            Some((_, rest)) => (200, rest.to_vec()),
            None => (200, Vec::new()),
        };
        let parsed = serde_json::from_slice::<serde_json::Value>(&body).is_ok();
        if status != 200 || !parsed {
            bad.push((n, s, if e == Endpoint::Health { "health" } else { "members" }));
        }
        replies.insert((n.to_string(), s, e), Reply::Http { status, body });
    }
    let res = health::evaluate(&NODES, &NODES, &replies);
    assert_eq!(res.len(), NODES.len() * 5 + 2);
    for r in &res {
        if bad.iter().any(|(n, s, c)| r.node == *n && r.service == *s && r.check == *c) {
            assert!(!r.ok, "{r:?}");
        }
    }
    let _ = health::table(&res);
});
