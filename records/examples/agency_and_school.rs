//! A tour of the record layer: an agency and a school as tenants of one
//! database, a few roles, consent, a suppressed report, an access export and
//! an erasure. Prints what each call was allowed to do, never a field's
//! value.
//!
//! ```text
//! cargo run --release -p strongroom-records --example agency_and_school
//! ```

use std::time::Duration;

use strongroom::{Db, Options, TenantId};
use strongroom_records::*;

const AGENCY: TenantId = TenantId(1);
const SCHOOL: TenantId = TenantId(2);

fn schema() -> Result<Schema> {
    let years = FieldKind::Category(["7", "8", "9"].map(String::from).to_vec());
    let support = FieldKind::Category(["none", "some", "full"].map(String::from).to_vec());
    Schema::new()
        .with(
            RecordType::new("person")
                .single()
                .field("name", FieldClass::Identifier)
                .field("address", FieldClass::Contact)
                .field("health", FieldClass::Sensitive)
                .field_of("year", FieldClass::Ordinary, years)
                .field_of("support", FieldClass::Ordinary, support)
                .field("portal_pin", FieldClass::Secret)
                .retain(
                    Duration::from_secs(365 * 86_400),
                    RetentionFrom::EndOfRelationship,
                ),
        )?
        .with(
            RecordType::new("case_note")
                .field("text", FieldClass::Sensitive)
                .retain(
                    Duration::from_secs(2 * 365 * 86_400),
                    RetentionFrom::Creation,
                ),
        )
}

fn units() -> Vec<Unit> {
    let unit = |name: &str, level, parent: Option<&str>| Unit {
        name: name.into(),
        level,
        parent: parent.map(String::from),
    };
    vec![
        unit("north", Level::Area, None),
        unit("north-campus", Level::Group, Some("north")),
        unit("hillside", Level::Location, Some("north-campus")),
        unit("riverside", Level::Location, Some("north-campus")),
    ]
}

fn shown(result: &Result<RecordView>) -> String {
    match result {
        Ok(view) => format!("sees {:?}", view.fields.keys().collect::<Vec<_>>()),
        Err(e) => format!("refused: {e}"),
    }
}

fn main() -> Result<()> {
    let dir = std::env::temp_dir().join("strongroom-records-tour");
    let _ = std::fs::remove_dir_all(&dir);
    let db = Db::open(&dir, Options::with_key([7; 32]))?;
    let records = Records::new(db, schema()?, RecordsOptions::default());

    // Two tenants, each with its own keys, members and trail.
    let head = Access::new(
        "head-1",
        "admin",
        WHOLE_TENANT,
        "care",
        "setting up the school",
    );
    let school = records.set_up_tenant(&head, SCHOOL, TenantConfig::seeded(units()))?;
    let director = Access::new(
        "dir-1",
        "admin",
        WHOLE_TENANT,
        "care",
        "setting up the agency",
    );
    let agency = records.set_up_tenant(&director, AGENCY, TenantConfig::seeded(units()))?;
    agency.assign(&director, "worker-1", "caseworker", WHOLE_TENANT)?;
    school.assign(&head, "teacher-1", "caseworker", "hillside")?;
    school.assign(&head, "office-1", "contact_officer", WHOLE_TENANT)?;
    school.assign(&head, "stats-1", "analyst", WHOLE_TENANT)?;
    school.assign(&head, "dpo-1", "privacy_officer", WHOLE_TENANT)?;
    let teacher = Access::new("teacher-1", "caseworker", "hillside", "care", "enrolment");
    let office = Access::new(
        "office-1",
        "contact_officer",
        WHOLE_TENANT,
        "care",
        "sending the newsletter",
    );
    let stats = Access::new(
        "stats-1",
        "analyst",
        WHOLE_TENANT,
        "care",
        "termly statistics",
    );
    let dpo = Access::new(
        "dpo-1",
        "privacy_officer",
        WHOLE_TENANT,
        "care",
        "subject access request",
    );
    println!(
        "tenants: the agency ({}) and the school ({})",
        AGENCY.0, SCHOOL.0
    );

    // Pupils, found later by e-mail through a blind index.
    let mut pupils = Vec::new();
    for i in 0..40 {
        let ids = Identifiers::new().email(&format!("pupil{i}@hillside.example"));
        let pupil = school.create_subject(&teacher, "hillside", &ids)?;
        let year = ["7", "8", "9"][i % 3];
        let support = if i % 13 == 0 {
            "full"
        } else if i % 4 == 0 {
            "some"
        } else {
            "none"
        };
        school.put_record(
            &teacher,
            pupil,
            "person",
            0,
            &[
                ("name", Value::from(format!("Pupil {i}").as_str())),
                ("address", Value::from(format!("{i} School Lane").as_str())),
                ("year", Value::from(year)),
                ("support", Value::from(support)),
            ],
        )?;
        if i % 5 != 0 {
            school.record_consent(&teacher, pupil, RESEARCH, ConsentAction::OptIn)?;
        }
        pupils.push(pupil);
    }
    println!(
        "the school enrolled {} pupils; 32 consent to research",
        pupils.len()
    );
    let found = school.find_subject(
        &teacher,
        IdentifierKind::Email,
        "  PUPIL7@Hillside.Example ",
    )?;
    println!(
        "lookup by e-mail in another case and spacing: subject {:?}",
        found.map(|s| s.0)
    );

    // Roles: the teacher does not see contact fields; the office does.
    let p = pupils[7];
    println!(
        "teacher:        {}",
        shown(&school.get_record(&teacher, p, "person", 0))
    );
    println!(
        "contact office: {}",
        shown(&school.get_record(&office, p, "person", 0))
    );
    println!(
        "analyst:        {}",
        shown(&school.get_record(&stats, p, "person", 0))
    );
    // The agency's caseworker is no member of the school.
    let agency_worker = Access::new("worker-1", "caseworker", WHOLE_TENANT, "care", "curious");
    println!(
        "agency worker:  {}",
        shown(&school.get_record(&agency_worker, p, "person", 0))
    );

    // Sharing needs consent, which lapses after three years.
    let sharing = teacher.for_purpose("sharing", "referral to the agency");
    println!(
        "sharing without consent: {}",
        shown(&school.get_record(&sharing, p, "person", 0))
    );
    school.record_consent(&teacher, p, "sharing", ConsentAction::OptIn)?;
    println!(
        "sharing after opt-in:    {}",
        shown(&school.get_record(&sharing, p, "person", 0))
    );

    // A report: support by year, small groups suppressed.
    let report = school.aggregate(&stats, &Aggregate::count("person", "support").by("year"))?;
    println!("\nsupport by year (research consent only; '-' is suppressed):");
    println!(
        "{:>8} {}",
        "",
        report
            .columns
            .iter()
            .map(|c| format!("{c:>5}"))
            .collect::<String>()
    );
    for (r, label) in report.rows.iter().enumerate() {
        let cells: String = (0..report.columns.len())
            .map(|c| match report.cells[r * report.columns.len() + c] {
                Some(cell) => format!("{:>5}", cell.count),
                None => format!("{:>5}", "-"),
            })
            .collect();
        println!("{label:>8} {cells}");
    }
    // One more pupil, and the same report again: refused, since the two
    // would differ by one pupil.
    let late = school.create_subject(&teacher, "hillside", &Identifiers::new())?;
    school.put_record(
        &teacher,
        late,
        "person",
        0,
        &[("year", Value::from("8")), ("support", Value::from("full"))],
    )?;
    school.record_consent(&teacher, late, RESEARCH, ConsentAction::OptIn)?;
    match school.aggregate(&stats, &Aggregate::count("person", "support").by("year")) {
        Err(e) => println!("the same report a pupil later: {e}"),
        Ok(_) => println!("the same report a pupil later: answered"),
    }

    // The pupil's rights: an export of everything, then erasure.
    let export = school.export_subject(&dpo, p)?;
    println!(
        "\naccess export of subject {}: {} record(s), {} consent ledger(s), {} audit entries",
        p.0,
        export["records"].as_array().map_or(0, Vec::len),
        export["consents"].as_object().map_or(0, |c| c.len()),
        export["audit"].as_array().map_or(0, Vec::len)
    );
    school.erase_subject(&dpo, p)?;
    let after = school.find_subject(&teacher, IdentifierKind::Email, "pupil7@hillside.example")?;
    println!("after erasure, the lookup by e-mail finds: {after:?}");
    let audit = school.verify_audit(&head)?;
    println!(
        "the school's audit trail: {} entries, {} problem(s)",
        audit.entries,
        audit.problems.len()
    );

    // The agency is deprovisioned: kept a week, cancellable, then destroyed.
    let state = agency.deprovision(&director, DEPROVISION_GRACE)?;
    println!("the agency is deprovisioned: {state:?}");
    records.into_db().close()?;
    Ok(())
}
