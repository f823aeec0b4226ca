//! A table's parts clustered by fiscal year, then person: each part holds rows of one fiscal
//! year (April to March) in ascending person order. A project's period still skips whole parts
//! by their statistics, and disclosure control's shadow aggregates meet each cell's persons in
//! a few ascending runs, where rows in extract order would cost a hash-map update a row.
//!
//! Clustering streams beside the read: each chunk of the extract, as it is parsed, is cut into
//! partitions by fiscal year and by a range of person indexes ([`PERSON_RANGES`] per year),
//! and held in memory up to a budget, beyond which chunks go to spill files. Afterwards,
//! consecutive ranges of a year are sorted together in units of about `sort_rows` rows, in
//! parallel, and written as parts. Ranges hold disjoint persons in ascending order, so units
//! in order give the whole year in person order: no year is ever sorted, or held, whole.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{BufReader, BufWriter};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use arrow::array::{Array, AsArray, UInt32Array};
use arrow::compute::{DatePart, date_part, interleave_record_batch, take_record_batch};
use arrow::datatypes::{DataType, Date32Type, Int32Type, SchemaRef, UInt32Type};
use arrow::ipc::CompressionType;
use arrow::ipc::reader::FileReader;
use arrow::ipc::writer::{FileWriter, IpcWriteOptions};
use arrow::record_batch::RecordBatch;
use parquet::file::properties::WriterProperties;
use rayon::prelude::*;

use niji_store::{Ceiling, PartInfo, Strata};

use crate::ceilings::Totals;
use crate::strata::{self, Distinct, Stratifier};
use crate::{IngestError, io, write_part};

/// Rows per clustered part.
pub(crate) const PART_ROWS: usize = 1 << 16;

/// Ranges of person indexes a fiscal year is cut into while the extract is read.
const PERSON_RANGES: u32 = 256;

/// The bucket of rows without a period (and of tables without a period column): after every
/// fiscal year.
const NO_PERIOD: i32 = i32::MAX;

/// A table clustered: its new parts, the ceilings of its numeric columns (summed per person on
/// the way) and its strata (gathered on the way).
pub(crate) struct Clustered {
    pub(crate) parts: Vec<PartInfo>,
    pub(crate) ceilings: BTreeMap<String, Ceiling>,
    pub(crate) strata: Option<Strata>,
    /// Chunks that went to spill files because the budget was full.
    pub(crate) spilled_chunks: usize,
}

/// What a table is clustered by: its person and period columns, its facility column, and the
/// coded columns its strata may be made of.
pub(crate) struct Keys<'a> {
    pub(crate) person: &'a str,
    pub(crate) period: Option<&'a str>,
    pub(crate) facility: Option<&'a str>,
    pub(crate) coded: &'a [String],
    /// Persons in the registry: person indexes are below it.
    pub(crate) persons: usize,
}

/// A partition of a chunk: fiscal year, then person range (rows of no person in the range
/// after the last).
type Partition = (i32, u32);

/// Each partition of a chunk with its first row and row count, ascending.
type Partitions = Vec<(Partition, usize, usize)>;

/// One chunk of the extract, its rows ordered by partition (extract order within each).
struct Chunk {
    partitions: Partitions,
    rows: Rows,
}

enum Rows {
    Held(RecordBatch),
    /// An Arrow IPC file holding one batch per partition, in the order of `partitions`.
    Spilled(PathBuf),
}

/// Chunks gathered while the extract is read; [`Clusterer::finish`] writes the parts.
pub(crate) struct Clusterer<'a> {
    keys: Keys<'a>,
    schema: SchemaRef,
    range_width: u32,
    spill_dir: PathBuf,
    budget: usize,
    unit_rows: u64,
    state: Mutex<Gathered>,
}

#[derive(Default)]
struct Gathered {
    /// By chunk index (extract order).
    chunks: BTreeMap<usize, Chunk>,
    held_bytes: usize,
    spilled: usize,
    distinct: Option<Distinct>,
}

impl<'a> Clusterer<'a> {
    /// Gathers chunks of rows of `schema` clustered by `keys`, holding up to `budget` bytes in
    /// memory and spilling the rest under `staging`, to be sorted `unit_rows` at a time.
    pub(crate) fn new(
        keys: Keys<'a>,
        schema: SchemaRef,
        staging: &Path,
        budget: usize,
        unit_rows: u64,
    ) -> Result<Self, IngestError> {
        let spill_dir = staging.join("spill");
        fs::create_dir_all(&spill_dir).map_err(io(&spill_dir))?;
        let range_width = u32::try_from(keys.persons.div_ceil(PERSON_RANGES as usize))
            .unwrap_or(u32::MAX)
            .max(1);
        Ok(Self {
            keys,
            schema,
            range_width,
            spill_dir,
            budget,
            unit_rows,
            state: Mutex::new(Gathered::default()),
        })
    }

    /// Adds chunk `index` of the extract. Called from several threads, in any order.
    pub(crate) fn add(&self, index: usize, batch: &RecordBatch) -> Result<(), IngestError> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let mut distinct = Distinct::new(self.keys.coded);
        distinct.add(batch)?;
        let (order, partitions) = self.partition(batch)?;
        let ordered = take_record_batch(batch, &order)?;
        let bytes = ordered.get_array_memory_size();
        let hold = {
            let mut state = self.lock()?;
            state.distinct = Some(match state.distinct.take() {
                Some(d) => d.merge(distinct),
                None => distinct,
            });
            let hold = state.held_bytes + bytes <= self.budget;
            if hold {
                state.held_bytes += bytes;
            } else {
                state.spilled += 1;
            }
            hold
        };
        let rows = if hold {
            Rows::Held(ordered)
        } else {
            Rows::Spilled(self.spill(index, &ordered, &partitions)?)
        };
        self.lock()?
            .chunks
            .insert(index, Chunk { partitions, rows });
        Ok(())
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Gathered>, IngestError> {
        self.state
            .lock()
            .map_err(|_| IngestError::Internal("a clustering thread panicked".into()))
    }

    /// The order of `batch`'s rows by partition (stable: extract order within each), and the
    /// partitions with their rows in that order.
    fn partition(&self, batch: &RecordBatch) -> Result<(UInt32Array, Partitions), IngestError> {
        let years = fiscal_years(batch, self.keys.period)?;
        let persons = person_indexes(batch, self.keys.person)?;
        let mut keyed: Vec<(Partition, u32)> = years
            .iter()
            .enumerate()
            .map(|(row, &fy)| {
                let range = if persons.is_valid(row) {
                    persons.value(row) / self.range_width
                } else {
                    PERSON_RANGES
                };
                ((fy, range), row as u32)
            })
            .collect();
        keyed.sort_unstable();
        let mut partitions: Partitions = Vec::new();
        for (at, (p, _)) in keyed.iter().enumerate() {
            match partitions.last_mut() {
                Some((last, _, rows)) if last == p => *rows += 1,
                _ => partitions.push((*p, at, 1)),
            }
        }
        Ok((keyed.into_iter().map(|(_, row)| row).collect(), partitions))
    }

    fn spill(
        &self,
        index: usize,
        ordered: &RecordBatch,
        partitions: &[(Partition, usize, usize)],
    ) -> Result<PathBuf, IngestError> {
        let path = self.spill_dir.join(format!("chunk-{index:06}.arrow"));
        let file = File::create(&path).map_err(io(&path))?;
        // Compressed: at 100M receipts the spill is gigabytes of mostly random hex, four bits
        // of entropy a byte, which zstd can halve; disk ran out before time did.
        let options =
            IpcWriteOptions::default().try_with_compression(Some(CompressionType::ZSTD))?;
        let mut writer =
            FileWriter::try_new_with_options(BufWriter::new(file), &self.schema, options)?;
        for &(_, first, rows) in partitions {
            writer.write(&ordered.slice(first, rows))?;
        }
        writer.finish()?;
        Ok(path)
    }

    /// Sorts the gathered chunks into parts in `out_dir`, with the table's ceilings and strata.
    pub(crate) fn finish(
        self,
        out_dir: &Path,
        props: &WriterProperties,
    ) -> Result<Clustered, IngestError> {
        let gathered = self
            .state
            .into_inner()
            .map_err(|_| IngestError::Internal("a clustering thread panicked".into()))?;
        let mut rows_of: BTreeMap<Partition, u64> = BTreeMap::new();
        for chunk in gathered.chunks.values() {
            for &(p, _, rows) in &chunk.partitions {
                *rows_of.entry(p).or_default() += rows as u64;
            }
        }
        let units = units(&rows_of, self.unit_rows);
        let strata_of = gathered
            .distinct
            .map(|d| strata::choose(d.counts()))
            .unwrap_or_default();
        let mut stratifier = Stratifier::new(
            &self.schema,
            &strata_of,
            self.keys.person,
            self.keys.facility,
            &crate::SHADOW_INDEXES,
        )?;
        let mut totals = Totals::new(&self.schema, self.keys.person, &crate::SHADOW_INDEXES);
        let sorter = UnitSorter {
            chunks: &gathered.chunks,
            keys: &self.keys,
        };
        let mut parts = Vec::new();
        // A unit per thread at a time, sorted and written while the window before is summed:
        // ceilings and strata take the units in order, since a stratum's number and a
        // person's first facility depend on it.
        let mut summing: Vec<RecordBatch> = Vec::new();
        let mut sum = |sorted: Vec<RecordBatch>| -> Result<(), IngestError> {
            for batch in &sorted {
                totals.add_sorted(batch)?;
                if let Some(s) = stratifier.as_mut() {
                    s.add(batch)?;
                }
            }
            Ok(())
        };
        for window in units.chunks(rayon::current_num_threads().max(1)) {
            let previous = std::mem::take(&mut summing);
            let (summed, done) = rayon::join(
                || sum(previous),
                || {
                    window
                        .par_iter()
                        .map(|unit| sorter.sort_and_write(unit, out_dir, props))
                        .collect::<Result<Vec<_>, IngestError>>()
                },
            );
            summed?;
            for (sorted, written) in done? {
                summing.push(sorted);
                parts.extend(written);
            }
        }
        sum(summing)?;
        let before: u64 = rows_of.values().sum();
        let after: u64 = parts.iter().map(|p| p.rows).sum();
        if before != after {
            return Err(IngestError::Internal(format!(
                "clustering by person turned {before} rows into {after}"
            )));
        }
        fs::remove_dir_all(&self.spill_dir).map_err(io(&self.spill_dir))?;
        Ok(Clustered {
            parts,
            ceilings: totals.finish(),
            strata: stratifier.map(Stratifier::finish).transpose()?,
            spilled_chunks: gathered.spilled,
        })
    }
}

/// Consecutive person ranges of one fiscal year, sorted together.
struct Unit {
    year: i32,
    ranges: std::ops::RangeInclusive<u32>,
    first_part: usize,
}

/// Cuts each fiscal year into units of about `unit_rows` rows (at least a person range),
/// numbering their parts.
fn units(rows_of: &BTreeMap<Partition, u64>, unit_rows: u64) -> Vec<Unit> {
    let mut units: Vec<(i32, u32, u32, u64)> = Vec::new();
    for (&(year, range), &rows) in rows_of {
        match units.last_mut() {
            Some((y, _, last, n)) if *y == year && *n < unit_rows => {
                *last = range;
                *n += rows;
            }
            _ => units.push((year, range, range, rows)),
        }
    }
    let mut first_part = 0;
    units
        .into_iter()
        .map(|(year, first, last, rows)| {
            let unit = Unit {
                year,
                ranges: first..=last,
                first_part,
            };
            first_part += (rows as usize).div_ceil(PART_ROWS);
            unit
        })
        .collect()
}

struct UnitSorter<'c> {
    chunks: &'c BTreeMap<usize, Chunk>,
    keys: &'c Keys<'c>,
}

impl UnitSorter<'_> {
    /// The unit sorted, and its parts written.
    fn sort_and_write(
        &self,
        unit: &Unit,
        out_dir: &Path,
        props: &WriterProperties,
    ) -> Result<(RecordBatch, Vec<PartInfo>), IngestError> {
        let sorted = self.sort(unit)?;
        let mut written = Vec::new();
        for (k, at) in (0..sorted.num_rows()).step_by(PART_ROWS).enumerate() {
            let rows = PART_ROWS.min(sorted.num_rows() - at);
            written.extend(write_part(
                out_dir,
                unit.first_part + k,
                &sorted.slice(at, rows),
                props.clone(),
            )?);
        }
        Ok((sorted, written))
    }

    /// The unit's rows from every chunk (in extract order), sorted by person (nulls last),
    /// then period, then extract order.
    fn sort(&self, unit: &Unit) -> Result<RecordBatch, IngestError> {
        let mut pieces: Vec<RecordBatch> = Vec::new();
        for chunk in self.chunks.values() {
            let of_unit =
                |(year, range): Partition| year == unit.year && unit.ranges.contains(&range);
            let wanted: Vec<(usize, &(Partition, usize, usize))> = chunk
                .partitions
                .iter()
                .enumerate()
                .filter(|(_, (p, _, _))| of_unit(*p))
                .collect();
            let (Some(&(_, first)), Some(&(_, last))) = (wanted.first(), wanted.last()) else {
                continue;
            };
            match &chunk.rows {
                // The unit's partitions are consecutive in the chunk.
                Rows::Held(batch) => {
                    let end = last.1 + last.2;
                    pieces.push(batch.slice(first.1, end - first.1));
                }
                Rows::Spilled(path) => {
                    let file = File::open(path).map_err(io(path))?;
                    let mut reader = FileReader::try_new(BufReader::new(file), None)?;
                    for (ordinal, _) in &wanted {
                        reader.set_index(*ordinal)?;
                        let batch = reader.next().transpose()?.ok_or_else(|| {
                            IngestError::Internal(format!("{} ended early", path.display()))
                        })?;
                        pieces.push(batch);
                    }
                }
            }
        }
        let mut keys: Vec<(u64, i64, usize, usize)> = Vec::new();
        for (piece, batch) in pieces.iter().enumerate() {
            let persons = person_indexes(batch, self.keys.person)?;
            let periods = periods(batch, self.keys.period);
            keys.extend((0..batch.num_rows()).map(|row| {
                let who = if persons.is_valid(row) {
                    u64::from(persons.value(row))
                } else {
                    u64::MAX
                };
                (who, periods[row], piece, row)
            }));
        }
        keys.sort_unstable();
        let indices: Vec<(usize, usize)> = keys.into_iter().map(|(_, _, p, r)| (p, r)).collect();
        let pieces: Vec<&RecordBatch> = pieces.iter().collect();
        Ok(interleave_record_batch(&pieces, &indices)?)
    }
}

fn person_indexes<'b>(
    batch: &'b RecordBatch,
    person: &str,
) -> Result<&'b UInt32Array, IngestError> {
    Ok(batch
        .column_by_name(person)
        .filter(|c| c.data_type() == &DataType::UInt32)
        .ok_or_else(|| IngestError::Internal(format!("{person} is not a person index")))?
        .as_primitive::<UInt32Type>())
}

/// Each row's period as a sort key (nulls last).
fn periods(batch: &RecordBatch, period: Option<&str>) -> Vec<i64> {
    let key = |v: Option<i32>| v.map_or(i64::MAX, i64::from);
    match period.and_then(|p| batch.column_by_name(p)) {
        Some(p) if p.data_type() == &DataType::Int32 => {
            p.as_primitive::<Int32Type>().iter().map(key).collect()
        }
        Some(p) if p.data_type() == &DataType::Date32 => {
            p.as_primitive::<Date32Type>().iter().map(key).collect()
        }
        _ => vec![i64::MAX; batch.num_rows()],
    }
}

/// Each row's fiscal year: from a date, a `YYYYMM` or a fiscal year itself (an integer period
/// below 100000, which no `YYYYMM` is).
fn fiscal_years(batch: &RecordBatch, period: Option<&str>) -> Result<Vec<i32>, IngestError> {
    let Some(values) = period.and_then(|p| batch.column_by_name(p)) else {
        return Ok(vec![NO_PERIOD; batch.num_rows()]);
    };
    let of = |year: i32, month: i32| if month >= 4 { year } else { year - 1 };
    Ok(match values.data_type() {
        DataType::Int32 => values
            .as_primitive::<Int32Type>()
            .iter()
            .map(|v| match v {
                Some(ym) if ym >= 100_000 => of(ym / 100, ym % 100),
                Some(fy) => fy,
                None => NO_PERIOD,
            })
            .collect(),
        DataType::Date32 | DataType::Date64 => {
            let years = date_part(values, DatePart::Year)?;
            let months = date_part(values, DatePart::Month)?;
            years
                .as_primitive::<Int32Type>()
                .iter()
                .zip(months.as_primitive::<Int32Type>().iter())
                .map(|(y, m)| y.zip(m).map_or(NO_PERIOD, |(y, m)| of(y, m)))
                .collect()
        }
        other => {
            return Err(IngestError::Internal(format!(
                "period column of type {other}"
            )));
        }
    })
}
