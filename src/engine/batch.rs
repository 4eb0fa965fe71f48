//! Write batches: several puts and deletes committed atomically, as one frame.

use crate::scope::SubjectId;

/// One operation of a [`WriteBatch`].
#[derive(Debug, Clone)]
pub(crate) enum BatchOp {
    Put { key: Vec<u8>, value: Vec<u8> },
    Delete { key: Vec<u8> },
}

/// One operation as sealing reads it: its target (`None`, the writing
/// handle's scope), its key, and its value (`None` for a delete). A single
/// put or delete goes to sealing as one of these, with no batch to build.
pub(crate) type OpRef<'a> = (Option<SubjectId>, &'a [u8], Option<&'a [u8]>);

/// Puts and deletes across a tenant's own scope and its subjects, committed
/// atomically by [`crate::Tenant::write`] or [`crate::Subject::write`]: after
/// a crash either all of them are there or none.
#[derive(Debug, Clone, Default)]
pub struct WriteBatch {
    /// Each op with its target: `None` is the scope of the handle that
    /// writes the batch, `Some(s)` subject `s` of the same tenant.
    pub(crate) ops: Vec<(Option<SubjectId>, BatchOp)>,
}

impl WriteBatch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Puts `value` at `key` in the scope of the handle that writes the batch.
    pub fn put(&mut self, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> &mut Self {
        self.push(
            None,
            BatchOp::Put {
                key: key.into(),
                value: value.into(),
            },
        )
    }

    /// Deletes `key` in the scope of the handle that writes the batch.
    pub fn delete(&mut self, key: impl Into<Vec<u8>>) -> &mut Self {
        self.push(None, BatchOp::Delete { key: key.into() })
    }

    /// Puts `value` at `key` in subject `subject` of the writing tenant.
    pub fn put_subject(
        &mut self,
        subject: SubjectId,
        key: impl Into<Vec<u8>>,
        value: impl Into<Vec<u8>>,
    ) -> &mut Self {
        self.push(
            Some(subject),
            BatchOp::Put {
                key: key.into(),
                value: value.into(),
            },
        )
    }

    /// Deletes `key` in subject `subject` of the writing tenant.
    pub fn delete_subject(&mut self, subject: SubjectId, key: impl Into<Vec<u8>>) -> &mut Self {
        self.push(Some(subject), BatchOp::Delete { key: key.into() })
    }

    /// Number of operations.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Whether the batch has no operation.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// The operations, in order, as sealing reads them.
    pub(crate) fn op_refs(&self) -> impl Iterator<Item = OpRef<'_>> + Clone {
        self.ops.iter().map(|(target, op)| match op {
            BatchOp::Put { key, value } => (*target, &key[..], Some(&value[..])),
            BatchOp::Delete { key } => (*target, &key[..], None),
        })
    }

    fn push(&mut self, target: Option<SubjectId>, op: BatchOp) -> &mut Self {
        self.ops.push((target, op));
        self
    }
}
