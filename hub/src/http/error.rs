//! The one error boundary of the HTTP API.
//!
//! Every handler returns `Result<_, ApiError>`. A client gets a stable machine-readable `code`
//! and a message it can act on; internal details (database errors, broker errors) go to the
//! log with a correlation id, never to the client.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

/// The JSON body of every error answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// A stable code a client can branch on, e.g. `not_found`, `unauthorized`.
    pub code: String,
    /// A human-readable explanation.
    pub message: String,
}

/// An error answer of the API.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    body: ErrorBody,
}

impl ApiError {
    /// An answer with the given status, stable code and message.
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            body: ErrorBody {
                code: code.to_owned(),
                message: message.into(),
            },
        }
    }

    /// 404 with code `not_found`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 400 with code `bad_request`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// 500 with code `internal`: logs the cause with an id and tells the client only the id.
    pub fn internal(cause: &dyn std::error::Error) -> Self {
        let id = uuid::Uuid::new_v4();
        tracing::error!(error_id = %id, error = %cause, "internal error answering a request");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("internal error; the hub's log has the details under error id {id}"),
        )
    }

    /// 503 with code `unavailable`, for a dependency that is away (retriable).
    pub fn unavailable(what: &str, cause: &dyn std::error::Error) -> Self {
        tracing::warn!(dependency = what, error = %cause, "dependency unavailable");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            format!("the {what} is not available; retry later"),
        )
    }
}

impl From<crate::pipeline::ingest::IngestError> for ApiError {
    /// A failure that passes is 503 to retry; one that needs someone (a topic that refuses the
    /// hub's records, say) is 503 too, with what is wrong, so that the department can tell the
    /// city's operators.
    fn from(e: crate::pipeline::ingest::IngestError) -> Self {
        use crate::pipeline::ingest::IngestError;
        let what = match &e {
            IngestError::Broker(_) => "broker",
            IngestError::Database(_) => "database",
        };
        match e.class() {
            crate::failure::Failure::Transient => Self::unavailable(what, &e),
            _ => {
                tracing::error!(error = %e, "ingest cannot work until this is fixed");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    format!("the hub cannot take records now; tell the hub's operators: {e}"),
                )
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body)).into_response()
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed => {
                Self::unavailable("database", &e)
            }
            other => Self::internal(&other),
        }
    }
}
