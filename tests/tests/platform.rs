//! The platform spine against the real broker and PostgreSQL: Kafka round trip through the
//! admin API, migrations on a fresh database, and the readiness probe.

#![allow(clippy::unwrap_used)] // a test that cannot unwrap should fail loudly

use std::time::Duration;

use bohai_hub::config::KafkaConfig;
use bohai_hub::{database, kafka};
use bohai_tests::{brokers, fresh_database, test_config, unique, RunningHub};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;

fn kafka_config() -> KafkaConfig {
    KafkaConfig {
        brokers: brokers(),
        partitions: 1,
        ..KafkaConfig::default()
    }
}

#[tokio::test]
async fn keyed_record_with_headers_round_trips_on_a_fresh_topic() {
    let config = kafka_config();
    let topic = unique("bohai-test.roundtrip.");
    kafka::ensure_topics(&config, std::slice::from_ref(&topic))
        .await
        .expect("creating the topic through the admin API");
    // Creating it again is harmless.
    kafka::ensure_topics(&config, std::slice::from_ref(&topic))
        .await
        .expect("an existing topic is not an error");

    let producer: FutureProducer = kafka::client_config(&config)
        .set("enable.idempotence", "true")
        .create()
        .unwrap();
    let headers = OwnedHeaders::new()
        .insert(Header {
            key: "dataset",
            value: Some("business-registrations"),
        })
        .insert(Header {
            key: "department",
            value: Some("market-regulation"),
        });
    let payload = r#"{"name":"盘锦辽河油田宏达商贸有限公司"}"#;
    producer
        .send(
            FutureRecord::to(&topic)
                .key("91211100MA0XXXXXXX")
                .payload(payload)
                .headers(headers),
            Duration::from_secs(10),
        )
        .await
        .expect("delivery");

    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &config.brokers)
        .set("group.id", unique("bohai-test-group-"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    consumer.subscribe(&[&topic]).unwrap();
    let message = tokio::time::timeout(Duration::from_secs(30), consumer.recv())
        .await
        .expect("a record within 30 s")
        .expect("a record");
    assert_eq!(message.key(), Some(&b"91211100MA0XXXXXXX"[..]));
    assert_eq!(message.payload_view::<str>().unwrap().unwrap(), payload);
    let headers = message.headers().expect("headers");
    let got: Vec<(String, String)> = headers
        .iter()
        .map(|h| {
            (
                h.key.to_owned(),
                String::from_utf8(h.value.unwrap().to_vec()).unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("dataset".to_owned(), "business-registrations".to_owned()),
            ("department".to_owned(), "market-regulation".to_owned()),
        ]
    );
}

#[tokio::test]
async fn migrations_apply_to_a_fresh_database() {
    let url = fresh_database().await.unwrap();
    let config = bohai_hub::config::DatabaseConfig {
        url,
        ..Default::default()
    };
    let pool = database::pool(&config).unwrap();
    database::migrate(&pool).await.unwrap();
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE success")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(applied, database::MIGRATOR.iter().count() as i64);
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    for t in ["departments", "datasets"] {
        assert!(tables.iter().any(|x| x == t), "{t} missing from {tables:?}");
    }
    // Applying again changes nothing.
    database::migrate(&pool).await.unwrap();
}

async fn get_json(url: &str) -> (u16, serde_json::Value) {
    let resp = reqwest::get(url).await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

#[tokio::test]
async fn readyz_is_200_when_broker_and_database_answer() {
    let hub = RunningHub::start(test_config().await.unwrap())
        .await
        .unwrap();
    let health = reqwest::get(hub.url("/healthz")).await.unwrap();
    assert_eq!(health.status().as_u16(), 200);
    // The shared broker may be busy with other tests: allow it a minute to answer.
    let body =
        bohai_tests::eventually(Duration::from_secs(60), "/readyz to answer 200", || async {
            let (status, body) = get_json(&hub.url("/readyz")).await;
            (status == 200).then_some(body)
        })
        .await;
    assert_eq!(body["status"], "ready");
    assert_eq!(body["failed"], serde_json::json!([]));
}

#[tokio::test]
async fn readyz_is_503_naming_the_broker_when_none_listens() {
    // A port that was free a moment ago: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut config = test_config().await.unwrap();
    config.kafka.brokers = format!("127.0.0.1:{port}");
    config.kafka.request_timeout = Duration::from_secs(2);
    let hub = RunningHub::start(config).await.unwrap();
    let (status, body) = get_json(&hub.url("/readyz")).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["failed"], serde_json::json!(["broker"]));
    assert_eq!(body["broker"]["ok"], false);
    assert_eq!(body["database"]["ok"], true);
}

#[tokio::test]
async fn openapi_document_describes_every_route() {
    let hub = RunningHub::start(test_config().await.unwrap())
        .await
        .unwrap();
    let (status, doc) = get_json(&hub.url("/api/v1/openapi.json")).await;
    assert_eq!(status, 200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for path in ["/healthz", "/readyz", "/api/v1/openapi.json"] {
        assert!(
            doc["paths"].get(path).is_some(),
            "{path} not in the document"
        );
    }
}

#[tokio::test]
async fn topics_are_created_with_the_configured_settings() {
    use rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};
    let config = KafkaConfig {
        retention: Duration::from_secs(2 * 24 * 3600),
        compression: "zstd".to_owned(),
        ..kafka_config()
    };
    let topic = unique("bohai-test.settings.");
    kafka::ensure_topics(&config, std::slice::from_ref(&topic))
        .await
        .unwrap();
    let admin: AdminClient<_> = ClientConfig::new()
        .set("bootstrap.servers", &config.brokers)
        .create()
        .unwrap();
    // A topic just created may not be described by every broker yet (its configuration
    // comes back empty once in a while): asked again until it is.
    let resource = bohai_tests::eventually(
        Duration::from_secs(30),
        "the new topic's configuration to be described",
        || async {
            let described = admin
                .describe_configs(
                    [&ResourceSpecifier::Topic(&topic)],
                    &AdminOptions::new().request_timeout(Some(Duration::from_secs(30))),
                )
                .await
                .ok()?;
            let resource = described.into_iter().next()?.ok()?;
            resource
                .get("retention.ms")
                .and_then(|e| e.value.clone())
                .is_some()
                .then_some(resource)
        },
    )
    .await;
    let value = |name: &str| {
        resource
            .get(name)
            .and_then(|e| e.value.clone())
            .unwrap_or_default()
    };
    assert_eq!(value("retention.ms"), (2 * 24 * 3600 * 1000).to_string());
    assert_eq!(value("compression.type"), "zstd");
    assert_eq!(value("min.insync.replicas"), "1");
    assert_eq!(value("max.message.bytes"), kafka::MAX_MESSAGE_BYTES);
}

#[tokio::test]
async fn a_command_prints_what_was_asked_and_logs_only_when_asked() {
    let config = bohai_tests::prepared_config().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = bohai_tests::write_config(&config, dir.path()).unwrap();
    let run = |args: &[&str], rust_log: Option<&str>| {
        let mut command = bohai_tests::bohai(&file);
        command.env_remove("RUST_LOG").args(args);
        if let Some(filter) = rust_log {
            command.env("RUST_LOG", filter);
        }
        let out = bohai_tests::output_within(&mut command, Duration::from_secs(120));
        assert!(out.status.success(), "{args:?}: {out:?}");
        (
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    };
    // The database is migrated already: migrating again makes PostgreSQL say so in a notice.
    let (stdout, stderr) = run(&["migrate"], None);
    assert!(
        stdout.starts_with("database schema is up to date"),
        "{stdout}"
    );
    assert_eq!(stderr, "", "a quiet command logged on standard error");
    let (verbose_stdout, _) = run(&["--verbose", "migrate"], None);
    assert_eq!(verbose_stdout, stdout);
    // Asked for, PostgreSQL's notice is there to read.
    let (_, stderr) = run(&["migrate"], Some("sqlx=info"));
    assert!(stderr.contains("already exists"), "{stderr}");
}
