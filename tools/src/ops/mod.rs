//! The operator's commands over an archive: what `strongroom restore`,
//! `strongroom verify` and `strongroom archive` share (the archive and the master key from the
//! command line, exit codes, progress, `--json`).

pub mod archive;
pub mod exit;
pub mod inspect;
pub mod keys;
pub mod location;
pub mod master_key;
pub mod progress;
pub mod restore;
pub mod standby;
pub mod verify;
pub mod when;
