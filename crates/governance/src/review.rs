//! Output review's state machine: what the automatic checks held back stays in the project,
//! where its author may ask for release with a justification and output checkers (committee
//! members, neither the author nor members of the project) vote. Two approvals release it;
//! one rejection ends it. Who may do what, in which state, and what is recorded are decided
//! here; what approval would release is disclosure control's, on the query side.

use std::collections::HashMap;

use tokio::sync::MutexGuard;

use crate::service::today;
use crate::{
    Action, GovernanceError, Output, OutputOutcome, Platform, Project, Review, Stored as _, Vote,
};

/// Approvals from distinct checkers that release an output.
const APPROVALS_NEEDED: usize = 2;
/// Justifications say what the output is for and why it is safe: a word is not enough.
const MIN_JUSTIFICATION: usize = 20;
const MAX_TEXT: usize = 4_000;

/// An output, its project, and whether the user sees it as a checker.
#[derive(Debug)]
pub struct OutputAccess {
    pub output: Output,
    pub project: Project,
    pub checker: bool,
}

/// A vote that passed every check, waiting to be cast; votes take turns while one is held.
#[derive(Debug)]
pub struct VoteTicket<'a> {
    _turn: MutexGuard<'a, ()>,
    pub output: Output,
    pub vote: Vote,
    pub reason: String,
    /// Whether this is the approval that releases the output.
    pub deciding: bool,
}

/// A decision whose deciding vote was recorded but not carried out: the process ended between
/// the vote and the release (or rejection) it decided.
#[derive(Debug)]
pub enum Interrupted {
    /// Enough approvals and no rejection: release, as the last approver did.
    Release { output: Output, checker: String },
    Reject {
        output: Output,
        checker: String,
        reason: String,
    },
}

fn no_such_output(id: &str) -> GovernanceError {
    GovernanceError::NotFound(format!("output {id}"))
}

/// The text of a justification or vote reason, trimmed and bounded.
fn text(what: &str, s: &str, min: usize) -> Result<String, GovernanceError> {
    let s = s.trim();
    if s.chars().count() < min.max(1) {
        return Err(GovernanceError::Refused(format!(
            "{what} is required (at least {} characters)",
            min.max(1)
        )));
    }
    if s.chars().count() > MAX_TEXT {
        return Err(GovernanceError::Refused(format!(
            "{what} is longer than {MAX_TEXT} characters"
        )));
    }
    Ok(s.to_string())
}

impl Platform {
    /// Why `user` may not check `output` of `project` (None: they may). Whoever is not a
    /// checker sees the output as a member does, or not at all.
    async fn not_checker(
        &self,
        user: &str,
        output: &Output,
        project: &Project,
    ) -> Option<&'static str> {
        if !self.allows(user, "", Action::CheckOutputs).await {
            Some("only output checkers vote on releases")
        } else if output.author == user {
            Some("an output's author never checks it")
        } else if project.spec.members.iter().any(|m| m.user == user) {
            Some("checkers are independent: members of the output's project do not vote")
        } else {
            None
        }
    }

    /// Output `id` and its project; whoever asks for one that is not there is told the same.
    async fn output_and_project(&self, id: &str) -> Result<(Output, Project), GovernanceError> {
        let output = self
            .db()
            .output(id)
            .await?
            .ok_or_else(|| no_such_output(id))?;
        let project = self
            .db()
            .project(&output.project)
            .await?
            .ok_or_else(|| no_such_output(id))?;
        Ok((output, project))
    }

    /// Output `id` as `user` may see it. Whoever may not see it is told that there is no such
    /// output.
    pub async fn output_access(
        &self,
        user: &str,
        id: &str,
    ) -> Result<OutputAccess, GovernanceError> {
        let (output, project) = self.output_and_project(id).await?;
        let checker = self.not_checker(user, &output, &project).await.is_none();
        if checker
            || self
                .allows(user, &output.project, Action::ReadOutputs)
                .await
        {
            return Ok(OutputAccess {
                output,
                project,
                checker,
            });
        }
        Err(no_such_output(id))
    }

    /// Checkers: the queue of outputs of live projects awaiting their votes. Researchers:
    /// every output of their projects. `project` narrows either.
    pub async fn list_outputs(
        &self,
        user: &str,
        project: Option<&str>,
    ) -> Result<Vec<Output>, GovernanceError> {
        let today = today();
        let projects: HashMap<String, Project> = self
            .db()
            .projects()
            .await?
            .into_iter()
            .filter(|p| p.is_live(&today) && project.is_none_or(|id| id == p.spec.id))
            .map(|p| (p.spec.id.clone(), p))
            .collect();
        let mut out = Vec::new();
        for o in self.db().outputs(project, None).await? {
            let Some(p) = projects.get(&o.project) else {
                continue;
            };
            let queued =
                o.review == Review::Requested && self.not_checker(user, &o, p).await.is_none();
            if queued || self.allows(user, &o.project, Action::ReadOutputs).await {
                out.push(o);
            }
        }
        Ok(out)
    }

    /// Checks that `user` may ask for output `id`'s release now, with `justification`;
    /// returns the output and the justification as it will be kept. Whether approval could
    /// release anything is for the query side to tell before [`Self::request_release`].
    pub async fn may_request_release(
        &self,
        user: &str,
        id: &str,
        justification: &str,
    ) -> Result<(Output, String), GovernanceError> {
        let OutputAccess { output, .. } = self.output_access(user, id).await?;
        if output.author != user
            || !self
                .allows(user, &output.project, Action::RequestRelease)
                .await
        {
            return Err(GovernanceError::Denied(
                "only its author, while a member of its project, asks for an output's release"
                    .into(),
            ));
        }
        let justification = text("a justification", justification, MIN_JUSTIFICATION)?;
        if output.review != Review::None {
            return Err(GovernanceError::Refused(format!(
                "output {id} is already {}",
                output.review.as_str()
            )));
        }
        if output.outcome == OutputOutcome::Held {
            let why = output.findings["held"].as_str().unwrap_or("held");
            return Err(GovernanceError::Refused(format!(
                "held because {why}: output checkers cannot waive that; change the query so that it can be checked"
            )));
        }
        Ok((output, justification))
    }

    /// Records the request checked by [`Self::may_request_release`].
    pub async fn request_release(
        &self,
        user: &str,
        output: &Output,
        justification: &str,
    ) -> Result<Output, GovernanceError> {
        let id = &output.id;
        if !self.db().request_release(id, justification).await? {
            return Err(GovernanceError::Refused(format!(
                "release of output {id} was already asked for"
            )));
        }
        let detail = serde_json::json!({"output": id, "project": output.project, "justification": justification});
        self.audited(user, "output.request", &detail).await?;
        self.db()
            .output(id)
            .await?
            .ok_or_else(|| no_such_output(id))
    }

    /// Checks a checker's vote: once per checker, with a reason, on an output awaiting
    /// review in a live project. The ticket keeps other votes waiting until it is cast or
    /// dropped; across processes the database decides once (`PlatformDb::decide`).
    pub async fn may_vote(
        &self,
        checker: &str,
        id: &str,
        vote: Vote,
        reason: &str,
    ) -> Result<VoteTicket<'_>, GovernanceError> {
        let turn = self.review_lock.lock().await;
        let (output, project) = self.output_and_project(id).await?;
        if let Some(why) = self.not_checker(checker, &output, &project).await {
            return Err(GovernanceError::Denied(why.into()));
        }
        if output.review != Review::Requested {
            return Err(GovernanceError::Refused(format!(
                "output {id} is not awaiting review (it is {})",
                output.review.as_str()
            )));
        }
        if !project.is_live(&today()) {
            return Err(GovernanceError::Refused(format!(
                "project {} is closed",
                output.project
            )));
        }
        let reason = text("a reason", reason, 1)?;
        let votes = self.db().votes(id).await?;
        if votes.iter().any(|v| v.checker == checker) {
            return Err(GovernanceError::Refused(format!(
                "you have voted on output {id} already"
            )));
        }
        let approvals = votes.iter().filter(|v| v.vote == Vote::Approve).count()
            + usize::from(vote == Vote::Approve);
        Ok(VoteTicket {
            _turn: turn,
            deciding: vote == Vote::Approve && approvals >= APPROVALS_NEEDED,
            output,
            vote,
            reason,
        })
    }

    /// Casts a checked vote: it counts in the transaction that audits it.
    pub async fn cast_vote(
        &self,
        checker: &str,
        ticket: &VoteTicket<'_>,
    ) -> Result<(), GovernanceError> {
        let output = &ticket.output;
        let detail = serde_json::json!({"output": output.id, "project": output.project, "vote": ticket.vote, "reason": ticket.reason});
        if !self
            .db()
            .cast_vote(
                self.audit(),
                &detail,
                &output.id,
                checker,
                ticket.vote,
                &ticket.reason,
            )
            .await?
        {
            return Err(GovernanceError::Refused(format!(
                "you have voted on output {} already",
                output.id
            )));
        }
        Ok(())
    }

    /// Ends a review as rejected, unless another process decided it first.
    pub async fn reject_output(
        &self,
        output: &Output,
        actor: &str,
        why: &str,
    ) -> Result<(), GovernanceError> {
        let detail =
            serde_json::json!({"output": output.id, "project": output.project, "why": why});
        self.db()
            .decide(
                self.audit(),
                actor,
                ("output.rejected", &detail),
                &output.id,
                Review::Rejected,
                None,
            )
            .await?;
        Ok(())
    }

    /// Ends a review as released with `still_masked` (the cells that stay masked), unless
    /// another process decided it first.
    pub async fn release_output(
        &self,
        output: &Output,
        actor: &str,
        still_masked: &serde_json::Value,
    ) -> Result<(), GovernanceError> {
        let detail = serde_json::json!({
            "output": output.id,
            "project": output.project,
            "masked_before": output.findings["suppressed"].as_array().map_or(0, Vec::len),
            "still_masked": still_masked.as_array().map_or(0, Vec::len),
        });
        self.db()
            .decide(
                self.audit(),
                actor,
                ("output.released", &detail),
                &output.id,
                Review::Released,
                Some(still_masked),
            )
            .await?;
        Ok(())
    }

    /// Outputs still under review whose votes have decided them: a vote is recorded before
    /// the release or rejection it decides, so a process stopped between the two leaves one.
    pub async fn interrupted_decisions(&self) -> Result<Vec<Interrupted>, GovernanceError> {
        let mut found = Vec::new();
        for output in self.db().outputs(None, Some(Review::Requested)).await? {
            let votes = self.db().votes(&output.id).await?;
            if let Some(no) = votes.iter().find(|v| v.vote == Vote::Reject) {
                found.push(Interrupted::Reject {
                    checker: no.checker.clone(),
                    reason: no.reason.clone(),
                    output,
                });
                continue;
            }
            let approvals: Vec<_> = votes.iter().filter(|v| v.vote == Vote::Approve).collect();
            if approvals.len() >= APPROVALS_NEEDED
                && let Some(last) = approvals.last()
            {
                found.push(Interrupted::Release {
                    checker: last.checker.clone(),
                    output,
                });
            }
        }
        Ok(found)
    }

    /// The output after a change, as stored.
    pub async fn output(&self, id: &str) -> Result<Output, GovernanceError> {
        self.db()
            .output(id)
            .await?
            .ok_or_else(|| no_such_output(id))
    }
}
