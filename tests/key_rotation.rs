//! Key rotation: the master key (one manifest rewrite) and tenant keys (a
//! new sealing version, a re-encryption pass, then the old versions go).

mod common;

use common::{all_files, options};
use strongroom::forensic::{Found, decrypt_everything};
use strongroom::{Db, Error, MasterKeySource, Options, Scope, SubjectId, TenantId};

#[test]
fn a_rotated_master_key_opens_the_database_and_the_old_one_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let new_key = || MasterKeySource::Passphrase("a new passphrase".to_string().into());
    {
        let db = Db::open(dir.path(), options()).unwrap();
        db.tenant(TenantId(1)).put(b"k", b"v").unwrap();
        db.tenant(TenantId(1))
            .subject(SubjectId(2))
            .put(b"s", b"w")
            .unwrap();
        db.flush().unwrap();
        // Every file but the manifest: keyring shards, log segments, store.
        let ours = |p: &std::path::PathBuf| {
            !p.ends_with("keyring/MANIFEST") && !p.to_string_lossy().contains("/store/LOG")
        };
        let read_all = || -> Vec<_> {
            all_files(dir.path())
                .into_iter()
                .filter(ours)
                .map(|p| (p.clone(), std::fs::read(p).unwrap()))
                .collect()
        };
        let before = read_all();
        db.rotate_master_key(new_key()).unwrap();
        assert_eq!(read_all(), before, "only the manifest changes");
        db.tenant(TenantId(1)).put(b"after", b"rotation").unwrap();
    }
    assert!(matches!(
        Db::open(dir.path(), options()),
        Err(Error::WrongMasterKey)
    ));
    let db = Db::open(dir.path(), Options::new(new_key())).unwrap();
    let t = db.tenant(TenantId(1));
    assert_eq!(t.get(b"k").unwrap(), Some(b"v".to_vec()));
    assert_eq!(t.get(b"after").unwrap(), Some(b"rotation".to_vec()));
    assert_eq!(
        t.subject(SubjectId(2)).get(b"s").unwrap(),
        Some(b"w".to_vec())
    );
    // And once more, back to raw key bytes.
    db.rotate_master_key(MasterKeySource::Bytes([8; 32].into()))
        .unwrap();
    drop(db);
    assert!(matches!(
        Db::open(dir.path(), Options::new(new_key())),
        Err(Error::WrongMasterKey)
    ));
    let db = Db::open(dir.path(), Options::with_key([8; 32])).unwrap();
    assert_eq!(
        db.tenant(TenantId(1)).get(b"k").unwrap(),
        Some(b"v".to_vec())
    );
}

/// The key version prefix of every record stored in tenant `tenant`'s own
/// scope, read from the raw store of a closed database.
fn stored_versions(dir: &std::path::Path, tenant: u64) -> Vec<u32> {
    let store =
        rocksdb::DB::open_for_read_only(&rocksdb::Options::default(), dir.join("store"), false)
            .unwrap();
    let mut prefix = vec![strongroom::format::STORE_NS_DATA];
    prefix.extend_from_slice(&tenant.to_be_bytes());
    prefix.push(strongroom::format::SCOPE_TENANT);
    prefix.extend_from_slice(&0u64.to_be_bytes());
    store
        .prefix_iterator(&prefix)
        .map(Result::unwrap)
        .take_while(|(k, _)| k.starts_with(&prefix))
        .map(|(_, v)| u32::from_le_bytes(v[..4].try_into().unwrap()))
        .collect()
}

fn fill(db: &Db, tenant: TenantId, n: u32) {
    let t = db.tenant(tenant);
    for chunk in (0..n).collect::<Vec<_>>().chunks(100) {
        let mut batch = strongroom::WriteBatch::new();
        for i in chunk {
            batch.put(
                format!("key-{i}"),
                format!("value-{i}").repeat(1 + (*i as usize % 40)),
            );
        }
        t.write(batch).unwrap();
    }
    for s in 0..4u64 {
        t.subject(SubjectId(s))
            .put(b"email", format!("p{s}@example.org").as_bytes())
            .unwrap();
    }
}

fn check(db: &Db, tenant: TenantId, n: u32) {
    check_with_extra(db, tenant, n, 0);
}

/// As `check`, for a tenant whose own scope holds `extra` more records.
fn check_with_extra(db: &Db, tenant: TenantId, n: u32, extra: usize) {
    let t = db.tenant(tenant);
    for i in (0..n).step_by(7) {
        let expected = format!("value-{i}").repeat(1 + (i as usize % 40));
        assert_eq!(
            t.get(format!("key-{i}").as_bytes()).unwrap(),
            Some(expected.into_bytes())
        );
    }
    assert_eq!(t.scan().unwrap().count(), n as usize + extra);
    for s in 0..4u64 {
        let email = t.subject(SubjectId(s)).get(b"email").unwrap();
        assert_eq!(email, Some(format!("p{s}@example.org").into_bytes()));
    }
}

#[test]
fn rotation_reseals_every_record_and_then_destroys_the_old_version() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), options()).unwrap();
    fill(&db, TenantId(1), 1000);
    fill(&db, TenantId(2), 50);
    let t = db.tenant(TenantId(1));
    assert_eq!(t.rotate_key().unwrap(), 2);
    check(&db, TenantId(1), 1000); // old records still read, before the pass
    t.put(b"after", b"rotation").unwrap();
    db.run_maintenance().unwrap();
    check_with_extra(&db, TenantId(1), 1000, 1);
    drop(db);

    let versions = stored_versions(dir.path(), 1);
    assert_eq!(versions.len(), 1001);
    assert!(
        versions.iter().all(|&v| v == 2),
        "no record left under version 1"
    );
    assert!(
        stored_versions(dir.path(), 2).iter().all(|&v| v == 1),
        "other tenants untouched"
    );
    // Version 1 is destroyed: the log's copies sealed under it decrypt no more.
    let decrypted = decrypt_everything(dir.path(), &options()).unwrap();
    let of_tenant_one_in_log = decrypted
        .iter()
        .filter(|d| d.scope == Scope::tenant(TenantId(1)) && d.found != Found::Store)
        .count();
    assert_eq!(
        of_tenant_one_in_log,
        1000 + 1,
        "only the frames sealed under version 2"
    );

    let db = Db::open(dir.path(), options()).unwrap();
    check_with_extra(&db, TenantId(1), 1000, 1);
    check(&db, TenantId(2), 50);
    assert_eq!(db.tenant(TenantId(1)).rotate_key().unwrap(), 3);
}

#[test]
fn writes_during_the_re_encryption_pass_are_never_lost() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), options()).unwrap();
    fill(&db, TenantId(1), 2000);
    db.tenant(TenantId(1)).rotate_key().unwrap();
    std::thread::scope(|s| {
        s.spawn(|| db.run_maintenance().unwrap());
        s.spawn(|| {
            let t = db.tenant(TenantId(1));
            for round in 0..3 {
                for i in (0..2000).step_by(13) {
                    t.put(
                        format!("key-{i}").as_bytes(),
                        format!("new-{round}-{i}").as_bytes(),
                    )
                    .unwrap();
                }
            }
        });
    });
    db.run_maintenance().unwrap();
    let t = db.tenant(TenantId(1));
    for i in 0..2000u32 {
        let got = t.get(format!("key-{i}").as_bytes()).unwrap().unwrap();
        let expected = if i % 13 == 0 {
            format!("new-2-{i}")
        } else {
            format!("value-{i}").repeat(1 + (i as usize % 40))
        };
        assert_eq!(String::from_utf8(got).unwrap(), expected, "key-{i}");
    }
    drop(db);
    assert!(stored_versions(dir.path(), 1).iter().all(|&v| v == 2));
}

#[test]
fn an_unfinished_rotation_resumes_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = Db::open(dir.path(), options()).unwrap();
        fill(&db, TenantId(1), 500);
        db.tenant(TenantId(1)).rotate_key().unwrap();
        // Closed at once: at most a background slice of the pass has run.
    }
    let db = Db::open(dir.path(), options()).unwrap();
    check(&db, TenantId(1), 500);
    db.run_maintenance().unwrap();
    drop(db);
    assert!(stored_versions(dir.path(), 1).iter().all(|&v| v == 2));
}

#[test]
fn a_snapshot_taken_before_a_rotation_reads_after_the_old_version_is_destroyed() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), options()).unwrap();
    fill(&db, TenantId(1), 300);
    let t = db.tenant(TenantId(1));
    let snapshot = t.snapshot().unwrap();
    let scan = t.scan().unwrap();
    t.rotate_key().unwrap();
    db.run_maintenance().unwrap(); // version 1 destroyed
    let expected = "value-5".repeat(6).into_bytes();
    assert_eq!(snapshot.get(b"key-5").unwrap(), Some(expected));
    let scanned: Vec<_> = snapshot.scan().unwrap().collect::<Result<_, _>>().unwrap();
    assert_eq!(scanned.len(), 300);
    let live: Vec<_> = scan.collect::<Result<_, _>>().unwrap();
    assert_eq!(
        live.len(),
        300,
        "a scan begun before the rotation finishes too"
    );
    let email = snapshot
        .subject(SubjectId(2))
        .unwrap()
        .get(b"email")
        .unwrap();
    assert_eq!(email, Some(b"p2@example.org".to_vec()));
}
