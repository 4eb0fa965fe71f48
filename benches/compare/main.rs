//! The side-by-side comparison: the same workloads on strongroom, raw
//! RocksDB and SQLCipher, in one run, and the physical limits of the machine
//! they ran on. See docs/PERFORMANCE.md for what each figure means.
//!
//! ```sh
//! bash tools/run bench --quick       # a few minutes on 2 cores
//! bash tools/run bench --runs 3      # the full run, median of 3
//! ```
//!
//! which is `cargo bench --bench compare -- [--quick] [--runs N] [--dir PARENT]
//! [--only durable1,read,..]` with the shared release target folder.

mod config;
mod engines;
#[path = "../common/keys.rs"]
mod keys;
mod limits;
mod report;
mod workload;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use rand::Rng;

use config::{
    BUFFERED_SYNC_INTERVAL, CACHE_BYTES, Config, DURABLE_THREADS_MANY, LOAD_BATCH, MIXED_THREADS,
    MIXED_WRITE_PERCENT, SCAN_RECORDS, VALUE_LENS,
};
use engines::{Durability, Engine, Kind};
use report::{Results, latency, ops, size};
use workload::{Measurement, Values, key, run_timed, sequential_key};

/// The workloads, in table order: (index, `--only` name, table name).
const WORKLOADS: [(usize, &str, &str); 7] = [
    (DURABLE_1, "durable1", "durable write, 1 thread"),
    (DURABLE_8, "durable8", "durable write, 8 threads"),
    (BUFFERED, "buffered", "buffered write, 1 thread"),
    (
        BUFFERED_SEQ,
        "sequential",
        "buffered write, sequential keys, 1 thread",
    ),
    (READ, "read", "point read (warm), 1 thread"),
    (SCAN, "scan", "tenant scan (records/s; latency per scan)"),
    (MIXED, "mixed", "mixed 90/10 (durable), 4 threads"),
];
// Each is its row's position in WORKLOADS (checked below).
const DURABLE_1: usize = 0;
const DURABLE_8: usize = 1;
const BUFFERED: usize = 2;
const BUFFERED_SEQ: usize = 3;
const READ: usize = 4;
const SCAN: usize = 5;
const MIXED: usize = 6;
const _: () = {
    let mut i = 0;
    while i < WORKLOADS.len() {
        assert!(WORKLOADS[i].0 == i, "WORKLOADS is indexed by its constants");
        i += 1;
    }
};

/// Tenant of the written and point-read keys.
const DATA_TENANT: u32 = 1;
/// Tenant that is scanned.
const SCAN_TENANT: u32 = 2;

fn main() {
    let config = Config::from_args();
    let started = Instant::now();
    std::fs::create_dir_all(&config.parent).expect("create the parent folder");
    print_header(&config);
    let mut results = Results::default();
    let mut probes = limits::Probes::default();
    for run in 1..=config.runs {
        println!("## run {run} of {}", config.runs);
        probes.measure_cpu(&config);
        for len in VALUE_LENS {
            run_size(&config, len, &mut results, &mut probes);
        }
        println!();
    }
    println!(
        "## Results: median of {} run(s){}\n",
        config.runs,
        if config.quick { ", quick mode" } else { "" }
    );
    let table: Vec<(usize, &str)> = WORKLOADS.iter().map(|&(i, _, name)| (i, name)).collect();
    report::print_table(&results, &table, &VALUE_LENS);
    println!();
    probes.print(&config, &results);
    print_footnotes(&config);
    println!("\ntotal time: {:.0} s", started.elapsed().as_secs_f64());
}

fn print_header(config: &Config) {
    let probe_dir = tempfile::tempdir_in(&config.parent).expect("tempdir");
    let cipher = engines::cipher_version(probe_dir.path());
    println!("# strongroom vs RocksDB vs SQLCipher");
    println!(
        "mode: {}; runs: {}; window per cell: {:.1} s after {:.1} s of warm-up",
        if config.quick { "quick" } else { "full" },
        config.runs,
        config.measure.as_secs_f64(),
        config.warmup.as_secs_f64()
    );
    println!(
        "data directories under {} on {}",
        config.parent.display(),
        limits::probe::file_system_of(&config.parent)
    );
    println!(
        "cores: {}; SQLCipher {cipher}",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "cache per engine: {} MiB; strongroom's: {} MiB scan cache (off by default in the \
         library; --scan-cache-mib 0 for its default), {} MiB block cache",
        CACHE_BYTES >> 20,
        config.scan_cache_bytes >> 20,
        (CACHE_BYTES - config.scan_cache_bytes) >> 20
    );
    for len in VALUE_LENS {
        println!(
            "read data set, {} values: {} keys in tenant {DATA_TENANT}, {SCAN_RECORDS} in tenant {SCAN_TENANT}{}",
            size(len),
            config.read_keys(len),
            if config.read_keys(len) < 1_000_000 {
                " (quick mode: smaller than the 1M of the full run, to load in seconds)"
            } else {
                ""
            }
        );
    }
    println!();
}

/// Every workload of one value size, engines side by side for each.
fn run_size(config: &Config, len: usize, results: &mut Results, probes: &mut limits::Probes) {
    let values = Values::new(len);
    let write_workloads = [
        (DURABLE_1, 1, Durability::Durable),
        (DURABLE_8, DURABLE_THREADS_MANY, Durability::Durable),
        (BUFFERED, 1, Durability::Buffered),
        (BUFFERED_SEQ, 1, Durability::Buffered),
    ];
    for (w, threads, durability) in write_workloads {
        let key = if w == BUFFERED_SEQ {
            sequential_key
        } else {
            key
        };
        if !config.runs_workload(WORKLOADS[w].1) {
            continue;
        }
        if durability == Durability::Durable {
            probes.measure_fsync(config, w, len);
        }
        for kind in Kind::ALL {
            let dir = tempfile::tempdir_in(&config.parent).expect("tempdir");
            let engine = engines::open(kind, dir.path(), durability, config.scan_cache_bytes);
            let next = AtomicU64::new(0);
            let m = run_timed(
                threads,
                config.warmup,
                config.measure,
                || engine.session(),
                |s, _| {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    s.put(DATA_TENANT, &key(DATA_TENANT, n), values.get(n));
                    1
                },
            );
            record(results, w, len, kind, m);
        }
    }
    if ![READ, SCAN, MIXED]
        .iter()
        .any(|&w| config.runs_workload(WORKLOADS[w].1))
    {
        return;
    }
    let keys = config.read_keys(len);
    let loaded: Vec<_> = Kind::ALL
        .iter()
        .map(|&kind| {
            let dir = tempfile::tempdir_in(&config.parent).expect("tempdir");
            let engine = engines::open(
                kind,
                dir.path(),
                Durability::Durable,
                config.scan_cache_bytes,
            );
            let ns_per_record = load(&*engine, &values, keys);
            probes.add_load(len, kind, ns_per_record);
            println!(
                "  load {:>10} {:>6}: {} records in batches of {LOAD_BATCH}, {} per record",
                kind.name(),
                size(len),
                keys,
                latency(ns_per_record)
            );
            (kind, dir, engine)
        })
        .collect();
    for (kind, _, engine) in &loaded {
        read_workloads(config, len, *kind, &**engine, keys, results);
    }
    if config.runs_workload(WORKLOADS[MIXED].1) {
        probes.measure_fsync(config, MIXED, len);
        for (kind, _, engine) in &loaded {
            mixed(config, len, *kind, &**engine, &values, keys, results);
        }
    }
}

fn record(results: &mut Results, w: usize, len: usize, kind: Kind, m: Measurement) {
    println!(
        "  {:<42} {:>6} {:>10}: {:>12} ops/s  p50 {:>9}  p99 {:>9}",
        WORKLOADS[w].2,
        size(len),
        kind.name(),
        ops(m.ops_per_sec),
        latency(m.p50_ns),
        latency(m.p99_ns)
    );
    results.add(w, len, kind, m);
}

/// Loads the read data set; returns the load's nanoseconds per record of
/// the data tenant. Checks a few records afterwards.
fn load(engine: &dyn Engine, values: &Values, keys: u64) -> f64 {
    let mut session = engine.session();
    let mut put_all = |tenant: u32, count: u64| {
        let mut batch = Vec::with_capacity(LOAD_BATCH);
        for n in 0..count {
            batch.push((key(tenant, n), values.get(n)));
            if batch.len() == LOAD_BATCH || n + 1 == count {
                session.put_batch(tenant, &batch);
                batch.clear();
            }
        }
    };
    let start = Instant::now();
    put_all(DATA_TENANT, keys);
    let ns_per_record = start.elapsed().as_nanos() as f64 / keys as f64;
    put_all(SCAN_TENANT, SCAN_RECORDS);
    engine.settle();
    for n in [0, keys / 2, keys - 1] {
        let got = session.get(DATA_TENANT, &key(DATA_TENANT, n));
        assert_eq!(got.as_deref(), Some(values.get(n)), "record {n} after load");
    }
    assert_eq!(session.get(DATA_TENANT, &key(DATA_TENANT, keys)), None);
    ns_per_record
}

/// Point reads and the tenant scan on one loaded engine.
fn read_workloads(
    config: &Config,
    len: usize,
    kind: Kind,
    engine: &dyn Engine,
    keys: u64,
    results: &mut Results,
) {
    let session = || engine.session();
    if config.runs_workload(WORKLOADS[READ].1) {
        let m = run_timed(1, config.warmup, config.measure, session, |s, rng| {
            let n = rng.random_range(0..keys);
            let value = s.get(DATA_TENANT, &key(DATA_TENANT, n));
            assert_eq!(value.map(|v| v.len()), Some(len));
            1
        });
        record(results, READ, len, kind, m);
    }
    if config.runs_workload(WORKLOADS[SCAN].1) {
        let m = run_timed(1, config.warmup, config.measure, session, |s, _| {
            let (records, bytes) = s.scan(SCAN_TENANT);
            assert_eq!((records, bytes), (SCAN_RECORDS, SCAN_RECORDS * len as u64));
            records
        });
        record(results, SCAN, len, kind, m);
    }
}

/// The mixed workload (it overwrites records, so it runs last).
fn mixed(
    config: &Config,
    len: usize,
    kind: Kind,
    engine: &dyn Engine,
    values: &Values,
    keys: u64,
    results: &mut Results,
) {
    let session = || engine.session();
    let m = run_timed(
        MIXED_THREADS,
        config.warmup,
        config.measure,
        session,
        |s, rng| {
            let n = rng.random_range(0..keys);
            let k = key(DATA_TENANT, n);
            if rng.random_range(0..100) < MIXED_WRITE_PERCENT {
                s.put(DATA_TENANT, &k, values.get(rng.random()));
            } else {
                let value = s.get(DATA_TENANT, &k);
                assert_eq!(value.map(|v| v.len()), Some(len));
            }
            1
        },
    );
    record(results, MIXED, len, kind, m);
}

fn print_footnotes(config: &Config) {
    println!("## Notes");
    println!(
        "- Keys are 16 bytes (the tenant's 4 bytes first, then random-looking bytes; for the \
         sequential-key workload, a counter); values are random, so incompressible."
    );
    println!(
        "- durable: strongroom SyncEveryCommit; RocksDB WAL on, sync=true; SQLCipher WAL \
         journal, synchronous=FULL. buffered: strongroom SyncInterval({} ms); RocksDB sync=false; \
         SQLCipher synchronous=NORMAL. Each write workload starts on an empty database; writes \
         insert new keys, one put per call (autocommit for SQLCipher, a connection per thread).",
        BUFFERED_SYNC_INTERVAL.as_millis()
    );
    println!(
        "- Reads, scans and the mixed workload run on the loaded data set, flushed with compactions settled (RocksDB, strongroom) or \
         checkpointed (SQLCipher), its files in the OS page cache; each engine has {} MiB of \
         cache (RocksDB: block cache; SQLCipher: page cache, per connection; strongroom: {} MiB \
         of scan cache, opened records of scopes scanned whole, and the rest block cache). \
         Point reads pick \
         uniformly random keys of tenant {DATA_TENANT}; a scan reads all {SCAN_RECORDS} records \
         of tenant {SCAN_TENANT} (strongroom: the tenant scope; RocksDB: a prefix iterator; \
         SQLCipher: SELECT over the tenant's key range). The mixed workload overwrites random \
         existing keys durably ({MIXED_WRITE_PERCENT}% of calls) and reads random keys.",
        CACHE_BYTES >> 20,
        config.scan_cache_bytes >> 20
    );
    println!(
        "- p50 and p99 are per call; ops/s count calls completed in a {:.0} s window; with \
         --runs N each figure is the median of N runs taken on its own.",
        config.measure.as_secs_f64()
    );
}
