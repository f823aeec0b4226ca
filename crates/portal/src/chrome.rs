//! What every page frames its content with: the language, the signed-in user, the CSRF token
//! for forms and htmx, and the menu of the screens this user may open (decided by the same
//! casbin checks as the actions behind them).

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use niji_governance::{Action, User};

use crate::error::PortalError;
use crate::i18n::{I18n, Lang};
use crate::security::CurrentSession;
use crate::{Portal, cookies};

#[derive(Debug, Clone)]
pub(crate) struct NavLink {
    pub(crate) href: &'static str,
    pub(crate) key: &'static str,
    pub(crate) current: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct Chrome {
    pub(crate) t: &'static I18n,
    pub(crate) lang: &'static str,
    pub(crate) user: Option<User>,
    pub(crate) csrf: String,
    pub(crate) nav: Vec<NavLink>,
    /// The path and query of this page (the language switch returns here).
    pub(crate) here: String,
}

impl Chrome {
    /// The `hx-headers` value that puts the CSRF token on every htmx request.
    pub(crate) fn hx_headers(&self) -> String {
        serde_json::json!({ "x-csrf-token": self.csrf }).to_string()
    }
}

/// Any visitor, signed in or not.
#[derive(Debug)]
pub(crate) struct Visitor {
    pub(crate) chrome: Chrome,
    pub(crate) session: Option<CurrentSession>,
}

/// A signed-in visitor; anyone else is sent to the sign-in page and back.
#[derive(Debug)]
pub(crate) struct Member {
    pub(crate) chrome: Chrome,
    pub(crate) user: User,
    pub(crate) token: String,
}

/// The menu: public screens, then each screen whose action the user holds.
async fn nav(portal: &Portal, user: Option<&User>, path: &str) -> Vec<NavLink> {
    let mut links = vec![("/dashboard", "nav.dashboard"), ("/catalog", "nav.catalog")];
    if let Some(u) = user {
        let p = portal.platform();
        let may = |a: Action| p.allows(&u.name, "", a);
        if may(Action::Apply).await {
            links.push(("/applications", "nav.applications"));
        }
        if may(Action::ReviewApplications).await || may(Action::ReadApplications).await {
            links.push(("/review", "nav.review"));
        }
        if u.role == niji_governance::UserRole::Researcher {
            links.push(("/projects", "nav.projects"));
        }
        if may(Action::CheckOutputs).await {
            links.push(("/outputs", "nav.outputs"));
        }
        if may(Action::RequestDatasets).await
            || may(Action::ManageDatasets).await
            || may(Action::SignOffDatasets).await
        {
            links.push(("/datasets", "nav.datasets"));
        }
        if may(Action::ReadAudit).await {
            links.push(("/audit", "nav.audit"));
        }
        if may(Action::ManageUsers).await || may(Action::SuspendUsers).await {
            links.push(("/admin", "nav.admin"));
        }
    }
    links
        .into_iter()
        .map(|(href, key)| NavLink {
            href,
            key,
            current: path == href || path.starts_with(&format!("{href}/")),
        })
        .collect()
}

impl FromRequestParts<Arc<Portal>> for Visitor {
    type Rejection = PortalError;

    async fn from_request_parts(
        parts: &mut Parts,
        portal: &Arc<Portal>,
    ) -> Result<Self, Self::Rejection> {
        let lang = cookies::get(&parts.headers, cookies::LANG)
            .and_then(Lang::parse)
            .unwrap_or(Lang::Ja);
        let session = parts.extensions.get::<CurrentSession>().cloned();
        let user = session.as_ref().map(|s| s.session.user.clone());
        let path = parts.uri.path();
        let here = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| path.to_string());
        let chrome = Chrome {
            t: lang.strings(),
            lang: lang.as_str(),
            nav: nav(portal, user.as_ref(), path).await,
            user,
            csrf: session
                .as_ref()
                .map(|s| s.session.csrf.clone())
                .unwrap_or_default(),
            here,
        };
        Ok(Visitor { chrome, session })
    }
}

impl FromRequestParts<Arc<Portal>> for Member {
    type Rejection = PortalError;

    async fn from_request_parts(
        parts: &mut Parts,
        portal: &Arc<Portal>,
    ) -> Result<Self, Self::Rejection> {
        let visitor = Visitor::from_request_parts(parts, portal).await?;
        match visitor.session {
            Some(s) => Ok(Member {
                user: s.session.user,
                token: s.token,
                chrome: visitor.chrome,
            }),
            None => Err(PortalError::SignIn(visitor.chrome.here)),
        }
    }
}
