//! Wall-clock time as the engine records it.

/// Microseconds since the Unix epoch (0 if the clock is before 1970).
pub(crate) fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}
