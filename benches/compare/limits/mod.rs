//! The physical limits, measured in each run, and the fraction of its limit
//! that each strongroom workload reaches.
//!
//! The disk's fdatasync latency drifts on a shared machine (from 0.2 ms to
//! 4 ms within minutes here), so it is probed right before each cell that
//! waits for it, and each run's fraction pairs that run's cell with that
//! run's probes; the table reports the medians of those per-run figures.
//!
//! The models (printed with the table). "Seal" below is a put's write
//! crypto: the AEAD seal, the token and the one-record frame's MAC (keyed
//! BLAKE3); "open" is a point read's read crypto: the token and the AEAD
//! open (a scan's open is the AEAD open alone: it computes no token).
//!
//! - durable, 1 thread: one commit is a seal, then an fdatasync of about one
//!   4 KiB write: `1 / (fsync(4 KiB) + seal)`, with the probe's mean fsync
//!   (a rate is bounded by the mean, not the median). The probe writes over
//!   synced zeros, the cheapest durable write the file system has (see
//!   `probe::fdatasync_latency`).
//! - durable, 8 threads: ideal group commit, every sync carrying all eight
//!   writers' records: `8 / (fsync(8 records) + 8 × seal / cores)` (the
//!   eight seals run on the cores in parallel).
//! - buffered: the CPU: a seal plus what raw RocksDB's buffered put costs in
//!   the same run (its WAL `write()` stands for our log's, its memtable
//!   insert for our store's): `1 / (seal + 1 / RocksDB ops/s)`.
//! - point read: `1 / (open + 1 / RocksDB reads/s)`: the least strongroom
//!   can do is RocksDB's get of the sealed record, then open it.
//! - buffered, sequential keys: the same, with RocksDB's put of sequential
//!   keys (strongroom's tokens scatter them all the same).
//! - scan: the decrypt limit, `cores / open`: every core opening records
//!   (the scan reads ahead on all of them), reading the store for free.
//! - mixed: each of the 4 threads does 90% reads at the read limit's cost
//!   and 10% durable writes at the 1-thread durable cost (a writer waits a
//!   whole fsync whoever shares it), capped by what the cores can do of the
//!   reads and seals.

pub mod probe;

use std::collections::BTreeMap;

use crate::config::{Config, DURABLE_THREADS_MANY, MIXED_THREADS, MIXED_WRITE_PERCENT, VALUE_LENS};
use crate::engines::Kind;
use crate::report::{Results, latency, median, ops, size};
use crate::{BUFFERED, BUFFERED_SEQ, DURABLE_1, DURABLE_8, MIXED, READ, SCAN, WORKLOADS};
use probe::{
    AeadCost, Fsync, HashCost, MAC_INPUT_BEYOND_VALUE, aead_cost, fdatasync_latency, hash_cost,
    zstd_attempt_ns,
};
use strongroom::format::{COMPRESSION_THRESHOLD_DEFAULT, ZSTD_LEVEL};

/// The bytes of one record's log frame beyond its value (key, record and
/// entry headers, nonce, tag, frame header): about 128.
const FRAME_OVERHEAD: usize = 128;

/// Every probe of every run, in run order.
#[derive(Default)]
pub struct Probes {
    aead: BTreeMap<usize, Vec<AeadCost>>,
    hash: BTreeMap<usize, Vec<HashCost>>,
    /// strongroom's zstd attempt, for the value sizes over its threshold.
    zstd_ns: BTreeMap<usize, Vec<f64>>,
    /// The fdatasync probes taken right before a (workload, value size):
    /// (cores idle, cores awake).
    fsync: BTreeMap<(usize, usize), Vec<(Fsync, Fsync)>>,
    /// Load cost per record, by (value size, engine).
    load_ns: BTreeMap<(usize, &'static str), Vec<f64>>,
}

/// Which of a pair of fdatasync probes.
#[derive(Clone, Copy)]
enum FsyncPick {
    Idle,
    Awake,
}

impl FsyncPick {
    fn of(self, pair: &(Fsync, Fsync)) -> &Fsync {
        match self {
            FsyncPick::Idle => &pair.0,
            FsyncPick::Awake => &pair.1,
        }
    }
}

/// One figure of an AEAD probe.
type Figure = fn(&AeadCost) -> f64;

fn cores() -> f64 {
    std::thread::available_parallelism().map_or(1, |n| n.get()) as f64
}

impl Probes {
    /// The CPU probes of one run.
    pub fn measure_cpu(&mut self, config: &Config) {
        for len in VALUE_LENS {
            let cost = aead_cost(len, config.probe);
            self.aead.entry(len).or_default().push(cost);
            let hash = hash_cost(len, config.probe);
            self.hash.entry(len).or_default().push(hash);
            if len + 4 + 16 > COMPRESSION_THRESHOLD_DEFAULT {
                let ns = zstd_attempt_ns(len, config.probe);
                self.zstd_ns.entry(len).or_default().push(ns);
            }
        }
    }

    /// Probes the disk right before workload `w` runs with values of `len`.
    pub fn measure_fsync(&mut self, config: &Config, w: usize, len: usize) {
        let bytes = if w == DURABLE_8 {
            (DURABLE_THREADS_MANY * (len + FRAME_OVERHEAD)).max(4096)
        } else {
            4096
        };
        let dir = tempfile::tempdir_in(&config.parent).expect("tempdir");
        let idle = fdatasync_latency(dir.path(), bytes, config.probe, false);
        let awake = fdatasync_latency(dir.path(), bytes, config.probe, true);
        for (name, f) in [("idle", idle), ("awake", awake)] {
            println!(
                "  fdatasync after a {bytes} B write over zeros, cores {name}: p50 {}, p99 {}, mean {}",
                latency(f.p50_ns),
                latency(f.p99_ns),
                latency(f.mean_ns)
            );
        }
        self.fsync.entry((w, len)).or_default().push((idle, awake));
    }

    pub fn add_load(&mut self, len: usize, kind: Kind, ns_per_record: f64) {
        self.load_ns
            .entry((len, kind.name()))
            .or_default()
            .push(ns_per_record);
    }

    fn aead(&self, len: usize, figure: Figure) -> f64 {
        median(self.aead[&len].iter().map(figure))
    }

    /// The limits section: the probes, then each workload's fraction.
    pub fn print(&self, config: &Config, results: &Results) {
        println!("## Physical limits (median of {} run(s))\n", config.runs);
        self.print_aead();
        println!("| fdatasync probe, taken before | value | write | cores | p50 | p99 | mean |");
        println!("|---|---|--:|---|--:|--:|--:|");
        for (&(w, len), runs) in &self.fsync {
            for (name, pick) in [("idle", FsyncPick::Idle), ("awake", FsyncPick::Awake)] {
                let figure = |f: fn(&Fsync) -> f64| {
                    latency(median(runs.iter().map(|pair| f(pick.of(pair)))))
                };
                println!(
                    "| {} | {} | {} B | {name} | {} | {} | {} |",
                    WORKLOADS[w].2,
                    size(len),
                    runs[0].0.write_bytes,
                    figure(|f| f.p50_ns),
                    figure(|f| f.p99_ns),
                    figure(|f| f.mean_ns)
                );
            }
        }
        println!(
            "\n(idle: the probe alone; awake: a thread spinning on each other core meanwhile. \
             The limits take the lower mean of the two.)\n"
        );
        println!(
            "\n| value | load per record (1,000-record durable batches) | strongroom | RocksDB \
             | SQLCipher | strongroom − RocksDB |"
        );
        println!("|---|---|--:|--:|--:|--:|");
        for len in VALUE_LENS {
            let load = |kind: Kind| {
                self.load_ns
                    .get(&(len, kind.name()))
                    .map_or(f64::NAN, |v| median(v.iter().copied()))
            };
            let (s, r, q) = (
                load(Kind::Strongroom),
                load(Kind::RocksDb),
                load(Kind::SqlCipher),
            );
            println!(
                "| {} | | {} | {} | {} | {} |",
                size(len),
                latency(s),
                latency(r),
                latency(q),
                latency(s - r)
            );
        }
        println!();
        self.print_fractions(results, config.runs);
    }

    fn print_aead(&self) {
        println!("| value | implementation | seal | open | seal throughput | open throughput |");
        println!("|---|---|--:|--:|--:|--:|");
        for len in VALUE_LENS {
            let rows: [(&str, Figure, Figure); 2] = [
                (
                    "`chacha20poly1305` crate",
                    |c| c.reference_seal_ns,
                    |c| c.reference_open_ns,
                ),
                (
                    "strongroom::aead",
                    |c| c.strongroom_seal_ns,
                    |c| c.strongroom_open_ns,
                ),
            ];
            for (name, seal, open) in rows {
                let (seal, open) = (self.aead(len, seal), self.aead(len, open));
                let mb = |ns: f64| format!("{:.0} MB/s", len as f64 / ns * 1e3);
                println!(
                    "| {} | {name} | {} | {} | {} | {} |",
                    size(len),
                    latency(seal),
                    latency(open),
                    mb(seal),
                    mb(open)
                );
            }
        }
        println!(
            "\n(CPU time per record of the calling thread; records shaped like strongroom's: a \
             21 B header with the value, 57 B of AAD, a counter nonce per seal, a new Vec per \
             open. The limits below take the cheaper of the two.)\n"
        );
        println!("| value | token (keyed BLAKE3 of a 16 B key) | frame MAC (keyed BLAKE3) |");
        println!("|---|--:|--:|");
        for (len, runs) in &self.hash {
            println!(
                "| {} | {} | {} (of {} B) |",
                size(*len),
                latency(median(runs.iter().map(|h| h.token_ns))),
                latency(median(runs.iter().map(|h| h.frame_mac_ns))),
                len + MAC_INPUT_BEYOND_VALUE
            );
        }
        println!(
            "\n(What every put hashes besides its seal: the token and its one-record frame's \
             MAC; a point read computes the token. The limits count them: write crypto = seal \
             + token + frame MAC, read crypto = token + open.)\n"
        );
        for (len, runs) in &self.zstd_ns {
            println!(
                "strongroom tries zstd (level {ZSTD_LEVEL}) on a record body over \
                 {COMPRESSION_THRESHOLD_DEFAULT} B unless a 512-byte sample of the value looks \
                 random, and keeps the result only if smaller. On these random values the \
                 sample skips it; an attempt that fails would cost {} of CPU per {} record \
                 here (left out of the limits).\n",
                latency(median(runs.iter().copied())),
                size(*len)
            );
        }
    }

    /// Run `run`'s limit of workload `w` with values of `len`, ops/s, if
    /// every figure it needs was measured.
    fn limit(&self, results: &Results, w: usize, len: usize, run: usize) -> Option<f64> {
        let cost = self.aead.get(&len)?.get(run)?;
        let hash = self.hash.get(&len)?.get(run)?;
        // What sealing a put and opening a read cost in all (see
        // `print_aead`): the names below are the models' terms.
        let seal =
            cost.reference_seal_ns.min(cost.strongroom_seal_ns) + hash.token_ns + hash.frame_mac_ns;
        let open = cost.reference_open_ns.min(cost.strongroom_open_ns) + hash.token_ns;
        let scan_open = cost.reference_open_ns.min(cost.strongroom_open_ns);
        let fsync = |w: usize| {
            let (idle, awake) = self.fsync.get(&(w, len))?.get(run)?;
            Some(idle.mean_ns.min(awake.mean_ns))
        };
        let rocks_ns = |w: usize| {
            let m = results.run(w, len, Kind::RocksDb, run)?;
            Some(1e9 / m.ops_per_sec)
        };
        let ns = match w {
            DURABLE_1 => fsync(DURABLE_1)? + seal,
            DURABLE_8 => {
                let n = DURABLE_THREADS_MANY as f64;
                (fsync(DURABLE_8)? + n * seal / cores()) / n
            }
            BUFFERED => seal + rocks_ns(BUFFERED)?,
            BUFFERED_SEQ => seal + rocks_ns(BUFFERED_SEQ)?,
            READ => open + rocks_ns(READ)?,
            SCAN => scan_open / cores(),
            MIXED => {
                let write = MIXED_WRITE_PERCENT as f64 / 100.0;
                let read_ns = open + rocks_ns(READ)?;
                let per_thread = (1.0 - write) * read_ns + write * (fsync(MIXED)? + seal);
                let cpu = (1.0 - write) * read_ns + write * seal;
                (per_thread / MIXED_THREADS as f64).max(cpu / cores())
            }
            _ => return None,
        };
        Some(1e9 / ns)
    }

    fn print_fractions(&self, results: &Results, runs: usize) {
        let models: [(usize, String); 7] = [
            (DURABLE_1, "1 / (fsync 4 KiB + write crypto)".into()),
            (
                DURABLE_8,
                format!(
                    "8 / (fsync 8 records + 8 × write crypto / {} cores)",
                    cores()
                ),
            ),
            (BUFFERED, "1 / (write crypto + RocksDB buffered put)".into()),
            (
                BUFFERED_SEQ,
                "1 / (write crypto + RocksDB buffered put, sequential keys)".into(),
            ),
            (READ, "1 / (read crypto + RocksDB get)".into()),
            (
                SCAN,
                format!("{} cores / open (the decrypt limit)", cores()),
            ),
            (
                MIXED,
                format!(
                    "min({MIXED_THREADS} / (0.9 read + 0.1 durable write), {} cores / CPU)",
                    cores()
                ),
            ),
        ];
        println!(
            "| workload | value | limit (ops/s) | model | strongroom ops/s | fraction of the limit |"
        );
        println!("|---|---|--:|---|--:|--:|");
        for (w, model) in &models {
            for len in VALUE_LENS {
                let Some(m) = results.median(*w, len, Kind::Strongroom) else {
                    continue;
                };
                let per_run: Vec<(f64, f64)> = (0..runs)
                    .filter_map(|run| {
                        let limit = self.limit(results, *w, len, run)?;
                        let got = results.run(*w, len, Kind::Strongroom, run)?;
                        Some((limit, got.ops_per_sec / limit))
                    })
                    .collect();
                println!(
                    "| {} | {} | {} | {model} | {} | {:.0}% |",
                    WORKLOADS[*w].2,
                    size(len),
                    ops(median(per_run.iter().map(|p| p.0))),
                    ops(m.ops_per_sec),
                    100.0 * median(per_run.iter().map(|p| p.1))
                );
            }
        }
        println!(
            "\n(Each run's fraction pairs its strongroom figure with limits from the same run: \
             the fdatasync probe taken just before the cell, that run's AEAD probe and RocksDB \
             figures; the columns are medians over the runs.)\n"
        );
    }
}
