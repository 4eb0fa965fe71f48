//! Key wrapping: a 32-byte key sealed under a wrapping key, bound to where it
//! belongs.
//!
//! ```text
//! wrapped = XChaCha20-Poly1305(wrapping key, random nonce, key [32])
//!           as nonce [24] | ciphertext [32] | tag [16]
//! aad     = "strongroom.wrp.1" | kind u8 | tenant u64 | id u64 | version u32
//!           | wrapper_version u32
//! ```
//! `kind` says what the key is (the database root key, a tenant key, a
//! subject key), so a wrapped key moved to another place, owner or version
//! does not unwrap.

use zeroize::Zeroizing;

use super::SecretKey;
use super::aead::{self, AuthFailed};
use crate::format::{KEY_LEN, WRAP_AAD_DOMAIN, WRAPPED_KEY_LEN};

/// A wrapped key.
pub(crate) type Wrapped = [u8; WRAPPED_KEY_LEN];

/// Where a wrapped key belongs: its associated data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WrapPlace {
    pub(crate) kind: u8,
    pub(crate) tenant: u64,
    pub(crate) id: u64,
    pub(crate) version: u32,
    pub(crate) wrapper_version: u32,
}

impl WrapPlace {
    pub(crate) fn aad(&self) -> [u8; 41] {
        let mut aad = [0u8; 41];
        aad[..16].copy_from_slice(WRAP_AAD_DOMAIN);
        aad[16] = self.kind;
        aad[17..25].copy_from_slice(&self.tenant.to_le_bytes());
        aad[25..33].copy_from_slice(&self.id.to_le_bytes());
        aad[33..37].copy_from_slice(&self.version.to_le_bytes());
        aad[37..41].copy_from_slice(&self.wrapper_version.to_le_bytes());
        aad
    }

    /// Wraps `key` for this place.
    pub(crate) fn wrap(&self, wrapping: &SecretKey, key: &SecretKey) -> Wrapped {
        let mut sealed = Vec::with_capacity(WRAPPED_KEY_LEN);
        aead::seal_random(wrapping, &self.aad(), key.expose(), &mut sealed);
        sealed.try_into().expect("a wrapped key has a fixed length")
    }

    /// Unwraps a key wrapped for this place.
    pub(crate) fn unwrap(
        &self,
        wrapping: &SecretKey,
        wrapped: &Wrapped,
    ) -> Result<SecretKey, AuthFailed> {
        let plain = Zeroizing::new(aead::open(wrapping, &self.aad(), wrapped)?);
        let bytes: [u8; KEY_LEN] = plain[..].try_into().map_err(|_| AuthFailed)?;
        Ok(SecretKey::from_bytes(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wrapped_key_unwraps_only_in_its_place_and_under_its_key() {
        let place = WrapPlace {
            kind: 2,
            tenant: 5,
            id: 9,
            version: 1,
            wrapper_version: 3,
        };
        let (wrapping, key) = (SecretKey::random(), SecretKey::random());
        let wrapped = place.wrap(&wrapping, &key);
        assert_eq!(
            place.unwrap(&wrapping, &wrapped).unwrap().expose(),
            key.expose()
        );
        assert!(place.unwrap(&SecretKey::random(), &wrapped).is_err());
        for moved in [
            WrapPlace { kind: 1, ..place },
            WrapPlace { tenant: 6, ..place },
            WrapPlace { id: 8, ..place },
            WrapPlace {
                version: 2,
                ..place
            },
            WrapPlace {
                wrapper_version: 4,
                ..place
            },
        ] {
            assert!(moved.unwrap(&wrapping, &wrapped).is_err(), "{moved:?}");
        }
    }
}
