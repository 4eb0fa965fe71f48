//! The crash harness: a child process runs a random workload and is killed
//! with SIGKILL at random moments; after each kill the parent reopens the
//! database and checks it against a model of what the child reported.
//!
//! # The child
//!
//! The child is the `strongroom` binary itself, run as
//! `strongroom harness-child --dir D --seed S --iteration I` (a hidden
//! subcommand; [`run_child`]). It opens the database (small log segments, so
//! the log rolls and the background checkpoint removes segments while it
//! runs) and, until it is killed, runs [`WRITERS`] writer threads (puts,
//! deletes, batches through a tenant's or a subject's handle, across tenants
//! and subjects, and imports: batches that write to several subjects at
//! once, creating their keys as one group) and one admin thread (shreds of tenants and subjects,
//! immediate or with a grace period, cancels, and tenant key rotations, whose
//! background re-encryption then runs alongside everything else). Each
//! thread reports every call before it makes it and every answer after, one
//! line each on stdout, flushed at once (`protocol.rs` has the grammar).
//!
//! # Scopes
//!
//! Tenants [`KEPT_TENANTS`] are never shredded: their records carry over
//! from kill to kill. Kill point `i` also has two fresh tenants,
//! `256(i+1)+7` and `256(i+1)+8` (they share keyring shards with the kept
//! ones, so every shred of them rewrites a shard holding a kept tenant's
//! key), whose scopes are the admin thread's targets; no later kill point
//! touches them, so once checked they are settled for good (whole and live,
//! or shredded). Each writer thread owns its keys (`t{thread}-k{n}`, in every
//! scope), so per key the order of writes is the thread's program order, and
//! every value starts with the id of the op that wrote it.
//!
//! # The check
//!
//! After each kill the parent ([`run`]) reopens the database under a
//! `ManualClock` that starts at the system's time and checks (`model.rs`,
//! `check.rs`):
//!
//! - every acknowledged write is present, and nothing that was never written:
//!   each thread's keys, in every live scope, show its acknowledged ops, plus
//!   its one op in flight whole or not at all (so each scope is a prefix of
//!   its history); a scan shows exactly what the gets show;
//! - every target scope's state is one its acknowledged shreds and cancels
//!   (and the one in flight) allow, and a sealed or shredded scope refuses a
//!   get, a scan and a put with that very error;
//! - reads work before maintenance (rotations interrupted by the kill), and
//!   again after the parent has cancelled about half of the sealed scopes,
//!   moved its clock past every deadline and run maintenance: then every
//!   target is live and whole, or shredded;
//! - after close, `forensic::decrypt_everything`: no record of a shredded
//!   scope decrypts from any file, and the store's decryptable records are
//!   exactly the model's live records.
//!
//! One database folder serves an *epoch* of [`EPOCH_KILL_POINTS`] kill
//! points, so history accumulates; then a final check, and a fresh folder.
//! A failing folder is kept.
//!
//! # Running it
//!
//! [`run`] runs kill loops side by side (each on its own folders) until a
//! number of kill points or a moment ([`Stop`]). `tools/tests/crash.rs` runs
//! 1,000 kill points in CI with the binary cargo built for the test;
//! `strongroom torture --minutes N` runs for as long as asked with its own
//! binary as the child, printing progress and every failure.

mod archive;
mod check;
mod child;
mod kill;
mod model;
mod parent;
mod protocol;
mod report;
mod scope;
mod workload;

use std::ops::RangeInclusive;
use std::time::Duration;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use strongroom::archive::LocalArchive;
use strongroom::{ArchiveOptions, Durability, Options, RetentionPolicy};

pub use child::run_child;
pub use parent::{Config, Stop, run};
pub use report::{Failure, Report, Stats};

const MASTER_KEY: [u8; 32] = *b"strongroom crash harness key 32!";
/// Small segments, so that the log rolls often and the background
/// maintenance (every 200 ms) finds sealed segments to remove.
const SEGMENT_BYTES_MAX: u64 = 16 << 10;
/// Writer threads of the child.
pub const WRITERS: usize = 3;
const KEYS_PER_WRITER: usize = 12;
/// Tenants never shredded.
pub const KEPT_TENANTS: [u64; 2] = [7, 8];
/// Subjects of every tenant; 1 and 1025 share a subject shard, as do 2 and
/// 2050, and 3 and 3075. A target tenant's subjects are new at every kill
/// point, so their keys are created while writers race: concurrently (in
/// groups) and by import batches that create several at once.
const SUBJECTS: [u64; 9] = [1, 2, 1025, 2050, 3, 3075, 4, 5, 6];
/// Subjects one import batch writes to, at most.
const IMPORT_SUBJECTS_MAX: usize = 6;
/// Values carry 0..=PAD_MAX padding bytes, so frames vary in size and some
/// records cross the 512-byte compression threshold.
const PAD_MAX: usize = 1200;
/// Short grace periods, in ms: many end while the child runs, and its
/// background maintenance destroys and reclaims the scope.
const SHORT_GRACE_MS: RangeInclusive<u64> = 20..=150;
/// Long grace periods end only when the parent moves its clock.
const LONG_GRACE: Duration = Duration::from_secs(30);
/// How far the parent moves its clock to pass every deadline.
const PAST_EVERY_DEADLINE: Duration = Duration::from_secs(120);
/// Pause of the admin thread between two actions, in ms.
const ADMIN_PAUSE_MS: RangeInclusive<u64> = 0..=8;
/// Kill points per database folder.
pub const EPOCH_KILL_POINTS: u64 = 50;

/// How often the child ships its log to the archive.
const SHIP_INTERVAL: Duration = Duration::from_millis(100);
/// How long after its acknowledgement a write must be in the archive at a
/// kill: one ship interval, plus a second for the pass itself on a machine
/// as loaded as the harness makes it (each pass puts a piece and syncs
/// `SHIPPED`).
const SHIP_LAG_ALLOWED: Duration = Duration::from_millis(1100);

/// The archive of the database in `db_dir`: a folder beside it.
pub(crate) fn archive_dir(db_dir: &Path) -> PathBuf {
    let mut name = db_dir
        .file_name()
        .expect("a database folder")
        .to_os_string();
    name.push("-archive");
    db_dir.with_file_name(name)
}

/// The options of every open of the database in `db_dir`, child's and
/// parent's (the parent adds its clock): it ships to its archive.
fn options(db_dir: &Path) -> Options {
    // The archive folder exists before the first open (a local archive
    // never makes its own root).
    let _ = std::fs::create_dir_all(archive_dir(db_dir));
    let archive = Arc::new(LocalArchive::new(archive_dir(db_dir)));
    Options::with_key(MASTER_KEY)
        .segment_bytes_max(SEGMENT_BYTES_MAX)
        .durability(Durability::SyncEveryCommit)
        .archive(
            ArchiveOptions::new(archive)
                .ship_interval(SHIP_INTERVAL)
                .retention(Some(RETENTION)),
        )
}

/// The parent's options: the child's without retention passes of its own,
/// so that the parent's listings of the archive (a walk of folders, not one
/// atomic view) never race a deletion of its own database's.
fn parent_options(db_dir: &Path) -> Options {
    let mut options = options(db_dir);
    if let Some(archive) = options.archive.as_mut() {
        archive.retention = None;
    }
    options
}

/// A retention policy of seconds, so that passes in a run delete manifests,
/// SST files, pieces and retired keys: the newest backup of each hour
/// within 3 s, and the newest backup.
const RETENTION: RetentionPolicy = RetentionPolicy {
    hourly: Duration::from_secs(3),
    daily: Duration::ZERO,
    weekly: Duration::ZERO,
    monthly: Some(Duration::ZERO),
};
