//! Sealed archive objects: every byte strongroom puts in an archive.
//!
//! An object is sealed whole under the archive key (derived from the root
//! key, [`crate::format::KDF_ROOT_ARCHIVE_SEAL`]), in chunks, with the STREAM
//! construction over XChaCha20-Poly1305:
//!
//! ```text
//! object = header | chunk_0 | chunk_1 | ... | chunk_{n-1}          n >= 1
//! header = magic "SRARCHOB" (8) | version u32 | chunk_len u32 | nonce_prefix [16]
//! chunk_i = ciphertext (chunk_len bytes; the last 0..=chunk_len) | tag [16]
//! nonce_i = nonce_prefix | i u64
//! aad_i   = "strongroom.arc.1" | header | name_len u16 | name | i u64 | last u8
//! ```
//!
//! The nonce prefix is random per object and is HChaCha20's input, so each
//! object seals under a subkey of its own and no (subkey, nonce) pair ever
//! repeats. The header and the object's name are in every chunk's AAD, so an
//! object renamed, or a header changed, fails at its first chunk; the index
//! and the last-chunk flag make reordered, dropped or cut-off chunks fail
//! (an object cut at a chunk boundary ends in a chunk sealed as not last).
//! A bucket reader learns an object's size, nothing else.

use super::ArchiveError;
use crate::crypto::aead::{open_detached, seal_detached};
use crate::crypto::{SecretKey, fill_random};
use crate::error::CorruptionKind;
use crate::format::{
    ARCHIVE_AAD_DOMAIN, ARCHIVE_CHUNK_LEN, ARCHIVE_CHUNK_LEN_MAX, ARCHIVE_CHUNK_LEN_MIN,
    ARCHIVE_NONCE_PREFIX_LEN, ARCHIVE_OBJECT_HEADER_LEN, ARCHIVE_OBJECT_MAGIC,
    ARCHIVE_OBJECT_VERSION, NONCE_LEN, TAG_LEN,
};

/// Seals `plaintext` as the object `name`.
pub(crate) fn seal(key: &SecretKey, name: &str, plaintext: &[u8]) -> Vec<u8> {
    let mut prefix = [0u8; ARCHIVE_NONCE_PREFIX_LEN];
    fill_random(&mut prefix);
    seal_with_prefix(key, name, plaintext, ARCHIVE_CHUNK_LEN, &prefix)
}

/// [`seal`] with a given chunk length and nonce prefix (test vectors).
pub(crate) fn seal_with_prefix(
    key: &SecretKey,
    name: &str,
    plaintext: &[u8],
    chunk_len: u32,
    prefix: &[u8; ARCHIVE_NONCE_PREFIX_LEN],
) -> Vec<u8> {
    assert!((ARCHIVE_CHUNK_LEN_MIN..=ARCHIVE_CHUNK_LEN_MAX).contains(&chunk_len));
    let header = header(chunk_len, prefix);
    let chunk_len = chunk_len as usize;
    let chunks = plaintext.len().div_ceil(chunk_len).max(1);
    let mut out = Vec::with_capacity(header.len() + plaintext.len() + chunks * TAG_LEN);
    out.extend_from_slice(&header);
    for i in 0..chunks {
        let piece = &plaintext
            [(i * chunk_len).min(plaintext.len())..((i + 1) * chunk_len).min(plaintext.len())];
        let last = i + 1 == chunks;
        let aad = chunk_aad(&header, name, i as u64, last);
        seal_detached(key, &nonce(prefix, i as u64), &aad, piece, &mut out);
    }
    debug_assert_eq!(
        out.len(),
        sealed_len(plaintext.len() as u64, chunk_len as u32) as usize
    );
    out
}

/// The size of a sealed object of `plaintext_len` bytes.
pub(crate) fn sealed_len(plaintext_len: u64, chunk_len: u32) -> u64 {
    let chunks = plaintext_len.div_ceil(u64::from(chunk_len)).max(1);
    ARCHIVE_OBJECT_HEADER_LEN as u64 + plaintext_len + chunks * TAG_LEN as u64
}

/// Opens the object `name`: its plaintext, or why not.
pub(crate) fn open(key: &SecretKey, name: &str, bytes: &[u8]) -> Result<Vec<u8>, ArchiveError> {
    let corrupt = |offset: usize, kind| ArchiveError::corrupt(name, offset as u64, kind);
    if bytes.len() < ARCHIVE_OBJECT_HEADER_LEN {
        return Err(corrupt(0, CorruptionKind::Truncated));
    }
    let (header, body) = bytes.split_at(ARCHIVE_OBJECT_HEADER_LEN);
    if header[..8] != ARCHIVE_OBJECT_MAGIC {
        return Err(corrupt(0, CorruptionKind::BadMagic));
    }
    let version = u32::from_le_bytes(header[8..12].try_into().expect("4 bytes"));
    if version != ARCHIVE_OBJECT_VERSION {
        return Err(ArchiveError::UnsupportedVersion {
            name: name.to_owned(),
            found: version,
            supported: ARCHIVE_OBJECT_VERSION,
        });
    }
    let chunk_len = u32::from_le_bytes(header[12..16].try_into().expect("4 bytes"));
    if !(ARCHIVE_CHUNK_LEN_MIN..=ARCHIVE_CHUNK_LEN_MAX).contains(&chunk_len) {
        return Err(corrupt(
            12,
            CorruptionKind::Malformed("chunk length out of range"),
        ));
    }
    let prefix: &[u8; ARCHIVE_NONCE_PREFIX_LEN] = header[16..].try_into().expect("16 bytes");
    if body.len() < TAG_LEN {
        return Err(corrupt(
            ARCHIVE_OBJECT_HEADER_LEN,
            CorruptionKind::Truncated,
        ));
    }
    let sealed_chunk = chunk_len as usize + TAG_LEN;
    let chunks = body.len().div_ceil(sealed_chunk);
    let mut plaintext = Vec::with_capacity(body.len());
    for i in 0..chunks {
        let start = i * sealed_chunk;
        let piece = &body[start..(start + sealed_chunk).min(body.len())];
        let last = i + 1 == chunks;
        let aad = chunk_aad(header, name, i as u64, last);
        let opened = open_detached(key, &nonce(prefix, i as u64), &aad, piece).map_err(|_| {
            corrupt(
                ARCHIVE_OBJECT_HEADER_LEN + start,
                CorruptionKind::ObjectAuth,
            )
        })?;
        plaintext.extend_from_slice(&opened);
    }
    Ok(plaintext)
}

fn header(
    chunk_len: u32,
    prefix: &[u8; ARCHIVE_NONCE_PREFIX_LEN],
) -> [u8; ARCHIVE_OBJECT_HEADER_LEN] {
    let mut header = [0u8; ARCHIVE_OBJECT_HEADER_LEN];
    header[..8].copy_from_slice(&ARCHIVE_OBJECT_MAGIC);
    header[8..12].copy_from_slice(&ARCHIVE_OBJECT_VERSION.to_le_bytes());
    header[12..16].copy_from_slice(&chunk_len.to_le_bytes());
    header[16..].copy_from_slice(prefix);
    header
}

fn nonce(prefix: &[u8; ARCHIVE_NONCE_PREFIX_LEN], index: u64) -> [u8; NONCE_LEN] {
    let mut nonce = [0u8; NONCE_LEN];
    nonce[..ARCHIVE_NONCE_PREFIX_LEN].copy_from_slice(prefix);
    nonce[ARCHIVE_NONCE_PREFIX_LEN..].copy_from_slice(&index.to_le_bytes());
    nonce
}

fn chunk_aad(header: &[u8], name: &str, index: u64, last: bool) -> Vec<u8> {
    let name_len = u16::try_from(name.len()).expect("names are at most ARCHIVE_NAME_MAX bytes");
    let mut aad = Vec::with_capacity(ARCHIVE_AAD_DOMAIN.len() + header.len() + 2 + name.len() + 9);
    aad.extend_from_slice(ARCHIVE_AAD_DOMAIN);
    aad.extend_from_slice(header);
    aad.extend_from_slice(&name_len.to_le_bytes());
    aad.extend_from_slice(name.as_bytes());
    aad.extend_from_slice(&index.to_le_bytes());
    aad.push(u8::from(last));
    aad
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: u32 = ARCHIVE_CHUNK_LEN_MIN;

    fn key() -> SecretKey {
        SecretKey::from_bytes([3; 32])
    }

    fn kind(e: ArchiveError) -> CorruptionKind {
        match e {
            ArchiveError::Corrupt { kind, .. } => kind,
            other => panic!("not corruption: {other}"),
        }
    }

    #[test]
    fn objects_of_every_length_round_trip() {
        let small = SMALL as usize;
        for len in [0, 1, small - 1, small, small + 1, 3 * small, 3 * small + 7] {
            let plaintext: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let sealed = seal_with_prefix(&key(), "a/b", &plaintext, SMALL, &[7; 16]);
            assert_eq!(sealed.len() as u64, sealed_len(len as u64, SMALL));
            assert_eq!(open(&key(), "a/b", &sealed).unwrap(), plaintext, "{len}");
        }
        let big: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
        assert_eq!(open(&key(), "x", &seal(&key(), "x", &big)).unwrap(), big);
    }

    #[test]
    fn a_changed_cut_reordered_or_moved_object_never_opens() {
        let plaintext: Vec<u8> = (0..3 * SMALL as usize + 100)
            .map(|i| (i * 7) as u8)
            .collect();
        let sealed = seal_with_prefix(&key(), "wal/1", &plaintext, SMALL, &[1; 16]);
        let chunk = SMALL as usize + TAG_LEN;
        let h = ARCHIVE_OBJECT_HEADER_LEN;
        // Every bit of a sample of bytes, header included.
        for at in (0..sealed.len())
            .step_by(97)
            .chain([0, 8, 12, 16, h, sealed.len() - 1])
        {
            let mut bad = sealed.clone();
            bad[at] ^= 0x10;
            assert!(open(&key(), "wal/1", &bad).is_err(), "byte {at}");
        }
        // Cut at a chunk boundary (the new last chunk was sealed as not last)
        // and inside a chunk; every cut length fails.
        for cut in [h + chunk, h + 2 * chunk, sealed.len() - 1, h + 3, 5] {
            assert!(open(&key(), "wal/1", &sealed[..cut]).is_err(), "cut {cut}");
        }
        assert_eq!(
            kind(open(&key(), "wal/1", &sealed[..h + chunk]).unwrap_err()),
            CorruptionKind::ObjectAuth
        );
        // Two chunks swapped.
        let mut swapped = sealed.clone();
        let (a, b) = (h..h + chunk, h + chunk..h + 2 * chunk);
        let first = swapped[a.clone()].to_vec();
        swapped.copy_within(b.clone(), a.start);
        swapped[b].copy_from_slice(&first);
        assert_eq!(
            kind(open(&key(), "wal/1", &swapped).unwrap_err()),
            CorruptionKind::ObjectAuth
        );
        // Another name, another key.
        assert!(open(&key(), "wal/2", &sealed).is_err());
        assert!(open(&SecretKey::from_bytes([4; 32]), "wal/1", &sealed).is_err());
        // A chunk of another object with the same name and key.
        let other = seal_with_prefix(&key(), "wal/1", &plaintext, SMALL, &[2; 16]);
        let mut mixed = sealed.clone();
        mixed[h..h + chunk].copy_from_slice(&other[h..h + chunk]);
        assert!(open(&key(), "wal/1", &mixed).is_err());
        assert_eq!(open(&key(), "wal/1", &sealed).unwrap(), plaintext);
    }

    #[test]
    fn the_header_is_checked_before_any_chunk() {
        let sealed = seal(&key(), "n", b"hello");
        let mut magic = sealed.clone();
        magic[0] = b'X';
        assert_eq!(
            kind(open(&key(), "n", &magic).unwrap_err()),
            CorruptionKind::BadMagic
        );
        let mut version = sealed.clone();
        version[8] = 2;
        assert!(matches!(
            open(&key(), "n", &version),
            Err(ArchiveError::UnsupportedVersion { found: 2, .. })
        ));
        let mut chunk_len = sealed.clone();
        chunk_len[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            kind(open(&key(), "n", &chunk_len).unwrap_err()),
            CorruptionKind::Malformed(_)
        ));
        assert_eq!(
            kind(open(&key(), "n", &sealed[..ARCHIVE_OBJECT_HEADER_LEN]).unwrap_err()),
            CorruptionKind::Truncated
        );
    }
}
