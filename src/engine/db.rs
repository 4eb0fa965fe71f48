//! The database: open (and recovery), background work, and close.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

use super::commit::GroupCommit;
use super::deadline::{ClockState, Deadlines};
use super::replay::{check_store_history, replay};
use crate::crypto::keyring::{Keyring, Manifest};
use crate::crypto::master::{Kdf, MasterKey};
use crate::crypto::nonce::NonceSource;
use crate::crypto::root::RootKey;
use crate::error::{CorruptionKind, Error, Result};
use crate::format::{
    CHECKPOINT_DIR, KEYRING_DIR, KEYRING_MANIFEST_FILE, LOCK_FILE, LOG_ID_LEN, PROMOTE_FILE,
    RESTORE_FILE, SEGMENT_BYTES_MIN, SHIPPED_FILE, STANDBY_FILE, STORE_DIR, WAL_DIR,
};
use crate::fs::{FileLock, Files};
use crate::options::{Durability, MEMTABLE_BYTES_MIN, MasterKeySource, Options};
use crate::ship::backup::{BackupInfo, Backups, checkpoint_store};
use crate::ship::keys::KeyringShipper;
use crate::ship::shipper::Shipper;
use crate::store::{Store, StoreMemory};
use crate::wal::{LogWriter, SegmentOptions};

/// How often the background thread runs maintenance: removing redundant
/// log segments, and completing shreds whose deadline has passed.
const MAINTENANCE_POLL: Duration = Duration::from_millis(200);

/// How long an open waits for a lock that another holder has (see
/// [`lock_data_dir`]) before it is `InUse`.
const LOCK_WAIT_MAX: Duration = Duration::from_millis(250);

/// How long one background maintenance run may spend on key rotations.
const ROTATION_BUDGET: Duration = Duration::from_millis(100);

/// How far the log is shipped ([`Db::archive_status`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArchiveStatus {
    /// The last frame in the archive.
    pub shipped_lsn: crate::Lsn,
    /// Bytes of local log not in the archive yet, as of the last pass
    /// (counted by whole files from the first unshipped frame: an
    /// overestimate by the zeros written ahead of the frames).
    pub unshipped_bytes: u64,
}

/// The state every handle shares.
pub(crate) struct Inner {
    pub(crate) keyring: Keyring,
    pub(crate) store: Store,
    pub(crate) commit: GroupCommit,
    /// The time deadlines are compared with.
    pub(crate) deadlines: Deadlines,
    pub(crate) compression_threshold: usize,
    /// Opens scans' records ahead of them.
    pub(crate) read_ahead: super::read_ahead::ReadAhead,
    /// Opened records of scopes scanned whole, if it has a budget.
    pub(crate) scan_cache: super::scan_cache::ScanCache,
    /// Nonces of the records this open seals.
    pub(crate) nonces: NonceSource,
    /// Ships the log to the archive, if there is one.
    pub(crate) shipper: Option<Shipper>,
    /// Takes base backups into the archive, if there is one.
    backups: Option<Backups>,
    /// Keeps the keyring's copies in the archive, if there is one.
    pub(crate) keyring_shipper: Option<KeyringShipper>,
    /// Which backups the archive keeps (`None`: all).
    retention: Option<crate::RetentionPolicy>,
    /// Unshipped log above which writes are refused.
    unshipped_bytes_max: u64,
    /// The last frame whose keys the archive holds: the log ships up to it
    /// (see `ship_until`).
    keys_archived_through: std::sync::atomic::AtomicU64,
    /// Follows another database's archive, if this is a standby.
    pub(crate) standby: Option<super::standby::Follower>,
    /// Wakes the shipping thread early.
    ship_wake: Arc<ShipWake>,
    /// Set when the database starts closing: long background work (a
    /// backup, a shipping pass) stops between two of its uploads.
    stopping: AtomicBool,
    /// One maintenance pass at a time (the background thread's, or a
    /// caller's `run_maintenance`), so no work is done twice at once.
    maintenance: Mutex<()>,
    /// The data directory's lock, held while anything above is open (the
    /// last field: dropped after the store is closed).
    _lock: Box<dyn FileLock>,
}

/// An open strongroom database. Cheap to share across threads by reference
/// (`Db: Send + Sync`).
///
/// Dropping it stops the background work, syncs the log and flushes the
/// store; [`Db::close`] does the same and reports errors.
pub struct Db {
    pub(crate) inner: Arc<Inner>,
    background: Background,
    closed: bool,
}

impl Db {
    /// Opens the database in folder `path`, creating it if missing (unless
    /// `options.create_if_missing` is off).
    ///
    /// Checks the master key before reading or writing anything else, then
    /// replays the log into the store, cutting off a torn tail.
    pub fn open(path: impl AsRef<Path>, options: Options) -> Result<Db> {
        Db::open_with(path.as_ref(), options, None)
    }

    /// [`Db::open`], as a standby with `standby`'s follower.
    pub(crate) fn open_with(
        path: &Path,
        options: Options,
        standby: Option<super::standby::Follower>,
    ) -> Result<Db> {
        if options.segment_bytes_max < SEGMENT_BYTES_MIN {
            return Err(Error::InvalidArgument("segment_bytes_max below 4 KiB"));
        }
        if options.memtable_bytes < MEMTABLE_BYTES_MIN {
            return Err(Error::InvalidArgument("memtable_bytes below 64 KiB"));
        }
        if let Some(archive) = &options.archive
            && (archive.ship_interval.is_zero() || archive.backup_interval == Some(Duration::ZERO))
        {
            return Err(Error::InvalidArgument("a zero ship or backup interval"));
        }
        let files = Files::new(Arc::clone(&options.file_system));
        let lock = lock_data_dir(&files, path, options.create_if_missing)?;
        if files.is_file(&path.join(RESTORE_FILE))? {
            return Err(Error::RestoreIncomplete(path.to_path_buf()));
        }
        // A promotion a crash interrupted is finished first.
        super::standby::finish_promotion(&files, path, &options.master_key)?;
        // A standby opens only as one; its log holds nothing of its own, and
        // is emptied under the lock (see `standby.rs`).
        match (standby.is_some(), files.is_file(&path.join(STANDBY_FILE))?) {
            (true, true) => files.remove_dir_durable(&path.join(WAL_DIR))?,
            (true, false) => return Err(Error::NotAStandby(path.to_path_buf())),
            (false, true) => return Err(Error::Standby),
            (false, false) => {}
        }
        let keyring_dir = path.join(KEYRING_DIR);
        let (manifest, root) = match Keyring::read_manifest(&files, &keyring_dir)? {
            Some(manifest) => {
                let master = MasterKey::resolve(&options.master_key, &manifest.kdf)?;
                let root = manifest.open_root(&master)?;
                (manifest, root)
            }
            None => create(&files, path, &options)?,
        };
        let log_id = manifest.log_id;
        let mac_key = root.frame_mac_key(&log_id);
        // The store first: it says which keyring it has seen, and the
        // keyring's checks must all pass before it repairs anything.
        let store = Store::open(path, StoreMemory::from(&options))?;
        store.bind(&log_id)?;
        if store.keyring_epoch()? > manifest.epoch {
            // The store saw a newer keyring than this one: the keyring (its
            // manifest with it) was replaced by an older copy, unless the
            // store is the stranger, from another history of the database.
            check_store_history(&files, &path.join(WAL_DIR), &mac_key, &log_id, &store)?;
            return Err(Error::corruption(
                keyring_dir.join(KEYRING_MANIFEST_FILE),
                0,
                CorruptionKind::RolledBack,
            ));
        }
        let archive_key = root.archive_key();
        let archive_name_key = root.archive_name_key();
        let keyring_name_key = root.archive_keyring_name_key();
        let keyring = Keyring::open(
            &files,
            &keyring_dir,
            manifest,
            root,
            Arc::clone(&options.clock),
        )?;
        keyring.create_subject_keys_ahead(options.subject_keys_ahead);
        let wal_dir = path.join(WAL_DIR);
        files.create_dir_durable(&wal_dir)?;
        let replayed = replay(&files, &wal_dir, &mac_key, &log_id, &store, &keyring)?;
        let writer = LogWriter::open(
            &files,
            &wal_dir,
            log_id,
            mac_key.clone(),
            SegmentOptions {
                bytes_max: options.segment_bytes_max,
                zero_fill: options.durability == Durability::SyncEveryCommit,
            },
            &replayed.log,
            replayed.store_before.lsn,
        )?;
        // The latest time the database has evidence for: what the wall
        // clock at open is held against before any deadline is acted on.
        // Commit times are raw wall-clock readings (a leap while open stamps
        // them too), so they stand in only for a database that has recorded
        // no evidence yet.
        // A checkpoint a crash left in the middle of a backup.
        files.remove_dir_durable(&path.join(CHECKPOINT_DIR))?;
        let keyring_shipper = options.archive.as_ref().map(|archive| {
            KeyringShipper::new(
                Arc::clone(&archive.archive),
                archive_key.clone(),
                keyring_name_key,
                log_id,
            )
        });
        let backups = options.archive.as_ref().map(|archive| {
            Backups::new(
                Arc::clone(&archive.archive),
                archive_key.clone(),
                archive_name_key,
                &files,
                path,
                log_id,
            )
        });
        let shipper = match &options.archive {
            Some(archive) => Some(Shipper::open(
                Arc::clone(&archive.archive),
                archive_key,
                &files,
                path,
                &wal_dir,
                log_id,
                mac_key,
            )?),
            None => {
                if let Some(shipped) = crate::ship::shipped::Shipped::read(&files, path)? {
                    // The operator's choice, but not a silent one: what this
                    // open writes and checkpoints away never reaches the
                    // archive, which will have a gap after this LSN.
                    tracing::warn!(
                        shipped_lsn = shipped.lsn,
                        "this database ships to an archive but is opened without one: its log from here on will be missing from the archive"
                    );
                }
                None
            }
        };
        let known_us = match store.clock_seen()? {
            0 => replayed
                .log
                .last_commit_us
                .max(replayed.store_before.commit_us),
            seen => seen,
        };
        let inner = Arc::new(Inner {
            keyring,
            store,
            commit: GroupCommit::new(
                writer,
                options.durability,
                Arc::clone(&options.clock),
                // The floor of commit times outlives the log's segments.
                replayed
                    .log
                    .last_commit_us
                    .max(replayed.store_before.commit_us),
            ),
            deadlines: Deadlines::open(Arc::clone(&options.clock), known_us),
            compression_threshold: options.compression_threshold_bytes,
            read_ahead: super::read_ahead::ReadAhead::new(options.scan_threads),
            scan_cache: super::scan_cache::ScanCache::new(options.scan_cache_bytes),
            nonces: NonceSource::new(),
            shipper,
            backups,
            keyring_shipper,
            retention: options.archive.as_ref().and_then(|a| a.retention),
            unshipped_bytes_max: options
                .archive
                .as_ref()
                .map_or(u64::MAX, |a| a.unshipped_bytes_max),
            ship_wake: Arc::default(),
            keys_archived_through: std::sync::atomic::AtomicU64::new(0),
            standby,
            stopping: AtomicBool::new(false),
            maintenance: Mutex::new(()),
            _lock: lock,
        });
        if inner.shipper.is_some() {
            let wake = Arc::clone(&inner.ship_wake);
            inner
                .commit
                .writer()
                .lock()
                .set_on_roll(Arc::new(move || wake.notify()));
        }
        // Shreds whose deadline passed while the database was closed, or
        // that a crash interrupted, complete before anything is served (a
        // standby's come from the archive's keyring).
        if inner.standby.is_none() {
            inner.complete_due_shreds()?;
        }
        inner.note_evidence()?;
        tracing::info!(path = %path.display(), replayed = replayed.frames, "database open");
        let background = Background::start(&inner, &options);
        Ok(Db {
            inner,
            background,
            closed: false,
        })
    }

    /// Makes every acknowledged write durable (useful under
    /// [`Durability::SyncInterval`]; a no-op under the default).
    pub fn sync(&self) -> Result<()> {
        self.inner.commit.sync()
    }

    /// Flushes the store to its files and removes the log segments that the
    /// flush has made redundant. The engine does this by itself whenever the
    /// log moves to a new segment.
    pub fn flush(&self) -> Result<()> {
        self.inner.checkpoint()
    }

    /// Flushes like [`Db::flush`], then blocks until the store's background
    /// compactions have caught up: after a bulk load, reads then find the
    /// store in its settled shape (fewer files to look in) rather than
    /// competing with compactions for the disk and the cores.
    pub fn flush_and_settle(&self) -> Result<()> {
        self.inner.checkpoint()?;
        self.inner.store.wait_for_compactions()
    }

    /// Runs now, to the end, what the background thread runs every 200 ms
    /// (with a time budget): removes the log segments a store flush makes
    /// redundant, completes the shreds whose deadline has passed (destroying
    /// their keys and reclaiming their space), and finishes key rotations
    /// (re-sealing, rewrapping, destroying old versions).
    pub fn run_maintenance(&self) -> Result<()> {
        self.inner.maintain(None)
    }

    /// Rotates the master key: the database root key is rewrapped under
    /// `new_key` (a passphrase gets a fresh salt), in one atomic rewrite of
    /// the keyring manifest. Nothing else is rewritten: every other key
    /// hangs from the root key. From then on only `new_key` opens the
    /// database.
    pub fn rotate_master_key(&self, new_key: MasterKeySource) -> Result<()> {
        self.inner.check_writable()?;
        self.inner.keyring.rotate_master(&new_key)
    }

    /// What the engine makes of the wall clock: believed, or doubted (it ran
    /// ahead of the time that has passed, or was implausibly far ahead at
    /// open), in which case shreds' deadlines follow the believed time:
    /// later than the wall clock says, never earlier.
    pub fn clock_state(&self) -> ClockState {
        self.inner.deadlines.state()
    }

    /// Accepts the wall clock as right (an operator's decision, after
    /// checking it): deadlines follow it from now on, and those it says have
    /// passed are completed by the next maintenance pass.
    pub fn trust_clock(&self) {
        self.inner.deadlines.trust_wall_clock();
    }

    /// What the scan cache holds, and how many scans it served
    /// ([`Options::scan_cache_bytes`]; all zeros when it is off).
    pub fn scan_cache_stats(&self) -> crate::ScanCacheStats {
        self.inner.scan_cache.stats()
    }

    /// A RocksDB property of the store that counts or sizes things
    /// (`rocksdb.num-files-at-level0`, `rocksdb.stats`, ...), for
    /// benchmarks; `None` for the others, some of which print keys (scope
    /// ids). Not a stable API.
    #[doc(hidden)]
    pub fn store_property(&self, name: &str) -> Option<String> {
        const COUNTS: [&str; 4] = [
            "rocksdb.num-files-at-level",
            "rocksdb.estimate-pending-compaction-bytes",
            "rocksdb.live-sst-files-size",
            "rocksdb.stats",
        ];
        COUNTS
            .iter()
            .any(|count| name.starts_with(count))
            .then(|| self.inner.store.property(name))
            .flatten()
    }

    /// How far the log is shipped to the archive (`None` without one).
    pub fn archive_status(&self) -> Option<ArchiveStatus> {
        self.inner.shipper.as_ref().map(|s| ArchiveStatus {
            shipped_lsn: crate::Lsn(s.shipped_lsn()),
            unshipped_bytes: s.unshipped_bytes(),
        })
    }

    /// Ships every durable frame not in the archive yet, now, instead of at
    /// the next interval (a no-op without an archive).
    pub fn ship_now(&self) -> Result<()> {
        self.inner.ship().map(drop)
    }

    /// Takes a base backup into the archive now: a checkpoint of the store
    /// (appends and applies wait for the moment it takes), whose SST files
    /// not yet in the archive are uploaded, then its manifest.
    pub fn backup_now(&self) -> Result<BackupInfo> {
        self.inner.backup(&|_, _| {})
    }

    /// [`Db::backup_now`], telling `progress` the bytes of the store's files
    /// read so far and in all as it goes (an operator's progress bar).
    pub fn backup_now_with_progress(&self, progress: impl Fn(u64, u64)) -> Result<BackupInfo> {
        self.inner.backup(&progress)
    }

    /// What the retention policy would delete from the archive now (a dry
    /// run: nothing is deleted). `InvalidArgument` without an archive or a
    /// policy.
    pub fn retention_plan(&self) -> Result<crate::RetentionPlan> {
        self.inner.retention(true)
    }

    /// Applies the retention policy to the archive now: the manifests of
    /// the backups it drops first, then every SST file, piece and retired
    /// key that no kept backup needs. Returns what it kept and deleted.
    pub fn apply_retention(&self) -> Result<crate::RetentionPlan> {
        self.inner.retention(false)
    }

    /// LSN of the last committed batch (0 for an empty database).
    pub fn last_lsn(&self) -> crate::Lsn {
        crate::Lsn(self.inner.commit.applied_lsn())
    }

    /// Stops background work, syncs the log and flushes the store.
    pub fn close(mut self) -> Result<()> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<()> {
        if std::mem::replace(&mut self.closed, true) {
            return Ok(());
        }
        self.inner.stopping.store(true, Ordering::SeqCst);
        self.background.stop();
        self.sync()?;
        // A last pass, unless the archive was unreachable at the last one
        // (its timeouts would hold the close): the next open ships the rest.
        if let Some(shipper) = &self.inner.shipper {
            if !shipper.reachable() {
                tracing::warn!(
                    shipped_lsn = shipper.shipped_lsn(),
                    durable_lsn = self.inner.commit.synced_lsn(),
                    "close: the archive was unreachable at the last pass; the next open ships the rest"
                );
            } else if let Err(e) = self.inner.ship_until(&AtomicBool::new(false)) {
                tracing::warn!(error = %e, "close: the log's last frames or keyring changes are not archived yet");
            }
        }
        // A standby's keyring files are the archive's copies: never written.
        let anchored = match self.inner.standby {
            Some(_) => Ok(()),
            None => self.inner.keyring.anchor_pending(),
        };
        let noted = self.inner.note_evidence();
        self.inner.store.flush()?;
        anchored.and(noted)
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown() {
            tracing::warn!(error = %e, "closing the database");
        }
    }
}

impl Inner {
    fn maintain(&self, budget: Option<Duration>) -> Result<()> {
        let _one_at_a_time = self.maintenance.lock();
        self.scan_cache
            .drop_stale(|scope| self.store.version(scope));
        if self.standby.is_some() {
            // Shreds and rotations come from the archive's keyring.
            return self.note_evidence();
        }
        // A flush only when it lets a segment go: while the archive is
        // behind, the oldest sealed segment must wait for it, not for a
        // flush (one every pass would pile up tiny SST files).
        let oldest_sealed = self
            .commit
            .writer()
            .lock()
            .sealed_segments()
            .first()
            .map(|s| s.last_lsn.unwrap_or(0));
        let shipped = self.shipper.as_ref().map_or(u64::MAX, Shipper::shipped_lsn);
        if oldest_sealed.is_some_and(|last| last <= shipped) {
            self.checkpoint()?;
        }
        self.complete_due_shreds()?;
        // Key creations since the last pass: recorded by their parents.
        self.keyring.anchor_pending()?;
        let rotated = self.advance_rotations(budget);
        self.note_evidence()?;
        rotated
    }

    /// Records the evidence the next open holds the clock and the keyring
    /// against (`Store::note_evidence`): after every change to the keyring
    /// that a rolled-back copy would undo (a seal, a cancel, a destruction),
    /// at every maintenance pass and at close.
    pub(crate) fn note_evidence(&self) -> Result<()> {
        self.store
            .note_evidence(self.deadlines.evidence_us(), self.keyring.epoch())
    }

    /// Ships every durable frame not in the archive yet (no-op without an
    /// archive). Returns how many pieces it put.
    pub(crate) fn ship(&self) -> Result<usize> {
        self.ship_until(&self.stopping)
    }

    /// [`Inner::ship`], stopping between two uploads once `stop` is set.
    fn ship_until(&self, stop: &AtomicBool) -> Result<usize> {
        let Some(shipper) = &self.shipper else {
            return Ok(0);
        };
        // The keyring before the log: every frame up to `durable` was
        // committed before this moment, with its key made (durably, in its
        // shard) before it, so once the copies are put the log may go up to
        // `durable`, and no further: a piece never reaches the archive
        // before its keys, and a restore after a lost machine reads every
        // piece. A keyring that cannot be put holds the log back (and, past
        // the budget, writes), loudly.
        let durable = self.commit.synced_lsn();
        let copies = self.ship_keyring();
        if copies.is_ok() {
            self.keys_archived_through
                .fetch_max(durable, Ordering::SeqCst);
        }
        let through = self.keys_archived_through.load(Ordering::SeqCst);
        let pieces = shipper.ship(through, stop);
        if let Err(Error::Archive(_)) = copies {
            shipper.note_unreachable();
        }
        copies.and(pieces)
    }

    /// Brings the archive's keyring copies level with the local keyring.
    pub(crate) fn ship_keyring(&self) -> Result<usize> {
        match &self.keyring_shipper {
            Some(keys) => keys.sync(&self.keyring),
            None => Ok(0),
        }
    }

    /// After a change to the keyring that the archive must not lag (a seal,
    /// a cancel, a destruction): its copies at once, if the archive answered
    /// the last pass (else the shipping thread's next pass does it, and the
    /// scope reports it meanwhile: `archive_behind`).
    pub(crate) fn ship_keyring_after_change(&self) {
        if self.shipper.as_ref().is_some_and(Shipper::reachable)
            && let Err(e) = self.ship_keyring()
        {
            tracing::warn!(error = %e, "ship: the keyring change is not archived yet; the next pass retries");
        }
    }

    /// Whether a rotation may end now: with an archive, only while it
    /// answered the last pass (its last step puts the retiring versions
    /// there while commits wait, which must not wait on an archive that is
    /// down).
    pub(crate) fn can_retire(&self) -> bool {
        self.keyring_shipper.is_none() || self.shipper.as_ref().is_some_and(Shipper::reachable)
    }

    /// Puts the key versions of `tenant` below `below` that a rotation is
    /// about to retire into the archive (rotation is not destruction). An
    /// archive that did not answer the last pass is not waited on: the
    /// retirement waits for a later pass instead (the caller holds commits).
    pub(crate) fn archive_retired(&self, tenant: crate::TenantId, below: u32) -> Result<()> {
        let (Some(keys), Some(shipper)) = (&self.keyring_shipper, &self.shipper) else {
            return Ok(());
        };
        let versions = self.keyring.versions_below(tenant, below)?;
        if versions.is_empty() {
            return Ok(());
        }
        if !shipper.reachable() {
            return Err(crate::archive::ArchiveError::Unavailable {
                op: crate::archive::ArchiveOp::Put,
                name: "retired key versions".into(),
                message: "the archive did not answer the last pass; the retirement waits".into(),
            }
            .into());
        }
        keys.put_retired(&self.keyring, tenant, &versions, self.commit.applied_lsn())
    }

    /// Takes a base backup (`Db::backup_now`).
    pub(crate) fn backup(&self, progress: &dyn Fn(u64, u64)) -> Result<BackupInfo> {
        self.check_writable()?;
        let Some(backups) = &self.backups else {
            return Err(Error::InvalidArgument("no archive to back up to"));
        };
        backups.take(
            |dir| {
                let _held = self.commit.exclusive()?;
                checkpoint_store(&self.store, dir)
            },
            &self.stopping,
            progress,
        )
    }

    /// The backup schedule: takes a backup if the newest in the archive is
    /// `interval` old or more (by the archive's clock, so a process shorter
    /// than the interval does not skip backups) and the store has moved
    /// since it; returns the wait until the next is due.
    fn scheduled_backup(&self, interval: Duration) -> Result<Duration> {
        let Some(backups) = &self.backups else {
            return Ok(interval);
        };
        if let Some(newest) = backups.newest()? {
            // An archive that does not say when is taken as due; a put
            // dated in the future, as just taken.
            let age = newest.modified.map_or(interval, |at| {
                std::time::SystemTime::now()
                    .duration_since(at)
                    .unwrap_or_default()
            });
            if age < interval {
                return Ok(interval - age);
            }
            if newest.applied_lsn >= self.commit.applied_lsn() {
                // Nothing since it: the backup it would take is the same.
                return Ok(interval);
            }
        }
        self.backup(&|_, _| {})?;
        Ok(interval)
    }

    /// Plans (`dry_run`) or applies the retention policy, at the believed
    /// time (a clock that leapt ahead deletes nothing early).
    fn retention(&self, dry_run: bool) -> Result<crate::RetentionPlan> {
        self.check_writable()?;
        let (Some(backups), Some(policy)) = (&self.backups, &self.retention) else {
            return Err(Error::InvalidArgument("no archive or no retention policy"));
        };
        backups.retention(policy, self.deadlines.now_us(), dry_run)
    }

    /// Refuses writes while more of the log than the budget is unshipped.
    pub(crate) fn check_archive_budget(&self) -> Result<()> {
        let Some(shipper) = &self.shipper else {
            return Ok(());
        };
        let unshipped_bytes = shipper.unshipped_bytes();
        if unshipped_bytes > self.unshipped_bytes_max {
            return Err(Error::ArchiveBehind {
                unshipped_bytes,
                budget_bytes: self.unshipped_bytes_max,
            });
        }
        Ok(())
    }

    /// Flushes the store, then removes sealed segments it made redundant.
    pub(crate) fn checkpoint(&self) -> Result<()> {
        let applied = self.commit.applied_lsn();
        self.store.flush()?;
        // A segment leaves only once the store holds it and the archive too.
        let lsn = match &self.shipper {
            Some(shipper) => applied.min(shipper.shipped_lsn()),
            None => applied,
        };
        let removed = self.commit.writer().lock().remove_segments_through(lsn)?;
        if removed > 0 {
            tracing::debug!(
                removed,
                through_lsn = lsn,
                "log: removed segments the store holds"
            );
        }
        Ok(())
    }
}

/// Takes the data directory's lock ([`LOCK_FILE`]) before any other file of
/// the database is read or written, creating the folder if it is missing and
/// `create_if_missing` allows. A folder that holds other things but no
/// database is refused first, so no lock file is left in it.
pub(crate) fn lock_data_dir(
    files: &Files,
    path: &Path,
    create_if_missing: bool,
) -> Result<Box<dyn FileLock>> {
    if files.is_dir(path)? {
        let names = files.list(path)?;
        let ours = |n: &String| {
            [
                KEYRING_DIR,
                WAL_DIR,
                STORE_DIR,
                LOCK_FILE,
                SHIPPED_FILE,
                RESTORE_FILE,
                STANDBY_FILE,
                PROMOTE_FILE,
            ]
            .contains(&n.as_str())
        };
        if !names.is_empty() && !names.iter().any(ours) {
            return Err(Error::NotADatabase(path.to_path_buf()));
        }
    } else if create_if_missing {
        files.create_dir_durable(path)?;
    } else {
        return Err(Error::NotFound(path.to_path_buf()));
    }
    // A lock belongs to the open file description, which a process this
    // one spawns shares between its fork and its exec: for that instant a
    // lock its holder has released is still held. So a refused lock is
    // tried again for a short while before the database is called in use.
    let started = std::time::Instant::now();
    loop {
        if let Some(lock) = files.try_lock(&path.join(LOCK_FILE))? {
            return Ok(lock);
        }
        if started.elapsed() >= LOCK_WAIT_MAX {
            return Err(Error::InUse {
                path: path.to_path_buf(),
            });
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Creates a new database's folders and keyring manifest, with a new root
/// key. Refuses a folder that holds anything but an empty keyring folder.
fn create(files: &Files, path: &Path, options: &Options) -> Result<(Manifest, RootKey)> {
    if files.is_dir(&path.join(WAL_DIR))? || files.is_dir(&path.join(STORE_DIR))? {
        return Err(Error::NotADatabase(path.to_path_buf()));
    }
    if !options.create_if_missing {
        return Err(Error::NotFound(path.to_path_buf()));
    }
    if !is_empty_or_only_keyring(files, path)? {
        return Err(Error::NotADatabase(path.to_path_buf()));
    }
    let kdf = Kdf::for_new_database(&options.master_key);
    let master = MasterKey::resolve(&options.master_key, &kdf)?;
    let mut log_id = [0u8; LOG_ID_LEN];
    crate::crypto::fill_random(&mut log_id);
    let (manifest, root) = Manifest::create(kdf, &master, log_id);
    Keyring::create(files, &path.join(KEYRING_DIR), &manifest, &root)?;
    tracing::info!(path = %path.display(), "created a new database");
    Ok((manifest, root))
}

fn is_empty_or_only_keyring(files: &Files, path: &Path) -> Result<bool> {
    Ok(files
        .list(path)?
        .iter()
        .all(|name| name == KEYRING_DIR || name == LOCK_FILE))
}

/// Background threads: maintenance, and the interval syncer.
struct Background {
    stop: Arc<(Mutex<bool>, Condvar)>,
    threads: Vec<JoinHandle<()>>,
    ship_wake: Arc<ShipWake>,
}

impl Background {
    fn start(inner: &Arc<Inner>, options: &Options) -> Background {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let mut threads = vec![spawn_loop(
            "strongroom-maintenance",
            inner,
            &stop,
            MAINTENANCE_POLL,
            MAINTENANCE_POLL,
            |inner| {
                inner
                    .maintain(Some(ROTATION_BUDGET))
                    .map(|()| MAINTENANCE_POLL)
            },
        )];
        if let Some(archive) = &options.archive {
            threads.push(spawn_ship_loop(inner, &stop, archive.ship_interval));
            if let Some(interval) = archive.backup_interval {
                threads.push(spawn_loop(
                    "strongroom-backup",
                    inner,
                    &stop,
                    Duration::ZERO,
                    interval.min(BACKUP_RETRY),
                    move |inner| {
                        let wait = inner.scheduled_backup(interval)?;
                        if inner.retention.is_some() {
                            inner.retention(false)?;
                        }
                        Ok(wait)
                    },
                ));
            }
        }
        if let Some(standby) = &inner.standby {
            let poll = standby.poll_interval;
            threads.push(spawn_loop(
                "strongroom-standby",
                inner,
                &stop,
                poll,
                poll,
                move |inner| inner.follow().map(|_| poll),
            ));
        }
        if let Durability::SyncInterval(interval) = options.durability {
            threads.push(spawn_loop(
                "strongroom-sync",
                inner,
                &stop,
                interval,
                interval,
                move |inner| inner.commit.sync().map(|()| interval),
            ));
        }
        Background {
            stop,
            threads,
            ship_wake: Arc::clone(&inner.ship_wake),
        }
    }

    fn stop(&mut self) {
        *self.stop.0.lock() = true;
        self.stop.1.notify_all();
        self.ship_wake.notify();
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// A background thread: `work` first after `first`, then after the wait
/// each run returns (after `retry` when it fails), until stopped.
fn spawn_loop(
    name: &str,
    inner: &Arc<Inner>,
    stop: &Arc<(Mutex<bool>, Condvar)>,
    first: Duration,
    retry: Duration,
    work: impl Fn(&Inner) -> Result<Duration> + Send + 'static,
) -> JoinHandle<()> {
    let inner = Arc::clone(inner);
    let stop = Arc::clone(stop);
    let thread_name = name.to_string();
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            let (lock, cv) = &*stop;
            let mut wait = first;
            let mut stopped = lock.lock();
            while !*stopped {
                cv.wait_for(&mut stopped, wait);
                if *stopped {
                    break;
                }
                drop(stopped);
                wait = work(&inner).unwrap_or_else(|e| {
                    tracing::warn!(thread = %thread_name, error = %e, "background work failed");
                    retry
                });
                stopped = lock.lock();
            }
        })
        .expect("spawning a background thread")
}

/// Wait before a scheduled backup that failed is tried again (or the
/// backup interval, if shorter).
const BACKUP_RETRY: Duration = Duration::from_secs(60);

/// Longest wait between two tries while the archive fails: 30 intervals,
/// at most this long.
const SHIP_BACKOFF_MAX: Duration = Duration::from_secs(30);

/// Wakes the shipping thread before its interval is up: a segment rolled
/// (it is shipped at once), or the database is closing.
#[derive(Default)]
pub(crate) struct ShipWake {
    woken: Mutex<bool>,
    cv: Condvar,
}

impl ShipWake {
    pub(crate) fn notify(&self) {
        *self.woken.lock() = true;
        self.cv.notify_all();
    }

    /// Waits until notified or `timeout` has passed.
    fn wait_for(&self, timeout: Duration) {
        let mut woken = self.woken.lock();
        if !*woken {
            self.cv.wait_for(&mut woken, timeout);
        }
        *woken = false;
    }
}

/// The shipping thread: a pass every `interval` and whenever a segment
/// rolls, and after a failed one, again after a wait that doubles up to 30
/// intervals (at most [`SHIP_BACKOFF_MAX`]).
fn spawn_ship_loop(
    inner: &Arc<Inner>,
    stop: &Arc<(Mutex<bool>, Condvar)>,
    interval: Duration,
) -> JoinHandle<()> {
    let inner = Arc::clone(inner);
    let stop = Arc::clone(stop);
    std::thread::Builder::new()
        .name("strongroom-ship".into())
        .spawn(move || {
            let mut wait = interval;
            loop {
                inner.ship_wake.wait_for(wait);
                if *stop.0.lock() {
                    break;
                }
                wait = match inner.ship() {
                    Ok(_) => interval,
                    Err(e) => {
                        tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "ship: the archive is behind");
                        let cap = interval.saturating_mul(30).min(SHIP_BACKOFF_MAX).max(interval);
                        wait.saturating_mul(2).min(cap)
                    }
                };
            }
        })
        .expect("the OS starts a thread")
}
