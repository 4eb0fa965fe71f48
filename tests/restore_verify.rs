//! Verify: a clean archive passes (on a local folder and on Garage); every
//! fault planted in a copy of it (a missing piece, a flipped bit in a
//! piece, a backup manifest, an SST, a keyring copy, an object cut short, a
//! backup naming a deleted SST) is found and names its object; a second run
//! fetches only what is new.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use common::{all_files, copy_dir, options};
use strongroom::archive::{Archive, LocalArchive};
use strongroom::restore::{VerifyOptions, VerifyReport, verify};
use strongroom::{ArchiveOptions, Db, MasterKeySource, SubjectId, TenantId};

fn master() -> MasterKeySource {
    MasterKeySource::Bytes(zeroize::Zeroizing::new(common::KEY))
}

/// A database that shipped to `archive`: records across tenants and a
/// subject, two backups, a rotation (a retired key), 8 KiB segments.
fn fill(archive: Arc<dyn Archive>, dir: &Path, rounds: usize) {
    let db = Db::open(
        dir,
        options().segment_bytes_max(8 << 10).archive(
            ArchiveOptions::new(archive)
                .ship_interval(Duration::from_millis(20))
                .backup_interval(None)
                .retention(None),
        ),
    )
    .unwrap();
    for i in 0..rounds {
        let t = db.tenant(TenantId(1 + (i % 2) as u64));
        t.put(format!("k{i}").as_bytes(), &[b'v'; 200]).unwrap();
        t.subject(SubjectId(9))
            .put(format!("s{i}").as_bytes(), b"subject")
            .unwrap();
        if i == rounds / 3 {
            db.flush().unwrap();
            db.backup_now().unwrap();
            db.tenant(TenantId(1)).rotate_key().unwrap();
            db.run_maintenance().unwrap();
        }
        if i == 2 * rounds / 3 {
            db.flush().unwrap();
            db.backup_now().unwrap();
        }
    }
    db.ship_now().unwrap();
    db.close().unwrap();
}

/// A deep, full verify.
fn full(archive: &dyn Archive) -> VerifyReport {
    verify(
        archive,
        &VerifyOptions::new(master()).deep(true).incremental(false),
    )
    .unwrap()
}

/// An incremental verify (not deep: a deep run fetches the keyring's
/// copies every time, to open the new records with).
fn incremental(archive: &dyn Archive) -> VerifyReport {
    verify(archive, &VerifyOptions::new(master())).unwrap()
}

#[test]
fn a_clean_local_archive_passes_and_a_second_run_fetches_only_what_is_new() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("archive");
    std::fs::create_dir(&root).unwrap();
    let archive: Arc<dyn Archive> = Arc::new(LocalArchive::new(&root));
    fill(archive.clone(), &dir.path().join("db"), 300);
    let first = full(&*archive);
    assert!(first.problems.is_empty(), "{:?}", first.problems);
    assert_eq!(first.histories, 1);
    // Deep opens the records after the oldest backup (taken a third of the
    // way): at least the ~400 puts after it.
    assert!(
        first.objects_checked > 10 && first.records_opened >= 398,
        "{first:?}"
    );
    // Nothing new: nothing fetched.
    let second = incremental(&*archive);
    assert!(second.problems.is_empty(), "{:?}", second.problems);
    assert_eq!(
        (second.objects_checked, second.bytes_fetched),
        (0, 0),
        "{second:?}"
    );
    // New writes: only the new pieces are fetched.
    let before: Vec<PathBuf> = all_files(&root);
    let db = Db::open(
        dir.path().join("db"),
        options().segment_bytes_max(8 << 10).archive(
            ArchiveOptions::new(archive.clone())
                .backup_interval(None)
                .retention(None),
        ),
    )
    .unwrap();
    for i in 0..50 {
        db.tenant(TenantId(2))
            .put(format!("new{i}").as_bytes(), &[b'n'; 200])
            .unwrap();
    }
    db.ship_now().unwrap();
    db.close().unwrap();
    let new_pieces: Vec<PathBuf> = all_files(&root)
        .into_iter()
        .filter(|f| !before.contains(f) && f.extension().is_some_and(|e| e == "seg"))
        .collect();
    assert!(!new_pieces.is_empty());
    let third = incremental(&*archive);
    assert!(third.problems.is_empty(), "{:?}", third.problems);
    let new_bytes: u64 = new_pieces
        .iter()
        .map(|f| std::fs::metadata(f).unwrap().len())
        .sum();
    assert_eq!(
        (third.objects_checked, third.bytes_fetched),
        (new_pieces.len() as u64, new_bytes),
        "only the new pieces: {third:?}"
    );
    // A full run checks everything again.
    let again = full(&*archive);
    assert!(again.problems.is_empty() && again.objects_checked > first.objects_checked);
}

#[test]
fn a_clean_s3_archive_passes() {
    let dir = tempfile::tempdir().unwrap();
    let archive: Arc<dyn Archive> = Arc::new(common::garage::shared().archive());
    fill(archive.clone(), &dir.path().join("db"), 100);
    let report = full(&*archive);
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert!(report.objects_checked > 5);
    assert_eq!(incremental(&*archive).objects_checked, 0);
}

/// The archive's object names (relative to `root`) that match `pick`.
fn objects(root: &Path, pick: impl Fn(&str) -> bool) -> Vec<String> {
    all_files(root)
        .iter()
        .map(|f| f.strip_prefix(root).unwrap().to_string_lossy().into_owned())
        .filter(|n| pick(n))
        .collect()
}

fn flip(path: &Path, at: usize) {
    let mut bytes = std::fs::read(path).unwrap();
    let at = at.min(bytes.len() - 1);
    bytes[at] ^= 0x10;
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn every_planted_fault_is_found_and_names_its_object() {
    let dir = tempfile::tempdir().unwrap();
    let clean = dir.path().join("clean");
    std::fs::create_dir(&clean).unwrap();
    fill(
        Arc::new(LocalArchive::new(&clean)),
        &dir.path().join("db"),
        300,
    );
    assert!(full(&LocalArchive::new(&clean)).problems.is_empty());
    let pieces = objects(&clean, |n| n.ends_with(".seg"));
    let backups = objects(&clean, |n| n.ends_with(".backup"));
    let ssts = objects(&clean, |n| n.ends_with(".sst"));
    let keyring = objects(&clean, |n| n.contains("/keyring/tenants/"));
    assert!(pieces.len() > 4 && backups.len() == 2 && !ssts.is_empty() && !keyring.is_empty());
    let middle = &pieces[pieces.len() / 2];
    let next = &pieces[pieces.len() / 2 + 1];
    // (what is planted, what it does, the object a problem must name)
    type Plant<'a> = Box<dyn Fn(&Path) + 'a>;
    let faults: Vec<(&str, Plant, &String)> = vec![
        (
            "a missing piece",
            Box::new(|root: &Path| std::fs::remove_file(root.join(middle)).unwrap()),
            next,
        ),
        (
            "a bit flipped in a piece",
            Box::new(|root: &Path| flip(&root.join(middle), 200)),
            middle,
        ),
        (
            "a piece cut short",
            Box::new(|root: &Path| {
                let path = root.join(middle);
                let len = std::fs::metadata(&path).unwrap().len();
                let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
                file.set_len(len - 20).unwrap();
            }),
            middle,
        ),
        (
            "a bit flipped in a backup",
            Box::new(|root: &Path| flip(&root.join(&backups[0]), 100)),
            &backups[0],
        ),
        (
            "a bit flipped in an SST",
            Box::new(|root: &Path| flip(&root.join(&ssts[0]), 300)),
            &ssts[0],
        ),
        (
            "a bit flipped in a keyring copy",
            Box::new(|root: &Path| flip(&root.join(&keyring[0]), 150)),
            &keyring[0],
        ),
    ];
    for (what, plant, named) in faults {
        let copy = dir.path().join(what.replace(' ', "-"));
        copy_dir(&clean, &copy);
        plant(&copy);
        let report = full(&LocalArchive::new(&copy));
        assert!(
            report.problems.iter().any(|p| p.object == *named),
            "{what}: no problem names {named}: {:?}",
            report.problems
        );
    }
    // A backup naming an SST that is gone: the backup is named.
    let copy = dir.path().join("sst-gone");
    copy_dir(&clean, &copy);
    std::fs::remove_file(copy.join(&ssts[0])).unwrap();
    let report = full(&LocalArchive::new(&copy));
    assert!(
        report
            .problems
            .iter()
            .any(|p| backups.contains(&p.object) && p.what.contains(&ssts[0])),
        "{:?}",
        report.problems
    );
}
