//! Scopes as the harness names them, and the calls on them that the child
//! makes and the parent checks.

use std::fmt;

use strongroom::{Db, Scope, ScopeState, ShredOptions, SubjectId, TenantId};

use super::{KEPT_TENANTS, SUBJECTS};

/// A scope: a tenant's own, or one of its subjects'.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Target {
    pub tenant: u64,
    pub subject: Option<u64>,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.subject {
            None => write!(f, "tenant {} (own scope)", self.tenant),
            Some(s) => write!(f, "tenant {} subject {s}", self.tenant),
        }
    }
}

impl Target {
    pub fn own(tenant: u64) -> Target {
        Target {
            tenant,
            subject: None,
        }
    }

    pub fn tenant_scope(self) -> Target {
        Target::own(self.tenant)
    }

    pub fn scope(self) -> Scope {
        match self.subject {
            None => Scope::tenant(TenantId(self.tenant)),
            Some(s) => Scope::subject(TenantId(self.tenant), SubjectId(s)),
        }
    }

    pub fn of_scope(scope: Scope) -> Target {
        Target {
            tenant: scope.tenant.0,
            subject: scope.subject.map(|s| s.0),
        }
    }

    /// `<tenant>` or `<tenant>/<subject>`.
    pub fn encode(self) -> String {
        match self.subject {
            None => self.tenant.to_string(),
            Some(s) => format!("{}/{s}", self.tenant),
        }
    }

    pub fn decode(text: &str) -> Option<Target> {
        Some(match text.split_once('/') {
            None => Target::own(text.parse().ok()?),
            Some((t, s)) => Target {
                tenant: t.parse().ok()?,
                subject: Some(s.parse().ok()?),
            },
        })
    }
}

/// Each tenant's own scope and its subjects', the tenant's first.
pub(crate) fn scopes_of(tenants: &[u64]) -> Vec<Target> {
    let mut targets = Vec::new();
    for &tenant in tenants {
        targets.push(Target::own(tenant));
        for subject in SUBJECTS {
            targets.push(Target {
                tenant,
                subject: Some(subject),
            });
        }
    }
    targets
}

/// The tenants that kill point `iteration` shreds: fresh ones, in the same
/// keyring shards as the kept tenants.
pub(crate) fn target_tenants(iteration: u64) -> [u64; 2] {
    let base = 256 * (iteration + 1);
    [base + KEPT_TENANTS[0], base + KEPT_TENANTS[1]]
}

pub(crate) fn is_kept(tenant: u64) -> bool {
    KEPT_TENANTS.contains(&tenant)
}

pub(crate) fn shred(
    db: &Db,
    target: Target,
    options: ShredOptions,
) -> strongroom::Result<ScopeState> {
    match target.subject {
        None => db.shred_tenant(TenantId(target.tenant), options),
        Some(s) => db
            .tenant(TenantId(target.tenant))
            .shred_subject(SubjectId(s), options),
    }
}

pub(crate) fn cancel(db: &Db, target: Target) -> strongroom::Result<bool> {
    match target.subject {
        None => db.cancel_shred_tenant(TenantId(target.tenant)),
        Some(s) => db
            .tenant(TenantId(target.tenant))
            .cancel_shred_subject(SubjectId(s)),
    }
}

pub(crate) fn scope_state(db: &Db, target: Target) -> strongroom::Result<ScopeState> {
    let tenant = db.tenant(TenantId(target.tenant));
    match target.subject {
        None => tenant.state(),
        Some(s) => tenant.subject(SubjectId(s)).state(),
    }
}

pub(crate) fn read_scope(
    db: &Db,
    target: Target,
    key: &str,
) -> strongroom::Result<Option<Vec<u8>>> {
    let tenant = db.tenant(TenantId(target.tenant));
    match target.subject {
        None => tenant.get(key.as_bytes()),
        Some(s) => tenant.subject(SubjectId(s)).get(key.as_bytes()),
    }
}

pub(crate) fn scan_scope(db: &Db, target: Target) -> strongroom::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let tenant = db.tenant(TenantId(target.tenant));
    match target.subject {
        None => tenant.scan()?.collect(),
        Some(s) => tenant.subject(SubjectId(s)).scan()?.collect(),
    }
}
