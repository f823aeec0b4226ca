//! The screens, one file each, and the routes that reach them. `/f/…` routes are htmx
//! fragments (see `security::fragment_guard`).

mod account;
mod admin;
mod applications;
mod audit;
mod catalog;
mod console;
mod dashboard;
mod datasets;
mod home;
mod outputs;
mod result;
mod review;
mod signin;

use std::sync::Arc;

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use niji_governance::UserRole;

use crate::Portal;

pub(crate) fn routes() -> Router<Arc<Portal>> {
    Router::new()
        .route("/", get(home::page))
        .route("/lang", get(home::switch_language))
        .route("/static/{file}", get(static_file))
        .route("/signin", get(signin::page).post(signin::submit))
        .route("/signout", post(signin::sign_out))
        .route("/account", get(account::page))
        .route("/account/password", post(account::change_password))
        .route("/account/totp", post(account::begin_totp))
        .route("/account/totp/confirm", post(account::confirm_totp))
        .route("/catalog", get(catalog::page))
        .route("/f/catalog", get(catalog::results))
        .route("/dashboard", get(dashboard::page))
        .route("/f/dashboard", get(dashboard::charts))
        .route(
            "/applications",
            get(applications::mine).post(applications::create),
        )
        .route("/applications/new", get(applications::new_form))
        .route(
            "/applications/{id}",
            get(applications::page).post(applications::edit),
        )
        .route("/applications/{id}/submit", post(applications::submit))
        .route("/applications/{id}/withdraw", post(applications::withdraw))
        .route("/applications/{id}/accept", post(applications::accept))
        .route("/review", get(review::queue))
        .route("/applications/{id}/assign", post(review::assign))
        .route("/applications/{id}/conflict", post(review::conflict))
        .route("/applications/{id}/vote", post(review::vote))
        .route("/applications/{id}/decide", post(review::decide))
        .route("/projects", get(console::projects))
        .route("/projects/{id}", get(console::page))
        .route("/f/projects/{id}/query", post(console::run))
        .route("/projects/{id}/audit", get(console::trail))
        .route("/outputs", get(outputs::queue))
        .route("/outputs/{id}", get(outputs::page))
        .route("/outputs/{id}/request", post(outputs::request_release))
        .route("/outputs/{id}/vote", post(outputs::vote))
        .route("/datasets", get(datasets::page))
        .route("/datasets/requests", post(datasets::request))
        .route("/datasets/requests/{id}/decision", post(datasets::decide))
        .route(
            "/datasets/organisations",
            post(datasets::approve_organisation),
        )
        .route("/datasets/{name}/file", get(datasets::download))
        .route("/datasets/{name}/build", post(datasets::build))
        .route("/datasets/{name}/open", post(datasets::open))
        .route("/datasets/{name}/publish", post(datasets::publish))
        .route("/f/datasets/count", post(datasets::count))
        .route("/audit", get(audit::page))
        .route("/f/audit/verify", post(audit::verify))
        .route("/admin", get(admin::page))
        .route("/admin/users", post(admin::create_user))
        .route("/admin/users/{name}/{action}", post(admin::set_suspension))
        .route("/admin/organisations", post(admin::add_organisation))
}

/// The vendored script and the stylesheet, compiled in: nothing is fetched at run time.
async fn static_file(
    axum::extract::Path(file): axum::extract::Path<String>,
) -> axum::response::Response {
    let (body, kind): (&'static [u8], &str) = match file.as_str() {
        "htmx.min.js" => (
            include_bytes!("../../static/htmx.min.js"),
            "text/javascript; charset=utf-8",
        ),
        "niji.css" => (
            include_bytes!("../../static/niji.css"),
            "text/css; charset=utf-8",
        ),
        _ => return crate::error::PortalError::NotFound.into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}

/// The i18n key of an enum's value: `key("state", &UnderReview)` is `state.under_review`.
pub(crate) fn key<T: serde::Serialize + ?Sized>(family: &str, value: &T) -> String {
    let name = serde_json::to_value(value)
        .ok()
        .and_then(|j| j.as_str().map(str::to_string))
        .unwrap_or_default();
    format!("{family}.{name}")
}

/// The i18n key of a role's name.
pub(crate) fn role_key(role: impl std::borrow::Borrow<UserRole>) -> &'static str {
    match role.borrow() {
        UserRole::Researcher => "role.researcher",
        UserRole::Committee => "role.committee",
        UserRole::Chair => "role.chair",
        UserRole::OutputChecker => "role.output_checker",
        UserRole::Custodian => "role.custodian",
        UserRole::Admin => "role.admin",
        UserRole::Analyst => "role.analyst",
    }
}

/// A path on this site to return to: anything else (another host, a scheme) becomes `/`.
pub(crate) fn safe_next(next: &str) -> &str {
    let ok = next.starts_with('/')
        && !next.starts_with("//")
        && !next.starts_with("/\\")
        && !next.chars().any(|c| c.is_control());
    if ok { next } else { "/" }
}

/// Percent-encoding for a query parameter's value.
pub(crate) fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A 303 to `to` after a form's action (so a reload does not post again).
pub(crate) fn see_other(to: &str) -> axum::response::Response {
    axum::response::Redirect::to(to).into_response()
}

/// Back to an application's page after an action on it.
pub(crate) fn to_application(id: &str) -> axum::response::Response {
    see_other(&format!("/applications/{}", url_encode(id)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_returned_to() {
        assert_eq!(safe_next("/projects/p1"), "/projects/p1");
        assert_eq!(safe_next("//evil.example/"), "/");
        assert_eq!(safe_next("/\\evil.example"), "/");
        assert_eq!(safe_next("https://evil.example/"), "/");
        assert_eq!(safe_next("/a\r\nSet-Cookie: x"), "/");
    }

    #[test]
    fn encodes_what_a_query_value_cannot_hold() {
        assert_eq!(
            url_encode("/audit?actor=a b&x=ü"),
            "/audit%3Factor%3Da%20b%26x%3D%C3%BC"
        );
    }
}
