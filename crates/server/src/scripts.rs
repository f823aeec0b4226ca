//! Brought-in scripts over HTTP (JSON): a project's member submits and runs, a committee
//! member decides. Who may do what is the platform service's (membership, casbin roles,
//! recusal); a bundle the guard refuses comes back as 422 with each problem by file.
//!
//! - `POST /api/v1/projects/{id}/scripts` `{"name", "files": [{"name", "sql"}]}` → 201
//! - `GET /api/v1/projects/{id}/scripts` → every version
//! - `POST /api/v1/projects/{id}/scripts/{name}/versions/{version}/decision`
//!   `{"approve", "reason"}`
//! - `POST /api/v1/projects/{id}/scripts/{name}/run` `{"mode", "files"}` → each statement's
//!   outcome, in order

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use niji_governance::{Script, ScriptFile};
use niji_sandbox::Mode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::http::SignedIn;
use crate::status::{ErrorBody, ServerError};

pub fn api() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(list, submit))
        .routes(routes!(decide))
        .routes(routes!(run))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct SubmitBody {
    name: String,
    /// In the order they run.
    files: Vec<ScriptFile>,
}

#[utoipa::path(post, path = "/api/v1/projects/{id}/scripts", tag = "scripts", security(("session" = [])), params(("id" = String, Path, description = "project")), request_body = SubmitBody, responses((status = 201, description = "a new version, to be approved", body = Script), (status = "4XX", description = "refused (422, with each problem by file), denied, not signed in", body = ErrorBody)))]
async fn submit(
    State(state): State<Arc<AppState>>,
    SignedIn(user): SignedIn,
    Path(project): Path<String>,
    Json(body): Json<SubmitBody>,
) -> Result<(StatusCode, Json<Script>), ServerError> {
    let script = state
        .visiting
        .submit_script(&user, &project, &body.name, &body.files)
        .await?;
    Ok((StatusCode::CREATED, Json(script)))
}

#[derive(Debug, Serialize, ToSchema)]
struct Scripts {
    scripts: Vec<Script>,
}

#[utoipa::path(get, path = "/api/v1/projects/{id}/scripts", tag = "scripts", security(("session" = [])), params(("id" = String, Path, description = "project")), responses((status = 200, body = Scripts), (status = "4XX", description = "denied, not signed in", body = ErrorBody)))]
async fn list(
    State(state): State<Arc<AppState>>,
    SignedIn(user): SignedIn,
    Path(project): Path<String>,
) -> Result<Json<Scripts>, ServerError> {
    let scripts = state.visiting.platform().scripts(&user, &project).await?;
    Ok(Json(Scripts { scripts }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct DecisionBody {
    approve: bool,
    /// Required for a rejection.
    #[serde(default)]
    reason: String,
}

#[utoipa::path(post, path = "/api/v1/projects/{id}/scripts/{name}/versions/{version}/decision", tag = "scripts", security(("session" = [])), params(("id" = String, Path, description = "project"), ("name" = String, Path, description = "script"), ("version" = i64, Path, description = "version")), request_body = DecisionBody, responses((status = 200, body = Script), (status = "4XX", description = "refused, denied (a member of the project, the submitter's organisation), not found", body = ErrorBody)))]
async fn decide(
    State(state): State<Arc<AppState>>,
    SignedIn(user): SignedIn,
    Path((project, name, version)): Path<(String, String, i64)>,
    Json(body): Json<DecisionBody>,
) -> Result<Json<Script>, ServerError> {
    let script = state
        .visiting
        .platform()
        .decide_script(&user, &project, &name, version, body.approve, &body.reason)
        .await?;
    Ok(Json(script))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct RunBody {
    mode: Mode,
    /// Exactly the files of an approved version, in order.
    files: Vec<ScriptFile>,
}

#[derive(Debug, Serialize, ToSchema)]
struct Ran {
    /// Each statement's outcome, as `/api/v1/query` gives it; the run stops at the first
    /// refusal or error.
    outcomes: Vec<serde_json::Value>,
}

#[utoipa::path(post, path = "/api/v1/projects/{id}/scripts/{name}/run", tag = "scripts", security(("session" = [])), params(("id" = String, Path, description = "project"), ("name" = String, Path, description = "script")), request_body = RunBody, responses((status = 200, body = Ran), (status = "4XX", description = "refused (no approved version has these files), denied", body = ErrorBody)))]
async fn run(
    State(state): State<Arc<AppState>>,
    SignedIn(user): SignedIn,
    Path((project, name)): Path<(String, String)>,
    Json(body): Json<RunBody>,
) -> Result<Json<Ran>, ServerError> {
    let outcomes = state
        .visiting
        .run_script(&user, &project, &name, &body.files, body.mode)
        .await?
        .iter()
        .map(niji_sandbox::QueryOutcome::to_json)
        .collect();
    Ok(Json(Ran { outcomes }))
}
