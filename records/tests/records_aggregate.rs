//! Aggregates: small cells suppressed with complements, so that totals do
//! not give them away (an exhaustive attacker tries); differencing two
//! reports whose populations differ by one subject fails (the second is
//! refused); only subjects consenting to research are counted; the
//! caller's unit bounds the population.

mod common;

use common::*;
use strongroom::SubjectId;
use strongroom_records::*;

const YEARS: [&str; 3] = ["1", "2", "3"];
const HOUSES: [&str; 2] = ["red", "blue"];

/// Adds `n` pupils in `unit` with `year` and `house`, consenting to research.
fn add(
    tenant: &TenantRecords<'_>,
    unit: &str,
    year: &str,
    house: &str,
    n: usize,
) -> Vec<SubjectId> {
    let cw = ctx("caseworker");
    (0..n)
        .map(|_| {
            let s = tenant
                .create_subject(&cw, unit, &Identifiers::new())
                .unwrap();
            let fields = [
                ("year", Value::from(year)),
                ("house", Value::from(house)),
                ("visits", Value::from(3)),
            ];
            tenant.put_record(&cw, s, "profile", 0, &fields).unwrap();
            tenant
                .record_consent(&cw, s, RESEARCH, ConsentAction::OptIn)
                .unwrap();
            s
        })
        .collect()
}

fn research(unit: &str) -> Access {
    Access::new("analyst-1", "analyst", unit, "care", "annual statistics")
}

fn by_year_and_house() -> Aggregate {
    Aggregate::count("profile", "year").by("house")
}

/// Every assignment of counts to the suppressed cells that agrees with
/// everything published, each suppressed count at least 1 (zeros are never
/// suppressed, so the attacker knows that too): the feasible values of
/// each suppressed interior cell and margin.
fn feasible(table: &Table, bound: u64) -> Vec<Vec<u64>> {
    let (rows, cols) = (table.rows.len(), table.columns.len());
    let hidden: Vec<usize> = (0..rows * cols)
        .filter(|&i| table.cells[i].is_none())
        .collect();
    let mut values = vec![Vec::new(); hidden.len()];
    let mut counts = vec![0u64; rows * cols];
    for (i, c) in table.cells.iter().enumerate() {
        counts[i] = c.map_or(0, |c| c.count);
    }
    let combos = (bound as usize).pow(hidden.len() as u32);
    for mut code in 0..combos {
        for &i in &hidden {
            counts[i] = 1 + (code % bound as usize) as u64;
            code /= bound as usize;
        }
        let row = |r: usize| (0..cols).map(|c| counts[r * cols + c]).sum::<u64>();
        let col = |c: usize| (0..rows).map(|r| counts[r * cols + c]).sum::<u64>();
        let agrees =
            |published: &Option<Cell>, value: u64| published.is_none_or(|p| p.count == value);
        let ok = (0..rows).all(|r| agrees(&table.row_totals[r], row(r)))
            && (0..cols).all(|c| agrees(&table.column_totals[c], col(c)))
            && agrees(&table.total, counts.iter().sum());
        if ok {
            for (k, &i) in hidden.iter().enumerate() {
                if !values[k].contains(&counts[i]) {
                    values[k].push(counts[i]);
                }
            }
        }
    }
    values
}

#[test]
fn a_small_cell_cannot_be_worked_out_from_the_totals() {
    let world = world();
    let tenant = world.tenant();
    // year × house: (1, blue) holds 2 subjects, below the threshold of 5.
    let truth = [[8, 2], [6, 7], [9, 5]];
    for (y, row) in truth.iter().enumerate() {
        for (h, &n) in row.iter().enumerate() {
            add(&tenant, "hillside", YEARS[y], HOUSES[h], n);
        }
    }
    let table = tenant
        .aggregate(&research(WHOLE_TENANT), &by_year_and_house())
        .unwrap();
    assert_eq!(table.rows, YEARS);
    assert_eq!(table.columns, HOUSES);
    // The small cell is suppressed; what is published is true.
    assert_eq!(table.cells[1], None);
    for (i, cell) in table.cells.iter().enumerate() {
        if let Some(cell) = cell {
            assert_eq!(cell.count as usize, truth[i / 2][i % 2]);
        }
    }
    let hidden = table.cells.iter().filter(|c| c.is_none()).count();
    assert!(
        hidden >= 4,
        "a lone small cell in a two-way table needs three complements"
    );
    // The attacker: every suppressed cell has more than one feasible value.
    let values = feasible(&table, 12);
    assert_eq!(values.len(), hidden);
    for v in &values {
        assert!(
            v.len() >= 2,
            "a suppressed cell is determined: {v:?} in {table:?}"
        );
    }
    // With primary suppression alone, the totals would give it away: the
    // row total minus the published neighbour.
    assert_eq!(table.row_totals[0].map(|c| c.count), Some(10), "{table:?}");
}

#[test]
fn a_one_way_table_hides_a_small_cell_with_a_complement() {
    let world = world();
    let tenant = world.tenant();
    add(&tenant, "hillside", "1", "red", 12);
    add(&tenant, "hillside", "2", "red", 3);
    add(&tenant, "hillside", "3", "red", 7);
    let query = Aggregate::count("profile", "year").summing("visits");
    let table = tenant.aggregate(&research(WHOLE_TENANT), &query).unwrap();
    assert_eq!(table.cells[1], None, "3 pupils is a small group");
    assert_eq!(
        table.cells.iter().filter(|c| c.is_none()).count(),
        2,
        "and one complement: {table:?}"
    );
    assert_eq!(
        table.total,
        Some(Cell {
            count: 22,
            sum: Some(66)
        })
    );
}

#[test]
fn differencing_two_reports_that_differ_by_one_subject_fails() {
    let world = world();
    let tenant = world.tenant();
    for (y, h, n) in [
        ("1", "red", 6),
        ("1", "blue", 7),
        ("2", "red", 8),
        ("2", "blue", 6),
        ("3", "red", 9),
        ("3", "blue", 5),
    ] {
        add(&tenant, "hillside", y, h, n);
    }
    let analyst = research(WHOLE_TENANT);
    let first = tenant.aggregate(&analyst, &by_year_and_house()).unwrap();
    assert!(
        first.cells.iter().all(|c| c.is_some()),
        "no small cells: {first:?}"
    );
    // Asking again for the same population is the same release.
    assert_eq!(
        tenant.aggregate(&analyst, &by_year_and_house()).unwrap(),
        first
    );

    // One pupil joins: the second table would differ from the first by one
    // in exactly the newcomer's cell.
    let newcomer = add(&tenant, "hillside", "3", "blue", 1)[0];
    let refused = tenant.aggregate(&analyst, &by_year_and_house());
    assert!(
        matches!(
            refused,
            Err(Error::TooSimilar {
                release: 0,
                differs_by: 1
            })
        ),
        "{refused:?}"
    );
    // One pupil moves house: also one subject's difference.
    tenant
        .put_record(
            &ctx("caseworker"),
            SubjectId(1),
            "profile",
            0,
            &[("house", Value::from("blue"))],
        )
        .unwrap();
    assert!(matches!(
        tenant.aggregate(&analyst, &by_year_and_house()),
        Err(Error::TooSimilar { differs_by: 2, .. })
    ));
    // A narrower unit whose population is the first's less the newcomer.
    tenant
        .put_record(
            &ctx("caseworker"),
            SubjectId(1),
            "profile",
            0,
            &[("house", Value::from("red"))],
        )
        .unwrap();
    let cw = ctx("caseworker");
    let moved = tenant
        .create_subject(&cw, "riverside", &Identifiers::new())
        .unwrap();
    tenant
        .put_record(
            &cw,
            moved,
            "profile",
            0,
            &[("year", Value::from("1")), ("house", Value::from("red"))],
        )
        .unwrap();
    tenant
        .record_consent(&cw, moved, RESEARCH, ConsentAction::OptIn)
        .unwrap();
    assert!(matches!(
        tenant.aggregate(&research("hillside"), &by_year_and_house()),
        Err(Error::TooSimilar { .. })
    ));
    // The newcomer withdraws consent to research: back to a population of
    // one difference (the riverside pupil) from the first release.
    tenant
        .record_consent(&cw, newcomer, RESEARCH, ConsentAction::OptOut)
        .unwrap();
    assert!(matches!(
        tenant.aggregate(&analyst, &by_year_and_house()),
        Err(Error::TooSimilar { .. })
    ));
    // Every refusal is audited.
    let trail = tenant.audit_entries(&ctx("admin"), 0, u64::MAX).unwrap();
    let refusals = trail
        .iter()
        .filter(|e| e.action == "report" && e.outcome.starts_with("denied"))
        .count();
    assert_eq!(refusals, 4);

    // Another shape that shares a field is compared on it: a count by year
    // alone (the first table's row totals) over one more pupil is refused
    // too, and so is one summing visits.
    tenant
        .record_consent(&cw, newcomer, RESEARCH, ConsentAction::OptIn)
        .unwrap();
    tenant
        .record_consent(&cw, moved, RESEARCH, ConsentAction::OptOut)
        .unwrap();
    for shape in [
        Aggregate::count("profile", "year"),
        by_year_and_house().summing("visits"),
        Aggregate::count("profile", "house").by("year"),
    ] {
        let refused = tenant.aggregate(&analyst, &shape);
        assert!(
            matches!(refused, Err(Error::TooSimilar { differs_by: 1, .. })),
            "{shape:?}: {refused:?}"
        );
    }
    tenant
        .record_consent(&cw, newcomer, RESEARCH, ConsentAction::OptOut)
        .unwrap();
    tenant
        .record_consent(&cw, moved, RESEARCH, ConsentAction::OptIn)
        .unwrap();

    // Once enough has changed (five more pupils), a new release is made.
    add(&tenant, "hillside", "2", "red", 5);
    let later = tenant.aggregate(&analyst, &by_year_and_house()).unwrap();
    assert_eq!(later.release, 1);
    assert_eq!(later.total.unwrap().count, first.total.unwrap().count + 6);
}

#[test]
fn only_subjects_consenting_to_research_in_the_callers_unit_are_counted() {
    let world = world();
    let tenant = world.tenant();
    let cw = ctx("caseworker");
    add(&tenant, "hillside", "1", "red", 6);
    add(&tenant, "riverside", "1", "red", 7);
    add(&tenant, "seaside", "1", "red", 8);
    // Five who withdrew their consent.
    let none = add(&tenant, "hillside", "2", "red", 5);
    for s in &none {
        tenant
            .record_consent(&cw, *s, RESEARCH, ConsentAction::OptOut)
            .unwrap();
    }
    let count = |unit: &str| {
        tenant
            .aggregate(&research(unit), &Aggregate::count("profile", "year"))
            .unwrap()
            .total
            .unwrap()
            .count
    };
    assert_eq!(count(WHOLE_TENANT), 21);
    assert_eq!(count("north"), 13);
    assert_eq!(count("hillside"), 6);
    assert_eq!(count("seaside"), 8);
    world.clock.advance(CONSENT_RENEWAL_DEFAULT);
    let table = tenant
        .aggregate(
            &research(WHOLE_TENANT),
            &Aggregate::count("profile", "year"),
        )
        .unwrap();
    assert_eq!(
        table.total.unwrap().count,
        0,
        "lapsed consents count for nothing"
    );
}
