//! Administration: accounts (their role, organisation, password and second factor, whether
//! suspended), new accounts, suspensions and reinstatements, organisations.

use std::sync::Arc;

use askama::Template;
use askama_web::WebTemplate;
use axum::Form;
use axum::extract::{Path, State};
use axum::response::Response;
use niji_governance::{Account, UserRole};
use serde::Deserialize;

use crate::Portal;
use crate::chrome::{Chrome, Member};
use crate::error::PortalError;

#[derive(Template, WebTemplate)]
#[template(path = "admin.html")]
pub(crate) struct AdminPage {
    c: Chrome,
    accounts: Vec<Account>,
    organisations: Vec<(String, String)>,
    roles: &'static [UserRole],
    /// A new account's API token, shown once.
    new_token: Option<(String, String)>,
}

async fn render(
    portal: &Portal,
    m: Member,
    new_token: Option<(String, String)>,
) -> Result<AdminPage, PortalError> {
    let p = portal.platform();
    Ok(AdminPage {
        accounts: p.accounts(&m.user.name).await?,
        organisations: p.organisations().await?,
        roles: &UserRole::ALL,
        new_token,
        c: m.chrome,
    })
}

pub(crate) async fn page(
    State(portal): State<Arc<Portal>>,
    m: Member,
) -> Result<AdminPage, PortalError> {
    render(&portal, m, None).await
}

#[derive(Debug, Deserialize)]
pub(crate) struct NewUser {
    name: String,
    role: String,
    #[serde(default)]
    organisation: String,
    password: String,
}

pub(crate) async fn create_user(
    State(portal): State<Arc<Portal>>,
    m: Member,
    Form(f): Form<NewUser>,
) -> Result<AdminPage, PortalError> {
    let role = UserRole::parse(&f.role)
        .ok_or_else(|| PortalError::Refused(format!("no role {:?}", f.role)))?;
    let token = portal
        .platform()
        .create_account(
            &m.user.name,
            f.name.trim(),
            role,
            Some(f.organisation.trim()),
            &f.password,
        )
        .await?;
    render(&portal, m, Some((f.name.trim().to_string(), token))).await
}

#[derive(Debug, Deserialize)]
pub(crate) struct ReasonForm {
    reason: String,
}

/// Suspends (`/suspend`) or reinstates (`/reinstate`) an account; the platform checks who
/// may and audits it.
pub(crate) async fn set_suspension(
    State(portal): State<Arc<Portal>>,
    m: Member,
    Path((name, action)): Path<(String, String)>,
    Form(f): Form<ReasonForm>,
) -> Result<Response, PortalError> {
    let p = portal.platform();
    match action.as_str() {
        "suspend" => p.suspend_user(&m.user.name, &name, &f.reason).await?,
        "reinstate" => p.reinstate_user(&m.user.name, &name, &f.reason).await?,
        _ => return Err(PortalError::NotFound),
    }
    Ok(super::see_other("/admin"))
}

#[derive(Debug, Deserialize)]
pub(crate) struct NewOrganisation {
    id: String,
    name: String,
}

pub(crate) async fn add_organisation(
    State(portal): State<Arc<Portal>>,
    m: Member,
    Form(f): Form<NewOrganisation>,
) -> Result<Response, PortalError> {
    portal
        .platform()
        .add_organisation(&m.user.name, f.id.trim(), &f.name)
        .await?;
    Ok(super::see_other("/admin"))
}
