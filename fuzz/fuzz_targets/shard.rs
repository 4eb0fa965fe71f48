//! Keyring shards (src/crypto/keyring/shard.rs), opened by the real keyring.
//! See `strongroom::fuzzing::shard`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| strongroom::fuzzing::shard(data));
