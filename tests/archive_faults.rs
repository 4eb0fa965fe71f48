//! The archive under faults: a real S3 server (Garage) killed while the log
//! is being shipped and started again; archive objects cut short, flipped or
//! missing, read through the public API; a local archive whose disk is full.
//! Each is a typed error naming the object, never a panic, and nothing
//! acknowledged is lost.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{options, wait_until};
use strongroom::archive::{Archive, ArchiveError, LocalArchive};
use strongroom::forensic::{decrypt_archive, decrypt_backup};
use strongroom::fs::{Fault, FaultyFileSystem, Op};
use strongroom::{ArchiveOptions, Db, Error, Options, TenantId};

const INTERVAL: Duration = Duration::from_millis(50);

fn shipping(archive: Arc<dyn Archive>, budget: u64) -> Options {
    options().segment_bytes_max(8 << 10).archive(
        ArchiveOptions::new(archive)
            .ship_interval(INTERVAL)
            .unshipped_bytes_max(budget)
            .backup_interval(None),
    )
}

#[test]
fn garage_killed_while_shipping_and_restarted_loses_nothing_and_the_budget_comes_and_goes() {
    let garage = common::garage::Garage::start_new();
    let archive: Arc<dyn Archive> = Arc::new(garage.archive());
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), shipping(archive.clone(), 64 << 10)).unwrap();
    let tenant = db.tenant(TenantId(1));
    let mut acked = 0usize;
    let put = |acked: &mut usize| {
        let result = tenant.put(format!("k{acked}").as_bytes(), &[7; 200]);
        if result.is_ok() {
            *acked += 1;
        }
        result
    };
    // Writes while the shipper puts pieces every 50 ms: the server is
    // killed in the middle of them (a put is in flight more often than not).
    for i in 0..200 {
        put(&mut acked).unwrap();
        if i == 100 {
            garage.stop();
        }
    }
    // Writes go on until the unshipped log passes the budget.
    let refused = loop {
        match put(&mut acked) {
            Ok(_) => assert!(acked < 100_000, "the budget never refused a write"),
            Err(e @ Error::ArchiveBehind { .. }) => break e,
            Err(e) => panic!("unexpected: {e}"),
        }
    };
    assert!(
        matches!(refused, Error::ArchiveBehind { unshipped_bytes, budget_bytes }
        if unshipped_bytes > budget_bytes)
    );
    // Back: the budget clears by itself once shipping has caught up.
    garage.start();
    let deadline = Instant::now() + Duration::from_secs(30);
    while put(&mut acked).is_err() {
        assert!(
            Instant::now() < deadline,
            "writes still refused 30 s after the restart"
        );
        std::thread::sleep(INTERVAL);
    }
    wait_until("shipping every write", INTERVAL, || {
        db.archive_status().unwrap().shipped_lsn >= db.last_lsn()
    });
    db.close().unwrap();
    let found = decrypt_archive(dir.path(), &options(), &*archive).unwrap();
    assert_eq!(found.len(), acked, "every acknowledged write, once");
    garage.stop();
}

#[test]
fn a_damaged_or_missing_archive_object_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let archive_dir = tempfile::tempdir().unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let archive: Arc<dyn Archive> = Arc::new(LocalArchive::new(archive_dir.path()));
    let db = Db::open(dir.path(), shipping(archive.clone(), 1 << 30)).unwrap();
    for i in 0..50 {
        db.tenant(TenantId(1))
            .put(format!("k{i}").as_bytes(), b"v")
            .unwrap();
    }
    db.flush().unwrap();
    let backup = db.backup_now().unwrap();
    db.ship_now().unwrap();
    db.close().unwrap();
    let objects: Vec<String> = archive
        .list("")
        .unwrap()
        .into_iter()
        .map(|o| o.name)
        .collect();
    let piece = objects
        .iter()
        .find(|n| n.ends_with(".seg"))
        .unwrap()
        .clone();
    let sst = objects
        .iter()
        .find(|n| n.ends_with(".sst"))
        .unwrap()
        .clone();
    let path = archive_dir.path().join(&piece);
    let good = std::fs::read(&path).unwrap();
    let named =
        |result: Result<Vec<strongroom::forensic::Decrypted>, Error>, name: &str| match result {
            Err(Error::Archive(ArchiveError::Corrupt { name: n, .. }))
            | Err(Error::Archive(ArchiveError::NotFound { name: n })) => {
                assert_eq!(n, name)
            }
            other => panic!(
                "expected an error naming {name}: {:?}",
                other.map(|f| f.len())
            ),
        };
    // A bit flipped anywhere, the object cut short anywhere.
    for at in [0, 20, 40, good.len() / 2, good.len() - 1] {
        let mut bad = good.clone();
        bad[at] ^= 0x10;
        std::fs::write(&path, &bad).unwrap();
        named(decrypt_archive(dir.path(), &options(), &*archive), &piece);
    }
    for len in [0, 10, 32, good.len() - 1] {
        std::fs::write(&path, &good[..len]).unwrap();
        named(decrypt_archive(dir.path(), &options(), &*archive), &piece);
    }
    std::fs::write(&path, &good).unwrap();
    assert_eq!(
        decrypt_archive(dir.path(), &options(), &*archive)
            .unwrap()
            .len(),
        50
    );
    // A backup whose SST file is missing.
    std::fs::remove_file(archive_dir.path().join(&sst)).unwrap();
    named(
        decrypt_backup(
            dir.path(),
            &options(),
            &*archive,
            &backup.name,
            &scratch.path().join("b"),
        ),
        &sst,
    );
}

#[test]
fn a_full_disk_under_a_local_archive_is_no_space_and_shipping_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let archive_dir = tempfile::tempdir().unwrap();
    let fs = FaultyFileSystem::new();
    let archive = LocalArchive::with_fs(archive_dir.path(), fs.clone());
    fs.fail_from(
        Op::Write,
        &archive_dir.path().to_string_lossy(),
        1,
        Fault::NoSpace,
    );
    let e = archive.put("a/b", vec![1; 100]).unwrap_err();
    assert!(
        matches!(&e, ArchiveError::NoSpace { name } if name == "a/b"),
        "{e}"
    );
    assert!(e.is_transient());
    assert!(
        archive.list("").unwrap().is_empty(),
        "no partial object is listed"
    );
    // Through a database: shipping fails while the disk is full, then goes on.
    let archive: Arc<dyn Archive> = Arc::new(archive);
    let db = Db::open(dir.path(), shipping(archive.clone(), 1 << 30)).unwrap();
    db.tenant(TenantId(1)).put(b"k", b"v").unwrap();
    assert!(matches!(
        db.ship_now(),
        Err(Error::Archive(ArchiveError::NoSpace { .. }))
    ));
    fs.heal();
    db.ship_now().unwrap();
    db.close().unwrap();
    assert_eq!(
        decrypt_archive(dir.path(), &options(), &*archive)
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn a_disk_too_full_for_the_shipped_record_does_not_stop_shipping() {
    let dir = tempfile::tempdir().unwrap();
    let archive_dir = tempfile::tempdir().unwrap();
    let archive: Arc<dyn Archive> = Arc::new(LocalArchive::new(archive_dir.path()));
    let fs = FaultyFileSystem::new();
    let with_fs = |fs: Arc<FaultyFileSystem>| shipping(archive.clone(), 1 << 30).file_system(fs);
    let db = Db::open(dir.path(), with_fs(fs.clone())).unwrap();
    db.tenant(TenantId(1)).put(b"a", b"1").unwrap();
    db.ship_now().unwrap();
    fs.fail_from(Op::Open, "SHIPPED", 1, Fault::NoSpace);
    for i in 0..20 {
        db.tenant(TenantId(1))
            .put(format!("k{i}").as_bytes(), &[3; 300])
            .unwrap();
        db.ship_now().unwrap();
    }
    assert_eq!(db.archive_status().unwrap().shipped_lsn, db.last_lsn());
    fs.heal();
    db.close().unwrap();
    // The record lags; the next open finds the rest in the archive.
    let db = Db::open(dir.path(), shipping(archive.clone(), 1 << 30)).unwrap();
    db.tenant(TenantId(1)).put(b"z", b"2").unwrap();
    db.ship_now().unwrap();
    db.close().unwrap();
    let found = decrypt_archive(dir.path(), &options(), &*archive).unwrap();
    assert_eq!(found.len(), 22, "every write once: nothing shipped twice");
}
