//! Log recovery (src/wal/segment.rs, reader.rs, writer.rs): segments read by
//! the real reader, the torn tail cut, one frame appended, and read again.
//! See `strongroom::fuzzing::recovery`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| strongroom::fuzzing::recovery(data));
