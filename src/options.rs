//! Options of [`crate::Db::open`].

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use zeroize::Zeroizing;

use crate::archive::Archive;
use crate::clock::{Clock, SystemClock};
use crate::format::{
    BACKUP_INTERVAL_DEFAULT, COMPRESSION_THRESHOLD_DEFAULT, KEY_LEN, SEGMENT_BYTES_MAX_DEFAULT,
    SHIP_INTERVAL_DEFAULT, UNSHIPPED_BYTES_MAX_DEFAULT,
};
use crate::fs::{FileSystem, OsFileSystem};
use crate::ship::retention::RetentionPolicy;

/// Where the master key comes from. The engine never writes it down.
#[derive(Clone)]
pub enum MasterKeySource {
    /// The 32 key bytes themselves.
    Bytes(Zeroizing<[u8; KEY_LEN]>),
    /// A file holding the 32 key bytes, raw or as 64 hex digits.
    KeyFile(PathBuf),
    /// An environment variable holding 64 hex digits.
    EnvVar(String),
    /// A passphrase, stretched by Argon2id with OWASP's parameters
    /// (19 MiB, 2 iterations, 1 lane) and a random salt kept in the keyring.
    Passphrase(Zeroizing<String>),
}

impl fmt::Debug for MasterKeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MasterKeySource::Bytes(_) => f.write_str("Bytes(..)"),
            MasterKeySource::KeyFile(path) => f.debug_tuple("KeyFile").field(path).finish(),
            MasterKeySource::EnvVar(name) => f.debug_tuple("EnvVar").field(name).finish(),
            MasterKeySource::Passphrase(_) => f.write_str("Passphrase(..)"),
        }
    }
}

/// When a write is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// A write returns once its log frame is on disk (fdatasync). Many
    /// concurrent writers share one sync (group commit). The default.
    SyncEveryCommit,
    /// A write returns once its frame is written to the OS; the log is synced
    /// every `interval`. A power cut loses at most the last interval; a crash
    /// of the process alone loses nothing.
    SyncInterval(Duration),
}

/// Options of [`crate::Db::open`].
#[derive(Debug, Clone)]
pub struct Options {
    /// Where the master key comes from.
    pub master_key: MasterKeySource,
    /// When writes are acknowledged. Default: [`Durability::SyncEveryCommit`].
    pub durability: Durability,
    /// Size at which the log starts a new segment. Default 64 MiB.
    pub segment_bytes_max: u64,
    /// Create the database if the folder holds none. Default true.
    pub create_if_missing: bool,
    /// Records whose body (4-byte key length, key, value) exceeds this are
    /// zstd-compressed before sealing, if that makes them smaller. Default
    /// 512 bytes.
    pub compression_threshold_bytes: usize,
    /// Size of RocksDB's block cache. Default 64 MiB.
    pub block_cache_bytes: usize,
    /// Size of each of the store's memtables (RocksDB's write buffer), where
    /// applied writes gather before a flush writes them to a table file;
    /// RocksDB keeps up to two. Default 64 MiB; at least 64 KiB. Smaller
    /// ones stall a sustained load sooner; larger ones stall it less with
    /// large values, and, past the log's segment size, can leave more log
    /// to replay after a crash (PERFORMANCE.md).
    pub memtable_bytes: usize,
    /// Threads that open a scan's records ahead of it (started at the
    /// first scan longer than one batch; 0: every scan opens its records
    /// on the caller's thread). Default: the machine's cores, at most 8.
    pub scan_threads: usize,
    /// Memory for the scan cache: the opened records of scopes scanned
    /// whole, handed out again while their scope is unchanged, without
    /// reading the store or opening a record (plaintext kept in memory, as
    /// an encrypted database's page cache does: GUARANTEES.md). Default 0:
    /// off.
    pub scan_cache_bytes: usize,
    /// Subjects' keys made ahead: when a subject's first write makes its key
    /// and the subject numbered just before it has one, the keys of the
    /// next this many subjects are made in the same sync, so that a writer
    /// creating subjects in order finds their keys made (unused keys are
    /// destroyed with their tenant). Default 32; 0: none.
    pub subject_keys_ahead: u64,
    /// The clock of commit times and shred deadlines. Default: the system's.
    pub clock: Arc<dyn Clock>,
    /// The file system of the engine's own files (log, keyring). Default:
    /// the operating system's; tests inject faults with
    /// [`crate::fs::FaultyFileSystem`]. RocksDB's files do not go through it.
    pub file_system: Arc<dyn FileSystem>,
    /// Where the log is shipped to, and how. Default: nowhere (no archive).
    pub archive: Option<ArchiveOptions>,
}

/// Continuous shipping of the log to an archive.
#[derive(Debug, Clone)]
pub struct ArchiveOptions {
    /// The archive: a [`crate::archive::LocalArchive`] (a folder, ideally on
    /// another disk or machine) or an S3 bucket.
    pub archive: Arc<dyn Archive>,
    /// How often newly durable frames are shipped: a lost machine loses at
    /// most about this much of acknowledged writes. Default 1 s.
    pub ship_interval: Duration,
    /// Bytes of local log not yet in the archive above which writes are
    /// refused ([`crate::Error::ArchiveBehind`]) until shipping catches up,
    /// so that an archive that is down never fills the disk. Default 1 GiB.
    pub unshipped_bytes_max: u64,
    /// How often a base backup is taken (`None`: only on demand, with
    /// [`crate::Db::backup_now`]): one is taken when the newest in the
    /// archive is this old (by its put time, so short-lived processes keep
    /// the schedule too; at once after open when there is none) and the
    /// store has changed since it. Default 1 hour.
    pub backup_interval: Option<Duration>,
    /// Which backups (and so which pieces, SST files and retired keys) the
    /// archive keeps: applied after every scheduled backup tick, and on
    /// demand with [`crate::Db::apply_retention`]. `None`: nothing is ever
    /// deleted. Default: [`RetentionPolicy::default`] (hourly backups 72 h,
    /// daily 7 days, weekly 5 weeks, monthly forever).
    pub retention: Option<RetentionPolicy>,
}

impl ArchiveOptions {
    /// Shipping to `archive` with the default interval and budget.
    pub fn new(archive: Arc<dyn Archive>) -> Self {
        ArchiveOptions {
            archive,
            ship_interval: SHIP_INTERVAL_DEFAULT,
            unshipped_bytes_max: UNSHIPPED_BYTES_MAX_DEFAULT,
            backup_interval: Some(BACKUP_INTERVAL_DEFAULT),
            retention: Some(RetentionPolicy::default()),
        }
    }

    /// Sets the ship interval.
    pub fn ship_interval(mut self, interval: Duration) -> Self {
        self.ship_interval = interval;
        self
    }

    /// Sets the backup interval (`None`: backups on demand only).
    pub fn backup_interval(mut self, interval: Option<Duration>) -> Self {
        self.backup_interval = interval;
        self
    }

    /// Sets the retention policy (`None`: the archive keeps everything).
    pub fn retention(mut self, policy: Option<RetentionPolicy>) -> Self {
        self.retention = policy;
        self
    }

    /// Sets the budget of unshipped log.
    pub fn unshipped_bytes_max(mut self, bytes: u64) -> Self {
        self.unshipped_bytes_max = bytes;
        self
    }
}

/// The store's block cache, by default.
pub(crate) const BLOCK_CACHE_BYTES_DEFAULT: usize = 64 << 20;
/// The store's memtable size, by default.
pub(crate) const MEMTABLE_BYTES_DEFAULT: usize = 64 << 20;
/// Subjects' keys made ahead by default: one sync in 33 for a writer
/// creating subjects in order, about 3 KB of keys left unused at most.
const SUBJECT_KEYS_AHEAD_DEFAULT: u64 = 32;
/// Read-ahead threads by default at most: past a few, a scan is bound by
/// the one thread reading the store.
const SCAN_THREADS_MAX: usize = 8;
/// The store's background jobs (flushes and compactions) at most, whatever
/// the cores: RocksDB's thread pools are the process's, shared by every
/// store in it.
pub(crate) const BACKGROUND_JOBS_MAX: usize = 8;
/// The smallest memtable accepted: RocksDB would raise a smaller one to
/// this silently.
pub(crate) const MEMTABLE_BYTES_MIN: usize = 64 << 10;

/// The machine's cores (2 if it cannot say).
pub(crate) fn machine_cores() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

impl Options {
    /// Default options with the given master key source.
    pub fn new(master_key: MasterKeySource) -> Self {
        Options {
            master_key,
            durability: Durability::SyncEveryCommit,
            segment_bytes_max: SEGMENT_BYTES_MAX_DEFAULT,
            create_if_missing: true,
            compression_threshold_bytes: COMPRESSION_THRESHOLD_DEFAULT,
            block_cache_bytes: BLOCK_CACHE_BYTES_DEFAULT,
            memtable_bytes: MEMTABLE_BYTES_DEFAULT,
            scan_threads: machine_cores().min(SCAN_THREADS_MAX),
            scan_cache_bytes: 0,
            subject_keys_ahead: SUBJECT_KEYS_AHEAD_DEFAULT,
            clock: Arc::new(SystemClock),
            file_system: Arc::new(OsFileSystem),
            archive: None,
        }
    }

    /// Default options with a raw 32-byte master key.
    pub fn with_key(key: [u8; KEY_LEN]) -> Self {
        Options::new(MasterKeySource::Bytes(Zeroizing::new(key)))
    }

    /// Sets the durability.
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// Sets the size at which the log starts a new segment.
    pub fn segment_bytes_max(mut self, bytes: u64) -> Self {
        self.segment_bytes_max = bytes;
        self
    }

    /// Sets the clock (tests use [`crate::ManualClock`] to move time by hand).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Sets the file system of the engine's own files.
    pub fn file_system(mut self, file_system: Arc<dyn FileSystem>) -> Self {
        self.file_system = file_system;
        self
    }

    /// Ships the log to an archive.
    pub fn archive(mut self, archive: ArchiveOptions) -> Self {
        self.archive = Some(archive);
        self
    }

    /// Sets how many threads open scans' records ahead of them.
    pub fn scan_threads(mut self, threads: usize) -> Self {
        self.scan_threads = threads;
        self
    }

    /// Sets the memory of the scan cache (0: off).
    pub fn scan_cache_bytes(mut self, bytes: usize) -> Self {
        self.scan_cache_bytes = bytes;
        self
    }

    /// Sets the size of the store's memtables.
    pub fn memtable_bytes(mut self, bytes: usize) -> Self {
        self.memtable_bytes = bytes;
        self
    }

    /// Sets how many subjects' keys are made ahead of subjects created in
    /// order (0: none).
    pub fn subject_keys_ahead(mut self, keys: u64) -> Self {
        self.subject_keys_ahead = keys;
        self
    }

    /// Sets whether a missing database is created.
    pub fn create_if_missing(mut self, create: bool) -> Self {
        self.create_if_missing = create;
        self
    }
}
