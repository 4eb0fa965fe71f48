//! The layer's keys inside the engine's scopes (docs/FORMAT.md §14), in one
//! place. Every key starts with `r/`, so the layer's records never collide
//! with keys an application writes itself. Numbers in keys are big-endian.
//! The engine seals keys and values alike, so none of these names, numbers
//! or hashes is visible on disk.

use strongroom::SubjectId;

/// Tenant scope: the tenant's [`crate::tenant`] meta (index key, counters,
/// pending erasures).
pub(crate) const META: &[u8] = b"r/meta";
/// Tenant scope: the tenant's configuration (JSON).
pub(crate) const CONFIG: &[u8] = b"r/config";
/// Tenant scope: the audit trail's head (next sequence number, last hash).
pub(crate) const AUDIT_HEAD: &[u8] = b"r/audit-head";
/// Tenant scope: the state of a retention sweep that has not finished.
pub(crate) const SWEEP: &[u8] = b"r/sweep";
/// Subject scope: the subject's identifiers and its contribution salt.
pub(crate) const IDS: &[u8] = b"r/ids";
/// Subject scope: prefix of the subject's records.
pub(crate) const RECORD_PREFIX: &[u8] = b"r/rec/";

fn numbered(prefix: &[u8], n: u64) -> Vec<u8> {
    let mut key = prefix.to_vec();
    key.extend_from_slice(&n.to_be_bytes());
    key
}

/// Tenant scope: one member's role, unit and grants (JSON).
pub(crate) fn member(actor: &str) -> Vec<u8> {
    [b"r/member/".as_slice(), actor.as_bytes()].concat()
}

/// Tenant scope: a blind index entry (kind byte, keyed hash) -> subject.
pub(crate) fn index(kind: u8, hash: &[u8; 32]) -> Vec<u8> {
    [b"r/ix/".as_slice(), &[kind], hash].concat()
}

/// Tenant scope: subject `s`'s entry in the registry.
pub(crate) fn subject(s: SubjectId) -> Vec<u8> {
    numbered(b"r/subject/", s.0)
}

/// Tenant scope: audit entry `seq`.
pub(crate) fn audit(seq: u64) -> Vec<u8> {
    numbered(b"r/audit/", seq)
}

/// Tenant scope: aggregate release `n`.
pub(crate) fn release(n: u64) -> Vec<u8> {
    numbered(b"r/release/", n)
}

/// Subject scope: record `id` of type `record_type`.
pub(crate) fn record(record_type: &str, id: u64) -> Vec<u8> {
    let mut key = [RECORD_PREFIX, record_type.as_bytes(), b"/"].concat();
    key.extend_from_slice(&id.to_be_bytes());
    key
}

/// The (type, id) of a record key, if `key` is one.
pub(crate) fn parse_record(key: &[u8]) -> Option<(&str, u64)> {
    let rest = key.strip_prefix(RECORD_PREFIX)?;
    let split = rest.len().checked_sub(9)?;
    let (name, tail) = rest.split_at(split);
    let id = tail.strip_prefix(b"/")?;
    Some((
        std::str::from_utf8(name).ok()?,
        u64::from_be_bytes(id.try_into().ok()?),
    ))
}

/// Subject scope: the consent ledger for `purpose`.
pub(crate) fn consent(purpose: &str) -> Vec<u8> {
    [b"r/consent/".as_slice(), purpose.as_bytes()].concat()
}

#[cfg(test)]
mod tests {
    #[test]
    fn record_keys_parse_back() {
        let key = super::record("case_note", 0x0102);
        assert_eq!(super::parse_record(&key), Some(("case_note", 0x0102)));
        assert_eq!(super::parse_record(b"r/rec/x"), None);
        assert_eq!(super::parse_record(super::IDS), None);
    }
}
