//! The store: RocksDB, with its own WAL switched off, holding the state that
//! the log's frames materialise.
//!
//! Every write also records the last frame it applies (its LSN, commit time
//! and MAC), in the same RocksDB write batch, so after a crash the store holds
//! a prefix of history up to that frame, and recovery replays the log from
//! there. The MAC ties the store to one history of one log: open refuses a
//! store whose frame is not the log's frame at that LSN, and a store bound
//! to another database (`META_DATABASE`).

pub(crate) mod key_codec;
mod versions;

pub(crate) use versions::Version;

use std::path::{Path, PathBuf};

use parking_lot::Mutex;

use rocksdb::{
    BlockBasedOptions, Cache, DB, DBIteratorWithThreadMode, DBPinnableSlice,
    DBRawIteratorWithThreadMode, Direction, IteratorMode, ReadOptions, SnapshotWithThreadMode,
    WriteBatch, WriteOptions,
};

use crate::error::{CorruptionKind, Error, Result};
use crate::format::STORE_NS_DATA;
use crate::format::{
    APPLIED_LEN, APPLIED_LEN_V1, LOG_ID_LEN, LSN_MAX, META_APPLIED_LSN, META_CLOCK_SEEN,
    META_DATABASE, META_KEYRING_EPOCH, STORE_DIR,
};
use crate::options::{BACKGROUND_JOBS_MAX, machine_cores};
use crate::scope::Scope;
use crate::wal::entry::{Entry, Op};
use crate::wal::frame::Mac;
use versions::Versions;

/// Where the store is in the log: the last frame it applied.
///
/// ```text
/// META_APPLIED_LSN = lsn u64 | commit_time_us u64 | mac [32]   (APPLIED_LEN)
///                  | lsn u64                                   (APPLIED_LEN_V1, older stores)
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Applied {
    /// LSN of the last frame applied; 0 for a new store.
    pub(crate) lsn: u64,
    /// Its commit time (0 if unknown).
    pub(crate) commit_us: u64,
    /// Its MAC; `None` for a new store, or one written before the MAC was
    /// recorded (it is recorded from the next write on).
    pub(crate) mac: Option<Mac>,
}

impl Applied {
    fn encode(&self) -> [u8; APPLIED_LEN] {
        let mac = self.mac.expect("every frame applied has a MAC");
        let mut out = [0u8; APPLIED_LEN];
        out[..8].copy_from_slice(&self.lsn.to_le_bytes());
        out[8..16].copy_from_slice(&self.commit_us.to_le_bytes());
        out[16..].copy_from_slice(&mac);
        out
    }

    fn decode(bytes: &[u8]) -> Option<Applied> {
        let lsn = u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?);
        match bytes.len() {
            APPLIED_LEN_V1 => Some(Applied {
                lsn,
                ..Applied::default()
            }),
            APPLIED_LEN => Some(Applied {
                lsn,
                commit_us: u64::from_le_bytes(bytes[8..16].try_into().ok()?),
                mac: Some(bytes[16..].try_into().ok()?),
            }),
            _ => None,
        }
    }
}

/// A consistent read view of the store.
pub(crate) type StoreSnapshot<'a> = SnapshotWithThreadMode<'a, DB>;
/// A raw iterator over store keys.
pub(crate) type StoreIter<'a> = DBIteratorWithThreadMode<'a, DB>;

/// A raw iterator: its key and value are borrowed until it moves (what
/// scans read, copying each sealed record once).
pub(crate) type StoreRawIter<'a> = DBRawIteratorWithThreadMode<'a, DB>;

/// The RocksDB store of one database.
pub(crate) struct Store {
    db: DB,
    path: PathBuf,
    write_options: WriteOptions,
    /// The highest keyring epoch the store has been given. Every write of
    /// `META_KEYRING_EPOCH` holds this lock and writes the highest, so that
    /// a writer that read the epoch before another's change never writes
    /// it backwards.
    keyring_epoch: Mutex<u64>,
    /// Which scopes changed since a moment (what the scan cache checks).
    versions: Versions,
}

fn store_err(e: rocksdb::Error) -> Error {
    Error::Store(e.into_string())
}

/// The memory the store's RocksDB may use.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StoreMemory {
    /// The block cache.
    pub(crate) block_cache_bytes: usize,
    /// Each memtable (RocksDB's write buffer).
    pub(crate) memtable_bytes: usize,
}

impl Default for StoreMemory {
    fn default() -> StoreMemory {
        StoreMemory {
            block_cache_bytes: crate::options::BLOCK_CACHE_BYTES_DEFAULT,
            memtable_bytes: crate::options::MEMTABLE_BYTES_DEFAULT,
        }
    }
}

impl From<&crate::Options> for StoreMemory {
    fn from(options: &crate::Options) -> StoreMemory {
        StoreMemory {
            block_cache_bytes: options.block_cache_bytes,
            memtable_bytes: options.memtable_bytes,
        }
    }
}

/// The store's RocksDB options: a block cache (index and filter blocks kept
/// out of it, in the table readers: with them in the cache, random reads
/// over a larger data set evicted and re-read them), a bloom filter of 10
/// bits per key, no compression, a background job (flush or compaction)
/// per core (2 to 8), memtables of the given size.
pub(crate) fn rocksdb_options(memory: StoreMemory) -> rocksdb::Options {
    let mut table = BlockBasedOptions::default();
    table.set_block_cache(&Cache::new_lru_cache(memory.block_cache_bytes));
    table.set_bloom_filter(10.0, false);
    table.set_cache_index_and_filter_blocks(false);
    let mut options = rocksdb::Options::default();
    options.create_if_missing(true);
    options.set_block_based_table_factory(&table);
    // Values are sealed and keys are tokens: nothing to compress.
    options.set_compression_type(rocksdb::DBCompressionType::None);
    // A sustained load stalls on flushes and compactions (benches/load.rs).
    // RocksDB gives a quarter of the jobs (at least one) to flushes and the
    // rest to compactions, and grows its process-wide thread pools to fit
    // at open, never shrinking them: an embedding application's own RocksDB
    // keeps its threads. (`increase_parallelism` would set the pools.)
    let jobs = machine_cores().clamp(2, BACKGROUND_JOBS_MAX);
    options.set_max_background_jobs(jobs as i32);
    options.set_write_buffer_size(memory.memtable_bytes);
    options
}

impl Store {
    /// Opens (or creates) the store under the data directory.
    pub(crate) fn open(data_dir: &Path, memory: StoreMemory) -> Result<Store> {
        let path = data_dir.join(STORE_DIR);
        let db = DB::open(&rocksdb_options(memory), &path).map_err(store_err)?;
        let mut write_options = WriteOptions::default();
        // Our log is the WAL; a crash loses only what the log replays.
        write_options.disable_wal(true);
        Ok(Store {
            db,
            path,
            write_options,
            keyring_epoch: Mutex::new(0),
            versions: Versions::new(),
        })
    }

    /// The last frame applied (LSN 0 for a new store).
    pub(crate) fn applied(&self) -> Result<Applied> {
        let Some(bytes) = self.db.get_pinned(META_APPLIED_LSN).map_err(store_err)? else {
            return Ok(Applied::default());
        };
        let applied = Applied::decode(&bytes).ok_or_else(|| {
            self.corruption(CorruptionKind::Malformed("applied mark of a wrong length"))
        })?;
        if applied.lsn >= LSN_MAX {
            return Err(self.corruption(CorruptionKind::Malformed("applied LSN out of range")));
        }
        Ok(applied)
    }

    /// The keyring epoch as of the store's last write (0 if none): a keyring
    /// manifest with a lower one is an older copy.
    pub(crate) fn keyring_epoch(&self) -> Result<u64> {
        self.meta_u64(META_KEYRING_EPOCH, "keyring epoch is not 8 bytes")
    }

    /// The latest time a maintenance pass or a close had evidence for (0 if
    /// none).
    pub(crate) fn clock_seen(&self) -> Result<u64> {
        self.meta_u64(META_CLOCK_SEEN, "clock seen is not 8 bytes")
    }

    /// A little-endian u64 meta value; 0 if absent, `Malformed` if not 8 bytes.
    fn meta_u64(&self, key: &[u8], malformed: &'static str) -> Result<u64> {
        let Some(bytes) = self.db.get_pinned(key).map_err(store_err)? else {
            return Ok(0);
        };
        let raw: [u8; 8] = bytes[..]
            .try_into()
            .map_err(|_| self.corruption(CorruptionKind::Malformed(malformed)))?;
        Ok(u64::from_le_bytes(raw))
    }

    /// Records what the next open holds the database's other parts against:
    /// the time the engine has evidence for ([`META_CLOCK_SEEN`]) and the
    /// keyring's epoch. Durable with the next flush (close flushes): a crash
    /// loses at most the notes since the last one, which only makes the
    /// next open more cautious about the clock, and a rolled-back keyring
    /// is then caught only as far back as the last flush.
    pub(crate) fn note_evidence(&self, evidence_us: u64, keyring_epoch: u64) -> Result<()> {
        let mut batch = WriteBatch::default();
        batch.put(META_CLOCK_SEEN, evidence_us.to_le_bytes());
        self.write_with_epoch(batch, keyring_epoch)
    }

    /// Writes `batch` with the keyring epoch: the highest the store has been
    /// given, this one included.
    fn write_with_epoch(&self, mut batch: WriteBatch, keyring_epoch: u64) -> Result<()> {
        let mut epoch = self.keyring_epoch.lock();
        *epoch = (*epoch).max(keyring_epoch);
        batch.put(META_KEYRING_EPOCH, epoch.to_le_bytes());
        self.db
            .write_opt(batch, &self.write_options)
            .map_err(store_err)
    }

    /// Binds the store to its database (`log_id`, from the manifest): a store
    /// bound to another is refused ([`CorruptionKind::ForeignStore`]); an
    /// unbound one (new, or written before stores were bound) is bound now,
    /// durably.
    pub(crate) fn bind(&self, log_id: &[u8; LOG_ID_LEN]) -> Result<()> {
        match self.db.get_pinned(META_DATABASE).map_err(store_err)? {
            Some(bound) if bound[..] == log_id[..] => Ok(()),
            Some(_) => Err(self.corruption(CorruptionKind::ForeignStore)),
            None => {
                self.write_meta(META_DATABASE, log_id)?;
                tracing::info!(store = %self.path.display(), "store bound to its database");
                Ok(())
            }
        }
    }

    /// Makes a restored store the store of a new history: bound to log
    /// `log_id`, and holding the keyring at `keyring_epoch` (the restore's
    /// keyring, which may be an older copy than the one the backup's store
    /// last saw), durably.
    pub(crate) fn adopt(&self, log_id: &[u8; LOG_ID_LEN], keyring_epoch: u64) -> Result<()> {
        let mut batch = WriteBatch::default();
        batch.put(META_DATABASE, log_id);
        batch.put(META_KEYRING_EPOCH, keyring_epoch.to_le_bytes());
        self.db
            .write_opt(batch, &self.write_options)
            .map_err(store_err)?;
        *self.keyring_epoch.lock() = keyring_epoch;
        self.flush()
    }

    /// Replaces the applied mark, durably: after a power cut left the store
    /// ahead of the log, the log goes on from a frame whose MAC is not the
    /// one the store recorded (FORMAT §9.4).
    pub(crate) fn rebase_applied(&self, applied: &Applied) -> Result<()> {
        self.write_meta(META_APPLIED_LSN, &applied.encode())
    }

    fn write_meta(&self, key: &[u8], value: &[u8]) -> Result<()> {
        let mut batch = WriteBatch::default();
        batch.put(key, value);
        self.db
            .write_opt(batch, &self.write_options)
            .map_err(store_err)?;
        // RocksDB's WAL is off: only a flush makes it durable.
        self.flush()
    }

    /// Applies frames' entries, and the last frame's mark, in one atomic
    /// write.
    ///
    /// This is the only way anything reaches the store: the commit path and
    /// the replay loop both come here.
    pub(crate) fn apply(
        &self,
        entries: &[Entry<'_>],
        last: &Applied,
        keyring_epoch: u64,
    ) -> Result<()> {
        let mut batch = WriteBatch::default();
        for entry in entries {
            let key = key_codec::data_key(entry.scope, &entry.token);
            match entry.op {
                Op::Put(sealed) => batch.put(key, sealed),
                Op::Delete => batch.delete(key),
            }
        }
        batch.put(META_APPLIED_LSN, last.encode());
        let scopes = entries.iter().map(|entry| entry.scope);
        self.versions
            .writing(scopes, || self.write_with_epoch(batch, keyring_epoch))
    }

    /// `scope`'s write version now, or `None` while a write to it is under
    /// way: read before a view is taken, it says whether the scope changed
    /// since (`versions.rs`).
    pub(crate) fn version(&self, scope: Scope) -> Option<Version> {
        self.versions.version(scope)
    }

    /// A RocksDB property (`None` if RocksDB has no such property).
    pub(crate) fn property(&self, name: &str) -> Option<String> {
        self.db.property_value(name).ok().flatten()
    }

    /// The sealed record stored under `key`, read from `snapshot` if given.
    pub(crate) fn get(
        &self,
        key: &[u8],
        snapshot: Option<&StoreSnapshot<'_>>,
    ) -> Result<Option<Vec<u8>>> {
        match snapshot {
            Some(s) => s.get(key),
            None => self.db.get(key),
        }
        .map_err(store_err)
    }

    /// Like [`Store::get`], without copying the value out of RocksDB.
    pub(crate) fn get_pinned<'a>(
        &'a self,
        key: &[u8],
        snapshot: Option<&'a StoreSnapshot<'_>>,
    ) -> Result<Option<DBPinnableSlice<'a>>> {
        match snapshot {
            Some(s) => s.get_pinned(key),
            None => self.db.get_pinned(key),
        }
        .map_err(store_err)
    }

    /// A consistent read view.
    pub(crate) fn snapshot(&self) -> StoreSnapshot<'_> {
        self.db.snapshot()
    }

    /// Iterates the keys of `scope` from `from` (a key of the scope, or its
    /// prefix) in token order.
    pub(crate) fn scan_from(
        &self,
        scope: Scope,
        from: &[u8],
        snapshot: Option<&StoreSnapshot<'_>>,
    ) -> StoreIter<'_> {
        let prefix = key_codec::scope_prefix(scope);
        debug_assert!(from.starts_with(&prefix));
        let mut options = ReadOptions::default();
        options.set_iterate_upper_bound(key_codec::prefix_end(&prefix));
        if let Some(s) = snapshot {
            options.set_snapshot(s);
        }
        self.db
            .iterator_opt(IteratorMode::From(from, Direction::Forward), options)
    }

    /// A raw iterator over the keys of `scope` in token order, at the first.
    pub(crate) fn scan_raw(
        &self,
        scope: Scope,
        snapshot: Option<&StoreSnapshot<'_>>,
    ) -> StoreRawIter<'_> {
        let prefix = key_codec::scope_prefix(scope);
        let mut options = ReadOptions::default();
        options.set_iterate_upper_bound(key_codec::prefix_end(&prefix));
        if let Some(s) = snapshot {
            options.set_snapshot(s);
        }
        let mut iter = self.db.raw_iterator_opt(options);
        iter.seek(prefix);
        iter
    }

    /// A RocksDB integer property (0 if it has none).
    #[cfg(test)]
    pub(crate) fn property_int(&self, name: &str) -> u64 {
        self.db.property_int_value(name).ok().flatten().unwrap_or(0)
    }

    /// Whether any key starts with `prefix` (one seek, live view).
    pub(crate) fn holds_any(&self, prefix: &[u8]) -> Result<bool> {
        let mut options = ReadOptions::default();
        options.set_iterate_upper_bound(key_codec::prefix_end(prefix));
        let mut iter = self.db.raw_iterator_opt(options);
        iter.seek(prefix);
        iter.status().map_err(store_err)?;
        Ok(iter.valid())
    }

    /// Every scope that holds a record, in key order: one seek per scope
    /// (what a restore reports on, whatever the number of records).
    pub(crate) fn scopes(&self) -> Result<Vec<Scope>> {
        let mut out = Vec::new();
        let mut options = ReadOptions::default();
        options.set_iterate_upper_bound(key_codec::prefix_end(&[STORE_NS_DATA]));
        let mut iter = self.db.raw_iterator_opt(options);
        iter.seek([STORE_NS_DATA]);
        while let Some(key) = iter.key() {
            let (scope, _) = key_codec::decode_data_key(key).ok_or_else(|| {
                self.corruption(CorruptionKind::Malformed("a data key of no scope"))
            })?;
            out.push(scope);
            iter.seek(key_codec::prefix_end(&key_codec::scope_prefix(scope)));
        }
        iter.status().map_err(store_err)?;
        Ok(out)
    }

    /// Removes every record outside `prefix` (a per-tenant restore keeps
    /// one tenant's), durably: two range deletions and a flush. Meta keys
    /// stay.
    pub(crate) fn retain_prefix(&self, prefix: &[u8]) -> Result<()> {
        debug_assert_eq!(prefix.first(), Some(&STORE_NS_DATA));
        let mut batch = WriteBatch::default();
        batch.delete_range([STORE_NS_DATA].as_slice(), prefix);
        batch.delete_range(
            key_codec::prefix_end(prefix).as_slice(),
            key_codec::prefix_end(&[STORE_NS_DATA]).as_slice(),
        );
        self.versions.writing_range(|| {
            self.db
                .write_opt(batch, &self.write_options)
                .map_err(store_err)
        })?;
        self.flush()?;
        // The other tenants' sealed records leave the SST files too.
        self.db.compact_range(None::<&[u8]>, None::<&[u8]>);
        Ok(())
    }

    /// Removes every key under `prefix` and the space it takes: a range
    /// deletion (constant time), a flush (so the deletion is durable with
    /// RocksDB's WAL off) and a compaction of the range.
    pub(crate) fn reclaim_prefix(&self, prefix: &[u8], keyring_epoch: u64) -> Result<()> {
        let end = key_codec::prefix_end(prefix);
        let mut batch = WriteBatch::default();
        batch.delete_range(prefix, &end);
        // The destruction's epoch becomes durable with the flush below.
        self.versions
            .writing_range(|| self.write_with_epoch(batch, keyring_epoch))?;
        self.db.flush().map_err(store_err)?;
        self.db.compact_range(Some(prefix), Some(&end));
        Ok(())
    }

    /// A damaged record or meta value. RocksDB does not say which file holds
    /// it, so the error names the store's folder.
    pub(crate) fn corruption(&self, kind: CorruptionKind) -> Error {
        Error::corruption(&self.path, 0, kind)
    }

    /// A RocksDB checkpoint of the store in `dir` (which must not exist):
    /// the memtables flushed, then the SST files hard-linked and the small
    /// files copied.
    pub(crate) fn checkpoint(&self, dir: &Path) -> Result<()> {
        rocksdb::checkpoint::Checkpoint::new(&self.db)
            .and_then(|c| c.create_checkpoint(dir))
            .map_err(store_err)
    }

    /// Writes the memtables to SST files, making every applied frame durable
    /// in the store (and so the log segments holding them redundant).
    pub(crate) fn flush(&self) -> Result<()> {
        self.db.flush().map_err(store_err)
    }

    /// Blocks until RocksDB has no compaction pending or running.
    pub(crate) fn wait_for_compactions(&self) -> Result<()> {
        self.db
            .wait_for_compact(&rocksdb::WaitForCompactOptions::default())
            .map_err(store_err)
    }
}

/// Maps a RocksDB iterator error.
pub(crate) fn iter_err(e: rocksdb::Error) -> Error {
    store_err(e)
}
