//! Shipping: the log, and later backups and the keyring, to the archive.
//!
//! The shipper (`shipper.rs`) copies every durable frame of the log to the
//! archive as *pieces*: runs of whole frames from one local segment, each
//! with a segment header of its own, so that a piece is itself a valid
//! segment that the log reader (and so the one replay loop) reads as it is.
//! `names.rs` says where each object lives, `shipped.rs` keeps the local
//! record of how far shipping has come.

pub(crate) mod backup;
pub(crate) mod keys;
pub(crate) mod names;
pub(crate) mod retention;
pub(crate) mod shipped;
pub(crate) mod shipper;
pub(crate) mod walk;
