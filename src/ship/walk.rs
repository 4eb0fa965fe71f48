//! Walks the frames of a run of segment bytes, checking each one's CRC and
//! its link in the MAC chain: what the shipper reads before it puts a piece.

use crate::crypto::SecretKey;
use crate::format::PAYLOAD_HEADER_LEN;
use crate::wal::frame::{self, Mac, PayloadHeader};

/// One frame found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Step {
    pub(crate) lsn: u64,
    /// Offset just past the frame, in the bytes walked.
    pub(crate) end: usize,
    pub(crate) mac: Mac,
}

/// Why a walk stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    /// The next frame is past the LSN limit.
    Limit,
    /// Nothing but zeros follows, or nothing at all: no frame was written
    /// there yet.
    End,
    /// The bytes there are not a whole frame, or not the next link of the
    /// chain: cut by the read window, being written, or damaged. At `at`.
    Unreadable { at: usize },
}

/// Frames from the start of `bytes`, the first linked to `prev_mac`, up to
/// and including LSN `limit`.
pub(crate) fn walk(
    mac_key: &SecretKey,
    bytes: &[u8],
    prev_mac: &Mac,
    limit: u64,
) -> (Vec<Step>, Stop) {
    let mut steps: Vec<Step> = Vec::new();
    let mut at = 0;
    let mut mac = *prev_mac;
    loop {
        if steps.last().is_some_and(|s| s.lsn >= limit) {
            return (steps, Stop::Limit);
        }
        let rest = &bytes[at..];
        if rest.iter().all(|&b| b == 0) {
            return (steps, Stop::End);
        }
        let Ok(raw) = frame::parse(rest) else {
            return (steps, Stop::Unreadable { at });
        };
        let header = PayloadHeader::decode(raw.payload).expect("parse checked the payload length");
        let expected = steps.last().map(|s| s.lsn + 1);
        if frame::mac(mac_key, &mac, raw.payload) != *raw.mac
            || expected.is_some_and(|lsn| lsn != header.lsn)
            || raw.payload.len() < PAYLOAD_HEADER_LEN
        {
            return (steps, Stop::Unreadable { at });
        }
        if header.lsn > limit {
            return (steps, Stop::Limit);
        }
        mac = *raw.mac;
        at += raw.len;
        steps.push(Step {
            lsn: header.lsn,
            end: at,
            mac,
        });
    }
}
