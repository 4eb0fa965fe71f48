//! A sustained load by memtable size: buffered puts of random keys into
//! strongroom for a long window, with the store's memtables at each size
//! asked for, so that flushes and compactions have time to fall behind.
//! Per slice of the window: puts/s, level-0 files and the compaction debt
//! RocksDB estimates; at its end, the time RocksDB stalled writes and why,
//! the store's size, and point reads of keys written.
//!
//! ```sh
//! CARGO_TARGET_DIR=$HOME/.cache/strongroom/target cargo bench --bench load -- \
//!     [--mib 64,16] [--values 256,4096] [--secs 60] [--slices 6]
//! ```
//!
//! Sizes are measured one after the other, so each figure depends on the
//! disk during its own window; compare sizes by their ratios, and repeat.

use std::time::{Duration, Instant};

use strongroom::{Db, Durability, Options, TenantId};

#[path = "common/keys.rs"]
mod keys;
use keys::{random_key, splitmix64};

const TENANTS: u64 = 8;
const READS: Duration = Duration::from_secs(5);

struct Config {
    mib: Vec<usize>,
    values: Vec<usize>,
    secs: u64,
    slices: u32,
}

fn list(arg: Option<String>, what: &str) -> Vec<usize> {
    arg.expect(what)
        .split(',')
        .map(|n| n.parse().expect(what))
        .collect()
}

fn config() -> Config {
    let mut config = Config {
        mib: vec![64, 32, 16],
        values: vec![256, 4096],
        secs: 60,
        slices: 6,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--mib" => config.mib = list(args.next(), "--mib 64,16"),
            "--values" => config.values = list(args.next(), "--values 256,4096"),
            "--secs" => config.secs = list(args.next(), "--secs N")[0] as u64,
            "--slices" => config.slices = list(args.next(), "--slices N")[0] as u32,
            _ => {} // cargo bench passes --bench
        }
    }
    config
}

/// Incompressible values of one size (compression would shrink a repeated
/// pattern above the threshold).
fn values(size: usize) -> Vec<Vec<u8>> {
    (0..64u64)
        .map(|v| {
            (0..size.div_ceil(8) as u64)
                .flat_map(|i| splitmix64(v << 32 | i).to_le_bytes())
                .take(size)
                .collect()
        })
        .collect()
}

fn property(db: &Db, name: &str) -> u64 {
    db.store_property(name)
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// The line of RocksDB's stats that starts with `prefix`, shortened.
fn stats_line(db: &Db, prefix: &str) -> String {
    db.store_property("rocksdb.stats")
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(prefix))
                .map(|l| l.trim().to_string())
        })
        .unwrap_or_default()
}

fn main() {
    let config = config();
    println!(
        "# sustained buffered puts, random keys, {} s per memtable size",
        config.secs
    );
    for &size in &config.values {
        let values = values(size);
        for &mib in &config.mib {
            let dir = tempfile::tempdir().expect("tempdir");
            let options = Options::with_key([7; 32])
                .durability(Durability::SyncInterval(Duration::from_millis(100)))
                .memtable_bytes(mib << 20);
            let db = Db::open(dir.path(), options).expect("open");
            let tenants: Vec<_> = (0..TENANTS).map(|t| db.tenant(TenantId(t))).collect();
            println!("\n## value {size} B, memtable {mib} MiB");
            println!("| slice | puts/s | level-0 files | compaction debt |");
            println!("|--:|--:|--:|--:|");
            let slice = Duration::from_secs(config.secs) / config.slices;
            let start = Instant::now();
            let mut n = 0u64;
            for s in 1..=config.slices {
                let (slice_start, first) = (Instant::now(), n);
                while start.elapsed() < slice * s {
                    for _ in 0..100 {
                        let tenant = &tenants[(n % TENANTS) as usize];
                        let value = &values[(n % values.len() as u64) as usize];
                        tenant.put(&random_key(n), value).expect("put");
                        n += 1;
                    }
                }
                println!(
                    "| {s} | {:.0} | {} | {} MiB |",
                    (n - first) as f64 / slice_start.elapsed().as_secs_f64(),
                    property(&db, "rocksdb.num-files-at-level0"),
                    property(&db, "rocksdb.estimate-pending-compaction-bytes") >> 20,
                );
            }
            println!(
                "whole window: {:.0} puts/s, {n} records",
                n as f64 / start.elapsed().as_secs_f64()
            );
            println!("{}", stats_line(&db, "Cumulative stall"));
            // Which limit stalled them: level-0 files, or memtables
            // waiting for their flush.
            println!("{}", stats_line(&db, "Write Stall (count): cf-"));
            println!(
                "live table files: {} MiB",
                property(&db, "rocksdb.live-sst-files-size") >> 20
            );
            let (reads_start, mut reads, mut i) = (Instant::now(), 0u64, 0u64);
            while n > 0 && reads_start.elapsed() < READS {
                for _ in 0..100 {
                    let m = splitmix64(i) % n;
                    let got = tenants[(m % TENANTS) as usize]
                        .get(&random_key(m))
                        .expect("get");
                    assert!(got.is_some(), "record {m} was written");
                    reads += 1;
                    i += 1;
                }
            }
            println!(
                "point reads right after: {:.0}/s",
                reads as f64 / reads_start.elapsed().as_secs_f64()
            );
        }
    }
}
