use super::*;
use std::net::Ipv4Addr;

const MAC: [u8; 6] = [0x52, 0x54, 0, 0x12, 0x34, 0x56];
const IP: Ipv4Addr = Ipv4Addr::new(10, 0, 100, 50);

/// The table as the module docs print it, parsed from the source: the code and the docs cannot
/// drift apart, and every (state, step) pair — legal and illegal — is checked.
fn documented_table() -> Vec<(State, Vec<(Step, Verdict)>)> {
    let src = include_str!("../machine.rs");
    let mut lines = src.lines().filter_map(|l| l.strip_prefix("//! |")).map(|l| {
        l.trim_end_matches('|')
            .split('|')
            .map(|c| c.trim().trim_end_matches('¹').to_string())
            .collect::<Vec<_>>()
    });
    let header = lines.next().expect("table header");
    let steps: Vec<Step> = header[1..]
        .iter()
        .map(|h| *Step::ALL.iter().find(|s| s.as_str() == h).unwrap_or_else(|| panic!("column {h}")))
        .collect();
    lines.next(); // |---|
    lines
        .map(|row| {
            let from = State::parse(&row[0]).unwrap_or_else(|| panic!("row {}", row[0]));
            let cells = row[1..]
                .iter()
                .zip(&steps)
                .map(|(c, &step)| {
                    let v = match c.as_str() {
                        "=" => Verdict::Stay,
                        "✗" => Verdict::Illegal,
                        s => Verdict::To(State::parse(s).unwrap_or_else(|| panic!("cell {s}"))),
                    };
                    (step, v)
                })
                .collect();
            (from, cells)
        })
        .collect()
}

#[test]
fn the_code_is_the_documented_table() {
    let table = documented_table();
    assert_eq!(table.len(), State::ALL.len(), "one row per state");
    let mut checked = 0;
    for (from, cells) in &table {
        assert_eq!(cells.len(), Step::ALL.len(), "one column per step in row {from:?}");
        for &(step, want) in cells {
            assert_eq!(next(*from, step), want, "{} + {}", from.as_str(), step.as_str());
            checked += 1;
        }
    }
    assert_eq!(checked, 100);
    // A few rows spelled out, so a wrong docs table cannot pass by matching wrong code.
    assert_eq!(next(State::Installed, Step::Exit), Verdict::To(State::Local));
    assert_eq!(next(State::Installed, Step::Dhcp), Verdict::Stay);
    assert_eq!(next(State::Failed, Step::Dhcp), Verdict::To(State::Dhcp));
    assert_eq!(next(State::Discovered, Step::Installed), Verdict::Illegal);
    assert_eq!(next(State::Local, Step::Booted), Verdict::Illegal);
    assert_eq!(next(State::Local, Step::Reinstall), Verdict::To(State::Discovered));
}

fn inventory() -> Nodes {
    let known = [Known {
        mac: MAC,
        hostname: Some("node01".into()),
        profile: Some("control-plane".into()),
        role: None,
        ip: Some(IP),
    }];
    let files = BootFiles::new([
        ("nixos/control-plane/bzImage", &["nixos/control-plane/initrd".to_string()][..]),
        (
            "/nixos/worker/bzImage",
            &["nixos/worker/initrd".to_string(), "./nixos/worker/extra".to_string()][..],
        ),
    ]);
    let mut n = Nodes::new(&known, files);
    n.seed_inventory(1000);
    n
}

fn ev(step: Step, detail: &str) -> Input<'_> {
    Input::Event { step, detail }
}

fn states(n: &Nodes, mac: [u8; 6]) -> Vec<&'static str> {
    n.get(&mac).unwrap().history.iter().map(|e| e.state.as_str()).collect()
}

#[test]
fn a_whole_install_and_the_next_boot_from_disk() {
    let mut n = inventory();
    let node = n.get(&MAC).unwrap();
    assert!(node.known);
    assert_eq!(node.role.as_deref(), Some("control-plane"), "role defaults to the profile");
    assert_eq!(n.mac_of(IP), Some(MAC), "the configured address is attributed");
    let rom = Input::Dhcp { what: "iPXE binary over TFTP", arch: Some(7), file: "ipxe.efi" };
    assert_eq!(n.apply(MAC, rom, 2000), Applied::Moved(1));
    assert_eq!(n.apply(MAC, rom, 2001), Applied::Stayed, "the same decision again");
    let ipxe = Input::Dhcp { what: "iPXE script", arch: Some(7), file: "http://10.0.100.10:8080/boot.ipxe" };
    assert_eq!(n.apply(MAC, ipxe, 2100), Applied::Moved(1), "a new decision is its own entry");
    assert_eq!(n.file_served(MAC, b"ipxe.efi", 1_000_000, true, "tftp", 2050), Applied::Stayed);
    assert_eq!(n.apply(MAC, Input::Script { local: false, peer: IP }, 2200), Applied::Moved(1));
    assert_eq!(
        n.file_served(MAC, b"nixos/control-plane/bzImage", 10_000_000, true, "http", 2300),
        Applied::Moved(1)
    );
    assert_eq!(
        n.file_served(MAC, b"nixos/control-plane/initrd", 500_000_000, true, "http", 2400),
        Applied::Moved(1)
    );
    assert_eq!(n.apply(MAC, ev(Step::Booted, "installer up"), 2500), Applied::Moved(1));
    assert_eq!(n.apply(MAC, ev(Step::Booted, "retried callback"), 2501), Applied::Stayed);
    assert_eq!(n.apply(MAC, ev(Step::Installing, ""), 2600), Applied::Moved(1));
    assert_eq!(n.apply(MAC, ev(Step::Installed, ""), 2700), Applied::Moved(1));
    // Next boot: DHCP does not move it, its script is exit, serving that makes it local.
    assert_eq!(n.apply(MAC, rom, 3000), Applied::Stayed);
    assert!(n.get(&MAC).unwrap().state.boots_local());
    assert_eq!(n.apply(MAC, Input::Script { local: true, peer: IP }, 3100), Applied::Moved(1));
    assert_eq!(n.apply(MAC, Input::Script { local: true, peer: IP }, 3200), Applied::Stayed);
    assert_eq!(
        states(&n, MAC),
        [
            "discovered",
            "dhcp",
            "dhcp",
            "ipxe",
            "kernel",
            "initrd",
            "booted",
            "installing",
            "installed",
            "local"
        ]
    );
    let node = n.get(&MAC).unwrap();
    assert_eq!(node.bytes_served, 511_000_000, "TFTP + HTTP");
    assert_eq!(node.since_ms, 3100);
    assert_eq!(node.last_event, "exit");
    assert_eq!(node.last_event_ms, 3200);
    let h: Vec<_> = node.history.iter().map(|e| (e.at_ms, e.detail.as_str(), e.bytes_served)).collect();
    assert_eq!(h[0], (1000, "in the inventory", 0));
    assert_eq!(h[1], (2000, "iPXE binary over TFTP ipxe.efi, arch 7 (x64 UEFI)", 0));
    assert_eq!(h[2].1, "iPXE script http://10.0.100.10:8080/boot.ipxe, arch 7 (x64 UEFI)");
    assert_eq!(h[3].1, "boot script served to 10.0.100.50");
    assert_eq!(h[4], (2300, "nixos/control-plane/bzImage, 10000000 bytes over HTTP", 11_000_000));
    assert_eq!(h[5].2, 511_000_000);
    assert_eq!(h[6].1, "installer up");
    assert_eq!(h[9].1, "exit script served to 10.0.100.50: boots from its disk");
    // An install-side event now is refused; a reinstall brings it back.
    assert_eq!(
        n.apply(MAC, ev(Step::Booted, ""), 4000),
        Applied::Illegal { from: State::Local, step: Step::Booted }
    );
    assert_eq!(n.apply(MAC, ev(Step::Reinstall, ""), 4100), Applied::Moved(1));
    assert_eq!(n.get(&MAC).unwrap().last().unwrap().detail, "reinstall requested");
    assert_eq!(n.apply(MAC, Input::Script { local: false, peer: IP }, 4200), Applied::Moved(1));
}

#[test]
fn a_failed_node_restarts_when_it_boots_again() {
    let mut n = inventory();
    n.apply(MAC, ev(Step::Booted, ""), 10);
    assert_eq!(n.apply(MAC, ev(Step::Failed, "disk /dev/sda not found"), 20), Applied::Moved(1));
    assert_eq!(n.apply(MAC, ev(Step::Failed, "again"), 21), Applied::Stayed);
    assert_eq!(
        n.apply(MAC, ev(Step::Installed, ""), 22),
        Applied::Illegal { from: State::Failed, step: Step::Installed }
    );
    let d = Input::Dhcp { what: "iPXE binary over TFTP", arch: Some(0), file: "undionly.kpxe" };
    assert_eq!(n.apply(MAC, d, 30), Applied::Moved(1));
    assert_eq!(n.get(&MAC).unwrap().state, State::Dhcp);
    assert_eq!(states(&n, MAC), ["discovered", "booted", "failed", "dhcp"]);
}

#[test]
fn observations_in_the_wrong_state_count_bytes_but_do_not_move() {
    let mut n = inventory();
    n.apply(MAC, ev(Step::Booted, ""), 10);
    assert_eq!(
        n.file_served(MAC, b"nixos/control-plane/bzImage", 5, true, "http", 11),
        Applied::Illegal { from: State::Booted, step: Step::Kernel }
    );
    // An incomplete download is bytes only, also where it would be a transition.
    let mut m = inventory();
    assert_eq!(m.file_served(MAC, b"nixos/control-plane/bzImage", 5, false, "http", 11), Applied::Stayed);
    assert_eq!(m.get(&MAC).unwrap().state, State::Discovered);
    assert_eq!(n.get(&MAC).unwrap().bytes_served, 5);
    assert_eq!(n.get(&MAC).unwrap().last_event, "kernel");
    assert_eq!(n.file_served(MAC, b"other/file", 7, true, "http", 12), Applied::Stayed);
    assert_eq!(n.get(&MAC).unwrap().last_event, "http");
    assert_eq!(n.file_served([9; 6], b"x", 7, true, "http", 12), Applied::Unknown);
    // Any profile's files count, spelled with or without a leading slash.
    let mut w = inventory();
    assert_eq!(w.file_served(MAC, b"nixos/worker/bzImage", 1, true, "http", 1), Applied::Moved(1));
    assert_eq!(w.file_served(MAC, b"/nixos/worker/extra", 1, true, "http", 2), Applied::Moved(1));
    assert_eq!(w.get(&MAC).unwrap().state, State::Initrd);
    assert_eq!(
        w.file_served(MAC, b"nixos/worker/initrd", 1, true, "http", 3),
        Applied::Stayed,
        "second initrd"
    );
}

#[test]
fn unknown_macs_are_created_by_boots_and_events_not_by_refusals_or_reinstall() {
    let mut n = inventory();
    let other = [2, 0, 0, 0, 0, 7];
    assert_eq!(n.apply(other, ev(Step::Reinstall, ""), 5), Applied::Unknown);
    assert_eq!(
        n.apply(other, ev(Step::Installed, ""), 5),
        Applied::Illegal { from: State::Discovered, step: Step::Installed }
    );
    assert_eq!(
        n.apply(other, Input::Script { local: true, peer: IP }, 5),
        Applied::Illegal { from: State::Discovered, step: Step::Exit }
    );
    assert!(n.get(&other).is_none(), "a refused first event creates nothing");
    let d = Input::Dhcp { what: "iPXE script", arch: None, file: "http://x/boot.ipxe" };
    assert_eq!(n.apply(other, d, 6), Applied::Moved(2), "created, then moved");
    let node = n.get(&other).unwrap();
    assert!(!node.known && node.hostname.is_none());
    assert_eq!(states(&n, other), ["discovered", "dhcp"]);
    assert_eq!(node.history[0].detail, "first seen: DHCP boot request");
    assert_eq!(node.history[1].detail, "iPXE script http://x/boot.ipxe, no arch sent");
    // The script route teaches the address.
    let peer = Ipv4Addr::new(10, 0, 100, 77);
    assert_eq!(n.apply(other, Input::Script { local: false, peer }, 7), Applied::Moved(1));
    assert_eq!(n.mac_of(peer), Some(other));
    assert_eq!(n.get(&other).unwrap().ip, Some(peer));
    // Moving address: the old one is no longer attributed.
    n.learn_ip(other, Ipv4Addr::new(10, 0, 100, 78));
    assert_eq!(n.mac_of(peer), None);
    n.learn_ip([9; 6], peer);
    assert_eq!(n.mac_of(peer), None, "addresses are learned only for nodes we have");
}

#[test]
fn unknown_nodes_are_capped_history_and_details_are_bounded() {
    let mut n = inventory();
    let d = Input::Dhcp { what: "iPXE script", arch: None, file: "f" };
    for i in 0..MAX_UNKNOWN as u32 {
        let b = i.to_be_bytes();
        assert_eq!(n.apply([2, 0xee, b[0], b[1], b[2], b[3]], d, 1), Applied::Moved(2));
    }
    assert_eq!(n.apply([2, 0xef, 0, 0, 0, 0], d, 1), Applied::Full);
    assert_eq!(n.len(), MAX_UNKNOWN + 1);
    // Still room for inventory nodes' events.
    assert_eq!(n.apply(MAC, ev(Step::Booted, ""), 2), Applied::Moved(1));
    for i in 0..(MAX_HISTORY as u64) {
        n.apply(MAC, ev(if i % 2 == 0 { Step::Failed } else { Step::Booted }, &"é".repeat(500)), 10 + i);
    }
    let node = n.get(&MAC).unwrap();
    assert_eq!(node.history.len(), MAX_HISTORY);
    // 102 entries were made (discovered, booted, then 100): the two oldest went.
    assert_eq!(
        (node.history[0].state, node.history[0].at_ms),
        (State::Failed, 10),
        "the oldest entries went first"
    );
    assert!(node.history.iter().all(|e| e.detail.len() <= MAX_DETAIL && e.detail.len() >= MAX_DETAIL - 1));
}

#[test]
fn truncation_keeps_characters_whole() {
    assert_eq!(truncate("abc", 2), "ab");
    assert_eq!(truncate("aé", 2), "a");
    assert_eq!(truncate("aé", 3), "aé");
}

#[test]
fn profile_paths_with_placeholders_match_their_instances() {
    for (pat, path, ok) in [
        ("nixos/{arch}/bzImage", "nixos/x86_64/bzImage", true),
        ("nixos/{arch}/bzImage", "nixos/arm64/bzImage", true),
        ("nixos/{arch}/bzImage", "nixos/a/b/bzImage", false),
        ("nixos/{arch}/bzImage", "nixos//bzImage", true),
        ("img/{profile}-{platform}.efi", "img/worker-efi.efi", true),
        ("img/{profile}-{platform}.efi", "img/worker.efi", false),
        ("lit/{{x}}", "lit/{x}", true),
        ("lit/{{x}}", "lit/x", false),
        ("plain", "plain", true),
        ("plain", "plainer", false),
        ("open{", "open{", true),
    ] {
        assert_eq!(template_match(pat.as_bytes(), path.as_bytes()), ok, "{pat} ~ {path}");
    }
    let b = BootFiles::new([("nixos/{arch}/bzImage", &["nixos/{arch}/initrd".to_string()][..])]);
    assert_eq!(b.classify(b"nixos/arm64/bzImage"), Some(Step::Kernel));
    assert_eq!(b.classify(b"nixos/i386/initrd"), Some(Step::Initrd));
    assert_eq!(b.classify(b"nixos/i386/other"), None);
}
