//! Damage and tampering: a torn tail is cut off; anything else is a typed
//! error naming the file and offset, never a wrong value.

mod common;

use std::path::Path;

use common::{fix_crc, frames, frames_only, open, segments};
use strongroom::format::{FRAME_HEADER_LEN, OP_DELETE, OP_PUT, PAYLOAD_HEADER_LEN};
use strongroom::{CorruptionKind, Db, Error, TenantId};

/// A database with `n` frames (one put each), closed.
fn database_with_frames(dir: &Path, n: u32) {
    let db = open(dir);
    for i in 0..n {
        db.tenant(TenantId(1))
            .put(&i.to_le_bytes(), format!("value {i}").as_bytes())
            .unwrap();
    }
}

fn expect_corruption(dir: &Path) -> (std::path::PathBuf, u64, CorruptionKind) {
    match Db::open(dir, common::options()) {
        Err(Error::Corruption { file, offset, kind }) => (file, offset, kind),
        Err(other) => panic!("expected corruption, got {other}"),
        Ok(_) => panic!("expected corruption, the database opened"),
    }
}

#[test]
fn torn_tail_is_truncated_on_recovery() {
    let dir = tempfile::tempdir().unwrap();
    database_with_frames(dir.path(), 10);
    let segment = segments(dir.path()).pop().unwrap();
    let clean = frames_only(&std::fs::read(&segment).unwrap());
    // A torn write: the first part of one more frame.
    let (at, len) = frames(&clean)[3];
    let mut torn = clean.clone();
    torn.extend_from_slice(&clean[at..at + len / 2]);
    std::fs::write(&segment, &torn).unwrap();

    let db = open(dir.path());
    assert_eq!(
        std::fs::read(&segment).unwrap(),
        clean,
        "the torn bytes are cut off"
    );
    for i in 0..10u32 {
        assert!(
            db.tenant(TenantId(1))
                .get(&i.to_le_bytes())
                .unwrap()
                .is_some()
        );
    }
    db.tenant(TenantId(1)).put(b"after", b"recovery").unwrap();
    drop(db);
    let db = open(dir.path());
    assert_eq!(
        db.tenant(TenantId(1)).get(b"after").unwrap(),
        Some(b"recovery".to_vec())
    );
}

#[test]
fn a_torn_last_frame_is_cut_and_its_lsn_is_not_reused() {
    let dir = tempfile::tempdir().unwrap();
    database_with_frames(dir.path(), 5);
    let segment = segments(dir.path()).pop().unwrap();
    let bytes = std::fs::read(&segment).unwrap();
    let (at, len) = *frames(&bytes).last().unwrap();
    std::fs::write(&segment, &bytes[..at + len - 3]).unwrap();
    // The store had applied (and flushed, at close) frame 5 already; the
    // log restarts after it rather than reusing its LSN.
    let db = open(dir.path());
    assert_eq!(db.last_lsn().0, 5);
    // Reopening before any write resumes the empty segment started after 5.
    drop(db);
    let db = open(dir.path());
    assert_eq!(db.last_lsn().0, 5);
    let lsn = db.tenant(TenantId(1)).put(b"x", b"y").unwrap();
    assert_eq!(lsn.0, 6);
    drop(db);
    let db = open(dir.path());
    assert_eq!(
        db.tenant(TenantId(1)).get(b"x").unwrap(),
        Some(b"y".to_vec())
    );
}

#[test]
fn a_flipped_bit_inside_the_log_names_the_file_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    database_with_frames(dir.path(), 20);
    let segment = segments(dir.path()).pop().unwrap();
    let mut bytes = std::fs::read(&segment).unwrap();
    let (at, len) = frames(&bytes)[7];
    bytes[at + len / 2] ^= 0x10;
    std::fs::write(&segment, &bytes).unwrap();
    let before = common::snapshot_files(dir.path());

    let (file, offset, kind) = expect_corruption(dir.path());
    assert_eq!(file, segment);
    assert_eq!(offset, at as u64);
    assert_eq!(kind, CorruptionKind::Checksum);
    let after = common::snapshot_files(dir.path());
    assert_eq!(
        before.get(&segment),
        after.get(&segment),
        "the log is left as it was"
    );
}

#[test]
fn a_flipped_bit_in_a_frame_length_is_not_mistaken_for_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    database_with_frames(dir.path(), 20);
    let segment = segments(dir.path()).pop().unwrap();
    let mut bytes = std::fs::read(&segment).unwrap();
    let (at, _) = frames(&bytes)[12];
    bytes[at + 2] ^= 0x01; // length grows by 64 KiB, past the end of the file
    std::fs::write(&segment, &bytes).unwrap();
    let (file, offset, _) = expect_corruption(dir.path());
    assert_eq!((file, offset), (segment, at as u64));
}

#[test]
fn a_frame_removed_from_the_middle_breaks_the_mac_chain() {
    let dir = tempfile::tempdir().unwrap();
    database_with_frames(dir.path(), 10);
    let segment = segments(dir.path()).pop().unwrap();
    let bytes = std::fs::read(&segment).unwrap();
    let (at, len) = frames(&bytes)[4];
    let mut spliced = bytes[..at].to_vec();
    spliced.extend_from_slice(&bytes[at + len..]);
    std::fs::write(&segment, &spliced).unwrap();
    let (file, offset, kind) = expect_corruption(dir.path());
    assert_eq!(
        (file, offset, kind),
        (segment, at as u64, CorruptionKind::MacChain)
    );
}

#[test]
fn frames_swapped_or_replayed_break_the_mac_chain() {
    let dir = tempfile::tempdir().unwrap();
    database_with_frames(dir.path(), 6);
    let segment = segments(dir.path()).pop().unwrap();
    let bytes = frames_only(&std::fs::read(&segment).unwrap());
    let f = frames(&bytes);
    // Replay frame 2 at the end.
    let mut replayed = bytes.clone();
    replayed.extend_from_slice(&bytes[f[2].0..f[2].0 + f[2].1]);
    std::fs::write(&segment, &replayed).unwrap();
    let (_, offset, kind) = expect_corruption(dir.path());
    assert_eq!(
        (offset, kind),
        (bytes.len() as u64, CorruptionKind::MacChain)
    );
    // Swap frames 1 and 2.
    let mut swapped = bytes[..f[1].0].to_vec();
    swapped.extend_from_slice(&bytes[f[2].0..f[2].0 + f[2].1]);
    swapped.extend_from_slice(&bytes[f[1].0..f[1].0 + f[1].1]);
    swapped.extend_from_slice(&bytes[f[3].0..]);
    std::fs::write(&segment, &swapped).unwrap();
    let (_, offset, kind) = expect_corruption(dir.path());
    assert_eq!((offset, kind), (f[1].0 as u64, CorruptionKind::MacChain));
}

#[test]
fn an_operation_rewritten_with_its_crc_recomputed_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    database_with_frames(dir.path(), 8);
    let segment = segments(dir.path()).pop().unwrap();
    let mut bytes = std::fs::read(&segment).unwrap();
    let (at, _) = frames(&bytes)[3];
    // The first entry's op byte: tenant(8) kind(1) subject(8) version(4).
    let op_at = at + FRAME_HEADER_LEN + PAYLOAD_HEADER_LEN + 21;
    assert_eq!(bytes[op_at], OP_PUT);
    bytes[op_at] = OP_DELETE;
    fix_crc(&mut bytes, at);
    std::fs::write(&segment, &bytes).unwrap();
    let (file, offset, kind) = expect_corruption(dir.path());
    assert_eq!(
        (file, offset, kind),
        (segment, at as u64, CorruptionKind::MacChain)
    );
}

#[test]
fn a_segment_of_another_database_is_refused() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    database_with_frames(a.path(), 3);
    database_with_frames(b.path(), 3);
    let from_b = segments(b.path()).pop().unwrap();
    let into_a = segments(a.path()).pop().unwrap();
    std::fs::copy(&from_b, &into_a).unwrap();
    let (file, _, kind) = expect_corruption(a.path());
    assert_eq!(file, into_a);
    assert_eq!(
        kind,
        CorruptionKind::Malformed("segment of another database")
    );
}

#[test]
fn a_log_that_lost_unapplied_frames_is_a_gap_not_silence() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = Db::open(dir.path(), common::options().segment_bytes_max(4096)).unwrap();
        for i in 0..200u32 {
            db.tenant(TenantId(1))
                .put(&i.to_le_bytes(), &[1u8; 100])
                .unwrap();
        }
        // Dropping flushes the store; the test then loses both the store and
        // the oldest segment, so the log no longer starts at LSN 1.
    }
    std::fs::remove_dir_all(dir.path().join("store")).unwrap();
    let oldest = segments(dir.path()).into_iter().next().unwrap();
    std::fs::remove_file(&oldest).unwrap();
    let (_, _, kind) = expect_corruption(dir.path());
    assert!(
        matches!(kind, CorruptionKind::LogGap { applied: 0, .. }),
        "{kind:?}"
    );
}

#[test]
fn the_log_is_zero_filled_ahead_and_a_stray_byte_there_is_cut_like_a_torn_write() {
    let dir = tempfile::tempdir().unwrap();
    database_with_frames(dir.path(), 5);
    let segment = segments(dir.path()).pop().unwrap();
    let bytes = std::fs::read(&segment).unwrap();
    let data = frames_only(&bytes);
    // Under SyncEveryCommit the writer syncs zeros ahead of its frames.
    assert!(bytes.len() > data.len(), "zeros follow the frames");
    assert!(bytes[data.len()..].iter().all(|&b| b == 0));
    // A stray byte among the zeros is a bad frame at the end of the last
    // segment that nothing vouches for: cut off, and nothing is lost.
    let mut stray = bytes.clone();
    stray[data.len() + 100] = 0x40;
    std::fs::write(&segment, &stray).unwrap();
    let db = open(dir.path());
    assert_eq!(std::fs::read(&segment).unwrap(), data);
    for i in 0..5u32 {
        assert_eq!(
            db.tenant(TenantId(1)).get(&i.to_le_bytes()).unwrap(),
            Some(format!("value {i}").into_bytes())
        );
    }
    assert_eq!(db.last_lsn().0, 5);
}

#[test]
fn a_zeroed_frame_with_frames_after_it_is_not_the_end_of_the_log() {
    let dir = tempfile::tempdir().unwrap();
    database_with_frames(dir.path(), 6);
    let segment = segments(dir.path()).pop().unwrap();
    let mut bytes = std::fs::read(&segment).unwrap();
    let f = frames(&bytes);
    // Zeros where frame 2 was: the frames after it (vouching for it, as
    // each commit synced) make this corruption, not a clean end.
    bytes[f[2].0..f[2].0 + f[2].1].fill(0);
    std::fs::write(&segment, &bytes).unwrap();
    let (_, offset, _) = expect_corruption(dir.path());
    assert_eq!(offset, f[2].0 as u64);
}
