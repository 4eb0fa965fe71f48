//! What the record layer's tests share: a database on a manual clock, a
//! schema with every field class, a tenant with the seed roles and units,
//! and a member of each seed role.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use strongroom::{Db, ManualClock, Options, TenantId};
use strongroom_records::*;

pub const KEY: [u8; 32] = [0x33; 32];
pub const TENANT: TenantId = TenantId(1);
pub const DAY: Duration = Duration::from_secs(86_400);
pub const SEED_ROLES: [&str; 6] = [
    "admin",
    "caseworker",
    "viewer",
    "analyst",
    "privacy_officer",
    "contact_officer",
];

pub fn schema() -> Schema {
    let years = FieldKind::Category(["1", "2", "3"].map(String::from).to_vec());
    let houses = FieldKind::Category(["red", "blue"].map(String::from).to_vec());
    Schema::new()
        .with(
            RecordType::new("profile")
                .single()
                .field("name", FieldClass::Identifier)
                .field("address", FieldClass::Contact)
                .field("health", FieldClass::Sensitive)
                .field_of("year", FieldClass::Ordinary, years)
                .field_of("house", FieldClass::Ordinary, houses)
                .field_of("visits", FieldClass::Ordinary, FieldKind::Integer)
                .field("pin", FieldClass::Secret),
        )
        .and_then(|s| {
            s.with(
                RecordType::new("case_note")
                    .field("text", FieldClass::Sensitive)
                    .retain(30 * DAY, RetentionFrom::Creation),
            )
        })
        .and_then(|s| {
            s.with(
                RecordType::new("enquiry")
                    .field("topic", FieldClass::Ordinary)
                    .retain(90 * DAY, RetentionFrom::LastChange),
            )
        })
        .and_then(|s| {
            s.with(
                RecordType::new("membership")
                    .field("number", FieldClass::Identifier)
                    .retain(365 * DAY, RetentionFrom::EndOfRelationship),
            )
        })
        .expect("the test schema holds together")
}

pub fn units() -> Vec<Unit> {
    let unit = |name: &str, level, parent: Option<&str>| Unit {
        name: name.to_string(),
        level,
        parent: parent.map(String::from),
    };
    vec![
        unit("north", Level::Area, None),
        unit("north-schools", Level::Group, Some("north")),
        unit("hillside", Level::Location, Some("north-schools")),
        unit("riverside", Level::Location, Some("north-schools")),
        unit("south", Level::Area, None),
        unit("south-schools", Level::Group, Some("south")),
        unit("seaside", Level::Location, Some("south-schools")),
    ]
}

/// A database folder, its clock and the record layer over it.
pub struct World {
    pub dir: tempfile::TempDir,
    pub clock: Arc<ManualClock>,
    pub records: Records,
}

pub fn db_options(clock: &Arc<ManualClock>) -> Options {
    Options::with_key(KEY).clock(Arc::clone(clock) as _)
}

pub fn records_options(clock: &Arc<ManualClock>) -> RecordsOptions {
    RecordsOptions {
        clock: Arc::clone(clock) as _,
        // Cheap Argon2id for tests: the costs are parameters, not the check.
        secret_memory_kib: 64,
        secret_passes: 1,
    }
}

pub fn open_records(path: &Path, clock: &Arc<ManualClock>) -> Records {
    let db = Db::open(path, db_options(clock)).expect("open");
    Records::new(db, schema(), records_options(clock))
}

/// The context of the test member of `role` (`<role>-1`, at `*`).
pub fn ctx(role: &str) -> Access {
    Access::new(&format!("{role}-1"), role, WHOLE_TENANT, "care", "a test")
}

/// A fresh world: tenant 1 set up with the seed configuration, one member
/// of each seed role at the whole tenant.
pub fn world() -> World {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let clock = Arc::new(ManualClock::starting_now());
    let records = open_records(dir.path(), &clock);
    {
        let tenant = records
            .set_up_tenant(&ctx("admin"), TENANT, TenantConfig::seeded(units()))
            .expect("set up");
        for role in SEED_ROLES.iter().filter(|r| **r != "admin") {
            tenant
                .assign(&ctx("admin"), &format!("{role}-1"), role, WHOLE_TENANT)
                .expect("assign");
        }
    }
    World {
        dir,
        clock,
        records,
    }
}

impl World {
    pub fn tenant(&self) -> TenantRecords<'_> {
        self.records.tenant(TENANT).expect("tenant")
    }
}

/// Every file under `dir`, recursively.
pub fn all_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        if path.is_dir() {
            for entry in std::fs::read_dir(&path).unwrap() {
                stack.push(entry.unwrap().path());
            }
        } else {
            files.push(path);
        }
    }
    files
}

/// The files under `dir` that hold `needle` as bytes, in UTF-16 or in hex.
pub fn files_holding(dir: &Path, needle: &str) -> Vec<PathBuf> {
    let forms: Vec<Vec<u8>> = vec![
        needle.as_bytes().to_vec(),
        needle
            .encode_utf16()
            .flat_map(|u| u.to_le_bytes())
            .collect(),
        needle
            .bytes()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
            .into_bytes(),
    ];
    all_files(dir)
        .into_iter()
        .filter(|p| {
            let bytes = std::fs::read(p).unwrap_or_default();
            forms
                .iter()
                .any(|f| bytes.windows(f.len()).any(|w| w == &f[..]))
        })
        .collect()
}
