//! A scope whose key is gone from the keyring while the store holds its
//! records is corruption naming the keyring file, never an empty scope: no
//! read returns `None` or nothing for it, and no write makes a new key over
//! its data.
//!
//! Once a key's shard is recorded by its parent (within one maintenance
//! pass, and at close) the chain of custody refuses a lost key at open
//! (`tests/integrity_custody.rs`). These tests cover the window before:
//! keys made while the parents cannot be written (every manifest rename
//! fails, and for subjects every write to a tenant shard), so that when the
//! shard is lost nothing anchored it, and only the store can tell.

mod common;

use std::path::{Path, PathBuf};

use common::{open, options, snapshot_files};
use strongroom::format::{KEYRING_RECORD_LEN, KEYRING_SHARD_HEADER_LEN};
use strongroom::fs::{Fault, FaultyFileSystem, Op};
use strongroom::{CorruptionKind, Db, Error, SubjectId, TenantId};

fn tenant_shard(dir: &Path, tenant: u64) -> PathBuf {
    dir.join(format!("keyring/tenants/{:03}.keys", tenant % 256))
}

fn subject_shard(dir: &Path, tenant: u64, subject: u64) -> PathBuf {
    dir.join(format!(
        "keyring/subjects/{tenant:016x}/{:04}.keys",
        subject % 1024
    ))
}

/// Three tenants, the second with a subject, each with a few records, made
/// while no parent can be written: every manifest rename fails, and every
/// write to a tenant shard after the three that create the tenants' keys
/// (the fourth would append the subject shard's anchor).
fn populate(dir: &Path) {
    open(dir).close().unwrap();
    let fs = FaultyFileSystem::new();
    fs.fail_from(Op::Rename, "MANIFEST", 1, Fault::Eio);
    fs.fail_from(Op::Write, "tenants", 4, Fault::Eio);
    let db = Db::open(dir, options().file_system(fs.clone())).unwrap();
    for t in 1..=3 {
        let tenant = db.tenant(TenantId(t));
        for i in 0..10 {
            tenant
                .put(format!("k{i}").as_bytes(), b"tenant data")
                .unwrap();
        }
    }
    let subject = db.tenant(TenantId(2)).subject(SubjectId(7));
    subject.put(b"allergy", b"peanuts").unwrap();
    assert!(db.close().is_err(), "close could not record the new keys");
}

fn is_missing_key<T: std::fmt::Debug>(result: strongroom::Result<T>, file: &Path) {
    match result {
        Err(Error::Corruption {
            file: named,
            kind: CorruptionKind::MissingKey,
            ..
        }) => assert_eq!(named, file),
        other => panic!(
            "expected MissingKey naming {}, got {other:?}",
            file.display()
        ),
    }
}

/// Every way to read or write `tenant` fails naming `file`, and no file of
/// the database changes.
fn assert_tenant_refused(db: &Db, dir: &Path, tenant: u64, file: &Path) {
    let before = snapshot_files(&dir.join("keyring"));
    let t = db.tenant(TenantId(tenant));
    is_missing_key(t.get(b"k1"), file);
    is_missing_key(t.get(b"never written"), file);
    is_missing_key(t.scan().map(|s| s.count()), file);
    is_missing_key(t.snapshot().map(drop), file);
    is_missing_key(t.put(b"k1", b"overwrite"), file);
    is_missing_key(t.delete(b"k1"), file);
    is_missing_key(t.subject(SubjectId(8)).put(b"new", b"x"), file);
    is_missing_key(t.rotate_key(), file);
    assert_eq!(
        snapshot_files(&dir.join("keyring")),
        before,
        "no key was made over the data"
    );
}

#[test]
fn a_deleted_tenant_shard_is_corruption_not_an_empty_tenant() {
    let dir = tempfile::tempdir().unwrap();
    populate(dir.path());
    let shard = tenant_shard(dir.path(), 1);
    std::fs::remove_file(&shard).unwrap();
    let db = open(dir.path());
    assert_tenant_refused(&db, dir.path(), 1, &shard);
    // Tenants of other shards are untouched.
    assert_eq!(
        db.tenant(TenantId(3)).get(b"k1").unwrap().as_deref(),
        Some(&b"tenant data"[..])
    );
    // A tenant never written is still simply empty.
    assert_eq!(db.tenant(TenantId(99)).get(b"k1").unwrap(), None);
    assert_eq!(db.tenant(TenantId(99)).scan().unwrap().count(), 0);
}

#[test]
fn a_deleted_tenants_folder_fails_every_tenant() {
    let dir = tempfile::tempdir().unwrap();
    populate(dir.path());
    std::fs::remove_dir_all(dir.path().join("keyring/tenants")).unwrap();
    let db = open(dir.path());
    for t in 1..=3 {
        assert_tenant_refused(&db, dir.path(), t, &tenant_shard(dir.path(), t));
    }
}

#[test]
fn a_key_record_cut_from_a_shard_is_corruption() {
    let dir = tempfile::tempdir().unwrap();
    populate(dir.path());
    // Tenants 1, 2, 3 live in shards 1, 2, 3: each shard holds versions 0
    // and 1 of one tenant. Keep only the header: whole records removed, so
    // no torn append to repair.
    let shard = tenant_shard(dir.path(), 3);
    let bytes = std::fs::read(&shard).unwrap();
    assert_eq!(
        bytes.len(),
        KEYRING_SHARD_HEADER_LEN + 2 * KEYRING_RECORD_LEN
    );
    std::fs::write(&shard, &bytes[..KEYRING_SHARD_HEADER_LEN]).unwrap();
    let db = open(dir.path());
    assert_tenant_refused(&db, dir.path(), 3, &shard);
}

#[test]
fn a_deleted_subject_shard_is_corruption_of_that_subject_only() {
    let dir = tempfile::tempdir().unwrap();
    populate(dir.path());
    let shard = subject_shard(dir.path(), 2, 7);
    std::fs::remove_file(&shard).unwrap();
    let db = open(dir.path());
    let before = snapshot_files(&dir.path().join("keyring"));
    let tenant = db.tenant(TenantId(2));
    let subject = tenant.subject(SubjectId(7));
    is_missing_key(subject.get(b"allergy"), &shard);
    is_missing_key(subject.scan().map(|s| s.count()), &shard);
    is_missing_key(subject.put(b"allergy", b"none"), &shard);
    is_missing_key(
        tenant
            .snapshot()
            .and_then(|s| s.subject(SubjectId(7)).map(drop)),
        &shard,
    );
    assert_eq!(snapshot_files(&dir.path().join("keyring")), before);
    // The tenant's own scope and its other subjects work.
    assert_eq!(
        tenant.get(b"k1").unwrap().as_deref(),
        Some(&b"tenant data"[..])
    );
    tenant.subject(SubjectId(8)).put(b"new", b"ok").unwrap();
}
