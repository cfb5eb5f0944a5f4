//! A QEMU virtual machine (TCG, no disk) on a lab's tap, serial console to a file.

use super::lab::Guard;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The NIC option ROM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rom {
    /// QEMU's default for virtio-net-pci: ipxe-qemu's `efi-virtio.rom` (iPXE, BIOS and EFI images).
    Ipxe,
    /// `romfile=` empty: no option ROM (OVMF then uses its own virtio-net driver and PXE).
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Firmware {
    /// SeaBIOS (QEMU's default).
    Bios,
    /// OVMF (Debian's `ovmf`), its PXE and HTTP boot options as built.
    Uefi,
    /// OVMF with PXE switched off over fw_cfg (`opt/org.tianocore/IPv4PXESupport=n` and the
    /// IPv6 stack off), so its boot manager's first network option is UEFI HTTP Boot (IPv4).
    UefiHttpBoot,
}

pub const OVMF_CODE: &str = "/usr/share/OVMF/OVMF_CODE_4M.fd";
pub const OVMF_VARS: &str = "/usr/share/OVMF/OVMF_VARS_4M.fd";

/// Serial console lines after which no marker can come: the row fails at once instead of
/// waiting for its timeout (iPXE gave up, the firmware found nothing to boot, Linux died).
pub const FATAL: &[&str] = &[
    "No more network devices",
    "No bootable device",
    "No bootable option or device",
    "Kernel panic",
    "Could not boot",
    // OVMF moving on to its next boot option: the row's own path failed.
    "BdsDxe: failed to load",
];

pub struct Vm {
    pub guard: Guard,
    pub serial: PathBuf,
    pub debugcon: PathBuf,
    pub started: Instant,
}

/// How a VM boots: firmware + ROM, or a kernel handed to QEMU directly (payload check).
pub struct VmSpec<'a> {
    pub firmware: Firmware,
    pub rom: Rom,
    pub mac: &'a str,
    /// `-kernel`, `-initrd`, `-append` instead of a network boot.
    pub direct: Option<(&'a Path, &'a Path, &'a str)>,
}

impl Vm {
    /// Starts QEMU inside `netns`, files under `dir` (`<tag>.serial`, `<tag>.debugcon`).
    pub fn start(netns: &str, dir: &Path, tag: &str, spec: &VmSpec<'_>) -> Vm {
        let serial = dir.join(format!("{tag}.serial"));
        let debugcon = dir.join(format!("{tag}.debugcon"));
        let _ = std::fs::remove_file(&serial);
        let mut args: Vec<String> =
            vec!["netns".into(), "exec".into(), netns.into(), "qemu-system-x86_64".into()];
        let mut a = |s: &str| args.push(s.to_string());
        for s in ["-nodefaults", "-display", "none", "-monitor", "none", "-accel", "tcg", "-m", "512"] {
            a(s);
        }
        a("-no-reboot");
        a("-serial");
        a(&format!("file:{}", serial.display()));
        // SeaBIOS and OVMF write their debug log to I/O port 0x402.
        a("-chardev");
        a(&format!("file,id=dbg,path={}", debugcon.display()));
        a("-device");
        a("isa-debugcon,iobase=0x402,chardev=dbg");
        match spec.firmware {
            Firmware::Bios => {
                // SeaBIOS "sercon": with no VGA, BIOS text output (the iPXE ROM's and
                // undionly.kpxe's console) is copied to the serial port at 0x3f8. The fw_cfg
                // file holds the port as a little-endian integer.
                let port = dir.join(format!("{tag}.sercon-port"));
                std::fs::write(&port, 0x3f8u16.to_le_bytes()).unwrap();
                a("-fw_cfg");
                a(&format!("name=etc/sercon-port,file={}", port.display()));
            }
            Firmware::Uefi | Firmware::UefiHttpBoot => {
                let vars = dir.join(format!("{tag}.OVMF_VARS.fd"));
                std::fs::copy(OVMF_VARS, &vars)
                    .unwrap_or_else(|e| panic!("{OVMF_VARS}: {e} (apt-get install ovmf)"));
                a("-machine");
                a("q35");
                a("-drive");
                a(&format!("if=pflash,format=raw,unit=0,readonly=on,file={OVMF_CODE}"));
                a("-drive");
                a(&format!("if=pflash,format=raw,unit=1,file={}", vars.display()));
            }
        }
        if spec.firmware == Firmware::UefiHttpBoot {
            for kv in ["IPv4PXESupport,string=n", "IPv6PXESupport,string=n", "IPv6Support,string=n"] {
                a("-fw_cfg");
                a(&format!("name=opt/org.tianocore/{kv}"));
            }
        }
        a("-netdev");
        a("tap,id=n0,ifname=tap0,script=no,downscript=no");
        let mut nic = format!("virtio-net-pci,netdev=n0,mac={}", spec.mac);
        if spec.rom == Rom::None {
            nic.push_str(",romfile=");
        }
        match spec.direct {
            Some((kernel, initrd, append)) => {
                a("-device");
                a(&nic);
                a("-kernel");
                a(&kernel.display().to_string());
                a("-initrd");
                a(&initrd.display().to_string());
                a("-append");
                a(append);
            }
            None => {
                nic.push_str(",bootindex=1");
                a("-device");
                a(&nic);
                a("-boot");
                a("n");
            }
        }
        let log = std::fs::File::create(dir.join(format!("{tag}.qemu.log"))).unwrap();
        let mut cmd = Command::new("ip");
        cmd.args(&args).stdin(Stdio::null()).stdout(log.try_clone().unwrap()).stderr(log);
        let started = Instant::now();
        let guard = Guard::spawn("qemu-system-x86_64", &mut cmd);
        Vm { guard, serial, debugcon, started }
    }

    pub fn serial_text(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.serial).unwrap_or_default()).into_owned()
    }

    /// Waits for a serial line containing `needle`; returns it and the time since start.
    /// Panics with the serial log (and QEMU's exit status) on timeout or early exit.
    pub fn wait_serial(&mut self, needle: &str, timeout: Duration) -> (String, Duration) {
        self.wait_serial_unless(needle, timeout, FATAL)
    }

    /// [`Vm::wait_serial`] with its own list of lines that end the wait as a failure.
    pub fn wait_serial_unless(
        &mut self,
        needle: &str,
        timeout: Duration,
        fatal: &[&str],
    ) -> (String, Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let text = self.serial_text();
            if let Some(l) = text.lines().find(|l| l.contains(needle)) {
                return (l.trim_end().to_string(), self.started.elapsed());
            }
            let exited = self.guard.child.try_wait().ok().flatten();
            let fatal = fatal.iter().find(|f| text.contains(*f));
            if exited.is_some() || fatal.is_some() || Instant::now() > deadline {
                // One last read: the line may have landed just before QEMU exited.
                let text = self.serial_text();
                if let Some(l) = text.lines().find(|l| l.contains(needle)) {
                    return (l.trim_end().to_string(), self.started.elapsed());
                }
                panic!(
                    "no {needle:?} on the serial console after {:?} (qemu exit: {exited:?}, fatal: {fatal:?}); serial tail:\n{}",
                    self.started.elapsed(),
                    tail(&text, 60)
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

pub fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// `s` without ANSI escape sequences (`ESC [ ... letter`) and other control characters.
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut it = s.chars().peekable();
    while let Some(c) = it.next() {
        if c == '\x1b' {
            if it.peek() == Some(&'[') {
                it.next();
                for d in it.by_ref() {
                    if d.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
        } else if !c.is_control() {
            out.push(c);
        }
    }
    out
}
