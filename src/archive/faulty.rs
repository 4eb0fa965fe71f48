//! An archive that fails when told to: the test double of every archive
//! fault (an outage, one failed call), as `FaultyFileSystem` is the file
//! system's.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::Mutex;

use super::{Archive, ArchiveError, ObjectInfo};

/// The calls of an [`Archive`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ArchiveOp {
    /// [`Archive::put`].
    Put,
    /// [`Archive::get`] and [`Archive::get_range`].
    Get,
    /// [`Archive::list`].
    List,
    /// [`Archive::delete`].
    Delete,
}

impl fmt::Display for ArchiveOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ArchiveOp::Put => "put",
            ArchiveOp::Get => "get",
            ArchiveOp::List => "list",
            ArchiveOp::Delete => "delete",
        })
    }
}

const OPS: [ArchiveOp; 4] = [
    ArchiveOp::Put,
    ArchiveOp::Get,
    ArchiveOp::List,
    ArchiveOp::Delete,
];

fn index(op: ArchiveOp) -> usize {
    OPS.iter()
        .position(|o| *o == op)
        .expect("every op is listed")
}

/// Wraps an archive; fails the calls it is told to with
/// [`ArchiveError::Unavailable`], before they reach the archive.
pub struct FaultyArchive {
    inner: Arc<dyn Archive>,
    calls: [AtomicU64; 4],
    /// Per op: the call numbers (1-based, counted since creation) that fail.
    planned: Mutex<Vec<(ArchiveOp, u64)>>,
    down: AtomicBool,
}

impl fmt::Debug for FaultyArchive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultyArchive")
            .field("inner", &self.inner)
            .field("down", &self.down.load(Ordering::SeqCst))
            .finish_non_exhaustive()
    }
}

impl FaultyArchive {
    /// `inner`, with no fault planned.
    pub fn new(inner: Arc<dyn Archive>) -> FaultyArchive {
        FaultyArchive {
            inner,
            calls: Default::default(),
            planned: Mutex::new(Vec::new()),
            down: AtomicBool::new(false),
        }
    }

    /// Fails the `n`-th call of `op` from now (1: the next one).
    pub fn fail_nth(&self, op: ArchiveOp, n: u64) {
        assert!(n >= 1, "calls are counted from 1");
        let at = self.calls(op) + n;
        self.planned.lock().push((op, at));
    }

    /// While `down`, every call fails, as in an outage.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    /// How many calls of `op` were made (failed ones included).
    pub fn calls(&self, op: ArchiveOp) -> u64 {
        self.calls[index(op)].load(Ordering::SeqCst)
    }

    /// Counts a call of `op` on `name` and fails it if planned.
    fn enter(&self, op: ArchiveOp, name: &str) -> Result<(), ArchiveError> {
        let n = self.calls[index(op)].fetch_add(1, Ordering::SeqCst) + 1;
        let planned = {
            let mut planned = self.planned.lock();
            let before = planned.len();
            planned.retain(|p| *p != (op, n));
            planned.len() < before
        };
        if planned || self.down.load(Ordering::SeqCst) {
            return Err(ArchiveError::Unavailable {
                op,
                name: name.to_owned(),
                message: "injected fault".to_owned(),
            });
        }
        Ok(())
    }
}

impl Archive for FaultyArchive {
    fn put(&self, name: &str, bytes: Vec<u8>) -> Result<(), ArchiveError> {
        self.enter(ArchiveOp::Put, name)?;
        self.inner.put(name, bytes)
    }

    fn get(&self, name: &str) -> Result<Vec<u8>, ArchiveError> {
        self.enter(ArchiveOp::Get, name)?;
        self.inner.get(name)
    }

    fn get_range(&self, name: &str, range: Range<u64>) -> Result<Vec<u8>, ArchiveError> {
        self.enter(ArchiveOp::Get, name)?;
        self.inner.get_range(name, range)
    }

    fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, ArchiveError> {
        self.enter(ArchiveOp::List, prefix)?;
        self.inner.list(prefix)
    }

    fn list_folders(&self, prefix: &str) -> Result<Vec<String>, ArchiveError> {
        self.enter(ArchiveOp::List, prefix)?;
        self.inner.list_folders(prefix)
    }

    fn delete(&self, name: &str) -> Result<(), ArchiveError> {
        self.enter(ArchiveOp::Delete, name)?;
        self.inner.delete(name)
    }
}
