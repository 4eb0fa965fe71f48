//! Group commit: many writers, one leader, one write and one sync.
//!
//! A writer seals its batch on its own thread, queues it and waits. Whoever
//! finds no leader at work becomes the leader: it takes the queued batches
//! (up to `GROUP_BYTES_MAX` bytes), writes their frames with one `write`,
//! syncs once (under `SyncEveryCommit`), applies them to the store in one
//! RocksDB write, and wakes their writers with their LSNs.
//!
//! # Invariants
//! - One leader at a time; it holds the log writer for the whole group, so
//!   frames reach the store in LSN order and, whenever the writer is free,
//!   the store has applied every frame the log holds.
//! - A write is acknowledged only after its frame is synced (under
//!   `SyncEveryCommit`) and applied to the store.

use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;

use parking_lot::{Condvar, Mutex, MutexGuard};

use crate::clock::Clock;
use crate::crypto::keyring::Keyring;
use crate::error::{Error, Result};
use crate::format::{GROUP_BYTES_MAX, PAYLOAD_HEADER_LEN};
use crate::options::Durability;
use crate::store::Store;
use crate::wal::entry;
use crate::wal::{EncodedBatch, LogWriter};

struct Request {
    batch: EncodedBatch,
    outcome: Mutex<Option<Result<u64>>>,
}

#[derive(Default)]
struct Queue {
    waiting: Vec<Arc<Request>>,
    leader_active: bool,
}

/// The commit path of one database.
pub(crate) struct GroupCommit {
    queue: Mutex<Queue>,
    done: Condvar,
    writer: Mutex<LogWriter>,
    sync_every_commit: bool,
    clock: Arc<dyn Clock>,
    last_commit_us: Mutex<u64>,
}

impl GroupCommit {
    pub(crate) fn new(
        writer: LogWriter,
        durability: Durability,
        clock: Arc<dyn Clock>,
        last_commit_us: u64,
    ) -> Self {
        GroupCommit {
            queue: Mutex::new(Queue::default()),
            done: Condvar::new(),
            writer: Mutex::new(writer),
            sync_every_commit: durability == Durability::SyncEveryCommit,
            clock,
            last_commit_us: Mutex::new(last_commit_us),
        }
    }

    /// Commits one batch as one frame; returns its LSN once durable (as the
    /// durability option says) and visible in the store.
    pub(crate) fn commit(
        &self,
        store: &Store,
        keyring: &Keyring,
        batch: EncodedBatch,
    ) -> Result<u64> {
        let request = Arc::new(Request {
            batch,
            outcome: Mutex::new(None),
        });
        let mut queue = self.queue.lock();
        queue.waiting.push(Arc::clone(&request));
        loop {
            if let Some(outcome) = request.outcome.lock().take() {
                return outcome;
            }
            if !queue.leader_active {
                queue.leader_active = true;
                let group = take_group(&mut queue.waiting);
                let led = MutexGuard::unlocked(&mut queue, || {
                    panic::catch_unwind(AssertUnwindSafe(|| self.lead(store, keyring, &group)))
                });
                if led.is_err() {
                    // A bug panicked mid-group: fail the group and every
                    // later write rather than leave the followers waiting.
                    self.writer.lock().poison();
                    for request in &group {
                        request.outcome.lock().get_or_insert(Err(Error::Poisoned));
                    }
                }
                queue.leader_active = false;
                self.done.notify_all();
                if let Err(payload) = led {
                    drop(queue);
                    panic::resume_unwind(payload);
                }
                continue;
            }
            self.done.wait(&mut queue);
        }
    }

    /// Runs one group and records every request's outcome.
    fn lead(&self, store: &Store, keyring: &Keyring, group: &[Arc<Request>]) {
        let mut writer = self.writer.lock();
        let outcome = self.write_group(&mut writer, store, keyring, group);
        for (i, request) in group.iter().enumerate() {
            let result = match &outcome {
                Ok(first_lsn) => Ok(first_lsn + i as u64),
                Err(e) => Err(e.duplicate()),
            };
            *request.outcome.lock() = Some(result);
        }
    }

    fn write_group(
        &self,
        writer: &mut LogWriter,
        store: &Store,
        keyring: &Keyring,
        group: &[Arc<Request>],
    ) -> Result<u64> {
        let commit_us = {
            // Commit times never go backwards, so restore-by-time is exact.
            let mut last = self.last_commit_us.lock();
            *last = (*last).max(self.clock.now_us());
            *last
        };
        let batches: Vec<&EncodedBatch> = group.iter().map(|r| &r.batch).collect();
        // A scope destroyed while a batch of it waited here keeps its frame
        // in the log (unreadable) but gets nothing in the store.
        let mut entries = Vec::new();
        for batch in &batches {
            let decoded = entry::decode_all(&batch.entries, batch.count)
                .expect("batches are encoded by this process");
            for entry in decoded {
                if !keyring.is_destroyed(entry.scope)? {
                    entries.push(entry);
                }
            }
        }
        let first_lsn = writer.append(&batches, commit_us)?;
        if self.sync_every_commit {
            writer.sync()?;
        }
        let last_lsn = first_lsn + batches.len() as u64 - 1;
        store.apply(&entries, last_lsn).inspect_err(|_| {
            // The log holds frames the store does not: only a reopen (which
            // replays them) brings the two level again.
            writer.poison();
        })?;
        Ok(first_lsn)
    }

    /// The log writer, for syncing on an interval and removing segments.
    pub(crate) fn writer(&self) -> &Mutex<LogWriter> {
        &self.writer
    }
}

/// Takes queued requests from the front, up to `GROUP_BYTES_MAX` bytes of
/// entries (always at least one).
fn take_group(waiting: &mut Vec<Arc<Request>>) -> Vec<Arc<Request>> {
    let mut bytes = 0;
    let mut n = 0;
    for request in waiting.iter() {
        bytes += request.batch.entries.len() + PAYLOAD_HEADER_LEN;
        if n > 0 && bytes > GROUP_BYTES_MAX {
            break;
        }
        n += 1;
    }
    waiting.drain(..n).collect()
}
