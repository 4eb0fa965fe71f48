//! The layer's entry points: [`Records`] over a database, and
//! [`TenantRecords`], one tenant's handle. Every call goes the same way:
//! check the access context ([`TenantRecords::authorize`]), do the work,
//! and commit the change together with its audit entry in one engine batch
//! ([`TenantRecords::commit`]). A denial is audited before it is returned.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::{Mutex, RwLock};
use strongroom::{Clock, Db, Lsn, SubjectId, SystemClock, TenantId, WriteBatch};
use zeroize::Zeroizing;

use crate::access::Access;
use crate::audit::{self, AuditEntry, AuditHead};
use crate::codec::{Reader, Writer, write_count};
use crate::config::TenantConfig;
use crate::error::{Error, Result};
use crate::keys;
use crate::policy::{self, Membership, Permission};
use crate::schema::Schema;
use crate::subjects::SubjectEntry;

/// Options of the record layer.
#[derive(Debug, Clone)]
pub struct RecordsOptions {
    /// The clock of consent, retention and audit times; give it the
    /// database's clock.
    pub clock: Arc<dyn Clock>,
    /// Argon2id's memory cost (KiB) for secret fields. Default 19,456
    /// (OWASP's minimum for Argon2id).
    pub secret_memory_kib: u32,
    /// Argon2id's passes. Default 2.
    pub secret_passes: u32,
}

impl Default for RecordsOptions {
    fn default() -> Self {
        RecordsOptions {
            clock: Arc::new(SystemClock),
            secret_memory_kib: 19_456,
            secret_passes: 2,
        }
    }
}

/// The record layer over a database: the schema, and the state of each
/// tenant it has touched.
pub struct Records {
    db: Db,
    schema: Schema,
    options: RecordsOptions,
    tenants: Mutex<HashMap<TenantId, Arc<TenantState>>>,
    /// Held from a set-up's check that the tenant is new to its commit.
    setting_up: Mutex<()>,
}

/// What the layer keeps in memory about a tenant. Loaded at first use.
pub(crate) struct TenantState {
    pub(crate) config: RwLock<Arc<TenantConfig>>,
    pub(crate) members: RwLock<HashMap<String, Arc<Membership>>>,
    /// The blind indexes' key (random, kept sealed in the tenant's meta).
    pub(crate) index_key: Zeroizing<[u8; 32]>,
    /// Everything that changes with a commit. The lock is held from
    /// building a batch to its commit (through the log's sync), so audit
    /// entries chain in commit order. Readers use `committed` instead.
    pub(crate) ledger: Mutex<Ledger>,
    /// The ledger as of the last commit: what readers see, without waiting
    /// for a commit in flight.
    pub(crate) committed: RwLock<Ledger>,
    /// Set when a commit's write failed: the next commit reads the ledger
    /// back from the store first.
    pub(crate) ledger_unsure: AtomicBool,
    /// Held while interrupted erasures are finished, and while a retention
    /// sweep runs: one at a time each.
    pub(crate) finishing: Mutex<()>,
    pub(crate) sweeping: Mutex<()>,
}

/// The tenant's counters and the audit trail's head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Ledger {
    pub(crate) head: AuditHead,
    pub(crate) next_subject: u64,
    pub(crate) releases: u64,
    /// Subjects whose erasure was begun and not finished.
    pub(crate) erasing: Vec<u64>,
}

const META_VERSION: u8 = 1;

/// Format of `r/meta`: `version u8 = 1 | index_key len u32 | [32] |
/// next_subject u64 | releases u64 | count u32 | erasing u64 × count`.
pub(crate) fn encode_meta(index_key: &[u8; 32], ledger: &Ledger) -> Zeroizing<Vec<u8>> {
    let mut w = Writer::new(META_VERSION);
    w.bytes(index_key)
        .u64(ledger.next_subject)
        .u64(ledger.releases);
    write_count(&mut w, ledger.erasing.len());
    for s in &ledger.erasing {
        w.u64(*s);
    }
    Zeroizing::new(w.finish())
}

pub(crate) fn decode_meta(bytes: &[u8]) -> Result<(Zeroizing<[u8; 32]>, Ledger)> {
    let mut r = Reader::new(bytes, "tenant meta", META_VERSION)?;
    let key: [u8; 32] = r
        .bytes()?
        .try_into()
        .map_err(|_| r.corrupt("an index key that is not 32 bytes"))?;
    let next_subject = r.u64()?;
    let releases = r.u64()?;
    let n = r.count(8)?;
    let erasing = (0..n).map(|_| r.u64()).collect::<Result<_>>()?;
    r.end()?;
    let ledger = Ledger {
        head: AuditHead::EMPTY,
        next_subject,
        releases,
        erasing,
    };
    Ok((Zeroizing::new(key), ledger))
}

/// What a commit records in the trail.
pub(crate) struct Event<'a> {
    pub(crate) action: &'a str,
    pub(crate) subject: Option<SubjectId>,
    pub(crate) detail: String,
}

impl<'a> Event<'a> {
    pub(crate) fn new(action: &'a str, subject: Option<SubjectId>, detail: String) -> Self {
        Event {
            action,
            subject,
            detail,
        }
    }
}

impl Records {
    /// The record layer over `db`, with `schema`.
    pub fn new(db: Db, schema: Schema, options: RecordsOptions) -> Records {
        Records {
            db,
            schema,
            options,
            tenants: Mutex::new(HashMap::new()),
            setting_up: Mutex::new(()),
        }
    }

    /// The database (for shipping, backups and the like; writing a set-up
    /// tenant's scopes around the layer bypasses its checks and trail).
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Gives the database back.
    pub fn into_db(self) -> Db {
        self.db
    }

    /// The schema.
    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    pub(crate) fn options(&self) -> &RecordsOptions {
        &self.options
    }

    pub(crate) fn now_us(&self) -> u64 {
        self.options.clock.now_us()
    }

    /// Sets tenant `tenant` up for records with `config`. The caller in
    /// `setup` becomes its first member, in the context's role and unit (a
    /// role that may manage users). Audited as the trail's first entry.
    pub fn set_up_tenant(
        &self,
        setup: &Access,
        tenant: TenantId,
        config: TenantConfig,
    ) -> Result<TenantRecords<'_>> {
        setup.check_shape()?;
        config.validate()?;
        config.unit(&setup.unit)?;
        let role = config.role(&setup.role)?;
        if !policy::holds(
            role,
            &Default::default(),
            &config.contact_roles,
            Permission::ManageUsers,
        ) {
            return Err(Error::Denied {
                permission: Permission::ManageUsers,
            });
        }
        let _one_at_a_time = self.setting_up.lock();
        if self.db.tenant(tenant).get(keys::META)?.is_some()
            || self.tenants.lock().contains_key(&tenant)
        {
            return Err(Error::AlreadySetUp(tenant));
        }
        let mut index_key = Zeroizing::new([0u8; 32]);
        getrandom::fill(&mut index_key[..]).map_err(|_| Error::Config("no randomness".into()))?;
        let ledger = Ledger {
            head: AuditHead::EMPTY,
            next_subject: 1,
            releases: 0,
            erasing: Vec::new(),
        };
        let member = Membership {
            role: setup.role.clone(),
            unit: setup.unit.clone(),
            grants: Default::default(),
        };
        let state = Arc::new(TenantState {
            config: RwLock::new(Arc::new(config.clone())),
            members: RwLock::new(HashMap::new()),
            index_key,
            committed: RwLock::new(ledger.clone()),
            ledger_unsure: AtomicBool::new(false),
            finishing: Mutex::new(()),
            sweeping: Mutex::new(()),
            ledger: Mutex::new(ledger),
        });
        let records = TenantRecords {
            records: self,
            id: tenant,
            state: Arc::clone(&state),
        };
        let event = Event::new("set_up", None, format!("first member {}", setup.actor));
        records.commit(setup, event, "ok", |batch, ledger, _| {
            // The meta marks the tenant as set up: written now, not with
            // the first subject.
            batch.put(keys::META, encode_meta(&state.index_key, ledger).to_vec());
            batch.put(keys::CONFIG, json(&config));
            batch.put(keys::member(&setup.actor), json(&member));
            Ok(())
        })?;
        state
            .members
            .write()
            .insert(setup.actor.clone(), Arc::new(member));
        self.tenants.lock().insert(tenant, state);
        Ok(records)
    }

    /// The handle on set-up tenant `tenant`; finishes any erasure a crash
    /// interrupted.
    pub fn tenant(&self, tenant: TenantId) -> Result<TenantRecords<'_>> {
        let cached = self.tenants.lock().get(&tenant).cloned();
        let state = match cached {
            Some(state) => state,
            None => {
                let state = Arc::new(self.load(tenant)?);
                let mut tenants = self.tenants.lock();
                Arc::clone(tenants.entry(tenant).or_insert(state))
            }
        };
        let records = TenantRecords {
            records: self,
            id: tenant,
            state,
        };
        // An erasure that cannot finish now (a full disk, say) stays marked
        // for the next handle; its subject is unreachable already.
        if let Err(e) = records.finish_erasures() {
            tracing::warn!(tenant = tenant.0, error = %e, "an interrupted erasure could not be finished yet");
        }
        Ok(records)
    }

    fn load(&self, tenant: TenantId) -> Result<TenantState> {
        let handle = self.db.tenant(tenant);
        let (index_key, ledger) = read_ledger(&handle)?;
        let config = handle.get(keys::CONFIG)?.ok_or(Error::Corrupt {
            what: "tenant configuration",
            reason: "missing",
        })?;
        let config: TenantConfig = serde_json::from_slice(&config).map_err(|_| Error::Corrupt {
            what: "tenant configuration",
            reason: "not a configuration",
        })?;
        // Stored bytes are checked like a caller's (a threshold of 0 would
        // turn suppression off).
        config.validate().map_err(|_| Error::Corrupt {
            what: "tenant configuration",
            reason: "does not validate",
        })?;
        Ok(TenantState {
            config: RwLock::new(Arc::new(config)),
            members: RwLock::new(HashMap::new()),
            index_key,
            committed: RwLock::new(ledger.clone()),
            ledger_unsure: AtomicBool::new(false),
            finishing: Mutex::new(()),
            sweeping: Mutex::new(()),
            ledger: Mutex::new(ledger),
        })
    }
}

/// The tenant's index key and ledger as stored: `NotSetUp` without a meta;
/// a meta without an audit head is corrupt (starting the trail again would
/// write over it).
fn read_ledger(handle: &strongroom::Tenant<'_>) -> Result<(Zeroizing<[u8; 32]>, Ledger)> {
    let meta = handle
        .get(keys::META)?
        .ok_or(Error::NotSetUp(handle.id()))?;
    let (index_key, mut ledger) = decode_meta(&meta)?;
    let head = handle.get(keys::AUDIT_HEAD)?.ok_or(Error::Corrupt {
        what: "audit head",
        reason: "missing",
    })?;
    ledger.head = AuditHead::decode(&head)?;
    Ok((index_key, ledger))
}

/// A value the layer keeps as JSON (configuration, memberships).
pub(crate) fn json<T: serde::Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("configuration types serialise")
}

/// One tenant's records. Obtained from [`Records::tenant`] or
/// [`Records::set_up_tenant`]; cheap to clone.
#[derive(Clone)]
pub struct TenantRecords<'r> {
    pub(crate) records: &'r Records,
    pub(crate) id: TenantId,
    pub(crate) state: Arc<TenantState>,
}

impl<'r> TenantRecords<'r> {
    /// The tenant's id.
    pub fn id(&self) -> TenantId {
        self.id
    }

    pub(crate) fn engine(&self) -> strongroom::Tenant<'r> {
        self.records.db.tenant(self.id)
    }

    pub(crate) fn schema(&self) -> &'r Schema {
        &self.records.schema
    }

    /// The tenant's configuration.
    pub fn config(&self) -> TenantConfig {
        TenantConfig::clone(&self.configured())
    }

    /// The configuration in force, shared.
    pub(crate) fn configured(&self) -> Arc<TenantConfig> {
        Arc::clone(&self.state.config.read())
    }

    /// The ledger as of the last commit.
    pub(crate) fn committed(&self) -> Ledger {
        self.state.committed.read().clone()
    }

    /// The audit trail's head: keep a copy outside the database (with the
    /// time) to detect a rewrite of the whole trail later.
    pub fn audit_head(&self) -> AuditHead {
        self.state.committed.read().head
    }

    /// Commits what `build` adds to a batch, with an audit entry for
    /// `event` whose outcome is `outcome`, atomically. `build` runs under the
    /// tenant's commit lock (so its checks hold until the commit), may refuse
    /// the commit with an error, may name the event's subject, and may change
    /// the ledger (a copy, kept only if the commit succeeds); a changed
    /// ledger is written to the tenant's meta in the same batch.
    pub(crate) fn commit(
        &self,
        ctx: &Access,
        event: Event<'_>,
        outcome: &str,
        build: impl FnOnce(&mut WriteBatch, &mut Ledger, &mut Event<'_>) -> Result<()>,
    ) -> Result<Lsn> {
        self.commit_then(ctx, event, outcome, build, |()| {})
    }

    /// [`TenantRecords::commit`], then `after` with what `build` returned
    /// once the commit succeeded, still under the commit lock (for caches
    /// that must change in commit order).
    pub(crate) fn commit_then<T>(
        &self,
        ctx: &Access,
        event: Event<'_>,
        outcome: &str,
        build: impl FnOnce(&mut WriteBatch, &mut Ledger, &mut Event<'_>) -> Result<T>,
        after: impl FnOnce(T),
    ) -> Result<Lsn> {
        let mut event = event;
        let mut ledger = self.state.ledger.lock();
        if self.state.ledger_unsure.load(Ordering::Acquire) {
            // A write failed: it may have reached the log all the same, so
            // the ledger is read back rather than trusted (a reused number
            // would write over an entry).
            let (_, stored) = read_ledger(&self.engine())?;
            *self.state.committed.write() = stored.clone();
            *ledger = stored;
            self.state.ledger_unsure.store(false, Ordering::Release);
        }
        let mut next = ledger.clone();
        let mut batch = WriteBatch::new();
        let built = build(&mut batch, &mut next, &mut event)?;
        let entry = AuditEntry {
            seq: next.head.next_seq,
            time_us: self.records.now_us(),
            actor: ctx.actor.clone(),
            role: ctx.role.clone(),
            unit: ctx.unit.clone(),
            purpose: ctx.purpose.clone(),
            reason: ctx.reason.clone(),
            action: event.action.to_string(),
            subject: event.subject.map(|s| s.0),
            detail: event.detail,
            outcome: outcome.to_string(),
            prev_hash: next.head.last_hash,
        };
        let encoded = entry.encode();
        next.head = AuditHead {
            next_seq: entry.seq + 1,
            last_hash: audit::hash(&encoded),
        };
        batch.put(keys::audit(entry.seq), encoded);
        batch.put(keys::AUDIT_HEAD, next.head.encode());
        if (next.next_subject, next.releases, &next.erasing)
            != (ledger.next_subject, ledger.releases, &ledger.erasing)
        {
            batch.put(
                keys::META,
                encode_meta(&self.state.index_key, &next).to_vec(),
            );
        }
        let lsn = self.engine().write(batch).inspect_err(|_| {
            self.state.ledger_unsure.store(true, Ordering::Release);
        })?;
        *self.state.committed.write() = next.clone();
        *ledger = next;
        after(built);
        Ok(lsn)
    }

    /// Records a refusal in the trail, then returns it.
    pub(crate) fn deny<T>(&self, ctx: &Access, event: Event<'_>, error: Error) -> Result<T> {
        debug_assert!(error.is_denial());
        let outcome = format!("denied: {error}");
        self.commit(ctx, event, &outcome, |_, _, _| Ok(()))?;
        Err(error)
    }

    /// The member `actor`, from the cache or the tenant's scope.
    pub(crate) fn member(&self, actor: &str) -> Result<Option<Arc<Membership>>> {
        if let Some(m) = self.state.members.read().get(actor) {
            return Ok(Some(Arc::clone(m)));
        }
        // Filled under the commit lock, so that a fill never lands after a
        // change committed meanwhile (which would bring back a revoked
        // grant or a removed member).
        let _commits = self.state.ledger.lock();
        if let Some(m) = self.state.members.read().get(actor) {
            return Ok(Some(Arc::clone(m)));
        }
        let Some(bytes) = self.engine().get(&keys::member(actor))? else {
            return Ok(None);
        };
        let member: Membership = serde_json::from_slice(&bytes).map_err(|_| Error::Corrupt {
            what: "membership",
            reason: "not a membership",
        })?;
        let member = Arc::new(member);
        self.state
            .members
            .write()
            .insert(actor.to_string(), Arc::clone(&member));
        Ok(Some(member))
    }

    /// Checks `ctx` for every one of `permissions` (and, with a subject, that the subject
    /// is in reach and, if the purpose needs it, consents to it). A refusal
    /// is audited as `event` and returned. Returns what the member holds.
    pub(crate) fn authorize(
        &self,
        ctx: &Access,
        permissions: &[Permission],
        subject: Option<(SubjectId, &SubjectEntry)>,
        event: impl FnOnce() -> Event<'static>,
    ) -> Result<Granted> {
        match self.check(ctx, permissions, subject) {
            Err(e) if e.is_denial() => self.deny(ctx, event(), e),
            other => other,
        }
    }

    /// The checks of [`TenantRecords::authorize`], unaudited.
    pub(crate) fn check(
        &self,
        ctx: &Access,
        permissions: &[Permission],
        subject: Option<(SubjectId, &SubjectEntry)>,
    ) -> Result<Granted> {
        ctx.check_shape()?;
        let config = self.configured();
        let purpose = config.purpose(&ctx.purpose)?;
        config.unit(&ctx.unit)?;
        let member = self.member(&ctx.actor)?.ok_or_else(|| Error::NotMember {
            actor: ctx.actor.clone(),
        })?;
        if member.role != ctx.role {
            return Err(Error::WrongRole {
                actor: ctx.actor.clone(),
                role: ctx.role.clone(),
            });
        }
        if !config.within(&ctx.unit, &member.unit) {
            return Err(Error::OutsideUnit {
                unit: ctx.unit.clone(),
            });
        }
        config.role(&member.role)?;
        let granted = Granted {
            config: Arc::clone(&config),
            member,
        };
        if let Some(&permission) = permissions.iter().find(|&&p| !granted.holds(p)) {
            return Err(Error::Denied { permission });
        }
        if let Some((id, entry)) = subject {
            self.in_reach(ctx, entry)?;
            if purpose.needs_consent && !self.consent_is_live(id, &purpose.name)? {
                return Err(Error::ConsentMissing {
                    subject: id,
                    purpose: purpose.name.clone(),
                });
            }
        }
        Ok(granted)
    }

    /// Checks that a subject of unit `entry.unit` is within the caller's
    /// unit.
    pub(crate) fn in_reach(&self, ctx: &Access, entry: &SubjectEntry) -> Result<()> {
        if self.state.config.read().within(&entry.unit, &ctx.unit) {
            Ok(())
        } else {
            Err(Error::OutsideUnit {
                unit: entry.unit.clone(),
            })
        }
    }
}

/// What a member who passed [`TenantRecords::check`] holds.
pub(crate) struct Granted {
    config: Arc<TenantConfig>,
    member: Arc<Membership>,
}

impl Granted {
    /// Whether the member holds `permission`.
    pub(crate) fn holds(&self, permission: Permission) -> bool {
        // `check` found the role.
        self.config.role(&self.member.role).is_ok_and(|role| {
            policy::holds(
                role,
                &self.member.grants,
                &self.config.contact_roles,
                permission,
            )
        })
    }
}
