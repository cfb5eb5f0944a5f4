use super::*;
use crate::lifecycle::machine::{BootFiles, Known};

const MAC: [u8; 6] = [0x52, 0x54, 0, 0x12, 0x34, 0x56];

fn api() -> Api {
    let known =
        [Known { mac: MAC, hostname: Some("node01".into()), profile: Some("cp".into()), ..Known::default() }];
    Api::new(Rc::new(Store::in_memory(&known, BootFiles::default(), || 1_764_582_000_000)))
}

fn call(api: &Api, method: Method, target: &str, body: &str) -> (u16, serde_json::Value) {
    let (path, query) = crate::http::routes::split_target(target.as_bytes());
    let req = RouteRequest {
        method,
        path,
        query,
        peer: "10.0.100.10:4000".parse().unwrap(),
        host: None,
        user_agent: None,
        body: body.as_bytes(),
    };
    let mut out = Vec::new();
    let r = api.respond(&req, &mut out);
    assert_eq!(r.content_type, "application/json");
    (
        r.status,
        serde_json::from_slice(&out).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out))),
    )
}

#[test]
fn targets() {
    assert_eq!(parse_target(b"/api/v1/nodes"), Ok(Target::Nodes));
    assert_eq!(parse_target(b"/api/v1/nodes/"), Ok(Target::Nodes));
    assert_eq!(parse_target(b"/api/v1/nodes/52:54:00:12:34:56"), Ok(Target::Node(MAC)));
    assert_eq!(parse_target(b"/api/v1/nodes/52-54-00-12-34-56/events"), Ok(Target::Events(MAC)));
    assert_eq!(
        parse_target(b"/api/v1/nodes/52%3A54%3A00%3A12%3A34%3A56/reinstall"),
        Ok(Target::Reinstall(MAC))
    );
    assert_eq!(parse_target(b"/api/v1/nodes/zz/events"), Err(TargetError::BadMac));
    assert_eq!(parse_target(b"/api/v1/nodes/52:54:00:12:34:56/bogus"), Err(TargetError::NoRoute));
    assert_eq!(parse_target(b"/api/v1/other"), Err(TargetError::NoRoute));
    assert_eq!(parse_target(b"/api/v2/nodes"), Err(TargetError::NoRoute));
}

#[test]
fn event_bodies_and_queries() {
    let r = parse_event_body(br#" {"event":"booted","detail":"up\nin 3 s","extra":1} "#).unwrap();
    assert_eq!((r.step, r.detail.as_str()), (Step::Booted, "up in 3 s"));
    let r = parse_event_body(b"event=failed&detail=disk+%2Fdev%2Fsda+missing").unwrap();
    assert_eq!((r.step, r.detail.as_str()), (Step::Failed, "disk /dev/sda missing"));
    assert_eq!(parse_event_query(b"event=installed").unwrap().step, Step::Installed);
    for (bad, why) in [
        (&b""[..], "empty body"),
        (b"{", "body:"),
        (br#"{"event":5}"#, "body:"),
        (br#"{"detail":"x"}"#, "missing \"event\""),
        (br#"{"event":"reinstall"}"#, "unknown event \"reinstall\""),
        (b"event=%zz", "percent-encoding"),
        (b"event=%ff", "not UTF-8"),
        (b"detail=x", "missing"),
    ] {
        let e = parse_event_body(bad).unwrap_err();
        assert!(e.contains(why), "{:?}: {e}", String::from_utf8_lossy(bad));
    }
    let long = format!(r#"{{"event":"failed","detail":"{}"}}"#, "x".repeat(10_000));
    assert_eq!(parse_event_body(long.as_bytes()).unwrap().detail.len(), MAX_DETAIL);
}

#[test]
fn the_endpoints_of_docs_api_md() {
    let a = api();
    let (s, v) = call(&a, Method::Get, "/api/v1/nodes", "");
    assert_eq!(s, 200);
    assert_eq!(v["nodes"][0]["mac"], "52:54:00:12:34:56");
    assert_eq!(v["nodes"][0]["state"], "discovered");
    assert_eq!(v["nodes"][0]["role"], "cp");
    assert_eq!(v["nodes"][0]["ip_address"], serde_json::Value::Null);
    let (s, v) = call(
        &a,
        Method::Post,
        "/api/v1/nodes/52-54-00-12-34-56/events",
        r#"{"event":"booted","detail":"up"}"#,
    );
    assert_eq!((s, &v["state"], &v["last_event"]), (200, &"booted".into(), &"booted".into()));
    assert_eq!(v["history"][1]["detail"], "up");
    assert_eq!(v["history"][1]["at_ms"], 1_764_582_000_000u64);
    let (s, v) = call(
        &a,
        Method::Get,
        "/api/v1/nodes/52:54:00:12:34:56/events?event=installing&detail=nixos-anywhere",
        "",
    );
    assert_eq!((s, &v["state"]), (200, &"installing".into()));
    let (s, v) = call(&a, Method::Post, "/api/v1/nodes/52:54:00:12:34:56/events", r#"{"event":"installed"}"#);
    assert_eq!((s, &v["state"]), (200, &"installed".into()));
    let (s, v) = call(&a, Method::Post, "/api/v1/nodes/52:54:00:12:34:56/events", r#"{"event":"booted"}"#);
    assert_eq!(s, 409);
    assert_eq!(
        v["error"],
        "node 52:54:00:12:34:56: booted is not allowed in state installed (reinstall it first)"
    );
    let (s, v) = call(&a, Method::Post, "/api/v1/nodes/52:54:00:12:34:56/reinstall", "");
    assert_eq!((s, &v["state"]), (200, &"discovered".into()));
    assert_eq!(
        v["history"].as_array().unwrap().last().unwrap()["detail"],
        "reinstall requested by 10.0.100.10"
    );
    // Unknown MACs: created by an event, 404 otherwise.
    let (s, _) = call(&a, Method::Get, "/api/v1/nodes/02:00:00:00:00:01", "");
    assert_eq!(s, 404);
    let (s, _) = call(&a, Method::Post, "/api/v1/nodes/02:00:00:00:00:01/reinstall", "");
    assert_eq!(s, 404);
    let (s, v) = call(&a, Method::Post, "/api/v1/nodes/02:00:00:00:00:01/events", r#"{"event":"booted"}"#);
    assert_eq!((s, &v["known"], &v["hostname"]), (200, &false.into(), &serde_json::Value::Null));
    let (_, v) = call(&a, Method::Get, "/api/v1/nodes", "");
    assert_eq!(v["nodes"][0]["mac"], "02:00:00:00:00:01", "sorted by MAC");
    // Errors.
    for (m, t, body, status) in [
        (Method::Get, "/api/v1/nodes/nope", "", 400),
        (Method::Get, "/api/v1/nope", "", 404),
        (Method::Post, "/api/v1/nodes", "", 405),
        (Method::Get, "/api/v1/nodes/52:54:00:12:34:56/reinstall", "", 405),
        (Method::Head, "/api/v1/nodes/52:54:00:12:34:56/events?event=booted", "", 405),
        (Method::Post, "/api/v1/nodes/52:54:00:12:34:56/events", "{}", 400),
        (Method::Get, "/api/v1/nodes/52:54:00:12:34:56/events", "", 400),
    ] {
        let (s, v) = call(&a, m, t, body);
        assert_eq!(s, status, "{m:?} {t}");
        assert!(v["error"].as_str().is_some_and(|e| !e.is_empty()), "{v}");
    }
    assert_eq!(a.allow(b"/api/v1/nodes/52:54:00:12:34:56/reinstall"), "POST");
    assert_eq!(a.allow(b"/api/v1/nodes/52:54:00:12:34:56/events"), "GET, POST");
    assert!(a.accepts_post());
}
