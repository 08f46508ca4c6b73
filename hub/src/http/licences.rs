//! Electronic licences: issue (one or a batch), lifecycle actions, show, the signed status
//! list and online verification.

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bohai_certs::{Report, Verdict};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::caller::Caller;
use super::extract::{JsonBody, OptionalJsonBody, Path};
use super::{ApiError, AppState};
use crate::auth::Scope;
use crate::licences::status::Recheck;
use crate::licences::{
    IssueRequest, IssuedLicence, LicenceError, LicenceEvent, LicenceService, LicenceVersion,
    LicenceView,
};
use crate::seals::SealsError;

/// Most licences in one batch request.
const MAX_BATCH: usize = 10_000;
/// Most licences in one verification request (all the documents one service needs).
const MAX_VERIFY: usize = 100;

fn api_error(e: LicenceError) -> ApiError {
    match e {
        LicenceError::UnknownType(_) | LicenceError::BadRequest(_) => {
            ApiError::bad_request(e.to_string())
        }
        LicenceError::Invalid { .. } => {
            ApiError::new(StatusCode::BAD_REQUEST, "licence_invalid", e.to_string())
        }
        LicenceError::NotAllowed { .. } => {
            ApiError::new(StatusCode::FORBIDDEN, "forbidden", e.to_string())
        }
        LicenceError::UnknownLicence(_) => ApiError::not_found(e.to_string()),
        LicenceError::WrongState { .. } => {
            ApiError::new(StatusCode::CONFLICT, "wrong_state", e.to_string())
        }
        LicenceError::CreditListed { ref matches, .. } => {
            let pointer = matches.first().map(|m| m.pointer.clone());
            let refused = ApiError::new(StatusCode::CONFLICT, "credit_listed", e.to_string());
            match pointer {
                Some(p) => refused.with_pointer(p),
                None => refused,
            }
        }
        LicenceError::Seals(
            SealsError::NoCa | SealsError::NoValidSeal(_) | SealsError::NotUsable { .. },
        ) => ApiError::new(StatusCode::CONFLICT, "seal_unusable", e.to_string()),
        LicenceError::Database(e) | LicenceError::Seals(SealsError::Database(e)) => e.into(),
        other => ApiError::internal(&other),
    }
}

fn service<'a>(state: &'a AppState, with_keys: bool) -> Result<LicenceService<'a>, ApiError> {
    LicenceService::new(
        &state.db,
        &state.registry,
        &state.config,
        &state.licences,
        with_keys,
    )
    .map_err(api_error)
}

/// Issue a licence of one of the caller's licence types.
///
/// The holder and fields are validated against the type's schema (every violation is named);
/// the licence gets a number and a status-list index and is sealed with the department's
/// current seal as a JWS (`typ` `bohai-licence+jwt`, ES256, `x5c`; see `docs/formats.md`).
#[utoipa::path(
    post,
    path = "/api/v1/licences",
    tag = "licences",
    request_body = IssueRequest,
    responses(
        (status = 201, description = "The sealed licence", body = IssuedLicence),
        (status = 400, description = "Malformed request, unknown type, or content that breaks the type's schema", body = super::ErrorBody),
        (status = 401, description = "No valid bearer token", body = super::ErrorBody),
        (status = 403, description = "The type is issued by another department", body = super::ErrorBody),
        (status = 409, description = "The department has no valid seal (`seal_unusable`), or joint discipline refuses the licence (`credit_listed`: the holder or another identifier the type checks, at `pointer`, is on a credit list the type consults; the message names every entry matched, and whether an officer may override with `discipline_override`)", body = super::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(super) async fn issue_licence(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(request): JsonBody<IssueRequest>,
) -> Result<(StatusCode, Json<IssuedLicence>), ApiError> {
    caller.require(Scope::Issue)?;
    let issued = service(&state, true)?
        .issue(
            &caller.licence_actor(),
            &caller.department,
            request,
            Utc::now(),
        )
        .await
        .map_err(api_error)?;
    Ok((StatusCode::CREATED, Json(issued)))
}

/// A batch of licences to issue.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct BatchRequest {
    /// At most 10,000 licences of the caller's types, each as `POST /api/v1/licences` takes
    /// one (`IssueRequest`): each is checked on its own and refused in its own result.
    #[schema(max_items = 10_000, value_type = Vec<Object>)]
    licences: Vec<IssueRequest>,
}

/// One result of a batch.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct BatchItem {
    /// Position in the request.
    index: usize,
    /// The sealed licence, when issued.
    licence: Option<IssuedLicence>,
    /// Why not, when refused.
    error: Option<String>,
}

/// The answer to a batch.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct BatchResponse {
    /// Licences issued.
    issued: usize,
    /// Licences refused.
    rejected: usize,
    /// One result per requested licence, in order.
    results: Vec<BatchItem>,
}

/// Issue many licences at once, e.g. when moving an existing registry into Bohai.
///
/// Each licence is checked on its own: valid ones are sealed and stored together, invalid
/// ones are answered with their reasons.
#[utoipa::path(
    post,
    path = "/api/v1/licences/batch",
    tag = "licences",
    request_body = BatchRequest,
    responses(
        (status = 200, description = "One result per licence", body = BatchResponse),
        (status = 400, description = "Malformed request or more than 10,000 licences", body = super::ErrorBody),
        (status = 401, description = "No valid bearer token", body = super::ErrorBody),
        (status = 409, description = "The department has no valid seal", body = super::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(super) async fn issue_batch(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(request): JsonBody<BatchRequest>,
) -> Result<Json<BatchResponse>, ApiError> {
    caller.require(Scope::Issue)?;
    if request.licences.len() > MAX_BATCH {
        return Err(ApiError::bad_request(format!(
            "{} licences; at most {MAX_BATCH} per batch",
            request.licences.len()
        )));
    }
    let results = service(&state, true)?
        .issue_many(
            &caller.licence_actor(),
            &caller.department,
            request.licences,
            Utc::now(),
        )
        .await
        .map_err(api_error)?;
    let issued = results.iter().filter(|r| r.is_ok()).count();
    Ok(Json(BatchResponse {
        issued,
        rejected: results.len() - issued,
        results: results
            .into_iter()
            .enumerate()
            .map(|(index, r)| match r {
                Ok(l) => BatchItem {
                    index,
                    licence: Some(l),
                    error: None,
                },
                Err(e) => BatchItem {
                    index,
                    licence: None,
                    error: Some(e.to_string()),
                },
            })
            .collect(),
    }))
}

/// Every licence type: who issues it, its number prefix, holder kind and default validity,
/// and the fields a subscription to it may be granted (request one with
/// `POST /api/v1/subscriptions` and `licence_type`).
#[utoipa::path(
    get,
    path = "/api/v1/licence-types",
    tag = "licences",
    responses(
        (status = 200, description = "Every licence type, sorted by id", body = [crate::licences::types::LicenceTypeView]),
        (status = 401, description = "No valid bearer token (code says why)", body = super::ErrorBody),
        (status = 403, description = "The token lacks scope `read`", body = super::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(super) async fn list_licence_types(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<crate::licences::types::LicenceTypeView>>, ApiError> {
    caller.require(Scope::Read)?;
    Ok(Json(crate::licences::types::views(&state.registry)))
}

/// A licence with every version and its history.
#[utoipa::path(
    get,
    path = "/api/v1/licences/{number}",
    tag = "licences",
    params(("number" = String, Path, description = "Licence number, e.g. DL-2026-00000001")),
    responses(
        (status = 200, description = "The licence", body = LicenceView),
        (status = 401, description = "No valid bearer token", body = super::ErrorBody),
        (status = 404, description = "No such licence, or not the caller's to read (the issuing department, operators, and departments with an approved subscription to its type read a licence; every read is audited)", body = super::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(super) async fn show_licence(
    State(state): State<AppState>,
    caller: Caller,
    Path(number): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    if !caller.has(Scope::Admin) {
        caller.require(Scope::Read)?;
    }
    let now = Utc::now();
    let view = service(&state, false)?
        .show(&number, now)
        .await
        .map_err(api_error)?;
    // A licence carries its holder's name and identity number: its issuing department and
    // operators read it whole; a department with an approved subscription to its type reads
    // what the subscription grants. Anyone else is answered exactly as for a number never
    // issued, so that numbers cannot be enumerated.
    let first = view.versions.first();
    let issuer = first.map(|v| v.department.as_str());
    let (purpose, shown) = if issuer == Some(caller.department.as_str()) {
        ("issuing department".to_owned(), LicenceShown::Whole)
    } else if caller.has(Scope::Admin) {
        ("hub operator".to_owned(), LicenceShown::Whole)
    } else {
        let licence_type = first.map(|v| v.licence_type.as_str()).unwrap_or_default();
        match crate::sharing::subscriptions::grant_for_read(
            &state.db,
            &caller.department,
            (
                crate::sharing::subscriptions::Kind::LicenceType,
                licence_type,
            ),
            None,
            now,
        )
        .await
        {
            Ok(sub) => (
                format!("subscription {}: {}", sub.id, sub.purpose),
                LicenceShown::Granted(sub.fields),
            ),
            Err(crate::sharing::SharingError::Database(e)) => return Err(e.into()),
            Err(_) => return Err(api_error(LicenceError::UnknownLicence(number))),
        }
    };
    crate::audit::Entry::new(&caller.department, "licence_read")
        .person(caller.person())
        .subject(&number)
        .purpose(&purpose)
        .append_to(&state.db)
        .await?;
    Ok(Json(shown.project(&view)))
}

/// How much of a licence a reader sees.
enum LicenceShown {
    /// Everything: the issuing department or an operator.
    Whole,
    /// A subscriber to its type: the granted fields of
    /// [`crate::sharing::subscriptions::LICENCE_FIELDS`], the holder's name partly masked.
    Granted(Vec<String>),
}

impl LicenceShown {
    fn project(&self, view: &LicenceView) -> serde_json::Value {
        let mut value = serde_json::to_value(view).unwrap_or_default();
        let LicenceShown::Granted(fields) = self else {
            return value;
        };
        let granted = |f: &str| fields.iter().any(|g| g == f);
        // Who acted on it names people (`cli:USER`): not for a subscriber.
        let events = value
            .get_mut("events")
            .and_then(serde_json::Value::as_array_mut);
        for event in events.into_iter().flatten() {
            if let Some(event) = event.as_object_mut() {
                event.remove("actor");
            }
        }
        let versions = value
            .get_mut("versions")
            .and_then(serde_json::Value::as_array_mut);
        for version in versions.into_iter().flatten() {
            let Some(version) = version.as_object_mut() else {
                continue;
            };
            if !granted("document") {
                version.remove("document");
            }
            match version.remove("holder_name") {
                Some(name) if granted("holder_name") => {
                    // One masking rule: a dataset's `partial` fields are shown the same way.
                    let masked = crate::sharing::mask::partial(name.as_str().unwrap_or_default());
                    version.insert("holder_name".to_owned(), masked.into());
                }
                _ => {}
            }
        }
        value
    }
}

/// A lifecycle action on a licence.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Action {
    /// A new version with a new validity; the previous one is superseded.
    Renew,
    /// A new document for a lost or damaged one; the old one is revoked (`replaced`).
    Replace,
    /// Revoke (a reason is required).
    Revoke,
    /// Suspend.
    Suspend,
    /// Resume after a suspension.
    Resume,
}

/// The body of a lifecycle action.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ActionRequest {
    /// Why (required to revoke).
    #[serde(default)]
    reason: Option<String>,
    /// For `renew`: the new end of validity; default the type's validity from now.
    #[serde(default)]
    valid_until: Option<DateTime<Utc>>,
    /// For `renew`: renew despite a joint-discipline match, where the type allows an
    /// officer's override (the token must name the officer).
    #[serde(default)]
    discipline_override: Option<crate::licences::DisciplineOverride>,
}

/// The result of a lifecycle action.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ActionResponse {
    /// The version acted on, as it is now.
    #[serde(skip_serializing_if = "Option::is_none")]
    changed: Option<LicenceVersion>,
    /// The new licence version (renew) or document (replace).
    #[serde(skip_serializing_if = "Option::is_none")]
    issued: Option<IssuedLicence>,
}

/// Renew, replace, revoke, suspend or resume one of the caller's licences.
///
/// Every action is recorded with the department that made it, and published on the
/// licence-events topic.
#[utoipa::path(
    post,
    path = "/api/v1/licences/{number}/{action}",
    tag = "licences",
    params(
        ("number" = String, Path, description = "Licence number"),
        ("action" = inline(Action), Path, description = "renew, replace, revoke, suspend or resume"),
    ),
    request_body(content = Option<ActionRequest>, description = "Optional, but `revoke` needs a reason", content_type = "application/json"),
    responses(
        (status = 200, description = "Done", body = ActionResponse),
        (status = 400, description = "Malformed request (e.g. revoke without a reason)", body = super::ErrorBody),
        (status = 401, description = "No valid bearer token", body = super::ErrorBody),
        (status = 404, description = "No such licence, or another department's (answered alike)", body = super::ErrorBody),
        (status = 409, description = "The licence's state does not allow it (`wrong_state`), or joint discipline refuses the renewal (`credit_listed`, as at issuance)", body = super::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(super) async fn licence_action(
    State(state): State<AppState>,
    caller: Caller,
    Path((number, action)): Path<(String, Action)>,
    OptionalJsonBody(request): OptionalJsonBody<ActionRequest>,
) -> Result<Json<ActionResponse>, ApiError> {
    caller.require(Scope::Issue)?;
    // Another department's licence is answered as a number never issued: whether a number
    // exists is the issuer's to know.
    let not_yours_is_unknown = |e: LicenceError| match e {
        LicenceError::NotAllowed { .. } => api_error(LicenceError::UnknownLicence(number.clone())),
        e => api_error(e),
    };
    let actor = caller.licence_actor();
    let svc = service(&state, matches!(action, Action::Renew | Action::Replace))?;
    let now = Utc::now();
    let reason = request.reason.as_deref();
    let response = match action {
        Action::Renew => ActionResponse {
            changed: None,
            issued: Some(
                svc.renew(
                    &actor,
                    &number,
                    (request.valid_until, request.discipline_override),
                    now,
                )
                .await
                .map_err(&not_yours_is_unknown)?,
            ),
        },
        Action::Replace => ActionResponse {
            changed: None,
            issued: Some(
                svc.replace(&actor, &number, now)
                    .await
                    .map_err(&not_yours_is_unknown)?,
            ),
        },
        Action::Revoke | Action::Suspend | Action::Resume => {
            let event = match action {
                Action::Revoke => LicenceEvent::Revoked,
                Action::Suspend => LicenceEvent::Suspended,
                _ => LicenceEvent::Resumed,
            };
            ActionResponse {
                changed: Some(
                    svc.transition(&actor, &number, event, reason, now)
                        .await
                        .map_err(&not_yours_is_unknown)?,
                ),
                issued: None,
            }
        }
    };
    Ok(Json(response))
}

/// What to verify: one licence, several, or a QR payload (any field may also hold a QR
/// payload; it is recognised by its `BHL1:` prefix).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct VerifyRequest {
    /// One licence (compact JWS).
    #[serde(default)]
    licence: Option<String>,
    /// Several licences (at most 100), e.g. every document one service needs.
    #[serde(default)]
    #[schema(max_items = 100)]
    licences: Vec<String>,
    /// A QR payload (`BHL1:...`) read by a camera.
    #[serde(default)]
    qr: Option<String>,
    /// Verify as of this time (RFC 3339). Default now.
    #[serde(default)]
    at: Option<DateTime<Utc>>,
}

/// The answer to a verification.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct VerifyResponse {
    /// VALID only if every licence is VALID; INVALID if any is INVALID; else INDETERMINATE.
    #[schema(value_type = String)]
    overall: Verdict,
    /// One report per licence, in order (`overall`, `checks`, `status_as_of`).
    #[schema(value_type = Vec<Object>)]
    reports: Vec<Report>,
}

/// Verify licences online.
///
/// Checks each licence's seal signature, seal certificate chain at issuance and its
/// revocation, issuer, type and fields, validity now (with a bounded clock skew) and status
/// in the current status list; answers a report per licence with stable reason codes and an
/// overall verdict.
#[utoipa::path(
    post,
    path = "/api/v1/licences/verify",
    tag = "licences",
    request_body = VerifyRequest,
    responses(
        (status = 200, description = "The reports", body = VerifyResponse),
        (status = 400, description = "Malformed request", body = super::ErrorBody),
        (status = 409, description = "The status authority has no valid seal to sign the status list with", body = super::ErrorBody),
    )
)]
pub(super) async fn verify_licences(
    State(state): State<AppState>,
    JsonBody(request): JsonBody<VerifyRequest>,
) -> Result<Json<VerifyResponse>, ApiError> {
    let mut documents = request.licences;
    if let Some(one) = request.licence {
        documents.insert(0, one);
    }
    documents.extend(request.qr);
    if documents.is_empty() {
        return Err(ApiError::bad_request("give `licence`, `licences` or `qr`"));
    }
    if documents.len() > MAX_VERIFY {
        return Err(ApiError::bad_request(format!(
            "{} licences; at most {MAX_VERIFY} per request",
            documents.len()
        )));
    }
    let reports = service(&state, false)?
        .verify(&documents, request.at.unwrap_or_else(Utc::now))
        .await
        .map_err(api_error)?;
    for (document, report) in documents.iter().zip(&reports) {
        let form = if document.trim().starts_with(bohai_certs::licence::QR_PREFIX) {
            "qr"
        } else {
            "jws"
        };
        let verdict = match report.overall {
            Verdict::Valid => "VALID",
            Verdict::Invalid => "INVALID",
            Verdict::Indeterminate => "INDETERMINATE",
        };
        state.ops.http.observe_licence_verification(form, verdict);
    }
    Ok(Json(VerifyResponse {
        overall: overall_of(&reports),
        reports,
    }))
}

/// The verdict over several reports.
pub(crate) fn overall_of(reports: &[Report]) -> Verdict {
    if reports.iter().any(|r| r.overall == Verdict::Invalid) {
        Verdict::Invalid
    } else if reports.iter().all(|r| r.overall == Verdict::Valid) {
        Verdict::Valid
    } else {
        Verdict::Indeterminate
    }
}

/// The signed status list of every licence.
///
/// A `statuslist+jwt` (IETF token status list shape): two bits per licence version
/// (0 valid, 1 revoked, 2 suspended, 3 superseded), signed by the status authority's seal.
/// Served with an `ETag` and `Cache-Control: max-age` (the rest of its maximum age);
/// `If-None-Match` answers 304.
#[utoipa::path(
    get,
    path = "/api/v1/licences/status-list",
    tag = "licences",
    responses(
        (status = 200, description = "The status list token", content_type = "application/statuslist+jwt"),
        (status = 304, description = "Not modified"),
        (status = 409, description = "The status authority has no valid seal", body = super::ErrorBody),
    )
)]
pub(super) async fn status_list(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let now = Utc::now();
    let list = service(&state, false)?
        .status_list(now, Recheck::IfDue)
        .await
        .map_err(api_error)?;
    let digest = crate::seals::service::sha256(list.token.as_bytes());
    let etag = format!("\"{}\"", crate::seals::service::hex_lower(&digest[..12]));
    let max_age = state.config.licences.status_max_age.as_secs();
    let age = u64::try_from((now - list.issued_at).num_seconds()).unwrap_or(0);
    let cache = format!("public, max-age={}", max_age.saturating_sub(age));
    let mut response = if headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes() == etag.as_bytes())
    {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            [(header::CONTENT_TYPE, "application/statuslist+jwt")],
            list.token.to_string(),
        )
            .into_response()
    };
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    if let Ok(v) = HeaderValue::from_str(&cache) {
        h.insert(header::CACHE_CONTROL, v);
    }
    Ok(response)
}

/// The signed offline trust bundle.
///
/// A JWS (`typ` `bohai-trust-bundle+jwt`) signed by the status authority's seal of the city
/// CA, holding the departments' credit codes, every seal certificate by key id, the CRLs, the
/// revoked imported seals, the current status list and the licence types. It adds no trust
/// anchor: offline verifiers pin the city root (and operators' roots, for seals on licences)
/// and the authority, and fetch the CRLs themselves when they can.
#[utoipa::path(
    get,
    path = "/api/v1/licences/bundle",
    tag = "licences",
    responses(
        (status = 200, description = "The bundle", content_type = "application/jose"),
        (status = 409, description = "The status authority has no valid seal", body = super::ErrorBody),
    )
)]
pub(super) async fn trust_bundle(State(state): State<AppState>) -> Result<Response, ApiError> {
    let bundle = service(&state, true)?
        .bundle(Utc::now())
        .await
        .map_err(api_error)?;
    Ok(([(header::CONTENT_TYPE, "application/jose")], bundle).into_response())
}
