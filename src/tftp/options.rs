//! Option negotiation (RFC 2347 framework; blksize RFC 2348; timeout and tsize RFC 2349;
//! windowsize RFC 7440).
//!
//! The OACK carries only options the client asked for *and* we accept, in the client's order
//! (an unrequested tsize breaks EFI clients); unknown options are ignored; when nothing was
//! accepted there is no OACK at all and the transfer starts with DATA block 1.

use super::wire::{self, Mode, OP_OACK, OptionWriter, Request};
use std::time::Duration;

pub const DEFAULT_BLKSIZE: u16 = 512;
pub const MIN_BLKSIZE: u16 = 8;
pub const MAX_BLKSIZE: u16 = 65464;
/// Longest possible OACK: four options at their longest values.
pub const MAX_OACK: usize = 128;

/// What the server is willing to grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_blksize: u16,
    pub max_windowsize: u16,
    /// Largest burst (windowsize × blksize bytes) we grant. A window larger than the client's
    /// socket receive buffer (208 KiB by default on Linux) overflows it on every burst and the
    /// transfer crawls from one loss recovery to the next, so the windowsize is lowered to fit.
    pub max_window_bytes: usize,
    /// Retransmit timeout when the client does not ask for one.
    pub default_timeout: Duration,
}

/// Default for [`Limits::max_window_bytes`].
pub const DEFAULT_MAX_WINDOW_BYTES: usize = 64 << 10;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_blksize: 1468,
            max_windowsize: 64,
            max_window_bytes: DEFAULT_MAX_WINDOW_BYTES,
            default_timeout: Duration::from_secs(1),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Opt {
    Blksize,
    Tsize,
    Timeout,
    Windowsize,
}

impl Opt {
    fn name(self) -> &'static [u8] {
        match self {
            Opt::Blksize => b"blksize",
            Opt::Tsize => b"tsize",
            Opt::Timeout => b"timeout",
            Opt::Windowsize => b"windowsize",
        }
    }
    fn parse(n: &[u8]) -> Option<Opt> {
        [Opt::Blksize, Opt::Tsize, Opt::Timeout, Opt::Windowsize]
            .into_iter()
            .find(|o| n.eq_ignore_ascii_case(o.name()))
    }
}

/// The agreed transfer parameters and the OACK that announces them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    pub blksize: u16,
    pub windowsize: u16,
    pub timeout: Duration,
    /// The client negotiated `timeout` (RFC 2349): retransmit after exactly that long.
    pub timeout_negotiated: bool,
    /// The client asked for the transfer size and we told it.
    pub tsize: Option<u64>,
    /// Accepted options in request order.
    accepted: heapless::Vec<(Opt, u64), 4>,
}

impl Negotiated {
    /// True when an OACK must be sent (at least one option was accepted).
    pub fn has_oack(&self) -> bool {
        !self.accepted.is_empty()
    }

    /// Writes the OACK into `buf`; returns its length (0 when there is nothing to acknowledge).
    pub fn write_oack(&self, buf: &mut [u8]) -> usize {
        if self.accepted.is_empty() {
            return 0;
        }
        let Ok(mut w) = OptionWriter::new(buf, OP_OACK) else { return 0 };
        for &(opt, v) in &self.accepted {
            if w.option(opt.name(), v).is_err() {
                return 0;
            }
        }
        w.len()
    }

    /// Names of the accepted options, for logs.
    pub fn accepted_names(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        self.accepted.iter().map(|(o, v)| (std::str::from_utf8(o.name()).unwrap_or("?"), *v))
    }
}

/// Decides the transfer parameters for a read request of a file of `file_size` bytes.
///
/// - blksize 8..=65464 is granted, capped at `limits.max_blksize`; other values are ignored.
/// - tsize is answered with the true size when the client sent one (RFC 2349 says 0 in an RRQ);
///   declined in netascii mode, where the size on the wire is not the file size.
/// - timeout 1..=255 seconds is granted as asked (RFC 2349 does not allow a counter-offer).
/// - windowsize 1..=65535 is granted, capped at `limits.max_windowsize` and so that one window
///   holds at most `limits.max_window_bytes` (at least one block); declined in netascii
///   mode (netascii transfers are lock-step).
/// - The first occurrence of an option wins; unknown options are ignored.
pub fn negotiate(req: &Request<'_>, file_size: u64, limits: &Limits) -> Negotiated {
    let mut n = Negotiated {
        blksize: DEFAULT_BLKSIZE,
        windowsize: 1,
        timeout: limits.default_timeout,
        timeout_negotiated: false,
        tsize: None,
        accepted: heapless::Vec::new(),
    };
    let netascii = req.mode == Mode::Netascii;
    for (name, value) in req.options() {
        let Some(opt) = Opt::parse(name) else { continue };
        if n.accepted.iter().any(|(o, _)| *o == opt) {
            continue;
        }
        let Some(v) = wire::parse_decimal(value) else { continue };
        let granted = match opt {
            Opt::Blksize if (u64::from(MIN_BLKSIZE)..=u64::from(MAX_BLKSIZE)).contains(&v) => {
                let b = (v as u16).min(limits.max_blksize.max(MIN_BLKSIZE));
                n.blksize = b;
                Some(u64::from(b))
            }
            Opt::Tsize if !netascii => {
                n.tsize = Some(file_size);
                Some(file_size)
            }
            Opt::Timeout if (1..=255).contains(&v) => {
                n.timeout = Duration::from_secs(v);
                n.timeout_negotiated = true;
                Some(v)
            }
            Opt::Windowsize if !netascii && (1..=65535).contains(&v) => {
                let w = (v as u16).min(limits.max_windowsize.max(1));
                n.windowsize = w;
                Some(u64::from(w))
            }
            _ => None,
        };
        if let Some(g) = granted {
            // Capacity 4 and each option is accepted at most once, so this cannot fail.
            let _ = n.accepted.push((opt, g));
        }
    }
    // The byte cap depends on the final blksize, whatever order the options came in.
    let by_bytes = (limits.max_window_bytes / usize::from(n.blksize)).clamp(1, 65535) as u16;
    if n.windowsize > by_bytes {
        n.windowsize = by_bytes;
        for (opt, v) in n.accepted.iter_mut() {
            if *opt == Opt::Windowsize {
                *v = u64::from(by_bytes);
            }
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tftp::wire::{Packet, parse};

    fn req(b: &[u8]) -> Request<'_> {
        match parse(b).unwrap() {
            Packet::Rrq(r) => r,
            _ => panic!(),
        }
    }

    fn oack(n: &Negotiated) -> Vec<u8> {
        let mut b = [0u8; MAX_OACK];
        let len = n.write_oack(&mut b);
        b[..len].to_vec()
    }

    #[test]
    fn ipxe_request_gets_dnsmasqs_oack() {
        let r = req(include_bytes!("../../tests/fixtures/tftp/ipxe-rrq-blksize-tsize.bin"));
        let n = negotiate(&r, 74213, &Limits::default());
        assert_eq!((n.blksize, n.windowsize, n.tsize), (1432, 1, Some(74213)));
        assert_eq!(oack(&n), include_bytes!("../../tests/fixtures/tftp/dnsmasq-oack.bin"));
    }

    #[test]
    fn edk2_probe_and_retry() {
        let r = req(include_bytes!("../../tests/fixtures/tftp/edk2-rrq-tsize-blksize-windowsize.bin"));
        let n = negotiate(&r, 850528, &Limits::default());
        assert_eq!((n.blksize, n.windowsize, n.tsize), (1468, 4, Some(850528)));
        assert_eq!(oack(&n), b"\x00\x06tsize\x00850528\x00blksize\x001468\x00windowsize\x004\x00");
        let r = req(include_bytes!("../../tests/fixtures/tftp/edk2-rrq-retry-without-tsize.bin"));
        let n = negotiate(&r, 850528, &Limits::default());
        assert_eq!(n.tsize, None, "tsize must not be sent when not asked");
        assert_eq!(oack(&n), b"\x00\x06blksize\x001468\x00windowsize\x004\x00");
    }

    #[test]
    fn caps_invalid_values_unknown_and_duplicates() {
        let limits = Limits {
            max_blksize: 1024,
            max_windowsize: 8,
            max_window_bytes: DEFAULT_MAX_WINDOW_BYTES,
            default_timeout: Duration::from_secs(2),
        };
        let r = req(b"\x00\x01f\x00octet\x00BLKSIZE\x009000\x00windowsize\x0064\x00foo\x001\x00blksize\x00512\x00timeout\x000\x00");
        let n = negotiate(&r, 10, &limits);
        assert_eq!((n.blksize, n.windowsize, n.timeout), (1024, 8, Duration::from_secs(2)));
        assert_eq!(oack(&n), b"\x00\x06blksize\x001024\x00windowsize\x008\x00");
        let r = req(b"\x00\x01f\x00octet\x00blksize\x007\x00windowsize\x000\x00tsize\x00x\x00");
        let n = negotiate(&r, 10, &limits);
        assert!(!n.has_oack());
        assert_eq!(n.blksize, 512);
        let r = req(b"\x00\x01f\x00octet\x00timeout\x00255\x00blksize\x0065464\x00");
        let n = negotiate(&r, 10, &Limits { max_blksize: 65464, ..limits });
        assert_eq!(oack(&n), b"\x00\x06timeout\x00255\x00blksize\x0065464\x00");
    }

    #[test]
    fn a_window_never_holds_more_than_max_window_bytes() {
        let l = Limits { max_blksize: 65464, ..Limits::default() };
        // windowsize before blksize: the cap still uses the final blksize.
        let r = req(b"\x00\x01f\x00octet\x00windowsize\x0064\x00blksize\x008192\x00");
        let n = negotiate(&r, 10, &l);
        assert_eq!((n.blksize, n.windowsize), (8192, 8));
        assert_eq!(oack(&n), b"\x00\x06windowsize\x008\x00blksize\x008192\x00");
        let r = req(b"\x00\x01f\x00octet\x00blksize\x001468\x00windowsize\x0064\x00");
        assert_eq!(negotiate(&r, 10, &l).windowsize, 44);
        let r = req(b"\x00\x01f\x00octet\x00blksize\x0065464\x00windowsize\x004\x00");
        assert_eq!(negotiate(&r, 10, &l).windowsize, 1, "at least one block");
        let r = req(b"\x00\x01f\x00octet\x00blksize\x001468\x00windowsize\x004\x00");
        assert_eq!(negotiate(&r, 10, &l).windowsize, 4, "EDK2's request is untouched");
    }

    #[test]
    fn netascii_declines_tsize_and_windowsize() {
        let r = req(b"\x00\x01f\x00netascii\x00tsize\x000\x00windowsize\x004\x00blksize\x001000\x00");
        let n = negotiate(&r, 10, &Limits::default());
        assert_eq!((n.tsize, n.windowsize, n.blksize), (None, 1, 1000));
        assert_eq!(oack(&n), b"\x00\x06blksize\x001000\x00");
    }

    #[test]
    fn no_options_no_oack() {
        let n = negotiate(&req(b"\x00\x01f\x00octet\x00"), 10, &Limits::default());
        assert!(!n.has_oack());
        assert_eq!(n.write_oack(&mut [0u8; 16]), 0);
    }
}
