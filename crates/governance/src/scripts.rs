//! Brought-in analysis scripts (持ち込みプログラム): a bundle of SQL files that a project's member
//! submits, that the sandbox's guard checks statically against the project's catalog, and that
//! a committee member approves before the project may run it. A script is known by the digest
//! of its files: a changed file is a new version, and needs approval again.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::Row;

use crate::{Action, GovernanceError, Platform, Stored, UserRole};

const MAX_FILES: usize = 50;
const MAX_FILE_BYTES: usize = 256 * 1024;

/// One file of a bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ScriptFile {
    pub name: String,
    pub sql: String,
}

impl ScriptFile {
    pub fn sha256(&self) -> String {
        niji_pseudo::hex32(&Sha256::digest(self.sql.as_bytes()).into())
    }
}

/// The digest of a bundle: its files' names and contents, in the order they run. Each field
/// is length-prefixed, so no choice of names makes two bundles one.
pub fn bundle_digest(files: &[ScriptFile]) -> String {
    let mut h = Sha256::new();
    for f in files {
        for field in [f.name.as_bytes(), f.sha256().as_bytes()] {
            h.update((field.len() as u64).to_le_bytes());
            h.update(field);
        }
    }
    niji_pseudo::hex32(&h.finalize().into())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ScriptState {
    Submitted,
    Approved,
    Rejected,
}

impl Stored for ScriptState {
    const ALL: &'static [Self] = &[
        ScriptState::Submitted,
        ScriptState::Approved,
        ScriptState::Rejected,
    ];

    fn as_str(self) -> &'static str {
        match self {
            ScriptState::Submitted => "submitted",
            ScriptState::Approved => "approved",
            ScriptState::Rejected => "rejected",
        }
    }
}

/// One version of a script.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Script {
    pub project: String,
    pub name: String,
    pub version: i64,
    pub digest: String,
    pub files: Vec<ScriptFile>,
    pub submitted_by: String,
    pub submitted_at: String,
    pub state: ScriptState,
    pub decided_by: Option<String>,
    pub decided_at: Option<String>,
    pub reason: Option<String>,
}

fn script_of(r: &sqlx::any::AnyRow) -> Result<Script, GovernanceError> {
    let files: String = r.get("files");
    Ok(Script {
        project: r.get("project"),
        name: r.get("name"),
        version: r.get("version"),
        digest: r.get("digest"),
        files: serde_json::from_str(&files)
            .map_err(|e| GovernanceError::Spec(format!("stored script unreadable: {e}")))?,
        submitted_by: r.get("submitted_by"),
        submitted_at: r.get("submitted_at"),
        state: ScriptState::parse(r.get::<&str, _>("state"))?,
        decided_by: r.get("decided_by"),
        decided_at: r.get("decided_at"),
        reason: r.get("reason"),
    })
}

impl Platform {
    /// Refused unless `actor` is a member of live `project` and the bundle is within bounds:
    /// checked before the sandbox spends anything on checking its statements.
    pub async fn may_submit_script(
        &self,
        actor: &str,
        project: &str,
        name: &str,
        files: &[ScriptFile],
    ) -> Result<(), GovernanceError> {
        self.authorize(actor, project, Action::WriteWorkspace)
            .await?;
        if !crate::platform::is_plain_name(name) {
            return Err(GovernanceError::Refused(
                "a script needs a name (1-64 of letters, digits, '-', '_', '.')".into(),
            ));
        }
        if files.is_empty() || files.len() > MAX_FILES {
            return Err(GovernanceError::Refused(format!(
                "a script is 1-{MAX_FILES} SQL files"
            )));
        }
        let mut names = std::collections::BTreeSet::new();
        for f in files {
            if !crate::platform::is_plain_name(&f.name) || !names.insert(f.name.as_str()) {
                return Err(GovernanceError::Refused(format!(
                    "file names are distinct, 1-64 of letters, digits, '-', '_', '.' ({:?})",
                    f.name
                )));
            }
            if f.sql.len() > MAX_FILE_BYTES {
                return Err(GovernanceError::Refused(format!(
                    "{} is over {} KiB",
                    f.name,
                    MAX_FILE_BYTES / 1024
                )));
            }
        }
        Ok(())
    }

    /// Keeps a new version of script `name` of `project`, submitted by a member of the project
    /// after the sandbox checked it. The same content twice is one version.
    pub async fn submit_script(
        &self,
        actor: &str,
        project: &str,
        name: &str,
        files: &[ScriptFile],
    ) -> Result<Script, GovernanceError> {
        self.may_submit_script(actor, project, name, files).await?;
        let digest = bundle_digest(files);
        let mut tx = self.db().db.begin_write("scripts").await?;
        let same: Option<i64> = sqlx::query_scalar(
            "SELECT version FROM scripts WHERE project = $1 AND name = $2 AND digest = $3",
        )
        .bind(project)
        .bind(name)
        .bind(&digest)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(v) = same {
            return Err(GovernanceError::Exists(format!(
                "this content of {name}, as version {v}"
            )));
        }
        let version: i64 = sqlx::query_scalar(
            "SELECT COALESCE(MAX(version), 0) + 1 FROM scripts WHERE project = $1 AND name = $2",
        )
        .bind(project)
        .bind(name)
        .fetch_one(&mut *tx)
        .await?;
        let now = niji_audit::now_rfc3339();
        let json = serde_json::to_string(files)
            .map_err(|e| GovernanceError::Spec(format!("script files: {e}")))?;
        sqlx::query(
            "INSERT INTO scripts (project, name, version, digest, files, submitted_by, submitted_at, state) VALUES ($1, $2, $3, $4, $5, $6, $7, 'submitted')",
        )
        .bind(project)
        .bind(name)
        .bind(version)
        .bind(&digest)
        .bind(&json)
        .bind(actor)
        .bind(&now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.audited(
            actor,
            "script.submit",
            &serde_json::json!({
                "project": project, "script": name, "version": version, "digest": digest,
                "files": files.iter().map(|f| serde_json::json!({"name": f.name, "sha256": f.sha256()})).collect::<Vec<_>>(),
            }),
        )
        .await?;
        let mut reviewers = self.users_with(UserRole::Committee).await?;
        reviewers.extend(self.users_with(UserRole::Chair).await?);
        let message = format!("script {name} v{version} of {project} awaits approval");
        self.db()
            .notify(&reviewers, None, "script", &message)
            .await?;
        self.script(project, name, version).await
    }

    /// A committee member's (or the chair's) decision on a submitted version. The submitter,
    /// the project's members and anyone of their organisations are recused.
    pub async fn decide_script(
        &self,
        actor: &str,
        project: &str,
        name: &str,
        version: i64,
        approve: bool,
        reason: &str,
    ) -> Result<Script, GovernanceError> {
        self.may(actor, Action::ApproveScripts, "approve scripts")
            .await?;
        let script = self.script(project, name, version).await?;
        let spec = self
            .db()
            .project(project)
            .await?
            .ok_or_else(|| GovernanceError::NotFound(format!("project {project}")))?
            .spec;
        if actor == script.submitted_by || spec.members.iter().any(|m| m.user == actor) {
            let e = GovernanceError::Denied(format!(
                "{actor} submitted {name} or is a member of {project}, and cannot approve it"
            ));
            return Err(self.refuse_script(actor, "decide", project, name, e).await);
        }
        if let Some(mine) = self.db().organisation_of(actor).await? {
            let mut theirs = vec![script.submitted_by.clone()];
            theirs.extend(spec.members.iter().map(|m| m.user.clone()));
            for user in &theirs {
                if self.db().organisation_of(user).await?.as_ref() == Some(&mine) {
                    let e = GovernanceError::Denied(format!(
                        "{actor} is of the organisation of {user} ({project}) and is recused"
                    ));
                    return Err(self.refuse_script(actor, "decide", project, name, e).await);
                }
            }
        }
        if script.state != ScriptState::Submitted {
            return Err(GovernanceError::Refused(format!(
                "{name} v{version} is already {}",
                script.state.as_str()
            )));
        }
        let reason = reason.trim();
        if !approve && reason.is_empty() {
            return Err(GovernanceError::Refused("a rejection says why".into()));
        }
        let state = if approve {
            ScriptState::Approved
        } else {
            ScriptState::Rejected
        };
        let done = sqlx::query(
            "UPDATE scripts SET state = $4, decided_by = $5, decided_at = $6, reason = $7 WHERE project = $1 AND name = $2 AND version = $3 AND state = 'submitted'",
        )
        .bind(project)
        .bind(name)
        .bind(version)
        .bind(state.as_str())
        .bind(actor)
        .bind(niji_audit::now_rfc3339())
        .bind(reason)
        .execute(self.db().pool())
        .await?;
        if done.rows_affected() != 1 {
            return Err(GovernanceError::Refused(format!(
                "{name} v{version} was decided meanwhile"
            )));
        }
        self.audited(
            actor,
            if approve {
                "script.approve"
            } else {
                "script.reject"
            },
            &serde_json::json!({
                "project": project, "script": name, "version": version,
                "digest": script.digest, "reason": reason,
            }),
        )
        .await?;
        let message = format!(
            "script {name} v{version} of {project} was {}",
            state.as_str()
        );
        self.db()
            .notify(
                std::slice::from_ref(&script.submitted_by),
                None,
                "script",
                &message,
            )
            .await?;
        self.script(project, name, version).await
    }

    /// The approved version of `name` whose files have `digest`, for a member about to run it.
    pub async fn approved_script(
        &self,
        actor: &str,
        project: &str,
        name: &str,
        digest: &str,
    ) -> Result<Script, GovernanceError> {
        self.authorize(actor, project, Action::QueryDummy).await?;
        let row = sqlx::query(
            "SELECT project, name, version, digest, files, submitted_by, submitted_at, state, decided_by, decided_at, reason FROM scripts WHERE project = $1 AND name = $2 AND digest = $3",
        )
        .bind(project)
        .bind(name)
        .bind(digest)
        .fetch_optional(self.db().pool())
        .await?;
        let why = match row.as_ref().map(script_of).transpose()? {
            Some(s) if s.state == ScriptState::Approved => return Ok(s),
            Some(s) => format!(
                "{name} v{} is {}, not approved",
                s.version,
                s.state.as_str()
            ),
            None => format!(
                "these files are no approved version of {name}: a changed script is submitted and approved again"
            ),
        };
        Err(self
            .refuse_script(actor, "run", project, name, GovernanceError::Refused(why))
            .await)
    }

    /// Logs a refused step on a script and gives back its error.
    async fn refuse_script(
        &self,
        actor: &str,
        attempted: &str,
        project: &str,
        name: &str,
        error: GovernanceError,
    ) -> GovernanceError {
        let detail = serde_json::json!({
            "project": project, "script": name, "attempted": attempted, "reason": error.to_string(),
        });
        match self.audited(actor, "script.refused", &detail).await {
            Ok(()) => error,
            Err(audit) => audit,
        }
    }

    /// Every version of the project's scripts: for its members and the committee.
    pub async fn scripts(
        &self,
        actor: &str,
        project: &str,
    ) -> Result<Vec<Script>, GovernanceError> {
        // Reviewers read every project's scripts; anyone else only as a member.
        if !self.allows(actor, "", Action::ApproveScripts).await {
            self.authorize(actor, project, Action::QueryDummy).await?;
        }
        let rows = sqlx::query(
            "SELECT project, name, version, digest, files, submitted_by, submitted_at, state, decided_by, decided_at, reason FROM scripts WHERE project = $1 ORDER BY name, version",
        )
        .bind(project)
        .fetch_all(self.db().pool())
        .await?;
        rows.iter().map(script_of).collect()
    }

    async fn script(
        &self,
        project: &str,
        name: &str,
        version: i64,
    ) -> Result<Script, GovernanceError> {
        let row = sqlx::query(
            "SELECT project, name, version, digest, files, submitted_by, submitted_at, state, decided_by, decided_at, reason FROM scripts WHERE project = $1 AND name = $2 AND version = $3",
        )
        .bind(project)
        .bind(name)
        .bind(version)
        .fetch_optional(self.db().pool())
        .await?;
        match row {
            Some(r) => script_of(&r),
            None => Err(GovernanceError::NotFound(format!(
                "script {name} v{version} of {project}"
            ))),
        }
    }
}
