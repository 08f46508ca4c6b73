//! The HTTP API: one router, one OpenAPI document generated from the handlers, one error
//! boundary (`error.rs`, with the extractors that refuse through it in `extract.rs`). Each
//! endpoint group is its own module.

mod caller;
mod credit;
mod dashboard;
mod datasets;
mod error;
mod extract;
mod health;
mod licences;
mod limits;
mod ops;
mod push;
mod seals;
mod sharing;

use std::sync::{Arc, OnceLock};

use axum::extract::DefaultBodyLimit;
use axum::http::header;
use axum::response::IntoResponse;
use axum::Router;
use sqlx::PgPool;
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use error::{ApiError, ErrorBody};
pub use limits::{PushSlots, TokenLimits};

use bohai_schemas::Registry;

use crate::config::Config;
use crate::pipeline::ingest::Ingestor;

/// Path of the OpenAPI document.
pub const OPENAPI_PATH: &str = "/api/v1/openapi.json";

/// What every handler can reach.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The loaded configuration.
    pub config: Arc<Config>,
    /// The PostgreSQL pool. In the state of the routes that need no token it is the
    /// small pool of `database.public_max_connections` (see [`router`]).
    pub db: PgPool,
    /// The pool for requests made without a token (`database.public_max_connections`).
    pub public_db: PgPool,
    /// The per-token rate limits.
    pub limits: Arc<TokenLimits>,
    /// The HTTP pushes each department may have read at once.
    pub push_slots: Arc<PushSlots>,
    /// The departments and datasets.
    pub registry: Arc<Registry>,
    /// The ingest step for HTTP push.
    pub ingestor: Option<Ingestor>,
    /// Licence status list, seal keys and online verifier shared by requests.
    pub licences: Arc<crate::licences::service::LicenceState>,
    /// The masking salt, read once.
    pub sharing: Arc<crate::sharing::SharingState>,
    /// HTTP metrics and the dead-letter viewer's masking key.
    pub ops: Arc<crate::ops::OpsState>,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Bohai hub API",
        description = "Data-sharing hub and e-licence / e-seal exchange of a city government.",
        license(name = "Apache-2.0")
    ),
    tags(
        (name = "ops", description = "Health, readiness and operations"),
        (name = "datasets", description = "The registry's datasets"),
        (name = "seals", description = "Electronic seals and the city PKI"),
        (name = "licences", description = "Electronic licences: issue, lifecycle, status, verification"),
        (name = "sharing", description = "Catalogue, access requests and approvals, masked reads"),
        (name = "credit", description = "Credit profiles (a department's view and the public query) and credit repair"),
    ),
    components(schemas(ErrorBody)),
    modifiers(&BearerAuth)
)]
struct ApiDoc;

/// Declares on every operation the answers of the error boundary that its handler does not
/// declare itself: 400 for an operation with parameters or a body, 413 and 415 for one with
/// a JSON body, 401, 403 and 429 for one that needs a token, and 503 for all (a dependency away,
/// or `http.request_timeout` passed). Applied to the document once every route is in it.
struct BoundaryAnswers;

impl utoipa::Modify for BoundaryAnswers {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
        let answer = |description: &str| {
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("ErrorBody")))
                        .build(),
                )
                .build()
        };
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for operation in operations.into_iter().flatten() {
                let has_parameters = operation.parameters.as_ref().is_some_and(|p| !p.is_empty());
                let body_types: Vec<&String> = operation
                    .request_body
                    .as_ref()
                    .map(|b| b.content.keys().collect())
                    .unwrap_or_default();
                let json_only = body_types.len() == 1 && body_types[0] == "application/json";
                let secured = operation.security.as_ref().is_some_and(|s| !s.is_empty());
                let mut add = |status: &str, description: &str| {
                    operation
                        .responses
                        .responses
                        .entry(status.to_owned())
                        .or_insert_with(|| answer(description).into());
                };
                if has_parameters || !body_types.is_empty() {
                    add(
                        "400",
                        "A parameter or the body is invalid (`invalid_parameter` with `field`, `invalid_json`, `invalid_request` with `pointer`)",
                    );
                }
                if json_only {
                    add(
                        "413",
                        "The body is over 16 MiB (`payload_too_large`, with `limit`)",
                    );
                    add(
                        "415",
                        "The body is not sent as `Content-Type: application/json` (`unsupported_media_type`)",
                    );
                } else if !body_types.is_empty() {
                    add(
                        "413",
                        "The body is over its limit (`payload_too_large`, with `limit`)",
                    );
                }
                if secured {
                    add("401", "No valid bearer token (the code says why)");
                    add(
                        "403",
                        "The token lacks the scope this needs (`wrong_scope`), or the resource is another department's (`forbidden`)",
                    );
                }
                add(
                    "503",
                    "A dependency is away (`unavailable`) or the request took longer than `http.request_timeout` (`timeout`); retry later",
                );
                if secured {
                    let mut limited = answer(
                        "The token made more requests than `http.token_requests_per_minute` and `http.token_burst` allow (`rate_limited`); retry after `Retry-After` seconds",
                    );
                    limited.headers.insert(
                        "Retry-After".to_owned(),
                        utoipa::openapi::HeaderBuilder::new()
                            .schema(
                                utoipa::openapi::ObjectBuilder::new()
                                    .schema_type(utoipa::openapi::Type::Integer)
                                    .minimum(Some(1)),
                            )
                            .description(Some("Seconds until the token may call again"))
                            .build(),
                    );
                    operation
                        .responses
                        .responses
                        .entry("429".to_owned())
                        .or_insert_with(|| limited.into());
                }
            }
        }
    }
}

/// Declares the `bearer` security scheme: department tokens made by `bohai dept token create`.
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A department token from `bohai dept token create DEPT --scope S`",
                    ))
                    .build(),
            ),
        );
    }
}

static OPENAPI_JSON: OnceLock<String> = OnceLock::new();

/// The hub's OpenAPI document, generated from the handlers' annotations.
pub fn openapi() -> utoipa::openapi::OpenApi {
    use utoipa::Modify;
    let mut document = api_router().split_for_parts().1;
    BoundaryAnswers.modify(&mut document);
    document
}

/// The OpenAPI document as pretty-printed JSON, built once.
pub fn openapi_json() -> &'static str {
    OPENAPI_JSON.get_or_init(|| {
        openapi().to_pretty_json().unwrap_or_else(|e| {
            format!("{{\"error\": \"cannot serialize the OpenAPI document: {e}\"}}")
        })
    })
}

/// This OpenAPI document, which describes every endpoint of the hub.
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    tag = "ops",
    responses((status = 200, description = "The OpenAPI 3.1 document of this API", content_type = "application/json"))
)]
async fn openapi_document() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], openapi_json())
}

/// Every route and the whole document.
fn api_router() -> OpenApiRouter<AppState> {
    open_routes().merge(token_routes())
}

/// The routes that need no token. They are served with the small database pool of
/// `database.public_max_connections`, so that however many such requests arrive (each may
/// hold a connection for as long as its query takes), they never take a connection that a
/// department's request or the hub's own work needs.
fn open_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(openapi_document))
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
        .routes(routes!(datasets::list_datasets))
        .routes(routes!(datasets::show_dataset))
        .routes(routes!(datasets::dataset_stats))
        .routes(routes!(seals::list_seals))
        .routes(routes!(seals::seal_coverage))
        .routes(routes!(seals::show_seal))
        .routes(routes!(seals::seal_certificate))
        .routes(routes!(seals::seal_image))
        .routes(routes!(seals::verify_signature))
        .routes(routes!(seals::crl))
        .routes(routes!(seals::root_crl))
        .routes(routes!(licences::verify_licences))
        .routes(routes!(licences::status_list))
        .routes(routes!(licences::trust_bundle))
        .routes(routes!(ops::metrics))
        .routes(routes!(credit::public_credit_profile))
}

/// The routes whose handlers take a [`caller::Caller`]: a token checked, and rate limited,
/// before the handler runs.
fn token_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(push::push_records, sharing::read_records))
        .routes(routes!(seals::sign_with_seal))
        .routes(routes!(licences::issue_licence))
        .routes(routes!(licences::issue_batch))
        .routes(routes!(licences::list_licence_types))
        .routes(routes!(licences::show_licence))
        .routes(routes!(licences::licence_action))
        .routes(routes!(sharing::get_catalogue))
        .routes(routes!(
            sharing::request_subscription,
            sharing::list_subscriptions
        ))
        .routes(routes!(sharing::show_subscription))
        .routes(routes!(sharing::decide_subscription))
        .routes(routes!(sharing::withdraw_subscription))
        .routes(routes!(credit::credit_profile))
        .routes(routes!(credit::apply_for_repair, credit::list_repairs))
        .routes(routes!(credit::decide_repair))
        .routes(routes!(ops::feeds))
        .routes(routes!(ops::overview))
        .routes(routes!(ops::rates))
        .routes(routes!(ops::dead_letters))
}

/// The complete router of the hub.
pub fn router(state: AppState) -> Router {
    let http_metrics = state.ops.http.clone();
    let time_limit = state.config.http.request_timeout;
    let public = AppState {
        db: state.public_db.clone(),
        ..state.clone()
    };
    let open: Router = open_routes()
        .split_for_parts()
        .0
        .merge(dashboard::routes())
        .with_state(public);
    let with_token: Router = token_routes().split_for_parts().0.with_state(state);
    open.merge(with_token)
        .fallback(error::no_route)
        .method_not_allowed_fallback(error::no_method)
        .layer(DefaultBodyLimit::max(extract::MAX_JSON_BODY))
        .route_layer(axum::middleware::from_fn_with_state(
            time_limit,
            error::time_limit,
        ))
        .layer(axum::middleware::from_fn_with_state(
            http_metrics,
            crate::ops::metrics::track,
        ))
        .layer(TraceLayer::new_for_http())
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    /// Every `$ref` in `value`.
    fn refs<'v>(value: &'v Value, out: &mut Vec<&'v str>) {
        match value {
            Value::Object(map) => {
                for (k, v) in map {
                    match (k.as_str(), v) {
                        ("$ref", Value::String(r)) => out.push(r),
                        _ => refs(v, out),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }

    #[test]
    fn every_reference_of_the_document_resolves() {
        let doc: Value = serde_json::from_str(super::openapi_json()).unwrap();
        let mut found = Vec::new();
        refs(&doc, &mut found);
        assert!(!found.is_empty());
        for r in found {
            let pointer = r.strip_prefix('#').expect("a local reference");
            assert!(doc.pointer(pointer).is_some(), "{r} does not resolve");
        }
    }

    #[test]
    fn every_operation_declares_the_error_boundary_answers() {
        let doc: Value = serde_json::from_str(super::openapi_json()).unwrap();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let responses = op["responses"].as_object().unwrap();
                let has = |s: &str| responses.contains_key(s);
                assert!(has("503"), "{method} {path}");
                if op.get("parameters").is_some() || op.get("requestBody").is_some() {
                    assert!(has("400"), "{method} {path}");
                }
                if op.get("security").is_some() {
                    assert!(has("401"), "{method} {path}");
                }
                if let Some(body) = op.get("requestBody") {
                    assert!(has("413"), "{method} {path}");
                    if body["content"].as_object().unwrap().len() == 1 {
                        assert!(has("415"), "{method} {path}");
                    }
                }
            }
        }
        let action = &doc["paths"]["/api/v1/licences/{number}/{action}"]["post"]["parameters"][1];
        assert_eq!(action["schema"]["enum"][0], "renew", "{action}");
    }
}
