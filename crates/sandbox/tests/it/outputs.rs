//! Output checking from both sides: what two independent checkers may release, and what the
//! author, the project's members, outsiders and a lone checker try and are refused.

use std::collections::BTreeMap;

use niji_governance::{Review, Vote};
use niji_sandbox::{Mode, SandboxError, Status};

use crate::fixture::{Fixture, column, per_prefecture, project_with, with_policy};

const BY_PREFECTURE: &str = "SELECT prefecture, count(*) AS receipts FROM ndb.receipts GROUP BY prefecture ORDER BY prefecture";
const JUSTIFICATION: &str =
    "Receipts per prefecture are the denominators of the approved protocol, section 4.";

/// The published rules, but a facility rule no cell passes: every cell it masks rests on
/// judgement alone once its persons suffice.
async fn strict_facilities() -> Fixture {
    with_policy("min_facilities = 3", "min_facilities = 1000").await
}

fn refused(r: Result<impl std::fmt::Debug, SandboxError>) -> String {
    match r {
        Err(
            e @ (SandboxError::Refused(_)
            | SandboxError::Denied(_)
            | SandboxError::Governance(
                niji_governance::GovernanceError::NotFound(_)
                | niji_governance::GovernanceError::Denied(_)
                | niji_governance::GovernanceError::Refused(_),
            )),
        ) => e.public_message(),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_independent_checkers_release_what_judgement_held_never_a_small_cell() {
    let f = strict_facilities().await;
    let v = &f.visiting;
    let truth: BTreeMap<String, i64> = per_prefecture(&f)
        .await
        .into_iter()
        .map(|(pref, (persons, _))| (pref, persons))
        .collect();
    assert!(
        truth.values().any(|&p| p < 10) && truth.values().any(|&p| p >= 10),
        "the fixture has small and large prefectures: {truth:?}"
    );
    let o = f.query(Mode::Real, BY_PREFECTURE).await;
    assert_eq!(o.status, Status::Suppressed, "{}", o.message);
    let id = o.query_id.clone();
    let codes = column(&o, "prefecture");
    // The facility rule masks every cell, whatever its persons.
    assert_eq!(
        column(&o, "receipts")
            .iter()
            .filter(|c| *c != "NULL")
            .count(),
        0
    );
    assert!(o.suppressed.iter().any(|c| c.reason.contains("facilities")));

    // Before any request: the author's colleague sees the SQL and findings, not the rows;
    // someone outside the project is told there is no such output.
    let seen = v.show_output("bob", &id).await.expect("member sees it");
    assert_eq!(seen.output.sql, BY_PREFECTURE);
    assert!(seen.result.is_none() && seen.preview.is_none());
    assert!(refused(v.show_output("carol", &id).await).contains("no such output"));
    assert!(refused(v.vote("dora", &id, Vote::Approve, "ok").await).contains("not awaiting"));

    // Only the author asks, and says why.
    assert!(refused(v.request_release("bob", &id, JUSTIFICATION).await).contains("author"));
    assert!(refused(v.request_release("alice", &id, "need it").await).contains("justification"));
    let asked = v
        .request_release("alice", &id, JUSTIFICATION)
        .await
        .expect("request");
    assert_eq!(asked.review, Review::Requested);
    assert!(refused(v.request_release("alice", &id, JUSTIFICATION).await).contains("already"));
    let queue = v
        .platform()
        .list_outputs("dora", None)
        .await
        .expect("queue");
    assert!(queue.iter().any(|q| q.id == id));

    // The checker sees the held rows unmasked and what approval would leave masked: every
    // prefecture of fewer than 10 persons, among others.
    let view = v.show_output("dora", &id).await.expect("checker view");
    let held = view.result.expect("checkers see the rows");
    assert_eq!(held.status, Status::Held);
    assert!(column(&held, "receipts").iter().all(|c| c != "NULL"));
    let preview = view.preview.expect("preview");
    assert_eq!(preview.masked_now, o.suppressed.len());
    let still_masked_rows: Vec<usize> = preview.still_masked.iter().map(|c| c.row).collect();
    for (row, code) in codes.iter().enumerate() {
        if truth[code] < 10 {
            assert!(
                still_masked_rows.contains(&row),
                "{code}: {} persons",
                truth[code]
            );
        }
    }

    // Neither the author nor a member of the project votes; one approval is not enough and
    // nobody votes twice.
    assert!(refused(v.vote("alice", &id, Vote::Approve, "mine").await).contains("checkers"));
    assert!(refused(v.vote("bob", &id, Vote::Approve, "ours").await).contains("checkers"));
    let after_one = v
        .vote("dora", &id, Vote::Approve, "cells rest on 10+ persons")
        .await
        .expect("first approval");
    assert_eq!(after_one.review, Review::Requested);
    assert!(refused(v.vote("dora", &id, Vote::Approve, "again").await).contains("already"));
    assert!(
        v.show_output("alice", &id)
            .await
            .expect("view")
            .result
            .is_none()
    );

    let released = v
        .vote("erin", &id, Vote::Approve, "agree: facility rule waived")
        .await
        .expect("second approval");
    assert_eq!(released.review, Review::Released);
    assert!(refused(v.vote("erin", &id, Vote::Reject, "late").await).contains("not awaiting"));

    // The author now gets the release: every shown cell rests on 10 or more persons, and the
    // approval released cells the facility rule had masked.
    let out = v
        .show_output("alice", &id)
        .await
        .expect("view")
        .result
        .expect("released result");
    assert!(
        matches!(out.status, Status::Released | Status::Suppressed),
        "{}",
        out.message
    );
    let receipts = column(&out, "receipts");
    let mut newly_released = 0;
    for (row, code) in column(&out, "prefecture").iter().enumerate() {
        // Prefectures of fewer than 10 persons stay withheld, whatever the votes.
        assert!(
            truth[code] >= 10,
            "{code}: a row of {} persons",
            truth[code]
        );
        if receipts[row] != "NULL" {
            newly_released += 1;
        }
    }
    assert!(newly_released > 0, "approval released nothing: {truth:?}");
    assert_eq!(out.suppressed.len(), preview.still_masked.len());

    // Every step is in the audit log, with the checkers' reasons.
    let log = v.platform().audit().recent(100).await.expect("audit");
    let actions: Vec<(&str, &str)> = log
        .iter()
        .filter(|e| e.detail.contains(&id) && e.action.starts_with("output."))
        .map(|e| (e.actor.as_str(), e.action.as_str()))
        .collect();
    for step in [
        ("alice", "output.request"),
        ("dora", "output.vote"),
        ("erin", "output.vote"),
        ("erin", "output.released"),
    ] {
        assert!(actions.contains(&step), "{step:?} not in {actions:?}");
    }
    assert!(
        log.iter()
            .any(|e| e.detail.contains("facility rule waived"))
    );
    assert!(
        v.platform()
            .audit()
            .verify()
            .await
            .expect("verify")
            .is_intact()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_rows_stay_and_one_rejection_or_a_member_checker_changes_nothing() {
    let f = strict_facilities().await;
    let v = &f.visiting;
    // Row-level results are held, and no request gets them out.
    let rows = f
        .query(Mode::Real, "SELECT pid, days FROM ndb.receipts LIMIT 5")
        .await;
    assert_eq!(rows.status, Status::Held);
    assert!(
        refused(
            v.request_release("alice", &rows.query_id, JUSTIFICATION)
                .await
        )
        .contains("cannot waive")
    );
    let mine = v.show_output("alice", &rows.query_id).await.expect("view");
    assert!(mine.result.is_none(), "members never see held rows");
    assert!(mine.output.findings["held"].as_str().is_some());

    // One rejection ends the review; later approvals are refused.
    let o = f.query(Mode::Real, BY_PREFECTURE).await;
    assert_eq!(o.status, Status::Suppressed, "{}", o.message);
    v.request_release("alice", &o.query_id, JUSTIFICATION)
        .await
        .expect("request");
    let rejected = v
        .vote(
            "erin",
            &o.query_id,
            Vote::Reject,
            "prefecture counts add nothing to the protocol",
        )
        .await
        .expect("rejection");
    assert_eq!(rejected.review, Review::Rejected);
    assert!(
        refused(v.vote("dora", &o.query_id, Vote::Approve, "ok").await).contains("not awaiting")
    );
    assert!(
        v.show_output("alice", &o.query_id)
            .await
            .expect("view")
            .result
            .is_none()
    );

    // A checker who is a member of the project is not independent.
    project_with(&f, "checked-study", &["alice", "dora"], &[]).await;
    let o = f
        .query_as("alice", "checked-study", Mode::Real, BY_PREFECTURE)
        .await;
    assert_eq!(o.status, Status::Suppressed, "{}", o.message);
    v.request_release("alice", &o.query_id, JUSTIFICATION)
        .await
        .expect("request");
    assert!(
        refused(v.vote("dora", &o.query_id, Vote::Approve, "mine too").await)
            .contains("independent")
    );
    // Nor does she see its held rows: to her it is an output of her own project.
    let seen = v
        .show_output("dora", &o.query_id)
        .await
        .expect("member view");
    assert!(seen.result.is_none() && seen.preview.is_none());
}

/// A sum held by judgement alone was checked on the bounded shadow (one pass, largest
/// contributions as bounds); review plans the exact shadow again, and the held result must
/// have its shape, or checkers could never release it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sum_checked_on_bounds_is_reviewed_on_the_exact_shadow() {
    let f = strict_facilities().await;
    let v = &f.visiting;
    let sql = "SELECT prefecture, sum(points) AS points FROM ndb.receipts GROUP BY prefecture ORDER BY prefecture";
    let o = f.query(Mode::Real, sql).await;
    assert_eq!(o.status, Status::Suppressed, "{}", o.message);
    let log = v.platform().audit().recent(20).await.expect("audit");
    let entry = log
        .iter()
        .find(|e| e.action == "query" && e.detail.contains(sql))
        .expect("audited");
    assert!(
        entry.detail.contains("\"rechecked\":false"),
        "{}",
        entry.detail
    );
    let id = o.query_id.clone();
    v.request_release("alice", &id, JUSTIFICATION)
        .await
        .expect("request");
    let view = v.show_output("dora", &id).await.expect("checker view");
    let preview = view
        .preview
        .expect("the exact shadow has the held result's shape");
    assert!(preview.still_masked.len() < preview.masked_now);
    for checker in ["dora", "erin"] {
        v.vote(checker, &id, Vote::Approve, "facility rule waived")
            .await
            .expect("approval");
    }
    let out = v
        .show_output("alice", &id)
        .await
        .expect("view")
        .result
        .expect("released");
    assert!(column(&out, "points").iter().any(|c| c != "NULL"));
}

/// A process stopped between a deciding vote and what it decided leaves the vote recorded
/// and the output still under review: the next start carries the decision out, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decision_recorded_but_not_carried_out_is_finished_once_at_the_next_start() {
    let f = strict_facilities().await;
    let v = &f.visiting;
    let mut ids = Vec::new();
    for sql in [
        BY_PREFECTURE,
        "SELECT prefecture, count(*) AS receipts FROM ndb.receipts WHERE days > 0 GROUP BY prefecture ORDER BY prefecture",
    ] {
        let o = f.query(Mode::Real, sql).await;
        assert_eq!(o.status, Status::Suppressed, "{}", o.message);
        v.request_release("alice", &o.query_id, JUSTIFICATION)
            .await
            .expect("request");
        ids.push(o.query_id);
    }
    let (released, rejected) = (&ids[0], &ids[1]);
    v.vote("dora", released, Vote::Approve, "cells rest on 10+ persons")
        .await
        .expect("first approval");
    // The votes as a stopped process left them: recorded, nothing carried out.
    for (id, checker, vote) in [
        (released, "erin", Vote::Approve),
        (rejected, "dora", Vote::Reject),
    ] {
        let ticket = v
            .platform()
            .may_vote(checker, id, vote, "decided, then the server stopped")
            .await
            .expect("ticket");
        v.platform()
            .cast_vote(checker, &ticket)
            .await
            .expect("vote");
    }
    for id in [released, rejected] {
        assert_eq!(
            v.platform().output(id).await.expect("output").review,
            Review::Requested
        );
    }
    assert!(refused(v.vote("erin", released, Vote::Approve, "again").await).contains("already"));

    assert_eq!(v.finish_interrupted_reviews().await.expect("finished"), 2);
    assert_eq!(
        v.platform().output(released).await.expect("output").review,
        Review::Released
    );
    assert_eq!(
        v.platform().output(rejected).await.expect("output").review,
        Review::Rejected
    );
    let out = v
        .show_output("alice", released)
        .await
        .expect("view")
        .result
        .expect("the author gets the release");
    assert!(column(&out, "receipts").iter().any(|c| c != "NULL"));
    // Nothing is left to finish, and nothing was decided twice.
    assert_eq!(v.finish_interrupted_reviews().await.expect("finished"), 0);
    let log = v.platform().audit().recent(500).await.expect("audit");
    for (id, action) in [(released, "output.released"), (rejected, "output.rejected")] {
        let n = log
            .iter()
            .filter(|e| e.action == action && e.detail.contains(id.as_str()))
            .count();
        assert_eq!(n, 1, "{action} {id} audited once");
    }
}
