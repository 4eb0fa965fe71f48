//! The shipper: every durable frame of the log, to the archive, in pieces.
//!
//! Each pass ([`Shipper::ship`]) reads the local log from where the last
//! piece ended up to the last durable frame, checks every frame (CRC, MAC
//! chain, LSN order), and puts what it read as one piece per local segment
//! (at most [`PIECE_BYTES_MAX`] of frames each), sealed: a segment header
//! whose first LSN and chain link are the piece's own, then the frames as
//! they are on disk. Then it records how far it has come (`SHIPPED`).
//!
//! # Invariants
//! - Pieces of one history are contiguous: each starts at the LSN after the
//!   last one shipped and links to its MAC (a gap appears only where the
//!   local log itself has one, after a power cut under `SyncInterval`, and
//!   is logged).
//! - `SHIPPED` never runs ahead of the archive: it is written after the put.
//!   At open the archive's listing moves it forward over pieces put before a
//!   crash (or whose record could not be written: a full disk), so nothing
//!   is shipped twice.
//! - A local segment is removed only once every frame in it is shipped (the
//!   engine's checkpoint asks [`Shipper::shipped_lsn`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::Mutex;

use super::names;
use super::shipped::Shipped;
use super::walk::{Stop, walk};
use crate::archive::{Archive, ArchiveError, object};
use crate::crypto::SecretKey;
use crate::error::{CorruptionKind, Error, Result};
use crate::format::{
    FRAME_OVERHEAD, FRAME_PAYLOAD_MAX, LOG_ID_LEN, SEGMENT_HEADER_LEN, SHIPPED_FILE,
};
use crate::fs::Files;
use crate::wal::frame::Mac;
use crate::wal::read_piece;
use crate::wal::segment::{self, SegmentHeader};

/// Most frame bytes in one piece (a piece is read whole into memory, and
/// sealed and put in one call), unless one frame alone is larger.
pub(crate) const PIECE_BYTES_MAX: usize = 16 << 20;

/// Where shipping stands in the local log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Position {
    /// The last frame shipped (0: none), and its MAC.
    lsn: u64,
    mac: Mac,
    /// The local segment that holds (or will hold) frame `lsn + 1`, by its
    /// first LSN, and the offset in it where that frame starts.
    segment: u64,
    offset: u64,
}

/// Ships one database's log to its archive.
pub(crate) struct Shipper {
    archive: Arc<dyn Archive>,
    key: SecretKey,
    files: Files,
    data_dir: PathBuf,
    wal_dir: PathBuf,
    log_id: [u8; LOG_ID_LEN],
    mac_key: SecretKey,
    position: Mutex<Position>,
    shipped_lsn: AtomicU64,
    unshipped_bytes: AtomicU64,
    /// Whether the last pass reached the archive (close ships a last time
    /// only then: an unreachable archive must not hold a close for the
    /// length of its timeouts).
    reachable: AtomicBool,
}

impl Shipper {
    /// Finds where shipping stands: the local record, moved forward over
    /// pieces the archive already holds, and its place in the local log.
    /// The log writer has opened the log (there is at least one segment).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn open(
        archive: Arc<dyn Archive>,
        key: SecretKey,
        files: &Files,
        data_dir: &Path,
        wal_dir: &Path,
        log_id: [u8; LOG_ID_LEN],
        mac_key: SecretKey,
    ) -> Result<Shipper> {
        let segments = segment::list(files, wal_dir)?;
        let first_local = segments
            .first()
            .expect("the log writer keeps a segment open")
            .0;
        let recorded = Shipped::read(files, data_dir)?;
        let mut lsn = match recorded {
            Some(r) if r.lsn + 1 >= first_local => r.lsn,
            Some(r) => {
                // Frames after the record are gone from the local log: they
                // cannot be shipped any more (the record was lost or
                // replaced). Shipping goes on from the oldest local frame.
                tracing::warn!(
                    recorded = r.lsn,
                    first_local,
                    "ship: the archive lacks frames the local log no longer has"
                );
                first_local - 1
            }
            None => first_local - 1,
        };
        // The segment holding frame lsn + 1.
        let holder = |lsn: u64| {
            segments
                .iter()
                .rev()
                .find(|(first, _)| *first <= lsn + 1)
                .unwrap_or(&segments[0])
                .clone()
        };
        // Pieces put before a crash, that the record does not show yet. An
        // archive that cannot be reached now does not keep the database
        // from opening: shipping goes on from the record (a piece put but
        // not recorded is then put again, with the same frames, under a name
        // of its own: a reader skips the frames it has).
        let from_record = lsn;
        let mut adopted = None;
        loop {
            let (segment, _) = holder(lsn);
            let listed = match archive.list(&names::piece_folder(&log_id, segment)) {
                Ok(listed) => listed,
                Err(e) => {
                    tracing::warn!(error = %e, "ship: the archive cannot be listed at open; going on from the local record");
                    break;
                }
            };
            let next = listed
                .into_iter()
                .filter_map(|o| Some((names::parse_piece(&o.name)?, o.name)))
                .filter(|((first, _), _)| Some(*first) == lsn.checked_add(1))
                .max();
            match next {
                Some(((_, last), name)) => {
                    lsn = last;
                    adopted = Some(name);
                }
                None => break,
            }
        }
        // The last piece adopted must end with this log's frame: a piece
        // of the same name from another history (a copy of this database
        // shipping too) must not be taken for ours.
        let mut adopted_mac = None;
        if let Some(name) = &adopted {
            match last_mac_of_piece(&*archive, &key, &mac_key, &log_id, name) {
                Ok(mac) => adopted_mac = Some((name.clone(), mac)),
                Err(Error::Archive(e)) if e.is_transient() => {
                    tracing::warn!(error = %e, "ship: a piece listed at open cannot be read; going on from the local record");
                    lsn = from_record;
                }
                Err(e) => return Err(e),
            }
        }
        // Its place in the local log, and the MAC of frame lsn.
        let (segment, path) = holder(lsn);
        let header = read_header(files, &path)?;
        let bytes = files.read(&path)?;
        let mut offset = SEGMENT_HEADER_LEN as u64;
        let mac;
        if lsn >= segment {
            let (steps, _) = walk(
                &mac_key,
                &bytes[SEGMENT_HEADER_LEN..],
                &header.prev_mac,
                lsn,
            );
            match steps.last() {
                Some(last) if last.lsn == lsn => {
                    if recorded.is_some_and(|r| r.lsn == lsn && r.mac != last.mac) {
                        // The log shipped is not this log.
                        return Err(Error::corruption(
                            data_dir.join(SHIPPED_FILE),
                            0,
                            CorruptionKind::MacChain,
                        ));
                    }
                    if let Some((name, _)) = adopted_mac.filter(|(_, mac)| *mac != last.mac) {
                        return Err(ArchiveError::Corrupt {
                            name,
                            offset: 0,
                            kind: CorruptionKind::MacChain,
                        }
                        .into());
                    }
                    mac = last.mac;
                    offset += last.end as u64;
                }
                _ => {
                    return Err(Error::corruption(
                        path,
                        0,
                        CorruptionKind::Malformed("shipped frame not found in the local log"),
                    ));
                }
            }
        } else {
            // Nothing of this segment is shipped: its header links it.
            mac = header.prev_mac;
            lsn = segment - 1;
        }
        let position = Position {
            lsn,
            mac,
            segment,
            offset,
        };
        tracing::info!(shipped_lsn = lsn, "ship: resuming");
        Ok(Shipper {
            archive,
            key,
            files: files.clone(),
            data_dir: data_dir.to_path_buf(),
            wal_dir: wal_dir.to_path_buf(),
            log_id,
            mac_key,
            position: Mutex::new(position),
            shipped_lsn: AtomicU64::new(lsn),
            unshipped_bytes: AtomicU64::new(0),
            reachable: AtomicBool::new(true),
        })
    }

    /// The last frame in the archive.
    pub(crate) fn shipped_lsn(&self) -> u64 {
        self.shipped_lsn.load(Ordering::SeqCst)
    }

    /// Bytes of the local log not in the archive yet, as of the last pass.
    pub(crate) fn unshipped_bytes(&self) -> u64 {
        self.unshipped_bytes.load(Ordering::SeqCst)
    }

    /// Whether the last pass reached the archive.
    pub(crate) fn reachable(&self) -> bool {
        self.reachable.load(Ordering::SeqCst)
    }

    /// The pass's keyring step did not reach the archive: the pass did not.
    pub(crate) fn note_unreachable(&self) {
        self.reachable.store(false, Ordering::SeqCst);
    }

    /// Ships every frame up to `durable_lsn` (the log is synced through it),
    /// piece by piece until done or `stop` is set. Returns how many pieces
    /// it put. One pass at a time.
    pub(crate) fn ship(&self, durable_lsn: u64, stop: &AtomicBool) -> Result<usize> {
        let mut position = self.position.lock();
        let mut pieces = 0;
        let result = (|| {
            while position.lsn < durable_lsn && !stop.load(Ordering::SeqCst) {
                if !self.ship_piece(&mut position, durable_lsn)? {
                    break;
                }
                pieces += 1;
            }
            Ok(pieces)
        })();
        self.reachable
            .store(!matches!(result, Err(Error::Archive(_))), Ordering::SeqCst);
        self.measure_unshipped(&position);
        result
    }

    /// Ships the next piece, or moves on to the next segment; `false` once
    /// there is nothing more to ship now.
    fn ship_piece(&self, position: &mut Position, durable_lsn: u64) -> Result<bool> {
        let path = segment::path(&self.wal_dir, position.segment);
        if !self.files.is_file(&path)? {
            // Every frame of it is shipped, and a checkpoint removed it
            // (it removes only segments the archive holds whole).
            return self.next_segment(position);
        }
        let mut bytes = self
            .files
            .read_at(&path, position.offset, PIECE_BYTES_MAX)?;
        let (mut steps, mut stop) = walk(&self.mac_key, &bytes, &position.mac, durable_lsn);
        if steps.is_empty()
            && stop == (Stop::Unreadable { at: 0 })
            && let Some(len) = frame_len(&bytes).filter(|&len| len > bytes.len())
        {
            // One frame larger than the read window (a batch of more than
            // 16 MiB): a piece of that frame alone.
            bytes = self.files.read_at(&path, position.offset, len)?;
            (steps, stop) = walk(&self.mac_key, &bytes, &position.mac, durable_lsn);
        }
        let Some(last) = steps.last().copied() else {
            return match stop {
                Stop::End => self.next_segment(position),
                Stop::Limit => Ok(false),
                Stop::Unreadable { at } => Err(Error::corruption(
                    path,
                    position.offset + at as u64,
                    CorruptionKind::MacChain,
                )),
            };
        };
        let first = position.lsn + 1;
        debug_assert_eq!(steps[0].lsn, first);
        let mut piece = SegmentHeader {
            first_lsn: first,
            log_id: self.log_id,
            prev_mac: position.mac,
        }
        .encode()
        .to_vec();
        piece.extend_from_slice(&bytes[..last.end]);
        let name = names::piece(&self.log_id, position.segment, first, last.lsn);
        let sealed = object::seal(&self.key, &name, &piece);
        self.archive.put(&name, sealed)?;
        let shipped = Shipped {
            lsn: last.lsn,
            mac: last.mac,
        };
        if let Err(e) = shipped.write(&self.files, &self.data_dir) {
            // The piece is in the archive; the record only saves the next
            // open a listing. A disk too full for 56 bytes must not stop
            // shipping, nor the removal of archived segments that frees it.
            tracing::warn!(error = %e, "ship: cannot record how far the log is archived; the next open finds it in the archive");
        }
        *position = Position {
            lsn: last.lsn,
            mac: last.mac,
            segment: position.segment,
            offset: position.offset + last.end as u64,
        };
        self.shipped_lsn.store(last.lsn, Ordering::SeqCst);
        tracing::debug!(
            first,
            last = last.lsn,
            bytes = last.end,
            "ship: piece archived"
        );
        Ok(true)
    }

    /// At the end of a segment's frames: moves to the next segment if the
    /// writer has started one (else there is nothing more now).
    fn next_segment(&self, position: &mut Position) -> Result<bool> {
        let segments = segment::list(&self.files, &self.wal_dir)?;
        let Some((next, path)) = segments
            .into_iter()
            .find(|(first, _)| *first > position.segment)
        else {
            return Ok(false);
        };
        let header = read_header(&self.files, &path)?;
        if next == position.lsn + 1 {
            if header.prev_mac != position.mac {
                return Err(Error::corruption(path, 0, CorruptionKind::MacChain));
            }
        } else {
            tracing::warn!(
                shipped = position.lsn,
                next,
                "ship: the local log has a gap (a power cut under SyncInterval); the archive will too"
            );
        }
        *position = Position {
            lsn: next - 1,
            mac: header.prev_mac,
            segment: next,
            offset: SEGMENT_HEADER_LEN as u64,
        };
        Ok(true)
    }

    /// Bytes of local segments from the position on.
    fn measure_unshipped(&self, position: &Position) {
        let measured = (|| -> Result<u64> {
            let mut total = 0;
            for (first, path) in segment::list(&self.files, &self.wal_dir)? {
                if first >= position.segment {
                    total += self.files.len(&path)?;
                }
            }
            Ok(total.saturating_sub(position.offset))
        })();
        match measured {
            Ok(bytes) => self.unshipped_bytes.store(bytes, Ordering::SeqCst),
            Err(e) => tracing::warn!(error = %e, "ship: cannot measure the unshipped log"),
        }
    }
}

/// The MAC of the last frame of the piece `name` in the archive.
fn last_mac_of_piece(
    archive: &dyn Archive,
    key: &SecretKey,
    mac_key: &SecretKey,
    log_id: &[u8; LOG_ID_LEN],
    name: &str,
) -> Result<Mac> {
    let piece = object::open(key, name, &archive.get(name)?)?;
    let mut last = None;
    read_piece(Path::new(name), &piece, mac_key, log_id, |frame| {
        last = Some(frame.mac);
        Ok(())
    })?;
    last.ok_or_else(|| {
        ArchiveError::Corrupt {
            name: name.to_owned(),
            offset: 0,
            kind: CorruptionKind::Malformed("a piece without a frame"),
        }
        .into()
    })
}

/// The length a frame's header states for it, if it is in range.
fn frame_len(bytes: &[u8]) -> Option<usize> {
    let stated = u32::from_le_bytes(bytes.get(..4)?.try_into().expect("4 bytes")) as usize;
    (stated <= FRAME_PAYLOAD_MAX).then_some(stated + FRAME_OVERHEAD)
}

fn read_header(files: &Files, path: &Path) -> Result<SegmentHeader> {
    let bytes = files.read_at(path, 0, SEGMENT_HEADER_LEN)?;
    SegmentHeader::decode(path, &bytes)
}
