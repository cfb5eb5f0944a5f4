//! TFTP: a read-only boot server (RFC 1350, 2347, 2348, 2349, 7440).
