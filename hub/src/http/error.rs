//! The one error boundary of the HTTP API.
//!
//! Every handler returns `Result<_, ApiError>`, every extractor refuses with an `ApiError`
//! (`extract.rs`), and what no handler answers (an unknown route or method, a request that
//! ran out of time) is answered here too: a client always gets the JSON [`ErrorBody`], with
//! a stable machine-readable `code`, a message it can act on and, where one is at fault, the
//! parameter (`field`) or the place in the body (`pointer`). Internal details (database
//! errors, broker errors) go to the log with a correlation id, never to the client.

use std::time::Duration;

use axum::extract::Request;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The JSON body of every error answer.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// A stable code a client can branch on, e.g. `not_found`, `unauthorized`,
    /// `invalid_json`, `payload_too_large`.
    pub code: String,
    /// A human-readable explanation.
    pub message: String,
    /// The request parameter at fault (a path or query parameter, a header), when one is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Where in the JSON body the value at fault is, as a JSON pointer (RFC 6901), when the
    /// body is at fault; `""` is the whole body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pointer: Option<String>,
    /// The limit that was exceeded (bytes of a body, items of a list), when one was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
}

/// An error answer of the API.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    body: ErrorBody,
    /// Seconds for the `Retry-After` header, if the answer says when to come back (a u16
    /// fits beside the status, so that the error stays small).
    retry_after: Option<u16>,
}

impl ApiError {
    /// An answer with the given status, stable code and message.
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            body: ErrorBody {
                code: code.to_owned(),
                message: message.into(),
                field: None,
                pointer: None,
                limit: None,
            },
            retry_after: None,
        }
    }

    /// The same answer with `Retry-After: SECONDS`.
    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(u16::try_from(seconds).unwrap_or(u16::MAX));
        self
    }

    /// 429 with code `rate_limited`: the caller's token made more requests than its rate
    /// allows; `wait` is how long until the next one is let through.
    pub fn rate_limited(wait: Duration) -> Self {
        // Whole seconds, rounded up: a client that waits as told is let through.
        let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        let seconds = seconds.max(1);
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!(
                "this token made more requests than its rate allows (http.token_requests_per_minute, http.token_burst); retry in {seconds} s"
            ),
        )
        .with_retry_after(seconds)
    }

    /// The same answer, naming the parameter at fault.
    #[must_use]
    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.body.field = Some(field.into());
        self
    }

    /// The same answer, naming the place in the JSON body at fault.
    #[must_use]
    pub fn with_pointer(mut self, pointer: impl Into<String>) -> Self {
        self.body.pointer = Some(pointer.into());
        self
    }

    /// The same answer, naming the limit that was exceeded.
    #[must_use]
    pub fn with_limit(mut self, limit: u64) -> Self {
        self.body.limit = Some(limit);
        self
    }

    /// The error with `hint` added to its message (what the client can do about it).
    pub fn with_hint(mut self, hint: &str) -> Self {
        self.body.message.push_str("; ");
        self.body.message.push_str(hint);
        self
    }

    /// The status of this answer.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The body of this answer.
    pub fn body(&self) -> &ErrorBody {
        &self.body
    }

    /// 404 with code `not_found`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 400 with code `bad_request`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// 413 with code `payload_too_large`: the body is over `limit` bytes.
    pub fn payload_too_large(limit: u64, what: &str) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the request body is over the limit of {limit} bytes ({what})"),
        )
        .with_limit(limit)
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
            IngestError::Stopped | IngestError::ProducerReplaced => "ingest",
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
        let mut response = (self.status, Json(self.body)).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
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

/// The answer for a path no route serves: 404 `no_route`.
pub(super) async fn no_route(method: Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "no_route",
        format!(
            "no {method} {}: the API's paths are in {}",
            uri.path(),
            super::OPENAPI_PATH
        ),
    )
}

/// The answer for a method the path does not serve: 405 `method_not_allowed`. The router
/// adds the `Allow` header with the methods it does serve.
pub(super) async fn no_method(method: Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!(
            "{} does not answer {method}; the `Allow` header lists what it answers",
            uri.path()
        ),
    )
}

/// Middleware: a request not answered within `limit` is answered 503 `timeout` (the work
/// it started is dropped). HTTP push, whose body may take long to arrive, keeps its own
/// limits (`http.push_idle_timeout` between two pieces of its body).
pub(super) async fn time_limit(
    axum::extract::State(limit): axum::extract::State<Duration>,
    request: Request,
    next: Next,
) -> Response {
    let streaming = request.method() == Method::POST
        && request
            .extensions()
            .get::<axum::extract::MatchedPath>()
            .is_some_and(|p| p.as_str() == super::push::PATH);
    if streaming {
        return next.run(request).await;
    }
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            let mut response = ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "timeout",
                format!(
                    "the request was not answered within {} s (http.request_timeout); retry later",
                    limit.as_secs()
                ),
            )
            .into_response();
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            response
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn optional_members_are_left_out_when_absent() {
        let plain = serde_json::to_value(ApiError::not_found("no such thing").body).unwrap();
        assert_eq!(
            plain,
            serde_json::json!({"code": "not_found", "message": "no such thing"})
        );
        let full = ApiError::payload_too_large(10, "http.max_push_bytes")
            .with_pointer("/a/0")
            .with_field("id");
        assert_eq!(full.status(), StatusCode::PAYLOAD_TOO_LARGE);
        let body = serde_json::to_value(full.body).unwrap();
        assert_eq!(body["limit"], 10);
        assert_eq!(body["pointer"], "/a/0");
        assert_eq!(body["field"], "id");
        assert!(body["message"].as_str().unwrap().contains("10 bytes"));
    }
}
