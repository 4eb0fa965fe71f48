//! How the keyring's files are read, appended to, rewritten and anchored.
//!
//! Every file is a MAC chain (`custody.rs`) whose state the keyring keeps in
//! memory (`Loaded::chains`) from the moment it is read: an append continues
//! the chain, a rewrite starts the next generation. A file whose chain has
//! moved past what its parent records is *unanchored* until the next anchor
//! pass ([`Keyring::anchor`]) records it: at once after every destruction,
//! rewrap, retirement and seal-ledger change (they remove or lift something,
//! and a rollback must not bring it back), and within one maintenance pass
//! (and at close) after key creations (whose loss the engine's keyless-data
//! check catches meanwhile: a scope whose key is gone but whose data is not is
//! `MissingKey`).
//!
//! # Invariants
//! - Every change to a file happens holding `Keyring::write`, so a reader
//!   that finds a partial record at a file's end takes that lock and reads
//!   again before it cuts anything: an append in flight is never mistaken for
//!   a torn one.
//! - A parent is written after its child (subject shard, then its tenant
//!   shard's anchor record, then the manifest).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use super::custody::{self, Anchor, Chain, Standing};
use super::seals::{self, Ledger};
use super::shard::{self, DecodedShard, KeyRecord, ShardId};
use super::{FileId, Keyring, Loaded, tenant_shard, tenant_shard_of};
use crate::error::{CorruptionKind, Error, Result};
use crate::format::{
    KEYRING_GENERATION_MAX, KEYRING_MANIFEST_FILE, KEYRING_RECORD_LEN, KEYRING_SHARD_HEADER_LEN,
    KEYRING_VERSION, RECORD_ANCHOR, SEALS_FILE, SEALS_HEADER_LEN, SEALS_RECORD_LEN,
    SHARD_KIND_SUBJECTS, SHARD_KIND_TENANTS, TENANT_SHARDS,
};
use crate::fs::WritableFile;
use crate::scope::TenantId;

/// Files one [`Keyring::append_many`] holds open at once at most.
const FILES_OPEN_MAX: usize = 64;

/// An append written and not yet synced.
struct PendingAppend {
    file: FileId,
    handle: Box<dyn WritableFile>,
    /// The file's length before it.
    len: u64,
    /// The file's chain after it.
    anchor: Anchor,
}

/// Superseded anchor records a tenant shard may hold before the anchor pass
/// rewrites it without them (beyond as many as it has live records).
const STALE_ANCHORS_MAX: usize = 64;

impl Keyring {
    pub(super) fn path_of(&self, file: FileId) -> PathBuf {
        match file {
            FileId::Seals => self.dir.join(SEALS_FILE),
            FileId::Shard(id) => self.shard_path(id),
        }
    }

    /// The anchor a file's parent holds for it (for a subject shard, as far
    /// as its tenant shard has been read).
    pub(super) fn anchored(&self, loaded: &Loaded, file: FileId) -> Anchor {
        match file {
            FileId::Seals => self.manifest.lock().seals,
            FileId::Shard(id) if id.kind == SHARD_KIND_TENANTS => {
                self.manifest.lock().tenants[id.shard as usize]
            }
            FileId::Shard(id) => loaded
                .subject_anchors
                .get(&(TenantId(id.tenant), id.shard))
                .copied()
                .unwrap_or_default(),
        }
    }

    /// Reads shard `id`, verifies it (CRCs, MAC chain, header) and checks
    /// it against its anchor. A missing shard has no records. Changes no
    /// file: a torn append is reported in `valid_len`.
    pub(super) fn read_shard_checked(
        &self,
        loaded: &Loaded,
        id: ShardId,
    ) -> Result<Read<DecodedShard>> {
        let file = FileId::Shard(id);
        let path = self.path_of(file);
        let bytes = self.files.read_if_exists(&path)?;
        let decoded = match &bytes {
            Some(bytes) => Some(shard::decode(&path, bytes, id, &self.chain_key, false)?),
            None => None,
        };
        let chain = decoded.as_ref().and_then(|d| d.chain.clone());
        let standing = custody::check(&path, &self.anchored(loaded, file), chain.as_ref())?;
        let torn = match (&bytes, &decoded) {
            (Some(bytes), Some(d)) if d.valid_len < bytes.len() => {
                Some(bytes[..d.valid_len].to_vec())
            }
            _ => None,
        };
        Ok(Read {
            file,
            content: decoded,
            chain,
            standing,
            torn,
        })
    }

    /// Reads the seals ledger and checks it against the manifest's anchor.
    pub(super) fn read_seals_checked(&self, loaded: &Loaded) -> Result<Read<Ledger>> {
        let path = self.path_of(FileId::Seals);
        let bytes = self.files.read_if_exists(&path)?;
        let ledger = match &bytes {
            Some(bytes) => Some(seals::decode(&path, bytes, &self.chain_key, false)?),
            None => None,
        };
        let chain = ledger.as_ref().and_then(|l| l.chain.clone());
        let standing =
            custody::check(&path, &self.anchored(loaded, FileId::Seals), chain.as_ref())?;
        Ok(Read {
            file: FileId::Seals,
            content: ledger,
            chain,
            standing,
            torn: None,
        })
    }

    /// Takes what a checked read found into memory: its chain, and whether
    /// its parent must catch up. A torn append is cut off (an atomic rewrite
    /// of the whole records, same generation, same chain). The caller holds
    /// `write` (or is `open`, before anyone else can).
    pub(super) fn take<T>(&self, loaded: &mut Loaded, read: &mut Read<T>) -> Result<()> {
        if let Some(valid) = read.torn.take() {
            let path = self.path_of(read.file);
            tracing::warn!(file = %path.display(), "dropping a torn append at the end of a keyring file");
            self.files.write_atomic(&path, &valid)?;
        }
        match &read.chain {
            Some(chain) => loaded.chains.insert(read.file, chain.anchor()),
            None => loaded.chains.remove(&read.file),
        };
        if read.standing == Standing::Ahead {
            loaded.unanchored.insert(read.file);
        }
        Ok(())
    }

    /// Appends records (each ending in its CRC) to a loaded file, continuing
    /// its chain, and syncs it; a missing file is written whole, at
    /// generation 1. A failed append is cut off again, so the file stays a
    /// chain of whole records. The caller holds `write`.
    pub(super) fn append_units(&self, file: FileId, units: &[Vec<u8>]) -> Result<()> {
        let mut result = None;
        self.append_many(&[(file, units.to_vec())], |_, landed| result = Some(landed));
        result.expect("one result per file")
    }

    /// [`Keyring::append_units`] to several files at once: every append is
    /// written, then the files are synced together on the keyring's sync
    /// threads (concurrent syncs of different files share the disk's
    /// flushes), and each is taken as appended, or cut off again, as its
    /// sync returns: `landed(i, result)` is called then for `appends[i]`,
    /// once per file, in the order the syncs return. At most
    /// [`FILES_OPEN_MAX`] files at a time. The caller holds `write`.
    pub(super) fn append_many(
        &self,
        appends: &[(FileId, Vec<Vec<u8>>)],
        mut landed: impl FnMut(usize, Result<()>),
    ) {
        debug_assert!(
            appends
                .iter()
                .enumerate()
                .all(|(i, (f, _))| !appends[..i].iter().any(|(g, _)| g == f)),
            "one append per file"
        );
        for (c, chunk) in appends.chunks(FILES_OPEN_MAX).enumerate() {
            let first = c * FILES_OPEN_MAX;
            let mut pending = Vec::new();
            for (i, (file, units)) in chunk.iter().enumerate() {
                match self.write_units(*file, units) {
                    Ok(Some(append)) => pending.push((first + i, append)),
                    Ok(None) => landed(first + i, Ok(())),
                    Err(e) => landed(first + i, Err(e)),
                }
            }
            self.sync_all(pending, |i, append, synced| {
                landed(i, self.finish_append(append, synced));
            });
        }
    }

    /// Syncs every written append, the first on this thread, the others on
    /// the sync threads (or here too, if there are none), calling `synced`
    /// for each as it returns.
    fn sync_all(
        &self,
        pending: Vec<(usize, PendingAppend)>,
        mut synced: impl FnMut(usize, PendingAppend, std::io::Result<()>),
    ) {
        let count = pending.len();
        let (sender, receiver) = std::sync::mpsc::channel();
        let mut here = None;
        for (i, append) in pending {
            if here.is_none() {
                here = Some((i, append));
                continue;
            }
            let sender = sender.clone();
            let job: crate::pool::Job = Box::new(move || {
                let result = append.handle.sync_data();
                // The receiver waits for every result.
                let _ = sender.send((i, append, result));
            });
            if let Err(job) = self.syncer.submit(job) {
                job();
            }
        }
        drop(sender);
        let mut done = 0;
        if let Some((i, append)) = here {
            let result = append.handle.sync_data();
            synced(i, append, result);
            done += 1;
        }
        for (i, append, result) in receiver {
            synced(i, append, result);
            done += 1;
        }
        assert_eq!(done, count, "every append synced once");
    }

    /// Writes an append without syncing it (`None`: the file was missing,
    /// and is now written whole and synced).
    fn write_units(&self, file: FileId, units: &[Vec<u8>]) -> Result<Option<PendingAppend>> {
        let path = self.path_of(file);
        let current = self.loaded.read().chains.get(&file).copied();
        let Some(current) = current else {
            // No chain in memory means no file: one there was not read, and
            // writing a new one over it would lose its records.
            if self.files.is_file(&path)? {
                return Err(Error::corruption(
                    path,
                    0,
                    CorruptionKind::Malformed("a keyring file not read before a change"),
                ));
            }
            return self.rewrite_units(file, units).map(|()| None);
        };
        let mut bytes = Vec::new();
        let mut head = current.head;
        for unit in units {
            let mut unit = unit.clone();
            head = custody::seal_record(&self.chain_key, &head, &mut unit);
            bytes.extend_from_slice(&unit);
        }
        let handle = self.files.open_append(&path)?;
        let len = handle.size().map_err(|e| Error::io(&path, e))?;
        let pending = PendingAppend {
            file,
            handle,
            len,
            anchor: Anchor {
                generation: current.generation,
                count: current.count + units.len() as u64,
                head,
            },
        };
        if let Err(source) = pending.handle.append(&bytes) {
            return Err(self
                .finish_append(pending, Err(source))
                .expect_err("failed"));
        }
        Ok(Some(pending))
    }

    /// Takes a synced append into the file's chain, or cuts a failed one
    /// off again.
    fn finish_append(&self, pending: PendingAppend, synced: std::io::Result<()>) -> Result<()> {
        let PendingAppend {
            file,
            handle,
            len,
            anchor,
        } = pending;
        if let Err(source) = synced {
            let cut = handle.set_len(len).and_then(|()| handle.sync_data());
            if cut.is_err() {
                self.resync(file);
            }
            return Err(Error::io(self.path_of(file), source));
        }
        let mut loaded = self.loaded.write();
        loaded.chains.insert(file, anchor);
        loaded.unanchored.insert(file);
        Ok(())
    }

    /// Rewrites a file atomically with `units` (each ending in its CRC), as
    /// its next generation. The caller holds `write`.
    pub(super) fn rewrite_units(&self, file: FileId, units: &[Vec<u8>]) -> Result<()> {
        let path = self.path_of(file);
        let generation = self
            .loaded
            .read()
            .chains
            .get(&file)
            .map_or(1, |c| c.generation + 1);
        if generation > KEYRING_GENERATION_MAX {
            // Only a forged file (with the root key: its MAC checks) stands
            // at the maximum; its next generation would be refused by every
            // reader, so it is not written, and the file stays as it is.
            return Err(Error::corruption(
                path,
                0,
                CorruptionKind::Malformed("a generation at its maximum cannot be rewritten"),
            ));
        }
        let header = match file {
            FileId::Seals => seals::header_fields(generation),
            FileId::Shard(id) => id.header_fields(KEYRING_VERSION, generation),
        };
        let (bytes, chain) = custody::build(
            &self.chain_key,
            generation,
            header,
            units.iter().map(|u| &u[..]),
        );
        self.files
            .create_dir_durable(path.parent().expect("keyring files live in a folder"))?;
        if let Err(e) = self.files.write_atomic(&path, &bytes) {
            // The rename may have happened before the error (a failed folder
            // sync): the next change must continue the file's real chain.
            self.resync(file);
            return Err(e);
        }
        let mut loaded = self.loaded.write();
        loaded.chains.insert(file, chain.anchor());
        loaded.unanchored.insert(file);
        Ok(())
    }

    /// After a failed write, brings the in-memory chain of `file` back to
    /// what the file holds (a rename that happened before the error, bytes
    /// an append left that could not be cut), cutting a partial record off,
    /// so that the next change continues the file's real chain instead of
    /// breaking it. Best effort: a failure here is logged, and the next open
    /// reads the file as it is.
    fn resync(&self, file: FileId) {
        let path = self.path_of(file);
        let (header_len, record_len) = match file {
            FileId::Seals => (SEALS_HEADER_LEN, SEALS_RECORD_LEN),
            FileId::Shard(_) => (KEYRING_SHARD_HEADER_LEN, KEYRING_RECORD_LEN),
        };
        let synced = (|| -> Result<Option<Anchor>> {
            let Some(bytes) = self.files.read_if_exists(&path)? else {
                return Ok(None);
            };
            let read = custody::read(&path, &bytes, header_len, record_len, &self.chain_key)?;
            if read.valid_len < bytes.len() {
                self.files.write_atomic(&path, &bytes[..read.valid_len])?;
            }
            Ok(Some(read.chain.anchor()))
        })();
        let mut loaded = self.loaded.write();
        match synced {
            Ok(Some(anchor)) => {
                loaded.chains.insert(file, anchor);
                loaded.unanchored.insert(file);
            }
            Ok(None) => {
                loaded.chains.remove(&file);
            }
            Err(e) => {
                tracing::error!(file = %path.display(), error = %e, "keyring: cannot read a file back after a failed write")
            }
        }
    }

    /// Forgets a file removed with its folder (a destroyed tenant's subject
    /// shards): nothing anchors it any more.
    pub(super) fn forget_subject_files(&self, loaded: &mut Loaded, tenant: TenantId) {
        let theirs = |f: &FileId| f.is_subject_shard(Some(tenant));
        loaded.chains.retain(|f, _| !theirs(f));
        loaded.unanchored.retain(|f| !theirs(f));
        loaded.subject_anchors.retain(|(t, _), _| *t != tenant);
    }

    /// Records every unanchored file in its parent: subject shards in their
    /// tenant shards (anchor records), then tenant shards and the seals
    /// ledger in a new manifest. The caller holds `write`.
    pub(super) fn anchor(&self) -> Result<()> {
        let pending: Vec<FileId> = self.loaded.read().unanchored.iter().copied().collect();
        let mut by_tenant_shard: BTreeMap<ShardId, Vec<(TenantId, u32, Anchor)>> = BTreeMap::new();
        for file in &pending {
            let FileId::Shard(id) = *file else { continue };
            if id.kind != SHARD_KIND_SUBJECTS {
                continue;
            }
            let tenant = TenantId(id.tenant);
            let mut loaded = self.loaded.write();
            let anchor = loaded.chains.get(file).copied();
            let destroyed = loaded.tenants.get(&tenant).is_some_and(|t| t.destroyed);
            let Some(anchor) = anchor.filter(|_| !destroyed) else {
                // Nothing to anchor: the tenant's folder is gone with its
                // key, or the file was removed.
                loaded.unanchored.remove(file);
                continue;
            };
            by_tenant_shard
                .entry(tenant_shard_of(tenant))
                .or_default()
                .push((tenant, id.shard, anchor));
        }
        for (parent, anchors) in by_tenant_shard {
            let records: Vec<Vec<u8>> = anchors
                .iter()
                .map(|(t, shard, a)| KeyRecord::anchor(t.0, *shard, a).encode().to_vec())
                .collect();
            self.append_anchor_records(parent, &records)?;
            let mut loaded = self.loaded.write();
            for (tenant, shard, anchor) in anchors {
                loaded.subject_anchors.insert((tenant, shard), anchor);
                loaded
                    .unanchored
                    .remove(&FileId::Shard(super::subject_shard_id(tenant, shard)));
            }
        }
        self.write_manifest_if_behind()
    }

    /// Appends anchor records to a tenant shard, or rewrites it without the
    /// anchors they supersede once those pile up.
    fn append_anchor_records(&self, parent: ShardId, records: &[Vec<u8>]) -> Result<()> {
        let count = self
            .loaded
            .read()
            .chains
            .get(&FileId::Shard(parent))
            .map_or(0, |c| c.count);
        if (count as usize) < STALE_ANCHORS_MAX {
            return self.append_units(FileId::Shard(parent), records);
        }
        let mut kept = self.shard_records(parent)?;
        kept.extend(records.iter().filter_map(|r| KeyRecord::decode(r)));
        let kept = without_stale_anchors(kept);
        if kept.len() + STALE_ANCHORS_MAX > count as usize + records.len() {
            return self.append_units(FileId::Shard(parent), records);
        }
        let units: Vec<Vec<u8>> = kept.iter().map(|r| r.encode().to_vec()).collect();
        self.rewrite_units(FileId::Shard(parent), &units)
    }

    /// The records of a loaded shard as on disk (the caller holds `write`,
    /// so nobody appends meanwhile).
    pub(super) fn shard_records(&self, id: ShardId) -> Result<Vec<KeyRecord>> {
        let path = self.shard_path(id);
        let Some(bytes) = self.files.read_if_exists(&path)? else {
            return Ok(Vec::new());
        };
        Ok(shard::decode(&path, &bytes, id, &self.chain_key, false)?.records)
    }

    /// Writes a new manifest if a tenant shard or the seals ledger has moved
    /// past what the manifest records.
    pub(super) fn write_manifest_if_behind(&self) -> Result<()> {
        let mut loaded = self.loaded.write();
        if loaded.unanchored.iter().all(|f| f.is_subject_shard(None)) {
            return Ok(());
        }
        let mut manifest = self.manifest.lock();
        let mut next = manifest.next();
        next.seals = loaded
            .chains
            .get(&FileId::Seals)
            .copied()
            .unwrap_or_default();
        for shard in 0..TENANT_SHARDS {
            let file = FileId::Shard(tenant_shard(shard));
            next.tenants[shard as usize] = loaded.chains.get(&file).copied().unwrap_or_default();
        }
        self.files.write_atomic(
            &self.dir.join(KEYRING_MANIFEST_FILE),
            &next.encode(&self.chain_key),
        )?;
        tracing::debug!(epoch = next.epoch, "keyring: manifest anchors its files");
        *manifest = next;
        // Only what the manifest anchors: a subject shard marked meanwhile
        // (a load, which does not take `write`, found it ahead) waits for
        // the next pass.
        loaded.unanchored.retain(|f| f.is_subject_shard(None));
        Ok(())
    }
}

/// A keyring file as read and checked, not yet taken into memory.
pub(super) struct Read<T> {
    pub(super) file: FileId,
    /// `None`: no file.
    pub(super) content: Option<T>,
    pub(super) chain: Option<Chain>,
    pub(super) standing: Standing,
    /// The whole records, when a torn append follows them.
    pub(super) torn: Option<Vec<u8>>,
}

/// The records without anchor records superseded by a later one for the
/// same subject shard.
fn without_stale_anchors(records: Vec<KeyRecord>) -> Vec<KeyRecord> {
    let mut last: BTreeMap<(u64, u32), usize> = BTreeMap::new();
    for (i, r) in records.iter().enumerate() {
        if let Some((shard, _)) = r.as_anchor() {
            last.insert((r.id, shard), i);
        }
    }
    let keep: BTreeSet<usize> = last.into_values().collect();
    records
        .into_iter()
        .enumerate()
        .filter(|(i, r)| r.kind != RECORD_ANCHOR || keep.contains(i))
        .map(|(_, r)| r)
        .collect()
}
