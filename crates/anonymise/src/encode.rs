//! Quasi-identifiers as small integer codes per level, so that trying a generalisation is
//! counting integer keys: each distinct value is labelled once per level, rows only look up.

use std::collections::BTreeMap;

use ahash::AHashMap;
use arrow::array::RecordBatch;
use niji_catalog::anonymisation::{ExtractColumn, Level, POOLED_LABEL, SUPPRESSED_LABEL};

use crate::AnonymiseError;
use crate::label::{Raw, label, raw_values};

/// One quasi-identifier, encoded.
#[derive(Debug)]
pub(crate) struct Quasi {
    pub(crate) name: String,
    pub(crate) levels: Vec<Level>,
    pub(crate) suppressible: bool,
    /// `[level][row]`: the row's code at that level.
    pub(crate) codes: Vec<Vec<u32>>,
    /// `[level][code]`: what the code reads.
    pub(crate) labels: Vec<Vec<String>>,
    /// `[level][code]`: how many finest labels the code covers (for the information lost).
    pub(crate) leaves: Vec<Vec<u32>>,
    /// Distinct finest labels.
    pub(crate) domain: u32,
    /// Records whose value was pooled as その他.
    pub(crate) pooled: u64,
}

impl Quasi {
    /// The normalised certainty penalty of `code` at `level`: 0 for a finest label, 1 for `*`,
    /// and in between by the share of the column's finest labels it covers.
    pub(crate) fn penalty(&self, level: usize, code: u32) -> f64 {
        if self.labels[level][code as usize] == SUPPRESSED_LABEL {
            return 1.0;
        }
        if self.domain <= 1 {
            return 0.0;
        }
        f64::from(self.leaves[level][code as usize] - 1) / f64::from(self.domain - 1)
    }

    /// The finest labels with what each reads at every level: the hierarchy as a table
    /// (what another anonymiser is given to do the same work).
    pub(crate) fn hierarchy(&self) -> Vec<Vec<String>> {
        let mut rows: BTreeMap<u32, Vec<String>> = BTreeMap::new();
        for row in 0..self.codes[0].len() {
            rows.entry(self.codes[0][row]).or_insert_with(|| {
                (0..self.levels.len())
                    .map(|l| self.labels[l][self.codes[l][row] as usize].clone())
                    .collect()
            });
        }
        rows.into_values().collect()
    }
}

/// Encodes `column` of `batch`.
pub(crate) fn encode(batch: &RecordBatch, column: &ExtractColumn) -> Result<Quasi, AnonymiseError> {
    let array = batch.column_by_name(&column.name).ok_or_else(|| {
        AnonymiseError::Input(format!("the query gives no column {}", column.name))
    })?;
    let raws = raw_values(&column.name, array)?;
    // Distinct values, and each row's.
    let mut ids: AHashMap<&Raw, u32> = AHashMap::new();
    let mut distinct: Vec<&Raw> = Vec::new();
    let mut counts: Vec<u64> = Vec::new();
    let row_raw: Vec<u32> = raws
        .iter()
        .map(|r| {
            let id = *ids.entry(r).or_insert_with(|| {
                distinct.push(r);
                counts.push(0);
                (distinct.len() - 1) as u32
            });
            counts[id as usize] += 1;
            id
        })
        .collect();
    // Labels per distinct value and level; values held by too few persons pooled first.
    let mut per_level: Vec<Vec<String>> = Vec::with_capacity(column.levels.len());
    for &level in &column.levels {
        per_level.push(
            distinct
                .iter()
                .map(|r| label(&column.name, r, level))
                .collect::<Result<_, _>>()?,
        );
    }
    let mut pooled = 0;
    if let Some(below) = column.pool_below {
        let mut held: AHashMap<&str, u64> = AHashMap::new();
        for (id, l) in per_level[0].iter().enumerate() {
            *held.entry(l.as_str()).or_default() += counts[id];
        }
        let rare: Vec<bool> = per_level[0]
            .iter()
            .map(|l| !l.is_empty() && held[l.as_str()] < below)
            .collect();
        for (id, is_rare) in rare.into_iter().enumerate() {
            if is_rare {
                pooled += counts[id];
                for labels in &mut per_level {
                    if labels[id] != SUPPRESSED_LABEL {
                        labels[id] = POOLED_LABEL.to_string();
                    }
                }
            }
        }
    }
    let mut codes = Vec::with_capacity(per_level.len());
    let mut labels = Vec::with_capacity(per_level.len());
    let mut value_codes: Vec<Vec<u32>> = Vec::with_capacity(per_level.len());
    for level_labels in &per_level {
        // Codes in label order, so that they do not depend on the order rows arrive in.
        let ordered: Vec<String> = {
            let mut l = level_labels.clone();
            l.sort_unstable();
            l.dedup();
            l
        };
        let code_of: AHashMap<&str, u32> = ordered
            .iter()
            .enumerate()
            .map(|(c, l)| (l.as_str(), c as u32))
            .collect();
        let by_value: Vec<u32> = level_labels.iter().map(|l| code_of[l.as_str()]).collect();
        codes.push(row_raw.iter().map(|&id| by_value[id as usize]).collect());
        value_codes.push(by_value);
        labels.push(ordered);
    }
    let domain = labels[0].len() as u32;
    let leaves = (0..labels.len())
        .map(|l| {
            let mut pairs: Vec<(u32, u32)> = value_codes[l]
                .iter()
                .zip(&value_codes[0])
                .map(|(&c, &finest)| (c, finest))
                .collect();
            pairs.sort_unstable();
            pairs.dedup();
            let mut leaves = vec![0u32; labels[l].len()];
            for (c, _) in pairs {
                leaves[c as usize] += 1;
            }
            leaves
        })
        .collect();
    Ok(Quasi {
        name: column.name.clone(),
        levels: column.levels.clone(),
        suppressible: column.suppressible,
        codes,
        labels,
        leaves,
        domain,
        pooled,
    })
}
