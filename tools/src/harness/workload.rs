//! The writers' workload: ops, as the child issues them and the parent
//! decodes them from its report, and their effect on a model of the records.

use std::collections::BTreeMap;

use rand::Rng;
use rand::rngs::StdRng;
use strongroom::{Db, Lsn, SubjectId, TenantId, WriteBatch};

use super::scope::Target;
use super::{IMPORT_SUBJECTS_MAX, KEPT_TENANTS, KEYS_PER_WRITER, PAD_MAX, SUBJECTS, WRITERS};

/// The records of the workload's key space: (scope, key) -> value.
pub(crate) type State = BTreeMap<(Target, String), Vec<u8>>;

pub(crate) fn key_name(thread: usize, n: usize) -> String {
    format!("t{thread}-k{n}")
}

/// The writer thread that owns `key`, if `key` is one of the workload's.
pub(crate) fn owner_of(key: &str) -> Option<usize> {
    let (thread, n) = key.strip_prefix('t')?.split_once("-k")?;
    let (thread, n): (usize, usize) = (thread.parse().ok()?, n.parse().ok()?);
    (thread < WRITERS && n < KEYS_PER_WRITER && key == key_name(thread, n)).then_some(thread)
}

/// Every place (scope, key) that writer `thread` may write in `scopes`.
pub(crate) fn places_of(thread: usize, scopes: &[Target]) -> Vec<(Target, String)> {
    scopes
        .iter()
        .flat_map(|&t| (0..KEYS_PER_WRITER).map(move |n| (t, key_name(thread, n))))
        .collect()
}

/// The value that item `index` of op `op_id` puts, with `pad` padding bytes:
/// even pads are compressible text, odd pads pseudo-random bytes.
pub(crate) fn value_of(op_id: &str, index: usize, pad: usize) -> Vec<u8> {
    let mut value = format!("v{op_id}.{index}|").into_bytes();
    let mut x = value.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    }) | 1;
    for i in 0..pad {
        if pad.is_multiple_of(2) {
            value.push(b'a' + (i % 26) as u8);
        } else {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            value.push((x >> 32) as u8);
        }
    }
    value
}

/// A value, briefly: the op that wrote it (values start with it) and length.
pub(crate) fn describe(value: Option<&Vec<u8>>) -> String {
    let Some(value) = value else {
        return "absent".into();
    };
    let head = value.split(|&b| b == b'|').next().unwrap_or_default();
    match std::str::from_utf8(head) {
        Ok(text) if head.len() < value.len() && text.starts_with('v') => {
            format!("{text} ({} bytes)", value.len())
        }
        _ => format!(
            "unrecognised value {:02x?}... ({} bytes)",
            &value[..value.len().min(24)],
            value.len()
        ),
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Item {
    Put {
        target: Target,
        key: String,
        pad: usize,
        value: Vec<u8>,
    },
    Delete {
        target: Target,
        key: String,
    },
}

impl Item {
    pub fn place(&self) -> (Target, &str) {
        match self {
            Item::Put { target, key, .. } | Item::Delete { target, key } => (*target, key),
        }
    }

    pub fn encode(&self) -> String {
        let (target, key) = self.place();
        let subject = target.subject.map_or("-".to_string(), |s| s.to_string());
        match self {
            Item::Put { pad, .. } => format!("P:{}:{subject}:{key}:{pad}", target.tenant),
            Item::Delete { .. } => format!("D:{}:{subject}:{key}", target.tenant),
        }
    }

    pub fn decode(op_id: &str, index: usize, text: &str) -> Result<Item, String> {
        let bad = || format!("malformed item {text:?} of op {op_id}");
        let fields: Vec<&str> = text.split(':').collect();
        let (kind, tenant, subject, key) = match fields[..] {
            [kind, tenant, subject, key, ..] => (kind, tenant, subject, key),
            _ => return Err(bad()),
        };
        let target = Target {
            tenant: tenant.parse().map_err(|_| bad())?,
            subject: match subject {
                "-" => None,
                s => Some(s.parse().map_err(|_| bad())?),
            },
        };
        let key = key.to_string();
        match (kind, &fields[4..]) {
            ("P", [pad]) => {
                let pad = pad.parse().map_err(|_| bad())?;
                Ok(Item::Put {
                    target,
                    key,
                    pad,
                    value: value_of(op_id, index, pad),
                })
            }
            ("D", []) => Ok(Item::Delete { target, key }),
            _ => Err(bad()),
        }
    }
}

/// How an op reaches the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum How {
    /// `put` or `delete` on the handle of the item's scope.
    Single,
    /// A `WriteBatch` written through the tenant's handle.
    BatchTenant,
    /// A `WriteBatch` written through a subject's handle: its items in that
    /// subject use `put`/`delete`, the others `put_subject`/`delete_subject`.
    BatchSubject(u64),
}

#[derive(Debug, Clone)]
pub(crate) struct Op {
    pub thread: usize,
    pub id: String,
    pub tenant: u64,
    pub how: How,
    pub items: Vec<Item>,
}

impl Op {
    pub fn encode(&self) -> String {
        let how = match self.how {
            How::Single => "single".to_string(),
            How::BatchTenant => "batch".to_string(),
            How::BatchSubject(s) => format!("batch@{s}"),
        };
        let items: Vec<String> = self.items.iter().map(Item::encode).collect();
        format!(
            "issue {} {} {how} {}",
            self.thread,
            self.id,
            items.join(";")
        )
    }

    /// Parses the words after `issue`.
    pub fn decode(rest: &str) -> Result<Op, String> {
        let bad = || format!("malformed issue line {rest:?}");
        let words: Vec<&str> = rest.split(' ').collect();
        let [thread, id, how, items] = words[..] else {
            return Err(bad());
        };
        let thread: usize = thread.parse().map_err(|_| bad())?;
        if thread >= WRITERS {
            return Err(bad());
        }
        let how = match how {
            "single" => How::Single,
            "batch" => How::BatchTenant,
            other => How::BatchSubject(
                other
                    .strip_prefix("batch@")
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(bad)?,
            ),
        };
        let items = items
            .split(';')
            .enumerate()
            .map(|(i, text)| Item::decode(id, i, text))
            .collect::<Result<Vec<_>, _>>()?;
        let tenant = items.first().ok_or_else(bad)?.place().0.tenant;
        Ok(Op {
            thread,
            id: id.to_string(),
            tenant,
            how,
            items,
        })
    }

    pub fn apply_to(&self, state: &mut State) {
        for item in &self.items {
            match item {
                Item::Put {
                    target, key, value, ..
                } => {
                    state.insert((*target, key.clone()), value.clone());
                }
                Item::Delete { target, key } => {
                    state.remove(&(*target, key.clone()));
                }
            }
        }
    }
}

/// An op of writer `thread`: on a kept tenant half the time, else on one of
/// this kill point's target tenants.
pub(crate) fn random_op(rng: &mut StdRng, thread: usize, id: String, targets: &[u64]) -> Op {
    let tenant = if rng.random_bool(0.5) {
        KEPT_TENANTS[rng.random_range(0..KEPT_TENANTS.len())]
    } else {
        targets[rng.random_range(0..targets.len())]
    };
    let own = Target::own(tenant);
    let subject = |rng: &mut StdRng| Target {
        tenant,
        subject: Some(SUBJECTS[rng.random_range(0..SUBJECTS.len())]),
    };
    let key = |rng: &mut StdRng| key_name(thread, rng.random_range(0..KEYS_PER_WRITER));
    let put = |rng: &mut StdRng, target: Target, key: String, index: usize| {
        let pad = rng.random_range(0..=PAD_MAX);
        Item::Put {
            target,
            key,
            pad,
            value: value_of(&id, index, pad),
        }
    };
    let roll = rng.random_range(0..100);
    let (how, items) = if roll < 30 {
        let k = key(rng);
        (How::Single, vec![put(rng, own, k, 0)])
    } else if roll < 55 {
        let (target, k) = (subject(rng), key(rng));
        (How::Single, vec![put(rng, target, k, 0)])
    } else if roll < 72 {
        let target = if rng.random_bool(0.4) {
            own
        } else {
            subject(rng)
        };
        let key = key(rng);
        (How::Single, vec![Item::Delete { target, key }])
    } else if roll < 80 {
        // An import: puts into several subjects of the tenant in one batch
        // (new ones create their keys as one group).
        let len = rng.random_range(2..=IMPORT_SUBJECTS_MAX);
        let mut subjects = SUBJECTS.to_vec();
        let mut items = Vec::with_capacity(len);
        for index in 0..len {
            let s = subjects.swap_remove(rng.random_range(0..subjects.len()));
            let target = Target {
                tenant,
                subject: Some(s),
            };
            let k = key(rng);
            items.push(put(rng, target, k, index));
        }
        (How::BatchTenant, items)
    } else {
        let how = if rng.random_bool(0.25) {
            How::BatchSubject(SUBJECTS[rng.random_range(0..SUBJECTS.len())])
        } else {
            How::BatchTenant
        };
        let len = rng.random_range(2..=4);
        let mut items: Vec<Item> = Vec::with_capacity(len);
        while items.len() < len {
            // A subject's handle reaches its tenant's subjects only.
            let target = if how == How::BatchTenant && rng.random_bool(0.35) {
                own
            } else {
                subject(rng)
            };
            let k = key(rng);
            if items.iter().any(|i| i.place() == (target, k.as_str())) {
                continue;
            }
            let index = items.len();
            items.push(if rng.random_bool(0.7) {
                put(rng, target, k, index)
            } else {
                Item::Delete { target, key: k }
            });
        }
        (how, items)
    };
    Op {
        thread,
        id,
        tenant,
        how,
        items,
    }
}

pub(crate) fn execute(db: &Db, op: &Op) -> strongroom::Result<Lsn> {
    let tenant = db.tenant(TenantId(op.tenant));
    if op.how == How::Single {
        let [item] = &op.items[..] else {
            unreachable!("a single op has one item")
        };
        let (target, key) = item.place();
        return match (item, target.subject) {
            (Item::Put { value, .. }, None) => tenant.put(key.as_bytes(), value),
            (Item::Put { value, .. }, Some(s)) => {
                tenant.subject(SubjectId(s)).put(key.as_bytes(), value)
            }
            (Item::Delete { .. }, None) => tenant.delete(key.as_bytes()),
            (Item::Delete { .. }, Some(s)) => tenant.subject(SubjectId(s)).delete(key.as_bytes()),
        };
    }
    let handle_subject = match op.how {
        How::BatchSubject(s) => Some(s),
        _ => None,
    };
    let mut batch = WriteBatch::new();
    for item in &op.items {
        let (target, key) = item.place();
        // Ops without a subject target the scope of the handle that writes.
        let via_handle = target.subject == handle_subject;
        match item {
            Item::Put { value, .. } if via_handle => batch.put(key, value.clone()),
            Item::Put { value, .. } => {
                let s = target
                    .subject
                    .expect("a subject handle reaches subjects only");
                batch.put_subject(SubjectId(s), key, value.clone())
            }
            Item::Delete { .. } if via_handle => batch.delete(key),
            Item::Delete { .. } => {
                let s = target
                    .subject
                    .expect("a subject handle reaches subjects only");
                batch.delete_subject(SubjectId(s), key)
            }
        };
    }
    match handle_subject {
        None => tenant.write(batch),
        Some(s) => tenant.subject(SubjectId(s)).write(batch),
    }
}
