//! The archive: named, immutable objects off the machine.
//!
//! An [`Archive`] stores whole objects under names: put, get (whole or a
//! byte range), list a folder, delete. That is all strongroom asks of a place
//! to keep its shipped log, backups and keyring copies, so the default (a
//! local folder, [`LocalArchive`]) and S3-compatible object storage fit the
//! same trait, and so does [`FaultyArchive`], the test double that fails
//! chosen calls.
//!
//! What the trait does not promise, because S3-compatible servers do not
//! all keep it: a put never fails because the name exists (Garage ignores
//! `If-None-Match: *`), and a list may miss an object just put. So every
//! name strongroom writes is unique by construction (log id, generation, LSN
//! range, content hash), and an object counts as part of the archive only
//! once a manifest that names it has been put, last.
//!
//! Everything strongroom puts in an archive is sealed first
//! (`archive/object.rs`, FORMAT.md §12.1): the archive itself only ever
//! sees ciphertext.
//!
//! # Names
//! `/`-separated folders and a file name, each segment of ASCII letters,
//! digits, `.`, `_` and `-`, neither `.` nor `..`, not ending in the
//! temporary suffix the local folder uses ([`crate::format::TMP_SUFFIX`]).

mod faulty;
pub(crate) mod fetch;
mod local;
pub(crate) mod object;
#[cfg(feature = "s3")]
mod s3;

use std::fmt;
use std::io;
use std::ops::Range;

pub use faulty::{ArchiveOp, FaultyArchive};
pub use local::LocalArchive;
#[cfg(feature = "s3")]
pub use s3::{S3Archive, S3Config};

use crate::error::CorruptionKind;
use crate::format::{ARCHIVE_NAME_MAX, TMP_SUFFIX};

/// A place that keeps named, immutable objects. Implementations must be safe
/// to call from many threads; every call blocks until it is done.
pub trait Archive: Send + Sync + fmt::Debug {
    /// Stores `bytes` under `name`, durably once this returns. A put to a
    /// name that exists replaces it (callers never do that on purpose).
    fn put(&self, name: &str, bytes: Vec<u8>) -> Result<(), ArchiveError>;
    /// The whole object; [`ArchiveError::NotFound`] if there is none.
    fn get(&self, name: &str) -> Result<Vec<u8>, ArchiveError>;
    /// Bytes `range` of the object (fewer if it ends sooner; none past its
    /// end).
    fn get_range(&self, name: &str, range: Range<u64>) -> Result<Vec<u8>, ArchiveError>;
    /// The names of every object under folder `prefix` (`""` for all, else
    /// a name's leading folders ending in `/`), sorted, with their sizes.
    fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, ArchiveError>;
    /// The folders directly under folder `prefix` (`""` for the top), each
    /// a name ending in `/`, sorted: what holds objects, one level down. By
    /// default from [`Archive::list`]; archives that can list one level
    /// (a folder, S3's delimiter) do it without listing every object.
    fn list_folders(&self, prefix: &str) -> Result<Vec<String>, ArchiveError> {
        check_prefix(prefix)?;
        let mut out: Vec<String> = self
            .list(prefix)?
            .into_iter()
            .filter_map(|o| {
                let (folder, _) = o.name.get(prefix.len()..)?.split_once('/')?;
                Some(format!("{prefix}{folder}/"))
            })
            .collect();
        out.sort();
        out.dedup();
        Ok(out)
    }
    /// Removes an object; a missing one is no error.
    fn delete(&self, name: &str) -> Result<(), ArchiveError>;
}

/// An object as a list reports it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ObjectInfo {
    /// Its full name.
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
    /// When it was put, by the archive's clock, if the archive says.
    pub modified: Option<std::time::SystemTime>,
}

/// What went wrong with an archive call.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// No object has this name.
    #[error("archive object {name} not found")]
    NotFound {
        /// The object's name.
        name: String,
    },
    /// The archive could not be reached or refused the call for now (a
    /// network error, a server error, a local I/O error): worth retrying.
    #[error("archive unavailable ({op} {name}): {message}")]
    Unavailable {
        /// The call.
        op: ArchiveOp,
        /// The object's name (or the folder listed).
        name: String,
        /// What the archive said.
        message: String,
    },
    /// The disk under a local archive is full.
    #[error("no space left for archive object {name}")]
    NoSpace {
        /// The object's name.
        name: String,
    },
    /// An object's bytes are not what strongroom put: cut short, changed,
    /// or moved from another name or archive.
    #[error("archive object {name} at offset {offset}: {kind}")]
    Corrupt {
        /// The object's name.
        name: String,
        /// Byte offset of the damaged structure in the object.
        offset: u64,
        /// What is wrong.
        kind: CorruptionKind,
    },
    /// An object was written by a format version this build cannot read.
    #[error(
        "archive object {name} has format version {found}; this build reads version {supported}"
    )]
    UnsupportedVersion {
        /// The object's name.
        name: String,
        /// The version in the object.
        found: u32,
        /// The version this build reads.
        supported: u32,
    },
    /// A name that the archive's naming rules do not allow.
    #[error("invalid archive object name {0:?}")]
    InvalidName(String),
    /// The archive's configuration is incomplete or wrong.
    #[error("archive configuration: {0}")]
    Config(String),
}

impl ArchiveError {
    /// Whether trying again later may succeed (the shipper retries these).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            ArchiveError::Unavailable { .. } | ArchiveError::NoSpace { .. }
        )
    }

    pub(crate) fn io(op: ArchiveOp, name: &str, e: io::Error) -> ArchiveError {
        match e.kind() {
            io::ErrorKind::NotFound if op != ArchiveOp::Put => ArchiveError::NotFound {
                name: name.to_owned(),
            },
            io::ErrorKind::StorageFull => ArchiveError::NoSpace {
                name: name.to_owned(),
            },
            _ => ArchiveError::Unavailable {
                op,
                name: name.to_owned(),
                message: e.to_string(),
            },
        }
    }

    pub(crate) fn corrupt(name: &str, offset: u64, kind: CorruptionKind) -> ArchiveError {
        ArchiveError::Corrupt {
            name: name.to_owned(),
            offset,
            kind,
        }
    }
}

/// Checks `name` against the naming rules.
pub(crate) fn check_name(name: &str) -> Result<(), ArchiveError> {
    let segment_ok = |s: &str| {
        !s.is_empty()
            && s != "."
            && s != ".."
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    };
    if name.len() <= ARCHIVE_NAME_MAX
        && name.split('/').all(segment_ok)
        && !name.ends_with(TMP_SUFFIX)
    {
        Ok(())
    } else {
        Err(ArchiveError::InvalidName(name.to_owned()))
    }
}

/// Checks a list prefix: `""`, or folders ending in `/`.
pub(crate) fn check_prefix(prefix: &str) -> Result<(), ArchiveError> {
    match prefix.strip_suffix('/') {
        None if prefix.is_empty() => Ok(()),
        Some(folders) => check_name(folders),
        None => Err(ArchiveError::InvalidName(prefix.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_plain_relative_paths() {
        for ok in ["a", "wal/0000.seg", "backups/x-1_2.manifest", "a/b/c"] {
            check_name(ok).unwrap();
        }
        for bad in [
            "", "/a", "a/", "a//b", "../a", "a/./b", "a b", "a\\b", "é", "x.tmp", "a/..",
        ] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        check_name(&"a".repeat(ARCHIVE_NAME_MAX)).unwrap();
        assert!(check_name(&"a".repeat(ARCHIVE_NAME_MAX + 1)).is_err());
        for ok in ["", "wal/", "a/b/"] {
            check_prefix(ok).unwrap();
        }
        for bad in ["wal", "/", "a//"] {
            assert!(check_prefix(bad).is_err(), "{bad:?}");
        }
    }
}
