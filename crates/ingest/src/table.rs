//! One extract → one stored table: decode, validate, normalise, hash, build Arrow columns,
//! write a Parquet part per chunk. Rows that fail are returned for quarantine with a reason
//! that names the column but never shows the value.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, Date32Builder, Float64Builder, Int32Builder, Int64Builder,
    NullBufferBuilder, StringArray, StringBuilder, UInt32Builder,
};
use arrow::buffer::{Buffer, OffsetBuffer, ScalarBuffer};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use niji_catalog::{Column, ColumnType, Encoding, Role, Table};
use niji_pseudo::{CivilDate, IdHasher, date, normalize};

use crate::IngestError;
use crate::linkage::{HistoryEntry, Id5Resolver, individual_key, individual_key_into};
use niji_store::Registry;

/// Why a row was quarantined. The column is named; the value never is.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Reject {
    Undecodable,
    ColumnCount { found: usize, expected: usize },
    InvalidDate(String),
    InvalidNumber(String),
    InvalidValue(String),
    MissingValue(String),
    InvalidInsuredNumber(&'static str),
}

impl Reject {
    /// The reason's category, as counted in reports.
    pub fn kind(&self) -> &'static str {
        match self {
            Reject::Undecodable => "undecodable",
            Reject::ColumnCount { .. } => "column_count",
            Reject::InvalidDate(_) => "invalid_date",
            Reject::InvalidNumber(_) => "invalid_number",
            Reject::InvalidValue(_) => "invalid_value",
            Reject::MissingValue(_) => "missing_value",
            Reject::InvalidInsuredNumber(_) => "invalid_insured_number",
        }
    }

    pub fn detail(&self) -> String {
        match self {
            Reject::Undecodable => "bytes that are not valid in the extract's encoding".into(),
            Reject::ColumnCount { found, expected } => {
                format!("{found} fields, expected {expected}")
            }
            Reject::InvalidDate(c)
            | Reject::InvalidNumber(c)
            | Reject::InvalidValue(c)
            | Reject::MissingValue(c) => format!("column {c}"),
            Reject::InvalidInsuredNumber(why) => (*why).to_string(),
        }
    }
}

/// Counts kept per table for the report.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Counts {
    pub rows_read: u64,
    pub rows_stored: u64,
    pub quarantined: BTreeMap<&'static str, u64>,
    pub with_id1: u64,
    pub with_id2: u64,
    pub with_id5: u64,
    pub with_research_id: u64,
    pub without_insured_number: u64,
    pub without_branch: u64,
    pub not_in_history: u64,
}

impl Counts {
    pub fn add(&mut self, other: &Counts) {
        self.rows_read += other.rows_read;
        self.rows_stored += other.rows_stored;
        for (k, v) in &other.quarantined {
            *self.quarantined.entry(k).or_default() += v;
        }
        self.with_id1 += other.with_id1;
        self.with_id2 += other.with_id2;
        self.with_id5 += other.with_id5;
        self.with_research_id += other.with_research_id;
        self.without_insured_number += other.without_insured_number;
        self.without_branch += other.without_branch;
        self.not_in_history += other.not_in_history;
    }

    pub fn quarantined_total(&self) -> u64 {
        self.quarantined.values().sum()
    }
}

/// Keyed hashers for the four identifiers.
#[derive(Debug, Clone)]
pub struct Hashers {
    pub id1: IdHasher,
    pub id2: IdHasher,
    pub id5: IdHasher,
    pub research: IdHasher,
    /// Keyed hash of an individual insured number, for the registry's memory of numbers.
    pub number: IdHasher,
}

/// Where the identity inputs sit in the extract's fields.
#[derive(Debug, Default, Clone, Copy)]
struct RoleFields {
    insurer: Option<usize>,
    symbol: Option<usize>,
    number: Option<usize>,
    branch: Option<usize>,
    kana: Option<usize>,
    birth: Option<usize>,
    sex: Option<usize>,
    consent: Option<usize>,
    history_person: Option<usize>,
    valid_from: Option<usize>,
}

/// A stored column and where its value comes from.
#[derive(Debug, Clone)]
enum Source {
    Field { index: usize },
    Id1,
    Id2,
    Id5,
    ResearchId,
    PersonIdx,
}

/// Everything needed to turn rows of one extract into stored batches; shared by all chunks.
#[derive(Debug)]
pub struct TablePlan<'a> {
    encoding: Encoding,
    expected_fields: usize,
    columns: Vec<(&'a Column, Source)>,
    /// All extract columns by field index, for validation of the ones not stored.
    by_field: Vec<&'a Column>,
    roles: RoleFields,
    pub schema: SchemaRef,
    /// Columns whose values are (nearly) all distinct: no dictionary, no statistics.
    pub high_cardinality: Vec<String>,
    /// Keyed person identifiers: random hex, repeated for each of a person's records.
    pub person_identifiers: Vec<String>,
}

fn arrow_type(ty: ColumnType) -> DataType {
    match ty {
        ColumnType::String | ColumnType::Hex64 => DataType::Utf8,
        ColumnType::Int32 | ColumnType::YearMonth => DataType::Int32,
        ColumnType::Int64 => DataType::Int64,
        ColumnType::Float64 => DataType::Float64,
        ColumnType::Bool => DataType::Boolean,
        ColumnType::Date => DataType::Date32,
        ColumnType::PersonIndex => DataType::UInt32,
    }
}

impl<'a> TablePlan<'a> {
    /// Matches the extract's header against the catalog. Any column the catalog does not
    /// describe, or a described column that is missing, refuses the whole table.
    pub fn new(table: &'a Table, header: &[String]) -> Result<Self, IngestError> {
        let described: Vec<&Column> = table.source_columns().collect();
        let unknown: Vec<&str> = header
            .iter()
            .filter(|h| table.column(h).is_none_or(|c| c.derived))
            .map(String::as_str)
            .collect();
        let missing: Vec<&str> = described
            .iter()
            .filter(|c| !header.contains(&c.name))
            .map(|c| c.name.as_str())
            .collect();
        if !unknown.is_empty() || !missing.is_empty() {
            return Err(IngestError::HeaderMismatch {
                table: table.name.clone(),
                unknown: unknown.join(", "),
                missing: missing.join(", "),
            });
        }
        let field_of = |name: &str| {
            header
                .iter()
                .position(|h| h == name)
                .unwrap_or_else(|| unreachable!("checked above"))
        };
        let by_field: Vec<&Column> = header.iter().filter_map(|h| table.column(h)).collect();
        let role_field = |role: Role| table.column_with_role(role).map(|c| field_of(&c.name));
        let roles = RoleFields {
            insurer: role_field(Role::InsurerNo),
            symbol: role_field(Role::InsuredSymbol),
            number: role_field(Role::InsuredNumber),
            branch: role_field(Role::InsuredBranch),
            kana: role_field(Role::KanaName),
            birth: role_field(Role::BirthDate),
            sex: role_field(Role::Sex),
            consent: role_field(Role::ConsentNo),
            history_person: role_field(Role::HistoryPerson),
            valid_from: role_field(Role::ValidFrom),
        };
        let mut columns = Vec::new();
        for c in table.columns.iter().filter(|c| c.is_stored()) {
            let source = match (c.derived, c.name.as_str()) {
                (false, name) => Source::Field {
                    index: field_of(name),
                },
                (true, "id1") => Source::Id1,
                (true, "id2") => Source::Id2,
                (true, "id5") => Source::Id5,
                (true, "research_id") => Source::ResearchId,
                (true, "person_idx") => Source::PersonIdx,
                (true, other) => {
                    return Err(IngestError::Internal(format!(
                        "no rule derives column {other}"
                    )));
                }
            };
            columns.push((c, source));
        }
        let fields: Vec<Field> = columns
            .iter()
            .map(|(c, s)| {
                Field::new(
                    &c.name,
                    arrow_type(c.ty),
                    c.nullable || !matches!(s, Source::Field { .. }),
                )
            })
            .collect();
        let high_cardinality = columns
            .iter()
            .filter(|(c, _)| c.role == Some(Role::RecordKey))
            .map(|(c, _)| c.name.clone())
            .collect();
        let person_identifiers = columns
            .iter()
            .filter(|(c, _)| c.ty == ColumnType::Hex64)
            .map(|(c, _)| c.name.clone())
            .collect();
        Ok(Self {
            person_identifiers,
            encoding: table.encoding,
            expected_fields: header.len(),
            columns,
            by_field,
            roles,
            schema: Arc::new(Schema::new(fields)),
            high_cardinality,
        })
    }
}

/// A decoded field value ready for a builder.
#[derive(Debug)]
enum Value<'r> {
    Null,
    Str(&'r str),
    I32(i32),
    I64(i64),
    F64(f64),
    Bool(bool),
    Date(i32),
}

fn parse_value<'r>(col: &Column, raw: &'r str) -> Result<Value<'r>, Reject> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return if col.nullable {
            Ok(Value::Null)
        } else {
            Err(Reject::MissingValue(col.name.clone()))
        };
    }
    let num = || Reject::InvalidNumber(col.name.clone());
    Ok(match col.ty {
        ColumnType::String | ColumnType::Hex64 => Value::Str(trimmed),
        ColumnType::Int32 => Value::I32(parse_int(trimmed).ok_or_else(num)?),
        ColumnType::Int64 => Value::I64(trimmed.parse().map_err(|_| num())?),
        ColumnType::Float64 => Value::F64(
            trimmed
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(num)?,
        ),
        ColumnType::Bool => match trimmed {
            "1" | "true" | "TRUE" => Value::Bool(true),
            "0" | "false" | "FALSE" => Value::Bool(false),
            _ => return Err(Reject::InvalidValue(col.name.clone())),
        },
        ColumnType::Date => Value::Date(
            date::parse_date(trimmed)
                .map_err(|_| Reject::InvalidDate(col.name.clone()))?
                .days_since_epoch(),
        ),
        ColumnType::YearMonth => {
            let d = date::parse_year_month(trimmed)
                .map_err(|_| Reject::InvalidDate(col.name.clone()))?;
            Value::I32(d.year * 100 + d.month as i32)
        }
        ColumnType::PersonIndex => return Err(Reject::InvalidValue(col.name.clone())),
    })
}

/// Integers, also "120.0" as some exports write them (an integral float).
fn parse_int(s: &str) -> Option<i32> {
    s.parse().ok().or_else(|| {
        s.parse::<f64>()
            .ok()
            .filter(|v| v.fract() == 0.0 && v.abs() < 2e9)
            .map(|v| v as i32)
    })
}

/// Normalised identity of one row (borrowing the row's text where normalising changed nothing).
#[derive(Debug, Default)]
struct Identity<'r> {
    insurer: Option<Cow<'r, str>>,
    symbol: Cow<'r, str>,
    number: Option<Cow<'r, str>>,
    branch: Option<Cow<'r, str>>,
    kana: Option<String>,
    birth: Option<CivilDate>,
    sex: Option<u8>,
    consent: Option<String>,
}

fn identity<'r>(plan: &TablePlan<'_>, fields: &'r [Cow<'r, str>]) -> Result<Identity<'r>, Reject> {
    let r = plan.roles;
    let get = |i: Option<usize>| i.map(|i| fields[i].as_ref()).unwrap_or("");
    let mut id = Identity::default();
    let insurer =
        normalize::insurer_number(get(r.insurer)).map_err(Reject::InvalidInsuredNumber)?;
    let number = normalize::digits(get(r.number))
        .map_err(|_| Reject::InvalidInsuredNumber("card number is not digits"))?;
    let branch = normalize::digits(get(r.branch))
        .map_err(|_| Reject::InvalidInsuredNumber("branch number is not digits"))?;
    match (&insurer, &number) {
        (Some(_), Some(_)) | (None, None) => {}
        _ => {
            return Err(Reject::InvalidInsuredNumber(
                "insurer number and card number must be given together",
            ));
        }
    }
    if branch.as_ref().is_some_and(|b| b.len() != 2) {
        return Err(Reject::InvalidInsuredNumber(
            "branch number must have 2 digits",
        ));
    }
    if insurer.is_some() {
        id.symbol = normalize::symbol(get(r.symbol));
        id.branch = branch;
    }
    id.insurer = insurer;
    id.number = number;
    id.kana = r.kana.and_then(|i| normalize::kana_name(&fields[i]));
    if let Some(i) = r.birth {
        let name = || plan.by_field[i].name.clone();
        id.birth = Some(date::parse_date(&fields[i]).map_err(|e| match e {
            date::DateError::Empty => Reject::MissingValue(name()),
            _ => Reject::InvalidDate(name()),
        })?);
    }
    if let Some(i) = r.sex {
        id.sex = Some(
            normalize::sex(&fields[i])
                .map_err(|_| Reject::InvalidValue(plan.by_field[i].name.clone()))?,
        );
    }
    id.consent = r
        .consent
        .map(|i| normalize::nfkc(fields[i].trim()).into_owned())
        .filter(|c| !c.is_empty());
    Ok(id)
}

fn decode<'r>(bytes: &'r [u8], encoding: Encoding) -> Option<Cow<'r, str>> {
    match encoding {
        Encoding::Utf8 => std::str::from_utf8(bytes).ok().map(Cow::Borrowed),
        Encoding::Cp932 => {
            encoding_rs::SHIFT_JIS.decode_without_bom_handling_and_without_replacement(bytes)
        }
    }
}

/// Splits a decoded header line.
pub fn parse_header(line: &[u8], encoding: Encoding) -> Result<Vec<String>, IngestError> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let line = line.strip_prefix(b"\xef\xbb\xbf").unwrap_or(line);
    let text = decode(line, encoding).ok_or_else(|| {
        IngestError::BadHeader("the header is not valid in the declared encoding".into())
    })?;
    Ok(text
        .split(',')
        .map(|h| h.trim().trim_matches('"').to_string())
        .collect())
}

/// Builds a column of 64-hex-digit identifiers straight into Arrow buffers (one UTF-8 check
/// for the whole column at the end instead of one per value).
struct HexBuilder {
    values: Vec<u8>,
    offsets: Vec<i32>,
    nulls: NullBufferBuilder,
}

impl HexBuilder {
    fn new(rows: usize) -> Self {
        let mut offsets = Vec::with_capacity(rows + 1);
        offsets.push(0);
        Self {
            values: Vec::with_capacity(rows * 64),
            offsets,
            nulls: NullBufferBuilder::new(rows),
        }
    }

    fn append(&mut self, id: Option<&[u8; 32]>) {
        if let Some(id) = id {
            let mut buf = [0u8; 64];
            niji_pseudo::ident::write_hex32(id, &mut buf);
            self.values.extend_from_slice(&buf);
        }
        self.nulls.append(id.is_some());
        self.offsets.push(self.values.len() as i32);
    }

    fn finish(mut self) -> Result<ArrayRef, arrow::error::ArrowError> {
        let offsets = OffsetBuffer::new(ScalarBuffer::from(self.offsets));
        Ok(Arc::new(StringArray::try_new(
            offsets,
            Buffer::from_vec(self.values),
            self.nulls.finish(),
        )?))
    }
}

enum ColBuilder {
    Hex(HexBuilder),
    Str(StringBuilder),
    I32(Int32Builder),
    I64(Int64Builder),
    F64(Float64Builder),
    Bool(BooleanBuilder),
    Date(Date32Builder),
    U32(UInt32Builder),
}

impl ColBuilder {
    fn new(col: &Column, dt: &DataType, rows: usize) -> Self {
        if col.ty == ColumnType::Hex64 {
            return ColBuilder::Hex(HexBuilder::new(rows));
        }
        match dt {
            DataType::Int32 => ColBuilder::I32(Int32Builder::with_capacity(rows)),
            DataType::Int64 => ColBuilder::I64(Int64Builder::with_capacity(rows)),
            DataType::Float64 => ColBuilder::F64(Float64Builder::with_capacity(rows)),
            DataType::Boolean => ColBuilder::Bool(BooleanBuilder::with_capacity(rows)),
            DataType::Date32 => ColBuilder::Date(Date32Builder::with_capacity(rows)),
            DataType::UInt32 => ColBuilder::U32(UInt32Builder::with_capacity(rows)),
            _ => ColBuilder::Str(StringBuilder::with_capacity(rows, rows * 16)),
        }
    }

    fn append(&mut self, v: &Value<'_>) {
        match (self, v) {
            (ColBuilder::Str(b), Value::Str(s)) => b.append_value(s),
            (ColBuilder::I32(b), Value::I32(x)) => b.append_value(*x),
            (ColBuilder::I64(b), Value::I64(x)) => b.append_value(*x),
            (ColBuilder::F64(b), Value::F64(x)) => b.append_value(*x),
            (ColBuilder::Bool(b), Value::Bool(x)) => b.append_value(*x),
            (ColBuilder::Date(b), Value::Date(x)) => b.append_value(*x),
            (b, _) => b.append_null(),
        }
    }

    fn append_null(&mut self) {
        match self {
            ColBuilder::Hex(b) => b.append(None),
            ColBuilder::Str(b) => b.append_null(),
            ColBuilder::I32(b) => b.append_null(),
            ColBuilder::I64(b) => b.append_null(),
            ColBuilder::F64(b) => b.append_null(),
            ColBuilder::Bool(b) => b.append_null(),
            ColBuilder::Date(b) => b.append_null(),
            ColBuilder::U32(b) => b.append_null(),
        }
    }

    fn append_hex(&mut self, id: Option<&[u8; 32]>) {
        match self {
            ColBuilder::Hex(b) => b.append(id),
            other => other.append_null(),
        }
    }

    fn append_idx(&mut self, idx: Option<u32>) {
        match (self, idx) {
            (ColBuilder::U32(b), Some(i)) => b.append_value(i),
            (b, _) => b.append_null(),
        }
    }

    fn finish(self) -> Result<ArrayRef, arrow::error::ArrowError> {
        Ok(match self {
            ColBuilder::Hex(b) => b.finish()?,
            ColBuilder::Str(mut b) => Arc::new(b.finish()),
            ColBuilder::I32(mut b) => Arc::new(b.finish()),
            ColBuilder::I64(mut b) => Arc::new(b.finish()),
            ColBuilder::F64(mut b) => Arc::new(b.finish()),
            ColBuilder::Bool(mut b) => Arc::new(b.finish()),
            ColBuilder::Date(mut b) => Arc::new(b.finish()),
            ColBuilder::U32(mut b) => Arc::new(b.finish()),
        })
    }
}

/// A rejected row: its line number in the extract, why, and its original bytes.
#[derive(Debug)]
pub struct Rejected {
    pub line: u64,
    pub reason: Reject,
    pub raw: Vec<u8>,
}

/// The result of one chunk.
#[derive(Debug)]
pub struct ChunkResult {
    pub batch: RecordBatch,
    pub rejected: Vec<Rejected>,
    pub counts: Counts,
}

/// Identity resolution that rows are checked against.
#[derive(Debug, Clone, Copy)]
pub struct Linkage<'a> {
    pub hashers: &'a Hashers,
    pub resolver: &'a Id5Resolver,
    pub registry: &'a Registry,
}

/// Iterates the CSV records of `chunk`, yielding each record's fields (split, not decoded),
/// its line number and raw bytes.
fn for_each_record(
    chunk: &[u8],
    first_line: u64,
    mut f: impl FnMut(u64, &csv::ByteRecord, &[u8]),
) -> Result<(), IngestError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(chunk);
    let mut record = csv::ByteRecord::new();
    loop {
        let start = reader.position().clone();
        let more = reader
            .read_byte_record(&mut record)
            .map_err(|e| IngestError::Internal(format!("csv: {e}")))?;
        if !more {
            break;
        }
        let end = reader.position().byte() as usize;
        let raw = &chunk[start.byte() as usize..end.min(chunk.len())];
        // The reader counts lines from 1 within the chunk (quoted newlines included).
        f(first_line + start.line() - 1, &record, raw);
    }
    Ok(())
}

/// Decodes and validates one record into its fields (shared by tables and the history pass).
fn decode_record<'r>(
    plan: &TablePlan<'_>,
    record: &'r csv::ByteRecord,
) -> Result<Vec<Cow<'r, str>>, Reject> {
    let mut fields = Vec::with_capacity(record.len());
    match plan.encoding {
        // One validation for the whole record; delimiters are ASCII, so every field range
        // falls on character boundaries.
        Encoding::Utf8 => {
            let all = std::str::from_utf8(record.as_slice()).map_err(|_| Reject::Undecodable)?;
            for i in 0..record.len() {
                let range = record.range(i).ok_or(Reject::Undecodable)?;
                fields.push(Cow::Borrowed(&all[range]));
            }
        }
        Encoding::Cp932 => {
            for f in record.iter() {
                fields.push(decode(f, plan.encoding).ok_or(Reject::Undecodable)?);
            }
        }
    }
    if fields.len() != plan.expected_fields {
        return Err(Reject::ColumnCount {
            found: fields.len(),
            expected: plan.expected_fields,
        });
    }
    Ok(fields)
}

/// Validates and normalises one decoded row: its identity and its stored values.
fn parse_row<'r>(
    plan: &TablePlan<'_>,
    fields: &'r [Cow<'r, str>],
) -> Result<(Identity<'r>, Vec<Value<'r>>), Reject> {
    let id = identity(plan, fields)?;
    // Dropped columns are checked for presence too: a row missing its name is malformed.
    for (field, col) in fields.iter().zip(&plan.by_field) {
        if !col.is_stored() && !col.nullable && field.trim().is_empty() {
            return Err(Reject::MissingValue(col.name.clone()));
        }
    }
    let mut row = Vec::with_capacity(plan.columns.len());
    for (c, source) in &plan.columns {
        row.push(match source {
            Source::Field { index } => parse_value(c, &fields[*index])?,
            _ => Value::Null,
        });
    }
    Ok((id, row))
}

/// Processes one chunk of complete lines into a batch.
pub fn process_chunk(
    plan: &TablePlan<'_>,
    link: Linkage<'_>,
    chunk: &[u8],
    first_line: u64,
) -> Result<ChunkResult, IngestError> {
    let estimate = chunk.len() / 120 + 16;
    let mut builders: Vec<ColBuilder> = plan
        .columns
        .iter()
        .zip(plan.schema.fields())
        .map(|((c, _), f)| ColBuilder::new(c, f.data_type(), estimate))
        .collect();
    let mut rejected = Vec::new();
    let mut counts = Counts::default();
    let mut key_buf = Vec::with_capacity(64);
    let mut store_row = |record: &csv::ByteRecord| -> Result<(), Reject> {
        let fields = decode_record(plan, record)?;
        let (id, row) = parse_row(plan, &fields)?;
        counts.rows_stored += 1;
        let ids = compute_ids(&id, link, &mut key_buf, &mut counts);
        for ((builder, (_, source)), value) in builders.iter_mut().zip(&plan.columns).zip(&row) {
            match source {
                Source::Field { .. } => builder.append(value),
                Source::Id1 => builder.append_hex(ids.id1.as_ref()),
                Source::Id2 => builder.append_hex(ids.id2.as_ref()),
                Source::Id5 => builder.append_hex(ids.person.map(|p| link.registry.id5(p))),
                Source::ResearchId => builder.append_hex(ids.research.as_ref()),
                Source::PersonIdx => builder.append_idx(ids.person),
            }
        }
        Ok(())
    };
    let mut rejects: Vec<(u64, Reject, Vec<u8>)> = Vec::new();
    for_each_record(chunk, first_line, |line, record, raw| {
        let Err(reason) = store_row(record) else {
            return;
        };
        let body = raw.strip_suffix(b"\n").unwrap_or(raw);
        if !body.contains(&b'\n') {
            rejects.push((line, reason, raw.to_vec()));
            return;
        }
        // A bad record spanning several lines is most likely an unbalanced quote that swallowed
        // the lines after it: judge each line on its own, quotes taken literally.
        for (k, sub) in raw.split_inclusive(|b| *b == b'\n').enumerate() {
            let mut one = csv::ReaderBuilder::new()
                .has_headers(false)
                .flexible(true)
                .quoting(false)
                .from_reader(sub);
            let mut rec = csv::ByteRecord::new();
            let result = match one.read_byte_record(&mut rec) {
                Ok(true) => store_row(&rec),
                _ => Err(Reject::ColumnCount {
                    found: 0,
                    expected: plan.expected_fields,
                }),
            };
            if let Err(reason) = result {
                rejects.push((line + k as u64, reason, sub.to_vec()));
            }
        }
    })?;
    for (line, reason, raw) in rejects {
        *counts.quarantined.entry(reason.kind()).or_default() += 1;
        rejected.push(Rejected { line, reason, raw });
    }
    counts.rows_read = counts.rows_stored + counts.quarantined_total();
    let arrays = builders
        .into_iter()
        .map(ColBuilder::finish)
        .collect::<Result<Vec<ArrayRef>, _>>()?;
    let batch = RecordBatch::try_new(plan.schema.clone(), arrays)?;
    Ok(ChunkResult {
        batch,
        rejected,
        counts,
    })
}

struct Ids {
    id1: Option<[u8; 32]>,
    id2: Option<[u8; 32]>,
    research: Option<[u8; 32]>,
    person: Option<u32>,
}

fn compute_ids(
    id: &Identity<'_>,
    link: Linkage<'_>,
    key_buf: &mut Vec<u8>,
    counts: &mut Counts,
) -> Ids {
    let h = link.hashers;
    let birth = id.birth.map(CivilDate::canonical_bytes);
    let sex = id.sex.map(|s| [b'0' + s]);
    let mut out = Ids {
        id1: None,
        id2: None,
        research: None,
        person: None,
    };
    match (&id.insurer, &id.number) {
        (Some(insurer), Some(number)) => {
            if let (Some(b), Some(s)) = (&birth, &sex) {
                out.id1 = Some(h.id1.hash(&[
                    insurer.as_bytes(),
                    id.symbol.as_bytes(),
                    number.as_bytes(),
                    b,
                    s,
                ]));
            }
            match &id.branch {
                Some(branch) => {
                    individual_key_into(key_buf, insurer, &id.symbol, number, branch);
                    // This delivery's history first; then the numbers earlier histories showed.
                    out.person = link.resolver.resolve(key_buf).or_else(|| {
                        link.registry
                            .person_of_number(&link.hashers.number.hash(&[key_buf]))
                    });
                    if out.person.is_none() {
                        counts.not_in_history += 1;
                    }
                }
                None => counts.without_branch += 1,
            }
        }
        _ => counts.without_insured_number += 1,
    }
    if let (Some(k), Some(b), Some(s)) = (&id.kana, &birth, &sex) {
        out.id2 = Some(h.id2.hash(&[k.as_bytes(), b, s]));
        if let (Some(c), Some(sex), Some(birth)) = (&id.consent, id.sex, id.birth) {
            out.research = Some(niji_pseudo::research_id(&h.research, k, sex, birth, c));
        }
    }
    counts.with_id1 += u64::from(out.id1.is_some());
    counts.with_id2 += u64::from(out.id2.is_some());
    counts.with_id5 += u64::from(out.person.is_some());
    counts.with_research_id += u64::from(out.research.is_some());
    out
}

/// First pass over the history table: the valid rows' person reference, normalised
/// individual number and start date. Invalid rows are skipped here and quarantined by the
/// table pass, which applies the same checks.
pub fn collect_history(
    plan: &TablePlan<'_>,
    chunk: &[u8],
    out: &mut Vec<HistoryEntry>,
) -> Result<(), IngestError> {
    let (Some(person), Some(from)) = (plan.roles.history_person, plan.roles.valid_from) else {
        return Err(IngestError::Internal(
            "history table lacks its person reference or start date".into(),
        ));
    };
    for_each_record(chunk, 0, |_, record, _| {
        let Ok(fields) = decode_record(plan, record) else {
            return;
        };
        let Ok(id) = identity(plan, &fields) else {
            return;
        };
        let (Some(insurer), Some(number), Some(branch)) = (&id.insurer, &id.number, &id.branch)
        else {
            return;
        };
        let Ok(valid_from) = date::parse_date(&fields[from]) else {
            return;
        };
        let person_ref = fields[person].trim();
        if person_ref.is_empty() {
            return;
        }
        out.push(HistoryEntry {
            person_ref: person_ref.to_string(),
            number_key: individual_key(insurer, &id.symbol, number, branch),
            valid_from,
        });
    })
}
