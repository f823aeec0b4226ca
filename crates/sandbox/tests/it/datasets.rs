//! Standard datasets on a synthetic 難病DB, checked against the stored Parquet: every requester
//! gets the same bytes, no released cell rests on fewer than 10 persons, a withdrawn person is
//! gone from the next version (and the cell that lost them is not released beside the old one),
//! and nobody gets a dataset, or builds one, beyond their role.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};

use niji_governance::{DatasetRequestForm, Offered, RequestState, SHELL_ACTOR_PREFIX, UserRole};
use niji_pseudo::Registration;
use niji_sandbox::{DatasetFormat, Mode, QueryRequest, SandboxError, Scope};

use crate::fixture::{Fixture, from_store, text_rows};

/// Certified patients in the fixture's registry (fiscal years 2019–2023).
pub(crate) const PATIENTS: u64 = 20_000;

fn custodian() -> String {
    format!("{SHELL_ACTOR_PREFIX}test")
}

/// The registry, with the custodian cathy, analysts paula (pharma-a) and quinn (pharma-b),
/// and the committee member dora, of pharma-b's parent university (to test recusal, erin is
/// made a member of pharma-a).
pub(crate) async fn registry() -> Fixture {
    let f = Fixture::with(
        PATIENTS,
        niji_testkit::Overrides {
            nanbyo_registry: true,
            ..Default::default()
        },
    )
    .await;
    let p = f.visiting.platform();
    for (id, name) in [("pharma-a", "Pharma A"), ("pharma-b", "Pharma B")] {
        p.add_organisation(&custodian(), id, name).await.unwrap();
    }
    for (name, role, org) in [
        ("cathy", UserRole::Custodian, None),
        ("paula", UserRole::Analyst, Some("pharma-a")),
        ("quinn", UserRole::Analyst, Some("pharma-b")),
    ] {
        p.add_user("test", name, role).await.unwrap();
        if let Some(org) = org {
            p.set_organisation(&custodian(), name, org).await.unwrap();
        }
    }
    p.set_organisation(&custodian(), "erin", "pharma-a")
        .await
        .unwrap();
    f
}

fn form(dataset: &str) -> DatasetRequestForm {
    DatasetRequestForm {
        dataset: dataset.into(),
        purpose: "Feasibility of a phase III trial in this disease across prefectures".into(),
        public_interest: "Earlier access to treatment for patients of a rare disease".into(),
        pledge: true,
    }
}

/// `user` requests `dataset` and dora signs it off.
pub(crate) async fn granted(f: &Fixture, user: &str, dataset: &str) {
    let p = f.visiting.platform();
    let r = p
        .request_dataset(user, &form(dataset), f.visiting.offered(dataset))
        .await
        .unwrap();
    assert_eq!(r.state, RequestState::Submitted);
    let r = p
        .sign_off_dataset_request("dora", &r.id, true, "")
        .await
        .unwrap();
    assert_eq!(r.state, RequestState::Granted);
}

/// The CSV's rows by column name.
pub(crate) fn csv_rows(bytes: &[u8]) -> Vec<BTreeMap<String, String>> {
    let mut reader = csv::Reader::from_reader(bytes);
    let header: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_string)
        .collect();
    reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            header
                .iter()
                .cloned()
                .zip(r.iter().map(str::to_string))
                .collect()
        })
        .collect()
}

/// The natural-history dataset's grouping items and its counts.
const KEYS: [&str; 4] = ["fiscal_year", "disease_no", "age_band", "sex"];
const COUNTS: [&str; 6] = [
    "patients", "stage_1", "stage_2", "stage_3", "stage_4", "stage_5",
];
const DATASET: &str = "natural-history";
const AGE_BAND: &str =
    "least(CAST(floor((fiscal_year - date_part('year', birth_date)) / 5) AS INT) * 5, 100)";

/// Persons per group of the natural-history dataset (all, then per severity stage), from the
/// stored Parquet with the store's own person index, `left_out` person indexes excepted.
async fn counts_in_store(f: &Fixture, left_out: &[String]) -> BTreeMap<Vec<String>, Vec<i64>> {
    let not_in = if left_out.is_empty() {
        String::new()
    } else {
        format!("AND person_idx NOT IN ({})", left_out.join(","))
    };
    let stages: Vec<String> = (1..=5)
        .map(|k| format!("count(DISTINCT person_idx) FILTER (WHERE severity_stage = {k})"))
        .collect();
    let sql = format!(
        "SELECT fiscal_year, disease_no, {AGE_BAND}, sex, count(DISTINCT person_idx), {}
         FROM surveys WHERE person_idx IS NOT NULL {not_in} GROUP BY 1, 2, 3, 4",
        stages.join(", ")
    );
    text_rows(&from_store(f, &sql).await)
        .into_iter()
        .map(|mut row| {
            let counts = row.split_off(KEYS.len());
            (row, counts.iter().map(|n| n.parse().unwrap()).collect())
        })
        .collect()
}

fn keys_of(row: &BTreeMap<String, String>) -> Vec<String> {
    KEYS.iter().map(|k| row[*k].clone()).collect()
}

/// Checks every count of the file's `rows` against the store's `truth`: a released count is
/// the store's and rests on ten or more persons; a masked one is empty and named; every group
/// of ten or more persons is in the file, and no smaller one. Returns the counts released.
fn check_counts(
    rows: &[BTreeMap<String, String>],
    truth: &BTreeMap<Vec<String>, Vec<i64>>,
) -> usize {
    let mut released = 0;
    for row in rows {
        let counts = &truth[&keys_of(row)];
        assert!(
            counts[0] >= 10,
            "a row's group rests on {} persons: {row:?}",
            counts[0]
        );
        let masked: BTreeSet<&str> = row["masked"].split(',').filter(|m| !m.is_empty()).collect();
        for (column, persons) in COUNTS.iter().zip(counts) {
            if masked.contains(column) {
                assert_eq!(row[*column], "", "a masked cell is empty: {row:?}");
            } else {
                assert!(
                    *persons >= 10,
                    "{column} rests on {persons} persons: {row:?}"
                );
                assert_eq!(row[*column], persons.to_string(), "{column}: {row:?}");
                released += 1;
            }
        }
    }
    let in_file: BTreeSet<Vec<String>> = rows.iter().map(keys_of).collect();
    for (keys, counts) in truth {
        assert_eq!(
            in_file.contains(keys),
            counts[0] >= 10,
            "{keys:?}: {counts:?}"
        );
    }
    released
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_requesters_get_the_same_bytes_and_each_delivery_is_audited() {
    let f = registry().await;
    let v = &f.visiting;
    granted(&f, "paula", DATASET).await;
    granted(&f, "quinn", DATASET).await;
    let mut seen = Vec::new();
    for user in ["paula", "quinn"] {
        for format in [DatasetFormat::Csv, DatasetFormat::Parquet] {
            let d = v.deliver_dataset(user, DATASET, format).await.unwrap();
            seen.push((format, d.sha256.clone(), d.bytes.clone(), d.version.clone()));
        }
    }
    let (csv, parquet): (Vec<_>, Vec<_>) = seen
        .iter()
        .partition(|(format, ..)| *format == DatasetFormat::Csv);
    for same in [&csv, &parquet] {
        assert_eq!(same[0].2, same[1].2, "both requesters get the same bytes");
        assert_eq!(same[0].1, same[1].1);
        assert_eq!(same[0].3, same[1].3, "of the same version");
    }
    let version = &csv[0].3;
    assert_eq!(csv[0].1, version.csv_sha256);
    assert_eq!(parquet[0].1, version.parquet_sha256);
    assert!(
        version.rows_released > 0,
        "a registry of {PATIENTS} has cells to release"
    );
    // Built once: one version recorded, however many deliveries.
    assert_eq!(
        v.platform().dataset_versions(DATASET).await.unwrap().len(),
        1
    );
    // The files lost, the same version is built again to the same bytes.
    let dir = f.data_dir().join("standard").join(DATASET);
    std::fs::remove_dir_all(&dir).unwrap();
    let again = v
        .deliver_dataset("paula", DATASET, DatasetFormat::Csv)
        .await
        .map_err(|e| e.to_string())
        .unwrap();
    assert_eq!(
        again.bytes, csv[0].2,
        "a build of the same data version is byte for byte the same"
    );
    // Each delivery audited: who, which version, which digest.
    let entries = v
        .platform()
        .audit()
        .entries_since(None, "dataset.deliver", "2000-01-01T00:00:00Z", None)
        .await
        .unwrap();
    assert_eq!(entries.len(), 5);
    for e in &entries {
        let detail: serde_json::Value = serde_json::from_str(&e.detail).unwrap();
        assert_eq!(detail["version"], version.version.as_str());
        assert_eq!(detail["dataset"], DATASET);
        let digest = if detail["format"] == "csv" {
            &version.csv_sha256
        } else {
            &version.parquet_sha256
        };
        assert_eq!(detail["sha256"], digest.as_str());
    }
    let users: BTreeSet<&str> = entries.iter().map(|e| e.actor.as_str()).collect();
    assert_eq!(users, BTreeSet::from(["paula", "quinn"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_released_cell_rests_on_ten_or_more_persons_of_the_store() {
    let f = registry().await;
    granted(&f, "paula", DATASET).await;
    let d = f
        .visiting
        .deliver_dataset("paula", DATASET, DatasetFormat::Csv)
        .await
        .unwrap();
    let rows = csv_rows(&d.bytes);
    assert!(!rows.is_empty());
    let released = check_counts(&rows, &counts_in_store(&f, &[]).await);
    assert!(released > 0);
    // Masked cells are counted in the version's record.
    let masked: usize = rows
        .iter()
        .map(|r| r["masked"].split(',').filter(|m| !m.is_empty()).count())
        .sum();
    assert_eq!(i64::try_from(masked).unwrap(), d.version.cells_masked);
}

/// The registrations of the registry's raw extract, by record key.
fn registrations() -> BTreeMap<String, Registration> {
    let overrides = niji_testkit::Overrides {
        nanbyo_registry: true,
        ..Default::default()
    };
    crate::fixture::raw_registrations(PATIENTS, &overrides)
        .into_iter()
        .filter_map(|(key, f)| Some((key, Registration::parse(&f[0], &f[1], &f[2], &f[3]).ok()?)))
        .collect()
}

/// A custodian records the withdrawal of the first person (by record key) of the stored
/// surveys `where` selects; their person index.
pub(crate) async fn withdraw_one(f: &Fixture, r#where: &str) -> String {
    let stored = text_rows(
        &from_store(
            f,
            &format!(
                "SELECT record_key, person_idx FROM surveys
                 WHERE {where} AND person_idx IS NOT NULL ORDER BY record_key"
            ),
        )
        .await,
    );
    let registrations = registrations();
    let (record, person) = stored
        .iter()
        .find_map(|row| registrations.get(&row[0]).map(|r| (r, row[1].clone())))
        .unwrap();
    f.visiting
        .withdraw_consent(&custodian(), "nanbyo", record, false)
        .await
        .unwrap();
    person
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_withdrawn_person_is_gone_from_the_next_version_and_their_cell_is_not_differenced() {
    let f = registry().await;
    let v = &f.visiting;
    granted(&f, "paula", DATASET).await;
    let first = v
        .deliver_dataset("paula", DATASET, DatasetFormat::Csv)
        .await
        .unwrap();
    // A person behind a released count.
    let cell = csv_rows(&first.bytes)
        .into_iter()
        .find(|r| r["masked"].is_empty())
        .unwrap();
    let keys = keys_of(&cell);
    let person = withdraw_one(
        &f,
        &format!(
            "fiscal_year = {} AND disease_no = {} AND {AGE_BAND} = {} AND sex = {}",
            keys[0], keys[1], keys[2], keys[3]
        ),
    )
    .await;
    let second = v
        .deliver_dataset("paula", DATASET, DatasetFormat::Csv)
        .await
        .unwrap();
    assert_ne!(
        second.version.version, first.version.version,
        "a withdrawal is a new data version"
    );
    let rows = csv_rows(&second.bytes);
    check_counts(&rows, &counts_in_store(&f, &[person]).await);
    // The group that lost the person would tell, beside the first version's, who left: its
    // count is masked (or the row withheld, were it under ten now).
    let now = rows.iter().find(|r| keys_of(r) == keys);
    assert!(
        now.is_none_or(|r| r["patients"].is_empty() && r["masked"].contains("patients")),
        "{now:?} beside {cell:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nobody_gets_or_builds_a_dataset_beyond_their_role() {
    let f = registry().await;
    let v = &f.visiting;
    let p = v.platform();
    // Only custodians build; only niji's builder queries in a dataset's scope.
    for user in ["paula", "alice", "dora"] {
        let e = v.build_dataset(user, "patients").await.unwrap_err();
        assert!(
            matches!(
                e,
                SandboxError::Governance(niji_governance::GovernanceError::Denied(_))
            ),
            "{user}: {e}"
        );
    }
    let direct = v
        .query(&QueryRequest {
            user: "cathy".into(),
            scope: Scope::dataset(DATASET),
            mode: Mode::Real,
            sql: "SELECT count(*) AS n FROM nanbyo.surveys".into(),
            via: "test",
        })
        .await;
    assert!(
        direct.batches.is_empty() && direct.row_count.is_none(),
        "{}",
        direct.message
    );
    // No grant, no file, and the same refusal whether or not the dataset exists.
    let no_grant = v
        .deliver_dataset("paula", "patients", DatasetFormat::Csv)
        .await
        .unwrap_err()
        .public_message();
    let no_dataset = v
        .deliver_dataset("paula", "no-such-dataset", DatasetFormat::Csv)
        .await
        .unwrap_err()
        .public_message();
    assert!(no_grant.contains("no granted"), "{no_grant}");
    assert_eq!(
        no_grant.replace("patients", "X"),
        no_dataset.replace("no-such-dataset", "X")
    );
    // A submitted request is not a grant; a researcher of a project may not sign it off; a
    // committee member of the requester's organisation is recused.
    let r = p
        .request_dataset("paula", &form("patients"), Offered::Counts)
        .await
        .unwrap();
    assert!(
        v.deliver_dataset("paula", "patients", DatasetFormat::Csv)
            .await
            .is_err()
    );
    assert!(
        p.sign_off_dataset_request("alice", &r.id, true, "")
            .await
            .is_err()
    );
    assert!(
        p.sign_off_dataset_request("paula", &r.id, true, "")
            .await
            .is_err()
    );
    let recused = p
        .sign_off_dataset_request("erin", &r.id, true, "")
        .await
        .unwrap_err();
    assert!(recused.to_string().contains("recused"), "{recused}");
    assert_eq!(
        p.dataset_request(&r.id).await.unwrap().state,
        RequestState::Submitted
    );
    // paula's grant is hers, not quinn's.
    p.sign_off_dataset_request("dora", &r.id, true, "")
        .await
        .unwrap();
    assert!(
        v.deliver_dataset("paula", "patients", DatasetFormat::Csv)
            .await
            .is_ok()
    );
    assert!(
        v.deliver_dataset("quinn", "patients", DatasetFormat::Csv)
            .await
            .is_err()
    );
    // The form is checked: a pledge, and words for purpose and public interest.
    let mut bad = form("patients");
    bad.pledge = false;
    bad.purpose = "trial".into();
    let e = p
        .request_dataset("quinn", &bad, Offered::Counts)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("pledge") && e.contains("purpose"), "{e}");
    // An open dataset: granted at once, but only to approved organisations.
    p.open_dataset("cathy", "incidence").await.unwrap();
    let r = p
        .request_dataset("quinn", &form("incidence"), Offered::Counts)
        .await
        .unwrap();
    assert_eq!(r.state, RequestState::Submitted, "pharma-b is not approved");
    p.approve_dataset_organisation("cathy", "pharma-b")
        .await
        .unwrap();
    let r = p
        .request_dataset("quinn", &form("incidence"), Offered::Counts)
        .await
        .unwrap();
    assert_eq!(r.state, RequestState::Granted);
    assert!(
        p.open_dataset("paula", "patients").await.is_err(),
        "analysts do not open datasets"
    );
    assert!(
        p.approve_dataset_organisation("quinn", "pharma-a")
            .await
            .is_err()
    );
}
