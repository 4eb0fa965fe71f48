//! Nonces of sealed records: a random 128-bit prefix drawn when a database
//! opens, then a 64-bit counter.
//!
//! This is the deterministic nonce construction of NIST SP 800-38D §8.2.1 (a
//! fixed field, then an invocation field) at XChaCha20-Poly1305's 192 bits.
//! Inside one open database the counter makes every nonce distinct; across
//! opens (restarts, other databases, other processes) the random prefixes
//! do, a pair of them repeating with odds of 2^-128. Like a random nonce it
//! keeps no state that a crash could lose: every open draws a new prefix.
//! What it saves is a `getrandom` system call per record (0.36 µs on the
//! bench machine, more than sealing 256 bytes).
//!
//! The prefix goes into HChaCha20 and the counter into the 96-bit IETF
//! nonce, so within an open a scope key derives one ChaCha20-Poly1305
//! subkey and counts nonces under it, as RFC 8439 intends.
//!
//! # Fork
//! A process forked from the one that opened the database inherits the
//! prefix and the counter: its nonces would repeat its parent's. Sealed
//! records reach the disk only through the commit path, and that refuses to
//! write from any process but the opener ([`crate::Error::Forked`]), so the
//! repeats never leave memory. Wrapped keys, written elsewhere, take fresh
//! random nonces ([`super::aead::seal_random`]).

use std::sync::atomic::{AtomicU64, Ordering};

use super::fill_random;
use crate::format::NONCE_LEN;

/// Bytes of the random prefix.
const PREFIX_LEN: usize = NONCE_LEN - 8;

/// Hands out the nonces of one open database's sealed records.
pub(crate) struct NonceSource {
    prefix: [u8; PREFIX_LEN],
    counter: AtomicU64,
}

impl NonceSource {
    /// A source with a fresh random prefix.
    pub(crate) fn new() -> NonceSource {
        let mut prefix = [0u8; PREFIX_LEN];
        fill_random(&mut prefix);
        NonceSource {
            prefix,
            counter: AtomicU64::new(0),
        }
    }

    /// The next nonce, never handed out before by this source.
    ///
    /// # Panics
    /// After 2^64 - 1 nonces (centuries at any rate a disk can take), rather
    /// than wrap around to a used one.
    pub(crate) fn next(&self) -> [u8; NONCE_LEN] {
        let count = self.counter.fetch_add(1, Ordering::Relaxed);
        assert!(
            count < u64::MAX,
            "nonce counter exhausted: reopen the database"
        );
        let mut nonce = [0u8; NONCE_LEN];
        nonce[..PREFIX_LEN].copy_from_slice(&self.prefix);
        nonce[PREFIX_LEN..].copy_from_slice(&count.to_le_bytes());
        nonce
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn nonces_of_one_source_never_repeat_and_sources_differ() {
        let a = NonceSource::new();
        let b = NonceSource::new();
        let mut seen = HashSet::new();
        for _ in 0..10_000 {
            assert!(seen.insert(a.next()));
            assert!(seen.insert(b.next()));
        }
        assert_ne!(a.next()[..PREFIX_LEN], b.next()[..PREFIX_LEN]);
    }

    #[test]
    fn threads_sharing_a_source_get_distinct_nonces() {
        let source = NonceSource::new();
        let all: Vec<Vec<[u8; NONCE_LEN]>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|_| s.spawn(|| (0..5_000).map(|_| source.next()).collect()))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let distinct: HashSet<_> = all.iter().flatten().collect();
        assert_eq!(distinct.len(), 20_000);
    }
}
