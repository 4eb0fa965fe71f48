//! Backup manifests (src/ship/backup.rs), decoded; what decodes re-encodes
//! to the same bytes. See `strongroom::fuzzing::backup_manifest`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| strongroom::fuzzing::backup_manifest(data));
