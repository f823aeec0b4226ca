//! The first step: a result whose shape never leaves (row-level values, record keys, free
//! text, exact birth dates, rows chosen by an aggregate it does not show) is held whole,
//! before it runs.

use niji_catalog::{Catalog, PSEUDONYM_COLUMN, Role as CatalogRole};

use crate::shadow::{ColumnLineage, Role, Shadow, Source};

/// Splits a table name `db.table` into the database and the table.
pub(super) fn split_table(table: &str) -> (&str, &str) {
    table.split_once('.').unwrap_or(("", table))
}

/// The catalog table of a `db.table` name (none for a workspace table).
fn table_of<'c>(catalog: &'c Catalog, table: &str) -> Option<&'c niji_catalog::Table> {
    let (db, name) = split_table(table);
    catalog.table(db, name)
}

pub(super) fn column_of<'c>(
    catalog: &'c Catalog,
    source: &Source,
) -> Option<&'c niji_catalog::Column> {
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
