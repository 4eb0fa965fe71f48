//! The master key, from a key file, an environment variable or a passphrase
//! prompt: never from the command line itself, where any user of the
//! machine could read it (`ps`, shell history).

use std::path::PathBuf;

use anyhow::{Context, bail};
use strongroom::MasterKeySource;

/// Where the master key comes from (exactly one).
#[derive(clap::Args, Debug, Clone)]
#[group(required = true, multiple = false)]
pub struct KeyArgs {
    /// File holding the master key: 32 raw bytes, or 64 hex digits.
    #[arg(long, value_name = "PATH")]
    pub key_file: Option<PathBuf>,
    /// Environment variable holding the master key, as 64 hex digits.
    #[arg(long, value_name = "VAR")]
    pub key_env: Option<String>,
    /// The master key is derived from a passphrase: read from the
    /// STRONGROOM_PASSPHRASE environment variable if it is set, else asked
    /// for on the terminal (not echoed).
    #[arg(long)]
    pub passphrase: bool,
}

/// The environment variable a passphrase may come from (scripts).
pub const PASSPHRASE_ENV: &str = "STRONGROOM_PASSPHRASE";

impl KeyArgs {
    pub fn source(&self) -> anyhow::Result<MasterKeySource> {
        if let Some(path) = &self.key_file {
            return Ok(MasterKeySource::KeyFile(path.clone()));
        }
        if let Some(var) = &self.key_env {
            return Ok(MasterKeySource::EnvVar(var.clone()));
        }
        if !self.passphrase {
            bail!("no master key: give --key-file, --key-env or --passphrase");
        }
        let passphrase = match std::env::var(PASSPHRASE_ENV) {
            Ok(p) => p,
            Err(_) => rpassword::prompt_password("master key passphrase: ")
                .context("reading the passphrase from the terminal")?,
        };
        Ok(MasterKeySource::Passphrase(passphrase.into()))
    }
}
