use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray, Date32Array, Int32Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use niji_catalog::anonymisation::{Anonymisation, ExtractColumn, Level};

use super::*;

fn column(name: &str, levels: &[Level]) -> ExtractColumn {
    ExtractColumn {
        name: name.into(),
        meaning_ja: name.into(),
        meaning_en: name.into(),
        levels: levels.to_vec(),
        pool_below: None,
        top: None,
        bottom: None,
        suppressible: true,
    }
}

fn spec() -> Anonymisation {
    let mut disease = column("disease", &[Level::Value]);
    disease.pool_below = Some(5);
    disease.suppressible = false;
    let mut score = column("score", &[]);
    score.top = Some(90);
    score.bottom = Some(10);
    Anonymisation {
        person: "pid".into(),
        record_id: "record_id".into(),
        k: None,
        columns: vec![
            column(
                "birth",
                &[
                    Level::Month,
                    Level::Year,
                    Level::Years(5),
                    Level::Years(10),
                    Level::Suppressed,
                ],
            ),
            column("sex", &[Level::Value, Level::Suppressed]),
            column(
                "area",
                &[
                    Level::Value,
                    Level::Prefecture,
                    Level::Region,
                    Level::Suppressed,
                ],
            ),
            disease,
            score,
        ],
    }
}

fn policy(k: u64, percent: f64) -> AnonymisationPolicy {
    AnonymisationPolicy {
        k,
        max_suppressed_percent: percent,
    }
}

struct Row {
    pid: String,
    birth: i32,
    sex: i32,
    area: &'static str,
    disease: i32,
    score: i32,
}

fn batch(rows: &[Row]) -> RecordBatch {
    let schema = Schema::new(vec![
        Field::new("pid", DataType::Utf8, false),
        Field::new("birth", DataType::Date32, true),
        Field::new("sex", DataType::Int32, true),
        Field::new("area", DataType::Utf8, true),
        Field::new("disease", DataType::Int32, true),
        Field::new("score", DataType::Int32, true),
    ]);
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|r| r.pid.clone()),
        )),
        Arc::new(Date32Array::from_iter_values(rows.iter().map(|r| r.birth))),
        Arc::new(Int32Array::from_iter_values(rows.iter().map(|r| r.sex))),
        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.area))),
        Arc::new(Int32Array::from_iter_values(rows.iter().map(|r| r.disease))),
        Arc::new(Int32Array::from_iter_values(rows.iter().map(|r| r.score))),
    ];
    RecordBatch::try_new(Arc::new(schema), columns).unwrap()
}

const AREAS: [&str; 6] = ["13101", "13102", "14100", "27100", "27140", "01100"];

/// A deterministic population: `n` persons, a few diseases common and one rare.
fn population(n: usize, seed: u64) -> Vec<Row> {
    let mut x = seed;
    let mut next = move |m: u64| {
        x = x
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (x >> 33) % m
    };
    (0..n)
        .map(|i| Row {
            pid: format!("p{i}"),
            birth: -3650 + next(20_000) as i32,
            sex: 1 + next(2) as i32,
            area: AREAS[next(AREAS.len() as u64) as usize],
            disease: if i % 97 == 0 { 999 } else { 1 + next(4) as i32 },
            score: next(101) as i32,
        })
        .collect()
}

fn strings(batch: &RecordBatch, name: &str) -> Vec<Option<String>> {
    let c = arrow::compute::cast(batch.column_by_name(name).unwrap(), &DataType::Utf8).unwrap();
    c.as_string::<i32>()
        .iter()
        .map(|v| v.map(str::to_string))
        .collect()
}

#[test]
fn reaches_k_pools_codes_and_reports_what_it_lost() {
    let rows = population(2_000, 7);
    let out = anonymise(&batch(&rows), &spec(), &policy(5, 5.0)).unwrap();
    let r = &out.report;
    assert!(r.k_reached >= 5, "{r:?}");
    assert_eq!(r.records_out + r.records_suppressed, 2_000);
    assert!(r.records_suppressed <= 100);
    assert!(out.batch.column_by_name("pid").is_none());
    // Recounted here from the file's own labels.
    check_k(&out.batch, &["birth", "sex", "area", "disease"], 5).unwrap();
    // Disease 999 has 21 persons here (every 97th): it is not pooled; nothing rarer exists.
    assert_eq!(r.pooled[0].records, 0);
    for s in strings(&out.batch, "score").into_iter().flatten() {
        if let Ok(v) = s.parse::<i64>() {
            assert!((11..=89).contains(&v), "{s} escaped coding");
        } else {
            assert!(s == "90以上" || s == "10以下", "{s}");
        }
    }
    assert!(r.coded[0].records > 0);
    assert!(r.loss.generalisation > 0.0 && r.loss.generalisation < 1.0);
    assert!(r.loss.average_group_size >= 1.0);
}

#[test]
fn rare_values_are_pooled_before_anything_else() {
    let mut rows = population(500, 3);
    for (i, r) in rows.iter_mut().enumerate().take(3) {
        r.disease = 500 + i as i32;
    }
    let out = anonymise(&batch(&rows), &spec(), &policy(2, 10.0)).unwrap();
    let diseases = strings(&out.batch, "disease");
    assert!(!diseases.iter().flatten().any(|d| d.starts_with("50")));
    assert!(out.report.pooled[0].records >= 3);
}

#[test]
fn data_already_k_anonymous_is_not_generalised() {
    let rows: Vec<Row> = (0..40)
        .map(|i| Row {
            pid: format!("p{i}"),
            birth: 12_262,
            sex: 1 + (i % 2),
            area: "13101",
            disease: 1,
            score: 50,
        })
        .collect();
    let out = anonymise(&batch(&rows), &spec(), &policy(10, 0.0)).unwrap();
    let levels: Vec<&str> = out.report.levels.iter().map(|l| l.level.as_str()).collect();
    assert_eq!(levels, ["month", "value", "value", "value"]);
    assert_eq!(out.report.loss.generalisation, 0.0);
    assert_eq!(strings(&out.batch, "birth")[0].as_deref(), Some("2003-07"));
}

#[test]
fn records_at_risk_lose_a_value_rather_than_the_record() {
    // 50 alike, and 10 who differ only in their municipality, each alone in it.
    let mut rows: Vec<Row> = (0..60)
        .map(|i| Row {
            pid: format!("p{i}"),
            birth: 12_262,
            sex: 1,
            area: "13101",
            disease: 1,
            score: 50,
        })
        .collect();
    const LONE: [&str; 10] = [
        "01100", "02201", "03201", "04100", "05201", "06201", "07201", "08201", "09201", "10201",
    ];
    for (r, area) in rows.iter_mut().skip(50).zip(LONE) {
        r.area = area;
    }
    let out = anonymise(&batch(&rows), &spec(), &policy(5, 20.0)).unwrap();
    let r = &out.report;
    assert_eq!(r.records_suppressed, 0, "{r:?}");
    assert_eq!(r.cells_suppressed, 10);
    let areas = strings(&out.batch, "area");
    assert_eq!(
        areas.iter().filter(|a| a.as_deref() == Some("*")).count(),
        10
    );
    assert_eq!(
        areas
            .iter()
            .filter(|a| a.as_deref() == Some("13101"))
            .count(),
        50
    );
}

#[test]
fn the_same_rows_in_another_order_give_the_same_file() {
    let rows = population(800, 11);
    let a = anonymise(&batch(&rows), &spec(), &policy(5, 5.0)).unwrap();
    let mut reversed = population(800, 11);
    reversed.reverse();
    let b = anonymise(&batch(&reversed), &spec(), &policy(5, 5.0)).unwrap();
    assert_eq!(a.batch, b.batch);
    assert_eq!(a.report, b.report);
}

#[test]
fn bad_input_is_refused_with_a_reason() {
    let mut rows = population(100, 5);
    rows[1].pid = rows[0].pid.clone();
    let e = anonymise(&batch(&rows), &spec(), &policy(5, 5.0)).unwrap_err();
    assert!(e.to_string().contains("one record per person"), "{e}");

    // k above the number of persons, nothing may be suppressed.
    let e = anonymise(&batch(&population(30, 5)), &spec(), &policy(31, 0.0)).unwrap_err();
    assert!(matches!(e, AnonymiseError::Unreachable(_)), "{e}");

    let mut s = spec();
    s.columns[2].levels = vec![Level::Month];
    let e = anonymise(&batch(&population(30, 5)), &s, &policy(2, 0.0)).unwrap_err();
    assert!(e.to_string().contains("area"), "{e}");
}

#[test]
fn the_check_counts_again_and_catches_a_small_group() {
    let out = anonymise(&batch(&population(1_000, 9)), &spec(), &policy(5, 5.0)).unwrap();
    let mut columns: Vec<ArrayRef> = out.batch.columns().to_vec();
    let area = out.batch.schema().index_of("area").unwrap();
    let mut labels = strings(&out.batch, "area");
    labels[0] = Some("99999".into());
    columns[area] = Arc::new(StringArray::from(labels));
    let tampered = RecordBatch::try_new(out.batch.schema(), columns).unwrap();
    let e = check_k(&tampered, &["birth", "sex", "area", "disease"], 5).unwrap_err();
    assert!(e.to_string().contains("group of 1"), "{e}");
}

#[test]
fn prepared_input_and_hierarchies_agree() {
    let rows = population(300, 2);
    let p = prepare(&batch(&rows), &spec()).unwrap();
    assert_eq!(p.batch.num_rows(), 300);
    assert!(p.batch.column_by_name("pid").is_none());
    let area = p.hierarchies.iter().find(|h| h.column == "area").unwrap();
    assert_eq!(area.levels, ["value", "prefecture", "region", "*"]);
    let tokyo = area.rows.iter().find(|r| r[0] == "13101").unwrap();
    assert_eq!(tokyo[1..], ["13", "関東", "*"]);
}

#[test]
fn a_missing_value_is_a_value_of_its_own() {
    let rows = population(400, 13);
    let b = batch(&rows);
    let areas: StringArray = rows
        .iter()
        .enumerate()
        .map(|(i, r)| (i % 3 != 0).then_some(r.area))
        .collect();
    let mut columns = b.columns().to_vec();
    columns[3] = Arc::new(areas);
    let with_nulls = RecordBatch::try_new(b.schema(), columns).unwrap();
    let out = anonymise(&with_nulls, &spec(), &policy(5, 5.0)).unwrap();
    check_k(&out.batch, &["birth", "sex", "area", "disease"], 5).unwrap();
    let areas = strings(&out.batch, "area");
    // Missing stays missing (null, not an empty label), unless the column is generalised away.
    assert!(!areas.iter().any(|a| a.as_deref() == Some("")));
    assert!(areas.iter().any(Option::is_none) || out.report.levels[2].level == "*");
}

#[test]
fn an_empty_extract_is_an_empty_file() {
    let out = anonymise(&batch(&[]), &spec(), &policy(5, 5.0)).unwrap();
    assert_eq!(out.batch.num_rows(), 0);
    assert_eq!(out.report.records_in, 0);
    assert_eq!(out.report.k_reached, 0);
}
