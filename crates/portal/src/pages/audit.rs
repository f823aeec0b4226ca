//! The audit log (custodians): entries with filters, a page at a time, newest first; the
//! chain's verification on request (it walks the whole log); recent alerts.

use std::sync::Arc;

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Query, State};
use niji_audit::{Entry, Filter, Verification};

use crate::Portal;
use crate::chrome::{Chrome, Member};
use crate::error::PortalError;

const PAGE: i64 = 100;

#[derive(Template, WebTemplate)]
#[template(path = "audit.html")]
pub(crate) struct AuditPage {
    c: Chrome,
    filter: Filter,
    entries: Vec<Entry>,
    alerts: Vec<Entry>,
    /// The query string of the next (older) page.
    older: Option<String>,
}

pub(crate) async fn page(
    State(portal): State<Arc<Portal>>,
    m: Member,
    Query(filter): Query<Filter>,
) -> Result<AuditPage, PortalError> {
    let p = portal.platform();
    let entries = p.audit_entries(&m.user.name, &filter, PAGE).await?;
    let alerts_filter = Filter {
        action: Some("alert".into()),
        ..Filter::default()
    };
    let alerts = p.audit_entries(&m.user.name, &alerts_filter, 10).await?;
    let older = (entries.len() as i64 == PAGE)
        .then(|| entries.last().map(|e| e.seq))
        .flatten()
        .map(|seq| {
            let v = |o: &Option<String>| super::url_encode(o.as_deref().unwrap_or(""));
            format!(
                "actor={}&action={}&contains={}&from={}&to={}&before={seq}",
                v(&filter.actor),
                v(&filter.action),
                v(&filter.contains),
                v(&filter.from),
                v(&filter.to)
            )
        });
    Ok(AuditPage {
        filter,
        entries,
        alerts,
        older,
        c: m.chrome,
    })
}

#[derive(Template, WebTemplate)]
#[template(path = "verify_fragment.html")]
pub(crate) struct VerifyFragment {
    c: Chrome,
    v: Verification,
}

pub(crate) async fn verify(
    State(portal): State<Arc<Portal>>,
    m: Member,
) -> Result<VerifyFragment, PortalError> {
    let v = portal.platform().verify_audit(&m.user.name).await?;
    Ok(VerifyFragment { v, c: m.chrome })
}
