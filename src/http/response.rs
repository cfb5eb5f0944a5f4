//! Response heads rendered into a caller-owned buffer: a bounded [`Writer`] (numbers formatted by
//! hand, no `format!`), HTTP dates, status reasons, content types, and [`Head`], the one place
//! that decides which header fields a response carries.
//!
//! Firmware rules (edk2, pixiecore #10, smee #229): every response carries `Content-Length`; we
//! never redirect; no header is sent with an empty value.

/// The buffer was too small for what was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overflow;

/// Appends bytes to a fixed buffer; remembers an overflow instead of panicking.
pub struct Writer<'a> {
    buf: &'a mut [u8],
    len: usize,
    overflow: bool,
}

impl<'a> Writer<'a> {
    pub fn new(buf: &'a mut [u8]) -> Writer<'a> {
        Writer { buf, len: 0, overflow: false }
    }

    pub fn bytes(&mut self, b: &[u8]) -> &mut Self {
        match self.buf.get_mut(self.len..self.len + b.len()) {
            Some(dst) if !self.overflow => {
                dst.copy_from_slice(b);
                self.len += b.len();
            }
            _ => self.overflow = true,
        }
        self
    }

    pub fn str(&mut self, s: &str) -> &mut Self {
        self.bytes(s.as_bytes())
    }

    /// Decimal.
    pub fn u64(&mut self, n: u64) -> &mut Self {
        let mut tmp = [0u8; 20];
        let s = fmt_u64(n, &mut tmp);
        self.bytes(s)
    }

    /// Lowercase hexadecimal.
    pub fn hex(&mut self, mut n: u64) -> &mut Self {
        let mut tmp = [0u8; 16];
        let mut i = tmp.len();
        loop {
            i -= 1;
            tmp[i] = b"0123456789abcdef"[(n & 15) as usize];
            n >>= 4;
            if n == 0 {
                break;
            }
        }
        self.bytes(&tmp[i..])
    }

    /// An IMF-fixdate for `secs` since the Unix epoch.
    pub fn http_date(&mut self, secs: u64) -> &mut Self {
        let mut tmp = [0u8; 29];
        fmt_http_date(secs, &mut tmp);
        self.bytes(&tmp)
    }

    /// One header line. Empty values are skipped (firmware rule), so callers need not check.
    pub fn header(&mut self, name: &str, value: &[u8]) -> &mut Self {
        if !value.is_empty() {
            self.str(name).str(": ").bytes(value).str("\r\n");
        }
        self
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes written, or `Overflow` if anything did not fit.
    pub fn finish(&self) -> Result<usize, Overflow> {
        if self.overflow { Err(Overflow) } else { Ok(self.len) }
    }
}

/// Formats `n` in decimal into `tmp`, returning the digits.
pub fn fmt_u64(mut n: u64, tmp: &mut [u8; 20]) -> &[u8] {
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    &tmp[i..]
}

/// Number of decimal digits of `n`.
pub fn dec_len(n: u64) -> usize {
    let mut tmp = [0u8; 20];
    fmt_u64(n, &mut tmp).len()
}

const DAYS: [&[u8; 3]; 7] = [b"Thu", b"Fri", b"Sat", b"Sun", b"Mon", b"Tue", b"Wed"];
const MONTHS: [&[u8; 3]; 12] =
    [b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec"];

/// (year, month 1..=12, day 1..=31) of a day count since 1970-01-01 (Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Writes `Sun, 06 Nov 1994 08:49:37 GMT` for `secs` since the epoch. Years past 9999 are
/// clamped to 9999-12-31 23:59:59 so the field keeps its fixed width.
pub fn fmt_http_date(secs: u64, out: &mut [u8; 29]) {
    const MAX: u64 = 253_402_300_799; // 9999-12-31T23:59:59Z
    let secs = secs.min(MAX);
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    let two = |n: u64| [b'0' + (n / 10) as u8, b'0' + (n % 10) as u8];
    out[0..3].copy_from_slice(DAYS[(days % 7) as usize]);
    out[3..5].copy_from_slice(b", ");
    out[5..7].copy_from_slice(&two(u64::from(d)));
    out[7] = b' ';
    out[8..11].copy_from_slice(MONTHS[(m - 1) as usize]);
    out[11] = b' ';
    let y = y as u64;
    out[12..14].copy_from_slice(&two(y / 100));
    out[14..16].copy_from_slice(&two(y % 100));
    out[16] = b' ';
    out[17..19].copy_from_slice(&two(rem / 3600));
    out[19] = b':';
    out[20..22].copy_from_slice(&two(rem / 60 % 60));
    out[22] = b':';
    out[23..25].copy_from_slice(&two(rem % 60));
    out[25..29].copy_from_slice(b" GMT");
}

/// Parses an IMF-fixdate (the only format senders may generate). Obsolete formats give `None`,
/// which callers treat as "condition not met".
pub fn parse_http_date(s: &[u8]) -> Option<u64> {
    let s = super::request::trim(s);
    if s.len() != 29 || &s[3..5] != b", " || &s[25..] != b" GMT" {
        return None;
    }
    if !DAYS.iter().any(|d| &s[0..3] == *d) || s[7] != b' ' || s[11] != b' ' || s[16] != b' ' {
        return None;
    }
    if s[19] != b':' || s[22] != b':' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u64> {
        s[r].iter().try_fold(0u64, |n, &b| b.is_ascii_digit().then(|| n * 10 + u64::from(b - b'0')))
    };
    let day = num(5..7)? as u32;
    let month = MONTHS.iter().position(|m| &s[8..11] == *m)? as u32 + 1;
    let year = num(12..16)?;
    let (h, mi, sec) = (num(17..19)?, num(20..22)?, num(23..25)?);
    if year < 1970 || !(1..=31).contains(&day) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let days = days_from_civil(year as i64, month, day);
    Some(days as u64 * 86_400 + h * 3600 + mi * 60 + sec)
}

/// Reason phrase for the codes this server sends.
pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        206 => "Partial Content",
        304 => "Not Modified",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Content Too Large",
        414 => "URI Too Long",
        416 => "Range Not Satisfiable",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

/// Content type by file name extension. Boot binaries are `application/octet-stream` except EFI
/// executables (`application/efi`, which edk2's HTTP boot recognises); iPXE scripts are text.
pub fn content_type(path: &[u8]) -> &'static str {
    let name = path.rsplit(|&b| b == b'/').next().unwrap_or(path);
    let Some(dot) = name.iter().rposition(|&b| b == b'.') else {
        return "application/octet-stream";
    };
    let ext = &name[dot + 1..];
    const TABLE: &[(&str, &str)] = &[
        ("efi", "application/efi"),
        ("ipxe", "text/plain; charset=utf-8"),
        ("txt", "text/plain; charset=utf-8"),
        ("cfg", "text/plain; charset=utf-8"),
        ("conf", "text/plain; charset=utf-8"),
        ("json", "application/json"),
        ("html", "text/html; charset=utf-8"),
        ("iso", "application/x-iso9660-image"),
        ("gz", "application/gzip"),
        ("xz", "application/x-xz"),
        ("zst", "application/zstd"),
        ("sig", "application/pgp-signature"),
        ("asc", "application/pgp-signature"),
    ];
    TABLE
        .iter()
        .find(|(e, _)| ext.eq_ignore_ascii_case(e.as_bytes()))
        .map_or("application/octet-stream", |(_, t)| t)
}

/// What `Content-Range` says, if anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ContentRange {
    #[default]
    None,
    /// `bytes start-end/len`
    Bytes { start: u64, end: u64, len: u64 },
    /// `bytes */len` (416)
    Unsatisfied { len: u64 },
}

/// The fields of one response head.
#[derive(Debug, Clone, Copy)]
pub struct Head<'a> {
    pub status: u16,
    pub content_type: &'a str,
    /// Always sent (also for HEAD and 304, where it is the length a GET would get).
    pub content_length: u64,
    pub keep_alive: bool,
    /// Seconds since the epoch, for `Date`.
    pub date: u64,
    pub last_modified: Option<u64>,
    /// With its quotes.
    pub etag: Option<&'a [u8]>,
    pub accept_ranges: bool,
    pub content_range: ContentRange,
    /// `Allow` (405): the methods the target takes.
    pub allow: Option<&'a str>,
    /// `Cache-Control`, for dynamic responses.
    pub cache_control: Option<&'a str>,
    /// Multipart boundary: the content type becomes `multipart/byteranges; boundary=...`.
    pub boundary: Option<&'a [u8]>,
}

impl<'a> Head<'a> {
    pub fn new(status: u16, date: u64) -> Head<'a> {
        Head {
            status,
            content_type: "text/plain; charset=utf-8",
            content_length: 0,
            keep_alive: false,
            date,
            last_modified: None,
            etag: None,
            accept_ranges: false,
            content_range: ContentRange::None,
            allow: None,
            cache_control: None,
            boundary: None,
        }
    }

    /// Writes the head, ending with the blank line. Returns its length.
    pub fn render(&self, buf: &mut [u8]) -> Result<usize, Overflow> {
        let mut w = Writer::new(buf);
        let mut tmp = [0u8; 20];
        w.str("HTTP/1.1 ").u64(u64::from(self.status)).str(" ").str(reason(self.status)).str("\r\n");
        w.str("Server: ferroboot\r\n");
        w.str("Date: ").http_date(self.date).str("\r\n");
        if let Some(b) = self.boundary {
            w.str("Content-Type: multipart/byteranges; boundary=").bytes(b).str("\r\n");
        } else {
            w.header("Content-Type", self.content_type.as_bytes());
        }
        w.header("Content-Length", fmt_u64(self.content_length, &mut tmp));
        if let Some(t) = self.last_modified {
            w.str("Last-Modified: ").http_date(t).str("\r\n");
        }
        if let Some(e) = self.etag {
            w.header("ETag", e);
        }
        if self.accept_ranges {
            w.str("Accept-Ranges: bytes\r\n");
        }
        match self.content_range {
            ContentRange::None => {}
            ContentRange::Bytes { start, end, len } => {
                w.str("Content-Range: bytes ").u64(start).str("-").u64(end).str("/").u64(len).str("\r\n");
            }
            ContentRange::Unsatisfied { len } => {
                w.str("Content-Range: bytes */").u64(len).str("\r\n");
            }
        }
        if let Some(a) = self.allow {
            w.header("Allow", a.as_bytes());
        }
        if let Some(c) = self.cache_control {
            w.header("Cache-Control", c.as_bytes());
        }
        w.str(if self.keep_alive { "Connection: keep-alive\r\n" } else { "Connection: close\r\n" });
        w.str("\r\n");
        w.finish()
    }
}

/// The header of one part of a `multipart/byteranges` body (`\r\n--B\r\n...\r\n\r\n`), or with
/// `range: None` the closing delimiter (`\r\n--B--\r\n`).
pub fn render_part(
    w: &mut Writer<'_>,
    boundary: &[u8],
    content_type: &str,
    range: Option<(u64, u64)>,
    len: u64,
) {
    w.str("\r\n--").bytes(boundary);
    match range {
        Some((start, end)) => {
            w.str("\r\nContent-Type: ").str(content_type).str("\r\nContent-Range: bytes ");
            w.u64(start).str("-").u64(end).str("/").u64(len).str("\r\n\r\n");
        }
        None => {
            w.str("--\r\n");
        }
    }
}

/// Length of what [`render_part`] writes, computed without a buffer.
pub fn part_len(boundary: &[u8], content_type: &str, range: Option<(u64, u64)>, len: u64) -> u64 {
    let base = 4 + boundary.len();
    let n = match range {
        Some((s, e)) => {
            base + "\r\nContent-Type: ".len()
                + content_type.len()
                + "\r\nContent-Range: bytes ".len()
                + dec_len(s)
                + 1
                + dec_len(e)
                + 1
                + dec_len(len)
                + 4
        }
        None => base + 4,
    };
    n as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip() {
        let mut out = [0u8; 29];
        fmt_http_date(784_111_777, &mut out);
        assert_eq!(&out, b"Sun, 06 Nov 1994 08:49:37 GMT");
        fmt_http_date(0, &mut out);
        assert_eq!(&out, b"Thu, 01 Jan 1970 00:00:00 GMT");
        fmt_http_date(951_782_400, &mut out); // leap day
        assert_eq!(&out, b"Tue, 29 Feb 2000 00:00:00 GMT");
        fmt_http_date(u64::MAX, &mut out);
        assert_eq!(&out, b"Fri, 31 Dec 9999 23:59:59 GMT");
        for t in [0u64, 784_111_777, 951_782_400, 1_700_000_000, 4_102_444_800, 253_402_300_799] {
            fmt_http_date(t, &mut out);
            assert_eq!(parse_http_date(&out), Some(t), "{}", String::from_utf8_lossy(&out));
        }
        assert_eq!(parse_http_date(b"Sunday, 06-Nov-94 08:49:37 GMT"), None);
        assert_eq!(parse_http_date(b"Sun, 06 Nov 1994 08:49:37 UTC"), None);
        assert_eq!(parse_http_date(b"Sun, 06 Xyz 1994 08:49:37 GMT"), None);
        assert_eq!(parse_http_date(b"Sun, 06 Nov 1994 25:49:37 GMT"), None);
        assert_eq!(parse_http_date(b"Sun, 0a Nov 1994 08:49:37 GMT"), None);
    }

    #[test]
    fn numbers() {
        let mut buf = [0u8; 64];
        let mut w = Writer::new(&mut buf);
        w.u64(0).str(" ").u64(u64::MAX).str(" ").hex(0).str(" ").hex(0xdead_beef);
        let n = w.finish().unwrap();
        assert_eq!(&buf[..n], b"0 18446744073709551615 0 deadbeef");
        assert_eq!(dec_len(0), 1);
        assert_eq!(dec_len(10), 2);
        assert_eq!(dec_len(u64::MAX), 20);
    }

    #[test]
    fn writer_overflow_is_reported_not_panicked() {
        let mut buf = [0u8; 4];
        let mut w = Writer::new(&mut buf);
        w.str("abc").str("de").str("f");
        assert_eq!(w.finish(), Err(Overflow));
        assert_eq!(w.len(), 3);
    }

    #[test]
    fn renders_a_static_head() {
        let mut buf = [0xa5u8; 512];
        let head = Head {
            content_type: "application/efi",
            content_length: 1234,
            keep_alive: true,
            last_modified: Some(784_111_777),
            etag: Some(b"\"1-2-3\""),
            accept_ranges: true,
            content_range: ContentRange::Bytes { start: 0, end: 1233, len: 5000 },
            ..Head::new(206, 784_111_777)
        };
        let n = head.render(&mut buf).unwrap();
        let text = std::str::from_utf8(&buf[..n]).unwrap();
        assert_eq!(
            text,
            "HTTP/1.1 206 Partial Content\r\nServer: ferroboot\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n\
             Content-Type: application/efi\r\nContent-Length: 1234\r\n\
             Last-Modified: Sun, 06 Nov 1994 08:49:37 GMT\r\nETag: \"1-2-3\"\r\nAccept-Ranges: bytes\r\n\
             Content-Range: bytes 0-1233/5000\r\nConnection: keep-alive\r\n\r\n"
        );
        assert_eq!(buf[n], 0xa5);
    }

    #[test]
    fn renders_error_heads_with_length_and_no_empty_values() {
        let mut buf = [0u8; 512];
        let head = Head {
            content_length: 0,
            allow: Some("GET, HEAD"),
            content_type: "",
            etag: Some(b""),
            content_range: ContentRange::Unsatisfied { len: 77 },
            ..Head::new(405, 0)
        };
        let n = head.render(&mut buf).unwrap();
        let text = std::str::from_utf8(&buf[..n]).unwrap();
        assert!(text.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"), "{text}");
        assert!(text.contains("\r\nContent-Length: 0\r\n"));
        assert!(text.contains("\r\nAllow: GET, HEAD\r\n"));
        assert!(text.contains("\r\nContent-Range: bytes */77\r\n"));
        assert!(text.contains("\r\nConnection: close\r\n"));
        assert!(!text.contains("Content-Type"), "empty value must be skipped");
        assert!(!text.contains("ETag"));
        for line in text.split("\r\n").skip(1).filter(|l| !l.is_empty()) {
            let (_, v) = line.split_once(": ").expect(line);
            assert!(!v.trim().is_empty(), "{line}");
        }
        assert_eq!(head.render(&mut [0u8; 40]), Err(Overflow));
    }

    #[test]
    fn part_lengths_match_rendering() {
        for range in [Some((0, 0)), Some((123, 456_789)), None] {
            let mut buf = [0u8; 256];
            let mut w = Writer::new(&mut buf);
            render_part(&mut w, b"BOUNDARY0001", "application/efi", range, 1_000_000);
            assert_eq!(
                w.finish().unwrap() as u64,
                part_len(b"BOUNDARY0001", "application/efi", range, 1_000_000)
            );
        }
    }

    #[test]
    fn content_types() {
        assert_eq!(content_type(b"ipxe/snp.efi"), "application/efi");
        assert_eq!(content_type(b"x/UNDIONLY.KPXE"), "application/octet-stream");
        assert_eq!(content_type(b"boot.ipxe"), "text/plain; charset=utf-8");
        assert_eq!(content_type(b"nixos/control-plane/bzImage"), "application/octet-stream");
        assert_eq!(content_type(b"a.d/initrd"), "application/octet-stream");
        assert_eq!(content_type(b"image.iso"), "application/x-iso9660-image");
    }
}
