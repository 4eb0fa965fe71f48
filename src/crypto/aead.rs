//! XChaCha20-Poly1305 with a random 192-bit nonce: the one AEAD of strongroom.
//!
//! Format of a sealed message: `nonce(24) | ciphertext | tag(16)`.
//! A random nonce needs no state that a crash could lose; at 192 bits the
//! chance of a repeat is negligible for any number of messages a key seals.

use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{Key, Tag, XChaCha20Poly1305, XNonce};

use super::{SecretKey, fill_random};
use crate::format::{NONCE_LEN, SEAL_OVERHEAD, TAG_LEN};

/// Authentication failed: wrong key, wrong associated data, or changed bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AuthFailed;

/// Appends `nonce | ciphertext | tag` of `plaintext` to `out`.
pub(crate) fn seal(key: &SecretKey, aad: &[u8], plaintext: &[u8], out: &mut Vec<u8>) {
    let mut nonce = [0u8; NONCE_LEN];
    fill_random(&mut nonce);
    seal_with_nonce(key, &nonce, aad, plaintext, out);
}

/// Seals with a given nonce. Only [`seal`] and the test vectors call this:
/// a nonce must never be reused under one key.
pub(crate) fn seal_with_nonce(
    key: &SecretKey,
    nonce: &[u8; NONCE_LEN],
    aad: &[u8],
    plaintext: &[u8],
    out: &mut Vec<u8>,
) {
    out.reserve(plaintext.len() + SEAL_OVERHEAD);
    out.extend_from_slice(nonce);
    let start = out.len();
    out.extend_from_slice(plaintext);
    let cipher = XChaCha20Poly1305::new(Key::from_slice(key.expose()));
    let tag = cipher
        .encrypt_in_place_detached(XNonce::from_slice(nonce), aad, &mut out[start..])
        .expect("plaintext lengths are bounded far below the AEAD's limit");
    out.extend_from_slice(&tag);
}

/// Opens `nonce | ciphertext | tag`, returning the plaintext.
pub(crate) fn open(key: &SecretKey, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, AuthFailed> {
    if sealed.len() < NONCE_LEN + TAG_LEN {
        return Err(AuthFailed);
    }
    let (nonce, rest) = sealed.split_at(NONCE_LEN);
    let (ciphertext, tag) = rest.split_at(rest.len() - TAG_LEN);
    let mut plaintext = ciphertext.to_vec();
    let cipher = XChaCha20Poly1305::new(Key::from_slice(key.expose()));
    cipher
        .decrypt_in_place_detached(
            XNonce::from_slice(nonce),
            aad,
            &mut plaintext,
            Tag::from_slice(tag),
        )
        .map_err(|_| AuthFailed)?;
    Ok(plaintext)
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
        seal(&key, b"aad", b"hello world", &mut sealed);
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
        seal(&key, b"", b"same", &mut a);
        seal(&key, b"", b"same", &mut b);
        assert_ne!(a[..NONCE_LEN], b[..NONCE_LEN]);
        assert_ne!(a, b);
    }
}
