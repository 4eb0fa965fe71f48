//! Crypto-shredding: sealing a scope for a grace period, destroying its keys,
//! and reclaiming its space.
//!
//! A shred first records a seal (with its deadline) in the keyring's seals
//! ledger, durably. With no grace period the keys are destroyed at once;
//! otherwise the scope refuses reads and writes until the deadline, when the
//! engine destroys them (or until the shred is cancelled). Destruction is
//! one atomic rewrite of the shard that holds the keys, whatever the amount
//! of data: constant time. Reclaiming the space (a RocksDB range deletion and
//! compaction of the scope's keys) runs afterwards, from the maintenance
//! pass, and only then is the seal marked done. A crash at any point leaves
//! a due seal, which the next maintenance pass (one runs at open) completes.

use std::time::{Duration, Instant};

use super::db::{Db, Inner};
use super::handles::Tenant;
use crate::crypto::keyring::ScopeState;
use crate::error::Result;
use crate::scope::{Scope, SubjectId, TenantId};
use crate::store::key_codec;

/// The grace period of a shred, during which the scope is sealed and the
/// shred can be cancelled. Default: 7 days.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShredOptions {
    /// How long the scope stays sealed before its keys are destroyed.
    pub grace: Duration,
}

impl Default for ShredOptions {
    fn default() -> Self {
        ShredOptions {
            grace: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

impl ShredOptions {
    /// No grace period: the keys are destroyed before the call returns.
    pub fn immediate() -> Self {
        ShredOptions {
            grace: Duration::ZERO,
        }
    }

    /// A grace period of `grace`.
    pub fn with_grace(grace: Duration) -> Self {
        ShredOptions { grace }
    }
}

impl Inner {
    /// Seals `scope`, and destroys its keys now if there is no grace period.
    pub(crate) fn shred(&self, scope: Scope, options: ShredOptions) -> Result<ScopeState> {
        self.check_writable()?;
        let grace_us = u64::try_from(options.grace.as_micros()).unwrap_or(u64::MAX);
        let deadline_us = self.deadlines.now_us().saturating_add(grace_us);
        let sealed = self
            .keyring
            .seal(scope, deadline_us, options.grace.is_zero());
        // After the gate is set (or whatever the seal did): nothing of the
        // scope stays opened in memory.
        self.scan_cache.purge(scope);
        sealed?;
        self.note_evidence_after_change();
        if !options.grace.is_zero() {
            // A pending seal is in the archive too.
            self.ship_keyring_after_change();
            tracing::info!(%scope, deadline_us, "shred: sealed for its grace period");
            return Ok(ScopeState::Sealed { deadline_us });
        }
        let started = Instant::now();
        if !self.keyring.destroy_if_due(scope, deadline_us)? {
            // Cancelled by another caller between the seal and here.
            return self.keyring.state(scope);
        }
        self.note_evidence_after_change();
        // The archive's copy of the shard, and every older one, replaced
        // before the shred is reported done (when the archive answers).
        self.ship_keyring_after_change();
        tracing::info!(%scope, elapsed_us = started.elapsed().as_micros() as u64, "shred: keys destroyed");
        Ok(ScopeState::Shredded)
    }

    /// Cancels the shred of a sealed scope. Returns whether it was sealed.
    pub(crate) fn cancel_shred(&self, scope: Scope) -> Result<bool> {
        self.check_writable()?;
        let cancelled = self.keyring.cancel_seal(scope)?;
        if cancelled {
            self.note_evidence_after_change();
            self.ship_keyring_after_change();
            tracing::info!(%scope, "shred: cancelled");
        }
        Ok(cancelled)
    }

    /// Records the keyring's new epoch in the store after a change that a
    /// rolled-back keyring would undo. The change itself is durable and
    /// done; a store that cannot take the note now gets it at the next
    /// maintenance pass or close, so the failure is logged, not returned.
    fn note_evidence_after_change(&self) {
        if let Err(e) = self.note_evidence() {
            tracing::warn!(error = %e, "shred: cannot record the keyring's epoch in the store yet");
        }
    }

    /// Destroys every sealed scope whose deadline has passed, and reclaims
    /// the space of every destroyed one. Returns how many it completed.
    pub(crate) fn complete_due_shreds(&self) -> Result<usize> {
        // The believed time: a wall clock that leapt ahead destroys nothing.
        let now = self.deadlines.now_us();
        let mut completed = 0;
        for (scope, deadline_us) in self.keyring.pending_seals() {
            if deadline_us > now {
                continue;
            }
            let started = Instant::now();
            if !self.keyring.destroy_if_due(scope, now)? {
                continue; // cancelled since the list was taken
            }
            let destroyed = started.elapsed();
            self.store
                .reclaim_prefix(&key_codec::shred_prefix(scope), self.keyring.epoch())?;
            self.keyring.finish_seal(scope)?;
            tracing::info!(
                %scope,
                destroy_us = destroyed.as_micros() as u64,
                reclaim_ms = (started.elapsed() - destroyed).as_millis() as u64,
                "shred: keys destroyed and space reclaimed"
            );
            completed += 1;
        }
        if completed > 0 {
            self.ship_keyring_after_change();
        }
        Ok(completed)
    }
}

impl Db {
    /// Shreds a tenant: its own scope and every subject's. With a grace
    /// period (the default is 7 days) the tenant is sealed until the
    /// deadline and the shred can be cancelled; with none, its keys are
    /// destroyed before this returns. Either way the decision is durable
    /// when it returns. Returns the tenant's new state.
    pub fn shred_tenant(&self, tenant: TenantId, options: ShredOptions) -> Result<ScopeState> {
        self.inner.shred(Scope::tenant(tenant), options)
    }

    /// Cancels the shred of a sealed tenant. Returns whether it was sealed;
    /// a shredded tenant is [`crate::Error::Shredded`].
    pub fn cancel_shred_tenant(&self, tenant: TenantId) -> Result<bool> {
        self.inner.cancel_shred(Scope::tenant(tenant))
    }
}

impl Tenant<'_> {
    /// Shreds one subject of this tenant (the person's right to be
    /// forgotten), as [`Db::shred_tenant`] does a tenant.
    pub fn shred_subject(&self, subject: SubjectId, options: ShredOptions) -> Result<ScopeState> {
        self.db
            .inner
            .shred(Scope::subject(self.id, subject), options)
    }

    /// Cancels the shred of a sealed subject. Returns whether it was sealed.
    pub fn cancel_shred_subject(&self, subject: SubjectId) -> Result<bool> {
        self.db.inner.cancel_shred(Scope::subject(self.id, subject))
    }
}

#[cfg(test)]
mod tests {
    use crate::{Db, Options, Scope, ShredOptions, SubjectId, TenantId};

    /// Once a shred returns, the destroyed keys are gone from the keyring's
    /// cache and their bytes are wiped, even from the copies that a snapshot
    /// still holds (it can no longer use them).
    #[test]
    fn a_shred_wipes_the_key_bytes_that_readers_hold() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path(), Options::with_key([6; 32])).unwrap();
        let tenant = db.tenant(TenantId(1));
        tenant.put(b"k", b"v").unwrap();
        tenant.subject(SubjectId(5)).put(b"k", b"v").unwrap();
        tenant.subject(SubjectId(6)).put(b"k", b"v").unwrap();
        let keyring = &db.inner.keyring;
        let (tenant_scope, s5, s6) = (
            Scope::tenant(TenantId(1)),
            Scope::subject(TenantId(1), SubjectId(5)),
            Scope::subject(TenantId(1), SubjectId(6)),
        );
        let held: Vec<_> = [tenant_scope, s5, s6]
            .map(|s| keyring.lookup(s, None).unwrap().unwrap())
            .into();
        let view = tenant.snapshot().unwrap();

        tenant
            .shred_subject(SubjectId(5), ShredOptions::immediate())
            .unwrap();
        assert!(keyring.lookup(s5, None).unwrap().is_none());
        assert!(held[1].is_wiped(), "subject 5's bytes are wiped");
        assert!(!held[0].is_wiped() && !held[2].is_wiped());

        db.shred_tenant(TenantId(1), ShredOptions::immediate())
            .unwrap();
        assert!(keyring.lookup(tenant_scope, None).unwrap().is_none());
        assert!(keyring.lookup(s6, None).unwrap().is_none());
        assert!(held.iter().all(|k| k.is_wiped()), "every key of the tenant");
        drop(view);
    }
}
