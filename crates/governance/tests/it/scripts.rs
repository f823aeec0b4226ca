//! Brought-in scripts on the platform service, on SQLite and on PostgreSQL, from the side of
//! whoever tries to go around approval: only members submit, only committee members from
//! outside the project and the submitter's organisation decide, and a run needs the exact
//! files of an approved version.

use niji_governance::{GovernanceError, ScriptFile, ScriptState, bundle_digest};
use niji_testdb::TestDb;

use super::Committee;

fn bundle(count_sql: &str) -> Vec<ScriptFile> {
    vec![
        ScriptFile {
            name: "01_visits.sql".into(),
            sql: "CREATE TABLE work.visits AS SELECT pid, claim_ym FROM ndb.receipts".into(),
        },
        ScriptFile {
            name: "02_count.sql".into(),
            sql: count_sql.into(),
        },
    ]
}

async fn scripts_run_only_as_approved_by_an_independent_member(db: TestDb) {
    let c = Committee::new(db).await;
    let p = &c.platform;
    c.live_project().await;
    let project = "copay-2022".to_string();
    let v1 = bundle("SELECT claim_ym, count(*) AS n FROM work.visits GROUP BY claim_ym");

    // Outsiders submit nothing.
    for outsider in ["mallory", "carol", "frank"] {
        assert!(
            p.submit_script(outsider, &project, "monthly", &v1)
                .await
                .is_err(),
            "{outsider} submitted"
        );
    }
    let s = p
        .submit_script("alice", &project, "monthly", &v1)
        .await
        .unwrap();
    assert_eq!((s.version, s.state), (1, ScriptState::Submitted));
    assert_eq!(s.digest, bundle_digest(&v1));
    let same = p.submit_script("bob", &project, "monthly", &v1).await;
    assert!(matches!(same, Err(GovernanceError::Exists(_))), "{same:?}");

    // Not approved yet: no run.
    let digest = bundle_digest(&v1);
    let e = p
        .approved_script("alice", &project, "monthly", &digest)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("not approved"), "{e}");

    // Who may not decide: members, researchers, the custodian, and dave (u-tokyo, as alice).
    for (actor, says) in [
        ("alice", "may not"),
        ("bob", "may not"),
        ("mallory", "may not"),
        ("cathy", "may not"),
        ("dave", "recused"),
    ] {
        let e = p
            .decide_script(actor, &project, "monthly", 1, true, "")
            .await
            .unwrap_err();
        assert!(
            matches!(e, GovernanceError::Denied(_)) && e.to_string().contains(says),
            "{actor}: {e}"
        );
    }
    let rejected_without_reason = p
        .decide_script("carol", &project, "monthly", 1, false, " ")
        .await;
    assert!(rejected_without_reason.is_err());
    let approved = p
        .decide_script("carol", &project, "monthly", 1, true, "集計のみ")
        .await
        .unwrap();
    assert_eq!(approved.state, ScriptState::Approved);
    assert!(
        p.decide_script("erin", &project, "monthly", 1, false, "late")
            .await
            .is_err(),
        "a decided version is decided once"
    );
    let ok = p
        .approved_script("bob", &project, "monthly", &digest)
        .await
        .unwrap();
    assert_eq!(ok.version, 1);
    assert!(
        p.approved_script("mallory", &project, "monthly", &digest)
            .await
            .is_err(),
        "an outsider runs nothing"
    );

    // One changed file: the approval does not cover it until version 2 is approved.
    let v2 = bundle("SELECT claim_ym, count(*) AS n FROM work.visits GROUP BY claim_ym ORDER BY 1");
    let changed = bundle_digest(&v2);
    let e = p
        .approved_script("alice", &project, "monthly", &changed)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("approved again"), "{e}");
    let s2 = p
        .submit_script("alice", &project, "monthly", &v2)
        .await
        .unwrap();
    assert_eq!(s2.version, 2);
    assert!(
        p.approved_script("alice", &project, "monthly", &changed)
            .await
            .is_err()
    );
    p.decide_script("erin", &project, "monthly", 2, true, "")
        .await
        .unwrap();
    assert_eq!(
        p.approved_script("alice", &project, "monthly", &changed)
            .await
            .unwrap()
            .version,
        2
    );
    let all = p.scripts("carol", &project).await.unwrap();
    assert_eq!(all.len(), 2);
    assert!(p.scripts("mallory", &project).await.is_err());
    // Refusals are logged; the submitter is told of decisions.
    assert!(c.audited("script.refused").await.len() >= 3);
    assert_eq!(c.audited("script.approve").await.len(), 2);
    let told = p.notifications("alice", true).await.unwrap();
    assert!(
        told.iter()
            .any(|n| n.kind == "script" && n.message.contains("approved"))
    );
}

niji_testdb::on_both_backends!(scripts_run_only_as_approved_by_an_independent_member);
