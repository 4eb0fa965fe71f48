//! What a restore and a verify read back: the restore's record
//! (`RESTORING`), a verify's state object, and the keyring manifest's copy
//! in the archive, opened with the master key alone.

use std::sync::OnceLock;

use super::*;
use crate::archive::object;
use crate::crypto::keyring::{KEY_BLOCK_LEN, key_block};
use crate::format::{
    ARCHIVE_CHUNK_LEN, ARCHIVE_NONCE_PREFIX_LEN, KEYRING_MANIFEST_CUSTODY_AT, RESTORE_FILE,
    ROOT_KEY_VERSION, SALT_LEN, WRAP_KIND_ROOT, WRAPPED_KEY_LEN,
};
use crate::restore::RestoreTarget;
use crate::restore::marker::{Marker, Stage};
use crate::restore::verify::State;
use crate::ship::keys::open_manifest_copy;

/// The name every fuzzed verify state is read under.
const STATE_NAME: &str = "17171717171717171717171717171717/verified/00000000000000000001.state";
/// The name every fuzzed manifest copy is sealed under.
const COPY_NAME: &str = "17171717171717171717171717171717/keyring/manifest/00000001";

/// The restore record (`restore/marker.rs`): decoded; what decodes encodes
/// to a record that decodes to the same, and encodes the same again.
pub fn restore_marker(data: &[u8]) {
    let file = Path::new(RESTORE_FILE);
    let Ok(marker) = Marker::decode(file, data) else {
        return;
    };
    let encoded = marker.encode();
    let again = Marker::decode(file, encoded.as_bytes()).expect("an encoded record decodes");
    assert_eq!(again, marker, "a record round trips");
    assert!(again.same_request(&marker));
    assert_eq!(again.encode(), encoded);
    let _ = marker.request();
}

/// Seeds: records with every kind of target, tenant, backup and stage.
pub(super) fn restore_marker_seeds() -> Vec<Vec<u8>> {
    let backup = format!(
        "{}/backups/00000000000000000007-0badcafe.backup",
        "17".repeat(LOG_ID_LEN)
    );
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_micros(1_765_000_000_123_456);
    [
        (RestoreTarget::Latest, None, None, Stage::Fetch),
        (
            RestoreTarget::Lsn(crate::Lsn(9)),
            Some(TenantId(42)),
            Some(backup.clone()),
            Stage::Replay,
        ),
        (
            RestoreTarget::Time(time),
            Some(TenantId(u64::MAX)),
            Some(backup),
            Stage::Fetch,
        ),
    ]
    .into_iter()
    .enumerate()
    .map(|(i, (target, tenant, backup, stage))| {
        Marker {
            standby: i == 1,
            history: LOG_ID,
            target,
            tenant,
            backup,
            new_history: [0xa5; LOG_ID_LEN],
            stage,
        }
        .encode()
        .into_bytes()
    })
    .collect()
}

/// A verify's state (`restore/verify.rs`): decoded; what decodes encodes to
/// no more bytes than it was read from, and to a state that decodes and
/// encodes to the same bytes again.
pub fn verify_state(data: &[u8]) {
    let Ok(state) = State::decode(STATE_NAME, data) else {
        return;
    };
    let encoded = state.encode();
    assert!(
        encoded.len() <= data.len(),
        "a state encodes to more bytes than it was read from"
    );
    let again = State::decode(STATE_NAME, &encoded).expect("an encoded state decodes");
    assert_eq!(again.encode(), encoded, "a state round trips");
}

/// A verify state's bytes, as `State::encode` writes them (its fields are
/// private to verify): `verified` and `backups` sorted by name.
fn state_bytes(
    chain: Option<(u64, [u8; MAC_LEN])>,
    verified: &[(&str, u64)],
    backups: &[(&str, &[&str])],
) -> Vec<u8> {
    let text = |out: &mut Vec<u8>, s: &str| {
        out.extend_from_slice(&(s.len() as u16).to_le_bytes());
        out.extend_from_slice(s.as_bytes());
    };
    let mut out = b"SRVERIFY".to_vec();
    out.extend_from_slice(&1u32.to_le_bytes());
    let (lsn, mac) = chain.unwrap_or((0, [0; MAC_LEN]));
    out.extend_from_slice(&lsn.to_le_bytes());
    out.extend_from_slice(&mac);
    out.extend_from_slice(&(verified.len() as u64).to_le_bytes());
    for (name, size) in verified {
        text(&mut out, name);
        out.extend_from_slice(&size.to_le_bytes());
    }
    out.extend_from_slice(&(backups.len() as u64).to_le_bytes());
    for (name, objects) in backups {
        text(&mut out, name);
        out.extend_from_slice(&(objects.len() as u64).to_le_bytes());
        for object in *objects {
            text(&mut out, object);
        }
    }
    out
}

/// Seeds: an empty state, and one with a chain, verified objects and a
/// backup naming its SSTs.
pub(super) fn verify_state_seeds() -> Vec<Vec<u8>> {
    let h = "17".repeat(LOG_ID_LEN);
    let backup = format!("{h}/backups/00000000000000000007-0badcafe.backup");
    let sst = format!("{h}/sst/{}.sst", "ab".repeat(32));
    let piece = format!("{h}/wal/00000000000000000001-00000000000000000009.piece");
    vec![
        state_bytes(None, &[], &[]),
        state_bytes(
            Some((9, [5; MAC_LEN])),
            &[(&backup, 300), (&sst, 4096), (&piece, 777)],
            &[(&backup, &[&sst, &sst])],
        ),
    ]
}

/// The master key source of every fuzzed copy: the fixed raw key, so that
/// opening one costs no Argon2id.
fn source() -> MasterKeySource {
    MasterKeySource::Bytes(zeroize::Zeroizing::new(MASTER_KEY))
}

/// Seals a manifest file as its copy's object is sealed (whole, the archive
/// key of the fixed root key, the default chunk length), with a fixed
/// nonce prefix so that seeds do not change.
fn seal_file(file: &[u8]) -> Vec<u8> {
    object::seal_with_prefix(
        &root().archive_key(),
        COPY_NAME,
        file,
        ARCHIVE_CHUNK_LEN,
        &[9; ARCHIVE_NONCE_PREFIX_LEN],
    )
}

/// A manifest file's copy, as `ship::keys::copy_object` makes it: the key
/// block, then the file sealed.
fn copy_of(file: &[u8]) -> Vec<u8> {
    [key_block(file), seal_file(file)].concat()
}

/// A valid manifest file (format 2, no KDF, the fixed keys).
fn template() -> &'static [u8] {
    static TEMPLATE: OnceLock<Vec<u8>> = OnceLock::new();
    TEMPLATE.get_or_init(|| {
        Manifest::with_root(Kdf::None, &master(), LOG_ID, &root()).encode(&ChainKey::new(&root()))
    })
}

/// Wraps the fixed root key into a manifest file with the fixed master key
/// (at the master generation the file names), then repairs its MAC and CRC
/// (format 2's length) or its CRC (format 1's).
fn repair_file(file: &mut [u8]) {
    if file.len() >= KEYRING_MANIFEST_CUSTODY_AT {
        let generation_at = 25 + SALT_LEN;
        let root_at = generation_at + 4;
        let place = WrapPlace {
            kind: WRAP_KIND_ROOT,
            tenant: 0,
            id: 0,
            version: ROOT_KEY_VERSION,
            wrapper_version: u32_at(file, generation_at),
        };
        file[root_at..root_at + WRAPPED_KEY_LEN]
            .copy_from_slice(&place.wrap(&master().root_wrap_key(), root().secret()));
    }
    if file.len() == KEYRING_MANIFEST_LEN {
        let mac_at = KEYRING_MANIFEST_LEN - 4 - MAC_LEN;
        let mac = ChainKey::new(&root()).manifest_mac(&file[..mac_at]);
        file[mac_at..mac_at + MAC_LEN].copy_from_slice(&mac);
        put_crc(file, KEYRING_MANIFEST_LEN - 4);
    } else if file.len() == KEYRING_MANIFEST_LEN_V1 {
        put_crc(file, KEYRING_MANIFEST_LEN_V1 - 4);
    }
}

/// The key block of a file of any length: its first bytes up to the
/// custody fields, then their CRC (as `key_block`, which takes a whole
/// format-2 file only); a file too short for that as it is.
fn block_of(file: &[u8]) -> Vec<u8> {
    let mut block = file[..file.len().min(KEYRING_MANIFEST_CUSTODY_AT)].to_vec();
    if block.len() == KEYRING_MANIFEST_CUSTODY_AT {
        block.extend_from_slice(&crc32fast::hash(&block).to_le_bytes());
    }
    block
}

/// The keyring manifest's copy in an archive (`ship/keys.rs`,
/// `open_manifest_copy`): its key block opened with the fixed raw master
/// key, the sealed manifest after it, and the checks that they agree. The
/// first byte picks the mode:
///
/// - 0: the bytes are a copy, opened as they are;
/// - 1: the bytes are a manifest file: the fixed root key is wrapped into
///   it, its MAC and CRC repaired, and its copy made (key block, then the
///   file sealed with the fixed root key's archive key) and opened;
/// - 2: as 1, the bytes laid over the start of a valid manifest file (so
///   that a short input makes a whole manifest);
/// - 3: as 2 after 3 bytes that change one byte of the key block (its CRC
///   repaired), so that it differs from the sealed manifest: never opens.
///
/// A copy that opens must hold a format-2 manifest without a KDF whose MAC
/// holds under the root key, which the fixed master key unwraps from it; it
/// encodes to the file that was sealed, and its copy made again opens to
/// the same manifest and root key. In modes 1 and 2 the root key is the
/// fixed one.
pub fn manifest_copy(data: &[u8]) {
    let Some((&mode, bytes)) = data.split_first() else {
        return;
    };
    let source = source();
    match mode % 4 {
        0 => {
            let Ok((manifest, root)) = open_manifest_copy(COPY_NAME, bytes, &source) else {
                return;
            };
            let encoded = check_opened(&manifest, &root, &source);
            assert_eq!(key_block(&encoded), bytes[..KEY_BLOCK_LEN]);
            let plain = object::open(&root.archive_key(), COPY_NAME, &bytes[KEY_BLOCK_LEN..])
                .expect("an opened copy's manifest opens");
            assert_eq!(encoded, plain, "an opened copy's manifest re-encodes");
        }
        mode @ (1 | 2) => {
            let mut file = if mode == 1 {
                bytes.to_vec()
            } else {
                overlay(bytes)
            };
            repair_file(&mut file);
            let copy = [block_of(&file), seal_file(&file)].concat();
            let Ok((manifest, root)) = open_manifest_copy(COPY_NAME, &copy, &source) else {
                return;
            };
            assert_eq!(root.secret().expose(), &ROOT_KEY);
            let encoded = check_opened(&manifest, &root, &source);
            assert_eq!(encoded, file, "an opened copy's manifest re-encodes");
        }
        _ => {
            let Some((&[a, b, change], rest)) = bytes.split_first_chunk::<3>() else {
                return;
            };
            let mut file = overlay(rest);
            repair_file(&mut file);
            let mut block = block_of(&file);
            let at = usize::from(u16::from_le_bytes([a, b])) % KEYRING_MANIFEST_CUSTODY_AT;
            block[at] ^= change.max(1);
            put_crc(&mut block, KEYRING_MANIFEST_CUSTODY_AT);
            let copy = [block, seal_file(&file)].concat();
            assert!(
                open_manifest_copy(COPY_NAME, &copy, &source).is_err(),
                "a key block that differs from its manifest at byte {at} opens"
            );
        }
    }
}

/// A valid manifest file with `bytes` laid over its start.
fn overlay(bytes: &[u8]) -> Vec<u8> {
    let mut file = template().to_vec();
    if file.len() < bytes.len() {
        file.resize(bytes.len(), 0);
    }
    file[..bytes.len()].copy_from_slice(bytes);
    file
}

/// What holds of a copy that opened: see [`manifest_copy`]. Returns the
/// manifest's encoding under its root key.
fn check_opened(manifest: &Manifest, root: &RootKey, source: &MasterKeySource) -> Vec<u8> {
    assert_eq!(manifest.version, KEYRING_VERSION);
    assert_eq!(manifest.kdf, Kdf::None, "a raw key opened an Argon2id copy");
    let unwrapped = manifest
        .open_root(&master())
        .expect("the master key unwraps an opened copy's root key");
    assert_eq!(unwrapped.secret().expose(), root.secret().expose());
    let key = ChainKey::new(root);
    manifest
        .verify(Path::new(COPY_NAME), &key)
        .expect("an opened copy's MAC holds");
    let encoded = manifest.encode(&key);
    let copy = [
        key_block(&encoded),
        object::seal_with_prefix(
            &root.archive_key(),
            COPY_NAME,
            &encoded,
            ARCHIVE_CHUNK_LEN,
            &[3; ARCHIVE_NONCE_PREFIX_LEN],
        ),
    ]
    .concat();
    let (again, again_root) =
        open_manifest_copy(COPY_NAME, &copy, source).expect("an opened copy, copied again, opens");
    assert_eq!(&again, manifest, "a copy round trips");
    assert_eq!(again_root.secret().expose(), root.secret().expose());
    encoded
}

/// Seeds: copies of a manifest and of one a master key rotation rewrapped
/// (which open), and of an Argon2id one (which the raw key cannot open);
/// a manifest file for modes 1 and 2; a changed key block for mode 3.
pub(super) fn manifest_copy_seeds() -> Vec<Vec<u8>> {
    let chain_key = ChainKey::new(&root());
    let manifest = Manifest::with_root(Kdf::None, &master(), LOG_ID, &root());
    let mut rotated = manifest.rewrapped(Kdf::None, &master(), &root()).next();
    rotated.tenants[3].generation = 2;
    rotated.seals.generation = 1;
    let argon = Manifest::with_root(
        Kdf::Argon2id {
            m_cost_kib: 8,
            t_cost: 1,
            p_cost: 1,
            salt: [3; 16],
        },
        &master(),
        LOG_ID,
        &root(),
    );
    let file = manifest.encode(&chain_key);
    let mut seeds: Vec<Vec<u8>> = [&manifest, &rotated, &argon]
        .into_iter()
        .map(|m| [&[0][..], &copy_of(&m.encode(&chain_key))].concat())
        .collect();
    seeds.push([&[1][..], &file].concat());
    seeds.push([&[2][..], &file[..KEYRING_MANIFEST_CUSTODY_AT + 8]].concat());
    seeds.push([&[3, 120, 0, 1][..], &file[..KEYRING_MANIFEST_CUSTODY_AT]].concat());
    seeds
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_decode_as_valid_records() {
        let file = Path::new(RESTORE_FILE);
        for seed in restore_marker_seeds() {
            let marker = Marker::decode(file, &seed).unwrap();
            assert_eq!(marker.encode().as_bytes(), seed);
        }
        for seed in verify_state_seeds() {
            let state = State::decode(STATE_NAME, &seed).unwrap();
            assert_eq!(
                state.encode(),
                seed,
                "seeds are encoded as State::encode does"
            );
        }
        let seeds = manifest_copy_seeds();
        let opened: Vec<bool> = seeds[..3]
            .iter()
            .map(|s| open_manifest_copy(COPY_NAME, &s[1..], &source()).is_ok())
            .collect();
        assert_eq!(
            opened,
            [true, true, false],
            "the Argon2id copy does not open"
        );
        let (manifest, root) = open_manifest_copy(COPY_NAME, &seeds[1][1..], &source()).unwrap();
        assert_eq!(manifest.master_generation, 2);
        assert_eq!(root.secret().expose(), &ROOT_KEY);
    }

    /// Modes 1 and 2 make copies that open; mode 3's never does.
    #[test]
    fn repaired_copies_open() {
        let source = source();
        let template = template().to_vec();
        for mut file in [template.clone(), overlay(&template[..40])] {
            repair_file(&mut file);
            let copy = [block_of(&file), seal_file(&file)].concat();
            let (manifest, _) = open_manifest_copy(COPY_NAME, &copy, &source).unwrap();
            assert_eq!(manifest.encode(&ChainKey::new(&root())), file);
        }
        for seed in manifest_copy_seeds() {
            manifest_copy(&seed);
        }
    }
}
