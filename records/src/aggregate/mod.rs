//! Aggregates: counts (and sums) of subjects by one or two category fields,
//! over the subjects in the caller's unit who consent to research, with
//! small groups suppressed.
//!
//! Two protections, each against its own attack:
//! - **Within one table** ([`suppress`]): any cell (margins included) of
//!   fewer than the tenant's `small_group` subjects is suppressed, and
//!   complementary cells with it, until no suppressed cell can be worked
//!   out from the published cells and totals.
//! - **Between tables** ([`release`]): every table published is remembered
//!   as its population (subject numbers, each with a keyed tag per field of
//!   what the subject contributed). A new table whose population differs
//!   from an earlier one's by fewer than `small_group` subjects (counted in
//!   one only, or with another value in a field both used, whatever the
//!   rest of the two queries) is refused, since subtracting the two would
//!   show those subjects' cells. Suppression alone cannot stop that: two
//!   tables of large, unsuppressed cells can differ by one person.

pub(crate) mod release;
pub(crate) mod suppress;

use serde::Serialize;
use strongroom::SubjectId;

use crate::access::Access;
use crate::config::RESEARCH;
use crate::error::{Error, Result};
use crate::keys;
use crate::policy::Permission;
use crate::record::{Stored, Value};
use crate::schema::{FieldKind, RecordType};
use crate::subjects::Identifiers;
use crate::tenant::{Event, TenantRecords};
use release::Release;

/// An aggregate query over a single-record type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Aggregate {
    /// The record type (declared `single`).
    pub record_type: String,
    /// The category field whose labels are the rows.
    pub rows: String,
    /// The category field whose labels are the columns, for a two-way
    /// table.
    pub columns: Option<String>,
    /// An integer field to sum in each cell, besides counting.
    pub sum: Option<String>,
}

impl Aggregate {
    /// Counts of `record_type` records by `rows`.
    pub fn count(record_type: &str, rows: &str) -> Aggregate {
        Aggregate {
            record_type: record_type.to_string(),
            rows: rows.to_string(),
            columns: None,
            sum: None,
        }
    }

    /// With columns by `columns`.
    pub fn by(mut self, columns: &str) -> Aggregate {
        self.columns = Some(columns.to_string());
        self
    }

    /// Summing `field` too.
    pub fn summing(mut self, field: &str) -> Aggregate {
        self.sum = Some(field.to_string());
        self
    }

    /// The fields the query uses: rows, columns, sum.
    fn fields(&self) -> Vec<&str> {
        let mut fields = vec![self.rows.as_str()];
        fields.extend(self.columns.as_deref());
        fields.extend(self.sum.as_deref());
        fields
    }

    fn shape(&self) -> String {
        format!(
            "{}|{}|{}|{}",
            self.record_type,
            self.rows,
            self.columns.as_deref().unwrap_or(""),
            self.sum.as_deref().unwrap_or("")
        )
    }
}

/// One published cell: how many subjects, and the sum if asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Cell {
    /// Subjects counted.
    pub count: u64,
    /// The sum of the summed field over them.
    pub sum: Option<i64>,
}

/// A published table; `None` marks a suppressed cell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Table {
    /// Row labels.
    pub rows: Vec<String>,
    /// Column labels (empty for a one-way table).
    pub columns: Vec<String>,
    /// Cells, row-major (one per row for a one-way table).
    pub cells: Vec<Option<Cell>>,
    /// Row totals (two-way tables only).
    pub row_totals: Vec<Option<Cell>>,
    /// Column totals (two-way tables only).
    pub column_totals: Vec<Option<Cell>>,
    /// The grand total.
    pub total: Option<Cell>,
    /// The number of this release in the tenant's memory of releases.
    pub release: u64,
}

fn labels(rt: &RecordType, field: &str) -> Result<Vec<String>> {
    match rt.get(field).map(|f| &f.kind) {
        Some(FieldKind::Category(labels)) => Ok(labels.clone()),
        Some(_) => Err(Error::BadValue {
            field: field.to_string(),
            why: "not a category",
        }),
        None => Err(Error::UnknownField {
            record_type: rt.name().to_string(),
            field: field.to_string(),
        }),
    }
}

/// A subject's place in the table: (row, column, summed value).
type Placed = (usize, usize, i64);

impl TenantRecords<'_> {
    /// Runs `query` over the subjects in the caller's unit who consent to
    /// research, suppressing small groups. Needs `report`. Refused
    /// (`TooSimilar`, audited) when its population is too close to an
    /// earlier release's. Audited.
    pub fn aggregate(&self, ctx: &Access, query: &Aggregate) -> Result<Table> {
        let rt = self.schema().record_type(&query.record_type)?;
        if !rt.single {
            return Err(Error::BadValue {
                field: query.record_type.clone(),
                why: "aggregates group single-record types",
            });
        }
        let rows = labels(rt, &query.rows)?;
        let columns = match &query.columns {
            Some(c) => labels(rt, c)?,
            None => Vec::new(),
        };
        if let Some(sum) = &query.sum
            && rt.get(sum).map(|f| &f.kind) != Some(&FieldKind::Integer)
        {
            return Err(Error::BadValue {
                field: sum.clone(),
                why: "not an integer field",
            });
        }
        let event = || Event::new("report", None, query.shape());
        self.authorize(ctx, &[Permission::Report], None, event)?;
        let (placed, population) = self.population(ctx, query, &rows, &columns)?;
        let small_group = self.configured().small_group;
        let release = self.release(ctx, query, population, small_group)?;
        let mut table = tabulate(&placed, rows, columns, query.sum.is_some(), small_group);
        table.release = release;
        Ok(table)
    }

    /// Where each counted subject falls, and what each contributes.
    fn population(
        &self,
        ctx: &Access,
        query: &Aggregate,
        rows: &[String],
        columns: &[String],
    ) -> Result<(Vec<Placed>, Release)> {
        let mut placed = Vec::new();
        let mut release = Release {
            record_type: query.record_type.clone(),
            fields: query.fields().into_iter().map(String::from).collect(),
            population: Vec::new(),
        };
        for (s, _) in self.subjects_in(&ctx.unit)? {
            match self.place(s, query, rows, columns) {
                Ok(Some((p, salt))) => {
                    let mut values = vec![(query.rows.as_str(), rows[p.0].as_bytes().to_vec())];
                    if let Some(c) = &query.columns {
                        values.push((c.as_str(), columns[p.1].as_bytes().to_vec()));
                    }
                    if let Some(f) = &query.sum {
                        values.push((f.as_str(), p.2.to_le_bytes().to_vec()));
                    }
                    release.population.push(release::entry(s, &salt, &values));
                    placed.push(p);
                }
                Ok(None) | Err(Error::Engine(strongroom::Error::Shredded { .. })) => {}
                Err(Error::Engine(strongroom::Error::Sealed { .. })) => {}
                Err(e) => return Err(e),
            }
        }
        Ok((placed, release))
    }

    /// Subject `s`'s place, if it is counted: it consents to research and
    /// has the record with the fields set. With its contribution salt.
    fn place(
        &self,
        s: SubjectId,
        query: &Aggregate,
        rows: &[String],
        columns: &[String],
    ) -> Result<Option<(Placed, [u8; 32])>> {
        if !self.consent_is_live(s, RESEARCH)? {
            return Ok(None);
        }
        let record = match self.stored_record(s, &query.record_type, 0) {
            Ok(record) => record,
            Err(Error::NoSuchRecord { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let label = |field: &str, labels: &[String]| match record.fields.get(field) {
            Some(Stored::Value(Value::Text(t))) => labels.iter().position(|l| l == t),
            _ => None,
        };
        let Some(row) = label(&query.rows, rows) else {
            return Ok(None);
        };
        let column = match &query.columns {
            Some(c) => match label(c, columns) {
                Some(column) => column,
                None => return Ok(None),
            },
            None => 0,
        };
        let sum = match &query.sum {
            Some(f) => match record.fields.get(f) {
                Some(Stored::Value(Value::Integer(i))) => *i,
                _ => return Ok(None),
            },
            None => 0,
        };
        let Some(ids) = self.engine().subject(s).get(keys::IDS)? else {
            return Ok(None);
        };
        let (_, salt): (Identifiers, _) = Identifiers::decode(&ids)?;
        Ok(Some(((row, column, sum), salt)))
    }

    /// Checks the release against every earlier one and records it as a
    /// new one, or returns the number of the identical earlier one; all
    /// under the commit lock, so two reports racing each other are compared
    /// too. A refusal is audited.
    fn release(
        &self,
        ctx: &Access,
        query: &Aggregate,
        mut release: Release,
        small_group: u64,
    ) -> Result<u64> {
        release.population.sort_by_key(|(s, _)| *s);
        let shape = query.shape();
        let detail = format!("{shape} ({} subjects)", release.population.len());
        let event = Event::new("report", None, detail);
        let mut number = 0;
        let committed = self.commit(ctx, event, "ok", |batch, ledger, event| {
            for n in 0..ledger.releases {
                let Some(bytes) = self.engine().get(&keys::release(n))? else {
                    continue;
                };
                let earlier = Release::decode(&bytes)?;
                if earlier.same_as(&release) {
                    number = n;
                    event.detail = format!("{shape} (as release {n})");
                    return Ok(());
                }
                let differs_by = earlier.differs_by(&release);
                if differs_by > 0 && (differs_by as u64) < small_group {
                    return Err(Error::TooSimilar {
                        release: n,
                        differs_by,
                    });
                }
            }
            number = ledger.releases;
            ledger.releases += 1;
            batch.put(keys::release(number), release.encode());
            Ok(())
        });
        match committed {
            Err(e @ Error::TooSimilar { .. }) => {
                self.deny(ctx, Event::new("report", None, shape), e)
            }
            Err(e) => Err(e),
            Ok(_) => Ok(number),
        }
    }
}

/// Counts and sums the placed subjects into a table and suppresses it.
fn tabulate(
    placed: &[Placed],
    rows: Vec<String>,
    columns: Vec<String>,
    summed: bool,
    k: u64,
) -> Table {
    let two_way = !columns.is_empty();
    let width = columns.len().max(1);
    let mut counts = vec![0u64; rows.len() * width];
    let mut sums = vec![0i64; rows.len() * width];
    for &(r, c, v) in placed {
        counts[r * width + c] += 1;
        sums[r * width + c] = sums[r * width + c].saturating_add(v);
    }
    let cell = |count: u64, sum: i64, hidden: bool| {
        (!hidden).then_some(Cell {
            count,
            sum: summed.then_some(sum),
        })
    };
    let line = |idx: &mut dyn Iterator<Item = usize>| {
        idx.fold((0u64, 0i64), |(n, s), i| {
            (n + counts[i], s.saturating_add(sums[i]))
        })
    };
    let (total_count, total_sum) = line(&mut (0..counts.len()));
    let hidden = if two_way {
        suppress::suppress_two_way(&counts, rows.len(), width, k)
    } else {
        suppress::suppress_one_way(&counts, k)
    };
    let cells = (0..counts.len())
        .map(|i| cell(counts[i], sums[i], hidden.cells[i]))
        .collect();
    let (mut row_totals, mut column_totals) = (Vec::new(), Vec::new());
    if two_way {
        for r in 0..rows.len() {
            let (n, s) = line(&mut (r * width..(r + 1) * width));
            row_totals.push(cell(n, s, hidden.row_totals[r]));
        }
        for c in 0..width {
            let (n, s) = line(&mut (0..rows.len()).map(|r| r * width + c));
            column_totals.push(cell(n, s, hidden.col_totals[c]));
        }
    }
    Table {
        rows,
        columns,
        cells,
        row_totals,
        column_totals,
        total: cell(total_count, total_sum, hidden.grand_total),
        release: 0,
    }
}
