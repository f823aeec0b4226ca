//! Standard datasets: the list with their versions, requests on the short form, downloads of
//! what one's granted request covers, feasibility counts; the committee's sign-off; the
//! custodian's builds, openings and publication on the dashboard.

use std::sync::Arc;

use askama::Template;
use askama_web::WebTemplate;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use niji_governance::{Action, DatasetRequest, DatasetRequestForm, DatasetVersion};
use niji_sandbox::{CountAnswer, CountRequest, DatasetFormat};
use serde::Deserialize;

use crate::Portal;
use crate::chrome::{Chrome, Member};
use crate::error::PortalError;

pub(crate) struct DatasetLine {
    pub(crate) name: String,
    pub(crate) title: String,
    pub(crate) meaning: String,
    pub(crate) record_level: bool,
    pub(crate) open: bool,
    pub(crate) published: bool,
    pub(crate) latest: Option<DatasetVersion>,
    /// One's granted request covers it: the download links are shown.
    pub(crate) granted: bool,
}

/// What the user may do here, asked (not attempted: nothing is logged as refused).
pub(crate) struct Powers {
    pub(crate) request: bool,
    pub(crate) manage: bool,
    pub(crate) sign_off: bool,
    pub(crate) count: bool,
}

#[derive(Template, WebTemplate)]
#[template(path = "datasets.html")]
pub(crate) struct DatasetsPage {
    c: Chrome,
    datasets: Vec<DatasetLine>,
    requests: Vec<DatasetRequest>,
    powers: Powers,
    /// For custodians: the organisations to approve for datasets.
    organisations: Vec<(String, String)>,
}

pub(crate) async fn page(
    State(portal): State<Arc<Portal>>,
    m: Member,
) -> Result<DatasetsPage, PortalError> {
    let p = portal.platform();
    let me = &m.user.name;
    let powers = Powers {
        request: p.allows(me, "", Action::RequestDatasets).await,
        manage: p.allows(me, "", Action::ManageDatasets).await,
        sign_off: p.allows(me, "", Action::SignOffDatasets).await,
        count: p.allows(me, "", Action::CountFeasibility).await,
    };
    if !(powers.request || powers.manage || powers.sign_off) {
        return Err(niji_governance::GovernanceError::Denied(
            "standard datasets are for analysts, researchers, the committee and custodians".into(),
        )
        .into());
    }
    let requests = p.dataset_requests(me).await?;
    let published = portal.visiting.published_datasets().await?;
    let ja = m.chrome.lang == "ja";
    let mut datasets = Vec::new();
    for (name, d) in &portal.visiting.standard_datasets().datasets {
        let d = &d.dataset;
        datasets.push(DatasetLine {
            name: name.clone(),
            title: if ja {
                d.title_ja.clone()
            } else {
                d.title_en.clone()
            },
            meaning: if ja {
                d.meaning_ja.clone()
            } else {
                d.meaning_en.clone()
            },
            record_level: d.is_record_level(),
            open: p.dataset_is_open(name).await?,
            published: published.contains(name),
            latest: p
                .dataset_versions(name)
                .await?
                .into_iter()
                .max_by(|a, b| a.built_at.cmp(&b.built_at)),
            granted: requests.iter().any(|r| {
                r.dataset == *name
                    && r.requester == *me
                    && r.state == niji_governance::RequestState::Granted
            }),
        });
    }
    let organisations = if powers.manage {
        p.organisations().await?
    } else {
        Vec::new()
    };
    Ok(DatasetsPage {
        datasets,
        requests,
        organisations,
        powers,
        c: m.chrome,
    })
}

#[derive(Debug, Deserialize)]
pub(crate) struct RequestForm {
    dataset: String,
    purpose: String,
    public_interest: String,
    #[serde(default)]
    pledge: Option<String>,
}

pub(crate) async fn request(
    State(portal): State<Arc<Portal>>,
    m: Member,
    Form(f): Form<RequestForm>,
) -> Result<Response, PortalError> {
    let form = DatasetRequestForm {
        dataset: f.dataset,
        purpose: f.purpose,
        public_interest: f.public_interest,
        pledge: f.pledge.is_some(),
    };
    let offered = portal.visiting.offered(&form.dataset);
    portal
        .platform()
        .request_dataset(&m.user.name, &form, offered)
        .await?;
    Ok(super::see_other("/datasets"))
}

#[derive(Debug, Deserialize)]
pub(crate) struct DecisionForm {
    grant: String,
    #[serde(default)]
    reason: String,
}

pub(crate) async fn decide(
    State(portal): State<Arc<Portal>>,
    m: Member,
    Path(id): Path<String>,
    Form(f): Form<DecisionForm>,
) -> Result<Response, PortalError> {
    portal
        .platform()
        .sign_off_dataset_request(&m.user.name, &id, f.grant == "yes", &f.reason)
        .await?;
    Ok(super::see_other("/datasets"))
}

#[derive(Debug, Deserialize)]
pub(crate) struct FileQuery {
    format: Option<String>,
}

/// The file itself, as the API hands it (its version and digest in the headers).
pub(crate) async fn download(
    State(portal): State<Arc<Portal>>,
    m: Member,
    Path(name): Path<String>,
    Query(q): Query<FileQuery>,
) -> Result<Response, PortalError> {
    let format = DatasetFormat::parse(q.format.as_deref().unwrap_or("csv"))
        .filter(|f| *f != DatasetFormat::Flight)
        .ok_or_else(|| PortalError::Refused("format is csv or parquet".into()))?;
    let delivery = portal
        .visiting
        .deliver_dataset(&m.user.name, &name, format)
        .await?;
    let value = |s: &str| HeaderValue::from_str(s).unwrap_or(HeaderValue::from_static(""));
    let short = delivery
        .version
        .version
        .get(..12)
        .unwrap_or(&delivery.version.version);
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(format.media_type()),
            ),
            (
                header::CONTENT_DISPOSITION,
                value(&format!(
                    "attachment; filename=\"{name}-{short}.{}\"",
                    format.as_str()
                )),
            ),
            (
                header::HeaderName::from_static("x-niji-sha256"),
                value(&delivery.sha256),
            ),
        ],
        delivery.bytes,
    )
        .into_response())
}

pub(crate) async fn build(
    State(portal): State<Arc<Portal>>,
    m: Member,
    Path(name): Path<String>,
) -> Result<Response, PortalError> {
    portal.visiting.build_dataset(&m.user.name, &name).await?;
    Ok(super::see_other("/datasets"))
}

pub(crate) async fn open(
    State(portal): State<Arc<Portal>>,
    m: Member,
    Path(name): Path<String>,
) -> Result<Response, PortalError> {
    portal.visiting.open_dataset(&m.user.name, &name).await?;
    Ok(super::see_other("/datasets"))
}

#[derive(Debug, Deserialize)]
pub(crate) struct OrganisationForm {
    organisation: String,
}

/// Approves an organisation for standard datasets (custodians): its analysts may then
/// request open datasets on the short form.
pub(crate) async fn approve_organisation(
    State(portal): State<Arc<Portal>>,
    m: Member,
    Form(f): Form<OrganisationForm>,
) -> Result<Response, PortalError> {
    portal
        .platform()
        .approve_dataset_organisation(&m.user.name, f.organisation.trim())
        .await?;
    Ok(super::see_other("/datasets"))
}

#[derive(Debug, Deserialize)]
pub(crate) struct PublishForm {
    publish: String,
}

pub(crate) async fn publish(
    State(portal): State<Arc<Portal>>,
    m: Member,
    Path(name): Path<String>,
    Form(f): Form<PublishForm>,
) -> Result<Response, PortalError> {
    portal
        .visiting
        .publish_dataset(&m.user.name, &name, f.publish == "yes")
        .await?;
    Ok(super::see_other("/datasets"))
}

#[derive(Debug, Deserialize)]
pub(crate) struct CountForm {
    disease_no: u16,
    fiscal_year: u16,
    #[serde(default)]
    prefecture: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "count_fragment.html")]
pub(crate) struct CountFragment {
    c: Chrome,
    answer: Result<CountAnswer, String>,
}

/// A feasibility count, answered in place (a refusal too: the quota, the policy).
pub(crate) async fn count(
    State(portal): State<Arc<Portal>>,
    m: Member,
    Form(f): Form<CountForm>,
) -> CountFragment {
    let mut request = CountRequest::new(f.disease_no, f.fiscal_year);
    request.prefecture = Some(f.prefecture.trim().to_string()).filter(|p| !p.is_empty());
    let answer = portal
        .visiting
        .feasibility_count(&m.user.name, &request)
        .await
        .map_err(|e| e.public_message());
    CountFragment {
        answer,
        c: m.chrome,
    }
}
