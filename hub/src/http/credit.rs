//! The credit profile: a department's view (`/api/v1/credit/{subject}`) and the public query
//! (`/api/v1/public/credit/{subject}`, 信用盘锦). The work is `crate::credit`'s.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::Utc;

use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::caller::Caller;
use super::extract::{JsonBody, Path, Query};
use super::{ApiError, AppState};
use crate::auth::Scope;
use crate::credit::repair::{self, Decision, Repair, RepairApplication, RepairError};
use crate::credit::{self, CreditError, CreditProfile, Reader};

/// The one mapping of credit errors to answers.
impl From<CreditError> for ApiError {
    fn from(e: CreditError) -> Self {
        match e {
            CreditError::BadSubject => {
                ApiError::new(StatusCode::BAD_REQUEST, "invalid_parameter", e.to_string())
                    .with_field("subject")
            }
            CreditError::NothingPublished => ApiError::not_found(e.to_string()),
            CreditError::Sharing(e) => super::sharing::api_error(e),
            CreditError::Database(e) => e.into(),
            other => ApiError::internal(&other),
        }
    }
}

/// Every credit entry about a subject (a unified social credit code or a resident identity
/// number) across the credit commitments, red list, black list and administrative
/// penalties, each with its department, list date, end date and whether it is published
/// now (list date ≤ today ≤ end date, in the city's time).
///
/// The owning department sees its entries as stored; another department sees the fields of
/// its approved subscription to each dataset, personal fields masked by the dataset's rule,
/// and the datasets it has no approval for are named in `withheld`. Every read is audited
/// (`credit.read`), an identity number recorded only as its salted hash.
#[utoipa::path(
    get,
    path = "/api/v1/credit/{subject}",
    tag = "credit",
    params(("subject" = String, Path, description = "A unified social credit code or a resident identity number", min_length = 18, max_length = 18, pattern = "^[0-9A-Za-z]{18}$")),
    responses(
        (status = 200, description = "The profile, possibly without entries", body = CreditProfile),
        (status = 400, description = "The subject is not 18 letters and digits (`invalid_parameter`)", body = super::ErrorBody),
        (status = 401, description = "No valid bearer token (code says why)", body = super::ErrorBody),
        (status = 403, description = "The token lacks scope `read`", body = super::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(super) async fn credit_profile(
    State(state): State<AppState>,
    caller: Caller,
    Path(subject): Path<String>,
) -> Result<Json<CreditProfile>, ApiError> {
    caller.require(Scope::Read)?;
    let salt = state.salt()?;
    let reader = Reader::Department {
        code: &caller.department,
        person: caller.person(),
    };
    let profile = credit::profile(
        &state.db,
        &state.registry,
        reader,
        &subject,
        &salt,
        Utc::now(),
    )
    .await?;
    Ok(Json(profile))
}

/// The public credit query (信用盘锦): the entries of an organisation or individual business,
/// by its unified social credit code, that are published now, without personal fields. No
/// token. A natural person's entries are never shown: a resident identity number, a person,
/// a subject with nothing published and an unknown one all get the same 404.
#[utoipa::path(
    get,
    path = "/api/v1/public/credit/{subject}",
    tag = "credit",
    params(("subject" = String, Path, description = "A unified social credit code", min_length = 18, max_length = 18, pattern = "^[0-9A-Za-z]{18}$")),
    responses(
        (status = 200, description = "The published entries", body = CreditProfile),
        (status = 400, description = "The subject is not 18 letters and digits (`invalid_parameter`)", body = super::ErrorBody),
        (status = 404, description = "Nothing published about this subject (or it is not an organisation's code)", body = super::ErrorBody),
    )
)]
pub(super) async fn public_credit_profile(
    State(state): State<AppState>,
    Path(subject): Path<String>,
) -> Result<Json<CreditProfile>, ApiError> {
    let salt = state.salt()?;
    let profile =
        credit::public_profile(&state.db, &state.registry, &subject, &salt, Utc::now()).await?;
    Ok(Json(profile))
}

/// The one mapping of credit-repair errors to answers.
impl From<RepairError> for ApiError {
    fn from(e: RepairError) -> Self {
        match e {
            RepairError::NotRepairable(_) | RepairError::Documents(_) | RepairError::NoReason => {
                ApiError::bad_request(e.to_string())
            }
            RepairError::NoPerson => {
                ApiError::new(StatusCode::FORBIDDEN, "person_required", e.to_string())
            }
            RepairError::UnknownEntry { .. } | RepairError::UnknownRepair(_) => {
                ApiError::not_found(e.to_string())
            }
            RepairError::NotAllowed { .. } | RepairError::SamePerson(_) => {
                ApiError::new(StatusCode::FORBIDDEN, "forbidden", e.to_string())
            }
            RepairError::AlreadyOpen { .. }
            | RepairError::Decided { .. }
            | RepairError::EntryChanged { .. } => {
                ApiError::new(StatusCode::CONFLICT, "conflict", e.to_string())
            }
            RepairError::Database(e) => e.into(),
        }
    }
}

/// Apply for the credit repair (信用修复) of an entry the caller's department listed: a
/// black-list entry or a penalty's publication, on its subject's behalf, with the documents
/// the dataset's rule asks for (by kind, each named and fingerprinted by its SHA-256).
///
/// Needs a token with scope `admin` issued to a person (repair is decided between persons).
/// The dataset's owning department decides before `decide_by`. Audited
/// (`credit.repair.applied`).
#[utoipa::path(
    post,
    path = "/api/v1/credit/repairs",
    tag = "credit",
    request_body = RepairApplication,
    responses(
        (status = 201, description = "The application, pending", body = Repair),
        (status = 400, description = "Not a repairable dataset, documents missing or malformed, or no reason", body = super::ErrorBody),
        (status = 401, description = "No valid bearer token (code says why)", body = super::ErrorBody),
        (status = 403, description = "The token lacks scope `admin` or names no person (`person_required`)", body = super::ErrorBody),
        (status = 404, description = "No such entry listed by the caller's department", body = super::ErrorBody),
        (status = 409, description = "The entry has an application pending or a repair approved", body = super::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(super) async fn apply_for_repair(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(application): JsonBody<RepairApplication>,
) -> Result<(StatusCode, Json<Repair>), ApiError> {
    caller.require(Scope::Admin)?;
    let actor = repair::Actor {
        department: Some(&caller.department),
        person: caller.person(),
    };
    let made = repair::apply(&state.db, &state.registry, actor, application, Utc::now()).await?;
    Ok((StatusCode::CREATED, Json(made)))
}

/// Which applications to list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct RepairQuery {
    /// Only those still pending.
    #[serde(default)]
    pending: bool,
}

/// The credit-repair applications the caller's department filed or decides, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/credit/repairs",
    tag = "credit",
    params(RepairQuery),
    responses(
        (status = 200, description = "The applications", body = Vec<Repair>),
        (status = 401, description = "No valid bearer token (code says why)", body = super::ErrorBody),
        (status = 403, description = "The token lacks scope `admin`", body = super::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(super) async fn list_repairs(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<RepairQuery>,
) -> Result<Json<Vec<Repair>>, ApiError> {
    caller.require(Scope::Admin)?;
    let listed = repair::list(
        &state.db,
        &state.registry,
        Some(&caller.department),
        q.pending,
    )
    .await?;
    Ok(Json(listed))
}

/// A decision's reasons.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RepairDecision {
    /// Why: what was checked, or what is missing.
    #[schema(min_length = 1)]
    reason: String,
}

/// Approve or reject a credit-repair application for a dataset the caller's department owns.
///
/// Needs a token with scope `admin` issued to a person other than the applicant. Approving
/// takes the entry out of publication and out of the joint-discipline check at the licence
/// counter (it stays in the repository, marked `repaired_on`), and delivers it again to the
/// dataset's subscribers with `credit_repair`. Audited (`credit.repair.approved`/`rejected`).
#[utoipa::path(
    post,
    path = "/api/v1/credit/repairs/{id}/{decision}",
    tag = "credit",
    params(
        ("id" = i64, Path, description = "Application id"),
        ("decision" = inline(Decision), Path, description = "`approve` or `reject`"),
    ),
    request_body = RepairDecision,
    responses(
        (status = 200, description = "The decided application", body = Repair),
        (status = 400, description = "No reason", body = super::ErrorBody),
        (status = 401, description = "No valid bearer token (code says why)", body = super::ErrorBody),
        (status = 403, description = "The token lacks scope `admin` or names no person (`person_required`), the dataset is another department's, or the caller applied", body = super::ErrorBody),
        (status = 404, description = "No such application", body = super::ErrorBody),
        (status = 409, description = "Decided already, or the entry changed since the application", body = super::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(super) async fn decide_repair(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, decision)): Path<(i64, Decision)>,
    JsonBody(body): JsonBody<RepairDecision>,
) -> Result<Json<Repair>, ApiError> {
    caller.require(Scope::Admin)?;
    let actor = repair::Actor {
        department: Some(&caller.department),
        person: caller.person(),
    };
    let decided = repair::decide(
        &state.db,
        &state.registry,
        actor,
        id,
        (decision, &body.reason),
        Utc::now(),
    )
    .await?;
    Ok(Json(decided))
}
