//! Re-running gives the same result; publishing is atomic; the registry is stable.

use arrow::array::Array;
use niji_ingest::{IngestError, TableStatus};
use niji_pseudo::CustodianKey;
use niji_store::{Store, StoreError};

use crate::fixture::{Delivery, catalog};

fn digests(d: &Delivery, data_dir: &str) -> Vec<(String, String)> {
    let store = Store::new(&d.data_dir(data_dir));
    let mut out = Vec::new();
    for db in catalog().databases.values() {
        for t in &db.tables {
            let m = store.verify(&db.name, &t.name).unwrap();
            out.push((format!("{}.{}", db.name, t.name), m.content_digest));
        }
    }
    out
}

#[test]
fn the_same_delivery_and_key_give_byte_identical_tables() {
    let d = Delivery::new(2500, 31);
    d.ingest_into("a");
    d.ingest_into("b");
    assert_eq!(digests(&d, "a"), digests(&d, "b"));
    // The manifest's source digest is the extract's own SHA-256 (what `sha256sum` prints).
    use sha2::Digest;
    let raw = std::fs::read(d.raw().join("ndb/receipts.csv")).unwrap();
    let manifest = Store::new(&d.data_dir("a"))
        .manifest("ndb", "receipts")
        .unwrap()
        .unwrap();
    assert_eq!(
        manifest.source_sha256,
        niji_pseudo::hex32(&sha2::Sha256::digest(&raw).into())
    );
    let again = d.ingest_into("a");
    assert_eq!(again.persons_added, 0, "a re-run registers nobody new");
    assert_eq!(digests(&d, "a"), digests(&d, "b"));
}

/// Each table's rows in stored order, its ceilings and its strata digest.
fn stored(d: &Delivery, data_dir: &str, table: &str) -> (arrow::array::RecordBatch, String) {
    let store = Store::new(&d.data_dir(data_dir));
    let manifest = store.verify("ndb", table).unwrap();
    let names: Vec<&str> = manifest.schema.iter().map(|f| f.name.as_str()).collect();
    let batches = store.read_columns("ndb", table, &names).unwrap();
    let rows = arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap();
    let summary = format!(
        "{:?} {:?}",
        manifest.ceilings,
        manifest.strata.map(|s| s.blake3)
    );
    (rows, summary)
}

#[test]
fn a_table_clustered_through_spill_files_or_in_small_sorts_is_the_same_table() {
    let d = Delivery::new(2500, 43);
    let held = d.ingest_into("held");
    assert!(held.tables.iter().all(|t| t.spilled_chunks == 0));
    // No memory at all: every chunk of every clustered table goes to a spill file.
    let spilled = d
        .ingest_with("spilled", &d.key, |o| o.memory_budget = 0)
        .unwrap();
    let receipts = spilled.table("ndb", "receipts").unwrap();
    assert!(
        receipts.spilled_chunks >= 2,
        "receipts spilled {} chunks",
        receipts.spilled_chunks
    );
    assert_eq!(
        digests(&d, "held"),
        digests(&d, "spilled"),
        "spilling changes no byte"
    );
    // Sorted a few hundred rows at a time: more, smaller parts, the same rows in the same order.
    let small = d
        .ingest_with("small", &d.key, |o| {
            o.sort_rows = 300;
            o.memory_budget = 64 << 10;
        })
        .unwrap();
    for table in ["receipts", "diagnoses"] {
        assert!(
            small.table("ndb", table).unwrap().parts > held.table("ndb", table).unwrap().parts,
            "{table}: smaller sorts cut more parts"
        );
        assert_eq!(
            stored(&d, "held", table),
            stored(&d, "small", table),
            "{table}: the same rows, ceilings and strata"
        );
    }
    let staged = |dir: &str| {
        crate::fixture::files_under(&d.data_dir(dir))
            .into_iter()
            .filter(|f| f.extension().is_some_and(|e| e == "arrow"))
            .count()
    };
    assert_eq!(
        staged("spilled") + staged("small"),
        0,
        "no spill file is left"
    );
}

#[test]
fn a_different_key_gives_different_identifiers_and_is_refused_on_an_existing_store() {
    let d = Delivery::new(800, 32);
    d.ingest_into("a");
    let other = CustodianKey::from_bytes([0x11; 32]);
    let err = d.try_ingest("a", &other).unwrap_err();
    assert!(
        matches!(err, IngestError::Store(StoreError::KeyMismatch { .. })),
        "{err}"
    );
    d.try_ingest("b", &other).unwrap();
    let (a, b) = (digests(&d, "a"), digests(&d, "b"));
    let receipts = |v: &[(String, String)]| {
        v.iter()
            .find(|(n, _)| n == "ndb.receipts")
            .unwrap()
            .1
            .clone()
    };
    assert_ne!(receipts(&a), receipts(&b));
    // Tables without identifiers do not depend on the key (details do: they carry their
    // receipt's person index).
    let digest_of =
        |v: &[(String, String)], table: &str| v.iter().find(|(n, _)| n == table).unwrap().1.clone();
    assert_eq!(
        digest_of(&a, "reference.municipalities"),
        digest_of(&b, "reference.municipalities")
    );
    assert_ne!(
        digest_of(&a, "ndb.diagnoses"),
        digest_of(&b, "ndb.diagnoses")
    );
}

#[test]
fn leftovers_of_a_crashed_run_are_never_read_and_are_cleaned_up() {
    let d = Delivery::new(800, 33);
    d.ingest_into("data");
    let before = digests(&d, "data");
    // A crash mid-write leaves a staging directory with a half-written part and no manifest.
    let staging = d.data_dir("data/store/ndb/.staging-receipts-999999");
    std::fs::create_dir_all(&staging).unwrap();
    std::fs::write(staging.join("part-00000.parquet"), b"PAR1 half written").unwrap();
    let store = Store::new(&d.data_dir("data"));
    assert_eq!(
        store
            .manifest("ndb", "receipts")
            .unwrap()
            .unwrap()
            .content_digest,
        before.iter().find(|(n, _)| n == "ndb.receipts").unwrap().1
    );
    // And one of the person registry, interrupted while it was being replaced.
    let registry_staging = d.data_dir("data/store/.staging-_registry-999999");
    std::fs::create_dir_all(&registry_staging).unwrap();
    std::fs::write(registry_staging.join("persons.parquet"), b"PAR1").unwrap();
    let report = d.ingest_into("data");
    assert_eq!(report.stale_staging_removed, 2);
    assert!(!registry_staging.exists());
    assert!(!staging.exists());
    assert_eq!(digests(&d, "data"), before);
}

#[test]
fn a_tampered_part_is_detected() {
    let d = Delivery::new(500, 34);
    d.ingest_into("data");
    let store = Store::new(&d.data_dir("data"));
    let m = store.manifest("ndb", "receipts").unwrap().unwrap();
    let part = d.data_dir("data/store/ndb/receipts").join(&m.parts[0].file);
    let mut bytes = std::fs::read(&part).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 1;
    std::fs::write(&part, bytes).unwrap();
    assert!(matches!(
        store.verify("ndb", "receipts"),
        Err(StoreError::Corrupt(_))
    ));
}

#[test]
fn person_indices_are_stable_when_more_data_arrives() {
    let d = Delivery::new(1500, 35);
    let first = d.ingest_into("data");
    let store = Store::new(&d.data_dir("data"));
    let mapping = |store: &Store| {
        let mut m = std::collections::BTreeMap::new();
        for b in store
            .read_columns("ndb", "receipts", &["id5", "person_idx"])
            .unwrap()
        {
            let id5 = b
                .column(0)
                .as_any()
                .downcast_ref::<arrow::array::StringArray>()
                .unwrap();
            let idx = b
                .column(1)
                .as_any()
                .downcast_ref::<arrow::array::UInt32Array>()
                .unwrap();
            for i in (0..b.num_rows()).filter(|&i| id5.is_valid(i)) {
                m.insert(id5.value(i).to_string(), idx.value(i));
            }
        }
        m
    };
    let before = mapping(&store);
    // A later delivery with more persons (a larger population from the same world).
    let bigger = Delivery::with(3000, 35, |_| {});
    let mut opts = niji_ingest::IngestOptions::new(bigger.raw(), d.data_dir("data"));
    opts.chunk_bytes = 1 << 20;
    let second = niji_ingest::ingest(&catalog(), &d.key, &opts, &|_| {}).unwrap();
    assert!(second.persons_added > 0 && second.persons_in_registry > first.persons_in_registry);
    let after = mapping(&store);
    let kept = before
        .iter()
        .filter(|(id5, idx)| after.get(*id5) == Some(idx))
        .count();
    let shared = before.keys().filter(|id5| after.contains_key(*id5)).count();
    assert!(shared > 1000, "the deliveries share persons ({shared})");
    assert_eq!(kept, shared, "every person keeps the index first given");
    assert!(
        second
            .tables
            .iter()
            .all(|t| matches!(t.status, TableStatus::Ingested))
    );
}

#[test]
fn a_later_delivery_without_the_history_still_finds_id5() {
    let d = Delivery::new(1500, 36);
    let first = d.ingest_into("data");
    let before = digests(&d, "data");
    // The next delivery comes without the insured-number history: the registry remembers the
    // keyed hashes of the numbers it saw, so ID5 and person_idx are found all the same.
    std::fs::remove_file(d.raw().join("history/insured_history.csv")).unwrap();
    let second = d.ingest_into("data");
    assert_eq!(second.insured_numbers_in_history, 0);
    assert_eq!(second.persons_added, 0);
    let with_id5 =
        |r: &niji_ingest::IngestReport| r.table("ndb", "receipts").unwrap().counts.with_id5;
    assert!(with_id5(&first) > 1000);
    assert_eq!(with_id5(&second), with_id5(&first));
    let after = digests(&d, "data");
    let receipts = |v: &[(String, String)]| {
        v.iter()
            .find(|(n, _)| n == "ndb.receipts")
            .unwrap()
            .1
            .clone()
    };
    assert_eq!(
        receipts(&after),
        receipts(&before),
        "the same table, byte for byte"
    );
    // No insured number is in the registry in the clear.
    let numbers = std::fs::read(d.data_dir("data/store/_registry/numbers.parquet")).unwrap();
    let raw = String::from_utf8_lossy(&std::fs::read(d.raw().join("ndb/receipts.csv")).unwrap())
        .into_owned();
    let some_number = raw.lines().nth(1).unwrap().split(',').nth(4).unwrap();
    assert!(
        !some_number.is_empty()
            && !numbers
                .windows(some_number.len())
                .any(|w| w == some_number.as_bytes())
    );
}

/// A receipt's person, facility and month.
/// Person index, facility mark, month.
type Carried = (Option<u32>, Option<u32>, Option<i32>);

/// (record key or receipt key, what it carries) of one table's rows.
fn persons_by_key(store: &Store, table: &str, columns: &[&str]) -> Vec<(String, Carried)> {
    use arrow::array::AsArray;
    let mut out = Vec::new();
    for b in store.read_columns("ndb", table, columns).unwrap() {
        // Columns come in the file's order.
        let column = |name: &str| b.column_by_name(name).expect("column");
        let keys = column(columns[0]).as_string::<i32>();
        let persons = column(columns[1]).as_primitive::<arrow::datatypes::UInt32Type>();
        let facilities = column(columns[2]).as_primitive::<arrow::datatypes::UInt32Type>();
        let months = column(columns[3]).as_primitive::<arrow::datatypes::Int32Type>();
        for i in 0..b.num_rows() {
            out.push((
                keys.value(i).to_string(),
                (
                    persons.is_valid(i).then(|| persons.value(i)),
                    facilities.is_valid(i).then(|| facilities.value(i)),
                    months.is_valid(i).then(|| months.value(i)),
                ),
            ));
        }
    }
    out
}

#[test]
fn details_carry_their_receipts_person_facility_and_month_until_the_receipts_change() {
    let d = Delivery::new(1200, 37);
    d.ingest_into("data");
    let store = Store::new(&d.data_dir("data"));
    let receipts = store.manifest("ndb", "receipts").unwrap().unwrap();
    let diagnoses = store.manifest("ndb", "diagnoses").unwrap().unwrap();
    assert_eq!(
        diagnoses.parent_digest.as_deref(),
        Some(receipts.content_digest.as_str())
    );
    let parents: std::collections::HashMap<String, Carried> = persons_by_key(
        &store,
        "receipts",
        &["record_key", "person_idx", "facility_mark", "claim_ym"],
    )
    .into_iter()
    .collect();
    // A receipt's facility mark is its code's.
    let mut marked = 0;
    for b in store
        .read_columns("ndb", "receipts", &["facility_code", "facility_mark"])
        .unwrap()
    {
        use arrow::array::AsArray;
        let codes = b
            .column_by_name("facility_code")
            .unwrap()
            .as_string::<i32>();
        let marks = b
            .column_by_name("facility_mark")
            .unwrap()
            .as_primitive::<arrow::datatypes::UInt32Type>();
        for (code, mark) in codes.iter().zip(marks.iter()) {
            assert_eq!(code.map(niji_store::facility_mark), mark);
            marked += usize::from(mark.is_some());
        }
    }
    assert!(marked > 1000, "receipts name their facility");
    let details = persons_by_key(
        &store,
        "diagnoses",
        &[
            "receipt_key",
            "parent_person_idx",
            "parent_facility",
            "parent_period",
        ],
    );
    assert!(details.len() > parents.len(), "several diagnoses a receipt");
    let mut with_person = 0;
    for (key, carried) in &details {
        let expected = parents.get(key).cloned().unwrap_or_default();
        assert_eq!(*carried, expected, "diagnosis of {key}");
        with_person += usize::from(carried.0.is_some());
    }
    assert!(with_person > details.len() / 2);

    // The receipts published anew on their own: the diagnoses no longer name them.
    let later = Delivery::new(1300, 37);
    let mut opts = niji_ingest::IngestOptions::new(later.raw(), d.data_dir("data"));
    opts.only = vec!["ndb.receipts".into()];
    niji_ingest::ingest(&catalog(), &d.key, &opts, &|_| {}).unwrap();
    let receipts = store.manifest("ndb", "receipts").unwrap().unwrap();
    let diagnoses = store.manifest("ndb", "diagnoses").unwrap().unwrap();
    assert_ne!(
        diagnoses.parent_digest.as_deref(),
        Some(receipts.content_digest.as_str())
    );
}

/// Each part of a person-level table (and of its details) holds one fiscal year, in ascending
/// person order (records of nobody identified last): what lets a period skip parts and the
/// disclosure checks take each cell's persons in runs.
#[test]
fn parts_are_clustered_by_fiscal_year_then_person() {
    use arrow::array::AsArray;
    use arrow::datatypes::{Int32Type, UInt32Type};
    let d = Delivery::new(2500, 41);
    d.ingest_into("data");
    let store = Store::new(&d.data_dir("data"));
    let fiscal_year = |ym: i32| {
        if ym % 100 >= 4 {
            ym / 100
        } else {
            ym / 100 - 1
        }
    };
    for (table, person, period, facility) in [
        ("receipts", "person_idx", "claim_ym", "facility_mark"),
        (
            "diagnoses",
            "parent_person_idx",
            "parent_period",
            "parent_facility",
        ),
    ] {
        let manifest = store.verify("ndb", table).unwrap();
        let dir = d.data_dir("data").join("store/ndb").join(table);
        let mut seen: Vec<(i32, u64)> = Vec::new();
        let mut years_of_parts = Vec::new();
        for part in &manifest.parts {
            let file = std::fs::File::open(dir.join(&part.file)).unwrap();
            let builder =
                parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
                    .unwrap();
            // The indexes every checked query reads are stored plain, to be copied, not decoded.
            for index in [person, facility] {
                let columns = builder.metadata().row_groups()[0].columns();
                let column = columns
                    .iter()
                    .find(|c| c.column_path().string() == index)
                    .unwrap_or_else(|| panic!("{table} stores {index}"));
                assert_eq!(
                    column.compression(),
                    parquet::basic::Compression::UNCOMPRESSED,
                    "{index}"
                );
                assert!(
                    column.dictionary_page_offset().is_none(),
                    "{index}: no dictionary"
                );
            }
            // A person's identifiers repeat through the person's run of records: stored as a
            // dictionary of the part's persons, well under their plain 64 bytes a row. The
            // record key is unique per row and gets none.
            if table == "receipts" {
                let columns = builder.metadata().row_groups()[0].columns();
                let column = |name: &str| {
                    columns
                        .iter()
                        .find(|c| c.column_path().string() == name)
                        .unwrap_or_else(|| panic!("receipts store {name}"))
                };
                for id in ["id1", "id2", "id5"] {
                    let c = column(id);
                    assert!(c.dictionary_page_offset().is_some(), "{id}: a dictionary");
                    let plain = 64 * c.num_values();
                    assert!(
                        c.compressed_size() * 2 < plain,
                        "{id}: {} bytes for {} values",
                        c.compressed_size(),
                        c.num_values()
                    );
                }
                assert!(column("record_key").dictionary_page_offset().is_none());
            }
            let reader = builder.with_batch_size(1 << 20).build().unwrap();
            let mut years = std::collections::BTreeSet::new();
            for batch in reader {
                let batch = batch.unwrap();
                let persons = batch
                    .column_by_name(person)
                    .unwrap()
                    .as_primitive::<UInt32Type>();
                let periods = batch
                    .column_by_name(period)
                    .unwrap()
                    .as_primitive::<Int32Type>();
                for i in 0..batch.num_rows() {
                    let fy = if periods.is_valid(i) {
                        fiscal_year(periods.value(i))
                    } else {
                        i32::MAX
                    };
                    let who = if persons.is_valid(i) {
                        u64::from(persons.value(i))
                    } else {
                        u64::MAX
                    };
                    years.insert(fy);
                    seen.push((fy, who));
                }
            }
            assert_eq!(years.len(), 1, "{table} {}: one fiscal year", part.file);
            years_of_parts.extend(years);
        }
        assert_eq!(seen.len() as u64, manifest.rows, "{table}: every row kept");
        assert!(
            seen.is_sorted(),
            "{table}: ascending by fiscal year, then person"
        );
        let distinct: std::collections::BTreeSet<i32> = years_of_parts.iter().copied().collect();
        assert!(
            distinct.len() >= 2,
            "{table}: the delivery spans fiscal years"
        );
        assert!(seen.iter().any(|(_, p)| *p == u64::MAX) || table == "diagnoses");
    }
}

/// The ceilings in a manifest are the largest per-person totals of |value| over the stored rows
/// (a row of no person one of its own), as summed again here from the store, for every
/// numeric column but niji's own indexes.
#[test]
fn ceilings_are_the_largest_per_person_totals_of_the_stored_rows() {
    use arrow::array::AsArray;
    use arrow::datatypes::{Float64Type, UInt32Type};
    let d = Delivery::new(2500, 43);
    d.ingest_into("data");
    let store = Store::new(&d.data_dir("data"));
    let manifest = store.verify("ndb", "receipts").unwrap();
    for own in ["person_idx", "facility_mark"] {
        assert!(!manifest.ceilings.contains_key(own), "{own}");
    }
    for column in ["points", "days", "copay_rate"] {
        let ceiling = manifest
            .ceilings
            .get(column)
            .unwrap_or_else(|| panic!("a ceiling of {column}"));
        let mut totals: std::collections::HashMap<u32, f64> = Default::default();
        let mut largest: Vec<f64> = Vec::new();
        let mut zeros = false;
        for b in store
            .read_columns("ndb", "receipts", &["person_idx", column])
            .unwrap()
        {
            let persons = b
                .column_by_name("person_idx")
                .unwrap()
                .as_primitive::<UInt32Type>();
            let values = arrow::compute::cast(
                b.column_by_name(column).unwrap(),
                &arrow::datatypes::DataType::Float64,
            )
            .unwrap();
            let values = values.as_primitive::<Float64Type>();
            for i in 0..b.num_rows() {
                if values.is_null(i) {
                    continue;
                }
                let v = values.value(i);
                zeros |= v == 0.0;
                if persons.is_valid(i) {
                    *totals.entry(persons.value(i)).or_default() += v.abs();
                } else {
                    largest.push(v.abs());
                }
            }
        }
        largest.extend(totals.into_values());
        largest.sort_by(|a, b| b.total_cmp(a));
        largest.truncate(5);
        assert_eq!(ceiling.largest.len(), largest.len(), "{column}");
        for (got, want) in ceiling.largest.iter().zip(&largest) {
            assert!(
                *got >= *want && *got <= *want * (1.0 + 1e-6),
                "{column}: {got} against {want}"
            );
        }
        assert_eq!(ceiling.zeros, zeros, "{column}");
    }
}

/// Each stratum stands for one combination of its table's coded columns, and the strata file
/// holds, per stratum, its values and exactly the persons, facilities and totals of |value| of
/// its rows; a strata file changed after ingest is refused.
#[test]
fn strata_are_the_persons_facilities_and_totals_of_their_rows() {
    use arrow::array::AsArray;
    use arrow::datatypes::{Float64Type, UInt32Type};
    use arrow::util::display::{ArrayFormatter, FormatOptions};
    use std::collections::{BTreeMap, BTreeSet};
    let d = Delivery::new(1500, 44);
    d.ingest_into("data");
    let store = Store::new(&d.data_dir("data"));
    for (table, person, facility, value) in [
        ("receipts", "person_idx", "facility_mark", "points"),
        ("diagnoses", "parent_person_idx", "parent_facility", ""),
    ] {
        let strata = store.strata("ndb", table).unwrap().expect("strata");
        let stratified = strata.columns();
        match table {
            "receipts" => {
                for coded in ["sex", "prefecture", "setting", "copay_rate"] {
                    assert!(
                        stratified.iter().any(|c| c == coded),
                        "{coded}: {:?}",
                        stratified
                    );
                }
                for never in ["claim_ym", "facility_code", "days", "points"] {
                    assert!(!stratified.iter().any(|c| c == never), "{never}");
                }
            }
            _ => assert!(stratified.iter().any(|c| c == "icd10"), "{:?}", stratified),
        }
        let options = FormatOptions::default().with_null("NULL");
        let tuples = |b: &arrow::record_batch::RecordBatch| -> Vec<String> {
            let coded: Vec<_> = stratified
                .iter()
                .map(|c| {
                    ArrayFormatter::try_new(b.column_by_name(c).unwrap().as_ref(), &options)
                        .unwrap()
                })
                .collect();
            (0..b.num_rows())
                .map(|i| {
                    let tuple: Vec<String> = coded.iter().map(|f| f.value(i).to_string()).collect();
                    tuple.join("\u{1f}")
                })
                .collect()
        };
        let stratum_of: BTreeMap<String, u32> =
            tuples(&strata.values).into_iter().zip(0..).collect();
        assert_eq!(
            stratum_of.len(),
            strata.len(),
            "{table}: one combination a stratum, each its own"
        );
        let mut columns = vec![person, facility];
        columns.extend(stratified.iter().map(String::as_str));
        if !value.is_empty() {
            columns.push(value);
        }
        let mut seen: BTreeSet<u32> = BTreeSet::new();
        let mut persons: BTreeMap<u32, BTreeSet<u32>> = BTreeMap::new();
        let mut facilities: BTreeMap<u32, BTreeSet<u32>> = BTreeMap::new();
        let mut totals: BTreeMap<u32, f64> = BTreeMap::new();
        let mut places_of: BTreeMap<u32, BTreeSet<u32>> = BTreeMap::new();
        for b in store.read_columns("ndb", table, &columns).unwrap() {
            let index = |name: &str| {
                b.column_by_name(name)
                    .unwrap()
                    .as_primitive::<UInt32Type>()
                    .clone()
            };
            let (who, place) = (index(person), index(facility));
            let values = (!value.is_empty()).then(|| {
                arrow::compute::cast(
                    b.column_by_name(value).unwrap(),
                    &arrow::datatypes::DataType::Float64,
                )
                .unwrap()
            });
            for (i, tuple) in tuples(&b).iter().enumerate() {
                let s = *stratum_of
                    .get(tuple)
                    .unwrap_or_else(|| panic!("{table}: {tuple} is in no stratum"));
                seen.insert(s);
                if who.is_valid(i) {
                    persons.entry(s).or_default().insert(who.value(i));
                }
                if place.is_valid(i) {
                    facilities.entry(s).or_default().insert(place.value(i));
                    if who.is_valid(i) {
                        places_of
                            .entry(who.value(i))
                            .or_default()
                            .insert(place.value(i));
                    }
                }
                if let Some(v) = &values {
                    let v = v.as_primitive::<Float64Type>();
                    *totals.entry(s).or_default() +=
                        if v.is_valid(i) { v.value(i).abs() } else { 0.0 };
                }
            }
        }
        assert_eq!(seen.len(), strata.len(), "{table}: every stratum has rows");
        // Each person's facility is one of the person's rows'.
        for (p, &f) in strata.a_facility.iter().enumerate() {
            match places_of.remove(&(p as u32)) {
                Some(places) => assert!(places.contains(&f), "{table}: person {p}"),
                None => assert_eq!(f, niji_store::NO_FACILITY, "{table}: person {p}"),
            }
        }
        assert!(places_of.is_empty(), "{table}: every person has a facility");
        for s in 0..strata.len() as u32 {
            let members = |b: &roaring::RoaringBitmap| b.iter().collect::<BTreeSet<u32>>();
            assert_eq!(
                members(&strata.persons[s as usize]),
                persons.remove(&s).unwrap_or_default(),
                "{table} {s}"
            );
            assert_eq!(
                members(&strata.facilities[s as usize]),
                facilities.remove(&s).unwrap_or_default(),
                "{table} {s}"
            );
            if !value.is_empty() {
                let (got, want) = (strata.totals[value][s as usize], totals[&s]);
                assert!(
                    (got - want).abs() <= want * 1e-9,
                    "{table} {s}: {got} against {want}"
                );
            }
        }
    }
    let dir = store.table_dir("ndb", "receipts");
    let file = dir.join("strata.bin");
    let mut bytes = std::fs::read(&file).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&file, bytes).unwrap();
    assert!(store.strata("ndb", "receipts").is_err());
    assert!(store.verify("ndb", "receipts").is_err());
}
