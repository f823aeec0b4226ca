//! What the catalog does not describe is refused, not guessed.

use niji_ingest::TableStatus;
use niji_store::Store;

use crate::fixture::Delivery;

#[test]
fn an_undescribed_column_refuses_the_table_and_publishes_nothing_of_it() {
    let d = Delivery::new(600, 41);
    let path = d.raw().join("nanbyo/surveys.csv");
    let text = std::fs::read_to_string(&path).unwrap();
    let widened: String = text
        .lines()
        .enumerate()
        .map(|(i, l)| {
            if i == 0 {
                format!("{l},memo\n")
            } else {
                format!("{l},自由記載\n")
            }
        })
        .collect();
    std::fs::write(&path, widened).unwrap();
    let report = d.ingest_into("data");
    let surveys = report.table("nanbyo", "surveys").unwrap();
    match &surveys.status {
        TableStatus::Refused(why) => {
            assert!(why.contains("memo") && !why.contains("自由記載"), "{why}")
        }
        other => panic!("not refused: {other:?}"),
    }
    assert!(
        Store::new(&d.data_dir("data"))
            .manifest("nanbyo", "surveys")
            .unwrap()
            .is_none()
    );
    assert!(report.refused().count() == 1, "other tables go on");
}

#[test]
fn a_missing_described_column_refuses_the_table() {
    let d = Delivery::new(600, 42);
    let path = d.raw().join("ndb/checkups.csv");
    let text = std::fs::read_to_string(&path).unwrap();
    let narrowed: String = text
        .lines()
        .map(|l| format!("{}\n", l.rsplit_once(',').unwrap().0))
        .collect();
    std::fs::write(&path, narrowed).unwrap();
    let report = d.ingest_into("data");
    let checkups = report.table("ndb", "checkups").unwrap();
    assert!(
        matches!(&checkups.status, TableStatus::Refused(why) if why.contains("smoker")),
        "{:?}",
        checkups.status
    );
}

#[test]
fn an_undescribed_file_is_not_read_and_is_reported() {
    let d = Delivery::new(300, 43);
    std::fs::write(
        d.raw().join("ndb/addresses.csv"),
        "record_key,address\nx,東京都\n",
    )
    .unwrap();
    std::fs::create_dir_all(d.raw().join("unknown_db")).unwrap();
    std::fs::write(d.raw().join("unknown_db/t.csv"), "a\n1\n").unwrap();
    let report = d.ingest_into("data");
    assert_eq!(
        report.undescribed_files,
        vec![
            "ndb/addresses.csv".to_string(),
            "unknown_db/t.csv".to_string()
        ]
    );
    assert!(!d.data_dir("data/store/unknown_db").exists());
}

#[test]
fn shift_jis_extracts_are_decoded_and_their_bad_bytes_quarantined() {
    let d = Delivery::with(6000, 44, |c| c.defect_rate = 0.01);
    let report = d.ingest_into("data");
    let claims = report
        .tables
        .iter()
        .find(|t| t.database == "kaigo" && t.table == "certifications")
        .unwrap();
    assert!(claims.counts.rows_stored > 100);
    let store = Store::new(&d.data_dir("data"));
    let mut levels = std::collections::BTreeSet::new();
    for b in store
        .read_columns("kaigo", "certifications", &["dementia_level"])
        .unwrap()
    {
        let col = b
            .column(0)
            .as_any()
            .downcast_ref::<arrow::array::StringArray>()
            .unwrap();
        levels.extend(col.iter().flatten().map(str::to_string));
    }
    assert!(
        levels.contains("Ⅱa") && levels.contains("自立"),
        "{levels:?}"
    );
    let all_undecodable: u64 = report
        .tables
        .iter()
        .filter(|t| t.database == "kaigo" || t.database == "dpc")
        .map(|t| {
            t.counts
                .quarantined
                .get("undecodable")
                .copied()
                .unwrap_or(0)
        })
        .sum();
    assert!(all_undecodable > 0);
}

#[test]
fn an_unknown_table_selection_is_an_error_not_a_silent_no_op() {
    let d = Delivery::new(200, 45);
    let mut opts = niji_ingest::IngestOptions::new(d.raw(), d.data_dir("data"));
    opts.only = vec!["ndb.recipts".into()];
    let err = niji_ingest::ingest(&crate::fixture::catalog(), &d.key, &opts, &|_| {}).unwrap_err();
    assert!(
        matches!(err, niji_ingest::IngestError::UnknownSelection(ref s) if s == "ndb.recipts"),
        "{err}"
    );
}
