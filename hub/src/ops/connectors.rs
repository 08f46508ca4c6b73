//! The run state of the connectors `bohai serve` runs, kept in `ops_connector_runs` so that
//! every hub process and `bohai status` see it.

use sqlx::PgPool;

use super::feeds::ConnectorState;

/// Records that `connector` (of `dataset`) is now in `state`, with the error when it failed.
/// A failure to record is logged, never passed on: the connector's work matters more.
pub async fn record(
    db: &PgPool,
    connector: &str,
    dataset: &str,
    state: ConnectorState,
    error: Option<&str>,
) {
    let result = sqlx::query(
        "INSERT INTO ops_connector_runs (connector, dataset, state, error, started_at, updated_at)
         VALUES ($1, $2, $3, $4, now(), now())
         ON CONFLICT (connector) DO UPDATE SET dataset = EXCLUDED.dataset, state = EXCLUDED.state,
           error = EXCLUDED.error, updated_at = now(),
           started_at = CASE WHEN EXCLUDED.state = 'running' THEN now()
                             ELSE ops_connector_runs.started_at END",
    )
    .bind(connector)
    .bind(dataset)
    .bind(state.as_str())
    .bind(error)
    .execute(db)
    .await;
    if let Err(e) = result {
        tracing::warn!(connector, error = %e, "cannot record the connector's state");
    }
}
