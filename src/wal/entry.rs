//! The entries of a frame's payload.
//!
//! ```text
//! entry = tenant u64 | scope_kind u8 | subject u64 | key_version u32 | op u8
//!         | token [16] | (op = put: sealed_len u32 | sealed record [sealed_len])
//! ```
//! `scope_kind` 0 is the tenant's own scope (subject 0), 1 a subject scope.
//! The sealed record of a put is opaque here; see `crypto/record.rs`.

use crate::crypto::scope_key::Token;
use crate::format::{ENTRY_HEADER_LEN, OP_DELETE, OP_PUT, TOKEN_LEN};
use crate::scope::Scope;

/// What an entry does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op<'a> {
    /// Put this sealed record at the entry's token.
    Put(&'a [u8]),
    /// Delete the record at the entry's token.
    Delete,
}

/// One operation of a batch, borrowed from an encoded payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Entry<'a> {
    pub(crate) scope: Scope,
    pub(crate) key_version: u32,
    pub(crate) token: Token,
    pub(crate) op: Op<'a>,
}

impl Entry<'_> {
    pub(crate) fn encode_into(&self, out: &mut Vec<u8>) {
        match self.op {
            Op::Put(sealed) => {
                encode_put_into(self.scope, self.key_version, &self.token, out, |out| {
                    out.extend_from_slice(sealed)
                })
            }
            Op::Delete => {
                encode_header(self.scope, self.key_version, OP_DELETE, &self.token, out);
            }
        }
    }
}

/// Appends a put entry whose sealed record `write_sealed` appends in place
/// (sealing straight into the payload saves a copy of every record).
pub(crate) fn encode_put_into(
    scope: Scope,
    key_version: u32,
    token: &Token,
    out: &mut Vec<u8>,
    write_sealed: impl FnOnce(&mut Vec<u8>),
) {
    encode_header(scope, key_version, OP_PUT, token, out);
    let len_at = out.len();
    out.extend_from_slice(&[0; 4]);
    write_sealed(out);
    let sealed_len = u32::try_from(out.len() - len_at - 4).expect("records are bounded");
    out[len_at..len_at + 4].copy_from_slice(&sealed_len.to_le_bytes());
}

fn encode_header(scope: Scope, key_version: u32, op: u8, token: &Token, out: &mut Vec<u8>) {
    let (kind, subject) = scope.encode_kind();
    out.extend_from_slice(&scope.tenant.0.to_le_bytes());
    out.push(kind);
    out.extend_from_slice(&subject.to_le_bytes());
    out.extend_from_slice(&key_version.to_le_bytes());
    out.push(op);
    out.extend_from_slice(token);
}

/// Why entries did not decode; the offset is relative to the entries' start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EntryError {
    pub(crate) offset: usize,
    pub(crate) what: &'static str,
}

/// Decodes `count` entries that must fill `bytes` exactly.
pub(crate) fn decode_all(bytes: &[u8], count: u32) -> Result<Vec<Entry<'_>>, EntryError> {
    let mut entries = Vec::with_capacity((count as usize).min(bytes.len() / ENTRY_HEADER_LEN));
    decode_into(bytes, count, &mut entries)?;
    Ok(entries)
}

/// Like [`decode_all`], appending the entries to `out` (which keeps what it
/// held before, and may hold some of them on error).
pub(crate) fn decode_into<'a>(
    bytes: &'a [u8],
    count: u32,
    out: &mut Vec<Entry<'a>>,
) -> Result<(), EntryError> {
    let mut at = 0;
    for _ in 0..count {
        let (entry, len) =
            decode_one(&bytes[at..]).map_err(|what| EntryError { offset: at, what })?;
        out.push(entry);
        at += len;
    }
    if at != bytes.len() {
        return Err(EntryError {
            offset: at,
            what: "bytes after the last entry",
        });
    }
    Ok(())
}

fn decode_one(bytes: &[u8]) -> Result<(Entry<'_>, usize), &'static str> {
    let h = bytes.get(..ENTRY_HEADER_LEN).ok_or("entry cut short")?;
    let tenant = u64::from_le_bytes(h[..8].try_into().unwrap());
    let subject = u64::from_le_bytes(h[9..17].try_into().unwrap());
    let scope = Scope::decode_kind(tenant, h[8], subject).ok_or("unknown scope kind")?;
    let key_version = u32::from_le_bytes(h[17..21].try_into().unwrap());
    let token: Token = h[22..22 + TOKEN_LEN].try_into().unwrap();
    let (op, len) = match h[21] {
        OP_DELETE => (Op::Delete, ENTRY_HEADER_LEN),
        OP_PUT => {
            let len_bytes = bytes
                .get(ENTRY_HEADER_LEN..ENTRY_HEADER_LEN + 4)
                .ok_or("entry cut short")?;
            let sealed_len = u32::from_le_bytes(len_bytes.try_into().unwrap()) as usize;
            let start = ENTRY_HEADER_LEN + 4;
            let sealed = bytes
                .get(start..start.checked_add(sealed_len).ok_or("length overflow")?)
                .ok_or("sealed record cut short")?;
            (Op::Put(sealed), start + sealed_len)
        }
        _ => return Err("unknown operation"),
    };
    Ok((
        Entry {
            scope,
            key_version,
            token,
            op,
        },
        len,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scope::{SubjectId, TenantId};

    #[test]
    fn entries_round_trip() {
        let entries = [
            Entry {
                scope: Scope::tenant(TenantId(3)),
                key_version: 1,
                token: [7; TOKEN_LEN],
                op: Op::Put(b"sealed bytes"),
            },
            Entry {
                scope: Scope::subject(TenantId(3), SubjectId(9)),
                key_version: 2,
                token: [8; TOKEN_LEN],
                op: Op::Delete,
            },
        ];
        let mut bytes = Vec::new();
        for e in &entries {
            e.encode_into(&mut bytes);
        }
        assert_eq!(
            bytes.len(),
            2 * ENTRY_HEADER_LEN + 4 + b"sealed bytes".len()
        );
        assert_eq!(decode_all(&bytes, 2).unwrap(), entries);
        assert!(decode_all(&bytes, 3).is_err());
        assert!(decode_all(&bytes, 1).is_err());
        for len in 0..bytes.len() {
            assert!(decode_all(&bytes[..len], 2).is_err());
        }
    }
}
