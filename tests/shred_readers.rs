//! A shred reaches every reader from the moment it returns: snapshots,
//! subject snapshots and scans opened before it read nothing of the scope
//! after it; a seal refuses them the same way and a cancel lets them read
//! again; concurrent readers never return data that a returned shred
//! destroyed.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use common::{open, options};
use strongroom::{Db, Error, ManualClock, ShredOptions, SubjectId, TenantId};

fn is_shredded<T: std::fmt::Debug>(result: strongroom::Result<T>) -> bool {
    matches!(result, Err(Error::Shredded { .. }))
}

fn is_sealed<T: std::fmt::Debug>(result: strongroom::Result<T>, deadline: u64) -> bool {
    matches!(result, Err(Error::Sealed { deadline_us, .. }) if deadline_us == deadline)
}

#[test]
fn readers_opened_before_an_immediate_shred_read_nothing_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let tenant = db.tenant(TenantId(1));
    for i in 0..10 {
        tenant.put(format!("k{i}").as_bytes(), b"tenant").unwrap();
    }
    let subject = tenant.subject(SubjectId(5));
    subject.put(b"secret", b"of subject 5").unwrap();

    let tenant_view = tenant.snapshot().unwrap();
    let subject_view = subject.snapshot().unwrap();
    let subject_in_tenant_view = tenant_view.subject(SubjectId(5)).unwrap();
    let mut scan = tenant.scan().unwrap();
    let mut subject_scan = subject.scan().unwrap();
    assert!(scan.next().unwrap().is_ok(), "the scan reads before");
    assert_eq!(
        subject_view.get(b"secret").unwrap().as_deref(),
        Some(&b"of subject 5"[..])
    );

    tenant
        .shred_subject(SubjectId(5), ShredOptions::immediate())
        .unwrap();
    assert!(is_shredded(subject_view.get(b"secret")));
    assert!(is_shredded(subject_in_tenant_view.get(b"secret")));
    assert!(is_shredded(subject_scan.next().unwrap()));
    assert!(is_shredded(subject_view.scan().unwrap().next().unwrap()));
    // The tenant's own scope is live: its views read on.
    assert_eq!(
        tenant_view.get(b"k1").unwrap().as_deref(),
        Some(&b"tenant"[..])
    );
    assert!(scan.next().unwrap().is_ok());

    db.shred_tenant(TenantId(1), ShredOptions::immediate())
        .unwrap();
    assert!(is_shredded(tenant_view.get(b"k1")));
    assert!(is_shredded(scan.next().unwrap()));
    assert!(is_shredded(tenant_view.scan().unwrap().next().unwrap()));
    assert!(is_shredded(
        tenant_view.subject(SubjectId(6)).and_then(|s| s.get(b"x"))
    ));
}

#[test]
fn a_seal_refuses_readers_a_cancel_restores_them_and_its_deadline_ends_them() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::starting_now());
    let db = Db::open(dir.path(), options().clock(clock.clone())).unwrap();
    let tenant = db.tenant(TenantId(1));
    tenant.put(b"k", b"v").unwrap();
    let subject = tenant.subject(SubjectId(5));
    subject.put(b"s", b"subject").unwrap();
    let view = tenant.snapshot().unwrap();
    let subject_view = subject.snapshot().unwrap();
    let mut scan = tenant.scan().unwrap();

    let hour = Duration::from_secs(3600);
    let state = db
        .shred_tenant(TenantId(1), ShredOptions::with_grace(hour))
        .unwrap();
    let strongroom::ScopeState::Sealed { deadline_us } = state else {
        panic!("sealed, not {state:?}")
    };
    assert!(is_sealed(view.get(b"k"), deadline_us));
    assert!(is_sealed(scan.next().unwrap(), deadline_us));
    // A subject of a sealed tenant is sealed too.
    assert!(is_sealed(subject_view.get(b"s"), deadline_us));

    assert!(db.cancel_shred_tenant(TenantId(1)).unwrap());
    assert_eq!(view.get(b"k").unwrap().as_deref(), Some(&b"v"[..]));
    assert_eq!(
        subject_view.get(b"s").unwrap().as_deref(),
        Some(&b"subject"[..])
    );

    let state = tenant
        .shred_subject(SubjectId(5), ShredOptions::with_grace(hour))
        .unwrap();
    let strongroom::ScopeState::Sealed { deadline_us } = state else {
        panic!("sealed, not {state:?}")
    };
    assert!(is_sealed(subject_view.get(b"s"), deadline_us));
    assert_eq!(view.get(b"k").unwrap().as_deref(), Some(&b"v"[..]));
    clock.advance(hour + Duration::from_secs(1));
    db.run_maintenance().unwrap();
    assert!(is_shredded(subject_view.get(b"s")));
    assert_eq!(view.get(b"k").unwrap().as_deref(), Some(&b"v"[..]));
}

/// Readers loop on a scope while a shred runs: no read that started after
/// the shred returned ever returns the scope's data.
#[test]
fn concurrent_readers_never_read_after_the_shred_returned() {
    const READERS: usize = 3;
    const ROUNDS: u64 = 40;
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let origin = Instant::now();
    let mut reads_after = 0u64;
    for round in 0..ROUNDS {
        let tenant = db.tenant(TenantId(round + 1));
        tenant.put(b"k", b"v").unwrap();
        let subject = tenant.subject(SubjectId(7));
        subject.put(b"k", b"v").unwrap();
        // 0 until the shred returns, then when it returned (ns since origin).
        let returned_ns = AtomicU64::new(0);
        let done = AtomicBool::new(false);
        let start = Barrier::new(READERS + 1);
        std::thread::scope(|s| {
            let mut readers = Vec::new();
            for r in 0..READERS {
                let (tenant, returned_ns, done, start) = (&tenant, &returned_ns, &done, &start);
                readers.push(s.spawn(move || {
                    // One reader through a snapshot taken before, one
                    // through a scan, one through live gets of the subject.
                    let view = tenant.snapshot().unwrap();
                    let subject_view = view.subject(SubjectId(7)).unwrap();
                    start.wait();
                    let mut late = 0u64;
                    while !done.load(Ordering::SeqCst) {
                        let began = origin.elapsed().as_nanos() as u64;
                        let read = match r {
                            0 => subject_view.get(b"k"),
                            1 => tenant
                                .subject(SubjectId(7))
                                .scan()
                                .and_then(|mut s| s.next().transpose())
                                .map(|kv| kv.map(|(_, v)| v)),
                            _ => tenant.subject(SubjectId(7)).get(b"k"),
                        };
                        let shred_returned = returned_ns.load(Ordering::SeqCst);
                        if let Ok(Some(_)) = read {
                            assert!(
                                shred_returned == 0 || began < shred_returned,
                                "reader {r} read data after the shred returned"
                            );
                        } else if shred_returned != 0 && began > shred_returned {
                            late += 1;
                        }
                    }
                    late
                }));
            }
            start.wait();
            std::thread::sleep(Duration::from_micros(200 * (round % 5)));
            tenant
                .shred_subject(SubjectId(7), ShredOptions::immediate())
                .unwrap();
            returned_ns.store(origin.elapsed().as_nanos() as u64, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(2));
            done.store(true, Ordering::SeqCst);
            for reader in readers {
                reads_after += reader.join().unwrap();
            }
        });
    }
    assert!(reads_after > 0, "readers kept reading after the shreds");
    println!("{reads_after} reads after {ROUNDS} shreds returned, none with data");
}
