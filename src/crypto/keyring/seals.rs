//! The seals ledger: shreds in their grace period, and shreds whose space is
//! not yet reclaimed.
//!
//! ```text
//! file   = header | record*
//! header = magic "SRSEALS1" | version u32 | crc32 u32
//! record = tenant u64 | scope_kind u8 | subject u64 | op u8 | deadline_us u64
//!          | crc32 u32
//! op     = 1 seal (until deadline_us) | 2 cancel | 3 done (destroyed and
//!          reclaimed)
//! ```
//! Records are appended and fdatasync'ed; the last record of a scope says its
//! state. A partial record at the end is a torn append (the call that wrote
//! it never returned) and is dropped; a whole record with a bad CRC is
//! corruption. The ledger is rewritten, atomically and holding only pending
//! seals, when it is opened with finished ones in it.

use std::collections::HashMap;
use std::path::Path;

use crate::codec;
use crate::error::{CorruptionKind, Error, Result};
use crate::format::{
    KEYRING_VERSION, SEAL_OP_CANCEL, SEAL_OP_DONE, SEAL_OP_SEAL, SEALS_HEADER_LEN, SEALS_MAGIC,
    SEALS_RECORD_LEN,
};
use crate::scope::Scope;

/// One ledger record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SealRecord {
    pub(crate) scope: Scope,
    pub(crate) op: u8,
    pub(crate) deadline_us: u64,
}

pub(crate) fn encode_header() -> [u8; SEALS_HEADER_LEN] {
    let mut out = [0u8; SEALS_HEADER_LEN];
    out[..8].copy_from_slice(&SEALS_MAGIC);
    out[8..12].copy_from_slice(&KEYRING_VERSION.to_le_bytes());
    let crc = crc32fast::hash(&out[..12]);
    out[12..].copy_from_slice(&crc.to_le_bytes());
    out
}

impl SealRecord {
    pub(crate) fn encode(&self) -> [u8; SEALS_RECORD_LEN] {
        let (kind, subject) = self.scope.encode_kind();
        let mut out = [0u8; SEALS_RECORD_LEN];
        out[..8].copy_from_slice(&self.scope.tenant.0.to_le_bytes());
        out[8] = kind;
        out[9..17].copy_from_slice(&subject.to_le_bytes());
        out[17] = self.op;
        out[18..26].copy_from_slice(&self.deadline_us.to_le_bytes());
        let crc = crc32fast::hash(&out[..26]);
        out[26..].copy_from_slice(&crc.to_le_bytes());
        out
    }

    fn decode(raw: &[u8]) -> Result<SealRecord, CorruptionKind> {
        let crc = u32::from_le_bytes(raw[26..30].try_into().unwrap());
        if crc != crc32fast::hash(&raw[..26]) {
            return Err(CorruptionKind::Checksum);
        }
        let u64_at = |at: usize| u64::from_le_bytes(raw[at..at + 8].try_into().unwrap());
        let scope = Scope::decode_kind(u64_at(0), raw[8], u64_at(9))
            .ok_or(CorruptionKind::Malformed("unknown scope kind"))?;
        Ok(SealRecord {
            scope,
            op: raw[17],
            deadline_us: u64_at(18),
        })
    }
}

/// A decoded ledger.
#[derive(Debug, Default)]
pub(crate) struct Ledger {
    /// Scopes whose last record is a seal, with their deadlines.
    pub(crate) pending: HashMap<Scope, u64>,
    /// Whether the file holds records that are no longer pending (cancelled
    /// or done seals), or a torn append: then it is worth rewriting.
    pub(crate) has_garbage: bool,
}

/// Decodes a ledger file.
pub(crate) fn decode(file: &Path, bytes: &[u8]) -> Result<Ledger> {
    let bad = |offset: usize, kind| Error::corruption(file, offset as u64, kind);
    codec::check_magic_version(file, bytes, &SEALS_MAGIC, KEYRING_VERSION)?;
    if bytes.len() < SEALS_HEADER_LEN {
        return Err(bad(0, CorruptionKind::Truncated));
    }
    codec::check_crc(file, bytes, SEALS_HEADER_LEN - 4)?;
    let mut ledger = Ledger::default();
    let mut at = SEALS_HEADER_LEN;
    let mut records = 0usize;
    while at + SEALS_RECORD_LEN <= bytes.len() {
        let raw = &bytes[at..at + SEALS_RECORD_LEN];
        let record = SealRecord::decode(raw).map_err(|kind| bad(at, kind))?;
        match record.op {
            SEAL_OP_SEAL => {
                ledger.pending.insert(record.scope, record.deadline_us);
            }
            SEAL_OP_CANCEL | SEAL_OP_DONE => {
                ledger.pending.remove(&record.scope);
            }
            _ => return Err(bad(at, CorruptionKind::Malformed("unknown seal operation"))),
        }
        records += 1;
        at += SEALS_RECORD_LEN;
    }
    ledger.has_garbage = at < bytes.len() || records > ledger.pending.len();
    Ok(ledger)
}

/// The bytes of a ledger holding exactly `pending`.
pub(crate) fn encode_pending(pending: &HashMap<Scope, u64>) -> Vec<u8> {
    let mut out = encode_header().to_vec();
    let mut scopes: Vec<_> = pending.iter().collect();
    scopes.sort();
    for (scope, deadline_us) in scopes {
        let record = SealRecord {
            scope: *scope,
            op: SEAL_OP_SEAL,
            deadline_us: *deadline_us,
        };
        out.extend_from_slice(&record.encode());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scope::{SubjectId, TenantId};

    #[test]
    fn the_last_record_of_a_scope_decides() {
        let a = Scope::tenant(TenantId(1));
        let b = Scope::subject(TenantId(1), SubjectId(2));
        let mut bytes = encode_header().to_vec();
        for (scope, op, deadline_us) in [
            (a, SEAL_OP_SEAL, 10),
            (b, SEAL_OP_SEAL, 20),
            (a, SEAL_OP_CANCEL, 0),
            (b, SEAL_OP_SEAL, 30),
        ] {
            bytes.extend_from_slice(
                &SealRecord {
                    scope,
                    op,
                    deadline_us,
                }
                .encode(),
            );
        }
        let ledger = decode(Path::new("s"), &bytes).unwrap();
        assert_eq!(ledger.pending, HashMap::from([(b, 30)]));
        assert!(ledger.has_garbage);
        let compact = encode_pending(&ledger.pending);
        let again = decode(Path::new("s"), &compact).unwrap();
        assert_eq!(again.pending, ledger.pending);
        assert!(!again.has_garbage);
        // A torn append is dropped; a flipped bit is corruption.
        assert!(decode(Path::new("s"), &bytes[..bytes.len() - 5]).is_ok());
        for bit in 0..bytes.len() * 8 {
            let mut bad = bytes.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(decode(Path::new("s"), &bad).is_err(), "bit {bit}");
        }
    }
}
