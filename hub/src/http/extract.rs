//! The request extractors of the API: a JSON body, a query string, path parameters and a raw
//! body, each refusing with the one error boundary's [`ApiError`] rather than axum's
//! plain-text rejections. Handlers take these, never axum's own.
//!
//! What each refusal is:
//! - a JSON body without `Content-Type: application/json`: 415 `unsupported_media_type`;
//! - a body over [`MAX_JSON_BODY`]: 413 `payload_too_large`, naming the limit;
//! - a body that is not JSON: 400 `invalid_json`, with the pointer `""`;
//! - a JSON body of the wrong shape (a missing, unknown or mistyped member): 400
//!   `invalid_request`, with the pointer to the member at fault;
//! - a query or path parameter that does not parse, or an unknown query parameter: 400
//!   `invalid_parameter`, naming the parameter.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, FailedToBufferBody, PathRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use serde::de::DeserializeOwned;

use super::ApiError;

/// Largest JSON (or raw) request body of every endpoint but HTTP push, which streams its body
/// under its own limit (`http.max_push_bytes`). It holds a verification request with a
/// document of 6 MiB in base64 and a batch of 10,000 licences.
pub(crate) const MAX_JSON_BODY: usize = 16 * 1024 * 1024;

/// A JSON request body, deserialized into `T`.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct JsonBody<T>(pub(crate) T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        require_json(request.headers())?;
        let RawBody(bytes) = RawBody::from_request(request, state).await?;
        parse_json(&bytes).map(JsonBody)
    }
}

/// An optional JSON request body: an empty body is `T::default()` (and needs no
/// `Content-Type`), and so is JSON `null`; any other body is read as [`JsonBody`] reads it.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct OptionalJsonBody<T>(pub(crate) T);

impl<T: DeserializeOwned + Default, S: Send + Sync> FromRequest<S> for OptionalJsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let headers = request.headers().clone();
        let RawBody(bytes) = RawBody::from_request(request, state).await?;
        if bytes.is_empty() {
            return Ok(OptionalJsonBody(T::default()));
        }
        require_json(&headers)?;
        parse_json::<Option<T>>(&bytes).map(|v| OptionalJsonBody(v.unwrap_or_default()))
    }
}

/// The request body as bytes, whatever its content type, up to [`MAX_JSON_BODY`].
#[derive(Debug, Clone, Default)]
pub(crate) struct RawBody(pub(crate) Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        Bytes::from_request(request, state)
            .await
            .map(RawBody)
            .map_err(body_rejection)
    }
}

/// A query string deserialized into `T`; a missing query string is read as an empty one.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Query<T>(pub(crate) T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        parse_query(parts.uri.query().unwrap_or_default()).map(Query)
    }
}

/// Path parameters deserialized into `T` (one value, or a tuple in the path's order).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Path<T>(pub(crate) T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Path(value)),
            Err(rejection) => {
                let names: Vec<String> =
                    axum::extract::RawPathParams::from_request_parts(parts, state)
                        .await
                        .map(|raw| raw.iter().map(|(k, _)| k.to_owned()).collect())
                        .unwrap_or_default();
                Err(path_rejection(rejection, &names))
            }
        }
    }
}

/// Whether the headers say the body is JSON (`application/json` or `application/*+json`).
pub(crate) fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .is_some_and(|v| {
            v == "application/json" || (v.starts_with("application/") && v.ends_with("+json"))
        })
}

fn require_json(headers: &HeaderMap) -> Result<(), ApiError> {
    if is_json(headers) {
        return Ok(());
    }
    let found = headers
        .get(header::CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    Err(ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        match found {
            Some(found) => {
                format!("the body must be JSON with Content-Type application/json, not `{found}`")
            }
            None => "the body must be JSON with Content-Type application/json; none was given"
                .to_owned(),
        },
    )
    .with_field("Content-Type"))
}

/// Parses a JSON body into `T`: 400 `invalid_json` for text that is not JSON, 400
/// `invalid_request` with the pointer of the member at fault for JSON of the wrong shape.
pub(crate) fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut parser = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut parser).map_err(|e| {
        let pointer = json_pointer(e.path());
        let inner = e.into_inner();
        match inner.classify() {
            serde_json::error::Category::Data => ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                format!("request body at `{pointer}`: {inner}"),
            )
            .with_pointer(pointer),
            _ => ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_json",
                format!("the request body is not JSON: {inner}"),
            )
            .with_pointer(""),
        }
    })?;
    parser.end().map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            format!("the request body is not one JSON value: {e}"),
        )
        .with_pointer("")
    })?;
    Ok(value)
}

/// A path of serde_path_to_error as a JSON pointer (RFC 6901).
fn json_pointer(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut pointer = String::new();
    for segment in path.iter() {
        let text = match segment {
            Segment::Seq { index } => index.to_string(),
            Segment::Map { key } => key.clone(),
            Segment::Enum { variant } => variant.clone(),
            Segment::Unknown => continue,
        };
        pointer.push('/');
        pointer.push_str(&text.replace('~', "~0").replace('/', "~1"));
    }
    pointer
}

/// Parses a query string into `T`: 400 `invalid_parameter` naming the parameter at fault.
pub(crate) fn parse_query<T: DeserializeOwned>(query: &str) -> Result<T, ApiError> {
    let parser = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
    serde_path_to_error::deserialize(parser).map_err(|e| {
        let path = e.path().to_string();
        let message = e.inner().to_string();
        // An unknown parameter is refused at the top level; serde names it in its message.
        let field = message
            .strip_prefix("unknown field `")
            .and_then(|rest| rest.split('`').next())
            .map(str::to_owned)
            .unwrap_or(path);
        let error = ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_parameter",
            format!("query parameter `{field}`: {message}"),
        );
        if field == "." {
            error
        } else {
            error.with_field(field)
        }
    })
}

fn body_rejection(rejection: BytesRejection) -> ApiError {
    match rejection {
        BytesRejection::FailedToBufferBody(FailedToBufferBody::LengthLimitError(_)) => {
            ApiError::payload_too_large(MAX_JSON_BODY as u64, "the API's request body limit")
        }
        other => ApiError::new(
            StatusCode::BAD_REQUEST,
            "unreadable_body",
            format!("the request body could not be read: {}", other.body_text()),
        ),
    }
}

fn path_rejection(rejection: PathRejection, names: &[String]) -> ApiError {
    use axum::extract::path::ErrorKind;
    let invalid = |field: &str, message: String| {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_parameter", message).with_field(field)
    };
    let PathRejection::FailedToDeserializePathParams(e) = rejection else {
        return ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the route has no path parameters",
        );
    };
    let body = e.body_text();
    match e.into_kind() {
        ErrorKind::ParseErrorAtKey {
            key,
            value,
            expected_type,
        } => invalid(
            &key,
            format!("path parameter `{key}`: `{value}` is not a {expected_type}"),
        ),
        ErrorKind::ParseErrorAtIndex {
            index,
            value,
            expected_type,
        } => {
            let key = names.get(index).map_or("?", String::as_str);
            invalid(
                key,
                format!("path parameter `{key}`: `{value}` is not a {expected_type}"),
            )
        }
        ErrorKind::ParseError {
            value,
            expected_type,
        } => {
            let key = names.first().map_or("?", String::as_str);
            invalid(
                key,
                format!("path parameter `{key}`: `{value}` is not a {expected_type}"),
            )
        }
        ErrorKind::DeserializeError {
            key,
            value,
            message,
        } => invalid(
            &key,
            format!("path parameter `{key}`: `{value}` is not valid: {message}"),
        ),
        ErrorKind::InvalidUtf8InPathParam { key } => invalid(
            &key,
            format!("path parameter `{key}` is not UTF-8 once percent-decoded"),
        ),
        _ => ApiError::new(StatusCode::BAD_REQUEST, "invalid_parameter", body),
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        name: String,
        items: Vec<Item>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Item {
        count: u32,
    }

    #[test]
    fn a_body_of_the_wrong_shape_is_refused_with_the_pointer_at_fault() {
        let e = parse_json::<Body>(br#"{"name": "x", "items": [{"count": 1}, {"count": "2"}]}"#)
            .unwrap_err();
        assert_eq!(e.status(), StatusCode::BAD_REQUEST);
        assert_eq!(e.body().code, "invalid_request");
        assert_eq!(e.body().pointer.as_deref(), Some("/items/1/count"));

        let e = parse_json::<Body>(br#"{"items": []}"#).unwrap_err();
        assert_eq!(e.body().code, "invalid_request");
        assert!(e.body().message.contains("name"), "{}", e.body().message);

        let e = parse_json::<Body>(br#"{"name": "x", "items": [], "x/y": 1}"#).unwrap_err();
        assert_eq!(e.body().code, "invalid_request");
        assert!(e.body().message.contains("x/y"), "{}", e.body().message);
    }

    #[test]
    fn text_that_is_not_one_json_value_is_invalid_json() {
        for text in [&b"{not json"[..], b"", br#"{"name": "x", "items": []} {}"#] {
            let e = parse_json::<Body>(text).unwrap_err();
            assert_eq!(e.body().code, "invalid_json", "{:?}", e.body());
            assert_eq!(e.body().pointer.as_deref(), Some(""));
        }
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Paging {
        limit: Option<u32>,
        cursor: Option<String>,
    }

    #[test]
    fn a_query_parameter_at_fault_is_named() {
        let e = parse_query::<Paging>("limit=ten").unwrap_err();
        assert_eq!(e.body().code, "invalid_parameter");
        assert_eq!(e.body().field.as_deref(), Some("limit"));
        let e = parse_query::<Paging>("limit=1&colour=red").unwrap_err();
        assert_eq!(e.body().field.as_deref(), Some("colour"));
        let ok = parse_query::<Paging>("cursor=a%2Fb").unwrap();
        assert_eq!(ok.cursor.as_deref(), Some("a/b"));
        assert!(parse_query::<Paging>("").unwrap().limit.is_none());
    }

    #[test]
    fn json_content_types_are_recognised() {
        let with = |ct: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::CONTENT_TYPE, ct.parse().unwrap());
            is_json(&h)
        };
        assert!(with("application/json"));
        assert!(with("Application/JSON; charset=utf-8"));
        assert!(with("application/merge-patch+json"));
        assert!(!with("text/plain"));
        assert!(!with("application/x-ndjson"));
        assert!(!is_json(&HeaderMap::new()));
    }
}
