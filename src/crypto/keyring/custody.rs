//! The chain of custody over the keyring's files.
//!
//! Every keyring file (tenant shards, subject shards, the seals ledger) is a
//! MAC chain: its header and each record end in `crc32 | mac`, the MAC keyed
//! by a key derived from the root key, over the MAC before it and the unit's
//! own bytes. So a record cannot be edited (even with its CRC recomputed),
//! removed from the middle, reordered, or moved to another file or database.
//!
//! What a chain cannot show by itself is where it should end: a file cut back
//! to an earlier record, an older copy of itself, or no file at all. So each
//! file's parent records where its chain stood, its *anchor* (generation,
//! count of records, head MAC), and the root of it all is the manifest, which
//! carries a MAC of its own and an epoch that the store records too:
//!
//! ```text
//! store META_KEYRING_EPOCH <= MANIFEST epoch
//!                             MANIFEST --anchors--> SEALS, tenants/NNN.keys
//!                             tenants/NNN.keys --anchor records--> subjects/T/NNNN.keys
//! ```
//!
//! # Invariants
//! - A parent is updated after its child, never before: a crash in between
//!   leaves a child *ahead* of its anchor (more records, or a newer
//!   generation), which is accepted and recorded. A child *behind* its anchor
//!   (fewer records, an older generation, another head, or missing) is
//!   [`CorruptionKind::RolledBack`].
//! - Every atomic rewrite of a file gives it the next generation; appends keep
//!   it. A new file starts at generation 1; generation 0 in an anchor means
//!   "nothing recorded".

use std::path::Path;

use crate::codec;
use crate::crypto::SecretKey;
use crate::crypto::root::RootKey;
use crate::error::{CorruptionKind, Error, Result};
use crate::format::{ANCHOR_LEN, KDF_ROOT_KEYRING_MAC, KEYRING_GENERATION_MAX, MAC_LEN};

/// A keyring MAC.
pub(crate) type Mac = [u8; MAC_LEN];

/// Domain bytes in front of every MAC input, so that a header, a record and
/// a manifest never verify as one another.
const DOMAIN_HEADER: u8 = 0;
const DOMAIN_RECORD: u8 = 1;
const DOMAIN_MANIFEST: u8 = 2;

/// Where a file's chain stood when its parent last recorded it.
///
/// ```text
/// anchor = generation u64 | count u64 | head [32]
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Anchor {
    /// 0: nothing recorded.
    pub(crate) generation: u64,
    /// Records in the file.
    pub(crate) count: u64,
    /// MAC of its last record (of its header if it has none).
    pub(crate) head: Mac,
}

impl Anchor {
    pub(crate) fn is_none(&self) -> bool {
        self.generation == 0
    }

    pub(crate) fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.generation.to_le_bytes());
        out.extend_from_slice(&self.count.to_le_bytes());
        out.extend_from_slice(&self.head);
    }

    pub(crate) fn decode(bytes: &[u8]) -> Anchor {
        assert!(bytes.len() >= ANCHOR_LEN, "callers pass a whole anchor");
        Anchor {
            generation: u64::from_le_bytes(bytes[..8].try_into().unwrap()),
            count: u64::from_le_bytes(bytes[8..16].try_into().unwrap()),
            head: bytes[16..ANCHOR_LEN].try_into().unwrap(),
        }
    }
}

/// The MAC key of the keyring's files.
#[derive(Debug)]
pub(crate) struct ChainKey(SecretKey);

impl ChainKey {
    pub(crate) fn new(root: &RootKey) -> ChainKey {
        ChainKey(root.secret().derive(KDF_ROOT_KEYRING_MAC))
    }

    fn mac(&self, domain: u8, prev: &[u8], unit: &[u8]) -> Mac {
        let mut hasher = blake3::Hasher::new_keyed(self.0.expose());
        hasher.update(&[domain]);
        hasher.update(prev);
        hasher.update(unit);
        *hasher.finalize().as_bytes()
    }

    /// The MAC of a manifest's bytes before its MAC.
    pub(crate) fn manifest_mac(&self, bytes: &[u8]) -> Mac {
        self.mac(DOMAIN_MANIFEST, &[], bytes)
    }
}

/// A file's chain as read or written: its generation, and the MAC after its
/// header and after each record (`macs[i]` covers the first `i` records).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Chain {
    pub(crate) generation: u64,
    pub(crate) macs: Vec<Mac>,
}

impl Chain {
    /// Where the chain stands now.
    pub(crate) fn anchor(&self) -> Anchor {
        Anchor {
            generation: self.generation,
            count: self.macs.len() as u64 - 1,
            head: *self.macs.last().expect("a chain starts with its header"),
        }
    }
}

/// Appends `crc32 | mac` to a header's bytes (which end in its generation):
/// the start of a chain.
pub(crate) fn seal_header(key: &ChainKey, header: &mut Vec<u8>) -> Mac {
    header.extend_from_slice(&crc32fast::hash(header).to_le_bytes());
    let mac = key.mac(DOMAIN_HEADER, &[], header);
    header.extend_from_slice(&mac);
    mac
}

/// Appends the MAC to a record's bytes (which end in their own CRC),
/// chained after `prev`.
pub(crate) fn seal_record(key: &ChainKey, prev: &Mac, record: &mut Vec<u8>) -> Mac {
    let mac = key.mac(DOMAIN_RECORD, prev, record);
    record.extend_from_slice(&mac);
    mac
}

/// A whole file built from a header (ending in its generation) and records
/// (each ending in its CRC), with its chain.
pub(crate) fn build<'r>(
    key: &ChainKey,
    generation: u64,
    mut header: Vec<u8>,
    records: impl IntoIterator<Item = &'r [u8]>,
) -> (Vec<u8>, Chain) {
    let mut macs = vec![seal_header(key, &mut header)];
    let mut bytes = header;
    for record in records {
        let mut unit = record.to_vec();
        macs.push(seal_record(key, macs.last().unwrap(), &mut unit));
        bytes.extend_from_slice(&unit);
    }
    (bytes, Chain { generation, macs })
}

/// A keyring file read and verified.
#[derive(Debug)]
pub(crate) struct ChainedFile<'a> {
    /// The header, without its CRC and MAC (it ends in the generation).
    pub(crate) header: &'a [u8],
    /// Whole records, each without its MAC (each ends in its CRC).
    pub(crate) records: Vec<&'a [u8]>,
    pub(crate) chain: Chain,
    /// Bytes up to the end of the last whole record: less than the file's
    /// length after a torn append.
    pub(crate) valid_len: usize,
}

/// Reads `header | record*`, each unit ending in `crc32 | mac`, the header's
/// generation (u64) just before its CRC. Checks each unit's CRC (a bad one is
/// `Checksum` at its offset), then its MAC in the chain (`MacChain`). A
/// partial record at the end is a torn append: left out, and `valid_len`
/// says where it starts. The caller has checked magic and version.
pub(crate) fn read<'a>(
    file: &Path,
    bytes: &'a [u8],
    header_len: usize,
    record_len: usize,
    key: &ChainKey,
) -> Result<ChainedFile<'a>> {
    let bad = |offset: usize, kind| Error::corruption(file, offset as u64, kind);
    let unit_end = |len: usize| len - MAC_LEN;
    let header = bytes
        .get(..header_len)
        .ok_or_else(|| bad(0, CorruptionKind::Truncated))?;
    let crc_at = unit_end(header_len) - 4;
    codec::check_crc(file, header, crc_at)?;
    let mut mac = key.mac(DOMAIN_HEADER, &[], &header[..unit_end(header_len)]);
    if header[unit_end(header_len)..] != mac {
        return Err(bad(0, CorruptionKind::MacChain));
    }
    let generation = u64::from_le_bytes(header[crc_at - 8..crc_at].try_into().unwrap());
    if generation == 0 || generation > KEYRING_GENERATION_MAX {
        return Err(bad(
            crc_at - 8,
            CorruptionKind::Malformed("generation out of range"),
        ));
    }
    let mut macs = vec![mac];
    let mut records = Vec::new();
    let mut at = header_len;
    while at + record_len <= bytes.len() {
        let unit = &bytes[at..at + record_len];
        let body = &unit[..unit_end(record_len)];
        let stored = u32::from_le_bytes(body[body.len() - 4..].try_into().unwrap());
        if stored != crc32fast::hash(&body[..body.len() - 4]) {
            return Err(bad(at, CorruptionKind::Checksum));
        }
        mac = key.mac(DOMAIN_RECORD, &mac, body);
        if unit[unit_end(record_len)..] != mac {
            return Err(bad(at, CorruptionKind::MacChain));
        }
        macs.push(mac);
        records.push(body);
        at += record_len;
    }
    Ok(ChainedFile {
        header: &header[..crc_at],
        records,
        chain: Chain { generation, macs },
        valid_len: at,
    })
}

/// Recomputes every CRC and MAC of a keyring file in place (header of
/// `header_len` bytes, then whole records of `record_len`): what someone with
/// the key could write. For the fuzz targets, which reach the checks behind.
#[cfg(feature = "fuzzing")]
pub(crate) fn reseal(key: &ChainKey, bytes: &mut [u8], header_len: usize, record_len: usize) {
    if bytes.len() < header_len {
        return;
    }
    let mut prev: Option<Mac> = None;
    let mut at = 0;
    let mut len = header_len;
    while at + len <= bytes.len() {
        let unit = &mut bytes[at..at + len];
        let crc_at = len - MAC_LEN - 4;
        let crc = crc32fast::hash(&unit[..crc_at]);
        unit[crc_at..crc_at + 4].copy_from_slice(&crc.to_le_bytes());
        let mac = match prev {
            None => key.mac(DOMAIN_HEADER, &[], &unit[..len - MAC_LEN]),
            Some(prev) => key.mac(DOMAIN_RECORD, &prev, &unit[..len - MAC_LEN]),
        };
        unit[len - MAC_LEN..].copy_from_slice(&mac);
        prev = Some(mac);
        at += len;
        len = record_len;
    }
}

/// How a file stands against the anchor its parent holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Standing {
    /// Exactly where the parent says.
    Anchored,
    /// Past it (or not recorded at all): the parent is to be brought level.
    Ahead,
}

/// Checks a file's chain (`None`: no file) against its anchor: it may be
/// ahead, never behind ([`CorruptionKind::RolledBack`], naming the file).
pub(crate) fn check(path: &Path, anchor: &Anchor, found: Option<&Chain>) -> Result<Standing> {
    let rolled_back = || Error::corruption(path, 0, CorruptionKind::RolledBack);
    let Some(chain) = found else {
        return if anchor.is_none() {
            Ok(Standing::Anchored)
        } else {
            Err(rolled_back())
        };
    };
    if anchor.is_none() || chain.generation > anchor.generation {
        return Ok(Standing::Ahead);
    }
    if chain.generation < anchor.generation {
        return Err(rolled_back());
    }
    let count = usize::try_from(anchor.count).map_err(|_| rolled_back())?;
    match chain.macs.get(count) {
        Some(mac) if *mac == anchor.head && chain.macs.len() - 1 == count => Ok(Standing::Anchored),
        Some(mac) if *mac == anchor.head => Ok(Standing::Ahead),
        _ => Err(rolled_back()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> ChainKey {
        ChainKey(SecretKey::from_bytes([3; 32]))
    }

    fn header(generation: u64) -> Vec<u8> {
        let mut h = b"TESTHEAD".to_vec();
        h.extend_from_slice(&generation.to_le_bytes());
        h
    }

    fn record(n: u8) -> Vec<u8> {
        let mut r = vec![n; 6];
        r.extend_from_slice(&crc32fast::hash(&r).to_le_bytes());
        r
    }

    const HEADER_LEN: usize = 8 + 8 + 4 + MAC_LEN;
    const RECORD_LEN: usize = 6 + 4 + MAC_LEN;

    fn file(generation: u64, n: u8) -> (Vec<u8>, Chain) {
        let records: Vec<Vec<u8>> = (0..n).map(record).collect();
        build(
            &key(),
            generation,
            header(generation),
            records.iter().map(|r| &r[..]),
        )
    }

    #[test]
    fn a_built_file_reads_back_and_a_torn_append_is_left_out() {
        let (bytes, chain) = file(4, 3);
        let read_back = read(Path::new("f"), &bytes, HEADER_LEN, RECORD_LEN, &key()).unwrap();
        assert_eq!(read_back.chain, chain);
        assert_eq!(read_back.records.len(), 3);
        assert_eq!(read_back.valid_len, bytes.len());
        let cut = &bytes[..bytes.len() - 5];
        let torn = read(Path::new("f"), cut, HEADER_LEN, RECORD_LEN, &key()).unwrap();
        assert_eq!(torn.records.len(), 2);
        assert_eq!(torn.valid_len, HEADER_LEN + 2 * RECORD_LEN);
    }

    #[test]
    fn every_bit_flip_another_key_and_a_record_removed_are_errors() {
        let (bytes, _) = file(1, 3);
        for bit in 0..bytes.len() * 8 {
            let mut bad = bytes.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(
                read(Path::new("f"), &bad, HEADER_LEN, RECORD_LEN, &key()).is_err(),
                "bit {bit}"
            );
        }
        let other = ChainKey(SecretKey::from_bytes([4; 32]));
        assert!(read(Path::new("f"), &bytes, HEADER_LEN, RECORD_LEN, &other).is_err());
        let mut spliced = bytes[..HEADER_LEN + RECORD_LEN].to_vec();
        spliced.extend_from_slice(&bytes[HEADER_LEN + 2 * RECORD_LEN..]);
        assert!(matches!(
            read(Path::new("f"), &spliced, HEADER_LEN, RECORD_LEN, &key()),
            Err(Error::Corruption {
                kind: CorruptionKind::MacChain,
                ..
            })
        ));
    }

    /// Found by the `seals` fuzz target: a generation of `u64::MAX` read
    /// from a file overflowed when the file was next rewritten.
    #[test]
    fn a_generation_out_of_range_is_malformed() {
        for generation in [0, KEYRING_GENERATION_MAX + 1, u64::MAX] {
            let (bytes, _) = file(generation, 1);
            assert!(matches!(
                read(Path::new("f"), &bytes, HEADER_LEN, RECORD_LEN, &key()),
                Err(Error::Corruption {
                    kind: CorruptionKind::Malformed(_),
                    ..
                })
            ));
        }
    }

    #[test]
    fn a_file_may_be_ahead_of_its_anchor_never_behind() {
        let path = Path::new("f");
        let (_, two) = file(5, 2);
        let anchor = two.anchor();
        let (_, three) = file(5, 3);
        let (_, newer) = file(6, 0);
        let (_, older) = file(4, 9);
        let (_, one) = file(5, 1);
        assert_eq!(
            check(path, &anchor, Some(&two)).unwrap(),
            Standing::Anchored
        );
        assert_eq!(check(path, &anchor, Some(&three)).unwrap(), Standing::Ahead);
        assert_eq!(check(path, &anchor, Some(&newer)).unwrap(), Standing::Ahead);
        assert_eq!(
            check(path, &Anchor::default(), Some(&one)).unwrap(),
            Standing::Ahead
        );
        assert_eq!(
            check(path, &Anchor::default(), None).unwrap(),
            Standing::Anchored
        );
        for behind in [Some(&older), Some(&one), None] {
            assert!(matches!(
                check(path, &anchor, behind),
                Err(Error::Corruption {
                    kind: CorruptionKind::RolledBack,
                    ..
                })
            ));
        }
        // Same generation and count, another head: not this file's history.
        let forged = Anchor {
            head: [9; MAC_LEN],
            ..anchor
        };
        assert!(check(path, &forged, Some(&two)).is_err());
    }
}
