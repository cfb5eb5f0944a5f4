//! DHCP wire layer and PXE policy against the captured firmware fixtures
//! (`tests/fixtures/dhcp/`, a copy of `../shared/fixtures`, described in its README.md).

use std::net::Ipv4Addr;
use std::time::Duration;

use ferroboot::config::{DhcpConfig, DhcpMode};
use ferroboot::dhcp::options::{Options, SubOptions, code, reply_capacity};
use ferroboot::dhcp::pxe::{
    ClientInfo, DecisionKind, Family, IpxeChainload, MacHistory, Mode, PolicyConfig, VendorClass, decide,
};
use ferroboot::dhcp::reply::Reply;
use ferroboot::dhcp::request::{Ndi, Request};
use ferroboot::dhcp::wire::{BOOTP_MIN_LEN, Error, HEADER_LEN, MessageType, Packet, c_str};

macro_rules! fixture {
    ($name:literal) => {
        ($name, include_bytes!(concat!("fixtures/dhcp/", $name)) as &[u8])
    };
}

const ALL: [(&str, &[u8]); 19] = [
    fixture!("dnsmasq-ack-to-edk2.bin"),
    fixture!("dnsmasq-ack-to-ipxe-bios.bin"),
    fixture!("dnsmasq-ack-to-undionly-broadcast.bin"),
    fixture!("dnsmasq-offer-to-edk2.bin"),
    fixture!("dnsmasq-offer-to-ipxe-bios.bin"),
    fixture!("dnsmasq-offer-to-udhcpc.bin"),
    fixture!("dnsmasq-offer-to-undionly-broadcast.bin"),
    fixture!("edk2-pxe-discover.bin"),
    fixture!("edk2-pxe-request.bin"),
    fixture!("ipxe-bios-discover.bin"),
    fixture!("ipxe-bios-request.bin"),
    fixture!("ipxe-efi-chain-discover.bin"),
    fixture!("ipxe-efi-chain-request.bin"),
    fixture!("ipxe-efi-discover.bin"),
    fixture!("ipxe-efi-request.bin"),
    fixture!("udhcpc-discover.bin"),
    fixture!("udhcpc-request.bin"),
    fixture!("undionly-chain-discover.bin"),
    fixture!("undionly-chain-request.bin"),
];

fn fx(name: &str) -> &'static [u8] {
    ALL.iter().find(|(n, _)| *n == name).map(|(_, b)| *b).expect("fixture name")
}

const MAC1: [u8; 6] = [0x52, 0x54, 0x00, 0xc0, 0xee, 0x01];
const MAC2: [u8; 6] = [0x52, 0x54, 0x00, 0xc0, 0xee, 0x02];
const SERVER: [u8; 4] = [10, 251, 0, 1];
const IP107: [u8; 4] = [10, 251, 0, 107];
const IP108: [u8; 4] = [10, 251, 0, 108];
const SCRIPT_URL: &[u8] = b"http://10.251.0.1:8080/boot.ipxe";
const IPXE_PRL: &[u8] =
    &[1, 3, 6, 7, 12, 15, 17, 26, 43, 60, 66, 67, 119, 128, 129, 130, 131, 132, 133, 134, 135, 175, 203];
const EDK2_PRL: &[u8] = &[
    1, 2, 3, 4, 5, 6, 12, 13, 15, 17, 18, 22, 23, 28, 40, 41, 42, 43, 50, 51, 54, 58, 59, 60, 66, 67, 97,
    128, 129, 130, 131, 132, 133, 134, 135,
];
const UDHCPC_PRL: &[u8] = &[1, 3, 6, 12, 15, 28, 42];

/// TLV bytes from `(code, value)` pairs.
fn tlv(items: &[(u8, &[u8])]) -> Vec<u8> {
    let mut v = Vec::new();
    for (c, d) in items {
        v.push(*c);
        v.push(d.len() as u8);
        v.extend_from_slice(d);
    }
    v
}

fn ipxe_175(efi: bool, srp: bool) -> Vec<u8> {
    let mut items: Vec<(u8, &[u8])> =
        vec![(177, &[1, 0x1a, 0xf4, 0x10, 0x00]), (235, &[1, 0, 0]), (23, &[1])];
    if efi {
        items.extend([(36, &[1][..]), (19, &[1]), (17, &[1]), (39, &[1]), (41, &[1]), (21, &[1])]);
        if srp {
            items.push((27, &[1]));
        }
        items.push((18, &[1]));
    } else {
        items.extend([
            (34, &[1][..]),
            (19, &[1]),
            (17, &[1]),
            (39, &[1]),
            (25, &[1]),
            (41, &[1]),
            (16, &[2]),
            (33, &[1]),
            (21, &[1]),
            (24, &[1]),
            (18, &[1]),
        ]);
    }
    tlv(&items)
}

fn client_id(mac: [u8; 6]) -> Vec<u8> {
    let mut v = vec![1];
    v.extend_from_slice(&mac);
    v
}

type Opts = Vec<(u8, Vec<u8>)>;

fn o(c: u8, v: impl AsRef<[u8]>) -> (u8, Vec<u8>) {
    (c, v.as_ref().to_vec())
}

fn ipxe_options(kind: u8, arch: u8, ndi: [u8; 3], vc: &str, t175: Vec<u8>, mac: [u8; 6]) -> Opts {
    vec![
        o(53, [kind]),
        o(57, 1472u16.to_be_bytes()),
        o(93, [0, arch]),
        o(94, ndi),
        o(60, vc),
        o(77, "iPXE"),
        o(55, IPXE_PRL),
        o(175, t175),
        o(61, client_id(mac)),
        o(97, [0u8; 17]),
    ]
}

fn ipxe_bios(kind: u8) -> Opts {
    ipxe_options(kind, 0, [1, 2, 1], "PXEClient:Arch:00000:UNDI:002001", ipxe_175(false, false), MAC1)
}

fn with_request_tail(mut v: Opts, ip: [u8; 4]) -> Opts {
    v.push(o(54, SERVER));
    v.push(o(50, ip));
    v
}

fn dnsmasq_reply(kind: u8, bootfile: Option<&[u8]>, ipxe: bool) -> Opts {
    let mut v = vec![o(53, [kind]), o(54, SERVER), o(51, 3600u32.to_be_bytes())];
    if let Some(f) = bootfile {
        let mut f = f.to_vec();
        f.push(0);
        v.push(o(67, f));
    }
    v.extend([
        o(58, 1800u32.to_be_bytes()),
        o(59, 3150u32.to_be_bytes()),
        o(1, [255, 255, 255, 0]),
        o(28, [10, 251, 0, 255]),
        o(3, SERVER),
    ]);
    if ipxe {
        v.push(o(175, [176, 1, 1, 255]));
    }
    v
}

struct Expect {
    name: &'static str,
    len: usize,
    op: u8,
    xid: u32,
    secs: u16,
    flags: u16,
    mac: [u8; 6],
    file: &'static [u8],
    options: Opts,
    /// Zero bytes the sender put after END.
    pad_after_end: usize,
}

fn expectations() -> Vec<Expect> {
    let e = |name, len, op, xid, secs, flags, mac, options, pad| Expect {
        name,
        len,
        op,
        xid,
        secs,
        flags,
        mac,
        file: b"",
        options,
        pad_after_end: pad,
    };
    let efi_rom =
        |k| ipxe_options(k, 7, [1, 3, 10], "PXEClient:Arch:00007:UNDI:003010", ipxe_175(true, false), MAC2);
    let efi_chain =
        |k| ipxe_options(k, 7, [1, 3, 10], "PXEClient:Arch:00007:UNDI:003010", ipxe_175(true, true), MAC1);
    let edk2_vc = "PXEClient:Arch:00007:UNDI:003000";
    let edk2_discover = vec![
        o(53, [1]),
        o(57, 1472u16.to_be_bytes()),
        o(55, EDK2_PRL),
        o(97, [0u8; 17]),
        o(94, [1, 3, 0]),
        o(93, [0, 7]),
        o(60, edk2_vc),
    ];
    let edk2_request = vec![
        o(53, [3]),
        o(54, SERVER),
        o(50, IP107),
        o(57, 65280u16.to_be_bytes()),
        o(55, EDK2_PRL),
        o(97, [0u8; 17]),
        o(94, [1, 3, 0]),
        o(93, [0, 7]),
        o(60, edk2_vc),
    ];
    let udhcpc_discover = vec![
        o(53, [1]),
        o(57, 576u16.to_be_bytes()),
        o(55, UDHCPC_PRL),
        o(60, "udhcp 1.35.0"),
        o(61, client_id(MAC1)),
    ];
    let udhcpc_request = vec![
        o(53, [3]),
        o(50, IP107),
        o(54, SERVER),
        o(57, 576u16.to_be_bytes()),
        o(55, UDHCPC_PRL),
        o(60, "udhcp 1.35.0"),
        o(61, client_id(MAC1)),
    ];
    let mut udhcpc_offer =
        e("dnsmasq-offer-to-udhcpc.bin", 300, 2, 0x72f49525, 0, 0, MAC1, dnsmasq_reply(2, None, false), 14);
    udhcpc_offer.file = SCRIPT_URL;
    vec![
        e("ipxe-bios-discover.bin", 400, 1, 0x4f20c03a, 4, 0, MAC1, ipxe_bios(1), 0),
        e(
            "dnsmasq-offer-to-ipxe-bios.bin",
            308,
            2,
            0x4f20c03a,
            4,
            0,
            MAC1,
            dnsmasq_reply(2, Some(b"undionly.kpxe"), true),
            0,
        ),
        e(
            "ipxe-bios-request.bin",
            412,
            1,
            0x4f20c03a,
            10,
            0,
            MAC1,
            with_request_tail(ipxe_bios(3), IP107),
            0,
        ),
        e(
            "dnsmasq-ack-to-ipxe-bios.bin",
            308,
            2,
            0x4f20c03a,
            10,
            0,
            MAC1,
            dnsmasq_reply(5, Some(b"undionly.kpxe"), true),
            0,
        ),
        e("undionly-chain-discover.bin", 400, 1, 0x515ad33f, 4, 0x8000, MAC1, ipxe_bios(1), 0),
        e(
            "dnsmasq-offer-to-undionly-broadcast.bin",
            327,
            2,
            0x515ad33f,
            4,
            0x8000,
            MAC1,
            dnsmasq_reply(2, Some(SCRIPT_URL), true),
            0,
        ),
        e(
            "undionly-chain-request.bin",
            412,
            1,
            0x515ad33f,
            10,
            0x8000,
            MAC1,
            with_request_tail(ipxe_bios(3), IP107),
            0,
        ),
        e(
            "dnsmasq-ack-to-undionly-broadcast.bin",
            327,
            2,
            0x515ad33f,
            10,
            0x8000,
            MAC1,
            dnsmasq_reply(5, Some(SCRIPT_URL), true),
            0,
        ),
        e("udhcpc-discover.bin", 300, 1, 0x72f49525, 0, 0, MAC1, udhcpc_discover, 20),
        udhcpc_offer,
        e("udhcpc-request.bin", 300, 1, 0x72f49525, 0, 0, MAC1, udhcpc_request, 8),
        e("edk2-pxe-discover.bin", 347, 1, 0xb057a062, 0, 0x8000, MAC1, edk2_discover, 0),
        e(
            "dnsmasq-offer-to-edk2.bin",
            300,
            2,
            0xb057a062,
            0,
            0x8000,
            MAC1,
            dnsmasq_reply(2, Some(b"ipxe.efi"), false),
            3,
        ),
        e("edk2-pxe-request.bin", 359, 1, 0xb057a062, 0, 0x8000, MAC1, edk2_request, 0),
        e(
            "dnsmasq-ack-to-edk2.bin",
            300,
            2,
            0xb057a062,
            0,
            0x8000,
            MAC1,
            dnsmasq_reply(5, Some(b"ipxe.efi"), false),
            3,
        ),
        e("ipxe-efi-chain-discover.bin", 391, 1, 0x1ef0ae70, 4, 0, MAC1, efi_chain(1), 0),
        e(
            "ipxe-efi-chain-request.bin",
            403,
            1,
            0x1ef0ae70,
            18,
            0,
            MAC1,
            with_request_tail(efi_chain(3), IP107),
            0,
        ),
        e("ipxe-efi-discover.bin", 388, 1, 0x3f1bb559, 4, 0, MAC2, efi_rom(1), 0),
        e("ipxe-efi-request.bin", 400, 1, 0x3f1bb559, 10, 0, MAC2, with_request_tail(efi_rom(3), IP108), 0),
    ]
}

fn options_of(bytes: &[u8]) -> Opts {
    let p = Packet::new_checked(bytes).expect("length");
    p.options().map(|r| r.map(|(c, v)| (c, v.to_vec()))).collect::<Result<_, _>>().expect("options")
}

/// Offset of the END option, walking TLVs independently of the crate's iterator.
fn end_offset(bytes: &[u8]) -> usize {
    let mut i = HEADER_LEN;
    while bytes[i] != 255 {
        i += if bytes[i] == 0 { 1 } else { 2 + bytes[i + 1] as usize };
    }
    i
}

#[test]
fn every_fixture_has_an_expectation() {
    let exp = expectations();
    assert_eq!(exp.len(), ALL.len());
    for (name, _) in ALL {
        assert_eq!(exp.iter().filter(|e| e.name == name).count(), 1, "{name}");
    }
}

#[test]
fn fixtures_decode_to_readme_values() {
    for e in expectations() {
        let bytes = fx(e.name);
        let p = Packet::new_checked(bytes).unwrap();
        assert_eq!(bytes.len(), e.len, "{}: length", e.name);
        assert_eq!(p.check_cookie(), Ok(()), "{}", e.name);
        assert_eq!(p.op(), e.op, "{}: op", e.name);
        assert_eq!((p.htype(), p.hlen(), p.hops()), (1, 6, 0), "{}", e.name);
        assert_eq!(p.xid(), e.xid, "{}: xid", e.name);
        assert_eq!(p.secs(), e.secs, "{}: secs", e.name);
        assert_eq!(p.flags(), e.flags, "{}: flags", e.name);
        assert_eq!(p.ciaddr(), Ipv4Addr::UNSPECIFIED, "{}", e.name);
        assert_eq!(p.giaddr(), Ipv4Addr::UNSPECIFIED, "{}", e.name);
        let (yi, si) = if e.op == 2 {
            (Ipv4Addr::from(IP107), Ipv4Addr::from(SERVER))
        } else {
            (Ipv4Addr::UNSPECIFIED, Ipv4Addr::UNSPECIFIED)
        };
        assert_eq!((p.yiaddr(), p.siaddr()), (yi, si), "{}", e.name);
        assert_eq!(p.mac(), Some(e.mac), "{}: chaddr", e.name);
        assert!(p.chaddr()[6..].iter().all(|&b| b == 0), "{}", e.name);
        assert!(p.sname().iter().all(|&b| b == 0), "{}: sname", e.name);
        assert_eq!(c_str(p.file()), e.file, "{}: file", e.name);
        assert_eq!(options_of(bytes), e.options, "{}: options", e.name);
        let end = end_offset(bytes);
        assert_eq!(bytes.len() - end - 1, e.pad_after_end, "{}: padding", e.name);
        assert!(bytes[end + 1..].iter().all(|&b| b == 0), "{}", e.name);
    }
}

#[test]
fn rom_and_chainloaded_undionly_send_identical_options() {
    // Fixtures README point 2: only xid and the broadcast flag differ.
    for (rom, chain) in [
        ("ipxe-bios-discover.bin", "undionly-chain-discover.bin"),
        ("ipxe-bios-request.bin", "undionly-chain-request.bin"),
    ] {
        let (a, b) = (fx(rom), fx(chain));
        assert_eq!(a[HEADER_LEN..], b[HEADER_LEN..]);
        assert_ne!(a[4..8], b[4..8]);
        assert_ne!(a[10..12], b[10..12]);
    }
}

#[test]
fn dnsmasq_175_keeps_its_inner_end() {
    let opts = options_of(fx("dnsmasq-offer-to-ipxe-bios.bin"));
    let (_, v) = opts.iter().find(|(c, _)| *c == code::IPXE).unwrap();
    let subs: Vec<_> = SubOptions::new(v).collect();
    assert_eq!(subs, vec![Ok((176, &[1u8][..]))]);
}

fn parse(name: &str) -> Request<'static> {
    Request::parse(&Packet::new_checked(fx(name)).unwrap()).unwrap()
}

#[test]
fn request_summary_ipxe_bios() {
    for (name, kind) in [
        ("ipxe-bios-discover.bin", MessageType::Discover),
        ("ipxe-bios-request.bin", MessageType::Request),
        ("undionly-chain-discover.bin", MessageType::Discover),
        ("undionly-chain-request.bin", MessageType::Request),
    ] {
        let r = parse(name);
        assert_eq!(r.message_type, Some(kind), "{name}");
        assert_eq!(r.mac(), Some(MAC1));
        assert_eq!(r.max_message_size, Some(1472));
        assert_eq!(r.client_arch, Some(0));
        assert_eq!(r.client_ndi, Some(Ndi { kind: 1, major: 2, minor: 1 }));
        assert_eq!(r.vendor_class, Some(&b"PXEClient:Arch:00000:UNDI:002001"[..]));
        let uc = r.user_class.unwrap();
        assert_eq!(uc.raw(), b"iPXE");
        assert!(uc.rfc3004_instances().is_none(), "raw text, not RFC 3004 (README point 1)");
        assert!(uc.matches(b"iPXE"));
        assert_eq!(r.parameter_list, Some(IPXE_PRL));
        let ipxe = r.ipxe.unwrap();
        assert_eq!(ipxe.0.len(), 48);
        assert_eq!(ipxe.version(), Some([1, 0, 0]));
        assert_eq!(ipxe.get(177), Some(&[1, 0x1a, 0xf4, 0x10, 0x00][..]));
        assert!(ipxe.has_feature(19) && ipxe.has_feature(33) && !ipxe.has_feature(36));
        assert_eq!(ipxe.get(16), Some(&[2][..]));
        assert_eq!(r.client_id, Some(&client_id(MAC1)[..]));
        assert_eq!(r.client_uuid, Some(&[0u8; 17][..]));
        assert!(r.requests(67) && !r.requests(2));
        let is_req = kind == MessageType::Request;
        assert_eq!(r.server_id, is_req.then(|| Ipv4Addr::from(SERVER)));
        assert_eq!(r.requested_ip, is_req.then(|| Ipv4Addr::from(IP107)));
        assert_eq!((r.relay_agent, r.lease_time, r.hostname, r.overload), (None, None, None, 0));
        assert_eq!(r.broadcast(), name.starts_with("undionly"));
        assert_eq!((r.file, r.sname), (&b""[..], &b""[..]));
    }
}

#[test]
fn request_summary_ipxe_efi() {
    for (name, mac, srp, len175) in [
        ("ipxe-efi-discover.bin", MAC2, false, 36),
        ("ipxe-efi-request.bin", MAC2, false, 36),
        ("ipxe-efi-chain-discover.bin", MAC1, true, 39),
        ("ipxe-efi-chain-request.bin", MAC1, true, 39),
    ] {
        let r = parse(name);
        assert_eq!(r.mac(), Some(mac), "{name}");
        assert_eq!(r.client_arch, Some(7));
        assert_eq!(r.client_ndi, Some(Ndi { kind: 1, major: 3, minor: 10 }));
        assert_eq!(r.vendor_class, Some(&b"PXEClient:Arch:00007:UNDI:003010"[..]));
        let ipxe = r.ipxe.unwrap();
        assert_eq!(ipxe.0.len(), len175);
        assert!(ipxe.has_feature(36) && !ipxe.has_feature(33));
        assert_eq!(ipxe.has_feature(27), srp, "SRP only in the chainloaded ipxe.efi");
        assert_eq!(r.client_id, Some(&client_id(mac)[..]));
        assert!(!r.broadcast());
    }
    assert_eq!(parse("ipxe-efi-request.bin").requested_ip, Some(Ipv4Addr::from(IP108)));
    assert_eq!(parse("ipxe-efi-chain-request.bin").secs, 18);
}

#[test]
fn request_summary_edk2_and_udhcpc() {
    let d = parse("edk2-pxe-discover.bin");
    assert_eq!(d.message_type, Some(MessageType::Discover));
    assert_eq!((d.client_arch, d.max_message_size), (Some(7), Some(1472)));
    assert_eq!(d.client_ndi, Some(Ndi { kind: 1, major: 3, minor: 0 }));
    assert_eq!((d.client_id, d.user_class, d.ipxe), (None, None, None), "EDK2 sends no 61/77/175");
    assert_eq!(d.parameter_list, Some(EDK2_PRL));
    assert!(d.broadcast());
    let r = parse("edk2-pxe-request.bin");
    assert_eq!(r.max_message_size, Some(65280));
    assert_eq!(r.server_id, Some(Ipv4Addr::from(SERVER)));
    assert_eq!(r.requested_ip, Some(Ipv4Addr::from(IP107)));
    // README point 4: 65280 must not size the reply.
    assert_eq!(reply_capacity(r.max_message_size, 1472), 1472);

    for name in ["udhcpc-discover.bin", "udhcpc-request.bin"] {
        let u = parse(name);
        assert_eq!(u.vendor_class, Some(&b"udhcp 1.35.0"[..]));
        assert_eq!((u.client_arch, u.client_ndi, u.user_class, u.client_uuid), (None, None, None, None));
        assert_eq!(u.max_message_size, Some(576));
        assert_eq!(u.parameter_list, Some(UDHCPC_PRL));
        assert_eq!(u.client_id, Some(&client_id(MAC1)[..]));
    }
}

#[test]
fn replies_are_not_requests() {
    for (name, bytes) in ALL {
        let p = Packet::new_checked(bytes).unwrap();
        let r = Request::parse(&p);
        assert_eq!(r.is_ok(), !name.starts_with("dnsmasq"), "{name}");
        if name.starts_with("dnsmasq") {
            assert_eq!(r.err(), Some(Error::NotRequest));
        }
    }
}

#[test]
fn every_prefix_of_every_fixture_is_handled() {
    for (name, bytes) in ALL {
        for n in 0..=bytes.len() {
            let cut = &bytes[..n];
            let Ok(p) = Packet::new_checked(cut) else {
                assert!(n < HEADER_LEN, "{name}@{n}");
                continue;
            };
            let items: Vec<_> = p.options().collect();
            // At most one error, and only as the last item.
            assert!(items.iter().rev().skip(1).all(Result::is_ok), "{name}@{n}");
            let r = Request::parse(&p);
            if name.starts_with("dnsmasq") {
                assert_eq!(r.err(), Some(Error::NotRequest), "{name}@{n}");
            } else if let Err(e) = r {
                assert_eq!(e, Error::Truncated, "{name}@{n}");
            } else if let Ok(r) = r {
                let cfg = PolicyConfig::default();
                let d = decide(&ClientInfo::from_request(&r), &cfg, &MacHistory::Fresh);
                assert!(!d.reason.is_empty());
            }
        }
        // The whole message and the message cut right before END both parse.
        let end = end_offset(bytes);
        assert_eq!(options_of(&bytes[..end]), options_of(bytes), "{name}");
    }
}

fn policy(mode: Mode) -> PolicyConfig {
    PolicyConfig::new(mode, Ipv4Addr::from(SERVER), 8080)
}

fn bootfile_of_dnsmasq_reply(name: &str) -> Vec<u8> {
    let bytes = fx(name);
    let opts = options_of(bytes);
    match opts.iter().find(|(c, _)| *c == code::BOOTFILE) {
        Some((_, v)) => v.strip_suffix(&[0]).unwrap_or(v).to_vec(),
        None => c_str(Packet::new_checked(bytes).unwrap().file()).to_vec(),
    }
}

#[test]
fn policy_table_against_every_request_fixture() {
    use DecisionKind::*;
    let server = policy(Mode::Server);
    // (fixture, kind, boot file, family, what the README says about it)
    let table: [(&str, DecisionKind, Option<&str>, Option<Family>); 12] = [
        // QEMU's NIC ROM already is iPXE: straight to the script (README point 2).
        ("ipxe-bios-discover.bin", IpxeScript, Some("http://10.251.0.1:8080/boot.ipxe"), Some(Family::Bios)),
        ("ipxe-bios-request.bin", IpxeScript, Some("http://10.251.0.1:8080/boot.ipxe"), Some(Family::Bios)),
        (
            "undionly-chain-discover.bin",
            IpxeScript,
            Some("http://10.251.0.1:8080/boot.ipxe"),
            Some(Family::Bios),
        ),
        (
            "undionly-chain-request.bin",
            IpxeScript,
            Some("http://10.251.0.1:8080/boot.ipxe"),
            Some(Family::Bios),
        ),
        ("edk2-pxe-discover.bin", TftpBinary, Some("ipxe.efi"), Some(Family::EfiX64)),
        ("edk2-pxe-request.bin", TftpBinary, Some("ipxe.efi"), Some(Family::EfiX64)),
        ("ipxe-efi-discover.bin", IpxeScript, Some("http://10.251.0.1:8080/boot.ipxe"), Some(Family::EfiX64)),
        ("ipxe-efi-request.bin", IpxeScript, Some("http://10.251.0.1:8080/boot.ipxe"), Some(Family::EfiX64)),
        (
            "ipxe-efi-chain-discover.bin",
            IpxeScript,
            Some("http://10.251.0.1:8080/boot.ipxe"),
            Some(Family::EfiX64),
        ),
        (
            "ipxe-efi-chain-request.bin",
            IpxeScript,
            Some("http://10.251.0.1:8080/boot.ipxe"),
            Some(Family::EfiX64),
        ),
        ("udhcpc-discover.bin", NotPxe, None, None),
        ("udhcpc-request.bin", NotPxe, None, None),
    ];
    for (name, kind, file, family) in table {
        let c = ClientInfo::from_request(&parse(name));
        for h in [MacHistory::Fresh, MacHistory::ServedIpxeBinary] {
            let d = decide(&c, &server, &h);
            assert_eq!((d.kind, d.boot_file, d.family), (kind, file, family), "{name} {h:?}");
            assert!(!d.reason.is_empty());
            assert!(!d.arch_defaulted);
            assert_eq!(d.next_server, Ipv4Addr::from(SERVER));
            assert_eq!(d.ipxe_no_pxedhcp, c.is_ipxe, "{name}");
            assert_eq!(
                (d.vendor_class, d.pxe_vendor, d.echo_uuid),
                (None, None, false),
                "server mode: no 60/43"
            );
        }
    }
}

#[test]
fn chainload_always_reproduces_dnsmasq_b1_sequence() {
    // With "always chainload", history alone separates the ROM from undionly.kpxe, and the
    // answers match what dnsmasq gave in boot B1.
    let mut cfg = policy(Mode::Server);
    cfg.ipxe_chainload = IpxeChainload::Always;
    let mut h = MacHistory::Fresh;
    for (req, reply) in [
        ("ipxe-bios-discover.bin", "dnsmasq-offer-to-ipxe-bios.bin"),
        ("ipxe-bios-request.bin", "dnsmasq-ack-to-ipxe-bios.bin"),
    ] {
        let d = decide(&ClientInfo::from_request(&parse(req)), &cfg, &h);
        assert_eq!(d.kind, DecisionKind::TftpBinary);
        assert_eq!(d.boot_file.unwrap().as_bytes(), bootfile_of_dnsmasq_reply(reply));
    }
    h = h.after(&decide(&ClientInfo::from_request(&parse("ipxe-bios-request.bin")), &cfg, &h));
    assert_eq!(h, MacHistory::ServedIpxeBinary);
    for (req, reply) in [
        ("undionly-chain-discover.bin", "dnsmasq-offer-to-undionly-broadcast.bin"),
        ("undionly-chain-request.bin", "dnsmasq-ack-to-undionly-broadcast.bin"),
    ] {
        let d = decide(&ClientInfo::from_request(&parse(req)), &cfg, &h);
        assert_eq!(d.kind, DecisionKind::IpxeScript, "{req}");
        assert_eq!(d.boot_file.unwrap().as_bytes(), bootfile_of_dnsmasq_reply(reply));
    }
    // EDK2 then ipxe.efi (boot U1), as dnsmasq answered.
    let mut h = MacHistory::Fresh;
    let d = decide(&ClientInfo::from_request(&parse("edk2-pxe-request.bin")), &cfg, &h);
    assert_eq!(d.boot_file.unwrap().as_bytes(), bootfile_of_dnsmasq_reply("dnsmasq-ack-to-edk2.bin"));
    h = h.after(&d);
    let d = decide(&ClientInfo::from_request(&parse("ipxe-efi-chain-discover.bin")), &cfg, &h);
    assert_eq!(d.kind, DecisionKind::IpxeScript);
    assert_eq!(MacHistory::ServedIpxeBinary.after(&d), MacHistory::Fresh);
}

#[test]
fn proxy_mode_decisions() {
    let cfg = policy(Mode::Proxy);
    let edk2 = decide(&ClientInfo::from_request(&parse("edk2-pxe-discover.bin")), &cfg, &MacHistory::Fresh);
    assert_eq!(edk2.vendor_class, Some("PXEClient"));
    assert_eq!(edk2.pxe_vendor.and_then(|v| v.discovery_control), Some(8));
    assert!(edk2.echo_uuid && !edk2.ipxe_no_pxedhcp);
    let ipxe = decide(&ClientInfo::from_request(&parse("ipxe-bios-discover.bin")), &cfg, &MacHistory::Fresh);
    assert_eq!(
        (ipxe.kind, ipxe.vendor_class, ipxe.ipxe_no_pxedhcp),
        (DecisionKind::IpxeScript, Some("PXEClient"), false)
    );
    let u = decide(&ClientInfo::from_request(&parse("udhcpc-discover.bin")), &cfg, &MacHistory::Fresh);
    assert_eq!(u.kind, DecisionKind::NotPxe, "README point 17: a ProxyDHCP ignores udhcpc");
}

#[test]
fn client_info_from_fixtures() {
    let c = ClientInfo::from_request(&parse("edk2-pxe-discover.bin"));
    assert_eq!((c.arch, c.vendor_class, c.is_ipxe, c.ipxe_http), (Some(7), VendorClass::Pxe, false, None));
    let c = ClientInfo::from_request(&parse("ipxe-efi-discover.bin"));
    assert_eq!((c.mac, c.is_ipxe, c.ipxe_http), (Some(MAC2), true, Some(true)));
    let c = ClientInfo::from_request(&parse("udhcpc-request.bin"));
    assert_eq!(
        (c.arch, c.vendor_class, c.message_type),
        (None, VendorClass::Other, Some(MessageType::Request))
    );
}

fn network() -> DhcpConfig {
    DhcpConfig {
        mode: DhcpMode::Server,
        subnet: Some(Ipv4Addr::new(10, 251, 0, 0)),
        netmask: Some(Ipv4Addr::new(255, 255, 255, 0)),
        broadcast: Some(Ipv4Addr::new(10, 251, 0, 255)),
        range: Some((Ipv4Addr::new(10, 251, 0, 100), Ipv4Addr::new(10, 251, 0, 200))),
        router: Some(Ipv4Addr::from(SERVER)),
        domain_name_servers: Vec::new(),
        domain_name: None,
        lease_time: Duration::from_secs(3600),
        ..DhcpConfig::default()
    }
}

/// Our answer to a request fixture, emitted into a 0xa5-filled buffer.
fn our_reply(req_name: &str, kind: MessageType, cfg: &PolicyConfig, net: &DhcpConfig) -> Vec<u8> {
    let req = parse(req_name);
    let d = decide(&ClientInfo::from_request(&req), cfg, &MacHistory::Fresh);
    let mut reply = Reply::answering(&req, kind).with_network(net);
    reply.yiaddr = Ipv4Addr::from(IP107);
    reply.server_id = Some(Ipv4Addr::from(SERVER));
    reply.siaddr = Ipv4Addr::from(SERVER);
    d.apply(&mut reply, &req);
    let cap = reply_capacity(req.max_message_size, 1472);
    let mut buf = vec![0xa5u8; cap + 16];
    let n = reply.emit(&mut buf[..cap]).unwrap();
    assert_eq!(n, reply.buffer_len(), "{req_name}");
    assert!(n >= BOOTP_MIN_LEN);
    assert!(buf[n..].iter().all(|&b| b == 0xa5), "{req_name}: wrote past its length");
    buf.truncate(n);
    buf
}

#[test]
fn our_replies_carry_what_dnsmasq_sent() {
    let cfg = policy(Mode::Server);
    let net = network();
    for (req, kind, dnsmasq) in [
        ("edk2-pxe-discover.bin", MessageType::Offer, "dnsmasq-offer-to-edk2.bin"),
        ("edk2-pxe-request.bin", MessageType::Ack, "dnsmasq-ack-to-edk2.bin"),
        ("undionly-chain-discover.bin", MessageType::Offer, "dnsmasq-offer-to-undionly-broadcast.bin"),
        ("undionly-chain-request.bin", MessageType::Ack, "dnsmasq-ack-to-undionly-broadcast.bin"),
        ("udhcpc-discover.bin", MessageType::Offer, "dnsmasq-offer-to-udhcpc.bin"),
    ] {
        let ours = our_reply(req, kind, &cfg, &net);
        let theirs = fx(dnsmasq);
        // Same fixed header except `file` (we also fill `file` for ROMs that only read it).
        assert_eq!(ours[..108], theirs[..108], "{req}");
        let mut a = options_of(&ours);
        let mut b = options_of(theirs);
        // We close 175 without dnsmasq's inner END; compare the sub-options.
        for opts in [&mut a, &mut b] {
            for (c, v) in opts.iter_mut() {
                if *c == code::IPXE {
                    *v = SubOptions::new(v).map(|r| r.unwrap()).flat_map(|(c, d)| tlv(&[(c, d)])).collect();
                }
            }
            opts.sort();
        }
        if req.starts_with("udhcpc") {
            // dnsmasq put the script URL in `file` for udhcpc; we give udhcpc no boot file.
            assert_eq!(c_str(Packet::new_checked(&ours[..]).unwrap().file()), b"");
        }
        assert_eq!(a, b, "{req}");
    }
}

#[test]
fn our_replies_decode_with_dhcproto() {
    use dhcproto::v4::{DhcpOption, Message, OptionCode};
    use dhcproto::{Decodable, Decoder, Encodable};
    let net = network();
    for mode in [Mode::Server, Mode::Proxy] {
        let cfg = policy(mode);
        for (name, _) in ALL.iter().filter(|(n, _)| !n.starts_with("dnsmasq")) {
            for kind in [MessageType::Offer, MessageType::Ack] {
                let ours = our_reply(name, kind, &cfg, &net);
                let p = Packet::new_checked(&ours[..]).unwrap();
                let m = Message::decode(&mut Decoder::new(&ours)).expect("dhcproto decodes our reply");
                assert_eq!(u8::from(m.opcode()), 2);
                assert_eq!(m.xid(), p.xid());
                assert_eq!(m.secs(), p.secs());
                assert_eq!(m.flags().broadcast(), p.broadcast());
                assert_eq!((m.yiaddr(), m.siaddr(), m.giaddr()), (p.yiaddr(), p.siaddr(), p.giaddr()));
                assert_eq!(&m.chaddr()[..6], &p.chaddr()[..6]);
                assert_eq!(m.fname().map(c_str).unwrap_or_default(), c_str(p.file()), "{name}");
                assert_eq!(
                    m.opts().get(OptionCode::MessageType),
                    Some(&DhcpOption::MessageType(u8::from(kind).into()))
                );
                // Every option we wrote, re-encoded by dhcproto, is byte-identical.
                let mine = options_of(&ours);
                assert_eq!(m.opts().iter().count(), mine.len(), "{name}: option count");
                for (c, v) in &mine {
                    let theirs = m.opts().get(OptionCode::from(*c)).unwrap_or_else(|| panic!("{name}: {c}"));
                    assert_eq!(theirs.to_vec().unwrap(), tlv(&[(*c, v)]), "{name}: option {c}");
                }
            }
        }
    }
}

#[test]
fn proxy_offer_to_edk2_has_pxe_options() {
    let cfg = policy(Mode::Proxy);
    let req = parse("edk2-pxe-discover.bin");
    let d = decide(&ClientInfo::from_request(&req), &cfg, &MacHistory::Fresh);
    let mut reply = Reply::answering(&req, MessageType::Offer);
    reply.server_id = Some(Ipv4Addr::from(SERVER));
    d.apply(&mut reply, &req);
    let mut buf = [0xa5u8; 600];
    let n = reply.emit(&mut buf).unwrap();
    let opts = options_of(&buf[..n]);
    let codes: Vec<u8> = opts.iter().map(|(c, _)| *c).collect();
    assert_eq!(codes, vec![53, 54, 43, 60, 67, 97]);
    assert_eq!(opts[2].1, vec![6, 1, 8, 255]);
    assert_eq!(opts[3].1, b"PXEClient");
    assert_eq!(opts[4].1, b"ipxe.efi\0");
    assert_eq!(opts[5].1, vec![0u8; 17]);
    let p = Packet::new_checked(&buf[..n]).unwrap();
    assert_eq!(p.yiaddr(), Ipv4Addr::UNSPECIFIED, "a ProxyDHCP offers no address");
    assert_eq!(c_str(p.file()), b"ipxe.efi");
    assert_eq!(n, BOOTP_MIN_LEN);
}

#[test]
fn options_iterator_is_plain_over_option_buffers() {
    let opts: Vec<_> = Options::new(&[53, 1, 5, 255], &[], &[]).collect();
    assert_eq!(opts, vec![Ok((53, &[5u8][..]))]);
}
