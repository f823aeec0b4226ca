//! The quick start's review: a researcher applies for NDB + 介護DB linked (the 2割負担 study),
//! a committee of three reviews it (one member, alice's colleague, recused without asking),
//! the chair approves with a condition, alice accepts, and the project is live. Each step goes
//! through the platform service as the CLI and the API do, audited.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use niji_governance::{
    ApplicationForm, Conditions, DecisionOutcome, ProjectSpec, ReviewVote, UserRole,
};
use niji_sandbox::Visiting;

use crate::context::custodian_actor;

/// Who takes part, with their role and organisation.
const CAST: &[(&str, UserRole, &str)] = &[
    ("alice", UserRole::Researcher, "u-tokyo"),
    ("bob", UserRole::Researcher, "u-tokyo"),
    ("carol", UserRole::Committee, "kyoto-u"),
    ("dave", UserRole::Committee, "u-tokyo"),
    ("erin", UserRole::Committee, "mhlw"),
    ("frank", UserRole::Chair, "mhlw"),
];

const ORGANISATIONS: &[(&str, &str)] = &[
    ("u-tokyo", "東京大学"),
    ("kyoto-u", "京都大学"),
    ("mhlw", "厚生労働省"),
];

/// The cast as platform users (created once; new tokens are added to `tokens`).
async fn cast(v: &Visiting, tokens: &mut Vec<(String, String)>) -> anyhow::Result<()> {
    let p = v.platform();
    let actor = custodian_actor();
    for (id, name) in ORGANISATIONS {
        if let Err(e) = p.add_organisation(&actor, id, name).await
            && !matches!(e, niji_governance::GovernanceError::Exists(_))
        {
            return Err(e.into());
        }
    }
    for (name, role, org) in CAST {
        if p.db().user(name).await?.is_none() {
            let token = p.add_user(&actor, name, *role).await?;
            p.set_organisation(&actor, name, org).await?;
            tokens.retain(|(u, _)| u != name);
            tokens.push((name.to_string(), token));
        }
    }
    Ok(())
}

/// The example application, through review, to its live project; returns the project and
/// the moment the chair signed. A project that is live already is returned as it is.
pub async fn review_example(
    v: &Visiting,
    form_path: &Path,
    tokens: &mut Vec<(String, String)>,
) -> anyhow::Result<(ProjectSpec, Option<Instant>)> {
    cast(v, tokens).await?;
    let form = ApplicationForm::from_toml(&std::fs::read_to_string(form_path)?)?;
    let p = v.platform();
    if let Some(project) = p.db().project(&form.project_id).await? {
        println!(
            "project {} is live already (approved earlier)",
            form.project_id
        );
        return Ok((project.spec, None));
    }
    let catalog = v.catalog();
    let id = p.draft_application("alice", &form).await?;
    p.submit_application("alice", &id, catalog).await?;
    let app = p.db().application(&id).await?;
    let due = app.and_then(|a| a.due_on).unwrap_or_default();
    println!(
        "alice: application {id} 「{}」 submitted (NDB + 介護DB linked by ID5); reviewers due by {due} (working days)",
        form.title
    );
    for (member, db) in [("carol", "ndb"), ("dave", "kaigo"), ("erin", "kaigo")] {
        let recused = p
            .assign_reviewer("frank", &id, member, &[db.to_string()])
            .await?;
        match recused {
            None => println!("frank (chair): {member} reviews {db}"),
            Some(why) => {
                println!("frank (chair): {member} assigned to {db}, recused automatically: {why}")
            }
        }
    }
    match p
        .vote_on_application("dave", &id, ReviewVote::Approve, &BTreeMap::new())
        .await
    {
        Ok(()) => anyhow::bail!("a recused member's vote was accepted"),
        Err(e) => println!("dave: vote refused: {e}"),
    }
    p.vote_on_application("carol", &id, ReviewVote::Approve, &BTreeMap::new())
        .await?;
    let comment = BTreeMap::from([(
        "data".to_string(),
        "所得区分 (income_class) は目的に照らして不要。".to_string(),
    )]);
    p.vote_on_application("erin", &id, ReviewVote::ApproveWithConditions, &comment)
        .await?;
    println!("carol: approve; erin: approve with conditions (data: income_class は不要)");
    let mut conditions = Conditions::default();
    let receipts = form
        .tables
        .iter()
        .find(|t| t.table == "ndb.receipts")
        .map(|t| {
            t.columns
                .iter()
                .filter(|c| *c != "income_class")
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    conditions.columns.insert("ndb.receipts".into(), receipts);
    conditions.duration_months = Some(12);
    conditions
        .notes
        .push("結果の公表前に審査委員会へ報告すること".into());
    let decision = p
        .decide_application(
            "frank",
            &id,
            DecisionOutcome::Approved,
            conditions,
            "公益性があり、利用範囲は目的に照らして必要最小限。",
            catalog,
        )
        .await?;
    let signed = Instant::now();
    println!(
        "frank (chair): approved with conditions (income_class removed, 12 months), signed {}",
        decision.signed_at
    );
    let spec = p.accept_decision("alice", &id, catalog).await?;
    println!(
        "alice: accepts the conditions; project {} is live until {} ({} tables, members {})",
        spec.id,
        spec.expires,
        spec.tables.len(),
        spec.members
            .iter()
            .map(|m| m.user.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok((spec, Some(signed)))
}
