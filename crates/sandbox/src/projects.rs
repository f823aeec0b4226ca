//! Projects on the query side: who may query where (decided by the platform service), and a
//! project's files removed when it closes.

use super::*;

impl Visiting {
    /// Closes a project through the platform service, which deletes its files and records
    /// the deletion certificate; its contexts here are dropped.
    pub async fn close_project(
        &self,
        actor: &str,
        id: &str,
    ) -> Result<DeletionCertificate, SandboxError> {
        let certificate = self
            .platform
            .close_project(actor, id, &self.project_dir(id))
            .await?;
        self.envs.lock().await.retain(|(p, _), _| p != id);
        Ok(certificate)
    }

    /// The spec of project `id` if it is open and unexpired and `user` may work in it in
    /// `mode`; otherwise one refusal that does not say which of these failed.
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
        Ok(self.platform.authorize(user, id, action).await?)
    }
}
