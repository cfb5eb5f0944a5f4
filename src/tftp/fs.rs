//! Where TFTP names point: resolution under the root, and the table of open files that sessions
//! reading the same file share.
//!
//! Real clients send `/pxelinux.0`, `\EFI\BOOT\grubx64.efi` and `undionly.kpxe`; all of them map
//! inside the root. `..` components are refused before touching the disk, and the canonical path
//! (symlinks resolved) must still be inside the root, so a symlink cannot lead out of it.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// Why a name cannot be served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathError {
    NotFound,
    /// The name is outside the root, not a regular file, or unreadable.
    AccessViolation(&'static str),
}

/// The directory files are served from, canonicalized once at start-up.
#[derive(Debug, Clone)]
pub struct Root {
    canonical: PathBuf,
}

impl Root {
    pub fn new(path: &Path) -> io::Result<Root> {
        let canonical = path
            .canonicalize()
            .map_err(|e| io::Error::new(e.kind(), format!("root {}: {e}", path.display())))?;
        if !canonical.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("root {} is not a directory", path.display()),
            ));
        }
        Ok(Root { canonical })
    }

    pub fn path(&self) -> &Path {
        &self.canonical
    }

    /// Maps a TFTP file name to a regular file inside the root.
    pub fn resolve(&self, name: &[u8]) -> Result<PathBuf, PathError> {
        let mut rel = PathBuf::new();
        for comp in name.split(|&b| b == b'/' || b == b'\\') {
            match comp {
                b"" | b"." => {}
                b".." => return Err(PathError::AccessViolation("'..' is not allowed")),
                c if c.contains(&0) => return Err(PathError::AccessViolation("NUL in file name")),
                c => rel.push(OsStr::from_bytes(c)),
            }
        }
        if rel.as_os_str().is_empty() {
            return Err(PathError::NotFound);
        }
        let full = self.canonical.join(rel);
        let canonical = match full.canonicalize() {
            Ok(c) => c,
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                return Err(PathError::AccessViolation("permission denied"));
            }
            Err(_) => return Err(PathError::NotFound),
        };
        if !canonical.starts_with(&self.canonical) {
            return Err(PathError::AccessViolation("outside the root"));
        }
        match canonical.metadata() {
            Ok(m) if m.is_file() => Ok(canonical),
            Ok(_) => Err(PathError::AccessViolation("not a regular file")),
            Err(_) => Err(PathError::NotFound),
        }
    }
}

/// A TFTP file name as a path below the root: `/a\b//c` -> `a/b/c`; `None` for `..`.
pub fn normalize_name(name: &[u8]) -> Option<String> {
    let mut out = String::new();
    for comp in name.split(|&b| b == b'/' || b == b'\\') {
        match comp {
            b"" | b"." => {}
            b".." => return None,
            c => {
                if !out.is_empty() {
                    out.push('/');
                }
                out.push_str(std::str::from_utf8(c).ok()?);
            }
        }
    }
    Some(out)
}

/// A file open for reading, shared by every session that reads it.
#[derive(Debug)]
pub struct OpenFile {
    pub file: File,
    pub size: u64,
    identity: (u64, u64, i64, i64),
}

impl super::session::ReadAt for OpenFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        std::os::unix::fs::FileExt::read_at(&self.file, buf, offset)
    }
}

/// Open files by canonical path. A file replaced on disk (new inode, size or mtime) is opened
/// anew for new sessions; sessions already running keep the version they started with.
#[derive(Debug, Default)]
pub struct FileTable {
    open: HashMap<PathBuf, Rc<OpenFile>>,
}

impl FileTable {
    pub fn open(&mut self, path: &Path) -> io::Result<Rc<OpenFile>> {
        let meta = std::fs::metadata(path)?;
        let identity = (meta.dev(), meta.ino(), meta.mtime(), meta.mtime_nsec());
        if let Some(f) = self.open.get(path) {
            if f.identity == identity && f.size == meta.len() {
                return Ok(Rc::clone(f));
            }
        }
        let file = File::open(path)?;
        let meta = file.metadata()?;
        let f = Rc::new(OpenFile {
            file,
            size: meta.len(),
            identity: (meta.dev(), meta.ino(), meta.mtime(), meta.mtime_nsec()),
        });
        self.open.insert(path.to_path_buf(), Rc::clone(&f));
        Ok(f)
    }

    /// Closes the file at `path` when no session uses it any more.
    pub fn release(&mut self, path: &Path) {
        if self.open.get(path).is_some_and(|f| Rc::strong_count(f) == 1) {
            self.open.remove(path);
        }
    }

    pub fn len(&self) -> usize {
        self.open.len()
    }

    pub fn is_empty(&self) -> bool {
        self.open.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> (tempfile::TempDir, Root) {
        let d = tempfile::tempdir().unwrap();
        let r = d.path().join("root");
        std::fs::create_dir_all(r.join("efi/boot")).unwrap();
        std::fs::write(r.join("undionly.kpxe"), b"x").unwrap();
        std::fs::write(r.join("efi/boot/bootx64.efi"), b"y").unwrap();
        std::fs::write(d.path().join("secret"), b"s").unwrap();
        std::os::unix::fs::symlink(d.path().join("secret"), r.join("escape")).unwrap();
        std::os::unix::fs::symlink("efi/boot/bootx64.efi", r.join("inside")).unwrap();
        let root = Root::new(&r).unwrap();
        (d, root)
    }

    #[test]
    fn names_map_inside_the_root() {
        let (_d, root) = tree();
        let p = root.path().to_path_buf();
        assert_eq!(root.resolve(b"undionly.kpxe"), Ok(p.join("undionly.kpxe")));
        assert_eq!(root.resolve(b"/undionly.kpxe"), Ok(p.join("undionly.kpxe")));
        assert_eq!(root.resolve(b"\\efi\\boot\\bootx64.efi"), Ok(p.join("efi/boot/bootx64.efi")));
        assert_eq!(root.resolve(b"//efi/./boot//bootx64.efi"), Ok(p.join("efi/boot/bootx64.efi")));
        assert_eq!(root.resolve(b"inside"), Ok(p.join("efi/boot/bootx64.efi")), "symlinks inside are fine");
    }

    #[test]
    fn normalize_names() {
        assert_eq!(normalize_name(b"/undionly.kpxe").as_deref(), Some("undionly.kpxe"));
        assert_eq!(normalize_name(b"\\a\\b//./c").as_deref(), Some("a/b/c"));
        assert_eq!(normalize_name(b"a/../b"), None);
    }

    #[test]
    fn escapes_are_refused() {
        let (_d, root) = tree();
        assert!(matches!(root.resolve(b"../secret"), Err(PathError::AccessViolation(_))));
        assert!(matches!(root.resolve(b"efi/../../secret"), Err(PathError::AccessViolation(_))));
        assert!(matches!(root.resolve(b"..\\secret"), Err(PathError::AccessViolation(_))));
        assert!(matches!(root.resolve(b"escape"), Err(PathError::AccessViolation(_))));
        assert!(matches!(root.resolve(b"efi"), Err(PathError::AccessViolation(_))));
        assert_eq!(root.resolve(b"missing"), Err(PathError::NotFound));
        assert_eq!(root.resolve(b""), Err(PathError::NotFound));
        assert_eq!(root.resolve(b"/"), Err(PathError::NotFound));
    }

    #[test]
    fn open_files_are_shared_and_released() {
        let (_d, root) = tree();
        let mut t = FileTable::default();
        let p = root.resolve(b"undionly.kpxe").unwrap();
        let a = t.open(&p).unwrap();
        let b = t.open(&p).unwrap();
        assert!(Rc::ptr_eq(&a, &b));
        drop(a);
        t.release(&p);
        assert_eq!(t.len(), 1, "still used by b");
        drop(b);
        t.release(&p);
        assert!(t.is_empty());
    }

    #[test]
    fn a_replaced_file_is_reopened() {
        let (_d, root) = tree();
        let mut t = FileTable::default();
        let p = root.resolve(b"undionly.kpxe").unwrap();
        let a = t.open(&p).unwrap();
        let tmp = p.with_extension("new");
        std::fs::write(&tmp, b"longer contents").unwrap();
        std::fs::rename(&tmp, &p).unwrap();
        let b = t.open(&p).unwrap();
        assert!(!Rc::ptr_eq(&a, &b));
        assert_eq!((a.size, b.size), (1, 15));
    }
}
