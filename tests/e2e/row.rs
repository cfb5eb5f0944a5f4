//! One matrix row: lab + ferroboot (+ dnsmasq as the site's DHCP server) + one VM, run until
//! the payload's marker, then every assertion the row makes (marker, callback, lifecycle via
//! the API, what went over TFTP and HTTP).

use super::lab::{Guard, Lab};
use super::vm::{Firmware, Rom, Vm, VmSpec, tail};
use super::{Node, payload};
use crate::common::{Netns, Scratch, Server};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub const MARKER_TIMEOUT: Duration = Duration::from_secs(240);

/// The lifecycle states every network boot must pass through, in order.
pub const BOOT_STATES: &[&str] = &["dhcp", "ipxe", "kernel", "initrd", "booted"];

#[derive(Clone, Copy)]
pub struct Row {
    /// Test name, for logs.
    pub name: &'static str,
    /// Network namespace (starts with `e2e`).
    pub netns: &'static str,
    /// Subnet `10.<n>.0.0/24`.
    pub n: u8,
    pub mac: &'static str,
    pub firmware: Firmware,
    pub rom: Rom,
    /// `--proxy-dhcp` beside dnsmasq (addresses only) instead of `--dhcp server`.
    pub proxy: bool,
    /// With `proxy`: dnsmasq runs on the server's own host and address instead of its own.
    pub site_on_server: bool,
    /// Files the firmware must fetch by TFTP (`[]`: no TFTP transfer at all).
    pub tftp: &'static [&'static str],
    /// HTTP paths the firmware must fetch besides the script, kernel and initrd.
    pub http_extra: &'static [&'static str],
    /// Extra `ferroboot serve` flags.
    pub extra_args: &'static [&'static str],
    /// Extra lines for the config's `[dhcp]` table.
    pub dhcp_config: &'static str,
}

/// What a row leaves behind for further assertions (boot-once reboots the same machine).
/// Fields drop in order: dnsmasq (process, then its namespace), ferroboot, the lab (RA thread,
/// namespace with anything still in it), the scratch directory.
pub struct Booted {
    pub dnsmasq: Option<(Guard, Netns)>,
    pub srv: Server,
    pub lab: Lab,
    pub scratch: Scratch,
    pub nonce: String,
    pub time_to_marker: Duration,
}

/// Moves every log line ferroboot has written so far into `srv.lines`.
pub fn drain(srv: &mut Server) {
    std::thread::sleep(Duration::from_millis(200));
    while let Ok(l) = srv.log.try_recv() {
        srv.lines.push(l);
    }
}

fn fail_context(srv: &mut Server, vm: Option<&Vm>) -> String {
    drain(srv);
    let serial = vm.map(|v| tail(&v.serial_text(), 40)).unwrap_or_default();
    let debugcon = vm
        .map(|v| tail(&String::from_utf8_lossy(&std::fs::read(&v.debugcon).unwrap_or_default()), 25))
        .unwrap_or_default();
    format!(
        "\n--- ferroboot log:\n{}\n--- serial tail:\n{serial}\n--- firmware debug log tail:\n{debugcon}",
        tail(&srv.lines.join("\n"), 80)
    )
}

/// Runs `f`, and on panic re-panics with the server log and the VM's consoles appended.
fn with_context<T>(srv: &mut Server, vm: Option<&Vm>, what: &str, f: impl FnOnce(&mut Server) -> T) -> T {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(srv))) {
        Ok(v) => v,
        Err(e) => {
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            panic!("{what}: {msg}{}", fail_context(srv, vm))
        }
    }
}

/// The site's DHCP server on its own host: namespace `<lab>d` joined to the lab's bridge by a
/// veth, address `10.<n>.0.2`, dnsmasq handing out `.200`–`.220` and no boot options. (On the
/// server's own address it would share the server identifier with the ProxyDHCP, which no
/// real site does.)
pub fn start_dnsmasq(lab: &Lab, scratch: &Scratch) -> (Guard, Netns) {
    let n = lab.n;
    let site = Netns::new(&format!("{}d", lab.ns.name));
    let (ok, out) = crate::common::run(Command::new("ip").args([
        "-n",
        &lab.ns.name,
        "link",
        "add",
        "vsite",
        "type",
        "veth",
        "peer",
        "name",
        "eth0",
        "netns",
        &site.name,
    ]));
    assert!(ok, "veth to the site DHCP host: {out}");
    lab.ns.exec_ok(&["ip", "link", "set", "vsite", "master", "br0"]);
    lab.ns.exec_ok(&["ip", "link", "set", "vsite", "up"]);
    site.exec_ok(&["ip", "link", "set", "eth0", "up"]);
    site.exec_ok(&["ip", "addr", "add", &format!("10.{n}.0.2/24"), "dev", "eth0"]);
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &site.name, "dnsmasq", "--no-daemon", "--port=0", "--no-ping"])
        .args(["--interface=eth0", "--bind-interfaces", "--log-dhcp"])
        .arg(format!("--dhcp-range=10.{n}.0.200,10.{n}.0.220,255.255.255.0,10m"))
        .arg(format!("--dhcp-leasefile={}", scratch.path("dnsmasq.leases").display()))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(scratch.path("dnsmasq.log")).unwrap());
    let g = Guard::spawn("dnsmasq", &mut cmd);
    std::thread::sleep(Duration::from_millis(300));
    (g, site)
}

/// The site's DHCP server on ferroboot's own host: dnsmasq in the lab namespace on `br0`, sharing
/// the server's address (so its server identifier is the ProxyDHCP's too), handing out
/// `.200`–`.220` and no boot options.
pub fn start_dnsmasq_on_server(lab: &Lab, scratch: &Scratch) -> (Guard, Netns) {
    let n = lab.n;
    // An empty namespace stands in for the site host so `Booted` drops the same way.
    let site = Netns::new(&format!("{}d", lab.ns.name));
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &lab.ns.name, "dnsmasq", "--no-daemon", "--port=0", "--no-ping"])
        .args(["--interface=br0", "--bind-interfaces", "--log-dhcp"])
        .arg(format!("--dhcp-range=10.{n}.0.200,10.{n}.0.220,255.255.255.0,10m"))
        .arg(format!("--dhcp-leasefile={}", scratch.path("dnsmasq.leases").display()))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(scratch.path("dnsmasq.log")).unwrap());
    let g = Guard::spawn("dnsmasq", &mut cmd);
    std::thread::sleep(Duration::from_millis(300));
    (g, site)
}

/// Sets up the row's world and starts ferroboot (no VM yet).
pub fn prepare(row: &Row) -> Booted {
    let p = payload::get();
    let mut lab = Lab::new(row.netns, row.n);
    lab.send_router_advertisements();
    let scratch = Scratch::new();
    super::fill_root(&scratch, p);
    let nonce = super::nonce();
    let node = Node { mac: row.mac, hostname: row.name, nonce: &nonce };
    let cfg = super::config(&lab, &scratch, &node, row.dhcp_config);
    let dnsmasq = row.proxy.then(|| {
        if row.site_on_server {
            start_dnsmasq_on_server(&lab, &scratch)
        } else {
            start_dnsmasq(&lab, &scratch)
        }
    });
    let mut args = vec!["--config", cfg.to_str().unwrap()];
    args.extend_from_slice(if row.proxy { &["--proxy-dhcp"][..] } else { &["--dhcp", "server"][..] });
    args.extend_from_slice(row.extra_args);
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut srv = Server::start(&args, Some(&lab.ns.name));
    srv.wait_for("dhcp: serving", Duration::from_secs(10));
    Booted { dnsmasq, srv, lab, scratch, nonce, time_to_marker: Duration::ZERO }
}

/// Boots the row's VM once, until the marker; returns the VM (already powered off or about to).
pub fn boot(row: &Row, b: &mut Booted, tag: &str) -> Vm {
    let spec = VmSpec { firmware: row.firmware, rom: row.rom, mac: row.mac, direct: None };
    let mut vm = Vm::start(&b.lab.ns.name, b.scratch.dir.path(), tag, &spec);
    let (line, t) =
        with_context(&mut b.srv, None, row.name, |_| vm.wait_serial(payload::MARKER, MARKER_TIMEOUT));
    b.time_to_marker = t;
    eprintln!("{}: marker after {:.1} s: {line}", row.name, t.as_secs_f64());
    let nonce = b.nonce.clone();
    let server = b.lab.server_ip();
    with_context(&mut b.srv, Some(&vm), row.name, |_| {
        assert!(line.contains(&format!("nonce={nonce}")), "marker with this run's nonce: {line}");
        assert!(line.contains(&format!("mac={}", row.mac)), "{line}");
        // `e2e.server={server}` in the profile: the script's template filled it in.
        assert!(line.contains(&format!("server={}", server)), "{line}");
        assert!(line.contains("callback=ok"), "the callback was answered 200: {line}");
    });
    let _ = vm.guard.wait_exit(Duration::from_secs(30));
    vm
}

/// The whole row: prepare, boot, and assert transfers and lifecycle. Prints the timeline.
pub fn run(row: &Row) -> Booted {
    let t0 = Instant::now();
    let mut b = prepare(row);
    let vm = boot(row, &mut b, "boot1");
    let (mac, ip) = (row.mac, b.lab.server_ip());
    let nonce = b.nonce.clone();
    let lab = &b.lab;
    with_context(&mut b.srv, Some(&vm), row.name, |srv| {
        // The callback reached us, with the nonce the kernel command line carried.
        srv.wait_for(&format!("\"GET /api/v1/nodes/{mac}/events\" 200"), Duration::from_secs(5));
        drain(srv);
        // What went over TFTP: exactly the expected binaries, each complete.
        let sent: Vec<&String> = srv.lines.iter().filter(|l| l.contains("tftp: sent ")).collect();
        for f in row.tftp {
            assert!(
                // The name as requested, or the path it was served from (`binaries_dir`).
                sent.iter().any(|l| l.contains(&format!("{f} to 10.{}.0.", lab.n))),
                "{f} was sent by TFTP: {sent:?}"
            );
        }
        if row.tftp.is_empty() {
            assert!(sent.is_empty(), "no TFTP at all in this row: {sent:?}");
        }
        // Over HTTP: the script, the kernel, the initrd (and the row's extras), all 200.
        let access: Vec<&String> =
            srv.lines.iter().filter(|l| l.contains("ferroboot::http::access")).collect();
        let got = |needle: &str| access.iter().any(|l| l.contains(needle) && l.contains("\" 200 "));
        for path in ["/boot.ipxe", "e2e/vmlinuz", "e2e/initrd.img"].iter().chain(row.http_extra) {
            assert!(got(path), "HTTP GET of {path} answered 200: {access:#?}");
        }
        // The lifecycle, through the API.
        let node = lab.node(mac);
        assert_eq!(node["mac"], mac, "{node}");
        assert_eq!(node["known"], true, "{node}");
        assert_eq!(node["hostname"], row.name, "{node}");
        assert_eq!(node["state"], "booted", "{node}");
        assert_eq!(node["last_event"], "booted", "{node}");
        let hist = node["history"].as_array().unwrap_or_else(|| panic!("history: {node}"));
        let states: Vec<&str> = hist.iter().filter_map(|h| h["state"].as_str()).collect();
        let mut want = BOOT_STATES.iter().peekable();
        for s in &states {
            if want.peek() == Some(&s) {
                want.next();
            }
        }
        assert!(want.peek().is_none(), "history passes {BOOT_STATES:?} in order: {states:?}");
        let booted = hist.iter().rev().find(|h| h["state"] == "booted").unwrap();
        assert!(
            booted["detail"].as_str().unwrap_or("").contains(&nonce),
            "the booted event carries the payload's detail nonce-{nonce}: {booted}"
        );
        let _ = ip;
        eprintln!("{}: what ferroboot served\n{}", row.name, server_timeline(&srv.lines));
        print_timeline(row.name, hist, b.time_to_marker, t0.elapsed());
    });
    b
}

/// Seconds of the day of a log line's `[2026-12-01T10:26:47.478Z ...` timestamp.
fn log_secs(line: &str) -> Option<f64> {
    let t = line.get(12..24)?;
    let (h, m, s) = (
        t.get(0..2)?.parse::<f64>().ok()?,
        t.get(3..5)?.parse::<f64>().ok()?,
        t.get(6..12)?.parse::<f64>().ok()?,
    );
    Some(h * 3600.0 + m * 60.0 + s)
}

/// What the server saw of one boot, from its log: DHCP answers, TFTP transfers and HTTP
/// requests, each with seconds since the first of them.
pub fn server_timeline(lines: &[String]) -> String {
    let keep = |l: &&String| {
        l.contains("dhcp: OFFER")
            || l.contains("dhcp: ACK")
            || l.contains("tftp: sent")
            || l.contains("tftp: size probe")
            || l.contains("ferroboot::http::access")
            || l.contains("ipxe: ")
    };
    let picked: Vec<&String> = lines.iter().filter(keep).collect();
    let t0 = picked.iter().find_map(|l| log_secs(l)).unwrap_or(0.0);
    let mut out = String::new();
    for l in picked {
        let t = log_secs(l).map(|s| s - t0).unwrap_or(0.0);
        let msg = l.split_once("] ").map(|(_, m)| m).unwrap_or(l);
        let msg: String = msg.chars().take(150).collect();
        out.push_str(&format!("    +{t:>6.2} s  {msg}\n"));
    }
    out
}

fn print_timeline(name: &str, hist: &[serde_json::Value], marker: Duration, total: Duration) {
    let first = hist.first().and_then(|h| h["at_ms"].as_u64()).unwrap_or(0);
    eprintln!("{name}: lifecycle timeline");
    for h in hist {
        let at = h["at_ms"].as_u64().unwrap_or(0).saturating_sub(first);
        eprintln!(
            "    +{:>6.2} s  {:<10} {}",
            at as f64 / 1000.0,
            h["state"].as_str().unwrap_or("?"),
            h["detail"].as_str().unwrap_or("")
        );
    }
    eprintln!(
        "{name}: TIME TO MARKER {:.1} s (row total {:.1} s)",
        marker.as_secs_f64(),
        total.as_secs_f64()
    );
}
