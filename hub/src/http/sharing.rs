//! Data sharing: the catalogue, access requests and their decisions, and masked reads.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::Utc;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::caller::Caller;
use super::extract::{JsonBody, OptionalJsonBody, Path, Query};
use super::{ApiError, AppState};
use crate::auth::Scope;
use crate::sharing::catalogue::{self, CatalogueEntry};
use crate::sharing::delivery;
use crate::sharing::records::{self, ReadQuery, RecordPage};
use crate::sharing::subscriptions::{self, Decider, Filter, Subscription, SubscriptionRequest};
use crate::sharing::SharingError;

/// The one mapping of sharing errors to answers.
pub(super) fn api_error(e: SharingError) -> ApiError {
    let forbidden =
        |code: &str, e: &SharingError| ApiError::new(StatusCode::FORBIDDEN, code, e.to_string());
    match e {
        SharingError::UnknownDataset(_)
        | SharingError::UnknownLicenceType(_)
        | SharingError::UnknownSubscription(_) => ApiError::not_found(e.to_string()),
        SharingError::BadRequest(_) => ApiError::bad_request(e.to_string()),
        SharingError::BadParameter { name, .. } => {
            ApiError::new(StatusCode::BAD_REQUEST, "invalid_parameter", e.to_string())
                .with_field(name)
        }
        SharingError::KeyMasked { .. } => {
            ApiError::new(StatusCode::BAD_REQUEST, "key_masked", e.to_string())
        }
        SharingError::NotShared(_) => forbidden("not_shared", &e),
        SharingError::Forbidden(_) => forbidden("forbidden", &e),
        SharingError::SelfApproval(_) => forbidden("self_approval", &e),
        SharingError::NotApproved { .. } => forbidden("not_approved", &e),
        SharingError::Expired { .. } => forbidden("subscription_expired", &e),
        SharingError::Withdrawn { .. } => forbidden("subscription_withdrawn", &e),
        SharingError::WrongState { .. } => {
            ApiError::new(StatusCode::CONFLICT, "wrong_state", e.to_string())
        }
        SharingError::Database(e) => e.into(),
        other @ SharingError::Salt { .. } => ApiError::internal(&other),
    }
}

impl AppState {
    /// The masking salt, read on first use; a salt file that cannot be read is 500.
    pub(super) fn salt(&self) -> Result<crate::sharing::mask::Salt, ApiError> {
        self.sharing.salt(&self.config.sharing).map_err(api_error)
    }
}

/// The catalogue: every dataset with owner, fields, PII tags, sharing class, update
/// interval, record count and freshness.
#[utoipa::path(
    get,
    path = "/api/v1/catalogue",
    tag = "sharing",
    responses(
        (status = 200, description = "Every dataset, sorted by id", body = [CatalogueEntry]),
        (status = 401, description = "No valid bearer token (code says why)", body = super::ErrorBody),
        (status = 403, description = "The token lacks scope `read`", body = super::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(super) async fn get_catalogue(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<CatalogueEntry>>, ApiError> {
    caller.require(Scope::Read)?;
    Ok(Json(
        catalogue::catalogue(&state.db, &state.registry, Utc::now()).await?,
    ))
}

/// Request access to fields of another department's dataset, or of the licences of another
/// department's licence type (`licence_type`: fields `holder_name`, `document`).
///
/// Unconditional datasets are approved at once; conditional ones wait for the owner, who
/// must answer within `sharing.reply_days` (past that the request is flagged overdue);
/// not-shared ones are refused. Licence types are always decided by their issuing department.
#[utoipa::path(
    post,
    path = "/api/v1/subscriptions",
    tag = "sharing",
    request_body = SubscriptionRequest,
    responses(
        (status = 201, description = "The request, `approved` for an unconditional dataset, else `pending`", body = Subscription),
        (status = 400, description = "Not exactly one of `dataset` and `licence_type`, unknown field, empty purpose, period out of range, or the caller's own dataset or licence type", body = super::ErrorBody),
        (status = 401, description = "No valid bearer token (code says why)", body = super::ErrorBody),
        (status = 403, description = "The token lacks scope `read` (`wrong_scope`), or the dataset is not shared (`not_shared`)", body = super::ErrorBody),
        (status = 404, description = "No such dataset or licence type", body = super::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(super) async fn request_subscription(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(request): JsonBody<SubscriptionRequest>,
) -> Result<(StatusCode, Json<Subscription>), ApiError> {
    caller.require(Scope::Read)?;
    let sub = subscriptions::request(
        &state.db,
        &state.registry,
        state.config.sharing.reply_days,
        &caller.department,
        caller.person(),
        request,
        Utc::now(),
    )
    .await
    .map_err(api_error)?;
    Ok((StatusCode::CREATED, Json(shown(&state, sub))))
}

/// Filters of the subscription list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListQuery {
    /// Only this dataset's.
    dataset: Option<String>,
    /// Only those in this status: pending, approved, rejected, withdrawn.
    status: Option<String>,
    /// Only pending requests past their reply deadline.
    #[serde(default)]
    overdue: bool,
}

/// The caller's requests and the requests for the caller's datasets (every request for an
/// admin token).
#[utoipa::path(
    get,
    path = "/api/v1/subscriptions",
    tag = "sharing",
    params(ListQuery),
    responses(
        (status = 200, description = "Subscriptions, newest first, with `overdue` flags", body = [Subscription]),
        (status = 401, description = "No valid bearer token (code says why)", body = super::ErrorBody),
        (status = 403, description = "The token has none of the scopes read, publish, admin", body = super::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(super) async fn list_subscriptions(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<ListQuery>,
) -> Result<Json<Vec<Subscription>>, ApiError> {
    caller.require_any(&[Scope::Read, Scope::Publish, Scope::Admin])?;
    let filter = Filter {
        department: (!caller.has(Scope::Admin)).then_some(caller.department.as_str()),
        dataset: q.dataset.as_deref(),
        status: q.status.as_deref(),
        overdue: q.overdue,
    };
    let subs = subscriptions::list(&state.db, &state.registry, &filter, Utc::now()).await?;
    Ok(Json(subs.into_iter().map(|s| shown(&state, s)).collect()))
}

/// One subscription: the requester's, the owner's, or any for an admin token.
#[utoipa::path(
    get,
    path = "/api/v1/subscriptions/{id}",
    tag = "sharing",
    params(("id" = uuid::Uuid, Path, description = "Subscription id")),
    responses(
        (status = 200, description = "The subscription", body = Subscription),
        (status = 401, description = "No valid bearer token (code says why)", body = super::ErrorBody),
        (status = 403, description = "Neither the requester's nor the owner's", body = super::ErrorBody),
        (status = 404, description = "No such subscription", body = super::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(super) async fn show_subscription(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<uuid::Uuid>,
) -> Result<Json<Subscription>, ApiError> {
    caller.require_any(&[Scope::Read, Scope::Publish, Scope::Admin])?;
    let sub = subscriptions::get(&state.db, id, Utc::now())
        .await
        .map_err(api_error)?;
    let owner = state
        .registry
        .dataset(&sub.dataset)
        .map(|d| d.department.as_str())
        .unwrap_or_default();
    if !caller.has(Scope::Admin) && caller.department != sub.department {
        caller.require_department(owner, &format!("subscription {id}"))?;
    }
    Ok(Json(shown(&state, sub)))
}

/// What the owner decides on a request.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Decision {
    /// Grant the requested fields for the requested period.
    Approve,
    /// Refuse, with a reason.
    Reject,
}

/// A decision on a request.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DecisionRequest {
    /// Why (required to reject).
    #[serde(default)]
    reason: Option<String>,
}

/// Approve or reject a pending request for one of the caller's datasets.
///
/// Needs the owning department's token with scope `publish`, or an `admin` token.
#[utoipa::path(
    post,
    path = "/api/v1/subscriptions/{id}/{decision}",
    tag = "sharing",
    params(
        ("id" = uuid::Uuid, Path, description = "Subscription id"),
        ("decision" = inline(Decision), Path, description = "`approve` or `reject`"),
    ),
    request_body(content = Option<DecisionRequest>, description = "Optional for an approval; a rejection needs a reason", content_type = "application/json"),
    responses(
        (status = 200, description = "The decided subscription", body = Subscription),
        (status = 400, description = "A rejection without a reason", body = super::ErrorBody),
        (status = 401, description = "No valid bearer token (code says why)", body = super::ErrorBody),
        (status = 403, description = "Not the owning department, or the token lacks scope `publish`", body = super::ErrorBody),
        (status = 404, description = "No such subscription or decision", body = super::ErrorBody),
        (status = 409, description = "Already decided", body = super::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(super) async fn decide_subscription(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, decision)): Path<(uuid::Uuid, Decision)>,
    OptionalJsonBody(request): OptionalJsonBody<DecisionRequest>,
) -> Result<Json<Subscription>, ApiError> {
    let approve = matches!(decision, Decision::Approve);
    let admin = caller.has(Scope::Admin);
    if !admin {
        caller.require(Scope::Publish)?;
    }
    let decider = Decider::Department {
        code: caller.department.clone(),
        admin,
        person: caller.person().map(str::to_owned),
    };
    let sub = subscriptions::decide(
        &state.db,
        &state.registry,
        id,
        &decider,
        approve,
        request.reason.as_deref(),
        Utc::now(),
    )
    .await
    .map_err(api_error)?;
    Ok(Json(shown(&state, sub)))
}

/// A withdrawal.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct WithdrawalRequest {
    /// Why access ends (not all blank).
    #[schema(
        min_length = 1,
        pattern = "[^\\t\\n\\v\\f\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]"
    )]
    reason: String,
}

/// Withdraw a pending or approved subscription: the requester no longer needs the data, or
/// the owning department ends the access. Reads are refused from then on
/// (`subscription_withdrawn`), nothing more is put on the subscription's topic, and the
/// topic is deleted with its records.
///
/// Needs the requester's token (scope `read`), the owner's (scope `publish`) or an `admin`
/// token.
#[utoipa::path(
    post,
    path = "/api/v1/subscriptions/{id}/withdraw",
    tag = "sharing",
    params(("id" = uuid::Uuid, Path, description = "Subscription id")),
    request_body = WithdrawalRequest,
    responses(
        (status = 200, description = "The withdrawn subscription", body = Subscription),
        (status = 400, description = "No reason given", body = super::ErrorBody),
        (status = 401, description = "No valid bearer token (code says why)", body = super::ErrorBody),
        (status = 403, description = "Neither the requester nor the owner, or the token lacks the scope", body = super::ErrorBody),
        (status = 404, description = "No such subscription", body = super::ErrorBody),
        (status = 409, description = "Already rejected or withdrawn", body = super::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(super) async fn withdraw_subscription(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<uuid::Uuid>,
    JsonBody(request): JsonBody<WithdrawalRequest>,
) -> Result<Json<Subscription>, ApiError> {
    let admin = caller.has(Scope::Admin);
    if !admin {
        // The requester withdraws with its reading token, the owner with its publishing one
        // (the same scope that decides requests); anyone else is refused by `withdraw`.
        let sub = subscriptions::get(&state.db, id, Utc::now())
            .await
            .map_err(api_error)?;
        if sub.department == caller.department {
            caller.require(Scope::Read)?;
        } else {
            caller.require(Scope::Publish)?;
        }
    }
    let by = Decider::Department {
        code: caller.department.clone(),
        admin,
        person: caller.person().map(str::to_owned),
    };
    let sub = subscriptions::withdraw(
        &state.db,
        &state.registry,
        id,
        &by,
        &request.reason,
        Utc::now(),
    )
    .await
    .map_err(api_error)?;
    Ok(Json(shown(&state, sub)))
}

/// A subscription as answered: with its topic while it is active.
fn shown(state: &AppState, sub: Subscription) -> Subscription {
    delivery::with_topic(sub, &state.config.kafka)
}

/// Read a dataset's records: every field for the owning department; for others only the
/// fields of an active approval, each PII field masked by its rule (partial, salted hash or
/// drop). Paged by cursor, oldest update first. Every read is audited with the keys
/// returned and the subscription's purpose.
#[utoipa::path(
    get,
    path = "/api/v1/datasets/{id}/records",
    tag = "sharing",
    params(("id" = String, Path, description = "Dataset id"), ReadQuery),
    responses(
        (status = 200, description = "A page of records", body = RecordPage),
        (status = 400, description = "A bad cursor or limit", body = super::ErrorBody),
        (status = 401, description = "No valid bearer token (code says why)", body = super::ErrorBody),
        (status = 403, description = "The token lacks scope `read` (`wrong_scope`), no approval (`not_approved`), or it expired (`subscription_expired`)", body = super::ErrorBody),
        (status = 404, description = "No such dataset", body = super::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(super) async fn read_records(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(query): Query<ReadQuery>,
) -> Result<Json<RecordPage>, ApiError> {
    caller.require(Scope::Read)?;
    let dataset = state
        .registry
        .dataset(&id)
        .ok_or_else(|| ApiError::not_found(format!("no dataset `{id}`")))?;
    let salt = state.salt()?;
    let page = records::read(
        &state.db,
        dataset,
        &caller.department,
        &query,
        &salt,
        Utc::now(),
    )
    .await
    .map_err(api_error)?;
    Ok(Json(page))
}
