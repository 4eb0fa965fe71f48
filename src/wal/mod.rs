//! The write-ahead log: strongroom's source of truth.
//!
//! Segment files of CRC-framed, MAC-chained frames, one committed batch
//! each. `segment.rs` and `frame.rs` and `entry.rs` are the codecs,
//! `writer.rs` appends and syncs, `reader.rs` verifies and reads back.

pub(crate) mod entry;
pub(crate) mod frame;
pub(crate) mod reader;
pub(crate) mod segment;
pub(crate) mod writer;

pub(crate) use reader::{LogFrame, LogSummary, read_log, read_piece};
pub(crate) use writer::{EncodedBatch, LogWriter, SegmentOptions};
