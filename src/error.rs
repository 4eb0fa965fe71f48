//! The engine's public error, into which every layer's error converts.
//!
//! Each layer (`crypto`, `wal`, `store`) has its own error enum; callers of
//! the public API see only [`Error`], whose variants are the cases a caller
//! branches on. No error ever carries key material or user plaintext.

use std::io;
use std::path::PathBuf;

use crate::scope::Scope;

/// What was wrong with bytes read from disk.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CorruptionKind {
    /// The file does not start with the magic bytes of its format.
    #[error("bad magic bytes")]
    BadMagic,
    /// A CRC32 did not match the bytes it covers.
    #[error("checksum mismatch")]
    Checksum,
    /// A frame's MAC did not match: a frame was forged, dropped, reordered or
    /// replayed, or its bytes were changed and the CRC recomputed.
    #[error("MAC chain broken")]
    MacChain,
    /// The file ends inside a structure.
    #[error("truncated")]
    Truncated,
    /// A length field is out of range.
    #[error("length {0} out of range")]
    Length(u64),
    /// A field holds a value its format does not allow.
    #[error("malformed: {0}")]
    Malformed(&'static str),
    /// LSNs must increase strictly through the log.
    #[error("LSN {found} follows LSN {previous}")]
    LsnOrder {
        /// The LSN before.
        previous: u64,
        /// The LSN found.
        found: u64,
    },
    /// The log lacks frames the store has not applied.
    #[error(
        "log gap: the store holds up to LSN {applied}, but the log's next frame is LSN {first}"
    )]
    LogGap {
        /// LSN up to which the store (with the frames replayed) holds history.
        applied: u64,
        /// LSN of the log's next frame.
        first: u64,
    },
    /// A sealed record failed authentication (changed, or moved to another
    /// key, scope or key version).
    #[error("sealed record failed authentication")]
    RecordAuth,
    /// A chunk of a sealed archive object failed authentication: the object
    /// was changed, cut short, its chunks reordered, or it was moved from
    /// another name or archive.
    #[error("archive object chunk failed authentication")]
    ObjectAuth,
    /// A wrapped key failed authentication.
    #[error("wrapped key failed authentication")]
    KeyAuth,
    /// The store holds records of a scope whose key this keyring file should
    /// hold and does not (the file was deleted, cut short or rolled back).
    #[error("a key is missing: the store holds records that no key here opens")]
    MissingKey,
    /// A keyring file is missing, cut short, or older than its parent (the
    /// manifest, or its tenant's shard) records; or the whole keyring is older
    /// than the store has seen. Something was deleted or restored from an
    /// older copy.
    #[error("rolled back: missing, cut short, or older than the keyring records")]
    RolledBack,
    /// The store belongs to another database (its binding names another log).
    #[error("the store belongs to another database")]
    ForeignStore,
    /// The store's last applied frame is not the log's frame at that LSN: the
    /// store comes from another history of this database (an older or
    /// diverged copy).
    #[error("the store's frame at LSN {lsn} is not the log's: another history of this database")]
    StoreDiverged {
        /// The LSN the store says it applied last.
        lsn: u64,
    },
}

/// The error of every public strongroom call.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The master key does not open this database. Nothing was read or written.
    #[error("wrong master key for this database")]
    WrongMasterKey,
    /// The master key could not be obtained from its source.
    #[error("master key source: {0}")]
    MasterKeySource(String),
    /// Bytes on disk are not what strongroom wrote.
    #[error("corruption in {file} at offset {offset}: {kind}")]
    Corruption {
        /// The damaged file.
        file: PathBuf,
        /// Byte offset of the damaged structure in that file.
        offset: u64,
        /// What is wrong.
        kind: CorruptionKind,
    },
    /// A file was written by a format version this build cannot read.
    #[error("{file} has format version {found}; this build reads version {supported}")]
    UnsupportedVersion {
        /// The file.
        file: PathBuf,
        /// The version in the file.
        found: u32,
        /// The version this build reads.
        supported: u32,
    },
    /// An operating-system I/O error.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The disk is full (`ENOSPC`). The write that met it failed whole; once
    /// there is space again the database takes writes (or, if the log could
    /// not be cut back to its last whole frame, after a reopen).
    #[error("no space left on the device holding {path}")]
    NoSpace {
        /// The file that could not grow.
        path: PathBuf,
    },
    /// A sync of the log failed, a failed write could not be undone, or the
    /// store could not apply a logged batch: the log's state on disk, or the
    /// store's, is unknown, so every write is refused until a reopen (which
    /// replays the log).
    #[error("the database refuses writes after a failed log write or sync; reopen it")]
    Poisoned,
    /// The handle was opened by another process, this one's parent: a forked
    /// child cannot write through it (it would repeat the parent's record
    /// nonces and write over its log). Open the database in the child
    /// instead, once the parent has closed it.
    #[error("this handle was opened by process {opener}; a forked child cannot write through it")]
    Forked {
        /// The process that opened the database.
        opener: u32,
    },
    /// RocksDB reported an error.
    #[error("store: {0}")]
    Store(String),
    /// The scope is sealed: shredded with a grace period that has not ended.
    /// Nothing is read or written until the shred is cancelled or completes.
    #[error(
        "{scope} is sealed until {deadline_us} µs after the epoch (a shred in its grace period)"
    )]
    Sealed {
        /// The scope asked for.
        scope: Scope,
        /// When its keys will be destroyed, in µs since the Unix epoch.
        deadline_us: u64,
    },
    /// The scope's keys are destroyed: its data can never be read again, and
    /// it takes no writes.
    #[error("{scope} is shredded")]
    Shredded {
        /// The scope asked for.
        scope: Scope,
    },
    /// The data directory exists but is not a strongroom database.
    #[error("{0} is not a strongroom database")]
    NotADatabase(PathBuf),
    /// Another open holds the database (in another process, or an earlier
    /// open in this one that is not yet closed). Nothing was read or written.
    #[error("{path} is in use by another open of the database")]
    InUse {
        /// The data directory.
        path: PathBuf,
    },
    /// The data directory does not exist and `create_if_missing` is off.
    #[error("no database at {0}")]
    NotFound(PathBuf),
    /// More of the log than `Options::archive`'s budget is not shipped yet
    /// (the archive is unreachable or slow): writes are refused until
    /// shipping catches up, which it does by itself once the archive is
    /// back. Nothing acknowledged is lost.
    #[error(
        "{unshipped_bytes} bytes of log are not archived yet (budget {budget_bytes}): writes wait for the archive"
    )]
    ArchiveBehind {
        /// Bytes of local log not in the archive.
        unshipped_bytes: u64,
        /// The budget.
        budget_bytes: u64,
    },
    /// The database is closing: a long operation (a backup) was stopped
    /// between two of its steps. Nothing it did is lost or half-visible (a
    /// backup exists only once its manifest does).
    #[error("the database is closing: the operation was stopped")]
    Closing,
    /// An archive call failed.
    #[error(transparent)]
    Archive(#[from] crate::archive::ArchiveError),
    /// A restore cannot do what it was asked (see [`RestoreError`]).
    #[error(transparent)]
    Restore(#[from] RestoreError),
    /// The database is a standby (`Db::open_standby`): it follows another
    /// database's archive and changes nothing itself until promoted.
    #[error("this database is a standby: it is read-only until promoted")]
    Standby,
    /// `Db::open_standby` on a folder that holds a database but is not a
    /// standby (it would empty that database's log).
    #[error("{0} holds a database that is not a standby")]
    NotAStandby(PathBuf),
    /// The folder holds a restore that has not finished: run the same
    /// restore again to finish it (or remove the folder).
    #[error("{0} holds a restore that has not finished: run it again to finish it")]
    RestoreIncomplete(PathBuf),
    /// An argument is out of range (say, a key or value that is too large).
    #[error("invalid argument: {0}")]
    InvalidArgument(&'static str),
}

/// Why a restore cannot be made as asked. Nothing was changed outside the
/// restore's own folder.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// The folder to restore into holds something that is not a restore in
    /// progress: a restore makes a new database, never writes over one.
    #[error("{0} is not empty: a restore goes into a new or empty folder")]
    NotEmpty(PathBuf),
    /// The folder holds a restore in progress with another plan (another
    /// history, target or tenant).
    #[error("{path} holds an unfinished restore of {plan}: finish that one or use another folder")]
    OtherRestore {
        /// The folder.
        path: PathBuf,
        /// What that restore was asked for.
        plan: String,
    },
    /// The archive holds no history of a database (nothing was ever
    /// shipped to it, or this is not its folder or bucket prefix).
    #[error("the archive holds no database history")]
    NoHistory,
    /// The archive holds several histories (a database and databases
    /// restored from it) and none was chosen.
    #[error("the archive holds {} histories; choose one: {}", histories.len(), histories.join(", "))]
    WhichHistory {
        /// Their names (log ids), in name order.
        histories: Vec<String>,
    },
    /// No history of this name in the archive.
    #[error("the archive holds no history {0}")]
    UnknownHistory(String),
    /// The target is earlier than anything the archive can rebuild.
    #[error(
        "the target is before the oldest moment the archive reaches: LSN {oldest_lsn}{}",
        oldest_time.map(|t| format!(" (committed {})", crate::restore::display_time(t))).unwrap_or_default()
    )]
    BeforeOldest {
        /// The oldest LSN a restore reaches (the oldest backup's).
        oldest_lsn: u64,
        /// Its commit time, if known.
        oldest_time: Option<std::time::SystemTime>,
    },
    /// The target LSN is past the archive's last frame.
    #[error("LSN {target} is past the last frame in the archive, LSN {last}")]
    PastEnd {
        /// The LSN asked for.
        target: u64,
        /// The archive's last frame.
        last: u64,
    },
    /// The archive's log misses frames a restore to this target needs.
    #[error(
        "the archive's log has a gap after LSN {after}: the next piece, {piece}, starts at LSN {next}"
    )]
    Gap {
        /// The last frame before the gap.
        after: u64,
        /// The first frame after it.
        next: u64,
        /// The piece that starts after the gap.
        piece: String,
    },
}

/// Result of every public strongroom call.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Attaches the path to an `io::Error`.
pub(crate) trait IoContext<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|source| Error::io(path, source))
    }
}

impl Error {
    /// The error for an I/O failure on `path`: [`Error::NoSpace`] for a full
    /// disk, else [`Error::Io`].
    pub(crate) fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        let path = path.into();
        if source.kind() == io::ErrorKind::StorageFull {
            return Error::NoSpace { path };
        }
        Error::Io { path, source }
    }

    /// A copy of this error, for each writer of a group commit that failed.
    pub(crate) fn duplicate(&self) -> Error {
        match self {
            Error::Io { path, source } => Error::Io {
                path: path.clone(),
                source: io::Error::new(source.kind(), source.to_string()),
            },
            Error::Corruption { file, offset, kind } => Error::Corruption {
                file: file.clone(),
                offset: *offset,
                kind: kind.clone(),
            },
            Error::NoSpace { path } => Error::NoSpace { path: path.clone() },
            Error::Store(message) => Error::Store(message.clone()),
            Error::Poisoned => Error::Poisoned,
            Error::Forked { opener } => Error::Forked { opener: *opener },
            Error::Sealed { scope, deadline_us } => Error::Sealed {
                scope: *scope,
                deadline_us: *deadline_us,
            },
            Error::Shredded { scope } => Error::Shredded { scope: *scope },
            Error::ArchiveBehind {
                unshipped_bytes,
                budget_bytes,
            } => Error::ArchiveBehind {
                unshipped_bytes: *unshipped_bytes,
                budget_bytes: *budget_bytes,
            },
            other => Error::Store(other.to_string()),
        }
    }

    /// The error of a use of `scope`'s keys that its gate refused.
    pub(crate) fn revoked(scope: Scope, revoked: crate::crypto::scope_key::Revoked) -> Self {
        use crate::crypto::scope_key::Revoked;
        match revoked {
            Revoked::Sealed { deadline_us } => Error::Sealed { scope, deadline_us },
            Revoked::Shredded => Error::Shredded { scope },
        }
    }

    pub(crate) fn corruption(file: impl Into<PathBuf>, offset: u64, kind: CorruptionKind) -> Self {
        Error::Corruption {
            file: file.into(),
            offset,
            kind,
        }
    }
}
