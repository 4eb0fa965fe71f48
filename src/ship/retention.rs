//! Retention: which base backups to keep (grandfather-father-son), and which
//! archive objects no kept backup needs any more.
//!
//! A backup's time is the commit time of the last frame it holds (its
//! manifest's `commit_us`): the moment it restores to. Each tier keeps the
//! newest backup of every period (hour, day, week from Monday, calendar
//! month, all UTC) not older than the tier's window; the newest backup is
//! always kept. Every object is then kept that a restore to any moment from
//! the oldest kept backup on needs: the SST files any kept backup names, every
//! piece with a frame after the oldest kept backup's LSN, every retired key
//! version retired after it. With no backup at all, nothing is deleted.
//!
//! [`plan`] is a pure function of the archive's contents and the time, so
//! that a year of hourly backups is checked in a test without a year passing.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

const HOUR_US: u64 = 3_600_000_000;
const DAY_US: u64 = 24 * HOUR_US;

/// How long backups are kept, per tier (grandfather-father-son): the newest
/// backup of each hour for `hourly`, of each day for `daily`, of each week
/// for `weekly`, of each calendar month for `monthly` (`None`: forever).
/// Default: 72 hours, 7 days, 5 weeks, months forever.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// How long the newest backup of each hour is kept.
    pub hourly: Duration,
    /// How long the newest backup of each day is kept.
    pub daily: Duration,
    /// How long the newest backup of each week is kept.
    pub weekly: Duration,
    /// How long the newest backup of each month is kept (`None`: forever).
    pub monthly: Option<Duration>,
}

impl Default for RetentionPolicy {
    fn default() -> Self {
        RetentionPolicy {
            hourly: Duration::from_secs(72 * 3600),
            daily: Duration::from_secs(7 * 86_400),
            weekly: Duration::from_secs(35 * 86_400),
            monthly: None,
        }
    }
}

impl RetentionPolicy {
    /// Keeps nothing older than `limit` in any tier: `RetentionPolicy::
    /// default().at_most(Duration::from_secs(35 * 86_400))` is "35 days".
    pub fn at_most(self, limit: Duration) -> Self {
        RetentionPolicy {
            hourly: self.hourly.min(limit),
            daily: self.daily.min(limit),
            weekly: self.weekly.min(limit),
            monthly: Some(self.monthly.map_or(limit, |m| m.min(limit))),
        }
    }
}

/// A backup, as retention sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BackupEntry {
    /// Its manifest's name.
    pub(crate) name: String,
    pub(crate) applied_lsn: u64,
    pub(crate) commit_us: u64,
    /// The SST objects it names.
    pub(crate) objects: Vec<String>,
}

/// What the archive holds, as retention sees it.
#[derive(Debug, Default)]
pub(crate) struct Contents {
    pub(crate) backups: Vec<BackupEntry>,
    /// Every SST object.
    pub(crate) ssts: Vec<String>,
    /// Every piece, with its last LSN.
    pub(crate) pieces: Vec<(String, u64)>,
    /// Every retired key, with the LSN it was retired at.
    pub(crate) retired: Vec<(String, u64)>,
}

/// What a retention pass keeps and deletes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionPlan {
    /// The backups kept (manifest names), oldest first.
    pub kept_backups: Vec<String>,
    /// The backups deleted (manifest names): deleted first.
    pub deleted_backups: Vec<String>,
    /// The other objects deleted (SST files, pieces, retired keys), after
    /// the manifests.
    pub deleted_objects: Vec<String>,
    /// The oldest moment a restore can reach after the pass: the oldest
    /// kept backup's LSN (`None`: no backup).
    pub oldest_lsn: Option<u64>,
}

/// The plan for `contents` at `now_us` under `policy`.
pub(crate) fn plan(policy: &RetentionPolicy, now_us: u64, contents: &Contents) -> RetentionPlan {
    let kept = kept_backups(policy, now_us, &contents.backups);
    let mut backups: Vec<&BackupEntry> = contents.backups.iter().collect();
    backups.sort_by(|a, b| (a.applied_lsn, &a.name).cmp(&(b.applied_lsn, &b.name)));
    let (kept_list, deleted): (Vec<&BackupEntry>, Vec<&BackupEntry>) =
        backups.into_iter().partition(|b| kept.contains(&b.name));
    let Some(oldest) = kept_list.iter().map(|b| b.applied_lsn).min() else {
        return RetentionPlan::default();
    };
    let needed: BTreeSet<&str> = kept_list
        .iter()
        .flat_map(|b| b.objects.iter().map(String::as_str))
        .collect();
    let mut deleted_objects: Vec<String> = contents
        .ssts
        .iter()
        .filter(|sst| !needed.contains(sst.as_str()))
        .cloned()
        .collect();
    // A piece whose every frame is at or below the oldest kept backup's LSN
    // reaches no moment a restore can start from any more.
    deleted_objects.extend(
        contents
            .pieces
            .iter()
            .filter(|(_, last)| *last <= oldest)
            .map(|(name, _)| name.clone()),
    );
    // A version retired at LSN r sealed frames below r only, and no store
    // at or after r holds a record under it (the rotation re-sealed them all
    // before retiring it).
    deleted_objects.extend(
        contents
            .retired
            .iter()
            .filter(|(_, retired_at)| *retired_at <= oldest)
            .map(|(name, _)| name.clone()),
    );
    RetentionPlan {
        kept_backups: kept_list.iter().map(|b| b.name.clone()).collect(),
        deleted_backups: deleted.iter().map(|b| b.name.clone()).collect(),
        deleted_objects,
        oldest_lsn: Some(oldest),
    }
}

/// The names of the backups `policy` keeps at `now_us`.
fn kept_backups(
    policy: &RetentionPolicy,
    now_us: u64,
    backups: &[BackupEntry],
) -> BTreeSet<String> {
    let mut kept = BTreeSet::new();
    // Each tier: its window, and the period a time falls in.
    type Period = fn(u64) -> u64;
    let tiers: [(Duration, Period); 4] = [
        (policy.hourly, |t| t / HOUR_US),
        (policy.daily, |t| t / DAY_US),
        // Weeks from Monday: 1970-01-01 was a Thursday.
        (policy.weekly, |t| (t / DAY_US + 3) / 7),
        (policy.monthly.unwrap_or(Duration::MAX), month_of),
    ];
    for (window, period) in tiers {
        let window = u64::try_from(window.as_micros()).unwrap_or(u64::MAX);
        // The newest backup of each period within the window.
        let mut newest: BTreeMap<u64, &BackupEntry> = BTreeMap::new();
        for backup in backups {
            if now_us.saturating_sub(backup.commit_us) > window {
                continue;
            }
            let slot = newest.entry(period(backup.commit_us)).or_insert(backup);
            if (backup.commit_us, backup.applied_lsn) > (slot.commit_us, slot.applied_lsn) {
                *slot = backup;
            }
        }
        kept.extend(newest.values().map(|b| b.name.clone()));
    }
    if let Some(newest) = backups.iter().max_by_key(|b| (b.applied_lsn, b.commit_us)) {
        kept.insert(newest.name.clone());
    }
    kept
}

/// The calendar month (UTC) of a time in microseconds since the epoch, as
/// year × 12 + month index (the proleptic Gregorian calendar's civil-from-
/// days conversion).
fn month_of(t_us: u64) -> u64 {
    let (year, month, _) = civil_from_days(t_us / DAY_US);
    year * 12 + (month - 1)
}

/// (year, month 1..=12, day 1..=31) of day `days` since 1970-01-01.
pub(crate) fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates_match_known_days() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(59), (1970, 3, 1));
        // 2000-02-29 (a leap day of a century year) and 2026-12-06.
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(20_793), (2026, 12, 6));
        // 1970-01-05 was a Monday: the first day of week 1.
        assert_eq!((4 + 3) / 7, 1);
        assert_eq!((3 + 3) / 7, 0);
    }

    /// A year of hourly backups, each naming the SST of its own hour and of
    /// the day before it (shared files), with a piece per hour and a
    /// rotation every 30 days.
    fn a_year(start_us: u64) -> (Contents, u64) {
        let mut contents = Contents::default();
        let hours = 365 * 24;
        for h in 0..hours {
            let commit_us = start_us + h * HOUR_US + 1_000;
            let lsn = (h + 1) * 10;
            contents.ssts.push(format!("sst/{h}"));
            contents.pieces.push((format!("wal/{h}"), lsn));
            let mut objects = vec![format!("sst/{h}")];
            if h >= 24 {
                objects.push(format!("sst/{}", h - 24));
            }
            contents.backups.push(BackupEntry {
                name: format!("backups/{h:06}"),
                applied_lsn: lsn,
                commit_us,
                objects,
            });
            if h % (30 * 24) == 0 {
                contents.retired.push((format!("retired/{h}"), lsn));
            }
        }
        let now = start_us + hours * HOUR_US;
        (contents, now)
    }

    #[test]
    fn a_year_of_hourly_backups_keeps_exactly_the_gfs_set_and_what_it_needs() {
        // 2026-01-01T00:00Z: a Thursday.
        let start = 20_454 * DAY_US;
        assert_eq!(civil_from_days(20_454), (2026, 1, 1));
        let (contents, now) = a_year(start);
        let plan = plan(&RetentionPolicy::default(), now, &contents);
        let kept: BTreeSet<&str> = plan.kept_backups.iter().map(String::as_str).collect();
        let hour_of = |name: &str| -> u64 { name["backups/".len()..].parse().unwrap() };
        // Expected, by calendar, walking back from the last hour (8759,
        // 2026-12-31 23:00): the last 72 hours; the last backup (23:00) of
        // each of the days within 7 days; of each Sunday within 35 days; of
        // the last day of every month.
        let mut expected = BTreeSet::new();
        let last = 365 * 24 - 1;
        for h in last - 71..=last {
            expected.insert(h);
        }
        for day in 358..365 {
            expected.insert(day * 24 + 23);
        }
        // Sundays of 2026: Jan 4 is day 3; within 35 days of Dec 31 23:00
        // (the week holding Dec 31 has its newest backup at Dec 31 23:00).
        let mut sunday = 3;
        while sunday < 365 {
            if (last - (sunday * 24 + 23)) * HOUR_US <= 35 * DAY_US {
                expected.insert(sunday * 24 + 23);
            }
            sunday += 7;
        }
        expected.insert(last);
        let month_ends = [31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334, 365];
        for end in month_ends {
            expected.insert((end - 1) * 24 + 23);
        }
        let kept_hours: BTreeSet<u64> = kept.iter().map(|n| hour_of(n)).collect();
        assert_eq!(kept_hours, expected);
        assert_eq!(
            plan.deleted_backups.len() + kept.len(),
            contents.backups.len()
        );
        // Nothing a kept backup needs is deleted: its SSTs, every piece after
        // the oldest kept LSN, every key retired after it.
        let deleted: BTreeSet<&str> = plan.deleted_objects.iter().map(String::as_str).collect();
        let oldest = plan.oldest_lsn.unwrap();
        assert_eq!(
            oldest,
            31 * 24 * 10,
            "the end of January is the oldest kept"
        );
        for backup in contents
            .backups
            .iter()
            .filter(|b| kept.contains(b.name.as_str()))
        {
            for object in &backup.objects {
                assert!(
                    !deleted.contains(object.as_str()),
                    "{object} of {}",
                    backup.name
                );
            }
        }
        for (name, last) in &contents.pieces {
            assert_eq!(deleted.contains(name.as_str()), *last <= oldest, "{name}");
        }
        for (name, at) in &contents.retired {
            assert_eq!(deleted.contains(name.as_str()), *at <= oldest, "{name}");
        }
        // And everything else goes: no SST that no kept backup names stays.
        let needed: BTreeSet<&str> = contents
            .backups
            .iter()
            .filter(|b| kept.contains(b.name.as_str()))
            .flat_map(|b| b.objects.iter().map(String::as_str))
            .collect();
        for sst in &contents.ssts {
            assert_eq!(
                deleted.contains(sst.as_str()),
                !needed.contains(sst.as_str())
            );
        }
    }

    #[test]
    fn thirty_five_days_is_one_line_and_keeps_nothing_older() {
        let (contents, now) = a_year(20_454 * DAY_US);
        let policy = RetentionPolicy::default().at_most(Duration::from_secs(35 * 86_400));
        let plan = plan(&policy, now, &contents);
        let by_name: BTreeMap<&str, &BackupEntry> = contents
            .backups
            .iter()
            .map(|b| (b.name.as_str(), b))
            .collect();
        for name in &plan.kept_backups {
            assert!(
                now - by_name[name.as_str()].commit_us <= 35 * DAY_US,
                "{name}"
            );
        }
        // The week and month tiers inside 35 days, the hours and days too.
        assert!(plan.kept_backups.len() > 72 + 5);
    }

    #[test]
    fn the_newest_backup_is_always_kept_and_no_backup_deletes_nothing() {
        let backup = BackupEntry {
            name: "b".into(),
            applied_lsn: 5,
            commit_us: 0,
            objects: vec!["s".into()],
        };
        let contents = Contents {
            backups: vec![backup],
            ssts: vec!["s".into(), "orphan".into()],
            pieces: vec![("p1".into(), 5), ("p2".into(), 9)],
            retired: vec![],
        };
        let policy = RetentionPolicy::default().at_most(Duration::from_secs(1));
        let planned = plan(&policy, 400 * DAY_US, &contents);
        assert_eq!(planned.kept_backups, vec!["b".to_owned()]);
        assert_eq!(
            planned.deleted_objects,
            vec!["orphan".to_owned(), "p1".to_owned()]
        );
        let empty = Contents {
            pieces: vec![("p1".into(), 5)],
            ssts: vec!["s".into()],
            ..Contents::default()
        };
        assert_eq!(
            plan(&RetentionPolicy::default(), 0, &empty),
            RetentionPlan::default()
        );
    }
}
