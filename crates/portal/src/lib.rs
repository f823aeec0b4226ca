//! The web portal, served by `niji serve` beside the API: server-rendered pages (askama
//! templates compiled with the binary) with htmx for partial updates, and nothing else to
//! fetch. Every handler calls the same `Visiting` and `Platform` methods as the API handler of
//! the same action, with the signed-in user: the portal never reads the platform database or
//! the store itself, so a page shows nothing the API would not give the same user.
//!
//! Requests pass, in order: the security headers (every response), the fragment guard
//! (`/f/…` only for htmx), the CSRF check (every request that is not GET or HEAD), then the
//! handler. See `docs/portal.md`.

mod chart;
mod chrome;
mod cookies;
mod error;
mod i18n;
mod pages;
mod security;
mod signin_limiter;

use std::sync::Arc;

use axum::Router;
use niji_sandbox::Visiting;

pub use i18n::{EN, JA, Lang};

/// How the portal is served.
#[derive(Debug, Clone, Default)]
pub struct PortalSettings {
    /// Served behind TLS: cookies are `Secure` (and `__Host-`), and HSTS is sent.
    pub behind_tls: bool,
}

/// What every handler shares.
#[derive(Debug)]
pub(crate) struct Portal {
    pub(crate) visiting: Arc<Visiting>,
    pub(crate) settings: PortalSettings,
    pub(crate) limiter: signin_limiter::SignInLimiter,
}

impl Portal {
    pub(crate) fn platform(&self) -> &niji_governance::Platform {
        self.visiting.platform()
    }
}

/// The portal's routes with their middleware, ready to merge beside the API.
pub fn router(visiting: Arc<Visiting>, settings: PortalSettings) -> Router {
    let portal = Arc::new(Portal {
        visiting,
        settings,
        limiter: signin_limiter::SignInLimiter::default(),
    });
    pages::routes()
        .layer(axum::middleware::from_fn_with_state(
            portal.clone(),
            security::csrf_check,
        ))
        .layer(axum::middleware::from_fn(security::fragment_guard))
        .layer(axum::middleware::from_fn_with_state(
            portal.clone(),
            security::headers,
        ))
        .with_state(portal)
}
