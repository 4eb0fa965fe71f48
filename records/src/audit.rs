//! The audit trail: one hash chain per tenant, in the tenant's scope (so
//! sealed under the tenant's key, and destroyed only with the tenant).
//!
//! Entry `n` is stored at `r/audit/<n>` and holds the hash of entry `n - 1`;
//! the head (`r/audit-head`) holds the next number and the last entry's
//! hash. An entry is written in the same engine batch as the change it
//! records, so a change is never without its entry, nor an entry without its
//! change. Entries about a subject name it by number only; they hold field
//! names, never values, so the trail outlives a subject's erasure without
//! holding its personal data.
//!
//! `verify` walks the chain and names every entry that is missing, out of
//! place, changed or undecodable. What it cannot see is a rewrite of the
//! whole chain by someone who can write the tenant's scope: for that, keep
//! the head ([`crate::TenantRecords::audit_head`]) somewhere else too.

use serde::Serialize;
use strongroom::{SubjectId, Tenant};

use crate::codec::{Reader, Writer};
use crate::error::{Error, Result};
use crate::keys;

const ENTRY_VERSION: u8 = 1;
const HEAD_VERSION: u8 = 1;

/// The hash of "no entry before this one".
pub(crate) const GENESIS: [u8; 32] = [0; 32];

/// One audit entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    /// Its number in the tenant's trail.
    pub seq: u64,
    /// When (µs since the Unix epoch).
    pub time_us: u64,
    /// Who.
    pub actor: String,
    /// In which role.
    pub role: String,
    /// In which unit.
    pub unit: String,
    /// For which purpose.
    pub purpose: String,
    /// Why.
    pub reason: String,
    /// What was done (`read`, `write`, `consent.opt_in`, `erase`...).
    pub action: String,
    /// The subject it concerned, by number.
    pub subject: Option<u64>,
    /// What it touched: record types and ids, field names, never values.
    pub detail: String,
    /// `ok`, or why it was refused.
    pub outcome: String,
    /// The hash of the entry before it.
    #[serde(skip)]
    pub(crate) prev_hash: [u8; 32],
}

impl AuditEntry {
    /// Format: `version u8 = 1 | seq u64 | time_us u64 | actor | role | unit
    /// | purpose | reason | action | subject opt u64 | detail | outcome |
    /// prev_hash [32]`, text as `len u32 | UTF-8`.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new(ENTRY_VERSION);
        w.u64(self.seq).u64(self.time_us);
        for text in [
            &self.actor,
            &self.role,
            &self.unit,
            &self.purpose,
            &self.reason,
            &self.action,
        ] {
            w.str(text);
        }
        w.opt_u64(self.subject).str(&self.detail).str(&self.outcome);
        w.bytes(&self.prev_hash);
        w.finish()
    }

    /// Inverse of [`AuditEntry::encode`].
    pub(crate) fn decode(bytes: &[u8]) -> Result<AuditEntry> {
        let mut r = Reader::new(bytes, "audit entry", ENTRY_VERSION)?;
        let seq = r.u64()?;
        let time_us = r.u64()?;
        let mut text = || r.string();
        let (actor, role, unit, purpose, reason, action) =
            (text()?, text()?, text()?, text()?, text()?, text()?);
        let subject = r.opt_u64()?;
        let detail = r.string()?;
        let outcome = r.string()?;
        let prev_hash = r
            .bytes()?
            .try_into()
            .map_err(|_| r.corrupt("a hash that is not 32 bytes"))?;
        r.end()?;
        Ok(AuditEntry {
            seq,
            time_us,
            actor,
            role,
            unit,
            purpose,
            reason,
            action,
            subject,
            detail,
            outcome,
            prev_hash,
        })
    }

    /// Whether the entry concerns subject `s`.
    pub fn concerns(&self, s: SubjectId) -> bool {
        self.subject == Some(s.0)
    }
}

/// The chain's hash of an encoded entry.
pub(crate) fn hash(encoded: &[u8]) -> [u8; 32] {
    *blake3::hash(encoded).as_bytes()
}

/// The head of a tenant's trail: the number the next entry takes, and the
/// hash of the last one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditHead {
    /// Entries so far (the next entry's number).
    pub next_seq: u64,
    /// The last entry's hash (all zeros before the first).
    pub last_hash: [u8; 32],
}

impl AuditHead {
    pub(crate) const EMPTY: AuditHead = AuditHead {
        next_seq: 0,
        last_hash: GENESIS,
    };

    /// Format: `version u8 = 1 | next_seq u64 | last_hash len u32 | [32]`.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new(HEAD_VERSION);
        w.u64(self.next_seq).bytes(&self.last_hash);
        w.finish()
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<AuditHead> {
        let mut r = Reader::new(bytes, "audit head", HEAD_VERSION)?;
        let next_seq = r.u64()?;
        let last_hash = r
            .bytes()?
            .try_into()
            .map_err(|_| r.corrupt("a hash that is not 32 bytes"))?;
        r.end()?;
        Ok(AuditHead {
            next_seq,
            last_hash,
        })
    }
}

/// Something wrong in an audit trail, naming the entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditProblem {
    /// Entry `seq` is not there.
    Missing {
        /// The entry.
        seq: u64,
    },
    /// The place of entry `seq` holds entry `holds`: entries were moved or
    /// reordered.
    OutOfPlace {
        /// The place.
        seq: u64,
        /// The number the entry there carries.
        holds: u64,
    },
    /// Entry `seq` is not what was chained: its hash is not the one the next
    /// entry (or the head) holds.
    Changed {
        /// The entry.
        seq: u64,
    },
    /// Entry `seq` does not decode.
    Undecodable {
        /// The entry.
        seq: u64,
    },
    /// There is an entry past the head's end.
    PastTheEnd {
        /// The entry.
        seq: u64,
    },
}

/// What [`crate::TenantRecords::verify_audit`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditReport {
    /// Entries checked.
    pub entries: u64,
    /// Every problem, in entry order; empty when the trail is whole.
    pub problems: Vec<AuditProblem>,
}

/// Walks tenant `tenant`'s trail from the first entry to the head (the
/// caller probes past the end).
///
/// A broken link between entries `k - 1` and `k` says one of the two is not
/// what was chained; the next link decides which: if entry `k + 1` (or the
/// head, for the last) holds entry `k`'s hash, entry `k` is the one chained
/// and `k - 1` changed; otherwise `k` did.
pub(crate) fn verify(tenant: &Tenant<'_>, head: AuditHead) -> Result<AuditReport> {
    let mut problems = Vec::new();
    // The previous entry's hash, if it was readable and in place.
    let mut prev: Option<[u8; 32]> = Some(GENESIS);
    // A broken link into entry `seq`, waiting for the next link to say
    // which side of it changed: (seq, entry seq's hash).
    let mut broken: Option<(u64, [u8; 32])> = None;
    for seq in 0..head.next_seq {
        let read = match tenant.get(&keys::audit(seq))? {
            None => Err(AuditProblem::Missing { seq }),
            Some(bytes) => match AuditEntry::decode(&bytes) {
                Ok(entry) if entry.seq != seq => Err(AuditProblem::OutOfPlace {
                    seq,
                    holds: entry.seq,
                }),
                Ok(entry) => Ok((entry, hash(&bytes))),
                Err(Error::Corrupt { .. }) => Err(AuditProblem::Undecodable { seq }),
                Err(e) => return Err(e),
            },
        };
        let (entry, entry_hash) = match read {
            Ok(read) => read,
            Err(problem) => {
                // A pending broken link cannot be settled: blame its entry.
                if let Some((k, _)) = broken.take() {
                    problems.push(AuditProblem::Changed { seq: k });
                }
                problems.push(problem);
                prev = None;
                continue;
            }
        };
        if let Some((k, k_hash)) = broken.take() {
            let blamed = if k > 0 && entry.prev_hash == k_hash {
                k - 1
            } else {
                k
            };
            problems.push(AuditProblem::Changed { seq: blamed });
        }
        match prev {
            Some(p) if p != entry.prev_hash => broken = Some((seq, entry_hash)),
            _ => {}
        }
        prev = Some(entry_hash);
    }
    if let Some((k, k_hash)) = broken.take() {
        let blamed = if k > 0 && head.last_hash == k_hash {
            k - 1
        } else {
            k
        };
        problems.push(AuditProblem::Changed { seq: blamed });
    } else if head.next_seq > 0 && prev.is_some_and(|p| p != head.last_hash) {
        problems.push(AuditProblem::Changed {
            seq: head.next_seq - 1,
        });
    }
    problems.sort_by_key(problem_seq);
    problems.dedup();
    Ok(AuditReport {
        entries: head.next_seq,
        problems,
    })
}

fn problem_seq(problem: &AuditProblem) -> u64 {
    match *problem {
        AuditProblem::Missing { seq }
        | AuditProblem::OutOfPlace { seq, .. }
        | AuditProblem::Changed { seq }
        | AuditProblem::Undecodable { seq }
        | AuditProblem::PastTheEnd { seq } => seq,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> AuditEntry {
        AuditEntry {
            seq: 7,
            time_us: 1_700_000_000_000_000,
            actor: "staff-17".into(),
            role: "caseworker".into(),
            unit: "north".into(),
            purpose: "care".into(),
            reason: "annual review".into(),
            action: "read".into(),
            subject: Some(42),
            detail: "profile/0: name".into(),
            outcome: "ok".into(),
            prev_hash: [9; 32],
        }
    }

    #[test]
    fn entries_and_heads_round_trip_and_every_cut_is_an_error() {
        let bytes = entry().encode();
        assert_eq!(AuditEntry::decode(&bytes).unwrap(), entry());
        for cut in 0..bytes.len() {
            assert!(AuditEntry::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let head = AuditHead {
            next_seq: 3,
            last_hash: [1; 32],
        };
        assert_eq!(AuditHead::decode(&head.encode()).unwrap(), head);
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(AuditEntry::decode(&longer).is_err());
    }
}
