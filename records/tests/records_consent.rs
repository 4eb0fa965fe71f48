//! Consent on a manual clock: opt-in, opt-out, lapse at exactly the renewal
//! period, renewal; a read for a purpose that needs consent is refused (and
//! audited) without it; the ledger is append-only; the expiring report.

mod common;

use std::time::Duration;

use common::*;
use strongroom::{Clock, SubjectId};
use strongroom_records::*;

fn sharing(role: &str) -> Access {
    ctx(role).for_purpose("sharing", "sharing with the partner agency")
}

fn pupil(tenant: &TenantRecords<'_>) -> SubjectId {
    let cw = ctx("caseworker");
    let s = tenant
        .create_subject(&cw, "hillside", &Identifiers::new())
        .unwrap();
    tenant
        .put_record(&cw, s, "profile", 0, &[("name", Value::from("Ada"))])
        .unwrap();
    s
}

#[test]
fn consent_is_given_withdrawn_lapses_at_exactly_its_period_and_is_renewed() {
    let world = world();
    let tenant = world.tenant();
    let cw = ctx("caseworker");
    // Sharing renews every 400 days in this tenant (configurable per purpose).
    let period = 400 * DAY;
    let mut config = tenant.config();
    config
        .purposes
        .iter_mut()
        .find(|p| p.name == "sharing")
        .unwrap()
        .renewal = period;
    tenant.configure(&ctx("admin"), config).unwrap();
    let s = pupil(&tenant);
    let read = || tenant.get_record(&sharing("caseworker"), s, "profile", 0);
    let refused = |r: Result<RecordView>| matches!(r, Err(Error::ConsentMissing { subject, ref purpose }) if subject == s && purpose == "sharing");

    // Never given: refused. A purpose without consent (care) reads.
    assert!(refused(read()));
    assert!(tenant.get_record(&cw, s, "profile", 0).is_ok());

    let given = tenant
        .record_consent(&cw, s, "sharing", ConsentAction::OptIn)
        .unwrap();
    let opted_at = world.clock.now_us();
    assert_eq!(
        given,
        ConsentState::Given {
            expires_us: opted_at + period.as_micros() as u64
        }
    );
    assert!(read().is_ok());

    // Live until the last microsecond of the period; lapsed at exactly it.
    world.clock.advance(period - Duration::from_micros(1));
    assert!(read().is_ok());
    world.clock.advance(Duration::from_micros(1));
    assert!(refused(read()));
    let (state, _) = tenant.consent(&cw, s, "sharing").unwrap();
    assert_eq!(
        state,
        ConsentState::Lapsed {
            expired_us: opted_at + period.as_micros() as u64
        }
    );

    // Renewed (after the lapse): live for another period from the renewal.
    world.clock.advance(10 * DAY);
    let renewed = tenant
        .record_consent(&cw, s, "sharing", ConsentAction::Renew)
        .unwrap();
    assert!(matches!(renewed, ConsentState::Given { .. }));
    assert!(read().is_ok());

    // Opted out: refused at once, and a renewal cannot bring it back.
    tenant
        .record_consent(&cw, s, "sharing", ConsentAction::OptOut)
        .unwrap();
    assert!(refused(read()));
    assert!(matches!(
        tenant.record_consent(&cw, s, "sharing", ConsentAction::Renew),
        Err(Error::BadValue { .. })
    ));
    tenant
        .record_consent(&cw, s, "sharing", ConsentAction::OptIn)
        .unwrap();
    assert!(read().is_ok());

    // The history is every event, in order.
    let (_, history) = tenant.consent(&cw, s, "sharing").unwrap();
    let actions: Vec<ConsentAction> = history.iter().map(|e| e.action).collect();
    use ConsentAction::*;
    assert_eq!(actions, [OptIn, Renew, OptOut, OptIn]);
    assert!(history.windows(2).all(|w| w[0].at_us <= w[1].at_us));

    // Every refusal is in the trail, naming the subject by number.
    let trail = tenant.audit_entries(&ctx("admin"), 0, u64::MAX).unwrap();
    let refusals = trail
        .iter()
        .filter(|e| e.subject == Some(s.0) && e.outcome.contains("no live consent to sharing"))
        .count();
    assert_eq!(refusals, 3);
    // Each event recorded is audited (the refused renewal recorded nothing).
    let events = trail
        .iter()
        .filter(|e| e.action.starts_with("consent.") && e.outcome == "ok")
        .count();
    assert_eq!(events, 4);
}

#[test]
fn the_default_renewal_is_three_years() {
    let world = world();
    let tenant = world.tenant();
    let cw = ctx("caseworker");
    let s = pupil(&tenant);
    tenant
        .record_consent(&cw, s, RESEARCH, ConsentAction::OptIn)
        .unwrap();
    world.clock.advance(1_095 * DAY);
    assert!(tenant.consent(&cw, s, RESEARCH).unwrap().0.is_live());
    world.clock.advance(DAY);
    assert!(!tenant.consent(&cw, s, RESEARCH).unwrap().0.is_live());
    assert_eq!(CONSENT_RENEWAL_DEFAULT, 1_096 * DAY);
}

#[test]
fn the_expiring_report_lists_exactly_the_consents_lapsing_within_the_window() {
    let world = world();
    let tenant = world.tenant();
    let cw = ctx("caseworker");
    // Five subjects opting in 0, 10, 20, 30 and 40 days apart.
    let mut subjects = Vec::new();
    for _ in 0..5 {
        let s = pupil(&tenant);
        tenant
            .record_consent(&cw, s, "sharing", ConsentAction::OptIn)
            .unwrap();
        subjects.push((s, world.clock.now_us()));
        world.clock.advance(10 * DAY);
    }
    // One withdrew: it is not expiring, it is gone.
    tenant
        .record_consent(&cw, subjects[1].0, "sharing", ConsentAction::OptOut)
        .unwrap();
    // 25 days before the first lapses: a window of 30 days holds the first
    // (25 days away); one of 45 days holds the third too (lapsing exactly
    // at its end), not the withdrawn second.
    let first_lapse = subjects[0].1 + CONSENT_RENEWAL_DEFAULT.as_micros() as u64;
    let now = world.clock.now_us();
    world
        .clock
        .advance(Duration::from_micros(first_lapse - now) - 25 * DAY);
    let expiring = |days| {
        tenant
            .consents_expiring(&cw, "sharing", days * DAY)
            .unwrap()
    };
    let ids = |list: Vec<(SubjectId, u64)>| list.into_iter().map(|(s, _)| s).collect::<Vec<_>>();
    assert_eq!(ids(expiring(30)), vec![subjects[0].0]);
    assert_eq!(ids(expiring(45)), vec![subjects[0].0, subjects[2].0]);
    assert_eq!(
        expiring(45)[1].1,
        subjects[2].1 + CONSENT_RENEWAL_DEFAULT.as_micros() as u64
    );
    // The report needs `manage consent`.
    assert!(matches!(
        tenant.consents_expiring(&ctx("viewer"), "sharing", DAY),
        Err(Error::Denied {
            permission: Permission::ManageConsent
        })
    ));
}
