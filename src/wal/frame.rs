//! Frames: one committed batch each.
//!
//! ```text
//! frame   = len u32 | crc32 u32 | payload [len] | mac [32]
//! crc32   = CRC-32 (IEEE) of len | payload | mac
//! mac     = keyed BLAKE3 (frame MAC key) of prev_mac | len | payload
//! payload = lsn u64 | commit_time_us u64 | synced_lsn u64 | entry_count u32
//!           | entries (see `entry.rs`)
//! ```
//!
//! The CRC finds a torn write cheaply, before any cryptography. The MAC
//! chains every frame to the one before it (across segments too, through the
//! segment header's `prev_mac`), so a frame cannot be forged, dropped,
//! reordered or replayed without the master key. `synced_lsn` is the highest
//! LSN known durable when the frame was written: recovery uses it to tell a
//! torn tail (nothing later vouches for it) from corruption (a later frame
//! vouches that it had been synced).

use crate::crypto::SecretKey;
use crate::format::{
    FRAME_HEADER_LEN, FRAME_OVERHEAD, FRAME_PAYLOAD_MAX, MAC_LEN, PAYLOAD_HEADER_LEN,
};

/// A frame MAC.
pub(crate) type Mac = [u8; MAC_LEN];

/// The fields at the start of every payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PayloadHeader {
    pub(crate) lsn: u64,
    pub(crate) commit_time_us: u64,
    pub(crate) synced_lsn: u64,
    pub(crate) entry_count: u32,
}

impl PayloadHeader {
    pub(crate) fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.lsn.to_le_bytes());
        out.extend_from_slice(&self.commit_time_us.to_le_bytes());
        out.extend_from_slice(&self.synced_lsn.to_le_bytes());
        out.extend_from_slice(&self.entry_count.to_le_bytes());
    }

    pub(crate) fn decode(payload: &[u8]) -> Option<PayloadHeader> {
        let h = payload.get(..PAYLOAD_HEADER_LEN)?;
        let u64_at = |at: usize| u64::from_le_bytes(h[at..at + 8].try_into().unwrap());
        Some(PayloadHeader {
            lsn: u64_at(0),
            commit_time_us: u64_at(8),
            synced_lsn: u64_at(16),
            entry_count: u32::from_le_bytes(h[24..28].try_into().unwrap()),
        })
    }
}

/// MAC of a frame, chained to the previous frame's MAC.
///
/// BLAKE3 hashes an input's 1 KiB chunks side by side (SIMD) only in
/// subtrees aligned to the start of the input: fed the 36-byte prefix and
/// then the payload, a hasher would work through most chunks of a 4 KiB
/// record one at a time (3.6 µs here, more than sealing it). So a payload
/// of more than a chunk is hashed as one contiguous input, copied into a
/// per-thread buffer first (~0.1 µs per 4 KiB): the same bytes, the same MAC.
pub(crate) fn mac(key: &SecretKey, prev_mac: &Mac, payload: &[u8]) -> Mac {
    let len = (payload.len() as u32).to_le_bytes();
    if MAC_PREFIX_LEN + payload.len() <= blake3::CHUNK_LEN {
        let mut hasher = blake3::Hasher::new_keyed(key.expose());
        hasher.update(prev_mac);
        hasher.update(&len);
        hasher.update(payload);
        return *hasher.finalize().as_bytes();
    }
    MAC_INPUT.with(|cell| {
        let mut input = cell.borrow_mut();
        input.clear();
        input.extend_from_slice(prev_mac);
        input.extend_from_slice(&len);
        input.extend_from_slice(payload);
        let mac = *blake3::keyed_hash(key.expose(), &input).as_bytes();
        if input.capacity() > MAC_INPUT_KEPT {
            *input = Vec::new();
        }
        mac
    })
}

/// What the MAC hashes before the payload: the previous MAC and the length.
const MAC_PREFIX_LEN: usize = MAC_LEN + 4;
/// Largest MAC input buffer a thread keeps between frames.
const MAC_INPUT_KEPT: usize = 1 << 20;

thread_local! {
    /// The MAC's contiguous input (the payload is sealed records and their
    /// metadata: no plaintext passes through it).
    static MAC_INPUT: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Appends the frame of `payload` to `out` and returns its MAC (for tests
/// and fuzz targets, which make frames of payloads they hold).
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) fn encode(key: &SecretKey, prev_mac: &Mac, payload: &[u8], out: &mut Vec<u8>) -> Mac {
    out.reserve(payload.len() + FRAME_OVERHEAD);
    encode_with(key, prev_mac, out, |out| out.extend_from_slice(payload))
}

/// Appends a frame to `out` whose payload `write_payload` appends where
/// the frame needs it (no copy of the payload is made), and returns its MAC.
pub(crate) fn encode_with(
    key: &SecretKey,
    prev_mac: &Mac,
    out: &mut Vec<u8>,
    write_payload: impl FnOnce(&mut Vec<u8>),
) -> Mac {
    let start = out.len();
    out.extend_from_slice(&[0; FRAME_HEADER_LEN]);
    write_payload(out);
    let payload = &out[start + FRAME_HEADER_LEN..];
    assert!(
        payload.len() <= FRAME_PAYLOAD_MAX,
        "payload bounded by the batch limits"
    );
    let len = (payload.len() as u32).to_le_bytes();
    let mac = mac(key, prev_mac, payload);
    let mut crc = crc32fast::Hasher::new();
    crc.update(&len);
    crc.update(payload);
    crc.update(&mac);
    let crc = crc.finalize().to_le_bytes();
    out[start..start + 4].copy_from_slice(&len);
    out[start + 4..start + FRAME_HEADER_LEN].copy_from_slice(&crc);
    out.extend_from_slice(&mac);
    mac
}

/// A frame whose length and CRC check out (its MAC is not yet checked).
#[derive(Debug, Clone, Copy)]
pub(crate) struct RawFrame<'a> {
    pub(crate) payload: &'a [u8],
    pub(crate) mac: &'a [u8; MAC_LEN],
    /// Bytes the frame takes in the file.
    pub(crate) len: usize,
}

/// Why the bytes at an offset are not a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FrameError {
    /// The bytes end before the frame does.
    Truncated,
    /// The length is out of range.
    Length(u64),
    /// The CRC does not match.
    Checksum,
}

/// Parses the frame at the start of `bytes`, checking length and CRC.
pub(crate) fn parse(bytes: &[u8]) -> Result<RawFrame<'_>, FrameError> {
    let header = bytes.get(..FRAME_HEADER_LEN).ok_or(FrameError::Truncated)?;
    let len = u32::from_le_bytes(header[..4].try_into().unwrap()) as usize;
    if !(PAYLOAD_HEADER_LEN..=FRAME_PAYLOAD_MAX).contains(&len) {
        return Err(FrameError::Length(len as u64));
    }
    let total = len + FRAME_OVERHEAD;
    let frame = bytes.get(..total).ok_or(FrameError::Truncated)?;
    let stored_crc = u32::from_le_bytes(header[4..8].try_into().unwrap());
    let mut crc = crc32fast::Hasher::new();
    crc.update(&header[..4]);
    crc.update(&frame[FRAME_HEADER_LEN..]);
    if crc.finalize() != stored_crc {
        return Err(FrameError::Checksum);
    }
    Ok(RawFrame {
        payload: &frame[FRAME_HEADER_LEN..FRAME_HEADER_LEN + len],
        mac: frame[FRAME_HEADER_LEN + len..].try_into().unwrap(),
        len: total,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(lsn: u64) -> Vec<u8> {
        let mut p = Vec::new();
        PayloadHeader {
            lsn,
            commit_time_us: 5,
            synced_lsn: lsn - 1,
            entry_count: 0,
        }
        .encode_into(&mut p);
        p
    }

    #[test]
    fn frames_round_trip_and_chain() {
        let key = SecretKey::random();
        let mut out = Vec::new();
        let m1 = encode(&key, &[0; MAC_LEN], &payload(1), &mut out);
        let first_len = out.len();
        let m2 = encode(&key, &m1, &payload(2), &mut out);
        let f1 = parse(&out).unwrap();
        assert_eq!(f1.len, first_len);
        assert_eq!(f1.mac, &m1);
        let f2 = parse(&out[first_len..]).unwrap();
        assert_eq!(f2.mac, &m2);
        assert_eq!(mac(&key, &m1, f2.payload), m2);
        assert_ne!(mac(&key, &[0; MAC_LEN], f2.payload), m2, "chained");
        assert_eq!(PayloadHeader::decode(f2.payload).unwrap().lsn, 2);
    }

    #[test]
    fn the_mac_is_keyed_blake3_of_prev_mac_length_and_payload_at_every_size() {
        // Small payloads are fed to a hasher piece by piece, large ones are
        // copied into one input first: both must be the MAC the format says.
        let key = SecretKey::random();
        let prev = [0xab; MAC_LEN];
        let limit = blake3::CHUNK_LEN - MAC_PREFIX_LEN;
        for len in [0, 1, limit - 1, limit, limit + 1, 4096, 4096 + 135, 70_000] {
            let payload: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
            let mut input = prev.to_vec();
            input.extend_from_slice(&(len as u32).to_le_bytes());
            input.extend_from_slice(&payload);
            let expected = *blake3::keyed_hash(key.expose(), &input).as_bytes();
            assert_eq!(mac(&key, &prev, &payload), expected, "payload of {len} B");
        }
    }

    #[test]
    fn every_bit_flip_and_every_cut_is_detected() {
        let key = SecretKey::random();
        let mut out = Vec::new();
        encode(&key, &[0; MAC_LEN], &payload(1), &mut out);
        for bit in 0..out.len() * 8 {
            let mut bad = out.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(parse(&bad).is_err(), "bit {bit}");
        }
        for len in 0..out.len() {
            assert!(parse(&out[..len]).is_err());
        }
    }
}
