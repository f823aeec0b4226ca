//! Consent withdrawal (難病DB, 小慢DB), checked against the stored Parquet: a withdrawn person
//! leaves every view of every project from the next query on, outputs held before it are not
//! released with their rows, and nobody but a custodian can record one (or learn from trying
//! whether a registration is stored).

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use niji_governance::SHELL_ACTOR_PREFIX;
use niji_pseudo::Registration;
use niji_sandbox::{Mode, SandboxError, Status};

use crate::fixture::{Fixture, column, from_store, project_with, text_rows, with_policy};

const STUDY: &str = "consent-study";
const PERSONS: u64 = 2000;

fn custodian() -> String {
    format!("{SHELL_ACTOR_PREFIX}test")
}

/// The example project with 難病DB's surveys besides NDB and 介護DB.
async fn study(f: &Fixture) {
    project_with(
        f,
        STUDY,
        &["alice", "bob"],
        &[
            ("nanbyo.surveys", "fiscal_year"),
            ("nanbyo.surveys", "disease_no"),
        ],
    )
    .await;
}

/// The registrations of the raw 難病DB extract the fixture ingested, by record key.
fn registrations() -> BTreeMap<String, [String; 4]> {
    crate::fixture::raw_registrations(PERSONS, &niji_testkit::Overrides::default())
}

fn registration(fields: &[String; 4]) -> Registration {
    Registration::parse(&fields[0], &fields[1], &fields[2], &fields[3]).unwrap()
}

/// The custodian records that the 難病DB registration `fields` withdrew.
async fn withdraw(f: &Fixture, fields: &[String; 4]) -> niji_sandbox::WithdrawalReport {
    f.visiting
        .withdraw_consent(&custodian(), "nanbyo", &registration(fields), false)
        .await
        .unwrap()
}

/// Stored surveys of persons who also have receipts: (record key, person index), one row per
/// person, the persons in index order.
async fn linked_surveys(f: &Fixture) -> Vec<(String, String)> {
    let rows = text_rows(
        &from_store(
            f,
            "SELECT min(record_key), person_idx FROM surveys \
             WHERE person_idx IN (SELECT person_idx FROM receipts) \
             GROUP BY person_idx ORDER BY person_idx",
        )
        .await,
    );
    rows.into_iter()
        .map(|mut r| (r.swap_remove(0), r.swap_remove(0)))
        .collect()
}

async fn one_number(f: &Fixture, sql: &str) -> i64 {
    let o = f.query_as("alice", STUDY, Mode::Real, sql).await;
    assert_eq!(o.status, Status::Released, "{sql}: {}", o.message);
    column(&o, "n")[0].parse().unwrap()
}

async fn truth(f: &Fixture, sql: &str) -> i64 {
    text_rows(&from_store(f, sql).await)[0][0].parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_withdrawn_person_leaves_every_view_from_the_next_query_and_counts_drop_by_exactly_them()
{
    let f = Fixture::with(PERSONS, Default::default()).await;
    study(&f).await;
    let v = &f.visiting;
    let raw = registrations();
    let linked = linked_surveys(&f).await;
    assert!(
        linked.len() >= 3,
        "the fixture has linked 難病DB persons: {linked:?}"
    );
    let chosen = &linked[..2];
    let ids: Vec<&str> = chosen.iter().map(|(_, p)| p.as_str()).collect();
    let withdrawn = ids.join(", ");

    // Before: the views show every stored row (the truth, from the Parquet files).
    let surveys_sql = "SELECT count(*) AS n FROM nanbyo.surveys";
    let receipts_sql = "SELECT count(*) AS n FROM ndb.receipts";
    let persons_sql = "SELECT count(DISTINCT pid) AS n FROM ndb.receipts";
    let surveys_before = truth(&f, "SELECT count(*) FROM surveys").await;
    let receipts_before = truth(&f, "SELECT count(*) FROM receipts").await;
    // Views built before the withdrawal (another query, so that differencing does not mask
    // the one after), and a real-data work table made from them.
    let warm = f
        .query(Mode::Real, "SELECT count(*) AS n FROM kaigo.claims")
        .await;
    assert_eq!(warm.status, Status::Released, "{}", warm.message);
    let made = f
        .query_as(
            "alice",
            STUDY,
            Mode::Real,
            "CREATE TABLE work.linked AS SELECT pid, claim_ym FROM ndb.receipts",
        )
        .await;
    assert_eq!(made.status, Status::Ok, "{}", made.message);

    // Attackers: a researcher of the project, and a checker, cannot record a withdrawal, and
    // are told the same whether the registration is stored or not (no oracle).
    let stored = registration(&raw[&chosen[0].0]);
    let invented = Registration::parse("ヤマダ タロウ", "1", "1950-01-01", "999").unwrap();
    for actor in ["alice", "dora"] {
        let a = v.withdraw_consent(actor, "nanbyo", &stored, false).await;
        let b = v.withdraw_consent(actor, "nanbyo", &invented, true).await;
        let (Err(a), Err(b)) = (a, b) else {
            panic!("{actor} recorded a withdrawal");
        };
        assert_eq!(a.status(), niji_sandbox::Status::Refused, "{a}");
        assert_eq!(a.public_message(), b.public_message());
    }
    assert!(
        v.platform()
            .list_withdrawals(&custodian())
            .await
            .unwrap()
            .is_empty()
    );
    // A registration nobody delivered is refused unless said to be not yet delivered.
    let e = v
        .withdraw_consent(&custodian(), "nanbyo", &invented, false)
        .await
        .unwrap_err();
    assert!(e.public_message().contains("no stored registration"), "{e}");
    // Only consent-based databases.
    assert!(
        v.withdraw_consent(&custodian(), "ndb", &stored, false)
            .await
            .is_err()
    );

    for (record_key, _) in chosen {
        let report = withdraw(&f, &raw[record_key]).await;
        assert_eq!(report.persons, 1, "{report:?}");
        assert!(report.rows >= 1);
    }
    let again = v
        .withdraw_consent(&custodian(), "nanbyo", &stored, false)
        .await
        .unwrap_err();
    assert!(again.public_message().contains("already"), "{again}");

    // After: exactly the withdrawn persons' rows are gone, in 難病DB and in the NDB they link to.
    let surveys_after = truth(
        &f,
        &format!("SELECT count(*) FROM surveys WHERE person_idx IS NULL OR person_idx NOT IN ({withdrawn})"),
    )
    .await;
    let receipts_after = truth(
        &f,
        &format!("SELECT count(*) FROM receipts WHERE person_idx IS NULL OR person_idx NOT IN ({withdrawn})"),
    )
    .await;
    let persons_after = truth(
        &f,
        &format!(
            "SELECT count(DISTINCT person_idx) FROM receipts WHERE person_idx NOT IN ({withdrawn})"
        ),
    )
    .await;
    let persons_before = truth(&f, "SELECT count(DISTINCT person_idx) FROM receipts").await;
    assert!(surveys_after < surveys_before && receipts_after < receipts_before);
    assert_eq!(persons_after, persons_before - 2);
    assert_eq!(one_number(&f, surveys_sql).await, surveys_after);
    assert_eq!(one_number(&f, receipts_sql).await, receipts_after);
    assert_eq!(one_number(&f, persons_sql).await, persons_after);
    // Every project: the example project, built before, is rebuilt without them too.
    let o = f.query(Mode::Real, receipts_sql).await;
    assert_eq!(column(&o, "n"), vec![receipts_after.to_string()]);
    // The work table made before the withdrawal may hold them: it is gone, and the log says
    // why.
    let gone = f
        .query_as(
            "alice",
            STUDY,
            Mode::Real,
            "SELECT count(*) AS n FROM work.linked",
        )
        .await;
    assert_eq!(gone.status, Status::Refused, "{}", gone.message);
    let tables = v.project_tables("alice", STUDY, Mode::Real).await.unwrap();
    assert!(
        !tables.iter().any(|(t, _)| t.contains("linked")),
        "{tables:?}"
    );
    // The dummy store has no real persons to withdraw.
    let dummy = f.query_as("alice", STUDY, Mode::Dummy, surveys_sql).await;
    assert_eq!(dummy.status, Status::Ok, "{}", dummy.message);

    // Recorded once each, audited without the registration.
    let kept = v.platform().list_withdrawals(&custodian()).await.unwrap();
    assert_eq!(kept.len(), 2);
    let log = v.platform().audit().recent(1000).await.unwrap();
    let withdrawals = log
        .iter()
        .filter(|e| e.action == "consent.withdraw")
        .count();
    assert_eq!(withdrawals, 2);
    assert!(
        log.iter()
            .any(|e| e.action == "workspace.withdrawn" && e.detail.contains("linked"))
    );
    for e in &log {
        for w in &kept {
            assert!(
                !e.detail.contains(&w.research_id),
                "{}: {}",
                e.action,
                e.detail
            );
        }
        for (record_key, _) in chosen {
            let [kana, _, birth, consent] = &raw[record_key];
            for secret in [kana, birth, consent] {
                assert!(
                    !e.detail.contains(secret.as_str()),
                    "{}: {}",
                    e.action,
                    e.detail
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_output_held_before_a_withdrawal_is_released_only_if_its_rows_are_unchanged() {
    // Every cell masked by a rule output checkers may waive, so every output is releasable.
    let f = with_policy("min_facilities = 3", "min_facilities = 1000").await;
    study(&f).await;
    let v = &f.visiting;
    let raw = registrations();
    let linked = linked_surveys(&f).await;
    let (record_key, person) = &linked[0];
    let theirs: Vec<String> = text_rows(
        &from_store(
            &f,
            &format!("SELECT DISTINCT prefecture FROM receipts WHERE person_idx = {person}"),
        )
        .await,
    )
    .into_iter()
    .map(|mut r| r.swap_remove(0))
    .collect();
    // The prefecture with the most persons among those the withdrawn person has no receipt in.
    let elsewhere = text_rows(
        &from_store(
            &f,
            "SELECT prefecture, count(DISTINCT person_idx) AS n FROM receipts \
             GROUP BY prefecture ORDER BY n DESC, prefecture",
        )
        .await,
    )
    .into_iter()
    .map(|mut r| r.swap_remove(0))
    .find(|p| !theirs.contains(p))
    .unwrap();
    let held = |sql: String| {
        let f = &f;
        async move {
            let o = f.query_as("alice", STUDY, Mode::Real, &sql).await;
            assert_eq!(o.status, Status::Suppressed, "{sql}: {}", o.message);
            o.query_id
        }
    };
    // One cell over every receipt: the withdrawn person is in it.
    let touched = held("SELECT count(*) AS receipts FROM ndb.receipts".to_string()).await;
    let untouched = held(format!(
        "SELECT prefecture, count(*) AS receipts FROM ndb.receipts WHERE prefecture = '{elsewhere}' GROUP BY prefecture"
    ))
    .await;

    withdraw(&f, &raw[record_key]).await;
    let justification = "Receipts per prefecture are the denominators of the protocol, section 4.";
    match v.request_release("alice", &touched, justification).await {
        Err(SandboxError::Refused(why)) => assert!(why.contains("withdrawn consent"), "{why}"),
        other => panic!("an output with a withdrawn person's rows went for release: {other:?}"),
    }
    v.request_release("alice", &untouched, justification)
        .await
        .unwrap();
}
