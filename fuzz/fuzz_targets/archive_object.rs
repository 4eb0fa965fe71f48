//! Sealed archive objects (src/archive/object.rs): opened; sealed then
//! opened; sealed, damaged, and refused. See
//! `strongroom::fuzzing::archive_object`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| strongroom::fuzzing::archive_object(data));
