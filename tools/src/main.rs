//! The `strongroom` command-line tool.

mod demo;
mod torture;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// strongroom: an embedded encrypted storage engine for multi-tenant
/// personal data.
#[derive(Parser)]
#[command(version, about)]
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

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
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
    match cli.command {
        Command::Demo(args) => demo::run(&args),
        Command::Torture(args) => torture::run(&args),
        Command::HarnessChild {
            dir,
            seed,
            iteration,
        } => strongroom_cli::harness::run_child(&dir, iteration, seed),
    }
}
