//! `ferroboot status` and `ferroboot node reinstall`: clients of a running server's JSON API
//! (`docs/api.md`), over HTTP with `ureq`.

use super::{format_mac, parse_mac_path};
use clap::{Args, Subcommand};
use serde::Deserialize;
use std::process::ExitCode;
use std::time::Duration;

/// The API of a server on this machine with the default HTTP port.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:8080";

#[derive(Debug, Clone, Args)]
pub struct StatusArgs {
    /// The ferroboot server (its HTTP address).
    #[arg(long, value_name = "URL", default_value = DEFAULT_SERVER)]
    pub server: String,
    /// Print the API's JSON (`{"nodes":[...]}`) instead of the table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Args)]
pub struct NodeArgs {
    #[command(subcommand)]
    pub command: NodeCommand,
}

#[derive(Debug, Clone, Subcommand)]
pub enum NodeCommand {
    /// Mark an installed node for reinstallation: it goes back to `discovered` and its next
    /// network boot installs again instead of booting its disk.
    Reinstall {
        /// The node's MAC (52:54:00:12:34:56 or 52-54-00-12-34-56).
        mac: String,
        /// The ferroboot server (its HTTP address).
        #[arg(long, value_name = "URL", default_value = DEFAULT_SERVER)]
        server: String,
    },
}

#[derive(Debug, Deserialize)]
struct NodeOut {
    mac: String,
    hostname: Option<String>,
    profile: Option<String>,
    state: String,
    since_ms: u64,
    last_event: String,
    #[serde(default)]
    last_event_ms: u64,
}

#[derive(Debug, Deserialize)]
struct NodesOut {
    nodes: Vec<NodeOut>,
}

fn base(server: &str) -> String {
    let s = server.trim_end_matches('/');
    if s.contains("://") { s.to_string() } else { format!("http://{s}") }
}

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new().timeout(Duration::from_secs(10)).build()
}

/// The body of a successful answer, or an error message (the server's `error`, or why it could
/// not be reached).
fn answer(r: Result<ureq::Response, ureq::Error>, url: &str) -> Result<String, String> {
    match r {
        Ok(resp) => resp.into_string().map_err(|e| format!("{url}: reading the answer: {e}")),
        Err(ureq::Error::Status(code, resp)) => {
            let body = resp.into_string().unwrap_or_default();
            let msg = serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
                .unwrap_or_else(|| body.trim().to_string());
            Err(format!("{url}: {code}: {msg}"))
        }
        Err(e) => Err(format!("cannot reach {url}: {e}")),
    }
}

/// `3s`, `4m05s`, `2h05m`, `3d04h`.
pub fn human_duration(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        3600..86400 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{:02}h", s / 86400, s % 86400 / 3600),
    }
}

fn now_ms() -> u64 {
    super::store::now_ms()
}

/// The status table, one row per node.
fn table(nodes: &[NodeOut], now: u64) -> String {
    let headers = ["MAC", "HOSTNAME", "PROFILE", "STATE", "IN STATE", "LAST EVENT"];
    let rows: Vec<[String; 6]> = nodes
        .iter()
        .map(|n| {
            let last = if n.last_event.is_empty() {
                "-".to_string()
            } else if n.last_event_ms > 0 {
                format!("{} ({} ago)", n.last_event, human_duration(now.saturating_sub(n.last_event_ms)))
            } else {
                n.last_event.clone()
            };
            [
                n.mac.clone(),
                n.hostname.clone().unwrap_or_else(|| "-".into()),
                n.profile.clone().unwrap_or_else(|| "-".into()),
                n.state.clone(),
                human_duration(now.saturating_sub(n.since_ms)),
                last,
            ]
        })
        .collect();
    let mut width = headers.map(str::len);
    for r in &rows {
        for (w, c) in width.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &[&str]| {
        let mut l = String::new();
        for (i, (c, w)) in cells.iter().zip(width).enumerate() {
            if i + 1 == cells.len() {
                l.push_str(c);
            } else {
                l.push_str(&format!("{c:<w$}  "));
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(&headers);
    for r in &rows {
        line(&r.iter().map(String::as_str).collect::<Vec<_>>());
    }
    out
}

/// `ferroboot status`.
pub fn status(args: &StatusArgs) -> ExitCode {
    let url = format!("{}/api/v1/nodes", base(&args.server));
    let body = match answer(agent().get(&url).call(), &url) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("ferroboot: {e}");
            return ExitCode::from(1);
        }
    };
    if args.json {
        print!("{body}");
        if !body.ends_with('\n') {
            println!();
        }
        return ExitCode::SUCCESS;
    }
    match serde_json::from_str::<NodesOut>(&body) {
        Ok(n) if n.nodes.is_empty() => {
            println!("no nodes (none in the inventory, none seen yet)");
            ExitCode::SUCCESS
        }
        Ok(n) => {
            print!("{}", table(&n.nodes, now_ms()));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ferroboot: {url}: not a node list: {e}");
            ExitCode::from(1)
        }
    }
}

/// `ferroboot node ...`.
pub fn node(args: &NodeArgs) -> ExitCode {
    match &args.command {
        NodeCommand::Reinstall { mac, server } => {
            let Some(m) = parse_mac_path(mac.as_bytes()) else {
                eprintln!("ferroboot: {mac:?} is not a MAC address (expected 52:54:00:12:34:56)");
                return ExitCode::from(2);
            };
            let url = format!("{}/api/v1/nodes/{}/reinstall", base(server), format_mac(m));
            match answer(agent().post(&url).send_bytes(&[]), &url) {
                Ok(body) => {
                    let n: Option<NodeOut> = serde_json::from_str(&body).ok();
                    let name = n
                        .as_ref()
                        .and_then(|n| n.hostname.clone())
                        .map(|h| format!(" ({h})"))
                        .unwrap_or_default();
                    let state = n.map_or_else(|| "?".to_string(), |n| n.state);
                    println!(
                        "{}{name}: reinstall requested; state {state}: its next network boot installs again",
                        format_mac(m)
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("ferroboot: {e}");
                    ExitCode::from(1)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_table() {
        assert_eq!(human_duration(999), "0s");
        assert_eq!(human_duration(59_000), "59s");
        assert_eq!(human_duration(65_000), "1m05s");
        assert_eq!(human_duration(7_500_000), "2h05m");
        assert_eq!(human_duration(3 * 86_400_000 + 4 * 3_600_000), "3d04h");
        let nodes = vec![
            NodeOut {
                mac: "52:54:00:12:34:56".into(),
                hostname: Some("node01".into()),
                profile: Some("control-plane".into()),
                state: "installing".into(),
                since_ms: 1_000_000,
                last_event: "installing".into(),
                last_event_ms: 1_000_000,
            },
            NodeOut {
                mac: "02:00:00:00:00:09".into(),
                hostname: None,
                profile: None,
                state: "dhcp".into(),
                since_ms: 1_060_000,
                last_event: "dhcp".into(),
                last_event_ms: 0,
            },
        ];
        let t = table(&nodes, 1_125_000);
        assert_eq!(
            t,
            "MAC                HOSTNAME  PROFILE        STATE       IN STATE  LAST EVENT\n\
             52:54:00:12:34:56  node01    control-plane  installing  2m05s     installing (2m05s ago)\n\
             02:00:00:00:00:09  -         -              dhcp        1m05s     dhcp\n"
        );
        assert_eq!(base("10.0.0.1:8080/"), "http://10.0.0.1:8080");
        assert_eq!(base("http://h:1"), "http://h:1");
    }
}
