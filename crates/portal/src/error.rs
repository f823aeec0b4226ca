//! The portal's one error family, turned into a page in one place, with the status the API
//! gives the same failure (the sandbox's [`Failure`]) and only the sandbox's public message.

use askama::Template;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use niji_governance::{FieldError, GovernanceError};
use niji_sandbox::{Failure, SandboxError};

#[derive(Debug, thiserror::Error)]
pub(crate) enum PortalError {
    /// A page that needs a signed-in user; the sign-in page comes back here after.
    #[error("sign in first")]
    SignIn(String),
    #[error("no such page")]
    NotFound,
    #[error("the form's security token is missing or wrong: reload the page and try again")]
    Csrf,
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
}

impl From<GovernanceError> for PortalError {
    fn from(e: GovernanceError) -> Self {
        PortalError::Sandbox(SandboxError::Governance(e))
    }
}

impl PortalError {
    fn status(&self) -> StatusCode {
        match self {
            PortalError::SignIn(_) => StatusCode::SEE_OTHER,
            PortalError::NotFound => StatusCode::NOT_FOUND,
            PortalError::Csrf => StatusCode::FORBIDDEN,
            PortalError::Refused(_) => StatusCode::UNPROCESSABLE_ENTITY,
            PortalError::Sandbox(e) => match e.failure() {
                Failure::Unauthenticated => StatusCode::UNAUTHORIZED,
                Failure::Denied => StatusCode::FORBIDDEN,
                Failure::Busy => StatusCode::TOO_MANY_REQUESTS,
                Failure::TimeLimit => StatusCode::GATEWAY_TIMEOUT,
                Failure::Refused => StatusCode::UNPROCESSABLE_ENTITY,
                Failure::NotFound => StatusCode::NOT_FOUND,
                Failure::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            },
        }
    }

    fn message(&self) -> String {
        match self {
            PortalError::Sandbox(e) => e.public_message(),
            other => other.to_string(),
        }
    }

    fn problems(&self) -> Vec<FieldError> {
        match self {
            PortalError::Sandbox(SandboxError::Governance(GovernanceError::Invalid(p))) => {
                p.clone()
            }
            _ => Vec::new(),
        }
    }
}

/// Bilingual: an error page must not depend on the session or cookies that may have failed.
#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    status: u16,
    message: String,
    problems: Vec<FieldError>,
}

impl IntoResponse for PortalError {
    fn into_response(self) -> Response {
        if let PortalError::SignIn(next) = &self {
            let safe = crate::pages::safe_next(next);
            return Redirect::to(&format!("/signin?next={}", crate::pages::url_encode(safe)))
                .into_response();
        }
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(error = %self, source = ?std::error::Error::source(&self), "portal request failed");
        }
        let page = ErrorPage {
            status: status.as_u16(),
            message: self.message(),
            problems: self.problems(),
        };
        match page.render() {
            Ok(html) => (
                status,
                [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
                html,
            )
                .into_response(),
            Err(_) => status.into_response(),
        }
    }
}
