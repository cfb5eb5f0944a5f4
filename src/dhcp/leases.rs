//! The lease journal: an append-only file `<state_dir>/dhcp-leases.journal` with one record per
//! lease change, so a restarted server keeps every lease it acknowledged.
//!
//! File layout: the 8-byte magic [`MAGIC`], then records, each
//!
//! ```text
//! len: u16 LE (payload bytes) | crc32: u32 LE (of the payload) | payload
//! payload: kind u8 | ip [4] | expires u64 LE (unix seconds) | mac [6] | key_len u8 | key
//! ```
//!
//! The framing, buffering, torn-tail repair and compaction are [`crate::journal`]'s (shared with
//! the node lifecycle journal); this file is the lease payload and how records fold into live
//! leases. Records are buffered by [`Journal::append`] and reach the disk in [`Journal::sync`]
//! (one `write` + `fdatasync` for all of them); the driver calls `sync` before it sends the ACKs,
//! so an ACK never leaves before its lease is durable. [`Journal::open`] replays the file and
//! truncates a torn or corrupt tail (a crash mid-write) at the last good record.
//! [`Journal::compact`] rewrites the live leases to a temporary file, fsyncs it and renames it
//! over the journal once it has grown past [`Journal::needs_compaction`]'s threshold.

use crate::journal;
use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::Ipv4Addr;
use std::path::Path;

/// The journal's file name inside the state directory.
pub const FILE_NAME: &str = "dhcp-leases.journal";
/// The first 8 bytes of a journal.
pub const MAGIC: [u8; 8] = *b"FBLEASE1";
/// Bytes of a client key kept verbatim; longer identifiers are shortened with a hash.
pub const KEY_MAX: usize = 40;
const FIXED_PAYLOAD: usize = 1 + 4 + 8 + 6 + 1;

/// How a client is identified: option 61 when it sends one, else `htype` + `chaddr` (EDK2 sends
/// no option 61). Fixed size, so keys never allocate; an identifier longer than
/// [`KEY_MAX`] − 1 bytes keeps its first bytes and a 64-bit FNV-1a hash of the whole.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientKey {
    len: u8,
    bytes: [u8; KEY_MAX],
}

impl fmt::Debug for ClientKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.as_bytes().iter().enumerate() {
            if i > 0 {
                f.write_str(":")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

fn fnv1a(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

impl ClientKey {
    const TAG_HW: u8 = 0;
    const TAG_ID: u8 = 1;
    const TAG_HASHED: u8 = 2;

    /// The key of a client: `client_id` (option 61) when present and non-empty, else the
    /// hardware type and address.
    ///
    /// A client id that is just the hardware type and address (`01:<mac>`, RFC 2132 §9.14's usual
    /// form, which iPXE and Linux clients send) keys the client by its hardware address like a
    /// client that sends none. One machine's boot chain mixes both (EDK2's PXE sends no option 61,
    /// the `ipxe.efi` it loads sends `01:<mac>`), and it must keep one address through it.
    pub fn new(client_id: Option<&[u8]>, htype: u8, chaddr: &[u8]) -> ClientKey {
        let mut k = ClientKey { len: 0, bytes: [0; KEY_MAX] };
        let is_hw_id = |id: &[u8]| id.len() == chaddr.len() + 1 && id[0] == htype && id[1..] == *chaddr;
        match client_id {
            Some(id) if !id.is_empty() && !is_hw_id(id) => {
                if id.len() < KEY_MAX {
                    k.bytes[0] = Self::TAG_ID;
                    k.bytes[1..=id.len()].copy_from_slice(id);
                    k.len = (id.len() + 1) as u8;
                } else {
                    let keep = KEY_MAX - 9;
                    k.bytes[0] = Self::TAG_HASHED;
                    k.bytes[1..=keep].copy_from_slice(&id[..keep]);
                    k.bytes[keep + 1..].copy_from_slice(&fnv1a(id).to_be_bytes());
                    k.len = KEY_MAX as u8;
                }
            }
            _ => {
                let hw = &chaddr[..chaddr.len().min(16)];
                k.bytes[0] = Self::TAG_HW;
                k.bytes[1] = htype;
                k.bytes[2..2 + hw.len()].copy_from_slice(hw);
                k.len = (hw.len() + 2) as u8;
            }
        }
        k
    }

    /// A key read back from the journal; `None` when empty or too long.
    pub fn from_bytes(b: &[u8]) -> Option<ClientKey> {
        if b.is_empty() || b.len() > KEY_MAX {
            return None;
        }
        let mut k = ClientKey { len: b.len() as u8, bytes: [0; KEY_MAX] };
        k.bytes[..b.len()].copy_from_slice(b);
        Some(k)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

/// What a record says happened to an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordKind {
    /// Bound to `key` until `expires` (an ACK).
    Lease,
    /// Given back (DHCPRELEASE, or superseded): the address is free.
    Release,
    /// Declined by a client (in use on the wire): quarantined until `expires`.
    Decline,
}

impl RecordKind {
    fn to_u8(self) -> u8 {
        match self {
            RecordKind::Lease => 1,
            RecordKind::Release => 2,
            RecordKind::Decline => 3,
        }
    }
    fn from_u8(v: u8) -> Option<RecordKind> {
        match v {
            1 => Some(RecordKind::Lease),
            2 => Some(RecordKind::Release),
            3 => Some(RecordKind::Decline),
            _ => None,
        }
    }
}

/// One lease change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseRecord {
    pub kind: RecordKind,
    pub ip: Ipv4Addr,
    /// Unix seconds.
    pub expires: u64,
    /// The client's MAC (zeros when it has none), for operators and the "two MACs" check.
    pub mac: [u8; 6],
    pub key: ClientKey,
}

impl LeaseRecord {
    /// Appends the framed record to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let mut p = [0u8; FIXED_PAYLOAD + KEY_MAX];
        let n = self.payload(&mut p);
        journal::frame(&p[..n], out);
    }

    /// The record's payload (what [`journal::frame`] frames) in `p`; returns its length.
    fn payload(&self, p: &mut [u8; FIXED_PAYLOAD + KEY_MAX]) -> usize {
        let key = self.key.as_bytes();
        p[0] = self.kind.to_u8();
        p[1..5].copy_from_slice(&self.ip.octets());
        p[5..13].copy_from_slice(&self.expires.to_le_bytes());
        p[13..19].copy_from_slice(&self.mac);
        p[19] = key.len() as u8;
        p[20..20 + key.len()].copy_from_slice(key);
        FIXED_PAYLOAD + key.len()
    }

    fn decode(p: &[u8]) -> Option<LeaseRecord> {
        if p.len() < FIXED_PAYLOAD {
            return None;
        }
        let kind = RecordKind::from_u8(p[0])?;
        let ip = Ipv4Addr::new(p[1], p[2], p[3], p[4]);
        let expires = u64::from_le_bytes(p[5..13].try_into().ok()?);
        let mac: [u8; 6] = p[13..19].try_into().ok()?;
        let klen = usize::from(p[19]);
        if p.len() != FIXED_PAYLOAD + klen {
            return None;
        }
        let key = ClientKey::from_bytes(&p[20..])?;
        Some(LeaseRecord { kind, ip, expires, mac, key })
    }
}

/// Decodes records from a journal image. Returns the records and the length of the good prefix
/// (everything after it is a torn or corrupt tail). A bad magic gives an empty good prefix.
pub fn decode_all(data: &[u8]) -> (Vec<LeaseRecord>, usize) {
    journal::decode_frames(data, &MAGIC, LeaseRecord::decode)
}

/// Folds a record sequence into the live state: the last Lease/Decline per address wins, a
/// Release frees it, and a client holds at most one leased address (its latest).
pub fn fold(records: &[LeaseRecord]) -> Vec<LeaseRecord> {
    let mut by_ip: HashMap<Ipv4Addr, (usize, LeaseRecord)> = HashMap::new();
    let mut by_key: HashMap<ClientKey, Ipv4Addr> = HashMap::new();
    for (seq, r) in records.iter().enumerate() {
        match r.kind {
            RecordKind::Release => {
                if let Some((_, old)) = by_ip.remove(&r.ip) {
                    if by_key.get(&old.key) == Some(&r.ip) {
                        by_key.remove(&old.key);
                    }
                }
            }
            RecordKind::Decline => {
                if let Some((_, old)) = by_ip.insert(r.ip, (seq, *r)) {
                    if by_key.get(&old.key) == Some(&r.ip) {
                        by_key.remove(&old.key);
                    }
                }
            }
            RecordKind::Lease => {
                if let Some(prev) = by_key.insert(r.key, r.ip) {
                    let stale = by_ip.get(&prev).is_some_and(|(_, o)| o.key == r.key);
                    if prev != r.ip && stale {
                        by_ip.remove(&prev);
                    }
                }
                if let Some((_, old)) = by_ip.insert(r.ip, (seq, *r)) {
                    if old.key != r.key && by_key.get(&old.key) == Some(&r.ip) {
                        by_key.remove(&old.key);
                    }
                }
            }
        }
    }
    let mut live: Vec<(usize, LeaseRecord)> = by_ip.into_values().collect();
    live.sort_by_key(|(seq, _)| *seq);
    live.into_iter().map(|(_, r)| r).collect()
}

/// An open lease journal (a [`journal::Journal`] of [`LeaseRecord`]s).
#[derive(Debug)]
pub struct Journal {
    inner: journal::Journal,
}

/// What [`Journal::open`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replay {
    /// The live leases (and quarantined addresses), oldest change first.
    pub live: Vec<LeaseRecord>,
    /// Records read.
    pub records: usize,
    /// Bytes of torn or corrupt tail that were cut off (0 for a clean file).
    pub truncated: u64,
}

impl Journal {
    /// Opens (creating if needed) `<dir>/dhcp-leases.journal`, replays it and cuts off a torn
    /// or corrupt tail, so later appends follow the last good record.
    pub fn open(dir: &Path) -> io::Result<(Journal, Replay)> {
        let (inner, opened) = journal::Journal::open(dir, FILE_NAME, MAGIC, LeaseRecord::decode)?;
        let records = opened.records.len();
        let live = fold(&opened.records);
        Ok((Journal { inner }, Replay { live, records, truncated: opened.truncated }))
    }

    pub fn path(&self) -> &Path {
        self.inner.path()
    }

    /// Bytes in the file (not counting buffered records).
    pub fn len(&self) -> u64 {
        self.inner.len()
    }

    /// True when nothing but the header has been written.
    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }

    /// Records in the file.
    pub fn records(&self) -> usize {
        self.inner.records()
    }

    /// True when records are buffered and not yet durable.
    pub fn has_pending(&self) -> bool {
        self.inner.has_pending()
    }

    /// Compaction thresholds: compact when the file holds more than `factor` × live records and
    /// at least `min_records`.
    pub fn set_compaction(&mut self, factor: usize, min_records: usize) {
        self.inner.compact_factor = factor;
        self.inner.compact_min_records = min_records;
    }

    /// Buffers a record; it is durable after the next successful [`Journal::sync`].
    pub fn append(&mut self, rec: &LeaseRecord) {
        let mut p = [0u8; FIXED_PAYLOAD + KEY_MAX];
        let n = rec.payload(&mut p);
        self.inner.append(&p[..n]);
    }

    /// Writes the buffered records and `fdatasync`s. On error the buffered records are dropped
    /// (the caller must not send the ACKs they stand for) and the file is cut back to its last
    /// good length.
    pub fn sync(&mut self) -> io::Result<()> {
        self.inner.sync()
    }

    /// True when the file holds more than the compaction factor × `live` records.
    pub fn needs_compaction(&self, live: usize) -> bool {
        self.inner.needs_compaction(live)
    }

    /// Rewrites the journal with only `live` records: temp file, fsync, rename, fsync the dir.
    /// Buffered records are synced first.
    pub fn compact(&mut self, live: impl IntoIterator<Item = LeaseRecord>) -> io::Result<()> {
        let payloads: Vec<([u8; FIXED_PAYLOAD + KEY_MAX], usize)> = live
            .into_iter()
            .map(|r| {
                let mut p = [0u8; FIXED_PAYLOAD + KEY_MAX];
                let n = r.payload(&mut p);
                (p, n)
            })
            .collect();
        self.inner.compact(payloads.iter().map(|(p, n)| &p[..*n]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(kind: RecordKind, ip: u8, key: u8) -> LeaseRecord {
        LeaseRecord {
            kind,
            ip: Ipv4Addr::new(10, 0, 0, ip),
            expires: 1_700_000_000 + u64::from(ip),
            mac: [2, 0, 0, 0, 0, key],
            key: ClientKey::new(None, 1, &[2, 0, 0, 0, 0, key]),
        }
    }

    fn write_records(dir: &Path, recs: &[LeaseRecord]) -> Vec<u8> {
        let (mut j, _) = Journal::open(dir).unwrap();
        for r in recs {
            j.append(r);
        }
        j.sync().unwrap();
        std::fs::read(dir.join(FILE_NAME)).unwrap()
    }

    #[test]
    fn keys_by_client_id_or_chaddr_and_long_ids_are_hashed() {
        let a = ClientKey::new(None, 1, &[1, 2, 3, 4, 5, 6]);
        let b = ClientKey::new(Some(&[0xff, 1, 2, 3, 4, 5, 6]), 1, &[1, 2, 3, 4, 5, 6]);
        assert_ne!(a, b);
        // `01:<mac>` is the hardware address again: EDK2 (no option 61) and the iPXE it loads
        // (option 61 = 01:<mac>) are one client.
        assert_eq!(a, ClientKey::new(Some(&[1, 1, 2, 3, 4, 5, 6]), 1, &[1, 2, 3, 4, 5, 6]));
        assert_ne!(a, ClientKey::new(Some(&[1, 1, 2, 3, 4, 5, 7]), 1, &[1, 2, 3, 4, 5, 6]));
        assert_eq!(a, ClientKey::new(Some(&[]), 1, &[1, 2, 3, 4, 5, 6]));
        let long1 = [7u8; 200];
        let mut long2 = long1;
        long2[199] = 8;
        let (k1, k2) = (ClientKey::new(Some(&long1), 1, &[]), ClientKey::new(Some(&long2), 1, &[]));
        assert_ne!(k1, k2);
        assert_eq!(ClientKey::from_bytes(k1.as_bytes()), Some(k1));
    }

    #[test]
    fn round_trip_and_fold() {
        let d = tempfile::tempdir().unwrap();
        let recs = [
            rec(RecordKind::Lease, 10, 1),
            rec(RecordKind::Lease, 11, 2),
            rec(RecordKind::Release, 10, 1),
            rec(RecordKind::Decline, 12, 3),
            rec(RecordKind::Lease, 13, 2), // client 2 moved: .11 is no longer theirs
        ];
        write_records(d.path(), &recs);
        let (j, replay) = Journal::open(d.path()).unwrap();
        assert_eq!(replay.records, 5);
        assert_eq!(replay.truncated, 0);
        assert_eq!(j.records(), 5);
        assert_eq!(replay.live, vec![recs[3], recs[4]]);
    }

    #[test]
    fn torn_tail_at_every_byte_offset_is_cut_at_the_last_good_record() {
        let d = tempfile::tempdir().unwrap();
        let recs: Vec<_> = (1..=4).map(|i| rec(RecordKind::Lease, i, i)).collect();
        let full = write_records(d.path(), &recs);
        // Record boundaries.
        let mut ends = vec![MAGIC.len()];
        let mut v = Vec::new();
        for r in &recs {
            r.encode(&mut v);
            ends.push(MAGIC.len() + v.len());
        }
        for cut in MAGIC.len()..=full.len() {
            std::fs::write(d.path().join(FILE_NAME), &full[..cut]).unwrap();
            let (mut j, replay) = Journal::open(d.path()).unwrap();
            let good = *ends.iter().rev().find(|&&e| e <= cut).unwrap();
            let n = ends.iter().position(|&e| e == good).unwrap();
            assert_eq!(replay.records, n, "cut at {cut}");
            assert_eq!(replay.truncated, (cut - good) as u64, "cut at {cut}");
            assert_eq!(replay.live, recs[..n].to_vec());
            // Appending after a repaired tail gives a clean journal.
            j.append(&rec(RecordKind::Lease, 99, 9));
            j.sync().unwrap();
            drop(j);
            let (_, again) = Journal::open(d.path()).unwrap();
            assert_eq!(again.records, n + 1, "cut at {cut}");
            assert_eq!(again.truncated, 0);
        }
    }

    #[test]
    fn a_flipped_bit_stops_the_replay_there() {
        let d = tempfile::tempdir().unwrap();
        let recs: Vec<_> = (1..=3).map(|i| rec(RecordKind::Lease, i, i)).collect();
        let full = write_records(d.path(), &recs);
        let mut one = Vec::new();
        recs[0].encode(&mut one);
        let second = MAGIC.len() + one.len();
        for bit in 0..(one.len() * 8) {
            let mut bad = full.clone();
            bad[second + bit / 8] ^= 1 << (bit % 8);
            std::fs::write(d.path().join(FILE_NAME), &bad).unwrap();
            let (_, replay) = Journal::open(d.path()).unwrap();
            assert_eq!(replay.records, 1, "bit {bit}");
            assert_eq!(replay.live, vec![recs[0]]);
            assert_eq!(std::fs::metadata(d.path().join(FILE_NAME)).unwrap().len(), second as u64);
        }
    }

    #[test]
    fn bad_magic_is_moved_aside() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join(FILE_NAME), b"not a journal at all").unwrap();
        let (j, replay) = Journal::open(d.path()).unwrap();
        assert!(j.is_empty());
        assert!(replay.live.is_empty());
        assert!(d.path().join(format!("{FILE_NAME}.corrupt")).exists());
    }

    #[test]
    fn compaction_keeps_only_live_records() {
        let d = tempfile::tempdir().unwrap();
        let (mut j, _) = Journal::open(d.path()).unwrap();
        j.set_compaction(4, 10);
        for round in 0..20u64 {
            let mut r = rec(RecordKind::Lease, 5, 5);
            r.expires += round;
            j.append(&r);
            j.append(&rec(RecordKind::Lease, 6, 6));
        }
        j.sync().unwrap();
        assert_eq!(j.records(), 40);
        let before = j.len();
        let live = fold(&decode_all(&std::fs::read(j.path()).unwrap()).0);
        assert_eq!(live.len(), 2);
        assert!(j.needs_compaction(live.len()));
        j.compact(live.clone()).unwrap();
        assert!(j.len() < before);
        assert!(!j.needs_compaction(2));
        j.append(&rec(RecordKind::Release, 6, 6));
        j.sync().unwrap();
        drop(j);
        let (_, replay) = Journal::open(d.path()).unwrap();
        assert_eq!(replay.records, 3);
        assert_eq!(replay.live, vec![live[0]]);
        assert!(!d.path().join(format!("{FILE_NAME}.tmp")).exists());
    }
}
