//! The record of a restore in progress (`RESTORING`, FORMAT §12.7): what
//! was asked, what the first run chose (the backup, the new history's log
//! id) and how far it got, so that a restore killed half-way and run again
//! finishes the same restore, and a database is never opened half-restored.
//!
//! ```text
//! strongroom restore 1
//! mode restore | standby
//! history <32 hex>
//! target latest | lsn <n> | time <µs since the Unix epoch>
//! tenant all | <n>
//! backup none | <object name>
//! new-history <32 hex>
//! stage fetch | replay
//! ```
//! One `key value` line each, in this order, `\n` after each; anything else
//! is `Malformed`. Written atomically.

use std::path::Path;

use super::RestoreTarget;
use crate::error::{CorruptionKind, Error, Result};
use crate::format::{LOG_ID_LEN, RESTORE_FILE};
use crate::fs::Files;
use crate::scope::TenantId;
use crate::ship::names;

const FIRST_LINE: &str = "strongroom restore 1";

/// How far a restore got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    /// Fetching the backup's files into the store's folder.
    Fetch,
    /// The store is whole: replaying the log into it.
    Replay,
}

/// A restore's record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Marker {
    /// A standby's seed (it keeps the source's history) or a restore (a new
    /// one): never finished as the other.
    pub(crate) standby: bool,
    pub(crate) history: [u8; LOG_ID_LEN],
    pub(crate) target: RestoreTarget,
    pub(crate) tenant: Option<TenantId>,
    /// The backup's manifest name, `None` to start from an empty store.
    pub(crate) backup: Option<String>,
    pub(crate) new_history: [u8; LOG_ID_LEN],
    pub(crate) stage: Stage,
}

impl Marker {
    /// What was asked, for messages: "history H at T (tenant N)".
    pub(crate) fn request(&self) -> String {
        let tenant = match self.tenant {
            Some(t) => format!(", tenant {}", t.0),
            None => String::new(),
        };
        let what = if self.standby { "a standby of " } else { "" };
        format!(
            "{what}history {} at {}{tenant}",
            names::history(&self.history),
            target_field(self.target)
        )
    }

    /// Whether `other` asks for the same restore.
    pub(crate) fn same_request(&self, other: &Marker) -> bool {
        (self.standby, self.history, self.target.key(), self.tenant)
            == (
                other.standby,
                other.history,
                other.target.key(),
                other.tenant,
            )
    }

    pub(crate) fn encode(&self) -> String {
        format!(
            "{FIRST_LINE}\nmode {}\nhistory {}\ntarget {}\ntenant {}\nbackup {}\nnew-history {}\nstage {}\n",
            if self.standby { "standby" } else { "restore" },
            names::history(&self.history),
            target_field(self.target),
            self.tenant.map_or("all".to_owned(), |t| t.0.to_string()),
            self.backup.as_deref().unwrap_or("none"),
            names::history(&self.new_history),
            match self.stage {
                Stage::Fetch => "fetch",
                Stage::Replay => "replay",
            }
        )
    }

    pub(crate) fn decode(file: &Path, bytes: &[u8]) -> Result<Marker> {
        let bad = |what| Error::corruption(file, 0, CorruptionKind::Malformed(what));
        let text =
            std::str::from_utf8(bytes).map_err(|_| bad("a restore record that is not text"))?;
        let text = text
            .strip_suffix('\n')
            .ok_or_else(|| bad("a restore record cut short"))?;
        let mut lines = text.split('\n');
        if lines.next() != Some(FIRST_LINE) {
            return Err(bad("not a restore record of this version"));
        }
        let mut field = |key: &str| -> Result<&str> {
            lines
                .next()
                .and_then(|l| l.strip_prefix(key))
                .and_then(|l| l.strip_prefix(' '))
                .ok_or_else(|| bad("a restore record's fields out of order"))
        };
        let standby = match field("mode")? {
            "restore" => false,
            "standby" => true,
            _ => return Err(bad("a bad mode")),
        };
        let history = parse_id(field("history")?).ok_or_else(|| bad("a bad history"))?;
        let target = parse_target(field("target")?).ok_or_else(|| bad("a bad target"))?;
        let tenant = match field("tenant")? {
            "all" => None,
            n => Some(TenantId(n.parse().map_err(|_| bad("a bad tenant"))?)),
        };
        let backup = match field("backup")? {
            "none" => None,
            name => {
                crate::archive::check_name(name).map_err(|_| bad("a bad backup name"))?;
                Some(name.to_owned())
            }
        };
        let new_history = parse_id(field("new-history")?).ok_or_else(|| bad("a bad history"))?;
        let stage = match field("stage")? {
            "fetch" => Stage::Fetch,
            "replay" => Stage::Replay,
            _ => return Err(bad("a bad stage")),
        };
        if lines.next().is_some() {
            return Err(bad("a restore record with more lines"));
        }
        Ok(Marker {
            standby,
            history,
            target,
            tenant,
            backup,
            new_history,
            stage,
        })
    }

    /// The record in folder `dir`, if there is one.
    pub(crate) fn read(files: &Files, dir: &Path) -> Result<Option<Marker>> {
        let path = dir.join(RESTORE_FILE);
        files
            .read_if_exists(&path)?
            .map(|bytes| Marker::decode(&path, &bytes))
            .transpose()
    }

    pub(crate) fn write(&self, files: &Files, dir: &Path) -> Result<()> {
        files.write_atomic(&dir.join(RESTORE_FILE), self.encode().as_bytes())
    }
}

fn target_field(target: RestoreTarget) -> String {
    match target {
        RestoreTarget::Latest => "latest".into(),
        RestoreTarget::Lsn(lsn) => format!("lsn {}", lsn.0),
        RestoreTarget::Time(_) => format!("time {}", target.key().1),
    }
}

fn parse_target(field: &str) -> Option<RestoreTarget> {
    match field.split_once(' ') {
        None if field == "latest" => Some(RestoreTarget::Latest),
        Some(("lsn", n)) => Some(RestoreTarget::Lsn(crate::Lsn(n.parse().ok()?))),
        Some(("time", n)) => Some(RestoreTarget::Time(
            std::time::UNIX_EPOCH.checked_add(std::time::Duration::from_micros(n.parse().ok()?))?,
        )),
        _ => None,
    }
}

fn parse_id(hex: &str) -> Option<[u8; LOG_ID_LEN]> {
    names::parse_history(&format!("{hex}/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_round_trips_and_anything_else_is_malformed() {
        let marker = Marker {
            standby: false,
            history: [0xab; LOG_ID_LEN],
            target: RestoreTarget::Time(
                std::time::UNIX_EPOCH + std::time::Duration::from_micros(1_765_000_000_000_000),
            ),
            tenant: Some(TenantId(42)),
            backup: Some("ab/backups/00000000000000000007-0badcafe.backup".into()),
            new_history: [0x01; LOG_ID_LEN],
            stage: Stage::Replay,
        };
        let file = Path::new(RESTORE_FILE);
        let encoded = marker.encode();
        assert_eq!(Marker::decode(file, encoded.as_bytes()).unwrap(), marker);
        for other in [RestoreTarget::Latest, RestoreTarget::Lsn(crate::Lsn(9))] {
            let m = Marker {
                standby: true,
                target: other,
                tenant: None,
                backup: None,
                stage: Stage::Fetch,
                ..marker.clone()
            };
            assert_eq!(Marker::decode(file, m.encode().as_bytes()).unwrap(), m);
        }
        // Every cut and every changed byte is refused or reads as another
        // valid record, never a panic.
        for cut in 0..encoded.len() {
            assert!(
                Marker::decode(file, &encoded.as_bytes()[..cut]).is_err(),
                "cut at {cut}"
            );
        }
        for at in 0..encoded.len() {
            let mut bytes = encoded.clone().into_bytes();
            bytes[at] ^= 0x20;
            let _ = Marker::decode(file, &bytes);
        }
    }
}
