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
//! Every keyring file is a MAC chain under a key derived from the root key,
//! and its parent records where the chain stands (`custody.rs`): the
//! manifest anchors the tenant shards and the seals ledger, each tenant shard
//! anchors its tenants' subject shards. A file deleted, cut short, edited or
//! replaced by an older copy of itself is `Corruption` naming it, at open or
//! at the first read of its scope, never a scope that silently lost its keys
//! or its seal. `persist.rs` reads, writes and anchors the files;
//! `upgrade.rs` brings a format-1 keyring to format 2 at open.
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

mod copies;
mod create;
pub(crate) mod custody;
mod manifest;
mod persist;
mod seals;
mod shard;
mod upgrade;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::{Mutex, ReentrantMutex, RwLock};

pub(crate) use copies::{FileVersion, KeyringFile, place_copy};
use custody::Anchor;
pub(crate) use custody::ChainKey;
pub(crate) use manifest::{KEY_BLOCK_LEN, Manifest, key_block, open_key_block};
use seals::SealRecord;
use shard::{KeyRecord, ShardId};

use super::SecretKey;
use super::master::{Kdf, MasterKey};
use super::root::RootKey;
use super::scope_key::{Gate, ScopeKey, ScopeKeys};
use crate::clock::Clock;
use crate::error::{CorruptionKind, Error, Result};
use crate::format::{
    FIRST_TENANT_KEY_VERSION, KDF_TENANT_SUBJECT_WRAP, KEYRING_MANIFEST_FILE, KEYRING_SHARD_SUFFIX,
    KEYRING_SUBJECTS_DIR, KEYRING_TENANTS_DIR, KEYRING_VERSION_V1, RECORD_DESTROYED, RECORD_KEY,
    SEAL_OP_CANCEL, SEAL_OP_DONE, SEAL_OP_SEAL, SHARD_KIND_SUBJECTS, SHARD_KIND_TENANTS,
    SUBJECT_SHARDS, TENANT_SHARDS, TENANT_TOKEN_VERSION,
};
use crate::fs::Files;
use crate::options::MasterKeySource;
use crate::scope::{Scope, SubjectId, TenantId};

/// Threads that sync keyring files in parallel (a group of key creations
/// touches up to one shard per member; an import, up to 1,024).
const KEYRING_SYNC_THREADS: usize = 15;

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

/// A keyring file below the manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum FileId {
    Seals,
    Shard(ShardId),
}

impl FileId {
    /// The subject shard of `tenant`, if this is one (`None`: any tenant's).
    fn is_subject_shard(&self, tenant: Option<TenantId>) -> bool {
        matches!(self, FileId::Shard(id)
            if id.kind == SHARD_KIND_SUBJECTS && tenant.is_none_or(|t| t.0 == id.tenant))
    }
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
    /// Where the chain of every file read so far stands (absent: no file).
    chains: HashMap<FileId, Anchor>,
    /// The anchors the tenant shards hold for subject shards, by (tenant,
    /// subject shard number).
    subject_anchors: HashMap<(TenantId, u32), Anchor>,
    /// Files whose chain is past what their parent records.
    unanchored: BTreeSet<FileId>,
    /// Each scope's gate, shared by every key of the scope (and, for a
    /// tenant's, by its subjects' keys): how a seal, a cancel or a
    /// destruction reaches the keys that snapshots and scans hold.
    gates: HashMap<Scope, Arc<Gate>>,
}

impl Loaded {
    /// The gate of `scope`, made in the state the keyring knows of it.
    fn gate(&mut self, scope: Scope) -> Arc<Gate> {
        let sealed = self.seals.get(&scope).copied();
        let destroyed = self.tenants.get(&scope.tenant).is_some_and(|t| t.destroyed)
            || scope.subject.is_some_and(|s| {
                matches!(
                    self.subjects.get(&(scope.tenant, s)),
                    Some(SubjectSlot::Destroyed)
                )
            });
        Arc::clone(self.gates.entry(scope).or_insert_with(|| {
            let gate = Gate::default();
            if destroyed {
                gate.set_shredded();
            } else if let Some(deadline_us) = sealed {
                gate.set_sealed(deadline_us);
            }
            Arc::new(gate)
        }))
    }
}

/// The keyring of one database.
pub(crate) struct Keyring {
    files: Files,
    dir: PathBuf,
    manifest: Mutex<Manifest>,
    root: RootKey,
    wrap: SecretKey,
    chain_key: ChainKey,
    clock: Arc<dyn Clock>,
    loaded: RwLock<Loaded>,
    /// Serialises every change to the keyring's files, so that two writers
    /// never create two keys for one scope, a key is never created for a
    /// scope being destroyed, and a reader never cuts off an append in
    /// flight as if it were torn. Reentrant: a change may load a shard,
    /// which may need to repair it.
    write: ReentrantMutex<()>,
    /// Key creations waiting to be made in a group (`create.rs`).
    creations: create::Creations,
    /// Threads that sync the shards of a group of appends together.
    syncer: crate::pool::Pool,
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
    pub(crate) fn create(
        files: &Files,
        dir: &Path,
        manifest: &Manifest,
        root: &RootKey,
    ) -> Result<()> {
        files.create_dir_durable(dir)?;
        files.write_atomic(
            &dir.join(KEYRING_MANIFEST_FILE),
            &manifest.encode(&ChainKey::new(root)),
        )
    }

    /// Opens the keyring with the root key unwrapped from its manifest:
    /// checks the manifest's MAC, upgrades a format-1 keyring, reads every
    /// tenant shard and the seals ledger and checks each against the
    /// manifest's anchors. Every check comes before any repair (a torn
    /// append cut off, the ledger compacted, a parent brought level), so an
    /// open that fails changes no file.
    pub(crate) fn open(
        files: &Files,
        dir: &Path,
        manifest: Manifest,
        root: RootKey,
        clock: Arc<dyn Clock>,
    ) -> Result<Keyring> {
        Keyring::open_with_gates(files, dir, manifest, root, clock, HashMap::new())
    }

    /// Reads the keyring's files again, after new copies were written over
    /// them (a standby following an archive's keyring), and takes their
    /// state in place of the one in memory, under the write lock. Each
    /// scope keeps its gate, set to the new state, so the keys that
    /// snapshots and scans already hold see a seal, a cancel or a
    /// destruction at once; the keys of scopes destroyed are wiped.
    pub(crate) fn reload(&self, manifest: Manifest) -> Result<()> {
        let _writing = self.write.lock();
        let gates = self.loaded.read().gates.clone();
        let fresh = Keyring::open_with_gates(
            &self.files,
            &self.dir,
            manifest,
            RootKey::from_secret(self.root.secret().clone()),
            Arc::clone(&self.clock),
            gates,
        )?;
        // Every gate carried over now says what the new state says (a
        // subject's state is in its shard: read those now).
        let scopes: Vec<Scope> = fresh.loaded.read().gates.keys().copied().collect();
        let mut destroyed = HashSet::new();
        for scope in scopes {
            if let Some(subject) = scope.subject
                && !fresh.is_destroyed(Scope::tenant(scope.tenant))?
            {
                fresh.load_subject_shard(scope.tenant, subject)?;
            }
            let state = fresh.state(scope)?;
            let gate = Arc::clone(&fresh.loaded.read().gates[&scope]);
            match state {
                ScopeState::Shredded => {
                    gate.set_shredded();
                    destroyed.insert(scope);
                }
                ScopeState::Sealed { deadline_us } => gate.set_sealed(deadline_us),
                ScopeState::Live => gate.set_live(),
            }
        }
        let fresh_loaded = fresh.loaded.into_inner();
        let mut loaded = self.loaded.write();
        // The old keys of scopes destroyed now: wiped (their holders are
        // refused by the gates above already).
        for (tenant, entry) in &loaded.tenants {
            if destroyed.contains(&Scope::tenant(*tenant)) {
                entry.versions.values().for_each(|k| k.scope.wipe());
            }
        }
        for ((tenant, subject), slot) in &loaded.subjects {
            let gone = destroyed.contains(&Scope::tenant(*tenant))
                || destroyed.contains(&Scope::subject(*tenant, *subject));
            if let (true, SubjectSlot::Key(key)) = (gone, slot) {
                key.wipe();
            }
        }
        *loaded = fresh_loaded;
        *self.manifest.lock() = fresh.manifest.into_inner();
        Ok(())
    }

    fn open_with_gates(
        files: &Files,
        dir: &Path,
        manifest: Manifest,
        root: RootKey,
        clock: Arc<dyn Clock>,
        gates: HashMap<Scope, Arc<Gate>>,
    ) -> Result<Keyring> {
        let chain_key = ChainKey::new(&root);
        manifest.verify(&dir.join(KEYRING_MANIFEST_FILE), &chain_key)?;
        let keyring = Keyring {
            files: files.clone(),
            dir: dir.to_path_buf(),
            manifest: Mutex::new(manifest),
            wrap: root.tenant_wrap_key(),
            root,
            chain_key,
            clock,
            loaded: RwLock::new(Loaded {
                gates,
                ..Loaded::default()
            }),
            write: ReentrantMutex::new(()),
            creations: create::Creations::default(),
            syncer: crate::pool::Pool::new("strongroom-keyring-sync", KEYRING_SYNC_THREADS),
        };
        let _writing = keyring.write.lock();
        if keyring.manifest.lock().version == KEYRING_VERSION_V1 {
            files.remove_stale_tmp_files(dir)?;
            files.remove_stale_tmp_files(&dir.join(KEYRING_TENANTS_DIR))?;
            keyring.upgrade()?;
        }
        let mut loaded = keyring.loaded.write();
        let mut reads = Vec::with_capacity(TENANT_SHARDS as usize);
        for shard in 0..TENANT_SHARDS {
            reads.push(keyring.read_shard_checked(&loaded, tenant_shard(shard))?);
        }
        let mut seals = keyring.read_seals_checked(&loaded)?;
        for read in &reads {
            let FileId::Shard(id) = read.file else {
                unreachable!("tenant shards")
            };
            for record in read.content.iter().flat_map(|d| &d.records) {
                keyring.insert_tenant_record(&mut loaded, id, record)?;
            }
        }
        // Everything is checked: now repairs may write.
        files.remove_stale_tmp_files(dir)?;
        files.remove_stale_tmp_files(&dir.join(KEYRING_TENANTS_DIR))?;
        for read in &mut reads {
            keyring.take(&mut loaded, read)?;
        }
        keyring.take(&mut loaded, &mut seals)?;
        let ledger = seals.content.unwrap_or_default();
        loaded.seals = ledger.pending;
        let sealed: Vec<(Scope, u64)> = loaded.seals.iter().map(|(s, d)| (*s, *d)).collect();
        for (scope, deadline_us) in sealed {
            loaded.gate(scope).set_sealed(deadline_us);
        }
        drop(loaded);
        if ledger.has_garbage {
            keyring.rewrite_seals()?;
        }
        keyring.anchor()?;
        drop(_writing);
        Ok(keyring)
    }

    /// The manifest's epoch: grows with every change the manifest records.
    pub(crate) fn epoch(&self) -> u64 {
        self.manifest.lock().epoch
    }

    /// Records every file that moved past its parent's anchor (key
    /// creations since the last pass) in its parent: the maintenance pass
    /// and close call it.
    pub(crate) fn anchor_pending(&self) -> Result<()> {
        let _writing = self.write.lock();
        self.anchor()
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
        self.files.write_atomic(
            &self.dir.join(KEYRING_MANIFEST_FILE),
            &rotated.encode(&self.chain_key),
        )?;
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

    /// Seals a scope until `deadline_us`: durable before it returns, and
    /// recorded by the manifest unless `then_destroyed` (an immediate shred,
    /// whose destruction right after records both at once; if that fails,
    /// the scope stays sealed and the next anchor pass records the seal).
    pub(crate) fn seal(&self, scope: Scope, deadline_us: u64, then_destroyed: bool) -> Result<()> {
        let _writing = self.write.lock();
        if self.is_destroyed(scope)? {
            return Err(Error::Shredded { scope });
        }
        self.append_seal(scope, SEAL_OP_SEAL, deadline_us)?;
        let mut loaded = self.loaded.write();
        loaded.seals.insert(scope, deadline_us);
        let gate = loaded.gate(scope);
        drop(loaded);
        if then_destroyed {
            // Readers meet an immediate shred as a shred from its first
            // step: a scan it stops ends with `Shredded`.
            gate.set_shredded();
            return Ok(());
        }
        gate.set_sealed(deadline_us);
        self.anchor()
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
        let mut loaded = self.loaded.write();
        loaded.seals.remove(&scope);
        loaded.gate(scope).set_live();
        drop(loaded);
        self.anchor()?;
        Ok(true)
    }

    /// Records that a destroyed scope's space is reclaimed: its seal is done.
    /// Recorded by the manifest at the next anchor pass: losing it to a
    /// rollback only reclaims the space again.
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
        self.anchor()?;
        Ok(true)
    }

    /// Adds a new sealing version to a live tenant (creating its keys if it
    /// has none); new writes seal under it. Returns the new version.
    pub(crate) fn rotate_tenant(&self, tenant: TenantId) -> Result<u32> {
        let scope = Scope::tenant(tenant);
        self.current_key_or_create(scope, None)?;
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
            let id = subject_shard_id(tenant, shard);
            self.load_shard(id)?;
            rewrapped += self.rewrap_shard(id, to)?;
        }
        // Recorded with the retirement that follows (or the next anchor
        // pass): a rewrapped shard rolled back holds the same keys, wrapped
        // under a version that is still there, or that the (recorded)
        // retirement destroyed.
        Ok(rewrapped)
    }

    fn rewrap_shard(&self, id: ShardId, to: u32) -> Result<usize> {
        let mut records = self.shard_records(id)?;
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
            self.rewrite(id, &records)?;
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
        let records = self.shard_records(id)?;
        let old: Vec<u32> = records
            .iter()
            .filter(|r| retired(r))
            .map(|r| r.version)
            .collect();
        if old.is_empty() {
            return Ok(old);
        }
        let kept: Vec<KeyRecord> = records.into_iter().filter(|r| !retired(r)).collect();
        self.rewrite(id, &kept)?;
        if let Some(entry) = self.loaded.write().tenants.get_mut(&tenant) {
            entry.versions.retain(|v, _| *v >= below);
        }
        self.anchor()?;
        Ok(old)
    }

    fn destroy_tenant(&self, tenant: TenantId) -> Result<()> {
        let id = tenant_shard_of(tenant);
        self.rewrite_without(id, tenant.0)?;
        let destroyed: Vec<Arc<ScopeKey>> = {
            let mut loaded = self.loaded.write();
            loaded.gate(Scope::tenant(tenant)).set_shredded();
            let entry = loaded.tenants.entry(tenant).or_default();
            let mut keys: Vec<_> = std::mem::take(&mut entry.versions)
                .into_values()
                .map(|k| k.scope)
                .collect();
            entry.token_root = None;
            entry.destroyed = true;
            keys.extend(
                loaded
                    .subjects
                    .extract_if(|(t, _), _| *t == tenant)
                    .filter_map(|(_, slot)| match slot {
                        SubjectSlot::Key(key) => Some(key),
                        SubjectSlot::Destroyed => None,
                    }),
            );
            loaded.subject_shards.retain(|(t, _)| *t != tenant);
            self.forget_subject_files(&mut loaded, tenant);
            keys
        };
        // Every reader holding them is refused already (the tenant's gate);
        // the bytes go once the reads in the middle of using them end.
        destroyed.iter().for_each(|key| key.wipe());
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
        let scope = Scope::subject(tenant, subject);
        let destroyed = {
            let mut loaded = self.loaded.write();
            loaded.gate(scope).set_shredded();
            loaded
                .subjects
                .insert((tenant, subject), SubjectSlot::Destroyed)
        };
        if let Some(SubjectSlot::Key(key)) = destroyed {
            key.wipe();
        }
        Ok(())
    }

    /// Rewrites shard `id` atomically without the keys of `scope_id`, ending
    /// with its tombstone (kept if it is already there).
    fn rewrite_without(&self, id: ShardId, scope_id: u64) -> Result<()> {
        if id.kind == SHARD_KIND_SUBJECTS {
            self.load_shard(id)?;
        }
        let records = self.shard_records(id)?;
        let mut kept = Vec::with_capacity(records.len() + 1);
        let mut tombstone = None;
        for record in records {
            if record.id != scope_id {
                kept.push(record);
            } else if record.kind == RECORD_DESTROYED {
                tombstone = Some(record);
            }
        }
        kept.push(tombstone.unwrap_or_else(|| KeyRecord::tombstone(scope_id, self.clock.now_us())));
        self.rewrite(id, &kept)
    }

    /// Rewrites shard `id` with `records`, as its next generation.
    fn rewrite(&self, id: ShardId, records: &[KeyRecord]) -> Result<()> {
        let units: Vec<Vec<u8>> = records.iter().map(|r| r.encode().to_vec()).collect();
        self.rewrite_units(FileId::Shard(id), &units)
    }

    /// Rewrites the seals ledger with one seal per pending scope.
    fn rewrite_seals(&self) -> Result<()> {
        let pending = self.loaded.read().seals.clone();
        let mut scopes: Vec<_> = pending.into_iter().collect();
        scopes.sort();
        let units: Vec<Vec<u8>> = scopes
            .into_iter()
            .map(|(scope, deadline_us)| {
                SealRecord {
                    scope,
                    op: SEAL_OP_SEAL,
                    deadline_us,
                }
                .encode()
                .to_vec()
            })
            .collect();
        self.rewrite_units(FileId::Seals, &units)
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

    /// Reads the subject shard holding `subject`, once.
    fn load_subject_shard(&self, tenant: TenantId, subject: SubjectId) -> Result<()> {
        self.load_shard(subject_shard(tenant, subject))
    }

    /// Reads a subject shard, once: verified and checked against its tenant
    /// shard's anchor. A torn append at its end is cut off holding `write`,
    /// after reading it again: until then it may be an append in flight.
    fn load_shard(&self, id: ShardId) -> Result<()> {
        debug_assert_eq!(id.kind, SHARD_KIND_SUBJECTS);
        let key = (TenantId(id.tenant), id.shard);
        if self.loaded.read().subject_shards.contains(&key) {
            return Ok(());
        }
        let mut read = self.read_shard_checked(&self.loaded.read(), id)?;
        let _writing = read.torn.is_some().then(|| self.write.lock());
        if _writing.is_some() {
            read = self.read_shard_checked(&self.loaded.read(), id)?;
        }
        let mut loaded = self.loaded.write();
        if loaded.subject_shards.contains(&key) {
            return Ok(()); // another reader got there first
        }
        // The shard counts as loaded only once all of it is in memory: a
        // failed load (a record that does not unwrap, a repair that fails)
        // leaves nothing behind, so no later change takes it for empty.
        let taken = read
            .content
            .iter()
            .flat_map(|d| &d.records)
            .try_for_each(|record| self.insert_subject_record(&mut loaded, id, record))
            .and_then(|()| self.take(&mut loaded, &mut read));
        if let Err(e) = taken {
            let in_shard = |s: &SubjectId| s.0 % u64::from(SUBJECT_SHARDS) == u64::from(id.shard);
            loaded
                .subjects
                .retain(|(t, s), _| *t != key.0 || !in_shard(s));
            loaded.chains.remove(&FileId::Shard(id));
            return Err(e);
        }
        loaded.subject_shards.insert(key);
        Ok(())
    }

    fn insert_tenant_record(
        &self,
        loaded: &mut Loaded,
        id: ShardId,
        record: &KeyRecord,
    ) -> Result<()> {
        let tenant = TenantId(record.id);
        if let Some((shard, anchor)) = record.as_anchor() {
            if !loaded.tenants.get(&tenant).is_some_and(|t| t.destroyed) {
                loaded.subject_anchors.insert((tenant, shard), anchor);
            }
            return Ok(());
        }
        let gate = loaded.gate(Scope::tenant(tenant));
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
                [Arc::clone(&gate), gate],
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
        let scope = Scope::subject(tenant, subject);
        let gates = [loaded.gate(scope), loaded.gate(Scope::tenant(tenant))];
        let key = ScopeKey::derive(scope, record.version, &root, gates);
        loaded
            .subjects
            .insert((tenant, subject), SubjectSlot::Key(Arc::new(key)));
        Ok(())
    }

    fn key_auth_error(&self, id: ShardId) -> Error {
        Error::corruption(self.shard_path(id), 0, CorruptionKind::KeyAuth)
    }

    fn append_seal(&self, scope: Scope, op: u8, deadline_us: u64) -> Result<()> {
        let record = SealRecord {
            scope,
            op,
            deadline_us,
        };
        self.append_units(FileId::Seals, &[record.encode().to_vec()])
    }

    /// Appends records to a shard, in one write, and syncs it.
    fn append(&self, id: ShardId, records: &[KeyRecord]) -> Result<()> {
        let units: Vec<Vec<u8>> = records.iter().map(|r| r.encode().to_vec()).collect();
        self.append_units(FileId::Shard(id), &units)
    }

    fn subjects_dir(&self, tenant: TenantId) -> PathBuf {
        subjects_dir_in(&self.dir, tenant)
    }

    fn shard_path(&self, id: ShardId) -> PathBuf {
        shard_path_in(&self.dir, id)
    }
}

/// A tenant's subject shards' folder in keyring folder `dir`.
fn subjects_dir_in(dir: &Path, tenant: TenantId) -> PathBuf {
    dir.join(KEYRING_SUBJECTS_DIR)
        .join(format!("{:016x}", tenant.0))
}

/// A shard's file in keyring folder `dir` (FORMAT §1).
fn shard_path_in(dir: &Path, id: ShardId) -> PathBuf {
    match id.kind {
        SHARD_KIND_TENANTS => dir
            .join(KEYRING_TENANTS_DIR)
            .join(format!("{:03}{KEYRING_SHARD_SUFFIX}", id.shard)),
        _ => subjects_dir_in(dir, TenantId(id.tenant))
            .join(format!("{:04}{KEYRING_SHARD_SUFFIX}", id.shard)),
    }
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
    subject_shard_id(tenant, (subject.0 % u64::from(SUBJECT_SHARDS)) as u32)
}

fn subject_shard_id(tenant: TenantId, shard: u32) -> ShardId {
    ShardId {
        kind: SHARD_KIND_SUBJECTS,
        tenant: tenant.0,
        shard,
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
        let files = Files::default();
        let manifest = match Keyring::read_manifest(&files, dir).unwrap() {
            Some(manifest) => manifest,
            None => {
                let (manifest, _) = Manifest::create(Kdf::None, &master, [0; 16]);
                Keyring::create(&files, dir, &manifest, &root).unwrap();
                Keyring::read_manifest(&files, dir).unwrap().unwrap()
            }
        };
        Keyring::open(&files, dir, manifest, root, Arc::new(SystemClock)).unwrap()
    }

    #[test]
    fn a_forged_ledger_at_the_last_generation_is_an_error_not_a_panic() {
        // Found by the `seals` fuzz target: a ledger (MAC'd with the root
        // key) at the largest generation, holding a finished seal, made the
        // compaction at open assert on its next generation.
        let dir = tempfile::tempdir().unwrap();
        drop(keyring(dir.path()));
        let root = RootKey::from_secret(SecretKey::from_bytes([9; 32]));
        let scope = Scope::tenant(TenantId(3));
        let records: Vec<[u8; crate::format::SEALS_RECORD_LEN_V1]> = [SEAL_OP_SEAL, SEAL_OP_DONE]
            .map(|op| {
                seals::SealRecord {
                    scope,
                    op,
                    deadline_us: 5,
                }
                .encode()
            })
            .to_vec();
        let (bytes, _) = custody::build(
            &ChainKey::new(&root),
            crate::format::KEYRING_GENERATION_MAX,
            seals::header_fields(crate::format::KEYRING_GENERATION_MAX),
            records.iter().map(|r| &r[..]),
        );
        let path = dir.path().join(crate::format::SEALS_FILE);
        std::fs::write(&path, &bytes).unwrap();
        let files = Files::default();
        let manifest = Keyring::read_manifest(&files, dir.path()).unwrap().unwrap();
        let opened = Keyring::open(&files, dir.path(), manifest, root, Arc::new(SystemClock));
        assert!(
            matches!(
                &opened,
                Err(Error::Corruption {
                    kind: CorruptionKind::Malformed(_),
                    ..
                })
            ),
            "{:?}",
            opened.err()
        );
        assert_eq!(
            std::fs::read(&path).unwrap(),
            bytes,
            "the file stays as it was"
        );
    }

    #[test]
    fn destroyed_keys_leave_no_copy_in_the_keyring_and_stay_destroyed() {
        let dir = tempfile::tempdir().unwrap();
        let (tenant, other) = (Scope::tenant(TenantId(1)), Scope::tenant(TenantId(257)));
        let subject = Scope::subject(TenantId(2), SubjectId(5));
        let other_token = {
            let k = keyring(dir.path());
            k.current_key_or_create(tenant, None).unwrap();
            k.current_key_or_create(subject, None).unwrap();
            let o = k.current_key_or_create(other, None).unwrap();
            for scope in [tenant, subject] {
                k.seal(scope, 5, false).unwrap();
                assert!(!k.destroy_if_due(scope, 4).unwrap(), "not due yet");
                assert!(k.destroy_if_due(scope, 5).unwrap());
            }
            assert!(matches!(k.current_key(tenant), Err(Error::Shredded { .. })));
            o.lease().unwrap().token(b"x")
        };
        let k = keyring(dir.path());
        assert_eq!(k.state(tenant).unwrap(), ScopeState::Shredded);
        assert_eq!(k.state(subject).unwrap(), ScopeState::Shredded);
        assert!(matches!(
            k.current_key_or_create(subject, None),
            Err(Error::Shredded { .. })
        ));
        assert_eq!(
            k.current_key(other)
                .unwrap()
                .unwrap()
                .lease()
                .unwrap()
                .token(b"x"),
            other_token
        );
        assert!(k.lookup(tenant, None).unwrap().is_none(), "no key left");
        assert!(k.lookup(subject, None).unwrap().is_none(), "no key left");
        // No shard file holds a key record for them any more.
        let tenant_shard = std::fs::read(k.shard_path(tenant_shard_of(TenantId(1)))).unwrap();
        let id = tenant_shard_of(TenantId(1));
        let decoded = shard::decode(Path::new("t"), &tenant_shard, id, &k.chain_key, false);
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
            k.current_key_or_create(scope, None).unwrap();
            k.seal(scope, 1234, false).unwrap();
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

    #[test]
    fn an_anchor_pass_writes_a_manifest_only_for_what_moved_and_keeps_the_rest_marked() {
        let dir = tempfile::tempdir().unwrap();
        let k = keyring(dir.path());
        let epoch = k.epoch();
        k.anchor_pending().unwrap();
        assert_eq!(k.epoch(), epoch, "nothing moved, no manifest");
        k.current_key_or_create(Scope::subject(TenantId(2), SubjectId(5)), None)
            .unwrap();
        k.anchor_pending().unwrap();
        assert_eq!(k.epoch(), epoch + 1, "one pass, one manifest");
        assert!(k.loaded.read().unanchored.is_empty());
        k.anchor_pending().unwrap();
        assert_eq!(k.epoch(), epoch + 1);

        // A subject shard marked while the manifest is written (a load does
        // not take `write`) stays marked for its tenant shard's next anchor.
        let subject_file = FileId::Shard(subject_shard(TenantId(2), SubjectId(5)));
        {
            let mut loaded = k.loaded.write();
            loaded.unanchored.insert(FileId::Seals);
            loaded.unanchored.insert(subject_file);
        }
        let _writing = k.write.lock();
        k.write_manifest_if_behind().unwrap();
        assert_eq!(k.epoch(), epoch + 2);
        let marked: Vec<FileId> = k.loaded.read().unanchored.iter().copied().collect();
        assert_eq!(marked, vec![subject_file]);
    }
}
