//! The sans-IO lifecycle: the transition table, the nodes and their timelines. No files, no
//! sockets, no clock: time is an argument (milliseconds since the Unix epoch), so every
//! transition is a plain unit test.
//!
//! ## The transition table
//!
//! Rows are the state a node is in, columns what happened to it (a [`Step`]). A state name is
//! the state it moves to (a timestamped history entry), `=` means it stays (nothing recorded: a
//! repeat such as iPXE's second DHCP or a retried callback), `✗` means the step is refused: an
//! API event answers 409, an observation is ignored for the state (its bytes still count).
//!
//! | from \ step | dhcp | ipxe | exit | kernel | initrd | booted | installing | installed | failed | reinstall |
//! |---|---|---|---|---|---|---|---|---|---|---|
//! | discovered | dhcp | ipxe | ✗ | kernel | initrd | booted | installing | ✗ | failed | = |
//! | dhcp | =¹ | ipxe | ✗ | kernel | initrd | booted | installing | ✗ | failed | discovered |
//! | ipxe | dhcp | = | ✗ | kernel | initrd | booted | installing | ✗ | failed | discovered |
//! | kernel | dhcp | ipxe | ✗ | = | initrd | booted | installing | ✗ | failed | discovered |
//! | initrd | dhcp | ipxe | ✗ | kernel | = | booted | installing | ✗ | failed | discovered |
//! | booted | dhcp | ipxe | ✗ | ✗ | ✗ | = | installing | installed | failed | discovered |
//! | installing | dhcp | ipxe | ✗ | ✗ | ✗ | booted | = | installed | failed | discovered |
//! | installed | = | ✗ | local | ✗ | ✗ | ✗ | ✗ | = | failed | discovered |
//! | local | = | ✗ | = | ✗ | ✗ | ✗ | ✗ | ✗ | failed | discovered |
//! | failed | dhcp | ipxe | ✗ | kernel | initrd | booted | installing | ✗ | = | discovered |
//!
//! ¹ A second, *different* boot decision while in `dhcp` (the PXE ROM got `undionly.kpxe`, then
//! the iPXE it loaded gets the script URL) is recorded as a `dhcp` entry of its own; the same
//! decision again is not.
//!
//! Why these: a machine that boots again from any install-side state (`booted`, `installing`,
//! `failed`...) starts over at `dhcp` or `ipxe`, so a failed or interrupted install restarts by
//! rebooting it. Once `installed`, network boots do not move it except towards `local`: its DHCP
//! is noted, its script is `exit` (the runbook's "Network → Disk" boot order) and serving that
//! script moves it to `local`; only `reinstall` (the operator) brings it back to `discovered`, so
//! its next boot installs again. The installer's `booted` is accepted from any pre-install
//! state, because the chain may have been observed only in part (a kernel fetched from elsewhere,
//! a peer address never learned). `installed` needs an installer that booted (`booted` or
//! `installing`). `failed` is accepted from anywhere: it is a report, and the operator wants to
//! see it. `exit` outside `installed`/`local` (a menu's "boot from disk") does not make a machine
//! boot locally for good.

use super::State;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::Ipv4Addr;

/// What happened to a node: an observation by a service, an event reported through the API, or
/// the operator's reinstall.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Step {
    /// A DHCP answer with boot information.
    Dhcp,
    /// Its iPXE script was served (the installing one).
    Script,
    /// Its `exit` script was served: it falls through to its disk.
    Exit,
    /// One of the profiles' kernels was served to it.
    Kernel,
    /// One of the profiles' initrds was served to it.
    Initrd,
    Booted,
    Installing,
    Installed,
    Failed,
    Reinstall,
}

impl Step {
    pub const ALL: [Step; 10] = [
        Step::Dhcp,
        Step::Script,
        Step::Exit,
        Step::Kernel,
        Step::Initrd,
        Step::Booted,
        Step::Installing,
        Step::Installed,
        Step::Failed,
        Step::Reinstall,
    ];

    /// The name used for `last_event` and in errors.
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Dhcp => "dhcp",
            Step::Script => "ipxe",
            Step::Exit => "exit",
            Step::Kernel => "kernel",
            Step::Initrd => "initrd",
            Step::Booted => "booted",
            Step::Installing => "installing",
            Step::Installed => "installed",
            Step::Failed => "failed",
            Step::Reinstall => "reinstall",
        }
    }

    /// The events a client may report through the API (`booted`, `installing`, `installed`,
    /// `failed`).
    pub fn parse_event(s: &str) -> Option<Step> {
        match s {
            "booted" => Some(Step::Booted),
            "installing" => Some(Step::Installing),
            "installed" => Some(Step::Installed),
            "failed" => Some(Step::Failed),
            _ => None,
        }
    }
}

/// The table's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Move to this state (a history entry).
    To(State),
    /// Stay; nothing to record.
    Stay,
    /// Refused.
    Illegal,
}

/// The transition table (see the module docs).
pub fn next(from: State, step: Step) -> Verdict {
    use State::*;
    use Verdict::{Illegal, Stay, To};
    match (from, step) {
        (Discovered, Step::Reinstall) => Stay,
        (_, Step::Reinstall) => To(Discovered),
        (Failed, Step::Failed) => Stay,
        (_, Step::Failed) => To(Failed),
        (Dhcp | Installed | Local, Step::Dhcp) => Stay,
        (_, Step::Dhcp) => To(Dhcp),
        (Installed, Step::Exit) => To(Local),
        (Local, Step::Exit) => Stay,
        (_, Step::Exit) => Illegal,
        (Ipxe, Step::Script) => Stay,
        (Installed | Local, Step::Script) => Illegal,
        (_, Step::Script) => To(Ipxe),
        (Kernel, Step::Kernel) => Stay,
        (Discovered | Dhcp | Ipxe | Initrd | Failed, Step::Kernel) => To(Kernel),
        (_, Step::Kernel) => Illegal,
        (Initrd, Step::Initrd) => Stay,
        (Discovered | Dhcp | Ipxe | Kernel | Failed, Step::Initrd) => To(Initrd),
        (_, Step::Initrd) => Illegal,
        (Booted, Step::Booted) => Stay,
        (Installed | Local, Step::Booted) => Illegal,
        (_, Step::Booted) => To(Booted),
        (Installing, Step::Installing) => Stay,
        (Installed | Local, Step::Installing) => Illegal,
        (_, Step::Installing) => To(Installing),
        (Installed, Step::Installed) => Stay,
        (Booted | Installing, Step::Installed) => To(Installed),
        (_, Step::Installed) => Illegal,
    }
}

/// Longest detail kept per history entry (bytes; cut at a character boundary).
pub const MAX_DETAIL: usize = 240;
/// History entries kept per node (the oldest are dropped).
pub const MAX_HISTORY: usize = 100;
/// Nodes not in the inventory kept at most (a flood of made-up MACs cannot grow memory).
pub const MAX_UNKNOWN: usize = 4096;

/// One timeline entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub state: State,
    pub at_ms: u64,
    pub detail: String,
    /// The node's bytes served when it entered the state.
    pub bytes_served: u64,
}

/// A node and its timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub mac: [u8; 6],
    /// Listed in the config inventory.
    pub known: bool,
    pub hostname: Option<String>,
    pub profile: Option<String>,
    pub role: Option<String>,
    /// The inventory's `ip_address`.
    pub configured_ip: Option<Ipv4Addr>,
    /// The last address seen (DHCP, script fetch), else the configured one.
    pub ip: Option<Ipv4Addr>,
    pub state: State,
    pub since_ms: u64,
    /// The last event received or observed (a [`Step`] name, `tftp`, `http`, `inventory`...).
    pub last_event: &'static str,
    pub last_event_ms: u64,
    pub bytes_served: u64,
    pub history: VecDeque<Entry>,
    /// The last boot decision (to tell a repeat from a new one without allocating).
    last_boot_arch: Option<u16>,
    last_boot_file: String,
}

impl Node {
    fn new(mac: [u8; 6], known: bool) -> Node {
        Node {
            mac,
            known,
            hostname: None,
            profile: None,
            role: None,
            configured_ip: None,
            ip: None,
            state: State::Discovered,
            since_ms: 0,
            last_event: "",
            last_event_ms: 0,
            bytes_served: 0,
            history: VecDeque::new(),
            last_boot_arch: None,
            last_boot_file: String::new(),
        }
    }

    /// The last history entry.
    pub fn last(&self) -> Option<&Entry> {
        self.history.back()
    }

    fn push(&mut self, state: State, at_ms: u64, detail: &str) {
        if self.history.len() >= MAX_HISTORY {
            self.history.pop_front();
        }
        self.history.push_back(Entry {
            state,
            at_ms,
            detail: truncate(detail, MAX_DETAIL).to_string(),
            bytes_served: self.bytes_served,
        });
        self.state = state;
        self.since_ms = at_ms;
    }
}

/// `s` cut to at most `max` bytes at a character boundary.
pub fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// What the outside saw happen to a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input<'a> {
    /// A boot decision: what kind, the architecture sent, the file or URL.
    Dhcp { what: &'static str, arch: Option<u16>, file: &'a str },
    /// A script was served to it from `peer`; `local`: the `exit` script.
    Script { local: bool, peer: Ipv4Addr },
    /// An API event or the operator's reinstall, with its detail.
    Event { step: Step, detail: &'a str },
}

/// What [`Nodes::apply`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// This many new history entries (the node was created and/or moved): journal them.
    Moved(usize),
    /// Nothing durable changed (a repeat).
    Stayed,
    /// Refused in the node's current state.
    Illegal { from: State, step: Step },
    /// No such node, and this input does not create one.
    Unknown,
    /// Too many nodes not in the inventory: ignored.
    Full,
}

/// The boot files of the profiles: what makes an HTTP/TFTP transfer a `kernel` or an `initrd`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BootFiles {
    pub kernels: Vec<String>,
    pub initrds: Vec<String>,
}

impl BootFiles {
    /// From `(kernel, initrds)` per profile; paths relative to the root (a leading `/` or `./`
    /// is dropped, as the file services drop it).
    pub fn new<'a>(profiles: impl IntoIterator<Item = (&'a str, &'a [String])>) -> BootFiles {
        let mut b = BootFiles::default();
        for (k, initrds) in profiles {
            b.kernels.push(clean(k).to_string());
            b.initrds.extend(initrds.iter().map(|i| clean(i).to_string()));
        }
        b
    }

    /// `Kernel`, `Initrd` or `None` for a served path. A profile path may hold placeholders
    /// (`nixos/{arch}/bzImage`): each matches any run of characters within one path segment.
    pub fn classify(&self, path: &[u8]) -> Option<Step> {
        let path = clean_bytes(path);
        if self.kernels.iter().any(|k| template_match(k.as_bytes(), path)) {
            Some(Step::Kernel)
        } else if self.initrds.iter().any(|k| template_match(k.as_bytes(), path)) {
            Some(Step::Initrd)
        } else {
            None
        }
    }
}

/// Whether `path` is an instance of the path template `pat`: `{name}` matches any bytes but `/`,
/// `{{` and `}}` are a literal brace, everything else matches itself. No allocation.
pub fn template_match(pat: &[u8], path: &[u8]) -> bool {
    match pat {
        [] => path.is_empty(),
        [b'{', b'{', rest @ ..] => path.first() == Some(&b'{') && template_match(rest, &path[1..]),
        [b'}', b'}', rest @ ..] => path.first() == Some(&b'}') && template_match(rest, &path[1..]),
        [b'{', rest @ ..] => {
            let Some(close) = rest.iter().position(|&b| b == b'}') else {
                return path.first() == Some(&b'{') && template_match(rest, &path[1..]);
            };
            let after = &rest[close + 1..];
            let seg = path.iter().position(|&b| b == b'/').unwrap_or(path.len());
            (0..=seg).any(|n| template_match(after, &path[n..]))
        }
        [c, rest @ ..] => path.first() == Some(c) && template_match(rest, &path[1..]),
    }
}

fn clean(s: &str) -> &str {
    let mut s = s;
    loop {
        let t = s.trim_start_matches('/');
        let t = t.strip_prefix("./").unwrap_or(t);
        if t.len() == s.len() {
            return s;
        }
        s = t;
    }
}

fn clean_bytes(mut s: &[u8]) -> &[u8] {
    loop {
        let t = match s {
            [b'/', rest @ ..] => rest,
            [b'.', b'/', rest @ ..] => rest,
            _ => return s,
        };
        s = t;
    }
}

/// Every node, by MAC, and the address → MAC map the file services are attributed through.
#[derive(Debug, Clone, Default)]
pub struct Nodes {
    nodes: BTreeMap<[u8; 6], Node>,
    by_ip: HashMap<Ipv4Addr, [u8; 6]>,
    files: BootFiles,
    unknown: usize,
}

/// An inventory entry (the config's `[nodes."<MAC>"]`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Known {
    pub mac: [u8; 6],
    pub hostname: Option<String>,
    pub profile: Option<String>,
    pub role: Option<String>,
    pub ip: Option<Ipv4Addr>,
}

impl Nodes {
    /// The inventory's nodes, all `discovered` with an empty timeline (replay and
    /// [`Nodes::seed_inventory`] fill them in).
    pub fn new(inventory: &[Known], files: BootFiles) -> Nodes {
        let mut n = Nodes { files, ..Nodes::default() };
        n.by_ip.reserve(1024 + inventory.len());
        for k in inventory {
            let mut node = Node::new(k.mac, true);
            node.hostname = k.hostname.clone();
            node.profile = k.profile.clone();
            node.role = k.role.clone().or_else(|| k.profile.clone());
            node.configured_ip = k.ip;
            node.ip = k.ip;
            if let Some(ip) = k.ip {
                n.by_ip.insert(ip, k.mac);
            }
            n.nodes.insert(k.mac, node);
        }
        n
    }

    pub fn get(&self, mac: &[u8; 6]) -> Option<&Node> {
        self.nodes.get(mac)
    }

    /// Every node, sorted by MAC.
    pub fn iter(&self) -> impl Iterator<Item = &Node> {
        self.nodes.values()
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// History entries held, over all nodes.
    pub fn entries(&self) -> usize {
        self.nodes.values().map(|n| n.history.len()).sum()
    }

    /// The node a peer address is attributed to.
    pub fn mac_of(&self, ip: Ipv4Addr) -> Option<[u8; 6]> {
        self.by_ip.get(&ip).copied()
    }

    /// Inventory nodes without a timeline get their first entry (`discovered`, "in the
    /// inventory"); returns their MACs, to journal.
    pub fn seed_inventory(&mut self, now_ms: u64) -> Vec<[u8; 6]> {
        let mut seeded = Vec::new();
        for n in self.nodes.values_mut() {
            if n.known && n.history.is_empty() {
                n.push(State::Discovered, now_ms, "in the inventory");
                n.last_event = "inventory";
                n.last_event_ms = now_ms;
                seeded.push(n.mac);
            }
        }
        seeded
    }

    fn create(&mut self, mac: [u8; 6], now_ms: u64, how: &str) -> Option<&mut Node> {
        if !self.nodes.contains_key(&mac) {
            if self.unknown >= MAX_UNKNOWN {
                return None;
            }
            self.unknown += 1;
            let mut n = Node::new(mac, false);
            n.push(State::Discovered, now_ms, how);
            self.nodes.insert(mac, n);
        }
        self.nodes.get_mut(&mac)
    }

    /// Records that `mac` is at `ip` (only for nodes we have). No allocation when it was known.
    pub fn learn_ip(&mut self, mac: [u8; 6], ip: Ipv4Addr) {
        if ip.is_unspecified() || ip.is_broadcast() {
            return;
        }
        let Some(node) = self.nodes.get_mut(&mac) else { return };
        if node.ip != Some(ip) {
            if let Some(old) = node.ip {
                if self.by_ip.get(&old) == Some(&mac) {
                    self.by_ip.remove(&old);
                }
            }
            node.ip = Some(ip);
        }
        if self.by_ip.get(&ip) != Some(&mac) {
            self.by_ip.insert(ip, mac);
        }
    }

    /// Applies an input to `mac` at `now_ms`. DHCP boot decisions, scripts and API events create
    /// a node for an unknown MAC (`known: false`); the operator's reinstall does not.
    pub fn apply(&mut self, mac: [u8; 6], input: Input<'_>, now_ms: u64) -> Applied {
        let (step, create_how) = match input {
            Input::Dhcp { .. } => (Step::Dhcp, "first seen: DHCP boot request"),
            Input::Script { local: false, .. } => (Step::Script, "first seen: iPXE script request"),
            Input::Script { local: true, .. } => (Step::Exit, "first seen: iPXE script request"),
            Input::Event { step, .. } => (step, "first seen: event reported through the API"),
        };
        let created = !self.nodes.contains_key(&mac);
        if created && step == Step::Reinstall {
            return Applied::Unknown;
        }
        let Some(node) = self.create(mac, now_ms, create_how) else { return Applied::Full };
        let mut moved = usize::from(created);
        let verdict = next(node.state, step);
        if verdict != Verdict::Illegal {
            node.last_event = step.as_str();
            node.last_event_ms = now_ms;
        }
        match (verdict, input) {
            (Verdict::To(to), Input::Dhcp { what, arch, file }) => {
                node.last_boot_arch = arch;
                node.last_boot_file.clear();
                node.last_boot_file.push_str(file);
                node.push(to, now_ms, &dhcp_detail(what, arch, file));
                moved += 1;
            }
            (Verdict::Stay, Input::Dhcp { what, arch, file })
                if node.state == State::Dhcp
                    && (node.last_boot_arch != arch || node.last_boot_file != file) =>
            {
                node.last_boot_arch = arch;
                node.last_boot_file.clear();
                node.last_boot_file.push_str(file);
                node.push(State::Dhcp, now_ms, &dhcp_detail(what, arch, file));
                moved += 1;
            }
            (Verdict::To(to), Input::Script { local, peer }) => {
                let d = if local {
                    format!("exit script served to {peer}: boots from its disk")
                } else {
                    format!("boot script served to {peer}")
                };
                node.push(to, now_ms, &d);
                moved += 1;
            }
            (Verdict::To(to), Input::Event { step, detail }) => {
                let d =
                    if detail.is_empty() && step == Step::Reinstall { "reinstall requested" } else { detail };
                node.push(to, now_ms, d);
                moved += 1;
            }
            (Verdict::Illegal, _) => {
                let from = node.state;
                if created {
                    // Nothing to show for it: a refused first event does not create the node.
                    self.restore(mac, None);
                }
                return Applied::Illegal { from, step };
            }
            _ => {}
        }
        if let Input::Script { peer, .. } = input {
            self.learn_ip(mac, peer);
        }
        if moved > 0 { Applied::Moved(moved) } else { Applied::Stayed }
    }

    /// A file transfer (HTTP or TFTP) to node `mac`: its bytes count, and a profile's kernel or
    /// initrd, once complete, is that step. `via` is `tftp` or `http`. Allocation-free unless the
    /// node moves.
    pub fn file_served(
        &mut self,
        mac: [u8; 6],
        path: &[u8],
        bytes: u64,
        complete: bool,
        via: &'static str,
        now_ms: u64,
    ) -> Applied {
        let step = if complete { self.files.classify(path) } else { None };
        let Some(node) = self.nodes.get_mut(&mac) else { return Applied::Unknown };
        node.bytes_served = node.bytes_served.saturating_add(bytes);
        node.last_event_ms = now_ms;
        let Some(step) = step else {
            node.last_event = via;
            return Applied::Stayed;
        };
        node.last_event = step.as_str();
        match next(node.state, step) {
            Verdict::To(to) => {
                let d =
                    format!("{}, {bytes} bytes over {}", String::from_utf8_lossy(path), via.to_uppercase());
                node.push(to, now_ms, &d);
                Applied::Moved(1)
            }
            Verdict::Stay => Applied::Stayed,
            Verdict::Illegal => Applied::Illegal { from: node.state, step },
        }
    }

    /// Replays one journal record (see [`super::record`]).
    pub fn replay(&mut self, r: &super::record::Record) {
        use super::record::Record;
        let mac = match r {
            Record::Transition { mac, .. } | Record::Update { mac, .. } => *mac,
        };
        if !self.nodes.contains_key(&mac) {
            if self.unknown >= MAX_UNKNOWN {
                return;
            }
            self.unknown += 1;
            self.nodes.insert(mac, Node::new(mac, false));
        }
        let (ip, last_event, at_ms, bytes) = match r {
            Record::Transition { ip, last_event, at_ms, bytes_served, .. }
            | Record::Update { ip, last_event, at_ms, bytes_served, .. } => {
                (*ip, *last_event, *at_ms, *bytes_served)
            }
        };
        if let Some(node) = self.nodes.get_mut(&mac) {
            node.bytes_served = bytes;
            node.last_event = last_event;
            node.last_event_ms = at_ms;
            if let Record::Transition { state, detail, .. } = r {
                node.push(*state, at_ms, detail);
            }
        }
        if let Some(ip) = ip {
            self.learn_ip(mac, ip);
        }
    }

    /// Restores a node to an earlier copy (or removes it): undoes an API event whose journal
    /// write failed.
    pub fn restore(&mut self, mac: [u8; 6], before: Option<Node>) {
        match before {
            Some(n) => {
                self.nodes.insert(mac, n);
            }
            None => {
                if self.nodes.remove(&mac).is_some() {
                    self.unknown = self.unknown.saturating_sub(1);
                }
            }
        }
    }
}

fn dhcp_detail(what: &str, arch: Option<u16>, file: &str) -> String {
    match arch {
        Some(a) => format!("{what} {file}, arch {a} ({})", crate::dhcp::pxe::arch::name(a)),
        None => format!("{what} {file}, no arch sent"),
    }
}

#[cfg(test)]
mod tests;
