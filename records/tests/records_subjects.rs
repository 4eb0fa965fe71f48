//! Subjects: blind-index lookups whatever the case and spacing; no
//! identifier in any file; an access export that holds everything; an
//! erasure after which nothing of the subject decrypts from any file and its
//! e-mail finds nothing.

mod common;

use common::*;
use strongroom::forensic;
use strongroom_records::*;

#[test]
fn lookups_find_a_subject_by_email_in_any_case_and_spacing_and_by_phone_in_any_format() {
    let world = world();
    let tenant = world.tenant();
    let cw = ctx("caseworker");
    let ids = Identifiers::new()
        .email("Ada.Lovelace@Example.org")
        .phone("+44 20 7946 0958")
        .external_id("P-17");
    let s = tenant.create_subject(&cw, "hillside", &ids).unwrap();
    let by = |kind, v: &str| tenant.find_subject(&cw, kind, v).unwrap();
    for email in [
        "ada.lovelace@example.org",
        " ADA.LOVELACE@EXAMPLE.ORG ",
        "Ada.Lovelace @ example.org",
    ] {
        assert_eq!(by(IdentifierKind::Email, email), Some(s), "{email}");
    }
    for phone in ["+44 (20) 7946-0958", "+442079460958", "+44.20.7946.0958"] {
        assert_eq!(by(IdentifierKind::Phone, phone), Some(s), "{phone}");
    }
    assert_eq!(by(IdentifierKind::ExternalId, " P-17 "), Some(s));
    assert_eq!(
        by(IdentifierKind::ExternalId, "p-17"),
        None,
        "external ids are exact"
    );
    assert_eq!(by(IdentifierKind::Email, "ada@example.org"), None);
    assert_eq!(
        by(IdentifierKind::Phone, "2079460958"),
        None,
        "the country code counts"
    );
    // An identifier names one subject only, whatever its case.
    let again = Identifiers::new().email("ADA.lovelace@example.ORG");
    assert!(matches!(
        tenant.create_subject(&cw, "hillside", &again),
        Err(Error::IdentifierInUse("email"))
    ));
    // Lookups are audited, naming the subject found by number.
    let trail = tenant.audit_entries(&ctx("admin"), 0, u64::MAX).unwrap();
    assert_eq!(
        trail
            .iter()
            .filter(|e| e.action == "lookup" && e.subject == Some(s.0))
            .count(),
        7
    );
}

#[test]
fn no_email_or_phone_appears_in_any_file() {
    let world = world();
    let path = world.dir.path().to_path_buf();
    let canaries: Vec<(String, String, String)> = (0..20)
        .map(|i| {
            (
                format!("canary.mail{i:02}@zz-canary.example"),
                format!("+1 555 0199 {i:03}"),
                format!("CANARY-EXT-{i:02}"),
            )
        })
        .collect();
    {
        let tenant = world.tenant();
        let cw = ctx("caseworker");
        for (email, phone, ext) in &canaries {
            let ids = Identifiers::new()
                .email(email)
                .phone(phone)
                .external_id(ext);
            let s = tenant.create_subject(&cw, "hillside", &ids).unwrap();
            assert_eq!(
                tenant
                    .find_subject(&cw, IdentifierKind::Email, email)
                    .unwrap(),
                Some(s)
            );
        }
        world.records.db().flush().unwrap();
    }
    // Raw, normalised (what the index hashes) and the distinctive parts.
    let mut needles = Vec::new();
    for (email, phone, ext) in &canaries {
        needles.extend([
            email.clone(),
            email.to_lowercase(),
            phone.clone(),
            phone.replace(' ', ""),
            ext.clone(),
        ]);
    }
    needles.push("zz-canary".to_string());
    let scan = |when: &str| {
        for needle in &needles {
            assert!(
                files_holding(&path, needle).is_empty(),
                "{needle} is in a file ({when})"
            );
        }
    };
    scan("while open");
    let World { records, .. } = world;
    records.into_db().close().unwrap();
    scan("after close");
    // The scan finds what is there.
    std::fs::write(path.join("planted"), "x canary.mail07@zz-canary.example x").unwrap();
    assert_eq!(
        files_holding(&path, "canary.mail07@zz-canary.example"),
        vec![path.join("planted")]
    );
}

#[test]
fn an_export_holds_everything_and_after_erasure_nothing_of_the_subject_decrypts_from_any_file() {
    let world = world();
    let path = world.dir.path().to_path_buf();
    let canaries = [
        "Canary Name Q",
        "7 Canary Row",
        "canary-asthma-Q",
        "canary.q@zz-canary.example",
        "CANARY-NOTE-Q",
    ];
    let (s, other) = {
        let tenant = world.tenant();
        let cw = ctx("caseworker");
        let ids = Identifiers::new().email(canaries[3]).external_id("Q-1");
        let s = tenant.create_subject(&cw, "hillside", &ids).unwrap();
        tenant
            .put_record(
                &cw,
                s,
                "profile",
                0,
                &[
                    ("name", Value::from(canaries[0])),
                    ("address", Value::from(canaries[1])),
                    ("health", Value::from(canaries[2])),
                    ("pin", Value::from("9999")),
                ],
            )
            .unwrap();
        tenant
            .put_record(
                &cw,
                s,
                "case_note",
                1,
                &[("text", Value::from(canaries[4]))],
            )
            .unwrap();
        tenant
            .record_consent(&cw, s, RESEARCH, ConsentAction::OptIn)
            .unwrap();
        tenant.get_record(&cw, s, "profile", 0).unwrap();
        let other = tenant
            .create_subject(
                &cw,
                "hillside",
                &Identifiers::new().email("keep@example.org"),
            )
            .unwrap();
        tenant
            .put_record(&cw, other, "profile", 0, &[("name", Value::from("Kept"))])
            .unwrap();

        // The export: every record, field, identifier, consent and trail entry.
        let po = ctx("privacy_officer");
        let export = tenant.export_subject(&po, s).unwrap();
        let text = export.to_string();
        for canary in canaries {
            assert!(text.contains(canary), "the export lacks {canary}");
        }
        assert_eq!(export["records"].as_array().unwrap().len(), 2);
        assert_eq!(
            export["consents"][RESEARCH]["history"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
        let trail = tenant.audit_entries(&ctx("admin"), 0, u64::MAX).unwrap();
        let about: Vec<_> = trail.iter().filter(|e| e.subject == Some(s.0)).collect();
        // Every entry about it before the export's own.
        assert_eq!(about.last().unwrap().action, "export");
        assert_eq!(export["audit"].as_array().unwrap().len(), about.len() - 1);
        assert!(about.len() >= 5);

        // The erasure.
        tenant.erase_subject(&po, s).unwrap();
        assert_eq!(
            tenant
                .find_subject(&cw, IdentifierKind::Email, canaries[3])
                .unwrap(),
            None
        );
        assert_eq!(
            tenant
                .find_subject(&cw, IdentifierKind::ExternalId, "Q-1")
                .unwrap(),
            None
        );
        assert!(matches!(
            tenant.get_record(&cw, s, "profile", 0),
            Err(Error::NoSuchSubject(_))
        ));
        assert!(matches!(
            tenant.export_subject(&po, s),
            Err(Error::NoSuchSubject(_))
        ));
        assert!(matches!(
            world.records.db().tenant(TENANT).subject(s).get(b"r/ids"),
            Err(strongroom::Error::Shredded { .. })
        ));
        // The trail survives, names the subject by number, and is whole.
        let trail = tenant.audit_entries(&ctx("admin"), 0, u64::MAX).unwrap();
        assert!(trail.iter().filter(|e| e.subject == Some(s.0)).count() > about.len());
        assert!(
            tenant
                .verify_audit(&ctx("admin"))
                .unwrap()
                .problems
                .is_empty()
        );
        // Another subject is untouched; its identifier can be reused by a new one.
        assert_eq!(
            tenant
                .find_subject(&cw, IdentifierKind::Email, "keep@example.org")
                .unwrap(),
            Some(other)
        );
        assert!(
            tenant
                .create_subject(&cw, "hillside", &Identifiers::new().email(canaries[3]))
                .is_ok()
        );
        (s, other)
    };
    let World { records, .. } = world;
    records.into_db().close().unwrap();
    // Everything the keys still open, from the log and the store.
    let opened = forensic::decrypt_everything(
        &path,
        &db_options(&std::sync::Arc::new(strongroom::ManualClock::starting_now())),
    )
    .unwrap();
    assert!(
        opened.iter().any(|d| d.scope.subject == Some(other)),
        "the check opens records"
    );
    assert!(
        !opened.iter().any(|d| d.scope.subject == Some(s)),
        "a record of the erased subject decrypts"
    );
    for d in &opened {
        // Its name, address, health and note (its e-mail names a new
        // subject since).
        for canary in canaries.iter().filter(|c| !c.contains('@')) {
            let hit = d
                .value
                .windows(canary.len())
                .any(|w| w == canary.as_bytes())
                || d.key.windows(canary.len()).any(|w| w == canary.as_bytes());
            assert!(!hit, "{canary} decrypts from {:?} in {}", d.found, d.scope);
        }
    }
}

#[test]
fn concurrent_calls_keep_identifiers_unique_and_the_trail_whole() {
    let world = world();
    let tenant = world.tenant();
    let cw = ctx("caseworker");
    let results: Vec<Result<strongroom::SubjectId>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let (tenant, cw) = (tenant.clone(), cw.clone());
                scope.spawn(move || {
                    tenant.create_subject(
                        &cw,
                        "hillside",
                        &Identifiers::new().email("same@example.org"),
                    )
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        1,
        "{results:?}"
    );
    assert!(
        results
            .iter()
            .filter(|r| r.is_err())
            .all(|r| matches!(r, Err(Error::IdentifierInUse("email"))))
    );
    // Writers and readers of several subjects at once: every change and
    // sensitive read chained, none lost.
    let subjects: Vec<_> = (0..4)
        .map(|_| {
            tenant
                .create_subject(&cw, "hillside", &Identifiers::new())
                .unwrap()
        })
        .collect();
    let before = tenant.audit_head().next_seq;
    std::thread::scope(|scope| {
        for &s in &subjects {
            let (tenant, cw) = (tenant.clone(), cw.clone());
            scope.spawn(move || {
                for i in 0..25 {
                    let note = format!("note {i}");
                    tenant
                        .put_record(
                            &cw,
                            s,
                            "case_note",
                            i,
                            &[("text", Value::from(note.as_str()))],
                        )
                        .unwrap();
                    tenant.get_record(&cw, s, "case_note", i).unwrap();
                }
            });
        }
    });
    assert_eq!(tenant.audit_head().next_seq, before + 4 * 25 * 2);
    let report = tenant.verify_audit(&ctx("admin")).unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    let trail = tenant.audit_entries(&ctx("admin"), 0, u64::MAX).unwrap();
    assert_eq!(
        trail
            .iter()
            .filter(|e| e.outcome.starts_with("denied: that email"))
            .count(),
        7
    );
}
