//! The keyring: tenant and subject keys, wrapped, in sharded files of their
//! own under `keyring/`, never inside the log or the store.
//!
//! ```text
//! keyring/MANIFEST                               KDF, wrapped root key, log id
//! keyring/tenants/{shard:03}.keys                tenant keys, shard = tenant % 256
//! keyring/subjects/{tenant:016x}/{shard:04}.keys subject keys, shard = subject % 1024
//! ```
//!
//! Tenant keys are wrapped by a key derived from the database root key (which
//! the master key wraps, in the manifest); subject keys by a key derived from
//! their tenant's key. Plaintext keys live only in
//! memory, in [`SecretKey`]s that are wiped when dropped.
//!
//! # Invariants
//! - A key is durable in its shard before it is returned for writing, so no
//!   log frame is ever sealed under a key that a crash could lose.
//! - Shards are append-only between atomic rewrites (temp, fsync, rename,
//!   fsync folder), so a shard on disk is always a valid prefix of its history.

mod manifest;
mod shard;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

pub(crate) use manifest::Manifest;
use shard::{KeyRecord, ShardId};

use super::SecretKey;
use super::root::RootKey;
use super::scope_key::ScopeKey;
use crate::clock::now_us;
use crate::error::{CorruptionKind, Error, IoContext, Result};
use crate::format::{
    KDF_TENANT_SUBJECT_WRAP, KEYRING_MANIFEST_FILE, KEYRING_SHARD_SUFFIX, KEYRING_SUBJECTS_DIR,
    KEYRING_TENANTS_DIR, SHARD_KIND_SUBJECTS, SHARD_KIND_TENANTS, SUBJECT_SHARDS, TENANT_SHARDS,
};
use crate::fs;
use crate::scope::{Scope, SubjectId, TenantId};

/// Version of a subject's key. Subjects have one version; rotation (a later
/// issue) rotates tenant keys and re-wraps subject keys.
const SUBJECT_KEY_VERSION: u32 = 1;
/// Version of a tenant's first key.
const FIRST_TENANT_KEY_VERSION: u32 = 1;

/// One version of a tenant key, in usable form.
#[derive(Debug)]
struct TenantKey {
    scope: Arc<ScopeKey>,
    subject_wrap: SecretKey,
}

#[derive(Default)]
struct Loaded {
    /// Every tenant's key versions (all tenant shards are read at open).
    tenants: HashMap<TenantId, BTreeMap<u32, TenantKey>>,
    /// Subject keys of the subject shards read so far.
    subjects: HashMap<(TenantId, SubjectId), Arc<ScopeKey>>,
    subject_shards: HashSet<(TenantId, u32)>,
}

/// The keyring of one database.
pub(crate) struct Keyring {
    dir: PathBuf,
    wrap: SecretKey,
    loaded: RwLock<Loaded>,
    /// Serialises key creation, so that two writers never create two keys
    /// for one scope.
    create: Mutex<()>,
}

impl Keyring {
    /// Reads the manifest, or `None` if the keyring has none yet.
    pub(crate) fn read_manifest(dir: &Path) -> Result<Option<Manifest>> {
        let path = dir.join(KEYRING_MANIFEST_FILE);
        if !path.exists() {
            return Ok(None);
        }
        Manifest::decode(&path, &fs::read(&path)?).map(Some)
    }

    /// Writes the manifest of a new keyring.
    pub(crate) fn create(dir: &Path, manifest: &Manifest) -> Result<()> {
        fs::create_dir_durable(dir)?;
        fs::write_atomic(&dir.join(KEYRING_MANIFEST_FILE), &manifest.encode())
    }

    /// Opens the keyring with the root key unwrapped from its manifest, and
    /// reads every tenant shard.
    pub(crate) fn open(dir: &Path, root: &RootKey) -> Result<Keyring> {
        let keyring = Keyring {
            dir: dir.to_path_buf(),
            wrap: root.tenant_wrap_key(),
            loaded: RwLock::new(Loaded::default()),
            create: Mutex::new(()),
        };
        fs::remove_stale_tmp_files(dir)?;
        fs::remove_stale_tmp_files(&dir.join(KEYRING_TENANTS_DIR))?;
        let mut loaded = keyring.loaded.write();
        for shard in 0..TENANT_SHARDS {
            let id = tenant_shard(shard);
            for record in keyring.read_shard(id)? {
                keyring.insert_tenant_key(&mut loaded, id, &record)?;
            }
        }
        drop(loaded);
        Ok(keyring)
    }

    /// The key a scope writes under (its newest version), if the scope has one.
    pub(crate) fn current_key(&self, scope: Scope) -> Result<Option<Arc<ScopeKey>>> {
        match scope.subject {
            None => Ok(self
                .loaded
                .read()
                .tenants
                .get(&scope.tenant)
                .and_then(|versions| versions.values().next_back())
                .map(|k| Arc::clone(&k.scope))),
            Some(subject) => self.subject_key(scope.tenant, subject),
        }
    }

    /// The key of `scope` at `version`, if it exists.
    pub(crate) fn key_at(&self, scope: Scope, version: u32) -> Result<Option<Arc<ScopeKey>>> {
        let key = self.current_key(scope)?;
        if scope.subject.is_some() {
            return Ok(key.filter(|k| k.version() == version));
        }
        Ok(self
            .loaded
            .read()
            .tenants
            .get(&scope.tenant)
            .and_then(|versions| versions.get(&version))
            .map(|k| Arc::clone(&k.scope)))
    }

    /// The key a scope writes under, created (durably) if the scope has none.
    pub(crate) fn current_key_or_create(&self, scope: Scope) -> Result<Arc<ScopeKey>> {
        if let Some(key) = self.current_key(scope)? {
            return Ok(key);
        }
        let _creating = self.create.lock();
        if let Some(key) = self.current_key(scope)? {
            return Ok(key);
        }
        let tenant_key = match self.current_key(Scope::tenant(scope.tenant))? {
            Some(key) => key,
            None => self.create_tenant_key(scope.tenant)?,
        };
        match scope.subject {
            None => Ok(tenant_key),
            Some(subject) => self.create_subject_key(scope.tenant, subject),
        }
    }

    fn create_tenant_key(&self, tenant: TenantId) -> Result<Arc<ScopeKey>> {
        let id = tenant_shard((tenant.0 % u64::from(TENANT_SHARDS)) as u32);
        let record = id.wrap_key(
            &self.wrap,
            tenant.0,
            FIRST_TENANT_KEY_VERSION,
            0,
            now_us(),
            &SecretKey::random(),
        );
        self.append(id, &record)?;
        let mut loaded = self.loaded.write();
        self.insert_tenant_key(&mut loaded, id, &record)?;
        Ok(Arc::clone(
            &loaded.tenants[&tenant][&FIRST_TENANT_KEY_VERSION].scope,
        ))
    }

    fn create_subject_key(&self, tenant: TenantId, subject: SubjectId) -> Result<Arc<ScopeKey>> {
        let id = subject_shard(tenant, subject);
        let (wrapper_version, record) = {
            let loaded = self.loaded.read();
            let (version, tenant_key) = loaded
                .tenants
                .get(&tenant)
                .and_then(|v| v.iter().next_back())
                .expect("the tenant key is created before its subjects' keys");
            let record = id.wrap_key(
                &tenant_key.subject_wrap,
                subject.0,
                SUBJECT_KEY_VERSION,
                *version,
                now_us(),
                &SecretKey::random(),
            );
            (*version, record)
        };
        debug_assert_eq!(wrapper_version, record.wrapper_version);
        self.append(id, &record)?;
        let mut loaded = self.loaded.write();
        self.insert_subject_key(&mut loaded, id, &record)?;
        Ok(Arc::clone(&loaded.subjects[&(tenant, subject)]))
    }

    fn subject_key(&self, tenant: TenantId, subject: SubjectId) -> Result<Option<Arc<ScopeKey>>> {
        let id = subject_shard(tenant, subject);
        {
            let loaded = self.loaded.read();
            if loaded.subject_shards.contains(&(tenant, id.shard)) {
                return Ok(loaded.subjects.get(&(tenant, subject)).cloned());
            }
        }
        let records = self.read_shard(id)?;
        let mut loaded = self.loaded.write();
        if loaded.subject_shards.insert((tenant, id.shard)) {
            for record in &records {
                self.insert_subject_key(&mut loaded, id, record)?;
            }
        }
        Ok(loaded.subjects.get(&(tenant, subject)).cloned())
    }

    fn insert_tenant_key(
        &self,
        loaded: &mut Loaded,
        id: ShardId,
        record: &KeyRecord,
    ) -> Result<()> {
        let root = id
            .unwrap_key(&self.wrap, record)
            .map_err(|_| self.key_auth_error(id))?;
        let tenant = TenantId(record.id);
        let key = TenantKey {
            scope: Arc::new(ScopeKey::derive(
                Scope::tenant(tenant),
                record.version,
                &root,
            )),
            subject_wrap: root.derive(KDF_TENANT_SUBJECT_WRAP),
        };
        loaded
            .tenants
            .entry(tenant)
            .or_default()
            .insert(record.version, key);
        Ok(())
    }

    fn insert_subject_key(
        &self,
        loaded: &mut Loaded,
        id: ShardId,
        record: &KeyRecord,
    ) -> Result<()> {
        let tenant = TenantId(id.tenant);
        let Some(wrapper) = loaded
            .tenants
            .get(&tenant)
            .and_then(|v| v.get(&record.wrapper_version))
        else {
            return Err(self.key_auth_error(id));
        };
        let root = id
            .unwrap_key(&wrapper.subject_wrap, record)
            .map_err(|_| self.key_auth_error(id))?;
        let scope = Scope::subject(tenant, SubjectId(record.id));
        let key = Arc::new(ScopeKey::derive(scope, record.version, &root));
        loaded.subjects.insert((tenant, SubjectId(record.id)), key);
        Ok(())
    }

    fn key_auth_error(&self, id: ShardId) -> Error {
        Error::corruption(self.shard_path(id), 0, CorruptionKind::KeyAuth)
    }

    /// Reads a shard's records; a missing shard has none. A torn append at
    /// the end is cut off by rewriting the shard atomically.
    fn read_shard(&self, id: ShardId) -> Result<Vec<KeyRecord>> {
        let path = self.shard_path(id);
        if !path.exists() {
            return Ok(Vec::new());
        }
        let bytes = fs::read(&path)?;
        let decoded = shard::decode(&path, &bytes, id)?;
        if decoded.valid_len < bytes.len() {
            tracing::warn!(file = %path.display(), "dropping a torn append at the end of a keyring shard");
            fs::write_atomic(&path, &bytes[..decoded.valid_len])?;
        }
        Ok(decoded.records)
    }

    /// Appends a record to a shard and syncs it; a new shard is written whole
    /// and atomically.
    fn append(&self, id: ShardId, record: &KeyRecord) -> Result<()> {
        let path = self.shard_path(id);
        if path.exists() {
            let mut file = OpenOptions::new().append(true).open(&path).at(&path)?;
            let len = file.metadata().at(&path)?.len();
            let appended = file
                .write_all(&record.encode())
                .and_then(|()| file.sync_data());
            if let Err(source) = appended {
                // The key is not used; cut the record off so the shard stays
                // a sequence of whole records.
                let _ = file.set_len(len).and_then(|()| file.sync_data());
                return Err(Error::Io { path, source });
            }
            Ok(())
        } else {
            let folder = path.parent().expect("shards live in a folder");
            fs::create_dir_durable(folder)?;
            let mut bytes = id.encode_header();
            bytes.extend_from_slice(&record.encode());
            fs::write_atomic(&path, &bytes)
        }
    }

    fn shard_path(&self, id: ShardId) -> PathBuf {
        match id.kind {
            SHARD_KIND_TENANTS => self
                .dir
                .join(KEYRING_TENANTS_DIR)
                .join(format!("{:03}{KEYRING_SHARD_SUFFIX}", id.shard)),
            _ => self
                .dir
                .join(KEYRING_SUBJECTS_DIR)
                .join(format!("{:016x}", id.tenant))
                .join(format!("{:04}{KEYRING_SHARD_SUFFIX}", id.shard)),
        }
    }
}

fn tenant_shard(shard: u32) -> ShardId {
    ShardId {
        kind: SHARD_KIND_TENANTS,
        tenant: 0,
        shard,
    }
}

fn subject_shard(tenant: TenantId, subject: SubjectId) -> ShardId {
    ShardId {
        kind: SHARD_KIND_SUBJECTS,
        tenant: tenant.0,
        shard: (subject.0 % u64::from(SUBJECT_SHARDS)) as u32,
    }
}
