//! The parent: kill loops (one database folder per epoch), one kill point
//! after another, and the check after each kill.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use strongroom::{Clock, Db, ManualClock, ScopeState};

use super::archive;
use super::check::{Outcome, World, check_refusal, final_check, forensic_check, verify_records};
use super::kill::{KillPlan, drain, segments, tail, watch};
use super::model::{Own, build_model, history, note_in_flight_admin};
use super::protocol::read_transcript;
use super::report::{Failure, Report, Stats};
use super::scope::{Target, cancel, scope_state, scopes_of, target_tenants};
use super::{EPOCH_KILL_POINTS, KEPT_TENANTS, PAST_EVERY_DEADLINE, parent_options};

/// When a run ends.
#[derive(Debug, Clone, Copy)]
pub enum Stop {
    /// After this many kill points, over all loops.
    KillPoints(u64),
    /// At this moment (the kill point under way is finished and checked).
    At(Instant),
}

/// A run of the harness.
#[derive(Debug, Clone)]
pub struct Config {
    /// The `strongroom` binary, run as the child.
    pub exe: PathBuf,
    /// Folder for the database folders (`loop<L>-db<E>`); each is removed
    /// once it passed, and kept if it failed.
    pub dir: PathBuf,
    /// Seed of the kill schedules and of the children's workloads (thread
    /// timing still varies from run to run).
    pub seed: u64,
    /// Kill loops run side by side, each on its own database folder.
    pub loops: usize,
    pub stop: Stop,
    /// End the run at the first failure (else keep the folder and go on in
    /// a fresh one).
    pub stop_at_first_failure: bool,
}

/// Runs kill points as `config` says; calls `progress` after each one with
/// the run's report so far.
pub fn run(config: &Config, progress: &(dyn Fn(&Report) + Sync)) -> Report {
    let started = Instant::now();
    let shared = Shared {
        report: Mutex::new(Report::default()),
        claimed: AtomicU64::new(0),
        stopped: AtomicBool::new(false),
    };
    std::thread::scope(|s| {
        for worker in 0..config.loops.max(1) {
            let shared = &shared;
            s.spawn(move || kill_loop(config, worker, shared, progress, started));
        }
    });
    let mut report = shared
        .report
        .into_inner()
        .unwrap_or_else(|e| e.into_inner());
    report.elapsed = started.elapsed();
    report
}

/// What the loops share.
struct Shared {
    report: Mutex<Report>,
    /// Kill points begun, over all loops.
    claimed: AtomicU64,
    /// Set at the first failure when the run stops there.
    stopped: AtomicBool,
}

impl Shared {
    /// Whether another kill point may begin.
    fn claim(&self, stop: Stop) -> bool {
        if self.stopped.load(Ordering::SeqCst) {
            return false;
        }
        match stop {
            Stop::KillPoints(n) => self.claimed.fetch_add(1, Ordering::SeqCst) < n,
            Stop::At(at) => Instant::now() < at,
        }
    }

    fn add(&self, stats: &Stats, failure: Option<Failure>, started: Instant) -> Report {
        let mut report = self.report.lock().unwrap_or_else(|e| e.into_inner());
        report.stats.merge(stats);
        report.failures.extend(failure);
        report.elapsed = started.elapsed();
        report.clone()
    }
}

/// One kill loop: epochs of up to `EPOCH_KILL_POINTS` kill points, each on
/// a fresh database folder, until the run stops.
fn kill_loop(
    config: &Config,
    worker: usize,
    shared: &Shared,
    progress: &(dyn Fn(&Report) + Sync),
    started: Instant,
) {
    let mut rng = StdRng::seed_from_u64(
        config.seed ^ (worker as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15),
    );
    let fail = |epoch: u64, iteration: Option<u64>, message: String, kept: &Path| Failure {
        worker,
        loops: config.loops,
        epoch,
        iteration,
        seed: config.seed,
        message,
        kept: kept.to_path_buf(),
    };
    for epoch in 0u64.. {
        if !shared.claim(config.stop) {
            return;
        }
        let db_dir = config.dir.join(format!("loop{worker}-db{epoch}"));
        // A folder left by an earlier run of the same seed: start afresh.
        let _ = std::fs::remove_dir_all(&db_dir);
        let _ = std::fs::remove_dir_all(super::archive_dir(&db_dir));
        // The archive's folder before the first child: one killed before it
        // opens leaves an archive that lists as empty, not as missing.
        std::fs::create_dir_all(super::archive_dir(&db_dir)).expect("a folder for the archive");
        let mut world = World::default();
        let mut iteration = 0;
        loop {
            let mut stats = Stats {
                epochs: u64::from(iteration == 0),
                ..Stats::default()
            };
            let plan = KillPlan::random(&mut rng);
            let child_seed: u64 = rng.random();
            let result = kill_point(
                &config.exe,
                &db_dir,
                iteration,
                plan,
                child_seed,
                &mut world,
                &mut stats,
            );
            let failure = result.err().map(|message| {
                let message = format!("{message}\n(the child was killed {plan:?})");
                fail(epoch, Some(iteration), message, &db_dir)
            });
            let failed = failure.is_some();
            progress(&shared.add(&stats, failure, started));
            iteration += 1;
            if !failed && (iteration == EPOCH_KILL_POINTS || !shared.claim(config.stop)) {
                // The epoch is over: everything once more, then a fresh
                // folder.
                let mut stats = Stats::default();
                let failure = final_check(&db_dir, &world, &mut stats)
                    .err()
                    .map(|message| fail(epoch, None, message, &db_dir));
                let failed = failure.is_some();
                progress(&shared.add(&stats, failure, started));
                if !failed {
                    let _ = std::fs::remove_dir_all(&db_dir);
                    let _ = std::fs::remove_dir_all(super::archive_dir(&db_dir));
                } else if config.stop_at_first_failure {
                    shared.stopped.store(true, Ordering::SeqCst);
                }
                break;
            }
            if failed {
                // The folder stays as it is, for a post-mortem.
                if config.stop_at_first_failure {
                    shared.stopped.store(true, Ordering::SeqCst);
                }
                break;
            }
        }
    }
}

/// Runs one child, kills it as `plan` says, reopens the database and checks
/// it against `world` (which it then brings up to date).
fn kill_point(
    exe: &Path,
    db_dir: &Path,
    iteration: u64,
    plan: KillPlan,
    child_seed: u64,
    world: &mut World,
    stats: &mut Stats,
) -> Result<(), String> {
    let segments_before = segments(db_dir);
    let mut child = Command::new(exe)
        .arg("harness-child")
        .arg("--dir")
        .arg(db_dir)
        .args(["--seed", &child_seed.to_string()])
        .args(["--iteration", &iteration.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("spawning the child {}: {e}", exe.display()))?;
    let (signals, heard) = std::sync::mpsc::channel();
    let stdout = watch(child.stdout.take().expect("piped stdout"), signals);
    let stderr = drain(child.stderr.take().expect("piped stderr"));
    plan.wait(&heard, stats);
    // SIGKILL on Unix. A child that has already exited is reported below.
    let kill_sent_us = strongroom::SystemClock.now_us();
    let _ = child.kill();
    let status = child
        .wait()
        .map_err(|e| format!("waiting for the child: {e}"))?;
    // No call of the child's started after this.
    let killed_us = strongroom::SystemClock.now_us();
    let stdout = stdout.join().expect("the stdout reader");
    let stderr = String::from_utf8_lossy(&stderr.join().expect("the stderr reader")).into_owned();
    stats.kill_points += 1;

    // The child's report first: an error it printed explains an early exit.
    let transcript = read_transcript(&stdout, iteration, &mut world.state, stats).map_err(|e| {
        format!(
            "{e}\nchild's exit: {status}; child's stderr:\n{}",
            tail(&stderr)
        )
    })?;
    if !killed_by_sigkill(&status) {
        return Err(format!(
            "the child ended by itself ({status}) instead of being killed; its stderr:\n{}",
            tail(&stderr)
        ));
    }
    if !transcript.opened {
        stats.killed_before_open += 1;
    }
    let segments_after = segments(db_dir);
    stats.segments_created += segments_after
        .iter()
        .filter(|s| !segments_before.contains(s))
        .count() as u64;
    if segments_before.iter().any(|s| !segments_after.contains(s)) {
        stats.kills_after_segment_removal += 1;
    }
    stats.segments_max = stats.segments_max.max(segments_after.len() as u64);

    let targets = scopes_of(&target_tenants(iteration));
    let mut model = build_model(&targets, &transcript, killed_us, stats)?;

    // What the child shipped before it died, before anything reopens.
    archive::check_at_kill(db_dir, &transcript, kill_sent_us, stats)?;

    // The parent's own clock starts at the system's time, after the kill:
    // opening completes every seal due by then, and no other.
    let clock = Arc::new(ManualClock::starting_now());
    let db = Db::open(db_dir, parent_options(db_dir).clock(clock.clone()))
        .map_err(|e| format!("reopening the database after the kill failed: {e}"))?;
    model.complete_due(clock.now_us());
    archive::check_after_reopen(&db, db_dir, stats)?;

    // Every target's state must be one its shreds allow; a sealed or
    // shredded scope refuses reads and writes.
    let mut found_at_reopen = BTreeMap::new();
    for &target in &targets {
        let found = scope_state(&db, target)
            .map_err(|e| format!("state() of {target} after reopening failed: {e}"))?;
        model
            .narrow(target, found)
            .map_err(|e| format!("after reopening: {e}\n{}", history(&transcript, target)))?;
        check_refusal(&db, target, found)?;
        if matches!(found, ScopeState::Sealed { .. }) {
            stats.sealed_at_reopen += 1;
        }
        found_at_reopen.insert(target, found);
    }
    note_in_flight_admin(&transcript, &found_at_reopen, stats);

    // Before any maintenance (rotations the kill interrupted are
    // unfinished), every scope live now is whole: acknowledged writes, plus
    // each thread's write in flight whole or not at all, and nothing else.
    let mut live_now = world.live_scopes();
    live_now.extend(
        targets
            .iter()
            .filter(|t| found_at_reopen[*t] == ScopeState::Live),
    );
    let (_, outcomes) = verify_records(&db, &world.state, &transcript.in_flight, &live_now, stats)
        .map_err(|e| format!("after reopening, before maintenance: {e}"))?;
    // A write in flight found applied (or not) is so everywhere: a batch is
    // atomic.
    let mut in_flight = transcript.in_flight.clone();
    for (thread, outcome) in outcomes.into_iter().enumerate() {
        match outcome {
            Outcome::Applied => {
                let op = in_flight[thread].take().expect("an op in flight");
                op.apply_to(&mut world.state);
                stats.in_flight_applied += 1;
            }
            Outcome::NotApplied => {
                in_flight[thread] = None;
                stats.in_flight_not_applied += 1;
            }
            Outcome::Invisible | Outcome::Idle => {}
        }
    }

    // Settle every seal: cancel about half of the sealed scopes, then pass
    // every deadline and run maintenance, which must destroy the others and
    // finish every rotation.
    let mut choices = StdRng::seed_from_u64(child_seed ^ 0x7061_7265_6e74);
    for (&target, &found) in &found_at_reopen {
        if !matches!(found, ScopeState::Sealed { .. }) || !choices.random_bool(0.5) {
            continue;
        }
        let owns = model.own.get_mut(&target).expect("a target");
        match cancel(&db, target) {
            Ok(true) if owns.iter().any(|o| matches!(o, Own::Sealed { .. })) => {
                stats.cancelled_by_parent += 1;
            }
            Ok(false) if target.subject.is_some() && owns.contains(&Own::Live) => {}
            other => {
                return Err(format!(
                    "the parent's cancel of sealed {target} returned {other:?}, but its own \
                     state can be only {owns:?}\n{}",
                    history(&transcript, target)
                ));
            }
        }
        *owns = vec![Own::Live];
    }
    clock.advance(PAST_EVERY_DEADLINE);
    db.run_maintenance()
        .map_err(|e| format!("maintenance past every deadline failed: {e}"))?;
    model.complete_due(clock.now_us());

    let mut checked: Vec<Target> = world.live_scopes();
    for &target in &checked {
        let found = scope_state(&db, target)
            .map_err(|e| format!("state() of live {target} failed: {e}"))?;
        if found != ScopeState::Live {
            return Err(format!(
                "{target}, live when last checked and never shredded since, is {found:?}"
            ));
        }
    }
    let mut shredded_now = Vec::new();
    for &target in &targets {
        let found = scope_state(&db, target)
            .map_err(|e| format!("state() of {target} after the deadlines failed: {e}"))?;
        model.narrow(target, found).map_err(|e| {
            format!(
                "after passing every deadline: {e} (at reopen it was {:?})\n{}",
                found_at_reopen[&target],
                history(&transcript, target)
            )
        })?;
        match found {
            ScopeState::Live => {
                checked.push(target);
                stats.targets_whole += 1;
            }
            ScopeState::Shredded => {
                if matches!(found_at_reopen[&target], ScopeState::Sealed { .. }) {
                    stats.expired_by_parent += 1;
                }
                check_refusal(&db, target, found)?;
                shredded_now.push(target);
                stats.targets_shredded += 1;
            }
            ScopeState::Sealed { .. } => {
                return Err(format!(
                    "{target} is still {found:?} after every deadline passed and maintenance \
                     ran\n{}",
                    history(&transcript, target)
                ));
            }
        }
    }

    // After maintenance, every live scope again (the parent's cancels made
    // some live that were sealed before).
    let (found, outcomes) = verify_records(&db, &world.state, &in_flight, &checked, stats)
        .map_err(|e| format!("after maintenance: {e}"))?;
    for outcome in outcomes {
        match outcome {
            Outcome::Applied => stats.in_flight_applied += 1,
            Outcome::NotApplied => stats.in_flight_not_applied += 1,
            Outcome::Invisible => stats.in_flight_invisible += 1,
            Outcome::Idle => {}
        }
    }
    world
        .state
        .retain(|(t, _), _| !targets.contains(t) && !checked.contains(t));
    world.state.extend(found);
    let live_targets = checked.iter().filter(|t| !KEPT_TENANTS.contains(&t.tenant));
    world.live_targets.extend(live_targets);
    world.shredded.extend(shredded_now);
    db.close()
        .map_err(|e| format!("closing the database after checking it: {e}"))?;
    forensic_check(db_dir, world, false, stats)
}

#[cfg(unix)]
fn killed_by_sigkill(status: &std::process::ExitStatus) -> bool {
    use std::os::unix::process::ExitStatusExt;
    status.signal() == Some(9)
}

#[cfg(not(unix))]
fn killed_by_sigkill(status: &std::process::ExitStatus) -> bool {
    status.code() != Some(0)
}
