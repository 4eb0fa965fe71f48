//! The library half of `strongroom-cli`: what the `strongroom` binary and the
//! crate's integration tests share. Today that is the crash harness
//! ([`harness`]), run by `tools/tests/crash.rs` in CI and by
//! `strongroom torture` for as long as asked.

pub mod harness;
