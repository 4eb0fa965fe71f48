//! An in-memory [`FileSystem`]: recovery runs the real code with no disk I/O.

use super::*;

// ---------------------------------------------------------------------------
// The in-memory file system
// ---------------------------------------------------------------------------

#[derive(Debug, Default)]
pub(super) struct MemState {
    files: BTreeMap<PathBuf, Vec<u8>>,
    dirs: BTreeSet<PathBuf>,
    locks: BTreeSet<PathBuf>,
}

/// A lock of [`MemFs`], released when dropped.
#[derive(Debug)]
pub(super) struct MemLock {
    fs: MemFs,
    path: PathBuf,
}

impl FileLock for MemLock {}

impl Drop for MemLock {
    fn drop(&mut self) {
        self.fs.0.lock().locks.remove(&self.path);
    }
}

/// A [`FileSystem`] in memory: no I/O, no durability to model.
#[derive(Debug, Clone, Default)]
pub(super) struct MemFs(Arc<Mutex<MemState>>);

pub(super) fn not_found() -> io::Error {
    io::Error::from(io::ErrorKind::NotFound)
}

impl MemFs {
    /// Adds a folder and its parents.
    pub(super) fn add_dir(&self, dir: &Path) {
        let mut s = self.0.lock();
        for d in dir.ancestors() {
            s.dirs.insert(d.to_path_buf());
        }
    }

    /// Adds a file (and its folders), replacing any of that name.
    pub(super) fn add_file(&self, path: &Path, bytes: Vec<u8>) {
        self.add_dir(path.parent().expect("a file has a folder"));
        self.0.lock().files.insert(path.to_path_buf(), bytes);
    }

    pub(super) fn len_of(&self, path: &Path) -> Option<u64> {
        self.0.lock().files.get(path).map(|b| b.len() as u64)
    }

    pub(super) fn files_under(&self, dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
        let s = self.0.lock();
        s.files
            .iter()
            .filter(|(p, _)| p.starts_with(dir))
            .map(|(p, b)| (p.clone(), b.clone()))
            .collect()
    }

    pub(super) fn open(
        &self,
        path: &Path,
        create: bool,
        truncate: bool,
    ) -> io::Result<Box<dyn WritableFile>> {
        let mut s = self.0.lock();
        let parent = path.parent().ok_or_else(not_found)?;
        if !s.dirs.contains(parent) || s.dirs.contains(path) {
            return Err(not_found());
        }
        match s.files.get_mut(path) {
            Some(bytes) if truncate => bytes.clear(),
            Some(_) => {}
            None if create => {
                s.files.insert(path.to_path_buf(), Vec::new());
            }
            None => return Err(not_found()),
        }
        Ok(Box::new(MemFile {
            fs: self.clone(),
            path: path.to_path_buf(),
        }))
    }
}

impl FileSystem for MemFs {
    fn create_new(&self, path: &Path) -> io::Result<Box<dyn WritableFile>> {
        if self.0.lock().files.contains_key(path) {
            return Err(io::Error::from(io::ErrorKind::AlreadyExists));
        }
        self.open(path, true, false)
    }

    fn create_truncate(&self, path: &Path) -> io::Result<Box<dyn WritableFile>> {
        self.open(path, true, true)
    }

    fn open_append(&self, path: &Path) -> io::Result<Box<dyn WritableFile>> {
        self.open(path, false, false)
    }

    fn open_write(&self, path: &Path) -> io::Result<Box<dyn WritableFile>> {
        self.open(path, false, false)
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        self.0.lock().files.get(path).cloned().ok_or_else(not_found)
    }

    fn kind(&self, path: &Path) -> io::Result<Option<Kind>> {
        let s = self.0.lock();
        Ok(if s.files.contains_key(path) {
            Some(Kind::File)
        } else if s.dirs.contains(path) {
            Some(Kind::Dir)
        } else {
            None
        })
    }

    fn read_dir(&self, path: &Path) -> io::Result<Vec<PathBuf>> {
        let s = self.0.lock();
        if !s.dirs.contains(path) {
            return Err(not_found());
        }
        let in_dir = |p: &&PathBuf| p.parent() == Some(path);
        Ok(s.files
            .keys()
            .filter(in_dir)
            .chain(s.dirs.iter().filter(in_dir))
            .cloned()
            .collect())
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut s = self.0.lock();
        let bytes = s.files.remove(from).ok_or_else(not_found)?;
        s.files.insert(to.to_path_buf(), bytes);
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.0
            .lock()
            .files
            .remove(path)
            .map(drop)
            .ok_or_else(not_found)
    }

    fn create_dir(&self, path: &Path) -> io::Result<()> {
        let mut s = self.0.lock();
        let parent = path.parent().ok_or_else(not_found)?;
        if !s.dirs.contains(parent) {
            return Err(not_found());
        }
        if s.dirs.contains(path) || s.files.contains_key(path) {
            return Err(io::Error::from(io::ErrorKind::AlreadyExists));
        }
        s.dirs.insert(path.to_path_buf());
        Ok(())
    }

    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        let mut s = self.0.lock();
        if !s.dirs.contains(path) {
            return Err(not_found());
        }
        s.dirs.retain(|d| !d.starts_with(path));
        s.files.retain(|f, _| !f.starts_with(path));
        Ok(())
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        if self.0.lock().dirs.contains(path) {
            Ok(())
        } else {
            Err(not_found())
        }
    }

    fn lock(&self, path: &Path) -> io::Result<Box<dyn FileLock>> {
        let mut s = self.0.lock();
        if !s.dirs.contains(path.parent().ok_or_else(not_found)?) {
            return Err(not_found());
        }
        if !s.locks.insert(path.to_path_buf()) {
            return Err(io::Error::from(io::ErrorKind::WouldBlock));
        }
        Ok(Box::new(MemLock {
            fs: self.clone(),
            path: path.to_path_buf(),
        }))
    }
}

/// A file of [`MemFs`] open for appending.
#[derive(Debug)]
pub(super) struct MemFile {
    fs: MemFs,
    path: PathBuf,
}

impl MemFile {
    pub(super) fn with<T>(&self, f: impl FnOnce(&mut Vec<u8>) -> T) -> io::Result<T> {
        let mut s = self.fs.0.lock();
        s.files.get_mut(&self.path).map(f).ok_or_else(not_found)
    }
}

impl WritableFile for MemFile {
    fn append(&self, buf: &[u8]) -> io::Result<()> {
        self.with(|bytes| bytes.extend_from_slice(buf))
    }

    fn write_at(&self, offset: u64, buf: &[u8]) -> io::Result<()> {
        let start =
            usize::try_from(offset).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        self.with(|bytes| {
            let end = start + buf.len();
            if bytes.len() < end {
                bytes.resize(end, 0);
            }
            bytes[start..end].copy_from_slice(buf);
        })
    }

    fn sync_data(&self) -> io::Result<()> {
        self.with(|_| ())
    }

    fn sync_all(&self) -> io::Result<()> {
        self.with(|_| ())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.with(|bytes| bytes.resize(len as usize, 0))
    }

    fn size(&self) -> io::Result<u64> {
        self.with(|bytes| bytes.len() as u64)
    }
}
