//! Frames (src/wal/frame.rs): parsed back to back as the log reader does,
//! or a payload framed and parsed back.
//! See `strongroom::fuzzing::frame`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| strongroom::fuzzing::frame(data));
