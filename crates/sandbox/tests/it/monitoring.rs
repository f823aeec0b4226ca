//! Monitoring from the attacker's side: a scripted differencing attack (asking again and again
//! for everyone but one person, after the total was released) raises the alert rule and
//! suspends the user before the script finishes; what follows is refused, on real and dummy
//! data alike, and the alert and the suspension are in the audit log.

use niji_sandbox::{Mode, Status};

use crate::fixture::Fixture;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scripted_differencing_attack_is_stopped_by_suspension() {
    let f = Fixture::new(None).await;
    let total = f
        .query(Mode::Real, "SELECT count(*) AS n FROM ndb.receipts")
        .await;
    assert_eq!(total.status, Status::Released, "{}", total.message);
    let all_but_one =
        "SELECT count(*) AS n FROM ndb.receipts WHERE pid <> (SELECT min(pid) FROM ndb.receipts)";
    let mut statuses = Vec::new();
    for _ in 0..10 {
        statuses.push(f.query(Mode::Real, all_but_one).await.status);
    }
    let masked = statuses
        .iter()
        .take_while(|s| **s == Status::Suppressed)
        .count();
    assert_eq!(
        masked, 5,
        "the rule's threshold in policies/alerts.toml: {statuses:?}"
    );
    assert!(
        statuses[masked..].iter().all(|s| *s == Status::Refused),
        "suspended before the script finished: {statuses:?}"
    );
    let dummy = f
        .query(Mode::Dummy, "SELECT count(*) AS n FROM ndb.receipts")
        .await;
    assert_eq!(dummy.status, Status::Refused, "dummy data too");
    let log = f
        .visiting
        .platform()
        .audit()
        .recent(1_000)
        .await
        .expect("log");
    let alerts: Vec<_> = log.iter().filter(|e| e.action == "alert").collect();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert!(alerts[0].detail.contains("differencing attack"));
    assert!(
        log.iter()
            .any(|e| e.action == "user.suspend" && e.detail.contains("\"user\":\"alice\""))
    );
    // The account itself is suspended, not only this session's queries.
    let platform = f.visiting.platform();
    assert!(
        platform.db().user("alice").await.expect("db").is_none(),
        "suspended"
    );
}
