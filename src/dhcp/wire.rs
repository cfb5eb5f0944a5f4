//! Zero-copy view of a BOOTP/DHCP message (RFC 951, RFC 2131), in the smoltcp style.
//!
//! [`Packet`] wraps any `T: AsRef<[u8]>` and reads fields straight out of the buffer. Call
//! [`Packet::new_checked`] (or [`Packet::check_len`]) first: **if `check_len` returned `Ok`, no
//! accessor will panic.** Setters are available when `T: AsMut<[u8]>`.
//!
//! Layout (offsets in bytes):
//!
//! ```text
//!  0 op | 1 htype | 2 hlen | 3 hops | 4..8 xid | 8..10 secs | 10..12 flags
//! 12..16 ciaddr | 16..20 yiaddr | 20..24 siaddr | 24..28 giaddr | 28..44 chaddr
//! 44..108 sname | 108..236 file | 236..240 magic cookie | 240.. options
//! ```

use core::fmt;
use std::net::Ipv4Addr;

use super::options::Options;

/// A byte range inside the message.
pub type Field = core::ops::Range<usize>;

/// Field offsets of the fixed BOOTP header.
pub mod field {
    use super::Field;

    pub const OP: usize = 0;
    pub const HTYPE: usize = 1;
    pub const HLEN: usize = 2;
    pub const HOPS: usize = 3;
    pub const XID: Field = 4..8;
    pub const SECS: Field = 8..10;
    pub const FLAGS: Field = 10..12;
    pub const CIADDR: Field = 12..16;
    pub const YIADDR: Field = 16..20;
    pub const SIADDR: Field = 20..24;
    pub const GIADDR: Field = 24..28;
    pub const CHADDR: Field = 28..44;
    pub const SNAME: Field = 44..108;
    pub const FILE: Field = 108..236;
    pub const MAGIC: Field = 236..240;
    /// Start of the variable-length options area.
    pub const OPTIONS: usize = 240;
}

/// The DHCP magic cookie, 99.130.83.99 (RFC 2131 §3).
pub const MAGIC_COOKIE: [u8; 4] = [99, 130, 83, 99];
/// The smallest buffer a [`Packet`] accepts: the fixed header plus the magic cookie.
pub const HEADER_LEN: usize = field::OPTIONS;
/// The smallest BOOTP message (RFC 951 §3; RFC 1542 §3.1: relays may drop shorter ones). Every
/// reply we emit is padded to at least this length.
pub const BOOTP_MIN_LEN: usize = 300;
/// The broadcast bit of `flags` (RFC 2131 §2, figure 2).
pub const FLAG_BROADCAST: u16 = 0x8000;
/// `op` of a message from a client.
pub const BOOTREQUEST: u8 = 1;
/// `op` of a message from a server.
pub const BOOTREPLY: u8 = 2;
/// `htype` of Ethernet (ARP hardware type 1).
pub const HTYPE_ETHERNET: u8 = 1;

/// Everything that can go wrong when reading or writing a DHCP message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Error {
    /// The buffer ends before a field or an option does.
    Truncated,
    /// A field or option has a value or length that is not allowed.
    Malformed,
    /// The four bytes after `file` are not the DHCP magic cookie.
    BadCookie,
    /// The message is not a BOOTREQUEST where one was expected.
    NotRequest,
    /// An output buffer has no room left.
    Full,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Error::Truncated => "truncated DHCP message",
            Error::Malformed => "malformed DHCP field or option",
            Error::BadCookie => "missing DHCP magic cookie",
            Error::NotRequest => "not a BOOTREQUEST",
            Error::Full => "output buffer full",
        })
    }
}

impl std::error::Error for Error {}

/// The DHCP message type (option 53). Unknown values are kept, never an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageType {
    Discover,
    Offer,
    Request,
    Decline,
    Ack,
    Nak,
    Release,
    Inform,
    Unknown(u8),
}

impl From<u8> for MessageType {
    fn from(v: u8) -> Self {
        match v {
            1 => MessageType::Discover,
            2 => MessageType::Offer,
            3 => MessageType::Request,
            4 => MessageType::Decline,
            5 => MessageType::Ack,
            6 => MessageType::Nak,
            7 => MessageType::Release,
            8 => MessageType::Inform,
            other => MessageType::Unknown(other),
        }
    }
}

impl From<MessageType> for u8 {
    fn from(v: MessageType) -> u8 {
        match v {
            MessageType::Discover => 1,
            MessageType::Offer => 2,
            MessageType::Request => 3,
            MessageType::Decline => 4,
            MessageType::Ack => 5,
            MessageType::Nak => 6,
            MessageType::Release => 7,
            MessageType::Inform => 8,
            MessageType::Unknown(v) => v,
        }
    }
}

/// A read/write view of a DHCP message in a byte buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

fn ip_at(b: &[u8], f: Field) -> Ipv4Addr {
    let s = &b[f];
    Ipv4Addr::new(s[0], s[1], s[2], s[3])
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking its length; accessors may panic on a short buffer.
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps a buffer after [`Packet::check_len`].
    pub fn new_checked(buffer: T) -> Result<Packet<T>, Error> {
        let p = Packet::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// `Ok` when the buffer holds at least the fixed header and the magic cookie
    /// ([`HEADER_LEN`] bytes). If `check_len` returned `Ok`, no accessor will panic.
    pub fn check_len(&self) -> Result<(), Error> {
        if self.buffer.as_ref().len() < HEADER_LEN { Err(Error::Truncated) } else { Ok(()) }
    }

    /// `Ok` when the magic cookie is present (a plain BOOTP message without it is refused).
    pub fn check_cookie(&self) -> Result<(), Error> {
        if self.magic_cookie() == MAGIC_COOKIE { Ok(()) } else { Err(Error::BadCookie) }
    }

    /// Gives the buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The whole underlying buffer.
    pub fn as_bytes(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    pub fn op(&self) -> u8 {
        self.buffer.as_ref()[field::OP]
    }
    pub fn htype(&self) -> u8 {
        self.buffer.as_ref()[field::HTYPE]
    }
    pub fn hlen(&self) -> u8 {
        self.buffer.as_ref()[field::HLEN]
    }
    pub fn hops(&self) -> u8 {
        self.buffer.as_ref()[field::HOPS]
    }
    pub fn xid(&self) -> u32 {
        let b = &self.buffer.as_ref()[field::XID];
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }
    pub fn secs(&self) -> u16 {
        let b = &self.buffer.as_ref()[field::SECS];
        u16::from_be_bytes([b[0], b[1]])
    }
    pub fn flags(&self) -> u16 {
        let b = &self.buffer.as_ref()[field::FLAGS];
        u16::from_be_bytes([b[0], b[1]])
    }
    /// The broadcast bit of `flags`.
    pub fn broadcast(&self) -> bool {
        self.flags() & FLAG_BROADCAST != 0
    }
    pub fn ciaddr(&self) -> Ipv4Addr {
        ip_at(self.buffer.as_ref(), field::CIADDR)
    }
    pub fn yiaddr(&self) -> Ipv4Addr {
        ip_at(self.buffer.as_ref(), field::YIADDR)
    }
    pub fn siaddr(&self) -> Ipv4Addr {
        ip_at(self.buffer.as_ref(), field::SIADDR)
    }
    pub fn giaddr(&self) -> Ipv4Addr {
        ip_at(self.buffer.as_ref(), field::GIADDR)
    }
    /// All 16 bytes of `chaddr`; see [`Packet::client_hw_addr`] for the `hlen` bytes that count.
    pub fn chaddr(&self) -> &[u8] {
        &self.buffer.as_ref()[field::CHADDR]
    }
    /// The first `hlen` bytes of `chaddr`, or `None` when `hlen` is over 16.
    pub fn client_hw_addr(&self) -> Option<&[u8]> {
        self.chaddr().get(..usize::from(self.hlen()))
    }
    /// The Ethernet MAC, when `htype` is Ethernet and `hlen` is 6.
    pub fn mac(&self) -> Option<[u8; 6]> {
        if self.htype() != HTYPE_ETHERNET || self.hlen() != 6 {
            return None;
        }
        let c = self.chaddr();
        Some([c[0], c[1], c[2], c[3], c[4], c[5]])
    }
    /// All 64 bytes of `sname`.
    pub fn sname(&self) -> &[u8] {
        &self.buffer.as_ref()[field::SNAME]
    }
    /// All 128 bytes of `file`.
    pub fn file(&self) -> &[u8] {
        &self.buffer.as_ref()[field::FILE]
    }
    pub fn magic_cookie(&self) -> [u8; 4] {
        let b = &self.buffer.as_ref()[field::MAGIC];
        [b[0], b[1], b[2], b[3]]
    }
    /// The bytes after the magic cookie, up to the end of the buffer.
    pub fn options_area(&self) -> &[u8] {
        &self.buffer.as_ref()[field::OPTIONS..]
    }
    /// Iterates the options, honouring option overload (52) into `file` and `sname`.
    /// The iterator yields an error (once, then stops) instead of panicking on bad input.
    pub fn options(&self) -> Options<'_> {
        options_in(self.buffer.as_ref())
    }
}

impl<'a> Packet<&'a [u8]> {
    /// The underlying slice, with its own lifetime rather than one tied to `&self`.
    pub fn as_slice(&self) -> &'a [u8] {
        self.buffer
    }
}

/// [`Packet::options`] on a raw message buffer, borrowing it for its whole lifetime.
///
/// # Panics
/// When `message` is shorter than [`HEADER_LEN`]; call [`Packet::check_len`] first.
pub fn options_in(message: &[u8]) -> Options<'_> {
    Options::new(&message[field::OPTIONS..], &message[field::FILE], &message[field::SNAME])
}

/// The bytes of a NUL-padded fixed text field (`sname`, `file`) up to the first NUL.
pub fn c_str(field: &[u8]) -> &[u8] {
    match field.iter().position(|&b| b == 0) {
        Some(n) => &field[..n],
        None => field,
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    fn buf(&mut self) -> &mut [u8] {
        self.buffer.as_mut()
    }
    pub fn set_op(&mut self, v: u8) {
        self.buf()[field::OP] = v;
    }
    pub fn set_htype(&mut self, v: u8) {
        self.buf()[field::HTYPE] = v;
    }
    pub fn set_hlen(&mut self, v: u8) {
        self.buf()[field::HLEN] = v;
    }
    pub fn set_hops(&mut self, v: u8) {
        self.buf()[field::HOPS] = v;
    }
    pub fn set_xid(&mut self, v: u32) {
        self.buf()[field::XID].copy_from_slice(&v.to_be_bytes());
    }
    pub fn set_secs(&mut self, v: u16) {
        self.buf()[field::SECS].copy_from_slice(&v.to_be_bytes());
    }
    pub fn set_flags(&mut self, v: u16) {
        self.buf()[field::FLAGS].copy_from_slice(&v.to_be_bytes());
    }
    pub fn set_ciaddr(&mut self, v: Ipv4Addr) {
        self.buf()[field::CIADDR].copy_from_slice(&v.octets());
    }
    pub fn set_yiaddr(&mut self, v: Ipv4Addr) {
        self.buf()[field::YIADDR].copy_from_slice(&v.octets());
    }
    pub fn set_siaddr(&mut self, v: Ipv4Addr) {
        self.buf()[field::SIADDR].copy_from_slice(&v.octets());
    }
    pub fn set_giaddr(&mut self, v: Ipv4Addr) {
        self.buf()[field::GIADDR].copy_from_slice(&v.octets());
    }
    /// Writes up to 16 bytes of hardware address and zero-fills the rest of `chaddr`.
    pub fn set_chaddr(&mut self, v: &[u8]) -> Result<(), Error> {
        fill_fixed(&mut self.buf()[field::CHADDR], v)
    }
    /// Writes `sname` (at most 63 bytes, so a NUL always follows) and zero-fills the rest.
    pub fn set_sname(&mut self, v: &[u8]) -> Result<(), Error> {
        fill_text(&mut self.buf()[field::SNAME], v)
    }
    /// Writes `file` (at most 127 bytes, so a NUL always follows) and zero-fills the rest.
    pub fn set_file(&mut self, v: &[u8]) -> Result<(), Error> {
        fill_text(&mut self.buf()[field::FILE], v)
    }
    pub fn set_magic_cookie(&mut self) {
        self.buf()[field::MAGIC].copy_from_slice(&MAGIC_COOKIE);
    }
    /// The options area, for an [`super::options::OptionWriter`].
    pub fn options_area_mut(&mut self) -> &mut [u8] {
        &mut self.buf()[field::OPTIONS..]
    }
}

fn fill_fixed(dst: &mut [u8], v: &[u8]) -> Result<(), Error> {
    if v.len() > dst.len() {
        return Err(Error::Malformed);
    }
    let (head, tail) = dst.split_at_mut(v.len());
    head.copy_from_slice(v);
    tail.fill(0);
    Ok(())
}

fn fill_text(dst: &mut [u8], v: &[u8]) -> Result<(), Error> {
    if v.len() >= dst.len() || v.contains(&0) {
        return Err(Error::Malformed);
    }
    fill_fixed(dst, v)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first 240 bytes of `ipxe-bios-discover.bin` are enough for the header tests.
    static DISCOVER: &[u8] = include_bytes!("../../tests/fixtures/dhcp/ipxe-bios-discover.bin");

    #[test]
    fn deconstruct() {
        let p = Packet::new_checked(DISCOVER).unwrap();
        assert_eq!(p.op(), BOOTREQUEST);
        assert_eq!(p.htype(), 1);
        assert_eq!(p.hlen(), 6);
        assert_eq!(p.hops(), 0);
        assert_eq!(p.xid(), 0x4f20c03a);
        assert_eq!(p.secs(), 4);
        assert_eq!(p.flags(), 0);
        assert!(!p.broadcast());
        assert_eq!(p.ciaddr(), Ipv4Addr::UNSPECIFIED);
        assert_eq!(p.mac(), Some([0x52, 0x54, 0x00, 0xc0, 0xee, 0x01]));
        assert_eq!(p.client_hw_addr(), Some(&[0x52, 0x54, 0x00, 0xc0, 0xee, 0x01][..]));
        assert_eq!(c_str(p.sname()), b"");
        assert_eq!(c_str(p.file()), b"");
        assert_eq!(p.check_cookie(), Ok(()));
    }

    #[test]
    fn construct_header_into_a5() {
        let mut buf = [0xa5u8; HEADER_LEN];
        let mut p = Packet::new_unchecked(&mut buf[..]);
        p.set_op(BOOTREPLY);
        p.set_htype(1);
        p.set_hlen(6);
        p.set_hops(0);
        p.set_xid(0x0102_0304);
        p.set_secs(0x0506);
        p.set_flags(FLAG_BROADCAST);
        p.set_ciaddr(Ipv4Addr::new(1, 1, 1, 1));
        p.set_yiaddr(Ipv4Addr::new(2, 2, 2, 2));
        p.set_siaddr(Ipv4Addr::new(3, 3, 3, 3));
        p.set_giaddr(Ipv4Addr::new(4, 4, 4, 4));
        p.set_chaddr(&[9; 6]).unwrap();
        p.set_sname(b"srv").unwrap();
        p.set_file(b"boot").unwrap();
        p.set_magic_cookie();
        let mut want = [0u8; HEADER_LEN];
        want[..12].copy_from_slice(&[2, 1, 6, 0, 1, 2, 3, 4, 5, 6, 0x80, 0]);
        want[12..28].copy_from_slice(&[1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4]);
        want[28..34].fill(9);
        want[44..47].copy_from_slice(b"srv");
        want[108..112].copy_from_slice(b"boot");
        want[236..240].copy_from_slice(&MAGIC_COOKIE);
        assert_eq!(&buf[..], &want[..]);
    }

    #[test]
    fn setters_reject_oversized_fields() {
        let mut buf = [0u8; HEADER_LEN];
        let mut p = Packet::new_unchecked(&mut buf[..]);
        assert_eq!(p.set_chaddr(&[0; 17]), Err(Error::Malformed));
        assert_eq!(p.set_sname(&[b'a'; 64]), Err(Error::Malformed));
        assert_eq!(p.set_file(&[b'a'; 128]), Err(Error::Malformed));
        assert_eq!(p.set_file(b"a\0b"), Err(Error::Malformed));
        assert_eq!(p.set_file(&[b'a'; 127]), Ok(()));
    }

    #[test]
    fn check_len_and_cookie() {
        assert_eq!(Packet::new_checked(&DISCOVER[..HEADER_LEN - 1]).err(), Some(Error::Truncated));
        assert!(Packet::new_checked(&DISCOVER[..HEADER_LEN]).is_ok());
        let mut bad = DISCOVER.to_vec();
        bad[236] = 0;
        assert_eq!(Packet::new_checked(&bad[..]).unwrap().check_cookie(), Err(Error::BadCookie));
    }

    #[test]
    fn hlen_over_16_has_no_hw_addr() {
        let mut buf = DISCOVER.to_vec();
        buf[field::HLEN] = 17;
        let p = Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(p.client_hw_addr(), None);
        assert_eq!(p.mac(), None);
    }

    #[test]
    fn message_type_round_trip() {
        for v in 0..=255u8 {
            assert_eq!(u8::from(MessageType::from(v)), v);
        }
        assert_eq!(MessageType::from(9), MessageType::Unknown(9));
    }
}
