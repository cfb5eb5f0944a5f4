use super::*;

macro_rules! fixture {
    ($name:literal) => {
        include_bytes!(concat!("../../../tests/fixtures/tftp/", $name))
    };
}

fn opts(r: &Request<'_>) -> Vec<(String, String)> {
    r.options()
        .map(|(n, v)| (String::from_utf8_lossy(n).into_owned(), String::from_utf8_lossy(v).into_owned()))
        .collect()
}

fn rrq(b: &[u8]) -> Request<'_> {
    match parse(b).unwrap() {
        Packet::Rrq(r) => r,
        p => panic!("not an RRQ: {p:?}"),
    }
}

#[test]
fn ipxe_rrq_fixture() {
    let r = rrq(fixture!("ipxe-rrq-blksize-tsize.bin"));
    assert_eq!(r.filename, b"undionly.kpxe");
    assert_eq!(r.mode, Mode::Octet);
    assert_eq!(opts(&r), [("blksize".into(), "1432".into()), ("tsize".into(), "0".into())]);
}

#[test]
fn ipxe_efi_rrq_fixture() {
    let r = rrq(fixture!("ipxe-efi-rrq-blksize-tsize.bin"));
    assert_eq!(r.filename, b"ipxe.efi");
    assert_eq!(opts(&r), [("blksize".into(), "1432".into()), ("tsize".into(), "0".into())]);
}

#[test]
fn edk2_rrq_fixtures() {
    let r = rrq(fixture!("edk2-rrq-tsize-blksize-windowsize.bin"));
    assert_eq!(r.filename, b"ipxe.efi");
    assert_eq!(
        opts(&r),
        [("tsize".into(), "0".into()), ("blksize".into(), "1468".into()), ("windowsize".into(), "4".into())]
    );
    let r = rrq(fixture!("edk2-rrq-retry-without-tsize.bin"));
    assert_eq!(opts(&r), [("blksize".into(), "1468".into()), ("windowsize".into(), "4".into())]);
}

#[test]
fn ack_and_error_fixtures() {
    assert_eq!(parse(fixture!("ack-block0.bin")).unwrap(), Packet::Ack { block: 0 });
    assert_eq!(parse(fixture!("edk2-ack-last-block-580.bin")).unwrap(), Packet::Ack { block: 580 });
    match parse(fixture!("edk2-error-8-after-oack.bin")).unwrap() {
        Packet::Error { code, message } => {
            assert_eq!(code, ErrorCode::OptionNegotiation);
            assert_eq!(message, b"User aborted the transfer");
        }
        p => panic!("{p:?}"),
    }
}

#[test]
fn dnsmasq_oack_fixtures_parse_and_we_emit_the_same_bytes() {
    for (bin, expect) in [
        (&fixture!("dnsmasq-oack.bin")[..], &[("blksize", 1432u64), ("tsize", 74213)][..]),
        (&fixture!("dnsmasq-oack-to-edk2-tsize-probe.bin")[..], &[("blksize", 1468), ("tsize", 850528)][..]),
        (&fixture!("dnsmasq-oack-blksize-only.bin")[..], &[("blksize", 1468)][..]),
    ] {
        let Packet::Oack { options } = parse(bin).unwrap() else { panic!() };
        let got: Vec<(&[u8], u64)> = options.map(|(n, v)| (n, parse_decimal(v).unwrap())).collect();
        let want: Vec<(&[u8], u64)> = expect.iter().map(|(n, v)| (n.as_bytes(), *v)).collect();
        assert_eq!(got, want);
        let mut buf = [0xa5u8; 64];
        let mut w = OptionWriter::new(&mut buf, OP_OACK).unwrap();
        for (n, v) in expect {
            w.option(n.as_bytes(), *v).unwrap();
        }
        let n = w.len();
        assert_eq!(&buf[..n], bin, "emitted OACK differs from dnsmasq's");
    }
}

#[test]
fn emit_ack_error_data() {
    let mut buf = [0xa5u8; 16];
    assert_eq!(put_ack(&mut buf, 580), 4);
    assert_eq!(&buf[..4], fixture!("edk2-ack-last-block-580.bin"));
    let n = put_error(&mut buf, ErrorCode::FileNotFound, "no");
    assert_eq!(&buf[..n], b"\x00\x05\x00\x01no\x00");
    let n = put_error(&mut buf, ErrorCode::AccessViolation, "a very long message that does not fit");
    assert_eq!(n, 16);
    assert_eq!(buf[15], 0);
    put_data_header(&mut buf, 0xfffe);
    assert_eq!(&buf[..4], b"\x00\x03\xff\xfe");
    assert_eq!(parse(&buf[..6]).unwrap(), Packet::Data { block: 0xfffe, data: &buf[4..6] });
}

#[test]
fn every_truncation_of_every_fixture_is_an_error_or_a_packet_never_a_panic() {
    let all: [&[u8]; 10] = [
        fixture!("ack-block0.bin"),
        fixture!("dnsmasq-oack-blksize-only.bin"),
        fixture!("dnsmasq-oack-to-edk2-tsize-probe.bin"),
        fixture!("dnsmasq-oack.bin"),
        fixture!("edk2-ack-last-block-580.bin"),
        fixture!("edk2-error-8-after-oack.bin"),
        fixture!("edk2-rrq-retry-without-tsize.bin"),
        fixture!("edk2-rrq-tsize-blksize-windowsize.bin"),
        fixture!("ipxe-efi-rrq-blksize-tsize.bin"),
        fixture!("ipxe-rrq-blksize-tsize.bin"),
    ];
    for f in all {
        for n in 0..f.len() {
            let _ = parse(&f[..n]).map(|p| {
                if let Packet::Rrq(r) = p {
                    r.options().count();
                }
            });
        }
        assert!(parse(f).is_ok());
    }
    assert_eq!(parse(b""), Err(WireError::Truncated));
    assert_eq!(parse(b"\x00\x01file"), Err(WireError::Malformed));
    assert_eq!(parse(b"\x00\x04\x00"), Err(WireError::Truncated));
    assert_eq!(parse(b"\x00\x09"), Err(WireError::UnknownOpcode(9)));
}

#[test]
fn modes_are_case_insensitive_and_incomplete_options_ignored() {
    let r = rrq(b"\x00\x01f\x00NetASCII\x00blksize\x00");
    assert_eq!(r.mode, Mode::Netascii);
    assert_eq!(r.options().count(), 0);
    assert_eq!(rrq(b"\x00\x01f\x00OCTET\x00").mode, Mode::Octet);
    assert_eq!(rrq(b"\x00\x01f\x00mail\x00").mode, Mode::Mail);
    assert_eq!(rrq(b"\x00\x01f\x00binary\x00").mode, Mode::Unknown);
}

#[test]
fn decimal_round_trip() {
    let mut d = [0u8; 20];
    for v in [0u64, 7, 10, 1468, 65464, u64::MAX] {
        let n = write_decimal(&mut d, v);
        assert_eq!(parse_decimal(&d[..n]), Some(v));
    }
    assert_eq!(parse_decimal(b""), None);
    assert_eq!(parse_decimal(b"-1"), None);
    assert_eq!(parse_decimal(b"18446744073709551616"), None);
    assert_eq!(parse_decimal(b" 1"), None);
}

mod prop {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn parse_never_panics(b in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = parse(&b);
        }

        #[test]
        fn oack_round_trip(vals in proptest::collection::vec(("[a-z]{1,12}", any::<u64>()), 0..6)) {
            let mut buf = [0u8; 512];
            let mut w = OptionWriter::new(&mut buf, OP_OACK).unwrap();
            for (n, v) in &vals {
                w.option(n.as_bytes(), *v).unwrap();
            }
            let len = w.len();
            let Packet::Oack { options } = parse(&buf[..len]).unwrap() else { panic!() };
            let got: Vec<(Vec<u8>, u64)> = options.map(|(n, v)| (n.to_vec(), parse_decimal(v).unwrap())).collect();
            let want: Vec<(Vec<u8>, u64)> = vals.iter().map(|(n, v)| (n.as_bytes().to_vec(), *v)).collect();
            prop_assert_eq!(got, want);
        }
    }
}
