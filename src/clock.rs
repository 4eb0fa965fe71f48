//! Time as the engine records it: commit times, key creation times, and the
//! deadlines of sealed scopes. A [`Clock`] in [`crate::Options`] supplies it,
//! so that tests (and simulations) can move time by hand.
//!
//! A clock has two faces: the wall clock (µs since the Unix epoch, which
//! can be wrong or jump) and a monotonic clock (which only counts time
//! passing). Deadlines are acted on only when the two agree
//! (`engine/deadline.rs`).

use std::fmt;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A source of time.
pub trait Clock: Send + Sync + fmt::Debug {
    /// Wall-clock time: microseconds since the Unix epoch.
    fn now_us(&self) -> u64;

    /// Microseconds on a clock that never jumps and only counts time passing
    /// (only differences between its readings mean anything). The default
    /// is the operating system's monotonic clock.
    fn monotonic_us(&self) -> u64 {
        static START: OnceLock<Instant> = OnceLock::new();
        START.get_or_init(Instant::now).elapsed().as_micros() as u64
    }
}

/// The operating system's clock. The default.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_us(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or(0)
    }
}

/// A clock that moves only when told to: for tests of deadlines, and of what
/// a wrong wall clock may not do.
#[derive(Debug)]
pub struct ManualClock {
    wall_us: AtomicU64,
    monotonic_us: AtomicU64,
}

impl ManualClock {
    /// A clock reading the system's time now, until moved.
    pub fn starting_now() -> Self {
        ManualClock::at(SystemClock.now_us())
    }

    /// A clock reading `now_us` (µs since the Unix epoch), until moved: a
    /// clock set wrong, for tests of what a wrong clock may not do.
    pub fn at(now_us: u64) -> Self {
        ManualClock {
            wall_us: AtomicU64::new(now_us),
            monotonic_us: AtomicU64::new(0),
        }
    }

    /// Lets time pass: the wall clock and the monotonic clock move together.
    pub fn advance(&self, by: Duration) {
        let by = by.as_micros() as u64;
        self.wall_us.fetch_add(by, Ordering::SeqCst);
        self.monotonic_us.fetch_add(by, Ordering::SeqCst);
    }

    /// Moves the wall clock alone, as a wrong clock, an NTP step or a
    /// restored virtual machine does: no time passes.
    pub fn jump(&self, by: Duration) {
        self.wall_us
            .fetch_add(by.as_micros() as u64, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_us(&self) -> u64 {
        self.wall_us.load(Ordering::SeqCst)
    }

    fn monotonic_us(&self) -> u64 {
        self.monotonic_us.load(Ordering::SeqCst)
    }
}
