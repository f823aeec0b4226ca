//! The result under check: its rows, which columns are group keys and which aggregates, the
//! persons behind each, and what each step has masked so far.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::SchemaRef;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use niji_catalog::{Catalog, DisclosureRole};
use roaring::RoaringBitmap;

use super::hold::{column_of, split_table};
use crate::DisclosureError;
use crate::policy::{DisclosurePolicy, Rules};
use crate::shadow::{Role, Shadow};
use crate::udaf::decode_set;

/// Where the persons behind one aggregate are: its own person-set column, or a section of a
/// contributions column.
#[derive(Debug, Clone, Copy)]
pub(super) enum PersonSource {
    CellSet(usize),
    ContributionSection(usize, usize),
}

/// The persons one aggregate rests on: where they are, whether differencing compares them, and
/// the output columns showing the aggregate (none for one used only in HAVING or ORDER BY: its
/// persons still count).
pub(super) struct AggregatePersons {
    pub(super) source: PersonSource,
    pub(super) differenced: bool,
    pub(super) showing: Vec<usize>,
}

/// Per row (read by the thresholds step): the persons of its group per person source, and
/// the set behind each aggregate's persons.
#[derive(Debug, Default)]
pub(super) struct RowSets {
    pub(super) groups: Vec<Vec<RoaringBitmap>>,
    pub(super) aggregates: Vec<Vec<RoaringBitmap>>,
}

/// Per row: why each masked aggregate cell is masked, by column (none: released).
pub(super) type Masks = BTreeMap<usize, String>;

pub(super) struct ResultCells<'a> {
    pub(super) shadow: &'a Shadow,
    pub(super) rules: Rules,
    pub(super) schema: SchemaRef,
    pub(super) batch: RecordBatch,
    pub(super) rows: usize,
    /// The researcher's columns (the shadow's come after them).
    pub(super) visible: usize,
    pub(super) keys: Vec<usize>,
    pub(super) municipality_keys: Vec<usize>,
    /// Per row, its group keys as text (in `keys` order), written once.
    pub(super) key_texts: Vec<Vec<String>>,
    pub(super) aggregate_columns: Vec<usize>,
    pub(super) aggregate_persons: Vec<AggregatePersons>,
    pub(super) contribution_columns: BTreeSet<usize>,
    pub(super) masked: Vec<Masks>,
    /// Per row (filled by the thresholds step): the fewest persons its cells may rest on,
    /// and whether it is withheld whole.
    pub(super) row_min_persons: Vec<u64>,
    pub(super) withheld: Vec<bool>,
    /// Per row, whether a HAVING kept as a flag lets it in (all true without one).
    pub(super) passes: Vec<bool>,
}

impl<'a> ResultCells<'a> {
    pub(super) fn read(
        shadow: &'a Shadow,
        batches: &[RecordBatch],
        catalog: &Catalog,
        policy: &DisclosurePolicy,
    ) -> Result<Self, DisclosureError> {
        let databases: BTreeSet<&str> = shadow.tables.iter().map(|t| split_table(t).0).collect();
        let rules = policy.for_databases(databases.iter().copied());
        let schema = batches
            .first()
            .map(|b| b.schema())
            .unwrap_or_else(|| Arc::new(shadow.plan.schema().as_arrow().clone()));
        let batch = arrow::compute::concat_batches(&schema, batches)?;
        let rows = batch.num_rows();
        let visible = shadow.lineage.len();
        let keys: Vec<usize> = (0..visible)
            .filter(|&i| shadow.lineage[i].role() == Role::GroupKey)
            .collect();
        let municipality_keys: Vec<usize> = keys
            .iter()
            .copied()
            .filter(|&i| {
                shadow.lineage[i].sources.iter().any(|s| {
                    column_of(catalog, s)
                        .is_some_and(|c| c.disclosure == Some(DisclosureRole::Municipality))
                })
            })
            .collect();
        let key_texts = key_texts(&batch, &keys)?;
        let aggregate_columns: Vec<usize> = (0..visible).filter(|i| !keys.contains(i)).collect();
        // Where they may be fewer than the group's: a FILTER, a CASE, a sum's contributors.
        let aggregate_persons: Vec<AggregatePersons> = shadow
            .cell_sets
            .iter()
            .flat_map(|(aggregate, columns)| {
                columns
                    .iter()
                    .map(move |&c| (aggregate, PersonSource::CellSet(c), true))
            })
            .chain(
                shadow
                    .contributions
                    .iter()
                    .flat_map(|(aggregate, sections)| {
                        // Only a sum's contributors are the persons behind its value.
                        let sum = shadow.sums.contains(aggregate);
                        sections.iter().map(move |&(c, section)| {
                            (
                                aggregate,
                                PersonSource::ContributionSection(c, section),
                                sum,
                            )
                        })
                    }),
            )
            .map(|(aggregate, source, differenced)| AggregatePersons {
                source,
                differenced,
                showing: aggregate_columns
                    .iter()
                    .copied()
                    .filter(|&c| shadow.lineage[c].aggregates.contains(aggregate))
                    .collect(),
            })
            .collect();
        let contribution_columns = aggregate_persons
            .iter()
            .filter_map(|r| match r.source {
                PersonSource::ContributionSection(c, _) => Some(c),
                PersonSource::CellSet(_) => None,
            })
            .collect();
        Ok(Self {
            shadow,
            rules,
            schema,
            batch,
            rows,
            visible,
            keys,
            municipality_keys,
            key_texts,
            aggregate_columns,
            aggregate_persons,
            contribution_columns,
            masked: vec![BTreeMap::new(); rows],
            row_min_persons: Vec::with_capacity(rows),
            withheld: Vec::with_capacity(rows),
            passes: vec![true; rows],
        })
    }

    /// The text of group key `k` (a column index) in `row`.
    pub(super) fn key_text(&self, row: usize, k: usize) -> &str {
        let at = self.keys.iter().position(|&i| i == k).unwrap_or(0);
        &self.key_texts[row][at]
    }

    /// Masks every aggregate cell of `row` not masked already, for `reason`.
    pub(super) fn mask_row(&mut self, row: usize, reason: &str) {
        mask_all(&mut self.masked[row], &self.aggregate_columns, reason);
    }

    /// Whether `row` stays in the result: not withheld, and let in by its HAVING (a masked row
    /// is there whatever the HAVING gives, so its presence tells nothing of its cells).
    pub(super) fn kept(&self, row: usize) -> bool {
        !self.withheld[row] && (self.passes[row] || !self.masked[row].is_empty())
    }

    /// Whether `row` shows something: it is kept and not every aggregate of it is masked (a
    /// row of group keys only shows that its group exists).
    pub(super) fn shows(&self, row: usize) -> bool {
        self.kept(row)
            && (self.aggregate_columns.is_empty()
                || self.masked[row].len() < self.aggregate_columns.len())
    }

    /// Per source of persons (each person source's groups, then each differenced aggregate),
    /// the sets of the rows whose cells show it.
    pub(super) fn shown_sets<'s>(&self, sets: &'s RowSets) -> Vec<Vec<(usize, &'s RoaringBitmap)>> {
        let groups = self.shadow.person_sets.len();
        let mut by_source: Vec<Vec<(usize, &RoaringBitmap)>> =
            vec![Vec::new(); groups + self.aggregate_persons.len()];
        for row in (0..self.rows).filter(|&row| self.shows(row)) {
            for (k, set) in sets.groups[row].iter().enumerate() {
                by_source[k].push((row, set));
            }
            for (i, (set, r)) in sets.aggregates[row]
                .iter()
                .zip(&self.aggregate_persons)
                .enumerate()
            {
                if r.differenced && r.showing.iter().any(|c| !self.masked[row].contains_key(c)) {
                    by_source[groups + i].push((row, set));
                }
            }
        }
        by_source
    }
}

/// Per row, its group keys as text.
fn key_texts(batch: &RecordBatch, keys: &[usize]) -> Result<Vec<Vec<String>>, DisclosureError> {
    let options = FormatOptions::default().with_null("NULL");
    let formatters = keys
        .iter()
        .map(|&i| ArrayFormatter::try_new(batch.column(i).as_ref(), &options))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((0..batch.num_rows())
        .map(|row| {
            formatters
                .iter()
                .map(|f| f.value(row).to_string())
                .collect()
        })
        .collect())
}

pub(super) fn mask_all(masks: &mut Masks, columns: &[usize], reason: &str) {
    for &c in columns {
        masks.entry(c).or_insert_with(|| reason.to_string());
    }
}

pub(super) fn sets_at(
    batch: &RecordBatch,
    columns: &[usize],
    row: usize,
) -> Result<Vec<RoaringBitmap>, DisclosureError> {
    columns
        .iter()
        .map(|&c| {
            let a = batch.column(c).as_binary::<i32>();
            if a.is_null(row) {
                Ok(RoaringBitmap::new())
            } else {
                decode_set(a.value(row)).map_err(|e| DisclosureError::Check(e.to_string()))
            }
        })
        .collect()
}

pub(super) fn smallest(sets: &[RoaringBitmap]) -> u64 {
    sets.iter().map(RoaringBitmap::len).min().unwrap_or(0)
}
