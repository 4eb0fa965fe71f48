//! The shipper, on a local folder and on a real S3 server (Garage): every
//! acknowledged write reaches the archive within an interval, sealed; a
//! segment leaves the disk only once archived; an archive that is down
//! holds writes back at the budget and shipping catches up by itself; a
//! crash between a put and its record ships nothing twice.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::{all_files, copy_dir, options, segments, wait_until};
use strongroom::archive::{Archive, ArchiveError, ArchiveOp, FaultyArchive, LocalArchive};
use strongroom::forensic::{Found, decrypt_archive};
use strongroom::{ArchiveOptions, Db, Error, Options, TenantId};

const INTERVAL: Duration = Duration::from_millis(50);

/// Shipping every interval, and no backups: a backup taken a moment after
/// open would let the default retention delete the pieces below it, and
/// these tests look at the whole log.
fn shipping(archive: Arc<dyn Archive>) -> Options {
    options().segment_bytes_max(8 << 10).archive(
        ArchiveOptions::new(archive)
            .ship_interval(INTERVAL)
            .backup_interval(None),
    )
}

/// Waits (a bounded while) until the archive holds every committed frame.
fn wait_shipped(db: &Db) {
    wait_until("shipping every committed frame", INTERVAL / 2, || {
        db.archive_status().unwrap().shipped_lsn >= db.last_lsn()
    });
}

/// Shipping to `archive` only when asked (`Db::ship_now`) or when a segment
/// rolls: an hour's interval.
fn shipping_when_asked(archive: Arc<dyn Archive>) -> Options {
    options().segment_bytes_max(8 << 10).archive(
        ArchiveOptions::new(archive)
            .ship_interval(Duration::from_secs(3600))
            .backup_interval(None),
    )
}

/// The LSN ranges of the archive's pieces, in order.
fn pieces(archive: &dyn Archive) -> Vec<(u64, u64)> {
    archive
        .list("")
        .unwrap()
        .iter()
        .filter_map(|o| {
            let stem = o.name.rsplit('/').next()?.strip_suffix(".seg")?;
            let (a, b) = stem.split_once('-')?;
            Some((a.parse().ok()?, b.parse().ok()?))
        })
        .collect()
}

fn value(i: usize) -> Vec<u8> {
    format!("canary-value-{i:05}-{}", "x".repeat(i % 300)).into_bytes()
}

fn every_write_is_archived_sealed_and_once(archive: Arc<dyn Archive>, raw_dir: Option<&Path>) {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), shipping(archive.clone())).unwrap();
    let mut written = BTreeMap::new();
    for i in 0..300 {
        let tenant = db.tenant(TenantId(1 + (i % 3) as u64));
        let key = format!("canary-key-{i:05}");
        let lsn = tenant.put(key.as_bytes(), &value(i)).unwrap();
        written.insert(lsn.0, (key, value(i)));
        if i % 100 == 99 {
            wait_shipped(&db);
        }
    }
    wait_shipped(&db);
    db.flush().unwrap();
    assert!(
        segments(dir.path()).len() <= 2,
        "archived segments leave the disk"
    );
    db.close().unwrap();

    // Contiguous pieces from LSN 1, none overlapping.
    let ranges = pieces(&*archive);
    assert!(ranges.len() > 3, "several segments and pieces: {ranges:?}");
    let mut next = 1;
    for (first, last) in &ranges {
        assert_eq!(*first, next, "pieces are contiguous: {ranges:?}");
        next = last + 1;
    }
    assert_eq!(next - 1, *written.keys().last().unwrap());

    // Every write decrypts from the archive, at its LSN, exactly once.
    let found = decrypt_archive(dir.path(), &options(), &*archive).unwrap();
    assert_eq!(found.len(), written.len());
    for d in found {
        let Found::Archive(lsn) = d.found else {
            panic!("found outside the archive: {:?}", d.found)
        };
        let (key, value) = &written[&lsn];
        assert_eq!((&d.key, &d.value), (&key.clone().into_bytes(), value));
    }

    // No plaintext key or value in any byte the archive holds.
    if let Some(raw) = raw_dir {
        let files = all_files(raw);
        assert!(!files.is_empty());
        for file in files {
            let bytes = std::fs::read(&file).unwrap();
            for needle in [&b"canary-"[..], b"xxxxxxxxxxxxxxxx"] {
                assert!(
                    !bytes.windows(needle.len()).any(|w| w == needle),
                    "plaintext in {}",
                    file.display()
                );
            }
        }
    }
}

#[test]
fn every_write_reaches_a_local_archive_sealed_and_once() {
    let archive_dir = tempfile::tempdir().unwrap();
    every_write_is_archived_sealed_and_once(
        Arc::new(LocalArchive::new(archive_dir.path())),
        Some(archive_dir.path()),
    );
}

#[test]
fn every_write_reaches_an_s3_archive_sealed_and_once() {
    let garage = common::garage::shared();
    every_write_is_archived_sealed_and_once(
        Arc::new(garage.archive()),
        Some(&garage.dir().join("data")),
    );
}

#[test]
fn an_archive_that_is_down_keeps_segments_holds_writes_at_the_budget_and_catches_up() {
    let dir = tempfile::tempdir().unwrap();
    let archive_dir = tempfile::tempdir().unwrap();
    let faulty = Arc::new(FaultyArchive::new(Arc::new(LocalArchive::new(
        archive_dir.path(),
    ))));
    let budget = 64 << 10;
    let db = Db::open(
        dir.path(),
        options().segment_bytes_max(8 << 10).archive(
            ArchiveOptions::new(faulty.clone())
                .ship_interval(INTERVAL)
                .unshipped_bytes_max(budget)
                .backup_interval(None),
        ),
    )
    .unwrap();
    let tenant = db.tenant(TenantId(1));
    tenant.put(b"before", b"1").unwrap();
    wait_shipped(&db);
    faulty.set_down(true);
    // Writes go on until the unshipped log passes the budget, then wait.
    let mut refused = None;
    for i in 0..10_000 {
        match tenant.put(format!("k{i}").as_bytes(), &[7; 200]) {
            Ok(_) => {}
            Err(e @ Error::ArchiveBehind { .. }) => {
                refused = Some((i, e));
                break;
            }
            Err(e) => panic!("unexpected: {e}"),
        }
        if i % 50 == 0 {
            std::thread::sleep(INTERVAL);
        }
    }
    let (accepted, e) = refused.expect("writes are refused past the budget");
    let Error::ArchiveBehind {
        unshipped_bytes,
        budget_bytes,
    } = e
    else {
        unreachable!()
    };
    assert_eq!(budget_bytes, budget);
    assert!(unshipped_bytes > budget);
    // Unshipped bytes are counted by whole files, zeros written ahead of the
    // frames included: refused between a quarter and all of the budget.
    assert!(
        accepted * 200 >= budget as usize / 4,
        "refused only near the budget ({accepted} writes)"
    );
    // Nothing unshipped leaves the disk, whatever the checkpoints.
    db.flush().unwrap();
    assert!(segments(dir.path()).len() >= (budget / (8 << 10)) as usize);
    let unshipped_lsn = db.last_lsn();
    // The archive comes back: shipping catches up by itself, and writes
    // are taken again.
    faulty.set_down(false);
    wait_shipped(&db);
    assert!(db.archive_status().unwrap().shipped_lsn >= unshipped_lsn);
    wait_until("writes taken again", INTERVAL, || {
        tenant.put(b"after", b"2").is_ok()
    });
    db.flush().unwrap();
    assert!(
        segments(dir.path()).len() <= 2,
        "archived segments leave the disk"
    );
    db.close().unwrap();
    let found = decrypt_archive(
        dir.path(),
        &options(),
        &LocalArchive::new(archive_dir.path()),
    )
    .unwrap();
    assert_eq!(found.len(), accepted + 2, "every acknowledged write, once");
}

#[test]
fn a_crash_between_a_put_and_its_record_ships_nothing_twice() {
    let dir = tempfile::tempdir().unwrap();
    let archive_dir = tempfile::tempdir().unwrap();
    let archive: Arc<dyn Archive> = Arc::new(LocalArchive::new(archive_dir.path()));
    let db = Db::open(dir.path(), shipping(archive.clone())).unwrap();
    let tenant = db.tenant(TenantId(1));
    for i in 0..20 {
        tenant.put(format!("a{i}").as_bytes(), b"v").unwrap();
    }
    wait_shipped(&db);
    let record = std::fs::read(dir.path().join("SHIPPED")).unwrap();
    for i in 0..20 {
        tenant.put(format!("b{i}").as_bytes(), b"v").unwrap();
    }
    wait_shipped(&db);
    db.close().unwrap();
    // As if the process died after the last puts but before their record.
    std::fs::write(dir.path().join("SHIPPED"), &record).unwrap();
    let db = Db::open(dir.path(), shipping(archive.clone())).unwrap();
    db.tenant(TenantId(1)).put(b"c", b"v").unwrap();
    wait_shipped(&db);
    db.close().unwrap();
    let ranges = pieces(&*archive);
    let mut next = 1;
    for (first, last) in &ranges {
        assert_eq!(*first, next, "no gap, no overlap: {ranges:?}");
        next = last + 1;
    }
    assert_eq!(next - 1, 41);
    // Also with no record at all: the archive alone says where to go on.
    std::fs::remove_file(dir.path().join("SHIPPED")).unwrap();
    let db = Db::open(dir.path(), shipping(archive.clone())).unwrap();
    db.tenant(TenantId(1)).put(b"d", b"v").unwrap();
    wait_shipped(&db);
    db.close().unwrap();
    let ranges = pieces(&*archive);
    assert_eq!(ranges.last().unwrap().1, 42);
    assert!(
        ranges.windows(2).all(|w| w[0].1 + 1 == w[1].0),
        "{ranges:?}"
    );
}

#[test]
fn a_close_does_not_wait_on_an_archive_that_is_down_and_the_next_open_ships_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let archive_dir = tempfile::tempdir().unwrap();
    let faulty = Arc::new(FaultyArchive::new(Arc::new(LocalArchive::new(
        archive_dir.path(),
    ))));
    // Passes only when asked, so the calls counted are this test's.
    let db = Db::open(dir.path(), shipping_when_asked(faulty.clone())).unwrap();
    db.tenant(TenantId(1)).put(b"a", b"1").unwrap();
    db.ship_now().unwrap();
    faulty.set_down(true);
    db.tenant(TenantId(1)).put(b"b", b"2").unwrap();
    assert!(db.ship_now().is_err());
    let last = db.last_lsn();
    let tried = faulty.calls(ArchiveOp::Put);
    db.close().unwrap();
    assert_eq!(
        faulty.calls(ArchiveOp::Put),
        tried,
        "no last pass at close while the archive is down"
    );
    faulty.set_down(false);
    let db = Db::open(dir.path(), shipping(faulty.clone())).unwrap();
    wait_until("the rest shipped", INTERVAL, || {
        db.archive_status().unwrap().shipped_lsn >= last
    });
    db.close().unwrap();
}

#[test]
fn a_copy_of_the_database_that_wrote_its_own_frames_is_not_taken_for_the_archive_it_ships_to() {
    let dir = tempfile::tempdir().unwrap();
    let copy = tempfile::tempdir().unwrap();
    let archive_dir = tempfile::tempdir().unwrap();
    let archive: Arc<dyn Archive> = Arc::new(LocalArchive::new(archive_dir.path()));
    let put = |db: &Db, prefix: &str| {
        for i in 0..20 {
            db.tenant(TenantId(1))
                .put(format!("{prefix}{i}").as_bytes(), b"v")
                .unwrap();
        }
    };
    let db = Db::open(dir.path(), shipping(archive.clone())).unwrap();
    put(&db, "a");
    wait_shipped(&db);
    db.close().unwrap();
    copy_dir(dir.path(), copy.path());
    // The original goes on and ships frames 21..=40.
    let db = Db::open(dir.path(), shipping(archive.clone())).unwrap();
    put(&db, "b");
    wait_shipped(&db);
    db.close().unwrap();
    // The copy writes other frames 21..=40 while not shipping, then is
    // pointed at the same archive: the pieces there under its names are
    // not its frames.
    let db = Db::open(copy.path(), options()).unwrap();
    put(&db, "x");
    db.close().unwrap();
    match Db::open(copy.path(), shipping(archive.clone())) {
        Err(Error::Archive(ArchiveError::Corrupt { name, .. })) => {
            assert!(name.ends_with("-00000000000000000040.seg"), "{name}")
        }
        other => panic!("expected the archive's piece named: {:?}", other.map(drop)),
    }
    // The original still opens and ships.
    let db = Db::open(dir.path(), shipping(archive.clone())).unwrap();
    put(&db, "c");
    wait_shipped(&db);
    db.close().unwrap();
}

#[test]
fn shipping_goes_on_after_a_checkpoint_removed_the_segment_it_stood_in() {
    let dir = tempfile::tempdir().unwrap();
    let archive_dir = tempfile::tempdir().unwrap();
    let archive: Arc<dyn Archive> = Arc::new(LocalArchive::new(archive_dir.path()));
    let db = Db::open(dir.path(), shipping_when_asked(archive.clone())).unwrap();
    let tenant = db.tenant(TenantId(1));
    // Each write shipped at once, until one starts a new segment: the one
    // before is then archived whole, and the shipper stands at its end.
    let mut i = 0;
    while segments(dir.path()).len() < 2 {
        tenant.put(format!("k{i}").as_bytes(), &[1; 300]).unwrap();
        if segments(dir.path()).len() < 2 {
            db.ship_now().unwrap();
        }
        i += 1;
    }
    db.flush().unwrap();
    assert_eq!(
        segments(dir.path()).len(),
        1,
        "the archived segment is removed"
    );
    tenant.put(b"after", b"1").unwrap();
    db.ship_now().unwrap();
    assert_eq!(db.archive_status().unwrap().shipped_lsn, db.last_lsn());
    db.close().unwrap();
    assert_eq!(pieces(&*archive).last().unwrap().1, i as u64 + 1);
}

#[test]
fn a_rolled_segment_is_shipped_at_once_not_at_the_next_interval() {
    let dir = tempfile::tempdir().unwrap();
    let archive_dir = tempfile::tempdir().unwrap();
    let archive: Arc<dyn Archive> = Arc::new(LocalArchive::new(archive_dir.path()));
    let db = Db::open(dir.path(), shipping_when_asked(archive)).unwrap();
    let tenant = db.tenant(TenantId(1));
    let mut before_roll = 0;
    while segments(dir.path()).len() < 2 {
        before_roll = db.last_lsn().0;
        tenant
            .put(format!("k{before_roll}").as_bytes(), &[1; 300])
            .unwrap();
    }
    assert!(before_roll > 0);
    wait_until(
        "shipping the rolled segment",
        Duration::from_millis(5),
        || db.archive_status().unwrap().shipped_lsn.0 >= before_roll,
    );
    db.close().unwrap();
}

#[test]
fn a_database_opens_and_takes_writes_while_its_archive_is_down() {
    let dir = tempfile::tempdir().unwrap();
    let archive_dir = tempfile::tempdir().unwrap();
    let faulty = Arc::new(FaultyArchive::new(Arc::new(LocalArchive::new(
        archive_dir.path(),
    ))));
    let db = Db::open(dir.path(), shipping(faulty.clone())).unwrap();
    db.tenant(TenantId(1)).put(b"a", b"1").unwrap();
    wait_shipped(&db);
    db.close().unwrap();
    faulty.set_down(true);
    let db = Db::open(dir.path(), shipping(faulty.clone())).unwrap();
    db.tenant(TenantId(1)).put(b"b", b"2").unwrap();
    faulty.set_down(false);
    wait_shipped(&db);
    db.close().unwrap();
    let ranges = pieces(&*faulty);
    assert!(
        ranges.windows(2).all(|w| w[0].1 + 1 == w[1].0),
        "{ranges:?}"
    );
}

#[test]
fn a_frame_larger_than_a_piece_is_shipped_whole() {
    let dir = tempfile::tempdir().unwrap();
    let archive_dir = tempfile::tempdir().unwrap();
    let archive: Arc<dyn Archive> = Arc::new(LocalArchive::new(archive_dir.path()));
    let db = Db::open(dir.path(), shipping(archive.clone())).unwrap();
    // Random: it must not compress below the read window.
    let mut big = vec![0u8; strongroom::format::USER_VALUE_MAX];
    rand::fill(&mut big[..]);
    db.tenant(TenantId(1)).put(b"big", &big).unwrap();
    db.tenant(TenantId(1)).put(b"after", b"1").unwrap();
    wait_shipped(&db);
    db.close().unwrap();
    let found = decrypt_archive(dir.path(), &options(), &*archive).unwrap();
    assert_eq!(found.len(), 2);
    assert!(found.iter().any(|d| d.key == b"big" && d.value == big));
    // A zero interval would spin: refused.
    let zero = options().archive(ArchiveOptions::new(archive).ship_interval(Duration::ZERO));
    assert!(matches!(
        Db::open(dir.path(), zero),
        Err(Error::InvalidArgument(_))
    ));
}
