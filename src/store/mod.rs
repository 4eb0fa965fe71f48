//! The store: RocksDB, with its own WAL switched off, holding the state that
//! the log's frames materialise.
//!
//! Every write also records the LSN of the last frame it applies, in the same
//! RocksDB write batch, so after a crash the store holds a prefix of history
//! up to that LSN, and recovery replays the log from there.

pub(crate) mod key_codec;

use std::path::{Path, PathBuf};

use rocksdb::{
    BlockBasedOptions, Cache, DB, DBIteratorWithThreadMode, DBPinnableSlice, Direction,
    IteratorMode, ReadOptions, SnapshotWithThreadMode, WriteBatch, WriteOptions,
};

use crate::error::{CorruptionKind, Error, Result};
use crate::format::{LSN_MAX, META_APPLIED_LSN, STORE_DIR};
use crate::scope::Scope;
use crate::wal::entry::{Entry, Op};

/// A consistent read view of the store.
pub(crate) type StoreSnapshot<'a> = SnapshotWithThreadMode<'a, DB>;
/// A raw iterator over store keys.
pub(crate) type StoreIter<'a> = DBIteratorWithThreadMode<'a, DB>;

/// The RocksDB store of one database.
pub(crate) struct Store {
    db: DB,
    path: PathBuf,
    write_options: WriteOptions,
}

fn store_err(e: rocksdb::Error) -> Error {
    Error::Store(e.into_string())
}

/// The store's RocksDB options: a block cache of `block_cache_bytes` (index
/// and filter blocks kept out of it, in the table readers: with them in the
/// cache, random reads over a larger data set evicted and re-read them), a
/// bloom filter of 10 bits per key, no compression, 2 background threads.
pub(crate) fn rocksdb_options(block_cache_bytes: usize) -> rocksdb::Options {
    let mut table = BlockBasedOptions::default();
    table.set_block_cache(&Cache::new_lru_cache(block_cache_bytes));
    table.set_bloom_filter(10.0, false);
    table.set_cache_index_and_filter_blocks(false);
    let mut options = rocksdb::Options::default();
    options.create_if_missing(true);
    options.set_block_based_table_factory(&table);
    // Values are sealed and keys are tokens: nothing to compress.
    options.set_compression_type(rocksdb::DBCompressionType::None);
    options.increase_parallelism(2);
    options
}

impl Store {
    /// Opens (or creates) the store under the data directory.
    pub(crate) fn open(data_dir: &Path, block_cache_bytes: usize) -> Result<Store> {
        let path = data_dir.join(STORE_DIR);
        let db = DB::open(&rocksdb_options(block_cache_bytes), &path).map_err(store_err)?;
        let mut write_options = WriteOptions::default();
        // Our log is the WAL; a crash loses only what the log replays.
        write_options.disable_wal(true);
        Ok(Store {
            db,
            path,
            write_options,
        })
    }

    /// LSN of the last frame applied (0 for a new store).
    pub(crate) fn applied_lsn(&self) -> Result<u64> {
        let Some(bytes) = self.db.get_pinned(META_APPLIED_LSN).map_err(store_err)? else {
            return Ok(0);
        };
        let raw: [u8; 8] = bytes[..].try_into().map_err(|_| {
            self.corruption(CorruptionKind::Malformed("applied LSN is not 8 bytes"))
        })?;
        let applied = u64::from_le_bytes(raw);
        if applied >= LSN_MAX {
            return Err(self.corruption(CorruptionKind::Malformed("applied LSN out of range")));
        }
        Ok(applied)
    }

    /// Applies frames' entries, and the last frame's LSN, in one atomic write.
    ///
    /// This is the only way anything reaches the store: the commit path and
    /// the replay loop both come here.
    pub(crate) fn apply(&self, entries: &[Entry<'_>], last_lsn: u64) -> Result<()> {
        let mut batch = WriteBatch::default();
        for entry in entries {
            let key = key_codec::data_key(entry.scope, &entry.token);
            match entry.op {
                Op::Put(sealed) => batch.put(key, sealed),
                Op::Delete => batch.delete(key),
            }
        }
        batch.put(META_APPLIED_LSN, last_lsn.to_le_bytes());
        self.db
            .write_opt(batch, &self.write_options)
            .map_err(store_err)
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

    /// Iterates the keys of `scope` in token order.
    pub(crate) fn scan(&self, scope: Scope, snapshot: Option<&StoreSnapshot<'_>>) -> StoreIter<'_> {
        self.scan_from(scope, &key_codec::scope_prefix(scope), snapshot)
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

    /// Removes every key under `prefix` and the space it takes: a range
    /// deletion (constant time), a flush (so the deletion is durable with
    /// RocksDB's WAL off) and a compaction of the range.
    pub(crate) fn reclaim_prefix(&self, prefix: &[u8]) -> Result<()> {
        let end = key_codec::prefix_end(prefix);
        let mut batch = WriteBatch::default();
        batch.delete_range(prefix, &end);
        self.db
            .write_opt(batch, &self.write_options)
            .map_err(store_err)?;
        self.db.flush().map_err(store_err)?;
        self.db.compact_range(Some(prefix), Some(&end));
        Ok(())
    }

    /// A damaged record or meta value. RocksDB does not say which file holds
    /// it, so the error names the store's folder.
    pub(crate) fn corruption(&self, kind: CorruptionKind) -> Error {
        Error::corruption(&self.path, 0, kind)
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
