//! The replay loop: reads the log and applies to the store every frame it
//! has not applied yet.
//!
//! One loop body, [`Applier::apply`], serves crash recovery on open (fed by
//! the local log), point-in-time restore and the standby (fed by archived
//! pieces, stopping at a target or resuming where they stopped). It needs
//! no record keys: sealed records go to the store as they are, so replay
//! reads only the frame MAC key, and asks the keyring only which scopes are
//! destroyed (their entries are skipped).

use std::collections::BTreeSet;
use std::path::Path;

use crate::crypto::SecretKey;
use crate::crypto::keyring::Keyring;
use crate::error::{CorruptionKind, Error, Result};
use crate::format::LOG_ID_LEN;
use crate::fs::Files;
use crate::scope::{Scope, TenantId};
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
    let mut applier = Applier::new(store, keyring)?;
    let mark = applier.last;
    let mut log = read_log(files, wal_dir, mac_key, log_id, |frame| {
        check_frame(store, &mark, frame)?;
        applier.apply(frame, wal_dir).map(drop)
    })?;
    if log.segments.is_empty() {
        // No log at all (a new database, a restored one): it starts after
        // the store's last frame, linked to it (a restore's first frame is
        // chained to the frame of the history it came from).
        if let Some(mac) = mark.mac {
            log.last_mac = mac;
        }
    } else if check_end(store, &mark, &log)? == Standing::Ahead {
        // The store is ahead of the log (a power cut under `SyncInterval`):
        // the log goes on from its own last frame, so that is the link the
        // next open will find (FORMAT §9.4).
        store.rebase_applied(&Applied {
            mac: Some(log.last_mac),
            ..mark
        })?;
    }
    tracing::info!(
        applied_before = mark.lsn,
        frames = applier.frames,
        last_lsn = log.last_lsn,
        "replay: done"
    );
    Ok(Replayed {
        log,
        store_before: mark,
        frames: applier.frames,
    })
}

/// Applies frames to the store in LSN order, each in one atomic store
/// write with its applied mark: the body of the one replay loop, whatever
/// feeds it (the local log at open, archived pieces in a restore or a
/// standby).
///
/// Invariant: after each call the store's applied mark is `last`, and every
/// frame up to it was applied once, in order.
pub(crate) struct Applier<'a> {
    store: &'a Store,
    keyring: &'a Keyring,
    /// The store's last frame.
    last: Applied,
    /// Frames applied by this applier.
    frames: u64,
    /// Destroyed scopes whose entries it skipped.
    skipped: BTreeSet<Scope>,
    /// Only this tenant's entries are applied (a per-tenant restore).
    only: Option<TenantId>,
}

impl<'a> Applier<'a> {
    pub(crate) fn new(store: &'a Store, keyring: &'a Keyring) -> Result<Applier<'a>> {
        Ok(Applier {
            store,
            keyring,
            last: store.applied()?,
            frames: 0,
            skipped: BTreeSet::new(),
            only: None,
        })
    }

    /// Applies only `tenant`'s entries (its own scope and its subjects'):
    /// the frames' marks still advance, every other entry is left out.
    pub(crate) fn only_tenant(&mut self, tenant: TenantId) {
        self.only = Some(tenant);
    }

    /// The store's last frame.
    pub(crate) fn last(&self) -> Applied {
        self.last
    }

    /// Frames applied so far.
    pub(crate) fn frames(&self) -> u64 {
        self.frames
    }

    /// The destroyed scopes whose entries were skipped so far.
    pub(crate) fn skipped_mut(&mut self) -> &mut BTreeSet<Scope> {
        &mut self.skipped
    }

    /// Applies `frame` (read from `source`) if it is the store's next, and
    /// says whether it did: a frame at or below the store's mark is already
    /// there (skipped); one past the next is a gap in the history,
    /// [`CorruptionKind::LogGap`]; one whose link is not the store's last
    /// frame's MAC is [`CorruptionKind::MacChain`].
    pub(crate) fn apply(&mut self, frame: &LogFrame<'_>, source: &Path) -> Result<bool> {
        let lsn = frame.header.lsn;
        if lsn <= self.last.lsn {
            return Ok(false);
        }
        if lsn != self.last.lsn + 1 {
            return Err(Error::corruption(
                source,
                0,
                CorruptionKind::LogGap {
                    applied: self.last.lsn,
                    first: lsn,
                },
            ));
        }
        if self.last.mac.is_some_and(|mac| mac != frame.prev_mac) {
            return Err(Error::corruption(source, 0, CorruptionKind::MacChain));
        }
        // A destroyed scope's entries cannot be decrypted and must not come
        // back into the store: they are skipped, and that is not an error.
        let mut kept = Vec::with_capacity(frame.entries.len());
        for entry in &frame.entries {
            if self.only.is_some_and(|t| t != entry.scope.tenant) {
                continue;
            }
            if self.keyring.is_destroyed(entry.scope)? {
                self.skipped.insert(entry.scope);
            } else {
                kept.push(*entry);
            }
        }
        let this = Applied {
            lsn,
            commit_us: frame.header.commit_time_us,
            mac: Some(frame.mac),
        };
        self.store.apply(&kept, &this, self.keyring.epoch())?;
        self.last = this;
        self.frames += 1;
        if self.frames.is_multiple_of(10_000) {
            tracing::info!(lsn, frames = self.frames, "replay: applying the log");
        }
        Ok(true)
    }
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
