//! The lifecycle store: [`Nodes`] plus its journal, shared (`Rc<Store>`) by the services that
//! observe boots and the API that reports and changes them. Everything runs on the one event
//! loop, so the store is a `RefCell` and observers take `&self`.
//!
//! Durability: an API event or reinstall is written and `fdatasync`ed before its answer is
//! built, so a `200` means the transition survives a crash (and a failed write answers 500 and
//! undoes the change). Transitions the services observe are buffered and synced once per
//! event-loop wake-up by [`LifecycleService`] (one `fdatasync` for a burst, like the DHCP ACKs).
//! Bytes served that did not come with a transition are written at shutdown; after a crash the
//! counters are those of the node's last transition.

use super::machine::{Applied, BootFiles, Input, Known, Node, Nodes, Step};
use super::record::{self, Record};
use super::{NodeState, Observer, format_mac};
use crate::config::Config;
use crate::journal::Journal;
use crate::net::Service;
use mio::Registry;
use std::cell::{Cell, RefCell};
use std::io;
use std::net::Ipv4Addr;
use std::rc::Rc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// Why an API request could not be applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// 404: no such node.
    UnknownNode,
    /// 409: not allowed in the node's state.
    NotAllowed { from: super::State, step: Step },
    /// 503: too many nodes outside the inventory.
    Full,
    /// 500: the journal write failed; nothing changed.
    Io(String),
}

struct Inner {
    nodes: Nodes,
    journal: Option<Journal>,
    /// Journal syncs that failed (observed transitions lost).
    failed_syncs: u64,
    /// Nodes whose counters changed since their last record.
    dirty: bool,
}

/// The store. See the module docs.
pub struct Store {
    inner: RefCell<Inner>,
    /// Set when observed records wait for their sync.
    pending_since: Cell<Option<Instant>>,
    clock: fn() -> u64,
    /// `<state_dir>/nodes.lock`, held (flock) while the store is open.
    _lock: Option<std::fs::File>,
}

/// Takes `<dir>/nodes.lock` (an exclusive `flock`): two servers appending to one journal would
/// interleave their records.
fn lock(dir: &std::path::Path) -> io::Result<std::fs::File> {
    use std::os::fd::AsRawFd;
    let path = dir.join("nodes.lock");
    let f = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&path)?;
    // SAFETY: flock on a descriptor we own.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(
            e.kind(),
            format!("{} is held by another ferroboot ({e})", path.display()),
        ));
    }
    Ok(f)
}

/// The inventory and boot files of a config.
pub fn inventory(c: &Config) -> (Vec<Known>, BootFiles) {
    let known = c
        .nodes
        .iter()
        .map(|n| Known {
            mac: n.mac,
            hostname: n.hostname.clone(),
            profile: n.profile.clone(),
            role: n.role.clone(),
            ip: n.ip_address,
        })
        .collect();
    let files = BootFiles::new(c.profiles.values().map(|p| (p.kernel.as_str(), p.initrd.as_slice())));
    (known, files)
}

impl Store {
    /// Opens `<state_dir>/nodes.journal`, replays it over the config's inventory (a torn tail is
    /// cut), and journals the first entry of inventory nodes seen for the first time.
    pub fn open(c: &Config) -> io::Result<Store> {
        let (known, files) = inventory(c);
        std::fs::create_dir_all(&c.state_dir)
            .map_err(|e| io::Error::new(e.kind(), format!("state dir {}: {e}", c.state_dir.display())))?;
        let lock = lock(&c.state_dir)?;
        let (journal, opened) = Journal::open(&c.state_dir, record::FILE_NAME, record::MAGIC, Record::decode)
            .map_err(|e| {
                io::Error::new(e.kind(), format!("{}: {e}", c.state_dir.join(record::FILE_NAME).display()))
            })?;
        let mut nodes = Nodes::new(&known, files);
        for r in &opened.records {
            nodes.replay(r);
        }
        log::info!(
            "lifecycle: journal {}: {} record(s), {} node(s){}",
            journal.path().display(),
            opened.records.len(),
            nodes.len(),
            if opened.truncated > 0 {
                format!(", {} byte(s) of torn tail cut off", opened.truncated)
            } else {
                String::new()
            }
        );
        let mut store = Store::with(nodes, Some(journal), now_ms);
        store._lock = Some(lock);
        store.seed()?;
        Ok(store)
    }

    /// A store without a journal (tests, fuzzing, `ferroboot boot`) with a given clock.
    pub fn in_memory(known: &[Known], files: BootFiles, clock: fn() -> u64) -> Store {
        let store = Store::with(Nodes::new(known, files), None, clock);
        let _ = store.seed();
        store
    }

    fn with(nodes: Nodes, journal: Option<Journal>, clock: fn() -> u64) -> Store {
        Store {
            inner: RefCell::new(Inner { nodes, journal, failed_syncs: 0, dirty: false }),
            pending_since: Cell::new(None),
            clock,
            _lock: None,
        }
    }

    fn seed(&self) -> io::Result<()> {
        let now = (self.clock)();
        let mut g = self.inner.borrow_mut();
        let inner = &mut *g;
        let seeded = inner.nodes.seed_inventory(now);
        if let Some(j) = inner.journal.as_mut() {
            for mac in &seeded {
                if let Some(n) = inner.nodes.get(mac) {
                    for e in &n.history {
                        j.append(&Record::of_entry(n, e).encode());
                    }
                }
            }
            j.sync()?;
        }
        Ok(())
    }

    /// Reads the nodes.
    pub fn with_nodes<R>(&self, f: impl FnOnce(&Nodes) -> R) -> R {
        f(&self.inner.borrow().nodes)
    }

    /// A copy of one node.
    pub fn node(&self, mac: [u8; 6]) -> Option<Node> {
        self.inner.borrow().nodes.get(&mac).cloned()
    }

    /// Journal syncs that failed so far.
    pub fn failed_syncs(&self) -> u64 {
        self.inner.borrow().failed_syncs
    }

    /// Appends the last `n` history entries of `mac` to the journal buffer.
    fn journal_last(inner: &mut Inner, mac: [u8; 6], n: usize) {
        let (Some(j), Some(node)) = (inner.journal.as_mut(), inner.nodes.get(&mac)) else { return };
        let skip = node.history.len().saturating_sub(n);
        for e in node.history.iter().skip(skip) {
            j.append(&Record::of_entry(node, e).encode());
        }
    }

    /// Applies an API event (or, with [`Step::Reinstall`], the operator's reinstall) and makes
    /// it durable before returning the node.
    pub fn event(&self, mac: [u8; 6], step: Step, detail: &str) -> Result<Node, StoreError> {
        let now = (self.clock)();
        // Observed records buffered so far go first, in order.
        self.sync_observed();
        let mut g = self.inner.borrow_mut();
        let inner = &mut *g;
        let before = inner.nodes.get(&mac).cloned();
        let applied = inner.nodes.apply(mac, Input::Event { step, detail }, now);
        match applied {
            Applied::Moved(n) => {
                Self::journal_last(inner, mac, n);
                if let Some(j) = inner.journal.as_mut() {
                    if let Err(e) = j.sync() {
                        inner.nodes.restore(mac, before);
                        inner.failed_syncs += 1;
                        log::error!(
                            "lifecycle: journal write failed: {e}; {} {} not applied",
                            format_mac(mac),
                            step.as_str()
                        );
                        return Err(StoreError::Io(e.to_string()));
                    }
                }
                let node = inner.nodes.get(&mac).cloned().ok_or(StoreError::UnknownNode)?;
                log::info!(
                    "lifecycle: {} {} -> {}{}{}",
                    format_mac(mac),
                    step.as_str(),
                    node.state.as_str(),
                    if detail.is_empty() { "" } else { ": " },
                    detail
                );
                Ok(node)
            }
            Applied::Stayed => inner.nodes.get(&mac).cloned().ok_or(StoreError::UnknownNode),
            Applied::Illegal { from, step } => Err(StoreError::NotAllowed { from, step }),
            Applied::Unknown => Err(StoreError::UnknownNode),
            Applied::Full => Err(StoreError::Full),
        }
    }

    /// An observation: journal what moved (synced by [`Store::sync_observed`]), log it.
    fn observed(&self, mac: Option<[u8; 6]>, applied: Applied, what: &str) {
        match applied {
            Applied::Moved(n) => {
                let Some(mac) = mac else { return };
                let mut g = self.inner.borrow_mut();
                let inner = &mut *g;
                Self::journal_last(inner, mac, n);
                if let Some(node) = inner.nodes.get(&mac) {
                    if let Some(e) = node.last() {
                        log::info!(
                            "lifecycle: {} {what} -> {}: {}",
                            format_mac(mac),
                            e.state.as_str(),
                            e.detail
                        );
                    }
                }
                if inner.journal.is_some() && self.pending_since.get().is_none() {
                    self.pending_since.set(Some(Instant::now()));
                }
            }
            Applied::Illegal { from, step } => {
                if let Some(mac) = mac {
                    log::debug!(
                        "lifecycle: {} {} ignored in state {}",
                        format_mac(mac),
                        step.as_str(),
                        from.as_str()
                    );
                }
            }
            Applied::Full => log::debug!("lifecycle: node table full; {what} not recorded"),
            Applied::Stayed | Applied::Unknown => {}
        }
    }

    /// Syncs the observed records (one `fdatasync`); a failure is logged and counted.
    pub fn sync_observed(&self) {
        self.pending_since.set(None);
        let mut g = self.inner.borrow_mut();
        let inner = &mut *g;
        if let Some(j) = inner.journal.as_mut() {
            if j.has_pending() {
                if let Err(e) = j.sync() {
                    inner.failed_syncs += 1;
                    log::error!(
                        "lifecycle: journal write failed: {e}; observed transitions of this batch are lost"
                    );
                }
            }
            let live = inner.nodes.entries() + inner.nodes.len();
            if j.needs_compaction(live) {
                let payloads: Vec<Vec<u8>> = inner
                    .nodes
                    .iter()
                    .flat_map(|n| {
                        n.history
                            .iter()
                            .map(|e| Record::of_entry(n, e).encode())
                            .chain(std::iter::once(Record::update_of(n).encode()))
                    })
                    .collect();
                let before = j.len();
                match j.compact(payloads.iter().map(Vec::as_slice)) {
                    Ok(()) => log::info!("lifecycle: journal compacted from {before} to {} bytes", j.len()),
                    Err(e) => log::warn!("lifecycle: journal compaction failed: {e}"),
                }
            }
        }
    }

    /// Writes every node's counters (bytes served, last event, address) and syncs: at shutdown.
    pub fn flush(&self) {
        {
            let mut g = self.inner.borrow_mut();
            let inner = &mut *g;
            if let (Some(j), true) = (inner.journal.as_mut(), inner.dirty) {
                for n in inner.nodes.iter() {
                    j.append(&Record::update_of(n).encode());
                }
            }
            inner.dirty = false;
        }
        self.sync_observed();
    }

    /// When observed records wait for their sync.
    pub fn pending_since(&self) -> Option<Instant> {
        self.pending_since.get()
    }

    fn file_served(
        &self,
        peer: Ipv4Addr,
        named: Option<[u8; 6]>,
        file: &[u8],
        bytes: u64,
        complete: bool,
        via: &'static str,
    ) {
        let now = (self.clock)();
        let (mac, applied) = {
            let mut g = self.inner.borrow_mut();
            // The machine the URL names, when we have it (and then its address is the peer's),
            // else the one the peer's address is attributed to.
            let named = named.filter(|m| g.nodes.get(m).is_some());
            if let Some(m) = named {
                g.nodes.learn_ip(m, peer);
            }
            let mac = named.or_else(|| g.nodes.mac_of(peer));
            let applied = match mac {
                Some(m) => g.nodes.file_served(m, file, bytes, complete, via, now),
                None => Applied::Unknown,
            };
            if mac.is_some() {
                g.dirty = true;
            }
            (mac, applied)
        };
        self.observed(mac, applied, via);
    }
}

impl Observer for Store {
    fn dhcp_boot(
        &self,
        mac: [u8; 6],
        what: &'static str,
        arch: Option<u16>,
        file: &str,
        ip: Option<Ipv4Addr>,
    ) {
        let now = (self.clock)();
        let applied = {
            let mut g = self.inner.borrow_mut();
            let a = g.nodes.apply(mac, Input::Dhcp { what, arch, file }, now);
            if let Some(ip) = ip {
                g.nodes.learn_ip(mac, ip);
            }
            a
        };
        self.observed(Some(mac), applied, "dhcp");
    }

    fn ip_seen(&self, mac: [u8; 6], ip: Ipv4Addr) {
        self.inner.borrow_mut().nodes.learn_ip(mac, ip);
    }

    fn follows(&self, peer: Ipv4Addr) -> bool {
        self.inner.borrow().nodes.mac_of(peer).is_some()
    }

    fn tftp_served(&self, peer: Ipv4Addr, file: &[u8], bytes: u64, complete: bool) {
        self.file_served(peer, None, file, bytes, complete, "tftp");
    }

    fn http_served(&self, peer: Ipv4Addr, mac: Option<[u8; 6]>, file: &[u8], bytes: u64, complete: bool) {
        self.file_served(peer, mac, file, bytes, complete, "http");
    }
}

impl NodeState for Store {
    fn boots_local(&self, mac: [u8; 6]) -> bool {
        self.inner.borrow().nodes.get(&mac).is_some_and(|n| n.state.boots_local())
    }

    fn script_served(&self, mac: [u8; 6], peer: Ipv4Addr, local: bool) {
        let now = (self.clock)();
        let applied = self.inner.borrow_mut().nodes.apply(mac, Input::Script { local, peer }, now);
        self.observed(Some(mac), applied, if local { "exit" } else { "ipxe" });
    }
}

/// Puts the store's journal sync on the event loop: observed transitions are made durable once
/// per wake-up, and the counters are written at shutdown.
pub struct LifecycleService(pub Rc<Store>);

impl Service for LifecycleService {
    fn name(&self) -> &'static str {
        "lifecycle"
    }
    fn register(&mut self, _registry: &Registry, _base: usize) -> io::Result<()> {
        Ok(())
    }
    fn handle_event(&mut self, _registry: &Registry, _event: &mio::event::Event, _now: Instant) {}
    fn next_deadline(&self) -> Option<Instant> {
        self.0.pending_since()
    }
    fn handle_timeouts(&mut self, _registry: &Registry, _now: Instant) {
        self.0.sync_observed();
    }
    fn begin_shutdown(&mut self, _registry: &Registry, _now: Instant) {}
    fn is_idle(&self) -> bool {
        true
    }
    fn flush(&mut self, _registry: &Registry) {
        self.0.flush();
    }
}

#[cfg(test)]
mod tests;
