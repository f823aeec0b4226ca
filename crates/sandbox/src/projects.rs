//! Users and projects: sign-in, creation, close-out with its deletion certificate, and who may work where.

use super::*;

/// Files removed when a project closed, as recorded in the audit log.
#[derive(Debug, Clone, Serialize)]
pub struct DeletionCertificate {
    pub project: String,
    pub files: Vec<DeletedFile>,
    pub bytes: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct DeletedFile {
    pub path: String,
    pub bytes: u64,
    pub sha256: String,
}

pub(crate) fn collect_files(
    root: &Path,
    dir: &Path,
    out: &mut Vec<DeletedFile>,
) -> Result<(), SandboxError> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for path in paths {
        if path.is_dir() {
            collect_files(root, &path, out)?;
        } else {
            let bytes = std::fs::read(&path)?;
            use sha2::Digest;
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

impl Visiting {
    /// Creates a user; the token is returned once and stored only as a digest.
    pub async fn add_user(
        &self,
        actor: &str,
        name: &str,
        role: UserRole,
    ) -> Result<String, SandboxError> {
        let token = self.db.add_user(name, role).await?;
        self.audit
            .append(
                actor,
                "user.add",
                &serde_json::json!({"user": name, "role": role.as_str()}),
            )
            .await?;
        self.authz.reload(&self.db, &today()).await?;
        Ok(token)
    }

    /// Checks a user's token; every attempt is logged (never the token).
    pub async fn sign_in(&self, name: &str, token: &str, via: &str) -> Result<User, SandboxError> {
        let user = self.db.authenticate(name, token).await?;
        let shown: String = name.chars().take(64).collect();
        self.audit
            .append(
                &shown,
                "signin",
                &serde_json::json!({"via": via, "outcome": if user.is_some() { "ok" } else { "refused" }}),
            )
            .await?;
        user.ok_or_else(|| SandboxError::Unauthenticated("unknown user or wrong token".into()))
    }

    pub async fn create_project(
        &self,
        actor: &str,
        spec: &ProjectSpec,
    ) -> Result<(), SandboxError> {
        spec.validate(&self.catalog)?;
        if spec.expires.as_str() < today().as_str() {
            return Err(SandboxError::Governance(GovernanceError::Spec(
                "the project has already expired".into(),
            )));
        }
        self.db.create_project(spec).await?;
        self.audit
            .append(
                actor,
                "project.create",
                &serde_json::json!({"project": spec.id, "spec": spec}),
            )
            .await?;
        self.authz.reload(&self.db, &today()).await?;
        Ok(())
    }

    /// Closes a project: its workspaces and held results are deleted, and what was deleted
    /// (path, size, SHA-256 of every file) is recorded as the deletion certificate.
    pub async fn close_project(
        &self,
        actor: &str,
        id: &str,
    ) -> Result<DeletionCertificate, SandboxError> {
        if !self.db.close_project(id).await? {
            return Err(SandboxError::Governance(GovernanceError::NotFound(
                format!("open project {id}"),
            )));
        }
        self.authz.reload(&self.db, &today()).await?;
        self.envs.lock().await.retain(|(p, _), _| p != id);
        let dir = self.project_dir(id);
        let mut files = Vec::new();
        collect_files(&dir, &dir, &mut files)?;
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        let certificate = DeletionCertificate {
            project: id.to_string(),
            bytes: files.iter().map(|f| f.bytes).sum(),
            files,
        };
        self.audit
            .append(
                actor,
                "project.close",
                &serde_json::json!({"project": id, "deletion_certificate": certificate}),
            )
            .await?;
        Ok(certificate)
    }

    /// The spec of project `id` if it is open and unexpired and `user` may work in it in
    /// `mode`; otherwise one refusal that does not say which of these failed. Read from the
    /// database on every call, so a project closed by another process refuses at once.
    pub(crate) async fn authorize(
        &self,
        user: &str,
        id: &str,
        mode: Mode,
    ) -> Result<ProjectSpec, SandboxError> {
        let action = match mode {
            Mode::Dummy => Action::QueryDummy,
            Mode::Real => Action::QueryReal,
        };
        match self.db.project(id).await? {
            Some(p) if p.is_live(&today()) && self.authz.allows(user, id, action).await => {
                Ok(p.spec)
            }
            _ => Err(SandboxError::Denied(format!(
                "no open project {id} for this user"
            ))),
        }
    }

    /// Projects `user` is a member of (open ones).
    pub async fn projects_of(&self, user: &str) -> Result<Vec<ProjectSpec>, SandboxError> {
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
