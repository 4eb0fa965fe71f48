//! Retention through the engine, on a simulated clock: a dry run deletes
//! nothing and says what a pass would; a pass deletes the manifests of the
//! backups the policy drops and every object no kept backup needs, and every
//! kept backup still reads, with the log from the oldest of them on whole.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::options;
use strongroom::archive::{Archive, LocalArchive};
use strongroom::forensic::decrypt_backup;
use strongroom::{ArchiveOptions, Db, ManualClock, RetentionPolicy, TenantId};

const HOUR: Duration = Duration::from_secs(3600);

fn names(archive: &dyn Archive, suffix: &str) -> Vec<String> {
    archive
        .list("")
        .unwrap()
        .into_iter()
        .map(|o| o.name)
        .filter(|n| n.ends_with(suffix))
        .collect()
}

/// (first, last) LSN of every piece, in order.
fn pieces(archive: &dyn Archive) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = names(archive, ".seg")
        .iter()
        .map(|n| {
            let file = n.rsplit('/').next().unwrap().trim_end_matches(".seg");
            let (a, b) = file.split_once('-').unwrap();
            (a.parse().unwrap(), b.parse().unwrap())
        })
        .collect();
    out.sort();
    out
}

#[test]
fn retention_on_a_local_folder() {
    let archive_dir = tempfile::tempdir().unwrap();
    retention_keeps_what_the_policy_says_and_everything_a_kept_backup_needs(Arc::new(
        LocalArchive::new(archive_dir.path()),
    ));
}

#[test]
fn retention_on_an_s3_bucket() {
    let garage = common::garage::shared();
    retention_keeps_what_the_policy_says_and_everything_a_kept_backup_needs(Arc::new(
        garage.archive(),
    ));
}

fn retention_keeps_what_the_policy_says_and_everything_a_kept_backup_needs(
    archive: Arc<dyn Archive>,
) {
    let dir = tempfile::tempdir().unwrap();
    let scratch = tempfile::tempdir().unwrap();
    // 2026-01-01T00:00Z.
    let clock = Arc::new(ManualClock::at(1_767_225_600_000_000));
    let policy = RetentionPolicy {
        hourly: 12 * HOUR,
        daily: 3 * 24 * HOUR,
        weekly: Duration::ZERO,
        monthly: Some(Duration::ZERO),
    };
    let db = Db::open(
        dir.path(),
        options().clock(clock.clone()).archive(
            ArchiveOptions::new(archive.clone())
                .ship_interval(Duration::from_millis(20))
                .backup_interval(None)
                .retention(Some(policy)),
        ),
    )
    .unwrap();
    // Four days, a backup every three hours, five new records before each.
    let mut taken = Vec::new();
    for round in 0..32 {
        clock.advance(3 * HOUR);
        for i in 0..5 {
            db.tenant(TenantId(1))
                .put(format!("k{round}-{i}").as_bytes(), b"v")
                .unwrap();
        }
        db.flush().unwrap();
        taken.push((db.backup_now().unwrap(), (round + 1) * 5));
    }
    db.ship_now().unwrap();
    let before: Vec<String> = names(&*archive, "");
    let plan = db.retention_plan().unwrap();
    assert_eq!(names(&*archive, ""), before, "a dry run deletes nothing");
    // The last 12 hours (5 backups: 0, 3, 6, 9, 12 h old), and the newest of
    // each of the days within 3 days.
    assert!(
        plan.kept_backups.len() >= 7 && plan.kept_backups.len() <= 9,
        "{plan:?}"
    );
    assert_eq!(plan.kept_backups.len() + plan.deleted_backups.len(), 32);
    assert!(!plan.deleted_objects.is_empty());
    let applied = db.apply_retention().unwrap();
    assert_eq!(applied, plan);
    let mut left = names(&*archive, ".backup");
    left.sort();
    let mut kept = plan.kept_backups.clone();
    kept.sort();
    assert_eq!(left, kept);
    // Every kept backup reads whole; the log from the oldest on is whole.
    db.close().unwrap();
    for (info, records) in &taken {
        if !kept.contains(&info.name) {
            continue;
        }
        let found = decrypt_backup(
            dir.path(),
            &options(),
            &*archive,
            &info.name,
            &scratch.path().join("b"),
        )
        .unwrap();
        assert_eq!(found.len(), *records, "{}", info.name);
    }
    let oldest = plan.oldest_lsn.unwrap();
    let ranges = pieces(&*archive);
    let mut next = ranges[0].0;
    assert!(
        next <= oldest + 1,
        "the log from the oldest kept backup on: {ranges:?}"
    );
    for (first, last) in &ranges {
        assert!(*first <= next, "no gap: {ranges:?}");
        next = next.max(last + 1);
    }
    let last_lsn = taken.last().unwrap().0.applied_lsn.0;
    assert!(next > last_lsn);
    // Nothing older than the oldest kept backup is left.
    assert!(ranges.iter().all(|(_, last)| *last > oldest));
    // A second pass has nothing to delete.
    let db = Db::open(
        dir.path(),
        options().clock(clock.clone()).archive(
            ArchiveOptions::new(archive.clone())
                .backup_interval(None)
                .retention(Some(policy)),
        ),
    )
    .unwrap();
    let again = db.apply_retention().unwrap();
    assert!(
        again.deleted_backups.is_empty() && again.deleted_objects.is_empty(),
        "{again:?}"
    );
    db.close().unwrap();
}
