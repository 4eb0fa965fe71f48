//! The parent's checks of a reopened database: records against the model of
//! acknowledged writes, refusals of sealed and shredded scopes, and the
//! forensic check of a closed database.

use std::collections::BTreeSet;
use std::path::Path;

use strongroom::archive::LocalArchive;
use strongroom::forensic::{Found, backups, decrypt_archive, decrypt_backup, decrypt_everything};
use strongroom::{Db, Error, ScopeState, SubjectId, TenantId};

use super::report::Stats;
use super::scope::{Target, read_scope, scan_scope, scope_state, scopes_of};
use super::workload::{Op, State, describe, key_name, owner_of, places_of};
use super::{KEPT_TENANTS, KEYS_PER_WRITER, WRITERS, archive_dir, options, parent_options};

/// What the parent knows between kill points.
#[derive(Default)]
pub(crate) struct World {
    /// Every record of every live scope.
    pub state: State,
    /// Target scopes of earlier kill points that ended live.
    pub live_targets: BTreeSet<Target>,
    /// Scopes found shredded (a shredded tenant's subjects among them).
    pub shredded: BTreeSet<Target>,
}

impl World {
    pub fn is_shredded(&self, target: Target) -> bool {
        self.shredded.contains(&target) || self.shredded.contains(&target.tenant_scope())
    }

    /// The scopes known live: the kept tenants' and earlier targets'.
    pub fn live_scopes(&self) -> Vec<Target> {
        let mut live = scopes_of(&KEPT_TENANTS);
        live.extend(self.live_targets.iter().copied());
        live
    }
}

/// What became of a writer thread's op in flight at the kill.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// No op was in flight.
    Idle,
    Applied,
    NotApplied,
    /// The scopes read cannot tell (the op's records look the same either
    /// way, or are in scopes not read).
    Invisible,
}

/// A scope found sealed or shredded must refuse a get, a scan and a put
/// with that very error.
pub(crate) fn check_refusal(db: &Db, target: Target, found: ScopeState) -> Result<(), String> {
    let expected = |e: &Error| match (found, e) {
        (ScopeState::Shredded, Error::Shredded { scope }) => *scope == target.scope(),
        (ScopeState::Sealed { deadline_us }, Error::Sealed { deadline_us: d, .. }) => {
            *d == deadline_us
        }
        _ => false,
    };
    let verdict = |what: &str, result: Result<String, Error>| match result {
        Err(e) if expected(&e) => Ok(()),
        other => Err(format!(
            "{target} is {found:?}, but a {what} returned {other:?}"
        )),
    };
    if found == ScopeState::Live {
        return Ok(());
    }
    verdict(
        "get",
        read_scope(db, target, &key_name(0, 0)).map(|v| format!("{:?}", describe(v.as_ref()))),
    )?;
    verdict(
        "scan",
        scan_scope(db, target).map(|r| format!("{} records", r.len())),
    )?;
    let tenant = db.tenant(TenantId(target.tenant));
    let put = match target.subject {
        None => tenant.put(b"probe", b"never stored"),
        Some(s) => tenant.subject(SubjectId(s)).put(b"probe", b"never stored"),
    };
    verdict("put", put.map(|lsn| format!("{lsn:?}")))
}

/// Reads every record of the `checked` (live) scopes, by get and by scan.
fn read_records(db: &Db, checked: &[Target]) -> Result<State, String> {
    let mut found = State::new();
    for &target in checked {
        for thread in 0..WRITERS {
            for n in 0..KEYS_PER_WRITER {
                let key = key_name(thread, n);
                let value = read_scope(db, target, &key)
                    .map_err(|e| format!("get of {target} key {key} failed: {e}"))?;
                if let Some(value) = value {
                    found.insert((target, key), value);
                }
            }
        }
        // A scan must show exactly what the gets showed: no record that
        // was never written, none twice, none missing.
        let scanned =
            scan_scope(db, target).map_err(|e| format!("scan of {target} failed: {e}"))?;
        let mut seen = BTreeSet::new();
        for (key, value) in scanned {
            let name = String::from_utf8_lossy(&key).into_owned();
            if owner_of(&name).is_none() {
                return Err(format!(
                    "scan of {target} found key {name:?} ({}), which no writer ever wrote",
                    describe(Some(&value))
                ));
            }
            let expected = found.get(&(target, name.clone()));
            if expected != Some(&value) {
                return Err(format!(
                    "scan of {target} found key {name} = {}, but get returned {}",
                    describe(Some(&value)),
                    describe(expected)
                ));
            }
            if !seen.insert(name.clone()) {
                return Err(format!("scan of {target} returned key {name} twice"));
            }
        }
        for ((t, key), value) in found.range((target, String::new())..) {
            if *t != target {
                break;
            }
            if !seen.contains(key) {
                return Err(format!(
                    "scan of {target} missed key {key} = {}, which get returns",
                    describe(Some(value))
                ));
            }
        }
    }
    Ok(found)
}

/// Reads the `checked` scopes and checks them, thread by thread, against
/// `state` (acknowledged writes applied) and `state` plus the thread's write
/// in flight: each thread's records must be one or the other, so each scope
/// is a prefix of its history. Returns what was found, and what became of
/// each thread's write in flight.
pub(crate) fn verify_records(
    db: &Db,
    state: &State,
    in_flight: &[Option<Op>],
    checked: &[Target],
    stats: &mut Stats,
) -> Result<(State, Vec<Outcome>), String> {
    let found = read_records(db, checked)?;
    stats.records_checked += found.len() as u64;
    let mut outcomes = Vec::with_capacity(WRITERS);
    for (thread, op) in in_flight.iter().enumerate() {
        let places = places_of(thread, checked);
        let mut after = state.clone();
        if let Some(op) = op {
            op.apply_to(&mut after);
        }
        let differences = |expected: &State| -> Vec<String> {
            places
                .iter()
                .filter(|place| expected.get(*place) != found.get(*place))
                .map(|place| {
                    format!(
                        "  {} key {}: expected {}, found {}",
                        place.0,
                        place.1,
                        describe(expected.get(place)),
                        describe(found.get(place))
                    )
                })
                .collect()
        };
        let (without, with) = (differences(state), differences(&after));
        let outcome = match op {
            None if without.is_empty() => Outcome::Idle,
            None => {
                return Err(format!(
                    "thread {thread} had no write in flight, but its records in live scopes \
                     differ from its acknowledged writes:\n{}",
                    without.join("\n")
                ));
            }
            Some(op) => match (without.is_empty(), with.is_empty()) {
                (true, true) => Outcome::Invisible,
                (true, false) => Outcome::NotApplied,
                (false, true) => Outcome::Applied,
                (false, false) => {
                    return Err(format!(
                        "thread {thread}: the records of live scopes match neither its \
                         acknowledged writes nor those plus its write in flight ({}).\nCompared \
                         with the acknowledged writes alone:\n{}\nCompared with the write in \
                         flight applied as well:\n{}",
                        op.encode(),
                        without.join("\n"),
                        with.join("\n")
                    ));
                }
            },
        };
        outcomes.push(outcome);
    }
    Ok((found, outcomes))
}

/// With the database closed: no record of a shredded scope decrypts, from
/// the log or the store, and the store's records that decrypt are exactly
/// the live ones.
///
/// `all_backups`: read back every backup in the archive (an epoch's final
/// check), else only the newest (each kill point).
pub(crate) fn forensic_check(
    db_dir: &Path,
    world: &World,
    all_backups: bool,
    stats: &mut Stats,
) -> Result<(), String> {
    super::archive::check_after_close(db_dir, stats)?;
    let archive = LocalArchive::new(archive_dir(db_dir));
    let archived = decrypt_archive(db_dir, &options(db_dir), &archive)
        .map_err(|e| format!("forensic::decrypt_archive failed: {e}"))?;
    for record in &archived {
        let target = Target::of_scope(record.scope);
        if world.is_shredded(target) {
            return Err(format!(
                "a record of shredded {target} decrypts from the archive ({:?})",
                record.found
            ));
        }
        stats.decrypted_from_archive += 1;
    }
    // Backups the children took (at their first open, and now and then)
    // read back whole, and nothing of a shredded scope decrypts from them.
    let mut listed = backups(db_dir, &options(db_dir), &archive)
        .map_err(|e| format!("forensic::backups failed: {e}"))?;
    if !all_backups {
        listed.drain(..listed.len().saturating_sub(1));
    }
    let scratch = archive_dir(db_dir).with_extension("scratch");
    for (name, _) in &listed {
        let records = decrypt_backup(db_dir, &options(db_dir), &archive, name, &scratch)
            .map_err(|e| format!("reading backup {name} failed: {e}"))?;
        for record in records {
            let target = Target::of_scope(record.scope);
            if world.is_shredded(target) {
                return Err(format!(
                    "a record of shredded {target} decrypts from backup {name}"
                ));
            }
            stats.decrypted_from_backups += 1;
        }
    }
    stats.backups_read += listed.len() as u64;
    let records = decrypt_everything(db_dir, &options(db_dir))
        .map_err(|e| format!("forensic::decrypt_everything failed: {e}"))?;
    let mut in_store = State::new();
    for record in records {
        let target = Target::of_scope(record.scope);
        let key = String::from_utf8_lossy(&record.key).into_owned();
        if world.is_shredded(target) {
            return Err(format!(
                "a record of shredded {target} decrypts from {:?}: key {key:?} = {}",
                record.found,
                describe(Some(&record.value))
            ));
        }
        match record.found {
            Found::Log(_) => stats.decrypted_from_log += 1,
            Found::Store => {
                stats.decrypted_from_store += 1;
                if in_store
                    .insert((target, key.clone()), record.value)
                    .is_some()
                {
                    return Err(format!("the store holds {target} key {key} twice"));
                }
            }
            other => return Err(format!("decrypt_everything found a record in {other:?}")),
        }
    }
    if in_store != world.state {
        let mut differences = Vec::new();
        for place in world.state.keys().chain(in_store.keys()) {
            let (expected, found) = (world.state.get(place), in_store.get(place));
            if expected != found {
                differences.push(format!(
                    "  {} key {}: expected {}, the store decrypts {}",
                    place.0,
                    place.1,
                    describe(expected),
                    describe(found)
                ));
            }
        }
        differences.dedup();
        return Err(format!(
            "the store's decryptable records differ from the live records:\n{}",
            differences.join("\n")
        ));
    }
    Ok(())
}

/// After the last kill point: every scope ever written is still what it was
/// when checked (live and whole, or shredded), and a final forensic check.
pub(crate) fn final_check(db_dir: &Path, world: &World, stats: &mut Stats) -> Result<(), String> {
    let db =
        Db::open(db_dir, parent_options(db_dir)).map_err(|e| format!("reopening failed: {e}"))?;
    db.run_maintenance()
        .map_err(|e| format!("maintenance failed: {e}"))?;
    let live = world.live_scopes();
    for &target in live.iter().chain(world.shredded.iter()) {
        let found =
            scope_state(&db, target).map_err(|e| format!("state() of {target} failed: {e}"))?;
        let expected = if world.is_shredded(target) {
            ScopeState::Shredded
        } else {
            ScopeState::Live
        };
        if found != expected {
            return Err(format!("{target} is {found:?}, but was {expected:?}"));
        }
        check_refusal(&db, target, found)?;
    }
    let no_writes = vec![None; WRITERS];
    let (found, _) = verify_records(&db, &world.state, &no_writes, &live, stats)?;
    if found != world.state {
        return Err("the records read differ from those checked before".into());
    }
    db.close().map_err(|e| format!("closing failed: {e}"))?;
    forensic_check(db_dir, world, true, stats)
}
