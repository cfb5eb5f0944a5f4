//! `ferroboot boot`: pixiecore's one-line mode. Every PXE machine on the segment boots the given
//! kernel and initrd(s) with the given command line: no config file, no inventory, no lifecycle.
//!
//! The images may be anywhere on disk; they are served as `/boot/_boot/kernel/<name>` and
//! `/boot/_boot/initrd<N>/<name>` (TFTP: the same names without `/boot/`). Every other serve flag
//! works as for `ferroboot serve` (`--proxy-dhcp` beside an existing DHCP server is the usual
//! one); with `--config` the file's services are used but its nodes and profiles are not.

use std::error::Error;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::cli::ServeArgs;
use crate::config::{Config, Profile, UnknownMachines};
use crate::ipxe::template::Template;

type BoxError = Box<dyn Error + Send + Sync>;

/// The profile every machine gets.
pub const PROFILE: &str = "boot";

const EXAMPLES: &str = "\
Examples:
  # Beside the segment's DHCP server: every PXE machine boots this kernel
  ferroboot boot --kernel /boot/vmlinuz --initrd /boot/initrd.img --cmdline 'console=ttyS0' --proxy-dhcp

  # Several initrds, a templated command line ({mac}, {ip}, {server_url}, ...; ${...} is iPXE's)
  ferroboot boot --kernel bzImage --initrd initrd --initrd extra.cpio \\
      --cmdline 'init=/nix/store/init ip=dhcp ferroboot={server_url} mac={mac}'";

#[derive(Debug, Clone, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct BootArgs {
    /// The kernel every machine boots (any path on disk).
    #[arg(long, value_name = "FILE")]
    pub kernel: PathBuf,
    /// An initrd (repeat for several, loaded in order).
    #[arg(long, value_name = "FILE")]
    pub initrd: Vec<PathBuf>,
    /// Kernel command line; `{hostname}`, `{ip}`, `{mac}`, `{server}`, `{server_url}`... are
    /// filled per machine, iPXE's `${...}` is left to iPXE.
    #[arg(long, value_name = "ARGS", default_value = "", allow_hyphen_values = true)]
    pub cmdline: String,
    #[command(flatten)]
    pub serve: ServeArgs,
}

/// A file name as it may appear in a boot URL: anything else becomes `_`.
fn url_name(p: &Path) -> String {
    let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let s: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || "._~+@=,-".contains(c) { c } else { '_' })
        .collect();
    if s.is_empty() || s == "." || s == ".." { "image".into() } else { s }
}

/// The config `ferroboot boot` runs with: the serve flags (and `--config`, if given) with one
/// profile, [`PROFILE`], for every machine.
pub fn config(args: &BootArgs) -> Result<Config, BoxError> {
    let mut c = crate::serve::effective_config(&args.serve)?;
    Template::parse(&args.cmdline).map_err(|e| -> BoxError { format!("--cmdline: {e}").into() })?;
    c.nodes.clear();
    c.profiles.clear();
    let kernel = format!("_boot/kernel/{}", url_name(&args.kernel));
    let mut files = vec![(kernel.clone(), args.kernel.clone())];
    let mut initrd = Vec::new();
    for (i, p) in args.initrd.iter().enumerate() {
        let name = format!("_boot/initrd{i}/{}", url_name(p));
        files.push((name.clone(), p.clone()));
        initrd.push(name);
    }
    for (_, p) in &files {
        if !p.metadata().is_ok_and(|m| m.is_file()) {
            return Err(format!("{}: no such file", p.display()).into());
        }
    }
    c.profiles.insert(PROFILE.into(), Profile { kernel, initrd, cmdline: args.cmdline.clone() });
    c.ipxe.unknown = UnknownMachines::Profile(PROFILE.into());
    c.ipxe.files = files;
    Ok(c)
}

/// An empty directory to serve as the root when none is given (removed on drop).
struct ScratchRoot(PathBuf);

impl Drop for ScratchRoot {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// `ferroboot boot`.
pub fn main(args: BootArgs) -> ExitCode {
    crate::logging::init(args.serve.log_format);
    let run = || -> Result<(), BoxError> {
        let mut c = config(&args)?;
        let mut _scratch = None;
        if args.serve.root.is_none() && args.serve.config.is_none() {
            let dir = std::env::temp_dir().join(format!("ferroboot-boot-{}", std::process::id()));
            std::fs::create_dir_all(&dir)?;
            c.root = dir.clone();
            _scratch = Some(ScratchRoot(dir));
        }
        log::info!(
            "boot: every machine boots {} with {} initrd(s), cmdline {:?}",
            args.kernel.display(),
            args.initrd.len(),
            args.cmdline
        );
        crate::serve::run_without_lifecycle(&c)
    };
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e}");
            eprintln!("ferroboot: error: {e}");
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn one_profile_for_everyone_from_anywhere_on_disk() {
        let d = tempfile::tempdir().unwrap();
        for f in ["vmlinuz-6.1", "initrd.img", "fw cpio"] {
            std::fs::write(d.path().join(f), f).unwrap();
        }
        let p = |f: &str| d.path().join(f).display().to_string();
        let cli = crate::cli::Cli::try_parse_from([
            "ferroboot",
            "boot",
            "--kernel",
            &p("vmlinuz-6.1"),
            "--initrd",
            &p("initrd.img"),
            "--initrd",
            &p("fw cpio"),
            "--cmdline",
            "console=ttyS0 host={hostname}",
            "--http-port",
            "1234",
            "--proxy-dhcp",
        ])
        .unwrap();
        let crate::cli::Command::Boot(args) = cli.command else { panic!("not boot") };
        let c = config(&args).unwrap();
        assert_eq!(c.dhcp.mode, crate::config::DhcpMode::Proxy);
        assert_eq!(c.http.port, 1234);
        let prof = &c.profiles[PROFILE];
        assert_eq!(prof.kernel, "_boot/kernel/vmlinuz-6.1");
        assert_eq!(prof.initrd, ["_boot/initrd0/initrd.img", "_boot/initrd1/fw_cpio"]);
        assert_eq!(c.ipxe.unknown, UnknownMachines::Profile(PROFILE.into()));
        assert_eq!(c.ipxe.files[2], ("_boot/initrd1/fw_cpio".to_string(), d.path().join("fw cpio")));

        let mut bad = args.clone();
        bad.cmdline = "{nope}".into();
        assert!(config(&bad).unwrap_err().to_string().contains("--cmdline: unknown placeholder {nope}"));
        let mut missing = args.clone();
        missing.initrd.push(d.path().join("missing"));
        assert!(config(&missing).unwrap_err().to_string().contains("missing: no such file"));
    }
}
