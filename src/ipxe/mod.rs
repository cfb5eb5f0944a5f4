//! iPXE: the scripts machines boot by, the inventory they are looked up in, and the iPXE builds
//! served from outside the root.
//!
//! - [`template`]: `{hostname}`-style kernel command-line templates (validated at config load).
//! - [`query`]: what iPXE puts in the per-machine script URL, decoded without allocating.
//! - [`inventory`]: nodes by MAC / UUID / hostname, profiles prepared for rendering.
//! - [`script`]: the scripts, as pure functions writing into a caller buffer (golden-tested).
//! - [`route`]: the HTTP routes (`/boot.ipxe`, `/boot/ipxe/boot.ipxe`, `/ipxe/node`).
//! - [`files`]: iPXE binaries (and `ferroboot boot` images) served by TFTP and HTTP.
//! - [`boot_cmd`]: `ferroboot boot`, the one-line mode.

pub mod boot_cmd;
pub mod files;
pub mod inventory;
pub mod query;
pub mod route;
pub mod script;
pub mod template;

pub use inventory::Inventory;
