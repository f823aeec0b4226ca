//! The project console (researchers): a SQL editor over the project's views, on dummy data
//! or real, results with masked cells and their reasons, the workspace and project tables,
//! the project's held outputs with requests for release, and its own audit trail. Every
//! query goes through the chokepoint as `via = "portal"`.

use std::sync::Arc;

use askama::Template;
use askama_web::WebTemplate;
use axum::Form;
use axum::extract::{Path, Query, State};
use niji_audit::Entry;
use niji_governance::{Output, ProjectSpec};
use niji_sandbox::{Mode, QueryRequest, Scope};
use serde::Deserialize;

use super::result::ResultView;
use crate::Portal;
use crate::chrome::{Chrome, Member};
use crate::error::PortalError;

#[derive(Template, WebTemplate)]
#[template(path = "projects.html")]
pub(crate) struct ProjectsPage {
    c: Chrome,
    projects: Vec<ProjectSpec>,
}

pub(crate) async fn projects(
    State(portal): State<Arc<Portal>>,
    m: Member,
) -> Result<ProjectsPage, PortalError> {
    Ok(ProjectsPage {
        projects: portal.platform().projects_of(&m.user.name).await?,
        c: m.chrome,
    })
}

pub(crate) struct TableInfo {
    pub(crate) name: String,
    pub(crate) columns: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "console.html")]
pub(crate) struct ConsolePage {
    c: Chrome,
    project: String,
    tables: Vec<TableInfo>,
    outputs: Vec<Output>,
}

pub(crate) async fn page(
    State(portal): State<Arc<Portal>>,
    m: Member,
    Path(project): Path<String>,
) -> Result<ConsolePage, PortalError> {
    let tables = portal
        .visiting
        .project_tables(&m.user.name, &project, Mode::Dummy)
        .await?
        .into_iter()
        .map(|(name, schema)| TableInfo {
            name,
            columns: schema
                .fields()
                .iter()
                .map(|f| f.name().as_str())
                .collect::<Vec<_>>()
                .join(", "),
        })
        .collect();
    let outputs = portal
        .platform()
        .list_outputs(&m.user.name, Some(&project))
        .await?;
    Ok(ConsolePage {
        project,
        tables,
        outputs,
        c: m.chrome,
    })
}

#[derive(Debug, Deserialize)]
pub(crate) struct QueryForm {
    sql: String,
    mode: Mode,
}

#[derive(Template, WebTemplate)]
#[template(path = "result_fragment.html")]
pub(crate) struct ResultFragment {
    c: Chrome,
    r: ResultView,
    /// A real-data result held or masked: its author may ask checkers to release it (the
    /// platform decides whether this one can be).
    may_request: bool,
}

/// Runs the editor's SQL through the chokepoint and answers the result's fragment. A refused
/// query is an answer too (its reason shown where the result would be).
pub(crate) async fn run(
    State(portal): State<Arc<Portal>>,
    m: Member,
    Path(project): Path<String>,
    Form(f): Form<QueryForm>,
) -> ResultFragment {
    let outcome = portal
        .visiting
        .query(&QueryRequest {
            user: m.user.name.clone(),
            scope: Scope::project(project),
            mode: f.mode,
            sql: f.sql,
            via: "portal",
        })
        .await;
    ResultFragment {
        may_request: matches!(
            outcome.status,
            niji_sandbox::Status::Held | niji_sandbox::Status::Suppressed
        ),
        r: ResultView::of(&outcome, &[]),
        c: m.chrome,
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct Page {
    before: Option<i64>,
}

#[derive(Template, WebTemplate)]
#[template(path = "trail.html")]
pub(crate) struct TrailPage {
    c: Chrome,
    project: String,
    entries: Vec<Entry>,
    next: Option<i64>,
}

pub(crate) const TRAIL_PAGE: i64 = 100;

pub(crate) async fn trail(
    State(portal): State<Arc<Portal>>,
    m: Member,
    Path(project): Path<String>,
    Query(p): Query<Page>,
) -> Result<TrailPage, PortalError> {
    let entries = portal
        .platform()
        .project_audit(&m.user.name, &project, p.before, TRAIL_PAGE)
        .await?;
    let next = (entries.len() as i64 == TRAIL_PAGE)
        .then(|| entries.last().map(|e| e.seq))
        .flatten();
    Ok(TrailPage {
        project,
        entries,
        next,
        c: m.chrome,
    })
}
