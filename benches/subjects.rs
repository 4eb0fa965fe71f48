//! Creating subjects: durable first writes to new subjects (each creates the
//! subject's key, durably, before its write commits) against durable writes
//! to subjects that exist, with 1 and 8 threads, in the same run. New
//! subjects come numbered in order (as the record layer numbers them: their
//! keys are made ahead, `Options::subject_keys_ahead`) and at random numbers
//! (each key made when its subject is first written). And an
//! import of many new subjects in batches (one record each), against the
//! same batches into subjects that exist.
//!
//! ```sh
//! CARGO_TARGET_DIR=$HOME/.cache/strongroom/target cargo bench --bench subjects -- [--rounds N] [--import N]
//! ```
//!
//! Each round measures both sides for a fixed window, alternating which
//! goes first, so a change in the disk's sync latency during the run lands
//! on both; the ratio is the median of the rounds' ratios. The import runs
//! once per side (default 1,000,000 subjects, batches of 10,000).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use strongroom::{Db, Options, SubjectId, TenantId, WriteBatch};

#[path = "common/keys.rs"]
mod keys;
use keys::splitmix64;

const WINDOW: Duration = Duration::from_secs(3);
const VALUE: [u8; 256] = [0x5c; 256];
const IMPORT_BATCH: u64 = 10_000;
/// Subjects that exist before the rounds (the "existing" side writes to
/// them at random).
const EXISTING: u64 = 10_000;

fn main() {
    let mut rounds = 3;
    let mut import = 1_000_000u64;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--rounds" => {
                rounds = args
                    .next()
                    .and_then(|n| n.parse().ok())
                    .expect("--rounds N")
            }
            "--import" => {
                import = args
                    .next()
                    .and_then(|n| n.parse().ok())
                    .expect("--import N")
            }
            _ => {} // cargo bench passes --bench
        }
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open(dir.path(), Options::with_key([7; 32])).expect("open");
    let tenant = db.tenant(TenantId(1));
    let mut batch = WriteBatch::new();
    for s in 0..EXISTING {
        batch.put_subject(SubjectId(s), b"k", &VALUE[..]);
    }
    tenant.write(batch).expect("existing subjects");
    let next_new = AtomicU64::new(1 << 32);
    let next_random = AtomicU64::new(0);

    println!("# first writes to new subjects vs writes to existing ones (durable, 256 B)");
    println!(
        "| threads | round | existing puts/s | new, in order | new / existing | new, random numbers | new / existing |"
    );
    println!("|--:|--:|--:|--:|--:|--:|--:|");
    for threads in [1, 8] {
        let (mut in_order, mut random) = (Vec::new(), Vec::new());
        for round in 0..rounds {
            // existing, new in order, new at random numbers; the order
            // rotates from round to round.
            let mut rates = [0.0; 3];
            for side in 0..3 {
                let side = (side + round) % 3;
                rates[side] = run(threads, |i| {
                    let subject = match side {
                        0 => SubjectId(splitmix64(i) % EXISTING),
                        1 => SubjectId(next_new.fetch_add(1, Ordering::Relaxed)),
                        // Far from the others, and never one apart: even.
                        _ => {
                            let n = next_random.fetch_add(1, Ordering::Relaxed);
                            SubjectId((1 << 48) | (splitmix64(n) >> 20 << 1))
                        }
                    };
                    tenant.subject(subject).put(b"k", &VALUE).expect("put");
                });
            }
            let [existing, ordered, scattered] = rates;
            in_order.push(ordered / existing);
            random.push(scattered / existing);
            println!(
                "| {threads} | {round} | {existing:.0} | {ordered:.0} | {:.2} | {scattered:.0} | {:.2} |",
                ordered / existing,
                scattered / existing
            );
        }
        println!(
            "| {threads} | median | | | **{:.2}** | | **{:.2}** |",
            median(&mut in_order),
            median(&mut random)
        );
    }

    println!("\n# import: {import} subjects, one 256 B record each, batches of {IMPORT_BATCH}");
    let (existing_s, new_s) = (
        timed_import(&db, TenantId(2), import, false),
        timed_import(&db, TenantId(3), import, true),
    );
    println!("| subjects | time | subjects/s |");
    println!("|---|--:|--:|");
    println!(
        "| existing (keys made beforehand, untimed) | {existing_s:.1} s | {:.0} |",
        import as f64 / existing_s
    );
    println!(
        "| new (each batch creates its keys) | {new_s:.1} s | {:.0} |",
        import as f64 / new_s
    );
    println!("new / existing: {:.2}", existing_s / new_s);
}

/// Calls per second of `op` on `threads` threads for [`WINDOW`].
fn run(threads: usize, op: impl Fn(u64) + Sync) -> f64 {
    let done = AtomicU64::new(0);
    let end = Instant::now() + WINDOW;
    std::thread::scope(|s| {
        for t in 0..threads {
            let (op, done) = (&op, &done);
            s.spawn(move || {
                let mut i = (t as u64) << 40;
                while Instant::now() < end {
                    op(i);
                    i += 1;
                    done.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
    });
    done.load(Ordering::Relaxed) as f64 / WINDOW.as_secs_f64()
}

/// Seconds to import `count` subjects of `tenant` in batches; with `new`
/// false their keys are created first (untimed), so only the records are.
fn timed_import(db: &Db, tenant: TenantId, count: u64, new: bool) -> f64 {
    let tenant = db.tenant(tenant);
    if !new {
        for batch in batches(count, b"") {
            tenant.write(batch).expect("keys beforehand");
        }
    }
    let start = Instant::now();
    for (i, batch) in batches(count, &VALUE).enumerate() {
        tenant.write(batch).expect("import");
        if (i + 1) % 20 == 0 {
            eprintln!(
                "  {} subjects, {:.1} s",
                (i as u64 + 1) * IMPORT_BATCH,
                start.elapsed().as_secs_f64()
            );
        }
    }
    start.elapsed().as_secs_f64()
}

/// The import's batches: each puts one record into each of
/// [`IMPORT_BATCH`] subjects, numbered from 0.
fn batches(count: u64, value: &[u8]) -> impl Iterator<Item = WriteBatch> + '_ {
    (0..count).step_by(IMPORT_BATCH as usize).map(move |first| {
        let mut batch = WriteBatch::new();
        for s in first..(first + IMPORT_BATCH).min(count) {
            batch.put_subject(SubjectId(s), b"k", value);
        }
        batch
    })
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}
