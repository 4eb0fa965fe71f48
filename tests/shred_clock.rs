//! A shred is never early because of a wrong clock: a wall clock that jumps
//! ahead, before open or while open, destroys nothing and says why; a clock
//! that moves as time passes destroys on time, and so does a plausible
//! reopen after a deadline passed while the database was closed.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::options;
use strongroom::{
    CLOCK_LEAP_MAX, CLOCK_OPEN_GAP_MAX, Clock, ClockState, Db, ManualClock, ScopeState,
    ShredOptions, SubjectId, TenantId,
};

const DAY: Duration = Duration::from_secs(24 * 3600);
const YEAR: Duration = Duration::from_secs(365 * 24 * 3600);

fn open_with(dir: &Path, clock: &Arc<ManualClock>) -> Db {
    Db::open(dir, options().clock(clock.clone())).unwrap()
}

/// A database with tenant 1 sealed for the default 7 days; returns its
/// deadline.
fn sealed_tenant(dir: &Path, clock: &Arc<ManualClock>) -> u64 {
    let db = open_with(dir, clock);
    db.tenant(TenantId(1)).put(b"k", b"v").unwrap();
    db.tenant(TenantId(2)).put(b"k", b"v").unwrap();
    let state = db
        .shred_tenant(TenantId(1), ShredOptions::default())
        .unwrap();
    let ScopeState::Sealed { deadline_us } = state else {
        panic!("sealed, not {state:?}")
    };
    db.close().unwrap();
    deadline_us
}

#[test]
fn a_clock_a_year_ahead_at_open_destroys_nothing_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::starting_now());
    let deadline_us = sealed_tenant(dir.path(), &clock);

    let wrong = Arc::new(ManualClock::at(clock.now_us() + YEAR.as_micros() as u64));
    let db = open_with(dir.path(), &wrong);
    let tenant = db.tenant(TenantId(1));
    assert_eq!(tenant.state().unwrap(), ScopeState::Sealed { deadline_us });
    assert!(matches!(db.clock_state(), ClockState::Doubted { .. }));
    db.run_maintenance().unwrap();
    assert_eq!(tenant.state().unwrap(), ScopeState::Sealed { deadline_us });
    // Another reopen with the same clock: still nothing destroyed.
    drop(db);
    let db = open_with(dir.path(), &wrong);
    assert_eq!(
        db.tenant(TenantId(1)).state().unwrap(),
        ScopeState::Sealed { deadline_us }
    );
    // The operator checks the clock and trusts it: the deadline it says has
    // passed is honoured at the next maintenance pass.
    db.trust_clock();
    assert_eq!(db.clock_state(), ClockState::Believed);
    db.run_maintenance().unwrap();
    assert_eq!(
        db.tenant(TenantId(1)).state().unwrap(),
        ScopeState::Shredded
    );
    assert_eq!(
        db.tenant(TenantId(2)).get(b"k").unwrap().as_deref(),
        Some(&b"v"[..])
    );
}

#[test]
fn a_clock_that_leaps_a_year_while_open_destroys_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::starting_now());
    let db = open_with(dir.path(), &clock);
    let tenant = db.tenant(TenantId(1));
    tenant.subject(SubjectId(5)).put(b"k", b"v").unwrap();
    let state = tenant
        .shred_subject(SubjectId(5), ShredOptions::with_grace(DAY))
        .unwrap();
    clock.jump(YEAR);
    db.run_maintenance().unwrap();
    assert_eq!(tenant.subject(SubjectId(5)).state().unwrap(), state);
    assert!(matches!(db.clock_state(), ClockState::Doubted { .. }));
    // Less than the grace period passes: still sealed.
    clock.advance(DAY / 2);
    db.run_maintenance().unwrap();
    assert_eq!(tenant.subject(SubjectId(5)).state().unwrap(), state);
    // The whole grace period passes (by the monotonic clock too): shredded,
    // within the bound.
    clock.advance(DAY / 2);
    db.run_maintenance().unwrap();
    assert_eq!(
        tenant.subject(SubjectId(5)).state().unwrap(),
        ScopeState::Shredded
    );
}

#[test]
fn writes_stamped_by_a_leapt_clock_are_not_evidence_at_the_next_open() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::starting_now());
    let db = open_with(dir.path(), &clock);
    db.tenant(TenantId(1)).put(b"k", b"v").unwrap();
    let state = db
        .shred_tenant(
            TenantId(1),
            ShredOptions::with_grace(2 * CLOCK_OPEN_GAP_MAX),
        )
        .unwrap();
    db.run_maintenance().unwrap();
    // The clock leaps; commits go on, stamped with it.
    clock.jump(YEAR);
    db.tenant(TenantId(2)).put(b"k", b"v").unwrap();
    db.close().unwrap();
    for _ in 0..3 {
        let db = open_with(dir.path(), &clock);
        assert_eq!(db.tenant(TenantId(1)).state().unwrap(), state);
        assert!(matches!(db.clock_state(), ClockState::Doubted { .. }));
        db.tenant(TenantId(2)).put(b"k", b"w").unwrap();
        db.close().unwrap();
    }
}

#[test]
fn a_clock_that_moves_with_time_destroys_on_time() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::starting_now());
    let db = open_with(dir.path(), &clock);
    let tenant = db.tenant(TenantId(1));
    tenant.put(b"k", b"v").unwrap();
    db.shred_tenant(TenantId(1), ShredOptions::with_grace(DAY))
        .unwrap();
    clock.advance(DAY - Duration::from_secs(1));
    db.run_maintenance().unwrap();
    assert!(matches!(tenant.state().unwrap(), ScopeState::Sealed { .. }));
    clock.advance(Duration::from_secs(1));
    db.run_maintenance().unwrap();
    assert_eq!(tenant.state().unwrap(), ScopeState::Shredded);
    assert_eq!(db.clock_state(), ClockState::Believed);
}

#[test]
fn a_deadline_passed_while_closed_is_honoured_at_a_plausible_open_and_held_at_another() {
    // Closed for less than the bound past the deadline: honoured at open.
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::starting_now());
    let db = open_with(dir.path(), &clock);
    db.tenant(TenantId(1)).put(b"k", b"v").unwrap();
    db.shred_tenant(
        TenantId(1),
        ShredOptions::with_grace(Duration::from_secs(3600)),
    )
    .unwrap();
    db.close().unwrap();
    clock.advance(Duration::from_secs(2 * 3600));
    let db = open_with(dir.path(), &clock);
    assert_eq!(
        db.tenant(TenantId(1)).state().unwrap(),
        ScopeState::Shredded
    );
    assert_eq!(db.clock_state(), ClockState::Believed);
    drop(db);

    // Closed for longer than the bound: the deadline is held back (later,
    // never earlier) and the clock reported doubted.
    let dir = tempfile::tempdir().unwrap();
    let deadline_us = sealed_tenant(dir.path(), &clock);
    clock.advance(CLOCK_OPEN_GAP_MAX + CLOCK_LEAP_MAX + 8 * DAY);
    let db = open_with(dir.path(), &clock);
    assert_eq!(
        db.tenant(TenantId(1)).state().unwrap(),
        ScopeState::Sealed { deadline_us }
    );
    assert!(matches!(db.clock_state(), ClockState::Doubted { .. }));
}
