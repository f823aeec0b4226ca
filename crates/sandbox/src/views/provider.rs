//! A project view: an opaque table provider over the plan that gives the approved rows and
//! columns, so a researcher's plan shows a scan of `ndb.receipts`, never what is behind it.

use super::*;

/// An approved table or a workspace table as the project sees it.
#[derive(Debug)]
pub struct ProjectView {
    pub name: String,
    schema: SchemaRef,
    plan: LogicalPlan,
    kind: TableType,
}

impl ProjectView {
    /// `plan` must output unqualified columns (the view's schema). Public for engines that
    /// rebuild a view in another process from its plan (which the guard checked as the view).
    pub fn new(name: String, plan: LogicalPlan, kind: TableType) -> Self {
        let schema = Arc::new(plan.schema().as_arrow().clone());
        Self {
            name,
            schema,
            plan,
            kind,
        }
    }

    /// The plan behind the view: for an engine sending it to another process, never to a
    /// researcher.
    pub fn plan(&self) -> &LogicalPlan {
        &self.plan
    }

    pub fn kind(&self) -> TableType {
        self.kind
    }
}

pub(super) fn unqualified(expr: Expr) -> DfResult<Expr> {
    use datafusion::common::tree_node::{Transformed, TreeNode};
    expr.transform(|e| {
        Ok(match e {
            Expr::Column(c) => Transformed::yes(Expr::Column(Column::new_unqualified(c.name))),
            other => Transformed::no(other),
        })
    })
    .map(|t| t.data)
}

#[async_trait]
impl TableProvider for ProjectView {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        self.kind
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let mut builder = LogicalPlanBuilder::from(self.plan.clone());
        let filters = filters
            .iter()
            .cloned()
            .map(unqualified)
            .collect::<DfResult<Vec<_>>>()?;
        if let Some(predicate) = conjunction(filters) {
            builder = builder.filter(predicate)?;
        }
        if let Some(indexes) = projection {
            builder =
                builder.project(indexes.iter().map(|&i| {
                    Expr::Column(Column::new_unqualified(self.schema.field(i).name()))
                }))?;
        }
        if let Some(n) = limit {
            builder = builder.limit(0, Some(n))?;
        }
        state.create_physical_plan(&builder.build()?).await
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        // Filters on view columns are applied inside the view's own plan (so they reach the
        // Parquet scan), exactly as written.
        Ok(vec![TableProviderFilterPushDown::Exact; filters.len()])
    }
}
