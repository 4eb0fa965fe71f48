//! The keyring: tenant and subject keys, wrapped, in sharded files of their
//! own under `keyring/`, never inside the log or the store; and the lifecycle
//! of every scope (live, sealed for a grace period, destroyed).
//!
//! ```text
//! keyring/MANIFEST                               KDF, wrapped root key, log id
//! keyring/SEALS                                  pending seals (seals.rs)
//! keyring/tenants/{shard:03}.keys                tenant keys, shard = tenant % 256
//! keyring/subjects/{tenant:016x}/{shard:04}.keys subject keys, shard = subject % 1024
//! ```
//!
//! Tenant keys are wrapped by a key derived from the database root key (which
//! the master key wraps, in the manifest); subject keys by a key derived from
//! their tenant's key. Plaintext keys live only in memory, in [`SecretKey`]s
//! that are wiped when dropped.
//!
//! Destroying a scope rewrites the one shard that holds its key, atomically,
//! without the key and with a tombstone in its place: from the rename on, no
//! file holds the key. A destroyed tenant's subject shards are removed too
//! (their keys were wrapped by the tenant's key, so they were already dead).
//!
//! # Invariants
//! - A key is durable in its shard before it is returned for writing, so no
//!   log frame is ever sealed under a key that a crash could lose.
//! - Shards and the seals ledger are append-only between atomic rewrites
//!   (temp, fsync, rename, fsync folder): on disk each is always a valid
//!   prefix of its history.
//! - A tombstone is never followed by a key for the same scope: a destroyed
//!   scope accepts no writes, so no key is ever created for it again.

mod manifest;
mod seals;
mod shard;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

pub(crate) use manifest::Manifest;
use seals::SealRecord;
use shard::{KeyRecord, ShardId};

use super::SecretKey;
use super::master::{Kdf, MasterKey};
use super::root::RootKey;
use super::scope_key::{ScopeKey, ScopeKeys};
use crate::clock::Clock;
use crate::error::{CorruptionKind, Error, IoContext, Result};
use crate::format::{
    FIRST_TENANT_KEY_VERSION, KDF_TENANT_SUBJECT_WRAP, KEYRING_MANIFEST_FILE, KEYRING_SHARD_SUFFIX,
    KEYRING_SUBJECTS_DIR, KEYRING_TENANTS_DIR, RECORD_DESTROYED, RECORD_KEY, SEAL_OP_CANCEL,
    SEAL_OP_DONE, SEAL_OP_SEAL, SEALS_FILE, SHARD_KIND_SUBJECTS, SHARD_KIND_TENANTS,
    SUBJECT_KEY_VERSION, SUBJECT_SHARDS, TENANT_SHARDS, TENANT_TOKEN_VERSION,
};
use crate::fs::Files;
use crate::options::MasterKeySource;
use crate::scope::{Scope, SubjectId, TenantId};

/// Where a scope is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScopeState {
    /// Readable and writable.
    Live,
    /// Shredded with a grace period: no reads, no writes, and destroyed at
    /// the deadline (microseconds since the Unix epoch) unless cancelled.
    Sealed {
        /// When the scope's keys will be destroyed.
        deadline_us: u64,
    },
    /// The scope's keys are destroyed: its data can never be read again.
    Shredded,
}

/// One version of a tenant key, in usable form.
#[derive(Debug)]
struct TenantKey {
    scope: Arc<ScopeKey>,
    subject_wrap: SecretKey,
}

#[derive(Debug, Default)]
struct TenantEntry {
    /// Root of the tenant's token key (version 0).
    token_root: Option<SecretKey>,
    /// Sealing versions (1 and up); the newest seals new writes.
    versions: BTreeMap<u32, TenantKey>,
    destroyed: bool,
}

#[derive(Debug)]
enum SubjectSlot {
    Key(Arc<ScopeKey>),
    Destroyed,
}

#[derive(Default)]
struct Loaded {
    /// Every tenant with a key or a tombstone (all tenant shards are read at
    /// open).
    tenants: HashMap<TenantId, TenantEntry>,
    /// Subject keys and tombstones of the subject shards read so far.
    subjects: HashMap<(TenantId, SubjectId), SubjectSlot>,
    subject_shards: HashSet<(TenantId, u32)>,
    /// Pending seals, with their deadlines (the whole ledger is read at open).
    seals: HashMap<Scope, u64>,
}

/// The keyring of one database.
pub(crate) struct Keyring {
    files: Files,
    dir: PathBuf,
    manifest: Mutex<Manifest>,
    root: RootKey,
    wrap: SecretKey,
    clock: Arc<dyn Clock>,
    loaded: RwLock<Loaded>,
    /// Serialises every change to the keyring's files, so that two writers
    /// never create two keys for one scope, and a key is never created for a
    /// scope being destroyed.
    write: Mutex<()>,
}

impl Keyring {
    /// Reads the manifest, or `None` if the keyring has none yet.
    pub(crate) fn read_manifest(files: &Files, dir: &Path) -> Result<Option<Manifest>> {
        let path = dir.join(KEYRING_MANIFEST_FILE);
        let Some(bytes) = files.read_if_exists(&path)? else {
            return Ok(None);
        };
        Manifest::decode(&path, &bytes).map(Some)
    }

    /// Writes the manifest of a new keyring.
    pub(crate) fn create(files: &Files, dir: &Path, manifest: &Manifest) -> Result<()> {
        files.create_dir_durable(dir)?;
        files.write_atomic(&dir.join(KEYRING_MANIFEST_FILE), &manifest.encode())
    }

    /// Opens the keyring with the root key unwrapped from its manifest, and
    /// reads every tenant shard and the seals ledger.
    pub(crate) fn open(
        files: &Files,
        dir: &Path,
        manifest: Manifest,
        root: RootKey,
        clock: Arc<dyn Clock>,
    ) -> Result<Keyring> {
        let keyring = Keyring {
            files: files.clone(),
            dir: dir.to_path_buf(),
            manifest: Mutex::new(manifest),
            wrap: root.tenant_wrap_key(),
            root,
            clock,
            loaded: RwLock::new(Loaded::default()),
            write: Mutex::new(()),
        };
        files.remove_stale_tmp_files(dir)?;
        files.remove_stale_tmp_files(&dir.join(KEYRING_TENANTS_DIR))?;
        let mut loaded = keyring.loaded.write();
        for shard in 0..TENANT_SHARDS {
            let id = tenant_shard(shard);
            for record in keyring.read_shard(id)? {
                keyring.insert_tenant_record(&mut loaded, id, &record)?;
            }
        }
        loaded.seals = keyring.read_seals()?;
        drop(loaded);
        Ok(keyring)
    }

    /// Rewraps the root key under a new master key, in one atomic rewrite of
    /// the manifest: before the rename the old master key opens the
    /// database, after it only the new one. Nothing else changes.
    pub(crate) fn rotate_master(&self, source: &MasterKeySource) -> Result<()> {
        let _writing = self.write.lock();
        let mut manifest = self.manifest.lock();
        let kdf = Kdf::for_new_database(source);
        let master = MasterKey::resolve(source, &kdf)?;
        let rotated = manifest.rewrapped(kdf, &master, &self.root);
        self.files
            .write_atomic(&self.dir.join(KEYRING_MANIFEST_FILE), &rotated.encode())?;
        tracing::info!(generation = rotated.master_generation, "master key rotated");
        *manifest = rotated;
        Ok(())
    }

    /// Where `scope` is in its lifecycle. A subject is shredded or sealed if
    /// its tenant is.
    pub(crate) fn state(&self, scope: Scope) -> Result<ScopeState> {
        let tenant_state = {
            let loaded = self.loaded.read();
            if loaded
                .tenants
                .get(&scope.tenant)
                .is_some_and(|t| t.destroyed)
            {
                return Ok(ScopeState::Shredded);
            }
            match loaded.seals.get(&Scope::tenant(scope.tenant)) {
                Some(&deadline_us) => ScopeState::Sealed { deadline_us },
                None => ScopeState::Live,
            }
        };
        let Some(subject) = scope.subject else {
            return Ok(tenant_state);
        };
        self.load_subject_shard(scope.tenant, subject)?;
        let loaded = self.loaded.read();
        if matches!(
            loaded.subjects.get(&(scope.tenant, subject)),
            Some(SubjectSlot::Destroyed)
        ) {
            return Ok(ScopeState::Shredded);
        }
        Ok(match loaded.seals.get(&scope) {
            Some(&deadline_us) => ScopeState::Sealed { deadline_us },
            None => tenant_state,
        })
    }

    /// Fails with [`Error::Sealed`] or [`Error::Shredded`] unless `scope` is live.
    fn check_live(&self, scope: Scope) -> Result<()> {
        match self.state(scope)? {
            ScopeState::Live => Ok(()),
            ScopeState::Sealed { deadline_us } => Err(Error::Sealed { scope, deadline_us }),
            ScopeState::Shredded => Err(Error::Shredded { scope }),
        }
    }

    /// Whether `scope`'s keys are destroyed (for replay, which skips them).
    pub(crate) fn is_destroyed(&self, scope: Scope) -> Result<bool> {
        Ok(self.state(scope)? == ScopeState::Shredded)
    }

    /// The key a live scope writes under (its newest version), if it has one.
    pub(crate) fn current_key(&self, scope: Scope) -> Result<Option<Arc<ScopeKey>>> {
        self.check_live(scope)?;
        self.lookup(scope, None)
    }

    /// Every key version of a live scope (newest last), or `None` if the
    /// scope has no key yet.
    pub(crate) fn keys(&self, scope: Scope) -> Result<Option<ScopeKeys>> {
        self.check_live(scope)?;
        if scope.subject.is_some() {
            return Ok(self.lookup(scope, None)?.map(|k| ScopeKeys::new(vec![k])));
        }
        let loaded = self.loaded.read();
        let keys: Vec<_> = loaded
            .tenants
            .get(&scope.tenant)
            .map(|t| t.versions.values().map(|k| Arc::clone(&k.scope)).collect())
            .unwrap_or_default();
        Ok((!keys.is_empty()).then(|| ScopeKeys::new(keys)))
    }

    /// The key a live scope writes under, created (durably) if it has none.
    pub(crate) fn current_key_or_create(&self, scope: Scope) -> Result<Arc<ScopeKey>> {
        if let Some(key) = self.current_key(scope)? {
            return Ok(key);
        }
        let _writing = self.write.lock();
        if let Some(key) = self.current_key(scope)? {
            return Ok(key);
        }
        let tenant_key = match self.lookup(Scope::tenant(scope.tenant), None)? {
            Some(key) => key,
            None => self.create_tenant_key(scope.tenant)?,
        };
        match scope.subject {
            None => Ok(tenant_key),
            Some(subject) => self.create_subject_key(scope.tenant, subject),
        }
    }

    /// A scope's key (newest, or at `version`), whatever its state.
    pub(crate) fn lookup(
        &self,
        scope: Scope,
        version: Option<u32>,
    ) -> Result<Option<Arc<ScopeKey>>> {
        let Some(subject) = scope.subject else {
            let loaded = self.loaded.read();
            let versions = loaded.tenants.get(&scope.tenant).map(|t| &t.versions);
            let key = match version {
                None => versions.and_then(|v| v.values().next_back()),
                Some(version) => versions.and_then(|v| v.get(&version)),
            };
            return Ok(key.map(|k| Arc::clone(&k.scope)));
        };
        self.load_subject_shard(scope.tenant, subject)?;
        let loaded = self.loaded.read();
        Ok(match loaded.subjects.get(&(scope.tenant, subject)) {
            Some(SubjectSlot::Key(key)) if version.is_none_or(|v| v == key.version()) => {
                Some(Arc::clone(key))
            }
            _ => None,
        })
    }

    /// For a scope without a key: the scope whose key it lacks (its tenant,
    /// if the tenant has none, else itself) and the shard that would hold
    /// that key.
    pub(crate) fn key_home(&self, scope: Scope) -> (Scope, PathBuf) {
        let tenant = Scope::tenant(scope.tenant);
        let tenant_keyed = self
            .loaded
            .read()
            .tenants
            .get(&scope.tenant)
            .is_some_and(|t| !t.versions.is_empty());
        match scope.subject {
            Some(subject) if tenant_keyed => {
                (scope, self.shard_path(subject_shard(scope.tenant, subject)))
            }
            _ => (tenant, self.shard_path(tenant_shard_of(scope.tenant))),
        }
    }

    /// Seals a scope until `deadline_us`: durable before it returns.
    pub(crate) fn seal(&self, scope: Scope, deadline_us: u64) -> Result<()> {
        let _writing = self.write.lock();
        if self.is_destroyed(scope)? {
            return Err(Error::Shredded { scope });
        }
        self.append_seal(scope, SEAL_OP_SEAL, deadline_us)?;
        self.loaded.write().seals.insert(scope, deadline_us);
        Ok(())
    }

    /// Cancels a scope's own seal. Returns whether it was sealed.
    pub(crate) fn cancel_seal(&self, scope: Scope) -> Result<bool> {
        let _writing = self.write.lock();
        if self.is_destroyed(scope)? {
            return Err(Error::Shredded { scope });
        }
        if !self.loaded.read().seals.contains_key(&scope) {
            return Ok(false);
        }
        self.append_seal(scope, SEAL_OP_CANCEL, 0)?;
        self.loaded.write().seals.remove(&scope);
        Ok(true)
    }

    /// Records that a destroyed scope's space is reclaimed: its seal is done.
    pub(crate) fn finish_seal(&self, scope: Scope) -> Result<()> {
        let _writing = self.write.lock();
        if !self.loaded.read().seals.contains_key(&scope) {
            return Ok(());
        }
        self.append_seal(scope, SEAL_OP_DONE, 0)?;
        self.loaded.write().seals.remove(&scope);
        Ok(())
    }

    /// Pending seals, with their deadlines.
    pub(crate) fn pending_seals(&self) -> Vec<(Scope, u64)> {
        let mut seals: Vec<_> = self
            .loaded
            .read()
            .seals
            .iter()
            .map(|(s, d)| (*s, *d))
            .collect();
        seals.sort();
        seals
    }

    /// Destroys a scope's keys if its seal is due at `now_us` (decided
    /// under the keyring's lock, so a cancel that got there first wins): its
    /// shard is rewritten without them and with a tombstone, and their
    /// plaintext is dropped from memory. Idempotent. Returns whether the
    /// scope is destroyed.
    pub(crate) fn destroy_if_due(&self, scope: Scope, now_us: u64) -> Result<bool> {
        let _writing = self.write.lock();
        let due = self
            .loaded
            .read()
            .seals
            .get(&scope)
            .is_some_and(|&deadline_us| deadline_us <= now_us);
        if !due {
            return Ok(false);
        }
        match scope.subject {
            None => self.destroy_tenant(scope.tenant)?,
            Some(subject) => self.destroy_subject(scope.tenant, subject)?,
        }
        Ok(true)
    }

    /// Adds a new sealing version to a live tenant (creating its keys if it
    /// has none); new writes seal under it. Returns the new version.
    pub(crate) fn rotate_tenant(&self, tenant: TenantId) -> Result<u32> {
        let scope = Scope::tenant(tenant);
        self.current_key_or_create(scope)?;
        let _writing = self.write.lock();
        self.check_live(scope)?;
        let id = tenant_shard_of(tenant);
        let version = self
            .lookup(scope, None)?
            .map_or(FIRST_TENANT_KEY_VERSION, |k| k.version() + 1);
        let record = id.wrap_key(
            &self.wrap,
            tenant.0,
            version,
            0,
            self.clock.now_us(),
            &SecretKey::random(),
        );
        self.append(id, std::slice::from_ref(&record))?;
        self.insert_tenant_record(&mut self.loaded.write(), id, &record)?;
        Ok(version)
    }

    /// Live tenants with more than one sealing version: a rotation to finish.
    pub(crate) fn rotating_tenants(&self) -> Vec<TenantId> {
        let loaded = self.loaded.read();
        let mut tenants: Vec<_> = loaded
            .tenants
            .iter()
            .filter(|(t, e)| {
                e.versions.len() > 1 && !loaded.seals.contains_key(&Scope::tenant(**t))
            })
            .map(|(t, _)| *t)
            .collect();
        tenants.sort();
        tenants
    }

    /// Rewraps every subject key of `tenant` wrapped under a sealing
    /// version below `to` under version `to`, one atomic shard rewrite at a
    /// time. Returns how many keys it rewrapped.
    pub(crate) fn rewrap_subjects(&self, tenant: TenantId, to: u32) -> Result<usize> {
        let _writing = self.write.lock();
        let dir = self.subjects_dir(tenant);
        if !self.files.is_dir(&dir)? {
            return Ok(0);
        }
        let mut rewrapped = 0;
        for name in self.files.list(&dir)? {
            let Some(shard) = name
                .strip_suffix(KEYRING_SHARD_SUFFIX)
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            let id = ShardId {
                kind: SHARD_KIND_SUBJECTS,
                tenant: tenant.0,
                shard,
            };
            rewrapped += self.rewrap_shard(id, to)?;
        }
        Ok(rewrapped)
    }

    fn rewrap_shard(&self, id: ShardId, to: u32) -> Result<usize> {
        let mut records = self.read_shard(id)?;
        let loaded = self.loaded.read();
        let Some(entry) = loaded.tenants.get(&TenantId(id.tenant)) else {
            return Ok(0);
        };
        let target = entry
            .versions
            .get(&to)
            .ok_or_else(|| self.key_auth_error(id))?;
        let mut rewrapped = 0;
        for record in records.iter_mut() {
            if record.kind != RECORD_KEY || record.wrapper_version >= to {
                continue;
            }
            let old = entry
                .versions
                .get(&record.wrapper_version)
                .ok_or_else(|| self.key_auth_error(id))?;
            let key = id
                .unwrap_key(&old.subject_wrap, record)
                .map_err(|_| self.key_auth_error(id))?;
            *record = id.wrap_key(
                &target.subject_wrap,
                record.id,
                record.version,
                to,
                record.time_us,
                &key,
            );
            rewrapped += 1;
        }
        drop(loaded);
        if rewrapped > 0 {
            let mut bytes = id.encode_header();
            bytes.extend(records.iter().flat_map(|r| r.encode()));
            self.files.write_atomic(&self.shard_path(id), &bytes)?;
        }
        Ok(rewrapped)
    }

    /// Destroys the sealing versions of `tenant` below `below`: its shard
    /// is rewritten without them. The caller has made sure nothing is sealed
    /// or wrapped under them any more. Returns the versions destroyed.
    pub(crate) fn retire_versions_below(&self, tenant: TenantId, below: u32) -> Result<Vec<u32>> {
        let _writing = self.write.lock();
        let id = tenant_shard_of(tenant);
        let retired = |r: &KeyRecord| {
            r.id == tenant.0
                && r.kind == RECORD_KEY
                && r.version != TENANT_TOKEN_VERSION
                && r.version < below
        };
        let records = self.read_shard(id)?;
        let old: Vec<u32> = records
            .iter()
            .filter(|r| retired(r))
            .map(|r| r.version)
            .collect();
        if old.is_empty() {
            return Ok(old);
        }
        let mut bytes = id.encode_header();
        bytes.extend(
            records
                .iter()
                .filter(|r| !retired(r))
                .flat_map(|r| r.encode()),
        );
        self.files.write_atomic(&self.shard_path(id), &bytes)?;
        if let Some(entry) = self.loaded.write().tenants.get_mut(&tenant) {
            entry.versions.retain(|v, _| *v >= below);
        }
        Ok(old)
    }

    fn destroy_tenant(&self, tenant: TenantId) -> Result<()> {
        let id = tenant_shard_of(tenant);
        self.rewrite_without(id, tenant.0)?;
        {
            let mut loaded = self.loaded.write();
            let entry = loaded.tenants.entry(tenant).or_default();
            entry.versions.clear();
            entry.token_root = None;
            entry.destroyed = true;
            loaded.subjects.retain(|(t, _), _| *t != tenant);
            loaded.subject_shards.retain(|(t, _)| *t != tenant);
        }
        // The subjects' keys were wrapped by the tenant's keys: already
        // unreadable, removed for hygiene.
        self.files.remove_dir_durable(&self.subjects_dir(tenant))?;
        Ok(())
    }

    fn destroy_subject(&self, tenant: TenantId, subject: SubjectId) -> Result<()> {
        if self
            .loaded
            .read()
            .tenants
            .get(&tenant)
            .is_some_and(|t| t.destroyed)
        {
            return Ok(());
        }
        self.load_subject_shard(tenant, subject)?;
        self.rewrite_without(subject_shard(tenant, subject), subject.0)?;
        self.loaded
            .write()
            .subjects
            .insert((tenant, subject), SubjectSlot::Destroyed);
        Ok(())
    }

    /// Rewrites shard `id` atomically without the keys of `scope_id`, ending
    /// with its tombstone (kept if it is already there).
    fn rewrite_without(&self, id: ShardId, scope_id: u64) -> Result<()> {
        let records = self.read_shard(id)?;
        let mut bytes = id.encode_header();
        let mut tombstone = None;
        for record in &records {
            if record.id != scope_id {
                bytes.extend_from_slice(&record.encode());
            } else if record.kind == RECORD_DESTROYED {
                tombstone = Some(record.clone());
            }
        }
        let tombstone =
            tombstone.unwrap_or_else(|| KeyRecord::tombstone(scope_id, self.clock.now_us()));
        bytes.extend_from_slice(&tombstone.encode());
        let path = self.shard_path(id);
        self.files
            .create_dir_durable(path.parent().expect("shards live in a folder"))?;
        self.files.write_atomic(&path, &bytes)
    }

    fn create_tenant_key(&self, tenant: TenantId) -> Result<Arc<ScopeKey>> {
        let id = tenant_shard_of(tenant);
        let now = self.clock.now_us();
        let records = [TENANT_TOKEN_VERSION, FIRST_TENANT_KEY_VERSION].map(|version| {
            id.wrap_key(&self.wrap, tenant.0, version, 0, now, &SecretKey::random())
        });
        self.append(id, &records)?;
        let mut loaded = self.loaded.write();
        for record in &records {
            self.insert_tenant_record(&mut loaded, id, record)?;
        }
        Ok(Arc::clone(
            &loaded.tenants[&tenant].versions[&FIRST_TENANT_KEY_VERSION].scope,
        ))
    }

    fn create_subject_key(&self, tenant: TenantId, subject: SubjectId) -> Result<Arc<ScopeKey>> {
        let id = subject_shard(tenant, subject);
        let record = {
            let loaded = self.loaded.read();
            let (version, tenant_key) = loaded
                .tenants
                .get(&tenant)
                .and_then(|t| t.versions.iter().next_back())
                .expect("the tenant key is created before its subjects' keys");
            id.wrap_key(
                &tenant_key.subject_wrap,
                subject.0,
                SUBJECT_KEY_VERSION,
                *version,
                self.clock.now_us(),
                &SecretKey::random(),
            )
        };
        self.append(id, std::slice::from_ref(&record))?;
        let mut loaded = self.loaded.write();
        self.insert_subject_record(&mut loaded, id, &record)?;
        match &loaded.subjects[&(tenant, subject)] {
            SubjectSlot::Key(key) => Ok(Arc::clone(key)),
            SubjectSlot::Destroyed => unreachable!("a live scope's key was just created"),
        }
    }

    /// Reads the subject shard holding `subject`, once.
    fn load_subject_shard(&self, tenant: TenantId, subject: SubjectId) -> Result<()> {
        let id = subject_shard(tenant, subject);
        if self
            .loaded
            .read()
            .subject_shards
            .contains(&(tenant, id.shard))
        {
            return Ok(());
        }
        let records = self.read_shard(id)?;
        let mut loaded = self.loaded.write();
        if loaded.subject_shards.insert((tenant, id.shard)) {
            for record in &records {
                self.insert_subject_record(&mut loaded, id, record)?;
            }
        }
        Ok(())
    }

    fn insert_tenant_record(
        &self,
        loaded: &mut Loaded,
        id: ShardId,
        record: &KeyRecord,
    ) -> Result<()> {
        let tenant = TenantId(record.id);
        let entry = loaded.tenants.entry(tenant).or_default();
        if record.kind == RECORD_DESTROYED {
            entry.versions.clear();
            entry.token_root = None;
            entry.destroyed = true;
            return Ok(());
        }
        debug_assert_eq!(record.kind, RECORD_KEY);
        if entry.destroyed {
            return Ok(());
        }
        let root = id
            .unwrap_key(&self.wrap, record)
            .map_err(|_| self.key_auth_error(id))?;
        if record.version == TENANT_TOKEN_VERSION {
            entry.token_root = Some(root);
            return Ok(());
        }
        let Some(token_root) = entry.token_root.as_ref() else {
            let path = self.shard_path(id);
            let kind = CorruptionKind::Malformed("tenant sealing key before its token key");
            return Err(Error::corruption(path, 0, kind));
        };
        let scope = Scope::tenant(tenant);
        let key = TenantKey {
            scope: Arc::new(ScopeKey::derive_split(
                scope,
                record.version,
                &root,
                token_root,
            )),
            subject_wrap: root.derive(KDF_TENANT_SUBJECT_WRAP),
        };
        entry.versions.insert(record.version, key);
        Ok(())
    }

    fn insert_subject_record(
        &self,
        loaded: &mut Loaded,
        id: ShardId,
        record: &KeyRecord,
    ) -> Result<()> {
        let tenant = TenantId(id.tenant);
        let subject = SubjectId(record.id);
        if loaded.tenants.get(&tenant).is_some_and(|t| t.destroyed) {
            // A crash between the tenant's destruction and the removal of
            // its subject shards left them: their keys are dead already.
            return Ok(());
        }
        if record.kind == RECORD_DESTROYED {
            loaded
                .subjects
                .insert((tenant, subject), SubjectSlot::Destroyed);
            return Ok(());
        }
        if matches!(
            loaded.subjects.get(&(tenant, subject)),
            Some(SubjectSlot::Destroyed)
        ) {
            return Ok(());
        }
        let Some(wrapper) = loaded
            .tenants
            .get(&tenant)
            .and_then(|t| t.versions.get(&record.wrapper_version))
        else {
            return Err(self.key_auth_error(id));
        };
        let root = id
            .unwrap_key(&wrapper.subject_wrap, record)
            .map_err(|_| self.key_auth_error(id))?;
        let key = ScopeKey::derive(Scope::subject(tenant, subject), record.version, &root);
        loaded
            .subjects
            .insert((tenant, subject), SubjectSlot::Key(Arc::new(key)));
        Ok(())
    }

    fn key_auth_error(&self, id: ShardId) -> Error {
        Error::corruption(self.shard_path(id), 0, CorruptionKind::KeyAuth)
    }

    /// Reads a shard's records; a missing shard has none. A torn append at
    /// the end is cut off by rewriting the shard atomically.
    fn read_shard(&self, id: ShardId) -> Result<Vec<KeyRecord>> {
        let path = self.shard_path(id);
        // Missing: never written, or removed with a destroyed tenant's
        // subject folder (even while this read ran).
        let Some(bytes) = self.files.read_if_exists(&path)? else {
            return Ok(Vec::new());
        };
        let decoded = shard::decode(&path, &bytes, id)?;
        if decoded.valid_len < bytes.len() {
            tracing::warn!(file = %path.display(), "dropping a torn append at the end of a keyring shard");
            self.files
                .write_atomic(&path, &bytes[..decoded.valid_len])?;
        }
        Ok(decoded.records)
    }

    /// Reads the seals ledger, compacting it if it holds finished seals.
    fn read_seals(&self) -> Result<HashMap<Scope, u64>> {
        let path = self.dir.join(SEALS_FILE);
        let Some(bytes) = self.files.read_if_exists(&path)? else {
            return Ok(HashMap::new());
        };
        let ledger = seals::decode(&path, &bytes)?;
        if ledger.has_garbage {
            self.files
                .write_atomic(&path, &seals::encode_pending(&ledger.pending))?;
        }
        Ok(ledger.pending)
    }

    fn append_seal(&self, scope: Scope, op: u8, deadline_us: u64) -> Result<()> {
        let record = SealRecord {
            scope,
            op,
            deadline_us,
        };
        append_record(
            &self.files,
            &self.dir.join(SEALS_FILE),
            &seals::encode_header(),
            &record.encode(),
        )
    }

    /// Appends records to a shard, in one write, and syncs it.
    fn append(&self, id: ShardId, records: &[KeyRecord]) -> Result<()> {
        let bytes: Vec<u8> = records.iter().flat_map(|r| r.encode()).collect();
        append_record(
            &self.files,
            &self.shard_path(id),
            &id.encode_header(),
            &bytes,
        )
    }

    fn subjects_dir(&self, tenant: TenantId) -> PathBuf {
        self.dir
            .join(KEYRING_SUBJECTS_DIR)
            .join(format!("{:016x}", tenant.0))
    }

    fn shard_path(&self, id: ShardId) -> PathBuf {
        match id.kind {
            SHARD_KIND_TENANTS => self
                .dir
                .join(KEYRING_TENANTS_DIR)
                .join(format!("{:03}{KEYRING_SHARD_SUFFIX}", id.shard)),
            _ => self
                .subjects_dir(TenantId(id.tenant))
                .join(format!("{:04}{KEYRING_SHARD_SUFFIX}", id.shard)),
        }
    }
}

/// Appends fixed-size records to a file that starts with `header`, and
/// syncs it. A missing file is written whole and atomically. A failed append
/// is cut off again, so the file stays a sequence of whole records.
fn append_record(files: &Files, path: &Path, header: &[u8], record: &[u8]) -> Result<()> {
    if !files.is_file(path)? {
        files.create_dir_durable(path.parent().expect("keyring files live in a folder"))?;
        let mut bytes = header.to_vec();
        bytes.extend_from_slice(record);
        return files.write_atomic(path, &bytes);
    }
    let file = files.open_append(path)?;
    let len = file.size().at(path)?;
    if let Err(source) = file.append(record).and_then(|()| file.sync_data()) {
        let _ = file.set_len(len).and_then(|()| file.sync_data());
        return Err(Error::io(path.to_path_buf(), source));
    }
    Ok(())
}

fn tenant_shard(shard: u32) -> ShardId {
    ShardId {
        kind: SHARD_KIND_TENANTS,
        tenant: 0,
        shard,
    }
}

fn tenant_shard_of(tenant: TenantId) -> ShardId {
    tenant_shard((tenant.0 % u64::from(TENANT_SHARDS)) as u32)
}

fn subject_shard(tenant: TenantId, subject: SubjectId) -> ShardId {
    ShardId {
        kind: SHARD_KIND_SUBJECTS,
        tenant: tenant.0,
        shard: (subject.0 % u64::from(SUBJECT_SHARDS)) as u32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SystemClock;

    fn keyring(dir: &Path) -> Keyring {
        let root = RootKey::from_secret(SecretKey::from_bytes([9; 32]));
        let source = MasterKeySource::Bytes(zeroize::Zeroizing::new([1; 32]));
        let master = MasterKey::resolve(&source, &Kdf::None).unwrap();
        let (manifest, _) = Manifest::create(Kdf::None, &master, [0; 16]);
        Keyring::open(
            &Files::default(),
            dir,
            manifest,
            root,
            Arc::new(SystemClock),
        )
        .unwrap()
    }

    #[test]
    fn destroyed_keys_leave_no_copy_in_the_keyring_and_stay_destroyed() {
        let dir = tempfile::tempdir().unwrap();
        let (tenant, other) = (Scope::tenant(TenantId(1)), Scope::tenant(TenantId(257)));
        let subject = Scope::subject(TenantId(2), SubjectId(5));
        let other_token = {
            let k = keyring(dir.path());
            k.current_key_or_create(tenant).unwrap();
            k.current_key_or_create(subject).unwrap();
            let o = k.current_key_or_create(other).unwrap();
            for scope in [tenant, subject] {
                k.seal(scope, 5).unwrap();
                assert!(!k.destroy_if_due(scope, 4).unwrap(), "not due yet");
                assert!(k.destroy_if_due(scope, 5).unwrap());
            }
            assert!(matches!(k.current_key(tenant), Err(Error::Shredded { .. })));
            o.token(b"x")
        };
        let k = keyring(dir.path());
        assert_eq!(k.state(tenant).unwrap(), ScopeState::Shredded);
        assert_eq!(k.state(subject).unwrap(), ScopeState::Shredded);
        assert!(matches!(
            k.current_key_or_create(subject),
            Err(Error::Shredded { .. })
        ));
        assert_eq!(
            k.current_key(other).unwrap().unwrap().token(b"x"),
            other_token
        );
        assert!(k.lookup(tenant, None).unwrap().is_none(), "no key left");
        assert!(k.lookup(subject, None).unwrap().is_none(), "no key left");
        // No shard file holds a key record for them any more.
        let tenant_shard = std::fs::read(k.shard_path(tenant_shard_of(TenantId(1)))).unwrap();
        let decoded = shard::decode(Path::new("t"), &tenant_shard, tenant_shard_of(TenantId(1)));
        let records = decoded.unwrap().records;
        assert!(
            records
                .iter()
                .all(|r| r.id != 1 || r.kind == RECORD_DESTROYED)
        );
        assert!(!k.subjects_dir(TenantId(1)).exists());
    }

    #[test]
    fn a_seal_survives_reopen_and_a_cancel_lifts_it() {
        let dir = tempfile::tempdir().unwrap();
        let scope = Scope::subject(TenantId(3), SubjectId(4));
        {
            let k = keyring(dir.path());
            k.current_key_or_create(scope).unwrap();
            k.seal(scope, 1234).unwrap();
            assert!(matches!(
                k.current_key(scope),
                Err(Error::Sealed {
                    deadline_us: 1234,
                    ..
                })
            ));
        }
        let k = keyring(dir.path());
        assert_eq!(
            k.state(scope).unwrap(),
            ScopeState::Sealed { deadline_us: 1234 }
        );
        assert_eq!(k.pending_seals(), vec![(scope, 1234)]);
        assert!(k.cancel_seal(scope).unwrap());
        assert!(k.current_key(scope).unwrap().is_some());
        drop(k);
        assert!(keyring(dir.path()).pending_seals().is_empty());
    }
}
