//! The applicant's side: drafts, edits, submission, withdrawal, and accepting the signed
//! decision, which compiles it into the project (new, or the amended one changed in place).
//! Every change is audited; every refusal is audited too, with its reason.

use niji_catalog::Catalog;
use niji_pseudo::CivilDate;

use super::store::{Application, Stamp};
use super::{ApplicationForm, ApplicationKind, ApplicationState as S, calendar};
use crate::service::today;
use crate::{Action, FieldError, GovernanceError, MemberRole, Platform, ProjectSpec};

impl Platform {
    /// Logs a refusal of `action` on application `id` and returns it as an error.
    pub(crate) async fn refuse(
        &self,
        actor: &str,
        action: &str,
        id: &str,
        error: GovernanceError,
    ) -> GovernanceError {
        let detail = serde_json::json!({
            "application": id, "attempted": action, "reason": error.to_string(),
        });
        match self.audited(actor, "application.refused", &detail).await {
            Ok(()) => error,
            Err(audit) => audit,
        }
    }

    /// Application `id` if `actor` may see it: its applicant, its analysts, its reviewers
    /// who are not recused, and those who read every application (the chair, custodians).
    /// Anyone else is told there is no such application.
    pub async fn application_for(
        &self,
        actor: &str,
        id: &str,
    ) -> Result<Application, GovernanceError> {
        let missing = || GovernanceError::NotFound(format!("application {id}"));
        let app = self.db().application(id).await?.ok_or_else(missing)?;
        let involved = app.applicant == actor
            || app.form.analysts.iter().any(|m| m.user == actor)
            || self.allows(actor, "", Action::ReadApplications).await
            || self
                .db()
                .assignments(id)
                .await?
                .iter()
                .any(|a| a.reviewer == actor && a.conflict.is_none());
        if involved { Ok(app) } else { Err(missing()) }
    }

    /// Saves a new draft (problems and all: a draft may be incomplete). The applicant's
    /// organisation must be the form's.
    pub async fn draft_application(
        &self,
        actor: &str,
        form: &ApplicationForm,
    ) -> Result<String, GovernanceError> {
        self.may_apply(actor, form).await?;
        let id = self
            .db()
            .insert_application(ApplicationKind::New, None, actor, &form.organisation, form)
            .await?;
        let detail = serde_json::json!({"application": id, "kind": "new", "title": form.title});
        self.audited(actor, "application.draft", &detail).await?;
        Ok(id)
    }

    /// Drafts an amendment of live project `project` (columns, period, members, duration):
    /// it goes through the same review, and on acceptance the project changes in place. Only
    /// the project's lead may ask.
    pub async fn draft_amendment(
        &self,
        actor: &str,
        project: &str,
        form: &ApplicationForm,
    ) -> Result<String, GovernanceError> {
        self.may_apply(actor, form).await?;
        let live = self.db().project(project).await?;
        let lead = live.as_ref().is_some_and(|p| {
            p.is_live(&today())
                && p.spec
                    .members
                    .iter()
                    .any(|m| m.user == actor && m.role == MemberRole::Lead)
        });
        if !lead {
            let e = GovernanceError::Denied(format!(
                "only the lead of live project {project} may ask to amend it"
            ));
            return Err(self.refuse(actor, "amend", project, e).await);
        }
        if form.project_id != project {
            let e = GovernanceError::Refused("an amendment keeps the project's id".into());
            return Err(self.refuse(actor, "amend", project, e).await);
        }
        let id = self
            .db()
            .insert_application(
                ApplicationKind::Amendment,
                Some(project),
                actor,
                &form.organisation,
                form,
            )
            .await?;
        let detail =
            serde_json::json!({"application": id, "kind": "amendment", "project": project});
        self.audited(actor, "application.draft", &detail).await?;
        Ok(id)
    }

    async fn may_apply(&self, actor: &str, form: &ApplicationForm) -> Result<(), GovernanceError> {
        if !self.allows(actor, "", Action::Apply).await {
            let e = GovernanceError::Denied("only researchers apply".into());
            return Err(self.refuse(actor, "draft", "", e).await);
        }
        if self.db().organisation_of(actor).await?.as_deref() != Some(form.organisation.as_str()) {
            let e = GovernanceError::Refused(format!(
                "organisation: you apply for your own organisation, not {:?}",
                form.organisation
            ));
            return Err(self.refuse(actor, "draft", "", e).await);
        }
        Ok(())
    }

    /// Replaces the form of a draft (or of an application sent back for revision).
    pub async fn edit_application(
        &self,
        actor: &str,
        id: &str,
        form: &ApplicationForm,
    ) -> Result<(), GovernanceError> {
        let app = self.own_application(actor, id, "edit").await?;
        if form.organisation != app.organisation
            || (app.kind == ApplicationKind::Amendment
                && Some(&form.project_id) != app.project.as_ref())
        {
            let e = GovernanceError::Refused(
                "organisation and an amendment's project do not change".into(),
            );
            return Err(self.refuse(actor, "edit", id, e).await);
        }
        if !app.state.is_editable() || !self.db().update_form(id, form).await? {
            let e = GovernanceError::Refused(format!(
                "application {id} is {} and cannot be edited: a submitted application is what \
                 the reviewers read; withdraw it, or wait for a revision request",
                app.state.as_str_for_people()
            ));
            return Err(self.refuse(actor, "edit", id, e).await);
        }
        self.audited(
            actor,
            "application.edit",
            &serde_json::json!({"application": id}),
        )
        .await
    }

    /// The application, if `actor` made it; anyone else is told it is not there.
    async fn own_application(
        &self,
        actor: &str,
        id: &str,
        attempted: &str,
    ) -> Result<Application, GovernanceError> {
        let app = self.application_or_refuse(actor, id, attempted).await?;
        if app.applicant == actor {
            return Ok(app);
        }
        let e = GovernanceError::NotFound(format!("application {id}"));
        Err(self.refuse(actor, attempted, id, e).await)
    }

    /// Submits the form for review. Refused, with every problem named by its field, while the
    /// form has any.
    pub async fn submit_application(
        &self,
        actor: &str,
        id: &str,
        catalog: &Catalog,
    ) -> Result<(), GovernanceError> {
        let app = self.own_application(actor, id, "submit").await?;
        let mut problems = app.form.problems(catalog);
        if app.kind == ApplicationKind::New
            && self.db().project(&app.form.project_id).await?.is_some()
        {
            problems.push(FieldError {
                field: "project_id".into(),
                message: format!("project {} exists already", app.form.project_id),
            });
        }
        for (i, m) in app.form.analysts.iter().enumerate() {
            if self.db().user(&m.user).await?.is_none() {
                problems.push(FieldError {
                    field: format!("analysts[{i}]"),
                    message: format!("{} is not a user of the platform", m.user),
                });
            }
        }
        if !problems.is_empty() {
            let e = GovernanceError::Invalid(problems);
            return Err(self.refuse(actor, "submit", id, e).await);
        }
        let due = self.due_after(self.review_policy().due().assignment);
        if !app.state.is_editable() || !self.db().submit(&app, &due).await? {
            let e = GovernanceError::Refused(format!(
                "application {id} is {} and cannot be submitted",
                app.state.as_str_for_people()
            ));
            return Err(self.refuse(actor, "submit", id, e).await);
        }
        let detail =
            serde_json::json!({"application": id, "version": app.version + 1, "due_on": due});
        self.audited(actor, "application.submit", &detail).await?;
        let chairs = self.users_with(crate::UserRole::Chair).await?;
        let message = format!("{id} 「{}」 was submitted for review", app.title);
        self.db()
            .notify(&chairs, Some(id), "submitted", &message)
            .await?;
        // A revision goes back to the reviewers already assigned, for votes on the new version.
        let reviewers = self.reviewers_of(id).await?;
        if !reviewers.is_empty() {
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
            let message = format!(
                "version {} of {id} is ready for your review",
                app.version + 1
            );
            self.db()
                .notify(&reviewers, Some(id), "revised", &message)
                .await?;
        }
        Ok(())
    }

    /// Withdraws an application that is not live yet (at any stage, conditions included).
    pub async fn withdraw_application(&self, actor: &str, id: &str) -> Result<(), GovernanceError> {
        let app = self.own_application(actor, id, "withdraw").await?;
        let from = [
            S::Draft,
            S::Submitted,
            S::UnderReview,
            S::RevisionRequested,
            S::Approved,
        ];
        if !self
            .db()
            .transition(id, &from, S::Withdrawn, Stamp::Responded, None)
            .await?
        {
            let e = GovernanceError::Refused(format!(
                "application {id} is {} and cannot be withdrawn",
                app.state.as_str_for_people()
            ));
            return Err(self.refuse(actor, "withdraw", id, e).await);
        }
        self.audited(
            actor,
            "application.withdraw",
            &serde_json::json!({"application": id}),
        )
        .await?;
        let mut told = self.reviewers_of(id).await?;
        told.extend(self.users_with(crate::UserRole::Chair).await?);
        self.db()
            .notify(
                &told,
                Some(id),
                "withdrawn",
                &format!("{id} was withdrawn by its applicant"),
            )
            .await
    }

    /// Accepts the signed decision and its conditions: the approval compiles into the project
    /// (scope, keys by linkage group, members), usable at once; an amendment changes its
    /// project in place. Returns the project as granted.
    pub async fn accept_decision(
        &self,
        actor: &str,
        id: &str,
        catalog: &Catalog,
    ) -> Result<ProjectSpec, GovernanceError> {
        let app = self.own_application(actor, id, "accept").await?;
        let decision = self.db().decisions(id).await?.pop();
        let Some(decision) = decision.filter(|_| app.state == S::Approved) else {
            let e = GovernanceError::Refused(format!(
                "application {id} is {}: only an approved application is accepted",
                app.state.as_str_for_people()
            ));
            return Err(self.refuse(actor, "accept", id, e).await);
        };
        let start = CivilDate::today();
        let spec = decision.conditions.compile(&app.form, start);
        if let Err(e) = spec.validate(catalog) {
            return Err(self.refuse(actor, "accept", id, e).await);
        }
        if !self
            .db()
            .transition(id, &[S::Approved], S::Active, Stamp::Responded, None)
            .await?
        {
            let e = GovernanceError::Refused(format!("application {id} was changed meanwhile"));
            return Err(self.refuse(actor, "accept", id, e).await);
        }
        let created = match app.kind {
            ApplicationKind::New => self.db().create_project(&spec).await.map(|()| None),
            ApplicationKind::Amendment => self.db().replace_project(&spec).await.map(Some),
        };
        let before = match created {
            Ok(before) => before,
            Err(e) => {
                // Back to approved, so that the applicant can try again once it is resolved.
                self.db()
                    .transition(id, &[S::Active], S::Approved, Stamp::None, None)
                    .await?;
                return Err(self.refuse(actor, "accept", id, e).await);
            }
        };
        self.db().set_application_project(id, &spec.id).await?;
        self.db()
            .transition(id, &[S::Active], S::Active, Stamp::Activated, None)
            .await?;
        self.reload_authz().await?;
        let detail = serde_json::json!({
            "application": id, "project": spec.id, "spec": spec, "before": before,
            "conditions": decision.conditions,
        });
        let action = match app.kind {
            ApplicationKind::New => "project.create",
            ApplicationKind::Amendment => "project.amend",
        };
        self.audited(actor, action, &detail).await?;
        let members: Vec<String> = spec.members.iter().map(|m| m.user.clone()).collect();
        let message = format!("project {} is live until {}", spec.id, spec.expires);
        self.db()
            .notify(&members, Some(id), "active", &message)
            .await?;
        Ok(spec)
    }

    /// The date `working_days` Japanese working days from today.
    pub(crate) fn due_after(&self, working_days: u32) -> String {
        calendar::add_working_days(CivilDate::today(), working_days).to_string()
    }
}
