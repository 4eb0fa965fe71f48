//! Crypto-shredding: a shredded tenant or subject is unreadable everywhere
//! (store, log, keyring) with the master key and every remaining key in
//! hand; the others are untouched; the grace period seals, can be cancelled,
//! survives reopen, and ends at its deadline.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::{all_files, options};
use strongroom::forensic::{Found, decrypt_everything};
use strongroom::format::{KEYRING_RECORD_LEN, KEYRING_SHARD_HEADER_LEN, RECORD_KEY};
use strongroom::{
    Db, Error, ManualClock, Options, ScopeState, ShredOptions, SubjectId, TenantId, WriteBatch,
};

const GONE: TenantId = TenantId(1);
const KEPT: TenantId = TenantId(2);

fn canary(tenant: TenantId, subject: Option<u64>, i: u32) -> String {
    format!("canary-t{}-s{subject:?}-{i}", tenant.0)
}

/// Writes canary records to both tenants' own scopes and to three subjects
/// each, some large enough to be compressed; returns how many per tenant.
fn write_canaries(db: &Db) -> usize {
    let mut per_tenant = 0;
    for tenant in [GONE, KEPT] {
        per_tenant = 0;
        let t = db.tenant(tenant);
        for i in 0..20 {
            let value = canary(tenant, None, i).repeat(if i % 5 == 0 { 60 } else { 1 });
            t.put(canary(tenant, None, i).as_bytes(), value.as_bytes())
                .unwrap();
            per_tenant += 1;
        }
        for subject in 0..3u64 {
            let mut batch = WriteBatch::new();
            for i in 0..5 {
                let text = canary(tenant, Some(subject), i);
                batch.put_subject(SubjectId(subject), text.clone(), text);
                per_tenant += 1;
            }
            t.write(batch).unwrap();
        }
    }
    per_tenant
}

/// The wrapped-key bytes of every key record in the keyring's shards, as a
/// reader of docs/FORMAT.md finds them.
fn wrapped_keys(dir: &Path) -> Vec<Vec<u8>> {
    let mut keys = Vec::new();
    for file in all_files(&dir.join("keyring")) {
        if file.extension().is_none_or(|e| e != "keys") {
            continue;
        }
        let bytes = std::fs::read(&file).unwrap();
        for record in bytes[KEYRING_SHARD_HEADER_LEN..].chunks_exact(KEYRING_RECORD_LEN) {
            if record[8] == RECORD_KEY {
                keys.push(record[25..25 + 72].to_vec());
            }
        }
    }
    keys
}

fn occurrences(dir: &Path, needle: &[u8]) -> usize {
    all_files(dir)
        .iter()
        .map(|f| {
            let bytes = std::fs::read(f).unwrap();
            bytes.windows(needle.len()).filter(|w| *w == needle).count()
        })
        .sum()
}

#[test]
fn a_shredded_tenant_decrypts_from_no_file_and_the_others_are_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), options()).unwrap();
    let per_tenant = write_canaries(&db);
    db.flush().unwrap();
    drop(db);
    let before = decrypt_everything(dir.path(), &options()).unwrap();
    let gone_before = before.iter().filter(|d| d.scope.tenant == GONE).count();
    assert!(
        gone_before >= 2 * per_tenant,
        "log and store copies decrypt before the shred"
    );
    let keys_before = wrapped_keys(dir.path());

    let db = Db::open(dir.path(), options()).unwrap();
    let state = db.shred_tenant(GONE, ShredOptions::immediate()).unwrap();
    assert_eq!(state, ScopeState::Shredded);
    let t = db.tenant(GONE);
    assert!(matches!(
        t.get(canary(GONE, None, 1).as_bytes()),
        Err(Error::Shredded { .. })
    ));
    assert!(matches!(
        t.put(b"new", b"data"),
        Err(Error::Shredded { .. })
    ));
    assert!(matches!(
        t.subject(SubjectId(0)).get(b"x"),
        Err(Error::Shredded { .. })
    ));
    assert!(matches!(t.scan(), Err(Error::Shredded { .. })));
    assert!(matches!(
        db.cancel_shred_tenant(GONE),
        Err(Error::Shredded { .. })
    ));
    db.run_maintenance().unwrap();
    drop(db);

    let after = decrypt_everything(dir.path(), &options()).unwrap();
    assert!(
        after.iter().all(|d| d.scope.tenant != GONE),
        "nothing of the tenant decrypts"
    );
    let kept = |d: &&strongroom::forensic::Decrypted| d.scope.tenant == KEPT;
    assert_eq!(
        after.iter().filter(kept).count(),
        before.iter().filter(kept).count(),
        "the other tenant decrypts exactly as before"
    );
    assert!(after.iter().any(|d| d.found == Found::Store));
    // The destroyed key's wrapped bytes are in no file any more.
    let keys_after = wrapped_keys(dir.path());
    let destroyed: Vec<_> = keys_before
        .iter()
        .filter(|k| !keys_after.contains(k))
        .collect();
    // Subjects 0, 1, 2 written in order: 1's first write also made the keys
    // of 2 and of the next ones ahead, unused but destroyed all the same.
    let ahead = options().subject_keys_ahead as usize;
    assert_eq!(
        destroyed.len(),
        2 + 2 + ahead,
        "the tenant's token and sealing keys, and its subjects' keys (made ahead too)"
    );
    for key in destroyed {
        assert_eq!(occurrences(dir.path(), key), 0);
    }

    let db = Db::open(dir.path(), options()).unwrap();
    assert_eq!(db.tenant(GONE).state().unwrap(), ScopeState::Shredded);
    let k = db.tenant(KEPT);
    assert_eq!(k.scan().unwrap().count(), 20);
    let value = k
        .subject(SubjectId(2))
        .get(canary(KEPT, Some(2), 4).as_bytes())
        .unwrap();
    assert_eq!(value, Some(canary(KEPT, Some(2), 4).into_bytes()));
}

#[test]
fn a_shredded_subject_is_gone_and_its_tenant_and_siblings_are_whole() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), options()).unwrap();
    write_canaries(&db);
    let keys_before = wrapped_keys(dir.path());
    let t = db.tenant(GONE);
    let state = t
        .shred_subject(SubjectId(1), ShredOptions::immediate())
        .unwrap();
    assert_eq!(state, ScopeState::Shredded);
    let s = t.subject(SubjectId(1));
    assert!(matches!(s.get(b"x"), Err(Error::Shredded { .. })));
    assert!(matches!(s.put(b"x", b"y"), Err(Error::Shredded { .. })));
    let mut batch = WriteBatch::new();
    batch.put(b"ok".to_vec(), b"ok".to_vec());
    batch.put_subject(SubjectId(1), b"x".to_vec(), b"y".to_vec());
    assert!(
        matches!(t.write(batch), Err(Error::Shredded { .. })),
        "a batch is all or nothing"
    );
    assert_eq!(t.get(b"ok").unwrap(), None);
    db.run_maintenance().unwrap();
    drop(db);

    // Its wrapped key is in no file; every other key still is.
    let keys_after = wrapped_keys(dir.path());
    let destroyed: Vec<_> = keys_before
        .iter()
        .filter(|k| !keys_after.contains(k))
        .collect();
    assert_eq!(destroyed.len(), 1, "exactly the subject's key");
    assert_eq!(occurrences(dir.path(), destroyed[0]), 0);
    let after = decrypt_everything(dir.path(), &options()).unwrap();
    let subject_one = |d: &&strongroom::forensic::Decrypted| {
        d.scope.tenant == GONE && d.scope.subject == Some(SubjectId(1))
    };
    assert_eq!(after.iter().filter(subject_one).count(), 0);
    for subject in [0, 2] {
        let n = after
            .iter()
            .filter(|d| d.scope.tenant == GONE && d.scope.subject == Some(SubjectId(subject)))
            .count();
        assert_eq!(
            n, 10,
            "subject {subject}: 5 records, in the log and in the store"
        );
    }
    let db = Db::open(dir.path(), options()).unwrap();
    let t = db.tenant(GONE);
    assert_eq!(t.scan().unwrap().count(), 20);
    assert_eq!(
        t.subject(SubjectId(1)).state().unwrap(),
        ScopeState::Shredded
    );
    assert_eq!(t.subject(SubjectId(0)).scan().unwrap().count(), 5);
}

#[test]
fn the_grace_period_seals_can_be_cancelled_survives_reopen_and_ends_at_the_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::starting_now());
    let opts = || options().clock(clock.clone());
    let db = Db::open(dir.path(), opts()).unwrap();
    let t = db.tenant(GONE);
    t.put(b"k", b"v").unwrap();
    let grace = ShredOptions::with_grace(Duration::from_secs(3600));

    let sealed = db.shred_tenant(GONE, grace).unwrap();
    let ScopeState::Sealed { deadline_us } = sealed else {
        panic!("sealed, got {sealed:?}");
    };
    assert!(matches!(t.get(b"k"), Err(Error::Sealed { .. })));
    assert!(matches!(t.put(b"k", b"w"), Err(Error::Sealed { .. })));
    assert!(matches!(
        t.subject(SubjectId(3)).put(b"k", b"w"),
        Err(Error::Sealed { .. })
    ));
    assert!(db.cancel_shred_tenant(GONE).unwrap());
    assert_eq!(
        t.get(b"k").unwrap(),
        Some(b"v".to_vec()),
        "cancel restores access"
    );
    assert!(
        !db.cancel_shred_tenant(GONE).unwrap(),
        "nothing left to cancel"
    );

    assert_eq!(db.shred_tenant(GONE, grace).unwrap(), sealed);
    clock.advance(Duration::from_secs(1800));
    db.run_maintenance().unwrap();
    assert_eq!(t.state().unwrap(), ScopeState::Sealed { deadline_us });
    drop(db);

    let db = Db::open(dir.path(), opts()).unwrap();
    let t = db.tenant(GONE);
    assert_eq!(
        t.state().unwrap(),
        ScopeState::Sealed { deadline_us },
        "reopen keeps the deadline"
    );
    clock.advance(Duration::from_secs(1801));
    db.run_maintenance().unwrap();
    assert_eq!(
        t.state().unwrap(),
        ScopeState::Shredded,
        "the deadline destroys"
    );
    drop(db);
    assert!(decrypt_everything(dir.path(), &opts()).unwrap().is_empty());
}

#[test]
fn a_deadline_that_passes_while_closed_is_honoured_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::starting_now());
    let opts = || options().clock(clock.clone());
    {
        let db = Db::open(dir.path(), opts()).unwrap();
        let t = db.tenant(KEPT);
        t.subject(SubjectId(9)).put(b"k", b"v").unwrap();
        t.shred_subject(
            SubjectId(9),
            ShredOptions::with_grace(Duration::from_secs(60)),
        )
        .unwrap();
    }
    clock.advance(Duration::from_secs(61));
    let db = Db::open(dir.path(), opts()).unwrap();
    let s = db.tenant(KEPT).subject(SubjectId(9));
    assert_eq!(s.state().unwrap(), ScopeState::Shredded);
    assert!(matches!(s.get(b"k"), Err(Error::Shredded { .. })));
}

#[test]
fn replay_skips_a_destroyed_scope_instead_of_failing() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = Db::open(dir.path(), options()).unwrap();
        write_canaries(&db);
        db.shred_tenant(GONE, ShredOptions::immediate()).unwrap();
    }
    // Lose the store: the whole log is replayed, the shredded tenant's
    // frames among it.
    std::fs::remove_dir_all(dir.path().join("store")).unwrap();
    let db = Db::open(dir.path(), options()).unwrap();
    assert_eq!(db.tenant(KEPT).scan().unwrap().count(), 20);
    assert_eq!(db.tenant(GONE).state().unwrap(), ScopeState::Shredded);
    drop(db);
    let store = rocksdb::DB::open_for_read_only(
        &rocksdb::Options::default(),
        dir.path().join("store"),
        false,
    )
    .unwrap();
    let mut gone_prefix = vec![strongroom::format::STORE_NS_DATA];
    gone_prefix.extend_from_slice(&GONE.0.to_be_bytes());
    let left = store
        .prefix_iterator(&gone_prefix)
        .map(Result::unwrap)
        .take_while(|(k, _)| k.starts_with(&gone_prefix))
        .count();
    assert_eq!(
        left, 0,
        "nothing of the shredded tenant came back into the store"
    );
}

#[test]
fn shredding_an_unknown_or_empty_scope_still_refuses_it_afterwards() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), Options::with_key([3; 32])).unwrap();
    db.shred_tenant(TenantId(77), ShredOptions::immediate())
        .unwrap();
    assert!(matches!(
        db.tenant(TenantId(77)).put(b"a", b"b"),
        Err(Error::Shredded { .. })
    ));
    drop(db);
    let db = Db::open(dir.path(), Options::with_key([3; 32])).unwrap();
    assert!(matches!(
        db.tenant(TenantId(77)).get(b"a"),
        Err(Error::Shredded { .. })
    ));
}

/// A cancel that returns `Ok(true)` leaves the scope live, even when it lands
/// while a maintenance pass works through due seals. (The pass lists the due
/// seals first and then destroys them one by one; before `destroy_if_due`
/// decided under the keyring's lock, a seal cancelled meanwhile was
/// destroyed anyway, and the writes acknowledged after the cancel with it.)
#[test]
fn a_cancel_racing_a_maintenance_pass_wins() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let clock = Arc::new(ManualClock::starting_now());
    let db = Db::open(dir.path(), options().clock(clock.clone())).expect("open");
    let tenant = db.tenant(TenantId(1));
    for s in 0..20 {
        tenant.subject(SubjectId(s)).put(b"k", b"v").expect("put");
        tenant
            .shred_subject(
                SubjectId(s),
                ShredOptions::with_grace(Duration::from_secs(30)),
            )
            .expect("seal");
    }
    clock.advance(Duration::from_secs(120));
    // The pass destroys subjects 0, 1, ... in turn (a shard rewrite and a
    // store compaction each, tens of ms); subject 19's seal, past its
    // deadline but not yet destroyed, is cancelled meanwhile.
    let last = tenant.subject(SubjectId(19));
    let cancelled = std::thread::scope(|s| {
        let pass = s.spawn(|| db.run_maintenance());
        std::thread::sleep(Duration::from_millis(20));
        let cancelled = tenant.cancel_shred_subject(SubjectId(19));
        if matches!(cancelled, Ok(true)) {
            last.put(b"after", b"the cancel")
                .expect("a put after the cancel");
        }
        pass.join().expect("the pass").expect("maintenance");
        cancelled
    });
    match cancelled {
        Ok(true) => {
            assert_eq!(last.state().expect("state"), ScopeState::Live);
            assert_eq!(last.get(b"k").expect("get"), Some(b"v".to_vec()));
            assert_eq!(
                last.get(b"after").expect("get"),
                Some(b"the cancel".to_vec())
            );
        }
        // The pass got there first (a fast machine): a lost race is fine.
        Err(Error::Shredded { .. }) => {
            assert_eq!(last.state().expect("state"), ScopeState::Shredded);
        }
        other => panic!("the cancel of a due seal returned {other:?}"),
    }
    for s in 0..19 {
        let state = tenant.subject(SubjectId(s)).state().expect("state");
        assert_eq!(state, ScopeState::Shredded, "subject {s}");
    }
}
