//! The consent ledger: per subject and purpose, an append-only list of
//! opt-ins, renewals and opt-outs, kept in the subject's scope (so erased
//! with it). A consent lasts the purpose's renewal period from its opt-in or
//! last renewal; once lapsed it counts as absent until renewed. Every read
//! for a purpose that needs consent checks it
//! ([`crate::TenantRecords`]'s access check).

use serde::Serialize;
use strongroom::SubjectId;

use crate::access::Access;
use crate::codec::{Reader, Writer, write_count};
use crate::error::{Error, Result};
use crate::keys;
use crate::policy::Permission;
use crate::tenant::{Event, TenantRecords};

/// What a consent event does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsentAction {
    /// The subject opts in.
    OptIn,
    /// The subject renews a consent given before (live or lapsed).
    Renew,
    /// The subject opts out (at any time).
    OptOut,
}

impl ConsentAction {
    fn byte(self) -> u8 {
        match self {
            ConsentAction::OptIn => 1,
            ConsentAction::Renew => 2,
            ConsentAction::OptOut => 3,
        }
    }

    fn name(self) -> &'static str {
        match self {
            ConsentAction::OptIn => "consent.opt_in",
            ConsentAction::Renew => "consent.renew",
            ConsentAction::OptOut => "consent.opt_out",
        }
    }
}

/// One event of a ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConsentEvent {
    /// What it did.
    pub action: ConsentAction,
    /// When (µs since the Unix epoch).
    pub at_us: u64,
    /// Until when the consent it gave lasts (none for an opt-out).
    pub expires_us: Option<u64>,
}

/// Where a subject's consent to a purpose stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsentState {
    /// Never given.
    Never,
    /// Given and live until `expires_us`.
    Given {
        /// The moment it lapses.
        expires_us: u64,
    },
    /// Given, and lapsed at `expired_us`: counts as absent.
    Lapsed {
        /// The moment it lapsed.
        expired_us: u64,
    },
    /// Withdrawn at `at_us`.
    Withdrawn {
        /// The moment.
        at_us: u64,
    },
}

impl ConsentState {
    /// Whether the consent counts.
    pub fn is_live(self) -> bool {
        matches!(self, ConsentState::Given { .. })
    }
}

const LEDGER_VERSION: u8 = 1;

/// Format: `version u8 = 1 | count u32 | (action u8 | at_us u64 |
/// expires_us opt u64) × count`.
pub(crate) fn encode(events: &[ConsentEvent]) -> Vec<u8> {
    let mut w = Writer::new(LEDGER_VERSION);
    write_count(&mut w, events.len());
    for e in events {
        w.u8(e.action.byte()).u64(e.at_us).opt_u64(e.expires_us);
    }
    w.finish()
}

pub(crate) fn decode(bytes: &[u8]) -> Result<Vec<ConsentEvent>> {
    let mut r = Reader::new(bytes, "consent ledger", LEDGER_VERSION)?;
    let n = r.count(10)?;
    let mut events = Vec::with_capacity(n);
    for _ in 0..n {
        let action = match r.u8()? {
            1 => ConsentAction::OptIn,
            2 => ConsentAction::Renew,
            3 => ConsentAction::OptOut,
            _ => return Err(r.corrupt("an unknown consent action")),
        };
        let at_us = r.u64()?;
        let expires_us = r.opt_u64()?;
        events.push(ConsentEvent {
            action,
            at_us,
            expires_us,
        });
    }
    r.end()?;
    Ok(events)
}

/// A duration in µs, saturating (a period of centuries never wraps to a
/// short one).
pub(crate) fn micros(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// The state `events` leave at `now_us`.
pub(crate) fn state_at(events: &[ConsentEvent], now_us: u64) -> ConsentState {
    let state = events
        .iter()
        .fold(ConsentState::Never, |_, e| match (e.action, e.expires_us) {
            (ConsentAction::OptOut, _) | (_, None) => ConsentState::Withdrawn { at_us: e.at_us },
            (_, Some(expires_us)) => ConsentState::Given { expires_us },
        });
    match state {
        // Lapses at exactly the end of the period.
        ConsentState::Given { expires_us } if now_us >= expires_us => ConsentState::Lapsed {
            expired_us: expires_us,
        },
        other => other,
    }
}

impl TenantRecords<'_> {
    fn ledger(&self, s: SubjectId, purpose: &str) -> Result<Vec<ConsentEvent>> {
        match self.engine().subject(s).get(&keys::consent(purpose))? {
            Some(bytes) => decode(&bytes),
            None => Ok(Vec::new()),
        }
    }

    /// Whether subject `s` consents to `purpose` now.
    pub(crate) fn consent_is_live(&self, s: SubjectId, purpose: &str) -> Result<bool> {
        Ok(state_at(&self.ledger(s, purpose)?, self.records.now_us()).is_live())
    }

    /// Records a consent event of subject `s` for `purpose`. A renewal
    /// needs a consent given before (live or lapsed), not withdrawn. Needs
    /// `manage consent`. Audited.
    pub fn record_consent(
        &self,
        ctx: &Access,
        s: SubjectId,
        purpose: &str,
        action: ConsentAction,
    ) -> Result<ConsentState> {
        let renewal = self.configured().purpose(purpose)?.renewal;
        let entry = self.entry(s)?;
        let event = || Event::new(action.name(), Some(s), format!("purpose {purpose}"));
        self.authorize(ctx, &[Permission::ManageConsent], None, event)?;
        if let Err(e) = self.in_reach(ctx, &entry) {
            return self.deny(ctx, event(), e);
        }
        let now_us = self.records.now_us();
        let mut state = ConsentState::Never;
        self.commit(ctx, event(), "ok", |batch, _, _| {
            self.still_there(s)?;
            let mut events = self.ledger(s, purpose)?;
            let before = state_at(&events, now_us);
            if action == ConsentAction::Renew
                && !matches!(
                    before,
                    ConsentState::Given { .. } | ConsentState::Lapsed { .. }
                )
            {
                return Err(Error::BadValue {
                    field: purpose.to_string(),
                    why: "a renewal needs a consent given before and not withdrawn",
                });
            }
            let expires_us =
                (action != ConsentAction::OptOut).then(|| now_us.saturating_add(micros(renewal)));
            events.push(ConsentEvent {
                action,
                at_us: now_us,
                expires_us,
            });
            state = state_at(&events, now_us);
            batch.put_subject(s, keys::consent(purpose), encode(&events));
            Ok(())
        })?;
        Ok(state)
    }

    /// Where subject `s`'s consent to `purpose` stands now, and its history
    /// (oldest first). Needs `manage consent`.
    pub fn consent(
        &self,
        ctx: &Access,
        s: SubjectId,
        purpose: &str,
    ) -> Result<(ConsentState, Vec<ConsentEvent>)> {
        self.configured().purpose(purpose)?;
        let entry = self.entry(s)?;
        let event = || Event::new("consent.read", Some(s), format!("purpose {purpose}"));
        self.authorize(ctx, &[Permission::ManageConsent], None, event)?;
        if let Err(e) = self.in_reach(ctx, &entry) {
            return self.deny(ctx, event(), e);
        }
        let events = self.ledger(s, purpose)?;
        Ok((state_at(&events, self.records.now_us()), events))
    }

    /// Subjects in the caller's unit whose consent to `purpose` is live now
    /// and lapses within `within` (its end included), soonest first:
    /// (subject, lapse time).
    /// Needs `manage consent`.
    pub fn consents_expiring(
        &self,
        ctx: &Access,
        purpose: &str,
        within: std::time::Duration,
    ) -> Result<Vec<(SubjectId, u64)>> {
        self.configured().purpose(purpose)?;
        let event = || Event::new("consent.report", None, format!("purpose {purpose}"));
        self.authorize(ctx, &[Permission::ManageConsent], None, event)?;
        let now_us = self.records.now_us();
        let horizon_us = now_us.saturating_add(micros(within));
        let mut out = Vec::new();
        for (s, _) in self.subjects_in(&ctx.unit)? {
            let events = match self.ledger(s, purpose) {
                Ok(events) => events,
                // Shredded or sealed around the layer: nothing to renew.
                Err(Error::Engine(
                    strongroom::Error::Shredded { .. } | strongroom::Error::Sealed { .. },
                )) => continue,
                Err(e) => return Err(e),
            };
            if let ConsentState::Given { expires_us } = state_at(&events, now_us)
                && expires_us <= horizon_us
            {
                out.push((s, expires_us));
            }
        }
        out.sort_by_key(|&(s, at)| (at, s));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(action: ConsentAction, at_us: u64, expires_us: Option<u64>) -> ConsentEvent {
        ConsentEvent {
            action,
            at_us,
            expires_us,
        }
    }

    #[test]
    fn a_consent_lapses_at_exactly_its_expiry_and_a_renewal_extends_it() {
        let given = vec![event(ConsentAction::OptIn, 10, Some(100))];
        assert_eq!(
            state_at(&given, 99),
            ConsentState::Given { expires_us: 100 }
        );
        assert_eq!(
            state_at(&given, 100),
            ConsentState::Lapsed { expired_us: 100 }
        );
        let mut renewed = given.clone();
        renewed.push(event(ConsentAction::Renew, 120, Some(210)));
        assert_eq!(
            state_at(&renewed, 150),
            ConsentState::Given { expires_us: 210 }
        );
        renewed.push(event(ConsentAction::OptOut, 160, None));
        assert_eq!(
            state_at(&renewed, 161),
            ConsentState::Withdrawn { at_us: 160 }
        );
        assert_eq!(state_at(&[], 0), ConsentState::Never);
    }

    #[test]
    fn ledgers_round_trip_and_cuts_are_errors() {
        let events = vec![
            event(ConsentAction::OptIn, 1, Some(2)),
            event(ConsentAction::OptOut, 3, None),
        ];
        let bytes = encode(&events);
        assert_eq!(decode(&bytes).unwrap(), events);
        for cut in 0..bytes.len() {
            assert!(decode(&bytes[..cut]).is_err());
        }
    }
}
