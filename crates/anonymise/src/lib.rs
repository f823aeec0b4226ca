//! Anonymised record-level extracts (匿名加工): the seed's example made general. Direct
//! identifiers never reach it (the store holds none; the person column is dropped). Rare values
//! are pooled as その他, kept numbers top- and bottom-coded, and the quasi-identifiers
//! generalised along their hierarchies to the level that reaches k-anonymity losing least
//! ([`lattice`]); records still in groups smaller than k lose values ([`suppress`]) or, failing
//! that, are left out. The file is checked again from its own labels ([`verify`]) before it is
//! handed back, and the report says what was lost.

mod encode;
mod label;
mod lattice;
mod loss;
mod output;
mod policy;
mod suppress;
mod verify;

use arrow::array::{Array, RecordBatch};
use arrow::datatypes::Schema;
use niji_catalog::anonymisation::Anonymisation;
use serde::{Deserialize, Serialize};

pub use policy::AnonymisationPolicy;
pub use verify::check_k;

#[derive(Debug, thiserror::Error)]
pub enum AnonymiseError {
    /// The query's rows do not fit the definition (names columns and types, never values).
    #[error("the extract's input does not fit its definition: {0}")]
    Input(String),
    #[error("the anonymisation policy is invalid: {0}")]
    Policy(String),
    #[error("the extract cannot be anonymised: {0}")]
    Unreachable(String),
    #[error("the extract's rows could not be arranged: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    /// A column's values could not be read as its kind (the cause may quote a value: it
    /// reaches custodians only, through the audit log's record of the failed build).
    #[error("column {column} cannot be read")]
    Column {
        column: String,
        #[source]
        source: arrow::error::ArrowError,
    },
    /// The independent check failed: nothing is written.
    #[error("the anonymised extract failed its check: {0}")]
    Check(String),
}

/// What an extract cost, for the custodian and every requester.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The k asked for and the smallest group in the file.
    pub k: u64,
    pub k_reached: u64,
    pub records_in: u64,
    pub records_out: u64,
    /// Records left out whole.
    pub records_suppressed: u64,
    /// Quasi-identifier values blanked (`*`) in records kept.
    pub cells_suppressed: u64,
    pub groups: u64,
    /// The level chosen per quasi-identifier, with how many labels it has.
    pub levels: Vec<ChosenLevel>,
    /// Records whose value was pooled as その他, per column that pools.
    pub pooled: Vec<ColumnCount>,
    /// Records top- or bottom-coded, per column that codes.
    pub coded: Vec<ColumnCount>,
    pub loss: Loss,
    /// Generalisations in the lattice, and how many were tried.
    pub lattice_nodes: u64,
    pub lattice_evaluated: u64,
}

/// What a requester is told of an extract before and besides its file: how it was
/// anonymised and what that cost, without the counts of records left out, pooled or coded
/// (small numbers, and across versions they tell who came and went).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub k: u64,
    pub k_reached: u64,
    pub levels: Vec<ChosenLevel>,
    pub generalisation_loss: f64,
    pub average_group_size: f64,
}

impl Report {
    pub fn summary(&self) -> Summary {
        Summary {
            k: self.k,
            k_reached: self.k_reached,
            levels: self.levels.clone(),
            generalisation_loss: self.loss.generalisation,
            average_group_size: self.loss.average_group_size,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChosenLevel {
    pub column: String,
    pub level: String,
    pub labels: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnCount {
    pub column: String,
    pub records: u64,
}

/// The information lost, by the measures the literature compares anonymisers with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Loss {
    /// Mean normalised certainty penalty over every quasi-identifier cell of the input (0: as
    /// it was, 1: all suppressed); a record left out counts 1 in each.
    pub generalisation: f64,
    /// Discernibility: the sum of squared group sizes, plus records left out × records in.
    pub discernibility: u64,
    /// Mean group size over k (1 is ideal).
    pub average_group_size: f64,
}

/// An extract ready to write, with its report.
#[derive(Debug)]
pub struct Extract {
    pub batch: RecordBatch,
    pub report: Report,
}

/// A hierarchy as a table: each finest label with what it reads at every level.
#[derive(Debug, Clone)]
pub struct Hierarchy {
    pub column: String,
    pub levels: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

/// The extract before any generalisation (quasi-identifiers at their finest level, rare values
/// pooled, kept numbers coded) and the hierarchies: what another anonymiser is given to do the
/// same work. No person column.
#[derive(Debug)]
pub struct Prepared {
    pub batch: RecordBatch,
    pub hierarchies: Vec<Hierarchy>,
}

fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

/// Every row one person: an extract is about persons, so its groups must count persons.
fn check_one_per_person(input: &RecordBatch, person: &str) -> Result<(), AnonymiseError> {
    let column = input.column_by_name(person).ok_or_else(|| {
        AnonymiseError::Input(format!("the query gives no person column {person}"))
    })?;
    // As text: a pseudonym may be any type (an unsigned 64-bit hash, a string).
    let values =
        arrow::compute::cast(column, &arrow::datatypes::DataType::Utf8).map_err(|source| {
            AnonymiseError::Column {
                column: person.to_string(),
                source,
            }
        })?;
    let values = arrow::array::AsArray::as_string::<i32>(&values);
    let mut seen = ahash::AHashSet::with_capacity(values.len());
    let distinct = values.iter().flatten().filter(|v| seen.insert(*v)).count();
    let nobody = values.null_count();
    if distinct != values.len() {
        return Err(AnonymiseError::Input(format!(
            "the query gives {} rows for {distinct} persons ({nobody} rows without one); an extract is one record per person",
            values.len()
        )));
    }
    Ok(())
}

fn encode_all(
    input: &RecordBatch,
    spec: &Anonymisation,
) -> Result<Vec<encode::Quasi>, AnonymiseError> {
    check_one_per_person(input, &spec.person)?;
    spec.quasi_identifiers()
        .map(|c| encode::encode(input, c))
        .collect()
}

/// Anonymises `input` (the definition's query result) as `spec` says, to the k of `policy` or
/// the definition's if stricter.
pub fn anonymise(
    input: &RecordBatch,
    spec: &Anonymisation,
    policy: &AnonymisationPolicy,
) -> Result<Extract, AnonymiseError> {
    let quasi = encode_all(input, spec)?;
    let n = input.num_rows();
    let k = policy.k_for(spec.k);
    let choice = lattice::search(&quasi, k, policy.max_suppressed(n))?;
    let suppressed = suppress::suppress(
        &quasi,
        &choice.node,
        lattice::Groups::of(&quasi, &choice.node)?,
        k,
    );
    let mut columns = output::columns(input, spec, &quasi, &choice.node, &suppressed)?;
    let coded = std::mem::take(&mut columns.coded);
    let batch = output::file_batch(spec, columns, &suppressed.kept)?;
    let names: Vec<&str> = quasi.iter().map(|q| q.name.as_str()).collect();
    let sizes = check_k(&batch, &names, k)?;

    let records_out = batch.num_rows() as u64;
    let groups = sizes.len() as u64;
    let loss = Loss {
        generalisation: round6(loss::mean_penalty(&quasi, &choice.node, &suppressed)),
        discernibility: sizes.iter().map(|s| s * s).sum::<u64>()
            + suppressed.records_suppressed * n as u64,
        average_group_size: if groups == 0 {
            0.0
        } else {
            round6(records_out as f64 / groups as f64 / k as f64)
        },
    };
    let report = Report {
        k,
        k_reached: sizes.first().copied().unwrap_or(0),
        records_in: n as u64,
        records_out,
        records_suppressed: suppressed.records_suppressed,
        cells_suppressed: suppressed.cells_suppressed,
        groups,
        levels: quasi
            .iter()
            .zip(&choice.node)
            .map(|(qz, &l)| ChosenLevel {
                column: qz.name.clone(),
                level: qz.levels[l].to_string(),
                labels: qz.labels[l].len() as u64,
            })
            .collect(),
        pooled: spec
            .columns
            .iter()
            .filter(|c| c.pool_below.is_some())
            .filter_map(|c| quasi.iter().find(|qz| qz.name == c.name))
            .map(|qz| ColumnCount {
                column: qz.name.clone(),
                records: qz.pooled,
            })
            .collect(),
        coded: coded
            .into_iter()
            .map(|(column, records)| ColumnCount { column, records })
            .collect(),
        loss,
        lattice_nodes: choice.nodes as u64,
        lattice_evaluated: choice.evaluated as u64,
    };
    Ok(Extract { batch, report })
}

/// The extract prepared for another anonymiser (see [`Prepared`]).
pub fn prepare(input: &RecordBatch, spec: &Anonymisation) -> Result<Prepared, AnonymiseError> {
    let quasi = encode_all(input, spec)?;
    let finest = vec![0; quasi.len()];
    let none = suppress::Suppressed {
        cells: quasi.iter().map(|q| q.codes[0].clone()).collect(),
        star: vec![u32::MAX; quasi.len()],
        kept: vec![true; input.num_rows()],
        cells_suppressed: 0,
        records_suppressed: 0,
    };
    let columns = output::columns(input, spec, &quasi, &finest, &none)?;
    let batch = RecordBatch::try_new(
        std::sync::Arc::new(Schema::new(columns.fields)),
        columns.arrays,
    )?;
    let hierarchies = quasi
        .iter()
        .map(|q| Hierarchy {
            column: q.name.clone(),
            levels: q.levels.iter().map(ToString::to_string).collect(),
            rows: q.hierarchy(),
        })
        .collect();
    Ok(Prepared { batch, hierarchies })
}

#[cfg(test)]
mod tests;
