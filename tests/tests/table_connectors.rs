//! The PostgreSQL-table and MariaDB-table connectors end to end, against real source
//! databases, the broker and the repository: realistic rows with rejects, incremental
//! inserts and updates (an updated row becomes version 2), a connector killed with SIGKILL
//! in the middle of a large table, and a source database that goes away and comes back. Each
//! ends with an exact reconciliation of the repository against the source table.

#![allow(clippy::unwrap_used)] // a test that cannot unwrap should fail loudly

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

use bohai_hub::config::Config;
use bohai_hub::pipeline::stats::{dataset_stats, DatasetStats};
use bohai_schemas::Registry;
use bohai_tests::proxy::TcpProxy;
use bohai_tests::{
    bohai, command_ok, connector_position, dead_letters, eventually, fresh_database,
    fresh_mysql_database, kill, mysql_url, prepared_config, repository_rows, spawn_sink,
    write_config,
};
use serde_json::{Map, Value};
use sqlx::{MySqlPool, PgPool};

const DATASET: &str = "business-registrations";

/// The dataset's fields, each a column of the source table.
const FIELDS: [&str; 14] = [
    "credit_code",
    "entity_name",
    "entity_type",
    "legal_rep_name",
    "legal_rep_id_number",
    "registered_capital_yuan",
    "established_on",
    "business_scope",
    "address",
    "division_code",
    "registration_authority",
    "status",
    "contact_mobile",
    "updated_at",
];

/// A department's source database.
enum SourceDb {
    Postgres { pool: PgPool, url: String },
    Mysql { pool: MySqlPool, url: String },
}

impl SourceDb {
    /// A fresh database with an empty `business` table: a surrogate key `id`, a column per
    /// field and an internal column the connector is not to read.
    async fn postgres() -> Self {
        let url = fresh_database().await.unwrap();
        let pool = PgPool::connect(&url).await.unwrap();
        // The database's name, without the URL's query (`?sslmode=disable` on the stack).
        let name = url.rsplit('/').next().unwrap();
        let name = name.split_once('?').map_or(name, |(n, _)| n).to_owned();
        assert!(
            name.starts_with("bohai_test_")
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'),
            "{name}"
        );
        // Our own name (prefix plus hex, checked above): safe in the statement. Times print
        // in UTC.
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "ALTER DATABASE {name} SET timezone TO 'UTC'"
        )))
        .execute(&pool)
        .await
        .unwrap();
        sqlx::query(
            "CREATE TABLE business (id bigserial PRIMARY KEY, credit_code text, entity_name text,
               entity_type text, legal_rep_name text, legal_rep_id_number text,
               registered_capital_yuan numeric, established_on date, business_scope text,
               address text, division_code text, registration_authority text, status text,
               contact_mobile text, updated_at timestamptz NOT NULL, internal_note text)",
        )
        .execute(&pool)
        .await
        .unwrap();
        sqlx::query("CREATE INDEX business_cursor ON business (updated_at, id)")
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
        // New sessions see the database's time zone.
        let pool = PgPool::connect(&url).await.unwrap();
        SourceDb::Postgres { pool, url }
    }

    async fn mysql() -> Self {
        let url = fresh_mysql_database().await.unwrap();
        let pool = MySqlPool::connect(&url).await.unwrap();
        sqlx::query(
            "CREATE TABLE business (id BIGINT AUTO_INCREMENT PRIMARY KEY,
               credit_code VARCHAR(32), entity_name VARCHAR(200), entity_type VARCHAR(40),
               legal_rep_name VARCHAR(60), legal_rep_id_number VARCHAR(32),
               registered_capital_yuan DECIMAL(20,2), established_on DATE, business_scope TEXT,
               address VARCHAR(400), division_code VARCHAR(12), registration_authority VARCHAR(120),
               status VARCHAR(12), contact_mobile VARCHAR(20), updated_at DATETIME(6) NOT NULL,
               internal_note TEXT, KEY business_cursor (updated_at, id))",
        )
        .execute(&pool)
        .await
        .unwrap();
        SourceDb::Mysql { pool, url }
    }

    fn kind(&self) -> &'static str {
        match self {
            SourceDb::Postgres { .. } => "postgres-table",
            SourceDb::Mysql { .. } => "mysql-table",
        }
    }

    fn url(&self) -> &str {
        match self {
            SourceDb::Postgres { url, .. } | SourceDb::Mysql { url, .. } => url,
        }
    }

    /// `updated_at` as the connector writes it: PostgreSQL `timestamptz` in the database's
    /// UTC, MariaDB `DATETIME` in the connector's default `+08:00`.
    fn time(&self, day: u32, second: u32) -> String {
        let offset = match self {
            SourceDb::Postgres { .. } => "+00:00",
            SourceDb::Mysql { .. } => "+08:00",
        };
        format!(
            "2024-01-{day:02}T{:02}:{:02}:{:02}{offset}",
            second / 3600,
            second / 60 % 60,
            second % 60
        )
    }

    /// Inserts the records (in order, so ids follow), a transaction per thousand.
    async fn insert(&self, records: &[Map<String, Value>]) {
        let mysql = matches!(self, SourceDb::Mysql { .. });
        let values: Vec<Vec<Option<String>>> = records
            .iter()
            .map(|r| {
                FIELDS
                    .iter()
                    .map(|&f| match r.get(f) {
                        None | Some(Value::Null) => None,
                        // DATETIME holds the wall-clock time without its offset.
                        Some(Value::String(s)) if f == "updated_at" && mysql => {
                            Some(s[..19].replace('T', " "))
                        }
                        Some(Value::String(s)) => Some(s.clone()),
                        Some(v) => Some(v.to_string()),
                    })
                    .collect()
            })
            .collect();
        let placeholders: Vec<String> = FIELDS
            .iter()
            .enumerate()
            .map(|(i, f)| match (mysql, *f) {
                (true, _) => "?".to_owned(),
                (false, "registered_capital_yuan") => format!("${}::numeric", i + 1),
                (false, "established_on") => format!("${}::date", i + 1),
                (false, "updated_at") => format!("${}::timestamptz", i + 1),
                (false, _) => format!("${}", i + 1),
            })
            .collect();
        // Safe: the constant FIELDS and numbered placeholders; every value is bound.
        let sql = sqlx::SqlSafeStr::into_sql_str(sqlx::AssertSqlSafe(format!(
            "INSERT INTO business ({}, internal_note) VALUES ({}, 'not for sharing')",
            FIELDS.join(", "),
            placeholders.join(", ")
        )));
        match self {
            SourceDb::Postgres { pool, .. } => insert_rows(pool, sql, values).await,
            SourceDb::Mysql { pool, .. } => insert_rows(pool, sql, values).await,
        }
    }

    /// Renames the entity of the row `id` (1-based, in insertion order) at `updated_at`.
    async fn rename(&self, id: i64, name: &str, updated_at: &str) {
        match self {
            SourceDb::Postgres { pool, .. } => {
                sqlx::query(
                    "UPDATE business SET entity_name = $1, updated_at = $2::timestamptz WHERE id = $3",
                )
                .bind(name)
                .bind(updated_at)
                .bind(id)
                .execute(pool)
                .await
                .unwrap();
            }
            SourceDb::Mysql { pool, .. } => {
                sqlx::query("UPDATE business SET entity_name = ?, updated_at = ? WHERE id = ?")
                    .bind(name)
                    .bind(updated_at[..19].replace('T', " "))
                    .bind(id)
                    .execute(pool)
                    .await
                    .unwrap();
            }
        }
    }
}

impl SourceDb {
    /// Stamps row `id` with the source's clock now, in the zone the connector reads it in.
    async fn touch_now(&self, id: i64) {
        match self {
            SourceDb::Postgres { pool, .. } => {
                sqlx::query("UPDATE business SET updated_at = now() WHERE id = $1")
                    .bind(id)
                    .execute(pool)
                    .await
                    .unwrap();
            }
            SourceDb::Mysql { pool, .. } => {
                sqlx::query(
                    "UPDATE business SET updated_at = CONVERT_TZ(UTC_TIMESTAMP(6), '+00:00', '+08:00')
                     WHERE id = ?",
                )
                .bind(id)
                .execute(pool)
                .await
                .unwrap();
            }
        }
    }
}

/// Runs `sql` once per row of text values, a transaction per thousand rows.
async fn insert_rows<DB>(pool: &sqlx::Pool<DB>, sql: sqlx::SqlStr, rows: Vec<Vec<Option<String>>>)
where
    DB: sqlx::Database,
    <DB as sqlx::Database>::Arguments: sqlx::IntoArguments<DB>,
    for<'c> &'c mut <DB as sqlx::Database>::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> Option<String>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    for chunk in rows.chunks(1000) {
        let mut tx = pool.begin().await.unwrap();
        for row in chunk {
            let mut q = sqlx::query::<DB>(sql.clone());
            for v in row {
                q = q.bind(v.clone());
            }
            q.execute(&mut *tx).await.unwrap();
        }
        tx.commit().await.unwrap();
    }
}

/// What the source table holds, and what the repository must hold for it.
#[derive(Default)]
struct Expected {
    /// Rows in insertion order (row `id` is index + 1), with their current values.
    rows: Vec<Map<String, Value>>,
    /// Versions each row had while the connector was reading.
    versions: Vec<i32>,
}

impl Expected {
    /// Generated records with fresh credit codes, `updated_at` set by position (three rows
    /// share each second, as rows written by one transaction do).
    fn generate(
        &mut self,
        config_file: &Path,
        src: &SourceDb,
        n: u64,
        seed: u64,
        day: u32,
        dir: &Path,
    ) -> Vec<Map<String, Value>> {
        let out = dir.join(format!("gen-{seed}.jsonl"));
        let status = bohai(config_file)
            .args(["gen", DATASET, &n.to_string(), "--json", "--seed"])
            .arg(seed.to_string())
            .args(["--invalid-ratio", "0.1", "-o"])
            .arg(&out)
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success());
        let mut seen: std::collections::HashSet<String> = self
            .rows
            .iter()
            .filter_map(|r| {
                r.get("credit_code")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            })
            .collect();
        let mut fresh = Vec::new();
        for line in std::fs::read_to_string(&out).unwrap().lines() {
            let Value::Object(mut r) = serde_json::from_str(line).unwrap() else {
                panic!("gen writes objects")
            };
            if let Some(code) = r.get("credit_code").and_then(Value::as_str) {
                if !seen.insert(code.to_owned()) {
                    continue;
                }
            }
            let second = u32::try_from(fresh.len() / 3).unwrap();
            r.insert("updated_at".into(), Value::String(src.time(day, second)));
            fresh.push(r);
        }
        self.rows.extend(fresh.iter().cloned());
        self.versions.extend(std::iter::repeat_n(1, fresh.len()));
        fresh
    }

    /// The rows valid for the dataset, by credit code, with their versions.
    fn repository(&self, registry: &Registry) -> (HashMap<String, (Value, i32)>, usize) {
        let ds = registry.dataset(DATASET).unwrap();
        let mut valid = HashMap::new();
        let mut invalid = 0;
        for (row, versions) in self.rows.iter().zip(&self.versions) {
            let value = Value::Object(row.clone());
            if ds.validator.validate(&value).is_empty() {
                let pk = row["credit_code"].as_str().unwrap().to_owned();
                valid.insert(pk, (value, *versions));
            } else {
                invalid += 1;
            }
        }
        (valid, invalid)
    }

    /// Indexes (0-based) of valid rows among the first `limit`.
    fn valid_among_first(&self, registry: &Registry, limit: usize, take: usize) -> Vec<usize> {
        let ds = registry.dataset(DATASET).unwrap();
        (0..limit.min(self.rows.len()))
            .filter(|&i| {
                ds.validator
                    .validate(&Value::Object(self.rows[i].clone()))
                    .is_empty()
            })
            .take(take)
            .collect()
    }

    /// Renames row `i` at the source at `updated_at`: a new version.
    async fn rename(&mut self, src: &SourceDb, i: usize, updated_at: String) {
        let name = format!("{}（变更）", self.rows[i]["entity_name"].as_str().unwrap());
        src.rename(i64::try_from(i + 1).unwrap(), &name, &updated_at)
            .await;
        self.rows[i].insert("entity_name".into(), Value::String(name));
        self.rows[i].insert("updated_at".into(), Value::String(updated_at));
        self.versions[i] += 1;
    }
}

/// Numbers compare by value (`5000000.0` and `5000000.00` are the same amount).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

async fn assert_repository_matches(db: &PgPool, expected: &HashMap<String, (Value, i32)>) {
    let rows = repository_rows(db, DATASET).await;
    assert_eq!(rows.len(), expected.len(), "rows in the repository");
    for (pk, data, version) in rows {
        let (want, versions) = expected
            .get(&pk)
            .unwrap_or_else(|| panic!("unexpected key {pk}"));
        assert!(same(&data, want), "record {pk}: {data} != {want}");
        assert_eq!(version, *versions, "versions of {pk}");
    }
}

async fn stats(db: &PgPool) -> DatasetStats {
    dataset_stats(db, Some(DATASET)).await.unwrap().remove(0)
}

async fn caught_up(db: &PgPool, read: usize) -> DatasetStats {
    let read = i64::try_from(read).unwrap();
    eventually(Duration::from_secs(180), "the sink to catch up", || async {
        let s = stats(db).await;
        (s.read == read && s.pending == 0).then_some(s)
    })
    .await
}

/// `bohai connect run --once`: reads what there is now; returns (read, rejected).
fn run_once(config_file: &Path, connector: &Path) -> (usize, usize) {
    let stdout = command_ok(
        bohai(config_file)
            .args(["connect", "run", "--once", "--json"])
            .arg(connector),
    );
    let summary: Value = serde_json::from_slice(&stdout).unwrap();
    let count = |key: &str| usize::try_from(summary[key].as_u64().unwrap()).unwrap();
    (count("read"), count("rejected"))
}

/// Rows the connector has committed, from its stored cursor.
async fn checkpoint_rows(db: &PgPool, connector: &str) -> u64 {
    connector_position(db, connector)
        .await
        .and_then(|p| p["rows"].as_u64())
        .unwrap_or(0)
}

/// Every reject is in `rejected_records` under its row's stream, and on the dead-letter topic
/// with its reasons.
async fn assert_rejects(config: &Config, db: &PgPool, connector: &str, invalid: usize) {
    let streams: Vec<String> =
        sqlx::query_scalar("SELECT stream FROM rejected_records WHERE dataset = $1")
            .bind(DATASET)
            .fetch_all(db)
            .await
            .unwrap();
    assert_eq!(streams.len(), invalid, "rejected rows kept");
    let prefix = format!("table:{connector}:");
    assert!(
        streams.iter().all(|s| s.starts_with(&prefix)),
        "{streams:?}"
    );
    for (payload, reasons) in dead_letters(&config.kafka, invalid).await {
        assert!(!reasons.as_array().unwrap().is_empty());
        let payload: Value = serde_json::from_slice(&payload).unwrap();
        assert!(
            payload.get("internal_note").is_none(),
            "only the configured columns"
        );
    }
}

/// One test's hub configuration (fresh database and topics), its files, and what the source
/// table holds.
struct Fixture {
    config: Config,
    dir: tempfile::TempDir,
    config_file: PathBuf,
    registry: Registry,
    expected: Expected,
    db: PgPool,
}

impl Fixture {
    async fn new() -> Self {
        let config = prepared_config().await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let config_file = write_config(&config, dir.path()).unwrap();
        let registry = Registry::load(&config.registry.dir).unwrap();
        let db = bohai_hub::database::pool(&config.database).unwrap();
        Self {
            config,
            dir,
            config_file,
            registry,
            expected: Expected::default(),
            db,
        }
    }

    /// Generates `n` records (see [`Expected::generate`]) and inserts them at the source.
    async fn load(&mut self, src: &SourceDb, n: u64, seed: u64, day: u32) -> usize {
        let rows = self
            .expected
            .generate(&self.config_file, src, n, seed, day, self.dir.path());
        src.insert(&rows).await;
        rows.len()
    }

    /// A connector file reading `src`'s table (`url` overrides its URL).
    fn connector(
        &self,
        name: &str,
        src: &SourceDb,
        url: Option<&str>,
        batch: usize,
        lag: &str,
    ) -> PathBuf {
        let path = self.dir.path().join(format!("{name}.toml"));
        let columns: Vec<String> = FIELDS.iter().map(|f| format!("\"{f}\"")).collect();
        std::fs::write(
            &path,
            format!(
                "name = \"{name}\"\ndataset = \"{DATASET}\"\nbatch_size = {batch}\npoll_interval = \"200ms\"\n\
                 [source]\nkind = \"{}\"\nurl = \"{}\"\ntable = \"business\"\n\
                 columns = [{}]\nlag = \"{lag}\"\n",
                src.kind(),
                url.unwrap_or(src.url()),
                columns.join(", ")
            ),
        )
        .unwrap();
        path
    }

    /// The repository must hold exactly the source's valid rows, each with its versions; the
    /// rejects were counted.
    async fn assert_reconciled(&self, s: &DatasetStats) {
        assert!(s.reconciled, "{s:?}");
        let (want, invalid) = self.expected.repository(&self.registry);
        assert_eq!(usize::try_from(s.rejected).unwrap(), invalid);
        assert_repository_matches(&self.db, &want).await;
    }
}

/// A table read in batches, with rejects; then rows inserted and updated at the source
/// arrive on the next run, an updated row as version 2.
async fn feed_with_updates(src: SourceDb) {
    let mut f = Fixture::new().await;
    let name = format!("mr-{}", src.kind());
    let connector = f.connector(&name, &src, None, 100, "0s");
    let first = f.load(&src, 600, 21, 1).await;
    let _sink = spawn_sink(&f.config);

    let (_, invalid) = f.expected.repository(&f.registry);
    assert!(invalid > 20, "rows that fail validation: {invalid}");
    let (read, rejected) = run_once(&f.config_file, &connector);
    assert_eq!((read, rejected), (first, invalid));
    f.assert_reconciled(&caught_up(&f.db, first).await).await;
    assert_rejects(&f.config, &f.db, &name, invalid).await;

    // Incremental: new rows, and renamed rows (a newer update time).
    let renamed = f.expected.valid_among_first(&f.registry, first, 10);
    for (n, &i) in renamed.iter().enumerate() {
        let at = src.time(2, u32::try_from(n).unwrap());
        f.expected.rename(&src, i, at).await;
    }
    let more = f.load(&src, 30, 22, 3).await;
    let (read, _) = run_once(&f.config_file, &connector);
    assert_eq!(read, renamed.len() + more);
    let s = caught_up(&f.db, first + renamed.len() + more).await;
    let (want, _) = f.expected.repository(&f.registry);
    assert_eq!(
        want.values().filter(|(_, v)| *v == 2).count(),
        renamed.len()
    );
    f.assert_reconciled(&s).await;

    // Nothing new: a run reads nothing.
    assert_eq!(run_once(&f.config_file, &connector), (0, 0));
}

#[tokio::test]
async fn postgres_table_feed_with_rejects_inserts_and_updates() {
    feed_with_updates(SourceDb::postgres().await).await;
}

#[tokio::test]
async fn mysql_table_feed_with_rejects_inserts_and_updates() {
    feed_with_updates(SourceDb::mysql().await).await;
}

/// A row updated more recently than `lag` (by the source's clock) waits for a later poll.
async fn lag_holds_back_recent_rows(src: SourceDb) {
    let mut f = Fixture::new().await;
    let rows = f.load(&src, 50, 51, 1).await;
    src.touch_now(1).await;
    let name = format!("lag-{}", src.kind());
    let held = f.connector(&name, &src, None, 100, "1h");
    assert_eq!(run_once(&f.config_file, &held).0, rows - 1);
    assert_eq!(run_once(&f.config_file, &held).0, 0);
    let now = f.connector(&name, &src, None, 100, "0s");
    assert_eq!(run_once(&f.config_file, &now).0, 1);
}

#[tokio::test]
async fn postgres_table_lag_holds_back_recent_rows() {
    lag_holds_back_recent_rows(SourceDb::postgres().await).await;
}

#[tokio::test]
async fn mysql_table_lag_holds_back_recent_rows() {
    lag_holds_back_recent_rows(SourceDb::mysql().await).await;
}

/// `bohai connect run` for ever (killed by the test).
fn spawn_connector(f: &Fixture, connector: &Path) -> Child {
    bohai(&f.config_file)
        .args(["connect", "run", "--json"])
        .arg(connector)
        .stdout(Stdio::null())
        .spawn()
        .unwrap()
}

#[tokio::test]
async fn table_connector_killed_mid_table_neither_loses_nor_duplicates() {
    let src = SourceDb::postgres().await;
    let mut f = Fixture::new().await;
    let rows = f.load(&src, 20_000, 31, 1).await;
    let connector = f.connector("mr-pg-big", &src, None, 500, "0s");
    let _sink = spawn_sink(&f.config);

    let mut child = spawn_connector(&f, &connector);
    eventually(
        Duration::from_secs(120),
        "the connector to commit a few batches",
        || async { (checkpoint_rows(&f.db, "mr-pg-big").await >= 3000).then_some(()) },
    )
    .await;
    kill(&mut child);
    let at = usize::try_from(checkpoint_rows(&f.db, "mr-pg-big").await).unwrap();
    assert!(at < rows, "killed at {at}, before the end of the table");

    // Rows certainly delivered before the crash change at the source meanwhile.
    let renamed = f.expected.valid_among_first(&f.registry, at, 25);
    for (n, &i) in renamed.iter().enumerate() {
        let at = src.time(2, u32::try_from(n).unwrap());
        f.expected.rename(&src, i, at).await;
    }
    // From the stored cursor: the rest of the table, then the renamed rows' new versions.
    let (read, _) = run_once(&f.config_file, &connector);
    assert_eq!(read, rows - at + renamed.len());
    // Exact: every row once, renamed rows twice. Rows delivered but not yet checkpointed at
    // the kill came again and were skipped by the sink, or they would be version 2 here.
    f.assert_reconciled(&caught_up(&f.db, rows + renamed.len()).await)
        .await;
}

/// `host:port` of a database URL, and the `user:password@` before it.
fn authority(url: &str) -> (String, String) {
    let rest = url.split_once("://").unwrap().1;
    let end = rest.find('/').unwrap_or(rest.len());
    let (userinfo, hostport) = match rest[..end].rsplit_once('@') {
        Some((u, h)) => (format!("{u}@"), h.to_owned()),
        None => (String::new(), rest[..end].to_owned()),
    };
    (userinfo, hostport)
}

#[tokio::test]
async fn source_database_away_and_back_the_connector_waits_and_resumes() {
    let src = SourceDb::mysql().await;
    let mut f = Fixture::new().await;
    let first = f.load(&src, 2000, 41, 1).await;

    // The connector reaches MariaDB through a proxy the test can cut.
    let (userinfo, hostport) = authority(&mysql_url());
    let target = tokio::net::lookup_host(hostport.as_str())
        .await
        .unwrap()
        .next()
        .unwrap();
    let proxy = TcpProxy::start(target).await.unwrap();
    let database = src.url().rsplit('/').next().unwrap();
    let via_proxy = format!("mysql://{userinfo}{}/{database}", proxy.addr());
    let connector = f.connector("mr-my-away", &src, Some(&via_proxy), 200, "0s");
    let _sink = spawn_sink(&f.config);

    let mut child = spawn_connector(&f, &connector);
    let all = u64::try_from(first).unwrap();
    eventually(Duration::from_secs(120), "the first rows", || async {
        (checkpoint_rows(&f.db, "mr-my-away").await == all).then_some(())
    })
    .await;

    // The source goes away; meanwhile its table changes.
    proxy.cut();
    let renamed = f.expected.valid_among_first(&f.registry, first, 20);
    for (n, &i) in renamed.iter().enumerate() {
        let at = src.time(2, u32::try_from(n).unwrap());
        f.expected.rename(&src, i, at).await;
    }
    let more = f.load(&src, 1000, 42, 3).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        child.try_wait().unwrap().is_none(),
        "the connector waits for its source instead of exiting"
    );
    assert_eq!(checkpoint_rows(&f.db, "mr-my-away").await, all);

    // Back: it resumes from its cursor.
    proxy.restore();
    let total = first + renamed.len() + more;
    let total_rows = u64::try_from(total).unwrap();
    eventually(
        Duration::from_secs(120),
        "the connector to resume",
        || async { (checkpoint_rows(&f.db, "mr-my-away").await == total_rows).then_some(()) },
    )
    .await;
    kill(&mut child);
    f.assert_reconciled(&caught_up(&f.db, total).await).await;
}

/// Hostile rows (tests/corpus/README.md): the values a source table can hold that the
/// repository would not keep as validated are refused at ingest with their rule, and the clean
/// row of the same run reaches the repository.
async fn hostile_rows_are_refused(src: SourceDb) {
    let f = Fixture::new().await;
    let name = format!("hostile-{}", src.kind());
    let connector = f.connector(&name, &src, None, 100, "0s");
    let base: Map<String, Value> = serde_json::from_str(
        std::fs::read_to_string(
            bohai_schemas::registry::builtin_dir()
                .join("datasets/business-registrations/examples/valid.jsonl"),
        )
        .unwrap()
        .lines()
        .next()
        .unwrap(),
    )
    .unwrap();
    let row = |i: u32, change: &dyn Fn(&mut Map<String, Value>)| {
        let mut r = base.clone();
        r.insert("updated_at".into(), Value::from(src.time(1, i)));
        change(&mut r);
        r
    };
    let mysql = matches!(src, SourceDb::Mysql { .. });
    // (row, rule, pointer) for each hostile row; then one clean row.
    let mut hostile: Vec<(Map<String, Value>, &str, &str)> = vec![(
        // More digits than a double keeps: DECIMAL(20,2) at MariaDB, numeric at PostgreSQL.
        row(1, &|r| {
            r.insert(
                "registered_capital_yuan".into(),
                Value::from("123456789012345678.91"),
            );
        }),
        "number_precision",
        "/registered_capital_yuan",
    )];
    if mysql {
        // MariaDB text may hold U+0000; PostgreSQL text may not.
        hostile.push((
            row(2, &|r| {
                r.insert("address".into(), Value::from("辽宁省盘锦市\u{0}兴隆台区"));
            }),
            "storable_text",
            "/address",
        ));
    } else {
        // A key longer than the repository's key index keeps (MariaDB's column is too short).
        hostile.push((
            row(2, &|r| {
                r.insert("credit_code".into(), Value::from("9".repeat(600)));
            }),
            "key_size",
            "/credit_code",
        ));
    }
    let clean = row(3, &|_| {});
    let mut rows: Vec<Map<String, Value>> = hostile.iter().map(|(r, _, _)| r.clone()).collect();
    rows.push(clean);
    src.insert(&rows).await;
    let _sink = spawn_sink(&f.config);
    let (read, rejected) = run_once(&f.config_file, &connector);
    assert_eq!((read, rejected), (rows.len(), hostile.len()));
    let reasons: Vec<Value> =
        sqlx::query_scalar("SELECT reasons FROM rejected_records WHERE source = $1 ORDER BY seq")
            .bind(&name)
            .fetch_all(&f.db)
            .await
            .unwrap();
    assert_eq!(reasons.len(), hostile.len());
    for (i, (_, rule, pointer)) in hostile.iter().enumerate() {
        assert!(
            reasons
                .iter()
                .flat_map(|r| r.as_array().unwrap())
                .any(|r| r["rule"] == *rule && r["pointer"] == *pointer),
            "row {i} must be refused as {rule} at {pointer}: {reasons:?}"
        );
    }
    let s = caught_up(&f.db, rows.len()).await;
    assert_eq!((s.rows, s.rejected), (1, hostile.len() as i64), "{s:?}");
    assert!(s.reconciled, "{s:?}");
}

#[tokio::test]
async fn postgres_table_hostile_rows_are_refused() {
    hostile_rows_are_refused(SourceDb::postgres().await).await;
}

#[tokio::test]
async fn mysql_table_hostile_rows_are_refused() {
    hostile_rows_are_refused(SourceDb::mysql().await).await;
}
