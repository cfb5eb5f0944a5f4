//! iPXE scripts as pure functions: each appends a whole script to a caller buffer (a `Vec<u8>`
//! that keeps its capacity between requests). Nothing here does I/O or looks at the clock; the
//! golden tests in `tests.rs` pin every script byte for byte.
//!
//! Retries: iPXE scripts have no arithmetic, so "retry N times" is N unrolled attempts, each
//! jumping to the next on failure, with a growing pause (2 s, 4 s, 8 s, ... at most 30 s) in
//! between. After the last attempt the script says what failed, offers the iPXE shell for 10 s,
//! and exits (the firmware moves on to its next boot device).

use std::io::Write as _;

use super::inventory::Prepared;
use super::template::{Values, write_mac};

/// The iPXE settings the chain script puts in the per-machine URL's query.
pub const NODE_QUERY: &str = "mac=${net0/mac:hexhyp}&uuid=${uuid}&buildarch=${buildarch}&platform=${platform}&hostname=${hostname:uristring}";

/// The path of the per-machine script.
pub const NODE_PATH: &str = "/ipxe/node";

fn pause(attempt: u8) -> u32 {
    (2u32 << (attempt.min(8) - 1)).min(30)
}

/// Writes `:fail<k>` and the retry notice between attempt `k` and `k + 1`.
fn retry_label(out: &mut Vec<u8>, k: u8, retries: u8) {
    let _ = writeln!(out, ":fail{k}");
    let s = pause(k);
    let _ = writeln!(out, "echo ferroboot: attempt {k} of {retries} failed, retrying in {s} s");
    let _ = writeln!(out, "sleep {s}");
}

fn next_label(out: &mut Vec<u8>, k: u8, retries: u8) {
    if k < retries {
        let _ = write!(out, "fail{k}");
    } else {
        out.extend_from_slice(b"failed");
    }
}

fn give_up(out: &mut Vec<u8>, what: &str, retries: u8) {
    out.extend_from_slice(b":failed\n");
    let plural = if retries == 1 { "" } else { "s" };
    let _ = writeln!(out, "echo ferroboot: {what} failed ({retries} attempt{plural}), giving up");
    out.extend_from_slice(b"prompt --timeout 10000 Press any key for the iPXE shell... && shell ||\n");
    out.extend_from_slice(b"exit 1\n");
}

/// `/boot.ipxe` and `/boot/ipxe/boot.ipxe`: chain to this machine's own script at
/// `<base>/ipxe/node?<NODE_QUERY>`. `base` is `http://host:port`.
pub fn chain(out: &mut Vec<u8>, base: &str, retries: u8) {
    let retries = retries.max(1);
    out.extend_from_slice(b"#!ipxe\n");
    out.extend_from_slice(
        b"# ferroboot: fetch this machine's own script (docs/api.md, \"iPXE script URLs\")\n",
    );
    out.extend_from_slice(b"echo ferroboot: ${net0/mac} (${platform} ${buildarch}) asks for its script\n");
    for k in 1..=retries {
        if k > 1 {
            retry_label(out, k - 1, retries);
        }
        let _ = write!(out, "chain --replace --autofree {base}{NODE_PATH}?{NODE_QUERY} || goto ");
        next_label(out, k, retries);
        out.push(b'\n');
    }
    give_up(out, "fetching the boot script", retries);
}

/// Who the script is for, for its comments and messages.
#[derive(Debug, Clone, Copy)]
pub struct Machine<'a> {
    pub mac: Option<[u8; 6]>,
    /// Hostname, or empty.
    pub hostname: &'a str,
}

fn describe(out: &mut Vec<u8>, m: &Machine<'_>) {
    if !m.hostname.is_empty() {
        out.extend_from_slice(m.hostname.as_bytes());
        out.extend_from_slice(b" (");
    }
    match m.mac {
        Some(mac) => write_mac(out, mac, b':'),
        None => out.extend_from_slice(b"no MAC"),
    }
    if !m.hostname.is_empty() {
        out.push(b')');
    }
}

/// `?mac=52-54-00-12-34-56` after an image URL: the static server ignores the query, the HTTP
/// observer attributes the download to the machine by it (peer addresses can be shared or reused).
fn mac_query(out: &mut Vec<u8>, m: &Machine<'_>) {
    if let Some(mac) = m.mac {
        out.extend_from_slice(b"?mac=");
        write_mac(out, mac, b'-');
    }
}

/// The per-machine install script: kernel, initrd(s), cmdline, then `boot`, retried. `efi`
/// adds `initrd=<name>` for each initrd to the kernel line (the EFI stub loads initrds by name
/// from iPXE's virtual file system; BIOS iPXE hands every initrd to the kernel itself).
pub fn boot(
    out: &mut Vec<u8>,
    base: &str,
    p: &Prepared,
    m: &Machine<'_>,
    v: &Values<'_>,
    efi: bool,
    retries: u8,
) {
    let retries = retries.max(1);
    out.extend_from_slice(b"#!ipxe\n# ferroboot: ");
    describe(out, m);
    let _ = writeln!(out, ", profile {}, role {}", p.name, v.role);
    let _ = writeln!(
        out,
        "# platform {}, arch {}",
        if v.platform.is_empty() { "unknown" } else { v.platform },
        if v.arch.is_empty() { "unknown" } else { v.arch }
    );
    out.extend_from_slice(b"echo ferroboot: booting ");
    describe(out, m);
    let _ = writeln!(out, " with profile {}", p.name);
    for k in 1..=retries {
        if k > 1 {
            retry_label(out, k - 1, retries);
        }
        out.extend_from_slice(b"imgfree\n");
        let _ = write!(out, "kernel {base}");
        p.kernel.render(v, out);
        mac_query(out, m);
        if efi {
            for (name, _) in &p.initrds {
                let _ = write!(out, " initrd={name}");
            }
        }
        if !p.cmdline.is_empty() {
            out.push(b' ');
            p.cmdline.render(v, out);
        }
        out.extend_from_slice(b" || goto ");
        next_label(out, k, retries);
        out.push(b'\n');
        for (name, url) in &p.initrds {
            let _ = write!(out, "initrd --name {name} {base}");
            url.render(v, out);
            mac_query(out, m);
            out.extend_from_slice(b" || goto ");
            next_label(out, k, retries);
            out.push(b'\n');
        }
        out.extend_from_slice(b"boot || goto ");
        next_label(out, k, retries);
        out.push(b'\n');
    }
    give_up(out, "downloading or booting the kernel", retries);
}

/// The script of a machine whose lifecycle says it is installed: `exit`, so the firmware boots
/// its next device (the runbook's "Network → Disk" boot order).
pub fn local(out: &mut Vec<u8>, m: &Machine<'_>) {
    out.extend_from_slice(b"#!ipxe\n# ferroboot: ");
    describe(out, m);
    out.extend_from_slice(b" is installed: boot from the local disk\necho ferroboot: ");
    describe(out, m);
    out.extend_from_slice(b" is installed, booting from the local disk\nexit\n");
}

/// For a machine not in the inventory when `[ipxe] unknown = "ignore"`: leave it to its next
/// boot device at once, saying why on its console.
pub fn ignore(out: &mut Vec<u8>, m: &Machine<'_>) {
    out.extend_from_slice(b"#!ipxe\n# ferroboot: ");
    describe(out, m);
    out.extend_from_slice(b" is not in the inventory ([ipxe] unknown = \"ignore\")\necho ferroboot: ");
    describe(out, m);
    out.extend_from_slice(b" is not in the inventory, not booting it from the network\nexit\n");
}

/// How long the menu waits before it takes its default (boot from the local disk).
pub const MENU_TIMEOUT_MS: u32 = 60_000;

/// The menu for a machine not in the inventory: one item per profile (each chains back to the
/// per-machine URL with `&profile=<name>`), boot from the local disk (the default after
/// [`MENU_TIMEOUT_MS`]), ask the server again, iPXE shell.
/// `listed` says the machine is in the inventory but has no profile.
pub fn menu<'p>(
    out: &mut Vec<u8>,
    base: &str,
    m: &Machine<'_>,
    listed: bool,
    profiles: impl Iterator<Item = &'p str> + Clone,
) {
    let why: &[u8] = if listed { b" has no profile" } else { b" is not in the inventory" };
    out.extend_from_slice(b"#!ipxe\n# ferroboot: ");
    describe(out, m);
    out.extend_from_slice(why);
    out.extend_from_slice(b": menu\n:menu\nmenu ferroboot: ");
    describe(out, m);
    out.extend_from_slice(why);
    out.push(b'\n');
    if profiles.clone().next().is_some() {
        out.extend_from_slice(b"item --gap Install a profile:\n");
        for (i, p) in profiles.clone().enumerate() {
            let _ = writeln!(out, "item profile{i} {p}");
        }
    }
    out.extend_from_slice(b"item --gap Other:\n");
    out.extend_from_slice(b"item local Boot from the local disk\n");
    out.extend_from_slice(b"item retry Ask the server again\n");
    out.extend_from_slice(b"item shell iPXE shell\n");
    let _ = writeln!(out, "choose --timeout {MENU_TIMEOUT_MS} --default local target || goto local");
    out.extend_from_slice(b"goto ${target}\n");
    for (i, p) in profiles.enumerate() {
        let _ = writeln!(out, ":profile{i}");
        let _ = writeln!(
            out,
            "chain --replace --autofree {base}{NODE_PATH}?{NODE_QUERY}&profile={p} || goto menu"
        );
    }
    out.extend_from_slice(b":local\necho ferroboot: booting from the local disk\nexit\n");
    let _ = writeln!(out, ":retry\nchain --replace --autofree {base}{NODE_PATH}?{NODE_QUERY} || goto menu");
    out.extend_from_slice(b":shell\nshell\ngoto menu\n");
}

#[cfg(test)]
mod tests;
