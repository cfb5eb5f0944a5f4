//! DHCP server and ProxyDHCP with the PXE boot policy (issue: DHCP server and ProxyDHCP).
//!
//! Pure code, no sockets (the driver lives in `net` and calls into these):
//! - [`wire`]: zero-copy [`wire::Packet`] view of a BOOTP/DHCP message, errors, message types.
//! - [`options`]: option codes, the option iterator (with overload), encapsulated sub-options,
//!   [`options::OptionWriter`] and reply sizing.
//! - [`request`]: [`request::Request`], the borrowed summary of a client message.
//! - [`reply`]: [`reply::Reply`], an OFFER/ACK/NAK/ProxyDHCP offer emitted into a caller buffer.
//! - [`pxe`]: the boot policy, `decide(&ClientInfo, &PolicyConfig, &MacHistory) -> Decision`.
//!
//! `serve --dhcp server|proxy` is still rejected at start-up until the driver lands, so an
//! operator never believes a DHCP service is running when it is not.

pub mod options;
pub mod pxe;
pub mod reply;
pub mod request;
pub mod wire;
