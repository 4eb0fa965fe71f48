//! Write versions: whether a scope's records changed since a moment.
//!
//! Every write of records bumps a counter twice, once before it reaches
//! RocksDB and once after, so a counter is odd exactly while a write is
//! under way. A reader that reads a scope's [`Version`] before taking its
//! view of the store, and the same version again later, knows that no
//! write to the scope began or ended in between: its view is the scope as
//! it stood at that version. The scan cache (`engine/scan_cache.rs`) labels
//! the records it keeps with it.
//!
//! Scopes share counters ([`SLOTS`] of them, by a hash of the scope), and
//! writes over a range of scopes (a shred's reclaim, a restore keeping one
//! tenant) bump one counter that every version includes: both only make a
//! version change more often than its scope does, never less.
//!
//! # Invariants
//! - Writers hold `writing` from their first bump to their last, so no two
//!   interleave theirs and a counter is odd only while its write runs.
//! - A version is taken only when even ([`Versions::version`] returns
//!   `None` during a write), and compares equal only if nothing was
//!   written to its scope between the two readings.

use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::{Mutex, MutexGuard};

use crate::scope::Scope;

/// Counters scopes share, by hash: enough that writes to other scopes
/// rarely change a cached scope's version.
const SLOTS: usize = 4096;

/// A scope's version: its counter and the range counter, both even.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Version {
    slot: u64,
    ranges: u64,
}

impl Version {
    /// Whether this version was read after `other` and the scope changed
    /// in between (counters only grow).
    pub(crate) fn is_after(self, other: Version) -> bool {
        self != other && self.slot >= other.slot && self.ranges >= other.ranges
    }
}

/// The write counters of one store.
pub(crate) struct Versions {
    slots: Box<[AtomicU64]>,
    ranges: AtomicU64,
    writing: Mutex<()>,
}

fn slot_of(scope: Scope) -> usize {
    let (kind, subject) = scope.encode_kind();
    // A multiplicative hash (Fibonacci hashing): not a secret, only a spread.
    let mixed = (scope.tenant.0 ^ subject.rotate_left(29) ^ (u64::from(kind) << 61))
        .wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (mixed >> (64 - SLOTS.trailing_zeros())) as usize
}

impl Versions {
    pub(crate) fn new() -> Versions {
        const { assert!(SLOTS.is_power_of_two()) };
        Versions {
            slots: (0..SLOTS).map(|_| AtomicU64::new(0)).collect(),
            ranges: AtomicU64::new(0),
            writing: Mutex::new(()),
        }
    }

    /// `scope`'s version now, or `None` while a write to it is under way.
    pub(crate) fn version(&self, scope: Scope) -> Option<Version> {
        let version = Version {
            slot: self.slots[slot_of(scope)].load(Ordering::SeqCst),
            ranges: self.ranges.load(Ordering::SeqCst),
        };
        (version.slot.is_multiple_of(2) && version.ranges.is_multiple_of(2)).then_some(version)
    }

    /// Runs `write`, a write of records of `scopes`, between the bumps of
    /// their counters.
    pub(crate) fn writing<T>(
        &self,
        scopes: impl IntoIterator<Item = Scope>,
        write: impl FnOnce() -> T,
    ) -> T {
        let mut slots: Vec<usize> = scopes.into_iter().map(slot_of).collect();
        slots.sort_unstable();
        slots.dedup();
        let _writing = self.writing.lock();
        let bump = |slots: &[usize]| {
            for &slot in slots {
                self.slots[slot].fetch_add(1, Ordering::SeqCst);
            }
        };
        bump(&slots);
        let _end = OnDrop(|| bump(&slots));
        write()
    }

    /// Runs `write`, a write over a range of scopes, between the bumps of
    /// the range counter.
    pub(crate) fn writing_range<T>(&self, write: impl FnOnce() -> T) -> T {
        let _writing: MutexGuard<'_, ()> = self.writing.lock();
        self.ranges.fetch_add(1, Ordering::SeqCst);
        let _end = OnDrop(|| {
            self.ranges.fetch_add(1, Ordering::SeqCst);
        });
        write()
    }
}

/// Runs its closure when dropped: the second bump happens even if the
/// write panics, so a counter is never left odd.
struct OnDrop<F: FnMut()>(F);

impl<F: FnMut()> Drop for OnDrop<F> {
    fn drop(&mut self) {
        (self.0)()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scope::{SubjectId, TenantId};

    #[test]
    fn a_version_changes_with_every_write_to_its_scope_and_is_none_during_one() {
        let versions = Versions::new();
        let a = Scope::tenant(TenantId(1));
        let b = Scope::subject(TenantId(1), SubjectId(7));
        let before = versions.version(a).unwrap();
        versions.writing([a, a], || {
            assert_eq!(versions.version(a), None, "a write is under way");
        });
        let after = versions.version(a).unwrap();
        assert_ne!(before, after);
        assert_eq!(after.slot, before.slot + 2, "one write, one pair of bumps");
        let b_before = versions.version(b).unwrap();
        versions.writing_range(|| {
            assert_eq!(versions.version(b), None);
        });
        assert_ne!(versions.version(b).unwrap(), b_before);
        assert_ne!(
            versions.version(a).unwrap(),
            after,
            "ranges cover every scope"
        );
    }

    #[test]
    fn scopes_spread_over_the_counters() {
        let mut used = std::collections::HashSet::new();
        for tenant in 0..64 {
            for subject in 0..64 {
                used.insert(slot_of(Scope::subject(
                    TenantId(tenant),
                    SubjectId(subject),
                )));
            }
            used.insert(slot_of(Scope::tenant(TenantId(tenant))));
        }
        assert!(used.len() > SLOTS / 2, "{} counters used", used.len());
    }
}
