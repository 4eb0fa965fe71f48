//! Group commit, pipelined: many writers, one appender at a time, and the
//! sync of one group overlapping the append of the next.
//!
//! A writer seals its batch on its own thread and queues it. Whoever finds
//! the append stage free leads a group: it takes the queued batches (up to
//! `GROUP_BYTES_MAX` bytes), admits them, writes their frames with one
//! `write`, and hands the append stage to the next queued writer, who leads
//! the next group while this one syncs. Then the leader waits for a sync
//! that covers its frames, running it itself if none is in flight (under
//! `SyncEveryCommit`); applies its group to the store once every earlier
//! group is applied; and wakes its writers with their LSNs.
//!
//! # Invariants
//! - One appender at a time, so LSNs follow the queue; `appended_lsn`,
//!   `synced_lsn` and `applied_lsn` only grow.
//! - Groups reach the store in LSN order, one after another
//!   (`applied_lsn` moves from one group's end to the next's), and never
//!   before a sync covers them under `SyncEveryCommit`: the store never
//!   holds a frame that a power cut could take from the log.
//! - A write is acknowledged only once its group is synced (under
//!   `SyncEveryCommit`) and applied.
//! - Once a group that took LSNs fails (its sync, its store write, a panic),
//!   no later group is applied (`failed_from`): the store must never skip a
//!   frame of the log. Their frames stay in the log; a reopen replays them.
//! - Only the process that opened the database writes: a forked child's
//!   groups are refused before they take LSNs (`Error::Forked`), so the
//!   nonces it shares with its parent never reach the disk.
//! - Admission reads the keyring. A group with an expectation (re-sealing's
//!   compare-and-swap) also reads the store: it first waits, holding the
//!   append stage, until every earlier group is applied.
//!
//! Writers wait parked, each woken once: to lead, or with its outcome.

use std::collections::{HashSet, VecDeque};
use std::ops::{Deref, DerefMut};
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread::{self, Thread};

use parking_lot::{Condvar, Mutex, MutexGuard};

use crate::clock::Clock;
use crate::crypto::keyring::Keyring;
use crate::error::{Error, Result};
use crate::format::STORE_KEY_LEN;
use crate::format::{GROUP_BYTES_MAX, PAYLOAD_HEADER_LEN};
use crate::options::Durability;
use crate::store::key_codec;
use crate::store::{Applied, Store};
use crate::wal::entry::{self, Entry, Op};
use crate::wal::{EncodedBatch, LogWriter};

/// What a commit returns: the batch's LSN, or `None` if it was refused.
type Outcome = Result<Option<u64>>;

struct Request {
    /// `None`: a caller that wants the append stage to itself
    /// ([`GroupCommit::exclusive`]); never taken into a group.
    batch: Option<EncodedBatch>,
    thread: Thread,
    slot: Mutex<Slot>,
}

enum Slot {
    Queued,
    /// Handed the append stage: lead the next group.
    Lead,
    Done(Outcome),
}

impl Request {
    fn new(batch: Option<EncodedBatch>) -> Arc<Request> {
        Arc::new(Request {
            batch,
            thread: thread::current(),
            slot: Mutex::new(Slot::Queued),
        })
    }

    fn batch(&self) -> &EncodedBatch {
        self.batch.as_ref().expect("groups hold batches only")
    }

    /// Wakes the request's thread with `slot`.
    fn wake(&self, slot: Slot) {
        *self.slot.lock() = slot;
        self.thread.unpark();
    }

    /// Parks until woken: `None` to lead, or the outcome.
    fn wait(&self) -> Option<Outcome> {
        loop {
            let mut slot = self.slot.lock();
            match std::mem::replace(&mut *slot, Slot::Queued) {
                Slot::Queued => {
                    drop(slot);
                    thread::park();
                }
                Slot::Lead => return None,
                Slot::Done(outcome) => return Some(outcome),
            }
        }
    }
}

struct State {
    queue: VecDeque<Arc<Request>>,
    /// A leader holds the append stage. Invariant: when it is free the
    /// queue is empty (a leader leaving hands it to the queue's front).
    appending: bool,
    /// An `fdatasync` of the log is in flight.
    syncing: bool,
    appended_lsn: u64,
    synced_lsn: u64,
    applied_lsn: u64,
    /// No group whose frames start at or after this LSN will be applied.
    failed_from: u64,
}

/// The commit path of one database.
pub(crate) struct GroupCommit {
    state: Mutex<State>,
    /// Signalled when a sync ends, or groups fail: wakes the leaders
    /// waiting for a sync.
    synced: Condvar,
    /// Signalled when a group is applied, or groups fail: wakes the leaders
    /// waiting for their turn to apply, or for the pipeline to drain.
    applied: Condvar,
    writer: Mutex<LogWriter>,
    sync_every_commit: bool,
    clock: Arc<dyn Clock>,
    last_commit_us: Mutex<u64>,
    /// The process that opened the database (atomic only so that a test
    /// can play a forked child).
    opener_pid: AtomicU32,
}

impl GroupCommit {
    /// Starts the commit path on a writer whose frames the store has all
    /// applied.
    pub(crate) fn new(
        writer: LogWriter,
        durability: Durability,
        clock: Arc<dyn Clock>,
        last_commit_us: u64,
    ) -> Self {
        let lsn = writer.written_lsn();
        GroupCommit {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                appending: false,
                syncing: false,
                appended_lsn: lsn,
                synced_lsn: lsn,
                applied_lsn: lsn,
                failed_from: u64::MAX,
            }),
            synced: Condvar::new(),
            applied: Condvar::new(),
            writer: Mutex::new(writer),
            sync_every_commit: durability == Durability::SyncEveryCommit,
            clock,
            last_commit_us: Mutex::new(last_commit_us),
            opener_pid: AtomicU32::new(std::process::id()),
        }
    }

    /// Commits one batch as one frame; returns its LSN once durable (as the
    /// durability option says) and visible in the store, or `None` if the
    /// leader refused it: a put sealed under a key version the keyring no
    /// longer holds, an entry of a destroyed scope, or an expectation that no
    /// longer holds. A refused batch writes nothing; the caller re-seals
    /// (and finds out why) and tries again.
    pub(crate) fn commit(&self, store: &Store, keyring: &Keyring, batch: EncodedBatch) -> Outcome {
        let mut batch = Some(batch);
        let queued = match self.enter(|| Request::new(batch.take())) {
            Ok(queued) => queued,
            Err(outcome) => return outcome,
        };
        let own = match &queued {
            Some(request) => request.batch(),
            None => batch.as_ref().expect("not queued, so still ours"),
        };
        let followers = take_group(&mut self.state.lock().queue, own);
        let led = panic::catch_unwind(AssertUnwindSafe(|| {
            self.lead(store, keyring, own, &followers)
        }));
        let outcome = match led {
            Ok(outcome) => outcome,
            Err(payload) => {
                // A bug panicked mid-group: fail it and every later write
                // rather than leave anyone waiting.
                self.writer.lock().poison();
                self.fail_from(0);
                for request in &followers {
                    request.wake(Slot::Done(Err(Error::Poisoned)));
                }
                panic::resume_unwind(payload);
            }
        };
        let mut outcomes = outcome.as_ref().map(|lsns| lsns.iter());
        let mut next = || match &mut outcomes {
            Ok(lsns) => Ok(*lsns.next().expect("an outcome per request")),
            Err(e) => Err(e.duplicate()),
        };
        let own = next();
        for request in &followers {
            request.wake(Slot::Done(next()));
        }
        own
    }

    /// Takes the append stage: at once if it is free (`Ok(None)`: nothing
    /// queued, so a lone writer allocates nothing here), else by queueing
    /// the request `queue` makes and waiting to be handed it
    /// (`Ok(Some(request))`) or given an outcome by another leader (`Err`).
    fn enter(
        &self,
        queue: impl FnOnce() -> Arc<Request>,
    ) -> std::result::Result<Option<Arc<Request>>, Outcome> {
        let mut state = self.state.lock();
        if !state.appending {
            debug_assert!(state.queue.is_empty());
            state.appending = true;
            return Ok(None);
        }
        let request = queue();
        state.queue.push_back(Arc::clone(&request));
        drop(state);
        match request.wait() {
            None => Ok(Some(request)),
            Some(outcome) => Err(outcome),
        }
    }

    /// Writes, syncs and applies a group (the leader's own batch, then its
    /// followers'); returns each batch's LSN (or `None`, refused).
    fn lead(
        &self,
        store: &Store,
        keyring: &Keyring,
        own: &EncodedBatch,
        followers: &[Arc<Request>],
    ) -> Result<Vec<Option<u64>>> {
        let group: Vec<&EncodedBatch> = std::iter::once(own)
            .chain(followers.iter().map(|r| r.batch()))
            .collect();
        let mut lsns = vec![None; group.len()];
        let mut entries = Vec::new();
        let (admitted, first_lsn, last) = {
            let stage = AppendStage(self);
            let opener = self.opener_pid.load(Ordering::Relaxed);
            if std::process::id() != opener {
                return Err(Error::Forked { opener });
            }
            let reads_store = group.iter().any(|b| !b.expect.is_empty());
            if reads_store {
                stage.wait_applied_all()?;
            }
            let mut writer = self.writer.lock();
            let admitted = Self::admit(store, keyring, &group, reads_store, &mut entries)?;
            if admitted.is_empty() {
                return Ok(lsns);
            }
            let batches: Vec<&EncodedBatch> = admitted.iter().map(|&i| group[i]).collect();
            let commit_us = self.commit_time_us();
            let first_lsn = writer.append(&batches, commit_us)?;
            let last = Applied {
                lsn: first_lsn + batches.len() as u64 - 1,
                commit_us,
                mac: Some(writer.last_mac()),
            };
            self.state.lock().appended_lsn = last.lsn;
            (admitted, first_lsn, last)
            // The stage passes on here: the next group appends while this
            // one syncs.
        };
        let landed = if self.sync_every_commit {
            self.wait_synced(first_lsn, last.lsn)
        } else {
            Ok(())
        }
        .and_then(|()| self.apply_in_order(store, &entries, first_lsn, &last, keyring.epoch()));
        if let Err(e) = landed {
            self.fail_from(first_lsn);
            return Err(e);
        }
        for (k, &i) in admitted.iter().enumerate() {
            lsns[i] = Some(first_lsn + k as u64);
        }
        Ok(lsns)
    }

    /// Commit times never go backwards, so restore-by-time is exact.
    fn commit_time_us(&self) -> u64 {
        let mut last = self.last_commit_us.lock();
        *last = (*last).max(self.clock.now_us());
        *last
    }

    /// Picks the batches that may be written now, and decodes their entries
    /// into `entries`. Runs holding the append stage and the writer; if
    /// `reads_store`, every earlier group is applied, and `written` keeps
    /// the keys the group's earlier batches write.
    fn admit<'g>(
        store: &Store,
        keyring: &Keyring,
        group: &[&'g EncodedBatch],
        reads_store: bool,
        entries: &mut Vec<Entry<'g>>,
    ) -> Result<Vec<usize>> {
        let mut admitted = Vec::with_capacity(group.len());
        let mut written = HashSet::<[u8; STORE_KEY_LEN]>::new();
        for (i, &batch) in group.iter().enumerate() {
            let start = entries.len();
            entry::decode_into(&batch.entries, batch.count, entries)
                .expect("batches are encoded by this process");
            let decoded = &entries[start..];
            let mut admissible = Self::under_live_keys(keyring, decoded)?;
            for (key, expected) in &batch.expect {
                admissible = admissible
                    && !written.contains(key)
                    && store.get(key, None)?.as_deref() == Some(&expected[..]);
            }
            if !admissible {
                entries.truncate(start);
                continue;
            }
            if reads_store {
                written.extend(
                    decoded
                        .iter()
                        .map(|e| key_codec::data_key(e.scope, &e.token)),
                );
            }
            admitted.push(i);
        }
        Ok(admitted)
    }

    /// Whether every entry's scope lives and every put is sealed under a
    /// key version the keyring still holds.
    fn under_live_keys(keyring: &Keyring, entries: &[Entry<'_>]) -> Result<bool> {
        for entry in entries {
            if keyring.is_destroyed(entry.scope)? {
                return Ok(false);
            }
            if let Op::Put(_) = entry.op
                && keyring
                    .lookup(entry.scope, Some(entry.key_version))?
                    .is_none()
            {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Waits until a sync covers `last_lsn`, running one if none is in
    /// flight. Syncs run without the writer, so appends go on meanwhile.
    fn wait_synced(&self, first_lsn: u64, last_lsn: u64) -> Result<()> {
        let mut state = self.state.lock();
        loop {
            if state.synced_lsn >= last_lsn {
                return Ok(());
            }
            if state.failed_from <= first_lsn {
                return Err(Error::Poisoned);
            }
            if state.syncing {
                self.synced.wait(&mut state);
                continue;
            }
            state.syncing = true;
            let synced = MutexGuard::unlocked(&mut state, || self.sync_log());
            state.syncing = false;
            self.synced.notify_all();
            state.synced_lsn = state.synced_lsn.max(synced?);
        }
    }

    /// Applies a group to the store right after the group before it.
    fn apply_in_order(
        &self,
        store: &Store,
        entries: &[Entry<'_>],
        first_lsn: u64,
        last: &Applied,
        keyring_epoch: u64,
    ) -> Result<()> {
        let last_lsn = last.lsn;
        let mut state = self.state.lock();
        while state.applied_lsn + 1 != first_lsn && state.failed_from > first_lsn {
            self.applied.wait(&mut state);
        }
        if state.failed_from <= first_lsn {
            return Err(Error::Poisoned);
        }
        drop(state);
        store.apply(entries, last, keyring_epoch).inspect_err(|_| {
            // The log holds frames the store does not: only a reopen (which
            // replays them) brings the two level again.
            self.writer.lock().poison();
        })?;
        let mut state = self.state.lock();
        debug_assert!(state.applied_lsn < last_lsn);
        state.applied_lsn = last_lsn;
        self.applied.notify_all();
        Ok(())
    }

    /// No group from `lsn` on will be applied.
    fn fail_from(&self, lsn: u64) {
        let mut state = self.state.lock();
        state.failed_from = state.failed_from.min(lsn);
        self.synced.notify_all();
        self.applied.notify_all();
    }

    /// Makes every frame written so far durable, without holding the writer
    /// while the disk works.
    pub(crate) fn sync(&self) -> Result<()> {
        let synced = self.sync_log()?;
        let mut state = self.state.lock();
        state.synced_lsn = state.synced_lsn.max(synced);
        Ok(())
    }

    /// Syncs the log, holding the writer only to begin and to finish;
    /// returns the LSN up to which it is durable.
    fn sync_log(&self) -> Result<u64> {
        let pending = self.writer.lock().begin_sync()?;
        let result = pending.run();
        self.writer.lock().finish_sync(pending, result)
    }

    /// LSN of the last group applied to the store: every write up to it is
    /// acknowledged, or about to be.
    /// LSN up to which the log is durable.
    /// A standby's commit path, which commits nothing: the store has
    /// applied the archive's frames up to `lsn`, committed at `commit_us`.
    pub(crate) fn follow_to(&self, lsn: u64, commit_us: u64) {
        let mut state = self.state.lock();
        debug_assert!(
            state.queue.is_empty() && !state.appending,
            "a standby commits nothing"
        );
        state.appended_lsn = state.appended_lsn.max(lsn);
        state.synced_lsn = state.synced_lsn.max(lsn);
        state.applied_lsn = state.applied_lsn.max(lsn);
        let mut last = self.last_commit_us.lock();
        *last = (*last).max(commit_us);
    }

    pub(crate) fn synced_lsn(&self) -> u64 {
        self.state.lock().synced_lsn
    }

    pub(crate) fn applied_lsn(&self) -> u64 {
        self.state.lock().applied_lsn
    }

    /// Waits for the append stage and for every group before to be applied,
    /// and holds both: no frame is written until the guard drops, and the
    /// store holds every frame the log does. For work that must see the
    /// store level with the log (finishing a key rotation).
    pub(crate) fn exclusive(&self) -> Result<Exclusive<'_>> {
        let entered = self.enter(|| Request::new(None));
        assert!(entered.is_ok(), "no leader takes a request without a batch");
        let stage = AppendStage(self);
        stage.wait_applied_all()?;
        Ok(Exclusive {
            writer: self.writer.lock(),
            _stage: stage,
        })
    }

    /// Makes this handle's commits behave as in a forked child's.
    #[cfg(test)]
    pub(crate) fn play_forked_child(&self) {
        self.opener_pid.fetch_add(1, Ordering::Relaxed);
    }

    /// The log writer, for syncing on an interval and removing segments.
    pub(crate) fn writer(&self) -> &Mutex<LogWriter> {
        &self.writer
    }
}

/// The append stage, held: dropping it hands it to the next queued request.
struct AppendStage<'a>(&'a GroupCommit);

impl AppendStage<'_> {
    /// Waits until every group appended so far is applied. Only the holder
    /// of the append stage may wait for this: nobody appends meanwhile.
    fn wait_applied_all(&self) -> Result<()> {
        let commit = self.0;
        let mut state = commit.state.lock();
        while state.applied_lsn < state.appended_lsn {
            if state.failed_from <= state.applied_lsn + 1 {
                return Err(Error::Poisoned);
            }
            commit.applied.wait(&mut state);
        }
        Ok(())
    }
}

impl Drop for AppendStage<'_> {
    fn drop(&mut self) {
        let mut state = self.0.state.lock();
        match state.queue.pop_front() {
            Some(next) => next.wake(Slot::Lead),
            None => state.appending = false,
        }
    }
}

/// The log writer, with no group in flight and none allowed to start.
pub(crate) struct Exclusive<'a> {
    // Fields drop in order: the writer before the stage.
    writer: MutexGuard<'a, LogWriter>,
    _stage: AppendStage<'a>,
}

impl Deref for Exclusive<'_> {
    type Target = LogWriter;
    fn deref(&self) -> &LogWriter {
        &self.writer
    }
}

impl DerefMut for Exclusive<'_> {
    fn deref_mut(&mut self) -> &mut LogWriter {
        &mut self.writer
    }
}

/// Takes queued requests from the front to follow a leader whose batch is
/// `own`, while the group's entries stay within `GROUP_BYTES_MAX` bytes (the
/// leader's batch may alone be larger), stopping at one that wants the
/// append stage to itself.
fn take_group(queue: &mut VecDeque<Arc<Request>>, own: &EncodedBatch) -> Vec<Arc<Request>> {
    let mut followers = Vec::new();
    let mut bytes = own.entries.len() + PAYLOAD_HEADER_LEN;
    while let Some(request) = queue.front() {
        let Some(batch) = &request.batch else { break };
        bytes += batch.entries.len() + PAYLOAD_HEADER_LEN;
        if bytes > GROUP_BYTES_MAX {
            break;
        }
        followers.push(queue.pop_front().expect("front exists"));
    }
    followers
}

#[cfg(test)]
mod tests {
    use crate::{Db, Error, Options, TenantId};

    /// A forked child holds its parent's nonce source: none of its writes
    /// may reach the log, where its nonces would repeat the parent's.
    #[test]
    fn a_forked_child_cannot_write_through_its_parents_handle() {
        let dir = tempfile::tempdir().unwrap();
        let options = || Options::with_key([6; 32]);
        let db = Db::open(dir.path(), options()).unwrap();
        let t = db.tenant(TenantId(1));
        t.put(b"k", b"parent").unwrap();
        let before = db.last_lsn();
        db.inner.commit.play_forked_child();
        for outcome in [t.put(b"k", b"child"), t.delete(b"k")] {
            match outcome {
                Err(Error::Forked { opener }) => assert_eq!(opener, std::process::id() + 1),
                other => panic!("expected Forked, got {other:?}"),
            }
        }
        assert_eq!(db.last_lsn(), before);
        assert_eq!(t.get(b"k").unwrap(), Some(b"parent".to_vec()));
        drop(db);
        let db = Db::open(dir.path(), options()).unwrap();
        assert_eq!(db.last_lsn(), before, "nothing of the child's was logged");
        let t = db.tenant(TenantId(1));
        assert_eq!(t.get(b"k").unwrap(), Some(b"parent".to_vec()));
        t.put(b"k", b"reopened").unwrap();
    }
}
