//! Appends frames to the active segment, syncs, and rolls segments.
//!
//! # Invariants
//! - LSNs are contiguous inside a segment; a new segment starts at the next
//!   LSN, and a segment is synced before the next one is created.
//! - `synced_lsn <= written_lsn < next_lsn`, and every frame up to
//!   `synced_lsn` has been fdatasync'ed.
//! - Bytes from `len` to `file_len` are zeros: the segment is zero-filled
//!   ahead of its frames (under `SyncEveryCommit`), and those zeros were
//!   synced before any frame is written over them.
//! - After a failed sync (or a failed write that could not be undone) the
//!   file's state is unknown: the writer is poisoned and refuses everything
//!   (PostgreSQL's fsyncgate lesson: never retry a failed fsync and carry on).

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::frame::{self, Mac, PayloadHeader};
use super::reader::{LogSummary, SegmentInfo};
use super::segment::{self, SegmentHeader};
use crate::crypto::SecretKey;
use crate::error::{Error, IoContext, Result};
use crate::format::{
    LOG_ID_LEN, LSN_MAX, SEGMENT_HEADER_LEN, SEGMENT_ZERO_FILL_BYTES, ZERO_FILL_GROUP_MAX,
};
use crate::fs::{Files, WritableFile};

/// The entries of one batch, encoded, waiting for an LSN.
#[derive(Debug, Default)]
pub(crate) struct EncodedBatch {
    pub(crate) entries: Vec<u8>,
    pub(crate) count: u32,
    /// Store keys and the sealed bytes they must still hold for the batch
    /// to be written (re-encryption's compare-and-swap). Not logged.
    pub(crate) expect: Vec<([u8; crate::format::STORE_KEY_LEN], Vec<u8>)>,
}

/// How the writer sizes and lays out segments.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SegmentOptions {
    /// A new segment starts once the active one holds this many bytes.
    pub(crate) bytes_max: u64,
    /// Write and sync zeros ahead of the frames, `SEGMENT_ZERO_FILL_BYTES` at
    /// a time, so that each frame's `fdatasync` overwrites blocks the file
    /// system has already written: it then flushes data only, without the
    /// journal commit an append (a new file size) or a first write into a
    /// preallocated block (an extent conversion) needs. Pays off when every
    /// commit syncs; costs one more sync per fill otherwise.
    pub(crate) zero_fill: bool,
}

/// A sync of the active segment, begun under the writer and run without it.
pub(crate) struct PendingSync {
    lsn: u64,
    /// `None` when every frame up to `lsn` is durable already.
    file: Option<Arc<dyn WritableFile>>,
    path: PathBuf,
}

impl PendingSync {
    /// Runs the `fdatasync`.
    pub(crate) fn run(&self) -> io::Result<()> {
        self.file.as_ref().map_or(Ok(()), |file| file.sync_data())
    }
}

/// A segment the writer has moved past.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SealedSegment {
    pub(crate) path: PathBuf,
    /// LSN of its last frame; `None` if it holds none.
    pub(crate) last_lsn: Option<u64>,
}

/// The log's single writer.
pub(crate) struct LogWriter {
    files: Files,
    dir: PathBuf,
    log_id: [u8; LOG_ID_LEN],
    mac_key: SecretKey,
    segments: SegmentOptions,
    file: Arc<dyn WritableFile>,
    path: PathBuf,
    /// End of the last frame written.
    len: u64,
    /// The file's length: zeros from `len` on.
    file_len: u64,
    next_lsn: u64,
    prev_mac: Mac,
    synced_lsn: u64,
    sealed: Vec<SealedSegment>,
    poisoned: bool,
    buf: Vec<u8>,
    /// Called after each new segment is started (the shipper ships the
    /// finished one at once).
    on_roll: Option<Arc<dyn Fn() + Send + Sync>>,
}

impl LogWriter {
    /// Opens the log for appending after [`super::read_log`] has verified it.
    ///
    /// Cuts off a torn tail, and starts after the highest LSN of the log and
    /// of the store (`store_applied`): the store can be ahead of the log only
    /// after a power cut under `Durability::SyncInterval`.
    pub(crate) fn open(
        files: &Files,
        dir: &Path,
        log_id: [u8; LOG_ID_LEN],
        mac_key: SecretKey,
        segments_options: SegmentOptions,
        summary: &LogSummary,
        store_applied: u64,
    ) -> Result<LogWriter> {
        let segment_bytes_max = segments_options.bytes_max;
        let mut segments = summary.segments.clone();
        if let Some(torn) = &summary.torn_tail {
            cut_torn_tail(files, &torn.path, torn.offset, &mut segments)?;
        }
        let highest = summary.last_lsn.max(store_applied);
        assert!(
            highest < LSN_MAX,
            "the reader and the store refuse larger LSNs"
        );
        let next_lsn = highest + 1;
        // The last segment takes more frames if its next LSN is ours and it
        // has room; else a new segment starts (after a gap, at `next_lsn`).
        let resumable = segments.last().filter(|s| {
            let its_next = s.last_lsn.map_or(s.first_lsn, |last| last + 1);
            its_next == next_lsn && s.valid_len < segment_bytes_max
        });
        let (file, path, len, sealed_upto) = match resumable {
            Some(last) => {
                let file = files.open_write(&last.path)?;
                let _ = file.preallocate(segment_bytes_max);
                // Frames read back may sit in the page cache only.
                file.sync_data().at(&last.path)?;
                (file, last.path.clone(), last.valid_len, segments.len() - 1)
            }
            None => {
                if let Some(last) = segments.last() {
                    files.open_write(&last.path)?.sync_data().at(&last.path)?;
                }
                let (file, path) = create_segment(
                    files,
                    dir,
                    segment_bytes_max,
                    &log_id,
                    next_lsn,
                    &summary.last_mac,
                )?;
                (file, path, SEGMENT_HEADER_LEN as u64, segments.len())
            }
        };
        let sealed = segments[..sealed_upto]
            .iter()
            .map(|s| SealedSegment {
                path: s.path.clone(),
                last_lsn: s.last_lsn,
            })
            .collect();
        // The reader found nothing but zeros after the last frame.
        let file_len = file.size().at(&path)?.max(len);
        Ok(LogWriter {
            files: files.clone(),
            dir: dir.to_path_buf(),
            log_id,
            mac_key,
            segments: segments_options,
            file: Arc::from(file),
            path,
            len,
            file_len,
            next_lsn,
            prev_mac: summary.last_mac,
            synced_lsn: next_lsn - 1,
            sealed,
            poisoned: false,
            buf: Vec::new(),
            on_roll: None,
        })
    }

    /// MAC of the last frame written (the chain's link for the next).
    pub(crate) fn last_mac(&self) -> Mac {
        self.prev_mac
    }

    /// Writes one frame per batch, with consecutive LSNs, in one `write`.
    /// Returns the LSN of the first. Does not sync.
    pub(crate) fn append(&mut self, batches: &[&EncodedBatch], commit_time_us: u64) -> Result<u64> {
        self.check_poison()?;
        if self.next_lsn + batches.len() as u64 > LSN_MAX {
            return Err(Error::InvalidArgument("the log has used every LSN"));
        }
        if self.len >= self.segments.bytes_max {
            self.roll()?;
        }
        let first_lsn = self.next_lsn;
        let mut mac = self.prev_mac;
        self.buf.clear();
        for (i, batch) in batches.iter().enumerate() {
            let header = PayloadHeader {
                lsn: first_lsn + i as u64,
                commit_time_us,
                synced_lsn: self.synced_lsn,
                entry_count: batch.count,
            };
            mac = frame::encode_with(&self.mac_key, &mac, &mut self.buf, |payload| {
                header.encode_into(payload);
                payload.extend_from_slice(&batch.entries);
            });
        }
        let end = self.len + self.buf.len() as u64;
        // A large group's sync is dominated by its data: zeros written first
        // would double that, and save little. It extends the file instead.
        if self.segments.zero_fill && end > self.file_len && self.buf.len() <= ZERO_FILL_GROUP_MAX {
            self.zero_fill(end)?;
        }
        if let Err(source) = self.file.write_at(self.len, &self.buf) {
            // Undo a partial write so the log stays a clean prefix (zeros
            // back where there were zeros); if even that fails, nobody can
            // say what the file holds.
            let undone = if end <= self.file_len {
                write_zeros(&*self.file, self.len, end)
            } else {
                let cut = self.file.set_len(self.len);
                if cut.is_ok() {
                    self.file_len = self.len;
                }
                cut
            };
            if undone.is_err() {
                self.poisoned = true;
            }
            return Err(Error::io(self.path.clone(), source));
        }
        self.len = end;
        self.file_len = self.file_len.max(end);
        self.next_lsn += batches.len() as u64;
        self.prev_mac = mac;
        Ok(first_lsn)
    }

    /// Writes zeros from the file's end to past `end` (a fill at a time, up
    /// to the segment's size), and syncs them.
    fn zero_fill(&mut self, end: u64) -> Result<()> {
        let target = (self.file_len + SEGMENT_ZERO_FILL_BYTES)
            .min(self.segments.bytes_max)
            .max(end);
        if let Err(source) = write_zeros(&*self.file, self.file_len, target) {
            // A full disk, most likely: cut back to the zeros that were
            // there, and take writes again once there is space.
            if self.file.set_len(self.file_len).is_err() {
                self.poisoned = true;
            }
            return Err(Error::io(self.path.clone(), source));
        }
        if let Err(source) = self.file.sync_data() {
            // Nothing acknowledged is lost, but after a failed sync nobody
            // can say what the file holds.
            self.poisoned = true;
            return Err(Error::io(self.path.clone(), source));
        }
        self.file_len = target;
        Ok(())
    }

    /// Makes every written frame durable.
    pub(crate) fn sync(&mut self) -> Result<()> {
        let pending = self.begin_sync()?;
        let result = pending.run();
        self.finish_sync(pending, result).map(drop)
    }

    /// A sync of every frame written so far, to run without holding the
    /// writer (so that the next frames can be written meanwhile), then to
    /// hand back to [`LogWriter::finish_sync`].
    pub(crate) fn begin_sync(&self) -> Result<PendingSync> {
        self.check_poison()?;
        let lsn = self.written_lsn();
        Ok(PendingSync {
            lsn,
            // Frames of earlier segments were synced before this one was
            // created: syncing this file covers every frame up to `lsn`.
            file: (self.synced_lsn < lsn).then(|| Arc::clone(&self.file)),
            path: self.path.clone(),
        })
    }

    /// Records the end of a sync begun with [`LogWriter::begin_sync`], and
    /// returns the LSN up to which the log is durable. A failed sync poisons
    /// the writer.
    pub(crate) fn finish_sync(
        &mut self,
        pending: PendingSync,
        result: io::Result<()>,
    ) -> Result<u64> {
        if let Err(source) = result {
            self.poisoned = true;
            return Err(Error::io(pending.path, source));
        }
        // Syncs may finish out of order (one under the writer, one not).
        self.synced_lsn = self.synced_lsn.max(pending.lsn);
        Ok(self.synced_lsn)
    }

    /// LSN of the last frame written.
    pub(crate) fn written_lsn(&self) -> u64 {
        self.next_lsn - 1
    }

    /// Segments the writer has moved past, oldest first.
    pub(crate) fn sealed_segments(&self) -> &[SealedSegment] {
        &self.sealed
    }

    /// Removes the sealed segments whose frames are all at or below `lsn`
    /// (the store has made them redundant). Returns how many it removed.
    pub(crate) fn remove_segments_through(&mut self, lsn: u64) -> Result<usize> {
        let keep_from = self
            .sealed
            .iter()
            .position(|s| s.last_lsn.is_some_and(|last| last > lsn))
            .unwrap_or(self.sealed.len());
        for segment in &self.sealed[..keep_from] {
            self.files.remove_durable(&segment.path)?;
        }
        self.sealed.drain(..keep_from);
        Ok(keep_from)
    }

    fn roll(&mut self) -> Result<()> {
        self.sync()?;
        let (file, path) = create_segment(
            &self.files,
            &self.dir,
            self.segments.bytes_max,
            &self.log_id,
            self.next_lsn,
            &self.prev_mac,
        )?;
        self.file_len = SEGMENT_HEADER_LEN as u64;
        let old_path = std::mem::replace(&mut self.path, path);
        let first_of_new = self.next_lsn;
        let had_frames = self.len > SEGMENT_HEADER_LEN as u64;
        self.sealed.push(SealedSegment {
            path: old_path,
            last_lsn: had_frames.then_some(first_of_new - 1),
        });
        self.file = Arc::from(file);
        self.len = SEGMENT_HEADER_LEN as u64;
        tracing::debug!(first_lsn = first_of_new, "log: new segment");
        if let Some(on_roll) = &self.on_roll {
            on_roll();
        }
        Ok(())
    }

    /// Calls `on_roll` after each new segment is started (the old one is
    /// synced by then).
    pub(crate) fn set_on_roll(&mut self, on_roll: Arc<dyn Fn() + Send + Sync>) {
        self.on_roll = Some(on_roll);
    }

    /// Refuses every later write and sync: used when the log and the store
    /// can no longer be kept level until a reopen.
    pub(crate) fn poison(&mut self) {
        self.poisoned = true;
    }

    fn check_poison(&self) -> Result<()> {
        if self.poisoned {
            return Err(Error::Poisoned);
        }
        Ok(())
    }
}

/// Creates a segment durably: header written and synced, folder synced.
fn create_segment(
    files: &Files,
    dir: &Path,
    segment_bytes_max: u64,
    log_id: &[u8; LOG_ID_LEN],
    first_lsn: u64,
    prev_mac: &Mac,
) -> Result<(Box<dyn WritableFile>, PathBuf)> {
    let path = segment::path(dir, first_lsn);
    let header = SegmentHeader {
        first_lsn,
        log_id: *log_id,
        prev_mac: *prev_mac,
    };
    let file = files.create_new(&path)?;
    // Blocks reserved now spare every frame's fdatasync a block allocation
    // (10-20% of its latency on ext4 here). The length stays that of the
    // data, so nothing in the format changes.
    if let Err(e) = file.preallocate(segment_bytes_max) {
        tracing::debug!(file = %path.display(), error = %e, "log: no preallocation");
    }
    let written = file
        .write_at(0, &header.encode())
        .and_then(|()| file.sync_all())
        .at(&path)
        .and_then(|()| files.sync_dir(dir));
    if let Err(e) = written {
        // Holds no frame: remove it, so that a retry can create it again.
        let _ = files.remove_durable(&path);
        return Err(e);
    }
    Ok((file, path))
}

/// Writes zeros over `[from, to)` of `file`.
fn write_zeros(file: &dyn WritableFile, from: u64, to: u64) -> io::Result<()> {
    const CHUNK: usize = 64 << 10;
    static ZEROS: [u8; CHUNK] = [0; CHUNK];
    let mut at = from;
    while at < to {
        let n = (to - at).min(CHUNK as u64) as usize;
        file.write_at(at, &ZEROS[..n])?;
        at += n as u64;
    }
    Ok(())
}

/// Truncates a torn tail (or removes a segment whose header is torn).
fn cut_torn_tail(
    files: &Files,
    path: &Path,
    offset: u64,
    segments: &mut Vec<SegmentInfo>,
) -> Result<()> {
    if offset == 0 {
        tracing::warn!(file = %path.display(), "removing a log segment whose creation was cut short");
        files.remove_durable(path)?;
        segments.retain(|s| s.path != path);
        return Ok(());
    }
    tracing::warn!(file = %path.display(), offset, "truncating a torn write at the end of the log");
    let file = files.open_write(path)?;
    file.set_len(offset).at(path)?;
    file.sync_all().at(path)?;
    Ok(())
}
