//! The parsed summary of a client message: every field and option the server and the PXE
//! policy look at, as borrowed slices of the receive buffer (no allocation).

use std::net::Ipv4Addr;

use super::options::{SubOptions, UserClass, code, ipxe};
use super::wire::{BOOTREQUEST, Error, MessageType, Packet, c_str, field, options_in};

/// Client network interface identifier (option 94, RFC 4578 §2.2): type 1 = UNDI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ndi {
    pub kind: u8,
    pub major: u8,
    pub minor: u8,
}

/// iPXE's encapsulated option 175 (raw TLVs, iterate with [`IpxeOptions::iter`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpxeOptions<'a>(pub &'a [u8]);

impl<'a> IpxeOptions<'a> {
    pub fn iter(&self) -> SubOptions<'a> {
        SubOptions::new(self.0)
    }
    /// The value of one sub-option.
    pub fn get(&self, code: u8) -> Option<&'a [u8]> {
        SubOptions::find(self.0, code)
    }
    /// A feature flag (e.g. [`ipxe::HTTP`]) is listed with a non-zero value.
    pub fn has_feature(&self, code: u8) -> bool {
        self.get(code).is_some_and(|v| v.iter().any(|&b| b != 0))
    }
    /// Sub-option 235: `[major, minor, patch]`.
    pub fn version(&self) -> Option<[u8; 3]> {
        match self.get(ipxe::VERSION)? {
            &[a, b, c] => Some([a, b, c]),
            _ => None,
        }
    }
}

/// A parsed BOOTREQUEST. Options that appear more than once keep their first occurrence (RFC 3396
/// concatenation is not done: no client seen splits these options).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request<'a> {
    pub htype: u8,
    pub hlen: u8,
    pub hops: u8,
    pub xid: u32,
    pub secs: u16,
    pub flags: u16,
    pub ciaddr: Ipv4Addr,
    pub yiaddr: Ipv4Addr,
    pub siaddr: Ipv4Addr,
    pub giaddr: Ipv4Addr,
    /// The first `hlen` bytes of `chaddr`.
    pub chaddr: &'a [u8],
    /// `sname` up to its first NUL (empty when overloaded with options).
    pub sname: &'a [u8],
    /// `file` up to its first NUL (empty when overloaded with options).
    pub file: &'a [u8],
    /// 53; `None` for plain BOOTP.
    pub message_type: Option<MessageType>,
    /// 50.
    pub requested_ip: Option<Ipv4Addr>,
    /// 54.
    pub server_id: Option<Ipv4Addr>,
    /// 55.
    pub parameter_list: Option<&'a [u8]>,
    /// 57.
    pub max_message_size: Option<u16>,
    /// 60.
    pub vendor_class: Option<&'a [u8]>,
    /// 61.
    pub client_id: Option<&'a [u8]>,
    /// 77.
    pub user_class: Option<UserClass<'a>>,
    /// 93: the first architecture listed.
    pub client_arch: Option<u16>,
    /// 94.
    pub client_ndi: Option<Ndi>,
    /// 97: the whole option (type byte + GUID), to echo.
    pub client_uuid: Option<&'a [u8]>,
    /// 82: the whole option, to echo unchanged.
    pub relay_agent: Option<&'a [u8]>,
    /// 175.
    pub ipxe: Option<IpxeOptions<'a>>,
    /// 51.
    pub lease_time: Option<u32>,
    /// 12.
    pub hostname: Option<&'a [u8]>,
    /// 52 (0 when absent).
    pub overload: u8,
}

fn ip(v: &[u8]) -> Result<Ipv4Addr, Error> {
    match *v {
        [a, b, c, d] => Ok(Ipv4Addr::new(a, b, c, d)),
        _ => Err(Error::Malformed),
    }
}

fn u16_of(v: &[u8]) -> Result<u16, Error> {
    match *v {
        [a, b] => Ok(u16::from_be_bytes([a, b])),
        _ => Err(Error::Malformed),
    }
}

fn u32_of(v: &[u8]) -> Result<u32, Error> {
    match *v {
        [a, b, c, d] => Ok(u32::from_be_bytes([a, b, c, d])),
        _ => Err(Error::Malformed),
    }
}

fn set_once<T>(slot: &mut Option<T>, v: impl FnOnce() -> Result<T, Error>) -> Result<(), Error> {
    if slot.is_none() {
        *slot = Some(v()?);
    }
    Ok(())
}

impl<'a> Request<'a> {
    /// Parses a client message. Refuses a short buffer (`Truncated`), a missing cookie
    /// (`BadCookie`), `op` other than BOOTREQUEST (`NotRequest`), `hlen` over 16 or a known option
    /// with the wrong length (`Malformed`), and options that run past the buffer (`Truncated`).
    pub fn parse(packet: &Packet<&'a [u8]>) -> Result<Request<'a>, Error> {
        packet.check_len()?;
        packet.check_cookie()?;
        if packet.op() != BOOTREQUEST {
            return Err(Error::NotRequest);
        }
        // `Packet` accessors borrow `packet`; re-wrap the slice to get borrows of lifetime `'a`.
        let bytes: &'a [u8] = packet.as_slice();
        let p = Packet::new_unchecked(bytes);
        let chaddr = bytes[field::CHADDR].get(..usize::from(p.hlen())).ok_or(Error::Malformed)?;
        let mut r = Request {
            htype: p.htype(),
            hlen: p.hlen(),
            hops: p.hops(),
            xid: p.xid(),
            secs: p.secs(),
            flags: p.flags(),
            ciaddr: p.ciaddr(),
            yiaddr: p.yiaddr(),
            siaddr: p.siaddr(),
            giaddr: p.giaddr(),
            chaddr,
            sname: &[],
            file: &[],
            message_type: None,
            requested_ip: None,
            server_id: None,
            parameter_list: None,
            max_message_size: None,
            vendor_class: None,
            client_id: None,
            user_class: None,
            client_arch: None,
            client_ndi: None,
            client_uuid: None,
            relay_agent: None,
            ipxe: None,
            lease_time: None,
            hostname: None,
            overload: 0,
        };
        let mut opts = options_in(bytes);
        for item in opts.by_ref() {
            let (c, v) = item?;
            r.take(c, v)?;
        }
        r.overload = opts.overload();
        if r.overload & 1 == 0 {
            r.file = c_str(&bytes[field::FILE]);
        }
        if r.overload & 2 == 0 {
            r.sname = c_str(&bytes[field::SNAME]);
        }
        Ok(r)
    }

    fn take(&mut self, c: u8, v: &'a [u8]) -> Result<(), Error> {
        match c {
            code::MESSAGE_TYPE => set_once(&mut self.message_type, || match *v {
                [t] => Ok(MessageType::from(t)),
                _ => Err(Error::Malformed),
            }),
            code::REQUESTED_IP => set_once(&mut self.requested_ip, || ip(v)),
            code::SERVER_ID => set_once(&mut self.server_id, || ip(v)),
            code::PARAMETER_LIST => set_once(&mut self.parameter_list, || Ok(v)),
            code::MAX_MESSAGE_SIZE => set_once(&mut self.max_message_size, || u16_of(v)),
            code::VENDOR_CLASS => set_once(&mut self.vendor_class, || Ok(v)),
            code::CLIENT_ID => set_once(&mut self.client_id, || Ok(v)),
            code::USER_CLASS => set_once(&mut self.user_class, || Ok(UserClass(v))),
            code::CLIENT_ARCH => set_once(&mut self.client_arch, || {
                // RFC 4578 §2.1: a list of 16-bit types; we use the first.
                if v.is_empty() || v.len() % 2 != 0 { Err(Error::Malformed) } else { u16_of(&v[..2]) }
            }),
            code::CLIENT_NDI => set_once(&mut self.client_ndi, || match *v {
                [kind, major, minor] => Ok(Ndi { kind, major, minor }),
                _ => Err(Error::Malformed),
            }),
            code::CLIENT_UUID => set_once(&mut self.client_uuid, || Ok(v)),
            code::RELAY_AGENT => set_once(&mut self.relay_agent, || Ok(v)),
            code::IPXE => set_once(&mut self.ipxe, || Ok(IpxeOptions(v))),
            code::LEASE_TIME => set_once(&mut self.lease_time, || u32_of(v)),
            code::HOSTNAME => set_once(&mut self.hostname, || Ok(v)),
            _ => Ok(()),
        }
    }

    /// The broadcast bit of `flags`.
    pub fn broadcast(&self) -> bool {
        self.flags & super::wire::FLAG_BROADCAST != 0
    }

    /// The Ethernet MAC, when `htype` is 1 and `hlen` is 6.
    pub fn mac(&self) -> Option<[u8; 6]> {
        match *self.chaddr {
            [a, b, c, d, e, f] if self.htype == super::wire::HTYPE_ETHERNET => Some([a, b, c, d, e, f]),
            _ => None,
        }
    }

    /// True when option 55 lists `code`.
    pub fn requests(&self, code: u8) -> bool {
        self.parameter_list.is_some_and(|l| l.contains(&code))
    }

    /// The client's subnet as a relay names it apart from giaddr: the link-selection
    /// sub-option (5) of option 82 (RFC 3527), for relays whose giaddr is not on the client's
    /// link. Sub-options that run past the option end the search.
    pub fn link_selection(&self) -> Option<Ipv4Addr> {
        SubOptions::find(self.relay_agent?, 5).and_then(|v| ip(v).ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dhcp::wire::{HEADER_LEN, MAGIC_COOKIE};

    fn with_82(v: &[u8]) -> Vec<u8> {
        let mut b = vec![0u8; HEADER_LEN];
        b[0] = BOOTREQUEST;
        b[236..240].copy_from_slice(&MAGIC_COOKIE);
        b.extend_from_slice(&[code::RELAY_AGENT, v.len() as u8]);
        b.extend_from_slice(v);
        b.push(255);
        b
    }

    fn link(v: &[u8]) -> Option<Ipv4Addr> {
        let b = with_82(v);
        Request::parse(&Packet::new_unchecked(&b[..])).unwrap().link_selection()
    }

    #[test]
    fn link_selection_is_sub_option_5_of_option_82() {
        assert_eq!(link(&[1, 2, b'p', b'1', 5, 4, 10, 0, 101, 0]), Some(Ipv4Addr::new(10, 0, 101, 0)));
        assert_eq!(link(&[5, 4, 10, 0, 101, 0, 1, 1, b'x']), Some(Ipv4Addr::new(10, 0, 101, 0)));
        assert_eq!(link(&[1, 2, b'p', b'1']), None, "no sub-option 5");
        assert_eq!(link(&[5, 3, 10, 0, 101]), None, "wrong length");
        assert_eq!(link(&[1, 9, b'p', 5, 4, 10, 0, 101, 0]), None, "runs past the option");
        assert_eq!(link(&[1]), None);
    }
}
