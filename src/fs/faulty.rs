//! A fault-injecting file system for tests: fails chosen operations, and
//! simulates power cuts.
//!
//! It runs every operation on the real file system and keeps, beside it, a
//! model of what a power cut would leave: for each file the bytes of its last
//! `fsync`/`fdatasync`, and for each folder the entries of its last folder
//! sync. [`FaultyFileSystem::apply_power_cut`] rewrites the folders it has
//! seen to that state, keeping a random prefix of each file's unsynced
//! appends (the ALICE study's model of an ordered-data journaling file
//! system: appends reach the disk in part, renames and creations only once
//! their folder is synced). This is where a missing folder sync, or a rename
//! before the data's sync, shows.
//!
//! Only the operations of this trait are modelled: RocksDB's own files are
//! left as they are (cover them by killing the process).

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;

use super::{FileLock, FileSystem, Kind, OsFileSystem, WritableFile};

/// An operation a rule can fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// An append to an open file.
    Write,
    /// `fsync` or `fdatasync` of a file.
    Sync,
    /// `fsync` of a folder.
    SyncDir,
    /// A rename.
    Rename,
    /// Creating or opening a file for writing.
    Open,
    /// Removing a file or a folder.
    Remove,
    /// Creating a folder.
    CreateDir,
    /// Truncating a file.
    SetLen,
}

/// How a failing operation fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// `EIO`.
    Eio,
    /// `ENOSPC`.
    NoSpace,
    /// A write that writes the first half of its buffer, then `ENOSPC`.
    /// (Other operations fail with `ENOSPC`.)
    ShortWrite,
}

/// What [`FaultyFileSystem::apply_power_cut`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PowerCut {
    /// Files whose unsynced bytes were dropped, in whole or in part.
    pub files_cut: usize,
    /// Unsynced bytes dropped.
    pub bytes_dropped: u64,
    /// Entries (created or renamed, but their folder not synced) undone.
    pub entries_undone: usize,
}

const EIO: i32 = 5;
const ENOSPC: i32 = 28;

struct Rule {
    op: Op,
    path_contains: String,
    /// Matching operations to let through before failing.
    skip: u64,
    /// Fail every matching operation from then on, not just one.
    sticky: bool,
    fault: Fault,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Entry {
    File(u64),
    Dir,
}

#[derive(Default)]
struct Folder {
    live: BTreeMap<OsString, Entry>,
    durable: BTreeMap<OsString, Entry>,
}

#[derive(Default)]
struct State {
    rules: Vec<Rule>,
    ops: u64,
    cut_after: Option<u64>,
    powered_off: bool,
    /// Bytes of each file as of its last sync.
    durable_data: HashMap<u64, Vec<u8>>,
    next_node: u64,
    folders: HashMap<PathBuf, Folder>,
}

/// A [`FileSystem`] that fails the operations it is told to, and can
/// simulate a power cut. For tests; see the module documentation.
#[derive(Clone, Default)]
pub struct FaultyFileSystem {
    state: Arc<Mutex<State>>,
}

impl std::fmt::Debug for FaultyFileSystem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.state.lock();
        f.debug_struct("FaultyFileSystem")
            .field("ops", &s.ops)
            .field("powered_off", &s.powered_off)
            .finish()
    }
}

impl FaultyFileSystem {
    /// A file system that behaves like the real one until told otherwise.
    pub fn new() -> Arc<FaultyFileSystem> {
        Arc::new(FaultyFileSystem::default())
    }

    /// Fails the `nth` (1 = the next) operation `op` on a path containing
    /// `path_contains` with `fault`; later ones succeed.
    pub fn fail_once(&self, op: Op, path_contains: &str, nth: u64, fault: Fault) {
        self.add_rule(op, path_contains, nth, fault, false);
    }

    /// Like [`FaultyFileSystem::fail_once`], but fails every matching
    /// operation from the `nth` on (a disk that stays full, or broken).
    pub fn fail_from(&self, op: Op, path_contains: &str, nth: u64, fault: Fault) {
        self.add_rule(op, path_contains, nth, fault, true);
    }

    fn add_rule(&self, op: Op, path_contains: &str, nth: u64, fault: Fault, sticky: bool) {
        assert!(nth >= 1, "operations are counted from 1");
        self.state.lock().rules.push(Rule {
            op,
            path_contains: path_contains.to_owned(),
            skip: nth - 1,
            sticky,
            fault,
        });
    }

    /// Removes every rule: the disk works again (space is back).
    pub fn heal(&self) {
        self.state.lock().rules.clear();
    }

    /// Mutating operations done so far (writes, syncs, renames, ...).
    pub fn ops(&self) -> u64 {
        self.state.lock().ops
    }

    /// Cuts the power after `ops` more mutating operations: that operation
    /// and every later one, of any kind, fails with `EIO`, as on a machine
    /// that is off. Call [`FaultyFileSystem::apply_power_cut`] once the
    /// database is dropped.
    pub fn cut_power_after(&self, ops: u64) {
        let mut s = self.state.lock();
        s.cut_after = Some(s.ops + ops);
        if ops == 0 {
            s.powered_off = true;
        }
    }

    /// Whether the power is off.
    pub fn powered_off(&self) -> bool {
        self.state.lock().powered_off
    }

    /// Rewrites every folder this file system has touched to what a power
    /// cut would have left: entries as of each folder's last sync; each
    /// file's bytes as of its last sync, plus a prefix (chosen by `seed`) of
    /// the bytes appended since. Then powers back on, with no rules.
    pub fn apply_power_cut(&self, seed: u64) -> io::Result<PowerCut> {
        let mut s = self.state.lock();
        let mut rng = SplitMix(seed);
        let mut report = PowerCut::default();
        let mut dirs: Vec<PathBuf> = s.folders.keys().cloned().collect();
        // Parents before children: a folder whose own entry did not survive
        // is gone with its parent.
        dirs.sort_by_key(|d| d.components().count());
        for dir in dirs {
            if let Some(parent) = dir.parent().and_then(|p| s.folders.get(p)) {
                let name = dir.file_name().unwrap_or_default();
                if parent.durable.get(name) != Some(&Entry::Dir) {
                    continue;
                }
            }
            fs::create_dir_all(&dir)?;
            let folder = &s.folders[&dir];
            let names: Vec<OsString> = folder
                .live
                .keys()
                .chain(folder.durable.keys())
                .cloned()
                .collect();
            let mut plan = Vec::new();
            for name in names {
                let live = folder.live.get(&name).copied();
                let durable = folder.durable.get(&name).copied();
                plan.push((name, live, durable));
            }
            for (name, live, durable) in plan {
                let path = dir.join(&name);
                if live.is_some() && live != durable {
                    report.entries_undone += 1;
                }
                match durable {
                    None => remove_any(&path)?,
                    Some(Entry::Dir) => {
                        if live != Some(Entry::Dir) {
                            remove_any(&path)?;
                            fs::create_dir(&path)?;
                        }
                    }
                    Some(Entry::File(node)) => {
                        let synced = s.durable_data.get(&node).cloned().unwrap_or_default();
                        let mut bytes = synced.clone();
                        if live == Some(Entry::File(node)) {
                            let now = fs::read(&path)?;
                            // What changed since the sync, from the first
                            // byte that differs (appends, or frames written
                            // over zeros): a random prefix of it survives.
                            let same = now.iter().zip(&synced).take_while(|(a, b)| a == b).count();
                            if now.len() >= synced.len() && same < now.len() {
                                let changed = now.len() - same;
                                let kept = match rng.next() % 3 {
                                    0 => 0,
                                    1 => changed,
                                    _ => (rng.next() % (changed as u64 + 1)) as usize,
                                };
                                let end = same + kept;
                                bytes[same..end.min(synced.len())]
                                    .copy_from_slice(&now[same..end.min(synced.len())]);
                                if end > synced.len() {
                                    bytes.extend_from_slice(&now[synced.len()..end]);
                                }
                            }
                            if bytes.len() != now.len() || bytes != now {
                                report.files_cut += 1;
                                report.bytes_dropped +=
                                    now.len().saturating_sub(bytes.len()) as u64;
                            }
                        } else {
                            remove_any(&path)?;
                        }
                        fs::write(&path, &bytes)?;
                        File::open(&path)?.sync_all()?;
                    }
                }
            }
            File::open(&dir)?.sync_all()?;
        }
        for folder in s.folders.values_mut() {
            folder.live = folder.durable.clone();
        }
        s.rules.clear();
        s.cut_after = None;
        s.powered_off = false;
        Ok(report)
    }
}

fn remove_any(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// A small deterministic generator for the power-cut choices (SplitMix64).
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

impl State {
    /// Counts a mutating operation and decides whether it fails.
    fn check(&mut self, op: Op, path: &Path) -> Result<(), Fault> {
        self.check_power()?;
        self.ops += 1;
        if self.cut_after.is_some_and(|at| self.ops > at) {
            self.powered_off = true;
            return Err(Fault::Eio);
        }
        let text = path.to_string_lossy();
        for i in 0..self.rules.len() {
            let rule = &mut self.rules[i];
            if rule.op != op || !text.contains(rule.path_contains.as_str()) {
                continue;
            }
            if rule.skip > 0 {
                rule.skip -= 1;
                continue;
            }
            let fault = rule.fault;
            if !rule.sticky {
                self.rules.remove(i);
            }
            return Err(fault);
        }
        Ok(())
    }

    fn check_power(&self) -> Result<(), Fault> {
        if self.powered_off {
            return Err(Fault::Eio);
        }
        Ok(())
    }

    /// Starts modelling folder `dir`: what is in it now counts as durable.
    fn track(&mut self, dir: &Path) -> io::Result<()> {
        if self.folders.contains_key(dir) {
            return Ok(());
        }
        let mut folder = Folder::default();
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            let kind = if entry.file_type()?.is_dir() {
                Entry::Dir
            } else {
                let node = self.new_node();
                self.durable_data.insert(node, fs::read(entry.path())?);
                Entry::File(node)
            };
            folder.live.insert(entry.file_name(), kind);
        }
        folder.durable = folder.live.clone();
        self.folders.insert(dir.to_path_buf(), folder);
        Ok(())
    }

    /// Starts modelling `dir` and every folder below it.
    fn track_tree(&mut self, dir: &Path) -> io::Result<()> {
        self.track(dir)?;
        let subdirs: Vec<OsString> = self.folders[dir]
            .live
            .iter()
            .filter(|(_, e)| **e == Entry::Dir)
            .map(|(n, _)| n.clone())
            .collect();
        for name in subdirs {
            self.track_tree(&dir.join(name))?;
        }
        Ok(())
    }

    fn new_node(&mut self) -> u64 {
        self.next_node += 1;
        self.next_node
    }

    /// The folder holding `path`, modelled, and `path`'s name in it.
    fn place(&mut self, path: &Path) -> io::Result<(&mut Folder, OsString)> {
        let dir = path.parent().unwrap_or(Path::new("")).to_path_buf();
        self.track(&dir)?;
        let name = path.file_name().unwrap_or_default().to_os_string();
        Ok((self.folders.get_mut(&dir).expect("tracked"), name))
    }

    fn live_node(&mut self, path: &Path) -> io::Result<Option<u64>> {
        let (folder, name) = self.place(path)?;
        Ok(match folder.live.get(&name) {
            Some(Entry::File(node)) => Some(*node),
            _ => None,
        })
    }
}

fn fault_error(fault: Fault) -> io::Error {
    match fault {
        Fault::Eio => io::Error::from_raw_os_error(EIO),
        Fault::NoSpace | Fault::ShortWrite => io::Error::from_raw_os_error(ENOSPC),
    }
}

/// A file opened through [`FaultyFileSystem`].
struct FaultyFile {
    file: File,
    node: u64,
    path: PathBuf,
    state: Arc<Mutex<State>>,
}

impl std::fmt::Debug for FaultyFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultyFile")
            .field("path", &self.path)
            .finish()
    }
}

impl FaultyFileSystem {
    fn open(&self, path: &Path, how: &OpenOptions) -> io::Result<Box<dyn WritableFile>> {
        let mut s = self.state.lock();
        s.check(Op::Open, path).map_err(fault_error)?;
        let existing = s.live_node(path)?;
        let file = how.open(path)?;
        let node = match existing {
            // The same file, even if truncated: what a power cut leaves of
            // it is still its bytes at its last sync.
            Some(node) => node,
            None => {
                let node = s.new_node();
                let (folder, name) = s.place(path)?;
                folder.live.insert(name, Entry::File(node));
                node
            }
        };
        Ok(Box::new(FaultyFile {
            file,
            node,
            path: path.to_path_buf(),
            state: Arc::clone(&self.state),
        }))
    }
}

impl FileSystem for FaultyFileSystem {
    fn create_new(&self, path: &Path) -> io::Result<Box<dyn WritableFile>> {
        let mut how = OpenOptions::new();
        how.read(true).write(true).create_new(true);
        self.open(path, &how)
    }

    fn create_truncate(&self, path: &Path) -> io::Result<Box<dyn WritableFile>> {
        let mut how = OpenOptions::new();
        how.read(true).write(true).create(true).truncate(true);
        self.open(path, &how)
    }

    fn open_append(&self, path: &Path) -> io::Result<Box<dyn WritableFile>> {
        let mut how = OpenOptions::new();
        how.read(true).append(true);
        self.open(path, &how)
    }

    fn open_write(&self, path: &Path) -> io::Result<Box<dyn WritableFile>> {
        let mut how = OpenOptions::new();
        how.read(true).write(true);
        self.open(path, &how)
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        self.state.lock().check_power().map_err(fault_error)?;
        OsFileSystem.read(path)
    }

    fn read_at(&self, path: &Path, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        self.state.lock().check_power().map_err(fault_error)?;
        OsFileSystem.read_at(path, offset, len)
    }

    fn len(&self, path: &Path) -> io::Result<u64> {
        self.state.lock().check_power().map_err(fault_error)?;
        OsFileSystem.len(path)
    }

    fn modified(&self, path: &Path) -> io::Result<Option<std::time::SystemTime>> {
        self.state.lock().check_power().map_err(fault_error)?;
        OsFileSystem.modified(path)
    }

    fn kind(&self, path: &Path) -> io::Result<Option<Kind>> {
        self.state.lock().check_power().map_err(fault_error)?;
        OsFileSystem.kind(path)
    }

    fn read_dir(&self, path: &Path) -> io::Result<Vec<PathBuf>> {
        self.state.lock().check_power().map_err(fault_error)?;
        OsFileSystem.read_dir(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut s = self.state.lock();
        s.check(Op::Rename, to).map_err(fault_error)?;
        let (folder, name) = s.place(from)?;
        let moved = folder.live.get(&name).copied();
        fs::rename(from, to)?;
        let (folder, name) = s.place(from)?;
        folder.live.remove(&name);
        if let Some(entry) = moved {
            let (folder, name) = s.place(to)?;
            folder.live.insert(name, entry);
        }
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut s = self.state.lock();
        s.check(Op::Remove, path).map_err(fault_error)?;
        s.place(path)?;
        fs::remove_file(path)?;
        let (folder, name) = s.place(path)?;
        folder.live.remove(&name);
        Ok(())
    }

    fn create_dir(&self, path: &Path) -> io::Result<()> {
        let mut s = self.state.lock();
        s.check(Op::CreateDir, path).map_err(fault_error)?;
        s.place(path)?;
        fs::create_dir(path)?;
        let (folder, name) = s.place(path)?;
        folder.live.insert(name, Entry::Dir);
        // A new, empty folder: nothing in it is durable yet. (If a folder
        // of that name was removed before, its old durable entries stay:
        // they are what a power cut before the parent's sync brings back.)
        s.folders
            .entry(path.to_path_buf())
            .or_default()
            .live
            .clear();
        Ok(())
    }

    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        let mut s = self.state.lock();
        s.check(Op::Remove, path).map_err(fault_error)?;
        s.place(path)?;
        // Model the whole tree first: a power cut before the parent's sync
        // brings it back as it was durably.
        s.track_tree(path)?;
        fs::remove_dir_all(path)?;
        let (folder, name) = s.place(path)?;
        folder.live.remove(&name);
        for (dir, folder) in s.folders.iter_mut() {
            if dir.starts_with(path) {
                folder.live.clear();
            }
        }
        Ok(())
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        let mut s = self.state.lock();
        s.check(Op::SyncDir, path).map_err(fault_error)?;
        s.track(path)?;
        OsFileSystem.sync_dir(path)?;
        let folder = s.folders.get_mut(path).expect("tracked");
        folder.durable = folder.live.clone();
        Ok(())
    }

    fn lock(&self, path: &Path) -> io::Result<Box<dyn FileLock>> {
        // The real lock: a lock is no data, so it has nothing to lose in a
        // power cut, and the process holding it is what a test simulates.
        self.state.lock().check_power().map_err(fault_error)?;
        OsFileSystem.lock(path)
    }
}

impl FaultyFile {
    /// Writes `buf` with `write`, unless a rule fails it (a short write
    /// writes its first half).
    fn write_faulty(&self, buf: &[u8], write: impl Fn(&[u8]) -> io::Result<()>) -> io::Result<()> {
        let mut s = self.state.lock();
        match s.check(Op::Write, &self.path) {
            Ok(()) => write(buf),
            Err(Fault::ShortWrite) => {
                write(&buf[..buf.len() / 2])?;
                Err(fault_error(Fault::ShortWrite))
            }
            Err(fault) => Err(fault_error(fault)),
        }
    }

    fn sync(&self, data_only: bool) -> io::Result<()> {
        let mut s = self.state.lock();
        s.check(Op::Sync, &self.path).map_err(fault_error)?;
        if data_only {
            self.file.sync_data()?;
        } else {
            self.file.sync_all()?;
        }
        let len = self.file.metadata()?.len();
        let mut bytes = vec![0; len as usize];
        self.file.read_exact_at(&mut bytes, 0)?;
        s.durable_data.insert(self.node, bytes);
        Ok(())
    }
}

impl WritableFile for FaultyFile {
    fn append(&self, buf: &[u8]) -> io::Result<()> {
        self.write_faulty(buf, |bytes| (&self.file).write_all(bytes))
    }

    fn write_at(&self, offset: u64, buf: &[u8]) -> io::Result<()> {
        use std::os::unix::fs::FileExt;
        self.write_faulty(buf, |bytes| self.file.write_all_at(bytes, offset))
    }

    fn sync_data(&self) -> io::Result<()> {
        self.sync(true)
    }

    fn sync_all(&self) -> io::Result<()> {
        self.sync(false)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut s = self.state.lock();
        s.check(Op::SetLen, &self.path).map_err(fault_error)?;
        self.file.set_len(len)
    }

    fn size(&self) -> io::Result<u64> {
        self.state.lock().check_power().map_err(fault_error)?;
        Ok(self.file.metadata()?.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(fs: &FaultyFileSystem, path: &Path, bytes: &[u8], sync: bool) {
        let f = fs.create_new(path).unwrap();
        f.append(bytes).unwrap();
        if sync {
            f.sync_data().unwrap();
        }
    }

    #[test]
    fn a_power_cut_keeps_what_was_synced_and_undoes_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        fs::write(d.join("old"), b"before").unwrap();
        let faulty = FaultyFileSystem::new();
        // Synced data in a synced folder entry; then an unsynced append.
        let a = faulty.create_new(&d.join("a")).unwrap();
        a.append(b"hello").unwrap();
        a.sync_data().unwrap();
        faulty.sync_dir(d).unwrap();
        a.append(b" world").unwrap();
        // Synced data, but its folder entry never synced.
        write(&faulty, &d.join("b"), b"lost", true);
        // A rename over a durable file, its folder not synced after.
        write(&faulty, &d.join("old.tmp"), b"after", true);
        faulty.rename(&d.join("old.tmp"), &d.join("old")).unwrap();
        assert_eq!(fs::read(d.join("old")).unwrap(), b"after");

        faulty.cut_power_after(0);
        assert!(faulty.sync_dir(d).is_err(), "the power is off");
        let cut = faulty.apply_power_cut(1).unwrap();
        let a = fs::read(d.join("a")).unwrap();
        assert!(
            a.starts_with(b"hello") && b"hello world".starts_with(&a),
            "{a:?}"
        );
        assert!(!d.join("b").exists());
        assert!(!d.join("old.tmp").exists());
        assert_eq!(fs::read(d.join("old")).unwrap(), b"before");
        assert!(cut.entries_undone >= 2, "{cut:?}");
    }

    #[test]
    fn a_power_cut_keeps_a_prefix_of_what_was_written_over_synced_zeros() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let faulty = FaultyFileSystem::new();
        let f = faulty.create_new(&d.join("f")).unwrap();
        f.write_at(0, &[0; 64]).unwrap();
        f.sync_data().unwrap();
        faulty.sync_dir(d).unwrap();
        f.write_at(8, b"frame one").unwrap();
        f.sync_data().unwrap();
        let mut kept = std::collections::BTreeSet::new();
        for seed in 0..32 {
            // (A power cut rewrites the file: write through a new handle.)
            let f = faulty.open_write(&d.join("f")).unwrap();
            f.write_at(17, b"frame two").unwrap();
            faulty.cut_power_after(0);
            faulty.apply_power_cut(seed).unwrap();
            let bytes = fs::read(d.join("f")).unwrap();
            // Same length; the synced frame whole; of the unsynced one a
            // prefix, zeros after it.
            assert_eq!(bytes.len(), 64);
            assert_eq!(&bytes[8..17], b"frame one");
            let n = bytes[17..26]
                .iter()
                .zip(b"frame two")
                .take_while(|(a, b)| a == b)
                .count();
            assert!(bytes[17 + n..].iter().all(|&b| b == 0), "{bytes:?}");
            kept.insert(n);
        }
        assert!(
            kept.contains(&0) && kept.contains(&9) && kept.len() > 2,
            "{kept:?}"
        );
    }

    #[test]
    fn a_file_renamed_into_place_before_its_data_is_synced_comes_back_empty() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let faulty = FaultyFileSystem::new();
        write(&faulty, &d.join("f.tmp"), b"data", false);
        faulty.rename(&d.join("f.tmp"), &d.join("f")).unwrap();
        faulty.sync_dir(d).unwrap();
        faulty.cut_power_after(0);
        // Seeds decide how much of the unsynced data survives: some drop all.
        let dropped_all = (0..16).any(|seed| {
            faulty.apply_power_cut(seed).unwrap();
            let empty = fs::read(d.join("f")).unwrap().is_empty();
            faulty.cut_power_after(0);
            empty
        });
        assert!(dropped_all);
    }

    #[test]
    fn rules_fail_the_nth_matching_operation_once_or_from_then_on() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let faulty = FaultyFileSystem::new();
        faulty.fail_once(Op::Sync, "x", 2, Fault::Eio);
        faulty.fail_from(Op::Write, "y", 1, Fault::ShortWrite);
        let x = faulty.create_new(&d.join("x")).unwrap();
        x.sync_data().unwrap();
        assert_eq!(x.sync_data().unwrap_err().raw_os_error(), Some(EIO));
        x.sync_data().unwrap();
        let y = faulty.create_new(&d.join("y")).unwrap();
        for _ in 0..2 {
            let e = y.append(b"abcd").unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::StorageFull);
        }
        assert_eq!(fs::read(d.join("y")).unwrap(), b"abab", "short writes");
        faulty.heal();
        y.append(b"!").unwrap();
    }
}
