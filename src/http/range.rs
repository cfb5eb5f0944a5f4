//! `Range` header parsing (RFC 9110 section 14): `bytes=` followed by a comma-separated list of
//! `first-last`, `first-` and `-suffix` specs, resolved against the representation length.
//!
//! A header we cannot parse (bad syntax, another unit, numbers that overflow, more than
//! [`MAX_RANGES`] specs) is [`RangeError::Invalid`], and the caller ignores it and serves the whole
//! file, as RFC 9110 allows. A well-formed header none of whose specs overlaps the file is
//! [`RangeError::Unsatisfiable`]: 416 with `Content-Range: bytes */len`.

/// Ranges served in one multipart response; a longer list is ignored (whole file served), which
/// bounds the work one request can ask for.
pub const MAX_RANGES: usize = 16;

/// One satisfiable byte range, `start..=end`, both within the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    pub start: u64,
    /// Inclusive.
    pub end: u64,
}

impl ByteRange {
    /// Number of bytes in the range (never zero).
    pub fn len(&self) -> u64 {
        self.end - self.start + 1
    }

    /// Always false: a satisfiable range holds at least one byte.
    pub fn is_empty(&self) -> bool {
        false
    }
}

/// The satisfiable ranges of a request, in the order asked.
pub type Ranges = heapless::Vec<ByteRange, MAX_RANGES>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeError {
    /// Not a byte-range set we understand: ignore the header.
    Invalid,
    /// Well-formed, but no spec overlaps the file: 416.
    Unsatisfiable,
}

/// Parses `header` (the `Range` field value) for a representation of `len` bytes into `out`
/// (cleared first). On `Ok`, `out` holds at least one range; on `Err` it is empty.
pub fn parse(header: &[u8], len: u64, out: &mut Ranges) -> Result<(), RangeError> {
    out.clear();
    let r = parse_into(header, len, out);
    if r.is_err() {
        out.clear();
    }
    r
}

fn parse_into(header: &[u8], len: u64, out: &mut Ranges) -> Result<(), RangeError> {
    let header = trim(header);
    let Some(eq) = header.iter().position(|&b| b == b'=') else {
        return Err(RangeError::Invalid);
    };
    if !trim(&header[..eq]).eq_ignore_ascii_case(b"bytes") {
        return Err(RangeError::Invalid);
    }
    let mut specs = 0usize;
    for spec in header[eq + 1..].split(|&b| b == b',') {
        let spec = trim(spec);
        if spec.is_empty() {
            // The list syntax allows empty elements ("a, , b").
            continue;
        }
        specs += 1;
        if specs > MAX_RANGES {
            out.clear();
            return Err(RangeError::Invalid);
        }
        let Some(dash) = spec.iter().position(|&b| b == b'-') else {
            return Err(RangeError::Invalid);
        };
        let (first, last) = (trim(&spec[..dash]), trim(&spec[dash + 1..]));
        let range = if first.is_empty() {
            // Suffix: the last `n` bytes.
            let n = number(last)?;
            if n == 0 || len == 0 {
                None
            } else {
                Some(ByteRange { start: len.saturating_sub(n), end: len - 1 })
            }
        } else {
            let start = number(first)?;
            let end = if last.is_empty() { None } else { Some(number(last)?) };
            if end.is_some_and(|e| e < start) {
                return Err(RangeError::Invalid);
            }
            if start >= len {
                None
            } else {
                Some(ByteRange { start, end: end.map_or(len - 1, |e| e.min(len - 1)) })
            }
        };
        if let Some(r) = range {
            // Capacity equals MAX_RANGES, checked above.
            let _ = out.push(r);
        }
    }
    if specs == 0 {
        return Err(RangeError::Invalid);
    }
    if out.is_empty() { Err(RangeError::Unsatisfiable) } else { Ok(()) }
}

/// A non-empty run of ASCII digits that fits in a u64.
fn number(s: &[u8]) -> Result<u64, RangeError> {
    if s.is_empty() {
        return Err(RangeError::Invalid);
    }
    let mut n: u64 = 0;
    for &b in s {
        if !b.is_ascii_digit() {
            return Err(RangeError::Invalid);
        }
        n = n.checked_mul(10).and_then(|n| n.checked_add(u64::from(b - b'0'))).ok_or(RangeError::Invalid)?;
    }
    Ok(n)
}

fn trim(s: &[u8]) -> &[u8] {
    super::request::trim(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ranges(h: &str, len: u64) -> Result<Vec<(u64, u64)>, RangeError> {
        let mut out = Ranges::new();
        parse(h.as_bytes(), len, &mut out).map(|()| out.iter().map(|r| (r.start, r.end)).collect())
    }

    #[test]
    fn single_ranges() {
        assert_eq!(ranges("bytes=0-499", 1000), Ok(vec![(0, 499)]));
        assert_eq!(ranges("bytes=500-999", 1000), Ok(vec![(500, 999)]));
        assert_eq!(ranges("bytes=0-0", 1000), Ok(vec![(0, 0)]));
        // Last position past the end is clamped.
        assert_eq!(ranges("bytes=900-5000", 1000), Ok(vec![(900, 999)]));
    }

    #[test]
    fn open_ended_and_suffix() {
        assert_eq!(ranges("bytes=9500-", 10000), Ok(vec![(9500, 9999)]));
        assert_eq!(ranges("bytes=-500", 10000), Ok(vec![(9500, 9999)]));
        // A suffix longer than the file is the whole file.
        assert_eq!(ranges("bytes=-20000", 10000), Ok(vec![(0, 9999)]));
        assert_eq!(ranges("bytes=0-", 1), Ok(vec![(0, 0)]));
    }

    #[test]
    fn several_ranges_and_whitespace() {
        assert_eq!(ranges("bytes=0-0, -1", 10), Ok(vec![(0, 0), (9, 9)]));
        assert_eq!(ranges(" Bytes = 1-2 ,, 4-5 ", 10), Ok(vec![(1, 2), (4, 5)]));
        // Unsatisfiable specs are dropped when another is satisfiable.
        assert_eq!(ranges("bytes=50-60,1-2", 10), Ok(vec![(1, 2)]));
    }

    #[test]
    fn unsatisfiable() {
        assert_eq!(ranges("bytes=1000-", 1000), Err(RangeError::Unsatisfiable));
        assert_eq!(ranges("bytes=1000-2000", 1000), Err(RangeError::Unsatisfiable));
        assert_eq!(ranges("bytes=-0", 1000), Err(RangeError::Unsatisfiable));
        assert_eq!(ranges("bytes=0-", 0), Err(RangeError::Unsatisfiable));
        assert_eq!(ranges("bytes=-5", 0), Err(RangeError::Unsatisfiable));
    }

    #[test]
    fn errors_leave_no_ranges() {
        // Found by the http_range fuzz target: a valid spec followed by garbage.
        let mut out = Ranges::new();
        assert_eq!(parse(b"bytes=0-1,x", 10, &mut out), Err(RangeError::Invalid));
        assert!(out.is_empty());
    }

    #[test]
    fn invalid() {
        for h in [
            "",
            "bytes",
            "bytes=",
            "bytes=,",
            "items=0-1",
            "bytes=a-b",
            "bytes=5-1",
            "bytes=1",
            "bytes=-",
            "bytes=--1",
            "bytes=1-2-3",
            "bytes=0x1-2",
            "bytes=+1-2",
            "bytes=1-+2",
        ] {
            assert_eq!(ranges(h, 1000), Err(RangeError::Invalid), "{h:?}");
        }
    }

    #[test]
    fn overflow_is_invalid() {
        assert_eq!(ranges("bytes=18446744073709551615-", u64::MAX), Err(RangeError::Unsatisfiable));
        assert_eq!(ranges("bytes=18446744073709551614-", u64::MAX), Ok(vec![(u64::MAX - 1, u64::MAX - 1)]));
        assert_eq!(ranges("bytes=18446744073709551616-", u64::MAX), Err(RangeError::Invalid));
        assert_eq!(ranges("bytes=-99999999999999999999", 10), Err(RangeError::Invalid));
        assert_eq!(ranges("bytes=0-99999999999999999999", 10), Err(RangeError::Invalid));
        // The largest number is fine and clamps.
        assert_eq!(ranges("bytes=0-18446744073709551615", 10), Ok(vec![(0, 9)]));
        assert_eq!(ranges("bytes=-18446744073709551615", 10), Ok(vec![(0, 9)]));
    }

    #[test]
    fn too_many_ranges_are_ignored() {
        let mut h = String::from("bytes=");
        for i in 0..MAX_RANGES {
            h.push_str(&format!("{i}-{i},"));
        }
        assert_eq!(ranges(&h, 100).map(|v| v.len()), Ok(MAX_RANGES));
        h.push_str("99-99");
        assert_eq!(ranges(&h, 100), Err(RangeError::Invalid));
    }
}
