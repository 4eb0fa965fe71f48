//! The engine: the database, its scopes, batches, snapshots, the group
//! commit and the replay loop.

pub(crate) mod batch;
pub(crate) mod commit;
pub(crate) mod db;
pub(crate) mod deadline;
pub(crate) mod handles;
pub(crate) mod ops;
pub(crate) mod read_ahead;
pub(crate) mod replay;
pub(crate) mod rotation;
pub(crate) mod scan;
pub(crate) mod scan_cache;
pub(crate) mod shred;
pub(crate) mod snapshot;
pub(crate) mod standby;
