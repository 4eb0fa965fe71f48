//! The archive's part of the check. The child ships its log to a folder
//! beside its database every `SHIP_INTERVAL`; after each kill, before the
//! parent reopens anything, the archive must hold pieces that follow each
//! other from LSN 1 (no gap, no overlap, FORMAT.md §12.2) and every write
//! acknowledged at least `SHIP_LAG_ALLOWED` before the kill; after the
//! reopen, one pass ships everything the log holds.

use std::path::Path;

use strongroom::Db;
use strongroom::archive::{Archive, LocalArchive};

use super::protocol::Transcript;
use super::report::Stats;
use super::{SHIP_LAG_ALLOWED, archive_dir};

/// The LSN ranges of the archive's log pieces, in order, checked to follow
/// each other from LSN 1; `None` if there is none.
fn archived_through(db_dir: &Path, stats: &mut Stats) -> Result<Option<u64>, String> {
    let archive = LocalArchive::new(archive_dir(db_dir));
    let objects = archive
        .list("")
        .map_err(|e| format!("listing the archive failed: {e}"))?;
    let mut next = 1;
    let mut pieces = 0;
    // Backups (and their SST files) are there too: only the log's pieces.
    for object in objects.into_iter().filter(|o| o.name.contains("/wal/")) {
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
        if first != next || last < first {
            return Err(format!(
                "archive piece {} does not follow LSN {} (a gap or an overlap)",
                object.name,
                next - 1
            ));
        }
        next = last + 1;
        pieces += 1;
    }
    stats.pieces_archived = stats.pieces_archived.max(pieces);
    Ok((next > 1).then_some(next - 1))
}

/// At a kill: every write acknowledged long enough before it is archived.
pub(crate) fn check_at_kill(
    db_dir: &Path,
    transcript: &Transcript,
    kill_sent_us: u64,
    stats: &mut Stats,
) -> Result<(), String> {
    let archived = archived_through(db_dir, stats)?.unwrap_or(0);
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
    let archived = archived_through(db_dir, stats)?.unwrap_or(0);
    if archived < logged {
        return Err(format!(
            "after the reopen and a pass the archive holds LSNs up to {archived}, the log up to {logged}"
        ));
    }
    Ok(())
}
