//! The ops dashboard at `/`: one HTML page, a script and a style sheet, built into the
//! binary (no CDN, no build step). The script reads `/api/v1/ops/overview`,
//! `/api/v1/ops/rates` and `/api/v1/ops/dead-letters` and refreshes itself every
//! `ops.dashboard_refresh`.

use axum::extract::State;
use axum::http::header;
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use axum::Router;

use super::AppState;

const PAGE: &str = include_str!("../../assets/dashboard/index.html");
const SCRIPT: &str = include_str!("../../assets/dashboard/app.js");
const STYLE: &str = include_str!("../../assets/dashboard/app.css");

/// The dashboard's routes (outside the OpenAPI document: they are a page, not the API).
pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(page))
        .route("/dashboard/app.js", get(script))
        .route("/dashboard/app.css", get(style))
}

async fn page(State(state): State<AppState>) -> Html<String> {
    let refresh_ms = state.config.ops.dashboard_refresh.as_millis().to_string();
    Html(PAGE.replace("{{REFRESH_MS}}", &refresh_ms))
}

async fn script() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        SCRIPT,
    )
}

async fn style() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        STYLE,
    )
}
