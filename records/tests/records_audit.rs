//! The audit trail: an entry removed, changed or reordered in the raw store
//! (the engine under the layer, as a writer who goes around the layer would
//! change it) is found by verify, which names the entry; the trail
//! survives a reopen; denials are in it.

mod common;

use common::*;
use strongroom_records::*;

fn audit_key(seq: u64) -> Vec<u8> {
    // docs/FORMAT.md §14: tenant scope, `r/audit/` and the number big-endian.
    [b"r/audit/".as_slice(), &seq.to_be_bytes()].concat()
}

/// A world with a trail of a few dozen entries.
fn busy_world() -> World {
    let world = world();
    {
        let tenant = world.tenant();
        let cw = ctx("caseworker");
        for i in 0..6 {
            let s = tenant
                .create_subject(&cw, "hillside", &Identifiers::new())
                .unwrap();
            tenant
                .put_record(
                    &cw,
                    s,
                    "profile",
                    0,
                    &[("health", Value::from(format!("h{i}").as_str()))],
                )
                .unwrap();
            tenant.get_record(&cw, s, "profile", 0).unwrap();
        }
        let _ = tenant.get_record(&ctx("analyst"), strongroom::SubjectId(1), "profile", 0);
    }
    world
}

fn problems(world: &World) -> Vec<AuditProblem> {
    world.tenant().verify_audit(&ctx("admin")).unwrap().problems
}

#[test]
fn a_whole_trail_verifies_and_survives_a_reopen() {
    let world = busy_world();
    let report = world.tenant().verify_audit(&ctx("admin")).unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert!(report.entries > 20);
    let head = world.tenant().audit_head();
    let World {
        dir,
        clock,
        records,
    } = world;
    records.into_db().close().unwrap();
    let records = open_records(dir.path(), &clock);
    let tenant = records.tenant(TENANT).unwrap();
    assert_eq!(tenant.audit_head(), head);
    assert!(
        tenant
            .verify_audit(&ctx("admin"))
            .unwrap()
            .problems
            .is_empty()
    );
    let entries = tenant.audit_entries(&ctx("admin"), 0, u64::MAX).unwrap();
    assert!(
        entries
            .iter()
            .any(|e| e.actor == "analyst-1" && e.outcome.starts_with("denied"))
    );
    assert!(entries.windows(2).all(|w| w[0].seq + 1 == w[1].seq));
}

#[test]
fn a_removed_entry_is_named() {
    let world = busy_world();
    let raw = world.records.db().tenant(TENANT);
    raw.delete(&audit_key(7)).unwrap();
    assert_eq!(problems(&world), vec![AuditProblem::Missing { seq: 7 }]);
}

#[test]
fn a_changed_entry_is_named() {
    let world = busy_world();
    let raw = world.records.db().tenant(TENANT);
    let mut bytes = raw.get(&audit_key(9)).unwrap().unwrap();
    // Same length, still a well-formed entry: another actor.
    let at = bytes
        .windows(10)
        .position(|w| w == b"caseworker")
        .expect("the entry names its actor");
    bytes[at..at + 10].copy_from_slice(b"casewarden");
    raw.put(&audit_key(9), &bytes).unwrap();
    assert_eq!(problems(&world), vec![AuditProblem::Changed { seq: 9 }]);
}

#[test]
fn a_changed_last_entry_is_named_against_the_head() {
    let world = busy_world();
    let last = world.tenant().audit_head().next_seq - 1;
    let raw = world.records.db().tenant(TENANT);
    let mut bytes = raw.get(&audit_key(last)).unwrap().unwrap();
    let at = bytes
        .windows(7)
        .position(|w| w == b"analyst")
        .expect("the last entry is the analyst's denial");
    bytes[at..at + 7].copy_from_slice(b"ANALYST");
    raw.put(&audit_key(last), &bytes).unwrap();
    // The verify itself appends an entry; the changed one is checked first.
    let found = problems(&world);
    assert_eq!(found, vec![AuditProblem::Changed { seq: last }]);
}

#[test]
fn reordered_entries_are_named() {
    let world = busy_world();
    let raw = world.records.db().tenant(TENANT);
    let (a, b) = (
        raw.get(&audit_key(3)).unwrap().unwrap(),
        raw.get(&audit_key(4)).unwrap().unwrap(),
    );
    raw.put(&audit_key(3), &b).unwrap();
    raw.put(&audit_key(4), &a).unwrap();
    assert_eq!(
        problems(&world),
        vec![
            AuditProblem::OutOfPlace { seq: 3, holds: 4 },
            AuditProblem::OutOfPlace { seq: 4, holds: 3 }
        ]
    );
}

#[test]
fn an_entry_replaced_by_another_with_its_number_fixed_is_named_and_no_other() {
    let world = busy_world();
    let raw = world.records.db().tenant(TENANT);
    // Entry 4 copied over entry 5, with 5's number: well-formed, in place,
    // but not what entry 6 was chained to.
    let mut bytes = raw.get(&audit_key(4)).unwrap().unwrap();
    bytes[1..9].copy_from_slice(&5u64.to_le_bytes());
    raw.put(&audit_key(5), &bytes).unwrap();
    // The entry after it still holds entry 5's real hash, and entry 4's
    // link into this one is broken: entry 5 is named, entry 4 is not.
    assert_eq!(problems(&world), vec![AuditProblem::Changed { seq: 5 }]);
}
