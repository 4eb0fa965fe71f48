//! The seals ledger (src/crypto/keyring/seals.rs), opened by the real keyring.
//! See `strongroom::fuzzing::seals`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| strongroom::fuzzing::seals(data));
