//! The committee's side: the review queue with due dates and overdue flags, and the actions
//! on an application's page (assignment, conflict declaration, votes, the chair's decision).

use std::collections::BTreeMap;
use std::sync::Arc;

use askama::Template;
use askama_web::WebTemplate;
use axum::Form;
use axum::extract::{Path, State};
use axum::response::Response;
use niji_governance::applications::QueueLine;
use niji_governance::{Conditions, DecisionOutcome, ReviewVote};
use serde::Deserialize;

use crate::Portal;
use crate::chrome::{Chrome, Member};
use crate::error::PortalError;

#[derive(Template, WebTemplate)]
#[template(path = "review.html")]
pub(crate) struct QueuePage {
    c: Chrome,
    lines: Vec<QueueLine>,
    overdue: usize,
}

pub(crate) async fn queue(
    State(portal): State<Arc<Portal>>,
    m: Member,
) -> Result<QueuePage, PortalError> {
    let lines = portal.platform().review_queue(&m.user.name, 500).await?;
    Ok(QueuePage {
        overdue: lines.iter().filter(|l| l.overdue).count(),
        lines,
        c: m.chrome,
    })
}

#[derive(Debug, Deserialize)]
pub(crate) struct AssignForm {
    reviewer: String,
    databases: String,
}

pub(crate) async fn assign(
    State(portal): State<Arc<Portal>>,
    m: Member,
    Path(id): Path<String>,
    Form(f): Form<AssignForm>,
) -> Result<Response, PortalError> {
    let databases: Vec<String> = f
        .databases
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(str::to_string)
        .collect();
    portal
        .platform()
        .assign_reviewer(&m.user.name, &id, f.reviewer.trim(), &databases)
        .await?;
    Ok(super::to_application(&id))
}

#[derive(Debug, Deserialize)]
pub(crate) struct ReasonForm {
    reason: String,
}

pub(crate) async fn conflict(
    State(portal): State<Arc<Portal>>,
    m: Member,
    Path(id): Path<String>,
    Form(f): Form<ReasonForm>,
) -> Result<Response, PortalError> {
    portal
        .platform()
        .declare_conflict(&m.user.name, &id, &f.reason)
        .await?;
    Ok(super::to_application(&id))
}

#[derive(Debug, Deserialize)]
pub(crate) struct VoteForm {
    vote: ReviewVote,
    section: String,
    #[serde(default)]
    comment: String,
}

pub(crate) async fn vote(
    State(portal): State<Arc<Portal>>,
    m: Member,
    Path(id): Path<String>,
    Form(f): Form<VoteForm>,
) -> Result<Response, PortalError> {
    let mut comments = BTreeMap::new();
    if !f.comment.trim().is_empty() {
        comments.insert(f.section, f.comment);
    }
    portal
        .platform()
        .vote_on_application(&m.user.name, &id, f.vote, &comments)
        .await?;
    Ok(super::to_application(&id))
}

#[derive(Debug, Deserialize)]
pub(crate) struct DecisionForm {
    outcome: DecisionOutcome,
    /// One condition per line.
    #[serde(default)]
    notes: String,
    reason: String,
}

pub(crate) async fn decide(
    State(portal): State<Arc<Portal>>,
    m: Member,
    Path(id): Path<String>,
    Form(f): Form<DecisionForm>,
) -> Result<Response, PortalError> {
    let conditions = Conditions {
        notes: f
            .notes
            .lines()
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(str::to_string)
            .collect(),
        ..Conditions::default()
    };
    portal
        .platform()
        .decide_application(
            &m.user.name,
            &id,
            f.outcome,
            conditions,
            &f.reason,
            portal.visiting.catalog(),
        )
        .await?;
    Ok(super::to_application(&id))
}
