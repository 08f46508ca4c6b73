//! Components that stopped because they cannot work until someone changes something
//! ([`crate::failure::Failure::Component`]), kept in `ops_component_failures` so that every hub
//! process, `bohai status`, `/api/v1/ops/feeds` and the dashboard see them.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;
use utoipa::ToSchema;

/// A component that stopped, and why.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct ComponentFailure {
    /// The component (`repository-sink`, `connector:<name>`, `licence-events`, ...).
    pub component: String,
    /// The `bohai serve` instance it stopped in.
    pub instance: String,
    /// Why it stopped, and so what to fix.
    pub reason: String,
    /// When it stopped.
    pub since: DateTime<Utc>,
}

/// Records that `component` stopped for `reason`. A failure to record is logged: the stop
/// itself is also in the log.
pub async fn record_failure(db: &PgPool, component: &str, instance: &str, reason: &str) {
    let result = sqlx::query(
        "INSERT INTO ops_component_failures (component, instance, reason) VALUES ($1, $2, $3)
         ON CONFLICT (component) DO UPDATE SET instance = EXCLUDED.instance,
           reason = EXCLUDED.reason, since = now()",
    )
    .bind(component)
    .bind(instance)
    .bind(reason)
    .execute(db)
    .await;
    if let Err(e) = result {
        tracing::warn!(component, error = %e, "cannot record that the component stopped");
    }
}

/// Records that `component` runs again.
pub async fn clear_failure(db: &PgPool, component: &str) {
    if let Err(e) = sqlx::query("DELETE FROM ops_component_failures WHERE component = $1")
        .bind(component)
        .execute(db)
        .await
    {
        tracing::warn!(component, error = %e, "cannot record that the component runs again");
    }
}

/// Every stopped component, oldest first.
pub async fn failures(db: &PgPool) -> Result<Vec<ComponentFailure>, sqlx::Error> {
    sqlx::query_as::<_, ComponentFailure>(
        "SELECT component, instance, reason, since FROM ops_component_failures ORDER BY since",
    )
    .fetch_all(db)
    .await
}
