//! Bad rows are quarantined with their reason and counted; good rows are untouched.

use niji_ingest::TableStatus;

use crate::fixture::Delivery;

#[test]
fn every_injected_defect_is_quarantined_with_its_reason_and_nothing_else_is() {
    let d = Delivery::new(4000, 11);
    let report = d.ingest_into("data");
    let mut defects_seen = 0;
    for t in &report.tables {
        assert!(
            matches!(t.status, TableStatus::Ingested),
            "{}.{}: {:?}",
            t.database,
            t.table,
            t.status
        );
        let name = format!("{}.{}", t.database, t.table);
        let injected = d
            .synth
            .tables
            .get(&name)
            .map(|s| s.defective.clone())
            .unwrap_or_default();
        let injected: std::collections::BTreeMap<&str, u64> =
            injected.iter().map(|(k, v)| (*k, *v)).collect();
        assert_eq!(t.counts.quarantined, injected, "{name}");
        assert_eq!(
            t.counts.rows_read,
            t.counts.rows_stored + t.counts.quarantined_total(),
            "{name}"
        );
        if let Some(s) = d.synth.tables.get(&name) {
            assert_eq!(
                t.counts.rows_read, s.rows,
                "{name}: every generated row was read"
            );
        }
        defects_seen += t.counts.quarantined_total();
    }
    assert!(
        defects_seen > 50,
        "the fixture injects defects ({defects_seen})"
    );
}

#[test]
fn quarantine_keeps_the_original_bytes_and_names_columns_not_values() {
    let d = Delivery::new(4000, 12);
    let report = d.ingest_into("data");
    let receipts = report.table("ndb", "receipts").unwrap();
    let q = d.data_dir("data").join("quarantine/ndb");
    let rejected = std::fs::read(q.join("receipts.rejected.csv")).unwrap();
    let reasons = std::fs::read_to_string(q.join("receipts.reasons.csv")).unwrap();
    let raw = std::fs::read(d.raw().join("ndb/receipts.csv")).unwrap();
    let raw_lines: Vec<&[u8]> = raw.split(|b| *b == b'\n').collect();
    let rejected_lines: Vec<&[u8]> = rejected
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(
        rejected_lines.len() as u64,
        receipts.counts.quarantined_total() + 1,
        "header + one line per row"
    );
    assert_eq!(rejected_lines[0], raw_lines[0], "header first");
    for (reason, line) in reasons.lines().skip(1).zip(&rejected_lines[1..]) {
        let line_no: usize = reason.split(',').next().unwrap().parse().unwrap();
        assert_eq!(
            raw_lines[line_no - 1],
            &line[..],
            "line {line_no} kept byte for byte"
        );
        // The reason names a column or a rule; it never repeats the row's content.
        for field in line.split(|b| *b == b',').filter(|f| f.len() >= 6) {
            assert!(
                !reason.as_bytes().windows(field.len()).any(|w| w == field),
                "reason {reason:?} leaks a value"
            );
        }
    }
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(q.join("receipts.rejected.csv"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600, "raw rows in quarantine are owner-only");
}

#[test]
fn a_clean_rerun_removes_stale_quarantine_files() {
    let d = Delivery::with(1500, 13, |c| c.defect_rate = 0.01);
    d.ingest_into("data");
    let reasons = d
        .data_dir("data")
        .join("quarantine/ndb/receipts.reasons.csv");
    assert!(reasons.exists());
    // The provider re-delivers receipts without the bad rows.
    let path = d.raw().join("ndb/receipts.csv");
    let q = std::fs::read_to_string(&reasons).unwrap();
    let bad: std::collections::HashSet<usize> = q
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap().parse().unwrap())
        .collect();
    let raw = std::fs::read(&path).unwrap();
    let kept: Vec<&[u8]> = raw
        .split_inclusive(|b| *b == b'\n')
        .enumerate()
        .filter(|(i, _)| !bad.contains(&(i + 1)))
        .map(|(_, l)| l)
        .collect();
    std::fs::write(&path, kept.concat()).unwrap();
    let report = d.ingest_into("data");
    let receipts = report.table("ndb", "receipts").unwrap();
    assert_eq!(receipts.counts.quarantined_total(), 0);
    assert!(!reasons.exists());
}
