//! ferroboot: a network-boot server (DHCP/ProxyDHCP, TFTP, HTTP, iPXE) in one binary.
//!
//! Layout (see README "Architecture"):
//! - [`config`]: raw TOML (serde) -> validated, typed [`config::Config`].
//! - [`net`]: the only code that touches sockets: the mio event loop, timers, socket setup,
//!   interface discovery.
//! - [`tftp`]: wire format, option negotiation, the sans-IO session, and its driver.
//! - [`dhcp`], [`http`], [`ipxe`], [`orchestrate`]: the other protocols and the node lifecycle.
//! - [`journal`]: the crash-safe append-only record file (DHCP leases, node lifecycle).
//! - [`serve`]: wires the configured services onto one event loop.

pub mod cli;
pub mod config;
pub mod dhcp;
pub mod http;
pub mod ipxe;
pub mod journal;
pub mod lifecycle;
pub mod loadgen;
pub mod logging;
pub mod net;
pub mod orchestrate;
pub mod serve;
pub mod status;
pub mod tftp;

#[cfg(test)]
mod test_alloc;
