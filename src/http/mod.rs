//! HTTP boot server: static files under `/boot/` with `sendfile(2)`, ranges and conditional
//! requests, plus dynamic routes (`/health`, `/metrics`, and whatever later issues register).
//!
//! - [`request`]: request-head push parser (httparse, fixed header storage).
//! - [`range`]: `Range` header parser.
//! - [`response`]: response heads rendered into fixed buffers, HTTP dates, content types.
//! - [`fs`]: URL path -> file below the root (percent-decoding, traversal and symlink checks).
//! - [`routes`]: the router and the built-in dynamic routes.
//! - [`driver`]: [`HttpService`], the connection state machine on the mio loop.

pub mod driver;
pub mod fs;
pub mod range;
pub mod request;
pub mod response;
pub mod routes;

pub use driver::{HttpLimits, HttpService};
pub use routes::{Match, Reply, Route, RouteRequest, Router};
