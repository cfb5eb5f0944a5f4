//! The boot payload every end-to-end row boots: Debian's cloud kernel (unpacked from its .deb,
//! never installed) and a busybox-static initramfs built here, cached under
//! `target/e2e-payload/` (not committed).
//!
//! The initramfs `/init` mounts proc/sys/dev, loads the NIC modules in dependency order (read
//! from each module's own `.modinfo` `depends=`, the data depmod turns into modules.dep), runs
//! `udhcpc` on eth0, calls `GET /api/v1/nodes/$MAC/events?event=booted&detail=nonce-<N>` with
//! busybox wget, prints [`MARKER`] on the serial console and powers off. The server address
//! comes from `e2e.server=` on the kernel command line, else from the lease's server id.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

/// Printed by `/init` once the callback was made: `FERROBOOT-E2E-MARKER nonce=.. mac=.. ip=..
/// server=.. callback=ok|failed`.
pub const MARKER: &str = "FERROBOOT-E2E-MARKER";

/// The modules the NIC (virtio-net-pci) needs; their dependencies are added in load order.
const WANTED_MODULES: &[&str] = &["virtio_pci", "virtio_net"];

/// Bumped whenever the initramfs contents change, so a stale cache is rebuilt.
const LAYOUT: &str = "v3";

pub struct Payload {
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    pub kernel_version: String,
    /// Module file names in load order (for the log).
    pub modules: Vec<String>,
}

const INIT: &str = r#"#!/bin/busybox sh
/bin/busybox mkdir -p /bin /sbin /proc /sys /dev /tmp /run
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
arg() { for w in $(cat /proc/cmdline); do case "$w" in "$1"=*) echo "${w#*=}"; return;; esac; done; }
NONCE=$(arg e2e.nonce)
PORT=$(arg e2e.port); PORT=${PORT:-8080}
echo "e2e-init: started at $(cut -d' ' -f1 /proc/uptime)s, nonce=$NONCE"
for m in $(cat /etc/e2e-modules); do
  insmod "/lib/modules/$m" || echo "e2e-init: insmod $m failed"
done
i=0
while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
ip link set lo up
ip link set eth0 up
MAC=$(cat /sys/class/net/eth0/address)
echo "e2e-init: eth0 $MAC, udhcpc"
udhcpc -i eth0 -f -q -n -t 10 -T 2 -s /etc/udhcpc.sh || echo "e2e-init: udhcpc failed"
[ -f /tmp/lease ] && . /tmp/lease
SERVER=$(arg e2e.server); SERVER=${SERVER:-$serverid}
CB=failed
if wget -q -O /tmp/callback "http://$SERVER:$PORT/api/v1/nodes/$MAC/events?event=booted&detail=nonce-$NONCE"; then
  CB=ok
fi
echo "e2e-init: callback answer: $(head -c 400 /tmp/callback 2>/dev/null)"
echo "FERROBOOT-E2E-MARKER nonce=$NONCE mac=$MAC ip=$ip server=$SERVER callback=$CB uptime=$(cut -d' ' -f1 /proc/uptime)"
sync
poweroff -f
"#;

const UDHCPC: &str = r#"#!/bin/sh
case "$1" in
  deconfig) ip addr flush dev "$interface" ;;
  bound|renew)
    ip addr flush dev "$interface"
    ip addr add "$ip/$mask" dev "$interface"
    echo "ip=$ip serverid=$serverid siaddr=$siaddr router=$router" > /tmp/lease
    echo "e2e-init: lease $ip/$mask from $serverid" ;;
esac
exit 0
"#;

/// Builds (once per process, and once per cache) and returns the payload.
pub fn get() -> &'static Payload {
    static P: OnceLock<Payload> = OnceLock::new();
    static BUILD: Mutex<()> = Mutex::new(());
    if let Some(p) = P.get() {
        return p;
    }
    let _g = BUILD.lock().unwrap_or_else(|e| e.into_inner());
    P.get_or_init(|| build(&cache_dir()))
}

pub fn cache_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join("e2e-payload")
}

fn sh(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `linux-image-<version>-cloud-amd64`, the package the meta-package points at.
fn kernel_package() -> String {
    let out = sh(Command::new("apt-cache").args(["depends", "linux-image-cloud-amd64"]));
    out.lines()
        .filter_map(|l| l.trim().strip_prefix("Depends: "))
        .find(|p| p.starts_with("linux-image-") && p.ends_with("-cloud-amd64"))
        .unwrap_or_else(|| panic!("apt-cache depends linux-image-cloud-amd64 names no kernel: {out}"))
        .to_string()
}

/// `apt-get download` + `dpkg -x` of `pkg` into `dir/x` (nothing installed).
fn unpack(dir: &Path, pkg: &str) {
    let debs = dir.join("debs");
    std::fs::create_dir_all(&debs).unwrap();
    let have = |d: &Path| {
        std::fs::read_dir(d).unwrap().flatten().find(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.starts_with(&format!("{pkg}_")) && n.ends_with(".deb")
        })
    };
    if have(&debs).is_none() {
        let get = || Command::new("apt-get").args(["download", "-q", pkg]).current_dir(&debs).output();
        // Stale package lists name a version the mirror no longer has: update once and retry.
        if !get().is_ok_and(|o| o.status.success()) {
            sh(Command::new("apt-get").args(["update", "-qq"]));
            sh(Command::new("apt-get").args(["download", "-q", pkg]).current_dir(&debs));
        }
    }
    let deb = have(&debs).expect("downloaded .deb").path();
    sh(Command::new("dpkg").arg("-x").arg(&deb).arg(dir.join("x")));
}

fn build(dir: &Path) -> Payload {
    std::fs::create_dir_all(dir).unwrap();
    let kpkg = kernel_package();
    let version = kpkg.trim_start_matches("linux-image-").to_string();
    let kernel = dir.join(format!("vmlinuz-{version}"));
    let initrd = dir.join(format!("initrd-{version}-{LAYOUT}.img"));
    let x = dir.join("x");
    let moddir = x.join("lib/modules").join(&version).join("kernel");
    if !moddir.is_dir() || !x.join("bin/busybox").is_file() {
        unpack(dir, &kpkg);
        unpack(dir, "busybox-static");
    }
    let modules = module_order(&moddir, WANTED_MODULES);
    if !kernel.is_file() {
        std::fs::copy(x.join("boot").join(format!("vmlinuz-{version}")), &kernel).unwrap();
    }
    if !initrd.is_file() {
        let mut c = Cpio::default();
        for d in ["bin", "dev", "etc", "lib", "lib/modules", "proc", "sys", "tmp", "run"] {
            c.dir(d);
        }
        c.char_dev("dev/console", 5, 1);
        c.file("bin/busybox", 0o755, &std::fs::read(x.join("bin/busybox")).unwrap());
        c.file("init", 0o755, INIT.as_bytes());
        c.file("etc/udhcpc.sh", 0o755, UDHCPC.as_bytes());
        let mut order = String::new();
        for m in &modules {
            let name = m.file_name().unwrap().to_string_lossy().into_owned();
            c.file(&format!("lib/modules/{name}"), 0o644, &std::fs::read(m).unwrap());
            order.push_str(&name);
            order.push('\n');
        }
        c.file("etc/e2e-modules", 0o644, order.as_bytes());
        let raw = dir.join("initrd.cpio");
        std::fs::write(&raw, c.finish()).unwrap();
        sh(Command::new("gzip").args(["-9nf"]).arg(&raw));
        std::fs::rename(dir.join("initrd.cpio.gz"), &initrd).unwrap();
    }
    Payload {
        kernel,
        initrd,
        kernel_version: version,
        modules: modules.iter().map(|m| m.file_name().unwrap().to_string_lossy().into_owned()).collect(),
    }
}

/// Every `.ko` under `moddir` by module name (`-` read as `_`, like the kernel does).
fn module_index(moddir: &Path) -> BTreeMap<String, PathBuf> {
    let mut idx = BTreeMap::new();
    let mut stack = vec![moddir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Some(n) = p.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_suffix(".ko"))
            {
                idx.insert(n.replace('-', "_"), p);
            }
        }
    }
    idx
}

/// `wanted` and everything they depend on, dependencies first (what modprobe would load).
pub fn module_order(moddir: &Path, wanted: &[&str]) -> Vec<PathBuf> {
    let idx = module_index(moddir);
    let mut done = BTreeSet::new();
    let mut out = Vec::new();
    fn visit(
        name: &str,
        idx: &BTreeMap<String, PathBuf>,
        done: &mut BTreeSet<String>,
        out: &mut Vec<PathBuf>,
        depth: usize,
    ) {
        assert!(depth < 32, "module dependency cycle at {name}");
        if done.contains(name) {
            return;
        }
        let path = idx.get(name).unwrap_or_else(|| panic!("module {name} not in the kernel package"));
        let data = std::fs::read(path).unwrap();
        for dep in modinfo(&data, "depends").split(',').filter(|d| !d.is_empty()) {
            visit(dep, idx, done, out, depth + 1);
        }
        done.insert(name.to_string());
        out.push(path.clone());
    }
    for w in wanted {
        visit(w, &idx, &mut done, &mut out, 0);
    }
    out
}

/// The value of `key=` in a module's `.modinfo` ELF section ("" when absent).
pub fn modinfo(elf: &[u8], key: &str) -> String {
    let u16at = |o: usize| u16::from_le_bytes(elf[o..o + 2].try_into().unwrap()) as usize;
    let u64at = |o: usize| u64::from_le_bytes(elf[o..o + 8].try_into().unwrap()) as usize;
    assert!(elf.len() > 64 && &elf[..4] == b"\x7fELF" && elf[4] == 2, "not an ELF64 module");
    let (shoff, shentsize, shnum, shstrndx) = (u64at(0x28), u16at(0x3a), u16at(0x3c), u16at(0x3e));
    let sh = |i: usize| shoff + i * shentsize;
    let strtab = u64at(sh(shstrndx) + 0x18);
    for i in 0..shnum {
        let name_off = strtab + u32::from_le_bytes(elf[sh(i)..sh(i) + 4].try_into().unwrap()) as usize;
        let name_end = name_off + elf[name_off..].iter().position(|&b| b == 0).unwrap();
        if &elf[name_off..name_end] != b".modinfo" {
            continue;
        }
        let (off, size) = (u64at(sh(i) + 0x18), u64at(sh(i) + 0x20));
        let prefix = format!("{key}=");
        for entry in elf[off..off + size].split(|&b| b == 0) {
            if let Some(v) = entry.strip_prefix(prefix.as_bytes()) {
                return String::from_utf8_lossy(v).into_owned();
            }
        }
        return String::new();
    }
    panic!("module has no .modinfo section")
}

/// A cpio archive in the "newc" format the kernel unpacks into its initramfs.
#[derive(Default)]
struct Cpio {
    buf: Vec<u8>,
    ino: u32,
}

impl Cpio {
    fn entry(&mut self, name: &str, mode: u32, data: &[u8], rdev: (u32, u32)) {
        self.ino += 1;
        let fields =
            [self.ino, mode, 0, 0, 1, 0, data.len() as u32, 0, 0, rdev.0, rdev.1, name.len() as u32 + 1, 0];
        self.buf.extend_from_slice(b"070701");
        for f in fields {
            self.buf.extend_from_slice(format!("{f:08x}").as_bytes());
        }
        self.buf.extend_from_slice(name.as_bytes());
        self.buf.push(0);
        self.pad();
        self.buf.extend_from_slice(data);
        self.pad();
    }
    fn pad(&mut self) {
        while self.buf.len() % 4 != 0 {
            self.buf.push(0);
        }
    }
    fn dir(&mut self, name: &str) {
        self.entry(name, 0o040755, &[], (0, 0));
    }
    fn file(&mut self, name: &str, perm: u32, data: &[u8]) {
        self.entry(name, 0o100000 | perm, data, (0, 0));
    }
    fn char_dev(&mut self, name: &str, major: u32, minor: u32) {
        self.entry(name, 0o020600, &[], (major, minor));
    }
    fn finish(mut self) -> Vec<u8> {
        self.entry("TRAILER!!!", 0, &[], (0, 0));
        self.buf
    }
}
