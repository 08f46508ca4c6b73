//! The PostgreSQL-table connector: reads a table incrementally by its update-time column (see
//! [`crate::table`] for the cursor, the row versions and `lag`).
//!
//! Gentle on the source: a pool of one or two connections, opened when first needed, each
//! session read-only (`default_transaction_read_only`) with a `statement_timeout`, and one
//! short statement per poll, outside any explicit transaction.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use crate::config::SourceContext;
use crate::table::{
    Bind, Column, ColumnKind, Described, Params, RawRow, TableConfig, TableDriver, TableSource,
};
use crate::SourceError;

/// `[source] kind = "postgres-table"`: the keys are those of [`TableConfig`].
pub type PostgresTableConfig = TableConfig;

/// The URL schemes this connector accepts.
pub(crate) const SCHEMES: &[&str] = &["postgres", "postgresql"];

/// PostgreSQL's dialect and its connection pool.
#[derive(Debug)]
pub(crate) struct PostgresDriver {
    /// `None` only in unit tests of the SQL, which never connect.
    pool: Option<PgPool>,
    time_zone: String,
}

impl PostgresDriver {
    #[cfg(test)]
    pub(crate) fn for_tests() -> Self {
        Self {
            pool: None,
            time_zone: "+08:00".to_owned(),
        }
    }
}

/// Opens the connector: a lazy pool, so that a source that is away is waited for by the hub's
/// retries rather than failing the start.
pub(crate) fn open(
    config: PostgresTableConfig,
    context: SourceContext,
) -> Result<TableSource<PostgresDriver>, SourceError> {
    let timeout_ms = config.statement_timeout.as_millis().to_string();
    let options = PgConnectOptions::from_str(config.url.expose())
        .map_err(|e| SourceError::Config(format!("key `source.url`: {e}")))?
        .application_name(&format!("bohai-connector {}", context.name))
        .options([
            ("statement_timeout", timeout_ms.as_str()),
            ("default_transaction_read_only", "on"),
            ("idle_in_transaction_session_timeout", timeout_ms.as_str()),
        ]);
    let pool = PgPoolOptions::new()
        .max_connections(config.max_connections)
        .min_connections(0)
        .acquire_timeout(config.statement_timeout)
        .idle_timeout(Some(Duration::from_secs(60)))
        .connect_lazy_with(options);
    let driver = PostgresDriver {
        pool: Some(pool),
        time_zone: config.time_zone.clone(),
    };
    TableSource::new(driver, config, context)
}

fn kind(type_name: &str) -> ColumnKind {
    match type_name {
        "int2" | "int4" | "int8" => ColumnKind::Integer,
        "numeric" => ColumnKind::Decimal,
        "text" | "varchar" | "bpchar" | "name" => ColumnKind::Text,
        "uuid" => ColumnKind::Uuid,
        "date" => ColumnKind::Date,
        "timestamp" => ColumnKind::Timestamp,
        "timestamptz" => ColumnKind::TimestampTz,
        _ => ColumnKind::Other,
    }
}

impl PostgresDriver {
    fn pool(&self) -> Result<&PgPool, sqlx::Error> {
        self.pool.as_ref().ok_or(sqlx::Error::PoolClosed)
    }
}

#[async_trait::async_trait]
impl TableDriver for PostgresDriver {
    const NUMBERED_PARAMS: bool = true;

    fn quote(&self, name: &str) -> String {
        format!("\"{name}\"")
    }

    fn body_expr(&self, columns: &[Column]) -> String {
        let list: Vec<String> = columns
            .iter()
            .map(|c| format!("t.{}", self.quote(&c.name)))
            .collect();
        format!(
            "(SELECT row_to_json(x) FROM (SELECT {}) AS x)::text",
            list.join(", ")
        )
    }

    fn text_expr(&self, name: &str) -> String {
        format!("t.{}::text", self.quote(name))
    }

    fn micros_expr(&self, name: &str) -> String {
        format!(
            "(EXTRACT(EPOCH FROM t.{}) * 1000000)::bigint",
            self.quote(name)
        )
    }

    fn cursor_param(&self, kind: ColumnKind, placeholder: &str) -> Option<String> {
        let cast = match kind {
            ColumnKind::Integer => "bigint",
            ColumnKind::Decimal => "numeric",
            ColumnKind::Text => "text",
            ColumnKind::Uuid => "uuid",
            ColumnKind::Date => "date",
            ColumnKind::Timestamp => "timestamp",
            ColumnKind::TimestampTz => "timestamptz",
            ColumnKind::Other => return None,
        };
        Some(format!("CAST({placeholder} AS {cast})"))
    }

    fn upper_bound(&self, kind: ColumnKind, lag: Duration, params: &mut Params) -> String {
        let lag = params.push(Bind::Text(format!("{} microseconds", lag.as_micros())));
        if kind == ColumnKind::TimestampTz {
            format!("now() - CAST({lag} AS interval)")
        } else {
            // A time without zone is read as written in `time_zone`: compare with the
            // source's clock in that zone (an interval keeps ISO signs, unlike SET TIME ZONE).
            let tz = params.push(Bind::Text(self.time_zone.clone()));
            format!("(now() AT TIME ZONE CAST({tz} AS interval)) - CAST({lag} AS interval)")
        }
    }

    async fn describe(&self, schema: Option<&str>, table: &str) -> Result<Described, sqlx::Error> {
        // The relation as `"schema"."table"`, quoted by the database itself.
        let queries = [
            "SELECT a.attname::text, tp.typname::text
             FROM pg_attribute a JOIN pg_type tp ON tp.oid = a.atttypid
             WHERE a.attrelid = to_regclass(quote_ident(COALESCE($1, 'public')) || '.' || quote_ident($2))
               AND a.attnum > 0 AND NOT a.attisdropped
             ORDER BY a.attnum",
            "SELECT a.attname::text
             FROM pg_index i
             CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, n)
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
             WHERE i.indrelid = to_regclass(quote_ident(COALESCE($1, 'public')) || '.' || quote_ident($2))
               AND i.indisprimary
             ORDER BY k.n",
        ];
        crate::table::describe_with(self.pool()?, queries, schema, table, kind).await
    }

    async fn fetch(
        &self,
        sql: sqlx::SqlStr,
        binds: Vec<Bind>,
        keys: usize,
    ) -> Result<Vec<RawRow>, sqlx::Error> {
        crate::table::fetch_rows(self.pool()?, sql, binds, keys).await
    }
}
