//! Power cuts at random points of a workload, with the fault-injecting file
//! system: every write not yet fsynced (file data, and folder entries not
//! yet synced) is dropped, or a random prefix of it kept, as the ALICE study
//! models a journaling file system. Then the database must open and hold
//! every acknowledged write, nothing that was never written, each key's
//! value from its own history, and every acknowledged shred.
//!
//! `STRONGROOM_POWER_CUTS` sets the number of cuts (default 300),
//! `STRONGROOM_POWER_SEED` the first seed.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use strongroom::fs::FaultyFileSystem;
use strongroom::{
    Db, Error, Options, Scope, ScopeState, ShredOptions, SubjectId, TenantId, WriteBatch,
};

const DEFAULT_CUTS: u64 = 300;
const THREADS: usize = 4;
const OPS_PER_RUN: usize = 120;
const TENANTS: [u64; 3] = [1, 2, 3];
const SUBJECTS: [u64; 2] = [10, 11];
const KEYS: usize = 6;

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name)
        .ok()
        .map(|v| v.parse().expect("a number"))
}

fn options() -> Options {
    common::options().segment_bytes_max(4096)
}

/// The scopes of the workload.
fn scopes() -> Vec<Scope> {
    let mut all = Vec::new();
    for t in TENANTS {
        all.push(Scope::tenant(TenantId(t)));
        for s in SUBJECTS {
            all.push(Scope::subject(TenantId(t), SubjectId(s)));
        }
    }
    all
}

type Cell = (Scope, Vec<u8>);

/// What the workload may have done: per cell, the acknowledged value, and
/// the value an unacknowledged (in-flight) operation may have left instead.
#[derive(Default)]
struct Model {
    acked: BTreeMap<Cell, Option<Vec<u8>>>,
    maybe: BTreeMap<Cell, Option<Vec<u8>>>,
    shredded: BTreeSet<Scope>,
    maybe_shredded: BTreeSet<Scope>,
}

enum Action {
    Write(WriteBatch, Vec<(Cell, Option<Vec<u8>>)>, TenantId),
    ShredSubject(TenantId, SubjectId),
    Rotate(TenantId),
    Flush,
    Maintain,
}

fn random_action(rng: &mut StdRng, step: usize) -> Action {
    let tenant = TenantId(TENANTS[rng.random_range(0..TENANTS.len())]);
    match rng.random_range(0..100) {
        0..=1 => Action::ShredSubject(tenant, SubjectId(SUBJECTS[rng.random_range(0..2)])),
        2..=3 => Action::Rotate(tenant),
        4..=6 => Action::Flush,
        7..=8 => Action::Maintain,
        _ => {
            let mut batch = WriteBatch::new();
            let mut effects = Vec::new();
            for n in 0..rng.random_range(1..=3) {
                let subject = rng
                    .random_bool(0.5)
                    .then(|| SubjectId(SUBJECTS[rng.random_range(0..2)]));
                let key = format!("k{}", rng.random_range(0..KEYS)).into_bytes();
                let scope = match subject {
                    Some(s) => Scope::subject(tenant, s),
                    None => Scope::tenant(tenant),
                };
                if effects.iter().any(|((s, k), _)| *s == scope && *k == key) {
                    continue;
                }
                let value = if rng.random_bool(0.15) {
                    None
                } else {
                    let pad = "p".repeat(rng.random_range(0..300));
                    Some(format!("v{step}.{n}{pad}").into_bytes())
                };
                match (&value, subject) {
                    (Some(v), Some(s)) => batch.put_subject(s, key.clone(), v.clone()),
                    (Some(v), None) => batch.put(key.clone(), v.clone()),
                    (None, Some(s)) => batch.delete_subject(s, key.clone()),
                    (None, None) => batch.delete(key.clone()),
                };
                effects.push(((scope, key), value));
            }
            Action::Write(batch, effects, tenant)
        }
    }
}

/// Runs the workload until it ends or the power goes out. Returns the model.
fn run(dir: &Path, fs: &std::sync::Arc<FaultyFileSystem>, seed: u64) -> Model {
    let mut model = Model::default();
    let Ok(db) = Db::open(dir, options().file_system(fs.clone())) else {
        return model;
    };
    let mut rng = StdRng::seed_from_u64(seed);
    for step in 0..OPS_PER_RUN {
        let action = random_action(&mut rng, step);
        let outcome = match &action {
            Action::Write(batch, _, tenant) => db.tenant(*tenant).write(batch.clone()).map(drop),
            Action::ShredSubject(t, s) => db
                .tenant(*t)
                .shred_subject(*s, ShredOptions::immediate())
                .map(drop),
            Action::Rotate(t) => db.tenant(*t).rotate_key().map(drop),
            Action::Flush => db.flush(),
            Action::Maintain => db.run_maintenance(),
        };
        let in_flight = outcome.is_err();
        match (&action, &outcome) {
            (_, Err(Error::Shredded { .. })) => continue,
            (Action::Write(_, effects, _), _) => {
                for (cell, value) in effects {
                    let into = if in_flight {
                        &mut model.maybe
                    } else {
                        &mut model.acked
                    };
                    into.insert(cell.clone(), value.clone());
                }
            }
            (Action::ShredSubject(t, s), _) => {
                let scope = Scope::subject(*t, *s);
                if in_flight {
                    model.maybe_shredded.insert(scope);
                } else {
                    model.shredded.insert(scope);
                }
            }
            _ => {}
        }
        if let Err(e) = outcome {
            assert!(
                fs.powered_off(),
                "step {step}: an error with the power on: {e}"
            );
            break;
        }
    }
    model
}

fn state_of(db: &Db, scope: Scope) -> strongroom::Result<ScopeState> {
    let tenant = db.tenant(scope.tenant);
    match scope.subject {
        Some(s) => tenant.subject(s).state(),
        None => tenant.state(),
    }
}

fn check(dir: &Path, model: &Model) -> Result<(), String> {
    let db = Db::open(dir, options()).map_err(|e| format!("reopen: {e}"))?;
    db.run_maintenance()
        .map_err(|e| format!("maintenance: {e}"))?;
    for scope in scopes() {
        let state = state_of(&db, scope).map_err(|e| format!("{scope}: {e}"))?;
        let shredded = state == ScopeState::Shredded;
        if model.shredded.contains(&scope) && !shredded {
            return Err(format!(
                "{scope}: an acknowledged shred did not hold ({state:?})"
            ));
        }
        if shredded && !model.shredded.contains(&scope) && !model.maybe_shredded.contains(&scope) {
            return Err(format!("{scope}: shredded, but never asked to be"));
        }
        if shredded {
            continue;
        }
        let mut found = BTreeMap::new();
        let handle = db.tenant(scope.tenant);
        let scan = match scope.subject {
            Some(s) => handle.subject(s).scan(),
            None => handle.scan(),
        }
        .map_err(|e| format!("{scope}: scan: {e}"))?;
        for item in scan {
            let (k, v) = item.map_err(|e| format!("{scope}: scan: {e}"))?;
            found.insert(k, v);
        }
        for k in 0..KEYS {
            let key = format!("k{k}").into_bytes();
            let cell = (scope, key.clone());
            let got = found.get(&key).cloned();
            let acked = model.acked.get(&cell).cloned().flatten();
            let allowed_in_flight = model.maybe.get(&cell).cloned();
            if got != acked && Some(got.clone()) != allowed_in_flight {
                return Err(format!(
                    "{scope} k{k}: found {:?}, acknowledged {:?}, in flight {:?}",
                    got.as_deref().map(String::from_utf8_lossy),
                    acked.as_deref().map(String::from_utf8_lossy),
                    allowed_in_flight
                ));
            }
        }
        if found.len() > KEYS {
            return Err(format!(
                "{scope}: {} keys, never written",
                found.len() - KEYS
            ));
        }
    }
    db.close().map_err(|e| format!("close: {e}"))
}

/// Totals over every cut.
#[derive(Default)]
struct Totals {
    cuts: u64,
    cut_in_flight: u64,
    files_cut: usize,
    bytes_dropped: u64,
    undone: usize,
    acked_cells: usize,
    failures: Vec<String>,
}

fn one_cut(seed: u64, totals: &Mutex<Totals>) {
    let dir = tempfile::tempdir().unwrap();
    let fs = FaultyFileSystem::new();
    let mut rng = StdRng::seed_from_u64(seed ^ 0xc0ffee);
    // A workload of OPS_PER_RUN operations does a few hundred file
    // operations; cut anywhere in it, or (now and then) after its end.
    fs.cut_power_after(rng.random_range(0..600));
    let model = run(dir.path(), &fs, seed);
    let in_flight = fs.powered_off();
    if !in_flight {
        fs.cut_power_after(0);
    }
    let cut = fs.apply_power_cut(seed).unwrap();
    let checked = check(dir.path(), &model);
    let mut t = totals.lock().unwrap();
    t.cuts += 1;
    t.cut_in_flight += u64::from(in_flight);
    t.files_cut += cut.files_cut;
    t.bytes_dropped += cut.bytes_dropped;
    t.undone += cut.entries_undone;
    t.acked_cells += model.acked.len();
    if let Err(failure) = checked {
        t.failures.push(format!("seed {seed}: {failure}"));
    }
}

#[test]
fn every_acknowledged_write_and_shred_survives_a_power_cut() {
    let cuts = env_u64("STRONGROOM_POWER_CUTS").unwrap_or(DEFAULT_CUTS);
    let base = env_u64("STRONGROOM_POWER_SEED").unwrap_or(0x5eed);
    // The cuts are independent and wait on fsyncs more than on the CPU.
    let next = AtomicU64::new(0);
    let totals = Mutex::new(Totals::default());
    std::thread::scope(|s| {
        for _ in 0..THREADS {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= cuts {
                        break;
                    }
                    one_cut(base + i, &totals);
                }
            });
        }
    });
    let t = totals.into_inner().unwrap();
    eprintln!(
        "power cuts: {} tried ({} in the middle of the workload), {} failed; {} cells acknowledged; {} files cut, {} unsynced bytes dropped, {} unsynced folder entries undone",
        t.cuts,
        t.cut_in_flight,
        t.failures.len(),
        t.acked_cells,
        t.files_cut,
        t.bytes_dropped,
        t.undone
    );
    assert!(t.failures.is_empty(), "{}", t.failures.join("\n"));
    assert!(
        t.undone > 0 && t.files_cut > 0 && t.cut_in_flight > t.cuts / 2,
        "the cuts dropped nothing, or came too late: they test nothing"
    );
}
