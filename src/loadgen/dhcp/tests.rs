use super::*;
use crate::dhcp::request::Request;

const MAC: [u8; 6] = [2, 0xfb, 0, 0, 0, 1];
const SRV: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const PROXY: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

fn id() -> Identity {
    Identity { mac: MAC, arch: 7, uuid: [7; 16] }
}

fn timing() -> Timing {
    Timing { initial: Duration::from_millis(100), tries: 3, proxy_wait: Duration::from_millis(50) }
}

/// A server reply: message type, yiaddr, server id, optional boot file and vendor class.
fn reply(mt: u8, xid: u32, yiaddr: Ipv4Addr, sid: Ipv4Addr, file: Option<&str>, vc: Option<&str>) -> Vec<u8> {
    let mut b = vec![0u8; 600];
    let mut p = Packet::new_unchecked(&mut b[..]);
    p.set_op(BOOTREPLY);
    p.set_htype(1);
    p.set_hlen(6);
    p.set_xid(xid);
    p.set_yiaddr(yiaddr);
    p.set_siaddr(sid);
    p.set_chaddr(&MAC).unwrap();
    p.set_magic_cookie();
    let mut w = OptionWriter::new(p.options_area_mut());
    w.push_u8(code::MESSAGE_TYPE, mt).unwrap();
    w.push_ip(code::SERVER_ID, sid).unwrap();
    if let Some(f) = file {
        w.push(code::BOOTFILE, f.as_bytes()).unwrap();
    }
    if let Some(v) = vc {
        w.push(code::VENDOR_CLASS, v.as_bytes()).unwrap();
    }
    let n = w.finish().unwrap();
    b.truncate(wire::HEADER_LEN + n);
    b
}

fn send(c: &mut Client, now: Instant) -> Vec<u8> {
    let mut buf = [0u8; 1500];
    let n = c.poll_transmit(now, &mut buf).expect("a message is due");
    buf[..n].to_vec()
}

#[test]
fn pxe_discover_carries_what_a_pxe_rom_sends_and_server_mode_binds() {
    let t0 = Instant::now();
    let mut c = Client::new(t0, id(), Profile::Pxe, Mode::Server, timing(), 0x1234);
    let d = send(&mut c, t0);
    assert!(c.poll_transmit(t0, &mut [0u8; 1500]).is_none(), "one message at a time");
    let p = Packet::new_checked(&d[..]).unwrap();
    let r = Request::parse(&p).unwrap();
    assert_eq!(r.message_type, Some(MessageType::Discover));
    assert!(r.broadcast());
    assert_eq!(r.mac(), Some(MAC));
    assert_eq!(r.client_arch, Some(7));
    assert_eq!(r.vendor_class, Some(&b"PXEClient:Arch:00007:UNDI:003016"[..]));
    assert!(r.user_class.is_none() && r.ipxe.is_none());
    // The project's own policy sees a UEFI x64 PXE client.
    let info = crate::dhcp::pxe::ClientInfo::from_request(&r);
    assert_eq!(info.vendor_class, crate::dhcp::pxe::VendorClass::Pxe);
    assert!(!info.is_ipxe);

    let ip = Ipv4Addr::new(10, 0, 0, 100);
    // Another client's offer (other xid) is ignored.
    c.handle(t0, &reply(2, 0x9999, ip, SRV, Some("ipxe.efi"), None));
    assert!(c.poll_transmit(t0, &mut [0u8; 1500]).is_none());
    c.handle(t0, &reply(2, 0x1234, ip, SRV, Some("ipxe.efi"), None));
    let q = send(&mut c, t0);
    let p = Packet::new_checked(&q[..]).unwrap();
    let r = Request::parse(&p).unwrap();
    assert_eq!(r.message_type, Some(MessageType::Request));
    assert_eq!(r.requested_ip, Some(ip));
    assert_eq!(r.server_id, Some(SRV));
    assert_eq!(r.xid, 0x1234);
    c.handle(t0, &reply(5, 0x1234, ip, SRV, Some("ipxe.efi"), None));
    assert_eq!(
        c.outcome(),
        &Outcome::Bound(Lease {
            ip,
            server_id: SRV,
            boot_file: Some("ipxe.efi".into()),
            next_server: SRV,
            proxy: None
        })
    );
    assert_eq!(c.poll_timeout(), None);
}

#[test]
fn ipxe_profile_sends_user_class_and_175_with_http() {
    let t0 = Instant::now();
    let mut c = Client::new(t0, id(), Profile::Ipxe, Mode::Server, timing(), 1);
    let d = send(&mut c, t0);
    let p = Packet::new_checked(&d[..]).unwrap();
    let r = Request::parse(&p).unwrap();
    let info = crate::dhcp::pxe::ClientInfo::from_request(&r);
    assert!(info.is_ipxe);
    assert_eq!(info.ipxe_http, Some(true));
    // Against the project's policy this client gets the script, not a chainload.
    let cfg = crate::dhcp::pxe::PolicyConfig::new(crate::dhcp::pxe::Mode::Server, SRV, 8080);
    let dec = crate::dhcp::pxe::decide(&info, &cfg, &crate::dhcp::pxe::MacHistory::Fresh);
    assert_eq!(dec.kind, crate::dhcp::pxe::DecisionKind::IpxeScript);
}

#[test]
fn retransmits_with_doubling_timeouts_then_fails() {
    let t0 = Instant::now();
    let mut c = Client::new(t0, id(), Profile::Pxe, Mode::Server, timing(), 1);
    send(&mut c, t0);
    assert_eq!(c.poll_timeout(), Some(t0 + Duration::from_millis(100)));
    c.handle_timeout(t0 + Duration::from_millis(99));
    assert!(c.poll_transmit(t0, &mut [0u8; 1500]).is_none(), "not before the deadline");
    let t1 = t0 + Duration::from_millis(100);
    c.handle_timeout(t1);
    send(&mut c, t1);
    assert_eq!(c.poll_timeout(), Some(t1 + Duration::from_millis(200)));
    let t2 = t1 + Duration::from_millis(200);
    c.handle_timeout(t2);
    send(&mut c, t2);
    assert_eq!(c.retransmits(), 2);
    c.handle_timeout(t2 + Duration::from_millis(400));
    match c.outcome() {
        Outcome::Failed(m) => assert!(m.contains("no DHCPOFFER after 3"), "{m}"),
        o => panic!("{o:?}"),
    }
}

#[test]
fn nak_fails_and_foreign_ack_is_ignored() {
    let t0 = Instant::now();
    let mut c = Client::new(t0, id(), Profile::Pxe, Mode::Server, timing(), 5);
    send(&mut c, t0);
    let ip = Ipv4Addr::new(10, 0, 0, 100);
    c.handle(t0, &reply(2, 5, ip, SRV, None, None));
    send(&mut c, t0);
    c.handle(t0, &reply(5, 5, ip, PROXY, None, None));
    assert_eq!(c.outcome(), &Outcome::Running, "ACK from a server we did not request from");
    c.handle(t0, &reply(6, 5, Ipv4Addr::UNSPECIFIED, SRV, None, None));
    assert!(matches!(c.outcome(), Outcome::Failed(m) if m.contains("NAK")));
}

#[test]
fn proxy_mode_takes_address_from_server_and_boot_file_from_proxy() {
    let t0 = Instant::now();
    let mut c = Client::new(t0, id(), Profile::Pxe, Mode::Proxy, timing(), 9);
    send(&mut c, t0);
    let ip = Ipv4Addr::new(10, 0, 0, 100);
    c.handle(t0, &reply(2, 9, ip, SRV, None, None));
    assert!(c.poll_transmit(t0, &mut [0u8; 1500]).is_none(), "waits for the proxy offer");
    c.handle(t0, &reply(2, 9, Ipv4Addr::UNSPECIFIED, PROXY, Some("ipxe.efi"), Some("PXEClient")));
    let q = send(&mut c, t0);
    let r = Request::parse(&Packet::new_checked(&q[..]).unwrap()).unwrap();
    assert_eq!(r.server_id, Some(SRV), "the REQUEST goes to the address server");
    c.handle(t0, &reply(5, 9, ip, SRV, None, None));
    assert_eq!(
        c.outcome(),
        &Outcome::Bound(Lease {
            ip,
            server_id: SRV,
            boot_file: Some("ipxe.efi".into()),
            next_server: PROXY,
            proxy: Some(PROXY)
        })
    );
}

#[test]
fn proxy_mode_without_proxy_retries_then_fails() {
    let t0 = Instant::now();
    let mut c = Client::new(t0, id(), Profile::Pxe, Mode::Proxy, timing(), 9);
    send(&mut c, t0);
    c.handle(t0, &reply(2, 9, Ipv4Addr::new(10, 0, 0, 100), SRV, None, None));
    // The proxy wait (50 ms) shortens the deadline; no boot file in the address offer: resend.
    assert_eq!(c.poll_timeout(), Some(t0 + Duration::from_millis(50)));
    let mut now = t0;
    for _ in 0..10 {
        now = c.poll_timeout().unwrap_or(now);
        c.handle_timeout(now);
        if c.poll_transmit(now, &mut [0u8; 1500]).is_none() && c.poll_timeout().is_none() {
            break;
        }
    }
    assert!(
        matches!(c.outcome(), Outcome::Failed(m) if m.contains("no ProxyDHCP offer")),
        "{:?}",
        c.outcome()
    );
}
