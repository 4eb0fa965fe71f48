//! Base backups, on a local folder and on a real S3 server (Garage): a
//! backup holds the store exactly at its LSN, the next one uploads only the
//! SST files that are new, nothing in the archive is readable, a shred
//! reaches the records in every backup, and a database whose archive holds
//! no backup takes one by itself.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::{all_files, options, wait_until};
use strongroom::archive::{Archive, LocalArchive};
use strongroom::forensic::{Found, backups, decrypt_backup};
use strongroom::{ArchiveOptions, Db, Options, ShredOptions, SubjectId, TenantId};

fn with_archive(archive: Arc<dyn Archive>) -> Options {
    options().archive(
        ArchiveOptions::new(archive)
            .ship_interval(Duration::from_millis(50))
            .backup_interval(None),
    )
}

fn put_n(db: &Db, tenant: u64, from: usize, n: usize) {
    let t = db.tenant(TenantId(tenant));
    for i in from..from + n {
        t.put(
            format!("canary-key-{i}").as_bytes(),
            format!("canary-value-{i}").as_bytes(),
        )
        .unwrap();
    }
}

fn backups_keep_the_store_incrementally_sealed_and_shreds_reach_them(
    archive: Arc<dyn Archive>,
    raw: &Path,
) {
    let dir = tempfile::tempdir().unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), with_archive(archive.clone())).unwrap();
    put_n(&db, 1, 0, 100);
    put_n(&db, 2, 0, 100);
    db.tenant(TenantId(3))
        .subject(SubjectId(9))
        .put(b"canary-key-s", b"canary-value-s")
        .unwrap();
    let first = db.backup_now().unwrap();
    assert_eq!(first.applied_lsn, db.last_lsn());
    assert!(first.ssts_uploaded >= 1);
    // Nothing new but what maintenance notes in the store meanwhile: at
    // most that one small file is uploaded.
    let again = db.backup_now().unwrap();
    assert!(
        again.ssts_uploaded <= 1 && again.bytes_uploaded * 4 < first.bytes_uploaded,
        "{again:?} after {first:?}"
    );
    put_n(&db, 1, 100, 50);
    let third = db.backup_now().unwrap();
    assert!(
        third.ssts_uploaded >= 1 && third.ssts_uploaded < third.files,
        "{third:?}"
    );
    db.close().unwrap();

    let listed = backups(dir.path(), &options(), &*archive).unwrap();
    assert_eq!(listed.len(), 3);
    assert_eq!(listed[0].1, first.applied_lsn.0);
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
    let records = read(&first.name);
    assert_eq!(
        records.len(),
        201,
        "the store exactly at the first backup's LSN"
    );
    assert!(
        records
            .iter()
            .all(|r| r.found == Found::Backup(first.applied_lsn.0))
    );
    assert!(
        records
            .iter()
            .any(|r| r.key == b"canary-key-99" && r.value == b"canary-value-99")
    );
    assert_eq!(read(&third.name).len(), 251);

    // No plaintext in any byte the archive holds.
    for file in all_files(raw) {
        let bytes = std::fs::read(&file).unwrap();
        assert!(
            !bytes.windows(7).any(|w| w == b"canary-"),
            "plaintext in {}",
            file.display()
        );
    }

    // A shred reaches every backup: its records no longer decrypt.
    let db = Db::open(dir.path(), with_archive(archive.clone())).unwrap();
    db.shred_tenant(TenantId(1), ShredOptions::immediate())
        .unwrap();
    db.tenant(TenantId(3))
        .shred_subject(SubjectId(9), ShredOptions::immediate())
        .unwrap();
    db.close().unwrap();
    for backup in [&first.name, &third.name] {
        let left = read(backup);
        assert_eq!(left.len(), 100, "only tenant 2's records");
        assert!(left.iter().all(|r| r.scope.tenant == TenantId(2)));
    }
}

#[test]
fn backups_in_a_local_folder() {
    let archive_dir = tempfile::tempdir().unwrap();
    backups_keep_the_store_incrementally_sealed_and_shreds_reach_them(
        Arc::new(LocalArchive::new(archive_dir.path())),
        archive_dir.path(),
    );
}

#[test]
fn backups_in_an_s3_bucket() {
    let garage = common::garage::shared();
    backups_keep_the_store_incrementally_sealed_and_shreds_reach_them(
        Arc::new(garage.archive()),
        &garage.dir().join("data"),
    );
}

#[test]
fn a_database_takes_its_first_backup_by_itself_and_no_second_at_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let archive_dir = tempfile::tempdir().unwrap();
    let archive: Arc<dyn Archive> = Arc::new(LocalArchive::new(archive_dir.path()));
    // The default schedule: hourly, and one at once if the archive has none.
    let open = || {
        Db::open(
            dir.path(),
            options().archive(
                ArchiveOptions::new(archive.clone()).ship_interval(Duration::from_millis(50)),
            ),
        )
        .unwrap()
    };
    let count = || {
        archive
            .list("")
            .unwrap()
            .iter()
            .filter(|o| o.name.ends_with(".backup"))
            .count()
    };
    let db = open();
    put_n(&db, 1, 0, 10);
    wait_until("a first backup", Duration::from_millis(20), || count() > 0);
    db.close().unwrap();
    let db = open();
    std::thread::sleep(Duration::from_millis(500));
    db.close().unwrap();
    assert_eq!(count(), 1);
}
