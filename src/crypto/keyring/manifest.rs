//! The keyring manifest: how the master key is obtained, the database root
//! key wrapped by it, the database's log id, and the root of the keyring's
//! chain of custody (`custody.rs`).
//!
//! ```text
//! magic "SRKEYMAN" | version u32 | kdf u8 | m_cost_kib u32 | t_cost u32
//! | p_cost u32 | salt [16] | master_generation u32 | wrapped_root [72]
//! | log_id [16] | epoch u64 | seals anchor [48] | tenant shard anchors [48 × 256]
//! | mac [32] | crc32 u32
//! ```
//! The CRC covers every byte before it; the MAC (keyring MAC key, derived
//! from the root key) every byte before it, and is checked once the root key
//! is unwrapped. For `kdf = 0` the Argon2id fields are zero. `wrapped_root`
//! is the root key wrapped (see `wrap.rs`) by the master key's root-wrap key,
//! at place kind 0, tenant 0, id 0, version 1, wrapper_version =
//! `master_generation` (1 until the master key is rotated). A master key that
//! does not unwrap it is the wrong key. `epoch` grows by one at every rewrite.
//!
//! Format 1 ended after `log_id` with its CRC; it is read to upgrade it.

use std::path::Path;

use super::custody::{Anchor, ChainKey, Mac};
use crate::codec;
use crate::crypto::master::{Kdf, MasterKey};
use crate::crypto::root::RootKey;
use crate::crypto::wrap::{WrapPlace, Wrapped};
use crate::error::{CorruptionKind, Error, Result};
use crate::format::{
    ANCHOR_LEN, ARGON2_M_COST_KIB_MAX, ARGON2_P_COST_MAX, ARGON2_T_COST_MAX, KDF_ARGON2ID,
    KDF_NONE, KEYRING_MANIFEST_CUSTODY_AT, KEYRING_MANIFEST_LEN, KEYRING_MANIFEST_LEN_V1,
    KEYRING_MANIFEST_MAGIC, KEYRING_VERSION, KEYRING_VERSION_V1, LOG_ID_LEN, MAC_LEN,
    ROOT_KEY_VERSION, SALT_LEN, TENANT_SHARDS, WRAP_KIND_ROOT, WRAPPED_KEY_LEN,
};

/// The decoded manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Manifest {
    /// The format it was read in (1: to be upgraded); always written in
    /// `KEYRING_VERSION`.
    pub(crate) version: u32,
    pub(crate) kdf: Kdf,
    pub(crate) master_generation: u32,
    pub(crate) wrapped_root: Wrapped,
    pub(crate) log_id: [u8; LOG_ID_LEN],
    /// Grows by one at every rewrite (0 for format 1).
    pub(crate) epoch: u64,
    /// Where the seals ledger's chain stood when last recorded.
    pub(crate) seals: Anchor,
    /// Where each tenant shard's chain stood, by shard number.
    pub(crate) tenants: Vec<Anchor>,
    /// The MAC as read (zeros for format 1), checked by [`Manifest::verify`].
    mac: Mac,
}

impl Manifest {
    /// The manifest of a new database, and its new root key.
    pub(crate) fn create(
        kdf: Kdf,
        master: &MasterKey,
        log_id: [u8; LOG_ID_LEN],
    ) -> (Manifest, RootKey) {
        let root = RootKey::random();
        (Manifest::with_root(kdf, master, log_id, &root), root)
    }

    /// The manifest of a new database whose root key is `root`.
    pub(crate) fn with_root(
        kdf: Kdf,
        master: &MasterKey,
        log_id: [u8; LOG_ID_LEN],
        root: &RootKey,
    ) -> Manifest {
        let master_generation = 1;
        let wrapped_root = place(master_generation).wrap(&master.root_wrap_key(), root.secret());
        let manifest = Manifest {
            version: KEYRING_VERSION,
            kdf,
            master_generation,
            wrapped_root,
            log_id,
            epoch: 1,
            seals: Anchor::default(),
            tenants: vec![Anchor::default(); TENANT_SHARDS as usize],
            mac: [0; MAC_LEN],
        };
        Manifest {
            mac: ChainKey::new(root).manifest_mac(&manifest.body()),
            ..manifest
        }
    }

    /// The same manifest with `root` wrapped by a new master key (obtained
    /// through `kdf`), one master generation later.
    pub(crate) fn rewrapped(&self, kdf: Kdf, master: &MasterKey, root: &RootKey) -> Manifest {
        let master_generation = self.master_generation + 1;
        Manifest {
            kdf,
            master_generation,
            wrapped_root: place(master_generation).wrap(&master.root_wrap_key(), root.secret()),
            ..self.next()
        }
    }

    /// The manifest of a new history of the same database (a restore's):
    /// the same keys, anchors and master key, log `log_id`, one epoch later.
    pub(crate) fn for_history(&self, log_id: [u8; LOG_ID_LEN]) -> Manifest {
        Manifest {
            log_id,
            ..self.next()
        }
    }

    /// The same manifest, one epoch later (to be written).
    pub(crate) fn next(&self) -> Manifest {
        Manifest {
            version: KEYRING_VERSION,
            epoch: self.epoch + 1,
            ..self.clone()
        }
    }

    /// Checks the MAC of a format-2 manifest, with the keyring MAC key that
    /// its root key gives: a manifest whose CRC was recomputed after an edit
    /// is `MacChain`.
    pub(crate) fn verify(&self, file: &Path, key: &ChainKey) -> Result<()> {
        if self.version == KEYRING_VERSION && key.manifest_mac(&self.body()) != self.mac {
            return Err(Error::corruption(file, 0, CorruptionKind::MacChain));
        }
        Ok(())
    }

    /// Unwraps the root key: [`Error::WrongMasterKey`] if `master` cannot.
    pub(crate) fn open_root(&self, master: &MasterKey) -> Result<RootKey> {
        place(self.master_generation)
            .unwrap(&master.root_wrap_key(), &self.wrapped_root)
            .map(RootKey::from_secret)
            .map_err(|_| Error::WrongMasterKey)
    }

    /// The whole file, in format 2, its MAC under `key`.
    pub(crate) fn encode(&self, key: &ChainKey) -> Vec<u8> {
        let mut out = self.body();
        out.extend_from_slice(&key.manifest_mac(&out));
        out.extend_from_slice(&crc32fast::hash(&out).to_le_bytes());
        assert_eq!(out.len(), KEYRING_MANIFEST_LEN);
        out
    }

    /// The bytes of format 2 before the MAC.
    pub(crate) fn body(&self) -> Vec<u8> {
        assert_eq!(self.tenants.len(), TENANT_SHARDS as usize);
        let mut out = Vec::with_capacity(KEYRING_MANIFEST_LEN);
        out.extend_from_slice(&KEYRING_MANIFEST_MAGIC);
        out.extend_from_slice(&KEYRING_VERSION.to_le_bytes());
        let (kind, m, t, p, salt) = match self.kdf {
            Kdf::None => (KDF_NONE, 0, 0, 0, [0u8; SALT_LEN]),
            Kdf::Argon2id {
                m_cost_kib,
                t_cost,
                p_cost,
                salt,
            } => (KDF_ARGON2ID, m_cost_kib, t_cost, p_cost, salt),
        };
        out.push(kind);
        for v in [m, t, p] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&salt);
        out.extend_from_slice(&self.master_generation.to_le_bytes());
        out.extend_from_slice(&self.wrapped_root);
        out.extend_from_slice(&self.log_id);
        debug_assert_eq!(out.len(), KEYRING_MANIFEST_CUSTODY_AT);
        out.extend_from_slice(&self.epoch.to_le_bytes());
        self.seals.encode_into(&mut out);
        for anchor in &self.tenants {
            anchor.encode_into(&mut out);
        }
        out
    }

    pub(crate) fn decode(file: &Path, bytes: &[u8]) -> Result<Manifest> {
        let bad = |offset: usize, kind| Error::corruption(file, offset as u64, kind);
        let version = codec::read_version(file, bytes, &KEYRING_MANIFEST_MAGIC)?;
        if version != KEYRING_VERSION_V1 {
            codec::check_magic_version(file, bytes, &KEYRING_MANIFEST_MAGIC, KEYRING_VERSION)?;
        }
        let len = match version {
            KEYRING_VERSION_V1 => KEYRING_MANIFEST_LEN_V1,
            _ => KEYRING_MANIFEST_LEN,
        };
        if bytes.len() != len {
            return Err(bad(0, CorruptionKind::Length(bytes.len() as u64)));
        }
        let crc_at = len - 4;
        codec::check_crc(file, bytes, crc_at)?;
        let head = Head::decode(file, bytes)?;
        let custody_at = KEYRING_MANIFEST_CUSTODY_AT;
        let mut manifest = Manifest {
            version,
            kdf: head.kdf,
            master_generation: head.master_generation,
            wrapped_root: head.wrapped_root,
            log_id: head.log_id,
            epoch: 0,
            seals: Anchor::default(),
            tenants: vec![Anchor::default(); TENANT_SHARDS as usize],
            mac: [0; MAC_LEN],
        };
        if version == KEYRING_VERSION {
            let anchors_at = custody_at + 8;
            manifest.epoch = u64::from_le_bytes(bytes[custody_at..anchors_at].try_into().unwrap());
            let mut anchors = bytes[anchors_at..crc_at - MAC_LEN].chunks_exact(ANCHOR_LEN);
            manifest.seals = Anchor::decode(anchors.next().expect("the length was checked"));
            manifest.tenants = anchors.map(Anchor::decode).collect();
            manifest.mac = bytes[crc_at - MAC_LEN..crc_at].try_into().unwrap();
        }
        Ok(manifest)
    }
}

/// The manifest up to its log id: how the master key is obtained, the root
/// key wrapped by it, and the log id. Every format has it.
struct Head {
    kdf: Kdf,
    master_generation: u32,
    wrapped_root: Wrapped,
    log_id: [u8; LOG_ID_LEN],
}

impl Head {
    /// Decodes the head of `bytes`, whose magic, version, length (at
    /// least [`KEYRING_MANIFEST_CUSTODY_AT`]) and CRC the caller checked.
    fn decode(file: &Path, bytes: &[u8]) -> Result<Head> {
        let bad = |offset: usize, kind| Error::corruption(file, offset as u64, kind);
        let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
        let salt: [u8; SALT_LEN] = bytes[25..25 + SALT_LEN].try_into().unwrap();
        let kdf = match bytes[12] {
            KDF_NONE if bytes[13..25 + SALT_LEN].iter().all(|&b| b == 0) => Kdf::None,
            KDF_ARGON2ID => Kdf::Argon2id {
                m_cost_kib: u32_at(13),
                t_cost: u32_at(17),
                p_cost: u32_at(21),
                salt,
            },
            _ => return Err(bad(12, CorruptionKind::Malformed("unknown KDF"))),
        };
        if let Kdf::Argon2id {
            m_cost_kib,
            t_cost,
            p_cost,
            ..
        } = kdf
            && (m_cost_kib > ARGON2_M_COST_KIB_MAX
                || t_cost > ARGON2_T_COST_MAX
                || p_cost > ARGON2_P_COST_MAX)
        {
            return Err(bad(
                13,
                CorruptionKind::Malformed("Argon2id cost out of range"),
            ));
        }
        let generation_at = 25 + SALT_LEN;
        let root_at = generation_at + 4;
        let log_id_at = root_at + WRAPPED_KEY_LEN;
        debug_assert_eq!(log_id_at + LOG_ID_LEN, KEYRING_MANIFEST_CUSTODY_AT);
        Ok(Head {
            kdf,
            master_generation: u32_at(generation_at),
            wrapped_root: bytes[root_at..log_id_at].try_into().unwrap(),
            log_id: bytes[log_id_at..KEYRING_MANIFEST_CUSTODY_AT]
                .try_into()
                .unwrap(),
        })
    }
}

/// The key block of a manifest's copy in an archive (FORMAT §12.5): the
/// manifest file's first [`KEYRING_MANIFEST_CUSTODY_AT`] bytes (`file`: a
/// whole format-2 manifest), then a CRC-32 of them. It is the one part of
/// an archive not sealed under the archive key, since it is how a reader
/// with the master key alone gets the root key, and so that key.
pub(crate) fn key_block(file: &[u8]) -> Vec<u8> {
    assert_eq!(file.len(), KEYRING_MANIFEST_LEN, "a format-2 manifest");
    let mut out = file[..KEYRING_MANIFEST_CUSTODY_AT].to_vec();
    out.extend_from_slice(&crc32fast::hash(&out).to_le_bytes());
    debug_assert_eq!(out.len(), KEY_BLOCK_LEN);
    out
}

/// Length of a [`key_block`].
pub(crate) const KEY_BLOCK_LEN: usize = KEYRING_MANIFEST_CUSTODY_AT + 4;

/// Opens the root key from the key block at the start of `bytes` (object
/// `file`) with the master key from `source`: the block is checked (magic,
/// version 2, CRC, fields), then unwrapped ([`Error::WrongMasterKey`] if the
/// key does not open it). Returns the root key and the log id the block
/// names.
pub(crate) fn open_key_block(
    file: &Path,
    bytes: &[u8],
    source: &crate::options::MasterKeySource,
) -> Result<(RootKey, [u8; LOG_ID_LEN])> {
    codec::check_magic_version(file, bytes, &KEYRING_MANIFEST_MAGIC, KEYRING_VERSION)?;
    if bytes.len() < KEY_BLOCK_LEN {
        return Err(Error::corruption(file, 0, CorruptionKind::Truncated));
    }
    codec::check_crc(file, bytes, KEYRING_MANIFEST_CUSTODY_AT)?;
    let head = Head::decode(file, bytes)?;
    let master = MasterKey::resolve(source, &head.kdf)?;
    let root = place(head.master_generation)
        .unwrap(&master.root_wrap_key(), &head.wrapped_root)
        .map(RootKey::from_secret)
        .map_err(|_| Error::WrongMasterKey)?;
    Ok((root, head.log_id))
}

fn place(master_generation: u32) -> WrapPlace {
    WrapPlace {
        kind: WRAP_KIND_ROOT,
        tenant: 0,
        id: 0,
        version: ROOT_KEY_VERSION,
        wrapper_version: master_generation,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::MasterKeySource;

    fn master(byte: u8) -> MasterKey {
        let source = MasterKeySource::Bytes(zeroize::Zeroizing::new([byte; 32]));
        MasterKey::resolve(&source, &Kdf::None).unwrap()
    }

    fn encoded(manifest: &Manifest) -> (Vec<u8>, ChainKey) {
        let key = ChainKey::new(&RootKey::from_secret(crate::crypto::SecretKey::from_bytes(
            [7; 32],
        )));
        (manifest.encode(&key), key)
    }

    #[test]
    fn the_root_key_opens_with_the_master_key_only() {
        let (manifest, root) = Manifest::create(Kdf::None, &master(1), [4; LOG_ID_LEN]);
        let (bytes, key) = encoded(&manifest);
        let decoded = Manifest::decode(Path::new("m"), &bytes).unwrap();
        decoded.verify(Path::new("m"), &key).unwrap();
        assert_eq!(decoded.body(), manifest.body());
        let opened = decoded.open_root(&master(1)).unwrap();
        assert_eq!(opened.secret().expose(), root.secret().expose());
        assert!(matches!(
            decoded.open_root(&master(2)),
            Err(Error::WrongMasterKey)
        ));
    }

    #[test]
    fn manifest_round_trips_and_every_bit_flip_is_an_error() {
        let kdf = Kdf::Argon2id {
            m_cost_kib: 19456,
            t_cost: 2,
            p_cost: 1,
            salt: [9; SALT_LEN],
        };
        let (mut m, _) = Manifest::create(kdf, &master(1), [4; LOG_ID_LEN]);
        m.tenants[255].generation = 9;
        let (bytes, key) = encoded(&m);
        assert_eq!(
            Manifest::decode(Path::new("m"), &bytes).unwrap().body(),
            m.body()
        );
        for bit in 0..bytes.len() * 8 {
            let mut bad = bytes.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            let decoded = Manifest::decode(Path::new("m"), &bad);
            assert!(
                decoded
                    .and_then(|d| d.verify(Path::new("m"), &key))
                    .is_err(),
                "bit {bit}"
            );
        }
        // An edit with its CRC recomputed fails the MAC.
        let mut edited = bytes.clone();
        edited[KEYRING_MANIFEST_CUSTODY_AT] ^= 1;
        let crc_at = edited.len() - 4;
        let crc = crc32fast::hash(&edited[..crc_at]).to_le_bytes();
        edited[crc_at..].copy_from_slice(&crc);
        let decoded = Manifest::decode(Path::new("m"), &edited).unwrap();
        assert!(matches!(
            decoded.verify(Path::new("m"), &key),
            Err(Error::Corruption {
                kind: CorruptionKind::MacChain,
                ..
            })
        ));
        for len in 0..bytes.len() {
            assert!(Manifest::decode(Path::new("m"), &bytes[..len]).is_err());
        }
    }

    /// Found while writing the fuzz targets: costs read from a manifest
    /// (guarded by a CRC only) were used as they were.
    #[test]
    fn argon2id_costs_beyond_the_caps_are_corruption() {
        let over = [
            (ARGON2_M_COST_KIB_MAX + 1, 2, 1),
            (19456, ARGON2_T_COST_MAX + 1, 1),
            (19456, 2, ARGON2_P_COST_MAX + 1),
        ];
        for (m_cost_kib, t_cost, p_cost) in over {
            let kdf = Kdf::Argon2id {
                m_cost_kib,
                t_cost,
                p_cost,
                salt: [9; SALT_LEN],
            };
            let (m, _) = Manifest::create(kdf, &master(1), [4; LOG_ID_LEN]);
            assert!(matches!(
                Manifest::decode(Path::new("m"), &encoded(&m).0),
                Err(Error::Corruption {
                    kind: CorruptionKind::Malformed(_),
                    ..
                })
            ));
        }
    }
}
