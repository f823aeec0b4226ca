//! Output checking on the query side: held results kept in the project, shown to checkers,
//! checked again when release is asked for and when the deciding approval comes. Who may do
//! what and in which state is the platform service's (governance's `review`). Approval waives
//! only the judgement rules: cells resting on too few persons, small municipalities,
//! differencing and their complementary cells stay masked whatever the votes.

use std::path::PathBuf;

use arrow::array::RecordBatch;
use arrow::datatypes::{Schema, SchemaRef};
use niji_disclosure::{Shadow, Strictness, SuppressedCell, Verdict};
use niji_governance::{CastVote, NewOutput, Output, OutputAccess, OutputOutcome, Review, Vote};
use serde::Serialize;

use crate::outcome::{self, QueryOutcome};
use crate::{Mode, QueryRequest, SandboxError, Visiting, guard, today};

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

impl Visiting {
    /// The stricter minimum of persons per cell a project's approval set, if any.
    async fn project_min_persons(&self, project: &str) -> Result<Option<u64>, SandboxError> {
        Ok(self
            .platform
            .db()
            .project(project)
            .await?
            .and_then(|p| p.spec.min_persons))
    }

    fn output_dir(&self, project: &str, kind: &str) -> PathBuf {
        self.project_dir(project).join("real").join(kind)
    }

    /// Keeps a real-data result that did not leave whole: its rows (with the shadow columns
    /// when masked, for a later check) in the project's directory, its SQL, author and
    /// findings in the platform database. A held query that failed while it ran has no rows
    /// (`None`): its record is kept all the same, so that its author sees what they would
    /// have seen had it not failed.
    pub(crate) async fn keep_output(
        &self,
        req: &QueryRequest,
        query_id: &str,
        kind: OutputOutcome,
        kept: Option<(&SchemaRef, &[RecordBatch])>,
        findings: serde_json::Value,
    ) -> Result<(), SandboxError> {
        // A standard dataset has no checkers: its masked rows are not kept (they are built
        // again from the store), and what it would hold it is refused (see `hold`).
        if !req.scope.keeps_outputs() {
            return Ok(());
        }
        let rows = kept.map_or(0, |(_, b)| b.iter().map(RecordBatch::num_rows).sum());
        if let Some((schema, batches)) = kept {
            let dir = self.output_dir(req.scope.key(), "held");
            outcome::write_parquet(&dir, query_id, schema, batches)?;
        }
        self.platform
            .db()
            .add_output(&NewOutput {
                id: query_id,
                project: req.scope.key(),
                author: &req.user,
                sql: &req.sql,
                outcome: kind,
                findings,
                rows,
            })
            .await?;
        Ok(())
    }

    /// Holds a whole result (中間生成物), `kept` (its rows, if it ran to the end), and says
    /// why, with the columns `shown`, never how many rows it has.
    pub(crate) async fn hold(
        &self,
        req: &QueryRequest,
        query_id: &str,
        shown: &SchemaRef,
        kept: Option<(&SchemaRef, &[RecordBatch])>,
        why: &str,
    ) -> Result<QueryOutcome, SandboxError> {
        if !req.scope.keeps_outputs() {
            return Err(SandboxError::Refused(format!(
                "{} would be held ({why}): nothing is kept here for output checkers, so its cells must be releasable as they are",
                req.scope
            )));
        }
        let findings = serde_json::json!({ "held": why });
        self.keep_output(req, query_id, OutputOutcome::Held, kept, findings)
            .await?;
        Ok(QueryOutcome::held(shown.clone(), why))
    }

    pub async fn show_output(&self, user: &str, id: &str) -> Result<OutputView, SandboxError> {
        let OutputAccess {
            output,
            project,
            checker,
        } = self.platform.output_access(user, id).await?;
        let votes = self.platform.db().votes(id).await?;
        // A closed project's files are gone: its outputs keep only their record.
        let live = project.is_live(&today());
        let (mut result, mut preview) = (None, None);
        // A held query that failed while it ran kept no rows (its cause is in the audit log).
        let held_file = self.held_file(&output);
        // Rows made before a consent withdrawal may hold the withdrawn person: not shown.
        let stale = live && checker && self.made_before_a_withdrawal(&output).await?;
        if live && checker && !stale && held_file.exists() {
            let (schema, batches) = outcome::read_parquet(&held_file)?;
            let visible = visible_schema(&schema);
            let rows = batches.iter().map(RecordBatch::num_rows).sum();
            // Held rows seen by a person are a disclosure of their own: logged like a query.
            let detail = serde_json::json!({"output": id, "project": output.project, "rows": rows});
            self.platform
                .audit()
                .append(user, "output.view", &detail)
                .await?;
            if output.outcome == OutputOutcome::Suppressed && output.review == Review::Requested {
                // Shown when it can be worked out; a project changed since only loses it.
                preview = match self.recheck(&output, &schema, &batches, false).await {
                    Ok(verdict) => Some(preview_of(&output, verdict)?),
                    Err(SandboxError::Refused(_)) => None,
                    Err(e) => return Err(e),
                };
            }
            result = Some(QueryOutcome::held_rows(
                visible.clone(),
                outcome::visible_part(&batches, &visible)?,
                rows,
            ));
        } else if live && output.review == Review::Released {
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
        let mut o = QueryOutcome::released(batch, still_masked, false);
        o.query_id = output.id.clone();
        Ok(o)
    }

    /// The output's shadow, planned again from its SQL in its project as it is now. The
    /// project must be live and its views unchanged in shape (`schema`: the held result's).
    /// `held` are the rows kept: a consent withdrawal since may have changed them.
    async fn shadow_again(
        &self,
        output: &Output,
        schema: &Schema,
        held: &[RecordBatch],
    ) -> Result<Shadow, SandboxError> {
        let spec = match self.platform.db().project(&output.project).await? {
            Some(p) if p.is_live(&today()) => p.spec,
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
        let shadow = self
            .shadow_of(&env, &output.sql, plan.schema().as_arrow(), false)
            .await
            .map_err(|niji_disclosure::Unsupported(why)| SandboxError::Refused(why))?;
        let shape = |s: &Schema| -> Vec<(String, arrow::datatypes::DataType)> {
            s.fields()
                .iter()
                .map(|f| (f.name().clone(), f.data_type().clone()))
                .collect()
        };
        if shape(schema) != shape(shadow.plan.schema().as_arrow()) {
            return Err(SandboxError::Refused(
                "the project's tables changed since this output was made: run its query again"
                    .into(),
            ));
        }
        let run_again = async {
            let (_, batches, _) = self.execute(&env, shadow.plan.clone()).await?;
            Ok(batches)
        };
        self.unchanged_by_withdrawals(output, held, run_again)
            .await?;
        Ok(shadow)
    }

    /// The verdict on a held shadow result with the judgement rules waived, against the
    /// project's releases as they are now; `record` keeps what it releases in the ledger.
    async fn recheck(
        &self,
        output: &Output,
        schema: &Schema,
        batches: &[RecordBatch],
        record: bool,
    ) -> Result<Verdict, SandboxError> {
        let shadow = self.shadow_again(output, schema, batches).await?;
        let stricter = self.project_min_persons(&output.project).await?;
        self.judge(
            &output.project,
            &output.id,
            &shadow,
            batches,
            crate::disclose::Judging {
                strictness: Strictness::Approved,
                record,
                stricter,
            },
        )
        .await
    }

    /// The author asks output checkers to release a held output. Refused when approval
    /// could release nothing: every masked cell breaks a rule checkers cannot waive.
    pub async fn request_release(
        &self,
        user: &str,
        id: &str,
        justification: &str,
    ) -> Result<Output, SandboxError> {
        let (output, justification) = self
            .platform
            .may_request_release(user, id, justification)
            .await?;
        let (schema, batches) = outcome::read_parquet(&self.held_file(&output))?;
        let verdict = self.recheck(&output, &schema, &batches, false).await?;
        let preview = preview_of(&output, verdict)?;
        if preview.still_masked.len() >= preview.masked_now {
            return Err(SandboxError::Refused(
                "every masked cell breaks a rule output checkers cannot waive (persons, municipalities, differencing); approval would release nothing".into(),
            ));
        }
        Ok(self
            .platform
            .request_release(user, &output, &justification)
            .await?)
    }

    /// A checker's vote, checked and recorded by the platform service. Whatever would make
    /// the vote void (tables changed under a deciding approval) refuses it before anything is
    /// recorded; the deciding approval releases what passes the check made again.
    pub async fn vote(
        &self,
        checker: &str,
        id: &str,
        vote: Vote,
        reason: &str,
    ) -> Result<Output, SandboxError> {
        let ticket = self.platform.may_vote(checker, id, vote, reason).await?;
        let release = if ticket.deciding {
            let (schema, batches) = outcome::read_parquet(&self.held_file(&ticket.output))?;
            let shadow = self.shadow_again(&ticket.output, &schema, &batches).await?;
            Some((shadow, batches))
        } else {
            None
        };
        self.platform.cast_vote(checker, &ticket).await?;
        if vote == Vote::Reject {
            self.platform
                .reject_output(&ticket.output, checker, &ticket.reason)
                .await?;
        } else if let Some((shadow, batches)) = release {
            self.release_approved(&ticket.output, checker, &shadow, &batches)
                .await?;
        }
        drop(ticket);
        Ok(self.platform.output(id).await?)
    }

    /// Carries out the decisions a stopped process recorded but did not carry out (its votes
    /// are in, its release or rejection is not): nothing approved is lost, and a release
    /// happens once, since deciding an output is conditional on its still being under review.
    /// Returns how many were finished.
    pub async fn finish_interrupted_reviews(&self) -> Result<usize, SandboxError> {
        let interrupted = self.platform.interrupted_decisions().await?;
        let n = interrupted.len();
        for decision in interrupted {
            match decision {
                niji_governance::Interrupted::Reject {
                    output,
                    checker,
                    reason,
                } => {
                    self.platform
                        .reject_output(&output, &checker, &reason)
                        .await?
                }
                niji_governance::Interrupted::Release { output, checker } => {
                    let (schema, batches) = outcome::read_parquet(&self.held_file(&output))?;
                    let shadow = self.shadow_again(&output, &schema, &batches).await?;
                    self.release_approved(&output, &checker, &shadow, &batches)
                        .await?;
                }
            }
        }
        Ok(n)
    }

    /// Checks the output again with the judgement rules waived and against every release
    /// since, and releases what passes.
    async fn release_approved(
        &self,
        output: &Output,
        actor: &str,
        shadow: &Shadow,
        batches: &[RecordBatch],
    ) -> Result<(), SandboxError> {
        let stricter = self.project_min_persons(&output.project).await?;
        let verdict = self
            .judge(
                &output.project,
                &output.id,
                shadow,
                batches,
                crate::disclose::Judging {
                    strictness: Strictness::Approved,
                    record: true,
                    stricter,
                },
            )
            .await?;
        let (batch, still_masked) = match verdict {
            Verdict::Hold(why) => {
                return Ok(self.platform.reject_output(output, actor, &why).await?);
            }
            Verdict::Recheck => return Err(unsettled()),
            Verdict::Release {
                batch, suppressed, ..
            } => (batch, suppressed),
        };
        let dir = self.output_dir(&output.project, "released");
        outcome::write_parquet(&dir, &output.id, &batch.schema(), &[batch])?;
        let masked = serde_json::to_value(&still_masked).unwrap_or_default();
        self.platform.release_output(output, actor, &masked).await?;
        Ok(())
    }
}

/// What approval would leave masked, from the approved re-check's verdict.
fn preview_of(output: &Output, verdict: Verdict) -> Result<Preview, SandboxError> {
    match verdict {
        Verdict::Release { suppressed, .. } => Ok(Preview {
            masked_now: output.findings["suppressed"].as_array().map_or(0, Vec::len),
            still_masked: suppressed,
        }),
        Verdict::Hold(why) => Err(SandboxError::Refused(why)),
        Verdict::Recheck => Err(unsettled()),
    }
}

/// Review judges the stored shadow result (from the exact shadow, or from the bounded one when
/// its bounds settled every rule) with the judgement rules waived, which leaves nothing for
/// bounds to settle; should something be unsettled all the same, nothing is released.
fn unsettled() -> SandboxError {
    SandboxError::Refused("this output's checks are not settled: run its query again".into())
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
