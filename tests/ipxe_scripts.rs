//! iPXE scripts and binaries against the real `ferroboot serve` / `ferroboot boot`, fetched the way
//! iPXE would: curl gets `/boot.ipxe` and `/boot/ipxe/boot.ipxe`, the test expands iPXE's
//! `${...}` settings in the chain URL as iPXE does, curl fetches the per-machine script and then
//! every kernel/initrd URL it names (sha256 compared); tftp-hpa's `tftp` fetches `undionly.kpxe`
//! and curl fetches `ipxe.efi`, both compared with the Debian `ipxe` package's files.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Scratch, Server, free_tcp_port, free_udp_port, random_file, require, run, sha256};

const IPXE_DIR: &str = "/usr/lib/ipxe";

/// The Debian `ipxe` package must be installed (scripts/test.sh installs it).
fn need_ipxe_package() -> bool {
    let ok =
        Path::new(IPXE_DIR).join("undionly.kpxe").is_file() && Path::new(IPXE_DIR).join("ipxe.efi").exists();
    if !ok {
        if common::in_ci() {
            panic!(
                "{IPXE_DIR}/undionly.kpxe and ipxe.efi are required (apt-get install ipxe); CI=true so this is a failure"
            );
        }
        eprintln!("SKIPPED: the ipxe package is not installed");
    }
    ok
}

fn need_tools() -> bool {
    require("curl", "curl") && require("tftp", "tftp-hpa") && need_ipxe_package()
}

/// `curl -sS --max-redirs 0 -o out -w '%{http_code}' url`: status code; the body goes to `out`.
fn curl_to(url: &str, out: &Path) -> u16 {
    let (ok, text) = run(Command::new("curl").args(["-sS", "--max-redirs", "0", "-o"]).arg(out).args([
        "-w",
        "%{http_code}",
        url,
    ]));
    assert!(ok, "curl {url}: {text}");
    text.trim().parse().unwrap_or_else(|_| panic!("curl {url}: {text}"))
}

/// GET as text, asserting 200 and no redirect.
fn get(url: &str, scratch: &Scratch) -> String {
    let out = scratch.path("body");
    let status = curl_to(url, &out);
    let body = std::fs::read_to_string(&out).unwrap();
    assert_eq!(status, 200, "{url}: {body}");
    body
}

/// What iPXE does with the chain line: expands its settings. `${net0/mac:hexhyp}` etc.
fn expand_like_ipxe(line: &str, mac: &str, uuid: &str, arch: &str, platform: &str, hostname: &str) -> String {
    line.replace("${net0/mac:hexhyp}", mac)
        .replace("${uuid}", uuid)
        .replace("${buildarch}", arch)
        .replace("${platform}", platform)
        .replace("${hostname:uristring}", hostname)
}

/// The URL of the first `chain` command in a script.
fn chain_url(script: &str) -> String {
    let line = script.lines().find(|l| l.starts_with("chain ")).expect("a chain line");
    line.split_whitespace().find(|w| w.starts_with("http://")).expect("URL").to_string()
}

/// The first attempt's `kernel` line and `initrd` URLs of an install script.
fn first_attempt(script: &str) -> (String, Vec<(String, String)>) {
    let kernel = script.lines().find(|l| l.starts_with("kernel ")).expect("kernel line").to_string();
    let mut initrds = Vec::new();
    for l in script.lines().skip_while(|l| !l.starts_with("kernel ")).skip(1) {
        let Some(rest) = l.strip_prefix("initrd --name ") else { break };
        let mut w = rest.split_whitespace();
        initrds.push((w.next().unwrap().to_string(), w.next().unwrap().to_string()));
    }
    (kernel, initrds)
}

/// Fetches what the install script names and checks each against the file on disk.
fn fetch_images(script: &str, want: &[(&str, &Path)], scratch: &Scratch) -> String {
    let (kernel_line, initrds) = first_attempt(script);
    let kernel_url = kernel_line.split_whitespace().nth(1).unwrap();
    // Image URLs carry the machine's MAC for the HTTP observer; the file server ignores it.
    let path_of = |u: &str| u.split('?').next().unwrap().to_string();
    assert!(kernel_url.contains("?mac="), "{kernel_url}");
    let got = scratch.path("got-kernel");
    assert_eq!(curl_to(kernel_url, &got), 200, "{kernel_url}");
    assert_eq!(sha256(&got), sha256(want[0].1), "kernel from {kernel_url}");
    assert!(path_of(kernel_url).ends_with(want[0].0), "{kernel_url} should end with {}", want[0].0);
    assert_eq!(initrds.len(), want.len() - 1, "{script}");
    for (i, (_, url)) in initrds.iter().enumerate() {
        let got = scratch.path(&format!("got-initrd{i}"));
        assert_eq!(curl_to(url, &got), 200, "{url}");
        assert_eq!(sha256(&got), sha256(want[i + 1].1), "initrd {i} from {url}");
        assert!(path_of(url).ends_with(want[i + 1].0), "{url}");
    }
    kernel_line
}

fn tftp_get(port: u16, name: &str, out: &Path) {
    let (ok, text) = run(Command::new("tftp")
        .args(["-m", "binary", "127.0.0.1", &port.to_string(), "-c", "get", name])
        .arg(out));
    assert!(ok && out.is_file(), "tftp get {name}: {text}");
}

fn check_binaries(tftp_port: u16, base: &str, scratch: &Scratch) {
    let got = scratch.path("undionly.kpxe");
    tftp_get(tftp_port, "undionly.kpxe", &got);
    assert_eq!(sha256(&got), sha256(&Path::new(IPXE_DIR).join("undionly.kpxe")), "TFTP undionly.kpxe");
    let debian_efi = Path::new(IPXE_DIR).join("ipxe.efi");
    for url in [format!("{base}/ipxe.efi"), format!("{base}/boot/ipxe.efi")] {
        let got = scratch.path("ipxe.efi");
        assert_eq!(curl_to(&url, &got), 200, "{url}");
        assert_eq!(sha256(&got), sha256(&debian_efi), "{url}");
    }
    if Path::new(IPXE_DIR).join("snponly.efi").is_file() {
        let got = scratch.path("snponly.efi");
        tftp_get(tftp_port, "/snponly.efi", &got);
        assert_eq!(sha256(&got), sha256(&Path::new(IPXE_DIR).join("snponly.efi")), "TFTP /snponly.efi");
    }
    // Only the iPXE builds are at the top level; the rest of /usr/lib/ipxe is not served at all.
    assert_eq!(curl_to(&format!("{base}/ipxe.iso"), &scratch.path("x")), 404);
    assert_eq!(curl_to(&format!("{base}/boot/ipxe.iso"), &scratch.path("x")), 404);
}

#[test]
fn serve_scripts_images_and_binaries() {
    if !need_tools() {
        return;
    }
    let s = Scratch::new();
    let root = s.root();
    for d in ["nixos/control-plane", "nixos/worker"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    random_file(&root.join("nixos/control-plane/bzImage"), 3 << 20, 1);
    random_file(&root.join("nixos/control-plane/initrd"), 9 << 20, 2);
    random_file(&root.join("nixos/worker/bzImage"), 2 << 20, 3);
    random_file(&root.join("nixos/worker/initrd"), 4 << 20, 4);
    random_file(&root.join("nixos/worker/extra.cpio"), 1 << 20, 5);
    let (tport, hport) = (free_udp_port(), free_tcp_port());
    let cfg = s.path("ferroboot.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"
root = "{root}"
state_dir = "{state}"
listen = "127.0.0.1"
[tftp]
port = {tport}
[http]
port = {hport}
[nodes."52:54:00:12:34:56"]
profile = "control-plane"
hostname = "node01"
ip_address = "10.0.100.50"
[nodes."52:54:00:12:34:57"]
profile = "worker"
hostname = "node02"
uuid = "4c4c4544-0000-1000-8000-000000000002"
[profiles.control-plane]
kernel = "nixos/control-plane/bzImage"
initrd = "nixos/control-plane/initrd"
cmdline = "init=/nix/store/init console=ttyS0 hostname={{hostname}} ip={{ip}} cb={{server_url}}/api/v1/nodes/{{mac}}/events"
[profiles.worker]
kernel = "nixos/worker/bzImage"
initrd = ["nixos/worker/initrd", "nixos/worker/extra.cpio"]
cmdline = "console=ttyS0 ip=${{net0/ip}} host={{hostname}}"
"#,
            root = root.display(),
            state = s.state().display()
        ),
    )
    .unwrap();
    let (ok, out) = run(Command::new(env!("CARGO_BIN_EXE_ferroboot")).arg("check-config").arg(&cfg));
    assert!(ok, "{out}");
    let mut srv = Server::start(&["--config", cfg.to_str().unwrap()], None);
    srv.wait_for("http: serving", Duration::from_secs(10));
    let base = format!("http://127.0.0.1:{hport}");

    // The two chain-script URLs answer the same script, naming us as iPXE reached us.
    let chain = get(&format!("{base}/boot.ipxe"), &s);
    assert_eq!(get(&format!("{base}/boot/ipxe/boot.ipxe"), &s), chain);
    assert!(chain.starts_with("#!ipxe\n"), "{chain}");
    let url = chain_url(&chain);
    assert!(url.starts_with(&format!("{base}/ipxe/node?mac=${{net0/mac:hexhyp}}&")), "{url}");

    // node01, UEFI x86-64: initrd= on the kernel line, the templated cmdline, the images.
    let node_url = expand_like_ipxe(&url, "52-54-00-12-34-56", "", "x86_64", "efi", "");
    let script = get(&node_url, &s);
    let kernel_line = fetch_images(
        &script,
        &[
            ("/boot/nixos/control-plane/bzImage", &root.join("nixos/control-plane/bzImage")),
            ("/boot/nixos/control-plane/initrd", &root.join("nixos/control-plane/initrd")),
        ],
        &s,
    );
    assert!(
        kernel_line.ends_with(&format!(
            " initrd=initrd init=/nix/store/init console=ttyS0 hostname=node01 ip=10.0.100.50 \
             cb={base}/api/v1/nodes/52:54:00:12:34:56/events || goto fail1"
        )),
        "{kernel_line}"
    );
    // The same machine from BIOS iPXE: no initrd=.
    let bios = get(&expand_like_ipxe(&url, "52-54-00-12-34-56", "", "i386", "pcbios", ""), &s);
    let (k, _) = first_attempt(&bios);
    assert!(!k.contains("initrd="), "{k}");

    // node02 found by its UUID from a NIC the inventory does not list, arm64 UEFI, two initrds.
    let by_uuid = expand_like_ipxe(
        &url,
        "02-00-00-00-00-01",
        "4C4C4544-0000-1000-8000-000000000002",
        "arm64",
        "efi",
        "",
    );
    let script = get(&by_uuid, &s);
    let k = fetch_images(
        &script,
        &[
            ("/boot/nixos/worker/bzImage", &root.join("nixos/worker/bzImage")),
            ("/boot/nixos/worker/initrd", &root.join("nixos/worker/initrd")),
            ("/boot/nixos/worker/extra.cpio", &root.join("nixos/worker/extra.cpio")),
        ],
        &s,
    );
    assert!(k.contains(" initrd=initrd initrd=extra.cpio console=ttyS0 ip=${net0/ip} host=node02 "), "{k}");

    // An unknown machine gets the menu: both profiles, local disk by default.
    let menu = get(&expand_like_ipxe(&url, "02-00-00-00-00-99", "", "x86_64", "efi", ""), &s);
    assert!(menu.contains("\nitem profile0 control-plane\nitem profile1 worker\n"), "{menu}");
    assert!(menu.contains("choose --timeout 60000 --default local target"), "{menu}");
    // Its choice, as the menu chains it, is an install script.
    let choice = menu.lines().find(|l| l.contains("&profile=worker")).unwrap();
    let chosen = get(&expand_like_ipxe(&chain_url(choice), "02-00-00-00-00-99", "", "x86_64", "efi", ""), &s);
    assert!(chosen.contains("/boot/nixos/worker/bzImage"), "{chosen}");
    // A bad MAC is a 400, not a script for somebody else.
    assert_eq!(curl_to(&format!("{base}/ipxe/node?mac=zz"), &s.path("x")), 400);

    check_binaries(tport, &base, &s);
    // Every script decision is logged with its reason.
    srv.wait_for(
        "ipxe: 52:54:00:12:34:56 (node01) from 127.0.0.1: install profile control-plane (efi x86_64, initrd= on the kernel line)",
        Duration::from_secs(5),
    );
    srv.wait_for("ipxe: 02:00:00:00:00:99 from 127.0.0.1: no profile, menu", Duration::from_secs(5));
    assert!(srv.stop().success());
}

#[test]
fn missing_configured_binary_is_an_error_naming_the_path() {
    let s = Scratch::new();
    let cfg = s.path("c.toml");
    std::fs::write(
        &cfg,
        format!(
            "root = \"{}\"\nstate_dir = \"{}\"\nlisten = \"127.0.0.1\"\n[tftp]\nport = {}\n[http]\nport = {}\n[ipxe]\nbinaries_dir = \"{}\"\nbinaries = [\"undionly.kpxe\", \"snp-arm64.efi\"]\n",
            s.root().display(),
            s.state().display(),
            free_udp_port(),
            free_tcp_port(),
            s.path("bin").display()
        ),
    )
    .unwrap();
    std::fs::create_dir_all(s.path("bin")).unwrap();
    std::fs::write(s.path("bin/undionly.kpxe"), b"x").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ferroboot"))
        .args(["serve", "--config"])
        .arg(&cfg)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains(&s.path("bin/snp-arm64.efi").display().to_string()), "{err}");
    // A binaries_dir written in the config must exist.
    std::fs::write(
        &cfg,
        format!("root = \"{}\"\n[ipxe]\nbinaries_dir = \"/nonexistent/ipxe\"\n", s.root().display()),
    )
    .unwrap();
    let out =
        Command::new(env!("CARGO_BIN_EXE_ferroboot")).args(["serve", "--config"]).arg(&cfg).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("/nonexistent/ipxe is not a directory"), "{err}");
}

/// Starts `ferroboot boot ARGS` and waits until TFTP and HTTP are up.
fn start_boot(args: &[&str]) -> Server {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferroboot"));
    cmd.arg("boot").args(args).env("RUST_LOG", "info");
    let mut s = Server::spawn(cmd);
    s.wait_for("tftp: serving", Duration::from_secs(10));
    s.wait_for("http: serving", Duration::from_secs(10));
    s
}

#[test]
fn boot_mode_every_machine_boots_the_kernel() {
    if !need_tools() {
        return;
    }
    let s = Scratch::new();
    // Images anywhere on disk, not under any root; one reached through a symlink.
    let images: PathBuf = s.path("images");
    std::fs::create_dir_all(images.join("a")).unwrap();
    random_file(&images.join("vmlinuz-6.1.0"), 2 << 20, 11);
    random_file(&images.join("a/initrd.img"), 5 << 20, 12);
    random_file(&images.join("firmware.cpio"), 300_000, 13);
    std::os::unix::fs::symlink(images.join("a/initrd.img"), images.join("initrd.link")).unwrap();
    let (tport, hport) = (free_udp_port(), free_tcp_port());
    let p = |n: &str| images.join(n).display().to_string();
    let mut srv = start_boot(&[
        "--kernel",
        &p("vmlinuz-6.1.0"),
        "--initrd",
        &p("initrd.link"),
        "--initrd",
        &p("firmware.cpio"),
        "--cmdline",
        "console=ttyS0 ip=dhcp mac={mac} srv={server}",
        "--listen",
        "127.0.0.1",
        "--tftp-port",
        &tport.to_string(),
        "--http-port",
        &hport.to_string(),
        "--state-dir",
        s.state().to_str().unwrap(),
    ]);
    let base = format!("http://127.0.0.1:{hport}");
    let chain = get(&format!("{base}/boot.ipxe"), &s);
    let url = chain_url(&chain);
    for (mac, platform, arch) in
        [("52-54-00-aa-bb-01", "efi", "x86_64"), ("52-54-00-aa-bb-02", "pcbios", "i386")]
    {
        let script = get(&expand_like_ipxe(&url, mac, "", arch, platform, ""), &s);
        let k = fetch_images(
            &script,
            &[
                ("/boot/_boot/kernel/vmlinuz-6.1.0", &images.join("vmlinuz-6.1.0")),
                ("/boot/_boot/initrd0/initrd.link", &images.join("a/initrd.img")),
                ("/boot/_boot/initrd1/firmware.cpio", &images.join("firmware.cpio")),
            ],
            &s,
        );
        let mac_colon = mac.replace('-', ":");
        let initrd_args = if platform == "efi" { " initrd=initrd.link initrd=firmware.cpio" } else { "" };
        assert!(
            k.ends_with(&format!(
                "{initrd_args} console=ttyS0 ip=dhcp mac={mac_colon} srv=127.0.0.1 || goto fail1"
            )),
            "{k}"
        );
    }
    // The images by TFTP too, and the iPXE builds as in serve mode.
    let got = s.path("k");
    tftp_get(tport, "_boot/kernel/vmlinuz-6.1.0", &got);
    assert_eq!(sha256(&got), sha256(&images.join("vmlinuz-6.1.0")));
    check_binaries(tport, &base, &s);
    assert!(srv.stop().success());
}

/// The runbook's own checks on its own ports (69, 8080) with nothing but an empty root: the
/// iPXE build comes from the Debian package, the boot script from the chain route.
#[test]
fn runbook_checks_with_an_empty_root() {
    if !need_tools() || !common::require_root() {
        return;
    }
    let ns = common::Netns::new("ipxe-runbook");
    let s = Scratch::new();
    let mut srv = Server::start(
        &["--root", s.root().to_str().unwrap(), "--state-dir", s.state().to_str().unwrap()],
        Some(&ns.name),
    );
    srv.wait_for("http: serving", Duration::from_secs(10));
    let out = s.path("test.kpxe");
    let (ok, log) = ns.exec(&["tftp", "localhost", "-c", "get", "undionly.kpxe", out.to_str().unwrap()]);
    assert!(ok, "{log}");
    assert_eq!(sha256(&out), sha256(&Path::new(IPXE_DIR).join("undionly.kpxe")));
    let script =
        ns.exec_ok(&["curl", "-sS", "--max-redirs", "0", "http://localhost:8080/boot/ipxe/boot.ipxe"]);
    assert!(script.starts_with("#!ipxe\n"), "{script}");
    assert!(
        script.contains("chain --replace --autofree http://localhost:8080/ipxe/node?mac=${net0/mac:hexhyp}&"),
        "{script}"
    );
    let efi = s.path("ipxe.efi");
    ns.exec_ok(&["curl", "-sS", "-o", efi.to_str().unwrap(), "http://localhost:8080/ipxe.efi"]);
    assert_eq!(sha256(&efi), sha256(&Path::new(IPXE_DIR).join("ipxe.efi")));
    assert!(srv.stop().success());
}
