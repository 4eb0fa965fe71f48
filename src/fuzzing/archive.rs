//! Sealed archive objects.

use super::*;
use crate::archive::object;
use crate::format::{ARCHIVE_CHUNK_LEN_MIN, ARCHIVE_NONCE_PREFIX_LEN};
use crate::ship::backup::{BackupFile, BackupManifest, Body};
use crate::store::Applied;

/// The name every fuzzed object is sealed under.
pub(super) const OBJECT_NAME: &str = "fuzz/object";

/// Sealed archive objects (`archive/object.rs`). The first byte picks the
/// mode: 0 opens the bytes as a sealed object; 1 seals the bytes (with a
/// small chunk length, so that they span chunks) and checks they open to
/// the same; 2 seals the bytes, changes one byte or cuts the object where
/// the input says, and checks it no longer opens.
pub fn archive_object(data: &[u8]) {
    let Some((&mode, bytes)) = data.split_first() else {
        return;
    };
    let key = root().archive_key();
    let seal = |plaintext: &[u8]| {
        object::seal_with_prefix(
            &key,
            OBJECT_NAME,
            plaintext,
            ARCHIVE_CHUNK_LEN_MIN,
            &[7; ARCHIVE_NONCE_PREFIX_LEN],
        )
    };
    match mode % 3 {
        0 => {
            let _ = object::open(&key, OBJECT_NAME, bytes);
        }
        1 => {
            let sealed = seal(bytes);
            let opened = object::open(&key, OBJECT_NAME, &sealed).expect("a sealed object opens");
            assert_eq!(opened, bytes);
        }
        _ => {
            let Some((&[a, b, how], plaintext)) = bytes.split_first_chunk::<3>() else {
                return;
            };
            let mut sealed = seal(plaintext);
            let at = usize::from(u16::from_le_bytes([a, b])) % sealed.len();
            if how % 2 == 0 {
                sealed[at] ^= how | 1;
            } else {
                sealed.truncate(at);
            }
            assert!(object::open(&key, OBJECT_NAME, &sealed).is_err());
        }
    }
}

/// Seeds: objects of a few sizes, sealed as the target seals them.
pub(super) fn archive_object_seeds() -> Vec<Vec<u8>> {
    let key = root().archive_key();
    let mut seeds = Vec::new();
    for len in [0, 5, ARCHIVE_CHUNK_LEN_MIN as usize + 3] {
        let plaintext: Vec<u8> = (0..len).map(|i| i as u8).collect();
        let sealed = object::seal_with_prefix(
            &key,
            OBJECT_NAME,
            &plaintext,
            ARCHIVE_CHUNK_LEN_MIN,
            &[7; ARCHIVE_NONCE_PREFIX_LEN],
        );
        seeds.push([&[0][..], &sealed].concat());
        seeds.push([&[1][..], &plaintext].concat());
        seeds.push([&[2, 40, 0, 2][..], &plaintext].concat());
    }
    seeds
}

/// Backup manifests (`ship/backup.rs`), as opened from their sealed object:
/// decoded; what decodes re-encodes to the same bytes.
pub fn backup_manifest(data: &[u8]) {
    if let Ok(manifest) = BackupManifest::decode("fuzz/backup", data) {
        assert_eq!(manifest.encode(), data);
    }
}

/// Seeds: a manifest with an SST in the archive and an inline file.
pub(super) fn backup_manifest_seeds() -> Vec<Vec<u8>> {
    let manifest = BackupManifest {
        applied: Applied {
            lsn: 42,
            commit_us: 1_700_000_000_000_000,
            mac: Some([5; MAC_LEN]),
        },
        files: vec![
            BackupFile {
                name: "000009.sst".into(),
                size: 4096,
                body: Body::Object(format!("h/sst/{}.sst", "ab".repeat(32))),
            },
            BackupFile {
                name: "CURRENT".into(),
                size: 16,
                body: Body::Inline(b"MANIFEST-000005\n".to_vec()),
            },
        ],
    };
    vec![manifest.encode()]
}
