//! Snapshots and scans.

use std::sync::Arc;

use super::db::Inner;
use crate::crypto::scope_key::ScopeKey;
use crate::error::{CorruptionKind, Result};
use crate::scope::{Scope, SubjectId};
use crate::store::{StoreIter, StoreSnapshot, iter_err, key_codec};

/// A consistent, read-only view of a tenant (and its subjects) as of the
/// moment it was taken. Later writes are invisible to it.
pub struct Snapshot<'db> {
    pub(crate) inner: &'db Inner,
    pub(crate) snapshot: Arc<StoreSnapshot<'db>>,
    pub(crate) scope: Scope,
}

impl<'db> Snapshot<'db> {
    /// The value at `key` in this snapshot's scope.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.inner.get(self.scope, key, Some(&self.snapshot))
    }

    /// Every (key, value) of this snapshot's scope, in token order.
    pub fn scan(&self) -> Result<Scan<'db>> {
        Scan::new(self.inner, self.scope, Some(Arc::clone(&self.snapshot)))
    }

    /// The same snapshot, seen from one subject of the tenant.
    pub fn subject(&self, subject: SubjectId) -> Snapshot<'db> {
        Snapshot {
            inner: self.inner,
            snapshot: Arc::clone(&self.snapshot),
            scope: Scope::subject(self.scope.tenant, subject),
        }
    }
}

/// An iterator over the records of one scope, yielding `(key, value)` in
/// token order (the order of keyed hashes of the keys, not of the keys).
pub struct Scan<'db> {
    // Field order matters: the iterator must drop before the snapshot it reads.
    iter: Option<StoreIter<'db>>,
    _snapshot: Option<Arc<StoreSnapshot<'db>>>,
    inner: &'db Inner,
    scope: Scope,
    key: Option<Arc<ScopeKey>>,
}

impl<'db> Scan<'db> {
    pub(crate) fn new(
        inner: &'db Inner,
        scope: Scope,
        snapshot: Option<Arc<StoreSnapshot<'db>>>,
    ) -> Result<Scan<'db>> {
        let key = inner.keyring.current_key(scope)?;
        let iter = key
            .as_ref()
            .map(|_| inner.store.scan(scope, snapshot.as_deref()));
        Ok(Scan {
            iter,
            _snapshot: snapshot,
            inner,
            scope,
            key,
        })
    }
}

impl Iterator for Scan<'_> {
    type Item = Result<(Vec<u8>, Vec<u8>)>;

    fn next(&mut self) -> Option<Self::Item> {
        let (store_key, sealed) = match self.iter.as_mut()?.next()? {
            Ok(kv) => kv,
            Err(e) => return Some(Err(iter_err(e))),
        };
        let key = self
            .key
            .as_ref()
            .expect("an iterator exists only with a key");
        let Some(token) = key_codec::token_of(&store_key) else {
            return Some(Err(self
                .inner
                .store
                .corruption(CorruptionKind::Malformed("store key"))));
        };
        Some(self.inner.open(self.scope, key, &token, &sealed))
    }
}
