//! TFTP: a read-only boot server (RFC 1350, 2347, 2348, 2349, 7440).
//!
//! - [`wire`]: packet views and emitters.
//! - [`options`]: option negotiation.
//! - [`session`]: one transfer, sans-IO, tested on a virtual clock.
//! - [`fs`]: path resolution under the root and the shared open-file table.
//! - [`driver`]: the mio service (port 69 plus one ephemeral socket per session).

pub mod driver;
pub mod fs;
pub mod options;
pub mod session;
pub mod wire;
