//! The command line and what each mode runs.

use std::path::PathBuf;
use std::time::Duration;

/// The value sizes every workload runs with.
pub const VALUE_LENS: [usize; 2] = [256, 4096];
/// Records in the scanned tenant (tenant 2 of the read data set).
pub const SCAN_RECORDS: u64 = 10_000;
/// Records per write batch (or transaction) while loading a data set.
pub const LOAD_BATCH: usize = 1_000;
/// Writer threads of the group-commit workload.
pub const DURABLE_THREADS_MANY: usize = 8;
/// Threads of the mixed workload.
pub const MIXED_THREADS: usize = 4;
/// Percentage of writes in the mixed workload.
pub const MIXED_WRITE_PERCENT: u32 = 10;
/// strongroom's buffered mode syncs its log this often (as Redis's
/// `appendfsync everysec`).
pub const BUFFERED_SYNC_INTERVAL: Duration = Duration::from_secs(1);
/// Block cache of both RocksDBs, and page cache of each SQLCipher
/// connection: one memory budget for all.
pub const CACHE_BYTES: usize = 64 << 20;
/// Of strongroom's share of that budget, its scan cache by default (the
/// rest is its block cache): enough for the scanned tenant at 4 KiB (about
/// 43 MB opened).
pub const SCAN_CACHE_BYTES_DEFAULT: usize = 48 << 20;

/// How long and how large one run is.
#[derive(Debug, Clone)]
pub struct Config {
    /// `--quick`.
    pub quick: bool,
    /// `--runs N`: the table reports the median of N runs per cell.
    pub runs: usize,
    /// `--dir PATH`: the parent of every engine's data directory.
    pub parent: PathBuf,
    /// `--only a,b`: run only the workloads whose name contains one of these.
    pub only: Vec<String>,
    /// Unmeasured time before each cell's window.
    pub warmup: Duration,
    /// Measured window of each cell.
    pub measure: Duration,
    /// How long each physical-limit probe runs.
    pub probe: Duration,
    /// `--scan-cache-mib N`: strongroom's scan cache, taken from its share
    /// of [`CACHE_BYTES`] (0: off, the whole share its block cache).
    pub scan_cache_bytes: usize,
}

impl Config {
    /// Keys of tenant 1 in the read data set, per value size.
    pub fn read_keys(&self, value_len: usize) -> u64 {
        match (self.quick, value_len) {
            (false, _) => 1_000_000,
            (true, 256) => 1_000_000,
            (true, _) => 100_000,
        }
    }

    /// Whether the workload named `name` runs.
    pub fn runs_workload(&self, name: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|o| name.contains(o.as_str()))
    }

    /// Parses the arguments after `cargo bench --bench compare --`.
    pub fn from_args() -> Config {
        let mut quick = false;
        let mut runs = 1;
        let mut parent = std::env::temp_dir();
        let mut only = Vec::new();
        let mut scan_cache_bytes = SCAN_CACHE_BYTES_DEFAULT;
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--quick" => quick = true,
                "--runs" => runs = number(args.next(), "--runs").max(1),
                "--scan-cache-mib" => {
                    scan_cache_bytes =
                        // At least 8 MiB stay the block cache.
                        number(args.next(), "--scan-cache-mib")
                            .saturating_mul(1 << 20)
                            .min(CACHE_BYTES - (8 << 20))
                }
                "--dir" => parent = PathBuf::from(args.next().unwrap_or_else(|| usage())),
                "--only" => {
                    let list = args.next().unwrap_or_else(|| usage());
                    only = list.split(',').map(str::to_string).collect();
                }
                // cargo bench passes this to every bench binary.
                "--bench" => {}
                "--help" | "-h" => {
                    print_usage();
                    std::process::exit(0)
                }
                other => {
                    eprintln!("unknown argument {other:?}");
                    usage()
                }
            }
        }
        let (warmup, measure, probe) = if quick {
            (
                Duration::from_millis(500),
                Duration::from_secs(2),
                Duration::from_secs(1),
            )
        } else {
            (
                Duration::from_secs(2),
                Duration::from_secs(10),
                Duration::from_secs(3),
            )
        };
        Config {
            quick,
            runs,
            parent,
            only,
            warmup,
            measure,
            probe,
            scan_cache_bytes,
        }
    }
}

fn number(arg: Option<String>, flag: &str) -> usize {
    arg.and_then(|a| a.parse().ok()).unwrap_or_else(|| {
        eprintln!("{flag} needs a number");
        usage()
    })
}

fn print_usage() {
    eprintln!(
        "usage: cargo bench --bench compare -- [--quick] [--runs N] [--dir PARENT] \
         [--only WORKLOAD,..] [--scan-cache-mib N]\n\
         workloads: durable1, durable8, buffered, sequential, read, scan, mixed (none: the limits only)"
    );
}

fn usage() -> ! {
    print_usage();
    std::process::exit(2)
}
