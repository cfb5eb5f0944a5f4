//! DHCP server and ProxyDHCP with the PXE boot policy (issue: DHCP server and ProxyDHCP).
//!
//! Pure code, no sockets:
//! - [`wire`]: zero-copy [`wire::Packet`] view of a BOOTP/DHCP message, errors, message types.
//! - [`options`]: option codes, the option iterator (with overload), encapsulated sub-options,
//!   [`options::OptionWriter`] and reply sizing.
//! - [`request`]: [`request::Request`], the borrowed summary of a client message.
//! - [`reply`]: [`reply::Reply`], an OFFER/ACK/NAK/ProxyDHCP offer emitted into a caller buffer.
//! - [`pxe`]: the boot policy, `decide(&ClientInfo, &PolicyConfig, &MacHistory) -> Decision`.
//! - [`server`]: the sans-IO server: pool, reservations, the RFC 2131 state machine, ProxyDHCP.
//! - [`leases`]: the append-only, CRC-checked lease journal.
//!
//! And the one part that touches sockets:
//! - [`driver`]: the mio [`crate::net::Service`] on UDP 67 (and 4011 in proxy mode).

pub mod driver;
pub mod leases;
pub mod options;
pub mod pxe;
pub mod reply;
pub mod request;
pub mod server;
pub mod wire;
