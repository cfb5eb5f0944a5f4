//! A client of the running server's lifecycle API (`docs/api.md`): read a node, report an event.

use serde::Deserialize;
use std::time::Duration;

pub const DEFAULT_SERVER: &str = "http://127.0.0.1:8080";

/// The fields of the API's Node object the orchestration reads (the rest are ignored).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct NodeView {
    pub mac: String,
    #[serde(default)]
    pub hostname: Option<String>,
    pub state: String,
    #[serde(default)]
    pub ip_address: Option<String>,
}

#[derive(Clone)]
pub struct Api {
    agent: ureq::Agent,
    base: String,
}

/// The longest `detail` sent (the API refuses bodies over 16 KiB).
pub const MAX_DETAIL: usize = 4096;

impl Api {
    pub fn new(base: &str, timeout: Duration) -> Api {
        let agent = ureq::AgentBuilder::new().timeout(timeout).redirects(0).build();
        Api { agent, base: base.trim_end_matches('/').to_string() }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    fn url(&self, mac: &str, tail: &str) -> String {
        format!("{}/api/v1/nodes/{mac}{tail}", self.base)
    }

    fn parse(&self, r: ureq::Response) -> Result<NodeView, String> {
        use std::io::Read;
        let mut body = Vec::new();
        r.into_reader().take(4 << 20).read_to_end(&mut body).map_err(|e| format!("{}: {e}", self.base))?;
        serde_json::from_slice(&body).map_err(|e| format!("bad answer from {}: {e}", self.base))
    }

    /// The node, or `None` when the server does not know it (404).
    pub fn node(&self, mac: &str) -> Result<Option<NodeView>, String> {
        match self.agent.get(&self.url(mac, "")).call() {
            Ok(r) => self.parse(r).map(Some),
            Err(ureq::Error::Status(404, _)) => Ok(None),
            Err(e) => Err(describe(e)),
        }
    }

    /// Reports `installing`, `installed` or `failed` (with its detail).
    pub fn event(&self, mac: &str, event: &str, detail: Option<&str>) -> Result<NodeView, String> {
        let mut body = serde_json::json!({ "event": event });
        if let Some(d) = detail {
            let mut d = d.to_string();
            if d.len() > MAX_DETAIL {
                let mut cut = d.len() - MAX_DETAIL;
                while !d.is_char_boundary(cut) {
                    cut += 1;
                }
                d = format!("…{}", &d[cut..]);
            }
            body["detail"] = d.into();
        }
        let req = self.agent.post(&self.url(mac, "/events")).set("Content-Type", "application/json");
        match req.send_string(&body.to_string()) {
            Ok(r) => self.parse(r),
            Err(e) => Err(describe(e)),
        }
    }
}

fn describe(e: ureq::Error) -> String {
    match e {
        ureq::Error::Status(code, r) => {
            let url = r.get_url().to_string();
            let body = r.into_string().unwrap_or_default();
            format!("{url}: HTTP {code} {}", body.trim())
        }
        ureq::Error::Transport(t) => t.to_string(),
    }
}
