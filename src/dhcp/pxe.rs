//! The PXE boot policy: which client gets which boot file, as pure functions.
//!
//! [`ClientInfo::from_request`] reduces a [`Request`] to what the policy looks at; [`decide`]
//! turns it, the [`PolicyConfig`] and the per-MAC [`MacHistory`] the caller keeps into a
//! [`Decision`]; [`Decision::apply`] writes the decision into a [`Reply`].
//!
//! The rules, first match wins:
//! 1. Not a network-boot client (no `PXEClient`/`HTTPClient` vendor class prefix, no option 93,
//!    not iPXE; e.g. Linux `udhcpc`) → [`DecisionKind::NotPxe`]: a plain lease from a server, no
//!    answer from a ProxyDHCP.
//! 2. iPXE (user class `iPXE`, raw or RFC 3004, or option 175 present) → the HTTP boot script,
//!    unless [`IpxeChainload`] says to chainload our own iPXE build first and [`MacHistory`] says
//!    we have not already done so (the iPXE NIC ROM and a chainloaded `undionly.kpxe` send
//!    byte-identical options, fixtures README point 2, so only history can break that loop).
//! 3. UEFI HTTP Boot (`HTTPClient` vendor class, or architecture 15/16/18/19) → the HTTP URL of the
//!    EFI binary, option 60 `HTTPClient` echoed, no option 43.
//! 4. PXE → the iPXE binary for the architecture over TFTP (`undionly.kpxe`, `ipxe.efi`, ...).
//!
//! An architecture we have no binary for falls back to [`PolicyConfig::default_family`]; a client
//! is never dropped for its architecture.

use std::net::Ipv4Addr;

use super::options::pxe;
use super::reply::{PxeVendor, Reply};
use super::request::Request;
use super::wire::MessageType;
use crate::config::DEFAULT_HTTP_PORT;

/// IANA "Processor Architecture Types" (RFC 4578 §2.1, RFC 5970): the codes with a name.
pub mod arch {
    pub const BIOS: u16 = 0;
    pub const EFI_IA32: u16 = 6;
    /// RFC 4578 says "EFI BC"; every x86-64 UEFI firmware sends it (IANA now: x64 UEFI).
    pub const EFI_X64: u16 = 7;
    /// RFC 4578 says "EFI x86-64" (IANA now: EBC); treated as x86-64 like ISC configs do.
    pub const EFI_X64_ALT: u16 = 9;
    pub const EFI_ARM32: u16 = 10;
    pub const EFI_ARM64: u16 = 11;
    pub const HTTP_IA32: u16 = 15;
    pub const HTTP_X64: u16 = 16;
    pub const HTTP_EBC: u16 = 17;
    pub const HTTP_ARM32: u16 = 18;
    pub const HTTP_ARM64: u16 = 19;
    pub const HTTP_BIOS: u16 = 20;

    /// A short name for logs.
    pub fn name(code: u16) -> &'static str {
        match code {
            0 => "x86 BIOS",
            1 => "NEC/PC98",
            2 => "Itanium",
            3 => "DEC Alpha",
            4 => "Arc x86",
            5 => "Intel Lean Client",
            6 => "x86 UEFI",
            7 => "x64 UEFI",
            8 => "EFI Xscale",
            9 => "EBC / x64 UEFI (RFC 4578)",
            10 => "ARM 32-bit UEFI",
            11 => "ARM 64-bit UEFI",
            12 => "PowerPC Open Firmware",
            13 => "PowerPC ePAPR",
            14 => "POWER OPAL v3",
            15 => "x86 UEFI HTTP",
            16 => "x64 UEFI HTTP",
            17 => "EBC HTTP",
            18 => "ARM 32-bit UEFI HTTP",
            19 => "ARM 64-bit UEFI HTTP",
            20 => "PC/AT BIOS HTTP",
            21 => "ARM 32-bit U-Boot",
            22 => "ARM 64-bit U-Boot",
            23 => "ARM 32-bit U-Boot HTTP",
            24 => "ARM 64-bit U-Boot HTTP",
            25 => "RISC-V 32-bit UEFI",
            26 => "RISC-V 32-bit UEFI HTTP",
            27 => "RISC-V 64-bit UEFI",
            28 => "RISC-V 64-bit UEFI HTTP",
            29 => "RISC-V 128-bit UEFI",
            30 => "RISC-V 128-bit UEFI HTTP",
            31 => "s390 Basic",
            32 => "s390 Extended",
            33 => "MIPS 32-bit UEFI",
            34 => "MIPS 64-bit UEFI",
            35 => "Sunway 32-bit UEFI",
            36 => "Sunway 64-bit UEFI",
            37 => "LoongArch 32-bit UEFI",
            38 => "LoongArch 32-bit UEFI HTTP",
            39 => "LoongArch 64-bit UEFI",
            40 => "LoongArch 64-bit UEFI HTTP",
            41 => "ARM rpiboot",
            _ => "unassigned",
        }
    }

    /// Architectures that boot from an HTTP URL (UEFI HTTP Boot and friends).
    pub fn is_http(code: u16) -> bool {
        matches!(code, 15..=20 | 23 | 24 | 26 | 28 | 30 | 38 | 40)
    }
}

/// The binary families we serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    Bios,
    EfiIa32,
    EfiX64,
    EfiArm32,
    EfiArm64,
}

impl Family {
    /// The family of an architecture code, `None` when we have no binary for it.
    pub fn of_arch(code: u16) -> Option<Family> {
        match code {
            arch::BIOS => Some(Family::Bios),
            arch::EFI_IA32 | arch::HTTP_IA32 => Some(Family::EfiIa32),
            arch::EFI_X64 | arch::EFI_X64_ALT | arch::HTTP_X64 => Some(Family::EfiX64),
            arch::EFI_ARM32 | arch::HTTP_ARM32 => Some(Family::EfiArm32),
            arch::EFI_ARM64 | arch::HTTP_ARM64 => Some(Family::EfiArm64),
            _ => None,
        }
    }
}

/// What option 60 says, by prefix (`PXEClient:Arch:00007:UNDI:003000` is a `Pxe`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VendorClass {
    Absent,
    Pxe,
    Http,
    Other,
}

impl VendorClass {
    pub fn of(v: Option<&[u8]>) -> VendorClass {
        match v {
            None => VendorClass::Absent,
            Some(v) if v.starts_with(b"PXEClient") => VendorClass::Pxe,
            Some(v) if v.starts_with(b"HTTPClient") => VendorClass::Http,
            Some(_) => VendorClass::Other,
        }
    }
}

/// The architecture in a `PXEClient:Arch:NNNNN:...` / `HTTPClient:Arch:NNNNN:...` vendor class.
pub fn arch_from_vendor_class(v: &[u8]) -> Option<u16> {
    let rest = v.strip_prefix(b"PXEClient:Arch:").or_else(|| v.strip_prefix(b"HTTPClient:Arch:"))?;
    let digits = rest.get(..5)?;
    if !digits.iter().all(u8::is_ascii_digit) || rest.get(5).is_some_and(|&b| b != b':') {
        return None;
    }
    digits.iter().try_fold(0u16, |n, &d| n.checked_mul(10)?.checked_add(u16::from(d - b'0')))
}

/// What the policy knows about a client, taken from one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientInfo {
    pub mac: Option<[u8; 6]>,
    pub message_type: Option<MessageType>,
    /// Option 93, else the `Arch:` field of option 60.
    pub arch: Option<u16>,
    pub vendor_class: VendorClass,
    /// User class `iPXE` (raw or RFC 3004) or option 175 present.
    pub is_ipxe: bool,
    /// From option 175: `Some(true)` when it lists the HTTP feature, `None` without 175.
    pub ipxe_http: Option<bool>,
}

impl ClientInfo {
    pub fn from_request(r: &Request<'_>) -> ClientInfo {
        let user_ipxe = r.user_class.is_some_and(|u| u.matches(b"iPXE"));
        ClientInfo {
            mac: r.mac(),
            message_type: r.message_type,
            arch: r.client_arch.or_else(|| r.vendor_class.and_then(arch_from_vendor_class)),
            vendor_class: VendorClass::of(r.vendor_class),
            is_ipxe: user_ipxe || r.ipxe.is_some(),
            ipxe_http: r.ipxe.map(|o| o.has_feature(super::options::ipxe::HTTP)),
        }
    }
}

/// Whether we answer as the DHCP server or as a ProxyDHCP next to another server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Server,
    Proxy,
}

/// What to do with a client that already runs iPXE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpxeChainload {
    /// Always hand iPXE the boot script (QEMU's NIC ROM is iPXE: no TFTP step at all).
    Never,
    /// Chainload our build once when option 175 shows the running iPXE has no HTTP support.
    IfNoHttp,
    /// Chainload our build once for every iPXE that is not ours (replaces old vendor ROMs).
    Always,
}

/// One string per binary family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PerFamily {
    pub bios: String,
    pub efi_ia32: String,
    pub efi_x64: String,
    pub efi_arm32: String,
    pub efi_arm64: String,
}

impl PerFamily {
    pub fn get(&self, f: Family) -> &str {
        match f {
            Family::Bios => &self.bios,
            Family::EfiIa32 => &self.efi_ia32,
            Family::EfiX64 => &self.efi_x64,
            Family::EfiArm32 => &self.efi_arm32,
            Family::EfiArm64 => &self.efi_arm64,
        }
    }
    fn get_mut(&mut self, f: Family) -> &mut String {
        match f {
            Family::Bios => &mut self.bios,
            Family::EfiIa32 => &mut self.efi_ia32,
            Family::EfiX64 => &mut self.efi_x64,
            Family::EfiArm32 => &mut self.efi_arm32,
            Family::EfiArm64 => &mut self.efi_arm64,
        }
    }
}

/// Policy settings, built once at start-up (all strings are ready, nothing is formatted per
/// request).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyConfig {
    pub mode: Mode,
    /// `siaddr` (next server) and the host of every URL.
    pub server: Ipv4Addr,
    pub http_port: u16,
    /// Family used for an architecture we have no binary for, or when none is sent.
    pub default_family: Family,
    /// TFTP file names of the iPXE builds.
    pub binaries: PerFamily,
    /// HTTP URLs of the same builds, for UEFI HTTP Boot.
    pub binary_urls: PerFamily,
    /// The iPXE boot script URL.
    pub ipxe_script_url: String,
    pub ipxe_chainload: IpxeChainload,
}

impl PolicyConfig {
    /// Defaults: `undionly.kpxe`, `ipxe.efi`, `ipxe-i386.efi`, `snp-arm32.efi`, `snp-arm64.efi`;
    /// script `http://<server>:<port>/boot.ipxe`; unknown architectures get the x86-64 EFI build;
    /// [`IpxeChainload::IfNoHttp`].
    pub fn new(mode: Mode, server: Ipv4Addr, http_port: u16) -> PolicyConfig {
        let binaries = PerFamily {
            bios: "undionly.kpxe".into(),
            efi_ia32: "ipxe-i386.efi".into(),
            efi_x64: "ipxe.efi".into(),
            efi_arm32: "snp-arm32.efi".into(),
            efi_arm64: "snp-arm64.efi".into(),
        };
        let mut c = PolicyConfig {
            mode,
            server,
            http_port,
            default_family: Family::EfiX64,
            binary_urls: binaries.clone(),
            binaries,
            ipxe_script_url: String::new(),
            ipxe_chainload: IpxeChainload::IfNoHttp,
        };
        c.set_script_path("boot.ipxe");
        for f in [Family::Bios, Family::EfiIa32, Family::EfiX64, Family::EfiArm32, Family::EfiArm64] {
            let name = c.binaries.get(f).to_string();
            c.set_binary(f, &name);
        }
        c
    }

    /// The base URL `http://<server>[:<port>]/`.
    pub fn http_base(&self) -> String {
        if self.http_port == 80 {
            format!("http://{}/", self.server)
        } else {
            format!("http://{}:{}/", self.server, self.http_port)
        }
    }

    /// Sets a family's binary (e.g. `snponly.efi` for x86-64) and its HTTP URL.
    pub fn set_binary(&mut self, f: Family, name: &str) {
        *self.binaries.get_mut(f) = name.to_string();
        *self.binary_urls.get_mut(f) = format!("{}{}", self.http_base(), name.trim_start_matches('/'));
    }

    /// Sets the boot script to a path on our HTTP server.
    pub fn set_script_path(&mut self, path: &str) {
        self.ipxe_script_url = format!("{}{}", self.http_base(), path.trim_start_matches('/'));
    }

    /// The same policy answering from `server`: `siaddr` and the host of every URL on our HTTP
    /// server (those starting with [`PolicyConfig::http_base`]) become `server`.
    pub fn for_server(&self, server: Ipv4Addr) -> PolicyConfig {
        let old = self.http_base();
        let mut c = self.clone();
        c.server = server;
        let new = c.http_base();
        let rehost = |u: &mut String| {
            if let Some(rest) = u.strip_prefix(old.as_str()) {
                *u = format!("{new}{rest}");
            }
        };
        rehost(&mut c.ipxe_script_url);
        for f in [Family::Bios, Family::EfiIa32, Family::EfiX64, Family::EfiArm32, Family::EfiArm64] {
            rehost(c.binary_urls.get_mut(f));
        }
        c
    }
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig::new(Mode::Server, Ipv4Addr::UNSPECIFIED, DEFAULT_HTTP_PORT)
    }
}

/// What the caller remembers about one MAC between DHCP exchanges (reset it after a few minutes,
/// or when the MAC fetches its boot script). [`MacHistory::after`] gives the next state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum MacHistory {
    /// Nothing served recently.
    #[default]
    Fresh,
    /// We just handed this MAC an iPXE binary by TFTP (or by HTTP Boot): the next iPXE it runs is
    /// ours, even when its options look like the NIC ROM's.
    ServedIpxeBinary,
}

impl MacHistory {
    /// The state to keep after answering with `d`.
    pub fn after(self, d: &Decision<'_>) -> MacHistory {
        match d.kind {
            DecisionKind::TftpBinary | DecisionKind::HttpBoot => MacHistory::ServedIpxeBinary,
            DecisionKind::IpxeScript | DecisionKind::NotPxe => MacHistory::Fresh,
        }
    }
}

/// The kind of answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecisionKind {
    /// Not a boot client: a server gives a plain lease, a ProxyDHCP stays silent.
    NotPxe,
    /// An iPXE binary over TFTP (`siaddr` + file).
    TftpBinary,
    /// The iPXE boot script URL (the client already runs iPXE).
    IpxeScript,
    /// UEFI HTTP Boot: the URL of an EFI binary.
    HttpBoot,
}

/// The outcome of [`decide`]; strings borrow the [`PolicyConfig`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision<'c> {
    pub kind: DecisionKind,
    /// The family whose binary was chosen (`None` for [`DecisionKind::NotPxe`]).
    pub family: Option<Family>,
    /// True when the client's architecture was unknown or absent and the default was used.
    pub arch_defaulted: bool,
    /// File name or URL (`None` for [`DecisionKind::NotPxe`]).
    pub boot_file: Option<&'c str>,
    /// `siaddr`.
    pub next_server: Ipv4Addr,
    /// Option 60 to send (`PXEClient` in proxy offers, `HTTPClient` for HTTP Boot).
    pub vendor_class: Option<&'static str>,
    /// Option 43 to send (proxy offers to PXE ROMs: discovery control = use this boot file).
    pub pxe_vendor: Option<PxeVendor<'static>>,
    /// Echo option 97 (PXE spec: proxy offers carry the client's UUID).
    pub echo_uuid: bool,
    /// Send 175.176 = 1 so iPXE stops waiting for ProxyDHCP offers (server mode only).
    pub ipxe_no_pxedhcp: bool,
    /// Why, for the logs.
    pub reason: &'static str,
}

const PROXY_PXE_VENDOR: PxeVendor<'static> = PxeVendor {
    discovery_control: Some(pxe::DISCOVERY_USE_BOOTFILE),
    boot_servers: None,
    boot_menu: None,
    menu_prompt: None,
};

fn pxe_reason(f: Family) -> &'static str {
    match f {
        Family::Bios => "BIOS PXE client: iPXE for BIOS over TFTP",
        Family::EfiIa32 => "UEFI IA32 PXE client: iPXE EFI (i386) over TFTP",
        Family::EfiX64 => "UEFI x86-64 PXE client: iPXE EFI over TFTP",
        Family::EfiArm32 => "UEFI ARM32 PXE client: iPXE EFI (arm32) over TFTP",
        Family::EfiArm64 => "UEFI ARM64 PXE client: iPXE EFI (arm64) over TFTP",
    }
}

/// The boot decision for one request. Pure: same inputs, same answer.
pub fn decide<'c>(c: &ClientInfo, cfg: &'c PolicyConfig, h: &MacHistory) -> Decision<'c> {
    let proxy = cfg.mode == Mode::Proxy;
    let known = c.arch.and_then(Family::of_arch);
    let family = known.unwrap_or(cfg.default_family);
    let mut d = Decision {
        kind: DecisionKind::NotPxe,
        family: None,
        arch_defaulted: false,
        boot_file: None,
        next_server: cfg.server,
        vendor_class: None,
        pxe_vendor: None,
        echo_uuid: false,
        ipxe_no_pxedhcp: false,
        reason: "",
    };
    let boot_client =
        c.is_ipxe || c.arch.is_some() || matches!(c.vendor_class, VendorClass::Pxe | VendorClass::Http);
    if !boot_client {
        d.reason = "not a network-boot client (no PXEClient/HTTPClient, no arch, not iPXE)";
        return d;
    }
    d.family = Some(family);
    d.arch_defaulted = known.is_none();
    d.echo_uuid = proxy;
    if c.is_ipxe {
        d.ipxe_no_pxedhcp = !proxy;
        d.vendor_class = proxy.then_some("PXEClient");
        let fresh = *h == MacHistory::Fresh;
        let chain = match cfg.ipxe_chainload {
            IpxeChainload::Never => None,
            IpxeChainload::IfNoHttp if c.ipxe_http == Some(false) => {
                Some("iPXE without HTTP support (option 175): chainloading our iPXE build over TFTP")
            }
            IpxeChainload::IfNoHttp => None,
            IpxeChainload::Always => Some("foreign iPXE: chainloading our iPXE build over TFTP once"),
        };
        match chain {
            Some(reason) if fresh => {
                d.kind = DecisionKind::TftpBinary;
                d.boot_file = Some(cfg.binaries.get(family));
                d.reason = reason;
            }
            _ => {
                d.kind = DecisionKind::IpxeScript;
                d.boot_file = Some(&cfg.ipxe_script_url);
                d.reason = if chain.is_some() {
                    "iPXE after our chainload (same options as the ROM): boot script over HTTP"
                } else {
                    "iPXE client (user class iPXE / option 175): boot script over HTTP"
                };
            }
        }
        return d;
    }
    if c.vendor_class == VendorClass::Http || c.arch.is_some_and(arch::is_http) {
        d.kind = DecisionKind::HttpBoot;
        d.boot_file = Some(cfg.binary_urls.get(family));
        d.vendor_class = Some("HTTPClient");
        d.reason = "UEFI HTTP Boot (HTTPClient): URL of the iPXE EFI binary";
        return d;
    }
    d.kind = DecisionKind::TftpBinary;
    d.boot_file = Some(cfg.binaries.get(family));
    if proxy {
        d.vendor_class = Some("PXEClient");
        d.pxe_vendor = Some(PROXY_PXE_VENDOR);
    }
    d.reason = pxe_reason(family);
    d
}

impl<'c> Decision<'c> {
    /// Writes the decision into `reply`: `siaddr`, the boot file (option 67 and/or `file`, see
    /// [`Reply::set_boot_file`]), 60, 43, 97 echo, 175.176. Does nothing for
    /// [`DecisionKind::NotPxe`].
    pub fn apply<'a>(&self, reply: &mut Reply<'a>, req: &Request<'a>)
    where
        'c: 'a,
    {
        let Some(file) = self.boot_file else { return };
        reply.siaddr = self.next_server;
        reply.set_boot_file(req, file.as_bytes());
        reply.vendor_class = self.vendor_class.map(str::as_bytes);
        reply.pxe_vendor = self.pxe_vendor;
        if self.echo_uuid {
            reply.client_uuid = req.client_uuid;
        }
        reply.ipxe_no_pxedhcp = self.ipxe_no_pxedhcp;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(arch: Option<u16>, vc: VendorClass) -> ClientInfo {
        ClientInfo {
            mac: Some([2, 0, 0, 0, 0, 1]),
            message_type: Some(MessageType::Discover),
            arch,
            vendor_class: vc,
            is_ipxe: false,
            ipxe_http: None,
        }
    }

    fn cfg() -> PolicyConfig {
        PolicyConfig::new(Mode::Server, Ipv4Addr::new(192, 0, 2, 1), 8080)
    }

    #[test]
    fn for_server_rehosts_our_urls_only() {
        let mut p = PolicyConfig::new(Mode::Proxy, Ipv4Addr::new(10, 0, 0, 1), 8080);
        p.set_binary(Family::EfiArm64, "/arm/snp.efi");
        p.binary_urls.bios = "http://mirror.example/undionly.kpxe".into();
        let q = p.for_server(Ipv4Addr::new(192, 168, 1, 5));
        assert_eq!(q.server, Ipv4Addr::new(192, 168, 1, 5));
        assert_eq!(q.ipxe_script_url, "http://192.168.1.5:8080/boot.ipxe");
        assert_eq!(q.binary_urls.efi_x64, "http://192.168.1.5:8080/ipxe.efi");
        assert_eq!(q.binary_urls.efi_arm64, "http://192.168.1.5:8080/arm/snp.efi");
        assert_eq!(q.binary_urls.bios, "http://mirror.example/undionly.kpxe", "not ours: kept");
        assert_eq!((q.binaries, q.http_port, q.mode), (p.binaries.clone(), 8080, Mode::Proxy));
        let mut p80 = PolicyConfig::new(Mode::Server, Ipv4Addr::new(10, 0, 0, 1), 80);
        p80.set_script_path("/x/boot.ipxe");
        assert_eq!(p80.for_server(Ipv4Addr::new(10, 1, 1, 1)).ipxe_script_url, "http://10.1.1.1/x/boot.ipxe");
    }

    #[test]
    fn every_arch_code_gets_a_boot_file() {
        let cfg = cfg();
        for code in 0..=u16::MAX {
            let d = decide(&client(Some(code), VendorClass::Pxe), &cfg, &MacHistory::Fresh);
            assert!(d.boot_file.is_some(), "arch {code} dropped");
            assert_eq!(d.arch_defaulted, Family::of_arch(code).is_none(), "arch {code}");
            let http = arch::is_http(code);
            assert_eq!(d.kind == DecisionKind::HttpBoot, http, "arch {code}");
        }
    }

    #[test]
    fn pxe_arch_table() {
        let cfg = cfg();
        for (code, file) in [
            (0, "undionly.kpxe"),
            (6, "ipxe-i386.efi"),
            (7, "ipxe.efi"),
            (9, "ipxe.efi"),
            (10, "snp-arm32.efi"),
            (11, "snp-arm64.efi"),
            (2, "ipxe.efi"),
            (27, "ipxe.efi"),
            (41, "ipxe.efi"),
        ] {
            let d = decide(&client(Some(code), VendorClass::Pxe), &cfg, &MacHistory::Fresh);
            assert_eq!((d.kind, d.boot_file), (DecisionKind::TftpBinary, Some(file)), "arch {code}");
            assert_eq!(d.next_server, Ipv4Addr::new(192, 0, 2, 1));
        }
    }

    #[test]
    fn http_boot_table() {
        let cfg = cfg();
        for (code, url) in [
            (15, "http://192.0.2.1:8080/ipxe-i386.efi"),
            (16, "http://192.0.2.1:8080/ipxe.efi"),
            (18, "http://192.0.2.1:8080/snp-arm32.efi"),
            (19, "http://192.0.2.1:8080/snp-arm64.efi"),
        ] {
            let d = decide(&client(Some(code), VendorClass::Http), &cfg, &MacHistory::Fresh);
            assert_eq!((d.kind, d.boot_file), (DecisionKind::HttpBoot, Some(url)), "arch {code}");
            assert_eq!(d.vendor_class, Some("HTTPClient"));
            assert_eq!(d.pxe_vendor, None, "no option 43 for HTTP Boot");
        }
        // HTTPClient with a PXE arch code still means HTTP Boot.
        let d = decide(&client(Some(7), VendorClass::Http), &cfg, &MacHistory::Fresh);
        assert_eq!(d.kind, DecisionKind::HttpBoot);
    }

    #[test]
    fn configurable_binaries_default_family_and_script() {
        let mut cfg = cfg();
        cfg.set_binary(Family::EfiX64, "snponly.efi");
        cfg.default_family = Family::Bios;
        cfg.set_script_path("/menus/main.ipxe");
        let d = decide(&client(Some(7), VendorClass::Pxe), &cfg, &MacHistory::Fresh);
        assert_eq!(d.boot_file, Some("snponly.efi"));
        let d = decide(&client(Some(16), VendorClass::Http), &cfg, &MacHistory::Fresh);
        assert_eq!(d.boot_file, Some("http://192.0.2.1:8080/snponly.efi"));
        let d = decide(&client(None, VendorClass::Pxe), &cfg, &MacHistory::Fresh);
        assert_eq!((d.boot_file, d.arch_defaulted), (Some("undionly.kpxe"), true));
        let mut ipxe = client(Some(0), VendorClass::Pxe);
        ipxe.is_ipxe = true;
        let d = decide(&ipxe, &cfg, &MacHistory::Fresh);
        assert_eq!(d.boot_file, Some("http://192.0.2.1:8080/menus/main.ipxe"));
        let port80 = PolicyConfig::new(Mode::Server, Ipv4Addr::new(192, 0, 2, 1), 80);
        assert_eq!(port80.ipxe_script_url, "http://192.0.2.1/boot.ipxe");
    }

    #[test]
    fn ipxe_chainload_modes() {
        let mut cfg = cfg();
        let mut c = client(Some(0), VendorClass::Pxe);
        c.is_ipxe = true;
        c.ipxe_http = Some(false);
        let fresh = decide(&c, &cfg, &MacHistory::Fresh);
        assert_eq!((fresh.kind, fresh.boot_file), (DecisionKind::TftpBinary, Some("undionly.kpxe")));
        assert!(fresh.ipxe_no_pxedhcp);
        let again = decide(&c, &cfg, &MacHistory::Fresh.after(&fresh));
        assert_eq!(again.kind, DecisionKind::IpxeScript, "no chainload loop");
        c.ipxe_http = Some(true);
        assert_eq!(decide(&c, &cfg, &MacHistory::Fresh).kind, DecisionKind::IpxeScript);
        c.ipxe_http = None;
        assert_eq!(decide(&c, &cfg, &MacHistory::Fresh).kind, DecisionKind::IpxeScript);
        cfg.ipxe_chainload = IpxeChainload::Never;
        c.ipxe_http = Some(false);
        assert_eq!(decide(&c, &cfg, &MacHistory::Fresh).kind, DecisionKind::IpxeScript);
        cfg.ipxe_chainload = IpxeChainload::Always;
        c.ipxe_http = Some(true);
        assert_eq!(decide(&c, &cfg, &MacHistory::Fresh).kind, DecisionKind::TftpBinary);
        assert_eq!(decide(&c, &cfg, &MacHistory::ServedIpxeBinary).kind, DecisionKind::IpxeScript);
    }

    #[test]
    fn not_pxe_without_any_boot_marker() {
        let cfg = cfg();
        let d = decide(&client(None, VendorClass::Other), &cfg, &MacHistory::Fresh);
        assert_eq!((d.kind, d.boot_file, d.family), (DecisionKind::NotPxe, None, None));
        let d = decide(&client(None, VendorClass::Absent), &cfg, &MacHistory::ServedIpxeBinary);
        assert_eq!(d.kind, DecisionKind::NotPxe);
        assert_eq!(MacHistory::ServedIpxeBinary.after(&d), MacHistory::Fresh);
    }

    #[test]
    fn vendor_class_prefix_and_arch_field() {
        assert_eq!(VendorClass::of(Some(b"PXEClient")), VendorClass::Pxe);
        assert_eq!(VendorClass::of(Some(b"PXEClient:Arch:00007:UNDI:003010")), VendorClass::Pxe);
        assert_eq!(VendorClass::of(Some(b"HTTPClient:Arch:00016:UNDI:003001")), VendorClass::Http);
        assert_eq!(VendorClass::of(Some(b"pxeclient")), VendorClass::Other);
        assert_eq!(VendorClass::of(Some(b"XPXEClient")), VendorClass::Other);
        assert_eq!(VendorClass::of(None), VendorClass::Absent);
        assert_eq!(arch_from_vendor_class(b"PXEClient:Arch:00007:UNDI:003010"), Some(7));
        assert_eq!(arch_from_vendor_class(b"HTTPClient:Arch:00016"), Some(16));
        assert_eq!(arch_from_vendor_class(b"PXEClient:Arch:0000"), None);
        assert_eq!(arch_from_vendor_class(b"PXEClient:Arch:99999"), None);
        assert_eq!(arch_from_vendor_class(b"PXEClient:Arch:0000x"), None);
        assert_eq!(arch_from_vendor_class(b"PXEClient:Arch:000071"), None);
        assert_eq!(arch_from_vendor_class(b"PXEClient"), None);
    }

    #[test]
    fn arch_names_cover_the_iana_table() {
        for code in 0..=41 {
            assert_ne!(arch::name(code), "unassigned", "{code}");
        }
        assert_eq!(arch::name(42), "unassigned");
    }
}
