use super::*;
use crate::strata::STRATA_FUNCTION;
use arrow::datatypes::{Field, Schema};
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;

/// The shadow of `sql` over a view of receipts as the shadow catalog has it: the person
/// index and the facility mark beside never-null points and doses and nullable days,
/// bounded (with `ceilings`) and exact.
async fn shadows(sql: &str, ceilings: &Ceilings) -> (Shadow, Shadow) {
    let bounds = Bounds {
        ceilings: ceilings.clone(),
        ..Bounds::default()
    };
    bounded_and_exact(sql, &bounds).await
}

/// The bounded and the exact shadow of `sql` over `receipts`, which have the same shape.
async fn bounded_and_exact(sql: &str, bounds: &Bounds) -> (Shadow, Shadow) {
    let schema = Arc::new(Schema::new(vec![
        Field::new("prefecture", DataType::Utf8, false),
        Field::new("setting", DataType::Int32, false),
        Field::new("points", DataType::Int64, false),
        Field::new("dose", DataType::Float64, false),
        Field::new("days", DataType::Int32, true),
        Field::new(PERSON, DataType::UInt32, true),
        Field::new(FACILITY, DataType::UInt32, false),
    ]));
    let ctx = SessionContext::new();
    let table = MemTable::try_new(schema, vec![vec![]]).expect("table");
    ctx.register_table("receipts", Arc::new(table))
        .expect("register");
    let plan = ctx.sql(sql).await.expect("plan").into_unoptimized_plan();
    let visible = plan.schema().as_arrow().clone();
    let bounded = shadow(plan.clone(), &visible, 3, Some(bounds)).expect("bounded shadow");
    let exact = shadow(plan, &visible, 3, None).expect("exact shadow");
    assert_same_shape(&bounded, &exact, sql);
    (bounded, exact)
}

/// Output review judges a result checked on the bounded shadow with the exact one: both
/// must have the same columns, and the same bookkeeping of where sets and sections are.
fn assert_same_shape(bounded: &Shadow, exact: &Shadow, sql: &str) {
    let fields = |s: &Shadow| -> Vec<(String, DataType, bool)> {
        s.plan
            .schema()
            .fields()
            .iter()
            .map(|f| (f.name().clone(), f.data_type().clone(), f.is_nullable()))
            .collect()
    };
    assert_eq!(fields(bounded), fields(exact), "{sql}");
    assert_eq!(bounded.person_sets, exact.person_sets, "{sql}");
    assert_eq!(bounded.contributions, exact.contributions, "{sql}");
    assert_eq!(bounded.cell_sets, exact.cell_sets, "{sql}");
}

fn uses(s: &Shadow, function: &str) -> bool {
    s.plan
        .display_indent()
        .to_string()
        .contains(&format!("{function}("))
}

fn uses_cells(s: &Shadow) -> bool {
    uses(s, crate::udaf::CELL_FUNCTION)
}

/// Ceilings stand in for per-person sums only where they bound them: a view's column,
/// widened at most, each of its rows once, and for a sum a column without zeros. A join,
/// which may repeat a row (a self-join sums each person's points several times, past their
/// stored total), a cast that rounds up (0.6 to 1) or a sum of a column with zeros (whose
/// persons with nothing to add would pass for contributors) keeps the pass over persons.
#[tokio::test]
async fn ceilings_stand_in_only_where_they_bound_every_person_s_sum() {
    let ceiling = |zeros| niji_store::Ceiling {
        largest: vec![100.0, 50.0],
        zeros,
    };
    let ceilings: Ceilings = [("points", false), ("setting", true), ("dose", false)]
        .into_iter()
        .map(|(column, zeros)| {
            let source = Source {
                table: "receipts".into(),
                column: column.into(),
            };
            (source, ceiling(zeros))
        })
        .collect();
    for (sql, ceiled) in [
        (
            "SELECT prefecture, sum(points) AS s, avg(points) AS m FROM receipts GROUP BY prefecture",
            true,
        ),
        ("SELECT sum(dose) AS s FROM receipts", true),
        (
            "SELECT prefecture, avg(setting) AS m FROM receipts GROUP BY prefecture",
            true,
        ),
        (
            "SELECT prefecture, sum(points) AS s FROM (SELECT * FROM receipts WHERE setting = 1 ORDER BY points LIMIT 10) t GROUP BY prefecture",
            true,
        ),
        (
            "SELECT prefecture, sum(setting) AS s FROM receipts GROUP BY prefecture",
            false,
        ),
        (
            "SELECT prefecture, sum(CAST(dose AS BIGINT)) AS s FROM receipts GROUP BY prefecture",
            false,
        ),
        (
            "SELECT r.prefecture, sum(r.points) AS s FROM receipts r JOIN receipts o ON r.prefecture = o.prefecture GROUP BY r.prefecture",
            false,
        ),
    ] {
        let (bounded, exact) = shadows(sql, &ceilings).await;
        assert_eq!(
            uses(&bounded, crate::udaf::BOUNDED_CELL_FUNCTION),
            ceiled,
            "{sql}"
        );
        assert!(!uses(&exact, crate::udaf::BOUNDED_CELL_FUNCTION), "{sql}");
        // Without ceilings, the same plan takes the pass over persons.
        let (uncapped, _) = shadows(sql, &Ceilings::new()).await;
        assert!(
            !uses(&uncapped, crate::udaf::BOUNDED_CELL_FUNCTION),
            "{sql}"
        );
    }
}

/// Strata stand in for the persons, facilities and totals of cells only where every cell is
/// a union of whole strata (one view, filtered and grouped on its stratified columns, no
/// limit below the aggregation) and its aggregates are counts of every row or magnitudes
/// the ceilings bound; elsewhere the rows are read. Either way the shadow has the exact
/// one's shape.
#[tokio::test]
async fn strata_stand_in_only_where_every_cell_is_a_union_of_strata() {
    let ceilings: Ceilings = ["points", "days"]
        .into_iter()
        .map(|column| {
            let source = Source {
                table: "receipts".into(),
                column: column.into(),
            };
            let ceiling = niji_store::Ceiling {
                largest: vec![100.0, 50.0],
                zeros: false,
            };
            (source, ceiling)
        })
        .collect();
    let values = arrow::record_batch::RecordBatch::try_from_iter([
        (
            "prefecture",
            Arc::new(arrow::array::StringArray::from(vec!["13", "01"])) as _,
        ),
        (
            "setting",
            Arc::new(arrow::array::Int32Array::from(vec![1, 2])) as _,
        ),
    ])
    .expect("values");
    let strata = Strata {
        values,
        persons: vec![Default::default(); 2],
        facilities: vec![Default::default(); 2],
        totals: [("points".to_string(), vec![0.0; 2])].into(),
        a_facility: vec![3, 4],
    };
    let bounds = Bounds {
        ceilings,
        strata: [("receipts".to_string(), Arc::new(strata))].into(),
        ..Bounds::default()
    };
    for (sql, stratified) in [
        (
            "SELECT prefecture, setting, count(*) AS n, sum(points) AS s FROM receipts GROUP BY prefecture, setting",
            true,
        ),
        (
            "SELECT substr(prefecture, 1, 1) AS p, count(*) AS n FROM receipts WHERE setting = 1 GROUP BY substr(prefecture, 1, 1)",
            true,
        ),
        (
            "SELECT count(*) AS n FROM receipts WHERE prefecture <> '13'",
            true,
        ),
        (
            "SELECT prefecture, count(*) AS n FROM (SELECT * FROM receipts WHERE setting = 2) t GROUP BY prefecture ORDER BY n DESC LIMIT 3",
            true,
        ),
        // A filter or a key that is not stratified splits strata.
        (
            "SELECT prefecture, count(*) AS n FROM receipts WHERE points > 10 GROUP BY prefecture",
            false,
        ),
        (
            "SELECT days, count(*) AS n FROM receipts GROUP BY days",
            false,
        ),
        (
            "SELECT prefecture, count(*) AS n FROM receipts GROUP BY prefecture, random() > 0.5",
            false,
        ),
        (
            "SELECT prefecture, count(*) AS n FROM receipts WHERE now() > to_timestamp('2020-01-01') GROUP BY prefecture",
            false,
        ),
        // So do a limit below the aggregation and a join.
        (
            "SELECT prefecture, count(*) AS n FROM (SELECT * FROM receipts LIMIT 10) t GROUP BY prefecture",
            false,
        ),
        (
            "SELECT r.prefecture, count(*) AS n FROM receipts r JOIN receipts o ON r.setting = o.setting GROUP BY r.prefecture",
            false,
        ),
        // Aggregates whose persons are not every row's, or a magnitude without strata
        // totals or ceilings, or a minimum.
        (
            "SELECT prefecture, count(*) FILTER (WHERE setting = 1) AS n FROM receipts GROUP BY prefecture",
            false,
        ),
        (
            "SELECT prefecture, count(days) AS n FROM receipts GROUP BY prefecture",
            false,
        ),
        (
            "SELECT prefecture, sum(days) AS s FROM receipts GROUP BY prefecture",
            false,
        ),
        (
            "SELECT prefecture, sum(dose) AS s FROM receipts GROUP BY prefecture",
            false,
        ),
        (
            "SELECT prefecture, min(points) AS lo FROM receipts GROUP BY prefecture",
            false,
        ),
    ] {
        let (bounded, exact) = bounded_and_exact(sql, &bounds).await;
        assert_eq!(uses(&bounded, STRATA_FUNCTION), stratified, "{sql}");
        assert_eq!(bounded.stratified, usize::from(stratified), "{sql}");
        assert!(!uses(&exact, STRATA_FUNCTION), "{sql}");
    }
}

/// Groups of one person reading all of the person's rows take the person's facility from
/// the strata (no row's facility read); a filter between them and the view, or a table
/// without strata, leaves them reading it. Either way the shadow has the exact one's shape.
#[tokio::test]
async fn a_person_s_facility_is_looked_up_where_the_group_reads_all_of_the_person_s_rows() {
    let ctx = SessionContext::new();
    let schema = Arc::new(Schema::new(vec![
        Field::new("prefecture", DataType::Utf8, false),
        Field::new(niji_catalog::PSEUDONYM_COLUMN, DataType::UInt64, true),
        Field::new(PERSON, DataType::UInt32, true),
        Field::new(FACILITY, DataType::UInt32, true),
    ]));
    let table = MemTable::try_new(schema, vec![vec![]]).expect("table");
    ctx.register_table("receipts", Arc::new(table))
        .expect("register");
    let values = arrow::record_batch::RecordBatch::try_from_iter([(
        "prefecture",
        Arc::new(arrow::array::StringArray::from(vec!["13"])) as _,
    )])
    .expect("values");
    let strata = Strata {
        values,
        persons: vec![Default::default()],
        facilities: vec![Default::default()],
        totals: BTreeMap::new(),
        a_facility: vec![3],
    };
    let with_strata = Bounds {
        strata: [("receipts".to_string(), Arc::new(strata))].into(),
        pseudonyms: [("receipts".to_string(), test_pseudonyms())].into(),
        ..Bounds::default()
    };
    let per_person = "SELECT n, count(*) AS persons FROM (SELECT pid, count(*) AS n FROM receipts GROUP BY pid) t GROUP BY n";
    for (sql, bounds, looked_up) in [
        (per_person, &with_strata, true),
        (
            "SELECT n, count(*) AS persons FROM (SELECT pid, count(*) AS n FROM receipts WHERE prefecture = '13' GROUP BY pid) t GROUP BY n",
            &with_strata,
            false,
        ),
        (per_person, &Bounds::default(), false),
        (
            "SELECT prefecture, count(*) AS persons FROM (SELECT pid, prefecture, count(*) AS n FROM receipts GROUP BY pid, prefecture) t GROUP BY prefecture",
            &with_strata,
            false,
        ),
    ] {
        let plan = ctx.sql(sql).await.expect("plan").into_unoptimized_plan();
        let visible = plan.schema().as_arrow().clone();
        let bounded = shadow(plan.clone(), &visible, 3, Some(bounds)).expect("bounded");
        let exact = shadow(plan, &visible, 3, None).expect("exact");
        assert_same_shape(&bounded, &exact, sql);
        assert!(bounded.facilities_bounded, "{sql}");
        assert_eq!(
            uses(&bounded, crate::strata::FACILITY_OF_FUNCTION),
            looked_up,
            "{sql}"
        );
        assert_eq!(
            uses(&bounded, crate::udaf::A_FACILITY_FUNCTION),
            !looked_up,
            "{sql}"
        );
    }
}

/// A stand-in for a project's pseudonym of a person, one to one with persons.
fn test_pseudonym(person: u32) -> u64 {
    7919 * u64::from(person) + 1
}

/// [`test_pseudonym`] as the view's pseudonym function.
fn test_pseudonyms() -> datafusion::logical_expr::ScalarUDF {
    use arrow::array::{Array, UInt32Array, UInt64Array};
    use datafusion::logical_expr::{ColumnarValue, create_udf};
    create_udf(
        niji_catalog::PSEUDONYM_FUNCTION,
        vec![DataType::UInt32],
        DataType::UInt64,
        Volatility::Immutable,
        Arc::new(|args: &[ColumnarValue]| {
            let persons = ColumnarValue::values_to_arrays(args)?;
            let persons = persons[0].as_any().downcast_ref::<UInt32Array>().cloned();
            let persons = persons.expect("person indexes");
            let pseudonyms: UInt64Array = persons.iter().map(|p| p.map(test_pseudonym)).collect();
            Ok(ColumnarValue::Array(Arc::new(pseudonyms)))
        }),
    )
}

/// An aggregation grouped by the pseudonym groups by the person where the view's pseudonyms
/// are known, and maps each group's person to its pseudonym after: run on rows, it has the
/// exact shadow's groups, values and person sets, the pseudonyms it shows included (one
/// group for the rows without a person, as the pseudonym's nulls make), and outer
/// aggregations still see the pseudonym in what it maps.
#[tokio::test]
async fn grouped_by_the_person_a_shadow_has_the_groups_of_the_pseudonym() {
    use arrow::array::{StringArray, UInt32Array, UInt64Array};
    let persons: Vec<Option<u32>> = [0, 0, 1, 2, 2, 2, 3, 4, 4, 5]
        .into_iter()
        .map(Some)
        .chain([None, None])
        .collect();
    let prefectures: Vec<&str> = (0..persons.len())
        .map(|i| if i % 3 == 0 { "13" } else { "27" })
        .collect();
    let pseudonyms: UInt64Array = persons.iter().map(|p| p.map(test_pseudonym)).collect();
    let facilities: UInt32Array = (0..persons.len() as u32).map(|i| Some(i % 4)).collect();
    let rows = arrow::record_batch::RecordBatch::try_from_iter([
        ("prefecture", Arc::new(StringArray::from(prefectures)) as _),
        (niji_catalog::PSEUDONYM_COLUMN, Arc::new(pseudonyms) as _),
        (PERSON, Arc::new(UInt32Array::from(persons)) as _),
        (FACILITY, Arc::new(facilities) as _),
    ])
    .expect("rows");
    let ctx = SessionContext::new();
    let table = MemTable::try_new(rows.schema(), vec![vec![rows]]).expect("table");
    ctx.register_table("receipts", Arc::new(table))
        .expect("register");
    let bounds = Bounds {
        pseudonyms: [("receipts".to_string(), test_pseudonyms())].into(),
        ..Bounds::default()
    };
    // Whether every aggregation grouped by the pseudonym is regrouped: one over another's
    // groups reads persons that are not a view's and keeps them as values.
    for (sql, every_one) in [
        (
            "SELECT n, count(*) AS persons FROM (SELECT pid, count(*) AS n FROM receipts GROUP BY pid) t GROUP BY n ORDER BY n",
            true,
        ),
        (
            "SELECT pid, count(*) AS n FROM receipts GROUP BY pid ORDER BY pid",
            true,
        ),
        (
            "SELECT prefecture, count(*) AS persons FROM (SELECT pid, prefecture, count(*) AS n FROM receipts GROUP BY pid, prefecture) t GROUP BY prefecture ORDER BY prefecture",
            true,
        ),
        (
            "SELECT count(DISTINCT pid) AS persons, sum(n) AS receipts FROM (SELECT pid, count(*) AS n FROM receipts GROUP BY pid) t",
            true,
        ),
        (
            "SELECT m, count(*) AS persons FROM (SELECT pid, max(n) AS m FROM (SELECT pid, prefecture, count(*) AS n FROM receipts GROUP BY pid, prefecture) u GROUP BY pid) t GROUP BY m ORDER BY m",
            false,
        ),
    ] {
        let plan = ctx.sql(sql).await.expect("plan").into_unoptimized_plan();
        let visible = plan.schema().as_arrow().clone();
        let bounded = shadow(plan.clone(), &visible, 3, Some(&bounds)).expect("bounded");
        let exact = shadow(plan, &visible, 3, None).expect("exact");
        // (An outermost group of one person hands on one facility, not a set: its shape
        // is the exact shadow's but for that.)
        assert_eq!(bounded.person_sets, exact.person_sets, "{sql}");
        assert!(uses(&bounded, niji_catalog::PSEUDONYM_FUNCTION), "{sql}");
        assert_eq!(
            uses(&bounded, crate::udaf::PERSON_FUNCTION),
            !every_one,
            "{sql}"
        );
        assert!(uses(&exact, crate::udaf::PERSON_FUNCTION), "{sql}");
        let run = |s: &Shadow| {
            let df = ctx.execute_logical_plan(s.plan.clone());
            async move {
                let batches = df.await.expect("shadow plan").collect().await;
                let batches = batches.expect("shadow result");
                let schema = batches[0].schema();
                arrow::compute::concat_batches(&schema, &batches).expect("one batch")
            }
        };
        let (regrouped, grouped) = (run(&bounded).await, run(&exact).await);
        let compared: Vec<usize> = (0..visible.fields().len())
            .chain(exact.person_sets.iter().copied())
            .collect();
        for i in compared {
            assert_eq!(
                regrouped.column(i),
                grouped.column(i),
                "column {i} of {sql}"
            );
        }
    }
}

/// A second argument that is not a constant chooses rows the shadow does not follow
/// (`count(x, y)` counts rows where both are not null), and a sum of distinct values is not
/// the sum of its contributions: neither has a shadow, bounded or exact, so the result is
/// held. A constant beside one column (`count(1, x)`, `percentile_cont`'s fraction) chooses
/// nothing: the column's rows are followed.
#[tokio::test]
async fn aggregates_reading_rows_unseen_have_no_shadow() {
    let ctx = SessionContext::new();
    let schema = Arc::new(Schema::new(vec![
        Field::new("prefecture", DataType::Utf8, false),
        Field::new("points", DataType::Int64, false),
        Field::new(PERSON, DataType::UInt32, true),
    ]));
    let table = MemTable::try_new(schema, vec![vec![]]).expect("table");
    ctx.register_table("receipts", Arc::new(table))
        .expect("register");
    for sql in [
        "SELECT prefecture, count(points, CASE WHEN points > 100 THEN 1 END) AS n FROM receipts GROUP BY prefecture",
        "SELECT prefecture, sum(DISTINCT points) AS s FROM receipts GROUP BY prefecture",
    ] {
        let plan = ctx.sql(sql).await.expect("plan").into_unoptimized_plan();
        let visible = plan.schema().as_arrow().clone();
        assert!(shadow(plan.clone(), &visible, 3, None).is_err(), "{sql}");
        let bounds = Bounds::default();
        assert!(shadow(plan, &visible, 3, Some(&bounds)).is_err(), "{sql}");
    }
    let sql = "SELECT prefecture, count(1, CASE WHEN points > 100 THEN 1 END) AS n FROM receipts GROUP BY prefecture";
    let plan = ctx.sql(sql).await.expect("plan").into_unoptimized_plan();
    let visible = plan.schema().as_arrow().clone();
    let followed = shadow(plan, &visible, 3, None).expect("a shadow");
    // The rows counted (points over 100) have a person set of their own.
    assert_eq!(followed.cell_sets.len(), 1, "{sql}");
}

/// Cells only stand in for plain, never-null magnitudes without a FILTER, and keep the
/// exact shadow's shape.
#[tokio::test]
async fn cells_keep_the_exact_shadow_s_shape_and_only_where_they_are_exact() {
    for (sql, cells) in [
        (
            "SELECT prefecture, sum(points) AS s, avg(points) AS m FROM receipts GROUP BY prefecture",
            true,
        ),
        ("SELECT sum(points) AS s FROM receipts", true),
        (
            "SELECT prefecture, avg(days) AS d FROM receipts GROUP BY prefecture",
            false,
        ),
        (
            "SELECT prefecture, sum(points) FILTER (WHERE setting = 1) AS s FROM receipts GROUP BY prefecture",
            false,
        ),
        (
            "SELECT prefecture, sum(CASE WHEN setting = 1 THEN points ELSE 0 END) AS s FROM receipts GROUP BY prefecture",
            false,
        ),
    ] {
        let (bounded, exact) = shadows(sql, &Ceilings::new()).await;
        assert_eq!(uses_cells(&bounded), cells, "{sql}");
        assert!(!uses_cells(&exact), "{sql}");
    }
}
