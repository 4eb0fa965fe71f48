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

use crate::archive::{Archive, object as archive_object};
use crate::clock::SystemClock;
use crate::crypto::SecretKey;
use crate::crypto::keyring::Keyring;
use crate::crypto::master::MasterKey;
use crate::crypto::record;
use crate::crypto::scope_key::Token;
use crate::engine::db::lock_data_dir;
use crate::error::{Error, Result};
use crate::format::{KEYRING_DIR, LOG_ID_LEN, STORE_DIR, STORE_NS_DATA, WAL_DIR};
use crate::fs::{FileLock, Files};
use crate::options::Options;
use crate::scope::Scope;
use crate::ship::backup::BackupManifest;
use crate::ship::names;
use crate::store::key_codec;
use crate::wal::entry::Op;
use crate::wal::{LogFrame, read_log, read_piece};

/// Where a decrypted record was found.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    /// In a log frame, with this LSN.
    Log(u64),
    /// In the store.
    Store,
    /// In a log piece in the archive, in the frame with this LSN.
    Archive(u64),
    /// In a base backup in the archive, of the store at this LSN.
    Backup(u64),
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
    let Closed {
        files,
        keyring,
        log_id,
        mac_key,
        _lock,
        ..
    } = Closed::open(path, options)?;
    let mut out = Vec::new();
    read_log(&files, &path.join(WAL_DIR), &mac_key, &log_id, |frame| {
        open_frame(&keyring, frame, Found::Log(frame.header.lsn), &mut out)
    })?;
    open_store(&keyring, &path.join(STORE_DIR), Found::Store, &mut out)?;
    Ok(out)
}

/// Decrypts every record in the log pieces that the database at `path` has
/// shipped to `archive`, with whatever key its keyring still holds: what a
/// thief with the archive, the master key and this keyring could read.
/// Every piece is opened (object seal, frame CRCs and MAC chain) or the
/// error names it.
pub fn decrypt_archive(
    path: &Path,
    options: &Options,
    archive: &dyn Archive,
) -> Result<Vec<Decrypted>> {
    let Closed {
        keyring,
        log_id,
        mac_key,
        archive_key,
        _lock,
        ..
    } = Closed::open_with_retired(path, options, archive)?;
    let mut out = Vec::new();
    let folder = names::wal_folder(&log_id);
    for object in archive.list(&folder)? {
        if names::parse_piece(&object.name).is_none() {
            continue;
        }
        let sealed = archive.get(&object.name)?;
        let piece = archive_object::open(&archive_key, &object.name, &sealed)?;
        read_piece(
            Path::new(&object.name),
            &piece,
            &mac_key,
            &log_id,
            |frame| open_frame(&keyring, frame, Found::Archive(frame.header.lsn), &mut out),
        )?;
    }
    Ok(out)
}

/// The base backups of the database at `path` in `archive`: (manifest
/// name, the LSN it holds the store at), oldest first.
pub fn backups(
    path: &Path,
    options: &Options,
    archive: &dyn Archive,
) -> Result<Vec<(String, u64)>> {
    let Closed { log_id, _lock, .. } = Closed::open(path, options)?;
    let mut out: Vec<(String, u64)> = archive
        .list(&names::backup_folder(&log_id))?
        .into_iter()
        .filter_map(|o| names::parse_backup(&o.name).map(|lsn| (o.name, lsn)))
        .collect();
    out.sort_by_key(|(name, lsn)| (*lsn, name.clone()));
    Ok(out)
}

/// Decrypts every record in the base backup `backup` (a manifest's name)
/// that the keyring of the database at `path` still has a key for: the
/// backup's files are fetched and opened (every object's seal checked) into
/// folder `scratch` (created, and removed after), and its store read there.
/// A `scratch` that holds anything already is refused (`InvalidArgument`):
/// this never removes what it did not write.
pub fn decrypt_backup(
    path: &Path,
    options: &Options,
    archive: &dyn Archive,
    backup: &str,
    scratch: &Path,
) -> Result<Vec<Decrypted>> {
    let Closed {
        keyring,
        archive_key,
        files,
        _lock,
        ..
    } = Closed::open_with_retired(path, options, archive)?;
    let sealed = archive.get(backup)?;
    let manifest = BackupManifest::decode(
        backup,
        &archive_object::open(&archive_key, backup, &sealed)?,
    )?;
    let in_use =
        files.is_file(scratch)? || (files.is_dir(scratch)? && !files.list(scratch)?.is_empty());
    if in_use {
        return Err(Error::InvalidArgument(
            "the scratch folder for a backup must be new or empty",
        ));
    }
    let found = (|| {
        let get = |name: &str| {
            Ok(archive_object::open(
                &archive_key,
                name,
                &archive.get(name)?,
            )?)
        };
        manifest.fetch_into(&get, backup, &files, scratch, 1, &|_| {})?;
        let mut out = Vec::new();
        let at = Found::Backup(manifest.applied.lsn);
        open_store(&keyring, scratch, at, &mut out)?;
        Ok(out)
    })();
    files.remove_dir_durable(scratch)?;
    found
}

/// One frame of a log, as `inspect` shows it: metadata only.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameInfo {
    /// Its LSN.
    pub lsn: u64,
    /// Its commit time, µs since the Unix epoch.
    pub commit_time_us: u64,
    /// Its entries: the scope, whether a put (with its sealed record's
    /// size) or a delete, and the key version it is sealed under.
    pub entries: Vec<EntryInfo>,
}

/// One entry of a frame: no key, no value.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryInfo {
    /// Its scope.
    pub scope: Scope,
    /// The sealed record's size for a put; `None` for a delete.
    pub sealed_len: Option<usize>,
    /// The key version the record is sealed under.
    pub key_version: u32,
}

/// Every frame of the closed database's local log at `path`, verified
/// (CRCs, MAC chain) and described without opening any record.
pub fn inspect_log(path: &Path, options: &Options) -> Result<Vec<FrameInfo>> {
    let Closed {
        files,
        log_id,
        mac_key,
        _lock,
        ..
    } = Closed::open(path, options)?;
    let mut out = Vec::new();
    read_log(&files, &path.join(WAL_DIR), &mac_key, &log_id, |frame| {
        out.push(FrameInfo {
            lsn: frame.header.lsn,
            commit_time_us: frame.header.commit_time_us,
            entries: frame
                .entries
                .iter()
                .map(|e| EntryInfo {
                    scope: e.scope,
                    sealed_len: match e.op {
                        Op::Put(sealed) => Some(sealed.len()),
                        Op::Delete => None,
                    },
                    key_version: e.key_version,
                })
                .collect(),
        });
        Ok(())
    })?;
    Ok(out)
}

/// A closed database's keyring and keys, opened under its lock: opening
/// the keyring may repair it (drop a torn append, compact the seals ledger),
/// which must never race an open database's appends, so an open database
/// makes this `InUse`.
struct Closed {
    files: Files,
    keyring: Keyring,
    log_id: [u8; LOG_ID_LEN],
    mac_key: SecretKey,
    archive_key: SecretKey,
    _lock: Box<dyn FileLock>,
}

impl Closed {
    /// With the key versions rotations retired that the archive keeps (so
    /// records sealed before a rotation open, from pieces and backups that
    /// predate it), unless their tenant is destroyed.
    fn open_with_retired(path: &Path, options: &Options, archive: &dyn Archive) -> Result<Closed> {
        let closed = Closed::open(path, options)?;
        let folder = names::retired_root(&closed.log_id);
        for object in archive.list(&folder)? {
            if names::parse_keyring_object(&object.name).is_none() {
                continue;
            }
            let sealed = archive.get(&object.name)?;
            let record = archive_object::open(&closed.archive_key, &object.name, &sealed)?;
            closed.keyring.add_retired(&record, &object.name)?;
        }
        Ok(closed)
    }

    fn open(path: &Path, options: &Options) -> Result<Closed> {
        let files = Files::new(Arc::clone(&options.file_system));
        let lock = lock_data_dir(&files, path, false)?;
        let keyring_dir = path.join(KEYRING_DIR);
        let manifest = Keyring::read_manifest(&files, &keyring_dir)?
            .ok_or_else(|| Error::NotFound(path.into()))?;
        let master = MasterKey::resolve(&options.master_key, &manifest.kdf)?;
        let root = manifest.open_root(&master)?;
        let log_id = manifest.log_id;
        let mac_key = root.frame_mac_key(&log_id);
        let archive_key = root.archive_key();
        let keyring = Keyring::open(&files, &keyring_dir, manifest, root, Arc::new(SystemClock))?;
        Ok(Closed {
            files,
            keyring,
            log_id,
            mac_key,
            archive_key,
            _lock: lock,
        })
    }
}

/// Every put of `frame` that the keys in hand open.
fn open_frame(
    keyring: &Keyring,
    frame: &LogFrame<'_>,
    found: Found,
    out: &mut Vec<Decrypted>,
) -> Result<()> {
    for entry in &frame.entries {
        if let Op::Put(sealed) = entry.op {
            out.extend(try_open(keyring, entry.scope, &entry.token, sealed, found)?);
        }
    }
    Ok(())
}

/// Every record of the RocksDB store in `dir` (opened read-only) that the
/// keys in hand open.
fn open_store(keyring: &Keyring, dir: &Path, found: Found, out: &mut Vec<Decrypted>) -> Result<()> {
    let store = rocksdb::DB::open_for_read_only(&rocksdb::Options::default(), dir, false)
        .map_err(|e| Error::Store(e.into_string()))?;
    for item in store.prefix_iterator([STORE_NS_DATA]) {
        let (key, sealed) = item.map_err(|e| Error::Store(e.into_string()))?;
        if let Some((scope, token)) = key_codec::decode_data_key(&key) {
            out.extend(try_open(keyring, scope, &token, &sealed, found)?);
        }
    }
    Ok(())
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
