//! Where each object lives in an archive.
//!
//! ```text
//! <history>/wal/<segment first LSN:020>/<first LSN:020>-<last LSN:020>.seg    a piece
//! <history>/backups/<applied LSN:020>-<8 hex>.backup                          a backup's manifest
//! <history>/sst/<64 hex>.sst                              an SST file (keyed hash of its bytes)
//! ```
//! A history is one database's log (its log id, 32 hex digits): a restored
//! database starts a new one and never writes into the one it came from.
//! Pieces sit in a folder per local segment, so that the shipper finds where
//! it stopped by listing one folder, not the whole log. Names carry LSNs,
//! never times or tenant ids.

use crate::format::{
    ARCHIVE_BACKUP_DIR, ARCHIVE_BACKUP_SUFFIX, ARCHIVE_PIECE_SUFFIX, ARCHIVE_SST_DIR,
    ARCHIVE_WAL_DIR, LOG_ID_LEN, SEGMENT_NAME_DIGITS, SST_SUFFIX,
};

/// The folder of one history.
pub(crate) fn history(log_id: &[u8; LOG_ID_LEN]) -> String {
    log_id.iter().map(|b| format!("{b:02x}")).collect()
}

/// The folder of the pieces of the local segment starting at `segment`.
pub(crate) fn piece_folder(log_id: &[u8; LOG_ID_LEN], segment: u64) -> String {
    format!(
        "{}/{ARCHIVE_WAL_DIR}/{segment:0w$}/",
        history(log_id),
        w = SEGMENT_NAME_DIGITS
    )
}

/// The piece of frames `first..=last` of the segment starting at `segment`.
pub(crate) fn piece(log_id: &[u8; LOG_ID_LEN], segment: u64, first: u64, last: u64) -> String {
    debug_assert!(segment <= first && first <= last);
    format!(
        "{}{first:0w$}-{last:0w$}{ARCHIVE_PIECE_SUFFIX}",
        piece_folder(log_id, segment),
        w = SEGMENT_NAME_DIGITS
    )
}

/// The folder of a history's backup manifests.
pub(crate) fn backup_folder(log_id: &[u8; LOG_ID_LEN]) -> String {
    format!("{}/{ARCHIVE_BACKUP_DIR}/", history(log_id))
}

/// A new backup's manifest, of the store at `applied_lsn` (a random suffix
/// keeps two backups at one LSN apart).
pub(crate) fn backup(log_id: &[u8; LOG_ID_LEN], applied_lsn: u64) -> String {
    let mut id = [0u8; 4];
    crate::crypto::fill_random(&mut id);
    let id: String = id.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}{applied_lsn:0w$}-{id}{ARCHIVE_BACKUP_SUFFIX}",
        backup_folder(log_id),
        w = SEGMENT_NAME_DIGITS
    )
}

/// The applied LSN of a backup, from its manifest's name.
pub(crate) fn parse_backup(name: &str) -> Option<u64> {
    let file = name.rsplit('/').next()?;
    let stem = file.strip_suffix(ARCHIVE_BACKUP_SUFFIX)?;
    let (lsn, _) = stem.split_once('-')?;
    (lsn.len() == SEGMENT_NAME_DIGITS).then(|| lsn.parse().ok())?
}

/// The folder of a history's SST files.
pub(crate) fn sst_folder(log_id: &[u8; LOG_ID_LEN]) -> String {
    format!("{}/{ARCHIVE_SST_DIR}/", history(log_id))
}

/// An SST file, named by the hex of a keyed hash of its bytes.
pub(crate) fn sst(log_id: &[u8; LOG_ID_LEN], hash_hex: &str) -> String {
    format!("{}{hash_hex}{SST_SUFFIX}", sst_folder(log_id))
}

/// The LSN range of a piece, from its name (any folder); `None` if the name
/// is not a piece's.
pub(crate) fn parse_piece(name: &str) -> Option<(u64, u64)> {
    let file = name.rsplit('/').next()?;
    let stem = file.strip_suffix(ARCHIVE_PIECE_SUFFIX)?;
    let (first, last) = stem.split_once('-')?;
    if first.len() != SEGMENT_NAME_DIGITS || last.len() != SEGMENT_NAME_DIGITS {
        return None;
    }
    let (first, last) = (first.parse().ok()?, last.parse().ok()?);
    (first <= last).then_some((first, last))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn piece_names_round_trip_and_sort_by_lsn() {
        let id = [0xab; LOG_ID_LEN];
        let name = piece(&id, 7, 9, 12);
        assert_eq!(
            name,
            "abababababababababababababababab/wal/00000000000000000007/00000000000000000009-00000000000000000012.seg"
        );
        crate::archive::check_name(&name).unwrap();
        assert_eq!(parse_piece(&name), Some((9, 12)));
        assert!(piece(&id, 1, 9, 12) < piece(&id, 1, 13, 13));
        for bad in [
            "x.seg",
            "1-2.seg",
            "00000000000000000002-00000000000000000001.seg",
        ] {
            assert_eq!(parse_piece(bad), None, "{bad}");
        }
        let b = backup(&id, 77);
        crate::archive::check_name(&b).unwrap();
        assert_eq!(parse_backup(&b), Some(77));
        assert_ne!(backup(&id, 77), b, "two backups at one LSN have two names");
        crate::archive::check_name(&sst(&id, &"ab".repeat(32))).unwrap();
    }
}
