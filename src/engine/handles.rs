//! Handles on a tenant's scope and on a subject's scope.

use super::batch::WriteBatch;
use super::db::Db;
use super::scan::Scan;
use super::snapshot::Snapshot;
use crate::Lsn;
use crate::crypto::keyring::ScopeState;
use crate::error::Result;
use crate::scope::{Scope, SubjectId, TenantId};

/// A tenant's own scope, and the way to its subjects. Obtained from
/// [`Db::tenant`]; cheap to create, borrows the database.
#[derive(Clone, Copy)]
pub struct Tenant<'db> {
    pub(crate) db: &'db Db,
    pub(crate) id: TenantId,
}

/// One subject's scope inside a tenant, with its own key. Obtained from
/// [`Tenant::subject`].
#[derive(Clone, Copy)]
pub struct Subject<'db> {
    db: &'db Db,
    scope: Scope,
}

impl Db {
    /// A handle on tenant `id`. The tenant's key is created, durably, by its
    /// first write.
    pub fn tenant(&self, id: TenantId) -> Tenant<'_> {
        Tenant { db: self, id }
    }
}

/// The operations both handles offer, each delegating to `Inner` with the
/// handle's scope.
macro_rules! scope_ops {
    () => {
        /// Puts `value` at `key`, durably (as the durability option says).
        /// Returns the LSN of the commit.
        pub fn put(&self, key: &[u8], value: &[u8]) -> Result<Lsn> {
            let op = (None, key, Some(value));
            self.db.inner.write(self.scope(), std::iter::once(op))
        }

        /// Deletes `key`. Returns the LSN of the commit.
        pub fn delete(&self, key: &[u8]) -> Result<Lsn> {
            let op = (None, key, None);
            self.db.inner.write(self.scope(), std::iter::once(op))
        }

        /// Commits `batch` atomically, as one log frame. Its ops without a
        /// subject target this handle's scope.
        pub fn write(&self, batch: WriteBatch) -> Result<Lsn> {
            self.db.inner.write(self.scope(), batch.op_refs())
        }

        /// The value at `key`, if any.
        pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
            self.db.inner.get(self.scope(), key, None)
        }

        /// Every (key, value) of this scope, in token order (the order of
        /// keyed hashes of the keys, not of the keys themselves).
        pub fn scan(&self) -> Result<Scan<'db>> {
            Scan::new(&self.db.inner, self.scope())
        }

        /// Where this scope is in its lifecycle: live, sealed (a shred in
        /// its grace period) or shredded.
        pub fn state(&self) -> Result<ScopeState> {
            self.db.inner.keyring.state(self.scope())
        }

        /// Whether the archive lags the local keyring for this scope: it may
        /// still hold a copy of a key the local keyring has destroyed (a
        /// shred's archive step not done yet: the shipping thread retries it
        /// until it is), or lack its seal or its cancel. `false` without an
        /// archive.
        pub fn archive_behind(&self) -> bool {
            self.db
                .inner
                .keyring_shipper
                .as_ref()
                .is_some_and(|k| k.behind(&self.db.inner.keyring, self.scope()))
        }

        /// A consistent read-only view of this scope (and, through
        /// [`Snapshot::subject`], of the tenant's subjects).
        pub fn snapshot(&self) -> Result<Snapshot<'db>> {
            Snapshot::new(&self.db.inner, self.scope())
        }
    };
}

impl<'db> Tenant<'db> {
    scope_ops!();

    /// The tenant's id.
    pub fn id(&self) -> TenantId {
        self.id
    }

    /// A handle on subject `id` of this tenant.
    pub fn subject(&self, id: SubjectId) -> Subject<'db> {
        Subject {
            db: self.db,
            scope: Scope::subject(self.id, id),
        }
    }

    fn scope(&self) -> Scope {
        Scope::tenant(self.id)
    }
}

impl<'db> Subject<'db> {
    scope_ops!();

    /// The subject's id.
    pub fn id(&self) -> SubjectId {
        self.scope.subject.expect("a subject scope")
    }

    /// The tenant's id.
    pub fn tenant_id(&self) -> TenantId {
        self.scope.tenant
    }

    fn scope(&self) -> Scope {
        self.scope
    }
}
