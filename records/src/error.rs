//! The record layer's one error type.

use strongroom::{SubjectId, TenantId};

use crate::policy::Permission;

/// What can go wrong in the record layer. Denials (the first group) are
/// written to the audit trail before they are returned. No variant carries
/// a field's value or a subject's identifier.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The actor is not a member of the tenant.
    #[error("{actor} is not a member of this tenant")]
    NotMember {
        /// The actor.
        actor: String,
    },
    /// The actor is a member in another role than the context says.
    #[error("{actor} does not hold role {role}")]
    WrongRole {
        /// The actor.
        actor: String,
        /// The role the context named.
        role: String,
    },
    /// The context's unit is not the member's unit or below it, or the
    /// subject lies outside the context's unit.
    #[error("unit {unit} is outside the caller's reach")]
    OutsideUnit {
        /// The unit out of reach.
        unit: String,
    },
    /// The role lacks a permission (by default and by grant).
    #[error("the role lacks {permission}")]
    Denied {
        /// The permission that was missing.
        permission: Permission,
    },
    /// The purpose needs the subject's consent, which is absent, withdrawn
    /// or lapsed.
    #[error("subject {} has no live consent to {purpose}", subject.0)]
    ConsentMissing {
        /// The subject.
        subject: SubjectId,
        /// The purpose.
        purpose: String,
    },
    /// An aggregate's population differs from an earlier release's by
    /// fewer than the small-group threshold of subjects: the difference of
    /// the two would show those subjects' cells.
    #[error("this report differs from release {release} by {differs_by} subject(s); it is refused")]
    TooSimilar {
        /// The earlier release.
        release: u64,
        /// Subjects whose contribution differs.
        differs_by: usize,
    },
    /// No one changes their own membership or grants.
    #[error("no one changes their own membership")]
    SelfAdministration,
    /// A permission cannot be granted to the role (it is neither ● nor ○).
    #[error("{permission} cannot be granted to role {role}")]
    NotGrantable {
        /// The role.
        role: String,
        /// The permission.
        permission: Permission,
    },
    /// The access context is malformed (a part empty or too long).
    #[error("the access context's {0} is empty or too long")]
    BadAccess(&'static str),
    /// A role, purpose or unit the tenant does not have.
    #[error("unknown {0}: {1}")]
    Unknown(&'static str, String),
    /// A record type the schema does not have.
    #[error("unknown record type {0}")]
    UnknownRecordType(String),
    /// A field its record type does not have.
    #[error("record type {record_type} has no field {field}")]
    UnknownField {
        /// The record type.
        record_type: String,
        /// The field.
        field: String,
    },
    /// A value of the wrong kind for its field, or a label not in its list.
    #[error("field {field} does not take that value ({why})")]
    BadValue {
        /// The field.
        field: String,
        /// Why.
        why: &'static str,
    },
    /// No such subject (never created, or erased).
    #[error("no subject {}", .0.0)]
    NoSuchSubject(SubjectId),
    /// No such record.
    #[error("subject {} has no {record_type} record {id}", subject.0)]
    NoSuchRecord {
        /// The subject.
        subject: SubjectId,
        /// The record type.
        record_type: String,
        /// The record id.
        id: u64,
    },
    /// An identifier (e-mail, phone, external id) already names another
    /// subject.
    #[error("that {0} already names a subject")]
    IdentifierInUse(&'static str),
    /// The tenant has not been set up with [`crate::Records::set_up_tenant`].
    #[error("tenant {} is not set up for records", .0.0)]
    NotSetUp(TenantId),
    /// The tenant is set up already.
    #[error("tenant {} is set up already", .0.0)]
    AlreadySetUp(TenantId),
    /// A schema that does not hold together.
    #[error("schema: {0}")]
    Schema(String),
    /// A tenant configuration that does not hold together.
    #[error("configuration: {0}")]
    Config(String),
    /// An object the layer stored does not decode.
    #[error("corrupt {what}: {reason}")]
    Corrupt {
        /// The kind of object.
        what: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The engine's error (a shredded or sealed scope, an I/O error...).
    #[error(transparent)]
    Engine(#[from] strongroom::Error),
}

impl Error {
    /// Whether this error is a denial of access, which the audit trail
    /// records.
    pub fn is_denial(&self) -> bool {
        matches!(
            self,
            Error::NotMember { .. }
                | Error::WrongRole { .. }
                | Error::OutsideUnit { .. }
                | Error::Denied { .. }
                | Error::ConsentMissing { .. }
                | Error::TooSimilar { .. }
                | Error::SelfAdministration
                | Error::IdentifierInUse(_)
        )
    }
}

/// The record layer's result.
pub type Result<T> = std::result::Result<T, Error>;
