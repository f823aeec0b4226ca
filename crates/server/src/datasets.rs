//! Standard datasets over HTTP (JSON, and the files themselves).
//!
//! - `GET /api/v1/datasets` → the definitions, their items and the versions built
//! - `POST /api/v1/datasets/{name}/build` → the version for the current data (custodians)
//! - `POST /api/v1/datasets/requests` `{"dataset", "purpose", "public_interest", "pledge"}` → 201
//! - `GET /api/v1/datasets/requests` → one's own requests (all, for those who sign off)
//! - `POST /api/v1/datasets/requests/{id}/decision` `{"grant", "reason"}` → the request
//! - `GET /api/v1/datasets/{name}/file?format=csv|parquet` → the file, its version and
//!   SHA-256 in `x-niji-dataset-version` and `x-niji-sha256`
//! - `POST /api/v1/feasibility/counts` `{"disease_no", "fiscal_year", …}` → a feasibility count

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use niji_governance::{DatasetRequest, DatasetRequestForm, DatasetVersion};
use niji_sandbox::{CountAnswer, CountRequest, DatasetFormat};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::http::SignedIn;
use crate::status::{ErrorBody, ServerError};

pub fn api() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(build))
        .routes(routes!(request, requests))
        .routes(routes!(decide))
        .routes(routes!(file))
        .routes(routes!(count))
}

#[derive(Debug, Serialize, ToSchema)]
struct DatasetItem {
    name: String,
    meaning_ja: String,
    meaning_en: String,
}

#[derive(Debug, Serialize, ToSchema)]
struct DatasetInfo {
    name: String,
    title_ja: String,
    title_en: String,
    meaning_ja: String,
    meaning_en: String,
    grouping: Vec<DatasetItem>,
    measures: Vec<DatasetItem>,
    /// An anonymised record-level extract (匿名加工): one record per person, never open.
    record_level: bool,
    /// For an extract: its file's columns (the record number first).
    columns: Vec<DatasetItem>,
    /// For an extract built at the current data: to custodians, the whole report (records in,
    /// out and suppressed, values suppressed, levels, information lost); to others, the
    /// summary (k, levels, information lost) without counts.
    #[schema(value_type = Option<Object>)]
    anonymisation: Option<serde_json::Value>,
    /// Open to every approved organisation (no sign-off).
    open: bool,
    versions: Vec<DatasetVersion>,
}

#[derive(Debug, Serialize, ToSchema)]
struct Datasets {
    datasets: Vec<DatasetInfo>,
}

fn items(items: &[niji_catalog::standard::Item]) -> Vec<DatasetItem> {
    items
        .iter()
        .map(|i| DatasetItem {
            name: i.name.clone(),
            meaning_ja: i.meaning_ja.clone(),
            meaning_en: i.meaning_en.clone(),
        })
        .collect()
}

#[utoipa::path(get, path = "/api/v1/datasets", tag = "datasets", security(("session" = [])), responses((status = 200, body = Datasets), (status = 401, body = ErrorBody)))]
async fn list(
    State(state): State<Arc<AppState>>,
    SignedIn(user): SignedIn,
) -> Result<Json<Datasets>, ServerError> {
    let platform = state.visiting.platform();
    // Asked, not attempted: no refusal is logged for a reader who is not a custodian.
    let custodian = platform
        .allows(&user, "", niji_governance::Action::ManageDatasets)
        .await;
    let mut datasets = Vec::new();
    for (name, d) in &state.visiting.standard_datasets().datasets {
        let d = &d.dataset;
        datasets.push(DatasetInfo {
            name: name.clone(),
            title_ja: d.title_ja.clone(),
            title_en: d.title_en.clone(),
            meaning_ja: d.meaning_ja.clone(),
            meaning_en: d.meaning_en.clone(),
            grouping: items(&d.grouping),
            measures: items(&d.measures),
            record_level: d.is_record_level(),
            columns: if d.is_record_level() {
                items(&d.items())
            } else {
                Vec::new()
            },
            // None too where it cannot be built at the current data (a source table missing).
            anonymisation: state
                .visiting
                .extract_report(name)
                .await
                .unwrap_or_default()
                .map(|r| {
                    if custodian {
                        serde_json::to_value(&r)
                    } else {
                        serde_json::to_value(r.summary())
                    }
                    .unwrap_or_default()
                }),
            open: platform.dataset_is_open(name).await?,
            versions: platform.dataset_versions(name).await?,
        });
    }
    Ok(Json(Datasets { datasets }))
}

#[utoipa::path(post, path = "/api/v1/datasets/{name}/build", tag = "datasets", security(("session" = [])), params(("name" = String, Path)), responses((status = 200, description = "the version for the current data, built now or before", body = DatasetVersion), (status = "4XX", description = "denied (custodians only), refused (no such dataset, a cell that would be held)", body = ErrorBody)))]
async fn build(
    State(state): State<Arc<AppState>>,
    SignedIn(user): SignedIn,
    Path(name): Path<String>,
) -> Result<Json<DatasetVersion>, ServerError> {
    Ok(Json(state.visiting.build_dataset(&user, &name).await?))
}

#[utoipa::path(post, path = "/api/v1/datasets/requests", tag = "datasets", security(("session" = [])), request_body = DatasetRequestForm, responses((status = 201, description = "filed (granted at once for an open dataset and an approved organisation)", body = DatasetRequest), (status = "4XX", description = "denied, or the form's problems by field", body = ErrorBody)))]
async fn request(
    State(state): State<Arc<AppState>>,
    SignedIn(user): SignedIn,
    body: Result<Json<DatasetRequestForm>, JsonRejection>,
) -> Result<(StatusCode, Json<DatasetRequest>), ServerError> {
    let Json(form) = body.map_err(|_| {
        ServerError::BadRequest(
            "the body is JSON with dataset, purpose and public_interest (strings) and pledge (a boolean)".into(),
        )
    })?;
    let offered = state.visiting.offered(&form.dataset);
    let filed = state
        .visiting
        .platform()
        .request_dataset(&user, &form, offered)
        .await?;
    Ok((StatusCode::CREATED, Json(filed)))
}

#[derive(Debug, Serialize, ToSchema)]
struct Requests {
    requests: Vec<DatasetRequest>,
}

#[utoipa::path(get, path = "/api/v1/datasets/requests", tag = "datasets", security(("session" = [])), responses((status = 200, body = Requests), (status = 401, body = ErrorBody)))]
async fn requests(
    State(state): State<Arc<AppState>>,
    SignedIn(user): SignedIn,
) -> Result<Json<Requests>, ServerError> {
    let requests = state.visiting.platform().dataset_requests(&user).await?;
    Ok(Json(Requests { requests }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct Decision {
    grant: bool,
    #[serde(default)]
    reason: String,
}

#[utoipa::path(post, path = "/api/v1/datasets/requests/{id}/decision", tag = "datasets", security(("session" = [])), params(("id" = String, Path)), request_body = Decision, responses((status = 200, body = DatasetRequest), (status = "4XX", description = "denied (committee only; the requester's organisation is recused), refused (decided already, a refusal without a reason)", body = ErrorBody)))]
async fn decide(
    State(state): State<Arc<AppState>>,
    SignedIn(user): SignedIn,
    Path(id): Path<String>,
    body: Result<Json<Decision>, JsonRejection>,
) -> Result<Json<DatasetRequest>, ServerError> {
    let Json(d) = body.map_err(|_| {
        ServerError::BadRequest("the body is JSON with grant (a boolean) and reason".into())
    })?;
    let decided = state
        .visiting
        .platform()
        .sign_off_dataset_request(&user, &id, d.grant, &d.reason)
        .await?;
    Ok(Json(decided))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
struct FileQuery {
    /// `csv` (default) or `parquet`.
    format: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/datasets/{name}/file", tag = "datasets", security(("session" = [])), params(("name" = String, Path), FileQuery), responses((status = 200, description = "the file at the current data version; its version and SHA-256 in x-niji-dataset-version and x-niji-sha256", content_type = "application/octet-stream"), (status = "4XX", description = "denied (no granted, unexpired request of yours covers it)", body = ErrorBody)))]
async fn file(
    State(state): State<Arc<AppState>>,
    SignedIn(user): SignedIn,
    Path(name): Path<String>,
    Query(q): Query<FileQuery>,
) -> Result<Response, ServerError> {
    let format = match q.format.as_deref() {
        None => DatasetFormat::Csv,
        Some(f) => DatasetFormat::parse(f)
            .ok_or_else(|| ServerError::BadRequest("format is csv or parquet".into()))?,
    };
    let delivery = state.visiting.deliver_dataset(&user, &name, format).await?;
    let header_value = |s: &str| HeaderValue::from_str(s).unwrap_or(HeaderValue::from_static(""));
    let filename = format!(
        "attachment; filename=\"{name}-{}.{}\"",
        &delivery.version.version[..12],
        format.as_str()
    );
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(format.media_type()),
            ),
            (header::CONTENT_DISPOSITION, header_value(&filename)),
            (
                header::HeaderName::from_static("x-niji-dataset-version"),
                header_value(&delivery.version.version),
            ),
            (
                header::HeaderName::from_static("x-niji-sha256"),
                header_value(&delivery.sha256),
            ),
        ],
        delivery.bytes,
    )
        .into_response())
}

#[utoipa::path(post, path = "/api/v1/feasibility/counts", tag = "datasets", security(("session" = [])), request_body = CountRequest, responses((status = 200, description = "the count: rounded, <10, or withheld (too close to an earlier count of the organisation's)", body = CountAnswer), (status = "4XX", description = "denied (no approved organisation, a quota, the lockout), refused (a condition out of range)", body = ErrorBody)))]
async fn count(
    State(state): State<Arc<AppState>>,
    SignedIn(user): SignedIn,
    body: Result<Json<CountRequest>, JsonRejection>,
) -> Result<Json<CountAnswer>, ServerError> {
    let Json(request) = body.map_err(|_| {
        ServerError::BadRequest(
            "the body is JSON with disease_no and fiscal_year, and optionally severity_from, severity_to, age_from, age_to, prefecture and new_only".into(),
        )
    })?;
    Ok(Json(
        state.visiting.feasibility_count(&user, &request).await?,
    ))
}
