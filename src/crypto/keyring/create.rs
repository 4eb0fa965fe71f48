//! Creating keys in groups, as the log commits in groups.
//!
//! A scope's first write needs its key durable in its shard first. Made one
//! by one under the keyring's write lock, each creation is an append and a
//! sync of its own, and concurrent creations queue behind each other's
//! syncs. Here they group: a creator that finds no group forming leads one,
//! taking every creation queued meanwhile; the group's keys are appended,
//! each touched shard once, and the shards synced in parallel; then every
//! member finds its key. A batch that writes to many new subjects creates
//! all their keys as one group ([`Keyring::create_keys`]).
//!
//! Subjects are mostly numbered in order (the record layer numbers them so),
//! and one writer making them one at a time cannot group: each first write
//! would wait for its key's sync, then its log's. So a group that creates
//! the key of subject `n` while `n - 1` has one (or is in the group) also
//! creates the keys of `n + 1 ..= n + ahead` that do not exist yet
//! ([`Keyring::create_subject_keys_ahead`]): the next first writes find
//! their keys made. Keys made ahead are ordinary keys, durable before they
//! are published; a subject that is never written keeps an unused key,
//! destroyed with its tenant or by a shred like any other. Scopes sealed,
//! destroyed or keyed already are never made ahead.
//!
//! # Invariants
//! - A key is published (found by `current_key`) only once the append that
//!   holds it is synced: no log frame is sealed under a key a crash can
//!   lose.
//! - Creations happen under `write`, so a key is never created twice for a
//!   scope, nor for one being sealed or destroyed.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::{Condvar, Mutex};

use super::shard::{KeyRecord, ShardId};
use super::{FileId, Keyring, subject_shard};
use crate::crypto::SecretKey;
use crate::crypto::scope_key::ScopeKey;
use crate::error::Result;
use crate::format::SUBJECT_KEY_VERSION;
use crate::scope::{Scope, SubjectId, TenantId};

/// Whether the store holds records of a scope: a key made ahead for a
/// scope that does would be a new key over records sealed under a lost one
/// (`Inner::check_keyless`), so none is. `None`: make no keys ahead.
pub(crate) type HoldsRecords<'a> = Option<&'a (dyn Fn(Scope) -> bool + Sync)>;

/// Subjects' keys made ahead at most, whatever the options say: the
/// candidates are looked up under `write`.
const AHEAD_MAX: u64 = 1024;

/// Key creations waiting for the next group.
#[derive(Default)]
pub(super) struct Creations {
    queue: Mutex<Queue>,
    /// Signalled when a group is done.
    done: Condvar,
    /// Subjects' keys made ahead of a run of subjects numbered in order.
    ahead: AtomicU64,
}

#[derive(Default)]
struct Queue {
    waiting: BTreeSet<Scope>,
    /// A group is being created.
    leading: bool,
    /// Groups done so far.
    groups: u64,
    /// Groups done and shards' keys published so far: what members wait on.
    events: u64,
}

impl Creations {
    /// Wakes the members waiting: keys were published.
    fn published(&self) {
        self.queue.lock().events += 1;
        self.done.notify_all();
    }

    /// Groups created so far.
    #[cfg(test)]
    pub(super) fn groups(&self) -> u64 {
        self.queue.lock().groups
    }
}

/// Marks the group being created as done, and wakes its members.
struct EndOfGroup<'a>(&'a Creations);

impl Drop for EndOfGroup<'_> {
    fn drop(&mut self) {
        let mut queue = self.0.queue.lock();
        queue.leading = false;
        queue.groups += 1;
        queue.events += 1;
        self.0.done.notify_all();
    }
}

impl Keyring {
    /// Sets how many subjects' keys a group makes ahead of a subject whose
    /// predecessor has a key (0: none).
    pub(crate) fn create_subject_keys_ahead(&self, ahead: u64) {
        self.creations
            .ahead
            .store(ahead.min(AHEAD_MAX), Ordering::Relaxed);
    }

    /// The key a live scope writes under, created (durably) if it has none,
    /// in a group with the creations of other threads meanwhile (and keys
    /// made ahead if this caller leads it and says where records are).
    pub(crate) fn current_key_or_create(
        &self,
        scope: Scope,
        held: HoldsRecords<'_>,
    ) -> Result<Arc<ScopeKey>> {
        if let Some(key) = self.current_key(scope)? {
            return Ok(key);
        }
        let creations = &self.creations;
        let mut queue = creations.queue.lock();
        queue.waiting.insert(scope);
        loop {
            if !queue.leading {
                queue.leading = true;
                let group: Vec<Scope> = std::mem::take(&mut queue.waiting).into_iter().collect();
                drop(queue);
                let created = {
                    // Ends the group even if creating it panics, so that
                    // no member waits for ever.
                    let _ending = EndOfGroup(creations);
                    self.create_keys(&group, held)
                };
                // Another member's shard may have failed: that member
                // finds out from its own retry.
                if let Some(key) = self.current_key(scope)? {
                    return Ok(key);
                }
                created?;
            } else {
                let events = queue.events;
                while queue.events == events {
                    creations.done.wait(&mut queue);
                }
                drop(queue);
            }
            // A scope sealed or destroyed meanwhile says so here; one whose
            // key is not published yet (its group still syncing, or failed)
            // is queued again: a later group finds its key made, or makes
            // it (a group is created under `write`, after the one before
            // has published everything).
            if let Some(key) = self.current_key(scope)? {
                return Ok(key);
            }
            queue = creations.queue.lock();
            queue.waiting.insert(scope);
        }
    }

    /// Creates, durably, the keys of every live scope of `scopes` that has
    /// none (and of their tenants, first): each touched shard appended
    /// once, the shards synced in parallel. Scopes sealed or destroyed are
    /// left out (their writers find out from `current_key`).
    pub(crate) fn create_keys(&self, scopes: &[Scope], held: HoldsRecords<'_>) -> Result<()> {
        let _writing = self.write.lock();
        // Every scope is tried, whatever fails for another; the first error
        // is returned.
        let mut first_error = None;
        let mut subjects: BTreeMap<TenantId, BTreeSet<SubjectId>> = BTreeMap::new();
        for &scope in scopes {
            if !matches!(self.current_key(scope), Ok(None)) {
                continue;
            }
            let tenant_keyed = match self.lookup(Scope::tenant(scope.tenant), None) {
                Ok(Some(_)) => Ok(()),
                Ok(None) => self.create_tenant_key(scope.tenant).map(drop),
                Err(e) => Err(e),
            };
            if let Err(e) = tenant_keyed {
                first_error.get_or_insert(e);
                continue;
            }
            if let Some(subject) = scope.subject {
                subjects.entry(scope.tenant).or_default().insert(subject);
            }
        }
        if let Some(held) = held {
            self.add_subjects_ahead(&mut subjects, held);
        }
        let now = self.clock.now_us();
        let mut by_shard: BTreeMap<ShardId, Vec<KeyRecord>> = BTreeMap::new();
        {
            let loaded = self.loaded.read();
            for (tenant, subjects) in &subjects {
                let (version, tenant_key) = loaded
                    .tenants
                    .get(tenant)
                    .and_then(|t| t.versions.iter().next_back())
                    .expect("the tenant key is created before its subjects' keys");
                for subject in subjects {
                    let id = subject_shard(*tenant, *subject);
                    let record = id.wrap_key(
                        &tenant_key.subject_wrap,
                        subject.0,
                        SUBJECT_KEY_VERSION,
                        *version,
                        now,
                        &SecretKey::random(),
                    );
                    by_shard.entry(id).or_default().push(record);
                }
            }
        }
        let shards: Vec<(ShardId, Vec<KeyRecord>)> = by_shard.into_iter().collect();
        let appends: Vec<(FileId, Vec<Vec<u8>>)> = shards
            .iter()
            .map(|(id, records)| {
                let units = records.iter().map(|r| r.encode().to_vec()).collect();
                (FileId::Shard(*id), units)
            })
            .collect();
        // Each shard's keys are published as soon as its sync returns, and
        // their writers woken: they need not wait for the group's slowest.
        self.append_many(&appends, |i, appended| {
            let (id, records) = &shards[i];
            let published = appended.and_then(|()| {
                let mut loaded = self.loaded.write();
                records
                    .iter()
                    .try_for_each(|record| self.insert_subject_record(&mut loaded, *id, record))
            });
            match published {
                Ok(()) => self.creations.published(),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        });
        first_error.map_or(Ok(()), Err)
    }

    /// Adds to `subjects` (keys about to be made, by tenant) the keys to
    /// make ahead: after each subject whose predecessor has a key or is
    /// made in the same group, the next `ahead` that have none, are not
    /// sealed, were never destroyed and hold no records. The caller holds
    /// `write`.
    fn add_subjects_ahead(
        &self,
        subjects: &mut BTreeMap<TenantId, BTreeSet<SubjectId>>,
        held: &(dyn Fn(Scope) -> bool + Sync),
    ) {
        let ahead = self.creations.ahead.load(Ordering::Relaxed);
        if ahead == 0 {
            return;
        }
        let keyless = |tenant, subject| {
            let scope = Scope::subject(tenant, SubjectId(subject));
            matches!(self.current_key(scope), Ok(None)) && !held(scope)
        };
        for (&tenant, made) in subjects.iter_mut() {
            // Only the last of a run of numbers made together counts: the
            // keys ahead of the others are in the run, or ahead of its last.
            let in_order: Vec<u64> = made
                .iter()
                .map(|s| s.0)
                .filter(|&s| {
                    s.checked_add(1)
                        .is_none_or(|n| !made.contains(&SubjectId(n)))
                })
                .filter(|&s| {
                    s.checked_sub(1).is_some_and(|before| {
                        made.contains(&SubjectId(before))
                            || matches!(
                                self.current_key(Scope::subject(tenant, SubjectId(before))),
                                Ok(Some(_))
                            )
                    })
                })
                .collect();
            for s in in_order {
                let next = (1..=ahead).filter_map(|i| s.checked_add(i));
                for subject in next {
                    if !made.contains(&SubjectId(subject)) && keyless(tenant, subject) {
                        made.insert(SubjectId(subject));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::scope::Scope;
    use crate::{Db, Error, Options, ShredOptions, SubjectId, TenantId};

    fn keyed(db: &Db, subject: u64) -> bool {
        let scope = Scope::subject(TenantId(1), SubjectId(subject));
        db.inner.keyring.current_key(scope).unwrap().is_some()
    }

    #[test]
    fn subjects_made_in_order_find_their_keys_made_ahead_and_others_do_not() {
        let dir = tempfile::tempdir().unwrap();
        let options = || Options::with_key([9; 32]).subject_keys_ahead(4);
        let db = Db::open(dir.path(), options()).unwrap();
        let tenant = db.tenant(TenantId(1));
        let groups = || db.inner.keyring.creations.groups();
        // A destroyed subject is never given a key ahead.
        tenant
            .shred_subject(SubjectId(12), ShredOptions::immediate())
            .unwrap();
        // Nor is a sealed one.
        let grace = ShredOptions::with_grace(std::time::Duration::from_secs(3600));
        tenant.shred_subject(SubjectId(14), grace).unwrap();
        let put = |s: u64| tenant.subject(SubjectId(s)).put(b"k", b"v");
        put(10).unwrap();
        assert!(!keyed(&db, 11), "10 has no predecessor with a key");
        let before = groups();
        put(11).unwrap();
        assert_eq!(groups(), before + 1);
        assert!(keyed(&db, 13) && keyed(&db, 15), "made ahead of 11");
        assert!(!keyed(&db, 16));
        assert!(matches!(put(12), Err(Error::Shredded { .. })));
        assert!(tenant.cancel_shred_subject(SubjectId(14)).unwrap());
        assert!(!keyed(&db, 14), "sealed when 11 was made");
        put(13).unwrap();
        put(15).unwrap();
        assert_eq!(groups(), before + 1, "13 and 15 found their keys made");
        // Numbers out of order make no keys ahead.
        put(100).unwrap();
        put(300).unwrap();
        assert!(!keyed(&db, 101) && !keyed(&db, 301));
        // Keys made ahead are durable: after a reopen 16's write (its
        // predecessor 15 keyed) makes 17 to 20, and 17 needs no group.
        put(16).unwrap();
        drop(db);
        let db = Db::open(dir.path(), options()).unwrap();
        assert!((17..=20).all(|s| keyed(&db, s)));
        let groups = db.inner.keyring.creations.groups();
        db.tenant(TenantId(1))
            .subject(SubjectId(17))
            .put(b"k", b"v")
            .unwrap();
        assert_eq!(db.inner.keyring.creations.groups(), groups);
        // Never over records: a scope the store holds records of (its key
        // lost) gets no key ahead.
        let holds_23 = |s: Scope| s.subject == Some(SubjectId(23));
        let scope_21 = Scope::subject(TenantId(1), SubjectId(21));
        db.inner
            .keyring
            .create_keys(&[scope_21], Some(&holds_23))
            .unwrap();
        assert!(keyed(&db, 21) && keyed(&db, 22) && keyed(&db, 24));
        assert!(!keyed(&db, 23));
        // Unused keys go with their tenant.
        db.shred_tenant(TenantId(1), ShredOptions::immediate())
            .unwrap();
        let gone = db
            .inner
            .keyring
            .current_key(Scope::subject(TenantId(1), SubjectId(20)));
        assert!(matches!(gone, Err(Error::Shredded { .. })), "{gone:?}");
    }

    #[test]
    fn concurrent_first_writes_create_their_keys_in_groups() {
        const THREADS: u64 = 8;
        const EACH: u64 = 40;
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path(), Options::with_key([9; 32])).unwrap();
        db.tenant(TenantId(1)).put(b"own", b"v").unwrap();
        let keyring = &db.inner.keyring;
        let before = keyring.creations.groups();
        std::thread::scope(|s| {
            for t in 0..THREADS {
                let db = &db;
                s.spawn(move || {
                    for i in 0..EACH {
                        let subject = db.tenant(TenantId(1)).subject(SubjectId(t * EACH + i));
                        subject.put(b"k", b"v").unwrap();
                    }
                });
            }
        });
        let groups = keyring.creations.groups() - before;
        // Each group holds at least one creation, and many more than one.
        assert!(
            (1..THREADS * EACH * 3 / 4).contains(&groups),
            "{groups} groups"
        );
        for s in 0..THREADS * EACH {
            let subject = db.tenant(TenantId(1)).subject(SubjectId(s));
            assert_eq!(subject.get(b"k").unwrap().as_deref(), Some(&b"v"[..]));
        }
    }
}
