//! strongroom: an embedded, encrypted, write-ahead-logged key-value engine
//! for personal data kept on behalf of many tenants.
//!
//! - Every key and value is sealed (XChaCha20-Poly1305) under the key of its
//!   scope: a tenant, or one data subject inside a tenant. User keys reach
//!   the disk only inside sealed records; the store is keyed by tokens
//!   (keyed BLAKE3 of the user key).
//! - strongroom's own log (CRC-framed, MAC-chained, group commit) is the
//!   source of truth; RocksDB, with its WAL off, holds the materialised state
//!   and is brought level by replaying the log after a crash.
//! - A master key, which the engine never writes down, wraps the database's
//!   root key; the root key's derived key wraps the tenant keys; tenant keys
//!   wrap their subjects' keys. Shredding a tenant or subject destroys its
//!   keys, so nothing of it decrypts again, from any file.
//!
//! ```
//! use strongroom::{Db, Options, SubjectId, TenantId};
//!
//! # fn main() -> strongroom::Result<()> {
//! # let dir = tempfile::tempdir().unwrap();
//! let db = Db::open(dir.path(), Options::with_key([7; 32]))?;
//! let school = db.tenant(TenantId(1));
//! school.put(b"name", b"Hillside Primary")?;
//! let pupil = school.subject(SubjectId(42));
//! pupil.put(b"allergy", b"peanuts")?;
//! assert_eq!(pupil.get(b"allergy")?, Some(b"peanuts".to_vec()));
//! assert_eq!(db.tenant(TenantId(2)).get(b"name")?, None);
//! # Ok(()) }
//! ```
//!
//! Layout of the modules, bottom to top: [`format`](mod@format) (every on-disk constant),
//! `crypto` (keys, keyring, sealing), `wal` (the log), `store` (RocksDB),
//! `engine` (the database, group commit and the replay loop).

#![deny(missing_docs)]

pub mod archive;
mod clock;
mod codec;
mod crypto;
mod engine;
mod error;
pub mod forensic;
pub mod format;
#[cfg(test)]
mod format_vectors;
pub mod fs;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod options;
mod pool;
pub mod restore;
mod scope;
mod ship;
mod store;
mod wal;

pub use clock::{Clock, ManualClock, SystemClock};
pub use crypto::keyring::ScopeState;
pub use engine::batch::WriteBatch;
pub use engine::db::{ArchiveStatus, Db};
pub use engine::deadline::{CLOCK_LEAP_MAX, CLOCK_OPEN_GAP_MAX, ClockState};
pub use engine::handles::{Subject, Tenant};
pub use engine::scan::Scan;
pub use engine::scan_cache::ScanCacheStats;
pub use engine::shred::ShredOptions;
pub use engine::snapshot::Snapshot;
pub use engine::standby::{StandbyOptions, StandbyStatus};
pub use error::{CorruptionKind, Error, RestoreError, Result};
pub use options::{ArchiveOptions, Durability, MasterKeySource, Options};
pub use scope::{Scope, SubjectId, TenantId};
pub use ship::backup::BackupInfo;
pub use ship::retention::{RetentionPlan, RetentionPolicy};

/// The store's RocksDB options (default memtables), reachable from
/// benchmarks: the comparison bench runs raw RocksDB with exactly these.
/// Not a stable API.
#[doc(hidden)]
pub fn store_rocksdb_options(block_cache_bytes: usize) -> rocksdb::Options {
    store::rocksdb_options(store::StoreMemory {
        block_cache_bytes,
        ..Default::default()
    })
}

/// The AEAD, reachable from benchmarks: the comparison bench measures the
/// engine against the cost of sealing alone. Not a stable API.
#[doc(hidden)]
pub mod aead {
    use std::sync::OnceLock;

    use crate::crypto::nonce::NonceSource;
    use crate::crypto::{SecretKey, aead};

    /// Seals `plaintext` under `key` as the engine seals a record (the
    /// nonce from a source's random prefix and counter), appending
    /// `nonce | ciphertext | tag` to `out`.
    pub fn seal(key: &[u8; 32], aad: &[u8], plaintext: &[u8], out: &mut Vec<u8>) {
        static NONCES: OnceLock<NonceSource> = OnceLock::new();
        let nonce = NONCES.get_or_init(NonceSource::new).next();
        aead::seal_with_nonce(&SecretKey::from_bytes(*key), &nonce, aad, plaintext, out);
    }

    /// Opens what [`seal`] made; `None` if it does not authenticate.
    pub fn open(key: &[u8; 32], aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
        aead::open(&SecretKey::from_bytes(*key), aad, sealed).ok()
    }
}

/// A log sequence number: the position of a committed batch in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Lsn(pub u64);

#[cfg(test)]
mod send_sync {
    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn db_is_send_and_sync() {
        assert_send_sync::<crate::Db>();
        assert_send_sync::<crate::Scan<'static>>();
    }
}
