//! Linkage quality against the generator's truth: ID5 meets the bar; ID1 and ID2 break where
//! the documents say they break.

use niji_ingest::linkage_report::{LinkageReport, Quality, measure};
use niji_store::Store;

use crate::fixture::{Delivery, catalog};

fn q<'a>(r: &'a LinkageReport, id: &str, scope: &str) -> &'a Quality {
    r.qualities
        .iter()
        .find(|q| q.identifier == id && q.scope == scope)
        .unwrap()
}

#[test]
fn id5_meets_the_target_and_id1_id2_break_where_expected() {
    let d = Delivery::with(12_000, 51, |c| c.months = 24);
    d.ingest_into("data");
    let r = measure(&catalog(), &Store::new(&d.data_dir("data")), &d.truth()).unwrap();
    let usable = "usable insured number";
    let id5 = q(&r, "id5", usable);
    assert!(id5.recall >= 0.995, "ID5 recall {}", id5.recall);
    assert!(
        id5.false_link_rate < 0.0001,
        "ID5 false links {}",
        id5.false_link_rate
    );
    assert!(r.id5_meets_target);
    assert!(
        id5.persons_with_number_change > 200,
        "the period has insurer changes"
    );
    assert!(
        id5.linked_across_change > 0.99,
        "ID5 survives insurer changes: {}",
        id5.linked_across_change
    );
    let id1 = q(&r, "id1", usable);
    assert!(
        id1.linked_across_change < 0.01,
        "ID1 breaks on insurer change: {}",
        id1.linked_across_change
    );
    assert!(id1.recall < id5.recall);
    assert!(
        id1.false_link_rate > 0.0,
        "same-sex twins on one family card share ID1"
    );
    let id2 = q(&r, "id2", usable);
    assert!(
        id2.linked_across_change < id5.linked_across_change,
        "ID2 breaks on marriage and typos"
    );
    assert!(
        id2.false_link_rate > 0.0,
        "namesakes born the same day share ID2"
    );
    let share_without = r.records_without_id5 as f64 / r.records as f64;
    assert!(
        (0.02..0.08).contains(&share_without),
        "records without ID5: {share_without}"
    );
}
