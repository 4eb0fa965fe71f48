//! A verify's state object (src/restore/verify.rs): decoded; what decodes
//! round trips. See `strongroom::fuzzing::verify_state`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| strongroom::fuzzing::verify_state(data));
