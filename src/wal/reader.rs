//! Reads the whole log, verifying it, and hands each frame to a visitor.
//!
//! Checks, in order, for every frame: length and CRC (cheap; finds torn
//! writes), the MAC chain (finds forged, dropped, reordered or replayed
//! frames), LSN order (contiguous inside a segment, increasing across
//! segments), and that its entries decode.
//!
//! A bad frame in the last segment is a torn write, and the log ends before
//! it, if no later frame vouches for it: every frame records `synced_lsn`,
//! the highest LSN durable when it was written, so a later frame with
//! `synced_lsn` at or past the bad frame's LSN proves that the bad frame had
//! been synced, and the damage is corruption, not a torn write. Frames after
//! an unvouched bad frame were never synced either. In any other segment a
//! bad frame is corruption.
//!
//! A segment's frames end at the end of the file, or where nothing but zeros
//! follows (the writer zero-fills ahead of its frames). Zeros followed by
//! anything else are a bad frame like any other.

use std::path::{Path, PathBuf};

use super::entry::{self, Entry};
use super::frame::{self, FrameError, Mac, PayloadHeader};
use super::segment::{self, SegmentHeader};
use crate::crypto::SecretKey;
use crate::error::{CorruptionKind, Error, Result};
use crate::format::{
    FRAME_HEADER_LEN, LOG_ID_LEN, LSN_MAX, PAYLOAD_HEADER_LEN, SEGMENT_HEADER_LEN,
};
use crate::fs::Files;

/// A verified frame, as handed to the visitor.
#[derive(Debug)]
pub(crate) struct LogFrame<'a> {
    pub(crate) header: PayloadHeader,
    pub(crate) entries: Vec<Entry<'a>>,
    /// Its MAC, and the MAC of the frame before it in the chain.
    pub(crate) mac: Mac,
    pub(crate) prev_mac: Mac,
}

/// A segment as found by the reader.
#[derive(Debug, Clone)]
pub(crate) struct SegmentInfo {
    pub(crate) path: PathBuf,
    pub(crate) first_lsn: u64,
    /// LSN of its last frame, or `None` if it holds no frame.
    pub(crate) last_lsn: Option<u64>,
    /// Bytes up to the end of its last good frame.
    pub(crate) valid_len: u64,
}

/// Where a torn write left bytes that recovery must cut off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TornTail {
    pub(crate) path: PathBuf,
    /// Offset of the first bad byte; 0 if the segment's header itself is torn.
    pub(crate) offset: u64,
}

/// What the reader found.
#[derive(Debug, Clone)]
pub(crate) struct LogSummary {
    pub(crate) segments: Vec<SegmentInfo>,
    /// LSN of the last good frame, or 0 if the log has none.
    pub(crate) last_lsn: u64,
    /// MAC of the last good frame (or the chain start of an empty log).
    pub(crate) last_mac: Mac,
    /// Commit time of the last good frame (0 if none).
    pub(crate) last_commit_us: u64,
    pub(crate) torn_tail: Option<TornTail>,
}

/// Reads every segment in `dir` and calls `visit` for each verified frame.
pub(crate) fn read_log(
    files: &Files,
    dir: &Path,
    mac_key: &SecretKey,
    log_id: &[u8; LOG_ID_LEN],
    mut visit: impl FnMut(&LogFrame<'_>) -> Result<()>,
) -> Result<LogSummary> {
    let listed = segment::list(files, dir)?;
    let mut summary = LogSummary {
        segments: Vec::with_capacity(listed.len()),
        last_lsn: 0,
        last_mac: [0; 32],
        last_commit_us: 0,
        torn_tail: None,
    };
    for (i, (name_lsn, path)) in listed.iter().enumerate() {
        let is_last = i + 1 == listed.len();
        let bytes = files.read(path)?;
        let header = match SegmentHeader::decode(path, &bytes) {
            Ok(h) => h,
            // A segment whose creation was cut short holds no frame.
            Err(_) if is_last && bytes.len() <= SEGMENT_HEADER_LEN => {
                summary.torn_tail = Some(TornTail {
                    path: path.clone(),
                    offset: 0,
                });
                break;
            }
            Err(e) => return Err(e),
        };
        let bad = |kind| Error::corruption(path, 0, kind);
        if header.log_id != *log_id {
            return Err(bad(CorruptionKind::Malformed(
                "segment of another database",
            )));
        }
        if header.first_lsn != *name_lsn {
            return Err(bad(CorruptionKind::Malformed(
                "segment name and header disagree",
            )));
        }
        if i == 0 {
            summary.last_mac = header.prev_mac;
        } else if header.prev_mac != summary.last_mac {
            return Err(bad(CorruptionKind::MacChain));
        }
        if header.first_lsn >= LSN_MAX {
            return Err(bad(CorruptionKind::Malformed("first LSN out of range")));
        }
        if header.first_lsn <= summary.last_lsn {
            return Err(bad(CorruptionKind::LsnOrder {
                previous: summary.last_lsn,
                found: header.first_lsn,
            }));
        }
        let info = read_segment(
            path,
            &bytes,
            &header,
            mac_key,
            is_last,
            &mut summary,
            &mut visit,
        )?;
        summary.segments.push(info);
    }
    Ok(summary)
}

/// Reads one whole segment held in memory (an archived piece, named
/// `path` in errors): its header must name `log_id`; every frame must check,
/// the first linked to the header's `prev_mac`. A piece is never torn, so
/// a bad frame anywhere is corruption.
pub(crate) fn read_piece(
    path: &Path,
    bytes: &[u8],
    mac_key: &SecretKey,
    log_id: &[u8; LOG_ID_LEN],
    mut visit: impl FnMut(&LogFrame<'_>) -> Result<()>,
) -> Result<SegmentInfo> {
    let header = SegmentHeader::decode(path, bytes)?;
    if header.log_id != *log_id {
        return Err(Error::corruption(
            path,
            0,
            CorruptionKind::Malformed("a piece of another database's log"),
        ));
    }
    let mut summary = LogSummary {
        segments: Vec::new(),
        last_lsn: 0,
        last_mac: header.prev_mac,
        last_commit_us: 0,
        torn_tail: None,
    };
    read_segment(
        path,
        bytes,
        &header,
        mac_key,
        false,
        &mut summary,
        &mut visit,
    )
}

fn read_segment(
    path: &Path,
    bytes: &[u8],
    header: &SegmentHeader,
    mac_key: &SecretKey,
    is_last: bool,
    summary: &mut LogSummary,
    visit: &mut impl FnMut(&LogFrame<'_>) -> Result<()>,
) -> Result<SegmentInfo> {
    let mut at = SEGMENT_HEADER_LEN;
    let mut expected_lsn = header.first_lsn;
    let mut last_lsn = None;
    let mut end = bytes.len();
    while at < bytes.len() {
        if bytes[at..].iter().all(|&b| b == 0) {
            end = at;
            break;
        }
        let corrupt = |offset: usize, kind| Error::corruption(path, offset as u64, kind);
        let raw = match frame::parse(&bytes[at..]) {
            Ok(raw) => raw,
            Err(e) => {
                if is_last && !vouched_after(bytes, at, expected_lsn) {
                    summary.torn_tail = Some(TornTail {
                        path: path.to_path_buf(),
                        offset: at as u64,
                    });
                    break;
                }
                let kind = match e {
                    FrameError::Truncated => CorruptionKind::Truncated,
                    FrameError::Length(n) => CorruptionKind::Length(n),
                    FrameError::Checksum => CorruptionKind::Checksum,
                };
                return Err(corrupt(at, kind));
            }
        };
        if frame::mac(mac_key, &summary.last_mac, raw.payload) != *raw.mac {
            return Err(corrupt(at, CorruptionKind::MacChain));
        }
        let ph = PayloadHeader::decode(raw.payload).expect("parse checked the payload length");
        // expected_lsn <= LSN_MAX: the segment's first LSN is, and each
        // frame's below.
        if ph.lsn != expected_lsn {
            return Err(corrupt(
                at,
                CorruptionKind::LsnOrder {
                    previous: expected_lsn - 1,
                    found: ph.lsn,
                },
            ));
        }
        let entries = entry::decode_all(&raw.payload[PAYLOAD_HEADER_LEN..], ph.entry_count)
            .map_err(|e| {
                let offset = at + FRAME_HEADER_LEN + PAYLOAD_HEADER_LEN + e.offset;
                corrupt(offset, CorruptionKind::Malformed(e.what))
            })?;
        visit(&LogFrame {
            header: ph,
            entries,
            mac: *raw.mac,
            prev_mac: summary.last_mac,
        })?;
        summary.last_mac = *raw.mac;
        summary.last_lsn = ph.lsn;
        summary.last_commit_us = ph.commit_time_us;
        last_lsn = Some(ph.lsn);
        if ph.lsn == LSN_MAX {
            return Err(corrupt(at, CorruptionKind::Malformed("LSN out of range")));
        }
        expected_lsn = ph.lsn + 1;
        at += raw.len;
    }
    Ok(SegmentInfo {
        path: path.to_path_buf(),
        first_lsn: header.first_lsn,
        last_lsn,
        valid_len: summary.torn_tail.as_ref().map_or(end as u64, |t| t.offset),
    })
}

/// Whether a frame after offset `bad_at` proves that the frame with LSN
/// `bad_lsn` had been synced (its `synced_lsn` is at or past `bad_lsn`).
///
/// Candidates are frames whose LSN field is plausible and whose CRC checks
/// out; following each found frame by its length keeps the scan linear.
fn vouched_after(bytes: &[u8], bad_at: usize, bad_lsn: u64) -> bool {
    let mut at = bad_at + 1;
    while at + FRAME_HEADER_LEN + PAYLOAD_HEADER_LEN <= bytes.len() {
        let lsn_field = &bytes[at + FRAME_HEADER_LEN..at + FRAME_HEADER_LEN + 8];
        let lsn = u64::from_le_bytes(lsn_field.try_into().unwrap());
        let plausible = lsn > bad_lsn && lsn - bad_lsn < (1 << 32);
        if plausible && let Ok(raw) = frame::parse(&bytes[at..]) {
            let ph = PayloadHeader::decode(raw.payload).expect("parse checked the length");
            if ph.synced_lsn >= bad_lsn {
                return true;
            }
            at += raw.len;
            continue;
        }
        at += 1;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG_ID: [u8; LOG_ID_LEN] = [3; LOG_ID_LEN];

    /// Writes a segment starting at `first_lsn` holding empty frames with
    /// the given LSNs, MACs and all, as a key holder could.
    fn write_segment(dir: &Path, key: &SecretKey, first_lsn: u64, lsns: &[u64]) {
        let header = SegmentHeader {
            first_lsn,
            log_id: LOG_ID,
            prev_mac: [0; 32],
        };
        let mut bytes = header.encode().to_vec();
        let mut mac = [0; 32];
        for &lsn in lsns {
            let mut payload = Vec::new();
            PayloadHeader {
                lsn,
                commit_time_us: 1,
                synced_lsn: 0,
                entry_count: 0,
            }
            .encode_into(&mut payload);
            mac = frame::encode(key, &mac, &payload, &mut bytes);
        }
        std::fs::write(segment::path(dir, first_lsn), bytes).unwrap();
    }

    /// Found by the `recovery` fuzz target: LSNs at the top of the range
    /// overflowed. They are corruption now, and the writer refuses to pass
    /// the last one.
    #[test]
    fn lsns_at_the_top_of_the_range_are_corruption_not_overflow() {
        let key = SecretKey::from_bytes([5; 32]);
        let files = Files::default();
        let read = |dir: &Path| read_log(&files, dir, &key, &LOG_ID, |_| Ok(()));
        for (first, frames) in [(u64::MAX, vec![]), (LSN_MAX, vec![LSN_MAX])] {
            let dir = tempfile::tempdir().unwrap();
            write_segment(dir.path(), &key, first, &frames);
            match read(dir.path()) {
                Err(Error::Corruption {
                    kind: CorruptionKind::Malformed(_),
                    ..
                }) => {}
                other => panic!("first LSN {first}: {other:?}"),
            }
        }
        let dir = tempfile::tempdir().unwrap();
        write_segment(dir.path(), &key, LSN_MAX - 2, &[LSN_MAX - 2, LSN_MAX - 1]);
        let summary = read(dir.path()).unwrap();
        assert_eq!(summary.last_lsn, LSN_MAX - 1);
        let mut writer = crate::wal::LogWriter::open(
            &files,
            dir.path(),
            LOG_ID,
            key.clone(),
            crate::wal::SegmentOptions {
                bytes_max: 1 << 20,
                zero_fill: false,
            },
            &summary,
            0,
        )
        .unwrap();
        let batch = crate::wal::EncodedBatch::default();
        assert!(matches!(
            writer.append(&[&batch], 2),
            Err(Error::InvalidArgument(_))
        ));
    }
}
