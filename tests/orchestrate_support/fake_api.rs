//! A small lifecycle API server speaking docs/api.md (GET /api/v1/nodes/{mac}, POST
//! /api/v1/nodes/{mac}/events), on a std TcpListener thread, for the provisioning tests.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone)]
pub struct Event {
    pub mac: String,
    pub event: String,
    pub detail: Option<String>,
}

#[derive(Default)]
struct State {
    nodes: BTreeMap<String, (String, String)>, // mac -> (hostname, state)
    events: Vec<Event>,
}

#[derive(Clone)]
pub struct FakeApi {
    state: Arc<Mutex<State>>,
    pub url: String,
}

impl FakeApi {
    pub fn start() -> FakeApi {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let api = FakeApi { state: Arc::default(), url };
        let a = api.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let a = a.clone();
                std::thread::spawn(move || a.serve(conn));
            }
        });
        api
    }

    pub fn set(&self, mac: &str, hostname: &str, state: &str) {
        self.state.lock().unwrap().nodes.insert(mac.to_string(), (hostname.to_string(), state.to_string()));
    }

    pub fn state_of(&self, mac: &str) -> Option<String> {
        self.state.lock().unwrap().nodes.get(mac).map(|n| n.1.clone())
    }

    pub fn events(&self) -> Vec<Event> {
        self.state.lock().unwrap().events.clone()
    }

    pub fn events_of(&self, mac: &str) -> Vec<String> {
        self.events().into_iter().filter(|e| e.mac == mac).map(|e| e.event).collect()
    }

    fn node_json(mac: &str, hostname: &str, state: &str) -> String {
        serde_json::json!({
            "mac": mac, "hostname": hostname, "profile": null, "role": null, "ip_address": null,
            "known": true, "state": state, "since_ms": 0, "last_event": state, "bytes_served": 0, "history": []
        })
        .to_string()
    }

    fn serve(&self, conn: TcpStream) {
        let mut r = BufReader::new(conn.try_clone().unwrap());
        let mut line = String::new();
        if r.read_line(&mut line).is_err() {
            return;
        }
        let mut parts = line.split_whitespace();
        let (method, path) = (parts.next().unwrap_or("").to_string(), parts.next().unwrap_or("").to_string());
        let mut len = 0usize;
        loop {
            let mut h = String::new();
            if r.read_line(&mut h).is_err() || h == "\r\n" || h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0u8; len];
        let _ = r.read_exact(&mut body);
        let (status, answer) = self.route(&method, &path, &body);
        let mut w = conn;
        let _ = write!(
            w,
            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
            answer.len()
        );
    }

    fn route(&self, method: &str, path: &str, body: &[u8]) -> (u16, String) {
        let Some(rest) = path.strip_prefix("/api/v1/nodes/") else {
            return (404, r#"{"error":"no such route"}"#.into());
        };
        let (mac, tail) = rest.split_once('/').unwrap_or((rest, ""));
        let mac = mac.to_ascii_lowercase().replace('-', ":");
        let mut st = self.state.lock().unwrap();
        match (method, tail) {
            ("GET", "") => match st.nodes.get(&mac) {
                Some((h, s)) => (200, Self::node_json(&mac, h, s)),
                None => (404, r#"{"error":"unknown node"}"#.into()),
            },
            ("POST", "events") => {
                let v: serde_json::Value = match serde_json::from_slice(body) {
                    Ok(v) => v,
                    Err(_) => return (400, r#"{"error":"bad json"}"#.into()),
                };
                let event = v["event"].as_str().unwrap_or("").to_string();
                if !["booted", "installing", "installed", "failed"].contains(&event.as_str()) {
                    return (400, r#"{"error":"bad event"}"#.into());
                }
                let detail = v["detail"].as_str().map(str::to_string);
                st.events.push(Event { mac: mac.clone(), event: event.clone(), detail });
                let entry = st.nodes.entry(mac.clone()).or_insert((String::new(), String::new()));
                entry.1 = event.clone();
                let (h, s) = entry.clone();
                (200, Self::node_json(&mac, &h, &s))
            }
            _ => (405, r#"{"error":"method"}"#.into()),
        }
    }
}
