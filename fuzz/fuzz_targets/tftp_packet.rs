//! Any datagram: parse it; if it is a request, negotiate options and build the OACK.
#![no_main]

use ferroboot::tftp::options::{Limits, MAX_OACK, negotiate};
use ferroboot::tftp::wire::{Packet, parse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = parse(data) {
        match p {
            Packet::Rrq(r) | Packet::Wrq(r) => {
                for (n, v) in r.options() {
                    assert!(!n.contains(&0) && !v.contains(&0));
                }
                let neg = negotiate(&r, data.len() as u64 * 1000, &Limits::default());
                assert!((8..=65464).contains(&neg.blksize));
                assert!(neg.windowsize >= 1);
                let mut buf = [0u8; MAX_OACK];
                let n = neg.write_oack(&mut buf);
                if neg.has_oack() {
                    assert!(matches!(parse(&buf[..n]), Ok(Packet::Oack { .. })));
                }
            }
            Packet::Oack { options } => {
                let _ = options.count();
            }
            _ => {}
        }
    }
});
