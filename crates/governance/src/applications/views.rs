//! What people read: an application's page, the review queue, the applicant's list, their
//! notifications, and the figures users ask for (time to decision, time from approval to a
//! usable project, per phase, in hours and in Japanese working days).

use niji_catalog::Catalog;
use niji_pseudo::CivilDate;
use serde::Serialize;

use super::risk::{RiskSummary, summarise};
use super::store::{Application, ApplicationLine, Assignment, CastReview, Decision, Notification};
use super::{ApplicationState as S, calendar};
use crate::service::today;
use crate::{Action, GovernanceError, Platform};

/// One phase's length.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PhaseTime {
    pub phase: &'static str,
    pub from: String,
    pub to: String,
    pub seconds: f64,
    pub working_days: i64,
}

/// An application as its page shows it to one reader.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ApplicationPage {
    pub application: Application,
    /// The state as of today (an active application whose project expired is expired).
    pub state: S,
    pub overdue: bool,
    pub assignments: Vec<Assignment>,
    /// Reviewers and the chair see every vote; the applicant sees the comments of decided
    /// versions, without names.
    pub votes: Vec<CastReview>,
    pub decisions: Vec<Decision>,
    pub phases: Vec<PhaseTime>,
    /// For the committee and custodians only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub risk: Option<RiskSummary>,
}

/// A queue or list line with its overdue flag.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct QueueLine {
    #[serde(flatten)]
    pub line: ApplicationLine,
    pub overdue: bool,
}

/// Seconds between two platform timestamps (RFC 3339, UTC, milliseconds).
fn seconds_between(from: &str, to: &str) -> Option<f64> {
    let parse = |s: &str| -> Option<f64> {
        let (date, time) = s.split_once('T')?;
        let day = niji_pseudo::date::parse_date(date).ok()?.days_since_epoch() as f64;
        let time = time.trim_end_matches('Z');
        let mut parts = time.split(':');
        let h: f64 = parts.next()?.parse().ok()?;
        let m: f64 = parts.next()?.parse().ok()?;
        let sec: f64 = parts.next()?.parse().ok()?;
        Some(day * 86_400.0 + h * 3_600.0 + m * 60.0 + sec)
    };
    Some(parse(to)? - parse(from)?)
}

fn date_of(ts: &str) -> Option<CivilDate> {
    niji_pseudo::date::parse_date(ts.get(..10)?).ok()
}

/// The phases an application went through so far, each with its length.
pub fn phases(app: &Application) -> Vec<PhaseTime> {
    let stamps: [(&'static str, &Option<String>, &Option<String>); 5] = [
        ("to_assignment", &app.submitted_at, &app.review_started_at),
        ("review", &app.review_started_at, &app.decided_at),
        ("to_decision", &app.first_submitted_at, &app.decided_at),
        ("applicant_response", &app.decided_at, &app.responded_at),
        (
            "approval_to_usable_project",
            &app.decided_at,
            &app.activated_at,
        ),
    ];
    stamps
        .into_iter()
        .filter_map(|(phase, from, to)| {
            let (from, to) = (from.as_ref()?, to.as_ref()?);
            Some(PhaseTime {
                phase,
                seconds: seconds_between(from, to)?,
                working_days: calendar::working_days_between(date_of(from)?, date_of(to)?),
                from: from.clone(),
                to: to.clone(),
            })
        })
        .collect()
}

fn overdue(state: S, due_on: Option<&str>, today: &str) -> bool {
    matches!(
        state,
        S::Submitted | S::UnderReview | S::Approved | S::RevisionRequested
    ) && due_on.is_some_and(|d| !d.is_empty() && d < today)
}

impl Platform {
    /// Application `id` as `actor` may read it (see [`Platform::application_for`]).
    pub async fn application_page(
        &self,
        actor: &str,
        id: &str,
        catalog: &Catalog,
    ) -> Result<ApplicationPage, GovernanceError> {
        let app = self.application_for(actor, id).await?;
        let today = today();
        let committee = self.allows(actor, "", Action::ReadApplications).await
            || self.reviewers_of(id).await?.iter().any(|r| r == actor);
        let decisions = self.db().decisions(id).await?;
        let mut votes = self.db().review_votes(id).await?;
        if !committee {
            votes.retain(|v| decisions.iter().any(|d| d.version == v.version));
            for v in &mut votes {
                v.reviewer = "reviewer".into();
            }
        }
        let state = match (&app.project, app.state) {
            (Some(project), S::Active) => match self.db().project(project).await? {
                Some(p) if !p.is_live(&today) => {
                    if p.state == crate::ProjectState::Closed {
                        S::Closed
                    } else {
                        S::Expired
                    }
                }
                _ => S::Active,
            },
            (_, state) => state,
        };
        Ok(ApplicationPage {
            overdue: overdue(state, app.due_on.as_deref(), &today),
            state,
            assignments: self.db().assignments(id).await?,
            votes,
            decisions,
            phases: phases(&app),
            risk: committee.then(|| summarise(&app.form, catalog)),
            application: app,
        })
    }

    /// The review queue: for the chair and custodians every application in review or awaiting
    /// its applicant; for a member, those assigned to them. Oldest due first.
    pub async fn review_queue(
        &self,
        actor: &str,
        limit: i64,
    ) -> Result<Vec<QueueLine>, GovernanceError> {
        let states = [
            S::Submitted,
            S::UnderReview,
            S::Approved,
            S::RevisionRequested,
        ];
        let lines = if self.allows(actor, "", Action::ReadApplications).await {
            self.db().applications_in(&states, limit).await?
        } else if self.allows(actor, "", Action::ReviewApplications).await {
            self.db()
                .assigned_to(actor, &[S::UnderReview], limit)
                .await?
        } else {
            return Err(GovernanceError::Denied(
                "the review queue is the committee's".into(),
            ));
        };
        Ok(with_overdue(lines))
    }

    /// The applications `actor` made, most recently changed first.
    pub async fn my_applications(
        &self,
        actor: &str,
        limit: i64,
    ) -> Result<Vec<QueueLine>, GovernanceError> {
        Ok(with_overdue(self.db().applications_of(actor, limit).await?))
    }

    pub async fn notifications(
        &self,
        actor: &str,
        unread_only: bool,
    ) -> Result<Vec<Notification>, GovernanceError> {
        self.db().notifications(actor, unread_only, 200).await
    }

    /// Marks `actor`'s notifications up to `up_to` read.
    pub async fn mark_notifications_read(
        &self,
        actor: &str,
        up_to: i64,
    ) -> Result<u64, GovernanceError> {
        self.db().mark_read(actor, up_to).await
    }
}

fn with_overdue(lines: Vec<ApplicationLine>) -> Vec<QueueLine> {
    let today = today();
    lines
        .into_iter()
        .map(|line| QueueLine {
            overdue: overdue(line.state, line.due_on.as_deref(), &today),
            line,
        })
        .collect()
}
