//! The committee's side: the chair assigns members (experts per database); members declare
//! conflicts of interest, and one from the applicant's organisation is recused without being
//! asked; assigned, unrecused members vote with a comment per section; the chair signs the
//! decision once the quorum has voted. Refusals are audited with their reasons.

use std::collections::BTreeMap;

use niji_catalog::Catalog;

use super::store::{Application, Decision, Stamp};
use super::{ApplicationState as S, Conditions, DecisionOutcome, ReviewVote, SECTIONS};
use crate::{Action, GovernanceError, Platform, Stored as _, UserRole};

const MAX_COMMENT: usize = 4_000;

/// Why someone never reviews an application.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Conflict {
    /// The applicant or one of the analysts: never assigned.
    Party,
    /// A member of the applicant's organisation: assigned recused.
    Colleague(String),
}

impl std::fmt::Display for Conflict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Conflict::Party => f.write_str("the applicant or an analyst of the application"),
            Conflict::Colleague(org) => {
                write!(f, "a member of the applicant's organisation ({org})")
            }
        }
    }
}

impl Platform {
    /// Why `user` may not review `app` (None: they may).
    async fn conflict_of(
        &self,
        user: &str,
        app: &Application,
    ) -> Result<Option<Conflict>, GovernanceError> {
        if app.applicant == user || app.form.analysts.iter().any(|m| m.user == user) {
            return Ok(Some(Conflict::Party));
        }
        if self.db().organisation_of(user).await?.as_deref() == Some(app.organisation.as_str()) {
            return Ok(Some(Conflict::Colleague(app.organisation.clone())));
        }
        Ok(None)
    }

    /// Application `id`; a missing one is refused (and logged) as not found.
    pub(crate) async fn application_or_refuse(
        &self,
        actor: &str,
        id: &str,
        attempted: &str,
    ) -> Result<Application, GovernanceError> {
        match self.db().application(id).await? {
            Some(app) => Ok(app),
            None => {
                let e = GovernanceError::NotFound(format!("application {id}"));
                Err(self.refuse(actor, attempted, id, e).await)
            }
        }
    }

    /// The chair assigns `reviewer` to review `databases` of application `id`. A reviewer
    /// from the applicant's organisation is assigned recused (the record shows why); the
    /// applicant and the analysts cannot be assigned at all.
    pub async fn assign_reviewer(
        &self,
        actor: &str,
        id: &str,
        reviewer: &str,
        databases: &[String],
    ) -> Result<Option<String>, GovernanceError> {
        if !self.allows(actor, "", Action::AssignReviewers).await {
            let e = GovernanceError::Denied("only the chair assigns reviewers".into());
            return Err(self.refuse(actor, "assign", id, e).await);
        }
        let app = self.application_or_refuse(actor, id, "assign").await?;
        if !app.state.is_in_review() {
            let e = GovernanceError::Refused(format!(
                "application {id} is {}: reviewers are assigned while it is in review",
                app.state.as_str_for_people()
            ));
            return Err(self.refuse(actor, "assign", id, e).await);
        }
        let is_member = self
            .db()
            .user(reviewer)
            .await?
            .is_some_and(|u| u.role.reviews());
        if !is_member {
            let e = GovernanceError::Refused(format!("{reviewer} is not a committee member"));
            return Err(self.refuse(actor, "assign", id, e).await);
        }
        let asked = app.form.databases();
        if let Some(db) = databases.iter().find(|d| !asked.contains(*d)) {
            let e = GovernanceError::Refused(format!("the application asks for no {db} data"));
            return Err(self.refuse(actor, "assign", id, e).await);
        }
        let conflict = match self.conflict_of(reviewer, &app).await? {
            Some(Conflict::Party) => {
                let e = GovernanceError::Refused(format!(
                    "{reviewer} is the applicant or an analyst of {id} and never reviews it"
                ));
                return Err(self.refuse(actor, "assign", id, e).await);
            }
            colleague => colleague.map(|c| c.to_string()),
        };
        if !self
            .db()
            .assign(id, reviewer, databases, actor, conflict.as_deref())
            .await?
        {
            let e = GovernanceError::Exists(format!("{reviewer}'s assignment to {id}"));
            return Err(self.refuse(actor, "assign", id, e).await);
        }
        let due = self.due_after(self.review_policy().due().review);
        self.db()
            .transition(
                id,
                &[S::Submitted],
                S::UnderReview,
                Stamp::ReviewStarted,
                Some(&due),
            )
            .await?;
        let detail = serde_json::json!({
            "application": id, "reviewer": reviewer, "databases": databases,
            "recused": conflict,
        });
        self.audited(actor, "application.assign", &detail).await?;
        let message = match &conflict {
            None => format!("you are asked to review {id} 「{}」", app.title),
            Some(why) => format!("you were assigned to {id} and recused: {why}"),
        };
        self.db()
            .notify(&[reviewer.to_string()], Some(id), "assigned", &message)
            .await?;
        Ok(conflict)
    }

    /// A member declares a conflict of interest and is recused from `id`.
    pub async fn declare_conflict(
        &self,
        actor: &str,
        id: &str,
        reason: &str,
    ) -> Result<(), GovernanceError> {
        let reason = reason.trim();
        if reason.is_empty() || reason.chars().count() > MAX_COMMENT {
            let e = GovernanceError::Refused("say what the conflict is (1-4000 characters)".into());
            return Err(self.refuse(actor, "declare_conflict", id, e).await);
        }
        if !self
            .db()
            .set_conflict(id, actor, &format!("declared: {reason}"))
            .await?
        {
            let e = GovernanceError::NotFound(format!("your assignment to {id}"));
            return Err(self.refuse(actor, "declare_conflict", id, e).await);
        }
        let detail = serde_json::json!({"application": id, "reason": reason});
        self.audited(actor, "application.conflict", &detail).await?;
        let chairs = self.users_with(UserRole::Chair).await?;
        let message = format!("{actor} declared a conflict of interest on {id} and is recused");
        self.db()
            .notify(&chairs, Some(id), "recused", &message)
            .await
    }

    /// An assigned, unrecused member votes on the submitted version, with comments per
    /// section of the form.
    pub async fn vote_on_application(
        &self,
        actor: &str,
        id: &str,
        vote: ReviewVote,
        comments: &BTreeMap<String, String>,
    ) -> Result<(), GovernanceError> {
        let refuse = |m: String| GovernanceError::Refused(m);
        if !self.allows(actor, "", Action::ReviewApplications).await {
            let e = GovernanceError::Denied("only committee members review".into());
            return Err(self.refuse(actor, "vote", id, e).await);
        }
        let app = self.application_or_refuse(actor, id, "vote").await?;
        let assignment = self
            .db()
            .assignments(id)
            .await?
            .into_iter()
            .find(|a| a.reviewer == actor);
        let problem = if let Some(why) = self.conflict_of(actor, &app).await? {
            Some(GovernanceError::Denied(format!(
                "you are recused from {id}: {why}"
            )))
        } else if let Some(a) = &assignment
            && let Some(why) = &a.conflict
        {
            Some(GovernanceError::Denied(format!(
                "you are recused from {id}: {why}"
            )))
        } else if assignment.is_none() {
            Some(GovernanceError::Denied(format!(
                "you are not assigned to {id}"
            )))
        } else if app.state != S::UnderReview {
            Some(refuse(format!(
                "application {id} is {}: votes are cast while it is under review",
                app.state.as_str_for_people()
            )))
        } else if let Some(section) = comments.keys().find(|k| !SECTIONS.contains(&k.as_str())) {
            Some(refuse(format!(
                "no section {section:?}; comment on {}",
                SECTIONS.join(", ")
            )))
        } else if comments.values().any(|c| c.chars().count() > MAX_COMMENT) {
            Some(refuse(format!(
                "a comment is longer than {MAX_COMMENT} characters"
            )))
        } else if vote != ReviewVote::Approve && comments.values().all(|c| c.trim().is_empty()) {
            Some(refuse(
                "say why: a vote other than approve needs a comment".into(),
            ))
        } else {
            None
        };
        if let Some(e) = problem {
            return Err(self.refuse(actor, "vote", id, e).await);
        }
        if !self
            .db()
            .add_review_vote(id, app.version, actor, vote, comments)
            .await?
        {
            let e = refuse(format!(
                "you voted on version {} of {id} already",
                app.version
            ));
            return Err(self.refuse(actor, "vote", id, e).await);
        }
        let detail = serde_json::json!({
            "application": id, "version": app.version, "vote": vote.as_str(), "comments": comments,
        });
        self.audited(actor, "application.vote", &detail).await?;
        let chairs = self.users_with(UserRole::Chair).await?;
        let message = format!("{actor} voted {} on {id}", vote.as_str());
        self.db().notify(&chairs, Some(id), "voted", &message).await
    }

    /// The chair signs the decision on the submitted version, with conditions when approving.
    /// Refused without quorum, after a decision, or by a chair with a conflict.
    pub async fn decide_application(
        &self,
        actor: &str,
        id: &str,
        outcome: DecisionOutcome,
        conditions: Conditions,
        reason: &str,
        catalog: &Catalog,
    ) -> Result<Decision, GovernanceError> {
        if !self.allows(actor, "", Action::DecideApplications).await {
            let e = GovernanceError::Denied("only the chair signs decisions".into());
            return Err(self.refuse(actor, "decide", id, e).await);
        }
        let app = self.application_or_refuse(actor, id, "decide").await?;
        if let Some(why) = self.conflict_of(actor, &app).await? {
            let e = GovernanceError::Denied(format!("you are recused from {id}: {why}"));
            return Err(self.refuse(actor, "decide", id, e).await);
        }
        if app.state != S::UnderReview {
            let e = GovernanceError::Refused(format!(
                "application {id} is {}: only an application under review is decided",
                app.state.as_str_for_people()
            ));
            return Err(self.refuse(actor, "decide", id, e).await);
        }
        let quorum = self.review_policy().quorum;
        let recused: Vec<String> = self
            .db()
            .assignments(id)
            .await?
            .into_iter()
            .filter(|a| a.conflict.is_some())
            .map(|a| a.reviewer)
            .collect();
        let votes = self
            .db()
            .review_votes(id)
            .await?
            .into_iter()
            .filter(|v| v.version == app.version && !recused.contains(&v.reviewer))
            .count();
        if votes < quorum {
            let e = GovernanceError::Refused(format!(
                "no quorum: {votes} of the {quorum} votes needed on version {} of {id}",
                app.version
            ));
            return Err(self.refuse(actor, "decide", id, e).await);
        }
        let reason = reason.trim();
        if reason.is_empty() || reason.chars().count() > MAX_COMMENT {
            let e =
                GovernanceError::Refused("give the decision's reasons (1-4000 characters)".into());
            return Err(self.refuse(actor, "decide", id, e).await);
        }
        if outcome != DecisionOutcome::Approved && !conditions.is_empty() {
            let e = GovernanceError::Refused("conditions belong to an approval".into());
            return Err(self.refuse(actor, "decide", id, e).await);
        }
        let mut problems = conditions.problems(&app.form);
        if outcome == DecisionOutcome::Approved && problems.is_empty() {
            let spec = conditions.compile(&app.form, niji_pseudo::CivilDate::today());
            problems.extend(spec.problems(catalog));
        }
        if !problems.is_empty() {
            let e = GovernanceError::Invalid(problems);
            return Err(self.refuse(actor, "decide", id, e).await);
        }
        let decision = Decision {
            version: app.version,
            outcome,
            conditions,
            reason: reason.to_string(),
            signed_by: actor.to_string(),
            signed_at: niji_audit::now_rfc3339(),
        };
        let due = match outcome {
            DecisionOutcome::Rejected => None,
            _ => Some(self.due_after(self.review_policy().due().response)),
        };
        if !self
            .db()
            .decide_application(&app, &decision, due.as_deref())
            .await?
        {
            let e = GovernanceError::Refused(format!("application {id} was decided meanwhile"));
            return Err(self.refuse(actor, "decide", id, e).await);
        }
        let detail = serde_json::json!({"application": id, "decision": decision});
        self.audited(actor, "application.decide", &detail).await?;
        let mut told = vec![app.applicant.clone()];
        told.extend(self.reviewers_of(id).await?);
        let message = format!("{id} was {}", outcome.state().as_str_for_people());
        self.db()
            .notify(&told, Some(id), outcome.as_str(), &message)
            .await?;
        Ok(decision)
    }

    /// Reviewers of `id` who are not recused.
    pub(crate) async fn reviewers_of(&self, id: &str) -> Result<Vec<String>, GovernanceError> {
        Ok(self
            .db()
            .assignments(id)
            .await?
            .into_iter()
            .filter(|a| a.conflict.is_none())
            .map(|a| a.reviewer)
            .collect())
    }

    /// Everyone with platform role `role`.
    pub(crate) async fn users_with(&self, role: UserRole) -> Result<Vec<String>, GovernanceError> {
        Ok(self
            .db()
            .users()
            .await?
            .into_iter()
            .filter(|u| u.role == role)
            .map(|u| u.name)
            .collect())
    }
}
