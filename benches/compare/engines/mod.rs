//! The three engines behind one interface: a shared handle per database and
//! a session per thread (SQLCipher needs a connection per thread).

mod rocks;
mod sqlcipher;
mod strongroom;

use std::path::Path;

pub use sqlcipher::cipher_version;

/// Which engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Strongroom,
    RocksDb,
    SqlCipher,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Strongroom, Kind::RocksDb, Kind::SqlCipher];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Strongroom => "strongroom",
            Kind::RocksDb => "RocksDB",
            Kind::SqlCipher => "SQLCipher",
        }
    }
}

/// When a write returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// On disk: strongroom's default, RocksDB `sync=true`, SQLite
    /// `synchronous=FULL`.
    Durable,
    /// Handed to the OS: strongroom `SyncInterval`, RocksDB `sync=false`,
    /// SQLite `synchronous=NORMAL`.
    Buffered,
}

/// One database, shared by the threads of a workload.
pub trait Engine: Sync {
    /// A handle for one thread.
    fn session(&self) -> Box<dyn Session + '_>;
    /// Moves everything written to the engine's read-optimised form
    /// (memtables to SST files; a WAL checkpoint).
    fn settle(&self);
}

/// One thread's handle. Keys are 16 bytes whose first 4 are the tenant.
pub trait Session {
    fn put(&mut self, tenant: u32, key: &[u8], value: &[u8]);
    /// One atomic batch (a transaction), durable as the engine was opened.
    fn put_batch(&mut self, tenant: u32, records: &[([u8; 16], &[u8])]);
    fn get(&mut self, tenant: u32, key: &[u8]) -> Option<Vec<u8>>;
    /// Reads every record of `tenant`; returns (records, value bytes).
    fn scan(&mut self, tenant: u32) -> (u64, u64);
}

/// Opens a new database of `kind` in the empty folder `dir`.
/// Opens an engine; strongroom with a scan cache of `scan_cache_bytes`.
pub fn open(
    kind: Kind,
    dir: &Path,
    durability: Durability,
    scan_cache_bytes: usize,
) -> Box<dyn Engine> {
    match kind {
        Kind::Strongroom => Box::new(strongroom::Strongroom::open(
            dir,
            durability,
            scan_cache_bytes,
        )),
        Kind::RocksDb => Box::new(rocks::Rocks::open(dir, durability)),
        Kind::SqlCipher => Box::new(sqlcipher::SqlCipher::open(dir, durability)),
    }
}
