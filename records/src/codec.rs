//! The byte encoding of the layer's objects (subject entries, records,
//! consent ledgers, audit entries, releases): little-endian integers, byte
//! strings and text as `len u32 | bytes`, each object starting with its
//! format version (docs/FORMAT.md §14). Everything the layer reads back from
//! the engine goes through [`Reader`], which turns short, overlong or
//! malformed input into [`Error::Corrupt`], never a panic.

use crate::error::{Error, Result};

/// Builds an encoded object.
#[derive(Default)]
pub(crate) struct Writer {
    bytes: Vec<u8>,
}

impl Writer {
    /// A writer whose object starts with format version `version`.
    pub(crate) fn new(version: u8) -> Writer {
        Writer {
            bytes: vec![version],
        }
    }

    pub(crate) fn u8(&mut self, v: u8) -> &mut Self {
        self.bytes.push(v);
        self
    }

    pub(crate) fn u64(&mut self, v: u64) -> &mut Self {
        self.bytes.extend_from_slice(&v.to_le_bytes());
        self
    }

    pub(crate) fn i64(&mut self, v: i64) -> &mut Self {
        self.bytes.extend_from_slice(&v.to_le_bytes());
        self
    }

    pub(crate) fn bytes(&mut self, v: &[u8]) -> &mut Self {
        let len = u32::try_from(v.len()).expect("an object field under 4 GiB");
        self.bytes.extend_from_slice(&len.to_le_bytes());
        self.bytes.extend_from_slice(v);
        self
    }

    pub(crate) fn str(&mut self, v: &str) -> &mut Self {
        self.bytes(v.as_bytes())
    }

    /// `0` for none, `1 | v` for some.
    pub(crate) fn opt_u64(&mut self, v: Option<u64>) -> &mut Self {
        match v {
            None => self.u8(0),
            Some(v) => self.u8(1).u64(v),
        }
    }

    pub(crate) fn opt_str(&mut self, v: Option<&str>) -> &mut Self {
        match v {
            None => self.u8(0),
            Some(v) => self.u8(1).str(v),
        }
    }

    pub(crate) fn finish(self) -> Vec<u8> {
        self.bytes
    }
}

/// Reads an encoded object, checking its version first.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    what: &'static str,
}

impl<'a> Reader<'a> {
    /// A reader of an object of kind `what` (named in errors), whose version
    /// must be `version`.
    pub(crate) fn new(bytes: &'a [u8], what: &'static str, version: u8) -> Result<Reader<'a>> {
        let mut reader = Reader { bytes, what };
        let found = reader.u8()?;
        if found != version {
            return Err(reader.corrupt("an unknown format version"));
        }
        Ok(reader)
    }

    pub(crate) fn corrupt(&self, reason: &'static str) -> Error {
        Error::Corrupt {
            what: self.what,
            reason,
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.bytes.len() < n {
            return Err(self.corrupt("truncated"));
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    pub(crate) fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    pub(crate) fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().unwrap()))
    }

    pub(crate) fn i64(&mut self) -> Result<i64> {
        Ok(i64::from_le_bytes(self.take(8)?.try_into().unwrap()))
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        Ok(self.take(N)?.try_into().unwrap())
    }

    pub(crate) fn bytes(&mut self) -> Result<&'a [u8]> {
        let len = u32::from_le_bytes(self.take(4)?.try_into().unwrap());
        self.take(len as usize)
    }

    pub(crate) fn string(&mut self) -> Result<String> {
        let bytes = self.bytes()?;
        String::from_utf8(bytes.to_vec()).map_err(|_| self.corrupt("text that is not UTF-8"))
    }

    pub(crate) fn opt_u64(&mut self) -> Result<Option<u64>> {
        match self.u8()? {
            0 => Ok(None),
            1 => Ok(Some(self.u64()?)),
            _ => Err(self.corrupt("a bad option tag")),
        }
    }

    pub(crate) fn opt_string(&mut self) -> Result<Option<String>> {
        match self.u8()? {
            0 => Ok(None),
            1 => Ok(Some(self.string()?)),
            _ => Err(self.corrupt("a bad option tag")),
        }
    }

    /// A count of items that follow, each at least `item_min` bytes long:
    /// refused when the rest cannot hold that many (so a corrupt count never
    /// reserves memory it cannot fill).
    pub(crate) fn count(&mut self, item_min: usize) -> Result<usize> {
        let n = u32::from_le_bytes(self.take(4)?.try_into().unwrap()) as usize;
        if n.saturating_mul(item_min.max(1)) > self.bytes.len() {
            return Err(self.corrupt("a count larger than the object"));
        }
        Ok(n)
    }

    /// Checks that nothing follows the object.
    pub(crate) fn end(self) -> Result<()> {
        if self.bytes.is_empty() {
            Ok(())
        } else {
            Err(self.corrupt("bytes after the end"))
        }
    }
}

/// Writes a count of items (see [`Reader::count`]).
pub(crate) fn write_count(w: &mut Writer, n: usize) {
    let n = u32::try_from(n).expect("under 4 billion items");
    w.bytes.extend_from_slice(&n.to_le_bytes());
}
