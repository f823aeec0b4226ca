//! Consent withdrawals over HTTP (JSON), for custodians. The registration travels in the
//! body only: never in a path, a query string or a log line.
//!
//! - `POST /api/v1/consent/withdrawals` `{"database", "kana_name", "sex", "birth_date",
//!   "consent_no", "not_yet_delivered"}` → 201
//! - `GET /api/v1/consent/withdrawals` → every withdrawal recorded

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use niji_governance::Withdrawal;
use niji_pseudo::Registration;
use niji_sandbox::{SandboxError, WithdrawalReport};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::http::SignedIn;
use crate::status::{ErrorBody, ServerError};

pub fn api() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new().routes(routes!(list, withdraw))
}

/// A registration as the person gave it. No `Debug`: it holds a name and a birth date.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct WithdrawBody {
    /// `nanbyo` or `shoman`.
    database: String,
    kana_name: String,
    sex: String,
    birth_date: String,
    consent_no: String,
    /// Record it although no stored row matches yet.
    #[serde(default)]
    not_yet_delivered: bool,
}

#[utoipa::path(post, path = "/api/v1/consent/withdrawals", tag = "consent", security(("session" = [])), request_body = WithdrawBody, responses((status = 201, description = "recorded: the person is in no project's views from the next query on", body = WithdrawalReport), (status = "4XX", description = "denied (custodians only), refused (a field, no stored registration, already recorded)", body = ErrorBody)))]
async fn withdraw(
    State(state): State<Arc<AppState>>,
    SignedIn(user): SignedIn,
    body: Result<Json<WithdrawBody>, JsonRejection>,
) -> Result<(StatusCode, Json<WithdrawalReport>), ServerError> {
    // The permission first: whatever the body, a non-custodian learns only that they may not.
    state
        .visiting
        .platform()
        .may_record_withdrawals(&user)
        .await?;
    // A body that does not parse is named, not quoted: the parser's message may hold a value.
    let Json(body) = body.map_err(|_| {
        ServerError::BadRequest(
            "the body is JSON with database, kana_name, sex, birth_date and consent_no (strings) and not_yet_delivered (a boolean)".into(),
        )
    })?;
    let registration = Registration::parse(
        &body.kana_name,
        &body.sex,
        &body.birth_date,
        &body.consent_no,
    )
    .map_err(|e| SandboxError::Refused(e.to_string()))?;
    let report = state
        .visiting
        .withdraw_consent(&user, &body.database, &registration, body.not_yet_delivered)
        .await?;
    Ok((StatusCode::CREATED, Json(report)))
}

#[derive(Debug, Serialize, ToSchema)]
struct Withdrawals {
    withdrawals: Vec<Withdrawal>,
}

#[utoipa::path(get, path = "/api/v1/consent/withdrawals", tag = "consent", security(("session" = [])), responses((status = 200, body = Withdrawals), (status = "4XX", description = "denied (custodians only)", body = ErrorBody)))]
async fn list(
    State(state): State<Arc<AppState>>,
    SignedIn(user): SignedIn,
) -> Result<Json<Withdrawals>, ServerError> {
    let withdrawals = state.visiting.platform().list_withdrawals(&user).await?;
    Ok(Json(Withdrawals { withdrawals }))
}
