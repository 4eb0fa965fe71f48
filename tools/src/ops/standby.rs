//! `strongroom standby` and `strongroom promote`: a warm standby in a
//! folder, following a database's archive, and its promotion.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use serde_json::json;
use strongroom::{ArchiveOptions, Db, Options, StandbyOptions, StandbyStatus};

use super::location::ArchiveArgs;
use super::master_key::KeyArgs;

/// Arguments of `strongroom standby`.
#[derive(clap::Args, Debug)]
#[command(after_help = "\
Makes the standby (a restore of the archive's latest moment) if the folder
holds none, then follows the archive: every poll, the keyring's changes
(shreds included) and the new log are applied. It prints its lag as it goes,
until stopped (Ctrl-C), or, with --once, catches up and exits. Applications
may read the folder with Db::open_standby. Fail over with `strongroom promote`
once this is stopped.")]
pub struct StandbyArgs {
    #[command(flatten)]
    archive: ArchiveArgs,
    #[command(flatten)]
    key: KeyArgs,
    /// The standby's folder (made if new or empty).
    #[arg(long, value_name = "FOLDER")]
    into: PathBuf,
    /// The history to follow, when the archive holds several.
    #[arg(long, value_name = "HEX")]
    history: Option<String>,
    /// How often to poll the archive.
    #[arg(long, value_name = "DURATION", default_value = "1s")]
    poll: String,
    /// Catch up once and exit.
    #[arg(long)]
    once: bool,
    /// Print the status as JSON (one object per line when following).
    #[arg(long)]
    json: bool,
}

fn status_json(status: &StandbyStatus) -> serde_json::Value {
    json!({
        "applied_lsn": status.applied_lsn.0,
        "archive_lsn": status.archive_lsn.0,
        "behind_seconds": status.behind.as_secs_f64(),
    })
}

pub fn standby(args: &StandbyArgs) -> anyhow::Result<()> {
    let poll = super::keys::parse_duration(&args.poll)?;
    let mut follow = StandbyOptions::new(args.archive.open()?).poll_interval(poll);
    if let Some(history) = &args.history {
        follow = follow.history(history);
    }
    let db = Db::open_standby(&args.into, Options::new(args.key.source()?), follow)
        .with_context(|| format!("the standby in {}", args.into.display()))?;
    loop {
        db.follow_now()?;
        let status = db.standby_status().expect("a standby");
        if args.json {
            println!("{}", status_json(&status));
        } else {
            println!(
                "standby {}: LSN {} of {} applied, {:.1} s behind",
                args.into.display(),
                status.applied_lsn.0,
                status.archive_lsn.0,
                status.behind.as_secs_f64()
            );
        }
        if args.once {
            break;
        }
        std::thread::sleep(poll.max(Duration::from_secs(1)) * 5);
    }
    db.close()?;
    Ok(())
}

/// Arguments of `strongroom promote`.
#[derive(clap::Args, Debug)]
pub struct PromoteArgs {
    #[command(flatten)]
    archive: ArchiveArgs,
    #[command(flatten)]
    key: KeyArgs,
    /// The standby's folder (its `strongroom standby` stopped).
    #[arg(long, value_name = "FOLDER")]
    db: PathBuf,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

pub fn promote(args: &PromoteArgs) -> anyhow::Result<()> {
    let archive = args.archive.open()?;
    let source = args.key.source()?;
    let standby = Db::open_standby(
        &args.db,
        Options::new(source.clone()),
        StandbyOptions::new(archive.clone()),
    )
    .with_context(|| format!("the standby in {}", args.db.display()))?;
    let db = standby.promote(
        Options::new(source).archive(ArchiveOptions::new(archive).backup_interval(None)),
    )?;
    let lsn = db.last_lsn();
    // Its first backup, so that its own history restores from its start.
    let backup = db.backup_now()?;
    db.ship_now()?;
    db.close()?;
    if args.json {
        println!(
            "{}",
            json!({ "promoted": true, "lsn": lsn.0, "backup_lsn": backup.applied_lsn.0 })
        );
    } else {
        println!(
            "{} promoted at LSN {}: writable, shipping under a new history (first backup at LSN {})",
            args.db.display(),
            lsn.0,
            backup.applied_lsn.0
        );
    }
    Ok(())
}
