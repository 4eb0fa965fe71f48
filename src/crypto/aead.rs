//! XChaCha20-Poly1305: the one AEAD of strongroom.
//!
//! Format of a sealed message: `nonce(24) | ciphertext | tag(16)`.
//! Records take their nonces from a [`super::nonce::NonceSource`] (a random
//! prefix per open database, then a counter); wrapped keys take random ones.
//! Neither needs state that a crash could lose.
//!
//! # The construction, and who implements it
//!
//! AEAD_XChaCha20_Poly1305 as draft-irtf-cfrg-xchacha-03 (and libsodium)
//! define it: a subkey `HChaCha20(key, nonce[0..16])`, then the IETF
//! ChaCha20-Poly1305 of RFC 8439 under that subkey with the 96-bit nonce
//! `0^32 | nonce[16..24]`. We write none of it: HChaCha20 is RustCrypto's
//! (`chacha20::hchacha`), ChaCha20-Poly1305 is ring's, whose vectorised code
//! seals a 256-byte record several times faster than the portable
//! `chacha20poly1305` crate. That crate stays the reference: the draft's
//! test vector and a differential test on random keys, nonces, AADs and
//! lengths check that both give the same bytes.
//!
//! The subkey protects one message only (HChaCha20 is a PRF: it reveals
//! nothing of the scope key). Ours is wiped after use; ring's copy inside its
//! key object, on the stack, is not, like the plaintext of that same message.

use chacha20::cipher::consts::U10;
use chacha20::cipher::generic_array::GenericArray;
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey};
use zeroize::Zeroize;

use super::{SecretKey, fill_random};
use crate::format::{NONCE_LEN, SEAL_OVERHEAD, TAG_LEN};

/// Authentication failed: wrong key, wrong associated data, or changed bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AuthFailed;

/// Bytes of the extended nonce that go into HChaCha20.
const HCHACHA_INPUT_LEN: usize = 16;

/// The ChaCha20-Poly1305 key and 96-bit nonce of one XChaCha20-Poly1305
/// message.
fn message_key(key: &SecretKey, nonce: &[u8; NONCE_LEN]) -> (LessSafeKey, Nonce) {
    let mut subkey = chacha20::hchacha::<U10>(
        GenericArray::from_slice(key.expose()),
        GenericArray::from_slice(&nonce[..HCHACHA_INPUT_LEN]),
    );
    let unbound =
        UnboundKey::new(&CHACHA20_POLY1305, &subkey).expect("a ChaCha20-Poly1305 key is 32 bytes");
    subkey.as_mut_slice().zeroize();
    let mut short = [0u8; 12];
    short[4..].copy_from_slice(&nonce[HCHACHA_INPUT_LEN..]);
    (
        LessSafeKey::new(unbound),
        Nonce::assume_unique_for_key(short),
    )
}

/// Appends `nonce | ciphertext | tag` of `plaintext` to `out`, under a
/// fresh random nonce: for what is sealed outside the commit path (wrapped
/// keys), where [`super::nonce::NonceSource`]'s fork guard does not reach.
pub(crate) fn seal_random(key: &SecretKey, aad: &[u8], plaintext: &[u8], out: &mut Vec<u8>) {
    let mut nonce = [0u8; NONCE_LEN];
    fill_random(&mut nonce);
    seal_with_nonce(key, &nonce, aad, plaintext, out);
}

/// Seals with a given nonce, which must never have sealed anything under
/// `key` before.
pub(crate) fn seal_with_nonce(
    key: &SecretKey,
    nonce: &[u8; NONCE_LEN],
    aad: &[u8],
    plaintext: &[u8],
    out: &mut Vec<u8>,
) {
    out.reserve(plaintext.len() + SEAL_OVERHEAD);
    seal_in_place(key, nonce, aad, out, |out| out.extend_from_slice(plaintext));
}

/// Appends `nonce | ciphertext | tag` to `out`, where `write_plaintext`
/// appends the plaintext and it is encrypted where it lies: no copy of it
/// is made. The nonce must never have sealed anything under `key` before.
pub(crate) fn seal_in_place(
    key: &SecretKey,
    nonce: &[u8; NONCE_LEN],
    aad: &[u8],
    out: &mut Vec<u8>,
    write_plaintext: impl FnOnce(&mut Vec<u8>),
) {
    out.extend_from_slice(nonce);
    let start = out.len();
    write_plaintext(out);
    encrypt_from(key, nonce, aad, out, start);
}

/// Encrypts `out[start..]` where it lies and appends the tag.
fn encrypt_from(
    key: &SecretKey,
    nonce: &[u8; NONCE_LEN],
    aad: &[u8],
    out: &mut Vec<u8>,
    start: usize,
) {
    let (cipher, short) = message_key(key, nonce);
    let tag = cipher
        .seal_in_place_separate_tag(short, Aad::from(aad), &mut out[start..])
        .expect("plaintext lengths are bounded far below the AEAD's limit");
    out.extend_from_slice(tag.as_ref());
}

/// Appends `ciphertext | tag` of `plaintext` to `out`: the nonce is the
/// caller's to derive again when opening (archive chunks: a per-object
/// random prefix and the chunk's index). It must never have sealed anything
/// under `key` before.
pub(crate) fn seal_detached(
    key: &SecretKey,
    nonce: &[u8; NONCE_LEN],
    aad: &[u8],
    plaintext: &[u8],
    out: &mut Vec<u8>,
) {
    out.reserve(plaintext.len() + TAG_LEN);
    let start = out.len();
    out.extend_from_slice(plaintext);
    encrypt_from(key, nonce, aad, out, start);
}

/// Opens `ciphertext | tag` sealed by [`seal_detached`] with `nonce`.
pub(crate) fn open_detached(
    key: &SecretKey,
    nonce: &[u8; NONCE_LEN],
    aad: &[u8],
    sealed: &[u8],
) -> Result<Vec<u8>, AuthFailed> {
    let mut buf = sealed.to_vec();
    let len = open_detached_in_place(key, nonce, aad, &mut buf)?;
    buf.truncate(len);
    Ok(buf)
}

/// Opens `ciphertext | tag` where it lies: on success the plaintext is
/// `buf[..len]`, `len` returned. On failure `buf` holds unspecified bytes
/// (ring may have decrypted before the tag failed): treat them as plaintext.
pub(crate) fn open_detached_in_place(
    key: &SecretKey,
    nonce: &[u8; NONCE_LEN],
    aad: &[u8],
    buf: &mut [u8],
) -> Result<usize, AuthFailed> {
    if buf.len() < TAG_LEN {
        return Err(AuthFailed);
    }
    let (cipher, short) = message_key(key, nonce);
    Ok(cipher
        .open_in_place(short, Aad::from(aad), buf)
        .map_err(|_| AuthFailed)?
        .len())
}

/// Opens `nonce | ciphertext | tag`, returning the plaintext.
pub(crate) fn open(key: &SecretKey, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, AuthFailed> {
    let mut buf = sealed.to_vec();
    let plaintext = open_in_place(key, aad, &mut buf)?;
    buf.truncate(plaintext.end);
    buf.drain(..plaintext.start);
    Ok(buf)
}

/// Opens `nonce | ciphertext | tag` where it lies, returning where in
/// `sealed` the plaintext now is (just after the nonce).
pub(crate) fn open_in_place(
    key: &SecretKey,
    aad: &[u8],
    sealed: &mut [u8],
) -> Result<std::ops::Range<usize>, AuthFailed> {
    if sealed.len() < NONCE_LEN + TAG_LEN {
        return Err(AuthFailed);
    }
    let (nonce, rest) = sealed.split_at_mut(NONCE_LEN);
    let nonce: &[u8; NONCE_LEN] = (&*nonce).try_into().expect("split at NONCE_LEN");
    let len = open_detached_in_place(key, nonce, aad, rest)?;
    Ok(NONCE_LEN..NONCE_LEN + len)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// draft-irtf-cfrg-xchacha-03, appendix A.3.1: the AEAD_XChaCha20_Poly1305
    /// test vector.
    #[test]
    fn xchacha20poly1305_matches_the_ietf_draft_test_vector() {
        let key: [u8; 32] =
            unhex("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f")
                .try_into()
                .unwrap();
        let nonce: [u8; 24] = unhex("404142434445464748494a4b4c4d4e4f5051525354555657")
            .try_into()
            .unwrap();
        let aad = unhex("50515253c0c1c2c3c4c5c6c7");
        let plaintext = b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.";
        let ciphertext = unhex(
            "bd6d179d3e83d43b9576579493c0e939572a1700252bfaccbed2902c21396cbb
             731c7f1b0b4aa6440bf3a82f4eda7e39ae64c6708c54c216cb96b72e1213b452
             2f8c9ba40db5d945b11b69b982c1bb9e3f3fac2bc369488f76b2383565d3fff9
             21f9664c97637da9768812f615c68b13b52e",
        );
        let tag = unhex("c0875924c1c7987947deafd8780acf49");

        let key = SecretKey::from_bytes(key);
        let mut sealed = Vec::new();
        seal_with_nonce(&key, &nonce, &aad, plaintext, &mut sealed);
        let mut expected = nonce.to_vec();
        expected.extend_from_slice(&ciphertext);
        expected.extend_from_slice(&tag);
        assert_eq!(sealed, expected);
        assert_eq!(open(&key, &aad, &sealed).unwrap(), plaintext);
    }

    #[test]
    fn any_changed_byte_or_aad_fails_authentication() {
        let key = SecretKey::random();
        let mut sealed = Vec::new();
        seal_random(&key, b"aad", b"hello world", &mut sealed);
        assert_eq!(open(&key, b"aad", &sealed).unwrap(), b"hello world");
        assert_eq!(open(&key, b"aaD", &sealed), Err(AuthFailed));
        assert_eq!(open(&SecretKey::random(), b"aad", &sealed), Err(AuthFailed));
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 0x01;
            assert_eq!(open(&key, b"aad", &bad), Err(AuthFailed), "byte {i}");
        }
        assert_eq!(open(&key, b"aad", &sealed[..10]), Err(AuthFailed));
    }

    #[test]
    fn two_seals_of_the_same_plaintext_use_different_nonces() {
        let key = SecretKey::random();
        let (mut a, mut b) = (Vec::new(), Vec::new());
        seal_random(&key, b"", b"same", &mut a);
        seal_random(&key, b"", b"same", &mut b);
        assert_ne!(a[..NONCE_LEN], b[..NONCE_LEN]);
        assert_ne!(a, b);
    }

    /// The reference implementation (RustCrypto's `chacha20poly1305`), for
    /// the differential test.
    fn reference_seal(key: &[u8; 32], nonce: &[u8; NONCE_LEN], aad: &[u8], pt: &[u8]) -> Vec<u8> {
        use chacha20poly1305::aead::{Aead, KeyInit, Payload};
        use chacha20poly1305::{XChaCha20Poly1305, XNonce};
        let cipher = XChaCha20Poly1305::new(key.into());
        let mut sealed = nonce.to_vec();
        let payload = Payload { msg: pt, aad };
        sealed.extend(cipher.encrypt(XNonce::from_slice(nonce), payload).unwrap());
        sealed
    }

    #[test]
    fn ours_and_the_reference_crate_agree_byte_for_byte() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(0xae4d);
        let mut lengths: Vec<usize> = vec![0, 1, 15, 16, 17, 63, 64, 65, 255, 256, 257, 4096];
        lengths.extend((0..200).map(|_| rng.random_range(0..5000)));
        for (i, len) in lengths.into_iter().enumerate() {
            let key_bytes: [u8; 32] = rng.random();
            let nonce: [u8; NONCE_LEN] = rng.random();
            let aad: Vec<u8> = (0..rng.random_range(0..80)).map(|_| rng.random()).collect();
            let pt: Vec<u8> = (0..len).map(|_| rng.random()).collect();
            let key = SecretKey::from_bytes(key_bytes);
            let mut ours = Vec::new();
            seal_with_nonce(&key, &nonce, &aad, &pt, &mut ours);
            let theirs = reference_seal(&key_bytes, &nonce, &aad, &pt);
            assert_eq!(ours, theirs, "case {i}: length {len}");
            // The detached form is the same bytes without the nonce.
            let mut detached = Vec::new();
            seal_detached(&key, &nonce, &aad, &pt, &mut detached);
            assert_eq!(detached, theirs[NONCE_LEN..], "case {i}: detached");
            assert_eq!(open_detached(&key, &nonce, &aad, &detached).unwrap(), pt);
            assert_eq!(open(&key, &aad, &theirs).unwrap(), pt, "case {i}");
            // A flipped bit fails in both.
            let mut bad = theirs.clone();
            let at = rng.random_range(0..bad.len());
            bad[at] ^= 1 << rng.random_range(0..8);
            assert_eq!(open(&key, &aad, &bad), Err(AuthFailed), "case {i}");
            {
                use chacha20poly1305::aead::{Aead, KeyInit, Payload};
                use chacha20poly1305::{XChaCha20Poly1305, XNonce};
                let cipher = XChaCha20Poly1305::new((&key_bytes).into());
                let payload = Payload {
                    msg: &bad[NONCE_LEN..],
                    aad: &aad,
                };
                assert!(
                    cipher
                        .decrypt(XNonce::from_slice(&bad[..NONCE_LEN]), payload)
                        .is_err()
                );
            }
        }
    }
}
