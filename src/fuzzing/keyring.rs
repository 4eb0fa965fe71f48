//! The keyring's decoders: the manifest, shards and the seals ledger.

use super::*;

/// The keyring manifest (`crypto/keyring/manifest.rs`), in format 2 or 1.
/// What decodes must encode to the same bytes (format 1: its fields); its MAC
/// is checked with the fixed root key; a manifest without a KDF is then
/// opened with the fixed master key (which fails, or unwraps a root key).
/// Manifests with Argon2id are not opened: their costs come from the file.
/// Odd mode repairs the CRC and the MAC.
pub fn manifest(data: &[u8]) {
    let Some((fix, bytes)) = fixup(data) else {
        return;
    };
    let mut bytes = bytes.to_vec();
    let key = ChainKey::new(&root());
    let mac_at = KEYRING_MANIFEST_LEN - 4 - MAC_LEN;
    if fix && bytes.len() == KEYRING_MANIFEST_LEN {
        let mac = key.manifest_mac(&bytes[..mac_at]);
        bytes[mac_at..mac_at + MAC_LEN].copy_from_slice(&mac);
        put_crc(&mut bytes, KEYRING_MANIFEST_LEN - 4);
    } else if fix && bytes.len() == KEYRING_MANIFEST_LEN_V1 {
        put_crc(&mut bytes, KEYRING_MANIFEST_LEN_V1 - 4);
    }
    let Ok(manifest) = Manifest::decode(Path::new("MANIFEST"), &bytes) else {
        return;
    };
    let verified = manifest.verify(Path::new("MANIFEST"), &key);
    if manifest.version == KEYRING_VERSION {
        assert_eq!(manifest.body(), bytes[..mac_at], "the manifest re-encodes");
        if fix {
            verified.expect("a manifest with a repaired MAC verifies");
            assert_eq!(manifest.encode(&key), bytes);
        }
    } else {
        // Format 1's fields, but for the version, which is written as 2.
        let (fields, body) = (KEYRING_MANIFEST_CUSTODY_AT, manifest.body());
        assert_eq!(body[..8], bytes[..8]);
        assert_eq!(body[12..fields], bytes[12..fields], "format 1 fields");
    }
    if manifest.kdf == Kdf::None {
        let _ = manifest.open_root(&master());
    }
}

pub(super) fn master() -> MasterKey {
    let source = MasterKeySource::Bytes(zeroize::Zeroizing::new(MASTER_KEY));
    MasterKey::resolve(&source, &Kdf::None).expect("raw key bytes resolve")
}

/// Keyring shards (`crypto/keyring/shard.rs`, and the keyring that reads
/// them). The bytes, split before each `SRKEYSHD`, are shard files, each
/// put where its header says (a tenant shard at its number mod 256, a
/// subject shard in its tenant's folder at its number mod 1024). The real
/// keyring opens them with the fixed root key and looks up every scope the
/// records name; then it opens again (after any torn append it cut off) and
/// must find the same.
///
/// Odd mode rewraps every key record with a key derived from the root key,
/// so that tenant keys unwrap and subject keys unwrap under their tenant's
/// key version `wrapper_version`, then repairs every CRC and MAC of the
/// chain. The keyring opens them under a manifest that anchors nothing (so
/// every file is ahead of it), and anchors them.
pub fn shard(data: &[u8]) {
    let Some((fix, bytes)) = fixup(data) else {
        return;
    };
    let fs = MemFs::default();
    let dir = base().join(KEYRING_DIR);
    fs.add_dir(&dir);
    let mut scopes = BTreeSet::new();
    for chunk in split_at_magic(bytes, &KEYRING_SHARD_MAGIC) {
        let mut shard = chunk.to_vec();
        if fix {
            fix_shard(&mut shard);
        }
        let (path, tenant) = shard_path(&dir, &shard);
        let mut at = KEYRING_SHARD_HEADER_LEN;
        while at + KEYRING_RECORD_LEN <= shard.len() && scopes.len() < LOOKUPS_MAX {
            let id = u64_at(&shard, at);
            scopes.insert(match tenant {
                Some(t) => Scope::subject(TenantId(t), SubjectId(id)),
                None => Scope::tenant(TenantId(id)),
            });
            at += KEYRING_RECORD_LEN;
        }
        fs.add_file(&path, shard);
    }
    let first = survey(&fs, &dir, &scopes);
    if first.is_some() {
        assert_eq!(survey(&fs, &dir, &scopes), first, "a second open differs");
    }
}

/// The seals ledger (`crypto/keyring/seals.rs`, and the keyring that reads
/// it at open and compacts it). The bytes are the `SEALS` file; the keyring
/// opens, then opens again (after any compaction) and must find the same
/// pending seals. Odd mode repairs every CRC and MAC of the chain.
pub fn seals(data: &[u8]) {
    let Some((fix, bytes)) = fixup(data) else {
        return;
    };
    let mut bytes = bytes.to_vec();
    if fix {
        let key = ChainKey::new(&root());
        custody::reseal(&key, &mut bytes, SEALS_HEADER_LEN, SEALS_RECORD_LEN);
    }
    let fs = MemFs::default();
    let dir = base().join(KEYRING_DIR);
    fs.add_dir(&dir);
    fs.add_file(&dir.join(SEALS_FILE), bytes);
    let first = survey(&fs, &dir, &BTreeSet::new());
    if first.is_some() {
        assert_eq!(
            survey(&fs, &dir, &BTreeSet::new()),
            first,
            "a second open differs"
        );
    }
}

/// Opens the keyring in `fs` and describes what it holds: pending seals,
/// and each scope's state and key versions. `None` if it does not open.
pub(super) fn survey(fs: &MemFs, dir: &Path, scopes: &BTreeSet<Scope>) -> Option<Vec<String>> {
    let files = Files::new(Arc::new(fs.clone()));
    let manifest = Manifest::with_root(Kdf::None, &master(), LOG_ID, &root());
    let keyring = Keyring::open(&files, dir, manifest, root(), Arc::new(SystemClock)).ok()?;
    let mut found = vec![format!("{:?}", keyring.pending_seals())];
    for &scope in scopes {
        let state = keyring.state(scope).map_err(|e| e.to_string());
        let newest = keyring.lookup(scope, None).map_err(|e| e.to_string());
        let newest =
            newest.map(|k| k.map(|k| (k.version(), k.lease_ungated().map(|l| l.token(b"k")))));
        let keys = keyring.keys(scope).map_err(|e| e.to_string());
        let keys = keys.map(|k| k.map(|k| k.newest().version()));
        found.push(format!("{scope}: {state:?} {newest:?} {keys:?}"));
    }
    Some(found)
}

/// Where a shard belongs, from its header: its path, and its tenant for a
/// subject shard. A header too short or of another kind goes to tenant
/// shard 0, where the decoder will reject it.
pub(super) fn shard_path(dir: &Path, shard: &[u8]) -> (PathBuf, Option<u64>) {
    let tenants = |n: u32| {
        dir.join(KEYRING_TENANTS_DIR)
            .join(format!("{:03}{KEYRING_SHARD_SUFFIX}", n % TENANT_SHARDS))
    };
    if shard.len() < KEYRING_SHARD_HEADER_LEN {
        return (tenants(0), None);
    }
    let number = u32_at(shard, 21);
    match shard[12] {
        SHARD_KIND_SUBJECTS => {
            let tenant = u64_at(shard, 13);
            let path = dir
                .join(KEYRING_SUBJECTS_DIR)
                .join(format!("{tenant:016x}"))
                .join(format!(
                    "{:04}{KEYRING_SHARD_SUFFIX}",
                    number % SUBJECT_SHARDS
                ));
            (path, Some(tenant))
        }
        _ => (tenants(number), None),
    }
}

/// The key the fuzzer's tenant `tenant` has at `version`.
pub(super) fn tenant_key(tenant: u64, version: u32) -> SecretKey {
    SecretKey::from_bytes(ROOT_KEY).derive(&format!("strongroom fuzz tenant {tenant} {version}"))
}

/// Rewraps a shard's key records and repairs its CRCs and MACs (see
/// [`shard`]).
pub(super) fn fix_shard(shard: &mut [u8]) {
    if shard.len() < KEYRING_SHARD_HEADER_LEN {
        return;
    }
    let (kind, tenant) = (shard[12], u64_at(shard, 13));
    let tenant_wrap = root().tenant_wrap_key();
    let mut at = KEYRING_SHARD_HEADER_LEN;
    while at + KEYRING_RECORD_LEN <= shard.len() {
        let record = &mut shard[at..at + KEYRING_RECORD_LEN];
        let (id, version, wrapper_version) =
            (u64_at(record, 0), u32_at(record, 9), u32_at(record, 13));
        if record[8] == RECORD_KEY {
            let (wrapping, key) = match kind {
                SHARD_KIND_TENANTS => (tenant_wrap.clone(), tenant_key(id, version)),
                _ => (
                    tenant_key(tenant, wrapper_version).derive(KDF_TENANT_SUBJECT_WRAP),
                    tenant_key(id, version),
                ),
            };
            let place = WrapPlace {
                kind,
                tenant,
                id,
                version,
                wrapper_version,
            };
            record[25..25 + crate::format::WRAPPED_KEY_LEN]
                .copy_from_slice(&place.wrap(&wrapping, &key));
        }
        at += KEYRING_RECORD_LEN;
    }
    let key = ChainKey::new(&root());
    custody::reseal(&key, shard, KEYRING_SHARD_HEADER_LEN, KEYRING_RECORD_LEN);
}
