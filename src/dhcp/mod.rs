//! DHCP server and ProxyDHCP with the PXE boot policy (issue: DHCP server and ProxyDHCP).
//!
//! Not implemented yet: `serve --dhcp server|proxy` is rejected at start-up with a clear error
//! until this module lands, so an operator never believes a DHCP service is running when it is not.
