//! The engine's file I/O, behind one small trait.
//!
//! Every file the engine itself writes (log segments, keyring shards, the
//! manifest, the seals ledger) goes through a [`FileSystem`]: the operating
//! system's by default ([`OsFileSystem`]), or [`FaultyFileSystem`] in tests,
//! which fails chosen operations and simulates power cuts. RocksDB's files go
//! through RocksDB's own Env; their failures are covered by killing the
//! process.
//!
//! Inside the engine, `Files` wraps the trait with the durable operations
//! built from it (atomic replacement, durable creation and removal) and
//! attaches paths to errors.

mod faulty;
mod os;

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use faulty::{Fault, FaultyFileSystem, Op, PowerCut};
pub use os::OsFileSystem;

use crate::error::{IoContext, Result};
use crate::format::TMP_SUFFIX;

/// What a path names, if anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A regular file.
    File,
    /// A folder.
    Dir,
}

/// The file-system operations the engine uses. Implementations must be safe
/// to call from many threads.
pub trait FileSystem: Send + Sync + fmt::Debug {
    /// Creates a new, empty file, to be written with
    /// [`WritableFile::write_at`]; fails if it exists.
    fn create_new(&self, path: &Path) -> io::Result<Box<dyn WritableFile>>;
    /// Creates a file for appending, emptying it if it exists.
    fn create_truncate(&self, path: &Path) -> io::Result<Box<dyn WritableFile>>;
    /// Opens an existing file for appending.
    fn open_append(&self, path: &Path) -> io::Result<Box<dyn WritableFile>>;
    /// Opens an existing file to be written with [`WritableFile::write_at`].
    fn open_write(&self, path: &Path) -> io::Result<Box<dyn WritableFile>>;
    /// Reads a whole file.
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;
    /// What `path` names, or `None` if nothing.
    fn kind(&self, path: &Path) -> io::Result<Option<Kind>>;
    /// Up to `len` bytes of file `path` from `offset` (fewer at its end).
    /// The default reads the whole file.
    fn read_at(&self, path: &Path, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let bytes = self.read(path)?;
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(bytes.len());
        let end = start.saturating_add(len).min(bytes.len());
        Ok(bytes[start..end].to_vec())
    }
    /// The length of file `path` in bytes. The default reads the file.
    fn len(&self, path: &Path) -> io::Result<u64> {
        Ok(self.read(path)?.len() as u64)
    }
    /// When file `path` was last written, if the file system says (the
    /// default does not).
    fn modified(&self, path: &Path) -> io::Result<Option<std::time::SystemTime>> {
        let _ = path;
        Ok(None)
    }
    /// The paths of a folder's entries, in no particular order.
    fn read_dir(&self, path: &Path) -> io::Result<Vec<PathBuf>>;
    /// Renames a file, replacing `to` if it exists.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes a file.
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// Creates a folder (its parent must exist).
    fn create_dir(&self, path: &Path) -> io::Result<()>;
    /// Removes a folder and everything in it.
    fn remove_dir_all(&self, path: &Path) -> io::Result<()>;
    /// Makes the entries of a folder (creations, renames, removals) durable.
    fn sync_dir(&self, path: &Path) -> io::Result<()>;
    /// Takes the exclusive advisory lock of file `path` (created empty if
    /// missing, in an existing folder) for as long as the returned guard
    /// lives; the operating system releases it when the process dies, however
    /// it dies. Fails with [`io::ErrorKind::WouldBlock`] while another holder,
    /// in this process or another, has it.
    fn lock(&self, path: &Path) -> io::Result<Box<dyn FileLock>>;
}

/// A held advisory lock ([`FileSystem::lock`]); dropping it releases the lock.
pub trait FileLock: Send + Sync + fmt::Debug {}

/// A file open for appending. Like `std::fs::File`, every method takes
/// `&self`: the log appends to a segment on one thread while another thread
/// syncs it.
pub trait WritableFile: Send + Sync + fmt::Debug {
    /// Appends all of `buf` at the end of a file opened for appending. On
    /// error, a prefix of it may have been written.
    fn append(&self, buf: &[u8]) -> io::Result<()>;
    /// Writes all of `buf` at `offset` of a file opened by
    /// [`FileSystem::create_new`] or [`FileSystem::open_write`], extending
    /// it if needed. On error, a prefix of it may have been written.
    fn write_at(&self, offset: u64, buf: &[u8]) -> io::Result<()>;
    /// Makes the file's data durable (`fdatasync`).
    fn sync_data(&self) -> io::Result<()>;
    /// Makes the file's data and metadata durable (`fsync`).
    fn sync_all(&self) -> io::Result<()>;
    /// Truncates (or extends with zeros) the file to `len` bytes.
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// The file's length in bytes.
    fn size(&self) -> io::Result<u64>;
    /// Reserves disk blocks for the file's first `len` bytes without
    /// changing its length, so that appends up to there need no block
    /// allocation in their sync. A hint: the default does nothing, and
    /// callers ignore errors.
    fn preallocate(&self, len: u64) -> io::Result<()> {
        let _ = len;
        Ok(())
    }
}

/// The engine's handle on its file system, with the durable operations built
/// from it. Errors carry the path.
#[derive(Debug, Clone)]
pub(crate) struct Files(Arc<dyn FileSystem>);

impl Files {
    pub(crate) fn new(fs: Arc<dyn FileSystem>) -> Files {
        Files(fs)
    }

    pub(crate) fn create_new(&self, path: &Path) -> Result<Box<dyn WritableFile>> {
        self.0.create_new(path).at(path)
    }

    pub(crate) fn open_append(&self, path: &Path) -> Result<Box<dyn WritableFile>> {
        self.0.open_append(path).at(path)
    }

    pub(crate) fn open_write(&self, path: &Path) -> Result<Box<dyn WritableFile>> {
        self.0.open_write(path).at(path)
    }

    /// Reads a whole file.
    pub(crate) fn read(&self, path: &Path) -> Result<Vec<u8>> {
        self.0.read(path).at(path)
    }

    /// Reads a whole file, or `None` if there is none (one call, so a file
    /// removed between a check and the read is no error).
    pub(crate) fn read_if_exists(&self, path: &Path) -> Result<Option<Vec<u8>>> {
        match self.0.read(path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).at(path),
        }
    }

    /// Takes the lock of file `path` ([`FileSystem::lock`]); `None` if
    /// another holder has it.
    pub(crate) fn try_lock(&self, path: &Path) -> Result<Option<Box<dyn FileLock>>> {
        match self.0.lock(path) {
            Ok(lock) => Ok(Some(lock)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(e).at(path),
        }
    }

    /// Up to `len` bytes of file `path` from `offset`.
    pub(crate) fn read_at(&self, path: &Path, offset: u64, len: usize) -> Result<Vec<u8>> {
        self.0.read_at(path, offset, len).at(path)
    }

    /// The length of file `path` in bytes.
    pub(crate) fn len(&self, path: &Path) -> Result<u64> {
        self.0.len(path).at(path)
    }

    /// When file `path` was last written, if the file system says.
    pub(crate) fn modified(&self, path: &Path) -> Result<Option<std::time::SystemTime>> {
        self.0.modified(path).at(path)
    }

    pub(crate) fn is_file(&self, path: &Path) -> Result<bool> {
        Ok(self.0.kind(path).at(path)? == Some(Kind::File))
    }

    pub(crate) fn is_dir(&self, path: &Path) -> Result<bool> {
        Ok(self.0.kind(path).at(path)? == Some(Kind::Dir))
    }

    /// The file names in folder `dir` (names that are not UTF-8 are
    /// skipped: the engine writes none).
    pub(crate) fn list(&self, dir: &Path) -> Result<Vec<String>> {
        Ok(self
            .0
            .read_dir(dir)
            .at(dir)?
            .into_iter()
            .filter_map(|p| p.file_name()?.to_str().map(str::to_owned))
            .collect())
    }

    /// Syncs a folder, so that files created, renamed or removed in it
    /// survive a power cut.
    pub(crate) fn sync_dir(&self, dir: &Path) -> Result<()> {
        self.0.sync_dir(dir).at(dir)
    }

    /// Creates a folder and any missing parents, syncing each new folder's
    /// parent, so that every new entry is durable.
    pub(crate) fn create_dir_durable(&self, dir: &Path) -> Result<()> {
        if self.is_dir(dir)? {
            return Ok(());
        }
        // Another thread may make it between the check above and the
        // creation below: a folder that exists then is no error.
        let create = |dir: &Path| match self.0.create_dir(dir) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && self.is_dir(dir)? => Ok(()),
            created => created.at(dir),
        };
        match dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            Some(parent) => {
                self.create_dir_durable(parent)?;
                create(dir)?;
                self.sync_dir(parent)
            }
            None => create(dir),
        }
    }

    /// Replaces `path` with `bytes` atomically: a reader (or a recovery
    /// after a crash at any point) sees either the old file or the new one,
    /// never a mix.
    ///
    /// Order: write a temporary file, fsync it, rename it over `path`, fsync
    /// the folder. The data is durable before the rename makes it visible.
    pub(crate) fn write_atomic(&self, path: &Path, bytes: &[u8]) -> Result<()> {
        let tmp = tmp_path(path);
        {
            let file = self.0.create_truncate(&tmp).at(&tmp)?;
            file.append(bytes).at(&tmp)?;
            file.sync_all().at(&tmp)?;
        }
        self.0.rename(&tmp, path).at(path)?;
        self.sync_dir(parent_of(path))
    }

    /// Removes a file and syncs its folder. A missing file is not an error.
    pub(crate) fn remove_durable(&self, path: &Path) -> Result<()> {
        match self.0.remove_file(path) {
            Ok(()) => self.sync_dir(parent_of(path)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e).at(path),
        }
    }

    /// Removes a folder and all in it, and syncs its parent. A missing
    /// folder is not an error.
    pub(crate) fn remove_dir_durable(&self, dir: &Path) -> Result<()> {
        match self.0.remove_dir_all(dir) {
            Ok(()) => self.sync_dir(parent_of(dir)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e).at(dir),
        }
    }

    /// Removes temporary files left by a crash during
    /// `Files::write_atomic`.
    pub(crate) fn remove_stale_tmp_files(&self, dir: &Path) -> Result<()> {
        if !self.is_dir(dir)? {
            return Ok(());
        }
        for name in self.list(dir)? {
            if name.ends_with(TMP_SUFFIX) {
                self.remove_durable(&dir.join(name))?;
            }
        }
        Ok(())
    }
}

impl Default for Files {
    fn default() -> Self {
        Files(Arc::new(OsFileSystem))
    }
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().expect("a file path").to_os_string();
    name.push(TMP_SUFFIX);
    path.with_file_name(name)
}

fn parent_of(path: &Path) -> &Path {
    path.parent().expect("a file path has a parent folder")
}
