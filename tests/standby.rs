//! The warm standby: it follows a live database through its archive (new
//! records, new subjects' keys, shreds), serves reads, refuses writes,
//! reports its lag, survives a reopen, and once promoted takes writes under
//! a history of its own that never sees the old primary's later log.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{options, wait_until};
use strongroom::archive::{Archive, LocalArchive};
use strongroom::restore::histories;
use strongroom::{
    ArchiveOptions, Db, Error, ScopeState, ShredOptions, StandbyOptions, SubjectId, TenantId,
};

fn primary(dir: &std::path::Path, archive: &Arc<dyn Archive>) -> Db {
    Db::open(
        dir,
        options().segment_bytes_max(8 << 10).archive(
            ArchiveOptions::new(archive.clone())
                .ship_interval(Duration::from_millis(20))
                .backup_interval(None),
        ),
    )
    .unwrap()
}

/// A standby, with a scan cache: what it keeps follows the primary too.
fn standby(dir: &std::path::Path, archive: &Arc<dyn Archive>) -> Db {
    Db::open_standby(
        dir,
        options().scan_cache_bytes(16 << 20),
        StandbyOptions::new(archive.clone()).poll_interval(Duration::from_millis(20)),
    )
    .unwrap()
}

fn follows(archive: Arc<dyn Archive>) {
    let dir = tempfile::tempdir().unwrap();
    let main = primary(&dir.path().join("primary"), &archive);
    let t = main.tenant(TenantId(1));
    for i in 0..50 {
        t.put(format!("k{i}").as_bytes(), b"v1").unwrap();
    }
    main.backup_now().unwrap();
    for i in 50..100 {
        t.put(format!("k{i}").as_bytes(), b"v1").unwrap();
    }
    main.ship_now().unwrap();
    let standby_dir = dir.path().join("standby");
    let copy = standby(&standby_dir, &archive);
    assert_eq!(copy.last_lsn(), main.last_lsn(), "caught up when it opens");
    assert_eq!(copy.tenant(TenantId(1)).scan().unwrap().count(), 100);
    // Writes of every kind are refused.
    let c1 = copy.tenant(TenantId(1));
    assert!(matches!(c1.put(b"x", b"y"), Err(Error::Standby)));
    assert!(matches!(c1.rotate_key(), Err(Error::Standby)));
    assert!(matches!(
        copy.shred_tenant(TenantId(1), ShredOptions::immediate()),
        Err(Error::Standby)
    ));
    assert!(matches!(copy.backup_now(), Err(Error::Standby)));
    // New records and a new subject (a key the standby never had) arrive.
    t.put(b"k0", b"v2").unwrap();
    t.subject(SubjectId(7)).put(b"allergy", b"peanuts").unwrap();
    main.tenant(TenantId(2)).put(b"new", b"tenant").unwrap();
    let last = main.last_lsn();
    wait_until(
        "the standby applies the new frames",
        Duration::from_millis(10),
        || copy.last_lsn() >= last,
    );
    assert_eq!(c1.get(b"k0").unwrap().as_deref(), Some(&b"v2"[..]));
    // Scanned whole before (and so cached), the tenant scans as it is now.
    let k0 = |db: &Db| {
        let scan = db.tenant(TenantId(1)).scan().unwrap().map(Result::unwrap);
        scan.filter(|(k, _)| k == b"k0")
            .map(|(_, v)| v)
            .collect::<Vec<_>>()
    };
    assert_eq!(k0(&copy), [b"v2".to_vec()]);
    assert_eq!(
        c1.subject(SubjectId(7)).get(b"allergy").unwrap().as_deref(),
        Some(&b"peanuts"[..])
    );
    assert_eq!(
        copy.tenant(TenantId(2)).get(b"new").unwrap().as_deref(),
        Some(&b"tenant"[..])
    );
    let status = copy.standby_status().unwrap();
    assert_eq!(status.applied_lsn, last);
    assert_eq!(status.behind, Duration::ZERO);
    // A shred on the primary reaches the standby's readers, and a snapshot
    // taken before it.
    let view = c1.subject(SubjectId(7)).snapshot().unwrap();
    let scan_subject = || {
        c1.subject(SubjectId(7))
            .scan()
            .and_then(|s| s.collect::<Result<Vec<_>, _>>())
    };
    assert_eq!(scan_subject().unwrap().len(), 1);
    let served = copy.scan_cache_stats().served;
    assert_eq!(scan_subject().unwrap().len(), 1);
    assert_eq!(
        copy.scan_cache_stats().served,
        served + 1,
        "again, from the cache"
    );
    t.shred_subject(SubjectId(7), ShredOptions::immediate())
        .unwrap();
    wait_until(
        "the standby honours the shred",
        Duration::from_millis(10),
        || c1.subject(SubjectId(7)).state().unwrap() == ScopeState::Shredded,
    );
    assert!(matches!(
        c1.subject(SubjectId(7)).get(b"allergy"),
        Err(Error::Shredded { .. })
    ));
    assert!(matches!(view.get(b"allergy"), Err(Error::Shredded { .. })));
    assert!(matches!(scan_subject(), Err(Error::Shredded { .. })));
    wait_until(
        "the standby drops what it kept once the keyring changes",
        Duration::from_millis(10),
        || copy.scan_cache_stats().scopes == 0,
    );
    drop(view);
    // Closed and opened again, it goes on from where it was.
    copy.close().unwrap();
    t.put(b"while", b"closed").unwrap();
    main.ship_now().unwrap();
    let copy = standby(&standby_dir, &archive);
    assert_eq!(
        copy.tenant(TenantId(1)).get(b"while").unwrap().as_deref(),
        Some(&b"closed"[..])
    );
    // Promoted: writable, under a history of its own.
    let promoted = copy
        .promote(
            options().archive(
                ArchiveOptions::new(archive.clone())
                    .ship_interval(Duration::from_millis(20))
                    .backup_interval(None),
            ),
        )
        .unwrap();
    assert!(promoted.standby_status().is_none());
    let p1 = promoted.tenant(TenantId(1));
    p1.put(b"after", b"promotion").unwrap();
    promoted.ship_now().unwrap();
    assert_eq!(histories(&*archive).unwrap().len(), 2);
    // The old primary's later writes never reach it.
    t.put(b"old", b"primary").unwrap();
    main.ship_now().unwrap();
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(p1.get(b"old").unwrap(), None);
    assert_eq!(
        p1.get(b"after").unwrap().as_deref(),
        Some(&b"promotion"[..])
    );
    promoted.close().unwrap();
    main.close().unwrap();
}

#[test]
fn a_standby_follows_a_local_archive_and_is_promoted() {
    let archive_dir = tempfile::tempdir().unwrap();
    follows(Arc::new(LocalArchive::new(archive_dir.path())));
}

#[test]
fn a_standby_follows_an_s3_archive_and_is_promoted() {
    follows(Arc::new(common::garage::shared().archive()));
}

#[test]
fn a_standby_never_touches_another_database_and_a_promotion_is_finished_after_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let archive_dir = tempfile::tempdir().unwrap();
    let archive: Arc<dyn Archive> = Arc::new(LocalArchive::new(archive_dir.path()));
    let primary_dir = dir.path().join("primary");
    let main = primary(&primary_dir, &archive);
    main.tenant(TenantId(1)).put(b"k", b"v").unwrap();
    main.ship_now().unwrap();
    main.close().unwrap();
    // The primary's folder is not a standby: refused, its log untouched.
    let wal_before = common::all_files(&primary_dir.join("wal"));
    assert!(matches!(
        Db::open_standby(
            &primary_dir,
            options(),
            StandbyOptions::new(archive.clone())
        ),
        Err(Error::NotAStandby(_))
    ));
    assert_eq!(common::all_files(&primary_dir.join("wal")), wal_before);
    // A standby's folder does not open as an ordinary database, nor as the
    // standby of another history.
    let standby_dir = dir.path().join("standby");
    standby(&standby_dir, &archive).close().unwrap();
    assert!(matches!(
        Db::open(&standby_dir, options()),
        Err(Error::Standby)
    ));
    assert!(matches!(
        Db::open_standby(
            &standby_dir,
            options(),
            StandbyOptions::new(archive.clone()).history("00".repeat(16))
        ),
        Err(Error::InvalidArgument(_))
    ));
    // A promotion recorded but not carried out (a crash right after its
    // record): the next open finishes it.
    std::fs::write(
        standby_dir.join("PROMOTING"),
        format!("{}\n", "5a".repeat(16)),
    )
    .unwrap();
    let promoted = Db::open(&standby_dir, options()).unwrap();
    assert!(!standby_dir.join("STANDBY").exists() && !standby_dir.join("PROMOTING").exists());
    promoted
        .tenant(TenantId(1))
        .put(b"after", b"crash")
        .unwrap();
    assert_eq!(
        promoted.tenant(TenantId(1)).get(b"k").unwrap().as_deref(),
        Some(&b"v"[..])
    );
    promoted.close().unwrap();
}

#[test]
fn a_standby_keeps_following_after_the_primarys_master_key_rotates() {
    let dir = tempfile::tempdir().unwrap();
    let archive_dir = tempfile::tempdir().unwrap();
    let archive: Arc<dyn Archive> = Arc::new(LocalArchive::new(archive_dir.path()));
    let main = primary(&dir.path().join("primary"), &archive);
    let t = main.tenant(TenantId(1));
    t.subject(SubjectId(3)).put(b"k", b"v").unwrap();
    main.ship_now().unwrap();
    let copy = standby(&dir.path().join("standby"), &archive);
    main.rotate_master_key(strongroom::MasterKeySource::Bytes(zeroize::Zeroizing::new(
        [0x42; 32],
    )))
    .unwrap();
    t.shred_subject(SubjectId(3), ShredOptions::immediate())
        .unwrap();
    main.ship_now().unwrap();
    let c1 = copy.tenant(TenantId(1));
    wait_until(
        "the shred reaches the standby",
        Duration::from_millis(10),
        || c1.subject(SubjectId(3)).state().unwrap() == ScopeState::Shredded,
    );
    assert_eq!(copy.standby_status().unwrap().last_error, None);
    copy.close().unwrap();
    main.close().unwrap();
}
