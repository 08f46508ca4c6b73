//! Electronic seals and the city PKI: sign with a department's seal, verify a seal
//! signature, the CRL, the seal list, one seal with its certificate chain and image, and the
//! coverage of the registry's departments.

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine as _;
use bohai_certs::SealSignature;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::caller::Caller;
use super::extract::{is_json, parse_json, JsonBody, Path, RawBody};
use super::{ApiError, AppState};
use crate::auth::Scope;
use crate::seals::service::{hex_decode, hex_lower, sha256};
use crate::seals::{Coverage, SealDetails, SealSummary, SealsError, SealsService};

/// Largest base64 document accepted by verify (the decoded document is smaller).
const MAX_DOCUMENT_B64: usize = 8 * 1024 * 1024;
/// Largest signature text accepted by verify.
const MAX_SIGNATURE_TEXT: usize = 128 * 1024;

fn api_error(e: SealsError) -> ApiError {
    match e {
        SealsError::UnknownSeal(_) | SealsError::UnknownDepartment(_) | SealsError::NoImage(_) => {
            ApiError::not_found(e.to_string())
        }
        SealsError::NoCa | SealsError::NoValidSeal(_) | SealsError::NotUsable { .. } => {
            ApiError::new(StatusCode::CONFLICT, "seal_unusable", e.to_string())
        }
        SealsError::Database(e) => e.into(),
        other => ApiError::internal(&other),
    }
}

/// A document hash to sign, as JSON.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SignRequest {
    /// SHA-256 of the document, 64 hex digits.
    #[schema(pattern = "^[0-9a-fA-F]{64}$")]
    sha256: String,
}

/// A seal signature made by the hub.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SignResponse {
    /// The seal that signed.
    seal_id: String,
    /// SHA-256 of the document, hex.
    document_sha256: String,
    /// The signing time written into the signature.
    signing_time: DateTime<Utc>,
    /// The detached seal signature, PEM `BOHAI SEAL SIGNATURE`.
    signature_pem: String,
}

/// Seal a document with one of the caller's seals.
///
/// The body is the document itself (any content type), or `{"sha256": "<hex>"}` with
/// `Content-Type: application/json`. A department may sign only with its own seals.
#[utoipa::path(
    post,
    path = "/api/v1/seals/{id}/sign",
    tag = "seals",
    params(("id" = String, Path, description = "Seal id, e.g. market-regulation-5f3a…")),
    request_body(
        description = "The document bytes (any type but JSON), or JSON with its SHA-256",
        content(
            (SignRequest = "application/json"),
            (Vec<u8> = "application/octet-stream"),
        ),
    ),
    responses(
        (status = 200, description = "The detached seal signature", body = SignResponse),
        (status = 400, description = "Malformed JSON or hash, or an empty document", body = super::ErrorBody),
        (status = 401, description = "No valid bearer token", body = super::ErrorBody),
        (status = 403, description = "The seal belongs to another department", body = super::ErrorBody),
        (status = 404, description = "No such seal", body = super::ErrorBody),
        (status = 409, description = "The seal is revoked, expired or not yet valid", body = super::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(super) async fn sign_with_seal(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Json<SignResponse>, ApiError> {
    caller.require(Scope::Issue)?;
    let now = Utc::now();
    let public = SealsService::public(&state.db, &state.config.pki);
    let seal = public.get(&id, now).await.map_err(api_error)?;
    if seal.department != caller.department {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "seal `{id}` belongs to `{}`, not to `{}`",
                seal.department, caller.department
            ),
        ));
    }
    let digest = if is_json(&headers) {
        let request: SignRequest = parse_json(&body)?;
        parse_sha256(&request.sha256)?
    } else if body.is_empty() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the document to seal is empty: send its bytes, or {\"sha256\": \"<hex>\"} as JSON",
        )
        .with_pointer(""));
    } else {
        sha256(&body)
    };
    let service = SealsService::with_master_key(&state.db, &state.config.pki).map_err(api_error)?;
    let sig = service.sign(&id, digest, now).await.map_err(api_error)?;
    crate::audit::Entry::new(&caller.department, "seal.sign")
        .person(caller.person())
        .subject(&id)
        .detail(&serde_json::json!({"document_sha256": hex_lower(&digest)}))
        .append_to(&state.db)
        .await?;
    let signature_pem = sig.to_pem().map_err(|e| ApiError::internal(&e))?;
    Ok(Json(SignResponse {
        seal_id: id,
        document_sha256: hex_lower(&digest),
        signing_time: sig.signing_time(),
        signature_pem,
    }))
}

/// 64 hexadecimal digits, nothing around them (as the document's `pattern` says).
fn parse_sha256(text: &str) -> Result<[u8; 32], ApiError> {
    Some(text)
        .filter(|t| t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()))
        .and_then(hex_decode)
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .ok_or_else(|| ApiError::bad_request("sha256 must be 64 hexadecimal digits"))
}

/// What to verify.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct VerifyRequest {
    /// SHA-256 of the document, 64 hex digits (or give `document`).
    #[schema(pattern = "^[0-9a-fA-F]{64}$")]
    document_sha256: Option<String>,
    /// The document, base64 (or give `document_sha256`).
    document: Option<String>,
    /// The seal signature: PEM `BOHAI SEAL SIGNATURE`, or the DER in base64.
    signature: String,
    /// Verify as of this time (RFC 3339). Default now.
    at: Option<DateTime<Utc>>,
}

/// Verify a seal signature.
///
/// The answer is the verification report: `overall` (`VALID`, `INVALID`, `INDETERMINATE`)
/// and every check with a stable reason `code` (see `docs/formats.md`). The verifier uses
/// the city root, the configured trust anchors and the newest CRL.
#[utoipa::path(
    post,
    path = "/api/v1/seals/verify",
    tag = "seals",
    request_body = VerifyRequest,
    responses(
        (status = 200, description = "The verification report", body = Object),
        (status = 400, description = "Malformed request, hash, base64 or signature", body = super::ErrorBody),
    )
)]
pub(super) async fn verify_signature(
    State(state): State<AppState>,
    JsonBody(request): JsonBody<VerifyRequest>,
) -> Result<Json<bohai_certs::Report>, ApiError> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let digest = match (&request.document_sha256, &request.document) {
        (Some(hex), None) => parse_sha256(hex)?,
        (None, Some(doc)) => {
            if doc.len() > MAX_DOCUMENT_B64 {
                return Err(ApiError::bad_request("document is larger than 6 MiB"));
            }
            sha256(
                &b64.decode(doc.trim())
                    .map_err(|e| ApiError::bad_request(format!("document is not base64: {e}")))?,
            )
        }
        _ => {
            return Err(ApiError::bad_request(
                "give exactly one of document_sha256 and document",
            ))
        }
    };
    let text = request.signature.trim();
    if text.len() > MAX_SIGNATURE_TEXT {
        return Err(ApiError::bad_request("signature is larger than 128 KiB"));
    }
    let parsed = if text.starts_with("-----BEGIN") {
        SealSignature::from_pem(text)
    } else {
        let der = b64.decode(text).map_err(|e| {
            ApiError::bad_request(format!("signature is neither PEM nor base64: {e}"))
        })?;
        SealSignature::from_der(&der)
    };
    let der = parsed
        .and_then(|s| s.to_der())
        .map_err(|e| ApiError::bad_request(format!("malformed seal signature: {e}")))?;
    let report = SealsService::public(&state.db, &state.config.pki)
        .verify(digest, &der, request.at.unwrap_or_else(Utc::now))
        .await
        .map_err(api_error)?;
    Ok(Json(report))
}

/// The newest CRL of the city issuing CA.
///
/// DER (`application/pkix-crl`) by default; PEM with `Accept: application/x-pem-file`.
#[utoipa::path(
    get,
    path = "/api/v1/pki/crl",
    tag = "seals",
    responses(
        (status = 200, description = "The CRL", content_type = "application/pkix-crl"),
        (status = 404, description = "No CRL yet (no city CA)", body = super::ErrorBody),
    )
)]
pub(super) async fn crl(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let crl = SealsService::public(&state.db, &state.config.pki)
        .latest_crl()
        .await
        .map_err(api_error)?
        .ok_or_else(|| ApiError::not_found("no CRL yet: run `bohai seal init-ca`"))?;
    Ok(crl_response(&headers, crl.der))
}

/// The newest CRL of the city root: the revocation status of the issuing CA, which every
/// verification of a city seal needs beside the issuing CA's CRL (RFC 5280 §6.3). DER, or
/// PEM with `Accept: application/x-pem-file`.
#[utoipa::path(
    get,
    path = "/api/v1/pki/root-crl",
    tag = "seals",
    responses(
        (status = 200, description = "The root's CRL", content_type = "application/pkix-crl"),
        (status = 404, description = "No root CRL yet (no city CA, or one made before root CRLs and not reissued since)", body = super::ErrorBody),
    )
)]
pub(super) async fn root_crl(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let crl = SealsService::public(&state.db, &state.config.pki)
        .latest_root_crl()
        .await
        .map_err(api_error)?
        .ok_or_else(|| {
            ApiError::not_found(
                "no root CRL yet: run `bohai seal root-crl` (with `--root-key` where the root key is kept off the hub)",
            )
        })?;
    Ok(crl_response(&headers, crl.der))
}

/// A CRL as DER, or as PEM when the client asks for `application/x-pem-file`.
fn crl_response(headers: &HeaderMap, der: Vec<u8>) -> Response {
    let wants_pem = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/x-pem-file"));
    if wants_pem {
        (
            [(header::CONTENT_TYPE, "application/x-pem-file")],
            bohai_certs::crl_to_pem(&der),
        )
            .into_response()
    } else {
        ([(header::CONTENT_TYPE, "application/pkix-crl")], der).into_response()
    }
}

/// Every seal (never a key).
#[utoipa::path(
    get,
    path = "/api/v1/seals",
    tag = "seals",
    responses((status = 200, description = "The seals, by department", body = [SealSummary]))
)]
pub(super) async fn list_seals(
    State(state): State<AppState>,
) -> Result<Json<Vec<SealSummary>>, ApiError> {
    let seals = SealsService::public(&state.db, &state.config.pki)
        .list(Utc::now())
        .await
        .map_err(api_error)?;
    Ok(Json(seals))
}

/// The seal state of every department of the registry and the coverage percentage.
#[utoipa::path(
    get,
    path = "/api/v1/seals/coverage",
    tag = "seals",
    responses((status = 200, description = "Coverage", body = Coverage))
)]
pub(super) async fn seal_coverage(
    State(state): State<AppState>,
) -> Result<Json<Coverage>, ApiError> {
    let coverage = SealsService::public(&state.db, &state.config.pki)
        .coverage(Utc::now())
        .await
        .map_err(api_error)?;
    Ok(Json(coverage))
}

/// One seal: certificate facts, chain, validity, state, the seal record and its image (never
/// a key).
#[utoipa::path(
    get,
    path = "/api/v1/seals/{id}",
    tag = "seals",
    params(("id" = String, Path, description = "Seal id, e.g. market-regulation-5f3a…")),
    responses(
        (status = 200, description = "The seal", body = SealDetails),
        (status = 404, description = "No such seal", body = super::ErrorBody),
    )
)]
pub(super) async fn show_seal(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<SealDetails>, ApiError> {
    let details = SealsService::public(&state.db, &state.config.pki)
        .show(&id, Utc::now())
        .await
        .map_err(api_error)?;
    Ok(Json(details))
}

/// The seal certificate and its intermediate CA certificates, PEM, leaf first.
#[utoipa::path(
    get,
    path = "/api/v1/seals/{id}/certificate",
    tag = "seals",
    params(("id" = String, Path, description = "Seal id")),
    responses(
        (status = 200, description = "The certificate chain, PEM", content_type = "application/x-pem-file", body = String),
        (status = 404, description = "No such seal", body = super::ErrorBody),
    )
)]
pub(super) async fn seal_certificate(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let pem = SealsService::public(&state.db, &state.config.pki)
        .certificate_pem(&id)
        .await
        .map_err(api_error)?;
    Ok(([(header::CONTENT_TYPE, "application/x-pem-file")], pem).into_response())
}

/// The seal image (印模) as stored: `image/svg+xml` or `image/png`. Served with a
/// content security policy that forbids scripts, since SVG is a document format.
#[utoipa::path(
    get,
    path = "/api/v1/seals/{id}/image",
    tag = "seals",
    params(("id" = String, Path, description = "Seal id")),
    responses(
        (status = 200, description = "The image; its SHA-256 is the record's pictureDigest", content_type = "image/svg+xml"),
        (status = 404, description = "No such seal, or a seal made before images were kept", body = super::ErrorBody),
    )
)]
pub(super) async fn seal_image(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let image = SealsService::public(&state.db, &state.config.pki)
        .image(&id)
        .await
        .map_err(api_error)?;
    Ok((
        [
            (header::CONTENT_TYPE, image.image_type().media_type()),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; style-src 'unsafe-inline'; sandbox",
            ),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        image.into_bytes(),
    )
        .into_response())
}
