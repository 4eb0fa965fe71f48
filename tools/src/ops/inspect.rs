//! `strongroom inspect`: what a database's log, a scope, or a backup holds,
//! as metadata (LSNs, times, scopes, sizes); a key or a value only with
//! `--decrypt`.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde_json::json;
use strongroom::forensic::{decrypt_everything, inspect_log};
use strongroom::restore::backup_files;
use strongroom::{Db, Options, ScopeState, SubjectId, TenantId};

use super::location::ArchiveArgs;
use super::master_key::KeyArgs;
use super::when;

/// Arguments of `strongroom inspect`.
#[derive(clap::Args, Debug)]
pub struct InspectArgs {
    #[command(subcommand)]
    what: What,
}

#[derive(clap::Subcommand, Debug)]
enum What {
    /// The frames of a stopped database's log: LSN, commit time, and each
    /// entry's scope, kind and sealed size.
    Log {
        /// The database's folder.
        #[arg(long, value_name = "FOLDER")]
        db: PathBuf,
        #[command(flatten)]
        key: KeyArgs,
        /// Also print every record the keys open (keys and values in
        /// clear: for an operator who must see them).
        #[arg(long)]
        decrypt: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// A scope's state: live, sealed (until when) or shredded, and how many
    /// records it holds.
    Scope {
        /// The database's folder.
        #[arg(long, value_name = "FOLDER")]
        db: PathBuf,
        #[command(flatten)]
        key: KeyArgs,
        /// The tenant.
        #[arg(long, value_name = "ID")]
        tenant: u64,
        /// A subject of it.
        #[arg(long, value_name = "ID")]
        subject: Option<u64>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// A backup's files (see `strongroom archive` for the names).
    Backup {
        #[command(flatten)]
        archive: ArchiveArgs,
        #[command(flatten)]
        key: KeyArgs,
        /// The backup's manifest object name.
        #[arg(long, value_name = "NAME")]
        name: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(args: &InspectArgs) -> anyhow::Result<()> {
    match &args.what {
        What::Log {
            db,
            key,
            decrypt,
            json,
        } => log(db, key, *decrypt, *json),
        What::Scope {
            db,
            key,
            tenant,
            subject,
            json,
        } => scope(db, key, *tenant, *subject, *json),
        What::Backup {
            archive,
            key,
            name,
            json,
        } => backup(archive, key, name, *json),
    }
}

fn log(db: &Path, key: &KeyArgs, decrypt: bool, as_json: bool) -> anyhow::Result<()> {
    let options = Options::new(key.source()?).create_if_missing(false);
    let frames =
        inspect_log(db, &options).with_context(|| format!("the log of {}", db.display()))?;
    let records = match decrypt {
        true => decrypt_everything(db, &options)?,
        false => Vec::new(),
    };
    let at = |us: u64| when::show(std::time::UNIX_EPOCH + std::time::Duration::from_micros(us));
    if as_json {
        let value = json!({
            "frames": frames.iter().map(|f| json!({
                "lsn": f.lsn,
                "commit_time": at(f.commit_time_us),
                "entries": f.entries.iter().map(|e| json!({
                    "tenant": e.scope.tenant.0,
                    "subject": e.scope.subject.map(|s| s.0),
                    "op": if e.sealed_len.is_some() { "put" } else { "delete" },
                    "sealed_bytes": e.sealed_len,
                    "key_version": e.key_version,
                })).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "records": records.iter().map(|r| json!({
                "tenant": r.scope.tenant.0,
                "subject": r.scope.subject.map(|s| s.0),
                "key": String::from_utf8_lossy(&r.key),
                "value": String::from_utf8_lossy(&r.value),
                "found": format!("{:?}", r.found),
            })).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    println!("{} frames in the log of {}", frames.len(), db.display());
    for f in &frames {
        println!(
            "  LSN {:>10}  {}  {} entries",
            f.lsn,
            at(f.commit_time_us),
            f.entries.len()
        );
        for e in &f.entries {
            match e.sealed_len {
                Some(len) => println!(
                    "    put    {}  {len} bytes sealed (key version {})",
                    e.scope, e.key_version
                ),
                None => println!("    delete {}", e.scope),
            }
        }
    }
    for r in &records {
        println!(
            "  record {} {:?}: {} = {}",
            r.scope,
            r.found,
            String::from_utf8_lossy(&r.key),
            String::from_utf8_lossy(&r.value)
        );
    }
    Ok(())
}

fn scope(
    db: &PathBuf,
    key: &KeyArgs,
    tenant: u64,
    subject: Option<u64>,
    as_json: bool,
) -> anyhow::Result<()> {
    let opened = Db::open(db, Options::new(key.source()?).create_if_missing(false))
        .with_context(|| format!("opening {}", db.display()))?;
    let t = opened.tenant(TenantId(tenant));
    let (state, records) = match subject {
        Some(s) => {
            let s = t.subject(SubjectId(s));
            let state = s.state()?;
            (state, s.scan().map(|scan| scan.count()).ok())
        }
        None => (t.state()?, t.scan().map(|scan| scan.count()).ok()),
    };
    opened.close()?;
    let (word, deadline) = match state {
        ScopeState::Live => ("live", None),
        ScopeState::Sealed { deadline_us } => (
            "sealed",
            Some(when::show(
                std::time::UNIX_EPOCH + std::time::Duration::from_micros(deadline_us),
            )),
        ),
        ScopeState::Shredded => ("shredded", None),
    };
    if as_json {
        let value = json!({
            "tenant": tenant,
            "subject": subject,
            "state": word,
            "deadline": deadline,
            "records": records,
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        let name = match subject {
            Some(s) => format!("subject {s} of tenant {tenant}"),
            None => format!("tenant {tenant}"),
        };
        let until = deadline.map(|d| format!(" until {d}")).unwrap_or_default();
        let count = records.map_or("unreadable".to_owned(), |n| format!("{n} records"));
        println!("{name}: {word}{until}, {count}");
    }
    Ok(())
}

fn backup(archive: &ArchiveArgs, key: &KeyArgs, name: &str, as_json: bool) -> anyhow::Result<()> {
    let files = backup_files(&*archive.open()?, &key.source()?, name)?;
    if as_json {
        let value = json!({
            "name": name,
            "files": files.iter().map(|(file, size, object)| json!({
                "file": file,
                "size": size,
                "object": object,
            })).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    println!("backup {name}: {} files", files.len());
    for (file, size, object) in &files {
        println!(
            "  {file:<24} {:>10}  {}",
            super::restore::human_bytes(*size),
            object.as_deref().unwrap_or("(in the manifest)")
        );
    }
    Ok(())
}
