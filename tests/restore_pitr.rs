//! Point-in-time restore against a model of the database: a workload of
//! puts, deletes and batches across tenants and subjects, with backups
//! taken along the way, shipped to an archive (a local folder, and a real S3
//! server: Garage); then 100 random targets (LSNs, commit times exactly,
//! times between commits, before the first and after the last), each
//! restored into a new folder, opened, and compared with the model at that
//! target, exactly.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use common::options;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use strongroom::archive::{Archive, LocalArchive};
use strongroom::restore::{RestoreOptions, RestoreTarget, restore};
use strongroom::{
    ArchiveOptions, Db, Error, Lsn, ManualClock, MasterKeySource, RestoreError, ShredOptions,
    SubjectId, TenantId, WriteBatch,
};

/// (tenant, subject, user key) → value.
type State = BTreeMap<(u64, Option<u64>, Vec<u8>), Vec<u8>>;

const SCOPES: [(u64, Option<u64>); 6] = [
    (1, None),
    (1, Some(10)),
    (1, Some(11)),
    (2, None),
    (2, Some(20)),
    (3, None),
];

/// What the database held after each commit: (LSN, commit time µs, state),
/// the first entry the empty database at LSN 0.
struct Model {
    states: Vec<(u64, u64, State)>,
}

impl Model {
    /// The state at `target`: after the last commit at or before it.
    fn at(&self, target: RestoreTarget) -> &(u64, u64, State) {
        let fits = |(lsn, us, _): &&(u64, u64, State)| match target {
            RestoreTarget::Latest => true,
            RestoreTarget::Lsn(t) => *lsn <= t.0,
            RestoreTarget::Time(t) => {
                *lsn == 0 || *us <= t.duration_since(UNIX_EPOCH).unwrap().as_micros() as u64
            }
        };
        self.states.iter().rev().find(fits).unwrap()
    }
}

fn master() -> MasterKeySource {
    MasterKeySource::Bytes(zeroize::Zeroizing::new(common::KEY))
}

/// Runs the workload on a database shipping to `archive`; returns the model.
fn workload(archive: Arc<dyn Archive>, dir: &Path, seed: u64, commits: usize) -> Model {
    let mut rng = StdRng::seed_from_u64(seed);
    // 2026-01-01T00:00Z: commit times are the clock's, never going back.
    let clock = Arc::new(ManualClock::at(1_767_225_600_000_000));
    let db = Db::open(
        dir,
        options()
            .clock(clock.clone())
            .segment_bytes_max(8 << 10)
            .archive(
                ArchiveOptions::new(archive)
                    .ship_interval(Duration::from_millis(20))
                    .backup_interval(None),
            ),
    )
    .unwrap();
    let mut state = State::new();
    let mut states = vec![(0, 0, state.clone())];
    for i in 0..commits {
        // Some commits share a microsecond: a time target then takes them all.
        if rng.random_bool(0.7) {
            clock.advance(Duration::from_micros(rng.random_range(1..3_000)));
        }
        let (tenant, subject) = SCOPES[rng.random_range(0..SCOPES.len())];
        let t = db.tenant(TenantId(tenant));
        let key = format!("k{}", rng.random_range(0..12)).into_bytes();
        let lsn = match rng.random_range(0..10) {
            0..6 => {
                let value: Vec<u8> = (0..rng.random_range(1..300))
                    .map(|_| rng.random())
                    .collect();
                state.insert((tenant, subject, key.clone()), value.clone());
                match subject {
                    None => t.put(&key, &value),
                    Some(s) => t.subject(SubjectId(s)).put(&key, &value),
                }
            }
            6..8 => {
                state.remove(&(tenant, subject, key.clone()));
                match subject {
                    None => t.delete(&key),
                    Some(s) => t.subject(SubjectId(s)).delete(&key),
                }
            }
            _ => {
                // A batch over the tenant's own scope and its subjects.
                let mut batch = WriteBatch::new();
                for _ in 0..rng.random_range(1..6) {
                    let (st, ss) = SCOPES[rng.random_range(0..SCOPES.len())];
                    if st != tenant {
                        continue;
                    }
                    let key = format!("b{}", rng.random_range(0..6)).into_bytes();
                    let value = format!("batch {i}").into_bytes();
                    state.insert((tenant, ss, key.clone()), value.clone());
                    match ss {
                        None => batch.put(key, value),
                        Some(s) => batch.put_subject(SubjectId(s), key, value),
                    };
                }
                if batch.is_empty() {
                    batch.put(b"empty".to_vec(), b"no".to_vec());
                    state.insert((tenant, None, b"empty".to_vec()), b"no".to_vec());
                }
                t.write(batch)
            }
        }
        .unwrap();
        // A delete of a missing key commits nothing (its LSN is the last).
        if lsn.0 == states.last().unwrap().0 {
            assert!(
                states.last().unwrap().2 == state,
                "a commit that changed nothing"
            );
            continue;
        }
        assert_eq!(lsn.0, states.len() as u64, "one LSN per commit");
        states.push((lsn.0, clock_us(&clock), state.clone()));
        if i % 97 == 50 {
            db.backup_now().unwrap();
        }
    }
    db.close().unwrap();
    Model { states }
}

fn clock_us(clock: &ManualClock) -> u64 {
    strongroom::Clock::now_us(clock)
}

/// Everything a database holds, read through its API.
fn contents(db: &Db) -> State {
    let mut out = State::new();
    for (tenant, subject) in SCOPES {
        let t = db.tenant(TenantId(tenant));
        let scan = match subject {
            None => t.scan(),
            Some(s) => t.subject(SubjectId(s)).scan(),
        };
        for item in scan.unwrap() {
            let (key, value) = item.unwrap();
            out.insert((tenant, subject, key), value);
        }
    }
    out
}

fn random_target(model: &Model, rng: &mut StdRng) -> RestoreTarget {
    let last = model.states.len() - 1;
    let at = |us: u64| RestoreTarget::Time(UNIX_EPOCH + Duration::from_micros(us));
    match rng.random_range(0..20) {
        0 => RestoreTarget::Latest,
        1..9 => RestoreTarget::Lsn(Lsn(rng.random_range(0..=last as u64))),
        9..15 => at(model.states[rng.random_range(1..=last)].1),
        15..19 => {
            // Between two commits (or past the last).
            let i = rng.random_range(1..=last);
            at(model.states[i].1 + rng.random_range(0..2_000))
        }
        _ => at(model.states[1].1 - rng.random_range(1..1_000_000)),
    }
}

fn restores_match_the_model(archive: Arc<dyn Archive>, seed: u64) {
    let dir = tempfile::tempdir().unwrap();
    let model = workload(archive.clone(), &dir.path().join("db"), seed, 400);
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed);
    for round in 0..100 {
        let target = random_target(&model, &mut rng);
        let into = dir.path().join(format!("restore-{round}"));
        let report = restore(
            &into,
            &RestoreOptions::new(archive.clone(), master()).target(target),
        )
        .unwrap_or_else(|e| panic!("round {round}, {target:?}: {e}"));
        let (lsn, _, state) = model.at(target);
        assert_eq!(report.lsn, Lsn(*lsn), "round {round}, {target:?}");
        assert_ne!(report.new_history, report.history);
        let db = Db::open(&into, options()).unwrap();
        assert_eq!(db.last_lsn(), Lsn(*lsn), "round {round}");
        assert!(
            contents(&db) == *state,
            "round {round}, {target:?}: the restore differs from the model at LSN {lsn}"
        );
        db.close().unwrap();
        std::fs::remove_dir_all(&into).unwrap();
    }
}

#[test]
fn restores_from_a_local_folder_match_the_model_at_100_targets() {
    let archive_dir = tempfile::tempdir().unwrap();
    restores_match_the_model(Arc::new(LocalArchive::new(archive_dir.path())), 1);
}

#[test]
fn restores_from_an_s3_bucket_match_the_model_at_100_targets() {
    let garage = common::garage::shared();
    restores_match_the_model(Arc::new(garage.archive()), 2);
}

#[test]
fn a_restore_honours_destruction_made_after_its_target_and_seals_pending_now() {
    let dir = tempfile::tempdir().unwrap();
    let archive_dir = tempfile::tempdir().unwrap();
    let archive: Arc<dyn Archive> = Arc::new(LocalArchive::new(archive_dir.path()));
    let db = Db::open(
        dir.path().join("db"),
        options().archive(
            ArchiveOptions::new(archive.clone())
                .ship_interval(Duration::from_millis(20))
                .backup_interval(None),
        ),
    )
    .unwrap();
    let (a, b) = (db.tenant(TenantId(1)), db.tenant(TenantId(2)));
    for i in 0..20 {
        a.put(format!("a{i}").as_bytes(), b"tenant 1").unwrap();
        a.subject(SubjectId(7))
            .put(format!("s{i}").as_bytes(), b"subject 7")
            .unwrap();
        a.subject(SubjectId(8))
            .put(format!("s{i}").as_bytes(), b"subject 8")
            .unwrap();
        b.put(format!("b{i}").as_bytes(), b"tenant 2").unwrap();
        if i == 10 {
            db.backup_now().unwrap();
        }
    }
    let target = db.last_lsn();
    // After the target: a subject shredded, a tenant shredded, a subject
    // sealed with a grace period.
    a.put(b"after", b"the target").unwrap();
    a.shred_subject(SubjectId(7), ShredOptions::immediate())
        .unwrap();
    db.shred_tenant(TenantId(2), ShredOptions::immediate())
        .unwrap();
    a.shred_subject(
        SubjectId(8),
        ShredOptions::with_grace(Duration::from_secs(3600)),
    )
    .unwrap();
    db.ship_now().unwrap();
    db.close().unwrap();

    let into = dir.path().join("restored");
    let report = restore(
        &into,
        &RestoreOptions::new(archive.clone(), master()).target(RestoreTarget::Lsn(target)),
    )
    .unwrap();
    assert_eq!(report.lsn, target);
    let destroyed: Vec<_> = report
        .destroyed
        .iter()
        .map(|s| (s.tenant.0, s.subject.map(|s| s.0)))
        .collect();
    assert!(destroyed.contains(&(1, Some(7))), "{destroyed:?}");
    assert!(destroyed.contains(&(2, None)), "{destroyed:?}");
    assert!(!destroyed.contains(&(1, Some(8))) && !destroyed.contains(&(1, None)));
    assert_eq!(
        report.sealed.len(),
        1,
        "subject 8s seal: {:?}",
        report.sealed
    );
    let db = Db::open(&into, options()).unwrap();
    let a = db.tenant(TenantId(1));
    assert_eq!(
        a.scan().unwrap().count(),
        20,
        "tenant 1's own records, before `after`"
    );
    assert!(matches!(
        a.subject(SubjectId(7)).get(b"s1"),
        Err(Error::Shredded { .. })
    ));
    assert!(matches!(
        db.tenant(TenantId(2)).get(b"b1"),
        Err(Error::Shredded { .. })
    ));
    assert!(matches!(
        a.subject(SubjectId(8)).get(b"s1"),
        Err(Error::Sealed { .. })
    ));
    db.close().unwrap();
    // Nothing of the destroyed scopes decrypts from the restored folder,
    // with every key it holds.
    let found = strongroom::forensic::decrypt_everything(&into, &options()).unwrap();
    assert!(
        found
            .iter()
            .all(|r| r.scope.tenant == TenantId(1) && r.scope.subject != Some(SubjectId(7)))
    );
}

#[test]
fn a_restore_refuses_a_folder_in_use_and_a_half_restored_folder_does_not_open() {
    let dir = tempfile::tempdir().unwrap();
    let archive_dir = tempfile::tempdir().unwrap();
    let archive: Arc<dyn Archive> = Arc::new(LocalArchive::new(archive_dir.path()));
    let db_dir = dir.path().join("db");
    let db = Db::open(
        &db_dir,
        options().archive(ArchiveOptions::new(archive.clone()).backup_interval(None)),
    )
    .unwrap();
    db.tenant(TenantId(1)).put(b"k", b"v").unwrap();
    db.ship_now().unwrap();
    db.close().unwrap();
    let restore_options = RestoreOptions::new(archive.clone(), master());
    // A database's folder, and any folder holding something else.
    assert!(matches!(
        restore(&db_dir, &restore_options),
        Err(Error::Restore(RestoreError::NotEmpty(_)))
    ));
    let other = dir.path().join("other");
    std::fs::create_dir(&other).unwrap();
    std::fs::write(other.join("notes.txt"), b"mine").unwrap();
    assert!(matches!(
        restore(&other, &restore_options),
        Err(Error::Restore(RestoreError::NotEmpty(_)))
    ));
    assert_eq!(std::fs::read(other.join("notes.txt")).unwrap(), b"mine");
    // A wrong master key opens nothing.
    let wrong = RestoreOptions::new(
        archive.clone(),
        MasterKeySource::Bytes(zeroize::Zeroizing::new([1; 32])),
    );
    assert!(matches!(
        restore(dir.path().join("wrong"), &wrong),
        Err(Error::WrongMasterKey)
    ));
    // A restore that stopped half-way: the folder does not open as a
    // database, and the same restore run again finishes it; another
    // restore into it is refused.
    let half = dir.path().join("half");
    restore(&half, &restore_options).unwrap();
    std::fs::write(
        half.join("RESTORING"),
        format!(
            "strongroom restore 1\nmode restore\nhistory {}\ntarget latest\ntenant all\nbackup none\nnew-history {}\nstage replay\n",
            strongroom::restore::histories(&*archive).unwrap()[0],
            "00".repeat(16)
        ),
    )
    .unwrap();
    assert!(matches!(
        Db::open(&half, options()),
        Err(Error::RestoreIncomplete(_))
    ));
    assert!(matches!(
        restore(
            &half,
            &restore_options.clone().target(RestoreTarget::Lsn(Lsn(0)))
        ),
        Err(Error::Restore(RestoreError::OtherRestore { .. }))
    ));
    restore(&half, &restore_options).unwrap();
    let db = Db::open(&half, options()).unwrap();
    assert_eq!(db.tenant(TenantId(1)).get(b"k").unwrap().unwrap(), b"v");
    db.close().unwrap();
    // Past the end.
    assert!(matches!(
        restore(
            dir.path().join("past"),
            &restore_options.clone().target(RestoreTarget::Lsn(Lsn(99)))
        ),
        Err(Error::Restore(RestoreError::PastEnd {
            target: 99,
            last: 1
        }))
    ));
}

#[test]
fn a_restore_follows_a_master_key_rotation_and_a_restored_database_restores_in_turn() {
    let dir = tempfile::tempdir().unwrap();
    let archive_dir = tempfile::tempdir().unwrap();
    let archive: Arc<dyn Archive> = Arc::new(LocalArchive::new(archive_dir.path()));
    let with_archive = |options: strongroom::Options| {
        options.archive(
            ArchiveOptions::new(archive.clone())
                .ship_interval(Duration::from_millis(20))
                .backup_interval(None),
        )
    };
    let db = Db::open(dir.path().join("db"), with_archive(options())).unwrap();
    let t = db.tenant(TenantId(1));
    t.put(b"before", b"the rotation").unwrap();
    db.backup_now().unwrap();
    let new_key = [0x77; 32];
    db.rotate_master_key(MasterKeySource::Bytes(zeroize::Zeroizing::new(new_key)))
        .unwrap();
    t.put(b"after", b"the rotation").unwrap();
    db.ship_now().unwrap();
    db.close().unwrap();
    // The archive's keyring is under the new master key now.
    let new_master = MasterKeySource::Bytes(zeroize::Zeroizing::new(new_key));
    assert!(matches!(
        restore(
            dir.path().join("old-key"),
            &RestoreOptions::new(archive.clone(), master())
        ),
        Err(Error::WrongMasterKey)
    ));
    let first = dir.path().join("first");
    let report = restore(
        &first,
        &RestoreOptions::new(archive.clone(), new_master.clone()),
    )
    .unwrap();
    assert_eq!(report.lsn, Lsn(2));
    // The restored database runs with the archive: a history of its own.
    let db = Db::open(&first, with_archive(strongroom::Options::with_key(new_key))).unwrap();
    assert_eq!(db.last_lsn(), Lsn(2));
    db.tenant(TenantId(1)).put(b"in", b"the restore").unwrap();
    db.backup_now().unwrap();
    db.tenant(TenantId(1)).put(b"last", b"write").unwrap();
    db.ship_now().unwrap();
    db.close().unwrap();
    let histories = strongroom::restore::histories(&*archive).unwrap();
    assert_eq!(histories.len(), 2);
    assert!(histories.contains(&report.new_history));
    assert!(matches!(
        restore(
            dir.path().join("which"),
            &RestoreOptions::new(archive.clone(), new_master.clone())
        ),
        Err(Error::Restore(RestoreError::WhichHistory { .. }))
    ));
    // The restored database's history restores too, to any moment of its own.
    let second = dir.path().join("second");
    let again = restore(
        &second,
        &RestoreOptions::new(archive.clone(), new_master.clone()).history(&report.new_history),
    )
    .unwrap();
    assert_eq!(
        (again.history.as_str(), again.lsn),
        (report.new_history.as_str(), Lsn(4))
    );
    let db = Db::open(&second, strongroom::Options::with_key(new_key)).unwrap();
    let t = db.tenant(TenantId(1));
    for key in ["before", "after", "in", "last"] {
        assert!(t.get(key.as_bytes()).unwrap().is_some(), "{key}");
    }
    db.close().unwrap();
    let third = dir.path().join("third");
    let at_3 = restore(
        &third,
        &RestoreOptions::new(archive.clone(), new_master)
            .history(&report.new_history)
            .target(RestoreTarget::Lsn(Lsn(3))),
    )
    .unwrap();
    assert_eq!(at_3.lsn, Lsn(3));
    let db = Db::open(&third, strongroom::Options::with_key(new_key)).unwrap();
    assert!(db.tenant(TenantId(1)).get(b"in").unwrap().is_some());
    assert!(db.tenant(TenantId(1)).get(b"last").unwrap().is_none());
    db.close().unwrap();
}

#[test]
fn a_per_tenant_restore_holds_that_tenant_alone() {
    let dir = tempfile::tempdir().unwrap();
    let archive_dir = tempfile::tempdir().unwrap();
    let archive: Arc<dyn Archive> = Arc::new(LocalArchive::new(archive_dir.path()));
    let db = Db::open(
        dir.path().join("db"),
        options().archive(
            ArchiveOptions::new(archive.clone())
                .ship_interval(Duration::from_millis(20))
                .backup_interval(None),
        ),
    )
    .unwrap();
    for round in 0..30 {
        for tenant in 1..=3 {
            let t = db.tenant(TenantId(tenant));
            t.put(format!("k{round}").as_bytes(), b"v").unwrap();
            t.subject(SubjectId(5))
                .put(format!("s{round}").as_bytes(), b"v")
                .unwrap();
        }
        if round == 10 {
            db.backup_now().unwrap();
        }
    }
    // "We deleted a school's records by mistake": tenant 2's, after LSN 150.
    let before_mistake = db.last_lsn();
    for round in 0..30 {
        db.tenant(TenantId(2))
            .delete(format!("k{round}").as_bytes())
            .unwrap();
    }
    db.ship_now().unwrap();
    db.close().unwrap();
    let into = dir.path().join("tenant-2");
    let report = restore(
        &into,
        &RestoreOptions::new(archive, master())
            .tenant(TenantId(2))
            .target(RestoreTarget::Lsn(before_mistake)),
    )
    .unwrap();
    assert_eq!(report.lsn, before_mistake);
    let db = Db::open(&into, options()).unwrap();
    let t2 = db.tenant(TenantId(2));
    assert_eq!(t2.scan().unwrap().count(), 30);
    assert_eq!(t2.subject(SubjectId(5)).scan().unwrap().count(), 30);
    for other in [1, 3] {
        let t = db.tenant(TenantId(other));
        assert_eq!(t.scan().unwrap().count(), 0, "tenant {other}");
        assert_eq!(t.subject(SubjectId(5)).scan().unwrap().count(), 0);
    }
    db.close().unwrap();
    // Nor their keys: their tenant shards hold no record (a 69-byte
    // header), and only tenant 2's subject shards are there.
    let keyring = into.join("keyring");
    for (shard, other) in [("001", 1), ("003", 3)] {
        let len =
            std::fs::metadata(keyring.join(format!("tenants/{shard}.keys"))).map_or(0, |m| m.len());
        assert!(
            len <= 69,
            "tenant {other}'s shard holds records: {len} bytes"
        );
    }
    assert!(
        std::fs::metadata(keyring.join("tenants/002.keys"))
            .unwrap()
            .len()
            > 69
    );
    let subjects: Vec<_> = std::fs::read_dir(keyring.join("subjects"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(subjects, [format!("{:016x}", 2)]);
}
