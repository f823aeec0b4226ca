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
//! - applications and their review: see `applications`; brought-in scripts: `scripts`;
//!   consent withdrawals: `consent`
//! - `GET /api/v1/openapi.json` → the OpenAPI document of all of these, derived from the
//!   handlers and their types (a route cannot be added without being documented)
//!
//! Every route but sign-in, health and the document needs `Authorization: Bearer <session>`.

use std::sync::Arc;

use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use niji_governance::{Output, Vote};
use niji_sandbox::{Mode, QueryRequest, Scope};
use serde::{Deserialize, Serialize};
use tracing::Instrument;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{IntoParams, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::status::{ErrorBody, ServerError, http_status};

/// The document's frame; the paths and schemas come from the routes registered below.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "niji HTTP API",
        description = "The Visiting environment and application review of niji. Every route but sign-in, health and this document needs `Authorization: Bearer <session>` from /api/v1/signin. Errors are `ErrorBody` with the status of their kind: 401 credentials, 403 not permitted, 404 no such thing, 422 refused (with `problems` by field for a form), 429 busy, 504 time limit."
    ),
    modifiers(&SessionAuth),
    components(schemas(ErrorBody))
)]
struct ApiDoc;

/// The bearer session every signed-in route requires.
struct SessionAuth;

impl utoipa::Modify for SessionAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "session",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// Every route, each registered with its documentation.
fn api() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(health))
        .routes(routes!(signin))
        .routes(routes!(query))
        .routes(routes!(projects))
        .routes(routes!(tables))
        .routes(routes!(outputs))
        .routes(routes!(output))
        .routes(routes!(request_release))
        .routes(routes!(approve))
        .routes(routes!(reject))
        .merge(crate::applications::api())
        .merge(crate::scripts::api())
        .merge(crate::consent::api())
        .merge(crate::datasets::api())
}

/// The OpenAPI document of the API, as served.
pub fn openapi_json() -> String {
    api().into_openapi().to_pretty_json().unwrap_or_default()
}

pub fn router(state: Arc<AppState>) -> Router {
    let (router, _) = api().split_for_parts();
    let document = openapi_json();
    router
        .route(
            "/api/v1/openapi.json",
            get(move || async move {
                (
                    [(axum::http::header::CONTENT_TYPE, "application/json")],
                    document,
                )
            }),
        )
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

#[derive(Debug, Serialize, ToSchema)]
struct Health {
    status: &'static str,
}

#[utoipa::path(get, path = "/api/v1/health", tag = "session", responses((status = 200, body = Health)))]
async fn health() -> Json<Health> {
    Json(Health { status: "ok" })
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct SignIn {
    user: String,
    token: String,
}

#[derive(Debug, Serialize, ToSchema)]
struct Session {
    session: String,
    user: String,
    role: niji_governance::UserRole,
}

#[utoipa::path(post, path = "/api/v1/signin", tag = "session", request_body = SignIn, responses((status = 200, description = "a session for the bearer header", body = Session), (status = "4XX", description = "refused, denied, not found, not signed in", body = ErrorBody)))]
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

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct QueryBody {
    project: String,
    mode: Mode,
    sql: String,
}

/// The outcome, whatever it is, with the status of its kind (200 for an answer, held or not).
#[utoipa::path(post, path = "/api/v1/query", tag = "queries", security(("session" = [])), request_body = QueryBody, responses((status = 200, description = "the outcome: rows (dummy), released, suppressed or held", body = serde_json::Value), (status = "4XX", description = "refused, denied, not found, not signed in", body = ErrorBody)))]
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

#[derive(Debug, Serialize, ToSchema)]
struct ProjectSummary {
    id: String,
    title: String,
    expires: String,
}

#[derive(Debug, Serialize, ToSchema)]
struct Projects {
    projects: Vec<ProjectSummary>,
}

#[utoipa::path(get, path = "/api/v1/projects", tag = "queries", security(("session" = [])), responses((status = 200, body = Projects), (status = "4XX", description = "refused, denied, not found, not signed in", body = ErrorBody)))]
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

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ModeParam {
    mode: Option<Mode>,
}

#[derive(Debug, Serialize, ToSchema)]
struct ColumnSummary {
    name: String,
    #[serde(rename = "type")]
    data_type: String,
}

#[derive(Debug, Serialize, ToSchema)]
struct TableSummary {
    table: String,
    columns: Vec<ColumnSummary>,
}

#[derive(Debug, Serialize, ToSchema)]
struct Tables {
    tables: Vec<TableSummary>,
}

#[utoipa::path(get, path = "/api/v1/projects/{id}/tables", tag = "queries", security(("session" = [])), params(("id" = String, Path, description = "project"), ModeParam), responses((status = 200, body = Tables), (status = "4XX", description = "refused, denied, not found, not signed in", body = ErrorBody)))]
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

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ProjectParam {
    project: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
struct Outputs {
    outputs: Vec<Output>,
}

#[utoipa::path(get, path = "/api/v1/outputs", tag = "outputs", security(("session" = [])), params(ProjectParam), responses((status = 200, body = Outputs), (status = "4XX", description = "refused, denied, not found, not signed in", body = ErrorBody)))]
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

#[utoipa::path(get, path = "/api/v1/outputs/{id}", tag = "outputs", security(("session" = [])), params(("id" = String, Path, description = "output (query id)")), responses((status = 200, description = "SQL, findings, votes; for checkers the rows and the approval preview", body = serde_json::Value), (status = "4XX", description = "refused, denied, not found, not signed in", body = ErrorBody)))]
async fn output(
    State(state): State<Arc<AppState>>,
    SignedIn(user): SignedIn,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ServerError> {
    Ok(Json(
        state.visiting.show_output(&user, &id).await?.to_json(),
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct Justification {
    justification: String,
}

#[utoipa::path(post, path = "/api/v1/outputs/{id}/request", tag = "outputs", security(("session" = [])), params(("id" = String, Path, description = "output (query id)")), request_body = Justification, responses((status = 200, body = Output), (status = "4XX", description = "refused, denied, not found, not signed in", body = ErrorBody)))]
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

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct Reason {
    reason: String,
}

#[utoipa::path(post, path = "/api/v1/outputs/{id}/approve", tag = "outputs", security(("session" = [])), params(("id" = String, Path, description = "output (query id)")), request_body = Reason, responses((status = 200, body = Output), (status = "4XX", description = "refused, denied, not found, not signed in", body = ErrorBody)))]
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

#[utoipa::path(post, path = "/api/v1/outputs/{id}/reject", tag = "outputs", security(("session" = [])), params(("id" = String, Path, description = "output (query id)")), request_body = Reason, responses((status = 200, body = Output), (status = "4XX", description = "refused, denied, not found, not signed in", body = ErrorBody)))]
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
