//! Keyring shards: append-only files of wrapped keys.
//!
//! ```text
//! header = magic "SRKEYSHD" | version u32 | kind u8 | tenant u64 | shard u32 | crc32 u32
//! record = id u64 | kind u8 | version u32 | wrapper_version u32 | time_us u64
//!          | wrapped [72] | crc32 u32
//! kind    = 1 key | 2 destroyed (a tombstone: version, wrapper_version and
//!           wrapped are zero; time_us is when)
//! wrapped = the key wrapped at place (kind, tenant, id, version,
//!           wrapper_version), see `wrap.rs`
//! ```
//!
//! A tenant shard (`kind = 1`, `tenant = 0`) holds tenant keys wrapped by the
//! root key's tenant-wrap key; `id` is the tenant. A subject shard (`kind = 2`)
//! holds one tenant's subject keys wrapped by that tenant's subject-wrap key
//! at `wrapper_version`; `id` is the subject. Each record's CRC covers the
//! record's bytes before it; the header's CRC covers the header before it.
//!
//! New keys are appended and synced before any log frame uses them, so a
//! record cut short at the end of a file was never used: it is a torn append
//! and is dropped. A complete record with a bad CRC is corruption.

use std::path::Path;

use crate::codec;
use crate::crypto::SecretKey;
use crate::crypto::aead::AuthFailed;
use crate::crypto::wrap::{WrapPlace, Wrapped};
use crate::error::{CorruptionKind, Error, Result};
use crate::format::{
    KEYRING_RECORD_LEN, KEYRING_SHARD_HEADER_LEN, KEYRING_SHARD_MAGIC, KEYRING_VERSION,
    RECORD_DESTROYED, RECORD_KEY, WRAPPED_KEY_LEN,
};

/// Which keys a shard holds, and where it belongs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ShardId {
    pub(crate) kind: u8,
    pub(crate) tenant: u64,
    pub(crate) shard: u32,
}

/// One wrapped key, or the tombstone of a destroyed scope.
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
    pub(crate) fn encode_header(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(KEYRING_SHARD_HEADER_LEN);
        out.extend_from_slice(&KEYRING_SHARD_MAGIC);
        out.extend_from_slice(&KEYRING_VERSION.to_le_bytes());
        out.push(self.kind);
        out.extend_from_slice(&self.tenant.to_le_bytes());
        out.extend_from_slice(&self.shard.to_le_bytes());
        out.extend_from_slice(&crc32fast::hash(&out).to_le_bytes());
        assert_eq!(out.len(), KEYRING_SHARD_HEADER_LEN);
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

    pub(crate) fn encode(&self) -> [u8; KEYRING_RECORD_LEN] {
        let mut out = [0u8; KEYRING_RECORD_LEN];
        out[..8].copy_from_slice(&self.id.to_le_bytes());
        out[8] = self.kind;
        out[9..13].copy_from_slice(&self.version.to_le_bytes());
        out[13..17].copy_from_slice(&self.wrapper_version.to_le_bytes());
        out[17..25].copy_from_slice(&self.time_us.to_le_bytes());
        out[25..25 + WRAPPED_KEY_LEN].copy_from_slice(&self.wrapped);
        let crc_at = KEYRING_RECORD_LEN - 4;
        let crc = crc32fast::hash(&out[..crc_at]);
        out[crc_at..].copy_from_slice(&crc.to_le_bytes());
        out
    }

    fn decode(bytes: &[u8; KEYRING_RECORD_LEN]) -> Option<KeyRecord> {
        let crc_at = KEYRING_RECORD_LEN - 4;
        let crc = u32::from_le_bytes(bytes[crc_at..].try_into().unwrap());
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
    /// Bytes of the file up to the end of the last whole record. Less than
    /// the file's length when a torn append left a partial record.
    pub(crate) valid_len: usize,
}

/// Decodes a shard file that must belong to `expected`.
pub(crate) fn decode(file: &Path, bytes: &[u8], expected: ShardId) -> Result<DecodedShard> {
    let bad = |offset: usize, kind| Error::corruption(file, offset as u64, kind);
    codec::check_magic_version(file, bytes, &KEYRING_SHARD_MAGIC, KEYRING_VERSION)?;
    let header = bytes
        .get(..KEYRING_SHARD_HEADER_LEN)
        .ok_or_else(|| bad(0, CorruptionKind::Truncated))?;
    codec::check_crc(file, header, KEYRING_SHARD_HEADER_LEN - 4)?;
    if header != expected.encode_header() {
        return Err(bad(
            0,
            CorruptionKind::Malformed("shard header names another shard"),
        ));
    }
    let mut records = Vec::new();
    let mut at = KEYRING_SHARD_HEADER_LEN;
    while at + KEYRING_RECORD_LEN <= bytes.len() {
        let raw: &[u8; KEYRING_RECORD_LEN] = bytes[at..at + KEYRING_RECORD_LEN].try_into().unwrap();
        let record = KeyRecord::decode(raw).ok_or_else(|| bad(at, CorruptionKind::Checksum))?;
        if record.kind != RECORD_KEY && record.kind != RECORD_DESTROYED {
            return Err(bad(
                at,
                CorruptionKind::Malformed("unknown keyring record kind"),
            ));
        }
        records.push(record);
        at += KEYRING_RECORD_LEN;
    }
    Ok(DecodedShard {
        records,
        valid_len: at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> (ShardId, SecretKey, Vec<u8>, SecretKey) {
        let id = ShardId {
            kind: 2,
            tenant: 5,
            shard: 3,
        };
        let wrapping = SecretKey::random();
        let key = SecretKey::random();
        let mut bytes = id.encode_header();
        bytes.extend_from_slice(&id.wrap_key(&wrapping, 1027, 1, 1, 99, &key).encode());
        bytes.extend_from_slice(
            &id.wrap_key(&wrapping, 3, 1, 1, 100, &SecretKey::random())
                .encode(),
        );
        (id, wrapping, bytes, key)
    }

    #[test]
    fn shard_round_trips_and_unwraps() {
        let (id, wrapping, bytes, key) = sample();
        let shard = decode(Path::new("s"), &bytes, id).unwrap();
        assert_eq!(shard.records.len(), 2);
        assert_eq!(shard.valid_len, bytes.len());
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
        let (id, _, bytes, _) = sample();
        let cut = &bytes[..bytes.len() - 7];
        let shard = decode(Path::new("s"), cut, id).unwrap();
        assert_eq!(shard.records.len(), 1);
        assert_eq!(
            shard.valid_len,
            KEYRING_SHARD_HEADER_LEN + KEYRING_RECORD_LEN
        );
    }

    #[test]
    fn every_bit_flip_is_an_error_or_fails_unwrapping() {
        let (id, _, bytes, _) = sample();
        for bit in 0..bytes.len() * 8 {
            let mut bad = bytes.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            match decode(Path::new("s"), &bad, id) {
                Err(_) => {}
                Ok(shard) => panic!("bit {bit} undetected: {} records", shard.records.len()),
            }
        }
    }
}
