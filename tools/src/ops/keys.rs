//! The database commands of the key lifecycle and the archive, on a closed
//! database's folder (its lock makes a running application's database
//! `InUse`, exit 7): `shred`, `cancel-shred`, `rotate-key`,
//! `rotate-master-key`, `backup` and `retention`. With `--archive`, the
//! command reaches the archive before it returns (a shred's keyring copies
//! replaced, a backup taken, a retention pass); without, the application's
//! next open with its archive does.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::json;
use strongroom::{
    ArchiveOptions, Db, Options, RetentionPolicy, ScopeState, ShredOptions, SubjectId, TenantId,
};

use super::location::ArchiveArgs;
use super::master_key::KeyArgs;

/// The database a command runs on.
#[derive(clap::Args, Debug)]
pub struct DbArgs {
    /// The database's folder (the application using it must be stopped).
    #[arg(long, value_name = "FOLDER")]
    db: PathBuf,
    #[command(flatten)]
    key: KeyArgs,
    /// The archive the database ships to (a folder or s3://BUCKET/PREFIX):
    /// the command's changes reach it before it returns.
    #[arg(long, value_name = "FOLDER|s3://BUCKET/PREFIX")]
    archive: Option<String>,
    /// The S3 server's URL.
    #[arg(long, env = "AWS_ENDPOINT", value_name = "URL")]
    s3_endpoint: Option<String>,
    /// The S3 region.
    #[arg(long, env = "AWS_REGION", value_name = "REGION")]
    s3_region: Option<String>,
    /// Print the result as JSON on stdout.
    #[arg(long)]
    json: bool,
}

impl DbArgs {
    /// Opens the database (never creating one), with its archive if given
    /// and `retention` as the archive's policy.
    fn open(&self, retention: Option<RetentionPolicy>) -> anyhow::Result<Db> {
        let mut options = Options::new(self.key.source()?).create_if_missing(false);
        if let Some(archive) = &self.archive {
            let archive = ArchiveArgs {
                archive: archive.clone(),
                s3_endpoint: self.s3_endpoint.clone(),
                s3_region: self.s3_region.clone(),
            }
            .open()?;
            options = options.archive(
                ArchiveOptions::new(archive)
                    .backup_interval(None)
                    .retention(retention),
            );
        }
        Db::open(&self.db, options).with_context(|| format!("opening {}", self.db.display()))
    }

    fn print(&self, value: serde_json::Value, human: String) -> anyhow::Result<()> {
        if self.json {
            println!("{}", serde_json::to_string_pretty(&value)?);
        } else {
            println!("{human}");
        }
        Ok(())
    }
}

/// A tenant, or one subject of it.
#[derive(clap::Args, Debug)]
pub struct ScopeArgs {
    /// The tenant.
    #[arg(long, value_name = "ID")]
    tenant: u64,
    /// One subject of the tenant (default: the whole tenant).
    #[arg(long, value_name = "ID")]
    subject: Option<u64>,
}

impl ScopeArgs {
    fn name(&self) -> String {
        match self.subject {
            Some(s) => format!("subject {s} of tenant {}", self.tenant),
            None => format!("tenant {}", self.tenant),
        }
    }

    fn json(&self) -> serde_json::Value {
        json!({ "tenant": self.tenant, "subject": self.subject })
    }
}

/// Arguments of `strongroom shred`.
#[derive(clap::Args, Debug)]
pub struct ShredArgs {
    #[command(flatten)]
    db: DbArgs,
    #[command(flatten)]
    scope: ScopeArgs,
    /// The grace period before the keys are destroyed (the scope is sealed
    /// meanwhile, and the shred can be cancelled): "7 days", "36h"...
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "7 days",
        conflicts_with = "now"
    )]
    grace: String,
    /// Destroy the keys now: no grace period, nothing to cancel.
    #[arg(long)]
    now: bool,
}

pub fn shred(args: &ShredArgs) -> anyhow::Result<()> {
    let grace = if args.now {
        Duration::ZERO
    } else {
        parse_duration(&args.grace)?
    };
    let db = args.db.open(None)?;
    let tenant = db.tenant(TenantId(args.scope.tenant));
    let options = ShredOptions::with_grace(grace);
    let state = match args.scope.subject {
        Some(s) => tenant.shred_subject(SubjectId(s), options)?,
        None => db.shred_tenant(TenantId(args.scope.tenant), options)?,
    };
    let behind = match args.scope.subject {
        Some(s) => tenant.subject(SubjectId(s)).archive_behind(),
        None => tenant.archive_behind(),
    };
    db.close()?;
    let (word, deadline) = match state {
        ScopeState::Shredded => ("shredded".to_owned(), None),
        ScopeState::Sealed { deadline_us } => {
            let at = std::time::UNIX_EPOCH + Duration::from_micros(deadline_us);
            (
                format!("sealed until {}", super::when::show(at)),
                Some(super::when::show(at)),
            )
        }
        other => (format!("{other:?}"), None),
    };
    let archive_note = if args.db.archive.is_none() {
        " (no --archive given: the archive's copies change at the application's next open)"
    } else if behind {
        " (the archive did not answer: its copies change at the next pass)"
    } else {
        ""
    };
    args.db.print(
        json!({
            "scope": args.scope.json(),
            "state": if deadline.is_some() { "sealed" } else { "shredded" },
            "deadline": deadline,
            "archive_behind": behind || args.db.archive.is_none(),
        }),
        format!("{}: {word}{archive_note}", args.scope.name()),
    )
}

/// Arguments of `strongroom cancel-shred`.
#[derive(clap::Args, Debug)]
pub struct CancelArgs {
    #[command(flatten)]
    db: DbArgs,
    #[command(flatten)]
    scope: ScopeArgs,
}

pub fn cancel(args: &CancelArgs) -> anyhow::Result<()> {
    let db = args.db.open(None)?;
    let tenant = db.tenant(TenantId(args.scope.tenant));
    let cancelled = match args.scope.subject {
        Some(s) => tenant.cancel_shred_subject(SubjectId(s))?,
        None => db.cancel_shred_tenant(TenantId(args.scope.tenant))?,
    };
    db.close()?;
    if !cancelled {
        bail!("{} is not sealed: nothing to cancel", args.scope.name());
    }
    args.db.print(
        json!({ "scope": args.scope.json(), "cancelled": true }),
        format!("{}: shred cancelled, readable again", args.scope.name()),
    )
}

/// Arguments of `strongroom rotate-key`.
#[derive(clap::Args, Debug)]
pub struct RotateArgs {
    #[command(flatten)]
    db: DbArgs,
    /// The tenant whose key rotates.
    #[arg(long, value_name = "ID")]
    tenant: u64,
}

pub fn rotate(args: &RotateArgs) -> anyhow::Result<()> {
    let db = args.db.open(None)?;
    let version = db.tenant(TenantId(args.tenant)).rotate_key()?;
    // The re-sealing pass, to its end (the old version destroyed after it).
    db.run_maintenance()?;
    db.close()?;
    args.db.print(
        json!({ "tenant": args.tenant, "version": version }),
        format!(
            "tenant {}: key version {version}; every record re-sealed under it",
            args.tenant
        ),
    )
}

/// Arguments of `strongroom rotate-master-key`.
#[derive(clap::Args, Debug)]
pub struct RotateMasterArgs {
    #[command(flatten)]
    db: DbArgs,
    /// File holding the new master key (32 raw bytes or 64 hex digits).
    #[arg(long, value_name = "PATH", conflicts_with_all = ["new_key_env", "new_passphrase_env"])]
    new_key_file: Option<PathBuf>,
    /// Environment variable holding the new master key (64 hex digits).
    #[arg(long, value_name = "VAR", conflicts_with = "new_passphrase_env")]
    new_key_env: Option<String>,
    /// Environment variable holding the new passphrase.
    #[arg(long, value_name = "VAR")]
    new_passphrase_env: Option<String>,
}

pub fn rotate_master(args: &RotateMasterArgs) -> anyhow::Result<()> {
    let new = if let Some(path) = &args.new_key_file {
        strongroom::MasterKeySource::KeyFile(path.clone())
    } else if let Some(var) = &args.new_key_env {
        strongroom::MasterKeySource::EnvVar(var.clone())
    } else if let Some(var) = &args.new_passphrase_env {
        let passphrase = std::env::var(var).with_context(|| format!("reading {var}"))?;
        strongroom::MasterKeySource::Passphrase(passphrase.into())
    } else {
        bail!("no new master key: give --new-key-file, --new-key-env or --new-passphrase-env");
    };
    let db = args.db.open(None)?;
    db.rotate_master_key(new)?;
    db.close()?;
    args.db.print(
        json!({ "rotated": true }),
        "master key rotated: only the new key opens the database (and, once shipped, its archive)"
            .to_owned(),
    )
}

/// Arguments of `strongroom backup`.
#[derive(clap::Args, Debug)]
pub struct BackupArgs {
    #[command(flatten)]
    db: DbArgs,
}

pub fn backup(args: &BackupArgs) -> anyhow::Result<()> {
    if args.db.archive.is_none() {
        bail!("a backup needs --archive");
    }
    let db = args.db.open(None)?;
    let bars = super::progress::Bars::new(args.db.json);
    let info = db.backup_now_with_progress(|done, total| bars.update("backup", done, total));
    bars.finish();
    let info = info?;
    db.ship_now()?;
    db.close()?;
    args.db.print(
        json!({
            "name": info.name,
            "lsn": info.applied_lsn.0,
            "files": info.files,
            "ssts_uploaded": info.ssts_uploaded,
            "bytes_uploaded": info.bytes_uploaded,
        }),
        format!(
            "backup at LSN {}: {} files, {} SST files uploaded ({}), the rest already in the archive",
            info.applied_lsn.0,
            info.files,
            info.ssts_uploaded,
            super::restore::human_bytes(info.bytes_uploaded)
        ),
    )
}

/// Arguments of `strongroom retention`.
#[derive(clap::Args, Debug)]
pub struct RetentionArgs {
    #[command(flatten)]
    db: DbArgs,
    /// List what would be deleted; delete nothing.
    #[arg(long)]
    dry_run: bool,
    /// Keep the newest backup of each hour for this long.
    #[arg(long, value_name = "DURATION", default_value = "72h")]
    hourly: String,
    /// Keep the newest backup of each day for this long.
    #[arg(long, value_name = "DURATION", default_value = "7 days")]
    daily: String,
    /// Keep the newest backup of each week for this long.
    #[arg(long, value_name = "DURATION", default_value = "5 weeks")]
    weekly: String,
    /// Keep the newest backup of each month for this long ("forever": no
    /// limit).
    #[arg(long, value_name = "DURATION", default_value = "forever")]
    monthly: String,
}

pub fn retention(args: &RetentionArgs) -> anyhow::Result<()> {
    if args.db.archive.is_none() {
        bail!("retention needs --archive");
    }
    let policy = RetentionPolicy {
        hourly: parse_duration(&args.hourly)?,
        daily: parse_duration(&args.daily)?,
        weekly: parse_duration(&args.weekly)?,
        monthly: match args.monthly.as_str() {
            "forever" => None,
            d => Some(parse_duration(d)?),
        },
    };
    let db = args.db.open(Some(policy))?;
    let plan = if args.dry_run {
        db.retention_plan()?
    } else {
        db.apply_retention()?
    };
    db.close()?;
    let verb = if args.dry_run {
        "would delete"
    } else {
        "deleted"
    };
    args.db.print(
        json!({
            "dry_run": args.dry_run,
            "kept_backups": plan.kept_backups,
            "deleted_backups": plan.deleted_backups,
            "deleted_objects": plan.deleted_objects,
            "oldest_lsn": plan.oldest_lsn,
        }),
        format!(
            "retention: kept {} backups; {verb} {} backups and {} other objects; the oldest moment restorable is LSN {}",
            plan.kept_backups.len(),
            plan.deleted_backups.len(),
            plan.deleted_objects.len(),
            plan.oldest_lsn.map_or("none".to_owned(), |l| l.to_string())
        ),
    )
}

/// A duration as people write it: "7 days", "36h", "90 minutes", "5 weeks".
pub fn parse_duration(text: &str) -> anyhow::Result<Duration> {
    let span: jiff::Span = text
        .parse()
        .with_context(|| format!("{text:?} is not a duration (\"7 days\", \"36h\")"))?;
    let d = span
        .to_duration(jiff::SpanRelativeTo::days_are_24_hours())
        .with_context(|| format!("{text:?}"))?;
    Duration::try_from(d).map_err(|_| anyhow::anyhow!("{text:?} is negative"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_written() {
        assert_eq!(
            parse_duration("7 days").unwrap(),
            Duration::from_secs(7 * 86_400)
        );
        assert_eq!(
            parse_duration("36h").unwrap(),
            Duration::from_secs(36 * 3600)
        );
        assert_eq!(
            parse_duration("5 weeks").unwrap(),
            Duration::from_secs(35 * 86_400)
        );
        assert_eq!(parse_duration("0s").unwrap(), Duration::ZERO);
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("2 hours ago").is_err());
    }
}
