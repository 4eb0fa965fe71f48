//! strongroom against raw RocksDB, measured in the same run: durable puts
//! from 8 threads and from 1 thread, and warm point gets.
//!
//! Run it (always with this target folder: any other one rebuilds RocksDB):
//!
//! ```sh
//! CARGO_TARGET_DIR=$HOME/.cache/strongroom/target cargo bench --bench engine
//! ```
//!
//! For a quick look (fewer samples, rougher figures), criterion's own flag:
//!
//! ```sh
//! CARGO_TARGET_DIR=$HOME/.cache/strongroom/target cargo bench --bench engine -- --quick
//! ```
//!
//! Each group has a `strongroom` and a `rocksdb` function, printed side by
//! side, in operations per second (`Throughput::Elements(1)`).
//!
//! - strongroom: `Options::with_key`, default durability (a put returns after
//!   its log frame is fdatasynced; concurrent writers share one sync).
//! - rocksdb: its WAL on, `WriteOptions::set_sync(true)` (RocksDB batches
//!   concurrent writers into one WAL sync itself). Its table options mirror
//!   strongroom's store (64 MiB block cache, bloom filters, no compression),
//!   so the ratio shows what strongroom's own log and sealing cost.
//!
//! Keys are 16 bytes, values 256 random bytes (below strongroom's
//! compression threshold, so nothing is compressed on either side).

use std::hint::black_box;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use strongroom::{Db, Options, Tenant, TenantId, WriteBatch};

const VALUE_LEN: usize = 256;
/// Distinct values the puts cycle through.
const VALUE_POOL: usize = 256;
/// Keys loaded before the get group.
const GET_KEYS: u64 = 100_000;
/// Keys per write batch while loading.
const LOAD_BATCH: u64 = 1_000;

/// The `n`th key: 16 distinct, random-looking bytes.
fn key(n: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&splitmix64(n).to_be_bytes());
    k[8..].copy_from_slice(&n.to_be_bytes());
    k
}

fn splitmix64(n: u64) -> u64 {
    let mut z = n.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

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

fn open_strongroom(dir: &Path) -> Db {
    Db::open(dir, Options::with_key([7u8; 32])).expect("open strongroom")
}

/// Raw RocksDB set up like strongroom's store, but with its WAL on.
fn open_rocksdb(dir: &Path) -> rocksdb::DB {
    let mut table = rocksdb::BlockBasedOptions::default();
    table.set_block_cache(&rocksdb::Cache::new_lru_cache(64 << 20));
    table.set_bloom_filter(10.0, false);
    table.set_cache_index_and_filter_blocks(true);
    let mut options = rocksdb::Options::default();
    options.create_if_missing(true);
    options.set_block_based_table_factory(&table);
    options.set_compression_type(rocksdb::DBCompressionType::None);
    options.increase_parallelism(2);
    rocksdb::DB::open(&options, dir).expect("open rocksdb")
}

fn sync_write_options() -> rocksdb::WriteOptions {
    let mut w = rocksdb::WriteOptions::default();
    w.set_sync(true);
    w.disable_wal(false);
    w
}

/// Runs `iters` operations spread over `threads` threads, `op(n)` for
/// distinct `n` drawn from `next`, and returns the wall time of the lot.
fn run_threads<F>(iters: u64, threads: u64, next: &AtomicU64, op: F) -> Duration
where
    F: Fn(u64) + Sync,
{
    let base = next.fetch_add(iters, Ordering::Relaxed);
    let per = iters / threads;
    let extra = iters % threads;
    let op = &op;
    let start = Instant::now();
    std::thread::scope(|s| {
        let mut from = base;
        for t in 0..threads {
            let count = per + u64::from(t < extra);
            let first = from;
            from += count;
            if count == 0 {
                continue;
            }
            s.spawn(move || {
                for n in first..first + count {
                    op(n);
                }
            });
        }
    });
    start.elapsed()
}

fn durable_group<'c>(c: &'c mut Criterion, name: &str) -> BenchmarkGroup<'c, WallTime> {
    let mut group = c.benchmark_group(name);
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(5))
        .warm_up_time(Duration::from_secs(1))
        .throughput(Throughput::Elements(1));
    group
}

fn durable_put(c: &mut Criterion, name: &str, threads: u64) {
    let pool = value_pool();
    let mut group = durable_group(c, name);

    {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = open_strongroom(dir.path());
        let tenant = db.tenant(TenantId(1));
        // The tenant's key is created by its first write: not measured.
        tenant.put(b"first", b"write").expect("put");
        let next = AtomicU64::new(0);
        group.bench_function("strongroom", |b| {
            b.iter_custom(|iters| {
                run_threads(iters, threads, &next, |n| {
                    tenant
                        .put(&key(n), value(&pool, n))
                        .expect("strongroom put");
                })
            })
        });
        drop(db);
    }

    {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = open_rocksdb(dir.path());
        let write = sync_write_options();
        let next = AtomicU64::new(0);
        group.bench_function("rocksdb", |b| {
            b.iter_custom(|iters| {
                run_threads(iters, threads, &next, |n| {
                    db.put_opt(key(n), value(&pool, n), &write)
                        .expect("rocksdb put");
                })
            })
        });
        drop(db);
    }

    group.finish();
}

fn durable_put_8_threads(c: &mut Criterion) {
    durable_put(c, "durable_put_8_threads", 8);
}

fn durable_put_1_thread(c: &mut Criterion) {
    durable_put(c, "durable_put_1_thread", 1);
}

fn load_strongroom(tenant: Tenant<'_>, pool: &[Vec<u8>]) {
    for start in (0..GET_KEYS).step_by(LOAD_BATCH as usize) {
        let mut batch = WriteBatch::new();
        for n in start..(start + LOAD_BATCH).min(GET_KEYS) {
            batch.put(key(n), value(pool, n));
        }
        tenant.write(batch).expect("strongroom load");
    }
}

fn load_rocksdb(db: &rocksdb::DB, pool: &[Vec<u8>]) {
    let write = sync_write_options();
    for start in (0..GET_KEYS).step_by(LOAD_BATCH as usize) {
        let mut batch = rocksdb::WriteBatch::default();
        for n in start..(start + LOAD_BATCH).min(GET_KEYS) {
            batch.put(key(n), value(pool, n));
        }
        db.write_opt(batch, &write).expect("rocksdb load");
    }
}

/// Random point gets of loaded keys, one thread. Both stores are flushed
/// after loading, so gets read SST files through the block cache (warm after
/// criterion's warm-up).
fn get(c: &mut Criterion) {
    let pool = value_pool();
    let mut group = c.benchmark_group("get");
    group.throughput(Throughput::Elements(1));

    {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = open_strongroom(dir.path());
        let tenant = db.tenant(TenantId(1));
        load_strongroom(tenant, &pool);
        db.flush().expect("strongroom flush");
        for n in [0, GET_KEYS / 2, GET_KEYS - 1] {
            let got = tenant.get(&key(n)).expect("get");
            assert_eq!(got.as_deref(), Some(value(&pool, n)));
        }
        let mut rng = StdRng::seed_from_u64(1);
        group.bench_function("strongroom", |b| {
            b.iter(|| {
                let n = rng.random_range(0..GET_KEYS);
                black_box(tenant.get(&key(n)).expect("strongroom get"))
            })
        });
        drop(db);
    }

    {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = open_rocksdb(dir.path());
        load_rocksdb(&db, &pool);
        db.flush().expect("rocksdb flush");
        for n in [0, GET_KEYS / 2, GET_KEYS - 1] {
            let got = db.get(key(n)).expect("get");
            assert_eq!(got.as_deref(), Some(value(&pool, n)));
        }
        let mut rng = StdRng::seed_from_u64(1);
        group.bench_function("rocksdb", |b| {
            b.iter(|| {
                let n = rng.random_range(0..GET_KEYS);
                black_box(db.get(key(n)).expect("rocksdb get"))
            })
        });
        drop(db);
    }

    group.finish();
}

criterion_group!(benches, durable_put_8_threads, durable_put_1_thread, get);
criterion_main!(benches);
