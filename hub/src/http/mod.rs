//! The HTTP API: one router, one OpenAPI document generated from the handlers, one error
//! boundary (`error.rs`). Each endpoint group is its own module.

mod caller;
mod dashboard;
mod datasets;
mod error;
mod health;
mod licences;
mod ops;
mod push;
mod seals;
mod sharing;

use std::sync::{Arc, OnceLock};

use axum::http::header;
use axum::response::IntoResponse;
use axum::Router;
use sqlx::PgPool;
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use error::{ApiError, ErrorBody};

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
    /// The PostgreSQL pool.
    pub db: PgPool,
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
    ),
    components(schemas(ErrorBody)),
    modifiers(&BearerAuth)
)]
struct ApiDoc;

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
    api_router().split_for_parts().1
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

fn api_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(openapi_document))
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
        .routes(routes!(datasets::list_datasets))
        .routes(routes!(datasets::show_dataset))
        .routes(routes!(datasets::dataset_stats))
        .routes(routes!(push::push_records, sharing::read_records))
        .routes(routes!(seals::list_seals))
        .routes(routes!(seals::seal_coverage))
        .routes(routes!(seals::show_seal))
        .routes(routes!(seals::seal_certificate))
        .routes(routes!(seals::seal_image))
        .routes(routes!(seals::sign_with_seal))
        .routes(routes!(seals::verify_signature))
        .routes(routes!(seals::crl))
        .routes(routes!(licences::issue_licence))
        .routes(routes!(licences::issue_batch))
        .routes(routes!(licences::verify_licences))
        .routes(routes!(licences::status_list))
        .routes(routes!(licences::trust_bundle))
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
        .routes(routes!(ops::metrics))
        .routes(routes!(ops::feeds))
        .routes(routes!(ops::overview))
        .routes(routes!(ops::rates))
        .routes(routes!(ops::dead_letters))
}

/// The complete router of the hub.
pub fn router(state: AppState) -> Router {
    let (router, _) = api_router().split_for_parts();
    let http_metrics = state.ops.http.clone();
    router
        .merge(dashboard::routes())
        .layer(axum::middleware::from_fn_with_state(
            http_metrics,
            crate::ops::metrics::track,
        ))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}
