//! The keyring in the archive: a copy of every keyring file (the manifest,
//! the seals ledger, every tenant and subject shard), each an object of its
//! own, never inside a piece or a backup; and the key versions rotations
//! retired, which a restore to a moment before the rotation needs.
//!
//! A pass ([`KeyringShipper::sync`]) puts a copy of every file whose
//! archived copy is older than the local file, children before parents, and
//! then deletes the older copies of it: so the archive holds one copy of
//! each file (two for an instant), and a destroyed key leaves the archive
//! with the copy that held it. A destroyed tenant's subject shards and
//! retired keys are deleted whole. Nothing here needs a manifest of its
//! own: a copy is named by its file's version, and the newest copy of each
//! file is the archive's keyring (children put first, so the newest copies
//! always open together).
//!
//! # Invariants
//! - A retired key version is put before the local keyring drops it
//!   ([`KeyringShipper::put_retired`]): rotation is not destruction.
//! - The older copies of a file are deleted only after the newer one is put.
//! - What the archive still lacks is derived from the local keyring and the
//!   archive's listing at every pass: a shred whose archive step failed is
//!   done by the next pass, after a crash too.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use parking_lot::Mutex;

use super::names;
use crate::archive::{Archive, ArchiveError, object};
use crate::crypto::SecretKey;
use crate::crypto::keyring::{
    ChainKey, FileVersion, KEY_BLOCK_LEN, Keyring, KeyringFile, Manifest, key_block, open_key_block,
};
use crate::crypto::root::RootKey;
use crate::error::{CorruptionKind, Result};
use crate::format::{KEYRING_VERSION, LOG_ID_LEN};
use crate::options::MasterKeySource;
use crate::scope::{Scope, TenantId};

/// Puts a database's keyring into its archive.
pub(crate) struct KeyringShipper {
    archive: Arc<dyn Archive>,
    key: SecretKey,
    name_key: SecretKey,
    log_id: [u8; LOG_ID_LEN],
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// The keyring objects in the archive, by folder (a file's copies, or a
    /// tenant's retired keys): listed at the first pass, kept since.
    folders: Option<BTreeMap<String, Vec<(FileVersion, String)>>>,
    /// Destroyed tenants whose folders this process has emptied.
    cleaned: HashSet<TenantId>,
}

impl KeyringShipper {
    pub(crate) fn new(
        archive: Arc<dyn Archive>,
        key: SecretKey,
        name_key: SecretKey,
        log_id: [u8; LOG_ID_LEN],
    ) -> KeyringShipper {
        KeyringShipper {
            archive,
            key,
            name_key,
            log_id,
            state: Mutex::new(State::default()),
        }
    }

    /// Brings the archive's keyring level with `keyring`. Returns how many
    /// copies it put.
    pub(crate) fn sync(&self, keyring: &Keyring) -> Result<usize> {
        let mut state = self.state.lock();
        self.list(&mut state)?;
        // One view of the keyring: every file the archive lags, read while
        // nothing changes (a pass mixing files read at different moments
        // could leave a parent anchoring a child copy the archive lacks).
        let snapshot = keyring.snapshot_for_archive(|file, version| {
            let folder = names::keyring_folder(&self.log_id, &self.name_key, file);
            newest(&state, &folder).is_none_or(|newest| newest < version)
        })?;
        let mut put = 0;
        for (file, version, bytes) in snapshot.copies {
            let folder = names::keyring_folder(&self.log_id, &self.name_key, file);
            if newest(&state, &folder).is_some_and(|newest| newest >= version) {
                continue;
            }
            let name = names::keyring_object(&folder, version);
            if let Err(e) = self
                .archive
                .put(&name, copy_object(&self.key, &name, file, &bytes))
            {
                // A put that failed here may still have landed: list again
                // before the next pass trusts what it knows.
                state.folders = None;
                return Err(e.into());
            }
            copies(&mut state, &folder).push((version, name));
            put += 1;
        }
        // Older copies, now that every newer one is up.
        let folders: Vec<String> = state
            .folders
            .as_ref()
            .expect("listed first")
            .iter()
            .filter(|(folder, copies)| copies.len() > 1 && !folder.contains("/retired/"))
            .map(|(folder, _)| folder.clone())
            .collect();
        for folder in folders {
            self.delete_older(&mut state, &folder)?;
        }
        // A destroyed tenant's folders, once the copy of its tombstone is up
        // (put above, from the same view).
        for tenant in snapshot.destroyed_tenants {
            if state.cleaned.contains(&tenant) {
                continue;
            }
            for folder in [
                names::tenant_subjects_folder(&self.log_id, &self.name_key, tenant.0),
                names::retired_folder(&self.log_id, &self.name_key, tenant.0),
            ] {
                self.delete_under(&mut state, &folder)?;
            }
            state.cleaned.insert(tenant);
        }
        if put > 0 {
            tracing::debug!(copies = put, "ship: keyring archived");
        }
        Ok(put)
    }

    /// Puts `tenant`'s key versions that a rotation is about to retire
    /// (records from `Keyring::versions_below`), named by the LSN they are
    /// retired at: a restore from a backup older than that LSN needs them.
    pub(crate) fn put_retired(
        &self,
        keyring: &Keyring,
        tenant: TenantId,
        versions: &[(u32, Vec<u8>)],
        retired_at_lsn: u64,
    ) -> Result<()> {
        let mut state = self.state.lock();
        // Checked under the lock a shred's pass takes to delete the tenant's
        // retired keys: a tenant destroyed since the versions were read must
        // not get them back.
        if keyring.is_destroyed(Scope::tenant(tenant))? {
            return Ok(());
        }
        let folder = names::retired_folder(&self.log_id, &self.name_key, tenant.0);
        for (version, record) in versions {
            let name = names::keyring_object(&folder, (u64::from(*version), retired_at_lsn));
            if let Err(e) = self
                .archive
                .put(&name, object::seal(&self.key, &name, record))
            {
                state.folders = None;
                return Err(e.into());
            }
            if state.folders.is_some() {
                copies(&mut state, &folder).push(((u64::from(*version), retired_at_lsn), name));
            }
        }
        Ok(())
    }

    /// Whether the archive may still hold a copy of a key of `scope` that
    /// the local keyring has destroyed, or lack its seal: its file's newest
    /// copy is older than the local file, an older copy is left, or (a
    /// destroyed tenant) its subject shards and retired keys are not
    /// deleted yet. True before the first pass.
    pub(crate) fn behind(&self, keyring: &Keyring, scope: Scope) -> bool {
        let state = self.state.lock();
        let Some(folders) = &state.folders else {
            return true;
        };
        let lagging = |file: KeyringFile| {
            let local = keyring
                .files_for_archive()
                .into_iter()
                .find(|(f, _)| *f == file)
                .map(|(_, v)| v);
            let folder = names::keyring_folder(&self.log_id, &self.name_key, file);
            let copies = folders.get(&folder).map_or(&[][..], Vec::as_slice);
            copies.len() > 1 || local.is_some_and(|v| copies.iter().all(|(c, _)| *c < v))
        };
        if lagging(KeyringFile::home_of(scope)) || lagging(KeyringFile::Seals) {
            return true;
        }
        keyring.destroyed_tenants().contains(&scope.tenant)
            && !state.cleaned.contains(&scope.tenant)
    }

    /// Lists the archive's keyring at the first pass.
    fn list(&self, state: &mut State) -> Result<()> {
        if state.folders.is_some() {
            return Ok(());
        }
        let mut folders: BTreeMap<String, Vec<(FileVersion, String)>> = BTreeMap::new();
        for object in self.archive.list(&names::keyring_root(&self.log_id))? {
            if let Some((folder, version)) = names::parse_keyring_object(&object.name) {
                folders
                    .entry(folder.to_owned())
                    .or_default()
                    .push((version, object.name.clone()));
            }
        }
        state.folders = Some(folders);
        Ok(())
    }

    /// Deletes every copy in `folder` but the newest.
    fn delete_older(&self, state: &mut State, folder: &str) -> Result<()> {
        let list = copies(state, folder);
        list.sort();
        while list.len() > 1 {
            let (_, name) = list[0].clone();
            self.archive.delete(&name)?;
            list.remove(0);
        }
        Ok(())
    }

    /// Deletes every object in the folders under `prefix`.
    fn delete_under(&self, state: &mut State, prefix: &str) -> Result<()> {
        let folders = state.folders.as_mut().expect("listed first");
        let under: Vec<String> = folders
            .range(prefix.to_owned()..)
            .take_while(|(folder, _)| folder.starts_with(prefix))
            .map(|(folder, _)| folder.clone())
            .collect();
        for folder in under {
            let list = folders.get_mut(&folder).expect("just found");
            while let Some((_, name)) = list.last() {
                self.archive.delete(name)?;
                list.pop();
            }
            folders.remove(&folder);
        }
        Ok(())
    }
}

/// The object that keeps `bytes`, file `file`'s copy, under `name`: sealed
/// whole (FORMAT §12.1), and for the manifest after its key block, in clear
/// (§12.5): the one thing a reader with the master key alone can open.
fn copy_object(key: &SecretKey, name: &str, file: KeyringFile, bytes: &[u8]) -> Vec<u8> {
    let mut out = match file {
        KeyringFile::Manifest => key_block(bytes),
        _ => Vec::new(),
    };
    out.extend_from_slice(&object::seal(key, name, bytes));
    out
}

/// Opens a copy of the keyring manifest (object `name`) with the master
/// key alone: its key block gives the root key, which opens the sealed
/// manifest after it; the two must agree, and the manifest's MAC must hold
/// under that root key. Returns the manifest and the root key.
pub(crate) fn open_manifest_copy(
    name: &str,
    bytes: &[u8],
    source: &MasterKeySource,
) -> Result<(Manifest, RootKey)> {
    let (root, log_id) = open_key_block(Path::new(name), bytes, source)?;
    let plain = object::open(&root.archive_key(), name, &bytes[KEY_BLOCK_LEN..])?;
    let manifest = Manifest::decode(Path::new(name), &plain)?;
    if manifest.log_id != log_id
        || manifest.version != KEYRING_VERSION
        || plain[..KEY_BLOCK_LEN - 4] != bytes[..KEY_BLOCK_LEN - 4]
    {
        return Err(ArchiveError::corrupt(
            name,
            0,
            CorruptionKind::Malformed("the key block and the sealed manifest differ"),
        )
        .into());
    }
    manifest.verify(Path::new(name), &ChainKey::new(&root))?;
    Ok((manifest, root))
}

fn copies<'a>(state: &'a mut State, folder: &str) -> &'a mut Vec<(FileVersion, String)> {
    state
        .folders
        .as_mut()
        .expect("listed first")
        .entry(folder.to_owned())
        .or_default()
}

fn newest(state: &State, folder: &str) -> Option<FileVersion> {
    state
        .folders
        .as_ref()?
        .get(folder)?
        .iter()
        .map(|(v, _)| *v)
        .max()
}
