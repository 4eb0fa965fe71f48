//! What a run of the harness counts and reports.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

macro_rules! counters {
    ($($(#[$doc:meta])* $name:ident,)*) => {
        /// Counts of a run, summed over its kill points and loops.
        #[derive(Debug, Clone, Default)]
        pub struct Stats {
            $($(#[$doc])* pub $name: u64,)*
            /// Most log segments seen at once after a kill.
            pub segments_max: u64,
            /// Most log pieces seen in one archive.
            pub pieces_archived: u64,
        }

        impl Stats {
            /// Adds `other`'s counts to these.
            pub fn merge(&mut self, other: &Stats) {
                $(self.$name += other.$name;)*
                self.segments_max = self.segments_max.max(other.segments_max);
                self.pieces_archived = self.pieces_archived.max(other.pieces_archived);
            }
        }
    };
}

counters! {
    /// Kill points tried (children killed and checked, or failed).
    kill_points,
    /// Database folders used (each a fresh database).
    epochs,
    /// Kills that came before the child had opened the database.
    killed_before_open,
    kills_at_spawn,
    kills_after_open,
    kills_in_admin_calls,
    kills_past_deadline,
    /// Kill points whose awaited event never came (killed anyway).
    kills_given_up,
    /// Writes (ops) issued and acknowledged, and refused as sealed or
    /// shredded.
    issued,
    acked,
    refused_sealed,
    refused_shredded,
    /// Writes in flight at a kill, found applied, not applied, or without a
    /// visible difference.
    in_flight_applied,
    in_flight_not_applied,
    in_flight_invisible,
    immediate_acked,
    grace_acked,
    shreds_refused,
    cancels_acked,
    /// Acknowledged cancels that ended after their seal's deadline (they won
    /// the race with the destruction).
    cancels_past_deadline,
    cancels_refused,
    rotations_acked,
    rotations_refused,
    /// Acknowledged seals whose deadline passed before the kill.
    deadlines_passed_in_child,
    /// Admin calls in flight at a kill, and how many took effect.
    immediate_in_flight,
    immediate_in_flight_done,
    grace_in_flight,
    grace_in_flight_done,
    cancel_in_flight,
    cancel_in_flight_done,
    rotations_in_flight,
    sealed_at_reopen,
    cancelled_by_parent,
    expired_by_parent,
    targets_whole,
    targets_shredded,
    records_checked,
    decrypted_from_log,
    decrypted_from_store,
    segments_created,
    /// Acknowledged writes found in the archive at a kill (those older than
    /// the allowed shipping lag).
    acks_found_archived,
    /// Records of the model decrypted from the archive at an epoch's end.
    decrypted_from_archive,
    /// Backups read back at an epoch's end, and the records in them.
    backups_read,
    decrypted_from_backups,
    /// Kills after which a segment the parent had seen was gone (removed by
    /// the child's checkpoint).
    kills_after_segment_removal,
}

impl Stats {
    /// Shreds acknowledged (immediate and with a grace period).
    pub fn shreds(&self) -> u64 {
        self.immediate_acked + self.grace_acked
    }

    /// The one-line summary: kill points, acknowledged ops, shreds, cancels,
    /// rotations and `failures`.
    pub fn summary(&self, failures: usize) -> String {
        format!(
            "kill points {}, acknowledged ops {}, shreds {}, cancels {}, rotations {}, \
             failures {failures}",
            self.kill_points,
            self.acked,
            self.shreds(),
            self.cancels_acked,
            self.rotations_acked,
        )
    }
}

impl fmt::Display for Stats {
    /// Everything, in a few lines.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "kills: {} in {} database folders ({} from the spawn, {} after the open, {} in an \
             admin call, {} past a seal's deadline, {} after waiting in vain; {} before the \
             child had opened the database)",
            self.kill_points,
            self.epochs,
            self.kills_at_spawn,
            self.kills_after_open,
            self.kills_in_admin_calls,
            self.kills_past_deadline,
            self.kills_given_up,
            self.killed_before_open,
        )?;
        writeln!(
            f,
            "writes: issued {}, acked {}, refused {} sealed + {} shredded; in flight at the \
             kill: {} found applied, {} not applied, {} without visible effect",
            self.issued,
            self.acked,
            self.refused_sealed,
            self.refused_shredded,
            self.in_flight_applied,
            self.in_flight_not_applied,
            self.in_flight_invisible,
        )?;
        writeln!(
            f,
            "shreds: acked {} immediate + {} with grace ({} due before the kill), {} refused; \
             cancels acked {} ({} after the deadline), refused {}; rotations acked {}, refused \
             {}; in flight at the kill (done/all): immediate {}/{}, grace {}/{}, cancels {}/{}, \
             rotations {}",
            self.immediate_acked,
            self.grace_acked,
            self.deadlines_passed_in_child,
            self.shreds_refused,
            self.cancels_acked,
            self.cancels_past_deadline,
            self.cancels_refused,
            self.rotations_acked,
            self.rotations_refused,
            self.immediate_in_flight_done,
            self.immediate_in_flight,
            self.grace_in_flight_done,
            self.grace_in_flight,
            self.cancel_in_flight_done,
            self.cancel_in_flight,
            self.rotations_in_flight,
        )?;
        write!(
            f,
            "checks: sealed at reopen {} (parent cancelled {}, let expire {}); target scopes \
             ended whole {}, shredded {}; {} records checked; decrypted from the log {}, from \
             the store {}, from the archive {}; log: {} segments created, up to {} at once, \
             segments removed before {} kills; archive: up to {} pieces, {} acknowledged writes \
             found archived at a kill, {} backups read back ({} records)",
            self.sealed_at_reopen,
            self.cancelled_by_parent,
            self.expired_by_parent,
            self.targets_whole,
            self.targets_shredded,
            self.records_checked,
            self.decrypted_from_log,
            self.decrypted_from_store,
            self.decrypted_from_archive,
            self.segments_created,
            self.segments_max,
            self.kills_after_segment_removal,
            self.pieces_archived,
            self.acks_found_archived,
            self.backups_read,
            self.decrypted_from_backups,
        )
    }
}

/// A kill point (or an epoch's final check) whose check failed.
#[derive(Debug, Clone)]
pub struct Failure {
    /// The kill loop it happened in, of `loops`.
    pub worker: usize,
    pub loops: usize,
    /// Its database folder's number in that loop.
    pub epoch: u64,
    /// The kill point in the epoch, or `None` for the epoch's final check.
    pub iteration: Option<u64>,
    /// The run's seed.
    pub seed: u64,
    /// What was wrong.
    pub message: String,
    /// The database folder, kept as it was.
    pub kept: PathBuf,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = match self.iteration {
            Some(i) => format!("kill point {i}"),
            None => "the final check".to_string(),
        };
        write!(
            f,
            "FAILURE in loop {}, database folder {}, {at} (seed {}): {}\n  database kept at {}\n  \
             to reproduce: strongroom torture --seed {} --loops {} (the same kill points come \
             again, in the same order; thread timing differs from run to run)",
            self.worker,
            self.epoch,
            self.seed,
            self.message,
            self.kept.display(),
            self.seed,
            self.loops,
        )
    }
}

/// The outcome of a run.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub stats: Stats,
    pub failures: Vec<Failure>,
    pub elapsed: Duration,
}
