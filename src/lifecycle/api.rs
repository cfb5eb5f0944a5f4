//! The JSON API of `docs/api.md` on the HTTP router (`/api/v1/`): list and show nodes, take the
//! installer's events (POST with a JSON or form body, or the GET variant with a query for
//! busybox `wget`), and the operator's reinstall.
//!
//! The parsers ([`parse_target`], [`parse_event_body`], [`parse_event_query`]) are pure and
//! fuzzed (`fuzz/fuzz_targets/lifecycle_api.rs`); this path may allocate (it is not the static
//! file path).

use super::machine::{MAX_DETAIL, Node, Step, truncate};
use super::store::{Store, StoreError};
use super::{format_mac, parse_mac_path};
use crate::http::request::Method;
use crate::http::{Reply, Route, RouteRequest};
use serde::Serialize;
use std::rc::Rc;

/// The router prefix.
pub const PREFIX: &str = "/api/v1/";

/// What a request path names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// `/api/v1/nodes`
    Nodes,
    /// `/api/v1/nodes/{mac}`
    Node([u8; 6]),
    /// `/api/v1/nodes/{mac}/events`
    Events([u8; 6]),
    /// `/api/v1/nodes/{mac}/reinstall`
    Reinstall([u8; 6]),
}

/// Why a path is not an API target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetError {
    /// 404: no such route.
    NoRoute,
    /// 400: a node route whose MAC does not parse.
    BadMac,
}

/// Parses a request path (without the query).
pub fn parse_target(path: &[u8]) -> Result<Target, TargetError> {
    let rest = path.strip_prefix(PREFIX.as_bytes()).ok_or(TargetError::NoRoute)?;
    if rest == b"nodes" || rest == b"nodes/" {
        return Ok(Target::Nodes);
    }
    let rest = rest.strip_prefix(b"nodes/").ok_or(TargetError::NoRoute)?;
    let (mac, tail) = match rest.iter().position(|&b| b == b'/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, &b""[..]),
    };
    let target: fn([u8; 6]) -> Target = match tail {
        b"" | b"/" => Target::Node,
        b"/events" => Target::Events,
        b"/reinstall" => Target::Reinstall,
        _ => return Err(TargetError::NoRoute),
    };
    parse_mac_path(mac).map(target).ok_or(TargetError::BadMac)
}

/// Percent-decodes a query component (`+` is a space); `None` for bad escapes or non-UTF-8.
pub fn decode_component(s: &[u8]) -> Option<String> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let h = s.get(i + 1..i + 3)?;
                let v = u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok()?;
                if !h.iter().all(u8::is_ascii_hexdigit) {
                    return None;
                }
                out.push(v);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// An event as a client reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventReport {
    pub step: Step,
    /// Control characters replaced by spaces, cut to [`MAX_DETAIL`] bytes.
    pub detail: String,
}

fn report(event: Option<&str>, detail: Option<&str>) -> Result<EventReport, String> {
    let event =
        event.ok_or_else(|| "missing \"event\" (booted, installing, installed or failed)".to_string())?;
    let step = Step::parse_event(event).ok_or_else(|| {
        format!("unknown event {:?}: expected booted, installing, installed or failed", truncate(event, 64))
    })?;
    let clean: String = truncate(detail.unwrap_or(""), MAX_DETAIL)
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    Ok(EventReport { step, detail: clean.trim().to_string() })
}

/// `event=booted&detail=...` (the GET variant's query, or a form-encoded POST body). Unknown
/// keys are ignored; a repeated key keeps its last value.
pub fn parse_event_query(q: &[u8]) -> Result<EventReport, String> {
    let (mut event, mut detail) = (None, None);
    for pair in q.split(|&b| b == b'&').filter(|p| !p.is_empty()) {
        let (k, v) = match pair.iter().position(|&b| b == b'=') {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, &b""[..]),
        };
        let v = || decode_component(v).ok_or_else(|| "query: bad percent-encoding or not UTF-8".to_string());
        match k {
            b"event" => event = Some(v()?),
            b"detail" => detail = Some(v()?),
            _ => {}
        }
    }
    report(event.as_deref(), detail.as_deref())
}

#[derive(serde::Deserialize)]
struct EventBody {
    event: Option<String>,
    detail: Option<String>,
}

/// A POST body: `{"event":"booted","detail":"..."}` (other fields are ignored), or the same as a
/// form (`event=booted&detail=...`, what `curl -d` sends without a JSON body).
pub fn parse_event_body(body: &[u8]) -> Result<EventReport, String> {
    let trimmed = body.trim_ascii();
    if trimmed.is_empty() {
        return Err("empty body: expected {\"event\":\"booted\"}".into());
    }
    if trimmed.first() == Some(&b'{') {
        let b: EventBody = serde_json::from_slice(trimmed).map_err(|e| format!("body: {e}"))?;
        report(b.event.as_deref(), b.detail.as_deref())
    } else {
        parse_event_query(trimmed)
    }
}

#[derive(Serialize)]
struct EntryView<'a> {
    state: &'static str,
    at_ms: u64,
    detail: &'a str,
    bytes_served: u64,
}

#[derive(Serialize)]
struct NodeView<'a> {
    mac: String,
    hostname: Option<&'a str>,
    profile: Option<&'a str>,
    role: Option<&'a str>,
    ip_address: Option<String>,
    known: bool,
    state: &'static str,
    since_ms: u64,
    last_event: &'a str,
    last_event_ms: u64,
    bytes_served: u64,
    history: Vec<EntryView<'a>>,
}

impl<'a> NodeView<'a> {
    fn of(n: &'a Node) -> NodeView<'a> {
        NodeView {
            mac: format_mac(n.mac),
            hostname: n.hostname.as_deref(),
            profile: n.profile.as_deref(),
            role: n.role.as_deref(),
            ip_address: n.ip.map(|a| a.to_string()),
            known: n.known,
            state: n.state.as_str(),
            since_ms: n.since_ms,
            last_event: n.last_event,
            last_event_ms: n.last_event_ms,
            bytes_served: n.bytes_served,
            history: n
                .history
                .iter()
                .map(|e| EntryView {
                    state: e.state.as_str(),
                    at_ms: e.at_ms,
                    detail: &e.detail,
                    bytes_served: e.bytes_served,
                })
                .collect(),
        }
    }
}

#[derive(Serialize)]
struct List<'a> {
    nodes: Vec<NodeView<'a>>,
}

/// The `/api/v1/` route.
pub struct Api {
    store: Rc<Store>,
}

const JSON: &str = "application/json";

fn reply(status: u16) -> Reply {
    Reply { status, content_type: JSON, cache_control: Some("no-store") }
}

fn error(body: &mut Vec<u8>, status: u16, msg: &str) -> Reply {
    let _ = serde_json::to_writer(&mut *body, &serde_json::json!({ "error": msg }));
    body.push(b'\n');
    reply(status)
}

fn node_json(body: &mut Vec<u8>, n: &Node) -> Reply {
    let _ = serde_json::to_writer(&mut *body, &NodeView::of(n));
    body.push(b'\n');
    reply(200)
}

impl Api {
    pub fn new(store: Rc<Store>) -> Api {
        Api { store }
    }

    fn apply(&self, body: &mut Vec<u8>, mac: [u8; 6], step: Step, detail: &str) -> Reply {
        match self.store.event(mac, step, detail) {
            Ok(n) => node_json(body, &n),
            Err(StoreError::UnknownNode) => error(body, 404, &format!("no node {}", format_mac(mac))),
            Err(StoreError::NotAllowed { from, step }) => error(
                body,
                409,
                &format!(
                    "node {}: {} is not allowed in state {}{}",
                    format_mac(mac),
                    step.as_str(),
                    from.as_str(),
                    if from.boots_local() { " (reinstall it first)" } else { "" }
                ),
            ),
            Err(StoreError::Full) => error(body, 503, "too many nodes outside the inventory"),
            Err(StoreError::Io(e)) => error(body, 500, &format!("journal write failed: {e}")),
        }
    }
}

impl Route for Api {
    fn respond(&self, req: &RouteRequest<'_>, body: &mut Vec<u8>) -> Reply {
        let target = match parse_target(req.path) {
            Ok(t) => t,
            Err(TargetError::NoRoute) => return error(body, 404, "no such API route"),
            Err(TargetError::BadMac) => {
                return error(body, 400, "bad MAC address: expected 52:54:00:12:34:56 or 52-54-00-12-34-56");
            }
        };
        let method = req.method;
        match (target, method) {
            (Target::Nodes, Method::Get | Method::Head) => {
                self.store.with_nodes(|nodes| {
                    let list = List { nodes: nodes.iter().map(NodeView::of).collect() };
                    let _ = serde_json::to_writer(&mut *body, &list);
                });
                body.push(b'\n');
                reply(200)
            }
            (Target::Node(mac), Method::Get | Method::Head) => match self.store.node(mac) {
                Some(n) => node_json(body, &n),
                None => error(body, 404, &format!("no node {}", format_mac(mac))),
            },
            (Target::Events(mac), Method::Post) => match parse_event_body(req.body) {
                Ok(r) => self.apply(body, mac, r.step, &r.detail),
                Err(e) => error(body, 400, &e),
            },
            (Target::Events(mac), Method::Get) => match parse_event_query(req.query) {
                Ok(r) => self.apply(body, mac, r.step, &r.detail),
                Err(e) => error(body, 400, &e),
            },
            (Target::Reinstall(mac), Method::Post) => {
                let detail = format!("reinstall requested by {}", req.peer.ip());
                self.apply(body, mac, Step::Reinstall, &detail)
            }
            (t, m) => {
                error(body, 405, &format!("{} is not allowed here (allowed: {})", m.as_str(), allow(t)))
            }
        }
    }

    fn accepts_post(&self) -> bool {
        true
    }

    fn allow(&self, path: &[u8]) -> &'static str {
        parse_target(path).map_or("GET, HEAD", allow)
    }
}

fn allow(t: Target) -> &'static str {
    match t {
        Target::Nodes | Target::Node(_) => "GET, HEAD",
        // HEAD on the GET variant would report an event: not offered.
        Target::Events(_) => "GET, POST",
        Target::Reinstall(_) => "POST",
    }
}

#[cfg(test)]
mod tests;
