//! Sign-in with a password (and a code, for those with a second factor), and sign-out. The
//! form carries the token of its own cookie (there is no session yet to hold one).

use std::net::SocketAddr;
use std::sync::Arc;

use askama::Template;
use askama_web::WebTemplate;
use axum::Form;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::chrome::{Chrome, Member, Visitor};
use crate::error::PortalError;
use crate::{Portal, cookies};

#[derive(Template, WebTemplate)]
#[template(path = "signin.html")]
pub(crate) struct SignInPage {
    c: Chrome,
    token: String,
    next: String,
    failed: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Next {
    next: Option<String>,
}

pub(crate) async fn page(
    State(portal): State<Arc<Portal>>,
    v: Visitor,
    Query(q): Query<Next>,
) -> Result<Response, PortalError> {
    let next = super::safe_next(q.next.as_deref().unwrap_or("/")).to_string();
    render(&portal, v.chrome, next, None, axum::http::StatusCode::OK)
}

fn render(
    portal: &Portal,
    c: Chrome,
    next: String,
    failed: Option<String>,
    status: axum::http::StatusCode,
) -> Result<Response, PortalError> {
    let token = niji_governance::new_token("")?;
    let cookie = cookies::set(
        &portal.settings,
        cookies::signin_name(&portal.settings),
        &token,
        1800,
    );
    let page = SignInPage {
        c,
        token,
        next,
        failed,
    };
    Ok((status, [(header::SET_COOKIE, cookie)], page).into_response())
}

#[derive(Debug, Deserialize)]
pub(crate) struct SignInForm {
    user: String,
    password: String,
    #[serde(default)]
    code: String,
    #[serde(default)]
    next: String,
}

pub(crate) async fn submit(
    State(portal): State<Arc<Portal>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    v: Visitor,
    Form(form): Form<SignInForm>,
) -> Result<Response, PortalError> {
    let next = super::safe_next(&form.next).to_string();
    let t = v.chrome.t;
    if !portal.limiter.allows(peer.ip()) {
        let message = t.get("signin.too_many").to_string();
        return render(
            &portal,
            v.chrome,
            next,
            Some(message),
            axum::http::StatusCode::TOO_MANY_REQUESTS,
        );
    }
    let code = Some(form.code.as_str()).filter(|c| !c.trim().is_empty());
    let user = match portal
        .platform()
        .sign_in_with_password(form.user.trim(), &form.password, code, "portal")
        .await
    {
        Ok(user) => user,
        Err(e) => {
            portal.limiter.failed(peer.ip());
            let message = match e {
                niji_governance::GovernanceError::Refused(m) => m,
                niji_governance::GovernanceError::Unauthenticated => {
                    t.get("signin.failed").to_string()
                }
                other => return Err(other.into()),
            };
            return render(
                &portal,
                v.chrome,
                next,
                Some(message),
                axum::http::StatusCode::UNAUTHORIZED,
            );
        }
    };
    let (token, _) = portal.platform().open_web_session(&user).await?;
    let lifetime = niji_governance::WEB_SESSION_LIFETIME.as_secs();
    let session = cookies::set(
        &portal.settings,
        cookies::session_name(&portal.settings),
        &token,
        lifetime,
    );
    let used = cookies::set(
        &portal.settings,
        cookies::signin_name(&portal.settings),
        "",
        0,
    );
    Ok((
        axum::response::AppendHeaders([(header::SET_COOKIE, session), (header::SET_COOKIE, used)]),
        super::see_other(&next),
    )
        .into_response())
}

pub(crate) async fn sign_out(
    State(portal): State<Arc<Portal>>,
    m: Member,
) -> Result<Response, PortalError> {
    portal
        .platform()
        .end_web_session(&m.token, "portal")
        .await?;
    let gone = cookies::set(
        &portal.settings,
        cookies::session_name(&portal.settings),
        "",
        0,
    );
    Ok(([(header::SET_COOKIE, gone)], super::see_other("/")).into_response())
}
