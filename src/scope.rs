//! Tenants, subjects and the scopes they name.

use std::fmt;

use crate::format::{SCOPE_SUBJECT, SCOPE_TENANT};

/// Identifies a tenant (an agency, a school, a client account).
///
/// An opaque number: it is stored in the clear in key prefixes and file
/// names, so it must not itself be personal data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TenantId(pub u64);

/// Identifies a data subject (one person) inside a tenant.
///
/// An opaque number, stored in the clear like [`TenantId`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SubjectId(pub u64);

/// A scope: a tenant's own records, or one subject's records inside a tenant.
/// Each scope has its own key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Scope {
    /// The tenant.
    pub tenant: TenantId,
    /// The subject, or `None` for the tenant's own scope.
    pub subject: Option<SubjectId>,
}

impl Scope {
    /// The tenant's own scope.
    pub fn tenant(tenant: TenantId) -> Scope {
        Scope {
            tenant,
            subject: None,
        }
    }

    /// One subject's scope.
    pub fn subject(tenant: TenantId, subject: SubjectId) -> Scope {
        Scope {
            tenant,
            subject: Some(subject),
        }
    }

    /// The scope kind byte and subject number, as encoded on disk.
    pub(crate) fn encode_kind(&self) -> (u8, u64) {
        match self.subject {
            None => (SCOPE_TENANT, 0),
            Some(SubjectId(s)) => (SCOPE_SUBJECT, s),
        }
    }

    /// Inverse of [`Scope::encode_kind`]; `None` for an unknown kind byte, or
    /// a tenant scope with a non-zero subject.
    pub(crate) fn decode_kind(tenant: u64, kind: u8, subject: u64) -> Option<Scope> {
        match (kind, subject) {
            (SCOPE_TENANT, 0) => Some(Scope::tenant(TenantId(tenant))),
            (SCOPE_SUBJECT, s) => Some(Scope::subject(TenantId(tenant), SubjectId(s))),
            _ => None,
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.subject {
            None => write!(f, "tenant {}", self.tenant.0),
            Some(s) => write!(f, "tenant {} subject {}", self.tenant.0, s.0),
        }
    }
}
