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

use std::collections::HashSet;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;

use parking_lot::{Condvar, Mutex, MutexGuard};

use crate::clock::Clock;
use crate::crypto::keyring::Keyring;
use crate::error::{Error, Result};
use crate::format::STORE_KEY_LEN;
use crate::format::{GROUP_BYTES_MAX, PAYLOAD_HEADER_LEN};
use crate::options::Durability;
use crate::store::Store;
use crate::store::key_codec;
use crate::wal::entry::{self, Entry, Op};
use crate::wal::{EncodedBatch, LogWriter};

struct Request {
    batch: EncodedBatch,
    outcome: Mutex<Option<Result<Option<u64>>>>,
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
    /// durability option says) and visible in the store, or `None` if the
    /// leader refused it: a put sealed under a key version the keyring no
    /// longer holds, an entry of a destroyed scope, or an expectation that no
    /// longer holds. A refused batch writes nothing; the caller re-seals
    /// (and finds out why) and tries again.
    pub(crate) fn commit(
        &self,
        store: &Store,
        keyring: &Keyring,
        batch: EncodedBatch,
    ) -> Result<Option<u64>> {
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
                Ok(lsns) => Ok(lsns[i]),
                Err(e) => Err(e.duplicate()),
            };
            *request.outcome.lock() = Some(result);
        }
    }

    /// Whether a batch may be written now. Runs in the leader, holding the
    /// writer: the store has applied every frame before this group, and
    /// `written` holds the keys the group's earlier batches write.
    fn admissible(
        store: &Store,
        keyring: &Keyring,
        batch: &EncodedBatch,
        entries: &[Entry<'_>],
        written: &HashSet<[u8; STORE_KEY_LEN]>,
    ) -> Result<bool> {
        for entry in entries {
            if keyring.is_destroyed(entry.scope)? {
                return Ok(false);
            }
            let sealed_under_live_key = match entry.op {
                Op::Put(_) => keyring
                    .lookup(entry.scope, Some(entry.key_version))?
                    .is_some(),
                Op::Delete => true,
            };
            if !sealed_under_live_key {
                return Ok(false);
            }
        }
        for (key, expected) in &batch.expect {
            if written.contains(key) || store.get(key, None)?.as_deref() != Some(&expected[..]) {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn write_group(
        &self,
        writer: &mut LogWriter,
        store: &Store,
        keyring: &Keyring,
        group: &[Arc<Request>],
    ) -> Result<Vec<Option<u64>>> {
        let commit_us = {
            // Commit times never go backwards, so restore-by-time is exact.
            let mut last = self.last_commit_us.lock();
            *last = (*last).max(self.clock.now_us());
            *last
        };
        let mut outcomes = vec![None; group.len()];
        let mut admitted = Vec::with_capacity(group.len());
        let mut entries = Vec::new();
        let mut written = HashSet::new();
        for (i, request) in group.iter().enumerate() {
            let decoded = entry::decode_all(&request.batch.entries, request.batch.count)
                .expect("batches are encoded by this process");
            if !Self::admissible(store, keyring, &request.batch, &decoded, &written)? {
                continue;
            }
            written.extend(
                decoded
                    .iter()
                    .map(|e| key_codec::data_key(e.scope, &e.token)),
            );
            entries.extend(decoded);
            admitted.push(i);
        }
        if admitted.is_empty() {
            return Ok(outcomes);
        }
        let batches: Vec<&EncodedBatch> = admitted.iter().map(|&i| &group[i].batch).collect();
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
        for (k, &i) in admitted.iter().enumerate() {
            outcomes[i] = Some(first_lsn + k as u64);
        }
        Ok(outcomes)
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
