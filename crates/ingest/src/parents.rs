//! Details (傷病名, 診療行為, 医薬品) carry their parent record's person, facility mark and period
//! (the claim month), as they do inside NDB's own receipt files: a project's period and cohort
//! become a filter on the detail rows, and disclosure control counts the persons behind a
//! detail, without joining the parent table on every query. The columns are not in the catalog, so no
//! project view shows them; the manifest names the parent version they were taken from, and a
//! reader uses them only while that is still the parent in the store.

use std::collections::hash_map::Entry;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Int32Builder, UInt32Builder};
use arrow::datatypes::{DataType, Field, Int32Type, Schema, SchemaRef, UInt32Type};
use arrow::record_batch::RecordBatch;
use niji_catalog::{DisclosureRole, Role, Table};

use crate::IngestError;
use niji_store::Store;

type HashMap<K, V> = std::collections::HashMap<K, V, ahash::RandomState>;

pub use niji_store::parents::{PARENT_FACILITY, PARENT_PERIOD, PARENT_PERSON};

/// What a detail row takes from its parent record, packed to 16 bytes (three options would
/// take 24): at 100M parent records the index is most of the ingest's memory.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Carried {
    person: u32,
    /// The facility's mark.
    facility: u32,
    period: i32,
    /// Which of the three are known: [`PERSON`], [`FACILITY`], [`PERIOD`].
    known: u8,
}

const PERSON: u8 = 1;
const FACILITY: u8 = 2;
const PERIOD: u8 = 4;

impl Carried {
    fn new(person: Option<u32>, facility: Option<u32>, period: Option<i32>) -> Self {
        let bit = |known: bool, bit: u8| if known { bit } else { 0 };
        Self {
            person: person.unwrap_or_default(),
            facility: facility.unwrap_or_default(),
            period: period.unwrap_or_default(),
            known: bit(person.is_some(), PERSON)
                | bit(facility.is_some(), FACILITY)
                | bit(period.is_some(), PERIOD),
        }
    }

    fn person(&self) -> Option<u32> {
        (self.known & PERSON != 0).then_some(self.person)
    }

    fn facility(&self) -> Option<u32> {
        (self.known & FACILITY != 0).then_some(self.facility)
    }

    fn period(&self) -> Option<i32> {
        (self.known & PERIOD != 0).then_some(self.period)
    }
}

/// A record key by its 128-bit hash. The key's text would cost about three times the memory
/// (a boxed string is a 16-byte pointer and a heap allocation of its own); two of 100 million
/// keys share a hash by chance with odds of about 10⁻²³.
fn key_hash(key: &str) -> u128 {
    twox_hash::XxHash3_128::oneshot(key.as_bytes())
}

/// The parent table's person and facility by record key.
pub(crate) struct ParentIndex {
    /// The parent's content digest: which version the details were matched against.
    pub digest: String,
    by_key: HashMap<u128, Carried>,
    has_facility: bool,
    /// The parent's period column type (a month or year as Int32, or a Date32).
    period_type: Option<DataType>,
}

impl ParentIndex {
    /// Reads a published parent table; None when it holds no persons or is not in the store
    /// (its details then go without, and readers join).
    pub fn load(store: &Store, db: &str, parent: &Table) -> Result<Option<Self>, IngestError> {
        if !parent.is_person_level() {
            return Ok(None);
        }
        let Some(manifest) = store.manifest(db, &parent.name)? else {
            return Ok(None);
        };
        let record_key = parent
            .column_with_role(Role::RecordKey)
            .ok_or_else(|| IngestError::Internal(format!("{} has no record key", parent.name)))?;
        let facility = parent.column_for(DisclosureRole::Facility);
        let period = parent.period_column.as_deref();
        let mut wanted = vec![record_key.name.as_str(), "person_idx"];
        wanted.extend(facility.map(|f| f.name.as_str()));
        wanted.extend(period);
        // Sized once for every parent record: growing doubles the table, and while it grows
        // the old and the new table are both held.
        let records: u64 = manifest.parts.iter().map(|p| p.rows).sum();
        let mut index = Self {
            by_key: HashMap::with_capacity_and_hasher(
                usize::try_from(records).unwrap_or(0),
                ahash::RandomState::default(),
            ),
            digest: manifest.content_digest,
            has_facility: facility.is_some(),
            period_type: None,
        };
        for batch in store.read_columns(db, &parent.name, &wanted)? {
            // Columns come in the file's order, not the order asked for.
            let column = |name: &str| {
                batch.column_by_name(name).ok_or_else(|| {
                    IngestError::Corrupt(format!("{}: no column {name}", parent.name))
                })
            };
            let mistyped = |name: &str| {
                IngestError::Corrupt(format!("{}: column {name} has another type", parent.name))
            };
            let text = |name: &str| {
                column(name)?
                    .as_string_opt::<i32>()
                    .ok_or_else(|| mistyped(name))
            };
            let keys = text(&record_key.name)?;
            let persons = column("person_idx")?
                .as_primitive_opt::<UInt32Type>()
                .ok_or_else(|| mistyped("person_idx"))?;
            let facilities = match facility {
                Some(f) => Some(text(&f.name)?),
                None => None,
            };
            let periods = match period {
                Some(name) => {
                    let values = column(name)?;
                    index.period_type = Some(values.data_type().clone());
                    // Months, years and dates are all 32-bit integers underneath.
                    let values = arrow::compute::cast(values, &DataType::Int32)?;
                    Some(values.as_primitive::<Int32Type>().clone())
                }
                None => None,
            };
            for row in 0..batch.num_rows() {
                if keys.is_null(row) {
                    continue;
                }
                let person = persons.is_valid(row).then(|| persons.value(row));
                let facility = facilities
                    .filter(|f| f.is_valid(row))
                    .map(|f| niji_store::facility_mark(f.value(row)));
                let period = periods
                    .as_ref()
                    .filter(|p| p.is_valid(row))
                    .map(|p| p.value(row));
                let carried = Carried::new(person, facility, period);
                // One lookup a record: the entry either is new or must agree.
                match index.by_key.entry(key_hash(keys.value(row))) {
                    Entry::Vacant(slot) => {
                        slot.insert(carried);
                    }
                    Entry::Occupied(known) if *known.get() != carried => {
                        // A record key of two records: which one a detail belongs to is not
                        // known, so the details go without, and readers join as before.
                        tracing::warn!(table = %parent.name, "record keys repeat; details not matched");
                        return Ok(None);
                    }
                    Entry::Occupied(_) => {}
                }
            }
        }
        Ok(Some(index))
    }

    /// `schema` with the parent's columns added.
    pub fn schema(&self, schema: &Schema) -> SchemaRef {
        let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
        fields.push(Field::new(PARENT_PERSON, DataType::UInt32, true));
        if self.has_facility {
            fields.push(Field::new(PARENT_FACILITY, DataType::UInt32, true));
        }
        if let Some(ty) = &self.period_type {
            fields.push(Field::new(PARENT_PERIOD, ty.clone(), true));
        }
        Arc::new(Schema::new(fields))
    }

    /// `batch` with each row's parent (by its `key_column`) person, facility and period (null where the parent
    /// record, or its value, is unknown).
    pub fn attach(
        &self,
        batch: &RecordBatch,
        key_column: &str,
    ) -> Result<RecordBatch, IngestError> {
        let keys = batch
            .column_by_name(key_column)
            .and_then(|c| c.as_string_opt::<i32>())
            .ok_or_else(|| IngestError::Internal(format!("no text column {key_column}")))?;
        let rows = batch.num_rows();
        let mut persons = UInt32Builder::with_capacity(rows);
        let mut facilities = UInt32Builder::with_capacity(rows);
        let mut periods = Int32Builder::with_capacity(rows);
        for row in 0..rows {
            let carried = if keys.is_valid(row) {
                self.by_key
                    .get(&key_hash(keys.value(row)))
                    .copied()
                    .unwrap_or_default()
            } else {
                Carried::default()
            };
            persons.append_option(carried.person());
            facilities.append_option(carried.facility());
            periods.append_option(carried.period());
        }
        let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
        columns.push(Arc::new(persons.finish()));
        if self.has_facility {
            columns.push(Arc::new(facilities.finish()));
        }
        if let Some(ty) = &self.period_type {
            columns.push(arrow::compute::cast(&periods.finish(), ty)?);
        }
        Ok(RecordBatch::try_new(self.schema(&batch.schema()), columns)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Packing keeps every value, zero included, apart from an unknown one.
    #[test]
    fn carried_values_survive_packing_and_unknown_stays_unknown() {
        for person in [None, Some(0), Some(7), Some(u32::MAX)] {
            for facility in [None, Some(0), Some(u32::MAX)] {
                for period in [None, Some(0), Some(202_204), Some(i32::MIN)] {
                    let c = Carried::new(person, facility, period);
                    assert_eq!(
                        (c.person(), c.facility(), c.period()),
                        (person, facility, period)
                    );
                }
            }
        }
        assert_eq!(std::mem::size_of::<Carried>(), 16);
        assert_ne!(key_hash("a"), key_hash("b"));
    }
}
