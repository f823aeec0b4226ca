//! Consent withdrawals on the platform service, on SQLite and on PostgreSQL: only custodians
//! record them, once per registration, for consent-based databases only; the count and the
//! time of the latest tell the sandbox when its views and held outputs are stale.

use niji_governance::GovernanceError;
use niji_testdb::TestDb;

use super::Committee;

const REGISTRATION: &str = "24a5738abe293453c8512aa4cfe595dca141551eec938d6ff86899610799585a";

async fn only_custodians_record_withdrawals_once_each(db: TestDb) {
    let c = Committee::new(db).await;
    let p = &c.platform;
    let before = niji_audit::now_rfc3339();
    for actor in ["alice", "dave", "frank", "root", "nobody"] {
        let e = p
            .record_withdrawal(actor, "nanbyo", REGISTRATION, 3)
            .await
            .unwrap_err();
        assert!(matches!(e, GovernanceError::Denied(_)), "{actor}: {e:?}");
        assert!(
            p.list_withdrawals(actor).await.is_err(),
            "{actor} lists them"
        );
    }
    assert_eq!(p.withdrawal_count().await.unwrap(), 0);
    assert!(!p.withdrawn_since(&before).await.unwrap());
    for (database, id) in [("ndb", REGISTRATION), ("nanbyo", "24A5"), ("nanbyo", "x")] {
        let e = p
            .record_withdrawal("cathy", database, id, 1)
            .await
            .unwrap_err();
        assert!(
            matches!(e, GovernanceError::Refused(_)),
            "{database} {id}: {e:?}"
        );
    }
    let kept = p
        .record_withdrawal("cathy", "nanbyo", REGISTRATION, 3)
        .await
        .unwrap();
    assert_eq!((kept.id, kept.matched_rows), (1, 3));
    let again = p
        .record_withdrawal("cathy", "shoman", REGISTRATION, 0)
        .await
        .unwrap_err();
    assert!(matches!(again, GovernanceError::Exists(_)), "{again:?}");
    p.record_withdrawal("cathy", "shoman", &REGISTRATION.replace('2', "3"), 0)
        .await
        .unwrap();
    assert_eq!(p.withdrawal_count().await.unwrap(), 2);
    assert!(p.withdrawn_since(&before).await.unwrap());
    let all = p.withdrawals().await.unwrap();
    assert_eq!(all.count(), 2);
    assert_eq!(all.research_ids[0], REGISTRATION);
    assert_eq!(p.list_withdrawals("cathy").await.unwrap().len(), 2);
    // The log says that a withdrawal was recorded, not whose.
    let logged = c.audited("consent.withdraw").await;
    assert_eq!(logged.len(), 2);
    assert!(
        logged
            .iter()
            .all(|(_, detail)| !detail.contains(REGISTRATION))
    );
}

niji_testdb::on_both_backends!(only_custodians_record_withdrawals_once_each);
