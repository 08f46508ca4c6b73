//! HTTP push: a department posts records into one of its own datasets.
//!
//! The body is read as a stream: its records are found as it arrives
//! (`bohai_connectors::push`), and every piece of [`PIECE_RECORDS`] records (or
//! [`PIECE_BYTES`] of them) is checked, delivered and committed before more of the body is
//! read, so the hub's memory stays flat whatever the body's size, up to
//! `http.max_push_bytes`. A record over [`MAX_RECORD_BYTES`] goes to the dead-letter topic
//! with its reason and the rest go on.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::Json;
use bohai_connectors::push::{Framing, Piece, Splitter};
use bohai_connectors::Batch;
use http_body_util::BodyExt;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::caller::Caller;
use super::extract::Path;
use super::{ApiError, AppState};
use crate::auth::Scope;
use crate::pipeline::ingest::{Checked, Commit, Ingestor, PushProgress, Rejection};
use crate::pipeline::leases::StreamLease;

/// The route of HTTP push (and of reading records, with GET).
pub(crate) const PATH: &str = "/api/v1/datasets/{id}/records";
/// Largest record accepted by HTTP push.
pub(crate) const MAX_RECORD_BYTES: usize = 1024 * 1024;
/// How long a push waits for the broker before answering 503.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(30);
/// The source name of records that came by HTTP push.
pub(crate) const SOURCE: &str = "http-push";
/// Records checked, delivered and committed together.
const PIECE_RECORDS: usize = 10_000;
/// Bytes of records checked, delivered and committed together (a piece ends at whichever
/// comes first).
const PIECE_BYTES: usize = 16 * 1024 * 1024;
/// Rejects listed in an answer; every one is on the dead-letter topic and in
/// `GET /api/v1/ops/dead-letters`.
pub(crate) const MAX_LISTED_REJECTS: usize = 1000;

/// The answer to a push.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub(crate) struct PushResponse {
    /// Identifies this request's records in the pipeline (`http:DEPT:ID`).
    pub(crate) request: String,
    /// Records that passed and were delivered.
    pub(crate) accepted: usize,
    /// Records rejected.
    pub(crate) rejected: usize,
    /// The rejected records (the first 1,000 of them; all are on the dead-letter topic): each
    /// one's index in the request (`seq`) and every reason.
    #[schema(value_type = Vec<Object>, max_items = 1000)]
    pub(crate) rejects: Vec<Value>,
}

/// Publish records into a dataset of the caller's department.
///
/// The body is a JSON array of records, or NDJSON (one record a line, with
/// `Content-Type: application/x-ndjson`), read as it arrives: up to `http.max_push_bytes`
/// (default 256 MiB) in one request. Every record is validated; valid ones go to the
/// dataset's topic, rejected ones (a record over 1 MiB among them) to the dead-letter topic,
/// and the answer counts both and lists the first 1,000 rejects with their reasons. With an
/// `Idempotency-Key` header, a retried request is answered from the first attempt instead of
/// being ingested twice; a retry of an attempt cut short resumes after the records it had
/// committed, which it must send again unchanged. A key names one request of one dataset: used
/// for another dataset or another body it is refused (409), and a retry sent while an earlier
/// attempt is still being ingested waits for it.
#[utoipa::path(
    post,
    path = "/api/v1/datasets/{id}/records",
    tag = "datasets",
    params(
        ("id" = String, Path, description = "Dataset id"),
        ("Idempotency-Key" = Option<String>, Header, description = "Makes a retried request safe: the same key gets the same answer", min_length = 1, max_length = 128, pattern = "^[\\x21-\\x7e]+$"),
    ),
    request_body(
        description = "A JSON array of records, or NDJSON (one JSON object a line)",
        content(
            (Vec<Value> = "application/json"),
            (String = "application/x-ndjson"),
        ),
    ),
    responses(
        (status = 200, description = "Counts of accepted and rejected records, with the first 1,000 rejects' reasons", body = PushResponse),
        (status = 400, description = "The body is neither a JSON array nor NDJSON, or a bad Idempotency-Key", body = super::ErrorBody),
        (status = 401, description = "No valid bearer token", body = super::ErrorBody),
        (status = 403, description = "The token lacks scope `publish` (`wrong_scope`), or the dataset belongs to another department (`forbidden`)", body = super::ErrorBody),
        (status = 404, description = "No such dataset", body = super::ErrorBody),
        (status = 409, description = "The Idempotency-Key was used before for another dataset or another body (`idempotency_key_reused`), or an earlier request with it is still being ingested (`request_in_progress`, with Retry-After)", body = super::ErrorBody),
        (status = 408, description = "No part of the body arrived for `http.request_timeout` (`timeout`); the records before were ingested", body = super::ErrorBody),
        (status = 413, description = "The body is over `http.max_push_bytes` (`payload_too_large`, with `limit`); the records before the limit were ingested", body = super::ErrorBody),
        (status = 429, description = "The token's rate limit (`rate_limited`), or `http.department_pushes` pushes of the department are being read already (`too_many_pushes`); both with Retry-After", body = super::ErrorBody),
        (status = 503, description = "The broker or database is away; retry with the same Idempotency-Key", body = super::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(super) async fn push_records(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Body,
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
    // A department's slow or stalled pushes hold at most its own slots (and the records
    // each reads), never the hub's memory or another department's pushes.
    let _slot = state.push_slots.take(&caller.department).ok_or_else(|| {
        ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_pushes",
            format!(
                "{} pushes of department `{}` are being read already (http.department_pushes); send this one when one of them has been answered",
                state.config.http.department_pushes, caller.department
            ),
        )
        .with_retry_after(1)
    })?;
    let key = idempotency_key(&headers)?;
    // Without a key of the client's, the request gets one: an answer that cuts it short
    // (503) names it, and the same body sent again with it is recognised record by record.
    let stream_key = key
        .clone()
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let stream = format!("http:{}:{stream_key}", caller.department);
    let limit = state.config.http.max_push_bytes;
    if let Some(length) = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
    {
        if length > limit {
            return Err(too_large(limit, None));
        }
    }
    // One attempt of a request at a time: a retry sent while an earlier attempt still reads
    // its body, or while the broker still holds records the earlier one sent, waits for it.
    let lease_wait = state.config.http.request_timeout + DELIVERY_TIMEOUT;
    let lease = ingestor.lease(&stream, lease_wait).await.ok_or_else(|| {
        ApiError::new(
            StatusCode::CONFLICT,
            "request_in_progress",
            format!(
                "an earlier request with this Idempotency-Key (`{stream}`) is still being ingested after {} s; send it again later",
                lease_wait.as_secs()
            ),
        )
        .with_field("Idempotency-Key")
        .with_retry_after(DELIVERY_TIMEOUT.as_secs())
    })?;
    let mut push = Push {
        ingestor: ingestor.clone(),
        registry: Arc::clone(&state.registry),
        dataset: id,
        stream: stream.clone(),
        keyed: key.is_some(),
        key: stream_key,
        lease,
        resume_after: 0,
        sent_before: None,
        records_digest: ring::digest::Context::new(&ring::digest::SHA256),
        next_seq: 0,
        response: PushResponse {
            request: stream.clone(),
            ..PushResponse::default()
        },
    };
    let mut reader = BodyReader {
        body,
        idle: state.config.http.request_timeout,
        limit,
        received: 0,
        digest: ring::digest::Context::new(&ring::digest::SHA256),
    };
    if key.is_some() {
        let earlier = ingestor
            .push_progress(&stream)
            .await
            .map_err(|e| ApiError::unavailable("database", &e))?;
        if let Some(earlier) = earlier {
            if earlier.dataset != push.dataset {
                return Err(key_reused(
                    &push.stream,
                    &format!("for dataset `{}`", earlier.dataset),
                ));
            }
            let response: PushResponse =
                serde_json::from_value(earlier.response).map_err(|e| ApiError::internal(&e))?;
            if earlier.complete {
                // The same answer for the same request; another body under a key already used
                // is a client's mistake to be told of, not answered as if it were ingested.
                while reader.next(&push).await?.is_some() {}
                let digest = reader.digest.finish();
                return match earlier.body_sha256 {
                    Some(first) if first != digest.as_ref() => {
                        Err(key_reused(&push.stream, "with another body"))
                    }
                    _ => Ok(Json(response)),
                };
            }
            push.response = response;
            push.resume_after = earlier.records;
            push.sent_before = earlier
                .sent_sha256
                .map(|digest| (earlier.sent_records, digest));
        }
    }
    let ndjson = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            ct.starts_with("application/x-ndjson") || ct.starts_with("application/jsonl")
        });
    let framing = if ndjson {
        Framing::Ndjson
    } else if super::extract::is_json(&headers) {
        Framing::Array
    } else {
        Framing::Detect
    };
    let mut splitter = Splitter::new(framing, MAX_RECORD_BYTES);
    let mut pieces: Vec<Piece> = Vec::new();
    let mut piece_bytes = 0;
    while let Some(data) = reader.next(&push).await? {
        let before = pieces.len();
        splitter.feed(&data, &mut pieces).map_err(not_records)?;
        piece_bytes += pieces[before..].iter().map(|p| p.raw.len()).sum::<usize>();
        if pieces.len() >= PIECE_RECORDS || piece_bytes >= PIECE_BYTES {
            push.ingest(std::mem::take(&mut pieces), false, None)
                .await
                .map_err(|e| push.resumable(e))?;
            piece_bytes = 0;
        }
    }
    splitter.finish(&mut pieces).map_err(not_records)?;
    let digest = reader.digest.finish();
    push.ingest(pieces, true, Some(digest.as_ref()))
        .await
        .map_err(|e| push.resumable(e))?;
    Ok(Json(push.response))
}

/// Reads a push body a frame at a time, within its limits, hashing what it reads.
struct BodyReader {
    body: axum::body::Body,
    /// Longest wait for the next frame.
    idle: Duration,
    /// Most bytes of the body.
    limit: u64,
    received: u64,
    digest: ring::digest::Context,
}

impl BodyReader {
    /// The next bytes of the body, or `None` at its end; a refusal (naming what `push` has
    /// taken so far) when the body stops arriving, breaks or passes the limit.
    async fn next(&mut self, push: &Push) -> Result<Option<axum::body::Bytes>, ApiError> {
        loop {
            let frame = match tokio::time::timeout(self.idle, self.body.frame()).await {
                Err(_) => {
                    return Err(ApiError::new(
                        StatusCode::REQUEST_TIMEOUT,
                        "timeout",
                        format!(
                            "no part of the body arrived for {} s (http.request_timeout); {}",
                            self.idle.as_secs(),
                            push.taken()
                        ),
                    ))
                }
                Ok(None) => return Ok(None),
                Ok(Some(Err(e))) => {
                    return Err(ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "unreadable_body",
                        format!("the request body could not be read: {e}; {}", push.taken()),
                    ))
                }
                Ok(Some(Ok(frame))) => frame,
            };
            let Ok(data) = frame.into_data() else {
                continue; // trailers
            };
            self.received += data.len() as u64;
            if self.received > self.limit {
                return Err(too_large(self.limit, Some(push)));
            }
            self.digest.update(&data);
            return Ok(Some(data));
        }
    }
}

/// The Idempotency-Key header, if given: 1 to 128 visible ASCII characters.
fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    headers
        .get("idempotency-key")
        .map(|v| {
            v.to_str()
                .ok()
                .filter(|k| {
                    !k.is_empty() && k.len() <= 128 && k.bytes().all(|b| b.is_ascii_graphic())
                })
                .map(str::to_owned)
                .ok_or_else(|| {
                    ApiError::bad_request(
                        "Idempotency-Key must be 1 to 128 visible ASCII characters",
                    )
                    .with_field("Idempotency-Key")
                })
        })
        .transpose()
}

/// The Idempotency-Key of `stream` was used for another request (`how` it differs).
fn key_reused(stream: &str, how: &str) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "idempotency_key_reused",
        format!(
            "Idempotency-Key was used for a request {how} (`{stream}`); use a new key for new records"
        ),
    )
    .with_field("Idempotency-Key")
}

/// A body that is neither an array nor NDJSON: refused whole, before any record was taken.
fn not_records(e: bohai_connectors::push::FramingError) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "invalid_json", e.to_string()).with_pointer("")
}

fn too_large(limit: u64, push: Option<&Push>) -> ApiError {
    let mut error = ApiError::payload_too_large(limit, "http.max_push_bytes");
    if let Some(push) = push {
        error = ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!(
                "the request body is over the limit of {limit} bytes (http.max_push_bytes); {}",
                push.taken()
            ),
        )
        .with_limit(limit);
    }
    error
}

/// What became of a piece of a push.
enum PieceOutcome {
    /// Checked, to deliver and commit.
    Checked(Checked),
    /// Every record of it was committed by an earlier attempt.
    Committed,
    /// Its records differ from those an earlier attempt committed.
    Differs,
    /// The dataset is gone from the registry.
    NoDataset,
}

/// One push request on its way: what was committed of it, and its answer so far.
struct Push {
    ingestor: Ingestor,
    registry: Arc<bohai_schemas::Registry>,
    dataset: String,
    stream: String,
    keyed: bool,
    /// The Idempotency-Key of the request: the client's, or one made for it.
    key: String,
    /// The request's stream, held until the broker answered for all the request sent.
    lease: StreamLease,
    /// Records a first attempt committed (a retry with the same key skips them).
    resume_after: u64,
    /// How many records earlier attempts handed to the broker, and their SHA-256: the
    /// retry's first that many records must hash the same (they may be in the repository
    /// whether or not they were committed).
    sent_before: Option<(u64, Vec<u8>)>,
    /// The SHA-256 of the records found so far (each one's size, 8 bytes big-endian, then its
    /// kept bytes).
    records_digest: ring::digest::Context,
    /// The sequence number of the next record found in the body.
    next_seq: u64,
    response: PushResponse,
}

impl Push {
    /// What was ingested so far, for an answer that cuts the request short.
    fn taken(&self) -> String {
        format!(
            "its first {} records were ingested as request `{}`",
            self.response.accepted + self.response.rejected,
            self.stream
        )
    }

    /// `error` of a request sent without an Idempotency-Key, naming the key it was given
    /// where sending it again is the remedy (503): part of it may have reached the broker.
    fn resumable(&self, error: ApiError) -> ApiError {
        if self.keyed || error.status() != StatusCode::SERVICE_UNAVAILABLE {
            return error;
        }
        error.with_hint(&format!(
            "part of this request may have been taken: send the same body again with the header `Idempotency-Key: {}`, and what arrived is not stored twice",
            self.key
        ))
    }

    /// Checks, delivers and commits the records of `pieces`; `last` for the body's last, with
    /// the SHA-256 of the whole body.
    async fn ingest(
        &mut self,
        pieces: Vec<Piece>,
        last: bool,
        body_sha256: Option<&[u8]>,
    ) -> Result<(), ApiError> {
        let first_seq = self.next_seq;
        self.next_seq += pieces.len() as u64;
        let skip = usize::try_from(self.resume_after.saturating_sub(first_seq))
            .unwrap_or(usize::MAX)
            .min(pieces.len());
        let ingestor = self.ingestor.clone();
        let registry = Arc::clone(&self.registry);
        let dataset = self.dataset.clone();
        let stream = self.stream.clone();
        let mut digest = std::mem::replace(
            &mut self.records_digest,
            ring::digest::Context::new(&ring::digest::SHA256),
        );
        // The digest of the records earlier attempts sent, when this piece holds the last of
        // them (or the body ended before it).
        let next_seq = self.next_seq;
        let sent_before = self
            .sent_before
            .clone()
            .filter(|(sent, _)| *sent > first_seq && (*sent <= next_seq || last));
        let keyed = self.keyed;
        let (digest, checked) = tokio::task::spawn_blocking(move || {
            let mut same = true;
            // Only a request with a key of the client's can be resumed.
            for (i, piece) in pieces.iter().enumerate().filter(|_| keyed) {
                digest.update(&(piece.size as u64).to_be_bytes());
                digest.update(&piece.raw);
                if let Some((sent, before)) = &sent_before {
                    if first_seq + i as u64 + 1 == *sent {
                        same = digest.clone().finish().as_ref() == before.as_slice();
                    }
                }
            }
            if sent_before
                .as_ref()
                .is_some_and(|(sent, _)| first_seq + (pieces.len() as u64) < *sent)
            {
                same = false; // the body ended before the records sent
            }
            if !same {
                return (digest, PieceOutcome::Differs);
            }
            if skip == pieces.len() && !last {
                return (digest, PieceOutcome::Committed);
            }
            let records = pieces
                .into_iter()
                .enumerate()
                .skip(skip)
                .map(|(i, piece)| {
                    let seq = first_seq + i as u64;
                    piece.into_record(seq, format!("{stream} record {seq}"), MAX_RECORD_BYTES)
                })
                .collect();
            let batch = Batch {
                stream,
                records,
                checkpoint: Value::Null,
            };
            let checked = registry
                .dataset(&dataset)
                .map_or(PieceOutcome::NoDataset, |dataset| {
                    PieceOutcome::Checked(ingestor.check(dataset, batch))
                });
            (digest, checked)
        })
        .await
        .map_err(|e| ApiError::internal(&e))?;
        let sent_sha256 = digest.clone().finish();
        self.records_digest = digest;
        let mut checked = match checked {
            PieceOutcome::Checked(checked) => checked,
            PieceOutcome::Committed => return Ok(()),
            PieceOutcome::Differs => {
                return Err(key_reused(
                    &self.stream,
                    "with other records before the point it was cut short at",
                ))
            }
            PieceOutcome::NoDataset => {
                return Err(ApiError::not_found(format!(
                    "no dataset `{}`",
                    self.dataset
                )))
            }
        };
        checked.hold(self.lease.clone());
        if self.keyed {
            // Before the broker has any of it: the key is this dataset's, and a retry must
            // send these records first.
            let response = serde_json::to_value(&self.response).unwrap_or_default();
            let owner = self
                .ingestor
                .push_sending(
                    &self.stream,
                    &self.dataset,
                    &response,
                    self.next_seq,
                    sent_sha256.as_ref(),
                )
                .await
                .map_err(ApiError::from)?;
            if let Some(other) = owner {
                return Err(key_reused(&self.stream, &format!("for dataset `{other}`")));
            }
        }
        self.deliver(&checked).await?;
        self.response.accepted += checked.accepted();
        self.response.rejected += checked.rejected.len();
        let room = MAX_LISTED_REJECTS.saturating_sub(self.response.rejects.len());
        self.response.rejects.extend(
            checked
                .rejected
                .iter()
                .take(room)
                .map(|r: &Rejection| serde_json::to_value(r).unwrap_or_default()),
        );
        let response = self
            .keyed
            .then(|| serde_json::to_value(&self.response).unwrap_or_default());
        let progress = response.as_ref().map(|response| PushProgress {
            response,
            records: self.next_seq,
            complete: last,
            body_sha256,
        });
        self.ingestor
            .commit(&checked, SOURCE, Commit::Push { progress })
            .await
            .map_err(ApiError::from)
    }

    async fn deliver(&self, checked: &Checked) -> Result<(), ApiError> {
        // A failure that passes (the producer replaced after another feed's record was
        // refused, say) is delivered again within the time the request has: the same records
        // with the same positions, so what already arrived is skipped by the sink.
        let delivered = async {
            let mut backoff = crate::pipeline::Backoff::default();
            loop {
                match self.ingestor.deliver(checked, SOURCE).await {
                    Err(e) if e.class() == crate::failure::Failure::Transient => {
                        tracing::warn!(error = %e, "a pushed piece was not acknowledged; delivering it again");
                        backoff.wait().await;
                    }
                    other => return other,
                }
            }
        };
        match tokio::time::timeout(DELIVERY_TIMEOUT, delivered).await
        {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e.into()),
            Err(_) => Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                format!(
                    "the broker did not acknowledge in time; retry with the same Idempotency-Key ({})",
                    self.taken()
                ),
            )),
        }
    }
}
