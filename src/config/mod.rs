//! Configuration: [`raw`] is what the user wrote (serde, unknown keys rejected), [`Config`] is what
//! we run with. `Config::from_toml` validates everything and reports *every* semantic error with
//! file, line and key; a TOML syntax or type error stops parsing and is reported on its own.

pub mod cluster;
pub mod raw;

use raw::{OneOrMany, RawConfig, S};
use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const DEFAULT_ROOT: &str = "/var/lib/pxe-boot";
pub const DEFAULT_STATE_DIR: &str = "/var/lib/ferroboot";
pub const DEFAULT_TFTP_PORT: u16 = 69;
pub const DEFAULT_HTTP_PORT: u16 = 8080;
/// Where Debian's `ipxe` package puts its builds (`dpkg -L ipxe`).
pub const DEFAULT_IPXE_DIR: &str = "/usr/lib/ipxe";
/// The iPXE builds served by default (each one only if the file exists): what the DHCP boot
/// policy hands out, plus the other Debian builds an operator may name in a custom policy.
pub const DEFAULT_IPXE_BINARIES: [&str; 8] = [
    "undionly.kpxe",
    "undionly.kkpxe",
    "ipxe.pxe",
    "ipxe.efi",
    "snponly.efi",
    "ipxe-i386.efi",
    "snp-arm32.efi",
    "snp-arm64.efi",
];

/// One configuration error: where it is and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    /// 1-based line; 0 when the error is not tied to a line (e.g. the file cannot be read).
    pub line: usize,
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line > 0 {
            write!(f, "{}:{}: {}: {}", self.file.display(), self.line, self.key, self.message)
        } else {
            write!(f, "{}: {}: {}", self.file.display(), self.key, self.message)
        }
    }
}

/// All errors found in one file.
#[derive(Debug, Clone)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DhcpMode {
    Off,
    Server,
    Proxy,
}

impl DhcpMode {
    pub fn parse(s: &str) -> Option<DhcpMode> {
        match s {
            "off" => Some(DhcpMode::Off),
            "server" => Some(DhcpMode::Server),
            "proxy" => Some(DhcpMode::Proxy),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            DhcpMode::Off => "off",
            DhcpMode::Server => "server",
            DhcpMode::Proxy => "proxy",
        }
    }
}

/// `dhcp.ipxe_chainload`: when a client that already runs iPXE is first handed our own iPXE
/// build over TFTP (once per boot) instead of the script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpxeChainloadMode {
    /// Never: every iPXE gets the script (QEMU's NIC ROM is iPXE: no TFTP step).
    Never,
    /// Only an iPXE whose option 175 lacks HTTP support (the default).
    IfNoHttp,
    /// Every iPXE, once: replaces old vendor iPXE ROMs with our build.
    Always,
}

impl IpxeChainloadMode {
    pub fn parse(s: &str) -> Option<IpxeChainloadMode> {
        match s {
            "never" => Some(IpxeChainloadMode::Never),
            "if-no-http" => Some(IpxeChainloadMode::IfNoHttp),
            "always" => Some(IpxeChainloadMode::Always),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhcpConfig {
    pub mode: DhcpMode,
    pub subnet: Option<Ipv4Addr>,
    pub netmask: Option<Ipv4Addr>,
    pub broadcast: Option<Ipv4Addr>,
    pub range: Option<(Ipv4Addr, Ipv4Addr)>,
    pub router: Option<Ipv4Addr>,
    pub domain_name_servers: Vec<Ipv4Addr>,
    pub domain_name: Option<String>,
    pub lease_time: Duration,
    pub ipxe_chainload: IpxeChainloadMode,
    /// Further subnets (`[[dhcp.pools]]`), each with its own range and options; the lease time
    /// and domain name are the `[dhcp]` ones.
    pub pools: Vec<PoolConfig>,
}

/// One `[[dhcp.pools]]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolConfig {
    pub subnet: Ipv4Addr,
    pub netmask: Ipv4Addr,
    pub range: (Ipv4Addr, Ipv4Addr),
    pub router: Option<Ipv4Addr>,
    pub broadcast: Option<Ipv4Addr>,
    /// `None`: the `[dhcp]` servers.
    pub domain_name_servers: Option<Vec<Ipv4Addr>>,
}

impl DhcpConfig {
    /// Whether `ip` is inside the `[dhcp]` subnet or one of the pools' (any address when no
    /// subnet is configured at all).
    pub fn covers(&self, ip: Ipv4Addr) -> bool {
        let main = match (self.subnet, self.netmask) {
            (Some(net), Some(mask)) => in_subnet(ip, net, mask),
            _ => self.pools.is_empty(),
        };
        main || self.pools.iter().any(|p| in_subnet(ip, p.subnet, p.netmask))
    }

    /// The configuration one pool answers with: this one with the pool's network and options.
    pub fn for_pool(&self, p: &PoolConfig) -> DhcpConfig {
        DhcpConfig {
            subnet: Some(p.subnet),
            netmask: Some(p.netmask),
            range: Some(p.range),
            router: p.router,
            broadcast: p.broadcast,
            domain_name_servers: p
                .domain_name_servers
                .clone()
                .unwrap_or_else(|| self.domain_name_servers.clone()),
            pools: Vec::new(),
            ..self.clone()
        }
    }
}

impl Default for DhcpConfig {
    fn default() -> Self {
        DhcpConfig {
            mode: DhcpMode::Off,
            subnet: None,
            netmask: None,
            broadcast: None,
            range: None,
            router: None,
            domain_name_servers: Vec::new(),
            domain_name: None,
            lease_time: Duration::from_secs(3600),
            ipxe_chainload: IpxeChainloadMode::IfNoHttp,
            pools: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TftpConfig {
    pub enabled: bool,
    pub port: u16,
    /// Most concurrent sessions; further requests get error 0 "server busy".
    pub max_sessions: usize,
    /// Largest blksize we accept. `None`: the interface MTU − 32 (1468 on a 1500 MTU).
    pub max_blksize: Option<u16>,
    /// Largest RFC 7440 windowsize we accept.
    pub max_windowsize: u16,
    /// Largest burst, windowsize × blksize bytes, we grant (the windowsize is lowered to fit).
    pub max_window_bytes: usize,
    /// Retransmit timeout when the client does not ask for one (RFC 2349 `timeout`).
    pub timeout: Duration,
    /// Retransmissions of one packet before the session is abandoned.
    pub retries: u8,
}

impl Default for TftpConfig {
    fn default() -> Self {
        TftpConfig {
            enabled: true,
            port: DEFAULT_TFTP_PORT,
            max_sessions: 1024,
            max_blksize: None,
            max_windowsize: 64,
            max_window_bytes: crate::tftp::options::DEFAULT_MAX_WINDOW_BYTES,
            timeout: Duration::from_millis(1000),
            retries: 5,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpConfig {
    pub enabled: bool,
    pub port: u16,
    /// Open connections at most; more are answered 503 and closed.
    pub max_connections: usize,
    /// Largest request line + headers (414 / 431 beyond).
    pub max_header_bytes: usize,
    /// A request head must arrive within this (the slowloris guard).
    pub header_timeout: Duration,
    /// Idle keep-alive connections are closed after this.
    pub keepalive_timeout: Duration,
    /// A response that makes no progress for this long is abandoned.
    pub write_timeout: Duration,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            enabled: true,
            port: DEFAULT_HTTP_PORT,
            max_connections: 2048,
            max_header_bytes: 8192,
            header_timeout: Duration::from_secs(10),
            keepalive_timeout: Duration::from_secs(30),
            write_timeout: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub mac: [u8; 6],
    pub profile: Option<String>,
    pub hostname: Option<String>,
    pub ip_address: Option<Ipv4Addr>,
    /// Cluster role (the runbook's `control-plane`, `worker`, ...); defaults to the profile name.
    pub role: Option<String>,
    /// SMBIOS UUID as iPXE's `${uuid}` prints it, lowercase with dashes.
    pub uuid: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    pub kernel: String,
    pub initrd: Vec<String>,
    pub cmdline: String,
}

/// What an iPXE machine that is not in `[nodes]` gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnknownMachines {
    /// A menu: the profiles, boot from the local disk, retry, iPXE shell.
    Menu,
    /// `exit`: iPXE returns to the firmware, which tries its next boot device.
    Ignore,
    /// Boot this profile.
    Profile(String),
}

/// `[ipxe]`: the iPXE builds we serve and how scripts behave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpxeConfig {
    /// Where the iPXE builds are looked up when they are not in the root.
    pub binaries_dir: PathBuf,
    /// `binaries_dir` was written in the config (a missing directory is then an error).
    pub binaries_dir_set: bool,
    /// The builds to serve. `None`: every one of [`DEFAULT_IPXE_BINARIES`] that exists; a
    /// listed one that is missing is an error at start.
    pub binaries: Option<Vec<String>>,
    pub unknown: UnknownMachines,
    /// Attempts at downloading a kernel/initrd (or the chained script) before giving up.
    pub retries: u8,
    /// Files served by URL path below `/boot/` from anywhere on disk (`ferroboot boot`'s kernel and
    /// initrds): `(name below /boot/, path)`. Not settable from the file.
    pub files: Vec<(String, PathBuf)>,
}

impl Default for IpxeConfig {
    fn default() -> Self {
        IpxeConfig {
            binaries_dir: PathBuf::from(DEFAULT_IPXE_DIR),
            binaries_dir_set: false,
            binaries: None,
            unknown: UnknownMachines::Menu,
            retries: 3,
            files: Vec::new(),
        }
    }
}

/// The validated configuration ferroboot runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The file this came from, if any.
    pub source: Option<PathBuf>,
    pub interface: Option<String>,
    pub server_address: Option<Ipv4Addr>,
    pub listen: Ipv4Addr,
    pub root: PathBuf,
    pub state_dir: PathBuf,
    pub dhcp: DhcpConfig,
    pub tftp: TftpConfig,
    pub http: HttpConfig,
    pub ipxe: IpxeConfig,
    pub nodes: Vec<Node>,
    pub profiles: BTreeMap<String, Profile>,
    /// `[cluster]` with the inventory resolved into members; `None` without the section.
    pub cluster: Option<cluster::ClusterSettings>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            source: None,
            interface: None,
            server_address: None,
            listen: Ipv4Addr::UNSPECIFIED,
            root: PathBuf::from(DEFAULT_ROOT),
            state_dir: PathBuf::from(DEFAULT_STATE_DIR),
            dhcp: DhcpConfig::default(),
            tftp: TftpConfig::default(),
            http: HttpConfig::default(),
            ipxe: IpxeConfig::default(),
            nodes: Vec::new(),
            profiles: BTreeMap::new(),
            cluster: None,
        }
    }
}

impl Config {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigErrors(vec![ConfigError {
                file: path.to_path_buf(),
                line: 0,
                key: "(file)".into(),
                message: format!("cannot read: {e}"),
            }])
        })?;
        Config::from_toml(path, &text)
    }

    /// Parses and validates TOML text; `path` is only used in error messages.
    pub fn from_toml(path: &Path, text: &str) -> Result<Config, ConfigErrors> {
        let raw: RawConfig = match toml::from_str(text) {
            Ok(r) => r,
            Err(e) => {
                let (line, key) = match e.span() {
                    Some(span) => (line_of(text, span.start), token_at(text, span)),
                    None => (0, "(document)".to_string()),
                };
                return Err(ConfigErrors(vec![ConfigError {
                    file: path.to_path_buf(),
                    line,
                    key,
                    message: e.message().trim().to_string(),
                }]));
            }
        };
        let mut v = Validator { file: path, text, errors: Vec::new() };
        let cfg = v.config(raw);
        if v.errors.is_empty() {
            let mut cfg = cfg;
            cfg.source = Some(path.to_path_buf());
            Ok(cfg)
        } else {
            Err(ConfigErrors(v.errors))
        }
    }

    /// A one-line summary for `check-config`.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "root {}, dhcp {}, tftp {}, http {}, {} node(s), {} profile(s)",
            self.root.display(),
            self.dhcp.mode.as_str(),
            if self.tftp.enabled { format!("on :{}", self.tftp.port) } else { "off".into() },
            if self.http.enabled { format!("on :{}", self.http.port) } else { "off".into() },
            self.nodes.len(),
            self.profiles.len()
        );
        if let Some(c) = &self.cluster {
            let boot = c.members.iter().filter(|m| m.bootstrap).count();
            s += &format!(
                ", cluster {} ({} bootstrap, {} join)",
                c.cluster_name,
                boot,
                c.members.len() - boot
            );
        }
        s
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    let offset = offset.min(text.len());
    text.as_bytes()[..offset].iter().filter(|&&b| b == b'\n').count() + 1
}

fn token_at(text: &str, span: std::ops::Range<usize>) -> String {
    let end = span.end.min(text.len());
    let start = span.start.min(end);
    let tok = text[start..end].lines().next().unwrap_or("").trim();
    let tok = tok.split(['=', ' ']).next().unwrap_or("").trim_matches('"');
    if tok.is_empty() { "(value)".into() } else { tok.to_string() }
}

/// Parses a MAC address written as six hex pairs separated by `:` or `-`.
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = s.split([':', '-']);
    for b in mac.iter_mut() {
        let p = parts.next()?;
        if p.len() != 2 {
            return None;
        }
        *b = u8::from_str_radix(p, 16).ok()?;
    }
    if parts.next().is_some() {
        return None;
    }
    Some(mac)
}

struct Validator<'a> {
    file: &'a Path,
    text: &'a str,
    errors: Vec<ConfigError>,
}

impl Validator<'_> {
    fn err(&mut self, span: std::ops::Range<usize>, key: &str, message: impl Into<String>) {
        self.errors.push(ConfigError {
            file: self.file.to_path_buf(),
            line: line_of(self.text, span.start),
            key: key.to_string(),
            message: message.into(),
        });
    }

    fn ip(&mut self, v: &S<String>, key: &str) -> Option<Ipv4Addr> {
        match v.get_ref().parse::<Ipv4Addr>() {
            Ok(ip) => Some(ip),
            Err(_) => {
                self.err(v.span(), key, format!("{:?} is not an IPv4 address", v.get_ref()));
                None
            }
        }
    }

    fn opt_ip(&mut self, v: &Option<S<String>>, key: &str) -> Option<Ipv4Addr> {
        v.as_ref().and_then(|v| self.ip(v, key))
    }

    fn int(&mut self, v: &S<i64>, key: &str, min: i64, max: i64) -> Option<i64> {
        let n = *v.get_ref();
        if n < min || n > max {
            self.err(v.span(), key, format!("{n} is out of range {min}..={max}"));
            None
        } else {
            Some(n)
        }
    }

    fn config(&mut self, raw: RawConfig) -> Config {
        let server_address = self.opt_ip(&raw.server_address, "server_address");
        let mut c =
            Config { interface: raw.interface.map(|s| s.into_inner()), server_address, ..Config::default() };
        if let Some(l) = &raw.listen {
            if let Some(ip) = self.ip(l, "listen") {
                c.listen = ip;
            }
        }
        if let Some(r) = raw.root {
            c.root = PathBuf::from(r.into_inner());
        }
        if let Some(s) = raw.state_dir {
            c.state_dir = PathBuf::from(s.into_inner());
        }
        if let Some(d) = raw.dhcp {
            c.dhcp = self.dhcp(d);
        }
        if let Some(t) = raw.tftp {
            self.tftp(&t, &mut c.tftp);
        }
        if let Some(h) = raw.http {
            if let Some(e) = h.enabled {
                c.http.enabled = e;
            }
            if let Some(p) = &h.port {
                if let Some(p) = self.int(p, "http.port", 1, 65535) {
                    c.http.port = p as u16;
                }
            }
            if let Some(n) =
                h.max_connections.as_ref().and_then(|n| self.int(n, "http.max_connections", 1, 1 << 20))
            {
                c.http.max_connections = n as usize;
            }
            if let Some(n) =
                h.max_header_bytes.as_ref().and_then(|n| self.int(n, "http.max_header_bytes", 512, 1 << 20))
            {
                c.http.max_header_bytes = n as usize;
            }
            let ms = |v: i64| Duration::from_millis(v as u64);
            if let Some(n) = h
                .header_timeout_ms
                .as_ref()
                .and_then(|n| self.int(n, "http.header_timeout_ms", 100, 3_600_000))
            {
                c.http.header_timeout = ms(n);
            }
            if let Some(n) = h
                .keepalive_timeout_ms
                .as_ref()
                .and_then(|n| self.int(n, "http.keepalive_timeout_ms", 100, 3_600_000))
            {
                c.http.keepalive_timeout = ms(n);
            }
            if let Some(n) =
                h.write_timeout_ms.as_ref().and_then(|n| self.int(n, "http.write_timeout_ms", 100, 3_600_000))
            {
                c.http.write_timeout = ms(n);
            }
        }
        for (name, p) in &raw.profiles {
            if !is_word(name) {
                self.err(
                    p.span(),
                    &format!("profiles.{name}"),
                    "a profile name may only use letters, digits, '.', '_' and '-'",
                );
            }
            let initrd = match p.get_ref().initrd.as_ref().map(|i| i.get_ref().clone()) {
                None => Vec::new(),
                Some(OneOrMany::One(s)) => vec![s],
                Some(OneOrMany::Many(v)) => v,
            };
            let p = p.get_ref();
            if p.kernel.get_ref().is_empty() {
                self.err(p.kernel.span(), &format!("profiles.{name}.kernel"), "must not be empty");
            } else if let Err(m) = check_boot_path(p.kernel.get_ref()) {
                self.err(p.kernel.span(), &format!("profiles.{name}.kernel"), m);
            }
            if let Some(i) = &p.initrd {
                for (k, path) in initrd.iter().enumerate() {
                    if let Err(m) = check_boot_path(path) {
                        self.err(i.span(), &format!("profiles.{name}.initrd[{k}]"), m);
                    }
                }
            }
            if let Some(cl) = &p.cmdline {
                if let Err(e) = crate::ipxe::template::Template::parse(cl.get_ref()) {
                    self.err(cl.span(), &format!("profiles.{name}.cmdline"), e.to_string());
                }
            }
            c.profiles.insert(
                name.clone(),
                Profile {
                    kernel: p.kernel.get_ref().clone(),
                    initrd,
                    cmdline: p.cmdline.as_ref().map(|s| s.get_ref().clone()).unwrap_or_default(),
                },
            );
        }
        let mut seen_ips: BTreeMap<Ipv4Addr, String> = BTreeMap::new();
        for (mac_s, n) in &raw.nodes {
            let key = format!("nodes.\"{mac_s}\"");
            let Some(mac) = parse_mac(mac_s) else {
                self.err(n.span(), &key, format!("{mac_s:?} is not a MAC address (aa:bb:cc:dd:ee:ff)"));
                continue;
            };
            let node = n.get_ref();
            if let Some(p) = &node.profile {
                if !c.profiles.contains_key(p.get_ref()) && !raw.profiles.is_empty() {
                    self.err(
                        p.span(),
                        &format!("{key}.profile"),
                        format!("no profile named {:?}", p.get_ref()),
                    );
                }
            }
            let ip = self.opt_ip(&node.ip_address, &format!("{key}.ip_address"));
            if let (Some(ip), Some(ipspan)) = (ip, node.ip_address.as_ref().map(|s| s.span())) {
                if let Some(other) = seen_ips.insert(ip, mac_s.clone()) {
                    self.err(
                        ipspan.clone(),
                        &format!("{key}.ip_address"),
                        format!("{ip} is also given to {other}"),
                    );
                }
                if let (Some(net), Some(mask)) = (c.dhcp.subnet, c.dhcp.netmask) {
                    if !c.dhcp.covers(ip) {
                        let more = if c.dhcp.pools.is_empty() { "" } else { " and every dhcp.pools subnet" };
                        self.err(
                            ipspan,
                            &format!("{key}.ip_address"),
                            format!("{ip} is outside subnet {net}/{mask}{more}"),
                        );
                    }
                }
            }
            if c.nodes.iter().any(|x: &Node| x.mac == mac) {
                self.err(n.span(), &key, "the same MAC is listed twice");
            }
            if let Some(h) = &node.hostname {
                if !is_hostname(h.get_ref()) {
                    self.err(
                        h.span(),
                        &format!("{key}.hostname"),
                        format!("{:?} is not a host name (letters, digits, '-' and '.')", h.get_ref()),
                    );
                }
            }
            if let Some(r) = &node.role {
                if !is_word(r.get_ref()) {
                    self.err(
                        r.span(),
                        &format!("{key}.role"),
                        "a role may only use letters, digits, '.', '_' and '-'",
                    );
                }
            }
            if let Some(u) = &node.uuid {
                if !is_uuid(u.get_ref()) {
                    self.err(
                        u.span(),
                        &format!("{key}.uuid"),
                        format!("{:?} is not a UUID (8-4-4-4-12 hex digits)", u.get_ref()),
                    );
                }
            }
            c.nodes.push(Node {
                mac,
                profile: node.profile.as_ref().map(|s| s.get_ref().clone()),
                hostname: node.hostname.as_ref().map(|s| s.get_ref().clone()),
                ip_address: ip,
                role: node.role.as_ref().map(|s| s.get_ref().clone()),
                uuid: node.uuid.as_ref().map(|s| s.get_ref().to_ascii_lowercase()),
            });
        }
        if let Some(i) = raw.ipxe {
            self.ipxe(&i, &mut c);
        }
        c.cluster = self.cluster(&raw.nodes, &raw.cluster, &c);
        c
    }

    fn ipxe(&mut self, i: &raw::RawIpxe, c: &mut Config) {
        if let Some(d) = &i.binaries_dir {
            c.ipxe.binaries_dir = PathBuf::from(d.get_ref());
            c.ipxe.binaries_dir_set = true;
            if d.get_ref().is_empty() {
                self.err(d.span(), "ipxe.binaries_dir", "must not be empty");
            }
        }
        if let Some(list) = &i.binaries {
            let mut names = Vec::new();
            for (k, n) in list.get_ref().iter().enumerate() {
                let name = n.get_ref();
                if name.is_empty() || name.contains(['/', '\\', '\0']) || name == "." || name == ".." {
                    self.err(
                        n.span(),
                        &format!("ipxe.binaries[{k}]"),
                        format!("{name:?} must be a plain file name (no '/')"),
                    );
                } else if names.contains(name) {
                    self.err(n.span(), &format!("ipxe.binaries[{k}]"), format!("{name:?} is listed twice"));
                } else {
                    names.push(name.clone());
                }
            }
            c.ipxe.binaries = Some(names);
        }
        if let Some(u) = &i.unknown {
            c.ipxe.unknown = match u.get_ref().as_str() {
                "menu" => UnknownMachines::Menu,
                "ignore" => UnknownMachines::Ignore,
                p if c.profiles.contains_key(p) => UnknownMachines::Profile(p.to_string()),
                p => {
                    self.err(
                        u.span(),
                        "ipxe.unknown",
                        format!("{p:?}: expected \"menu\", \"ignore\" or a profile name"),
                    );
                    UnknownMachines::Menu
                }
            };
        }
        if let Some(n) = &i.retries {
            if let Some(n) = self.int(n, "ipxe.retries", 1, 20) {
                c.ipxe.retries = n as u8;
            }
        }
    }

    fn dhcp(&mut self, d: raw::RawDhcp) -> DhcpConfig {
        let mut c = DhcpConfig::default();
        if let Some(m) = &d.mode {
            match DhcpMode::parse(m.get_ref()) {
                Some(mode) => c.mode = mode,
                None => self.err(
                    m.span(),
                    "dhcp.mode",
                    format!("{:?}: expected \"off\", \"server\" or \"proxy\"", m.get_ref()),
                ),
            }
        }
        if let Some(m) = &d.ipxe_chainload {
            match IpxeChainloadMode::parse(m.get_ref()) {
                Some(mode) => c.ipxe_chainload = mode,
                None => self.err(
                    m.span(),
                    "dhcp.ipxe_chainload",
                    format!("{:?}: expected \"never\", \"if-no-http\" or \"always\"", m.get_ref()),
                ),
            }
        }
        c.subnet = self.opt_ip(&d.subnet, "dhcp.subnet");
        c.netmask = self.opt_ip(&d.netmask, "dhcp.netmask");
        if let (Some(m), Some(span)) = (c.netmask, d.netmask.as_ref().map(|s| s.span())) {
            self.contiguous(m, span, "dhcp.netmask");
        }
        c.broadcast = self.opt_ip(&d.broadcast, "dhcp.broadcast");
        c.router = self.opt_ip(&d.router, "dhcp.router");
        for (i, s) in d.domain_name_servers.iter().enumerate() {
            if let Some(ip) = self.ip(s, &format!("dhcp.domain_name_servers[{i}]")) {
                c.domain_name_servers.push(ip);
            }
        }
        c.domain_name = d.domain_name.map(|s| s.into_inner());
        if let Some(l) = &d.lease_time {
            if let Some(n) = self.int(l, "dhcp.lease_time", 60, u32::MAX as i64) {
                c.lease_time = Duration::from_secs(n as u64);
            }
        }
        if let Some(r) = &d.range {
            let (s, e) = (
                self.ip(&r.get_ref().start, "dhcp.range.start"),
                self.ip(&r.get_ref().end, "dhcp.range.end"),
            );
            if let (Some(s), Some(e)) = (s, e) {
                if u32::from(s) > u32::from(e) {
                    self.err(r.span(), "dhcp.range", format!("start {s} is after end {e}"));
                }
                if let (Some(net), Some(mask)) = (c.subnet, c.netmask) {
                    for (ip, k) in [(s, "dhcp.range.start"), (e, "dhcp.range.end")] {
                        if !in_subnet(ip, net, mask) {
                            self.err(r.span(), k, format!("{ip} is outside subnet {net}/{mask}"));
                        }
                    }
                }
                c.range = Some((s, e));
            }
        }
        for (i, p) in d.pools.iter().enumerate() {
            if let Some(pool) = self.pool(p, i, &c) {
                c.pools.push(pool);
            }
        }
        if c.mode == DhcpMode::Server {
            let span = d.mode.as_ref().map(|m| m.span()).unwrap_or(0..0);
            for (missing, key) in [
                (c.subnet.is_none() && d.subnet.is_none(), "dhcp.subnet"),
                (c.netmask.is_none() && d.netmask.is_none(), "dhcp.netmask"),
                (c.range.is_none() && d.range.is_none(), "dhcp.range"),
            ] {
                if missing {
                    self.err(span.clone(), key, "required when dhcp.mode = \"server\"");
                }
            }
        }
        c
    }

    fn contiguous(&mut self, m: Ipv4Addr, span: std::ops::Range<usize>, key: &str) {
        let bits = u32::from(m);
        if bits.leading_ones() + bits.trailing_zeros() != 32 {
            self.err(span, key, format!("{m} is not a contiguous netmask"));
        }
    }

    /// One `[[dhcp.pools]]` entry: a contiguous netmask, the range inside the subnet, and a subnet
    /// that overlaps neither `[dhcp]`'s nor an earlier pool's.
    fn pool(&mut self, p: &S<raw::RawPool>, i: usize, c: &DhcpConfig) -> Option<PoolConfig> {
        let k = |f: &str| format!("dhcp.pools[{i}].{f}");
        let r = p.get_ref();
        let subnet = self.ip(&r.subnet, &k("subnet"));
        let netmask = self.ip(&r.netmask, &k("netmask"));
        if let Some(m) = netmask {
            self.contiguous(m, r.netmask.span(), &k("netmask"));
        }
        let start = self.ip(&r.range.get_ref().start, &k("range.start"));
        let end = self.ip(&r.range.get_ref().end, &k("range.end"));
        let router = self.opt_ip(&r.router, &k("router"));
        let broadcast = self.opt_ip(&r.broadcast, &k("broadcast"));
        let dns = r.domain_name_servers.as_ref().map(|v| {
            v.iter()
                .enumerate()
                .filter_map(|(j, s)| self.ip(s, &k(&format!("domain_name_servers[{j}]"))))
                .collect()
        });
        let (subnet, netmask, start, end) = (subnet?, netmask?, start?, end?);
        let mut ok = true;
        if u32::from(start) > u32::from(end) {
            self.err(r.range.span(), &k("range"), format!("start {start} is after end {end}"));
            ok = false;
        }
        for (ip, f) in [(start, "range.start"), (end, "range.end")] {
            if !in_subnet(ip, subnet, netmask) {
                self.err(r.range.span(), &k(f), format!("{ip} is outside subnet {subnet}/{netmask}"));
                ok = false;
            }
        }
        let overlaps = |net: Ipv4Addr, mask: Ipv4Addr| {
            let m = u32::from(mask) & u32::from(netmask);
            u32::from(net) & m == u32::from(subnet) & m
        };
        let main = c.subnet.zip(c.netmask).filter(|&(n, m)| overlaps(n, m));
        let earlier = c.pools.iter().map(|q| (q.subnet, q.netmask)).find(|&(n, m)| overlaps(n, m));
        if let Some((n, m)) = main.or(earlier) {
            self.err(r.subnet.span(), &k("subnet"), format!("{subnet}/{netmask} overlaps {n}/{m}"));
            ok = false;
        }
        if c.mode == DhcpMode::Server && (c.subnet.is_none() || c.netmask.is_none()) {
            self.err(p.span(), &k("subnet"), "dhcp.pools needs the [dhcp] subnet, netmask and range as well");
            ok = false;
        }
        ok.then_some(PoolConfig {
            subnet,
            netmask,
            range: (start, end),
            router,
            broadcast,
            domain_name_servers: dns,
        })
    }

    fn tftp(&mut self, t: &raw::RawTftp, c: &mut TftpConfig) {
        if let Some(e) = t.enabled {
            c.enabled = e;
        }
        if let Some(p) = &t.port {
            if let Some(p) = self.int(p, "tftp.port", 1, 65535) {
                c.port = p as u16;
            }
        }
        if let Some(n) = &t.max_sessions {
            if let Some(n) = self.int(n, "tftp.max_sessions", 1, 1_000_000) {
                c.max_sessions = n as usize;
            }
        }
        if let Some(n) = &t.max_blksize {
            if let Some(n) = self.int(n, "tftp.max_blksize", 8, 65464) {
                c.max_blksize = Some(n as u16);
            }
        }
        if let Some(n) = &t.max_windowsize {
            if let Some(n) = self.int(n, "tftp.max_windowsize", 1, 65535) {
                c.max_windowsize = n as u16;
            }
        }
        if let Some(n) = &t.max_window_bytes {
            if let Some(n) = self.int(n, "tftp.max_window_bytes", 512, 1 << 30) {
                c.max_window_bytes = n as usize;
            }
        }
        if let Some(n) = &t.timeout_ms {
            if let Some(n) = self.int(n, "tftp.timeout_ms", 10, 255_000) {
                c.timeout = Duration::from_millis(n as u64);
            }
        }
        if let Some(n) = &t.retries {
            if let Some(n) = self.int(n, "tftp.retries", 0, 100) {
                c.retries = n as u8;
            }
        }
    }
}

/// Letters, digits, `.`, `_`, `-` (profile names, roles: they appear in scripts and menus).
pub fn is_word(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// An RFC 1123 host name (or FQDN): labels of letters, digits and `-`.
pub fn is_hostname(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// `4c4c4544-0000-1000-8000-000000000001` (any case).
pub fn is_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter()
            .enumerate()
            .all(|(i, &c)| if matches!(i, 8 | 13 | 18 | 23) { c == b'-' } else { c.is_ascii_hexdigit() })
}

/// A kernel/initrd path below the root: it becomes a URL path in the script, so only characters
/// that need no escaping in a URL or an iPXE command line, and no `..`. `{arch}`, `{platform}`
/// and `{profile}` may be used (one profile for a mixed x86-64/arm64 rack).
pub fn check_boot_path(p: &str) -> Result<(), String> {
    use crate::ipxe::template::{PATH_FIELDS, Template};
    let t = Template::parse(p).map_err(|e| format!("{p:?}: {e}"))?;
    if let Some(f) = t.fields().find(|f| !PATH_FIELDS.contains(f)) {
        return Err(format!(
            "{p:?}: {{{}}} cannot be used in a path (only {{arch}}, {{platform}} and {{profile}})",
            f.name()
        ));
    }
    let plain = t.plain();
    let p = plain.as_str();
    if let Some(c) = p.chars().find(|&c| !(c.is_ascii_alphanumeric() || "._~/+@=,:-".contains(c))) {
        return Err(format!("{p:?}: {c:?} is not allowed in a boot path (letters, digits and ._~/+@=,:-)"));
    }
    if p.split('/').any(|c| c == "..") {
        return Err(format!("{p:?}: '..' is not allowed"));
    }
    if p.trim_matches('/').is_empty() {
        return Err("must name a file below the root".into());
    }
    Ok(())
}

pub fn in_subnet(ip: Ipv4Addr, net: Ipv4Addr, mask: Ipv4Addr) -> bool {
    u32::from(ip) & u32::from(mask) == u32::from(net) & u32::from(mask)
}

#[cfg(test)]
mod tests;
