//! The record of a restore in progress (src/restore/marker.rs): decoded;
//! what decodes round trips. See `strongroom::fuzzing::restore_marker`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| strongroom::fuzzing::restore_marker(data));
