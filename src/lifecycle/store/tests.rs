use super::*;
use crate::config::{Node as ConfigNode, Profile};
use crate::lifecycle::State;
use std::path::Path;

const MAC: [u8; 6] = [0x52, 0x54, 0, 0x12, 0x34, 0x56];
const IP: Ipv4Addr = Ipv4Addr::new(10, 0, 100, 50);

fn config(dir: &Path, with_node: bool) -> Config {
    let mut c = Config { state_dir: dir.to_path_buf(), ..Config::default() };
    if with_node {
        c.nodes.push(ConfigNode {
            mac: MAC,
            profile: Some("control-plane".into()),
            hostname: Some("node01".into()),
            ip_address: Some(IP),
            role: None,
            uuid: None,
        });
    }
    c.profiles.insert(
        "control-plane".into(),
        Profile {
            kernel: "nixos/control-plane/bzImage".into(),
            initrd: vec!["nixos/control-plane/initrd".into()],
            cmdline: String::new(),
        },
    );
    c
}

fn timeline(s: &Store, mac: [u8; 6]) -> Vec<(State, String, u64)> {
    s.node(mac).unwrap().history.iter().map(|e| (e.state, e.detail.clone(), e.bytes_served)).collect()
}

/// The boot up to `installing`, the way the services and the installer report it.
fn boot_until_installing(s: &Store) {
    s.dhcp_boot(MAC, "iPXE binary over TFTP", Some(0), "undionly.kpxe", Some(IP));
    s.tftp_served(IP, b"undionly.kpxe", 70_000, true);
    s.script_served(MAC, IP, false);
    s.http_served(IP, None, b"nixos/control-plane/bzImage", 10_000_000, true);
    s.http_served(IP, None, b"nixos/control-plane/initrd", 400_000_000, true);
    s.sync_observed();
    s.event(MAC, Step::Booted, "installer up").unwrap();
    s.event(MAC, Step::Installing, "nixos-anywhere").unwrap();
}

#[test]
fn a_restart_in_the_middle_of_an_install_keeps_every_acknowledged_transition() {
    let d = tempfile::tempdir().unwrap();
    let c = config(d.path(), true);
    let s = Store::open(&c).unwrap();
    boot_until_installing(&s);
    let before = timeline(&s, MAC);
    assert_eq!(before.len(), 7);
    let node = s.node(MAC).unwrap();
    // Crash: the store is dropped without `flush`.
    drop(s);
    let s = Store::open(&c).unwrap();
    assert_eq!(timeline(&s, MAC), before);
    let again = s.node(MAC).unwrap();
    assert_eq!(again.state, State::Installing);
    assert_eq!(again.since_ms, node.since_ms);
    assert_eq!(again.bytes_served, 410_070_000);
    assert_eq!(again.ip, Some(IP));
    assert_eq!(again.last_event, "installing");
    // The install finishes after the restart; the next boot is local, after another restart.
    s.event(MAC, Step::Installed, "").unwrap();
    drop(s);
    let s = Store::open(&c).unwrap();
    assert!(s.boots_local(MAC));
    s.script_served(MAC, IP, true);
    s.sync_observed();
    drop(s);
    let s = Store::open(&c).unwrap();
    assert_eq!(s.node(MAC).unwrap().state, State::Local);
    assert_eq!(s.node(MAC).unwrap().history.len(), 9, "no inventory entry added twice");
}

#[test]
fn observed_transitions_are_durable_after_the_wake_up_sync_counters_after_flush() {
    let d = tempfile::tempdir().unwrap();
    let c = config(d.path(), true);
    let s = Store::open(&c).unwrap();
    s.dhcp_boot(MAC, "iPXE script", Some(7), "http://x/boot.ipxe", None);
    assert!(s.pending_since().is_some(), "the loop is asked to sync");
    drop(s); // crash before the sync
    let s = Store::open(&c).unwrap();
    assert_eq!(s.node(MAC).unwrap().state, State::Discovered, "not synced, not kept");
    s.dhcp_boot(MAC, "iPXE script", Some(7), "http://x/boot.ipxe", None);
    s.sync_observed();
    assert!(s.pending_since().is_none());
    s.tftp_served(IP, b"not/a/kernel", 1234, true);
    drop(s);
    let s = Store::open(&c).unwrap();
    assert_eq!(s.node(MAC).unwrap().state, State::Dhcp);
    assert_eq!(s.node(MAC).unwrap().bytes_served, 0, "counters without a transition need the flush");
    s.tftp_served(IP, b"not/a/kernel", 1234, true);
    s.flush();
    drop(s);
    let s = Store::open(&c).unwrap();
    let n = s.node(MAC).unwrap();
    assert_eq!((n.bytes_served, n.last_event), (1234, "tftp"));
}

#[test]
fn a_torn_tail_at_every_byte_offset_keeps_the_records_before_it() {
    let d = tempfile::tempdir().unwrap();
    let c = config(d.path(), false);
    let macs: Vec<[u8; 6]> = (1..=3).map(|i| [2, 0, 0, 0, 0, i]).collect();
    {
        let s = Store::open(&c).unwrap();
        for m in &macs {
            s.event(*m, Step::Booted, "ok").unwrap(); // created (discovered) + booted
        }
    }
    let path = d.path().join(record::FILE_NAME);
    let full = std::fs::read(&path).unwrap();
    // Record boundaries, from the records themselves.
    let (recs, good) = crate::journal::decode_frames(&full, &record::MAGIC, Record::decode);
    assert_eq!((recs.len(), good), (6, full.len()));
    let mut ends = vec![record::MAGIC.len()];
    for r in &recs {
        let last = *ends.last().unwrap();
        ends.push(last + crate::journal::REC_HEADER + r.encode().len());
    }
    for cut in record::MAGIC.len()..=full.len() {
        std::fs::write(&path, &full[..cut]).unwrap();
        let s = Store::open(&c).unwrap();
        let complete = ends.iter().filter(|&&e| e <= cut).count() - 1;
        let entries = s.with_nodes(|n| n.entries());
        assert_eq!(entries, complete, "cut at {cut}");
        // The file was repaired: an event appended now survives a reopen.
        s.event([2, 0, 0, 0, 0, 9], Step::Failed, "after").unwrap();
        drop(s);
        let s = Store::open(&c).unwrap();
        assert_eq!(s.with_nodes(|n| n.entries()), complete + 2, "cut at {cut}");
        assert_eq!(s.node([2, 0, 0, 0, 0, 9]).unwrap().state, State::Failed);
    }
}

#[test]
fn compaction_keeps_the_timelines() {
    let d = tempfile::tempdir().unwrap();
    let c = config(d.path(), true);
    let s = Store::open(&c).unwrap();
    if let Some(j) = s.inner.borrow_mut().journal.as_mut() {
        j.compact_min_records = 50;
    }
    for i in 0..600 {
        s.event(MAC, if i % 2 == 0 { Step::Failed } else { Step::Booted }, &format!("round {i}")).unwrap();
    }
    let records = s.inner.borrow().journal.as_ref().unwrap().records();
    assert!(records < 500, "compacted: {records} records");
    let before = s.node(MAC).unwrap();
    drop(s);
    let s = Store::open(&c).unwrap();
    assert_eq!(s.node(MAC).unwrap().history, before.history);
    assert_eq!(s.node(MAC).unwrap().history.back().unwrap().detail, "round 599");
}

#[test]
fn api_events_are_refused_by_the_table_and_the_inventory_can_change_between_runs() {
    let d = tempfile::tempdir().unwrap();
    let s = Store::open(&config(d.path(), false)).unwrap();
    assert_eq!(s.event(MAC, Step::Reinstall, ""), Err(StoreError::UnknownNode));
    assert_eq!(
        s.event(MAC, Step::Installed, ""),
        Err(StoreError::NotAllowed { from: State::Discovered, step: Step::Installed })
    );
    let n = s.event(MAC, Step::Booted, "").unwrap();
    assert!(!n.known && n.hostname.is_none());
    drop(s);
    // Now the MAC is in the inventory: known, named, and its timeline kept.
    let s = Store::open(&config(d.path(), true)).unwrap();
    let n = s.node(MAC).unwrap();
    assert!(n.known);
    assert_eq!(n.hostname.as_deref(), Some("node01"));
    assert_eq!(n.state, State::Booted);
    assert_eq!(n.history.len(), 2);
    // A second server on the same state dir is refused (its records would interleave).
    assert!(Store::open(&config(d.path(), true)).is_err());
}

#[test]
fn repeated_observations_do_not_allocate() {
    // The allocation tests run whole services; this checks the store's own share on the paths
    // they call, with the lib tests' counting allocator (per thread).
    let s = Store::in_memory(
        &[Known { mac: MAC, ip: Some(IP), ..Known::default() }],
        BootFiles::new([("k", &["i".to_string()][..])]),
        || 5,
    );
    s.script_served(MAC, IP, false);
    s.http_served(IP, None, b"k", 1, true);
    s.event(MAC, Step::Booted, "").unwrap();
    let booted = crate::test_alloc::count(|| {
        for _ in 0..100 {
            s.ip_seen(MAC, IP);
            s.http_served(IP, None, b"k", 1, true); // a kernel while booted: bytes only
            s.http_served(IP, None, b"other", 1, false);
            s.tftp_served(IP, b"undionly.kpxe", 1, true);
            let _ = s.boots_local(MAC);
            let _ = s.follows(IP);
            let _ = s.follows(Ipv4Addr::LOCALHOST);
            s.sync_observed();
        }
    });
    assert_eq!(booted, 0, "allocations for 100 repeated rounds while booted");
    s.dhcp_boot(MAC, "iPXE script", Some(7), "http://x/boot.ipxe", Some(IP));
    let dhcp = crate::test_alloc::count(|| {
        for _ in 0..100 {
            s.dhcp_boot(MAC, "iPXE script", Some(7), "http://x/boot.ipxe", Some(IP));
            s.http_served(IP, None, b"other", 1, true);
            s.sync_observed();
        }
    });
    assert_eq!(dhcp, 0, "allocations for 100 repeated boot decisions");
    assert_eq!(s.node(MAC).unwrap().bytes_served, 1 + 300 + 100);
    // A transition does allocate (its detail): the counter is live.
    assert!(crate::test_alloc::count(|| s.script_served(MAC, IP, false)) > 0);
}
