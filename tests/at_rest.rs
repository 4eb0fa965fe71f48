//! Nothing readable at rest, and a wrong master key touches nothing.

mod common;

use common::{KEY, all_files, open, snapshot_files};
use strongroom::{Db, Error, Options, SubjectId, TenantId, WriteBatch};

const CANARY: &str = "CANARY-q7Zx3-personal-data";

/// The forms of `text` a search of the disk looks for: as is, UTF-16 (both
/// byte orders), and hex (both cases).
fn forms(text: &[u8]) -> Vec<Vec<u8>> {
    let utf16 = |big_endian: bool| -> Vec<u8> {
        text.iter()
            .flat_map(|&b| if big_endian { [0, b] } else { [b, 0] })
            .collect()
    };
    let hex = |upper: bool| -> Vec<u8> {
        text.iter()
            .flat_map(|b| {
                if upper {
                    format!("{b:02X}")
                } else {
                    format!("{b:02x}")
                }
                .into_bytes()
            })
            .collect()
    };
    vec![
        text.to_vec(),
        utf16(false),
        utf16(true),
        hex(false),
        hex(true),
    ]
}

fn count_hits(dir: &std::path::Path, needles: &[Vec<u8>]) -> (usize, usize, Vec<String>) {
    let files = all_files(dir);
    let mut hits = Vec::new();
    for file in &files {
        let bytes = std::fs::read(file).unwrap();
        for needle in needles {
            if bytes.windows(needle.len()).any(|w| w == needle.as_slice()) {
                hits.push(format!(
                    "{} holds {:?}",
                    file.display(),
                    String::from_utf8_lossy(needle)
                ));
            }
        }
    }
    (files.len(), hits.len(), hits)
}

fn write_canaries(db: &Db) {
    for tenant in 0..5u64 {
        let t = db.tenant(TenantId(tenant));
        t.put(
            format!("{CANARY}-key-{tenant}").as_bytes(),
            CANARY.as_bytes(),
        )
        .unwrap();
        // A value large and repetitive enough to be compressed before sealing.
        t.put(b"big", CANARY.repeat(200).as_bytes()).unwrap();
        let mut batch = WriteBatch::new();
        for subject in 0..5u64 {
            batch.put_subject(
                SubjectId(subject),
                format!("{CANARY}-subject-key"),
                format!("{CANARY}-subject-{subject}-value"),
            );
        }
        t.write(batch).unwrap();
    }
}

#[test]
fn no_file_holds_a_canary_key_or_value_in_any_form() {
    let dir = tempfile::tempdir().unwrap();
    let mut needles = forms(CANARY.as_bytes());
    needles.extend(forms(b"personal-data"));
    // Short enough to catch a leak of any 16-byte slice of a canary key.
    needles.extend(forms(b"q7Zx3"));
    // Key material must not reach the disk either.
    needles.push(KEY.to_vec());
    needles.extend(forms(&KEY[..16]).into_iter().skip(3));

    let db = open(dir.path());
    write_canaries(&db);
    // While open: the data is in the log (and RocksDB's memtable).
    let (files, hits, which) = count_hits(dir.path(), &needles);
    assert_eq!(hits, 0, "{which:?}");
    assert!(files >= 4);
    db.flush().unwrap();
    drop(db);
    // After a flush and close: in RocksDB's SST files too.
    let (_, hits, which) = count_hits(dir.path(), &needles);
    assert_eq!(hits, 0, "{which:?}");
    let ssts = all_files(dir.path())
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "sst"))
        .count();
    assert!(ssts > 0, "the records reached the store's files");

    // The search can find what it looks for: the same canaries, readable.
    let db = open(dir.path());
    let value = db
        .tenant(TenantId(3))
        .get(format!("{CANARY}-key-3").as_bytes())
        .unwrap();
    assert_eq!(value, Some(CANARY.as_bytes().to_vec()));
    let plain = dir.path().join("plain.txt");
    std::fs::write(&plain, format!("x{CANARY}x")).unwrap();
    // The planted file holds the canary and, inside it, both fragments.
    assert_eq!(
        count_hits(dir.path(), &needles).1,
        3,
        "the search finds a planted canary"
    );
    std::fs::remove_file(plain).unwrap();
}

#[test]
fn a_wrong_master_key_is_a_typed_error_and_changes_no_byte() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = open(dir.path());
        write_canaries(&db);
    }
    let before = snapshot_files(dir.path());
    for _ in 0..3 {
        let result = Db::open(dir.path(), Options::with_key([0x5b; 32]));
        assert!(matches!(result, Err(Error::WrongMasterKey)));
    }
    assert_eq!(snapshot_files(dir.path()), before, "same files, same bytes");
    let db = open(dir.path());
    assert!(db.tenant(TenantId(0)).get(b"big").unwrap().is_some());
}
