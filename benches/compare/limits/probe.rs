//! The physical limits of this machine: what XChaCha20-Poly1305 costs for
//! one record, and how long the data directory's disk takes to make a write
//! durable.

use std::fs::OpenOptions;
use std::hint::black_box;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};

use rand::Rng;
use strongroom::format::{
    MAC_LEN, PAYLOAD_HEADER_LEN, PUT_ENTRY_OVERHEAD, RECORD_HEADER_LEN, ZSTD_LEVEL,
};

use crate::workload::percentile;

/// The bench's user keys are 16 bytes.
const USER_KEY: usize = 16;
/// A sealed record's plaintext beyond the value: a flags byte, the key's
/// length and the key (see `src/crypto/record.rs`).
const RECORD_HEADER: usize = RECORD_HEADER_LEN + USER_KEY;
/// The record AAD's length: domain, tenant, kind, subject, token, version.
const RECORD_AAD: usize = 16 + 8 + 1 + 8 + 16 + 4;

/// Cost of sealing and opening one record of a value size, CPU
/// nanoseconds of the calling thread (so that other processes on a shared
/// machine do not inflate it).
#[derive(Debug, Clone, Copy)]
pub struct AeadCost {
    /// The `chacha20poly1305` crate.
    pub reference_seal_ns: f64,
    pub reference_open_ns: f64,
    /// strongroom's own AEAD (`strongroom::aead`, what the engine calls).
    pub strongroom_seal_ns: f64,
    pub strongroom_open_ns: f64,
}

/// Seals and opens records shaped like strongroom's (a 21-byte header
/// before the value, 57 bytes of AAD, a new nonce per seal from a counter as
/// the engine's are, a new plaintext Vec per open), with the
/// `chacha20poly1305` crate (the RustCrypto reference, a cipher built per
/// record) and with strongroom's own AEAD.
pub fn aead_cost(value_len: usize, duration: Duration) -> AeadCost {
    let key = [7u8; 32];
    let aad = [1u8; RECORD_AAD];
    let plaintext = vec![0x5a; RECORD_HEADER + value_len];
    let mut buf = plaintext.clone();
    let mut count = 0u64;
    let reference_seal_ns = cpu_ns_per_call(duration, || {
        count += 1;
        let mut nonce = [3u8; 24];
        nonce[16..].copy_from_slice(&count.to_le_bytes());
        buf.copy_from_slice(&plaintext);
        let cipher = XChaCha20Poly1305::new(Key::from_slice(&key));
        let tag = cipher
            .encrypt_in_place_detached(XNonce::from_slice(&nonce), &aad, &mut buf)
            .expect("seal");
        black_box(tag);
    });
    let nonce = [9u8; 24];
    let mut sealed = plaintext.clone();
    let tag = XChaCha20Poly1305::new(Key::from_slice(&key))
        .encrypt_in_place_detached(XNonce::from_slice(&nonce), &aad, &mut sealed)
        .expect("seal");
    let reference_open_ns = cpu_ns_per_call(duration, || {
        let mut out = sealed.clone();
        let cipher = XChaCha20Poly1305::new(Key::from_slice(&key));
        cipher
            .decrypt_in_place_detached(XNonce::from_slice(&nonce), &aad, &mut out, &tag)
            .expect("open");
        black_box(out);
    });
    let mut out = Vec::with_capacity(plaintext.len() + 40);
    let strongroom_seal_ns = cpu_ns_per_call(duration, || {
        out.clear();
        strongroom::aead::seal(&key, &aad, &plaintext, &mut out);
        black_box(&out);
    });
    let strongroom_open_ns = cpu_ns_per_call(duration, || {
        let opened = strongroom::aead::open(&key, &aad, &out).expect("open");
        black_box(opened);
    });
    AeadCost {
        reference_seal_ns,
        reference_open_ns,
        strongroom_seal_ns,
        strongroom_open_ns,
    }
}

/// The keyed BLAKE3 every record pays besides its seal, CPU nanoseconds of
/// the calling thread.
#[derive(Debug, Clone, Copy)]
pub struct HashCost {
    /// The token: keyed BLAKE3 of a 16-byte user key (puts and point reads).
    pub token_ns: f64,
    /// The frame MAC of a one-record frame (puts).
    pub frame_mac_ns: f64,
}

/// What the frame MAC hashes beyond the value, for one put of a 16-byte
/// key: the previous MAC and the length (4), then the payload: its header,
/// and the put entry with its sealed record (171 bytes in all). See
/// `src/wal/frame.rs` and `src/wal/entry.rs`.
pub const MAC_INPUT_BEYOND_VALUE: usize =
    MAC_LEN + 4 + PAYLOAD_HEADER_LEN + PUT_ENTRY_OVERHEAD + USER_KEY;
const _: () = assert!(MAC_INPUT_BEYOND_VALUE == 171);

/// Hashes as strongroom does for one put of a value of `value_len` bytes.
pub fn hash_cost(value_len: usize, duration: Duration) -> HashCost {
    let key = [5u8; 32];
    let user_key = [6u8; 16];
    let token_ns = cpu_ns_per_call(duration, || {
        black_box(blake3::keyed_hash(&key, black_box(&user_key)));
    });
    let input = vec![0x3c; MAC_INPUT_BEYOND_VALUE + value_len];
    // One contiguous input, as `src/wal/frame.rs` hashes a frame.
    let frame_mac_ns = cpu_ns_per_call(duration, || {
        black_box(blake3::keyed_hash(&key, black_box(&input)));
    });
    HashCost {
        token_ns,
        frame_mac_ns,
    }
}

/// CPU nanoseconds of a zstd attempt as strongroom makes one on a record
/// body over its compression threshold (`src/crypto/record.rs`): one
/// compressor per thread, at `ZSTD_LEVEL`, into a buffer smaller than the
/// body so that zstd gives up as soon as it cannot shrink it. The body here
/// is random, as the bench's values are, so the attempt fails (strongroom's
/// sampling check skips it for such values; this is what it saves).
pub fn zstd_attempt_ns(value_len: usize, duration: Duration) -> f64 {
    let mut body = vec![0u8; 4 + 16 + value_len];
    rand::rng().fill(&mut body[..]);
    let mut compressor = zstd::bulk::Compressor::new(ZSTD_LEVEL).expect("zstd");
    let mut out = vec![0u8; body.len() - 1];
    cpu_ns_per_call(duration, || {
        black_box(compressor.compress_to_buffer(&body, &mut out[..]).is_ok());
    })
}

/// CPU time of the calling thread, nanoseconds.
fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec for the call to fill.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Runs `f` for about `duration` of this thread's CPU time; returns CPU
/// nanoseconds per call.
fn cpu_ns_per_call(duration: Duration, mut f: impl FnMut()) -> f64 {
    // Batches of ~1 ms, so the clock is read rarely.
    let mut batch = 1u64;
    loop {
        let start = thread_cpu_ns();
        for _ in 0..batch {
            f();
        }
        if thread_cpu_ns() - start >= 1_000_000 || batch >= 1 << 20 {
            break;
        }
        batch *= 2;
    }
    let budget = duration.as_nanos() as u64;
    let (mut calls, start) = (0u64, thread_cpu_ns());
    while thread_cpu_ns() - start < budget {
        for _ in 0..batch {
            f();
        }
        calls += batch;
    }
    (thread_cpu_ns() - start) as f64 / calls as f64
}

/// What an fdatasync probe saw, nanoseconds.
#[derive(Debug, Clone, Copy)]
pub struct Fsync {
    pub write_bytes: usize,
    pub p50_ns: f64,
    pub p99_ns: f64,
    /// The mean: what bounds a throughput.
    pub mean_ns: f64,
}

/// Writes `write_bytes` after the previous write in `dir` and fdatasyncs it
/// (what a log commit does), again and again for `duration`, with a thread
/// spinning on each other core while it runs if `awake`. The writes go over
/// zeros written and synced beforehand: the cheapest durable write this file
/// system offers (the fdatasync has data to flush and no metadata to
/// commit). An append, which must also commit the file's new size, takes
/// 1.4-1.7x as long here; that is what RocksDB's WAL pays.
///
/// Why `awake`: on a virtual machine whose cores are otherwise idle, the
/// wake-up after the I/O can cost a scheduler tick (4 ms was seen here),
/// which the engines' multi-threaded workloads, their cores busy, never
/// pay. The disk's own latency is the awake figure.
pub fn fdatasync_latency(dir: &Path, write_bytes: usize, duration: Duration, awake: bool) -> Fsync {
    let stop = AtomicBool::new(false);
    let spinners = if awake {
        std::thread::available_parallelism().map_or(1, |n| n.get()) - 1
    } else {
        0
    };
    std::thread::scope(|s| {
        for _ in 0..spinners {
            s.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    std::hint::spin_loop();
                }
            });
        }
        let f = fdatasync_loop(dir, write_bytes, duration);
        stop.store(true, Ordering::Relaxed);
        f
    })
}

fn fdatasync_loop(dir: &Path, write_bytes: usize, duration: Duration) -> Fsync {
    let path = dir.join(format!("fdatasync-probe-{write_bytes}"));
    let file = OpenOptions::new()
        .create_new(true)
        .write(true)
        .open(&path)
        .expect("create the fdatasync probe");
    const ZEROED: u64 = 16 << 20;
    let zeros = vec![0u8; 1 << 20];
    for at in (0..ZEROED).step_by(zeros.len()) {
        file.write_all_at(&zeros, at).expect("zero-fill the probe");
    }
    file.sync_all().expect("sync the probe's zeros");
    let buf = vec![0xa5u8; write_bytes];
    let mut samples = Vec::new();
    let mut at = 0;
    let start = Instant::now();
    while start.elapsed() < duration || samples.len() < 20 {
        if at + buf.len() as u64 > ZEROED {
            at = 0;
        }
        let t = Instant::now();
        file.write_all_at(&buf, at).expect("write");
        file.sync_data().expect("fdatasync");
        samples.push(t.elapsed().as_nanos() as u64);
        at += buf.len() as u64;
    }
    drop(file);
    std::fs::remove_file(&path).expect("remove the probe");
    samples.sort_unstable();
    Fsync {
        write_bytes,
        p50_ns: percentile(&samples, 0.50),
        p99_ns: percentile(&samples, 0.99),
        mean_ns: samples.iter().sum::<u64>() as f64 / samples.len() as f64,
    }
}

/// The device and file system holding `path`, from /proc/mounts.
pub fn file_system_of(path: &Path) -> String {
    let path = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    mounts
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (device, point, kind) = (fields.next()?, fields.next()?, fields.next()?);
            path.starts_with(point).then(|| {
                (
                    point.len(),
                    format!("{device} ({kind}, mounted on {point})"),
                )
            })
        })
        .max_by_key(|(len, _)| *len)
        .map_or_else(|| "unknown".to_string(), |(_, what)| what)
}
