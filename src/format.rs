//! Every constant of strongroom's on-disk formats, in one place.
//!
//! `docs/FORMAT.md` describes the layouts these constants belong to, byte by
//! byte. All integers in files are little-endian; the only big-endian integers
//! are the RocksDB key prefixes (so that they sort), encoded in
//! `src/store/key_codec.rs` alone.

// ---------------------------------------------------------------------------
// Data directory layout
// ---------------------------------------------------------------------------

/// Folder of the write-ahead log, under the data directory.
pub const WAL_DIR: &str = "wal";
/// Folder of the RocksDB store, under the data directory.
pub const STORE_DIR: &str = "store";
/// Folder of the keyring, under the data directory.
pub const KEYRING_DIR: &str = "keyring";
/// The file holding the database's advisory lock (`flock`), under the data
/// directory: one process at a time opens a database. Empty; never synced.
pub const LOCK_FILE: &str = "LOCK";
/// The file of a restore in progress, under the data directory (FORMAT
/// §12.7): a folder that holds it is not a database yet, and opening it is
/// refused until the restore has finished.
pub const RESTORE_FILE: &str = "RESTORING";
/// The file that makes a folder a standby (FORMAT §12.9): the history it
/// follows, as 32 hex digits and a newline. A standby opens only with
/// `Db::open_standby`, never as an ordinary database.
pub const STANDBY_FILE: &str = "STANDBY";
/// The file of a promotion in progress (FORMAT §12.9): the new history's
/// log id, as 32 hex digits and a newline; the next open finishes it.
pub const PROMOTE_FILE: &str = "PROMOTING";
/// Suffix of temporary files written before an atomic rename.
pub const TMP_SUFFIX: &str = ".tmp";

// ---------------------------------------------------------------------------
// Log segments
// ---------------------------------------------------------------------------

/// First bytes of every log segment.
pub const SEGMENT_MAGIC: [u8; 8] = *b"SRWALSEG";
/// Version of the segment and frame format this build writes and reads.
pub const SEGMENT_VERSION: u32 = 1;
/// Suffix of a segment file; its stem is the first LSN, 20 decimal digits.
pub const SEGMENT_SUFFIX: &str = ".wal";
/// Digits of the LSN in a segment file name (enough for `u64::MAX`).
pub const SEGMENT_NAME_DIGITS: usize = 20;
/// Every LSN is below this (2^63 - 1: 29,000 years at ten million commits
/// a second). An LSN on disk at or above it is corruption, so no LSN
/// arithmetic can overflow.
pub const LSN_MAX: u64 = u64::MAX >> 1;

/// Segment header: magic(8) version(4) flags(4) first_lsn(8) log_id(16)
/// prev_mac(32) crc32(4) reserved(4).
pub const SEGMENT_HEADER_LEN: usize = 80;
/// Offset of the header's CRC, which covers every header byte before it.
pub const SEGMENT_HEADER_CRC_OFFSET: usize = 8 + 4 + 4 + 8 + LOG_ID_LEN + MAC_LEN;
const _: () = assert!(SEGMENT_HEADER_CRC_OFFSET + 4 + 4 == SEGMENT_HEADER_LEN);

/// Length of the random identifier of one database's log.
pub const LOG_ID_LEN: usize = 16;

/// Default size at which the writer starts a new segment.
pub const SEGMENT_BYTES_MAX_DEFAULT: u64 = 64 << 20;
/// Smallest segment size an `Options` may ask for (tests use small segments).
pub const SEGMENT_BYTES_MIN: u64 = 4 << 10;
/// Under `SyncEveryCommit` the log writes and syncs this many zero bytes
/// ahead of its frames at a time (about 1 ms here), so that a frame's
/// fdatasync need not commit file-system metadata (see `wal/writer.rs`).
pub const SEGMENT_ZERO_FILL_BYTES: u64 = 1 << 20;
/// A group of frames larger than this is appended without a zero fill
/// first: its sync is dominated by its data, which zeros would double.
pub const ZERO_FILL_GROUP_MAX: usize = 64 << 10;

// ---------------------------------------------------------------------------
// Frames
// ---------------------------------------------------------------------------

/// Frame header: len(4) crc32(4). The CRC covers len, payload and mac.
pub const FRAME_HEADER_LEN: usize = 8;
/// Length of a frame's MAC (keyed BLAKE3).
pub const MAC_LEN: usize = 32;
/// Bytes of a frame around its payload.
pub const FRAME_OVERHEAD: usize = FRAME_HEADER_LEN + MAC_LEN;
/// Largest payload a frame may carry. A larger claimed length is corruption.
pub const FRAME_PAYLOAD_MAX: usize = 64 << 20;
/// Payload header: lsn(8) commit_time_us(8) synced_lsn(8) entry_count(4).
pub const PAYLOAD_HEADER_LEN: usize = 28;
/// A group commit takes queued batches while their entries stay within this
/// many bytes (always at least one batch, which may alone be larger).
/// Bounds the work a leader does for its followers.
pub const GROUP_BYTES_MAX: usize = 4 << 20;
const _: () = assert!(FRAME_PAYLOAD_MAX <= u32::MAX as usize);

/// Entry operation: put a sealed record.
pub const OP_PUT: u8 = 1;
/// Entry operation: delete the record with the entry's token.
pub const OP_DELETE: u8 = 2;

/// Scope kind: the tenant's own scope.
pub const SCOPE_TENANT: u8 = 0;
/// Scope kind: one subject inside the tenant.
pub const SCOPE_SUBJECT: u8 = 1;

/// Entry header: tenant(8) scope_kind(1) subject(8) key_version(4) op(1) token.
pub const ENTRY_HEADER_LEN: usize = 8 + 1 + 8 + 4 + 1 + TOKEN_LEN;

// ---------------------------------------------------------------------------
// Tokens and sealed records
// ---------------------------------------------------------------------------

/// Length of a token: the keyed PRF of a user key (128 bits).
pub const TOKEN_LEN: usize = 16;
/// XChaCha20-Poly1305 nonce length (192 bits: a record's is a per-open
/// random prefix and a counter, a wrapped key's random).
pub const NONCE_LEN: usize = 24;
/// Poly1305 tag length.
pub const TAG_LEN: usize = 16;
/// Length of every symmetric key strongroom uses.
pub const KEY_LEN: usize = 32;
/// Bytes a sealed record adds to its plaintext.
pub const SEAL_OVERHEAD: usize = NONCE_LEN + TAG_LEN;

/// Record plaintext flag: the body is zstd-compressed.
pub const RECORD_FLAG_ZSTD: u8 = 0b0000_0001;
/// Record plaintext header: flags(1) key_len(4).
pub const RECORD_HEADER_LEN: usize = 5;
/// Default size of a record's body (key length, key and value) above which
/// it is compressed; the compressed form is kept only if it is smaller.
pub const COMPRESSION_THRESHOLD_DEFAULT: usize = 512;
/// zstd level for record compression: the fastest, since every put over
/// the threshold pays it, and most values that do not compress at level 1
/// do not at 3 either.
pub const ZSTD_LEVEL: i32 = 1;
/// Largest user key.
pub const USER_KEY_MAX: usize = 64 << 10;
/// Largest user value.
pub const USER_VALUE_MAX: usize = 16 << 20;
/// Bytes a put entry adds to its user key and value (uncompressed): the
/// entry header, the sealed length, and the record's key version, header,
/// nonce and tag.
pub const PUT_ENTRY_OVERHEAD: usize = ENTRY_HEADER_LEN + 4 + 4 + RECORD_HEADER_LEN + SEAL_OVERHEAD;
const _: () = assert!(USER_KEY_MAX + USER_VALUE_MAX + PUT_ENTRY_OVERHEAD < FRAME_PAYLOAD_MAX);

/// Domain separator at the start of a record's associated data.
pub const RECORD_AAD_DOMAIN: &[u8; 16] = b"strongroom.rec.1";
/// Domain separator at the start of a wrapped key's associated data.
pub const WRAP_AAD_DOMAIN: &[u8; 16] = b"strongroom.wrp.1";

// ---------------------------------------------------------------------------
// Key derivation contexts (BLAKE3 `derive_key`)
// ---------------------------------------------------------------------------

/// Master key → key that wraps the database root key (in the manifest).
pub const KDF_MASTER_ROOT_WRAP: &str = "strongroom 2026-11 root key wrap v1";
/// Root key and log id → MAC key of the log's frame chain.
pub const KDF_ROOT_FRAME_MAC: &str = "strongroom 2026-11 log frame mac v1";
/// Root key → key that wraps tenant keys.
pub const KDF_ROOT_TENANT_WRAP: &str = "strongroom 2026-11 tenant key wrap v1";
/// Scope key → record sealing key.
pub const KDF_SCOPE_SEAL: &str = "strongroom 2026-11 record seal v1";
/// Scope key → token PRF key.
pub const KDF_SCOPE_TOKEN: &str = "strongroom 2026-11 record token v1";
/// Tenant key → key that wraps the tenant's subject keys.
pub const KDF_TENANT_SUBJECT_WRAP: &str = "strongroom 2026-11 subject key wrap v1";
/// Root key → MAC key of the keyring's files (their MAC chains and anchors).
pub const KDF_ROOT_KEYRING_MAC: &str = "strongroom 2026-12 keyring mac v1";
/// Root key → key that seals every archive object.
pub const KDF_ROOT_ARCHIVE_SEAL: &str = "strongroom 2026-12 archive object seal v1";
/// Root key → key of the keyed hash that names SST objects.
pub const KDF_ROOT_ARCHIVE_NAME: &str = "strongroom 2026-12 archive sst name v1";
/// Root key → key of the keyed hash that names the keyring's folders in an
/// archive (so no name shows a tenant id or a shard number).
pub const KDF_ROOT_ARCHIVE_KEYRING_NAME: &str = "strongroom 2026-12 archive keyring name v1";

// ---------------------------------------------------------------------------
// Archive objects
// ---------------------------------------------------------------------------

/// Longest archive object name, in bytes.
pub const ARCHIVE_NAME_MAX: usize = 512;
/// First bytes of every sealed archive object.
pub const ARCHIVE_OBJECT_MAGIC: [u8; 8] = *b"SRARCHOB";
/// Version of the sealed-object format this build writes and reads.
pub const ARCHIVE_OBJECT_VERSION: u32 = 1;
/// Random bytes in an object's header: the first 16 bytes of every chunk's
/// nonce (the HChaCha20 input, so each object seals under its own subkey).
pub const ARCHIVE_NONCE_PREFIX_LEN: usize = 16;
/// Sealed-object header: magic(8) version(4) chunk_len(4) nonce_prefix(16).
pub const ARCHIVE_OBJECT_HEADER_LEN: usize = 8 + 4 + 4 + ARCHIVE_NONCE_PREFIX_LEN;
/// Plaintext bytes per chunk that this build writes.
pub const ARCHIVE_CHUNK_LEN: u32 = 64 << 10;
/// Smallest chunk length a reader accepts.
pub const ARCHIVE_CHUNK_LEN_MIN: u32 = 1 << 10;
/// Largest chunk length a reader accepts (bounds its buffer).
pub const ARCHIVE_CHUNK_LEN_MAX: u32 = 16 << 20;
const _: () = assert!(ARCHIVE_CHUNK_LEN_MIN <= ARCHIVE_CHUNK_LEN);
const _: () = assert!(ARCHIVE_CHUNK_LEN <= ARCHIVE_CHUNK_LEN_MAX);
const _: () = assert!(ARCHIVE_NONCE_PREFIX_LEN + 8 == NONCE_LEN);
/// Domain separator at the start of an archive chunk's associated data.
pub const ARCHIVE_AAD_DOMAIN: &[u8; 16] = b"strongroom.arc.1";
/// Folder of a history's log pieces in an archive.
pub const ARCHIVE_WAL_DIR: &str = "wal";
/// Suffix of a log piece's object name.
pub const ARCHIVE_PIECE_SUFFIX: &str = ".seg";
/// Folder of a history's backup manifests in an archive.
pub const ARCHIVE_BACKUP_DIR: &str = "backups";
/// Suffix of a backup manifest's object name.
pub const ARCHIVE_BACKUP_SUFFIX: &str = ".backup";
/// Folder of a history's verify states (FORMAT §12.8).
pub const ARCHIVE_VERIFY_DIR: &str = "verified";
/// Suffix of a verify state object's name.
pub const ARCHIVE_VERIFY_SUFFIX: &str = ".state";
/// Folder of a history's SST files in an archive.
pub const ARCHIVE_SST_DIR: &str = "sst";
/// Folder of a history's keyring copies in an archive.
pub const ARCHIVE_KEYRING_DIR: &str = "keyring";
/// Suffix of a keyring copy's (or a retired key's) object name.
pub const ARCHIVE_KEYRING_SUFFIX: &str = ".key";
/// Hex digits of a keyring folder's keyed hash (16 bytes).
pub const ARCHIVE_KEYRING_HASH_HEX: usize = 32;
/// Suffix of RocksDB's table files (in the store and in the archive).
pub const SST_SUFFIX: &str = ".sst";
/// First bytes of a backup manifest's plaintext.
pub const BACKUP_MAGIC: [u8; 8] = *b"SRBACKUP";
/// Version of the backup manifest.
pub const BACKUP_VERSION: u32 = 1;
/// The store's checkpoint during a backup, in the data directory (removed
/// after each backup, and at open if a crash left it).
pub const CHECKPOINT_DIR: &str = "checkpoint.tmp";
/// Default interval between scheduled backups.
pub const BACKUP_INTERVAL_DEFAULT: std::time::Duration = std::time::Duration::from_secs(3600);

/// The local record of how far the log is shipped, in the data directory.
pub const SHIPPED_FILE: &str = "SHIPPED";
/// First bytes of the `SHIPPED` record.
pub const SHIPPED_MAGIC: [u8; 8] = *b"SRSHIPPD";
/// Version of the `SHIPPED` record.
pub const SHIPPED_VERSION: u32 = 1;
/// `SHIPPED`: magic(8) version(4) lsn(8) mac(32) crc32(4).
pub const SHIPPED_LEN: usize = 8 + 4 + 8 + MAC_LEN + 4;
/// Default ship interval.
pub const SHIP_INTERVAL_DEFAULT: std::time::Duration = std::time::Duration::from_secs(1);
/// Default budget of unshipped local log.
pub const UNSHIPPED_BYTES_MAX_DEFAULT: u64 = 1 << 30;

// ---------------------------------------------------------------------------
// Keyring
// ---------------------------------------------------------------------------

/// First bytes of the keyring manifest.
pub const KEYRING_MANIFEST_MAGIC: [u8; 8] = *b"SRKEYMAN";
/// First bytes of every keyring shard.
pub const KEYRING_SHARD_MAGIC: [u8; 8] = *b"SRKEYSHD";
/// Version of the keyring formats this build writes and reads: MAC-chained
/// files under a chain of custody (manifest → tenant shards and seals ledger
/// → subject shards).
pub const KEYRING_VERSION: u32 = 2;
/// The version before: CRCs only. Read only to upgrade it, at open.
pub const KEYRING_VERSION_V1: u32 = 1;
/// File name of the keyring manifest.
pub const KEYRING_MANIFEST_FILE: &str = "MANIFEST";
/// Folder of the tenant key shards, under the keyring folder.
pub const KEYRING_TENANTS_DIR: &str = "tenants";
/// Folder of the subject key shards, under the keyring folder.
pub const KEYRING_SUBJECTS_DIR: &str = "subjects";
/// Suffix of a keyring shard file.
pub const KEYRING_SHARD_SUFFIX: &str = ".keys";
/// Number of shards tenant keys are spread over.
pub const TENANT_SHARDS: u32 = 256;
/// Number of shards each tenant's subject keys are spread over.
pub const SUBJECT_SHARDS: u32 = 1024;

/// Version-1 manifest: magic(8) version(4) kdf(1) m_cost_kib(4) t_cost(4)
/// p_cost(4) salt(16) master_generation(4) wrapped_root(72) log_id(16)
/// crc32(4).
pub const KEYRING_MANIFEST_LEN_V1: usize =
    8 + 4 + 1 + 4 + 4 + 4 + SALT_LEN + 4 + WRAPPED_KEY_LEN + LOG_ID_LEN + 4;
/// Where a manifest's fields after `log_id` start (the v1 CRC's place).
pub const KEYRING_MANIFEST_CUSTODY_AT: usize = KEYRING_MANIFEST_LEN_V1 - 4;
/// The largest generation a keyring file may have (a file read with a
/// higher one, or with 0, is malformed): its rewrites count up from 1 and
/// never come near it, and the next one must not overflow.
pub const KEYRING_GENERATION_MAX: u64 = 1 << 62;
/// An anchor: generation(8) count(8) head(32): where a keyring file's MAC
/// chain stood when its parent last recorded it.
pub const ANCHOR_LEN: usize = 8 + 8 + MAC_LEN;
/// Manifest: the version-1 fields up to `log_id`, then epoch(8), the seals
/// ledger's anchor, one anchor per tenant shard, mac(32), crc32(4).
pub const KEYRING_MANIFEST_LEN: usize =
    KEYRING_MANIFEST_CUSTODY_AT + 8 + ANCHOR_LEN * (1 + TENANT_SHARDS as usize) + MAC_LEN + 4;
/// Master key supplied directly (bytes, file or environment variable).
pub const KDF_NONE: u8 = 0;
/// Master key derived from a passphrase with Argon2id.
pub const KDF_ARGON2ID: u8 = 1;
/// Length of the Argon2id salt.
pub const SALT_LEN: usize = 16;
/// OWASP's first Argon2id recommendation: 19 MiB of memory.
pub const ARGON2_M_COST_KIB: u32 = 19 * 1024;
/// OWASP's first Argon2id recommendation: 2 iterations.
pub const ARGON2_T_COST: u32 = 2;
/// OWASP's first Argon2id recommendation: 1 lane.
pub const ARGON2_P_COST: u32 = 1;
/// The largest Argon2id costs a manifest may name (1 GiB, 16 passes, 16
/// lanes): a manifest is protected by a CRC only, and costs beyond these
/// would let whoever can write it make every open exhaust memory or hang.
pub const ARGON2_M_COST_KIB_MAX: u32 = 1 << 20;
/// See [`ARGON2_M_COST_KIB_MAX`].
pub const ARGON2_T_COST_MAX: u32 = 16;
/// See [`ARGON2_M_COST_KIB_MAX`].
pub const ARGON2_P_COST_MAX: u32 = 16;

/// Version-1 shard header: magic(8) version(4) kind(1) tenant(8) shard(4)
/// crc32(4).
pub const KEYRING_SHARD_HEADER_LEN_V1: usize = 8 + 4 + 1 + 8 + 4 + 4;
/// Shard header: magic(8) version(4) kind(1) tenant(8) shard(4)
/// generation(8) crc32(4) mac(32).
pub const KEYRING_SHARD_HEADER_LEN: usize = 8 + 4 + 1 + 8 + 4 + 8 + 4 + MAC_LEN;
/// Wrap kind of the database root key (in the manifest).
pub const WRAP_KIND_ROOT: u8 = 0;
/// Shard (and wrap) kind: tenant keys wrapped by the root key's tenant wrap key.
pub const SHARD_KIND_TENANTS: u8 = 1;
/// Shard (and wrap) kind: one tenant's subject keys wrapped by that tenant's key.
pub const SHARD_KIND_SUBJECTS: u8 = 2;
const _: () =
    assert!(WRAP_KIND_ROOT != SHARD_KIND_TENANTS && SHARD_KIND_TENANTS != SHARD_KIND_SUBJECTS);
/// A wrapped key: nonce, the sealed 32-byte key, tag.
pub const WRAPPED_KEY_LEN: usize = NONCE_LEN + KEY_LEN + TAG_LEN;
/// Version-1 shard record: id(8) kind(1) version(4) wrapper_version(4)
/// time_us(8) wrapped(72) crc32(4).
pub const KEYRING_RECORD_LEN_V1: usize = 8 + 1 + 4 + 4 + 8 + WRAPPED_KEY_LEN + 4;
/// Shard record: the version-1 record, then mac(32).
pub const KEYRING_RECORD_LEN: usize = KEYRING_RECORD_LEN_V1 + MAC_LEN;
/// Key version of a tenant's token key: created with the tenant, never
/// rotated, destroyed with the tenant.
pub const TENANT_TOKEN_VERSION: u32 = 0;
/// Key version of a tenant's first sealing key; rotation adds the next ones.
pub const FIRST_TENANT_KEY_VERSION: u32 = 1;
/// Key version of every subject key (subject keys are rewrapped, not rotated).
pub const SUBJECT_KEY_VERSION: u32 = 1;
/// Key version of the database root key (in the manifest).
pub const ROOT_KEY_VERSION: u32 = 1;
const _: () = assert!(TENANT_TOKEN_VERSION < FIRST_TENANT_KEY_VERSION);

/// Shard record kind: a wrapped key.
pub const RECORD_KEY: u8 = 1;
/// Shard record kind: the scope's keys are destroyed (a tombstone; its key
/// fields are zero).
pub const RECORD_DESTROYED: u8 = 2;
/// Tenant shard record kind: the anchor of one of the tenant's subject shards
/// (version = the subject shard's number, time_us = its generation, wrapped =
/// count(8) head(32) and 32 zero bytes). The last one of a shard decides.
pub const RECORD_ANCHOR: u8 = 3;
const _: () = assert!(8 + MAC_LEN <= WRAPPED_KEY_LEN);

/// File name of the ledger of pending seals (shreds in their grace period).
pub const SEALS_FILE: &str = "SEALS";
/// First bytes of the seals ledger.
pub const SEALS_MAGIC: [u8; 8] = *b"SRSEALS1";
/// Version-1 seals ledger header: magic(8) version(4) crc32(4).
pub const SEALS_HEADER_LEN_V1: usize = 16;
/// Seals ledger header: magic(8) version(4) generation(8) crc32(4) mac(32).
pub const SEALS_HEADER_LEN: usize = 8 + 4 + 8 + 4 + MAC_LEN;
/// Version-1 seals ledger record: tenant(8) scope_kind(1) subject(8) op(1)
/// deadline_us(8) crc32(4).
pub const SEALS_RECORD_LEN_V1: usize = 8 + 1 + 8 + 1 + 8 + 4;
/// Seals ledger record: the version-1 record, then mac(32).
pub const SEALS_RECORD_LEN: usize = SEALS_RECORD_LEN_V1 + MAC_LEN;
/// Seals ledger op: the scope is sealed until `deadline_us`, then destroyed.
pub const SEAL_OP_SEAL: u8 = 1;
/// Seals ledger op: the seal is cancelled; the scope is live again.
pub const SEAL_OP_CANCEL: u8 = 2;
/// Seals ledger op: the scope is destroyed and its space reclaimed.
pub const SEAL_OP_DONE: u8 = 3;

// ---------------------------------------------------------------------------
// Store (RocksDB) keys
// ---------------------------------------------------------------------------

/// Namespace byte of the store's own metadata keys.
pub const STORE_NS_META: u8 = 0;
/// Namespace byte of user records.
pub const STORE_NS_DATA: u8 = 1;
/// A data key: ns(1) tenant(8) scope_kind(1) subject(8) token(16).
pub const STORE_KEY_LEN: usize = 1 + 8 + 1 + 8 + TOKEN_LEN;
/// Meta key holding where the store is in the log: the LSN, commit time and
/// MAC of the last frame applied (`APPLIED_LEN` bytes; a store written before
/// the MAC was recorded holds the LSN alone, `APPLIED_LEN_V1` bytes).
pub const META_APPLIED_LSN: &[u8] = b"\x00applied_lsn";
const _: () = assert!(META_APPLIED_LSN[0] == STORE_NS_META);
/// Length of the applied mark: lsn u64 | commit_time_us u64 | mac.
pub const APPLIED_LEN: usize = 8 + 8 + MAC_LEN;
/// Length of the applied mark in stores written before the MAC was recorded.
pub const APPLIED_LEN_V1: usize = 8;
/// Meta key holding the keyring's custody epoch (u64) as of the store's last
/// write: a manifest with a lower epoch is an older copy of the keyring.
pub const META_KEYRING_EPOCH: &[u8] = b"\x00keyring_epoch";
const _: () = assert!(META_KEYRING_EPOCH[0] == STORE_NS_META);
/// Meta key holding the latest time (µs since the epoch, u64) the database
/// believed at a maintenance pass: what the wall clock at the next open is
/// held against (`engine/deadline.rs`).
pub const META_CLOCK_SEEN: &[u8] = b"\x00clock_seen";
const _: () = assert!(META_CLOCK_SEEN[0] == STORE_NS_META);
/// Meta key binding the store to its database: the manifest's log id.
pub const META_DATABASE: &[u8] = b"\x00database";
const _: () = assert!(META_DATABASE[0] == STORE_NS_META);
