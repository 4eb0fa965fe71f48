//! The keyring's chain of custody: for each kind of keyring file (tenant
//! shard, subject shard, seals ledger, manifest) holding scopes in each
//! state (live, sealed, shredded), the file deleted, replaced by an older
//! copy of itself, cut short, a record removed, or a record edited with its
//! CRC recomputed: open, or the first read of the scope, is a typed error
//! naming the file; the failed open changes no file; the scope takes no
//! write; no wrong value and no empty scope is ever returned.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{options, snapshot_files};
use strongroom::format::{
    KEYRING_RECORD_LEN, KEYRING_SHARD_HEADER_LEN, MAC_LEN, SEALS_HEADER_LEN, SEALS_RECORD_LEN,
};
use strongroom::{Db, Error, ShredOptions, SubjectId, TenantId};

const DAY: Duration = Duration::from_secs(24 * 3600);

/// The scopes of the fixture, and what a read of each must find.
#[derive(Debug, Clone, Copy)]
enum Target {
    /// Tenant 1 (live) and its own records; its subjects' anchors.
    TenantShardLive,
    /// Tenant 2, sealed for a day.
    TenantShardSealed,
    /// Tenant 3, shredded.
    TenantShardShredded,
    /// Subject 5 of tenant 1, live.
    SubjectShardLive,
    /// Subject 7 of tenant 1, sealed for a day.
    SubjectShardSealed,
    /// Subject 6 of tenant 1, shredded.
    SubjectShardShredded,
    /// The seals of tenant 2 and subject 7.
    Seals,
}

const TARGETS: [Target; 7] = [
    Target::TenantShardLive,
    Target::TenantShardSealed,
    Target::TenantShardShredded,
    Target::SubjectShardLive,
    Target::SubjectShardSealed,
    Target::SubjectShardShredded,
    Target::Seals,
];

impl Target {
    fn path(self, dir: &Path) -> PathBuf {
        let keyring = dir.join("keyring");
        let subject = |s: u64| keyring.join(format!("subjects/{:016x}/{s:04}.keys", 1));
        match self {
            Target::TenantShardLive => keyring.join("tenants/001.keys"),
            Target::TenantShardSealed => keyring.join("tenants/002.keys"),
            Target::TenantShardShredded => keyring.join("tenants/003.keys"),
            Target::SubjectShardLive => subject(5),
            Target::SubjectShardSealed => subject(7),
            Target::SubjectShardShredded => subject(6),
            Target::Seals => keyring.join("SEALS"),
        }
    }

    fn layout(self) -> (usize, usize) {
        match self {
            Target::Seals => (SEALS_HEADER_LEN, SEALS_RECORD_LEN),
            _ => (KEYRING_SHARD_HEADER_LEN, KEYRING_RECORD_LEN),
        }
    }

    /// The scopes whose keys or seals the file holds: (tenant, subject).
    fn scopes(self) -> Vec<(u64, Option<u64>)> {
        match self {
            Target::TenantShardLive => vec![(1, None), (1, Some(5))],
            Target::TenantShardSealed => vec![(2, None)],
            Target::TenantShardShredded => vec![(3, None)],
            Target::SubjectShardLive => vec![(1, Some(5)), (1, Some(1029))],
            Target::SubjectShardSealed => vec![(1, Some(7)), (1, Some(1031))],
            Target::SubjectShardShredded => vec![(1, Some(6)), (1, Some(1030))],
            Target::Seals => vec![(2, None), (1, Some(7))],
        }
    }
}

/// A get, a scan and a put of every scope the file holds: each must fail
/// naming the file, never return a value or nothing.
fn assert_refused(db: &Db, target: Target, file: &Path) {
    for (tenant, subject) in target.scopes() {
        let t = db.tenant(TenantId(tenant));
        let results: Vec<strongroom::Result<()>> = match subject {
            None => vec![
                t.get(b"k").map(drop),
                t.scan()
                    .and_then(|s| s.collect::<strongroom::Result<Vec<_>>>())
                    .map(drop),
                t.put(b"k", b"v").map(drop),
            ],
            Some(s) => {
                let s = t.subject(SubjectId(s));
                vec![
                    s.get(b"k").map(drop),
                    s.scan()
                        .and_then(|s| s.collect::<strongroom::Result<Vec<_>>>())
                        .map(drop),
                    s.put(b"k", b"v").map(drop),
                ]
            }
        };
        for (i, result) in results.into_iter().enumerate() {
            match result {
                Err(Error::Corruption { file: named, .. }) if named == file => {}
                Err(other) => panic!("{target:?} {tenant}/{subject:?} op {i}: {other}"),
                Ok(()) => panic!("{target:?} {tenant}/{subject:?} op {i} succeeded"),
            }
        }
    }
}

/// Builds the fixture; returns every keyring file's bytes as of the end of
/// the first phase (the "older copies").
fn build(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let db = Db::open(dir, options()).unwrap();
    let t1 = db.tenant(TenantId(1));
    t1.put(b"t1", b"tenant one").unwrap();
    for s in [5, 6, 7, 9] {
        t1.subject(SubjectId(s))
            .put(format!("s{s}").as_bytes(), b"subject")
            .unwrap();
    }
    db.tenant(TenantId(2)).put(b"t2", b"tenant two").unwrap();
    db.tenant(TenantId(3)).put(b"t3", b"tenant three").unwrap();
    // The seals ledger exists from here on: a seal and its cancel.
    t1.shred_subject(SubjectId(9), ShredOptions::with_grace(DAY))
        .unwrap();
    assert!(t1.cancel_shred_subject(SubjectId(9)).unwrap());
    db.close().unwrap();
    let old = snapshot_files(&dir.join("keyring"));

    let db = Db::open(dir, options()).unwrap();
    let t1 = db.tenant(TenantId(1));
    for t in [1, 2] {
        db.tenant(TenantId(t)).rotate_key().unwrap();
    }
    db.run_maintenance().unwrap();
    t1.subject(SubjectId(5)).put(b"s5b", b"more").unwrap();
    t1.subject(SubjectId(1029))
        .put(b"s1029", b"same shard as 5")
        .unwrap();
    t1.subject(SubjectId(1030))
        .put(b"s1030", b"same shard as 6")
        .unwrap();
    t1.subject(SubjectId(1031))
        .put(b"s1031", b"same shard as 7")
        .unwrap();
    t1.shred_subject(SubjectId(6), ShredOptions::immediate())
        .unwrap();
    t1.shred_subject(SubjectId(7), ShredOptions::with_grace(DAY))
        .unwrap();
    db.shred_tenant(TenantId(2), ShredOptions::with_grace(DAY))
        .unwrap();
    db.shred_tenant(TenantId(3), ShredOptions::immediate())
        .unwrap();
    db.run_maintenance().unwrap();
    db.close().unwrap();
    // Settled: this open compacts the seals ledger, and later opens of an
    // untouched keyring write nothing.
    Db::open(dir, options()).unwrap().close().unwrap();
    old
}

#[derive(Debug, Clone, Copy)]
enum Tamper {
    Delete,
    OlderCopy,
    CutShort,
    RecordRemoved,
    RecordEdited,
}

fn tamper(
    path: &Path,
    how: Tamper,
    old: &BTreeMap<PathBuf, Vec<u8>>,
    layout: (usize, usize),
) -> bool {
    let (header, record) = layout;
    let bytes = std::fs::read(path).unwrap();
    let records = (bytes.len() - header) / record;
    let new = match how {
        Tamper::Delete => {
            std::fs::remove_file(path).unwrap();
            return true;
        }
        Tamper::OlderCopy => match old.get(path) {
            Some(old) if *old != bytes => old.clone(),
            _ => return false,
        },
        Tamper::CutShort if records >= 1 => bytes[..bytes.len() - record].to_vec(),
        Tamper::RecordRemoved if records >= 2 => {
            let mut b = bytes[..header].to_vec();
            b.extend_from_slice(&bytes[header + record..]);
            b
        }
        Tamper::RecordEdited if records >= 1 => {
            // The record's time field (or a seal's deadline), its CRC
            // recomputed: what someone without the key can do.
            let mut b = bytes.clone();
            let at = header + (records - 1) * record;
            let body = record - MAC_LEN;
            b[at + body - 6] ^= 0x40;
            let crc = crc32fast::hash(&b[at..at + body - 4]).to_le_bytes();
            b[at + body - 4..at + body].copy_from_slice(&crc);
            b
        }
        _ => return false,
    };
    std::fs::write(path, new).unwrap();
    true
}

#[test]
fn every_keyring_file_tampered_with_is_refused_naming_it() {
    let mut cases = 0;
    for target in TARGETS {
        for how in [
            Tamper::Delete,
            Tamper::OlderCopy,
            Tamper::CutShort,
            Tamper::RecordRemoved,
            Tamper::RecordEdited,
        ] {
            let dir = tempfile::tempdir().unwrap();
            let old = build(dir.path());
            let path = target.path(dir.path());
            if !tamper(&path, how, &old, target.layout()) {
                continue;
            }
            cases += 1;
            let before = snapshot_files(&dir.path().join("keyring"));
            match Db::open(dir.path(), options()) {
                Err(Error::Corruption { file, .. }) => {
                    assert_eq!(file, path, "{target:?} {how:?}: the error names the file");
                    let after = snapshot_files(&dir.path().join("keyring"));
                    assert_eq!(
                        before, after,
                        "{target:?} {how:?}: a failed open changed a file"
                    );
                }
                Err(other) => panic!("{target:?} {how:?}: open failed with {other}"),
                Ok(db) => {
                    assert!(
                        matches!(
                            target,
                            Target::SubjectShardLive
                                | Target::SubjectShardSealed
                                | Target::SubjectShardShredded
                        ),
                        "{target:?} {how:?}: only subject shards are read after open"
                    );
                    assert_refused(&db, target, &path);
                    drop(db);
                    let after = snapshot_files(&dir.path().join("keyring"));
                    let changed: Vec<_> = before
                        .keys()
                        .chain(after.keys())
                        .filter(|p| before.get(*p) != after.get(*p))
                        .collect();
                    assert!(
                        changed.is_empty(),
                        "{target:?} {how:?}: changed {changed:?}"
                    );
                }
            }
        }
    }
    println!("{cases} tampered keyring files refused");
    assert!(cases >= 30, "only {cases} cases ran");
}

#[test]
fn an_older_or_edited_manifest_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let old = build(dir.path());
    let manifest = dir.path().join("keyring/MANIFEST");
    let current = std::fs::read(&manifest).unwrap();

    // An older copy of the whole keyring: consistent in itself, but older
    // than what the store has seen.
    let newer = snapshot_files(&dir.path().join("keyring"));
    for (path, bytes) in &old {
        std::fs::write(path, bytes).unwrap();
    }
    let before = snapshot_files(&dir.path().join("keyring"));
    match Db::open(dir.path(), options()) {
        Err(Error::Corruption { file, kind, .. }) => {
            assert_eq!(file, manifest);
            assert_eq!(kind, strongroom::CorruptionKind::RolledBack);
        }
        other => panic!("an older keyring opened: {:?}", other.err()),
    }
    assert_eq!(snapshot_files(&dir.path().join("keyring")), before);
    for (path, bytes) in &newer {
        std::fs::write(path, bytes).unwrap();
    }

    // An anchor edited, the CRC recomputed.
    let mut edited = current.clone();
    edited[200] ^= 1;
    let crc_at = edited.len() - 4;
    let crc = crc32fast::hash(&edited[..crc_at]).to_le_bytes();
    edited[crc_at..].copy_from_slice(&crc);
    std::fs::write(&manifest, &edited).unwrap();
    match Db::open(dir.path(), options()) {
        Err(Error::Corruption { file, kind, .. }) => {
            assert_eq!(file, manifest);
            assert_eq!(kind, strongroom::CorruptionKind::MacChain);
        }
        other => panic!("an edited manifest opened: {:?}", other.err()),
    }
    std::fs::write(&manifest, &current).unwrap();
    let db = Db::open(dir.path(), options()).unwrap();
    assert_eq!(
        db.tenant(TenantId(1)).get(b"t1").unwrap().as_deref(),
        Some(&b"tenant one"[..])
    );
}

/// A power cut at every step of a shred and of a rotation (the child's
/// rewrite, its anchor in the tenant shard, the manifest): each reopen takes
/// the files a crash left ahead of their parents as they are, never for a
/// rollback, and the scope is in a state its calls allow.
#[test]
fn a_crash_between_a_child_and_its_parents_is_never_a_rollback() {
    use strongroom::ScopeState;
    use strongroom::fs::FaultyFileSystem;
    let mut cuts = 0;
    for step in 1.. {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = Db::open(dir.path(), options()).unwrap();
            let t = db.tenant(TenantId(1));
            t.put(b"k", b"v").unwrap();
            t.subject(SubjectId(5)).put(b"k", b"v").unwrap();
            db.close().unwrap();
        }
        let fs = FaultyFileSystem::new();
        let db = Db::open(dir.path(), options().file_system(fs.clone())).unwrap();
        fs.cut_power_after(step);
        let t = db.tenant(TenantId(1));
        let shredded = t.shred_subject(SubjectId(5), ShredOptions::immediate());
        let rotated = t.rotate_key().and_then(|_| db.run_maintenance());
        let finished = !fs.powered_off();
        drop(db);
        fs.apply_power_cut(step).unwrap();
        let db = Db::open(dir.path(), options())
            .unwrap_or_else(|e| panic!("power cut after {step} operations: {e}"));
        let t = db.tenant(TenantId(1));
        let state = t.subject(SubjectId(5)).state().unwrap();
        // An acknowledged shred holds; one cut short may have got anywhere.
        if shredded.is_ok() {
            assert_eq!(state, ScopeState::Shredded, "step {step}");
        }
        assert_eq!(
            t.get(b"k").unwrap().as_deref(),
            Some(&b"v"[..]),
            "step {step}"
        );
        if rotated.is_ok() {
            db.run_maintenance().unwrap();
        }
        cuts += 1;
        if finished {
            break;
        }
    }
    println!("{cuts} power cuts through a shred and a rotation");
    assert!(cuts > 10);
}

/// A shard's rewrite whose rename happened but whose folder sync failed: the
/// call fails, and the next append to that shard must continue the file's
/// real chain (the new generation), not the one before it.
#[test]
fn a_failed_folder_sync_after_a_rename_does_not_break_the_chain() {
    use strongroom::ScopeState;
    use strongroom::fs::{Fault, FaultyFileSystem, Op};
    let dir = tempfile::tempdir().unwrap();
    let fs = FaultyFileSystem::new();
    let db = Db::open(dir.path(), options().file_system(fs.clone())).unwrap();
    let t = db.tenant(TenantId(1));
    // Subjects 5, 1029 and 2053 share subject shard 5.
    t.subject(SubjectId(5)).put(b"k", b"five").unwrap();
    t.subject(SubjectId(1029)).put(b"k", b"1029").unwrap();
    fs.fail_once(Op::SyncDir, "subjects", 1, Fault::Eio);
    assert!(
        t.shred_subject(SubjectId(5), ShredOptions::immediate())
            .is_err()
    );
    t.subject(SubjectId(2053)).put(b"k", b"2053").unwrap();
    db.run_maintenance().unwrap();
    drop(db);
    let db = Db::open(dir.path(), options()).unwrap();
    let t = db.tenant(TenantId(1));
    assert_eq!(
        t.subject(SubjectId(2053)).get(b"k").unwrap().as_deref(),
        Some(&b"2053"[..])
    );
    assert_eq!(
        t.subject(SubjectId(1029)).get(b"k").unwrap().as_deref(),
        Some(&b"1029"[..])
    );
    assert_eq!(
        t.subject(SubjectId(5)).state().unwrap(),
        ScopeState::Shredded
    );
}

/// A subject shard whose load fails (here its torn-tail repair cannot be
/// written) is not taken for empty: a later key creation in that shard never
/// writes a new file over the keys it holds.
#[test]
fn a_failed_load_of_a_subject_shard_never_loses_its_keys() {
    use strongroom::fs::{Fault, FaultyFileSystem, Op};
    let dir = tempfile::tempdir().unwrap();
    {
        let db = Db::open(dir.path(), options()).unwrap();
        let t = db.tenant(TenantId(1));
        t.subject(SubjectId(5)).put(b"k", b"five").unwrap();
        db.close().unwrap();
    }
    // A torn append at the end of subject shard 5.
    let shard = dir
        .path()
        .join(format!("keyring/subjects/{:016x}/0005.keys", 1));
    let mut bytes = std::fs::read(&shard).unwrap();
    bytes.extend_from_slice(&[0xab; 17]);
    std::fs::write(&shard, &bytes).unwrap();

    let fs = FaultyFileSystem::new();
    // The repair's rename fails once; later writes succeed.
    fs.fail_once(Op::Rename, "subjects", 1, Fault::Eio);
    let db = Db::open(dir.path(), options().file_system(fs.clone())).unwrap();
    let t = db.tenant(TenantId(1));
    assert!(
        t.subject(SubjectId(5)).get(b"k").is_err(),
        "the repair cannot be written"
    );
    // Subject 1029 lives in the same shard: its first put reads the shard
    // again (and repairs it), never writing a new one over subject 5's key.
    t.subject(SubjectId(1029)).put(b"k", b"1029").unwrap();
    assert_eq!(
        t.subject(SubjectId(5)).get(b"k").unwrap().as_deref(),
        Some(&b"five"[..])
    );
    drop(db);
    let db = Db::open(dir.path(), options()).unwrap();
    let t = db.tenant(TenantId(1));
    assert_eq!(
        t.subject(SubjectId(5)).get(b"k").unwrap().as_deref(),
        Some(&b"five"[..])
    );
    assert_eq!(
        t.subject(SubjectId(1029)).get(b"k").unwrap().as_deref(),
        Some(&b"1029"[..])
    );
}

/// Puts `files` (a [`snapshot_files`] of the keyring) back as the whole
/// keyring.
fn put_keyring_back(dir: &Path, files: &BTreeMap<PathBuf, Vec<u8>>) {
    std::fs::remove_dir_all(dir.join("keyring")).unwrap();
    for (path, bytes) in files {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
}

/// A seal, a cancel and a destruction each move the keyring on; a copy of
/// the keyring from before one of them is refused at the next open even
/// when nothing was written after it (the store learns the keyring's epoch
/// from the change itself, not only from the next commit).
#[test]
fn a_keyring_from_before_a_seal_a_cancel_or_a_destruction_is_refused_without_a_write_since() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), options()).unwrap();
    db.tenant(TenantId(1)).put(b"k", b"v").unwrap();
    db.tenant(TenantId(2)).put(b"k", b"v").unwrap();
    db.close().unwrap();
    type Change = fn(&Db);
    let changes: [(&str, Change); 3] = [
        ("seal", |db| {
            db.shred_tenant(TenantId(1), ShredOptions::with_grace(DAY))
                .unwrap();
        }),
        ("cancel", |db| {
            assert!(db.cancel_shred_tenant(TenantId(1)).unwrap());
        }),
        ("destruction", |db| {
            db.shred_tenant(TenantId(2), ShredOptions::immediate())
                .unwrap();
        }),
    ];
    let manifest = dir.path().join("keyring/MANIFEST");
    for (name, change) in changes {
        let before = snapshot_files(&dir.path().join("keyring"));
        let db = Db::open(dir.path(), options()).unwrap();
        change(&db);
        db.close().unwrap();
        let after = snapshot_files(&dir.path().join("keyring"));
        put_keyring_back(dir.path(), &before);
        match Db::open(dir.path(), options()) {
            Err(Error::Corruption { file, kind, .. }) => {
                assert_eq!(file, manifest, "{name}");
                assert_eq!(kind, strongroom::CorruptionKind::RolledBack, "{name}");
            }
            other => panic!(
                "the keyring from before the {name} opened: {:?}",
                other.err()
            ),
        }
        put_keyring_back(dir.path(), &after);
    }
    let db = Db::open(dir.path(), options()).unwrap();
    assert_eq!(
        db.tenant(TenantId(1)).get(b"k").unwrap().as_deref(),
        Some(&b"v"[..])
    );
    assert!(matches!(
        db.tenant(TenantId(2)).get(b"k"),
        Err(Error::Shredded { .. })
    ));
}
