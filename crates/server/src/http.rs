//! The HTTP JSON API.
//!
//! - `POST /api/v1/signin` `{"user", "token"}` → `{"session"}`
//! - `POST /api/v1/query` `{"project", "mode": "dummy"|"real", "sql"}` → the query outcome
//! - `GET /api/v1/projects` → the caller's open projects
//! - `GET /api/v1/projects/{id}/tables?mode=dummy` → the project's tables and columns
//! - `GET /api/v1/outputs?project=` → checkers: outputs awaiting votes; researchers: their
//!   projects' held outputs
//! - `GET /api/v1/outputs/{id}` → SQL, findings, votes (checkers: rows and approval preview)
//! - `POST /api/v1/outputs/{id}/request` `{"justification"}` → the author asks for release
//! - `POST /api/v1/outputs/{id}/approve` / `.../reject` `{"reason"}` → a checker's vote
//! - `GET /api/v1/health`
//!
//! - applications and their review: see `applications`
//!
//! Every route but sign-in and health needs `Authorization: Bearer <session>`.

use std::sync::Arc;

use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use niji_governance::{Output, Vote};
use niji_sandbox::{Mode, QueryRequest, Scope};
use serde::{Deserialize, Serialize};
use tracing::Instrument;

use crate::AppState;
use crate::status::{ServerError, http_status};

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/api/v1/health", get(health))
        .route("/api/v1/signin", post(signin))
        .route("/api/v1/query", post(query))
        .route("/api/v1/projects", get(projects))
        .route("/api/v1/projects/{id}/tables", get(tables))
        .route("/api/v1/outputs", get(outputs))
        .route("/api/v1/outputs/{id}", get(output))
        .route("/api/v1/outputs/{id}/request", post(request_release))
        .route("/api/v1/outputs/{id}/approve", post(approve))
        .route("/api/v1/outputs/{id}/reject", post(reject))
        .merge(crate::applications::router())
        .layer(axum::middleware::from_fn(trace_request))
        .with_state(state)
}

async fn trace_request(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let span = tracing::info_span!("http", method = %req.method(), path = %req.uri().path());
    next.run(req).instrument(span).await
}

/// The signed-in user of a request: a handler that takes one cannot run without a live
/// session (`Authorization: Bearer <session>`); the rejection is 401.
#[derive(Debug)]
pub struct SignedIn(pub String);

impl FromRequestParts<Arc<AppState>> for SignedIn {
    type Rejection = ServerError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let token = parts
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or(ServerError::Unauthenticated)?;
        state.signed_in(token.trim()).await.map(SignedIn)
    }
}

#[derive(Debug, Serialize)]
struct Health {
    status: &'static str,
}

async fn health() -> Json<Health> {
    Json(Health { status: "ok" })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SignIn {
    user: String,
    token: String,
}

#[derive(Debug, Serialize)]
struct Session {
    session: String,
    user: String,
    role: niji_governance::UserRole,
}

async fn signin(
    State(state): State<Arc<AppState>>,
    Json(body): Json<SignIn>,
) -> Result<Json<Session>, ServerError> {
    let user = state
        .visiting
        .platform()
        .sign_in(&body.user, &body.token, "http")
        .await?;
    let session = state
        .sessions
        .open(&user.name)
        .map_err(ServerError::Session)?;
    Ok(Json(Session {
        session,
        user: user.name,
        role: user.role,
    }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct QueryBody {
    project: String,
    mode: Mode,
    sql: String,
}

/// The outcome, whatever it is, with the status of its kind (200 for an answer, held or not).
async fn query(
    State(state): State<Arc<AppState>>,
    SignedIn(user): SignedIn,
    Json(body): Json<QueryBody>,
) -> Response {
    let outcome = state
        .visiting
        .query(&QueryRequest {
            user,
            scope: Scope::project(body.project),
            mode: body.mode,
            sql: body.sql,
            via: "http",
        })
        .await;
    (http_status(&outcome), Json(outcome.to_json())).into_response()
}

#[derive(Debug, Serialize)]
struct ProjectSummary {
    id: String,
    title: String,
    expires: String,
}

#[derive(Debug, Serialize)]
struct Projects {
    projects: Vec<ProjectSummary>,
}

async fn projects(
    State(state): State<Arc<AppState>>,
    SignedIn(user): SignedIn,
) -> Result<Json<Projects>, ServerError> {
    let projects = state
        .visiting
        .platform()
        .projects_of(&user)
        .await?
        .into_iter()
        .map(|p| ProjectSummary {
            id: p.id,
            title: p.title,
            expires: p.expires,
        })
        .collect();
    Ok(Json(Projects { projects }))
}

#[derive(Debug, Deserialize)]
struct ModeParam {
    mode: Option<Mode>,
}

#[derive(Debug, Serialize)]
struct ColumnSummary {
    name: String,
    #[serde(rename = "type")]
    data_type: String,
}

#[derive(Debug, Serialize)]
struct TableSummary {
    table: String,
    columns: Vec<ColumnSummary>,
}

#[derive(Debug, Serialize)]
struct Tables {
    tables: Vec<TableSummary>,
}

async fn tables(
    State(state): State<Arc<AppState>>,
    SignedIn(user): SignedIn,
    Path(id): Path<String>,
    Query(param): Query<ModeParam>,
) -> Result<Json<Tables>, ServerError> {
    let tables = state
        .visiting
        .project_tables(&user, &id, param.mode.unwrap_or(Mode::Dummy))
        .await?
        .into_iter()
        .map(|(table, schema)| TableSummary {
            table,
            columns: schema
                .fields()
                .iter()
                .map(|f| ColumnSummary {
                    name: f.name().clone(),
                    data_type: f.data_type().to_string(),
                })
                .collect(),
        })
        .collect();
    Ok(Json(Tables { tables }))
}

#[derive(Debug, Deserialize)]
struct ProjectParam {
    project: Option<String>,
}

#[derive(Debug, Serialize)]
struct Outputs {
    outputs: Vec<Output>,
}

async fn outputs(
    State(state): State<Arc<AppState>>,
    SignedIn(user): SignedIn,
    Query(param): Query<ProjectParam>,
) -> Result<Json<Outputs>, ServerError> {
    let outputs = state
        .visiting
        .platform()
        .list_outputs(&user, param.project.as_deref())
        .await?;
    Ok(Json(Outputs { outputs }))
}

async fn output(
    State(state): State<Arc<AppState>>,
    SignedIn(user): SignedIn,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ServerError> {
    Ok(Json(
        state.visiting.show_output(&user, &id).await?.to_json(),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Justification {
    justification: String,
}

async fn request_release(
    State(state): State<Arc<AppState>>,
    SignedIn(user): SignedIn,
    Path(id): Path<String>,
    Json(body): Json<Justification>,
) -> Result<Json<Output>, ServerError> {
    let output = state
        .visiting
        .request_release(&user, &id, &body.justification)
        .await?;
    Ok(Json(output))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Reason {
    reason: String,
}

async fn approve(
    State(state): State<Arc<AppState>>,
    SignedIn(user): SignedIn,
    Path(id): Path<String>,
    Json(body): Json<Reason>,
) -> Result<Json<Output>, ServerError> {
    let output = state
        .visiting
        .vote(&user, &id, Vote::Approve, &body.reason)
        .await?;
    Ok(Json(output))
}

async fn reject(
    State(state): State<Arc<AppState>>,
    SignedIn(user): SignedIn,
    Path(id): Path<String>,
    Json(body): Json<Reason>,
) -> Result<Json<Output>, ServerError> {
    let output = state
        .visiting
        .vote(&user, &id, Vote::Reject, &body.reason)
        .await?;
    Ok(Json(output))
}
