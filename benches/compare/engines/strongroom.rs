//! strongroom through its public API: each tenant is `db.tenant(TenantId(t))`.

use std::path::Path;

use strongroom::{Db, Options, TenantId, WriteBatch};

use super::{Durability, Engine, Session};
use crate::config::{BUFFERED_SYNC_INTERVAL, CACHE_BYTES};

pub struct Strongroom {
    db: Db,
}

impl Strongroom {
    /// Opens with [`CACHE_BYTES`] of memory: `scan_cache_bytes` for the
    /// scan cache, the rest for the block cache.
    pub fn open(dir: &Path, durability: Durability, scan_cache_bytes: usize) -> Strongroom {
        let durability = match durability {
            Durability::Durable => strongroom::Durability::SyncEveryCommit,
            Durability::Buffered => strongroom::Durability::SyncInterval(BUFFERED_SYNC_INTERVAL),
        };
        let mut options = Options::with_key([7; 32])
            .durability(durability)
            .scan_cache_bytes(scan_cache_bytes);
        options.block_cache_bytes = CACHE_BYTES - scan_cache_bytes;
        Strongroom {
            db: Db::open(dir, options).expect("open strongroom"),
        }
    }
}

impl Engine for Strongroom {
    fn session(&self) -> Box<dyn Session + '_> {
        Box::new(StrongroomSession { db: &self.db })
    }

    fn settle(&self) {
        self.db.flush_and_settle().expect("strongroom flush");
    }
}

struct StrongroomSession<'a> {
    db: &'a Db,
}

fn tenant_id(tenant: u32) -> TenantId {
    TenantId(u64::from(tenant))
}

impl Session for StrongroomSession<'_> {
    fn put(&mut self, tenant: u32, key: &[u8], value: &[u8]) {
        self.db
            .tenant(tenant_id(tenant))
            .put(key, value)
            .expect("strongroom put");
    }

    fn put_batch(&mut self, tenant: u32, records: &[([u8; 16], &[u8])]) {
        let mut batch = WriteBatch::new();
        for (key, value) in records {
            batch.put(&key[..], *value);
        }
        self.db
            .tenant(tenant_id(tenant))
            .write(batch)
            .expect("strongroom batch");
    }

    fn get(&mut self, tenant: u32, key: &[u8]) -> Option<Vec<u8>> {
        self.db
            .tenant(tenant_id(tenant))
            .get(key)
            .expect("strongroom get")
    }

    fn scan(&mut self, tenant: u32) -> (u64, u64) {
        let (mut records, mut bytes) = (0, 0);
        let mut scan = self.db.tenant(tenant_id(tenant)).scan().expect("scan");
        while let Some(record) = scan.next_ref() {
            let (_, value) = record.expect("strongroom scan");
            // A copy of each value, as every engine here hands out (kept from
            // the optimiser, which would otherwise drop an unused copy).
            let value = std::hint::black_box(value.to_vec());
            records += 1;
            bytes += value.len() as u64;
        }
        (records, bytes)
    }
}
