//! The database root key: random, created with the database, kept only
//! wrapped by the master key (in the keyring manifest).
//!
//! Every other key hangs from it rather than from the master key, so that
//! rotating the master key rewraps this one key and touches nothing else:
//! neither the log's MACs nor the tenant keys.

use super::SecretKey;
use crate::format::{
    KDF_ROOT_ARCHIVE_KEYRING_NAME, KDF_ROOT_ARCHIVE_NAME, KDF_ROOT_ARCHIVE_SEAL,
    KDF_ROOT_FRAME_MAC, KDF_ROOT_TENANT_WRAP, KEY_LEN, LOG_ID_LEN,
};

/// The root key of one database.
#[derive(Debug)]
pub(crate) struct RootKey(SecretKey);

impl RootKey {
    pub(crate) fn random() -> RootKey {
        RootKey(SecretKey::random())
    }

    pub(crate) fn from_secret(secret: SecretKey) -> RootKey {
        RootKey(secret)
    }

    pub(crate) fn secret(&self) -> &SecretKey {
        &self.0
    }

    /// Key of the MAC chain of the log `log_id`: bound to the log, so that
    /// segments of another database do not verify.
    pub(crate) fn frame_mac_key(&self, log_id: &[u8; LOG_ID_LEN]) -> SecretKey {
        let mut material = zeroize::Zeroizing::new([0u8; KEY_LEN + LOG_ID_LEN]);
        material[..KEY_LEN].copy_from_slice(self.0.expose());
        material[KEY_LEN..].copy_from_slice(log_id);
        SecretKey::from_bytes(blake3::derive_key(KDF_ROOT_FRAME_MAC, &material[..]))
    }

    /// Key that seals every archive object (`archive/object.rs`).
    pub(crate) fn archive_key(&self) -> SecretKey {
        self.0.derive(KDF_ROOT_ARCHIVE_SEAL)
    }

    /// Key of the keyed hash that names SST objects in the archive (so a
    /// name says nothing about the bytes to anyone without the root key).
    pub(crate) fn archive_name_key(&self) -> SecretKey {
        self.0.derive(KDF_ROOT_ARCHIVE_NAME)
    }

    /// Key of the keyed hash that names the keyring's folders in an archive.
    pub(crate) fn archive_keyring_name_key(&self) -> SecretKey {
        self.0.derive(KDF_ROOT_ARCHIVE_KEYRING_NAME)
    }

    /// Key that wraps tenant keys in the keyring.
    pub(crate) fn tenant_wrap_key(&self) -> SecretKey {
        self.0.derive(KDF_ROOT_TENANT_WRAP)
    }
}
