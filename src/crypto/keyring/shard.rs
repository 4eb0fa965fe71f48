//! Keyring shards: append-only files of wrapped keys, each a MAC chain
//! (`custody.rs`).
//!
//! ```text
//! header = magic "SRKEYSHD" | version u32 | kind u8 | tenant u64 | shard u32
//!          | generation u64 | crc32 u32 | mac [32]
//! record = id u64 | kind u8 | version u32 | wrapper_version u32 | time_us u64
//!          | wrapped [72] | crc32 u32 | mac [32]
//! kind    = 1 key | 2 destroyed (a tombstone: version, wrapper_version and
//!           wrapped are zero; time_us is when) | 3 anchor (tenant shards
//!           only: of subject shard `version` of tenant `id`, at generation
//!           `time_us`; wrapped = count u64 | head [32] | zeros [32])
//! wrapped = the key wrapped at place (kind, tenant, id, version,
//!           wrapper_version), see `wrap.rs`
//! ```
//!
//! A tenant shard (`kind = 1`, `tenant = 0`) holds tenant keys wrapped by the
//! root key's tenant-wrap key; `id` is the tenant. A subject shard (`kind = 2`)
//! holds one tenant's subject keys wrapped by that tenant's subject-wrap key
//! at `wrapper_version`; `id` is the subject. Each unit's CRC covers its bytes
//! before it; its MAC chains it to the unit before.
//!
//! New keys are appended and synced before any log frame uses them, so a
//! record cut short at the end of a file was never used: it is a torn append
//! and is dropped. A complete record with a bad CRC or MAC is corruption.
//! Format 1 (no generation, no MACs) is read only to upgrade it.

use std::path::Path;

use super::custody::{self, Anchor, Chain, ChainKey};
use crate::codec;
use crate::crypto::SecretKey;
use crate::crypto::aead::AuthFailed;
use crate::crypto::wrap::{WrapPlace, Wrapped};
use crate::error::{CorruptionKind, Error, Result};
use crate::format::{
    KEYRING_RECORD_LEN, KEYRING_RECORD_LEN_V1, KEYRING_SHARD_HEADER_LEN,
    KEYRING_SHARD_HEADER_LEN_V1, KEYRING_SHARD_MAGIC, KEYRING_VERSION, KEYRING_VERSION_V1, MAC_LEN,
    RECORD_ANCHOR, RECORD_DESTROYED, RECORD_KEY, SHARD_KIND_TENANTS, WRAPPED_KEY_LEN,
};

/// Which keys a shard holds, and where it belongs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct ShardId {
    pub(crate) kind: u8,
    pub(crate) tenant: u64,
    pub(crate) shard: u32,
}

/// One wrapped key, the tombstone of a destroyed scope, or an anchor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KeyRecord {
    pub(crate) id: u64,
    pub(crate) kind: u8,
    pub(crate) version: u32,
    pub(crate) wrapper_version: u32,
    pub(crate) time_us: u64,
    pub(crate) wrapped: Wrapped,
}

impl ShardId {
    /// The header up to its CRC, in `version`'s layout (format 1 has no
    /// generation).
    pub(crate) fn header_fields(&self, version: u32, generation: u64) -> Vec<u8> {
        let mut out = Vec::with_capacity(KEYRING_SHARD_HEADER_LEN);
        out.extend_from_slice(&KEYRING_SHARD_MAGIC);
        out.extend_from_slice(&version.to_le_bytes());
        out.push(self.kind);
        out.extend_from_slice(&self.tenant.to_le_bytes());
        out.extend_from_slice(&self.shard.to_le_bytes());
        if version != KEYRING_VERSION_V1 {
            out.extend_from_slice(&generation.to_le_bytes());
        }
        out
    }

    fn place(&self, id: u64, version: u32, wrapper_version: u32) -> WrapPlace {
        WrapPlace {
            kind: self.kind,
            tenant: self.tenant,
            id,
            version,
            wrapper_version,
        }
    }

    /// Wraps `key` for this shard.
    pub(crate) fn wrap_key(
        &self,
        wrapping: &SecretKey,
        id: u64,
        version: u32,
        wrapper_version: u32,
        time_us: u64,
        key: &SecretKey,
    ) -> KeyRecord {
        KeyRecord {
            id,
            kind: RECORD_KEY,
            version,
            wrapper_version,
            time_us,
            wrapped: self.place(id, version, wrapper_version).wrap(wrapping, key),
        }
    }

    /// Unwraps a record of this shard.
    pub(crate) fn unwrap_key(
        &self,
        wrapping: &SecretKey,
        record: &KeyRecord,
    ) -> Result<SecretKey, AuthFailed> {
        self.place(record.id, record.version, record.wrapper_version)
            .unwrap(wrapping, &record.wrapped)
    }
}

impl KeyRecord {
    /// The tombstone of scope `id`, destroyed at `time_us`.
    pub(crate) fn tombstone(id: u64, time_us: u64) -> KeyRecord {
        KeyRecord {
            id,
            kind: RECORD_DESTROYED,
            version: 0,
            wrapper_version: 0,
            time_us,
            wrapped: [0; WRAPPED_KEY_LEN],
        }
    }

    /// The anchor record of subject shard `shard` of `tenant`.
    pub(crate) fn anchor(tenant: u64, shard: u32, anchor: &Anchor) -> KeyRecord {
        let mut wrapped = [0; WRAPPED_KEY_LEN];
        wrapped[..8].copy_from_slice(&anchor.count.to_le_bytes());
        wrapped[8..8 + MAC_LEN].copy_from_slice(&anchor.head);
        KeyRecord {
            id: tenant,
            kind: RECORD_ANCHOR,
            version: shard,
            wrapper_version: 0,
            time_us: anchor.generation,
            wrapped,
        }
    }

    /// For an anchor record: the subject shard it anchors, and where.
    pub(crate) fn as_anchor(&self) -> Option<(u32, Anchor)> {
        (self.kind == RECORD_ANCHOR).then(|| {
            let mut bytes = self.time_us.to_le_bytes().to_vec();
            bytes.extend_from_slice(&self.wrapped[..8 + MAC_LEN]);
            (self.version, Anchor::decode(&bytes))
        })
    }

    /// The record's bytes, ending in its CRC (the format-1 record; format 2
    /// adds the MAC).
    pub(crate) fn encode(&self) -> [u8; KEYRING_RECORD_LEN_V1] {
        let mut out = [0u8; KEYRING_RECORD_LEN_V1];
        out[..8].copy_from_slice(&self.id.to_le_bytes());
        out[8] = self.kind;
        out[9..13].copy_from_slice(&self.version.to_le_bytes());
        out[13..17].copy_from_slice(&self.wrapper_version.to_le_bytes());
        out[17..25].copy_from_slice(&self.time_us.to_le_bytes());
        out[25..25 + WRAPPED_KEY_LEN].copy_from_slice(&self.wrapped);
        let crc_at = KEYRING_RECORD_LEN_V1 - 4;
        let crc = crc32fast::hash(&out[..crc_at]);
        out[crc_at..].copy_from_slice(&crc.to_le_bytes());
        out
    }

    /// A record from its bytes (ending in its CRC); `None` if the CRC fails.
    pub(crate) fn decode(bytes: &[u8]) -> Option<KeyRecord> {
        let crc_at = KEYRING_RECORD_LEN_V1 - 4;
        let crc = u32::from_le_bytes(bytes.get(crc_at..crc_at + 4)?.try_into().ok()?);
        if crc != crc32fast::hash(&bytes[..crc_at]) {
            return None;
        }
        Some(KeyRecord {
            id: u64::from_le_bytes(bytes[..8].try_into().unwrap()),
            kind: bytes[8],
            version: u32::from_le_bytes(bytes[9..13].try_into().unwrap()),
            wrapper_version: u32::from_le_bytes(bytes[13..17].try_into().unwrap()),
            time_us: u64::from_le_bytes(bytes[17..25].try_into().unwrap()),
            wrapped: bytes[25..25 + WRAPPED_KEY_LEN].try_into().unwrap(),
        })
    }
}

/// A decoded shard file.
#[derive(Debug)]
pub(crate) struct DecodedShard {
    pub(crate) records: Vec<KeyRecord>,
    /// Its MAC chain (`None` in format 1).
    pub(crate) chain: Option<Chain>,
    /// Bytes of the file up to the end of the last whole record. Less than
    /// the file's length when a torn append left a partial record.
    pub(crate) valid_len: usize,
}

/// The whole file of shard `id` at `generation` holding `records`, and its
/// chain.
pub(crate) fn encode(
    key: &ChainKey,
    id: ShardId,
    generation: u64,
    records: &[KeyRecord],
) -> (Vec<u8>, Chain) {
    let encoded: Vec<_> = records.iter().map(KeyRecord::encode).collect();
    custody::build(
        key,
        generation,
        id.header_fields(KEYRING_VERSION, generation),
        encoded.iter().map(|r| &r[..]),
    )
}

/// Decodes a shard file that must belong to `expected`: format 2, or, with
/// `upgrading`, format 1 too.
pub(crate) fn decode(
    file: &Path,
    bytes: &[u8],
    expected: ShardId,
    key: &ChainKey,
    upgrading: bool,
) -> Result<DecodedShard> {
    let version = codec::read_version(file, bytes, &KEYRING_SHARD_MAGIC)?;
    if version == KEYRING_VERSION_V1 && upgrading {
        return decode_v1(file, bytes, expected);
    }
    codec::check_magic_version(file, bytes, &KEYRING_SHARD_MAGIC, KEYRING_VERSION)?;
    let read = custody::read(
        file,
        bytes,
        KEYRING_SHARD_HEADER_LEN,
        KEYRING_RECORD_LEN,
        key,
    )?;
    if read.header != expected.header_fields(KEYRING_VERSION, read.chain.generation) {
        return Err(Error::corruption(
            file,
            0,
            CorruptionKind::Malformed("shard header names another shard"),
        ));
    }
    let mut records = Vec::with_capacity(read.records.len());
    let mut at = KEYRING_SHARD_HEADER_LEN;
    for raw in read.records {
        records.push(checked(file, at, raw, expected)?);
        at += KEYRING_RECORD_LEN;
    }
    Ok(DecodedShard {
        records,
        chain: Some(read.chain),
        valid_len: read.valid_len,
    })
}

/// A record's fields, checked for its shard's kind.
fn checked(file: &Path, at: usize, raw: &[u8], shard: ShardId) -> Result<KeyRecord> {
    let bad = |kind| Error::corruption(file, at as u64, kind);
    let record = KeyRecord::decode(raw).ok_or_else(|| bad(CorruptionKind::Checksum))?;
    let allowed = match record.kind {
        RECORD_KEY | RECORD_DESTROYED => true,
        RECORD_ANCHOR => shard.kind == SHARD_KIND_TENANTS,
        _ => false,
    };
    if !allowed {
        return Err(bad(CorruptionKind::Malformed(
            "unknown keyring record kind",
        )));
    }
    Ok(record)
}

fn decode_v1(file: &Path, bytes: &[u8], expected: ShardId) -> Result<DecodedShard> {
    let bad = |offset: usize, kind| Error::corruption(file, offset as u64, kind);
    let header = bytes
        .get(..KEYRING_SHARD_HEADER_LEN_V1)
        .ok_or_else(|| bad(0, CorruptionKind::Truncated))?;
    codec::check_crc(file, header, KEYRING_SHARD_HEADER_LEN_V1 - 4)?;
    if header[..KEYRING_SHARD_HEADER_LEN_V1 - 4] != expected.header_fields(KEYRING_VERSION_V1, 0) {
        return Err(bad(
            0,
            CorruptionKind::Malformed("shard header names another shard"),
        ));
    }
    let mut records = Vec::new();
    let mut at = KEYRING_SHARD_HEADER_LEN_V1;
    while at + KEYRING_RECORD_LEN_V1 <= bytes.len() {
        let record = checked(file, at, &bytes[at..at + KEYRING_RECORD_LEN_V1], expected)?;
        if record.kind == RECORD_ANCHOR {
            return Err(bad(
                at,
                CorruptionKind::Malformed("anchor in a format-1 shard"),
            ));
        }
        records.push(record);
        at += KEYRING_RECORD_LEN_V1;
    }
    Ok(DecodedShard {
        records,
        chain: None,
        valid_len: at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::root::RootKey;

    fn sample() -> (ShardId, SecretKey, ChainKey, Vec<u8>, SecretKey) {
        let id = ShardId {
            kind: 2,
            tenant: 5,
            shard: 3,
        };
        let wrapping = SecretKey::random();
        let key = SecretKey::random();
        let chain_key = ChainKey::new(&RootKey::random());
        let records = [
            id.wrap_key(&wrapping, 1027, 1, 1, 99, &key),
            id.wrap_key(&wrapping, 3, 1, 1, 100, &SecretKey::random()),
        ];
        let (bytes, _) = encode(&chain_key, id, 7, &records);
        (id, wrapping, chain_key, bytes, key)
    }

    #[test]
    fn shard_round_trips_and_unwraps() {
        let (id, wrapping, chain_key, bytes, key) = sample();
        let shard = decode(Path::new("s"), &bytes, id, &chain_key, false).unwrap();
        assert_eq!(shard.records.len(), 2);
        assert_eq!(shard.valid_len, bytes.len());
        assert_eq!(shard.chain.unwrap().anchor().generation, 7);
        let unwrapped = id.unwrap_key(&wrapping, &shard.records[0]).unwrap();
        assert_eq!(unwrapped.expose(), key.expose());
        assert!(
            id.unwrap_key(&SecretKey::random(), &shard.records[0])
                .is_err()
        );
        let mut moved = shard.records[0].clone();
        moved.id = 4;
        assert!(
            id.unwrap_key(&wrapping, &moved).is_err(),
            "AAD binds the id"
        );
    }

    #[test]
    fn a_partial_last_record_is_a_torn_append() {
        let (id, _, chain_key, bytes, _) = sample();
        let cut = &bytes[..bytes.len() - 7];
        let shard = decode(Path::new("s"), cut, id, &chain_key, false).unwrap();
        assert_eq!(shard.records.len(), 1);
        assert_eq!(
            shard.valid_len,
            KEYRING_SHARD_HEADER_LEN + KEYRING_RECORD_LEN
        );
    }

    #[test]
    fn every_bit_flip_is_an_error() {
        let (id, _, chain_key, bytes, _) = sample();
        for bit in 0..bytes.len() * 8 {
            let mut bad = bytes.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            match decode(Path::new("s"), &bad, id, &chain_key, false) {
                Err(_) => {}
                Ok(shard) => panic!("bit {bit} undetected: {} records", shard.records.len()),
            }
        }
    }

    #[test]
    fn an_anchor_record_round_trips_and_belongs_in_tenant_shards_only() {
        let chain_key = ChainKey::new(&RootKey::random());
        let anchor = Anchor {
            generation: 3,
            count: 12,
            head: [8; MAC_LEN],
        };
        let record = KeyRecord::anchor(77, 1023, &anchor);
        assert_eq!(record.as_anchor(), Some((1023, anchor)));
        let tenants = ShardId {
            kind: SHARD_KIND_TENANTS,
            tenant: 0,
            shard: 77,
        };
        let (bytes, _) = encode(&chain_key, tenants, 1, std::slice::from_ref(&record));
        let shard = decode(Path::new("t"), &bytes, tenants, &chain_key, false).unwrap();
        assert_eq!(shard.records, vec![record.clone()]);
        let subjects = ShardId {
            kind: 2,
            tenant: 77,
            shard: 0,
        };
        let (bytes, _) = encode(&chain_key, subjects, 1, &[record]);
        assert!(decode(Path::new("s"), &bytes, subjects, &chain_key, false).is_err());
    }
}
