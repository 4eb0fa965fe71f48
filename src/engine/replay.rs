//! The replay loop: reads the log and applies to the store every frame it
//! has not applied yet.
//!
//! One loop serves crash recovery on open today, and point-in-time restore
//! and the standby (which stop at a target, or resume where they stopped)
//! later. It needs no record keys: sealed records go to the store as they
//! are, so replay reads only the frame MAC key, and asks the keyring only
//! which scopes are destroyed (their entries are skipped).

use std::path::Path;

use crate::crypto::SecretKey;
use crate::crypto::keyring::Keyring;
use crate::error::{CorruptionKind, Error, Result};
use crate::format::LOG_ID_LEN;
use crate::fs::Files;
use crate::store::{Applied, Store};
use crate::wal::{LogFrame, LogSummary, read_log};

/// What a replay did.
#[derive(Debug)]
pub(crate) struct Replayed {
    pub(crate) log: LogSummary,
    /// The store's last frame before the replay.
    pub(crate) store_before: Applied,
    /// Frames applied to the store.
    pub(crate) frames: u64,
}

/// Verifies the whole log and applies the frames after the store's applied
/// LSN, in order, each in one atomic store write.
///
/// Every frame applied must follow the one before (the first, the store's
/// applied LSN): a log that lacks a frame the store has not applied has lost
/// history, [`CorruptionKind::LogGap`]. (The log has gaps only where the
/// store was ahead of it at an open, so a gap inside what the store holds is
/// expected and skipped.)
///
/// The store's own last frame must be the log's frame at that LSN (its MAC,
/// or the next frame's link to it): else the store comes from another
/// history of the database, [`CorruptionKind::StoreDiverged`].
pub(crate) fn replay(
    files: &Files,
    wal_dir: &Path,
    mac_key: &SecretKey,
    log_id: &[u8; LOG_ID_LEN],
    store: &Store,
    keyring: &Keyring,
) -> Result<Replayed> {
    let mark = store.applied()?;
    let applied = mark.lsn;
    let mut frames = 0u64;
    let mut expected = applied + 1;
    let log = read_log(files, wal_dir, mac_key, log_id, |frame| {
        let lsn = frame.header.lsn;
        check_frame(store, &mark, frame)?;
        if lsn <= applied {
            return Ok(());
        }
        if lsn != expected {
            return Err(Error::corruption(
                wal_dir,
                0,
                CorruptionKind::LogGap {
                    applied: expected - 1,
                    first: lsn,
                },
            ));
        }
        // A destroyed scope's entries cannot be decrypted and must not come
        // back into the store: they are skipped, and that is not an error.
        let mut kept = Vec::with_capacity(frame.entries.len());
        for entry in &frame.entries {
            if !keyring.is_destroyed(entry.scope)? {
                kept.push(*entry);
            }
        }
        let this = Applied {
            lsn,
            commit_us: frame.header.commit_time_us,
            mac: Some(frame.mac),
        };
        store.apply(&kept, &this, keyring.epoch())?;
        frames += 1;
        expected = lsn + 1;
        if frames.is_multiple_of(10_000) {
            tracing::info!(lsn, frames, "replay: applying the log");
        }
        Ok(())
    })?;
    if check_end(store, &mark, &log)? == Standing::Ahead {
        // The store is ahead of the log (a power cut under `SyncInterval`):
        // the log goes on from its own last frame, so that is the link the
        // next open will find (FORMAT §9.4).
        store.rebase_applied(&Applied {
            mac: Some(log.last_mac),
            ..mark
        })?;
    }
    tracing::info!(
        applied_before = applied,
        frames,
        last_lsn = log.last_lsn,
        "replay: done"
    );
    Ok(Replayed {
        log,
        store_before: mark,
        frames,
    })
}

/// Checks that the store's last frame is this log's, applying nothing: what
/// open asks when the store has seen a newer keyring than this one, to tell
/// a store of another history (which carries its own keyring's epoch) from
/// a keyring put back from an older copy.
pub(crate) fn check_store_history(
    files: &Files,
    wal_dir: &Path,
    mac_key: &SecretKey,
    log_id: &[u8; LOG_ID_LEN],
    store: &Store,
) -> Result<()> {
    let mark = store.applied()?;
    let log = read_log(files, wal_dir, mac_key, log_id, |frame| {
        check_frame(store, &mark, frame)
    })?;
    check_end(store, &mark, &log).map(|_| ())
}

/// Where the store's last frame stands against the log, once it was read.
#[derive(Debug, PartialEq, Eq)]
enum Standing {
    /// In the log (or before it, vouched for by the link of its next frame).
    Level,
    /// Past the log's last frame.
    Ahead,
}

/// The log's frame at the store's applied LSN must be the store's (its
/// MAC), and so must the next frame's link to it.
fn check_frame(store: &Store, mark: &Applied, frame: &LogFrame<'_>) -> Result<()> {
    let lsn = frame.header.lsn;
    let vouches = match lsn {
        _ if lsn == mark.lsn => Some(&frame.mac),
        _ if lsn == mark.lsn + 1 => Some(&frame.prev_mac),
        _ => None,
    };
    if let (Some(log_mac), Some(store_mac)) = (vouches, &mark.mac)
        && log_mac != store_mac
    {
        return Err(store.corruption(CorruptionKind::StoreDiverged { lsn: mark.lsn }));
    }
    Ok(())
}

/// After the whole log: a store frame the log does not hold must be the
/// link of the log's last segment if that starts right after it
/// (checkpoints removed the rest); else the store is ahead of the log.
fn check_end(store: &Store, mark: &Applied, log: &LogSummary) -> Result<Standing> {
    let (applied, Some(store_mac)) = (mark.lsn, mark.mac) else {
        return Ok(Standing::Level);
    };
    if applied <= log.last_lsn {
        return Ok(Standing::Level);
    }
    let reach = log
        .segments
        .last()
        .map_or(0, |s| s.first_lsn - 1)
        .max(log.last_lsn);
    if reach == applied && log.last_mac != store_mac {
        return Err(store.corruption(CorruptionKind::StoreDiverged { lsn: applied }));
    }
    Ok(if reach < applied {
        Standing::Ahead
    } else {
        Standing::Level
    })
}
