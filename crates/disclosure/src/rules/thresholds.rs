//! The thresholds, row by row: municipalities of few or unknown inhabitants, rows whose group
//! rests on too few persons (withheld whole), cells resting on too few persons or facilities,
//! and dominance and p-percent on magnitudes.

use std::collections::BTreeMap;

use roaring::RoaringBitmap;

use super::cells::{PersonSource, ResultCells, RowSets, mask_all, sets_at, smallest};
use super::magnitudes::{Magnitude, contributions_at, magnitude_problem};
use super::{Populations, Strictness};
use crate::DisclosureError;
use crate::shadow::Role;
use crate::udaf::{Contributions, Form};

/// What the thresholds found: every row judged, or a cell that only exact contributions or
/// facilities would settle.
pub(super) enum Settled {
    Yes(RowSets),
    Recheck,
}

pub(super) fn apply(
    cells: &mut ResultCells<'_>,
    populations: &Populations,
    strictness: Strictness,
) -> Result<Settled, DisclosureError> {
    let judged = strictness == Strictness::Automatic;
    let shadow = cells.shadow;
    let rules = cells.rules.clone();
    let mut sets = RowSets::default();
    for row in 0..cells.rows {
        let persons = sets_at(&cells.batch, &shadow.person_sets, row)?;
        let n = smallest(&persons);
        let mut min_persons = rules.min_persons;
        let mut no_counts = false;
        // Read the row's municipality codes first, then mask: the codes are borrowed.
        let mut municipality_reasons = Vec::new();
        for &k in &cells.municipality_keys {
            let code = cells.key_text(row, k);
            match populations.0.get(code) {
                Some(&p) if p < rules.municipality_no_counts_below => {
                    no_counts = true;
                    municipality_reasons.push(format!(
                        "municipality of fewer than {} inhabitants",
                        rules.municipality_no_counts_below
                    ));
                }
                Some(&p) if p < rules.municipality_strict_below => {
                    min_persons = min_persons.max(rules.municipality_min_persons);
                }
                Some(_) => {}
                // Fail closed: a code whose population niji does not know (none ingested, or
                // a key computed from the code) could be the smallest municipality.
                None if code != "NULL" => {
                    no_counts = true;
                    municipality_reasons.push("municipality of unknown population".to_string());
                }
                None => {}
            }
        }
        for reason in &municipality_reasons {
            cells.mask_row(row, reason);
        }
        // A row whose group rests on too few persons is withheld whole: its keys alone would
        // tell that somebody has them (a rare disease at a severity, in a municipality), and a
        // row masked in place shows them. Records without ID5 are in no person set, so a group
        // of them alone rests on nobody and goes too. Reference domains (prefectures) are no
        // exception: rows of empty groups never appear, so a masked row's presence would tell.
        let withhold = !cells.keys.is_empty()
            && !shadow.person_sets.is_empty()
            && (no_counts || n < min_persons);
        if withhold {
            let reason = format!("withheld: its group rests on fewer than {min_persons} persons");
            cells.mask_row(row, &reason);
        }
        cells.withheld.push(withhold);
        let contributions: BTreeMap<usize, Vec<Contributions>> = cells
            .contribution_columns
            .iter()
            .map(|&c| Ok((c, contributions_at(&cells.batch, c, row)?)))
            .collect::<Result<_, DisclosureError>>()?;
        if contributions
            .values()
            .flatten()
            .any(|c| c.form == Form::PersonsUnknown)
        {
            return Ok(Settled::Recheck);
        }
        // Each aggregate rests on its own persons (a count of a CASE, a FILTER, a sum of
        // zeros elsewhere), never more than the group's. A section that cannot be read rests
        // on nobody.
        let behind: Vec<RoaringBitmap> = cells
            .aggregate_persons
            .iter()
            .map(|r| match r.source {
                PersonSource::CellSet(c) => {
                    Ok(sets_at(&cells.batch, &[c], row)?.pop().unwrap_or_default())
                }
                PersonSource::ContributionSection(c, section) => Ok(contributions
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
            cells.mask_row(row, &format!("fewer than {min_persons} persons"));
        }
        cells.row_min_persons.push(min_persons);
        if judged && rules.facility_rule {
            let facilities = sets_at(&cells.batch, &shadow.facility_sets, row)?;
            if !facilities.is_empty() && n > 0 && smallest(&facilities) < rules.min_facilities {
                // Some of the cell's facilities only: the exact shadow may find enough. A cell
                // masked whole already needs none.
                if shadow.facilities_bounded
                    && cells.masked[row].len() < cells.aggregate_columns.len()
                {
                    return Ok(Settled::Recheck);
                }
                let reason = format!("fewer than {} facilities", rules.min_facilities);
                mask_all(&mut cells.masked[row], &cells.aggregate_columns, &reason);
            }
        }
        for &c in &cells.aggregate_columns {
            // A cell masked already needs no bounds settled.
            if !judged
                || shadow.lineage[c].role() != Role::Magnitude
                || cells.masked[row].contains_key(&c)
            {
                continue;
            }
            match magnitude_problem(shadow, &contributions, c, &rules) {
                Some(Magnitude::Masked(reason)) => {
                    cells.masked[row].insert(c, reason);
                }
                Some(Magnitude::Unsettled) => return Ok(Settled::Recheck),
                None => {}
            }
        }
        sets.groups.push(persons);
        sets.aggregates.push(behind);
    }
    Ok(Settled::Yes(sets))
}
