//! Output checking: the checkers' queue, a held result with what approval would still leave
//! masked, and the votes; for a project's members, their outputs' state and released rows.

use std::sync::Arc;

use askama::Template;
use askama_web::WebTemplate;
use axum::Form;
use axum::extract::{Path, State};
use axum::response::Response;
use niji_governance::{Action, CastVote, Output, Vote};
use serde::Deserialize;

use super::result::ResultView;
use crate::Portal;
use crate::chrome::{Chrome, Member};
use crate::error::PortalError;

#[derive(Template, WebTemplate)]
#[template(path = "outputs.html")]
pub(crate) struct QueuePage {
    c: Chrome,
    outputs: Vec<Output>,
}

pub(crate) async fn queue(
    State(portal): State<Arc<Portal>>,
    m: Member,
) -> Result<QueuePage, PortalError> {
    Ok(QueuePage {
        outputs: portal.platform().list_outputs(&m.user.name, None).await?,
        c: m.chrome,
    })
}

#[derive(Template, WebTemplate)]
#[template(path = "output.html")]
pub(crate) struct OutputPage {
    c: Chrome,
    output: Output,
    votes: Vec<CastVote>,
    r: Option<ResultView>,
    /// Checkers, while it can be released: cells masked now, and those approval would keep.
    masked_now: Option<usize>,
    still_masked: usize,
    may_vote: bool,
}

pub(crate) async fn page(
    State(portal): State<Arc<Portal>>,
    m: Member,
    Path(id): Path<String>,
) -> Result<OutputPage, PortalError> {
    let view = portal.visiting.show_output(&m.user.name, &id).await?;
    let still: Vec<_> = view
        .preview
        .as_ref()
        .map(|p| p.still_masked.clone())
        .unwrap_or_default();
    let may_vote = view.preview.is_some()
        && portal
            .platform()
            .allows(&m.user.name, "", Action::CheckOutputs)
            .await
        && !view.votes.iter().any(|v| v.checker == m.user.name);
    Ok(OutputPage {
        r: view.result.as_ref().map(|o| ResultView::of(o, &still)),
        masked_now: view.preview.as_ref().map(|p| p.masked_now),
        still_masked: still.len(),
        output: view.output,
        votes: view.votes,
        may_vote,
        c: m.chrome,
    })
}

#[derive(Debug, Deserialize)]
pub(crate) struct JustificationForm {
    justification: String,
}

pub(crate) async fn request_release(
    State(portal): State<Arc<Portal>>,
    m: Member,
    Path(id): Path<String>,
    Form(f): Form<JustificationForm>,
) -> Result<Response, PortalError> {
    portal
        .visiting
        .request_release(&m.user.name, &id, &f.justification)
        .await?;
    Ok(super::see_other(&format!(
        "/outputs/{}",
        super::url_encode(&id)
    )))
}

#[derive(Debug, Deserialize)]
pub(crate) struct VoteForm {
    /// `approve` or `reject`.
    vote: String,
    reason: String,
}

pub(crate) async fn vote(
    State(portal): State<Arc<Portal>>,
    m: Member,
    Path(id): Path<String>,
    Form(f): Form<VoteForm>,
) -> Result<Response, PortalError> {
    let vote = match f.vote.as_str() {
        "approve" => Vote::Approve,
        "reject" => Vote::Reject,
        other => return Err(PortalError::Refused(format!("no vote {other:?}"))),
    };
    portal
        .visiting
        .vote(&m.user.name, &id, vote, &f.reason)
        .await?;
    Ok(super::see_other(&format!(
        "/outputs/{}",
        super::url_encode(&id)
    )))
}
