//! One's own account: a new password (proving the current one) and a second factor.

use std::sync::Arc;

use askama::Template;
use askama_web::WebTemplate;
use axum::Form;
use axum::extract::State;
use axum::response::Response;
use serde::Deserialize;

use crate::Portal;
use crate::chrome::{Chrome, Member};
use crate::error::PortalError;

#[derive(Template, WebTemplate)]
#[template(path = "account.html")]
pub(crate) struct AccountPage {
    c: Chrome,
    done: Option<&'static str>,
    enrolment: Option<niji_governance::TotpEnrolment>,
}

pub(crate) async fn page(m: Member) -> AccountPage {
    AccountPage {
        c: m.chrome,
        done: None,
        enrolment: None,
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct PasswordForm {
    current: String,
    new: String,
}

/// A new password ends every session, this one too: the next page is the sign-in page.
pub(crate) async fn change_password(
    State(portal): State<Arc<Portal>>,
    m: Member,
    Form(f): Form<PasswordForm>,
) -> Result<Response, PortalError> {
    portal
        .platform()
        .change_password(&m.user.name, &f.current, &f.new)
        .await?;
    Ok(super::see_other("/signin"))
}

pub(crate) async fn begin_totp(
    State(portal): State<Arc<Portal>>,
    m: Member,
) -> Result<AccountPage, PortalError> {
    let enrolment = portal.platform().begin_totp(&m.user.name).await?;
    Ok(AccountPage {
        c: m.chrome,
        done: None,
        enrolment: Some(enrolment),
    })
}

#[derive(Debug, Deserialize)]
pub(crate) struct CodeForm {
    code: String,
}

pub(crate) async fn confirm_totp(
    State(portal): State<Arc<Portal>>,
    m: Member,
    Form(f): Form<CodeForm>,
) -> Result<AccountPage, PortalError> {
    portal
        .platform()
        .confirm_totp(&m.user.name, &f.code)
        .await?;
    Ok(AccountPage {
        c: m.chrome,
        done: Some("account.totp_on"),
        enrolment: None,
    })
}
