//! Shared, single-threaded service state and counters: what `/health` and `/metrics` report.
//! Every service holds an `Rc<Status>`; counters are `Cell`s so updating them never allocates.

use std::cell::Cell;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceState {
    Disabled,
    Starting,
    Running,
    Failed,
    Stopping,
}

impl ServiceState {
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceState::Disabled => "disabled",
            ServiceState::Starting => "starting",
            ServiceState::Running => "running",
            ServiceState::Failed => "failed",
            ServiceState::Stopping => "stopping",
        }
    }
}

/// Counters for one protocol.
#[derive(Debug, Default)]
pub struct Counters {
    pub packets_in: Cell<u64>,
    pub packets_out: Cell<u64>,
    pub bytes_out: Cell<u64>,
    /// Malformed or unexpected input that was dropped.
    pub malformed: Cell<u64>,
    /// Requests refused with an error (not found, access violation, busy...).
    pub refused: Cell<u64>,
    pub timeouts: Cell<u64>,
    pub retransmits: Cell<u64>,
    pub active: Cell<u64>,
    pub completed: Cell<u64>,
    pub failed: Cell<u64>,
}

impl Counters {
    #[inline]
    pub fn add(c: &Cell<u64>, n: u64) {
        c.set(c.get().wrapping_add(n));
    }
    #[inline]
    pub fn inc(c: &Cell<u64>) {
        Self::add(c, 1);
    }
    #[inline]
    pub fn dec(c: &Cell<u64>) {
        c.set(c.get().saturating_sub(1));
    }
}

#[derive(Debug)]
pub struct Status {
    pub dhcp: Cell<ServiceState>,
    pub tftp: Cell<ServiceState>,
    pub http: Cell<ServiceState>,
    pub dhcp_counters: Counters,
    pub tftp_counters: Counters,
    pub http_counters: Counters,
}

impl Default for Status {
    fn default() -> Self {
        Status {
            dhcp: Cell::new(ServiceState::Disabled),
            tftp: Cell::new(ServiceState::Disabled),
            http: Cell::new(ServiceState::Disabled),
            dhcp_counters: Counters::default(),
            tftp_counters: Counters::default(),
            http_counters: Counters::default(),
        }
    }
}

impl Status {
    /// Healthy when no service has failed and every enabled one is running.
    pub fn healthy(&self) -> bool {
        [self.dhcp.get(), self.tftp.get(), self.http.get()]
            .iter()
            .all(|s| matches!(s, ServiceState::Running | ServiceState::Disabled))
    }
}
