//! The sample database and archive in `tests/fixtures/sample/` (FORMAT.md
//! §13): every record the keys decode from its log, store, archived pieces
//! and backups is exactly `decoded.txt`, and the database opens and reads
//! with today's build. A reader written from FORMAT.md alone can be checked
//! against the same files.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use common::copy_dir;
use strongroom::archive::LocalArchive;
use strongroom::forensic::{
    Decrypted, backups, decrypt_archive, decrypt_backup, decrypt_everything,
};
use strongroom::restore::{RestoreOptions, RestoreTarget, restore};
use strongroom::{
    ArchiveOptions, Db, Lsn, MasterKeySource, Options, RetentionPolicy, ScopeState, ShredOptions,
    SubjectId, TenantId,
};

const KEY: [u8; 32] = [0x5a; 32];

fn options(archive: &Path) -> Options {
    Options::with_key(KEY).segment_bytes_max(4096).archive(
        ArchiveOptions::new(Arc::new(LocalArchive::new(archive)))
            .ship_interval(Duration::from_secs(3600))
            .backup_interval(None)
            .retention(None::<RetentionPolicy>),
    )
}

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sample")
}

/// One line per record: where, scope, key = value.
fn lines(records: &[Decrypted], place: &str) -> Vec<String> {
    records
        .iter()
        .map(|r| {
            format!(
                "{place} {:?} {} {} = {}",
                r.found,
                r.scope,
                String::from_utf8_lossy(&r.key),
                String::from_utf8_lossy(&r.value)
            )
        })
        .collect()
}

/// Everything the keys decode from the sample, sorted.
fn decode(dir: &Path) -> Vec<String> {
    let db = dir.join("db");
    let archive = LocalArchive::new(dir.join("archive"));
    let plain = Options::with_key(KEY);
    let mut out = lines(&decrypt_everything(&db, &plain).unwrap(), "local");
    out.extend(lines(
        &decrypt_archive(&db, &plain, &archive).unwrap(),
        "archive",
    ));
    for (name, _) in backups(&db, &plain, &archive).unwrap() {
        let records = decrypt_backup(&db, &plain, &archive, &name, &dir.join("scratch")).unwrap();
        out.extend(lines(&records, "backup"));
    }
    out.sort();
    out
}

#[test]
fn the_sample_decodes_to_exactly_its_listing() {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&fixture(), dir.path());
    let expected = std::fs::read_to_string(fixture().join("decoded.txt")).unwrap();
    let expected: Vec<&str> = expected.lines().collect();
    assert_eq!(decode(dir.path()), expected);
    // And it opens and reads with today's build.
    let db = Db::open(dir.path().join("db"), options(&dir.path().join("archive"))).unwrap();
    let t1 = db.tenant(TenantId(1));
    assert_eq!(t1.get(b"name").unwrap().as_deref(), Some(&b"Ada"[..]));
    assert_eq!(
        t1.subject(SubjectId(5)).get(b"allergy").unwrap().as_deref(),
        Some(&b"peanuts"[..])
    );
    assert_eq!(
        t1.subject(SubjectId(6)).state().unwrap(),
        ScopeState::Shredded
    );
    assert_eq!(
        db.tenant(TenantId(3)).state().unwrap(),
        ScopeState::Shredded
    );
    db.close().unwrap();
}

/// The sample archive restores with the master key alone: to the latest
/// moment, and to LSN 6 (before tenant 2's rotation: its record sealed
/// under the retired version reads, the version put back), with the
/// destroyed scopes left out either way.
#[test]
fn the_sample_archive_restores_with_the_master_key_alone() {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&fixture().join("archive"), &dir.path().join("archive"));
    let archive = Arc::new(LocalArchive::new(dir.path().join("archive")));
    let master = MasterKeySource::Bytes(zeroize::Zeroizing::new(KEY));
    let read = |target, into: &str| {
        let into = dir.path().join(into);
        let report = restore(
            &into,
            &RestoreOptions::new(archive.clone(), master.clone()).target(target),
        )
        .unwrap();
        let db = Db::open(&into, Options::with_key(KEY)).unwrap();
        let plan = db.tenant(TenantId(2)).get(b"plan").unwrap();
        let last = db.tenant(TenantId(1)).get(b"last").unwrap();
        let shredded = [
            db.tenant(TenantId(1))
                .subject(SubjectId(6))
                .state()
                .unwrap(),
            db.tenant(TenantId(3)).state().unwrap(),
        ];
        db.close().unwrap();
        (report, plan, last, shredded)
    };
    let (report, plan, last, shredded) = read(RestoreTarget::Latest, "latest");
    assert_eq!(report.lsn, Lsn(9));
    assert_eq!(plan.as_deref(), Some(&b"platinum"[..]));
    assert_eq!(last.as_deref(), Some(&b"in the log"[..]));
    assert_eq!(shredded, [ScopeState::Shredded, ScopeState::Shredded]);
    let (report, plan, last, shredded) = read(RestoreTarget::Lsn(Lsn(6)), "at-6");
    assert_eq!((report.lsn, report.readmitted_key_versions), (Lsn(6), 1));
    assert_eq!(plan.as_deref(), Some(&b"gold"[..]));
    assert_eq!(last, None);
    assert_eq!(shredded, [ScopeState::Shredded, ScopeState::Shredded]);
    assert_eq!(report.destroyed.len(), 2, "{:?}", report.destroyed);
}

/// Writes the sample (run once, after a deliberate format change):
/// `STRONGROOM_FIXTURE_OUT=<dir> cargo test --release --test format_sample
/// -- --ignored --nocapture`, then copy `db/` (without RocksDB's `LOG*` and
/// `LOCK` files) and `archive/` into `tests/fixtures/sample/` and the
/// printed listing into `decoded.txt`.
#[test]
#[ignore]
fn make_sample_fixture() {
    let out = PathBuf::from(std::env::var_os("STRONGROOM_FIXTURE_OUT").expect("an output folder"));
    std::fs::create_dir_all(out.join("archive")).unwrap();
    let db = Db::open(out.join("db"), options(&out.join("archive"))).unwrap();
    // Tenant 1: records, a live subject and a shredded one.
    let t1 = db.tenant(TenantId(1));
    t1.put(b"name", b"Ada").unwrap();
    t1.put(b"class", b"3B").unwrap();
    t1.subject(SubjectId(5))
        .put(b"allergy", b"peanuts")
        .unwrap();
    t1.subject(SubjectId(6)).put(b"note", b"forget me").unwrap();
    // Tenant 2: rotated after a backup; tenant 3: shredded after it.
    db.tenant(TenantId(2)).put(b"plan", b"gold").unwrap();
    db.tenant(TenantId(3)).put(b"gone", b"soon").unwrap();
    db.flush().unwrap();
    db.backup_now().unwrap();
    db.tenant(TenantId(2)).rotate_key().unwrap();
    db.run_maintenance().unwrap();
    db.tenant(TenantId(2)).put(b"plan", b"platinum").unwrap();
    t1.shred_subject(SubjectId(6), ShredOptions::immediate())
        .unwrap();
    db.shred_tenant(TenantId(3), ShredOptions::immediate())
        .unwrap();
    db.flush().unwrap();
    db.backup_now().unwrap();
    t1.put(b"last", b"in the log").unwrap();
    db.close().unwrap();
    for line in decode(&out) {
        println!("{line}");
    }
}
