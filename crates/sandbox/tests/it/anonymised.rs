//! Anonymised record-level extracts (匿名加工) on the synthetic 難病DB, attacked with the store's
//! own rows: an attacker who knows a patient's birth date, sex, municipality, disease and
//! onset year finds no fewer than k records that could be theirs; rare diseases and extreme
//! scores do not show; nobody gets an extract without a sign-off; a withdrawn person is gone.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use niji_governance::{DATASET_BUILDER, GovernanceError};
use niji_sandbox::{DatasetFormat, Mode, QueryRequest, SandboxError, Scope};

use crate::datasets::{csv_rows, granted, registry, withdraw_one};
use crate::fixture::{Fixture, from_store, text_rows};

const EXTRACT: &str = "anonymised-patients";
const K: usize = 10;
const QUASI: [&str; 5] = [
    "birth_date",
    "sex",
    "municipality",
    "disease_no",
    "onset_year",
];

/// What the attacker knows of each patient certified in 2023, from the store: person index,
/// then the quasi-identifiers in [`QUASI`]'s order (a row per form: a patient of two diseases
/// has two).
async fn patients_2023(f: &Fixture, left_out: &[String]) -> Vec<Vec<String>> {
    let not_in = if left_out.is_empty() {
        String::new()
    } else {
        format!("AND person_idx NOT IN ({})", left_out.join(","))
    };
    text_rows(
        &from_store(
            f,
            &format!(
                "SELECT person_idx, CAST(birth_date AS VARCHAR), CAST(sex AS VARCHAR), municipality,
                        CAST(disease_no AS VARCHAR), CAST(CAST(onset_ym / 100 AS INT) AS VARCHAR)
                 FROM surveys WHERE fiscal_year = 2023 AND person_idx IS NOT NULL {not_in}"
            ),
        )
        .await,
    )
}

fn persons(rows: &[Vec<String>]) -> usize {
    rows.iter()
        .map(|r| &r[0])
        .collect::<std::collections::BTreeSet<_>>()
        .len()
}

/// The region names of the 地方区分, by JIS prefecture code (written here again, not taken
/// from niji).
fn region_of(prefecture: u32) -> &'static str {
    match prefecture {
        1 => "北海道",
        2..=7 => "東北",
        8..=14 => "関東",
        15..=23 => "中部",
        24..=30 => "近畿",
        31..=35 => "中国",
        36..=39 => "四国",
        _ => "九州・沖縄",
    }
}

/// Whether a record's label could stand for the true value: `*`, the value, a span holding it,
/// a prefix of it (a month, a prefecture), its region, or その他 for a pooled disease.
fn compatible(column: &str, label: &str, truth: &str, pooled: &dyn Fn(&str) -> bool) -> bool {
    if label == "*" {
        return true;
    }
    if label == "NULL" || truth == "NULL" {
        return label == truth;
    }
    match column {
        "birth_date" | "onset_year" => {
            let year: i64 = truth[..4].parse().unwrap();
            match label.split_once('-') {
                Some((a, b)) if a.len() == 4 && b.len() == 4 => {
                    (a.parse::<i64>().unwrap()..=b.parse().unwrap()).contains(&year)
                }
                _ => truth.starts_with(label),
            }
        }
        "municipality" => {
            if label.len() == 2 || label.len() == 5 {
                truth.starts_with(label)
            } else {
                region_of(truth[..2].parse().unwrap()) == label
            }
        }
        "disease_no" if label == "その他" => pooled(truth),
        _ => label == truth,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_patient_of_the_store_narrows_to_fewer_than_k_records() {
    let f = registry().await;
    granted(&f, "paula", EXTRACT).await;
    let d = f
        .visiting
        .deliver_dataset("paula", EXTRACT, DatasetFormat::Csv)
        .await
        .unwrap();
    let rows = csv_rows(&d.bytes);
    let report = f.visiting.extract_report(EXTRACT).await.unwrap().unwrap();
    let patients = patients_2023(&f, &[]).await;
    // One record per patient, none lost unaccounted.
    assert_eq!(report.records_in as usize, persons(&patients));
    assert_eq!(rows.len() as u64, report.records_out);
    assert_eq!(
        report.records_out + report.records_suppressed,
        report.records_in
    );
    assert!(
        report.records_out > report.records_in * 9 / 10,
        "{report:?}"
    );
    // Nothing that names a person: new record numbers 1..n, no pseudonym or index column.
    let header: Vec<&String> = rows[0].keys().collect();
    assert!(!header.iter().any(|h| *h == "pid" || *h == "person_idx"));
    let mut ids: Vec<usize> = rows
        .iter()
        .map(|r| r["record_id"].parse().unwrap())
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, (1..=rows.len()).collect::<Vec<_>>());

    // Groups of records alike in every quasi-identifier, counted here.
    let mut groups: BTreeMap<Vec<String>, usize> = BTreeMap::new();
    for r in &rows {
        let key = QUASI
            .iter()
            .map(|q| match r[*q].as_str() {
                "" => "NULL".to_string(),
                v => v.to_string(),
            })
            .collect();
        *groups.entry(key).or_default() += 1;
    }
    assert!(groups.values().all(|&n| n >= K), "a group under k");
    assert_eq!(groups.len() as u64, report.groups);

    // Rare diseases are pooled: every disease the file names has 100 patients or more.
    let mut per_disease: BTreeMap<String, usize> = BTreeMap::new();
    for p in &patients {
        *per_disease.entry(p[4].clone()).or_default() += 1;
    }
    for r in &rows {
        let d = &r["disease_no"];
        assert!(
            d == "その他" || per_disease[d] >= 100,
            "disease {d} is named"
        );
    }
    assert!(rows.iter().any(|r| r["disease_no"] == "その他"));
    let pooled = |d: &str| per_disease.get(d).is_some_and(|&n| n < 100);

    // The attack: each patient's true values against every group. A patient matches whole
    // groups only, so the sizes above already bound what they narrow to; what this adds is
    // that the labels tell the truth: every group stands for at least as many patients as it
    // has records, and every record is somebody's.
    let mut found = 0;
    let mut standing_for: BTreeMap<&Vec<String>, usize> = BTreeMap::new();
    for p in &patients {
        let mut candidates = 0;
        for (labels, n) in &groups {
            if QUASI
                .iter()
                .zip(labels.iter())
                .zip(&p[1..])
                .all(|((q, l), t)| compatible(q, l, t, &pooled))
            {
                candidates += n;
                *standing_for.entry(labels).or_default() += 1;
            }
        }
        assert!(
            candidates == 0 || candidates >= K,
            "a patient narrows to {candidates} records"
        );
        found += usize::from(candidates > 0);
    }
    for (labels, n) in &groups {
        let patients = standing_for.get(labels).copied().unwrap_or(0);
        assert!(
            patients >= *n,
            "{labels:?}: {n} records, but only {patients} patients have such values"
        );
    }
    assert!(
        found as u64 >= report.records_out,
        "every record is somebody's: {found} patients match"
    );

    // Extreme scores are top- and bottom-coded.
    for r in &rows {
        let s = &r["clinical_score"];
        match s.parse::<i64>() {
            Ok(v) => assert!((11..=89).contains(&v), "score {v} shown"),
            Err(_) => assert!(s.is_empty() || s == "90以上" || s == "10以下", "{s}"),
        }
    }
    assert!(rows.iter().any(|r| r["clinical_score"] == "90以上"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_extract_is_never_open_is_built_once_and_loses_a_withdrawn_person() {
    let f = registry().await;
    let v = &f.visiting;
    let p = v.platform();
    // Never open to all: each request is signed off.
    let e = v.open_dataset("cathy", EXTRACT).await.unwrap_err();
    assert!(e.to_string().contains("signed off"), "{e}");
    assert!(!p.dataset_is_open(EXTRACT).await.unwrap());
    // No grant, no records.
    assert!(
        v.deliver_dataset("paula", EXTRACT, DatasetFormat::Parquet)
            .await
            .is_err()
    );
    // Nobody but niji's builder queries in its scope, not even a custodian.
    for user in ["cathy", "alice"] {
        let direct = v
            .query(&QueryRequest {
                user: user.into(),
                scope: Scope::dataset(EXTRACT),
                mode: Mode::Real,
                sql: "SELECT pid, birth_date FROM nanbyo.surveys".into(),
                via: "test",
            })
            .await;
        assert!(direct.batches.is_empty(), "{user}: {}", direct.message);
    }
    // Even niji's builder gets records from its scope only anonymised: a query of its own
    // that is not one record per person is refused, not released.
    let own = v
        .query(&QueryRequest {
            user: DATASET_BUILDER.into(),
            scope: Scope::dataset(EXTRACT),
            mode: Mode::Real,
            sql: "SELECT s.pid, s.birth_date, s.sex, s.municipality, s.disease_no, \
                  CAST(s.onset_ym / 100 AS INT) AS onset_year, s.application_kind, \
                  s.severity_stage, s.clinical_score FROM nanbyo.surveys s"
                .into(),
            via: "test",
        })
        .await;
    assert!(own.batches.is_empty(), "{}", own.message);
    // Why is for custodians only: it could tell about the data.
    assert!(!own.message.contains("persons"), "{}", own.message);
    let failed = p
        .audit()
        .entries_since(None, "query.failed", "2000-01-01T00:00:00Z", None)
        .await
        .unwrap();
    assert!(
        failed
            .iter()
            .any(|e| e.detail.contains(&own.query_id) && e.detail.contains("one record per person")),
        "{failed:?}"
    );
    // Analysts cannot build it.
    let e = v.build_dataset("paula", EXTRACT).await.unwrap_err();
    assert!(
        matches!(e, SandboxError::Governance(GovernanceError::Denied(_))),
        "{e}"
    );

    granted(&f, "paula", EXTRACT).await;
    let first = v
        .deliver_dataset("paula", EXTRACT, DatasetFormat::Parquet)
        .await
        .unwrap();
    let report = v.extract_report(EXTRACT).await.unwrap().unwrap();
    // The files lost, the same version is built again to the same bytes and report.
    std::fs::remove_dir_all(f.data_dir().join("standard").join(EXTRACT)).unwrap();
    let again = v
        .deliver_dataset("paula", EXTRACT, DatasetFormat::Parquet)
        .await
        .unwrap();
    assert_eq!(again.bytes, first.bytes);
    assert_eq!(v.extract_report(EXTRACT).await.unwrap().unwrap(), report);

    // A patient of 2023 withdraws: the next version has one record fewer to anonymise.
    let person = withdraw_one(&f, "fiscal_year = 2023").await;
    let second = v
        .deliver_dataset("paula", EXTRACT, DatasetFormat::Parquet)
        .await
        .unwrap();
    assert_ne!(second.version.version, first.version.version);
    let after = v.extract_report(EXTRACT).await.unwrap().unwrap();
    assert_eq!(after.records_in + 1, report.records_in);
    assert_eq!(
        after.records_in as usize,
        persons(&patients_2023(&f, &[person]).await)
    );
}
