//! `strongroom verify`: every object of an archive checked, nothing
//! restored; each problem named.

use anyhow::bail;
use serde_json::json;
use strongroom::restore::{VerifyOptions, verify};

use super::location::ArchiveArgs;
use super::master_key::KeyArgs;
use super::restore::human_bytes;

/// Arguments of `strongroom verify`.
#[derive(clap::Args, Debug)]
#[command(after_help = "\
Checks every keyring copy (they open, and together they open as a keyring),
every backup (its manifest opens; every file it names exists, has its size and
opens), every log piece (frame CRCs, the MAC chain, within and across pieces)
and that the log has no gap from the oldest backup to the newest piece. With
--deep, every record in the log opens with the archive's keys (shredded scopes
excepted). What a run verified is kept in the archive: the next run, from any
machine, fetches only what is new (--full checks everything again).

Exits 0 when the archive is sound, 5 when it found problems (each printed with
the object's name).")]
pub struct VerifyArgs {
    #[command(flatten)]
    archive: ArchiveArgs,
    #[command(flatten)]
    key: KeyArgs,
    /// Open every record of the log too.
    #[arg(long)]
    deep: bool,
    /// Check everything, not only what earlier runs have not verified.
    #[arg(long)]
    full: bool,
    /// Print the result as JSON on stdout.
    #[arg(long)]
    json: bool,
}

pub fn run(args: &VerifyArgs) -> anyhow::Result<()> {
    let archive = args.archive.open()?;
    let bars = std::sync::Arc::new(super::progress::Bars::new(args.json));
    let progress = std::sync::Arc::clone(&bars);
    let options = VerifyOptions::new(args.key.source()?)
        .deep(args.deep)
        .incremental(!args.full)
        .progress(move |done, total| progress.update("verify", done, total));
    let report = verify(&*archive, &options);
    bars.finish();
    let report = report?;
    if args.json {
        let value = json!({
            "histories": report.histories,
            "objects_checked": report.objects_checked,
            "objects_skipped": report.objects_skipped,
            "bytes_fetched": report.bytes_fetched,
            "records_opened": report.records_opened,
            "problems": report.problems.iter().map(|p| json!({
                "object": p.object,
                "problem": p.what,
            })).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        println!(
            "verified {} histories: {} objects checked ({}), {} verified before, {} records opened",
            report.histories,
            report.objects_checked,
            human_bytes(report.bytes_fetched),
            report.objects_skipped,
            report.records_opened
        );
        for p in &report.problems {
            println!("  PROBLEM {}: {}", p.object, p.what);
        }
    }
    if !report.problems.is_empty() {
        bail!(super::exit::Damaged(report.problems.len()));
    }
    Ok(())
}
