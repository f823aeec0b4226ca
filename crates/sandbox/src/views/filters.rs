//! Row filters of the views: periods by month or fiscal year, a parent's filter carried onto
//! its details, facility marks.

use super::*;

pub(super) fn fiscal_year(yyyymm: i32) -> i32 {
    let (y, m) = (yyyymm / 100, yyyymm % 100);
    if m >= 4 { y } else { y - 1 }
}

pub(super) fn month_start(yyyymm: i32) -> DfResult<i32> {
    let d = CivilDate::new(yyyymm / 100, (yyyymm % 100) as u32, 1)
        .map_err(|e| datafusion::error::DataFusionError::Plan(e.to_string()))?;
    Ok(d.days_since_epoch())
}

/// The joined parent's record key in a detail table's view plan.
pub(super) const PARENT_KEY: &str = "__niji_parent_key";

/// A parent's row filter as a filter on its details' carried columns; None where it reads a
/// column the details do not carry (the parent is then joined).
pub(super) fn on_carried(filter: &Expr, parent: &Table, details: &DFSchemaRef) -> Option<Expr> {
    let mut followed = true;
    let rewritten = filter
        .clone()
        .transform(|e| {
            Ok(match e {
                Expr::Column(c) => {
                    let carried = if Some(c.name.as_str()) == parent.period_column.as_deref() {
                        PARENT_PERIOD
                    } else if c.name == "person_idx" {
                        PARENT_PERSON
                    } else {
                        ""
                    };
                    if carried.is_empty() || !details.has_column_with_unqualified_name(carried) {
                        followed = false;
                        Transformed::no(Expr::Column(c))
                    } else {
                        Transformed::yes(col(carried))
                    }
                }
                other => Transformed::no(other),
            })
        })
        .ok()?
        .data;
    followed.then_some(rewritten)
}

pub(crate) fn escape_like(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

pub(super) fn conjunction_or(exprs: impl Iterator<Item = Expr>) -> Expr {
    exprs.reduce(Expr::or).unwrap_or_else(|| lit(false))
}

/// What disclosure control counts a row's facility by: its stored mark, or, in a store
/// ingested before marks were, its code.
pub(super) fn facility_of(table: &Table, stored: &datafusion::common::DFSchema) -> Option<Expr> {
    let code = table.column_for(DisclosureRole::Facility)?;
    Some(
        if stored.has_column_with_unqualified_name(niji_store::FACILITY_MARK_COLUMN) {
            col(niji_store::FACILITY_MARK_COLUMN)
        } else {
            col(code.name.as_str())
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::{DataType, Field, Schema};
    use datafusion::common::DFSchema;

    fn receipts() -> Table {
        // Read at run time: a test binary reused from another checkout must find this one's files.
        let manifest = std::env::var_os("CARGO_MANIFEST_DIR").expect("tests run under cargo");
        let dir = Path::new(&manifest).join("../../catalog");
        let catalog = Catalog::load(&dir).expect("catalog");
        catalog.table("ndb", "receipts").expect("receipts").clone()
    }

    fn details(carried: &[&str]) -> DFSchemaRef {
        let mut fields = vec![Field::new("receipt_key", DataType::Utf8, true)];
        fields.extend(
            carried
                .iter()
                .map(|c| Field::new(*c, DataType::Int32, true)),
        );
        Arc::new(DFSchema::try_from(Schema::new(fields)).expect("schema"))
    }

    #[test]
    fn a_parents_filter_moves_onto_its_details_only_where_every_column_is_carried() {
        let parent = receipts();
        let period = col("claim_ym").between(lit(202201), lit(202206));
        let cohort = col("person_idx").gt(lit(3u32));
        let both = period.and(cohort.clone());
        let carried = details(&[PARENT_PERIOD, PARENT_PERSON]);
        assert_eq!(
            on_carried(&both, &parent, &carried),
            Some(
                col(PARENT_PERIOD)
                    .between(lit(202201), lit(202206))
                    .and(col(PARENT_PERSON).gt(lit(3u32)))
            )
        );
        // Details stored before the period was carried: the parent is joined.
        assert_eq!(on_carried(&both, &parent, &details(&[PARENT_PERSON])), None);
        assert!(on_carried(&cohort, &parent, &details(&[PARENT_PERSON])).is_some());
        // A column of the parent that no detail carries.
        let other = col("prefecture").eq(lit(13));
        assert_eq!(on_carried(&other, &parent, &carried), None);
    }
}
