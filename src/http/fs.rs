//! The static file tree: URL path -> relative path (percent-decoding, `..` and NUL rejected) ->
//! an open regular file below the root.
//!
//! Files are opened with `openat2(root_fd, rel, RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)`, so the
//! kernel refuses any resolution, symlinks included, that leaves the root, and the fast path
//! allocates nothing. When the kernel says `EXDEV` (an absolute symlink, or one that points
//! outside) or lacks `openat2`, a slow path canonicalizes the path and checks it is still under the
//! canonical root: symlinks inside the tree keep working, symlinks out of it are 404.

use std::cell::Cell;
use std::ffi::CStr;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use super::response::Writer;

/// Longest decoded relative path we accept (bytes, without the trailing NUL).
pub const MAX_PATH: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathError {
    /// A `%` not followed by two hex digits, or a decoded NUL.
    BadEncoding,
    /// A `..` component.
    Traversal,
    /// Longer than [`MAX_PATH`].
    TooLong,
    /// Missing, not a regular file (directories included), unreadable, or outside the root.
    NotFound,
}

impl PathError {
    pub fn status(self) -> u16 {
        match self {
            PathError::BadEncoding | PathError::Traversal => 400,
            PathError::TooLong => 414,
            PathError::NotFound => 404,
        }
    }
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Percent-decodes `raw` (a URL path below the static prefix, without the query) into `out` as a
/// relative path `a/b/c` followed by a NUL, and returns the length without the NUL.
///
/// Empty and `.` components are dropped (so `//` is served, never redirected); `..` is refused
/// whether written plainly or percent-encoded; a trailing slash names a directory and is 404.
pub fn normalize(raw: &[u8], out: &mut [u8]) -> Result<usize, PathError> {
    // Pass 1: percent-decode into `out`.
    let mut n = 0;
    let mut i = 0;
    while i < raw.len() {
        let b = if raw[i] == b'%' {
            let hi = raw.get(i + 1).copied().and_then(hex_val);
            let lo = raw.get(i + 2).copied().and_then(hex_val);
            match (hi, lo) {
                (Some(hi), Some(lo)) => {
                    i += 3;
                    hi << 4 | lo
                }
                _ => return Err(PathError::BadEncoding),
            }
        } else {
            i += 1;
            raw[i - 1]
        };
        if b == 0 {
            return Err(PathError::BadEncoding);
        }
        if n >= MAX_PATH || n >= out.len() {
            return Err(PathError::TooLong);
        }
        out[n] = b;
        n += 1;
    }
    let trailing_slash = n > 0 && out[n - 1] == b'/';
    // Pass 2: compact components in place (the write cursor never passes the read cursor).
    let mut w = 0;
    let mut r = 0;
    while r < n {
        let start = r;
        while r < n && out[r] != b'/' {
            r += 1;
        }
        let comp_len = r - start;
        r += 1; // skip the slash
        match &out[start..start + comp_len] {
            b"" | b"." => continue,
            b".." => return Err(PathError::Traversal),
            _ => {}
        }
        if w > 0 {
            out[w] = b'/';
            w += 1;
        }
        out.copy_within(start..start + comp_len, w);
        w += comp_len;
    }
    if w == 0 || trailing_slash {
        return Err(PathError::NotFound);
    }
    if w >= out.len() {
        return Err(PathError::TooLong);
    }
    out[w] = 0;
    Ok(w)
}

/// An open regular file and the validators derived from its metadata.
#[derive(Debug)]
pub struct StaticFile {
    pub file: File,
    pub len: u64,
    /// Modification time, whole seconds since the epoch (what `Last-Modified` can express).
    pub mtime: u64,
    etag: [u8; 64],
    etag_len: u8,
}

impl StaticFile {
    /// The strong entity tag, with quotes: `"<inode>-<size>-<mtime s>.<mtime ns>"` in hex.
    pub fn etag(&self) -> &[u8] {
        &self.etag[..usize::from(self.etag_len)]
    }

    fn from_file(file: File) -> Result<StaticFile, PathError> {
        let meta = file.metadata().map_err(|_| PathError::NotFound)?;
        if !meta.is_file() {
            return Err(PathError::NotFound);
        }
        let mtime =
            meta.modified().ok().and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map_or(0, |d| d.as_secs());
        let mut etag = [0u8; 64];
        let mut w = Writer::new(&mut etag);
        w.str("\"").hex(meta.ino()).str("-").hex(meta.len()).str("-");
        w.hex(meta.mtime() as u64).str(".").hex(meta.mtime_nsec() as u64).str("\"");
        let etag_len = w.finish().map_err(|_| PathError::NotFound)? as u8;
        Ok(StaticFile { file, len: meta.len(), mtime, etag, etag_len })
    }
}

/// `struct open_how` of `openat2(2)` (libc's is `non_exhaustive`, so it cannot be built).
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

/// The document root.
#[derive(Debug)]
pub struct Root {
    dir: OwnedFd,
    canonical: PathBuf,
    /// Cleared when the kernel lacks `openat2` (or a seccomp filter hides it).
    have_openat2: Cell<bool>,
}

impl Root {
    /// Opens the root directory. Fails if it is missing or not a directory.
    pub fn open(path: &Path) -> io::Result<Root> {
        let canonical = path
            .canonicalize()
            .map_err(|e| io::Error::new(e.kind(), format!("HTTP root {}: {e}", path.display())))?;
        let dir = File::open(&canonical)?;
        if !dir.metadata()?.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("HTTP root {} is not a directory", path.display()),
            ));
        }
        Ok(Root { dir: dir.into(), canonical, have_openat2: Cell::new(true) })
    }

    pub fn path(&self) -> &Path {
        &self.canonical
    }

    /// Opens `rel` (as produced by [`normalize`], NUL-terminated) below the root.
    pub fn open_file(&self, rel: &CStr) -> Result<StaticFile, PathError> {
        if self.have_openat2.get() {
            let how = OpenHow {
                flags: (libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NOCTTY | libc::O_NONBLOCK) as u64,
                mode: 0,
                resolve: libc::RESOLVE_BENEATH | libc::RESOLVE_NO_MAGICLINKS,
            };
            // SAFETY: `rel` is NUL-terminated, `how` is a valid open_how and its size is passed.
            let fd = unsafe {
                libc::syscall(
                    libc::SYS_openat2,
                    self.dir.as_raw_fd(),
                    rel.as_ptr(),
                    &how as *const OpenHow,
                    std::mem::size_of::<OpenHow>(),
                )
            };
            if fd >= 0 {
                // SAFETY: the kernel just gave us this descriptor; nothing else owns it.
                let file = unsafe { File::from_raw_fd(fd as i32) };
                return StaticFile::from_file(file);
            }
            match io::Error::last_os_error().raw_os_error() {
                Some(libc::EXDEV) => {}
                Some(libc::ENOSYS | libc::EPERM) => self.have_openat2.set(false),
                _ => return Err(PathError::NotFound),
            }
        }
        self.open_slow(rel)
    }

    /// Canonicalize and check the prefix (allocates; only for symlinks that leave the tree by an
    /// absolute path, and on kernels without `openat2`).
    fn open_slow(&self, rel: &CStr) -> Result<StaticFile, PathError> {
        use std::os::unix::ffi::OsStrExt;
        let rel = Path::new(std::ffi::OsStr::from_bytes(rel.to_bytes()));
        let real = self.canonical.join(rel).canonicalize().map_err(|_| PathError::NotFound)?;
        if !real.starts_with(&self.canonical) {
            return Err(PathError::NotFound);
        }
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
            .open(&real)
            .map_err(|_| PathError::NotFound)?;
        StaticFile::from_file(file)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(raw: &str) -> Result<String, PathError> {
        let mut out = [0u8; MAX_PATH + 1];
        let n = normalize(raw.as_bytes(), &mut out)?;
        assert_eq!(out[n], 0);
        Ok(String::from_utf8(out[..n].to_vec()).unwrap())
    }

    #[test]
    fn normalizes() {
        assert_eq!(norm("nixos/control-plane/bzImage").unwrap(), "nixos/control-plane/bzImage");
        assert_eq!(norm("/a//b/./c").unwrap(), "a/b/c");
        assert_eq!(norm("a%20b/%41").unwrap(), "a b/A");
        assert_eq!(norm("..a/b..").unwrap(), "..a/b..");
    }

    #[test]
    fn refuses_traversal_nul_and_bad_escapes() {
        for p in ["../etc/passwd", "a/../../b", "a/..", "%2e%2e/x", "a%2F..%2Fb", ".%2E/x"] {
            assert_eq!(norm(p), Err(PathError::Traversal), "{p}");
        }
        for p in ["a%00b", "a%", "a%4", "a%zz", "%g0"] {
            assert_eq!(norm(p), Err(PathError::BadEncoding), "{p}");
        }
        assert_eq!(norm(""), Err(PathError::NotFound));
        assert_eq!(norm("/"), Err(PathError::NotFound));
        assert_eq!(norm("dir/"), Err(PathError::NotFound));
        assert_eq!(norm(&"a".repeat(MAX_PATH + 1)), Err(PathError::TooLong));
        assert_eq!(norm(&"a".repeat(MAX_PATH)).map(|s| s.len()), Ok(MAX_PATH));
        let mut small = [0u8; 4];
        assert_eq!(normalize(b"abcd", &mut small), Err(PathError::TooLong));
    }

    #[test]
    fn opens_only_regular_files_below_the_root() {
        let tmp = tempfile::tempdir().unwrap();
        let root_dir = tmp.path().join("root");
        std::fs::create_dir_all(root_dir.join("sub")).unwrap();
        std::fs::write(root_dir.join("sub/file"), b"hello").unwrap();
        std::fs::write(tmp.path().join("secret"), b"secret").unwrap();
        std::os::unix::fs::symlink("../../secret", root_dir.join("sub/rel-out")).unwrap();
        std::os::unix::fs::symlink(tmp.path().join("secret"), root_dir.join("abs-out")).unwrap();
        std::os::unix::fs::symlink("file", root_dir.join("sub/rel-in")).unwrap();
        std::os::unix::fs::symlink(root_dir.join("sub/file"), root_dir.join("abs-in")).unwrap();
        let root = Root::open(&root_dir).unwrap();
        let open = |p: &str| {
            let mut buf = [0u8; MAX_PATH + 1];
            let n = normalize(p.as_bytes(), &mut buf)?;
            root.open_file(CStr::from_bytes_with_nul(&buf[..=n]).unwrap())
        };
        let f = open("sub/file").unwrap();
        assert_eq!(f.len, 5);
        assert!(f.etag().starts_with(b"\"") && f.etag().ends_with(b"\""));
        assert_eq!(open("sub/rel-in").unwrap().len, 5);
        assert_eq!(open("abs-in").unwrap().len, 5, "absolute symlink inside the root is served");
        assert_eq!(open("sub/rel-out").unwrap_err(), PathError::NotFound);
        assert_eq!(open("abs-out").unwrap_err(), PathError::NotFound);
        assert_eq!(open("sub").unwrap_err(), PathError::NotFound, "directory");
        assert_eq!(open("missing").unwrap_err(), PathError::NotFound);
        assert_eq!(open("sub/file/x").unwrap_err(), PathError::NotFound);
        assert!(Root::open(&root_dir.join("sub/file")).is_err());
    }
}
