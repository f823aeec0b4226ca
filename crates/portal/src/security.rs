//! The middleware every portal request passes: strict headers on every response, fragments
//! only for htmx, and the CSRF check before any handler that may change state runs.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use niji_governance::WebSession;

use crate::error::PortalError;
use crate::{Portal, cookies};

/// A request's session, looked up once by [`csrf_check`] for the handlers after it.
#[derive(Debug, Clone)]
pub(crate) struct CurrentSession {
    pub(crate) token: String,
    pub(crate) session: WebSession,
}

/// No inline script or style anywhere, nothing from elsewhere, never framed.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

pub(crate) async fn headers(
    State(portal): State<Arc<Portal>>,
    req: Request,
    next: Next,
) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    let set = |h: &mut axum::http::HeaderMap, name: &'static str, value: &'static str| {
        h.insert(name, HeaderValue::from_static(value));
    };
    set(h, "content-security-policy", CSP);
    set(h, "x-content-type-options", "nosniff");
    set(h, "x-frame-options", "DENY");
    set(h, "referrer-policy", "no-referrer");
    set(h, "cross-origin-opener-policy", "same-origin");
    set(h, "cross-origin-resource-policy", "same-origin");
    set(
        h,
        "permissions-policy",
        "camera=(), microphone=(), geolocation=(), payment=(), usb=(), interest-cohort=()",
    );
    if portal.settings.behind_tls {
        set(
            h,
            "strict-transport-security",
            "max-age=63072000; includeSubDomains",
        );
    }
    if !h.contains_key(header::CACHE_CONTROL) {
        // Pages carry health-data results and tokens: never kept by a browser or a proxy.
        set(h, "cache-control", "no-store");
    }
    res
}

/// `/f/…` routes answer htmx only: a plain load (a link, a typed address, a form posted from
/// elsewhere) gets 404 before the handler runs. htmx sends `HX-Request`, which a cross-site
/// form cannot and a cross-site script may only after a preflight this server never grants.
pub(crate) async fn fragment_guard(req: Request, next: Next) -> Response {
    let is_fragment = req.uri().path().starts_with("/f/");
    let from_htmx = req
        .headers()
        .get("hx-request")
        .is_some_and(|v| v.as_bytes() == b"true");
    if is_fragment && !from_htmx {
        return PortalError::NotFound.into_response();
    }
    next.run(req).await
}

/// Bodies of portal forms are small: an application, a query, a reason.
const MAX_FORM_BYTES: usize = 1 << 20;

/// Looks up the session (for every request) and, for every request that may change state,
/// demands the session's CSRF token in the `x-csrf-token` header (htmx) or the `csrf` form
/// field; the sign-in form, before any session, carries the token of its own cookie.
pub(crate) async fn csrf_check(
    State(portal): State<Arc<Portal>>,
    req: Request,
    next: Next,
) -> Response {
    let current = match current_session(&portal, req.headers()).await {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    if matches!(*req.method(), Method::GET | Method::HEAD) {
        let mut req = req;
        if let Some(c) = current {
            req.extensions_mut().insert(c);
        }
        return next.run(req).await;
    }
    let (mut parts, body) = req.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_FORM_BYTES).await else {
        return PortalError::Refused("the form is too large".into()).into_response();
    };
    let sent = parts
        .headers
        .get("x-csrf-token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| form_field(&bytes, "csrf"));
    let expected = if parts.uri.path() == "/signin" {
        cookies::get(&parts.headers, cookies::signin_name(&portal.settings)).map(str::to_string)
    } else {
        current.as_ref().map(|c| c.session.csrf.clone())
    };
    let matches = match (&sent, &expected) {
        (Some(s), Some(e)) => !e.is_empty() && constant_time_eq(s.as_bytes(), e.as_bytes()),
        _ => false,
    };
    if !matches {
        let who = current
            .as_ref()
            .map(|c| c.session.user.name.clone())
            .unwrap_or_else(|| "anonymous".into());
        tracing::warn!(user = %who, path = %parts.uri.path(), "request without its CSRF token refused");
        if let Some(c) = &current {
            let detail = serde_json::json!({
                "attempted": format!("{} {}", parts.method, parts.uri.path()),
                "reason": "no CSRF token or the wrong one",
            });
            if let Err(e) = portal
                .platform()
                .audited(&c.session.user.name, "refused", &detail)
                .await
            {
                return PortalError::from(e).into_response();
            }
        }
        return PortalError::Csrf.into_response();
    }
    if let Some(c) = current {
        parts.extensions.insert(c);
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

async fn current_session(
    portal: &Portal,
    headers: &axum::http::HeaderMap,
) -> Result<Option<CurrentSession>, PortalError> {
    let Some(token) = cookies::get(headers, cookies::session_name(&portal.settings)) else {
        return Ok(None);
    };
    Ok(portal
        .platform()
        .web_session(token)
        .await?
        .map(|session| CurrentSession {
            token: token.to_string(),
            session,
        }))
}

/// One field of an `application/x-www-form-urlencoded` body (tokens are hex: no decoding).
fn form_field(body: &[u8], name: &str) -> Option<String> {
    std::str::from_utf8(body)
        .ok()?
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_token_field_of_a_form() {
        assert_eq!(
            form_field(b"sql=select+1&csrf=abc123&x=1", "csrf").as_deref(),
            Some("abc123")
        );
        assert_eq!(form_field(b"sql=csrf%3Dabc", "csrf"), None);
    }

    #[test]
    fn compares_whole_tokens() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }
}
