//! Records of a subject: typed fields, written and read through the policy.
//! A record is one engine value in the subject's scope (`r/rec/<type>/<id>`),
//! so writing, deleting or purging it is atomic, and shredding the subject
//! erases it everywhere. Secret fields are stored as Argon2id hashes (PHC
//! strings) and never leave the layer.

use std::collections::BTreeMap;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use serde::Serialize;
use strongroom::SubjectId;

use crate::access::Access;
use crate::codec::{Reader, Writer, write_count};
use crate::error::{Error, Result};
use crate::keys;
use crate::policy::Permission;
use crate::schema::{FieldClass, FieldKind, RecordType};
use crate::tenant::{Event, TenantRecords};

/// A field's value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Value {
    /// Text (also a category's label, and a secret being set).
    Text(String),
    /// A whole number.
    Integer(i64),
}

impl From<&str> for Value {
    fn from(v: &str) -> Value {
        Value::Text(v.to_string())
    }
}

impl From<i64> for Value {
    fn from(v: i64) -> Value {
        Value::Integer(v)
    }
}

/// A field as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Stored {
    Value(Value),
    /// An Argon2id PHC string.
    SecretHash(String),
}

/// A record as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoredRecord {
    pub(crate) created_us: u64,
    pub(crate) changed_us: u64,
    pub(crate) fields: BTreeMap<String, Stored>,
}

const RECORD_VERSION: u8 = 1;

impl StoredRecord {
    /// Format: `version u8 = 1 | created_us u64 | changed_us u64 | count u32
    /// | (name | tag u8 | value) × count`; tag 1 text, 2 integer (i64), 3
    /// secret hash (text).
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new(RECORD_VERSION);
        w.u64(self.created_us).u64(self.changed_us);
        write_count(&mut w, self.fields.len());
        for (name, value) in &self.fields {
            w.str(name);
            match value {
                Stored::Value(Value::Text(t)) => w.u8(1).str(t),
                Stored::Value(Value::Integer(i)) => w.u8(2).i64(*i),
                Stored::SecretHash(h) => w.u8(3).str(h),
            };
        }
        w.finish()
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<StoredRecord> {
        let mut r = Reader::new(bytes, "record", RECORD_VERSION)?;
        let created_us = r.u64()?;
        let changed_us = r.u64()?;
        let n = r.count(5)?;
        let mut fields = BTreeMap::new();
        for _ in 0..n {
            let name = r.string()?;
            let value = match r.u8()? {
                1 => Stored::Value(Value::Text(r.string()?)),
                2 => Stored::Value(Value::Integer(r.i64()?)),
                3 => Stored::SecretHash(r.string()?),
                _ => return Err(r.corrupt("an unknown value tag")),
            };
            // Canonical: names sorted, each once (as `encode` writes them).
            if fields
                .last_key_value()
                .is_some_and(|(last, _)| *last >= name)
            {
                return Err(r.corrupt("fields out of order"));
            }
            fields.insert(name, value);
        }
        r.end()?;
        Ok(StoredRecord {
            created_us,
            changed_us,
            fields,
        })
    }
}

/// A record as one caller may see it: only the fields the caller's role
/// reads; never a secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecordView {
    /// When it was created (µs since the Unix epoch).
    pub created_us: u64,
    /// When it last changed.
    pub changed_us: u64,
    /// The fields shown, by name.
    pub fields: BTreeMap<String, Value>,
}

/// Checks `value` against `field`'s kind.
fn check_value(rt: &RecordType, name: &str, value: &Value) -> Result<FieldClass> {
    let field = rt.get(name).ok_or_else(|| Error::UnknownField {
        record_type: rt.name().to_string(),
        field: name.to_string(),
    })?;
    let bad = |why| Error::BadValue {
        field: name.to_string(),
        why,
    };
    match (&field.kind, value) {
        (FieldKind::Text, Value::Text(_)) | (FieldKind::Integer, Value::Integer(_)) => {}
        (FieldKind::Category(labels), Value::Text(t)) if labels.contains(t) => {}
        (FieldKind::Category(_), Value::Text(_)) => return Err(bad("not one of its labels")),
        _ => return Err(bad("the wrong kind")),
    }
    Ok(field.class)
}

fn record_type_and_id<'s>(
    records: &'s TenantRecords<'_>,
    name: &str,
    id: u64,
) -> Result<&'s RecordType> {
    let rt = records.schema().record_type(name)?;
    if rt.single && id != 0 {
        return Err(Error::BadValue {
            field: name.to_string(),
            why: "a single record's id is 0",
        });
    }
    Ok(rt)
}

impl TenantRecords<'_> {
    /// Writes `fields` of record `id` of type `record_type` for subject
    /// `s`, creating the record or changing those fields of it. Needs
    /// `write <class>` for each field's class. Audited, naming the fields.
    pub fn put_record(
        &self,
        ctx: &Access,
        s: SubjectId,
        record_type: &str,
        id: u64,
        fields: &[(&str, Value)],
    ) -> Result<()> {
        let rt = record_type_and_id(self, record_type, id)?;
        if fields.is_empty() {
            // A write of nothing would need no permission, and would still
            // move the record's last change (and its retention).
            return Err(Error::BadValue {
                field: record_type.to_string(),
                why: "a write needs at least one field",
            });
        }
        let mut permissions = Vec::new();
        for (name, value) in fields {
            let permission = Permission::Write(check_value(rt, name, value)?);
            if !permissions.contains(&permission) {
                permissions.push(permission);
            }
        }
        let entry = self.entry(s)?;
        let names: Vec<&str> = fields.iter().map(|(n, _)| *n).collect();
        let detail = format!("{record_type}/{id}: {}", names.join(", "));
        let event = || Event::new("write", Some(s), detail.clone());
        self.authorize(ctx, &permissions, Some((s, &entry)), event)?;
        let mut stored = Vec::new();
        for (name, value) in fields {
            let is_secret = rt.get(name).is_some_and(|f| f.class == FieldClass::Secret);
            stored.push(match (is_secret, value) {
                (true, Value::Text(secret)) => Stored::SecretHash(self.hash_secret(secret)?),
                _ => Stored::Value(value.clone()),
            });
        }
        let key = keys::record(record_type, id);
        let now_us = self.records.now_us();
        self.commit(ctx, event(), "ok", |batch, _, _| {
            self.still_there(s)?;
            let mut record = match self.engine().subject(s).get(&key)? {
                Some(bytes) => StoredRecord::decode(&bytes)?,
                None => StoredRecord {
                    created_us: now_us,
                    changed_us: now_us,
                    fields: BTreeMap::new(),
                },
            };
            record.changed_us = now_us;
            for ((name, _), value) in fields.iter().zip(stored) {
                record.fields.insert(name.to_string(), value);
            }
            batch.put_subject(s, key.clone(), record.encode());
            Ok(())
        })?;
        Ok(())
    }

    /// Record `id` of type `record_type` of subject `s`, with the fields the
    /// caller may read (a denial if that is none of them). Audited when a
    /// field other than an ordinary one is shown.
    pub fn get_record(
        &self,
        ctx: &Access,
        s: SubjectId,
        record_type: &str,
        id: u64,
    ) -> Result<RecordView> {
        let rt = record_type_and_id(self, record_type, id)?;
        let entry = self.entry(s)?;
        let event = |detail: String| Event::new("read", Some(s), detail);
        let granted = self.authorize(ctx, &[], Some((s, &entry)), || {
            event(format!("{record_type}/{id}"))
        })?;
        let shown = |class: FieldClass| {
            class != FieldClass::Secret && granted.holds(Permission::Read(class))
        };
        if let Some(first) = rt.fields().iter().find(|f| f.class != FieldClass::Secret)
            && !rt.fields().iter().any(|f| shown(f.class))
        {
            let error = Error::Denied {
                permission: Permission::Read(first.class),
            };
            return self.deny(ctx, event(format!("{record_type}/{id}")), error);
        }
        let record = self.stored_record(s, record_type, id)?;
        let mut view = RecordView {
            created_us: record.created_us,
            changed_us: record.changed_us,
            fields: BTreeMap::new(),
        };
        let mut audited = Vec::new();
        for (name, value) in record.fields {
            let Some(field) = rt.get(&name) else { continue };
            if let (true, Stored::Value(value)) = (shown(field.class), value) {
                if field.class != FieldClass::Ordinary {
                    audited.push(name.clone());
                }
                view.fields.insert(name, value);
            }
        }
        if !audited.is_empty() {
            let detail = format!("{record_type}/{id}: {}", audited.join(", "));
            self.commit(ctx, event(detail), "ok", |_, _, _| Ok(()))?;
        }
        Ok(view)
    }

    /// Field `field` of a record, if set; a denial if the caller may not
    /// read its class (a secret: no one may). Audited unless ordinary.
    pub fn get_field(
        &self,
        ctx: &Access,
        s: SubjectId,
        record_type: &str,
        id: u64,
        field: &str,
    ) -> Result<Option<Value>> {
        let rt = record_type_and_id(self, record_type, id)?;
        let class = rt
            .get(field)
            .map(|f| f.class)
            .ok_or_else(|| Error::UnknownField {
                record_type: record_type.to_string(),
                field: field.to_string(),
            })?;
        let entry = self.entry(s)?;
        let detail = format!("{record_type}/{id}: {field}");
        let event = || Event::new("read", Some(s), detail.clone());
        self.authorize(ctx, &[Permission::Read(class)], Some((s, &entry)), event)?;
        let record = self.stored_record(s, record_type, id)?;
        let value = match record.fields.get(field) {
            Some(Stored::Value(v)) => Some(v.clone()),
            // No role reads a secret class; a hash in another field (a
            // schema that changed a field's class) is not shown either.
            Some(Stored::SecretHash(_)) | None => None,
        };
        if class != FieldClass::Ordinary {
            self.commit(ctx, event(), "ok", |_, _, _| Ok(()))?;
        }
        Ok(value)
    }

    /// Deletes a record. Needs `write <class>` for every class its type has.
    pub fn delete_record(
        &self,
        ctx: &Access,
        s: SubjectId,
        record_type: &str,
        id: u64,
    ) -> Result<()> {
        let rt = record_type_and_id(self, record_type, id)?;
        let mut permissions: Vec<Permission> = rt
            .fields()
            .iter()
            .map(|f| Permission::Write(f.class))
            .collect();
        permissions.sort();
        permissions.dedup();
        let entry = self.entry(s)?;
        let detail = format!("{record_type}/{id}");
        let event = || Event::new("delete", Some(s), detail.clone());
        self.authorize(ctx, &permissions, Some((s, &entry)), event)?;
        self.stored_record(s, record_type, id)?;
        self.commit(ctx, event(), "ok", |batch, _, _| {
            self.still_there(s)?;
            batch.delete_subject(s, keys::record(record_type, id));
            Ok(())
        })?;
        Ok(())
    }

    /// Whether `candidate` is the secret in field `field` (false when it
    /// was never set). Needs `verify secret`. Audited with the result.
    pub fn verify_secret(
        &self,
        ctx: &Access,
        s: SubjectId,
        record_type: &str,
        id: u64,
        field: &str,
        candidate: &str,
    ) -> Result<bool> {
        let rt = record_type_and_id(self, record_type, id)?;
        if rt.get(field).map(|f| f.class) != Some(FieldClass::Secret) {
            return Err(Error::BadValue {
                field: field.to_string(),
                why: "not a secret field",
            });
        }
        let entry = self.entry(s)?;
        let detail = format!("{record_type}/{id}: {field}");
        let event = |d: &str| Event::new("verify_secret", Some(s), d.to_string());
        self.authorize(ctx, &[Permission::VerifySecret], Some((s, &entry)), || {
            event(&detail)
        })?;
        let record = self.stored_record(s, record_type, id)?;
        let matches = match record.fields.get(field) {
            Some(Stored::SecretHash(phc)) => {
                let hash = PasswordHash::new(phc).map_err(|_| Error::Corrupt {
                    what: "secret hash",
                    reason: "not a PHC string",
                })?;
                Argon2::default()
                    .verify_password(candidate.as_bytes(), &hash)
                    .is_ok()
            }
            _ => false,
        };
        let outcome = if matches { "match" } else { "no match" };
        self.commit(ctx, event(&detail), outcome, |_, _, _| Ok(()))?;
        Ok(matches)
    }

    /// The stored record, or `NoSuchRecord`.
    pub(crate) fn stored_record(
        &self,
        s: SubjectId,
        record_type: &str,
        id: u64,
    ) -> Result<StoredRecord> {
        match self
            .engine()
            .subject(s)
            .get(&keys::record(record_type, id))?
        {
            Some(bytes) => StoredRecord::decode(&bytes),
            None => Err(Error::NoSuchRecord {
                subject: s,
                record_type: record_type.to_string(),
                id,
            }),
        }
    }

    /// Every record of subject `s`: (type, id, record), from one scan.
    pub(crate) fn all_records(&self, s: SubjectId) -> Result<Vec<(String, u64, StoredRecord)>> {
        let mut out = Vec::new();
        for item in self.engine().subject(s).scan()? {
            let (key, value) = item?;
            if let Some((record_type, id)) = keys::parse_record(&key) {
                out.push((record_type.to_string(), id, StoredRecord::decode(&value)?));
            }
        }
        Ok(out)
    }

    fn hash_secret(&self, secret: &str) -> Result<String> {
        let options = self.records.options();
        let params = Params::new(options.secret_memory_kib, options.secret_passes, 1, None)
            .map_err(|_| Error::Config("bad Argon2id parameters".into()))?;
        let mut salt = [0u8; 16];
        getrandom::fill(&mut salt).map_err(|_| Error::Config("no randomness".into()))?;
        let salt = SaltString::encode_b64(&salt).map_err(|_| Error::Config("salt".into()))?;
        let hash = Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password(secret.as_bytes(), &salt)
            .map_err(|_| Error::Config("Argon2id failed".into()))?;
        Ok(hash.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_cuts_are_errors() {
        let mut fields = BTreeMap::new();
        fields.insert("name".to_string(), Stored::Value(Value::Text("x".into())));
        fields.insert("visits".to_string(), Stored::Value(Value::Integer(-3)));
        fields.insert(
            "pin".to_string(),
            Stored::SecretHash("$argon2id$...".into()),
        );
        let record = StoredRecord {
            created_us: 1,
            changed_us: 2,
            fields,
        };
        let bytes = record.encode();
        assert_eq!(StoredRecord::decode(&bytes).unwrap(), record);
        for cut in 0..bytes.len() {
            assert!(StoredRecord::decode(&bytes[..cut]).is_err());
        }
    }
}
