//! Keys and the constructions that use them.
//!
//! Every construction is standard and comes from a well-kept crate:
//! XChaCha20-Poly1305 (HChaCha20 from `chacha20`, ChaCha20-Poly1305 from
//! `ring`; checked against the `chacha20poly1305` crate) seals records and
//! wraps keys,
//! keyed BLAKE3 (`blake3`) is the token PRF and the log's MAC, BLAKE3's
//! `derive_key` mode separates every purpose's key from its root, and
//! Argon2id (`argon2`) turns a passphrase into a master key. Nothing here is
//! a cipher, MAC or KDF of our own.

pub(crate) mod aead;
pub(crate) mod keyring;
pub(crate) mod master;
pub(crate) mod nonce;
pub(crate) mod record;
pub(crate) mod root;
pub(crate) mod scope_key;
pub(crate) mod wrap;

use std::fmt;

use zeroize::Zeroizing;

use crate::format::KEY_LEN;

/// A 32-byte secret key, wiped from memory when dropped and never printed.
#[derive(Clone)]
pub(crate) struct SecretKey(Zeroizing<[u8; KEY_LEN]>);

impl SecretKey {
    pub(crate) fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        SecretKey(Zeroizing::new(bytes))
    }

    /// A fresh key from the operating system's random source.
    pub(crate) fn random() -> Self {
        let mut key = SecretKey(Zeroizing::new([0u8; KEY_LEN]));
        fill_random(&mut key.0[..]);
        key
    }

    /// Derives the key for one purpose (BLAKE3 `derive_key`; `context` is a
    /// constant from [`crate::format`]).
    pub(crate) fn derive(&self, context: &str) -> SecretKey {
        SecretKey(Zeroizing::new(blake3::derive_key(context, &self.0[..])))
    }

    pub(crate) fn expose(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(..)")
    }
}

/// Fills `buf` from the operating system's random source.
///
/// # Panics
/// If the OS random source fails, which on Linux it does not once booted.
/// Carrying on without randomness would risk nonce reuse, so a panic is right.
pub(crate) fn fill_random(buf: &mut [u8]) {
    getrandom::fill(buf).expect("the operating system's random source failed");
}
