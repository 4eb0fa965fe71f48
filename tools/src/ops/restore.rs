//! `strongroom restore`: a database as it was at one moment, from an
//! archive, into a new folder.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use serde_json::json;
use strongroom::restore::{RestoreOptions, RestoreReport, RestoreStage, RestoreTarget, restore};
use strongroom::{Lsn, TenantId};

use super::location::ArchiveArgs;
use super::master_key::KeyArgs;
use super::progress::Bars;
use super::when;

/// Arguments of `strongroom restore`.
#[derive(clap::Args, Debug)]
#[command(after_help = "\
The restore picks the newest backup at or before the target, fetches it, and
replays the archived log up to the target exactly: the state after the last
commit at or before it. Scopes shredded at any time (even after the target)
stay shredded and are listed; seals pending now are pending in the restore.
The restored database has a history of its own: run with the archive, it
never writes into the one it came from.

A restore that stops half-way (killed, a lost connection) is finished by
running the same command again; until then the folder does not open.

Examples:
  strongroom restore --archive /backups/app --into /srv/app-restored \\
      --key-file /etc/app/master.key --at '2026-12-06 14:03'
  strongroom restore --archive s3://backups/app --into ./school-7 \\
      --key-env APP_MASTER_KEY --at '2 hours ago' --tenant 7")]
pub struct RestoreArgs {
    #[command(flatten)]
    archive: ArchiveArgs,
    #[command(flatten)]
    key: KeyArgs,
    /// Folder to restore into: new or empty (or holding this same restore,
    /// unfinished).
    #[arg(long, value_name = "FOLDER")]
    into: PathBuf,
    /// The moment: RFC 3339 (2026-12-06T14:03:00Z), a local date and time
    /// (2026-12-06 14:03), or a relative time (2 hours ago). Default: the
    /// latest moment the archive holds.
    #[arg(long, value_name = "WHEN", conflicts_with = "lsn")]
    at: Option<String>,
    /// The moment as a log sequence number: the state just after that
    /// commit.
    #[arg(long, value_name = "LSN")]
    lsn: Option<u64>,
    /// The history to restore from (32 hex digits, see `strongroom
    /// archive`), when the archive holds more than one.
    #[arg(long, value_name = "HEX")]
    history: Option<String>,
    /// Restore this tenant only (the others' records are left out).
    #[arg(long, value_name = "ID")]
    tenant: Option<u64>,
    /// Archive calls at once.
    #[arg(long, default_value_t = 4)]
    threads: usize,
    /// Print the result as JSON on stdout (no progress bars).
    #[arg(long)]
    json: bool,
}

pub fn run(args: &RestoreArgs) -> anyhow::Result<()> {
    let target = match (&args.at, args.lsn) {
        (Some(at), _) => {
            let zone = jiff::tz::TimeZone::system();
            RestoreTarget::Time(when::parse_at(at, &jiff::Zoned::now(), &zone)?)
        }
        (None, Some(lsn)) => RestoreTarget::Lsn(Lsn(lsn)),
        (None, None) => RestoreTarget::Latest,
    };
    let bars = Arc::new(Bars::new(args.json));
    let progress = Arc::clone(&bars);
    let mut options = RestoreOptions::new(args.archive.open()?, args.key.source()?)
        .target(target)
        .threads(args.threads)
        .progress(move |p| {
            let stage = match p.stage {
                RestoreStage::Backup => "backup",
                _ => "log",
            };
            progress.update(stage, p.done_bytes, p.total_bytes);
        });
    if let Some(history) = &args.history {
        options = options.history(history);
    }
    if let Some(tenant) = args.tenant {
        options = options.tenant(TenantId(tenant));
    }
    let report = restore(&args.into, &options)
        .with_context(|| format!("restoring into {}", args.into.display()));
    bars.finish();
    let report = report?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&as_json(&report, args))?);
    } else {
        print_human(&report, args);
    }
    Ok(())
}

fn as_json(r: &RestoreReport, args: &RestoreArgs) -> serde_json::Value {
    json!({
        "into": args.into,
        "history": r.history,
        "new_history": r.new_history,
        "tenant": args.tenant,
        "lsn": r.lsn.0,
        "commit_time": r.commit_time.map(when::show),
        "backup": r.backup.as_ref().map(|b| json!({
            "name": b.name,
            "lsn": b.lsn.0,
            "commit_time": when::show(b.commit_time),
        })),
        "frames_replayed": r.frames,
        "bytes_fetched": r.bytes_fetched,
        "archive_last_lsn": r.archive_last_lsn.0,
        "destroyed": r.destroyed.iter().map(|s| json!({
            "tenant": s.tenant.0,
            "subject": s.subject.map(|s| s.0),
        })).collect::<Vec<_>>(),
        "sealed": r.sealed.iter().map(|(s, deadline)| json!({
            "tenant": s.tenant.0,
            "subject": s.subject.map(|s| s.0),
            "deadline": when::show(*deadline),
        })).collect::<Vec<_>>(),
        "readmitted_key_versions": r.readmitted_key_versions,
    })
}

fn print_human(r: &RestoreReport, args: &RestoreArgs) {
    let at = r.commit_time.map_or("an empty database".to_owned(), |t| {
        format!("committed {}", when::show(t))
    });
    println!(
        "restored {} to LSN {} ({at}) into {}",
        r.history,
        r.lsn.0,
        args.into.display()
    );
    match &r.backup {
        Some(b) => println!(
            "  from backup at LSN {} ({}), then {} frames of the log",
            b.lsn.0,
            when::show(b.commit_time),
            r.frames
        ),
        None => println!("  from the log alone: {} frames", r.frames),
    }
    println!(
        "  {} fetched; the archive reaches LSN {}",
        human_bytes(r.bytes_fetched),
        r.archive_last_lsn.0
    );
    println!("  new history: {}", r.new_history);
    for s in &r.destroyed {
        println!("  shredded (left out, unreadable): {s}");
    }
    for (s, deadline) in &r.sealed {
        println!("  sealed until {}: {s}", when::show(*deadline));
    }
}

pub fn human_bytes(bytes: u64) -> String {
    indicatif::HumanBytes(bytes).to_string()
}
