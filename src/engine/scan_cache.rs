//! The scan cache: the opened records of recently scanned scopes, so that
//! a scope scanned again, unchanged, is handed out without reading the
//! store or opening a record. Off unless [`crate::Options::scan_cache_bytes`]
//! gives it a budget.
//!
//! A scan that reads a whole scope keeps the batches it opened; at its end,
//! if the scope's write version (`store/versions.rs`) is still the one read
//! before its view was taken, those batches are the scope as it stands, and
//! they are kept under that version. A later scan whose version is the same
//! (read before its own view) is served from them.
//!
//! This keeps plaintext in memory beyond one call, as SQLCipher's page cache
//! does: GUARANTEES.md's threat model says what that exposes and why it is
//! off by default.
//!
//! # Invariants
//! - An entry is the scope's records at its version, exactly: built from a
//!   view taken while the version held, and kept only if it still holds.
//! - Bounded: the entries' bytes never exceed the budget; the least
//!   recently used go first.
//! - Plaintext is wiped when its entry goes (evicted, replaced, purged,
//!   stale at a maintenance pass, or the database closed) and the last scan
//!   reading it is done: the batches wipe themselves when they drop.
//! - Nothing of a sealed or shredded scope stays: a seal or shred purges
//!   the scope's entries (a tenant's: every subject's too) after setting
//!   its gate, and an entry is kept only if its gate is open, checked
//!   under the same lock as the purge.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use parking_lot::Mutex;

use super::read_ahead::Batch;
use crate::crypto::scope_key::ScopeKeys;
use crate::scope::Scope;
use crate::store::Version;

/// What an entry costs beyond its batches, counted against the budget.
const ENTRY_BYTES: usize =
    std::mem::size_of::<Entry>() + std::mem::size_of::<Cached>() + std::mem::size_of::<Scope>();

/// What the scan cache holds ([`crate::Db::scan_cache_stats`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ScanCacheStats {
    /// Scopes kept.
    pub scopes: usize,
    /// Their bytes, counted against the budget.
    pub bytes: usize,
    /// Scans served from the cache since the database opened.
    pub served: u64,
}

/// One scope's records, opened, in token order.
pub(crate) struct Cached {
    pub(crate) batches: Vec<Batch>,
}

struct Entry {
    version: Version,
    records: Arc<Cached>,
    bytes: usize,
    /// When a scan last used it (a tick of the cache's clock).
    used: u64,
}

#[derive(Default)]
struct State {
    entries: HashMap<Scope, Entry>,
    bytes: usize,
    tick: u64,
}

impl State {
    /// Takes `scope`'s entry out, and its bytes off the count.
    fn take(&mut self, scope: &Scope) -> Option<Entry> {
        let entry = self.entries.remove(scope)?;
        self.bytes -= entry.bytes;
        Some(entry)
    }
}

/// The scan cache of one database.
pub(crate) struct ScanCache {
    budget: usize,
    state: Mutex<State>,
    /// Scans served from the cache.
    served: AtomicU64,
    /// Bytes of the fills in flight ([`Filling`]).
    filling_bytes: AtomicUsize,
}

/// The batches a scan keeps while it reads a scope whole, to be cached at
/// its end. Their bytes count against the budget of every scan filling at
/// once, so the cache and the fills in flight hold at most twice the budget
/// (plus entries let go while scans still hand them out: each is wiped
/// when its last scan drops it).
pub(crate) struct Filling<'c> {
    cache: &'c ScanCache,
    version: Version,
    batches: Vec<Batch>,
    bytes: usize,
}

impl Filling<'_> {
    /// Keeps `batch`; false if the fills in flight outgrew the budget (then
    /// the scan stops filling and drops what it kept).
    pub(crate) fn keep(&mut self, batch: Batch) -> bool {
        let bytes = batch.held_bytes();
        self.bytes += bytes;
        self.batches.push(batch);
        let filling = self.cache.filling_bytes.fetch_add(bytes, Ordering::Relaxed) + bytes;
        filling <= self.cache.budget
    }
}

impl Drop for Filling<'_> {
    fn drop(&mut self) {
        self.cache
            .filling_bytes
            .fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

impl ScanCache {
    pub(crate) fn new(budget: usize) -> ScanCache {
        ScanCache {
            budget,
            state: Mutex::default(),
            served: AtomicU64::new(0),
            filling_bytes: AtomicUsize::new(0),
        }
    }

    /// The records of `scope` at `version`, if kept.
    pub(crate) fn get(&self, scope: Scope, version: Version) -> Option<Arc<Cached>> {
        if self.budget == 0 {
            return None;
        }
        let mut state = self.state.lock();
        state.tick += 1;
        let tick = state.tick;
        let entry = state.entries.get_mut(&scope)?;
        if entry.version != version {
            return None;
        }
        entry.used = tick;
        Some(Arc::clone(&entry.records))
    }

    /// Counts a scan served from the cache.
    pub(crate) fn note_served(&self) {
        self.served.fetch_add(1, Ordering::Relaxed);
    }

    /// Where a scan of `scope` at `version` keeps its batches, if it may
    /// fill the cache.
    pub(crate) fn filling(&self, version: Option<Version>) -> Option<Filling<'_>> {
        (self.budget > 0).then_some(Filling {
            cache: self,
            version: version?,
            batches: Vec::new(),
            bytes: 0,
        })
    }

    /// Keeps a scan's batches, all of `scope` as of `filled.version`, if
    /// that is still the scope's version (`now`) and its gates are open.
    /// Returns the records it let go (the scope's older ones, the least
    /// recently used), for the caller to drop (and so wipe) off its thread.
    #[must_use = "the records let go are wiped when dropped"]
    pub(crate) fn put(
        &self,
        scope: Scope,
        keys: &ScopeKeys,
        mut filled: Filling<'_>,
        now: Option<Version>,
    ) -> Vec<Arc<Cached>> {
        let mut gone = Vec::new();
        let bytes = filled.bytes + ENTRY_BYTES;
        // An empty scope is not worth an entry (nor its overhead).
        if now != Some(filled.version) || bytes > self.budget || filled.batches.is_empty() {
            return gone;
        }
        let mut state = self.state.lock();
        // Under the lock a seal or shred purges with: its gate is set
        // before its purge, so a scope it purged is refused here.
        if keys.newest().check_live().is_err() {
            return gone;
        }
        // A scan that read the scope later may have kept it already.
        if state
            .entries
            .get(&scope)
            .is_some_and(|kept| kept.version.is_after(filled.version))
        {
            return gone;
        }
        if let Some(old) = state.take(&scope) {
            gone.push(old.records);
        }
        while state.bytes + bytes > self.budget {
            let oldest = state
                .entries
                .iter()
                .min_by_key(|(_, entry)| entry.used)
                .map(|(scope, _)| *scope)
                .expect("entries hold the bytes counted");
            gone.push(state.take(&oldest).expect("just found").records);
        }
        state.tick += 1;
        state.bytes += bytes;
        let entry = Entry {
            version: filled.version,
            bytes,
            records: Arc::new(Cached {
                batches: std::mem::take(&mut filled.batches),
            }),
            used: state.tick,
        };
        state.entries.insert(scope, entry);
        tracing::debug!(%scope, bytes = state.bytes, entries = state.entries.len(), "scan cache: scope kept");
        gone
    }

    /// Drops what is kept of `scope`, and of every subject of a tenant.
    /// Wiped before it returns, outside the cache's lock.
    pub(crate) fn purge(&self, scope: Scope) {
        drop(self.remove_where(|kept, _| {
            *kept == scope || (scope.subject.is_none() && kept.tenant == scope.tenant)
        }));
    }

    /// Takes every entry `goes` picks out of the cache; the caller drops
    /// (and so wipes) them after the lock is released.
    fn remove_where(&self, mut goes: impl FnMut(&Scope, &Entry) -> bool) -> Vec<Entry> {
        let mut state = self.state.lock();
        let gone_keys: Vec<Scope> = state
            .entries
            .iter()
            .filter(|(scope, entry)| goes(scope, entry))
            .map(|(scope, _)| *scope)
            .collect();
        gone_keys
            .iter()
            .map(|scope| state.take(scope).expect("just found"))
            .collect()
    }

    /// Drops what is kept of every scope written since (its version is not
    /// `version` says now): a value deleted or overwritten leaves memory at
    /// the next maintenance pass, even if its scope is not scanned again.
    pub(crate) fn drop_stale(&self, version: impl Fn(Scope) -> Option<Version>) {
        drop(self.remove_where(|scope, entry| version(*scope) != Some(entry.version)));
    }

    /// Drops everything kept (the keyring changed under a standby).
    pub(crate) fn clear(&self) {
        drop(self.remove_where(|_, _| true));
    }

    /// What the cache holds now.
    pub(crate) fn stats(&self) -> ScanCacheStats {
        let state = self.state.lock();
        ScanCacheStats {
            scopes: state.entries.len(),
            bytes: state.bytes,
            served: self.served.load(Ordering::Relaxed),
        }
    }

    /// Whether anything of `tenant` is kept.
    #[cfg(test)]
    pub(crate) fn holds_tenant(&self, tenant: crate::scope::TenantId) -> bool {
        self.state.lock().entries.keys().any(|s| s.tenant == tenant)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;
    use std::time::Duration;

    use super::{Ordering, ScanCacheStats};
    use crate::{Db, Error, Options, ShredOptions, SubjectId, TenantId, WriteBatch};

    fn open(dir: &std::path::Path, budget: usize) -> Db {
        Db::open(
            dir,
            Options::with_key([5; 32])
                .scan_threads(2)
                .scan_cache_bytes(budget),
        )
        .unwrap()
    }

    /// `n` records in `tenant`, over several batches, some compressed.
    fn fill(db: &Db, tenant: TenantId, n: u32) {
        let mut batch = WriteBatch::new();
        for i in 0..n {
            let value = if i % 7 == 0 {
                vec![b'z'; 2000]
            } else {
                vec![i as u8; 300]
            };
            batch.put(format!("k{i}"), value);
        }
        db.tenant(tenant).write(batch).unwrap();
    }

    fn scan(db: &Db, tenant: TenantId) -> Vec<(Vec<u8>, Vec<u8>)> {
        db.tenant(tenant)
            .scan()
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    #[test]
    fn a_scope_scanned_whole_is_served_again_until_it_changes() {
        let dir = tempfile::tempdir().unwrap();
        let db = open(dir.path(), 64 << 20);
        let cache = &db.inner.scan_cache;
        fill(&db, TenantId(1), 3000);
        fill(&db, TenantId(2), 10);
        let first = scan(&db, TenantId(1));
        assert_eq!(first.len(), 3000);
        assert_eq!(cache.stats().scopes, 1, "kept at the end of a whole scan");
        assert_eq!(cache.stats().served, 0);
        assert_eq!(scan(&db, TenantId(1)), first);
        assert_eq!(cache.stats().served, 1, "served from the cache");

        // A scan dropped half-way keeps nothing new and serves nothing stale.
        db.tenant(TenantId(1)).put(b"k0", b"changed").unwrap();
        let mut partial = db.tenant(TenantId(1)).scan().unwrap();
        partial.next().unwrap().unwrap();
        drop(partial);
        assert_eq!(
            cache.stats().served,
            1,
            "a changed scope is read from the store"
        );
        let changed = scan(&db, TenantId(1));
        assert_eq!(cache.stats().served, 1);
        assert_eq!(changed.len(), 3000);
        assert!(changed.contains(&(b"k0".to_vec(), b"changed".to_vec())));
        assert_eq!(scan(&db, TenantId(1)), changed);
        assert_eq!(cache.stats().served, 2);

        // Writes to another tenant leave it be; a delete does not.
        db.tenant(TenantId(2)).put(b"x", b"y").unwrap();
        assert_eq!(scan(&db, TenantId(1)), changed);
        assert_eq!(cache.stats().served, 3);
        db.tenant(TenantId(1)).delete(b"k1").unwrap();
        assert_eq!(scan(&db, TenantId(1)).len(), 2999);
        assert_eq!(cache.stats().served, 3);
        assert_eq!(scan(&db, TenantId(1)).len(), 2999);
        assert_eq!(cache.stats().served, 4);
        // A write leaves the old records in memory until the next pass.
        assert_eq!(scan(&db, TenantId(2)).len(), 11);
        db.tenant(TenantId(2)).put(b"x", b"z").unwrap();
        assert_eq!(cache.stats().scopes, 2);
        db.run_maintenance().unwrap();
        assert_eq!(cache.stats().scopes, 1, "tenant 2's old records dropped");
        assert!(cache.holds_tenant(TenantId(1)));
        // An empty scope (keyed, its records deleted) takes no entry.
        db.tenant(TenantId(9)).put(b"a", b"b").unwrap();
        db.tenant(TenantId(9)).delete(b"a").unwrap();
        assert_eq!(scan(&db, TenantId(9)).len(), 0);
        assert!(!cache.holds_tenant(TenantId(9)));

        // A snapshot's scan is served only with the scope as it was then.
        let view = db.tenant(TenantId(1)).snapshot().unwrap();
        assert_eq!(view.scan().unwrap().count(), 2999);
        assert_eq!(
            cache.stats().served,
            5,
            "the snapshot was taken at the cached version"
        );
        db.tenant(TenantId(1)).put(b"k1", b"back").unwrap();
        assert_eq!(
            scan(&db, TenantId(1)).len(),
            3000,
            "refilled at the new version"
        );
        let seen: Vec<_> = view.scan().unwrap().map(Result::unwrap).collect();
        assert_eq!(seen.len(), 2999, "the snapshot's moment, not the cache's");
        assert!(!seen.iter().any(|(k, _)| k == b"k1"));
        assert_eq!(cache.stats().served, 5);
    }

    #[test]
    fn the_cache_keeps_to_its_budget_and_frees_what_it_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        // One tenant of 3,000 records (about 2.9 MB opened, with the
        // decompressed bodies and the records' places), not two.
        let db = open(dir.path(), 4 << 20);
        let cache = &db.inner.scan_cache;
        fill(&db, TenantId(1), 3000);
        fill(&db, TenantId(2), 3000);
        let live = || db.inner.read_ahead.batches_live();
        // Batches let go are dropped on a read-ahead thread: soon, not now.
        let live_soon = |expected: usize| {
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while live() != expected && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(1));
            }
            live()
        };
        scan(&db, TenantId(1));
        let ScanCacheStats {
            scopes: entries,
            bytes,
            ..
        } = cache.stats();
        assert_eq!(entries, 1);
        assert!(bytes > 2 << 20 && bytes <= 4 << 20, "{bytes}");
        let held = live();
        assert!(held > 0);
        scan(&db, TenantId(2));
        assert_eq!(cache.stats().scopes, 1, "the least recently used went");
        assert!(cache.holds_tenant(TenantId(2)));
        assert_eq!(live_soon(held), held, "and its batches with it");

        // A scope larger than the budget is never kept, and its batches go.
        fill(&db, TenantId(3), 9000);
        scan(&db, TenantId(3));
        assert!(!cache.holds_tenant(TenantId(3)));
        assert_eq!(live_soon(held), held);

        // Fills in flight share the budget: while one scan holds most of
        // tenant 1, another cannot keep tenant 2 (changed) as well.
        db.tenant(TenantId(2)).put(b"k0", b"new").unwrap();
        let served = cache.stats().served;
        let mut first = db.tenant(TenantId(1)).scan().unwrap();
        for _ in 0..2500 {
            first.next().unwrap().unwrap();
        }
        let filling = || cache.filling_bytes.load(Ordering::Relaxed);
        assert!(filling() > 3 << 19, "{}", filling());
        assert_eq!(scan(&db, TenantId(2)).len(), 3000);
        assert_eq!(scan(&db, TenantId(2)).len(), 3000);
        assert_eq!(cache.stats().served, served, "no fill of tenant 2 was kept");
        assert_eq!(first.count(), 500);
        assert!(cache.holds_tenant(TenantId(1)));
        assert_eq!(filling(), 0, "nothing in flight once the scans end");
        drop(db);
    }

    #[test]
    fn a_seal_or_shred_purges_the_scope_and_a_scan_ending_after_one_keeps_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let db = open(dir.path(), 64 << 20);
        let cache = &db.inner.scan_cache;
        let tenant = db.tenant(TenantId(1));
        fill(&db, TenantId(1), 100);
        tenant.subject(SubjectId(4)).put(b"a", b"b").unwrap();
        let subject_scan = || tenant.subject(SubjectId(4)).scan().unwrap().count();
        let subject_sealed = || match tenant.subject(SubjectId(4)).scan() {
            Err(e) => e,
            Ok(mut scan) => scan.next().unwrap().unwrap_err(),
        };
        assert_eq!(subject_scan(), 1);
        scan(&db, TenantId(1));
        assert_eq!(cache.stats().scopes, 2);
        let grace = ShredOptions::with_grace(Duration::from_secs(3600));
        tenant.shred_subject(SubjectId(4), grace).unwrap();
        assert_eq!(
            cache.stats().scopes,
            1,
            "the subject is purged, its tenant not"
        );
        let err = subject_sealed();
        assert!(matches!(err, Error::Sealed { .. }), "{err:?}");
        assert!(tenant.cancel_shred_subject(SubjectId(4)).unwrap());
        assert_eq!(subject_scan(), 1);
        assert_eq!(cache.stats().scopes, 2);

        // A scan that read every record before a seal does not keep them.
        let mut scan_before = tenant.scan().unwrap();
        for _ in 0..100 {
            scan_before.next().unwrap().unwrap();
        }
        db.shred_tenant(TenantId(1), grace).unwrap();
        assert!(
            !cache.holds_tenant(TenantId(1)),
            "a tenant's seal purges its subjects"
        );
        assert!(scan_before.next().is_none());
        assert!(!cache.holds_tenant(TenantId(1)));
        assert!(db.cancel_shred_tenant(TenantId(1)).unwrap());

        scan(&db, TenantId(1));
        assert!(cache.holds_tenant(TenantId(1)));
        db.shred_tenant(TenantId(1), ShredOptions::immediate())
            .unwrap();
        let stats = cache.stats();
        assert_eq!((stats.scopes, stats.bytes), (0, 0));
        let err = db.tenant(TenantId(1)).scan().err();
        assert!(matches!(err, Some(Error::Shredded { .. })), "{err:?}");
    }

    #[test]
    fn cached_scans_racing_writes_see_whole_batches_and_never_go_back() {
        let dir = tempfile::tempdir().unwrap();
        let db = open(dir.path(), 64 << 20);
        let tenant = db.tenant(TenantId(1));
        const KEYS: u32 = 1500;
        // Every write sets every key to the same generation, in one batch.
        let write = |generation: u32| {
            let mut batch = WriteBatch::new();
            for i in 0..KEYS {
                let mut value = generation.to_le_bytes().to_vec();
                value.resize(200, i as u8);
                batch.put(format!("k{i}"), value);
            }
            tenant.write(batch).unwrap();
        };
        write(0);
        let generation_of = |value: &[u8]| u32::from_le_bytes(value[..4].try_into().unwrap());
        let done = AtomicBool::new(false);
        let last = std::sync::atomic::AtomicU32::new(0);
        std::thread::scope(|s| {
            for _ in 0..3 {
                s.spawn(|| {
                    let mut seen = 0;
                    while !done.load(std::sync::atomic::Ordering::SeqCst) {
                        // An acknowledged write is never missed.
                        let acked = last.load(std::sync::atomic::Ordering::SeqCst);
                        // A point read first: the scan after it never
                        // shows an older state.
                        let read = generation_of(&tenant.get(b"k0").unwrap().unwrap());
                        assert!(read >= acked.max(seen));
                        let mut scan = tenant.scan().unwrap();
                        let mut count = 0;
                        let mut generation = None;
                        while let Some(record) = scan.next_ref() {
                            let g = generation_of(record.unwrap().1);
                            assert_eq!(*generation.get_or_insert(g), g, "one batch, whole");
                            count += 1;
                        }
                        assert_eq!(count, KEYS);
                        let g = generation.unwrap();
                        assert!(g >= read, "scan {g} older than the read before it {read}");
                        seen = g;
                    }
                });
            }
            for generation in 1..60 {
                write(generation);
                last.store(generation, std::sync::atomic::Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(2));
            }
            done.store(true, std::sync::atomic::Ordering::SeqCst);
        });
        assert!(
            db.inner.scan_cache.stats().served > 0,
            "some scans were served"
        );
        let final_scan = scan(&db, TenantId(1));
        assert!(final_scan.iter().all(|(_, v)| generation_of(v) == 59));
    }
}
