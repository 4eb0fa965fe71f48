//! The log's decoders: frames, payloads, and whole-log recovery.

use super::*;

/// Frames (`wal/frame.rs`). Even mode: frames back to back, parsed as the
/// reader does, each payload decoded. Odd mode: the bytes are a payload; it
/// is framed, and parsing the frame must give it back.
pub fn frame(data: &[u8]) {
    let Some((fix, bytes)) = fixup(data) else {
        return;
    };
    let key = mac_key();
    if fix {
        let mut out = Vec::new();
        let mac = frame::encode(&key, &[0; MAC_LEN], bytes, &mut out);
        match frame::parse(&out) {
            Ok(raw) => {
                assert!(bytes.len() >= PAYLOAD_HEADER_LEN, "a short payload parsed");
                assert_eq!(raw.payload, bytes);
                assert_eq!(raw.mac, &mac);
                assert_eq!(raw.len, out.len());
            }
            Err(e) => assert!(bytes.len() < PAYLOAD_HEADER_LEN, "{e:?}"),
        }
        payload(bytes);
        return;
    }
    let mut at = 0;
    let mut prev_mac = [0; MAC_LEN];
    while let Ok(raw) = frame::parse(&bytes[at..]) {
        assert_eq!(raw.len, raw.payload.len() + FRAME_OVERHEAD);
        assert!(raw.len <= bytes.len() - at);
        if frame::mac(&key, &prev_mac, raw.payload) == *raw.mac {
            prev_mac = *raw.mac;
        }
        payload(raw.payload);
        at += raw.len;
    }
}

/// A frame's payload (`wal/frame.rs`, `wal/entry.rs`): its header, then its
/// entries. Whatever decodes must encode to the same bytes.
pub fn payload(data: &[u8]) {
    let Some(header) = PayloadHeader::decode(data) else {
        assert!(data.len() < PAYLOAD_HEADER_LEN);
        return;
    };
    let mut again = Vec::new();
    header.encode_into(&mut again);
    assert_eq!(again, data[..PAYLOAD_HEADER_LEN]);
    let bytes = &data[PAYLOAD_HEADER_LEN..];
    match entry::decode_all(bytes, header.entry_count) {
        Ok(entries) => {
            assert_eq!(entries.len(), header.entry_count as usize);
            let mut out = Vec::new();
            for e in &entries {
                e.encode_into(&mut out);
                if let Op::Put(sealed) = e.op {
                    let _ = record::key_version(sealed);
                }
            }
            assert_eq!(out, bytes, "entries re-encode to their bytes");
        }
        Err(e) => assert!(e.offset <= bytes.len()),
    }
}

// ---------------------------------------------------------------------------
// Segments and recovery
// ---------------------------------------------------------------------------

/// Log recovery (`wal/segment.rs`, `wal/reader.rs`, and the torn-tail cut
/// of `wal/writer.rs`). The bytes, split before each `SRWALSEG`, are the
/// segments of a log, each named by the first LSN in its header. The real
/// `read_log` reads them with the fixed key; if it succeeds, the real
/// writer opens the log (cutting a torn tail), appends a frame and syncs,
/// and the log must then read back with every frame it had and the new one.
///
/// Odd mode repairs header CRCs, chains each header's `prev_mac` to the
/// segment before, and re-MACs and re-CRCs every frame whose length fits,
/// except a frame whose CRC field is 0, which is left as it is.
pub fn recovery(data: &[u8]) {
    let Some((fix, bytes)) = fixup(data) else {
        return;
    };
    let key = mac_key();
    let dir = base().join(WAL_DIR);
    let fs = MemFs::default();
    fs.add_dir(&dir);
    let mut prev_mac = None;
    let mut name_lsn = 0u64;
    for chunk in split_at_magic(bytes, &SEGMENT_MAGIC) {
        let mut segment = chunk.to_vec();
        if fix {
            fix_segment(&mut segment, &key, &mut prev_mac);
        }
        name_lsn = match segment.get(16..24) {
            Some(lsn) if segment.starts_with(&SEGMENT_MAGIC) => u64_at(lsn, 0),
            _ => name_lsn.wrapping_add(1),
        };
        fs.add_file(&crate::wal::segment::path(&dir, name_lsn), segment);
    }
    let files = Files::new(Arc::new(fs.clone()));
    let Ok((summary, frames)) = read_all(&files, &dir, &key) else {
        return;
    };
    check_summary(&fs, &summary, &frames);
    // The store holds at least what comes before the last segment: the
    // writer starts a segment after a gap only when the store is ahead.
    let store_applied = summary
        .segments
        .last()
        .map_or(0, |s| s.first_lsn.saturating_sub(1));
    let mut writer = match LogWriter::open(
        &files,
        &dir,
        LOG_ID,
        key.clone(),
        crate::wal::SegmentOptions {
            bytes_max: crate::format::SEGMENT_BYTES_MIN,
            zero_fill: true,
        },
        &summary,
        store_applied,
    ) {
        Ok(writer) => writer,
        Err(e) => panic!("the writer could not open a log the reader accepted: {e}"),
    };
    let batch = EncodedBatch::default();
    let lsn = writer
        .append(&[&batch], summary.last_commit_us)
        .expect("append to memory");
    writer.sync().expect("sync to memory");
    drop(writer);
    let (after, frames_after) = match read_all(&files, &dir, &key) {
        Ok(read) => read,
        Err(e) => panic!("the log does not read back after recovery and one append: {e}"),
    };
    assert_eq!(after.torn_tail, None, "a torn tail after recovery");
    assert_eq!(after.last_lsn, lsn);
    assert_eq!(lsn, summary.last_lsn.max(store_applied) + 1);
    assert_eq!(frames_after[..frames_after.len() - 1], frames[..]);
}

/// Reads the log, returning its summary and each frame's (LSN, entries).
pub(super) fn read_all(
    files: &Files,
    dir: &Path,
    key: &SecretKey,
) -> crate::Result<(LogSummary, Vec<(u64, usize)>)> {
    let mut frames = Vec::new();
    let summary = read_log(files, dir, key, &LOG_ID, |f| {
        frames.push((f.header.lsn, f.entries.len()));
        Ok(())
    })?;
    Ok((summary, frames))
}

pub(super) fn check_summary(fs: &MemFs, summary: &LogSummary, frames: &[(u64, usize)]) {
    assert!(frames.windows(2).all(|w| w[0].0 < w[1].0), "LSNs increase");
    assert_eq!(summary.last_lsn, frames.last().map_or(0, |f| f.0));
    for info in &summary.segments {
        let len = fs.len_of(&info.path).expect("a segment read exists");
        assert!(info.valid_len <= len, "valid length past the end");
        if let Some(last) = info.last_lsn {
            assert!(last >= info.first_lsn);
        }
    }
}

/// Repairs a segment's checksums and MACs (see [`recovery`]).
pub(super) fn fix_segment(segment: &mut [u8], key: &SecretKey, prev_mac: &mut Option<Mac>) {
    if segment.len() < SEGMENT_HEADER_LEN {
        return;
    }
    let mac_at = SEGMENT_HEADER_CRC_OFFSET - MAC_LEN;
    match prev_mac {
        Some(mac) => segment[mac_at..SEGMENT_HEADER_CRC_OFFSET].copy_from_slice(mac),
        None => {
            *prev_mac = Some(
                segment[mac_at..SEGMENT_HEADER_CRC_OFFSET]
                    .try_into()
                    .unwrap(),
            )
        }
    }
    put_crc(segment, SEGMENT_HEADER_CRC_OFFSET);
    let mut chain = prev_mac.expect("set above");
    let mut at = SEGMENT_HEADER_LEN;
    while at + FRAME_HEADER_LEN <= segment.len() {
        let len = u32_at(segment, at) as usize;
        let end = at + FRAME_OVERHEAD + len;
        if !(PAYLOAD_HEADER_LEN..=FRAME_PAYLOAD_MAX).contains(&len) || end > segment.len() {
            break;
        }
        if u32_at(segment, at + 4) != 0 {
            let payload_at = at + FRAME_HEADER_LEN;
            let mac = frame::mac(key, &chain, &segment[payload_at..payload_at + len]);
            segment[payload_at + len..end].copy_from_slice(&mac);
            let mut crc = crc32fast::Hasher::new();
            crc.update(&segment[at..at + 4]);
            crc.update(&segment[payload_at..end]);
            segment[at + 4..at + 8].copy_from_slice(&crc.finalize().to_le_bytes());
            chain = mac;
        }
        at = end;
    }
    *prev_mac = Some(chain);
}
