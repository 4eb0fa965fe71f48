//! Keys and values round-trip, across reopen, for many tenants and subjects;
//! batches, deletes, scans, snapshots, key sources and durability modes.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{open, options};
use rand::{Rng, SeedableRng};
use strongroom::{
    Db, Durability, Error, MasterKeySource, Options, SubjectId, TenantId, WriteBatch,
};

type Model = BTreeMap<(u64, Option<u64>), BTreeMap<Vec<u8>, Vec<u8>>>;

fn write_random(db: &Db, model: &mut Model, rng: &mut impl Rng, ops: usize) {
    for _ in 0..ops {
        let tenant = rng.random_range(0..40u64);
        let subject = rng.random_bool(0.5).then(|| rng.random_range(0..6u64));
        let key = format!("key-{}", rng.random_range(0..30)).into_bytes();
        let len = match rng.random_range(0..10) {
            0 => 0,
            1 => rng.random_range(1000..20_000),
            _ => rng.random_range(1..300),
        };
        let value: Vec<u8> = (0..len).map(|_| rng.random()).collect();
        let t = db.tenant(TenantId(tenant));
        let scope = model.entry((tenant, subject)).or_default();
        if rng.random_bool(0.15) {
            match subject {
                None => t.delete(&key).unwrap(),
                Some(s) => t.subject(SubjectId(s)).delete(&key).unwrap(),
            };
            scope.remove(&key);
        } else {
            match subject {
                None => t.put(&key, &value).unwrap(),
                Some(s) => t.subject(SubjectId(s)).put(&key, &value).unwrap(),
            };
            scope.insert(key, value);
        }
    }
}

fn check(db: &Db, model: &Model) {
    for ((tenant, subject), records) in model {
        let t = db.tenant(TenantId(*tenant));
        let scanned: BTreeMap<Vec<u8>, Vec<u8>> = match subject {
            None => t.scan().unwrap().map(Result::unwrap).collect(),
            Some(s) => t
                .subject(SubjectId(*s))
                .scan()
                .unwrap()
                .map(Result::unwrap)
                .collect(),
        };
        assert_eq!(
            &scanned, records,
            "scan of tenant {tenant} subject {subject:?}"
        );
        for (key, value) in records {
            let got = match subject {
                None => t.get(key).unwrap(),
                Some(s) => t.subject(SubjectId(*s)).get(key).unwrap(),
            };
            assert_eq!(got.as_ref(), Some(value));
        }
    }
}

#[test]
fn records_of_many_tenants_and_subjects_round_trip_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut model = Model::new();
    {
        let db = open(dir.path());
        write_random(&db, &mut model, &mut rng, 3000);
        check(&db, &model);
    }
    let db = open(dir.path());
    check(&db, &model);
    write_random(&db, &mut model, &mut rng, 500);
    drop(db);
    check(&open(dir.path()), &model);
}

#[test]
fn a_batch_spans_the_tenant_and_its_subjects_and_deletes() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let t = db.tenant(TenantId(1));
    t.put(b"gone", b"soon").unwrap();
    let mut batch = WriteBatch::new();
    batch
        .put(b"a".to_vec(), b"1".to_vec())
        .put_subject(SubjectId(5), b"a".to_vec(), b"5".to_vec())
        .put_subject(SubjectId(6), b"b".to_vec(), b"6".to_vec())
        .delete(b"gone".to_vec());
    assert_eq!(batch.len(), 4);
    let lsn = t.write(batch).unwrap();
    assert_eq!(db.last_lsn(), lsn);
    assert_eq!(t.get(b"a").unwrap(), Some(b"1".to_vec()));
    assert_eq!(t.get(b"gone").unwrap(), None);
    assert_eq!(
        t.subject(SubjectId(5)).get(b"a").unwrap(),
        Some(b"5".to_vec())
    );
    assert_eq!(
        t.subject(SubjectId(6)).get(b"b").unwrap(),
        Some(b"6".to_vec())
    );
    assert_eq!(
        t.subject(SubjectId(6)).get(b"a").unwrap(),
        None,
        "scopes are apart"
    );
    assert_eq!(
        t.scan().unwrap().count(),
        1,
        "a tenant scan covers its own scope only"
    );
    // A subject handle's batch targets that subject by default.
    let mut batch = WriteBatch::new();
    batch.put(b"c".to_vec(), b"7".to_vec());
    t.subject(SubjectId(7)).write(batch).unwrap();
    assert_eq!(
        t.subject(SubjectId(7)).get(b"c").unwrap(),
        Some(b"7".to_vec())
    );
    assert_eq!(
        t.write(WriteBatch::new()).unwrap(),
        db.last_lsn(),
        "empty batch writes nothing"
    );
}

#[test]
fn a_snapshot_does_not_see_later_writes() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let t = db.tenant(TenantId(3));
    t.put(b"k", b"old").unwrap();
    t.subject(SubjectId(1)).put(b"s", b"old").unwrap();
    let snapshot = t.snapshot().unwrap();
    t.put(b"k", b"new").unwrap();
    t.put(b"later", b"x").unwrap();
    t.subject(SubjectId(1)).delete(b"s").unwrap();
    assert_eq!(snapshot.get(b"k").unwrap(), Some(b"old".to_vec()));
    assert_eq!(snapshot.get(b"later").unwrap(), None);
    assert_eq!(snapshot.scan().unwrap().count(), 1);
    assert_eq!(
        snapshot.subject(SubjectId(1)).unwrap().get(b"s").unwrap(),
        Some(b"old".to_vec())
    );
    assert_eq!(t.get(b"k").unwrap(), Some(b"new".to_vec()));
}

#[test]
fn concurrent_writers_share_group_commits_and_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    std::thread::scope(|s| {
        for thread in 0..8u64 {
            let db = &db;
            s.spawn(move || {
                let t = db.tenant(TenantId(thread % 3));
                for i in 0..200u32 {
                    t.put(format!("{thread}-{i}").as_bytes(), &i.to_le_bytes())
                        .unwrap();
                }
            });
        }
    });
    assert_eq!(db.last_lsn().0, 8 * 200, "one LSN per commit");
    drop(db);
    let db = open(dir.path());
    for thread in 0..8u64 {
        for i in 0..200u32 {
            let got = db
                .tenant(TenantId(thread % 3))
                .get(format!("{thread}-{i}").as_bytes());
            assert_eq!(got.unwrap(), Some(i.to_le_bytes().to_vec()));
        }
    }
}

#[test]
fn small_segments_roll_and_flush_removes_the_redundant_ones() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), options().segment_bytes_max(8 << 10)).unwrap();
    let t = db.tenant(TenantId(1));
    for i in 0..500u32 {
        t.put(&i.to_le_bytes(), &[7u8; 200]).unwrap();
    }
    // The background checkpoint may already have removed sealed segments;
    // the newest segment's name (its first LSN) shows how far the log rolled.
    let newest = common::segments(dir.path()).pop().unwrap();
    let first_lsn: u64 = newest
        .file_stem()
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        first_lsn > 400,
        "the log rolled: newest segment starts at {first_lsn}"
    );
    db.flush().unwrap();
    assert_eq!(
        common::segments(dir.path()).len(),
        1,
        "the store holds all sealed segments"
    );
    t.put(b"after", b"flush").unwrap();
    drop(db);
    let db = Db::open(dir.path(), options().segment_bytes_max(8 << 10)).unwrap();
    let t = db.tenant(TenantId(1));
    assert_eq!(t.scan().unwrap().count(), 501);
    assert_eq!(t.get(&499u32.to_le_bytes()).unwrap(), Some(vec![7u8; 200]));
}

/// Bytes of the store's table files: what its memtables flushed so far.
fn table_bytes(db: &Db) -> u64 {
    let bytes = db.store_property("rocksdb.live-sst-files-size").unwrap();
    bytes.trim().parse().unwrap()
}

#[test]
fn the_memtable_size_decides_when_the_store_flushes_on_its_own() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    // 2,000 incompressible records of 2 KiB: 4 MiB, far below the default
    // memtable and 16 times the small one.
    let values: Vec<Vec<u8>> = (0..2000)
        .map(|_| (0..2048).map(|_| rng.random()).collect())
        .collect();
    let write = |db: &Db| {
        let t = db.tenant(TenantId(1));
        for (i, value) in values.iter().enumerate() {
            t.put(&(i as u32).to_le_bytes(), value).unwrap();
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), options()).unwrap();
    write(&db);
    // (Opening a database flushes a few meta values.)
    assert!(
        table_bytes(&db) < 64 << 10,
        "4 MiB stay in a 64 MiB memtable"
    );
    drop(db);

    let small = || options().memtable_bytes(256 << 10);
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), small()).unwrap();
    write(&db);
    common::wait_until(
        "a 256 KiB memtable flushing 4 MiB of writes by itself",
        Duration::from_millis(20),
        || table_bytes(&db) >= 2 << 20,
    );
    drop(db);
    let db = Db::open(dir.path(), small()).unwrap();
    let t = db.tenant(TenantId(1));
    assert_eq!(t.scan().unwrap().count(), values.len());
    for (i, value) in values.iter().enumerate().step_by(97) {
        assert_eq!(
            t.get(&(i as u32).to_le_bytes()).unwrap().as_ref(),
            Some(value)
        );
    }
    drop(db);
    // Below RocksDB's floor, which it would apply silently: refused.
    let refused = Db::open(dir.path(), options().memtable_bytes(16 << 10)).err();
    assert!(
        matches!(refused, Some(Error::InvalidArgument(_))),
        "{refused:?}"
    );
}

#[test]
fn the_store_is_rebuilt_from_the_log_alone() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    db.tenant(TenantId(1)).put(b"k", b"v").unwrap();
    db.tenant(TenantId(2))
        .subject(SubjectId(1))
        .put(b"k", b"w")
        .unwrap();
    drop(db);
    std::fs::remove_dir_all(dir.path().join("store")).unwrap();
    let db = open(dir.path());
    assert_eq!(
        db.tenant(TenantId(1)).get(b"k").unwrap(),
        Some(b"v".to_vec())
    );
    let s = db.tenant(TenantId(2)).subject(SubjectId(1));
    assert_eq!(s.get(b"k").unwrap(), Some(b"w".to_vec()));
}

#[test]
fn sync_interval_durability_keeps_writes_across_a_clean_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let opts = || options().durability(Durability::SyncInterval(Duration::from_millis(5)));
    let db = Db::open(dir.path(), opts()).unwrap();
    for i in 0..100u32 {
        db.tenant(TenantId(1)).put(&i.to_le_bytes(), b"v").unwrap();
    }
    std::thread::sleep(Duration::from_millis(20));
    db.sync().unwrap();
    drop(db);
    let db = Db::open(dir.path(), opts()).unwrap();
    assert_eq!(db.tenant(TenantId(1)).scan().unwrap().count(), 100);
}

#[test]
fn every_master_key_source_opens_the_database_it_created() {
    let root = tempfile::tempdir().unwrap();
    let key = [0x42u8; 32];
    let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
    let raw_file = root.path().join("raw.key");
    std::fs::write(&raw_file, key).unwrap();
    let hex_file = root.path().join("hex.key");
    std::fs::write(&hex_file, format!("{hex}\n")).unwrap();
    // SAFETY: this test is the only one that reads or writes this variable.
    unsafe { std::env::set_var("STRONGROOM_TEST_MASTER_KEY", &hex) };
    let sources = [
        MasterKeySource::Bytes(key.into()),
        MasterKeySource::KeyFile(raw_file),
        MasterKeySource::KeyFile(hex_file),
        MasterKeySource::EnvVar("STRONGROOM_TEST_MASTER_KEY".into()),
    ];
    let dir = root.path().join("db");
    Db::open(&dir, Options::new(sources[0].clone()))
        .unwrap()
        .tenant(TenantId(1))
        .put(b"k", b"v")
        .unwrap();
    for source in sources {
        let db = Db::open(&dir, Options::new(source)).unwrap();
        assert_eq!(
            db.tenant(TenantId(1)).get(b"k").unwrap(),
            Some(b"v".to_vec())
        );
    }
    let missing = MasterKeySource::EnvVar("STRONGROOM_TEST_NO_SUCH_VARIABLE".into());
    assert!(matches!(
        Db::open(&dir, Options::new(missing)),
        Err(Error::MasterKeySource(_))
    ));
    let bad_file = MasterKeySource::KeyFile(root.path().join("absent.key"));
    assert!(matches!(
        Db::open(&dir, Options::new(bad_file)),
        Err(Error::MasterKeySource(_))
    ));
}

#[test]
fn a_passphrase_database_opens_with_the_passphrase_only() {
    let dir = tempfile::tempdir().unwrap();
    let pass = |p: &str| Options::new(MasterKeySource::Passphrase(p.to_string().into()));
    Db::open(dir.path(), pass("correct horse"))
        .unwrap()
        .tenant(TenantId(1))
        .put(b"k", b"v")
        .unwrap();
    let db = Db::open(dir.path(), pass("correct horse")).unwrap();
    assert_eq!(
        db.tenant(TenantId(1)).get(b"k").unwrap(),
        Some(b"v".to_vec())
    );
    drop(db);
    assert!(matches!(
        Db::open(dir.path(), pass("wrong horse")),
        Err(Error::WrongMasterKey)
    ));
    assert!(matches!(
        Db::open(dir.path(), options()),
        Err(Error::WrongMasterKey)
    ));
}

#[test]
fn open_refuses_folders_that_are_not_databases() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.txt"), b"hello").unwrap();
    assert!(matches!(
        Db::open(dir.path(), options()),
        Err(Error::NotADatabase(_))
    ));
    let missing = dir.path().join("absent");
    let opts = options().create_if_missing(false);
    assert!(matches!(Db::open(&missing, opts), Err(Error::NotFound(_))));
    assert!(!missing.exists());
    let small = options().segment_bytes_max(100);
    assert!(matches!(
        Db::open(dir.path().join("x"), small),
        Err(Error::InvalidArgument(_))
    ));
}

#[test]
fn oversized_keys_and_values_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let t = db.tenant(TenantId(1));
    let big_key = vec![0u8; strongroom::format::USER_KEY_MAX + 1];
    assert!(matches!(
        t.put(&big_key, b"v"),
        Err(Error::InvalidArgument(_))
    ));
    let big_value = vec![0u8; strongroom::format::USER_VALUE_MAX + 1];
    assert!(matches!(
        t.put(b"k", &big_value),
        Err(Error::InvalidArgument(_))
    ));
    assert_eq!(db.last_lsn().0, 0, "nothing was written");
}

#[test]
fn reopen_resumes_when_only_an_empty_segment_is_left() {
    let dir = tempfile::tempdir().unwrap();
    let opts = || options().segment_bytes_max(4096);
    {
        // Fill the first segment to its limit, stopping before it rolls.
        let db = Db::open(dir.path(), opts()).unwrap();
        let segment = common::segments(dir.path()).pop().unwrap();
        // (The file is zero-filled ahead: count its frames' bytes.)
        while common::frames_only(&std::fs::read(&segment).unwrap()).len() < 4096 {
            db.tenant(TenantId(1))
                .put(&db.last_lsn().0.to_le_bytes(), &[3u8; 300])
                .unwrap();
        }
        assert_eq!(common::segments(dir.path()).len(), 1);
    }
    let written = {
        // A full last segment: the writer starts an empty one; a checkpoint
        // then removes every segment before it.
        let db = Db::open(dir.path(), opts()).unwrap();
        assert_eq!(
            common::segments(dir.path()).len(),
            2,
            "a new, empty segment"
        );
        db.flush().unwrap();
        assert_eq!(common::segments(dir.path()).len(), 1);
        db.last_lsn()
    };
    let db = Db::open(dir.path(), opts()).unwrap();
    assert_eq!(db.last_lsn(), written);
    let lsn = db.tenant(TenantId(1)).put(b"next", b"write").unwrap();
    assert_eq!(lsn.0, written.0 + 1);
    drop(db);
    let db = Db::open(dir.path(), opts()).unwrap();
    let t = db.tenant(TenantId(1));
    assert_eq!(t.get(b"next").unwrap(), Some(b"write".to_vec()));
    assert_eq!(t.scan().unwrap().count() as u64, written.0 + 1);
}

#[test]
fn a_large_group_is_appended_and_small_ones_write_over_zeros() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), options()).unwrap();
    let t = db.tenant(TenantId(1));
    let segment = common::segments(dir.path()).pop().unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let values: Vec<Vec<u8>> = (0..50)
        .map(|_| (0..4096).map(|_| rng.random()).collect())
        .collect();
    // A 200 KiB batch (incompressible): its sync is dominated by its data, so no zeros are
    // written ahead of it (ZERO_FILL_GROUP_MAX).
    let mut batch = WriteBatch::new();
    for i in 0..50u32 {
        batch.put(i.to_le_bytes(), values[i as usize].clone());
    }
    t.write(batch).unwrap();
    let bytes = std::fs::read(&segment).unwrap();
    assert_eq!(bytes.len(), common::frames_only(&bytes).len());
    // A small put after it fills zeros ahead again.
    t.put(b"small", b"put").unwrap();
    let bytes = std::fs::read(&segment).unwrap();
    let frames = common::frames_only(&bytes).len();
    assert!(bytes.len() > frames);
    assert!(bytes[frames..].iter().all(|&b| b == 0));
    // All of it reads back after settling the store and reopening.
    db.flush_and_settle().unwrap();
    drop(db);
    let db = Db::open(dir.path(), options()).unwrap();
    let t = db.tenant(TenantId(1));
    for i in 0..50u32 {
        assert_eq!(
            t.get(&i.to_le_bytes()).unwrap().as_ref(),
            Some(&values[i as usize])
        );
    }
    assert_eq!(t.get(b"small").unwrap(), Some(b"put".to_vec()));
}
