//! The platform service: the platform database, who may do what, and the audit log, with the
//! platform's use cases (users, sign-in, projects, close-out with its deletion certificate,
//! output review in `review`). Every change it makes is audited through [`Platform::audited`],
//! the one place a platform change reaches the log; application review lands beside these.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use niji_audit::{AuditLog, DatabaseUrl};
use niji_catalog::Catalog;
use niji_disclosure::{LedgerStoreError, ReleasedSets};
use niji_pseudo::CustodianKey;
use serde::Serialize;
use sha2::Digest;

use crate::{Action, Authz, GovernanceError, PlatformDb, ProjectSpec, User, UserRole};

/// How the audit log names the custodian acting at the data directory's shell.
pub const SHELL_ACTOR_PREFIX: &str = "custodian:";

/// Today as `YYYY-MM-DD`, the form project expiry dates are compared in.
pub fn today() -> String {
    niji_pseudo::CivilDate::today().to_string()
}

#[derive(Debug)]
pub struct Platform {
    db: PlatformDb,
    authz: Authz,
    audit: AuditLog,
    review: crate::ReviewPolicy,
    pub(crate) alerts: crate::AlertPolicy,
    pub(crate) feasibility: crate::FeasibilityPolicy,
    /// Votes are counted one at a time, so that two second approvals cannot both release.
    pub(crate) review_lock: tokio::sync::Mutex<()>,
}

/// Files removed when a project closed, as recorded in the audit log.
#[derive(Debug, Clone, Serialize)]
pub struct DeletionCertificate {
    pub project: String,
    /// SHA-256 of the lead's completion report, when there is one.
    pub completion_report: Option<String>,
    pub files: Vec<DeletedFile>,
    pub bytes: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct DeletedFile {
    pub path: String,
    pub bytes: u64,
    pub sha256: String,
}

impl Platform {
    /// Opens the platform database at `db` (every migration run), the audit log anchored in
    /// `anchor` (outside the data directory, beside the key) and the policies in `policies`.
    pub async fn open(
        db: &DatabaseUrl,
        anchor: &Path,
        key: &CustodianKey,
        policies: &Path,
    ) -> Result<Self, GovernanceError> {
        let db = PlatformDb::open(db).await?;
        let audit = AuditLog::on(db.database().clone(), anchor, key);
        let authz = Authz::load(policies, &db, &today()).await?;
        let review = crate::ReviewPolicy::load(&policies.join("review.toml"))?;
        let alerts = crate::AlertPolicy::load(&policies.join("alerts.toml"))?;
        let feasibility = crate::FeasibilityPolicy::load(&policies.join("feasibility.toml"))?;
        Ok(Self {
            db,
            authz,
            audit,
            review,
            alerts,
            feasibility,
            review_lock: tokio::sync::Mutex::new(()),
        })
    }

    /// The audit log alone, for the custodian's commands (ingest, keys): the platform database
    /// migrated, no policies needed.
    pub async fn audit_log(
        db: &DatabaseUrl,
        anchor: &Path,
        key: &CustodianKey,
    ) -> Result<AuditLog, GovernanceError> {
        let db = PlatformDb::open(db).await?;
        Ok(AuditLog::on(db.database().clone(), anchor, key))
    }

    /// The one place a platform change is logged: `action` by `actor` with its `detail`.
    pub async fn audited(
        &self,
        actor: &str,
        action: &str,
        detail: &impl Serialize,
    ) -> Result<(), GovernanceError> {
        self.audit.append(actor, action, detail).await?;
        Ok(())
    }

    /// The log, for what is not a platform change: queries, views of held rows, alerts.
    pub fn audit(&self) -> &AuditLog {
        &self.audit
    }

    /// Where released person sets are kept, for differencing.
    pub fn released_sets(&self) -> &dyn ReleasedSets {
        &self.db
    }

    /// The platform database, for reading: its writes are the crate's own, each behind a
    /// use case here that audits it.
    pub fn db(&self) -> &PlatformDb {
        &self.db
    }

    pub fn review_policy(&self) -> &crate::ReviewPolicy {
        &self.review
    }

    /// Re-reads role assignments after users, projects or memberships changed.
    pub(crate) async fn reload_authz(&self) -> Result<(), GovernanceError> {
        self.authz.reload(&self.db, &today()).await
    }

    /// Adds an organisation (applicants apply for theirs; reviewers from it are recused).
    pub async fn add_organisation(
        &self,
        actor: &str,
        id: &str,
        name: &str,
    ) -> Result<(), GovernanceError> {
        self.may(actor, Action::ManageUsers, "manage organisations")
            .await?;
        if !crate::platform::is_plain_name(id) || name.trim().is_empty() {
            return Err(GovernanceError::Refused(
                "an organisation needs an id (1-64 of letters, digits, '-', '_', '.') and a name"
                    .into(),
            ));
        }
        self.db.add_organisation(id, name.trim()).await?;
        let detail = serde_json::json!({"organisation": id, "name": name.trim()});
        self.audited(actor, "organisation.add", &detail).await
    }

    /// Places a user in an organisation.
    pub async fn set_organisation(
        &self,
        actor: &str,
        user: &str,
        organisation: &str,
    ) -> Result<(), GovernanceError> {
        self.may(actor, Action::ManageUsers, "manage users").await?;
        self.db.set_organisation(user, organisation).await?;
        let detail = serde_json::json!({"user": user, "organisation": organisation});
        self.audited(actor, "user.organisation", &detail).await
    }

    /// Refuses (and logs) a platform action `actor` may not take.
    pub(crate) async fn may(
        &self,
        actor: &str,
        action: Action,
        what: &str,
    ) -> Result<(), GovernanceError> {
        // The custodian at the data directory's shell (`niji user …`) holds the key and acts
        // outside casbin, as for users and projects; a signed-in user's name has no ':' and so
        // can never pass for the shell.
        let at_the_shell = actor.starts_with(SHELL_ACTOR_PREFIX);
        if at_the_shell || self.allows(actor, "", action).await {
            return Ok(());
        }
        let e = GovernanceError::Denied(format!("you may not {what}"));
        Err(self
            .refusal(actor, serde_json::json!({ "attempted": what }), e)
            .await)
    }

    /// Logs that `actor` was refused (`detail` says what they attempted; the reason is added)
    /// and gives the refusal back, or the audit's error should the log fail.
    pub(crate) async fn refusal(
        &self,
        actor: &str,
        mut detail: serde_json::Value,
        e: GovernanceError,
    ) -> GovernanceError {
        detail["reason"] = e.to_string().into();
        match self.audited(actor, "refused", &detail).await {
            Ok(()) => e,
            Err(logging) => logging,
        }
    }

    pub async fn allows(&self, user: &str, project: &str, action: Action) -> bool {
        self.authz.allows(user, project, action).await
    }

    /// Creates a user; the token is returned once and stored only as a digest.
    pub async fn add_user(
        &self,
        actor: &str,
        name: &str,
        role: UserRole,
    ) -> Result<String, GovernanceError> {
        let token = self.db.add_user(name, role).await?;
        let detail = serde_json::json!({"user": name, "role": role.as_str()});
        self.audited(actor, "user.add", &detail).await?;
        self.authz.reload(&self.db, &today()).await?;
        Ok(token)
    }

    /// Checks a user's token; every attempt is logged (never the token).
    pub async fn sign_in(
        &self,
        name: &str,
        token: &str,
        via: &str,
    ) -> Result<User, GovernanceError> {
        let user = self.db.authenticate(name, token).await?;
        let shown: String = name.chars().take(64).collect();
        let outcome = if user.is_some() { "ok" } else { "refused" };
        let detail = serde_json::json!({"via": via, "outcome": outcome});
        self.audited(&shown, "signin", &detail).await?;
        if user.is_none() {
            // Failed sign-ins under one name may reach an alert rule (and suspend the name).
            if let Err(e) = self.watch(&shown).await {
                tracing::warn!(error = %e, "alert rules after a failed sign-in");
            }
        }
        user.ok_or(GovernanceError::Unauthenticated)
    }

    pub async fn create_project(
        &self,
        actor: &str,
        spec: &ProjectSpec,
        catalog: &Catalog,
    ) -> Result<(), GovernanceError> {
        spec.validate(catalog)?;
        if spec.expires.as_str() < today().as_str() {
            return Err(GovernanceError::Spec(
                "the project has already expired".into(),
            ));
        }
        self.db.create_project(spec).await?;
        let detail = serde_json::json!({"project": spec.id, "spec": spec});
        self.audited(actor, "project.create", &detail).await?;
        self.authz.reload(&self.db, &today()).await?;
        Ok(())
    }

    /// Closes a project: its files under `files` (workspaces, held results) are deleted, and
    /// what was deleted (path, size, SHA-256 of every file) is recorded as the deletion
    /// certificate.
    pub async fn close_project(
        &self,
        actor: &str,
        id: &str,
        files: &Path,
    ) -> Result<DeletionCertificate, GovernanceError> {
        let report = self.db.completion_report_digest(id).await?;
        if report.is_none() && self.db.approved_through_review(id).await? {
            return Err(GovernanceError::Refused(format!(
                "project {id} closes once its lead has reported its completion"
            )));
        }
        if !self.db.close_project(id).await? {
            return Err(GovernanceError::NotFound(format!("open project {id}")));
        }
        self.authz.reload(&self.db, &today()).await?;
        let mut deleted = Vec::new();
        collect_files(files, files, &mut deleted)?;
        if files.exists() {
            std::fs::remove_dir_all(files).map_err(|e| GovernanceError::Files(files.into(), e))?;
        }
        let certificate = DeletionCertificate {
            project: id.to_string(),
            completion_report: report,
            bytes: deleted.iter().map(|f| f.bytes).sum(),
            files: deleted,
        };
        let detail = serde_json::json!({"project": id, "deletion_certificate": certificate});
        self.audited(actor, "project.close", &detail).await?;
        Ok(certificate)
    }

    /// The spec of project `id` if it is open and unexpired and `user` may do `action` in it;
    /// otherwise one refusal that does not say which of these failed. Read from the database
    /// on every call, so a project closed by another process refuses at once.
    pub async fn authorize(
        &self,
        user: &str,
        id: &str,
        action: Action,
    ) -> Result<ProjectSpec, GovernanceError> {
        match self.db.project(id).await? {
            Some(p) if p.is_live(&today()) && self.authz.allows(user, id, action).await => {
                Ok(p.spec)
            }
            _ => Err(GovernanceError::Denied(format!(
                "no open project {id} for this user"
            ))),
        }
    }

    /// Projects `user` is a member of (open ones).
    pub async fn projects_of(&self, user: &str) -> Result<Vec<ProjectSpec>, GovernanceError> {
        let today = today();
        Ok(self
            .db
            .projects()
            .await?
            .into_iter()
            .filter(|p| p.is_live(&today))
            .filter(|p| p.spec.members.iter().any(|m| m.user == user))
            .map(|p| p.spec)
            .collect())
    }
}

fn collect_files(
    root: &Path,
    dir: &Path,
    out: &mut Vec<DeletedFile>,
) -> Result<(), GovernanceError> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for path in paths {
        if path.is_dir() {
            collect_files(root, &path, out)?;
        } else {
            let bytes =
                std::fs::read(&path).map_err(|e| GovernanceError::Files(path.clone(), e))?;
            out.push(DeletedFile {
                path: path
                    .strip_prefix(root)
                    .unwrap_or(&path)
                    .to_string_lossy()
                    .into_owned(),
                bytes: bytes.len() as u64,
                sha256: niji_pseudo::hex32(&sha2::Sha256::digest(&bytes).into()),
            });
        }
    }
    Ok(())
}

#[async_trait]
impl ReleasedSets for PlatformDb {
    async fn released_since(
        &self,
        project: &str,
        after: i64,
    ) -> Result<Vec<(i64, Vec<u8>)>, LedgerStoreError> {
        self.released_sets_since(project, after)
            .await
            .map_err(|e| LedgerStoreError(Box::new(e)))
    }

    async fn record_released(
        &self,
        project: &str,
        query_id: &str,
        sets: &[Vec<u8>],
        seen: i64,
    ) -> Result<Option<i64>, LedgerStoreError> {
        self.record_released_sets(project, query_id, sets, seen)
            .await
            .map_err(|e| LedgerStoreError(Box::new(e)))
    }
}
