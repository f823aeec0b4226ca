//! A query's outcome as a table: masked cells marked with the rule that masked them, and the
//! outcome's message; no more rows than a page can hold.

use arrow::util::display::{ArrayFormatter, FormatOptions};
use niji_disclosure::SuppressedCell;
use niji_sandbox::QueryOutcome;

/// Rows shown on a page; the rest stays with the outcome (and its count is said).
pub(crate) const MAX_ROWS: usize = 500;

#[derive(Debug, Clone)]
pub(crate) struct Cell {
    pub(crate) text: String,
    /// The rule that masked this cell, for a masked one.
    pub(crate) masked: Option<String>,
}

#[derive(Debug, Clone)]
pub(crate) struct ResultView {
    pub(crate) query_id: String,
    pub(crate) status: &'static str,
    pub(crate) message: String,
    pub(crate) columns: Vec<String>,
    pub(crate) rows: Vec<Vec<Cell>>,
    pub(crate) total_rows: Option<usize>,
    pub(crate) masked: Vec<SuppressedCell>,
    pub(crate) small_groups_withheld: bool,
}

impl ResultView {
    /// `still_masked`: cells to mark although the rows hold them (a checker's preview).
    pub(crate) fn of(outcome: &QueryOutcome, still_masked: &[SuppressedCell]) -> ResultView {
        let columns = outcome
            .schema
            .as_ref()
            .map(|s| s.fields().iter().map(|f| f.name().clone()).collect())
            .unwrap_or_default();
        let marks: Vec<&SuppressedCell> = outcome.suppressed.iter().chain(still_masked).collect();
        let mut rows = Vec::new();
        let options = FormatOptions::default().with_null("");
        let mut row_index = 0usize;
        'batches: for batch in &outcome.batches {
            let formatters: Vec<_> = batch
                .columns()
                .iter()
                .filter_map(|c| ArrayFormatter::try_new(c.as_ref(), &options).ok())
                .collect();
            for r in 0..batch.num_rows() {
                if rows.len() >= MAX_ROWS {
                    break 'batches;
                }
                let cells = formatters
                    .iter()
                    .zip(batch.schema().fields())
                    .map(|(f, field)| Cell {
                        text: f.value(r).to_string(),
                        masked: marks
                            .iter()
                            .find(|m| m.row == row_index && m.column == *field.name())
                            .map(|m| m.reason.clone()),
                    })
                    .collect();
                rows.push(cells);
                row_index += 1;
            }
        }
        ResultView {
            query_id: outcome.query_id.clone(),
            status: outcome.status.as_str(),
            message: outcome.message.clone(),
            columns,
            rows,
            total_rows: outcome.row_count,
            masked: marks.into_iter().cloned().collect(),
            small_groups_withheld: outcome.small_groups_withheld,
        }
    }
}
