//! Corruption sweeps (issue 5, item 5): flip single bits of every file format
//! strongroom owns (log segments, the keyring manifest, a tenant shard, a
//! subject shard, the seals ledger), open the database and read everything.
//!
//! Each flip must give a typed error, or, for the last frame of the log only,
//! a torn-tail truncation whose frame the store already holds. Never a wrong
//! value, a key that was never written, a scope whose state changed (a seal
//! lost, a shred undone) without an error, or a panic.
//!
//! One pristine database is built per test and kept as an in-memory image;
//! every attempt rewrites a scratch folder from that image (so it starts from
//! pristine bytes, whatever the previous attempt's open changed: a cut torn
//! tail, a compacted seals ledger, RocksDB's own files), flips one bit of the
//! file under test, opens the database and reads every key of every scope
//! with `get`, scans every scope, and asks every scope's state.
//!
//! `STRONGROOM_SWEEP_FULL=1` flips every bit of the keyring files and at least
//! 10,000 sampled bits of the log; the default (for CI) samples fewer.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand::rngs::StdRng;
use strongroom::format::{
    KEYRING_DIR, KEYRING_MANIFEST_FILE, KEYRING_SUBJECTS_DIR, KEYRING_TENANTS_DIR, SEALS_FILE,
    SEGMENT_HEADER_LEN, STORE_DIR, STORE_NS_DATA, WAL_DIR,
};
use strongroom::{
    CorruptionKind, Db, Error, MasterKeySource, Options, ScopeState, ShredOptions, SubjectId,
    TenantId, WriteBatch,
};

/// The master key after the build's master key rotation (the manifest is at
/// generation 2).
const MASTER: [u8; 32] = [0x77; 32];
/// Set to 1 for the full sweep.
const FULL_ENV: &str = "STRONGROOM_SWEEP_FULL";
/// Sampled log bits: CI default, and full mode.
const LOG_FLIPS_CI: usize = 3_000;
const LOG_FLIPS_FULL: usize = 12_000;
/// Fixed seed of the log sample.
const LOG_SEED: u64 = 0x5eed_0005;
/// A grace period that does not end during the test.
const GRACE: Duration = Duration::from_secs(30 * 24 * 3600);

fn full_mode() -> bool {
    std::env::var(FULL_ENV).is_ok_and(|v| v == "1")
}

fn options() -> Options {
    Options::with_key(MASTER)
}

// ---------------------------------------------------------------------------
// What the database must hold.

/// A tenant's own scope `(tenant, None)` or a subject's `(tenant, Some(s))`.
type ScopeId = (u64, Option<u64>);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Live,
    Sealed(u64),
    Shredded,
}

#[derive(Debug, Clone)]
struct ScopeModel {
    state: Expect,
    /// Every key ever written, with its value now (`None`: deleted).
    keys: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
}

/// One op of a test batch: (subject, or the tenant's own scope; key; value,
/// or a delete).
type BatchOp = (Option<u64>, Vec<u8>, Option<Vec<u8>>);

/// The expected contents: every scope's state and keys.
#[derive(Debug, Clone, Default)]
struct Model {
    scopes: BTreeMap<ScopeId, ScopeModel>,
}

impl Model {
    fn scope(&mut self, id: ScopeId) -> &mut ScopeModel {
        self.scopes.entry(id).or_insert_with(|| ScopeModel {
            state: Expect::Live,
            keys: BTreeMap::new(),
        })
    }

    fn put(&mut self, db: &Db, id: ScopeId, key: &[u8], value: &[u8]) {
        let mut batch = WriteBatch::new();
        batch.put(key, value);
        write(db, id, batch);
        self.scope(id)
            .keys
            .insert(key.to_vec(), Some(value.to_vec()));
    }

    fn delete(&mut self, db: &Db, id: ScopeId, key: &[u8]) {
        let mut batch = WriteBatch::new();
        batch.delete(key);
        write(db, id, batch);
        self.scope(id).keys.insert(key.to_vec(), None);
    }

    /// One batch in tenant `tenant`: `(subject, key, value or delete)`.
    fn batch(&mut self, db: &Db, tenant: u64, ops: &[BatchOp]) {
        let mut batch = WriteBatch::new();
        for (subject, key, value) in ops {
            match (subject, value) {
                (None, Some(v)) => batch.put(key.clone(), v.clone()),
                (None, None) => batch.delete(key.clone()),
                (Some(s), Some(v)) => batch.put_subject(SubjectId(*s), key.clone(), v.clone()),
                (Some(s), None) => batch.delete_subject(SubjectId(*s), key.clone()),
            };
        }
        write(db, (tenant, None), batch);
        for (subject, key, value) in ops {
            self.scope((tenant, *subject))
                .keys
                .insert(key.clone(), value.clone());
        }
    }
}

fn write(db: &Db, id: ScopeId, batch: WriteBatch) {
    let tenant = db.tenant(TenantId(id.0));
    match id.1 {
        None => tenant.write(batch),
        Some(s) => tenant.subject(SubjectId(s)).write(batch),
    }
    .expect("write");
}

fn get(db: &Db, id: ScopeId, key: &[u8]) -> strongroom::Result<Option<Vec<u8>>> {
    let tenant = db.tenant(TenantId(id.0));
    match id.1 {
        None => tenant.get(key),
        Some(s) => tenant.subject(SubjectId(s)).get(key),
    }
}

type ScanItems = Vec<strongroom::Result<(Vec<u8>, Vec<u8>)>>;

fn scan(db: &Db, id: ScopeId, limit: usize) -> strongroom::Result<ScanItems> {
    let tenant = db.tenant(TenantId(id.0));
    let scan = match id.1 {
        None => tenant.scan()?,
        Some(s) => tenant.subject(SubjectId(s)).scan()?,
    };
    Ok(scan.take(limit).collect())
}

fn state(db: &Db, id: ScopeId) -> strongroom::Result<ScopeState> {
    let tenant = db.tenant(TenantId(id.0));
    match id.1 {
        None => tenant.state(),
        Some(s) => tenant.subject(SubjectId(s)).state(),
    }
}

// ---------------------------------------------------------------------------
// The pristine database.

/// Builds the pristine database in `dir` and returns what it holds. Its log
/// has at least three segments (so at least two before the last), all
/// written after the last checkpoint.
fn build(dir: &Path) -> Model {
    for attempt in 1..=6 {
        if dir.exists() {
            std::fs::remove_dir_all(dir).unwrap();
        }
        let model = build_once(dir);
        let segments = common::segments(dir);
        let last = std::fs::read(segments.last().unwrap()).unwrap();
        if segments.len() >= 3 && common::frames(&last).len() >= 3 {
            return model;
        }
        // A maintenance tick (every 200 ms) checkpointed in the middle of
        // the last session's burst and removed segments: build again.
        eprintln!(
            "build attempt {attempt}: {} segments, {} frames in the last; building again",
            segments.len(),
            common::frames(&last).len()
        );
    }
    panic!("could not build a database with three log segments");
}

fn build_once(dir: &Path) -> Model {
    let mut m = Model::default();
    let value = |tag: &str, i: usize, len: usize| -> Vec<u8> {
        let mut v = format!("{tag} value {i} ").into_bytes();
        while v.len() < len {
            v.push(b'a' + (v.len() % 26) as u8);
        }
        v
    };
    // Session A: keys, data, a tenant key rotation, an immediate subject
    // shred, a master key rotation. Maintenance runs to the end (its
    // checkpoint removes the segments written so far, but the last).
    {
        let db = Db::open(dir, common::options().segment_bytes_max(4096)).unwrap();
        for i in 0..6 {
            m.put(
                &db,
                (1, None),
                format!("t1 key {i}").as_bytes(),
                &value("t1", i, 40),
            );
            m.put(
                &db,
                (257, None),
                format!("t257 key {i}").as_bytes(),
                &value("t257", i, 30),
            );
        }
        for s in [1, 1025, 2049, 5] {
            for i in 0..3 {
                let key = format!("s{s} key {i}");
                m.put(&db, (1, Some(s)), key.as_bytes(), &value("subj", i, 25));
            }
        }
        m.put(&db, (257, Some(1)), b"s1 of 257", b"sealed later");
        m.put(&db, (2, None), b"t2 only", b"tenant two");
        m.put(&db, (3, None), b"t3 key", b"tenant three, sealed later");
        m.put(&db, (3, Some(9)), b"t3 s9", b"subject of a sealed tenant");
        // Tenant 1 moves to sealing version 2; the pass re-seals its records,
        // rewraps its subjects' keys and retires version 1.
        assert_eq!(db.tenant(TenantId(1)).rotate_key().unwrap(), 2);
        db.run_maintenance().unwrap();
        // Subject 2049 (shard 0001, with subjects 1 and 1025) is shredded:
        // its shard ends with a tombstone.
        db.tenant(TenantId(1))
            .shred_subject(SubjectId(2049), ShredOptions::immediate())
            .unwrap();
        db.run_maintenance().unwrap();
        m.scope((1, Some(2049))).state = Expect::Shredded;
        db.rotate_master_key(MasterKeySource::Bytes(MASTER.into()))
            .unwrap();
        db.close().unwrap();
    }
    let session_b = Instant::now();
    // Session B, short (under one 200 ms maintenance tick, else the tick's
    // checkpoint removes segments and the build starts again): pending
    // seals, a cancelled one, then a burst of writes over three segments.
    {
        let db = Db::open(dir, options().segment_bytes_max(4096)).unwrap();
        let sealed = |s: ScopeState| match s {
            ScopeState::Sealed { deadline_us } => Expect::Sealed(deadline_us),
            other => panic!("{other:?}"),
        };
        let t3 = db.shred_tenant(TenantId(3), ShredOptions::with_grace(GRACE));
        let t3 = sealed(t3.unwrap());
        m.scope((3, None)).state = t3;
        m.scope((3, Some(9))).state = t3;
        let t1 = db.tenant(TenantId(1));
        t1.shred_subject(SubjectId(5), ShredOptions::with_grace(GRACE))
            .unwrap();
        assert!(t1.cancel_shred_subject(SubjectId(5)).unwrap());
        let s = db
            .tenant(TenantId(257))
            .shred_subject(SubjectId(1), ShredOptions::with_grace(GRACE));
        m.scope((257, Some(1))).state = sealed(s.unwrap());

        for round in 0..4 {
            // A batch across tenant 1's scope and two of its subjects.
            let mut ops = Vec::new();
            for i in 0..5 {
                let key = format!("burst {round} {i}").into_bytes();
                ops.push((None, key, Some(value("burst", i, 150))));
            }
            ops.push((
                Some(1),
                b"s1 key 0".to_vec(),
                Some(value("s1 new", round, 90)),
            ));
            ops.push((Some(1025), b"s1025 key 1".to_vec(), None));
            m.batch(&db, 1, &ops);
            m.put(
                &db,
                (257, None),
                format!("t257 burst {round}").as_bytes(),
                &value("b", round, 300),
            );
            m.put(
                &db,
                (2, None),
                format!("t2 burst {round}").as_bytes(),
                &value("t2", round, 200),
            );
            m.delete(&db, (1, None), format!("t1 key {round}").as_bytes());
            // Compressible (over the 512-byte threshold): a zstd record.
            m.put(
                &db,
                (1, Some(5)),
                format!("s5 big {round}").as_bytes(),
                &[b'z'; 2000],
            );
            m.put(
                &db,
                (1, Some(1)),
                b"s1 key 2",
                &value("s1 again", round, 50),
            );
        }
        // The last frames: small, so that the torn-tail window is too.
        m.put(&db, (2, None), b"second to last", b"x");
        m.put(&db, (1, None), b"last", b"the last frame");
        db.close().unwrap();
    }
    eprintln!(
        "build: the last session took {} ms",
        session_b.elapsed().as_millis()
    );
    // Scopes never written: a key must not appear in them.
    m.scope((99, None));
    m.scope((1, Some(77)));
    m
}

// ---------------------------------------------------------------------------
// Reading everything.

#[derive(Debug, Default)]
struct Reads {
    /// Reads that returned something other than what was written.
    wrong: Vec<String>,
    /// Typed errors (not `Sealed` or `Shredded` where those are expected),
    /// as (what was read, error label, the file the error names).
    errors: Vec<(String, String, Option<PathBuf>)>,
}

fn is_state_error(e: &Error) -> bool {
    matches!(e, Error::Sealed { .. } | Error::Shredded { .. })
}

/// Files a read result against what the scope should answer: `live` when
/// the scope is live; `Sealed` / `Shredded` errors otherwise.
fn check<T: PartialEq + Debug>(
    out: &mut Reads,
    what: String,
    expect: Expect,
    live: T,
    got: strongroom::Result<T>,
) {
    match (expect, got) {
        (Expect::Live, Ok(v)) if v == live => {}
        (Expect::Sealed(d), Err(Error::Sealed { deadline_us, .. })) if deadline_us == d => {}
        (Expect::Shredded, Err(Error::Shredded { .. })) => {}
        (_, Err(e)) if !is_state_error(&e) => out.errors.push((what, label(&e), file_of(&e))),
        (expect, got) => out
            .wrong
            .push(format!("{what}: expected {expect:?}, got {got:?}")),
    }
}

fn read_everything(db: &Db, model: &Model) -> Reads {
    let mut out = Reads::default();
    for (&id, scope) in &model.scopes {
        let expect = scope.state;
        let st = state(db, id).map(|s| match s {
            ScopeState::Live => Expect::Live,
            ScopeState::Sealed { deadline_us } => Expect::Sealed(deadline_us),
            ScopeState::Shredded => Expect::Shredded,
        });
        match st {
            Ok(s) if s == expect => {}
            Ok(s) => out
                .wrong
                .push(format!("{id:?} state: expected {expect:?}, got {s:?}")),
            Err(e) => out
                .errors
                .push((format!("{id:?} state"), label(&e), file_of(&e))),
        }
        let never = (b"never written".to_vec(), None);
        for (key, value) in scope
            .keys
            .iter()
            .chain(std::iter::once((&never.0, &never.1)))
        {
            let what = format!("{id:?} get {:?}", String::from_utf8_lossy(key));
            check(&mut out, what, expect, value.clone(), get(db, id, key));
        }
        let live: BTreeMap<&Vec<u8>, &Vec<u8>> = scope
            .keys
            .iter()
            .filter_map(|(k, v)| Some((k, v.as_ref()?)))
            .collect();
        let what = format!("{id:?} scan");
        match (expect, scan(db, id, live.len() + 16)) {
            (Expect::Live, Ok(items)) => {
                let mut seen = BTreeSet::new();
                let mut errored = false;
                for item in items {
                    match item {
                        Ok((k, v)) => {
                            if live.get(&k) != Some(&&v) || !seen.insert(k.clone()) {
                                let k = String::from_utf8_lossy(&k).into_owned();
                                out.wrong.push(format!("{what}: unexpected {k:?} = {v:?}"));
                            }
                        }
                        Err(e) if !is_state_error(&e) => {
                            errored = true;
                            out.errors.push((what.clone(), label(&e), file_of(&e)));
                        }
                        Err(e) => out.wrong.push(format!("{what}: {e}")),
                    }
                }
                if !errored && seen.len() != live.len() {
                    out.wrong
                        .push(format!("{what}: {} of {} keys", seen.len(), live.len()));
                }
            }
            (expect, Ok(items)) => out.wrong.push(format!(
                "{what}: expected {expect:?}, got a scan of {} items",
                items.len()
            )),
            (expect, Err(e)) => check(&mut out, what, expect, (), Err(e)),
        }
    }
    out
}

/// The file an error names, if any.
fn file_of(e: &Error) -> Option<PathBuf> {
    match e {
        Error::Corruption { file, .. } | Error::UnsupportedVersion { file, .. } => {
            Some(file.clone())
        }
        _ => None,
    }
}

/// A short name for an error, for the tallies.
fn label(e: &Error) -> String {
    match e {
        Error::Corruption { kind, .. } => match kind {
            CorruptionKind::Length(_) => "Corruption(Length)".into(),
            CorruptionKind::LsnOrder { .. } => "Corruption(LsnOrder)".into(),
            CorruptionKind::LogGap { .. } => "Corruption(LogGap)".into(),
            other => format!("Corruption({other:?})"),
        },
        Error::UnsupportedVersion { .. } => "UnsupportedVersion".into(),
        Error::WrongMasterKey => "WrongMasterKey".into(),
        other => format!("other error: {other}"),
    }
}

// ---------------------------------------------------------------------------
// The database as an in-memory image, written out afresh for every attempt.

struct Image {
    dirs: Vec<PathBuf>,
    files: Vec<(PathBuf, Vec<u8>)>,
}

impl Image {
    fn load(root: &Path) -> Image {
        let mut image = Image {
            dirs: Vec::new(),
            files: Vec::new(),
        };
        let mut stack = vec![root.to_path_buf()];
        while let Some(dir) = stack.pop() {
            image
                .dirs
                .push(dir.strip_prefix(root).unwrap().to_path_buf());
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else {
                    let bytes = std::fs::read(&path).unwrap();
                    image
                        .files
                        .push((path.strip_prefix(root).unwrap().to_path_buf(), bytes));
                }
            }
        }
        image.dirs.sort();
        image.files.sort();
        image
    }

    fn index(&self, rel: &Path) -> usize {
        self.files
            .iter()
            .position(|(p, _)| p == rel)
            .unwrap_or_else(|| panic!("{} is not in the database", rel.display()))
    }

    /// Writes the image to `dir` (emptied first), with bit `bit` of file
    /// `file` flipped.
    fn write_to(&self, dir: &Path, file: usize, bit: usize) {
        if dir.exists() {
            std::fs::remove_dir_all(dir).unwrap();
        }
        for d in &self.dirs {
            std::fs::create_dir_all(dir.join(d)).unwrap();
        }
        for (i, (rel, bytes)) in self.files.iter().enumerate() {
            if i == file {
                let mut flipped = bytes.clone();
                flipped[bit / 8] ^= 1 << (bit % 8);
                std::fs::write(dir.join(rel), &flipped).unwrap();
            } else {
                std::fs::write(dir.join(rel), bytes).unwrap();
            }
        }
    }

    /// Checks that `dir` holds the image with exactly that one bit flipped
    /// (none for `file` = `usize::MAX`).
    fn verify(&self, dir: &Path, file: usize, bit: usize) {
        let on_disk = Image::load(dir);
        assert_eq!(on_disk.dirs, self.dirs, "the attempt's folders");
        assert_eq!(on_disk.files.len(), self.files.len());
        for (i, ((a, x), (b, y))) in on_disk.files.iter().zip(&self.files).enumerate() {
            assert_eq!(a, b);
            assert_eq!(x.len(), y.len(), "{} has another length", a.display());
            let diff: Vec<usize> = if x == y {
                Vec::new()
            } else {
                (0..x.len() * 8)
                    .filter(|&k| (x[k / 8] ^ y[k / 8]) >> (k % 8) & 1 == 1)
                    .collect()
            };
            let want = if i == file { vec![bit] } else { Vec::new() };
            assert_eq!(
                diff,
                want,
                "{} differs from the pristine image",
                a.display()
            );
        }
    }
}

// ---------------------------------------------------------------------------
// One flip.

/// What the file under test is.
#[derive(Clone)]
enum Kind {
    /// A log segment: its frames `(offset, length)`, and whether it is the last.
    Log {
        frames: Vec<(usize, usize)>,
        last: bool,
    },
    /// A keyring file (manifest, shard, seals ledger).
    Keyring,
    /// A sealed record (FORMAT.md §4): the value at `key` in the store,
    /// written back flipped through RocksDB.
    Record { key: Vec<u8>, value: Vec<u8> },
}

#[derive(Debug)]
enum Verdict {
    /// `Db::open` or a read returned a typed error.
    Detected { label: String, names_file: bool },
    /// The last frame of the last segment (or a stray bit in the zeros
    /// after it) was cut as a torn tail, and everything reads back as
    /// written (the store held that frame).
    TornTail,
    /// Opened and read everything right, but the flipped bit was accepted
    /// (or a frame a later frame vouches for was cut).
    Undetected(String),
    /// A read returned a wrong value, a key never written, or a scope's
    /// state changed without an error.
    Wrong(String),
    /// A panic (in the test's thread, or counted by the hook in any thread).
    Panic(String),
}

/// Every panic message, from any thread (the engine's background threads
/// too), recorded by the hook.
static PANICS: Mutex<Vec<String>> = Mutex::new(Vec::new());
static PANIC_COUNT: AtomicUsize = AtomicUsize::new(0);

fn install_panic_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            let thread = std::thread::current();
            let name = thread.name().unwrap_or("?").to_string();
            PANICS.lock().unwrap().push(format!("[{name}] {info}"));
            PANIC_COUNT.fetch_add(1, Ordering::SeqCst);
            default(info);
        }));
    });
}

fn attempt(dir: &Path, target: &Path, bit: usize, kind: &Kind, model: &Model) -> Verdict {
    let original_len = std::fs::metadata(target).unwrap().len() as usize;
    let db = match Db::open(dir, options()) {
        Ok(db) => db,
        Err(e) => {
            return Verdict::Detected {
                label: label(&e),
                names_file: file_of(&e).as_deref() == Some(target),
            };
        }
    };
    // What open did to the flipped file (before the first maintenance tick,
    // 200 ms after open, may remove sealed segments).
    let len_after_open = std::fs::metadata(target).map(|m| m.len() as usize);
    let reads = read_everything(&db, model);
    db.close().ok();
    if let Some(w) = reads.wrong.first() {
        return Verdict::Wrong(format!("{w} (+{} more)", reads.wrong.len() - 1));
    }
    if let Some((_, e, file)) = reads.errors.first() {
        return Verdict::Detected {
            label: format!("read: {e}"),
            names_file: file.as_deref() == Some(target),
        };
    }
    let Kind::Log { frames, last } = kind else {
        return Verdict::Undetected("opened, and every read was right".into());
    };
    let len_after_open = match len_after_open {
        Ok(len) => len,
        Err(e) => return Verdict::Undetected(format!("the flipped file is gone after open: {e}")),
    };
    if len_after_open == original_len {
        return Verdict::Undetected("opened with the flipped bit in place".into());
    }
    let byte = bit / 8;
    if !last {
        return Verdict::Undetected(format!(
            "{original_len} bytes cut to {len_after_open}, not in the last segment"
        ));
    }
    let (at, len) = *frames.last().unwrap();
    if byte >= at + len && len_after_open == at + len {
        // A stray bit in the zeros the writer fills ahead (FORMAT.md §2):
        // a bad frame nothing vouches for, cut; no frame is lost.
        return Verdict::TornTail;
    }
    if (at..at + len).contains(&byte) && len_after_open == at {
        Verdict::TornTail
    } else {
        Verdict::Undetected(format!(
            "cut to {len_after_open} bytes for a flip at byte {byte}: \
             not in the last frame, which starts at {at}"
        ))
    }
}

// ---------------------------------------------------------------------------
// A sweep.

#[derive(Debug, Default)]
struct Tally {
    tried: usize,
    detected: usize,
    names_file: usize,
    torn_tail: usize,
    undetected: usize,
    wrong: usize,
    panics: usize,
    labels: BTreeMap<String, usize>,
    failures: Vec<String>,
    elapsed: Duration,
}

impl Tally {
    fn add(&mut self, what: String, verdict: Verdict) {
        self.tried += 1;
        let failure = match verdict {
            Verdict::Detected { label, names_file } => {
                self.detected += 1;
                self.names_file += usize::from(names_file);
                *self.labels.entry(label).or_default() += 1;
                None
            }
            Verdict::TornTail => {
                self.torn_tail += 1;
                None
            }
            Verdict::Undetected(why) => {
                self.undetected += 1;
                Some(format!("UNDETECTED {what}: {why}"))
            }
            Verdict::Wrong(why) => {
                self.wrong += 1;
                Some(format!("WRONG {what}: {why}"))
            }
            Verdict::Panic(why) => {
                self.panics += 1;
                Some(format!("PANIC {what}: {why}"))
            }
        };
        self.failures.extend(failure);
    }

    fn merge(&mut self, other: Tally) {
        self.tried += other.tried;
        self.detected += other.detected;
        self.names_file += other.names_file;
        self.torn_tail += other.torn_tail;
        self.undetected += other.undetected;
        self.wrong += other.wrong;
        self.panics += other.panics;
        for (l, n) in other.labels {
            *self.labels.entry(l).or_default() += n;
        }
        self.failures.extend(other.failures);
        self.elapsed += other.elapsed;
    }

    fn report(&self, format: &str) {
        eprintln!(
            "sweep {format}: {} flips tried, {} detected ({} naming the flipped file), \
             {} harmless torn-tail cuts, {} undetected, {} wrong, {} panics, {:.1} s",
            self.tried,
            self.detected,
            self.names_file,
            self.torn_tail,
            self.undetected,
            self.wrong,
            self.panics,
            self.elapsed.as_secs_f64()
        );
        for (label, n) in &self.labels {
            eprintln!("    {n:6}  {label}");
        }
        for f in self.failures.iter().take(40) {
            eprintln!("    {f}");
        }
    }
}

/// Flips each bit of `bits` in file `rel` of the image, one attempt each,
/// on as many threads as there are cores.
fn sweep(image: &Image, model: &Model, rel: &Path, kind: &Kind, bits: &[usize]) -> Tally {
    install_panic_hook();
    let file = match kind {
        Kind::Record { .. } => usize::MAX,
        _ => image.index(rel),
    };
    let started = Instant::now();
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let scratch = tempfile::tempdir().unwrap();
    let mut total = Tally::default();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|w| {
                let dir = scratch.path().join(format!("worker{w}"));
                s.spawn(move || {
                    let mut tally = Tally::default();
                    for (n, &bit) in bits.iter().enumerate().skip(w).step_by(workers) {
                        let pristine = match kind {
                            Kind::Record { value, .. } => value,
                            _ => &image.files[file].1,
                        };
                        let mut flipped = pristine.clone();
                        flipped[bit / 8] ^= 1 << (bit % 8);
                        match kind {
                            Kind::Record { key, .. } => {
                                image.write_to(&dir, usize::MAX, 0);
                                if n < workers || n % 101 == 0 {
                                    image.verify(&dir, usize::MAX, 0);
                                }
                                raw_put(&dir, key, &flipped);
                            }
                            _ => {
                                image.write_to(&dir, file, bit);
                                if n < workers || n % 101 == 0 {
                                    image.verify(&dir, file, bit);
                                }
                            }
                        }
                        let target = dir.join(rel);
                        let what = format!(
                            "{}{} byte {} bit {} (0x{:02x} -> 0x{:02x})",
                            rel.display(),
                            match kind {
                                Kind::Record { key, .. } => format!(" value at key {key:02x?}"),
                                _ => String::new(),
                            },
                            bit / 8,
                            bit % 8,
                            pristine[bit / 8],
                            flipped[bit / 8],
                        );
                        let panics_before = PANIC_COUNT.load(Ordering::SeqCst);
                        let verdict = panic::catch_unwind(AssertUnwindSafe(|| {
                            attempt(&dir, &target, bit, kind, model)
                        }));
                        let verdict = match verdict {
                            Ok(_) if PANIC_COUNT.load(Ordering::SeqCst) != panics_before => {
                                Verdict::Panic("in a background thread".into())
                            }
                            Ok(v) => v,
                            Err(p) => Verdict::Panic(
                                p.downcast_ref::<String>()
                                    .cloned()
                                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                                    .unwrap_or_default(),
                            ),
                        };
                        tally.add(what, verdict);
                    }
                    tally
                })
            })
            .collect();
        for h in handles {
            total.merge(h.join().expect("a sweep worker"));
        }
    });
    total.elapsed = started.elapsed();
    total.failures.sort();
    total
}

/// Writes `value` at `key` in the store with RocksDB itself, as an attacker
/// with the files (but not the key) can.
fn raw_put(dir: &Path, key: &[u8], value: &[u8]) {
    let db = rocksdb::DB::open_default(dir.join(STORE_DIR)).unwrap();
    db.put(key, value).unwrap();
    db.flush().unwrap();
}

/// Every data record in the store: (store key, sealed record).
fn raw_records(dir: &Path) -> Vec<(Vec<u8>, Vec<u8>)> {
    let db = rocksdb::DB::open_default(dir.join(STORE_DIR)).unwrap();
    db.prefix_iterator([STORE_NS_DATA])
        .map(Result::unwrap)
        .take_while(|(k, _)| k[0] == STORE_NS_DATA)
        .map(|(k, v)| (k.to_vec(), v.to_vec()))
        .collect()
}

/// The 18-byte store prefix of a scope (FORMAT.md §8).
fn scope_prefix(id: ScopeId) -> Vec<u8> {
    let mut p = vec![STORE_NS_DATA];
    p.extend_from_slice(&id.0.to_be_bytes());
    p.push(u8::from(id.1.is_some()));
    p.extend_from_slice(&id.1.unwrap_or(0).to_be_bytes());
    p
}

/// Every bit of a file (full mode), or one bit of every byte, the bit
/// rotating from byte to byte (CI).
fn keyring_bits(len: usize, full: bool) -> Vec<usize> {
    if full {
        (0..len * 8).collect()
    } else {
        // One bit per byte; past 2,000 bytes (the format-2 manifest's 257
        // anchors), every byte of the first 256 and last 64 and one byte in
        // `step` of the rest.
        let step = (len / 1500).max(1);
        (0..len)
            .filter(|&byte| byte < 256 || byte + 64 >= len || byte % step == 0)
            .map(|byte| byte * 8 + (byte * 3) % 8)
            .collect()
    }
}

fn pristine() -> (tempfile::TempDir, Image, Model) {
    let dir = tempfile::tempdir().unwrap();
    let db_dir = dir.path().join("db");
    let started = Instant::now();
    let model = build(&db_dir);
    let image = Image::load(&db_dir);
    // The pristine database reads back exactly as written.
    let db = Db::open(&db_dir, options()).unwrap();
    let reads = read_everything(&db, &model);
    db.close().unwrap();
    assert!(
        reads.wrong.is_empty() && reads.errors.is_empty(),
        "the pristine database: {reads:?}"
    );
    let bytes: usize = image.files.iter().map(|(_, b)| b.len()).sum();
    eprintln!(
        "pristine database: {} files, {bytes} bytes, {} scopes, built in {:.2} s",
        image.files.len(),
        model.scopes.len(),
        started.elapsed().as_secs_f64()
    );
    (dir, image, model)
}

fn assert_clean(tallies: &[(String, Tally)]) {
    // A copy: the assertions below panic, and the hook takes the lock.
    let panics = PANICS.lock().unwrap().clone();
    for p in panics.iter().take(10) {
        eprintln!("panic: {p}");
    }
    let bad: Vec<_> = tallies
        .iter()
        .filter(|(_, t)| t.wrong + t.panics + t.undetected > 0)
        .map(|(f, t)| {
            format!(
                "{f}: {} wrong, {} panics, {} undetected",
                t.wrong, t.panics, t.undetected
            )
        })
        .collect();
    assert!(bad.is_empty(), "{bad:?}");
    assert!(panics.is_empty(), "{} panics", panics.len());
}

// ---------------------------------------------------------------------------
// The tests.

#[test]
fn every_flipped_bit_of_a_log_segment_is_detected_or_cut_as_a_torn_tail() {
    let (_dir, image, model) = pristine();
    let full = full_mode();
    let segments: Vec<PathBuf> = image
        .files
        .iter()
        .map(|(p, _)| p.clone())
        .filter(|p| p.starts_with(WAL_DIR))
        .collect();
    assert!(segments.len() >= 3);
    // Sample bits over the concatenation of every segment, with a fixed seed.
    let sizes: Vec<usize> = segments
        .iter()
        .map(|p| image.files[image.index(p)].1.len() * 8)
        .collect();
    let total_bits: usize = sizes.iter().sum();
    let n = if full { LOG_FLIPS_FULL } else { LOG_FLIPS_CI }.min(total_bits);
    let mut rng = StdRng::seed_from_u64(LOG_SEED);
    let mut sample = rand::seq::index::sample(&mut rng, total_bits, n).into_vec();
    sample.sort_unstable();
    let mut per_segment: Vec<Vec<usize>> = vec![Vec::new(); segments.len()];
    for global in sample {
        let mut at = global;
        for (i, size) in sizes.iter().enumerate() {
            if at < *size {
                per_segment[i].push(at);
                break;
            }
            at -= size;
        }
    }
    eprintln!(
        "log: {} segments, {} bits; sweeping {n} sampled bits{}",
        segments.len(),
        total_bits,
        if full { " (full mode)" } else { "" }
    );
    let mut earlier = Tally::default();
    let mut last = Tally::default();
    for (i, (segment, bits)) in segments.iter().zip(&per_segment).enumerate() {
        let bytes = &image.files[image.index(segment)].1;
        let is_last = i + 1 == segments.len();
        let kind = Kind::Log {
            frames: common::frames(bytes),
            last: is_last,
        };
        assert!(bytes.len() > SEGMENT_HEADER_LEN);
        let tally = sweep(&image, &model, segment, &kind, bits);
        if is_last {
            last.merge(tally);
        } else {
            earlier.merge(tally);
        }
    }
    earlier.report("log segments before the last");
    last.report("last log segment");
    assert_eq!(earlier.torn_tail, 0, "a torn tail only in the last segment");
    assert_clean(&[
        ("log segments before the last".into(), earlier),
        ("last log segment".into(), last),
    ]);
}

#[test]
fn every_flipped_bit_of_the_keyring_manifest_shards_and_seals_ledger_is_detected() {
    let (_dir, image, model) = pristine();
    let full = full_mode();
    let keyring = Path::new(KEYRING_DIR);
    let targets = [
        ("keyring manifest", keyring.join(KEYRING_MANIFEST_FILE)),
        (
            "tenant shard",
            keyring.join(KEYRING_TENANTS_DIR).join("001.keys"),
        ),
        (
            "subject shard",
            keyring
                .join(KEYRING_SUBJECTS_DIR)
                .join(format!("{:016x}", 1))
                .join("0001.keys"),
        ),
        ("seals ledger", keyring.join(SEALS_FILE)),
    ];
    let mut tallies = Vec::new();
    for (format, rel) in targets {
        let len = image.files[image.index(&rel)].1.len();
        let bits = keyring_bits(len, full);
        eprintln!(
            "{format} ({}): {len} bytes, sweeping {} bits",
            rel.display(),
            bits.len()
        );
        let tally = sweep(&image, &model, &rel, &Kind::Keyring, &bits);
        tally.report(format);
        assert_eq!(tally.torn_tail, 0);
        tallies.push((format.to_string(), tally));
    }
    assert_clean(&tallies);
}

#[test]
fn every_flipped_bit_of_a_sealed_record_in_the_store_is_refused_on_read() {
    let (dir, image, model) = pristine();
    let full = full_mode();
    // Read the records from a copy: RocksDB's open changes its files.
    let copy = dir.path().join("copy");
    image.write_to(&copy, usize::MAX, 0);
    let records = raw_records(&copy);
    let in_scope = |id: ScopeId| -> Vec<(Vec<u8>, Vec<u8>)> {
        let prefix = scope_prefix(id);
        let mut r: Vec<_> = records
            .iter()
            .filter(|(k, _)| k.starts_with(&prefix))
            .cloned()
            .collect();
        r.sort_by_key(|(k, v)| (v.len(), k.clone()));
        r
    };
    // A record of a tenant's own scope (under rotated version 2), one of a
    // subject, and the shortest of subject 5's: a zstd-compressed one (its
    // 2000-byte value compresses to a few bytes; its plain records are 82).
    let tenant = in_scope((1, None)).remove(0);
    let subject = in_scope((1, Some(1))).remove(0);
    let compressed = in_scope((1, Some(5))).remove(0);
    assert!(compressed.1.len() < 82, "{}", compressed.1.len());
    let mut tallies = Vec::new();
    for (format, (key, value)) in [
        ("sealed record, tenant scope", tenant),
        ("sealed record, subject scope", subject),
        ("sealed record, zstd-compressed", compressed),
    ] {
        let bits = keyring_bits(value.len(), full);
        eprintln!(
            "{format}: {} bytes, sweeping {} bits",
            value.len(),
            bits.len()
        );
        let kind = Kind::Record { key, value };
        let tally = sweep(&image, &model, Path::new(STORE_DIR), &kind, &bits);
        tally.report(format);
        assert_eq!(tally.torn_tail, 0);
        tallies.push((format.to_string(), tally));
    }
    assert_clean(&tallies);
}
