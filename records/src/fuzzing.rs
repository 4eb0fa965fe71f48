//! Entry points for the fuzz target `records_objects` in `fuzz/` (cargo
//! feature `fuzzing` only; not part of the public API, and no stability
//! promise).
//!
//! The record layer keeps its objects as engine values: subject entries,
//! identifiers, records, consent ledgers, audit entries and the audit head,
//! the memory of aggregate releases, the retention sweep's mark and the
//! tenant's meta, in the byte encoding of `codec.rs`; the tenant's
//! configuration and its members as JSON. The engine seals them, so only
//! someone holding the keys can change them, but a decoder must still turn
//! any bytes into a value or an error, never a panic.
//!
//! [`decode_objects`] takes the first input byte as a selector (the
//! `OBJECTS` table below: numbers are fixed, a new object takes the next
//! one, so that grown corpora keep their meaning) and feeds the rest to that
//! object's real decoder. Whatever decodes must re-encode to exactly the
//! same bytes: the encodings are canonical (a record's fields sorted, each
//! once; a release's subjects in order). JSON objects must come back equal
//! after `serde_json` writes and reads them again.
//!
//! [`seeds`] gives a valid input of each object, made with the real
//! encoders: the seed corpus `fuzz/corpus/records_objects/seed-NN` (written
//! by `fuzz/run seeds`).

use std::collections::BTreeMap;

use crate::audit::{AuditEntry, AuditHead};
use crate::config::{CONSENT_RENEWAL_DEFAULT, Level, Purpose, TenantConfig, Unit};
use crate::consent::{self, ConsentAction, ConsentEvent};
use crate::policy::{Membership, Permission};
use crate::record::{Stored, StoredRecord, Value};
use crate::retention::SweepMark;
use crate::schema::FieldClass;
use crate::subjects::{Identifiers, SubjectEntry};
use crate::tenant::{self, Ledger};

use crate::aggregate::release::Release;

/// The objects, by selector byte (the first input byte): an input whose
/// first byte is `n` is decoded as `OBJECTS[n]`. Other first bytes are
/// ignored.
const OBJECTS: [&str; 11] = [
    "audit_entry",   // 0: `AuditEntry`, `r/audit/<n>`
    "audit_head",    // 1: `AuditHead`, `r/audit-head`
    "subject_entry", // 2: `SubjectEntry`, the registry
    "identifiers",   // 3: `Identifiers` and salt, `r/ids`
    "record",        // 4: `StoredRecord`, `r/rec/<type>/<id>`
    "consent",       // 5: a consent ledger
    "release",       // 6: an aggregate release's population
    "sweep_mark",    // 7: `SweepMark`, `r/sweep`
    "tenant_meta",   // 8: index key and ledger, `r/meta`
    "tenant_config", // 9: `TenantConfig` (JSON), `r/config`
    "membership",    // 10: `Membership` (JSON), `r/member/<actor>`
];

/// Bounds the `within` calls on a fuzzed configuration (units squared).
const UNITS_WALKED_MAX: usize = 8;

/// Decodes `data[1..]` as the object `data[0]` selects (see the module
/// documentation) and checks that whatever decodes encodes back to the
/// same bytes (or, for a record and the JSON objects, to the same value).
/// Panics only when that check fails.
pub fn decode_objects(data: &[u8]) {
    if let Some((&selector, rest)) = data.split_first() {
        decode_one(selector, rest);
    }
}

/// Decodes `bytes` as object `selector` and checks its round trip; returns
/// whether it decoded (false for an unknown selector).
fn decode_one(selector: u8, bytes: &[u8]) -> bool {
    match selector {
        0 => AuditEntry::decode(bytes)
            .map(|e| same_bytes(selector, bytes, &e.encode()))
            .is_ok(),
        1 => AuditHead::decode(bytes)
            .map(|h| same_bytes(selector, bytes, &h.encode()))
            .is_ok(),
        2 => SubjectEntry::decode(bytes)
            .map(|e| same_bytes(selector, bytes, &e.encode()))
            .is_ok(),
        3 => Identifiers::decode(bytes)
            .map(|(ids, salt)| same_bytes(selector, bytes, &ids.encode(&salt)))
            .is_ok(),
        4 => StoredRecord::decode(bytes)
            .map(|r| same_bytes(selector, bytes, &r.encode()))
            .is_ok(),
        5 => consent::decode(bytes)
            .map(|events| same_bytes(selector, bytes, &consent::encode(&events)))
            .is_ok(),
        6 => Release::decode(bytes)
            .map(|r| same_bytes(selector, bytes, &r.encode()))
            .is_ok(),
        7 => SweepMark::decode(bytes)
            .map(|m| same_bytes(selector, bytes, &m.encode()))
            .is_ok(),
        8 => tenant::decode_meta(bytes)
            .map(|(key, ledger)| same_bytes(selector, bytes, &tenant::encode_meta(&key, &ledger)))
            .is_ok(),
        9 => serde_json::from_slice::<TenantConfig>(bytes)
            .map(config_checks)
            .is_ok(),
        10 => serde_json::from_slice::<Membership>(bytes)
            .map(|m| same_json(selector, &m))
            .is_ok(),
        _ => false,
    }
}

/// Asserts that an object decoded from `input` encodes back to it.
fn same_bytes(selector: u8, input: &[u8], encoded: &[u8]) {
    assert!(
        encoded == input,
        "{} decodes but re-encodes to other bytes:\n input   {input:02x?}\n encoded {encoded:02x?}",
        OBJECTS[usize::from(selector)],
    );
}

/// Runs a fuzzed configuration's checks (validation, the unit hierarchy's
/// walk, which must end even on a cycle that validation would refuse) and
/// its JSON round trip.
fn config_checks(config: TenantConfig) {
    let _ = config.validate();
    let names: Vec<&str> = config
        .units
        .iter()
        .take(UNITS_WALKED_MAX)
        .map(|u| u.name.as_str())
        .collect();
    for unit in &names {
        for ancestor in &names {
            let _ = config.within(unit, ancestor);
        }
    }
    same_json(9, &config);
}

/// Asserts that a value decoded from JSON comes back equal once written as
/// JSON and read again.
fn same_json<T>(selector: u8, value: &T)
where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let what = OBJECTS[usize::from(selector)];
    let json = serde_json::to_vec(value);
    let again = json
        .as_ref()
        .ok()
        .and_then(|json| serde_json::from_slice::<T>(json).ok());
    assert!(
        again.as_ref() == Some(value),
        "{what} does not survive JSON:\n value {value:?}\n json  {json:?}\n again {again:?}",
    );
}

/// Valid inputs of every object (its selector byte first), made with the
/// real encoders, each with a name: the seed corpus of `records_objects`.
pub fn seeds() -> Vec<(String, Vec<u8>)> {
    let entry = AuditEntry {
        seq: 41,
        time_us: 1_700_000_000_000_000,
        actor: "staff-2".into(),
        role: "caseworker".into(),
        unit: "north".into(),
        purpose: "care".into(),
        reason: "enrolment".into(),
        action: "write".into(),
        subject: Some(3),
        detail: "profile/0: name, address".into(),
        outcome: "ok".into(),
        prev_hash: [0xa5; 32],
    };
    let denied = AuditEntry {
        seq: 0,
        subject: None,
        action: "assign".into(),
        detail: String::new(),
        outcome: "permission denied".into(),
        prev_hash: crate::audit::GENESIS,
        ..entry.clone()
    };
    let record = StoredRecord {
        created_us: 1_700_000_000_000_000,
        changed_us: 1_700_000_100_000_000,
        fields: BTreeMap::from([
            ("name".to_string(), Stored::Value(Value::from("Ada"))),
            ("year".to_string(), Stored::Value(Value::from(-7))),
            (
                "pin".to_string(),
                Stored::SecretHash(
                    "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo".into(),
                ),
            ),
        ]),
    };
    let day = 86_400_000_000;
    let ledger = vec![
        ConsentEvent {
            action: ConsentAction::OptIn,
            at_us: day,
            expires_us: Some(day * 1_097),
        },
        ConsentEvent {
            action: ConsentAction::Renew,
            at_us: day * 2,
            expires_us: Some(day * 1_098),
        },
        ConsentEvent {
            action: ConsentAction::OptOut,
            at_us: day * 3,
            expires_us: None,
        },
    ];
    let release = Release {
        record_type: "profile".into(),
        fields: vec!["year".into(), "visits".into()],
        population: (1..=5)
            .map(|s| (s * 3, vec![[s as u8; 16], [0x77; 16]]))
            .collect(),
    };
    let meta = Ledger {
        head: AuditHead::EMPTY,
        next_subject: 9,
        releases: 2,
        erasing: vec![4, 7],
    };
    let config = TenantConfig::seeded(vec![
        Unit {
            name: "area".into(),
            level: Level::Area,
            parent: None,
        },
        Unit {
            name: "group".into(),
            level: Level::Group,
            parent: Some("area".into()),
        },
        Unit {
            name: "school".into(),
            level: Level::Location,
            parent: Some("group".into()),
        },
    ]);
    let mut small = TenantConfig::seeded(vec![]);
    small.roles.truncate(1);
    small.contact_roles.clear();
    small.purposes = vec![Purpose::with_consent(
        crate::config::RESEARCH,
        CONSENT_RENEWAL_DEFAULT,
    )];
    let member = Membership {
        role: "caseworker".into(),
        unit: "school".into(),
        grants: [Permission::Export, Permission::Read(FieldClass::Sensitive)].into(),
    };
    let objects: Vec<(u8, Vec<u8>)> = vec![
        (0, entry.encode()),
        (0, denied.encode()),
        (1, AuditHead::EMPTY.encode()),
        (
            1,
            AuditHead {
                next_seq: 42,
                last_hash: [0x3c; 32],
            }
            .encode(),
        ),
        (
            2,
            SubjectEntry {
                unit: "school".into(),
                created_us: day,
                ended_us: Some(day * 400),
                index: vec![(0, [0x11; 32]), (2, [0x22; 32])],
            }
            .encode(),
        ),
        (
            2,
            SubjectEntry {
                unit: "*".into(),
                created_us: 0,
                ended_us: None,
                index: vec![],
            }
            .encode(),
        ),
        (
            3,
            Identifiers::new()
                .email("ada@example.org")
                .phone("+44 20 7946 0000")
                .external_id("P-1815")
                .encode(&[0x5e; 32]),
        ),
        (3, Identifiers::new().encode(&[0; 32])),
        (4, record.encode()),
        (
            4,
            StoredRecord {
                created_us: 1,
                changed_us: 1,
                fields: BTreeMap::new(),
            }
            .encode(),
        ),
        (5, consent::encode(&ledger)),
        (5, consent::encode(&[])),
        (6, release.encode()),
        (
            7,
            SweepMark {
                as_of_us: day * 30,
                next_subject: 17,
            }
            .encode(),
        ),
        (8, tenant::encode_meta(&[0x77; 32], &meta).to_vec()),
        (9, json(&config)),
        (9, json(&small)),
        (10, json(&member)),
    ];
    let mut counts = [0usize; OBJECTS.len()];
    objects
        .into_iter()
        .map(|(selector, bytes)| {
            let n = &mut counts[usize::from(selector)];
            *n += 1;
            let name = format!("{}-{}", OBJECTS[usize::from(selector)], *n);
            (name, [&[selector][..], &bytes].concat())
        })
        .collect()
}

/// A seed's JSON, as the layer would store it.
fn json<T: serde::Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    /// Every object has a seed, every seed decodes (and round-trips), and
    /// every cut of a seed runs clean.
    #[test]
    fn seeds_decode_and_cuts_run_clean() {
        let seeds = seeds();
        for selector in 0..OBJECTS.len() as u8 {
            assert!(
                seeds.iter().any(|(_, s)| s[0] == selector),
                "{} has a seed",
                OBJECTS[usize::from(selector)]
            );
        }
        for (name, seed) in &seeds {
            assert!(decode_one(seed[0], &seed[1..]), "seed {name} decodes");
            for cut in 0..seed.len() {
                decode_objects(&seed[..cut]);
            }
        }
        decode_objects(&[]);
        decode_objects(&[OBJECTS.len() as u8, 1, 0]);
    }

    /// A record's decoder takes fields out of order and a name twice; the
    /// value, not the bytes, round-trips.
    #[test]
    fn a_record_with_fields_out_of_order_or_twice_is_refused() {
        let field = |name: &str, v: i64| {
            let mut b = (name.len() as u32).to_le_bytes().to_vec();
            b.extend_from_slice(name.as_bytes());
            b.push(2);
            b.extend_from_slice(&v.to_le_bytes());
            b
        };
        let mut bytes = vec![1];
        bytes.extend_from_slice(&[0; 16]);
        bytes.extend_from_slice(&3u32.to_le_bytes());
        for (name, v) in [("b", 1), ("a", 2), ("b", 3)] {
            bytes.extend(field(name, v));
        }
        assert!(StoredRecord::decode(&bytes).is_err());
        decode_objects(&[&[4][..], &bytes].concat());
    }

    /// Writes the seed corpus to
    /// `$STRONGROOM_FUZZ_SEEDS/records_objects/seed-NN` (removing older
    /// `seed-*` files there). `fuzz/run seeds` runs it.
    #[test]
    #[ignore = "writes the seed corpus; run by fuzz/run seeds"]
    fn write_seed_corpus() {
        let dir = PathBuf::from(
            std::env::var_os("STRONGROOM_FUZZ_SEEDS").expect("STRONGROOM_FUZZ_SEEDS is set"),
        )
        .join("records_objects");
        std::fs::create_dir_all(&dir).unwrap();
        for old in std::fs::read_dir(&dir).unwrap() {
            let old = old.unwrap().path();
            if old
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("seed-"))
            {
                std::fs::remove_file(old).unwrap();
            }
        }
        for (i, (_, input)) in seeds().iter().enumerate() {
            std::fs::write(dir.join(format!("seed-{i:02}")), input).unwrap();
        }
    }
}
