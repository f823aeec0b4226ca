//! From the attacker's side: look for any direct identifier or key material in what the
//! ingest leaves in the store, and find none.

use std::collections::HashSet;

use arrow::array::{Array, StringArray};
use arrow::datatypes::DataType;
use niji_catalog::{DisclosureRole, Sensitivity};
use niji_store::Store;
use niji_store::parents::{PARENT_FACILITY, PARENT_PERIOD, PARENT_PERSON};

use crate::fixture::{Delivery, catalog, files_under};

/// The values of every direct-identifier column in the raw delivery.
fn raw_direct_identifiers(d: &Delivery) -> HashSet<String> {
    let catalog = catalog();
    let mut out = HashSet::new();
    for db in catalog.databases.values() {
        for t in &db.tables {
            let path = d.raw().join(&db.name).join(&t.source);
            let bytes = std::fs::read(&path).unwrap();
            let text = match t.encoding {
                niji_catalog::Encoding::Utf8 => String::from_utf8_lossy(&bytes).into_owned(),
                niji_catalog::Encoding::Cp932 => {
                    encoding_rs::SHIFT_JIS.decode(&bytes).0.into_owned()
                }
            };
            let mut lines = text.lines();
            let header: Vec<&str> = lines.next().unwrap().split(',').collect();
            let direct: Vec<usize> = header
                .iter()
                .enumerate()
                // An insurer number names an insurer (a city's is public), not a person.
                .filter(|(_, h)| {
                    t.column(h).is_some_and(|c| {
                        c.class == Sensitivity::DirectIdentifier
                            && c.role != Some(niji_catalog::Role::InsurerNo)
                    })
                })
                .map(|(i, _)| i)
                .collect();
            for line in lines {
                let fields: Vec<&str> = line.split(',').collect();
                for &i in &direct {
                    // Short values (a 2-digit 枝番, a 1-digit 記号) are not identifying alone.
                    if let Some(v) = fields.get(i).filter(|v| v.chars().count() >= 5) {
                        out.insert(v.to_string());
                    }
                }
            }
        }
    }
    out
}

#[test]
fn no_direct_identifier_or_key_reaches_the_store() {
    let d = Delivery::new(3000, 21);
    d.ingest_into("data");
    let secrets = raw_direct_identifiers(&d);
    assert!(
        secrets.len() > 3000,
        "the delivery has names, numbers, phones, addresses"
    );
    let store = Store::new(&d.data_dir("data"));
    let catalog = catalog();
    let mut strings_checked = 0u64;
    for db in catalog.databases.values() {
        for t in &db.tables {
            let manifest = store.manifest(&db.name, &t.name).unwrap().unwrap();
            // Details also carry their parent's person index and facility: stored as the
            // parent stores them.
            let parent = t
                .parent
                .as_ref()
                .and_then(|l| db.tables.iter().find(|p| p.name == l.table));
            // Strata hold values of coded columns: each one described and stored itself.
            for name in manifest.strata.iter().flat_map(|s| &s.columns) {
                let c = t.column(name).unwrap_or_else(|| {
                    panic!(
                        "{}.{} is stratified by {name}, not described",
                        db.name, t.name
                    )
                });
                assert_ne!(c.class, Sensitivity::DirectIdentifier, "{name} stratifies");
                assert!(
                    manifest.schema.iter().any(|f| &f.name == name),
                    "{name} is stored"
                );
            }
            for f in &manifest.schema {
                let c = match (f.name.as_str(), parent) {
                    (PARENT_PERSON, Some(p)) => p.column("person_idx"),
                    (PARENT_FACILITY, Some(p)) => p.column_for(DisclosureRole::Facility),
                    (niji_store::FACILITY_MARK_COLUMN, _) => t.column_for(DisclosureRole::Facility),
                    (PARENT_PERIOD, Some(p)) => {
                        p.period_column.as_deref().and_then(|c| p.column(c))
                    }
                    (name, _) => t.column(name),
                }
                .unwrap_or_else(|| panic!("{}.{}.{} is not described", db.name, t.name, f.name));
                assert_ne!(
                    c.class,
                    Sensitivity::DirectIdentifier,
                    "{}.{}.{} stored",
                    db.name,
                    t.name,
                    f.name
                );
            }
            let names: Vec<&str> = manifest
                .schema
                .iter()
                .filter(|f| f.data_type == DataType::Utf8.to_string())
                .map(|f| f.name.as_str())
                .collect();
            for batch in store.read_columns(&db.name, &t.name, &names).unwrap() {
                for col in batch.columns() {
                    let col = col.as_any().downcast_ref::<StringArray>().unwrap();
                    for v in col.iter().flatten() {
                        strings_checked += 1;
                        assert!(
                            !secrets.contains(v),
                            "{}.{} holds a raw identifier",
                            db.name,
                            t.name
                        );
                    }
                }
            }
        }
    }
    assert!(strings_checked > 100_000);
    // Key material: the key, its purpose keys, in any file under the store or the reports.
    let mut needles: Vec<String> = vec![niji_pseudo::hex32(&[0x5a; 32])];
    for p in [
        niji_pseudo::Purpose::Id1,
        niji_pseudo::Purpose::Id2,
        niji_pseudo::Purpose::Id5,
        niji_pseudo::Purpose::ResearchId,
    ] {
        needles.push(niji_pseudo::hex32(&d.key.derive(p)));
    }
    for file in files_under(&d.data_dir("data/store"))
        .into_iter()
        .chain(files_under(&d.data_dir("data/reports")))
    {
        let bytes = std::fs::read(&file).unwrap();
        for n in &needles {
            assert!(
                !bytes.windows(n.len()).any(|w| w == n.as_bytes()),
                "{} holds key material",
                file.display()
            );
        }
        assert!(
            !bytes.windows(32).any(|w| w == [0x5a; 32]),
            "{} holds the raw key",
            file.display()
        );
    }
}

#[test]
fn stored_identifiers_follow_the_column_contract() {
    let d = Delivery::new(2000, 22);
    d.ingest_into("data");
    let store = Store::new(&d.data_dir("data"));
    for db in catalog().databases.values() {
        for t in &db.tables {
            let manifest = store.manifest(&db.name, &t.name).unwrap().unwrap();
            let names: Vec<&str> = manifest.schema.iter().map(|f| f.name.as_str()).collect();
            assert!(names.contains(&"record_key"), "{}.{}", db.name, t.name);
            for id in &t.identifiers {
                assert!(
                    names.contains(&id.as_str()),
                    "{}.{} lacks {id}",
                    db.name,
                    t.name
                );
                for batch in store
                    .read_columns(&db.name, &t.name, &[id.as_str()])
                    .unwrap()
                {
                    let col = batch
                        .column(0)
                        .as_any()
                        .downcast_ref::<StringArray>()
                        .unwrap();
                    for v in col.iter().flatten() {
                        assert!(
                            v.len() == 64
                                && v.bytes()
                                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()),
                            "{id}: {v}"
                        );
                    }
                }
            }
            assert_eq!(
                names.contains(&"person_idx"),
                t.identifiers.iter().any(|i| i == "id5"),
                "{}.{}",
                db.name,
                t.name
            );
        }
    }
    // person_idx and id5 are one-to-one.
    let batches = store
        .read_columns("ndb", "receipts", &["id5", "person_idx"])
        .unwrap();
    let mut by_id5 = std::collections::HashMap::new();
    let mut by_idx = std::collections::HashMap::new();
    for b in &batches {
        let id5 = b.column(0).as_any().downcast_ref::<StringArray>().unwrap();
        let idx = b
            .column(1)
            .as_any()
            .downcast_ref::<arrow::array::UInt32Array>()
            .unwrap();
        for i in 0..b.num_rows() {
            assert_eq!(id5.is_valid(i), idx.is_valid(i));
            if id5.is_valid(i) {
                assert_eq!(
                    *by_id5
                        .entry(id5.value(i).to_string())
                        .or_insert(idx.value(i)),
                    idx.value(i)
                );
                assert_eq!(
                    by_idx
                        .entry(idx.value(i))
                        .or_insert(id5.value(i).to_string())
                        .as_str(),
                    id5.value(i)
                );
            }
        }
    }
    assert!(by_id5.len() > 1000);
}
