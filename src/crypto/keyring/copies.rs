//! What the archive's copies of the keyring need from it: which files
//! exist and how far each has come, a file's bytes as of one version, the
//! key versions a rotation is about to retire, and (for a reader of an
//! archive) retired versions put back in memory.
//!
//! A file's *version* orders its states: (generation, records) for a shard
//! or the seals ledger (its chain's anchor: appends raise the count, a
//! rewrite raises the generation), (epoch, master generation) for the
//! manifest. Two copies of one file at one version hold the same bytes.

use std::path::{Path, PathBuf};

use super::custody::ChainKey;
use super::shard::{self, KeyRecord};
use super::{
    FileId, Keyring, shard_path_in, subject_shard, subject_shard_id, tenant_shard, tenant_shard_of,
};
use crate::codec;
use crate::crypto::root::RootKey;
use crate::error::{CorruptionKind, Error, Result};
use crate::format::{
    KEYRING_MANIFEST_FILE, KEYRING_SHARD_HEADER_LEN, KEYRING_SHARD_MAGIC, KEYRING_VERSION,
    RECORD_KEY, SEALS_FILE, SEALS_MAGIC, SHARD_KIND_SUBJECTS, SHARD_KIND_TENANTS, SUBJECT_SHARDS,
    TENANT_SHARDS, TENANT_TOKEN_VERSION,
};
use crate::fs::Files;
use crate::scope::{Scope, TenantId};

/// A keyring file, in the order copies are put: children before the
/// parents that anchor them, so the newest copies are always a keyring
/// that opens (no child behind its parent's anchor).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum KeyringFile {
    Subjects { tenant: TenantId, shard: u32 },
    Tenants(u32),
    Seals,
    Manifest,
}

impl KeyringFile {
    /// The file that holds `scope`'s keys.
    pub(crate) fn home_of(scope: Scope) -> KeyringFile {
        match scope.subject {
            Some(subject) => KeyringFile::Subjects {
                tenant: scope.tenant,
                shard: subject_shard(scope.tenant, subject).shard,
            },
            None => KeyringFile::Tenants(tenant_shard_of(scope.tenant).shard),
        }
    }
}

/// How far a file has come (see the module's doc).
pub(crate) type FileVersion = (u64, u64);

/// What [`Keyring::snapshot_for_archive`] returns.
pub(crate) struct ArchiveSnapshot {
    /// (file, its version, its bytes), children before parents.
    pub(crate) copies: Vec<(KeyringFile, FileVersion, Vec<u8>)>,
    pub(crate) destroyed_tenants: Vec<TenantId>,
}

impl Keyring {
    /// Every keyring file there is, with its version: the manifest, the
    /// ledger and tenant shards, and every subject shard of a tenant not
    /// destroyed (from its chain if read since open, else its anchor).
    pub(crate) fn files_for_archive(&self) -> Vec<(KeyringFile, FileVersion)> {
        let loaded = self.loaded.read();
        let mut out = Vec::new();
        for (file, anchor) in &loaded.chains {
            if anchor.is_none() {
                continue;
            }
            let file = match *file {
                FileId::Seals => KeyringFile::Seals,
                FileId::Shard(id) if id.kind == SHARD_KIND_TENANTS => {
                    KeyringFile::Tenants(id.shard)
                }
                FileId::Shard(id) => KeyringFile::Subjects {
                    tenant: TenantId(id.tenant),
                    shard: id.shard,
                },
            };
            out.push((file, (anchor.generation, anchor.count)));
        }
        for (&(tenant, shard), anchor) in &loaded.subject_anchors {
            if !anchor.is_none()
                && !loaded
                    .chains
                    .contains_key(&FileId::Shard(subject_shard_id(tenant, shard)))
            {
                out.push((
                    KeyringFile::Subjects { tenant, shard },
                    (anchor.generation, anchor.count),
                ));
            }
        }
        out.retain(|(file, _)| match file {
            KeyringFile::Subjects { tenant, .. } => {
                !loaded.tenants.get(tenant).is_some_and(|t| t.destroyed)
            }
            _ => true,
        });
        let manifest = self.manifest.lock();
        out.push((
            KeyringFile::Manifest,
            (manifest.epoch, u64::from(manifest.master_generation)),
        ));
        out.sort();
        out
    }

    /// One consistent view of the keyring for the archive, taken while no
    /// change is in flight: the bytes and version of every file for which
    /// `wanted(file, version)` holds (children first), and the destroyed
    /// tenants. A pass that puts these copies (children first) and then
    /// deletes the destroyed tenants' folders never leaves a child behind
    /// its parent's anchor, nor a tenant's folders gone before the copy of
    /// its tombstone is up.
    pub(crate) fn snapshot_for_archive(
        &self,
        mut wanted: impl FnMut(KeyringFile, FileVersion) -> bool,
    ) -> Result<ArchiveSnapshot> {
        let _writing = self.write.lock();
        let mut copies = Vec::new();
        for (file, version) in self.files_for_archive() {
            if !wanted(file, version) {
                continue;
            }
            if let Some((version, bytes)) = self.copy_for_archive(file)? {
                copies.push((file, version, bytes));
            }
        }
        Ok(ArchiveSnapshot {
            copies,
            destroyed_tenants: self.destroyed_tenants(),
        })
    }

    /// File `file`'s bytes and their version (the caller holds `write`);
    /// `None` if it does not exist (a destroyed tenant's subject shard).
    fn copy_for_archive(&self, file: KeyringFile) -> Result<Option<(FileVersion, Vec<u8>)>> {
        let path = match file {
            KeyringFile::Manifest => self.dir.join(KEYRING_MANIFEST_FILE),
            KeyringFile::Seals => self.path_of(FileId::Seals),
            KeyringFile::Tenants(shard) => self.shard_path(tenant_shard(shard)),
            KeyringFile::Subjects { tenant, shard } => {
                self.shard_path(subject_shard_id(tenant, shard))
            }
        };
        let Some(bytes) = self.files.read_if_exists(&path)? else {
            return Ok(None);
        };
        let version = match file {
            KeyringFile::Manifest => {
                let manifest = self.manifest.lock();
                (manifest.epoch, u64::from(manifest.master_generation))
            }
            KeyringFile::Seals => {
                let loaded = self.loaded.read();
                let anchor = loaded
                    .chains
                    .get(&FileId::Seals)
                    .copied()
                    .unwrap_or_default();
                (anchor.generation, anchor.count)
            }
            KeyringFile::Tenants(shard) => {
                self.shard_version(&path, &bytes, tenant_shard(shard))?
            }
            KeyringFile::Subjects { tenant, shard } => {
                self.shard_version(&path, &bytes, subject_shard_id(tenant, shard))?
            }
        };
        Ok(Some((version, bytes)))
    }

    fn shard_version(
        &self,
        path: &std::path::Path,
        bytes: &[u8],
        id: shard::ShardId,
    ) -> Result<FileVersion> {
        let decoded = shard::decode(path, bytes, id, &self.chain_key, false)?;
        let anchor = decoded
            .chain
            .expect("format 2 shards have a chain")
            .anchor();
        Ok((anchor.generation, anchor.count))
    }

    /// Every tenant destroyed (its tombstone read).
    pub(crate) fn destroyed_tenants(&self) -> Vec<TenantId> {
        let loaded = self.loaded.read();
        let mut out: Vec<TenantId> = loaded
            .tenants
            .iter()
            .filter(|(_, t)| t.destroyed)
            .map(|(id, _)| *id)
            .collect();
        out.sort();
        out
    }

    /// The records of `tenant`'s sealing versions below `below` (what
    /// [`Keyring::retire_versions_below`] would drop), encoded, by version.
    pub(crate) fn versions_below(
        &self,
        tenant: TenantId,
        below: u32,
    ) -> Result<Vec<(u32, Vec<u8>)>> {
        let _writing = self.write.lock();
        Ok(self
            .shard_records(tenant_shard_of(tenant))?
            .into_iter()
            .filter(|r| {
                r.id == tenant.0
                    && r.kind == RECORD_KEY
                    && r.version != TENANT_TOKEN_VERSION
                    && r.version < below
            })
            .map(|r| (r.version, r.encode().to_vec()))
            .collect())
    }

    /// Puts back a tenant's sealing version that a rotation retired (a
    /// record [`Keyring::versions_below`] gave, read from `source`), in
    /// memory only: a reader of an archive opens records sealed before the
    /// rotation with it. Nothing for a destroyed tenant, or a version
    /// already there.
    pub(crate) fn add_retired(&self, record: &[u8], source: &str) -> Result<()> {
        let record = retired_record(record, source)?;
        let tenant = TenantId(record.id);
        let mut loaded = self.loaded.write();
        if !self.takes_retired(&loaded, &record) {
            return Ok(());
        }
        self.insert_tenant_record(&mut loaded, tenant_shard_of(tenant), &record)
    }

    /// Puts back a retired sealing version as [`Keyring::add_retired`]
    /// does, durably: appended to its tenant's shard, which then has more
    /// than one sealing version, so the rotation that retired it runs again
    /// (re-sealing what a restore brought back under it, then retiring it
    /// once more). Returns whether it was put back.
    pub(crate) fn readmit_retired(&self, record: &[u8], source: &str) -> Result<bool> {
        let record = retired_record(record, source)?;
        let _writing = self.write.lock();
        if !self.takes_retired(&self.loaded.read(), &record) {
            return Ok(false);
        }
        let id = tenant_shard_of(TenantId(record.id));
        // Unwrapped before it is written: a record that does not open under
        // this root key never reaches the shard.
        self.insert_tenant_record(&mut self.loaded.write(), id, &record)?;
        self.append(id, std::slice::from_ref(&record))?;
        self.anchor()?;
        Ok(true)
    }

    /// Leaves `tenant`'s keys alone in the keyring (a per-tenant restore):
    /// every tenant shard rewritten with its records only, every other
    /// tenant's subject shards and pending seals removed, the manifest
    /// brought level, and the keyring read again. The other tenants are
    /// then unknown to it, as to a new database: absent, not shredded.
    pub(crate) fn keep_only_tenant(&self, tenant: TenantId) -> Result<()> {
        let _writing = self.write.lock();
        for shard in 0..TENANT_SHARDS {
            let id = tenant_shard(shard);
            let records = self.shard_records(id)?;
            let kept: Vec<KeyRecord> = records
                .iter()
                .filter(|r| r.id == tenant.0)
                .cloned()
                .collect();
            if kept.len() != records.len() {
                self.rewrite(id, &kept)?;
            }
        }
        let others: Vec<TenantId> = self
            .loaded
            .read()
            .tenants
            .keys()
            .copied()
            .filter(|t| *t != tenant)
            .collect();
        for other in others {
            self.files.remove_dir_durable(&self.subjects_dir(other))?;
        }
        self.loaded
            .write()
            .seals
            .retain(|scope, _| scope.tenant == tenant);
        self.rewrite_seals()?;
        self.anchor()?;
        // As written (the copy in memory keeps the MAC it was read with).
        let manifest = Keyring::read_manifest(&self.files, &self.dir)?.ok_or_else(|| {
            Error::corruption(
                self.dir.join(KEYRING_MANIFEST_FILE),
                0,
                CorruptionKind::Truncated,
            )
        })?;
        drop(_writing);
        self.reload(manifest)
    }

    /// Reads every subject shard in the keyring's folder now (they are
    /// otherwise read when their tenant's subjects are first used): each
    /// checked against its anchor, each key unwrapped. What a verify of an
    /// archive's keyring asks. Returns how many shards it read.
    pub(crate) fn load_every_subject_shard(&self) -> Result<usize> {
        let tenants: Vec<TenantId> = self
            .loaded
            .read()
            .tenants
            .iter()
            .filter(|(_, t)| !t.destroyed)
            .map(|(id, _)| *id)
            .collect();
        let mut read = 0;
        for tenant in tenants {
            let dir = self.subjects_dir(tenant);
            if !self.files.is_dir(&dir)? {
                continue;
            }
            for name in self.files.list(&dir)? {
                let Some(shard) = name
                    .strip_suffix(crate::format::KEYRING_SHARD_SUFFIX)
                    .and_then(|n| n.parse::<u32>().ok())
                else {
                    continue;
                };
                self.load_shard(subject_shard_id(tenant, shard))?;
                read += 1;
            }
        }
        Ok(read)
    }

    /// Whether a retired version belongs back: its tenant is live and lacks it.
    fn takes_retired(&self, loaded: &super::Loaded, record: &KeyRecord) -> bool {
        matches!(
            loaded.tenants.get(&TenantId(record.id)),
            Some(t) if !t.destroyed && !t.versions.contains_key(&record.version)
        )
    }
}

/// A retired tenant key's record, as the archive keeps it (FORMAT §12.5).
fn retired_record(bytes: &[u8], source: &str) -> Result<KeyRecord> {
    let bad = || {
        Error::corruption(
            source,
            0,
            CorruptionKind::Malformed("not a retired tenant key record"),
        )
    };
    let record = KeyRecord::decode(bytes).ok_or_else(bad)?;
    if record.kind != RECORD_KEY || record.version == TENANT_TOKEN_VERSION {
        return Err(bad());
    }
    Ok(record)
}

/// Writes `bytes`, the archived copy (object `source`) of a keyring file
/// other than the manifest, to its place in keyring folder `dir`, and
/// returns that file (`None`: a subject shard of a tenant other than
/// `only`, not written). The copy says itself which file it is (the archive
/// names folders by keyed hashes only): the seals ledger by its magic, a
/// shard by its header's kind, tenant and shard. A shard is checked whole
/// under `root`'s chain key first, so that one that would fail only when
/// its tenant's subjects are first read fails now; the ledger and the
/// tenant shards are checked again, against the manifest, when the keyring
/// opens.
pub(crate) fn place_copy(
    files: &Files,
    dir: &Path,
    root: &RootKey,
    bytes: &[u8],
    source: &str,
    only: Option<TenantId>,
) -> Result<Option<PathBuf>> {
    let from = Path::new(source);
    let bad = |kind| Error::corruption(from, 0, kind);
    let path = if bytes.starts_with(&SEALS_MAGIC) {
        dir.join(SEALS_FILE)
    } else {
        codec::check_magic_version(from, bytes, &KEYRING_SHARD_MAGIC, KEYRING_VERSION)?;
        let header = bytes
            .get(..KEYRING_SHARD_HEADER_LEN)
            .ok_or_else(|| bad(CorruptionKind::Truncated))?;
        let tenant = u64::from_le_bytes(header[13..21].try_into().expect("8 bytes"));
        let shard = u32::from_le_bytes(header[21..25].try_into().expect("4 bytes"));
        let id = match header[12] {
            SHARD_KIND_TENANTS if tenant == 0 && shard < TENANT_SHARDS => tenant_shard(shard),
            SHARD_KIND_SUBJECTS if shard < SUBJECT_SHARDS => {
                subject_shard_id(TenantId(tenant), shard)
            }
            _ => {
                return Err(bad(CorruptionKind::Malformed(
                    "a shard header names no shard",
                )));
            }
        };
        if id.kind == SHARD_KIND_SUBJECTS && only.is_some_and(|t| t.0 != id.tenant) {
            return Ok(None);
        }
        let decoded = shard::decode(from, bytes, id, &ChainKey::new(root), false)?;
        if decoded.valid_len != bytes.len() {
            return Err(bad(CorruptionKind::Malformed("a keyring copy cut short")));
        }
        shard_path_in(dir, id)
    };
    files.create_dir_durable(path.parent().expect("a keyring file is in a folder"))?;
    files.write_atomic(&path, bytes)?;
    Ok(Some(path))
}
