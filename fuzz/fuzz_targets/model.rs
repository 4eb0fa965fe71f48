//! Model-based: the input is a sequence of operations (puts, deletes and
//! batches across two tenants and their subjects, clean reopens, power
//! cuts) run against `strongroom::Db` in a temporary folder; every read is
//! checked against a `BTreeMap` model.
//!
//! Power cuts use `strongroom::fs::FaultyFileSystem`: `cut_power_after(n)`,
//! the operations go on (failing once the power is off), the `Db` is
//! dropped, `apply_power_cut(seed)` drops what was never synced, and the
//! database is opened again (with a fresh fault-free `FaultyFileSystem`, so
//! that a later cut can be modelled). Then every acknowledged write must be
//! there, and of the writes that returned an error, a prefix may be there,
//! each whole or not at all; nothing else.
//!
//! Encoding: one operation per byte `op`, its arguments in the bytes after.
//!
//! | `op % 8` | operation | arguments |
//! |---|---|---|
//! | 0, 1, 2 | put | scope, key, value length / 4 |
//! | 3 | delete | scope, key |
//! | 4 | batch in one tenant | tenant, count (1 + n % 4), then per op: target, key, value length / 4 (0xff: delete) |
//! | 5 | reopen (a power cut if one is armed) | |
//! | 6 | arm a power cut | mutating file operations to let through (n % 48) |
//! | 7 | power cut now (after n % 8 more operations) | n, seed |
//!
//! A scope byte picks tenant `1 + s % 2` and, by `s / 2 % 3`, the tenant's
//! own scope or subject 7 or 8; a key byte picks one of four keys.

#![no_main]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use libfuzzer_sys::fuzz_target;
use strongroom::fs::FaultyFileSystem;
use strongroom::{Db, Options, Scope, SubjectId, TenantId, WriteBatch};

const KEY: [u8; 32] = [0x5a; 32];
const TENANTS: [u64; 2] = [1, 2];
const SUBJECTS: [Option<u64>; 3] = [None, Some(7), Some(8)];
const KEYS: u8 = 4;
/// Bounds one input's work: each open of RocksDB costs tens of ms.
const OPS_MAX: usize = 48;
const OPENS_MAX: usize = 4;

type Cell = (Scope, Vec<u8>);
type State = BTreeMap<Cell, Vec<u8>>;
/// A write's effect on each cell: a value put, or `None` for a delete.
type Effects = Vec<(Cell, Option<Vec<u8>>)>;

struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn next(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }

    fn arg(&mut self) -> u8 {
        self.next().unwrap_or(0)
    }
}

fn scope_of(tenant: u64, target: u8) -> Scope {
    match SUBJECTS[usize::from(target % 3)] {
        None => Scope::tenant(TenantId(tenant)),
        Some(s) => Scope::subject(TenantId(tenant), SubjectId(s)),
    }
}

fn key_of(b: u8) -> Vec<u8> {
    format!("k{}", b % KEYS).into_bytes()
}

/// A value that names its step (so that an old value coming back shows),
/// padded so that some values pass the compression threshold.
fn value_of(step: usize, len: u8) -> Vec<u8> {
    let mut v = format!("v{step}.").into_bytes();
    v.resize(v.len() + usize::from(len) * 4, b'x');
    v
}

fn apply(state: &mut State, effects: &Effects) {
    for (cell, value) in effects {
        match value {
            Some(v) => state.insert(cell.clone(), v.clone()),
            None => state.remove(cell),
        };
    }
}

fn options(fs: &Arc<FaultyFileSystem>) -> Options {
    let mut options = Options::with_key(KEY)
        .segment_bytes_max(4096)
        .file_system(fs.clone());
    options.block_cache_bytes = 1 << 20;
    options
}

fn all_scopes() -> impl Iterator<Item = Scope> {
    TENANTS
        .into_iter()
        .flat_map(|t| (0..3).map(move |target| scope_of(t, target)))
}

/// Everything the database holds, by scan.
fn contents(db: &Db) -> State {
    let mut found = State::new();
    for scope in all_scopes() {
        let tenant = db.tenant(scope.tenant);
        let scan = match scope.subject {
            Some(s) => tenant.subject(s).scan(),
            None => tenant.scan(),
        };
        for item in scan.unwrap_or_else(|e| panic!("scan of {scope}: {e}")) {
            let (k, v) = item.unwrap_or_else(|e| panic!("scan of {scope}: {e}"));
            found.insert((scope, k), v);
        }
    }
    found
}

struct Run {
    dir: PathBuf,
    fs: Arc<FaultyFileSystem>,
    db: Option<Db>,
    /// What the acknowledged writes left.
    model: State,
    /// Writes that returned an error since the last open, in order.
    in_doubt: Vec<Effects>,
    armed: bool,
    opens: usize,
}

impl Run {
    fn start(dir: PathBuf) -> Run {
        let fs = FaultyFileSystem::new();
        let db = Db::open(&dir, options(&fs)).unwrap_or_else(|e| panic!("create: {e}"));
        Run {
            dir,
            fs,
            db: Some(db),
            model: State::new(),
            in_doubt: Vec::new(),
            armed: false,
            opens: 1,
        }
    }

    fn db(&self) -> &Db {
        self.db.as_ref().expect("open")
    }

    fn write(&mut self, tenant: u64, batch: WriteBatch, effects: Effects) {
        match self.db().tenant(TenantId(tenant)).write(batch) {
            Ok(_) => {
                // With the power off only a write that needs no disk can
                // succeed: deletes in scopes that have no key yet, which
                // hold nothing (so the model holds nothing there either).
                assert!(
                    self.in_doubt.is_empty() || effects.iter().all(|(_, v)| v.is_none()),
                    "a write was acknowledged after an earlier one failed"
                );
                apply(&mut self.model, &effects);
                if self.fs.powered_off() {
                    // Reads may need a keyring file, which fails now.
                    return;
                }
                for ((scope, key), _) in &effects {
                    let tenant = self.db().tenant(scope.tenant);
                    let got = match scope.subject {
                        Some(s) => tenant.subject(s).get(key),
                        None => tenant.get(key),
                    };
                    let got = got.unwrap_or_else(|e| panic!("get in {scope}: {e}"));
                    assert_eq!(
                        got.as_ref(),
                        self.model.get(&(*scope, key.clone())),
                        "read back in {scope}"
                    );
                }
            }
            Err(e) => {
                assert!(
                    self.fs.powered_off(),
                    "a write failed with the power on: {e}"
                );
                self.in_doubt.push(effects);
            }
        }
    }

    /// Power cut: drop the database, drop what was never synced, reopen.
    fn crash(&mut self, seed: u64) {
        if !self.fs.powered_off() {
            self.fs.cut_power_after(0);
        }
        drop(self.db.take());
        self.fs.apply_power_cut(seed).expect("power cut applied");
        self.open_and_check();
    }

    fn reopen(&mut self) {
        if self.armed {
            return self.crash(0);
        }
        self.db.take().expect("open").close().expect("clean close");
        assert!(self.in_doubt.is_empty(), "no write fails with the power on");
        self.open_and_check();
    }

    fn open_and_check(&mut self) {
        self.fs = FaultyFileSystem::new();
        self.armed = false;
        self.opens += 1;
        let db = Db::open(&self.dir, options(&self.fs))
            .unwrap_or_else(|e| panic!("open after a crash or close: {e}"));
        let found = contents(&db);
        let mut candidate = self.model.clone();
        let mut matched = found == candidate;
        for effects in &self.in_doubt {
            if matched {
                break;
            }
            apply(&mut candidate, effects);
            matched = found == candidate;
        }
        assert!(
            matched,
            "after reopening: found {found:?}\nacknowledged {:?}\nin doubt {:?}",
            self.model, self.in_doubt
        );
        self.model = candidate;
        self.in_doubt.clear();
        self.db = Some(db);
    }

    fn step(&mut self, step: usize, op: u8, input: &mut Bytes<'_>) {
        match op % 8 {
            0..=3 => {
                let target = input.arg();
                let tenant = TENANTS[usize::from(target % 2)];
                let scope = scope_of(tenant, target / 2);
                let key = key_of(input.arg());
                let value = (op % 8 != 3).then(|| value_of(step, input.arg()));
                let mut batch = WriteBatch::new();
                batch_op(&mut batch, scope, &key, value.as_deref());
                self.write(tenant, batch, vec![((scope, key), value)]);
            }
            4 => {
                let tenant = TENANTS[usize::from(input.arg() % 2)];
                let mut batch = WriteBatch::new();
                let mut effects: Effects = Vec::new();
                for _ in 0..=input.arg() % 4 {
                    let scope = scope_of(tenant, input.arg());
                    let key = key_of(input.arg());
                    let len = input.arg();
                    let value = (len != 0xff).then(|| value_of(step, len));
                    // One op per cell: what a batch does to a cell twice is
                    // not what this target checks.
                    if effects.iter().any(|((s, k), _)| *s == scope && *k == key) {
                        continue;
                    }
                    batch_op(&mut batch, scope, &key, value.as_deref());
                    effects.push(((scope, key), value));
                }
                self.write(tenant, batch, effects);
            }
            5 if self.opens < OPENS_MAX => self.reopen(),
            6 if !self.armed => {
                self.fs.cut_power_after(u64::from(input.arg() % 48));
                self.armed = true;
            }
            7 if self.opens < OPENS_MAX => {
                if !self.armed {
                    self.fs.cut_power_after(u64::from(input.arg() % 8));
                }
                self.crash(u64::from(input.arg()));
            }
            _ => {}
        }
    }
}

fn batch_op(batch: &mut WriteBatch, scope: Scope, key: &[u8], value: Option<&[u8]>) {
    match (scope.subject, value) {
        (None, Some(v)) => batch.put(key, v),
        (None, None) => batch.delete(key),
        (Some(s), Some(v)) => batch.put_subject(s, key, v),
        (Some(s), None) => batch.delete_subject(s, key),
    };
}

/// A fresh folder per run, in memory where there is a tmpfs.
fn run_dir() -> PathBuf {
    static RUNS: AtomicU64 = AtomicU64::new(0);
    let shm = PathBuf::from("/dev/shm");
    let base = if shm.is_dir() {
        shm
    } else {
        std::env::temp_dir()
    };
    let n = RUNS.fetch_add(1, Ordering::Relaxed);
    base.join(format!("strongroom-fuzz-model-{}-{n}", std::process::id()))
}

fuzz_target!(|data: &[u8]| {
    let dir = run_dir();
    let _ = std::fs::remove_dir_all(&dir);
    let mut input = Bytes(data);
    let mut run = Run::start(dir.clone());
    let mut step = 0;
    while let Some(op) = input.next() {
        if step == OPS_MAX {
            break;
        }
        run.step(step, op, &mut input);
        step += 1;
    }
    // End with a power cut: every acknowledged write must survive it.
    run.crash(u64::from(data.len() as u8));
    drop(run);
    let _ = std::fs::remove_dir_all(&dir);
});
