//! The load generator's clients fed arbitrary server datagrams and clock steps: the DHCP client
//! (replies with its xid and MAC spliced in, so the parser goes past the filter), the TFTP client
//! (from the TID or a stray port), the HTTP URL/script readers. Nothing panics, the clients only
//! ever emit valid packets, and they always end within their retry budget.
#![no_main]

use ferroboot::dhcp::request::Request;
use ferroboot::dhcp::wire::Packet as DhcpPacket;
use ferroboot::loadgen::{dhcp, http, tftp};
use ferroboot::tftp::wire::parse;
use libfuzzer_sys::fuzz_target;
use std::time::{Duration, Instant};

const MAC: [u8; 6] = [2, 0xfb, 0, 0, 0, 1];

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let (sel, rest) = (data[0], &data[1..]);
    let t0 = Instant::now();
    match sel % 3 {
        0 => {
            let id = dhcp::Identity { mac: MAC, arch: 7, uuid: [0; 16] };
            let mode = if sel & 0x10 != 0 { dhcp::Mode::Proxy } else { dhcp::Mode::Server };
            let profile = if sel & 0x20 != 0 { dhcp::Profile::Ipxe } else { dhcp::Profile::Pxe };
            let timing = dhcp::Timing {
                initial: Duration::from_millis(10),
                tries: 3,
                proxy_wait: Duration::from_millis(5),
            };
            let mut c = dhcp::Client::new(t0, id, profile, mode, timing, 0x0102_0304);
            let mut now = t0;
            let mut buf = [0u8; 1500];
            // Chunks separated by 0xff 0xfe are replies; an empty chunk is a clock step.
            for chunk in rest.split(|&b| b == 0xfe) {
                while let Some(n) = c.poll_transmit(now, &mut buf) {
                    let p = DhcpPacket::new_checked(&buf[..n]).expect("our message has a header");
                    Request::parse(&p).expect("our message parses");
                }
                if chunk.is_empty() {
                    if let Some(d) = c.poll_timeout() {
                        now = now.max(d);
                    }
                    c.handle_timeout(now);
                    continue;
                }
                let mut pkt = chunk.to_vec();
                if pkt.len() >= 240 {
                    pkt[0] = 2;
                    pkt[4..8].copy_from_slice(&0x0102_0304u32.to_be_bytes());
                    pkt[28..34].copy_from_slice(&MAC);
                    pkt[236..240].copy_from_slice(&[99, 130, 83, 99]);
                }
                c.handle(now, &pkt);
            }
            for _ in 0..64 {
                match c.poll_timeout() {
                    Some(d) => {
                        now = now.max(d);
                        c.handle_timeout(now);
                        let _ = c.poll_transmit(now, &mut buf);
                    }
                    None => break,
                }
            }
            assert!(!matches!(c.outcome(), dhcp::Outcome::Running), "the exchange ends");
        }
        1 => {
            let req = tftp::Request {
                file: "f".into(),
                blksize: Some(8 + u16::from(sel >> 2) * 4),
                windowsize: Some(1 + u16::from(sel >> 5)),
                tsize: sel & 0x40 != 0,
                timeout: Duration::from_millis(10),
                retries: 3,
            };
            let mut c = tftp::Client::new(t0, req);
            let mut now = t0;
            let mut buf = vec![0u8; 70000];
            let mut got = 0u64;
            for chunk in rest.split(|&b| b == 0xfe) {
                while let Some((n, _)) = c.poll_transmit(&mut buf) {
                    parse(&buf[..n]).expect("our packet parses");
                }
                match chunk.split_first() {
                    None => {
                        if let Some(d) = c.poll_timeout() {
                            now = now.max(d);
                        }
                        c.handle_timeout(now);
                    }
                    Some((&port, pkt)) => {
                        c.handle(now, 1000 + u16::from(port % 2), pkt, &mut |b| got += b.len() as u64)
                    }
                }
            }
            assert_eq!(got, c.bytes());
            for _ in 0..64 {
                match c.poll_timeout() {
                    Some(d) => {
                        now = now.max(d);
                        c.handle_timeout(now);
                        let _ = c.poll_transmit(&mut buf);
                    }
                    None => break,
                }
            }
            assert!(!matches!(c.outcome(), tftp::Outcome::Running), "the transfer ends");
        }
        _ => {
            let s = String::from_utf8_lossy(rest);
            if let Ok(u) = http::Url::parse(&s) {
                let _ = u.join(&s);
                let _ = u.to_string();
            }
            let base = http::Url::parse("http://10.0.0.1:8080/boot.ipxe").unwrap();
            let vars = http::ipxe_vars(
                &[2, 0xfb, 0, 0, 0, 1],
                "10.0.0.2".parse().unwrap(),
                "10.0.0.1".parse().unwrap(),
                7,
                &[0; 16],
            );
            let _ = http::script_plan(&s, &base, &vars);
        }
    }
});
