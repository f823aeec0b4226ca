//! The one mapping from what went wrong, or what a query came to, to HTTP and gRPC statuses:
//!
//! | failure                              | HTTP | gRPC               |
//! |--------------------------------------|------|--------------------|
//! | wrong or missing credentials         | 401  | UNAUTHENTICATED    |
//! | not permitted                        | 403  | PERMISSION_DENIED  |
//! | busy                                 | 429  | RESOURCE_EXHAUSTED |
//! | time limit                           | 504  | DEADLINE_EXCEEDED  |
//! | refused (SQL, a limit, a bad request)| 422  | INVALID_ARGUMENT   |
//! | no such thing                        | 404  | NOT_FOUND          |
//! | anything else                        | 500  | INTERNAL           |
//!
//! An answer, held or not, is 200 / OK with the outcome. Messages are the sandbox's public
//! ones; internals stay in the server log and, for real data, in the audit log.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use niji_sandbox::{Failure, QueryOutcome, SandboxError};
use serde::Serialize;

/// The statuses of a failure, on each interface.
pub fn statuses(failure: Failure) -> (StatusCode, tonic::Code) {
    match failure {
        Failure::Unauthenticated => (StatusCode::UNAUTHORIZED, tonic::Code::Unauthenticated),
        Failure::Denied => (StatusCode::FORBIDDEN, tonic::Code::PermissionDenied),
        Failure::Busy => (
            StatusCode::TOO_MANY_REQUESTS,
            tonic::Code::ResourceExhausted,
        ),
        Failure::TimeLimit => (StatusCode::GATEWAY_TIMEOUT, tonic::Code::DeadlineExceeded),
        Failure::Refused => (
            StatusCode::UNPROCESSABLE_ENTITY,
            tonic::Code::InvalidArgument,
        ),
        Failure::NotFound => (StatusCode::NOT_FOUND, tonic::Code::NotFound),
        Failure::Internal => (StatusCode::INTERNAL_SERVER_ERROR, tonic::Code::Internal),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("binding a listener")]
    Bind(#[source] std::io::Error),
    #[error("sign in first (a bearer token from /api/v1/signin or the Flight handshake)")]
    Unauthenticated,
    /// A request the server cannot act on (a missing header, a bad ticket).
    #[error("{0}")]
    BadRequest(String),
    #[error("could not open a session")]
    Session(#[source] niji_governance::GovernanceError),
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
}

impl From<niji_governance::GovernanceError> for ServerError {
    fn from(e: niji_governance::GovernanceError) -> Self {
        ServerError::Sandbox(SandboxError::Governance(e))
    }
}

impl ServerError {
    fn failure(&self) -> Failure {
        match self {
            ServerError::Unauthenticated => Failure::Unauthenticated,
            ServerError::BadRequest(_) => Failure::Refused,
            ServerError::Bind(_) | ServerError::Session(_) => Failure::Internal,
            ServerError::Sandbox(e) => e.failure(),
        }
    }

    fn public_message(&self) -> String {
        match self {
            ServerError::Sandbox(e) => e.public_message(),
            ServerError::Bind(_) => "internal error".into(),
            _ => self.to_string(),
        }
    }
}

/// The body of every error answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub status: &'static str,
    pub message: String,
    /// A refused form's problems, each named by its field.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<niji_governance::FieldError>,
}

impl IntoResponse for ServerError {
    fn into_response(self) -> Response {
        let (status, _) = statuses(self.failure());
        let problems = match &self {
            ServerError::Sandbox(e) => e.field_errors().to_vec(),
            _ => Vec::new(),
        };
        let body = ErrorBody {
            status: "error",
            message: self.public_message(),
            problems,
        };
        (status, Json(body)).into_response()
    }
}

impl From<ServerError> for tonic::Status {
    fn from(e: ServerError) -> Self {
        let (_, code) = statuses(e.failure());
        tonic::Status::new(code, e.public_message())
    }
}

/// HTTP status of a query outcome (the body is the outcome itself).
pub fn http_status(outcome: &QueryOutcome) -> StatusCode {
    outcome
        .failure
        .map_or(StatusCode::OK, |failure| statuses(failure).0)
}

/// gRPC status of a refused or failed outcome (`None` for an answer, held or not).
pub fn grpc_failure(outcome: &QueryOutcome) -> Option<tonic::Status> {
    let failure = outcome.failure?;
    let message = format!("{} (query {})", outcome.message, outcome.query_id);
    Some(tonic::Status::new(statuses(failure).1, message))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grpc(e: SandboxError) -> tonic::Status {
        ServerError::from(e).into()
    }

    /// An error (made anew for each interface), its HTTP status and its gRPC code.
    type Case = (fn() -> SandboxError, u16, tonic::Code);

    #[test]
    fn grpc_and_http_agree_on_every_failure() {
        let cases: [Case; 6] = [
            (
                || SandboxError::Governance(niji_governance::GovernanceError::Unauthenticated),
                401,
                tonic::Code::Unauthenticated,
            ),
            (
                || SandboxError::Denied("x".into()),
                403,
                tonic::Code::PermissionDenied,
            ),
            (
                || SandboxError::Busy("x".into()),
                429,
                tonic::Code::ResourceExhausted,
            ),
            (
                || SandboxError::TimeLimit("x".into()),
                504,
                tonic::Code::DeadlineExceeded,
            ),
            (
                || SandboxError::Refused("x".into()),
                422,
                tonic::Code::InvalidArgument,
            ),
            (
                || SandboxError::Unavailable("x".into()),
                500,
                tonic::Code::Internal,
            ),
        ];
        for (error, http, code) in cases {
            assert_eq!(ServerError::from(error()).into_response().status(), http);
            assert_eq!(grpc(error()).code(), code);
        }
    }

    /// A real-data failure keeps its cause from the caller on both interfaces, except the
    /// time limit, which the caller has seen on the clock.
    #[test]
    fn a_real_data_failure_tells_no_cause() {
        let hidden = SandboxError::RunFailed(Box::new(SandboxError::Limit(
            "the result has more than 5 rows".into(),
        )));
        let status = grpc(hidden);
        assert_eq!(status.code(), tonic::Code::Internal);
        assert!(!status.message().contains('5'), "{}", status.message());
        let timed_out = SandboxError::RunFailed(Box::new(SandboxError::TimeLimit("x".into())));
        assert_eq!(grpc(timed_out).code(), tonic::Code::DeadlineExceeded);
    }
}
