//! Fail-stop under I/O errors, with the fault-injecting file system.
//!
//! PostgreSQL's fsyncgate lesson: after a failed fsync the page cache may
//! have dropped the data and marked it clean, so retrying proves nothing.
//! strongroom refuses every later write until a reopen, and never
//! acknowledges a write that was not durable. These tests check that, and
//! then cut the power, so that "durable" is what the model of the disk says,
//! not what the page cache still holds.

mod common;

use std::sync::{Arc, Barrier};

use common::options;
use strongroom::fs::{Fault, FaultyFileSystem, Op};
use strongroom::{Db, Durability, Error, ScopeState, ShredOptions, TenantId};

fn open_faulty(dir: &std::path::Path, fs: &Arc<FaultyFileSystem>) -> Db {
    Db::open(dir, options().file_system(fs.clone())).expect("open")
}

fn key(i: usize) -> Vec<u8> {
    format!("key-{i:04}").into_bytes()
}

fn value(i: usize) -> Vec<u8> {
    format!("value-{i:04}-{}", "v".repeat(i % 50)).into_bytes()
}

#[test]
fn a_failed_log_fsync_refuses_every_later_write_until_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let fs = FaultyFileSystem::new();
    let db = open_faulty(dir.path(), &fs);
    let tenant = db.tenant(TenantId(1));
    for i in 0..20 {
        tenant.put(&key(i), &value(i)).unwrap();
    }
    fs.fail_once(Op::Sync, ".wal", 1, Fault::Eio);
    let failed = tenant.put(&key(20), &value(20));
    assert!(
        matches!(failed, Err(Error::Io { .. })),
        "the write whose sync failed is not acknowledged: {failed:?}"
    );
    // The disk works again, but the engine does not trust it: fail-stop.
    for i in 21..25 {
        let refused = tenant.put(&key(i), &value(i));
        assert!(matches!(refused, Err(Error::Poisoned)), "{refused:?}");
    }
    assert!(matches!(
        db.tenant(TenantId(2)).put(b"k", b"v"),
        Err(Error::Poisoned)
    ));
    // Reads of what was acknowledged still work.
    assert_eq!(tenant.get(&key(3)).unwrap(), Some(value(3)));
    drop(db);

    // The failed sync never made the frame durable: a power cut loses it.
    fs.apply_power_cut(1).unwrap();
    let db = Db::open(dir.path(), options()).unwrap();
    let tenant = db.tenant(TenantId(1));
    for i in 0..20 {
        assert_eq!(tenant.get(&key(i)).unwrap(), Some(value(i)), "key {i}");
    }
    for i in 21..25 {
        assert_eq!(tenant.get(&key(i)).unwrap(), None, "refused write {i}");
    }
    tenant.put(&key(30), &value(30)).unwrap();
    drop(db);
    let db = Db::open(dir.path(), options()).unwrap();
    assert_eq!(
        db.tenant(TenantId(1)).get(&key(30)).unwrap(),
        Some(value(30))
    );
}

#[test]
fn no_writer_of_a_group_whose_sync_failed_is_acknowledged() {
    const THREADS: usize = 8;
    const PUTS: usize = 60;
    let dir = tempfile::tempdir().unwrap();
    let fs = FaultyFileSystem::new();
    let db = open_faulty(dir.path(), &fs);
    // Some syncs into the run, one fails while eight writers wait on it.
    fs.fail_once(Op::Sync, ".wal", 25, Fault::Eio);
    let start = Barrier::new(THREADS);
    let results: Vec<Vec<(usize, bool)>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let (db, start) = (&db, &start);
                s.spawn(move || {
                    start.wait();
                    let tenant = db.tenant(TenantId(t as u64 + 1));
                    (0..PUTS)
                        .map(|i| (i, tenant.put(&key(i), &value(i)).is_ok()))
                        .collect()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    drop(db);
    let acked: usize = results.iter().flatten().filter(|(_, ok)| *ok).count();
    assert!(acked > 0 && acked < THREADS * PUTS, "acked {acked}");
    for per_thread in &results {
        // Once one write of a thread fails, every later one does too.
        let first_failure = per_thread.iter().position(|(_, ok)| !ok);
        if let Some(at) = first_failure {
            assert!(per_thread[at..].iter().all(|(_, ok)| !ok));
        }
    }
    fs.apply_power_cut(7).unwrap();
    let db = Db::open(dir.path(), options()).unwrap();
    for (t, per_thread) in results.iter().enumerate() {
        let tenant = db.tenant(TenantId(t as u64 + 1));
        for &(i, ok) in per_thread {
            let found = tenant.get(&key(i)).unwrap();
            if ok {
                assert_eq!(found, Some(value(i)), "acknowledged: thread {t} key {i}");
            }
        }
    }
}

#[test]
fn a_full_disk_is_a_typed_error_and_writes_resume_when_space_is_back() {
    let dir = tempfile::tempdir().unwrap();
    let fs = FaultyFileSystem::new();
    // Under SyncInterval the log appends to its segment (no zero fill), so
    // a full disk strikes in the middle of a frame.
    let db = Db::open(
        dir.path(),
        options()
            .file_system(fs.clone())
            .durability(Durability::SyncInterval(std::time::Duration::from_secs(60))),
    )
    .unwrap();
    let tenant = db.tenant(TenantId(1));
    for i in 0..10 {
        tenant.put(&key(i), &value(i)).unwrap();
    }
    // The disk fills up in the middle of a frame.
    fs.fail_from(Op::Write, ".wal", 1, Fault::ShortWrite);
    for i in 10..15 {
        let full = tenant.put(&key(i), &value(i));
        assert!(matches!(full, Err(Error::NoSpace { .. })), "{full:?}");
    }
    // Space is back: the half-written frames were cut off, so the log goes
    // on from its last whole frame without a reopen.
    fs.heal();
    for i in 15..20 {
        tenant.put(&key(i), &value(i)).unwrap();
    }
    drop(db);
    fs.apply_power_cut(3).unwrap();
    let db = Db::open(dir.path(), options()).unwrap();
    let tenant = db.tenant(TenantId(1));
    for i in 0..20 {
        let expected = (!(10..15).contains(&i)).then(|| value(i));
        assert_eq!(tenant.get(&key(i)).unwrap(), expected, "key {i}");
    }
}

#[test]
fn a_frame_written_in_part_over_the_zeros_is_undone_and_writes_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let fs = FaultyFileSystem::new();
    let db = open_faulty(dir.path(), &fs);
    let tenant = db.tenant(TenantId(1));
    for i in 0..5 {
        tenant.put(&key(i), &value(i)).unwrap();
    }
    let segment = common::segments(dir.path()).pop().unwrap();
    let before = std::fs::read(&segment).unwrap();
    assert!(
        before.len() > common::frames_only(&before).len(),
        "zeros ahead"
    );
    // The next frame lands over the synced zeros and is written in part.
    fs.fail_once(Op::Write, ".wal", 1, Fault::ShortWrite);
    let failed = tenant.put(&key(5), &value(5));
    assert!(matches!(failed, Err(Error::NoSpace { .. })), "{failed:?}");
    // Zeros are back where the half frame was: the file is as before.
    assert_eq!(std::fs::read(&segment).unwrap(), before);
    for i in 6..10 {
        tenant.put(&key(i), &value(i)).unwrap();
    }
    drop(db);
    fs.apply_power_cut(5).unwrap();
    let db = Db::open(dir.path(), options()).unwrap();
    let tenant = db.tenant(TenantId(1));
    for i in 0..10 {
        let expected = (i != 5).then(|| value(i));
        assert_eq!(tenant.get(&key(i)).unwrap(), expected, "key {i}");
    }
}

#[test]
fn a_full_disk_when_the_log_zero_fills_ahead_is_a_typed_error_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let fs = FaultyFileSystem::new();
    let db = Db::open(
        dir.path(),
        options().file_system(fs.clone()).segment_bytes_max(8 << 20),
    )
    .unwrap();
    let tenant = db.tenant(TenantId(1));
    let big = |i: usize| vec![i as u8; 60 << 10];
    let segment = common::segments(dir.path()).pop().unwrap();
    let room = || {
        let bytes = std::fs::read(&segment).unwrap();
        bytes.len() - common::frames_only(&bytes).len()
    };
    // Write until the next record no longer fits in the zeros synced ahead.
    let mut i = 0;
    while room() > (61 << 10) {
        tenant.put(&key(i), &big(i)).unwrap();
        i += 1;
    }
    let acked = i;
    let len_before = std::fs::metadata(&segment).unwrap().len();
    // The disk fills up in the middle of the next fill.
    fs.fail_from(Op::Write, ".wal", 1, Fault::ShortWrite);
    for j in acked..acked + 3 {
        let full = tenant.put(&key(j), &big(j));
        assert!(matches!(full, Err(Error::NoSpace { .. })), "{full:?}");
    }
    // The failed fill was cut back: the zeros and frames are as they were.
    assert_eq!(std::fs::metadata(&segment).unwrap().len(), len_before);
    fs.heal();
    for j in acked + 3..acked + 6 {
        tenant.put(&key(j), &big(j)).unwrap();
    }
    drop(db);
    fs.apply_power_cut(11).unwrap();
    let db = Db::open(dir.path(), options()).unwrap();
    let tenant = db.tenant(TenantId(1));
    for j in 0..acked + 6 {
        let expected = (!(acked..acked + 3).contains(&j)).then(|| big(j));
        assert_eq!(tenant.get(&key(j)).unwrap(), expected, "key {j}");
    }
}

#[test]
fn a_full_disk_when_the_log_needs_a_new_segment_is_survivable() {
    let dir = tempfile::tempdir().unwrap();
    let fs = FaultyFileSystem::new();
    let db = Db::open(
        dir.path(),
        options().file_system(fs.clone()).segment_bytes_max(4096),
    )
    .unwrap();
    let tenant = db.tenant(TenantId(1));
    fs.fail_from(Op::Open, ".wal", 1, Fault::NoSpace);
    let mut acked = Vec::new();
    let mut refused = 0;
    for i in 0..200 {
        match tenant.put(&key(i), &value(i)) {
            Ok(_) => acked.push(i),
            Err(Error::NoSpace { .. }) => refused += 1,
            Err(e) => panic!("put {i}: {e}"),
        }
    }
    assert!(refused > 0, "the log never needed a new segment");
    fs.heal();
    tenant.put(&key(500), &value(500)).unwrap();
    acked.push(500);
    drop(db);
    fs.apply_power_cut(11).unwrap();
    let db = Db::open(dir.path(), options()).unwrap();
    let tenant = db.tenant(TenantId(1));
    for i in acked {
        assert_eq!(tenant.get(&key(i)).unwrap(), Some(value(i)), "key {i}");
    }
}

#[test]
fn a_failed_key_creation_acknowledges_nothing_and_a_retry_works() {
    let dir = tempfile::tempdir().unwrap();
    let fs = FaultyFileSystem::new();
    let db = open_faulty(dir.path(), &fs);
    db.tenant(TenantId(1)).put(b"first", b"tenant").unwrap();
    // Tenant 2's keys go into a new shard file: its creation fails.
    fs.fail_once(Op::Sync, "keyring", 1, Fault::Eio);
    let failed = db.tenant(TenantId(2)).put(b"k", b"v");
    assert!(matches!(failed, Err(Error::Io { .. })), "{failed:?}");
    db.tenant(TenantId(2)).put(b"k", b"v2").unwrap();
    drop(db);
    fs.apply_power_cut(5).unwrap();
    let db = Db::open(dir.path(), options()).unwrap();
    assert_eq!(
        db.tenant(TenantId(2)).get(b"k").unwrap(),
        Some(b"v2".to_vec())
    );
    assert_eq!(
        db.tenant(TenantId(1)).get(b"first").unwrap(),
        Some(b"tenant".to_vec())
    );
}

#[test]
fn a_shred_whose_keyring_write_fails_stays_sealed_and_completes_later() {
    let dir = tempfile::tempdir().unwrap();
    let fs = FaultyFileSystem::new();
    let db = open_faulty(dir.path(), &fs);
    db.tenant(TenantId(1)).put(b"k", b"doomed").unwrap();
    db.tenant(TenantId(2)).put(b"k", b"kept").unwrap();
    // The rewrite of tenant 1's shard cannot be renamed into place.
    fs.fail_from(Op::Rename, "tenants", 1, Fault::Eio);
    let shred = db.shred_tenant(TenantId(1), ShredOptions::immediate());
    assert!(shred.is_err(), "{shred:?}");
    // Not destroyed, but not readable either: a failed shred fails closed.
    assert!(matches!(
        db.tenant(TenantId(1)).state().unwrap(),
        ScopeState::Sealed { .. }
    ));
    assert!(db.tenant(TenantId(1)).get(b"k").is_err());
    assert_eq!(
        db.tenant(TenantId(2)).get(b"k").unwrap(),
        Some(b"kept".to_vec())
    );
    fs.heal();
    db.run_maintenance().unwrap();
    assert_eq!(
        db.tenant(TenantId(1)).state().unwrap(),
        ScopeState::Shredded
    );
    drop(db);
    fs.apply_power_cut(9).unwrap();
    let db = Db::open(dir.path(), options()).unwrap();
    assert!(matches!(
        db.tenant(TenantId(1)).get(b"k"),
        Err(Error::Shredded { .. })
    ));
    assert_eq!(
        db.tenant(TenantId(2)).get(b"k").unwrap(),
        Some(b"kept".to_vec())
    );
}
