//! The lifecycle API's parsers and route on arbitrary input: the MAC path parser, the event body
//! (JSON or form) and query parsers, and whole requests (method, path?query, body) answered by
//! the `/api/v1/` route over an in-memory store. Never panics; every answer is JSON with an
//! expected status; parsed MACs round-trip; accepted details are bounded and free of control
//! characters.
#![no_main]

use std::net::SocketAddr;
use std::rc::Rc;

use ferroboot::http::request::Method;
use ferroboot::http::routes::split_target;
use ferroboot::http::{Route, RouteRequest};
use ferroboot::lifecycle::api::{Api, parse_event_body, parse_event_query, parse_target};
use ferroboot::lifecycle::machine::{BootFiles, Known, MAX_DETAIL};
use ferroboot::lifecycle::{Store, format_mac, parse_mac_path};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(m) = parse_mac_path(data) {
        assert_eq!(parse_mac_path(format_mac(m).as_bytes()), Some(m));
    }
    for r in [parse_event_body(data), parse_event_query(data)].into_iter().flatten() {
        assert!(r.detail.len() <= MAX_DETAIL);
        assert!(!r.detail.chars().any(char::is_control));
    }
    let _ = parse_target(data);

    // A request: first byte the method, then the target up to a newline, the rest the body.
    let Some((&m, rest)) = data.split_first() else { return };
    let method = match m % 4 {
        0 => Method::Get,
        1 => Method::Head,
        2 => Method::Post,
        _ => Method::Other,
    };
    let (target, body) = match rest.iter().position(|&b| b == b'\n') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &b""[..]),
    };
    let mut full = b"/api/v1/".to_vec();
    full.extend_from_slice(target);
    let (path, query) = split_target(&full);
    let known = [Known { mac: [0x52, 0x54, 0, 0x12, 0x34, 0x56], ..Known::default() }];
    let api = Api::new(Rc::new(Store::in_memory(&known, BootFiles::default(), || 1)));
    let req = RouteRequest {
        method,
        path,
        query,
        peer: SocketAddr::from(([10, 0, 0, 1], 1)),
        host: None,
        user_agent: None,
        body,
    };
    // Twice: the second sees the state the first left.
    for _ in 0..2 {
        let mut out = Vec::new();
        let reply = api.respond(&req, &mut out);
        assert!(matches!(reply.status, 200 | 400 | 404 | 405 | 409 | 503), "{}", reply.status);
        let v: serde_json::Value = serde_json::from_slice(&out).expect("JSON answer");
        if reply.status == 200 {
            assert!(v.get("mac").is_some() || v.get("nodes").is_some());
        } else {
            assert!(v.get("error").and_then(|e| e.as_str()).is_some_and(|e| !e.is_empty()));
        }
    }
});
