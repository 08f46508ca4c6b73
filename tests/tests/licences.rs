//! Electronic licences end to end against the real PostgreSQL and broker: issuing through
//! the CLI and the API (department boundary, schema violations), every lifecycle transition
//! and the verdict each leaves, the signed status list with its cache headers, automatic
//! expiry, the licence-events topic, malformed input, and a licence verified by PyJWT.

#![allow(clippy::unwrap_used)] // a test that cannot unwrap should fail loudly

use std::path::{Path, PathBuf};
use std::time::Duration;

use bohai_hub::auth;
use bohai_tests::trust::problem_codes as problems;
use bohai_tests::{bohai, prepared_config, write_config_with_master_key, RunningHub};
use rdkafka::consumer::{Consumer as _, StreamConsumer};
use rdkafka::Message as _;
use serde_json::{json, Value};

use bohai_tests::{bohai_ok as ok, bohai_run as run};

/// The first valid example subject of a licence type.
fn example(licence_type: &str, n: usize) -> Value {
    let path = bohai_schemas::registry::builtin_dir()
        .join("licences")
        .join(licence_type)
        .join("examples/valid.jsonl");
    let text = std::fs::read_to_string(path).unwrap();
    serde_json::from_str(
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .nth(n)
            .unwrap(),
    )
    .unwrap()
}

struct Fixture {
    dir: tempfile::TempDir,
    file: PathBuf,
    root_pem: String,
    hub: RunningHub,
    http: reqwest::Client,
    police_token: String,
    market_token: String,
    topic_prefix: String,
    db: sqlx::PgPool,
    config: bohai_hub::config::Config,
}

impl Fixture {
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = prepared_config().await.unwrap();
        let master = dir.path().join("state/master.key");
        config.pki.master_key_file = master.clone();
        let file = write_config_with_master_key(&config, dir.path()).unwrap();
        let pems = ok(&file, &["seal", "init-ca"]);
        let root_pem = bohai_tests::city_root_pem(&pems);
        for dept in ["traffic-police", "market-regulation", "data-administration"] {
            ok(&file, &["seal", "issue", dept]);
        }
        let db = bohai_hub::database::pool(&config.database).unwrap();
        let police_token = bohai_tests::token(&db, "traffic-police").await;
        let market_token = bohai_tests::token(&db, "market-regulation").await;
        let topic_prefix = config.kafka.topic_prefix.clone();
        let hub = RunningHub::start(config.clone()).await.unwrap();
        Self {
            dir,
            file,
            root_pem,
            hub,
            http: reqwest::Client::new(),
            police_token,
            market_token,
            topic_prefix,
            db,
            config,
        }
    }

    /// Issues a driving licence at the command line with `extra` arguments; returns the
    /// file written and the licence.
    fn issue_cli(&self, holder: &Path, name: &str, extra: &[&str]) -> (PathBuf, String) {
        let out = self.dir.path().join(format!("{name}.jws"));
        let mut args = vec!["licence", "issue", "--type", "driving-licence", "--holder"];
        args.push(holder.to_str().unwrap());
        args.extend(["-o", out.to_str().unwrap()]);
        args.extend(extra);
        ok(&self.file, &args);
        let document = std::fs::read_to_string(&out).unwrap();
        (out, document)
    }

    async fn post(&self, path: &str, token: Option<&str>, body: &Value) -> (u16, Value) {
        let mut req = self.http.post(self.hub.url(path)).json(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// Verifies one licence online; returns the report.
    async fn verify(&self, document: &str) -> Value {
        self.verify_at(document, None).await
    }

    async fn verify_at(&self, document: &str, at: Option<&str>) -> Value {
        let mut body = json!({"licence": document});
        if let Some(at) = at {
            body["at"] = json!(at);
        }
        let (status, answer) = self.post("/api/v1/licences/verify", None, &body).await;
        assert_eq!(status, 200, "{answer}");
        answer["reports"][0].clone()
    }

    async fn issue(&self, token: &str, licence_type: &str, n: usize) -> (u16, Value) {
        let subject = example(licence_type, n);
        let body =
            json!({"type": licence_type, "holder": subject["holder"], "fields": subject["fields"]});
        self.post("/api/v1/licences", Some(token), &body).await
    }

    async fn action(&self, number: &str, action: &str, body: &Value) -> (u16, Value) {
        self.post(
            &format!("/api/v1/licences/{number}/{action}"),
            Some(&self.police_token),
            body,
        )
        .await
    }
}

// Multi-threaded: the in-process hub keeps serving while the test waits on child processes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn licences_are_issued_verified_and_live_their_whole_lifecycle() {
    let f = Fixture::new().await;

    // Issued at the command line, verified online and by an independent JOSE implementation.
    let holder = f.dir.path().join("holder.json");
    std::fs::write(&holder, example("driving-licence", 0).to_string()).unwrap();
    let (jws_file, document) = f.issue_cli(&holder, "licence", &[]);
    let issued: Value = serde_json::from_str(&ok(
        &f.file,
        &["licence", "show", &claims_number(&document), "--json"],
    ))
    .unwrap();
    let number = issued["number"].as_str().unwrap().to_owned();
    assert!(number.starts_with("DL-"), "{number}");
    assert_eq!(issued["versions"][0]["state"], "valid");
    let report = f.verify(&document).await;
    assert_eq!(report["overall"], "VALID", "{report:#}");
    assert!(report["status_as_of"].is_string());
    let cli = run(
        &f.file,
        &["licence", "verify", jws_file.to_str().unwrap(), "--json"],
    );
    assert!(
        cli.status.success(),
        "{}",
        String::from_utf8_lossy(&cli.stdout)
    );

    let root = f.dir.path().join("root.pem");
    std::fs::write(&root, &f.root_pem).unwrap();
    let script =
        bohai_schemas::registry::builtin_dir().join("../tests/interop/verify_licence_pyjwt.py");
    let py = std::process::Command::new("python3")
        .arg(&script)
        .arg(&jws_file)
        .arg(&root)
        .output()
        .unwrap();
    assert!(
        py.status.success(),
        "PyJWT refused it: {}",
        String::from_utf8_lossy(&py.stdout)
    );
    assert_eq!(String::from_utf8_lossy(&py.stdout).trim(), number);
    // ... and refuses a tampered one.
    let parts: Vec<&str> = document.trim().split('.').collect();
    let tampered = format!(
        "{}.{}A.{}",
        parts[0],
        &parts[1][..parts[1].len() - 1],
        parts[2]
    );
    std::fs::write(&jws_file, &tampered).unwrap();
    let py = std::process::Command::new("python3")
        .arg(&script)
        .arg(&jws_file)
        .arg(&root)
        .output()
        .unwrap();
    assert!(!py.status.success());
    let report = f.verify(&tampered).await;
    assert_eq!(report["overall"], "INVALID");
    assert!(
        problems(&report)
            .iter()
            .any(|c| c == "SIGNATURE_INVALID" || c == "MALFORMED"),
        "{report:#}"
    );

    // The API: 401 without a token, 403 for another department's type, 400 naming the field.
    let (status, _) = f.post("/api/v1/licences", None, &json!({})).await;
    assert_eq!(status, 401);
    let (status, answer) = f.issue(&f.market_token, "driving-licence", 1).await;
    assert_eq!(status, 403, "{answer}");
    let mut bad = example("driving-licence", 1);
    bad["holder"]["id_number"] = json!("211121197103040241");
    let (status, answer) = f
        .post(
            "/api/v1/licences",
            Some(&f.police_token),
            &json!({"type": "driving-licence", "holder": bad["holder"], "fields": bad["fields"]}),
        )
        .await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["code"], "licence_invalid");
    assert!(
        answer["message"]
            .as_str()
            .unwrap()
            .contains("/holder/id_number"),
        "{answer}"
    );
    let (status, answer) = f
        .post(
            "/api/v1/licences",
            Some(&f.police_token),
            &json!("not an object"),
        )
        .await;
    assert_eq!(status, 400, "{answer}");

    let (status, answer) = f.issue(&f.police_token, "driving-licence", 1).await;
    assert_eq!(status, 201, "{answer}");
    let api_number = answer["number"].as_str().unwrap().to_owned();
    let api_doc = answer["document"].as_str().unwrap().to_owned();
    assert_eq!(f.verify(&api_doc).await["overall"], "VALID");

    // Suspend → LICENCE_SUSPENDED; resume → VALID again.
    let (status, answer) = f
        .action(&api_number, "suspend", &json!({"reason": "交通违法处理中"}))
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(problems(&f.verify(&api_doc).await), ["LICENCE_SUSPENDED"]);
    let (status, _) = f.action(&api_number, "suspend", &json!({})).await;
    assert_eq!(status, 409);
    let (status, _) = f.action(&api_number, "resume", &json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(f.verify(&api_doc).await["overall"], "VALID");

    // Renew → version 2 valid, version 1 superseded.
    let (status, answer) = f.action(&api_number, "renew", &json!({})).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["issued"]["version"], 2);
    let renewed = answer["issued"]["document"].as_str().unwrap().to_owned();
    assert_eq!(f.verify(&renewed).await["overall"], "VALID");
    assert_eq!(problems(&f.verify(&api_doc).await), ["LICENCE_SUPERSEDED"]);

    // Replace (lost) → a new number valid; the old document revoked, linked to its successor.
    let (status, answer) = f.action(&api_number, "replace", &json!({})).await;
    assert_eq!(status, 200, "{answer}");
    let new_number = answer["issued"]["number"].as_str().unwrap().to_owned();
    assert_ne!(new_number, api_number);
    let replacement = answer["issued"]["document"].as_str().unwrap().to_owned();
    assert_eq!(f.verify(&replacement).await["overall"], "VALID");
    assert_eq!(problems(&f.verify(&renewed).await), ["LICENCE_REVOKED"]);
    let shown: Value =
        serde_json::from_str(&ok(&f.file, &["licence", "show", &api_number, "--json"])).unwrap();
    assert_eq!(shown["versions"][0]["state"], "revoked");
    assert_eq!(shown["versions"][0]["revocation_reason"], "replaced");
    assert_eq!(
        shown["versions"][0]["successor"],
        format!("{new_number}/v1")
    );
    assert_eq!(shown["versions"][1]["state"], "superseded");
    let events: Vec<&str> = shown["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        events,
        ["issued", "suspended", "resumed", "renewed", "replaced"]
    );
    assert!(shown["events"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["actor"] == "dept:traffic-police"));

    // Revoke needs a reason; another department may not act on it, nor learn it exists.
    let (status, _) = f.action(&new_number, "revoke", &json!({})).await;
    assert_eq!(status, 400);
    // Answered as a number never issued (issue 15: numbers are not enumerable).
    let (status, answer) = f
        .post(
            &format!("/api/v1/licences/{new_number}/revoke"),
            Some(&f.market_token),
            &json!({"reason": "x"}),
        )
        .await;
    let (never_status, never) = f
        .post(
            "/api/v1/licences/DL-2026-99999999/revoke",
            Some(&f.market_token),
            &json!({"reason": "x"}),
        )
        .await;
    assert_eq!((status, never_status), (404, 404), "{answer}");
    assert_eq!(
        answer.to_string().replace(&new_number, "N"),
        never.to_string().replace("DL-2026-99999999", "N")
    );
    let (status, _) = f
        .action(&new_number, "revoke", &json!({"reason": "吊销：醉酒驾驶"}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(problems(&f.verify(&replacement).await), ["LICENCE_REVOKED"]);
    let (status, _) = f
        .action("DL-1999-00000000", "revoke", &json!({"reason": "x"}))
        .await;
    assert_eq!(status, 404);

    // Every licence action is in the audit log, whose hash chain is intact.
    let audit: Value = serde_json::from_str(&ok(&f.file, &["audit", "verify", "--json"])).unwrap();
    assert_eq!(audit["intact"], true, "{audit}");
    // issued twice, suspended, resumed, renewed, replaced, revoked (besides the fixture's CA
    // and seals, audited too)
    let licence_entries: i64 =
        sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE starts_with(action, 'licence.')")
            .fetch_one(&f.db)
            .await
            .unwrap();
    assert_eq!(licence_entries, 7, "{audit}");

    // A verification "as of" an hour from now finds the status list stale: INDETERMINATE.
    let later = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let report = f.verify_at(&document, Some(&later)).await;
    assert_eq!(report["overall"], "INDETERMINATE", "{report:#}");
    assert_eq!(problems(&report), ["STATUS_STALE"]);

    // Expired and not-yet-valid licences, issued with explicit validity at the CLI.
    let (expired_file, expired) = f.issue_cli(
        &holder,
        "expired",
        &[
            "--valid-from",
            "2020-01-01T00:00:00Z",
            "--valid-until",
            "2026-01-01T00:00:00Z",
        ],
    );
    assert_eq!(problems(&f.verify(&expired).await), ["LICENCE_EXPIRED"]);
    let cli = run(
        &f.file,
        &["licence", "verify", expired_file.to_str().unwrap()],
    );
    assert_eq!(cli.status.code(), Some(2));
    let out = ok(&f.file, &["licence", "expire"]);
    assert!(out.starts_with("1 "), "{out}");
    let (_, future) = f.issue_cli(
        &holder,
        "future",
        &[
            "--valid-from",
            "2099-01-01T00:00:00Z",
            "--valid-until",
            "2105-01-01T00:00:00Z",
        ],
    );
    assert_eq!(
        problems(&f.verify(&future).await),
        ["LICENCE_NOT_YET_VALID"]
    );

    // Several licences in one request: one report each and an overall verdict.
    let (status, answer) = f
        .post(
            "/api/v1/licences/verify",
            None,
            &json!({"licences": [document, expired]}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(answer["overall"], "INVALID");
    assert_eq!(answer["reports"].as_array().unwrap().len(), 2);

    // Malformed input: 400 with a message for a bad request, a MALFORMED report for a bad licence.
    let resp = f
        .http
        .post(f.hub.url("/api/v1/licences/verify"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["code"], "invalid_json");
    assert_eq!(problems(&f.verify("garbage").await)[0], "MALFORMED");

    // The status list: a statuslist+jwt with ETag and max-age; If-None-Match answers 304.
    let resp = f
        .http
        .get(f.hub.url("/api/v1/licences/status-list"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.headers()["content-type"], "application/statuslist+jwt");
    let etag = resp.headers()["etag"].to_str().unwrap().to_owned();
    assert!(resp.headers()["cache-control"]
        .to_str()
        .unwrap()
        .contains("max-age="));
    let resp = f
        .http
        .get(f.hub.url("/api/v1/licences/status-list"))
        .header("If-None-Match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 304);

    // Offline: a signed trust bundle and the pinned root, no hub and no database.
    let bundle = f.dir.path().join("bundle.jws");
    ok(
        &f.file,
        &["licence", "bundle", "-o", bundle.to_str().unwrap()],
    );
    let good = f.dir.path().join("good.jws");
    std::fs::write(&good, &document).unwrap();
    let revoked = f.dir.path().join("revoked.jws");
    std::fs::write(&revoked, &replacement).unwrap();
    let offline = |licence: &Path, at: Option<&str>| {
        let mut args = vec![
            "licence",
            "verify",
            licence.to_str().unwrap(),
            "--json",
            "--offline",
            bundle.to_str().unwrap(),
            "--root",
            root.to_str().unwrap(),
        ];
        if let Some(at) = at {
            args.extend(["--at", at]);
        }
        // No database: the offline path must not need one.
        let out = bohai(&f.file)
            .args(&args)
            .env("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")
            .output()
            .unwrap();
        let report: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        (out.status.code(), report)
    };
    let (code, report) = offline(&good, None);
    assert_eq!(code, Some(0), "{report:#}");
    let (code, report) = offline(&revoked, None);
    assert_eq!(code, Some(2), "{report:#}");
    assert_eq!(problems(&report), ["LICENCE_REVOKED"]);
    let (code, report) = offline(&good, Some(&later));
    assert_eq!(code, Some(3), "{report:#}");
    assert_eq!(problems(&report), ["STATUS_STALE"]);
    // The QR form: an image and a payload that verifies online and offline.
    let png = f.dir.path().join("qr.png");
    let payload_file = f.dir.path().join("qr.txt");
    ok(
        &f.file,
        &[
            "licence",
            "qr",
            &number,
            "-o",
            png.to_str().unwrap(),
            "--payload",
            payload_file.to_str().unwrap(),
        ],
    );
    assert!(std::fs::read(&png).unwrap().starts_with(b"\x89PNG"));
    let svg = f.dir.path().join("qr.svg");
    ok(
        &f.file,
        &["licence", "qr", &number, "-o", svg.to_str().unwrap()],
    );
    assert!(std::fs::read_to_string(&svg).unwrap().contains("<svg"));
    let payload = std::fs::read_to_string(&payload_file).unwrap();
    assert!(payload.starts_with("BHL1:"));
    let (status, answer) = f
        .post("/api/v1/licences/verify", None, &json!({"qr": payload}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(answer["overall"], "VALID", "{answer:#}");
    let (code, report) = offline(&payload_file, None);
    assert_eq!(code, Some(0), "{report:#}");
    let (_, report) = offline(&payload_file, Some(&later));
    assert_eq!(problems(&report), ["STATUS_STALE"]);

    // A bundle checked against another root is refused with a clear error.
    let other_root = f.dir.path().join("other-root.pem");
    std::fs::write(&other_root, bohai_tests_other_root()).unwrap();
    let out = bohai(&f.file)
        .args([
            "licence",
            "verify",
            good.to_str().unwrap(),
            "--offline",
            bundle.to_str().unwrap(),
            "--root",
            other_root.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("trust bundle"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The verifications are counted by form and verdict in /metrics.
    let metrics = f
        .http
        .get(f.hub.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let count = |labels: &str| -> u64 {
        metrics
            .lines()
            .find(|l| l.starts_with(&format!("bohai_licence_verifications_total{{{labels}}}")))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    assert_eq!(count("form=\"qr\",verdict=\"VALID\""), 1, "{metrics}");
    assert!(count("form=\"jws\",verdict=\"VALID\"") >= 5, "{metrics}");
    assert!(count("form=\"jws\",verdict=\"INVALID\"") >= 5, "{metrics}");
    assert!(
        count("form=\"jws\",verdict=\"INDETERMINATE\"") >= 1,
        "{metrics}"
    );

    // Every event reaches the licence-events topic, keyed by licence number.
    let consumer: StreamConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bohai_tests::brokers())
        .set("group.id", bohai_tests::unique("licence-events-"))
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer
        .subscribe(&[&format!("{}licence-events", f.topic_prefix)])
        .unwrap();
    let mut seen: Vec<(String, String)> = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    loop {
        while let Ok(Ok(m)) = tokio::time::timeout(Duration::from_secs(2), consumer.recv()).await {
            let v: Value = serde_json::from_slice(m.payload().unwrap()).unwrap();
            assert_eq!(m.key().unwrap(), v["number"].as_str().unwrap().as_bytes());
            seen.push((
                v["number"].as_str().unwrap().to_owned(),
                v["event"].as_str().unwrap().to_owned(),
            ));
        }
        let for_api: Vec<&str> = seen
            .iter()
            .filter(|(n, _)| *n == api_number)
            .map(|(_, e)| e.as_str())
            .collect();
        if for_api == ["issued", "suspended", "resumed", "renewed", "replaced"]
            && seen.iter().any(|(_, e)| e == "expired")
            && seen.iter().any(|(n, e)| *n == new_number && e == "revoked")
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "licence events missing from the topic; seen {seen:?}"
        );
    }
}

/// A root certificate that is not the city's (made by openssl on the fly).
fn bohai_tests_other_root() -> String {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new("openssl")
        .current_dir(dir.path())
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "k.pem",
            "-out",
            "c.pem",
            "-days",
            "30",
            "-subj",
            "/CN=Other Root",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read_to_string(dir.path().join("c.pem")).unwrap()
}

/// The licence number in a licence JWS's payload, read without verification.
fn claims_number(document: &str) -> String {
    bohai_tests::trust::licence_claims(document)
        .unwrap()
        .licence
        .number
}

#[tokio::test]
async fn a_bulk_import_issues_every_valid_line_and_reports_every_bad_one() {
    let f = Fixture::new().await;
    let d = f.dir.path();
    // Two departments' licences, interleaved, more than one batch of each (2,500).
    let mut lines: Vec<String> = Vec::new();
    for (t, seed) in [("driving-licence", "7"), ("business-licence", "8")] {
        let out = d.join(format!("{t}.jsonl"));
        ok(
            &f.file,
            &[
                "licence",
                "gen",
                "--type",
                t,
                "3000",
                "-o",
                out.to_str().unwrap(),
                "--seed",
                seed,
            ],
        );
        let text = std::fs::read_to_string(&out).unwrap();
        if lines.is_empty() {
            lines = text.lines().map(str::to_owned).collect();
        } else {
            let mut merged = Vec::new();
            for (a, b) in lines.iter().zip(text.lines()) {
                merged.push(a.clone());
                merged.push(b.to_owned());
            }
            lines = merged;
        }
    }
    // Three bad lines: not JSON, an unknown type, fields the type's schema refuses.
    let mut bad: Value = serde_json::from_str(&lines[10]).unwrap();
    bad["fields"] = json!({});
    lines.insert(100, "{not json".to_owned());
    lines.insert(
        4000,
        json!({"type": "fishing-permit", "holder": {}, "fields": {}}).to_string(),
    );
    lines.insert(5000, bad.to_string());
    let file = d.join("registry.jsonl");
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let documents = d.join("documents.txt");

    let out = ok(
        &f.file,
        &[
            "licence",
            "import",
            file.to_str().unwrap(),
            "--documents",
            documents.to_str().unwrap(),
            "--json",
        ],
    );
    let summary: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(summary["read"], 6003, "{summary}");
    assert_eq!(summary["issued"], 6000, "{summary}");
    let rejected: Vec<u64> = summary["rejects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["line"].as_u64().unwrap())
        .collect();
    assert_eq!(rejected, [101, 4001, 5001], "{summary}");
    assert!(
        summary["rejects"][1]["error"]
            .as_str()
            .unwrap()
            .contains("fishing-permit"),
        "{summary}"
    );

    // Every issued licence is stored once, and its document was written back.
    let (stored, numbers): (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(DISTINCT number) FROM licences WHERE holder_name <> ''",
    )
    .fetch_one(&f.db)
    .await
    .unwrap();
    assert_eq!((stored, numbers), (6000, 6000));
    let written = std::fs::read_to_string(&documents).unwrap();
    let written: Vec<&str> = written.lines().collect();
    assert_eq!(written.len(), 6000);
    let sample = d.join("sample.jws");
    std::fs::write(&sample, written[4321]).unwrap();
    let report = run(
        &f.file,
        &["licence", "verify", sample.to_str().unwrap(), "--json"],
    );
    assert!(
        report.status.success(),
        "{}",
        String::from_utf8_lossy(&report.stdout)
    );
}

/// The hub keeps its status list in memory and looks at the database at most once a second.
/// A licence issued in that second by another process (here: the licence service in this
/// process, as the CLI or a second hub would) is beyond the list the hub holds; verified at
/// once, it must still be VALID, not of unknown status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_licence_issued_elsewhere_a_moment_ago_verifies_valid_at_once() {
    use bohai_hub::licences::service::{Actor, LicenceState};
    use bohai_hub::licences::{IssueRequest, LicenceService};
    let f = Fixture::new().await;
    let registry = bohai_schemas::Registry::load(&f.config.registry.dir).unwrap();
    let elsewhere = LicenceState::default();
    let service = LicenceService::new(&f.db, &registry, &f.config, &elsewhere, true).unwrap();
    let request = |n: usize| {
        let subject = example("driving-licence", n % 2);
        IssueRequest {
            licence_type: "driving-licence".to_owned(),
            holder: subject["holder"].clone(),
            fields: subject["fields"].clone(),
            valid_from: None,
            valid_until: None,
            discipline_override: None,
        }
    };
    let actor = Actor::current_operator();
    let first = service
        .issue(&actor, "traffic-police", request(0), chrono::Utc::now())
        .await
        .unwrap();
    // This verification makes the hub's list: it covers the first licence's byte of the
    // list (four entries) and is used without a database check for the next second.
    let report = f.verify(&first.document).await;
    assert_eq!(report["overall"], "VALID", "{report:#}");
    let later: Vec<_> = service
        .issue_many(
            &actor,
            "traffic-police",
            (1..=4).map(request).collect(),
            chrono::Utc::now(),
        )
        .await
        .unwrap()
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert!(
        later
            .iter()
            .any(|l| l.status_index / 4 > first.status_index / 4),
        "one of the later licences lies beyond the list the hub holds"
    );
    let (status, answer) = f
        .post(
            "/api/v1/licences/verify",
            None,
            &json!({"licences": later.iter().map(|l| l.document.clone()).collect::<Vec<_>>()}),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    let reports = answer["reports"].as_array().unwrap();
    assert_eq!(reports.len(), later.len(), "{answer}");
    for report in reports {
        assert_eq!(report["overall"], "VALID", "{report:#}");
    }
}

/// Remaking the status list reads every stored version (seconds at a city's scale): while
/// one request checks or remakes it, the others are answered with the list in memory, not
/// held up behind it. Here the database check is blocked outright (a lock on the events table
/// it reads): a verification still answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verifications_are_not_held_up_while_the_status_list_is_remade() {
    let f = Fixture::new().await;
    let (status, issued) = f.issue(&f.police_token, "driving-licence", 0).await;
    assert_eq!(status, 201, "{issued}");
    let document = issued["document"].as_str().unwrap().to_owned();
    assert_eq!(f.verify(&document).await["overall"], "VALID");

    let mut blocker = f.db.begin().await.unwrap();
    sqlx::query("LOCK TABLE licence_events IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *blocker)
        .await
        .unwrap();
    // Past the second within which the list is used without a database check.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let checking = {
        let (http, url, document) = (
            f.http.clone(),
            f.hub.url("/api/v1/licences/verify"),
            document.clone(),
        );
        tokio::spawn(async move {
            http.post(url)
                .json(&json!({"licence": document}))
                .send()
                .await
                .unwrap()
                .status()
        })
    };
    // Let that request take the check (and block on the lock).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let answered = tokio::time::timeout(Duration::from_secs(20), f.verify(&document)).await;
    drop(blocker);
    let report = answered.expect("a verification waited for the status list's remaking");
    assert_eq!(report["overall"], "VALID", "{report:#}");
    assert_eq!(checking.await.unwrap(), 200);
}

/// Once the status authority has no seal it may sign with (its seal revoked, or every seal
/// after `seal revoke-ca`, until a new one is issued), no status list can be made. A
/// verification must then say the status is unknown (INDETERMINATE), not fail outright, and
/// must not pass a licence suspended since on the strength of the last list. Before, the
/// verification answered 500.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_status_authority_seal_a_verification_is_indeterminate_not_an_error() {
    let f = Fixture::new().await;
    let (status, issued) = f.issue(&f.police_token, "driving-licence", 0).await;
    assert_eq!(status, 201, "{issued}");
    let document = issued["document"].as_str().unwrap().to_owned();
    assert_eq!(f.verify(&document).await["overall"], "VALID");

    bohai_tests::revoke_seal_of(&f.file, "data-administration");
    let number = issued["number"].as_str().unwrap();
    let (status, answer) = f
        .action(number, "suspend", &json!({"reason": "检查"}))
        .await;
    assert_eq!(status, 200, "{answer}");
    // Past the second within which the hub uses its list without looking.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let report = f.verify(&document).await;
    assert_eq!(report["overall"], "INDETERMINATE", "{report:#}");
    assert_eq!(problems(&report), vec!["STATUS_UNKNOWN"], "{report:#}");

    // A new seal for the authority: the list is made again, and the suspension is seen.
    ok(&f.file, &["seal", "issue", "data-administration"]);
    let report =
        bohai_tests::eventually(Duration::from_secs(20), "a status list again", || async {
            let report = f.verify(&document).await;
            (report["overall"] != "INDETERMINATE").then_some(report)
        })
        .await;
    assert_eq!(report["overall"], "INVALID", "{report:#}");
}

/// Issue 15, item 9: the trust bundle (every seal, CRL and the status list, signed) is not
/// signed anew for every request: the same bytes while its status list is current, a new one
/// as soon as a status changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_trust_bundle_is_signed_once_while_its_status_list_is_current() {
    let f = Fixture::new().await;
    let (status, issued) = f.issue(&f.police_token, "driving-licence", 0).await;
    assert_eq!(status, 201, "{issued}");
    let bundle = || async {
        let r = f
            .http
            .get(f.hub.url("/api/v1/licences/bundle"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        r.text().await.unwrap()
    };
    let first = bundle().await;
    // Past the second within which the hub uses its list without looking (signatures are
    // ES256 with a random nonce: a bundle signed anew differs byte for byte).
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(bundle().await, first);
    let number = issued["number"].as_str().unwrap();
    let (status, _) = f
        .action(number, "suspend", &json!({"reason": "检查"}))
        .await;
    assert_eq!(status, 200);
    assert_ne!(bundle().await, first);
}

/// Issue 15, item 2: a licence (holder name, identity number in the sealed document) is read
/// only by its issuing department, an operator, or a department whose subscription to its
/// type the issuer approved (then only the granted fields, masked); anyone else cannot even
/// tell it exists, and every read is audited.
#[tokio::test]
async fn a_licence_is_read_by_its_issuer_an_operator_or_an_approved_subscriber_only() {
    let f = Fixture::new().await;
    let holder = f.dir.path().join("holder.json");
    std::fs::write(&holder, example("driving-licence", 0).to_string()).unwrap();
    let (_, document) = f.issue_cli(&holder, "licence", &[]);
    let number = claims_number(&document);
    let get = |number: String, token: String| {
        let http = f.http.clone();
        let url = f.hub.url(&format!("/api/v1/licences/{number}"));
        async move {
            let r = http.get(url).bearer_auth(token).send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    let education = auth::create_scoped_token(&f.db, "education", &[auth::Scope::Read], None)
        .await
        .unwrap()
        .secret;
    let operator =
        auth::create_scoped_token(&f.db, "data-administration", &[auth::Scope::Admin], None)
            .await
            .unwrap()
            .secret;

    // Another department: the same answer as for a number that was never issued.
    let holder_name = example("driving-licence", 0)["holder"]["name"]
        .as_str()
        .map(str::to_owned);
    let (status, body) = get(number.clone(), education.clone()).await;
    let (never_status, never_body) = get("DL-2026-99999999".to_owned(), education.clone()).await;
    assert_eq!((status, never_status), (404, 404), "{body}");
    // Word for word, but for the number asked about.
    assert_eq!(
        body.replace(&number, "N"),
        never_body.replace("DL-2026-99999999", "N")
    );
    if let Some(name) = &holder_name {
        assert!(!body.contains(name.as_str()), "{body}");
    }

    // The issuing department and an operator read it; each read is audited.
    let (status, body) = get(number.clone(), f.police_token.clone()).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = get(number.clone(), operator).await;
    assert_eq!(status, 200, "{body}");
    let readers: Vec<String> = sqlx::query_scalar(
        "SELECT actor FROM audit_log WHERE action = 'licence_read' AND subject = $1 ORDER BY seq",
    )
    .bind(&number)
    .fetch_all(&f.db)
    .await
    .unwrap();
    assert_eq!(readers, ["traffic-police", "data-administration"]);

    // The holder's service finds the type, who issues it and what it may ask for...
    let types: Value = f
        .http
        .get(f.hub.url("/api/v1/licence-types"))
        .bearer_auth(&education)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let driving = types
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == "driving-licence")
        .unwrap();
    assert_eq!(driving["department"], "traffic-police", "{driving}");
    assert_eq!(
        driving["subscriber_fields"],
        json!(["holder_name", "document"])
    );
    let cli: Value = serde_json::from_str(&ok(&f.file, &["licence", "types", "--json"])).unwrap();
    assert_eq!(&cli, &types);
    // ...and asks for the type's licences with a purpose; until the issuing department
    // approves, the licence does not exist for it.
    let request = |fields: Value| {
        let (http, url, token) = (
            f.http.clone(),
            f.hub.url("/api/v1/subscriptions"),
            education.clone(),
        );
        async move {
            let until = (chrono::Utc::now() + chrono::Duration::days(30)).to_rfc3339();
            let r = http
                .post(url)
                .bearer_auth(token)
                .json(&json!({"licence_type": "driving-licence", "fields": fields,
                               "purpose": "入学资格核验 (checking a student's driving licence)",
                               "until": until}))
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let (status, refused) = request(json!(["holder_id"])).await;
    assert_eq!(status, 400, "{refused}");
    let (status, sub) = request(json!(["holder_name"])).await;
    assert_eq!(status, 201, "{sub}");
    assert_eq!(
        (&sub["kind"], &sub["status"]),
        (&json!("licence_type"), &json!("pending"))
    );
    let (status, _) = get(number.clone(), education.clone()).await;
    assert_eq!(status, 404);
    let police_publisher =
        auth::create_scoped_token(&f.db, "traffic-police", &[auth::Scope::Publish], None)
            .await
            .unwrap()
            .secret;
    let decide = |token: String| {
        let (http, url) = (
            f.http.clone(),
            f.hub.url(&format!(
                "/api/v1/subscriptions/{}/approve",
                sub["id"].as_str().unwrap()
            )),
        );
        async move {
            let r = http.post(url).bearer_auth(token).send().await.unwrap();
            r.status().as_u16()
        }
    };
    // Only the issuing department decides.
    let education_publisher =
        auth::create_scoped_token(&f.db, "education", &[auth::Scope::Publish], None)
            .await
            .unwrap()
            .secret;
    assert_eq!(decide(education_publisher).await, 403);
    assert_eq!(decide(police_publisher).await, 200);

    // Approved for the holder's name only: partly masked, no sealed document (it carries the
    // identity number), no names of officers; the read audited with the subscription.
    let (status, body) = get(number.clone(), education.clone()).await;
    assert_eq!(status, 200, "{body}");
    let shown: Value = serde_json::from_str(&body).unwrap();
    let version = &shown["versions"][0];
    assert_eq!(version["state"], "valid", "{body}");
    assert!(version.get("document").is_none(), "{body}");
    assert!(!body.contains(&document), "{body}");
    let name = holder_name.unwrap();
    assert_eq!(
        version["holder_name"],
        bohai_hub::sharing::mask::partial(&name)
    );
    assert_ne!(version["holder_name"], name.as_str());
    assert!(
        shown["events"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e.get("actor").is_none()),
        "{body}"
    );
    let purpose: String = sqlx::query_scalar(
        "SELECT purpose FROM audit_log WHERE action = 'licence_read' AND actor = 'education'",
    )
    .fetch_one(&f.db)
    .await
    .unwrap();
    assert!(
        purpose.starts_with(&format!("subscription {}", sub["id"].as_str().unwrap())),
        "{purpose}"
    );
    // A licence of another type stays unknown to it.
    let (status, other) = f.issue(&f.market_token, "business-licence", 0).await;
    assert_eq!(status, 201, "{other}");
    let (status, _) = get(other["number"].as_str().unwrap().to_owned(), education).await;
    assert_eq!(status, 404);
}
