//! Running a tenant: its members, their grants, its configuration, its
//! audit trail, and its deprovisioning.

use std::sync::Arc;
use std::time::Duration;

use strongroom::{ScopeState, ShredOptions};

use crate::access::Access;
use crate::audit::{self, AuditEntry, AuditReport};
use crate::config::TenantConfig;
use crate::error::{Error, Result};
use crate::keys;
use crate::policy::{Membership, Permission};
use crate::tenant::{Event, TenantRecords, json};

/// How long a deprovisioned tenant is kept (sealed, cancellable) before its
/// keys are destroyed: one week.
pub const DEPROVISION_GRACE: Duration = Duration::from_secs(7 * 24 * 3600);

impl TenantRecords<'_> {
    /// Makes `actor` a member in `role` at `unit` (replacing any earlier
    /// membership and its grants). Needs `manage users`. Audited.
    pub fn assign(&self, ctx: &Access, actor: &str, role: &str, unit: &str) -> Result<()> {
        let config = self.configured();
        config.role(role)?;
        config.unit(unit)?;
        let detail = format!("{actor} as {role} at {unit}");
        let event = || Event::new("member.assign", None, detail.clone());
        self.authorize(ctx, &[Permission::ManageUsers], None, event)?;
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
        self.put_member(ctx, actor, member, event())
    }

    /// Grants `permission` (○ for the member's role) to member `actor`.
    /// Needs `manage users`. Audited.
    pub fn grant(&self, ctx: &Access, actor: &str, permission: Permission) -> Result<()> {
        self.change_grant(ctx, actor, permission, true)
    }

    /// Takes a granted permission back. Needs `manage users`. Audited.
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
        self.authorize(ctx, &[Permission::ManageUsers], None, event)?;
        let mut member =
            Membership::clone(&*self.member(actor)?.ok_or_else(|| Error::NotMember {
                actor: actor.to_string(),
            })?);
        let config = self.configured();
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
        self.put_member(ctx, actor, member, event())
    }

    fn put_member(
        &self,
        ctx: &Access,
        actor: &str,
        member: Membership,
        event: Event<'_>,
    ) -> Result<()> {
        self.commit(ctx, event, "ok", |batch, _, _| {
            batch.put(keys::member(actor), json(&member));
            Ok(())
        })?;
        self.state
            .members
            .write()
            .insert(actor.to_string(), Arc::new(member));
        Ok(())
    }

    /// Removes member `actor`. Needs `manage users`. Audited.
    pub fn remove_member(&self, ctx: &Access, actor: &str) -> Result<()> {
        let detail = actor.to_string();
        let event = || Event::new("member.remove", None, detail.clone());
        self.authorize(ctx, &[Permission::ManageUsers], None, event)?;
        self.commit(ctx, event(), "ok", |batch, _, _| {
            batch.delete(keys::member(actor));
            Ok(())
        })?;
        self.state.members.write().remove(actor);
        Ok(())
    }

    /// Replaces the tenant's configuration. Needs `manage users`. Audited.
    pub fn configure(&self, ctx: &Access, config: TenantConfig) -> Result<()> {
        config.validate()?;
        let event = || Event::new("configure", None, String::new());
        self.authorize(ctx, &[Permission::ManageUsers], None, event)?;
        self.commit(ctx, event(), "ok", |batch, _, _| {
            batch.put(keys::CONFIG, json(&config));
            Ok(())
        })?;
        *self.state.config.write() = Arc::new(config);
        Ok(())
    }

    /// Walks the whole audit trail and names every entry missing, out of
    /// place or changed. Needs `read audit`. Audited (after the walk).
    pub fn verify_audit(&self, ctx: &Access) -> Result<AuditReport> {
        let event = || Event::new("audit.verify", None, String::new());
        self.authorize(ctx, &[Permission::ReadAudit], None, event)?;
        let head = self.committed().head;
        let report = audit::verify(&self.engine(), head)?;
        let outcome = format!("{} problem(s)", report.problems.len());
        self.commit(ctx, event(), &outcome, |_, _, _| Ok(()))?;
        Ok(report)
    }

    /// Audit entries `from..to` (clamped to the trail), oldest first.
    /// Needs `read audit`. Audited.
    pub fn audit_entries(&self, ctx: &Access, from: u64, to: u64) -> Result<Vec<AuditEntry>> {
        let event = || Event::new("audit.read", None, format!("{from}..{to}"));
        self.authorize(ctx, &[Permission::ReadAudit], None, event)?;
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
    /// included. Needs `deprovision`. Audited before the seal.
    pub fn deprovision(&self, ctx: &Access, grace: Duration) -> Result<ScopeState> {
        let event = || Event::new("deprovision", None, format!("grace {} s", grace.as_secs()));
        self.authorize(ctx, &[Permission::Deprovision], None, event)?;
        self.commit(ctx, event(), "ok", |_, _, _| Ok(()))?;
        Ok(self
            .records
            .db()
            .shred_tenant(self.id, ShredOptions::with_grace(grace))?)
    }

    /// Cancels a deprovisioning in its grace period; returns whether the
    /// tenant was sealed. The caller's membership cannot be checked while
    /// the tenant is sealed: it is checked, and the cancel audited, once the
    /// seal is lifted (and the seal put back if the check fails).
    pub fn cancel_deprovision(&self, ctx: &Access) -> Result<bool> {
        let db = self.records.db();
        let before = db.tenant(self.id).state()?;
        if !db.cancel_shred_tenant(self.id)? {
            return Ok(false);
        }
        let event = || Event::new("deprovision.cancel", None, String::new());
        match self.authorize(ctx, &[Permission::Deprovision], None, event) {
            Ok(_) => {
                self.commit(ctx, event(), "ok", |_, _, _| Ok(()))?;
                Ok(true)
            }
            Err(e) => {
                if let ScopeState::Sealed { deadline_us } = before {
                    let left_us = deadline_us.saturating_sub(self.records.now_us());
                    db.shred_tenant(
                        self.id,
                        ShredOptions::with_grace(Duration::from_micros(left_us)),
                    )?;
                }
                Err(e)
            }
        }
    }
}
