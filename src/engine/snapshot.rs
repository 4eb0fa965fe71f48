//! Snapshots.
//!
//! A snapshot, and every scan of one, reads a point-in-time view of the store, so both pin the scope's keys
//! for that moment: the versions live just before and just after the view was
//! taken. A record they see under a version that a rotation retires later
//! still opens.

use std::sync::Arc;

use super::db::Inner;
use super::scan::Scan;
use crate::crypto::scope_key::ScopeKeys;
use crate::error::Result;
use crate::scope::{Scope, SubjectId};
use crate::store::{StoreSnapshot, Version};

/// A consistent, read-only view of a tenant (and its subjects) as of the
/// moment it was taken. Later writes are invisible to it.
pub struct Snapshot<'db> {
    inner: &'db Inner,
    snapshot: Arc<StoreSnapshot<'db>>,
    scope: Scope,
    keys: Option<ScopeKeys>,
    /// The scope's write version when the view was taken, if no write to
    /// it was under way (what the scan cache serves by).
    version: Option<Version>,
}

impl<'db> Snapshot<'db> {
    pub(crate) fn new(inner: &'db Inner, scope: Scope) -> Result<Snapshot<'db>> {
        let before = inner.store.version(scope);
        let (keys, snapshot) = inner.pin_keys(scope, || inner.store.snapshot())?;
        // Unchanged across the view: the view holds the scope at `before`.
        let version = before.filter(|v| inner.store.version(scope) == Some(*v));
        Ok(Snapshot {
            inner,
            snapshot: Arc::new(snapshot),
            scope,
            keys,
            version,
        })
    }

    /// The value at `key` in this snapshot's scope.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        match &self.keys {
            Some(keys) => self
                .inner
                .get(self.scope, key, Some((&self.snapshot, keys))),
            None => Ok(None),
        }
    }

    /// Every (key, value) of this snapshot's scope, in token order.
    pub fn scan(&self) -> Result<Scan<'db>> {
        Ok(Scan::over(
            self.inner,
            self.scope,
            self.keys.clone(),
            Arc::clone(&self.snapshot),
            self.version,
        ))
    }

    /// The same snapshot, seen from one subject of the tenant.
    pub fn subject(&self, subject: SubjectId) -> Result<Snapshot<'db>> {
        let scope = Scope::subject(self.scope.tenant, subject);
        Ok(Snapshot {
            inner: self.inner,
            snapshot: Arc::clone(&self.snapshot),
            scope,
            // Subject keys are rewrapped, never rotated: today's key is the
            // snapshot's.
            keys: self.inner.read_keys(scope)?,
            // Not read when the view was taken.
            version: None,
        })
    }
}

impl Inner {
    /// Takes a view of the store with `take`, and the scope's keys valid
    /// across that moment (live just before or just after).
    pub(crate) fn pin_keys<T>(
        &self,
        scope: Scope,
        take: impl FnOnce() -> T,
    ) -> Result<(Option<ScopeKeys>, T)> {
        let before = self.keyring.keys(scope)?;
        let view = take();
        let after = self.keyring.keys(scope)?;
        let keys = ScopeKeys::union(before, after);
        if keys.is_none() {
            self.check_keyless(scope)?;
        }
        Ok((keys, view))
    }
}
