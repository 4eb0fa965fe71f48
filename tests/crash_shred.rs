//! Crash safety of crypto-shredding: a child process writes and shreds, and
//! is killed with SIGKILL at random moments; after each kill the database is
//! reopened and every scope must be either whole or destroyed, every shred
//! acknowledged before the kill must hold, and no acknowledged write of a
//! surviving scope may be lost.
//!
//! The test binary runs itself as the child, as `crash_sigkill` does: the
//! `child_shredder` test returns at once unless
//! `STRONGROOM_CRASH_SHRED_CHILD_DIR` is set, in which case it opens the
//! database there and runs, until it is killed, three writer threads (puts,
//! deletes and batches, in tenant and subject scopes) and one shredder thread
//! (shreds of tenants and subjects, immediate or with a grace period,
//! cancels of sealed ones, even past their deadline, and now and then a
//! tenant key rotation, whose background re-encryption then runs alongside
//! the shreds). One database folder serves every kill, so history
//! accumulates; small log segments make the log roll and the background
//! maintenance remove segments while the child runs.
//!
//! Scopes. Tenants 7 and 8 are never shredded: their records carry over from
//! kill to kill and are checked as `crash_sigkill` checks them. Kill point
//! `i` also has two fresh tenants, `256(i+1)+7` and `256(i+1)+8` (they share
//! keyring shards with tenants 7 and 8, so every shred of them rewrites the
//! shard holding a kept tenant's key), whose own scopes and subjects are the
//! shredder's targets; no later kill point touches them, so once a kill point
//! is checked its targets are settled for good (whole and live, or shredded)
//! and are checked again, with everything else, at the end. Subjects are 1, 2,
//! 1025 and 2050 (1 and 1025 share a subject shard, as do 2 and 2050).
//!
//! Clocks. A `ManualClock` cannot cross processes, so the child runs on the
//! system clock, with grace periods of two kinds: short ones (30 to 250 ms),
//! which often end while the child runs, so that its background maintenance
//! (every 200 ms) destroys and reclaims the scope and kills land in that
//! work; and long ones (30 s), which never end in the child. The parent
//! reopens with a `ManualClock` that starts at the system's time: `Db::open`
//! completes every seal whose deadline has passed, and a long seal is still
//! sealed. The parent then cancels about half of the sealed scopes, moves its
//! clock past every deadline and runs maintenance, so every target ends live
//! (and must be whole) or shredded.
//!
//! Kill moments. Two kill points in five come at a random time after the
//! spawn (a few during start-up and recovery, most within 650 ms). Two in
//! five come just after the child reports the n-th call of its shredder: the
//! parent reads the child's stdout as it comes and kills at once or within
//! 3 ms, so many land inside a shred (between the durable seal and the
//! destruction of the keys, or in the shard rewrite) or a cancel. One in
//! five comes up to 250 ms after the deadline of the child's first short
//! seal, when its maintenance destroys the keys and reclaims the space.
//!
//! The child reports on stdout, one line per event, flushed at once (libtest
//! may put its own text before a line, hence the marker). Writers:
//!
//! ```text
//! @shred opened
//! @shred issue <thread> <opid> <how> <item>;<item>...   (before the call)
//! @shred ack <thread> <opid>                            (after it returned Ok)
//! @shred refused <thread> <opid> <sealed|shredded> <scope>
//!                         (it failed with Error::Sealed/Shredded; not applied)
//! @shred err <thread|shredder> <opid> <error>           (then the child exits)
//! ```
//!
//! and the shredder (one thread, so one action at a time; times are the
//! system clock's, in µs since the epoch):
//!
//! ```text
//! @shred shred-issue <sid> <scope> <grace ms> <time>  (before the call)
//! @shred shred-ack <sid> <live|shredded|sealed:<deadline>>
//! @shred shred-refused <sid> <time>                   (Error::Shredded)
//! @shred cancel-issue <sid> <scope> <time>
//! @shred cancel-ack <sid> <true|false> <time>         (time: after the return)
//! @shred cancel-refused <sid> <time>                  (Error::Shredded)
//! @shred rotate-issue <sid> <tenant>
//! @shred rotate-ack <sid> <version>
//! @shred rotate-refused <sid> <sealed|shredded> <time>
//! ```
//!
//! A `<scope>` is `<tenant>` or `<tenant>/<subject>`. The writers' `<how>` and
//! `<item>` are those of `crash_sigkill`.
//!
//! The parent models each target scope's own shred state as a set of
//! possibilities (live, sealed until a deadline in a range, destroyed),
//! updated by every acknowledged shred or cancel and widened by the one in
//! flight at the kill, and checks every state it reads against it; a
//! subject's state follows its tenant's as `ScopeState` says. After its own
//! maintenance and close it runs `forensic::decrypt_everything`: no record of
//! any shredded scope may decrypt, and the store's decryptable records must be
//! exactly the model's live records.
//!
//! Environment: `STRONGROOM_CRASH_SHRED_KILLS` (kill points, default 100) and
//! `STRONGROOM_CRASH_SHRED_SEED` (seed of the kill schedule, of the children's
//! workloads and of the parent's choices; thread timing still varies).

#![cfg(unix)]

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io::{BufRead, BufReader, Read, Stdout, Write};
use std::ops::RangeInclusive;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use strongroom::forensic::{Found, decrypt_everything};
use strongroom::{
    Clock, Db, Durability, Error, Lsn, ManualClock, Options, Scope, ScopeState, ShredOptions,
    SubjectId, SystemClock, TenantId, WriteBatch,
};

const CHILD_DIR_ENV: &str = "STRONGROOM_CRASH_SHRED_CHILD_DIR";
const CHILD_ITERATION_ENV: &str = "STRONGROOM_CRASH_SHRED_CHILD_ITERATION";
const CHILD_SEED_ENV: &str = "STRONGROOM_CRASH_SHRED_CHILD_SEED";
const KILLS_ENV: &str = "STRONGROOM_CRASH_SHRED_KILLS";
const SEED_ENV: &str = "STRONGROOM_CRASH_SHRED_SEED";
const DEFAULT_KILLS: u64 = 100;

/// Marks the child's protocol lines.
const MARK: &str = "@shred ";
const MASTER_KEY: [u8; 32] = *b"strongroom crash shred test key!";
/// Small segments, so that the log rolls often and the background
/// maintenance finds sealed segments to remove.
const SEGMENT_BYTES_MAX: u64 = 16 << 10;
const WRITERS: usize = 3;
const KEYS_PER_WRITER: usize = 12;
/// Tenants never shredded.
const KEPT_TENANTS: [u64; 2] = [7, 8];
/// Subjects of every tenant; 1 and 1025 share a subject shard, as do 2 and
/// 2050.
const SUBJECTS: [u64; 4] = [1, 2, 1025, 2050];
/// Values carry 0..=PAD_MAX padding bytes, so frames vary in size and some
/// records cross the 512-byte compression threshold.
const PAD_MAX: usize = 1200;
/// Short grace periods, in ms: many end while the child runs.
const SHORT_GRACE_MS: RangeInclusive<u64> = 30..=250;
/// Long grace periods end only when the parent moves its clock.
const LONG_GRACE: Duration = Duration::from_secs(30);
/// How far the parent moves its clock to pass every deadline.
const PAST_EVERY_DEADLINE: Duration = Duration::from_secs(120);
/// Pause of the shredder between two actions, in ms.
const SHREDDER_PAUSE_MS: RangeInclusive<u64> = 0..=12;
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

fn now_us() -> u64 {
    SystemClock.now_us()
}

// ---------------------------------------------------------------------------
// Scopes
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

impl Target {
    fn own(tenant: u64) -> Target {
        Target {
            tenant,
            subject: None,
        }
    }

    fn tenant_scope(self) -> Target {
        Target::own(self.tenant)
    }

    fn scope(self) -> Scope {
        match self.subject {
            None => Scope::tenant(TenantId(self.tenant)),
            Some(s) => Scope::subject(TenantId(self.tenant), SubjectId(s)),
        }
    }

    fn of_scope(scope: Scope) -> Target {
        Target {
            tenant: scope.tenant.0,
            subject: scope.subject.map(|s| s.0),
        }
    }

    fn encode(self) -> String {
        match self.subject {
            None => self.tenant.to_string(),
            Some(s) => format!("{}/{s}", self.tenant),
        }
    }

    fn decode(text: &str) -> Option<Target> {
        Some(match text.split_once('/') {
            None => Target::own(text.parse().ok()?),
            Some((t, s)) => Target {
                tenant: t.parse().ok()?,
                subject: Some(s.parse().ok()?),
            },
        })
    }
}

/// A tenant's own scope and its subjects', the tenant's first.
fn scopes_of(tenants: &[u64]) -> Vec<Target> {
    let mut targets = Vec::new();
    for &tenant in tenants {
        targets.push(Target::own(tenant));
        for subject in SUBJECTS {
            targets.push(Target {
                tenant,
                subject: Some(subject),
            });
        }
    }
    targets
}

/// The tenants that kill point `iteration` shreds: fresh ones, in the same
/// keyring shards as the kept tenants.
fn target_tenants(iteration: u64) -> [u64; 2] {
    let base = 256 * (iteration + 1);
    [base + KEPT_TENANTS[0], base + KEPT_TENANTS[1]]
}

fn is_kept(tenant: u64) -> bool {
    KEPT_TENANTS.contains(&tenant)
}

// ---------------------------------------------------------------------------
// The writers' workload (as in crash_sigkill)
// ---------------------------------------------------------------------------

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

/// An op of writer `thread`: on a kept tenant half the time, else on one of
/// this kill point's target tenants.
fn random_op(rng: &mut StdRng, thread: usize, id: String, targets: &[u64]) -> Op {
    let tenant = if rng.random_bool(0.5) {
        KEPT_TENANTS[rng.random_range(0..KEPT_TENANTS.len())]
    } else {
        targets[rng.random_range(0..targets.len())]
    };
    let own = Target::own(tenant);
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
    } else if roll < 72 {
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
// Shredding, as the child does it and the parent checks it
// ---------------------------------------------------------------------------

fn shred(db: &Db, target: Target, options: ShredOptions) -> strongroom::Result<ScopeState> {
    match target.subject {
        None => db.shred_tenant(TenantId(target.tenant), options),
        Some(s) => db
            .tenant(TenantId(target.tenant))
            .shred_subject(SubjectId(s), options),
    }
}

fn cancel(db: &Db, target: Target) -> strongroom::Result<bool> {
    match target.subject {
        None => db.cancel_shred_tenant(TenantId(target.tenant)),
        Some(s) => db
            .tenant(TenantId(target.tenant))
            .cancel_shred_subject(SubjectId(s)),
    }
}

fn scope_state(db: &Db, target: Target) -> strongroom::Result<ScopeState> {
    let tenant = db.tenant(TenantId(target.tenant));
    match target.subject {
        None => tenant.state(),
        Some(s) => tenant.subject(SubjectId(s)).state(),
    }
}

fn encode_state(state: ScopeState) -> String {
    match state {
        ScopeState::Live => "live".into(),
        ScopeState::Shredded => "shredded".into(),
        ScopeState::Sealed { deadline_us } => format!("sealed:{deadline_us}"),
    }
}

fn decode_state(text: &str) -> Option<ScopeState> {
    match text {
        "live" => Some(ScopeState::Live),
        "shredded" => Some(ScopeState::Shredded),
        other => Some(ScopeState::Sealed {
            deadline_us: other.strip_prefix("sealed:")?.parse().ok()?,
        }),
    }
}

// ---------------------------------------------------------------------------
// The child
// ---------------------------------------------------------------------------

/// The child's body: does nothing unless the parent test started this binary
/// with `STRONGROOM_CRASH_SHRED_CHILD_DIR` set; then writes and shreds until
/// killed.
#[test]
fn child_shredder() {
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
    // The system clock: deadlines of short grace periods pass while the
    // child runs, and its background maintenance completes them.
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
        s.spawn(|| shred_forever(&db, &out, iteration, seed));
    });
    unreachable!("the threads stop only when the process is killed")
}

fn write_forever(db: &Db, out: &Mutex<Stdout>, iteration: u64, thread: usize, seed: u64) {
    let mut rng =
        StdRng::seed_from_u64(seed ^ (thread as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let targets = target_tenants(iteration);
    for seq in 0u64.. {
        let op = random_op(
            &mut rng,
            thread,
            format!("{iteration}-{thread}-{seq}"),
            &targets,
        );
        emit(out, &op.encode());
        match execute(db, &op) {
            Ok(_) => emit(out, &format!("ack {thread} {}", op.id)),
            Err(Error::Sealed { scope, .. }) => emit(
                out,
                &format!(
                    "refused {thread} {} sealed {}",
                    op.id,
                    Target::of_scope(scope).encode()
                ),
            ),
            Err(Error::Shredded { scope }) => emit(
                out,
                &format!(
                    "refused {thread} {} shredded {}",
                    op.id,
                    Target::of_scope(scope).encode()
                ),
            ),
            Err(e) => {
                emit(out, &format!("err {thread} {} {e}", op.id));
                std::process::exit(1);
            }
        }
    }
}

/// Shreds and cancels, at random, in this kill point's target tenants.
fn shred_forever(db: &Db, out: &Mutex<Stdout>, iteration: u64, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5368_7265_6464_6572);
    let scopes = scopes_of(&target_tenants(iteration));
    let pick = |rng: &mut StdRng| {
        // Mostly subjects: a tenant's shred ends the game for its subjects.
        let tenants: Vec<Target> = scopes
            .iter()
            .filter(|t| t.subject.is_none())
            .copied()
            .collect();
        if rng.random_bool(0.15) {
            tenants[rng.random_range(0..tenants.len())]
        } else {
            let subjects: Vec<Target> = scopes
                .iter()
                .filter(|t| t.subject.is_some())
                .copied()
                .collect();
            subjects[rng.random_range(0..subjects.len())]
        }
    };
    // The seals this thread has made and not cancelled: scope -> deadline.
    let mut sealed: BTreeMap<Target, u64> = BTreeMap::new();
    for seq in 0u64.. {
        std::thread::sleep(Duration::from_millis(rng.random_range(SHREDDER_PAUSE_MS)));
        let id = format!("{iteration}-s{seq}");
        let now = now_us();
        // Seals past their deadline too: their cancel races the maintenance
        // pass that destroys them, and must either win (Ok(true), and the
        // scope stays live) or find the scope shredded.
        let cancellable: Vec<Target> = sealed.keys().copied().collect();
        let roll = rng.random_range(0..100);
        if roll < 10 {
            // A key rotation: of a kept tenant, or of a target, which may be
            // sealed or shredded already; its background pass re-seals the
            // tenant's records while shreds go on.
            let mut tenants = KEPT_TENANTS.to_vec();
            tenants.extend(target_tenants(iteration));
            let tenant = tenants[rng.random_range(0..tenants.len())];
            emit(out, &format!("rotate-issue {id} {tenant}"));
            let result = db.tenant(TenantId(tenant)).rotate_key();
            let end = now_us();
            match result {
                Ok(version) => emit(out, &format!("rotate-ack {id} {version}")),
                Err(Error::Sealed { .. }) => {
                    emit(out, &format!("rotate-refused {id} sealed {end}"))
                }
                Err(Error::Shredded { .. }) => {
                    emit(out, &format!("rotate-refused {id} shredded {end}"))
                }
                Err(e) => {
                    emit(out, &format!("err shredder {id} {e}"));
                    std::process::exit(1);
                }
            }
        } else if (roll < 28 && !cancellable.is_empty()) || roll < 13 {
            // A cancel: of a seal, or now and then of any scope (nothing to
            // cancel, or shredded).
            let target = if cancellable.is_empty() {
                pick(&mut rng)
            } else {
                cancellable[rng.random_range(0..cancellable.len())]
            };
            emit(out, &format!("cancel-issue {id} {} {now}", target.encode()));
            let result = cancel(db, target);
            let end = now_us();
            sealed.remove(&target);
            match result {
                Ok(was_sealed) => emit(out, &format!("cancel-ack {id} {was_sealed} {end}")),
                Err(Error::Shredded { .. }) => emit(out, &format!("cancel-refused {id} {end}")),
                Err(e) => {
                    emit(out, &format!("err shredder {id} {e}"));
                    std::process::exit(1);
                }
            }
        } else {
            let target = pick(&mut rng);
            let grace = match rng.random_range(0..100) {
                0..35 => Duration::ZERO,
                35..75 => Duration::from_millis(rng.random_range(SHORT_GRACE_MS)),
                _ => LONG_GRACE,
            };
            emit(
                out,
                &format!(
                    "shred-issue {id} {} {} {now}",
                    target.encode(),
                    grace.as_millis()
                ),
            );
            let options = if grace.is_zero() {
                ShredOptions::immediate()
            } else {
                ShredOptions::with_grace(grace)
            };
            match shred(db, target, options) {
                Ok(state) => {
                    match state {
                        ScopeState::Sealed { deadline_us } => sealed.insert(target, deadline_us),
                        _ => sealed.remove(&target),
                    };
                    emit(out, &format!("shred-ack {id} {}", encode_state(state)));
                }
                Err(Error::Shredded { .. }) => {
                    sealed.remove(&target);
                    emit(out, &format!("shred-refused {id} {}", now_us()));
                }
                Err(e) => {
                    emit(out, &format!("err shredder {id} {e}"));
                    std::process::exit(1);
                }
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
// The parent's model of shreds
// ---------------------------------------------------------------------------

/// A possible state of a scope's own shred (its tenant's is another scope's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Own {
    Live,
    /// Sealed until a deadline in `lo..=hi` (µs; exact once acknowledged).
    Sealed {
        lo: u64,
        hi: u64,
    },
    Destroyed,
}

/// A possible `ScopeState`: a scope's own state combined with its tenant's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Eff {
    Live,
    Sealed { lo: u64, hi: u64 },
    Shredded,
}

/// What `ScopeState` says of a scope whose tenant's own state is `tenant`
/// and whose own state (for a subject) is `subject`.
fn effective(tenant: Own, subject: Option<Own>) -> Eff {
    match (tenant, subject) {
        (Own::Destroyed, _) | (_, Some(Own::Destroyed)) => Eff::Shredded,
        (_, Some(Own::Sealed { lo, hi })) | (Own::Sealed { lo, hi }, _) => Eff::Sealed { lo, hi },
        (Own::Live, _) => Eff::Live,
    }
}

fn matches(found: ScopeState, eff: Eff) -> bool {
    match (found, eff) {
        (ScopeState::Live, Eff::Live) | (ScopeState::Shredded, Eff::Shredded) => true,
        (ScopeState::Sealed { deadline_us }, Eff::Sealed { lo, hi }) => {
            (lo..=hi).contains(&deadline_us)
        }
        _ => false,
    }
}

fn push_new<T: PartialEq>(set: &mut Vec<T>, item: T) {
    if !set.contains(&item) {
        set.push(item);
    }
}

/// Per target scope, the set of its possible own states.
#[derive(Debug)]
struct Model {
    own: BTreeMap<Target, Vec<Own>>,
}

impl Model {
    fn new(scopes: &[Target]) -> Model {
        Model {
            own: scopes.iter().map(|&t| (t, vec![Own::Live])).collect(),
        }
    }

    fn owns(&self, target: Target) -> Result<&Vec<Own>, String> {
        self.own
            .get(&target)
            .ok_or_else(|| format!("{target} is not a target of this kill point"))
    }

    /// The possible `ScopeState`s of `target`.
    fn effs(&self, target: Target) -> Vec<Eff> {
        let mut effs = Vec::new();
        for &tenant in &self.own[&target.tenant_scope()] {
            match target.subject {
                None => push_new(&mut effs, effective(tenant, None)),
                Some(_) => {
                    for &subject in &self.own[&target] {
                        push_new(&mut effs, effective(tenant, Some(subject)));
                    }
                }
            }
        }
        effs
    }

    fn certainly_shredded(&self, target: Target) -> bool {
        self.effs(target).iter().all(|e| *e == Eff::Shredded)
    }

    /// Whether `target` may have been shredded at time `at` (a seal whose
    /// deadline had passed may have been completed by then).
    fn may_be_shredded_at(&self, target: Target, at: u64) -> bool {
        let could = |o: &Own| match o {
            Own::Destroyed => true,
            Own::Sealed { lo, .. } => *lo <= at,
            Own::Live => false,
        };
        self.own[&target.tenant_scope()].iter().any(could)
            || (target.subject.is_some() && self.own[&target].iter().any(could))
    }

    /// Maintenance at time `now` has run: every seal due by then is
    /// destroyed.
    fn complete_due(&mut self, now: u64) {
        for owns in self.own.values_mut() {
            let mut next = Vec::new();
            for &own in owns.iter() {
                match own {
                    Own::Sealed { hi, .. } if hi <= now => push_new(&mut next, Own::Destroyed),
                    Own::Sealed { lo, hi } if lo <= now => {
                        push_new(&mut next, Own::Destroyed);
                        push_new(&mut next, Own::Sealed { lo: now + 1, hi });
                    }
                    other => push_new(&mut next, other),
                }
            }
            *owns = next;
        }
    }

    /// Keeps the possibilities that agree with `found`, the state read of
    /// `target` (a subject's after its tenant's).
    fn narrow(&mut self, target: Target, found: ScopeState) -> Result<(), String> {
        let before = self.effs(target);
        let tenants = self.own[&target.tenant_scope()].clone();
        let owns = self.own.get_mut(&target).expect("a target");
        owns.retain(|&own| match target.subject {
            None => matches(found, effective(own, None)),
            Some(_) => tenants
                .iter()
                .any(|&tenant| matches(found, effective(tenant, Some(own)))),
        });
        if owns.is_empty() {
            return Err(format!(
                "{target} is {found:?}, but its shreds allow only {before:?}"
            ));
        }
        Ok(())
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
    refused_sealed: u64,
    refused_shredded: u64,
    in_flight_applied: u64,
    in_flight_not_applied: u64,
    in_flight_invisible: u64,
    immediate_acked: u64,
    grace_acked: u64,
    shreds_refused: u64,
    cancels_acked: u64,
    cancels_refused: u64,
    rotations_acked: u64,
    rotations_refused: u64,
    rotations_in_flight: u64,
    /// Acknowledged cancels that ended after their seal's deadline.
    cancels_past_deadline: u64,
    /// Acknowledged seals whose deadline passed before the kill.
    deadlines_passed_in_child: u64,
    /// Per kind of shredder action in flight at the kill: how many, and how
    /// many were found to have taken effect.
    immediate_in_flight: (u64, u64),
    grace_in_flight: (u64, u64),
    cancel_in_flight: (u64, u64),
    sealed_at_reopen: u64,
    cancelled_by_parent: u64,
    expired_by_parent: u64,
    targets_whole: u64,
    targets_shredded: u64,
    records_checked: u64,
    decrypted_from_log: u64,
    decrypted_from_store: u64,
    segments_max: usize,
    kills_timed: u64,
    kills_in_shredder_calls: u64,
    kills_past_deadline: u64,
    kills_given_up: u64,
}

#[derive(Debug, Clone)]
enum ShredAction {
    Shred {
        id: String,
        target: Target,
        grace: Duration,
        at_us: u64,
    },
    Cancel {
        id: String,
        target: Target,
        at_us: u64,
    },
    /// A rotation of a tenant's key (a kept tenant's or a target's).
    Rotate { id: String, tenant: u64 },
}

impl ShredAction {
    fn id(&self) -> &str {
        match self {
            ShredAction::Shred { id, .. }
            | ShredAction::Cancel { id, .. }
            | ShredAction::Rotate { id, .. } => id,
        }
    }

    /// The scope it acts on.
    fn target(&self) -> Target {
        match self {
            ShredAction::Shred { target, .. } | ShredAction::Cancel { target, .. } => *target,
            ShredAction::Rotate { tenant, .. } => Target::own(*tenant),
        }
    }
}

/// The shredder's finished actions, in order.
#[derive(Debug, Clone)]
enum ShredEvent {
    Shredded {
        action: ShredAction,
        state: ScopeState,
    },
    Cancelled {
        action: ShredAction,
        was_sealed: bool,
        end_us: u64,
    },
    Rotated {
        action: ShredAction,
        version: u32,
    },
    /// Refused with `Error::Sealed` (`sealed`) or `Error::Shredded`
    /// (`end_us`: just after the call).
    Refused {
        action: ShredAction,
        sealed: bool,
        end_us: u64,
    },
}

/// What the child reported before it was killed.
struct Transcript {
    opened: bool,
    /// Per writer thread, the op issued and not answered, if any.
    in_flight: Vec<Option<Op>>,
    shreds: Vec<ShredEvent>,
    shred_in_flight: Option<ShredAction>,
}

/// What the parent knows between kill points.
#[derive(Default)]
struct World {
    /// Every record of every live scope.
    state: State,
    /// Target scopes of earlier kill points that ended live.
    live_targets: BTreeSet<Target>,
    /// Scopes found shredded (a shredded tenant's subjects among them).
    shredded: BTreeSet<Target>,
}

impl World {
    fn is_shredded(&self, target: Target) -> bool {
        self.shredded.contains(&target) || self.shredded.contains(&target.tenant_scope())
    }
}

#[test]
fn every_scope_is_whole_or_destroyed_after_sigkill_during_shreds() {
    let kills = env_u64(KILLS_ENV).unwrap_or(DEFAULT_KILLS);
    let seed = env_u64(SEED_ENV).unwrap_or_else(|| rand::rng().random());
    println!("crash_shred: seed {seed} (set {SEED_ENV}={seed} to repeat), {kills} kill points");
    let mut rng = StdRng::seed_from_u64(seed);
    let tmp = tempfile::tempdir().expect("a temporary folder");
    let db_dir = tmp.path().join("db");
    let exe = std::env::current_exe().expect("the test binary's path");
    let started = Instant::now();
    let mut world = World::default();
    let mut stats = Stats::default();
    for iteration in 0..kills {
        let plan = KillPlan::random(&mut rng);
        let child_seed: u64 = rng.random();
        let run = kill_point(
            &exe, &db_dir, iteration, plan, child_seed, &mut world, &mut stats,
        );
        if let Err(message) = run {
            let kept = tmp.keep();
            panic!(
                "kill point {iteration} (child killed {plan:?}; seed {seed}, child seed \
                 {child_seed}): {message}\n(database kept at {})",
                kept.join("db").display()
            );
        }
    }
    if let Err(message) = final_check(&db_dir, &mut world, &mut stats) {
        let kept = tmp.keep();
        panic!(
            "final check after {kills} kill points (seed {seed}): {message}\n(database kept at {})",
            kept.join("db").display()
        );
    }
    let s = &stats;
    println!(
        "crash_shred summary: {} kill points in {:.1} s ({} at random times, {} in a shredder \
         call, {} past a seal's deadline, {} after waiting in vain; {} before the child had \
         opened the database); writes issued {}, acked {}, refused {} sealed + {} shredded; in-flight \
         writes: {} found applied, {} not applied, {} without visible effect; shreds acked {} \
         immediate + {} with grace ({} seals due before the kill), {} refused; cancels \
         acked {} ({} after the deadline, winning over the destruction), refused {}; key rotations acked {}, refused {}, in \
         flight at the kill {}; in flight at the kill (found done/all): immediate shreds {}/{}, \
         grace shreds {}/{}, cancels {}/{}; sealed at reopen {} (parent cancelled {}, let \
         expire {}); target scopes ended whole {}, shredded {}; {} records checked; \
         decrypted from the log {}, from the store {}; up to {} log segments; seed {seed}",
        s.kill_points,
        started.elapsed().as_secs_f64(),
        s.kills_timed,
        s.kills_in_shredder_calls,
        s.kills_past_deadline,
        s.kills_given_up,
        s.killed_before_open,
        s.issued,
        s.acked,
        s.refused_sealed,
        s.refused_shredded,
        s.in_flight_applied,
        s.in_flight_not_applied,
        s.in_flight_invisible,
        s.immediate_acked,
        s.grace_acked,
        s.deadlines_passed_in_child,
        s.shreds_refused,
        s.cancels_acked,
        s.cancels_past_deadline,
        s.cancels_refused,
        s.rotations_acked,
        s.rotations_refused,
        s.rotations_in_flight,
        s.immediate_in_flight.1,
        s.immediate_in_flight.0,
        s.grace_in_flight.1,
        s.grace_in_flight.0,
        s.cancel_in_flight.1,
        s.cancel_in_flight.0,
        s.sealed_at_reopen,
        s.cancelled_by_parent,
        s.expired_by_parent,
        s.targets_whole,
        s.targets_shredded,
        s.records_checked,
        s.decrypted_from_log,
        s.decrypted_from_store,
        s.segments_max,
    );
}

/// Runs one child, kills it after `delay`, reopens the database and checks
/// it against `world` (which it then brings up to date).
fn kill_point(
    exe: &Path,
    db_dir: &Path,
    iteration: u64,
    plan: KillPlan,
    child_seed: u64,
    world: &mut World,
    stats: &mut Stats,
) -> Result<(), String> {
    let mut child = Command::new(exe)
        .args([
            "child_shredder",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_DIR_ENV, db_dir)
        .env(CHILD_ITERATION_ENV, iteration.to_string())
        .env(CHILD_SEED_ENV, child_seed.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("spawning the child {}: {e}", exe.display()))?;
    let (signals, heard) = mpsc::channel();
    let stdout = watch(child.stdout.take().expect("piped stdout"), signals);
    let stderr = drain(child.stderr.take().expect("piped stderr"));
    plan.wait(&heard, stats);
    // SIGKILL on Unix. A child that has already exited is reported below.
    let _ = child.kill();
    let status = child
        .wait()
        .map_err(|e| format!("waiting for the child: {e}"))?;
    // No call of the child's started after this.
    let killed_us = now_us();
    let stdout = stdout.join().expect("the stdout reader");
    let stderr = String::from_utf8_lossy(&stderr.join().expect("the stderr reader")).into_owned();
    stats.kill_points += 1;

    // The child's report first: an error it printed explains an early exit.
    let transcript = read_transcript(&stdout, iteration, &mut world.state, stats).map_err(|e| {
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
    stats.segments_max = stats.segments_max.max(segments(db_dir));

    let targets = scopes_of(&target_tenants(iteration));
    let mut model = build_model(&targets, &transcript, killed_us, stats)?;

    // The parent's own clock starts at the system's time, after the kill:
    // opening completes every seal due by then, and no other.
    let clock = Arc::new(ManualClock::starting_now());
    let db = Db::open(db_dir, options().clock(clock.clone()))
        .map_err(|e| format!("reopening the database after the kill failed: {e}"))?;
    let opened_at = clock.now_us();
    model.complete_due(opened_at);

    // Every target's state must be one its shreds allow; a sealed or
    // shredded scope refuses reads and writes.
    let mut found_at_reopen = BTreeMap::new();
    for &target in &targets {
        let found = scope_state(&db, target)
            .map_err(|e| format!("state() of {target} after reopening failed: {e}"))?;
        model
            .narrow(target, found)
            .map_err(|e| format!("after reopening: {e}\n{}", history(&transcript, target)))?;
        check_refusal(&db, target, found)?;
        if matches!(found, ScopeState::Sealed { .. }) {
            stats.sealed_at_reopen += 1;
        }
        found_at_reopen.insert(target, found);
    }
    note_in_flight_shred(&transcript, &found_at_reopen, stats);

    // Settle every seal: cancel about half of the sealed scopes, then pass
    // every deadline and run maintenance, which must destroy the others.
    let mut choices = StdRng::seed_from_u64(child_seed ^ 0x7061_7265_6e74);
    for (&target, &found) in &found_at_reopen {
        if !matches!(found, ScopeState::Sealed { .. }) || !choices.random_bool(0.5) {
            continue;
        }
        let owns = model.own.get_mut(&target).expect("a target");
        match cancel(&db, target) {
            Ok(true) if owns.iter().any(|o| matches!(o, Own::Sealed { .. })) => {
                stats.cancelled_by_parent += 1;
            }
            Ok(false) if target.subject.is_some() && owns.contains(&Own::Live) => {}
            other => {
                return Err(format!(
                    "the parent's cancel of sealed {target} returned {other:?}, but its own \
                     state can be only {owns:?}\n{}",
                    history(&transcript, target)
                ));
            }
        }
        *owns = vec![Own::Live];
    }
    clock.advance(PAST_EVERY_DEADLINE);
    db.run_maintenance()
        .map_err(|e| format!("maintenance past every deadline failed: {e}"))?;
    model.complete_due(clock.now_us());

    let mut checked: Vec<Target> = scopes_of(&KEPT_TENANTS);
    for &target in &checked {
        let found = scope_state(&db, target)
            .map_err(|e| format!("state() of kept {target} failed: {e}"))?;
        if found != ScopeState::Live {
            return Err(format!("{target}, never shredded, is {found:?}"));
        }
    }
    let mut shredded_now = Vec::new();
    for &target in &targets {
        let found = scope_state(&db, target)
            .map_err(|e| format!("state() of {target} after the deadlines failed: {e}"))?;
        model.narrow(target, found).map_err(|e| {
            format!(
                "after passing every deadline: {e} (at reopen it was {:?})\n{}",
                found_at_reopen[&target],
                history(&transcript, target)
            )
        })?;
        match found {
            ScopeState::Live => {
                checked.push(target);
                stats.targets_whole += 1;
            }
            ScopeState::Shredded => {
                if matches!(found_at_reopen[&target], ScopeState::Sealed { .. }) {
                    stats.expired_by_parent += 1;
                }
                check_refusal(&db, target, found)?;
                shredded_now.push(target);
                stats.targets_shredded += 1;
            }
            ScopeState::Sealed { .. } => {
                return Err(format!(
                    "{target} is still {found:?} after every deadline passed and maintenance \
                     ran\n{}",
                    history(&transcript, target)
                ));
            }
        }
    }

    // Every live scope: acknowledged writes, plus each thread's write in
    // flight whole or not at all; nothing else.
    let found = verify_records(&db, &world.state, &transcript.in_flight, &checked, stats)?;
    world
        .state
        .retain(|(t, _), _| !targets.contains(t) && !checked.contains(t));
    world.state.extend(found);
    let live_targets = checked.iter().filter(|t| !is_kept(t.tenant));
    world.live_targets.extend(live_targets);
    world.shredded.extend(shredded_now);
    db.close()
        .map_err(|e| format!("closing the database after checking it: {e}"))?;
    forensic_check(db_dir, world, stats)
}

/// Replays the shredder's report into a model of the targets' own states.
fn build_model(
    targets: &[Target],
    transcript: &Transcript,
    killed_us: u64,
    stats: &mut Stats,
) -> Result<Model, String> {
    let mut model = Model::new(targets);
    for event in &transcript.shreds {
        match event {
            ShredEvent::Shredded {
                action:
                    ShredAction::Shred {
                        id,
                        target,
                        grace,
                        at_us,
                    },
                state,
            } => {
                model.owns(*target)?;
                let own = match (grace.is_zero(), *state) {
                    (true, ScopeState::Shredded) => {
                        stats.immediate_acked += 1;
                        Own::Destroyed
                    }
                    (false, ScopeState::Sealed { deadline_us })
                        if deadline_us >= at_us + grace.as_micros() as u64 =>
                    {
                        stats.grace_acked += 1;
                        Own::Sealed {
                            lo: deadline_us,
                            hi: deadline_us,
                        }
                    }
                    _ => {
                        return Err(format!(
                            "shred {id} of {target} with a grace of {grace:?}, issued at \
                             {at_us} µs, returned {state:?}"
                        ));
                    }
                };
                model.own.insert(*target, vec![own]);
            }
            ShredEvent::Cancelled {
                action: ShredAction::Cancel { id, target, at_us },
                was_sealed,
                end_us,
            } => {
                let owns = model.owns(*target)?;
                let possible = if *was_sealed {
                    owns.iter().any(|o| matches!(o, Own::Sealed { .. }))
                } else {
                    owns.contains(&Own::Live)
                };
                if !possible {
                    return Err(format!(
                        "cancel {id} of {target} (from {at_us} to {end_us} µs) returned \
                         {was_sealed}, but its own state can be only {owns:?}\n{}",
                        history(transcript, *target)
                    ));
                }
                if *was_sealed
                    && owns
                        .iter()
                        .any(|o| matches!(o, Own::Sealed { lo, .. } if lo <= end_us))
                {
                    // It raced the maintenance pass, and won.
                    stats.cancels_past_deadline += 1;
                }
                stats.cancels_acked += 1;
                model.own.insert(*target, vec![Own::Live]);
            }
            ShredEvent::Rotated {
                action: ShredAction::Rotate { id, tenant },
                version,
            } => {
                // A tenant's first key is version 1; a rotation adds one.
                if *version < 2 {
                    return Err(format!(
                        "rotation {id} of tenant {tenant} returned version {version}"
                    ));
                }
                stats.rotations_acked += 1;
            }
            ShredEvent::Refused {
                action,
                sealed,
                end_us,
            } => {
                let target = action.target();
                let owns = model.owns(target)?;
                let possible = if *sealed {
                    owns.iter().any(|o| matches!(o, Own::Sealed { .. }))
                } else {
                    model.may_be_shredded_at(target, *end_us)
                };
                if !possible {
                    return Err(format!(
                        "{} of {target} was refused as {}, but no shred of it or its tenant \
                         could have done that by then\n{}",
                        action.id(),
                        if *sealed { "sealed" } else { "shredded" },
                        history(transcript, target)
                    ));
                }
                match action {
                    ShredAction::Shred { .. } => stats.shreds_refused += 1,
                    ShredAction::Cancel { .. } => stats.cancels_refused += 1,
                    ShredAction::Rotate { .. } => stats.rotations_refused += 1,
                }
            }
            other => return Err(format!("protocol: mismatched shredder event {other:?}")),
        }
    }
    stats.deadlines_passed_in_child += model
        .own
        .values()
        .filter(|owns| matches!(owns[..], [Own::Sealed { hi, .. }] if hi < killed_us))
        .count() as u64;
    // The action in flight at the kill may or may not have taken effect.
    match &transcript.shred_in_flight {
        None => {}
        Some(ShredAction::Shred {
            target,
            grace,
            at_us,
            ..
        }) if !model.certainly_shredded(*target) => {
            let owns = model.own.get_mut(target).expect("checked when read");
            let grace_us = grace.as_micros() as u64;
            push_new(
                owns,
                if grace.is_zero() {
                    Own::Destroyed
                } else {
                    Own::Sealed {
                        lo: at_us + grace_us,
                        hi: killed_us + grace_us,
                    }
                },
            );
        }
        // Refused, surely: nothing changes.
        Some(ShredAction::Shred { .. }) => {}
        Some(ShredAction::Cancel { target, .. }) => {
            let owns = model.own.get_mut(target).expect("checked when read");
            if owns.iter().any(|o| matches!(o, Own::Sealed { .. })) {
                push_new(owns, Own::Live);
            }
        }
        // A rotation changes no scope's state.
        Some(ShredAction::Rotate { .. }) => {}
    }
    Ok(model)
}

/// Counts the shredder's action in flight at the kill, and whether the
/// reopened database shows it done.
fn note_in_flight_shred(
    transcript: &Transcript,
    found: &BTreeMap<Target, ScopeState>,
    stats: &mut Stats,
) {
    let Some(action) = &transcript.shred_in_flight else {
        return;
    };
    match action {
        ShredAction::Shred { target, grace, .. } => {
            let state = found[target];
            if grace.is_zero() {
                stats.immediate_in_flight.0 += 1;
                stats.immediate_in_flight.1 += u64::from(state == ScopeState::Shredded);
            } else {
                stats.grace_in_flight.0 += 1;
                stats.grace_in_flight.1 += u64::from(state != ScopeState::Live);
            }
        }
        ShredAction::Cancel { target, .. } => {
            stats.cancel_in_flight.0 += 1;
            stats.cancel_in_flight.1 += u64::from(found[target] == ScopeState::Live);
        }
        ShredAction::Rotate { .. } => stats.rotations_in_flight += 1,
    }
}

/// The shredder's actions on `target` and its tenant, for error messages.
fn history(transcript: &Transcript, target: Target) -> String {
    let concerns = |action: &ShredAction| {
        let t = action.target();
        t == target || t == target.tenant_scope()
    };
    let mut lines = vec![format!("shredder's actions on {target} and its tenant:")];
    for event in &transcript.shreds {
        let action = match event {
            ShredEvent::Shredded { action, .. }
            | ShredEvent::Cancelled { action, .. }
            | ShredEvent::Rotated { action, .. }
            | ShredEvent::Refused { action, .. } => action,
        };
        if concerns(action) {
            lines.push(format!("  {event:?}"));
        }
    }
    if let Some(action) = transcript.shred_in_flight.as_ref().filter(|a| concerns(a)) {
        lines.push(format!("  in flight at the kill: {action:?}"));
    }
    lines.join("\n")
}

/// A scope found sealed or shredded must refuse a get, a scan and a put
/// with that very error.
fn check_refusal(db: &Db, target: Target, found: ScopeState) -> Result<(), String> {
    let expected = |e: &Error| match (found, e) {
        (ScopeState::Shredded, Error::Shredded { scope }) => *scope == target.scope(),
        (ScopeState::Sealed { deadline_us }, Error::Sealed { deadline_us: d, .. }) => {
            *d == deadline_us
        }
        _ => false,
    };
    let verdict = |what: &str, result: Result<String, Error>| match result {
        Err(e) if expected(&e) => Ok(()),
        other => Err(format!(
            "{target} is {found:?}, but a {what} returned {other:?}"
        )),
    };
    if found == ScopeState::Live {
        return Ok(());
    }
    verdict(
        "get",
        read_scope(db, target, &key_name(0, 0)).map(|v| format!("{:?}", describe(v.as_ref()))),
    )?;
    verdict(
        "scan",
        scan_scope(db, target).map(|r| format!("{} records", r.len())),
    )?;
    let tenant = db.tenant(TenantId(target.tenant));
    let put = match target.subject {
        None => tenant.put(b"probe", b"never stored"),
        Some(s) => tenant.subject(SubjectId(s)).put(b"probe", b"never stored"),
    };
    verdict("put", put.map(|lsn| format!("{lsn:?}")))
}

/// When to kill the child.
#[derive(Debug, Clone, Copy)]
enum KillPlan {
    /// This long after the spawn.
    After(Duration),
    /// This long (often 0) after the child reports the `nth` call of its
    /// shredder: a shred or a cancel is then under way, most likely.
    InShredderCall { nth: u32, delay: Duration },
    /// This long after the deadline of the first short seal the child makes:
    /// the child's maintenance (every 200 ms) then destroys and reclaims it.
    PastDeadline { delay: Duration },
}

/// Longest wait for the event a plan waits for; then the child is killed
/// anyway.
const KILL_WAIT_MAX: Duration = Duration::from_millis(1500);

/// What the parent hears on the child's stdout as it comes.
enum Signal {
    /// The shredder began a shred or a cancel.
    ShredderCall,
    /// A shred returned a seal with this deadline.
    Sealed { deadline_us: u64 },
}

impl KillPlan {
    fn random(rng: &mut StdRng) -> KillPlan {
        match rng.random_range(0..20) {
            // Early, during start-up and recovery, now and then.
            0..2 => KillPlan::After(Duration::from_millis(rng.random_range(0..=60))),
            // At random, within a quarter second or later, when short grace
            // periods have ended and maintenance has run.
            2..5 => KillPlan::After(Duration::from_millis(rng.random_range(60..=250))),
            5..8 => KillPlan::After(Duration::from_millis(rng.random_range(250..=650))),
            8..16 => KillPlan::InShredderCall {
                nth: rng.random_range(1..=12),
                delay: if rng.random_bool(0.3) {
                    Duration::ZERO
                } else {
                    Duration::from_micros(rng.random_range(0..=3000))
                },
            },
            _ => KillPlan::PastDeadline {
                delay: Duration::from_millis(rng.random_range(0..=250)),
            },
        }
    }

    /// Returns when the child is to be killed.
    fn wait(self, heard: &mpsc::Receiver<Signal>, stats: &mut Stats) {
        let give_up = Instant::now() + KILL_WAIT_MAX;
        let next = || heard.recv_timeout(give_up.saturating_duration_since(Instant::now()));
        match self {
            KillPlan::After(delay) => {
                stats.kills_timed += 1;
                std::thread::sleep(delay);
            }
            KillPlan::InShredderCall { nth, delay } => {
                let mut seen = 0;
                loop {
                    match next() {
                        Ok(Signal::ShredderCall) => {
                            seen += 1;
                            if seen == nth {
                                // Spin: a sleep would not be this precise.
                                let until = Instant::now() + delay;
                                while Instant::now() < until {
                                    std::hint::spin_loop();
                                }
                                stats.kills_in_shredder_calls += 1;
                                return;
                            }
                        }
                        Ok(Signal::Sealed { .. }) => {}
                        Err(_) => break,
                    }
                }
                stats.kills_given_up += 1;
            }
            KillPlan::PastDeadline { delay } => {
                loop {
                    match next() {
                        Ok(Signal::Sealed { deadline_us }) => {
                            let wait_us = deadline_us.saturating_sub(now_us());
                            if wait_us > 1_000_000 {
                                continue; // A long grace period.
                            }
                            std::thread::sleep(Duration::from_micros(wait_us) + delay);
                            stats.kills_past_deadline += 1;
                            return;
                        }
                        Ok(Signal::ShredderCall) => {}
                        Err(_) => break,
                    }
                }
                stats.kills_given_up += 1;
            }
        }
    }
}

/// Reads the child's stdout line by line as it comes, telling `signals` of
/// the shredder's progress; returns all it read.
fn watch(from: impl Read + Send + 'static, signals: mpsc::Sender<Signal>) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(from);
        let mut bytes = Vec::new();
        let mut line = Vec::new();
        loop {
            line.clear();
            // A read error just ends the transcript early; what was read
            // counts.
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => bytes.extend_from_slice(&line),
            }
            let text = String::from_utf8_lossy(&line);
            let Some(at) = text.find(MARK) else {
                continue;
            };
            let words: Vec<&str> = text[at + MARK.len()..].split_whitespace().collect();
            let signal = match words[..] {
                ["shred-issue" | "cancel-issue", ..] => Signal::ShredderCall,
                ["shred-ack", _, state] => match decode_state(state) {
                    Some(ScopeState::Sealed { deadline_us }) => Signal::Sealed { deadline_us },
                    _ => continue,
                },
                _ => continue,
            };
            // The parent may have stopped listening: that is fine.
            let _ = signals.send(signal);
        }
        bytes
    })
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

/// How many log segments there are.
fn segments(db_dir: &Path) -> usize {
    let wal = db_dir.join(strongroom::format::WAL_DIR);
    let Ok(entries) = std::fs::read_dir(&wal) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| PathBuf::from(e.file_name()))
        .filter(|name| {
            name.to_str()
                .is_some_and(|n| n.ends_with(strongroom::format::SEGMENT_SUFFIX))
        })
        .count()
}

/// Reads the child's report, applying every acknowledged write to `state`
/// in order; returns what was in flight at the kill and the shredder's
/// events.
fn read_transcript(
    stdout: &[u8],
    iteration: u64,
    state: &mut State,
    stats: &mut Stats,
) -> Result<Transcript, String> {
    let text = String::from_utf8_lossy(stdout);
    // The kill may cut the last line short: only whole lines count.
    let whole = text.rfind('\n').map_or("", |end| &text[..end]);
    let mut transcript = Transcript {
        opened: false,
        in_flight: vec![None; WRITERS],
        shreds: Vec::new(),
        shred_in_flight: None,
    };
    let targets = scopes_of(&target_tenants(iteration));
    // Scopes a shred was issued for, so far: only they (or their tenant's)
    // may refuse a write.
    let mut shred_issued: BTreeSet<Target> = BTreeSet::new();
    for line in whole.lines() {
        let Some(at) = line.find(MARK) else {
            continue; // libtest's own output
        };
        let event = &line[at + MARK.len()..];
        let (word, rest) = event.split_once(' ').unwrap_or((event, ""));
        let words: Vec<&str> = rest.split(' ').collect();
        let bad = || format!("malformed line {event:?}");
        let number = |text: &str| text.parse::<u64>().map_err(|_| bad());
        let scope = |text: &str| {
            Target::decode(text)
                .filter(|t| targets.contains(t))
                .ok_or_else(|| format!("line {event:?} names no target of this kill point"))
        };
        match word {
            "opened" => transcript.opened = true,
            "issue" => {
                let op = Op::decode(rest)?;
                stats.issued += 1;
                let expected = target_tenants(iteration);
                if !is_kept(op.tenant) && !expected.contains(&op.tenant) {
                    return Err(format!("op {} writes to tenant {}", op.id, op.tenant));
                }
                let slot = &mut transcript.in_flight[op.thread];
                if let Some(previous) = slot {
                    return Err(format!(
                        "protocol: thread {} issued op {} while op {} was not answered",
                        op.thread, op.id, previous.id
                    ));
                }
                *slot = Some(op);
            }
            "ack" | "refused" => {
                let [thread, id, ..] = words[..] else {
                    return Err(bad());
                };
                let thread: usize = thread.parse().map_err(|_| bad())?;
                let slot = transcript.in_flight.get_mut(thread).ok_or_else(bad)?;
                let op = match slot.take() {
                    Some(op) if op.id == id => op,
                    other => {
                        return Err(format!(
                            "protocol: thread {thread} answered op {id} but had issued {:?}",
                            other.map(|op| op.id)
                        ));
                    }
                };
                if word == "ack" {
                    op.apply_to(state);
                    stats.acked += 1;
                    continue;
                }
                let [_, _, why, refused_scope] = words[..] else {
                    return Err(bad());
                };
                let refused_scope = Target::decode(refused_scope).ok_or_else(bad)?;
                if is_kept(op.tenant)
                    || !op.items.iter().any(|i| i.place().0 == refused_scope)
                    || !(shred_issued.contains(&refused_scope)
                        || shred_issued.contains(&refused_scope.tenant_scope()))
                {
                    return Err(format!(
                        "op {} ({}) was refused, {why} in {refused_scope}, before any shred of \
                         that scope or its tenant was issued",
                        op.id,
                        op.encode()
                    ));
                }
                match why {
                    "sealed" => stats.refused_sealed += 1,
                    "shredded" => stats.refused_shredded += 1,
                    _ => return Err(bad()),
                }
            }
            "shred-issue" | "cancel-issue" | "rotate-issue" => {
                if let Some(previous) = &transcript.shred_in_flight {
                    return Err(format!(
                        "protocol: the shredder began {event:?} during {previous:?}"
                    ));
                }
                let action = match (word, &words[..]) {
                    ("shred-issue", [id, target, grace_ms, at_us]) => ShredAction::Shred {
                        id: id.to_string(),
                        target: scope(target)?,
                        grace: Duration::from_millis(number(grace_ms)?),
                        at_us: number(at_us)?,
                    },
                    ("cancel-issue", [id, target, at_us]) => ShredAction::Cancel {
                        id: id.to_string(),
                        target: scope(target)?,
                        at_us: number(at_us)?,
                    },
                    ("rotate-issue", [id, tenant]) => ShredAction::Rotate {
                        id: id.to_string(),
                        tenant: number(tenant)?,
                    },
                    _ => return Err(bad()),
                };
                let tenant = action.target().tenant;
                if !is_kept(tenant) && !target_tenants(iteration).contains(&tenant) {
                    return Err(format!("{event:?} acts on tenant {tenant}"));
                }
                if let ShredAction::Shred { target, .. } = &action {
                    shred_issued.insert(*target);
                }
                transcript.shred_in_flight = Some(action);
            }
            "shred-ack" | "shred-refused" | "cancel-ack" | "cancel-refused" | "rotate-ack"
            | "rotate-refused" => {
                let action = transcript
                    .shred_in_flight
                    .take()
                    .ok_or_else(|| format!("protocol: {event:?} answers no shredder action"))?;
                if words.first() != Some(&action.id()) {
                    return Err(format!("protocol: {event:?} answers {action:?}"));
                }
                let is_shred = matches!(action, ShredAction::Shred { .. });
                let is_cancel = matches!(action, ShredAction::Cancel { .. });
                if let ShredAction::Rotate { tenant, .. } = action {
                    let refusable = shred_issued.contains(&Target::own(tenant));
                    if word == "rotate-refused" && !refusable {
                        return Err(format!(
                            "{event:?}: tenant {tenant}'s rotation was refused before any shred \
                             of the tenant was issued"
                        ));
                    }
                }
                transcript.shreds.push(match (word, &words[1..]) {
                    ("shred-ack", [state]) if is_shred => ShredEvent::Shredded {
                        action,
                        state: decode_state(state).ok_or_else(bad)?,
                    },
                    ("cancel-ack", [was_sealed, end_us]) if is_cancel => ShredEvent::Cancelled {
                        action,
                        was_sealed: was_sealed.parse().map_err(|_| bad())?,
                        end_us: number(end_us)?,
                    },
                    ("shred-refused", [end_us]) if is_shred => ShredEvent::Refused {
                        action,
                        sealed: false,
                        end_us: number(end_us)?,
                    },
                    ("cancel-refused", [end_us]) if is_cancel => ShredEvent::Refused {
                        action,
                        sealed: false,
                        end_us: number(end_us)?,
                    },
                    ("rotate-ack", [version]) if !is_shred && !is_cancel => ShredEvent::Rotated {
                        action,
                        version: version.parse().map_err(|_| bad())?,
                    },
                    ("rotate-refused", [why @ ("sealed" | "shredded"), end_us])
                        if !is_shred && !is_cancel =>
                    {
                        ShredEvent::Refused {
                            action,
                            sealed: *why == "sealed",
                            end_us: number(end_us)?,
                        }
                    }
                    _ => return Err(bad()),
                });
            }
            "err" => return Err(format!("the child's call failed: {event}")),
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

/// Reads every record of the `checked` (live) scopes, by get and by scan.
fn read_records(db: &Db, checked: &[Target]) -> Result<State, String> {
    let mut found = State::new();
    for &target in checked {
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
        let mut seen = BTreeSet::new();
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
            if !seen.insert(name.clone()) {
                return Err(format!("scan of {target} returned key {name} twice"));
            }
        }
        for ((t, key), value) in found.range((target, String::new())..) {
            if *t != target {
                break;
            }
            if !seen.contains(key) {
                return Err(format!(
                    "scan of {target} missed key {key} = {}, which get returns",
                    describe(Some(value))
                ));
            }
        }
    }
    Ok(found)
}

/// Reads the `checked` scopes and checks them, thread by thread, against
/// `state` (acknowledged writes applied) and `state` plus the thread's write
/// in flight; returns what was found.
fn verify_records(
    db: &Db,
    state: &State,
    in_flight: &[Option<Op>],
    checked: &[Target],
    stats: &mut Stats,
) -> Result<State, String> {
    let found = read_records(db, checked)?;
    stats.records_checked += found.len() as u64;
    for (thread, op) in in_flight.iter().enumerate() {
        let places: Vec<(Target, String)> = checked
            .iter()
            .flat_map(|&t| (0..KEYS_PER_WRITER).map(move |n| (t, key_name(thread, n))))
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
                    "thread {thread} had no write in flight, but its records in live scopes \
                     differ from its acknowledged writes:\n{}",
                    without.join("\n")
                ));
            }
            Some(op) => match (without.is_empty(), with.is_empty()) {
                (true, true) => stats.in_flight_invisible += 1,
                (true, false) => stats.in_flight_not_applied += 1,
                (false, true) => stats.in_flight_applied += 1,
                (false, false) => {
                    return Err(format!(
                        "thread {thread}: the records of live scopes match neither its \
                         acknowledged writes nor those plus its write in flight ({}).\nCompared \
                         with the acknowledged writes alone:\n{}\nCompared with the write in \
                         flight applied as well:\n{}",
                        op.encode(),
                        without.join("\n"),
                        with.join("\n")
                    ));
                }
            },
        }
    }
    Ok(found)
}

/// With the database closed: no record of a shredded scope decrypts, from
/// the log or the store, and the store's records that decrypt are exactly
/// the live ones.
fn forensic_check(db_dir: &Path, world: &World, stats: &mut Stats) -> Result<(), String> {
    let records = decrypt_everything(db_dir, &options())
        .map_err(|e| format!("forensic::decrypt_everything failed: {e}"))?;
    let mut in_store = State::new();
    for record in records {
        let target = Target::of_scope(record.scope);
        let key = String::from_utf8_lossy(&record.key).into_owned();
        if world.is_shredded(target) {
            return Err(format!(
                "a record of shredded {target} decrypts from {:?}: key {key:?} = {}",
                record.found,
                describe(Some(&record.value))
            ));
        }
        match record.found {
            Found::Log(_) => stats.decrypted_from_log += 1,
            Found::Store => {
                stats.decrypted_from_store += 1;
                if in_store
                    .insert((target, key.clone()), record.value)
                    .is_some()
                {
                    return Err(format!("the store holds {target} key {key} twice"));
                }
            }
        }
    }
    if in_store != world.state {
        let mut differences = Vec::new();
        for place in world.state.keys().chain(in_store.keys()) {
            let (expected, found) = (world.state.get(place), in_store.get(place));
            if expected != found {
                differences.push(format!(
                    "  {} key {}: expected {}, the store decrypts {}",
                    place.0,
                    place.1,
                    describe(expected),
                    describe(found)
                ));
            }
        }
        differences.dedup();
        return Err(format!(
            "the store's decryptable records differ from the live records:\n{}",
            differences.join("\n")
        ));
    }
    Ok(())
}

/// After the last kill point: every scope ever written is still what it was
/// when checked (live and whole, or shredded), and a final forensic check.
fn final_check(db_dir: &Path, world: &mut World, stats: &mut Stats) -> Result<(), String> {
    let db = Db::open(db_dir, options()).map_err(|e| format!("reopening failed: {e}"))?;
    db.run_maintenance()
        .map_err(|e| format!("maintenance failed: {e}"))?;
    let mut live: Vec<Target> = scopes_of(&KEPT_TENANTS);
    live.extend(world.live_targets.iter().copied());
    for &target in live.iter().chain(world.shredded.iter()) {
        let found =
            scope_state(&db, target).map_err(|e| format!("state() of {target} failed: {e}"))?;
        let expected = if world.is_shredded(target) {
            ScopeState::Shredded
        } else {
            ScopeState::Live
        };
        if found != expected {
            return Err(format!("{target} is {found:?}, but was {expected:?}"));
        }
        check_refusal(&db, target, found)?;
    }
    let no_writes = vec![None; WRITERS];
    let found = verify_records(&db, &world.state, &no_writes, &live, stats)?;
    if found != world.state {
        return Err("the records read differ from those checked before".into());
    }
    db.close().map_err(|e| format!("closing failed: {e}"))?;
    forensic_check(db_dir, world, stats)
}

// ---------------------------------------------------------------------------
// A race found while writing this test
// ---------------------------------------------------------------------------

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
            .shred_subject(SubjectId(s), ShredOptions::with_grace(LONG_GRACE))
            .expect("seal");
    }
    clock.advance(PAST_EVERY_DEADLINE);
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
