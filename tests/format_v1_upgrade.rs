//! A database written in keyring format 1 (`tests/fixtures/v1/`, made by the
//! build before format 2) opens with today's build, reads exactly what it
//! held, and is upgraded at open; an upgrade cut short is done again.

mod common;

use std::path::Path;

use common::{copy_dir, snapshot_files};
use strongroom::fs::{Fault, FaultyFileSystem, Op};
use strongroom::{Db, Error, Options, ScopeState, SubjectId, TenantId};

fn options() -> Options {
    Options::with_key([0x5a; 32]).segment_bytes_max(4096)
}

fn fixture() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v1"),
        dir.path(),
    );
    std::fs::remove_file(dir.path().join("README.md")).unwrap();
    dir
}

/// Everything the fixture's writer wrote, as it left it.
fn assert_fixture_content(db: &Db) {
    let t1 = db.tenant(TenantId(1));
    for i in 0..20 {
        let value = t1.get(format!("t1-{i}").as_bytes()).unwrap();
        assert_eq!(value, Some(format!("value {i}").into_bytes()));
    }
    assert_eq!(
        t1.get(b"last").unwrap().as_deref(),
        Some(&b"in the log"[..])
    );
    let s5 = t1.subject(SubjectId(5));
    assert_eq!(
        s5.get(b"allergy").unwrap().as_deref(),
        Some(&b"peanuts"[..])
    );
    assert_eq!(
        t1.subject(SubjectId(6)).state().unwrap(),
        ScopeState::Shredded
    );
    let t2 = db.tenant(TenantId(2));
    assert_eq!(t2.scan().unwrap().count(), 20);
    assert_eq!(t2.get(b"t2-7").unwrap().as_deref(), Some(&b"rotated"[..]));
    let s9 = t2.subject(SubjectId(9));
    assert_eq!(s9.get(b"class").unwrap().as_deref(), Some(&b"3B"[..]));
    assert!(matches!(
        db.tenant(TenantId(3)).state().unwrap(),
        ScopeState::Sealed { .. }
    ));
    assert!(matches!(
        db.tenant(TenantId(3)).get(b"t3"),
        Err(Error::Sealed { .. })
    ));
    assert_eq!(
        db.tenant(TenantId(4)).state().unwrap(),
        ScopeState::Shredded
    );
}

fn keyring_versions(dir: &Path) -> Vec<u32> {
    snapshot_files(&dir.join("keyring"))
        .values()
        .map(|bytes| u32::from_le_bytes(bytes[8..12].try_into().unwrap()))
        .collect()
}

#[test]
fn a_format_1_database_opens_reads_and_is_upgraded() {
    let dir = fixture();
    assert!(keyring_versions(dir.path()).iter().all(|&v| v == 1));
    let db = Db::open(dir.path(), options()).unwrap();
    assert!(
        keyring_versions(dir.path()).iter().all(|&v| v == 2),
        "every keyring file is format 2 after open"
    );
    assert_fixture_content(&db);
    db.tenant(TenantId(1)).put(b"after", b"upgrade").unwrap();
    db.tenant(TenantId(2))
        .subject(SubjectId(10))
        .put(b"new", b"subject")
        .unwrap();
    db.close().unwrap();
    let db = Db::open(dir.path(), options()).unwrap();
    assert_fixture_content(&db);
    assert_eq!(
        db.tenant(TenantId(1)).get(b"after").unwrap().as_deref(),
        Some(&b"upgrade"[..])
    );
}

#[test]
fn an_upgrade_cut_short_is_done_again_at_the_next_open() {
    let dir = fixture();
    let fs = FaultyFileSystem::new();
    // Every shard and the ledger are rewritten; the manifest, last, is not.
    fs.fail_once(Op::Rename, "MANIFEST", 1, Fault::Eio);
    assert!(Db::open(dir.path(), options().file_system(fs.clone())).is_err());
    let versions = keyring_versions(dir.path());
    assert!(
        versions.contains(&1) && versions.contains(&2),
        "{versions:?}"
    );
    drop(fs);
    let db = Db::open(dir.path(), options()).unwrap();
    assert!(keyring_versions(dir.path()).iter().all(|&v| v == 2));
    assert_fixture_content(&db);
}

#[test]
fn a_format_1_database_upgraded_detects_what_format_1_could_not() {
    let dir = fixture();
    drop(Db::open(dir.path(), options()).unwrap());
    // Deleting the seals ledger lifted tenant 3's seal in format 1.
    std::fs::remove_file(dir.path().join("keyring/SEALS")).unwrap();
    assert!(matches!(
        Db::open(dir.path(), options()),
        Err(Error::Corruption { file, .. }) if file.ends_with("keyring/SEALS")
    ));
}
