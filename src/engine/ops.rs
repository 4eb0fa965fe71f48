//! The operations every scope handle offers, written once.

use std::sync::Arc;

use super::batch::OpRef;
use super::db::Inner;
use crate::Lsn;
use crate::crypto::record::{self, OpenError};
use crate::crypto::scope_key::{Lease, ScopeKey, ScopeKeys, Token};
use crate::error::{CorruptionKind, Error, Result};
use crate::format::{FRAME_PAYLOAD_MAX, PUT_ENTRY_OVERHEAD, USER_KEY_MAX, USER_VALUE_MAX};
use crate::scope::Scope;
use crate::store::{StoreSnapshot, key_codec};
use crate::wal::EncodedBatch;
use crate::wal::entry::{self, Entry, Op};

impl Inner {
    /// Seals and commits a batch whose ops target `scope` (for `None`) or a
    /// subject of `scope`'s tenant.
    ///
    /// If the commit leader refuses the batch (a key version retired, or a
    /// scope destroyed, while it waited), it is sealed again with the keys
    /// of now, which either succeeds or says why not (`Shredded`, `Sealed`).
    pub(crate) fn write<'a>(
        &self,
        scope: Scope,
        ops: impl Iterator<Item = OpRef<'a>> + Clone,
    ) -> Result<Lsn> {
        self.check_writable()?;
        self.check_archive_budget()?;
        self.create_missing_keys(scope, ops.clone())?;
        // Each refusal means another operation completed meanwhile (a key
        // version retired, a scope destroyed): the loop makes progress.
        loop {
            let Some(encoded) = self.seal_batch(scope, ops.clone())? else {
                return Ok(Lsn(self.commit.applied_lsn()));
            };
            if let Some(lsn) = self.commit.commit(&self.store, &self.keyring, encoded)? {
                return Ok(Lsn(lsn));
            }
        }
    }

    /// Creates the keys of every scope a batch puts into that has none, as
    /// one group (one sync per touched keyring shard), when there are
    /// several: a batch importing many new subjects waits for a few syncs,
    /// not one per subject. A single missing key is left to
    /// [`Inner::key_for_write`].
    fn create_missing_keys<'a>(
        &self,
        scope: Scope,
        ops: impl Iterator<Item = OpRef<'a>>,
    ) -> Result<()> {
        let mut scopes = std::collections::BTreeSet::new();
        let mut last = None;
        for (target, user_key, value) in ops {
            // A batch refused for its sizes creates no keys.
            check_sizes(user_key, value.unwrap_or_default())?;
            if value.is_some() && last != Some(target) {
                last = Some(target);
                scopes.insert(target);
            }
        }
        if scopes.len() < 2 {
            return Ok(());
        }
        let mut missing = Vec::new();
        for target in scopes {
            let scope = match target {
                None => scope,
                Some(subject) => Scope::subject(scope.tenant, subject),
            };
            if self.keyring.current_key(scope)?.is_none() {
                self.check_keyless(scope)?;
                missing.push(scope);
            }
        }
        if missing.len() >= 2 {
            self.keyring
                .create_keys(&missing, Some(&|s| self.may_hold_records(s)))?;
        }
        Ok(())
    }

    /// Seals a batch's puts and encodes its entries; `None` if it has none
    /// (only deletes in scopes that hold nothing). Each record is sealed
    /// straight into the encoded entries.
    pub(crate) fn seal_batch<'a>(
        &self,
        scope: Scope,
        ops: impl Iterator<Item = OpRef<'a>>,
    ) -> Result<Option<EncodedBatch>> {
        let mut encoded = EncodedBatch::default();
        for (target, user_key, value) in ops {
            let scope = match target {
                None => scope,
                Some(subject) => Scope::subject(scope.tenant, subject),
            };
            check_sizes(user_key, value.unwrap_or_default())?;
            let key = match value {
                Some(_) => self.key_for_write(scope)?,
                // A scope without a key holds nothing to delete.
                None => match self.keyring.current_key(scope)? {
                    Some(key) => key,
                    None => {
                        self.check_keyless(scope)?;
                        continue;
                    }
                },
            };
            let key = key.lease().map_err(|r| Error::revoked(scope, r))?;
            let token = key.token(user_key);
            match value {
                Some(value) => {
                    self.encode_sealed_put(&key, &token, user_key, value, &mut encoded.entries)
                }
                None => Entry {
                    scope,
                    key_version: key.version(),
                    token,
                    op: Op::Delete,
                }
                .encode_into(&mut encoded.entries),
            }
            encoded.count += 1;
            if encoded.entries.len() > FRAME_PAYLOAD_MAX / 2 {
                return Err(Error::InvalidArgument("batch larger than 32 MiB"));
            }
        }
        Ok((encoded.count > 0).then_some(encoded))
    }

    /// Appends to `entries` the put of (`user_key`, `value`) in `key`'s
    /// scope, its record sealed under `key` straight into them.
    pub(crate) fn encode_sealed_put(
        &self,
        key: &Lease<'_>,
        token: &Token,
        user_key: &[u8],
        value: &[u8],
        entries: &mut Vec<u8>,
    ) {
        entries.reserve(PUT_ENTRY_OVERHEAD + user_key.len() + value.len());
        entry::encode_put_into(key.scope(), key.version(), token, entries, |out| {
            record::seal(
                key,
                &self.nonces,
                token,
                user_key,
                value,
                self.compression_threshold,
                out,
            )
        });
    }

    /// Reads `user_key` in `scope`: live, or from a snapshot with the keys
    /// it pinned when it was taken.
    pub(crate) fn get(
        &self,
        scope: Scope,
        user_key: &[u8],
        view: Option<(&StoreSnapshot<'_>, &ScopeKeys)>,
    ) -> Result<Option<Vec<u8>>> {
        let mut live_keys;
        let (snapshot, mut keys) = match view {
            Some((snapshot, keys)) => (Some(snapshot), keys),
            None => {
                let Some(keys) = self.read_keys(scope)? else {
                    return Ok(None);
                };
                live_keys = keys;
                (None, &live_keys)
            }
        };
        let token = keys
            .newest()
            .lease()
            .map_err(|r| Error::revoked(scope, r))?
            .token(user_key);
        let store_key = crate::store::key_codec::data_key(scope, &token);
        let Some(mut sealed) = self.store.get_pinned(&store_key, snapshot)? else {
            return Ok(None);
        };
        if snapshot.is_none() && record::key_version(&sealed).is_some_and(|v| keys.at(v).is_none())
        {
            // Read just before a rotation retired its version: the store
            // holds the record re-sealed now.
            live_keys = self.keyring.keys(scope)?.expect("the scope had keys");
            keys = &live_keys;
            match self.store.get_pinned(&store_key, None)? {
                Some(again) => sealed = again,
                None => return Ok(None),
            }
        }
        let (stored_key, value) = self.open(keys, &token, &sealed)?;
        if stored_key != user_key {
            // Tokens are 128-bit PRF outputs: a mismatch means tampering.
            return Err(self.store.corruption(CorruptionKind::RecordAuth));
        }
        Ok(Some(value))
    }

    /// The key a live scope writes under, created if it has none, and only
    /// if it holds no data ([`Inner::check_keyless`]).
    pub(crate) fn key_for_write(&self, scope: Scope) -> Result<Arc<ScopeKey>> {
        if let Some(key) = self.keyring.current_key(scope)? {
            return Ok(key);
        }
        self.check_keyless(scope)?;
        self.keyring
            .current_key_or_create(scope, Some(&|s| self.may_hold_records(s)))
    }

    /// Whether the store holds records of `scope` (a subject's, or a
    /// tenant's and its subjects').
    fn holds_records(&self, scope: Scope) -> Result<bool> {
        self.store.holds_any(&key_codec::shred_prefix(scope))
    }

    /// [`Inner::holds_records`], an error counting as yes: what it guards
    /// (keys made ahead) must never make a key over records.
    fn may_hold_records(&self, scope: Scope) -> bool {
        self.holds_records(scope).unwrap_or(true)
    }

    /// Every key version of a live scope, for reading; `None` only for a
    /// scope that holds no data ([`Inner::check_keyless`]).
    pub(crate) fn read_keys(&self, scope: Scope) -> Result<Option<ScopeKeys>> {
        let keys = self.keyring.keys(scope)?;
        if keys.is_none() {
            self.check_keyless(scope)?;
        }
        Ok(keys)
    }

    /// A live scope without a key must hold nothing: records in the store
    /// under it (or, for a tenant without keys, under any of its scopes)
    /// mean its key was lost from the keyring (a shard deleted, cut short or
    /// rolled back). That is corruption of the shard that held the key, never
    /// an empty scope, and no new key may be made over the data.
    ///
    /// Runs only on the keyless path (a scope's first write, a read of a
    /// scope never written): one bounded seek.
    pub(crate) fn check_keyless(&self, scope: Scope) -> Result<()> {
        let (lacking, shard) = self.keyring.key_home(scope);
        // Data found may be a concurrent first write's, with the key made
        // since this caller looked (or the scope sealed or shredded since:
        // `keys` says so): only data with still no key is a lost key.
        if self.holds_records(lacking)? && self.keyring.keys(lacking)?.is_none() {
            tracing::error!(
                scope = %lacking,
                file = %shard.display(),
                "the store holds records of a scope whose key is missing from the keyring"
            );
            return Err(Error::corruption(shard, 0, CorruptionKind::MissingKey));
        }
        Ok(())
    }

    /// Opens a sealed record with the key version it names, from `keys`.
    pub(crate) fn open(
        &self,
        keys: &ScopeKeys,
        token: &Token,
        sealed: &[u8],
    ) -> Result<(Vec<u8>, Vec<u8>)> {
        let version = record::key_version(sealed)
            .ok_or_else(|| self.store.corruption(CorruptionKind::Truncated))?;
        let key = keys
            .at(version)
            .ok_or_else(|| self.store.corruption(CorruptionKind::RecordAuth))?;
        // A shred or seal since the keys were taken revokes them here: no
        // snapshot or scan outlives it.
        let key = key.lease().map_err(|r| Error::revoked(key.scope(), r))?;
        record::open(&key, token, sealed).map_err(|e| {
            self.store.corruption(match e {
                OpenError::Auth => CorruptionKind::RecordAuth,
                OpenError::Malformed => CorruptionKind::Malformed("sealed record"),
            })
        })
    }
}

fn check_sizes(key: &[u8], value: &[u8]) -> Result<()> {
    if key.len() > USER_KEY_MAX {
        return Err(Error::InvalidArgument("key longer than 64 KiB"));
    }
    if value.len() > USER_VALUE_MAX {
        return Err(Error::InvalidArgument("value longer than 16 MiB"));
    }
    Ok(())
}
