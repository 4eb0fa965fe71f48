//! The keyring manifest: how the master key is obtained, the value that
//! recognises it, and the database's log id.
//!
//! ```text
//! magic "SRKEYMAN" | version u32 | kdf u8 | m_cost_kib u32 | t_cost u32
//! | p_cost u32 | salt [16] | check [32] | log_id [16] | crc32 u32
//! ```
//! The CRC covers every byte before it. For `kdf = 0` the Argon2id fields are
//! zero.

use std::path::Path;

use crate::codec;
use crate::crypto::master::Kdf;
use crate::error::{CorruptionKind, Error, Result};
use crate::format::{
    KDF_ARGON2ID, KDF_NONE, KEY_LEN, KEYRING_MANIFEST_LEN, KEYRING_MANIFEST_MAGIC, KEYRING_VERSION,
    LOG_ID_LEN, SALT_LEN,
};

/// The decoded manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Manifest {
    pub(crate) kdf: Kdf,
    pub(crate) check: [u8; KEY_LEN],
    pub(crate) log_id: [u8; LOG_ID_LEN],
}

impl Manifest {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(KEYRING_MANIFEST_LEN);
        out.extend_from_slice(&KEYRING_MANIFEST_MAGIC);
        out.extend_from_slice(&KEYRING_VERSION.to_le_bytes());
        let (kind, m, t, p, salt) = match self.kdf {
            Kdf::None => (KDF_NONE, 0, 0, 0, [0u8; SALT_LEN]),
            Kdf::Argon2id {
                m_cost_kib,
                t_cost,
                p_cost,
                salt,
            } => (KDF_ARGON2ID, m_cost_kib, t_cost, p_cost, salt),
        };
        out.push(kind);
        for v in [m, t, p] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&salt);
        out.extend_from_slice(&self.check);
        out.extend_from_slice(&self.log_id);
        out.extend_from_slice(&crc32fast::hash(&out).to_le_bytes());
        assert_eq!(out.len(), KEYRING_MANIFEST_LEN);
        out
    }

    pub(crate) fn decode(file: &Path, bytes: &[u8]) -> Result<Manifest> {
        let bad = |offset: usize, kind| Error::corruption(file, offset as u64, kind);
        codec::check_magic_version(file, bytes, &KEYRING_MANIFEST_MAGIC, KEYRING_VERSION)?;
        if bytes.len() != KEYRING_MANIFEST_LEN {
            return Err(bad(0, CorruptionKind::Length(bytes.len() as u64)));
        }
        let crc_at = KEYRING_MANIFEST_LEN - 4;
        codec::check_crc(file, bytes, crc_at)?;
        let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
        let salt: [u8; SALT_LEN] = bytes[25..25 + SALT_LEN].try_into().unwrap();
        let kdf = match bytes[12] {
            KDF_NONE => Kdf::None,
            KDF_ARGON2ID => Kdf::Argon2id {
                m_cost_kib: u32_at(13),
                t_cost: u32_at(17),
                p_cost: u32_at(21),
                salt,
            },
            _ => return Err(bad(12, CorruptionKind::Malformed("unknown KDF"))),
        };
        let check_at = 25 + SALT_LEN;
        Ok(Manifest {
            kdf,
            check: bytes[check_at..check_at + KEY_LEN].try_into().unwrap(),
            log_id: bytes[check_at + KEY_LEN..crc_at].try_into().unwrap(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_round_trips_and_every_bit_flip_is_an_error() {
        let m = Manifest {
            kdf: Kdf::Argon2id {
                m_cost_kib: 19456,
                t_cost: 2,
                p_cost: 1,
                salt: [9; SALT_LEN],
            },
            check: [3; KEY_LEN],
            log_id: [4; LOG_ID_LEN],
        };
        let bytes = m.encode();
        assert_eq!(Manifest::decode(Path::new("m"), &bytes).unwrap(), m);
        for bit in 0..bytes.len() * 8 {
            let mut bad = bytes.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(Manifest::decode(Path::new("m"), &bad).is_err(), "bit {bit}");
        }
        for len in 0..bytes.len() {
            assert!(Manifest::decode(Path::new("m"), &bytes[..len]).is_err());
        }
    }
}
