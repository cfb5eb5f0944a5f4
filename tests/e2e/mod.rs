//! End-to-end harness: real firmware in QEMU network-boots a real kernel from ferroboot.
//! See `tests/e2e_qemu.rs` for the matrix and the README's "End to end" section.
#![allow(dead_code)]

pub mod lab;
pub mod payload;
pub mod row;
pub mod vm;

use crate::common::{Scratch, require, require_root};
use std::path::Path;

/// Every program and file the rows need; under CI=true a missing one is a failure.
pub fn require_tools() -> bool {
    if !require_root() {
        return false;
    }
    let tools = [
        ("qemu-system-x86_64", "qemu-system-x86"),
        ("curl", "curl"),
        ("apt-get", "apt"),
        ("dpkg", "dpkg"),
        ("gzip", "gzip"),
        ("dnsmasq", "dnsmasq-base"),
    ];
    if !tools.iter().all(|(p, pkg)| require(p, pkg)) {
        return false;
    }
    for (f, pkg) in [
        ("/usr/lib/ipxe/qemu/efi-virtio.rom", "ipxe-qemu"),
        (vm::OVMF_CODE, "ovmf"),
        ("/usr/lib/ipxe/undionly.kpxe", "ipxe"),
        ("/usr/lib/ipxe/ipxe.efi", "ipxe"),
    ] {
        if !Path::new(f).is_file() {
            if crate::common::in_ci() {
                panic!("{f} is required (apt-get install {pkg}); CI=true so this is a failure");
            }
            eprintln!("SKIPPED: {f} not found (apt-get install {pkg})");
            return false;
        }
    }
    true
}

/// A per-run token the payload echoes (kernel command line → marker → callback detail), so a
/// stale log can never satisfy a row.
pub fn nonce() -> String {
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    format!("{:x}{:x}", t.as_nanos() as u64 & 0xffff_ffff, std::process::id())
}

/// Puts the payload in the root as `e2e/vmlinuz` and `e2e/initrd.img`. The iPXE builds are not
/// copied: ferroboot serves them from Debian's `/usr/lib/ipxe` (`[ipxe] binaries_dir`).
pub fn fill_root(scratch: &Scratch, p: &payload::Payload) {
    let root = scratch.root();
    std::fs::create_dir_all(root.join("e2e")).unwrap();
    for (src, dst) in [(&p.kernel, "e2e/vmlinuz"), (&p.initrd, "e2e/initrd.img")] {
        let dst = root.join(dst);
        if std::fs::hard_link(src, &dst).is_err() {
            std::fs::copy(src, &dst).unwrap();
        }
    }
}

/// The inventory entry and profile for one row's machine.
pub struct Node<'a> {
    pub mac: &'a str,
    pub hostname: &'a str,
    pub nonce: &'a str,
}

/// A config for ferroboot on `lab`'s bridge: DHCP pool .100–.150 (used in server mode), the
/// node, and its profile booting the payload. `dhcp_extra` goes into the `[dhcp]` table.
pub fn config(lab: &lab::Lab, scratch: &Scratch, node: &Node<'_>, dhcp_extra: &str) -> std::path::PathBuf {
    let n = lab.n;
    let server = lab.server_ip();
    let text = format!(
        r#"root = "{root}"
state_dir = "{state}"
interface = "br0"
server_address = "{server}"
[dhcp]
subnet = "10.{n}.0.0"
netmask = "255.255.255.0"
range = {{ start = "10.{n}.0.100", end = "10.{n}.0.150" }}
router = "10.{n}.0.1"
lease_time = 600
{dhcp_extra}
[nodes."{mac}"]
profile = "e2e"
hostname = "{hostname}"
[profiles.e2e]
kernel = "e2e/vmlinuz"
initrd = "e2e/initrd.img"
cmdline = "console=ttyS0 panic=-1 e2e.server={{server}} e2e.nonce={nonce}"
"#,
        root = scratch.root().display(),
        state = scratch.state().display(),
        mac = node.mac,
        hostname = node.hostname,
        nonce = node.nonce,
    );
    let p = scratch.path("ferroboot.toml");
    std::fs::write(&p, text).unwrap();
    p
}
