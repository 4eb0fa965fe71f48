//! The access context every call carries: who acts, in which role and unit,
//! for which purpose, and why. There is no call without one.

use crate::error::{Error, Result};

/// Who makes a call, and why. The application authenticates the actor; the
/// layer checks that the actor is a member of the tenant in this role, in
/// this unit or one above it, that the purpose is one of the tenant's, and
/// writes all five into the audit trail.
///
/// The actor should be a staff id, not an e-mail, and the reason a short
/// phrase ("annual review"), not personal data: both go into the audit
/// trail, which outlives every subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    pub(crate) actor: String,
    pub(crate) role: String,
    pub(crate) unit: String,
    pub(crate) purpose: String,
    pub(crate) reason: String,
}

/// The longest actor, role, unit, purpose or reason.
pub const ACCESS_FIELD_BYTES_MAX: usize = 256;

impl Access {
    /// A context; every part must be non-empty and at most
    /// [`ACCESS_FIELD_BYTES_MAX`] bytes (checked at each call).
    pub fn new(actor: &str, role: &str, unit: &str, purpose: &str, reason: &str) -> Access {
        Access {
            actor: actor.to_string(),
            role: role.to_string(),
            unit: unit.to_string(),
            purpose: purpose.to_string(),
            reason: reason.to_string(),
        }
    }

    /// The same context for another purpose and reason.
    pub fn for_purpose(&self, purpose: &str, reason: &str) -> Access {
        Access {
            purpose: purpose.to_string(),
            reason: reason.to_string(),
            ..self.clone()
        }
    }

    /// The actor.
    pub fn actor(&self) -> &str {
        &self.actor
    }

    /// The role.
    pub fn role(&self) -> &str {
        &self.role
    }

    /// The unit.
    pub fn unit(&self) -> &str {
        &self.unit
    }

    /// The purpose.
    pub fn purpose(&self) -> &str {
        &self.purpose
    }

    /// The reason.
    pub fn reason(&self) -> &str {
        &self.reason
    }

    pub(crate) fn check_shape(&self) -> Result<()> {
        let parts = [
            ("actor", &self.actor),
            ("role", &self.role),
            ("unit", &self.unit),
            ("purpose", &self.purpose),
            ("reason", &self.reason),
        ];
        for (name, value) in parts {
            if value.trim().is_empty() || value.len() > ACCESS_FIELD_BYTES_MAX {
                return Err(Error::BadAccess(name));
            }
        }
        Ok(())
    }
}
