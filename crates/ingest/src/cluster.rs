//! A table's parts clustered by fiscal year, then person: each part holds rows of one fiscal
//! year (April to March) in ascending person order. A project's period still skips whole parts
//! by their statistics, and disclosure control's shadow aggregates meet each cell's persons in
//! a few ascending runs, where rows in extract order would cost a hash-map update a row.
//!
//! One fiscal year is sorted in memory at a time.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::path::Path;

use arrow::array::{Array, AsArray, BooleanArray, UInt32Array};
use arrow::compute::{DatePart, concat_batches, date_part, filter_record_batch, take_record_batch};
use arrow::datatypes::{DataType, Date32Type, Int32Type, UInt32Type};
use arrow::record_batch::RecordBatch;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::file::properties::WriterProperties;
use rayon::prelude::*;

use niji_store::{Ceiling, Strata};

use crate::ceilings::Totals;
use crate::strata::{self, Distinct, Stratifier};
use crate::{IngestError, io, write_part};
use niji_store::PartInfo;

/// Rows per clustered part.
const PART_ROWS: usize = 1 << 16;

/// The bucket of rows without a period (and of tables without a period column): after every
/// fiscal year.
const NO_PERIOD: i32 = i32::MAX;

/// A table clustered: its new parts, the ceilings of its numeric columns (summed per person on
/// the way) and its strata (gathered on the way).
pub(crate) struct Clustered {
    pub(crate) parts: Vec<PartInfo>,
    pub(crate) ceilings: BTreeMap<String, Ceiling>,
    pub(crate) strata: Option<Strata>,
}

/// What a table is clustered by: its person and period columns, its facility column, and the
/// coded columns its strata may be made of.
pub(crate) struct Keys<'a> {
    pub(crate) person: &'a str,
    pub(crate) period: Option<&'a str>,
    pub(crate) facility: Option<&'a str>,
    pub(crate) coded: &'a [String],
}

/// Rewrites the parts in `dir` clustered by the fiscal year of the period and by person
/// (nulls last). Ties keep their extract order, so the same extract gives the same parts.
pub(crate) fn cluster(
    dir: &Path,
    parts: &[PartInfo],
    keys: &Keys<'_>,
    props: &WriterProperties,
) -> Result<Clustered, IngestError> {
    let (person, period) = (keys.person, keys.period);
    let first_pass: Vec<&str> = period
        .into_iter()
        .chain(keys.coded.iter().map(String::as_str))
        .collect();
    let (years, distinct): (Vec<BTreeSet<i32>>, Vec<Distinct>) = parts
        .par_iter()
        .map(|p| {
            let batch = read(
                &dir.join(&p.file),
                (!first_pass.is_empty()).then_some(first_pass.as_slice()),
            )?;
            let mut distinct = Distinct::new(keys.coded);
            distinct.add(&batch)?;
            Ok((
                fiscal_years(&batch, period)?.into_iter().collect(),
                distinct,
            ))
        })
        .collect::<Result<Vec<_>, IngestError>>()?
        .into_iter()
        .unzip();
    let strata_of = distinct
        .into_iter()
        .reduce(Distinct::merge)
        .map(|d| strata::choose(d.counts()))
        .unwrap_or_default();
    let mut stratifier = match parts.first() {
        Some(p) => {
            let path = dir.join(&p.file);
            let file = File::open(&path).map_err(io(&path))?;
            let schema = ParquetRecordBatchReaderBuilder::try_new(file)?
                .schema()
                .clone();
            Stratifier::new(
                &schema,
                &strata_of,
                person,
                keys.facility,
                &crate::SHADOW_INDEXES,
            )?
        }
        None => None,
    };
    let all: BTreeSet<i32> = years.iter().flatten().copied().collect();
    let out_dir = dir.join("clustered");
    fs::create_dir_all(&out_dir).map_err(io(&out_dir))?;
    let mut clustered: Vec<PartInfo> = Vec::new();
    let mut totals: Option<Totals> = None;
    for year in all {
        let batches: Vec<RecordBatch> = parts
            .par_iter()
            .zip(&years)
            .filter(|(_, y)| y.contains(&year))
            .map(|(p, y)| {
                let batch = read(&dir.join(&p.file), None)?;
                if y.len() == 1 {
                    return Ok(batch);
                }
                let of_year: BooleanArray = fiscal_years(&batch, period)?
                    .into_iter()
                    .map(|fy| Some(fy == year))
                    .collect();
                Ok(filter_record_batch(&batch, &of_year)?)
            })
            .collect::<Result<_, IngestError>>()?;
        let Some(schema) = batches.first().map(RecordBatch::schema) else {
            continue;
        };
        let batch = concat_batches(&schema, &batches)?;
        drop(batches);
        let sorted = take_record_batch(&batch, &person_order(&batch, person, period)?)?;
        drop(batch);
        // A fiscal year's rows hold each of its persons once, as one run.
        totals
            .get_or_insert_with(|| Totals::new(&schema, person, &crate::SHADOW_INDEXES))
            .add_sorted(&sorted)?;
        if let Some(s) = stratifier.as_mut() {
            s.add(&sorted)?;
        }
        let first = clustered.len();
        let written: Vec<Option<PartInfo>> = (0..sorted.num_rows())
            .step_by(PART_ROWS)
            .collect::<Vec<_>>()
            .into_par_iter()
            .map(|at| {
                let rows = PART_ROWS.min(sorted.num_rows() - at);
                write_part(
                    &out_dir,
                    first + at / PART_ROWS,
                    &sorted.slice(at, rows),
                    props.clone(),
                )
            })
            .collect::<Result<_, IngestError>>()?;
        clustered.extend(written.into_iter().flatten());
    }
    let before: u64 = parts.iter().map(|p| p.rows).sum();
    let after: u64 = clustered.iter().map(|p| p.rows).sum();
    if before != after {
        return Err(IngestError::Internal(format!(
            "clustering by person turned {before} rows into {after}"
        )));
    }
    for p in parts {
        let path = dir.join(&p.file);
        fs::remove_file(&path).map_err(io(&path))?;
    }
    for p in &clustered {
        let path = dir.join(&p.file);
        fs::rename(out_dir.join(&p.file), &path).map_err(io(&path))?;
    }
    fs::remove_dir(&out_dir).map_err(io(&out_dir))?;
    Ok(Clustered {
        parts: clustered,
        ceilings: totals.map(Totals::finish).unwrap_or_default(),
        strata: stratifier.map(Stratifier::finish).transpose()?,
    })
}

/// A part, whole or only its `columns`.
fn read(path: &Path, columns: Option<&[&str]>) -> Result<RecordBatch, IngestError> {
    let file = File::open(path).map_err(io(path))?;
    let mut builder = ParquetRecordBatchReaderBuilder::try_new(file)?;
    let mut schema = builder.schema().clone();
    if let Some(columns) = columns {
        let mut at = columns
            .iter()
            .map(|c| {
                builder
                    .schema()
                    .index_of(c)
                    .map_err(|_| IngestError::Internal(format!("a part has no column {c}")))
            })
            .collect::<Result<Vec<usize>, _>>()?;
        at.sort_unstable();
        at.dedup();
        let mask = ProjectionMask::roots(builder.parquet_schema(), at.iter().copied());
        builder = builder.with_projection(mask);
        schema = std::sync::Arc::new(schema.project(&at)?);
    }
    let batches = builder
        .with_batch_size(PART_ROWS)
        .build()?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(concat_batches(&schema, &batches)?)
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

/// The order of rows by person (nulls last), then period, then position.
fn person_order(
    batch: &RecordBatch,
    person: &str,
    period: Option<&str>,
) -> Result<UInt32Array, IngestError> {
    let persons = batch
        .column_by_name(person)
        .filter(|c| c.data_type() == &DataType::UInt32)
        .ok_or_else(|| IngestError::Internal(format!("{person} is not a person index")))?
        .as_primitive::<UInt32Type>();
    let key = |v: Option<i32>| v.map_or(i64::MAX, i64::from);
    let periods: Vec<i64> = match period.and_then(|p| batch.column_by_name(p)) {
        Some(p) if p.data_type() == &DataType::Int32 => {
            p.as_primitive::<Int32Type>().iter().map(key).collect()
        }
        Some(p) if p.data_type() == &DataType::Date32 => {
            p.as_primitive::<Date32Type>().iter().map(key).collect()
        }
        _ => vec![i64::MAX; batch.num_rows()],
    };
    let mut keys: Vec<(u64, i64, u32)> = (0..batch.num_rows())
        .map(|row| {
            let who = if persons.is_valid(row) {
                u64::from(persons.value(row))
            } else {
                u64::MAX
            };
            (who, periods[row], row as u32)
        })
        .collect();
    keys.sort_unstable();
    Ok(keys.into_iter().map(|(_, _, row)| row).collect())
}
