//! The `strongroom` command-line tool.

mod demo;
mod ops;
mod torture;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// strongroom: an embedded encrypted storage engine for multi-tenant
/// personal data.
#[derive(Parser)]
#[command(
    version,
    about,
    after_help = "\
Exit codes: 0 done; 1 any other failure; 2 a wrong command line; 3 a wrong or
unreadable master key; 4 the archive cannot be reached; 5 something read is
damaged or missing; 6 the archive cannot give what was asked (no such moment,
history or tenant); 7 the destination is in the way (not empty, in use, a
standby, or not one)."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Open a database, write records for two tenants, close, reopen, show
    /// they survived, shred one tenant, and show that no plaintext reached
    /// the disk and nothing of the shredded tenant decrypts.
    Demo(demo::DemoArgs),
    /// Restore a database as it was at one moment from an archive, into a
    /// new folder (a whole database, or one tenant).
    Restore(ops::restore::RestoreArgs),
    /// What an archive holds: its histories, their backups and log, and the
    /// moments a restore reaches.
    Archive(ops::archive::ArchiveListArgs),
    /// Check every object of an archive (incrementally: only what is new
    /// since the last verify), naming each problem.
    Verify(ops::verify::VerifyArgs),
    /// Keep a warm standby in a folder: follow a database's archive (its
    /// log and its shreds) until stopped.
    Standby(ops::standby::StandbyArgs),
    /// Make a (stopped) standby a database of its own: writable, shipping
    /// under a new history.
    Promote(ops::standby::PromoteArgs),
    /// What a stopped database's log, a scope, or a backup holds: metadata
    /// only (keys and values with --decrypt).
    Inspect(ops::inspect::InspectArgs),
    /// Take a base backup into the archive now.
    Backup(ops::keys::BackupArgs),
    /// Apply the archive's retention policy (or, with --dry-run, list what
    /// it would delete).
    Retention(ops::keys::RetentionArgs),
    /// Shred a tenant or a subject: seal it for a grace period (default 7
    /// days), then destroy its keys; --now destroys them at once.
    Shred(ops::keys::ShredArgs),
    /// Cancel a shred during its grace period.
    CancelShred(ops::keys::CancelArgs),
    /// Rotate a tenant's key: new writes under a new version, every record
    /// re-sealed, the old version destroyed.
    RotateKey(ops::keys::RotateArgs),
    /// Rotate the master key: the root key rewrapped under the new one.
    RotateMasterKey(ops::keys::RotateMasterArgs),
    /// Crash-test the engine for as long as asked (SIGKILL at random points,
    /// each reopen checked).
    ///
    /// A child process (this binary) writes, shreds, cancels and rotates keys
    /// and is killed with SIGKILL at random moments; after each kill the
    /// database is reopened and checked against a model of what the child
    /// reported. Prints kill points tried and failures found as it goes;
    /// exits non-zero if any failure was found, keeping the failing database
    /// folder and printing how to reproduce it.
    Torture(torture::TortureArgs),
    /// The crash harness's child (run by `torture` and the crash test).
    #[command(hide = true)]
    HarnessChild {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        seed: u64,
        #[arg(long)]
        iteration: u64,
    },
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { ops::exit::USAGE } else { 0 });
        }
    };
    // The torture's own reopens after each kill log recovery warnings that
    // are expected there (torn segments cut off, and so on).
    let default_filter = match cli.command {
        Command::Torture(_) => "error",
        _ => "warn",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| default_filter.into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let done = match cli.command {
        Command::Demo(args) => demo::run(&args),
        Command::Restore(args) => ops::restore::run(&args),
        Command::Archive(args) => ops::archive::run(&args),
        Command::Verify(args) => ops::verify::run(&args),
        Command::Standby(args) => ops::standby::standby(&args),
        Command::Promote(args) => ops::standby::promote(&args),
        Command::Inspect(args) => ops::inspect::run(&args),
        Command::Backup(args) => ops::keys::backup(&args),
        Command::Retention(args) => ops::keys::retention(&args),
        Command::Shred(args) => ops::keys::shred(&args),
        Command::CancelShred(args) => ops::keys::cancel(&args),
        Command::RotateKey(args) => ops::keys::rotate(&args),
        Command::RotateMasterKey(args) => ops::keys::rotate_master(&args),
        Command::Torture(args) => torture::run(&args),
        Command::HarnessChild {
            dir,
            seed,
            iteration,
        } => strongroom_cli::harness::run_child(&dir, iteration, seed),
    };
    match done {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => ops::exit::report(&e),
    }
}
