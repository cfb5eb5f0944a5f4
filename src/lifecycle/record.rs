//! The lifecycle journal's records: `<state_dir>/nodes.journal`, framed by [`crate::journal`]
//! (length, CRC32, payload; torn tail cut on open; compaction), magic `FBNODES1`.
//!
//! ```text
//! transition: 1 | mac [6] | at_ms u64 LE | state u8 | last_event u8 | bytes_served u64 LE | ip [4] | detail (UTF-8, rest)
//! update:     2 | mac [6] | at_ms u64 LE | last_event u8 | bytes_served u64 LE | ip [4]
//! ```
//!
//! A transition is one history entry (and the node's counters at that moment); an update carries
//! counters without a state change (written at shutdown and by compaction). `ip` 0.0.0.0 is
//! "none"; `state` is the index in [`State::ALL`]; `last_event` the index in [`EVENTS`].

use super::State;
use std::net::Ipv4Addr;

pub const FILE_NAME: &str = "nodes.journal";
pub const MAGIC: [u8; 8] = *b"FBNODES1";

/// Every `last_event` name, in journal code order (never reorder: append only).
pub const EVENTS: [&str; 15] = [
    "",
    "inventory",
    "dhcp",
    "ipxe",
    "exit",
    "kernel",
    "initrd",
    "booted",
    "installing",
    "installed",
    "failed",
    "reinstall",
    "tftp",
    "http",
    "first-seen",
];

fn event_code(e: &str) -> u8 {
    EVENTS.iter().position(|&x| x == e).unwrap_or(0) as u8
}

/// One record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    Transition {
        mac: [u8; 6],
        at_ms: u64,
        state: State,
        last_event: &'static str,
        bytes_served: u64,
        ip: Option<Ipv4Addr>,
        detail: String,
    },
    Update {
        mac: [u8; 6],
        at_ms: u64,
        last_event: &'static str,
        bytes_served: u64,
        ip: Option<Ipv4Addr>,
    },
}

const TRANSITION_FIXED: usize = 1 + 6 + 8 + 1 + 1 + 8 + 4;
const UPDATE_LEN: usize = 1 + 6 + 8 + 1 + 8 + 4;

fn ip_bytes(ip: Option<Ipv4Addr>) -> [u8; 4] {
    ip.map_or([0; 4], |a| a.octets())
}

fn ip_of(b: &[u8]) -> Option<Ipv4Addr> {
    let a = Ipv4Addr::new(b[0], b[1], b[2], b[3]);
    (!a.is_unspecified()).then_some(a)
}

impl Record {
    /// The payload (what the journal frames).
    pub fn encode(&self) -> Vec<u8> {
        let mut p = Vec::with_capacity(TRANSITION_FIXED + 64);
        match self {
            Record::Transition { mac, at_ms, state, last_event, bytes_served, ip, detail } => {
                p.push(1);
                p.extend_from_slice(mac);
                p.extend_from_slice(&at_ms.to_le_bytes());
                p.push(State::ALL.iter().position(|s| s == state).unwrap_or(0) as u8);
                p.push(event_code(last_event));
                p.extend_from_slice(&bytes_served.to_le_bytes());
                p.extend_from_slice(&ip_bytes(*ip));
                p.extend_from_slice(super::machine::truncate(detail, super::machine::MAX_DETAIL).as_bytes());
            }
            Record::Update { mac, at_ms, last_event, bytes_served, ip } => {
                p.push(2);
                p.extend_from_slice(mac);
                p.extend_from_slice(&at_ms.to_le_bytes());
                p.push(event_code(last_event));
                p.extend_from_slice(&bytes_served.to_le_bytes());
                p.extend_from_slice(&ip_bytes(*ip));
            }
        }
        p
    }

    /// Decodes a payload; `None` for anything malformed (the journal stops its replay there).
    pub fn decode(p: &[u8]) -> Option<Record> {
        let kind = *p.first()?;
        let mac: [u8; 6] = p.get(1..7)?.try_into().ok()?;
        let at_ms = u64::from_le_bytes(p.get(7..15)?.try_into().ok()?);
        match kind {
            1 if p.len() >= TRANSITION_FIXED => {
                let state = *State::ALL.get(usize::from(p[15]))?;
                let last_event = *EVENTS.get(usize::from(p[16]))?;
                let bytes_served = u64::from_le_bytes(p[17..25].try_into().ok()?);
                let ip = ip_of(&p[25..29]);
                let detail = std::str::from_utf8(&p[29..]).ok()?;
                if detail.len() > super::machine::MAX_DETAIL {
                    return None;
                }
                Some(Record::Transition {
                    mac,
                    at_ms,
                    state,
                    last_event,
                    bytes_served,
                    ip,
                    detail: detail.to_string(),
                })
            }
            2 if p.len() == UPDATE_LEN => {
                let last_event = *EVENTS.get(usize::from(p[15]))?;
                let bytes_served = u64::from_le_bytes(p[16..24].try_into().ok()?);
                let ip = ip_of(&p[24..28]);
                Some(Record::Update { mac, at_ms, last_event, bytes_served, ip })
            }
            _ => None,
        }
    }

    /// The transition record of a node's `i`-th history entry.
    pub fn of_entry(n: &super::machine::Node, e: &super::machine::Entry) -> Record {
        Record::Transition {
            mac: n.mac,
            at_ms: e.at_ms,
            state: e.state,
            last_event: static_event(n.last_event),
            bytes_served: e.bytes_served,
            ip: n.ip,
            detail: e.detail.clone(),
        }
    }

    /// The update record of a node's counters now.
    pub fn update_of(n: &super::machine::Node) -> Record {
        Record::Update {
            mac: n.mac,
            at_ms: n.last_event_ms,
            last_event: static_event(n.last_event),
            bytes_served: n.bytes_served,
            ip: n.ip,
        }
    }
}

fn static_event(e: &str) -> &'static str {
    EVENTS[usize::from(event_code(e))]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_garbage() {
        let recs = [
            Record::Transition {
                mac: [2, 0, 0, 0, 0, 1],
                at_ms: 1_764_582_000_000,
                state: State::Installing,
                last_event: "installing",
                bytes_served: 523_000_000,
                ip: Some(Ipv4Addr::new(10, 0, 100, 50)),
                detail: "nixos-anywhere started — ünïcode".into(),
            },
            Record::Transition {
                mac: [2, 0, 0, 0, 0, 2],
                at_ms: 1,
                state: State::Discovered,
                last_event: "",
                bytes_served: 0,
                ip: None,
                detail: String::new(),
            },
            Record::Update {
                mac: [2, 0, 0, 0, 0, 1],
                at_ms: 9,
                last_event: "tftp",
                bytes_served: 7,
                ip: None,
            },
        ];
        for r in &recs {
            assert_eq!(Record::decode(&r.encode()).as_ref(), Some(r));
        }
        let good = recs[0].encode();
        for n in 0..TRANSITION_FIXED {
            assert_eq!(Record::decode(&good[..n]), None, "prefix {n}");
        }
        let mut bad = good.clone();
        bad[15] = 200; // no such state
        assert_eq!(Record::decode(&bad), None);
        let mut bad = good.clone();
        bad.push(0xff); // not UTF-8
        assert_eq!(Record::decode(&bad), None);
        let mut upd = recs[2].encode();
        upd.push(0);
        assert_eq!(Record::decode(&upd), None, "update with trailing bytes");
        assert_eq!(Record::decode(&[9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]), None);
    }
}
