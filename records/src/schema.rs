//! Record types and their fields, declared in code with a builder or loaded
//! from a JSON schema file. Every field has a class, which decides who may
//! read and write it ([`crate::policy`]), and a kind, which decides what it
//! holds.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// How private a field is. The class, not the field, is what roles are
/// granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FieldClass {
    /// Names a person (a name, a date of birth, a member number).
    Identifier,
    /// Reaches a person (an address, an e-mail, a phone): hidden from every
    /// role but the ones the tenant names.
    Contact,
    /// Special-category data (health, case notes, benefits).
    Sensitive,
    /// Anything else.
    Ordinary,
    /// A password or PIN: kept as an Argon2id hash, set and verified, never
    /// read by anyone.
    Secret,
}

impl FieldClass {
    /// Every class, in a fixed order (for policy tables).
    pub const ALL: [FieldClass; 5] = [
        FieldClass::Identifier,
        FieldClass::Contact,
        FieldClass::Sensitive,
        FieldClass::Ordinary,
        FieldClass::Secret,
    ];

    /// The class's name, as schema files spell it.
    pub fn name(self) -> &'static str {
        match self {
            FieldClass::Identifier => "identifier",
            FieldClass::Contact => "contact",
            FieldClass::Sensitive => "sensitive",
            FieldClass::Ordinary => "ordinary",
            FieldClass::Secret => "secret",
        }
    }
}

/// What a field holds.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FieldKind {
    /// Free text.
    Text,
    /// A whole number (aggregates can sum it).
    Integer,
    /// One of a fixed list of labels (aggregates can group by it). The list
    /// is fixed so that a report's rows never reveal that a rare label
    /// exists.
    Category(Vec<String>),
}

/// When a record type's retention period starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RetentionFrom {
    /// The record's creation.
    Creation,
    /// The record's last change.
    LastChange,
    /// The end of the subject's relationship with the tenant
    /// ([`crate::TenantRecords::end_relationship`]); kept while it lasts.
    EndOfRelationship,
}

/// How long records of a type are kept, and from when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// The period.
    pub period: Duration,
    /// Its start.
    pub from: RetentionFrom,
}

/// One field of a record type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// The field's name.
    pub name: String,
    /// Its class.
    pub class: FieldClass,
    /// Its kind (a secret is always text).
    pub kind: FieldKind,
}

/// A record type: its fields, its retention, and whether a subject has at
/// most one record of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordType {
    pub(crate) name: String,
    pub(crate) fields: Vec<Field>,
    pub(crate) retention: Option<Retention>,
    pub(crate) single: bool,
}

impl RecordType {
    /// A record type named `name`, with no fields yet.
    pub fn new(name: &str) -> RecordType {
        RecordType {
            name: name.to_string(),
            fields: Vec::new(),
            retention: None,
            single: false,
        }
    }

    /// Adds a text field.
    pub fn field(mut self, name: &str, class: FieldClass) -> RecordType {
        self.fields.push(Field {
            name: name.to_string(),
            class,
            kind: FieldKind::Text,
        });
        self
    }

    /// Adds a field of another kind.
    pub fn field_of(mut self, name: &str, class: FieldClass, kind: FieldKind) -> RecordType {
        self.fields.push(Field {
            name: name.to_string(),
            class,
            kind,
        });
        self
    }

    /// Keeps records of this type for `period` from `from`, then purges them.
    pub fn retain(mut self, period: Duration, from: RetentionFrom) -> RecordType {
        self.retention = Some(Retention { period, from });
        self
    }

    /// A subject has at most one record of this type (record id 0):
    /// aggregates group such types.
    pub fn single(mut self) -> RecordType {
        self.single = true;
        self
    }

    /// The type's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its fields.
    pub fn fields(&self) -> &[Field] {
        &self.fields
    }

    /// The field named `name`.
    pub fn get(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// Its retention.
    pub fn retention(&self) -> Option<Retention> {
        self.retention
    }
}

/// Every record type of an application.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Schema {
    types: BTreeMap<String, RecordType>,
}

impl Schema {
    /// An empty schema.
    pub fn new() -> Schema {
        Schema::default()
    }

    /// Adds a record type; refuses a duplicate name, a duplicate field, a
    /// name the key layout cannot hold, an empty category list, or a secret
    /// field that is not text.
    pub fn with(mut self, record_type: RecordType) -> Result<Schema> {
        check_name(&record_type.name)?;
        for (i, field) in record_type.fields.iter().enumerate() {
            check_name(&field.name)?;
            if record_type.fields[..i].iter().any(|f| f.name == field.name) {
                return Err(Error::Schema(format!(
                    "field {} appears twice in {}",
                    field.name, record_type.name
                )));
            }
            if field.class == FieldClass::Secret && field.kind != FieldKind::Text {
                return Err(Error::Schema(format!("secret {} is not text", field.name)));
            }
            if matches!(&field.kind, FieldKind::Category(labels) if labels.is_empty()) {
                return Err(Error::Schema(format!(
                    "category {} has no labels",
                    field.name
                )));
            }
        }
        let name = record_type.name.clone();
        if self.types.insert(name.clone(), record_type).is_some() {
            return Err(Error::Schema(format!("record type {name} appears twice")));
        }
        Ok(self)
    }

    /// The record type named `name`.
    pub fn record_type(&self, name: &str) -> Result<&RecordType> {
        self.types
            .get(name)
            .ok_or_else(|| Error::UnknownRecordType(name.to_string()))
    }

    /// Every record type.
    pub fn types(&self) -> impl Iterator<Item = &RecordType> {
        self.types.values()
    }

    /// A schema from its JSON text, for example:
    ///
    /// ```json
    /// { "types": [ { "name": "profile", "single": true,
    ///     "retention": { "days": 365, "from": "end_of_relationship" },
    ///     "fields": [ { "name": "name", "class": "identifier" },
    ///                 { "name": "year", "class": "ordinary", "kind": { "category": ["1", "2"] } },
    ///                 { "name": "pin", "class": "secret" } ] } ] }
    /// ```
    pub fn from_json(text: &str) -> Result<Schema> {
        let file: SchemaFile =
            serde_json::from_str(text).map_err(|e| Error::Schema(e.to_string()))?;
        file.types.into_iter().try_fold(Schema::new(), |schema, t| {
            let mut record_type = RecordType::new(&t.name);
            record_type.single = t.single;
            record_type.retention = t.retention.map(|r| Retention {
                period: Duration::from_secs(r.days.saturating_mul(86_400)),
                from: r.from,
            });
            for f in t.fields {
                let kind = f.kind.unwrap_or(FieldKind::Text);
                record_type = record_type.field_of(&f.name, f.class, kind);
            }
            schema.with(record_type)
        })
    }
}

/// Names of types and fields appear inside the layer's keys, separated by
/// `/`: short, printable, no separator.
fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.');
    if ok {
        Ok(())
    } else {
        Err(Error::Schema(format!(
            "{name:?} is not a name (1-64 of A-Z a-z 0-9 _ - .)"
        )))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SchemaFile {
    types: Vec<TypeFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TypeFile {
    name: String,
    #[serde(default)]
    single: bool,
    retention: Option<RetentionFile>,
    fields: Vec<FieldFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RetentionFile {
    days: u64,
    from: RetentionFrom,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FieldFile {
    name: String,
    class: FieldClass,
    kind: Option<FieldKind>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_schema_file_loads_the_same_schema_as_the_builder() {
        let text = r#"{ "types": [ { "name": "profile", "single": true,
            "retention": { "days": 365, "from": "end_of_relationship" },
            "fields": [ { "name": "name", "class": "identifier" },
                        { "name": "year", "class": "ordinary", "kind": { "category": ["1", "2"] } },
                        { "name": "visits", "class": "ordinary", "kind": "integer" },
                        { "name": "pin", "class": "secret" } ] } ] }"#;
        let built = Schema::new()
            .with(
                RecordType::new("profile")
                    .single()
                    .retain(
                        Duration::from_secs(365 * 86_400),
                        RetentionFrom::EndOfRelationship,
                    )
                    .field("name", FieldClass::Identifier)
                    .field_of(
                        "year",
                        FieldClass::Ordinary,
                        FieldKind::Category(vec!["1".into(), "2".into()]),
                    )
                    .field_of("visits", FieldClass::Ordinary, FieldKind::Integer)
                    .field("pin", FieldClass::Secret),
            )
            .unwrap();
        assert_eq!(Schema::from_json(text).unwrap(), built);
    }

    #[test]
    fn bad_schemas_are_refused_with_the_reason() {
        let cases = [
            (
                r#"{ "types": [ { "name": "a/b", "fields": [] } ] }"#,
                "is not a name",
            ),
            (
                r#"{ "types": [ { "name": "a", "fields": [ { "name": "x", "class": "ordinary" }, { "name": "x", "class": "contact" } ] } ] }"#,
                "appears twice",
            ),
            (
                r#"{ "types": [ { "name": "a", "fields": [ { "name": "p", "class": "secret", "kind": "integer" } ] } ] }"#,
                "is not text",
            ),
            (
                r#"{ "types": [ { "name": "a", "fields": [ { "name": "p", "class": "private" } ] } ] }"#,
                "unknown variant",
            ),
            (
                r#"{ "types": [ { "name": "a", "fields": [], "colour": 1 } ] }"#,
                "unknown field",
            ),
        ];
        for (text, expected) in cases {
            match Schema::from_json(text) {
                Err(Error::Schema(reason)) => assert!(reason.contains(expected), "{reason}"),
                other => panic!("{text}: {other:?}"),
            }
        }
    }
}
