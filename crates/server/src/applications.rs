//! Applications and their review over HTTP (JSON). Every route needs a session; who may do
//! what is decided by the platform service (casbin roles, then the application's own rules:
//! assignment, recusal, state), and its refusals come back through the one status mapping.
//!
//! - `POST /api/v1/applications` `{"form"}` → 201 `{"application", "problems"}` (a draft)
//! - `GET /api/v1/applications` → the caller's applications
//! - `GET /api/v1/applications/{id}` → the page (form, state, votes one may see, decisions,
//!   phase times; the risk summary for the committee)
//! - `PUT /api/v1/applications/{id}` `{"form"}` → edits a draft or a revision
//! - `POST /api/v1/applications/{id}/submit` | `/withdraw` | `/accept`
//! - `POST /api/v1/projects/{id}/amendments` `{"form"}` → 201, a draft amendment
//! - `POST /api/v1/projects/{id}/report` `{"report"}` → the lead's completion report
//! - `GET /api/v1/review/queue` → the chair's queue, or a member's assignments
//! - `POST /api/v1/applications/{id}/assignments` `{"reviewer", "databases"}` (the chair)
//! - `POST /api/v1/applications/{id}/conflict` `{"reason"}` (a member recuses themselves)
//! - `POST /api/v1/applications/{id}/votes` `{"vote", "comments"}`
//! - `POST /api/v1/applications/{id}/decision` `{"outcome", "conditions", "reason"}` (the chair)
//! - `GET /api/v1/notifications?unread=true`, `POST /api/v1/notifications/read` `{"up_to"}`

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use niji_governance::applications::{Decision, Notification, QueueLine};
use niji_governance::{
    ApplicationForm, ApplicationPage, Conditions, DecisionOutcome, FieldError, ReviewVote,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::http::SignedIn;
use crate::status::{ErrorBody, ServerError};

/// The routes of applications and review, each registered with its documentation.
pub fn api() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(mine, draft))
        .routes(routes!(page, edit))
        .routes(routes!(submit))
        .routes(routes!(withdraw))
        .routes(routes!(accept))
        .routes(routes!(assign))
        .routes(routes!(conflict))
        .routes(routes!(vote))
        .routes(routes!(decide))
        .routes(routes!(amend))
        .routes(routes!(report))
        .routes(routes!(queue))
        .routes(routes!(notifications))
        .routes(routes!(read))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct FormBody {
    form: ApplicationForm,
}

#[derive(Debug, Serialize, ToSchema)]
struct Drafted {
    application: String,
    /// What still stops submission, by field (a draft may be incomplete).
    problems: Vec<FieldError>,
}

/// A saved form with what still stops its submission.
fn drafted(state: &AppState, application: String, form: &ApplicationForm) -> Json<Drafted> {
    let problems = form.problems(state.visiting.catalog());
    Json(Drafted {
        application,
        problems,
    })
}

#[derive(Debug, Serialize, ToSchema)]
struct Done {
    application: String,
    state: &'static str,
}

#[derive(Debug, Serialize, ToSchema)]
struct Lines {
    applications: Vec<QueueLine>,
}

#[utoipa::path(post, path = "/api/v1/applications", tag = "applications", security(("session" = [])), request_body = FormBody, responses((status = 201, description = "a draft, with what still stops its submission", body = Drafted), (status = "4XX", description = "refused (422, with problems by field), denied, not found, not signed in", body = ErrorBody)))]
async fn draft(
    State(state): State<Arc<AppState>>,
    SignedIn(user): SignedIn,
    Json(body): Json<FormBody>,
) -> Result<(StatusCode, Json<Drafted>), ServerError> {
    let p = state.visiting.platform();
    let application = p.draft_application(&user, &body.form).await?;
    Ok((
        StatusCode::CREATED,
        drafted(&state, application, &body.form),
    ))
}

#[utoipa::path(post, path = "/api/v1/projects/{id}/amendments", tag = "applications", security(("session" = [])), params(("id" = String, Path, description = "project")), request_body = FormBody, responses((status = 201, description = "a draft amendment of a live project", body = Drafted), (status = "4XX", description = "refused (422, with problems by field), denied, not found, not signed in", body = ErrorBody)))]
async fn amend(
    State(state): State<Arc<AppState>>,
    SignedIn(user): SignedIn,
    Path(project): Path<String>,
    Json(body): Json<FormBody>,
) -> Result<(StatusCode, Json<Drafted>), ServerError> {
    let p = state.visiting.platform();
    let application = p.draft_amendment(&user, &project, &body.form).await?;
    Ok((
        StatusCode::CREATED,
        drafted(&state, application, &body.form),
    ))
}

#[utoipa::path(get, path = "/api/v1/applications", tag = "applications", security(("session" = [])), responses((status = 200, description = "the caller's applications", body = Lines), (status = "4XX", description = "refused (422, with problems by field), denied, not found, not signed in", body = ErrorBody)))]
async fn mine(
    State(state): State<Arc<AppState>>,
    SignedIn(user): SignedIn,
) -> Result<Json<Lines>, ServerError> {
    let applications = state
        .visiting
        .platform()
        .my_applications(&user, 500)
        .await?;
    Ok(Json(Lines { applications }))
}

#[utoipa::path(get, path = "/api/v1/applications/{id}", tag = "applications", security(("session" = [])), params(("id" = String, Path, description = "application")), responses((status = 200, body = ApplicationPage), (status = "4XX", description = "refused (422, with problems by field), denied, not found, not signed in", body = ErrorBody)))]
async fn page(
    State(state): State<Arc<AppState>>,
    SignedIn(user): SignedIn,
    Path(id): Path<String>,
) -> Result<Json<ApplicationPage>, ServerError> {
    Ok(Json(state.visiting.application_page(&user, &id).await?))
}

#[utoipa::path(put, path = "/api/v1/applications/{id}", tag = "applications", security(("session" = [])), params(("id" = String, Path, description = "application")), request_body = FormBody, responses((status = 200, body = Drafted), (status = "4XX", description = "refused (422, with problems by field), denied, not found, not signed in", body = ErrorBody)))]
async fn edit(
    State(state): State<Arc<AppState>>,
    SignedIn(user): SignedIn,
    Path(id): Path<String>,
    Json(body): Json<FormBody>,
) -> Result<Json<Drafted>, ServerError> {
    state
        .visiting
        .platform()
        .edit_application(&user, &id, &body.form)
        .await?;
    Ok(drafted(&state, id, &body.form))
}

#[utoipa::path(post, path = "/api/v1/applications/{id}/submit", tag = "applications", security(("session" = [])), params(("id" = String, Path, description = "application")), responses((status = 200, body = Done), (status = "4XX", description = "refused (422, with problems by field), denied, not found, not signed in", body = ErrorBody)))]
async fn submit(
    State(state): State<Arc<AppState>>,
    SignedIn(user): SignedIn,
    Path(id): Path<String>,
) -> Result<Json<Done>, ServerError> {
    let p = state.visiting.platform();
    p.submit_application(&user, &id, state.visiting.catalog())
        .await?;
    Ok(Json(Done {
        application: id,
        state: "submitted",
    }))
}

#[utoipa::path(post, path = "/api/v1/applications/{id}/withdraw", tag = "applications", security(("session" = [])), params(("id" = String, Path, description = "application")), responses((status = 200, body = Done), (status = "4XX", description = "refused (422, with problems by field), denied, not found, not signed in", body = ErrorBody)))]
async fn withdraw(
    State(state): State<Arc<AppState>>,
    SignedIn(user): SignedIn,
    Path(id): Path<String>,
) -> Result<Json<Done>, ServerError> {
    state
        .visiting
        .platform()
        .withdraw_application(&user, &id)
        .await?;
    Ok(Json(Done {
        application: id,
        state: "withdrawn",
    }))
}

#[derive(Debug, Serialize, ToSchema)]
struct Accepted {
    application: String,
    project: niji_governance::ProjectSpec,
}

#[utoipa::path(post, path = "/api/v1/applications/{id}/accept", tag = "applications", security(("session" = [])), params(("id" = String, Path, description = "application")), responses((status = 200, description = "the project, live", body = Accepted), (status = "4XX", description = "refused (422, with problems by field), denied, not found, not signed in", body = ErrorBody)))]
async fn accept(
    State(state): State<Arc<AppState>>,
    SignedIn(user): SignedIn,
    Path(id): Path<String>,
) -> Result<Json<Accepted>, ServerError> {
    let p = state.visiting.platform();
    let project = p
        .accept_decision(&user, &id, state.visiting.catalog())
        .await?;
    Ok(Json(Accepted {
        application: id,
        project,
    }))
}

#[utoipa::path(get, path = "/api/v1/review/queue", tag = "review", security(("session" = [])), responses((status = 200, description = "the chair's queue, or a member's assignments", body = Lines), (status = "4XX", description = "refused (422, with problems by field), denied, not found, not signed in", body = ErrorBody)))]
async fn queue(
    State(state): State<Arc<AppState>>,
    SignedIn(user): SignedIn,
) -> Result<Json<Lines>, ServerError> {
    let applications = state.visiting.platform().review_queue(&user, 500).await?;
    Ok(Json(Lines { applications }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct AssignBody {
    reviewer: String,
    databases: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
struct Assigned {
    reviewer: String,
    /// Why the reviewer is recused, when they are.
    recused: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/applications/{id}/assignments", tag = "review", security(("session" = [])), params(("id" = String, Path, description = "application")), request_body = AssignBody, responses((status = 200, body = Assigned), (status = "4XX", description = "refused (422, with problems by field), denied, not found, not signed in", body = ErrorBody)))]
async fn assign(
    State(state): State<Arc<AppState>>,
    SignedIn(user): SignedIn,
    Path(id): Path<String>,
    Json(body): Json<AssignBody>,
) -> Result<Json<Assigned>, ServerError> {
    let p = state.visiting.platform();
    let recused = p
        .assign_reviewer(&user, &id, &body.reviewer, &body.databases)
        .await?;
    Ok(Json(Assigned {
        reviewer: body.reviewer,
        recused,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ConflictBody {
    reason: String,
}

#[utoipa::path(post, path = "/api/v1/applications/{id}/conflict", tag = "review", security(("session" = [])), params(("id" = String, Path, description = "application")), request_body = ConflictBody, responses((status = 200, body = Done), (status = "4XX", description = "refused (422, with problems by field), denied, not found, not signed in", body = ErrorBody)))]
async fn conflict(
    State(state): State<Arc<AppState>>,
    SignedIn(user): SignedIn,
    Path(id): Path<String>,
    Json(body): Json<ConflictBody>,
) -> Result<Json<Done>, ServerError> {
    state
        .visiting
        .platform()
        .declare_conflict(&user, &id, &body.reason)
        .await?;
    Ok(Json(Done {
        application: id,
        state: "recused",
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct VoteBody {
    vote: ReviewVote,
    #[serde(default)]
    comments: BTreeMap<String, String>,
}

#[utoipa::path(post, path = "/api/v1/applications/{id}/votes", tag = "review", security(("session" = [])), params(("id" = String, Path, description = "application")), request_body = VoteBody, responses((status = 200, body = Done), (status = "4XX", description = "refused (422, with problems by field), denied, not found, not signed in", body = ErrorBody)))]
async fn vote(
    State(state): State<Arc<AppState>>,
    SignedIn(user): SignedIn,
    Path(id): Path<String>,
    Json(body): Json<VoteBody>,
) -> Result<Json<Done>, ServerError> {
    let p = state.visiting.platform();
    p.vote_on_application(&user, &id, body.vote, &body.comments)
        .await?;
    Ok(Json(Done {
        application: id,
        state: "voted",
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct DecisionBody {
    outcome: DecisionOutcome,
    #[serde(default)]
    conditions: Conditions,
    reason: String,
}

#[utoipa::path(post, path = "/api/v1/applications/{id}/decision", tag = "review", security(("session" = [])), params(("id" = String, Path, description = "application")), request_body = DecisionBody, responses((status = 200, body = Decision), (status = "4XX", description = "refused (422, with problems by field), denied, not found, not signed in", body = ErrorBody)))]
async fn decide(
    State(state): State<Arc<AppState>>,
    SignedIn(user): SignedIn,
    Path(id): Path<String>,
    Json(body): Json<DecisionBody>,
) -> Result<Json<Decision>, ServerError> {
    let p = state.visiting.platform();
    let decision = p
        .decide_application(
            &user,
            &id,
            body.outcome,
            body.conditions,
            &body.reason,
            state.visiting.catalog(),
        )
        .await?;
    Ok(Json(decision))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct UnreadParam {
    #[serde(default)]
    unread: bool,
}

#[derive(Debug, Serialize, ToSchema)]
struct Notifications {
    notifications: Vec<Notification>,
}

#[utoipa::path(get, path = "/api/v1/notifications", tag = "applications", security(("session" = [])), params(UnreadParam), responses((status = 200, body = Notifications), (status = "4XX", description = "refused (422, with problems by field), denied, not found, not signed in", body = ErrorBody)))]
async fn notifications(
    State(state): State<Arc<AppState>>,
    SignedIn(user): SignedIn,
    Query(param): Query<UnreadParam>,
) -> Result<Json<Notifications>, ServerError> {
    let notifications = state
        .visiting
        .platform()
        .notifications(&user, param.unread)
        .await?;
    Ok(Json(Notifications { notifications }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ReadBody {
    up_to: i64,
}

#[derive(Debug, Serialize, ToSchema)]
struct Marked {
    marked: u64,
}

#[utoipa::path(post, path = "/api/v1/notifications/read", tag = "applications", security(("session" = [])), request_body = ReadBody, responses((status = 200, body = Marked), (status = "4XX", description = "refused (422, with problems by field), denied, not found, not signed in", body = ErrorBody)))]
async fn read(
    State(state): State<Arc<AppState>>,
    SignedIn(user): SignedIn,
    Json(body): Json<ReadBody>,
) -> Result<Json<Marked>, ServerError> {
    let marked = state
        .visiting
        .platform()
        .mark_notifications_read(&user, body.up_to)
        .await?;
    Ok(Json(Marked { marked }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ReportBody {
    report: String,
}

#[utoipa::path(post, path = "/api/v1/projects/{id}/report", tag = "applications", security(("session" = [])), params(("id" = String, Path, description = "project")), request_body = ReportBody, responses((status = 200, body = niji_governance::CompletionReport), (status = "4XX", description = "refused (422, with problems by field), denied, not found, not signed in", body = ErrorBody)))]
async fn report(
    State(state): State<Arc<AppState>>,
    SignedIn(user): SignedIn,
    Path(project): Path<String>,
    Json(body): Json<ReportBody>,
) -> Result<Json<niji_governance::CompletionReport>, ServerError> {
    let p = state.visiting.platform();
    Ok(Json(
        p.report_completion(&user, &project, &body.report).await?,
    ))
}
