//! HTTP push against a running hub with the real broker and PostgreSQL: authentication, the
//! department boundary, per-record rejects, NDJSON, idempotent retries, and the records
//! reaching the repository.

#![allow(clippy::unwrap_used)] // a test that cannot unwrap should fail loudly

use std::time::Duration;

use bohai_hub::pipeline::stats::dataset_stats;
use bohai_tests::{eventually, prepared_config, RunningHub};
use serde_json::{json, Value};

fn valid_business(i: usize) -> Value {
    let lines = std::fs::read_to_string(
        bohai_schemas::registry::builtin_dir()
            .join("datasets/business-registrations/examples/valid.jsonl"),
    )
    .unwrap();
    serde_json::from_str(lines.lines().nth(i).unwrap()).unwrap()
}

#[tokio::test]
async fn a_department_pushes_into_its_own_dataset_and_gets_every_reject_explained() {
    let config = prepared_config().await.unwrap();
    let db = bohai_hub::database::pool(&config.database).unwrap();
    let hub = RunningHub::start(config).await.unwrap();
    let url = hub.url("/api/v1/datasets/business-registrations/records");
    let client = reqwest::Client::new();
    let market = bohai_tests::token(&db, "market-regulation").await;
    let police = bohai_tests::token(&db, "public-security").await;

    // No token, a bad token, another department's token.
    let r = client.post(&url).json(&json!([])).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let r = client
        .post(&url)
        .bearer_auth("bohai_not-a-token")
        .json(&json!([]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let r = client
        .post(&url)
        .bearer_auth(&police)
        .json(&json!([valid_business(0)]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], "forbidden");

    // Three valid records, one with a bad identity number, one that is not an object.
    let mut bad_id = valid_business(3);
    bad_id["legal_rep_id_number"] = json!("11010519491231002Y");
    let records = json!([
        valid_business(0),
        valid_business(1),
        bad_id,
        42,
        valid_business(2)
    ]);
    let r = client
        .post(&url)
        .bearer_auth(&market)
        .json(&records)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["accepted"], 3, "{body}");
    assert_eq!(body["rejected"], 2);
    assert_eq!(body["rejects"][0]["seq"], 2);
    assert_eq!(
        body["rejects"][0]["reasons"][0]["pointer"],
        "/legal_rep_id_number"
    );
    assert_eq!(body["rejects"][0]["reasons"][0]["rule"], "format");
    assert_eq!(body["rejects"][1]["reasons"][0]["rule"], "not_an_object");

    // NDJSON, with a line that is not JSON, sent twice with the same Idempotency-Key.
    let ndjson = format!("{}\n{{not json\n{}\n", valid_business(3), valid_business(4));
    let mut answers = Vec::new();
    for _ in 0..2 {
        let r = client
            .post(&url)
            .bearer_auth(&market)
            .header("content-type", "application/x-ndjson")
            .header("idempotency-key", "batch-2026-11-27-001")
            .body(ndjson.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        answers.push(r.json::<Value>().await.unwrap());
    }
    assert_eq!(answers[0], answers[1]);
    assert_eq!(answers[0]["accepted"], 2);
    assert_eq!(
        answers[0]["rejects"][0]["reasons"][0]["rule"],
        "json_syntax"
    );

    // Neither an array nor NDJSON.
    let r = client
        .post(&url)
        .bearer_auth(&market)
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);

    // Counted once, and in the repository.
    let s = eventually(
        Duration::from_secs(60),
        "the sink to write the pushed records",
        || async {
            let s = dataset_stats(&db, Some("business-registrations"))
                .await
                .unwrap()
                .remove(0);
            (s.pending == 0 && s.rows == 5).then_some(s)
        },
    )
    .await;
    assert_eq!((s.read, s.valid, s.rejected), (8, 5, 3));
    assert!(s.reconciled, "{s:?}");
}

/// A hub, its database and a publishing token of market-regulation.
async fn push_hub(
    config: bohai_hub::config::Config,
) -> (RunningHub, sqlx::PgPool, String, bohai_hub::config::Config) {
    let db = bohai_hub::database::pool(&config.database).unwrap();
    let hub = RunningHub::start(config.clone()).await.unwrap();
    let token = bohai_tests::token(&db, "market-regulation").await;
    (hub, db, token, config)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_of_100000_records_in_one_request_is_read_as_a_stream() {
    let (hub, db, token, config) = push_hub(prepared_config().await.unwrap()).await;
    let registry = bohai_hub::registry::load(&config.registry).unwrap();
    let dataset = registry.dataset("business-registrations").unwrap();
    let mut generator = bohai_hub::gen::Generator::new(dataset, 16, 0.0).unwrap();
    let mut body = Vec::new();
    for _ in 0..100_000 {
        serde_json::to_writer(&mut body, &generator.next_record().record).unwrap();
        body.push(b'\n');
    }
    // Far over the 2 MB an API body may have: this one is read as it arrives.
    assert!(body.len() > 20 * 1024 * 1024, "{} bytes", body.len());
    let r = reqwest::Client::new()
        .post(hub.url("/api/v1/datasets/business-registrations/records"))
        .bearer_auth(&token)
        .header("content-type", "application/x-ndjson")
        .body(body)
        .timeout(Duration::from_secs(600))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let answer: Value = r.json().await.unwrap();
    assert_eq!(
        answer["accepted"].as_u64().unwrap() + answer["rejected"].as_u64().unwrap(),
        100_000,
        "{answer}"
    );
    assert_eq!(answer["rejected"], 0, "{}", answer["rejects"][0]);
    let s = dataset_stats(&db, Some("business-registrations"))
        .await
        .unwrap()
        .remove(0);
    assert_eq!((s.read, s.valid, s.rejected), (100_000, 100_000, 0));
}

#[tokio::test]
async fn a_record_of_2_mib_among_other_bad_records_goes_to_the_dead_letter_topic_with_its_reason() {
    let (hub, _db, token, config) = push_hub(prepared_config().await.unwrap()).await;
    let mut huge = valid_business(0);
    huge["business_scope"] = json!("经营范围".repeat(2 * 1024 * 1024 / 12 + 1));
    let huge = serde_json::to_string(&huge).unwrap();
    assert!(huge.len() > 2 * 1024 * 1024);
    let mut bad_id = valid_business(3);
    bad_id["legal_rep_id_number"] = json!("11010519491231002Y");
    // A valid record, the huge one, one that is not an object, one with a bad field, one
    // that is not JSON, and a valid one: as an array and as NDJSON.
    let elements = [
        valid_business(1).to_string(),
        huge.clone(),
        "42".to_owned(),
        bad_id.to_string(),
        "{\"credit_code\": ".to_owned() + "}",
        valid_business(2).to_string(),
    ];
    let array = format!("[{}]", elements.join(",\n"));
    let ndjson = elements.join("\n");
    let url = hub.url("/api/v1/datasets/business-registrations/records");
    let client = reqwest::Client::new();
    for (body, content_type) in [
        (array, "application/json"),
        (ndjson, "application/x-ndjson"),
    ] {
        let r = client
            .post(&url)
            .bearer_auth(&token)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200, "{content_type}");
        let answer: Value = r.json().await.unwrap();
        assert_eq!(answer["accepted"], 2, "{content_type}: {answer}");
        assert_eq!(answer["rejected"], 4, "{content_type}: {answer}");
        let rules: Vec<(u64, &str)> = answer["rejects"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["seq"].as_u64().unwrap(),
                    r["reasons"][0]["rule"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            rules,
            [
                (1, "size_limit"),
                (2, "not_an_object"),
                (3, "format"),
                (4, "json_syntax")
            ],
            "{content_type}"
        );
        let size = answer["rejects"][0]["reasons"][0]["message"]
            .as_str()
            .unwrap();
        assert!(size.contains(&huge.len().to_string()), "{size}");
    }
    // Each reaches the dead-letter topic with its reason; the huge one with its first 64 KiB.
    let letters = bohai_tests::dead_letters(&config.kafka, 8).await;
    let of_rule = |rule: &str| {
        letters
            .iter()
            .filter(|(_, reasons)| reasons[0]["rule"] == rule)
            .collect::<Vec<_>>()
    };
    for rule in ["size_limit", "not_an_object", "format", "json_syntax"] {
        assert_eq!(of_rule(rule).len(), 2, "{rule}: {letters:?}");
    }
    for (raw, _) in of_rule("size_limit") {
        assert_eq!(raw.len(), 64 * 1024, "the first 64 KiB are kept");
        assert_eq!(raw[..], huge.as_bytes()[..raw.len()]);
    }
}

#[tokio::test]
async fn a_push_over_the_request_limit_is_answered_413_naming_the_limit() {
    let mut config = prepared_config().await.unwrap();
    config.http.max_push_bytes = 1024 * 1024;
    let (hub, _db, token, _config) = push_hub(config).await;
    let url = hub.url("/api/v1/datasets/business-registrations/records");
    let line = valid_business(0).to_string();
    let body: String = std::iter::repeat_n(line.as_str(), 1024 * 1024 / line.len() + 10)
        .collect::<Vec<_>>()
        .join("\n");
    // With its length announced, refused before a byte of it is read.
    let r = reqwest::Client::new()
        .post(&url)
        .bearer_auth(&token)
        .header("content-type", "application/x-ndjson")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 413);
    let answer: Value = r.json().await.unwrap();
    assert_eq!(answer["code"], "payload_too_large", "{answer}");
    assert_eq!(answer["limit"], 1024 * 1024);
    assert!(
        answer["message"].as_str().unwrap().contains("1048576"),
        "{answer}"
    );
    // Streamed without a length, refused when the limit is reached.
    let (status, answer) = chunked_post(&url, &token, body.as_bytes()).await;
    assert_eq!(status, 413, "{answer}");
    assert_eq!(answer["limit"], 1024 * 1024, "{answer}");
    assert!(
        answer["message"]
            .as_str()
            .unwrap()
            .contains("were ingested"),
        "{answer}"
    );
}

/// POSTs `body` as NDJSON in chunks of 64 KiB, without announcing its length; the status and
/// the JSON of the answer.
async fn chunked_post(url: &str, token: &str, body: &[u8]) -> (u16, Value) {
    raw_push(url, token, None, body, true).await
}

/// POSTs `body` as NDJSON in chunks of 64 KiB without announcing its length, with
/// `Idempotency-Key: key` if given, and its end if `finish` (else the body stops arriving);
/// the status and the JSON of the answer.
async fn raw_push(
    url: &str,
    token: &str,
    key: Option<&str>,
    body: &[u8],
    finish: bool,
) -> (u16, Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_at(rest.find('/').unwrap());
    let mut stream = tokio::net::TcpStream::connect(host).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n{}\r\n",
        key.map(|k| format!("Idempotency-Key: {k}\r\n"))
            .unwrap_or_default()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    for chunk in body.chunks(64 * 1024) {
        let framed = [format!("{:x}\r\n", chunk.len()).as_bytes(), chunk, b"\r\n"].concat();
        // The hub may answer and stop reading before the end: that is the point.
        if stream.write_all(&framed).await.is_err() {
            break;
        }
    }
    if finish {
        let _ = stream.write_all(b"0\r\n\r\n").await;
    }
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    let text = String::from_utf8_lossy(&answer);
    let status = text[9..12].parse().unwrap();
    let (_, json) = text.split_once("\r\n\r\n").unwrap();
    (
        status,
        serde_json::from_str(json).unwrap_or(Value::String(json.to_owned())),
    )
}

/// An Idempotency-Key names one request: the same key for another dataset, or for another
/// body after the first attempt was cut short, is refused (409) rather than answered with
/// what another request did; and a retry sent while the first attempt still runs waits for it
/// instead of ingesting the same records beside it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotency_key_names_one_request_of_one_dataset() {
    let mut config = prepared_config().await.unwrap();
    config.http.request_timeout = Duration::from_secs(3);
    let (hub, db, token, config) = push_hub(config).await;
    let business = hub.url("/api/v1/datasets/business-registrations/records");
    let penalties = hub.url("/api/v1/datasets/administrative-penalties/records");
    let client = reqwest::Client::new();
    let post = |url: &str, key: &str, body: Value| {
        client
            .post(url)
            .bearer_auth(&token)
            .header("idempotency-key", key)
            .json(&body)
            .send()
    };

    // One key, two datasets.
    let r = post(&business, "key-1", json!([valid_business(0)]))
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    // The same request sent to another dataset: not answered with what the first one did.
    let r = post(&penalties, "key-1", json!([valid_business(0)]))
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 409);
    let answer: Value = r.json().await.unwrap();
    assert_eq!(answer["code"], "idempotency_key_reused", "{answer}");
    assert!(
        answer["message"]
            .as_str()
            .unwrap()
            .contains("business-registrations"),
        "{answer}"
    );

    // A request of 12,000 records whose body stops arriving after 11,000: the first piece
    // (the first 10,000 records and those that came with them) is ingested, then the request
    // times out.
    let registry = bohai_hub::registry::load(&config.registry).unwrap();
    let dataset = registry.dataset("business-registrations").unwrap();
    let mut generator = bohai_hub::gen::Generator::new(dataset, 31, 0.0).unwrap();
    let lines: Vec<String> = (0..12_000)
        .map(|_| Value::Object(generator.next_record().record).to_string())
        .collect();
    let whole = lines.join("\n") + "\n";
    let first_part = lines[..11_000].join("\n") + "\n";
    let cut_short = {
        let (url, token, body) = (business.clone(), token.clone(), first_part.clone());
        tokio::spawn(
            async move { raw_push(&url, &token, Some("key-2"), body.as_bytes(), false).await },
        )
    };
    let stream = "http:market-regulation:key-2";
    eventually(
        Duration::from_secs(60),
        "the first piece committed",
        || async {
            sqlx::query_scalar::<_, i64>("SELECT records FROM http_push_requests WHERE stream = $1")
                .bind(stream)
                .fetch_optional(&db)
                .await
                .unwrap()
                .filter(|&n| n >= 10_000)
        },
    )
    .await;
    // While it waits for the rest of its body: the same key with another body (one record of
    // the committed part changed) waits for it, then is refused.
    let mut other = lines.clone();
    other[5] = Value::Object(generator.next_record().record).to_string();
    let (status, answer) = raw_push(
        &business,
        &token,
        Some("key-2"),
        (other.join("\n") + "\n").as_bytes(),
        true,
    )
    .await;
    assert_eq!(status, 409, "{answer}");
    assert_eq!(answer["code"], "idempotency_key_reused", "{answer}");
    let (status, answer) = cut_short.await.unwrap();
    assert_eq!(status, 408, "{answer}");
    // The same body again: resumed after the committed piece, the answer counts all 12,000.
    let (status, answer) = raw_push(&business, &token, Some("key-2"), whole.as_bytes(), true).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["accepted"], 12_000, "{answer}");
    let s = eventually(
        Duration::from_secs(60),
        "the sink to write the pushed records",
        || async {
            let s = dataset_stats(&db, Some("business-registrations"))
                .await
                .unwrap()
                .remove(0);
            (s.pending == 0 && s.read == 12_001).then_some(s)
        },
    )
    .await;
    assert!(s.reconciled, "{s:?}");
    let s = dataset_stats(&db, Some("administrative-penalties"))
        .await
        .unwrap()
        .remove(0);
    assert_eq!(s.read, 0, "{s:?}");
}

/// Two first attempts of one Idempotency-Key for two datasets, on two instances at once: each
/// instance's start check finds no earlier attempt. The one that sends its records second is
/// refused (409) rather than ingesting under the first one's stream, where the sink would
/// take its records for replays of the other's positions and skip them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_idempotency_key_for_two_datasets_on_two_instances_at_once_names_one_request() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (hub_a, _db, token, config) = push_hub(prepared_config().await.unwrap()).await;
    let hub_b = RunningHub::start(config.clone()).await.unwrap();
    let registry = bohai_hub::registry::load(&config.registry).unwrap();
    let mut penalties = bohai_hub::gen::Generator::new(
        registry.dataset("administrative-penalties").unwrap(),
        5,
        0.0,
    )
    .unwrap();
    let penalty = Value::Object(penalties.next_record().record).to_string() + "\n";

    // On B, a push of penalties with the key opens; its body has not come yet.
    let addr = hub_b.base_url.strip_prefix("http://").unwrap().to_owned();
    let mut on_b = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /api/v1/datasets/administrative-penalties/records HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\nConnection: close\r\nIdempotency-Key: shared-key\r\n\r\n"
    );
    on_b.write_all(head.as_bytes()).await.unwrap();
    // (B reads the headers and checks the key before it waits for the body.)
    tokio::time::sleep(Duration::from_millis(500)).await;

    // On A, a push of business registrations with the same key, whole.
    let r = reqwest::Client::new()
        .post(hub_a.url("/api/v1/datasets/business-registrations/records"))
        .bearer_auth(&token)
        .header("idempotency-key", "shared-key")
        .json(&json!([valid_business(0)]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);

    // B's body arrives: the key names A's request now.
    let framed = format!("{:x}\r\n{penalty}\r\n0\r\n\r\n", penalty.len());
    on_b.write_all(framed.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let _ = on_b.read_to_end(&mut answer).await;
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 409"), "{text}");
    assert!(text.contains("idempotency_key_reused"), "{text}");
}
