//! The hostile extracts of `tests/corpus/ingest`: each must give exactly the stored and
//! quarantined rows stated here, with the right line numbers, and never stop the ingest.

use std::collections::BTreeMap;
use std::path::Path;

use niji_ingest::{IngestOptions, TableStatus, ingest};
use niji_pseudo::CustodianKey;
use niji_store::Store;

use crate::fixture::catalog;

struct Case {
    file: &'static str,
    stored: u64,
    /// (line, reason) of every quarantined row.
    quarantined: &'static [(u64, &'static str)],
}

const CASES: &[Case] = &[
    Case {
        file: "crlf_with_bom.csv",
        stored: 2,
        quarantined: &[],
    },
    Case {
        file: "quoted_fields.csv",
        stored: 2,
        quarantined: &[(5, "invalid_date")],
    },
    Case {
        file: "no_trailing_newline.csv",
        stored: 1,
        quarantined: &[],
    },
    Case {
        file: "header_only.csv",
        stored: 0,
        quarantined: &[],
    },
    Case {
        file: "garbage.csv",
        stored: 1,
        quarantined: &[
            (2, "undecodable"),
            (3, "column_count"),
            (4, "column_count"),
            (5, "missing_value"),
            (6, "invalid_date"),
            (7, "invalid_value"),
            (8, "invalid_number"),
            (9, "invalid_insured_number"),
            (10, "invalid_insured_number"),
        ],
    },
    // Judged line by line with quotes taken literally, the stray quote is just a character.
    Case {
        file: "unbalanced_quote.csv",
        stored: 4,
        quarantined: &[],
    },
];

#[test]
fn hostile_extracts_are_survived_row_by_row() {
    let corpus = Path::new(&std::env::var_os("CARGO_MANIFEST_DIR").expect("tests run under cargo"))
        .join("../../tests/corpus/ingest");
    let key = CustodianKey::from_bytes([3; 32]);
    for case in CASES {
        let dir = tempfile::tempdir().unwrap();
        let raw = dir.path().join("raw");
        std::fs::create_dir_all(raw.join("ndb")).unwrap();
        std::fs::copy(corpus.join(case.file), raw.join("ndb/receipts.csv")).unwrap();
        let mut opts = IngestOptions::new(raw, dir.path().join("data"));
        opts.only = vec!["ndb.receipts".into()];
        let report = ingest(&catalog(), &key, &opts, &|_| {}).unwrap();
        let t = report.table("ndb", "receipts").unwrap();
        assert!(
            matches!(t.status, TableStatus::Ingested),
            "{}: {:?}",
            case.file,
            t.status
        );
        assert_eq!(t.counts.rows_stored, case.stored, "{}", case.file);
        let reasons_path = dir.path().join("data/quarantine/ndb/receipts.reasons.csv");
        let found: Vec<(u64, String)> = if case.quarantined.is_empty() {
            assert!(!reasons_path.exists(), "{}", case.file);
            Vec::new()
        } else {
            std::fs::read_to_string(&reasons_path)
                .unwrap()
                .lines()
                .skip(1)
                .map(|l| {
                    let mut f = l.split(',');
                    (
                        f.next().unwrap().parse().unwrap(),
                        f.next().unwrap().to_string(),
                    )
                })
                .collect()
        };
        let expected: Vec<(u64, String)> = case
            .quarantined
            .iter()
            .map(|(l, r)| (*l, r.to_string()))
            .collect();
        assert_eq!(found, expected, "{}", case.file);
        let by_reason: BTreeMap<&str, u64> =
            case.quarantined
                .iter()
                .fold(BTreeMap::new(), |mut m, (_, r)| {
                    *m.entry(*r).or_default() += 1;
                    m
                });
        assert_eq!(t.counts.quarantined, by_reason, "{}", case.file);
        let manifest = Store::new(&dir.path().join("data"))
            .verify("ndb", "receipts")
            .unwrap();
        assert_eq!(manifest.rows, case.stored, "{}", case.file);
    }
}
