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
    for (c, data) in
        [(pxe::BOOT_SERVERS, v.boot_servers), (pxe::BOOT_MENU, v.boot_menu), (pxe::MENU_PROMPT, v.menu_prompt)]
    {
        if let Some(d) = data {
            w.push(c, d).map_err(too_long)?;
        }
    }
    w.finish_padded(0).map_err(too_long)
}
