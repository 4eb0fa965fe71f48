//! Restore speed and standby lag, on a local folder and on a real S3 server
//! (Garage on loopback: `bash tools/garage install` first).
//!
//! ```sh
//! CARGO_TARGET_DIR=$HOME/.cache/strongroom/target cargo bench --bench restore
//! RESTORE_BENCH_MB=1024 ...   # the database's size (default 256)
//! ```
//!
//! **Restore.** A database of `RESTORE_BENCH_MB` of random 1 KiB values
//! (batches of 64 puts over 16 tenants), shipped to the archive, with one backup
//! taken at half of it: a restore to the latest moment fetches the backup
//! (about half the data) and replays the log (the other half). Reported:
//! the MB/s of each stage (from the restore's progress reports) and the
//! whole time. The limit it is held against, in the same run: the same log
//! replayed from local disk by crash recovery (a copy of the database whose
//! store is deleted, reopened: frames read, MACs checked, applied), the one
//! replay loop with nothing to fetch or unseal.
//!
//! **Standby lag.** A primary ships every `SHIP_INTERVAL` (1 s) while one
//! writer puts durably for 10 s; a standby polls every 1 s; each write's lag
//! is the moment the standby first reports its LSN applied minus its
//! acknowledgement. Goal: p99 at most 2 × the ship interval.
//!
//! Not criterion: each figure is one long operation, or a distribution
//! under load.

#[path = "../tests/common/garage.rs"]
#[allow(dead_code)]
mod garage;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};
use strongroom::archive::{Archive, LocalArchive};
use strongroom::restore::{RestoreOptions, RestoreStage, restore};
use strongroom::{
    ArchiveOptions, Db, MasterKeySource, Options, StandbyOptions, TenantId, WriteBatch,
};

const KEY: [u8; 32] = [9; 32];
const VALUE: usize = 1024;
const BATCH: usize = 64;
const SHIP_INTERVAL: Duration = Duration::from_secs(1);

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1 << 20) as f64
}

fn master() -> MasterKeySource {
    MasterKeySource::Bytes(zeroize::Zeroizing::new(KEY))
}

/// Writes `mb` of records; with `backup_at_half`, a backup at half.
fn fill(db: &Db, mb: u64, backup_at_half: bool) {
    let records = (mb << 20) / VALUE as u64;
    // Random values: records are compressed before they are sealed, and a
    // repeated byte would shrink the database to nothing.
    let mut rng = StdRng::seed_from_u64(mb);
    let mut value = vec![0u8; VALUE];
    let mut written = 0;
    while written < records {
        let tenant = db.tenant(TenantId(1 + written / BATCH as u64 % 16));
        let mut batch = WriteBatch::new();
        for i in 0..BATCH as u64 {
            rng.fill_bytes(&mut value);
            batch.put(
                format!("key-{:012}", written + i).into_bytes(),
                value.clone(),
            );
        }
        tenant.write(batch).unwrap();
        written += BATCH as u64;
        if backup_at_half && written == records / 2 / BATCH as u64 * BATCH as u64 {
            db.flush().unwrap();
            db.backup_now().unwrap();
        }
    }
}

/// Per stage: its first and last progress report, and the bytes done.
type Marks = BTreeMap<&'static str, (Instant, Instant, u64)>;

struct Restored {
    backup_mb: f64,
    backup_secs: f64,
    log_mb: f64,
    log_secs: f64,
    total_secs: f64,
}

fn timed_restore(archive: Arc<dyn Archive>) -> Restored {
    let into = tempfile::tempdir().unwrap();
    let marks: Arc<Mutex<Marks>> = Arc::default();
    let seen = marks.clone();
    let options = RestoreOptions::new(archive, master()).progress(move |p| {
        let stage = match p.stage {
            RestoreStage::Backup => "backup",
            _ => "log",
        };
        let now = Instant::now();
        let mut marks = seen.lock().unwrap();
        let entry = marks.entry(stage).or_insert((now, now, 0));
        entry.1 = now;
        entry.2 = p.done_bytes;
    });
    let started = Instant::now();
    restore(into.path().join("db"), &options).unwrap();
    let total_secs = started.elapsed().as_secs_f64();
    let marks = marks.lock().unwrap();
    // A stage runs from the end of the one before (the first progress
    // report comes after the first file or piece).
    let backup = marks
        .get("backup")
        .copied()
        .unwrap_or((started, started, 0));
    let log = marks.get("log").copied().unwrap_or((backup.1, backup.1, 0));
    Restored {
        backup_mb: mib(backup.2),
        backup_secs: (backup.1 - started).as_secs_f64(),
        log_mb: mib(log.2),
        log_secs: (log.1 - backup.1).as_secs_f64(),
        total_secs,
    }
}

/// Crash recovery of the same log from local disk: the apply limit.
fn replay_limit(mb: u64) -> (f64, f64) {
    let dir = tempfile::tempdir().unwrap();
    // One segment large enough that nothing rolls (so nothing is removed).
    let options = || Options::with_key(KEY).segment_bytes_max((2 * mb + 64) << 20);
    let db = Db::open(dir.path(), options()).unwrap();
    fill(&db, mb, false);
    db.close().unwrap();
    let log_bytes: u64 = std::fs::read_dir(dir.path().join("wal"))
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    std::fs::remove_dir_all(dir.path().join("store")).unwrap();
    let started = Instant::now();
    let db = Db::open(dir.path(), options()).unwrap();
    let secs = started.elapsed().as_secs_f64();
    db.close().unwrap();
    (mib(log_bytes), secs)
}

fn restore_row(name: &str, archive: Arc<dyn Archive>, mb: u64, limit_mb_s: f64) {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(
        dir.path(),
        Options::with_key(KEY).archive(
            ArchiveOptions::new(archive.clone())
                .ship_interval(SHIP_INTERVAL)
                .backup_interval(None)
                .retention(None),
        ),
    )
    .unwrap();
    fill(&db, mb, true);
    db.ship_now().unwrap();
    db.close().unwrap();
    let r = timed_restore(archive);
    let log_rate = r.log_mb / r.log_secs.max(1e-9);
    println!(
        "| {name} | {mb} MiB | {:.1} s | {:.0} MiB in {:.1} s ({:.0} MiB/s) | {:.0} MiB in {:.1} s ({:.0} MiB/s) | {:.2} |",
        r.total_secs,
        r.backup_mb,
        r.backup_secs,
        r.backup_mb / r.backup_secs.max(1e-9),
        r.log_mb,
        r.log_secs,
        log_rate,
        log_rate / limit_mb_s
    );
}

fn standby_lag(name: &str, archive: Arc<dyn Archive>) {
    let dir = tempfile::tempdir().unwrap();
    let primary = Arc::new(
        Db::open(
            dir.path().join("primary"),
            Options::with_key(KEY).archive(
                ArchiveOptions::new(archive.clone())
                    .ship_interval(SHIP_INTERVAL)
                    .backup_interval(None),
            ),
        )
        .unwrap(),
    );
    primary.tenant(TenantId(1)).put(b"first", b"write").unwrap();
    primary.ship_now().unwrap();
    let standby = Arc::new(
        Db::open_standby(
            dir.path().join("standby"),
            Options::with_key(KEY),
            StandbyOptions::new(archive).poll_interval(SHIP_INTERVAL),
        )
        .unwrap(),
    );
    let applied_at: Arc<Mutex<BTreeMap<u64, Instant>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let monitor = {
        let (standby, applied_at, stop) = (standby.clone(), applied_at.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut last = 0;
            while !stop.load(Ordering::SeqCst) {
                let now = standby.last_lsn().0;
                if now > last {
                    applied_at.lock().unwrap().insert(now, Instant::now());
                    last = now;
                }
                std::thread::sleep(Duration::from_micros(500));
            }
        })
    };
    let mut acks = Vec::new();
    let t = primary.tenant(TenantId(1));
    let end = Instant::now() + Duration::from_secs(10);
    let mut i = 0u64;
    while Instant::now() < end {
        let lsn = t.put(format!("k{i}").as_bytes(), &[7; 256]).unwrap();
        acks.push((lsn.0, Instant::now()));
        i += 1;
        std::thread::sleep(Duration::from_millis(2));
    }
    let last = acks.last().unwrap().0;
    let wait = Instant::now() + Duration::from_secs(10);
    while standby.last_lsn().0 < last && Instant::now() < wait {
        std::thread::sleep(Duration::from_millis(10));
    }
    stop.store(true, Ordering::SeqCst);
    monitor.join().unwrap();
    let applied_at = applied_at.lock().unwrap();
    let mut lags: Vec<Duration> = acks
        .iter()
        .filter_map(|(lsn, acked)| {
            let (_, at) = applied_at.range(lsn..).next()?;
            Some(at.saturating_duration_since(*acked))
        })
        .collect();
    lags.sort();
    let pct = |p: f64| lags[((lags.len() - 1) as f64 * p) as usize];
    println!(
        "| {name} | {} | {:.0} ms | {:.0} ms | {:.0} ms | {:.2} |",
        lags.len(),
        pct(0.5).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
        lags.last().unwrap().as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() / SHIP_INTERVAL.as_secs_f64()
    );
    drop(standby);
    drop(primary);
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let mb: u64 = std::env::var("RESTORE_BENCH_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    let (limit_mb, limit_secs) = replay_limit(mb / 2);
    let limit = limit_mb / limit_secs;
    println!(
        "Crash recovery of a {limit_mb:.0} MiB log from local disk: {limit_secs:.1} s, {limit:.0} MiB/s (the replay limit)\n"
    );
    println!(
        "| archive | database | restore | backup fetched | log replayed | log / replay limit |"
    );
    println!("|---|--:|--:|--:|--:|--:|");
    let local = tempfile::tempdir().unwrap();
    restore_row(
        "local folder",
        Arc::new(LocalArchive::new(local.path())),
        mb,
        limit,
    );
    let garage = garage::shared();
    restore_row(
        "Garage (S3, loopback)",
        Arc::new(garage.archive()),
        mb,
        limit,
    );
    println!("\n| archive | writes | lag p50 | lag p99 | lag max | p99 / ship interval |");
    println!("|---|--:|--:|--:|--:|--:|");
    let local = tempfile::tempdir().unwrap();
    standby_lag("local folder", Arc::new(LocalArchive::new(local.path())));
    standby_lag("Garage (S3, loopback)", Arc::new(garage.archive()));
}
