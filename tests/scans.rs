//! Scans that open records ahead of the caller: the same records in the same
//! order as a scan that opens them on the caller's thread, across batch
//! boundaries, compressed and large records and two key versions; a
//! snapshot's scan sees its moment only; a scan racing a shred or a seal of
//! its scope ends with the error or with records read before it, never a
//! record after it returned; a record that does not open ends the scan
//! there, after every record before it.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use common::options;
use strongroom::{Db, Error, Options, ShredOptions, SubjectId, TenantId};

fn value_of(i: u32) -> Vec<u8> {
    match i % 7 {
        // Compressible (zstd above 512 B), so opened into the spill buffer.
        0 => format!("{i:08} ").repeat(200).into_bytes(),
        1 => Vec::new(),
        // Larger than a batch on its own, every 350 records.
        2 if i % 350 == 2 => vec![(i % 251) as u8; 200 * 1024],
        _ => {
            let mut v = vec![0u8; 64 + (i as usize * 37) % 300];
            for (j, b) in v.iter_mut().enumerate() {
                *b = (i as usize * 31 + j * 7) as u8;
            }
            v
        }
    }
}

fn key_of(i: u32) -> Vec<u8> {
    format!("key-{i:06}").into_bytes()
}

fn fill(db: &Db, tenant: TenantId, n: u32) {
    let t = db.tenant(tenant);
    for chunk in (0..n).collect::<Vec<_>>().chunks(500) {
        let mut batch = strongroom::WriteBatch::new();
        for &i in chunk {
            batch.put(key_of(i), value_of(i));
        }
        t.write(batch).unwrap();
    }
}

fn scan_all(db: &Db, tenant: TenantId) -> Vec<(Vec<u8>, Vec<u8>)> {
    db.tenant(tenant)
        .scan()
        .unwrap()
        .collect::<strongroom::Result<_>>()
        .unwrap()
}

#[test]
fn read_ahead_yields_what_the_callers_thread_would_in_the_same_order() {
    let dir = tempfile::tempdir().unwrap();
    const N: u32 = 6_000;
    {
        let db = Db::open(dir.path(), options()).unwrap();
        fill(&db, TenantId(1), N / 2);
        // A second key version: half the records sealed under each (the
        // re-sealing pass is not run, so both versions stay in use).
        db.tenant(TenantId(1)).rotate_key().unwrap();
        let t = db.tenant(TenantId(1));
        for i in N / 2..N {
            t.put(&key_of(i), &value_of(i)).unwrap();
        }
        db.flush_and_settle().unwrap();
    }
    let with = Db::open(dir.path(), options().scan_threads(3)).unwrap();
    let ahead = scan_all(&with, TenantId(1));
    drop(with);
    let without = Db::open(dir.path(), options().scan_threads(0)).unwrap();
    let inline = scan_all(&without, TenantId(1));

    assert_eq!(ahead.len(), N as usize);
    assert_eq!(ahead, inline, "same records, same order");
    let mut keys: Vec<_> = ahead.iter().map(|(k, _)| k.clone()).collect();
    for (k, v) in &ahead {
        let i: u32 = std::str::from_utf8(&k[4..]).unwrap().parse().unwrap();
        assert_eq!(v, &value_of(i), "value of {i}");
    }
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), N as usize, "every key once");

    // The borrowing form hands out the same.
    let mut scan = without.tenant(TenantId(1)).scan().unwrap();
    let mut i = 0;
    while let Some(record) = scan.next_ref() {
        let (k, v) = record.unwrap();
        assert_eq!((k, v), (&inline[i].0[..], &inline[i].1[..]));
        i += 1;
    }
    assert_eq!(i, inline.len());
}

#[test]
fn a_snapshots_scan_sees_its_moment_only_whatever_is_read_ahead() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), options()).unwrap();
    fill(&db, TenantId(1), 4_000);
    let t = db.tenant(TenantId(1));
    let view = t.snapshot().unwrap();
    let mut scan = view.scan().unwrap();
    let first = scan.next().unwrap().unwrap();
    // Changes after the snapshot: overwrite everything, delete some, add.
    for i in 0..4_000 {
        if i % 3 == 0 {
            t.delete(&key_of(i)).unwrap();
        } else {
            t.put(&key_of(i), b"changed").unwrap();
        }
    }
    t.put(b"new", b"after").unwrap();
    let rest: Vec<_> = scan.collect::<strongroom::Result<_>>().unwrap();
    assert_eq!(rest.len() + 1, 4_000);
    for (k, v) in std::iter::once(first).chain(rest) {
        let i: u32 = std::str::from_utf8(&k[4..]).unwrap().parse().unwrap();
        assert_eq!(v, value_of(i));
    }
}

/// What a scan racing a destruction or seal saw.
enum Outcome {
    /// Every record, before the race was run.
    Complete,
    /// Records, then the error.
    Ended(Error),
}

/// Scans tenant 1 (or its subject 9) while `revoke` runs on another thread
/// after `delay`; checks every record handed out is right and that none was
/// handed out by a call that began after `revoke` returned.
fn race(db: &Db, subject: bool, delay: Duration, revoke: impl FnOnce() + Send) -> Outcome {
    let tenant = db.tenant(TenantId(1));
    let mut scan = if subject {
        tenant.subject(SubjectId(9)).scan().unwrap()
    } else {
        tenant.scan().unwrap()
    };
    let revoked = AtomicBool::new(false);
    thread::scope(|s| {
        let revoked = &revoked;
        s.spawn(move || {
            thread::sleep(delay);
            revoke();
            revoked.store(true, Ordering::SeqCst);
        });
        loop {
            let after = revoked.load(Ordering::SeqCst);
            match scan.next_ref() {
                None => return Outcome::Complete,
                Some(Ok((k, v))) => {
                    assert!(!after, "a record handed out after the revocation returned");
                    let i: u32 = std::str::from_utf8(&k[4..]).unwrap().parse().unwrap();
                    assert_eq!(v, &value_of(i)[..]);
                }
                Some(Err(e)) => {
                    assert!(scan.next_ref().is_none(), "a scan ends at its error");
                    return Outcome::Ended(e);
                }
            }
        }
    })
}

fn racing_options() -> Options {
    options().scan_threads(2)
}

/// Racing options with a scan cache that holds the scanned scope.
fn cached_options() -> Options {
    racing_options().scan_cache_bytes(64 << 20)
}

#[test]
fn a_scan_racing_a_shred_ends_with_shredded_or_what_it_read_before() {
    let mut ended = [0; 2];
    for round in 0..24u64 {
        let dir = tempfile::tempdir().unwrap();
        // Every other round scans from the scan cache.
        let cached = round % 2 == 1;
        let options = if cached {
            cached_options()
        } else {
            racing_options()
        };
        let db = Db::open(dir.path(), options).unwrap();
        let subject = round % 3 == 2;
        if subject {
            let s = db.tenant(TenantId(1)).subject(SubjectId(9));
            for chunk in (0..20_000).collect::<Vec<u32>>().chunks(500) {
                let mut batch = strongroom::WriteBatch::new();
                for &i in chunk {
                    batch.put(key_of(i), value_of(i));
                }
                s.write(batch).unwrap();
            }
        } else {
            fill(&db, TenantId(1), 20_000);
        }
        let delay = Duration::from_micros(500 * (round / 2 % 6));
        if cached {
            let tenant = db.tenant(TenantId(1));
            let warm = if subject {
                tenant.subject(SubjectId(9)).scan().unwrap().count()
            } else {
                tenant.scan().unwrap().count()
            };
            assert_eq!(warm, 20_000);
        }
        let served = db.scan_cache_stats().served;
        let outcome = race(&db, subject, delay, || {
            let tenant = db.tenant(TenantId(1));
            if subject {
                tenant
                    .shred_subject(SubjectId(9), ShredOptions::immediate())
                    .unwrap();
            } else {
                db.shred_tenant(TenantId(1), ShredOptions::immediate())
                    .unwrap();
            }
        });
        assert_eq!(
            db.scan_cache_stats().served,
            served + u64::from(cached),
            "round {round}: served from the cache if and only if it is on"
        );
        if let Outcome::Ended(e) = outcome {
            assert!(matches!(e, Error::Shredded { .. }), "round {round}: {e}");
            ended[usize::from(cached)] += 1;
        }
    }
    assert!(ended[0] > 0, "some shred landed during a scan");
    assert!(ended[1] > 0, "some shred landed during a cached scan");
}

#[test]
fn a_scan_racing_a_seal_ends_with_sealed_and_a_cancel_lets_a_new_scan_read_all() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), racing_options()).unwrap();
    fill(&db, TenantId(1), 20_000);
    let mut ended = 0;
    for round in 0..6u64 {
        let delay = Duration::from_micros(700 * round);
        let outcome = race(&db, false, delay, || {
            db.shred_tenant(
                TenantId(1),
                ShredOptions::with_grace(Duration::from_secs(3600)),
            )
            .unwrap();
        });
        if let Outcome::Ended(e) = outcome {
            assert!(matches!(e, Error::Sealed { .. }), "round {round}: {e}");
            ended += 1;
        }
        assert!(db.cancel_shred_tenant(TenantId(1)).unwrap());
        assert_eq!(scan_all(&db, TenantId(1)).len(), 20_000);
    }
    assert!(ended > 0, "some seal landed during a scan");
}

#[test]
fn a_record_that_does_not_open_ends_the_scan_there_with_every_record_before_it() {
    use strongroom::format::{STORE_DIR, STORE_NS_DATA};
    let dir = tempfile::tempdir().unwrap();
    {
        let db = Db::open(dir.path(), options()).unwrap();
        fill(&db, TenantId(1), 5_000);
    }
    // The record 3,000th in token order (several batches in, so opened
    // ahead on a pool thread) gets one byte of its ciphertext flipped.
    const BAD: usize = 3_000;
    {
        let store = rocksdb::DB::open_default(dir.path().join(STORE_DIR)).unwrap();
        let mut prefix = vec![STORE_NS_DATA];
        prefix.extend_from_slice(&1u64.to_be_bytes());
        let (key, mut value) = store
            .prefix_iterator(&prefix)
            .map(Result::unwrap)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .nth(BAD)
            .map(|(k, v)| (k.to_vec(), v.to_vec()))
            .unwrap();
        let last = value.len() - 20;
        value[last] ^= 0x40;
        store.put(&key, &value).unwrap();
        store.flush().unwrap();
    }
    for threads in [0, 2] {
        let db = Db::open(dir.path(), options().scan_threads(threads)).unwrap();
        let mut scan = db.tenant(TenantId(1)).scan().unwrap();
        let mut good = 0;
        let error = loop {
            match scan
                .next()
                .expect("the scan ends with the error, not before")
            {
                Ok((k, v)) => {
                    let i: u32 = std::str::from_utf8(&k[4..]).unwrap().parse().unwrap();
                    assert_eq!(v, value_of(i));
                    good += 1;
                }
                Err(e) => break e,
            }
        };
        assert_eq!(
            good, BAD,
            "{threads} threads: every record before the bad one"
        );
        assert!(
            matches!(
                error,
                Error::Corruption {
                    kind: strongroom::CorruptionKind::RecordAuth,
                    ..
                }
            ),
            "{error}"
        );
        assert!(scan.next().is_none(), "nothing after the error");
    }
}
