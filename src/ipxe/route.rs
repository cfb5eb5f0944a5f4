//! The HTTP routes that answer iPXE: the chain script (`/boot.ipxe`, `/boot/ipxe/boot.ipxe`) and
//! the per-machine script (`/ipxe/node?...`). URLs in the scripts are absolute, built from the
//! `Host` header iPXE sent (the address it reached us on), else `server_address` and the HTTP port.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::rc::Rc;

use heapless::String as HString;

use super::inventory::Inventory;
use super::query::NodeQuery;
use super::script::{self, Machine};
use super::template::Values;
use crate::config::UnknownMachines;
use crate::http::request::Method;
use crate::http::{Match, Reply, Route, RouteRequest};
use crate::lifecycle::NodeState;

/// The paths the routes answer.
pub const CHAIN_PATHS: [&str; 2] = ["/boot.ipxe", "/boot/ipxe/boot.ipxe"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Chain,
    Node,
}

/// One of the script routes (see [`register`]).
pub struct ScriptRoute {
    kind: Kind,
    inv: Rc<Inventory>,
    life: Rc<dyn NodeState>,
}

/// Registers the script routes on `add` (e.g. `HttpService::add_route`).
pub fn register(inv: Rc<Inventory>, life: Rc<dyn NodeState>, mut add: impl FnMut(Match, Box<dyn Route>)) {
    for p in CHAIN_PATHS {
        add(
            Match::Exact(p),
            Box::new(ScriptRoute { kind: Kind::Chain, inv: inv.clone(), life: life.clone() }),
        );
    }
    add(Match::Exact(script::NODE_PATH), Box::new(ScriptRoute { kind: Kind::Node, inv, life }));
}

const SCRIPT: &str = "text/plain; charset=utf-8";

fn reply(status: u16) -> Reply {
    Reply { status, content_type: SCRIPT, cache_control: Some("no-store") }
}

/// A `Host` header we can put in a URL: host name, IPv4 or `[IPv6]`, then an optional `:port`.
fn usable_host(h: &[u8]) -> Option<&str> {
    let h = std::str::from_utf8(h).ok()?;
    let (host, port) = match h.rfind(':') {
        Some(i) if !h[i..].contains(']') => (&h[..i], Some(&h[i + 1..])),
        _ => (h, None),
    };
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
    let host_ok = match host.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        Some(v6) => !v6.is_empty() && v6.bytes().all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.'),
        None => crate::config::is_hostname(host),
    };
    (port_ok && host_ok).then_some(h)
}

/// `(server_url, server)`: `http://10.0.100.10:8080` and `10.0.100.10`.
fn base(req: &RouteRequest<'_>, inv: &Inventory) -> Option<(HString<300>, HString<260>)> {
    let mut url: HString<300> = HString::new();
    let mut host: HString<260> = HString::new();
    if let Some(h) = req.host.and_then(usable_host) {
        let _ = write!(url, "http://{h}");
        let bare = match h.rfind(':') {
            Some(i) if !h[i..].contains(']') => &h[..i],
            _ => h,
        };
        let _ = host.push_str(bare);
    } else {
        let addr = inv.server_address?;
        let _ = write!(host, "{addr}");
        if inv.http_port == 80 {
            let _ = write!(url, "http://{addr}");
        } else {
            let _ = write!(url, "http://{addr}:{}", inv.http_port);
        }
    }
    Some((url, host))
}

#[cfg(test)]
#[test]
fn host_headers() {
    for ok in
        ["10.0.100.10:8080", "10.0.100.10", "pxe.example.com:80", "[fd00::1]:8080", "[::1]", "localhost"]
    {
        assert_eq!(usable_host(ok.as_bytes()), Some(ok), "{ok}");
    }
    for bad in [".", "..:80", "a b", "x:", "x:123456", "x:8o", "[]:80", "[zz]", "a\nb", "", "-x", "a/b"] {
        assert_eq!(usable_host(bad.as_bytes()), None, "{bad:?}");
    }
}

fn peer_v4(req: &RouteRequest<'_>) -> Ipv4Addr {
    match req.peer.ip() {
        IpAddr::V4(a) => a,
        IpAddr::V6(a) => a.to_ipv4_mapped().unwrap_or(Ipv4Addr::UNSPECIFIED),
    }
}

impl Route for ScriptRoute {
    fn respond(&self, req: &RouteRequest<'_>, body: &mut Vec<u8>) -> Reply {
        let Some((url, server)) = base(req, &self.inv) else {
            body.extend_from_slice(
                b"#!ipxe\necho ferroboot: no Host header and no server_address configured\nexit 1\n",
            );
            return reply(400);
        };
        match self.kind {
            Kind::Chain => {
                script::chain(body, &url, self.inv.retries);
                reply(200)
            }
            Kind::Node => self.node(req, &url, &server, body),
        }
    }
}

impl ScriptRoute {
    fn node(&self, req: &RouteRequest<'_>, url: &str, server: &str, body: &mut Vec<u8>) -> Reply {
        let q = NodeQuery::parse(req.query);
        if q.bad_mac {
            body.extend_from_slice(
                b"#!ipxe\necho ferroboot: the mac parameter is not a MAC address\nexit 1\n",
            );
            return reply(400);
        }
        let inv = &*self.inv;
        let node = inv.find(q.mac, &q.uuid, &q.hostname);
        let mac = node.map(|n| n.mac).or(q.mac);
        let hostname = node.and_then(|n| n.hostname.as_deref()).unwrap_or(&q.hostname);
        let m = Machine { mac, hostname };
        let get = req.method == Method::Get;
        let peer = peer_v4(req);
        if let Some(mac) = mac {
            if self.life.boots_local(mac) {
                script::local(body, &m);
                log::info!(
                    "ipxe: {} ({}) from {peer}: installed, exit to the local disk",
                    Mac(mac),
                    hostname
                );
                if get {
                    self.life.script_served(mac, peer, true);
                }
                return reply(200);
            }
        }
        // Which profile, if any: the node's, else the unknown-machine policy's.
        let profile = match node.and_then(|n| n.profile.as_deref()) {
            Some(p) => Some(p),
            None => match &inv.unknown {
                UnknownMachines::Profile(p) => Some(p.as_str()),
                UnknownMachines::Menu if !q.profile.is_empty() => Some(q.profile.as_str()),
                UnknownMachines::Menu => None,
                UnknownMachines::Ignore => {
                    script::ignore(body, &m);
                    log::info!(
                        "ipxe: {} from {peer}: not in the inventory, ignored (exit)",
                        Mac(mac.unwrap_or([0; 6]))
                    );
                    return reply(200);
                }
            },
        };
        match profile.and_then(|p| inv.profiles.get(p)) {
            Some(p) => {
                let v = Values {
                    hostname,
                    ip: node.and_then(|n| n.ip_address).or((!peer.is_unspecified()).then_some(peer)),
                    mac,
                    uuid: node.and_then(|n| n.uuid.as_deref()).unwrap_or(&q.uuid),
                    server,
                    server_url: url,
                    profile: &p.name,
                    role: node.and_then(|n| n.role.as_deref()).unwrap_or(&p.name),
                    arch: &q.arch,
                    platform: &q.platform,
                };
                // Unknown platform: add initrd= too (harmless for a BIOS kernel, needed by EFI).
                let efi = q.platform.is_empty() || q.is_efi();
                script::boot(body, url, p, &m, &v, efi, inv.retries);
                log::info!(
                    "ipxe: {} ({}) from {peer}: install profile {} ({} {}{}){}",
                    Mac(mac.unwrap_or([0; 6])),
                    or_unknown(hostname),
                    p.name,
                    or_unknown(&q.platform),
                    or_unknown(&q.arch),
                    if efi { ", initrd= on the kernel line" } else { "" },
                    if node.is_none() { ", not in the inventory" } else { "" }
                );
            }
            None => {
                if let Some(p) = profile {
                    log::warn!(
                        "ipxe: profile {p:?} asked for by {} does not exist: menu",
                        Mac(mac.unwrap_or([0; 6]))
                    );
                }
                script::menu(body, url, &m, node.is_some(), inv.profiles.keys().map(String::as_str));
                log::info!("ipxe: {} from {peer}: no profile, menu", Mac(mac.unwrap_or([0; 6])));
            }
        }
        if let (Some(mac), true) = (mac, get) {
            self.life.script_served(mac, peer, false);
        }
        reply(200)
    }
}

fn or_unknown(s: &str) -> &str {
    if s.is_empty() { "unknown" } else { s }
}

/// `52:54:00:12:34:56` for log lines, without allocating.
struct Mac([u8; 6]);

impl std::fmt::Display for Mac {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}
