//! The release rules, applied to a result and its shadow columns: which cells may leave.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, RecordBatch};
use arrow::datatypes::{DataType, Int64Type, Schema};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use niji_catalog::{Catalog, DisclosureRole, PSEUDONYM_COLUMN, Role as CatalogRole};
use roaring::RoaringBitmap;
use serde::Serialize;

use crate::DisclosureError;
use crate::ledger::{Described, Kept, Ledger};
use crate::policy::{DisclosurePolicy, Rules};
use crate::sets::{Contributions, Form, decode_set};
use crate::shadow::{ColumnLineage, Role, Shadow, Source, is_hidden};

/// A masked cell and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct SuppressedCell {
    pub row: usize,
    pub column: String,
    pub reason: String,
}

#[derive(Debug)]
pub enum Verdict {
    /// The result may leave: cells that may not are masked (null) and listed.
    Release {
        batch: RecordBatch,
        suppressed: Vec<SuppressedCell>,
        /// Person sets of the released cells and, per source of persons (a person source's
        /// groups, an aggregate's own persons), their union, for later differencing (each
        /// described as the ledger keeps it, once).
        released_sets: Vec<Kept>,
        /// Where counts are rounded: each count column's total, recomputed from its released
        /// rounded cells (an exact total would give back what rounding hid).
        totals: Vec<(String, i64)>,
        /// Whether rows of groups resting on too few persons are left out of this result: by
        /// its shape (group keys over persons), never by whether it had any, which would tell
        /// that a small group exists.
        small_groups_withheld: bool,
    },
    /// Nothing leaves; the reason says why.
    Hold(String),
    /// Bounds on a cell's largest contributions do not settle dominance or p-percent, or do
    /// not tell who contributes, or the facilities found for it (some of them) are too few:
    /// nothing was decided, and the query must be checked again on
    /// its exact shadow (built without bounds), which never gives this.
    Recheck,
}

/// Which rules apply. Output checkers may release what only the judgement rules masked
/// (facilities, dominance, p-percent, unchecked contributions); the person thresholds,
/// municipality rules, differencing and complementary suppression hold whatever they decide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strictness {
    Automatic,
    Approved,
}

/// Inhabitants per municipality code (from the reference table).
#[derive(Debug, Clone, Default)]
pub struct Populations(pub HashMap<String, u64>);

/// Splits a table name `db.table` into the database and the table.
fn split_table(table: &str) -> (&str, &str) {
    table.split_once('.').unwrap_or(("", table))
}

/// The catalog table of a `db.table` name (none for a workspace table).
fn table_of<'c>(catalog: &'c Catalog, table: &str) -> Option<&'c niji_catalog::Table> {
    let (db, name) = split_table(table);
    catalog.table(db, name)
}

fn column_of<'c>(catalog: &'c Catalog, source: &Source) -> Option<&'c niji_catalog::Column> {
    table_of(catalog, &source.table)?.column(&source.column)
}

fn is_record_key(catalog: &Catalog, source: &Source) -> bool {
    table_of(catalog, &source.table).is_some_and(|t| {
        t.parent.as_ref().is_some_and(|p| p.key == source.column)
            || t.column(&source.column)
                .is_some_and(|c| c.role == Some(CatalogRole::RecordKey))
    })
}

/// Why a column may never leave, whatever its cells rest on.
fn never_leaves(l: &ColumnLineage, catalog: &Catalog) -> Option<String> {
    match l.role() {
        Role::RowLevel => {
            return Some(format!(
                "{} is a row-level value: row-level results stay in the workspace",
                l.name
            ));
        }
        Role::Listing => return Some(format!("{} lists values of rows", l.name)),
        _ => {}
    }
    let coarsened = ["date_part", "date_trunc", "extract"]
        .iter()
        .any(|f| l.functions.contains(*f));
    for s in &l.sources {
        let column = column_of(catalog, s);
        if s.column == PSEUDONYM_COLUMN && column.is_none() {
            return Some(format!("{} shows project pseudonyms", l.name));
        }
        if is_record_key(catalog, s) {
            return Some(format!("{} shows record keys", l.name));
        }
        let Some(c) = column else {
            return Some(format!(
                "{} comes from {}, whose lineage niji does not track",
                l.name, s.table
            ));
        };
        if c.free_text {
            return Some(format!(
                "{} shows free text ({}.{})",
                l.name, s.table, s.column
            ));
        }
        if c.role == Some(CatalogRole::BirthDate) && !coarsened {
            return Some(format!(
                "{} shows exact dates of birth (use date_part or date_trunc)",
                l.name
            ));
        }
    }
    None
}

/// Why a result of this shape never leaves, whatever its rows: decided before it runs, so
/// that a held query answers held whether or not it would have failed on the way.
pub fn held_for_shape(shadow: &Shadow, catalog: &Catalog) -> Option<String> {
    if let Some(reason) = shadow.lineage.iter().find_map(|l| never_leaves(l, catalog)) {
        return Some(reason);
    }
    if shadow.raw_persons {
        return Some(
            "the result has a row per record or person: row-level results stay in the workspace"
                .into(),
        );
    }
    // A workspace table, not in the catalog, may be about anyone.
    let about_persons =
        |t: &String| table_of(catalog, t).is_none_or(niji_catalog::Table::is_about_persons);
    if shadow.person_sets.is_empty() && shadow.tables.iter().any(about_persons) {
        return Some("the persons behind these cells cannot be counted (aggregate a person-level table, or join details to their records)".into());
    }
    // An aggregate the result does not show, resting on persons of its own (in HAVING, or
    // ORDER BY), chose which rows appear or in what order: that choice can tell of a few
    // persons through a row's keys, or through its absence, where no cell shows to be checked.
    let shown = |aggregate: &String| {
        shadow
            .lineage
            .iter()
            .any(|l| l.role() != Role::GroupKey && l.aggregates.contains(aggregate))
    };
    let unshown_own_persons = shadow
        .cell_sets
        .iter()
        .any(|(aggregate, columns)| !columns.is_empty() && !shown(aggregate))
        || shadow.contributions.iter().any(|(aggregate, sections)| {
            shadow.sums.contains(aggregate) && !sections.is_empty() && !shown(aggregate)
        });
    if unshown_own_persons {
        return Some("its rows are chosen or ordered by an aggregate it does not show (HAVING, ORDER BY) that rests on persons of its own: show that aggregate, or choose rows with WHERE".into());
    }
    None
}

fn sets_at(
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

fn smallest(sets: &[RoaringBitmap]) -> u64 {
    sets.iter().map(RoaringBitmap::len).min().unwrap_or(0)
}

/// Where the persons behind one aggregate come from: its own person set column, or a section
/// of a contributions column.
#[derive(Debug, Clone, Copy)]
enum Behind {
    CellSet(usize),
    Contributions(usize, usize),
}

/// The persons one aggregate rests on: where they are, whether differencing compares them, and
/// the output columns showing the aggregate.
struct Resting {
    behind: Behind,
    differenced: bool,
    showing: Vec<usize>,
}

/// Applies the rules to `batches` (the shadow plan's output).
pub fn check(
    shadow: &Shadow,
    batches: &[RecordBatch],
    catalog: &Catalog,
    policy: &DisclosurePolicy,
    ledger: &Ledger,
    populations: &Populations,
    strictness: Strictness,
) -> Result<Verdict, DisclosureError> {
    let judged = strictness == Strictness::Automatic;
    if let Some(reason) = held_for_shape(shadow, catalog) {
        return Ok(Verdict::Hold(reason));
    }
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
    let options = FormatOptions::default().with_null("NULL");
    let formatters = keys
        .iter()
        .map(|&i| ArrayFormatter::try_new(batch.column(i).as_ref(), &options))
        .collect::<Result<Vec<_>, _>>()?;
    // Per row, its group keys as text (in `keys` order), written once.
    let key_texts: Vec<Vec<String>> = (0..rows)
        .map(|row| {
            formatters
                .iter()
                .map(|f| f.value(row).to_string())
                .collect()
        })
        .collect();
    let key_at = |k: usize| keys.iter().position(|&i| i == k).unwrap_or(0);

    // Per row: the reason its aggregate cells are masked (None: released), per column.
    let mut masked: Vec<BTreeMap<usize, String>> = vec![BTreeMap::new(); rows];
    let mut group_sets: Vec<Vec<RoaringBitmap>> = Vec::with_capacity(rows);
    let aggregate_columns: Vec<usize> = (0..visible).filter(|i| !keys.contains(i)).collect();
    let mask_row = |m: &mut BTreeMap<usize, String>, reason: &str| {
        for &c in &aggregate_columns {
            m.entry(c).or_insert_with(|| reason.to_string());
        }
    };
    // The persons each aggregate of the outermost aggregation rests on, where they may be fewer
    // than the group's (a FILTER, a CASE, a sum's contributors), and the output columns that
    // show it (none for one used only in HAVING or ORDER BY: its persons still count).
    let resting: Vec<Resting> = shadow
        .cell_sets
        .iter()
        .flat_map(|(aggregate, columns)| {
            columns
                .iter()
                .map(move |&c| (aggregate, Behind::CellSet(c), true))
        })
        .chain(
            shadow
                .contributions
                .iter()
                .flat_map(|(aggregate, sections)| {
                    // Only a sum's contributors are the persons behind its value.
                    let sum = shadow.sums.contains(aggregate);
                    sections.iter().map(move |&(c, section)| {
                        (aggregate, Behind::Contributions(c, section), sum)
                    })
                }),
        )
        .map(|(aggregate, behind, differenced)| Resting {
            behind,
            differenced,
            showing: aggregate_columns
                .iter()
                .copied()
                .filter(|&c| shadow.lineage[c].aggregates.contains(aggregate))
                .collect(),
        })
        .collect();
    let contribution_columns: BTreeSet<usize> = resting
        .iter()
        .filter_map(|r| match r.behind {
            Behind::Contributions(c, _) => Some(c),
            Behind::CellSet(_) => None,
        })
        .collect();
    // Per row, the set behind each of `resting`, and the fewest persons its cells may rest on.
    let mut aggregate_sets: Vec<Vec<RoaringBitmap>> = Vec::with_capacity(rows);
    let mut row_min_persons: Vec<u64> = Vec::with_capacity(rows);
    let mut withheld: Vec<bool> = Vec::with_capacity(rows);
    for (row, cell_masks) in masked.iter_mut().enumerate() {
        let persons = sets_at(&batch, &shadow.person_sets, row)?;
        let n = smallest(&persons);
        let mut min_persons = rules.min_persons;
        let mut no_counts = false;
        for &k in &municipality_keys {
            let code = &key_texts[row][key_at(k)];
            match populations.0.get(code) {
                Some(&p) if p < rules.municipality_no_counts_below => {
                    no_counts = true;
                    mask_row(
                        cell_masks,
                        &format!(
                            "municipality of fewer than {} inhabitants",
                            rules.municipality_no_counts_below
                        ),
                    );
                }
                Some(&p) if p < rules.municipality_strict_below => {
                    min_persons = min_persons.max(rules.municipality_min_persons);
                }
                Some(_) => {}
                // Fail closed: a code whose population niji does not know (none ingested, or
                // a key computed from the code) could be the smallest municipality.
                None if code != "NULL" => {
                    no_counts = true;
                    mask_row(cell_masks, "municipality of unknown population");
                }
                None => {}
            }
        }
        // A row whose group rests on too few persons is withheld whole: its keys alone would
        // tell that somebody has them (a rare disease at a severity, in a municipality), and a
        // row masked in place shows them. Records without ID5 are in no person set, so a group
        // of them alone rests on nobody and goes too. Reference domains (prefectures) are no
        // exception: rows of empty groups never appear, so a masked row's presence would tell.
        let withhold =
            !keys.is_empty() && !shadow.person_sets.is_empty() && (no_counts || n < min_persons);
        if withhold {
            mask_row(
                cell_masks,
                &format!("withheld: its group rests on fewer than {min_persons} persons"),
            );
        }
        withheld.push(withhold);
        let contributions: BTreeMap<usize, Vec<Contributions>> = contribution_columns
            .iter()
            .map(|&c| Ok((c, contributions_at(&batch, c, row)?)))
            .collect::<Result<_, DisclosureError>>()?;
        if contributions
            .values()
            .flatten()
            .any(|c| c.form == Form::PersonsUnknown)
        {
            return Ok(Verdict::Recheck);
        }
        // Each aggregate rests on its own persons (a count of a CASE, a FILTER, a sum of
        // zeros elsewhere), never more than the group's. A section that cannot be read rests
        // on nobody.
        let behind: Vec<RoaringBitmap> = resting
            .iter()
            .map(|r| match r.behind {
                Behind::CellSet(c) => Ok(sets_at(&batch, &[c], row)?.pop().unwrap_or_default()),
                Behind::Contributions(c, section) => Ok(contributions
                    .get(&c)
                    .and_then(|sections| sections.get(section))
                    .map(|s| s.persons.clone())
                    .unwrap_or_default()),
            })
            .collect::<Result<_, DisclosureError>>()?;
        let fewest = behind.iter().map(RoaringBitmap::len).fold(n, u64::min);
        // A cell resting on too few identified persons is masked, a cell of 0 too: were 0
        // shown where 1 to 9 are masked, a masked cell would tell that somebody is there.
        if fewest < min_persons {
            mask_row(cell_masks, &format!("fewer than {min_persons} persons"));
        }
        row_min_persons.push(min_persons);
        if judged && rules.facility_rule {
            let facilities = sets_at(&batch, &shadow.facility_sets, row)?;
            if !facilities.is_empty() && n > 0 && smallest(&facilities) < rules.min_facilities {
                // Some of the cell's facilities only: the exact shadow may find enough. A cell
                // masked whole already needs none.
                if shadow.facilities_bounded && cell_masks.len() < aggregate_columns.len() {
                    return Ok(Verdict::Recheck);
                }
                mask_row(
                    cell_masks,
                    &format!("fewer than {} facilities", rules.min_facilities),
                );
            }
        }
        for &c in &aggregate_columns {
            // A cell masked already needs no bounds settled.
            if !judged || shadow.lineage[c].role() != Role::Magnitude || cell_masks.contains_key(&c)
            {
                continue;
            }
            match magnitude_problem(shadow, &contributions, c, &rules) {
                Some(Magnitude::Masked(reason)) => {
                    cell_masks.insert(c, reason);
                }
                Some(Magnitude::Unsettled) => return Ok(Verdict::Recheck),
                None => {}
            }
        }
        group_sets.push(persons);
        aggregate_sets.push(behind);
    }

    // A HAVING kept as a flag (`shadow::lift_having`) leaves a row out only while none of its
    // cells is masked: a masked row is there whatever the HAVING gives, so its presence tells
    // nothing of its cells.
    let passes: Vec<bool> = match shadow.having {
        Some(c) => {
            let flags = batch.column(c).as_boolean_opt().ok_or_else(|| {
                DisclosureError::Check("the HAVING flag is not a boolean column".into())
            })?;
            (0..rows)
                .map(|row| flags.is_valid(row) && flags.value(row))
                .collect()
        }
        None => vec![true; rows],
    };
    let kept =
        |row: usize, m: &BTreeMap<usize, String>| !withheld[row] && (passes[row] || !m.is_empty());
    // A row shows something unless it is left out, or every aggregate of it is masked (a row
    // of group keys only shows that its group exists).
    let shows = |row: usize, m: &BTreeMap<usize, String>| {
        kept(row, m) && (aggregate_columns.is_empty() || m.len() < aggregate_columns.len())
    };

    // Differencing: a cell whose persons differ from a released cell's (or a released
    // table's total, or another cell of this result) by fewer than the row's minimum would
    // give those persons away. A row's group is compared first, then each aggregate's own
    // persons.
    let near_reason = |threshold: u64| {
        format!(
            "differs from an earlier released cell (or another cell of this table) by fewer than {threshold} persons"
        )
    };
    let mut this_result = Ledger::default();
    let groups = shadow.person_sets.len();
    // The sets described on the way, by (source, row) as `shown_sets` gives them: a released
    // one joins the ledger described as it is here.
    let mut described: HashMap<(usize, usize), Described<'_>> = HashMap::new();
    for row in 0..rows {
        if !shows(row, &masked[row]) {
            continue;
        }
        let threshold = row_min_persons[row];
        // Each set is described once, for both ledgers and for keeping.
        let near = |set: &Described<'_>, this_result: &Ledger| {
            !set.is_empty()
                && (ledger.differs_by_fewer(set, threshold)
                    || this_result.differs_by_fewer(set, threshold))
        };
        let row_groups: Vec<Described<'_>> = group_sets[row].iter().map(Described::new).collect();
        if row_groups.iter().any(|set| near(set, &this_result)) {
            mask_row(&mut masked[row], &near_reason(threshold));
            continue;
        }
        for (k, set) in row_groups.iter().enumerate() {
            this_result.add(set);
            described.insert((k, row), *set);
        }
        for (i, (set, r)) in aggregate_sets[row].iter().zip(&resting).enumerate() {
            if !r.differenced || r.showing.iter().all(|c| masked[row].contains_key(c)) {
                continue;
            }
            // The group's own persons (a sum everyone in it adds to) were differenced as the
            // group's.
            if group_sets[row].contains(set) {
                continue;
            }
            let set = Described::new(set);
            if near(&set, &this_result) {
                for &c in &r.showing {
                    masked[row]
                        .entry(c)
                        .or_insert_with(|| near_reason(threshold));
                }
            } else {
                this_result.add(&set);
                described.insert((groups + i, row), set);
            }
        }
    }

    // Per source of persons (each person source's groups, then each differenced aggregate),
    // the sets of the rows whose cells show it.
    let shown_sets = |masked: &[BTreeMap<usize, String>]| {
        let mut by_source: Vec<Vec<(usize, &RoaringBitmap)>> =
            vec![Vec::new(); groups + resting.len()];
        for row in (0..rows).filter(|&row| shows(row, &masked[row])) {
            for (k, set) in group_sets[row].iter().enumerate() {
                by_source[k].push((row, set));
            }
            for (i, (set, r)) in aggregate_sets[row].iter().zip(&resting).enumerate() {
                if r.differenced && r.showing.iter().any(|c| !masked[row].contains_key(c)) {
                    by_source[groups + i].push((row, set));
                }
            }
        }
        by_source
    };
    let union = |cells: &[(usize, &RoaringBitmap)]| {
        cells
            .iter()
            .fold(RoaringBitmap::new(), |total, (_, set)| total | *set)
    };
    // Summing a column of the table gives its total: where that total differs from an
    // earlier release by too few persons, the column's smallest cell goes too, until none
    // does (each round masks a cell, so that its row leaves the source, and this ends). A
    // table of group keys alone has no column to sum. The last round's totals, per source,
    // are those released.
    let mut totals: Vec<Option<Kept>> = Vec::new();
    loop {
        complementary(
            &mut masked,
            &aggregate_columns,
            &group_sets,
            &key_texts,
            &withheld,
        );
        if aggregate_columns.is_empty() {
            break;
        }
        totals.clear();
        let mut near_total = None;
        for (source, cells) in shown_sets(&masked).into_iter().enumerate() {
            if cells.len() < 2 {
                totals.push(None);
                continue;
            }
            let total = Kept::new(union(&cells));
            if ledger.differs_by_fewer(&total.described(), rules.min_persons) {
                near_total = cells
                    .iter()
                    .min_by_key(|(_, set)| set.len())
                    .map(|(row, _)| (source, *row));
                break;
            }
            totals.push(Some(total));
        }
        let Some((source, row)) = near_total else {
            break;
        };
        let reason = format!(
            "the table's total would differ from a released cell by fewer than {} persons",
            rules.min_persons
        );
        if source < groups {
            mask_row(&mut masked[row], &reason);
        } else {
            for &c in &resting[source - groups].showing {
                masked[row].entry(c).or_insert_with(|| reason.clone());
            }
        }
    }

    // Every set behind a cell that shows is released and joins the ledger, and so does each
    // source's total over the rows.
    let mut released_sets = Vec::new();
    for (source, mut cells) in shown_sets(&masked).into_iter().enumerate() {
        cells.retain(|(_, set)| !set.is_empty());
        if cells.len() > 1 {
            let total = totals.get_mut(source).and_then(Option::take);
            released_sets.push(total.unwrap_or_else(|| Kept::new(union(&cells))));
        }
        released_sets.extend(cells.into_iter().map(|(row, set)| {
            described
                .get(&(source, row))
                .map_or_else(|| Kept::new(set.clone()), Described::to_kept)
        }));
    }

    // Rows withheld, and rows left out by a HAVING, go; the others keep their order, numbered
    // anew.
    let keep: Vec<bool> = (0..rows).map(|row| kept(row, &masked[row])).collect();
    let position: Vec<usize> = keep
        .iter()
        .scan(0, |next, &k| {
            let at = *next;
            *next += usize::from(k);
            Some(at)
        })
        .collect();
    let keep = BooleanArray::from(keep);
    let mut suppressed = Vec::new();
    let mut totals = Vec::new();
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(visible);
    for c in 0..visible {
        let mut mask = vec![false; rows];
        for row in (0..rows).filter(|&row| keep.value(row)) {
            if let Some(reason) = masked[row].get(&c) {
                mask[row] = true;
                suppressed.push(SuppressedCell {
                    row: position[row],
                    column: shadow.lineage[c].name.clone(),
                    reason: reason.clone(),
                });
            }
        }
        let mut array = batch.column(c).clone();
        if mask.iter().any(|m| *m) {
            array = arrow::compute::nullif(&array, &BooleanArray::from(mask))?;
        }
        if keep.false_count() > 0 {
            array = arrow::compute::filter(&array, &keep)?;
        }
        if rules.rounding > 1 && shadow.lineage[c].role() == Role::Count {
            array = round(&array, rules.rounding);
            if array.data_type() == &DataType::Int64 {
                let total = array.as_primitive::<Int64Type>().iter().flatten().sum();
                totals.push((shadow.lineage[c].name.clone(), total));
            }
        }
        columns.push(array);
    }
    suppressed.sort_by(|a, b| (a.row, &a.column).cmp(&(b.row, &b.column)));
    // Masked cells are null, whatever the column's type promised.
    let fields: Vec<_> = schema
        .fields()
        .iter()
        .filter(|f| !is_hidden(f.name()))
        .map(|f| f.as_ref().clone().with_nullable(true))
        .collect();
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?;
    Ok(Verdict::Release {
        batch,
        suppressed,
        released_sets,
        totals,
        small_groups_withheld: !keys.is_empty() && !shadow.person_sets.is_empty(),
    })
}

/// The sections of a contributions cell (none when it is null).
fn contributions_at(
    batch: &RecordBatch,
    column: usize,
    row: usize,
) -> Result<Vec<Contributions>, DisclosureError> {
    let a = batch.column(column).as_binary::<i32>();
    if a.is_null(row) {
        return Ok(Vec::new());
    }
    Contributions::decode(a.value(row)).ok_or_else(|| {
        DisclosureError::Check(
            "the per-person contributions were stored in an earlier form: run the query again"
                .into(),
        )
    })
}

/// What dominance and p-percent find in a magnitude cell.
enum Magnitude {
    Masked(String),
    /// Failed on bounds: exact contributions would decide.
    Unsettled,
}

/// Dominance (n, k) and p-percent on a magnitude cell, from the row's decoded
/// contributions. Fails closed: a section that is missing or not a number masks the cell.
fn magnitude_problem(
    shadow: &Shadow,
    contributions: &BTreeMap<usize, Vec<Contributions>>,
    column: usize,
    rules: &Rules,
) -> Option<Magnitude> {
    let unchecked = || {
        Magnitude::Masked(
            "its contributions per person cannot be checked (a magnitude over an inner aggregate)"
                .to_string(),
        )
    };
    let mut checked = false;
    for aggregate in &shadow.lineage[column].aggregates {
        for &(s, section) in shadow.contributions.get(aggregate).into_iter().flatten() {
            let Some(c) = contributions.get(&s).and_then(|c| c.get(section)) else {
                return Some(unchecked());
            };
            checked = true;
            if c.total == 0.0 {
                continue;
            }
            // On bounds, the first n sum to at least the n largest contributions: passing on
            // them is passing.
            let top_n: f64 = c.top.iter().take(rules.dominance_n).sum();
            let first = c.top.first().copied().unwrap_or(0.0);
            let first_two: f64 = c.top.iter().take(2).sum();
            // A NaN anywhere compares as neither: the cell is masked.
            let reason = if !at_most(top_n, c.total * rules.dominance_k / 100.0) {
                format!(
                    "dominance: the {} largest contributors make over {}% of it",
                    rules.dominance_n, rules.dominance_k
                )
            } else if !at_most(first * rules.p_percent / 100.0, c.total - first_two) {
                format!(
                    "p-percent: the others could estimate the largest contribution within {}%",
                    rules.p_percent
                )
            } else {
                continue;
            };
            // A NaN masks on any sums; an infinite total (an overflow) may pass on exact ones.
            return Some(if c.form != Form::Exact && !c.total.is_nan() {
                Magnitude::Unsettled
            } else {
                Magnitude::Masked(reason)
            });
        }
    }
    (!checked).then(unchecked)
}

/// Where a line of the table (cells that differ in one group key only) has exactly one masked
/// cell of a column, the line's total (published or derived from other releases) would give
/// it back: mask that column of the smallest other cell of the line too, until no line has a
/// lone masked cell in any column. `key_texts`: per row, its group keys as text. Rows
/// `withheld` are in no line: a partner masked for one would tell that its group exists (a
/// total released before in the project that would give one back is caught by differencing).
fn complementary(
    masked: &mut [BTreeMap<usize, String>],
    aggregate_columns: &[usize],
    group_sets: &[Vec<RoaringBitmap>],
    key_texts: &[Vec<String>],
    withheld: &[bool],
) {
    const REASON: &str = "complementary: protects a suppressed cell of the same line";
    let keys = key_texts.first().map_or(0, Vec::len);
    // The lines along each key, built once: the rows that share every other key.
    let lines: Vec<Vec<usize>> = (0..keys)
        .flat_map(|varying| {
            let mut by_rest: BTreeMap<Vec<&str>, Vec<usize>> = BTreeMap::new();
            for (row, texts) in key_texts
                .iter()
                .enumerate()
                .filter(|(row, _)| !withheld[*row])
            {
                let rest = texts
                    .iter()
                    .enumerate()
                    .filter(|(k, _)| *k != varying)
                    .map(|(_, t)| t.as_str())
                    .collect();
                by_rest.entry(rest).or_default().push(row);
            }
            by_rest.into_values()
        })
        .collect();
    loop {
        let mut changed = false;
        for members in &lines {
            for &c in aggregate_columns {
                let lone = members
                    .iter()
                    .filter(|&&r| masked[r].contains_key(&c))
                    .count()
                    == 1;
                if !lone {
                    continue;
                }
                let partner = members
                    .iter()
                    .copied()
                    .filter(|&r| !masked[r].contains_key(&c))
                    .min_by_key(|&r| smallest(&group_sets[r]));
                if let Some(r) = partner {
                    masked[r].insert(c, REASON.to_string());
                    changed = true;
                }
            }
        }
        if !changed {
            return;
        }
    }
}

/// Counts rounded to the nearest multiple of `base`.
fn round(array: &ArrayRef, base: u64) -> ArrayRef {
    if array.data_type() != &DataType::Int64 {
        return array.clone();
    }
    let base = base as i64;
    let rounded: arrow::array::Int64Array = array
        .as_primitive::<Int64Type>()
        .iter()
        .map(|v| v.map(|v| (v + base / 2).div_euclid(base) * base))
        .collect();
    Arc::new(rounded)
}

/// `a <= b`, false when either is NaN.
fn at_most(a: f64, b: f64) -> bool {
    matches!(
        a.partial_cmp(&b),
        Some(std::cmp::Ordering::Less | std::cmp::Ordering::Equal)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lone_masked_cell_takes_the_smallest_of_its_line_along() {
        // Rows: (sex, band) = (1,a) (1,b) (1,c) (2,a) (2,b) (2,c); row 0 is masked.
        let keys = [
            ("1", "a"),
            ("1", "b"),
            ("1", "c"),
            ("2", "a"),
            ("2", "b"),
            ("2", "c"),
        ];
        let sizes = [3u32, 50, 40, 60, 70, 30];
        let group_sets: Vec<Vec<RoaringBitmap>> = sizes
            .iter()
            .enumerate()
            .map(|(i, &n)| vec![(i as u32 * 1000..i as u32 * 1000 + n).collect()])
            .collect();
        let mut masked = vec![BTreeMap::new(); 6];
        masked[0].insert(2, "fewer than 10 persons".to_string());
        let key_texts: Vec<Vec<String>> = keys
            .iter()
            .map(|(sex, band)| vec![sex.to_string(), band.to_string()])
            .collect();
        complementary(&mut masked, &[2], &group_sets, &key_texts, &[false; 6]);
        let masked_rows: Vec<usize> = (0..6).filter(|&r| !masked[r].is_empty()).collect();
        // Along sex within band a: (2,a) goes; along band within sex 1 the smallest partner,
        // (1,c); within sex 2, (2,a) is now alone, so its smallest other, (2,c), goes too.
        assert_eq!(masked_rows, [0, 2, 3, 5]);
        assert!(masked[2][&2].starts_with("complementary"));
        // No line is left with a lone masked cell.
        for line in [[0, 1, 2], [3, 4, 5]] {
            assert_ne!(line.iter().filter(|&&r| !masked[r].is_empty()).count(), 1);
        }
        for line in [[0, 3], [1, 4], [2, 5]] {
            assert_ne!(line.iter().filter(|&&r| !masked[r].is_empty()).count(), 1);
        }
    }

    #[test]
    fn counts_round_to_the_nearest_multiple_and_nulls_stay() {
        let counts: ArrayRef = Arc::new(arrow::array::Int64Array::from(vec![
            Some(12),
            Some(13),
            None,
            Some(0),
            Some(7),
        ]));
        let rounded = round(&counts, 5);
        let rounded: Vec<Option<i64>> = rounded.as_primitive::<Int64Type>().iter().collect();
        assert_eq!(rounded, [Some(10), Some(15), None, Some(0), Some(5)]);
        let text: ArrayRef = Arc::new(arrow::array::StringArray::from(vec!["x"]));
        assert_eq!(
            round(&text, 5).as_ref(),
            text.as_ref(),
            "only counts are rounded"
        );
    }
}
