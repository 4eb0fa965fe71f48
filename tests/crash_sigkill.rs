//! Crash safety: a writer in a child process is killed with SIGKILL at random
//! moments; after each kill the database is reopened and must hold every
//! write acknowledged before the kill, and nothing that was never written.
//!
//! The test binary runs itself as the child (sled's approach): the
//! `child_writer` test returns at once unless `STRONGROOM_CRASH_CHILD_DIR` is
//! set, in which case it opens the database there and writes from three
//! threads until it is killed. The parent test spawns it, kills it after a
//! random delay (some kills land during `Db::open`'s recovery, on purpose),
//! reopens the database itself and checks every writer thread's keys: each
//! must show the thread's acknowledged writes, plus its one write in flight
//! either entirely or not at all (a batch is all or nothing). Scans of every
//! scope must show nothing else. One database folder serves every kill, so
//! history accumulates, and small log segments make the log roll and the
//! background checkpoint remove segments while the child runs.
//!
//! Each writer thread owns its keys (`t{thread}-k{n}`, in every scope), so
//! per key the order of writes is the thread's program order. Every op has a
//! globally unique id `{kill point}-{thread}-{seq}`, and every value it puts
//! starts with that id, so the parent can tell which op wrote what.
//!
//! The child reports on stdout, one line per event, flushed at once (libtest
//! may put its own text before a line, hence the marker):
//!
//! ```text
//! @crash opened
//! @crash issue <thread> <opid> <how> <item>;<item>...   (before the call)
//! @crash ack <thread> <opid>                            (after it returned Ok)
//! @crash err <thread> <opid> <error>                    (then the child exits)
//! ```
//!
//! `<how>` is `single` (`put`/`delete` on the item's scope), `batch` (a
//! `WriteBatch` through the tenant's handle) or `batch@<subject>` (through a
//! subject's handle). An item is `P:<tenant>:<subject|->:<key>:<pad>` (a put
//! whose value `value_of` rebuilds) or `D:<tenant>:<subject|->:<key>`.
//!
//! Environment: `STRONGROOM_CRASH_KILLS` (kill points, default 200) and
//! `STRONGROOM_CRASH_SEED` (seed of the kill schedule and of the children's
//! workloads; thread timing still varies from run to run).

#![cfg(unix)]

use std::collections::BTreeMap;
use std::fmt;
use std::io::{Read, Stdout, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use strongroom::{Db, Durability, Lsn, Options, SubjectId, TenantId, WriteBatch};

const CHILD_DIR_ENV: &str = "STRONGROOM_CRASH_CHILD_DIR";
const CHILD_ITERATION_ENV: &str = "STRONGROOM_CRASH_CHILD_ITERATION";
const CHILD_SEED_ENV: &str = "STRONGROOM_CRASH_CHILD_SEED";
const KILLS_ENV: &str = "STRONGROOM_CRASH_KILLS";
const SEED_ENV: &str = "STRONGROOM_CRASH_SEED";
const DEFAULT_KILLS: u64 = 200;

/// Marks the child's protocol lines.
const MARK: &str = "@crash ";
const MASTER_KEY: [u8; 32] = *b"strongroom crash test master key";
/// Small segments, so that the log rolls often and the background checkpoint
/// (which polls every 200 ms) finds sealed segments to remove.
const SEGMENT_BYTES_MAX: u64 = 16 << 10;
const WRITERS: usize = 3;
const KEYS_PER_WRITER: usize = 20;
const TENANTS: [u64; 2] = [7, 8];
const SUBJECTS: [u64; 3] = [1, 2, 3];
/// Values carry 0..=PAD_MAX padding bytes, so frames vary in size and some
/// records cross the 512-byte compression threshold.
const PAD_MAX: usize = 1200;
const SIGKILL: i32 = 9;

fn options() -> Options {
    Options::with_key(MASTER_KEY)
        .segment_bytes_max(SEGMENT_BYTES_MAX)
        .durability(Durability::SyncEveryCommit)
}

fn env_u64(name: &str) -> Option<u64> {
    let raw = std::env::var(name).ok()?;
    Some(
        raw.trim()
            .parse()
            .unwrap_or_else(|e| panic!("{name}={raw:?} is not a number: {e}")),
    )
}

// ---------------------------------------------------------------------------
// The workload, shared by child and parent
// ---------------------------------------------------------------------------

/// A scope: a tenant's own, or one of its subjects'.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct Target {
    tenant: u64,
    subject: Option<u64>,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.subject {
            None => write!(f, "tenant {} (own scope)", self.tenant),
            Some(s) => write!(f, "tenant {} subject {s}", self.tenant),
        }
    }
}

fn all_targets() -> Vec<Target> {
    let mut targets = Vec::new();
    for tenant in TENANTS {
        targets.push(Target {
            tenant,
            subject: None,
        });
        for subject in SUBJECTS {
            targets.push(Target {
                tenant,
                subject: Some(subject),
            });
        }
    }
    targets
}

fn key_name(thread: usize, n: usize) -> String {
    format!("t{thread}-k{n}")
}

/// The writer thread that owns `key`, if `key` is one of the workload's.
fn owner_of(key: &str) -> Option<usize> {
    let (thread, n) = key.strip_prefix('t')?.split_once("-k")?;
    let (thread, n): (usize, usize) = (thread.parse().ok()?, n.parse().ok()?);
    (thread < WRITERS && n < KEYS_PER_WRITER && key == key_name(thread, n)).then_some(thread)
}

/// The value that item `index` of op `op_id` puts, with `pad` padding bytes:
/// even pads are compressible text, odd pads pseudo-random bytes.
fn value_of(op_id: &str, index: usize, pad: usize) -> Vec<u8> {
    let mut value = format!("v{op_id}.{index}|").into_bytes();
    let mut x = value.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    }) | 1;
    for i in 0..pad {
        if pad.is_multiple_of(2) {
            value.push(b'a' + (i % 26) as u8);
        } else {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            value.push((x >> 32) as u8);
        }
    }
    value
}

/// A value, briefly: the op that wrote it (values start with it) and length.
fn describe(value: Option<&Vec<u8>>) -> String {
    let Some(value) = value else {
        return "absent".into();
    };
    let head = value.split(|&b| b == b'|').next().unwrap_or_default();
    match std::str::from_utf8(head) {
        Ok(text) if head.len() < value.len() && text.starts_with('v') => {
            format!("{text} ({} bytes)", value.len())
        }
        _ => format!(
            "unrecognised value {:02x?}... ({} bytes)",
            &value[..value.len().min(24)],
            value.len()
        ),
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Item {
    Put {
        target: Target,
        key: String,
        pad: usize,
        value: Vec<u8>,
    },
    Delete {
        target: Target,
        key: String,
    },
}

impl Item {
    fn place(&self) -> (Target, &str) {
        match self {
            Item::Put { target, key, .. } | Item::Delete { target, key } => (*target, key),
        }
    }

    fn encode(&self) -> String {
        let (target, key) = self.place();
        let subject = target.subject.map_or("-".to_string(), |s| s.to_string());
        match self {
            Item::Put { pad, .. } => format!("P:{}:{subject}:{key}:{pad}", target.tenant),
            Item::Delete { .. } => format!("D:{}:{subject}:{key}", target.tenant),
        }
    }

    fn decode(op_id: &str, index: usize, text: &str) -> Result<Item, String> {
        let bad = || format!("malformed item {text:?} of op {op_id}");
        let fields: Vec<&str> = text.split(':').collect();
        let (kind, tenant, subject, key) = match fields[..] {
            [kind, tenant, subject, key, ..] => (kind, tenant, subject, key),
            _ => return Err(bad()),
        };
        let target = Target {
            tenant: tenant.parse().map_err(|_| bad())?,
            subject: match subject {
                "-" => None,
                s => Some(s.parse().map_err(|_| bad())?),
            },
        };
        let key = key.to_string();
        match (kind, &fields[4..]) {
            ("P", [pad]) => {
                let pad = pad.parse().map_err(|_| bad())?;
                Ok(Item::Put {
                    target,
                    key,
                    pad,
                    value: value_of(op_id, index, pad),
                })
            }
            ("D", []) => Ok(Item::Delete { target, key }),
            _ => Err(bad()),
        }
    }
}

/// How an op reaches the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum How {
    /// `put` or `delete` on the handle of the item's scope.
    Single,
    /// A `WriteBatch` written through the tenant's handle.
    BatchTenant,
    /// A `WriteBatch` written through a subject's handle: its items in that
    /// subject use `put`/`delete`, the others `put_subject`/`delete_subject`.
    BatchSubject(u64),
}

#[derive(Debug, Clone)]
struct Op {
    thread: usize,
    id: String,
    tenant: u64,
    how: How,
    items: Vec<Item>,
}

impl Op {
    fn encode(&self) -> String {
        let how = match self.how {
            How::Single => "single".to_string(),
            How::BatchTenant => "batch".to_string(),
            How::BatchSubject(s) => format!("batch@{s}"),
        };
        let items: Vec<String> = self.items.iter().map(Item::encode).collect();
        format!(
            "issue {} {} {how} {}",
            self.thread,
            self.id,
            items.join(";")
        )
    }

    /// Parses the words after `issue`.
    fn decode(rest: &str) -> Result<Op, String> {
        let bad = || format!("malformed issue line {rest:?}");
        let words: Vec<&str> = rest.split(' ').collect();
        let [thread, id, how, items] = words[..] else {
            return Err(bad());
        };
        let thread: usize = thread.parse().map_err(|_| bad())?;
        if thread >= WRITERS {
            return Err(bad());
        }
        let how = match how {
            "single" => How::Single,
            "batch" => How::BatchTenant,
            other => How::BatchSubject(
                other
                    .strip_prefix("batch@")
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(bad)?,
            ),
        };
        let items = items
            .split(';')
            .enumerate()
            .map(|(i, text)| Item::decode(id, i, text))
            .collect::<Result<Vec<_>, _>>()?;
        let tenant = items.first().ok_or_else(bad)?.place().0.tenant;
        Ok(Op {
            thread,
            id: id.to_string(),
            tenant,
            how,
            items,
        })
    }

    fn apply_to(&self, state: &mut State) {
        for item in &self.items {
            match item {
                Item::Put {
                    target, key, value, ..
                } => {
                    state.insert((*target, key.clone()), value.clone());
                }
                Item::Delete { target, key } => {
                    state.remove(&(*target, key.clone()));
                }
            }
        }
    }
}

/// The records of the workload's key space: (scope, key) -> value.
type State = BTreeMap<(Target, String), Vec<u8>>;

fn random_op(rng: &mut StdRng, thread: usize, id: String) -> Op {
    let tenant = TENANTS[rng.random_range(0..TENANTS.len())];
    let own = Target {
        tenant,
        subject: None,
    };
    let subject = |rng: &mut StdRng| Target {
        tenant,
        subject: Some(SUBJECTS[rng.random_range(0..SUBJECTS.len())]),
    };
    let key = |rng: &mut StdRng| key_name(thread, rng.random_range(0..KEYS_PER_WRITER));
    let put = |rng: &mut StdRng, target: Target, key: String, index: usize| {
        let pad = rng.random_range(0..=PAD_MAX);
        Item::Put {
            target,
            key,
            pad,
            value: value_of(&id, index, pad),
        }
    };
    let roll = rng.random_range(0..100);
    let (how, items) = if roll < 30 {
        let k = key(rng);
        (How::Single, vec![put(rng, own, k, 0)])
    } else if roll < 55 {
        let (target, k) = (subject(rng), key(rng));
        (How::Single, vec![put(rng, target, k, 0)])
    } else if roll < 75 {
        let target = if rng.random_bool(0.4) {
            own
        } else {
            subject(rng)
        };
        let key = key(rng);
        (How::Single, vec![Item::Delete { target, key }])
    } else {
        let how = if rng.random_bool(0.25) {
            How::BatchSubject(SUBJECTS[rng.random_range(0..SUBJECTS.len())])
        } else {
            How::BatchTenant
        };
        let len = rng.random_range(2..=4);
        let mut items: Vec<Item> = Vec::with_capacity(len);
        while items.len() < len {
            // A subject's handle reaches its tenant's subjects only.
            let target = if how == How::BatchTenant && rng.random_bool(0.35) {
                own
            } else {
                subject(rng)
            };
            let k = key(rng);
            if items.iter().any(|i| i.place() == (target, k.as_str())) {
                continue;
            }
            let index = items.len();
            items.push(if rng.random_bool(0.7) {
                put(rng, target, k, index)
            } else {
                Item::Delete { target, key: k }
            });
        }
        (how, items)
    };
    Op {
        thread,
        id,
        tenant,
        how,
        items,
    }
}

fn execute(db: &Db, op: &Op) -> strongroom::Result<Lsn> {
    let tenant = db.tenant(TenantId(op.tenant));
    if op.how == How::Single {
        let [item] = &op.items[..] else {
            unreachable!("a single op has one item")
        };
        let (target, key) = item.place();
        return match (item, target.subject) {
            (Item::Put { value, .. }, None) => tenant.put(key.as_bytes(), value),
            (Item::Put { value, .. }, Some(s)) => {
                tenant.subject(SubjectId(s)).put(key.as_bytes(), value)
            }
            (Item::Delete { .. }, None) => tenant.delete(key.as_bytes()),
            (Item::Delete { .. }, Some(s)) => tenant.subject(SubjectId(s)).delete(key.as_bytes()),
        };
    }
    let handle_subject = match op.how {
        How::BatchSubject(s) => Some(s),
        _ => None,
    };
    let mut batch = WriteBatch::new();
    for item in &op.items {
        let (target, key) = item.place();
        // Ops without a subject target the scope of the handle that writes.
        let via_handle = target.subject == handle_subject;
        match item {
            Item::Put { value, .. } if via_handle => batch.put(key, value.clone()),
            Item::Put { value, .. } => {
                let s = target
                    .subject
                    .expect("a subject handle reaches subjects only");
                batch.put_subject(SubjectId(s), key, value.clone())
            }
            Item::Delete { .. } if via_handle => batch.delete(key),
            Item::Delete { .. } => {
                let s = target
                    .subject
                    .expect("a subject handle reaches subjects only");
                batch.delete_subject(SubjectId(s), key)
            }
        };
    }
    match handle_subject {
        None => tenant.write(batch),
        Some(s) => tenant.subject(SubjectId(s)).write(batch),
    }
}

// ---------------------------------------------------------------------------
// The child
// ---------------------------------------------------------------------------

/// The child's body: does nothing unless the parent test started this binary
/// with `STRONGROOM_CRASH_CHILD_DIR` set; then writes until killed.
#[test]
fn child_writer() {
    let Some(dir) = std::env::var_os(CHILD_DIR_ENV) else {
        return;
    };
    let iteration = env_u64(CHILD_ITERATION_ENV).expect("the parent sets the kill point");
    let seed = env_u64(CHILD_SEED_ENV).expect("the parent sets the child's seed");
    run_child(Path::new(&dir), iteration, seed);
}

fn run_child(dir: &Path, iteration: u64, seed: u64) -> ! {
    let out = Mutex::new(std::io::stdout());
    // End whatever libtest has written on the current line.
    emit_raw(&out, "");
    let db = match Db::open(dir, options()) {
        Ok(db) => db,
        Err(e) => {
            emit(&out, &format!("err - open {e}"));
            std::process::exit(2);
        }
    };
    emit(&out, "opened");
    std::thread::scope(|s| {
        for thread in 0..WRITERS {
            let (db, out) = (&db, &out);
            s.spawn(move || write_forever(db, out, iteration, thread, seed));
        }
        let (db, out) = (&db, &out);
        s.spawn(move || rotate_forever(db, out, seed));
    });
    unreachable!("the writers stop only when the process is killed")
}

fn write_forever(db: &Db, out: &Mutex<Stdout>, iteration: u64, thread: usize, seed: u64) {
    let mut rng =
        StdRng::seed_from_u64(seed ^ (thread as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    for seq in 0u64.. {
        let op = random_op(&mut rng, thread, format!("{iteration}-{thread}-{seq}"));
        emit(out, &op.encode());
        match execute(db, &op) {
            Ok(_) => emit(out, &format!("ack {thread} {}", op.id)),
            Err(e) => {
                emit(out, &format!("err {thread} {} {e}", op.id));
                std::process::exit(1);
            }
        }
    }
}

/// Rotates a tenant's key every few tens of milliseconds, so that kills land
/// during rotations and during the background re-encryption passes they
/// start.
fn rotate_forever(db: &Db, out: &Mutex<Stdout>, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x0123_4567_89ab_cdef);
    loop {
        std::thread::sleep(Duration::from_millis(rng.random_range(10..60)));
        let tenant = TENANTS[rng.random_range(0..TENANTS.len())];
        match db.tenant(TenantId(tenant)).rotate_key() {
            Ok(version) => emit(out, &format!("rotated {tenant} {version}")),
            Err(e) => {
                emit(out, &format!("err rotate {tenant} {e}"));
                std::process::exit(1);
            }
        }
    }
}

fn emit(out: &Mutex<Stdout>, line: &str) {
    emit_raw(out, &format!("{MARK}{line}"));
}

/// Writes one whole line and flushes it before returning; exits if the
/// parent can no longer hear.
fn emit_raw(out: &Mutex<Stdout>, line: &str) {
    let out = out.lock().unwrap_or_else(|e| e.into_inner());
    let mut out = out.lock();
    let written = out
        .write_all(format!("{line}\n").as_bytes())
        .and_then(|()| out.flush());
    if written.is_err() {
        std::process::exit(3);
    }
}

// ---------------------------------------------------------------------------
// The parent
// ---------------------------------------------------------------------------

#[derive(Debug, Default)]
struct Stats {
    kill_points: u64,
    killed_before_open: u64,
    issued: u64,
    acked: u64,
    in_flight_applied: u64,
    in_flight_not_applied: u64,
    in_flight_invisible: u64,
    segments_created: u64,
    kills_after_segment_removal: u64,
    segments_max: usize,
    rotations: u64,
}

/// What the child reported before it was killed.
struct Transcript {
    opened: bool,
    /// Per thread, the op issued and not acknowledged, if any.
    in_flight: Vec<Option<Op>>,
}

#[test]
fn acknowledged_writes_survive_sigkill_at_random_points() {
    let kills = env_u64(KILLS_ENV).unwrap_or(DEFAULT_KILLS);
    let seed = env_u64(SEED_ENV).unwrap_or_else(|| rand::rng().random());
    println!("crash_sigkill: seed {seed} (set {SEED_ENV}={seed} to repeat), {kills} kill points");
    let mut rng = StdRng::seed_from_u64(seed);
    let tmp = tempfile::tempdir().expect("a temporary folder");
    let db_dir = tmp.path().join("db");
    let exe = std::env::current_exe().expect("the test binary's path");
    let started = Instant::now();
    let mut state = State::new();
    let mut stats = Stats::default();
    for iteration in 0..kills {
        // Most kills come within 150 ms of the spawn (some during the child's
        // start-up and recovery); one in four later, after the background
        // checkpoint (every 200 ms) has had a chance to flush and remove
        // segments.
        let delay = Duration::from_millis(if rng.random_bool(0.25) {
            rng.random_range(150..=600)
        } else {
            rng.random_range(0..=150)
        });
        let child_seed: u64 = rng.random();
        let run = kill_point(
            &exe, &db_dir, iteration, delay, child_seed, &mut state, &mut stats,
        );
        if let Err(message) = run {
            let kept = tmp.keep();
            panic!(
                "kill point {iteration} (child killed {delay:?} after its spawn; seed {seed}, \
                 child seed {child_seed}): {message}\n(database kept at {})",
                kept.join("db").display()
            );
        }
    }
    let s = &stats;
    println!(
        "crash_sigkill summary: {} kill points in {:.1} s ({} before the child had opened the \
         database); ops issued {}, acked {}; in-flight ops at the kill: {} found applied, {} found \
         not applied, {} without visible effect; log: {} segments created, up to {} at once, \
         segments removed by the child's checkpoint before {} kills; {} key rotations \
         (each checked finished, without loss, after the kill); seed {seed}",
        s.kill_points,
        started.elapsed().as_secs_f64(),
        s.killed_before_open,
        s.issued,
        s.acked,
        s.in_flight_applied,
        s.in_flight_not_applied,
        s.in_flight_invisible,
        s.segments_created,
        s.segments_max,
        s.kills_after_segment_removal,
        s.rotations,
    );
}

/// Runs one child, kills it after `delay`, reopens the database and checks
/// it against `state` (which it then brings up to date).
fn kill_point(
    exe: &Path,
    db_dir: &Path,
    iteration: u64,
    delay: Duration,
    child_seed: u64,
    state: &mut State,
    stats: &mut Stats,
) -> Result<(), String> {
    let segments_before = segments(db_dir);
    let mut child = Command::new(exe)
        .args(["child_writer", "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_DIR_ENV, db_dir)
        .env(CHILD_ITERATION_ENV, iteration.to_string())
        .env(CHILD_SEED_ENV, child_seed.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("spawning the child {}: {e}", exe.display()))?;
    let stdout = drain(child.stdout.take().expect("piped stdout"));
    let stderr = drain(child.stderr.take().expect("piped stderr"));
    std::thread::sleep(delay);
    // SIGKILL on Unix. A child that has already exited is reported below.
    let _ = child.kill();
    let status = child
        .wait()
        .map_err(|e| format!("waiting for the child: {e}"))?;
    let stdout = stdout.join().expect("the stdout reader");
    let stderr = String::from_utf8_lossy(&stderr.join().expect("the stderr reader")).into_owned();
    stats.kill_points += 1;

    // The child's report first: an error it printed explains an early exit.
    let transcript = read_transcript(&stdout, state, stats).map_err(|e| {
        format!(
            "{e}\nchild's exit: {status}; child's stderr:\n{}",
            tail(&stderr)
        )
    })?;
    if status.signal() != Some(SIGKILL) {
        return Err(format!(
            "the child ended by itself ({status}) instead of being killed; its stderr:\n{}",
            tail(&stderr)
        ));
    }
    if !transcript.opened {
        stats.killed_before_open += 1;
    }
    let segments_after = segments(db_dir);
    stats.segments_created += segments_after
        .iter()
        .filter(|s| !segments_before.contains(s))
        .count() as u64;
    if segments_before.iter().any(|s| !segments_after.contains(s)) {
        stats.kills_after_segment_removal += 1;
    }
    stats.segments_max = stats.segments_max.max(segments_after.len());

    let db = Db::open(db_dir, options())
        .map_err(|e| format!("reopening the database after the kill failed: {e}"))?;
    verify(&db, state, &transcript.in_flight, stats)?;
    // Rotations the kill interrupted resume and finish, losing nothing.
    db.run_maintenance()
        .map_err(|e| format!("finishing interrupted rotations failed: {e}"))?;
    verify(&db, state, &vec![None; WRITERS], stats)?;
    db.close()
        .map_err(|e| format!("closing the database after checking it: {e}"))
}

fn drain(mut from: impl Read + Send + 'static) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        // A read error just ends the transcript early; what was read counts.
        let _ = from.read_to_end(&mut bytes);
        bytes
    })
}

/// The last lines of a child's stderr.
fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// File names of the log's segments.
fn segments(db_dir: &Path) -> Vec<PathBuf> {
    let wal = db_dir.join(strongroom::format::WAL_DIR);
    let Ok(entries) = std::fs::read_dir(&wal) else {
        return Vec::new();
    };
    entries
        .flatten()
        .map(|e| PathBuf::from(e.file_name()))
        .filter(|name| {
            name.to_str()
                .is_some_and(|n| n.ends_with(strongroom::format::SEGMENT_SUFFIX))
        })
        .collect()
}

/// Reads the child's report, applying every acknowledged op to `state` in
/// order, and returns what was in flight at the kill.
fn read_transcript(
    stdout: &[u8],
    state: &mut State,
    stats: &mut Stats,
) -> Result<Transcript, String> {
    let text = String::from_utf8_lossy(stdout);
    // The kill may cut the last line short: only whole lines count.
    let whole = text.rfind('\n').map_or("", |end| &text[..end]);
    let mut transcript = Transcript {
        opened: false,
        in_flight: vec![None; WRITERS],
    };
    for line in whole.lines() {
        let Some(at) = line.find(MARK) else {
            continue; // libtest's own output
        };
        let event = &line[at + MARK.len()..];
        let (word, rest) = event.split_once(' ').unwrap_or((event, ""));
        match word {
            "opened" => transcript.opened = true,
            "rotated" => stats.rotations += 1,
            "issue" => {
                let op = Op::decode(rest)?;
                stats.issued += 1;
                let slot = &mut transcript.in_flight[op.thread];
                if let Some(previous) = slot {
                    return Err(format!(
                        "protocol: thread {} issued op {} while op {} was not acknowledged",
                        op.thread, op.id, previous.id
                    ));
                }
                *slot = Some(op);
            }
            "ack" => {
                let bad = || format!("malformed ack line {event:?}");
                let (thread, id) = rest.split_once(' ').ok_or_else(bad)?;
                let thread: usize = thread.parse().map_err(|_| bad())?;
                let slot = transcript.in_flight.get_mut(thread).ok_or_else(bad)?;
                match slot.take() {
                    Some(op) if op.id == id => {
                        op.apply_to(state);
                        stats.acked += 1;
                    }
                    other => {
                        return Err(format!(
                            "protocol: thread {thread} acknowledged op {id} but had issued {:?}",
                            other.map(|op| op.id)
                        ));
                    }
                }
            }
            "err" => return Err(format!("the child's write failed: {event}")),
            _ => return Err(format!("unknown line from the child: {line:?}")),
        }
    }
    Ok(transcript)
}

fn read_scope(db: &Db, target: Target, key: &str) -> strongroom::Result<Option<Vec<u8>>> {
    let tenant = db.tenant(TenantId(target.tenant));
    match target.subject {
        None => tenant.get(key.as_bytes()),
        Some(s) => tenant.subject(SubjectId(s)).get(key.as_bytes()),
    }
}

fn scan_scope(db: &Db, target: Target) -> strongroom::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let tenant = db.tenant(TenantId(target.tenant));
    match target.subject {
        None => tenant.scan()?.collect(),
        Some(s) => tenant.subject(SubjectId(s)).scan()?.collect(),
    }
}

/// Reads the whole key space and checks it, thread by thread, against
/// `state` (acknowledged ops applied) and `state` plus the thread's op in
/// flight; then makes `state` what was found.
fn verify(
    db: &Db,
    state: &mut State,
    in_flight: &[Option<Op>],
    stats: &mut Stats,
) -> Result<(), String> {
    let mut found = State::new();
    for target in all_targets() {
        for thread in 0..WRITERS {
            for n in 0..KEYS_PER_WRITER {
                let key = key_name(thread, n);
                let value = read_scope(db, target, &key)
                    .map_err(|e| format!("get of {target} key {key} failed: {e}"))?;
                if let Some(value) = value {
                    found.insert((target, key), value);
                }
            }
        }
        // A scan must show exactly what the gets showed: no record that
        // was never written, none twice, none missing.
        let scanned =
            scan_scope(db, target).map_err(|e| format!("scan of {target} failed: {e}"))?;
        let mut seen = BTreeMap::new();
        for (key, value) in scanned {
            let name = String::from_utf8_lossy(&key).into_owned();
            if owner_of(&name).is_none() {
                return Err(format!(
                    "scan of {target} found key {name:?} ({}), which no writer ever wrote",
                    describe(Some(&value))
                ));
            }
            let expected = found.get(&(target, name.clone()));
            if expected != Some(&value) {
                return Err(format!(
                    "scan of {target} found key {name} = {}, but get returned {}",
                    describe(Some(&value)),
                    describe(expected)
                ));
            }
            if seen.insert(name.clone(), ()).is_some() {
                return Err(format!("scan of {target} returned key {name} twice"));
            }
        }
        for ((t, key), value) in found.range((target, String::new())..) {
            if *t != target {
                break;
            }
            if !seen.contains_key(key) {
                return Err(format!(
                    "scan of {target} missed key {key} = {}, which get returns",
                    describe(Some(value))
                ));
            }
        }
    }

    for (thread, op) in in_flight.iter().enumerate() {
        let places: Vec<(Target, String)> = all_targets()
            .into_iter()
            .flat_map(|t| (0..KEYS_PER_WRITER).map(move |n| (t, key_name(thread, n))))
            .collect();
        let mut after = state.clone();
        if let Some(op) = op {
            op.apply_to(&mut after);
        }
        let differences = |expected: &State| -> Vec<String> {
            places
                .iter()
                .filter(|place| expected.get(*place) != found.get(*place))
                .map(|place| {
                    format!(
                        "  {} key {}: expected {}, found {}",
                        place.0,
                        place.1,
                        describe(expected.get(place)),
                        describe(found.get(place))
                    )
                })
                .collect()
        };
        let (without, with) = (differences(state), differences(&after));
        match op {
            None if without.is_empty() => {}
            None => {
                return Err(format!(
                    "thread {thread} had no write in flight, but its records differ from its \
                     acknowledged writes:\n{}",
                    without.join("\n")
                ));
            }
            Some(op) => match (without.is_empty(), with.is_empty()) {
                (true, true) => stats.in_flight_invisible += 1,
                (true, false) => stats.in_flight_not_applied += 1,
                (false, true) => stats.in_flight_applied += 1,
                (false, false) => {
                    return Err(format!(
                        "thread {thread}: the records match neither its acknowledged writes nor \
                         those plus its write in flight ({}, op {}).\nCompared with the \
                         acknowledged writes alone:\n{}\nCompared with the write in flight \
                         applied as well:\n{}",
                        op.encode(),
                        op.id,
                        without.join("\n"),
                        with.join("\n")
                    ));
                }
            },
        }
    }
    *state = found;
    Ok(())
}
