//! The ingest pipeline end to end against the real broker and PostgreSQL: connectors, every
//! bad-input class, the dead-letter topic, reconciliation, and crashes of the connector and of
//! the sink (SIGKILL) with exact reconciliation of the repository against the source.

#![allow(clippy::unwrap_used)] // a test that cannot unwrap should fail loudly

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use bohai_hub::config::Config;
use bohai_hub::pipeline::stats::{dataset_stats, DatasetStats};
use bohai_hub::pipeline::topics;
use bohai_schemas::Registry;
use bohai_tests::{
    assert_repository_matches, bohai, command_ok, connector_position, eventually,
    expected_repository, kill, prepared_config, spawn_sink, unique, write_config,
};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message};
use rdkafka::ClientConfig;
use serde_json::Value;
use sqlx::PgPool;

async fn pool(config: &Config) -> PgPool {
    bohai_hub::database::pool(&config.database).unwrap()
}

async fn stats(db: &PgPool, dataset: &str) -> DatasetStats {
    dataset_stats(db, Some(dataset)).await.unwrap().remove(0)
}

/// Waits until the sink has written every valid record the feeds read.
async fn caught_up(db: &PgPool, dataset: &str, read: i64) -> DatasetStats {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let s = stats(db, dataset).await;
        if s.read == read && s.pending == 0 {
            return s;
        }
        assert!(
            s.read <= read,
            "{} records counted as read of a source of {read}: {s:?}",
            s.read
        );
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for the sink to catch up with {read} records read: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn gen(config_file: &Path, dataset: &str, n: u64, out: &Path, extra: &[&str]) -> u64 {
    let output = bohai(config_file)
        .args([
            "gen",
            dataset,
            &n.to_string(),
            "--json",
            "--seed",
            "11",
            "-o",
        ])
        .arg(out)
        .args(extra)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let summary: Value = serde_json::from_slice(&output.stderr).unwrap();
    summary["invalid"].as_u64().unwrap()
}

fn connector_file(dir: &Path, name: &str, dataset: &str, source: &str) -> std::path::PathBuf {
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(
        &path,
        format!(
            "name = \"{name}\"\ndataset = \"{dataset}\"\nbatch_size = 500\n[source]\n{source}\n"
        ),
    )
    .unwrap();
    path
}

/// `bohai connect run --json` with `extra` arguments, to its end: its JSON summary.
fn connect_run(config_file: &Path, connector: &Path, extra: &[&str]) -> Value {
    let stdout = command_ok(
        bohai(config_file)
            .args(["connect", "run", "--json"])
            .args(extra)
            .arg(connector),
    );
    serde_json::from_slice(&stdout).unwrap()
}

#[tokio::test]
async fn gbk_csv_feed_with_every_bad_input_class_reconciles() {
    let config = prepared_config().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config_file = write_config(&config, dir.path()).unwrap();
    let feed = dir.path().join("business.csv");
    let invalid = gen(
        &config_file,
        "business-registrations",
        2000,
        &feed,
        &[
            "--format",
            "csv",
            "--encoding",
            "gbk",
            "--invalid-ratio",
            "0.1",
        ],
    );
    assert!(invalid > 100);
    // Bad lines as department exports have them.
    let mut bytes = std::fs::read(&feed).unwrap();
    bytes.extend_from_slice(b"only,three,fields\n"); // malformed CSV line
    bytes.extend_from_slice(b"\x81\x20bad gbk"); // invalid GBK bytes in the first column
    bytes.extend_from_slice(&b",x".repeat(13));
    bytes.push(b'\n');
    let huge = "x".repeat(1024 * 1024 + 10); // over the 1 MiB record limit
    bytes.extend_from_slice(format!("{huge}{}\n", ",y".repeat(13)).as_bytes());
    std::fs::write(&feed, &bytes).unwrap();
    let connector = connector_file(
        dir.path(),
        "mr-csv",
        "business-registrations",
        &format!(
            "kind = \"file\"\npath = \"{}\"\nformat = \"csv\"\nencoding = \"gbk\"",
            feed.display()
        ),
    );

    let summary = connect_run(&config_file, &connector, &[]);
    assert_eq!(summary["read"], 2003);
    assert_eq!(summary["rejected"].as_u64().unwrap(), invalid + 3);

    let _sink = spawn_sink(&config);
    let db = pool(&config).await;
    let s = caught_up(&db, "business-registrations", 2003).await;
    assert_eq!(s.rejected as u64, invalid + 3);
    assert!(s.reconciled, "{s:?}");
    assert_eq!(s.valid, s.inserted + s.updated);

    // Every publish batch is in the audit log, by the owning department, with its counts.
    let (batches, published, read): (i64, i64, i64) = sqlx::query_as(
        "SELECT count(*), sum(count)::bigint, sum((detail::jsonb->>'read')::bigint)::bigint
         FROM audit_log WHERE action = 'publish' AND dataset = $1 AND actor = 'market-regulation'",
    )
    .bind("business-registrations")
    .fetch_one(&db)
    .await
    .unwrap();
    assert!(batches >= 1);
    assert_eq!((published, read), (s.valid, 2003));

    // Every reject is kept with its reasons; the three bad lines with the right rules.
    let rules: Vec<String> = sqlx::query_scalar(
        "SELECT r->>'rule' FROM rejected_records, jsonb_array_elements(reasons) r WHERE dataset = $1",
    )
    .bind("business-registrations")
    .fetch_all(&db)
    .await
    .unwrap();
    for rule in ["csv_syntax", "encoding", "size_limit", "format"] {
        assert!(
            rules.iter().any(|r| r == rule),
            "no `{rule}` reject in {rules:?}"
        );
    }
    let encoding: (String, Value) = sqlx::query_as(
        "SELECT origin, reasons FROM rejected_records WHERE reasons @> '[{\"rule\": \"encoding\"}]'",
    )
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(encoding.0, "business.csv line 2003");
    assert_eq!(encoding.1[0]["pointer"], "/address");

    // The dead-letter topic has each reject, with the original bytes and the reasons.
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &config.kafka.brokers)
        .set("group.id", unique("dlq-check-"))
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer
        .subscribe(&[&topics::dead_letter_topic(&config.kafka)])
        .unwrap();
    let mut seen = 0u64;
    while seen < invalid + 3 {
        let m = tokio::time::timeout(Duration::from_secs(30), consumer.recv())
            .await
            .unwrap()
            .unwrap();
        let reasons = m
            .headers()
            .unwrap()
            .iter()
            .find(|h| h.key == "bohai-reasons")
            .and_then(|h| h.value)
            .map(|v| serde_json::from_slice::<Value>(v).unwrap())
            .unwrap();
        assert!(!reasons.as_array().unwrap().is_empty());
        assert!(!m.payload().unwrap_or_default().is_empty());
        seen += 1;
    }

    // `bohai dlq show` and `bohai dataset stats` tell the same.
    let out = bohai(&config_file)
        .args([
            "dlq",
            "show",
            "--dataset",
            "business-registrations",
            "--limit",
            "5",
            "--json",
        ])
        .output()
        .unwrap();
    let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown.as_array().unwrap().len(), 5);
    let out = bohai(&config_file)
        .args(["dataset", "stats", "business-registrations", "--json"])
        .output()
        .unwrap();
    let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["read"], 2003);
    assert_eq!(shown["reconciled"], true);
}

/// A drop folder through `bohai connect run --once`: each finished file is moved aside only
/// after its last batch is committed, the next file is read after it, and a second run finds
/// nothing new.
#[tokio::test]
async fn a_drop_folder_is_read_file_by_file_and_each_file_moved_aside_once() {
    let config = prepared_config().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config_file = write_config(&config, dir.path()).unwrap();
    let drop = dir.path().join("in");
    std::fs::create_dir(&drop).unwrap();
    // Several batches a file (the connector's batch size is 500), and a file with one line.
    let mut invalid = 0;
    for (name, n) in [("a.jsonl", 1_700), ("b.jsonl", 1), ("c.jsonl", 1_200)] {
        let staged = dir.path().join(name);
        invalid += gen(
            &config_file,
            "resident-registrations",
            n,
            &staged,
            &["--invalid-ratio", "0.05"],
        );
        std::fs::rename(&staged, drop.join(name)).unwrap();
    }
    // Files changed within the last second are left for later: let them settle.
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let connector = connector_file(
        dir.path(),
        "psb-drop",
        "resident-registrations",
        &format!(
            "kind = \"file\"\ndrop_dir = \"{}\"\nformat = \"jsonl\"",
            drop.display()
        ),
    );
    let run_once = || connect_run(&config_file, &connector, &["--once"]);
    let first = run_once();
    assert_eq!(first["read"], 2_901, "{first}");
    assert_eq!(first["rejected"].as_u64().unwrap(), invalid, "{first}");
    assert!(first["seconds"].as_f64().unwrap() > 0.0, "{first}");
    for name in ["a.jsonl", "b.jsonl", "c.jsonl"] {
        assert!(drop.join("done").join(name).exists(), "{name} moved aside");
        assert!(
            !drop.join(name).exists(),
            "{name} no longer in the drop folder"
        );
    }
    let again = run_once();
    assert_eq!(again["read"], 0, "nothing is read twice: {again}");

    let _sink = spawn_sink(&config);
    let db = pool(&config).await;
    let s = caught_up(&db, "resident-registrations", 2_901).await;
    assert!(s.reconciled, "{s:?}");
    assert_eq!(s.rejected as u64, invalid);
}

async fn checkpoint_seq(db: &PgPool, connector: &str) -> i64 {
    connector_position(db, connector)
        .await
        .and_then(|p| p["seq"].as_i64())
        .unwrap_or(0)
}

#[tokio::test]
async fn connector_killed_mid_feed_neither_loses_nor_duplicates() {
    let config = prepared_config().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config_file = write_config(&config, dir.path()).unwrap();
    let feed = dir.path().join("residents.jsonl");
    let n = 40_000;
    gen(
        &config_file,
        "resident-registrations",
        n,
        &feed,
        &["--invalid-ratio", "0.05"],
    );
    let connector = connector_file(
        dir.path(),
        "psb-jsonl",
        "resident-registrations",
        &format!(
            "kind = \"file\"\npath = \"{}\"\nformat = \"jsonl\"",
            feed.display()
        ),
    );
    let db = pool(&config).await;
    let _sink = spawn_sink(&config);

    let mut child = bohai(&config_file)
        .args(["connect", "run", "--json"])
        .arg(&connector)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let at = eventually(
        Duration::from_secs(120),
        "the connector to commit a few batches",
        || async {
            let seq = checkpoint_seq(&db, "psb-jsonl").await;
            (seq >= 3000).then_some(seq)
        },
    )
    .await;
    kill(&mut child);
    assert!(at < n as i64, "killed at {at}, before the end of the feed");

    connect_run(&config_file, &connector, &[]);
    let s = caught_up(&db, "resident-registrations", n as i64).await;
    assert!(s.reconciled, "{s:?}");
    let registry = Registry::load(&config.registry.dir).unwrap();
    let expected = expected_repository(&registry, "resident-registrations", &feed);
    assert_eq!(
        s.valid,
        expected.values().map(|(_, v)| i64::from(*v)).sum::<i64>()
    );
    assert_repository_matches(&db, "resident-registrations", &expected).await;
}

#[tokio::test]
async fn sink_killed_mid_write_neither_loses_nor_duplicates() {
    let mut config = prepared_config().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    config.pipeline.sink = true;
    let config_file = write_config(&config, dir.path()).unwrap();
    let feed = dir.path().join("licences.jsonl");
    let n = 40_000;
    gen(
        &config_file,
        "driving-licences",
        n,
        &feed,
        &["--invalid-ratio", "0.02"],
    );
    let connector = connector_file(
        dir.path(),
        "tp-jsonl",
        "driving-licences",
        &format!(
            "kind = \"file\"\npath = \"{}\"\nformat = \"jsonl\"",
            feed.display()
        ),
    );
    // The whole feed is on the topic before the sink starts.
    connect_run(&config_file, &connector, &[]);
    let db = pool(&config).await;

    let mut serve = bohai(&config_file)
        .arg("serve")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    eventually(
        Duration::from_secs(120),
        "the sink to write part of the feed",
        || async {
            let s = stats(&db, "driving-licences").await;
            (s.inserted + s.updated >= 5000).then_some(())
        },
    )
    .await;
    kill(&mut serve);
    let s = stats(&db, "driving-licences").await;
    assert!(s.pending > 0, "killed before the end: {s:?}");

    let mut serve = bohai(&config_file)
        .arg("serve")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let s = caught_up(&db, "driving-licences", n as i64).await;
    kill(&mut serve);
    assert!(s.reconciled, "{s:?}");
    let registry = Registry::load(&config.registry.dir).unwrap();
    let expected = expected_repository(&registry, "driving-licences", &feed);
    assert_repository_matches(&db, "driving-licences", &expected).await;
}

/// A generated JSON Lines feed of `resident-registrations` (5% invalid) and the connector
/// file that reads it, for the outage tests.
struct OutageFeed {
    connector: std::path::PathBuf,
    source: std::path::PathBuf,
    name: String,
    records: u64,
}

fn outage_feed(config: &Config, dir: &Path, name: &str, records: u64) -> OutageFeed {
    let config_file = write_config(config, dir).unwrap();
    let source = dir.join(format!("{name}.jsonl"));
    gen(
        &config_file,
        "resident-registrations",
        records,
        &source,
        &["--invalid-ratio", "0.05"],
    );
    let connector = connector_file(
        dir,
        name,
        "resident-registrations",
        &format!(
            "kind = \"file\"\npath = \"{}\"\nformat = \"jsonl\"",
            source.display()
        ),
    );
    OutageFeed {
        connector,
        source,
        name: name.to_owned(),
        records,
    }
}

impl OutageFeed {
    /// Waits until the connector committed its first batches (and not the whole feed).
    async fn started(&self, db: &PgPool) {
        let at = eventually(
            Duration::from_secs(120),
            "the connector to commit its first batch",
            || async {
                let seq = checkpoint_seq(db, &self.name).await;
                (seq > 0).then_some(seq)
            },
        )
        .await;
        assert!(at < self.records as i64, "the feed ended before the outage");
    }

    /// Waits for the whole feed in the repository and checks it record by record.
    async fn reconciles(&self, db: &PgPool, config: &Config) {
        let s = caught_up(db, "resident-registrations", self.records as i64).await;
        assert!(s.reconciled, "{s:?}");
        let registry = Registry::load(&config.registry.dir).unwrap();
        let expected = expected_repository(&registry, "resident-registrations", &self.source);
        assert_repository_matches(db, "resident-registrations", &expected).await;
    }
}

#[tokio::test]
async fn the_pipeline_waits_out_the_hub_database_going_away() {
    let mut config = prepared_config().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let feed = outage_feed(&config, dir.path(), "psb-db-away", 30_000);
    let db = pool(&config).await;
    let proxy = bohai_tests::proxy::TcpProxy::in_front_of_database(&mut config)
        .await
        .unwrap();
    // A pool waits up to this long for a connection before its caller sees an error. Shorter
    // than the outage, so every component that needs the database during it gives up at least
    // once and counts a retry; with the default (5 s) a 3 s outage is only seen by a query
    // that happened to be in flight at the cut.
    config.database.connect_timeout = Duration::from_secs(1);
    config.pipeline.connectors = vec![feed.connector.clone()];
    config.pipeline.sink = true;
    let hub = bohai_tests::RunningHub::start(config.clone())
        .await
        .unwrap();

    feed.started(&db).await;
    proxy.cut();
    tokio::time::sleep(Duration::from_secs(3)).await;
    proxy.restore();
    feed.reconciles(&db, &config).await;

    // The waits are counted: the connector could not record its batch, the sink could not
    // write (whichever the outage caught; at least one of them).
    let metrics = reqwest::get(hub.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let waits = retries(&metrics, r#"component="connector",stage="commit""#)
        + retries(&metrics, r#"component="sink",stage="repository_write""#);
    assert!(waits >= 1.0, "no retry counted:\n{metrics}");
}

/// The database made commits whose answers never reached the hub (each connection broke on
/// the way back): every component that retries a batch after such a failure must find it
/// recorded rather than record it again. Before, the connector's retried commit added the
/// batch to the feed's counts a second time (so `read` never matched the source) and wrote a
/// second audit entry for it.
#[tokio::test]
async fn a_commit_whose_answer_was_lost_is_recorded_once() {
    let mut config = prepared_config().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let feed = outage_feed(&config, dir.path(), "psb-lost-answers", 30_000);
    let db = pool(&config).await;
    let proxy = bohai_tests::proxy::TcpProxy::in_front_of_database(&mut config)
        .await
        .unwrap();
    config.pipeline.connectors = vec![feed.connector.clone()];
    config.pipeline.sink = true;
    let hub = bohai_tests::RunningHub::start(config.clone())
        .await
        .unwrap();

    feed.started(&db).await;
    proxy.lose_commit_answers(40);
    feed.reconciles(&db, &config).await;
    assert_eq!(
        proxy.commit_answers_to_lose(),
        0,
        "the feed ended before 40 commits were made"
    );
    // The connector met at least one (else this test proves nothing about it).
    let metrics = reqwest::get(hub.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let commit_retries = retries(&metrics, r#"component="connector",stage="commit""#);
    assert!(
        commit_retries >= 1.0,
        "no connector commit was retried:\n{metrics}"
    );
    // One audit entry per batch: together they count the source once.
    let audited: Option<i64> = sqlx::query_scalar(
        "SELECT sum((detail::jsonb ->> 'read')::bigint)::bigint FROM audit_log
         WHERE action = 'publish' AND detail::jsonb ->> 'source' = $1",
    )
    .bind(&feed.name)
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(audited, Some(feed.records as i64));
}

/// The count of `bohai_pipeline_retries_total{LABELS}` in the text of `/metrics` (0 when
/// absent).
fn retries(metrics: &str, labels: &str) -> f64 {
    metrics
        .lines()
        .find(|l| l.starts_with(&format!("bohai_pipeline_retries_total{{{labels}}}")))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0)
}

/// A configuration on a fresh database with the hub's topics on `broker`, its pool and
/// registry.
async fn with_private_broker(
    broker: &bohai_tests::broker::PrivateBroker,
) -> (Config, PgPool, Registry) {
    with_brokers(broker.brokers(), 1).await
}

/// A configuration on a fresh database with the hub's topics on the private cluster at
/// `brokers`, `replicas` copies of each (and, with three, two in sync to write).
async fn with_brokers(brokers: String, replicas: i32) -> (Config, PgPool, Registry) {
    let mut config = bohai_tests::test_config().await.unwrap();
    config.kafka.brokers = brokers;
    config.kafka.replication_factor = replicas;
    config.kafka.min_insync_replicas = replicas.min(2);
    bohai_hub::database::prepare_schema(&config.database)
        .await
        .unwrap();
    let db = pool(&config).await;
    let registry = Registry::load(&config.registry.dir).unwrap();
    bohai_hub::registry::sync(&db, &registry).await.unwrap();
    topics::ensure(&config.kafka, &registry).await.unwrap();
    (config, db, registry)
}

/// A hub running the sink and a file connector `name` of 20,000 residents (5 % invalid).
async fn run_feed(
    config: &mut Config,
    dir: &Path,
    name: &str,
) -> (OutageFeed, bohai_tests::RunningHub) {
    let feed = outage_feed(config, dir, name, 20_000);
    config.pipeline.connectors = vec![feed.connector.clone()];
    config.pipeline.sink = true;
    let hub = bohai_tests::RunningHub::start(config.clone())
        .await
        .unwrap();
    (feed, hub)
}

#[tokio::test]
async fn the_pipeline_waits_out_the_broker_going_away() {
    use bohai_tests::broker::PrivateBroker;
    let mut broker = PrivateBroker::start().await.unwrap();
    let (mut config, db, _registry) = with_private_broker(&broker).await;
    let dir = tempfile::tempdir().unwrap();
    let (feed, _hub) = run_feed(&mut config, dir.path(), "psb-broker-away").await;

    feed.started(&db).await;
    broker.kill();
    tokio::time::sleep(Duration::from_secs(3)).await;
    broker.resume().await.unwrap();
    feed.reconciles(&db, &config).await;
}

/// With three brokers, replication factor 3 and two replicas in sync to write, losing one
/// broker in the middle of a feed loses and doubles nothing: the feed goes on and the
/// repository matches the source record by record once the broker is back.
#[tokio::test]
async fn one_of_three_brokers_killed_in_the_middle_of_a_feed_loses_and_doubles_nothing() {
    use bohai_tests::broker::PrivateCluster;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let mut cluster = PrivateCluster::start(3).await.unwrap();
    let (mut config, db, _registry) = with_brokers(cluster.brokers(), 3).await;
    // Every topic the hub made keeps three replicas.
    let client: BaseConsumer = bohai_hub::kafka::client_config(&config.kafka)
        .create()
        .unwrap();
    let topic = topics::dataset_topic(&config.kafka, "resident-registrations");
    // A topic just made may not be in every broker's metadata yet: asked until it is.
    let replicas: Vec<usize> = eventually(
        Duration::from_secs(30),
        "the topic's partitions in the metadata",
        || async {
            let metadata = client
                .fetch_metadata(Some(&topic), Duration::from_secs(10))
                .ok()?;
            let replicas: Vec<usize> = metadata
                .topics()
                .first()?
                .partitions()
                .iter()
                .map(|p| p.replicas().len())
                .collect();
            (!replicas.is_empty()).then_some(replicas)
        },
    )
    .await;
    assert!(replicas.iter().all(|r| *r == 3), "{replicas:?}");
    drop(client);

    let dir = tempfile::tempdir().unwrap();
    let (feed, _hub) = run_feed(&mut config, dir.path(), "psb-one-broker-lost").await;

    feed.started(&db).await;
    cluster.kill(1);
    tokio::time::sleep(Duration::from_secs(5)).await;
    cluster.resume(1).await.unwrap();
    feed.reconciles(&db, &config).await;
}

/// A push answered 503 while the broker is away leaves its records with the producer, to be
/// delivered once the broker is back, whether or not the request committed them. A retry
/// with the same Idempotency-Key but other records must be refused, not answered 200 while
/// the sink skips its records as ones it already applied; the same records are taken once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_after_503_must_send_the_records_the_first_attempt_left_with_the_broker() {
    use bohai_tests::broker::PrivateBroker;
    let mut broker = PrivateBroker::start().await.unwrap();
    let (mut config, db, registry) = with_private_broker(&broker).await;
    config.http.request_timeout = Duration::from_secs(1);
    config.pipeline.sink = true;
    let hub = bohai_tests::RunningHub::start(config.clone())
        .await
        .unwrap();
    let token = bohai_tests::token(&db, "market-regulation").await;
    let dataset = registry.dataset("business-registrations").unwrap();
    let mut generator = bohai_hub::gen::Generator::new(dataset, 37, 0.0).unwrap();
    let first: Vec<Value> = (0..50)
        .map(|_| Value::Object(generator.next_record().record))
        .collect();
    let mut other = first.clone();
    other[3] = Value::Object(generator.next_record().record);
    let push = |body: &Vec<Value>| {
        reqwest::Client::new()
            .post(hub.url("/api/v1/datasets/business-registrations/records"))
            .bearer_auth(&token)
            .header("Idempotency-Key", "left-with-the-broker")
            .json(body)
            .send()
    };

    broker.kill();
    let answer = push(&first).await.unwrap();
    assert_eq!(answer.status(), 503);
    broker.resume().await.unwrap();
    // Waits for the first attempt's records to be delivered, then compares.
    let answer = push(&other).await.unwrap();
    let status = answer.status();
    let body: Value = answer.json().await.unwrap();
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["code"], "idempotency_key_reused", "{body}");
    let answer = push(&first).await.unwrap();
    let status = answer.status();
    let body: Value = answer.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["accepted"], 50, "{body}");
    let s = caught_up(&db, "business-registrations", 50).await;
    assert_eq!((s.rows, s.valid), (50, 50), "{s:?}");
    assert!(s.reconciled, "{s:?}");
}
