//! The API keeps its contract under hostile input, checked by tools that are not Bohai's: the
//! OpenAPI document is valid for openapi-spec-validator, and schemathesis, run against a hub
//! with seeded data (a dataset with records, a subscription, a licence, a seal) with a token
//! of each scope, finds nothing with every check it has. Both tools are installed by
//! `scripts/deps` into a virtual environment under `~/.cache/bohai/tools/api-check`.
//!
//! Also here: what the error boundary answers for what no handler sees (an unknown route or
//! method, a refused body or parameter), always the JSON error body.

#![allow(clippy::unwrap_used)] // a test that cannot unwrap should fail loudly

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use bohai_hub::auth::{self, Scope};
use bohai_tests::{
    bohai_ok as ok, output_within, prepared_config, test_config, write_config_with_master_key,
    RunningHub,
};
use serde_json::{json, Value};

/// The virtual environment of the API checkers (`scripts/deps` makes it).
fn api_tools() -> PathBuf {
    let tools = std::env::var_os("BOHAI_TOOLS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/bohai/tools")
        });
    let bin = tools.join("api-check/bin");
    assert!(
        bin.join("st").exists() && bin.join("openapi-spec-validator").exists(),
        "{} lacks schemathesis or openapi-spec-validator: run scripts/deps",
        bin.display()
    );
    bin
}

async fn answer(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("a {status} answer that is not JSON ({e}): {text:?}"));
    (status, body)
}

#[tokio::test]
async fn the_openapi_document_is_valid_for_an_independent_validator() {
    let bin = api_tools();
    let hub = RunningHub::start(test_config().await.unwrap())
        .await
        .unwrap();
    let text = reqwest::get(hub.url("/api/v1/openapi.json"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("openapi.json");
    std::fs::write(&file, &text).unwrap();
    let out = output_within(
        Command::new(bin.join("openapi-spec-validator")).arg(&file),
        Duration::from_secs(120),
    );
    assert!(
        out.status.success(),
        "openapi-spec-validator refused the document:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // The validator checks that it is a valid document; its refusal of a broken one is what
    // makes the check worth anything: a dangling reference must fail it.
    let mut broken: Value = serde_json::from_str(&text).unwrap();
    broken["components"]["schemas"]
        .as_object_mut()
        .unwrap()
        .remove("ErrorBody");
    std::fs::write(&file, broken.to_string()).unwrap();
    let out = output_within(
        Command::new(bin.join("openapi-spec-validator")).arg(&file),
        Duration::from_secs(120),
    );
    assert!(
        !out.status.success(),
        "the validator passed a document with a dangling reference"
    );
}

#[tokio::test]
async fn what_no_handler_answers_is_answered_with_the_json_error_body() {
    let config = prepared_config().await.unwrap();
    let db = bohai_hub::database::pool(&config.database).unwrap();
    let hub = RunningHub::start(config).await.unwrap();
    let token = bohai_tests::token(&db, "market-regulation").await;
    let ops = auth::create_scoped_token(&db, "data-administration", &[Scope::Ops], None)
        .await
        .unwrap()
        .secret;
    let http = reqwest::Client::new();

    let (status, body) = answer(http.get(hub.url("/api/v1/nothing")).send().await.unwrap()).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("no_route")));

    let response = http
        .delete(hub.url("/api/v1/datasets"))
        .send()
        .await
        .unwrap();
    let allow = response.headers().get("allow").cloned();
    let (status, body) = answer(response).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (405, Some("method_not_allowed"))
    );
    assert_eq!(allow.unwrap(), "GET,HEAD");

    // A path parameter that is not a UUID, named.
    let (status, body) = answer(
        http.get(hub.url("/api/v1/subscriptions/not-a-uuid"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["code"], "invalid_parameter");
    assert_eq!(body["field"], "id");

    // An unknown query parameter, and a limit above its maximum, named.
    for (query, field) in [("colour=red", "colour"), ("limit=1001", "limit")] {
        let (status, body) = answer(
            http.get(hub.url(&format!(
                "/api/v1/datasets/business-registrations/records?{query}"
            )))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap(),
        )
        .await;
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["field"], field, "{query}: {body}");
    }
    let (status, body) = answer(
        http.get(hub.url("/api/v1/ops/dead-letters?limit=0"))
            .bearer_auth(&ops)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body["field"].as_str()),
        (400, Some("limit")),
        "{body}"
    );

    // A JSON body: without its content type, not JSON, of the wrong shape, too large.
    let url = hub.url("/api/v1/subscriptions");
    let (status, body) = answer(
        http.post(&url)
            .bearer_auth(&token)
            .body(r#"{"dataset": "x"}"#)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (415, Some("unsupported_media_type"))
    );
    let (status, body) = answer(
        http.post(&url)
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body("{not json")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, body["code"].as_str()), (400, Some("invalid_json")));
    let (status, body) = answer(
        http.post(&url)
            .bearer_auth(&token)
            .json(&json!({"dataset": "driving-licences", "fields": [1], "purpose": "x", "until": "2030-01-01T00:00:00Z"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("invalid_request"))
    );
    assert_eq!(body["pointer"], "/fields/0", "{body}");
    let (status, body) = answer(
        http.post(&url)
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(vec![b' '; 17 * 1024 * 1024])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (413, Some("payload_too_large"))
    );
    assert_eq!(body["limit"], 16 * 1024 * 1024);
}

/// What the schemathesis runs work on.
struct Seeded {
    dir: tempfile::TempDir,
    hub: RunningHub,
    /// (name, token) of each run.
    tokens: Vec<(&'static str, String)>,
    seal: String,
    licence: String,
    subscription: String,
}

async fn seeded_hub() -> Seeded {
    let dir = tempfile::tempdir().unwrap();
    let mut config = prepared_config().await.unwrap();
    config.pki.master_key_file = dir.path().join("state/master.key");
    // Schemathesis sends as fast as the hub answers, far past a token's rate in production:
    // here the contract is checked, not the limit (that is limits.rs; 429 is in the document).
    config.http.token_requests_per_minute = 1_000_000;
    config.http.token_burst = 100_000;
    let file = write_config_with_master_key(&config, dir.path()).unwrap();
    ok(&file, &["seal", "init-ca"]);
    ok(&file, &["seal", "issue", "market-regulation"]);
    let db = bohai_hub::database::pool(&config.database).unwrap();
    let token = |dept: &'static str, scopes: &'static [Scope]| {
        let db = db.clone();
        async move {
            auth::create_scoped_token(&db, dept, scopes, None)
                .await
                .unwrap()
                .secret
        }
    };
    let publish = token("market-regulation", &[Scope::Publish]).await;
    let issue = token("market-regulation", &[Scope::Issue]).await;
    let read = token("public-security", &[Scope::Read]).await;
    let admin = token("data-administration", &[Scope::Admin]).await;
    let ops = token("data-administration", &[Scope::Ops]).await;
    let hub = RunningHub::start(config).await.unwrap();
    let http = reqwest::Client::new();

    // A dataset with records.
    let valid = std::fs::read_to_string(
        bohai_schemas::registry::builtin_dir()
            .join("datasets/business-registrations/examples/valid.jsonl"),
    )
    .unwrap();
    let (status, body) = answer(
        http.post(hub.url("/api/v1/datasets/business-registrations/records"))
            .bearer_auth(&publish)
            .header("content-type", "application/x-ndjson")
            .body(valid)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["accepted"].as_u64().unwrap() > 0, "{body}");

    // A licence.
    let subject: Value = serde_json::from_str(
        std::fs::read_to_string(
            bohai_schemas::registry::builtin_dir()
                .join("licences/business-licence/examples/valid.jsonl"),
        )
        .unwrap()
        .lines()
        .next()
        .unwrap(),
    )
    .unwrap();
    let (status, body) = answer(
        http.post(hub.url("/api/v1/licences"))
            .bearer_auth(&issue)
            .json(&json!({"type": "business-licence", "holder": subject["holder"], "fields": subject["fields"]}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let licence = body["number"].as_str().unwrap().to_owned();

    // A subscription, approved.
    let until = (chrono::Utc::now() + chrono::Duration::days(90)).to_rfc3339();
    let (status, body) = answer(
        http.post(hub.url("/api/v1/subscriptions"))
            .bearer_auth(&read)
            .json(&json!({"dataset": "business-registrations", "fields": ["credit_code", "entity_name"], "purpose": "市场主体核验", "until": until}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let subscription = body["id"].as_str().unwrap().to_owned();
    let (status, body) = answer(
        http.post(hub.url(&format!("/api/v1/subscriptions/{subscription}/approve")))
            .bearer_auth(&publish)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");

    // A seal.
    let (_, seals) = answer(http.get(hub.url("/api/v1/seals")).send().await.unwrap()).await;
    let seal = seals
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["department"] == "market-regulation")
        .unwrap_or_else(|| panic!("no seal of market-regulation in {seals}"))["seal_id"]
        .as_str()
        .unwrap()
        .to_owned();

    Seeded {
        dir,
        hub,
        tokens: vec![
            ("publish", publish),
            ("issue", issue),
            ("read", read),
            ("admin", admin),
            ("ops", ops),
        ],
        seal,
        licence,
        subscription,
    }
}

/// An operation of the schemathesis configuration: its path, its seeded path parameter
/// (name, value), and why a schema-valid request may still be refused with 400.
type Operation<'a> = (&'a str, Option<(&'a str, &'a str)>, Option<&'a str>);

/// The schemathesis configuration: the seeded resources as the path parameters of the
/// operations that take them, so that the handlers' real work is reached, not only their
/// 404s; and, for the operations whose handlers check what the document cannot say, 400
/// among the answers a schema-valid request may get (`positive_data_acceptance`), each with
/// the reason.
fn schemathesis_config(seeded: &Seeded) -> String {
    let dataset = "business-registrations";
    let (seal, licence, sub) = (
        seeded.seal.as_str(),
        seeded.licence.as_str(),
        seeded.subscription.as_str(),
    );
    // (path, its seeded parameter, why a schema-valid request may still be refused with 400)
    let operations: [Operation; 13] = [
        ("/api/v1/datasets/{id}", Some(("id", dataset)), None),
        ("/api/v1/datasets/{id}/stats", Some(("id", dataset)), None),
        ("/api/v1/datasets/{id}/records", Some(("id", dataset)), None),
        ("/api/v1/seals/{id}", Some(("id", seal)), None),
        ("/api/v1/seals/{id}/certificate", Some(("id", seal)), None),
        ("/api/v1/seals/{id}/image", Some(("id", seal)), None),
        (
            "/api/v1/seals/{id}/sign",
            Some(("id", seal)),
            Some("an empty document is refused"),
        ),
        ("/api/v1/licences/{number}", Some(("number", licence)), None),
        (
            "/api/v1/licences/{number}/{action}",
            Some(("number", licence)),
            Some("revoke needs a reason; renew's valid_until must be after now"),
        ),
        ("/api/v1/subscriptions/{id}", Some(("id", sub)), None),
        (
            "/api/v1/subscriptions/{id}/{decision}",
            Some(("id", sub)),
            Some("reject needs a reason"),
        ),
        (
            "/api/v1/subscriptions/{id}/withdraw",
            Some(("id", sub)),
            None,
        ),
        (
            "/api/v1/licences",
            None,
            Some("holder and fields follow the licence type's own schema"),
        ),
    ];
    let more: [(&str, &str); 6] = [
        (
            "/api/v1/credit/repairs",
            "the documents the dataset's repair rule asks for, a reason",
        ),
        (
            "/api/v1/credit/repairs/{id}/{decision}",
            "a reason that is not blank",
        ),
        (
            "/api/v1/licences/batch",
            "each licence follows its type's own schema",
        ),
        (
            "/api/v1/licences/verify",
            "one of licence, licences or qr is needed",
        ),
        (
            "/api/v1/seals/verify",
            "exactly one of document and document_sha256, a signature that parses",
        ),
        (
            "/api/v1/subscriptions",
            "fields of the dataset's schema, until within three years from now",
        ),
    ];
    let mut text = String::from(
        "# Written by tests/tests/api_contract.rs.\n[generation]\nmax-examples = 10\n\n",
    );
    let entries = operations
        .iter()
        .map(|(p, param, why)| (*p, *param, *why))
        .chain(more.iter().map(|(p, why)| (*p, None, Some(*why))));
    for (path, param, why) in entries {
        text.push_str(&format!("[[operations]]\ninclude-path = \"{path}\"\n"));
        if let Some((name, value)) = param {
            text.push_str(&format!(
                "parameters = {{ \"path.{name}\" = \"{value}\" }}\n"
            ));
        }
        if let Some(why) = why {
            text.push_str(&format!(
                "# {why}\nchecks.positive_data_acceptance.expected-statuses = [\"2xx\", \"400\", \"401\", \"403\", \"404\", \"409\"]\n"
            ));
        }
        text.push('\n');
    }
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_nothing_with_a_token_of_each_scope() {
    let bin = api_tools();
    let seeded = seeded_hub().await;
    let config = seeded.dir.path().join("schemathesis.toml");
    std::fs::write(&config, schemathesis_config(&seeded)).unwrap();
    let mut failed = Vec::new();
    for (scope, token) in &seeded.tokens {
        let report = seeded.dir.path().join(format!("report-{scope}"));
        let out = output_within(
            Command::new(bin.join("st"))
                .current_dir(seeded.dir.path())
                .args(["--no-color", "--config-file"])
                .arg(&config)
                .args(["run", &seeded.hub.url("/api/v1/openapi.json")])
                .args(["--checks", "all", "--seed", "16", "--workers", "2"])
                .args(["--request-timeout", "30", "--generation-database", "none"])
                .args(["-H", &format!("Authorization: Bearer {token}")])
                .args(["--report", "junit", "--report-dir"])
                .arg(&report),
            Duration::from_secs(600),
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        println!("== schemathesis with the {scope} token\n{stdout}");
        if !out.status.success() {
            failed.push(format!(
                "with the {scope} token:\n{stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    assert!(
        failed.is_empty(),
        "schemathesis found:\n{}",
        failed.join("\n")
    );
}
