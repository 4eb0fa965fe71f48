//! Every archive keeps the same contract, on the local folder and on a real
//! S3 server (Garage on loopback): put, get, ranges, lists by folder, delete,
//! typed errors for missing objects and bad names; and the fault-injecting
//! archive fails exactly the calls it is told to.

mod common;

use std::sync::Arc;
use std::time::Duration;

use strongroom::archive::{Archive, ArchiveError, ArchiveOp, FaultyArchive, LocalArchive};

/// The contract, on one archive.
fn contract(archive: &dyn Archive) {
    assert!(
        archive.list("").unwrap().is_empty(),
        "a new archive is empty"
    );
    assert!(matches!(
        archive.get("wal/none"),
        Err(ArchiveError::NotFound { name }) if name == "wal/none"
    ));
    let big: Vec<u8> = (0..(1 << 20) + 17).map(|i: u32| (i * 31) as u8).collect();
    archive.put("wal/0001.seg", b"first".to_vec()).unwrap();
    archive.put("wal/0002.seg", big.clone()).unwrap();
    archive.put("walrus/x", Vec::new()).unwrap();
    // Larger than one request carries to S3 (put in parts there).
    let huge: Vec<u8> = (0..(20 << 20) + 3)
        .map(|i: u32| (i * 7 + i / 4096) as u8)
        .collect();
    archive.put("sst/huge", huge.clone()).unwrap();
    assert!(
        archive.get("sst/huge").unwrap() == huge,
        "a multipart object reads back whole"
    );
    assert_eq!(
        archive
            .get_range("sst/huge", (9 << 20) - 5..(9 << 20) + 5)
            .unwrap(),
        huge[(9 << 20) - 5..(9 << 20) + 5]
    );
    archive.delete("sst/huge").unwrap();
    archive.put("backups/2026/m", b"m".to_vec()).unwrap();
    assert_eq!(archive.get("wal/0001.seg").unwrap(), b"first");
    assert_eq!(archive.get("wal/0002.seg").unwrap(), big);
    assert_eq!(archive.get("walrus/x").unwrap(), b"");
    // Ranges, clipped at the object's end.
    assert_eq!(archive.get_range("wal/0002.seg", 5..9).unwrap(), big[5..9]);
    let len = big.len() as u64;
    assert_eq!(
        archive
            .get_range("wal/0002.seg", len - 3..len + 10)
            .unwrap(),
        big[big.len() - 3..]
    );
    assert!(
        archive
            .get_range("wal/0002.seg", len..len + 4)
            .unwrap()
            .is_empty()
    );
    assert!(matches!(
        archive.get_range("wal/none", 0..4),
        Err(ArchiveError::NotFound { .. })
    ));
    // Lists are by folder, sorted, with sizes and the time of the put.
    let listed = |prefix: &str| -> Vec<(String, u64)> {
        let objects = archive.list(prefix).unwrap();
        let now = std::time::SystemTime::now();
        for o in &objects {
            let age = now.duration_since(o.modified.expect("both archives say when"));
            assert!(age.unwrap_or_default() < Duration::from_secs(600), "{o:?}");
        }
        objects.into_iter().map(|o| (o.name, o.size)).collect()
    };
    let info = |name: &str, size: usize| (name.to_owned(), size as u64);
    assert_eq!(
        listed("wal/"),
        vec![info("wal/0001.seg", 5), info("wal/0002.seg", big.len())]
    );
    assert_eq!(listed("backups/"), vec![info("backups/2026/m", 1)]);
    assert_eq!(archive.list("").unwrap().len(), 4);
    assert!(archive.list("nothing/").unwrap().is_empty());
    // Folders one level down: only those that hold objects.
    assert_eq!(
        archive.list_folders("").unwrap(),
        ["backups/", "wal/", "walrus/"]
    );
    assert_eq!(archive.list_folders("backups/").unwrap(), ["backups/2026/"]);
    assert!(archive.list_folders("wal/").unwrap().is_empty());
    assert!(archive.list_folders("nothing/").unwrap().is_empty());
    // A put replaces; a delete removes, and a second delete is no error.
    archive.put("wal/0001.seg", b"again".to_vec()).unwrap();
    assert_eq!(archive.get("wal/0001.seg").unwrap(), b"again");
    archive.delete("wal/0001.seg").unwrap();
    archive.delete("wal/0001.seg").unwrap();
    assert!(matches!(
        archive.get("wal/0001.seg"),
        Err(ArchiveError::NotFound { .. })
    ));
    assert_eq!(listed("wal/"), vec![info("wal/0002.seg", big.len())]);
    // Names outside the rules never reach the archive.
    for bad in ["../x", "/x", "a//b", "x.tmp", "a b"] {
        assert!(
            matches!(archive.put(bad, vec![1]), Err(ArchiveError::InvalidName(_))),
            "{bad}"
        );
        assert!(matches!(
            archive.get(bad),
            Err(ArchiveError::InvalidName(_))
        ));
        assert!(matches!(
            archive.delete(bad),
            Err(ArchiveError::InvalidName(_))
        ));
    }
    assert!(matches!(
        archive.list("wal"),
        Err(ArchiveError::InvalidName(_))
    ));
}

#[test]
fn a_local_folder_keeps_the_archive_contract() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("archive");
    // A missing folder (a backup disk not mounted) is not made.
    let missing = LocalArchive::new(&root);
    let e = missing.put("a", vec![1]).unwrap_err();
    assert!(
        e.is_transient() && e.to_string().contains("does not exist"),
        "{e}"
    );
    assert!(!root.exists());
    std::fs::create_dir(&root).unwrap();
    contract(&LocalArchive::new(&root));
}

#[test]
fn an_s3_bucket_keeps_the_archive_contract() {
    contract(&common::garage::shared().archive());
}

#[test]
fn a_local_folder_lists_no_temporary_or_foreign_file() {
    let dir = tempfile::tempdir().unwrap();
    let archive = LocalArchive::new(dir.path());
    archive.put("wal/a", vec![1]).unwrap();
    // What a crash in the middle of a put leaves, and someone else's file.
    std::fs::write(dir.path().join("wal/b.tmp"), b"half").unwrap();
    std::fs::write(dir.path().join("wal/not ours"), b"x").unwrap();
    let names: Vec<String> = archive
        .list("")
        .unwrap()
        .into_iter()
        .map(|o| o.name)
        .collect();
    assert_eq!(names, vec!["wal/a"]);
}

#[test]
fn an_unreachable_s3_server_is_a_transient_error_not_a_hang_or_a_panic() {
    let garage = common::garage::Garage::start_new();
    let archive = strongroom::archive::S3Archive::new(&garage.config()).unwrap();
    archive.put("a", vec![1, 2, 3]).unwrap();
    garage.stop();
    for result in [
        archive.put("b", vec![1]).map(|_| ()),
        archive.get("a").map(|_| ()),
        archive.list("").map(|_| ()),
        archive.delete("a"),
    ] {
        let e = result.unwrap_err();
        assert!(e.is_transient(), "{e}");
    }
    garage.start();
    assert_eq!(archive.get("a").unwrap(), vec![1, 2, 3]);
    archive.put("b", vec![4]).unwrap();
    assert_eq!(archive.list("").unwrap().len(), 2);
}

#[test]
fn a_local_folder_lists_while_objects_are_deleted() {
    // Found by the crash harness: a file deleted between the walk's read
    // of its folder and its size made the whole listing `NotFound`.
    let dir = tempfile::tempdir().unwrap();
    let archive = Arc::new(LocalArchive::new(dir.path()));
    let names: Vec<String> = (0..400).map(|i| format!("f{}/o{i}", i % 8)).collect();
    for name in &names {
        archive.put(name, vec![1; 10]).unwrap();
    }
    let deleter = {
        let archive = archive.clone();
        std::thread::spawn(move || {
            for name in &names {
                archive.delete(name).unwrap();
            }
        })
    };
    let mut lists = 0;
    loop {
        let listed = archive.list("").expect("a listing during deletes");
        lists += 1;
        if listed.is_empty() {
            break;
        }
    }
    deleter.join().unwrap();
    assert!(lists > 1);
}

#[test]
fn the_faulty_archive_fails_exactly_the_calls_it_is_told_to() {
    let dir = tempfile::tempdir().unwrap();
    let faulty = FaultyArchive::new(Arc::new(LocalArchive::new(dir.path())));
    faulty.fail_nth(ArchiveOp::Put, 2);
    faulty.put("a", vec![1]).unwrap();
    let e = faulty.put("b", vec![2]).unwrap_err();
    assert!(e.is_transient());
    faulty.put("b", vec![2]).unwrap();
    assert_eq!(faulty.calls(ArchiveOp::Put), 3);
    faulty.fail_nth(ArchiveOp::Get, 1);
    faulty.fail_nth(ArchiveOp::List, 1);
    faulty.fail_nth(ArchiveOp::Delete, 1);
    assert!(faulty.get("a").is_err());
    assert_eq!(faulty.get("a").unwrap(), vec![1]);
    assert!(faulty.list("").is_err());
    assert_eq!(faulty.list("").unwrap().len(), 2);
    assert!(faulty.delete("a").is_err());
    faulty.delete("a").unwrap();
    faulty.set_down(true);
    assert!(faulty.get("b").unwrap_err().is_transient());
    assert!(faulty.put("c", vec![]).is_err());
    faulty.set_down(false);
    assert_eq!(faulty.get("b").unwrap(), vec![2]);
    // Nothing a failed call was given reached the archive.
    let names: Vec<String> = faulty
        .list("")
        .unwrap()
        .into_iter()
        .map(|o| o.name)
        .collect();
    assert_eq!(names, vec!["b"]);
}
