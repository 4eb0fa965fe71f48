//! The seals ledger: shreds in their grace period, and shreds whose space is
//! not yet reclaimed. A MAC chain (`custody.rs`), anchored in the manifest.
//!
//! ```text
//! file   = header | record*
//! header = magic "SRSEALS1" | version u32 | generation u64 | crc32 u32 | mac [32]
//! record = tenant u64 | scope_kind u8 | subject u64 | op u8 | deadline_us u64
//!          | crc32 u32 | mac [32]
//! op     = 1 seal (until deadline_us) | 2 cancel | 3 done (destroyed and
//!          reclaimed)
//! ```
//! Records are appended and fdatasync'ed; the last record of a scope says its
//! state. A partial record at the end is a torn append (the call that wrote
//! it never returned) and is dropped; a whole record with a bad CRC or MAC is
//! corruption. The ledger is rewritten, atomically and holding only pending
//! seals, when it is opened with finished ones in it. Format 1 (no
//! generation, no MACs) is read only to upgrade it.

use std::collections::HashMap;
use std::path::Path;

use super::custody::{self, Chain, ChainKey};
use crate::codec;
use crate::error::{CorruptionKind, Error, Result};
use crate::format::{
    KEYRING_VERSION, KEYRING_VERSION_V1, SEAL_OP_CANCEL, SEAL_OP_DONE, SEAL_OP_SEAL,
    SEALS_HEADER_LEN, SEALS_HEADER_LEN_V1, SEALS_MAGIC, SEALS_RECORD_LEN, SEALS_RECORD_LEN_V1,
};
use crate::scope::Scope;

/// One ledger record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SealRecord {
    pub(crate) scope: Scope,
    pub(crate) op: u8,
    pub(crate) deadline_us: u64,
}

/// The header up to its CRC: magic | version | generation.
pub(crate) fn header_fields(generation: u64) -> Vec<u8> {
    let mut out = SEALS_MAGIC.to_vec();
    out.extend_from_slice(&KEYRING_VERSION.to_le_bytes());
    out.extend_from_slice(&generation.to_le_bytes());
    out
}

impl SealRecord {
    /// The record's bytes, ending in its CRC (format 2 adds the MAC).
    pub(crate) fn encode(&self) -> [u8; SEALS_RECORD_LEN_V1] {
        let (kind, subject) = self.scope.encode_kind();
        let mut out = [0u8; SEALS_RECORD_LEN_V1];
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
    /// Its MAC chain (`None` in format 1).
    pub(crate) chain: Option<Chain>,
}

/// Decodes a ledger file: format 2, or, with `upgrading`, format 1 too.
pub(crate) fn decode(file: &Path, bytes: &[u8], key: &ChainKey, upgrading: bool) -> Result<Ledger> {
    let version = codec::read_version(file, bytes, &SEALS_MAGIC)?;
    if version == KEYRING_VERSION_V1 && upgrading {
        if bytes.len() < SEALS_HEADER_LEN_V1 {
            return Err(Error::corruption(file, 0, CorruptionKind::Truncated));
        }
        codec::check_crc(file, bytes, SEALS_HEADER_LEN_V1 - 4)?;
        let records = (SEALS_HEADER_LEN_V1..)
            .step_by(SEALS_RECORD_LEN_V1)
            .take_while(|at| at + SEALS_RECORD_LEN_V1 <= bytes.len())
            .map(|at| (at, &bytes[at..at + SEALS_RECORD_LEN_V1]));
        let mut ledger = replay(file, records)?;
        ledger.has_garbage = true;
        return Ok(ledger);
    }
    codec::check_magic_version(file, bytes, &SEALS_MAGIC, KEYRING_VERSION)?;
    let read = custody::read(file, bytes, SEALS_HEADER_LEN, SEALS_RECORD_LEN, key)?;
    let records = read
        .records
        .iter()
        .enumerate()
        .map(|(i, raw)| (SEALS_HEADER_LEN + i * SEALS_RECORD_LEN, *raw));
    let mut ledger = replay(file, records)?;
    let count = read.records.len();
    ledger.has_garbage |= read.valid_len < bytes.len() || count > ledger.pending.len();
    ledger.chain = Some(read.chain);
    Ok(ledger)
}

/// The pending seals of a sequence of records: the last record of a scope
/// decides.
fn replay<'a>(file: &Path, records: impl Iterator<Item = (usize, &'a [u8])>) -> Result<Ledger> {
    let bad = |offset: usize, kind| Error::corruption(file, offset as u64, kind);
    let mut ledger = Ledger::default();
    for (at, raw) in records {
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
    }
    Ok(ledger)
}

/// The whole ledger file at `generation` holding exactly `pending`, and its
/// chain.
pub(crate) fn encode_pending(
    key: &ChainKey,
    generation: u64,
    pending: &HashMap<Scope, u64>,
) -> (Vec<u8>, Chain) {
    let mut scopes: Vec<_> = pending.iter().collect();
    scopes.sort();
    let records: Vec<_> = scopes
        .into_iter()
        .map(|(scope, deadline_us)| {
            SealRecord {
                scope: *scope,
                op: SEAL_OP_SEAL,
                deadline_us: *deadline_us,
            }
            .encode()
        })
        .collect();
    custody::build(
        key,
        generation,
        header_fields(generation),
        records.iter().map(|r| &r[..]),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::root::RootKey;
    use crate::scope::{SubjectId, TenantId};

    #[test]
    fn the_last_record_of_a_scope_decides() {
        let key = ChainKey::new(&RootKey::random());
        let a = Scope::tenant(TenantId(1));
        let b = Scope::subject(TenantId(1), SubjectId(2));
        let records: Vec<_> = [
            (a, SEAL_OP_SEAL, 10),
            (b, SEAL_OP_SEAL, 20),
            (a, SEAL_OP_CANCEL, 0),
            (b, SEAL_OP_SEAL, 30),
        ]
        .map(|(scope, op, deadline_us)| {
            SealRecord {
                scope,
                op,
                deadline_us,
            }
            .encode()
        })
        .to_vec();
        let (bytes, _) = custody::build(&key, 1, header_fields(1), records.iter().map(|r| &r[..]));
        let ledger = decode(Path::new("s"), &bytes, &key, false).unwrap();
        assert_eq!(ledger.pending, HashMap::from([(b, 30)]));
        assert!(ledger.has_garbage);
        let (compact, chain) = encode_pending(&key, 2, &ledger.pending);
        let again = decode(Path::new("s"), &compact, &key, false).unwrap();
        assert_eq!(again.pending, ledger.pending);
        assert!(!again.has_garbage);
        assert_eq!(again.chain, Some(chain));
        // A torn append is dropped; a flipped bit is corruption.
        assert!(decode(Path::new("s"), &bytes[..bytes.len() - 5], &key, false).is_ok());
        for bit in 0..bytes.len() * 8 {
            let mut bad = bytes.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(
                decode(Path::new("s"), &bad, &key, false).is_err(),
                "bit {bit}"
            );
        }
    }
}
