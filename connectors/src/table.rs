//! What the PostgreSQL-table and MariaDB/MySQL-table connectors share: their configuration,
//! the cursor, the one query each poll runs, and turning a row into a record. The two
//! connector modules ([`crate::postgres_table`], [`crate::mysql_table`]) each implement
//! [`TableDriver`]: connecting, reading the catalogue and the SQL fragments of their dialect.
//!
//! # Reading by a cursor
//!
//! A table is read in the order of its update-time column, with the primary key as
//! tie-breaker. Each poll runs one short read-only statement:
//!
//! ```sql
//! SELECT <row as JSON>, <cursor columns> FROM <table> AS t
//! WHERE t.updated_at <= <source's now> - <lag>
//!   AND (t.updated_at, t.pk) > (<last updated_at>, <last pk>)
//! ORDER BY t.updated_at, t.pk LIMIT <batch_size>
//! ```
//!
//! (the row comparison is spelled out as `a >= x AND (a > x OR (a = x AND b > y))` so that
//! both dialects use an index on the columns). The cursor — the last row's update time and
//! key, as the database prints them — is the checkpoint; the hub stores it once the batch was
//! delivered, exactly like a file connector's offset.
//!
//! # Row versions: stream and sequence number
//!
//! Every row is a stream of its own (`table:<connector>:<key>`, see
//! [`SourceRecord::stream`](crate::SourceRecord::stream)), and a version's sequence number is
//! its update time in microseconds (counted from the year 1, so it is never negative). The
//! repository sink keeps, per stream and partition, the highest sequence number it applied
//! and skips anything at or below it. So:
//!
//! - a row updated at the source (same key, newer update time) has a higher number and is
//!   applied as a new version (repository `version` 2, 3, ...);
//! - after a crash the connector re-reads from its last stored cursor; rows it delivered but
//!   had not yet checkpointed come again with the same stream and number and are skipped;
//! - a row changed again between the crash and the re-read comes with its new time only, and
//!   is applied once; no other row can take its number, because numbers are per row.
//!
//! A counter in the checkpoint (as files use) would not do: re-read after a crash, a table can
//! return different rows at the same positions (a row updated in between moves to the end),
//! and a row that was never delivered would then inherit the number of one that was, and be
//! skipped. One stream per table with the update time as number fails on ties instead: rows
//! written by one transaction share their update time. The price of per-row streams is one
//! mark per row in `sink_stream_marks`; the sink reads only the marks of each batch's streams.
//!
//! # Late commits and `lag`
//!
//! A cursor on an update time misses a row whose transaction commits after rows with a later
//! update time were read: its time (taken when the transaction began or wrote the row) is then
//! behind the cursor. The connector only reads rows older than `lag` by the source's clock,
//! so a transaction that commits within `lag` of writing its rows is never missed. Longer
//! transactions at the source need a longer `lag`; the price is that changes arrive `lag`
//! late. Rows whose update time is NULL are never read, and a key column must not be NULL.

use std::collections::HashMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::config::SourceContext;
use crate::text::typed_value;
use crate::{Batch, Checkpoint, Source, SourceError, SourceRecord, RAW_KEEP_LIMIT};

/// `[source] kind = "postgres-table"` or `kind = "mysql-table"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableConfig {
    /// The source database, `postgres://user:password@host:port/db` or
    /// `mysql://user:password@host:port/db` (MariaDB too). Use a read-only account.
    pub url: DatabaseUrl,
    /// PostgreSQL schema (default `public`) or MySQL database (default: the URL's).
    pub schema: Option<String>,
    /// The table (or view) to read.
    pub table: String,
    /// The columns that make a record, each becoming the field of the same name. Default: all
    /// columns of the table.
    pub columns: Option<Vec<String>>,
    /// The column with each row's last update time (a timestamp type). Default `updated_at`.
    #[serde(default = "default_updated_at_column")]
    pub updated_at_column: String,
    /// The columns that identify a row and break ties between equal update times. Default:
    /// the table's primary key.
    pub key_columns: Option<Vec<String>>,
    /// Only rows updated at least this long ago (by the source's clock) are read, so that
    /// rows of transactions still open are not skipped. Default `30s`.
    #[serde(default = "default_lag", with = "humantime_serde")]
    pub lag: Duration,
    /// Longest a query may run at the source before the source cancels it (then the poll is
    /// retried). Default `10s`.
    #[serde(default = "default_statement_timeout", with = "humantime_serde")]
    pub statement_timeout: Duration,
    /// UTC offset of timestamps without a time zone (`timestamp`, `DATETIME`); written with
    /// them as RFC 3339 times. Default `+08:00`.
    #[serde(default = "default_time_zone")]
    pub time_zone: String,
    /// Connections to the source, 1 or 2. Default 1.
    #[serde(default = "default_max_connections")]
    pub max_connections: u32,
}

fn default_updated_at_column() -> String {
    "updated_at".to_owned()
}

fn default_lag() -> Duration {
    Duration::from_secs(30)
}

fn default_statement_timeout() -> Duration {
    Duration::from_secs(10)
}

fn default_time_zone() -> String {
    "+08:00".to_owned()
}

fn default_max_connections() -> u32 {
    1
}

/// A database URL; its password never appears in `Debug` output or logs.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    /// The URL, password included: only for connecting.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let redacted = match (self.0.find("://"), self.0.rfind('@')) {
            (Some(s), Some(at)) if at > s => {
                let user = &self.0[s + 3..at];
                let user = user.split_once(':').map_or(user, |(u, _)| u);
                format!("{}{user}:REDACTED{}", &self.0[..s + 3], &self.0[at..])
            }
            _ => self.0.clone(),
        };
        f.write_str(&redacted)
    }
}

/// Whether `name` may be used as a table, schema or column name: ASCII letters, digits and
/// `_`, not starting with a digit, at most 63 characters. Identifiers are quoted as well.
pub(crate) fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 63
}

fn is_utc_offset(tz: &str) -> bool {
    let b = tz.as_bytes();
    b.len() == 6
        && matches!(b[0], b'+' | b'-')
        && b[3] == b':'
        && tz[1..3].parse::<u8>().is_ok_and(|h| h <= 14)
        && tz[4..6].parse::<u8>().is_ok_and(|m| m < 60)
        && b[1..3].iter().chain(&b[4..6]).all(u8::is_ascii_digit)
}

impl TableConfig {
    /// Problems with the values, each naming its key; `schemes` are the URL schemes the
    /// connector accepts.
    pub(crate) fn check(&self, schemes: &[&str]) -> Vec<String> {
        let mut problems = Vec::new();
        if !schemes
            .iter()
            .any(|s| self.url.0.starts_with(&format!("{s}://")))
        {
            problems.push(format!(
                "key `source.url`: must start with {}",
                schemes
                    .iter()
                    .map(|s| format!("`{s}://`"))
                    .collect::<Vec<_>>()
                    .join(" or ")
            ));
        }
        let mut names: Vec<(&str, &str)> = vec![
            ("source.table", &self.table),
            ("source.updated_at_column", &self.updated_at_column),
        ];
        if let Some(s) = &self.schema {
            names.push(("source.schema", s));
        }
        for (key, list) in [
            ("source.columns", &self.columns),
            ("source.key_columns", &self.key_columns),
        ] {
            if let Some(list) = list {
                if list.is_empty() {
                    problems.push(format!("key `{key}`: must name at least one column"));
                }
                names.extend(list.iter().map(|c| (key, c.as_str())));
            }
        }
        for (key, name) in names {
            if !is_identifier(name) {
                problems.push(format!(
                    "key `{key}`: `{name}` must be ASCII letters, digits and '_', not starting \
                     with a digit, at most 63 characters"
                ));
            }
        }
        if !is_utc_offset(&self.time_zone) {
            problems.push(format!(
                "key `source.time_zone`: `{}` must be a UTC offset such as `+08:00`",
                self.time_zone
            ));
        }
        if !(1..=2).contains(&self.max_connections) {
            problems.push("key `source.max_connections`: must be 1 or 2".to_owned());
        }
        if self.statement_timeout < Duration::from_secs(1) {
            problems.push("key `source.statement_timeout`: must be at least 1s".to_owned());
        }
        problems
    }
}

/// What a column holds, as far as the connector cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ColumnKind {
    /// Whole numbers.
    Integer,
    /// Exact decimals.
    Decimal,
    /// Text.
    Text,
    /// UUIDs (PostgreSQL).
    Uuid,
    /// Dates.
    Date,
    /// Date and time without a time zone (read in the configured `time_zone`).
    Timestamp,
    /// Date and time with a time zone (PostgreSQL `timestamptz`).
    TimestampTz,
    /// Anything else: read as the database renders it in JSON, never a cursor column.
    Other,
}

/// A column of the source table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Column {
    pub(crate) name: String,
    pub(crate) kind: ColumnKind,
}

/// The table as the catalogue describes it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Described {
    /// Columns in table order.
    pub(crate) columns: Vec<Column>,
    /// Primary-key columns in key order.
    pub(crate) primary_key: Vec<String>,
}

impl Described {
    /// From the catalogue's `(column, type name)` rows and primary-key columns; `kind` maps
    /// the dialect's type names.
    pub(crate) fn new(
        columns: Vec<(String, String)>,
        primary_key: Vec<String>,
        kind: fn(&str) -> ColumnKind,
    ) -> Self {
        Self {
            columns: columns
                .into_iter()
                .map(|(name, t)| Column {
                    kind: kind(&t),
                    name,
                })
                .collect(),
            primary_key,
        }
    }
}

/// A value bound to a query parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Bind {
    Text(String),
    Int(i64),
}

/// One row as the query returns it.
#[derive(Debug, Clone)]
pub(crate) struct RawRow {
    /// The selected columns as a JSON object, as the database renders it.
    pub(crate) body: String,
    /// The update time as text, to be cast back in the next query.
    pub(crate) updated_at: String,
    /// The update time in microseconds since 1970 (UTC for zoned times, as written for
    /// others).
    pub(crate) micros: i64,
    /// The key columns as text.
    pub(crate) key: Vec<Option<String>>,
}

/// Collects the parameters of one statement and names their placeholders.
#[derive(Debug, Default)]
pub(crate) struct Params {
    numbered: bool,
    pub(crate) binds: Vec<Bind>,
}

impl Params {
    /// Adds a parameter and returns its placeholder (`$n` or `?`).
    pub(crate) fn push(&mut self, bind: Bind) -> String {
        self.binds.push(bind);
        if self.numbered {
            format!("${}", self.binds.len())
        } else {
            "?".to_owned()
        }
    }
}

/// One SQL dialect and driver: everything the table connectors do differently per database.
/// Every identifier handed to these functions was checked by [`is_identifier`].
#[async_trait::async_trait]
pub(crate) trait TableDriver: Send + Sync + std::fmt::Debug {
    /// `$1, $2` (PostgreSQL) rather than `?`.
    const NUMBERED_PARAMS: bool;

    /// The identifier quoted.
    fn quote(&self, name: &str) -> String;

    /// The schema-qualified, quoted table.
    fn table_ref(&self, schema: Option<&str>, table: &str) -> String {
        match schema {
            Some(s) => format!("{}.{}", self.quote(s), self.quote(table)),
            None => self.quote(table),
        }
    }

    /// An expression for the selected columns of row `t` as JSON text.
    fn body_expr(&self, columns: &[Column]) -> String;

    /// An expression for column `t.<name>` as text that [`TableDriver::cast`] reads back.
    fn text_expr(&self, name: &str) -> String;

    /// An expression for timestamp column `t.<name>` in microseconds since 1970.
    fn micros_expr(&self, name: &str) -> String;

    /// The text parameter `placeholder` as a value comparable with a column of `kind`, or
    /// `None` when such a column cannot be a cursor column.
    fn cursor_param(&self, kind: ColumnKind, placeholder: &str) -> Option<String>;

    /// An expression for the latest update time to read: the source's now minus `lag`, in
    /// the column's type (`kind` is `Timestamp` or `TimestampTz`).
    fn upper_bound(&self, kind: ColumnKind, lag: Duration, params: &mut Params) -> String;

    /// Reads the table's columns and primary key; no columns when there is no such table.
    async fn describe(&self, schema: Option<&str>, table: &str) -> Result<Described, sqlx::Error>;

    /// Runs the batch query.
    async fn fetch(
        &self,
        sql: sqlx::SqlStr,
        binds: Vec<Bind>,
        keys: usize,
    ) -> Result<Vec<RawRow>, sqlx::Error>;
}

/// Whether the error is the source refusing for good (no such table or column, no
/// permission, bad credentials, a value it cannot cast: SQLSTATE classes 42, 28, 3D and 22)
/// rather than being away, restarting or busy (timeouts, lost connections), which is worth
/// waiting for. The one retry classification of both table connectors.
fn is_fatal(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Database(e) => e
            .code()
            .is_some_and(|c| ["42", "28", "3D", "22"].iter().any(|p| c.starts_with(p))),
        sqlx::Error::Configuration(_)
        | sqlx::Error::ColumnDecode { .. }
        | sqlx::Error::ColumnNotFound(_)
        | sqlx::Error::ColumnIndexOutOfBounds { .. }
        | sqlx::Error::Decode(_)
        | sqlx::Error::TypeNotFound { .. } => true,
        _ => false,
    }
}

/// Runs `sql` with `binds` and reads the rows of a batch (body, update time as text and in
/// microseconds, then the key columns as text), for either database.
pub(crate) async fn fetch_rows<'e, DB, E>(
    executor: E,
    sql: sqlx::SqlStr,
    binds: Vec<Bind>,
    keys: usize,
) -> Result<Vec<RawRow>, sqlx::Error>
where
    DB: sqlx::Database,
    E: sqlx::Executor<'e, Database = DB>,
    <DB as sqlx::Database>::Arguments: sqlx::IntoArguments<DB>,
    usize: sqlx::ColumnIndex<DB::Row>,
    for<'q> String: sqlx::Encode<'q, DB> + sqlx::Decode<'q, DB> + sqlx::Type<DB>,
    for<'q> i64: sqlx::Encode<'q, DB> + sqlx::Decode<'q, DB> + sqlx::Type<DB>,
{
    use sqlx::Row;
    let mut query = sqlx::query::<DB>(sql);
    for b in binds {
        query = match b {
            Bind::Text(s) => query.bind(s),
            Bind::Int(i) => query.bind(i),
        };
    }
    let rows = query.fetch_all(executor).await?;
    rows.iter()
        .map(|r| {
            Ok(RawRow {
                body: r.try_get(0)?,
                updated_at: r.try_get(1)?,
                micros: r.try_get(2)?,
                key: (3..3 + keys)
                    .map(|i| r.try_get::<Option<String>, _>(i))
                    .collect::<Result<_, _>>()?,
            })
        })
        .collect()
}

/// Reads a table's columns and primary key with the dialect's two catalogue queries, each
/// taking the schema (or NULL for the default) and the table name as parameters.
pub(crate) async fn describe_with<'e, DB, E>(
    executor: E,
    queries: [&'static str; 2],
    schema: Option<&str>,
    table: &str,
    kind: fn(&str) -> ColumnKind,
) -> Result<Described, sqlx::Error>
where
    DB: sqlx::Database,
    E: sqlx::Executor<'e, Database = DB> + Copy,
    <DB as sqlx::Database>::Arguments: sqlx::IntoArguments<DB>,
    usize: sqlx::ColumnIndex<DB::Row>,
    for<'q> String: sqlx::Encode<'q, DB> + sqlx::Decode<'q, DB> + sqlx::Type<DB>,
    for<'q> Option<String>: sqlx::Encode<'q, DB>,
{
    let [columns_sql, key_sql] = queries;
    let columns: Vec<(String, String)> = sqlx::query_as::<DB, _>(columns_sql)
        .bind(schema.map(str::to_owned))
        .bind(table.to_owned())
        .fetch_all(executor)
        .await?;
    let primary_key: Vec<String> = sqlx::query_scalar::<DB, _>(key_sql)
        .bind(schema.map(str::to_owned))
        .bind(table.to_owned())
        .fetch_all(executor)
        .await?;
    Ok(Described::new(columns, primary_key, kind))
}

/// The resume position: the last row handed out. Stored by the hub as the checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Cursor {
    /// Its update time as the source prints it.
    updated_at: String,
    /// Its key columns as text.
    key: Vec<String>,
    /// Rows handed out since the connector first started (for people).
    rows: u64,
}

/// The statement of a described table, without its cursor condition.
#[derive(Debug, Clone)]
struct Plan {
    select: String,
    updated_at: Column,
    keys: Vec<Column>,
    /// Selected timestamp columns, and whether each has a time zone.
    timestamps: HashMap<String, bool>,
    label: String,
}

/// A table connector over the driver `D`.
#[derive(Debug)]
pub(crate) struct TableSource<D: TableDriver> {
    driver: D,
    config: TableConfig,
    context: SourceContext,
    plan: Option<Plan>,
    cursor: Option<Cursor>,
}

impl<D: TableDriver> TableSource<D> {
    /// A source reading with `driver`, resuming after the checkpoint in `context`.
    pub(crate) fn new(
        driver: D,
        config: TableConfig,
        context: SourceContext,
    ) -> Result<Self, SourceError> {
        let cursor = context
            .checkpoint
            .clone()
            .map(serde_json::from_value::<Cursor>)
            .transpose()
            .map_err(|e| SourceError::Checkpoint(e.to_string()))?;
        Ok(Self {
            driver,
            config,
            context,
            plan: None,
            cursor,
        })
    }

    fn error(&self, e: sqlx::Error) -> SourceError {
        if is_fatal(&e) {
            SourceError::Config(format!("{}: {e}", self.config.table))
        } else {
            SourceError::Database(format!("{}: {e}", self.config.table))
        }
    }

    /// Reads the catalogue and settles the statement.
    async fn plan(&self) -> Result<Plan, SourceError> {
        let c = &self.config;
        let described = self
            .driver
            .describe(c.schema.as_deref(), &c.table)
            .await
            .map_err(|e| self.error(e))?;
        plan(&self.driver, c, described).map_err(SourceError::Config)
    }
}

/// Checks the configuration against the described table and builds the statement's start.
fn plan<D: TableDriver>(
    driver: &D,
    config: &TableConfig,
    described: Described,
) -> Result<Plan, String> {
    let label = match &config.schema {
        Some(s) => format!("{s}.{}", config.table),
        None => config.table.clone(),
    };
    if described.columns.is_empty() {
        return Err(format!("table `{label}` not found or has no columns"));
    }
    let find = |name: &str| {
        described
            .columns
            .iter()
            .find(|c| c.name == name)
            .cloned()
            .ok_or_else(|| format!("table `{label}` has no column `{name}`"))
    };
    let updated_at = find(&config.updated_at_column)?;
    if !matches!(
        updated_at.kind,
        ColumnKind::Timestamp | ColumnKind::TimestampTz
    ) {
        return Err(format!(
            "column `{}` of `{label}` must be a timestamp to be the update-time column",
            updated_at.name
        ));
    }
    let key_names = match &config.key_columns {
        Some(k) => k.clone(),
        None if described.primary_key.is_empty() => {
            return Err(format!(
                "table `{label}` has no primary key: set `source.key_columns`"
            ))
        }
        None => described.primary_key.clone(),
    };
    let mut keys = Vec::with_capacity(key_names.len());
    for name in &key_names {
        let column = find(name)?;
        if driver.cursor_param(column.kind, "").is_none() {
            return Err(format!(
                "column `{name}` of `{label}` has a type that cannot be a key column"
            ));
        }
        keys.push(column);
    }
    let columns: Vec<Column> = match &config.columns {
        Some(names) => names.iter().map(|n| find(n)).collect::<Result<_, _>>()?,
        None => described.columns.clone(),
    };
    // Names taken from the catalogue (every column by default, the primary key) go into the
    // statement as the configured ones do: they must be identifiers too.
    if let Some(c) = columns
        .iter()
        .chain(&keys)
        .find(|c| !is_identifier(&c.name))
    {
        return Err(format!(
            "column `{}` of `{label}` cannot be read: column names must be ASCII letters, \
             digits and '_', not starting with a digit, at most 63 characters (name the \
             columns to read in `source.columns`)",
            c.name
        ));
    }
    let timestamps = columns
        .iter()
        .filter_map(|c| match c.kind {
            ColumnKind::Timestamp => Some((c.name.clone(), false)),
            ColumnKind::TimestampTz => Some((c.name.clone(), true)),
            _ => None,
        })
        .collect();
    let mut select = format!(
        "SELECT {}, {}, {}",
        driver.body_expr(&columns),
        driver.text_expr(&updated_at.name),
        driver.micros_expr(&updated_at.name)
    );
    for k in &keys {
        select.push_str(", ");
        select.push_str(&driver.text_expr(&k.name));
    }
    select.push_str(&format!(
        " FROM {} AS t",
        driver.table_ref(config.schema.as_deref(), &config.table)
    ));
    Ok(Plan {
        select,
        updated_at,
        keys,
        timestamps,
        label,
    })
}

/// The batch statement after `cursor`, with its parameters.
fn batch_query<D: TableDriver>(
    driver: &D,
    plan: &Plan,
    cursor: Option<&Cursor>,
    lag: Duration,
    limit: usize,
) -> (String, Vec<Bind>) {
    let mut params = Params {
        numbered: D::NUMBERED_PARAMS,
        binds: Vec::new(),
    };
    let ts = format!("t.{}", driver.quote(&plan.updated_at.name));
    let bound = driver.upper_bound(plan.updated_at.kind, lag, &mut params);
    let mut sql = format!("{} WHERE {ts} <= {bound}", plan.select);
    let columns: Vec<&Column> = std::iter::once(&plan.updated_at)
        .chain(&plan.keys)
        .collect();
    if let Some(cursor) = cursor {
        let values: Vec<&str> = std::iter::once(cursor.updated_at.as_str())
            .chain(cursor.key.iter().map(String::as_str))
            .collect();
        let mut param = |i: usize| {
            let p = params.push(Bind::Text(values[i].to_owned()));
            driver.cursor_param(columns[i].kind, &p).unwrap_or(p)
        };
        // a >= x AND (a > x OR (a = x AND (b > y OR (b = y AND c > z))))
        let first = param(0);
        let mut condition = String::new();
        for (i, column) in columns.iter().enumerate() {
            let col = format!("t.{}", driver.quote(&column.name));
            let value = param(i);
            if i + 1 == columns.len() {
                condition.push_str(&format!("{col} > {value}"));
            } else {
                let again = param(i);
                condition.push_str(&format!("({col} > {value} OR ({col} = {again} AND "));
            }
        }
        condition.push_str(&"))".repeat(columns.len() - 1));
        sql.push_str(&format!(" AND {ts} >= {first} AND ({condition})"));
    }
    let order: Vec<String> = columns
        .iter()
        .map(|c| format!("t.{}", driver.quote(&c.name)))
        .collect();
    let limit = params.push(Bind::Int(i64::try_from(limit).unwrap_or(i64::MAX)));
    sql.push_str(&format!(" ORDER BY {} LIMIT {limit}", order.join(", ")));
    (sql, params.binds)
}

/// The longest row key named as it is in a stream; a longer one is named by its hash.
const MAX_STREAM_KEY_BYTES: usize = 200;

/// Microseconds from 0001-01-01 to 1970-01-01: added so that sequence numbers are never
/// negative.
const YEAR_ONE_TO_1970_MICROS: i64 = 62_135_596_800_000_000;

/// A row as a record: NULL columns are left out (as an empty CSV cell is), timestamps become
/// RFC 3339 text, and text or numbers are typed by the dataset's schema where it says
/// `integer`, `number`, `boolean` or `string`.
fn row_record(
    row: RawRow,
    plan: &Plan,
    context: &SourceContext,
    time_zone: &str,
) -> Result<SourceRecord, String> {
    let key: Vec<String> = row
        .key
        .iter()
        .zip(&plan.keys)
        .map(|(v, c)| {
            v.clone()
                .ok_or_else(|| format!("key column `{}` is NULL in a row", c.name))
        })
        .collect::<Result<_, _>>()?;
    let key_text = match key.as_slice() {
        [one] => one.clone(),
        many => serde_json::to_string(many).unwrap_or_default(),
    };
    // The row's stream names it by its key, where the repository keeps it (sink marks,
    // rejected records): a key that could not be stored there (U+0000, or too long for an
    // index entry) is named by its SHA-256 instead.
    let stream_key = if key_text.contains('\0') || key_text.len() > MAX_STREAM_KEY_BYTES {
        let digest = ring::digest::digest(&ring::digest::SHA256, key_text.as_bytes());
        let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        format!("#sha256:{hex}")
    } else {
        key_text.clone()
    };
    // Parsed as a record's text is: a DECIMAL a double does not keep is refused, not rounded.
    let body = match crate::json::json_object(&row.body) {
        Ok(map) => crate::Body::Fields(typed_fields(map, plan, context, time_zone)),
        Err(failure) if failure.rule == "number_precision" => crate::Body::Unreadable(failure),
        Err(_) => crate::Body::Unreadable(crate::ReadFailure {
            pointer: String::new(),
            rule: "json_syntax",
            message: "the database did not render the row as a JSON object".to_owned(),
        }),
    };
    let seq = u64::try_from(row.micros.saturating_add(YEAR_ONE_TO_1970_MICROS)).unwrap_or(0);
    let mut raw = row.body.into_bytes();
    raw.truncate(RAW_KEEP_LIMIT);
    Ok(SourceRecord {
        origin: format!("{} row {key_text} updated {}", plan.label, row.updated_at),
        seq,
        stream: Some(format!("table:{}:{stream_key}", context.name)),
        body,
        // The row as the database rendered it, before the fields were typed.
        raw,
    })
}

fn typed_fields(
    map: Map<String, Value>,
    plan: &Plan,
    context: &SourceContext,
    time_zone: &str,
) -> Map<String, Value> {
    map.into_iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(name, value)| {
            let value = match (plan.timestamps.get(&name), value) {
                (Some(zoned), Value::String(s)) => {
                    Value::String(rfc3339(&s, (!zoned).then_some(time_zone)))
                }
                (_, value) => schema_typed(value, context.field_types.get(&name)),
            };
            (name, value)
        })
        .collect()
}

/// `2024-06-03 09:14:27.500000` → `2024-06-03T09:14:27.5` followed by `offset` when given.
fn rfc3339(text: &str, offset: Option<&str>) -> String {
    let mut s = text.replacen(' ', "T", 1);
    if let Some(dot) = s.find('.') {
        // Trailing zeros of the fraction, up to a zone suffix.
        let end = s[dot..]
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .map_or(s.len(), |i| dot + i);
        let fraction = s[dot + 1..end].trim_end_matches('0').to_owned();
        let replacement = if fraction.is_empty() {
            String::new()
        } else {
            format!(".{fraction}")
        };
        s.replace_range(dot..end, &replacement);
    }
    if let Some(offset) = offset {
        s.push_str(offset);
    }
    s
}

fn schema_typed(value: Value, json_type: Option<&String>) -> Value {
    match (json_type.map(String::as_str), value) {
        (Some(t @ ("integer" | "number" | "boolean" | "array" | "object")), Value::String(s)) => {
            typed_value(&s, Some(t))
        }
        (Some("boolean"), Value::Number(n)) if n.as_u64().is_some_and(|n| n <= 1) => {
            Value::Bool(n.as_u64() == Some(1))
        }
        (Some("string"), Value::Number(n)) => Value::String(n.to_string()),
        (_, value) => value,
    }
}

#[async_trait::async_trait]
impl<D: TableDriver> Source for TableSource<D> {
    async fn next_batch(&mut self, max_records: usize) -> Result<Option<Batch>, SourceError> {
        let plan = match &self.plan {
            Some(p) => p.clone(),
            None => {
                let p = self.plan().await?;
                if let Some(c) = &self.cursor {
                    if c.key.len() != p.keys.len() {
                        return Err(SourceError::Checkpoint(format!(
                            "the stored cursor has {} key values, the key columns are {}",
                            c.key.len(),
                            p.keys.len()
                        )));
                    }
                }
                self.plan = Some(p.clone());
                p
            }
        };
        let (sql, binds) = batch_query(
            &self.driver,
            &plan,
            self.cursor.as_ref(),
            self.config.lag,
            max_records,
        );
        // Safe: quoted names that plan() checked with is_identifier, fixed SQL and
        // placeholders; every value (cursor, lag, limit) is a bound parameter.
        let sql = sqlx::SqlSafeStr::into_sql_str(sqlx::AssertSqlSafe(sql));
        let rows = self
            .driver
            .fetch(sql, binds, plan.keys.len())
            .await
            .map_err(|e| self.error(e))?;
        let Some(last) = rows.last() else {
            return Ok(None);
        };
        let mut cursor = Cursor {
            updated_at: last.updated_at.clone(),
            key: Vec::new(),
            rows: self.cursor.as_ref().map_or(0, |c| c.rows) + rows.len() as u64,
        };
        for v in &last.key {
            cursor.key.push(v.clone().unwrap_or_default());
        }
        let mut records = Vec::with_capacity(rows.len());
        for row in rows {
            records.push(
                row_record(row, &plan, &self.context, &self.config.time_zone)
                    .map_err(|e| SourceError::Config(format!("{}: {e}", plan.label)))?,
            );
        }
        let checkpoint = serde_json::to_value(&cursor).unwrap_or_default();
        self.cursor = Some(cursor);
        Ok(Some(Batch {
            stream: format!("table:{}", self.context.name),
            records,
            checkpoint,
        }))
    }

    async fn committed(&mut self, _checkpoint: &Checkpoint) -> Result<(), SourceError> {
        Ok(())
    }

    fn finished(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::postgres_table::PostgresDriver;

    fn config(text: &str) -> TableConfig {
        toml::from_str(&format!(
            "url = \"postgres://u:secret@h/db\"\ntable = \"business\"\n{text}"
        ))
        .unwrap()
    }

    fn described() -> Described {
        let col = |name: &str, kind| Column {
            name: name.to_owned(),
            kind,
        };
        Described {
            columns: vec![
                col("id", ColumnKind::Integer),
                col("credit_code", ColumnKind::Text),
                col("capital", ColumnKind::Decimal),
                col("established_on", ColumnKind::Date),
                col("updated_at", ColumnKind::TimestampTz),
                col("checked_at", ColumnKind::Timestamp),
            ],
            primary_key: vec!["id".to_owned()],
        }
    }

    fn context() -> SourceContext {
        let mut field_types = crate::FieldTypes::new();
        field_types.insert("capital".to_owned(), "number".to_owned());
        field_types.insert("division_code".to_owned(), "string".to_owned());
        field_types.insert("active".to_owned(), "boolean".to_owned());
        SourceContext {
            name: "mr-db".to_owned(),
            field_types,
            max_record_bytes: 1 << 20,
            checkpoint: None,
        }
    }

    #[test]
    fn passwords_are_redacted_and_identifiers_checked() {
        let c = config("");
        assert_eq!(format!("{:?}", c.url), "postgres://u:REDACTED@h/db");
        assert!(c.check(&["postgres", "postgresql"]).is_empty());
        let bad = config(
            "columns = []\nkey_columns = [\"id; drop\"]\ntime_zone = \"+8\"\nmax_connections = 5",
        );
        let problems = bad.check(&["mysql"]).join("\n");
        for key in [
            "source.url",
            "source.columns",
            "source.key_columns",
            "source.time_zone",
            "source.max_connections",
        ] {
            assert!(problems.contains(key), "{key} in {problems}");
        }
        assert!(is_identifier("_a1") && !is_identifier("1a") && !is_identifier("a\"b"));
        assert!(is_utc_offset("-05:30") && !is_utc_offset("+15:00") && !is_utc_offset("08:00"));
    }

    #[test]
    fn the_plan_checks_columns_against_the_catalogue() {
        let driver = PostgresDriver::for_tests();
        let p = plan(&driver, &config(""), described()).unwrap();
        assert_eq!(p.keys[0].name, "id");
        assert!(p.select.contains("FROM \"business\" AS t"), "{}", p.select);
        let err = plan(
            &driver,
            &config("updated_at_column = \"established_on\""),
            described(),
        )
        .unwrap_err();
        assert!(err.contains("must be a timestamp"), "{err}");
        let err = plan(&driver, &config("columns = [\"nope\"]"), described()).unwrap_err();
        assert!(err.contains("no column `nope`"), "{err}");
        let err = plan(&driver, &config(""), Described::default()).unwrap_err();
        assert!(err.contains("not found"), "{err}");
        // A name from the catalogue is checked like a configured one.
        let mut odd = described();
        odd.columns.push(Column {
            name: "note\" || pg_sleep(9) || \"".to_owned(),
            kind: ColumnKind::Text,
        });
        let err = plan(&driver, &config(""), odd.clone()).unwrap_err();
        assert!(err.contains("cannot be read"), "{err}");
        assert!(plan(&driver, &config("columns = [\"id\"]"), odd.clone()).is_ok());
        odd.primary_key = vec![odd.columns.last().unwrap().name.clone()];
        let err = plan(&driver, &config("columns = [\"id\"]"), odd).unwrap_err();
        assert!(err.contains("cannot be read"), "{err}");
    }

    #[test]
    fn the_query_reads_after_the_cursor_in_cursor_order() {
        let driver = PostgresDriver::for_tests();
        let p = plan(
            &driver,
            &config("key_columns = [\"credit_code\", \"id\"]"),
            described(),
        )
        .unwrap();
        let (sql, binds) = batch_query(&driver, &p, None, Duration::from_secs(30), 100);
        assert!(!sql.contains("CAST($2"), "{sql}");
        assert!(
            sql.ends_with("ORDER BY t.\"updated_at\", t.\"credit_code\", t.\"id\" LIMIT $2"),
            "{sql}"
        );
        assert_eq!(binds.last(), Some(&Bind::Int(100)));
        let cursor = Cursor {
            updated_at: "2024-06-03 01:14:27+00".to_owned(),
            key: vec!["91X".to_owned(), "7".to_owned()],
            rows: 3,
        };
        let (sql, binds) = batch_query(&driver, &p, Some(&cursor), Duration::ZERO, 10);
        assert!(
            sql.contains(
                "t.\"updated_at\" >= CAST($2 AS timestamptz) AND ((t.\"updated_at\" > CAST($3 AS timestamptz) \
                 OR (t.\"updated_at\" = CAST($4 AS timestamptz) AND (t.\"credit_code\" > CAST($5 AS text) \
                 OR (t.\"credit_code\" = CAST($6 AS text) AND t.\"id\" > CAST($7 AS bigint))))))"
            ),
            "{sql}"
        );
        assert_eq!(binds.len(), 8);
        assert_eq!(binds[6], Bind::Text("7".to_owned()));
    }

    #[test]
    fn rows_become_typed_records_with_their_own_stream() {
        let driver = PostgresDriver::for_tests();
        let p = plan(&driver, &config(""), described()).unwrap();
        let row = RawRow {
            body: r#"{"id": 7, "credit_code": "91X", "capital": "12.50", "established_on": "2019-03-22",
                      "updated_at": "2024-06-03T01:14:27.120000+00:00", "checked_at": "2024-06-03 09:00:00",
                      "division_code": 211103, "active": 1, "note": null}"#
                .to_owned(),
            updated_at: "2024-06-03 01:14:27.12+00".to_owned(),
            micros: 1_717_377_267_120_000,
            key: vec![Some("7".to_owned())],
        };
        let r = row_record(row.clone(), &p, &context(), "+08:00").unwrap();
        let body = r.fields().unwrap();
        assert_eq!(body["capital"], serde_json::json!(12.5));
        assert_eq!(body["established_on"], "2019-03-22");
        assert_eq!(body["updated_at"], "2024-06-03T01:14:27.12+00:00");
        assert_eq!(body["checked_at"], "2024-06-03T09:00:00+08:00");
        assert_eq!(body["division_code"], "211103");
        assert_eq!(body["active"], true);
        assert!(!body.contains_key("note"), "NULL is left out");
        assert_eq!(r.stream.as_deref(), Some("table:mr-db:7"));
        assert_eq!(
            r.seq,
            1_717_377_267_120_000 + YEAR_ONE_TO_1970_MICROS as u64
        );
        // A later version of the same row has a higher number in the same stream.
        let newer = RawRow {
            micros: row.micros + 1,
            ..row.clone()
        };
        let r2 = row_record(newer, &p, &context(), "+08:00").unwrap();
        assert_eq!(r2.stream, r.stream);
        assert!(r2.seq > r.seq);
        let null_key = RawRow {
            key: vec![None],
            ..row
        };
        assert!(row_record(null_key, &p, &context(), "+08:00").is_err());
    }

    #[test]
    fn a_row_key_the_repository_cannot_keep_is_named_by_its_hash() {
        let driver = PostgresDriver::for_tests();
        let p = plan(&driver, &config(""), described()).unwrap();
        let row = |key: &str| RawRow {
            body: r#"{"id": 7, "credit_code": "91X"}"#.to_owned(),
            updated_at: "2024-06-03 01:14:27+00".to_owned(),
            micros: 1_717_377_267_000_000,
            key: vec![Some(key.to_owned())],
        };
        for key in ["a\0b".to_owned(), "k".repeat(MAX_STREAM_KEY_BYTES + 1)] {
            let stream = row_record(row(&key), &p, &context(), "+08:00")
                .unwrap()
                .stream
                .unwrap();
            assert!(stream.starts_with("table:mr-db:#sha256:"), "{stream}");
            assert_eq!(stream.len(), "table:mr-db:#sha256:".len() + 64);
            assert!(!stream.contains('\0'));
        }
        // Two such keys stay apart; a plain key is named as it is.
        let a = row_record(row("a\0b"), &p, &context(), "+08:00").unwrap();
        let b = row_record(row("a\0c"), &p, &context(), "+08:00").unwrap();
        assert_ne!(a.stream, b.stream);
        let plain = row_record(
            row(&"k".repeat(MAX_STREAM_KEY_BYTES)),
            &p,
            &context(),
            "+08:00",
        );
        assert_eq!(
            plain.unwrap().stream.unwrap(),
            format!("table:mr-db:{}", "k".repeat(MAX_STREAM_KEY_BYTES))
        );
    }

    #[test]
    fn a_source_that_is_away_is_retried_a_misfit_is_not() {
        assert!(!is_fatal(&sqlx::Error::Io(std::io::Error::other("reset"))));
        assert!(!is_fatal(&sqlx::Error::PoolTimedOut));
        assert!(is_fatal(&sqlx::Error::Configuration("bad url".into())));
        assert!(is_fatal(&sqlx::Error::ColumnNotFound("x".into())));
    }

    #[test]
    fn timestamps_become_rfc3339() {
        assert_eq!(
            rfc3339("2024-06-03 09:14:27.000000", Some("+08:00")),
            "2024-06-03T09:14:27+08:00"
        );
        assert_eq!(
            rfc3339("2024-06-03 09:14:27.500000", Some("-05:00")),
            "2024-06-03T09:14:27.5-05:00"
        );
        assert_eq!(
            rfc3339("2024-06-03T09:14:27.250+00:00", None),
            "2024-06-03T09:14:27.25+00:00"
        );
    }
}
