//! Request head parser + router decision + path normalization on arbitrary bytes: never panics,
//! and what it returns is consistent (head length within the input, normalized paths free of
//! `..`, NUL and empty components).
#![no_main]

use std::rc::Rc;

use ferroboot::http::fs;
use ferroboot::http::request::{self, Parse};
use ferroboot::http::routes::{Decision, Router, split_target};
use ferroboot::http::{range, response};
use ferroboot::status::Status;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    thread_local! {
        static ROUTER: Router = Router::with_builtin(&Rc::new(Status::default()));
    }
    let limit = 8192;
    let mut at = 0;
    // Walk pipelined requests like the driver does.
    while at < data.len() {
        let req = match request::parse(&data[at..], limit) {
            Ok(Parse::Complete(r)) => r,
            Ok(Parse::Partial) => break,
            Err(e) => {
                assert!(matches!(e.status(), 400 | 414 | 431 | 505));
                break;
            }
        };
        assert!(req.head_len > 0 && req.head_len <= data.len() - at && req.head_len <= limit);
        // Only a body we cannot delimit (Transfer-Encoding) forbids reuse; a Content-Length
        // body is read and the connection kept.
        if req.transfer_encoding {
            assert!(!req.keep_alive && req.has_body);
        }
        assert_eq!(req.has_body, req.transfer_encoding || req.content_length > 0);
        let (path, _query) = split_target(req.target);
        let decision = ROUTER.with(|r| r.decide(path));
        if let Decision::Static(rel) = decision {
            let mut out = [0u8; fs::MAX_PATH + 1];
            if let Ok(n) = fs::normalize(rel, &mut out) {
                let p = &out[..n];
                assert!(n > 0 && out[n] == 0 && !p.contains(&0));
                assert!(!p.starts_with(b"/") && !p.ends_with(b"/"));
                for comp in p.split(|&b| b == b'/') {
                    assert!(!comp.is_empty() && comp != b"." && comp != b"..");
                }
            }
        }
        if let Some(r) = req.range {
            let mut ranges = range::Ranges::new();
            let _ = range::parse(r, 1 << 20, &mut ranges);
        }
        for d in [req.if_modified_since, req.if_range].into_iter().flatten() {
            if let Some(t) = response::parse_http_date(d) {
                let mut buf = [0u8; 29];
                response::fmt_http_date(t, &mut buf);
                assert_eq!(response::parse_http_date(&buf), Some(t));
            }
        }
        at += req.head_len;
    }
});
