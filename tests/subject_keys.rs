//! Subject keys created in groups: by concurrent first writes, and by a batch
//! that imports many new subjects at once. Every key is durable before any
//! frame sealed under it: a power cut (the fault-injecting file system drops
//! whatever was not synced) loses no acknowledged write; a shard whose sync
//! fails fails the batch that needed it, which leaves nothing behind, and
//! the same batch succeeds once the disk is back.

mod common;

use std::sync::{Arc, Barrier};

use common::options;
use strongroom::fs::{Fault, FaultyFileSystem, Op};
use strongroom::{Db, Error, SubjectId, TenantId, WriteBatch};

fn value(subject: u64) -> Vec<u8> {
    format!("record of subject {subject}").into_bytes()
}

fn open_faulty(dir: &std::path::Path, fs: &Arc<FaultyFileSystem>) -> Db {
    Db::open(dir, options().file_system(fs.clone())).expect("open")
}

fn import(db: &Db, subjects: std::ops::Range<u64>) -> strongroom::Result<strongroom::Lsn> {
    let mut batch = WriteBatch::new();
    for s in subjects {
        batch.put_subject(SubjectId(s), b"record", value(s));
        batch.put_subject(SubjectId(s), b"second", b"x");
    }
    db.tenant(TenantId(1)).write(batch)
}

#[test]
fn an_imported_batch_of_new_subjects_survives_a_power_cut_whole() {
    let dir = tempfile::tempdir().unwrap();
    let fs = FaultyFileSystem::new();
    let db = open_faulty(dir.path(), &fs);
    db.tenant(TenantId(1)).put(b"own", b"tenant").unwrap();
    // 3,000 new subjects over every one of the tenant's 1,024 subject
    // shards, some already holding keys.
    import(&db, 0..10).unwrap();
    import(&db, 10..3_010).unwrap();
    drop(db);
    fs.apply_power_cut(11).unwrap();

    let db = Db::open(dir.path(), options()).unwrap();
    let tenant = db.tenant(TenantId(1));
    for s in 0..3_010 {
        let subject = tenant.subject(SubjectId(s));
        assert_eq!(
            subject.get(b"record").unwrap(),
            Some(value(s)),
            "subject {s}"
        );
        assert_eq!(subject.get(b"second").unwrap().as_deref(), Some(&b"x"[..]));
    }
}

#[test]
fn a_failed_shard_sync_fails_the_import_and_the_retry_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let fs = FaultyFileSystem::new();
    let db = open_faulty(dir.path(), &fs);
    let tenant = db.tenant(TenantId(1));
    tenant.put(b"own", b"tenant").unwrap();
    // Every subject shard exists, so the import appends to all of them.
    import(&db, 0..1_024).unwrap();
    // Subject shard 7's next sync fails.
    fs.fail_once(Op::Sync, "0007.keys", 1, Fault::Eio);
    let failed = import(&db, 2_000..4_000);
    assert!(matches!(failed, Err(Error::Io { .. })), "{failed:?}");
    for s in [2_000, 2_055, 3_999] {
        assert_eq!(tenant.subject(SubjectId(s)).get(b"record").unwrap(), None);
    }
    // The disk is back: the same batch goes through.
    import(&db, 2_000..4_000).unwrap();
    drop(db);
    fs.apply_power_cut(3).unwrap();
    let db = Db::open(dir.path(), options()).unwrap();
    let tenant = db.tenant(TenantId(1));
    for s in (0..1_024).chain(2_000..4_000) {
        assert_eq!(
            tenant.subject(SubjectId(s)).get(b"record").unwrap(),
            Some(value(s)),
            "subject {s}"
        );
    }
}

#[test]
fn concurrent_first_writes_share_key_creations_and_lose_nothing_in_a_power_cut() {
    const THREADS: u64 = 8;
    const PER_THREAD: u64 = 150;
    let dir = tempfile::tempdir().unwrap();
    let fs = FaultyFileSystem::new();
    let db = open_faulty(dir.path(), &fs);
    db.tenant(TenantId(1)).put(b"own", b"tenant").unwrap();
    let start = Barrier::new(THREADS as usize);
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let (db, start) = (&db, &start);
            s.spawn(move || {
                start.wait();
                let tenant = db.tenant(TenantId(1));
                for i in 0..PER_THREAD {
                    // Neighbouring threads share subjects: some first writes
                    // race for the same new key.
                    let subject = (t / 2) * PER_THREAD + i;
                    tenant
                        .subject(SubjectId(subject))
                        .put(format!("by {t}").as_bytes(), &value(subject))
                        .unwrap();
                }
            });
        }
    });
    drop(db);
    fs.apply_power_cut(5).unwrap();
    let db = Db::open(dir.path(), options()).unwrap();
    let tenant = db.tenant(TenantId(1));
    for t in 0..THREADS {
        for i in 0..PER_THREAD {
            let subject = (t / 2) * PER_THREAD + i;
            assert_eq!(
                tenant
                    .subject(SubjectId(subject))
                    .get(format!("by {t}").as_bytes())
                    .unwrap(),
                Some(value(subject)),
                "thread {t}, subject {subject}"
            );
        }
    }
}
