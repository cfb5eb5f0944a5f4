//! Server replies (OFFER, ACK, NAK, ProxyDHCP offer) emitted into a caller buffer, with no heap
//! allocation.
//!
//! Options are written in this order: 53, 54, 56, 51, 58, 59, 1, 3, 6, 12, 15, 28, 43, 60, 66,
//! 67, 97, 175, 82. The relay agent option (82) goes last, where RFC 3046 §2.1 relay agents put
//! it, so a relay that strips "its" trailing option finds it there.

use std::net::Ipv4Addr;

use super::options::{OptionWriter, code, ipxe, pxe};
use super::request::Request;
use super::wire::{BOOTP_MIN_LEN, BOOTREPLY, Error, FLAG_BROADCAST, HEADER_LEN, MessageType, Packet};
use crate::config::DhcpConfig;

/// PXE vendor options (43) for a `PXEClient` (PXE 2.1 spec, table 2-1), each as raw sub-option
/// data. Emitted as sub-options 6, 8, 9, 10 and a closing END.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PxeVendor<'a> {
    /// 6: discovery control ([`pxe::DISCOVERY_USE_BOOTFILE`] = use the boot file in this offer).
    pub discovery_control: Option<u8>,
    /// 8: boot servers.
    pub boot_servers: Option<&'a [u8]>,
    /// 9: boot menu.
    pub boot_menu: Option<&'a [u8]>,
    /// 10: menu prompt.
    pub menu_prompt: Option<&'a [u8]>,
}

/// A reply to emit. Build one with [`Reply::answering`] or [`Reply::nak`] and fill the options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply<'a> {
    pub message_type: MessageType,
    pub htype: u8,
    pub hlen: u8,
    pub xid: u32,
    pub secs: u16,
    pub flags: u16,
    pub ciaddr: Ipv4Addr,
    pub yiaddr: Ipv4Addr,
    /// `siaddr`: the next server (TFTP) address.
    pub siaddr: Ipv4Addr,
    pub giaddr: Ipv4Addr,
    /// At most 16 bytes.
    pub chaddr: &'a [u8],
    /// At most 63 bytes.
    pub sname: &'a [u8],
    /// The `file` field, at most 127 bytes.
    pub file: &'a [u8],
    /// 54.
    pub server_id: Option<Ipv4Addr>,
    /// 56 (a NAK's reason).
    pub message: Option<&'a [u8]>,
    /// 51, 58, 59.
    pub lease_time: Option<u32>,
    pub renewal_time: Option<u32>,
    pub rebinding_time: Option<u32>,
    /// 1.
    pub subnet_mask: Option<Ipv4Addr>,
    /// 3.
    pub routers: &'a [Ipv4Addr],
    /// 6.
    pub dns_servers: &'a [Ipv4Addr],
    /// 12.
    pub hostname: Option<&'a [u8]>,
    /// 15.
    pub domain_name: Option<&'a [u8]>,
    /// 28.
    pub broadcast_addr: Option<Ipv4Addr>,
    /// 43.
    pub pxe_vendor: Option<PxeVendor<'a>>,
    /// 60 (`PXEClient` for ProxyDHCP, `HTTPClient` for UEFI HTTP Boot).
    pub vendor_class: Option<&'a [u8]>,
    /// 66.
    pub tftp_server: Option<&'a [u8]>,
    /// 67, written with a trailing NUL counted in the length, as dnsmasq does (fixtures README
    /// point 10).
    pub bootfile: Option<&'a [u8]>,
    /// 97, echoed whole.
    pub client_uuid: Option<&'a [u8]>,
    /// 175 with sub-option 176 = 1: iPXE stops waiting for ProxyDHCP offers (point 11).
    pub ipxe_no_pxedhcp: bool,
    /// 82, echoed whole.
    pub relay_agent: Option<&'a [u8]>,
}

impl<'a> Reply<'a> {
    /// A reply to `req` with its xid, secs (as dnsmasq does), flags, giaddr, hardware address and
    /// relay agent option (RFC 3046 §2.2) copied, and everything else empty.
    pub fn answering(req: &Request<'a>, message_type: MessageType) -> Reply<'a> {
        Reply {
            message_type,
            htype: req.htype,
            hlen: req.hlen,
            xid: req.xid,
            secs: req.secs,
            flags: req.flags,
            ciaddr: Ipv4Addr::UNSPECIFIED,
            yiaddr: Ipv4Addr::UNSPECIFIED,
            siaddr: Ipv4Addr::UNSPECIFIED,
            giaddr: req.giaddr,
            chaddr: req.chaddr,
            sname: &[],
            file: &[],
            server_id: None,
            message: None,
            lease_time: None,
            renewal_time: None,
            rebinding_time: None,
            subnet_mask: None,
            routers: &[],
            dns_servers: &[],
            hostname: None,
            domain_name: None,
            broadcast_addr: None,
            pxe_vendor: None,
            vendor_class: None,
            tftp_server: None,
            bootfile: None,
            client_uuid: None,
            ipxe_no_pxedhcp: false,
            relay_agent: req.relay_agent,
        }
    }

    /// A DHCPNAK (RFC 2131 §4.3.2, table 3): only 53, 54, 56 and the echoed 82; the broadcast bit
    /// is set when the request came through a relay.
    pub fn nak(req: &Request<'a>, server_id: Ipv4Addr, message: Option<&'a [u8]>) -> Reply<'a> {
        let mut r = Reply::answering(req, MessageType::Nak);
        r.server_id = Some(server_id);
        r.message = message;
        if !req.giaddr.is_unspecified() {
            r.flags |= FLAG_BROADCAST;
        }
        r
    }

    /// Fills the lease and network options from the configuration: 51 and (at 1/2 and 7/8 of it,
    /// RFC 2131 §4.4.5) 58, 59; 1, 3, 6, 15, 28.
    pub fn with_network(mut self, cfg: &'a DhcpConfig) -> Reply<'a> {
        let lease = u32::try_from(cfg.lease_time.as_secs()).unwrap_or(u32::MAX);
        self.lease_time = Some(lease);
        self.renewal_time = Some(lease / 2);
        self.rebinding_time = Some((u64::from(lease) * 7 / 8) as u32);
        self.subnet_mask = cfg.netmask;
        self.routers = cfg.router.as_slice();
        self.dns_servers = &cfg.domain_name_servers;
        self.domain_name = cfg.domain_name.as_deref().map(str::as_bytes);
        self.broadcast_addr = cfg.broadcast;
        self
    }

    /// Puts the boot file where the client reads it: option 67 when its option 55 asks for 67,
    /// and the `file` field whenever it fits (127 bytes), for ROMs that only read `file`.
    pub fn set_boot_file(&mut self, req: &Request<'_>, name: &'a [u8]) {
        if req.requests(code::BOOTFILE) {
            self.bootfile = Some(name);
        }
        if name.len() < 128 && !name.contains(&0) {
            self.file = name;
        } else if self.bootfile.is_none() {
            self.bootfile = Some(name);
        }
    }

    /// Exact number of bytes [`Reply::emit`] writes (never under [`BOOTP_MIN_LEN`]).
    pub fn buffer_len(&self) -> usize {
        let opt = |v: Option<usize>| v.map_or(0, |n| n + 2);
        let mut n = opt(Some(1)) + opt(self.server_id.map(|_| 4)) + opt(self.message.map(<[u8]>::len));
        n += opt(self.lease_time.map(|_| 4))
            + opt(self.renewal_time.map(|_| 4))
            + opt(self.rebinding_time.map(|_| 4));
        n += opt(self.subnet_mask.map(|_| 4));
        n += opt((!self.routers.is_empty()).then_some(self.routers.len() * 4));
        n += opt((!self.dns_servers.is_empty()).then_some(self.dns_servers.len() * 4));
        n += opt(self.hostname.map(<[u8]>::len)) + opt(self.domain_name.map(<[u8]>::len));
        n += opt(self.broadcast_addr.map(|_| 4));
        n += opt(self.pxe_vendor.map(|v| pxe_vendor_len(&v)));
        n += opt(self.vendor_class.map(<[u8]>::len)) + opt(self.tftp_server.map(<[u8]>::len));
        n += opt(self.bootfile.map(|b| b.len() + 1));
        n += opt(self.client_uuid.map(<[u8]>::len));
        n += opt(self.ipxe_no_pxedhcp.then_some(3));
        n += opt(self.relay_agent.map(<[u8]>::len));
        (HEADER_LEN + n + 1).max(BOOTP_MIN_LEN)
    }

    /// Writes the reply into `buf` (size it with [`super::options::reply_capacity`]) and returns
    /// the message length. `Err(Full)` when it does not fit, `Err(Malformed)` for an over-long
    /// fixed field or option. Bytes after the returned length are not touched.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, Error> {
        if buf.len() < BOOTP_MIN_LEN {
            return Err(Error::Full);
        }
        buf[..HEADER_LEN].fill(0);
        let mut p = Packet::new_unchecked(&mut *buf);
        p.set_op(BOOTREPLY);
        p.set_htype(self.htype);
        p.set_hlen(self.hlen);
        p.set_hops(0);
        p.set_xid(self.xid);
        p.set_secs(self.secs);
        p.set_flags(self.flags);
        p.set_ciaddr(self.ciaddr);
        p.set_yiaddr(self.yiaddr);
        p.set_siaddr(self.siaddr);
        p.set_giaddr(self.giaddr);
        p.set_chaddr(self.chaddr)?;
        p.set_sname(self.sname)?;
        p.set_file(self.file)?;
        p.set_magic_cookie();
        let mut w = OptionWriter::new(p.options_area_mut());
        self.write_options(&mut w)?;
        Ok(HEADER_LEN + w.finish()?)
    }

    fn write_options(&self, w: &mut OptionWriter<'_>) -> Result<(), Error> {
        w.push_u8(code::MESSAGE_TYPE, self.message_type.into())?;
        if let Some(v) = self.server_id {
            w.push_ip(code::SERVER_ID, v)?;
        }
        if let Some(v) = self.message {
            w.push(code::MESSAGE, v)?;
        }
        for (c, v) in [
            (code::LEASE_TIME, self.lease_time),
            (code::RENEWAL_TIME, self.renewal_time),
            (code::REBINDING_TIME, self.rebinding_time),
        ] {
            if let Some(v) = v {
                w.push_u32(c, v)?;
            }
        }
        if let Some(v) = self.subnet_mask {
            w.push_ip(code::SUBNET_MASK, v)?;
        }
        if !self.routers.is_empty() {
            w.push_ips(code::ROUTER, self.routers)?;
        }
        if !self.dns_servers.is_empty() {
            w.push_ips(code::DNS_SERVERS, self.dns_servers)?;
        }
        if let Some(v) = self.hostname {
            w.push(code::HOSTNAME, v)?;
        }
        if let Some(v) = self.domain_name {
            w.push(code::DOMAIN_NAME, v)?;
        }
        if let Some(v) = self.broadcast_addr {
            w.push_ip(code::BROADCAST_ADDR, v)?;
        }
        if let Some(v) = &self.pxe_vendor {
            let mut tmp = [0u8; 255];
            let n = write_pxe_vendor(v, &mut tmp)?;
            w.push(code::VENDOR_SPECIFIC, &tmp[..n])?;
        }
        if let Some(v) = self.vendor_class {
            w.push(code::VENDOR_CLASS, v)?;
        }
        if let Some(v) = self.tftp_server {
            w.push(code::TFTP_SERVER, v)?;
        }
        if let Some(v) = self.bootfile {
            let mut tmp = [0u8; 255];
            let dst = tmp.get_mut(..v.len()).ok_or(Error::Malformed)?;
            dst.copy_from_slice(v);
            let with_nul = tmp.get(..v.len() + 1).ok_or(Error::Malformed)?;
            w.push(code::BOOTFILE, with_nul)?;
        }
        if let Some(v) = self.client_uuid {
            w.push(code::CLIENT_UUID, v)?;
        }
        if self.ipxe_no_pxedhcp {
            w.push(code::IPXE, &[ipxe::NO_PXEDHCP, 1, 1])?;
        }
        if let Some(v) = self.relay_agent {
            w.push(code::RELAY_AGENT, v)?;
        }
        Ok(())
    }
}

fn pxe_vendor_len(v: &PxeVendor<'_>) -> usize {
    let sub = |x: Option<usize>| x.map_or(0, |n| n + 2);
    sub(v.discovery_control.map(|_| 1))
        + sub(v.boot_servers.map(<[u8]>::len))
        + sub(v.boot_menu.map(<[u8]>::len))
        + sub(v.menu_prompt.map(<[u8]>::len))
        + 1
}

fn write_pxe_vendor(v: &PxeVendor<'_>, tmp: &mut [u8; 255]) -> Result<usize, Error> {
    // Sub-options that do not fit in one 255-byte option 43 are a caller error, not a full buffer.
    let too_long = |e: Error| if e == Error::Full { Error::Malformed } else { e };
    let mut w = OptionWriter::new(tmp);
    if let Some(d) = v.discovery_control {
        w.push_u8(pxe::DISCOVERY_CONTROL, d).map_err(too_long)?;
    }
    for (c, data) in [
        (pxe::BOOT_SERVERS, v.boot_servers),
        (pxe::BOOT_MENU, v.boot_menu),
        (pxe::MENU_PROMPT, v.menu_prompt),
    ] {
        if let Some(d) = data {
            w.push(c, d).map_err(too_long)?;
        }
    }
    w.finish_padded(0).map_err(too_long)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dhcp::options::Options;
    use crate::dhcp::wire::c_str;
    use proptest::prelude::*;

    fn base() -> Reply<'static> {
        Reply {
            message_type: MessageType::Ack,
            htype: 1,
            hlen: 6,
            xid: 0xdead_beef,
            secs: 3,
            flags: 0,
            ciaddr: Ipv4Addr::UNSPECIFIED,
            yiaddr: Ipv4Addr::new(192, 0, 2, 10),
            siaddr: Ipv4Addr::new(192, 0, 2, 1),
            giaddr: Ipv4Addr::UNSPECIFIED,
            chaddr: &[2, 0, 0, 0, 0, 9],
            sname: b"",
            file: b"",
            server_id: Some(Ipv4Addr::new(192, 0, 2, 1)),
            message: None,
            lease_time: Some(600),
            renewal_time: None,
            rebinding_time: None,
            subnet_mask: Some(Ipv4Addr::new(255, 255, 255, 0)),
            routers: &[],
            dns_servers: &[],
            hostname: None,
            domain_name: None,
            broadcast_addr: None,
            pxe_vendor: None,
            vendor_class: None,
            tftp_server: None,
            bootfile: Some(b"x.efi"),
            client_uuid: None,
            ipxe_no_pxedhcp: true,
            relay_agent: Some(&[1, 2, b'a', b'b']),
        }
    }

    #[test]
    fn emit_into_a5_buffer() {
        let r = base();
        let mut buf = [0xa5u8; 400];
        let n = r.emit(&mut buf).unwrap();
        assert_eq!(n, BOOTP_MIN_LEN);
        assert_eq!(n, r.buffer_len());
        let mut want = [0u8; BOOTP_MIN_LEN];
        want[..12].copy_from_slice(&[2, 1, 6, 0, 0xde, 0xad, 0xbe, 0xef, 0, 3, 0, 0]);
        want[16..24].copy_from_slice(&[192, 0, 2, 10, 192, 0, 2, 1]);
        want[28..34].copy_from_slice(&[2, 0, 0, 0, 0, 9]);
        want[236..240].copy_from_slice(&crate::dhcp::wire::MAGIC_COOKIE);
        let opts: &[u8] = &[
            53, 1, 5, 54, 4, 192, 0, 2, 1, 51, 4, 0, 0, 2, 88, 1, 4, 255, 255, 255, 0, 67, 6, b'x', b'.',
            b'e', b'f', b'i', 0, 175, 3, 176, 1, 1, 82, 4, 1, 2, b'a', b'b', 255,
        ];
        want[240..240 + opts.len()].copy_from_slice(opts);
        assert_eq!(&buf[..n], &want[..]);
        assert!(buf[n..].iter().all(|&b| b == 0xa5));
    }

    #[test]
    fn emit_reports_full_and_malformed() {
        let mut r = base();
        let mut small = [0u8; 299];
        assert_eq!(r.emit(&mut small), Err(Error::Full));
        let long = [b'a'; 250];
        r.hostname = Some(&long);
        r.domain_name = Some(&long);
        let mut buf = [0u8; 548];
        assert_eq!(r.emit(&mut buf), Err(Error::Full));
        let mut big = [0u8; 1500];
        assert_eq!(r.emit(&mut big), Ok(r.buffer_len()));
        r.bootfile = Some(&long[..]);
        r.hostname = None;
        r.domain_name = None;
        assert!(r.emit(&mut big).is_ok());
        let too_long = [b'a'; 255];
        r.bootfile = Some(&too_long);
        assert_eq!(r.emit(&mut big), Err(Error::Malformed), "255 + NUL does not fit option 67");
        r.bootfile = None;
        r.file = &too_long[..128];
        assert_eq!(r.emit(&mut big), Err(Error::Malformed));
    }

    #[test]
    fn pxe_vendor_options_are_encapsulated_with_end() {
        let mut r = base();
        r.pxe_vendor = Some(PxeVendor {
            discovery_control: Some(8),
            boot_menu: Some(&[0x80, 0x00, 1, b'x']),
            ..PxeVendor::default()
        });
        let mut buf = [0u8; 600];
        let n = r.emit(&mut buf).unwrap();
        assert_eq!(n, r.buffer_len());
        let p = Packet::new_checked(&buf[..n]).unwrap();
        let v = p.options().map(Result::unwrap).find(|&(c, _)| c == code::VENDOR_SPECIFIC).unwrap().1;
        assert_eq!(v, &[6, 1, 8, 9, 4, 0x80, 0, 1, b'x', 255]);
        r.pxe_vendor = Some(PxeVendor { boot_menu: Some(&[0; 253]), ..PxeVendor::default() });
        assert_eq!(r.emit(&mut buf), Err(Error::Malformed));
    }

    #[test]
    fn nak_sets_broadcast_behind_relay() {
        let raw = include_bytes!("../../tests/fixtures/dhcp/udhcpc-request.bin");
        let mut relayed = raw.to_vec();
        relayed[24..28].copy_from_slice(&[10, 9, 8, 7]);
        let p = Packet::new_checked(&relayed[..]).unwrap();
        let req = crate::dhcp::request::Request::parse(&p).unwrap();
        let nak = Reply::nak(&req, Ipv4Addr::new(10, 0, 0, 1), Some(b"wrong network"));
        let mut buf = [0xa5u8; 400];
        let n = nak.emit(&mut buf).unwrap();
        let out = Packet::new_checked(&buf[..n]).unwrap();
        assert!(out.broadcast());
        assert_eq!(out.giaddr(), Ipv4Addr::new(10, 9, 8, 7));
        assert_eq!(out.yiaddr(), Ipv4Addr::UNSPECIFIED);
        let codes: Vec<u8> = out.options().map(|o| o.unwrap().0).collect();
        assert_eq!(codes, vec![53, 54, 56]);
    }

    fn option_strategy() -> impl Strategy<Value = Vec<(u8, Vec<u8>)>> {
        let code = (1u8..=254).prop_filter("overload changes parsing", |c| *c != code::OVERLOAD);
        proptest::collection::vec((code, proptest::collection::vec(any::<u8>(), 0..=255)), 0..12)
    }

    proptest! {
        #[test]
        fn writer_then_iterator_round_trip(opts in option_strategy()) {
            let mut buf = [0xa5u8; 4096];
            let mut w = OptionWriter::new(&mut buf);
            for (c, v) in &opts {
                w.push(*c, v).unwrap();
            }
            let n = w.finish().unwrap();
            let back: Vec<(u8, Vec<u8>)> =
                Options::new(&buf[..n], &[], &[]).map(|r| r.map(|(c, v)| (c, v.to_vec()))).collect::<Result<_, _>>().unwrap();
            prop_assert_eq!(back, opts);
        }

        #[test]
        fn writer_never_overflows(opts in option_strategy(), cap in 0usize..600) {
            let mut buf = vec![0xa5u8; cap + 8];
            let mut w = OptionWriter::new(&mut buf[..cap]);
            let mut written = Vec::new();
            for (c, v) in &opts {
                match w.push(*c, v) {
                    Ok(()) => written.push((*c, v.clone())),
                    Err(e) => prop_assert_eq!(e, Error::Full),
                }
            }
            if let Ok(n) = w.finish_padded(0) {
                let back: Vec<(u8, Vec<u8>)> =
                    Options::new(&buf[..n], &[], &[]).map(|r| r.map(|(c, v)| (c, v.to_vec()))).collect::<Result<_, _>>().unwrap();
                prop_assert_eq!(back, written);
            } else {
                prop_assert_eq!(cap, 0);
            }
            prop_assert!(buf[cap..].iter().all(|&b| b == 0xa5));
        }

        #[test]
        fn reply_round_trip(
            xid in any::<u32>(), secs in any::<u16>(), flags in any::<u16>(), yi in any::<[u8; 4]>(),
            lease in proptest::option::of(any::<u32>()),
            host in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..=255)),
            file in proptest::collection::vec(1u8..=255, 0..=127),
            boot in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..=254)),
            uuid in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..=255)),
            nopxe in any::<bool>(),
            kind in 1u8..=8,
        ) {
            let mut r = base();
            r.message_type = MessageType::from(kind);
            r.xid = xid;
            r.secs = secs;
            r.flags = flags;
            r.yiaddr = Ipv4Addr::from(yi);
            r.lease_time = lease;
            r.hostname = host.as_deref();
            r.file = &file;
            r.bootfile = boot.as_deref();
            r.client_uuid = uuid.as_deref();
            r.ipxe_no_pxedhcp = nopxe;
            let mut buf = [0xa5u8; 1500];
            let n = r.emit(&mut buf).unwrap();
            prop_assert_eq!(n, r.buffer_len());
            let p = Packet::new_checked(&buf[..n]).unwrap();
            prop_assert_eq!((p.xid(), p.secs(), p.flags(), p.yiaddr()), (xid, secs, flags, Ipv4Addr::from(yi)));
            prop_assert_eq!(c_str(p.file()), &file[..]);
            let opts: Vec<(u8, &[u8])> = p.options().collect::<Result<_, _>>().unwrap();
            let get = |c: u8| opts.iter().find(|o| o.0 == c).map(|o| o.1);
            prop_assert_eq!(get(code::MESSAGE_TYPE), Some(&[kind][..]));
            prop_assert_eq!(get(code::LEASE_TIME).map(<[u8]>::to_vec), lease.map(|l| l.to_be_bytes().to_vec()));
            prop_assert_eq!(get(code::HOSTNAME), host.as_deref());
            prop_assert_eq!(get(code::CLIENT_UUID), uuid.as_deref());
            prop_assert_eq!(get(code::BOOTFILE).map(|v| v.split_last().map(|(_, h)| h.to_vec())), boot.map(Some));
            prop_assert_eq!(get(code::IPXE).is_some(), nopxe);
        }

        #[test]
        fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..700)) {
            if let Ok(p) = Packet::new_checked(&data[..]) {
                let errs = p.options().filter(Result::is_err).count();
                prop_assert!(errs <= 1);
                if let Ok(req) = crate::dhcp::request::Request::parse(&p) {
                    let cfg = crate::dhcp::pxe::PolicyConfig::default();
                    let info = crate::dhcp::pxe::ClientInfo::from_request(&req);
                    let d = crate::dhcp::pxe::decide(&info, &cfg, &Default::default());
                    let mut r = Reply::answering(&req, MessageType::Offer);
                    d.apply(&mut r, &req);
                    let mut buf = [0u8; 1500];
                    if let Ok(n) = r.emit(&mut buf) {
                        prop_assert_eq!(n, r.buffer_len());
                    }
                }
            }
        }

        #[test]
        fn random_options_in_a_request_never_panic(
            opts in proptest::collection::vec(any::<u8>(), 0..400),
            overload in 0u8..5,
        ) {
            let mut data = include_bytes!("../../tests/fixtures/dhcp/edk2-pxe-discover.bin")[..240].to_vec();
            data.extend_from_slice(&[52, 1, overload]);
            data.extend_from_slice(&opts);
            let p = Packet::new_checked(&data[..]).unwrap();
            let _ = crate::dhcp::request::Request::parse(&p);
            prop_assert!(p.options().filter(Result::is_err).count() <= 1);
        }
    }
}
