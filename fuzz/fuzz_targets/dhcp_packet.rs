//! Parse arbitrary bytes as a DHCP message: iterate every option, build the request summary,
//! run the PXE policy in both modes and, when it parses, emit a reply into a fixed buffer.
#![no_main]

use std::net::Ipv4Addr;
use std::sync::OnceLock;

use ferroboot::dhcp::options::{SubOptions, reply_capacity};
use ferroboot::dhcp::pxe::{ClientInfo, IpxeChainload, MacHistory, Mode, PolicyConfig, decide};
use ferroboot::dhcp::reply::Reply;
use ferroboot::dhcp::request::Request;
use ferroboot::dhcp::wire::{BOOTP_MIN_LEN, MessageType, Packet};
use libfuzzer_sys::fuzz_target;

fn configs() -> &'static [PolicyConfig; 3] {
    static C: OnceLock<[PolicyConfig; 3]> = OnceLock::new();
    C.get_or_init(|| {
        let server = Ipv4Addr::new(10, 0, 0, 1);
        let mut always = PolicyConfig::new(Mode::Server, server, 8080);
        always.ipxe_chainload = IpxeChainload::Always;
        [PolicyConfig::new(Mode::Server, server, 8080), PolicyConfig::new(Mode::Proxy, server, 80), always]
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(p) = Packet::new_checked(data) else { return };
    let _ = p.check_cookie();
    let _ = (p.xid(), p.flags(), p.mac(), p.client_hw_addr(), p.sname(), p.file());
    let mut errors = 0;
    for item in p.options() {
        match item {
            Ok((_, v)) => SubOptions::new(v).for_each(drop),
            Err(_) => errors += 1,
        }
    }
    assert!(errors <= 1, "the options iterator stops after its first error");
    let Ok(req) = Request::parse(&p) else { return };
    let info = ClientInfo::from_request(&req);
    let mut buf = [0u8; 1500];
    for cfg in configs() {
        for h in [MacHistory::Fresh, MacHistory::ServedIpxeBinary] {
            let d = decide(&info, cfg, &h);
            assert!(!d.reason.is_empty());
            let mut reply = Reply::answering(&req, MessageType::Offer);
            reply.server_id = Some(cfg.server);
            d.apply(&mut reply, &req);
            let cap = reply_capacity(req.max_message_size, buf.len());
            if let Ok(n) = reply.emit(&mut buf[..cap]) {
                assert!(n >= BOOTP_MIN_LEN && n <= cap);
                assert_eq!(n, reply.buffer_len());
                let back = Packet::new_checked(&buf[..n]).expect("our reply parses");
                assert_eq!(back.xid(), req.xid);
                assert!(back.options().all(|o| o.is_ok()), "our reply's options parse");
            }
        }
    }
});
