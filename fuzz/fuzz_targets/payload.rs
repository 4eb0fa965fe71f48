//! A frame's payload (src/wal/frame.rs, src/wal/entry.rs): its header and
//! entries, which must re-encode to the same bytes.
//! See `strongroom::fuzzing::payload`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| strongroom::fuzzing::payload(data));
