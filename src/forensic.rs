//! What the keys in hand can still decrypt: every sealed record in a closed
//! database's log and store, opened with whatever key the keyring still
//! holds for it, whatever its scope's state.
//!
//! This is the check behind crypto-shredding: after a scope is destroyed,
//! nothing of it decrypts, from any file, with the master key and every
//! remaining key. Operators can run it to prove a shred; tests run it to
//! prove the engine.

use std::path::Path;
use std::sync::Arc;

use crate::clock::SystemClock;
use crate::crypto::keyring::Keyring;
use crate::crypto::master::MasterKey;
use crate::crypto::record;
use crate::crypto::scope_key::Token;
use crate::engine::db::lock_data_dir;
use crate::error::{Error, Result};
use crate::format::{KEYRING_DIR, STORE_DIR, STORE_NS_DATA, WAL_DIR};
use crate::fs::Files;
use crate::options::Options;
use crate::scope::Scope;
use crate::store::key_codec;
use crate::wal::entry::Op;
use crate::wal::read_log;

/// Where a decrypted record was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    /// In a log frame, with this LSN.
    Log(u64),
    /// In the store.
    Store,
}

/// One record that the keys in hand decrypt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decrypted {
    /// Its scope.
    pub scope: Scope,
    /// The user key.
    pub key: Vec<u8>,
    /// The value.
    pub value: Vec<u8>,
    /// Where it was found.
    pub found: Found,
}

/// Decrypts every record of the closed database at `path` that its keyring
/// still has a key for, from the log and from the store. Records whose key
/// is destroyed are skipped, silently: that is the point.
pub fn decrypt_everything(path: &Path, options: &Options) -> Result<Vec<Decrypted>> {
    let files = Files::new(Arc::clone(&options.file_system));
    // The database's own lock: opening the keyring may repair it (drop a
    // torn append, compact the seals ledger), which must never race an open
    // database's appends. An open database makes this `InUse`.
    let _lock = lock_data_dir(&files, path, false)?;
    let keyring_dir = path.join(KEYRING_DIR);
    let manifest = Keyring::read_manifest(&files, &keyring_dir)?
        .ok_or_else(|| Error::NotFound(path.into()))?;
    let master = MasterKey::resolve(&options.master_key, &manifest.kdf)?;
    let root = manifest.open_root(&master)?;
    let log_id = manifest.log_id;
    let mac_key = root.frame_mac_key(&log_id);
    let keyring = Keyring::open(&files, &keyring_dir, manifest, root, Arc::new(SystemClock))?;
    let mut out = Vec::new();
    read_log(&files, &path.join(WAL_DIR), &mac_key, &log_id, |frame| {
        for entry in &frame.entries {
            if let Op::Put(sealed) = entry.op {
                let found = Found::Log(frame.header.lsn);
                out.extend(try_open(
                    &keyring,
                    entry.scope,
                    &entry.token,
                    sealed,
                    found,
                )?);
            }
        }
        Ok(())
    })?;
    let store =
        rocksdb::DB::open_for_read_only(&rocksdb::Options::default(), path.join(STORE_DIR), false)
            .map_err(|e| Error::Store(e.into_string()))?;
    for item in store.prefix_iterator([STORE_NS_DATA]) {
        let (key, sealed) = item.map_err(|e| Error::Store(e.into_string()))?;
        if let Some((scope, token)) = key_codec::decode_data_key(&key) {
            out.extend(try_open(&keyring, scope, &token, &sealed, Found::Store)?);
        }
    }
    Ok(out)
}

fn try_open(
    keyring: &Keyring,
    scope: Scope,
    token: &Token,
    sealed: &[u8],
    found: Found,
) -> Result<Option<Decrypted>> {
    let Some(version) = record::key_version(sealed) else {
        return Ok(None);
    };
    let Some(key) = keyring.lookup(scope, Some(version))? else {
        return Ok(None);
    };
    // The keys in hand, whatever the scope's state (sealed keys open).
    let Ok(key) = key.lease_ungated() else {
        return Ok(None);
    };
    Ok(record::open(&key, token, sealed)
        .ok()
        .map(|(key, value)| Decrypted {
            scope,
            key,
            value,
            found,
        }))
}
