//! Base backups: the store, as of one LSN, in the archive.
//!
//! A backup is a RocksDB checkpoint of the store, taken while no frame is
//! appended or applied (so its applied LSN is exact), whose SST files go to
//! the archive once each, named by a keyed hash of their bytes and shared by
//! every later backup (SST files never change: a backup uploads only what
//! compactions and flushes made since the last one). Its small files
//! (`CURRENT`, `MANIFEST-*`, `OPTIONS-*`) travel inside the backup's
//! manifest, which is put last: a backup exists once its manifest does.
//!
//! ```text
//! manifest = magic "SRBACKUP" | version u32 | applied_lsn u64 | commit_us u64
//!            | applied_mac [32] | file_count u32 | file*
//! file     = kind u8 | name_len u16 | name | size u64 | body
//! body     = kind 0 (an SST in the archive): object_len u16 | object name
//!            kind 1 (inline): the file's bytes (size of them)
//! ```

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;

use super::names;
use super::retention::{self, BackupEntry, Contents, RetentionPlan, RetentionPolicy};
use crate::archive::{Archive, ArchiveError, object};
use crate::crypto::SecretKey;
use crate::error::{CorruptionKind, Error, Result};
use crate::format::{
    BACKUP_MAGIC, BACKUP_VERSION, CHECKPOINT_DIR, LOG_ID_LEN, MAC_LEN, SST_SUFFIX, TMP_SUFFIX,
};
use crate::fs::Files;
use crate::store::{Applied, Store};

/// A file of a backup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BackupFile {
    /// Its name in the store's folder.
    pub(crate) name: String,
    pub(crate) size: u64,
    pub(crate) body: Body,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Body {
    /// An SST file, in the archive under this name.
    Object(String),
    /// A small file, whole.
    Inline(Vec<u8>),
}

const KIND_OBJECT: u8 = 0;
const KIND_INLINE: u8 = 1;

/// A backup's manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BackupManifest {
    /// The store's last applied frame (its LSN, commit time and MAC).
    pub(crate) applied: Applied,
    pub(crate) files: Vec<BackupFile>,
}

impl BackupManifest {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&BACKUP_MAGIC);
        out.extend_from_slice(&BACKUP_VERSION.to_le_bytes());
        out.extend_from_slice(&self.applied.lsn.to_le_bytes());
        out.extend_from_slice(&self.applied.commit_us.to_le_bytes());
        out.extend_from_slice(&self.applied.mac.unwrap_or([0; MAC_LEN]));
        out.extend_from_slice(&(self.files.len() as u32).to_le_bytes());
        for file in &self.files {
            let put_name = |out: &mut Vec<u8>, name: &str| {
                let len = u16::try_from(name.len()).expect("file and object names are short");
                out.extend_from_slice(&len.to_le_bytes());
                out.extend_from_slice(name.as_bytes());
            };
            let kind = match file.body {
                Body::Object(_) => KIND_OBJECT,
                Body::Inline(_) => KIND_INLINE,
            };
            out.push(kind);
            put_name(&mut out, &file.name);
            out.extend_from_slice(&file.size.to_le_bytes());
            match &file.body {
                Body::Object(object) => put_name(&mut out, object),
                Body::Inline(bytes) => out.extend_from_slice(bytes),
            }
        }
        out
    }

    /// Decodes a manifest (already opened from its sealed object `name`).
    pub(crate) fn decode(name: &str, bytes: &[u8]) -> Result<BackupManifest, ArchiveError> {
        let mut r = Reader { bytes, at: 0, name };
        if r.take(8)? != BACKUP_MAGIC {
            return Err(r.bad(CorruptionKind::BadMagic));
        }
        let version = r.u32()?;
        if version != BACKUP_VERSION {
            return Err(ArchiveError::UnsupportedVersion {
                name: name.to_owned(),
                found: version,
                supported: BACKUP_VERSION,
            });
        }
        let lsn = r.u64()?;
        let commit_us = r.u64()?;
        let mac: [u8; MAC_LEN] = r.take(MAC_LEN)?.try_into().expect("MAC_LEN bytes");
        let count = r.u32()?;
        let mut files = Vec::new();
        for _ in 0..count {
            let kind = r.take(1)?[0];
            let file_name = r.name()?;
            let size = r.u64()?;
            let body = match kind {
                KIND_OBJECT => Body::Object(r.name()?),
                KIND_INLINE => {
                    let len =
                        usize::try_from(size).map_err(|_| r.bad(CorruptionKind::Length(size)))?;
                    Body::Inline(r.take(len)?.to_vec())
                }
                _ => return Err(r.bad(CorruptionKind::Malformed("unknown backup file kind"))),
            };
            files.push(BackupFile {
                name: file_name,
                size,
                body,
            });
        }
        if r.at != bytes.len() {
            return Err(r.bad(CorruptionKind::Malformed("bytes after the last file")));
        }
        Ok(BackupManifest {
            applied: Applied {
                lsn,
                commit_us,
                mac: (mac != [0; MAC_LEN]).then_some(mac),
            },
            files,
        })
    }
}

/// A bounds-checked reader over a manifest's bytes.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
    name: &'a str,
}

impl<'a> Reader<'a> {
    fn bad(&self, kind: CorruptionKind) -> ArchiveError {
        ArchiveError::corrupt(self.name, self.at as u64, kind)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], ArchiveError> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len());
        let Some(end) = end else {
            return Err(self.bad(CorruptionKind::Truncated));
        };
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }

    fn u32(&mut self) -> Result<u32, ArchiveError> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }

    fn u64(&mut self) -> Result<u64, ArchiveError> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }

    fn name(&mut self) -> Result<String, ArchiveError> {
        let len = u16::from_le_bytes(self.take(2)?.try_into().expect("2 bytes"));
        let bytes = self.take(usize::from(len))?;
        String::from_utf8(bytes.to_vec())
            .map_err(|_| self.bad(CorruptionKind::Malformed("a name that is not UTF-8")))
    }
}

impl BackupManifest {
    /// Fetches every file of this backup (whose manifest is object `name`)
    /// into folder `dir`, `threads` at a time, with `get` (an object's
    /// bytes, fetched and opened: its seal checked): each file's size and
    /// name checked against the
    /// manifest, each written atomically. A file already in `dir` with its
    /// size is kept: written atomically, it is whole, so a fetch run again
    /// after a crash goes on where it stopped. `fetched` is told the bytes
    /// of each file fetched. After it, `dir` is a RocksDB database holding
    /// the store at `applied`.
    pub(crate) fn fetch_into(
        &self,
        get: &(dyn Fn(&str) -> Result<Vec<u8>> + Sync),
        name: &str,
        files: &Files,
        dir: &Path,
        threads: usize,
        fetched: &(dyn Fn(u64) + Sync),
    ) -> Result<()> {
        files.create_dir_durable(dir)?;
        crate::archive::fetch::parallel(&self.files, threads, |file| {
            if file.name.contains('/') || file.name.is_empty() || file.name.ends_with(TMP_SUFFIX) {
                return Err(ArchiveError::corrupt(
                    name,
                    0,
                    CorruptionKind::Malformed("a backup file name that is not a plain file name"),
                )
                .into());
            }
            let path = dir.join(&file.name);
            if files.is_file(&path)? && files.len(&path)? == file.size {
                return Ok(());
            }
            let bytes = match &file.body {
                Body::Inline(bytes) => bytes.clone(),
                Body::Object(object) => get(object)?,
            };
            if bytes.len() as u64 != file.size {
                return Err(ArchiveError::corrupt(
                    name,
                    0,
                    CorruptionKind::Malformed(
                        "a backup file of another size than its manifest says",
                    ),
                )
                .into());
            }
            files.write_atomic(&path, &bytes)?;
            fetched(file.size);
            Ok(())
        })
    }

    /// The bytes of the backup's files.
    pub(crate) fn size(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }
}

/// What a backup did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupInfo {
    /// The backup manifest's object name.
    pub name: String,
    /// The LSN the backup holds the store at.
    pub applied_lsn: crate::Lsn,
    /// Files in the backup.
    pub files: usize,
    /// SST files uploaded by this backup (the others were in the archive).
    pub ssts_uploaded: usize,
    /// Bytes of SST files uploaded by this backup.
    pub bytes_uploaded: u64,
}

/// What retention needs of a backup's manifest (cached: manifests never
/// change).
#[derive(Debug, Clone)]
struct ManifestSummary {
    applied_lsn: u64,
    commit_us: u64,
    objects: Vec<String>,
}

/// The newest backup in the archive, as its listing shows it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Newest {
    pub(crate) applied_lsn: u64,
    /// When it was put, if the archive says.
    pub(crate) modified: Option<std::time::SystemTime>,
}

/// Takes backups of one database into its archive.
pub(crate) struct Backups {
    archive: Arc<dyn Archive>,
    key: SecretKey,
    /// Names SST objects by a keyed hash of their bytes.
    name_key: SecretKey,
    files: Files,
    data_dir: std::path::PathBuf,
    log_id: [u8; LOG_ID_LEN],
    /// SST objects known to be in the archive (listed at the first backup).
    /// Its lock is held by a backup from checkpoint to manifest and by a
    /// retention pass, so a pass never deletes an SST a backup in progress
    /// has put but not named yet.
    known: Mutex<Option<HashSet<String>>>,
    /// Manifests read by retention passes, by name.
    manifests: Mutex<std::collections::HashMap<String, ManifestSummary>>,
}

impl Backups {
    pub(crate) fn new(
        archive: Arc<dyn Archive>,
        key: SecretKey,
        name_key: SecretKey,
        files: &Files,
        data_dir: &Path,
        log_id: [u8; LOG_ID_LEN],
    ) -> Backups {
        Backups {
            archive,
            key,
            name_key,
            files: files.clone(),
            data_dir: data_dir.to_path_buf(),
            log_id,
            known: Mutex::new(None),
            manifests: Mutex::default(),
        }
    }

    /// The newest backup of this history in the archive, by applied LSN
    /// (the latest put among those at one LSN).
    pub(crate) fn newest(&self) -> Result<Option<Newest>> {
        Ok(self
            .archive
            .list(&names::backup_folder(&self.log_id))?
            .into_iter()
            .filter_map(|o| {
                Some(Newest {
                    applied_lsn: names::parse_backup(&o.name)?,
                    modified: o.modified,
                })
            })
            .max_by_key(|n| (n.applied_lsn, n.modified)))
    }

    /// Plans retention under `policy` at `now_us` and, unless `dry_run`,
    /// applies it: the manifests of the backups it drops first, then every
    /// object no kept backup needs (module `retention`). No backup runs
    /// meanwhile.
    pub(crate) fn retention(
        &self,
        policy: &RetentionPolicy,
        now_us: u64,
        dry_run: bool,
    ) -> Result<RetentionPlan> {
        let mut known = self.known.lock();
        let contents = self.contents()?;
        let plan = retention::plan(policy, now_us, &contents);
        if dry_run {
            return Ok(plan);
        }
        for name in &plan.deleted_backups {
            self.archive.delete(name)?;
            self.manifests.lock().remove(name);
        }
        for name in &plan.deleted_objects {
            // Forgotten first: a delete that fails here may still have
            // happened, and a backup must then put the SST again.
            if let Some(known) = known.as_mut() {
                known.remove(name);
            }
            self.archive.delete(name)?;
        }
        tracing::info!(
            kept = plan.kept_backups.len(),
            deleted_backups = plan.deleted_backups.len(),
            deleted_objects = plan.deleted_objects.len(),
            oldest_lsn = plan.oldest_lsn,
            "retention: applied"
        );
        Ok(plan)
    }

    /// The archive's backups (their manifests read, or cached), SSTs,
    /// pieces and retired keys of this history.
    fn contents(&self) -> Result<Contents> {
        let mut contents = Contents::default();
        for object in self.archive.list(&names::backup_folder(&self.log_id))? {
            if names::parse_backup(&object.name).is_none() {
                continue;
            }
            let summary = self.manifest_summary(&object.name)?;
            contents.backups.push(BackupEntry {
                name: object.name,
                applied_lsn: summary.applied_lsn,
                commit_us: summary.commit_us,
                objects: summary.objects,
            });
        }
        contents.ssts = self
            .archive
            .list(&names::sst_folder(&self.log_id))?
            .into_iter()
            .map(|o| o.name)
            .collect();
        for object in self.archive.list(&names::wal_folder(&self.log_id))? {
            if let Some((_, last)) = names::parse_piece(&object.name) {
                contents.pieces.push((object.name, last));
            }
        }
        for object in self.archive.list(&names::retired_root(&self.log_id))? {
            if let Some((_, (_, retired_at))) = names::parse_keyring_object(&object.name) {
                contents.retired.push((object.name.clone(), retired_at));
            }
        }
        Ok(contents)
    }

    fn manifest_summary(&self, name: &str) -> Result<ManifestSummary> {
        if let Some(summary) = self.manifests.lock().get(name) {
            return Ok(summary.clone());
        }
        let manifest = BackupManifest::decode(
            name,
            &object::open(&self.key, name, &self.archive.get(name)?)?,
        )?;
        let summary = ManifestSummary {
            applied_lsn: manifest.applied.lsn,
            commit_us: manifest.applied.commit_us,
            objects: manifest
                .files
                .into_iter()
                .filter_map(|f| match f.body {
                    Body::Object(object) => Some(object),
                    Body::Inline(_) => None,
                })
                .collect(),
        };
        self.manifests
            .lock()
            .insert(name.to_owned(), summary.clone());
        Ok(summary)
    }

    /// Takes a backup: `checkpoint` makes a RocksDB checkpoint of the store
    /// in the folder it is given and returns the store's applied frame at
    /// that moment (the caller holds appends and applies meanwhile). Stops
    /// with [`Error::Closing`] between two uploads once `stop` is set.
    pub(crate) fn take(
        &self,
        checkpoint: impl FnOnce(&Path) -> Result<Applied>,
        stop: &AtomicBool,
        progress: &dyn Fn(u64, u64),
    ) -> Result<BackupInfo> {
        // One at a time: the known set and the checkpoint folder are shared.
        let mut known = self.known.lock();
        let dir = self.data_dir.join(CHECKPOINT_DIR);
        self.files.remove_dir_durable(&dir)?;
        let applied = checkpoint(&dir)?;
        let result = self.upload(&dir, applied, &mut known, stop, progress);
        if let Err(e) = self.files.remove_dir_durable(&dir) {
            tracing::warn!(error = %e, "backup: cannot remove the checkpoint folder");
        }
        result
    }

    fn upload(
        &self,
        dir: &Path,
        applied: Applied,
        known: &mut Option<HashSet<String>>,
        stop: &AtomicBool,
        progress: &dyn Fn(u64, u64),
    ) -> Result<BackupInfo> {
        if known.is_none() {
            let listed = self.archive.list(&names::sst_folder(&self.log_id))?;
            *known = Some(listed.into_iter().map(|o| o.name).collect());
        }
        let known = known.as_mut().expect("listed above");
        let mut names_in_dir = self.files.list(dir)?;
        names_in_dir.sort();
        // Progress counts every file's bytes (read, and hashed), uploaded
        // or already in the archive.
        let mut total = 0;
        for name in &names_in_dir {
            total += self.files.len(&dir.join(name))?;
        }
        let mut done = 0;
        let mut files = Vec::with_capacity(names_in_dir.len());
        let (mut uploaded, mut bytes_uploaded) = (0, 0);
        for name in names_in_dir {
            if stop.load(Ordering::SeqCst) {
                return Err(Error::Closing);
            }
            let bytes = self.files.read(&dir.join(&name))?;
            let size = bytes.len() as u64;
            let body = if name.ends_with(SST_SUFFIX) {
                let hash = blake3::keyed_hash(self.name_key.expose(), &bytes);
                let object = names::sst(&self.log_id, &hash.to_hex());
                if !known.contains(&object) {
                    let sealed = object::seal(&self.key, &object, &bytes);
                    self.archive.put(&object, sealed)?;
                    known.insert(object.clone());
                    uploaded += 1;
                    bytes_uploaded += size;
                }
                Body::Object(object)
            } else {
                Body::Inline(bytes)
            };
            files.push(BackupFile { name, size, body });
            done += size;
            progress(done, total);
        }
        let manifest = BackupManifest { applied, files };
        let name = names::backup(&self.log_id, applied.lsn);
        let sealed = object::seal(&self.key, &name, &manifest.encode());
        self.archive.put(&name, sealed)?;
        tracing::info!(
            backup = %name,
            applied_lsn = applied.lsn,
            files = manifest.files.len(),
            ssts_uploaded = uploaded,
            bytes_uploaded,
            "backup: taken"
        );
        Ok(BackupInfo {
            name,
            applied_lsn: crate::Lsn(applied.lsn),
            files: manifest.files.len(),
            ssts_uploaded: uploaded,
            bytes_uploaded,
        })
    }
}

/// Opens the store's checkpoint in `dir` from the store (its caller holds
/// appends and applies).
pub(crate) fn checkpoint_store(store: &Store, dir: &Path) -> Result<Applied> {
    store.checkpoint(dir)?;
    store.applied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manifest_round_trips_and_every_cut_is_refused() {
        let manifest = BackupManifest {
            applied: Applied {
                lsn: 42,
                commit_us: 7,
                mac: Some([3; MAC_LEN]),
            },
            files: vec![
                BackupFile {
                    name: "000012.sst".into(),
                    size: 1000,
                    body: Body::Object("h/sst/abc.sst".into()),
                },
                BackupFile {
                    name: "CURRENT".into(),
                    size: 3,
                    body: Body::Inline(b"abc".to_vec()),
                },
            ],
        };
        let bytes = manifest.encode();
        assert_eq!(BackupManifest::decode("m", &bytes).unwrap(), manifest);
        for cut in 0..bytes.len() {
            assert!(
                BackupManifest::decode("m", &bytes[..cut]).is_err(),
                "cut {cut}"
            );
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(BackupManifest::decode("m", &longer).is_err());
    }
}
