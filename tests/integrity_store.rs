//! The store is bound to its database and to its place in the log: a store
//! of another database, or of another history of this one, is refused at
//! open with a typed error naming the store; an older store whose log still
//! reaches back is brought level by replay.

mod common;

use std::path::Path;
use std::sync::Arc;

use common::{copy_dir, frames, open, options, segments, snapshot_files};
use strongroom::format::{FRAME_HEADER_LEN, KEYRING_DIR, STORE_DIR, WAL_DIR};
use strongroom::{Clock, CorruptionKind, Db, Error, ManualClock, SystemClock, TenantId};

fn replace_store(dir: &Path, with: &Path) {
    std::fs::remove_dir_all(dir.join(STORE_DIR)).unwrap();
    copy_dir(with, &dir.join(STORE_DIR));
}

fn write_n(dir: &Path, tenant: u64, from: usize, n: usize) {
    let db = open(dir);
    let t = db.tenant(TenantId(tenant));
    for i in from..from + n {
        t.put(format!("k{i}").as_bytes(), format!("v{i}").as_bytes())
            .unwrap();
    }
    db.close().unwrap();
}

/// Asserts open fails with `kind` on the store, and changes no keyring or
/// log file on the way.
fn assert_refused(dir: &Path, want: fn(&CorruptionKind) -> bool) {
    let before = [KEYRING_DIR, WAL_DIR].map(|d| snapshot_files(&dir.join(d)));
    match Db::open(dir, options()) {
        Err(Error::Corruption { file, kind, .. }) if want(&kind) => {
            assert_eq!(file, dir.join(STORE_DIR), "the error names the store");
        }
        Err(other) => panic!("refused for the wrong reason: {other}"),
        Ok(_) => panic!("the store was accepted"),
    }
    let after = [KEYRING_DIR, WAL_DIR].map(|d| snapshot_files(&dir.join(d)));
    assert_eq!(before, after, "a refused open changed the keyring or log");
}

#[test]
fn a_store_of_another_database_under_the_same_master_key_is_refused() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    // Same master key, same tenants, same number of commits.
    write_n(a.path(), 1, 0, 20);
    write_n(b.path(), 1, 0, 20);
    replace_store(a.path(), &b.path().join(STORE_DIR));
    assert_refused(a.path(), |k| *k == CorruptionKind::ForeignStore);
}

#[test]
fn a_store_of_another_history_of_the_same_database_is_refused() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    write_n(a.path(), 1, 0, 10);
    copy_dir(a.path(), b.path());
    // The two copies go on differently, the same number of commits each.
    write_n(a.path(), 1, 10, 5);
    write_n(b.path(), 2, 10, 5);
    replace_store(a.path(), &b.path().join(STORE_DIR));
    assert_refused(a.path(), |k| {
        *k == CorruptionKind::StoreDiverged { lsn: 15 }
    });
}

#[test]
fn an_older_store_is_brought_level_while_the_log_reaches_back() {
    let (dir, old) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    write_n(dir.path(), 1, 0, 10);
    copy_dir(&dir.path().join(STORE_DIR), old.path());
    write_n(dir.path(), 1, 10, 10);
    replace_store(dir.path(), old.path());
    let db = open(dir.path());
    assert_eq!(db.last_lsn().0, 20);
    let t = db.tenant(TenantId(1));
    for i in 0..20 {
        assert_eq!(
            t.get(format!("k{i}").as_bytes()).unwrap(),
            Some(format!("v{i}").into_bytes())
        );
    }
}

#[test]
fn an_older_store_is_refused_once_the_log_no_longer_reaches_back() {
    let (dir, old) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let small = || options().segment_bytes_max(4096);
    {
        let db = Db::open(dir.path(), small()).unwrap();
        db.tenant(TenantId(1)).put(b"first", b"1").unwrap();
    }
    copy_dir(&dir.path().join(STORE_DIR), old.path());
    {
        let db = Db::open(dir.path(), small()).unwrap();
        let t = db.tenant(TenantId(1));
        for i in 0..200 {
            t.put(format!("k{i}").as_bytes(), &[7; 100]).unwrap();
        }
        db.flush().unwrap();
    }
    assert!(
        segments(dir.path()).len() < 10,
        "checkpoints removed old segments"
    );
    replace_store(dir.path(), old.path());
    match Db::open(dir.path(), small()) {
        Err(Error::Corruption {
            kind: CorruptionKind::LogGap { applied: 1, .. },
            ..
        }) => {}
        other => panic!("expected LogGap, got {:?}", other.err()),
    }
}

/// Commit time of the last frame in the log, if any frame is left.
fn last_commit_us(dir: &Path) -> Option<u64> {
    segments(dir).iter().rev().find_map(|path| {
        let bytes = std::fs::read(path).unwrap();
        let (at, _) = *frames(&bytes).last()?;
        let field = at + FRAME_HEADER_LEN + 8;
        Some(u64::from_le_bytes(
            bytes[field..field + 8].try_into().unwrap(),
        ))
    })
}

#[test]
fn commit_times_never_go_back_across_a_reopen_with_no_frame_left_in_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let small = || options().segment_bytes_max(4096);
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut noise = || -> Vec<u8> {
        (0..1000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    };
    {
        // Fill the first segment to its size limit, no further.
        let db = Db::open(dir.path(), small()).unwrap();
        let t = db.tenant(TenantId(1));
        for i in 0.. {
            t.put(format!("k{i}").as_bytes(), &noise()).unwrap();
            let segment = std::fs::read(&segments(dir.path())[0]).unwrap();
            if common::frames_only(&segment).len() >= 4096 {
                break;
            }
        }
        assert_eq!(segments(dir.path()).len(), 1);
    }
    let before = last_commit_us(dir.path()).expect("frames in the log");
    {
        // The full segment is sealed at open and removed by the checkpoint.
        let db = Db::open(dir.path(), small()).unwrap();
        db.flush().unwrap();
    }
    assert_eq!(last_commit_us(dir.path()), None, "no frame left in the log");
    let hour_ago = SystemClock.now_us() - 3_600_000_000;
    let db = Db::open(
        dir.path(),
        small().clock(Arc::new(ManualClock::at(hour_ago))),
    )
    .unwrap();
    db.tenant(TenantId(1)).put(b"c", b"after").unwrap();
    drop(db);
    let after = last_commit_us(dir.path()).unwrap();
    assert!(
        after >= before,
        "commit time went back: {after} after {before}"
    );
}
