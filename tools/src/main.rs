//! The `strongroom` command-line tool.

mod demo;

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
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Demo(args) => demo::run(&args),
    }
}
