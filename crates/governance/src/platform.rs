//! Users, tokens, projects and members in the platform database.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use niji_audit::{Database, DatabaseUrl};
use niji_pseudo::hex32;
use sha2::{Digest, Sha256};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{GovernanceError, ProjectSpec};

/// Platform-wide role of a user (project roles come from membership).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum UserRole {
    /// Applies for projects and works inside those they are members of.
    Researcher,
    /// 審査委員: reviews the applications the chair assigns to them.
    Committee,
    /// 審査委員長: assigns reviewers and signs decisions (and reviews too).
    Chair,
    /// Output checker: votes on releasing held outputs.
    OutputChecker,
    /// データ管理者: ingests, records consent withdrawals, reads the whole audit log.
    Custodian,
    /// Platform administrator: users and organisations.
    Admin,
    /// An analyst of an organisation (a pharmaceutical company) that uses standard datasets
    /// and feasibility counts, never a project's rows.
    Analyst,
}

impl UserRole {
    pub const ALL: [UserRole; 7] = [
        UserRole::Researcher,
        UserRole::Committee,
        UserRole::Chair,
        UserRole::OutputChecker,
        UserRole::Custodian,
        UserRole::Admin,
        UserRole::Analyst,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            UserRole::Researcher => "researcher",
            UserRole::Committee => "committee",
            UserRole::Chair => "chair",
            UserRole::OutputChecker => "output_checker",
            UserRole::Custodian => "custodian",
            UserRole::Admin => "admin",
            UserRole::Analyst => "analyst",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// Reviews applications (members and the chair).
    pub fn reviews(self) -> bool {
        matches!(self, UserRole::Committee | UserRole::Chair)
    }
}

impl fmt::Display for UserRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub role: UserRole,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProjectState {
    Open,
    Closed,
}

#[derive(Debug, Clone)]
pub struct Project {
    pub spec: ProjectSpec,
    pub state: ProjectState,
    pub created_at: String,
    pub closed_at: Option<String>,
}

impl Project {
    /// Open and not past its expiry on `today` (`YYYY-MM-DD`; ISO dates compare as text).
    pub fn is_live(&self, today: &str) -> bool {
        self.state == ProjectState::Open && self.spec.expires.as_str() >= today
    }
}

/// 1-64 of ASCII letters, digits, '-', '_', '.': user and organisation names. No ':' ever,
/// so no signed-in name can pass for the custodian at the shell (`custodian:…`).
pub(crate) fn is_plain_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// A fresh secret: `prefix` and 256 random bits in hex (API tokens, sessions).
pub fn new_token(prefix: &str) -> Result<String, GovernanceError> {
    let mut raw = [0u8; 32];
    getrandom::fill(&mut raw).map_err(|e| GovernanceError::Random(e.to_string()))?;
    Ok(format!("{prefix}{}", hex32(&raw)))
}

/// Tokens are 256 random bits, so one SHA-256 is enough to make the stored form useless for
/// signing in; only this digest is ever stored or compared.
pub fn hash_token(token: &str) -> String {
    hex32(&Sha256::digest(token.as_bytes()).into())
}

/// The platform database (the audit log's too), SQLite or PostgreSQL.
#[derive(Debug, Clone)]
pub struct PlatformDb {
    pub(crate) db: Database,
}

impl PlatformDb {
    /// The database, for the audit log that shares it.
    pub fn database(&self) -> &Database {
        &self.db
    }

    pub(crate) fn pool(&self) -> &sqlx::AnyPool {
        self.db.pool()
    }
}

impl PlatformDb {
    /// Opens the platform database and runs every migration of the platform: the audit log's,
    /// then governance's own.
    pub async fn open(url: &DatabaseUrl) -> Result<Self, GovernanceError> {
        let db = Database::connect(url).await?;
        niji_audit::migrate(&db).await?;
        let mut migrator = sqlx::migrate!("./migrations");
        migrator.set_ignore_missing(true);
        migrator.run(db.pool()).await?;
        Ok(Self { db })
    }

    /// Creates a user and returns their API token, which is shown once and stored only hashed.
    pub async fn add_user(&self, name: &str, role: UserRole) -> Result<String, GovernanceError> {
        if !is_plain_name(name) {
            return Err(GovernanceError::Spec(format!(
                "user name {name:?} must be 1-64 of letters, digits, '-', '_', '.'"
            )));
        }
        let token = new_token("niji_")?;
        let inserted = sqlx::query(
            "INSERT INTO users (name, role, token_hash, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(role.as_str())
        .bind(hash_token(&token))
        .bind(niji_audit::now_rfc3339())
        .execute(self.pool())
        .await?;
        if inserted.rows_affected() == 0 {
            return Err(GovernanceError::Exists(format!("user {name}")));
        }
        Ok(token)
    }

    /// Suspends (or reinstates) a user; false when there is no such user.
    pub(crate) async fn set_disabled(
        &self,
        name: &str,
        disabled: bool,
    ) -> Result<bool, GovernanceError> {
        let done = sqlx::query("UPDATE users SET disabled = $2 WHERE name = $1")
            .bind(name)
            .bind(i64::from(disabled))
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn user(&self, name: &str) -> Result<Option<User>, GovernanceError> {
        let row = sqlx::query("SELECT name, role FROM users WHERE name = $1 AND disabled = 0")
            .bind(name)
            .fetch_optional(self.pool())
            .await?;
        Ok(row.and_then(|r| {
            let role = UserRole::parse(r.get::<&str, _>("role"))?;
            Some(User {
                name: r.get("name"),
                role,
            })
        }))
    }

    /// The user a token belongs to, if any (the comparison is on digests).
    pub async fn authenticate(
        &self,
        name: &str,
        token: &str,
    ) -> Result<Option<User>, GovernanceError> {
        let row = sqlx::query(
            "SELECT name, role FROM users WHERE name = $1 AND token_hash = $2 AND disabled = 0",
        )
        .bind(name)
        .bind(hash_token(token))
        .fetch_optional(self.pool())
        .await?;
        Ok(row.and_then(|r| {
            Some(User {
                name: r.get("name"),
                role: UserRole::parse(r.get::<&str, _>("role"))?,
            })
        }))
    }

    pub async fn users(&self) -> Result<Vec<User>, GovernanceError> {
        let rows = sqlx::query("SELECT name, role FROM users WHERE disabled = 0 ORDER BY name")
            .fetch_all(self.pool())
            .await?;
        Ok(rows
            .into_iter()
            .filter_map(|r| {
                Some(User {
                    name: r.get("name"),
                    role: UserRole::parse(r.get::<&str, _>("role"))?,
                })
            })
            .collect())
    }

    /// Creates a project from a spec already validated against the catalog; every member must
    /// be an existing user. Atomic: the project and its members appear together or not at all.
    pub async fn create_project(&self, spec: &ProjectSpec) -> Result<(), GovernanceError> {
        for m in &spec.members {
            if self.user(&m.user).await?.is_none() {
                return Err(GovernanceError::NotFound(format!("user {}", m.user)));
            }
        }
        let json = serde_json::to_string(spec).map_err(|e| GovernanceError::Spec(e.to_string()))?;
        let mut tx = self.pool().begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO projects (id, title, spec, state, expires, created_at) VALUES ($1, $2, $3, 'open', $4, $5) ON CONFLICT (id) DO NOTHING",
        )
        .bind(&spec.id)
        .bind(&spec.title)
        .bind(&json)
        .bind(&spec.expires)
        .bind(niji_audit::now_rfc3339())
        .execute(&mut *tx)
        .await?;
        if inserted.rows_affected() == 0 {
            return Err(GovernanceError::Exists(format!("project {}", spec.id)));
        }
        for m in &spec.members {
            sqlx::query("INSERT INTO project_members (project, member, role) VALUES ($1, $2, $3)")
                .bind(&spec.id)
                .bind(&m.user)
                .bind(m.role.as_str())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Replaces a project's spec and members in place (an accepted amendment); returns the
    /// spec it replaced. Atomic.
    pub(crate) async fn replace_project(
        &self,
        spec: &ProjectSpec,
    ) -> Result<ProjectSpec, GovernanceError> {
        for m in &spec.members {
            if self.user(&m.user).await?.is_none() {
                return Err(GovernanceError::NotFound(format!("user {}", m.user)));
            }
        }
        let before = self
            .project(&spec.id)
            .await?
            .filter(|p| p.state == ProjectState::Open)
            .ok_or_else(|| GovernanceError::NotFound(format!("open project {}", spec.id)))?;
        let json = serde_json::to_string(spec).map_err(|e| GovernanceError::Spec(e.to_string()))?;
        let mut tx = self.pool().begin().await?;
        sqlx::query("UPDATE projects SET title = $2, spec = $3, expires = $4 WHERE id = $1 AND state = 'open'")
            .bind(&spec.id)
            .bind(&spec.title)
            .bind(&json)
            .bind(&spec.expires)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM project_members WHERE project = $1")
            .bind(&spec.id)
            .execute(&mut *tx)
            .await?;
        for m in &spec.members {
            sqlx::query("INSERT INTO project_members (project, member, role) VALUES ($1, $2, $3)")
                .bind(&spec.id)
                .bind(&m.user)
                .bind(m.role.as_str())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(before.spec)
    }

    pub async fn project(&self, id: &str) -> Result<Option<Project>, GovernanceError> {
        let row =
            sqlx::query("SELECT spec, state, created_at, closed_at FROM projects WHERE id = $1")
                .bind(id)
                .fetch_optional(self.pool())
                .await?;
        row.map(|r| project_of(&r)).transpose()
    }

    pub async fn projects(&self) -> Result<Vec<Project>, GovernanceError> {
        let rows =
            sqlx::query("SELECT spec, state, created_at, closed_at FROM projects ORDER BY id")
                .fetch_all(self.pool())
                .await?;
        rows.iter().map(project_of).collect()
    }

    /// Marks an open project closed; false when it was not open.
    pub async fn close_project(&self, id: &str) -> Result<bool, GovernanceError> {
        let done = sqlx::query(
            "UPDATE projects SET state = 'closed', closed_at = $2 WHERE id = $1 AND state = 'open'",
        )
        .bind(id)
        .bind(niji_audit::now_rfc3339())
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Keeps the person sets of one release's cells (atomically, all or none). A caller whose
    /// ledger holds the project's sets up to row `seen` gets back the last row now kept when no
    /// other release of the project came in between (its ledger is then current up to there,
    /// and need not read its own sets back); `None` when one did or nothing was kept.
    pub async fn record_released_sets(
        &self,
        project: &str,
        query_id: &str,
        sets: &[Vec<u8>],
        seen: i64,
    ) -> Result<Option<i64>, GovernanceError> {
        // Holding the table, nobody else can add rows until we commit: the ids we give follow
        // the highest one, and whatever lies between `seen` and ours came before.
        let mut tx = self.db.begin_write("released_sets").await?;
        let highest: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM released_sets")
            .fetch_one(&mut *tx)
            .await?;
        let at = niji_audit::now_rfc3339();
        let mut last = None;
        for (id, set) in (highest + 1..).zip(sets) {
            sqlx::query(
                "INSERT INTO released_sets (id, project, query_id, persons, released_at) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(id)
            .bind(project)
            .bind(query_id)
            .bind(BASE64.encode(set))
            .bind(&at)
            .execute(&mut *tx)
            .await?;
            last = Some(id);
        }
        let between: i64 = match last {
            Some(_) => sqlx::query_scalar(
                "SELECT count(*) FROM released_sets WHERE project = $1 AND id > $2 AND id <= $3",
            )
            .bind(project)
            .bind(seen)
            .bind(highest)
            .fetch_one(&mut *tx)
            .await?,
            None => 0,
        };
        tx.commit().await?;
        Ok(last.filter(|_| between == 0))
    }

    /// The person sets the project released after the row `after` (0: all of them), with
    /// their row ids, in order: a process keeps its ledger current by asking for what is new.
    pub async fn released_sets_since(
        &self,
        project: &str,
        after: i64,
    ) -> Result<Vec<(i64, Vec<u8>)>, GovernanceError> {
        let rows = sqlx::query(
            "SELECT id, persons FROM released_sets WHERE project = $1 AND id > $2 ORDER BY id",
        )
        .bind(project)
        .bind(after)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                let persons = BASE64.decode(r.get::<&str, _>("persons")).map_err(|e| {
                    GovernanceError::Spec(format!("stored person set unreadable: {e}"))
                })?;
                Ok((r.get::<i64, _>("id"), persons))
            })
            .collect()
    }
}

fn project_of(r: &AnyRow) -> Result<Project, GovernanceError> {
    let spec: ProjectSpec = serde_json::from_str(r.get::<&str, _>("spec"))
        .map_err(|e| GovernanceError::Spec(format!("stored spec unreadable: {e}")))?;
    Ok(Project {
        spec,
        state: if r.get::<&str, _>("state") == "open" {
            ProjectState::Open
        } else {
            ProjectState::Closed
        },
        created_at: r.get("created_at"),
        closed_at: r.get("closed_at"),
    })
}
