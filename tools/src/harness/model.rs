//! The parent's model of shreds: each target scope's own state as a set of
//! possibilities (live, sealed until a deadline in a range, destroyed),
//! built from the admin thread's acknowledged calls and widened by the one in
//! flight at the kill; a subject's state follows its tenant's as
//! `ScopeState` says.

use std::collections::BTreeMap;

use strongroom::ScopeState;

use super::protocol::{AdminAction, AdminEvent, Transcript};
use super::report::Stats;
use super::scope::Target;

/// A possible state of a scope's own shred (its tenant's is another scope's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Own {
    Live,
    /// Sealed until a deadline in `lo..=hi` (µs; exact once acknowledged).
    Sealed {
        lo: u64,
        hi: u64,
    },
    Destroyed,
}

/// A possible `ScopeState`: a scope's own state combined with its tenant's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Eff {
    Live,
    Sealed { lo: u64, hi: u64 },
    Shredded,
}

/// What `ScopeState` says of a scope whose tenant's own state is `tenant`
/// and whose own state (for a subject) is `subject`.
fn effective(tenant: Own, subject: Option<Own>) -> Eff {
    match (tenant, subject) {
        (Own::Destroyed, _) | (_, Some(Own::Destroyed)) => Eff::Shredded,
        (_, Some(Own::Sealed { lo, hi })) | (Own::Sealed { lo, hi }, _) => Eff::Sealed { lo, hi },
        (Own::Live, _) => Eff::Live,
    }
}

fn matches(found: ScopeState, eff: Eff) -> bool {
    match (found, eff) {
        (ScopeState::Live, Eff::Live) | (ScopeState::Shredded, Eff::Shredded) => true,
        (ScopeState::Sealed { deadline_us }, Eff::Sealed { lo, hi }) => {
            (lo..=hi).contains(&deadline_us)
        }
        _ => false,
    }
}

pub(crate) fn push_new<T: PartialEq>(set: &mut Vec<T>, item: T) {
    if !set.contains(&item) {
        set.push(item);
    }
}

/// Per target scope, the set of its possible own states.
#[derive(Debug)]
pub(crate) struct Model {
    pub own: BTreeMap<Target, Vec<Own>>,
}

impl Model {
    fn new(scopes: &[Target]) -> Model {
        Model {
            own: scopes.iter().map(|&t| (t, vec![Own::Live])).collect(),
        }
    }

    fn owns(&self, target: Target) -> Result<&Vec<Own>, String> {
        self.own
            .get(&target)
            .ok_or_else(|| format!("{target} is not a target of this kill point"))
    }

    /// The possible `ScopeState`s of `target`.
    fn effs(&self, target: Target) -> Vec<Eff> {
        let mut effs = Vec::new();
        for &tenant in &self.own[&target.tenant_scope()] {
            match target.subject {
                None => push_new(&mut effs, effective(tenant, None)),
                Some(_) => {
                    for &subject in &self.own[&target] {
                        push_new(&mut effs, effective(tenant, Some(subject)));
                    }
                }
            }
        }
        effs
    }

    fn certainly_shredded(&self, target: Target) -> bool {
        self.effs(target).iter().all(|e| *e == Eff::Shredded)
    }

    /// Whether `target` may have been shredded at time `at` (a seal whose
    /// deadline had passed may have been completed by then).
    fn may_be_shredded_at(&self, target: Target, at: u64) -> bool {
        let could = |o: &Own| match o {
            Own::Destroyed => true,
            Own::Sealed { lo, .. } => *lo <= at,
            Own::Live => false,
        };
        self.own[&target.tenant_scope()].iter().any(could)
            || (target.subject.is_some() && self.own[&target].iter().any(could))
    }

    /// Maintenance at time `now` has run: every seal due by then is
    /// destroyed.
    pub fn complete_due(&mut self, now: u64) {
        for owns in self.own.values_mut() {
            let mut next = Vec::new();
            for &own in owns.iter() {
                match own {
                    Own::Sealed { hi, .. } if hi <= now => push_new(&mut next, Own::Destroyed),
                    Own::Sealed { lo, hi } if lo <= now => {
                        push_new(&mut next, Own::Destroyed);
                        push_new(&mut next, Own::Sealed { lo: now + 1, hi });
                    }
                    other => push_new(&mut next, other),
                }
            }
            *owns = next;
        }
    }

    /// Keeps the possibilities that agree with `found`, the state read of
    /// `target` (a subject's after its tenant's).
    pub fn narrow(&mut self, target: Target, found: ScopeState) -> Result<(), String> {
        let before = self.effs(target);
        let tenants = self.own[&target.tenant_scope()].clone();
        let owns = self.own.get_mut(&target).expect("a target");
        owns.retain(|&own| match target.subject {
            None => matches(found, effective(own, None)),
            Some(_) => tenants
                .iter()
                .any(|&tenant| matches(found, effective(tenant, Some(own)))),
        });
        if owns.is_empty() {
            return Err(format!(
                "{target} is {found:?}, but its shreds allow only {before:?}"
            ));
        }
        Ok(())
    }
}

/// Replays the admin thread's report into a model of the targets' own states.
pub(crate) fn build_model(
    targets: &[Target],
    transcript: &Transcript,
    killed_us: u64,
    stats: &mut Stats,
) -> Result<Model, String> {
    let mut model = Model::new(targets);
    for event in &transcript.admin {
        match event {
            AdminEvent::Shredded {
                action:
                    AdminAction::Shred {
                        id,
                        target,
                        grace,
                        at_us,
                    },
                state,
            } => {
                model.owns(*target)?;
                let own = match (grace.is_zero(), *state) {
                    (true, ScopeState::Shredded) => {
                        stats.immediate_acked += 1;
                        Own::Destroyed
                    }
                    (false, ScopeState::Sealed { deadline_us })
                        if deadline_us >= at_us + grace.as_micros() as u64 =>
                    {
                        stats.grace_acked += 1;
                        Own::Sealed {
                            lo: deadline_us,
                            hi: deadline_us,
                        }
                    }
                    _ => {
                        return Err(format!(
                            "shred {id} of {target} with a grace of {grace:?}, issued at \
                             {at_us} µs, returned {state:?}"
                        ));
                    }
                };
                model.own.insert(*target, vec![own]);
            }
            AdminEvent::Cancelled {
                action: AdminAction::Cancel { id, target, at_us },
                was_sealed,
                end_us,
            } => {
                let owns = model.owns(*target)?;
                let possible = if *was_sealed {
                    owns.iter().any(|o| matches!(o, Own::Sealed { .. }))
                } else {
                    owns.contains(&Own::Live)
                };
                if !possible {
                    return Err(format!(
                        "cancel {id} of {target} (from {at_us} to {end_us} µs) returned \
                         {was_sealed}, but its own state can be only {owns:?}\n{}",
                        history(transcript, *target)
                    ));
                }
                if *was_sealed
                    && owns
                        .iter()
                        .any(|o| matches!(o, Own::Sealed { lo, .. } if lo <= end_us))
                {
                    // It raced the maintenance pass, and won.
                    stats.cancels_past_deadline += 1;
                }
                stats.cancels_acked += 1;
                model.own.insert(*target, vec![Own::Live]);
            }
            AdminEvent::Rotated {
                action: AdminAction::Rotate { id, tenant },
                version,
            } => {
                // A tenant's first key is version 1; a rotation adds one.
                if *version < 2 {
                    return Err(format!(
                        "rotation {id} of tenant {tenant} returned version {version}"
                    ));
                }
                stats.rotations_acked += 1;
            }
            AdminEvent::Refused {
                action,
                sealed,
                end_us,
            } => {
                let target = action.target();
                let owns = model.owns(target)?;
                let possible = if *sealed {
                    owns.iter().any(|o| matches!(o, Own::Sealed { .. }))
                } else {
                    model.may_be_shredded_at(target, *end_us)
                };
                if !possible {
                    return Err(format!(
                        "{} of {target} was refused as {}, but no shred of it or its tenant \
                         could have done that by then\n{}",
                        action.id(),
                        if *sealed { "sealed" } else { "shredded" },
                        history(transcript, target)
                    ));
                }
                match action {
                    AdminAction::Shred { .. } => stats.shreds_refused += 1,
                    AdminAction::Cancel { .. } => stats.cancels_refused += 1,
                    AdminAction::Rotate { .. } => stats.rotations_refused += 1,
                }
            }
            other => return Err(format!("protocol: mismatched shredder event {other:?}")),
        }
    }
    stats.deadlines_passed_in_child += model
        .own
        .values()
        .filter(|owns| matches!(owns[..], [Own::Sealed { hi, .. }] if hi < killed_us))
        .count() as u64;
    // The action in flight at the kill may or may not have taken effect.
    match &transcript.admin_in_flight {
        None => {}
        Some(AdminAction::Shred {
            target,
            grace,
            at_us,
            ..
        }) if !model.certainly_shredded(*target) => {
            let owns = model.own.get_mut(target).expect("checked when read");
            let grace_us = grace.as_micros() as u64;
            push_new(
                owns,
                if grace.is_zero() {
                    Own::Destroyed
                } else {
                    Own::Sealed {
                        lo: at_us + grace_us,
                        hi: killed_us + grace_us,
                    }
                },
            );
        }
        // Refused, surely: nothing changes.
        Some(AdminAction::Shred { .. }) => {}
        Some(AdminAction::Cancel { target, .. }) => {
            let owns = model.own.get_mut(target).expect("checked when read");
            if owns.iter().any(|o| matches!(o, Own::Sealed { .. })) {
                push_new(owns, Own::Live);
            }
        }
        // A rotation changes no scope's state.
        Some(AdminAction::Rotate { .. }) => {}
    }
    Ok(model)
}

/// Counts the admin thread's action in flight at the kill, and whether the
/// reopened database shows it done.
pub(crate) fn note_in_flight_admin(
    transcript: &Transcript,
    found: &BTreeMap<Target, ScopeState>,
    stats: &mut Stats,
) {
    let Some(action) = &transcript.admin_in_flight else {
        return;
    };
    match action {
        AdminAction::Shred { target, grace, .. } => {
            let state = found[target];
            if grace.is_zero() {
                stats.immediate_in_flight += 1;
                stats.immediate_in_flight_done += u64::from(state == ScopeState::Shredded);
            } else {
                stats.grace_in_flight += 1;
                stats.grace_in_flight_done += u64::from(state != ScopeState::Live);
            }
        }
        AdminAction::Cancel { target, .. } => {
            stats.cancel_in_flight += 1;
            stats.cancel_in_flight_done += u64::from(found[target] == ScopeState::Live);
        }
        AdminAction::Rotate { .. } => stats.rotations_in_flight += 1,
    }
}

/// The admin thread's actions on `target` and its tenant, for error messages.
pub(crate) fn history(transcript: &Transcript, target: Target) -> String {
    let concerns = |action: &AdminAction| {
        let t = action.target();
        t == target || t == target.tenant_scope()
    };
    let mut lines = vec![format!(
        "admin thread's actions on {target} and its tenant:"
    )];
    for event in &transcript.admin {
        let action = match event {
            AdminEvent::Shredded { action, .. }
            | AdminEvent::Cancelled { action, .. }
            | AdminEvent::Rotated { action, .. }
            | AdminEvent::Refused { action, .. } => action,
        };
        if concerns(action) {
            lines.push(format!("  {event:?}"));
        }
    }
    if let Some(action) = transcript.admin_in_flight.as_ref().filter(|a| concerns(a)) {
        lines.push(format!("  in flight at the kill: {action:?}"));
    }
    lines.join("\n")
}
