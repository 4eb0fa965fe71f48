//! The warm standby: a database that follows another's archive, applying
//! its log as it arrives, and serves reads; promoted, it becomes a database
//! of its own.
//!
//! A standby is made by a restore to the latest moment that keeps the
//! source's history (its log id, so the archive's pieces go on applying),
//! then opened read-only: writes, shreds, rotations and backups are
//! `Error::Standby`. A thread polls the archive every `poll_interval`: the
//! keyring first (a change in the newest copies is written over the local
//! files and the keyring reloaded, keeping each scope's gate, so a shred
//! reaches the keys readers hold, and the records of a destroyed scope are
//! deleted from the store), then the pieces after the store's last frame,
//! through the one replay loop ([`super::replay::Applier`]).
//!
//! Invariant: a standby writes nothing to its own log. Its `wal/` is
//! emptied at every open, so its store's last frame is always the source's
//! and the next piece links to it.
//!
//! `Db::promote` makes it writable: a last pass, then a new history (a new
//! log id, as a restore's), then an ordinary open with the caller's options
//! (with an archive, it ships and backs up under its own history, and never
//! reads the source's again).

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;

use super::db::{Db, Inner};
use super::replay::Applier;
use crate::archive::Archive;
use crate::crypto::keyring::{ChainKey, Keyring, place_copy};
use crate::error::{Error, Result};
use crate::format::{
    KEYRING_DIR, KEYRING_MANIFEST_FILE, LOG_ID_LEN, PROMOTE_FILE, RESTORE_FILE, STANDBY_FILE,
    STORE_DIR, WAL_DIR,
};
use crate::fs::Files;
use crate::options::{MasterKeySource, Options};
use crate::restore::history::History;
use crate::restore::{RestoreOptions, RestoreTarget, replay_pieces, restore};
use crate::ship::names;
use crate::store::{Store, StoreMemory, key_codec};

/// How often a standby asks the archive for news, by default.
const POLL_INTERVAL_DEFAULT: Duration = Duration::from_secs(1);

/// What a standby follows.
#[derive(Clone)]
pub struct StandbyOptions {
    archive: Arc<dyn Archive>,
    history: Option<String>,
    poll_interval: Duration,
}

impl std::fmt::Debug for StandbyOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StandbyOptions")
            .field("archive", &self.archive)
            .field("history", &self.history)
            .field("poll_interval", &self.poll_interval)
            .finish()
    }
}

impl StandbyOptions {
    /// A standby of the database that ships to `archive`, polling every
    /// second.
    pub fn new(archive: Arc<dyn Archive>) -> StandbyOptions {
        StandbyOptions {
            archive,
            history: None,
            poll_interval: POLL_INTERVAL_DEFAULT,
        }
    }

    /// The history to follow (its log id in hex), when the archive holds
    /// several.
    pub fn history(mut self, log_id_hex: impl Into<String>) -> Self {
        self.history = Some(log_id_hex.into());
        self
    }

    /// How often to poll the archive.
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }
}

/// How far a standby is behind the database it follows.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StandbyStatus {
    /// The last frame applied.
    pub applied_lsn: crate::Lsn,
    /// The last frame the archive held at the last poll.
    pub archive_lsn: crate::Lsn,
    /// How long ago the last frame applied was committed, if the archive
    /// holds newer ones (zero when caught up).
    pub behind: Duration,
    /// When the last poll that reached the archive ended.
    pub last_poll: Option<SystemTime>,
    /// Why the last poll failed, if it did (an archive out of reach, a gap
    /// in its log): the standby serves what it has meanwhile.
    pub last_error: Option<String>,
}

/// The follower of one standby.
pub(crate) struct Follower {
    archive: Arc<dyn Archive>,
    root: crate::crypto::root::RootKey,
    log_id: [u8; LOG_ID_LEN],
    pub(crate) poll_interval: Duration,
    data_dir: std::path::PathBuf,
    files: Files,
    /// One pass at a time, and what the last one saw.
    seen: Mutex<Seen>,
}

#[derive(Default)]
struct Seen {
    /// The newest keyring copies applied (manifest's included), sorted.
    keyring: Vec<String>,
    archive_lsn: u64,
    last_poll: Option<SystemTime>,
    /// Why the last pass failed, if it did.
    last_error: Option<String>,
}

impl Db {
    /// Opens the standby in folder `path` (made by a restore of the
    /// archive's latest moment if it holds no database yet), following
    /// `standby`'s archive. `options` give the master key (the archive's),
    /// the file system and the clock; they must have no archive of their
    /// own (`InvalidArgument`): a standby ships nothing.
    pub fn open_standby(
        path: impl AsRef<std::path::Path>,
        options: Options,
        standby: StandbyOptions,
    ) -> Result<Db> {
        let path = path.as_ref();
        if options.archive.is_some() {
            return Err(Error::InvalidArgument(
                "a standby follows an archive and ships to none",
            ));
        }
        if standby.poll_interval.is_zero() {
            return Err(Error::InvalidArgument("a zero poll interval"));
        }
        let files = Files::new(Arc::clone(&options.file_system));
        let restoring = files.is_file(&path.join(RESTORE_FILE))?;
        let holds_store = files.is_dir(&path.join(STORE_DIR))?;
        if holds_store && !restoring {
            // Another database's folder: its log must not be touched.
            let Some(follows) = files.read_if_exists(&path.join(STANDBY_FILE))? else {
                return Err(Error::NotAStandby(path.to_path_buf()));
            };
            // A standby of another history than the one asked for.
            if let Some(asked) = &standby.history
                && follows.strip_suffix(b"\n") != Some(asked.as_bytes())
            {
                return Err(Error::InvalidArgument(
                    "this standby follows another history than the one asked for",
                ));
            }
        }
        if !holds_store || restoring {
            let mut restore_options =
                RestoreOptions::new(Arc::clone(&standby.archive), options.master_key.clone())
                    .target(RestoreTarget::Latest)
                    .file_system(Arc::clone(&options.file_system));
            if let Some(history) = &standby.history {
                restore_options = restore_options.history(history);
            }
            restore_options.keep_history = true;
            restore_options.memory = StoreMemory::from(&options);
            restore(path, &restore_options)?;
        }
        let manifest = Keyring::read_manifest(&files, &path.join(KEYRING_DIR))?
            .ok_or_else(|| Error::NotFound(path.to_path_buf()))?;
        // The root key once: later polls open the archive's manifest copies
        // with it, so the primary's master key may rotate.
        let master = crate::crypto::master::MasterKey::resolve(&options.master_key, &manifest.kdf)?;
        let root = manifest.open_root(&master)?;
        let follower = Follower {
            archive: Arc::clone(&standby.archive),
            root,
            log_id: manifest.log_id,
            poll_interval: standby.poll_interval,
            data_dir: path.to_path_buf(),
            files,
            seen: Mutex::new(Seen::default()),
        };
        let db = Db::open_with(path, options, Some(follower))?;
        // Caught up before it serves (errors leave it to the thread).
        if let Err(e) = db.inner.follow() {
            tracing::warn!(error = %e, "standby: the first pass failed; polling goes on");
        }
        Ok(db)
    }

    /// How far the standby is behind (`None` for a database that is not a
    /// standby).
    pub fn standby_status(&self) -> Option<StandbyStatus> {
        let follower = self.inner.standby.as_ref()?;
        let seen = follower.seen.lock();
        let applied = self.inner.store.applied().ok()?;
        let behind = match seen.archive_lsn > applied.lsn {
            true => SystemTime::now()
                .duration_since(UNIX_EPOCH + Duration::from_micros(applied.commit_us))
                .unwrap_or_default(),
            false => Duration::ZERO,
        };
        Some(StandbyStatus {
            applied_lsn: crate::Lsn(applied.lsn),
            archive_lsn: crate::Lsn(seen.archive_lsn.max(applied.lsn)),
            behind,
            last_poll: seen.last_poll,
            last_error: seen.last_error.clone(),
        })
    }

    /// Polls the archive now instead of at the next interval; returns the
    /// frames applied. `InvalidArgument` on a database that is not a
    /// standby.
    pub fn follow_now(&self) -> Result<u64> {
        self.inner.follow()
    }

    /// Makes this standby a database of its own: a last pass over the
    /// archive, then a new history (a new log id: it never writes into the
    /// one it followed), then an ordinary open with `options` (with an
    /// archive, it ships and backs up under its new history).
    pub fn promote(self, options: Options) -> Result<Db> {
        let Some(follower) = &self.inner.standby else {
            return Err(Error::InvalidArgument("only a standby is promoted"));
        };
        if let Err(e) = self.inner.follow() {
            tracing::warn!(error = %e, "promote: the last pass over the archive failed; promoting what was applied");
        }
        let (path, files) = (follower.data_dir.clone(), follower.files.clone());
        // Key versions retired on the primary after what was applied: the
        // store may hold records sealed under them (a rotation's re-sealing
        // not applied yet), and the database it becomes must read them.
        let history = History::open_with_root(&*follower.archive, follower.log_id, &follower.root)?;
        let applied = self.inner.store.applied()?.lsn;
        for (name, retired_at) in history.retired()? {
            if retired_at > applied {
                self.inner
                    .keyring
                    .readmit_retired(&history.get(&name)?, &name)?;
            }
        }
        drop(history);
        self.close()?;
        // Recorded first, finished by the next open if a crash stops it here.
        let mut new_id = [0u8; LOG_ID_LEN];
        crate::crypto::fill_random(&mut new_id);
        let line = format!("{}\n", names::history(&new_id));
        files.write_atomic(&path.join(PROMOTE_FILE), line.as_bytes())?;
        tracing::info!(new_history = %names::history(&new_id), "standby: promoting");
        Db::open(&path, options)
    }
}

/// Finishes the promotion recorded in `<path>/PROMOTING`, if there is one
/// (the caller holds the folder's lock): the store bound to the new
/// history, the standby's log emptied, the manifest rewritten with the new
/// log id, then `STANDBY` and `PROMOTING` removed, last. Every step may be
/// done again.
pub(crate) fn finish_promotion(
    files: &Files,
    path: &std::path::Path,
    master_key: &MasterKeySource,
) -> Result<()> {
    let record = path.join(PROMOTE_FILE);
    let Some(bytes) = files.read_if_exists(&record)? else {
        return Ok(());
    };
    let new_id = std::str::from_utf8(&bytes)
        .ok()
        .and_then(|t| t.strip_suffix('\n'))
        .and_then(|hex| names::parse_history(&format!("{hex}/")))
        .ok_or_else(|| {
            Error::corruption(
                &record,
                0,
                crate::error::CorruptionKind::Malformed("a bad promotion record"),
            )
        })?;
    let keyring_dir = path.join(KEYRING_DIR);
    let manifest =
        Keyring::read_manifest(files, &keyring_dir)?.ok_or_else(|| Error::NotFound(path.into()))?;
    let master = crate::crypto::master::MasterKey::resolve(master_key, &manifest.kdf)?;
    let root = manifest.open_root(&master)?;
    let manifest = match manifest.log_id == new_id {
        true => manifest.next(),
        false => manifest.for_history(new_id),
    };
    {
        let store = Store::open(path, StoreMemory::default())?;
        store.adopt(&new_id, manifest.epoch)?;
    }
    files.remove_dir_durable(&path.join(WAL_DIR))?;
    files.write_atomic(
        &keyring_dir.join(KEYRING_MANIFEST_FILE),
        &manifest.encode(&ChainKey::new(&root)),
    )?;
    files.remove_durable(&path.join(STANDBY_FILE))?;
    files.remove_durable(&record)?;
    tracing::info!(new_history = %names::history(&new_id), "standby promoted");
    Ok(())
}

impl Inner {
    /// `Error::Standby` on a standby: what would change the database.
    pub(crate) fn check_writable(&self) -> Result<()> {
        match self.standby {
            Some(_) => Err(Error::Standby),
            None => Ok(()),
        }
    }

    /// One pass of the standby over the archive: the keyring, then the log.
    /// Returns the frames applied.
    pub(crate) fn follow(&self) -> Result<u64> {
        let Some(follower) = &self.standby else {
            return Err(Error::InvalidArgument("not a standby"));
        };
        let mut seen = follower.seen.lock();
        let passed = self.follow_pass(follower, &mut seen);
        seen.last_error = passed.as_ref().err().map(|e| e.to_string());
        passed
    }

    fn follow_pass(&self, follower: &Follower, seen: &mut Seen) -> Result<u64> {
        let history = History::open_with_root(&*follower.archive, follower.log_id, &follower.root)?;
        // The log listed before the keyring: the primary puts a record's
        // key before the piece that holds it, so every piece listed here
        // has its keys in the copies listed next.
        let pieces = history.pieces()?;
        let archive_lsn = pieces.iter().map(|p| p.last).max().unwrap_or(0);
        let mut copies = history.keyring_copies()?;
        copies.push(history.manifest_name.clone());
        copies.sort();
        if copies != seen.keyring {
            self.take_keyring(follower, &history, &copies, &seen.keyring)?;
            seen.keyring = copies;
        }
        let mut applier = Applier::new(&self.store, &self.keyring)?;
        let before = applier.last().lsn;
        replay_pieces(
            &history,
            &pieces,
            &mut applier,
            RestoreTarget::Latest,
            2,
            |_, _| {},
        )?;
        let applied = applier.last();
        self.commit.follow_to(applied.lsn, applied.commit_us);
        seen.archive_lsn = archive_lsn;
        seen.last_poll = Some(SystemTime::now());
        Ok(applied.lsn - before)
    }

    /// Writes the archive's newest keyring copies that are new since the
    /// last pass over the local files and reloads the keyring from them;
    /// then deletes the records of every scope destroyed now.
    fn take_keyring(
        &self,
        follower: &Follower,
        history: &History<'_>,
        copies: &[String],
        known: &[String],
    ) -> Result<()> {
        let dir = follower.data_dir.join(KEYRING_DIR);
        // Every new copy fetched (and opened) before any file is written: a
        // pass that fails on the network leaves the files as they were.
        let mut fetched = Vec::new();
        for name in copies {
            if known.binary_search(name).is_err() && *name != history.manifest_name {
                fetched.push((name, history.get(name)?));
            }
        }
        for (name, bytes) in &fetched {
            place_copy(&follower.files, &dir, &history.root, bytes, name, None)?;
        }
        follower.files.write_atomic(
            &dir.join(KEYRING_MANIFEST_FILE),
            &history.manifest.encode(&ChainKey::new(&history.root)),
        )?;
        let manifest = Keyring::read_manifest(&follower.files, &dir)?
            .ok_or_else(|| Error::NotFound(dir.clone()))?;
        let reloaded = self.keyring.reload(manifest);
        // Seals and shreds of the primary's come with the keyring.
        self.scan_cache.clear();
        reloaded?;
        // Versions the primary retired that the store may still hold
        // records under (re-sealing not applied yet): in memory only.
        let applied = self.store.applied()?.lsn;
        for (name, retired_at) in history.retired()? {
            if retired_at > applied {
                self.keyring.add_retired(&history.get(&name)?, &name)?;
            }
        }
        for scope in self.store.scopes()? {
            if self.keyring.is_destroyed(scope)? {
                self.store
                    .reclaim_prefix(&key_codec::scope_prefix(scope), self.keyring.epoch())?;
                tracing::info!(%scope, "standby: a destroyed scope's records removed");
            }
        }
        Ok(())
    }
}
