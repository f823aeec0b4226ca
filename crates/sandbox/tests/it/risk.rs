//! The committee's risk summary completed from the store: persons per cohort code, checked
//! against the stored Parquet; a code under the threshold is flagged without its count, and
//! nobody outside the committee sees the summary at all.

#![allow(clippy::unwrap_used)]

use niji_governance::{ApplicationForm, Cohort, UserRole};

use crate::fixture::{Fixture, from_store, repo, text_rows};

/// Persons in the store with a diagnosis starting with `code` (diagnoses through their
/// receipt's person).
async fn truth(f: &Fixture, code: &str) -> u64 {
    let sql = format!(
        "SELECT count(DISTINCT r.person_idx) FROM diagnoses d JOIN receipts r \
         ON d.receipt_key = r.record_key WHERE d.icd10 LIKE '{code}%' AND r.person_idx IS NOT NULL"
    );
    text_rows(&from_store(f, &sql).await)[0][0].parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_committee_sees_persons_per_code_and_which_codes_fall_under_the_threshold() {
    let f = Fixture::new(None).await;
    let v = &f.visiting;
    let p = v.platform();
    let shell = format!("{}test", niji_governance::SHELL_ACTOR_PREFIX);
    p.add_organisation(&shell, "u-tokyo", "東京大学")
        .await
        .unwrap();
    p.set_organisation(&shell, "alice", "u-tokyo")
        .await
        .unwrap();
    p.add_user(&shell, "cathy", UserRole::Custodian)
        .await
        .unwrap();

    // A common code and a rare one, from the store itself.
    let by_code = text_rows(
        &from_store(
            &f,
            "SELECT substr(d.icd10, 1, 3) AS code, count(DISTINCT r.person_idx) AS n \
             FROM diagnoses d JOIN receipts r ON d.receipt_key = r.record_key \
             WHERE r.person_idx IS NOT NULL GROUP BY 1 ORDER BY n DESC, code",
        )
        .await,
    );
    let common = by_code[0][0].clone();
    let rare = by_code
        .iter()
        .find(|r| r[1].parse::<u64>().unwrap() < 10)
        .map(|r| r[0].clone())
        .expect("a code with few persons");
    let (common_n, rare_n) = (truth(&f, &common).await, truth(&f, &rare).await);
    assert!(common_n >= 10 && rare_n < 10);

    let text = std::fs::read_to_string(repo().join("sandbox/examples/application.toml")).unwrap();
    let mut form: ApplicationForm = toml::from_str(&text).unwrap();
    form.cohort = Some(Cohort {
        source: "ndb.diagnoses.icd10".into(),
        codes: vec![common.clone(), rare.clone()],
    });
    let id = p.draft_application("alice", &form).await.unwrap();

    let page = v.application_page("cathy", &id).await.unwrap();
    let risk = page.risk.expect("the custodian sees the risk summary");
    assert_eq!(risk.codes.len(), 2);
    let (c, r) = (&risk.codes[0], &risk.codes[1]);
    assert_eq!(
        (c.code.as_str(), c.persons, c.under_threshold),
        (common.as_str(), Some(common_n), false)
    );
    assert_eq!(
        (r.code.as_str(), r.persons, r.under_threshold),
        (rare.as_str(), None, true)
    );
    assert_eq!(r.threshold, 10);
    assert!(
        risk.reasons.iter().any(|why| why.contains(&rare)),
        "{:?}",
        risk.reasons
    );
    // The page as JSON never carries the rare code's count.
    let json = serde_json::to_value(&risk.codes[1]).unwrap();
    assert!(json["persons"].is_null(), "{json}");
    // The applicant sees no risk summary; someone outside sees no application.
    assert!(
        v.application_page("alice", &id)
            .await
            .unwrap()
            .risk
            .is_none()
    );
    assert!(v.application_page("carol", &id).await.is_err());
}
