//! `strongroom torture`: the crash harness's long mode.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use strongroom_cli::harness::{self, Config, Report, Stop};

/// Arguments of `strongroom torture`.
#[derive(clap::Args)]
pub struct TortureArgs {
    /// How long to run, in minutes.
    #[arg(long, default_value_t = 10.0)]
    minutes: f64,
    /// Folder for the databases (one per epoch of kill points; removed once
    /// checked, kept if a check fails). Default: a new folder under the
    /// system's temporary folder.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Seed of the kill schedules and workloads (default: random).
    #[arg(long)]
    seed: Option<u64>,
    /// Kill loops run side by side, each on its own database.
    #[arg(long, default_value_t = 2)]
    loops: usize,
    /// Seconds between two progress lines.
    #[arg(long, default_value_t = 10)]
    progress_secs: u64,
    /// Print only a JSON summary at the end (no progress lines).
    #[arg(long)]
    json: bool,
}

pub fn run(args: &TortureArgs) -> anyhow::Result<()> {
    let seed = args.seed.unwrap_or_else(rand::random);
    let dir = match &args.dir {
        Some(dir) => dir.clone(),
        None => std::env::temp_dir().join(format!("strongroom-torture-{seed}")),
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let runtime = Duration::from_secs_f64(args.minutes.max(0.0) * 60.0);
    let config = Config {
        exe: std::env::current_exe().context("finding the strongroom binary")?,
        dir: dir.clone(),
        seed,
        loops: args.loops.max(1),
        stop: Stop::At(Instant::now() + runtime),
        stop_at_first_failure: false,
    };
    if !args.json {
        println!(
            "strongroom torture: {:.1} minutes, {} loops, seed {seed}, databases in {}",
            args.minutes,
            config.loops,
            dir.display()
        );
    }
    let every = Duration::from_secs(args.progress_secs.max(1));
    let last = Mutex::new((Instant::now(), 0usize));
    let progress = |report: &Report| {
        if args.json {
            return;
        }
        let mut last = last.lock().unwrap_or_else(|e| e.into_inner());
        for failure in &report.failures[last.1..] {
            println!("{failure}");
        }
        last.1 = report.failures.len();
        if last.0.elapsed() >= every {
            last.0 = Instant::now();
            println!(
                "[{:>6.0} s] {}",
                report.elapsed.as_secs_f64(),
                report.stats.summary(report.failures.len())
            );
        }
    };
    let report = harness::run(&config, &progress);
    if args.json {
        let summary = serde_json::json!({
            "seed": seed,
            "seconds": report.elapsed.as_secs_f64(),
            "kill_points": report.stats.kill_points,
            "summary": report.stats.summary(report.failures.len()),
            "failures": report.failures.iter().map(|f| f.to_string()).collect::<Vec<_>>(),
            "dir": dir,
        });
        println!("{summary}");
    } else {
        println!("{}", report.stats);
        println!(
            "done in {:.0} s: {}",
            report.elapsed.as_secs_f64(),
            report.stats.summary(report.failures.len())
        );
    }
    if !report.failures.is_empty() {
        if !args.json {
            for failure in &report.failures {
                println!("{failure}");
            }
        }
        bail!(
            "{} failure(s) in {} kill points; their databases are kept (above)",
            report.failures.len(),
            report.stats.kill_points
        );
    }
    // Every checked folder was removed; remove the parent folder if it is
    // now empty and was ours.
    if args.dir.is_none() {
        let _ = std::fs::remove_dir(&dir);
    }
    Ok(())
}
