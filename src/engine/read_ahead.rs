//! Opening a scan's records ahead of it, on other cores.
//!
//! A scan reads sealed records from the store in batches, in token order.
//! Every batch but the one it is about to hand out goes to this pool, whose
//! threads open them (decrypt in place, decompress) while the caller
//! consumes the batch before. The caller opens a batch itself if no thread
//! has taken it yet, so a scan never waits on a queue, and a scan of one
//! batch never touches the pool.
//!
//! Plaintext lives only in the batches' buffers, which are wiped when they
//! drop: handed out, abandoned by a scan dropped half-way, or discarded
//! after a shred. A batch holds its scope's keys only until it is opened.
//!
//! # Invariants
//! - Each batch is opened exactly once, by whoever moves it out of
//!   [`State::Sealed`] first (a pool thread or the scan), under the slot's
//!   lock.
//! - Records are handed out in the order they were read: a scan takes its
//!   slots in order, and a slot's result is the batch it was given.

use std::mem;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::{Condvar, Mutex};
use zeroize::{Zeroize, Zeroizing};

use crate::crypto::record::{self, OpenError, Opened};
use crate::crypto::scope_key::{Lease, Revoked, ScopeKeys, Token};
use crate::error::CorruptionKind;
use crate::pool::Pool;
use crate::scope::Scope;

/// Why a record of a batch was not opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Failure {
    /// The scope was sealed or shredded.
    Revoked(Scope, Revoked),
    /// The record (or its store key) is not what strongroom wrote.
    Corrupt(CorruptionKind),
}

/// One record of a batch: its token, where its sealed bytes lie in the
/// batch, and once opened where its key and value lie.
struct Record {
    token: Token,
    sealed: std::ops::Range<usize>,
    opened: Option<Opened>,
}

/// Records read together from the store, opened together.
pub(crate) struct Batch {
    /// The sealed records end to end; each is opened where it lies.
    bytes: Zeroizing<Vec<u8>>,
    /// Bodies of compressed records, decompressed.
    spill: Zeroizing<Vec<u8>>,
    records: Vec<Record>,
    /// The first record that did not (or will not) open, and why; every
    /// record before it opens.
    failed: Option<(usize, Failure)>,
    /// Counts the batches alive in this database (for the tests that check
    /// a dropped scan frees what it held).
    live: Arc<AtomicUsize>,
}

impl Batch {
    fn new(live: &Arc<AtomicUsize>) -> Batch {
        live.fetch_add(1, Ordering::Relaxed);
        Batch {
            bytes: Zeroizing::new(Vec::new()),
            spill: Zeroizing::new(Vec::new()),
            records: Vec::new(),
            failed: None,
            live: Arc::clone(live),
        }
    }

    /// Adds a sealed record read from the store.
    pub(crate) fn push(&mut self, token: Token, sealed: &[u8]) {
        debug_assert!(self.failed.is_none(), "nothing follows a failure");
        let at = self.bytes.len();
        self.bytes.extend_from_slice(sealed);
        self.records.push(Record {
            token,
            sealed: at..self.bytes.len(),
            opened: None,
        });
    }

    /// Ends the batch with a record that cannot open.
    pub(crate) fn push_failure(&mut self, failure: Failure) {
        self.failed = Some((self.records.len(), failure));
    }

    /// Records in the batch, counting a failure as one.
    pub(crate) fn len(&self) -> usize {
        self.records.len() + usize::from(self.failed.is_some())
    }

    pub(crate) fn sealed_bytes(&self) -> usize {
        self.bytes.len()
    }

    /// The memory the batch holds, about (what the scan cache counts).
    pub(crate) fn held_bytes(&self) -> usize {
        self.bytes.capacity()
            + self.spill.capacity()
            + self.records.capacity() * mem::size_of::<Record>()
            + mem::size_of::<Batch>()
    }

    /// Opens every record with the version of `keys` it names, until the
    /// first that does not open.
    fn open(&mut self, keys: &ScopeKeys) {
        let end = self.failed.as_ref().map_or(self.records.len(), |f| f.0);
        // One lease per key version met (records of two versions interleave
        // while a rotation re-seals), held while the batch opens.
        let mut leases: Vec<Lease<'_>> = Vec::new();
        for i in 0..end {
            let record = &mut self.records[i];
            let sealed = &mut self.bytes[record.sealed.clone()];
            let opened = (|| {
                let version = record::key_version(sealed)
                    .ok_or(Failure::Corrupt(CorruptionKind::Truncated))?;
                let at = match leases.iter().position(|l| l.version() == version) {
                    Some(at) => at,
                    None => {
                        let key = keys
                            .at(version)
                            .ok_or(Failure::Corrupt(CorruptionKind::RecordAuth))?;
                        leases.push(key.lease().map_err(|r| Failure::Revoked(key.scope(), r))?);
                        leases.len() - 1
                    }
                };
                record::open_in_place(&leases[at], &record.token, sealed, &mut self.spill).map_err(
                    |e| {
                        Failure::Corrupt(match e {
                            OpenError::Auth => CorruptionKind::RecordAuth,
                            OpenError::Malformed => CorruptionKind::Malformed("sealed record"),
                        })
                    },
                )
            })();
            match opened {
                Ok(mut opened) => {
                    if !opened.spilled {
                        let at = record.sealed.start;
                        opened.key = at + opened.key.start..at + opened.key.end;
                        opened.value = at + opened.value.start..at + opened.value.end;
                    }
                    record.opened = Some(opened);
                }
                Err(failure) => {
                    self.failed = Some((i, failure));
                    return;
                }
            }
        }
    }

    /// Record `i` of an opened batch: its key and value, or why it did
    /// not open.
    pub(crate) fn get(&self, i: usize) -> Result<(&[u8], &[u8]), &Failure> {
        if let Some((at, failure)) = &self.failed
            && i >= *at
        {
            return Err(failure);
        }
        let opened = self.records[i]
            .opened
            .as_ref()
            .expect("records before a failure are opened");
        let buf = if opened.spilled {
            &self.spill[..]
        } else {
            &self.bytes[..]
        };
        Ok((&buf[opened.key.clone()], &buf[opened.value.clone()]))
    }
}

impl Drop for Batch {
    fn drop(&mut self) {
        // Wiped as slices, then emptied: `Zeroizing<Vec<u8>>` alone wipes
        // a Vec's bytes one volatile store at a time (zeroize 1.9), which
        // cost scans about as much as opening their 4 KiB records; its own
        // drop then wipes the (now spare) capacity in bulk.
        for buf in [&mut self.bytes, &mut self.spill] {
            buf.as_mut_slice().zeroize();
            buf.clear();
        }
        self.live.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Where a batch is: waiting to be opened (with the keys that open it),
/// being opened, opened, or given up by its scan; or the panic of the pool
/// thread that opened it (a bug), raised again in the scan's thread.
enum State {
    Sealed(Batch, ScopeKeys),
    Opening,
    Opened(Batch),
    Abandoned,
    Panicked(Box<dyn std::any::Any + Send>),
}

/// A batch on its way from the store to its scan.
pub(crate) struct Slot {
    state: Mutex<State>,
    opened: Condvar,
}

impl Slot {
    /// The batch, opened: by a pool thread, or here if none has taken it.
    pub(crate) fn take(&self) -> Batch {
        let mut state = self.state.lock();
        loop {
            match mem::replace(&mut *state, State::Opening) {
                State::Sealed(mut batch, keys) => {
                    drop(state);
                    batch.open(&keys);
                    return batch;
                }
                State::Opened(batch) => return batch,
                State::Opening => self.opened.wait(&mut state),
                State::Panicked(payload) => std::panic::resume_unwind(payload),
                State::Abandoned => unreachable!("only a dropped scan abandons its slots"),
            }
        }
    }

    /// Whether a pool thread is opening the batch now.
    pub(crate) fn is_opening(&self) -> bool {
        matches!(*self.state.lock(), State::Opening)
    }

    /// Gives the batch up: whatever it holds (plaintext, keys) drops now,
    /// or as soon as the thread opening it is done.
    pub(crate) fn abandon(&self) {
        let was = mem::replace(&mut *self.state.lock(), State::Abandoned);
        drop(was);
    }

    /// Opens the batch here, on a pool thread or on the scan's own while it
    /// waits for the batch before, unless someone took or abandoned it
    /// first. Returns whether it did. A panic while opening (a bug) is kept
    /// and raised again where the batch is taken.
    pub(crate) fn open_here(&self) -> bool {
        let (mut batch, keys) = {
            let mut state = self.state.lock();
            match mem::replace(&mut *state, State::Opening) {
                State::Sealed(batch, keys) => (batch, keys),
                other => {
                    *state = other;
                    return false;
                }
            }
        };
        let opened = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| batch.open(&keys)));
        drop(keys);
        let mut state = self.state.lock();
        if matches!(*state, State::Opening) {
            *state = match opened {
                Ok(()) => State::Opened(batch),
                Err(payload) => State::Panicked(payload),
            };
            self.opened.notify_one();
        }
        true
    }
}

/// The threads that open batches ahead of scans (`crate::pool`): started at
/// the first scan longer than a batch, stopped when the database closes.
pub(crate) struct ReadAhead {
    pool: Pool,
    live: Arc<AtomicUsize>,
    /// Batches the pool's threads opened (for the tests).
    opened: Arc<AtomicUsize>,
}

impl ReadAhead {
    /// A pool of `size` threads (0: scans open every batch themselves).
    pub(crate) fn new(size: usize) -> ReadAhead {
        ReadAhead {
            pool: Pool::new("strongroom-scan", size),
            live: Arc::default(),
            opened: Arc::default(),
        }
    }

    /// A new, empty batch.
    pub(crate) fn batch(&self) -> Batch {
        Batch::new(&self.live)
    }

    /// Batches alive: read and not yet handed out or dropped.
    #[cfg(test)]
    pub(crate) fn batches_live(&self) -> usize {
        self.live.load(Ordering::Relaxed)
    }

    /// Batches the pool's threads have opened.
    #[cfg(test)]
    pub(crate) fn opened_ahead(&self) -> usize {
        self.opened.load(Ordering::Relaxed)
    }

    /// Drops `what` (batches wipe their plaintext as they drop) on a pool
    /// thread, or here if the pool has none.
    pub(crate) fn drop_later<T: Send + 'static>(&self, what: T) {
        // A job handed back drops here, and `what` with it.
        let _ = self.pool.submit(Box::new(move || drop(what)));
    }

    /// A slot for `batch`, handed to a pool thread if `ahead` (else, or if
    /// the pool has no thread, the scan opens it when it takes it).
    pub(crate) fn slot(&self, batch: Batch, keys: ScopeKeys, ahead: bool) -> Arc<Slot> {
        let slot = Arc::new(Slot {
            state: Mutex::new(State::Sealed(batch, keys)),
            opened: Condvar::new(),
        });
        if ahead {
            let (job_slot, opened) = (Arc::clone(&slot), Arc::clone(&self.opened));
            // A job handed back is dropped: the scan opens the batch itself.
            let _ = self.pool.submit(Box::new(move || {
                if job_slot.open_here() {
                    opened.fetch_add(1, Ordering::Relaxed);
                }
            }));
        }
        slot
    }
}
