//! The child: the body of `strongroom harness-child`. It opens the database
//! and runs the writers and the admin thread until it is killed, reporting
//! every call and every answer on stdout (see `protocol.rs`).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use strongroom::{Clock, Db, Error, ScopeState, ShredOptions, SystemClock, TenantId};

use super::protocol::encode_state;
use super::scope::{Target, cancel, scopes_of, shred, target_tenants};
use super::workload::{execute, random_op};
use super::{ADMIN_PAUSE_MS, KEPT_TENANTS, LONG_GRACE, SHORT_GRACE_MS, WRITERS, options};

/// Runs kill point `iteration`'s workload, seeded by `seed`, on the database
/// in `dir`, until the process is killed. Exits (1, or 2 if the open fails)
/// after reporting an unexpected error.
pub fn run_child(dir: &Path, iteration: u64, seed: u64) -> ! {
    // The system clock: deadlines of short grace periods pass while the
    // child runs, and its background maintenance completes them.
    let db = match Db::open(dir, options(dir)) {
        Ok(db) => db,
        Err(e) => {
            emit(&format!("err - open {e}"));
            std::process::exit(2);
        }
    };
    emit("opened");
    std::thread::scope(|s| {
        for thread in 0..WRITERS {
            let db = &db;
            s.spawn(move || write_forever(db, iteration, thread, seed));
        }
        s.spawn(|| admin_forever(&db, iteration, seed));
    });
    unreachable!("the threads stop only when the process is killed")
}

/// Writes one whole line and flushes it before returning; exits if the
/// parent can no longer hear.
fn emit(line: &str) {
    let mut out = std::io::stdout().lock();
    let written = out
        .write_all(format!("{line}\n").as_bytes())
        .and_then(|()| out.flush());
    if written.is_err() {
        std::process::exit(3);
    }
}

fn now_us() -> u64 {
    SystemClock.now_us()
}

/// Writer `thread`: ops on the kept tenants and this kill point's targets.
fn write_forever(db: &Db, iteration: u64, thread: usize, seed: u64) {
    let mut rng =
        StdRng::seed_from_u64(seed ^ (thread as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let targets = target_tenants(iteration);
    for seq in 0u64.. {
        let op = random_op(
            &mut rng,
            thread,
            format!("{iteration}-{thread}-{seq}"),
            &targets,
        );
        emit(&op.encode());
        match execute(db, &op) {
            Ok(lsn) => emit(&format!("ack {thread} {} {} {}", op.id, lsn.0, now_us())),
            Err(Error::Sealed { scope, .. }) => emit(&format!(
                "refused {thread} {} sealed {}",
                op.id,
                Target::of_scope(scope).encode()
            )),
            Err(Error::Shredded { scope }) => emit(&format!(
                "refused {thread} {} shredded {}",
                op.id,
                Target::of_scope(scope).encode()
            )),
            Err(e) => {
                emit(&format!("err {thread} {} {e}", op.id));
                std::process::exit(1);
            }
        }
    }
}

/// Shreds, cancels and rotations, at random: shreds and cancels in this kill
/// point's target tenants, rotations of any tenant.
fn admin_forever(db: &Db, iteration: u64, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5368_7265_6464_6572);
    let scopes = scopes_of(&target_tenants(iteration));
    let (tenants, subjects): (Vec<Target>, Vec<Target>) =
        scopes.iter().copied().partition(|t| t.subject.is_none());
    // Mostly subjects: a tenant's shred ends the game for its subjects.
    let pick = |rng: &mut StdRng| {
        if rng.random_bool(0.15) {
            tenants[rng.random_range(0..tenants.len())]
        } else {
            subjects[rng.random_range(0..subjects.len())]
        }
    };
    // The seals this thread has made and not cancelled: scope -> deadline.
    let mut sealed: BTreeMap<Target, u64> = BTreeMap::new();
    for seq in 0u64.. {
        std::thread::sleep(Duration::from_millis(rng.random_range(ADMIN_PAUSE_MS)));
        let id = format!("{iteration}-a{seq}");
        let roll = rng.random_range(0..100);
        if roll < 3 {
            // A base backup now and then (not modelled: the parent reads
            // every backup back at each check; a kill may land in one).
            if let Err(e) = db.backup_now() {
                fail(&id, &e);
            }
        } else if roll < 4 {
            // A retention pass (a kill may land in one: the parent checks
            // that what is left still restores).
            if let Err(e) = db.apply_retention() {
                fail(&id, &e);
            }
        } else if roll < 15 {
            // Mostly a kept tenant's, whose records carry over from kill to
            // kill; else a target's, which may be sealed or shredded already.
            let tenant = if rng.random_bool(0.7) {
                KEPT_TENANTS[rng.random_range(0..KEPT_TENANTS.len())]
            } else {
                target_tenants(iteration)[rng.random_range(0..2)]
            };
            rotate(db, &id, tenant);
        } else if (roll < 33 && !sealed.is_empty()) || roll < 18 {
            // A cancel: of a seal (even one past its deadline, racing the
            // maintenance pass that destroys it), or now and then of any
            // scope (nothing to cancel, or shredded).
            let cancellable: Vec<Target> = sealed.keys().copied().collect();
            let target = if cancellable.is_empty() {
                pick(&mut rng)
            } else {
                cancellable[rng.random_range(0..cancellable.len())]
            };
            sealed.remove(&target);
            cancel_once(db, &id, target);
        } else {
            let target = pick(&mut rng);
            let grace = match rng.random_range(0..100) {
                0..35 => Duration::ZERO,
                35..75 => Duration::from_millis(rng.random_range(SHORT_GRACE_MS)),
                _ => LONG_GRACE,
            };
            match shred_once(db, &id, target, grace) {
                Some(ScopeState::Sealed { deadline_us }) => sealed.insert(target, deadline_us),
                _ => sealed.remove(&target),
            };
        }
    }
}

fn rotate(db: &Db, id: &str, tenant: u64) {
    emit(&format!("rotate-issue {id} {tenant}"));
    let result = db.tenant(TenantId(tenant)).rotate_key();
    let end = now_us();
    match result {
        Ok(version) => emit(&format!("rotate-ack {id} {version}")),
        Err(Error::Sealed { .. }) => emit(&format!("rotate-refused {id} sealed {end}")),
        Err(Error::Shredded { .. }) => emit(&format!("rotate-refused {id} shredded {end}")),
        Err(e) => fail(id, &e),
    }
}

fn cancel_once(db: &Db, id: &str, target: Target) {
    emit(&format!(
        "cancel-issue {id} {} {}",
        target.encode(),
        now_us()
    ));
    let result = cancel(db, target);
    let end = now_us();
    match result {
        Ok(was_sealed) => emit(&format!("cancel-ack {id} {was_sealed} {end}")),
        Err(Error::Shredded { .. }) => emit(&format!("cancel-refused {id} {end}")),
        Err(e) => fail(id, &e),
    }
}

/// Shreds `target` and returns its state, or `None` if it was shredded
/// already.
fn shred_once(db: &Db, id: &str, target: Target, grace: Duration) -> Option<ScopeState> {
    emit(&format!(
        "shred-issue {id} {} {} {}",
        target.encode(),
        grace.as_millis(),
        now_us()
    ));
    let options = if grace.is_zero() {
        ShredOptions::immediate()
    } else {
        ShredOptions::with_grace(grace)
    };
    match shred(db, target, options) {
        Ok(state) => {
            emit(&format!("shred-ack {id} {}", encode_state(state)));
            Some(state)
        }
        Err(Error::Shredded { .. }) => {
            emit(&format!("shred-refused {id} {}", now_us()));
            None
        }
        Err(e) => fail(id, &e),
    }
}

fn fail(id: &str, error: &Error) -> ! {
    emit(&format!("err admin {id} {error}"));
    std::process::exit(1);
}
