//! The test vectors of docs/FORMAT.md §13, checked against the code: each
//! value the document states is computed here from the document's inputs,
//! so the document cannot drift from what the engine writes. Run with
//! `STRONGROOM_PRINT_VECTORS=1` to print the block after a deliberate
//! format change.

use std::collections::BTreeMap;

use crate::archive::object;
use crate::crypto::SecretKey;
use crate::crypto::aead;
use crate::crypto::keyring::custody;
use crate::crypto::record;
use crate::crypto::root::RootKey;
use crate::crypto::scope_key::ScopeKey;
use crate::crypto::wrap::WrapPlace;
use crate::format::*;
use crate::scope::{Scope, SubjectId, TenantId};
use crate::wal::frame;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Bytes `start, start + 1, ...` (wrapping), `len` of them: the inputs.
fn counting(start: u8, len: usize) -> Vec<u8> {
    (0..len).map(|i| start.wrapping_add(i as u8)).collect()
}

fn key(start: u8) -> SecretKey {
    SecretKey::from_bytes(counting(start, KEY_LEN).try_into().unwrap())
}

/// Every vector, by name, computed from the inputs §13 states.
fn computed() -> BTreeMap<&'static str, String> {
    let mut out = BTreeMap::new();
    let root = RootKey::from_secret(key(0x00));
    let log_id: [u8; LOG_ID_LEN] = counting(0xa0, LOG_ID_LEN).try_into().unwrap();
    // Key derivations from the root key.
    out.insert(
        "root.frame_mac_key",
        hex(root.frame_mac_key(&log_id).expose()),
    );
    out.insert("root.tenant_wrap_key", hex(root.tenant_wrap_key().expose()));
    out.insert(
        "root.keyring_mac_key",
        hex(root.secret().derive(KDF_ROOT_KEYRING_MAC).expose()),
    );
    out.insert("root.archive_key", hex(root.archive_key().expose()));
    out.insert(
        "root.archive_name_key",
        hex(root.archive_name_key().expose()),
    );
    out.insert(
        "root.archive_keyring_name_key",
        hex(root.archive_keyring_name_key().expose()),
    );
    // A tenant key (version 1) and what derives from it.
    let tenant_key = key(0x40);
    out.insert(
        "tenant.seal_key",
        hex(tenant_key.derive(KDF_SCOPE_SEAL).expose()),
    );
    out.insert(
        "tenant.token_key",
        hex(tenant_key.derive(KDF_SCOPE_TOKEN).expose()),
    );
    out.insert(
        "tenant.subject_wrap_key",
        hex(tenant_key.derive(KDF_TENANT_SUBJECT_WRAP).expose()),
    );
    // The tenant key wrapped by the tenant wrap key, with a given nonce, in
    // its place in a tenant shard (kind 1, tenant field 0, id the tenant).
    let place = WrapPlace {
        kind: SHARD_KIND_TENANTS,
        tenant: 0,
        id: 7,
        version: 1,
        wrapper_version: 0,
    };
    out.insert("wrap.aad", hex(&place.aad()));
    let nonce: [u8; NONCE_LEN] = counting(0x60, NONCE_LEN).try_into().unwrap();
    let mut wrapped = Vec::new();
    aead::seal_with_nonce(
        &root.tenant_wrap_key(),
        &nonce,
        &place.aad(),
        tenant_key.expose(),
        &mut wrapped,
    );
    assert_eq!(
        place
            .unwrap(
                &root.tenant_wrap_key(),
                &wrapped.clone().try_into().unwrap()
            )
            .unwrap()
            .expose(),
        tenant_key.expose()
    );
    out.insert("wrap.wrapped", hex(&wrapped));
    // A record of tenant 7, key "user-key", value "value", version 1.
    let scope = Scope::tenant(TenantId(7));
    let scope_key = ScopeKey::ungated(scope, 1, &tenant_key);
    let lease = scope_key.lease_ungated().unwrap();
    let token = lease.token(b"user-key");
    out.insert("record.token", hex(&token));
    let aad = record::aad(scope, &token, 1);
    out.insert("record.aad", hex(&aad));
    let mut plaintext = vec![0u8];
    plaintext.extend_from_slice(&8u32.to_le_bytes());
    plaintext.extend_from_slice(b"user-key");
    plaintext.extend_from_slice(b"value");
    let record_nonce: [u8; NONCE_LEN] = counting(0x80, NONCE_LEN).try_into().unwrap();
    let mut sealed = 1u32.to_le_bytes().to_vec();
    aead::seal_with_nonce(
        lease.seal_key(),
        &record_nonce,
        &aad,
        &plaintext,
        &mut sealed,
    );
    assert_eq!(
        record::open(&lease, &token, &sealed).unwrap(),
        (b"user-key".to_vec(), b"value".to_vec()),
        "the documented record layout is what the engine opens"
    );
    out.insert("record.sealed", hex(&sealed));
    // A subject's record AAD (tenant 7, subject 9).
    let subject = Scope::subject(TenantId(7), SubjectId(9));
    out.insert("record.subject_aad", hex(&record::aad(subject, &token, 0)));
    // The MAC of a frame after the chain's start (prev = zeros).
    let payload = counting(0xc0, 40);
    out.insert(
        "frame.mac",
        hex(&frame::mac(
            &root.frame_mac_key(&log_id),
            &[0; MAC_LEN],
            &payload,
        )),
    );
    let mut framed = Vec::new();
    frame::encode(
        &root.frame_mac_key(&log_id),
        &[0; MAC_LEN],
        &payload,
        &mut framed,
    );
    out.insert("frame.bytes", hex(&framed));
    // A keyring file: the seals ledger's header at generation 1, no record.
    let mut header = SEALS_MAGIC.to_vec();
    header.extend_from_slice(&KEYRING_VERSION.to_le_bytes());
    header.extend_from_slice(&1u64.to_le_bytes());
    let chain_key = custody::ChainKey::new(&root);
    let (file, _) = custody::build(&chain_key, 1, header, std::iter::empty::<&[u8]>());
    out.insert("keyring.empty_seals_file", hex(&file));
    // An archive object of 2,500 bytes in chunks of 1,024.
    let prefix: [u8; ARCHIVE_NONCE_PREFIX_LEN] =
        counting(0xe0, ARCHIVE_NONCE_PREFIX_LEN).try_into().unwrap();
    let sealed_object = object::seal_with_prefix(
        &root.archive_key(),
        "h/wal/1/1-2.seg",
        &counting(0x00, 2500),
        ARCHIVE_CHUNK_LEN_MIN,
        &prefix,
    );
    assert_eq!(
        object::open(&root.archive_key(), "h/wal/1/1-2.seg", &sealed_object).unwrap(),
        counting(0x00, 2500)
    );
    out.insert(
        "archive.object_header",
        hex(&sealed_object[..ARCHIVE_OBJECT_HEADER_LEN]),
    );
    // Each chunk's tag (the ciphertext is the XChaCha20 stream's XOR).
    let tags: Vec<String> = [1024usize, 2048, 2500]
        .iter()
        .enumerate()
        .map(|(i, end)| {
            let at = ARCHIVE_OBJECT_HEADER_LEN + end + (i + 1) * TAG_LEN - TAG_LEN;
            hex(&sealed_object[at..at + TAG_LEN])
        })
        .collect();
    out.insert("archive.chunk_tags", tags.join(" "));
    out.insert(
        "archive.object_blake3",
        blake3::hash(&sealed_object).to_hex().to_string(),
    );
    out
}

/// The `name = hex` lines of FORMAT.md §13's block.
fn documented() -> BTreeMap<String, String> {
    let doc = include_str!("../docs/FORMAT.md");
    let section = doc
        .split("## 13. Test vectors")
        .nth(1)
        .expect("FORMAT.md has a section 13");
    let block = section
        .split("```text\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("section 13 has a text block");
    block
        .lines()
        .filter_map(|line| line.split_once(" = "))
        .map(|(name, value)| (name.trim().to_owned(), value.trim().to_owned()))
        .collect()
}

#[test]
fn format_md_test_vectors_match_the_code() {
    let computed = computed();
    if std::env::var_os("STRONGROOM_PRINT_VECTORS").is_some() {
        for (name, value) in &computed {
            println!("{name} = {value}");
        }
    }
    let documented = documented();
    for (name, value) in &computed {
        assert_eq!(
            documented.get(*name),
            Some(value),
            "FORMAT.md §13 {name} differs from the code"
        );
    }
    assert_eq!(
        documented.len(),
        computed.len(),
        "FORMAT.md §13 states a vector the test does not check"
    );
}
