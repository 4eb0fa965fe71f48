//! Erasure that a failure interrupts: the index entries are gone at once,
//! and the next open finishes the shred; a subject shredded around the layer
//! is not found by its e-mail.

mod common;

use std::sync::Arc;

use common::*;
use strongroom::fs::{Fault, FaultyFileSystem, Op};
use strongroom::{Db, ManualClock, ScopeState, ShredOptions};
use strongroom_records::*;

#[test]
fn an_erasure_interrupted_before_its_shred_is_finished_by_the_next_open() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::starting_now());
    let fs = FaultyFileSystem::new();
    let s = {
        let db = Db::open(dir.path(), db_options(&clock).file_system(fs.clone())).unwrap();
        let records = Records::new(db, schema(), records_options(&clock));
        let tenant = records
            .set_up_tenant(&ctx("admin"), TENANT, TenantConfig::seeded(units()))
            .unwrap();
        tenant
            .assign(&ctx("admin"), "caseworker-1", "caseworker", WHOLE_TENANT)
            .unwrap();
        tenant
            .assign(
                &ctx("admin"),
                "privacy_officer-1",
                "privacy_officer",
                WHOLE_TENANT,
            )
            .unwrap();
        let cw = ctx("caseworker");
        let s = tenant
            .create_subject(
                &cw,
                "hillside",
                &Identifiers::new().email("gone@example.org"),
            )
            .unwrap();
        tenant
            .put_record(&cw, s, "profile", 0, &[("name", Value::from("Gone"))])
            .unwrap();
        // The shred's seal record cannot be written: the erasure stops
        // after its first batch.
        fs.fail_from(Op::Write, "SEALS", 1, Fault::Eio);
        assert!(tenant.erase_subject(&ctx("privacy_officer"), s).is_err());
        fs.heal();
        // Already: not found, not readable through the layer.
        assert_eq!(
            tenant
                .find_subject(&cw, IdentifierKind::Email, "gone@example.org")
                .unwrap(),
            None
        );
        assert!(matches!(
            tenant.get_record(&cw, s, "profile", 0),
            Err(Error::NoSuchSubject(_))
        ));
        s
    };
    let records = open_records(dir.path(), &clock);
    let tenant = records.tenant(TENANT).unwrap();
    assert_eq!(
        records.db().tenant(TENANT).subject(s).state().unwrap(),
        ScopeState::Shredded
    );
    let trail = tenant.audit_entries(&ctx("admin"), 0, u64::MAX).unwrap();
    let actions: Vec<&str> = trail
        .iter()
        .filter(|e| e.subject == Some(s.0))
        .map(|e| e.action.as_str())
        .collect();
    assert_eq!(actions.iter().filter(|a| **a == "erase").count(), 1);
    assert_eq!(actions.last(), Some(&"erase.finish"));
    assert!(
        tenant
            .verify_audit(&ctx("admin"))
            .unwrap()
            .problems
            .is_empty()
    );
}

#[test]
fn a_subject_shredded_around_the_layer_is_not_found() {
    let world = world();
    let tenant = world.tenant();
    let cw = ctx("caseworker");
    let s = tenant
        .create_subject(
            &cw,
            "hillside",
            &Identifiers::new().email("around@example.org"),
        )
        .unwrap();
    world
        .records
        .db()
        .tenant(TENANT)
        .shred_subject(s, ShredOptions::immediate())
        .unwrap();
    assert_eq!(
        tenant
            .find_subject(&cw, IdentifierKind::Email, "around@example.org")
            .unwrap(),
        None
    );
}
