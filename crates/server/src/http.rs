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
//! Every route but sign-in and health needs `Authorization: Bearer <session>`.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use niji_governance::Vote;
use niji_sandbox::{Mode, QueryRequest};
use serde::Deserialize;

use crate::AppState;
use crate::error::{ServerError, http_status};

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route(
            "/api/v1/health",
            get(|| async { Json(serde_json::json!({"status": "ok"})) }),
        )
        .route("/api/v1/signin", post(signin))
        .route("/api/v1/query", post(query))
        .route("/api/v1/projects", get(projects))
        .route("/api/v1/projects/{id}/tables", get(tables))
        .route("/api/v1/outputs", get(outputs))
        .route("/api/v1/outputs/{id}", get(output))
        .route("/api/v1/outputs/{id}/request", post(request_release))
        .route("/api/v1/outputs/{id}/approve", post(approve))
        .route("/api/v1/outputs/{id}/reject", post(reject))
        .layer(axum::middleware::from_fn(trace_request))
        .with_state(state)
}

async fn trace_request(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    use tracing::Instrument;
    let span = tracing::info_span!("http", method = %req.method(), path = %req.uri().path());
    next.run(req).instrument(span).await
}

/// The signed-in user of a request.
pub fn bearer_user(state: &AppState, headers: &HeaderMap) -> Result<String, ServerError> {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .and_then(|t| state.sessions.user(t.trim()))
        .ok_or(ServerError::Unauthenticated)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SignIn {
    user: String,
    token: String,
}

async fn signin(
    State(state): State<Arc<AppState>>,
    Json(body): Json<SignIn>,
) -> Result<Response, ServerError> {
    let user = state
        .visiting
        .sign_in(&body.user, &body.token, "http")
        .await?;
    let session = state
        .sessions
        .open(&user.name)
        .map_err(|_| ServerError::BadRequest("could not open a session".into()))?;
    Ok(
        Json(serde_json::json!({"session": session, "user": user.name, "role": user.role}))
            .into_response(),
    )
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct QueryBody {
    project: String,
    mode: Mode,
    sql: String,
}

async fn query(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Json(body): Json<QueryBody>,
) -> Result<Response, ServerError> {
    let user = bearer_user(&state, &headers)?;
    let outcome = state
        .visiting
        .query(&QueryRequest {
            user,
            project: body.project,
            mode: body.mode,
            sql: body.sql,
            via: "http",
        })
        .await;
    Ok((http_status(&outcome), Json(outcome.to_json())).into_response())
}

async fn projects(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Response, ServerError> {
    let user = bearer_user(&state, &headers)?;
    let list: Vec<serde_json::Value> = state
        .visiting
        .projects_of(&user)
        .await?
        .into_iter()
        .map(|p| serde_json::json!({"id": p.id, "title": p.title, "expires": p.expires}))
        .collect();
    Ok(Json(serde_json::json!({"projects": list})).into_response())
}

#[derive(Debug, Deserialize)]
struct ModeParam {
    mode: Option<Mode>,
}

async fn tables(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(param): Query<ModeParam>,
) -> Result<Response, ServerError> {
    let user = bearer_user(&state, &headers)?;
    let tables = state
        .visiting
        .project_tables(&user, &id, param.mode.unwrap_or(Mode::Dummy))
        .await?;
    let list: Vec<serde_json::Value> = tables
        .into_iter()
        .map(|(name, schema)| {
            let columns: Vec<serde_json::Value> = schema
                .fields()
                .iter()
                .map(|f| serde_json::json!({"name": f.name(), "type": f.data_type().to_string()}))
                .collect();
            serde_json::json!({"table": name, "columns": columns})
        })
        .collect();
    Ok((StatusCode::OK, Json(serde_json::json!({"tables": list}))).into_response())
}

#[derive(Debug, Deserialize)]
struct ProjectParam {
    project: Option<String>,
}

async fn outputs(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(param): Query<ProjectParam>,
) -> Result<Response, ServerError> {
    let user = bearer_user(&state, &headers)?;
    let list = state
        .visiting
        .list_outputs(&user, param.project.as_deref())
        .await?;
    Ok(Json(serde_json::json!({"outputs": list})).into_response())
}

async fn output(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ServerError> {
    let user = bearer_user(&state, &headers)?;
    Ok(Json(state.visiting.show_output(&user, &id).await?.to_json()).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Justification {
    justification: String,
}

async fn request_release(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Json(body): Json<Justification>,
) -> Result<Response, ServerError> {
    let user = bearer_user(&state, &headers)?;
    let output = state
        .visiting
        .request_release(&user, &id, &body.justification)
        .await?;
    Ok(Json(output).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Reason {
    reason: String,
}

async fn vote(
    state: &AppState,
    headers: &HeaderMap,
    id: &str,
    vote: Vote,
    reason: &str,
) -> Result<Response, ServerError> {
    let user = bearer_user(state, headers)?;
    let output = state.visiting.vote(&user, id, vote, reason).await?;
    Ok(Json(output).into_response())
}

async fn approve(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Json(body): Json<Reason>,
) -> Result<Response, ServerError> {
    vote(&state, &headers, &id, Vote::Approve, &body.reason).await
}

async fn reject(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Json(body): Json<Reason>,
) -> Result<Response, ServerError> {
    vote(&state, &headers, &id, Vote::Reject, &body.reason).await
}
