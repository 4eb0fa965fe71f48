//! Exit codes: one per kind of failure an operator acts on differently
//! (README.md lists them).
//!
//! | code | meaning |
//! |---:|---|
//! | 0 | done |
//! | 1 | any other failure |
//! | 2 | the command line is wrong (`--help` says how) |
//! | 3 | the master key is wrong, or cannot be read from where it was said to be |
//! | 4 | the archive cannot be reached (network, server, a folder not mounted) |
//! | 5 | something read is damaged or missing: an archive object, a file of a database |
//! | 6 | the archive cannot give what was asked: no such moment, history or tenant |
//! | 7 | the destination is in the way: not empty, in use, a restore of something else, a standby (or not one) |

use std::process::ExitCode;

use strongroom::archive::ArchiveError;
use strongroom::{Error, RestoreError};

pub const OTHER: u8 = 1;
pub const USAGE: u8 = 2;
pub const KEY: u8 = 3;
pub const UNREACHABLE: u8 = 4;
pub const DAMAGED: u8 = 5;
pub const NOT_IN_ARCHIVE: u8 = 6;
pub const IN_THE_WAY: u8 = 7;

/// A check (verify) that found `0` problems: each was printed; the exit
/// code says the archive is damaged.
#[derive(Debug)]
pub struct Damaged(pub usize);

impl std::fmt::Display for Damaged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} problems found", self.0)
    }
}

impl std::error::Error for Damaged {}

/// The exit code for `error`, from the first strongroom error in its chain.
pub fn code(error: &anyhow::Error) -> u8 {
    for cause in error.chain() {
        if cause.downcast_ref::<Damaged>().is_some() {
            return DAMAGED;
        }
        if let Some(e) = cause.downcast_ref::<Error>() {
            return of_error(e);
        }
        if let Some(e) = cause.downcast_ref::<ArchiveError>() {
            return of_archive(e);
        }
    }
    OTHER
}

fn of_error(e: &Error) -> u8 {
    match e {
        Error::WrongMasterKey | Error::MasterKeySource(_) => KEY,
        Error::Archive(a) => of_archive(a),
        Error::Corruption { .. } | Error::UnsupportedVersion { .. } => DAMAGED,
        Error::Restore(r) => match r {
            RestoreError::NotEmpty(_) | RestoreError::OtherRestore { .. } => IN_THE_WAY,
            _ => NOT_IN_ARCHIVE,
        },
        Error::RestoreIncomplete(_)
        | Error::InUse { .. }
        | Error::NotADatabase(_)
        | Error::NotAStandby(_)
        | Error::Standby => IN_THE_WAY,
        _ => OTHER,
    }
}

fn of_archive(e: &ArchiveError) -> u8 {
    match e {
        ArchiveError::Unavailable { .. } | ArchiveError::Config(_) => UNREACHABLE,
        ArchiveError::NotFound { .. }
        | ArchiveError::Corrupt { .. }
        | ArchiveError::UnsupportedVersion { .. } => DAMAGED,
        _ => OTHER,
    }
}

/// Prints `error` as one line on stderr and returns its exit code.
pub fn report(error: &anyhow::Error) -> ExitCode {
    let line: Vec<String> = error.chain().map(|c| c.to_string()).collect();
    eprintln!("strongroom: error: {}", line.join(": "));
    ExitCode::from(code(error))
}
