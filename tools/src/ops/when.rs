//! Restore targets as an operator writes them: an RFC 3339 time
//! (`2026-12-06T14:03:00Z`, `2026-12-06T15:03:00+01:00`), a local date and
//! time (`2026-12-06 14:03`, in this machine's time zone), or a time
//! relative to now (`2 hours ago`, `90 minutes ago`, `1 day ago`).

use std::time::SystemTime;

use anyhow::{Context, bail};
use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;
use jiff::{Span, Timestamp, Zoned};

/// The moment `text` names, with `now` for relative forms and `zone` for
/// local ones.
pub fn parse_at(text: &str, now: &Zoned, zone: &TimeZone) -> anyhow::Result<SystemTime> {
    let text = text.trim();
    let timestamp = if let Ok(t) = text.parse::<Timestamp>() {
        t
    } else if let Ok(z) = text.parse::<Zoned>() {
        z.timestamp()
    } else if let Ok(dt) = text.parse::<DateTime>() {
        local(dt, zone, text)?
    } else if let Ok(d) = text.parse::<Date>() {
        local(d.to_datetime(jiff::civil::Time::midnight()), zone, text)?
    } else if let Ok(span) = text.parse::<Span>() {
        if !text.ends_with("ago") {
            bail!("{text:?}: a relative time says how long ago (\"2 hours ago\")");
        }
        now.checked_add(span)
            .with_context(|| format!("{text:?} is out of range"))?
            .timestamp()
    } else {
        bail!(
            "{text:?} is not a time: give RFC 3339 (2026-12-06T14:03:00Z), a local date and time (2026-12-06 14:03), or a relative time (2 hours ago)"
        );
    };
    Ok(SystemTime::from(timestamp))
}

fn local(dt: DateTime, zone: &TimeZone, text: &str) -> anyhow::Result<Timestamp> {
    Ok(dt
        .to_zoned(zone.clone())
        .with_context(|| format!("{text:?} in the local time zone"))?
        .timestamp())
}

/// A time as RFC 3339 in UTC, for output.
pub fn show(t: SystemTime) -> String {
    Timestamp::try_from(t).map_or_else(|_| format!("{t:?}"), |t| t.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_names_the_moment_it_should() {
        let zone = TimeZone::fixed(jiff::tz::offset(1));
        let now: Zoned = "2026-12-06T12:00:00+01:00[+01:00]".parse().unwrap();
        let utc = |s: &str| SystemTime::from(s.parse::<Timestamp>().unwrap());
        let at = |s: &str| parse_at(s, &now, &zone).unwrap();
        assert_eq!(at("2026-12-06T14:03:00Z"), utc("2026-12-06T14:03:00Z"));
        assert_eq!(at("2026-12-06T15:03:00+01:00"), utc("2026-12-06T14:03:00Z"));
        assert_eq!(at("2026-12-06 14:03"), utc("2026-12-06T13:03:00Z"));
        assert_eq!(at("2026-12-06T14:03:30.5"), utc("2026-12-06T13:03:30.5Z"));
        assert_eq!(at("2026-12-06"), utc("2026-12-05T23:00:00Z"));
        assert_eq!(at("2 hours ago"), utc("2026-12-06T09:00:00Z"));
        assert_eq!(at("90 minutes ago"), utc("2026-12-06T09:30:00Z"));
        assert_eq!(at("1 day ago"), utc("2026-12-05T11:00:00Z"));
        for bad in ["yesterday-ish", "2 hours", "", "2026-13-40"] {
            assert!(parse_at(bad, &now, &zone).is_err(), "{bad}");
        }
    }
}
