//! The keyring manifest (src/crypto/keyring/manifest.rs).
//! See `strongroom::fuzzing::manifest`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| strongroom::fuzzing::manifest(data));
