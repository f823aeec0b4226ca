//! The rewrite itself: every aggregate gains, in the same pass, the persons and facilities
//! behind its groups and its persons' contributions.

use super::*;

/// Magnitudes sharing a person column and a filter, with their aggregates' names.
pub(crate) type Magnitudes = ((Column, Option<Box<Expr>>), Vec<(Expr, String)>);

pub(crate) struct Rewrite<'a> {
    pub(crate) set: Arc<AggregateUDF>,
    /// The person of a group grouped by the pseudonym.
    pub(crate) person: Arc<AggregateUDF>,
    /// Facilities are counted up to the largest minimum a rule asks for.
    pub(crate) facilities: Arc<AggregateUDF>,
    /// One facility of a group of one person (None: facilities are counted exactly).
    pub(crate) a_facility: Option<Arc<AggregateUDF>>,
    /// Whether `a_facility` was used.
    pub(crate) facilities_bounded: bool,
    pub(crate) contributions: Arc<AggregateUDF>,
    /// Sets and contributions of one person column in one pass, with bounds on the largest
    /// contributions (None: contributions are kept exactly, per person).
    pub(crate) cell: Option<Arc<AggregateUDF>>,
    /// Where bounded, the ceilings of view columns, which stand in for contributions summed
    /// per person, and the strata of views (empty where exact).
    pub(crate) bounds: &'a Bounds,
    pub(crate) ceiled: usize,
    pub(crate) stratified: usize,
    pub(crate) facility_cap: usize,
    pub(crate) next: usize,
    /// Hidden output name → the aggregates (by name) it belongs to, in its sections' order.
    pub(crate) names: BTreeMap<String, Vec<String>>,
    pub(crate) sums: BTreeSet<String>,
}

/// What [`Rewrite::group_sets`] found.
pub(crate) struct GroupSets {
    persons: Vec<(Column, DataType)>,
    sets: Vec<(Column, usize, String)>,
    looked_up: Vec<(usize, Expr)>,
}

pub(crate) fn hidden_columns(plan: &LogicalPlan) -> Vec<(Column, DataType)> {
    plan.schema()
        .iter()
        .filter(|(_, f)| is_hidden(f.name()))
        .map(|(q, f)| (Column::new(q.cloned(), f.name()), f.data_type().clone()))
        .collect()
}

pub(crate) fn call(udaf: &Arc<AggregateUDF>, args: Vec<Expr>, filter: Option<Box<Expr>>) -> Expr {
    Expr::AggregateFunction(AggregateFunction::new_udf(
        udaf.clone(),
        args,
        false,
        filter,
        Vec::new(),
        None,
    ))
}

impl Rewrite<'_> {
    pub(crate) fn fresh(&mut self, prefix: &str) -> String {
        self.next += 1;
        format!("{prefix}_{}", self.next)
    }

    pub(crate) fn node(&mut self, node: LogicalPlan) -> Result<LogicalPlan, Unsupported> {
        Ok(match node {
            LogicalPlan::Projection(p) => {
                let mut exprs = p.expr;
                for (column, _) in hidden_columns(&p.input) {
                    if exprs
                        .iter()
                        .any(|e| matches!(e, Expr::Column(c) if *c == column))
                    {
                        continue;
                    }
                    // Person and facility columns of several sources meet in joins: each gets
                    // a name of its own. Per-aggregate columns are unique already.
                    let name = if column.name.starts_with(PERSON) {
                        self.fresh(PERSON)
                    } else if column.name.starts_with(FACILITY) {
                        self.fresh(FACILITY)
                    } else {
                        column.name.clone()
                    };
                    exprs.push(Expr::Column(column).alias(name));
                }
                LogicalPlan::Projection(Projection::try_new(exprs, p.input)?)
            }
            LogicalPlan::Aggregate(a) => self.aggregate(a)?,
            plan @ (LogicalPlan::Distinct(_)
            | LogicalPlan::Union(_)
            | LogicalPlan::Window(_)
            | LogicalPlan::Unnest(_)
            | LogicalPlan::Extension(_)
            | LogicalPlan::RecursiveQuery(_)) => return Err(unsupported_node(&plan)),
            other => other.recompute_schema()?,
        })
    }

    /// The set of persons behind `aggregate` (`f`) alone: those of the rows its filter keeps
    /// and `reads` (every such row when None) selects.
    pub(crate) fn own_persons(
        &mut self,
        aggregate: &str,
        person: &Column,
        ty: &DataType,
        reads: Option<Expr>,
        f: &AggregateFunction,
    ) -> Result<Expr, Unsupported> {
        let behind = match reads {
            Some(reads) => when(reads, Expr::Column(person.clone()))
                .otherwise(lit(ScalarValue::try_from(ty)?))?,
            None => Expr::Column(person.clone()),
        };
        let name = self.fresh(CELL_SET);
        self.names.insert(name.clone(), vec![aggregate.to_string()]);
        Ok(call(&self.set, vec![behind], f.params.filter.clone()).alias(name))
    }

    /// The ceilings of `values` (the magnitudes of `aggregates` over `input`, whose persons are
    /// `person`), where every one has a ceiling that bounds it: each is a column of the view
    /// `person` is of, widened at most, reaching the aggregation once per row of the view, and
    /// a sum's column has no zero (whose persons would contribute nothing and still be in the
    /// group's set).
    pub(crate) fn ceilings_of(
        &self,
        input: &LogicalPlan,
        person: &Column,
        values: &[Expr],
        aggregates: &[String],
    ) -> Option<Vec<Vec<f64>>> {
        if self.bounds.ceilings.is_empty() {
            return None;
        }
        let schema = input.schema();
        let (person_view, person_column) =
            view_column(input, schema.index_of_column(person).ok()?)?;
        if person_column != PERSON {
            return None;
        }
        values
            .iter()
            .zip(aggregates)
            .map(|(v, aggregate)| {
                let column = widened_column(v, schema)?;
                let (view, name) = view_column(input, schema.index_of_column(column).ok()?)?;
                if !std::ptr::eq(view, person_view) {
                    return None;
                }
                let source = Source {
                    table: table_name(&view.table_name),
                    column: name.to_string(),
                };
                let ceiling = self.bounds.ceilings.get(&source)?;
                (!ceiling.zeros || !self.sums.contains(aggregate)).then(|| ceiling.largest.clone())
            })
            .collect()
    }

    /// Where `a` is grouped by the pseudonym of `person`'s view, read from the same rows as
    /// `person`: which group key it is, that key's column, and the view's pseudonym function
    /// (see [`Bounds::pseudonyms`]).
    pub(crate) fn pseudonym_key(
        &self,
        a: &Aggregate,
        person: &Column,
    ) -> Option<(usize, Column, datafusion::logical_expr::ScalarUDF)> {
        let input = a.input.as_ref();
        let view = hidden_column_of(input, person, PERSON)?;
        let (key, column) = a.group_expr.iter().enumerate().find_map(|(key, g)| {
            let Expr::Column(c) = g else { return None };
            let index = input.schema().index_of_column(c).ok()?;
            matches!(origin(input, index), Some((LogicalPlan::TableScan(t), i))
                if std::ptr::eq(t, view)
                    && t.projected_schema.field(i).name() == niji_catalog::PSEUDONYM_COLUMN)
            .then(|| (key, c.clone()))
        })?;
        let udf = self.bounds.pseudonyms.get(&table_name(&view.table_name))?;
        Some((key, column, udf.clone()))
    }

    /// The strata of the view of `facility` where a group of one `person` reading it reads
    /// all of the person's rows (grouped by the pseudonym alone, the view's rows all of the
    /// table's, and nothing between filtering them), so that a facility of the person's stored
    /// rows is one of the group's.
    pub(crate) fn facilities_of_persons(
        &self,
        input: &LogicalPlan,
        group_keys: usize,
        person: &Column,
        facility: &Column,
    ) -> Option<Arc<Strata>> {
        let view = hidden_column_of(input, facility, FACILITY)?;
        let strata = self.bounds.strata.get(&table_name(&view.table_name))?;
        // Another key beside the pseudonym leaves a group some of the person's rows only.
        if group_keys != 1 {
            return None;
        }
        let (filters, scan) = strata_filters(input, &BTreeSet::new())?;
        let same_view =
            hidden_column_of(input, person, PERSON).is_some_and(|v| std::ptr::eq(v, view));
        (same_view
            && filters.is_empty()
            && std::ptr::eq(scan, view)
            && !strata.a_facility.is_empty())
        .then(|| strata.clone())
    }

    /// `a` with its cells taken from the strata of the view it reads, where every cell is a
    /// union of whole strata and its checks need nothing else: one view, read through nodes
    /// that pass rows unchanged, filtered and grouped on stratified columns only (every row of
    /// a stratum then falls in one cell, or none), and aggregates that are counts of every row
    /// or magnitudes whose contributions the ceilings bound. Which strata a cell has, its keys
    /// and the filters tell, computed on the strata's values; the aggregation itself is the
    /// researcher's, unchanged. None: `a` is rewritten as usual.
    pub(crate) fn stratified_aggregate(
        &mut self,
        a: &Aggregate,
    ) -> Result<Option<LogicalPlan>, Unsupported> {
        if self.bounds.strata.is_empty() {
            return Ok(None);
        }
        let input = a.input.as_ref();
        let schema = input.schema();
        let hidden = hidden_columns(input);
        let of = |prefix: &str| -> Vec<&Column> {
            hidden
                .iter()
                .filter(|(c, _)| c.name.starts_with(prefix))
                .map(|(c, _)| c)
                .collect()
        };
        let (persons, facilities) = (of(PERSON), of(FACILITY));
        let [person] = persons.as_slice() else {
            return Ok(None);
        };
        if facilities.len() > 1 || a.group_expr.iter().any(|g| is_pseudonym_of(input, g)) {
            return Ok(None);
        }
        let Some(view) = hidden_column_of(input, person, PERSON) else {
            return Ok(None);
        };
        let Some(strata) = self
            .bounds
            .strata
            .get(&table_name(&view.table_name))
            .cloned()
        else {
            return Ok(None);
        };
        let same_view = |c: &Column, name: &str| {
            hidden_column_of(input, c, name).is_some_and(|v| std::ptr::eq(v, view))
        };
        if !facilities.iter().all(|f| same_view(f, FACILITY)) {
            return Ok(None);
        }
        let columns = strata.columns();
        let stratified: BTreeSet<&str> = columns.iter().map(String::as_str).collect();
        let Some((filters, scan)) = strata_filters(input, &stratified) else {
            return Ok(None);
        };
        let Some(keys) = a
            .group_expr
            .iter()
            .map(|g| on_strata(input, g, &stratified))
            .collect::<Option<Vec<_>>>()
        else {
            return Ok(None);
        };
        if !std::ptr::eq(scan, view) {
            return Ok(None);
        }
        let mut values = Vec::new();
        let mut aggregates = Vec::new();
        for expr in &a.aggr_expr {
            let Some(f) = aggregate_of(expr) else {
                return Ok(None);
            };
            if f.params.filter.is_some() || f.params.args.len() > 1 {
                return Ok(None);
            }
            let name = expr.schema_name().to_string();
            let value = f
                .params
                .args
                .first()
                .filter(|e| !matches!(e, Expr::Literal(..)))
                .cloned();
            match classify(f.func.name()) {
                Role::Count if value.as_ref().is_none_or(|v| is_pseudonym_of(input, v)) => {}
                Role::Magnitude
                    if !f.params.distinct
                        && value.as_ref().is_some_and(|v| {
                            is_plain(v) && v.nullable(schema.as_ref()).is_ok_and(|n| !n)
                        }) =>
                {
                    if let Some(v) = value {
                        values.push(cast(v, DataType::Float64));
                    }
                    if f.func.name() == "sum" {
                        self.sums.insert(name.clone());
                    }
                    aggregates.push(name);
                }
                _ => return Ok(None),
            }
        }
        let mut cells = Vec::new();
        if !values.is_empty() {
            let Some(ceilings) = self.ceilings_of(input, person, &values, &aggregates) else {
                return Ok(None);
            };
            for (v, largest) in values.iter().zip(ceilings) {
                let column = widened_column(v, schema)
                    .and_then(|c| schema.index_of_column(c).ok())
                    .and_then(|i| view_column(input, i));
                match column {
                    Some((_, name)) if strata.totals.contains_key(name) => {
                        cells.push((name.to_string(), largest));
                    }
                    _ => return Ok(None),
                }
            }
        }
        let aggregate = LogicalPlan::Aggregate(a.clone());
        let outputs = aggregate.schema().columns();
        let group_columns: Vec<Expr> = outputs
            .iter()
            .take(a.group_expr.len())
            .cloned()
            .map(Expr::Column)
            .collect();
        let key_types: Vec<DataType> = aggregate
            .schema()
            .fields()
            .iter()
            .take(a.group_expr.len())
            .map(|f| f.data_type().clone())
            .collect();
        let Some(keyed) = KeyedStrata::compute(
            &strata,
            view.source.schema().as_ref(),
            conjunction(filters),
            keys,
            &key_types,
        ) else {
            return Ok(None);
        };
        // The hidden columns the exact shadow has, named and ordered as it names and orders
        // them (output review reads a result by the exact shadow): the sets in the order of
        // their columns, then the contributions.
        let mut hidden_out: Vec<(&'static str, String)> = Vec::new();
        for (column, _) in &hidden {
            if column == *person {
                hidden_out.push((CELL_PERSONS, self.fresh(PERSON)));
            } else if column.name.starts_with(FACILITY) {
                hidden_out.push((CELL_FACILITIES, self.fresh(FACILITY)));
            }
        }
        if !values.is_empty() {
            let name = self.fresh(CONTRIBUTION);
            self.ceiled += values.len();
            self.names.insert(name.clone(), aggregates);
            hidden_out.push((CELL_CONTRIBUTIONS, name));
        }
        let strata_name = hidden_out
            .iter()
            .find(|(field, _)| *field == CELL_PERSONS)
            .map(|(_, name)| name.replacen(PERSON, STRATA, 1))
            .ok_or_else(|| unsupported("a stratified aggregation without its person set"))?;
        let udf = strata_udf(
            StrataCells {
                strata,
                facility_cap: self.facility_cap.clamp(1, MAX_FIRST_MEMBERS),
                values: cells,
            },
            keyed,
        );
        let keys = if group_columns.is_empty() {
            vec![lit(true)]
        } else {
            group_columns
        };
        // The cells in a projection of their own, read by field after: each is built once.
        let with_cells: Vec<Expr> = outputs
            .iter()
            .cloned()
            .map(Expr::Column)
            .chain([udf.call(keys).alias(&strata_name)])
            .collect();
        let with_cells =
            LogicalPlan::Projection(Projection::try_new(with_cells, Arc::new(aggregate))?);
        let cell = Expr::Column(Column::new_unqualified(&strata_name));
        let exprs: Vec<Expr> =
            outputs
                .into_iter()
                .map(Expr::Column)
                .chain(hidden_out.into_iter().map(|(field, name)| {
                    cell_field_udf(field).call(vec![cell.clone()]).alias(name)
                }))
                .collect();
        self.stratified += 1;
        Ok(Some(LogicalPlan::Projection(Projection::try_new(
            exprs,
            Arc::new(with_cells),
        )?)))
    }

    pub(crate) fn aggregate(&mut self, a: Aggregate) -> Result<LogicalPlan, Unsupported> {
        refuse_grouping_sets(&a)?;
        if let Some(stratified) = self.stratified_aggregate(&a)? {
            return Ok(stratified);
        }
        let mut aggr = a.aggr_expr.clone();
        let hidden = hidden_columns(&a.input);
        // Grouped by the pseudonym of the only person source: each group is one person, whose
        // index goes on as a value of the group, not as a set per group.
        let person_columns: Vec<&(Column, DataType)> = hidden
            .iter()
            .filter(|(c, _)| c.name.starts_with(PERSON))
            .collect();
        let per_person = match person_columns.as_slice() {
            [(person, DataType::UInt32)] => a
                .group_expr
                .iter()
                .any(|g| is_pseudonym_of(&a.input, g))
                .then(|| person.clone()),
            _ => None,
        };
        // Grouped by the person in place of the pseudonym, which is mapped from it after.
        let regrouped = per_person
            .as_ref()
            .and_then(|person| self.pseudonym_key(&a, person));
        let mut group_expr = a.group_expr.clone();
        if let (Some((key, _, _)), Some(person)) = (&regrouped, &per_person) {
            group_expr[*key] = Expr::Column(person.clone());
        }
        let GroupSets {
            persons,
            sets,
            looked_up,
        } = self.group_sets(&a, &mut aggr, per_person.as_ref(), regrouped.is_some());
        let magnitudes = self.aggregate_persons(&a, &mut aggr, &persons)?;
        let (cells, tail) = self.contribution_columns(&a, &mut aggr, magnitudes, &sets);
        let groups = a.group_expr.len();
        let aggregates = aggr.len();
        let mut aggregate = LogicalPlan::Aggregate(Aggregate::try_new(a.input, group_expr, aggr)?);
        if !looked_up.is_empty() {
            let mut columns = aggregate.schema().columns().into_iter().map(Expr::Column);
            let mut exprs: Vec<Expr> = columns.by_ref().take(groups).collect();
            if let Some((key, researchers_key, pseudonym)) = regrouped {
                exprs[key] = pseudonym
                    .call(vec![exprs[key].clone()])
                    .alias_qualified(researchers_key.relation, researchers_key.name);
            }
            let mut looked_up = looked_up.into_iter().peekable();
            for at in 0..=aggregates {
                while let Some((_, e)) = looked_up.next_if(|(before, _)| *before == at) {
                    exprs.push(e);
                }
                exprs.extend(columns.next());
            }
            aggregate = LogicalPlan::Projection(Projection::try_new(exprs, Arc::new(aggregate))?);
        }
        if cells.is_empty() {
            return Ok(aggregate);
        }
        let tail_names: BTreeSet<String> = tail.iter().map(|(name, _)| name.clone()).collect();
        let exprs: Vec<Expr> = aggregate
            .schema()
            .columns()
            .into_iter()
            .filter(|column| !tail_names.contains(&column.name))
            .map(|column| match cells.get(&column.name) {
                Some(set) => cell_field_udf(CELL_PERSONS)
                    .call(vec![Expr::Column(column)])
                    .alias(set),
                None => Expr::Column(column),
            })
            .chain(tail.into_iter().map(|(_, expr)| expr))
            .collect();
        Ok(LogicalPlan::Projection(Projection::try_new(
            exprs,
            Arc::new(aggregate),
        )?))
    }

    /// The sets of each group's persons and facilities, appended to `aggr`; grouped by one
    /// person, that person and one of their facilities instead. Returns the person columns,
    /// where each person column's set is in `aggr`, and what is looked up after the
    /// aggregation (each before the aggregate it precedes in `aggr`).
    fn group_sets(
        &mut self,
        a: &Aggregate,
        aggr: &mut Vec<Expr>,
        per_person: Option<&Column>,
        regrouped: bool,
    ) -> GroupSets {
        let mut persons = Vec::new();
        // Where each person column's set is in `aggr`, and its name.
        let mut sets: Vec<(Column, usize, String)> = Vec::new();
        // Columns computed from the aggregation's own (each before the aggregate it precedes
        // in `aggr`): a regrouped aggregation's person, a person's facility, looked up.
        let mut looked_up: Vec<(usize, Expr)> = Vec::new();
        for (column, ty) in hidden_columns(&a.input) {
            if per_person == Some(&column) {
                persons.push((column.clone(), ty));
                let name = column.name.clone();
                if regrouped {
                    looked_up.push((aggr.len(), Expr::Column(column).alias(name)));
                } else {
                    aggr.push(call(&self.person, vec![Expr::Column(column)], None).alias(name));
                }
                continue;
            }
            let indexes = ty == DataType::UInt32;
            let (prefix, udaf) = if column.name.starts_with(PERSON) {
                persons.push((column.clone(), ty));
                (PERSON, self.set.clone())
            } else if column.name.starts_with(FACILITY) {
                // A group of one person is never a released cell (its person shows, and
                // the result is held), only part of an outer one.
                let one = match (per_person, &ty) {
                    (Some(_), DataType::UInt32) => self.a_facility.clone(),
                    _ => None,
                };
                match (one, per_person) {
                    (Some(one), Some(person)) => {
                        self.facilities_bounded = true;
                        if let Some(strata) = self.facilities_of_persons(
                            &a.input,
                            a.group_expr.len(),
                            person,
                            &column,
                        ) {
                            let person = Expr::Column(Column::new_unqualified(&person.name));
                            let facility = facility_of_udf(strata).call(vec![person]);
                            looked_up.push((aggr.len(), facility.alias(self.fresh(FACILITY))));
                            continue;
                        }
                        (FACILITY, one)
                    }
                    _ => (FACILITY, self.facilities.clone()),
                }
            } else {
                // An inner aggregate's per-aggregate columns end here.
                continue;
            };
            let name = self.fresh(prefix);
            if prefix == PERSON && indexes {
                sets.push((column.clone(), aggr.len(), name.clone()));
            }
            aggr.push(call(&udaf, vec![Expr::Column(column)], None).alias(name));
        }
        GroupSets {
            persons,
            sets,
            looked_up,
        }
    }

    /// Per aggregate of the researcher's, the persons it rests on where they may be fewer than
    /// the group's (appended to `aggr`), and the magnitudes whose contributions are summed per
    /// person.
    fn aggregate_persons(
        &mut self,
        a: &Aggregate,
        aggr: &mut Vec<Expr>,
        persons: &[(Column, DataType)],
    ) -> Result<Vec<Magnitudes>, Unsupported> {
        let mut magnitudes: Vec<Magnitudes> = Vec::new();
        for expr in &a.aggr_expr {
            let Some(f) = aggregate_of(expr) else {
                return Err(unsupported("aggregate expression"));
            };
            let aggregate = expr.schema_name().to_string();
            let role = classify(f.func.name());
            // One argument's rows are followed: a second one that is not a constant (count(x, y)
            // counts the rows where both are not null) would choose rows unseen. A constant
            // (the fraction of percentile_cont) chooses none.
            let read: Vec<&Expr> = f
                .params
                .args
                .iter()
                .filter(|e| !matches!(e, Expr::Literal(..)))
                .collect();
            if read.len() > 1 {
                return Err(unsupported(format!(
                    "{}() of several arguments: the rows it reads cannot be told",
                    f.func.name()
                )));
            }
            // Contributions are summed over rows; a sum of distinct values is not that sum.
            if role == Role::Magnitude && f.params.distinct {
                return Err(unsupported(format!(
                    "{}(DISTINCT …): its contributions cannot be bounded",
                    f.func.name()
                )));
            }
            let value = read
                .first()
                .copied()
                .or(f.params.order_by.first().map(|s| &s.expr))
                .filter(|e| !matches!(e, Expr::Literal(..)))
                .cloned();
            for (person, ty) in persons {
                let contributions = role == Role::Magnitude && *ty == DataType::UInt32;
                if contributions && let Some(v) = &value {
                    // Per-person sums: also the persons this magnitude rests on (those
                    // contributing anything), so no set of its own is needed. Magnitudes of one
                    // person column and filter share one pass over a per-person map.
                    let key = (person.clone(), f.params.filter.clone());
                    let at = match magnitudes.iter().position(|(k, _)| *k == key) {
                        Some(at) => at,
                        None => {
                            magnitudes.push((key, Vec::new()));
                            magnitudes.len() - 1
                        }
                    };
                    magnitudes[at]
                        .1
                        .push((cast(v.clone(), DataType::Float64), aggregate.clone()));
                    if f.func.name() == "sum" {
                        self.sums.insert(aggregate.clone());
                    }
                    // A plain column's nulls add nothing, so the group's persons serve; an
                    // expression (a CASE with ELSE 0) may leave persons out by value.
                    if !is_plain(v) {
                        let reads = rows_read(v, true);
                        aggr.push(self.own_persons(&aggregate, person, ty, Some(reads), f)?);
                    }
                    continue;
                }
                // The persons behind this aggregate: rows it counts or takes a value from. Where
                // that is every row of the group (no argument, or the pseudonym, which is null
                // exactly where the person is unknown), the group's set serves.
                let every_row = value.as_ref().is_none_or(|v| is_pseudonym_of(&a.input, v));
                if every_row && f.params.filter.is_none() {
                    continue;
                }
                let reads = value.as_ref().map(|v| rows_read(v, role != Role::Count));
                aggr.push(self.own_persons(&aggregate, person, ty, reads, f)?);
            }
        }
        Ok(magnitudes)
    }

    /// The contributions of each group of magnitudes: in one cell aggregate with the group's
    /// set where every row adds (it takes the set's place in `aggr`), else an aggregate of
    /// their own. Returns the cells (cell column → the set it stands for) and the contribution
    /// columns that follow the aggregation's own.
    fn contribution_columns(
        &mut self,
        a: &Aggregate,
        aggr: &mut Vec<Expr>,
        magnitudes: Vec<Magnitudes>,
        sets: &[(Column, usize, String)],
    ) -> (BTreeMap<String, String>, Vec<(String, Expr)>) {
        // The cell columns, and what follows the aggregation's own columns: contributions, in
        // the same order and with the same names as without cells, so that a result checked
        // on either shadow has the shape of both.
        let mut cells: BTreeMap<String, String> = BTreeMap::new();
        let mut tail: Vec<(String, Expr)> = Vec::new();
        for ((person, filter), values) in magnitudes {
            let name = self.fresh(CONTRIBUTION);
            // A value that may be null or is computed (a CASE with ELSE 0) leaves persons who
            // add nothing, whom bounds cannot tell apart over several runs (a recheck every
            // time): those stay exact.
            let dense = values.iter().all(|(v, _)| {
                is_plain(v) && v.nullable(a.input.schema().as_ref()).is_ok_and(|n| !n)
            });
            let (values, aggregates): (Vec<Expr>, Vec<String>) = values.into_iter().unzip();
            let ceilings = self.ceilings_of(&a.input, &person, &values, &aggregates);
            self.names.insert(name.clone(), aggregates);
            let args = std::iter::once(Expr::Column(person.clone()))
                .chain(values)
                .collect();
            // Every row of the group adds to these contributions: the group's set comes in
            // the same pass, with the values' totals where ceilings bound the largest
            // contributions, else with each run's largest per-person sums.
            let set = sets.iter().find(|(c, _, _)| *c == person);
            if let (Some(cell), Some((_, at, set_name)), None, true) =
                (&self.cell, set, &filter, dense)
            {
                let cell = match ceilings {
                    Some(largest) => {
                        self.ceiled += largest.len();
                        Arc::new(bounded_cell_udaf(&largest))
                    }
                    None => cell.clone(),
                };
                let cell_name = set_name.replacen(PERSON, CELL, 1);
                aggr[*at] = call(&cell, args, None).alias(cell_name.clone());
                let cell_column = Expr::Column(Column::new_unqualified(&cell_name));
                let field = cell_field_udf(CELL_CONTRIBUTIONS).call(vec![cell_column]);
                tail.push((name.clone(), field.alias(name)));
                cells.insert(cell_name, set_name.clone());
                continue;
            }
            aggr.push(call(&self.contributions, args, filter).alias(name.clone()));
            tail.push((name.clone(), Expr::Column(Column::new_unqualified(&name))));
        }
        (cells, tail)
    }
}
