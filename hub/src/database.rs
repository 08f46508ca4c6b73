//! The PostgreSQL side of the hub: the connection pool and the versioned schema.
//!
//! The schema lives in `hub/migrations/` as numbered SQL files, embedded in the binary and
//! applied at start; sqlx records each applied version with its checksum, so an edited
//! migration is refused instead of silently diverging.

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, PgPool};

use crate::config::DatabaseConfig;

/// The hub's migrations, embedded at build time.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// What went wrong with the database.
#[derive(Debug, thiserror::Error)]
pub enum DatabaseError {
    /// `database.url` does not parse.
    #[error("database.url is not a valid PostgreSQL URL: {0}")]
    Url(#[source] sqlx::Error),
    /// The server did not answer or refused us; retriable.
    #[error("the database did not answer: {0}")]
    Unreachable(#[source] sqlx::Error),
    /// A migration failed; the message names it.
    #[error("applying the database migrations failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// Opens a pool to the configured database. The pool connects lazily, so the hub starts
/// (and `/readyz` reports the database) even while PostgreSQL is away.
pub fn pool(config: &DatabaseConfig) -> Result<PgPool, DatabaseError> {
    let options: PgConnectOptions = config.url.parse().map_err(DatabaseError::Url)?;
    let options = options.disable_statement_logging();
    Ok(PgPoolOptions::new()
        .max_connections(config.max_connections)
        .acquire_timeout(config.connect_timeout)
        .connect_lazy_with(options))
}

/// Applies every migration not yet applied.
pub async fn migrate(pool: &PgPool) -> Result<(), DatabaseError> {
    MIGRATOR.run(pool).await?;
    Ok(())
}

/// The readiness probe: one round trip to the server.
pub async fn probe(pool: &PgPool) -> Result<(), DatabaseError> {
    sqlx::query("SELECT 1")
        .execute(pool)
        .await
        .map_err(DatabaseError::Unreachable)?;
    Ok(())
}
