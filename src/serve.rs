//! Wires the configured services onto one event loop.
