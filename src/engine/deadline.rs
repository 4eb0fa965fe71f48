//! When a shred's deadline may be acted on: the time the engine believes.
//!
//! Destruction is the one operation that cannot be undone, so it does not
//! trust one reading of the wall clock. The believed time is
//!
//! ```text
//! evidence = base_wall + (monotonic - base_monotonic)
//! believed = min(wall, evidence + allowance)
//! ```
//!
//! The base is taken at open (and when the operator trusts the clock) and
//! moves only with the monotonic clock after that: a wall clock that steps
//! ahead by less than the allowance ([`CLOCK_LEAP_MAX`]) is believed, but
//! steps do not add up, since each is measured from the same base. A wall
//! clock that lags (or steps back) only delays. At open the base is the wall
//! clock if it is plausible, at most [`CLOCK_OPEN_GAP_MAX`] past the latest
//! time the database has evidence for (what its last maintenance pass or
//! close recorded); else that time, with [`CLOCK_OPEN_GAP_MAX`] added to the
//! allowance. What is recorded for the next open is the evidence, never the
//! allowance, so reopening again and again with a wrong clock gains nothing.
//! A doubted clock delays destruction, never brings it forward; it is
//! logged, [`ClockState::Doubted`] says so, and [`crate::Db::trust_clock`] is
//! the operator's way to accept the wall clock.
//!
//! Commit times are not evidence: they are wall-clock readings, taken
//! whether the clock is believed or not.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use crate::clock::Clock;

/// How far the wall clock may run ahead of the time the monotonic clock
/// says has passed, while the database is open, and still be believed.
pub const CLOCK_LEAP_MAX: Duration = Duration::from_secs(5 * 60);

/// How far past the latest time the database knows the wall clock may be at
/// open and still be believed: a longer gap (a machine that booted with its
/// clock years ahead, or a database closed for longer) postpones the
/// deadlines that would have passed in it, by the excess, until the operator
/// trusts the clock (time passing while open does not close the gap: the
/// wall and monotonic clocks advance together).
pub const CLOCK_OPEN_GAP_MAX: Duration = Duration::from_secs(24 * 3600);

/// What the engine makes of the wall clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClockState {
    /// The wall clock agrees with the time that has passed: deadlines are
    /// acted on by it.
    Believed,
    /// The wall clock is ahead of what the database can account for:
    /// deadlines are acted on by `believed_us` instead (later, never earlier).
    Doubted {
        /// What the wall clock says, µs since the epoch.
        wall_us: u64,
        /// The time deadlines are compared with, µs since the epoch.
        believed_us: u64,
    },
}

/// What the believed time is measured from.
#[derive(Debug, Clone, Copy)]
struct Base {
    wall_us: u64,
    monotonic_us: u64,
    /// How far past the evidence the believed time may go (µs).
    allowance_us: u64,
}

/// The believed time of one open database.
#[derive(Debug)]
pub(crate) struct Deadlines {
    clock: Arc<dyn Clock>,
    base: Mutex<Base>,
    state: Mutex<ClockState>,
}

const LEAP_US: u64 = CLOCK_LEAP_MAX.as_micros() as u64;
const OPEN_GAP_US: u64 = CLOCK_OPEN_GAP_MAX.as_micros() as u64;

impl Deadlines {
    /// Starts believing at open, given the latest time the database has
    /// evidence for (`known_us`; 0 if none).
    pub(crate) fn open(clock: Arc<dyn Clock>, known_us: u64) -> Deadlines {
        let wall_us = clock.now_us();
        // A database that knows no time yet (new, or from before times were
        // kept) has nothing to hold the clock against.
        let plausible = known_us == 0 || wall_us <= known_us.saturating_add(OPEN_GAP_US);
        let base = if plausible {
            Base {
                wall_us,
                monotonic_us: clock.monotonic_us(),
                allowance_us: LEAP_US,
            }
        } else {
            tracing::warn!(
                wall_us,
                known_us,
                bound_s = CLOCK_OPEN_GAP_MAX.as_secs(),
                "the wall clock at open is further past everything the database knows than the bound: \
                 deadlines are held back by the excess until the clock is trusted"
            );
            Base {
                wall_us: known_us,
                monotonic_us: clock.monotonic_us(),
                allowance_us: LEAP_US + OPEN_GAP_US,
            }
        };
        let deadlines = Deadlines {
            clock,
            base: Mutex::new(base),
            state: Mutex::new(ClockState::Believed),
        };
        deadlines.now_us();
        deadlines
    }

    /// The believed time (µs since the epoch), which deadlines are compared
    /// with; notes whether the wall clock is doubted.
    pub(crate) fn now_us(&self) -> u64 {
        self.read().0
    }

    /// The time the engine has evidence for (µs since the epoch): what is
    /// recorded for the next open to hold its wall clock against.
    pub(crate) fn evidence_us(&self) -> u64 {
        self.read().1
    }

    /// (believed, evidence), and the clock's state noted.
    fn read(&self) -> (u64, u64) {
        let wall_us = self.clock.now_us();
        let monotonic_us = self.clock.monotonic_us();
        let base = *self.base.lock();
        let passed_us = monotonic_us.saturating_sub(base.monotonic_us);
        let evidence_us = base.wall_us.saturating_add(passed_us);
        let ceiling_us = evidence_us.saturating_add(base.allowance_us);
        let believed_us = wall_us.min(ceiling_us);
        let state = if wall_us <= ceiling_us {
            ClockState::Believed
        } else {
            ClockState::Doubted {
                wall_us,
                believed_us,
            }
        };
        let mut noted = self.state.lock();
        if matches!(state, ClockState::Doubted { .. }) && *noted == ClockState::Believed {
            tracing::warn!(
                wall_us,
                believed_us,
                bound_s = CLOCK_LEAP_MAX.as_secs(),
                "the wall clock leapt ahead of the time that has passed: deadlines follow the believed time"
            );
        } else if state == ClockState::Believed && *noted != ClockState::Believed {
            tracing::info!(wall_us, "the wall clock is believed again");
        }
        *noted = state;
        (believed_us, evidence_us.min(believed_us))
    }

    /// What the engine makes of the wall clock now.
    pub(crate) fn state(&self) -> ClockState {
        self.now_us();
        *self.state.lock()
    }

    /// Accepts the wall clock as right (an operator's decision): from now
    /// on deadlines follow it, and those it says have passed are due.
    pub(crate) fn trust_wall_clock(&self) {
        let wall_us = self.clock.now_us();
        *self.base.lock() = Base {
            wall_us,
            monotonic_us: self.clock.monotonic_us(),
            allowance_us: LEAP_US,
        };
        tracing::warn!(wall_us, "the wall clock is trusted by the operator");
        self.now_us();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    const HOUR: Duration = Duration::from_secs(3600);

    fn us(d: Duration) -> u64 {
        d.as_micros() as u64
    }

    #[test]
    fn the_wall_clock_is_believed_while_it_moves_with_time() {
        let clock = Arc::new(ManualClock::at(1_000_000_000));
        let d = Deadlines::open(clock.clone(), 1_000_000_000);
        clock.advance(HOUR);
        assert_eq!(d.now_us(), 1_000_000_000 + us(HOUR));
        assert_eq!(d.state(), ClockState::Believed);
        // A small step ahead is within the bound.
        clock.jump(Duration::from_secs(60));
        assert_eq!(d.state(), ClockState::Believed);
    }

    #[test]
    fn small_steps_ahead_do_not_add_up_to_a_leap() {
        let start = 1_000_000_000;
        let clock = Arc::new(ManualClock::at(start));
        let d = Deadlines::open(clock.clone(), start);
        let step = CLOCK_LEAP_MAX * 4 / 5;
        clock.jump(step);
        assert_eq!(d.state(), ClockState::Believed);
        assert_eq!(d.now_us(), start + us(step));
        clock.jump(step);
        assert!(matches!(d.state(), ClockState::Doubted { .. }));
        assert_eq!(d.now_us(), start + us(CLOCK_LEAP_MAX));
        // What is recorded for the next open is what has passed, not the steps.
        assert_eq!(d.evidence_us(), start);
    }

    #[test]
    fn a_leap_ahead_is_not_believed_and_trust_accepts_it() {
        let start = 1_000_000_000;
        let clock = Arc::new(ManualClock::at(start));
        let d = Deadlines::open(clock.clone(), start);
        clock.jump(365 * 24 * HOUR);
        let believed = d.now_us();
        assert_eq!(believed, start + us(CLOCK_LEAP_MAX));
        assert!(matches!(d.state(), ClockState::Doubted { .. }));
        // Time passing moves the believed time, at its own pace.
        clock.advance(HOUR);
        assert_eq!(d.now_us(), believed + us(HOUR));
        d.trust_wall_clock();
        assert_eq!(d.state(), ClockState::Believed);
        assert_eq!(d.now_us(), clock.now_us());
    }

    #[test]
    fn an_implausible_clock_at_open_is_held_to_the_bound() {
        let known = 1_700_000_000_000_000;
        let clock = Arc::new(ManualClock::at(known + us(365 * 24 * HOUR)));
        let d = Deadlines::open(clock.clone(), known);
        let ceiling = known + us(CLOCK_OPEN_GAP_MAX) + us(CLOCK_LEAP_MAX);
        assert_eq!(d.now_us(), ceiling);
        assert!(matches!(d.state(), ClockState::Doubted { .. }));
        // Only the evidence is recorded for the next open: what it knew.
        assert_eq!(d.evidence_us(), known);
        clock.advance(HOUR);
        assert_eq!(d.evidence_us(), known + us(HOUR));
        // A plausible one is believed as it is, and a clock behind too.
        let plausible = Arc::new(ManualClock::at(known + us(HOUR)));
        assert_eq!(Deadlines::open(plausible, known).now_us(), known + us(HOUR));
        let behind = Arc::new(ManualClock::at(known - us(HOUR)));
        assert_eq!(Deadlines::open(behind, known).now_us(), known - us(HOUR));
    }
}
