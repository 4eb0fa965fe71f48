//! One history of a database in an archive, read with the master key
//! alone: what a restore (and later a verify or a standby) reads. Its
//! keyring manifest's copy gives the root key (FORMAT §12.5); every other
//! object is opened under the archive key it derives, and every error
//! names the object.

use crate::archive::{Archive, ArchiveError, object};
use crate::crypto::SecretKey;
use crate::crypto::keyring::{ChainKey, KEY_BLOCK_LEN, Manifest};
use crate::crypto::root::RootKey;
use crate::error::{Error, RestoreError, Result};
use crate::format::LOG_ID_LEN;
use crate::options::MasterKeySource;
use crate::ship::backup::BackupManifest;
use crate::ship::keys::open_manifest_copy;
use crate::ship::names;

/// The histories in `archive` (their log ids), in name order.
pub(crate) fn histories(archive: &dyn Archive) -> Result<Vec<[u8; LOG_ID_LEN]>> {
    Ok(archive
        .list_folders("")?
        .iter()
        .filter_map(|f| names::parse_history(f))
        .collect())
}

/// The name of the newest copy of history `log_id`'s keyring manifest.
fn newest_manifest(archive: &dyn Archive, log_id: &[u8; LOG_ID_LEN]) -> Result<String> {
    let folder = names::keyring_manifest_folder(log_id);
    archive
        .list(&folder)?
        .into_iter()
        .filter_map(|o| Some((names::parse_keyring_object(&o.name)?.1, o.name)))
        .max()
        .map(|(_, name)| name)
        .ok_or_else(|| {
            Error::from(ArchiveError::NotFound {
                name: format!("{folder} (the history's keyring manifest)"),
            })
        })
}

/// A piece of the log, as its name says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PieceName {
    pub(crate) name: String,
    pub(crate) first: u64,
    pub(crate) last: u64,
    pub(crate) size: u64,
}

/// A backup, as its manifest's name says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BackupName {
    pub(crate) name: String,
    pub(crate) lsn: u64,
}

/// One history, opened.
pub(crate) struct History<'a> {
    pub(crate) archive: &'a dyn Archive,
    pub(crate) log_id: [u8; LOG_ID_LEN],
    /// The newest copy of its keyring manifest, and that copy's name.
    pub(crate) manifest: Manifest,
    pub(crate) manifest_name: String,
    pub(crate) root: RootKey,
    pub(crate) archive_key: SecretKey,
    pub(crate) mac_key: SecretKey,
}

impl<'a> History<'a> {
    /// Opens history `log_id` with the master key from `master`:
    /// [`Error::WrongMasterKey`] if it does not open the newest manifest
    /// copy.
    pub(crate) fn open(
        archive: &'a dyn Archive,
        log_id: [u8; LOG_ID_LEN],
        master: &MasterKeySource,
    ) -> Result<History<'a>> {
        let name = newest_manifest(archive, &log_id)?;
        let (manifest, root) = open_manifest_copy(&name, &archive.get(&name)?, master)?;
        History::with(archive, log_id, name, manifest, root)
    }

    /// Opens history `log_id` with its root key, known already (a standby
    /// between two polls): the newest manifest copy's sealed part opened
    /// with it, its key block not read, so a master key rotated meanwhile
    /// changes nothing (the root key never changes).
    pub(crate) fn open_with_root(
        archive: &'a dyn Archive,
        log_id: [u8; LOG_ID_LEN],
        root: &RootKey,
    ) -> Result<History<'a>> {
        let name = newest_manifest(archive, &log_id)?;
        let bytes = archive.get(&name)?;
        let sealed = bytes.get(KEY_BLOCK_LEN..).ok_or_else(|| {
            ArchiveError::corrupt(&name, 0, crate::error::CorruptionKind::Truncated)
        })?;
        let plain = object::open(&root.archive_key(), &name, sealed)?;
        let manifest = Manifest::decode(std::path::Path::new(&name), &plain)?;
        manifest.verify(std::path::Path::new(&name), &ChainKey::new(root))?;
        let root = RootKey::from_secret(root.secret().clone());
        History::with(archive, log_id, name, manifest, root)
    }

    fn with(
        archive: &'a dyn Archive,
        log_id: [u8; LOG_ID_LEN],
        name: String,
        manifest: Manifest,
        root: RootKey,
    ) -> Result<History<'a>> {
        if manifest.log_id != log_id {
            return Err(ArchiveError::corrupt(
                &name,
                0,
                crate::error::CorruptionKind::Malformed("a manifest of another history"),
            )
            .into());
        }
        Ok(History {
            archive,
            log_id,
            archive_key: root.archive_key(),
            mac_key: root.frame_mac_key(&log_id),
            manifest,
            manifest_name: name,
            root,
        })
    }

    /// Opens the one history of `archive`, or the one named `chosen` (its
    /// log id in hex); several histories and none chosen is
    /// [`RestoreError::WhichHistory`].
    pub(crate) fn choose(
        archive: &'a dyn Archive,
        chosen: Option<&str>,
        master: &MasterKeySource,
    ) -> Result<History<'a>> {
        let all = histories(archive)?;
        let log_id = match chosen {
            Some(hex) => *all
                .iter()
                .find(|id| names::history(id) == hex)
                .ok_or_else(|| RestoreError::UnknownHistory(hex.to_owned()))?,
            None => match all.as_slice() {
                [] => return Err(RestoreError::NoHistory.into()),
                [one] => *one,
                _ => {
                    return Err(RestoreError::WhichHistory {
                        histories: all.iter().map(names::history).collect(),
                    }
                    .into());
                }
            },
        };
        History::open(archive, log_id, master)
    }

    /// The history's name (its log id in hex).
    pub(crate) fn name(&self) -> String {
        names::history(&self.log_id)
    }

    /// Object `name`, fetched and opened.
    pub(crate) fn get(&self, name: &str) -> Result<Vec<u8>> {
        Ok(object::open(
            &self.archive_key,
            name,
            &self.archive.get(name)?,
        )?)
    }

    /// Its backups, by applied LSN (then name).
    pub(crate) fn backups(&self) -> Result<Vec<BackupName>> {
        let mut out: Vec<BackupName> = self
            .archive
            .list(&names::backup_folder(&self.log_id))?
            .into_iter()
            .filter_map(|o| {
                Some(BackupName {
                    lsn: names::parse_backup(&o.name)?,
                    name: o.name,
                })
            })
            .collect();
        out.sort_by(|a, b| (a.lsn, &a.name).cmp(&(b.lsn, &b.name)));
        Ok(out)
    }

    /// A backup's manifest.
    pub(crate) fn backup(&self, name: &str) -> Result<BackupManifest> {
        Ok(BackupManifest::decode(name, &self.get(name)?)?)
    }

    /// Its log pieces, by first LSN (then last).
    pub(crate) fn pieces(&self) -> Result<Vec<PieceName>> {
        let mut out: Vec<PieceName> = self
            .archive
            .list(&names::wal_folder(&self.log_id))?
            .into_iter()
            .filter_map(|o| {
                let (first, last) = names::parse_piece(&o.name)?;
                Some(PieceName {
                    name: o.name,
                    first,
                    last,
                    size: o.size,
                })
            })
            .collect();
        out.sort_by_key(|p| (p.first, p.last));
        Ok(out)
    }

    /// The newest copy of every keyring file but the manifest (whose copy
    /// [`History::open`] read): one name per folder.
    pub(crate) fn keyring_copies(&self) -> Result<Vec<String>> {
        let retired = names::retired_root(&self.log_id);
        let mut newest: std::collections::BTreeMap<&str, ((u64, u64), &str)> = Default::default();
        let listed = self.archive.list(&names::keyring_root(&self.log_id))?;
        for o in &listed {
            if o.name.starts_with(&retired) {
                continue;
            }
            let Some((folder, version)) = names::parse_keyring_object(&o.name) else {
                continue;
            };
            let slot = newest.entry(folder).or_insert((version, &o.name));
            if version > slot.0 {
                *slot = (version, &o.name);
            }
        }
        let manifest_folder = names::keyring_manifest_folder(&self.log_id);
        Ok(newest
            .into_iter()
            .filter(|(folder, _)| *folder != manifest_folder)
            .map(|(_, (_, name))| name.to_owned())
            .collect())
    }

    /// The key versions rotations retired: (object name, the LSN it was
    /// retired at).
    pub(crate) fn retired(&self) -> Result<Vec<(String, u64)>> {
        Ok(self
            .archive
            .list(&names::retired_root(&self.log_id))?
            .into_iter()
            .filter_map(|o| {
                let (_, (_, lsn)) = names::parse_keyring_object(&o.name)?;
                Some((o.name, lsn))
            })
            .collect())
    }
}
