//! `ferroboot loadgen` against the real `ferroboot serve` (DHCP server mode, TFTP on port 69,
//! HTTP, iPXE scripts) in network namespaces joined by a veth pair: 8 machines boot at once, each
//! through DHCP (PXE ROM and iPXE), TFTP of the boot file, and HTTP of `/boot.ipxe`, the
//! per-machine script it chains to and the kernel and initrd that one names; every node
//! must complete with the exact bytes (SHA-256 of every file checked against `sha256sum`), and
//! the server must have leased 8 distinct addresses. Proxy mode beside dnsmasq, and the failure
//! report of a missing boot file, and dnsmasq for DHCP + TFTP with the iPXE script followed over
//! HTTP. Needs root (and dnsmasq for those two).

mod common;

use common::{Netns, Scratch, random_file, require, require_root, run, sha256};
use std::process::Command;
use std::time::Duration;

struct Lab {
    srv: Netns,
    cli: Netns,
}

fn lab(tag: &str, n: u8) -> Lab {
    let srv = Netns::new(&format!("{tag}s"));
    let cli = Netns::new(&format!("{tag}c"));
    let (a, b) = (format!("{tag}0"), format!("{tag}1"));
    let _ = Command::new("ip").args(["link", "del", &a]).stderr(std::process::Stdio::null()).status();
    let (ok, out) = run(Command::new("ip").args(["link", "add", &a, "type", "veth", "peer", "name", &b]));
    assert!(ok, "veth: {out}");
    for (dev, ns) in [(&a, &srv), (&b, &cli)] {
        let (ok, out) = run(Command::new("ip").args(["link", "set", dev, "netns", &ns.name]));
        assert!(ok, "{out}");
        ns.exec_ok(&["ip", "link", "set", dev, "up"]);
    }
    srv.exec_ok(&["ip", "addr", "add", &format!("10.{n}.0.1/24"), "dev", &a]);
    cli.exec_ok(&["ip", "addr", "add", &format!("10.{n}.0.2/24"), "dev", &b]);
    Lab { srv, cli }
}

fn config(scratch: &Scratch, n: u8, iface: &str) -> std::path::PathBuf {
    let text = format!(
        r#"root = "{root}"
state_dir = "{state}"
interface = "{iface}"
server_address = "10.{n}.0.1"
[dhcp]
mode = "server"
subnet = "10.{n}.0.0"
netmask = "255.255.255.0"
range = {{ start = "10.{n}.0.100", end = "10.{n}.0.200" }}
router = "10.{n}.0.1"
[ipxe]
unknown = "worker"
[profiles.worker]
kernel = "vmlinuz"
initrd = "initrd.img"
cmdline = "console=ttyS0 ip={{ip}}"
"#,
        root = scratch.root().display(),
        state = scratch.state().display(),
    );
    let p = scratch.path("ferroboot.toml");
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn eight_nodes_boot_from_ferroboot_with_exact_bytes() {
    if !require_root() || !require("sha256sum", "coreutils") {
        return;
    }
    let n = 87;
    let lab = lab("load", n);
    let scratch = Scratch::new();
    let root = scratch.root();
    random_file(&root.join("ipxe.efi"), 1_000_000 + 123, 1);
    random_file(&root.join("vmlinuz"), 12 << 20, 2);
    random_file(&root.join("initrd.img"), 64 << 20, 3);
    let cfg = config(&scratch, n, "load0");
    let mut srv = common::Server::start(&["--config", cfg.to_str().unwrap()], Some(&lab.srv.name));
    srv.wait_for("dhcp: serving", Duration::from_secs(10));

    let bin = env!("CARGO_BIN_EXE_ferroboot");
    let server = format!("10.{n}.0.1");
    let out = lab.cli.exec(&[
        bin,
        "loadgen",
        "--server",
        &server,
        "--nodes",
        "8",
        "--interface",
        "load1",
        "--blksize",
        "1468",
        "--windowsize",
        "16",
        "--verify",
        "--json",
    ]);
    let (ok, text) = out;
    let json_start = text.find('{').unwrap_or_else(|| panic!("no JSON in loadgen output:\n{text}"));
    let json_end = text.rfind('}').unwrap() + 1;
    let j: serde_json::Value = serde_json::from_str(&text[json_start..json_end])
        .unwrap_or_else(|e| panic!("bad JSON ({e}):\n{text}"));
    assert!(ok, "loadgen failed:\n{text}");
    assert_eq!(j["nodes"], 8);
    assert_eq!(j["booted"], 8, "{text}");
    assert_eq!(j["failed"], 0, "{text}");
    for p in ["dhcp", "tftp", "ipxe-dhcp", "http"] {
        assert_eq!(j["phases"][p]["count"], 8, "phase {p}: {text}");
    }
    let want = [("ipxe.efi", "ipxe.efi"), ("vmlinuz", "vmlinuz"), ("initrd.img", "initrd.img")];
    for (name, file) in want {
        let f = j["files"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == name)
            .unwrap_or_else(|| panic!("{name}: {text}"));
        assert_eq!(f["nodes"], 8, "{name}");
        let size = std::fs::metadata(root.join(file)).unwrap().len();
        assert_eq!(f["sizes"], serde_json::json!([size]), "{name}");
        assert_eq!(f["sha256"], serde_json::json!([sha256(&root.join(file))]), "{name}");
    }
    let tftp_bytes = j["throughput"]["tftp"]["bytes"].as_u64().unwrap();
    assert_eq!(tftp_bytes, 8 * (1_000_000 + 123));
    // The server saw 8 machines: 8 distinct addresses were acknowledged (twice each: PXE, iPXE).
    srv.stop();
    let acks: std::collections::BTreeSet<String> = srv
        .lines
        .iter()
        .filter_map(|l| l.split("ACK ").nth(1))
        .filter_map(|r| r.split_whitespace().next().map(str::to_string))
        .collect();
    assert_eq!(acks.len(), 8, "distinct ACKed addresses: {acks:?}");
}

#[test]
fn missing_files_fail_every_node_with_the_servers_error() {
    if !require_root() {
        return;
    }
    let n = 88;
    let lab = lab("loadx", n);
    let scratch = Scratch::new();
    let cfg = config(&scratch, n, "loadx0");
    let mut srv = common::Server::start(&["--config", cfg.to_str().unwrap()], Some(&lab.srv.name));
    srv.wait_for("dhcp: serving", Duration::from_secs(10));
    let bin = env!("CARGO_BIN_EXE_ferroboot");
    let server = format!("10.{n}.0.1");
    let run = |extra: &[&str]| {
        let mut args = vec![bin, "loadgen", "--server", &server, "--nodes", "3", "--interface", "loadx1"];
        args.extend_from_slice(extra);
        lab.cli.exec(&args)
    };
    let (ok, text) = run(&["--tftp-file", "missing.efi"]);
    assert!(!ok, "loadgen must exit non-zero when nodes fail:\n{text}");
    assert!(text.contains("0 booted, 3 failed"), "{text}");
    assert_eq!(text.matches("in tftp: missing.efi").count(), 3, "{text}");
    assert!(text.contains("TFTP error 1"), "{text}");
    // The profile's kernel is not in the root: the script is followed, the GET of it fails.
    let (ok, text) = run(&[]);
    assert!(!ok, "{text}");
    assert!(text.contains("0 booted, 3 failed"), "{text}");
    assert_eq!(text.matches("/boot/vmlinuz?mac=02-fb-00-00-00-0").count(), 3, "{text}");
    assert!(text.contains("HTTP 404"), "{text}");
    srv.stop();
}

#[test]
fn proxy_mode_address_from_dnsmasq_boot_file_from_ferroboot() {
    if !require_root() || !require("dnsmasq", "dnsmasq-base") {
        return;
    }
    let n = 89;
    let lab = lab("loadp", n);
    let scratch = Scratch::new();
    let root = scratch.root();
    random_file(&root.join("ipxe.efi"), 300_000, 4);
    random_file(&root.join("vmlinuz"), 3 << 20, 5);
    let leases = scratch.path("dnsmasq.leases");
    let mut dnsmasq = Command::new("ip")
        .args(["netns", "exec", &lab.srv.name, "dnsmasq", "--no-daemon", "--port=0", "--no-ping"])
        .args(["--conf-file=/dev/null", "--interface=loadp0", "--bind-interfaces"])
        .arg(format!("--dhcp-range=10.{n}.0.150,10.{n}.0.160,255.255.255.0,2m"))
        .arg(format!("--dhcp-leasefile={}", leases.display()))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let cfg = config(&scratch, n, "loadp0");
    let text = std::fs::read_to_string(&cfg).unwrap().replace("mode = \"server\"", "mode = \"proxy\"");
    std::fs::write(&cfg, text).unwrap();
    let mut srv = common::Server::start(&["--config", cfg.to_str().unwrap()], Some(&lab.srv.name));
    srv.wait_for("dhcp: serving", Duration::from_secs(10));
    let bin = env!("CARGO_BIN_EXE_ferroboot");
    let server = format!("10.{n}.0.1");
    let (ok, text) = lab.cli.exec(&[
        bin,
        "loadgen",
        "--server",
        &server,
        "--mode",
        "proxy",
        "--nodes",
        "4",
        "--no-script",
        "--http-file",
        "/boot/vmlinuz",
        "--verify",
    ]);
    let _ = dnsmasq.kill();
    let _ = dnsmasq.wait();
    srv.stop();
    assert!(ok, "loadgen failed:\n{text}");
    assert!(text.contains("(proxy mode): 4 booted, 0 failed"), "{text}");
    assert!(
        text.contains(&format!(
            "file ipxe.efi: 4 nodes, 300000 bytes, sha256 {}",
            sha256(&root.join("ipxe.efi"))
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "file vmlinuz: 4 nodes, 3145728 bytes, sha256 {}",
            sha256(&root.join("vmlinuz"))
        )),
        "{text}"
    );
    // The addresses came from dnsmasq: its lease file holds the 4 MACs, in its range.
    let l = std::fs::read_to_string(&leases).unwrap();
    for i in 1..=4 {
        let mac = format!("02:fb:00:00:00:{i:02x}");
        let line = l
            .lines()
            .find(|x| x.contains(&mac))
            .unwrap_or_else(|| panic!("{mac} not in dnsmasq leases:\n{l}"));
        let ip: std::net::Ipv4Addr = line.split_whitespace().nth(2).unwrap().parse().unwrap();
        assert!((150..=160).contains(&ip.octets()[3]), "{ip}");
    }
    // ferroboot, as a proxy, leased nothing.
    assert!(!srv.lines.iter().any(|x| x.contains("dhcp: ACK 10.")), "the proxy ACKed an address");
}

/// The other stack: dnsmasq for DHCP and TFTP (its iPXE answer is a script URL), a static HTTP
/// server (ferroboot's `/boot/` tree here) for the script and what it names: loadgen follows the
/// script's `kernel` and `initrd` lines.
#[test]
fn dnsmasq_dhcp_and_tftp_then_the_script_and_its_files_over_http() {
    if !require_root() || !require("dnsmasq", "dnsmasq-base") {
        return;
    }
    let n = 90;
    let lab = lab("loadd", n);
    let scratch = Scratch::new();
    let root = scratch.root();
    random_file(&root.join("ipxe.efi"), 200_001, 6);
    random_file(&root.join("vmlinuz"), 2 << 20, 7);
    random_file(&root.join("initrd.img"), 5 << 20, 8);
    std::fs::write(
        root.join("boot.ipxe"),
        "#!ipxe\nkernel /boot/vmlinuz console=ttyS0\ninitrd initrd.img\nboot\n",
    )
    .unwrap();
    let srv_ip = format!("10.{n}.0.1");
    let mut dnsmasq = Command::new("ip")
        .args(["netns", "exec", &lab.srv.name, "dnsmasq", "--no-daemon", "--port=0", "--no-ping"])
        .args(["--conf-file=/dev/null", "--interface=loadd0", "--bind-interfaces", "--user=root"])
        .arg(format!("--dhcp-range=10.{n}.0.150,10.{n}.0.170,255.255.255.0,2m"))
        .arg(format!("--dhcp-leasefile={}", scratch.path("dnsmasq.leases").display()))
        .args(["--dhcp-userclass=set:ipxe,iPXE", "--dhcp-boot=tag:!ipxe,ipxe.efi"])
        .arg(format!("--dhcp-boot=tag:ipxe,http://{srv_ip}:8080/boot/boot.ipxe"))
        .args(["--enable-tftp", "--edns-packet-max=65000"])
        .arg(format!("--tftp-root={}", root.display()))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let state = scratch.state();
    let mut srv = common::Server::start(
        &["--root", root.to_str().unwrap(), "--state-dir", state.to_str().unwrap(), "--tftp-port", "6969"],
        Some(&lab.srv.name),
    );
    std::thread::sleep(Duration::from_millis(300));
    let bin = env!("CARGO_BIN_EXE_ferroboot");
    let (ok, text) = lab.cli.exec(&[bin, "loadgen", "--server", &srv_ip, "--nodes", "4", "--verify"]);
    let _ = dnsmasq.kill();
    let _ = dnsmasq.wait();
    srv.stop();
    assert!(ok, "loadgen failed:\n{text}");
    assert!(text.contains("(server mode): 4 booted, 0 failed"), "{text}");
    for (name, len) in
        [("ipxe.efi", 200_001), ("boot.ipxe", 65), ("vmlinuz", 2 << 20), ("initrd.img", 5 << 20)]
    {
        let want = format!("file {name}: 4 nodes, {len} bytes, sha256 {}", sha256(&root.join(name)));
        assert!(text.contains(&want), "missing {want:?} in:\n{text}");
    }
}
