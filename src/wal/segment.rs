//! Log segments: files named by their first LSN, each a header then frames.
//!
//! ```text
//! name   = {first_lsn:020}.wal
//! header = magic "SRWALSEG" | version u32 | flags u32 (0) | first_lsn u64
//!          | log_id [16] | prev_mac [32] | crc32 u32 | reserved u32 (0)
//! ```
//! The header CRC covers every header byte before it. `prev_mac` is the MAC
//! of the last frame before this segment (zeros for the first segment of a
//! log), which continues the MAC chain across segments. `log_id` ties the
//! segment to one database.

use std::path::{Path, PathBuf};

use super::frame::Mac;
use crate::codec;
use crate::error::{CorruptionKind, Error, Result};
use crate::format::{
    LOG_ID_LEN, MAC_LEN, SEGMENT_HEADER_CRC_OFFSET, SEGMENT_HEADER_LEN, SEGMENT_MAGIC,
    SEGMENT_NAME_DIGITS, SEGMENT_SUFFIX, SEGMENT_VERSION,
};
use crate::fs::Files;

/// The decoded header of a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SegmentHeader {
    pub(crate) first_lsn: u64,
    pub(crate) log_id: [u8; LOG_ID_LEN],
    pub(crate) prev_mac: Mac,
}

impl SegmentHeader {
    pub(crate) fn encode(&self) -> [u8; SEGMENT_HEADER_LEN] {
        let mut out = [0u8; SEGMENT_HEADER_LEN];
        out[..8].copy_from_slice(&SEGMENT_MAGIC);
        out[8..12].copy_from_slice(&SEGMENT_VERSION.to_le_bytes());
        // flags [12..16] stay zero.
        out[16..24].copy_from_slice(&self.first_lsn.to_le_bytes());
        out[24..24 + LOG_ID_LEN].copy_from_slice(&self.log_id);
        out[24 + LOG_ID_LEN..SEGMENT_HEADER_CRC_OFFSET].copy_from_slice(&self.prev_mac);
        let crc = crc32fast::hash(&out[..SEGMENT_HEADER_CRC_OFFSET]);
        out[SEGMENT_HEADER_CRC_OFFSET..SEGMENT_HEADER_CRC_OFFSET + 4]
            .copy_from_slice(&crc.to_le_bytes());
        out
    }

    /// Decodes a segment's header. Errors name `file` and offset 0.
    pub(crate) fn decode(file: &Path, bytes: &[u8]) -> Result<SegmentHeader> {
        let bad = |kind| Error::corruption(file, 0, kind);
        let header = bytes
            .get(..SEGMENT_HEADER_LEN)
            .ok_or_else(|| bad(CorruptionKind::Truncated))?;
        codec::check_magic_version(file, header, &SEGMENT_MAGIC, SEGMENT_VERSION)?;
        codec::check_crc(file, header, SEGMENT_HEADER_CRC_OFFSET)?;
        if header[12..16] != [0; 4] || header[SEGMENT_HEADER_CRC_OFFSET + 4..] != [0; 4] {
            return Err(bad(CorruptionKind::Malformed("unknown segment flags")));
        }
        let mut prev_mac = [0u8; MAC_LEN];
        prev_mac.copy_from_slice(&header[24 + LOG_ID_LEN..SEGMENT_HEADER_CRC_OFFSET]);
        Ok(SegmentHeader {
            first_lsn: u64::from_le_bytes(header[16..24].try_into().unwrap()),
            log_id: header[24..24 + LOG_ID_LEN].try_into().unwrap(),
            prev_mac,
        })
    }
}

/// Path of the segment whose first LSN is `first_lsn`.
pub(crate) fn path(dir: &Path, first_lsn: u64) -> PathBuf {
    dir.join(format!(
        "{first_lsn:0width$}{SEGMENT_SUFFIX}",
        width = SEGMENT_NAME_DIGITS
    ))
}

/// The segments in `dir`, as (first LSN from the name, path), in LSN order.
/// Files that are not segments are ignored.
pub(crate) fn list(files: &Files, dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let mut segments = Vec::new();
    for name in files.list(dir)? {
        let path = dir.join(&name);
        let Some(stem) = name.strip_suffix(SEGMENT_SUFFIX) else {
            continue;
        };
        if stem.len() == SEGMENT_NAME_DIGITS
            && let Ok(lsn) = stem.parse::<u64>()
        {
            segments.push((lsn, path));
        }
    }
    segments.sort();
    Ok(segments)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_and_flips_are_detected() {
        let h = SegmentHeader {
            first_lsn: 42,
            log_id: [1; LOG_ID_LEN],
            prev_mac: [2; MAC_LEN],
        };
        let bytes = h.encode();
        assert_eq!(SegmentHeader::decode(Path::new("s"), &bytes).unwrap(), h);
        for bit in 0..SEGMENT_HEADER_CRC_OFFSET * 8 + 32 {
            let mut bad = bytes;
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(
                SegmentHeader::decode(Path::new("s"), &bad).is_err(),
                "bit {bit}"
            );
        }
        assert!(SegmentHeader::decode(Path::new("s"), &bytes[..79]).is_err());
    }

    #[test]
    fn names_sort_by_lsn() {
        let p = path(Path::new("/w"), 7);
        assert_eq!(p.file_name().unwrap(), "00000000000000000007.wal");
    }
}
