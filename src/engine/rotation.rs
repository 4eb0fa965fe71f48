//! Tenant key rotation: a new sealing version for new writes, a
//! re-encryption pass over the tenant's own records, rewrapping of its
//! subjects' keys, and then destruction of the old versions.
//!
//! The pass is throttled (it yields between batches when it runs in the
//! background), resumable (it keeps no state: a tenant with more than one
//! sealing version has a rotation to finish, and a record's version prefix
//! says whether it still needs re-sealing), and safe against concurrent
//! writes: each re-sealed record is committed only if the store still holds
//! the bytes it was read from (the commit leader checks), and the old
//! versions are destroyed only after a last scan, made with commits paused,
//! finds nothing sealed under them.
//!
//! Every step works towards the version the pass started with, passed
//! explicitly: a rotation that begins meanwhile must not make this pass
//! retire a version that still seals records or wraps subject keys (the
//! crash harness found exactly that).
//!
//! Tokens do not change: a tenant's token key is its own key version 0,
//! which rotation leaves alone, so re-sealed records keep their store keys.

use std::time::{Duration, Instant};

use super::db::Inner;
use super::handles::Tenant;
use crate::crypto::record;
use crate::crypto::scope_key::ScopeKey;
use crate::error::{CorruptionKind, Error, Result};
use crate::scope::{Scope, TenantId};
use crate::store::key_codec;
use crate::wal::EncodedBatch;

/// Records re-sealed per commit.
const REENCRYPT_BATCH: usize = 256;
/// Pause between batches when the pass runs in the background.
const REENCRYPT_PAUSE: Duration = Duration::from_millis(5);
/// How often (in batches) the pass reports its progress.
const PROGRESS_EVERY_BATCHES: u64 = 40;

impl Tenant<'_> {
    /// Rotates the tenant's key: new writes seal under a new version at
    /// once; a background pass re-seals the tenant's records and rewraps its
    /// subjects' keys under it, then destroys the old versions. Reads work
    /// throughout. Returns the new version.
    pub fn rotate_key(&self) -> Result<u32> {
        self.db.inner.check_writable()?;
        // A tenant's first key is made here only over no data.
        self.db.inner.key_for_write(Scope::tenant(self.id))?;
        let version = self.db.inner.keyring.rotate_tenant(self.id)?;
        tracing::info!(tenant = self.id.0, version, "rotation: new key version");
        Ok(version)
    }
}

impl Inner {
    /// Advances every unfinished rotation. With a budget (the background
    /// thread's), it pauses between batches and stops when the budget is
    /// spent; without, it runs every rotation to the end.
    pub(crate) fn advance_rotations(&self, budget: Option<Duration>) -> Result<()> {
        let until = budget.map(|b| Instant::now() + b);
        for tenant in self.keyring.rotating_tenants() {
            if !self.finish_rotation(tenant, until)? {
                return Ok(());
            }
        }
        Ok(())
    }

    /// Returns false if it stopped because `until` passed.
    fn finish_rotation(&self, tenant: TenantId, until: Option<Instant>) -> Result<bool> {
        if !self.can_retire() {
            // Left for a pass after the archive is back: the rotation's last
            // step needs it, with commits held.
            tracing::debug!(tenant = tenant.0, "rotation: waits for the archive");
            return Ok(true);
        }
        let scope = Scope::tenant(tenant);
        let Some(newest) = self.keyring.current_key(scope)? else {
            return Ok(true);
        };
        let started = Instant::now();
        let mut resealed = 0u64;
        loop {
            let Some(count) = self.reseal_scope(scope, &newest, until)? else {
                return Ok(false);
            };
            resealed += count;
            let rewrapped = self.keyring.rewrap_subjects(tenant, newest.version())?;
            // Commits pause while the last scan runs and the old versions
            // go, so no put sealed under an old version can land in between
            // (the leader refuses those once they are gone).
            let mut writer = self.commit.exclusive()?;
            let start = key_codec::scope_prefix(scope);
            if self.reseal_batch(scope, &newest, &start)?.0.count > 0 {
                continue; // stragglers sealed before the rotation: once more
            }
            // The re-sealed frames must be durable before the keys that read
            // the old copies go (under SyncInterval they may not be yet).
            writer.sync()?;
            // Rotation is not destruction: the versions going must be in the
            // archive first (else the retirement waits for a later pass).
            self.archive_retired(tenant, newest.version())?;
            let retired = self
                .keyring
                .retire_versions_below(tenant, newest.version())?;
            drop(writer);
            tracing::info!(
                tenant = tenant.0,
                version = newest.version(),
                resealed,
                rewrapped,
                ?retired,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "rotation: done, old versions destroyed"
            );
            return Ok(true);
        }
    }

    /// One pass over the scope, re-sealing what is under older versions
    /// than `newest`. Returns how many records it re-sealed, or `None` if it
    /// stopped because `until` passed.
    fn reseal_scope(
        &self,
        scope: Scope,
        newest: &std::sync::Arc<ScopeKey>,
        until: Option<Instant>,
    ) -> Result<Option<u64>> {
        let mut resealed = 0u64;
        let mut from = key_codec::scope_prefix(scope).to_vec();
        for batches in 1u64.. {
            let (batch, next) = self.reseal_batch(scope, newest, &from)?;
            if batch.count > 0 {
                // A refusal means a user write got there first: that record
                // is sealed under the newest version now, or gone.
                let count = u64::from(batch.count);
                if self
                    .commit
                    .commit(&self.store, &self.keyring, batch)?
                    .is_some()
                {
                    resealed += count;
                }
            }
            let Some(next) = next else { break };
            from = next;
            if batches.is_multiple_of(PROGRESS_EVERY_BATCHES) {
                tracing::info!(
                    tenant = scope.tenant.0,
                    resealed,
                    "rotation: re-sealing records"
                );
            }
            if let Some(until) = until {
                if Instant::now() >= until {
                    return Ok(None);
                }
                std::thread::sleep(REENCRYPT_PAUSE);
            }
        }
        Ok(Some(resealed))
    }

    /// Re-seals, under `newest`, up to a batch of the scope's records from
    /// `from` on that are sealed under older versions. Returns the batch (its
    /// puts expect the bytes they replace) and where to go on, if anywhere.
    fn reseal_batch(
        &self,
        scope: Scope,
        newest: &std::sync::Arc<ScopeKey>,
        from: &[u8],
    ) -> Result<(EncodedBatch, Option<Vec<u8>>)> {
        let mut batch = EncodedBatch::default();
        // Versions below `newest` are retired only by this pass, after it.
        let Some(keys) = self.keyring.keys(scope)? else {
            return Ok((batch, None));
        };
        let newest = newest.lease().map_err(|r| Error::revoked(scope, r))?;
        for item in self.store.scan_from(scope, from, None) {
            let (store_key, sealed) = item.map_err(crate::store::iter_err)?;
            if batch.count as usize == REENCRYPT_BATCH {
                return Ok((batch, Some(store_key.to_vec())));
            }
            // Records under `newest` or a later version (a rotation that
            // began since) need nothing from this pass.
            if record::key_version(&sealed).is_some_and(|v| v >= newest.version()) {
                continue;
            }
            let token = key_codec::token_of(&store_key).ok_or_else(|| {
                self.store
                    .corruption(CorruptionKind::Malformed("store key"))
            })?;
            let (user_key, value) = self.open(&keys, &token, &sealed)?;
            debug_assert_eq!(newest.scope(), scope);
            self.encode_sealed_put(&newest, &token, &user_key, &value, &mut batch.entries);
            batch.count += 1;
            let key = store_key[..]
                .try_into()
                .expect("data keys have a fixed length");
            batch.expect.push((key, sealed.to_vec()));
        }
        Ok((batch, None))
    }
}

#[cfg(test)]
mod tests {
    use crate::{Db, Options, Scope, TenantId};

    /// The race the commit leader's check closes: re-encryption reads a
    /// record, a user write replaces it, then the stale re-sealed copy
    /// arrives. It must be refused, and the user's value must stand.
    #[test]
    fn a_stale_resealed_record_never_overwrites_a_newer_write() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path(), Options::with_key([4; 32])).unwrap();
        let t = db.tenant(TenantId(1));
        t.put(b"k", b"old").unwrap();
        t.rotate_key().unwrap();
        let inner = &db.inner;
        let scope = Scope::tenant(TenantId(1));
        let newest = inner.keyring.current_key(scope).unwrap().unwrap();
        let start = crate::store::key_codec::scope_prefix(scope);
        let (stale, _) = inner.reseal_batch(scope, &newest, &start).unwrap();
        assert_eq!(stale.count, 1);
        t.put(b"k", b"new").unwrap();
        let outcome = inner
            .commit
            .commit(&inner.store, &inner.keyring, stale)
            .unwrap();
        assert_eq!(outcome, None, "refused");
        assert_eq!(t.get(b"k").unwrap(), Some(b"new".to_vec()));
    }

    /// A put sealed under a version that was retired while it waited is
    /// refused (the writer then seals it again), never applied unreadable.
    #[test]
    fn a_put_sealed_under_a_retired_version_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path(), Options::with_key([4; 32])).unwrap();
        let t = db.tenant(TenantId(1));
        t.put(b"k", b"v1").unwrap();
        let inner = &db.inner;
        let mut batch = crate::WriteBatch::new();
        batch.put(b"k".to_vec(), b"sealed under 1".to_vec());
        let stale = inner
            .seal_batch(Scope::tenant(TenantId(1)), batch.op_refs())
            .unwrap()
            .unwrap();
        t.rotate_key().unwrap();
        db.run_maintenance().unwrap();
        let outcome = inner
            .commit
            .commit(&inner.store, &inner.keyring, stale)
            .unwrap();
        assert_eq!(outcome, None, "refused");
        assert_eq!(t.get(b"k").unwrap(), Some(b"v1".to_vec()));
        t.write(batch).unwrap();
        assert_eq!(
            t.get(b"k").unwrap(),
            Some(b"sealed under 1".to_vec()),
            "resealed and written"
        );
    }
}
