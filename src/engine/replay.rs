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
use crate::store::Store;
use crate::wal::{LogSummary, read_log};

/// What a replay did.
#[derive(Debug)]
pub(crate) struct Replayed {
    pub(crate) log: LogSummary,
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
pub(crate) fn replay(
    files: &Files,
    wal_dir: &Path,
    mac_key: &SecretKey,
    log_id: &[u8; LOG_ID_LEN],
    store: &Store,
    keyring: &Keyring,
) -> Result<Replayed> {
    let applied = store.applied_lsn()?;
    let mut frames = 0u64;
    let mut expected = applied + 1;
    let log = read_log(files, wal_dir, mac_key, log_id, |frame| {
        let lsn = frame.header.lsn;
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
        store.apply(&kept, lsn)?;
        frames += 1;
        expected = lsn + 1;
        if frames.is_multiple_of(10_000) {
            tracing::info!(lsn, frames, "replay: applying the log");
        }
        Ok(())
    })?;
    tracing::info!(
        applied_before = applied,
        frames,
        last_lsn = log.last_lsn,
        "replay: done"
    );
    Ok(Replayed { log, frames })
}
