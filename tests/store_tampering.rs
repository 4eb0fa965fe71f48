//! Records moved inside the store, and one tenant's data under another
//! tenant's key, are detected (AAD), never returned.

mod common;

use std::path::Path;

use common::open;
use strongroom::format::{META_APPLIED_LSN, STORE_DIR, STORE_NS_DATA};
use strongroom::{CorruptionKind, Error, SubjectId, TenantId};

/// Every data key and value in the store whose tenant is `tenant`.
fn raw_records(dir: &Path, tenant: u64) -> Vec<(Vec<u8>, Vec<u8>)> {
    let db = rocksdb::DB::open_default(dir.join(STORE_DIR)).unwrap();
    let mut prefix = vec![STORE_NS_DATA];
    prefix.extend_from_slice(&tenant.to_be_bytes());
    db.prefix_iterator(&prefix)
        .map(Result::unwrap)
        .take_while(|(k, _)| k.starts_with(&prefix))
        .map(|(k, v)| (k.to_vec(), v.to_vec()))
        .collect()
}

fn raw_put(dir: &Path, key: &[u8], value: &[u8]) {
    let db = rocksdb::DB::open_default(dir.join(STORE_DIR)).unwrap();
    db.put(key, value).unwrap();
    db.flush().unwrap();
}

fn is_record_auth(result: &strongroom::Result<Option<Vec<u8>>>) -> bool {
    matches!(
        result,
        Err(Error::Corruption {
            kind: CorruptionKind::RecordAuth,
            ..
        })
    )
}

#[test]
fn a_value_moved_from_one_key_to_another_is_detected_not_returned() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = open(dir.path());
        db.tenant(TenantId(1)).put(b"alice", b"balance 10").unwrap();
        db.tenant(TenantId(1))
            .put(b"bob", b"balance 99999")
            .unwrap();
    }
    let records = raw_records(dir.path(), 1);
    assert_eq!(records.len(), 2);
    // Copy one record's value over the other's.
    raw_put(dir.path(), &records[0].0, &records[1].1);
    let db = open(dir.path());
    let t = db.tenant(TenantId(1));
    let (a, b) = (t.get(b"alice"), t.get(b"bob"));
    assert!(
        is_record_auth(&a) || is_record_auth(&b),
        "the moved record does not open"
    );
    assert!(
        t.scan().unwrap().any(|r| r.is_err()),
        "a scan reports it too"
    );
}

#[test]
fn one_tenants_key_cannot_open_another_tenants_data() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = open(dir.path());
        db.tenant(TenantId(1))
            .put(b"same key", b"tenant one's secret")
            .unwrap();
        db.tenant(TenantId(2))
            .put(b"same key", b"tenant two's data")
            .unwrap();
    }
    let one = raw_records(dir.path(), 1);
    let two = raw_records(dir.path(), 2);
    assert_ne!(
        one[0].0[18..],
        two[0].0[18..],
        "tokens differ between tenants"
    );
    raw_put(dir.path(), &two[0].0, &one[0].1);
    let db = open(dir.path());
    assert!(is_record_auth(&db.tenant(TenantId(2)).get(b"same key")));
    assert_eq!(
        db.tenant(TenantId(1)).get(b"same key").unwrap(),
        Some(b"tenant one's secret".to_vec())
    );
}

#[test]
fn a_subject_record_moved_to_another_subject_does_not_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = open(dir.path());
        let t = db.tenant(TenantId(1));
        t.subject(SubjectId(1)).put(b"k", b"subject one").unwrap();
        t.subject(SubjectId(2)).put(b"k", b"subject two").unwrap();
    }
    let records = raw_records(dir.path(), 1);
    assert_eq!(records.len(), 2);
    raw_put(dir.path(), &records[1].0, &records[0].1);
    let db = open(dir.path());
    let t = db.tenant(TenantId(1));
    let results = [
        t.subject(SubjectId(1)).get(b"k"),
        t.subject(SubjectId(2)).get(b"k"),
    ];
    assert_eq!(
        results.iter().filter(|r| matches!(r, Ok(Some(_)))).count(),
        1
    );
    assert_eq!(results.into_iter().filter(is_record_auth).count(), 1);
}

/// An applied LSN at the top of the range (the store's own record of how far
/// it has replayed) is corruption, not an overflow in the replay arithmetic.
#[test]
fn an_applied_lsn_out_of_range_is_corruption() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = open(dir.path());
        db.tenant(TenantId(1)).put(b"k", b"v").unwrap();
    }
    for applied in [strongroom::format::LSN_MAX, u64::MAX] {
        raw_put(dir.path(), META_APPLIED_LSN, &applied.to_le_bytes());
        match strongroom::Db::open(dir.path(), common::options()) {
            Err(Error::Corruption {
                kind: CorruptionKind::Malformed(_),
                ..
            }) => {}
            other => panic!("applied LSN {applied}: {:?}", other.err()),
        }
    }
}
