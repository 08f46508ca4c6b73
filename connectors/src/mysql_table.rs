//! The MariaDB/MySQL-table connector: reads a table incrementally by its update-time column
//! (see [`crate::table`] for the cursor, the row versions and `lag`).
//!
//! Gentle on the source: a pool of one or two connections, opened when first needed; each
//! session is read-only, has a statement time limit (`max_statement_time` on MariaDB,
//! `max_execution_time` on MySQL) and the configured `time_zone`, so that `TIMESTAMP` columns
//! and `NOW()` are in the zone the connector writes with them. One short statement per poll.

use std::str::FromStr;
use std::time::Duration;

use sqlx::mysql::{MySqlConnectOptions, MySqlPool, MySqlPoolOptions};
use sqlx::Executor;

use crate::config::SourceContext;
use crate::table::{
    Bind, Column, ColumnKind, Described, Params, RawRow, TableConfig, TableDriver, TableSource,
};
use crate::SourceError;

/// `[source] kind = "mysql-table"`: the keys are those of [`TableConfig`].
pub type MysqlTableConfig = TableConfig;

/// The URL schemes this connector accepts.
pub(crate) const SCHEMES: &[&str] = &["mysql", "mariadb"];

/// MariaDB's and MySQL's dialect and the connection pool.
#[derive(Debug)]
pub(crate) struct MysqlDriver {
    pool: MySqlPool,
}

/// Opens the connector: a lazy pool, so that a source that is away is waited for by the hub's
/// retries rather than failing the start.
pub(crate) fn open(
    config: MysqlTableConfig,
    context: SourceContext,
) -> Result<TableSource<MysqlDriver>, SourceError> {
    // sqlx reads `mysql://` URLs; `mariadb://` is accepted in the configuration as a synonym.
    let url = config.url.expose();
    let url = url
        .strip_prefix("mariadb://")
        .map_or_else(|| url.to_owned(), |rest| format!("mysql://{rest}"));
    let options = MySqlConnectOptions::from_str(&url)
        .map_err(|e| SourceError::Config(format!("key `source.url`: {e}")))?
        .charset("utf8mb4")
        .timezone(Some(config.time_zone.clone()));
    let timeout = config.statement_timeout;
    let pool = MySqlPoolOptions::new()
        .max_connections(config.max_connections)
        .min_connections(0)
        .acquire_timeout(timeout)
        .idle_timeout(Some(Duration::from_secs(60)))
        .after_connect(move |conn, _| {
            Box::pin(async move {
                let version: String = sqlx::query_scalar("SELECT VERSION()")
                    .fetch_one(&mut *conn)
                    .await?;
                let limit = if version.contains("MariaDB") {
                    format!("SET SESSION max_statement_time = {}", timeout.as_secs_f64())
                } else {
                    format!("SET SESSION max_execution_time = {}", timeout.as_millis())
                };
                // Safe: a number from the configuration (a Duration), never text.
                conn.execute(sqlx::AssertSqlSafe(limit)).await?;
                conn.execute("SET SESSION TRANSACTION READ ONLY").await?;
                Ok(())
            })
        })
        .connect_lazy_with(options);
    TableSource::new(MysqlDriver { pool }, config, context)
}

fn kind(data_type: &str) -> ColumnKind {
    match data_type.to_ascii_lowercase().as_str() {
        "tinyint" | "smallint" | "mediumint" | "int" | "integer" | "bigint" => ColumnKind::Integer,
        "decimal" | "numeric" => ColumnKind::Decimal,
        "char" | "varchar" | "tinytext" | "text" | "mediumtext" | "longtext" | "uuid" => {
            ColumnKind::Text
        }
        "date" => ColumnKind::Date,
        "datetime" | "timestamp" => ColumnKind::Timestamp,
        _ => ColumnKind::Other,
    }
}

#[async_trait::async_trait]
impl TableDriver for MysqlDriver {
    const NUMBERED_PARAMS: bool = false;

    fn quote(&self, name: &str) -> String {
        format!("`{name}`")
    }

    fn body_expr(&self, columns: &[Column]) -> String {
        let pairs: Vec<String> = columns
            .iter()
            .map(|c| format!("'{}', t.{}", c.name, self.quote(&c.name)))
            .collect();
        format!("CAST(JSON_OBJECT({}) AS CHAR)", pairs.join(", "))
    }

    fn text_expr(&self, name: &str) -> String {
        format!("CAST(t.{} AS CHAR)", self.quote(name))
    }

    fn micros_expr(&self, name: &str) -> String {
        format!(
            "TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', t.{})",
            self.quote(name)
        )
    }

    fn cursor_param(&self, kind: ColumnKind, placeholder: &str) -> Option<String> {
        Some(match kind {
            ColumnKind::Integer => format!("CAST({placeholder} AS DECIMAL(65,0))"),
            ColumnKind::Decimal => format!("CAST({placeholder} AS DECIMAL(65,30))"),
            // Compared in the column's own collation: a bare parameter yields to it.
            ColumnKind::Text | ColumnKind::Uuid => placeholder.to_owned(),
            ColumnKind::Date => format!("CAST({placeholder} AS DATE)"),
            ColumnKind::Timestamp | ColumnKind::TimestampTz => {
                format!("CAST({placeholder} AS DATETIME(6))")
            }
            ColumnKind::Other => return None,
        })
    }

    fn upper_bound(&self, _kind: ColumnKind, lag: Duration, params: &mut Params) -> String {
        let lag = params.push(Bind::Int(
            i64::try_from(lag.as_micros()).unwrap_or(i64::MAX),
        ));
        format!("NOW(6) - INTERVAL {lag} MICROSECOND")
    }

    async fn describe(&self, schema: Option<&str>, table: &str) -> Result<Described, sqlx::Error> {
        let queries = [
            "SELECT CAST(COLUMN_NAME AS CHAR), CAST(DATA_TYPE AS CHAR)
             FROM information_schema.COLUMNS
             WHERE TABLE_SCHEMA = COALESCE(?, DATABASE()) AND TABLE_NAME = ?
             ORDER BY ORDINAL_POSITION",
            "SELECT CAST(COLUMN_NAME AS CHAR) FROM information_schema.KEY_COLUMN_USAGE
             WHERE CONSTRAINT_NAME = 'PRIMARY'
               AND TABLE_SCHEMA = COALESCE(?, DATABASE()) AND TABLE_NAME = ?
             ORDER BY ORDINAL_POSITION",
        ];
        crate::table::describe_with(&self.pool, queries, schema, table, kind).await
    }

    async fn fetch(
        &self,
        sql: sqlx::SqlStr,
        binds: Vec<Bind>,
        keys: usize,
    ) -> Result<Vec<RawRow>, sqlx::Error> {
        crate::table::fetch_rows(&self.pool, sql, binds, keys).await
    }
}
