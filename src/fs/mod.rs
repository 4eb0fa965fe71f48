//! File-system helpers: atomic replacement, durable creation and removal,
//! folder syncs.
//!
//! The log writer and the keyring append through `std::fs::File` directly;
//! the reliability-harness issue puts all of the engine's own I/O behind one
//! fault-injectable trait. RocksDB's files go through its own Env.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{IoContext, Result};
use crate::format::TMP_SUFFIX;

/// Syncs a folder, so that files created, renamed or removed in it survive a
/// power cut.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).at(dir)
}

/// Creates a folder and any missing parents, syncing each new folder's
/// parent, so that every new entry is durable.
pub(crate) fn create_dir_durable(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        create_dir_durable(parent)?;
        fs::create_dir(dir).at(dir)?;
        sync_dir(parent)
    } else {
        fs::create_dir(dir).at(dir)
    }
}

/// Replaces `path` with `bytes` atomically: a reader (or a recovery after a
/// crash at any point) sees either the old file or the new one, never a mix.
///
/// Order: write a temporary file, fsync it, rename it over `path`, fsync the
/// folder. The data is durable before the rename makes it visible.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = tmp_path(path);
    {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .at(&tmp)?;
        f.write_all(bytes).at(&tmp)?;
        f.sync_all().at(&tmp)?;
    }
    fs::rename(&tmp, path).at(path)?;
    sync_dir(parent_of(path))
}

/// Removes a file and syncs its folder. A missing file is not an error.
pub(crate) fn remove_durable(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => sync_dir(parent_of(path)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).at(path),
    }
}

/// Removes temporary files left by a crash during [`write_atomic`].
pub(crate) fn remove_stale_tmp_files(dir: &Path) -> Result<()> {
    if !dir.is_dir() {
        return Ok(());
    }
    for entry in fs::read_dir(dir).at(dir)? {
        let path = entry.at(dir)?.path();
        if path.extension().and_then(|e| e.to_str()) == Some(&TMP_SUFFIX[1..]) {
            remove_durable(&path)?;
        }
    }
    Ok(())
}

/// Reads a whole file.
pub(crate) fn read(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).at(path)
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().expect("a file path").to_os_string();
    name.push(TMP_SUFFIX);
    path.with_file_name(name)
}

fn parent_of(path: &Path) -> &Path {
    path.parent().expect("a file path has a parent folder")
}
