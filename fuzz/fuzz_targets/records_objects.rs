//! The record layer's stored objects (records/src): audit entries and head,
//! subject entries, identifiers, records, consent ledgers, aggregate
//! releases, the sweep mark and the tenant's meta, and the JSON of a
//! tenant's configuration and members; the first byte picks the object.
//! What decodes must re-encode to the same bytes (a record, and the JSON,
//! to the same value). See `strongroom_records::fuzzing::decode_objects`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| strongroom_records::fuzzing::decode_objects(data));
