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

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use niji_governance::applications::{Decision, Notification, QueueLine};
use niji_governance::{
    ApplicationForm, ApplicationPage, Conditions, DecisionOutcome, FieldError, ReviewVote,
};
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::http::SignedIn;
use crate::status::ServerError;

pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/v1/applications", get(mine).post(draft))
        .route("/api/v1/applications/{id}", get(page).put(edit))
        .route("/api/v1/applications/{id}/submit", post(submit))
        .route("/api/v1/applications/{id}/withdraw", post(withdraw))
        .route("/api/v1/applications/{id}/accept", post(accept))
        .route("/api/v1/applications/{id}/assignments", post(assign))
        .route("/api/v1/applications/{id}/conflict", post(conflict))
        .route("/api/v1/applications/{id}/votes", post(vote))
        .route("/api/v1/applications/{id}/decision", post(decide))
        .route("/api/v1/projects/{id}/amendments", post(amend))
        .route("/api/v1/projects/{id}/report", post(report))
        .route("/api/v1/review/queue", get(queue))
        .route("/api/v1/notifications", get(notifications))
        .route("/api/v1/notifications/read", post(read))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FormBody {
    form: ApplicationForm,
}

#[derive(Debug, Serialize)]
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

#[derive(Debug, Serialize)]
struct Done {
    application: String,
    state: &'static str,
}

#[derive(Debug, Serialize)]
struct Lines {
    applications: Vec<QueueLine>,
}

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

async fn page(
    State(state): State<Arc<AppState>>,
    SignedIn(user): SignedIn,
    Path(id): Path<String>,
) -> Result<Json<ApplicationPage>, ServerError> {
    let p = state.visiting.platform();
    Ok(Json(
        p.application_page(&user, &id, state.visiting.catalog())
            .await?,
    ))
}

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

#[derive(Debug, Serialize)]
struct Accepted {
    application: String,
    project: niji_governance::ProjectSpec,
}

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

async fn queue(
    State(state): State<Arc<AppState>>,
    SignedIn(user): SignedIn,
) -> Result<Json<Lines>, ServerError> {
    let applications = state.visiting.platform().review_queue(&user, 500).await?;
    Ok(Json(Lines { applications }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AssignBody {
    reviewer: String,
    databases: Vec<String>,
}

#[derive(Debug, Serialize)]
struct Assigned {
    reviewer: String,
    /// Why the reviewer is recused, when they are.
    recused: Option<String>,
}

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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConflictBody {
    reason: String,
}

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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct VoteBody {
    vote: ReviewVote,
    #[serde(default)]
    comments: BTreeMap<String, String>,
}

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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DecisionBody {
    outcome: DecisionOutcome,
    #[serde(default)]
    conditions: Conditions,
    reason: String,
}

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

#[derive(Debug, Deserialize)]
struct UnreadParam {
    #[serde(default)]
    unread: bool,
}

#[derive(Debug, Serialize)]
struct Notifications {
    notifications: Vec<Notification>,
}

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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReadBody {
    up_to: i64,
}

#[derive(Debug, Serialize)]
struct Marked {
    marked: u64,
}

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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReportBody {
    report: String,
}

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
