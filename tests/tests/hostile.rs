//! Hostile input never stops the hub: the hostile corpus (`tests/corpus/hostile-records.jsonl`)
//! through every way in while another department's clean feed flows; a record the repository
//! refuses anyway is dead-lettered by the sink and the rest of its batch is written.

#![allow(clippy::unwrap_used)] // a test that cannot unwrap should fail loudly

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use bohai_hub::auth;
use bohai_hub::config::Config;
use bohai_hub::pipeline::stats::{dataset_stats, DatasetStats};
use bohai_hub::pipeline::topics;
use bohai_tests::{
    bohai, bohai_ok, bohai_run, command_ok, dead_letters, eventually, prepared_config,
    write_config, RunningHub,
};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::Value;
use sqlx::PgPool;

/// One record of the hostile corpus.
struct Hostile {
    class: String,
    rule: String,
    pointer: Option<String>,
    record: String,
}

fn corpus() -> Vec<Hostile> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/hostile-records.jsonl");
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|line| {
            let v: Value = serde_json::from_str(line).unwrap();
            Hostile {
                class: v["class"].as_str().unwrap().to_owned(),
                rule: v["rule"].as_str().unwrap().to_owned(),
                pointer: v["pointer"].as_str().map(str::to_owned),
                record: v["record"].as_str().unwrap().to_owned(),
            }
        })
        .collect()
}

/// Fails unless `reasons` has one with the corpus entry's rule (and pointer, if it names one).
fn assert_refused_as(h: &Hostile, reasons: &Value, way: &str) {
    let found = reasons.as_array().into_iter().flatten().any(|r| {
        r["rule"] == h.rule.as_str()
            && h.pointer
                .as_ref()
                .is_none_or(|p| r["pointer"] == p.as_str())
    });
    assert!(
        found,
        "{way}: `{}` must be refused as {} at {:?}; reasons: {reasons}",
        h.class, h.rule, h.pointer
    );
}

async fn stats(db: &PgPool, dataset: &str) -> DatasetStats {
    dataset_stats(db, Some(dataset)).await.unwrap().remove(0)
}

/// Every rejected record of `source`, in the order of the source: its reasons.
async fn rejected_reasons(db: &PgPool, source: &str) -> Vec<Value> {
    sqlx::query_scalar("SELECT reasons FROM rejected_records WHERE source = $1 ORDER BY seq")
        .bind(source)
        .fetch_all(db)
        .await
        .unwrap()
}

fn file_connector(dir: &Path, name: &str, path: &Path, encoding: &str) -> std::path::PathBuf {
    let file = dir.join(format!("{name}.toml"));
    std::fs::write(
        &file,
        format!(
            "name = \"{name}\"\ndataset = \"business-registrations\"\n[source]\nkind = \"file\"\npath = \"{}\"\nformat = \"jsonl\"\nencoding = \"{encoding}\"\n",
            path.display()
        ),
    )
    .unwrap();
    file
}

#[tokio::test]
async fn every_hostile_record_is_refused_at_every_way_in_while_a_clean_feed_flows() {
    let corpus = corpus();
    let n = corpus.len();
    let config = prepared_config().await.unwrap();
    let db = bohai_hub::database::pool(&config.database).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config_file = write_config(&config, dir.path()).unwrap();
    let hub = RunningHub::start(config.clone()).await.unwrap();
    let client = reqwest::Client::new();
    let market = bohai_tests::token(&db, "market-regulation").await;
    let police = bohai_tests::token(&db, "public-security").await;

    // Another department's clean feed, pushed in pieces the whole time.
    let clean_file = dir.path().join("clean.jsonl");
    command_ok(
        bohai(&config_file)
            .args([
                "gen",
                "resident-registrations",
                "1000",
                "--invalid-ratio",
                "0",
                "-o",
            ])
            .arg(&clean_file),
    );
    let clean_lines: Vec<String> = std::fs::read_to_string(&clean_file)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    let clean_url = hub.url("/api/v1/datasets/resident-registrations/records");
    let clean = {
        let client = client.clone();
        tokio::spawn(async move {
            let mut accepted = 0;
            for piece in clean_lines.chunks(100) {
                let r = client
                    .post(&clean_url)
                    .bearer_auth(&police)
                    .header("content-type", "application/x-ndjson")
                    .body(piece.join("\n"))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status().as_u16(), 200);
                accepted += r.json::<Value>().await.unwrap()["accepted"]
                    .as_u64()
                    .unwrap();
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            accepted
        })
    };

    // HTTP push, as NDJSON and as a JSON array: every record refused with its rule.
    let url = hub.url("/api/v1/datasets/business-registrations/records");
    let texts: Vec<&str> = corpus.iter().map(|h| h.record.as_str()).collect();
    for (way, content_type, body) in [
        ("push ndjson", "application/x-ndjson", texts.join("\n")),
        (
            "push array",
            "application/json",
            format!("[{}]", texts.join(",")),
        ),
    ] {
        let r = client
            .post(&url)
            .bearer_auth(&market)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let answer: Value = r.json().await.unwrap();
        assert_eq!(status, 200, "{way}: {answer}");
        assert_eq!(answer["accepted"], 0, "{way}: {answer}");
        let rejects = answer["rejects"].as_array().unwrap();
        assert_eq!(rejects.len(), n, "{way}: {answer}");
        for (i, h) in corpus.iter().enumerate() {
            let reject = rejects.iter().find(|r| r["seq"] == i).unwrap();
            assert_refused_as(h, &reject["reasons"], way);
        }
    }

    // The file connector, in UTF-8 and in GBK.
    let utf8 = dir.path().join("hostile.jsonl");
    std::fs::write(&utf8, texts.join("\n") + "\n").unwrap();

    let gbk = dir.path().join("hostile-gbk.jsonl");
    let utf8_text = texts.join("\n") + "\n";
    let (encoded, _, unmappable) = encoding_rs::GBK.encode(&utf8_text);
    assert!(!unmappable, "the corpus is written in characters GBK has");
    std::fs::write(&gbk, &encoded).unwrap();
    for (name, path, encoding) in [
        ("hostile-utf8", &utf8, "utf-8"),
        ("hostile-gbk", &gbk, "gbk"),
    ] {
        let connector = file_connector(dir.path(), name, path, encoding);
        let summary: Value = serde_json::from_slice(&command_ok(
            bohai(&config_file)
                .args(["connect", "run", "--json"])
                .arg(&connector),
        ))
        .unwrap();
        assert_eq!(summary["read"], n, "{name}: {summary}");
        assert_eq!(summary["rejected"], n, "{name}: {summary}");
        let reasons = rejected_reasons(&db, name).await;
        assert_eq!(reasons.len(), n, "{name}");
        for (h, r) in corpus.iter().zip(&reasons) {
            assert_refused_as(h, r, name);
        }
    }

    // Every hostile record is on the dead-letter topic with its reasons.
    let letters = dead_letters(&config.kafka, 4 * n).await;
    let rules: HashSet<&str> = corpus.iter().map(|h| h.rule.as_str()).collect();
    for (_, reasons) in &letters {
        assert!(
            reasons
                .as_array()
                .unwrap()
                .iter()
                .any(|r| rules.contains(r["rule"].as_str().unwrap())),
            "{reasons}"
        );
    }

    // The clean feed reached the repository whole, and every count reconciles.
    assert_eq!(clean.await.unwrap(), 1000);
    let residents = eventually(
        Duration::from_secs(120),
        "the clean feed to reach the repository",
        || async {
            let s = stats(&db, "resident-registrations").await;
            (s.pending == 0 && s.valid == 1000).then_some(s)
        },
    )
    .await;
    assert!(residents.reconciled, "{residents:?}");
    assert_eq!(residents.rows, 1000);
    let business = stats(&db, "business-registrations").await;
    assert_eq!(
        (
            business.read,
            business.valid,
            business.rejected,
            business.rows
        ),
        (4 * n as i64, 0, 4 * n as i64, 0)
    );
    assert!(business.reconciled, "{business:?}");
}

/// Produces `records` (key, payload) straight onto partition 0 of `dataset`'s topic, as a
/// producer other than the hub would.
async fn produce_raw(config: &Config, dataset: &str, records: &[(&str, &str)]) {
    let producer: FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &config.kafka.brokers)
        .create()
        .unwrap();
    let topic = topics::dataset_topic(&config.kafka, dataset);
    for (key, payload) in records {
        producer
            .send(
                FutureRecord::to(&topic)
                    .key(*key)
                    .payload(*payload)
                    .partition(0),
                Duration::from_secs(30),
            )
            .await
            .map_err(|(e, _)| e)
            .unwrap();
    }
}

#[tokio::test]
async fn a_record_the_repository_refuses_is_dead_lettered_and_the_rest_is_written() {
    let config = prepared_config().await.unwrap();
    let db = bohai_hub::database::pool(&config.database).unwrap();
    // Records put on the topic by a producer that does not validate (not the hub): the one
    // with `\u0000` passes no check of the hub's, and PostgreSQL's jsonb refuses it.
    let base = std::fs::read_to_string(
        bohai_schemas::registry::builtin_dir()
            .join("datasets/business-registrations/examples/valid.jsonl"),
    )
    .unwrap();
    let good: Vec<String> = base.lines().map(str::to_owned).collect();
    let poisoned = r#"{"credit_code": "POISON", "address": "盘锦\u0000"}"#;
    let mut records: Vec<(String, String)> = Vec::new();
    for (i, line) in good.iter().enumerate().take(2) {
        let v: Value = serde_json::from_str(line).unwrap();
        records.push((
            v["credit_code"].as_str().unwrap().to_owned(),
            good[i].clone(),
        ));
    }
    records.push(("POISON".to_owned(), poisoned.to_owned()));
    for line in good.iter().skip(2) {
        let v: Value = serde_json::from_str(line).unwrap();
        records.push((v["credit_code"].as_str().unwrap().to_owned(), line.clone()));
    }
    // A key whose latest version is refused keeps its version before that.
    let mut earlier: Value = serde_json::from_str(&good[0]).unwrap();
    earlier["address"] = Value::from("辽宁省盘锦市兴隆台区一号");
    let twice_key = earlier["credit_code"].as_str().unwrap().to_owned();
    let mut refused_later = earlier.clone();
    refused_later["address"] = Value::from("盘锦\u{0}");
    records.push((twice_key.clone(), earlier.to_string()));
    records.push((twice_key.clone(), refused_later.to_string()));
    let records_ref: Vec<(&str, &str)> = records
        .iter()
        .map(|(k, p)| (k.as_str(), p.as_str()))
        .collect();
    produce_raw(&config, "business-registrations", &records_ref).await;
    let distinct: HashSet<&str> = records_ref.iter().map(|(k, _)| *k).collect();
    let good_keys = distinct.len() - 1;

    let _hub = RunningHub::start(config.clone()).await.unwrap();
    let s = eventually(
        Duration::from_secs(60),
        "the sink to write around the refused record",
        || async {
            let s = stats(&db, "business-registrations").await;
            (s.refused == 2 && s.rows == good_keys as i64).then_some(s)
        },
    )
    .await;
    assert_eq!(s.inserted, good_keys as i64, "{s:?}");
    // Every record is counted once: written (inserted or updated) or refused.
    assert_eq!(
        s.inserted + s.updated + s.refused,
        records_ref.len() as i64,
        "{s:?}"
    );
    let address: Value = sqlx::query_scalar(
        "SELECT data->'address' FROM repository_records WHERE dataset = $1 AND pk = $2",
    )
    .bind("business-registrations")
    .bind(&twice_key)
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(address, "辽宁省盘锦市兴隆台区一号");
    // The refused record, with the database's reason, in the rejected records and on the
    // dead-letter topic.
    let reasons = rejected_reasons(&db, "kafka").await;
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert_eq!(reasons[0][0]["rule"], "repository_refused");
    let message = reasons[0][0]["message"].as_str().unwrap();
    assert!(message.contains("SQLSTATE"), "{message}");
    let letters = dead_letters(&config.kafka, 2).await;
    let letter_bytes: HashSet<&[u8]> = letters.iter().map(|l| l.0.as_slice()).collect();
    let refused_later = refused_later.to_string();
    assert_eq!(
        letter_bytes,
        HashSet::from([poisoned.as_bytes(), refused_later.as_bytes()])
    );
    assert!(letters
        .iter()
        .all(|l| l.1[0]["rule"] == "repository_refused"));

    // The sink goes on: a record produced afterwards is written too.
    let mut later: Value = serde_json::from_str(&good[0]).unwrap();
    later["address"] = Value::from("辽宁省盘锦市双台子区");
    let later_key = later["credit_code"].as_str().unwrap().to_owned();
    produce_raw(
        &config,
        "business-registrations",
        &[(&later_key, &later.to_string())],
    )
    .await;
    eventually(
        Duration::from_secs(60),
        "a later record to be written",
        || async {
            let address: Option<Value> = sqlx::query_scalar(
                "SELECT data->'address' FROM repository_records WHERE dataset = $1 AND pk = $2",
            )
            .bind("business-registrations")
            .bind(&later_key)
            .fetch_optional(&db)
            .await
            .unwrap();
            (address == Some(Value::from("辽宁省盘锦市双台子区"))).then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn a_component_that_cannot_work_stops_alone_and_says_why() {
    let mut config = prepared_config().await.unwrap();
    // A stopped duty tries again this often (minutes by default).
    config.pipeline.stopped_duty_retry = Duration::from_secs(1);
    // One role that owns the tables, so that it can take its own permissions away (a hub
    // with a separate owner would grant them back at start).
    if let Some(owner) = config.database.owner_url.take() {
        config.database.url = owner;
    }
    let db = bohai_hub::database::pool(&config.database).unwrap();
    // The repository sink may not write the repository, and the ops-samples duty may not
    // keep its samples: permissions an operator took away.
    sqlx::query("REVOKE INSERT, UPDATE ON repository_records FROM CURRENT_USER")
        .execute(&db)
        .await
        .unwrap();
    sqlx::query("REVOKE INSERT ON ops_feed_samples FROM CURRENT_USER")
        .execute(&db)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config_file = write_config(&config, dir.path()).unwrap();
    let hub = RunningHub::start(config.clone()).await.unwrap();
    let market = bohai_tests::token(&db, "market-regulation").await;
    let ops = auth::create_scoped_token(&db, "data-administration", &[auth::Scope::Ops], None)
        .await
        .unwrap()
        .secret;
    let valid = std::fs::read_to_string(
        bohai_schemas::registry::builtin_dir()
            .join("datasets/business-registrations/examples/valid.jsonl"),
    )
    .unwrap();
    let client = reqwest::Client::new();
    let push = || {
        client
            .post(hub.url("/api/v1/datasets/business-registrations/records"))
            .bearer_auth(&market)
            .header("content-type", "application/x-ndjson")
            .body(valid.clone())
            .send()
    };
    assert_eq!(push().await.unwrap().status().as_u16(), 200);

    // The sink stops, once, with the reason; it does not retry for ever. The duty stops too,
    // on its own.
    for component in ["repository-sink", "ops-samples"] {
        let reason = eventually(Duration::from_secs(60), component, || async {
            sqlx::query_scalar::<_, String>(
                "SELECT reason FROM ops_component_failures WHERE component = $1",
            )
            .bind(component)
            .fetch_optional(&db)
            .await
            .unwrap()
        })
        .await;
        assert!(
            reason.contains("permission denied"),
            "{component}: {reason}"
        );
    }

    // The rest of the hub goes on: a department still pushes, the API answers.
    let r = push().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["accepted"], 5);

    // Every feed says why nothing reaches the repository.
    let feeds: Vec<Value> = client
        .get(hub.url("/api/v1/ops/feeds"))
        .bearer_auth(&ops)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let push_feed = feeds
        .iter()
        .find(|f| f["dataset"] == "business-registrations")
        .unwrap();
    assert_eq!(push_feed["state"], "failing", "{push_feed}");
    assert!(
        push_feed["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r.as_str().unwrap().contains("repository sink stopped")),
        "{push_feed}"
    );
    let status = String::from_utf8(command_ok(bohai(&config_file).arg("status"))).unwrap();
    assert!(
        status.contains("STOPPED  repository-sink") && status.contains("permission denied"),
        "{status}"
    );
    assert!(status.contains("STOPPED  ops-samples"), "{status}");
    let stopped: Vec<String> =
        sqlx::query_scalar("SELECT component FROM ops_component_failures ORDER BY component")
            .fetch_all(&db)
            .await
            .unwrap();
    assert_eq!(stopped, ["ops-samples", "repository-sink"]);
    let s = stats(&db, "business-registrations").await;
    assert_eq!((s.valid, s.rows, s.pending), (10, 0, 10), "{s:?}");

    // A stopped duty is tried again: once the permission is back it works and leaves STOPPED
    // (a CRL that was never reissued again would stop every seal of the city).
    sqlx::query("GRANT INSERT ON ops_feed_samples TO CURRENT_USER")
        .execute(&db)
        .await
        .unwrap();
    eventually(
        Duration::from_secs(60),
        "ops-samples working again",
        || async {
            let stopped: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM ops_component_failures WHERE component = 'ops-samples'",
            )
            .fetch_one(&db)
            .await
            .unwrap();
            (stopped == 0).then_some(())
        },
    )
    .await;
}

/// Sets `dataset`'s topic's `max.message.bytes` (the topic's other settings return to the
/// broker's defaults).
async fn tighten_topic(config: &Config, dataset: &str, max_message_bytes: usize) {
    use rdkafka::admin::{AdminClient, AdminOptions, AlterConfig, ResourceSpecifier};
    let admin: AdminClient<rdkafka::client::DefaultClientContext> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &config.kafka.brokers)
        .create()
        .unwrap();
    let topic = topics::dataset_topic(&config.kafka, dataset);
    let limit = max_message_bytes.to_string();
    let results = admin
        .alter_configs(
            &[AlterConfig::new(ResourceSpecifier::Topic(&topic)).set("max.message.bytes", &limit)],
            &AdminOptions::new(),
        )
        .await
        .unwrap();
    for r in results {
        r.map_err(|(t, e)| format!("{t:?}: {e}")).unwrap();
    }
}

#[tokio::test]
async fn a_topic_that_refuses_the_hubs_records_stops_its_feed_with_the_fix_and_loses_nothing() {
    let config = prepared_config().await.unwrap();
    let db = bohai_hub::database::pool(&config.database).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config_file = write_config(&config, dir.path()).unwrap();
    // The hub's producers do not compress: a record of 6 kB is sent as 6 kB.
    tighten_topic(&config, "business-registrations", 4096).await;
    let examples = std::fs::read_to_string(
        bohai_schemas::registry::builtin_dir()
            .join("datasets/business-registrations/examples/valid.jsonl"),
    )
    .unwrap();
    let small: Vec<Value> = examples
        .lines()
        .take(3)
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(small.len(), 3);
    // Valid by the schema (business_scope takes up to 2,000 characters), larger than the topic.
    let mut large = small[1].clone();
    large["business_scope"] = Value::from("经营".repeat(1000));
    let lines: Vec<String> = [&small[0], &large, &small[2]]
        .iter()
        .map(|v| v.to_string())
        .collect();
    let file = dir.path().join("tight.jsonl");
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let connector = file_connector(dir.path(), "tight", &file, "utf-8");

    // The broker refuses a whole produce batch, innocent records with the large one: not one
    // record's fault, and not a thing retrying mends. The connector stops and says what to fix;
    // nothing of the batch is recorded, so nothing is lost.
    let out = bohai_run(
        &config_file,
        &["connect", "run", connector.to_str().unwrap()],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("max.message.bytes"), "{stderr}");
    let s = stats(&db, "business-registrations").await;
    assert_eq!(s.read, 0, "{s:?}");

    // HTTP push of the same records: refused as a whole, with the API's error, nothing counted.
    // Records of other produce batches may have reached the topic: a retry with the same
    // Idempotency-Key (what the answer asks for) is recognised record by record.
    let hub = RunningHub::start(config.clone()).await.unwrap();
    let token = bohai_tests::token(&db, "market-regulation").await;
    let push = || {
        reqwest::Client::new()
            .post(hub.url("/api/v1/datasets/business-registrations/records"))
            .bearer_auth(&token)
            .header("Idempotency-Key", "tight-topic-1")
            .json(&[&small[0], &large, &small[2]])
            .send()
    };
    let answer = push().await.unwrap();
    assert_eq!(answer.status(), 503);
    let body: Value = answer.json().await.unwrap();
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("max.message.bytes"),
        "{body}"
    );
    assert_eq!(stats(&db, "business-registrations").await.read, 0);
    // Without an Idempotency-Key: the answer names the key the request was given, to send
    // it again with.
    let answer = reqwest::Client::new()
        .post(hub.url("/api/v1/datasets/business-registrations/records"))
        .bearer_auth(&token)
        .json(&[&small[0], &large, &small[2]])
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 503);
    let body: Value = answer.json().await.unwrap();
    let message = body["message"].as_str().unwrap();
    let given = message
        .split("Idempotency-Key: ")
        .nth(1)
        .and_then(|rest| rest.split('`').next())
        .unwrap_or_else(|| panic!("no key to send again with: {body}"))
        .to_owned();

    // Once the topic takes what the hub sends, the same run and the same requests deliver
    // everything, once.
    tighten_topic(&config, "business-registrations", 3 << 20).await;
    bohai_ok(
        &config_file,
        &["connect", "run", connector.to_str().unwrap()],
    );
    let answer: Value = push().await.unwrap().json().await.unwrap();
    assert_eq!(answer["accepted"], 3, "{answer}");
    let answer: Value = reqwest::Client::new()
        .post(hub.url("/api/v1/datasets/business-registrations/records"))
        .bearer_auth(&token)
        .header("Idempotency-Key", &given)
        .json(&[&small[0], &large, &small[2]])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["accepted"], 3, "{answer}");
    let s = eventually(
        Duration::from_secs(60),
        "the three feeds in the repository",
        || async {
            let s = stats(&db, "business-registrations").await;
            (s.pending == 0 && s.read == 9).then_some(s)
        },
    )
    .await;
    assert_eq!((s.rows, s.valid, s.rejected), (3, 9, 0), "{s:?}");
    assert!(s.reconciled, "{s:?}");
}

/// The broker refuses one record while later batches of the same feed are already on their
/// way: none of those may reach the topic ahead of the refused batch's innocent records, or
/// the sink would take the innocent ones, sent again later, for records it already applied.
#[tokio::test]
async fn a_refused_batch_with_later_batches_in_flight_loses_no_record_once_the_topic_is_fixed() {
    let config = prepared_config().await.unwrap();
    let db = bohai_hub::database::pool(&config.database).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config_file = write_config(&config, dir.path()).unwrap();
    tighten_topic(&config, "business-registrations", 4096).await;
    let registry = bohai_hub::registry::load(&config.registry).unwrap();
    let dataset = registry.dataset("business-registrations").unwrap();
    let mut generator = bohai_hub::gen::Generator::new(dataset, 23, 0.0).unwrap();
    let mut records: Vec<Value> = (0..3000)
        .map(|_| Value::Object(generator.next_record().record))
        .collect();
    // In the third batch of 50: many batches follow it, several of them in flight when the
    // broker refuses it.
    records[120]["business_scope"] = Value::from("经营".repeat(1000));
    let keys: HashSet<String> = records
        .iter()
        .map(|r| r["credit_code"].as_str().unwrap().to_owned())
        .collect();
    let file = dir.path().join("many.jsonl");
    let lines: Vec<String> = records.iter().map(Value::to_string).collect();
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let connector = dir.path().join("many.toml");
    std::fs::write(
        &connector,
        format!(
            "name = \"many\"\ndataset = \"business-registrations\"\nbatch_size = 50\n[source]\nkind = \"file\"\npath = \"{}\"\nformat = \"jsonl\"\n",
            file.display()
        ),
    )
    .unwrap();

    // Run inside `serve`, whose producer and sink go on after the connector stops.
    let mut serving = config.clone();
    serving.pipeline.connectors = vec![connector.clone()];
    let hub = RunningHub::start(serving).await.unwrap();
    let stopped = eventually(
        Duration::from_secs(60),
        "the connector stopped with the fix in its reason",
        || async {
            sqlx::query_scalar::<_, Option<String>>(
                "SELECT error FROM ops_connector_runs WHERE connector = 'many' AND state = 'failed'",
            )
            .fetch_optional(&db)
            .await
            .unwrap()
            .flatten()
        },
    )
    .await;
    assert!(stopped.contains("max.message.bytes"), "{stopped}");
    // Whatever reached the topic is applied before the hub stops.
    let mut last = None;
    loop {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let s = stats(&db, "business-registrations").await;
        let applied = (s.inserted, s.duplicates_skipped);
        if last == Some(applied) {
            break;
        }
        last = Some(applied);
    }
    drop(hub);

    tighten_topic(&config, "business-registrations", 3 << 20).await;
    bohai_ok(
        &config_file,
        &["connect", "run", connector.to_str().unwrap()],
    );
    let _hub = RunningHub::start(config.clone()).await.unwrap();
    let s = eventually(
        Duration::from_secs(120),
        "the feed in the repository",
        || async {
            let s = stats(&db, "business-registrations").await;
            (s.pending == 0 && s.valid == 3000).then_some(s)
        },
    )
    .await;
    assert_eq!(s.rows, i64::try_from(keys.len()).unwrap(), "{s:?}");
    assert!(s.reconciled, "{s:?}");
}

/// Failed records of `dataset` counted in the hub's `/metrics`.
async fn produce_errors(hub: &RunningHub, dataset: &str) -> f64 {
    hub.metric(&format!(
        "bohai_pipeline_produce_errors_total{{dataset=\"{dataset}\"}}"
    ))
    .await
    .unwrap_or(0.0)
}

/// A topic refusing one department's records (an operator's mistake, an ACL taken away)
/// stops that department's sending; another department's feed, with batches on their way at
/// that moment, is not touched: none of its records is failed and sent again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_refusing_one_departments_records_fails_no_record_of_another_department() {
    let config = prepared_config().await.unwrap();
    let db = bohai_hub::database::pool(&config.database).unwrap();
    let dir = tempfile::tempdir().unwrap();
    tighten_topic(&config, "business-registrations", 4096).await;
    let registry = bohai_hub::registry::load(&config.registry).unwrap();
    let residents = registry.dataset("resident-registrations").unwrap();
    let mut generator = bohai_hub::gen::Generator::new(residents, 29, 0.0).unwrap();
    let lines: Vec<String> = (0..40_000)
        .map(|_| Value::Object(generator.next_record().record).to_string())
        .collect();
    let file = dir.path().join("residents.jsonl");
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let connector = dir.path().join("residents.toml");
    std::fs::write(
        &connector,
        format!(
            "name = \"residents\"\ndataset = \"resident-registrations\"\nbatch_size = 200\n[source]\nkind = \"file\"\npath = \"{}\"\nformat = \"jsonl\"\n",
            file.display()
        ),
    )
    .unwrap();
    let mut serving = config.clone();
    serving.pipeline.connectors = vec![connector];
    let before = {
        // The counter is the process's: read it through a hub of its own first.
        let hub = RunningHub::start(config.clone()).await.unwrap();
        produce_errors(&hub, "resident-registrations").await
    };
    let hub = RunningHub::start(serving).await.unwrap();
    let token = bohai_tests::token(&db, "market-regulation").await;
    let examples = std::fs::read_to_string(
        bohai_schemas::registry::builtin_dir()
            .join("datasets/business-registrations/examples/valid.jsonl"),
    )
    .unwrap();
    let mut large: Value = serde_json::from_str(examples.lines().next().unwrap()).unwrap();
    large["business_scope"] = Value::from("经营".repeat(1000));
    // While the residents' feed runs, market-regulation pushes a record its topic refuses.
    let mut refused = 0;
    loop {
        let answer = reqwest::Client::new()
            .post(hub.url("/api/v1/datasets/business-registrations/records"))
            .bearer_auth(&token)
            .json(&[&large])
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 503);
        refused += 1;
        if stats(&db, "resident-registrations").await.read == 40_000 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(refused > 1, "the feed ended before the second refusal");
    let s = eventually(
        Duration::from_secs(120),
        "the residents' feed in the repository",
        || async {
            let s = stats(&db, "resident-registrations").await;
            (s.pending == 0 && s.valid == 40_000).then_some(s)
        },
    )
    .await;
    assert!(s.reconciled, "{s:?}");
    assert_eq!(
        produce_errors(&hub, "resident-registrations").await,
        before,
        "records of public-security's feed were failed by market-regulation's refusal"
    );
}
