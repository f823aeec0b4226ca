//! Brought-in scripts on the query side: the guard checks every statement of a bundle against
//! the project's catalog before the platform service keeps it, and a run goes statement by
//! statement through the chokepoint, only for files an approval covers.

use datafusion::sql::parser::DFParserBuilder;
use datafusion::sql::sqlparser::dialect::GenericDialect;
use niji_governance::{FieldError, GovernanceError, Script, ScriptFile, bundle_digest};

use super::*;
use crate::views::{ProjectEnv, StoreSource};

impl Visiting {
    /// Checks `files` statically in `project` and keeps them as a new version of script
    /// `name`, to be approved. Every statement of every file is checked by the guard against
    /// the project's views, in order; a work table one creates is there for the next (as an
    /// empty table: nothing runs). Any problem refuses the whole bundle, each named by file.
    pub async fn submit_script(
        &self,
        user: &str,
        project: &str,
        name: &str,
        files: &[ScriptFile],
    ) -> Result<Script, SandboxError> {
        self.platform
            .may_submit_script(user, project, name, files)
            .await?;
        let spec = self.authorize(user, project, Mode::Dummy).await?;
        let problems = self.check_script(&spec, files).await?;
        if !problems.is_empty() {
            return Err(GovernanceError::Invalid(problems).into());
        }
        Ok(self
            .platform
            .submit_script(user, project, name, files)
            .await?)
    }

    async fn check_script(
        &self,
        spec: &ProjectSpec,
        files: &[ScriptFile],
    ) -> Result<Vec<FieldError>, SandboxError> {
        // A context of its own over the dummy store, with a scratch workspace: the check
        // touches neither the project's work tables nor any real row.
        let scratch = Scratch(
            self.settings
                .data_dir
                .join("tmp")
                .join(format!("script-check-{}", outcome::new_query_id())),
        );
        let source = StoreSource {
            data_dir: &self.ensure_dummy_store().await?,
            key: &self.dummy_key,
            withdrawals: &niji_governance::Withdrawals::default(),
        };
        let env = ProjectEnv::build(
            spec,
            Mode::Dummy,
            &self.catalog,
            &source,
            &self.limits,
            scratch.0.clone(),
        )
        .await?;
        let mut problems = Vec::new();
        for (i, file) in files.iter().enumerate() {
            let field = format!("files[{i}]");
            let statements = match split_statements(&file.sql) {
                Ok(s) if s.is_empty() => {
                    problems.push(problem(&field, &file.name, "has no SQL statement"));
                    continue;
                }
                Ok(s) => s,
                Err(why) => {
                    problems.push(problem(&field, &file.name, &why));
                    continue;
                }
            };
            for (n, sql) in statements.iter().enumerate() {
                match guard::check(&env, &self.policy, sql).await {
                    Ok(checked) => {
                        if let guard::Intent::CreateWork { name, plan, .. } = checked.intent {
                            let schema = Arc::new(plan.schema().as_arrow().clone());
                            env.save_work(&name, &schema, &[]).await?;
                        }
                    }
                    Err(e) => problems.push(problem(
                        &field,
                        &file.name,
                        &format!("statement {}: {}", n + 1, e.public_message()),
                    )),
                }
            }
        }
        Ok(problems)
    }

    /// Runs the approved script whose files are `files`, statement by statement through the
    /// chokepoint (every rule of a query applies to each), stopping at the first that does not
    /// succeed. Files no approval covers are refused before anything runs; what runs is the
    /// stored approved version, not what the caller sent.
    pub async fn run_script(
        &self,
        user: &str,
        project: &str,
        name: &str,
        files: &[ScriptFile],
        mode: Mode,
    ) -> Result<Vec<QueryOutcome>, SandboxError> {
        let script = self
            .platform
            .approved_script(user, project, name, &bundle_digest(files))
            .await?;
        let mut outcomes = Vec::new();
        'files: for file in &script.files {
            let statements = split_statements(&file.sql).map_err(SandboxError::Refused)?;
            for sql in statements {
                let outcome = self
                    .query(&QueryRequest {
                        user: user.to_string(),
                        scope: Scope::project(project),
                        mode,
                        sql,
                        via: "script",
                    })
                    .await;
                let failed = matches!(outcome.status, Status::Refused | Status::Error);
                outcomes.push(outcome);
                if failed {
                    break 'files;
                }
            }
        }
        let detail = serde_json::json!({
            "project": project, "script": name, "version": script.version,
            "digest": script.digest, "mode": mode.as_str(),
            "queries": outcomes.iter().map(|o| o.query_id.as_str()).collect::<Vec<_>>(),
        });
        self.platform.audited(user, "script.run", &detail).await?;
        Ok(outcomes)
    }
}

/// A scratch workspace, removed however the check ends.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn problem(field: &str, file: &str, message: &str) -> FieldError {
    FieldError {
        field: field.to_string(),
        message: format!("{file}: {message}"),
    }
}

/// The statements of a file, each as SQL text for the guard.
fn split_statements(sql: &str) -> Result<Vec<String>, String> {
    let statements = DFParserBuilder::new(sql)
        .with_dialect(&GenericDialect {})
        .build()
        .and_then(|mut p| p.parse_statements())
        .map_err(|e| {
            let e = e.to_string();
            format!("malformed SQL: {}", e.lines().next().unwrap_or_default())
        })?;
    Ok(statements.iter().map(ToString::to_string).collect())
}
