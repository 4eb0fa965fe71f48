//! The AEAD alone: strongroom's XChaCha20-Poly1305 (RustCrypto's HChaCha20
//! and ring's ChaCha20-Poly1305) against the reference `chacha20poly1305`
//! crate, sealing and opening 256-byte and 4-KiB records, in the same run.
//!
//! `cargo bench --bench aead`

use std::hint::black_box;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const KEY: [u8; 32] = [7; 32];
const AAD: &[u8] = b"tenant 1 | scope 0 | token ................ | v1";
const SIZES: [usize; 2] = [256, 4096];

fn seal(c: &mut Criterion) {
    for size in SIZES {
        let mut group = c.benchmark_group(format!("seal/{size}"));
        group.throughput(Throughput::Bytes(size as u64));
        let plaintext = vec![0x42u8; size];
        group.bench_function("strongroom", |b| {
            let mut out = Vec::with_capacity(size + 40);
            b.iter(|| {
                out.clear();
                strongroom::aead::seal(&KEY, AAD, black_box(&plaintext), &mut out);
                black_box(&out);
            })
        });
        group.bench_function("chacha20poly1305", |b| {
            let nonce = [9u8; 24];
            b.iter(|| {
                // A fresh cipher per record, as for a record sealed under
                // its scope's key: the key setup is part of the cost.
                let cipher = XChaCha20Poly1305::new((&KEY).into());
                let payload = Payload {
                    msg: black_box(&plaintext[..]),
                    aad: AAD,
                };
                black_box(cipher.encrypt(XNonce::from_slice(&nonce), payload).unwrap())
            })
        });
        group.finish();
    }
}

fn open(c: &mut Criterion) {
    for size in SIZES {
        let mut group = c.benchmark_group(format!("open/{size}"));
        group.throughput(Throughput::Bytes(size as u64));
        let mut sealed = Vec::new();
        strongroom::aead::seal(&KEY, AAD, &vec![0x42u8; size], &mut sealed);
        group.bench_function("strongroom", |b| {
            b.iter(|| black_box(strongroom::aead::open(&KEY, AAD, black_box(&sealed)).unwrap()))
        });
        group.bench_function("chacha20poly1305", |b| {
            b.iter(|| {
                let cipher = XChaCha20Poly1305::new((&KEY).into());
                let payload = Payload {
                    msg: black_box(&sealed[24..]),
                    aad: AAD,
                };
                black_box(
                    cipher
                        .decrypt(XNonce::from_slice(&sealed[..24]), payload)
                        .unwrap(),
                )
            })
        });
        group.finish();
    }
}

criterion_group!(benches, seal, open);
criterion_main!(benches);
