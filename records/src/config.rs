//! A tenant's configuration: its roles, the roles that see contact fields,
//! its organisational units, its purposes (and which need consent, renewed
//! how often), and the smallest group an aggregate may show. Kept sealed in
//! the tenant's scope; changed only by a user who may manage users, audited.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::policy::Role;

/// The unit a member placed at sees the whole tenant.
pub const WHOLE_TENANT: &str = "*";

/// The default renewal period of a consent: three years (1,096 days, one of
/// them a leap day).
pub const CONSENT_RENEWAL_DEFAULT: Duration = Duration::from_secs(1_096 * 86_400);

/// The default smallest group an aggregate shows: cells counting fewer
/// subjects are suppressed.
pub const SMALL_GROUP_DEFAULT: u64 = 5;

/// How high a unit sits: a location inside a group inside an area.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// A site: a school, an office.
    Location,
    /// Several locations.
    Group,
    /// Several groups.
    Area,
}

/// An organisational unit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unit {
    /// Its name.
    pub name: String,
    /// Its level.
    pub level: Level,
    /// The unit it belongs to, one level up (none for a top unit).
    pub parent: Option<String>,
}

/// A purpose a call may be made for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Purpose {
    /// Its name (`care`, `sharing`, `research`...).
    pub name: String,
    /// Whether reading a subject's records for it needs the subject's
    /// consent to it.
    pub needs_consent: bool,
    /// How long a consent to it lasts before it must be renewed.
    pub renewal: Duration,
}

impl Purpose {
    /// A purpose that needs consent, renewed every `renewal`.
    pub fn with_consent(name: &str, renewal: Duration) -> Purpose {
        Purpose {
            name: name.to_string(),
            needs_consent: true,
            renewal,
        }
    }

    /// A purpose that needs no consent (the service itself).
    pub fn without_consent(name: &str) -> Purpose {
        Purpose {
            name: name.to_string(),
            needs_consent: false,
            renewal: CONSENT_RENEWAL_DEFAULT,
        }
    }
}

/// The purpose aggregates are for: only subjects who consent to it are
/// counted.
pub const RESEARCH: &str = "research";

/// A tenant's configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantConfig {
    /// Its roles.
    pub roles: Vec<Role>,
    /// The roles that read contact fields (no other role can, by default or
    /// by grant).
    pub contact_roles: Vec<String>,
    /// Its organisational units.
    pub units: Vec<Unit>,
    /// Its purposes.
    pub purposes: Vec<Purpose>,
    /// Aggregates suppress cells of fewer subjects than this.
    pub small_group: u64,
}

impl TenantConfig {
    /// The seed configuration over `units`: the seed roles
    /// ([`Role::seeds`]), `contact_officer` the only contact role, and the
    /// purposes `care` (no consent), `sharing`, `third_party_export` and
    /// `research` (consent, renewed every three years).
    pub fn seeded(units: Vec<Unit>) -> TenantConfig {
        TenantConfig {
            roles: Role::seeds(),
            contact_roles: vec!["contact_officer".to_string()],
            units,
            purposes: vec![
                Purpose::without_consent("care"),
                Purpose::with_consent("sharing", CONSENT_RENEWAL_DEFAULT),
                Purpose::with_consent("third_party_export", CONSENT_RENEWAL_DEFAULT),
                Purpose::with_consent(RESEARCH, CONSENT_RENEWAL_DEFAULT),
            ],
            small_group: SMALL_GROUP_DEFAULT,
        }
    }

    /// The role named `name`.
    pub fn role(&self, name: &str) -> Result<&Role> {
        self.roles
            .iter()
            .find(|r| r.name == name)
            .ok_or_else(|| Error::Unknown("role", name.to_string()))
    }

    /// The purpose named `name`.
    pub fn purpose(&self, name: &str) -> Result<&Purpose> {
        self.purposes
            .iter()
            .find(|p| p.name == name)
            .ok_or_else(|| Error::Unknown("purpose", name.to_string()))
    }

    /// Checks that `name` is a unit (or the whole tenant).
    pub fn unit(&self, name: &str) -> Result<()> {
        if name == WHOLE_TENANT || self.units.iter().any(|u| u.name == name) {
            Ok(())
        } else {
            Err(Error::Unknown("unit", name.to_string()))
        }
    }

    /// Whether unit `unit` is `ancestor` or lies below it.
    pub fn within(&self, unit: &str, ancestor: &str) -> bool {
        if ancestor == WHOLE_TENANT {
            return true;
        }
        let mut current = Some(unit);
        // The hierarchy has three levels; validation refused cycles.
        for _ in 0..=self.units.len() {
            match current {
                Some(name) if name == ancestor => return true,
                Some(name) => {
                    current = self
                        .units
                        .iter()
                        .find(|u| u.name == name)
                        .and_then(|u| u.parent.as_deref())
                }
                None => return false,
            }
        }
        false
    }

    /// Checks the configuration: unique names, parents one level up, no
    /// role holding `read secret` or `read contact` by default or grant,
    /// contact roles that exist, a small-group threshold of at least 2.
    pub fn validate(&self) -> Result<()> {
        let bad = |why: String| Err(Error::Config(why));
        for (i, unit) in self.units.iter().enumerate() {
            if unit.name == WHOLE_TENANT || self.units[..i].iter().any(|u| u.name == unit.name) {
                return bad(format!("unit {} is named twice or reserved", unit.name));
            }
            if let Some(parent) = &unit.parent {
                match self.units.iter().find(|u| &u.name == parent) {
                    Some(p) if p.level > unit.level => {}
                    _ => {
                        return bad(format!(
                            "unit {}'s parent is not a unit above it",
                            unit.name
                        ));
                    }
                }
            }
        }
        let twice = |names: Vec<&str>| {
            let found = names
                .iter()
                .enumerate()
                .find(|(i, n)| names[..*i].contains(n));
            found.map(|(_, n)| n.to_string())
        };
        if let Some(name) = twice(self.roles.iter().map(|r| r.name.as_str()).collect()) {
            return bad(format!("role {name} is named twice"));
        }
        if let Some(name) = twice(self.purposes.iter().map(|p| p.name.as_str()).collect()) {
            return bad(format!("purpose {name} is named twice"));
        }
        for role in &self.roles {
            if let Some(p) = role
                .granted
                .iter()
                .chain(&role.grantable)
                .find(|p| !p.grantable_at_all())
            {
                return bad(format!(
                    "role {} holds {p}, which no role may hold",
                    role.name
                ));
            }
        }
        for name in &self.contact_roles {
            self.role(name)?;
        }
        if self.small_group < 2 {
            return bad("the small-group threshold must be at least 2".into());
        }
        if self.purposes.iter().all(|p| p.name != RESEARCH) {
            return bad(format!("no {RESEARCH} purpose"));
        }
        Ok(())
    }
}
