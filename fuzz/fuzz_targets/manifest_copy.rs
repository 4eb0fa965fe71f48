//! The keyring manifest's copy in an archive (src/ship/keys.rs), opened
//! with the master key alone: as it is, or made from a repaired manifest
//! file, or with a key block that differs from it. See
//! `strongroom::fuzzing::manifest_copy`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| strongroom::fuzzing::manifest_copy(data));
