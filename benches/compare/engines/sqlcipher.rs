//! SQLCipher (SQLite with every page encrypted: AES-256-CBC and an
//! HMAC-SHA512 per page, its defaults) through rusqlite: WAL journal mode,
//! one table `kv (k BLOB PRIMARY KEY, v BLOB)`, a connection per thread.
//! The key is given raw (`x'..'`), so opening a connection skips PBKDF2.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OptionalExtension, params};

use super::{Durability, Engine, Session};
use crate::config::CACHE_BYTES;

const DB_FILE: &str = "kv.db";
const RAW_KEY: &str = "x'0707070707070707070707070707070707070707070707070707070707070707'";

pub struct SqlCipher {
    path: PathBuf,
    synchronous: &'static str,
}

/// SQLCipher's version, which also proves the build is SQLCipher.
pub fn cipher_version(dir: &Path) -> String {
    let conn = connect(&dir.join(DB_FILE), "FULL");
    conn.query_row("PRAGMA cipher_version", [], |r| r.get(0))
        .expect("cipher_version: rusqlite is not built with SQLCipher")
}

fn connect(path: &Path, synchronous: &str) -> Connection {
    let conn = Connection::open(path).expect("open sqlcipher");
    conn.execute_batch(&format!("PRAGMA key = \"{RAW_KEY}\";"))
        .expect("PRAGMA key");
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .expect("journal_mode");
    assert_eq!(mode, "wal");
    conn.execute_batch(&format!(
        "PRAGMA synchronous = {synchronous}; PRAGMA cache_size = -{};",
        CACHE_BYTES / 1024
    ))
    .expect("pragmas");
    conn.busy_timeout(Duration::from_secs(30))
        .expect("busy_timeout");
    conn
}

impl SqlCipher {
    pub fn open(dir: &Path, durability: Durability) -> SqlCipher {
        let synchronous = match durability {
            Durability::Durable => "FULL",
            Durability::Buffered => "NORMAL",
        };
        let path = dir.join(DB_FILE);
        connect(&path, synchronous)
            .execute_batch("CREATE TABLE IF NOT EXISTS kv (k BLOB PRIMARY KEY, v BLOB NOT NULL)")
            .expect("create table");
        SqlCipher { path, synchronous }
    }
}

impl Engine for SqlCipher {
    fn session(&self) -> Box<dyn Session + '_> {
        Box::new(SqlSession {
            conn: connect(&self.path, self.synchronous),
        })
    }

    fn settle(&self) {
        connect(&self.path, self.synchronous)
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .expect("checkpoint");
    }
}

struct SqlSession {
    conn: Connection,
}

const PUT: &str = "INSERT OR REPLACE INTO kv (k, v) VALUES (?1, ?2)";

/// Runs `f` again while another connection holds the write lock past the
/// busy timeout's reach (a WAL snapshot that went stale).
fn retry_busy<T>(mut f: impl FnMut() -> rusqlite::Result<T>) -> T {
    loop {
        match f() {
            Ok(t) => return t,
            Err(rusqlite::Error::SqliteFailure(e, _)) if e.code == ErrorCode::DatabaseBusy => {}
            Err(e) => panic!("sqlcipher: {e}"),
        }
    }
}

impl Session for SqlSession {
    fn put(&mut self, _tenant: u32, key: &[u8], value: &[u8]) {
        let conn = &self.conn;
        retry_busy(|| conn.prepare_cached(PUT)?.execute(params![key, value]));
    }

    fn put_batch(&mut self, _tenant: u32, records: &[([u8; 16], &[u8])]) {
        let conn = &mut self.conn;
        retry_busy(|| {
            let tx = conn.transaction()?;
            {
                let mut put = tx.prepare_cached(PUT)?;
                for (key, value) in records {
                    put.execute(params![&key[..], value])?;
                }
            }
            tx.commit()
        });
    }

    fn get(&mut self, _tenant: u32, key: &[u8]) -> Option<Vec<u8>> {
        let conn = &self.conn;
        retry_busy(|| {
            conn.prepare_cached("SELECT v FROM kv WHERE k = ?1")?
                .query_row([key], |r| r.get(0))
                .optional()
        })
    }

    fn scan(&mut self, tenant: u32) -> (u64, u64) {
        let conn = &self.conn;
        retry_busy(|| {
            let mut stmt = conn.prepare_cached("SELECT k, v FROM kv WHERE k >= ?1 AND k < ?2")?;
            let from = tenant.to_be_bytes();
            let to = (tenant + 1).to_be_bytes();
            let mut rows = stmt.query(params![&from[..], &to[..]])?;
            let (mut records, mut bytes) = (0, 0);
            while let Some(row) = rows.next()? {
                records += 1;
                // A copy of each value, as every engine here hands out (kept from
                // the optimiser, which would otherwise drop an unused copy).
                let value: Vec<u8> = std::hint::black_box(row.get(1)?);
                bytes += value.len() as u64;
            }
            Ok((records, bytes))
        })
    }
}
