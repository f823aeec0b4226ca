//! Applications, reviews, decisions and notifications in the platform database. Only the
//! platform service writes here (every write is audited there); the state checks that matter
//! across processes are compare-and-set in SQL, so two processes cannot both move one
//! application out of the same state.

use std::collections::BTreeMap;

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{
    ApplicationForm, ApplicationKind, ApplicationState, Conditions, DecisionOutcome, ReviewVote,
};
use crate::{GovernanceError, PlatformDb, Stored};

/// An application as stored.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Application {
    pub id: String,
    pub kind: ApplicationKind,
    /// The project an amendment changes, or the project an approval became.
    pub project: Option<String>,
    pub applicant: String,
    pub organisation: String,
    pub title: String,
    pub state: ApplicationState,
    pub form: ApplicationForm,
    /// Submitted versions so far.
    pub version: i64,
    pub created_at: String,
    pub updated_at: String,
    pub first_submitted_at: Option<String>,
    pub submitted_at: Option<String>,
    pub review_started_at: Option<String>,
    pub decided_at: Option<String>,
    pub responded_at: Option<String>,
    pub activated_at: Option<String>,
    pub due_on: Option<String>,
}

/// One line of a list: what a queue or an applicant's list shows.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct ApplicationLine {
    pub id: String,
    pub kind: ApplicationKind,
    pub applicant: String,
    pub organisation: String,
    pub title: String,
    pub state: ApplicationState,
    pub updated_at: String,
    pub due_on: Option<String>,
}

#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Assignment {
    pub reviewer: String,
    pub databases: Vec<String>,
    pub assigned_by: String,
    pub assigned_at: String,
    /// Why the reviewer is recused, if they are.
    pub conflict: Option<String>,
}

#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct CastReview {
    pub reviewer: String,
    pub version: i64,
    pub vote: ReviewVote,
    /// Comment per section of the form.
    pub comments: BTreeMap<String, String>,
    pub voted_at: String,
}

#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Decision {
    pub version: i64,
    pub outcome: DecisionOutcome,
    pub conditions: Conditions,
    pub reason: String,
    pub signed_by: String,
    pub signed_at: String,
}

#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Notification {
    pub id: i64,
    pub application: Option<String>,
    pub kind: String,
    pub message: String,
    pub created_at: String,
    pub read_at: Option<String>,
}

/// Which timestamp a state change sets.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Stamp {
    ReviewStarted,
    Responded,
    Activated,
    None,
}

impl Stamp {
    fn column(self) -> Option<&'static str> {
        match self {
            Stamp::ReviewStarted => Some("review_started_at"),
            Stamp::Responded => Some("responded_at"),
            Stamp::Activated => Some("activated_at"),
            Stamp::None => None,
        }
    }
}

fn json<T: serde::de::DeserializeOwned>(what: &str, text: &str) -> Result<T, GovernanceError> {
    serde_json::from_str(text)
        .map_err(|e| GovernanceError::Spec(format!("stored {what} unreadable: {e}")))
}

fn to_json(value: &impl serde::Serialize) -> Result<String, GovernanceError> {
    serde_json::to_string(value).map_err(|e| GovernanceError::Spec(e.to_string()))
}

const APPLICATION_COLUMNS: &str = "id, kind, project, applicant, organisation, title, state, form, version, created_at, updated_at, first_submitted_at, submitted_at, review_started_at, decided_at, responded_at, activated_at, due_on";
const LINE_COLUMNS: &str = "id, kind, applicant, organisation, title, state, updated_at, due_on";

fn application_of(r: &AnyRow) -> Result<Application, GovernanceError> {
    Ok(Application {
        id: r.get("id"),
        kind: ApplicationKind::parse(r.get::<&str, _>("kind"))?,
        project: r.get("project"),
        applicant: r.get("applicant"),
        organisation: r.get("organisation"),
        title: r.get("title"),
        state: ApplicationState::parse(r.get::<&str, _>("state"))?,
        form: json("application form", r.get::<&str, _>("form"))?,
        version: r.get("version"),
        created_at: r.get("created_at"),
        updated_at: r.get("updated_at"),
        first_submitted_at: r.get("first_submitted_at"),
        submitted_at: r.get("submitted_at"),
        review_started_at: r.get("review_started_at"),
        decided_at: r.get("decided_at"),
        responded_at: r.get("responded_at"),
        activated_at: r.get("activated_at"),
        due_on: r.get("due_on"),
    })
}

fn line_of(r: &AnyRow) -> Result<ApplicationLine, GovernanceError> {
    Ok(ApplicationLine {
        id: r.get("id"),
        kind: ApplicationKind::parse(r.get::<&str, _>("kind"))?,
        applicant: r.get("applicant"),
        organisation: r.get("organisation"),
        title: r.get("title"),
        state: ApplicationState::parse(r.get::<&str, _>("state"))?,
        updated_at: r.get("updated_at"),
        due_on: r.get("due_on"),
    })
}

fn states_list(states: &[ApplicationState]) -> String {
    states
        .iter()
        .map(|s| format!("'{}'", s.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

impl PlatformDb {
    pub(crate) async fn add_organisation(
        &self,
        id: &str,
        name: &str,
    ) -> Result<(), GovernanceError> {
        let done = sqlx::query(
            "INSERT INTO organisations (id, name, created_at) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING",
        )
        .bind(id)
        .bind(name)
        .bind(niji_audit::now_rfc3339())
        .execute(self.pool())
        .await?;
        if done.rows_affected() == 0 {
            return Err(GovernanceError::Exists(format!("organisation {id}")));
        }
        Ok(())
    }

    pub(crate) async fn set_organisation(
        &self,
        user: &str,
        organisation: &str,
    ) -> Result<(), GovernanceError> {
        let known: Option<String> =
            sqlx::query_scalar("SELECT id FROM organisations WHERE id = $1")
                .bind(organisation)
                .fetch_optional(self.pool())
                .await?;
        if known.is_none() {
            return Err(GovernanceError::NotFound(format!(
                "organisation {organisation}"
            )));
        }
        let done = sqlx::query("UPDATE users SET organisation = $2 WHERE name = $1")
            .bind(user)
            .bind(organisation)
            .execute(self.pool())
            .await?;
        if done.rows_affected() == 0 {
            return Err(GovernanceError::NotFound(format!("user {user}")));
        }
        Ok(())
    }

    /// The organisation a user belongs to, if any.
    pub async fn organisation_of(&self, user: &str) -> Result<Option<String>, GovernanceError> {
        let org: Option<Option<String>> =
            sqlx::query_scalar("SELECT organisation FROM users WHERE name = $1")
                .bind(user)
                .fetch_optional(self.pool())
                .await?;
        Ok(org.flatten())
    }

    /// Stores a new draft and returns its id (`A000001`, dense in order of creation).
    pub(crate) async fn insert_application(
        &self,
        kind: ApplicationKind,
        project: Option<&str>,
        applicant: &str,
        organisation: &str,
        form: &ApplicationForm,
    ) -> Result<String, GovernanceError> {
        let mut tx = self.db.begin_write("applications").await?;
        let number: i64 =
            sqlx::query_scalar("SELECT COALESCE(MAX(number), 0) + 1 FROM applications")
                .fetch_one(&mut *tx)
                .await?;
        let id = format!("A{number:06}");
        let now = niji_audit::now_rfc3339();
        sqlx::query(
            "INSERT INTO applications (id, number, kind, project, applicant, organisation, title, state, form, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, 'draft', $8, $9, $9)",
        )
        .bind(&id)
        .bind(number)
        .bind(kind.as_str())
        .bind(project)
        .bind(applicant)
        .bind(organisation)
        .bind(&form.title)
        .bind(to_json(form)?)
        .bind(&now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    pub async fn application(&self, id: &str) -> Result<Option<Application>, GovernanceError> {
        let sql = format!("SELECT {APPLICATION_COLUMNS} FROM applications WHERE id = $1");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(self.pool())
            .await?
            .as_ref()
            .map(application_of)
            .transpose()
    }

    /// Replaces the form while the application is editable; false when it is not.
    pub(crate) async fn update_form(
        &self,
        id: &str,
        form: &ApplicationForm,
    ) -> Result<bool, GovernanceError> {
        let done = sqlx::query(
            "UPDATE applications SET form = $2, title = $3, updated_at = $4 WHERE id = $1 AND state IN ('draft', 'revision_requested')",
        )
        .bind(id)
        .bind(to_json(form)?)
        .bind(&form.title)
        .bind(niji_audit::now_rfc3339())
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Keeps the form as a new submitted version and moves the application to submitted;
    /// false when it was not editable (someone else submitted or withdrew it first).
    pub(crate) async fn submit(
        &self,
        app: &Application,
        due_on: &str,
    ) -> Result<bool, GovernanceError> {
        let now = niji_audit::now_rfc3339();
        let version = app.version + 1;
        let mut tx = self.pool().begin().await?;
        let moved = sqlx::query(
            "UPDATE applications SET state = 'submitted', version = $2, submitted_at = $3, first_submitted_at = COALESCE(first_submitted_at, $3), updated_at = $3, due_on = $4 WHERE id = $1 AND version = $5 AND state IN ('draft', 'revision_requested')",
        )
        .bind(&app.id)
        .bind(version)
        .bind(&now)
        .bind(due_on)
        .bind(app.version)
        .execute(&mut *tx)
        .await?;
        if moved.rows_affected() != 1 {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO application_versions (application, version, form, submitted_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(&app.id)
        .bind(version)
        .bind(to_json(&app.form)?)
        .bind(&now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Moves the application from one of `from` to `to`, setting `stamp` and the due date;
    /// false when it was in none of `from`.
    pub(crate) async fn transition(
        &self,
        id: &str,
        from: &[ApplicationState],
        to: ApplicationState,
        stamp: Stamp,
        due_on: Option<&str>,
    ) -> Result<bool, GovernanceError> {
        let stamp = stamp
            .column()
            .map(|c| format!(", {c} = $3"))
            .unwrap_or_default();
        let sql = format!(
            "UPDATE applications SET state = $2, updated_at = $3, due_on = $4{stamp} WHERE id = $1 AND state IN ({})",
            states_list(from)
        );
        let done = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .bind(to.as_str())
            .bind(niji_audit::now_rfc3339())
            .bind(due_on)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected() == 1)
    }

    pub(crate) async fn set_application_project(
        &self,
        id: &str,
        project: &str,
    ) -> Result<(), GovernanceError> {
        sqlx::query("UPDATE applications SET project = $2 WHERE id = $1")
            .bind(id)
            .bind(project)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Applications in any of `states`, oldest due first (the committee's queue).
    pub async fn applications_in(
        &self,
        states: &[ApplicationState],
        limit: i64,
    ) -> Result<Vec<ApplicationLine>, GovernanceError> {
        let sql = format!(
            "SELECT {LINE_COLUMNS} FROM applications WHERE $1 = '' AND state IN ({}) ORDER BY due_on, id LIMIT $2",
            states_list(states)
        );
        self.lines(sql, "", limit).await
    }

    /// Applications assigned to `reviewer` (not recused) in any of `states`.
    pub async fn assigned_to(
        &self,
        reviewer: &str,
        states: &[ApplicationState],
        limit: i64,
    ) -> Result<Vec<ApplicationLine>, GovernanceError> {
        let sql = format!(
            "SELECT {LINE_COLUMNS} FROM applications WHERE id IN (SELECT application FROM review_assignments WHERE reviewer = $1 AND conflict IS NULL) AND state IN ({}) ORDER BY due_on, id LIMIT $2",
            states_list(states)
        );
        self.lines(sql, reviewer, limit).await
    }

    /// The applications `applicant` made, most recently changed first.
    pub async fn applications_of(
        &self,
        applicant: &str,
        limit: i64,
    ) -> Result<Vec<ApplicationLine>, GovernanceError> {
        let sql = format!(
            "SELECT {LINE_COLUMNS} FROM applications WHERE applicant = $1 ORDER BY updated_at DESC, id DESC LIMIT $2"
        );
        self.lines(sql, applicant, limit).await
    }

    /// List lines of `sql`, whose `$1` is `who` and `$2` the limit.
    async fn lines(
        &self,
        sql: String,
        who: &str,
        limit: i64,
    ) -> Result<Vec<ApplicationLine>, GovernanceError> {
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(who.to_string())
            .bind(limit)
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(line_of)
            .collect()
    }

    pub(crate) async fn assign(
        &self,
        id: &str,
        reviewer: &str,
        databases: &[String],
        by: &str,
        conflict: Option<&str>,
    ) -> Result<bool, GovernanceError> {
        let done = sqlx::query(
            "INSERT INTO review_assignments (application, reviewer, databases, assigned_by, assigned_at, conflict) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (application, reviewer) DO NOTHING",
        )
        .bind(id)
        .bind(reviewer)
        .bind(databases.join(","))
        .bind(by)
        .bind(niji_audit::now_rfc3339())
        .bind(conflict)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub(crate) async fn set_conflict(
        &self,
        id: &str,
        reviewer: &str,
        conflict: &str,
    ) -> Result<bool, GovernanceError> {
        let done = sqlx::query(
            "UPDATE review_assignments SET conflict = $3 WHERE application = $1 AND reviewer = $2",
        )
        .bind(id)
        .bind(reviewer)
        .bind(conflict)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn assignments(&self, id: &str) -> Result<Vec<Assignment>, GovernanceError> {
        let rows = sqlx::query(
            "SELECT reviewer, databases, assigned_by, assigned_at, conflict FROM review_assignments WHERE application = $1 ORDER BY assigned_at, reviewer",
        )
        .bind(id)
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .iter()
            .map(|r| Assignment {
                reviewer: r.get("reviewer"),
                databases: r
                    .get::<&str, _>("databases")
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect(),
                assigned_by: r.get("assigned_by"),
                assigned_at: r.get("assigned_at"),
                conflict: r.get("conflict"),
            })
            .collect())
    }

    /// Records a vote on `version`; false when the reviewer already voted on it.
    pub(crate) async fn add_review_vote(
        &self,
        id: &str,
        version: i64,
        reviewer: &str,
        vote: ReviewVote,
        comments: &BTreeMap<String, String>,
    ) -> Result<bool, GovernanceError> {
        let done = sqlx::query(
            "INSERT INTO review_votes (application, version, reviewer, vote, comments, voted_at) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (application, version, reviewer) DO NOTHING",
        )
        .bind(id)
        .bind(version)
        .bind(reviewer)
        .bind(vote.as_str())
        .bind(to_json(comments)?)
        .bind(niji_audit::now_rfc3339())
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn review_votes(&self, id: &str) -> Result<Vec<CastReview>, GovernanceError> {
        let rows = sqlx::query(
            "SELECT reviewer, version, vote, comments, voted_at FROM review_votes WHERE application = $1 ORDER BY version, voted_at, reviewer",
        )
        .bind(id)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(CastReview {
                    reviewer: r.get("reviewer"),
                    version: r.get("version"),
                    vote: ReviewVote::parse(r.get::<&str, _>("vote"))?,
                    comments: json("review comments", r.get::<&str, _>("comments"))?,
                    voted_at: r.get("voted_at"),
                })
            })
            .collect()
    }

    /// Signs the decision on `version` and moves the application out of review, in one
    /// transaction; false when it was no longer under review (decided by someone else).
    pub(crate) async fn decide_application(
        &self,
        app: &Application,
        decision: &Decision,
        due_on: Option<&str>,
    ) -> Result<bool, GovernanceError> {
        let mut tx = self.pool().begin().await?;
        let moved = sqlx::query(
            "UPDATE applications SET state = $2, decided_at = $3, updated_at = $3, due_on = $4 WHERE id = $1 AND state = 'under_review' AND version = $5",
        )
        .bind(&app.id)
        .bind(decision.outcome.state().as_str())
        .bind(&decision.signed_at)
        .bind(due_on)
        .bind(decision.version)
        .execute(&mut *tx)
        .await?;
        if moved.rows_affected() != 1 {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO review_decisions (application, version, outcome, conditions, reason, signed_by, signed_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&app.id)
        .bind(decision.version)
        .bind(decision.outcome.as_str())
        .bind(to_json(&decision.conditions)?)
        .bind(&decision.reason)
        .bind(&decision.signed_by)
        .bind(&decision.signed_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    pub async fn decisions(&self, id: &str) -> Result<Vec<Decision>, GovernanceError> {
        let rows = sqlx::query(
            "SELECT version, outcome, conditions, reason, signed_by, signed_at FROM review_decisions WHERE application = $1 ORDER BY version",
        )
        .bind(id)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Decision {
                    version: r.get("version"),
                    outcome: DecisionOutcome::parse(r.get::<&str, _>("outcome"))?,
                    conditions: json("conditions", r.get::<&str, _>("conditions"))?,
                    reason: r.get("reason"),
                    signed_by: r.get("signed_by"),
                    signed_at: r.get("signed_at"),
                })
            })
            .collect()
    }

    /// Keeps a project's completion report; false when it has one already.
    pub(crate) async fn add_completion_report(
        &self,
        r: &crate::CompletionReport,
    ) -> Result<bool, GovernanceError> {
        let done = sqlx::query(
            "INSERT INTO completion_reports (project, author, report, sha256, submitted_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (project) DO NOTHING",
        )
        .bind(&r.project)
        .bind(&r.author)
        .bind(&r.report)
        .bind(&r.sha256)
        .bind(&r.submitted_at)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The digest of a project's completion report, if it has one.
    pub async fn completion_report_digest(
        &self,
        project: &str,
    ) -> Result<Option<String>, GovernanceError> {
        Ok(
            sqlx::query_scalar("SELECT sha256 FROM completion_reports WHERE project = $1")
                .bind(project)
                .fetch_optional(self.pool())
                .await?,
        )
    }

    /// Whether a project came from an approved application.
    pub async fn approved_through_review(&self, project: &str) -> Result<bool, GovernanceError> {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM applications WHERE project = $1 AND kind = 'new' AND state = 'active'",
        )
        .bind(project)
        .fetch_one(self.pool())
        .await?;
        Ok(n > 0)
    }

    /// Tells each of `recipients` about a change (one row each, all or none).
    pub(crate) async fn notify(
        &self,
        recipients: &[String],
        application: Option<&str>,
        kind: &str,
        message: &str,
    ) -> Result<(), GovernanceError> {
        if recipients.is_empty() {
            return Ok(());
        }
        let mut tx = self.db.begin_write("notifications").await?;
        let highest: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM notifications")
            .fetch_one(&mut *tx)
            .await?;
        let now = niji_audit::now_rfc3339();
        for (id, recipient) in (highest + 1..).zip(recipients) {
            sqlx::query(
                "INSERT INTO notifications (id, recipient, application, kind, message, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(id)
            .bind(recipient)
            .bind(application)
            .bind(kind)
            .bind(message)
            .bind(&now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// A user's notifications, newest first.
    pub async fn notifications(
        &self,
        recipient: &str,
        unread_only: bool,
        limit: i64,
    ) -> Result<Vec<Notification>, GovernanceError> {
        let rows = sqlx::query(
            "SELECT id, application, kind, message, created_at, read_at FROM notifications WHERE recipient = $1 AND ($2 = 0 OR read_at IS NULL) ORDER BY id DESC LIMIT $3",
        )
        .bind(recipient)
        .bind(i64::from(unread_only))
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .iter()
            .map(|r| Notification {
                id: r.get("id"),
                application: r.get("application"),
                kind: r.get("kind"),
                message: r.get("message"),
                created_at: r.get("created_at"),
                read_at: r.get("read_at"),
            })
            .collect())
    }

    /// Marks a user's notifications up to `up_to` read; returns how many changed.
    pub(crate) async fn mark_read(
        &self,
        recipient: &str,
        up_to: i64,
    ) -> Result<u64, GovernanceError> {
        let done = sqlx::query(
            "UPDATE notifications SET read_at = $3 WHERE recipient = $1 AND id <= $2 AND read_at IS NULL",
        )
        .bind(recipient)
        .bind(up_to)
        .bind(niji_audit::now_rfc3339())
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected())
    }
}
