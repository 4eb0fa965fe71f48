//! Helpers shared by the integration tests: reading the documented on-disk
//! format from the outside, as a stranger with docs/FORMAT.md would.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use strongroom::format::{FRAME_HEADER_LEN, MAC_LEN, SEGMENT_HEADER_LEN};
use strongroom::{Db, Options};

pub mod garage;

/// Waits until `done` holds, checking every `poll`, for at most 20 s (then
/// fails, saying `what` did not happen): for background work (shipping,
/// backups) whose moment the test does not choose.
pub fn wait_until(what: &str, poll: std::time::Duration, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "{what} did not happen within 20 s"
        );
        std::thread::sleep(poll);
    }
}

pub const KEY: [u8; 32] = [0x5a; 32];

pub fn options() -> Options {
    Options::with_key(KEY)
}

pub fn open(dir: &Path) -> Db {
    Db::open(dir, options()).expect("open")
}

/// Every file under `dir`, recursively, sorted.
pub fn all_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        if path.is_dir() {
            for entry in std::fs::read_dir(&path).unwrap() {
                stack.push(entry.unwrap().path());
            }
        } else {
            files.push(path);
        }
    }
    files.sort();
    files
}

/// Copies folder `from` to `to`, recursively.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Every file's bytes, by path.
pub fn snapshot_files(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    all_files(dir)
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect()
}

/// The log segments, in LSN order.
pub fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut s: Vec<_> = std::fs::read_dir(dir.join("wal"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .collect();
    s.sort();
    s
}

/// (offset, total length) of every frame of a segment's bytes. Frames end
/// at the file's end or where only zeros follow (the writer zero-fills ahead).
pub fn frames(segment: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut at = SEGMENT_HEADER_LEN;
    while at + FRAME_HEADER_LEN <= segment.len() && segment[at..].iter().any(|&b| b != 0) {
        let len = u32::from_le_bytes(segment[at..at + 4].try_into().unwrap()) as usize;
        let total = FRAME_HEADER_LEN + len + MAC_LEN;
        assert!(at + total <= segment.len(), "frames end at the file's end");
        out.push((at, total));
        at += total;
    }
    out
}

/// A segment's bytes up to the end of its last frame, without the zeros the
/// writer fills ahead.
pub fn frames_only(segment: &[u8]) -> Vec<u8> {
    let end = frames(segment)
        .last()
        .map_or(SEGMENT_HEADER_LEN, |(at, len)| at + len);
    segment[..end].to_vec()
}

/// Recomputes the CRC of the frame at `at` (as an attacker without the key can).
pub fn fix_crc(segment: &mut [u8], at: usize) {
    let len = u32::from_le_bytes(segment[at..at + 4].try_into().unwrap()) as usize;
    let mut crc = crc32fast::Hasher::new();
    crc.update(&segment[at..at + 4]);
    crc.update(&segment[at + FRAME_HEADER_LEN..at + FRAME_HEADER_LEN + len + MAC_LEN]);
    let crc = crc.finalize().to_le_bytes();
    segment[at + 4..at + 8].copy_from_slice(&crc);
}
