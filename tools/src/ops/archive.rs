//! `strongroom archive`: what an archive holds, history by history: its
//! backups, its log, and the moments a restore reaches.

use serde_json::json;
use strongroom::restore::{HistorySummary, describe};

use super::location::ArchiveArgs;
use super::master_key::KeyArgs;
use super::restore::human_bytes;
use super::when;

/// Arguments of `strongroom archive`.
#[derive(clap::Args, Debug)]
pub struct ArchiveListArgs {
    #[command(flatten)]
    archive: ArchiveArgs,
    #[command(flatten)]
    key: KeyArgs,
    /// Print the result as JSON on stdout.
    #[arg(long)]
    json: bool,
}

pub fn run(args: &ArchiveListArgs) -> anyhow::Result<()> {
    let archive = args.archive.open()?;
    let histories = describe(&*archive, &args.key.source()?)?;
    if args.json {
        let all: Vec<_> = histories.iter().map(as_json).collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({ "histories": all }))?
        );
        return Ok(());
    }
    if histories.is_empty() {
        println!(
            "{}: no database has shipped to this archive",
            args.archive.archive
        );
    }
    for h in &histories {
        println!("history {}", h.name);
        match h.oldest_lsn {
            Some(oldest) => println!(
                "  restores to any LSN from {} to {}",
                oldest.0, h.newest_lsn.0
            ),
            None => {
                println!("  no backup, and the log does not reach back to LSN 1: nothing restores")
            }
        }
        match h.log {
            Some((first, last, pieces, bytes)) => println!(
                "  log: LSN {} to {} in {pieces} pieces, {}",
                first.0,
                last.0,
                human_bytes(bytes)
            ),
            None => println!("  log: none"),
        }
        println!("  backups: {}", h.backups.len());
        for b in &h.backups {
            println!(
                "    LSN {:>10}  {}  {} files, {}",
                b.lsn.0,
                when::show(b.commit_time),
                b.files,
                human_bytes(b.bytes)
            );
        }
    }
    Ok(())
}

fn as_json(h: &HistorySummary) -> serde_json::Value {
    json!({
        "name": h.name,
        "oldest_lsn": h.oldest_lsn.map(|l| l.0),
        "newest_lsn": h.newest_lsn.0,
        "log": h.log.map(|(first, last, pieces, bytes)| json!({
            "first_lsn": first.0,
            "last_lsn": last.0,
            "pieces": pieces,
            "bytes": bytes,
        })),
        "backups": h.backups.iter().map(|b| json!({
            "name": b.name,
            "lsn": b.lsn.0,
            "commit_time": when::show(b.commit_time),
            "files": b.files,
            "bytes": b.bytes,
        })).collect::<Vec<_>>(),
    })
}
