//! Data sharing with governance against a running hub and the real PostgreSQL: scoped
//! tokens, access requests and approvals, masked reads with cursor paging, expiry, the
//! hash-chained audit log (`audit verify` finds a changed row) and `who-received`.

#![allow(clippy::unwrap_used)] // a test that cannot unwrap should fail loudly

use bohai_hub::auth::{self, Scope};
use bohai_tests::{
    bohai_ok, bohai_run, get_json_as as get, prepared_config, write_config, RunningHub,
};
use serde_json::{json, Value};

const DATASET: &str = "business-registrations";

fn examples() -> Vec<Value> {
    std::fs::read_to_string(
        bohai_schemas::registry::builtin_dir()
            .join("datasets/business-registrations/examples/valid.jsonl"),
    )
    .unwrap()
    .lines()
    .take(3)
    .map(|l| serde_json::from_str(l).unwrap())
    .collect()
}

/// Puts records into the repository as the sink would (the sink has its own tests).
async fn store(db: &sqlx::PgPool, records: &[Value]) {
    for r in records {
        sqlx::query(
            "INSERT INTO repository_records (dataset, pk, data, version, source)
             VALUES ($1, $2, $3, 1, 'test')",
        )
        .bind(DATASET)
        .bind(r["credit_code"].as_str().unwrap())
        .bind(r)
        .execute(db)
        .await
        .unwrap();
    }
    sqlx::query(
        "INSERT INTO sink_counts (dataset, inserted_total, last_write_at) VALUES ($1, $2, now())",
    )
    .bind(DATASET)
    .bind(i64::try_from(records.len()).unwrap())
    .execute(db)
    .await
    .unwrap();
}

/// `bohai audit who-received` for a record of the dataset, as JSON.
fn who_received(config_file: &std::path::Path, key: &str) -> Value {
    let out = bohai_ok(
        config_file,
        &[
            "audit",
            "who-received",
            "--dataset",
            DATASET,
            "--key",
            key,
            "--json",
        ],
    );
    serde_json::from_str(&out).unwrap()
}

/// Checks a record as a civil-affairs reader sees it: exactly the three approved fields, the
/// name partly starred and the identity number a salted hash. Returns its fields.
fn assert_approved_and_masked<'v>(
    data: &'v Value,
    records: &[Value],
) -> &'v serde_json::Map<String, Value> {
    let data = data.as_object().unwrap();
    let mut keys: Vec<&str> = data.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        ["credit_code", "legal_rep_id_number", "legal_rep_name"]
    );
    let original = records
        .iter()
        .find(|o| o["credit_code"] == data["credit_code"])
        .unwrap();
    let name = data["legal_rep_name"].as_str().unwrap();
    assert_ne!(name, original["legal_rep_name"].as_str().unwrap());
    assert!(name.contains('*'), "{name}");
    let id_hash = data["legal_rep_id_number"].as_str().unwrap();
    assert_eq!(id_hash.len(), 64);
    assert!(id_hash.bytes().all(|b| b.is_ascii_hexdigit()));
    data
}

async fn post(_client: &reqwest::Client, url: &str, token: &str, body: &Value) -> (u16, Value) {
    bohai_tests::post_json(url, token, body).await
}

#[tokio::test]
async fn a_department_reads_only_what_was_approved_masked_and_every_read_is_audited() {
    let config = prepared_config().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config_file = write_config(&config, dir.path()).unwrap();
    let db = bohai_hub::database::pool(&config.database).unwrap();
    let records = examples();
    store(&db, &records).await;
    let hub = RunningHub::start(config.clone()).await.unwrap();
    let client = reqwest::Client::new();
    let read_url = hub.url(&format!("/api/v1/datasets/{DATASET}/records"));

    let owner = bohai_tests::token(&db, "market-regulation").await;
    let reader = auth::create_scoped_token(&db, "civil-affairs", &[Scope::Read], Some(30))
        .await
        .unwrap()
        .secret;
    let publisher = auth::create_scoped_token(&db, "civil-affairs", &[Scope::Publish], None)
        .await
        .unwrap()
        .secret;

    // Refusals say why.
    let (status, body) = get(&client, &read_url, None).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("token_missing"))
    );
    let (status, body) = get(&client, &read_url, Some(&publisher)).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("wrong_scope")),
        "{body}"
    );
    let (status, body) = get(&client, &read_url, Some(&reader)).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("not_approved")),
        "{body}"
    );

    // The catalogue shows the dataset with its fields, PII tags and counts.
    let (status, catalogue) = get(&client, &hub.url("/api/v1/catalogue"), Some(&reader)).await;
    assert_eq!(status, 200);
    let entry = catalogue
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["id"] == DATASET)
        .unwrap();
    assert_eq!(entry["owner"], "market-regulation");
    assert_eq!(entry["sharing"], "conditional");
    assert_eq!(entry["records"], 3);
    assert_eq!(entry["pii"]["legal_rep_id_number"], "hash");
    assert!(entry["latest_update"].is_string());
    assert!(entry["fields"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["name"] == "credit_code" && f["primary_key"] == true));

    // A request; the reader cannot decide it, the owner approves it.
    let fields = ["credit_code", "legal_rep_name", "legal_rep_id_number"];
    let until = chrono::Utc::now() + chrono::Duration::days(30);
    let (status, sub) = post(
        &client,
        &hub.url("/api/v1/subscriptions"),
        &reader,
        &json!({"dataset": DATASET, "fields": fields, "purpose": "minimum-living-allowance checks", "until": until}),
    )
    .await;
    assert_eq!(status, 201, "{sub}");
    assert_eq!(sub["status"], "pending");
    let id = sub["id"].as_str().unwrap().to_owned();
    let (status, body) = get(&client, &read_url, Some(&reader)).await;
    assert_eq!((status, body["code"].as_str()), (403, Some("not_approved")));
    let approve = hub.url(&format!("/api/v1/subscriptions/{id}/approve"));
    let (status, body) = post(&client, &approve, &reader, &json!({})).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("wrong_scope")),
        "{body}"
    );
    let (status, body) = post(
        &client,
        &approve,
        &owner,
        &json!({"reason": "statutory duty"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "approved");

    // Only the approved fields, PII masked; two pages.
    let (status, page) = get(&client, &format!("{read_url}?limit=2"), Some(&reader)).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["records"].as_array().unwrap().len(), 2);
    let cursor = page["next_cursor"].as_str().unwrap().to_owned();
    let (status, rest) = get(
        &client,
        &format!("{read_url}?limit=2&cursor={cursor}"),
        Some(&reader),
    )
    .await;
    assert_eq!(status, 200, "{rest}");
    assert_eq!(rest["records"].as_array().unwrap().len(), 1);
    assert!(rest["next_cursor"].is_null());
    let mut seen = Vec::new();
    for r in page["records"]
        .as_array()
        .unwrap()
        .iter()
        .chain(rest["records"].as_array().unwrap())
    {
        let data = assert_approved_and_masked(&r["data"], &records);
        assert_eq!(r["key"], data["credit_code"]);
        seen.push(data["credit_code"].as_str().unwrap().to_owned());
    }
    seen.sort();
    let mut all: Vec<String> = records
        .iter()
        .map(|r| r["credit_code"].as_str().unwrap().to_owned())
        .collect();
    all.sort();
    assert_eq!(seen, all);

    // A filter by key: one record.
    let key = all[0].clone();
    let (status, one) = get(&client, &format!("{read_url}?key={key}"), Some(&reader)).await;
    assert_eq!(status, 200);
    assert_eq!(one["records"].as_array().unwrap().len(), 1);

    // The owner reads every field unmasked.
    let (status, own) = get(&client, &format!("{read_url}?key={key}"), Some(&owner)).await;
    assert_eq!(status, 200);
    let original = records
        .iter()
        .find(|o| o["credit_code"] == key.as_str())
        .unwrap();
    assert_eq!(&own["records"][0]["data"], original);

    // Who received that record: civil-affairs, with its purpose.
    let receipts = who_received(&config_file, &key);
    let civil: Vec<&Value> = receipts
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["department"] == "civil-affairs" && r["action"] == "read")
        .collect();
    // The paged read and the read by key (the subscription's topic may have delivered it
    // too: that test is below).
    assert_eq!(civil.len(), 2, "{receipts}");
    assert_eq!(civil[0]["purpose"], "minimum-living-allowance checks");
    assert_eq!(civil[0]["subscription"], id.as_str());
    assert_eq!(who_received(&config_file, "no-such-key"), json!([]));

    // After expiry: 403 again.
    sqlx::query(
        "UPDATE subscriptions SET valid_until = now() - interval '1 second' WHERE id = $1::uuid",
    )
    .bind(&id)
    .execute(&db)
    .await
    .unwrap();
    let (status, body) = get(&client, &read_url, Some(&reader)).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("subscription_expired")),
        "{body}"
    );

    // The CLI: catalogue and subscriptions with --json.
    let out = bohai_ok(&config_file, &["catalogue", "--json"]);
    let cli_catalogue: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        cli_catalogue.as_array().unwrap().len(),
        catalogue.as_array().unwrap().len()
    );
    let out = bohai_ok(
        &config_file,
        &["sub", "list", "--dataset", DATASET, "--json"],
    );
    let subs: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(subs[0]["id"], id.as_str());
    assert_eq!(subs[0]["active"], false);

    // Tokens: listed without secrets, revoked and expired ones refused with their reason.
    let out = bohai_ok(
        &config_file,
        &["dept", "token", "list", "--dept", "civil-affairs", "--json"],
    );
    assert!(!out.contains("bohai_"), "a secret was listed: {out}");
    let tokens: Value = serde_json::from_str(&out).unwrap();
    let reader_id = tokens
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["scopes"] == json!(["read"]))
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    bohai_ok(&config_file, &["dept", "token", "revoke", &reader_id]);
    let (status, body) = get(&client, &hub.url("/api/v1/catalogue"), Some(&reader)).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("token_revoked")),
        "{body}"
    );
    sqlx::query("UPDATE department_tokens SET expires_at = now() - interval '1 second' WHERE department = 'market-regulation'")
        .execute(&db)
        .await
        .unwrap();
    let (status, body) = get(&client, &hub.url("/api/v1/catalogue"), Some(&owner)).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("token_expired")),
        "{body}"
    );

    // The audit chain is intact; a changed row is found and named.
    let out = bohai_ok(&config_file, &["audit", "verify", "--json"]);
    let verified: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(verified["intact"], true, "{verified}");
    assert!(verified["entries"].as_i64().unwrap() >= 7, "{verified}");
    let changed: i64 = sqlx::query_scalar(
        "SELECT min(seq) FROM audit_log WHERE action = 'read' AND actor = 'civil-affairs'",
    )
    .fetch_one(&db)
    .await
    .unwrap();
    let refused = sqlx::query("UPDATE audit_log SET purpose = 'nothing to see' WHERE seq = $1")
        .bind(changed)
        .execute(&db)
        .await;
    assert!(refused.is_err(), "the audit log accepted an update");
    // Only the owner role (a database administrator) can disable the trigger: the chain
    // still finds what it changed.
    let owner = bohai_tests::owner_pool(&config).await.unwrap();
    sqlx::query("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only")
        .execute(&owner)
        .await
        .unwrap();
    sqlx::query("UPDATE audit_log SET purpose = 'nothing to see' WHERE seq = $1")
        .bind(changed)
        .execute(&owner)
        .await
        .unwrap();
    let out = bohai_run(&config_file, &["audit", "verify", "--json"]);
    assert!(!out.status.success());
    let broken: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(broken["intact"], false);
    assert_eq!(broken["first_broken"], changed, "{broken}");
}

#[tokio::test]
async fn requests_follow_the_sharing_class() {
    let config = prepared_config().await.unwrap();
    let db = bohai_hub::database::pool(&config.database).unwrap();
    let hub = RunningHub::start(config).await.unwrap();
    let client = reqwest::Client::new();
    let reader = auth::create_scoped_token(&db, "civil-affairs", &[Scope::Read], None)
        .await
        .unwrap()
        .secret;
    let url = hub.url("/api/v1/subscriptions");
    let until = chrono::Utc::now() + chrono::Duration::days(10);

    // administrative-penalties is shared unconditionally: granted at once.
    let (status, sub) = post(
        &client,
        &url,
        &reader,
        &json!({"dataset": "administrative-penalties", "fields": ["decision_number"], "purpose": "credit checks", "until": until}),
    )
    .await;
    assert_eq!(status, 201, "{sub}");
    assert_eq!(sub["status"], "approved");
    assert_eq!(sub["active"], true);

    // An unknown field, an empty purpose, the caller's own dataset... each refused with why.
    let (status, body) = post(
        &client,
        &url,
        &reader,
        &json!({"dataset": DATASET, "fields": ["no_such_field"], "purpose": "x", "until": until}),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        body["message"].as_str().unwrap().contains("no_such_field"),
        "{body}"
    );
    let (status, _) = post(
        &client,
        &url,
        &reader,
        &json!({"dataset": DATASET, "fields": ["credit_code"], "purpose": " ", "until": until}),
    )
    .await;
    assert_eq!(status, 400);

    // A rejection needs a reason and is final.
    let (status, sub) = post(
        &client,
        &url,
        &reader,
        &json!({"dataset": DATASET, "fields": ["credit_code"], "purpose": "x", "until": until}),
    )
    .await;
    assert_eq!(status, 201);
    let owner = auth::create_scoped_token(&db, "market-regulation", &[Scope::Publish], None)
        .await
        .unwrap()
        .secret;
    let reject = hub.url(&format!(
        "/api/v1/subscriptions/{}/reject",
        sub["id"].as_str().unwrap()
    ));
    let (status, _) = post(&client, &reject, &owner, &json!({})).await;
    assert_eq!(status, 400);
    let (status, body) = post(
        &client,
        &reject,
        &owner,
        &json!({"reason": "purpose does not need personal data"}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "rejected");
    let (status, body) = post(&client, &reject, &owner, &json!({"reason": "again"})).await;
    assert_eq!((status, body["code"].as_str()), (409, Some("wrong_state")));
}

#[tokio::test]
async fn a_new_schema_version_must_be_compatible_with_every_earlier_one() {
    let config = prepared_config().await.unwrap();
    let db = bohai_hub::database::pool(&config.database).unwrap();
    let mut registry = bohai_hub::registry::load(&config.registry).unwrap();
    let i = registry
        .datasets
        .iter()
        .position(|d| d.id == DATASET)
        .unwrap();

    // Version 2 adds an optional field: accepted and stored.
    registry.datasets[i].schema_version = 2;
    registry.datasets[i].schema["properties"]["website"] = json!({"type": "string"});
    bohai_hub::registry::sync(&db, &registry).await.unwrap();

    // Version 3 narrows a field of version 1 and drops the field version 2 added.
    let mut v3 = registry.datasets[i].schema.clone();
    v3["properties"]["entity_name"]["maxLength"] = json!(20);
    v3["properties"].as_object_mut().unwrap().remove("website");
    registry.datasets[i].schema_version = 3;
    registry.datasets[i].schema = v3;
    let refused = bohai_hub::registry::sync(&db, &registry)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains("version 3 is not backward compatible with version 1")
            && refused.contains("field `entity_name`: was maxLength 100, now maxLength 20"),
        "{refused}"
    );

    // Editing a stored version in place is refused too.
    registry.datasets[i].schema_version = 2;
    let refused = bohai_hub::registry::sync(&db, &registry)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains("give the changed schema a new schema_version"),
        "{refused}"
    );
}

/// The payloads on a topic, read from the beginning until `want` holds or 90 s pass.
async fn topic_values(topic: &str, want: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    use rdkafka::consumer::{Consumer as _, StreamConsumer};
    use rdkafka::Message as _;
    let consumer: StreamConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bohai_tests::brokers())
        .set("group.id", bohai_tests::unique("sub-reader-"))
        .set("auto.offset.reset", "earliest")
        .set("topic.metadata.refresh.interval.ms", "1000")
        .create()
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    let mut seen: Vec<Value> = Vec::new();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(90);
    while !want(&seen) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{topic} did not fill; seen {seen:?}"
        );
        if let Ok(Ok(m)) =
            tokio::time::timeout(std::time::Duration::from_secs(2), consumer.recv()).await
        {
            let v: Value = serde_json::from_slice(m.payload().unwrap()).unwrap();
            // The message key is a stable pseudonym of the record, never the key itself.
            let key = std::str::from_utf8(m.key().unwrap()).unwrap();
            assert_eq!(key.len(), 64, "{key}");
            seen.push(v);
        }
    }
    seen
}

/// The deliveries of one record (by its credit code), in the order they were produced: a
/// record's message key decides its partition, so its versions keep their order, while the
/// partitions of a topic are read in no set order.
fn versions_of<'a>(delivered: &'a [Value], credit_code: &str) -> Vec<&'a Value> {
    delivered
        .iter()
        .filter(|v| v["data"]["credit_code"] == credit_code)
        .collect()
}

#[tokio::test]
async fn a_subscription_topic_carries_the_approved_fields_masked_until_access_is_withdrawn() {
    let config = prepared_config().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config_file = write_config(&config, dir.path()).unwrap();
    let prefix = config.kafka.topic_prefix.clone();
    let db = bohai_hub::database::pool(&config.database).unwrap();
    let mut records = examples();
    store(&db, &records).await;
    let hub = RunningHub::start(config).await.unwrap();
    let client = reqwest::Client::new();
    let owner = bohai_tests::token(&db, "market-regulation").await;
    let reader = auth::create_scoped_token(&db, "civil-affairs", &[Scope::Read], None)
        .await
        .unwrap()
        .secret;

    // Requested and approved: the subscription names its topic.
    let fields = ["credit_code", "legal_rep_name", "legal_rep_id_number"];
    let until = chrono::Utc::now() + chrono::Duration::days(30);
    let (status, sub) = post(
        &client,
        &hub.url("/api/v1/subscriptions"),
        &reader,
        &json!({"dataset": DATASET, "fields": fields, "purpose": "social assistance checks", "until": until}),
    )
    .await;
    assert_eq!(status, 201, "{sub}");
    assert!(
        sub["topic"].is_null(),
        "a pending request has no topic: {sub}"
    );
    let id = sub["id"].as_str().unwrap().to_owned();
    let (status, sub) = post(
        &client,
        &hub.url(&format!("/api/v1/subscriptions/{id}/approve")),
        &owner,
        &json!({}),
    )
    .await;
    assert_eq!(status, 200, "{sub}");
    let topic = format!("{prefix}sub.{id}");
    assert_eq!(sub["topic"], topic.as_str());

    // Every stored record arrives with the approved fields only, PII masked.
    let delivered = topic_values(&topic, |seen| seen.len() >= records.len()).await;
    assert_eq!(delivered.len(), records.len(), "{delivered:?}");
    for v in &delivered {
        assert_eq!(v["subscription"], id.as_str());
        assert_eq!(v["dataset"], DATASET);
        assert_approved_and_masked(&v["data"], &records);
    }

    // A change published by the owner goes through the sink and reaches the topic.
    let changed_key = records[0]["credit_code"].as_str().unwrap().to_owned();
    records[0]["legal_rep_name"] = json!("欧阳建国");
    let r = client
        .post(hub.url(&format!("/api/v1/datasets/{DATASET}/records")))
        .bearer_auth(&owner)
        .json(&json!([records[0]]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200, "{}", r.text().await.unwrap());
    let delivered = topic_values(&topic, |seen| seen.len() > records.len()).await;
    let versions = versions_of(&delivered, &changed_key);
    assert_eq!(versions.len(), 2, "{delivered:?}");
    assert_eq!(versions[1]["data"]["legal_rep_name"], "欧**国");

    // The publish batch and both deliveries of that record are on the record.
    let publishes: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_log WHERE action = 'publish' AND actor = 'market-regulation' AND dataset = $1 AND count = 1",
    )
    .bind(DATASET)
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(publishes, 1);
    let receipts = who_received(&config_file, &changed_key);
    let deliveries: Vec<&Value> = receipts
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["action"] == "deliver")
        .collect();
    assert_eq!(deliveries.len(), 2, "{receipts}");
    for d in deliveries {
        assert_eq!(d["department"], "civil-affairs");
        assert_eq!(d["purpose"], "social assistance checks");
        assert_eq!(d["subscription"], id.as_str());
    }

    // A second department subscribes too: its topic shows when the worker has passed.
    let taxation = auth::create_scoped_token(&db, "taxation", &[Scope::Read], None)
        .await
        .unwrap()
        .secret;
    let (status, second) = post(
        &client,
        &hub.url("/api/v1/subscriptions"),
        &taxation,
        &json!({"dataset": DATASET, "fields": ["credit_code", "registered_capital_yuan"], "purpose": "tax registration checks", "until": until}),
    )
    .await;
    assert_eq!(status, 201, "{second}");
    let second_id = second["id"].as_str().unwrap().to_owned();
    let (status, second) = post(
        &client,
        &hub.url(&format!("/api/v1/subscriptions/{second_id}/approve")),
        &owner,
        &json!({}),
    )
    .await;
    assert_eq!(status, 200, "{second}");
    let second_topic = format!("{prefix}sub.{second_id}");
    topic_values(&second_topic, |seen| seen.len() >= records.len()).await;

    // Withdrawn by the requester: reads are refused with the reason, the topic is closed and
    // deleted.
    let withdraw = hub.url(&format!("/api/v1/subscriptions/{id}/withdraw"));
    let (status, body) = post(&client, &withdraw, &reader, &json!({})).await;
    assert_eq!(status, 400, "a withdrawal without a reason: {body}");
    // The owner withdraws with its publishing token, not a reading one.
    let owner_reader = auth::create_scoped_token(&db, "market-regulation", &[Scope::Read], None)
        .await
        .unwrap()
        .secret;
    let (status, body) = post(&client, &withdraw, &owner_reader, &json!({"reason": "x"})).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("wrong_scope")),
        "{body}"
    );
    let (status, body) = post(
        &client,
        &withdraw,
        &reader,
        &json!({"reason": "the checks are finished"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "withdrawn");
    assert_eq!(body["withdrawn_by"], "civil-affairs");
    assert!(body["topic"].is_null());
    let (status, body) = get(
        &client,
        &hub.url(&format!("/api/v1/datasets/{DATASET}/records")),
        Some(&reader),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("subscription_withdrawn")),
        "{body}"
    );
    assert!(body["message"]
        .as_str()
        .unwrap()
        .contains("the checks are finished"));
    let (status, body) = post(&client, &withdraw, &owner, &json!({"reason": "again"})).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("wrong_state")),
        "{body}"
    );
    bohai_tests::eventually(
        std::time::Duration::from_secs(60),
        "the subscription topic to be closed and deleted",
        || async {
            let (closed, deleted): (
                Option<chrono::DateTime<chrono::Utc>>,
                Option<chrono::DateTime<chrono::Utc>>,
            ) = sqlx::query_as(
                "SELECT closed_at, topic_deleted_at FROM subscription_deliveries
                 WHERE subscription = $1::uuid",
            )
            .bind(&id)
            .fetch_one(&db)
            .await
            .unwrap();
            closed.and(deleted).map(|_| ())
        },
    )
    .await;
    // The broker no longer lists the topic (its metadata may lag the deletion a moment).
    bohai_tests::eventually(
        std::time::Duration::from_secs(30),
        "the withdrawn subscription's topic to be gone from the broker",
        || async { (!topic_exists(&topic)).then_some(()) },
    )
    .await;

    // A later change reaches the other subscriber, and not the withdrawn one.
    let deliveries_before = deliver_entries(&db, &id).await;
    records[1]["legal_rep_name"] = json!("司马光明");
    let r = client
        .post(hub.url(&format!("/api/v1/datasets/{DATASET}/records")))
        .bearer_auth(&owner)
        .json(&json!([records[1]]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200, "{}", r.text().await.unwrap());
    let seen = topic_values(&second_topic, |seen| seen.len() > records.len()).await;
    let versions = versions_of(&seen, records[1]["credit_code"].as_str().unwrap());
    assert_eq!(versions.len(), 2, "{seen:?}");
    // This subscriber was not approved for the name that changed: the second version is the
    // change (a later update time), not the first delivered again.
    assert!(
        versions[1]["data"].get("legal_rep_name").is_none(),
        "{versions:?}"
    );
    let updated_at = |v: &Value| {
        chrono::DateTime::parse_from_rfc3339(v["updated_at"].as_str().unwrap()).unwrap()
    };
    assert!(
        updated_at(versions[1]) > updated_at(versions[0]),
        "{versions:?}"
    );
    assert_eq!(deliver_entries(&db, &id).await, deliveries_before);
    // Nothing made the withdrawn subscription's topic again.
    assert!(!topic_exists(&topic), "{topic} is back");

    // The ops overview tells the same: civil-affairs got 3 + 1 records and has no active
    // subscription left; taxation got its 3 and the later change, and is active. Who reads
    // what is for the ops scope: /metrics, open to scrapers, counts by dataset only (issue
    // 15, item 6).
    let ops = auth::create_scoped_token(&db, "data-administration", &[Scope::Ops], None)
        .await
        .unwrap()
        .secret;
    let overview_url = hub.url("/api/v1/ops/overview");
    let http = reqwest::Client::new();
    bohai_tests::eventually(
        std::time::Duration::from_secs(30),
        "the delivery counts in the ops overview",
        || async {
            let overview: Value = http
                .get(&overview_url)
                .bearer_auth(&ops)
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            let of = |dept: &str| {
                overview["subscriptions"]
                    .as_array()?
                    .iter()
                    .find(|s| s["dataset"] == DATASET && s["department"] == dept)
                    .map(|s| (s["delivered_total"].as_i64(), s["active"].as_i64()))
            };
            (of("civil-affairs") == Some((Some(4), Some(0)))
                && of("taxation") == Some((Some(4), Some(1))))
            .then_some(())
        },
    )
    .await;
    let text = reqwest::get(hub.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let value = |metric: &str| {
        let series = format!("{metric}{{dataset=\"{DATASET}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&series))
            .and_then(|v| v.parse::<f64>().ok())
    };
    assert_eq!(
        value("bohai_subscription_records_delivered_total"),
        Some(8.0),
        "{text}"
    );
    assert_eq!(value("bohai_subscriptions_active"), Some(1.0), "{text}");
    for line in text.lines().filter(|l| l.starts_with("bohai_subscription")) {
        assert!(
            !line.contains("department="),
            "/metrics tells who reads what: {line}"
        );
    }

    // The CLI shows the withdrawal.
    let out = bohai_ok(&config_file, &["sub", "show", &id]);
    assert!(out.contains("withdrawn"), "{out}");
    assert!(out.contains("the checks are finished"), "{out}");
}

/// How many `deliver` entries the audit log holds for subscription `id`.
async fn deliver_entries(db: &sqlx::PgPool, id: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE action = 'deliver' AND subject = $1")
        .bind(id)
        .fetch_one(db)
        .await
        .unwrap()
}

/// Whether the broker lists `topic`.
fn topic_exists(topic: &str) -> bool {
    use rdkafka::consumer::{BaseConsumer, Consumer as _};
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bohai_tests::brokers())
        .create()
        .unwrap();
    let metadata = consumer
        .fetch_metadata(None, std::time::Duration::from_secs(30))
        .unwrap();
    metadata.topics().iter().any(|t| t.name() == topic)
}

/// Issue 15, item 1: a reader approved for a masked identity number learns nothing more
/// through the paging cursor or the key filter.
#[tokio::test]
async fn paging_cursors_and_key_filters_reveal_no_masked_key() {
    const RESIDENTS: &str = "resident-registrations";
    let config = prepared_config().await.unwrap();
    let db = bohai_hub::database::pool(&config.database).unwrap();
    let residents: Vec<Value> = std::fs::read_to_string(
        bohai_schemas::registry::builtin_dir()
            .join(format!("datasets/{RESIDENTS}/examples/valid.jsonl")),
    )
    .unwrap()
    .lines()
    .map(|l| serde_json::from_str(l).unwrap())
    .collect();
    let ids: Vec<String> = residents
        .iter()
        .map(|r| r["id_number"].as_str().unwrap().to_owned())
        .collect();
    for r in &residents {
        sqlx::query(
            "INSERT INTO repository_records (dataset, pk, data, version, source)
             VALUES ($1, $2, $3, 1, 'test')",
        )
        .bind(RESIDENTS)
        .bind(r["id_number"].as_str().unwrap())
        .bind(r)
        .execute(&db)
        .await
        .unwrap();
    }
    let hub = RunningHub::start(config).await.unwrap();
    let client = reqwest::Client::new();
    let read_url = hub.url(&format!("/api/v1/datasets/{RESIDENTS}/records"));
    let owner = bohai_tests::token(&db, "public-security").await;
    let reader = auth::create_scoped_token(&db, "civil-affairs", &[Scope::Read], Some(30))
        .await
        .unwrap()
        .secret;
    let other = auth::create_scoped_token(&db, "education", &[Scope::Read], Some(30))
        .await
        .unwrap()
        .secret;
    let until = chrono::Utc::now() + chrono::Duration::days(30);
    for token in [&reader, &other] {
        let (status, sub) = post(
            &client,
            &hub.url("/api/v1/subscriptions"),
            token,
            &json!({"dataset": RESIDENTS, "fields": ["name", "id_number", "gender"], "purpose": "allowance checks", "until": until}),
        )
        .await;
        assert_eq!(status, 201, "{sub}");
        let approve = hub.url(&format!(
            "/api/v1/subscriptions/{}/approve",
            sub["id"].as_str().unwrap()
        ));
        let (status, body) = post(&client, &approve, &owner, &json!({"reason": "duty"})).await;
        assert_eq!(status, 200, "{body}");
    }

    // Page by page: no cursor carries a raw identity number, in any encoding a caller tries.
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    let mut seen = 0;
    loop {
        let url = match &cursor {
            Some(c) => format!("{read_url}?limit=1&cursor={c}"),
            None => format!("{read_url}?limit=1"),
        };
        let (status, page) = get(&client, &url, Some(&reader)).await;
        assert_eq!(status, 200, "{page}");
        seen += page["records"].as_array().unwrap().len();
        pages += 1;
        let Some(next) = page["next_cursor"].as_str() else {
            break;
        };
        let mut views = vec![next.to_owned()];
        for engine in [
            base64::engine::general_purpose::URL_SAFE_NO_PAD,
            base64::engine::general_purpose::STANDARD_NO_PAD,
        ] {
            if let Ok(bytes) = base64::Engine::decode(&engine, next.trim_end_matches('=')) {
                views.push(String::from_utf8_lossy(&bytes).into_owned());
            }
        }
        for id in &ids {
            assert!(
                views.iter().all(|v| !v.contains(id.as_str())),
                "a cursor reveals {id}: {views:?}"
            );
        }
        // Another department cannot use it.
        let (status, body) = get(
            &client,
            &format!("{read_url}?limit=1&cursor={next}"),
            Some(&other),
        )
        .await;
        assert_eq!(status, 400, "{body}");
        cursor = Some(next.to_owned());
    }
    assert_eq!((seen, pages), (ids.len(), ids.len()));

    // The key filter answers no question about a raw identity number the reader cannot see.
    for probe in [ids[0].as_str(), "211102195001209203"] {
        let (status, body) = get(&client, &format!("{read_url}?key={probe}"), Some(&reader)).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (400, Some("key_masked")),
            "{body}"
        );
    }
    // The owner still filters by the raw key.
    let (status, own) = get(&client, &format!("{read_url}?key={}", ids[0]), Some(&owner)).await;
    assert_eq!(status, 200, "{own}");
    assert_eq!(own["records"].as_array().unwrap().len(), 1);
}

/// Puts `n` generated business registrations (seed `seed`) into the repository as the sink
/// would; they by credit code.
async fn store_generated(
    config: &bohai_hub::config::Config,
    db: &sqlx::PgPool,
    seed: u64,
    n: usize,
) -> std::collections::BTreeMap<String, Value> {
    let registry = bohai_schemas::Registry::load(&config.registry.dir).unwrap();
    let mut generator =
        bohai_hub::gen::Generator::new(registry.dataset(DATASET).unwrap(), seed, 0.0).unwrap();
    let records: std::collections::BTreeMap<String, Value> = (0..n)
        .map(|_| {
            let r = Value::Object(generator.next_record().record);
            (r["credit_code"].as_str().unwrap().to_owned(), r)
        })
        .collect();
    let (pks, data): (Vec<&String>, Vec<&Value>) = records.iter().unzip();
    sqlx::query(
        "INSERT INTO repository_records (dataset, pk, data, version, source)
         SELECT $1, pk, data, 1, 'test' FROM UNNEST($2::text[], $3::jsonb[]) AS u(pk, data)",
    )
    .bind(DATASET)
    .bind(&pks)
    .bind(&data)
    .execute(db)
    .await
    .unwrap();
    records
}

/// Civil affairs subscribes to the dataset's credit codes and legal representatives, and
/// market regulation approves: the subscription's id and topic.
async fn subscribed(hub: &RunningHub, db: &sqlx::PgPool) -> (uuid::Uuid, String) {
    let client = reqwest::Client::new();
    let owner = bohai_tests::token(db, "market-regulation").await;
    let reader = auth::create_scoped_token(db, "civil-affairs", &[Scope::Read], None)
        .await
        .unwrap()
        .secret;
    let until = chrono::Utc::now() + chrono::Duration::days(30);
    let (status, sub) = post(
        &client,
        &hub.url("/api/v1/subscriptions"),
        &reader,
        &json!({"dataset": DATASET, "fields": ["credit_code", "legal_rep_name"], "purpose": "social assistance checks", "until": until}),
    )
    .await;
    assert_eq!(status, 201, "{sub}");
    let id = sub["id"].as_str().unwrap().to_owned();
    let (status, sub) = post(
        &client,
        &hub.url(&format!("/api/v1/subscriptions/{id}/approve")),
        &owner,
        &json!({}),
    )
    .await;
    assert_eq!(status, 200, "{sub}");
    (
        id.parse().unwrap(),
        sub["topic"].as_str().unwrap().to_owned(),
    )
}

/// Waits until subscription `id` has no batch pending and delivered at least `n` records;
/// how many it delivered.
async fn delivered(db: &sqlx::PgPool, id: uuid::Uuid, n: i64) -> i64 {
    bohai_tests::eventually(
        std::time::Duration::from_secs(120),
        "the repository to be delivered and marked",
        || async {
            let (delivered, pending): (i64, bool) = sqlx::query_as(
                "SELECT delivered_total, pending_xid IS NOT NULL FROM subscription_deliveries
                 WHERE subscription = $1",
            )
            .bind(id)
            .fetch_optional(db)
            .await
            .unwrap()
            .unwrap_or((0, true));
            (!pending && delivered >= n).then_some(delivered)
        },
    )
    .await
}

/// A batch left pending is recognised on the topic by its own records only. Records beyond
/// the stored ends that name no batch (an instance of the version before, which kept no
/// ends, delivered them during an upgrade) do not make a pending batch delivered: it is
/// produced. Before, any record there marked it delivered, and its records never reached the
/// subscriber.
#[tokio::test]
async fn a_pending_batch_is_marked_delivered_only_by_its_own_records_on_the_topic() {
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let config = prepared_config().await.unwrap();
    let db = bohai_hub::database::pool(&config.database).unwrap();
    store_generated(&config, &db, 3, 1_500).await;
    let hub = RunningHub::start(config.clone()).await.unwrap();
    let (id, topic) = subscribed(&hub, &db).await;
    assert_eq!(delivered(&db, id, 1_500).await, 1_500);
    drop(hub);

    // While no new hub runs: more records, a batch of them marked pending, and records on
    // the topic beyond the stored ends that name no batch.
    let later = store_generated(&config, &db, 4, 500).await;
    let (xid, pk): (String, String) = sqlx::query_as(
        "SELECT change_xid::text, pk FROM repository_records WHERE dataset = $1
         ORDER BY change_xid DESC, pk DESC LIMIT 1",
    )
    .bind(DATASET)
    .fetch_one(&db)
    .await
    .unwrap();
    let owner_db = bohai_tests::owner_pool(&config).await.unwrap();
    sqlx::query(
        "UPDATE subscription_deliveries SET pending_xid = $2::xid8, pending_pk = $3
         WHERE subscription = $1",
    )
    .bind(id)
    .bind(&xid)
    .bind(&pk)
    .execute(&owner_db)
    .await
    .unwrap();
    let producer: FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bohai_tests::brokers())
        .create()
        .unwrap();
    for i in 0..10 {
        let value = json!({"subscription": id.to_string(), "dataset": DATASET, "data": {"credit_code": format!("older-{i}")}}).to_string();
        producer
            .send(
                FutureRecord::<str, str>::to(&topic).payload(&value),
                std::time::Duration::from_secs(10),
            )
            .await
            .unwrap();
    }

    let hub = RunningHub::start(config.clone()).await.unwrap();
    delivered(&db, id, 2_000).await;
    let on_topic: std::collections::BTreeSet<String> =
        bohai_tests::topic_to_end(&bohai_tests::brokers(), &topic)
            .iter()
            .filter_map(|v| v["data"]["credit_code"].as_str().map(str::to_owned))
            .collect();
    let missing: Vec<&String> = later.keys().filter(|k| !on_topic.contains(*k)).collect();
    assert!(
        missing.is_empty(),
        "{} of the pending batch's records never reached the topic",
        missing.len()
    );
    drop(hub);
}

/// A subscription batch the broker took, and whose delivery the database never marked (the
/// mark's transaction failed, as when the instance dies right there), is found on the topic
/// by the next round (or by the duty's next holder), not produced again: every record of the
/// repository is on the subscription topic exactly once. Before, the batch left pending was
/// produced a second time.
#[tokio::test]
async fn a_delivered_batch_whose_mark_was_lost_is_not_delivered_twice() {
    let config = prepared_config().await.unwrap();
    let db = bohai_hub::database::pool(&config.database).unwrap();
    let records = store_generated(&config, &db, 7, 5_000).await;
    // The first three marks of a batch delivered fail, after the broker committed the batch
    // (a sequence, which no rollback takes back, counts them).
    let owner_db = bohai_tests::owner_pool(&config).await.unwrap();
    for statement in [
        "CREATE SEQUENCE test_failed_marks",
        "CREATE FUNCTION test_fail_marks() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
             IF nextval('test_failed_marks') <= 3 THEN
                 RAISE EXCEPTION 'the mark fails (test)' USING ERRCODE = '40001';
             END IF;
             RETURN NEW;
         END $$",
        "CREATE TRIGGER test_fail_marks BEFORE UPDATE ON subscription_deliveries FOR EACH ROW
         WHEN (OLD.pending_xid IS NOT NULL AND NEW.pending_xid IS NULL)
         EXECUTE FUNCTION test_fail_marks()",
    ] {
        sqlx::query(statement).execute(&owner_db).await.unwrap();
    }
    let hub = RunningHub::start(config.clone()).await.unwrap();
    let (uuid, topic) = subscribed(&hub, &db).await;
    let (delivered, failed_marks) = bohai_tests::eventually(
        std::time::Duration::from_secs(120),
        "the whole repository to be delivered and marked",
        || async {
            let (delivered, pending, failed_marks): (i64, bool, i64) = sqlx::query_as(
                "SELECT delivered_total, pending_xid IS NOT NULL,
                        (SELECT last_value FROM test_failed_marks)
                 FROM subscription_deliveries WHERE subscription = $1",
            )
            .bind(uuid)
            .fetch_optional(&owner_db)
            .await
            .unwrap()
            .unwrap_or((0, true, 0));
            (!pending && delivered >= 5_000).then_some((delivered, failed_marks))
        },
    )
    .await;
    assert!(failed_marks >= 3, "only {failed_marks} marks were tried");
    assert_eq!(delivered, 5_000);

    let delivered = bohai_tests::topic_to_end(&bohai_tests::brokers(), &topic);
    let mut times: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
    for v in &delivered {
        *times
            .entry(v["data"]["credit_code"].as_str().unwrap())
            .or_default() += 1;
    }
    let twice: Vec<_> = times.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        twice.is_empty(),
        "{} records delivered more than once: {:?}",
        twice.len(),
        &twice[..twice.len().min(5)]
    );
    assert_eq!(times.len(), records.len());
}
