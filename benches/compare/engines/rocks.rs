//! Raw RocksDB with strongroom's store options (the same function builds
//! them: block cache, bloom filters, no compression, 2 background threads)
//! but with its own WAL on. Keys are the 16-byte user keys themselves, so a
//! tenant is the 4-byte prefix.

use std::path::Path;

use rocksdb::{DB, ReadOptions, WriteBatch, WriteOptions};

use super::{Durability, Engine, Session};
use crate::config::CACHE_BYTES;

pub struct Rocks {
    db: DB,
    write: WriteOptions,
}

impl Rocks {
    pub fn open(dir: &Path, durability: Durability) -> Rocks {
        let options = strongroom::store_rocksdb_options(CACHE_BYTES);
        let mut write = WriteOptions::default();
        write.disable_wal(false);
        write.set_sync(durability == Durability::Durable);
        Rocks {
            db: DB::open(&options, dir).expect("open rocksdb"),
            write,
        }
    }
}

impl Engine for Rocks {
    fn session(&self) -> Box<dyn Session + '_> {
        Box::new(RocksSession { rocks: self })
    }

    fn settle(&self) {
        self.db.flush().expect("rocksdb flush");
        self.db
            .wait_for_compact(&rocksdb::WaitForCompactOptions::default())
            .expect("rocksdb compactions");
    }
}

struct RocksSession<'a> {
    rocks: &'a Rocks,
}

impl Session for RocksSession<'_> {
    fn put(&mut self, _tenant: u32, key: &[u8], value: &[u8]) {
        self.rocks
            .db
            .put_opt(key, value, &self.rocks.write)
            .expect("rocksdb put");
    }

    fn put_batch(&mut self, _tenant: u32, records: &[([u8; 16], &[u8])]) {
        let mut batch = WriteBatch::default();
        for (key, value) in records {
            batch.put(key, value);
        }
        self.rocks
            .db
            .write_opt(batch, &self.rocks.write)
            .expect("rocksdb batch");
    }

    fn get(&mut self, _tenant: u32, key: &[u8]) -> Option<Vec<u8>> {
        self.rocks.db.get(key).expect("rocksdb get")
    }

    fn scan(&mut self, tenant: u32) -> (u64, u64) {
        let mut read = ReadOptions::default();
        read.set_iterate_upper_bound((tenant + 1).to_be_bytes());
        let mut iter = self.rocks.db.raw_iterator_opt(read);
        iter.seek(tenant.to_be_bytes());
        let (mut records, mut bytes) = (0, 0);
        while let Some(value) = iter.value() {
            // A copy of each value, as every engine here hands out (kept from
            // the optimiser, which would otherwise drop an unused copy).
            let value = std::hint::black_box(value.to_vec());
            records += 1;
            bytes += value.len() as u64;
            iter.next();
        }
        iter.status().expect("rocksdb scan");
        (records, bytes)
    }
}
