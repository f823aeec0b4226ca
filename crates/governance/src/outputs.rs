//! Outputs awaiting output checking: held or partly masked real-data results, the release
//! requests of their authors and the checkers' votes.

use serde::Serialize;
use sqlx::Row;

use crate::audited::write_audited;
use crate::{GovernanceError, PlatformDb};

/// An enum kept in the platform database as its snake_case name; read back strictly (an
/// unknown name is an error, never a default).
pub trait Stored: Copy + 'static {
    const ALL: &'static [Self];
    fn as_str(self) -> &'static str;

    fn parse(s: &str) -> Result<Self, GovernanceError> {
        Self::ALL
            .iter()
            .copied()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| GovernanceError::Spec(format!("stored value {s:?} unknown")))
    }
}

/// How the automatic checks left a result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OutputOutcome {
    /// Nothing left (中間生成物).
    Held,
    /// Released with some cells masked; the unmasked result is held.
    Suppressed,
}

impl Stored for OutputOutcome {
    const ALL: &'static [Self] = &[OutputOutcome::Held, OutputOutcome::Suppressed];

    fn as_str(self) -> &'static str {
        match self {
            OutputOutcome::Held => "held",
            OutputOutcome::Suppressed => "suppressed",
        }
    }
}

/// Where a held output stands in output checking.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Review {
    /// Nobody asked for its release.
    None,
    /// Its author asked; checkers vote.
    Requested,
    Released,
    Rejected,
}

impl Stored for Review {
    const ALL: &'static [Self] = &[
        Review::None,
        Review::Requested,
        Review::Released,
        Review::Rejected,
    ];

    fn as_str(self) -> &'static str {
        match self {
            Review::None => "none",
            Review::Requested => "requested",
            Review::Released => "released",
            Review::Rejected => "rejected",
        }
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Output {
    pub id: String,
    pub project: String,
    pub author: String,
    pub sql: String,
    pub outcome: OutputOutcome,
    /// JSON: why it was held, or its masked cells and their reasons.
    pub findings: serde_json::Value,
    /// Rows of the held result: for output checkers, who see them; never in what a member of
    /// the project is shown (a held result's size is not checked, and could disclose).
    #[serde(skip_serializing)]
    pub rows: i64,
    pub review: Review,
    pub justification: Option<String>,
    /// JSON: the cells still masked when it was released after review.
    pub released: Option<serde_json::Value>,
    pub created_at: String,
    pub requested_at: Option<String>,
    pub decided_at: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Vote {
    Approve,
    Reject,
}

impl Stored for Vote {
    const ALL: &'static [Self] = &[Vote::Approve, Vote::Reject];

    fn as_str(self) -> &'static str {
        match self {
            Vote::Approve => "approve",
            Vote::Reject => "reject",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct CastVote {
    pub checker: String,
    pub vote: Vote,
    pub reason: String,
    pub voted_at: String,
}

/// A new output as the chokepoint keeps it.
#[derive(Debug, Clone)]
pub struct NewOutput<'a> {
    pub id: &'a str,
    pub project: &'a str,
    pub author: &'a str,
    pub sql: &'a str,
    pub outcome: OutputOutcome,
    pub findings: serde_json::Value,
    pub rows: usize,
}

/// `SELECT` of every output column, then `$rest` (literal SQL, so sqlx sees no dynamic text).
macro_rules! select_outputs {
    ($rest:literal) => {
        concat!(
            "SELECT id, project, author, sql, outcome, findings, rows, review, justification, released, created_at, requested_at, decided_at FROM outputs ",
            $rest
        )
    };
}

fn json(text: &str) -> Result<serde_json::Value, GovernanceError> {
    serde_json::from_str(text)
        .map_err(|e| GovernanceError::Spec(format!("stored findings unreadable: {e}")))
}

fn output_of(r: &sqlx::any::AnyRow) -> Result<Output, GovernanceError> {
    Ok(Output {
        id: r.get("id"),
        project: r.get("project"),
        author: r.get("author"),
        sql: r.get("sql"),
        outcome: OutputOutcome::parse(r.get("outcome"))?,
        findings: json(r.get("findings"))?,
        rows: r.get("rows"),
        review: Review::parse(r.get("review"))?,
        justification: r.get("justification"),
        released: r.get::<Option<&str>, _>("released").map(json).transpose()?,
        created_at: r.get("created_at"),
        requested_at: r.get("requested_at"),
        decided_at: r.get("decided_at"),
    })
}

impl PlatformDb {
    pub async fn add_output(&self, o: &NewOutput<'_>) -> Result<(), GovernanceError> {
        sqlx::query(
            "INSERT INTO outputs (id, project, author, sql, outcome, findings, rows, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(o.id)
        .bind(o.project)
        .bind(o.author)
        .bind(o.sql)
        .bind(o.outcome.as_str())
        .bind(o.findings.to_string())
        .bind(i64::try_from(o.rows).unwrap_or(i64::MAX))
        .bind(niji_audit::now_rfc3339())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub async fn output(&self, id: &str) -> Result<Option<Output>, GovernanceError> {
        sqlx::query(select_outputs!("WHERE id = $1"))
            .bind(id)
            .fetch_optional(self.pool())
            .await?
            .as_ref()
            .map(output_of)
            .transpose()
    }

    /// Outputs of `project`, or (none) every output in `review`; newest first.
    pub async fn outputs(
        &self,
        project: Option<&str>,
        review: Option<Review>,
    ) -> Result<Vec<Output>, GovernanceError> {
        let review = review.map(Review::as_str);
        sqlx::query(select_outputs!(
            "WHERE ($1 IS NULL OR project = $1) AND ($2 IS NULL OR review = $2) ORDER BY created_at DESC, id"
        ))
        .bind(project)
        .bind(review)
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(output_of)
        .collect()
    }

    /// Moves an output nobody asked for into review; false if it was already asked for.
    pub async fn request_release(
        &self,
        id: &str,
        justification: &str,
    ) -> Result<bool, GovernanceError> {
        let done = sqlx::query(
            "UPDATE outputs SET review = 'requested', justification = $2, requested_at = $3 WHERE id = $1 AND review = 'none'",
        )
        .bind(id)
        .bind(justification)
        .bind(niji_audit::now_rfc3339())
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Records a checker's vote in the transaction of its audit entry `detail`, so that the
    /// vote and its entry are committed together; false (and no entry) if this checker
    /// already voted on it.
    pub async fn cast_vote(
        &self,
        audit: &niji_audit::AuditLog,
        detail: &serde_json::Value,
        id: &str,
        checker: &str,
        vote: Vote,
        reason: &str,
    ) -> Result<bool, GovernanceError> {
        write_audited(
            audit,
            (checker, "output.vote", detail),
            "INSERT INTO output_votes (output, checker, vote, reason, voted_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (output, checker) DO NOTHING",
            vec![
                id.into(),
                checker.into(),
                vote.as_str().into(),
                reason.into(),
                niji_audit::now_rfc3339().as_str().into(),
            ],
        )
        .await
    }

    pub async fn votes(&self, id: &str) -> Result<Vec<CastVote>, GovernanceError> {
        let rows = sqlx::query(
            "SELECT checker, vote, reason, voted_at FROM output_votes WHERE output = $1 ORDER BY voted_at, checker",
        )
        .bind(id)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(CastVote {
                    checker: r.get("checker"),
                    vote: Vote::parse(r.get("vote"))?,
                    reason: r.get("reason"),
                    voted_at: r.get("voted_at"),
                })
            })
            .collect()
    }

    /// Ends the review of a requested output, in the transaction of the audit entry that
    /// records it, so that the decision and its entry are committed together; `released`
    /// lists the cells still masked. False (and no entry) if it was no longer under review.
    pub async fn decide(
        &self,
        audit: &niji_audit::AuditLog,
        actor: &str,
        entry: (&str, &serde_json::Value),
        id: &str,
        review: Review,
        released: Option<&serde_json::Value>,
    ) -> Result<bool, GovernanceError> {
        if !matches!(review, Review::Released | Review::Rejected) {
            return Err(GovernanceError::Spec(
                "a decision releases or rejects".into(),
            ));
        }
        let (action, detail) = entry;
        write_audited(
            audit,
            (actor, action, detail),
            "UPDATE outputs SET review = $2, released = $3, decided_at = $4 WHERE id = $1 AND review = 'requested'",
            vec![
                id.into(),
                review.as_str().into(),
                released.map(|v| v.to_string()).into(),
                niji_audit::now_rfc3339().as_str().into(),
            ],
        )
        .await
    }
}
