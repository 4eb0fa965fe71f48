//! The archive's part of the check. The child ships its log to a folder
//! beside its database every `SHIP_INTERVAL`, takes backups and applies a
//! short retention policy now and then; after each kill, before the parent
//! reopens anything, the archive must hold pieces that follow each other (no
//! gap, no overlap, FORMAT.md §12.2) from LSN 1, or from at most one past
//! its oldest backup (retention deletes manifests before the pieces they
//! made redundant), every write acknowledged at least `SHIP_LAG_ALLOWED`
//! before the kill, and at most two copies of any keyring file (a new one
//! put, the old not deleted yet); after the reopen, one pass ships
//! everything the log holds and leaves one copy of each keyring file.

use std::collections::BTreeMap;
use std::path::Path;

use strongroom::Db;
use strongroom::archive::{Archive, LocalArchive};

use super::protocol::Transcript;
use super::report::Stats;
use super::{SHIP_LAG_ALLOWED, archive_dir};

/// The last LSN the archive can restore to (`None`: nothing): the end of
/// the pieces, checked to follow each other from LSN 1 or from no later than
/// one past the oldest backup, or that backup's LSN when no piece is needed
/// after it; and every keyring file checked to have at most `copies_max`
/// copies.
fn archived_through(
    db_dir: &Path,
    copies_max: usize,
    stats: &mut Stats,
) -> Result<Option<u64>, String> {
    let archive = LocalArchive::new(archive_dir(db_dir));
    let objects = archive
        .list("")
        .map_err(|e| format!("listing the archive failed: {e}"))?;
    let oldest_backup = objects
        .iter()
        .filter_map(|o| o.name.rsplit('/').next()?.strip_suffix(".backup"))
        .filter_map(|stem| stem.split_once('-')?.0.parse::<u64>().ok())
        .min();
    let mut copies: BTreeMap<&str, usize> = BTreeMap::new();
    for object in objects.iter().filter(|o| o.name.contains("/keyring/")) {
        if object.name.contains("/keyring/retired/") {
            continue; // one object per retired version, not copies of a file
        }
        let (folder, _) = object.name.rsplit_once('/').unwrap_or_default();
        *copies.entry(folder).or_default() += 1;
    }
    if let Some((folder, n)) = copies.iter().find(|(_, n)| **n > copies_max) {
        return Err(format!(
            "the archive holds {n} copies of keyring file {folder} (at most {copies_max})"
        ));
    }
    let mut ranges = Vec::new();
    // Backups (and their SST files) and the keyring are there too: only the
    // log's pieces.
    for object in objects.iter().filter(|o| o.name.contains("/wal/")) {
        let Some(file) = object.name.rsplit('/').next() else {
            continue;
        };
        let Some((first, last)) = file
            .strip_suffix(".seg")
            .and_then(|stem| stem.split_once('-'))
            .and_then(|(a, b)| Some((a.parse::<u64>().ok()?, b.parse::<u64>().ok()?)))
        else {
            return Err(format!(
                "the archive holds {}, not a log piece",
                object.name
            ));
        };
        ranges.push((first, last, &object.name));
    }
    // Pieces wholly at or below the oldest backup are redundant (a restore
    // starts from a backup): retention deletes them, and a shipper whose
    // record lagged may put some again after a retention pass deleted the
    // piece it would have resumed after. Only the pieces from the oldest
    // backup on must follow each other.
    ranges.retain(|(_, last, _)| oldest_backup.is_none_or(|b| *last > b));
    let mut next = None;
    let mut pieces = 0;
    for (first, last, name) in ranges {
        let expected = match next {
            Some(next) => next,
            None if first == 1 || oldest_backup.is_some_and(|b| first <= b + 1) => first,
            None => {
                return Err(format!(
                    "the archive's first piece {name} starts after its oldest backup ({oldest_backup:?}) + 1"
                ));
            }
        };
        if first != expected || last < first {
            return Err(format!(
                "archive piece {name} does not follow LSN {} (a gap or an overlap)",
                expected - 1
            ));
        }
        next = Some(last + 1);
        pieces += 1;
    }
    stats.pieces_archived = stats.pieces_archived.max(pieces);
    // The archive holds every frame through the oldest backup (a restore
    // starts there), then through the last piece that follows it.
    Ok(next.map(|n| n - 1).max(oldest_backup))
}

/// At a kill: every write acknowledged long enough before it is archived.
pub(crate) fn check_at_kill(
    db_dir: &Path,
    transcript: &Transcript,
    kill_sent_us: u64,
    stats: &mut Stats,
) -> Result<(), String> {
    let archived = archived_through(db_dir, 2, stats)?.unwrap_or(0);
    let lag_us = SHIP_LAG_ALLOWED.as_micros() as u64;
    for &(lsn, acked_us) in &transcript.acks {
        if acked_us + lag_us > kill_sent_us {
            continue;
        }
        if lsn > archived {
            return Err(format!(
                "a write acknowledged {} ms before the kill (LSN {lsn}) is not in the archive, \
                 which holds LSNs up to {archived}",
                (kill_sent_us - acked_us) / 1000
            ));
        }
        stats.acks_found_archived += 1;
    }
    Ok(())
}

/// After the reopen: one pass ships every frame the log held before it
/// (the background maintenance may commit more meanwhile: re-encryption).
pub(crate) fn check_after_reopen(db: &Db, db_dir: &Path, stats: &mut Stats) -> Result<(), String> {
    let logged = db.last_lsn().0;
    db.ship_now()
        .map_err(|e| format!("shipping after the reopen failed: {e}"))?;
    // Background passes may be putting a keyring copy meanwhile.
    let archived = archived_through(db_dir, 2, stats)?.unwrap_or(0);
    if archived < logged {
        return Err(format!(
            "after the reopen and a pass the archive holds LSNs up to {archived}, the log up to {logged}"
        ));
    }
    Ok(())
}

/// After a clean close (its last pass synced the keyring): one copy of
/// every keyring file, and the pieces still in order.
pub(crate) fn check_after_close(db_dir: &Path, stats: &mut Stats) -> Result<(), String> {
    archived_through(db_dir, 1, stats).map(drop)
}
