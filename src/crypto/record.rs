//! Sealed records: a user key and value, compressed above a threshold, then
//! sealed under their scope's key. The same bytes go into the log and the
//! store, so each record is sealed once.
//!
//! Format of a sealed record (see docs/FORMAT.md):
//!
//! ```text
//! key_version u32 | nonce [24] | ciphertext | tag [16]
//! plaintext = flags u8 | body
//! body      = key_len u32 | key | value        (flags & ZSTD == 0)
//!           = zstd(key_len u32 | key | value)  (flags & ZSTD != 0)
//! aad       = "strongroom.rec.1" | tenant u64 | scope_kind u8 | subject u64
//!             | token [16] | key_version u32
//! ```
//!
//! The AAD binds the record to its scope, token and key version: a record
//! moved to another key, scope or version fails authentication.

use std::cell::RefCell;
use std::ops::Range;

use zeroize::Zeroize;

use super::aead;
use super::nonce::NonceSource;
use super::scope_key::{Lease, Token};
use crate::format::{
    RECORD_AAD_DOMAIN, RECORD_FLAG_ZSTD, RECORD_HEADER_LEN, SEAL_OVERHEAD, TOKEN_LEN, USER_KEY_MAX,
    USER_VALUE_MAX, ZSTD_LEVEL,
};
use crate::scope::Scope;

/// Why a sealed record did not open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OpenError {
    /// Too short, or an unknown flag, or a bad length inside.
    Malformed,
    /// Authentication failed: wrong key, moved, or changed.
    Auth,
}

/// Length of the AAD.
const AAD_LEN: usize = 16 + 8 + 1 + 8 + TOKEN_LEN + 4;

pub(crate) fn aad(scope: Scope, token: &Token, key_version: u32) -> [u8; AAD_LEN] {
    let (kind, subject) = scope.encode_kind();
    let mut aad = [0u8; AAD_LEN];
    aad[..16].copy_from_slice(RECORD_AAD_DOMAIN);
    aad[16..24].copy_from_slice(&scope.tenant.0.to_le_bytes());
    aad[24] = kind;
    aad[25..33].copy_from_slice(&subject.to_le_bytes());
    aad[33..33 + TOKEN_LEN].copy_from_slice(token);
    aad[33 + TOKEN_LEN..].copy_from_slice(&key_version.to_le_bytes());
    aad
}

/// Appends the sealed record of (`user_key`, `value`) to `out`, under the
/// next nonce of `nonces`. The plaintext is written into `out` and
/// encrypted there (unless compressed): no copy of it is made.
pub(crate) fn seal(
    key: &Lease<'_>,
    nonces: &NonceSource,
    token: &Token,
    user_key: &[u8],
    value: &[u8],
    compression_threshold: usize,
    out: &mut Vec<u8>,
) {
    assert!(user_key.len() <= USER_KEY_MAX && value.len() <= USER_VALUE_MAX);
    // 0 | key_len | key | value, or ZSTD | zstd(key_len | key | value) if
    // that is smaller.
    let body_len = 4 + user_key.len() + value.len();
    let compressed = (body_len > compression_threshold && !looks_incompressible(value))
        .then(|| compress(user_key, value))
        .flatten();
    let plaintext_len = compressed.as_ref().map_or(1 + body_len, Vec::len);
    out.reserve(4 + plaintext_len + SEAL_OVERHEAD);
    out.extend_from_slice(&key.version().to_le_bytes());
    let aad = aad(key.scope(), token, key.version());
    aead::seal_in_place(
        key.seal_key(),
        &nonces.next(),
        &aad,
        out,
        |out| match &compressed {
            Some(plaintext) => out.extend_from_slice(plaintext),
            None => {
                out.push(0);
                out.extend_from_slice(&(user_key.len() as u32).to_le_bytes());
                out.extend_from_slice(user_key);
                out.extend_from_slice(value);
            }
        },
    );
}

/// The key version a sealed record was sealed under, if it is long enough.
pub(crate) fn key_version(sealed: &[u8]) -> Option<u32> {
    Some(u32::from_le_bytes(sealed.get(..4)?.try_into().ok()?))
}

/// Opens a sealed record, returning (user key, value).
pub(crate) fn open(
    key: &Lease<'_>,
    token: &Token,
    sealed: &[u8],
) -> Result<(Vec<u8>, Vec<u8>), OpenError> {
    let mut buf = sealed.to_vec();
    let mut spill = Vec::new();
    let opened = open_in_place(key, token, &mut buf, &mut spill)?;
    // The value is returned in the buffer it was decrypted (or
    // decompressed) into.
    let mut body = if opened.spilled { spill } else { buf };
    let user_key = body[opened.key].to_vec();
    body.truncate(opened.value.end);
    body.drain(..opened.value.start);
    Ok((user_key, body))
}

/// Where the user key and value of a record opened in place lie: in the
/// sealed bytes themselves, or (a compressed record) in the spill buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Opened {
    pub(crate) key: Range<usize>,
    pub(crate) value: Range<usize>,
    pub(crate) spilled: bool,
}

/// Opens a sealed record where it lies: `sealed` is decrypted in place, and
/// a compressed body is decompressed onto the end of `spill`. After an
/// error `sealed` and the end of `spill` may hold plaintext.
pub(crate) fn open_in_place(
    key: &Lease<'_>,
    token: &Token,
    sealed: &mut [u8],
    spill: &mut Vec<u8>,
) -> Result<Opened, OpenError> {
    if sealed.len() < 4 + SEAL_OVERHEAD + 1 {
        return Err(OpenError::Malformed);
    }
    if key_version(sealed) != Some(key.version()) {
        return Err(OpenError::Auth);
    }
    let aad = aad(key.scope(), token, key.version());
    let plaintext =
        aead::open_in_place(key.seal_key(), &aad, &mut sealed[4..]).map_err(|_| OpenError::Auth)?;
    // flags | key_len | key | value, the last three maybe compressed.
    let plaintext = 4 + plaintext.start..4 + plaintext.end;
    let (body, at, spilled) = match sealed[plaintext.start] {
        0 => (&sealed[..plaintext.end], plaintext.start + 1, false),
        RECORD_FLAG_ZSTD => {
            let at = spill.len();
            if decompress(&sealed[plaintext.start + 1..plaintext.end], spill).is_none() {
                return Err(OpenError::Malformed);
            }
            (&spill[..], at, true)
        }
        _ => return Err(OpenError::Malformed),
    };
    let key_len = body
        .get(at..at + 4)
        .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")) as usize)
        .ok_or(OpenError::Malformed)?;
    let key_at = at + 4;
    if key_len > body.len() - key_at || key_len > USER_KEY_MAX {
        return Err(OpenError::Malformed);
    }
    Ok(Opened {
        key: key_at..key_at + key_len,
        value: key_at + key_len..body.len(),
        spilled,
    })
}

const _: () = assert!(RECORD_HEADER_LEN == 1 + 4);

thread_local! {
    // zstd contexts are costly to make (more than compressing a 4-KiB
    // record); each thread keeps one of each.
    static COMPRESSOR: RefCell<Option<zstd::bulk::Compressor<'static>>> =
        const { RefCell::new(None) };
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { RefCell::new(None) };
}

/// Whether `value` looks like random bytes (encrypted or already compressed
/// data), which zstd cannot shrink: a sample of 512 bytes, in 16-byte runs
/// spread over the value, holding more than 200 distinct byte values (random
/// bytes give about 221; text about 60, typical binary records far fewer).
/// Costs ~0.1 µs, against ~2.8 µs for a zstd attempt on 4 KiB that fails.
/// Wrong only at the price of a missed compression, never of correctness.
fn looks_incompressible(value: &[u8]) -> bool {
    const RUN: usize = 16;
    const RUNS: usize = 32;
    const DISTINCT_MIN: u32 = 200;
    if value.len() < RUN * RUNS {
        return false;
    }
    let stride = value.len() / RUNS;
    let mut seen = [false; 256];
    let mut distinct = 0;
    for run in 0..RUNS {
        for &b in &value[run * stride..run * stride + RUN] {
            distinct += u32::from(!seen[usize::from(b)]);
            seen[usize::from(b)] = true;
        }
    }
    distinct > DISTINCT_MIN
}

/// `RECORD_FLAG_ZSTD | zstd(key_len | key | value)`, if that is shorter
/// than `0 | key_len | key | value`.
fn compress(user_key: &[u8], value: &[u8]) -> Option<Vec<u8>> {
    let mut body = Vec::with_capacity(4 + user_key.len() + value.len());
    body.extend_from_slice(&(user_key.len() as u32).to_le_bytes());
    body.extend_from_slice(user_key);
    body.extend_from_slice(value);
    COMPRESSOR.with(|cell| {
        let mut cell = cell.borrow_mut();
        let compressor = match &mut *cell {
            Some(c) => c,
            None => cell.insert(zstd::bulk::Compressor::new(ZSTD_LEVEL).ok()?),
        };
        // Room for less than the body only, after the flag: zstd gives up
        // as soon as the output would not be smaller.
        let mut plaintext = vec![0; body.len()];
        plaintext[0] = RECORD_FLAG_ZSTD;
        let len = compressor
            .compress_to_buffer(&body, &mut plaintext[1..])
            .ok()?;
        plaintext.truncate(1 + len);
        Some(plaintext)
    })
}

/// Appends the body a zstd frame holds to `out`, sized by the frame's own
/// content size (which every frame `compress` writes records), at most a
/// record's. `None` (and `out` maybe longer) if the frame is not one.
fn decompress(frame: &[u8], out: &mut Vec<u8>) -> Option<()> {
    let size = zstd::zstd_safe::get_frame_content_size(frame).ok()??;
    if size > (4 + USER_KEY_MAX + USER_VALUE_MAX) as u64 {
        return None;
    }
    let size = size as usize;
    DECOMPRESSOR.with(|cell| {
        let mut cell = cell.borrow_mut();
        let decompressor = match &mut *cell {
            Some(d) => d,
            None => cell.insert(zstd::bulk::Decompressor::new().ok()?),
        };
        let at = out.len();
        if out.capacity() < at + size {
            // Grown by hand: a reallocation would free the bytes already
            // there (other records' plaintext) without wiping them.
            let mut bigger = Vec::with_capacity((at + size).max(2 * out.capacity()));
            bigger.extend_from_slice(out);
            out.as_mut_slice().zeroize();
            *out = bigger;
        }
        out.resize(at + size, 0);
        let len = decompressor
            .decompress_to_buffer(frame, &mut out[at..])
            .ok()?;
        (len == size).then_some(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::SecretKey;
    use crate::crypto::scope_key::ScopeKey;
    use crate::format::NONCE_LEN;
    use crate::scope::{SubjectId, TenantId};

    fn key(scope: Scope, version: u32) -> ScopeKey {
        ScopeKey::ungated(scope, version, &SecretKey::random())
    }

    #[test]
    fn random_bytes_look_incompressible_and_redundant_ones_do_not() {
        let mut random = vec![0u8; 4096];
        crate::crypto::fill_random(&mut random);
        assert!(looks_incompressible(&random));
        let text = "Ada Lovelace, 10 Dec 1815, London; notes on the Analytical Engine. "
            .repeat(64)
            .into_bytes();
        assert!(!looks_incompressible(&text));
        // Random bytes over a 64-symbol alphabet (base64) still compress.
        let base64: Vec<u8> = random
            .iter()
            .map(|b| {
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
                    [usize::from(b % 64)]
            })
            .collect();
        assert!(!looks_incompressible(&base64));
        // Too short to sample: left to zstd.
        assert!(!looks_incompressible(&random[..511]));
    }

    #[test]
    fn records_round_trip_with_and_without_compression() {
        let owned = key(Scope::tenant(TenantId(7)), 1);
        let k = owned.lease().unwrap();
        let mut random = vec![0u8; 4096];
        crate::crypto::fill_random(&mut random);
        for value in [vec![], b"small".to_vec(), vec![b'a'; 10_000], random] {
            let token = k.token(b"user key");
            let mut sealed = Vec::new();
            seal(
                &k,
                &NonceSource::new(),
                &token,
                b"user key",
                &value,
                512,
                &mut sealed,
            );
            if value.len() == 10_000 {
                assert!(sealed.len() < 1000, "compressible value is compressed");
            }
            if value.len() == 4096 {
                let raw = 4 + SEAL_OVERHEAD + RECORD_HEADER_LEN + b"user key".len() + 4096;
                assert_eq!(sealed.len(), raw, "incompressible value is stored as it is");
            }
            assert_eq!(
                open(&k, &token, &sealed).unwrap(),
                (b"user key".to_vec(), value)
            );
        }
    }

    #[test]
    fn a_record_is_the_aead_of_its_plaintext_under_the_nonce_it_carries() {
        // Sealing in place gives the bytes the AEAD gives (whose test vector
        // and differential test are in aead.rs), and successive records of
        // one source carry successive nonces.
        let owned = key(Scope::tenant(TenantId(3)), 1);
        let k = owned.lease().unwrap();
        let token = k.token(b"key");
        let nonces = NonceSource::new();
        let (mut first, mut second) = (Vec::new(), Vec::new());
        seal(&k, &nonces, &token, b"key", b"value", 512, &mut first);
        seal(&k, &nonces, &token, b"key", b"value", 512, &mut second);
        let mut plaintext = vec![0];
        plaintext.extend_from_slice(&3u32.to_le_bytes());
        plaintext.extend_from_slice(b"keyvalue");
        let nonce: [u8; NONCE_LEN] = first[4..4 + NONCE_LEN].try_into().unwrap();
        let mut expected = 1u32.to_le_bytes().to_vec();
        aead::seal_with_nonce(
            k.seal_key(),
            &nonce,
            &aad(k.scope(), &token, 1),
            &plaintext,
            &mut expected,
        );
        assert_eq!(first, expected);
        assert_eq!(second[4..4 + NONCE_LEN - 8], nonce[..NONCE_LEN - 8]);
        assert_ne!(second[4..4 + NONCE_LEN], nonce[..]);
    }

    #[test]
    fn a_record_moved_to_another_token_scope_or_version_does_not_open() {
        let root = SecretKey::random();
        let scope = Scope::subject(TenantId(1), SubjectId(2));
        let owned = ScopeKey::ungated(scope, 1, &root);
        let k = owned.lease().unwrap();
        let token = k.token(b"a");
        let mut sealed = Vec::new();
        seal(
            &k,
            &NonceSource::new(),
            &token,
            b"a",
            b"value",
            512,
            &mut sealed,
        );
        assert_eq!(open(&k, &k.token(b"b"), &sealed), Err(OpenError::Auth));
        let other_scope = ScopeKey::ungated(Scope::subject(TenantId(1), SubjectId(3)), 1, &root);
        let other_scope = other_scope.lease().unwrap();
        assert_eq!(open(&other_scope, &token, &sealed), Err(OpenError::Auth));
        let other_version = ScopeKey::ungated(scope, 2, &root);
        let other_version = other_version.lease().unwrap();
        assert_eq!(open(&other_version, &token, &sealed), Err(OpenError::Auth));
        let mut relabelled = sealed.clone();
        relabelled[..4].copy_from_slice(&2u32.to_le_bytes());
        assert_eq!(
            open(&other_version, &token, &relabelled),
            Err(OpenError::Auth)
        );
    }

    #[test]
    fn short_or_garbage_records_are_errors_not_panics() {
        let owned = key(Scope::tenant(TenantId(1)), 1);
        let k = owned.lease().unwrap();
        let token = k.token(b"a");
        for len in 0..80 {
            assert!(open(&k, &token, &vec![0u8; len]).is_err());
        }
    }
}
