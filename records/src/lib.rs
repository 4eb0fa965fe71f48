//! strongroom-records: what applications promise about personal data, kept
//! in code above the strongroom engine.
//!
//! - **Record types with field classes** ([`Schema`], [`RecordType`]):
//!   each field is `identifier`, `contact`, `sensitive`, `ordinary` or
//!   `secret` (kept only as an Argon2id hash: set and verified, never
//!   read). A subject's records live in the subject's scope, so erasing the
//!   subject (a crypto-shred) erases them everywhere.
//! - **Subjects without personal ids in clear**: the layer numbers subjects
//!   and finds them by e-mail, phone or external id through blind indexes
//!   (keyed hashes under a tenant key), all sealed.
//! - **An access context on every call** ([`Access`]: actor, role, unit,
//!   purpose, reason), checked against **roles** with the ●/○ model
//!   ([`Role`], [`Permission`]) and **organisational units**
//!   (location ⊂ group ⊂ area). Contact fields are hidden from every role
//!   but the tenant's contact roles; no one reads a secret.
//! - **Consent** per subject and purpose, lapsing after its renewal period;
//!   every read for a purpose that needs consent checks it.
//! - **Retention** per record type, enforced by a crash-safe sweep;
//!   **deprovisioning** a tenant with a week's grace.
//! - **An audit trail**, hash-chained per tenant, sealed under the tenant's
//!   key, naming subjects by number only, with a verify call.
//! - **Aggregates** that suppress small groups, with complementary
//!   suppression and a memory of releases against differencing.
//! - **Subject rights**: an access export as JSON, and erasure.
//!
//! ```
//! use strongroom::{Db, Options, TenantId};
//! use strongroom_records::*;
//!
//! # fn main() -> strongroom_records::Result<()> {
//! # let dir = tempfile::tempdir().unwrap();
//! let db = Db::open(dir.path(), Options::with_key([7; 32]))?;
//! let schema = Schema::new().with(
//!     RecordType::new("profile")
//!         .single()
//!         .field("name", FieldClass::Identifier)
//!         .field("address", FieldClass::Contact),
//! )?;
//! let records = Records::new(db, schema, RecordsOptions::default());
//! let admin = Access::new("staff-1", "admin", "*", "care", "setting up");
//! let school = records.set_up_tenant(&admin, TenantId(1), TenantConfig::seeded(vec![]))?;
//! school.assign(&admin, "staff-2", "caseworker", "*")?;
//!
//! let teacher = Access::new("staff-2", "caseworker", "*", "care", "enrolment");
//! let pupil = school.create_subject(&teacher, "*", &Identifiers::new().email("Ada@Example.org"))?;
//! school.put_record(&teacher, pupil, "profile", 0, &[
//!     ("name", Value::from("Ada")),
//!     ("address", Value::from("1 Lane")),
//! ])?;
//! // A caseworker sees the name, not the address (a contact field).
//! let seen = school.get_record(&teacher, pupil, "profile", 0)?;
//! assert_eq!(seen.fields.get("name"), Some(&Value::from("Ada")));
//! assert_eq!(seen.fields.get("address"), None);
//! assert_eq!(school.find_subject(&teacher, IdentifierKind::Email, " ada@example.ORG")?, Some(pupil));
//! # Ok(()) }
//! ```

#![deny(missing_docs)]

mod access;
mod admin;
mod aggregate;
mod audit;
mod codec;
mod config;
mod consent;
mod error;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod keys;
mod policy;
mod record;
mod retention;
mod rights;
mod schema;
mod subjects;
mod tenant;

pub use access::{ACCESS_FIELD_BYTES_MAX, Access};
pub use admin::DEPROVISION_GRACE;
pub use aggregate::{Aggregate, Cell, Table};
pub use audit::{AuditEntry, AuditHead, AuditProblem, AuditReport};
pub use config::{
    CONSENT_RENEWAL_DEFAULT, Level, Purpose, RESEARCH, SMALL_GROUP_DEFAULT, TenantConfig, Unit,
    WHOLE_TENANT,
};
pub use consent::{ConsentAction, ConsentEvent, ConsentState};
pub use error::{Error, Result};
pub use policy::{Membership, Permission, Role};
pub use record::{RecordView, Value};
pub use retention::SweepReport;
pub use schema::{Field, FieldClass, FieldKind, RecordType, Retention, RetentionFrom, Schema};
pub use subjects::{IdentifierKind, Identifiers};
pub use tenant::{Records, RecordsOptions, TenantRecords};
