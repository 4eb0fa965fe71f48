//! The local record of how far the log has been shipped.
//!
//! ```text
//! SHIPPED = magic "SRSHIPPD" | version u32 | lsn u64 | mac [32] | crc32 u32     56 bytes
//! ```
//! `lsn` is the last frame known to be in the archive and `mac` its MAC (the
//! link the next piece's header carries). Written atomically after each
//! piece is put; a crash between the put and this write is caught at open,
//! where the archive's own listing moves the record forward.

use std::path::Path;

use crate::codec;
use crate::error::{Error, Result};
use crate::format::{MAC_LEN, SHIPPED_FILE, SHIPPED_LEN, SHIPPED_MAGIC, SHIPPED_VERSION};
use crate::fs::Files;
use crate::wal::frame::Mac;

/// How far shipping has come.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Shipped {
    pub(crate) lsn: u64,
    pub(crate) mac: Mac,
}

const CRC_AT: usize = SHIPPED_LEN - 4;

impl Shipped {
    pub(crate) fn encode(&self) -> [u8; SHIPPED_LEN] {
        let mut out = [0u8; SHIPPED_LEN];
        out[..8].copy_from_slice(&SHIPPED_MAGIC);
        out[8..12].copy_from_slice(&SHIPPED_VERSION.to_le_bytes());
        out[12..20].copy_from_slice(&self.lsn.to_le_bytes());
        out[20..20 + MAC_LEN].copy_from_slice(&self.mac);
        let crc = crc32fast::hash(&out[..CRC_AT]);
        out[CRC_AT..].copy_from_slice(&crc.to_le_bytes());
        out
    }

    pub(crate) fn decode(file: &Path, bytes: &[u8]) -> Result<Shipped> {
        if bytes.len() != SHIPPED_LEN {
            return Err(Error::corruption(
                file,
                0,
                crate::error::CorruptionKind::Length(bytes.len() as u64),
            ));
        }
        codec::check_magic_version(file, bytes, &SHIPPED_MAGIC, SHIPPED_VERSION)?;
        codec::check_crc(file, bytes, CRC_AT)?;
        Ok(Shipped {
            lsn: u64::from_le_bytes(bytes[12..20].try_into().expect("8 bytes")),
            mac: bytes[20..20 + MAC_LEN].try_into().expect("32 bytes"),
        })
    }

    /// The record in data folder `dir`, if any.
    pub(crate) fn read(files: &Files, dir: &Path) -> Result<Option<Shipped>> {
        let path = dir.join(SHIPPED_FILE);
        match files.read_if_exists(&path)? {
            Some(bytes) => Shipped::decode(&path, &bytes).map(Some),
            None => Ok(None),
        }
    }

    /// Replaces the record, durably.
    pub(crate) fn write(&self, files: &Files, dir: &Path) -> Result<()> {
        files.write_atomic(&dir.join(SHIPPED_FILE), &self.encode())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_record_round_trips_and_every_flip_is_refused() {
        let s = Shipped {
            lsn: 77,
            mac: [9; MAC_LEN],
        };
        let bytes = s.encode();
        assert_eq!(Shipped::decode(Path::new("S"), &bytes).unwrap(), s);
        for bit in 0..SHIPPED_LEN * 8 {
            let mut bad = bytes;
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(Shipped::decode(Path::new("S"), &bad).is_err(), "bit {bit}");
        }
        assert!(Shipped::decode(Path::new("S"), &bytes[..40]).is_err());
    }
}
