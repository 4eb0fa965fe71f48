//! The master key: where it comes from, and the keys derived from it.
//!
//! The engine never writes the master key down. Its one use is to wrap the
//! database root key (see `root.rs`) in the keyring manifest; a key that does
//! not unwrap it is the wrong key, found at open before anything is touched.

use std::path::Path;

use argon2::{Algorithm, Argon2, Params, Version};
use zeroize::Zeroizing;

use super::SecretKey;
use crate::error::{Error, Result};
use crate::format::{
    ARGON2_M_COST_KIB, ARGON2_P_COST, ARGON2_T_COST, KDF_MASTER_ROOT_WRAP, KEY_LEN, SALT_LEN,
};
use crate::options::MasterKeySource;

/// How the master key was obtained; recorded in the keyring manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kdf {
    /// The key was supplied as 32 bytes (directly, by file or by variable).
    None,
    /// The key is Argon2id of a passphrase with these parameters.
    Argon2id {
        m_cost_kib: u32,
        t_cost: u32,
        p_cost: u32,
        salt: [u8; SALT_LEN],
    },
}

impl Kdf {
    /// The KDF a new database uses for `source`: a fresh salt and OWASP's
    /// parameters for a passphrase.
    pub(crate) fn for_new_database(source: &MasterKeySource) -> Kdf {
        match source {
            MasterKeySource::Passphrase(_) => {
                let mut salt = [0u8; SALT_LEN];
                super::fill_random(&mut salt);
                Kdf::Argon2id {
                    m_cost_kib: ARGON2_M_COST_KIB,
                    t_cost: ARGON2_T_COST,
                    p_cost: ARGON2_P_COST,
                    salt,
                }
            }
            _ => Kdf::None,
        }
    }
}

/// The master key and the keys derived from it.
pub(crate) struct MasterKey {
    root: SecretKey,
}

impl MasterKey {
    /// Obtains the master key from `source`, as `kdf` (from the manifest) says.
    ///
    /// A passphrase given to a database created with raw key bytes, or the
    /// other way round, cannot be the right key: [`Error::WrongMasterKey`].
    pub(crate) fn resolve(source: &MasterKeySource, kdf: &Kdf) -> Result<MasterKey> {
        let root = match (source, kdf) {
            (MasterKeySource::Passphrase(passphrase), Kdf::Argon2id { .. }) => {
                argon2id(passphrase.as_bytes(), kdf)?
            }
            (MasterKeySource::Passphrase(_), Kdf::None) => return Err(Error::WrongMasterKey),
            (_, Kdf::Argon2id { .. }) => return Err(Error::WrongMasterKey),
            (MasterKeySource::Bytes(bytes), Kdf::None) => SecretKey::from_bytes(**bytes),
            (MasterKeySource::KeyFile(path), Kdf::None) => read_key_file(path)?,
            (MasterKeySource::EnvVar(name), Kdf::None) => {
                let value = Zeroizing::new(std::env::var(name).map_err(|_| {
                    Error::MasterKeySource(format!("environment variable {name} is not set"))
                })?);
                parse_hex_key(value.trim())
                    .ok_or_else(|| Error::MasterKeySource(format!("{name} is not 64 hex digits")))?
            }
        };
        Ok(MasterKey { root })
    }

    /// Key that wraps the database root key.
    pub(crate) fn root_wrap_key(&self) -> SecretKey {
        self.root.derive(KDF_MASTER_ROOT_WRAP)
    }
}

fn argon2id(passphrase: &[u8], kdf: &Kdf) -> Result<SecretKey> {
    let Kdf::Argon2id {
        m_cost_kib,
        t_cost,
        p_cost,
        salt,
    } = kdf
    else {
        unreachable!("called for Argon2id only");
    };
    let params = Params::new(*m_cost_kib, *t_cost, *p_cost, Some(KEY_LEN))
        .map_err(|e| Error::MasterKeySource(format!("Argon2id parameters: {e}")))?;
    let mut out = Zeroizing::new([0u8; KEY_LEN]);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into(passphrase, salt, &mut out[..])
        .map_err(|e| Error::MasterKeySource(format!("Argon2id: {e}")))?;
    Ok(SecretKey::from_bytes(*out))
}

/// A key file holds the 32 key bytes, raw or as 64 hex digits.
fn read_key_file(path: &Path) -> Result<SecretKey> {
    let bytes = Zeroizing::new(std::fs::read(path).map_err(|e| {
        Error::MasterKeySource(format!("cannot read key file {}: {e}", path.display()))
    })?);
    if let Ok(raw) = <[u8; KEY_LEN]>::try_from(&bytes[..]) {
        return Ok(SecretKey::from_bytes(raw));
    }
    std::str::from_utf8(&bytes)
        .ok()
        .and_then(|text| parse_hex_key(text.trim()))
        .ok_or_else(|| {
            Error::MasterKeySource(format!(
                "key file {} holds neither 32 bytes nor 64 hex digits",
                path.display()
            ))
        })
}

fn parse_hex_key(text: &str) -> Option<SecretKey> {
    if text.len() != 2 * KEY_LEN || !text.is_ascii() {
        return None;
    }
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    for (i, byte) in key.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(SecretKey::from_bytes(*key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_keys_parse_and_bad_ones_do_not() {
        let hex = "00".repeat(31) + "ff";
        assert_eq!(parse_hex_key(&hex).unwrap().expose()[31], 0xff);
        assert!(parse_hex_key("zz").is_none());
        assert!(parse_hex_key(&"g0".repeat(32)).is_none());
    }

    fn wrap_key_of(source: &MasterKeySource, kdf: &Kdf) -> [u8; KEY_LEN] {
        *MasterKey::resolve(source, kdf)
            .unwrap()
            .root_wrap_key()
            .expose()
    }

    #[test]
    fn different_keys_wrap_differently() {
        let a = MasterKeySource::Bytes(Zeroizing::new([1; 32]));
        let b = MasterKeySource::Bytes(Zeroizing::new([2; 32]));
        assert_eq!(wrap_key_of(&a, &Kdf::None), wrap_key_of(&a, &Kdf::None));
        assert_ne!(wrap_key_of(&a, &Kdf::None), wrap_key_of(&b, &Kdf::None));
    }

    #[test]
    fn passphrase_and_raw_key_do_not_mix() {
        let source = MasterKeySource::Passphrase(Zeroizing::new("correct horse".into()));
        let kdf = Kdf::for_new_database(&source);
        assert_eq!(wrap_key_of(&source, &kdf), wrap_key_of(&source, &kdf));
        let other_salt = Kdf::for_new_database(&source);
        assert_ne!(
            wrap_key_of(&source, &kdf),
            wrap_key_of(&source, &other_salt)
        );
        assert!(matches!(
            MasterKey::resolve(&source, &Kdf::None),
            Err(Error::WrongMasterKey)
        ));
    }
}
