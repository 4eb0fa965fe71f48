//! Keys and random-looking numbers the benches share (each bench includes
//! this file with `#[path]` and uses part of it).
#![allow(dead_code)]

/// SplitMix64's output function: a fixed, well-spread 64-bit mix of `n`
/// (not a secret, only a spread of keys and values across runs).
pub fn splitmix64(n: u64) -> u64 {
    let mut z = n.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The `n`th key: 16 distinct, random-looking bytes (inserts land all over
/// the key space).
pub fn random_key(n: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&splitmix64(n).to_be_bytes());
    k[8..].copy_from_slice(&n.to_be_bytes());
    k
}
