//! From an application to a working project.

use niji_governance::applications::{calendar, last_day};
use niji_governance::{Action, ApplicationKind, ApplicationState, Conditions, DecisionOutcome};
use niji_pseudo::CivilDate;
use niji_testdb::TestDb;

use super::Committee;

/// The whole way, with a condition: the project that goes live is the approved form narrowed
/// by the conditions, usable at once, and every step is in the verified audit log.
async fn an_application_becomes_the_project_its_decision_says(db: TestDb) {
    let c = Committee::new(db).await;
    let p = &c.platform;
    let id = c.submitted_and_assigned().await;
    let app = p.db().application(&id).await.unwrap().unwrap();
    assert_eq!(app.state, ApplicationState::UnderReview);
    assert_eq!(app.version, 1);
    let due = calendar::add_working_days(CivilDate::today(), p.review_policy().due().review);
    assert_eq!(
        app.due_on.as_deref(),
        Some(due.to_string().as_str()),
        "due in working days"
    );
    c.quorum_votes(&id).await;

    let mut conditions = Conditions::default();
    conditions.columns.insert(
        "ndb.receipts".into(),
        [
            "record_key",
            "claim_ym",
            "sex",
            "setting",
            "copay_rate",
            "income_class",
            "days",
            "points",
        ]
        .map(String::from)
        .to_vec(),
    );
    conditions.min_persons = Some(20);
    conditions.duration_months = Some(12);
    let decision = p
        .decide_application(
            "frank",
            &id,
            DecisionOutcome::Approved,
            conditions,
            "公益性あり。都道府県は不要。",
            &c.catalog,
        )
        .await
        .unwrap();
    assert_eq!(decision.version, 1);
    assert!(
        p.authorize("alice", "copay-2022", Action::QueryReal)
            .await
            .is_err(),
        "nothing is usable before the applicant accepts the conditions"
    );

    let spec = p.accept_decision("alice", &id, &c.catalog).await.unwrap();
    assert_eq!(spec.id, "copay-2022");
    let receipts = spec
        .tables
        .iter()
        .find(|t| t.table == "ndb.receipts")
        .unwrap();
    assert!(
        !receipts.columns.contains(&"prefecture".to_string()),
        "narrowed"
    );
    assert_eq!(spec.min_persons, Some(20));
    assert_eq!(spec.expires, last_day(CivilDate::today(), 12).to_string());
    assert_eq!(
        spec.linkage,
        vec![vec!["ndb".to_string(), "kaigo".to_string()]]
    );
    let granted = p
        .authorize("alice", "copay-2022", Action::QueryReal)
        .await
        .unwrap();
    assert_eq!(granted, spec, "the stored project is the compiled decision");
    assert!(
        p.authorize("bob", "copay-2022", Action::QueryDummy)
            .await
            .is_ok()
    );
    assert!(
        p.authorize("carol", "copay-2022", Action::QueryDummy)
            .await
            .is_err()
    );

    let page = p.application_page("frank", &id, &c.catalog).await.unwrap();
    assert_eq!(page.state, ApplicationState::Active);
    assert_eq!(page.application.project.as_deref(), Some("copay-2022"));
    let phases: Vec<&str> = page.phases.iter().map(|t| t.phase).collect();
    for phase in [
        "to_assignment",
        "review",
        "to_decision",
        "approval_to_usable_project",
    ] {
        assert!(phases.contains(&phase), "{phases:?}");
    }
    let usable = page
        .phases
        .iter()
        .find(|t| t.phase == "approval_to_usable_project")
        .unwrap();
    assert!(usable.seconds >= 0.0 && usable.seconds < 60.0, "{usable:?}");
    let risk = page.risk.expect("the chair sees the risk summary");
    assert!(risk.linkage.len() == 1 && !risk.reasons.is_empty());

    // The applicant sees the votes' comments, not who wrote them.
    let own = p.application_page("alice", &id, &c.catalog).await.unwrap();
    assert!(own.risk.is_none());
    assert!(own.votes.iter().all(|v| v.reviewer == "reviewer"));
    assert!(own.votes.iter().any(|v| v.comments.contains_key("data")));

    let told = |user: &'static str| async move {
        p.notifications(user, false)
            .await
            .unwrap()
            .into_iter()
            .map(|n| n.kind)
            .collect::<Vec<_>>()
    };
    assert!(told("frank").await.contains(&"submitted".to_string()));
    assert!(told("carol").await.contains(&"assigned".to_string()));
    let alice = told("alice").await;
    assert!(
        alice.contains(&"approved".to_string()) && alice.contains(&"active".to_string()),
        "{alice:?}"
    );
    assert!(
        told("bob").await.contains(&"active".to_string()),
        "members are told"
    );

    for action in [
        "application.draft",
        "application.submit",
        "application.assign",
        "application.vote",
        "application.decide",
        "project.create",
    ] {
        assert!(!c.audited(action).await.is_empty(), "{action} audited");
    }
    let v = p.audit().verify().await.unwrap();
    assert!(v.is_intact(), "{:?}", v.problems);
}

/// Sent back for revision: the applicant edits and submits version 2, and only votes on
/// version 2 count towards its quorum.
async fn a_revision_is_reviewed_again_from_its_own_votes(db: TestDb) {
    let c = Committee::new(db).await;
    let p = &c.platform;
    let id = c.submitted_and_assigned().await;
    c.quorum_votes(&id).await;
    p.decide_application(
        "frank",
        &id,
        DecisionOutcome::RevisionRequested,
        Conditions::default(),
        "データ期間の根拠を。",
        &c.catalog,
    )
    .await
    .unwrap();
    let mut form = Committee::form();
    form.purpose.push_str(" 期間は導入前後12か月ずつとする。");
    p.edit_application("alice", &id, &form).await.unwrap();
    p.submit_application("alice", &id, &c.catalog)
        .await
        .unwrap();
    let app = p.db().application(&id).await.unwrap().unwrap();
    assert_eq!((app.state, app.version), (ApplicationState::UnderReview, 2));
    let no_quorum = p
        .decide_application(
            "frank",
            &id,
            DecisionOutcome::Approved,
            Conditions::default(),
            "ok",
            &c.catalog,
        )
        .await
        .unwrap_err();
    assert!(
        no_quorum.to_string().contains("no quorum: 0 of the 2"),
        "{no_quorum}"
    );
    c.quorum_votes(&id).await;
    p.decide_application(
        "frank",
        &id,
        DecisionOutcome::Approved,
        Conditions::default(),
        "ok",
        &c.catalog,
    )
    .await
    .unwrap();
    assert_eq!(p.db().decisions(&id).await.unwrap().len(), 2);
}

/// An amendment goes through the same review and changes the live project in place.
async fn an_amendment_changes_the_live_project_in_place(db: TestDb) {
    let c = Committee::new(db).await;
    let p = &c.platform;
    c.live_project().await;
    assert!(
        p.authorize("mallory", "copay-2022", Action::QueryDummy)
            .await
            .is_err()
    );

    let mut form = Committee::form();
    form.analysts.push(niji_governance::Member {
        user: "mallory".into(),
        role: niji_governance::MemberRole::Researcher,
    });
    form.tables
        .retain(|t| t.table != "reference.municipalities");
    let amendment = p
        .draft_amendment("alice", "copay-2022", &form)
        .await
        .unwrap();
    assert!(
        p.draft_amendment("bob", "copay-2022", &form).await.is_err(),
        "only the lead amends"
    );
    p.submit_application("alice", &amendment, &c.catalog)
        .await
        .unwrap();
    for r in ["carol", "erin"] {
        p.assign_reviewer("frank", &amendment, r, &["ndb".into()])
            .await
            .unwrap();
    }
    c.quorum_votes(&amendment).await;
    p.decide_application(
        "frank",
        &amendment,
        DecisionOutcome::Approved,
        Conditions::default(),
        "ok",
        &c.catalog,
    )
    .await
    .unwrap();
    let spec = p
        .accept_decision("alice", &amendment, &c.catalog)
        .await
        .unwrap();
    assert!(spec.members.iter().any(|m| m.user == "mallory"));
    assert!(
        p.authorize("mallory", "copay-2022", Action::QueryDummy)
            .await
            .is_ok()
    );
    assert_eq!(
        p.db().projects().await.unwrap().len(),
        1,
        "changed in place"
    );
    let amended = c.audited("project.amend").await;
    assert_eq!(amended.len(), 1);
    assert!(
        amended[0].1.contains("reference.municipalities"),
        "the change keeps what was before"
    );
    let app = p.db().application(&amendment).await.unwrap().unwrap();
    assert_eq!(app.kind, ApplicationKind::Amendment);
}

/// A draft is saved with its problems; submission names every field that is wrong.
async fn a_form_with_problems_is_refused_field_by_field(db: TestDb) {
    let c = Committee::new(db).await;
    let p = &c.platform;
    let mut form = Committee::form();
    form.public_interest = niji_governance::applications::PublicInterest::Marketing;
    form.duration_months = 0;
    form.tables[0].columns.push("kana_name".into());
    form.tables[1].table = "ndb.nothing".into();
    form.brought_in[0].sha256 = "not-a-digest".into();
    form.analysts.push(niji_governance::Member {
        user: "nobody".into(),
        role: niji_governance::MemberRole::Researcher,
    });
    let id = p.draft_application("alice", &form).await.unwrap();
    let err = p
        .submit_application("alice", &id, &c.catalog)
        .await
        .unwrap_err();
    let niji_governance::GovernanceError::Invalid(problems) = err else {
        panic!("{err}")
    };
    let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
    for field in [
        "public_interest",
        "duration_months",
        "tables[0].columns[9]",
        "tables[1]",
        "brought_in[0].sha256",
        "analysts[2]",
    ] {
        assert!(fields.contains(&field), "{field} in {fields:?}");
    }
    assert_eq!(
        p.db().application(&id).await.unwrap().unwrap().state,
        ApplicationState::Draft
    );
    assert_eq!(c.audited("application.refused").await.len(), 1);
}

niji_testdb::on_both_backends!(
    an_application_becomes_the_project_its_decision_says,
    a_revision_is_reviewed_again_from_its_own_votes,
    an_amendment_changes_the_live_project_in_place,
    a_form_with_problems_is_refused_field_by_field,
    closing_out_needs_the_leads_completion_report,
);

/// Close-out of an approved project waits for its lead's completion report, which only the
/// lead gives, once; the deletion certificate names it.
async fn closing_out_needs_the_leads_completion_report(db: TestDb) {
    let c = Committee::new(db).await;
    let p = &c.platform;
    c.live_project().await;
    let files = c.db.dir().join("projects/copay-2022");
    std::fs::create_dir_all(&files).unwrap();
    std::fs::write(files.join("held.parquet"), b"held rows").unwrap();
    let refused = p
        .close_project("custodian:test", "copay-2022", &files)
        .await
        .unwrap_err();
    assert!(
        refused.to_string().contains("reported its completion"),
        "{refused}"
    );
    assert!(files.join("held.parquet").exists(), "nothing deleted");
    let text = "差分の差分法による推計を行い、結果は学会発表と論文1本で公表した。中間生成物は残していない。";
    assert!(
        p.report_completion("bob", "copay-2022", text)
            .await
            .is_err(),
        "only the lead"
    );
    assert!(
        p.report_completion("alice", "copay-2022", "done")
            .await
            .is_err(),
        "too short"
    );
    let report = p
        .report_completion("alice", "copay-2022", text)
        .await
        .unwrap();
    assert!(
        p.report_completion("alice", "copay-2022", text)
            .await
            .is_err(),
        "once"
    );
    let certificate = p
        .close_project("custodian:test", "copay-2022", &files)
        .await
        .unwrap();
    assert_eq!(
        certificate.completion_report.as_deref(),
        Some(report.sha256.as_str())
    );
    assert_eq!(certificate.files.len(), 1);
    assert!(!files.exists());
    assert!(
        p.authorize("alice", "copay-2022", Action::QueryDummy)
            .await
            .is_err()
    );
    assert_eq!(c.audited("project.report").await.len(), 1);
    assert_eq!(c.audited("project.close").await.len(), 1);
}
