//! HTTP push against a running hub with the real broker and PostgreSQL: authentication, the
//! department boundary, per-record rejects, NDJSON, idempotent retries, and the records
//! reaching the repository.

#![allow(clippy::unwrap_used)] // a test that cannot unwrap should fail loudly

use std::time::Duration;

use bohai_hub::auth;
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
    let market = auth::create_token(&db, "market-regulation")
        .await
        .unwrap()
        .secret;
    let police = auth::create_token(&db, "public-security")
        .await
        .unwrap()
        .secret;

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
