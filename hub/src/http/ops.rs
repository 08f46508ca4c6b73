//! Operations endpoints: Prometheus metrics, feed health, the overview, rates over time and
//! the dead-letter viewer's masked rejects. The dashboard (`dashboard.rs`) reads these.
//!
//! Everything under `/api/v1/ops/` needs a token with the `ops` scope: it shows every
//! department's rejected records and which department reads which dataset. `/metrics` stays
//! open for scrapers and says neither (see `ops/metrics.rs`).

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::Json;
use serde::Deserialize;
use utoipa::IntoParams;

use super::caller::Caller;
use super::extract::Query;
use super::{ApiError, AppState};
use crate::auth::Scope;
use crate::ops::dead_letters::{self, DeadLetter};
use crate::ops::overview::{self, FeedHealth, Overview, OverviewError};
use crate::ops::samples::{self, RatePoint, SeriesFilter};
use crate::ops::{self as ops_core, metrics};

impl From<OverviewError> for ApiError {
    fn from(e: OverviewError) -> Self {
        match e {
            OverviewError::Database(e) => e.into(),
            other => ApiError::internal(&other),
        }
    }
}

/// The overview made at most `ops.answer_cache` ago, made by one request at a time.
async fn recent_overview(state: &AppState) -> Result<overview::Overview, ApiError> {
    Ok(state
        .ops
        .overview
        .get_or_make(state.config.ops.answer_cache, || {
            overview::gather(
                &state.config,
                &state.db,
                &state.registry,
                &state.ops.lag_client,
            )
        })
        .await?)
}

/// Prometheus metrics (text format 0.0.4): feed counts, repository rows, sink lag, connector
/// state, seal coverage, licences, and HTTP requests by route template and status with a
/// latency histogram.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "ops",
    responses(
        (status = 200, description = "The metrics in the Prometheus text format", content_type = "text/plain; version=0.0.4", body = String),
        (status = 503, description = "The database is not available", body = super::ErrorBody),
    )
)]
pub(super) async fn metrics(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let overview = recent_overview(&state).await?;
    let text = metrics::render(&state.ops.http, overview).map_err(|e| ApiError::internal(&e))?;
    Ok(([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], text))
}

/// Every feed (connector or push source of a dataset) with its state: healthy, stale
/// (nothing within the dataset's expected update interval), failing (reject ratio above
/// `ops.reject_ratio_failing`, or the connector stopped with an error) or paused.
#[utoipa::path(
    get,
    path = "/api/v1/ops/feeds",
    tag = "ops",
    responses(
        (status = 200, description = "Every feed, by dataset and source", body = [FeedHealth]),
        (status = 401, description = "No valid bearer token (the code says why)", body = super::ErrorBody),
        (status = 403, description = "The token lacks scope `ops` (`wrong_scope`)", body = super::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(super) async fn feeds(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<FeedHealth>>, ApiError> {
    caller.require(Scope::Ops)?;
    Ok(Json(
        overview::feeds(&state.db, &state.registry, &state.config.ops).await?,
    ))
}

/// The operations overview: feeds, dataset counts, sink lag, seal coverage, licences.
#[utoipa::path(
    get,
    path = "/api/v1/ops/overview",
    tag = "ops",
    responses(
        (status = 200, description = "The overview `bohai status` and the dashboard show", body = Overview),
        (status = 401, description = "No valid bearer token (the code says why)", body = super::ErrorBody),
        (status = 403, description = "The token lacks scope `ops` (`wrong_scope`)", body = super::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(super) async fn overview(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Overview>, ApiError> {
    caller.require(Scope::Ops)?;
    Ok(Json(recent_overview(&state).await?))
}

/// Filters of the rate series.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct RatesQuery {
    /// Only this dataset.
    dataset: Option<String>,
    /// Only this department's datasets.
    department: Option<String>,
    /// The window in minutes, 1 to 1440 (default 60).
    #[param(minimum = 1, maximum = 1440)]
    limit: Option<u32>,
}

/// Filters of the dead-letter list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct DeadLettersQuery {
    /// Only this dataset.
    dataset: Option<String>,
    /// Only this department's datasets.
    department: Option<String>,
    /// How many, newest first, 1 to 500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
}

/// `limit` if within `1..=max` (or absent: `default`); else 400 naming it.
fn limit(given: Option<u32>, default: u32, max: u32) -> Result<u32, ApiError> {
    match given {
        None => Ok(default),
        Some(n) if (1..=max).contains(&n) => Ok(n),
        Some(n) => Err(ApiError::new(
            axum::http::StatusCode::BAD_REQUEST,
            "invalid_parameter",
            format!("query parameter `limit`: {n} is not between 1 and {max}"),
        )
        .with_field("limit")),
    }
}

fn non_empty(s: &Option<String>) -> Option<String> {
    s.clone().filter(|s| !s.is_empty())
}

/// Ingest and reject rates over time, summed over the feeds asked for: one point per
/// sample round (`ops.sample_interval`).
#[utoipa::path(
    get,
    path = "/api/v1/ops/rates",
    tag = "ops",
    params(RatesQuery),
    responses(
        (status = 200, description = "The points, oldest first", body = [RatePoint]),
        (status = 401, description = "No valid bearer token (the code says why)", body = super::ErrorBody),
        (status = 403, description = "The token lacks scope `ops` (`wrong_scope`)", body = super::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(super) async fn rates(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<RatesQuery>,
) -> Result<Json<Vec<RatePoint>>, ApiError> {
    caller.require(Scope::Ops)?;
    let minutes = limit(q.limit, 60, 1440)?;
    let window = std::time::Duration::from_secs(u64::from(minutes) * 60);
    let filter = SeriesFilter {
        dataset: non_empty(&q.dataset),
        department: non_empty(&q.department),
    };
    Ok(Json(samples::series(&state.db, window, &filter).await?))
}

/// The latest rejected records with their reasons, payloads masked by the dataset's PII
/// rules (`partial`, `hash`, `drop`; a payload that is not a JSON object has every field
/// masked).
#[utoipa::path(
    get,
    path = "/api/v1/ops/dead-letters",
    tag = "ops",
    params(DeadLettersQuery),
    responses(
        (status = 200, description = "The rejects, newest first", body = [DeadLetter]),
        (status = 401, description = "No valid bearer token (the code says why)", body = super::ErrorBody),
        (status = 403, description = "The token lacks scope `ops` (`wrong_scope`)", body = super::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(super) async fn dead_letters(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<DeadLettersQuery>,
) -> Result<Json<Vec<DeadLetter>>, ApiError> {
    caller.require(Scope::Ops)?;
    let filter = dead_letters::Filter {
        dataset: non_empty(&q.dataset),
        department: non_empty(&q.department),
        limit: i64::from(limit(q.limit, 50, 500)?),
    };
    let ops: &ops_core::OpsState = &state.ops;
    Ok(Json(
        dead_letters::latest(&state.db, &state.registry, &filter, &ops.mask_key).await?,
    ))
}
