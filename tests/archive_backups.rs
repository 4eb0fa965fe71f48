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
    // A scratch folder that holds anything is not the caller's to lose.
    std::fs::create_dir(scratch.path().join("mine")).unwrap();
    std::fs::write(scratch.path().join("mine/keep"), b"x").unwrap();
    assert!(matches!(
        decrypt_backup(
            dir.path(),
            &options(),
            &*archive,
            &listed[0].0,
            &scratch.path().join("mine")
        ),
        Err(strongroom::Error::InvalidArgument(_))
    ));
    assert_eq!(
        std::fs::read(scratch.path().join("mine/keep")).unwrap(),
        b"x"
    );
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
fn a_database_backs_up_on_its_schedule_across_short_lived_opens() {
    let dir = tempfile::tempdir().unwrap();
    let archive_dir = tempfile::tempdir().unwrap();
    let archive: Arc<dyn Archive> = Arc::new(LocalArchive::new(archive_dir.path()));
    let interval = Duration::from_secs(2);
    let open = || {
        Db::open(
            dir.path(),
            options().archive(
                ArchiveOptions::new(archive.clone())
                    .ship_interval(Duration::from_millis(50))
                    .backup_interval(Some(interval)),
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
    // An archive without a backup gets one at once.
    let db = open();
    wait_until("a first backup", Duration::from_millis(20), || count() == 1);
    let first = std::time::Instant::now();
    db.close().unwrap();
    // Opened again before the interval is up: none.
    let db = open();
    put_n(&db, 1, 0, 10);
    std::thread::sleep(Duration::from_millis(300));
    db.close().unwrap();
    assert_eq!(count(), 1);
    // Opened after it, with writes since the newest: one at once, though
    // this process has not lived an interval (it lives under one here).
    std::thread::sleep(
        (first + interval + Duration::from_millis(200))
            .saturating_duration_since(std::time::Instant::now()),
    );
    let db = open();
    let opened = std::time::Instant::now();
    while count() < 2 && opened.elapsed() < interval / 2 {
        std::thread::sleep(Duration::from_millis(20));
    }
    db.close().unwrap();
    assert_eq!(count(), 2, "the backup was due at open");
    // Due again, but nothing was written since: none.
    std::thread::sleep(interval + Duration::from_millis(200));
    let db = open();
    std::thread::sleep(Duration::from_millis(500));
    db.close().unwrap();
    assert_eq!(count(), 2);
}
