//! Linkage quality of the stored identifiers, measured against the generator's truth file.
//!
//! For each identifier, over the person-level tables that carry it: pairwise precision and
//! recall of "same person" (a pair of records is linked when both carry the same non-null
//! value), the share of records with a false link, and the share of persons whose records
//! stay linked across a change of insured number (persons whose records carry two or more
//! distinct ID1 values, i.e. two or more insured numbers). Figures are given over all records
//! and over the records that carry a usable insured number.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use arrow::array::{Array, StringArray};
use niji_catalog::Catalog;
use serde::Serialize;

use crate::IngestError;
use niji_store::Store;

const IDENTIFIERS: [&str; 4] = ["id1", "id2", "id5", "research_id"];

#[derive(Debug, Clone, Serialize)]
pub struct Quality {
    pub identifier: String,
    pub scope: String,
    pub records: u64,
    pub records_with_id: u64,
    pub true_pairs: u128,
    pub linked_pairs: u128,
    pub correct_pairs: u128,
    pub precision: f64,
    pub recall: f64,
    pub false_link_rate: f64,
    pub records_with_false_link: u64,
    pub persons_with_number_change: u64,
    pub linked_across_change: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct LinkageReport {
    pub tables: Vec<String>,
    pub records: u64,
    pub records_not_in_truth: u64,
    pub records_without_insured_number: u64,
    pub records_without_id5: u64,
    pub qualities: Vec<Quality>,
    pub id5_recall_usable: f64,
    pub id5_false_link_rate_usable: f64,
    /// The acceptance bar of the foundation issue: recall ≥ 99.5 %, false links < 0.01 %.
    pub id5_meets_target: bool,
}

/// One stored record as the report needs it.
struct Record {
    person: u32,
    usable: bool,
    ids: [Option<u32>; 4],
    /// Whether the record's table has each identifier column at all (its scope).
    carries: [bool; 4],
}

fn pairs(n: u64) -> u128 {
    u128::from(n) * u128::from(n.saturating_sub(1)) / 2
}

pub fn measure(
    catalog: &Catalog,
    store: &Store,
    truth: &Path,
) -> Result<LinkageReport, IngestError> {
    let mut tables = Vec::new();
    for db in catalog.databases.values() {
        for t in db
            .tables
            .iter()
            .filter(|t| t.is_person_level() && t.identifiers.len() > 1)
        {
            if store.manifest(&db.name, &t.name)?.is_some() {
                tables.push((db.name.clone(), t.name.clone(), t.identifiers.clone()));
            }
        }
    }
    if tables.is_empty() {
        return Err(IngestError::NotIngested("no person-level table".into()));
    }
    let truth = load_truth(truth)?;
    let mut values: [HashMap<Box<str>, u32>; 4] = Default::default();
    let mut records = Vec::new();
    let mut not_in_truth = 0u64;
    for (db, table, ids) in &tables {
        let Some(keys) = truth.get(&(db.clone(), table.clone())) else {
            continue;
        };
        let mut cols = vec!["record_key"];
        cols.extend(IDENTIFIERS.iter().filter(|i| ids.iter().any(|x| x == *i)));
        for batch in store.read_columns(db, table, &cols)? {
            let col = |name: &str| {
                cols.iter().position(|c| *c == name).and_then(|i| {
                    batch
                        .column(i)
                        .as_any()
                        .downcast_ref::<StringArray>()
                        .cloned()
                })
            };
            let key = col("record_key")
                .ok_or_else(|| IngestError::Corrupt("record_key is not text".into()))?;
            let id_cols: Vec<Option<StringArray>> = IDENTIFIERS.iter().map(|i| col(i)).collect();
            for row in 0..batch.num_rows() {
                let Some(&person) = keys.get(key.value(row)) else {
                    not_in_truth += 1;
                    continue;
                };
                let mut rec = Record {
                    person,
                    usable: false,
                    ids: [None; 4],
                    carries: [0, 1, 2, 3].map(|k| id_cols[k].is_some()),
                };
                for (k, c) in id_cols.iter().enumerate() {
                    if let Some(c) = c.as_ref().filter(|c| c.is_valid(row)) {
                        let next = values[k].len() as u32;
                        rec.ids[k] = Some(*values[k].entry(c.value(row).into()).or_insert(next));
                    }
                }
                rec.usable = rec.ids[0].is_some();
                records.push(rec);
            }
        }
    }
    // Persons who changed insured number: two or more ID1 values, each on two or more records
    // (a one-off typo in a card number also makes a new ID1, but no second record shares it).
    let mut id1_counts: HashMap<(u32, u32), u32> = HashMap::new();
    for r in &records {
        if let Some(v) = r.ids[0] {
            *id1_counts.entry((r.person, v)).or_default() += 1;
        }
    }
    let mut numbers_held: HashMap<u32, Vec<u32>> = HashMap::new();
    for ((person, v), n) in id1_counts {
        if n >= 2 {
            numbers_held.entry(person).or_default().push(v);
        }
    }
    let changed: HashMap<u32, Vec<u32>> = numbers_held
        .into_iter()
        .filter(|(_, v)| v.len() > 1)
        .collect();

    let mut qualities = Vec::new();
    for (k, name) in IDENTIFIERS.iter().enumerate() {
        if !tables.iter().any(|t| t.2.iter().any(|x| x == name)) {
            continue;
        }
        for (scope, usable_only) in [("all records", false), ("usable insured number", true)] {
            let scoped: Vec<&Record> = records
                .iter()
                .filter(|r| !usable_only || r.usable)
                // Over the tables that have this identifier: a record there without a value
                // (no usable input) counts as a missed link, not as out of scope.
                .filter(|r| r.carries[k])
                .collect();
            qualities.push(quality(name, scope, &scoped, k, &changed));
        }
    }
    let id5 = qualities
        .iter()
        .find(|q| q.identifier == "id5" && q.scope == "usable insured number");
    let (recall, flr) = id5.map_or((0.0, 1.0), |q| (q.recall, q.false_link_rate));
    Ok(LinkageReport {
        tables: tables.iter().map(|t| format!("{}.{}", t.0, t.1)).collect(),
        records: records.len() as u64,
        records_not_in_truth: not_in_truth,
        records_without_insured_number: records.iter().filter(|r| !r.usable).count() as u64,
        records_without_id5: records.iter().filter(|r| r.ids[2].is_none()).count() as u64,
        qualities,
        id5_recall_usable: recall,
        id5_false_link_rate_usable: flr,
        id5_meets_target: recall >= 0.995 && flr < 0.0001,
    })
}

fn quality(
    name: &str,
    scope: &str,
    records: &[&Record],
    k: usize,
    changed: &HashMap<u32, Vec<u32>>,
) -> Quality {
    let mut per_person: HashMap<u32, u64> = HashMap::new();
    let mut per_value: HashMap<u32, u64> = HashMap::new();
    let mut cells: HashMap<(u32, u32), u64> = HashMap::new();
    let mut value_persons: HashMap<u32, (u32, bool)> = HashMap::new();
    // For the insurer-change figure: over the records on the numbers a changed person held,
    // one value of this identifier, or a break (None).
    let mut person_value: HashMap<u32, Option<u32>> = HashMap::new();
    let mut with_id = 0u64;
    for r in records {
        *per_person.entry(r.person).or_default() += 1;
        let v = r.ids[k];
        let on_held_number = changed
            .get(&r.person)
            .is_some_and(|held| r.ids[0].is_some_and(|id1| held.contains(&id1)));
        if on_held_number {
            let entry = person_value.entry(r.person).or_insert(v);
            if *entry != v {
                *entry = None;
            }
        }
        let Some(v) = v else { continue };
        with_id += 1;
        *per_value.entry(v).or_default() += 1;
        *cells.entry((v, r.person)).or_default() += 1;
        value_persons
            .entry(v)
            .and_modify(|e| e.1 |= e.0 != r.person)
            .or_insert((r.person, false));
    }
    let true_pairs: u128 = per_person.values().map(|&n| pairs(n)).sum();
    let linked_pairs: u128 = per_value.values().map(|&n| pairs(n)).sum();
    let correct_pairs: u128 = cells.values().map(|&n| pairs(n)).sum();
    let records_with_false_link = per_value
        .iter()
        .filter(|(v, _)| value_persons.get(v).is_some_and(|e| e.1))
        .map(|(_, n)| *n)
        .sum();
    let persons_with_change = person_value.len() as u64;
    let stayed = person_value.values().filter(|v| v.is_some()).count() as u64;
    let ratio = |a: u128, b: u128| if b == 0 { 1.0 } else { a as f64 / b as f64 };
    Quality {
        identifier: name.to_string(),
        scope: scope.to_string(),
        records: records.len() as u64,
        records_with_id: with_id,
        true_pairs,
        linked_pairs,
        correct_pairs,
        precision: ratio(correct_pairs, linked_pairs),
        recall: ratio(correct_pairs, true_pairs),
        false_link_rate: 1.0 - ratio(correct_pairs, linked_pairs),
        records_with_false_link,
        persons_with_number_change: persons_with_change,
        linked_across_change: ratio(u128::from(stayed), u128::from(persons_with_change)),
    }
}

type Truth = HashMap<(String, String), HashMap<Box<str>, u32>>;

fn load_truth(path: &Path) -> Result<Truth, IngestError> {
    let mut reader = csv::ReaderBuilder::new()
        .from_path(path)
        .map_err(|e| IngestError::Truth(format!("{}: {e}", path.display())))?;
    let headers = reader
        .headers()
        .map_err(|e| IngestError::Truth(e.to_string()))?
        .clone();
    if headers.iter().collect::<Vec<_>>() != ["db", "table", "record_key", "person_key"] {
        return Err(IngestError::Truth(
            "expected the columns db,table,record_key,person_key".into(),
        ));
    }
    let mut persons: HashMap<Box<str>, u32> = HashMap::new();
    let mut truth: Truth = HashMap::new();
    let mut record = csv::StringRecord::new();
    while reader
        .read_record(&mut record)
        .map_err(|e| IngestError::Truth(e.to_string()))?
    {
        let next = persons.len() as u32;
        let person = *persons.entry(record[3].into()).or_insert(next);
        let table = (record[0].to_string(), record[1].to_string());
        truth
            .entry(table)
            .or_default()
            .insert(record[2].into(), person);
    }
    Ok(truth)
}

fn pct(x: f64) -> String {
    format!("{:.4}%", x * 100.0)
}

impl fmt::Display for LinkageReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "Linkage quality over {} records of {}",
            self.records,
            self.tables.join(", ")
        )?;
        writeln!(
            f,
            "records without a usable insured number: {} ({}); without ID5: {} ({})",
            self.records_without_insured_number,
            pct(self.records_without_insured_number as f64 / self.records.max(1) as f64),
            self.records_without_id5,
            pct(self.records_without_id5 as f64 / self.records.max(1) as f64),
        )?;
        writeln!(
            f,
            "{:<12} {:<22} {:>10} {:>10} {:>10} {:>12} {:>14} {:>16}",
            "identifier",
            "scope",
            "records",
            "precision",
            "recall",
            "false links",
            "false-link rec",
            "linked @ change"
        )?;
        for q in &self.qualities {
            writeln!(
                f,
                "{:<12} {:<22} {:>10} {:>10} {:>10} {:>12} {:>14} {:>9} of {:>4}",
                q.identifier,
                q.scope,
                q.records,
                pct(q.precision),
                pct(q.recall),
                pct(q.false_link_rate),
                q.records_with_false_link,
                pct(q.linked_across_change),
                q.persons_with_number_change
            )?;
        }
        writeln!(
            f,
            "ID5 over records with a usable insured number: recall {} (target ≥ 99.5%), false links {} (target < 0.01%): {}",
            pct(self.id5_recall_usable),
            pct(self.id5_false_link_rate_usable),
            if self.id5_meets_target {
                "MEETS TARGET"
            } else {
                "BELOW TARGET"
            }
        )
    }
}
