//! Crypto-shredding: the time `Db::shred_tenant` takes for a tenant of 1,000
//! and of 1,000,000 records, and the time the reclaim of their space takes.
//!
//! Run it (always with this target folder: any other one rebuilds RocksDB):
//!
//! ```sh
//! CARGO_TARGET_DIR=$HOME/.cache/strongroom/target cargo bench --bench shred
//! ```
//!
//! The goal: a shred takes at most 10 ms, and the 1M-record shred at most
//! twice the 1k-record one (destroying a tenant is one seal-ledger append and
//! one atomic keyring-shard rewrite, whatever the amount of data).
//!
//! - Group `shred_tenant`, functions `1k_records` and `1m_records`. Each
//!   function has its own database (a tempdir) and shreds a new tenant at
//!   every criterion iteration. Outside the timed region, each iteration
//!   loads the tenant's records (16-byte keys, 256-byte random values, in
//!   write batches of 1,000 puts) and flushes the store, so the records are
//!   in RocksDB's SST files, not only in the log and the memtable. Only
//!   `db.shred_tenant(id, ShredOptions::immediate())` is timed.
//! - The reclaim (`db.run_maintenance()`: RocksDB range deletion, flush and
//!   compaction of the tenant's keys) is timed right after each shred, by
//!   hand, not by criterion; the figures are printed on stderr (lines
//!   starting `reclaim`), with a summary of the raw shred times and their
//!   1M/1k ratio. With `SHRED_BENCH_VERBOSE=1` every iteration's shred
//!   and reclaim times are printed too.
//!
//! A shred is a few fsyncs of small files (the seals ledger, a keyring shard
//! and its folder), so its time is mostly the disk's sync latency: other I/O
//! on the machine (another test run, RocksDB's own background compactions)
//! shows up as outliers, in either function.
//!
//! Loading a million records takes seconds, so the group uses flat sampling,
//! 10 samples and a short target time: the 1M function runs 11 iterations
//! (one warm-up, one per sample), and criterion warns that it cannot finish
//! 10 samples in the target time. That warning is expected.

use std::path::Path;
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, SamplingMode, criterion_group, criterion_main};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use strongroom::{Db, Error, Options, ScopeState, ShredOptions, Tenant, TenantId, WriteBatch};

#[path = "common/keys.rs"]
mod keys;
use keys::random_key as key;

const VALUE_LEN: usize = 256;
/// Distinct values the puts cycle through.
const VALUE_POOL: usize = 256;
/// Keys per write batch while loading.
const LOAD_BATCH: u64 = 1_000;
const SMALL: u64 = 1_000;
const LARGE: u64 = 1_000_000;

/// Random values, generated once.
fn value_pool() -> Vec<Vec<u8>> {
    let mut rng = StdRng::seed_from_u64(0x5eed);
    (0..VALUE_POOL)
        .map(|_| {
            let mut v = vec![0u8; VALUE_LEN];
            rng.fill(&mut v[..]);
            v
        })
        .collect()
}

fn value(pool: &[Vec<u8>], n: u64) -> &[u8] {
    &pool[(n % pool.len() as u64) as usize]
}

/// Puts `records` records in `tenant`, in batches of [`LOAD_BATCH`].
fn load(tenant: Tenant<'_>, records: u64, pool: &[Vec<u8>]) {
    for start in (0..records).step_by(LOAD_BATCH as usize) {
        let mut batch = WriteBatch::new();
        for n in start..(start + LOAD_BATCH).min(records) {
            batch.put(key(n), value(pool, n));
        }
        tenant.write(batch).expect("load");
    }
}

/// Bytes of the files under `path` (files RocksDB removes meanwhile count
/// as empty).
fn dir_bytes(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_bytes(&e.path()),
            Ok(_) => e.metadata().map(|m| m.len()).unwrap_or(0),
            Err(_) => 0,
        })
        .sum()
}

/// What one function saw, besides criterion's own figures: every iteration's
/// shred and reclaim time (warm-up included), and the database's size before
/// the last shred and after its reclaim.
#[derive(Default)]
struct Seen {
    shred: Vec<Duration>,
    reclaim: Vec<Duration>,
    bytes_before: u64,
    bytes_after: u64,
}

/// One criterion function: shreds a freshly loaded tenant of `records`
/// records at each iteration, in a database of its own.
fn shred_function(
    group: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    records: u64,
    pool: &[Vec<u8>],
) -> Seen {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open(dir.path(), Options::with_key([7u8; 32])).expect("open");
    let mut next_tenant = 1u64;
    let mut seen = Seen::default();
    group.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let mut timed = Duration::ZERO;
            for _ in 0..iters {
                // Not timed: a new tenant, its records, a store flush.
                let id = TenantId(next_tenant);
                next_tenant += 1;
                let tenant = db.tenant(id);
                load(tenant, records, pool);
                db.flush().expect("flush");
                assert_eq!(
                    tenant.get(&key(records - 1)).expect("get").as_deref(),
                    Some(value(pool, records - 1))
                );
                seen.bytes_before = dir_bytes(dir.path());

                let start = Instant::now();
                let state = db
                    .shred_tenant(id, ShredOptions::immediate())
                    .expect("shred");
                let shred = start.elapsed();
                timed += shred;

                // The reclaim, timed by hand. Measurement caveat: the
                // engine's maintenance thread (every 200 ms) may pick up the
                // due shred itself. If it finished first, run_maintenance
                // returns at once (and the figure is too low); if it is
                // midway, both reclaim the same range at the same time (and
                // the figure is somewhere in between). Calling it right
                // after the shred makes either case rare.
                let start = Instant::now();
                db.run_maintenance().expect("maintenance");
                let reclaim = start.elapsed();

                assert_eq!(state, ScopeState::Shredded);
                assert!(matches!(tenant.get(&key(0)), Err(Error::Shredded { .. })));
                seen.bytes_after = dir_bytes(dir.path());
                if std::env::var_os("SHRED_BENCH_VERBOSE").is_some() {
                    eprintln!(
                        "{name} tenant {}: shred {shred:.2?} reclaim {reclaim:.2?}",
                        id.0
                    );
                }
                seen.shred.push(shred);
                seen.reclaim.push(reclaim);
            }
            timed
        })
    });
    db.close().expect("close");
    seen
}

fn median(samples: &[Duration]) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    sorted[sorted.len() / 2]
}

fn mean(samples: &[Duration]) -> Duration {
    samples.iter().sum::<Duration>() / samples.len() as u32
}

fn report(label: &str, seen: &Seen) {
    let range = |s: &[Duration]| {
        format!(
            "n={} min {:.2?} median {:.2?} mean {:.2?} max {:.2?}",
            s.len(),
            s.iter().min().expect("a sample"),
            median(s),
            mean(s),
            s.iter().max().expect("a sample"),
        )
    };
    if seen.shred.is_empty() {
        return;
    }
    eprintln!("shred   {label}: {}", range(&seen.shred));
    eprintln!("reclaim {label}: {}", range(&seen.reclaim));
    eprintln!(
        "space   {label}: database {:.1} MiB before the last shred, {:.1} MiB after its reclaim",
        seen.bytes_before as f64 / (1 << 20) as f64,
        seen.bytes_after as f64 / (1 << 20) as f64,
    );
}

fn shred_tenant(c: &mut Criterion) {
    let pool = value_pool();
    let mut group = c.benchmark_group("shred_tenant");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2));
    let small = shred_function(&mut group, "1k_records", SMALL, &pool);
    let large = shred_function(&mut group, "1m_records", LARGE, &pool);
    group.finish();

    eprintln!("\nRaw per-iteration figures (warm-up included), measured by hand:");
    report("1k_records", &small);
    report("1m_records", &large);
    // Both functions ran (no filter on the command line): their ratio.
    if !small.shred.is_empty() && !large.shred.is_empty() {
        eprintln!(
            "shred ratio 1m/1k: {:.2} (medians), {:.2} (means)",
            median(&large.shred).as_secs_f64() / median(&small.shred).as_secs_f64(),
            mean(&large.shred).as_secs_f64() / mean(&small.shred).as_secs_f64(),
        );
    }
}

criterion_group!(benches, shred_tenant);
criterion_main!(benches);
