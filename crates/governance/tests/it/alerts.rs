//! Monitoring from the attacker's side: guessing a researcher's token raises the sign-in rule,
//! which suspends the name; the suspended user can sign in with the right token no more and
//! loses their project roles until a custodian reinstates them, all in the audit log.

use niji_governance::{Action, GovernanceError};
use niji_testdb::TestDb;

use super::Committee;

async fn guessing_a_token_suspends_the_name_until_reinstated(db: TestDb) {
    let c = Committee::new(db).await;
    let p = &c.platform;
    // alice gets a live project first, so that suspension has something to take away.
    c.live_project().await;
    assert!(
        p.authorize("alice", "copay-2022", Action::QueryReal)
            .await
            .is_ok()
    );
    let token = p
        .add_user("setup", "alice2", niji_governance::UserRole::Researcher)
        .await
        .unwrap();
    for guess in 0..10 {
        let e = p
            .sign_in("alice", &format!("niji_{guess:064}"), "http")
            .await
            .unwrap_err();
        assert!(matches!(e, GovernanceError::Unauthenticated));
    }
    let alerts = c.audited("alert").await;
    assert_eq!(alerts.len(), 1, "one alert per window: {alerts:?}");
    assert!(alerts[0].1.contains("sign-in failures") && alerts[0].1.contains("\"suspended\":true"));
    assert_eq!(c.audited("user.suspend").await.len(), 1);
    assert!(
        p.authorize("alice", "copay-2022", Action::QueryReal)
            .await
            .is_err(),
        "a suspended user passes no authorisation"
    );
    assert!(p.db().user("alice").await.unwrap().is_none());
    let told = p.notifications("cathy", true).await.unwrap();
    assert!(
        told.iter()
            .any(|n| n.kind == "alert" && n.message.contains("alice")),
        "the custodian is told: {told:?}"
    );
    // Others are untouched.
    assert!(p.sign_in("alice2", &token, "http").await.is_ok());
    // Only a custodian or an administrator lifts it.
    assert!(
        p.reinstate_user("bob", "alice", "見直し済み")
            .await
            .is_err()
    );
    p.reinstate_user("root", "alice", "本人確認済み")
        .await
        .unwrap();
    assert!(
        p.authorize("alice", "copay-2022", Action::QueryReal)
            .await
            .is_ok()
    );
    assert_eq!(c.audited("user.reinstate").await.len(), 1);
    let v = p.audit().verify().await.unwrap();
    assert!(v.is_intact(), "{:?}", v.problems);
}

niji_testdb::on_both_backends!(guessing_a_token_suspends_the_name_until_reinstated);
