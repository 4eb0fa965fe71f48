//! Shipping: how long an acknowledged write takes to reach the archive (the
//! lag, p50 and p99), and what shipping costs durable write throughput, on
//! a local folder and on a real S3 server (Garage on loopback, started by
//! `tools/garage`, which must be installed: `bash tools/garage install`).
//!
//! ```sh
//! CARGO_TARGET_DIR=$HOME/.cache/strongroom/target cargo bench --bench ship
//! ```
//!
//! Each run: 4 writer threads put 256-byte values into 4 tenants, durably
//! (the default `SyncEveryCommit`), as fast as they can for `SHIP_BENCH_SECS`
//! (default 10 s), with segments of `SHIP_BENCH_SEGMENT_MIB` (default 64,
//! the engine's default: no roll in a run, so the interval alone sets the
//! lag; with 1 the log rolls several times a second and each roll ships).
//! A monitor thread polls `Db::archive_status` every 200 µs and notes when
//! each LSN is first reported shipped (the piece is put and `SHIPPED`
//! written: a little after the object is durable, so the lag is slightly
//! overstated); each write's lag is that moment minus its acknowledgement.
//! The same workload without an archive gives the baseline throughput of
//! the same run. Figures go to stdout, as a Markdown table.
//!
//! Not criterion: the figure is a distribution of lags under load, not the
//! time of one call.

#[path = "../tests/common/garage.rs"]
#[allow(dead_code)]
mod garage;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use strongroom::archive::{Archive, LocalArchive};
use strongroom::{ArchiveOptions, Db, Options, TenantId};

const WRITERS: usize = 4;
const SHIP_INTERVAL: Duration = Duration::from_secs(1);

struct Run {
    writes: u64,
    seconds: f64,
    /// Lags of the writes whose shipping was seen, sorted.
    lags: Vec<Duration>,
}

fn run(archive: Option<Arc<dyn Archive>>, secs: u64) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let mut options = Options::with_key([9; 32]).segment_bytes_max(segment_bytes());
    if let Some(archive) = &archive {
        options =
            options.archive(ArchiveOptions::new(archive.clone()).ship_interval(SHIP_INTERVAL));
    }
    let db = Arc::new(Db::open(dir.path(), options).unwrap());
    let acks: Arc<Mutex<Vec<(u64, Instant)>>> = Arc::default();
    let shipped_at: Arc<Mutex<BTreeMap<u64, Instant>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let monitor = archive.is_some().then(|| {
        let (db, shipped_at, stop) = (db.clone(), shipped_at.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut last = 0;
            while !stop.load(Ordering::SeqCst) {
                let now = db.archive_status().unwrap().shipped_lsn.0;
                if now > last {
                    shipped_at.lock().unwrap().insert(now, Instant::now());
                    last = now;
                }
                std::thread::sleep(Duration::from_micros(200));
            }
        })
    });
    let started = Instant::now();
    let deadline = started + Duration::from_secs(secs);
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (db, acks) = (db.clone(), acks.clone());
            std::thread::spawn(move || {
                let tenant = db.tenant(TenantId(w as u64 + 1));
                let mut mine = Vec::new();
                let mut i = 0u64;
                while Instant::now() < deadline {
                    let lsn = tenant.put(&i.to_le_bytes(), &[7; 256]).unwrap();
                    mine.push((lsn.0, Instant::now()));
                    i += 1;
                }
                acks.lock().unwrap().extend(mine);
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    let seconds = started.elapsed().as_secs_f64();
    if archive.is_some() {
        // Let the last interval ship.
        let last = db.last_lsn();
        while db.archive_status().unwrap().shipped_lsn < last {
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    stop.store(true, Ordering::SeqCst);
    if let Some(m) = monitor {
        m.join().unwrap();
    }
    let acks = std::mem::take(&mut *acks.lock().unwrap());
    let shipped_at = shipped_at.lock().unwrap();
    let mut lags: Vec<Duration> = acks
        .iter()
        .filter_map(|(lsn, acked)| {
            let (_, at) = shipped_at.range(lsn..).next()?;
            Some(at.saturating_duration_since(*acked))
        })
        .collect();
    lags.sort();
    Run {
        writes: acks.len() as u64,
        seconds,
        lags,
    }
}

/// `SHIP_BENCH_SEGMENT_MIB` (default 64, the engine's default): with small
/// segments the writer's rolls wake the shipper often, and the lag falls well
/// below the interval.
fn segment_bytes() -> u64 {
    std::env::var("SHIP_BENCH_SEGMENT_MIB")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(64)
        << 20
}

fn quantile(lags: &[Duration], q: f64) -> Duration {
    lags[((lags.len() - 1) as f64 * q) as usize]
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is taken.
    let secs: u64 = std::env::var("SHIP_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let archive_dir = tempfile::tempdir().unwrap();
    let garage = garage::Garage::start_new();
    let archives: [(&str, Arc<dyn Archive>); 2] = [
        (
            "local folder",
            Arc::new(LocalArchive::new(archive_dir.path())),
        ),
        ("Garage (S3, loopback)", Arc::new(garage.archive())),
    ];
    println!(
        "ship_interval {} ms, {WRITERS} writers, 256 B values, {} MiB segments, {secs} s per run\n",
        SHIP_INTERVAL.as_millis(),
        segment_bytes() >> 20
    );
    println!(
        "| archive | lag p50 | lag p99 | lag max | p99 / interval | writes/s shipping | writes/s without | ratio |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for (name, archive) in archives {
        let without = run(None, secs);
        let with = run(Some(archive), secs);
        let rate = |r: &Run| r.writes as f64 / r.seconds;
        let p99 = quantile(&with.lags, 0.99);
        assert_eq!(
            with.lags.len() as u64,
            with.writes,
            "every write's shipping was seen"
        );
        println!(
            "| {name} | {:.0} ms | {:.0} ms | {:.0} ms | {:.2} | {:.0} | {:.0} | {:.2} |",
            quantile(&with.lags, 0.5).as_secs_f64() * 1e3,
            p99.as_secs_f64() * 1e3,
            with.lags.last().unwrap().as_secs_f64() * 1e3,
            p99.as_secs_f64() / SHIP_INTERVAL.as_secs_f64(),
            rate(&with),
            rate(&without),
            rate(&with) / rate(&without),
        );
    }
}
