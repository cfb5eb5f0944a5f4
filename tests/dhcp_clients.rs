//! The real binary against real DHCP clients, each test in network namespaces it creates and
//! removes: busybox udhcpc and ISC dhclient get, renew and release leases (and a reservation
//! its fixed address and hostname), nmap's broadcast-dhcp-discover sees the offer, relayed
//! clients of two subnets get leases of their own subnet through ISC dhcrelay, and ProxyDHCP
//! beside dnsmasq hands out only the boot file, naming on each link of a multi-homed host the
//! address that link reaches. Needs root; under CI=true a missing tool or root is a failure.

mod common;
mod dhcp_common;

use common::{Netns, Scratch, require, require_root, run};
use dhcp_common::{Lab, client_socket, exchange, exchange_n, in_netns, message, start};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A config for a server on `lab` with pool .100-.120 and one reservation.
fn config(lab: &Lab, scratch: &Scratch, mode: &str, extra: &str) -> std::path::PathBuf {
    let n = lab.n;
    let text = format!(
        r#"root = "{root}"
state_dir = "{state}"
interface = "{iface}"
[dhcp]
mode = "{mode}"
subnet = "10.{n}.0.0"
netmask = "255.255.255.0"
range = {{ start = "10.{n}.0.100", end = "10.{n}.0.120" }}
router = "10.{n}.0.1"
domain_name_servers = ["10.{n}.0.1"]
domain_name = "test.lab"
lease_time = 120
[tftp]
enabled = false
[http]
enabled = false
[nodes."02:aa:00:00:00:99"]
hostname = "reserved-node"
ip_address = "10.{n}.0.50"
{extra}
"#,
        root = scratch.root().display(),
        state = scratch.state().display(),
        iface = lab.srv_if(),
    );
    let p = scratch.path("ferroboot.toml");
    std::fs::write(&p, text).unwrap();
    p
}

/// A udhcpc/dhclient hook script that configures the address and logs each event to `log`.
fn hook(scratch: &Scratch, log: &std::path::Path) -> std::path::PathBuf {
    let p = scratch.path("hook.sh");
    let text = format!(
        r#"#!/bin/sh
# udhcpc: $1 = event, $ip/$mask/$hostname; dhclient: $reason, $new_ip_address, $new_host_name
ev="${{1:-$reason}}"
addr="${{ip:-$new_ip_address}}"
echo "$ev $addr ${{hostname:-$new_host_name}}" >> {log}
case "$ev" in
  bound|renew|BOUND|RENEW|REBOOT|REBIND) ip addr flush dev "$interface"; ip addr add "$addr/24" dev "$interface" ;;
  deconfig|RELEASE|EXPIRE|STOP) ip addr flush dev "$interface" ;;
esac
exit 0
"#,
        log = log.display()
    );
    std::fs::write(&p, text).unwrap();
    run(Command::new("chmod").arg("+x").arg(&p));
    p
}

fn wait_file(path: &std::path::Path, needle: &str, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let s = std::fs::read_to_string(path).unwrap_or_default();
        if s.contains(needle) {
            return s;
        }
        assert!(Instant::now() < deadline, "no {needle:?} in {} within {timeout:?}: {s}", path.display());
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn udhcpc_gets_renews_and_releases_a_lease() {
    if !require_root() || !require("udhcpc", "udhcpc") {
        return;
    }
    let lab = Lab::new("fbdu", 81);
    let scratch = Scratch::new();
    let mut srv = start(&config(&lab, &scratch, "server", ""), &lab.srv.name);
    let events = scratch.path("events");
    let script = hook(&scratch, &events);
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &lab.cli.name, "udhcpc", "-f", "-R", "-i", &lab.cli_if(), "-s"])
        .arg(&script)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = cmd.spawn().unwrap();
    let log = wait_file(&events, "bound", Duration::from_secs(15));
    let ip: Ipv4Addr =
        log.lines().find(|l| l.starts_with("bound")).unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    assert!((100..=120).contains(&ip.octets()[3]), "{ip} not from the pool");
    srv.wait_for(&format!("ACK {ip}"), Duration::from_secs(5));
    // SIGUSR1: renew (a unicast REQUEST with ciaddr), SIGUSR2: release.
    run(Command::new("kill").args(["-USR1", &child.id().to_string()]));
    srv.wait_for("RENEWING: lease extended", Duration::from_secs(10));
    wait_file(&events, "renew", Duration::from_secs(10));
    run(Command::new("kill").args(["-USR2", &child.id().to_string()]));
    srv.wait_for("lease released by the client", Duration::from_secs(10));
    let _ = child.kill();
    let _ = child.wait();
    // The journal has the lease and its release.
    let data = std::fs::read(scratch.state().join("dhcp-leases.journal")).unwrap();
    let (recs, good) = ferroboot::dhcp::leases::decode_all(&data);
    assert_eq!(good, data.len());
    assert!(recs.iter().any(|r| r.ip == ip && r.kind == ferroboot::dhcp::leases::RecordKind::Lease));
    assert!(ferroboot::dhcp::leases::fold(&recs).iter().all(|r| r.ip != ip), "released");
    srv.stop();
}

#[test]
fn dhclient_reservation_gets_fixed_address_and_hostname_reboots_and_releases() {
    if !require_root() || !require("dhclient", "isc-dhcp-client") {
        return;
    }
    let lab = Lab::new("fbdd", 82);
    lab.cli.exec_ok(&["ip", "link", "set", &lab.cli_if(), "address", "02:aa:00:00:00:99"]);
    let scratch = Scratch::new();
    let mut srv = start(&config(&lab, &scratch, "server", ""), &lab.srv.name);
    let events = scratch.path("events");
    let script = hook(&scratch, &events);
    let lf = scratch.path("dhclient.leases");
    let pf = scratch.path("dhclient.pid");
    let dhclient = |extra: &[&str]| {
        let mut args = vec!["timeout", "30", "dhclient", "-1", "-v", "-sf", script.to_str().unwrap()];
        args.extend_from_slice(&["-lf", lf.to_str().unwrap(), "-pf", pf.to_str().unwrap()]);
        args.extend_from_slice(extra);
        let cif = lab.cli_if();
        args.push(&cif);
        lab.cli.exec(&args)
    };
    let (ok, out) = dhclient(&[]);
    assert!(ok, "dhclient: {out}");
    assert!(out.contains(&format!("DHCPACK of {}", lab.ip(50))), "{out}");
    let leases = std::fs::read_to_string(&lf).unwrap();
    assert!(leases.contains("option host-name \"reserved-node\""), "{leases}");
    assert!(leases.contains("option domain-name \"test.lab\""), "{leases}");
    srv.wait_for(&format!("ACK {} to 02:aa:00:00:00:99", lab.ip(50)), Duration::from_secs(5));
    // Kill it and start again: INIT-REBOOT with the remembered address.
    let _ = dhclient(&["-x"]);
    let (ok, out) = dhclient(&[]);
    assert!(ok, "dhclient again: {out}");
    assert!(out.contains(&format!("DHCPACK of {}", lab.ip(50))), "{out}");
    srv.wait_for("INIT-REBOOT: client's lease confirmed", Duration::from_secs(5));
    let (ok, out) = dhclient(&["-r"]);
    assert!(ok, "dhclient -r: {out}");
    srv.wait_for("lease released by the client", Duration::from_secs(5));
    srv.stop();
}

#[test]
fn nmap_broadcast_dhcp_discover_sees_our_offer() {
    if !require_root() || !require("nmap", "nmap") {
        return;
    }
    let lab = Lab::new("fbdn", 83);
    // The nmap script needs an address on the interface it sends from.
    lab.cli.exec_ok(&["ip", "addr", "add", &format!("{}/24", lab.ip(200)), "dev", &lab.cli_if()]);
    let scratch = Scratch::new();
    let mut srv = start(&config(&lab, &scratch, "server", ""), &lab.srv.name);
    let out = lab.cli.exec_ok(&[
        "timeout",
        "60",
        "nmap",
        "--script",
        "broadcast-dhcp-discover",
        "-e",
        &lab.cli_if(),
    ]);
    assert!(out.contains("DHCPOFFER"), "{out}");
    assert!(out.contains(&format!("Server Identifier: {}", lab.ip(1))), "{out}");
    assert!(out.contains("Domain Name: test.lab"), "{out}");
    srv.wait_for("OFFER", Duration::from_secs(5));
    srv.stop();
}

#[test]
fn relayed_clients_get_leases_of_their_own_subnet_through_dhcrelay() {
    if !require_root() || !require("dhcrelay", "isc-dhcp-relay") || !require("udhcpc", "udhcpc") {
        return;
    }
    // client  --(10.85.0.0/24, [dhcp])----- relay --(10.84.0.0/24)-- server
    // client2 --(10.86.0.0/24, [[dhcp.pools]])-'
    let lab = Lab::new("fbdr", 84);
    let relay = Netns::new("fbdrr");
    let cli2 = Netns::new("fbdrc2");
    let run_ok = |args: &[&str]| {
        let (ok, out) = run(Command::new("ip").args(args));
        assert!(ok, "{args:?}: {out}");
    };
    // Re-home the client end of the lab veth into the relay namespace, add the client links.
    run_ok(&["-n", &lab.cli.name, "link", "set", &lab.cli_if(), "netns", &relay.name]);
    relay.exec_ok(&["ip", "link", "set", &lab.cli_if(), "up"]);
    relay.exec_ok(&["ip", "addr", "add", "10.84.0.2/24", "dev", &lab.cli_if()]);
    for (x, ns, net) in [("fbdrx", &lab.cli, 85), ("fbdry", &cli2, 86)] {
        let (a, b) = (format!("{x}0"), format!("{x}1"));
        let _ = Command::new("ip").args(["link", "del", &a]).stderr(Stdio::null()).status();
        run_ok(&["link", "add", &a, "type", "veth", "peer", "name", &b]);
        run_ok(&["link", "set", &a, "netns", &relay.name]);
        run_ok(&["link", "set", &b, "netns", &ns.name]);
        relay.exec_ok(&["ip", "link", "set", &a, "up"]);
        relay.exec_ok(&["ip", "addr", "add", &format!("10.{net}.0.1/24"), "dev", &a]);
        ns.exec_ok(&["ip", "link", "set", &b, "up"]);
        lab.srv.exec_ok(&["ip", "route", "add", &format!("10.{net}.0.0/24"), "via", "10.84.0.2"]);
    }
    relay.exec_ok(&["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
    let scratch = Scratch::new();
    let text = format!(
        r#"root = "{}"
state_dir = "{}"
[dhcp]
mode = "server"
subnet = "10.85.0.0"
netmask = "255.255.255.0"
range = {{ start = "10.85.0.100", end = "10.85.0.120" }}
router = "10.85.0.1"
lease_time = 120
[[dhcp.pools]]
subnet = "10.86.0.0"
netmask = "255.255.255.0"
range = {{ start = "10.86.0.50", end = "10.86.0.60" }}
router = "10.86.0.1"
[tftp]
enabled = false
[http]
enabled = false
"#,
        scratch.root().display(),
        scratch.state().display()
    );
    let cfg = scratch.path("relay.toml");
    std::fs::write(&cfg, text).unwrap();
    // Prints what udhcpc got: the address and the router.
    let script = scratch.path("print.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\n[ \"$1\" = bound ] && echo \"bound ip=$ip router=$router\"\nexit 0\n",
    )
    .unwrap();
    run_ok(&["netns", "exec", &relay.name, "chmod", "+x", script.to_str().unwrap()]);
    let mut srv = start(&cfg, &lab.srv.name);
    let mut dhcrelay = Command::new("ip")
        .args(["netns", "exec", &relay.name, "dhcrelay", "-4", "-d", "-id", "fbdrx0", "-id", "fbdry0", "-iu"])
        .arg(lab.cli_if())
        .arg("10.84.0.1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let dhcp = |ns: &Netns, dev: &str| {
        ns.exec(&["timeout", "20", "udhcpc", "-f", "-q", "-n", "-i", dev, "-s", script.to_str().unwrap()])
    };
    let (ok1, out1) = dhcp(&lab.cli, "fbdrx1");
    let (ok2, out2) = dhcp(&cli2, "fbdry1");
    let _ = dhcrelay.kill();
    let _ = dhcrelay.wait();
    assert!(ok1, "udhcpc through the relay: {out1}");
    assert!(out1.contains("bound ip=10.85.0.1") && out1.contains("router=10.85.0.1\n"), "{out1}");
    let line = srv.wait_for("ACK 10.85.0.1", Duration::from_secs(5));
    assert!(line.contains("SELECTING"), "{line}");
    assert!(ok2, "udhcpc on the second subnet: {out2}");
    assert!(out2.contains("bound ip=10.86.0.5") && out2.contains("router=10.86.0.1\n"), "{out2}");
    srv.wait_for("ACK 10.86.0.5", Duration::from_secs(5));
    srv.stop();
}

#[test]
fn proxy_dhcp_beside_dnsmasq_gives_only_the_boot_file() {
    if !require_root() || !require("dnsmasq", "dnsmasq-base") || !require("udhcpc", "udhcpc") {
        return;
    }
    let lab = Lab::new("fbdp", 86);
    let scratch = Scratch::new();
    let mut dnsmasq = Command::new("ip")
        .args(["netns", "exec", &lab.srv.name, "dnsmasq", "--no-daemon", "--port=0", "--no-ping"])
        .arg(format!("--interface={}", lab.srv_if()))
        .arg("--bind-interfaces")
        .arg("--dhcp-range=10.86.0.150,10.86.0.160,255.255.255.0,2m")
        .arg(format!("--dhcp-leasefile={}", scratch.path("dnsmasq.leases").display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // dnsmasq must own its port-67 socket before the client broadcasts: wait for the bind.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !lab.srv.exec(&["ss", "-lunp"]).1.contains("dnsmasq") {
        assert!(std::time::Instant::now() < deadline, "dnsmasq did not bind port 67");
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut srv = start(&config(&lab, &scratch, "proxy", ""), &lab.srv.name);
    let cif = lab.cli_if();
    let srv_ip = lab.ip(1);
    let mac = [0x02, 0xbb, 0, 0, 0, 0x01];
    let result = in_netns(&lab.cli.name, move || {
        let sock = client_socket(&cif, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 68));
        let bcast = SocketAddrV4::new(Ipv4Addr::BROADCAST, 67);
        let pxe: &[(u8, &[u8])] =
            &[(60, b"PXEClient:Arch:00000:UNDI:002001"), (93, &[0, 0]), (55, &[1, 3, 43, 60, 66, 67])];
        let offers = exchange_n(
            &sock,
            &message(1, mac, 0x1111, Ipv4Addr::UNSPECIFIED, pxe),
            bcast,
            0x1111,
            Duration::from_secs(3),
            2,
        );
        // Take dnsmasq's address, then ask the ProxyDHCP on 4011 from it.
        let lease = offers.iter().find(|o| !o.yiaddr.is_unspecified()).map(|o| (o.yiaddr, o.src));
        let mut acks = Vec::new();
        if let Some((ip, server)) = lease {
            let req =
                message(3, mac, 0x2222, Ipv4Addr::UNSPECIFIED, &[(50, &ip.octets()), (54, &server.octets())]);
            let _ = exchange(&sock, &req, bcast, 0x2222, Duration::from_millis(500));
            let (ok, out) = run(Command::new("ip").args(["addr", "add", &format!("{ip}/24"), "dev", &cif]));
            assert!(ok, "{out}");
            let s = client_socket(&cif, SocketAddrV4::new(ip, 68));
            acks = exchange(
                &s,
                &message(3, mac, 0x3333, ip, pxe),
                SocketAddrV4::new(srv_ip, 4011),
                0x3333,
                Duration::from_secs(2),
            );
        }
        (offers, lease, acks)
    });
    let (offers, lease, acks) = result;
    let ours = offers.iter().find(|o| o.src == srv_ip && o.yiaddr.is_unspecified() && o.opt(60).is_some());
    let ours = ours.unwrap_or_else(|| panic!("no ProxyDHCP offer; log:\n{}", srv.lines.join("\n")));
    assert_eq!(ours.opt(60), Some(&b"PXEClient"[..]));
    assert_eq!(ours.file, "undionly.kpxe");
    assert!(ours.opt(43).is_some(), "PXE vendor options");
    assert!(ours.opt(51).is_none(), "a ProxyDHCP offers no lease");
    let (ip, _) = lease.expect("an address from dnsmasq");
    assert!((150..=160).contains(&ip.octets()[3]), "{ip} is from dnsmasq's range");
    let ack = acks.first().unwrap_or_else(|| panic!("no 4011 ACK; log:\n{}", srv.lines.join("\n")));
    assert_eq!(ack.opt(53), Some(&[5u8][..]));
    assert_eq!(ack.file, "undionly.kpxe");
    assert!(ack.yiaddr.is_unspecified());

    // A plain Linux client is ignored by the proxy and served by dnsmasq.
    let (ok, out) =
        lab.cli.exec(&["timeout", "20", "udhcpc", "-f", "-q", "-n", "-i", &lab.cli_if(), "-s", "/bin/true"]);
    assert!(ok, "udhcpc beside the proxy: {out}");
    assert!(out.contains("lease of 10.86.0.15") || out.contains("lease of 10.86.0.160"), "{out}");
    srv.wait_for("ProxyDHCP: not a PXEClient", Duration::from_secs(5));
    assert!(
        !srv.lines.iter().any(|l| l.contains("OFFER") && !l.contains("02:bb:00:00:00:01")),
        "{:?}",
        srv.lines
    );
    let _ = dnsmasq.kill();
    let _ = dnsmasq.wait();
    srv.stop();
}

#[test]
fn multi_homed_proxy_names_the_address_of_each_link() {
    // ProxyDHCP on a host with two provisioning links, no `interface` and no `server_address`:
    // a client on either link must be sent to the address on its own link (siaddr and the
    // script URL), not to the other link's, which it cannot reach.
    if !require_root() {
        return;
    }
    let lab = Lab::new("fbmh", 87);
    let second = lab.second_link(88);
    let scratch = Scratch::new();
    let cfg = scratch.path("ferroboot.toml");
    let text = format!(
        "root = \"{}\"\nstate_dir = \"{}\"\n[dhcp]\nmode = \"proxy\"\n[tftp]\nenabled = false\n",
        scratch.root().display(),
        scratch.state().display()
    );
    std::fs::write(&cfg, text).unwrap();
    let mut srv = start(&cfg, &lab.srv.name);
    for (ns, dev, addr) in [
        (lab.cli.name.clone(), lab.cli_if(), Ipv4Addr::new(10, 87, 0, 1)),
        (second.name.clone(), format!("{}b1", lab.tag), Ipv4Addr::new(10, 88, 0, 1)),
    ] {
        let (rom, ipxe) = in_netns(&ns, move || {
            let sock = client_socket(&dev, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 68));
            let bcast = SocketAddrV4::new(Ipv4Addr::BROADCAST, 67);
            let mac = [0x02, 0xcc, 0, 0, 0, addr.octets()[1]];
            let arch: &[(u8, &[u8])] = &[(60, b"PXEClient:Arch:00000:UNDI:002001"), (93, &[0, 0])];
            let rom = exchange(
                &sock,
                &message(1, mac, 0x4141, Ipv4Addr::UNSPECIFIED, arch),
                bcast,
                0x4141,
                Duration::from_secs(3),
            );
            // The iPXE it loads: user class "iPXE", HTTP in its feature list (option 175, 19).
            let mut opts = arch.to_vec();
            opts.extend_from_slice(&[(77, &b"iPXE"[..]), (175, &[19, 1, 1][..])]);
            let ipxe = exchange(
                &sock,
                &message(1, mac, 0x4242, Ipv4Addr::UNSPECIFIED, &opts),
                bcast,
                0x4242,
                Duration::from_secs(3),
            );
            (rom, ipxe)
        });
        let log = || srv.lines.join("\n");
        let rom = rom.first().unwrap_or_else(|| panic!("no offer on the link of {addr}; log:\n{}", log()));
        assert_eq!((rom.src, rom.siaddr, rom.file.as_str()), (addr, addr, "undionly.kpxe"), "{}", log());
        assert_eq!(rom.opt(54), Some(&addr.octets()[..]), "server identifier");
        let ipxe = ipxe.first().unwrap_or_else(|| panic!("no iPXE offer on the link of {addr}"));
        assert_eq!(ipxe.file, format!("http://{addr}:8080/boot.ipxe"), "{}", log());
    }
    srv.stop();
}
