//! The default archive: a folder on a local (or mounted) file system.
//!
//! Each object is a file at its name under the root folder, written as every
//! file of the engine is replaced (a temporary file, fsync, rename, fsync of
//! the folder), through the file-system seam, so the fault-injecting and
//! power-cut doubles reach it. A crash during a put leaves the old object or
//! none, plus perhaps a temporary file that lists skip.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{Archive, ArchiveError, ArchiveOp, ObjectInfo, check_name, check_prefix};
use crate::error::Error;
use crate::format::TMP_SUFFIX;
use crate::fs::{FileSystem, Files, OsFileSystem};

/// An archive in a local folder.
#[derive(Debug, Clone)]
pub struct LocalArchive {
    root: PathBuf,
    files: Files,
}

impl LocalArchive {
    /// The archive in folder `root`, which must exist: a put into a missing
    /// folder is `Unavailable` (retried), never a folder made where a disk
    /// should have been mounted.
    pub fn new(root: impl Into<PathBuf>) -> LocalArchive {
        LocalArchive::with_fs(root, Arc::new(OsFileSystem))
    }

    /// The archive in folder `root`, through file system `fs` (a
    /// [`crate::fs::FaultyFileSystem`] in tests).
    pub fn with_fs(root: impl Into<PathBuf>, fs: Arc<dyn FileSystem>) -> LocalArchive {
        LocalArchive {
            root: root.into(),
            files: Files::new(fs),
        }
    }

    /// The folder the archive lives in.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// `Unavailable` unless the root folder exists. It is never made here: a
    /// backup disk that is not mounted must not fill the local disk under
    /// its mount point, nor list as an empty archive (old copies would look
    /// absent and never be deleted).
    fn check_root(&self, op: ArchiveOp, name: &str) -> Result<(), ArchiveError> {
        if self.files.is_dir(&self.root).unwrap_or(false) {
            return Ok(());
        }
        Err(ArchiveError::Unavailable {
            op,
            name: name.to_owned(),
            message: format!(
                "the archive folder {} does not exist (a disk not mounted?); create it to start archiving",
                self.root.display()
            ),
        })
    }

    /// Appends to `out` every object under folder `dir` (named `prefix`).
    /// An entry deleted while the walk runs (a concurrent delete) is not
    /// listed, and is no error.
    fn walk(&self, dir: &Path, prefix: &str, out: &mut Vec<ObjectInfo>) -> Result<(), Error> {
        let entries = match self.files.list(dir) {
            Err(e) if is_gone(&e) => return Ok(()),
            entries => entries?,
        };
        for entry in entries {
            let path = dir.join(&entry);
            let name = format!("{prefix}{entry}");
            let found = (|| {
                if self.files.is_dir(&path)? {
                    return self.walk(&path, &format!("{name}/"), out);
                }
                if entry.ends_with(TMP_SUFFIX) || check_name(&name).is_err() {
                    return Ok(()); // a file of another name is not an object of ours
                }
                let size = self.files.len(&path)?;
                let modified = self.files.modified(&path)?;
                out.push(ObjectInfo {
                    name: name.clone(),
                    size,
                    modified,
                });
                Ok(())
            })();
            match found {
                Err(e) if is_gone(&e) => {}
                found => found?,
            }
        }
        Ok(())
    }
}

impl LocalArchive {
    /// Whether `path` is a folder with an object somewhere under it (a
    /// folder that deletes left empty holds none), stopping at the first.
    fn holds_object(&self, path: &Path) -> Result<bool, Error> {
        let entries = match self.files.is_dir(path) {
            Ok(true) => match self.files.list(path) {
                Err(e) if is_gone(&e) => return Ok(false),
                entries => entries?,
            },
            Ok(false) => return Ok(false),
            Err(e) if is_gone(&e) => return Ok(false),
            Err(e) => return Err(e),
        };
        for entry in entries {
            let inner = path.join(&entry);
            let found = match self.files.is_dir(&inner) {
                Ok(true) => self.holds_object(&inner)?,
                Ok(false) => !entry.ends_with(TMP_SUFFIX),
                Err(e) if is_gone(&e) => false,
                Err(e) => return Err(e),
            };
            if found {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

/// Whether `e` says a file or folder is not there (any more).
fn is_gone(e: &Error) -> bool {
    matches!(e, Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
}

/// An engine error on a local archive's file, as the archive's error.
fn archive_error(op: ArchiveOp, name: &str, e: Error) -> ArchiveError {
    match e {
        Error::Io { source, .. } => ArchiveError::io(op, name, source),
        Error::NoSpace { .. } => ArchiveError::NoSpace {
            name: name.to_owned(),
        },
        other => ArchiveError::Unavailable {
            op,
            name: name.to_owned(),
            message: other.to_string(),
        },
    }
}

impl Archive for LocalArchive {
    fn put(&self, name: &str, bytes: Vec<u8>) -> Result<(), ArchiveError> {
        check_name(name)?;
        self.check_root(ArchiveOp::Put, name)?;
        let path = self.path(name);
        let parent = path.parent().expect("an object's path is under the root");
        self.files
            .create_dir_durable(parent)
            .and_then(|()| self.files.write_atomic(&path, &bytes))
            .map_err(|e| archive_error(ArchiveOp::Put, name, e))
    }

    fn get(&self, name: &str) -> Result<Vec<u8>, ArchiveError> {
        check_name(name)?;
        match self.files.read_if_exists(&self.path(name)) {
            Ok(Some(bytes)) => Ok(bytes),
            Ok(None) => Err(ArchiveError::NotFound {
                name: name.to_owned(),
            }),
            Err(e) => Err(archive_error(ArchiveOp::Get, name, e)),
        }
    }

    /// Reads the whole file and returns the range: objects are at most a
    /// log segment or an SST file, and a local read of one is cheap next to
    /// what a restore does with it.
    fn get_range(&self, name: &str, range: Range<u64>) -> Result<Vec<u8>, ArchiveError> {
        let bytes = self.get(name)?;
        let end = usize::try_from(range.end)
            .unwrap_or(usize::MAX)
            .min(bytes.len());
        let start = usize::try_from(range.start).unwrap_or(usize::MAX).min(end);
        Ok(bytes[start..end].to_vec())
    }

    fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, ArchiveError> {
        check_prefix(prefix)?;
        let dir = self.path(prefix);
        let mut out = Vec::new();
        self.check_root(ArchiveOp::List, prefix)?;
        let listed = match self.files.is_dir(&dir) {
            Ok(false) => Ok(()),
            Ok(true) => self.walk(&dir, prefix, &mut out),
            Err(e) => Err(e),
        };
        listed.map_err(|e| archive_error(ArchiveOp::List, prefix, e))?;
        out.sort();
        Ok(out)
    }

    fn list_folders(&self, prefix: &str) -> Result<Vec<String>, ArchiveError> {
        check_prefix(prefix)?;
        self.check_root(ArchiveOp::List, prefix)?;
        let dir = self.path(prefix);
        let listed = (|| {
            if !self.files.is_dir(&dir)? {
                return Ok(Vec::new());
            }
            let mut out = Vec::new();
            for entry in self.files.list(&dir)? {
                let name = format!("{prefix}{entry}");
                if check_name(&name).is_ok() && self.holds_object(&dir.join(&entry))? {
                    out.push(format!("{name}/"));
                }
            }
            Ok(out)
        })();
        let mut out = listed.map_err(|e| archive_error(ArchiveOp::List, prefix, e))?;
        out.sort();
        Ok(out)
    }

    fn delete(&self, name: &str) -> Result<(), ArchiveError> {
        check_name(name)?;
        self.files
            .remove_durable(&self.path(name))
            .map_err(|e| archive_error(ArchiveOp::Delete, name, e))
    }
}
