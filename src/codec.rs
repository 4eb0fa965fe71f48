//! Checks shared by the decoders of every file strongroom owns.

use std::path::Path;

use crate::error::{CorruptionKind, Error, Result};

/// Checks the `magic [8] | version u32` that every strongroom file starts
/// with. The version is checked before any CRC, since another version may lay
/// its bytes out differently.
pub(crate) fn check_magic_version(
    file: &Path,
    bytes: &[u8],
    magic: &[u8; 8],
    supported: u32,
) -> Result<()> {
    let found = read_version(file, bytes, magic)?;
    if found != supported {
        return Err(Error::UnsupportedVersion {
            file: file.into(),
            found,
            supported,
        });
    }
    Ok(())
}

/// Checks the magic of a file and returns its format version, whatever it
/// is (for readers of more than one version).
pub(crate) fn read_version(file: &Path, bytes: &[u8], magic: &[u8; 8]) -> Result<u32> {
    let bad = |kind| Error::corruption(file, 0, kind);
    let head = bytes
        .get(..12)
        .ok_or_else(|| bad(CorruptionKind::Truncated))?;
    if head[..8] != magic[..] {
        return Err(bad(CorruptionKind::BadMagic));
    }
    Ok(u32::from_le_bytes(head[8..12].try_into().unwrap()))
}

/// Checks the little-endian CRC-32 stored at `crc_at`, which covers every
/// byte before it. The caller has checked that `bytes` reaches `crc_at + 4`.
pub(crate) fn check_crc(file: &Path, bytes: &[u8], crc_at: usize) -> Result<()> {
    let stored = u32::from_le_bytes(bytes[crc_at..crc_at + 4].try_into().unwrap());
    if stored != crc32fast::hash(&bytes[..crc_at]) {
        return Err(Error::corruption(
            file,
            crc_at as u64,
            CorruptionKind::Checksum,
        ));
    }
    Ok(())
}
