//! The record layer's cost per record write and read, against the bare
//! engine, in the same run, on the same database.
//!
//! Run it (always with this target folder: any other one rebuilds RocksDB):
//!
//! ```sh
//! CARGO_TARGET_DIR=$HOME/.cache/strongroom/target cargo bench -p strongroom-records --bench records
//! ```
//!
//! One database (`Options::with_key`, everything default, so durable writes:
//! `Durability::SyncEveryCommit`), one tenant set up with the seed
//! configuration, a caseworker at the whole tenant acting for `care` (a
//! purpose without consent), and [`SUBJECTS`] subjects created through the
//! layer, each with an e-mail, a record of ordinary fields only
//! (`activity`) and a record with a sensitive field (`care_plan`), both
//! padded to [`RECORD_LEN`] bytes as the layer encodes them. Beside each
//! record, in the same subject's scope, the engine baseline keeps a copy of
//! the record's encoded bytes under a key of the same length. Every
//! operation cycles through the subjects; both sides of a pair touch the
//! same subjects, the same value sizes, in the same scopes. The set-up's
//! writes are flushed and the store settled (`Db::flush_and_settle`) before
//! the first pair. The whole run takes about a minute here.
//!
//! Each pair is a criterion group with two functions, `engine` then
//! `records`:
//!
//! | group | `records` | `engine` |
//! |---|---|---|
//! | `put_ordinary` | `put_record` of the `activity` record (4 ordinary fields) | `Subject::put` of its encoded bytes |
//! | `put_sensitive` | `put_record` of the `care_plan` record (2 ordinary fields, 1 sensitive) | `Subject::put` of its encoded bytes |
//! | `get_ordinary` | `get_record` of `activity` (not audited) | `Subject::get` |
//! | `get_ordinary_consent` | the same for `sharing`, a purpose that needs consent (given) | `Subject::get` |
//! | `get_sensitive` | `get_record` of `care_plan` (its sensitive field is shown: audited) | `Subject::get` |
//! | `get_field_sensitive` | `get_field` of `care_plan`'s sensitive field (audited) | `Subject::get` |
//! | `create_subject` | `create_subject` with an e-mail | `Subject::put` of a value the size of the layer's `r/ids` into a new subject (of tenant 2, numbered as the layer numbers its own; both from [`SUBJECTS_BEFORE`] on) |
//! | `find_subject` | `find_subject` by e-mail (audited) | `Tenant::get` of a 38-byte key |
//!
//! The project reports ratios, not absolute times (the machine is shared),
//! and prints them at the end, measured two ways in the same process:
//!
//! - **Criterion**: each side in its own window, one after the other; the
//!   time per operation over criterion's samples (the last 10 calls of each
//!   function's timing routine are its measurement samples, the warm-up's
//!   calls come before them).
//! - **Interleaved**: right after a pair's criterion run, both sides in
//!   turn for [`PAIRED_TIME`], a block of operations each (one durable
//!   operation, or as many fast ones as make [`BLOCK_TIME`]), the side that
//!   goes first alternating. Durable operations wait for a sync, whose
//!   latency drifts with the disk and the neighbours' load: interleaving
//!   lets both sides see the same drift, so this ratio is the one to quote.
//!   Wall time per operation (median and mean of the blocks), and the
//!   calling thread's CPU time per operation (`CLOCK_THREAD_CPUTIME_ID`;
//!   the wait for a sync is not CPU time, so this is the layer's own work
//!   set against the engine's, whatever the disk does).
//!
//! The audited reads and the lookup are also set against an engine get plus
//! an engine durable put (the `put_ordinary` baseline): what they do at the
//! least.
//!
//! Secret fields stay out of the timed paths (their Argon2id cost is a
//! parameter of `RecordsOptions`, not the layer's overhead).

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, criterion_group, criterion_main};
use strongroom::{Db, Durability, Options, SubjectId, Tenant, TenantId};
use strongroom_records::{
    Access, ConsentAction, FieldClass, FieldKind, IdentifierKind, Identifiers, RecordType, Records,
    RecordsOptions, Schema, TenantConfig, TenantRecords, Value, WHOLE_TENANT,
};

const KEY: [u8; 32] = [0x5a; 32];
const TENANT: TenantId = TenantId(1);
/// Subjects the reads and writes cycle through.
const SUBJECTS: usize = 32;
/// Each record's size as the layer encodes it (and the engine baseline's
/// value size).
const RECORD_LEN: usize = 256;
/// Criterion's samples per function (its minimum): the table takes the last
/// this many calls of each timing routine.
const SAMPLES: usize = 10;
/// The tenant of the engine baseline of `create_subject`.
const BARE_TENANT: TenantId = TenantId(2);
/// The subjects each side of `create_subject` has before it runs, numbered
/// from 1 on both: one per subject keyring shard (`subject % 1024`), so each
/// new subject's key is appended to a shard that exists, as in any tenant
/// past its first 1,024 subjects, and both sides walk the same shards.
const SUBJECTS_BEFORE: u64 = 1024;
/// How long each pair runs interleaved, after criterion.
const PAIRED_TIME: Duration = Duration::from_secs(2);
/// The least time of the engine's operations in a block of the interleaved
/// run.
const BLOCK_TIME: Duration = Duration::from_micros(50);
const ACTIVITY: &str = "activity";
const CARE_PLAN: &str = "care_plan";

fn schema() -> Schema {
    let years = FieldKind::Category(["1", "2", "3"].map(String::from).to_vec());
    let houses = FieldKind::Category(["red", "blue"].map(String::from).to_vec());
    Schema::new()
        .with(
            RecordType::new(ACTIVITY)
                .single()
                .field_of("year", FieldClass::Ordinary, years)
                .field_of("house", FieldClass::Ordinary, houses)
                .field_of("visits", FieldClass::Ordinary, FieldKind::Integer)
                .field("notes", FieldClass::Ordinary),
        )
        .and_then(|s| {
            s.with(
                RecordType::new(CARE_PLAN)
                    .single()
                    .field("topic", FieldClass::Ordinary)
                    .field("notes", FieldClass::Ordinary)
                    .field("health", FieldClass::Sensitive),
            )
        })
        .expect("the bench schema holds together")
}

/// The fields of a record of type `record_type`, with notes of `notes_len`
/// bytes.
fn fields(record_type: &str, notes_len: usize) -> Vec<(&'static str, Value)> {
    let notes = Value::Text("n".repeat(notes_len));
    match record_type {
        ACTIVITY => vec![
            ("year", Value::from("2")),
            ("house", Value::from("blue")),
            ("visits", Value::from(7)),
            ("notes", notes),
        ],
        _ => vec![
            ("topic", Value::from("annual review")),
            ("notes", notes),
            ("health", Value::from("asthma; inhaler kept at the office")),
        ],
    }
}

fn email(n: usize) -> String {
    format!("pupil-{n}@example.org")
}

/// The key and value in `subject`'s scope whose key starts with `prefix`.
fn stored(engine: Tenant<'_>, subject: SubjectId, prefix: &[u8]) -> (Vec<u8>, Vec<u8>) {
    engine
        .subject(subject)
        .scan()
        .expect("scan")
        .map(|item| item.expect("scan"))
        .find(|(key, _)| key.starts_with(prefix))
        .expect("the layer's key")
}

/// The record `record_type` of `subject` as the layer stored it.
fn stored_record(engine: Tenant<'_>, subject: SubjectId, record_type: &str) -> (Vec<u8>, Vec<u8>) {
    stored(engine, subject, format!("r/rec/{record_type}/").as_bytes())
}

/// A key of the same length in the engine baseline's namespace (`b/...`).
fn bare_key(key: &[u8]) -> Vec<u8> {
    let mut bare = key.to_vec();
    bare[0] = b'b';
    bare
}

/// Everything the benches share.
struct Fixture<'r> {
    tenant: TenantRecords<'r>,
    engine: Tenant<'r>,
    caseworker: Access,
    subjects: Vec<SubjectId>,
    /// Per record type: the fields `put_record` writes, the engine
    /// baseline's key and value (the record's encoded bytes).
    activity: Shape,
    care_plan: Shape,
    /// The engine baseline of `create_subject`: a value the size of the
    /// layer's `r/ids` of a subject, put into new subjects of [`BARE_TENANT`].
    ids_value: Vec<u8>,
    bare: Tenant<'r>,
    /// The engine baseline's stand-ins for blind index entries, per subject.
    index_keys: Vec<Vec<u8>>,
}

struct Shape {
    fields: Vec<(&'static str, Value)>,
    bare_key: Vec<u8>,
    bytes: Vec<u8>,
}

impl<'r> Fixture<'r> {
    fn new(records: &'r Records) -> Fixture<'r> {
        let admin = Access::new("admin-1", "admin", WHOLE_TENANT, "care", "setting up");
        let tenant = records
            .set_up_tenant(&admin, TENANT, TenantConfig::seeded(vec![]))
            .expect("set up");
        tenant
            .assign(&admin, "caseworker-1", "caseworker", WHOLE_TENANT)
            .expect("assign");
        let caseworker = Access::new(
            "caseworker-1",
            "caseworker",
            WHOLE_TENANT,
            "care",
            "a bench",
        );
        let engine = records.db().tenant(TENANT);
        let subjects: Vec<SubjectId> = (0..SUBJECTS)
            .map(|n| {
                let ids = Identifiers::new().email(&email(n));
                let s = tenant
                    .create_subject(&caseworker, WHOLE_TENANT, &ids)
                    .expect("create subject");
                tenant
                    .record_consent(&caseworker, s, "sharing", ConsentAction::OptIn)
                    .expect("consent");
                s
            })
            .collect();
        let shape = |record_type: &str| {
            // Notes of a first length, then of the length that makes the
            // encoded record RECORD_LEN bytes.
            let first = 64;
            tenant
                .put_record(
                    &caseworker,
                    subjects[0],
                    record_type,
                    0,
                    &fields(record_type, first),
                )
                .expect("put");
            let encoded = stored_record(engine, subjects[0], record_type).1.len();
            let notes_len = (first + RECORD_LEN)
                .checked_sub(encoded)
                .expect("a record that fits in RECORD_LEN");
            let fields = fields(record_type, notes_len);
            for &s in &subjects {
                tenant
                    .put_record(&caseworker, s, record_type, 0, &fields)
                    .expect("put");
            }
            let (key, bytes) = stored_record(engine, subjects[0], record_type);
            assert_eq!(bytes.len(), RECORD_LEN, "{record_type}'s encoded size");
            let bare_key = bare_key(&key);
            for &s in &subjects {
                engine.subject(s).put(&bare_key, &bytes).expect("put");
            }
            Shape {
                fields,
                bare_key,
                bytes,
            }
        };
        let activity = shape(ACTIVITY);
        let care_plan = shape(CARE_PLAN);
        let ids_value = vec![0x42u8; stored(engine, subjects[0], b"r/ids").1.len()];
        // Both sides of create_subject up to SUBJECTS_BEFORE subjects.
        for n in SUBJECTS..SUBJECTS_BEFORE as usize {
            let ids = Identifiers::new().email(&email(n));
            let s = tenant.create_subject(&caseworker, WHOLE_TENANT, &ids);
            assert_eq!(s.expect("create subject"), SubjectId(n as u64 + 1));
        }
        let bare = records.db().tenant(BARE_TENANT);
        for n in 1..=SUBJECTS_BEFORE {
            bare.subject(SubjectId(n))
                .put(b"r/ids", &ids_value)
                .expect("put");
        }
        let index_keys: Vec<Vec<u8>> = (0..SUBJECTS)
            .map(|n| [b"b/ix/\x01".as_slice(), &[n as u8; 32]].concat())
            .collect();
        for (key, s) in index_keys.iter().zip(&subjects) {
            engine.put(key, &s.0.to_le_bytes()).expect("put");
        }

        // The set-up's writes flushed and the store's compactions done: the
        // first pair does not pay for them.
        records.db().flush_and_settle().expect("flush and settle");

        // What the timed calls will see.
        let s = subjects[1];
        let view = tenant.get_record(&caseworker, s, ACTIVITY, 0).expect("get");
        assert_eq!(view.fields.len(), 4);
        let view = tenant
            .get_record(&caseworker, s, CARE_PLAN, 0)
            .expect("get");
        assert_eq!(
            view.fields.len(),
            3,
            "the caseworker sees the sensitive field"
        );
        let sharing = caseworker.for_purpose("sharing", "a bench");
        assert!(tenant.get_record(&sharing, s, ACTIVITY, 0).is_ok());
        let found = tenant.find_subject(&caseworker, IdentifierKind::Email, &email(1));
        assert_eq!(found.expect("find"), Some(s));

        Fixture {
            tenant,
            engine,
            caseworker,
            subjects,
            activity,
            care_plan,
            ids_value,
            bare,
            index_keys,
        }
    }

    fn subject(&self, n: u64) -> SubjectId {
        self.subjects[n as usize % SUBJECTS]
    }
}

/// Each call of a function's timing routine: (iterations, time).
type Calls = Vec<(u64, Duration)>;

/// One side of a pair: its operation, given the count of its calls so far
/// (subjects cycle with it, new subjects and e-mails are numbered by it),
/// and what was measured of it.
struct Side<'a> {
    op: Box<dyn FnMut(u64) + 'a>,
    next: u64,
    /// Criterion's calls of the timing routine, warm-up first.
    criterion: Calls,
    /// The interleaved run: each block's wall time per operation.
    wall: Vec<Duration>,
    /// The interleaved run: the calling thread's CPU time, in all.
    cpu: Duration,
}

impl<'a> Side<'a> {
    fn new(op: impl FnMut(u64) + 'a) -> Side<'a> {
        Side {
            op: Box::new(op),
            next: 0,
            criterion: Calls::new(),
            wall: Vec::new(),
            cpu: Duration::ZERO,
        }
    }

    /// `block` operations, timed together.
    fn block(&mut self, block: u64) {
        let cpu = thread_cpu();
        let start = Instant::now();
        for _ in 0..block {
            (self.op)(self.next);
            self.next += 1;
        }
        self.wall.push(start.elapsed() / block as u32);
        self.cpu += thread_cpu().saturating_sub(cpu);
    }
}

/// One pair: a layer call and its engine baseline.
struct Pair<'a> {
    group: &'static str,
    what: &'static str,
    baseline: &'static str,
    engine: Side<'a>,
    records: Side<'a>,
    /// Operations per block in the interleaved run.
    block: u64,
}

impl<'a> Pair<'a> {
    fn new(
        group: &'static str,
        (what, baseline): (&'static str, &'static str),
        engine: impl FnMut(u64) + 'a,
        records: impl FnMut(u64) + 'a,
    ) -> Pair<'a> {
        Pair {
            group,
            what,
            baseline,
            engine: Side::new(engine),
            records: Side::new(records),
            block: 1,
        }
    }

    /// Both sides one after the other under criterion, then (if both ran
    /// for real: not filtered out, not `--test`) interleaved for
    /// [`PAIRED_TIME`]: a block of operations of one side, then of the
    /// other, the side that goes first alternating. A block is one
    /// operation, or as many as make [`BLOCK_TIME`] of the engine's (so the
    /// clocks' own cost stays small beside fast reads).
    fn measure(&mut self, c: &mut Criterion) {
        let mut group = c.benchmark_group(self.group);
        run(&mut group, "engine", &mut self.engine);
        run(&mut group, "records", &mut self.records);
        group.finish();
        let (Some(engine), true) = (
            criterion_mean(&self.engine.criterion),
            self.engine.criterion.len() > SAMPLES && self.records.criterion.len() > SAMPLES,
        ) else {
            return;
        };
        self.block = (BLOCK_TIME.as_secs_f64() / engine.as_secs_f64()).max(1.0) as u64;
        let end = Instant::now() + PAIRED_TIME;
        let mut engine_first = true;
        while Instant::now() < end {
            if engine_first {
                self.engine.block(self.block);
                self.records.block(self.block);
            } else {
                self.records.block(self.block);
                self.engine.block(self.block);
            }
            engine_first = !engine_first;
        }
    }
}

/// The calling thread's CPU time (user and system; not the time it waits
/// for a sync).
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec for the call to fill.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Benchmarks `side` as `name` in `group`.
fn run(group: &mut BenchmarkGroup<'_, WallTime>, name: &str, side: &mut Side<'_>) {
    let Side {
        op,
        next,
        criterion,
        ..
    } = side;
    group.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                op(*next);
                *next += 1;
            }
            let elapsed = start.elapsed();
            criterion.push((iters, elapsed));
            elapsed
        })
    });
}

/// Time per operation over criterion's samples (the last [`SAMPLES`]
/// calls): all their time over all their iterations. None if the function
/// did not run.
fn criterion_mean(calls: &Calls) -> Option<Duration> {
    if calls.is_empty() {
        return None;
    }
    let samples = &calls[calls.len().saturating_sub(SAMPLES)..];
    let iters: u64 = samples.iter().map(|(i, _)| i).sum();
    let time: Duration = samples.iter().map(|(_, t)| *t).sum();
    Some(time.div_f64(iters as f64))
}

/// The median and the mean of the interleaved run's blocks (per operation).
fn paired(times: &[Duration]) -> Option<(Duration, Duration)> {
    if times.is_empty() {
        return None;
    }
    let mut sorted = times.to_vec();
    sorted.sort();
    let mean = times.iter().sum::<Duration>() / times.len() as u32;
    Some((sorted[sorted.len() / 2], mean))
}

fn us(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

fn ratio(a: Duration, b: Duration) -> String {
    format!("{:.2}×", a.as_secs_f64() / b.as_secs_f64())
}

/// Prints the tables, if a pair ran both ways (not under `--test`, which
/// runs each function once, nor with a filter that leaves one side out).
fn report(pairs: &[Pair<'_>]) {
    if pairs.iter().all(|p| p.records.wall.is_empty()) {
        return;
    }
    eprintln!(
        "\nThe record layer against the bare engine, same run, same database.\n\n\
         Criterion (each side's own window, one after the other): time per operation over \
         its {SAMPLES} samples (all their time / all their iterations).\n"
    );
    eprintln!("| pair | records | engine baseline | records | engine | records/engine |");
    eprintln!("|---|---|---|--:|--:|--:|");
    for p in pairs {
        if let (Some(r), Some(e)) = (
            criterion_mean(&p.records.criterion),
            criterion_mean(&p.engine.criterion),
        ) {
            let row = [p.group, p.what, p.baseline, &us(r), &us(e), &ratio(r, e)];
            eprintln!("| {} |", row.join(" | "));
        }
    }
    eprintln!(
        "\nInterleaved (a block of each side in turn for {PAIRED_TIME:?} per pair, so both see \
         the same disk and the same neighbours): wall time per operation, median and mean of \
         the blocks; CPU time of the calling thread per operation (the time a sync waits is \
         not CPU time).\n"
    );
    eprintln!(
        "| pair | block | ops per side | records p50 | engine p50 | ratio p50 | records mean | \
         engine mean | ratio mean | records CPU | engine CPU | ratio CPU | records − engine \
         (p50) |"
    );
    eprintln!("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|");
    for p in pairs {
        let (Some((r50, rmean)), Some((e50, emean))) =
            (paired(&p.records.wall), paired(&p.engine.wall))
        else {
            continue;
        };
        let cpu = |side: &Side<'_>| side.cpu / (side.wall.len() as u64 * p.block) as u32;
        let (rcpu, ecpu) = (cpu(&p.records), cpu(&p.engine));
        let row = [
            p.group,
            &p.block.to_string(),
            &(p.records.wall.len() as u64 * p.block).to_string(),
            &us(r50),
            &us(e50),
            &ratio(r50, e50),
            &us(rmean),
            &us(emean),
            &ratio(rmean, emean),
            &us(rcpu),
            &us(ecpu),
            &ratio(rcpu, ecpu),
            &us(r50.saturating_sub(e50)),
        ];
        eprintln!("| {} |", row.join(" | "));
    }
    // The audited reads and the lookup commit an audit entry: at the least
    // an engine get and an engine durable put.
    let p50 = |group: &str, records: bool| {
        let p = pairs.iter().find(|p| p.group == group)?;
        let side = if records { &p.records } else { &p.engine };
        paired(&side.wall).map(|(p50, _)| p50)
    };
    if let Some(put) = p50("put_ordinary", false) {
        eprintln!(
            "\nAudited calls (interleaved p50s) against an engine get + an engine durable put \
             of 256 B (put_ordinary's engine p50, {}):",
            us(put)
        );
        for group in ["get_sensitive", "get_field_sensitive", "find_subject"] {
            if let (Some(r), Some(get)) = (p50(group, true), p50(group, false)) {
                eprintln!(
                    "  {group}: {} / ({} + {}) = {}",
                    us(r),
                    us(get),
                    us(put),
                    ratio(r, get + put)
                );
            }
        }
    }
}

fn records_vs_engine(c: &mut Criterion) {
    let options = Options::with_key(KEY);
    assert!(matches!(options.durability, Durability::SyncEveryCommit));
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open(dir.path(), options).expect("open");
    let records = Records::new(
        db,
        schema(),
        RecordsOptions {
            // No secret field is timed; cheap hashing anyway.
            secret_memory_kib: 64,
            secret_passes: 1,
            ..RecordsOptions::default()
        },
    );
    {
        let f = Fixture::new(&records);
        let t = &f.tenant;
        let cw = &f.caseworker;
        let sharing = cw.for_purpose("sharing", "a bench");
        let get_activity = |n| {
            let s = f.engine.subject(f.subject(n));
            black_box(s.get(&f.activity.bare_key).expect("get").expect("a value"));
        };
        let get_care_plan = |n| {
            let s = f.engine.subject(f.subject(n));
            black_box(s.get(&f.care_plan.bare_key).expect("get").expect("a value"));
        };
        let emails: Vec<String> = (0..SUBJECTS).map(email).collect();
        let mut pairs = vec![
            Pair::new(
                "put_ordinary",
                ("put_record, 4 ordinary fields", "Subject::put, 256 B"),
                |n| {
                    let s = f.engine.subject(f.subject(n));
                    black_box(s.put(&f.activity.bare_key, &f.activity.bytes).expect("put"));
                },
                |n| {
                    let r = t.put_record(cw, f.subject(n), ACTIVITY, 0, &f.activity.fields);
                    r.expect("put_record");
                },
            ),
            Pair::new(
                "put_sensitive",
                (
                    "put_record, 2 ordinary + 1 sensitive",
                    "Subject::put, 256 B",
                ),
                |n| {
                    let s = f.engine.subject(f.subject(n));
                    black_box(
                        s.put(&f.care_plan.bare_key, &f.care_plan.bytes)
                            .expect("put"),
                    );
                },
                |n| {
                    let r = t.put_record(cw, f.subject(n), CARE_PLAN, 0, &f.care_plan.fields);
                    r.expect("put_record");
                },
            ),
            Pair::new(
                "get_ordinary",
                (
                    "get_record, ordinary only (not audited)",
                    "Subject::get, 256 B",
                ),
                get_activity,
                |n| {
                    black_box(
                        t.get_record(cw, f.subject(n), ACTIVITY, 0)
                            .expect("get_record"),
                    );
                },
            ),
            Pair::new(
                "get_ordinary_consent",
                (
                    "the same, for a purpose needing consent",
                    "Subject::get, 256 B",
                ),
                get_activity,
                |n| {
                    let view = t.get_record(&sharing, f.subject(n), ACTIVITY, 0);
                    black_box(view.expect("get_record"));
                },
            ),
            Pair::new(
                "get_sensitive",
                (
                    "get_record, sensitive shown (audited)",
                    "Subject::get, 256 B",
                ),
                get_care_plan,
                |n| {
                    black_box(
                        t.get_record(cw, f.subject(n), CARE_PLAN, 0)
                            .expect("get_record"),
                    );
                },
            ),
            Pair::new(
                "get_field_sensitive",
                ("get_field, sensitive (audited)", "Subject::get, 256 B"),
                get_care_plan,
                |n| {
                    let value = t.get_field(cw, f.subject(n), CARE_PLAN, 0, "health");
                    black_box(value.expect("get_field").expect("a value"));
                },
            ),
            Pair::new(
                "create_subject",
                (
                    "create_subject with an e-mail",
                    "Subject::put into a new subject",
                ),
                |n| {
                    let s = f.bare.subject(SubjectId(SUBJECTS_BEFORE + 1 + n));
                    black_box(s.put(b"r/ids", &f.ids_value).expect("put"));
                },
                |n| {
                    let ids = Identifiers::new().email(&format!("new-{n}@example.org"));
                    black_box(
                        t.create_subject(cw, WHOLE_TENANT, &ids)
                            .expect("create_subject"),
                    );
                },
            ),
            Pair::new(
                "find_subject",
                ("find_subject by e-mail (audited)", "Tenant::get, 38 B key"),
                |n| {
                    let key = &f.index_keys[n as usize % SUBJECTS];
                    black_box(f.engine.get(key).expect("get").expect("a value"));
                },
                |n| {
                    let email = &emails[n as usize % SUBJECTS];
                    let found = t.find_subject(cw, IdentifierKind::Email, email);
                    black_box(found.expect("find_subject").expect("a subject"));
                },
            ),
        ];
        for pair in &mut pairs {
            pair.measure(c);
        }
        eprintln!(
            "\nRecords: {RECORD_LEN} B encoded (activity and care_plan alike); r/ids of a \
             subject: {} B; {SUBJECTS} subjects cycled; create_subject from {SUBJECTS_BEFORE} \
             subjects on.",
            f.ids_value.len()
        );
        report(&pairs);
    }
    records.into_db().close().expect("close");
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(SAMPLES)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_millis(1500))
        .nresamples(10_000)
        .without_plots()
}

criterion_group! {
    name = benches;
    config = config();
    targets = records_vs_engine
}
criterion_main!(benches);
