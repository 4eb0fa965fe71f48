//! The child's report: one line per event on its stdout, flushed at once.
//! The parent reads it as it comes (to time some kills) and whole after the
//! kill; the kill may cut the last line short, so only whole lines count.
//!
//! Writer threads (`<how>` and `<item>` as `Op::encode` writes them):
//!
//! ```text
//! opened                                          (Db::open returned)
//! issue <thread> <opid> <how> <item>;<item>...    (before the call)
//! ack <thread> <opid> <lsn> <time>                (after it returned Ok)
//! refused <thread> <opid> <sealed|shredded> <scope>
//!                          (it failed with Error::Sealed/Shredded; not applied)
//! err <thread|admin|-> <opid|open> <error>        (then the child exits)
//! ```
//!
//! `<how>` is `single` (`put`/`delete` on the item's scope), `batch` (a
//! `WriteBatch` through the tenant's handle) or `batch@<subject>` (through a
//! subject's handle). An item is `P:<tenant>:<subject|->:<key>:<pad>` (a put
//! whose value `value_of` rebuilds) or `D:<tenant>:<subject|->:<key>`.
//!
//! The admin thread (one action at a time; times are the system clock's, in
//! µs since the epoch):
//!
//! ```text
//! shred-issue <sid> <scope> <grace ms> <time>     (before the call)
//! shred-ack <sid> <live|shredded|sealed:<deadline>>
//! shred-refused <sid> <time>                      (Error::Shredded)
//! cancel-issue <sid> <scope> <time>
//! cancel-ack <sid> <true|false> <time>            (time: after the return)
//! cancel-refused <sid> <time>                     (Error::Shredded)
//! rotate-issue <sid> <tenant>
//! rotate-ack <sid> <version>
//! rotate-refused <sid> <sealed|shredded> <time>
//! ```
//!
//! A `<scope>` is `<tenant>` or `<tenant>/<subject>`.

use std::collections::BTreeSet;
use std::time::Duration;

use strongroom::ScopeState;

use super::WRITERS;
use super::report::Stats;
use super::scope::{Target, is_kept, scopes_of, target_tenants};
use super::workload::{Op, State};

pub(crate) fn encode_state(state: ScopeState) -> String {
    match state {
        ScopeState::Live => "live".into(),
        ScopeState::Shredded => "shredded".into(),
        ScopeState::Sealed { deadline_us } => format!("sealed:{deadline_us}"),
    }
}

pub(crate) fn decode_state(text: &str) -> Option<ScopeState> {
    match text {
        "live" => Some(ScopeState::Live),
        "shredded" => Some(ScopeState::Shredded),
        other => Some(ScopeState::Sealed {
            deadline_us: other.strip_prefix("sealed:")?.parse().ok()?,
        }),
    }
}

/// What the parent's kill schedule listens for while the child runs.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Signal {
    /// The child opened the database.
    Opened,
    /// The admin thread began a shred or a cancel.
    AdminCall,
    /// A shred returned a seal with this deadline.
    Sealed { deadline_us: u64 },
}

/// The signal a whole line carries, if any.
pub(crate) fn signal_of(line: &str) -> Option<Signal> {
    let words: Vec<&str> = line.split_whitespace().collect();
    match words[..] {
        ["opened"] => Some(Signal::Opened),
        ["shred-issue" | "cancel-issue", ..] => Some(Signal::AdminCall),
        ["shred-ack", _, state] => match decode_state(state)? {
            ScopeState::Sealed { deadline_us } => Some(Signal::Sealed { deadline_us }),
            _ => None,
        },
        _ => None,
    }
}

/// A call of the admin thread.
#[derive(Debug, Clone)]
pub(crate) enum AdminAction {
    Shred {
        id: String,
        target: Target,
        grace: Duration,
        at_us: u64,
    },
    Cancel {
        id: String,
        target: Target,
        at_us: u64,
    },
    /// A rotation of a tenant's key (a kept tenant's or a target's).
    Rotate { id: String, tenant: u64 },
}

impl AdminAction {
    pub fn id(&self) -> &str {
        match self {
            AdminAction::Shred { id, .. }
            | AdminAction::Cancel { id, .. }
            | AdminAction::Rotate { id, .. } => id,
        }
    }

    /// The scope it acts on.
    pub fn target(&self) -> Target {
        match self {
            AdminAction::Shred { target, .. } | AdminAction::Cancel { target, .. } => *target,
            AdminAction::Rotate { tenant, .. } => Target::own(*tenant),
        }
    }
}

/// The admin thread's finished actions, in order.
#[derive(Debug, Clone)]
pub(crate) enum AdminEvent {
    Shredded {
        action: AdminAction,
        state: ScopeState,
    },
    Cancelled {
        action: AdminAction,
        was_sealed: bool,
        end_us: u64,
    },
    Rotated {
        action: AdminAction,
        version: u32,
    },
    /// Refused with `Error::Sealed` (`sealed`) or `Error::Shredded`
    /// (`end_us`: just after the call).
    Refused {
        action: AdminAction,
        sealed: bool,
        end_us: u64,
    },
}

/// What the child reported before it was killed.
pub(crate) struct Transcript {
    pub opened: bool,
    /// Per writer thread, the op issued and not answered, if any.
    pub in_flight: Vec<Option<Op>>,
    pub admin: Vec<AdminEvent>,
    pub admin_in_flight: Option<AdminAction>,
    /// Every acknowledged write: (its LSN, the system's time just after).
    pub acks: Vec<(u64, u64)>,
}

/// Reads the child's report, applying every acknowledged write to `state`
/// in order; returns what was in flight at the kill and the admin thread's
/// events.
pub(crate) fn read_transcript(
    stdout: &[u8],
    iteration: u64,
    state: &mut State,
    stats: &mut Stats,
) -> Result<Transcript, String> {
    let text = String::from_utf8_lossy(stdout);
    // The kill may cut the last line short: only whole lines count.
    let whole = text.rfind('\n').map_or("", |end| &text[..end]);
    let mut transcript = Transcript {
        opened: false,
        in_flight: vec![None; WRITERS],
        admin: Vec::new(),
        admin_in_flight: None,
        acks: Vec::new(),
    };
    let targets = scopes_of(&target_tenants(iteration));
    // Scopes a shred was issued for, so far: only they (or their tenant's)
    // may refuse a write.
    let mut shred_issued: BTreeSet<Target> = BTreeSet::new();
    for line in whole.lines() {
        let event = line;
        let (word, rest) = event.split_once(' ').unwrap_or((event, ""));
        let words: Vec<&str> = rest.split(' ').collect();
        let bad = || format!("malformed line {event:?}");
        let number = |text: &str| text.parse::<u64>().map_err(|_| bad());
        let scope = |text: &str| {
            Target::decode(text)
                .filter(|t| targets.contains(t))
                .ok_or_else(|| format!("line {event:?} names no target of this kill point"))
        };
        match word {
            "opened" => transcript.opened = true,
            "issue" => {
                let op = Op::decode(rest)?;
                stats.issued += 1;
                let expected = target_tenants(iteration);
                if !is_kept(op.tenant) && !expected.contains(&op.tenant) {
                    return Err(format!("op {} writes to tenant {}", op.id, op.tenant));
                }
                let slot = &mut transcript.in_flight[op.thread];
                if let Some(previous) = slot {
                    return Err(format!(
                        "protocol: thread {} issued op {} while op {} was not answered",
                        op.thread, op.id, previous.id
                    ));
                }
                *slot = Some(op);
            }
            "ack" | "refused" => {
                let [thread, id, ..] = words[..] else {
                    return Err(bad());
                };
                let thread: usize = thread.parse().map_err(|_| bad())?;
                let slot = transcript.in_flight.get_mut(thread).ok_or_else(bad)?;
                let op = match slot.take() {
                    Some(op) if op.id == id => op,
                    other => {
                        return Err(format!(
                            "protocol: thread {thread} answered op {id} but had issued {:?}",
                            other.map(|op| op.id)
                        ));
                    }
                };
                if word == "ack" {
                    let [_, _, lsn, at_us] = words[..] else {
                        return Err(bad());
                    };
                    transcript.acks.push((number(lsn)?, number(at_us)?));
                    op.apply_to(state);
                    stats.acked += 1;
                    continue;
                }
                let [_, _, why, refused_scope] = words[..] else {
                    return Err(bad());
                };
                let refused_scope = Target::decode(refused_scope).ok_or_else(bad)?;
                if is_kept(op.tenant)
                    || !op.items.iter().any(|i| i.place().0 == refused_scope)
                    || !(shred_issued.contains(&refused_scope)
                        || shred_issued.contains(&refused_scope.tenant_scope()))
                {
                    return Err(format!(
                        "op {} ({}) was refused, {why} in {refused_scope}, before any shred of \
                         that scope or its tenant was issued",
                        op.id,
                        op.encode()
                    ));
                }
                match why {
                    "sealed" => stats.refused_sealed += 1,
                    "shredded" => stats.refused_shredded += 1,
                    _ => return Err(bad()),
                }
            }
            "shred-issue" | "cancel-issue" | "rotate-issue" => {
                if let Some(previous) = &transcript.admin_in_flight {
                    return Err(format!(
                        "protocol: the admin thread began {event:?} during {previous:?}"
                    ));
                }
                let action = match (word, &words[..]) {
                    ("shred-issue", [id, target, grace_ms, at_us]) => AdminAction::Shred {
                        id: id.to_string(),
                        target: scope(target)?,
                        grace: Duration::from_millis(number(grace_ms)?),
                        at_us: number(at_us)?,
                    },
                    ("cancel-issue", [id, target, at_us]) => AdminAction::Cancel {
                        id: id.to_string(),
                        target: scope(target)?,
                        at_us: number(at_us)?,
                    },
                    ("rotate-issue", [id, tenant]) => AdminAction::Rotate {
                        id: id.to_string(),
                        tenant: number(tenant)?,
                    },
                    _ => return Err(bad()),
                };
                let tenant = action.target().tenant;
                if !is_kept(tenant) && !target_tenants(iteration).contains(&tenant) {
                    return Err(format!("{event:?} acts on tenant {tenant}"));
                }
                if let AdminAction::Shred { target, .. } = &action {
                    shred_issued.insert(*target);
                }
                transcript.admin_in_flight = Some(action);
            }
            "shred-ack" | "shred-refused" | "cancel-ack" | "cancel-refused" | "rotate-ack"
            | "rotate-refused" => {
                let action = transcript
                    .admin_in_flight
                    .take()
                    .ok_or_else(|| format!("protocol: {event:?} answers no admin action"))?;
                if words.first() != Some(&action.id()) {
                    return Err(format!("protocol: {event:?} answers {action:?}"));
                }
                let is_shred = matches!(action, AdminAction::Shred { .. });
                let is_cancel = matches!(action, AdminAction::Cancel { .. });
                if let AdminAction::Rotate { tenant, .. } = action {
                    let refusable = shred_issued.contains(&Target::own(tenant));
                    if word == "rotate-refused" && !refusable {
                        return Err(format!(
                            "{event:?}: tenant {tenant}'s rotation was refused before any shred \
                             of the tenant was issued"
                        ));
                    }
                }
                transcript.admin.push(match (word, &words[1..]) {
                    ("shred-ack", [state]) if is_shred => AdminEvent::Shredded {
                        action,
                        state: decode_state(state).ok_or_else(bad)?,
                    },
                    ("cancel-ack", [was_sealed, end_us]) if is_cancel => AdminEvent::Cancelled {
                        action,
                        was_sealed: was_sealed.parse().map_err(|_| bad())?,
                        end_us: number(end_us)?,
                    },
                    ("shred-refused", [end_us]) if is_shred => AdminEvent::Refused {
                        action,
                        sealed: false,
                        end_us: number(end_us)?,
                    },
                    ("cancel-refused", [end_us]) if is_cancel => AdminEvent::Refused {
                        action,
                        sealed: false,
                        end_us: number(end_us)?,
                    },
                    ("rotate-ack", [version]) if !is_shred && !is_cancel => AdminEvent::Rotated {
                        action,
                        version: version.parse().map_err(|_| bad())?,
                    },
                    ("rotate-refused", [why @ ("sealed" | "shredded"), end_us])
                        if !is_shred && !is_cancel =>
                    {
                        AdminEvent::Refused {
                            action,
                            sealed: *why == "sealed",
                            end_us: number(end_us)?,
                        }
                    }
                    _ => return Err(bad()),
                });
            }
            "err" => return Err(format!("the child's call failed: {event}")),
            _ => return Err(format!("unknown line from the child: {line:?}")),
        }
    }
    Ok(transcript)
}
