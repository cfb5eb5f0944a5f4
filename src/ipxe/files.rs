//! The files served from outside the root: iPXE builds from `[ipxe] binaries_dir` (Debian's
//! `/usr/lib/ipxe` by default) and `ferroboot boot`'s kernel and initrds.
//!
//! An iPXE build is served by TFTP under its plain name (`undionly.kpxe`) and by HTTP both at the
//! top level (`/ipxe.efi`, the URL the DHCP policy gives UEFI HTTP Boot clients) and below
//! `/boot/`. A file of the same name in the root wins, so an operator can drop in their own build.

use std::path::{Path, PathBuf};

use crate::config::{Config, DEFAULT_IPXE_BINARIES};

/// One file served from outside the root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServedFile {
    /// Name below the root (TFTP name, HTTP `/boot/<name>`), e.g. `ipxe.efi`.
    pub name: String,
    /// Where it is, when it is not in the root; `None` when the root has it.
    pub path: Option<PathBuf>,
    /// Also answered at HTTP `/<name>`.
    pub top_level: bool,
}

/// The files to serve, checked on disk. Errors name the missing path: a binary listed in
/// `[ipxe] binaries`, a `binaries_dir` written in the config, a `ferroboot boot` image.
pub fn served_files(c: &Config) -> Result<Vec<ServedFile>, String> {
    let ipxe = &c.ipxe;
    let dir = &ipxe.binaries_dir;
    if ipxe.binaries_dir_set && !dir.is_dir() {
        return Err(format!("ipxe.binaries_dir: {} is not a directory", dir.display()));
    }
    let mut out = Vec::new();
    let explicit = ipxe.binaries.is_some();
    let names: Vec<&str> = match &ipxe.binaries {
        Some(list) => list.iter().map(String::as_str).collect(),
        None => DEFAULT_IPXE_BINARIES.to_vec(),
    };
    let mut missing = Vec::new();
    for name in names {
        let in_root = c.root.join(name);
        let in_dir = dir.join(name);
        if is_file(&in_root) {
            out.push(ServedFile { name: name.to_string(), path: None, top_level: true });
        } else if is_file(&in_dir) {
            out.push(ServedFile { name: name.to_string(), path: Some(in_dir), top_level: true });
        } else if explicit {
            return Err(format!(
                "ipxe.binaries: {name}: {} does not exist (nor {})",
                in_dir.display(),
                in_root.display()
            ));
        } else {
            missing.push(name);
        }
    }
    if !missing.is_empty() {
        log::info!("ipxe: not in {} nor the root, not served: {}", dir.display(), missing.join(", "));
    }
    for (name, path) in &ipxe.files {
        if !is_file(path) {
            return Err(format!("{} does not exist or is not a regular file", path.display()));
        }
        out.push(ServedFile { name: name.clone(), path: Some(path.clone()), top_level: false });
    }
    Ok(out)
}

fn is_file(p: &Path) -> bool {
    p.metadata().is_ok_and(|m| m.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binaries_come_from_the_root_first_then_the_dir() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("root");
        let bin = d.path().join("bin");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::write(root.join("undionly.kpxe"), b"mine").unwrap();
        std::fs::write(bin.join("undionly.kpxe"), b"debian").unwrap();
        std::fs::write(bin.join("ipxe.efi"), b"debian").unwrap();
        let mut c = Config { root: root.clone(), ..Config::default() };
        c.ipxe.binaries_dir = bin.clone();
        let f = served_files(&c).unwrap();
        assert_eq!(f.len(), 2, "{f:?}");
        assert_eq!(f[0], ServedFile { name: "undionly.kpxe".into(), path: None, top_level: true });
        assert_eq!(
            f[1],
            ServedFile { name: "ipxe.efi".into(), path: Some(bin.join("ipxe.efi")), top_level: true }
        );

        c.ipxe.binaries = Some(vec!["ipxe.efi".into(), "snp-arm64.efi".into()]);
        let e = served_files(&c).unwrap_err();
        assert!(e.contains(&bin.join("snp-arm64.efi").display().to_string()), "{e}");

        c.ipxe.binaries = None;
        c.ipxe.binaries_dir = d.path().join("nope");
        assert_eq!(served_files(&c).unwrap().len(), 1, "a default dir that is missing is not an error");
        c.ipxe.binaries_dir_set = true;
        assert!(served_files(&c).unwrap_err().contains("nope"));

        c.ipxe.binaries_dir_set = false;
        c.ipxe.files = vec![("_boot/kernel/vmlinuz".into(), d.path().join("vmlinuz"))];
        assert!(served_files(&c).unwrap_err().contains("vmlinuz"));
    }
}
