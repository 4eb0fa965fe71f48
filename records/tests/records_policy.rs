//! The policy: every seed role × every permission, allowed exactly where the
//! seed table says (written out here, independently of the code's seeds);
//! contact fields invisible to every role but the contact role; secrets
//! never readable; grants within ○ only; units bounding what members reach;
//! every denial audited.

mod common;

use std::collections::BTreeSet;

use common::*;
use strongroom::SubjectId;
use strongroom_records::*;

/// The seed policy, as the documentation states it (●, by default).
fn expected(role: &str) -> BTreeSet<Permission> {
    use FieldClass::*;
    use Permission::*;
    let list: &[Permission] = match role {
        "admin" => &[
            ManageUsers,
            Configure,
            ReadAudit,
            Purge,
            Deprovision,
            CreateSubject,
            Read(Identifier),
            Read(Ordinary),
        ],
        "caseworker" => &[
            Read(Identifier),
            Write(Identifier),
            Read(Sensitive),
            Write(Sensitive),
            Read(Ordinary),
            Write(Ordinary),
            Write(Contact),
            Write(Secret),
            CreateSubject,
            Lookup,
            VerifySecret,
            ManageConsent,
        ],
        "viewer" => &[Read(Identifier), Read(Ordinary)],
        "analyst" => &[Report],
        "privacy_officer" => &[
            Export,
            Erase,
            ReadAudit,
            ManageConsent,
            Lookup,
            Read(Identifier),
            Read(Ordinary),
        ],
        "contact_officer" => &[Read(Identifier), Lookup, Read(Contact)],
        other => panic!("no seed role {other}"),
    };
    list.iter().copied().collect()
}

/// The field of the profile that has `class`, and a value for it.
fn field_of(class: FieldClass) -> (&'static str, Value) {
    match class {
        FieldClass::Identifier => ("name", Value::from("Ada")),
        FieldClass::Contact => ("address", Value::from("1 Canary Lane")),
        FieldClass::Sensitive => ("health", Value::from("asthma")),
        FieldClass::Ordinary => ("year", Value::from("2")),
        FieldClass::Secret => ("pin", Value::from("1234")),
    }
}

/// A subject with a full profile, consenting to everything.
fn full_subject(tenant: &TenantRecords<'_>, external_id: &str) -> SubjectId {
    let cw = ctx("caseworker");
    let ids = Identifiers::new()
        .external_id(external_id)
        .email(&format!("{external_id}@example.org"));
    let s = tenant.create_subject(&cw, "hillside", &ids).unwrap();
    let fields: Vec<(&str, Value)> = FieldClass::ALL.iter().map(|&c| field_of(c)).collect();
    tenant.put_record(&cw, s, "profile", 0, &fields).unwrap();
    for purpose in ["sharing", "third_party_export", RESEARCH] {
        tenant
            .record_consent(&cw, s, purpose, ConsentAction::OptIn)
            .unwrap();
    }
    s
}

/// Makes the call that needs exactly `permission`, as `role`.
fn attempt(
    tenant: &TenantRecords<'_>,
    role: &str,
    permission: Permission,
    s: SubjectId,
) -> Result<()> {
    let me = ctx(role);
    let fresh = || {
        tenant
            .create_subject(&ctx("caseworker"), "hillside", &Identifiers::new())
            .unwrap()
    };
    match permission {
        Permission::Read(class) => {
            let (field, _) = field_of(class);
            let value = tenant.get_field(&me, s, "profile", 0, field)?;
            assert!(value.is_some(), "{role} read {field}: nothing");
        }
        Permission::Write(class) => tenant.put_record(&me, s, "profile", 0, &[field_of(class)])?,
        Permission::CreateSubject => {
            tenant.create_subject(&me, "hillside", &Identifiers::new())?;
        }
        Permission::Lookup => {
            let found = tenant.find_subject(&me, IdentifierKind::ExternalId, "P-1")?;
            assert_eq!(found, Some(s));
        }
        Permission::VerifySecret => {
            assert!(tenant.verify_secret(&me, s, "profile", 0, "pin", "1234")?);
        }
        Permission::ManageConsent => {
            tenant.record_consent(&me, s, "sharing", ConsentAction::Renew)?;
        }
        Permission::Export => {
            tenant.export_subject(&me, s)?;
        }
        Permission::Erase => tenant.erase_subject(&me, fresh())?,
        Permission::Report => {
            tenant.aggregate(&me, &Aggregate::count("profile", "year"))?;
        }
        Permission::Purge => tenant.end_relationship(&me, fresh())?,
        Permission::ManageUsers => {
            tenant.assign(&me, &format!("new-{role}"), "viewer", WHOLE_TENANT)?
        }
        Permission::Configure => tenant.configure(&me, tenant.config())?,
        Permission::ReadAudit => {
            tenant.verify_audit(&me)?;
        }
        Permission::Deprovision => {
            tenant.deprovision(&me, DAY)?;
            assert!(tenant.cancel_deprovision(&me)?);
        }
    }
    Ok(())
}

#[test]
fn every_seed_role_is_allowed_exactly_what_the_policy_says() {
    let world = world();
    let tenant = world.tenant();
    let s = full_subject(&tenant, "P-1");
    let mut denials = 0;
    for role in SEED_ROLES {
        let allowed = expected(role);
        for permission in Permission::all() {
            match attempt(&tenant, role, permission, s) {
                Ok(()) => assert!(
                    allowed.contains(&permission),
                    "{role} was allowed {permission}"
                ),
                Err(Error::Denied {
                    permission: missing,
                }) => {
                    assert_eq!(missing, permission, "{role}: denied for another permission");
                    assert!(
                        !allowed.contains(&permission),
                        "{role} was denied {permission}"
                    );
                    denials += 1;
                }
                Err(e) => panic!("{role} {permission}: {e}"),
            }
        }
    }
    // No role reads a secret, and only the contact role reads contact data.
    assert!(denials >= SEED_ROLES.len());
    let trail = tenant.audit_entries(&ctx("admin"), 0, u64::MAX).unwrap();
    let audited = trail
        .iter()
        .filter(|e| e.outcome.starts_with("denied: the role lacks"))
        .count();
    assert_eq!(audited, denials, "every denial is in the trail");
    assert!(
        tenant
            .verify_audit(&ctx("admin"))
            .unwrap()
            .problems
            .is_empty()
    );
}

#[test]
fn contact_fields_are_invisible_to_every_role_but_the_contact_role_and_secrets_to_all() {
    let world = world();
    let tenant = world.tenant();
    let s = full_subject(&tenant, "P-1");
    for role in SEED_ROLES {
        let Ok(view) = tenant.get_record(&ctx(role), s, "profile", 0) else {
            assert!(
                !expected(role)
                    .iter()
                    .any(|p| matches!(p, Permission::Read(_))),
                "{role}"
            );
            continue;
        };
        assert_eq!(
            view.fields.contains_key("address"),
            role == "contact_officer",
            "{role}"
        );
        assert!(!view.fields.contains_key("pin"), "{role} saw the secret");
        let ids = tenant.identifiers(&ctx(role), s);
        if let Ok(ids) = ids {
            assert_eq!(ids.email.is_some(), role == "contact_officer", "{role}");
        }
    }
    // The access export holds the contact data (it is the subject's own)
    // but never the secret's hash.
    let export = tenant
        .export_subject(&ctx("privacy_officer"), s)
        .unwrap()
        .to_string();
    assert!(export.contains("1 Canary Lane"));
    assert!(
        !export.contains("argon2"),
        "the export shows a secret's hash"
    );
}

#[test]
fn only_grantable_permissions_can_be_granted_and_a_grant_can_be_revoked() {
    let world = world();
    let tenant = world.tenant();
    let s = full_subject(&tenant, "P-1");
    let admin = ctx("admin");
    let health = |role: &str| tenant.get_field(&ctx(role), s, "profile", 0, "health");
    assert!(matches!(health("viewer"), Err(Error::Denied { .. })));
    tenant
        .grant(&admin, "viewer-1", Permission::Read(FieldClass::Sensitive))
        .unwrap();
    assert_eq!(health("viewer").unwrap(), Some(Value::from("asthma")));
    tenant
        .revoke(&admin, "viewer-1", Permission::Read(FieldClass::Sensitive))
        .unwrap();
    assert!(matches!(health("viewer"), Err(Error::Denied { .. })));
    for (actor, permission) in [
        ("caseworker-1", Permission::Read(FieldClass::Contact)),
        ("caseworker-1", Permission::Read(FieldClass::Secret)),
        ("viewer-1", Permission::Export),
    ] {
        match tenant.grant(&admin, actor, permission) {
            Err(Error::NotGrantable { permission: p, .. }) => assert_eq!(p, permission),
            other => panic!("{actor} {permission}: {other:?}"),
        }
    }
    // No configuration can give a role a secret's or contact's read either.
    let mut config = tenant.config();
    config.roles[2]
        .grantable
        .insert(Permission::Read(FieldClass::Secret));
    assert!(matches!(
        tenant.configure(&admin, config),
        Err(Error::Config(_))
    ));
    // Managing users is itself a permission.
    assert!(matches!(
        tenant.grant(
            &ctx("viewer"),
            "viewer-1",
            Permission::Read(FieldClass::Sensitive)
        ),
        Err(Error::Denied {
            permission: Permission::ManageUsers
        })
    ));
}

#[test]
fn units_bound_what_a_member_reaches() {
    let world = world();
    let tenant = world.tenant();
    let admin = ctx("admin");
    tenant
        .assign(&admin, "cw-hill", "caseworker", "hillside")
        .unwrap();
    tenant
        .assign(&admin, "cw-group", "caseworker", "north-schools")
        .unwrap();
    let at = |actor: &str, unit: &str| Access::new(actor, "caseworker", unit, "care", "a test");
    let hill = at("cw-hill", "hillside");
    let river = tenant
        .create_subject(
            &at("cw-group", "north-schools"),
            "riverside",
            &Identifiers::new(),
        )
        .unwrap();
    let mine = tenant
        .create_subject(&hill, "hillside", &Identifiers::new())
        .unwrap();
    tenant
        .put_record(&hill, mine, "profile", 0, &[("name", Value::from("Bo"))])
        .unwrap();
    tenant
        .put_record(
            &at("cw-group", "north-schools"),
            river,
            "profile",
            0,
            &[("name", Value::from("Cy"))],
        )
        .unwrap();
    // A member reaches its unit and the units below it, nothing else.
    assert!(tenant.get_record(&hill, mine, "profile", 0).is_ok());
    assert!(matches!(
        tenant.get_record(&hill, river, "profile", 0),
        Err(Error::OutsideUnit { .. })
    ));
    assert!(
        tenant
            .get_record(&at("cw-group", "north-schools"), mine, "profile", 0)
            .is_ok()
    );
    assert!(
        tenant
            .get_record(&at("cw-group", "hillside"), mine, "profile", 0)
            .is_ok()
    );
    // A context may narrow the member's unit, never widen it.
    assert!(matches!(
        tenant.get_record(&at("cw-hill", "north"), mine, "profile", 0),
        Err(Error::OutsideUnit { .. })
    ));
    assert!(matches!(
        tenant.create_subject(&hill, "seaside", &Identifiers::new()),
        Err(Error::OutsideUnit { .. })
    ));
    // A lookup does not find a subject outside the unit.
    let ids = Identifiers::new().external_id("R-9");
    let far = tenant
        .create_subject(&ctx("caseworker"), "riverside", &ids)
        .unwrap();
    assert_eq!(
        tenant
            .find_subject(&hill, IdentifierKind::ExternalId, "R-9")
            .unwrap(),
        None
    );
    assert_eq!(
        tenant
            .find_subject(&ctx("caseworker"), IdentifierKind::ExternalId, "R-9")
            .unwrap(),
        Some(far)
    );
    // Strangers and wrong roles are refused, and audited.
    let stranger = Access::new("nobody", "caseworker", WHOLE_TENANT, "care", "a test");
    assert!(matches!(
        tenant.get_record(&stranger, mine, "profile", 0),
        Err(Error::NotMember { .. })
    ));
    let posing = Access::new("viewer-1", "caseworker", WHOLE_TENANT, "care", "a test");
    assert!(matches!(
        tenant.get_record(&posing, mine, "profile", 0),
        Err(Error::WrongRole { .. })
    ));
    let trail = tenant.audit_entries(&admin, 0, u64::MAX).unwrap();
    assert!(
        trail
            .iter()
            .any(|e| e.actor == "nobody" && e.outcome.starts_with("denied"))
    );
    assert!(
        trail
            .iter()
            .any(|e| e.actor == "cw-hill" && e.outcome.starts_with("denied: unit riverside"))
    );
    // No call without a context: an empty reason is refused.
    let no_reason = Access::new("caseworker-1", "caseworker", WHOLE_TENANT, "care", " ");
    assert!(matches!(
        tenant.get_record(&no_reason, mine, "profile", 0),
        Err(Error::BadAccess("reason"))
    ));
}

#[test]
fn no_one_administers_themselves_or_members_above_their_unit() {
    let world = world();
    let tenant = world.tenant();
    let admin = ctx("admin");
    tenant
        .assign(&admin, "loc-admin", "admin", "hillside")
        .unwrap();
    tenant
        .assign(&admin, "area-cw", "caseworker", "north")
        .unwrap();
    let local = Access::new("loc-admin", "admin", "hillside", "care", "a test");
    // Not themselves: no new role, no grant, no removal.
    for result in [
        tenant.assign(&local, "loc-admin", "contact_officer", "hillside"),
        tenant.grant(&local, "loc-admin", Permission::Export),
        tenant.remove_member(&local, "loc-admin"),
    ] {
        assert!(
            matches!(result, Err(Error::SelfAdministration)),
            "{result:?}"
        );
    }
    // Not a member whose unit is above theirs: no re-homing, downgrading,
    // granting or removing.
    for result in [
        tenant.assign(&local, "area-cw", "viewer", "hillside"),
        tenant.grant(&local, "area-cw", Permission::Export),
        tenant.remove_member(&local, "area-cw"),
    ] {
        assert!(
            matches!(result, Err(Error::OutsideUnit { .. })),
            "{result:?}"
        );
    }
    // Tenant-wide acts need the whole tenant: configuration, deprovisioning,
    // the trail.
    assert!(matches!(
        tenant.configure(&local, tenant.config()),
        Err(Error::OutsideUnit { .. })
    ));
    assert!(matches!(
        tenant.deprovision(&local, DAY),
        Err(Error::OutsideUnit { .. })
    ));
    assert!(matches!(
        tenant.verify_audit(&local),
        Err(Error::OutsideUnit { .. })
    ));
    assert_eq!(
        world.records.db().tenant(TENANT).state().unwrap(),
        strongroom::ScopeState::Live
    );
    // Within their unit they administer as usual.
    tenant
        .assign(&local, "loc-cw", "caseworker", "hillside")
        .unwrap();
    // Each refusal is in the trail.
    let trail = tenant.audit_entries(&admin, 0, u64::MAX).unwrap();
    let refused = trail
        .iter()
        .filter(|e| e.actor == "loc-admin" && e.outcome.starts_with("denied"))
        .count();
    assert_eq!(refused, 9);
    // A configuration change names what changed.
    let mut config = tenant.config();
    config.small_group = 7;
    tenant.configure(&admin, config).unwrap();
    let trail = tenant.audit_entries(&admin, 0, u64::MAX).unwrap();
    assert!(
        trail
            .iter()
            .any(|e| e.action == "configure" && e.detail == "changed: small group")
    );
}

#[test]
fn a_write_of_no_fields_is_refused() {
    let world = world();
    let tenant = world.tenant();
    let s = full_subject(&tenant, "P-1");
    assert!(matches!(
        tenant.put_record(&ctx("analyst"), s, "profile", 0, &[]),
        Err(Error::BadValue { .. })
    ));
}

#[test]
fn a_tenant_set_up_is_set_up_for_good() {
    let world = world();
    // Set up, and reopened before any subject exists: still set up, and a
    // second set-up is refused (in the same process and after a reopen).
    let again = world
        .records
        .set_up_tenant(&ctx("admin"), TENANT, TenantConfig::seeded(units()));
    assert!(matches!(again, Err(Error::AlreadySetUp(_))));
    let head = world.tenant().audit_head();
    let World {
        dir,
        clock,
        records,
    } = world;
    records.into_db().close().unwrap();
    let records = open_records(dir.path(), &clock);
    let tenant = records.tenant(TENANT).unwrap();
    assert_eq!(tenant.audit_head(), head);
    let intruder = Access::new("intruder", "admin", WHOLE_TENANT, "care", "taking over");
    let again = records.set_up_tenant(&intruder, TENANT, TenantConfig::seeded(units()));
    assert!(matches!(again, Err(Error::AlreadySetUp(_))));
    assert!(
        tenant
            .verify_audit(&ctx("admin"))
            .unwrap()
            .problems
            .is_empty()
    );
}
