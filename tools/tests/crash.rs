//! Crash safety under SIGKILL: the crash harness (`strongroom_cli::harness`)
//! kills the `strongroom` binary, running a random workload of puts,
//! deletes, batches across tenants and subjects, immediate and grace-period
//! shreds, cancels and key rotations, at 1,000 random points, and after
//! each kill checks the reopened database against its model: every
//! acknowledged write present, nothing unwritten present, each scope a
//! prefix of its history, every acknowledged shred holding, every scope
//! whole or destroyed, and no record of a shredded scope decrypting from any
//! file. Two kill loops run side by side, each on its own databases.
//!
//! Environment: `STRONGROOM_CRASH_KILLS` (kill points, default 1000),
//! `STRONGROOM_CRASH_SEED` (seed of the kill schedules and workloads; thread
//! timing still varies), `STRONGROOM_CRASH_LOOPS` (default 2).

#![cfg(unix)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use strongroom_cli::harness::{self, Config, Report, Stop};

const KILLS_ENV: &str = "STRONGROOM_CRASH_KILLS";
const SEED_ENV: &str = "STRONGROOM_CRASH_SEED";
const LOOPS_ENV: &str = "STRONGROOM_CRASH_LOOPS";
const DEFAULT_KILLS: u64 = 1000;
const DEFAULT_LOOPS: u64 = 2;

fn env_u64(name: &str) -> Option<u64> {
    let raw = std::env::var(name).ok()?;
    Some(
        raw.trim()
            .parse()
            .unwrap_or_else(|e| panic!("{name}={raw:?} is not a number: {e}")),
    )
}

#[test]
fn acknowledged_writes_and_shreds_survive_sigkill_at_random_points() {
    let kills = env_u64(KILLS_ENV).unwrap_or(DEFAULT_KILLS);
    let seed = env_u64(SEED_ENV).unwrap_or_else(rand::random);
    let loops = env_u64(LOOPS_ENV).unwrap_or(DEFAULT_LOOPS) as usize;
    println!("crash: seed {seed} (set {SEED_ENV}={seed} to repeat), {kills} kill points");
    let tmp = tempfile::tempdir().expect("a temporary folder");
    let config = Config {
        exe: PathBuf::from(env!("CARGO_BIN_EXE_strongroom")),
        dir: tmp.path().to_path_buf(),
        seed,
        loops,
        stop: Stop::KillPoints(kills),
        stop_at_first_failure: true,
    };
    let printed = AtomicU64::new(0);
    let progress = |report: &Report| {
        let hundreds = report.stats.kill_points / 100;
        if printed.fetch_max(hundreds, Ordering::SeqCst) < hundreds {
            println!(
                "crash: {} ({:.0} s)",
                report.stats.summary(report.failures.len()),
                report.elapsed.as_secs_f64()
            );
        }
    };
    let report = harness::run(&config, &progress);
    println!("{}", report.stats);
    println!(
        "crash summary: {} in {:.1} s; seed {seed}",
        report.stats.summary(report.failures.len()),
        report.elapsed.as_secs_f64()
    );
    if let Some(failure) = report.failures.first() {
        // The failing database folder is kept: it must outlive the tempdir.
        let _ = tmp.keep();
        panic!("{failure}");
    }
    assert_eq!(report.stats.kill_points, kills, "every kill point ran");
}
