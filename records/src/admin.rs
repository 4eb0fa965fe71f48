//! Running a tenant: its members, their grants, its configuration, its
//! audit trail, and its deprovisioning.

use std::sync::Arc;
use std::time::Duration;

use strongroom::{ScopeState, ShredOptions};

use crate::access::Access;
use crate::audit::{self, AuditEntry, AuditProblem, AuditReport};
use crate::config::TenantConfig;
use crate::config::WHOLE_TENANT;
use crate::error::{Error, Result};
use crate::keys;
use crate::policy::{Membership, Permission};
use crate::tenant::{Event, TenantRecords, json};

/// How long a deprovisioned tenant is kept (sealed, cancellable) before its
/// keys are destroyed: one week.
pub const DEPROVISION_GRACE: Duration = Duration::from_secs(7 * 24 * 3600);

impl TenantRecords<'_> {
    /// Makes `actor` a member in `role` at `unit` (replacing any earlier
    /// membership and its grants). Needs `manage users`; `unit`, and the
    /// unit of any membership it replaces, must be within the caller's; no
    /// one changes their own membership. Audited.
    pub fn assign(&self, ctx: &Access, actor: &str, role: &str, unit: &str) -> Result<()> {
        let config = self.configured();
        config.role(role)?;
        config.unit(unit)?;
        let detail = format!("{actor} as {role} at {unit}");
        let event = || Event::new("member.assign", None, detail.clone());
        self.guard_member_change(ctx, actor, &event)?;
        if !config.within(unit, &ctx.unit) {
            let error = Error::OutsideUnit {
                unit: unit.to_string(),
            };
            return self.deny(ctx, event(), error);
        }
        let member = Membership {
            role: role.to_string(),
            unit: unit.to_string(),
            grants: Default::default(),
        };
        self.put_member(ctx, actor, event(), |_| Ok(member))
    }

    /// Grants `permission` (○ for the member's role) to member `actor`.
    /// Needs `manage users`, the member within the caller's unit, and not
    /// the caller. Audited.
    pub fn grant(&self, ctx: &Access, actor: &str, permission: Permission) -> Result<()> {
        self.change_grant(ctx, actor, permission, true)
    }

    /// Takes a granted permission back (as [`TenantRecords::grant`]).
    pub fn revoke(&self, ctx: &Access, actor: &str, permission: Permission) -> Result<()> {
        self.change_grant(ctx, actor, permission, false)
    }

    fn change_grant(
        &self,
        ctx: &Access,
        actor: &str,
        permission: Permission,
        give: bool,
    ) -> Result<()> {
        let action = if give {
            "member.grant"
        } else {
            "member.revoke"
        };
        let detail = format!("{permission} to {actor}");
        let event = || Event::new(action, None, detail.clone());
        self.guard_member_change(ctx, actor, &event)?;
        let config = self.configured();
        self.put_member(ctx, actor, event(), |stored| {
            let mut member = stored.ok_or_else(|| Error::NotMember {
                actor: actor.to_string(),
            })?;
            let role = config.role(&member.role)?;
            if give && (!permission.grantable_at_all() || !role.grantable.contains(&permission)) {
                return Err(Error::NotGrantable {
                    role: role.name.clone(),
                    permission,
                });
            }
            if give {
                member.grants.insert(permission);
            } else {
                member.grants.remove(&permission);
            }
            Ok(member)
        })
    }

    /// The checks every change of a membership passes: `manage users`,
    /// not the caller's own, and the member (if any) within the caller's
    /// unit. Refusals audited.
    fn guard_member_change(
        &self,
        ctx: &Access,
        actor: &str,
        event: &dyn Fn() -> Event<'static>,
    ) -> Result<()> {
        self.authorize(ctx, &[Permission::ManageUsers], None, event)?;
        if actor == ctx.actor {
            return self.deny(ctx, event(), Error::SelfAdministration);
        }
        if let Some(member) = self.member(actor)?
            && !self.configured().within(&member.unit, &ctx.unit)
        {
            let error = Error::OutsideUnit {
                unit: member.unit.clone(),
            };
            return self.deny(ctx, event(), error);
        }
        Ok(())
    }

    /// Writes member `actor` as `change` makes it from the stored
    /// membership, read and written under the commit lock (so two changes
    /// never undo each other), and the cache after the commit.
    fn put_member(
        &self,
        ctx: &Access,
        actor: &str,
        event: Event<'_>,
        change: impl FnOnce(Option<Membership>) -> Result<Membership>,
    ) -> Result<()> {
        self.commit_then(
            ctx,
            event,
            "ok",
            |batch, _, _| {
                let stored = match self.engine().get(&keys::member(actor))? {
                    Some(bytes) => {
                        Some(serde_json::from_slice(&bytes).map_err(|_| Error::Corrupt {
                            what: "membership",
                            reason: "not a membership",
                        })?)
                    }
                    None => None,
                };
                let member = change(stored)?;
                batch.put(keys::member(actor), json(&member));
                Ok(member)
            },
            |member| {
                self.state
                    .members
                    .write()
                    .insert(actor.to_string(), Arc::new(member));
            },
        )?;
        Ok(())
    }

    /// Removes member `actor` (as [`TenantRecords::grant`] checks). Audited.
    pub fn remove_member(&self, ctx: &Access, actor: &str) -> Result<()> {
        let detail = actor.to_string();
        let event = || Event::new("member.remove", None, detail.clone());
        self.guard_member_change(ctx, actor, &event)?;
        self.commit_then(
            ctx,
            event(),
            "ok",
            |batch, _, _| {
                batch.delete(keys::member(actor));
                Ok(())
            },
            |()| {
                self.state.members.write().remove(actor);
            },
        )?;
        Ok(())
    }

    /// Replaces the tenant's configuration. Needs `configure`, for the
    /// whole tenant (unit `*`). Audited, naming what changed.
    pub fn configure(&self, ctx: &Access, config: TenantConfig) -> Result<()> {
        config.validate()?;
        let before = self.configured();
        let changed: Vec<&str> = [
            ("roles", before.roles != config.roles),
            (
                "contact roles",
                before.contact_roles != config.contact_roles,
            ),
            ("units", before.units != config.units),
            ("purposes", before.purposes != config.purposes),
            ("small group", before.small_group != config.small_group),
        ]
        .into_iter()
        .filter_map(|(name, differs)| differs.then_some(name))
        .collect();
        let detail = format!("changed: {}", changed.join(", "));
        let event = || Event::new("configure", None, detail.clone());
        self.whole_tenant(ctx, Permission::Configure, &event)?;
        let config = Arc::new(config);
        self.commit_then(
            ctx,
            event(),
            "ok",
            |batch, _, _| {
                batch.put(keys::CONFIG, json(&*config));
                Ok(())
            },
            |()| *self.state.config.write() = Arc::clone(&config),
        )?;
        Ok(())
    }

    /// Checks `permission` for a call that acts on the whole tenant: the
    /// caller's unit must be `*`.
    pub(crate) fn whole_tenant(
        &self,
        ctx: &Access,
        permission: Permission,
        event: &dyn Fn() -> Event<'static>,
    ) -> Result<()> {
        self.authorize(ctx, &[permission], None, event)?;
        if ctx.unit != WHOLE_TENANT {
            let error = Error::OutsideUnit {
                unit: WHOLE_TENANT.to_string(),
            };
            return self.deny(ctx, event(), error);
        }
        Ok(())
    }

    /// Walks the whole audit trail and names every entry missing, out of
    /// place or changed. Needs `read audit`, for the whole tenant (the trail
    /// is the tenant's). Audited (after the walk).
    pub fn verify_audit(&self, ctx: &Access) -> Result<AuditReport> {
        let event = || Event::new("audit.verify", None, String::new());
        self.whole_tenant(ctx, Permission::ReadAudit, &event)?;
        let head = self.committed().head;
        let mut report = audit::verify(&self.engine(), head)?;
        // Past the end: probed under the commit lock, where no commit is in
        // flight, against the head as it is then.
        {
            let ledger = self.state.ledger.lock();
            if self
                .engine()
                .get(&keys::audit(ledger.head.next_seq))?
                .is_some()
            {
                report.problems.push(AuditProblem::PastTheEnd {
                    seq: ledger.head.next_seq,
                });
            }
        }
        let outcome = format!("{} problem(s)", report.problems.len());
        self.commit(ctx, event(), &outcome, |_, _, _| Ok(()))?;
        Ok(report)
    }

    /// Audit entries `from..to` (clamped to the trail), oldest first.
    /// Needs `read audit`, for the whole tenant. Audited.
    pub fn audit_entries(&self, ctx: &Access, from: u64, to: u64) -> Result<Vec<AuditEntry>> {
        let event = || Event::new("audit.read", None, format!("{from}..{to}"));
        self.whole_tenant(ctx, Permission::ReadAudit, &event)?;
        let entries = self.read_audit(from, to)?;
        self.commit(ctx, event(), "ok", |_, _, _| Ok(()))?;
        Ok(entries)
    }

    /// Entries `from..to` (clamped), unaudited, skipping missing ones.
    pub(crate) fn read_audit(&self, from: u64, to: u64) -> Result<Vec<AuditEntry>> {
        let end = to.min(self.state.committed.read().head.next_seq);
        let mut entries = Vec::new();
        for seq in from..end {
            if let Some(bytes) = self.engine().get(&keys::audit(seq))? {
                entries.push(AuditEntry::decode(&bytes)?);
            }
        }
        Ok(entries)
    }

    /// Deprovisions the tenant: it is sealed for `grace` (the default is
    /// [`DEPROVISION_GRACE`], a week), during which nothing reads or writes
    /// it and [`TenantRecords::cancel_deprovision`] can bring it back; then
    /// its keys are destroyed and nothing of it decrypts again, its trail
    /// included. Needs `deprovision`, for the whole tenant. Audited before
    /// the seal.
    pub fn deprovision(&self, ctx: &Access, grace: Duration) -> Result<ScopeState> {
        let event = || Event::new("deprovision", None, format!("grace {} s", grace.as_secs()));
        self.whole_tenant(ctx, Permission::Deprovision, &event)?;
        self.commit(ctx, event(), "ok", |_, _, _| Ok(()))?;
        Ok(self
            .records
            .db()
            .shred_tenant(self.id, ShredOptions::with_grace(grace))?)
    }

    /// Cancels a deprovisioning in its grace period; returns whether the
    /// tenant was sealed. A sealed tenant's store cannot be read, so the
    /// caller is checked against what this handle holds in memory (a member
    /// it has seen, with `deprovision`, at `*`) before the seal is lifted;
    /// one it has not seen is refused, and the operator's
    /// `strongroom cancel-shred` is the way. The cancel is audited once the
    /// seal is lifted; if that fails, the seal is put back.
    pub fn cancel_deprovision(&self, ctx: &Access) -> Result<bool> {
        let db = self.records.db();
        let ScopeState::Sealed { deadline_us } = db.tenant(self.id).state()? else {
            return Ok(false);
        };
        if !self.state.members.read().contains_key(&ctx.actor) {
            return Err(Error::NotMember {
                actor: ctx.actor.clone(),
            });
        }
        // Reads nothing from the store: the member is cached, the
        // configuration in memory.
        self.check(ctx, &[Permission::Deprovision], None)?;
        if ctx.unit != WHOLE_TENANT {
            return Err(Error::OutsideUnit {
                unit: WHOLE_TENANT.to_string(),
            });
        }
        if !db.cancel_shred_tenant(self.id)? {
            return Ok(false);
        }
        let event = Event::new("deprovision.cancel", None, String::new());
        if let Err(e) = self.commit(ctx, event, "ok", |_, _, _| Ok(())) {
            let left_us = deadline_us.saturating_sub(self.records.now_us());
            db.shred_tenant(
                self.id,
                ShredOptions::with_grace(Duration::from_micros(left_us)),
            )?;
            return Err(e);
        }
        Ok(true)
    }
}
