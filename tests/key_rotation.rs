//! Key rotation: the master key (one manifest rewrite) and tenant keys (a
//! new sealing version, a re-encryption pass, then the old versions go).

mod common;

use common::{all_files, options};
use strongroom::{Db, Error, MasterKeySource, Options, SubjectId, TenantId};

#[test]
fn a_rotated_master_key_opens_the_database_and_the_old_one_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let new_key = || MasterKeySource::Passphrase("a new passphrase".to_string().into());
    {
        let db = Db::open(dir.path(), options()).unwrap();
        db.tenant(TenantId(1)).put(b"k", b"v").unwrap();
        db.tenant(TenantId(1))
            .subject(SubjectId(2))
            .put(b"s", b"w")
            .unwrap();
        let before: Vec<_> = all_files(&dir.path().join("keyring"))
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "keys"))
            .map(|p| (p.clone(), std::fs::read(p).unwrap()))
            .collect();
        db.rotate_master_key(new_key()).unwrap();
        for (path, bytes) in before {
            assert_eq!(
                std::fs::read(&path).unwrap(),
                bytes,
                "{} untouched",
                path.display()
            );
        }
        db.tenant(TenantId(1)).put(b"after", b"rotation").unwrap();
    }
    assert!(matches!(
        Db::open(dir.path(), options()),
        Err(Error::WrongMasterKey)
    ));
    let db = Db::open(dir.path(), Options::new(new_key())).unwrap();
    let t = db.tenant(TenantId(1));
    assert_eq!(t.get(b"k").unwrap(), Some(b"v".to_vec()));
    assert_eq!(t.get(b"after").unwrap(), Some(b"rotation".to_vec()));
    assert_eq!(
        t.subject(SubjectId(2)).get(b"s").unwrap(),
        Some(b"w".to_vec())
    );
    // And once more, back to raw key bytes.
    db.rotate_master_key(MasterKeySource::Bytes([8; 32].into()))
        .unwrap();
    drop(db);
    assert!(matches!(
        Db::open(dir.path(), Options::new(new_key())),
        Err(Error::WrongMasterKey)
    ));
    let db = Db::open(dir.path(), Options::with_key([8; 32])).unwrap();
    assert_eq!(
        db.tenant(TenantId(1)).get(b"k").unwrap(),
        Some(b"v".to_vec())
    );
}
