//! Authorisation by casbin: RBAC with domains (`platform`, `project:<id>`), the model and the
//! permissions read from `policies/`, the role assignments from the platform database. Only
//! open projects whose expiry has not passed contribute memberships, so a closed or expired
//! project refuses everyone without a special case.

use std::path::Path;

use casbin::{CoreApi, DefaultModel, Enforcer, FileAdapter, MgmtApi};
use tokio::sync::RwLock;

use crate::{GovernanceError, PlatformDb};

/// What a request wants to do, as (object, action) of the casbin model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    QueryDummy,
    QueryReal,
    WriteWorkspace,
    ReadProjectAudit,
    /// Read the project's held outputs' SQL, findings and review (not their rows).
    ReadOutputs,
    /// Ask output checkers to release a held output.
    RequestRelease,
    /// Vote on release requests (an output checker).
    CheckOutputs,
    CreateProject,
    CloseProject,
    ReadAudit,
    /// Draft and submit applications.
    Apply,
    /// Review applications one is assigned to (a committee member or the chair).
    ReviewApplications,
    /// Assign reviewers (the chair).
    AssignReviewers,
    /// Sign decisions (the chair).
    DecideApplications,
    /// Read every application (the chair, custodians).
    ReadApplications,
    /// Add users and organisations.
    ManageUsers,
    /// Suspend and reinstate users.
    SuspendUsers,
    /// Record a consent withdrawal (難病DB, 小慢DB).
    WithdrawConsent,
    /// See monitoring alerts.
    ReadAlerts,
    /// Approve or reject brought-in scripts (a committee member or the chair).
    ApproveScripts,
    /// Build standard datasets, open them to approved organisations, approve organisations
    /// (custodians).
    ManageDatasets,
    /// Request standard datasets on the short form (analysts and researchers).
    RequestDatasets,
    /// Sign off dataset requests (a committee member or the chair).
    SignOffDatasets,
    /// Download a standard dataset one's granted request covers.
    DownloadDatasets,
    /// Ask for feasibility counts (analysts and researchers of approved organisations).
    CountFeasibility,
}

impl Action {
    fn object_and_act(self) -> (&'static str, &'static str) {
        match self {
            Action::QueryDummy => ("dummy", "query"),
            Action::QueryReal => ("real", "query"),
            Action::WriteWorkspace => ("workspace", "write"),
            Action::ReadProjectAudit => ("audit", "read"),
            Action::ReadOutputs => ("outputs", "read"),
            Action::RequestRelease => ("outputs", "request"),
            Action::CheckOutputs => ("outputs", "check"),
            Action::CreateProject => ("project", "create"),
            Action::CloseProject => ("project", "close"),
            Action::ReadAudit => ("audit", "read"),
            Action::Apply => ("applications", "apply"),
            Action::ReviewApplications => ("applications", "review"),
            Action::AssignReviewers => ("applications", "assign"),
            Action::DecideApplications => ("applications", "decide"),
            Action::ReadApplications => ("applications", "read"),
            Action::ManageUsers => ("users", "manage"),
            Action::SuspendUsers => ("users", "suspend"),
            Action::WithdrawConsent => ("consent", "withdraw"),
            Action::ReadAlerts => ("alerts", "read"),
            Action::ApproveScripts => ("scripts", "approve"),
            Action::ManageDatasets => ("datasets", "manage"),
            Action::RequestDatasets => ("datasets", "request"),
            Action::SignOffDatasets => ("datasets", "signoff"),
            Action::DownloadDatasets => ("datasets", "download"),
            Action::CountFeasibility => ("feasibility", "count"),
        }
    }

    /// Platform actions are decided in the `platform` domain; everything else in a project's.
    /// The list is explicit so that a new project action cannot become a platform one by default.
    fn is_platform(self) -> bool {
        !matches!(
            self,
            Action::QueryDummy
                | Action::QueryReal
                | Action::WriteWorkspace
                | Action::ReadProjectAudit
                | Action::ReadOutputs
                | Action::RequestRelease
        )
    }
}

pub struct Authz {
    enforcer: RwLock<Enforcer>,
}

impl std::fmt::Debug for Authz {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authz").finish_non_exhaustive()
    }
}

impl Authz {
    /// Loads `model.conf` and `policy.csv` from `policies` and the role assignments from `db`.
    pub async fn load(
        policies: &Path,
        db: &PlatformDb,
        today: &str,
    ) -> Result<Self, GovernanceError> {
        let model = DefaultModel::from_file(policies.join("model.conf")).await?;
        let mut enforcer =
            Enforcer::new(model, FileAdapter::new(policies.join("policy.csv"))).await?;
        // Assignments come from the database; the policy file is never written back.
        enforcer.enable_auto_save(false);
        let authz = Self {
            enforcer: RwLock::new(enforcer),
        };
        authz.reload(db, today).await?;
        Ok(authz)
    }

    /// Re-reads role assignments (after a user or project change). `today` is `YYYY-MM-DD`.
    pub async fn reload(&self, db: &PlatformDb, today: &str) -> Result<(), GovernanceError> {
        let users = db.users().await?;
        // Suspended users are not in `users`: they keep no role and no membership.
        let active: std::collections::HashSet<&str> =
            users.iter().map(|u| u.name.as_str()).collect();
        let mut rules: Vec<Vec<String>> = users
            .iter()
            .map(|u| {
                vec![
                    u.name.clone(),
                    u.role.as_str().to_string(),
                    "platform".to_string(),
                ]
            })
            .collect();
        for p in db.projects().await? {
            if !p.is_live(today) {
                continue;
            }
            for m in p
                .spec
                .members
                .iter()
                .filter(|m| active.contains(m.user.as_str()))
            {
                rules.push(vec![
                    m.user.clone(),
                    m.role.as_str().to_string(),
                    format!("project:{}", p.spec.id),
                ]);
            }
        }
        let mut enforcer = self.enforcer.write().await;
        let existing = enforcer.get_grouping_policy();
        if !existing.is_empty() {
            enforcer.remove_grouping_policies(existing).await?;
        }
        if !rules.is_empty() {
            enforcer.add_grouping_policies(rules).await?;
        }
        Ok(())
    }

    /// Whether `user` may do `action`; `project` is ignored for platform actions.
    pub async fn allows(&self, user: &str, project: &str, action: Action) -> bool {
        let (obj, act) = action.object_and_act();
        let domain = if action.is_platform() {
            "platform".to_string()
        } else {
            format!("project:{project}")
        };
        let enforcer = self.enforcer.read().await;
        // An evaluation error is a refusal (fail closed).
        enforcer
            .enforce((user, domain.as_str(), obj, act))
            .unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Member, MemberRole, ProjectSpec, UserRole, hash_token};
    use niji_testdb::TestDb;

    fn policies() -> std::path::PathBuf {
        let manifest = std::env::var_os("CARGO_MANIFEST_DIR").expect("run by cargo");
        std::path::PathBuf::from(manifest).join("../../policies")
    }

    fn spec(id: &str, expires: &str, members: &[(&str, MemberRole)]) -> ProjectSpec {
        ProjectSpec {
            id: id.into(),
            title: id.into(),
            expires: expires.into(),
            tables: Vec::new(),
            period: None,
            cohort: None,
            linkage: Vec::new(),
            members: members
                .iter()
                .map(|(u, r)| Member {
                    user: (*u).into(),
                    role: *r,
                })
                .collect(),
            min_persons: None,
        }
    }

    async fn open(db: &TestDb) -> PlatformDb {
        let url = niji_audit::DatabaseUrl::parse(db.url()).expect("url");
        PlatformDb::open(&url).await.expect("db")
    }

    async fn membership_role_expiry_and_close_decide(test_db: TestDb) {
        let db = open(&test_db).await;
        for (u, r) in [
            ("alice", UserRole::Researcher),
            ("bob", UserRole::Researcher),
            ("root", UserRole::Custodian),
        ] {
            db.add_user(u, r).await.expect("user");
        }
        db.create_project(&spec(
            "p1",
            "2030-01-01",
            &[("alice", MemberRole::Lead), ("bob", MemberRole::Researcher)],
        ))
        .await
        .expect("p1");
        db.create_project(&spec("p2", "2030-01-01", &[("bob", MemberRole::Lead)]))
            .await
            .expect("p2");
        let authz = Authz::load(&policies(), &db, "2029-06-01")
            .await
            .expect("authz");
        assert!(authz.allows("alice", "p1", Action::QueryReal).await);
        assert!(authz.allows("alice", "p1", Action::ReadProjectAudit).await);
        assert!(authz.allows("bob", "p1", Action::QueryDummy).await);
        assert!(
            !authz.allows("bob", "p1", Action::ReadProjectAudit).await,
            "researchers do not read the project's audit"
        );
        assert!(
            !authz.allows("alice", "p2", Action::QueryDummy).await,
            "not a member"
        );
        assert!(
            !authz.allows("alice", "p1", Action::CreateProject).await,
            "researchers create no projects"
        );
        assert!(authz.allows("root", "", Action::CreateProject).await);
        assert!(
            !authz.allows("root", "p1", Action::QueryReal).await,
            "the custodian is no project member"
        );
        assert!(!authz.allows("mallory", "p1", Action::QueryDummy).await);
        // A project domain pattern cannot be smuggled in as a project id.
        assert!(!authz.allows("alice", "*", Action::QueryDummy).await);

        authz.reload(&db, "2030-01-02").await.expect("reload");
        assert!(
            !authz.allows("alice", "p1", Action::QueryDummy).await,
            "expired"
        );
        authz.reload(&db, "2029-06-01").await.expect("reload");
        assert!(db.close_project("p1").await.expect("close"));
        authz.reload(&db, "2029-06-01").await.expect("reload");
        assert!(
            !authz.allows("alice", "p1", Action::QueryDummy).await,
            "closed"
        );
        assert!(authz.allows("bob", "p2", Action::QueryDummy).await);
    }

    async fn tokens_are_stored_as_digests_only(test_db: TestDb) {
        let db = open(&test_db).await;
        let token = db
            .add_user("alice", UserRole::Researcher)
            .await
            .expect("user");
        assert!(token.starts_with("niji_") && token.len() == 69);
        assert!(
            db.authenticate("alice", &token)
                .await
                .expect("auth")
                .is_some()
        );
        assert!(
            db.authenticate("alice", &token[..68])
                .await
                .expect("auth")
                .is_none()
        );
        assert!(
            db.authenticate("bob", &token)
                .await
                .expect("auth")
                .is_none()
        );
        assert!(matches!(
            db.add_user("alice", UserRole::Researcher).await,
            Err(GovernanceError::Exists(_))
        ));
        let rows: Vec<(String,)> =
            sqlx::query_as("SELECT name || role || token_hash || created_at FROM users")
                .fetch_all(db.pool())
                .await
                .expect("rows");
        let mut hay: Vec<u8> = rows.into_iter().flat_map(|(r,)| r.into_bytes()).collect();
        if test_db.backend() == niji_testdb::Backend::Sqlite {
            for file in ["niji.db", "niji.db-wal"] {
                hay.extend(std::fs::read(test_db.dir().join(file)).unwrap_or_default());
            }
        }
        assert!(
            hay.windows(64).any(|w| w == hash_token(&token).as_bytes()),
            "the digest is what is stored"
        );
        assert!(
            !hay.windows(token.len()).any(|w| w == token.as_bytes()),
            "the token is not stored"
        );
    }

    niji_testdb::on_both_backends!(
        membership_role_expiry_and_close_decide,
        tokens_are_stored_as_digests_only,
    );
}
