//! Sealed records.

use super::*;

/// The scope, key and token every fuzzed record is sealed under.
pub(super) fn record_key() -> (ScopeKey, [u8; TOKEN_LEN]) {
    let scope = Scope::subject(TenantId(1), SubjectId(2));
    let key = ScopeKey::ungated(scope, 1, &SecretKey::from_bytes(ROOT_KEY));
    let token = key.lease().expect("a live key").token(b"fuzz");
    (key, token)
}

/// Sealed records (`crypto/record.rs`). The first byte picks the mode:
/// 0 opens the bytes as a sealed record; 1 seals the bytes as a record's
/// plaintext (flags, then a body, maybe zstd) under the fixed key and opens
/// it; 2 splits the bytes into a user key and a value, seals them with
/// `record::seal` (at a compression threshold the input picks) and checks
/// that they open to the same.
pub fn sealed_record(data: &[u8]) {
    let Some((&mode, bytes)) = data.split_first() else {
        return;
    };
    let (owned, token) = record_key();
    let key = owned.lease().expect("a live key");
    match mode % 3 {
        0 => {
            let _ = record::open(&key, &token, bytes);
        }
        1 => {
            let sealed = seal_plaintext(&key, &token, bytes);
            if let Ok((user_key, value)) = record::open(&key, &token, &sealed)
                && bytes.first() == Some(&0)
            {
                assert_eq!(4 + user_key.len() + value.len(), bytes.len() - 1);
            }
        }
        _ => {
            let Some((&[a, b, threshold], rest)) = bytes.split_first_chunk::<3>() else {
                return;
            };
            let split = usize::from(u16::from_le_bytes([a, b])).min(rest.len());
            let (user_key, value) = rest.split_at(split);
            let threshold = [0, 16, 512, usize::MAX][usize::from(threshold % 4)];
            let mut sealed = Vec::new();
            record::seal(
                &key,
                &NonceSource::new(),
                &token,
                user_key,
                value,
                threshold,
                &mut sealed,
            );
            let opened = record::open(&key, &token, &sealed).expect("a sealed record opens");
            assert_eq!(opened, (user_key.to_vec(), value.to_vec()));
        }
    }
}

/// Seals any plaintext as a record of `key` at `token` (the layout and AAD
/// of `docs/FORMAT.md` §4), with a fixed nonce: the fuzzer's inputs are
/// never secret.
pub(super) fn seal_plaintext(
    key: &Lease<'_>,
    token: &[u8; TOKEN_LEN],
    plaintext: &[u8],
) -> Vec<u8> {
    let (kind, subject) = key.scope().encode_kind();
    let mut aad = Vec::with_capacity(53);
    aad.extend_from_slice(RECORD_AAD_DOMAIN);
    aad.extend_from_slice(&key.scope().tenant.0.to_le_bytes());
    aad.push(kind);
    aad.extend_from_slice(&subject.to_le_bytes());
    aad.extend_from_slice(token);
    aad.extend_from_slice(&key.version().to_le_bytes());
    let mut sealed = key.version().to_le_bytes().to_vec();
    aead::seal_with_nonce(
        key.seal_key(),
        &[7; NONCE_LEN],
        &aad,
        plaintext,
        &mut sealed,
    );
    sealed
}
