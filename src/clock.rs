//! Time as the engine records it: commit times, key creation times, and the
//! deadlines of sealed scopes. A [`Clock`] in [`crate::Options`] supplies it,
//! so that tests (and simulations) can move time by hand.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A source of wall-clock time, in microseconds since the Unix epoch.
pub trait Clock: Send + Sync + fmt::Debug {
    /// Microseconds since the Unix epoch.
    fn now_us(&self) -> u64;
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

/// A clock that moves only when told to: for tests of deadlines.
#[derive(Debug)]
pub struct ManualClock(AtomicU64);

impl ManualClock {
    /// A clock reading the system's time now, until moved.
    pub fn starting_now() -> Self {
        ManualClock(AtomicU64::new(SystemClock.now_us()))
    }

    /// A clock reading `now_us` (µs since the Unix epoch), until moved: a
    /// clock set wrong, for tests of what a wrong clock may not do.
    pub fn at(now_us: u64) -> Self {
        ManualClock(AtomicU64::new(now_us))
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        self.0.fetch_add(by.as_micros() as u64, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_us(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}
