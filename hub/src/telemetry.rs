//! Logging: human-readable lines by default, one JSON object a line with `--log-format json`.

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// PostgreSQL's notices (`relation "_sqlx_migrations" already exists, skipping` on every
/// migration) are information for whoever reads the database's own log, not the hub's: sqlx
/// logs them at `info`, and they are shown only from `warn` (a notice of PostgreSQL's
/// `WARNING` level) unless `RUST_LOG` asks for them.
const QUIET_NOTICES: &str = "sqlx::postgres::notice=warn";

/// Installs the global subscriber. `RUST_LOG`, when set, overrides `filter`.
pub fn init(format: LogFormat, filter: &str) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(format!("{filter},{QUIET_NOTICES}")))
        .unwrap_or_else(|_| EnvFilter::new(format!("info,{QUIET_NOTICES}")));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second init (tests that start several hubs in one process) keeps the first subscriber.
    let _ = match format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}
