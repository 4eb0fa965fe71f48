//! Where each object lives in an archive.
//!
//! ```text
//! <history>/wal/<segment first LSN:020>/<first LSN:020>-<last LSN:020>.seg    a piece
//! <history>/backups/<applied LSN:020>-<8 hex>.backup                          a backup's manifest
//! <history>/sst/<64 hex>.sst                              an SST file (keyed hash of its bytes)
//! <history>/keyring/manifest/<epoch:020>-<master generation:020>.key          the manifest
//! <history>/keyring/seals/<generation:020>-<records:020>.key                  the seals ledger
//! <history>/keyring/tenants/<32 hex>/<generation:020>-<records:020>.key       a tenant shard
//! <history>/keyring/subjects/<32 hex>/<32 hex>/<generation:020>-<records:020>.key  a subject shard
//! <history>/keyring/retired/<32 hex>/<key version:020>-<retired at LSN:020>.key    a retired key
//! <history>/verified/<run:020>.state                                         a verify's state
//! ```
//! Keyring folders are named by a keyed hash (of the shard number, of the
//! tenant id, of both for a subject shard), so that no name shows a tenant.
//! A history is one database's log (its log id, 32 hex digits): a restored
//! database starts a new one and never writes into the one it came from.
//! Pieces sit in a folder per local segment, so that the shipper finds where
//! it stopped by listing one folder, not the whole log. Names carry LSNs,
//! never times or tenant ids.

use crate::crypto::SecretKey;
use crate::crypto::keyring::KeyringFile;
use crate::format::{
    ARCHIVE_BACKUP_DIR, ARCHIVE_BACKUP_SUFFIX, ARCHIVE_KEYRING_DIR, ARCHIVE_KEYRING_HASH_HEX,
    ARCHIVE_KEYRING_SUFFIX, ARCHIVE_PIECE_SUFFIX, ARCHIVE_SST_DIR, ARCHIVE_VERIFY_DIR,
    ARCHIVE_VERIFY_SUFFIX, ARCHIVE_WAL_DIR, LOG_ID_LEN, LSN_MAX, SEGMENT_NAME_DIGITS, SST_SUFFIX,
};

/// The folder of one history.
pub(crate) fn history(log_id: &[u8; LOG_ID_LEN]) -> String {
    log_id.iter().map(|b| format!("{b:02x}")).collect()
}

/// The log id of a history's folder (`<32 hex>/`), if `folder` is one.
pub(crate) fn parse_history(folder: &str) -> Option<[u8; LOG_ID_LEN]> {
    let hex = folder.strip_suffix('/')?;
    if hex.len() != 2 * LOG_ID_LEN || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let mut id = [0u8; LOG_ID_LEN];
    for (i, byte) in id.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(id)
}

/// The folder of every piece of a history.
pub(crate) fn wal_folder(log_id: &[u8; LOG_ID_LEN]) -> String {
    format!("{}/{ARCHIVE_WAL_DIR}/", history(log_id))
}

/// The folder of the pieces of the local segment starting at `segment`.
pub(crate) fn piece_folder(log_id: &[u8; LOG_ID_LEN], segment: u64) -> String {
    format!(
        "{}{segment:0w$}/",
        wal_folder(log_id),
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
    let lsn: u64 = (lsn.len() == SEGMENT_NAME_DIGITS).then(|| lsn.parse().ok())??;
    // Names come from a listing, before any seal is checked: an LSN no log
    // can hold is not a backup's (and could not be added to).
    (lsn < LSN_MAX).then_some(lsn)
}

/// The folder of a history's verify states.
pub(crate) fn verify_folder(log_id: &[u8; LOG_ID_LEN]) -> String {
    format!("{}/{ARCHIVE_VERIFY_DIR}/", history(log_id))
}

/// The state of verify run number `run`.
pub(crate) fn verify_state(log_id: &[u8; LOG_ID_LEN], run: u64) -> String {
    format!(
        "{}{run:0w$}{ARCHIVE_VERIFY_SUFFIX}",
        verify_folder(log_id),
        w = SEGMENT_NAME_DIGITS
    )
}

/// The run number of a verify state, from its name.
pub(crate) fn parse_verify_state(name: &str) -> Option<u64> {
    let file = name.rsplit('/').next()?;
    let run = file.strip_suffix(ARCHIVE_VERIFY_SUFFIX)?;
    (run.len() == SEGMENT_NAME_DIGITS).then(|| run.parse().ok())?
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
    let (first, last): (u64, u64) = (first.parse().ok()?, last.parse().ok()?);
    (first <= last && last < LSN_MAX).then_some((first, last))
}

/// The folder of a history's keyring copies.
pub(crate) fn keyring_root(log_id: &[u8; LOG_ID_LEN]) -> String {
    format!("{}/{ARCHIVE_KEYRING_DIR}/", history(log_id))
}

/// A folder name: a keyed hash of `domain` followed by `id` (a number's
/// little-endian bytes), so that the name shows neither the number nor what
/// it numbers.
fn hashed(name_key: &SecretKey, domain: &[u8], id: &[u8]) -> String {
    let mut what = domain.to_vec();
    what.extend_from_slice(id);
    let hash = blake3::keyed_hash(name_key.expose(), &what);
    hash.to_hex()[..ARCHIVE_KEYRING_HASH_HEX].to_owned()
}

/// The folder of the keyring manifest's copies (named without a key: a
/// reader finds the root key there).
pub(crate) fn keyring_manifest_folder(log_id: &[u8; LOG_ID_LEN]) -> String {
    format!("{}manifest/", keyring_root(log_id))
}

/// The folder of a tenant's subject shards (`name_key`:
/// `RootKey::archive_keyring_name_key`).
pub(crate) fn tenant_subjects_folder(
    log_id: &[u8; LOG_ID_LEN],
    name_key: &SecretKey,
    tenant: u64,
) -> String {
    format!(
        "{}subjects/{}/",
        keyring_root(log_id),
        hashed(name_key, b"subjects ", &tenant.to_le_bytes())
    )
}

/// The folder of every tenant's retired keys.
pub(crate) fn retired_root(log_id: &[u8; LOG_ID_LEN]) -> String {
    format!("{}retired/", keyring_root(log_id))
}

/// The folder of a tenant's retired keys.
pub(crate) fn retired_folder(
    log_id: &[u8; LOG_ID_LEN],
    name_key: &SecretKey,
    tenant: u64,
) -> String {
    format!(
        "{}{}/",
        retired_root(log_id),
        hashed(name_key, b"retired ", &tenant.to_le_bytes())
    )
}

/// The folder of the copies of one keyring file.
pub(crate) fn keyring_folder(
    log_id: &[u8; LOG_ID_LEN],
    name_key: &SecretKey,
    file: KeyringFile,
) -> String {
    match file {
        KeyringFile::Manifest => keyring_manifest_folder(log_id),
        KeyringFile::Seals => format!("{}seals/", keyring_root(log_id)),
        KeyringFile::Tenants(shard) => format!(
            "{}tenants/{}/",
            keyring_root(log_id),
            hashed(name_key, b"tenants ", &shard.to_le_bytes())
        ),
        KeyringFile::Subjects { tenant, shard } => format!(
            "{}{}/",
            tenant_subjects_folder(log_id, name_key, tenant.0),
            hashed(name_key, b"subject shard ", &shard.to_le_bytes())
        ),
    }
}

/// A copy, in its file's `folder`, of the file at `version`; or a retired
/// key in its tenant's folder (`version`: the key version and the LSN it
/// was retired at).
pub(crate) fn keyring_object(folder: &str, version: (u64, u64)) -> String {
    format!(
        "{folder}{:0w$}-{:0w$}{ARCHIVE_KEYRING_SUFFIX}",
        version.0,
        version.1,
        w = SEGMENT_NAME_DIGITS
    )
}

/// The folder and the version of a keyring object, from its name.
pub(crate) fn parse_keyring_object(name: &str) -> Option<(&str, (u64, u64))> {
    let (folder, file) = name.rsplit_once('/')?;
    let stem = file.strip_suffix(ARCHIVE_KEYRING_SUFFIX)?;
    let (a, b) = stem.split_once('-')?;
    if a.len() != SEGMENT_NAME_DIGITS || b.len() != SEGMENT_NAME_DIGITS {
        return None;
    }
    Some((
        &name[..folder.len() + 1],
        (a.parse().ok()?, b.parse().ok()?),
    ))
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
            "00000000000000000001-18446744073709551615.seg",
        ] {
            assert_eq!(parse_piece(bad), None, "{bad}");
        }
        let b = backup(&id, 77);
        crate::archive::check_name(&b).unwrap();
        assert_eq!(parse_backup(&b), Some(77));
        assert_ne!(backup(&id, 77), b, "two backups at one LSN have two names");
        crate::archive::check_name(&sst(&id, &"ab".repeat(32))).unwrap();
        let state = verify_state(&id, 7);
        crate::archive::check_name(&state).unwrap();
        assert_eq!(parse_verify_state(&state), Some(7));
        assert!(verify_state(&id, 9) < verify_state(&id, 10));
        assert_eq!(parse_history(&format!("{}/", history(&id))), Some(id));
        for bad in [
            "ab/",
            "abababababababababababababababab",
            "ABABABABABABABABABABABABABABABAB/",
        ] {
            assert_eq!(parse_history(bad), None, "{bad}");
        }
    }

    #[test]
    fn keyring_names_round_trip_and_show_no_tenant() {
        let id = [0xab; LOG_ID_LEN];
        let key = SecretKey::from_bytes([7; 32]);
        let tenant = crate::scope::TenantId(0x1234_5678);
        let folder = keyring_folder(&id, &key, KeyringFile::Subjects { tenant, shard: 3 });
        assert!(folder.starts_with(&tenant_subjects_folder(&id, &key, tenant.0)));
        assert!(!folder.contains("12345678") && !folder.contains("305419896"));
        let name = keyring_object(&folder, (2, 9));
        crate::archive::check_name(&name).unwrap();
        assert_eq!(parse_keyring_object(&name), Some((folder.as_str(), (2, 9))));
        assert!(keyring_object(&folder, (2, 9)) < keyring_object(&folder, (3, 0)));
        assert_ne!(
            keyring_folder(&id, &key, KeyringFile::Tenants(3)),
            keyring_folder(&id, &key, KeyringFile::Subjects { tenant, shard: 3 })
        );
        assert_ne!(retired_folder(&id, &key, 1), retired_folder(&id, &key, 2));
        assert_eq!(parse_keyring_object("a/b.key"), None);
    }
}
