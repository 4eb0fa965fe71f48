//! Snapshots and scans.
//!
//! Both read a point-in-time view of the store, so both pin the scope's keys
//! for that moment: the versions live just before and just after the view was
//! taken. A record they see under a version that a rotation retires later
//! still opens.

use std::sync::Arc;

use super::db::Inner;
use crate::crypto::scope_key::ScopeKeys;
use crate::error::{CorruptionKind, Result};
use crate::scope::{Scope, SubjectId};
use crate::store::{StoreIter, StoreSnapshot, iter_err, key_codec};

/// A consistent, read-only view of a tenant (and its subjects) as of the
/// moment it was taken. Later writes are invisible to it.
pub struct Snapshot<'db> {
    inner: &'db Inner,
    snapshot: Arc<StoreSnapshot<'db>>,
    scope: Scope,
    keys: Option<ScopeKeys>,
}

impl<'db> Snapshot<'db> {
    pub(crate) fn new(inner: &'db Inner, scope: Scope) -> Result<Snapshot<'db>> {
        let (keys, snapshot) = inner.pin_keys(scope, || inner.store.snapshot())?;
        Ok(Snapshot {
            inner,
            snapshot: Arc::new(snapshot),
            scope,
            keys,
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
            Some(Arc::clone(&self.snapshot)),
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
        })
    }
}

/// An iterator over the records of one scope, yielding `(key, value)` in
/// token order (the order of keyed hashes of the keys, not of the keys).
pub struct Scan<'db> {
    // Field order matters: the iterator must drop before the snapshot it reads.
    iter: Option<StoreIter<'db>>,
    _snapshot: Option<Arc<StoreSnapshot<'db>>>,
    inner: &'db Inner,
    keys: Option<ScopeKeys>,
}

impl<'db> Scan<'db> {
    /// A scan of the live store (its iterator is its own point in time).
    pub(crate) fn new(inner: &'db Inner, scope: Scope) -> Result<Scan<'db>> {
        let (keys, iter) = inner.pin_keys(scope, || inner.store.scan(scope, None))?;
        Ok(Scan {
            iter: keys.as_ref().map(|_| iter),
            _snapshot: None,
            inner,
            keys,
        })
    }

    fn over(
        inner: &'db Inner,
        scope: Scope,
        keys: Option<ScopeKeys>,
        snapshot: Option<Arc<StoreSnapshot<'db>>>,
    ) -> Scan<'db> {
        let iter = keys
            .as_ref()
            .map(|_| inner.store.scan(scope, snapshot.as_deref()));
        Scan {
            iter,
            _snapshot: snapshot,
            inner,
            keys,
        }
    }
}

impl Iterator for Scan<'_> {
    type Item = Result<(Vec<u8>, Vec<u8>)>;

    fn next(&mut self) -> Option<Self::Item> {
        let (store_key, sealed) = match self.iter.as_mut()?.next()? {
            Ok(kv) => kv,
            Err(e) => return Some(Err(iter_err(e))),
        };
        let keys = self
            .keys
            .as_ref()
            .expect("an iterator exists only with keys");
        let Some(token) = key_codec::token_of(&store_key) else {
            let kind = CorruptionKind::Malformed("store key");
            return Some(Err(self.inner.store.corruption(kind)));
        };
        Some(self.inner.open(keys, &token, &sealed))
    }
}

impl Inner {
    /// Takes a view of the store with `take`, and the scope's keys valid
    /// across that moment (live just before or just after).
    fn pin_keys<T>(
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
