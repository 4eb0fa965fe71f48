//! Point-in-time restore: a database as it was at one moment, rebuilt from
//! an archive with the master key alone, into a new folder.
//!
//! A restore picks the newest backup at or before the target, fetches its
//! files (several at once), and replays the archived log over it with the
//! one replay loop (`engine::replay::Applier`) up to the target,
//! exactly: the state after the last commit at or before it, nothing after.
//! The keyring is the archive's current one, never the keyring as it was at
//! the target: a scope destroyed since (even after the target) stays
//! destroyed, its records skipped by the replay and removed from the
//! backup's store, and reported; a seal pending now is pending in the
//! restore, with its deadline. Key versions that rotations retired after
//! the target are put back (the restore's records may be sealed under
//! them); the restored database's own rotation retires them again.
//!
//! The restored database starts a new history (a new log id): when it runs
//! with an archive it ships under its own name and never writes into the
//! history it came from. It links to it: its log's first frame is chained
//! to the source's frame at the target (that frame's MAC is its link).
//!
//! A restore records what it does in `RESTORING` (`marker.rs`) before it
//! writes anything else: a restore killed half-way and run again with the
//! same request finishes it (the backup's files already fetched are kept,
//! and the replay goes on from the store's last frame, as recovery does),
//! and the folder cannot be opened as a database until it has.

pub(crate) mod history;
pub(crate) mod marker;
pub(crate) mod verify;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use history::{BackupName, History, PieceName};
use marker::{Marker, Stage};

use crate::Lsn;
use crate::archive::Archive;
use crate::archive::fetch::{in_order, parallel};
use crate::clock::SystemClock;
use crate::crypto::keyring::{ChainKey, Keyring, Manifest, place_copy};
use crate::crypto::root::RootKey;
use crate::engine::db::lock_data_dir;
use crate::engine::replay::Applier;
use crate::error::{CorruptionKind, Error, RestoreError, Result};
use crate::format::{
    KEYRING_DIR, KEYRING_MANIFEST_FILE, LOCK_FILE, LOG_ID_LEN, RESTORE_FILE, STANDBY_FILE,
    STORE_DIR, TMP_SUFFIX, WAL_DIR,
};
use crate::fs::{FileSystem, Files, OsFileSystem};
use crate::options::MasterKeySource;
use crate::scope::{Scope, TenantId};
use crate::ship::names;
use crate::store::{Store, StoreMemory, key_codec};
use crate::wal::read_piece;

pub use verify::{Problem, VerifyOptions, VerifyReport, verify};

/// The histories in `archive`: the log id, in hex, of every database that
/// has shipped to it (a restored database ships under a history of its
/// own).
pub fn histories(archive: &dyn Archive) -> Result<Vec<String>> {
    Ok(history::histories(archive)?
        .iter()
        .map(names::history)
        .collect())
}

/// What one history of an archive holds ([`describe`]).
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistorySummary {
    /// Its name (log id, hex).
    pub name: String,
    /// Its backups, oldest first.
    pub backups: Vec<BackupSummary>,
    /// Its log pieces: (first LSN, last LSN, pieces, bytes), if any.
    pub log: Option<(Lsn, Lsn, usize, u64)>,
    /// The oldest moment a restore reaches: the oldest backup's LSN, or 0
    /// when the log reaches back to the first commit.
    pub oldest_lsn: Option<Lsn>,
    /// The newest: the last frame in the archive.
    pub newest_lsn: Lsn,
}

/// A backup, as [`describe`] reports it.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupSummary {
    /// Its manifest's object name.
    pub name: String,
    /// The LSN it holds the store at.
    pub lsn: Lsn,
    /// That LSN's commit time.
    pub commit_time: SystemTime,
    /// Its files, and their bytes.
    pub files: usize,
    /// Bytes of its files.
    pub bytes: u64,
}

/// Every history in `archive`, opened with the master key: its backups
/// (each manifest read), its log's range, and the moments a restore from
/// it reaches.
pub fn describe(
    archive: &dyn Archive,
    master_key: &MasterKeySource,
) -> Result<Vec<HistorySummary>> {
    let mut out = Vec::new();
    for log_id in history::histories(archive)? {
        let history = History::open(archive, log_id, master_key)?;
        let mut backups = Vec::new();
        for b in history.backups()? {
            let manifest = history.backup(&b.name)?;
            backups.push(BackupSummary {
                lsn: Lsn(b.lsn),
                commit_time: from_micros(manifest.applied.commit_us),
                files: manifest.files.len(),
                bytes: manifest.size(),
                name: b.name,
            });
        }
        let pieces = history.pieces()?;
        let log = pieces.first().map(|first| {
            (
                Lsn(first.first),
                Lsn(pieces.iter().map(|p| p.last).max().unwrap_or(first.last)),
                pieces.len(),
                pieces.iter().map(|p| p.size).sum(),
            )
        });
        let oldest_lsn = match (backups.first(), pieces.first()) {
            (_, Some(p)) if p.first == 1 => Some(Lsn(0)),
            (Some(b), _) => Some(b.lsn),
            (None, _) => None,
        };
        let newest_lsn = log
            .map(|l| l.1)
            .into_iter()
            .chain(backups.iter().map(|b| b.lsn))
            .max()
            .unwrap_or(Lsn(0));
        out.push(HistorySummary {
            name: history.name(),
            backups,
            log,
            oldest_lsn,
            newest_lsn,
        });
    }
    Ok(out)
}

/// The files of backup `name` (its manifest's object name) in `archive`:
/// (file name, size, the SST object that holds it, or `None` for a small
/// file kept in the manifest itself).
pub fn backup_files(
    archive: &dyn Archive,
    master_key: &MasterKeySource,
    name: &str,
) -> Result<Vec<(String, u64, Option<String>)>> {
    let log_id = history::histories(archive)?
        .into_iter()
        .find(|id| name.starts_with(&format!("{}/", names::history(id))))
        .ok_or_else(|| crate::archive::ArchiveError::NotFound {
            name: name.to_owned(),
        })?;
    let history = History::open(archive, log_id, master_key)?;
    Ok(history
        .backup(name)?
        .files
        .into_iter()
        .map(|f| {
            let object = match f.body {
                crate::ship::backup::Body::Object(o) => Some(o),
                crate::ship::backup::Body::Inline(_) => None,
            };
            (f.name, f.size, object)
        })
        .collect())
}

/// How many archive calls a restore makes at once, by default.
const FETCH_THREADS: usize = 4;

/// The moment a restore rebuilds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestoreTarget {
    /// The last frame in the archive.
    Latest,
    /// The state just after the commit with this LSN.
    Lsn(Lsn),
    /// The state after the last commit at or before this time (to the
    /// microsecond: commit times are recorded in microseconds, and never go
    /// backwards along the log).
    Time(SystemTime),
}

impl RestoreTarget {
    /// A comparable form: (kind, LSN or microseconds since the epoch).
    fn key(self) -> (u8, u64) {
        match self {
            RestoreTarget::Latest => (0, 0),
            RestoreTarget::Lsn(lsn) => (1, lsn.0),
            RestoreTarget::Time(t) => (2, micros(t)),
        }
    }

    /// Whether a frame committed with `lsn` at `commit_us` is past it.
    fn is_past(self, lsn: u64, commit_us: u64) -> bool {
        match self {
            RestoreTarget::Latest => false,
            RestoreTarget::Lsn(target) => lsn > target.0,
            RestoreTarget::Time(t) => commit_us > micros(t),
        }
    }
}

/// Microseconds since the Unix epoch (0 before it).
fn micros(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

fn from_micros(us: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_micros(us)
}

/// A time as RFC 3339, in UTC, to the microsecond (for messages).
pub(crate) fn display_time(t: SystemTime) -> String {
    let us = micros(t);
    let (secs, frac) = (us / 1_000_000, us % 1_000_000);
    let (year, month, day) = crate::ship::retention::civil_from_days(secs / 86_400);
    let rem = secs % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{frac:06}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// What a restore reports as it goes.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestoreProgress {
    /// What it is doing.
    pub stage: RestoreStage,
    /// Bytes fetched in this stage so far.
    pub done_bytes: u64,
    /// Bytes this stage fetches at most (the log's: every piece up to the
    /// target, which a time target may stop short of).
    pub total_bytes: u64,
}

/// A stage of a restore.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestoreStage {
    /// Fetching the backup's files.
    Backup,
    /// Fetching and replaying the log.
    Log,
}

/// How to restore: from which archive, with which master key, to when.
#[derive(Clone)]
pub struct RestoreOptions {
    archive: Arc<dyn Archive>,
    master_key: MasterKeySource,
    target: RestoreTarget,
    history: Option<String>,
    tenant: Option<TenantId>,
    threads: usize,
    file_system: Arc<dyn FileSystem>,
    progress: Option<Arc<dyn Fn(RestoreProgress) + Send + Sync>>,
    /// Keeps the source's history (a standby, which goes on applying it)
    /// instead of starting a new one.
    pub(crate) keep_history: bool,
    /// The restored store's memory while it replays (a standby's: its
    /// options'; default: the defaults).
    pub(crate) memory: StoreMemory,
}

impl std::fmt::Debug for RestoreOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RestoreOptions")
            .field("archive", &self.archive)
            .field("target", &self.target)
            .field("history", &self.history)
            .field("tenant", &self.tenant)
            .field("threads", &self.threads)
            .finish_non_exhaustive()
    }
}

impl RestoreOptions {
    /// A restore from `archive`, opened with `master_key` (the archive's
    /// current one), to the latest moment the archive holds.
    pub fn new(archive: Arc<dyn Archive>, master_key: MasterKeySource) -> RestoreOptions {
        RestoreOptions {
            archive,
            master_key,
            target: RestoreTarget::Latest,
            history: None,
            tenant: None,
            threads: FETCH_THREADS,
            file_system: Arc::new(OsFileSystem),
            progress: None,
            keep_history: false,
            memory: StoreMemory::default(),
        }
    }

    /// The moment to restore (default: the latest).
    pub fn target(mut self, target: RestoreTarget) -> Self {
        self.target = target;
        self
    }

    /// The history to restore from (its log id, 32 hex digits): needed when
    /// the archive holds several (a database and databases restored from
    /// it), else the one there is.
    pub fn history(mut self, log_id_hex: impl Into<String>) -> Self {
        self.history = Some(log_id_hex.into());
        self
    }

    /// Restores one tenant only: the records of its own scope and of its
    /// subjects; every other tenant's records are left out (the backup's
    /// are removed, the log's skipped).
    pub fn tenant(mut self, tenant: TenantId) -> Self {
        self.tenant = Some(tenant);
        self
    }

    /// How many archive calls run at once (default 4).
    pub fn threads(mut self, threads: usize) -> Self {
        self.threads = threads.max(1);
        self
    }

    /// The file system the restored database is written through (tests
    /// use a fault-injecting one).
    pub fn file_system(mut self, fs: Arc<dyn FileSystem>) -> Self {
        self.file_system = fs;
        self
    }

    /// Called as the restore goes (from the restoring thread and its
    /// fetchers: keep it quick).
    pub fn progress(mut self, progress: impl Fn(RestoreProgress) + Send + Sync + 'static) -> Self {
        self.progress = Some(Arc::new(progress));
        self
    }
}

/// What a restore did.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreReport {
    /// The history restored from (its log id in hex).
    pub history: String,
    /// The restored database's own, new history.
    pub new_history: String,
    /// The backup it started from (`None`: from an empty store, the
    /// archive's log reaching back to the first commit).
    pub backup: Option<RestoredBackup>,
    /// The last commit in the restore (0: none).
    pub lsn: Lsn,
    /// Its commit time (`None` for no commit).
    pub commit_time: Option<SystemTime>,
    /// Frames replayed from the archive's log.
    pub frames: u64,
    /// Bytes fetched from the archive by this run.
    pub bytes_fetched: u64,
    /// The archive's last frame (a restore to the latest moment reaches it).
    pub archive_last_lsn: Lsn,
    /// Scopes that held records at the target and are destroyed now: their
    /// records are not in the restore (their keys are gone everywhere).
    pub destroyed: Vec<Scope>,
    /// Scopes sealed now, with the deadline of their destruction: sealed
    /// in the restore too.
    pub sealed: Vec<(Scope, SystemTime)>,
    /// Key versions that rotations retired after the target, put back.
    pub readmitted_key_versions: usize,
}

/// The backup a restore started from.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoredBackup {
    /// Its manifest's object name.
    pub name: String,
    /// The LSN it holds the store at.
    pub lsn: Lsn,
    /// The commit time of that LSN.
    pub commit_time: SystemTime,
}

/// Restores a database from `options`' archive into folder `dest` (new, or
/// empty, or holding an unfinished restore of the same request, which this
/// finishes). The result opens with [`crate::Db::open`] and the same
/// master key.
pub fn restore(dest: impl AsRef<Path>, options: &RestoreOptions) -> Result<RestoreReport> {
    let dest = dest.as_ref();
    let files = Files::new(Arc::clone(&options.file_system));
    check_dest(&files, dest)?;
    let _lock = lock_data_dir(&files, dest, true)?;
    // Again under the lock: another run may have finished meanwhile.
    let resuming = check_dest(&files, dest)?;
    let history = History::choose(
        &*options.archive,
        options.history.as_deref(),
        &options.master_key,
    )?;
    let run = Run {
        options,
        files: &files,
        dest,
        history: &history,
        fetched: AtomicU64::new(0),
    };
    let pieces = history.pieces()?;
    let backups = history.backups()?;
    // The archive reaches its last piece's last frame, or its newest
    // backup's (a backup may be ahead of the shipping).
    let archive_last = pieces
        .iter()
        .map(|p| p.last)
        .chain(backups.iter().map(|b| b.lsn))
        .max()
        .unwrap_or(0);
    if let RestoreTarget::Lsn(target) = options.target
        && target.0 > archive_last
    {
        return Err(RestoreError::PastEnd {
            target: target.0,
            last: archive_last,
        }
        .into());
    }
    let asked = Marker {
        standby: options.keep_history,
        history: history.log_id,
        target: options.target,
        tenant: options.tenant,
        backup: None,
        new_history: [0; LOG_ID_LEN],
        stage: Stage::Fetch,
    };
    let mut marker = match resuming {
        Some(marker) if marker.same_request(&asked) => marker,
        Some(other) => {
            return Err(RestoreError::OtherRestore {
                path: dest.to_path_buf(),
                plan: other.request(),
            }
            .into());
        }
        None => {
            let start = run.choose_backup(&backups, &pieces)?;
            let mut new_history = history.log_id;
            if !options.keep_history {
                crate::crypto::fill_random(&mut new_history);
            }
            let marker = Marker {
                backup: start.map(|b| b.name),
                new_history,
                ..asked
            };
            marker.write(&files, dest)?;
            marker
        }
    };
    tracing::info!(
        history = %history.name(),
        new_history = %names::history(&marker.new_history),
        backup = marker.backup.as_deref().unwrap_or("none"),
        "restore: started"
    );
    let keyring = run.fetch_keyring(&marker)?;
    let backup = match &marker.backup {
        // Its files are all fetched at stage Replay: a manifest retention
        // deleted since only leaves the report without it.
        Some(name) => match history.backup(name) {
            Ok(manifest) => Some((name.clone(), manifest)),
            Err(_) if marker.stage == Stage::Replay => None,
            Err(e) => return Err(e),
        },
        None => None,
    };
    if marker.stage == Stage::Fetch {
        if let Some((name, manifest)) = &backup {
            run.fetch_backup(name, manifest)?;
        }
        marker.stage = Stage::Replay;
        marker.write(&files, dest)?;
    }
    let store = Store::open(dest, options.memory)?;
    if let Some(tenant) = options.tenant {
        store.retain_prefix(&key_codec::shred_prefix(Scope::tenant(tenant)))?;
    }
    let mut applier = Applier::new(&store, &keyring)?;
    if let Some(tenant) = options.tenant {
        applier.only_tenant(tenant);
    }
    run.replay(&pieces, &mut applier)?;
    let (last, frames) = (applier.last(), applier.frames());
    let mut destroyed = std::mem::take(applier.skipped_mut());
    drop(applier);
    if let RestoreTarget::Lsn(target) = options.target
        && last.lsn < target.0
    {
        return Err(RestoreError::PastEnd {
            target: target.0,
            last: last.lsn,
        }
        .into());
    }
    // A shred made while this ran reaches the restore too: the archive's
    // keyring as it is now, if it moved.
    let latest = History::open_with_root(&*options.archive, history.log_id, &history.root)?;
    let moved = latest.manifest_name != history.manifest_name
        || latest.keyring_copies()? != history.keyring_copies()?;
    let run = Run {
        history: if moved { &latest } else { &history },
        ..run
    };
    let keyring = match moved {
        true => {
            drop(keyring);
            tracing::info!("restore: the archive's keyring moved during the restore; taken again");
            run.fetch_keyring(&marker)?
        }
        false => keyring,
    };
    let readmitted = run.readmit_retired(&keyring, last.lsn)?;
    // Records of scopes destroyed since the backup was taken: out of the
    // store (the replay skipped the log's).
    for scope in store.scopes()? {
        if keyring.is_destroyed(scope)? {
            store.reclaim_prefix(&key_codec::scope_prefix(scope), keyring.epoch())?;
            destroyed.insert(scope);
        }
    }
    store.adopt(&marker.new_history, keyring.epoch())?;
    files.remove_dir_durable(&dest.join(WAL_DIR))?;
    files.create_dir_durable(&dest.join(WAL_DIR))?;
    // Seals still running (the ledger also holds those of scopes already
    // destroyed whose space the source had not reclaimed yet).
    let mut sealed = Vec::new();
    for (scope, deadline) in keyring.pending_seals() {
        if !keyring.is_destroyed(scope)? {
            sealed.push((scope, from_micros(deadline)));
        }
    }
    drop(store);
    if options.keep_history {
        // A standby's seed: the folder opens only as a standby.
        let line = format!("{}\n", names::history(&marker.new_history));
        files.write_atomic(&dest.join(STANDBY_FILE), line.as_bytes())?;
    }
    files.remove_durable(&dest.join(RESTORE_FILE))?;
    let report = RestoreReport {
        history: history.name(),
        new_history: names::history(&marker.new_history),
        backup: backup.map(|(name, manifest)| RestoredBackup {
            name,
            lsn: Lsn(manifest.applied.lsn),
            commit_time: from_micros(manifest.applied.commit_us),
        }),
        lsn: Lsn(last.lsn),
        commit_time: (last.lsn > 0).then(|| from_micros(last.commit_us)),
        frames,
        bytes_fetched: run.fetched.load(Ordering::Relaxed),
        archive_last_lsn: Lsn(archive_last),
        destroyed: destroyed.into_iter().collect(),
        sealed,
        readmitted_key_versions: readmitted,
    };
    tracing::info!(
        lsn = report.lsn.0,
        frames = report.frames,
        bytes = report.bytes_fetched,
        destroyed = report.destroyed.len(),
        "restore: done"
    );
    Ok(report)
}

/// Whether `dest` may take a restore: missing or empty (`None`: a new
/// restore), or holding an unfinished one (its record). Anything else is
/// [`RestoreError::NotEmpty`].
fn check_dest(files: &Files, dest: &Path) -> Result<Option<Marker>> {
    if files.is_file(dest)? {
        return Err(RestoreError::NotEmpty(dest.to_path_buf()).into());
    }
    if !files.is_dir(dest)? {
        return Ok(None);
    }
    if let Some(marker) = Marker::read(files, dest)? {
        return Ok(Some(marker));
    }
    // A lock file, and perhaps the record's temporary file: a restore that
    // stopped before its record was in place.
    let record_tmp = format!("{RESTORE_FILE}{TMP_SUFFIX}");
    if files
        .list(dest)?
        .iter()
        .all(|n| n == LOCK_FILE || *n == record_tmp)
    {
        return Ok(None);
    }
    Err(RestoreError::NotEmpty(dest.to_path_buf()).into())
}

/// One restore's shared state.
struct Run<'a> {
    options: &'a RestoreOptions,
    files: &'a Files,
    dest: &'a Path,
    history: &'a History<'a>,
    /// Bytes fetched so far.
    fetched: AtomicU64,
}

impl Run<'_> {
    fn progress(&self, stage: RestoreStage, done_bytes: u64, total_bytes: u64) {
        if let Some(progress) = &self.options.progress {
            progress(RestoreProgress {
                stage,
                done_bytes,
                total_bytes,
            });
        }
    }

    /// The newest backup at or before the target; `None` to start from an
    /// empty store, when there is none and the archive's log starts at the
    /// first commit.
    fn choose_backup(
        &self,
        backups: &[BackupName],
        pieces: &[PieceName],
    ) -> Result<Option<BackupName>> {
        let log_from_start = pieces.first().is_some_and(|p| p.first == 1);
        let chosen = match self.options.target {
            RestoreTarget::Latest => backups.last().cloned(),
            RestoreTarget::Lsn(target) => backups.iter().rev().find(|b| b.lsn <= target.0).cloned(),
            RestoreTarget::Time(t) => {
                // Commit times never go backwards along the log, so the
                // backups (by LSN) are in time order too: a binary search
                // reads a handful of manifests, not all of them.
                let at = micros(t);
                let (mut lo, mut hi) = (0, backups.len());
                while lo < hi {
                    let mid = lo + (hi - lo) / 2;
                    if self.history.backup(&backups[mid].name)?.applied.commit_us <= at {
                        lo = mid + 1;
                    } else {
                        hi = mid;
                    }
                }
                lo.checked_sub(1).map(|i| backups[i].clone())
            }
        };
        match (chosen, backups.first()) {
            (Some(backup), _) => Ok(Some(backup)),
            (None, _) if log_from_start => Ok(None),
            (None, Some(oldest)) => {
                let manifest = self.history.backup(&oldest.name)?;
                Err(RestoreError::BeforeOldest {
                    oldest_lsn: oldest.lsn,
                    oldest_time: Some(from_micros(manifest.applied.commit_us)),
                }
                .into())
            }
            (None, None) => Err(RestoreError::BeforeOldest {
                oldest_lsn: pieces.first().map_or(0, |p| p.first.saturating_sub(1)),
                oldest_time: None,
            }
            .into()),
        }
    }

    /// The archive's current keyring, as the restored database's (its
    /// manifest naming the new history), opened. Fetched again at every
    /// run, so a run after a crash honours destructions made meanwhile.
    fn fetch_keyring(&self, marker: &Marker) -> Result<Keyring> {
        let dir = self.dest.join(KEYRING_DIR);
        self.files.remove_dir_durable(&dir)?;
        self.files.create_dir_durable(&dir)?;
        let copies = self.history.keyring_copies()?;
        parallel(&copies, self.options.threads, |name| {
            let bytes = self.history.get(name)?;
            self.fetched
                .fetch_add(bytes.len() as u64, Ordering::Relaxed);
            // A per-tenant restore writes no other tenant's subject keys.
            let only = self.options.tenant;
            place_copy(self.files, &dir, &self.history.root, &bytes, name, only).map(drop)
        })?;
        let path = dir.join(KEYRING_MANIFEST_FILE);
        let manifest = match marker.new_history == self.history.log_id {
            true => self.history.manifest.clone(),
            false => self.history.manifest.for_history(marker.new_history),
        };
        let bytes = manifest.encode(&ChainKey::new(&self.history.root));
        self.files.write_atomic(&path, &bytes)?;
        let manifest = Manifest::decode(&path, &bytes)?;
        let root = RootKey::from_secret(self.history.root.secret().clone());
        let keyring = Keyring::open(self.files, &dir, manifest, root, Arc::new(SystemClock))?;
        if let Some(tenant) = self.options.tenant {
            // A per-tenant restore holds that tenant's keys alone.
            keyring.keep_only_tenant(tenant)?;
        }
        Ok(keyring)
    }

    /// Fetches the backup's files into the store's folder.
    fn fetch_backup(
        &self,
        name: &str,
        manifest: &crate::ship::backup::BackupManifest,
    ) -> Result<()> {
        let total = manifest.size();
        let done = AtomicU64::new(0);
        manifest.fetch_into(
            &|object| self.history.get(object),
            name,
            self.files,
            &self.dest.join(STORE_DIR),
            self.options.threads,
            &|bytes| {
                self.fetched.fetch_add(bytes, Ordering::Relaxed);
                let done = done.fetch_add(bytes, Ordering::Relaxed) + bytes;
                self.progress(RestoreStage::Backup, done, total);
            },
        )
    }

    /// Replays the archive's pieces after the store's last frame, up to the
    /// target, through `applier`.
    fn replay(&self, pieces: &[PieceName], applier: &mut Applier<'_>) -> Result<()> {
        replay_pieces(
            self.history,
            pieces,
            applier,
            self.options.target,
            self.options.threads,
            |done, total| {
                self.fetched.fetch_add(done.1, Ordering::Relaxed);
                self.progress(RestoreStage::Log, done.0, total);
            },
        )
    }

    /// Puts back the key versions rotations retired after `lsn` (records
    /// at `lsn` may be sealed under them). Returns how many.
    fn readmit_retired(&self, keyring: &Keyring, lsn: u64) -> Result<usize> {
        let mut readmitted = 0;
        for (name, retired_at) in self.history.retired()? {
            if retired_at > lsn && keyring.readmit_retired(&self.history.get(&name)?, &name)? {
                readmitted += 1;
            }
        }
        Ok(readmitted)
    }
}

/// Replays `pieces` of `history` (sorted, as [`History::pieces`] lists
/// them) that follow the store's last frame through `applier`, fetching
/// `threads` at a time, up to `target`: the one replay loop's feed from an
/// archive, for a restore and for a standby. `fetched((done, piece), total)`
/// is told the bytes fetched so far and of each piece. A gap before the
/// target is [`RestoreError::Gap`].
pub(crate) fn replay_pieces(
    history: &History<'_>,
    pieces: &[PieceName],
    applier: &mut Applier<'_>,
    target: RestoreTarget,
    threads: usize,
    mut fetched: impl FnMut((u64, u64), u64),
) -> Result<()> {
    // The pieces that continue the store's last frame, up to the target's
    // LSN if it has one, or to the first gap.
    let mut todo: Vec<&PieceName> = Vec::new();
    let mut gap = None;
    let mut reach = applier.last().lsn;
    for piece in pieces {
        if target.is_past(reach + 1, 0) {
            break;
        }
        if piece.last <= reach {
            continue; // in the store already, or an overlapped piece
        }
        if piece.first > reach + 1 {
            gap = Some(RestoreError::Gap {
                after: reach,
                next: piece.first,
                piece: piece.name.clone(),
            });
            break;
        }
        todo.push(piece);
        reach = piece.last;
    }
    let total: u64 = todo.iter().map(|p| p.size).sum();
    let (mut done, mut reached) = (0, false);
    in_order(
        &todo,
        threads,
        2 * threads,
        |piece| history.get(&piece.name),
        |i, bytes| {
            let piece = todo[i];
            done += piece.size;
            let source = Path::new(&piece.name);
            read_piece(source, &bytes, &history.mac_key, &history.log_id, |frame| {
                reached |= target.is_past(frame.header.lsn, frame.header.commit_time_us);
                if !reached {
                    applier
                        .apply(frame, source)
                        .map_err(|e| gap_error(e, piece))?;
                }
                Ok(())
            })?;
            fetched((done, piece.size), total);
            Ok(!reached)
        },
    )?;
    // A target past a gap cannot be reached exactly (the missing frames may
    // be before it); one before the gap was reached above.
    match gap {
        Some(gap) if !reached && !target.is_past(applier.last().lsn + 1, 0) => Err(gap.into()),
        _ => Ok(()),
    }
}

/// A gap the applier found, as the restore's error naming the piece.
fn gap_error(e: Error, piece: &PieceName) -> Error {
    match e {
        Error::Corruption {
            kind: CorruptionKind::LogGap { applied, first },
            ..
        } => RestoreError::Gap {
            after: applied,
            next: first,
            piece: piece.name.clone(),
        }
        .into(),
        other => other,
    }
}
