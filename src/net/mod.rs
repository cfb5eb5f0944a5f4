//! The only code that touches sockets: the mio event loop ([`EventLoop`]), socket setup
//! ([`udp`], [`tcp`]) and interface discovery ([`iface`]).
//!
//! Protocol drivers implement [`Service`]. Each service owns a range of mio tokens
//! (`base..base + TOKEN_SPAN`); the loop dispatches readiness events by token, keeps the earliest
//! deadline any service asked for and passes it to `poll`, and on SIGINT/SIGTERM asks every service
//! to stop gracefully, then exits once all report done (or a grace period passes).

pub mod iface;
pub mod sock;

use mio::{Events, Interest, Poll, Registry, Token};
use std::io;
use std::time::{Duration, Instant};

/// Tokens per service. Service `i` owns `Token(i * TOKEN_SPAN) .. Token((i + 1) * TOKEN_SPAN)`.
pub const TOKEN_SPAN: usize = 1 << 32;
const SIGNAL_TOKEN: Token = Token(usize::MAX - 1);

/// A protocol driver running on the event loop.
pub trait Service {
    /// Short name for logs and health ("tftp", "http", "dhcp").
    fn name(&self) -> &'static str;
    /// Registers the service's listening sockets. `base` is the first token it owns.
    fn register(&mut self, registry: &Registry, base: usize) -> io::Result<()>;
    /// A readiness event for one of this service's tokens.
    fn handle_event(&mut self, registry: &Registry, event: &mio::event::Event, now: Instant);
    /// The earliest instant the service wants [`Service::handle_timeouts`] called.
    fn next_deadline(&self) -> Option<Instant>;
    /// Called when the deadline passed (may be called early or spuriously).
    fn handle_timeouts(&mut self, registry: &Registry, now: Instant);
    /// Stop accepting new work; finish what is in flight. Called once.
    fn begin_shutdown(&mut self, registry: &Registry, now: Instant);
    /// True once nothing is in flight after [`Service::begin_shutdown`].
    fn is_idle(&self) -> bool;
    /// Flush anything persistent and end what is still in flight. Called once before exit.
    fn flush(&mut self, _registry: &Registry) {}
}

/// How long in-flight work may take to finish after a stop signal.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

pub struct EventLoop {
    poll: Poll,
    events: Events,
    services: Vec<Box<dyn Service>>,
}

impl EventLoop {
    pub fn new() -> io::Result<EventLoop> {
        Ok(EventLoop { poll: Poll::new()?, events: Events::with_capacity(1024), services: Vec::new() })
    }

    pub fn registry(&self) -> &Registry {
        self.poll.registry()
    }

    /// Adds a service and registers its sockets.
    pub fn add(&mut self, mut service: Box<dyn Service>) -> io::Result<()> {
        let base = self.services.len() * TOKEN_SPAN;
        service.register(self.poll.registry(), base)?;
        self.services.push(service);
        Ok(())
    }

    /// Runs until SIGINT/SIGTERM (when `handle_signals`) and a graceful stop, or until `stop()`
    /// returns true (checked at least every 50 ms; used by in-process tests).
    pub fn run(&mut self, handle_signals: bool, mut stop: impl FnMut() -> bool) -> io::Result<()> {
        let mut signals = if handle_signals {
            let mut s = signal_hook_mio::v1_0::Signals::new([
                signal_hook::consts::SIGINT,
                signal_hook::consts::SIGTERM,
            ])?;
            self.poll.registry().register(&mut s, SIGNAL_TOKEN, Interest::READABLE)?;
            Some(s)
        } else {
            None
        };
        let mut stopping: Option<Instant> = None;
        loop {
            let now = Instant::now();
            if stopping.is_none() && stop() {
                stopping = Some(self.begin_shutdown(now));
            }
            if let Some(deadline) = stopping {
                let idle = self.services.iter().all(|s| s.is_idle());
                if idle || now >= deadline {
                    if !idle {
                        log::warn!("shutdown grace period over; abandoning in-flight work");
                    }
                    let registry = self.poll.registry();
                    for s in &mut self.services {
                        s.flush(registry);
                    }
                    log::info!("stopped");
                    return Ok(());
                }
            }
            let mut timeout = self
                .services
                .iter()
                .filter_map(|s| s.next_deadline())
                .min()
                .map(|d| d.saturating_duration_since(now));
            let cap =
                if stopping.is_some() || !handle_signals { Some(Duration::from_millis(50)) } else { None };
            if let Some(cap) = cap {
                timeout = Some(timeout.map_or(cap, |t| t.min(cap)));
            }
            match self.poll.poll(&mut self.events, timeout) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            let now = Instant::now();
            let mut signalled = false;
            let registry = self.poll.registry();
            for event in self.events.iter() {
                let token = event.token();
                if token == SIGNAL_TOKEN {
                    if let Some(s) = signals.as_mut() {
                        for sig in s.pending() {
                            log::info!("received signal {sig}; stopping gracefully");
                            signalled = true;
                        }
                    }
                } else if let Some(svc) = self.services.get_mut(token.0 / TOKEN_SPAN) {
                    svc.handle_event(registry, event, now);
                }
            }
            if signalled && stopping.is_none() {
                stopping = Some(self.begin_shutdown(now));
            }
            let registry = self.poll.registry();
            for s in &mut self.services {
                if s.next_deadline().is_some_and(|d| d <= now) {
                    s.handle_timeouts(registry, now);
                }
            }
        }
    }

    fn begin_shutdown(&mut self, now: Instant) -> Instant {
        let registry = self.poll.registry();
        for s in &mut self.services {
            s.begin_shutdown(registry, now);
        }
        now + SHUTDOWN_GRACE
    }
}
