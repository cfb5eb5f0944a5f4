//! Request head parsing: a push parser over the connection's receive buffer.
//!
//! [`parse`] wraps `httparse` with fixed header storage (`[EMPTY_HEADER; MAX_HEADERS]` on the
//! stack); the returned [`Request`] borrows the input, so parsing never allocates. `Partial` means
//! "read more"; the caller enforces its buffer size through `limit`.

/// Header slots per request. iPXE sends three, curl four, browsers about fifteen.
pub const MAX_HEADERS: usize = 32;

/// The request methods this server tells apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Method {
    #[default]
    Get,
    Head,
    /// Only routes that take it (the JSON API) get it; elsewhere 405.
    Post,
    /// Anything else: answered with 405 and `Allow: GET, HEAD`.
    Other,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Other => "OTHER",
        }
    }
}

/// A parsed request head. Every slice borrows the receive buffer.
#[derive(Debug, Clone, Copy, Default)]
pub struct Request<'a> {
    pub method: Method,
    /// The request target as sent (origin-form path and query, or absolute-form).
    pub target: &'a [u8],
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor_version: u8,
    /// Whether the client wants the connection kept open after the response.
    pub keep_alive: bool,
    /// The request announces a body (`Content-Length` > 0 or `Transfer-Encoding`).
    pub has_body: bool,
    /// `Content-Length` (0 when absent).
    pub content_length: u64,
    /// A `Transfer-Encoding` header was sent (we do not decode chunked bodies: 411, then close).
    pub transfer_encoding: bool,
    /// `Expect: 100-continue`.
    pub expect_continue: bool,
    pub host: Option<&'a [u8]>,
    pub user_agent: Option<&'a [u8]>,
    pub range: Option<&'a [u8]>,
    pub if_range: Option<&'a [u8]>,
    pub if_none_match: Option<&'a [u8]>,
    pub if_modified_since: Option<&'a [u8]>,
    /// Bytes of input the head occupied (request line, headers, final blank line).
    pub head_len: usize,
}

/// Outcome of feeding the buffered input to the parser.
#[derive(Debug, Clone, Copy)]
pub enum Parse<'a> {
    /// The head is not complete yet: read more.
    Partial,
    Complete(Request<'a>),
}

/// Why a request head was refused. Each maps to a status code; the connection is closed after.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestError {
    /// Syntax error in the request line or a header.
    Malformed,
    /// The request line alone does not fit the buffer.
    UriTooLong,
    /// The head does not fit the buffer.
    HeadersTooLarge,
    /// More than [`MAX_HEADERS`] header fields.
    TooManyHeaders,
    /// Not HTTP/1.0 or HTTP/1.1.
    Version,
}

impl RequestError {
    /// The status code to answer with.
    pub fn status(self) -> u16 {
        match self {
            RequestError::Malformed => 400,
            RequestError::UriTooLong => 414,
            RequestError::HeadersTooLarge | RequestError::TooManyHeaders => 431,
            RequestError::Version => 505,
        }
    }
}

/// Parses the request head at the start of `buf`. `limit` is the largest head accepted: when the
/// input reaches it without a complete head the request is refused (414 if even the request line
/// is incomplete, 431 otherwise).
pub fn parse(buf: &[u8], limit: usize) -> Result<Parse<'_>, RequestError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let status = req.parse(buf).map_err(|e| match e {
        httparse::Error::TooManyHeaders => RequestError::TooManyHeaders,
        httparse::Error::Version => RequestError::Version,
        _ => RequestError::Malformed,
    });
    let head_len = match status {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            if buf.len() >= limit {
                return Err(too_large(buf));
            }
            return Ok(Parse::Partial);
        }
        // A version error on a truncated line is just a partial request line that is too long.
        Err(e) if buf.len() >= limit && !buf.contains(&b'\n') => {
            let _ = e;
            return Err(RequestError::UriTooLong);
        }
        Err(e) => return Err(e),
    };
    if head_len > limit {
        return Err(too_large(buf));
    }
    let minor_version = req.version.unwrap_or(1);
    let method = match req.method.unwrap_or("") {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        "POST" => Method::Post,
        _ => Method::Other,
    };
    let mut out = Request {
        method,
        target: req.path.unwrap_or("/").as_bytes(),
        minor_version,
        keep_alive: minor_version >= 1,
        head_len,
        ..Request::default()
    };
    let mut content_length: Option<&[u8]> = None;
    for h in req.headers.iter() {
        let name = h.name.as_bytes();
        let value = trim(h.value);
        if name.eq_ignore_ascii_case(b"connection") {
            for token in value.split(|&b| b == b',').map(trim) {
                if token.eq_ignore_ascii_case(b"close") {
                    out.keep_alive = false;
                } else if token.eq_ignore_ascii_case(b"keep-alive") && minor_version == 0 {
                    out.keep_alive = true;
                }
            }
        } else if name.eq_ignore_ascii_case(b"host") {
            out.host = Some(value);
        } else if name.eq_ignore_ascii_case(b"user-agent") {
            out.user_agent = Some(value);
        } else if name.eq_ignore_ascii_case(b"range") {
            out.range = Some(value);
        } else if name.eq_ignore_ascii_case(b"if-range") {
            out.if_range = Some(value);
        } else if name.eq_ignore_ascii_case(b"if-none-match") {
            out.if_none_match = Some(value);
        } else if name.eq_ignore_ascii_case(b"if-modified-since") {
            out.if_modified_since = Some(value);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            out.has_body = true;
            out.transfer_encoding = true;
        } else if name.eq_ignore_ascii_case(b"expect") {
            out.expect_continue = value.eq_ignore_ascii_case(b"100-continue");
        } else if name.eq_ignore_ascii_case(b"content-length") {
            if content_length.is_some_and(|prev| prev != value) {
                return Err(RequestError::Malformed);
            }
            content_length = Some(value);
        }
    }
    if let Some(cl) = content_length {
        if cl.is_empty() || !cl.iter().all(u8::is_ascii_digit) {
            return Err(RequestError::Malformed);
        }
        // More than 19 digits cannot be a length we accept anyway: saturate (413 follows).
        out.content_length = cl
            .iter()
            .try_fold(0u64, |n, &d| n.checked_mul(10)?.checked_add(u64::from(d - b'0')))
            .unwrap_or(u64::MAX);
        if out.content_length > 0 {
            out.has_body = true;
        }
    }
    if out.transfer_encoding {
        // A body we cannot delimit: the connection cannot be reused.
        out.keep_alive = false;
    }
    Ok(Parse::Complete(out))
}

fn too_large(buf: &[u8]) -> RequestError {
    if buf.contains(&b'\n') { RequestError::HeadersTooLarge } else { RequestError::UriTooLong }
}

/// Strips optional whitespace (SP / HTAB) from both ends.
pub fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const IPXE: &[u8] = include_bytes!("../../tests/fixtures/http/ipxe-get.txt");

    fn complete(buf: &[u8]) -> Request<'_> {
        match parse(buf, 8192) {
            Ok(Parse::Complete(r)) => r,
            other => panic!("expected a complete request, got {other:?}"),
        }
    }

    #[test]
    fn ipxe_fixture() {
        let r = complete(IPXE);
        assert_eq!(r.method, Method::Get);
        assert_eq!(r.target, b"/boot.ipxe");
        assert_eq!(r.minor_version, 1);
        assert!(r.keep_alive);
        assert!(!r.has_body);
        assert_eq!(r.host, Some(&b"10.251.0.1:8080"[..]));
        assert_eq!(r.user_agent, Some(&b"iPXE/1.0.0+git-20190125.36a4c85-5.1"[..]));
        assert_eq!(r.range, None);
        assert_eq!(r.head_len, IPXE.len());
    }

    #[test]
    fn every_prefix_of_the_fixture_is_partial() {
        for n in 0..IPXE.len() {
            assert!(matches!(parse(&IPXE[..n], 8192), Ok(Parse::Partial)), "prefix {n}");
        }
    }

    #[test]
    fn pipelined_requests_parse_one_at_a_time() {
        let mut buf = Vec::new();
        buf.extend_from_slice(IPXE);
        buf.extend_from_slice(b"HEAD /boot/x HTTP/1.1\r\nRange: bytes=0-1\r\n\r\nGET /a");
        let first = complete(&buf);
        assert_eq!(first.target, b"/boot.ipxe");
        let rest = &buf[first.head_len..];
        let second = complete(rest);
        assert_eq!(second.method, Method::Head);
        assert_eq!(second.range, Some(&b"bytes=0-1"[..]));
        assert!(matches!(parse(&rest[second.head_len..], 8192), Ok(Parse::Partial)));
    }

    #[test]
    fn http10_and_connection_tokens() {
        let r = complete(b"GET / HTTP/1.0\r\n\r\n");
        assert!(!r.keep_alive);
        let r = complete(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n");
        assert!(r.keep_alive);
        let r = complete(b"GET / HTTP/1.1\r\nConnection: foo, close\r\n\r\n");
        assert!(!r.keep_alive);
    }

    #[test]
    fn bodies_are_measured_and_chunked_ones_force_close() {
        let r = complete(b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello");
        assert_eq!(r.method, Method::Post);
        assert!(r.has_body && r.keep_alive && !r.transfer_encoding && !r.expect_continue);
        assert_eq!(r.content_length, 5);
        assert_eq!(r.head_len, 38);
        let r = complete(
            b"PUT / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\nExpect: 100-Continue\r\n\r\n",
        );
        assert_eq!(r.method, Method::Other);
        assert_eq!(r.content_length, u64::MAX);
        assert!(r.expect_continue);
        let r = complete(b"GET / HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
        assert!(!r.has_body && r.keep_alive);
        let r = complete(b"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert!(r.has_body && r.transfer_encoding && !r.keep_alive);
        assert_eq!(
            parse(b"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 8192).unwrap_err(),
            RequestError::Malformed
        );
        assert_eq!(
            parse(b"GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n", 8192).unwrap_err(),
            RequestError::Malformed
        );
    }

    #[test]
    fn errors_map_to_status_codes() {
        assert_eq!(parse(b"GET / HTTP/2.0\r\n\r\n", 8192).unwrap_err().status(), 505);
        assert_eq!(parse(b"GET / HTTP/1.1\r\nBad Header: x\r\n\r\n", 8192).unwrap_err().status(), 400);
        let mut many = b"GET / HTTP/1.1\r\n".to_vec();
        for _ in 0..=MAX_HEADERS {
            many.extend_from_slice(b"X: y\r\n");
        }
        many.extend_from_slice(b"\r\n");
        assert_eq!(parse(&many, 8192).unwrap_err(), RequestError::TooManyHeaders);
        assert_eq!(parse(&many, 8192).unwrap_err().status(), 431);
        // Limit reached inside the request line: 414; inside the headers: 431.
        let long_line = [b"GET /".as_slice(), &[b'a'; 100]].concat();
        assert_eq!(parse(&long_line, 64).unwrap_err(), RequestError::UriTooLong);
        let long_head = [b"GET / HTTP/1.1\r\nX: ".as_slice(), &[b'a'; 100]].concat();
        assert_eq!(parse(&long_head, 64).unwrap_err(), RequestError::HeadersTooLarge);
        // Below the limit the same inputs are just partial.
        assert!(matches!(parse(&long_line, 8192), Ok(Parse::Partial)));
    }

    #[test]
    fn trims_ows() {
        assert_eq!(trim(b" \t a b \t"), b"a b");
        assert_eq!(trim(b"   "), b"");
    }
}
