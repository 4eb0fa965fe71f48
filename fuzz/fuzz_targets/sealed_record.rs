//! Sealed records (src/crypto/record.rs): opened, and sealed then opened.
//! See `strongroom::fuzzing::sealed_record`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| strongroom::fuzzing::sealed_record(data));
