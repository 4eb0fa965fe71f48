//! Roles and permissions: the ●/○ model. Each role has permissions granted
//! by default (●) and permissions an administrator may grant to one user of
//! it (○); anything else the role never has. Two rules stand above any
//! tenant's roles: no one reads a `secret` field, and only the roles the
//! tenant names read `contact` fields (neither can be granted).

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::schema::FieldClass;

/// Something a call does, which a role may or may not be allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    /// Read fields of a class.
    Read(FieldClass),
    /// Write (create or change) fields of a class.
    Write(FieldClass),
    /// Create subjects.
    CreateSubject,
    /// Find a subject by e-mail, phone or external id.
    Lookup,
    /// Check a candidate password or PIN against a secret field.
    VerifySecret,
    /// Record consent events and list expiring consents.
    ManageConsent,
    /// Export everything about a subject (an access request).
    Export,
    /// Erase a subject (the right to be forgotten).
    Erase,
    /// Run aggregate reports.
    Report,
    /// Run the retention sweep and end relationships.
    Purge,
    /// Assign users to roles and grant them ○ permissions.
    ManageUsers,
    /// Change the tenant's configuration (roles, contact roles, units,
    /// purposes, the small-group threshold).
    Configure,
    /// Read and verify the audit trail.
    ReadAudit,
    /// Deprovision the tenant (or cancel it).
    Deprovision,
}

impl Permission {
    /// Every permission, in a fixed order (for policy tables and tests).
    pub fn all() -> Vec<Permission> {
        let mut all: Vec<Permission> = FieldClass::ALL
            .iter()
            .flat_map(|&c| [Permission::Read(c), Permission::Write(c)])
            .collect();
        all.extend([
            Permission::CreateSubject,
            Permission::Lookup,
            Permission::VerifySecret,
            Permission::ManageConsent,
            Permission::Export,
            Permission::Erase,
            Permission::Report,
            Permission::Purge,
            Permission::ManageUsers,
            Permission::Configure,
            Permission::ReadAudit,
            Permission::Deprovision,
        ]);
        all
    }

    /// Whether any role can ever hold this permission by default or grant:
    /// `read secret` never; `read contact` only through the tenant's
    /// contact roles, never by grant.
    pub fn grantable_at_all(self) -> bool {
        !matches!(
            self,
            Permission::Read(FieldClass::Secret) | Permission::Read(FieldClass::Contact)
        )
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Permission::Read(c) => write!(f, "read {}", c.name()),
            Permission::Write(c) => write!(f, "write {}", c.name()),
            other => {
                let name = serde_json::to_string(other).unwrap_or_default();
                f.write_str(name.trim_matches('"'))
            }
        }
    }
}

/// A role: what its users may do by default (●) and what may be granted to
/// one of them (○).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Role {
    /// The role's name.
    pub name: String,
    /// Granted by default (●).
    pub granted: BTreeSet<Permission>,
    /// Grantable per user (○).
    pub grantable: BTreeSet<Permission>,
}

impl Role {
    /// A role with the given ● and ○ permissions.
    pub fn new(name: &str, granted: &[Permission], grantable: &[Permission]) -> Role {
        Role {
            name: name.to_string(),
            granted: granted.iter().copied().collect(),
            grantable: grantable.iter().copied().collect(),
        }
    }

    /// The seed roles a tenant starts with (see [`crate::TenantConfig::seeded`]):
    ///
    /// | role | ● by default | ○ grantable |
    /// |---|---|---|
    /// | `admin` | manage users, configure, read audit, purge, deprovision, create subjects, read identifier and ordinary | read sensitive, export, erase |
    /// | `caseworker` | read and write identifier, sensitive, ordinary; write contact and secret; create subjects; lookup; verify secrets; manage consent | export |
    /// | `viewer` | read identifier and ordinary | read sensitive |
    /// | `analyst` | report | — |
    /// | `privacy_officer` | export, erase, read audit, manage consent, lookup, read identifier and ordinary | read sensitive |
    /// | `contact_officer` | read identifier, lookup (and read contact, as a contact role) | — |
    pub fn seeds() -> Vec<Role> {
        use FieldClass::*;
        use Permission::*;
        vec![
            Role::new(
                "admin",
                &[
                    ManageUsers,
                    Configure,
                    ReadAudit,
                    Purge,
                    Deprovision,
                    CreateSubject,
                    Read(Identifier),
                    Read(Ordinary),
                ],
                &[Read(Sensitive), Export, Erase],
            ),
            Role::new(
                "caseworker",
                &[
                    Read(Identifier),
                    Write(Identifier),
                    Read(Sensitive),
                    Write(Sensitive),
                    Read(Ordinary),
                    Write(Ordinary),
                    Write(Contact),
                    Write(Secret),
                    CreateSubject,
                    Lookup,
                    VerifySecret,
                    ManageConsent,
                ],
                &[Export],
            ),
            Role::new(
                "viewer",
                &[Read(Identifier), Read(Ordinary)],
                &[Read(Sensitive)],
            ),
            Role::new("analyst", &[Report], &[]),
            Role::new(
                "privacy_officer",
                &[
                    Export,
                    Erase,
                    ReadAudit,
                    ManageConsent,
                    Lookup,
                    Read(Identifier),
                    Read(Ordinary),
                ],
                &[Read(Sensitive)],
            ),
            Role::new("contact_officer", &[Read(Identifier), Lookup], &[]),
        ]
    }
}

/// One user's place in a tenant: a role, the organisational unit it works
/// in (and below), and the ○ permissions granted to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Membership {
    /// The role.
    pub role: String,
    /// The unit: the user sees subjects of this unit and the units below it.
    pub unit: String,
    /// ○ permissions granted to this user.
    pub grants: BTreeSet<Permission>,
}

/// Whether `role` (a member with `grants`) holds `permission`, given the
/// tenant's contact roles. The two fixed rules come first.
pub(crate) fn holds(
    role: &Role,
    grants: &BTreeSet<Permission>,
    contact_roles: &[String],
    permission: Permission,
) -> bool {
    match permission {
        Permission::Read(FieldClass::Secret) => false,
        Permission::Read(FieldClass::Contact) => contact_roles.contains(&role.name),
        p => role.granted.contains(&p) || (role.grantable.contains(&p) && grants.contains(&p)),
    }
}
