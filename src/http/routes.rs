//! Which handler answers a request target: the static tree under `/boot/`, or a dynamic [`Route`]
//! registered by path (`/health`, `/metrics`; later `/boot.ipxe`, `/api/v1/...`).
//!
//! Dynamic routes write their body into a per-connection `Vec<u8>` that keeps its capacity
//! across requests; the static path never touches it.

use std::io::Write as _;
use std::net::SocketAddr;
use std::rc::Rc;

use super::request::Method;
use crate::status::{Counters, Status};

/// URL prefix of the static tree: `/boot/X` is `<root>/X`.
pub const STATIC_PREFIX: &[u8] = b"/boot/";

/// What a dynamic route sees of a request.
#[derive(Debug, Clone, Copy)]
pub struct RouteRequest<'a> {
    pub method: Method,
    /// Path as sent (not percent-decoded), without the query.
    pub path: &'a [u8],
    /// Query string without the `?` (may be empty).
    pub query: &'a [u8],
    pub peer: SocketAddr,
    pub host: Option<&'a [u8]>,
    pub user_agent: Option<&'a [u8]>,
    /// The request body (`Content-Length` bytes, at most [`MAX_BODY`]); empty for GET/HEAD.
    pub body: &'a [u8],
}

/// Largest request body accepted (413 beyond).
pub const MAX_BODY: usize = 16 << 10;

/// Status and content type of a dynamic response; the body is what the route wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub cache_control: Option<&'static str>,
}

/// A dynamic handler. Called for GET and HEAD (for HEAD the body is measured, not sent), and for
/// POST when [`Route::accepts_post`] says so.
pub trait Route {
    fn respond(&self, req: &RouteRequest<'_>, body: &mut Vec<u8>) -> Reply;
    /// Whether POST requests reach [`Route::respond`] (else the server answers 405).
    fn accepts_post(&self) -> bool {
        false
    }
    /// The `Allow` header of a 405 for `path`.
    fn allow(&self, _path: &[u8]) -> &'static str {
        "GET, HEAD"
    }
}

/// How a registered route matches the path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Match {
    Exact(&'static str),
    /// Matches the prefix and everything below it (`/api/v1/` matches `/api/v1/nodes/x`).
    Prefix(&'static str),
}

impl Match {
    fn matches(self, path: &[u8]) -> bool {
        match self {
            Match::Exact(p) => path == p.as_bytes(),
            Match::Prefix(p) => path.starts_with(p.as_bytes()),
        }
    }
}

/// The router's verdict on a request target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision<'a> {
    /// Serve this (still percent-encoded) path below the root.
    Static(&'a [u8]),
    /// Index of the dynamic route.
    Dynamic(usize),
    NotFound,
}

/// Exact and prefix routes, checked in registration order, then the static prefix, then the
/// file names also served at the top level (`/ipxe.efi` is `/boot/ipxe.efi`).
#[derive(Default)]
pub struct Router {
    routes: Vec<(Match, Box<dyn Route>)>,
    top_level: Vec<Box<[u8]>>,
}

impl Router {
    pub fn new() -> Router {
        Router::default()
    }

    /// The router with `/health` and `/metrics`.
    pub fn with_builtin(status: &Rc<Status>) -> Router {
        let mut r = Router::new();
        r.add(Match::Exact("/health"), Box::new(Health(status.clone())));
        r.add(Match::Exact("/metrics"), Box::new(Metrics(status.clone())));
        r
    }

    /// Registers a route; earlier registrations win.
    pub fn add(&mut self, m: Match, route: Box<dyn Route>) {
        self.routes.push((m, route));
    }

    /// Also answers `/<name>` as the static `/boot/<name>` (the iPXE builds, which UEFI HTTP Boot
    /// clients are given as `http://server:port/<name>`).
    pub fn add_top_level(&mut self, name: &str) {
        self.top_level.push(name.trim_start_matches('/').as_bytes().into());
    }

    /// Decides who answers `path` (as returned by [`split_target`]).
    pub fn decide<'a>(&self, path: &'a [u8]) -> Decision<'a> {
        if let Some(i) = self.routes.iter().position(|(m, _)| m.matches(path)) {
            return Decision::Dynamic(i);
        }
        if let Some(rest) = path.strip_prefix(STATIC_PREFIX) {
            return Decision::Static(rest);
        }
        match path.strip_prefix(b"/") {
            Some(rest) if self.top_level.iter().any(|n| **n == *rest) => Decision::Static(rest),
            _ => Decision::NotFound,
        }
    }

    pub fn route(&self, i: usize) -> Option<&dyn Route> {
        self.routes.get(i).map(|(_, r)| r.as_ref())
    }
}

/// Splits a request target into path and query. An absolute-form target
/// (`http://host:port/path`) is reduced to its path; a fragment is dropped.
pub fn split_target(target: &[u8]) -> (&[u8], &[u8]) {
    let mut t = target;
    for scheme in [&b"http://"[..], b"https://"] {
        if t.len() >= scheme.len() && t[..scheme.len()].eq_ignore_ascii_case(scheme) {
            let rest = &t[scheme.len()..];
            t = rest.iter().position(|&b| b == b'/').map_or(b"/", |i| &rest[i..]);
            break;
        }
    }
    if let Some(i) = t.iter().position(|&b| b == b'#') {
        t = &t[..i];
    }
    match t.iter().position(|&b| b == b'?') {
        Some(i) => (&t[..i], &t[i + 1..]),
        None => (t, b""),
    }
}

/// `/health`: the runbook's JSON, 503 when a service failed or is not running yet.
pub struct Health(pub Rc<Status>);

impl Route for Health {
    fn respond(&self, _req: &RouteRequest<'_>, body: &mut Vec<u8>) -> Reply {
        let s = &self.0;
        let healthy = s.healthy();
        body.extend_from_slice(b"{\"status\":\"");
        body.extend_from_slice(if healthy { b"healthy" } else { b"unhealthy" });
        body.extend_from_slice(b"\",\"services\":{");
        for (i, (name, state)) in
            [("dhcp", s.dhcp.get()), ("tftp", s.tftp.get()), ("http", s.http.get())].iter().enumerate()
        {
            if i > 0 {
                body.push(b',');
            }
            let _ = write!(body, "\"{name}\":\"{}\"", state.as_str());
        }
        body.extend_from_slice(b"}}");
        Reply {
            status: if healthy { 200 } else { 503 },
            content_type: "application/json",
            cache_control: Some("no-store"),
        }
    }
}

/// `/metrics`: Prometheus text exposition of the shared counters.
pub struct Metrics(pub Rc<Status>);

impl Route for Metrics {
    fn respond(&self, _req: &RouteRequest<'_>, body: &mut Vec<u8>) -> Reply {
        let s = &self.0;
        let protos: [(&str, &Counters); 3] =
            [("dhcp", &s.dhcp_counters), ("tftp", &s.tftp_counters), ("http", &s.http_counters)];
        let mut family = |name: &str, kind: &str, help: &str, get: &dyn Fn(&Counters) -> u64| {
            let _ = writeln!(body, "# HELP ferroboot_{name} {help}\n# TYPE ferroboot_{name} {kind}");
            for (p, c) in protos {
                let _ = writeln!(body, "ferroboot_{name}{{protocol=\"{p}\"}} {}", get(c));
            }
        };
        family("packets_received_total", "counter", "Packets (HTTP: requests) received.", &|c| {
            c.packets_in.get()
        });
        family("packets_sent_total", "counter", "Packets (HTTP: responses) sent.", &|c| c.packets_out.get());
        family("bytes_sent_total", "counter", "Payload bytes sent.", &|c| c.bytes_out.get());
        family("active_sessions", "gauge", "Transfers or connections in progress.", &|c| c.active.get());
        family("transfers_completed_total", "counter", "Transfers completed.", &|c| c.completed.get());
        family("retransmits_total", "counter", "Retransmitted packets.", &|c| c.retransmits.get());
        let _ = writeln!(
            body,
            "# HELP ferroboot_errors_total Errors by kind.\n# TYPE ferroboot_errors_total counter"
        );
        for (p, c) in protos {
            for (kind, v) in [
                ("malformed", c.malformed.get()),
                ("refused", c.refused.get()),
                ("timeout", c.timeouts.get()),
                ("failed", c.failed.get()),
            ] {
                let _ = writeln!(body, "ferroboot_errors_total{{protocol=\"{p}\",kind=\"{kind}\"}} {v}");
            }
        }
        let _ = writeln!(
            body,
            "# HELP ferroboot_service_up 1 when the service is running.\n# TYPE ferroboot_service_up gauge"
        );
        for (name, st) in [("dhcp", s.dhcp.get()), ("tftp", s.tftp.get()), ("http", s.http.get())] {
            let up = u8::from(st == crate::status::ServiceState::Running);
            let _ =
                writeln!(body, "ferroboot_service_up{{service=\"{name}\",state=\"{}\"}} {up}", st.as_str());
        }
        Reply {
            status: 200,
            content_type: "text/plain; version=0.0.4; charset=utf-8",
            cache_control: Some("no-store"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::ServiceState;

    fn req(path: &'static [u8]) -> RouteRequest<'static> {
        RouteRequest {
            method: Method::Get,
            path,
            query: b"",
            peer: "127.0.0.1:1".parse().unwrap(),
            host: None,
            user_agent: None,
            body: b"",
        }
    }

    #[test]
    fn decisions() {
        let status = Rc::new(Status::default());
        let r = Router::with_builtin(&status);
        assert_eq!(r.decide(b"/health"), Decision::Dynamic(0));
        assert_eq!(r.decide(b"/metrics"), Decision::Dynamic(1));
        assert_eq!(r.decide(b"/health/"), Decision::NotFound);
        assert_eq!(r.decide(b"/boot/a/b"), Decision::Static(b"a/b"));
        assert_eq!(r.decide(b"/boot//a"), Decision::Static(b"/a"));
        assert_eq!(r.decide(b"/boot"), Decision::NotFound, "no redirect to /boot/");
        assert_eq!(r.decide(b"//boot/a"), Decision::NotFound);
        assert_eq!(r.decide(b"/"), Decision::NotFound);
    }

    #[test]
    fn later_routes_plug_in() {
        struct Script;
        impl Route for Script {
            fn respond(&self, _: &RouteRequest<'_>, body: &mut Vec<u8>) -> Reply {
                body.extend_from_slice(b"#!ipxe\n");
                Reply { status: 200, content_type: "text/plain", cache_control: None }
            }
        }
        let status = Rc::new(Status::default());
        let mut r = Router::with_builtin(&status);
        r.add(Match::Exact("/boot.ipxe"), Box::new(Script));
        r.add(Match::Prefix("/api/v1/"), Box::new(Script));
        r.add_top_level("ipxe.efi");
        assert_eq!(r.decide(b"/ipxe.efi"), Decision::Static(b"ipxe.efi"));
        assert_eq!(r.decide(b"/ipxe.efix"), Decision::NotFound);
        assert_eq!(r.decide(b"/x/ipxe.efi"), Decision::NotFound);
        assert_eq!(r.decide(b"/boot.ipxe"), Decision::Dynamic(2));
        assert_eq!(r.decide(b"/api/v1/nodes/1"), Decision::Dynamic(3));
        let mut body = Vec::new();
        r.route(2).unwrap().respond(&req(b"/boot.ipxe"), &mut body);
        assert_eq!(body, b"#!ipxe\n");
    }

    #[test]
    fn targets() {
        assert_eq!(split_target(b"/a?b=c"), (&b"/a"[..], &b"b=c"[..]));
        assert_eq!(split_target(b"/a#frag"), (&b"/a"[..], &b""[..]));
        assert_eq!(split_target(b"http://10.0.0.1:8080/boot/x?y"), (&b"/boot/x"[..], &b"y"[..]));
        assert_eq!(split_target(b"HTTP://host"), (&b"/"[..], &b""[..]));
    }

    #[test]
    fn health_is_the_runbook_json() {
        let status = Rc::new(Status::default());
        for s in [&status.dhcp, &status.tftp, &status.http] {
            s.set(ServiceState::Running);
        }
        let mut body = Vec::new();
        let reply = Health(status.clone()).respond(&req(b"/health"), &mut body);
        assert_eq!(reply.status, 200);
        assert_eq!(
            std::str::from_utf8(&body).unwrap(),
            r#"{"status":"healthy","services":{"dhcp":"running","tftp":"running","http":"running"}}"#
        );
        status.tftp.set(ServiceState::Failed);
        status.dhcp.set(ServiceState::Disabled);
        body.clear();
        let reply = Health(status.clone()).respond(&req(b"/health"), &mut body);
        assert_eq!(reply.status, 503);
        assert_eq!(
            std::str::from_utf8(&body).unwrap(),
            r#"{"status":"unhealthy","services":{"dhcp":"disabled","tftp":"failed","http":"running"}}"#
        );
    }

    #[test]
    fn metrics_are_prometheus_text() {
        let status = Rc::new(Status::default());
        Counters::add(&status.http_counters.bytes_out, 12345);
        Counters::inc(&status.tftp_counters.timeouts);
        let mut body = Vec::new();
        Metrics(status).respond(&req(b"/metrics"), &mut body);
        let text = String::from_utf8(body).unwrap();
        assert!(text.contains("ferroboot_bytes_sent_total{protocol=\"http\"} 12345\n"), "{text}");
        assert!(text.contains("ferroboot_errors_total{protocol=\"tftp\",kind=\"timeout\"} 1\n"));
        assert!(text.contains("# TYPE ferroboot_active_sessions gauge\n"));
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (name, value) = line.rsplit_once(' ').unwrap();
            assert!(name.starts_with("ferroboot_"), "{line}");
            value.parse::<u64>().unwrap();
        }
    }
}
