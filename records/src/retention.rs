//! Retention: records of a type with a retention period are purged once it
//! has run (from creation, last change, or the end of the subject's
//! relationship with the tenant), by a sweep the application runs (daily,
//! say).
//!
//! Each purge is one engine batch: the record's deletion, its audit entry,
//! and the sweep's progress mark. So a crash leaves every record either
//! whole or purged-and-audited, and the next sweep resumes from the mark,
//! with the same "now" as the one interrupted (so it purges exactly what
//! that one would have).

use strongroom::SubjectId;

use crate::access::Access;
use crate::codec::{Reader, Writer};
use crate::error::{Error, Result};
use crate::keys;
use crate::policy::Permission;
use crate::record::StoredRecord;
use crate::schema::{RecordType, RetentionFrom};
use crate::subjects::SubjectEntry;
use crate::tenant::{Event, TenantRecords};

/// What a sweep did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SweepReport {
    /// The moment the sweep purged up to (µs since the Unix epoch).
    pub as_of_us: u64,
    /// Whether it resumed a sweep a crash interrupted.
    pub resumed: bool,
    /// Subjects looked at.
    pub subjects: u64,
    /// Records purged.
    pub purged: u64,
}

const SWEEP_VERSION: u8 = 1;

/// A sweep under way: its "now", and the first subject not yet swept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SweepMark {
    pub(crate) as_of_us: u64,
    pub(crate) next_subject: u64,
}

impl SweepMark {
    /// Format: `version u8 = 1 | as_of_us u64 | next_subject u64`.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new(SWEEP_VERSION);
        w.u64(self.as_of_us).u64(self.next_subject);
        w.finish()
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<SweepMark> {
        let mut r = Reader::new(bytes, "sweep mark", SWEEP_VERSION)?;
        let mark = SweepMark {
            as_of_us: r.u64()?,
            next_subject: r.u64()?,
        };
        r.end()?;
        Ok(mark)
    }
}

/// When a record of type `rt` expires, if it does (and has started to).
pub(crate) fn expiry_us(
    rt: &RecordType,
    record: &StoredRecord,
    entry: &SubjectEntry,
) -> Option<u64> {
    let retention = rt.retention()?;
    let start = match retention.from {
        RetentionFrom::Creation => record.created_us,
        RetentionFrom::LastChange => record.changed_us,
        RetentionFrom::EndOfRelationship => entry.ended_us?,
    };
    Some(start.saturating_add(crate::consent::micros(retention.period)))
}

impl TenantRecords<'_> {
    /// Purges every record whose retention has run, in the caller's whole
    /// tenant (the caller's unit must be the whole tenant's, `*`). Resumes
    /// a sweep a crash interrupted. Needs `purge`; each purge audited.
    pub fn sweep_retention(&self, ctx: &Access) -> Result<SweepReport> {
        let event = || Event::new("retention.sweep", None, String::new());
        self.authorize(ctx, &[Permission::Purge], None, event)?;
        if ctx.unit != crate::config::WHOLE_TENANT {
            let error = Error::OutsideUnit {
                unit: crate::config::WHOLE_TENANT.to_string(),
            };
            return self.deny(ctx, event(), error);
        }
        let _one_sweep_at_a_time = self.state.sweeping.lock();
        let (mark, resumed) = match self.engine().get(keys::SWEEP)? {
            Some(bytes) => (SweepMark::decode(&bytes)?, true),
            None => {
                let mark = SweepMark {
                    as_of_us: self.records.now_us(),
                    next_subject: 1,
                };
                self.commit(ctx, event(), "started", |batch, _, _| {
                    batch.put(keys::SWEEP, mark.encode());
                    Ok(())
                })?;
                (mark, false)
            }
        };
        let mut report = SweepReport {
            as_of_us: mark.as_of_us,
            resumed,
            subjects: 0,
            purged: 0,
        };
        let end = self.state.committed.read().next_subject;
        for n in mark.next_subject..end {
            let s = SubjectId(n);
            let entry = match self.entry(s) {
                Ok(entry) => entry,
                Err(Error::NoSuchSubject(_)) => continue,
                Err(e) => return Err(e),
            };
            report.subjects += 1;
            report.purged += self.sweep_subject(ctx, s, &entry, mark.as_of_us)?;
            tracing::trace!(subject = n, "swept");
        }
        let detail = format!("{} subject(s), {} purged", report.subjects, report.purged);
        let done = Event::new("retention.sweep", None, detail);
        self.commit(ctx, done, "finished", |batch, _, _| {
            batch.delete(keys::SWEEP);
            Ok(())
        })?;
        tracing::info!(
            tenant = self.id.0,
            purged = report.purged,
            "retention sweep finished"
        );
        Ok(report)
    }

    /// Purges subject `s`'s expired records, one batch each.
    fn sweep_subject(
        &self,
        ctx: &Access,
        s: SubjectId,
        entry: &SubjectEntry,
        as_of_us: u64,
    ) -> Result<u64> {
        let records = match self.all_records(s) {
            Ok(records) => records,
            // Shredded around the layer: nothing of it is left to purge.
            Err(Error::Engine(strongroom::Error::Shredded { .. })) => return Ok(0),
            Err(e) => return Err(e),
        };
        let mut purged = 0;
        for (type_name, id, record) in records {
            let Ok(rt) = self.schema().record_type(&type_name) else {
                continue;
            };
            if expiry_us(rt, &record, entry).is_none_or(|at| at > as_of_us) {
                continue;
            }
            let event = Event::new("retention.purge", Some(s), format!("{type_name}/{id}"));
            let mark = SweepMark {
                as_of_us,
                next_subject: s.0,
            };
            let purge = self.commit(ctx, event, "ok", |batch, _, _| {
                // Decided again under the commit lock: a change since the
                // scan may have moved the record's end.
                let now = self.stored_record(s, &type_name, id)?;
                if expiry_us(rt, &now, entry).is_none_or(|at| at > as_of_us) {
                    return Err(Error::NoSuchRecord {
                        subject: s,
                        record_type: type_name.clone(),
                        id,
                    });
                }
                batch.delete_subject(s, keys::record(&type_name, id));
                batch.put(keys::SWEEP, mark.encode());
                Ok(())
            });
            match purge {
                Ok(_) => purged += 1,
                // Changed or deleted since the scan: not due, or gone.
                Err(Error::NoSuchRecord { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(purged)
    }
}
