//! TFTP packets (RFC 1350, option extension RFC 2347): borrowed views for parsing and
//! caller-buffer emitters. Nothing here allocates; nothing panics on any input.

use std::fmt;

pub const OP_RRQ: u16 = 1;
pub const OP_WRQ: u16 = 2;
pub const OP_DATA: u16 = 3;
pub const OP_ACK: u16 = 4;
pub const OP_ERROR: u16 = 5;
pub const OP_OACK: u16 = 6;

/// Largest packet we ever build or accept: 4 header bytes + the largest RFC 2348 block.
pub const MAX_PACKET: usize = 4 + 65464;

/// TFTP error codes (RFC 1350 §5, RFC 2347).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    NotDefined,
    FileNotFound,
    AccessViolation,
    DiskFull,
    IllegalOperation,
    UnknownTid,
    FileExists,
    NoSuchUser,
    OptionNegotiation,
    Other(u16),
}

impl ErrorCode {
    pub fn from_u16(v: u16) -> ErrorCode {
        match v {
            0 => ErrorCode::NotDefined,
            1 => ErrorCode::FileNotFound,
            2 => ErrorCode::AccessViolation,
            3 => ErrorCode::DiskFull,
            4 => ErrorCode::IllegalOperation,
            5 => ErrorCode::UnknownTid,
            6 => ErrorCode::FileExists,
            7 => ErrorCode::NoSuchUser,
            8 => ErrorCode::OptionNegotiation,
            o => ErrorCode::Other(o),
        }
    }
    pub fn as_u16(self) -> u16 {
        match self {
            ErrorCode::NotDefined => 0,
            ErrorCode::FileNotFound => 1,
            ErrorCode::AccessViolation => 2,
            ErrorCode::DiskFull => 3,
            ErrorCode::IllegalOperation => 4,
            ErrorCode::UnknownTid => 5,
            ErrorCode::FileExists => 6,
            ErrorCode::NoSuchUser => 7,
            ErrorCode::OptionNegotiation => 8,
            ErrorCode::Other(o) => o,
        }
    }
}

/// Transfer mode of a request. Modes are case-insensitive on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Octet,
    Netascii,
    Mail,
    Unknown,
}

impl Mode {
    fn parse(b: &[u8]) -> Mode {
        if b.eq_ignore_ascii_case(b"octet") {
            Mode::Octet
        } else if b.eq_ignore_ascii_case(b"netascii") {
            Mode::Netascii
        } else if b.eq_ignore_ascii_case(b"mail") {
            Mode::Mail
        } else {
            Mode::Unknown
        }
    }
}

/// Why a datagram is not a TFTP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireError {
    /// Shorter than its opcode requires.
    Truncated,
    /// A string is missing its NUL terminator or a field is out of place.
    Malformed,
    /// Opcode outside 1..=6.
    UnknownOpcode(u16),
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::Truncated => f.write_str("truncated packet"),
            WireError::Malformed => f.write_str("malformed packet"),
            WireError::UnknownOpcode(o) => write!(f, "unknown opcode {o}"),
        }
    }
}

/// A read or write request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request<'a> {
    pub filename: &'a [u8],
    pub mode: Mode,
    pub mode_raw: &'a [u8],
    /// The raw option bytes after the mode (`name\0value\0` pairs).
    pub options_raw: &'a [u8],
}

impl<'a> Request<'a> {
    /// Iterates the `(name, value)` option pairs. A trailing incomplete pair is ignored.
    pub fn options(&self) -> OptionIter<'a> {
        OptionIter { rest: self.options_raw }
    }
}

/// Iterator over `name\0value\0` pairs.
#[derive(Debug, Clone)]
pub struct OptionIter<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for OptionIter<'a> {
    type Item = (&'a [u8], &'a [u8]);
    fn next(&mut self) -> Option<Self::Item> {
        let (name, rest) = split_cstr(self.rest)?;
        let (value, rest) = split_cstr(rest)?;
        self.rest = rest;
        Some((name, value))
    }
}

/// A parsed TFTP packet borrowing from the datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet<'a> {
    Rrq(Request<'a>),
    Wrq(Request<'a>),
    Data {
        block: u16,
        data: &'a [u8],
    },
    Ack {
        block: u16,
    },
    Error {
        code: ErrorCode,
        message: &'a [u8],
    },
    /// Option acknowledgement; the payload is `name\0value\0` pairs.
    Oack {
        options: OptionIter<'a>,
    },
}

impl PartialEq for OptionIter<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.rest == other.rest
    }
}
impl Eq for OptionIter<'_> {}

fn split_cstr(b: &[u8]) -> Option<(&[u8], &[u8])> {
    let nul = b.iter().position(|&c| c == 0)?;
    Some((&b[..nul], &b[nul + 1..]))
}

#[inline]
fn be16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}

/// Parses one datagram.
pub fn parse(buf: &[u8]) -> Result<Packet<'_>, WireError> {
    if buf.len() < 2 {
        return Err(WireError::Truncated);
    }
    let op = be16(buf);
    let body = &buf[2..];
    match op {
        OP_RRQ | OP_WRQ => {
            let (filename, rest) = split_cstr(body).ok_or(WireError::Malformed)?;
            let (mode_raw, options_raw) = split_cstr(rest).ok_or(WireError::Malformed)?;
            let req = Request { filename, mode: Mode::parse(mode_raw), mode_raw, options_raw };
            Ok(if op == OP_RRQ { Packet::Rrq(req) } else { Packet::Wrq(req) })
        }
        OP_DATA => {
            if body.len() < 2 {
                return Err(WireError::Truncated);
            }
            Ok(Packet::Data { block: be16(body), data: &body[2..] })
        }
        OP_ACK => {
            if body.len() < 2 {
                return Err(WireError::Truncated);
            }
            Ok(Packet::Ack { block: be16(body) })
        }
        OP_ERROR => {
            if body.len() < 2 {
                return Err(WireError::Truncated);
            }
            let code = ErrorCode::from_u16(be16(body));
            // Many clients omit the NUL; take the message up to the first NUL or the end.
            let msg = &body[2..];
            let message = match msg.iter().position(|&c| c == 0) {
                Some(n) => &msg[..n],
                None => msg,
            };
            Ok(Packet::Error { code, message })
        }
        OP_OACK => Ok(Packet::Oack { options: OptionIter { rest: body } }),
        other => Err(WireError::UnknownOpcode(other)),
    }
}

/// Writes a DATA header for `block` into `buf[..4]`; the payload goes in `buf[4..]`.
#[inline]
pub fn put_data_header(buf: &mut [u8], block: u16) {
    buf[..2].copy_from_slice(&OP_DATA.to_be_bytes());
    buf[2..4].copy_from_slice(&block.to_be_bytes());
}

/// Writes an ACK; returns its length (4).
pub fn put_ack(buf: &mut [u8], block: u16) -> usize {
    buf[..2].copy_from_slice(&OP_ACK.to_be_bytes());
    buf[2..4].copy_from_slice(&block.to_be_bytes());
    4
}

/// Writes an ERROR packet, truncating the message to fit; returns its length.
pub fn put_error(buf: &mut [u8], code: ErrorCode, message: &str) -> usize {
    buf[..2].copy_from_slice(&OP_ERROR.to_be_bytes());
    buf[2..4].copy_from_slice(&code.as_u16().to_be_bytes());
    let room = buf.len().saturating_sub(5);
    let m = &message.as_bytes()[..message.len().min(room)];
    buf[4..4 + m.len()].copy_from_slice(m);
    buf[4 + m.len()] = 0;
    5 + m.len()
}

/// Builds an OACK (or a request, for clients and tests) option by option into a buffer.
pub struct OptionWriter<'b> {
    buf: &'b mut [u8],
    len: usize,
}

/// The buffer is too small for what was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full;

impl<'b> OptionWriter<'b> {
    /// Starts a packet with opcode `op` (use [`OP_OACK`]).
    pub fn new(buf: &'b mut [u8], op: u16) -> Result<OptionWriter<'b>, Full> {
        if buf.len() < 2 {
            return Err(Full);
        }
        buf[..2].copy_from_slice(&op.to_be_bytes());
        Ok(OptionWriter { buf, len: 2 })
    }

    /// Appends raw bytes followed by a NUL.
    pub fn cstr(&mut self, s: &[u8]) -> Result<&mut Self, Full> {
        let end = self.len + s.len() + 1;
        if end > self.buf.len() {
            return Err(Full);
        }
        self.buf[self.len..end - 1].copy_from_slice(s);
        self.buf[end - 1] = 0;
        self.len = end;
        Ok(self)
    }

    /// Appends `name\0<decimal value>\0`.
    pub fn option(&mut self, name: &[u8], value: u64) -> Result<&mut Self, Full> {
        let mut digits = [0u8; 20];
        let n = write_decimal(&mut digits, value);
        self.cstr(name)?.cstr(&digits[..n])
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len <= 2
    }
}

/// Writes `v` in decimal into `out`, returning the digit count. `out` must hold 20 bytes.
pub fn write_decimal(out: &mut [u8; 20], mut v: u64) -> usize {
    let mut tmp = [0u8; 20];
    let mut i = 0;
    loop {
        tmp[i] = b'0' + (v % 10) as u8;
        v /= 10;
        i += 1;
        if v == 0 {
            break;
        }
    }
    for j in 0..i {
        out[j] = tmp[i - 1 - j];
    }
    i
}

/// Parses an unsigned decimal option value (no sign, no spaces, at most 20 digits).
pub fn parse_decimal(b: &[u8]) -> Option<u64> {
    if b.is_empty() || b.len() > 20 {
        return None;
    }
    let mut v: u64 = 0;
    for &c in b {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
    }
    Some(v)
}

#[cfg(test)]
mod tests;
