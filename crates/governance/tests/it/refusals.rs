//! From the attacker's side: everyone who tries to act beyond their part in a review is
//! refused with a message that says why, the application is unchanged, and the attempt is in
//! the audit log.

use std::collections::BTreeMap;

use niji_governance::{
    Action, ApplicationState, Conditions, DecisionOutcome, GovernanceError, ReviewVote,
};
use niji_testdb::TestDb;

use super::{Committee, comments};

fn says(result: Result<impl std::fmt::Debug, GovernanceError>, words: &str) {
    let err = result.expect_err("refused");
    assert!(
        err.to_string().contains(words),
        "{err} (expected {words:?})"
    );
}

/// Reviewing one's own or a colleague's application, voting unassigned or recused, voting
/// twice or as a researcher: all refused, all logged.
async fn nobody_reviews_what_they_may_not(db: TestDb) {
    let c = Committee::new(db).await;
    let p = &c.platform;
    let id = c.submitted_and_assigned().await;
    let none = BTreeMap::new();
    says(
        p.vote_on_application("dave", &id, ReviewVote::Approve, &none)
            .await,
        "recused",
    );
    says(
        p.assign_reviewer("frank", &id, "bob", &[]).await,
        "not a committee member",
    );
    says(
        p.vote_on_application("alice", &id, ReviewVote::Approve, &none)
            .await,
        "only committee members",
    );
    says(
        p.vote_on_application("mallory", &id, ReviewVote::Approve, &none)
            .await,
        "only committee members",
    );
    says(
        p.assign_reviewer("alice", &id, "carol", &[]).await,
        "only the chair",
    );
    says(
        p.assign_reviewer("frank", &id, "carol", &["dpc".into()])
            .await,
        "no dpc data",
    );
    // carol declares a conflict: from then on she is recused too.
    p.declare_conflict("carol", &id, "共同研究者")
        .await
        .unwrap();
    says(
        p.vote_on_application("carol", &id, ReviewVote::Approve, &none)
            .await,
        "recused",
    );
    // erin votes once; twice is refused.
    p.vote_on_application("erin", &id, ReviewVote::Approve, &none)
        .await
        .unwrap();
    says(
        p.vote_on_application("erin", &id, ReviewVote::Approve, &none)
            .await,
        "already",
    );
    says(
        p.vote_on_application(
            "erin",
            &id,
            ReviewVote::Reject,
            &comments(&[("secret_section", "x")]),
        )
        .await,
        "no section",
    );
    // Recused votes never count: one valid vote is no quorum.
    says(
        p.decide_application(
            "frank",
            &id,
            DecisionOutcome::Approved,
            Conditions::default(),
            "ok",
            &c.catalog,
        )
        .await,
        "no quorum: 1 of the 2",
    );
    says(
        p.decide_application(
            "erin",
            &id,
            DecisionOutcome::Approved,
            Conditions::default(),
            "ok",
            &c.catalog,
        )
        .await,
        "only the chair",
    );
    let refused = c.audited("application.refused").await;
    for who in ["dave", "alice", "mallory", "carol", "erin", "frank"] {
        assert!(
            refused.iter().any(|(actor, _)| actor == who),
            "{who}'s attempt is logged"
        );
    }
    let app = p.db().application(&id).await.unwrap().unwrap();
    assert_eq!(app.state, ApplicationState::UnderReview, "nothing moved");
}

/// The applicant cannot change what reviewers read, nor act after the decision; nobody votes
/// after it; conditions cannot widen what was asked.
async fn decisions_and_submissions_stand(db: TestDb) {
    let c = Committee::new(db).await;
    let p = &c.platform;
    let id = c.submitted_and_assigned().await;
    let mut form = Committee::form();
    form.tables[0].columns.push("birth_date".into());
    says(
        p.edit_application("alice", &id, &form).await,
        "cannot be edited",
    );
    says(
        p.edit_application("mallory", &id, &form).await,
        "no such application",
    );
    c.quorum_votes(&id).await;
    let mut widening = Conditions::default();
    widening.columns.insert(
        "ndb.receipts".into(),
        vec!["record_key".into(), "birth_date".into()],
    );
    says(
        p.decide_application(
            "frank",
            &id,
            DecisionOutcome::Approved,
            widening,
            "ok",
            &c.catalog,
        )
        .await,
        "conditions only narrow",
    );
    says(
        p.decide_application(
            "frank",
            &id,
            DecisionOutcome::Approved,
            Conditions::default(),
            " ",
            &c.catalog,
        )
        .await,
        "reasons",
    );
    p.decide_application(
        "frank",
        &id,
        DecisionOutcome::Rejected,
        Conditions::default(),
        "公益性が示されていない",
        &c.catalog,
    )
    .await
    .unwrap();
    says(
        p.decide_application(
            "frank",
            &id,
            DecisionOutcome::Approved,
            Conditions::default(),
            "ok",
            &c.catalog,
        )
        .await,
        "only an application under review",
    );
    says(
        p.vote_on_application("carol", &id, ReviewVote::Approve, &BTreeMap::new())
            .await,
        "votes are cast while it is under review",
    );
    says(
        p.accept_decision("alice", &id, &c.catalog).await,
        "only an approved application",
    );
    assert!(
        p.authorize("alice", "copay-2022", Action::QueryDummy)
            .await
            .is_err()
    );
    assert!(
        p.db().project("copay-2022").await.unwrap().is_none(),
        "a rejection makes no project"
    );
    says(
        p.submit_application("alice", &id, &c.catalog).await,
        "cannot be submitted",
    );
}

/// A stranger sees no application; a researcher cannot apply for another organisation; a
/// chair from the applicant's organisation cannot sign; marketing is no public interest.
async fn strangers_and_colleagues_are_kept_out(db: TestDb) {
    let c = Committee::new(db).await;
    let p = &c.platform;
    let id = c.submitted_and_assigned().await;
    says(
        p.application_page("mallory", &id, &c.catalog).await,
        "no such application",
    );
    says(
        p.application_page("dave", &id, &c.catalog).await,
        "no such application",
    );
    assert!(
        p.application_page("bob", &id, &c.catalog).await.is_ok(),
        "an analyst reads it"
    );
    let mut form = Committee::form();
    form.organisation = "kyoto-u".into();
    says(
        p.draft_application("alice", &form).await,
        "your own organisation",
    );
    says(
        p.draft_application("carol", &Committee::form()).await,
        "only researchers apply",
    );
    // A second chair from u-tokyo cannot sign alice's application.
    p.add_user("setup", "gina", niji_governance::UserRole::Chair)
        .await
        .unwrap();
    p.set_organisation("root", "gina", "u-tokyo").await.unwrap();
    c.quorum_votes(&id).await;
    says(
        p.decide_application(
            "gina",
            &id,
            DecisionOutcome::Approved,
            Conditions::default(),
            "ok",
            &c.catalog,
        )
        .await,
        "recused",
    );
    says(
        p.set_organisation("alice", "alice", "mhlw").await,
        "may not",
    );
    says(p.review_queue("alice", 10).await, "the committee's");
    let queue = p.review_queue("carol", 10).await.unwrap();
    assert_eq!(queue.len(), 1, "a member's queue is their assignments");
    assert!(
        p.review_queue("dave", 10).await.unwrap().is_empty(),
        "not a recused member's"
    );
}

niji_testdb::on_both_backends!(
    nobody_reviews_what_they_may_not,
    decisions_and_submissions_stand,
    strangers_and_colleagues_are_kept_out,
);
