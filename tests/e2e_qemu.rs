//! End to end: real firmware (SeaBIOS + iPXE, OVMF/EDK2) in QEMU (TCG) network-boots a real
//! Debian kernel and a busybox initramfs from the real ferroboot binary, each row in its own
//! network namespace (`e2e*`) with a bridge and a tap. Nothing between the firmware and the
//! server is simulated. Needs root and the packages scripts/test.sh installs; under CI=true a
//! missing one is a failure.

mod common;
mod e2e;

use common::{Scratch, Server};
use e2e::lab::Lab;
use e2e::vm::{Firmware, Rom, Vm, VmSpec};
use e2e::{Node, payload};
use std::time::Duration;

const MARKER_TIMEOUT: Duration = Duration::from_secs(300);

/// The payload on its own: QEMU loads the kernel and initramfs directly (no network boot), the
/// initramfs loads virtio_net, gets a lease from ferroboot's DHCP server, calls back and prints
/// the marker. Proves the payload before any firmware is involved.
#[test]
fn payload_boots_directly_and_calls_back() {
    if !e2e::require_tools() {
        return;
    }
    let p = payload::get();
    eprintln!(
        "payload: kernel {} ({}), modules in load order: {:?}",
        p.kernel_version,
        p.kernel.display(),
        p.modules
    );
    let lab = Lab::new("e2epay", 160);
    let scratch = Scratch::new();
    e2e::fill_root(&scratch, p);
    let mac = "52:54:00:e2:e0:00";
    let nonce = e2e::nonce();
    let cfg = e2e::config(&lab, &scratch, &Node { mac, hostname: "e2e-payload", nonce: &nonce });
    let mut srv = Server::start(&["--config", cfg.to_str().unwrap(), "--dhcp", "server"], Some(&lab.ns.name));
    let append = format!("console=ttyS0 panic=-1 e2e.server={} e2e.nonce={nonce}", lab.server_ip());
    let mut vm = Vm::start(
        &lab.ns.name,
        scratch.dir.path(),
        "payload",
        &VmSpec {
            firmware: Firmware::Bios,
            rom: Rom::None,
            mac,
            direct: Some((&p.kernel, &p.initrd, &append)),
        },
    );
    let (line, t) = vm.wait_serial(payload::MARKER, MARKER_TIMEOUT);
    eprintln!("payload: marker after {:.1} s: {line}", t.as_secs_f64());
    assert!(line.contains(&format!("nonce={nonce}")), "{line}");
    assert!(line.contains(&format!("mac={mac}")), "{line}");
    assert!(line.contains(&format!("server={}", lab.server_ip())), "{line}");
    let st = vm.guard.wait_exit(Duration::from_secs(60));
    assert!(st.is_some(), "the payload powered off; QEMU still running");
    srv.wait_for(&format!("\"GET /api/v1/nodes/{mac}/events\""), Duration::from_secs(5));
    assert!(line.contains("callback=ok"), "{line}\nserver log:\n{}", srv.lines.join("\n"));
    srv.stop();
}
