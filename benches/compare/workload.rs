//! Keys, values, and the timed runner that every cell goes through.

use std::sync::Barrier;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::keys::splitmix64;

/// Distinct values each value size cycles through.
const VALUE_POOL: usize = 256;

/// The `n`th key of `tenant`: 16 bytes, the tenant first (big-endian, so a
/// tenant is one key range in RocksDB and SQLite), then random-looking bytes
/// (inserts land all over the key space, as strongroom's tokens do), then
/// `n` itself, which keeps keys distinct.
pub fn key(tenant: u32, n: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..4].copy_from_slice(&tenant.to_be_bytes());
    k[4..12].copy_from_slice(&splitmix64(n).to_be_bytes());
    k[12..].copy_from_slice(&(n as u32).to_be_bytes());
    k
}

/// The `n`th key of `tenant` in insertion order: the tenant, then `n`
/// big-endian (ids, timestamps: what applications mostly write). strongroom
/// stores it under a token all the same, so only the other engines see the
/// order.
pub fn sequential_key(tenant: u32, n: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..4].copy_from_slice(&tenant.to_be_bytes());
    k[8..].copy_from_slice(&n.to_be_bytes());
    k
}

/// Random (incompressible) values of one size, generated once.
pub struct Values(Vec<Vec<u8>>);

impl Values {
    pub fn new(len: usize) -> Values {
        let mut rng = StdRng::seed_from_u64(0x5eed ^ len as u64);
        Values(
            (0..VALUE_POOL)
                .map(|_| {
                    let mut v = vec![0u8; len];
                    rng.fill(&mut v[..]);
                    v
                })
                .collect(),
        )
    }

    pub fn get(&self, n: u64) -> &[u8] {
        &self.0[(n % VALUE_POOL as u64) as usize]
    }
}

/// What one cell measured.
#[derive(Debug, Clone)]
pub struct Measurement {
    /// Operations (records, for scans) completed in the window, per second.
    pub ops_per_sec: f64,
    /// Latency of one call (a whole scan, for scans), nanoseconds.
    pub p50_ns: f64,
    pub p99_ns: f64,
}

/// Runs `op` on `threads` threads, each with its own session from `session`,
/// for `warmup` (not measured) and then `measure`. `op` returns how many
/// operations it did (1, or the records of a scan). Every call is timed.
pub fn run_timed<S, MakeSession, Op>(
    threads: usize,
    warmup: Duration,
    measure: Duration,
    session: MakeSession,
    op: Op,
) -> Measurement
where
    MakeSession: Fn() -> S + Sync,
    Op: Fn(&mut S, &mut StdRng) -> u64 + Sync,
{
    let barrier = Barrier::new(threads);
    let (session, op, barrier) = (&session, &op, &barrier);
    let per_thread: Vec<(u64, Vec<u64>)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || {
                    let mut session = session();
                    let mut rng = StdRng::seed_from_u64(t as u64 + 1);
                    let mut latencies = Vec::with_capacity(1 << 16);
                    let mut ops = 0;
                    barrier.wait();
                    let window = Instant::now() + warmup;
                    let end = window + measure;
                    loop {
                        let start = Instant::now();
                        if start >= end {
                            break;
                        }
                        let n = op(&mut session, &mut rng);
                        let took = start.elapsed();
                        if start >= window {
                            ops += n;
                            latencies.push(took.as_nanos() as u64);
                        }
                    }
                    (ops, latencies)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("worker panicked"))
            .collect()
    });
    let ops: u64 = per_thread.iter().map(|(ops, _)| ops).sum();
    let mut latencies: Vec<u64> = per_thread.into_iter().flat_map(|(_, l)| l).collect();
    latencies.sort_unstable();
    Measurement {
        ops_per_sec: ops as f64 / measure.as_secs_f64(),
        p50_ns: percentile(&latencies, 0.50),
        p99_ns: percentile(&latencies, 0.99),
    }
}

/// The `q` quantile of sorted samples (nearest rank); NaN if there are none.
pub fn percentile(sorted: &[u64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1] as f64
}
