//! HTTP push: a department posts records into one of its own datasets.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::Json;
use bohai_connectors::{parse_json_record, Batch, Body, ReadFailure, SourceRecord, RAW_KEEP_LIMIT};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::caller::Caller;
use super::{ApiError, AppState};
use crate::auth::Scope;
use crate::pipeline::ingest::{Commit, Rejection};

/// Largest record accepted by HTTP push.
const MAX_RECORD_BYTES: usize = 1024 * 1024;
/// How long a push waits for the broker before answering 503.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(30);
/// The source name of records that came by HTTP push.
pub(crate) const SOURCE: &str = "http-push";

/// The answer to a push.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub(crate) struct PushResponse {
    /// Identifies this request's records in the pipeline (`http:DEPT:ID`).
    pub(crate) request: String,
    /// Records that passed and were delivered.
    pub(crate) accepted: usize,
    /// Records rejected.
    pub(crate) rejected: usize,
    /// Each rejected record: its index in the request (`seq`) and every reason.
    #[schema(value_type = Vec<Object>)]
    pub(crate) rejects: Vec<Value>,
}

/// Publish records into a dataset of the caller's department.
///
/// The body is a JSON array of records, or NDJSON (one record a line, with
/// `Content-Type: application/x-ndjson`). Every record is validated; valid ones go to the
/// dataset's topic, rejected ones to the dead-letter topic, and the answer lists each reject
/// with its reasons. With an `Idempotency-Key` header, a retried request is answered from the
/// first attempt instead of being ingested twice.
#[utoipa::path(
    post,
    path = "/api/v1/datasets/{id}/records",
    tag = "datasets",
    params(
        ("id" = String, Path, description = "Dataset id"),
        ("Idempotency-Key" = Option<String>, Header, description = "Makes a retried request safe: the same key gets the same answer"),
    ),
    request_body(content = Vec<Object>, description = "A JSON array of records, or NDJSON", content_type = "application/json"),
    responses(
        (status = 200, description = "Counts of accepted and rejected records, with every reject's reasons", body = PushResponse),
        (status = 400, description = "The body is neither a JSON array nor NDJSON", body = super::ErrorBody),
        (status = 401, description = "No valid bearer token", body = super::ErrorBody),
        (status = 403, description = "The token lacks scope `publish` (`wrong_scope`), or the dataset belongs to another department (`forbidden`)", body = super::ErrorBody),
        (status = 404, description = "No such dataset", body = super::ErrorBody),
        (status = 503, description = "The broker or database is away; retry with the same Idempotency-Key", body = super::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(super) async fn push_records(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Json<PushResponse>, ApiError> {
    caller.require(Scope::Publish)?;
    let dataset = state
        .registry
        .dataset(&id)
        .ok_or_else(|| ApiError::not_found(format!("no dataset `{id}`")))?;
    caller.require_department(&dataset.department, &format!("dataset `{id}`"))?;
    let ingestor = state.ingestor.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "this hub does not ingest",
        )
    })?;
    let key = headers
        .get("idempotency-key")
        .map(|v| {
            v.to_str()
                .ok()
                .filter(|k| !k.is_empty() && k.len() <= 128)
                .map(str::to_owned)
                .ok_or_else(|| {
                    ApiError::bad_request(
                        "Idempotency-Key must be 1 to 128 visible ASCII characters",
                    )
                })
        })
        .transpose()?;
    let stream = format!(
        "http:{}:{}",
        caller.department,
        key.clone()
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
    );
    if key.is_some() {
        let earlier: Option<Value> =
            sqlx::query_scalar("SELECT response FROM http_push_requests WHERE stream = $1")
                .bind(&stream)
                .fetch_optional(&state.db)
                .await?;
        if let Some(earlier) = earlier {
            return serde_json::from_value(earlier)
                .map(Json)
                .map_err(|e| ApiError::internal(&e));
        }
    }
    let ndjson = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            ct.starts_with("application/x-ndjson") || ct.starts_with("application/jsonl")
        });
    let records = parse_body(&body, ndjson, &stream)?;
    let batch = Batch {
        stream: stream.clone(),
        records,
        checkpoint: Value::Null,
    };
    let checked = ingestor.check(dataset, batch);
    match tokio::time::timeout(DELIVERY_TIMEOUT, ingestor.deliver(&checked, SOURCE)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(e.into()),
        Err(_) => {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the broker did not acknowledge in time; retry with the same Idempotency-Key",
            ))
        }
    }
    let response = PushResponse {
        request: stream.clone(),
        accepted: checked.accepted(),
        rejected: checked.rejected.len(),
        rejects: checked
            .rejected
            .iter()
            .map(|r: &Rejection| serde_json::to_value(r).unwrap_or_default())
            .collect(),
    };
    let remember = key
        .is_some()
        .then(|| serde_json::to_value(&response).unwrap_or_default());
    ingestor
        .commit(
            &checked,
            SOURCE,
            Commit::Push {
                remember: remember.as_ref(),
            },
        )
        .await
        .map_err(ApiError::from)?;
    Ok(Json(response))
}

/// Reads the body as a JSON array or as NDJSON; each element becomes a record (or a read
/// failure for that record alone). Only a body that is not an array at all is refused.
fn parse_body(body: &[u8], ndjson: bool, stream: &str) -> Result<Vec<SourceRecord>, ApiError> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    let mut records = Vec::new();
    let mut push = |seq: usize, raw: &[u8]| {
        let origin = format!("{stream} record {seq}");
        let body = if raw.len() > MAX_RECORD_BYTES {
            Body::Unreadable(ReadFailure {
                pointer: String::new(),
                rule: "size_limit",
                message: format!(
                    "record is {} bytes, over the limit of {MAX_RECORD_BYTES}",
                    raw.len()
                ),
            })
        } else if raw.len() <= RAW_KEEP_LIMIT {
            // Parsed on the checking threads, and published as these bytes if valid.
            Body::JsonText
        } else {
            parse_json_record(raw).into()
        };
        records.push(SourceRecord {
            origin,
            seq: seq as u64,
            stream: None,
            body,
            raw: raw[..raw.len().min(RAW_KEEP_LIMIT)].to_vec(),
        });
    };
    if !ndjson && first == Some(&b'[') {
        let elements: Vec<&serde_json::value::RawValue> = serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("the body is not a JSON array: {e}")))?;
        for (i, e) in elements.iter().enumerate() {
            push(i, e.get().as_bytes());
        }
    } else if ndjson || first == Some(&b'{') {
        let lines = body
            .split(|b| *b == b'\n')
            .filter(|l| !l.iter().all(u8::is_ascii_whitespace));
        for (i, line) in lines.enumerate() {
            push(i, line.strip_suffix(b"\r").unwrap_or(line));
        }
    } else {
        return Err(ApiError::bad_request(
            "the body must be a JSON array of records, or NDJSON with Content-Type application/x-ndjson",
        ));
    }
    Ok(records)
}
