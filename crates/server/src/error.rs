//! The one place where failures become HTTP and gRPC statuses. Messages are the sandbox's
//! public ones; internals stay in the server log.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use niji_sandbox::{QueryOutcome, SandboxError, Status};

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("binding a listener: {0}")]
    Bind(std::io::Error),
    #[error("sign in first (a bearer token from /api/v1/signin or the Flight handshake)")]
    Unauthenticated,
    #[error("{0}")]
    BadRequest(String),
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
}

impl ServerError {
    fn public(&self) -> (StatusCode, tonic::Code, String) {
        match self {
            ServerError::Bind(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                tonic::Code::Internal,
                "internal error".into(),
            ),
            ServerError::Unauthenticated => (
                StatusCode::UNAUTHORIZED,
                tonic::Code::Unauthenticated,
                self.to_string(),
            ),
            ServerError::BadRequest(m) => (
                StatusCode::BAD_REQUEST,
                tonic::Code::InvalidArgument,
                m.clone(),
            ),
            ServerError::Sandbox(e) => {
                let (http, grpc) = match e {
                    SandboxError::Denied(_) => {
                        (StatusCode::FORBIDDEN, tonic::Code::PermissionDenied)
                    }
                    SandboxError::Busy(_) => (
                        StatusCode::TOO_MANY_REQUESTS,
                        tonic::Code::ResourceExhausted,
                    ),
                    SandboxError::Refused(_) => (
                        StatusCode::UNPROCESSABLE_ENTITY,
                        tonic::Code::InvalidArgument,
                    ),
                    SandboxError::Governance(niji_governance::GovernanceError::NotFound(_)) => {
                        (StatusCode::NOT_FOUND, tonic::Code::NotFound)
                    }
                    _ => (StatusCode::INTERNAL_SERVER_ERROR, tonic::Code::Internal),
                };
                (http, grpc, e.public_message())
            }
        }
    }
}

impl IntoResponse for ServerError {
    fn into_response(self) -> Response {
        let (status, _, message) = self.public();
        (
            status,
            Json(serde_json::json!({"status": "error", "message": message})),
        )
            .into_response()
    }
}

impl From<ServerError> for tonic::Status {
    fn from(e: ServerError) -> Self {
        let (_, code, message) = e.public();
        tonic::Status::new(code, message)
    }
}

/// HTTP status of a query outcome (the body is the outcome itself).
pub fn http_status(outcome: &QueryOutcome) -> StatusCode {
    match outcome.status {
        Status::Ok | Status::Held | Status::Released | Status::Suppressed => StatusCode::OK,
        Status::Refused => StatusCode::UNPROCESSABLE_ENTITY,
        Status::Error => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// gRPC status of an outcome without rows to stream.
pub fn grpc_status(outcome: &QueryOutcome) -> tonic::Status {
    let message = format!("{} (query {})", outcome.message, outcome.query_id);
    match outcome.status {
        Status::Held => tonic::Status::failed_precondition(message),
        Status::Refused => tonic::Status::permission_denied(message),
        _ => tonic::Status::internal(message),
    }
}
