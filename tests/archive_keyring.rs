//! The keyring in the archive, on a local folder and on a real S3 server
//! (Garage): one copy of every keyring file, under names that show no
//! tenant; a shred replaces the archived shard and deletes every older copy
//! before it returns (or, with the archive down, by itself once it is back,
//! and says so meanwhile); a rotation's retired versions stay in the archive
//! so that backups from before it still read, until a shred takes them.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use common::{options, wait_until};
use strongroom::archive::{Archive, FaultyArchive, LocalArchive};
use strongroom::forensic::{decrypt_archive, decrypt_backup};
use strongroom::{ArchiveOptions, Db, Options, ScopeState, ShredOptions, SubjectId, TenantId};

fn with_archive(archive: Arc<dyn Archive>) -> Options {
    options().archive(
        ArchiveOptions::new(archive)
            .ship_interval(Duration::from_millis(50))
            .backup_interval(None),
    )
}

/// The archive's keyring objects, by folder.
fn keyring_folders(archive: &dyn Archive) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for object in archive.list("").unwrap() {
        if let Some(at) = object.name.find("/keyring/") {
            let rest = &object.name[at + "/keyring/".len()..];
            let (folder, _) = rest.rsplit_once('/').unwrap();
            out.entry(folder.to_owned()).or_default().push(object.name);
        }
    }
    out
}

fn put_n(db: &Db, tenant: u64, n: usize) {
    let t = db.tenant(TenantId(tenant));
    for i in 0..n {
        t.put(format!("k{i}").as_bytes(), format!("v{i}").as_bytes())
            .unwrap();
    }
}

// Tenants 1 and 257 share a tenant shard (tenant % 256); tenant 2 does not.
const A: u64 = 1;
const B: u64 = 257;
const C: u64 = 2;

fn a_shred_leaves_no_archived_copy_of_its_keys_before_it_returns(archive: Arc<dyn Archive>) {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), with_archive(archive.clone())).unwrap();
    put_n(&db, A, 10);
    put_n(&db, B, 10);
    put_n(&db, C, 10);
    // Not numbered in order: no keys are made ahead, one shard each.
    for subject in [7, 9] {
        db.tenant(TenantId(C))
            .subject(SubjectId(subject))
            .put(b"s", b"v")
            .unwrap();
    }
    db.tenant(TenantId(A))
        .subject(SubjectId(7))
        .put(b"s", b"v")
        .unwrap();
    db.ship_now().unwrap();
    let before = keyring_folders(&*archive);
    // Manifest, seals ledger (none yet), two tenant shards, subject shards.
    assert!(before.contains_key("manifest"), "{before:?}");
    assert_eq!(
        before.keys().filter(|f| f.starts_with("tenants/")).count(),
        2
    );
    assert_eq!(
        before.keys().filter(|f| f.starts_with("subjects/")).count(),
        3,
        "one folder per subject shard: {before:?}"
    );
    assert!(
        before.values().all(|copies| copies.len() == 1),
        "{before:?}"
    );
    // Folder names are keyed hashes (32 hex digits): no tenant id or shard
    // number shows.
    for folder in before.keys() {
        for part in folder.split('/').skip(1) {
            assert!(
                part.len() == 32 && part.bytes().all(|b| b.is_ascii_hexdigit()),
                "{folder}"
            );
        }
    }
    // A tenant shred: when it returns, the shard's only copy is the new one
    // and A's subject shards are gone; B (same shard) still reads.
    assert_eq!(
        db.shred_tenant(TenantId(A), ShredOptions::immediate())
            .unwrap(),
        ScopeState::Shredded
    );
    assert!(!db.tenant(TenantId(A)).archive_behind());
    let after = keyring_folders(&*archive);
    assert!(after.values().all(|copies| copies.len() == 1), "{after:?}");
    let changed: Vec<_> = after
        .iter()
        .filter(|(folder, copies)| before.get(*folder) != Some(copies))
        .map(|(folder, _)| folder.clone())
        .collect();
    assert!(
        changed.iter().any(|f| f.starts_with("tenants/")),
        "the shared tenant shard was replaced: {changed:?}"
    );
    assert_eq!(
        after.keys().filter(|f| f.starts_with("subjects/")).count(),
        2,
        "A's subject shard left the archive"
    );
    // A subject shred replaces that one subject shard.
    let subject = db.tenant(TenantId(C)).subject(SubjectId(7));
    assert_eq!(
        db.tenant(TenantId(C))
            .shred_subject(SubjectId(7), ShredOptions::immediate())
            .unwrap(),
        ScopeState::Shredded
    );
    assert!(!subject.archive_behind());
    let last = keyring_folders(&*archive);
    assert!(last.values().all(|copies| copies.len() == 1), "{last:?}");
    assert_eq!(
        last.iter()
            .filter(|(folder, copies)| after.get(*folder) != Some(copies))
            .filter(|(folder, _)| folder.starts_with("subjects/"))
            .count(),
        1,
        "the subject's shard was replaced"
    );
    db.close().unwrap();
    let found = decrypt_archive(dir.path(), &options(), &*archive).unwrap();
    assert!(found.iter().all(|r| r.scope.tenant != TenantId(A)));
    assert!(
        found
            .iter()
            .all(|r| r.scope.subject != Some(SubjectId(7)) || r.scope.tenant != TenantId(C))
    );
    assert_eq!(
        found
            .iter()
            .filter(|r| r.scope.tenant == TenantId(B))
            .count(),
        10
    );
}

#[test]
fn shreds_reach_a_local_archive_before_they_return() {
    let archive_dir = tempfile::tempdir().unwrap();
    a_shred_leaves_no_archived_copy_of_its_keys_before_it_returns(Arc::new(LocalArchive::new(
        archive_dir.path(),
    )));
}

#[test]
fn shreds_reach_an_s3_archive_before_they_return() {
    let garage = common::garage::shared();
    a_shred_leaves_no_archived_copy_of_its_keys_before_it_returns(Arc::new(garage.archive()));
}

#[test]
fn a_shred_while_the_archive_is_down_reaches_it_once_it_is_back_across_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let archive_dir = tempfile::tempdir().unwrap();
    let local: Arc<dyn Archive> = Arc::new(LocalArchive::new(archive_dir.path()));
    let faulty = Arc::new(FaultyArchive::new(local.clone()));
    let db = Db::open(dir.path(), with_archive(faulty.clone())).unwrap();
    put_n(&db, A, 10);
    put_n(&db, B, 10);
    db.ship_now().unwrap();
    let before = keyring_folders(&*local);
    faulty.set_down(true);
    put_n(&db, B, 1);
    assert!(db.ship_now().is_err());
    // Destroyed locally at once; the archive's copy waits, and says so.
    assert_eq!(
        db.shred_tenant(TenantId(A), ShredOptions::immediate())
            .unwrap(),
        ScopeState::Shredded
    );
    assert!(db.tenant(TenantId(A)).archive_behind());
    assert_eq!(keyring_folders(&*local), before);
    db.close().unwrap();
    // Back, and opened again: the next pass does it.
    faulty.set_down(false);
    let db = Db::open(dir.path(), with_archive(faulty.clone())).unwrap();
    wait_until(
        "the shred reaching the archive",
        Duration::from_millis(20),
        || !db.tenant(TenantId(A)).archive_behind(),
    );
    let after = keyring_folders(&*local);
    assert!(after.values().all(|copies| copies.len() == 1), "{after:?}");
    assert_ne!(after, before);
    db.close().unwrap();
    let found = decrypt_archive(dir.path(), &options(), &*faulty).unwrap();
    assert!(found.iter().all(|r| r.scope.tenant == TenantId(B)));
    assert_eq!(found.len(), 11);
}

#[test]
fn retired_versions_in_a_local_folder() {
    let archive_dir = tempfile::tempdir().unwrap();
    a_rotation_keeps_its_retired_versions_in_the_archive_until_a_shred(Arc::new(
        LocalArchive::new(archive_dir.path()),
    ));
}

#[test]
fn retired_versions_in_an_s3_bucket() {
    let garage = common::garage::shared();
    a_rotation_keeps_its_retired_versions_in_the_archive_until_a_shred(Arc::new(garage.archive()));
}

fn a_rotation_keeps_its_retired_versions_in_the_archive_until_a_shred(archive: Arc<dyn Archive>) {
    let dir = tempfile::tempdir().unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), with_archive(archive.clone())).unwrap();
    put_n(&db, A, 20);
    let before_rotation = db.backup_now().unwrap();
    assert_eq!(db.tenant(TenantId(A)).rotate_key().unwrap(), 2);
    db.run_maintenance().unwrap();
    let retired = |archive: &dyn Archive| {
        keyring_folders(archive)
            .into_iter()
            .filter(|(f, _)| f.starts_with("retired/"))
            .flat_map(|(_, c)| c)
            .count()
    };
    assert_eq!(retired(&*archive), 1, "version 1 went to the archive");
    db.close().unwrap();
    let read = |name: &str| {
        decrypt_backup(
            dir.path(),
            &options(),
            &*archive,
            name,
            &scratch.path().join("b"),
        )
        .unwrap()
    };
    // The local keyring no longer has version 1; the archive's copy reads
    // the backup from before the rotation.
    assert_eq!(read(&before_rotation.name).len(), 20);
    // A shred takes the retired versions with it.
    let db = Db::open(dir.path(), with_archive(archive.clone())).unwrap();
    db.shred_tenant(TenantId(A), ShredOptions::immediate())
        .unwrap();
    assert_eq!(retired(&*archive), 0);
    db.close().unwrap();
    assert!(read(&before_rotation.name).is_empty());
}

#[test]
fn a_rotation_does_not_retire_a_version_the_archive_cannot_take() {
    let dir = tempfile::tempdir().unwrap();
    let archive_dir = tempfile::tempdir().unwrap();
    let local: Arc<dyn Archive> = Arc::new(LocalArchive::new(archive_dir.path()));
    let faulty = Arc::new(FaultyArchive::new(local.clone()));
    let retired = || {
        keyring_folders(&*local)
            .into_iter()
            .filter(|(f, _)| f.starts_with("retired/"))
            .count()
    };
    let db = Db::open(dir.path(), with_archive(faulty.clone())).unwrap();
    put_n(&db, A, 20);
    db.tenant(TenantId(A)).rotate_key().unwrap();
    faulty.set_down(true);
    put_n(&db, B, 1);
    assert!(db.ship_now().is_err());
    // The rotation waits (no commit is held on an archive that is down).
    db.run_maintenance().unwrap();
    assert_eq!(retired(), 0);
    faulty.set_down(false);
    db.ship_now().unwrap();
    db.run_maintenance().unwrap();
    assert_eq!(retired(), 1, "version 1 went to the archive, then retired");
    db.close().unwrap();
    // Read back through the archive: a record sealed before the rotation.
    let found = decrypt_archive(dir.path(), &options(), &*local).unwrap();
    assert_eq!(
        found
            .iter()
            .filter(|r| r.scope.tenant == TenantId(A))
            .count(),
        40,
        "20 puts and their 20 re-sealed copies, all readable"
    );
}

/// An archive that notes the order of its puts.
#[derive(Debug)]
struct PutOrder {
    inner: Arc<dyn Archive>,
    puts: std::sync::Mutex<Vec<String>>,
}

impl Archive for PutOrder {
    fn put(&self, name: &str, bytes: Vec<u8>) -> Result<(), strongroom::archive::ArchiveError> {
        self.puts.lock().unwrap().push(name.to_owned());
        self.inner.put(name, bytes)
    }
    fn get(&self, name: &str) -> Result<Vec<u8>, strongroom::archive::ArchiveError> {
        self.inner.get(name)
    }
    fn get_range(
        &self,
        name: &str,
        range: std::ops::Range<u64>,
    ) -> Result<Vec<u8>, strongroom::archive::ArchiveError> {
        self.inner.get_range(name, range)
    }
    fn list(
        &self,
        prefix: &str,
    ) -> Result<Vec<strongroom::archive::ObjectInfo>, strongroom::archive::ArchiveError> {
        self.inner.list(prefix)
    }
    fn delete(&self, name: &str) -> Result<(), strongroom::archive::ArchiveError> {
        self.inner.delete(name)
    }
}

#[test]
fn a_piece_reaches_the_archive_after_the_keys_of_its_records() {
    let dir = tempfile::tempdir().unwrap();
    let archive_dir = tempfile::tempdir().unwrap();
    let recorder = Arc::new(PutOrder {
        inner: Arc::new(LocalArchive::new(archive_dir.path())),
        puts: Default::default(),
    });
    let options = options().archive(
        ArchiveOptions::new(recorder.clone())
            .ship_interval(Duration::from_secs(3600))
            .backup_interval(None),
    );
    let db = Db::open(dir.path(), options).unwrap();
    put_n(&db, A, 1);
    db.ship_now().unwrap();
    for subject in 1..=20 {
        recorder.puts.lock().unwrap().clear();
        // A new subject: its key is made by this write, after the last pass
        // (even numbers: none is made ahead by the one before).
        db.tenant(TenantId(A))
            .subject(SubjectId(subject * 2))
            .put(b"k", b"v")
            .unwrap();
        db.ship_now().unwrap();
        let puts = recorder.puts.lock().unwrap().clone();
        let piece = puts.iter().position(|n| n.ends_with(".seg"));
        let shard = puts.iter().position(|n| n.contains("/keyring/subjects/"));
        assert!(
            matches!((shard, piece), (Some(s), Some(p)) if s < p),
            "subject {subject}: the subject shard's copy first, then the piece: {puts:?}"
        );
    }
    db.close().unwrap();
}
