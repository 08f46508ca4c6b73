//! The credit profile: a department's view (`/api/v1/credit/{subject}`) and the public query
//! (`/api/v1/public/credit/{subject}`, 信用盘锦). The work is `crate::credit`'s.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::Utc;

use super::caller::Caller;
use super::extract::Path;
use super::{ApiError, AppState};
use crate::auth::Scope;
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
