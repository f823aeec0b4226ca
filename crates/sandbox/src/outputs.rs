//! Output checking: what the automatic checks held back stays in the project, where its author
//! may ask for release with a justification and output checkers (committee members, neither
//! the author nor members of the project) vote. Two approvals release it; one rejection ends
//! it. Approval waives only the judgement rules: cells resting on too few persons, small
//! municipalities, differencing and their complementary cells stay masked whatever the votes.

use std::path::PathBuf;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use niji_disclosure::{Shadow, Strictness, SuppressedCell, Verdict};
use niji_governance::{
    Action, CastVote, GovernanceError, NewOutput, Output, OutputOutcome, ProjectState, Review, Vote,
};
use serde::Serialize;

use crate::outcome::{self, QueryOutcome};
use crate::{Mode, QueryRequest, SandboxError, Visiting, guard, today};

/// Approvals from distinct checkers that release an output.
const APPROVALS_NEEDED: usize = 2;
/// Justifications say what the output is for and why it is safe: a word is not enough.
const MIN_JUSTIFICATION: usize = 20;
const MAX_TEXT: usize = 4_000;

/// What approval would do to an output masked by the automatic checks.
#[derive(Debug, Clone, Serialize)]
pub struct Preview {
    /// Cells the automatic checks masked.
    pub masked_now: usize,
    /// Cells that stay masked if checkers approve, and the rule that keeps each.
    pub still_masked: Vec<SuppressedCell>,
}

/// An output as one user may see it.
#[derive(Debug, Clone)]
pub struct OutputView {
    pub output: Output,
    pub votes: Vec<CastVote>,
    /// Checkers: the result as held (unmasked). Members of its project: the result released
    /// after review. Nobody else, and never the held rows to members.
    pub result: Option<QueryOutcome>,
    /// Checkers, while it can still be released: what approval would leave masked.
    pub preview: Option<Preview>,
}

impl OutputView {
    pub fn to_json(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(&self.output).unwrap_or_default();
        v["votes"] = serde_json::to_value(&self.votes).unwrap_or_default();
        v["preview"] = serde_json::to_value(&self.preview).unwrap_or_default();
        v["result"] = self
            .result
            .as_ref()
            .map_or(serde_json::Value::Null, QueryOutcome::to_json);
        v
    }
}

fn no_such_output(id: &str) -> SandboxError {
    SandboxError::Governance(GovernanceError::NotFound(format!("output {id}")))
}

/// The text of a justification or vote reason, trimmed and bounded.
fn text(what: &str, s: &str, min: usize) -> Result<String, SandboxError> {
    let s = s.trim();
    if s.chars().count() < min.max(1) {
        return Err(SandboxError::Refused(format!(
            "{what} is required (at least {} characters)",
            min.max(1)
        )));
    }
    if s.chars().count() > MAX_TEXT {
        return Err(SandboxError::Refused(format!(
            "{what} is longer than {MAX_TEXT} characters"
        )));
    }
    Ok(s.to_string())
}

impl Visiting {
    fn output_dir(&self, project: &str, kind: &str) -> PathBuf {
        self.project_dir(project).join("real").join(kind)
    }

    /// Keeps a real-data result that did not leave whole: its rows (with the shadow columns
    /// when masked, for a later check) in the project's directory, its SQL, author and
    /// findings in the platform database.
    pub(crate) async fn keep_output(
        &self,
        req: &QueryRequest,
        query_id: &str,
        kind: OutputOutcome,
        schema: &SchemaRef,
        batches: &[RecordBatch],
        findings: serde_json::Value,
    ) -> Result<(), SandboxError> {
        let rows = batches.iter().map(RecordBatch::num_rows).sum();
        let dir = self.output_dir(&req.project, "held");
        outcome::write_parquet(&dir, query_id, schema, batches)?;
        self.db
            .add_output(&NewOutput {
                id: query_id,
                project: &req.project,
                author: &req.user,
                sql: &req.sql,
                outcome: kind,
                findings,
                rows,
            })
            .await?;
        Ok(())
    }

    /// Holds a whole result (中間生成物) and says why.
    pub(crate) async fn hold(
        &self,
        req: &QueryRequest,
        query_id: &str,
        schema: &SchemaRef,
        batches: &[RecordBatch],
        rows: usize,
        why: &str,
    ) -> Result<QueryOutcome, SandboxError> {
        let findings = serde_json::json!({ "held": why });
        self.keep_output(
            req,
            query_id,
            OutputOutcome::Held,
            schema,
            batches,
            findings,
        )
        .await?;
        Ok(QueryOutcome::held(schema.clone(), rows, why))
    }

    async fn is_checker(&self, user: &str) -> bool {
        self.authz.allows(user, "", Action::CheckOutputs).await
    }

    /// Output `id` and whether `user` sees it as a checker. Whoever may not see it is told
    /// that there is no such output.
    async fn output_for(&self, user: &str, id: &str) -> Result<(Output, bool), SandboxError> {
        let output = self
            .db
            .output(id)
            .await?
            .ok_or_else(|| no_such_output(id))?;
        if self.is_checker(user).await {
            return Ok((output, true));
        }
        if self
            .authz
            .allows(user, &output.project, Action::ReadOutputs)
            .await
        {
            return Ok((output, false));
        }
        Err(no_such_output(id))
    }

    /// Checkers: the queue of outputs awaiting their votes. Researchers: every output of
    /// their projects. `project` narrows either.
    pub async fn list_outputs(
        &self,
        user: &str,
        project: Option<&str>,
    ) -> Result<Vec<Output>, SandboxError> {
        if self.is_checker(user).await {
            return Ok(self.db.outputs(project, Some(Review::Requested)).await?);
        }
        let mut out = Vec::new();
        for p in self.projects_of(user).await? {
            if project.is_some_and(|id| id != p.id)
                || !self.authz.allows(user, &p.id, Action::ReadOutputs).await
            {
                continue;
            }
            out.extend(self.db.outputs(Some(&p.id), None).await?);
        }
        Ok(out)
    }

    pub async fn show_output(&self, user: &str, id: &str) -> Result<OutputView, SandboxError> {
        let (output, checker) = self.output_for(user, id).await?;
        let votes = self.db.votes(id).await?;
        // A closed project's files are gone: its outputs keep only their record.
        let open = self
            .db
            .project(&output.project)
            .await?
            .is_some_and(|p| p.state == ProjectState::Open);
        let (mut result, mut preview) = (None, None);
        if open && checker {
            let (schema, batches) = outcome::read_parquet(&self.held_file(&output))?;
            let visible = visible_schema(&schema);
            let rows = batches.iter().map(RecordBatch::num_rows).sum();
            result = Some(QueryOutcome::held_rows(
                visible.clone(),
                outcome::visible_part(&batches, &visible)?,
                rows,
            ));
            if output.outcome == OutputOutcome::Suppressed
                && matches!(output.review, Review::None | Review::Requested)
            {
                preview = Some(self.preview(&output).await?);
            }
        } else if open && output.review == Review::Released {
            result = Some(self.released_result(&output)?);
        }
        Ok(OutputView {
            output,
            votes,
            result,
            preview,
        })
    }

    fn held_file(&self, output: &Output) -> PathBuf {
        self.output_dir(&output.project, "held")
            .join(format!("{}.parquet", output.id))
    }

    fn released_result(&self, output: &Output) -> Result<QueryOutcome, SandboxError> {
        let path = self
            .output_dir(&output.project, "released")
            .join(format!("{}.parquet", output.id));
        let (schema, batches) = outcome::read_parquet(&path)?;
        let batch = arrow::compute::concat_batches(&schema, &batches)
            .map_err(|e| SandboxError::Engine(e.into()))?;
        let still_masked: Vec<SuppressedCell> = output
            .released
            .clone()
            .map(serde_json::from_value)
            .transpose()
            .map_err(|e| SandboxError::Unavailable(format!("stored release unreadable: {e}")))?
            .unwrap_or_default();
        let mut o = QueryOutcome::released(batch, still_masked);
        o.query_id = output.id.clone();
        Ok(o)
    }

    /// The output's shadow and held shadow result, planned again from its SQL in its project
    /// as it is now. The project must be open and its views unchanged in shape.
    async fn reopen(&self, output: &Output) -> Result<(Shadow, Vec<RecordBatch>), SandboxError> {
        let spec = match self.db.project(&output.project).await? {
            Some(p) if p.state == ProjectState::Open && p.spec.expires >= today() => p.spec,
            _ => {
                return Err(SandboxError::Refused(format!(
                    "project {} is closed",
                    output.project
                )));
            }
        };
        let env = self.env(&spec, Mode::Real).await?;
        let checked = guard::check(&env, &self.policy, &output.sql).await?;
        let guard::Intent::Query(plan) = checked.intent else {
            return Err(SandboxError::Refused(
                "only query results are checked".into(),
            ));
        };
        let visible = plan.schema().as_arrow().clone();
        let shadow = niji_disclosure::shadow(
            guard::plan_shadow(&env, &output.sql).await?,
            &visible,
            self.disclosure.facility_cap(),
        )
        .map_err(|niji_disclosure::Unsupported(why)| SandboxError::Refused(why))?;
        let (schema, batches) = outcome::read_parquet(&self.held_file(output))?;
        let shape = |s: &arrow::datatypes::Schema| -> Vec<(String, arrow::datatypes::DataType)> {
            s.fields()
                .iter()
                .map(|f| (f.name().clone(), f.data_type().clone()))
                .collect()
        };
        if shape(&schema) != shape(shadow.plan.schema().as_arrow()) {
            return Err(SandboxError::Refused(
                "the project's tables changed since this output was made: run its query again"
                    .into(),
            ));
        }
        Ok((shadow, batches))
    }

    /// The verdict on a held output with the judgement rules waived, against the project's
    /// releases as they are now; `record` keeps what it releases in the ledger.
    async fn approved_verdict(
        &self,
        output: &Output,
        record: bool,
    ) -> Result<Verdict, SandboxError> {
        let (shadow, batches) = self.reopen(output).await?;
        self.judge(
            &output.project,
            &output.id,
            &shadow,
            &batches,
            Strictness::Approved,
            record,
        )
        .await
    }

    /// What approval would leave masked, checked against the project's releases as they are.
    async fn preview(&self, output: &Output) -> Result<Preview, SandboxError> {
        let masked_now = output.findings["suppressed"].as_array().map_or(0, Vec::len);
        match self.approved_verdict(output, false).await? {
            Verdict::Release { suppressed, .. } => Ok(Preview {
                masked_now,
                still_masked: suppressed,
            }),
            Verdict::Hold(why) => Err(SandboxError::Refused(why)),
        }
    }

    /// The author asks output checkers to release a held output.
    pub async fn request_release(
        &self,
        user: &str,
        id: &str,
        justification: &str,
    ) -> Result<Output, SandboxError> {
        let (output, _) = self.output_for(user, id).await?;
        if output.author != user
            || !self
                .authz
                .allows(user, &output.project, Action::RequestRelease)
                .await
        {
            return Err(SandboxError::Denied(
                "only its author, while a member of its project, asks for an output's release"
                    .into(),
            ));
        }
        let justification = text("a justification", justification, MIN_JUSTIFICATION)?;
        if output.review != Review::None {
            return Err(SandboxError::Refused(format!(
                "output {id} is already {}",
                output.review.as_str()
            )));
        }
        match output.outcome {
            OutputOutcome::Held => {
                let why = output.findings["held"].as_str().unwrap_or("held");
                return Err(SandboxError::Refused(format!(
                    "held because {why}: output checkers cannot waive that; change the query so that it can be checked"
                )));
            }
            OutputOutcome::Suppressed => {
                let preview = self.preview(&output).await?;
                if preview.still_masked.len() >= preview.masked_now {
                    return Err(SandboxError::Refused(
                        "every masked cell breaks a rule output checkers cannot waive (persons, municipalities, differencing); approval would release nothing".into(),
                    ));
                }
            }
        }
        if !self.db.request_release(id, &justification).await? {
            return Err(SandboxError::Refused(format!(
                "release of output {id} was already asked for"
            )));
        }
        self.audit
            .append(
                user,
                "output.request",
                &serde_json::json!({"output": id, "project": output.project, "justification": justification}),
            )
            .await?;
        self.db.output(id).await?.ok_or_else(|| no_such_output(id))
    }

    /// A checker's vote. Checkers are committee members who neither wrote the output nor
    /// belong to its project; each votes once, with a reason, and the vote is audited before it
    /// counts. One rejection ends the review; the second approval releases what may leave.
    pub async fn vote(
        &self,
        checker: &str,
        id: &str,
        vote: Vote,
        reason: &str,
    ) -> Result<Output, SandboxError> {
        let _turn = self.review_lock.lock().await;
        if !self.is_checker(checker).await {
            return Err(SandboxError::Denied(
                "only output checkers vote on releases".into(),
            ));
        }
        let output = self
            .db
            .output(id)
            .await?
            .ok_or_else(|| no_such_output(id))?;
        if output.author == checker {
            return Err(SandboxError::Denied(
                "an output's author never checks it".into(),
            ));
        }
        let project = self
            .db
            .project(&output.project)
            .await?
            .ok_or_else(|| no_such_output(id))?;
        if project.spec.members.iter().any(|m| m.user == checker) {
            return Err(SandboxError::Denied(
                "checkers are independent: members of the output's project do not vote".into(),
            ));
        }
        if output.review != Review::Requested {
            return Err(SandboxError::Refused(format!(
                "output {id} is not awaiting review (it is {})",
                output.review.as_str()
            )));
        }
        let reason = text("a reason", reason, 1)?;
        let votes = self.db.votes(id).await?;
        if votes.iter().any(|v| v.checker == checker) {
            return Err(SandboxError::Refused(format!(
                "you have voted on output {id} already"
            )));
        }
        let detail = serde_json::json!({"output": id, "project": output.project, "vote": vote, "reason": reason});
        self.audit.append(checker, "output.vote", &detail).await?;
        if !self.db.cast_vote(id, checker, vote, &reason).await? {
            return Err(SandboxError::Refused(format!(
                "you have voted on output {id} already"
            )));
        }
        let approvals = votes.iter().filter(|v| v.vote == Vote::Approve).count()
            + usize::from(vote == Vote::Approve);
        if vote == Vote::Reject {
            self.decide_rejected(&output, checker, &reason).await?;
        } else if approvals >= APPROVALS_NEEDED {
            self.release_approved(&output, checker).await?;
        }
        self.db.output(id).await?.ok_or_else(|| no_such_output(id))
    }

    async fn decide_rejected(
        &self,
        output: &Output,
        actor: &str,
        why: &str,
    ) -> Result<(), SandboxError> {
        self.db.decide(&output.id, Review::Rejected, None).await?;
        self.audit
            .append(
                actor,
                "output.rejected",
                &serde_json::json!({"output": output.id, "project": output.project, "why": why}),
            )
            .await?;
        Ok(())
    }

    /// Checks the output again with the judgement rules waived and against every release
    /// since, and releases what passes.
    async fn release_approved(&self, output: &Output, actor: &str) -> Result<(), SandboxError> {
        let (batch, still_masked) = match self.approved_verdict(output, true).await? {
            Verdict::Hold(why) => return self.decide_rejected(output, actor, &why).await,
            Verdict::Release {
                batch, suppressed, ..
            } => (batch, suppressed),
        };
        let dir = self.output_dir(&output.project, "released");
        outcome::write_parquet(&dir, &output.id, &batch.schema(), &[batch])?;
        let masked = serde_json::to_value(&still_masked).unwrap_or_default();
        self.db
            .decide(&output.id, Review::Released, Some(&masked))
            .await?;
        self.audit
            .append(
                actor,
                "output.released",
                &serde_json::json!({
                    "output": output.id,
                    "project": output.project,
                    "masked_before": output.findings["suppressed"].as_array().map_or(0, Vec::len),
                    "still_masked": still_masked.len(),
                }),
            )
            .await?;
        Ok(())
    }
}

/// The researcher's columns of a held result (shadow columns left out).
fn visible_schema(schema: &SchemaRef) -> SchemaRef {
    let fields: Vec<_> = schema
        .fields()
        .iter()
        .filter(|f| !niji_disclosure::shadow::is_hidden(f.name()))
        .cloned()
        .collect();
    std::sync::Arc::new(arrow::datatypes::Schema::new(fields))
}
