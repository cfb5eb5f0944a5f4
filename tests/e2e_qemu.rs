//! End to end: real firmware (SeaBIOS + iPXE, OVMF/EDK2) in QEMU (TCG) network-boots a real
//! Debian kernel and a busybox initramfs from the real ferroboot binary, each row in its own
//! network namespace (`e2e*`) with a bridge and a tap. Nothing between the firmware and the
//! server is simulated. Needs root and the packages scripts/test.sh installs; under CI=true a
//! missing one is a failure.

mod common;
mod e2e;

use common::{Scratch, Server};
use e2e::lab::Lab;
use e2e::row::{self, Row};
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
    let cfg = e2e::config(&lab, &scratch, &Node { mac, hostname: "e2e-payload", nonce: &nonce }, "");
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

const BASE: Row = Row {
    name: "",
    netns: "",
    n: 0,
    mac: "",
    firmware: Firmware::Bios,
    rom: Rom::Ipxe,
    proxy: false,
    tftp: &[],
    http_extra: &[],
    extra_args: &[],
    dhcp_config: "",
};

/// Row 1: SeaBIOS runs QEMU's iPXE NIC ROM (ipxe-qemu); iPXE is served the script over HTTP
/// directly (no TFTP at all), then the kernel and initrd.
const ROW1: Row =
    Row { name: "row1-bios-ipxe-rom", netns: "e2er1", n: 161, mac: "52:54:00:e2:e0:01", ..BASE };

#[test]
fn row1_bios_ipxe_nic_rom_http_script() {
    if e2e::require_tools() {
        row::run(&ROW1).srv.stop();
    }
}

/// Row 4: OVMF without a NIC option ROM: EDK2's own PXE client TFTPs ipxe.efi (tsize probe,
/// windowsize), which then fetches the script, kernel and initrd over HTTP.
const ROW4: Row = Row {
    name: "row4-uefi-edk2-pxe",
    netns: "e2er4",
    n: 164,
    mac: "52:54:00:e2:e0:04",
    firmware: Firmware::Uefi,
    rom: Rom::None,
    tftp: &["ipxe.efi"],
    ..BASE
};

#[test]
fn row4_uefi_edk2_pxe_tftp_ipxe_efi() {
    if e2e::require_tools() {
        let mut b = row::run(&ROW4);
        let probe = b.srv.lines.iter().any(|l| l.contains("tftp: size probe of ipxe.efi"));
        assert!(probe, "EDK2's tsize probe (ERROR 8 after OACK) was seen and logged as a probe");
        b.srv.stop();
    }
}

/// Row 3: OVMF runs the iPXE EFI NIC option ROM (QEMU's default efi-virtio.rom): iPXE asks
/// for the script directly, no TFTP.
const ROW3: Row = Row {
    name: "row3-uefi-ipxe-rom",
    netns: "e2er3",
    n: 163,
    mac: "52:54:00:e2:e0:03",
    firmware: Firmware::Uefi,
    rom: Rom::Ipxe,
    ..BASE
};

#[test]
fn row3_uefi_ipxe_efi_nic_rom() {
    if e2e::require_tools() {
        row::run(&ROW3).srv.stop();
    }
}

/// Row 5: UEFI HTTP Boot. OVMF's PXE is switched off (fw_cfg), so its boot manager takes the
/// "UEFI HTTPv4" option: EDK2's HTTP boot client (vendor class HTTPClient, arch 16) gets the
/// URL of ipxe.efi and downloads it over HTTP. No TFTP at all.
const ROW5: Row = Row {
    name: "row5-uefi-http-boot",
    netns: "e2er5",
    n: 165,
    mac: "52:54:00:e2:e0:05",
    firmware: Firmware::UefiHttpBoot,
    rom: Rom::None,
    http_extra: &["/ipxe.efi"],
    ..BASE
};

#[test]
fn row5_uefi_http_boot() {
    if e2e::require_tools() {
        let mut b = row::run(&ROW5);
        let http_client = b.srv.lines.iter().any(|l| l.contains("boot HttpBoot"));
        assert!(http_client, "the firmware was recognised as an HTTPClient (UEFI HTTP Boot)");
        b.srv.stop();
    }
}

/// Row 2: BIOS through a TFTP chainload of undionly.kpxe, the path plain PXE ROMs take. QEMU
/// ships no non-iPXE PXE ROM, so the NIC ROM is QEMU's iPXE acting as the BIOS PXE stack, and
/// `dhcp.ipxe_chainload = "always"` makes ferroboot treat it as a foreign ROM: its first DHCP
/// answer is `undionly.kpxe` over TFTP; undionly.kpxe then runs on the ROM's PXE/UNDI API,
/// sends the same options again, and (per-MAC history) gets the script.
const ROW2: Row = Row {
    name: "row2-bios-undionly-chainload",
    netns: "e2er2",
    n: 162,
    mac: "52:54:00:e2:e0:02",
    tftp: &["undionly.kpxe"],
    dhcp_config: "ipxe_chainload = \"always\"",
    ..BASE
};

#[test]
fn row2_bios_pxe_chainloads_undionly_kpxe_by_tftp() {
    if e2e::require_tools() {
        let mut b = row::run(&ROW2);
        let l = &b.srv.lines;
        let chain = l.iter().position(|l| l.contains("boot TftpBinary: foreign iPXE"));
        let script = l.iter().position(|l| l.contains("boot IpxeScript: iPXE after our chainload"));
        assert!(matches!((chain, script), (Some(c), Some(s)) if c < s), "chainload, then the script");
        b.srv.stop();
    }
}
