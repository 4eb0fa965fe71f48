//! Entry points for the fuzz targets in `fuzz/` (cargo feature `fuzzing`
//! only; not part of the public API, and no stability promise).
//!
//! Each entry point takes arbitrary bytes, runs the crate's real decoders on
//! them, and checks what must hold of whatever decodes: it re-encodes to the
//! same bytes, and recovering twice finds what recovering once left. None
//! may panic on any input; a decoder returning an error is fine.
//!
//! Files are read and written through an in-memory [`FileSystem`] (the
//! engine's own seam), so recovery runs the real code without touching the
//! disk, and a run costs microseconds.
//!
//! A fuzzer cannot forge a CRC, a MAC or an AEAD tag, so most mutated inputs
//! would stop at the first check. Where that would hide the code behind it,
//! the first input byte picks a mode: even runs the decoder on the bytes as
//! they are, odd first repairs every checksum, MAC and wrapped key in them
//! with the fixed keys below, so that the fuzzer explores the checks that
//! come after (LSN order, entry decoding, torn tails, key lookups).

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::clock::SystemClock;
use crate::crypto::SecretKey;
use crate::crypto::aead;
use crate::crypto::keyring::custody::{self, ChainKey};
use crate::crypto::keyring::{Keyring, Manifest};
use crate::crypto::master::{Kdf, MasterKey};
use crate::crypto::nonce::NonceSource;
use crate::crypto::record;
use crate::crypto::root::RootKey;
use crate::crypto::scope_key::{Lease, ScopeKey};
use crate::crypto::wrap::WrapPlace;
use crate::format::{
    FRAME_HEADER_LEN, FRAME_OVERHEAD, FRAME_PAYLOAD_MAX, KDF_TENANT_SUBJECT_WRAP, KEY_LEN,
    KEYRING_DIR, KEYRING_MANIFEST_CUSTODY_AT, KEYRING_MANIFEST_LEN, KEYRING_MANIFEST_LEN_V1,
    KEYRING_RECORD_LEN, KEYRING_SHARD_HEADER_LEN, KEYRING_SHARD_MAGIC, KEYRING_SHARD_SUFFIX,
    KEYRING_SUBJECTS_DIR, KEYRING_TENANTS_DIR, KEYRING_VERSION, LOG_ID_LEN, MAC_LEN, NONCE_LEN,
    PAYLOAD_HEADER_LEN, RECORD_AAD_DOMAIN, RECORD_KEY, SEALS_FILE, SEALS_HEADER_LEN,
    SEALS_RECORD_LEN, SEGMENT_HEADER_CRC_OFFSET, SEGMENT_HEADER_LEN, SEGMENT_MAGIC,
    SHARD_KIND_SUBJECTS, SHARD_KIND_TENANTS, SUBJECT_SHARDS, TENANT_SHARDS, TOKEN_LEN, WAL_DIR,
};
use crate::fs::{FileLock, FileSystem, Files, Kind, WritableFile};
use crate::options::MasterKeySource;
use crate::scope::{Scope, SubjectId, TenantId};
use crate::wal::entry::{self, Op};
use crate::wal::frame::{self, Mac, PayloadHeader};
use crate::wal::reader::LogSummary;
use crate::wal::writer::EncodedBatch;
use crate::wal::{LogWriter, SegmentOptions, read_log};

/// The master key of every fuzzed manifest.
pub const MASTER_KEY: [u8; KEY_LEN] = [0x5a; KEY_LEN];
/// The database root key of every fuzzed log and keyring.
pub const ROOT_KEY: [u8; KEY_LEN] = [0x42; KEY_LEN];
/// The log id of every fuzzed log.
pub const LOG_ID: [u8; LOG_ID_LEN] = [0x17; LOG_ID_LEN];

/// Bounds the work of one input: segments, shards and lookups.
const FILES_MAX: usize = 16;
const LOOKUPS_MAX: usize = 32;

/// Where the in-memory file system keeps the database.
const BASE: &str = "/fuzz";

fn fixup(data: &[u8]) -> Option<(bool, &[u8])> {
    data.split_first()
        .map(|(&mode, rest)| (mode & 1 == 1, rest))
}

fn root() -> RootKey {
    RootKey::from_secret(SecretKey::from_bytes(ROOT_KEY))
}

fn mac_key() -> SecretKey {
    root().frame_mac_key(&LOG_ID)
}

fn base() -> PathBuf {
    PathBuf::from(BASE)
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap())
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap())
}

fn put_crc(bytes: &mut [u8], crc_at: usize) {
    let crc = crc32fast::hash(&bytes[..crc_at]);
    bytes[crc_at..crc_at + 4].copy_from_slice(&crc.to_le_bytes());
}

/// Splits `bytes` before every occurrence of `magic`; the bytes before the
/// first occurrence, if any, are a chunk of their own.
fn split_at_magic<'a>(bytes: &'a [u8], magic: &[u8]) -> Vec<&'a [u8]> {
    let mut starts: Vec<usize> = (1..bytes.len().saturating_sub(magic.len() - 1))
        .filter(|&i| bytes[i..].starts_with(magic))
        .collect();
    starts.insert(0, 0);
    starts.push(bytes.len());
    starts
        .windows(2)
        .map(|w| &bytes[w[0]..w[1]])
        .filter(|c| !c.is_empty())
        .take(FILES_MAX)
        .collect()
}

// ---------------------------------------------------------------------------
// Frames, payloads and entries
// ---------------------------------------------------------------------------

mod archive;
mod keyring;
mod log;
mod memfs;
mod restore;
mod sealed;

pub use archive::{archive_object, backup_manifest};
use keyring::master;
pub use keyring::{manifest, seals, shard};
pub use log::{frame, payload, recovery};
use memfs::MemFs;
pub use restore::{manifest_copy, restore_marker, verify_state};
use sealed::record_key;
pub use sealed::sealed_record;

/// Valid inputs for each target (named as in `fuzz/fuzz_targets/`), made
/// with the real encoders and the fixed keys: the seed corpus.
pub fn seed_inputs() -> Vec<(&'static str, Vec<Vec<u8>>)> {
    let log = seed_log();
    let segments: Vec<Vec<u8>> = log.values().cloned().collect();
    let whole_log: Vec<u8> = segments.concat();
    let frames: Vec<u8> = segments
        .iter()
        .flat_map(|s| s[SEGMENT_HEADER_LEN..].to_vec())
        .collect();
    let mut payloads = Vec::new();
    let mut at = 0;
    while let Ok(raw) = frame::parse(&frames[at..]) {
        payloads.push(raw.payload.to_vec());
        at += raw.len;
    }
    let keyring = seed_keyring();
    let shards: Vec<u8> = keyring
        .iter()
        .filter(|(p, _)| p.extension().is_some_and(|e| e == "keys"))
        .flat_map(|(_, b)| b.clone())
        .collect();
    let seals = keyring
        .iter()
        .find(|(p, _)| p.ends_with(SEALS_FILE))
        .map(|(_, b)| b.clone())
        .unwrap_or_default();
    let manifest = Manifest::with_root(Kdf::None, &master(), LOG_ID, &root());
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
    let chain_key = ChainKey::new(&root());
    let both = |bytes: &[u8]| [[&[0][..], bytes].concat(), [&[1][..], bytes].concat()];
    let mut frame_seeds: Vec<Vec<u8>> = both(&frames).to_vec();
    frame_seeds.extend(payloads.iter().map(|p| [&[1][..], p].concat()));
    let (owned, token) = record_key();
    let key = owned.lease().expect("a live key");
    let mut records = Vec::new();
    for (user_key, value, threshold) in [
        (&b"name"[..], vec![b'x'; 5], 512),
        (b"k", vec![], 512),
        (b"compressible", vec![b'a'; 900], 16),
    ] {
        let mut sealed = Vec::new();
        record::seal(
            &key,
            &NonceSource::new(),
            &token,
            user_key,
            &value,
            threshold,
            &mut sealed,
        );
        records.push([&[0][..], &sealed].concat());
        let mut plain = vec![2, user_key.len() as u8, 0, (threshold % 251) as u8];
        plain.extend_from_slice(user_key);
        plain.extend_from_slice(&value);
        records.push(plain);
    }
    let zstd_body = zstd::bulk::compress(b"\x03\0\0\0keyvalue", 3).expect("zstd compresses");
    records.push([&[1u8, 1][..], &zstd_body].concat());
    records.push([&[1u8, 0, 3, 0, 0, 0][..], b"keyvalue"].concat());
    vec![
        ("frame", frame_seeds),
        ("payload", payloads),
        ("recovery", {
            let mut v = both(&whole_log).to_vec();
            v.extend(segments.iter().map(|s| [&[0][..], s].concat()));
            v
        }),
        ("manifest", {
            let mut v = both(&manifest.encode(&chain_key)).to_vec();
            v.extend(both(&argon.encode(&chain_key)));
            v
        }),
        ("shard", both(&shards).to_vec()),
        ("seals", both(&seals).to_vec()),
        ("sealed_record", records),
        ("model", model_seeds()),
        ("archive_object", archive::archive_object_seeds()),
        ("backup_manifest", archive::backup_manifest_seeds()),
        ("restore_marker", restore::restore_marker_seeds()),
        ("verify_state", restore::verify_state_seeds()),
        ("manifest_copy", restore::manifest_copy_seeds()),
    ]
}

/// Operation sequences for the `model` target (its encoding is documented
/// in `fuzz/fuzz_targets/model.rs`): writes, a batch, a reopen, power cuts.
fn model_seeds() -> Vec<Vec<u8>> {
    vec![
        vec![
            0, 0, 1, 10, 3, 1, 1, 4, 1, 2, 0, 0, 5, 1, 1, 200, 2, 2, 0xff, 5, 0, 3, 2, 150, 7, 3, 9,
        ],
        vec![
            0, 0, 0, 1, 6, 20, 0, 1, 1, 2, 4, 0, 3, 0, 0, 1, 2, 1, 2, 3, 3, 4, 0, 2, 2, 200, 1, 3,
            3, 130, 5,
        ],
        vec![2, 4, 0, 7, 7, 2, 5, 0, 4, 1, 1, 5],
    ]
}

/// A log of three segments written by the real writer: puts and deletes in
/// a tenant's scope and a subject's, sealed with the fixed keys.
fn seed_log() -> BTreeMap<PathBuf, Vec<u8>> {
    let fs = MemFs::default();
    let dir = base().join(WAL_DIR);
    fs.add_dir(&dir);
    let files = Files::new(Arc::new(fs.clone()));
    let empty = LogSummary {
        segments: Vec::new(),
        last_lsn: 0,
        last_mac: [0; MAC_LEN],
        last_commit_us: 0,
        torn_tail: None,
    };
    let mut writer = LogWriter::open(
        &files,
        &dir,
        LOG_ID,
        mac_key(),
        SegmentOptions {
            bytes_max: 300,
            zero_fill: true,
        },
        &empty,
        0,
    )
    .expect("a log in memory opens");
    let (owned, _) = record_key();
    let key = owned.lease().expect("a live key");
    for n in 0..6u32 {
        let mut batch = EncodedBatch::default();
        for (i, user_key) in [&b"name"[..], b"email"].iter().enumerate() {
            let token = key.token(user_key);
            let mut sealed = Vec::new();
            let value = format!("value {n} {i}");
            record::seal(
                &key,
                &NonceSource::new(),
                &token,
                user_key,
                value.as_bytes(),
                512,
                &mut sealed,
            );
            let op = if (n + i as u32) % 3 == 2 {
                Op::Delete
            } else {
                Op::Put(&sealed)
            };
            entry::Entry {
                scope: key.scope(),
                key_version: key.version(),
                token,
                op,
            }
            .encode_into(&mut batch.entries);
            batch.count += 1;
        }
        writer
            .append(&[&batch], 1_700_000_000_000_000 + u64::from(n))
            .expect("append to memory");
        writer.sync().expect("sync to memory");
    }
    drop(writer);
    fs.files_under(&dir)
}

/// A keyring written by the real keyring: two tenants, a subject with a
/// key, a destroyed subject, and a pending seal.
fn seed_keyring() -> BTreeMap<PathBuf, Vec<u8>> {
    let fs = MemFs::default();
    let dir = base().join(KEYRING_DIR);
    fs.add_dir(&dir);
    let files = Files::new(Arc::new(fs.clone()));
    let manifest = Manifest::with_root(Kdf::None, &master(), LOG_ID, &root());
    let keyring = Keyring::open(&files, &dir, manifest, root(), Arc::new(SystemClock))
        .expect("an empty keyring opens");
    let (a, b) = (TenantId(1), TenantId(257));
    let live = Scope::subject(a, SubjectId(2));
    let gone = Scope::subject(a, SubjectId(1026));
    for scope in [Scope::tenant(a), Scope::tenant(b), live, gone] {
        keyring
            .current_key_or_create(scope, None)
            .expect("keys in memory");
    }
    keyring.seal(gone, 1, false).expect("seal");
    keyring.destroy_if_due(gone, 2).expect("destroy");
    keyring.seal(live, u64::MAX, false).expect("seal");
    drop(keyring);
    fs.files_under(&dir)
}

#[cfg(test)]
mod tests {
    use super::keyring::survey;
    use super::log::read_all;
    use super::sealed::seal_plaintext;
    use super::*;

    /// Every seed input runs clean, and the odd-mode seeds reach the deep
    /// paths: the log recovers, the keyring opens.
    #[test]
    fn seed_inputs_run_clean() {
        for (target, inputs) in seed_inputs() {
            assert!(!inputs.is_empty(), "{target} has seeds");
            for input in inputs {
                match target {
                    "frame" => frame(&input),
                    "payload" => payload(&input),
                    "recovery" => recovery(&input),
                    "manifest" => manifest(&input),
                    "shard" => shard(&input),
                    "seals" => seals(&input),
                    "sealed_record" => sealed_record(&input),
                    "archive_object" => archive_object(&input),
                    "backup_manifest" => backup_manifest(&input),
                    "restore_marker" => restore_marker(&input),
                    "verify_state" => verify_state(&input),
                    "manifest_copy" => manifest_copy(&input),
                    "model" => {}
                    other => panic!("unknown target {other}"),
                }
            }
        }
    }

    /// Writes the seed corpus to `$STRONGROOM_FUZZ_SEEDS/<target>/seed-NN`.
    /// `fuzz/run seeds` runs it.
    #[test]
    #[ignore = "writes the seed corpus; run by fuzz/run seeds"]
    fn write_seed_corpus() {
        let dir = PathBuf::from(
            std::env::var_os("STRONGROOM_FUZZ_SEEDS").expect("STRONGROOM_FUZZ_SEEDS is set"),
        );
        for (target, inputs) in seed_inputs() {
            let folder = dir.join(target);
            std::fs::create_dir_all(&folder).unwrap();
            for (i, input) in inputs.iter().enumerate() {
                std::fs::write(folder.join(format!("seed-{i:02}")), input).unwrap();
            }
        }
    }

    #[test]
    fn seeds_decode_as_valid_files() {
        let log = seed_log();
        assert!(log.len() >= 3, "several segments");
        let fs = MemFs::default();
        for (path, bytes) in &log {
            fs.add_file(path, bytes.clone());
        }
        let files = Files::new(Arc::new(fs.clone()));
        let (summary, frames) = read_all(&files, &base().join(WAL_DIR), &mac_key()).unwrap();
        assert_eq!(frames.len(), 6);
        assert_eq!(summary.torn_tail, None);
        let keyring = seed_keyring();
        let fs = MemFs::default();
        for (path, bytes) in &keyring {
            fs.add_file(path, bytes.clone());
        }
        let scopes = BTreeSet::from([Scope::subject(TenantId(1), SubjectId(2))]);
        let found = survey(&fs, &base().join(KEYRING_DIR), &scopes).unwrap();
        assert!(found[1].contains("Sealed"), "{found:?}");
    }

    #[test]
    fn seal_plaintext_makes_records_that_open() {
        let (owned, token) = record_key();
        let key = owned.lease().expect("a live key");
        let sealed = seal_plaintext(&key, &token, b"\0\x01\0\0\0kv");
        assert_eq!(
            record::open(&key, &token, &sealed).unwrap(),
            (b"k".to_vec(), b"v".to_vec())
        );
    }
}
