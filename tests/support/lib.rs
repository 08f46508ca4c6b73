//! Shared support for the integration tests: the stack's addresses, fresh databases and
//! topics with random names (so tests run in parallel), and an in-process hub.
//!
//! The tests need the real broker and PostgreSQL; `scripts/test` starts them and exports
//! `BOHAI_KAFKA_BROKERS` and `DATABASE_URL`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use bohai_hub::config::Config;
use bohai_hub::server::BoundHub;
use sqlx::{Connection, PgConnection};
use tokio::sync::oneshot;

/// The broker the stack runs, from `BOHAI_KAFKA_BROKERS`.
pub fn brokers() -> String {
    std::env::var("BOHAI_KAFKA_BROKERS")
        .expect("BOHAI_KAFKA_BROKERS is not set: run the tests with scripts/test")
}

/// The stack's database URL, from `DATABASE_URL`: the hub's runtime role.
pub fn database_url() -> String {
    std::env::var("DATABASE_URL").expect("DATABASE_URL is not set: run the tests with scripts/test")
}

/// The URL of the stack's owner role, from `BOHAI_DATABASE_OWNER_URL` (`scripts/stack env`
/// prints it), else `DATABASE_URL` (one role for everything).
pub fn owner_database_url() -> String {
    std::env::var("BOHAI_DATABASE_OWNER_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(database_url)
}

/// A short random suffix for names of topics and databases.
pub fn unique(prefix: &str) -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("{prefix}{}", &id[..12])
}

/// Creates an empty database with a fresh name on the stack's server, owned by the owner
/// role, and returns its URL as that role. `scripts/test` drops the test databases of earlier
/// runs.
pub async fn fresh_database() -> anyhow::Result<String> {
    let base = owner_database_url();
    let name = unique("bohai_test_");
    let mut conn = PgConnection::connect(&base)
        .await
        .with_context(|| format!("connecting to {base}"))?;
    // The name is ours (prefix plus hex), never input: safe to place in the statement.
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await?;
    conn.close().await?;
    Ok(replace_database(&base, &name))
}

/// `url` with its database name replaced.
pub fn replace_database(url: &str, name: &str) -> String {
    let (without_query, query) = match url.split_once('?') {
        Some((u, q)) => (u, Some(q)),
        None => (url, None),
    };
    let head = without_query
        .rsplit_once('/')
        .map(|(h, _)| h)
        .unwrap_or(without_query);
    match query {
        Some(q) => format!("{head}/{name}?{q}"),
        None => format!("{head}/{name}"),
    }
}

/// A configuration pointing at the stack, with a fresh database, a fresh topic prefix (so
/// every topic the test touches is new) and a free HTTP port.
pub async fn test_config() -> anyhow::Result<Config> {
    let mut config = Config::default();
    config.kafka.brokers = brokers();
    config.kafka.topic_prefix = unique("bohai-test-") + ".";
    config.kafka.partitions = 2;
    // Generous: the shared local broker is busy while other tests feed it.
    config.kafka.request_timeout = Duration::from_secs(30);
    // The hub runs as the stack's runtime role; migrations as its owner role.
    let owner_url = fresh_database().await?;
    let name = owner_url
        .split('?')
        .next()
        .and_then(|u| u.rsplit('/').next())
        .unwrap_or_default()
        .to_owned();
    config.database.url = replace_database(&database_url(), &name);
    config.database.owner_url = (config.database.url != owner_url).then_some(owner_url);
    config.http.addr = SocketAddr::from(([127, 0, 0, 1], 0));
    // Tests read /metrics right after what they count.
    config.ops.answer_cache = Duration::ZERO;
    Ok(config)
}

/// A hub serving in this process, on a runtime and thread of its own; dropped, it shuts down.
///
/// Its own runtime matters: a test that runs the `bohai` binary blocks its own (single-
/// threaded) runtime while the command runs, and a hub on that runtime would stop in the
/// middle of whatever it was doing, holding its locks (the migration lock, a row lock), so
/// that the command waits for the hub and the hub for the test.
#[derive(Debug)]
pub struct RunningHub {
    /// `http://127.0.0.1:PORT`.
    pub base_url: String,
    stop: Option<oneshot::Sender<()>>,
}

impl RunningHub {
    /// Binds and serves `config` on a thread of its own. With `BOHAI_TEST_LOG` set (a
    /// `RUST_LOG` filter such as `info,bohai_hub::pipeline=debug`), the hub logs to stderr as
    /// `bohai serve` does; run the test with `--nocapture` to see it beside the test's own.
    pub async fn start(config: Config) -> anyhow::Result<Self> {
        if let Ok(filter) = std::env::var("BOHAI_TEST_LOG") {
            bohai_hub::telemetry::init(bohai_hub::config::LogFormat::Human, &filter);
        }
        let (bound, bound_rx) = oneshot::channel::<anyhow::Result<String>>();
        let (stop, stopped) = oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("running-hub".to_owned())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                {
                    Ok(r) => r,
                    Err(e) => {
                        let _ = bound.send(Err(e.into()));
                        return;
                    }
                };
                runtime.block_on(async move {
                    let hub = match BoundHub::bind(config).await {
                        Ok(h) => h,
                        Err(e) => {
                            let _ = bound.send(Err(e.into()));
                            return;
                        }
                    };
                    let _ = bound.send(Ok(format!("http://{}", hub.local_addr())));
                    let _ = hub
                        .serve(async move {
                            let _ = stopped.await;
                        })
                        .await;
                });
                // Background work still running (a delivery in flight) is given a moment.
                runtime.shutdown_timeout(Duration::from_secs(2));
            })?;
        let base_url = bound_rx
            .await
            .context("the hub's thread ended before it bound its address")??;
        Ok(Self {
            base_url,
            stop: Some(stop),
        })
    }

    /// `base_url` joined with `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base_url, path)
    }

    /// The value of one series of the hub's `/metrics` (`name{labels}`, as printed), if
    /// present.
    pub async fn metric(&self, series: &str) -> Option<f64> {
        let text = reqwest::get(self.url("/metrics"))
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        let prefix = format!("{series} ");
        text.lines()
            .find_map(|l| l.strip_prefix(prefix.as_str()))
            .and_then(|v| v.trim().parse().ok())
    }
}

impl Drop for RunningHub {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// GETs `url`, with `token` as bearer if given: the status and the JSON body (`null` if the
/// body is not JSON).
pub async fn get_json_as(
    client: &reqwest::Client,
    url: &str,
    token: Option<&str>,
) -> (u16, serde_json::Value) {
    let mut request = client.get(url);
    if let Some(t) = token {
        request = request.bearer_auth(t);
    }
    let response = request.send().await.expect("the hub answers");
    (
        response.status().as_u16(),
        response.json().await.unwrap_or(serde_json::Value::Null),
    )
}

/// [`test_config`], with the migrations applied, the registry loaded and the topics created.
pub async fn prepared_config() -> anyhow::Result<Config> {
    let config = test_config().await?;
    bohai_hub::database::prepare_schema(&config.database).await?;
    let pool = bohai_hub::database::pool(&config.database)?;
    let registry = bohai_hub::registry::load(&config.registry)?;
    bohai_hub::registry::sync(&pool, &registry).await?;
    bohai_hub::pipeline::topics::ensure(&config.kafka, &registry).await?;
    pool.close().await;
    Ok(config)
}

/// A pool connected as the owner role of `config`'s database (`database.owner_url`, else
/// `database.url`): what a database administrator, or a hub with one role, holds.
pub async fn owner_pool(config: &Config) -> anyhow::Result<sqlx::PgPool> {
    let url = config
        .database
        .owner_url
        .as_deref()
        .unwrap_or(&config.database.url);
    Ok(sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect(url)
        .await?)
}

/// POSTs `body` as JSON to `url` with bearer `token`: the status and the answer's JSON
/// (`null` when it is not JSON).
pub async fn post_json(
    url: &str,
    token: &str,
    body: &serde_json::Value,
) -> (u16, serde_json::Value) {
    let r = reqwest::Client::new()
        .post(url)
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .expect("the hub answers");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(serde_json::Value::Null))
}

/// A new token of `department` (every scope a department token gets), its secret.
pub async fn token(db: &sqlx::PgPool, department: &str) -> String {
    bohai_hub::auth::create_token(db, department)
        .await
        .expect("a token is made")
        .secret
}

/// Writes `config` as a TOML file the `bohai` binary can read.
pub fn write_config(config: &Config, dir: &Path) -> anyhow::Result<PathBuf> {
    let path = dir.join("bohai.toml");
    let text = format!(
        "[http]\naddr = \"{}\"\n[kafka]\nbrokers = \"{}\"\ntopic_prefix = \"{}\"\npartitions = {}\n[database]\nurl = \"{}\"\n[pipeline]\nsink = {}\nstopped_duty_retry = \"{}ms\"\n[cluster]\nlease = \"{}ms\"\nsink_session = \"{}ms\"\n",
        config.http.addr,
        config.kafka.brokers,
        config.kafka.topic_prefix,
        config.kafka.partitions,
        config.database.url,
        config.pipeline.sink,
        config.pipeline.stopped_duty_retry.as_millis(),
        config.cluster.lease.as_millis(),
        config.cluster.sink_session.as_millis(),
    );
    // `[cluster]` is the last section: its identity, when set, goes at the end.
    let text = match &config.cluster.instance {
        Some(id) => format!("{text}instance = \"{id}\"\n"),
        None => text,
    };
    let mut licences = String::new();
    if let Some(url) = &config.licences.status_list_url {
        licences.push_str(&format!("status_list_url = \"{url}\"\n"));
    }
    if !config.licences.credit_discipline {
        licences.push_str("credit_discipline = false\n");
    }
    let text = if licences.is_empty() {
        text
    } else {
        text.replace("[cluster]\n", &format!("[licences]\n{licences}[cluster]\n"))
    };
    let text = if config.pipeline.connectors.is_empty() {
        text
    } else {
        let files: Vec<String> = config
            .pipeline
            .connectors
            .iter()
            .map(|f| format!("{:?}", f.display().to_string()))
            .collect();
        text.replace(
            "[pipeline]\n",
            &format!("[pipeline]\nconnectors = [{}]\n", files.join(", ")),
        )
    };
    let text = match &config.database.owner_url {
        Some(owner) => text.replace(
            "[database]\n",
            &format!("[database]\nowner_url = \"{owner}\"\n"),
        ),
        None => text,
    };
    std::fs::write(&path, text)?;
    Ok(path)
}

/// [`write_config`] plus a `[pki]` section naming `config.pki.master_key_file`, for tests
/// that make the city CA and seals.
pub fn write_config_with_master_key(config: &Config, dir: &Path) -> anyhow::Result<PathBuf> {
    let path = write_config(config, dir)?;
    let mut text = std::fs::read_to_string(&path)?;
    text.push_str(&format!(
        "[pki]\nmaster_key_file = \"{}\"\n",
        config.pki.master_key_file.display()
    ));
    std::fs::write(&path, text)?;
    Ok(path)
}

/// The `bohai` binary of this build (`scripts/test` builds it before the tests run).
pub fn bohai_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    // target/debug/deps/TEST -> target/debug/bohai
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join("bohai"))
        .expect("a target folder");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build --bins` first (scripts/test does)",
        bin.display()
    );
    bin
}

/// A `bohai` command with `config_file` and no inherited overrides.
pub fn bohai(config_file: &Path) -> std::process::Command {
    let mut c = std::process::Command::new(bohai_binary());
    c.arg("--config")
        .arg(config_file)
        .env_remove("BOHAI_KAFKA_BROKERS")
        .env_remove("DATABASE_URL")
        .env_remove("BOHAI_DATABASE_OWNER_URL")
        .env_remove("BOHAI_HTTP_ADDR")
        .env("RUST_LOG", "warn");
    c
}

/// Longest a `bohai` command run by a test may take: far beyond any of them, so that a
/// command that hangs fails its test with what it printed instead of holding up the run.
const COMMAND_LIMIT: Duration = Duration::from_secs(600);

/// Runs `command` to its end, as `Command::output` does, but kills it and fails the test,
/// with what it printed, if it runs longer than `limit`.
pub fn output_within(command: &mut std::process::Command, limit: Duration) -> std::process::Output {
    use std::io::Read;
    use std::process::Stdio;
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    // Both pipes are drained while the command runs, so that it never waits on a full one.
    // They close when the command ends or is killed (a child it started and left running
    // would keep them open; `bohai` starts none).
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut bytes);
            }
            bytes
        })
    };
    let stdout = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let stderr = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let deadline = std::time::Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("the command can be waited for") {
            break Some(status);
        }
        if std::time::Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stdout = stdout.join().unwrap_or_default();
    let stderr = stderr.join().unwrap_or_default();
    let Some(status) = status else {
        panic!(
            "{command:?} ran longer than {limit:?} and was killed\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&stdout),
            String::from_utf8_lossy(&stderr)
        );
    };
    std::process::Output {
        status,
        stdout,
        stderr,
    }
}

/// Runs `bohai ARGS` with `config_file`.
pub fn bohai_run(config_file: &Path, args: &[&str]) -> std::process::Output {
    output_within(bohai(config_file).args(args), COMMAND_LIMIT)
}

/// Runs `bohai ARGS`, fails the test unless it succeeds, and returns its standard output.
pub fn bohai_ok(config_file: &Path, args: &[&str]) -> String {
    let out = bohai_run(config_file, args);
    assert!(
        out.status.success(),
        "bohai {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `bohai seal revoke SEAL --reason key_compromise` of the newest seal of `department` (from
/// `bohai seal list --json`); returns the seal id.
pub fn revoke_seal_of(config_file: &Path, department: &str) -> String {
    let seals: serde_json::Value =
        serde_json::from_str(&bohai_ok(config_file, &["seal", "list", "--json"]))
            .expect("seal list --json");
    let seal_id = seals
        .as_array()
        .into_iter()
        .flatten()
        .rev()
        .find(|s| s["department"] == department)
        .and_then(|s| s["seal_id"].as_str())
        .unwrap_or_else(|| panic!("no seal of {department}: {seals}"))
        .to_owned();
    bohai_ok(
        config_file,
        &["seal", "revoke", &seal_id, "--reason", "key_compromise"],
    );
    seal_id
}

/// Polls `check` every 200 ms until it returns `Some`, or fails after `limit`.
pub async fn eventually<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub mod broker;
pub mod proxy;
pub mod serve;
pub mod trust;
pub mod webdriver;

/// The MariaDB/MySQL server the table-connector tests use, from `BOHAI_TEST_MYSQL_URL`
/// (`scripts/stack env` prints it); default `mysql://root@127.0.0.1:3306`.
pub fn mysql_url() -> String {
    std::env::var("BOHAI_TEST_MYSQL_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".into())
}

/// Creates an empty MariaDB/MySQL database with a fresh name (`bohai_test_*`, as on
/// PostgreSQL) and returns its URL.
pub async fn fresh_mysql_database() -> anyhow::Result<String> {
    use sqlx::mysql::MySqlConnection;
    let base = mysql_url();
    let name = unique("bohai_test_");
    let mut conn = MySqlConnection::connect(&base)
        .await
        .with_context(|| format!("connecting to {base} (scripts/stack up starts MariaDB)"))?;
    // The name is ours (prefix plus hex), never input: safe to place in the statement.
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
    )))
    .execute(&mut conn)
    .await?;
    conn.close().await?;
    Ok(format!("{}/{name}", base.trim_end_matches('/')))
}

/// Runs the repository sink of `config` on a background task (dropped with the runtime).
pub fn spawn_sink(config: &Config) -> tokio::task::JoinHandle<()> {
    let registry = std::sync::Arc::new(
        bohai_schemas::Registry::load(&config.registry.dir).expect("the registry loads"),
    );
    let db = bohai_hub::database::pool(&config.database).expect("a pool");
    tokio::spawn(bohai_hub::pipeline::sink::run(
        config.kafka.clone(),
        config.cluster.clone(),
        db,
        registry,
        "test-sink".into(),
    ))
}

/// Kills `child` with SIGKILL, as a crash would, and reaps it.
pub fn kill(child: &mut std::process::Child) {
    let _ = std::process::Command::new("kill")
        .args(["-9", &child.id().to_string()])
        .status();
    let _ = child.wait();
}

/// The stored checkpoint of `connector`, if it committed one.
pub async fn connector_position(db: &sqlx::PgPool, connector: &str) -> Option<serde_json::Value> {
    sqlx::query_scalar("SELECT position FROM connector_checkpoints WHERE connector = $1")
        .bind(connector)
        .fetch_optional(db)
        .await
        .expect("the checkpoint table answers")
}

/// Reads every committed record of `topic` (a JSON value each) from the beginning up to its
/// end now. Blocks.
pub fn topic_to_end(brokers: &str, topic: &str) -> Vec<serde_json::Value> {
    let consumer: rdkafka::consumer::BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", unique("topic-reader-"))
        .set("isolation.level", "read_committed")
        .set("enable.auto.commit", "false")
        .create()
        .expect("a consumer is made");
    use rdkafka::consumer::Consumer as _;
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("the topic's metadata");
    let partitions: Vec<i32> = metadata.topics()[0]
        .partitions()
        .iter()
        .map(|p| p.id())
        .collect();
    let mut list = rdkafka::TopicPartitionList::new();
    let mut ends = std::collections::BTreeMap::new();
    for p in &partitions {
        list.add_partition_offset(topic, *p, rdkafka::Offset::Beginning)
            .expect("a partition is listed");
        let (_, high) = consumer
            .fetch_watermarks(topic, *p, Duration::from_secs(10))
            .expect("the partition's watermarks");
        ends.insert(*p, high);
    }
    consumer.assign(&list).expect("the partitions are assigned");
    let mut seen = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let position = consumer.position().expect("the position");
        let done = ends.iter().all(|(p, high)| {
            *high == 0
                || matches!(position.find_partition(topic, *p).map(|e| e.offset()), Some(rdkafka::Offset::Offset(o)) if o >= *high)
        });
        if done {
            return seen;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{topic} not read to its end"
        );
        if let Some(m) = consumer.poll(Duration::from_millis(500)) {
            let m = m.expect("a committed record");
            use rdkafka::Message as _;
            seen.push(
                serde_json::from_slice(m.payload().unwrap_or_default()).expect("a JSON record"),
            );
        }
    }
}

/// What the repository must hold for a JSON Lines source: per primary key, the last valid
/// record and how many valid versions the source had.
pub fn expected_repository(
    registry: &bohai_schemas::Registry,
    dataset: &str,
    source: &Path,
) -> std::collections::HashMap<String, (serde_json::Value, i32)> {
    let ds = registry.dataset(dataset).expect("the dataset is known");
    let mut expected: std::collections::HashMap<String, (serde_json::Value, i32)> =
        std::collections::HashMap::new();
    for line in std::fs::read_to_string(source)
        .expect("the source is read")
        .lines()
    {
        let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(line)
        else {
            continue;
        };
        let value = serde_json::Value::Object(map.clone());
        if !ds.validator.validate(&value).is_empty() {
            continue;
        }
        let pk =
            bohai_hub::pipeline::ingest::primary_key(ds, &map).expect("a valid record has its key");
        let entry = expected.entry(pk).or_insert((serde_json::Value::Null, 0));
        entry.0 = value;
        entry.1 += 1;
    }
    expected
}

pub async fn assert_repository_matches(
    db: &sqlx::PgPool,
    dataset: &str,
    expected: &std::collections::HashMap<String, (serde_json::Value, i32)>,
) {
    let rows = repository_rows(db, dataset).await;
    assert_eq!(rows.len(), expected.len(), "rows in the repository");
    for (pk, data, version) in rows {
        let (want, versions) = expected
            .get(&pk)
            .unwrap_or_else(|| panic!("unexpected key {pk}"));
        assert_eq!(&data, want, "record {pk}");
        assert_eq!(version, *versions, "versions of {pk}");
    }
}

/// Every repository record of `dataset`: primary key, data and version.
pub async fn repository_rows(
    db: &sqlx::PgPool,
    dataset: &str,
) -> Vec<(String, serde_json::Value, i32)> {
    sqlx::query_as("SELECT pk, data, version FROM repository_records WHERE dataset = $1")
        .bind(dataset)
        .fetch_all(db)
        .await
        .expect("the repository answers")
}

/// Runs a `bohai` command to its end, fails the test with its stderr if it failed, and
/// returns its stdout.
pub fn command_ok(command: &mut std::process::Command) -> Vec<u8> {
    let out = output_within(command, COMMAND_LIMIT);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// The first `n` records of the dead-letter topic: each one's payload (the original bytes)
/// and its `bohai-reasons` header as JSON. Fails the test when fewer arrive within 30 s each.
pub async fn dead_letters(
    kafka: &bohai_hub::config::KafkaConfig,
    n: usize,
) -> Vec<(Vec<u8>, serde_json::Value)> {
    use rdkafka::consumer::{Consumer, StreamConsumer};
    use rdkafka::message::{Headers, Message};
    let consumer: StreamConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &kafka.brokers)
        .set("group.id", unique("dlq-check-"))
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("a consumer");
    consumer
        .subscribe(&[&bohai_hub::pipeline::topics::dead_letter_topic(kafka)])
        .expect("subscribed");
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let m = tokio::time::timeout(Duration::from_secs(30), consumer.recv())
            .await
            .expect("a dead letter within 30 s")
            .expect("a readable dead letter");
        let reasons = m
            .headers()
            .and_then(|h| h.iter().find(|h| h.key == "bohai-reasons"))
            .and_then(|h| h.value)
            .and_then(|v| serde_json::from_slice(v).ok())
            .unwrap_or(serde_json::Value::Null);
        out.push((m.payload().unwrap_or_default().to_vec(), reasons));
    }
    out
}

/// The city root (PEM) out of what `bohai seal init-ca` prints: the root, then the issuing CA
/// (PEM as the hub writes it, lines ending CRLF). What a verifier pins.
pub fn city_root_pem(init_ca_output: &str) -> String {
    const END: &str = "-----END CERTIFICATE-----";
    let end = init_ca_output
        .find(END)
        .expect("seal init-ca printed a certificate")
        + END.len();
    format!("{}\n", &init_ca_output[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_within_its_limit_gives_its_output() {
        let out = output_within(
            std::process::Command::new("sh").args(["-c", "echo out; echo err >&2; exit 3"]),
            Duration::from_secs(30),
        );
        assert_eq!(out.status.code(), Some(3));
        assert_eq!(out.stdout, b"out\n");
        assert_eq!(out.stderr, b"err\n");
    }

    #[test]
    #[should_panic(expected = "and was killed")]
    fn a_command_past_its_limit_is_killed_and_fails_the_test() {
        output_within(
            std::process::Command::new("sh").args(["-c", "echo started; exec sleep 30"]),
            Duration::from_millis(300),
        );
    }
}
