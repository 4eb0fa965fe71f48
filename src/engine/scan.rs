//! Scans: every record of a scope, in token order, from a point-in-time view
//! of the store.
//!
//! A scan copies sealed records out of the store in batches and opens them
//! ahead of the caller on the read-ahead threads (`read_ahead.rs`), a
//! bounded window of batches at a time; it hands them out in the order it
//! read them, as owned pairs ([`Iterator`]) or as slices into the opened
//! batch ([`Scan::next_ref`]).
//!
//! With a scan cache (`scan_cache.rs`), a scan that reads its scope whole
//! keeps the batches it opened there, and a scan of the scope unchanged
//! since is served from them, without reading the store.
//!
//! # Invariants
//! - Consistent: the records are those of one view (a snapshot's, or the
//!   iterator's own point in time), opened with the keys pinned for it.
//! - A shred or seal wins: every record is handed out only after checking
//!   its scope's gates, so once a shred or seal returns, the scan yields
//!   `Shredded` or `Sealed` and nothing more, whatever was opened ahead.
//! - A scan ends at its first error.
//! - Bounded: at most [`WINDOW`] batches beyond the one handed out, each of
//!   about [`BATCH_BYTES`] (or one record, if larger).

use std::collections::VecDeque;
use std::sync::Arc;

use super::db::Inner;
use super::read_ahead::{Batch, Failure, Slot};
use super::scan_cache::{Cached, Filling};
use crate::crypto::scope_key::ScopeKeys;
use crate::error::{CorruptionKind, Error, Result};
use crate::scope::Scope;
use crate::store::{StoreRawIter, StoreSnapshot, Version, iter_err, key_codec};

/// Sealed bytes of one batch at most (a power of two, as its buffer grows).
const BATCH_BYTES: usize = 128 * 1024;
/// Records in one batch at most.
const BATCH_RECORDS: usize = 1024;
/// Batches read ahead of the one being handed out, at most.
const WINDOW: usize = 4;

/// An iterator over the records of one scope, yielding `(key, value)` in
/// token order (the order of keyed hashes of the keys, not of the keys).
///
/// Records are opened ahead of the caller on other cores; dropping the scan
/// discards (and wipes) what it opened ahead. The scan ends at its first
/// error, and yields `Shredded` or `Sealed` if its scope is shredded or
/// sealed while it runs.
pub struct Scan<'db> {
    // Field order matters: the iterator must drop before the snapshot it reads.
    iter: Option<StoreRawIter<'db>>,
    _snapshot: Option<Arc<StoreSnapshot<'db>>>,
    inner: &'db Inner,
    scope: Scope,
    keys: Option<ScopeKeys>,
    /// Batches read from the store and not handed out yet, in order.
    window: VecDeque<Arc<Slot>>,
    /// The batch being handed out, and its next record.
    current: Option<Batch>,
    next: usize,
    /// The scope's records from the scan cache, and the batch of them being
    /// handed out: then `current` and `window` stay empty.
    cached: Option<(Arc<Cached>, usize)>,
    /// The batches handed out, kept for the scan cache until the end.
    filling: Option<Filling<'db>>,
    /// Why reading the store stopped early, given once the batches read
    /// before it are handed out.
    read_error: Option<Error>,
    /// No more records: the last was handed out, or an error was.
    finished: bool,
}

/// What the next call yields.
enum Next {
    Record(usize),
    Error(Error),
    End,
}

impl<'db> Scan<'db> {
    /// A scan of the live store (its iterator is its own point in time).
    pub(crate) fn new(inner: &'db Inner, scope: Scope) -> Result<Scan<'db>> {
        // Read before the view: the scope as the cache keeps it, if no
        // write to it began or ended since.
        let version = inner.store.version(scope);
        if let Some(cached) = version.and_then(|v| inner.scan_cache.get(scope, v))
            && let Some(keys) = inner.keyring.keys(scope)?
        {
            return Ok(Scan::cached(inner, scope, keys, cached));
        }
        let (keys, iter) = inner.pin_keys(scope, || inner.store.scan_raw(scope, None))?;
        let iter = keys.as_ref().map(|_| iter);
        Ok(Scan::with(inner, scope, keys, iter, None, version))
    }

    /// A scan of `snapshot`, whose keys were pinned when it was taken, and
    /// whose scope was at `version` then (if known).
    pub(crate) fn over(
        inner: &'db Inner,
        scope: Scope,
        keys: Option<ScopeKeys>,
        snapshot: Arc<StoreSnapshot<'db>>,
        version: Option<Version>,
    ) -> Scan<'db> {
        if let (Some(cached), Some(keys)) = (
            version.and_then(|v| inner.scan_cache.get(scope, v)),
            keys.as_ref(),
        ) {
            return Scan::cached(inner, scope, keys.clone(), cached);
        }
        let iter = keys
            .as_ref()
            .map(|_| inner.store.scan_raw(scope, Some(&snapshot)));
        Scan::with(inner, scope, keys, iter, Some(snapshot), version)
    }

    fn with(
        inner: &'db Inner,
        scope: Scope,
        keys: Option<ScopeKeys>,
        iter: Option<StoreRawIter<'db>>,
        snapshot: Option<Arc<StoreSnapshot<'db>>>,
        version: Option<Version>,
    ) -> Scan<'db> {
        Scan {
            finished: iter.is_none(),
            filling: iter
                .as_ref()
                .and_then(|_| inner.scan_cache.filling(version)),
            iter,
            _snapshot: snapshot,
            inner,
            scope,
            keys,
            window: VecDeque::new(),
            current: None,
            next: 0,
            cached: None,
            read_error: None,
        }
    }

    /// A scan handing out the records the cache keeps.
    fn cached(inner: &'db Inner, scope: Scope, keys: ScopeKeys, cached: Arc<Cached>) -> Scan<'db> {
        inner.scan_cache.note_served();
        let mut scan = Scan::with(inner, scope, Some(keys), None, None, None);
        scan.finished = false;
        scan.cached = Some((cached, 0));
        scan
    }

    /// The batch whose records are being handed out.
    fn batch(&self) -> Option<&Batch> {
        match &self.cached {
            Some((cached, at)) => cached.batches.get(*at),
            None => self.current.as_ref(),
        }
    }

    /// The next record as slices into the scan's buffer, valid until the
    /// next call: no copy, no allocation per record. The lending form of
    /// [`Iterator::next`], for callers that look at each record and move on.
    pub fn next_ref(&mut self) -> Option<Result<(&[u8], &[u8])>> {
        match self.advance() {
            Next::Record(i) => {
                let batch = self.batch().expect("a record is in a batch");
                Some(Ok(batch.get(i).expect("advance checked it opened")))
            }
            Next::Error(e) => Some(Err(e)),
            Next::End => None,
        }
    }

    /// Moves to the next record, reading and opening batches as needed.
    fn advance(&mut self) -> Next {
        while !self.finished {
            if self.next < self.batch().map_or(0, Batch::len) {
                let i = self.next;
                self.next += 1;
                let keys = self.keys.as_ref().expect("a scan with records has keys");
                let opened = self.batch().expect("checked above").get(i);
                let checked = match opened.map_err(Failure::clone) {
                    Err(failure) => Err(self.error(failure)),
                    Ok(_) => keys
                        .newest()
                        .check_live()
                        .map_err(|r| Error::revoked(self.scope, r)),
                };
                return match checked {
                    Ok(()) => Next::Record(i),
                    Err(e) => {
                        self.finish();
                        Next::Error(e)
                    }
                };
            }
            self.next = 0;
            if let Some((cached, at)) = &mut self.cached {
                *at += 1;
                if *at >= cached.batches.len() {
                    self.finish();
                }
                continue;
            }
            if let Some(done) = self.current.take()
                && let Some(filling) = &mut self.filling
                && !filling.keep(done)
            {
                self.filling = None; // the fills outgrew the cache
            }
            // The next batch: read ahead already, or (at the start, or when
            // the window ran dry) read now and opened here.
            let next = match self.window.pop_front() {
                Some(slot) => Some(slot),
                None => self.read_batch(false),
            };
            match next {
                Some(slot) => {
                    self.read_ahead();
                    // Rather than wait for a thread opening this batch,
                    // open the ones after it that no thread has taken.
                    for later in &self.window {
                        if !slot.is_opening() {
                            break;
                        }
                        later.open_here();
                    }
                    self.current = Some(slot.take());
                }
                None => {
                    let filled = self.filling.take();
                    self.finish();
                    if let Some(e) = self.read_error.take() {
                        return Next::Error(e);
                    }
                    if let (Some(filled), Some(keys)) = (filled, &self.keys) {
                        let now = self.inner.store.version(self.scope);
                        let gone = self.inner.scan_cache.put(self.scope, keys, filled, now);
                        // Tens of MB to wipe and free: not on the caller's time.
                        if !gone.is_empty() {
                            self.inner.read_ahead.drop_later(gone);
                        }
                    }
                }
            }
        }
        Next::End
    }

    /// Fills the window with batches read from the store, for the
    /// read-ahead threads to open.
    fn read_ahead(&mut self) {
        while self.window.len() < WINDOW {
            let Some(slot) = self.read_batch(true) else {
                return;
            };
            self.window.push_back(slot);
        }
    }

    /// The next batch read from the store (`None` at the end or after an
    /// error), handed to the read-ahead threads if `ahead`.
    fn read_batch(&mut self, ahead: bool) -> Option<Arc<Slot>> {
        let (Some(iter), Some(keys)) = (self.iter.as_mut(), self.keys.as_ref()) else {
            return None;
        };
        if !iter.valid() {
            if let Err(e) = iter.status() {
                self.read_error = Some(iter_err(e));
            }
            self.iter = None;
            return None;
        }
        let pool = &self.inner.read_ahead;
        let mut batch = pool.batch();
        let mut malformed = false;
        while let (Some(store_key), Some(sealed)) = (iter.key(), iter.value()) {
            // Batches stay within BATCH_BYTES (one record may exceed it
            // alone), so their buffers, grown by doubling, hold no more.
            if batch.len() == BATCH_RECORDS
                || (batch.len() > 0 && batch.sealed_bytes() + sealed.len() > BATCH_BYTES)
            {
                break;
            }
            let Some(token) = key_codec::token_of(store_key) else {
                let kind = CorruptionKind::Malformed("store key");
                batch.push_failure(Failure::Corrupt(kind));
                malformed = true;
                break;
            };
            batch.push(token, sealed);
            iter.next();
        }
        let slot = pool.slot(batch, keys.clone(), ahead);
        if malformed {
            self.iter = None;
        }
        Some(slot)
    }

    fn error(&self, failure: Failure) -> Error {
        match failure {
            Failure::Revoked(scope, revoked) => Error::revoked(scope, revoked),
            Failure::Corrupt(kind) => self.inner.store.corruption(kind),
        }
    }

    /// Drops everything read: the scan yields nothing more.
    fn finish(&mut self) {
        self.finished = true;
        self.current = None;
        self.cached = None;
        self.filling = None;
        for slot in self.window.drain(..) {
            slot.abandon();
        }
        self.iter = None;
    }
}

impl Iterator for Scan<'_> {
    type Item = Result<(Vec<u8>, Vec<u8>)>;

    fn next(&mut self) -> Option<Self::Item> {
        Some(
            self.next_ref()?
                .map(|(key, value)| (key.to_vec(), value.to_vec())),
        )
    }
}

impl Drop for Scan<'_> {
    fn drop(&mut self) {
        self.finish();
    }
}

#[cfg(test)]
mod tests {
    use crate::{Db, Options, TenantId, WriteBatch};

    #[test]
    fn a_scan_dropped_half_way_frees_every_batch_and_view_it_held() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path(), Options::with_key([3; 32]).scan_threads(2)).unwrap();
        let tenant = db.tenant(TenantId(1));
        for chunk in 0..20 {
            let mut batch = WriteBatch::new();
            for i in 0..1000 {
                batch.put(format!("{chunk}-{i}"), vec![7u8; 256]);
            }
            tenant.write(batch).unwrap();
        }
        let snapshots = || db.inner.store.property_int("rocksdb.num-snapshots");
        let live = || db.inner.read_ahead.batches_live();
        let view = tenant.snapshot().unwrap();
        let mut scan = view.scan().unwrap();
        let mut live_scan = tenant.scan().unwrap();
        for _ in 0..100 {
            scan.next().unwrap().unwrap();
            live_scan.next().unwrap().unwrap();
        }
        assert!(live() > 2, "batches are read ahead: {}", live());
        assert_eq!(snapshots(), 1);
        drop((scan, live_scan, view));
        assert_eq!(snapshots(), 0, "the snapshot is released");
        // A pool thread opening a batch when its scan dropped frees it as
        // soon as it is done.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while live() > 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "{} batches left",
                live()
            );
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        // A scan read to its end leaves nothing either, and the pool's
        // threads opened batches of it.
        let opened = db.inner.read_ahead.opened_ahead();
        assert_eq!(tenant.scan().unwrap().count(), 20_000);
        assert_eq!(live(), 0);
        assert!(db.inner.read_ahead.opened_ahead() > opened);
    }
}
