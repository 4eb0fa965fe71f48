//! Subjects: their numbers, their identifiers, and the blind indexes that
//! find them.
//!
//! The engine's subject ids are numbers, visible on disk; the layer gives
//! out the numbers and keeps an application's identifiers (e-mail, phone,
//! external id) only sealed, in the subject's own scope. To find a subject
//! by an identifier it keeps a blind index in the tenant's scope: the keyed
//! BLAKE3 hash of the normalised identifier under the tenant's random index
//! key → the subject's number. Neither the identifier nor its hash is
//! visible on disk (the engine seals keys too), and the hash is keyed, so a
//! copy of the index cannot be matched against a list of e-mails without the
//! tenant's key. Erasure removes the subject's index entries before its
//! scope is shredded.

use strongroom::{ScopeState, ShredOptions, SubjectId};

use crate::access::Access;
use crate::codec::{Reader, Writer, write_count};
use crate::error::{Error, Result};
use crate::keys;
use crate::policy::Permission;
use crate::schema::FieldClass;
use crate::tenant::{Event, TenantRecords};

/// A subject's entry in the tenant's registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SubjectEntry {
    /// The unit the subject belongs to.
    pub(crate) unit: String,
    pub(crate) created_us: u64,
    /// When the relationship ended, if it has.
    pub(crate) ended_us: Option<u64>,
    /// The subject's blind index entries (kind, hash).
    pub(crate) index: Vec<(u8, [u8; 32])>,
}

const ENTRY_VERSION: u8 = 1;
const IDS_VERSION: u8 = 1;

impl SubjectEntry {
    /// Format: `version u8 = 1 | unit | created_us u64 | ended_us opt u64 |
    /// count u32 | (kind u8 | hash [32]) × count`.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new(ENTRY_VERSION);
        w.str(&self.unit)
            .u64(self.created_us)
            .opt_u64(self.ended_us);
        write_count(&mut w, self.index.len());
        for (kind, hash) in &self.index {
            w.u8(*kind);
            for b in hash {
                w.u8(*b);
            }
        }
        w.finish()
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<SubjectEntry> {
        let mut r = Reader::new(bytes, "subject entry", ENTRY_VERSION)?;
        let unit = r.string()?;
        let created_us = r.u64()?;
        let ended_us = r.opt_u64()?;
        let n = r.count(33)?;
        let index = (0..n)
            .map(|_| Ok((r.u8()?, r.array::<32>()?)))
            .collect::<Result<_>>()?;
        r.end()?;
        Ok(SubjectEntry {
            unit,
            created_us,
            ended_us,
            index,
        })
    }
}

/// An application's identifiers of a person. E-mail and phone are contact
/// data; the external id (a member number, a pupil number) is an identifier.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Identifiers {
    /// E-mail address.
    pub email: Option<String>,
    /// Phone number.
    pub phone: Option<String>,
    /// The application's own id for the person.
    pub external_id: Option<String>,
}

impl Identifiers {
    /// No identifiers.
    pub fn new() -> Identifiers {
        Identifiers::default()
    }

    /// With an e-mail address.
    pub fn email(mut self, email: &str) -> Identifiers {
        self.email = Some(email.to_string());
        self
    }

    /// With a phone number.
    pub fn phone(mut self, phone: &str) -> Identifiers {
        self.phone = Some(phone.to_string());
        self
    }

    /// With an external id.
    pub fn external_id(mut self, id: &str) -> Identifiers {
        self.external_id = Some(id.to_string());
        self
    }

    /// Format of `r/ids`: `version u8 = 1 | email opt | phone opt |
    /// external_id opt | salt len u32 | [32]`.
    pub(crate) fn encode(&self, salt: &[u8; 32]) -> Vec<u8> {
        let mut w = Writer::new(IDS_VERSION);
        w.opt_str(self.email.as_deref())
            .opt_str(self.phone.as_deref())
            .opt_str(self.external_id.as_deref())
            .bytes(salt);
        w.finish()
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<(Identifiers, [u8; 32])> {
        let mut r = Reader::new(bytes, "subject identifiers", IDS_VERSION)?;
        let ids = Identifiers {
            email: r.opt_string()?,
            phone: r.opt_string()?,
            external_id: r.opt_string()?,
        };
        let salt = r
            .bytes()?
            .try_into()
            .map_err(|_| r.corrupt("a salt that is not 32 bytes"))?;
        r.end()?;
        Ok((ids, salt))
    }

    /// Each identifier present, with its kind and class.
    fn each(&self) -> impl Iterator<Item = (IdentifierKind, &str)> {
        [
            (IdentifierKind::Email, self.email.as_deref()),
            (IdentifierKind::Phone, self.phone.as_deref()),
            (IdentifierKind::ExternalId, self.external_id.as_deref()),
        ]
        .into_iter()
        .filter_map(|(kind, v)| v.map(|v| (kind, v)))
    }
}

/// Which identifier a lookup uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentifierKind {
    /// An e-mail address: found in any case and spacing.
    Email,
    /// A phone number: found whatever the spaces, dashes, dots or brackets.
    Phone,
    /// An external id: found exactly (surrounding spaces aside).
    ExternalId,
}

impl IdentifierKind {
    fn byte(self) -> u8 {
        match self {
            IdentifierKind::Email => 1,
            IdentifierKind::Phone => 2,
            IdentifierKind::ExternalId => 3,
        }
    }

    fn name(self) -> &'static str {
        match self {
            IdentifierKind::Email => "email",
            IdentifierKind::Phone => "phone",
            IdentifierKind::ExternalId => "external_id",
        }
    }

    fn class(self) -> FieldClass {
        match self {
            IdentifierKind::Email | IdentifierKind::Phone => FieldClass::Contact,
            IdentifierKind::ExternalId => FieldClass::Identifier,
        }
    }

    /// The normal form the index hashes, or why there is none.
    pub(crate) fn normalise(self, value: &str) -> Result<String> {
        let bad = |why| Error::BadValue {
            field: self.name().to_string(),
            why,
        };
        match self {
            IdentifierKind::Email => {
                let v: String = value.chars().filter(|c| !c.is_whitespace()).collect();
                let v = v.to_lowercase();
                match v.split_once('@') {
                    Some((local, domain)) if !local.is_empty() && !domain.is_empty() => Ok(v),
                    _ => Err(bad("not an e-mail address")),
                }
            }
            IdentifierKind::Phone => {
                // "+44 (0)20 ..." is "+44 20 ...": the trunk 0 written
                // after a country code is not dialled.
                let value = &value.replace("(0)", "");
                let trimmed = value.trim_start();
                let plus = if trimmed.starts_with('+') { "+" } else { "" };
                if value
                    .chars()
                    .any(|c| !(c.is_ascii_digit() || " +-.()".contains(c)))
                {
                    return Err(bad("not a phone number"));
                }
                let digits: String = value.chars().filter(char::is_ascii_digit).collect();
                if digits.len() < 5 {
                    return Err(bad("not a phone number"));
                }
                Ok(format!("{plus}{digits}"))
            }
            IdentifierKind::ExternalId => {
                let v = value.trim();
                if v.is_empty() {
                    return Err(bad("empty"));
                }
                Ok(v.to_string())
            }
        }
    }
}

impl TenantRecords<'_> {
    /// The blind index hash of `value` as `kind`.
    fn blind(&self, kind: IdentifierKind, value: &str) -> Result<[u8; 32]> {
        let normal = kind.normalise(value)?;
        let mut hasher = blake3::Hasher::new_keyed(&self.state.index_key);
        hasher.update(&[kind.byte()]).update(normal.as_bytes());
        Ok(*hasher.finalize().as_bytes())
    }

    /// The registry entry of subject `s`; `NoSuchSubject` if it was never
    /// created or is erased (or being erased: the erasure's first batch
    /// deletes the entry).
    pub(crate) fn entry(&self, s: SubjectId) -> Result<SubjectEntry> {
        match self.engine().get(&keys::subject(s))? {
            Some(bytes) => SubjectEntry::decode(&bytes),
            None => Err(Error::NoSuchSubject(s)),
        }
    }

    /// Checks, under the commit lock, that subject `s` is still in the
    /// registry (not erased since the caller's checks).
    pub(crate) fn still_there(&self, s: SubjectId) -> Result<()> {
        match self.engine().get(&keys::subject(s))? {
            Some(_) => Ok(()),
            None => Err(Error::NoSuchSubject(s)),
        }
    }

    /// Every live subject in unit `unit` (or below it), in number order.
    pub(crate) fn subjects_in(&self, unit: &str) -> Result<Vec<(SubjectId, SubjectEntry)>> {
        let end = self.state.committed.read().next_subject;
        let config = self.configured();
        let mut out = Vec::new();
        for n in 1..end {
            let Some(bytes) = self.engine().get(&keys::subject(SubjectId(n)))? else {
                continue;
            };
            let entry = SubjectEntry::decode(&bytes)?;
            if config.within(&entry.unit, unit) {
                out.push((SubjectId(n), entry));
            }
        }
        Ok(out)
    }

    /// Creates a subject in `unit` with identifiers `ids`, which must not
    /// name another subject. Needs `create subject`, and `write contact` for
    /// an e-mail or phone, `write identifier` for an external id.
    pub fn create_subject(&self, ctx: &Access, unit: &str, ids: &Identifiers) -> Result<SubjectId> {
        let kinds: Vec<&str> = ids.each().map(|(k, _)| k.name()).collect();
        let event = || {
            Event::new(
                "create_subject",
                None,
                format!("identifiers: {}", kinds.join(", ")),
            )
        };
        let granted = self.authorize(ctx, &[Permission::CreateSubject], None, event)?;
        for (kind, _) in ids.each() {
            let permission = Permission::Write(kind.class());
            if !granted.holds(permission) {
                return self.deny(ctx, event(), Error::Denied { permission });
            }
        }
        let config = self.configured();
        config.unit(unit)?;
        if !config.within(unit, &ctx.unit) {
            let error = Error::OutsideUnit {
                unit: unit.to_string(),
            };
            return self.deny(ctx, event(), error);
        }
        let mut index = Vec::new();
        for (kind, value) in ids.each() {
            index.push((kind.byte(), self.blind(kind, value)?));
        }
        let mut salt = [0u8; 32];
        getrandom::fill(&mut salt).map_err(|_| Error::Config("no randomness".into()))?;
        let mut created = SubjectId(0);
        let now_us = self.records.now_us();
        let committed = self.commit(ctx, event(), "ok", |batch, ledger, event| {
            // Checked under the commit lock: two creations of one e-mail
            // cannot both pass.
            for (kind, hash) in &index {
                if self.engine().get(&keys::index(*kind, hash))?.is_some() {
                    let name = ids
                        .each()
                        .find(|(k, _)| k.byte() == *kind)
                        .map(|(k, _)| k.name());
                    return Err(Error::IdentifierInUse(name.unwrap_or("identifier")));
                }
            }
            created = SubjectId(ledger.next_subject);
            ledger.next_subject += 1;
            event.subject = Some(created);
            let entry = SubjectEntry {
                unit: unit.to_string(),
                created_us: now_us,
                ended_us: None,
                index: index.clone(),
            };
            batch.put(keys::subject(created), entry.encode());
            for (kind, hash) in &index {
                batch.put(keys::index(*kind, hash), created.0.to_le_bytes().to_vec());
            }
            batch.put_subject(created, keys::IDS, ids.encode(&salt));
            Ok(())
        });
        match committed {
            // Refused, and audited: an identifier in use is an answer about
            // someone.
            Err(e @ Error::IdentifierInUse(_)) => return self.deny(ctx, event(), e),
            other => other?,
        };
        tracing::debug!(tenant = self.id.0, subject = created.0, "subject created");
        Ok(created)
    }

    /// The subject that identifier `value` (of `kind`) names, if any within
    /// the caller's unit. Needs `lookup`. Audited, naming the subject found
    /// by number.
    pub fn find_subject(
        &self,
        ctx: &Access,
        kind: IdentifierKind,
        value: &str,
    ) -> Result<Option<SubjectId>> {
        let event = || Event::new("lookup", None, format!("by {}", kind.name()));
        self.authorize(ctx, &[Permission::Lookup], None, event)?;
        let hash = self.blind(kind, value)?;
        let found = match self.engine().get(&keys::index(kind.byte(), &hash))? {
            Some(bytes) => {
                let n = u64::from_le_bytes(bytes.as_slice().try_into().map_err(|_| {
                    Error::Corrupt {
                        what: "blind index entry",
                        reason: "not a subject number",
                    }
                })?);
                let s = SubjectId(n);
                match self.entry(s) {
                    // A subject shredded around the layer (its index
                    // entries left behind) is not found either.
                    Ok(e) if self.configured().within(&e.unit, &ctx.unit) => {
                        let live = self.engine().subject(s).state()? == ScopeState::Live;
                        live.then_some(s)
                    }
                    Ok(_) | Err(Error::NoSuchSubject(_)) => None,
                    Err(e) => return Err(e),
                }
            }
            None => None,
        };
        let outcome = if found.is_some() { "ok" } else { "not found" };
        let event = Event::new("lookup", found, format!("by {}", kind.name()));
        self.commit(ctx, event, outcome, |_, _, _| Ok(()))?;
        Ok(found)
    }

    /// Subject `s`'s identifiers, those the caller may read (e-mail and
    /// phone are contact data). Audited.
    pub fn identifiers(&self, ctx: &Access, s: SubjectId) -> Result<Identifiers> {
        let entry = self.entry(s)?;
        let event = || Event::new("read", Some(s), "identifiers".into());
        let granted = self.authorize(
            ctx,
            &[Permission::Read(FieldClass::Identifier)],
            Some((s, &entry)),
            event,
        )?;
        let bytes = self
            .engine()
            .subject(s)
            .get(keys::IDS)?
            .ok_or(Error::NoSuchSubject(s))?;
        let (mut ids, _) = Identifiers::decode(&bytes)?;
        if !granted.holds(Permission::Read(FieldClass::Contact)) {
            ids.email = None;
            ids.phone = None;
        }
        let shown: Vec<&str> = ids.each().map(|(k, _)| k.name()).collect();
        let event = Event::new(
            "read",
            Some(s),
            format!("identifiers: {}", shown.join(", ")),
        );
        self.commit(ctx, event, "ok", |_, _, _| Ok(()))?;
        Ok(ids)
    }

    /// Records that subject `s`'s relationship with the tenant ended now:
    /// retention counted from the end of the relationship starts. Needs
    /// `purge`.
    pub fn end_relationship(&self, ctx: &Access, s: SubjectId) -> Result<()> {
        let entry = self.entry(s)?;
        let event = || Event::new("end_relationship", Some(s), String::new());
        self.authorize(ctx, &[Permission::Purge], Some((s, &entry)), event)?;
        let now_us = self.records.now_us();
        self.commit(ctx, event(), "ok", |batch, _, _| {
            // Read again under the commit lock: an erasure committed since
            // must not be undone by writing the entry back.
            let mut entry = self.entry(s)?;
            entry.ended_us = Some(now_us);
            batch.put(keys::subject(s), entry.encode());
            Ok(())
        })?;
        Ok(())
    }

    /// Erases subject `s` (the right to be forgotten): its index entries
    /// and registry entry are removed, then its scope is shredded at once, so nothing of it
    /// decrypts again from any file, the archive and backups included. The
    /// trail keeps the entries that name it by number. Needs `erase`.
    ///
    /// Crash-safe: the first commit marks the erasure as begun; a crash
    /// before the end leaves it for [`crate::Records::tenant`] to finish.
    pub fn erase_subject(&self, ctx: &Access, s: SubjectId) -> Result<()> {
        let entry = self.entry(s)?;
        let event = || Event::new("erase", Some(s), String::new());
        self.authorize(ctx, &[Permission::Erase], Some((s, &entry)), event)?;
        self.commit(ctx, event(), "ok", |batch, ledger, _| {
            self.still_there(s)?;
            for (kind, hash) in &entry.index {
                batch.delete(keys::index(*kind, hash));
            }
            batch.delete(keys::subject(s));
            ledger.erasing.push(s.0);
            Ok(())
        })?;
        self.finish_erasures()
    }

    /// Finishes every erasure begun: shreds the scope, then takes it off
    /// the list.
    pub(crate) fn finish_erasures(&self) -> Result<()> {
        let _one_at_a_time = self.state.finishing.lock();
        let erasing = self.committed().erasing;
        for n in erasing {
            let s = SubjectId(n);
            match self.engine().shred_subject(s, ShredOptions::immediate()) {
                Ok(_) | Err(strongroom::Error::Shredded { .. }) => {}
                Err(e) => return Err(e.into()),
            }
            let system = Access::new("strongroom", "system", "*", "erasure", "erasure finished");
            let event = Event::new("erase.finish", Some(s), String::new());
            self.commit(&system, event, "ok", |_, ledger, _| {
                ledger.erasing.retain(|&e| e != n);
                Ok(())
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_normalise_whatever_their_case_and_spacing() {
        let email = IdentifierKind::Email;
        assert_eq!(
            email.normalise(" Ada.Lovelace @Example.ORG ").unwrap(),
            "ada.lovelace@example.org"
        );
        assert!(email.normalise("no-at-sign").is_err());
        let phone = IdentifierKind::Phone;
        assert_eq!(
            phone.normalise("+44 (0)20 7946-0958").unwrap(),
            "+442079460958"
        );
        assert_eq!(
            phone.normalise("+44 20 7946 0958").unwrap(),
            "+442079460958"
        );
        assert_eq!(phone.normalise("020.7946.0958").unwrap(), "02079460958");
        assert!(phone.normalise("call me").is_err());
        assert_eq!(
            IdentifierKind::ExternalId.normalise("  P-17 ").unwrap(),
            "P-17"
        );
    }

    #[test]
    fn entries_round_trip_and_cuts_are_errors() {
        let entry = SubjectEntry {
            unit: "north".into(),
            created_us: 5,
            ended_us: Some(9),
            index: vec![(1, [3; 32]), (2, [4; 32])],
        };
        let bytes = entry.encode();
        assert_eq!(SubjectEntry::decode(&bytes).unwrap(), entry);
        for cut in 0..bytes.len() {
            assert!(SubjectEntry::decode(&bytes[..cut]).is_err());
        }
        let ids = Identifiers::new().email("a@b").external_id("7");
        let (back, salt) = Identifiers::decode(&ids.encode(&[8; 32])).unwrap();
        assert_eq!((back, salt), (ids, [8; 32]));
    }
}
