//! `Range` parser against a random representation length: never panics, and every range it
//! returns lies inside the file with start <= end; the multipart part-length arithmetic agrees
//! with rendering.
#![no_main]

use ferroboot::http::range::{self, MAX_RANGES, RangeError, Ranges};
use ferroboot::http::response::{self, Writer};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 8 {
        return;
    }
    let (len_bytes, header) = data.split_at(8);
    let mut len = u64::from_le_bytes(len_bytes.try_into().unwrap());
    // Bias towards small files so ranges are often satisfiable.
    if len & 1 == 0 {
        len %= 4096;
    }
    let mut out = Ranges::new();
    match range::parse(header, len, &mut out) {
        Ok(()) => {
            assert!(!out.is_empty() && out.len() <= MAX_RANGES);
            for r in &out {
                assert!(r.start <= r.end && r.end < len);
                let mut buf = [0u8; 256];
                let mut w = Writer::new(&mut buf);
                response::render_part(
                    &mut w,
                    b"fb0123456789abcdef",
                    "application/efi",
                    Some((r.start, r.end)),
                    len,
                );
                let n = w.finish().unwrap();
                assert_eq!(
                    n as u64,
                    response::part_len(b"fb0123456789abcdef", "application/efi", Some((r.start, r.end)), len)
                );
            }
        }
        Err(RangeError::Invalid | RangeError::Unsatisfiable) => assert!(out.is_empty()),
    }
});
