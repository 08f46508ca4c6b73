//! Liveness and readiness probes for orchestrators and the ops team.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use crate::{database, kafka};

/// Liveness: the process runs and answers HTTP.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "ops",
    responses((status = 200, description = "The process is alive", body = String, example = "ok"))
)]
pub(super) async fn healthz() -> &'static str {
    "ok"
}

/// The state of one dependency in a readiness answer.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct DependencyState {
    /// Whether the dependency answered.
    pub(super) ok: bool,
    /// What it answered, or why it failed.
    pub(super) detail: String,
}

/// The readiness answer.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct Readiness {
    /// `ready` when every dependency answered, `unready` otherwise.
    pub(super) status: String,
    /// The names of the dependencies that failed (`broker`, `database`); empty when ready.
    pub(super) failed: Vec<String>,
    /// The Kafka broker's metadata probe.
    pub(super) broker: DependencyState,
    /// The PostgreSQL probe.
    pub(super) database: DependencyState,
}

/// Readiness: the broker's metadata and the database both answer.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "ops",
    responses(
        (status = 200, description = "Broker and database answer", body = Readiness),
        (status = 503, description = "A dependency failed; `failed` names it", body = Readiness),
    )
)]
pub(super) async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Readiness>) {
    let (broker, db) = tokio::join!(
        kafka::probe(&state.config.kafka),
        database::probe(&state.db)
    );
    let broker = match broker {
        Ok(n) => DependencyState {
            ok: true,
            detail: format!("metadata answered by {n} broker(s)"),
        },
        Err(e) => DependencyState {
            ok: false,
            detail: e.to_string(),
        },
    };
    let database = match db {
        Ok(()) => DependencyState {
            ok: true,
            detail: "answered".to_owned(),
        },
        Err(e) => DependencyState {
            ok: false,
            detail: e.to_string(),
        },
    };
    let failed: Vec<String> = [("broker", &broker), ("database", &database)]
        .into_iter()
        .filter(|(_, s)| !s.ok)
        .map(|(n, _)| n.to_owned())
        .collect();
    let status = if failed.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = Readiness {
        status: if failed.is_empty() {
            "ready"
        } else {
            "unready"
        }
        .to_owned(),
        failed,
        broker,
        database,
    };
    (status, Json(body))
}
