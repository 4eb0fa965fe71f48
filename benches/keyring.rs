//! What the keyring's operations cost, one durable call each: creating a
//! subject's key (its first put), creating a tenant's keys (its first put),
//! shredding a subject at once, and rotating a tenant's key to the end
//! (`rotate_key` and the maintenance pass that re-seals 100 records, rewraps
//! 10 subject keys and retires the old version).
//!
//! ```sh
//! CARGO_TARGET_DIR=$HOME/.cache/strongroom/target cargo bench --bench keyring
//! ```
//!
//! Each is a handful of fsyncs of small files, so the figures are mostly the
//! disk's sync latency; compare runs of two builds on the same machine, in
//! the same minutes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use strongroom::{Db, Options, ShredOptions, SubjectId, TenantId};

fn open(dir: &std::path::Path) -> Db {
    Db::open(dir, Options::with_key([7; 32])).expect("open")
}

fn keyring(c: &mut Criterion) {
    let mut group = c.benchmark_group("keyring");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(4))
        .warm_up_time(Duration::from_secs(1));
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let next = AtomicU64::new(1);
    let fresh = || next.fetch_add(1, Ordering::Relaxed);

    let tenant = db.tenant(TenantId(1));
    tenant.put(b"k", b"v").unwrap();
    group.bench_function("create_subject_key", |b| {
        b.iter(|| tenant.subject(SubjectId(fresh())).put(b"k", b"v").unwrap())
    });
    group.bench_function("create_tenant_keys", |b| {
        b.iter(|| {
            db.tenant(TenantId(1_000 + fresh()))
                .put(b"k", b"v")
                .unwrap()
        })
    });
    group.bench_function("shred_subject_immediate", |b| {
        b.iter_batched(
            || {
                let subject = SubjectId(fresh());
                tenant.subject(subject).put(b"k", b"v").unwrap();
                subject
            },
            |subject| {
                tenant
                    .shred_subject(subject, ShredOptions::immediate())
                    .unwrap()
            },
            criterion::BatchSize::PerIteration,
        )
    });
    group.bench_function("rotate_tenant_to_the_end", |b| {
        b.iter_batched(
            || {
                let t = db.tenant(TenantId(1_000_000 + fresh()));
                for i in 0..100u32 {
                    t.put(&i.to_le_bytes(), b"value").unwrap();
                }
                for s in 0..10 {
                    t.subject(SubjectId(s)).put(b"k", b"v").unwrap();
                }
                t.id()
            },
            |id| {
                db.tenant(id).rotate_key().unwrap();
                db.run_maintenance().unwrap();
            },
            criterion::BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group!(benches, keyring);
criterion_main!(benches);
