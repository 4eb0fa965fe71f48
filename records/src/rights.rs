//! The subject's rights: access (everything held about the subject, as
//! JSON). Erasure is [`TenantRecords::erase_subject`].

use serde_json::{Map, Value as Json, json};
use strongroom::SubjectId;

use crate::access::Access;
use crate::consent;
use crate::error::Result;
use crate::keys;
use crate::policy::Permission;
use crate::record::{Stored, Value};
use crate::subjects::Identifiers;
use crate::tenant::{Event, TenantRecords};

impl TenantRecords<'_> {
    /// Everything held about subject `s`: its registry entry, identifiers,
    /// every record (every field; a secret only as "set"), every consent
    /// ledger, and every audit entry that names it. For answering the
    /// subject's access request. Needs `export`. Audited.
    pub fn export_subject(&self, ctx: &Access, s: SubjectId) -> Result<Json> {
        let entry = self.entry(s)?;
        let event = || Event::new("export", Some(s), String::new());
        self.authorize(ctx, &[Permission::Export], Some((s, &entry)), event)?;
        let subject = self.engine().subject(s);
        let mut identifiers = Json::Null;
        let mut records = Vec::new();
        let mut consents = Map::new();
        let now_us = self.records.now_us();
        for item in subject.scan()? {
            let (key, value) = item?;
            if key == keys::IDS {
                let (ids, _salt): (Identifiers, _) = Identifiers::decode(&value)?;
                identifiers = json!(ids);
            } else if let Some((record_type, id)) = keys::parse_record(&key) {
                records.push(export_record(record_type, id, &value)?);
            } else if let Some(purpose) = key.strip_prefix(b"r/consent/") {
                let events = consent::decode(&value)?;
                let state = consent::state_at(&events, now_us);
                let purpose = String::from_utf8_lossy(purpose).into_owned();
                consents.insert(purpose, json!({ "state": state, "history": events }));
            }
        }
        records.sort_by(|a, b| {
            (a["type"].as_str(), a["id"].as_u64()).cmp(&(b["type"].as_str(), b["id"].as_u64()))
        });
        let head = self.state.committed.read().head.next_seq;
        let trail: Vec<Json> = self
            .read_audit(0, head)?
            .into_iter()
            .filter(|e| e.concerns(s))
            .map(|e| json!(e))
            .collect();
        let export = json!({
            "tenant": self.id.0,
            "subject": s.0,
            "unit": entry.unit,
            "created_us": entry.created_us,
            "relationship_ended_us": entry.ended_us,
            "identifiers": identifiers,
            "records": records,
            "consents": consents,
            "audit": trail,
        });
        self.commit(ctx, event(), "ok", |_, _, _| Ok(()))?;
        Ok(export)
    }
}

fn export_record(record_type: &str, id: u64, bytes: &[u8]) -> Result<Json> {
    let record = crate::record::StoredRecord::decode(bytes)?;
    let fields: Map<String, Json> = record
        .fields
        .into_iter()
        .map(|(name, value)| {
            let value = match value {
                Stored::Value(Value::Text(t)) => json!(t),
                Stored::Value(Value::Integer(i)) => json!(i),
                Stored::SecretHash(_) => json!("(a secret is set; it is kept only as a hash)"),
            };
            (name, value)
        })
        .collect();
    Ok(json!({
        "type": record_type,
        "id": id,
        "created_us": record.created_us,
        "changed_us": record.changed_us,
        "fields": fields,
    }))
}
