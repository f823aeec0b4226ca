//! Applications, as the researcher sees them: the form (drafts saved as often as wanted),
//! one's applications and messages, an application's page with its state, decisions and the
//! conditions to accept. The committee's actions on the same page are in `review`.

use std::sync::Arc;

use askama::Template;
use askama_web::WebTemplate;
use axum::Form;
use axum::extract::{Path, State};
use axum::response::Response;
use niji_governance::applications::{Notification, QueueLine};
use niji_governance::{
    Action, ApplicationForm, ApplicationPage, ApprovedTable, FieldError, Member as ProjectMember,
    Period,
};
use serde::{Deserialize, Serialize};

use crate::Portal;
use crate::chrome::{Chrome, Member};
use crate::error::PortalError;

/// An enum's name as its JSON has it (`under_review`), for i18n keys and CSS classes.
pub(crate) fn snake<T: Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|j| j.as_str().map(str::to_string))
        .unwrap_or_default()
}

#[derive(Template, WebTemplate)]
#[template(path = "applications.html")]
pub(crate) struct MinePage {
    c: Chrome,
    lines: Vec<QueueLine>,
    notifications: Vec<Notification>,
}

pub(crate) async fn mine(
    State(portal): State<Arc<Portal>>,
    m: Member,
) -> Result<MinePage, PortalError> {
    let p = portal.platform();
    Ok(MinePage {
        lines: p.my_applications(&m.user.name, 500).await?,
        notifications: p.notifications(&m.user.name, false).await?,
        c: m.chrome,
    })
}

/// The form as typed: lists one per line, so that no script is needed to add rows.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct FormFields {
    project_id: String,
    title: String,
    purpose: String,
    public_interest: String,
    organisation: String,
    /// `user role` per line (role: lead or researcher).
    analysts: String,
    /// `database.table: column, column` per line.
    tables: String,
    #[serde(default)]
    period_from: String,
    #[serde(default)]
    period_to: String,
    /// Tables to link, comma-separated, one group per line.
    #[serde(default)]
    linkage: String,
    duration_months: String,
}

fn lines(text: &str) -> impl Iterator<Item = &str> {
    text.lines().map(str::trim).filter(|l| !l.is_empty())
}

impl FormFields {
    fn to_form(&self) -> Result<ApplicationForm, PortalError> {
        let mut problems = Vec::new();
        let analysts = lines(&self.analysts)
            .filter_map(|l| {
                let (user, role) = l
                    .split_once(char::is_whitespace)
                    .unwrap_or((l, "researcher"));
                match serde_json::from_value(serde_json::json!(role.trim())) {
                    Ok(role) => Some(ProjectMember {
                        user: user.to_string(),
                        role,
                    }),
                    Err(_) => {
                        problems.push(FieldError {
                            field: "analysts".into(),
                            message: format!("{l:?}: the role is lead or researcher"),
                        });
                        None
                    }
                }
            })
            .collect();
        let tables = lines(&self.tables)
            .map(|l| {
                let (table, columns) = l.split_once(':').unwrap_or((l, ""));
                ApprovedTable {
                    table: table.trim().to_string(),
                    columns: columns
                        .split(',')
                        .map(str::trim)
                        .filter(|c| !c.is_empty())
                        .map(str::to_string)
                        .collect(),
                }
            })
            .collect();
        let public_interest = serde_json::from_value(serde_json::json!(self.public_interest))
            .map_err(|_| {
                PortalError::Refused(format!(
                    "unknown public interest {:?}",
                    self.public_interest
                ))
            })?;
        let duration_months = self.duration_months.trim().parse().unwrap_or_else(|_| {
            problems.push(FieldError {
                field: "duration_months".into(),
                message: "a number of months".into(),
            });
            0
        });
        if !problems.is_empty() {
            return Err(niji_governance::GovernanceError::Invalid(problems).into());
        }
        let period = (!self.period_from.trim().is_empty() || !self.period_to.trim().is_empty())
            .then(|| Period {
                from: self.period_from.trim().to_string(),
                to: self.period_to.trim().to_string(),
            });
        Ok(ApplicationForm {
            project_id: self.project_id.trim().to_string(),
            title: self.title.trim().to_string(),
            purpose: self.purpose.trim().to_string(),
            public_interest,
            organisation: self.organisation.trim().to_string(),
            analysts,
            tables,
            period,
            cohort: None,
            linkage: lines(&self.linkage)
                .map(|l| l.split(',').map(|t| t.trim().to_string()).collect())
                .collect(),
            duration_months,
            environment: niji_governance::applications::UseEnvironment::PseudonymisedVisiting,
            brought_in: Vec::new(),
        })
    }

    fn from_form(f: &ApplicationForm) -> FormFields {
        FormFields {
            project_id: f.project_id.clone(),
            title: f.title.clone(),
            purpose: f.purpose.clone(),
            public_interest: snake(&f.public_interest),
            organisation: f.organisation.clone(),
            analysts: f
                .analysts
                .iter()
                .map(|a| format!("{} {}", a.user, a.role.as_str()))
                .collect::<Vec<_>>()
                .join("\n"),
            tables: f
                .tables
                .iter()
                .map(|t| format!("{}: {}", t.table, t.columns.join(", ")))
                .collect::<Vec<_>>()
                .join("\n"),
            period_from: f
                .period
                .as_ref()
                .map(|p| p.from.clone())
                .unwrap_or_default(),
            period_to: f.period.as_ref().map(|p| p.to.clone()).unwrap_or_default(),
            linkage: f
                .linkage
                .iter()
                .map(|g| g.join(", "))
                .collect::<Vec<_>>()
                .join("\n"),
            duration_months: f.duration_months.to_string(),
        }
    }
}

pub(crate) const PUBLIC_INTERESTS: [&str; 4] = [
    "research_and_development",
    "public_policy",
    "quality_of_care",
    "marketing",
];

#[derive(Template, WebTemplate)]
#[template(path = "application_form.html")]
pub(crate) struct FormPage {
    c: Chrome,
    /// Where the form posts: a new draft or the application it edits.
    action: String,
    f: FormFields,
    problems: Vec<FieldError>,
}

pub(crate) async fn new_form(
    State(portal): State<Arc<Portal>>,
    m: Member,
) -> Result<FormPage, PortalError> {
    if !portal
        .platform()
        .allows(&m.user.name, "", Action::Apply)
        .await
    {
        return Err(niji_governance::GovernanceError::Denied("you may not apply".into()).into());
    }
    let organisation = portal
        .platform()
        .db()
        .organisation_of(&m.user.name)
        .await?
        .unwrap_or_default();
    Ok(FormPage {
        action: "/applications".into(),
        f: FormFields {
            organisation,
            analysts: format!("{} lead", m.user.name),
            duration_months: "12".into(),
            public_interest: "public_policy".into(),
            ..FormFields::default()
        },
        problems: Vec::new(),
        c: m.chrome,
    })
}

/// Saves a new draft and shows it with what still stops its submission.
pub(crate) async fn create(
    State(portal): State<Arc<Portal>>,
    m: Member,
    Form(fields): Form<FormFields>,
) -> Result<Response, PortalError> {
    let form = fields.to_form()?;
    let id = portal
        .platform()
        .draft_application(&m.user.name, &form)
        .await?;
    Ok(super::to_application(&id))
}

pub(crate) async fn edit(
    State(portal): State<Arc<Portal>>,
    m: Member,
    Path(id): Path<String>,
    Form(fields): Form<FormFields>,
) -> Result<Response, PortalError> {
    let form = fields.to_form()?;
    portal
        .platform()
        .edit_application(&m.user.name, &id, &form)
        .await?;
    Ok(super::to_application(&id))
}

/// What the application page offers the one viewing it.
pub(crate) struct Offers {
    pub(crate) edit: bool,
    pub(crate) submit: bool,
    pub(crate) withdraw: bool,
    pub(crate) accept: bool,
    pub(crate) vote: bool,
    pub(crate) assign: bool,
    pub(crate) decide: bool,
}

#[derive(Template, WebTemplate)]
#[template(path = "application.html")]
pub(crate) struct ApplicationView {
    c: Chrome,
    page: ApplicationPage,
    offers: Offers,
    f: FormFields,
    problems: Vec<FieldError>,
    sections: &'static [&'static str],
    reviewers: Vec<String>,
    /// The form's databases, the chair's default for an assignment.
    databases: String,
}

pub(crate) async fn page(
    State(portal): State<Arc<Portal>>,
    m: Member,
    Path(id): Path<String>,
) -> Result<ApplicationView, PortalError> {
    let page = portal.visiting.application_page(&m.user.name, &id).await?;
    let p = portal.platform();
    let me = &m.user.name;
    let state = snake(&page.state);
    let mine = page.application.applicant == *me;
    let open_for_applicant = matches!(state.as_str(), "draft" | "revision_requested");
    let assigned = page
        .assignments
        .iter()
        .any(|a| a.reviewer == *me && a.conflict.is_none());
    let offers = Offers {
        edit: mine && open_for_applicant,
        submit: mine && open_for_applicant,
        withdraw: mine
            && matches!(
                state.as_str(),
                "draft" | "submitted" | "under_review" | "revision_requested" | "approved"
            ),
        accept: mine && state == "approved",
        vote: assigned && state == "under_review",
        assign: matches!(state.as_str(), "submitted" | "under_review")
            && p.allows(me, "", Action::AssignReviewers).await,
        decide: state == "under_review" && p.allows(me, "", Action::DecideApplications).await,
    };
    let reviewers = if offers.assign {
        p.db()
            .users()
            .await?
            .into_iter()
            .filter(|u| u.role.reviews())
            .map(|u| u.name)
            .collect()
    } else {
        Vec::new()
    };
    let problems = if offers.submit {
        page.application.form.problems(portal.visiting.catalog())
    } else {
        Vec::new()
    };
    Ok(ApplicationView {
        databases: page
            .application
            .form
            .databases()
            .into_iter()
            .collect::<Vec<_>>()
            .join(", "),
        f: FormFields::from_form(&page.application.form),
        page,
        offers,
        problems,
        sections: niji_governance::applications::SECTIONS,
        reviewers,
        c: m.chrome,
    })
}

pub(crate) async fn submit(
    State(portal): State<Arc<Portal>>,
    m: Member,
    Path(id): Path<String>,
) -> Result<Response, PortalError> {
    portal
        .platform()
        .submit_application(&m.user.name, &id, portal.visiting.catalog())
        .await?;
    Ok(super::to_application(&id))
}

pub(crate) async fn withdraw(
    State(portal): State<Arc<Portal>>,
    m: Member,
    Path(id): Path<String>,
) -> Result<Response, PortalError> {
    portal
        .platform()
        .withdraw_application(&m.user.name, &id)
        .await?;
    Ok(super::to_application(&id))
}

/// Accepting the decision's conditions makes the project live.
pub(crate) async fn accept(
    State(portal): State<Arc<Portal>>,
    m: Member,
    Path(id): Path<String>,
) -> Result<Response, PortalError> {
    let project = portal
        .platform()
        .accept_decision(&m.user.name, &id, portal.visiting.catalog())
        .await?;
    Ok(super::see_other(&format!(
        "/projects/{}",
        super::url_encode(&project.id)
    )))
}
