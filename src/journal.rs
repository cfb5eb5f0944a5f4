//! Crash-safe append-only journals: the framing shared by the DHCP lease journal
//! ([`crate::dhcp::leases`]) and the node lifecycle journal ([`crate::lifecycle::record`]).
//!
//! File layout: an 8-byte magic naming the kind of journal, then records, each
//!
//! ```text
//! len: u16 LE (payload bytes) | crc32: u32 LE (of the payload) | payload
//! ```
//!
//! Records are buffered by [`Journal::append`] and reach the disk in [`Journal::sync`] (one
//! `write` + `fdatasync` for all of them); a caller acknowledges what a record stands for only
//! after `sync` returned `Ok`. [`Journal::open`] replays the file through the caller's decoder and
//! truncates a torn or corrupt tail (a crash mid-write, a flipped bit, a payload the decoder
//! refuses) at the last good record. [`Journal::compact`] rewrites the live records to a
//! temporary file, fsyncs it and renames it over the journal, once [`Journal::needs_compaction`]
//! says the file has grown past its threshold. A file without the magic is moved aside to
//! `<name>.corrupt`, never destroyed.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Bytes of a record header (length + CRC32).
pub const REC_HEADER: usize = 6;
/// Largest payload a record can carry.
pub const MAX_PAYLOAD: usize = u16::MAX as usize;

/// Appends `payload` framed as one record (length, CRC32, payload) to `out`.
///
/// # Panics
/// If the payload is longer than [`MAX_PAYLOAD`] (callers bound their payloads).
pub fn frame(payload: &[u8], out: &mut Vec<u8>) {
    assert!(payload.len() <= MAX_PAYLOAD, "journal payload of {} bytes", payload.len());
    out.extend_from_slice(&(payload.len() as u16).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(payload);
}

/// Decodes the records of a journal image with `decode`. Returns the records and the length of
/// the good prefix (everything after it is a torn or corrupt tail: a short header or payload, a
/// CRC mismatch, or a payload `decode` refuses). A bad magic gives an empty good prefix.
pub fn decode_frames<T>(
    data: &[u8],
    magic: &[u8; 8],
    mut decode: impl FnMut(&[u8]) -> Option<T>,
) -> (Vec<T>, usize) {
    let mut out = Vec::new();
    if data.len() < magic.len() || data[..magic.len()] != magic[..] {
        return (out, 0);
    }
    let mut pos = magic.len();
    while let Some(h) = data.get(pos..pos + REC_HEADER) {
        let len = usize::from(u16::from_le_bytes([h[0], h[1]]));
        let crc = u32::from_le_bytes([h[2], h[3], h[4], h[5]]);
        let Some(payload) = data.get(pos + REC_HEADER..pos + REC_HEADER + len) else { break };
        if crc32fast::hash(payload) != crc {
            break;
        }
        let Some(rec) = decode(payload) else { break };
        out.push(rec);
        pos += REC_HEADER + len;
    }
    (out, pos)
}

/// What [`Journal::open`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened<T> {
    /// Every good record, oldest first.
    pub records: Vec<T>,
    /// Bytes of torn or corrupt tail that were cut off (0 for a clean file).
    pub truncated: u64,
}

/// An open journal file.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    magic: [u8; 8],
    file: File,
    /// Framed records not yet written.
    pending: Vec<u8>,
    pending_records: usize,
    /// Bytes in the file.
    len: u64,
    /// Records in the file.
    records: usize,
    /// Compact when the file holds more than `factor` × live records (and at least `min`).
    pub compact_factor: usize,
    pub compact_min_records: usize,
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

impl Journal {
    /// Opens (creating if needed) `<dir>/<name>`, replays it through `decode` and cuts off a
    /// torn or corrupt tail, so later appends follow the last good record. A file that does not
    /// start with `magic` is renamed to `<name>.corrupt` and a fresh journal is started.
    pub fn open<T>(
        dir: &Path,
        name: &str,
        magic: [u8; 8],
        mut decode: impl FnMut(&[u8]) -> Option<T>,
    ) -> io::Result<(Journal, Opened<T>)> {
        let path = dir.join(name);
        let mut file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path)?;
        let mut data = Vec::new();
        file.read_to_end(&mut data)?;
        let (records, good) = if data.is_empty() {
            file.write_all(&magic)?;
            file.sync_all()?;
            sync_dir(dir)?;
            (Vec::new(), magic.len())
        } else {
            decode_frames(&data, &magic, &mut decode)
        };
        if good == 0 {
            // Not a journal of ours: keep it aside rather than destroy it.
            drop(file);
            let aside = dir.join(format!("{name}.corrupt"));
            std::fs::rename(&path, &aside)?;
            log::warn!("{} has no journal header; moved to {}", path.display(), aside.display());
            return Journal::open(dir, name, magic, decode);
        }
        let mut truncated = 0;
        if (good as u64) < data.len() as u64 {
            truncated = data.len() as u64 - good as u64;
            file.set_len(good as u64)?;
            file.sync_all()?;
        }
        file.seek(SeekFrom::Start(good as u64))?;
        let j = Journal {
            path,
            magic,
            file,
            pending: Vec::with_capacity(64 << 10),
            pending_records: 0,
            len: good as u64,
            records: records.len(),
            compact_factor: 4,
            compact_min_records: 1024,
        };
        Ok((j, Opened { records, truncated }))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes in the file (not counting buffered records).
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True when nothing but the header has been written.
    pub fn is_empty(&self) -> bool {
        self.records == 0
    }

    /// Records in the file.
    pub fn records(&self) -> usize {
        self.records
    }

    /// True when records are buffered and not yet durable.
    pub fn has_pending(&self) -> bool {
        self.pending_records > 0
    }

    /// Buffers one record; it is durable after the next successful [`Journal::sync`]. The
    /// buffer keeps its capacity, so appending allocates only when a burst outgrows it.
    pub fn append(&mut self, payload: &[u8]) {
        frame(payload, &mut self.pending);
        self.pending_records += 1;
    }

    /// Writes the buffered records and `fdatasync`s. On error the buffered records are dropped
    /// (the caller must not acknowledge what they stand for) and the file is cut back to its last
    /// good length.
    pub fn sync(&mut self) -> io::Result<()> {
        if self.pending_records == 0 {
            return Ok(());
        }
        let res = self.file.write_all(&self.pending).and_then(|()| self.file.sync_data());
        match res {
            Ok(()) => {
                self.len += self.pending.len() as u64;
                self.records += self.pending_records;
            }
            Err(_) => {
                let _ = self.file.set_len(self.len);
                let _ = self.file.seek(SeekFrom::Start(self.len));
            }
        }
        self.pending.clear();
        self.pending_records = 0;
        res
    }

    /// True when the file holds more than `compact_factor` × `live` records.
    pub fn needs_compaction(&self, live: usize) -> bool {
        self.records >= self.compact_min_records && self.records > self.compact_factor * live.max(1)
    }

    /// Rewrites the journal with only the given payloads: temp file, fsync, rename, fsync the
    /// directory. Buffered records are synced first.
    pub fn compact<'a>(&mut self, live: impl IntoIterator<Item = &'a [u8]>) -> io::Result<()> {
        self.sync()?;
        let dir = self.path.parent().unwrap_or(Path::new(".")).to_path_buf();
        let name = self.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let tmp = dir.join(format!("{name}.tmp"));
        let mut buf = Vec::with_capacity(64 << 10);
        buf.extend_from_slice(&self.magic);
        let mut n = 0;
        for p in live {
            frame(p, &mut buf);
            n += 1;
        }
        {
            let mut f = File::create(&tmp)?;
            f.write_all(&buf)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &self.path)?;
        sync_dir(&dir)?;
        let mut file = OpenOptions::new().read(true).write(true).open(&self.path)?;
        file.seek(SeekFrom::End(0))?;
        self.file = file;
        self.len = buf.len() as u64;
        self.records = n;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAGIC: [u8; 8] = *b"FBTEST01";

    fn decode(p: &[u8]) -> Option<Vec<u8>> {
        (p.first() != Some(&0xff)).then(|| p.to_vec())
    }

    #[test]
    fn round_trip_torn_tail_and_refused_payloads() {
        let d = tempfile::tempdir().unwrap();
        let (mut j, o) = Journal::open(d.path(), "t.journal", MAGIC, decode).unwrap();
        assert!(o.records.is_empty() && j.is_empty());
        j.append(b"one");
        j.append(b"");
        j.append(b"three");
        assert!(j.has_pending());
        j.sync().unwrap();
        assert_eq!(j.records(), 3);
        drop(j);
        let full = std::fs::read(d.path().join("t.journal")).unwrap();
        let (_, o) = Journal::open(d.path(), "t.journal", MAGIC, decode).unwrap();
        assert_eq!(o.records, vec![b"one".to_vec(), vec![], b"three".to_vec()]);
        // A torn last record is cut off.
        std::fs::write(d.path().join("t.journal"), &full[..full.len() - 2]).unwrap();
        let (_, o) = Journal::open(d.path(), "t.journal", MAGIC, decode).unwrap();
        assert_eq!(o.records.len(), 2);
        assert_eq!(o.truncated, (REC_HEADER + 5 - 2) as u64);
        // A payload the decoder refuses ends the replay there, like a bad CRC.
        let (mut j, _) = Journal::open(d.path(), "t.journal", MAGIC, decode).unwrap();
        j.append(&[0xff, 1]);
        j.append(b"after");
        j.sync().unwrap();
        drop(j);
        let (_, o) = Journal::open(d.path(), "t.journal", MAGIC, decode).unwrap();
        assert_eq!(o.records.len(), 2);
        assert_eq!(o.truncated, (2 * REC_HEADER + 2 + 5) as u64);
    }

    #[test]
    fn compaction_and_foreign_files() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("t.journal"), b"something else").unwrap();
        let (mut j, o) = Journal::open(d.path(), "t.journal", MAGIC, decode).unwrap();
        assert!(o.records.is_empty());
        assert!(d.path().join("t.journal.corrupt").exists());
        j.compact_min_records = 4;
        for _ in 0..10 {
            j.append(b"x");
        }
        j.sync().unwrap();
        assert!(j.needs_compaction(2));
        j.compact([&b"a"[..], b"b"]).unwrap();
        assert!(!j.needs_compaction(2));
        j.append(b"c");
        j.sync().unwrap();
        drop(j);
        let (_, o) = Journal::open(d.path(), "t.journal", MAGIC, decode).unwrap();
        assert_eq!(o.records, vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]);
        assert!(!d.path().join("t.journal.tmp").exists());
    }
}
