//! State machine tests: hand-built client messages and the captured firmware fixtures.

use super::*;
use crate::config::DhcpMode;
use crate::dhcp::options::code;
use crate::dhcp::wire::{BOOTREPLY, FLAG_BROADCAST, HEADER_LEN, MAGIC_COOKIE, c_str};
use proptest::prelude::*;

const SID: Ipv4Addr = Ipv4Addr::new(10, 9, 0, 1);
const MAC_A: [u8; 6] = [2, 0, 0, 0, 0, 0xa];
const MAC_B: [u8; 6] = [2, 0, 0, 0, 0, 0xb];
const MAC_R: [u8; 6] = [2, 0, 0, 0, 0, 0x99];

static EDK2_DISCOVER: &[u8] = include_bytes!("../../../tests/fixtures/dhcp/edk2-pxe-discover.bin");
static EDK2_REQUEST: &[u8] = include_bytes!("../../../tests/fixtures/dhcp/edk2-pxe-request.bin");
static UDHCPC_DISCOVER: &[u8] = include_bytes!("../../../tests/fixtures/dhcp/udhcpc-discover.bin");
static IPXE_DISCOVER: &[u8] = include_bytes!("../../../tests/fixtures/dhcp/ipxe-bios-discover.bin");
static IPXE_REQUEST: &[u8] = include_bytes!("../../../tests/fixtures/dhcp/ipxe-bios-request.bin");

/// A client message under construction.
struct Msg(Vec<u8>);

impl Msg {
    fn new(mt: MessageType, mac: [u8; 6], xid: u32) -> Msg {
        let mut b = vec![0u8; HEADER_LEN];
        b[0] = 1;
        b[1] = 1;
        b[2] = 6;
        b[4..8].copy_from_slice(&xid.to_be_bytes());
        b[28..34].copy_from_slice(&mac);
        b[236..240].copy_from_slice(&MAGIC_COOKIE);
        let mut m = Msg(b);
        m = m.opt(code::MESSAGE_TYPE, &[u8::from(mt)]);
        m
    }
    fn opt(mut self, c: u8, v: &[u8]) -> Msg {
        self.0.push(c);
        self.0.push(v.len() as u8);
        self.0.extend_from_slice(v);
        self
    }
    fn ip(self, c: u8, ip: Ipv4Addr) -> Msg {
        self.opt(c, &ip.octets())
    }
    fn ciaddr(mut self, ip: Ipv4Addr) -> Msg {
        self.0[12..16].copy_from_slice(&ip.octets());
        self
    }
    fn giaddr(mut self, ip: Ipv4Addr) -> Msg {
        self.0[24..28].copy_from_slice(&ip.octets());
        self
    }
    fn broadcast(mut self) -> Msg {
        self.0[10..12].copy_from_slice(&FLAG_BROADCAST.to_be_bytes());
        self
    }
    fn done(mut self) -> Vec<u8> {
        self.0.push(255);
        self.0
    }
}

fn dhcp_cfg() -> DhcpConfig {
    DhcpConfig {
        mode: DhcpMode::Server,
        subnet: Some(Ipv4Addr::new(10, 9, 0, 0)),
        netmask: Some(Ipv4Addr::new(255, 255, 255, 0)),
        broadcast: None,
        range: Some((Ipv4Addr::new(10, 9, 0, 100), Ipv4Addr::new(10, 9, 0, 103))),
        router: Some(SID),
        domain_name_servers: vec![SID],
        domain_name: Some("lab".into()),
        lease_time: Duration::from_secs(3600),
        ..DhcpConfig::default()
    }
}

fn settings(mode: Mode) -> ServerSettings {
    let mut s = ServerSettings::new(mode, dhcp_cfg(), PolicyConfig::new(mode, SID, 8080));
    s.reservations.push(Reservation {
        mac: MAC_R,
        ip: Some(Ipv4Addr::new(10, 9, 0, 101)),
        hostname: Some("node-r".into()),
    });
    s
}

struct T {
    s: Server,
    now: Instant,
    out: Vec<u8>,
}

fn arrival(port: u16) -> Arrival {
    Arrival {
        ifindex: 2,
        local_addr: SID,
        subnet: Some((SID, 24)),
        port,
        src: SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, CLIENT_PORT),
    }
}

impl T {
    fn new(mode: Mode) -> T {
        let now = Instant::now();
        T { s: Server::new(settings(mode), now, 1_700_000_000).unwrap(), now, out: vec![0; 1500] }
    }
    fn send_at(&mut self, data: &[u8], a: Arrival) -> Outcome {
        self.s.handle_packet(self.now, data, &a, &mut self.out)
    }
    fn send(&mut self, data: &[u8]) -> Outcome {
        self.send_at(data, arrival(SERVER_PORT))
    }
    fn reply(&self, o: &Outcome) -> Packet<&[u8]> {
        let r = o.reply.expect("a reply");
        Packet::new_checked(&self.out[..r.len]).unwrap()
    }
    fn opt(&self, o: &Outcome, c: u8) -> Option<Vec<u8>> {
        let p = self.reply(o);
        p.options().filter_map(Result::ok).find(|(k, _)| *k == c).map(|(_, v)| v.to_vec())
    }
    /// DISCOVER + REQUEST (SELECTING); returns the address.
    fn dora(&mut self, mac: [u8; 6], xid: u32) -> Ipv4Addr {
        let o = self.send(&Msg::new(MessageType::Discover, mac, xid).done());
        assert_eq!(o.event, Event::Offered, "{o:?}");
        let ip = o.reply.unwrap().yiaddr;
        let o = self.send(
            &Msg::new(MessageType::Request, mac, xid)
                .ip(code::SERVER_ID, SID)
                .ip(code::REQUESTED_IP, ip)
                .done(),
        );
        assert_eq!(o.event, Event::Acked, "{o:?}");
        assert_eq!(o.journal.unwrap().ip, ip);
        ip
    }
    fn assert_unique(&self) {
        let leased = self.s.leases().filter(|l| !l.offered && !l.declined).count();
        assert_eq!(self.s.lease_count(), leased);
        let mut seen = HashMap::new();
        for l in self.s.leases() {
            assert!(seen.insert(l.ip, l.key).is_none());
        }
        let mut keys = HashMap::new();
        for l in self.s.leases().filter(|l| !l.declined) {
            if let Some(other) = keys.insert(l.key, l.ip) {
                panic!("{:?} holds {other} and {}", l.key, l.ip);
            }
        }
    }
}

#[test]
fn dora_gives_a_pool_address_with_the_network_options() {
    let mut t = T::new(Mode::Server);
    let o = t.send(&Msg::new(MessageType::Discover, MAC_A, 7).done());
    assert_eq!(o.event, Event::Offered);
    let plan = o.reply.unwrap();
    assert_eq!(plan.message_type, MessageType::Offer);
    assert_eq!(plan.yiaddr, Ipv4Addr::new(10, 9, 0, 100));
    assert_eq!(plan.delivery, Delivery::Link { ip: plan.yiaddr, mac: MAC_A });
    assert!(o.journal.is_none(), "an OFFER changes nothing durable");
    let p = t.reply(&o);
    assert_eq!(p.op(), BOOTREPLY);
    assert_eq!(p.xid(), 7);
    assert_eq!(t.opt(&o, code::SERVER_ID), Some(SID.octets().to_vec()));
    assert_eq!(t.opt(&o, code::SUBNET_MASK), Some(vec![255, 255, 255, 0]));
    assert_eq!(t.opt(&o, code::ROUTER), Some(SID.octets().to_vec()));
    assert_eq!(t.opt(&o, code::DOMAIN_NAME), Some(b"lab".to_vec()));
    assert_eq!(t.opt(&o, code::LEASE_TIME), Some(3600u32.to_be_bytes().to_vec()));
    assert_eq!(t.opt(&o, code::BOOTFILE), None, "udhcpc-like clients get no boot file");
    let ip = plan.yiaddr;
    let o = t.send(
        &Msg::new(MessageType::Request, MAC_A, 7).ip(code::SERVER_ID, SID).ip(code::REQUESTED_IP, ip).done(),
    );
    assert_eq!(o.event, Event::Acked);
    let rec = o.journal.unwrap();
    assert_eq!((rec.kind, rec.ip, rec.mac), (RecordKind::Lease, ip, MAC_A));
    assert_eq!(rec.expires, 1_700_000_000 + 3600);
    assert_eq!(t.s.lease_count(), 1);
    t.assert_unique();
}

#[test]
fn broadcast_flag_and_relay_choose_the_delivery() {
    let mut t = T::new(Mode::Server);
    let o = t.send(&Msg::new(MessageType::Discover, MAC_A, 1).broadcast().done());
    assert_eq!(o.reply.unwrap().delivery, Delivery::Broadcast);
    let relay = Ipv4Addr::new(10, 9, 0, 254);
    let o = t.send(&Msg::new(MessageType::Discover, MAC_B, 2).giaddr(relay).done());
    assert_eq!(o.reply.unwrap().delivery, Delivery::Relay(relay));
    assert_eq!(t.reply(&o).giaddr(), relay);
    let o = t.send(&Msg::new(MessageType::Discover, MAC_B, 2).giaddr(Ipv4Addr::new(192, 0, 2, 1)).done());
    assert_eq!(o.event, Event::Ignored, "giaddr outside the pool");
    // A request that arrived on a link of another subnet is not ours to answer.
    let mut a = arrival(SERVER_PORT);
    a.subnet = Some((Ipv4Addr::new(192, 168, 5, 1), 24));
    let o = t.send_at(&Msg::new(MessageType::Discover, MAC_B, 3).done(), a);
    assert_eq!(o.event, Event::Ignored);
}

#[test]
fn clients_never_share_an_address_and_the_pool_runs_out_cleanly() {
    let mut t = T::new(Mode::Server);
    // 4 addresses, one of them (.101) reserved for MAC_R.
    let a = t.dora(MAC_A, 1);
    let b = t.dora(MAC_B, 2);
    let c = t.dora([2, 0, 0, 0, 0, 0xc], 3);
    let reserved = Ipv4Addr::new(10, 9, 0, 101);
    assert!(a != b && b != c && a != c);
    assert!(![a, b, c].contains(&reserved));
    let o = t.send(&Msg::new(MessageType::Discover, [2, 0, 0, 0, 0, 0xd], 4).done());
    assert_eq!(o.event, Event::PoolExhausted);
    assert!(o.reply.is_none());
    // The reserved client still gets its address and hostname.
    let o = t.send(&Msg::new(MessageType::Discover, MAC_R, 5).done());
    assert_eq!(o.reply.unwrap().yiaddr, reserved);
    assert_eq!(t.opt(&o, code::HOSTNAME), Some(b"node-r".to_vec()));
    assert_eq!(t.dora(MAC_R, 5), reserved);
    t.assert_unique();
}

#[test]
fn an_offer_is_held_briefly_then_reusable() {
    let mut t = T::new(Mode::Server);
    let macs: Vec<[u8; 6]> = (0..3).map(|i| [2, 0, 0, 0, 1, i]).collect();
    for (i, m) in macs.iter().enumerate() {
        assert_eq!(t.send(&Msg::new(MessageType::Discover, *m, i as u32).done()).event, Event::Offered);
    }
    let late = [2, 0, 0, 0, 1, 9];
    assert_eq!(t.send(&Msg::new(MessageType::Discover, late, 9).done()).event, Event::PoolExhausted);
    t.now += Duration::from_secs(31);
    assert_eq!(t.send(&Msg::new(MessageType::Discover, late, 9).done()).event, Event::Offered);
    t.assert_unique();
}

#[test]
fn selecting_another_server_frees_our_offer_and_a_wrong_address_is_naked() {
    let mut t = T::new(Mode::Server);
    let o = t.send(&Msg::new(MessageType::Discover, MAC_A, 1).done());
    let ip = o.reply.unwrap().yiaddr;
    let other = Ipv4Addr::new(10, 9, 0, 2);
    let o = t.send(
        &Msg::new(MessageType::Request, MAC_A, 1)
            .ip(code::SERVER_ID, other)
            .ip(code::REQUESTED_IP, ip)
            .done(),
    );
    assert_eq!(o.event, Event::Ignored);
    assert_eq!(t.s.leases().count(), 0, "the offer was dropped");
    let b = t.dora(MAC_B, 2);
    let o = t.send(
        &Msg::new(MessageType::Request, MAC_A, 3).ip(code::SERVER_ID, SID).ip(code::REQUESTED_IP, b).done(),
    );
    assert_eq!(o.event, Event::Naked);
    assert_eq!(o.reply.unwrap().delivery, Delivery::Broadcast);
    assert_eq!(t.opt(&o, code::MESSAGE_TYPE), Some(vec![6]));
    t.assert_unique();
}

#[test]
fn init_reboot_acks_ours_naks_wrong_or_taken_and_ignores_unknown() {
    let mut t = T::new(Mode::Server);
    let a = t.dora(MAC_A, 1);
    let b = t.dora(MAC_B, 2);
    let reboot = |mac, ip| Msg::new(MessageType::Request, mac, 0x4f20c03a).ip(code::REQUESTED_IP, ip).done();
    let o = t.send(&reboot(MAC_A, a));
    assert_eq!(o.event, Event::Acked, "{o:?}");
    let o = t.send(&reboot(MAC_A, Ipv4Addr::new(192, 168, 1, 5)));
    assert_eq!(o.event, Event::Naked, "wrong subnet");
    let o = t.send(&reboot(MAC_A, b));
    assert_eq!(o.event, Event::Naked, "taken by B");
    let o = t.send(&reboot([2, 0, 0, 0, 0, 0xe], Ipv4Addr::new(10, 9, 0, 103)));
    assert_eq!(o.event, Event::Ignored, "no record: silent");
    // The reserved client asking for a pool address is told to start over.
    let o = t.send(&reboot(MAC_R, Ipv4Addr::new(10, 9, 0, 103)));
    assert_eq!(o.event, Event::Naked);
    t.assert_unique();
}

#[test]
fn renewing_and_rebinding_extend_and_strangers_are_refused() {
    let mut t = T::new(Mode::Server);
    let a = t.dora(MAC_A, 1);
    t.now += Duration::from_secs(1800);
    let o = t.send(&Msg::new(MessageType::Request, MAC_A, 2).ciaddr(a).done());
    assert_eq!(o.event, Event::Acked);
    assert_eq!(o.reply.unwrap().delivery, Delivery::Client(a));
    assert_eq!(o.journal.unwrap().expires, 1_700_000_000 + 1800 + 3600);
    let o = t.send(&Msg::new(MessageType::Request, MAC_A, 3).ciaddr(a).broadcast().done());
    assert_eq!(o.event, Event::Acked, "REBINDING");
    let o = t.send(&Msg::new(MessageType::Request, MAC_B, 4).ciaddr(a).done());
    assert_eq!(o.event, Event::Naked, "B renewing A's address");
    t.assert_unique();
}

#[test]
fn renewing_without_a_record_recreates_a_free_lease() {
    let mut t = T::new(Mode::Server);
    let a = t.dora(MAC_A, 1);
    // B renews .103, which we never leased (say the lease file was lost): it keeps it.
    let free = Ipv4Addr::new(10, 9, 0, 103);
    assert_ne!(a, free);
    let o = t.send(&Msg::new(MessageType::Request, MAC_B, 5).ciaddr(free).done());
    assert_eq!(o.event, Event::Acked, "unknown lease on a free address: re-created");
    let rec = o.journal.expect("re-created lease is journalled");
    assert_eq!((rec.ip, rec.mac), (free, MAC_B));
    assert_eq!(o.reply.unwrap().delivery, Delivery::Client(free));
    // Renewing an address outside the pool: NAK; rebinding it (broadcast): silent.
    let outside = Ipv4Addr::new(10, 9, 0, 50);
    let o = t.send(&Msg::new(MessageType::Request, MAC_B, 6).ciaddr(outside).done());
    assert_eq!(o.event, Event::Naked, "RENEWING an address we cannot give");
    let o = t.send(&Msg::new(MessageType::Request, MAC_B, 7).ciaddr(outside).broadcast().done());
    assert_eq!(o.event, Event::Ignored, "REBINDING an address we cannot give: maybe another server's");
    // A third client renewing B's re-created lease is refused.
    let o = t.send(&Msg::new(MessageType::Request, [2, 0, 0, 0, 0, 0xc], 8).ciaddr(free).done());
    assert_eq!(o.event, Event::Naked);
    t.assert_unique();
}

#[test]
fn release_frees_and_decline_quarantines() {
    let mut t = T::new(Mode::Server);
    let a = t.dora(MAC_A, 1);
    let o = t.send(&Msg::new(MessageType::Release, MAC_B, 2).ciaddr(a).ip(code::SERVER_ID, SID).done());
    assert_eq!(o.event, Event::Ignored, "B cannot release A's lease");
    let o = t.send(&Msg::new(MessageType::Release, MAC_A, 2).ciaddr(a).ip(code::SERVER_ID, SID).done());
    assert_eq!(o.event, Event::Released);
    assert_eq!(o.journal.unwrap().kind, RecordKind::Release);
    assert_eq!(t.s.lease_count(), 0);

    let b = t.dora(MAC_B, 3);
    let o = t.send(
        &Msg::new(MessageType::Decline, MAC_B, 4).ip(code::REQUESTED_IP, b).ip(code::SERVER_ID, SID).done(),
    );
    assert_eq!(o.event, Event::Declined);
    assert_eq!(o.journal.unwrap().kind, RecordKind::Decline);
    // Nobody, not even B, gets the declined address during the quarantine.
    for (i, m) in [MAC_B, MAC_A].iter().enumerate() {
        let got = t.dora(*m, 10 + i as u32);
        assert_ne!(got, b);
    }
    t.now += Duration::from_secs(601);
    let o = t.send(&Msg::new(MessageType::Discover, [2, 0, 0, 0, 0, 0xd], 20).done());
    assert_eq!(o.reply.unwrap().yiaddr, b, "quarantine over");
    t.assert_unique();
}

#[test]
fn inform_gets_options_without_a_lease() {
    let mut t = T::new(Mode::Server);
    let ip = Ipv4Addr::new(10, 9, 0, 50);
    let o = t.send(&Msg::new(MessageType::Inform, MAC_A, 1).ciaddr(ip).done());
    assert_eq!(o.event, Event::Informed);
    assert_eq!(o.reply.unwrap().delivery, Delivery::Client(ip));
    assert_eq!(t.reply(&o).yiaddr(), Ipv4Addr::UNSPECIFIED);
    assert_eq!(t.reply(&o).ciaddr(), ip);
    assert_eq!(t.opt(&o, code::LEASE_TIME), None);
    assert_eq!(t.opt(&o, code::ROUTER), Some(SID.octets().to_vec()));
    assert!(o.journal.is_none());
    assert_eq!(t.s.leases().count(), 0);
}

#[test]
fn client_id_and_chaddr_are_separate_keys_and_repeated_xids_do_not_confuse() {
    let mut t = T::new(Mode::Server);
    let a = t.dora(MAC_A, 0x1234);
    // iPXE after a reboot: same xid, same MAC: the same address again.
    assert_eq!(t.dora(MAC_A, 0x1234), a);
    // A different client reusing that xid gets its own address.
    let b = t.dora(MAC_B, 0x1234);
    assert_ne!(a, b);
    // The same MAC with option 61 is another client (RFC 2131 §4.2).
    let o = t.send(&Msg::new(MessageType::Discover, MAC_A, 9).opt(code::CLIENT_ID, b"\x01id-a").done());
    assert_ne!(o.reply.unwrap().yiaddr, a);
    t.assert_unique();
}

#[test]
fn pxe_clients_get_the_boot_decision_and_ipxe_history_breaks_the_chainload_loop() {
    let mut t = T::new(Mode::Server);
    let o = t.send(EDK2_DISCOVER);
    assert_eq!(o.event, Event::Offered);
    assert_eq!(o.boot.unwrap().kind, DecisionKind::TftpBinary);
    assert_eq!(c_str(t.reply(&o).file()), b"ipxe.efi");
    assert_eq!(t.reply(&o).siaddr(), SID);
    let o = t.send(EDK2_REQUEST);
    assert!(matches!(o.event, Event::Acked | Event::Naked | Event::Ignored), "{o:?}");

    // The iPXE ROM: our settings chainload only iPXE without HTTP, so it gets the script.
    let o = t.send(IPXE_DISCOVER);
    assert_eq!(o.event, Event::Offered);
    assert_eq!(o.boot.unwrap().kind, DecisionKind::IpxeScript);
    let o = t.send(UDHCPC_DISCOVER);
    assert_eq!(o.event, Event::Offered);
    assert_eq!(o.boot, None);
    let _ = IPXE_REQUEST;
}

#[test]
fn chainload_once_then_script_after_the_ack() {
    let mut s = settings(Mode::Server);
    s.policy.ipxe_chainload = crate::dhcp::pxe::IpxeChainload::Always;
    let now = Instant::now();
    let mut t = T { s: Server::new(s, now, 1_700_000_000).unwrap(), now, out: vec![0; 1500] };
    let mac = [0x52, 0x54, 0x00, 0xc0, 0xee, 0x01];
    let ipxe = |mt| Msg::new(mt, mac, 5).opt(code::USER_CLASS, b"iPXE");
    let o = t.send(&ipxe(MessageType::Discover).done());
    assert_eq!(o.boot.unwrap().kind, DecisionKind::TftpBinary);
    let ip = o.reply.unwrap().yiaddr;
    let req = ipxe(MessageType::Request).ip(code::SERVER_ID, SID).ip(code::REQUESTED_IP, ip).done();
    let o = t.send(&req);
    assert_eq!(o.boot.unwrap().kind, DecisionKind::TftpBinary, "the ACK matches the OFFER");
    // The chainloaded iPXE looks the same, and now gets the script.
    let o = t.send(&ipxe(MessageType::Discover).done());
    assert_eq!(o.boot.unwrap().kind, DecisionKind::IpxeScript);
    let o = t.send(&req);
    assert_eq!(o.boot.unwrap().kind, DecisionKind::IpxeScript);
}

#[test]
fn proxy_answers_only_boot_clients_with_no_address() {
    let mut t = T::new(Mode::Proxy);
    assert_eq!(t.send(UDHCPC_DISCOVER).event, Event::Ignored);
    let o = t.send(EDK2_DISCOVER);
    assert_eq!(o.event, Event::ProxyOffered, "{o:?}");
    let p = t.reply(&o);
    assert_eq!(p.yiaddr(), Ipv4Addr::UNSPECIFIED);
    assert_eq!(c_str(p.file()), b"ipxe.efi");
    assert_eq!(t.opt(&o, code::VENDOR_CLASS), Some(b"PXEClient".to_vec()));
    assert!(t.opt(&o, code::VENDOR_SPECIFIC).is_some());
    assert_eq!(t.opt(&o, code::LEASE_TIME), None);
    assert_eq!(o.reply.unwrap().delivery, Delivery::Broadcast);
    // The REQUEST to the real DHCP server is not ours.
    let o = t.send(EDK2_REQUEST);
    assert_eq!(o.event, Event::Ignored);
    // Nor is it when the site's DHCP server runs on this host and so has our address: it asks
    // for an address (option 50), which only the DHCP server gives.
    let same_host = Msg::new(MessageType::Request, MAC_A, 9)
        .opt(code::VENDOR_CLASS, b"PXEClient:Arch:00007:UNDI:003016")
        .opt(code::CLIENT_ARCH, &[0, 7])
        .ip(code::SERVER_ID, SID)
        .ip(code::REQUESTED_IP, Ipv4Addr::new(10, 9, 0, 150))
        .done();
    assert_eq!(t.send(&same_host).event, Event::Ignored, "the co-located DHCP server's REQUEST");
    // A REQUEST to us on 67 that asks for no address is ours.
    let to_proxy = Msg::new(MessageType::Request, MAC_A, 10)
        .opt(code::VENDOR_CLASS, b"PXEClient:Arch:00007:UNDI:003016")
        .opt(code::CLIENT_ARCH, &[0, 7])
        .ip(code::SERVER_ID, SID)
        .done();
    assert_eq!(t.send(&to_proxy).event, Event::ProxyAcked);
    // On 4011 the client, now configured, asks us directly.
    let src = SocketAddrV4::new(Ipv4Addr::new(10, 9, 0, 150), 68);
    let mut a = arrival(PXE_PORT);
    a.src = src;
    let req = Msg::new(MessageType::Request, MAC_A, 8)
        .ciaddr(*src.ip())
        .opt(code::VENDOR_CLASS, b"PXEClient:Arch:00007:UNDI:003016")
        .opt(code::CLIENT_ARCH, &[0, 7])
        .done();
    let o = t.send_at(&req, a);
    assert_eq!(o.event, Event::ProxyAcked);
    assert_eq!(o.reply.unwrap().delivery, Delivery::Source(src));
    assert_eq!(t.opt(&o, code::MESSAGE_TYPE), Some(vec![5]));
    assert_eq!(c_str(t.reply(&o).file()), b"ipxe.efi");
    assert_eq!(t.s.leases().count(), 0, "a ProxyDHCP holds no leases");
}

#[test]
fn restore_keeps_acknowledged_leases_and_refuses_conflicts() {
    let mut t = T::new(Mode::Server);
    let a = t.dora(MAC_A, 1);
    let records: Vec<_> = t.s.live_records(t.now).collect();
    assert_eq!(records.len(), 1);
    let mut t2 = T::new(Mode::Server);
    let mut dup = records[0];
    dup.key = ClientKey::new(None, 1, &MAC_B);
    assert_eq!(t2.s.restore(&[records[0], dup]), 1, "a second owner of one address is refused");
    // After the restart the client's INIT-REBOOT is confirmed and B cannot take the address.
    let o = t2.send(&Msg::new(MessageType::Request, MAC_A, 1).ip(code::REQUESTED_IP, a).done());
    assert_eq!(o.event, Event::Acked);
    let b = t2.dora(MAC_B, 2);
    assert_ne!(a, b);
    t2.assert_unique();
}

#[test]
fn garbage_is_counted_not_answered() {
    let mut t = T::new(Mode::Server);
    for data in [&[][..], &[1, 2, 3][..], &[0u8; 300][..]] {
        assert_eq!(t.send(data).event, Event::Malformed);
    }
    assert_eq!(t.s.stats().malformed, 3);
}

#[derive(Debug, Clone)]
enum Step {
    Discover(u8),
    Select(u8, u8),
    Reboot(u8, u8),
    Renew(u8, u8),
    Release(u8, u8),
    Decline(u8, u8),
    Wait(u16),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (0u8..6).prop_map(Step::Discover),
        (0u8..6, 98u8..106).prop_map(|(c, i)| Step::Select(c, i)),
        (0u8..6, 98u8..106).prop_map(|(c, i)| Step::Reboot(c, i)),
        (0u8..6, 98u8..106).prop_map(|(c, i)| Step::Renew(c, i)),
        (0u8..6, 98u8..106).prop_map(|(c, i)| Step::Release(c, i)),
        (0u8..6, 98u8..106).prop_map(|(c, i)| Step::Decline(c, i)),
        (0u16..4000).prop_map(Step::Wait),
    ]
}

proptest! {
    /// Any sequence of client messages from six clients (one of them reserved) keeps every
    /// address with at most one client, and every ACK names an address the client then holds.
    #[test]
    fn no_address_is_ever_held_by_two_clients(steps in proptest::collection::vec(step(), 1..80)) {
        let mut t = T::new(Mode::Server);
        let mac = |c: u8| if c == 5 { MAC_R } else { [2, 0, 0, 0, 2, c] };
        let ip = |i: u8| Ipv4Addr::new(10, 9, 0, i);
        for s in steps {
            let msg = match s {
                Step::Discover(c) => Msg::new(MessageType::Discover, mac(c), 1).done(),
                Step::Select(c, i) => Msg::new(MessageType::Request, mac(c), 1)
                    .ip(code::SERVER_ID, SID).ip(code::REQUESTED_IP, ip(i)).done(),
                Step::Reboot(c, i) => Msg::new(MessageType::Request, mac(c), 1).ip(code::REQUESTED_IP, ip(i)).done(),
                Step::Renew(c, i) => Msg::new(MessageType::Request, mac(c), 1).ciaddr(ip(i)).done(),
                Step::Release(c, i) => Msg::new(MessageType::Release, mac(c), 1).ciaddr(ip(i)).done(),
                Step::Decline(c, i) => Msg::new(MessageType::Decline, mac(c), 1).ip(code::REQUESTED_IP, ip(i)).done(),
                Step::Wait(s) => {
                    t.now += Duration::from_secs(u64::from(s));
                    continue;
                }
            };
            let o = t.send(&msg);
            if o.event == Event::Acked {
                let r = o.reply.unwrap();
                let held = t.s.leases().find(|l| l.ip == r.yiaddr).unwrap();
                prop_assert!(!held.offered && !held.declined);
                prop_assert_eq!(held.key, ClientKey::new(None, 1, &msg[28..34]));
                if r.yiaddr == ip(101) {
                    prop_assert_eq!(held.mac, MAC_R);
                }
            }
            t.assert_unique();
        }
    }
}

#[test]
fn firmware_without_client_id_and_the_ipxe_it_loads_share_one_lease() {
    let mut t = T::new(Mode::Server);
    // EDK2's PXE: no option 61.
    let a = t.dora(MAC_A, 1);
    // The ipxe.efi it chainloads: option 61 = 01:<mac>. Same machine, same address.
    let mut id = vec![1u8];
    id.extend_from_slice(&MAC_A);
    let o = t.send(&Msg::new(MessageType::Discover, MAC_A, 2).opt(code::CLIENT_ID, &id).done());
    assert_eq!(o.event, Event::Offered);
    assert_eq!(o.reply.unwrap().yiaddr, a);
    let o = t.send(
        &Msg::new(MessageType::Request, MAC_A, 2)
            .opt(code::CLIENT_ID, &id)
            .ip(code::SERVER_ID, SID)
            .ip(code::REQUESTED_IP, a)
            .done(),
    );
    assert_eq!(o.event, Event::Acked);
    assert_eq!(t.s.lease_count(), 1, "one machine, one lease");
    // A client id that is not the hardware address is another client.
    let o = t.send(&Msg::new(MessageType::Discover, MAC_A, 3).opt(code::CLIENT_ID, b"\x00other").done());
    assert_ne!(o.reply.unwrap().yiaddr, a);
    t.assert_unique();
}

#[test]
fn without_a_server_address_each_interface_names_itself() {
    // A multi-homed ProxyDHCP host: the same client on the second interface must be sent to
    // that interface's address (siaddr and the script URL), not to the first one's.
    let other = Ipv4Addr::new(192, 168, 7, 1);
    let on_other =
        Arrival { ifindex: 3, local_addr: other, subnet: Some((other, 24)), ..arrival(SERVER_PORT) };
    let mut t = T::new(Mode::Proxy);
    assert_eq!(t.s.settings().server_address, None);
    let mut seen = Vec::new();
    for fixture in [EDK2_DISCOVER, IPXE_DISCOVER] {
        let o = t.send(fixture);
        assert_eq!(o.event, Event::ProxyOffered, "{o:?}");
        let (file, siaddr) =
            (String::from_utf8(c_str(t.reply(&o).file()).to_vec()).unwrap(), t.reply(&o).siaddr());
        assert_eq!(siaddr, SID);
        let o = t.send_at(fixture, on_other);
        assert_eq!(o.event, Event::ProxyOffered, "{o:?}");
        assert_eq!(o.reply.unwrap().server_id, other);
        let p = t.reply(&o);
        assert_eq!(p.siaddr(), other);
        let want = file.replace("10.9.0.1", "192.168.7.1");
        assert_eq!(String::from_utf8(c_str(p.file()).to_vec()).unwrap(), want);
        seen.push(want);
    }
    assert!(seen.iter().any(|f| f.starts_with("http://192.168.7.1:8080/")), "{seen:?}");
    assert_eq!(t.s.policy(other).server, other);
    assert_eq!(t.s.policy(SID).server, SID);

    // A configured address is used whatever the interface.
    let mut s = settings(Mode::Proxy);
    s.server_address = Some(SID);
    let mut t = T { s: Server::new(s, t.now, 1_700_000_000).unwrap(), now: t.now, out: t.out };
    let o = t.send_at(IPXE_DISCOVER, on_other);
    assert_eq!((o.reply.unwrap().server_id, t.reply(&o).siaddr()), (SID, SID));
    assert_eq!(t.s.policy(other).server, SID);
}

#[test]
fn local_policies_are_bounded() {
    let mut t = T::new(Mode::Proxy);
    for i in 0..(MAX_LOCAL_POLICIES as u8 + 4) {
        let a = Ipv4Addr::new(172, 16, i, 1);
        let o = t
            .send_at(EDK2_DISCOVER, Arrival { local_addr: a, subnet: Some((a, 24)), ..arrival(SERVER_PORT) });
        assert_eq!(o.event, Event::ProxyOffered);
        let want = if usize::from(i) < MAX_LOCAL_POLICIES { a } else { SID };
        assert_eq!(t.s.policy(a).server, want, "{a}");
    }
}

/// [`settings`] plus a relayed pool 10.20.0.0/24 with two addresses and its own router.
fn two_pools() -> T {
    let mut s = settings(Mode::Server);
    s.dhcp.pools.push(crate::config::PoolConfig {
        subnet: Ipv4Addr::new(10, 20, 0, 0),
        netmask: Ipv4Addr::new(255, 255, 255, 0),
        range: (Ipv4Addr::new(10, 20, 0, 10), Ipv4Addr::new(10, 20, 0, 11)),
        router: Some(Ipv4Addr::new(10, 20, 0, 1)),
        broadcast: None,
        domain_name_servers: None,
    });
    let now = Instant::now();
    T { s: Server::new(s, now, 1_700_000_000).unwrap(), now, out: vec![0; 1500] }
}

#[test]
fn each_relay_gets_addresses_and_options_of_its_own_pool() {
    let mut t = two_pools();
    let relay = Ipv4Addr::new(10, 20, 0, 1);
    let o = t.send(&Msg::new(MessageType::Discover, MAC_A, 1).giaddr(relay).done());
    assert_eq!(o.event, Event::Offered, "{o:?}");
    let ip = o.reply.unwrap().yiaddr;
    assert_eq!(ip, Ipv4Addr::new(10, 20, 0, 10));
    assert_eq!(o.reply.unwrap().delivery, Delivery::Relay(relay));
    assert_eq!(t.opt(&o, code::ROUTER), Some(relay.octets().to_vec()));
    assert_eq!(t.opt(&o, code::SUBNET_MASK), Some(vec![255, 255, 255, 0]));
    assert_eq!(t.opt(&o, code::DNS_SERVERS), Some(SID.octets().to_vec()), "inherited from [dhcp]");
    let req = Msg::new(MessageType::Request, MAC_A, 1)
        .giaddr(relay)
        .ip(code::SERVER_ID, SID)
        .ip(code::REQUESTED_IP, ip);
    assert_eq!(t.send(&req.done()).event, Event::Acked);
    // Its renewal comes unicast, straight to us on our own link: still its pool.
    let o = t.send(&Msg::new(MessageType::Request, MAC_A, 2).ciaddr(ip).done());
    assert_eq!((o.event, o.reply.unwrap().yiaddr), (Event::Acked, ip), "{o:?}");
    assert_eq!(t.opt(&o, code::ROUTER), Some(relay.octets().to_vec()));
    // A client on our own link gets the [dhcp] pool and its router.
    let o = t.send(&Msg::new(MessageType::Discover, MAC_B, 3).done());
    assert!((100..=103).contains(&o.reply.unwrap().yiaddr.octets()[3]), "{o:?}");
    assert_eq!(o.reply.unwrap().yiaddr.octets()[..3], [10, 9, 0]);
    assert_eq!(t.opt(&o, code::ROUTER), Some(SID.octets().to_vec()));
    // Each pool runs out on its own: the relayed pool has two addresses.
    let mac_c = [2, 0, 0, 0, 0, 0xc];
    assert_eq!(t.send(&Msg::new(MessageType::Discover, mac_c, 4).giaddr(relay).done()).event, Event::Offered);
    let o = t.send(&Msg::new(MessageType::Discover, [2, 0, 0, 0, 0, 0xd], 5).giaddr(relay).done());
    assert_eq!(o.event, Event::PoolExhausted, "{o:?}");
    // A relay whose giaddr is on another link names the client's subnet in option 82.5
    // (RFC 3527); that decides, and the reply still goes to giaddr.
    let far_relay = Ipv4Addr::new(10, 30, 0, 1);
    let link = |net: [u8; 4]| [&[1u8, 2, b'p', b'1'][..], &[5, 4], &net].concat();
    let o = t.send(
        &Msg::new(MessageType::Discover, [2, 0, 0, 0, 0, 0xf], 8)
            .giaddr(far_relay)
            .opt(code::RELAY_AGENT, &link([10, 9, 0, 0]))
            .done(),
    );
    assert_eq!(o.event, Event::Offered, "{o:?}");
    assert_eq!(o.reply.unwrap().yiaddr.octets()[..3], [10, 9, 0]);
    assert_eq!(o.reply.unwrap().delivery, Delivery::Relay(far_relay));
    let o = t.send(
        &Msg::new(MessageType::Discover, MAC_B, 9)
            .giaddr(relay)
            .opt(code::RELAY_AGENT, &link([10, 40, 0, 0]))
            .done(),
    );
    assert_eq!(
        (o.event, o.reason),
        (Event::Ignored, "relay's link selection names a subnet outside every pool")
    );
    // A relay of a subnet we do not serve is ignored.
    let o = t.send(&Msg::new(MessageType::Discover, MAC_B, 6).giaddr(Ipv4Addr::new(10, 30, 0, 1)).done());
    assert_eq!((o.event, o.reason), (Event::Ignored, "relayed from a giaddr outside every pool's subnet"));
    // The same machine moved to our own link: a new address there, its old one freed.
    let o = t.send(&Msg::new(MessageType::Discover, MAC_A, 7).done());
    assert_eq!(o.reply.unwrap().yiaddr.octets()[..3], [10, 9, 0], "{o:?}");
    t.assert_unique();
}

#[test]
fn restore_keeps_leases_of_every_pool() {
    let mut t = two_pools();
    let rec = |ip: Ipv4Addr, mac: [u8; 6]| LeaseRecord {
        kind: RecordKind::Lease,
        ip,
        expires: 1_700_000_000 + 600,
        mac,
        key: ClientKey::new(None, 1, &mac),
    };
    let records = [
        rec(Ipv4Addr::new(10, 9, 0, 100), MAC_A),
        rec(Ipv4Addr::new(10, 20, 0, 11), MAC_B),
        rec(Ipv4Addr::new(10, 30, 0, 5), [2, 0, 0, 0, 0, 0xe]),
    ];
    assert_eq!(t.s.restore(&records), 2, "the record outside every subnet is skipped");
    // MAC_R's reservation is on our own link: relayed from the other subnet it gets nothing.
    let o = t.send(&Msg::new(MessageType::Discover, MAC_R, 2).giaddr(Ipv4Addr::new(10, 20, 0, 1)).done());
    assert_eq!(
        (o.event, o.reason),
        (Event::PoolExhausted, "reserved address is not on the subnet the client is on")
    );
    let o = t.send(&Msg::new(MessageType::Discover, MAC_B, 1).giaddr(Ipv4Addr::new(10, 20, 0, 1)).done());
    assert_eq!(o.reply.unwrap().yiaddr, Ipv4Addr::new(10, 20, 0, 11), "its restored lease");
}
