//! The node lifecycle through the real binary and real clients on loopback: curl POSTs events,
//! busybox `wget` uses the GET variant (what an initramfs has), curl fetches kernels and initrds
//! from a node's own address (`--interface 127.0.0.x`, so each address is a machine), `ferroboot
//! status` (table and `--json`) and `ferroboot node reinstall` read and change it, and a
//! `kill -9` in the middle of an install loses no acknowledged transition.

mod common;

use common::{Scratch, Server, free_tcp_port, free_udp_port, require};
use serde_json::Value;
use std::path::Path;
use std::process::Command;

const NODE01: &str = "52:54:00:12:34:56";
const NODE02: &str = "52:54:00:12:34:57";

struct Lab {
    scratch: Scratch,
    http: u16,
    tftp: u16,
}

impl Lab {
    fn new() -> Lab {
        let scratch = Scratch::new();
        let root = scratch.root();
        std::fs::create_dir_all(root.join("nixos/control-plane")).unwrap();
        common::random_file(&root.join("nixos/control-plane/bzImage"), 3 << 20, 1);
        common::random_file(&root.join("nixos/control-plane/initrd"), 9 << 20, 2);
        common::random_file(&root.join("undionly.kpxe"), 70_000, 3);
        let lab = Lab { scratch, http: free_tcp_port(), tftp: free_udp_port() };
        let config = format!(
            r#"root = "{root}"
state_dir = "{state}"
listen = "127.0.0.1"
[tftp]
port = {tftp}
[http]
port = {http}
[nodes."{NODE01}"]
profile = "control-plane"
hostname = "node01"
ip_address = "127.0.0.2"
[nodes."{NODE02}"]
profile = "control-plane"
hostname = "node02"
ip_address = "127.0.0.3"
[profiles.control-plane]
kernel = "nixos/control-plane/bzImage"
initrd = "nixos/control-plane/initrd"
cmdline = "console=ttyS0"
"#,
            root = root.display(),
            state = lab.scratch.state().display(),
            tftp = lab.tftp,
            http = lab.http,
        );
        std::fs::write(lab.config(), config).unwrap();
        lab
    }

    fn config(&self) -> std::path::PathBuf {
        self.scratch.path("ferroboot.toml")
    }

    fn start(&self) -> Server {
        let mut s = Server::start(&["--config", self.config().to_str().unwrap()], None);
        s.wait_for("http: serving", std::time::Duration::from_secs(10));
        s
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.http)
    }

    fn server(&self) -> String {
        format!("http://127.0.0.1:{}", self.http)
    }
}

/// Runs a program; returns (exit code, stdout, stderr).
fn run(prog: &str, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(prog).args(args).output().unwrap_or_else(|e| panic!("{prog}: {e}"));
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// curl with `-s -w '\n%{http_code}'`: (status, body).
fn curl(args: &[&str]) -> (u16, String) {
    let mut a = vec!["-s", "-S", "-w", "\n%{http_code}"];
    a.extend_from_slice(args);
    let (code, out, err) = run("curl", &a);
    assert_eq!(code, 0, "curl {args:?}: {err}");
    let (body, status) = out.rsplit_once('\n').unwrap();
    (status.parse().unwrap(), body.to_string())
}

fn json(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("{e}: {s}"))
}

fn ferroboot(args: &[&str]) -> (i32, String, String) {
    run(env!("CARGO_BIN_EXE_ferroboot"), args)
}

fn fetch_as(ip: &str, url: &str, out: &Path) {
    let (status, _) = curl(&["--interface", ip, "-o", out.to_str().unwrap(), url]);
    assert_eq!(status, 200, "{url} from {ip}");
}

fn states(node: &Value) -> Vec<String> {
    node["history"].as_array().unwrap().iter().map(|e| e["state"].as_str().unwrap().to_string()).collect()
}

#[test]
fn events_status_and_reinstall_with_real_clients() {
    if !require("curl", "curl") || !require("busybox", "busybox") {
        return;
    }
    let lab = Lab::new();
    let _s = lab.start();
    let (status, body) = curl(&[&lab.url("/api/v1/nodes")]);
    assert_eq!(status, 200);
    let v = json(&body);
    let nodes = v["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 2);
    assert_eq!(nodes[0]["mac"], NODE01);
    assert_eq!(nodes[0]["hostname"], "node01");
    assert_eq!(nodes[0]["role"], "control-plane");
    assert_eq!(nodes[0]["ip_address"], "127.0.0.2");
    assert_eq!(nodes[0]["known"], true);
    assert_eq!(nodes[0]["state"], "discovered");

    // node01 (127.0.0.2) fetches iPXE by TFTP, then kernel and initrd over HTTP.
    let out = lab.scratch.path("dl");
    let (status, _) = curl(&[
        "--interface",
        "127.0.0.2",
        "-o",
        out.to_str().unwrap(),
        &format!("tftp://127.0.0.1:{}/undionly.kpxe", lab.tftp),
    ]);
    assert_eq!(status, 0, "curl reports 000 for TFTP");
    fetch_as("127.0.0.2", &lab.url("/boot/nixos/control-plane/bzImage"), &out);
    fetch_as("127.0.0.2", &lab.url("/boot/nixos/control-plane/initrd"), &out);
    let (_, body) = curl(&[&lab.url("/api/v1/nodes/52-54-00-12-34-56")]);
    let n = json(&body);
    assert_eq!(states(&n), ["discovered", "kernel", "initrd"]);
    assert_eq!(n["bytes_served"], 70_000 + (3 << 20) + (9 << 20));
    assert_eq!(
        n["history"][1]["detail"],
        format!("nixos/control-plane/bzImage, {} bytes over HTTP", 3 << 20)
    );
    // node02 was not touched by node01's downloads.
    let (_, body) = curl(&[&lab.url(&format!("/api/v1/nodes/{NODE02}"))]);
    assert_eq!(json(&body)["state"], "discovered");
    assert_eq!(json(&body)["bytes_served"], 0);
    // A URL naming the machine (`?mac=`, as the iPXE scripts write them) is attributed to it,
    // whatever address it comes from (here node01's), and teaches its address.
    fetch_as("127.0.0.2", &lab.url("/boot/nixos/control-plane/bzImage?mac=52-54-00-12-34-57"), &out);
    let (_, body) = curl(&[&lab.url(&format!("/api/v1/nodes/{NODE02}"))]);
    let n2 = json(&body);
    assert_eq!((n2["state"].as_str(), n2["bytes_served"].as_u64()), (Some("kernel"), Some(3 << 20)));
    assert_eq!(n2["ip_address"], "127.0.0.2");
    let (_, body) = curl(&[&lab.url("/api/v1/nodes/52-54-00-12-34-56")]);
    assert_eq!(json(&body)["bytes_served"], 70_000 + (3 << 20) + (9 << 20), "not node01's");
    let (status, _) =
        curl(&["-s", "-o", "/dev/null", &lab.url("/boot/nixos/control-plane/bzImage?mac=02:00:00:00:00:42")]);
    assert_eq!(status, 200, "an unknown MAC in the URL changes nothing");
    let (_, body) = curl(&[&lab.url("/api/v1/nodes/02:00:00:00:00:42")]);
    assert!(json(&body)["error"].is_string());

    // The installer's callback with busybox wget (GET variant), the rest with curl.
    let (code, out, err) = run(
        "busybox",
        &[
            "wget",
            "-q",
            "-O-",
            &lab.url(&format!("/api/v1/nodes/{NODE01}/events?event=booted&detail=installer+up")),
        ],
    );
    assert_eq!(code, 0, "busybox wget: {err}");
    let n = json(&out);
    assert_eq!((n["state"].as_str(), n["last_event"].as_str()), (Some("booted"), Some("booted")));
    assert_eq!(n["history"][3]["detail"], "installer up");
    let events = lab.url(&format!("/api/v1/nodes/{NODE01}/events"));
    let (status, body) = curl(&[
        "-X",
        "POST",
        "-H",
        "Content-Type: application/json",
        "-d",
        r#"{"event":"installing","detail":"nixos-anywhere"}"#,
        &events,
    ]);
    assert_eq!((status, json(&body)["state"].as_str()), (200, Some("installing")));
    // A form body works too (curl -d without JSON).
    let (status, body) = curl(&["-d", "event=installed", &events]);
    assert_eq!((status, json(&body)["state"].as_str()), (200, Some("installed")));
    let (status, body) = curl(&["-d", r#"{"event":"booted"}"#, &events]);
    assert_eq!(status, 409);
    assert!(json(&body)["error"].as_str().unwrap().contains("not allowed in state installed"), "{body}");

    // ferroboot status: the table and the JSON.
    let (code, table, err) = ferroboot(&["status", "--server", &lab.server()]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    for col in ["MAC", "HOSTNAME", "PROFILE", "STATE", "IN STATE", "LAST EVENT"] {
        assert!(lines[0].contains(col), "{table}");
    }
    let row: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(&row[..5], [NODE01, "node01", "control-plane", "installed", row[4]], "{table}");
    assert!(row[4].ends_with('s'), "time in state: {table}");
    assert_eq!(row[5], "installed", "{table}");
    assert!(lines[2].starts_with(NODE02) && lines[2].contains("kernel"), "{table}");
    let (code, out, _) = ferroboot(&["status", "--json", "--server", &lab.server()]);
    assert_eq!(code, 0);
    let v = json(&out);
    assert_eq!(v["nodes"][0]["state"], "installed");
    assert_eq!(
        states(&v["nodes"][0]),
        ["discovered", "kernel", "initrd", "booted", "installing", "installed"]
    );

    // Reinstall from the CLI: back to discovered.
    let (code, out, err) = ferroboot(&["node", "reinstall", "52-54-00-12-34-56", "--server", &lab.server()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("52:54:00:12:34:56 (node01): reinstall requested; state discovered"), "{out}");
    let (_, body) = curl(&[&lab.url(&format!("/api/v1/nodes/{NODE01}"))]);
    let n = json(&body);
    assert_eq!(n["state"], "discovered");
    assert_eq!(
        n["history"].as_array().unwrap().last().unwrap()["detail"],
        "reinstall requested by 127.0.0.1"
    );
    let (code, _, err) = ferroboot(&["node", "reinstall", "02:00:00:00:00:99", "--server", &lab.server()]);
    assert_eq!(code, 1);
    assert!(err.contains("404") && err.contains("no node 02:00:00:00:00:99"), "{err}");
    let (code, _, err) = ferroboot(&["node", "reinstall", "not-a-mac"]);
    assert_eq!(code, 2, "{err}");

    // An unknown MAC reporting an event is created.
    let (status, body) = curl(&[
        "-d",
        r#"{"event":"failed","detail":"no disk"}"#,
        &lab.url("/api/v1/nodes/02:00:00:00:00:01/events"),
    ]);
    assert_eq!(status, 200);
    assert_eq!(
        (json(&body)["known"].as_bool(), json(&body)["state"].as_str()),
        (Some(false), Some("failed"))
    );

    // Refusals: bad MAC, unknown route, method, body too large, chunked.
    let big = lab.scratch.path("big.json");
    std::fs::write(&big, format!(r#"{{"event":"failed","detail":"{}"}}"#, "x".repeat(20 << 10))).unwrap();
    let big_arg = format!("@{}", big.display());
    for (args, want) in [
        (vec![lab.url("/api/v1/nodes/nonsense")], 400),
        (vec![lab.url("/api/v1/bogus")], 404),
        (vec!["-X".into(), "PUT".into(), "-d".into(), "x".into(), events.clone()], 405),
        (vec!["-X".into(), "POST".into(), lab.url("/api/v1/nodes")], 405),
        (vec!["-d".into(), big_arg, events.clone()], 413),
        (
            vec![
                "-H".into(),
                "Transfer-Encoding: chunked".into(),
                "-d".into(),
                r#"{"event":"booted"}"#.into(),
                events.clone(),
            ],
            411,
        ),
        (vec!["-d".into(), "x=1".into(), lab.url("/boot/undionly.kpxe")], 405),
    ] {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        let (status, _) = curl(&a);
        assert_eq!(status, want, "{args:?}");
    }
    // A body is framed by its Content-Length: a POST pipelined with a GET on one connection
    // gets both answers, in order, and the connection stays open.
    {
        use std::io::{Read, Write};
        let mut c = std::net::TcpStream::connect(("127.0.0.1", lab.http)).unwrap();
        let body = r#"{"event":"installing"}"#;
        let req = format!(
            "POST /api/v1/nodes/{NODE02}/events HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}\
             GET /api/v1/nodes/{NODE02} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            body.len()
        );
        // Head and body in separate writes too: the body may arrive after its head.
        let (a, b) = req.split_at(req.find("\r\n\r\n").unwrap() + 4);
        c.write_all(a.as_bytes()).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(50));
        c.write_all(b.as_bytes()).unwrap();
        let mut all = String::new();
        c.read_to_string(&mut all).unwrap();
        assert_eq!(all.matches("HTTP/1.1 200 OK").count(), 2, "{all}");
        assert_eq!(all.matches("\"last_event\":\"installing\"").count(), 2, "{all}");
        assert!(all.contains("Connection: keep-alive"), "{all}");
    }
    // `Expect: 100-continue`: the interim answer comes at once (curl would wait 5 s for it).
    let t0 = std::time::Instant::now();
    let (status, body) = curl(&[
        "-H",
        "Expect: 100-continue",
        "--expect100-timeout",
        "5",
        "-d",
        r#"{"event":"failed","detail":"expect"}"#,
        &lab.url(&format!("/api/v1/nodes/{NODE02}/events")),
    ]);
    assert_eq!((status, json(&body)["state"].as_str()), (200, Some("failed")));
    assert!(t0.elapsed() < std::time::Duration::from_secs(3), "100 Continue not sent: {:?}", t0.elapsed());
    // POST then GET in one curl run.
    let (status, body) = curl(&[
        "-d",
        r#"{"event":"booted"}"#,
        &lab.url(&format!("/api/v1/nodes/{NODE02}/events")),
        "--next",
        "-s",
        "-w",
        "\n%{http_code}",
        &lab.url(&format!("/api/v1/nodes/{NODE02}")),
    ]);
    assert_eq!(status, 200);
    assert!(body.contains("\"state\":\"booted\""), "{body}");

    // The CLI against no server: a clear error, exit 1.
    let (code, _, err) = ferroboot(&["status", "--server", &format!("http://127.0.0.1:{}", free_tcp_port())]);
    assert_eq!(code, 1);
    assert!(err.contains("cannot reach"), "{err}");
}

#[test]
fn kill_9_in_the_middle_of_an_install_keeps_the_timeline() {
    if !require("curl", "curl") {
        return;
    }
    let lab = Lab::new();
    let mut s = lab.start();
    let out = lab.scratch.path("dl");
    fetch_as("127.0.0.2", &lab.url("/boot/nixos/control-plane/bzImage"), &out);
    fetch_as("127.0.0.2", &lab.url("/boot/nixos/control-plane/initrd"), &out);
    let events = lab.url(&format!("/api/v1/nodes/{NODE01}/events"));
    for (event, detail) in [("booted", "installer up"), ("installing", "nixos-anywhere: partitioning")] {
        let (status, _) = curl(&["-d", &format!(r#"{{"event":"{event}","detail":"{detail}"}}"#), &events]);
        assert_eq!(status, 200);
    }
    let (_, before) = curl(&[&lab.url(&format!("/api/v1/nodes/{NODE01}"))]);
    let before = json(&before);
    // SIGKILL: no shutdown, no flush.
    s.child.kill().unwrap();
    s.child.wait().unwrap();
    let _s = lab.start();
    let (_, after) = curl(&[&lab.url(&format!("/api/v1/nodes/{NODE01}"))]);
    let after = json(&after);
    assert_eq!(
        after["history"], before["history"],
        "every acknowledged transition, with its time and detail"
    );
    assert_eq!(states(&after), ["discovered", "kernel", "initrd", "booted", "installing"]);
    assert_eq!(after["state"], "installing");
    assert_eq!(after["since_ms"], before["since_ms"]);
    assert_eq!(after["bytes_served"], (3 << 20) + (9 << 20));
    // The install goes on after the restart.
    let (status, body) = curl(&["-d", r#"{"event":"installed"}"#, &events]);
    assert_eq!((status, json(&body)["state"].as_str()), (200, Some("installed")));
    let (code, table, _) = ferroboot(&["status", "--server", &lab.server()]);
    assert_eq!(code, 0);
    assert!(table.lines().nth(1).unwrap().contains("installed"), "{table}");
}

mod dhcp_common;

/// The issue's whole boot, every step by a real client inside a client namespace joined to the
/// server's by a veth pair: the PXE ROM's DHCP (udhcpc with a `PXEClient` vendor class) is
/// answered with `undionly.kpxe`, which tftp-hpa fetches (Debian's real iPXE build); iPXE's DHCP
/// (udhcpc with user class `iPXE`) gets the script URL; curl fetches the chain script and the
/// per-machine script with the query iPXE sends, then exactly the kernel and initrd URLs that
/// script names; the installer calls back with busybox wget (GET) and curl (POST); the next
/// boot's script says `exit`. The timeline is read back through the API and `ferroboot status`.
#[test]
fn whole_boot_from_dhcp_to_the_local_disk() {
    use dhcp_common::Lab as NetLab;
    if !common::require_root()
        || !require("udhcpc", "udhcpc")
        || !require("tftp", "tftp-hpa")
        || !require("curl", "curl")
        || !require("busybox", "busybox")
    {
        return;
    }
    let ipxe_build = Path::new("/usr/lib/ipxe/undionly.kpxe");
    assert!(ipxe_build.exists(), "{} missing (apt-get install ipxe)", ipxe_build.display());
    let net = NetLab::new("fblife", 97);
    let mac = "02:11:fe:00:00:01";
    net.cli.exec_ok(&["ip", "link", "set", &net.cli_if(), "address", mac]);
    let scratch = Scratch::new();
    let root = scratch.root();
    std::fs::create_dir_all(root.join("nixos/control-plane")).unwrap();
    common::random_file(&root.join("nixos/control-plane/bzImage"), 5 << 20, 11);
    common::random_file(&root.join("nixos/control-plane/initrd"), 20 << 20, 12);
    let cfg = scratch.path("ferroboot.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"interface = "{iface}"
server_address = "10.97.0.1"
root = "{root}"
state_dir = "{state}"
[dhcp]
mode = "server"
subnet = "10.97.0.0"
netmask = "255.255.255.0"
range = {{ start = "10.97.0.100", end = "10.97.0.120" }}
router = "10.97.0.1"
lease_time = 600
[nodes."{mac}"]
profile = "control-plane"
hostname = "node01"
ip_address = "10.97.0.50"
[profiles.control-plane]
kernel = "nixos/control-plane/bzImage"
initrd = "nixos/control-plane/initrd"
cmdline = "console=ttyS0 hostname={{hostname}}"
"#,
            iface = net.srv_if(),
            root = root.display(),
            state = scratch.state().display(),
        ),
    )
    .unwrap();
    let mut srv = dhcp_common::start(&cfg, &net.srv.name);
    srv.wait_for("http: serving", std::time::Duration::from_secs(10));
    let hook = scratch.path("hook.sh");
    std::fs::write(
        &hook,
        "#!/bin/sh\ncase \"$1\" in bound|renew) ip addr flush dev \"$interface\"; ip addr add \"$ip/24\" dev \"$interface\"; echo \"$ip $boot_file\" >> \"$0.log\";; esac\nexit 0\n",
    )
    .unwrap();
    run("chmod", &["+x", hook.to_str().unwrap()]);
    let cli = |args: &[&str]| -> String {
        let (ok, out) = net.cli.exec(args);
        assert!(ok, "{args:?}: {out}");
        out
    };
    let udhcpc = |extra: &[&str]| {
        let mut a = vec!["timeout", "20", "udhcpc", "-f", "-q", "-n", "-i"];
        let cif = net.cli_if();
        a.push(&cif);
        a.extend_from_slice(&["-s", hook.to_str().unwrap(), "-O", "bootfile"]);
        a.extend_from_slice(extra);
        cli(&a);
    };
    let api =
        |path: &str| -> Value { json(&cli(&["curl", "-s", "-S", &format!("http://10.97.0.1:8080{path}")])) };
    let node = |s: &str| format!("/api/v1/nodes/{mac}{s}");

    // 1. The PXE ROM: DHCP with a PXEClient vendor class gets the BIOS iPXE build.
    udhcpc(&["-V", "PXEClient:Arch:00000:UNDI:002001"]);
    let leases = std::fs::read_to_string(format!("{}.log", hook.display())).unwrap();
    assert_eq!(leases.lines().last(), Some("10.97.0.50 undionly.kpxe"), "{leases}");
    // 2. TFTP of the iPXE binary (tftp-hpa, from the leased address).
    let kpxe = scratch.path("undionly.kpxe");
    cli(&["tftp", "10.97.0.1", "-m", "binary", "-c", "get", "undionly.kpxe", kpxe.to_str().unwrap()]);
    assert_eq!(std::fs::read(&kpxe).unwrap(), std::fs::read(ipxe_build).unwrap());
    // 3. iPXE's own DHCP (user class iPXE) gets the script URL.
    udhcpc(&["-V", "PXEClient:Arch:00000:UNDI:002001", "-x", "0x4d:69505845"]);
    let leases = std::fs::read_to_string(format!("{}.log", hook.display())).unwrap();
    assert_eq!(leases.lines().last(), Some("10.97.0.50 http://10.97.0.1:8080/boot.ipxe"), "{leases}");
    // 4. The chain script, then the per-machine script with iPXE's query.
    let chain = cli(&["curl", "-s", "-S", "-A", "iPXE/1.21.1", "http://10.97.0.1:8080/boot.ipxe"]);
    assert!(chain.starts_with("#!ipxe") && chain.contains("/ipxe/node?"), "{chain}");
    let q = "/ipxe/node?mac=02-11-fe-00-00-01&uuid=&buildarch=i386&platform=pcbios&hostname=node01";
    let script = cli(&["curl", "-s", "-S", "-A", "iPXE/1.21.1", &format!("http://10.97.0.1:8080{q}")]);
    assert!(script.contains("hostname=node01"), "{script}");
    let url_after = |word: &str| -> String {
        let line = script
            .lines()
            .map(str::trim)
            .find(|l| l.starts_with(word))
            .unwrap_or_else(|| panic!("no {word} in {script}"));
        line.split_whitespace().find(|t| t.starts_with("http://")).unwrap().to_string()
    };
    let (kernel, initrd) = (url_after("kernel"), url_after("initrd"));
    assert_eq!(kernel, "http://10.97.0.1:8080/boot/nixos/control-plane/bzImage?mac=02-11-fe-00-00-01");
    // 5. Kernel and initrd, as the script names them.
    let out = scratch.path("dl");
    for u in [&kernel, &initrd] {
        cli(&["curl", "-s", "-S", "-f", "-A", "iPXE/1.21.1", "-o", out.to_str().unwrap(), u]);
    }
    assert_eq!(api(&node(""))["state"], "initrd");
    // 6. The installer calls back.
    let cb = format!("http://10.97.0.1:8080/api/v1/nodes/{mac}/events");
    let booted = cli(&["busybox", "wget", "-q", "-O-", &format!("{cb}?event=booted&detail=installer+up")]);
    assert_eq!(json(&booted)["state"], "booted");
    for e in ["installing", "installed"] {
        let r = cli(&["curl", "-s", "-S", "-f", "-d", &format!(r#"{{"event":"{e}"}}"#), &cb]);
        assert_eq!(json(&r)["state"], e);
    }
    // 7. The next boot: DHCP again (no change), and the script now says exit.
    udhcpc(&["-V", "PXEClient:Arch:00000:UNDI:002001", "-x", "0x4d:69505845"]);
    let again = cli(&["curl", "-s", "-S", "-A", "iPXE/1.21.1", &format!("http://10.97.0.1:8080{q}")]);
    assert!(again.lines().any(|l| l.trim() == "exit"), "{again}");
    assert!(!again.contains("kernel "), "{again}");

    // The timeline, through the API.
    let n = api(&node(""));
    assert_eq!(
        states(&n),
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
    assert_eq!(n["state"], "local");
    assert_eq!(n["ip_address"], "10.97.0.50");
    let kpxe_len = std::fs::metadata(ipxe_build).unwrap().len();
    assert_eq!(n["bytes_served"], kpxe_len + (5 << 20) + (20 << 20), "TFTP + HTTP bytes: {n}");
    let h = n["history"].as_array().unwrap();
    assert_eq!(h[1]["detail"], "iPXE binary over TFTP undionly.kpxe, arch 0 (x86 BIOS)");
    assert_eq!(h[2]["detail"], "iPXE script http://10.97.0.1:8080/boot.ipxe, arch 0 (x86 BIOS)");
    assert_eq!(h[3]["detail"], "boot script served to 10.97.0.50");
    assert_eq!(h[3]["bytes_served"], kpxe_len, "the iPXE binary came before the script");
    assert_eq!(h[4]["detail"], format!("nixos/control-plane/bzImage, {} bytes over HTTP", 5 << 20));
    assert_eq!(h[6]["detail"], "installer up");
    assert_eq!(h[9]["detail"], "exit script served to 10.97.0.50: boots from its disk");
    let at: Vec<u64> = h.iter().map(|e| e["at_ms"].as_u64().unwrap()).collect();
    assert!(at.windows(2).all(|w| w[0] <= w[1]), "timestamps in order: {at:?}");
    // And through `ferroboot status`, run on the client side.
    let bin = env!("CARGO_BIN_EXE_ferroboot");
    let table = cli(&[bin, "status", "--server", "http://10.97.0.1:8080"]);
    let row = table.lines().find(|l| l.starts_with(mac)).unwrap_or_else(|| panic!("{table}"));
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(&cols[..4], [mac, "node01", "control-plane", "local"], "{table}");
    assert_eq!(cols[5], "exit", "{table}");
    let j = json(&cli(&[bin, "status", "--json", "--server", "http://10.97.0.1:8080"]));
    assert_eq!(j["nodes"][0]["history"], n["history"]);
    srv.wait_for("lifecycle: 02:11:fe:00:00:01 exit -> local", std::time::Duration::from_secs(5));
    srv.stop();
}
