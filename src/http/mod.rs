//! HTTP boot server (issue: HTTP boot server). Not implemented yet; `serve` reports the HTTP
//! service as "disabled" until it lands.
