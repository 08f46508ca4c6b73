//! Operations against a running hub with the real broker and PostgreSQL: `/metrics` values
//! after feeding data (connector, HTTP push, seals, a licence), feed health states at
//! `/api/v1/ops/feeds`, `bohai status`, and the dashboard in headless Chromium.

#![allow(clippy::unwrap_used)] // a test that cannot unwrap should fail loudly

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bohai_hub::auth;
use bohai_hub::config::Config;
use bohai_hub::pipeline::stats::dataset_stats;
use bohai_tests::{
    bohai, bohai_ok, eventually, prepared_config, write_config, write_config_with_master_key,
    RunningHub,
};
use serde_json::{json, Value};

/// The `n`th valid example record of `dataset`.
fn example(dataset: &str, n: usize) -> Value {
    let text = std::fs::read_to_string(
        bohai_schemas::registry::builtin_dir()
            .join(format!("datasets/{dataset}/examples/valid.jsonl")),
    )
    .unwrap();
    serde_json::from_str(text.lines().nth(n).unwrap()).unwrap()
}

/// Writes `n` generated records of `dataset` (about a tenth invalid) as JSON Lines; returns
/// how many are invalid.
fn gen(config_file: &Path, dataset: &str, n: u64, out: &Path) -> u64 {
    let output = bohai(config_file)
        .args([
            "gen",
            dataset,
            &n.to_string(),
            "--json",
            "--seed",
            "7",
            "--invalid-ratio",
            "0.1",
            "-o",
        ])
        .arg(out)
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

fn connector_file(dir: &Path, name: &str, dataset: &str, feed: &Path) -> PathBuf {
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(
        &path,
        format!(
            "name = \"{name}\"\ndataset = \"{dataset}\"\n[source]\nkind = \"file\"\npath = \"{}\"\nformat = \"jsonl\"\n",
            feed.display()
        ),
    )
    .unwrap();
    path
}

/// A hub with live feeds of every state, seals for two departments and one licence.
struct Fixture {
    _dir: tempfile::TempDir,
    config: Config,
    file: PathBuf,
    hub: RunningHub,
    http: reqwest::Client,
    db: sqlx::PgPool,
    market_token: String,
    /// A token with the `ops` scope, for the operations endpoints and the dashboard.
    ops_token: String,
    /// Invalid records in the connector's file.
    connector_invalid: i64,
}

/// Records the connector file holds.
const CONNECTOR_RECORDS: i64 = 60;

impl Fixture {
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = prepared_config().await.unwrap();
        let master = dir.path().join("state/master.key");
        config.pki.master_key_file = master.clone();
        config.ops.sample_interval = Duration::from_secs(1);
        config.ops.min_records = 5;
        config.ops.dashboard_refresh = Duration::from_secs(1);
        config.ops.paused = vec!["resident-registrations/legacy-sftp".to_owned()];
        let file = write_config_with_master_key(&config, dir.path()).unwrap();
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&file)
            .unwrap();
        writeln!(
            f,
            "[ops]\nmin_records = 5\npaused = [\"resident-registrations/legacy-sftp\"]"
        )
        .unwrap();
        drop(f);

        // Seals for two departments and one driving licence.
        bohai_ok(&file, &["seal", "init-ca"]);
        for dept in ["traffic-police", "data-administration"] {
            bohai_ok(&file, &["seal", "issue", dept]);
        }
        let subject = dir.path().join("holder.json");
        let holder = std::fs::read_to_string(
            bohai_schemas::registry::builtin_dir()
                .join("licences/driving-licence/examples/valid.jsonl"),
        )
        .unwrap();
        std::fs::write(&subject, holder.lines().next().unwrap()).unwrap();
        let licence = dir.path().join("licence.jws");
        bohai_ok(
            &file,
            &[
                "licence",
                "issue",
                "--type",
                "driving-licence",
                "--holder",
                subject.to_str().unwrap(),
                "-o",
                licence.to_str().unwrap(),
            ],
        );

        // A connector the hub runs: a file of driving-licence records, a tenth invalid.
        let feed = dir.path().join("driving.jsonl");
        let connector_invalid = i64::try_from(gen(
            &file,
            "driving-licences",
            CONNECTOR_RECORDS as u64,
            &feed,
        ))
        .unwrap();
        assert!(connector_invalid > 0 && connector_invalid * 5 < CONNECTOR_RECORDS);
        // And one that cannot start: its stored checkpoint does not fit a file source.
        let hrss = dir.path().join("contributions.jsonl");
        std::fs::write(&hrss, "").unwrap();
        config.pipeline.connectors = vec![
            connector_file(dir.path(), "tp-file", "driving-licences", &feed),
            connector_file(
                dir.path(),
                "hrss-file",
                "social-insurance-contributions",
                &hrss,
            ),
        ];

        // Two feeds that stopped three days ago (one of them paused on purpose), as a
        // department's old sync job would have left them.
        let db = bohai_hub::database::pool(&config.database).unwrap();
        sqlx::query(
            "INSERT INTO feed_counts (dataset, source, department, read_total, valid_total, rejected_total, last_record_at)
             VALUES ('real-estate-registrations', 'registry-sync', 'real-estate-registration', 100, 100, 0, now() - interval '3 days'),
                    ('resident-registrations', 'legacy-sftp', 'public-security', 7, 7, 0, now() - interval '3 days')",
        )
        .execute(&db)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO connector_checkpoints (connector, dataset, position)
             VALUES ('hrss-file', 'social-insurance-contributions', '{\"not\": \"a file position\"}')",
        )
        .execute(&db)
        .await
        .unwrap();
        let market_token = bohai_tests::token(&db, "market-regulation").await;
        let ops_token =
            auth::create_scoped_token(&db, "data-administration", &[auth::Scope::Ops], None)
                .await
                .unwrap()
                .secret;
        let hub = RunningHub::start(config.clone()).await.unwrap();
        // Rates count from the first sample round: feed nothing before it.
        eventually(Duration::from_secs(60), "a first sample round", || async {
            let n: i64 = sqlx::query_scalar("SELECT count(*) FROM ops_feed_samples")
                .fetch_one(&db)
                .await
                .unwrap_or(0);
            (n > 0).then_some(())
        })
        .await;
        Self {
            _dir: dir,
            config,
            file,
            hub,
            http: reqwest::Client::new(),
            db,
            market_token,
            ops_token,
            connector_invalid,
        }
    }

    async fn push(&self, dataset: &str, records: Value) -> Value {
        let r = self
            .http
            .post(self.hub.url(&format!("/api/v1/datasets/{dataset}/records")))
            .bearer_auth(&self.market_token)
            .json(&records)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        r.json().await.unwrap()
    }

    /// Pushes a healthy feed (5 valid, 1 rejected) and a failing one (1 valid, 9 rejected).
    async fn push_feeds(&self) {
        let mut bad = example("business-registrations", 0);
        bad["legal_rep_id_number"] = json!("11010519491231002Y");
        let records: Vec<Value> = (0..5)
            .map(|i| example("business-registrations", i))
            .chain([bad])
            .collect();
        let answer = self
            .push("business-registrations", Value::Array(records))
            .await;
        assert_eq!(answer["accepted"], 5, "{answer}");
        let mut records = vec![example("administrative-penalties", 0)];
        records
            .extend((0..9).map(
                |i| json!({"penalty_number": format!("bad-{i}"), "legal_rep_name": "王小明"}),
            ));
        let answer = self
            .push("administrative-penalties", Value::Array(records))
            .await;
        assert_eq!(answer["accepted"], 1, "{answer}");
    }

    /// Waits until the sink wrote everything the feeds read: the connector's file and both
    /// pushes (business registrations and administrative penalties).
    async fn caught_up(&self) {
        eventually(Duration::from_secs(120), "the sink to catch up", || async {
            let all = dataset_stats(&self.db, None).await.unwrap();
            let get = |id: &str| all.iter().find(|s| s.dataset == id).unwrap().clone();
            let dl = get("driving-licences");
            let br = get("business-registrations");
            let ap = get("administrative-penalties");
            (dl.read == CONNECTOR_RECORDS
                && dl.pending == 0
                && br.read == 6
                && br.pending == 0
                && ap.read == 10
                && ap.pending == 0)
                .then_some(())
        })
        .await;
    }

    /// GET `path` with the ops token.
    async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(self.hub.url(path))
            .bearer_auth(&self.ops_token)
            .send()
            .await
            .unwrap()
    }
}

/// `name{labels} value` lines of a scrape, keyed by everything before the value.
fn samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_owned(), v.parse().ok()?))
        })
        .collect()
}

fn value(s: &HashMap<String, f64>, key: &str) -> f64 {
    *s.get(key).unwrap_or_else(|| {
        let mut near: Vec<&String> = s
            .keys()
            .filter(|k| k.starts_with(key.split('{').next().unwrap()))
            .collect();
        near.sort();
        panic!("no sample `{key}`; the family has: {near:#?}")
    })
}

#[tokio::test]
async fn metrics_feed_health_and_status_show_what_was_fed() {
    let fx = Fixture::new().await;
    fx.push_feeds().await;
    fx.caught_up().await;
    let registry = bohai_schemas::Registry::load(&fx.config.registry.dir).unwrap();
    let departments = registry.departments.len() as f64;
    assert_eq!(fx.get("/no/such/page").await.status().as_u16(), 404);

    // Wait for the connector to be recorded as finished (it ends with its file), and for a
    // scrape whose sink lag was measured: the probe reads the broker within a 3 s budget,
    // which a busy shared broker can miss (the scrape then reports the lag unavailable).
    let metrics = eventually(Duration::from_secs(60), "the connectors to end", || async {
        let r = fx.get("/metrics").await;
        assert_eq!(r.status().as_u16(), 200);
        assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/plain; version=0.0.4"));
        let text = r.text().await.unwrap();
        let done = r#"bohai_connector_state{connector="tp-file",dataset="driving-licences",state="finished"} 1"#;
        let failed = r#"bohai_connector_state{connector="hrss-file",dataset="social-insurance-contributions",state="failed"} 1"#;
        let lag_measured = samples(&text).get("bohai_sink_lag_available") == Some(&1.0);
        (text.contains(done) && text.contains(failed) && lag_measured).then_some(text)
    })
    .await;
    let m = samples(&metrics);
    let push =
        r#"{dataset="business-registrations",department="market-regulation",source="http-push"}"#;
    assert_eq!(
        value(&m, &format!("bohai_feed_records_read_total{push}")),
        6.0
    );
    assert_eq!(
        value(&m, &format!("bohai_feed_records_valid_total{push}")),
        5.0
    );
    assert_eq!(
        value(&m, &format!("bohai_feed_records_rejected_total{push}")),
        1.0
    );
    let conn = r#"{dataset="driving-licences",department="traffic-police",source="tp-file"}"#;
    let invalid = fx.connector_invalid as f64;
    assert_eq!(
        value(&m, &format!("bohai_feed_records_read_total{conn}")),
        CONNECTOR_RECORDS as f64
    );
    assert_eq!(
        value(&m, &format!("bohai_feed_records_rejected_total{conn}")),
        invalid
    );
    assert_eq!(
        value(&m, &format!("bohai_feed_records_valid_total{conn}")),
        CONNECTOR_RECORDS as f64 - invalid
    );
    let stats = dataset_stats(&fx.db, None).await.unwrap();
    for s in &stats {
        let key = format!(
            r#"bohai_repository_rows{{dataset="{}",department="{}"}}"#,
            s.dataset, s.department
        );
        assert_eq!(value(&m, &key), s.rows as f64, "{key}");
    }
    assert_eq!(
        value(
            &m,
            r#"bohai_repository_rows{dataset="business-registrations",department="market-regulation"}"#
        ),
        5.0
    );
    assert!(
        value(
            &m,
            r#"bohai_repository_rows{dataset="driving-licences",department="traffic-police"}"#
        ) > 0.0
    );
    // The sink caught up: no lag in any partition, and every partition is reported.
    let topic = format!(
        "{}dataset.business-registrations",
        fx.config.kafka.topic_prefix
    );
    for p in 0..fx.config.kafka.partitions {
        let key = format!(
            r#"bohai_sink_lag_records{{topic="{topic}",dataset="business-registrations",partition="{p}"}}"#
        );
        assert_eq!(value(&m, &key), 0.0, "{key}");
    }
    assert_eq!(value(&m, "bohai_sink_lag_available"), 1.0);
    assert!(
        value(
            &m,
            r#"bohai_connector_last_success_timestamp_seconds{connector="tp-file",dataset="driving-licences"}"#
        ) > 1.7e9
    );
    assert_eq!(
        value(
            &m,
            r#"bohai_connector_state{connector="tp-file",dataset="driving-licences",state="failed"}"#
        ),
        0.0
    );
    // Feed states.
    let state = |dataset: &str, department: &str, source: &str, state: &str| {
        value(
            &m,
            &format!(
                r#"bohai_feed_state{{dataset="{dataset}",department="{department}",source="{source}",state="{state}"}}"#
            ),
        )
    };
    assert_eq!(
        state(
            "business-registrations",
            "market-regulation",
            "http-push",
            "healthy"
        ),
        1.0
    );
    assert_eq!(
        state(
            "administrative-penalties",
            "market-regulation",
            "http-push",
            "failing"
        ),
        1.0
    );
    assert_eq!(
        state(
            "administrative-penalties",
            "market-regulation",
            "http-push",
            "healthy"
        ),
        0.0
    );
    assert_eq!(
        state(
            "real-estate-registrations",
            "real-estate-registration",
            "registry-sync",
            "stale"
        ),
        1.0
    );
    assert_eq!(
        state(
            "resident-registrations",
            "public-security",
            "legacy-sftp",
            "paused"
        ),
        1.0
    );
    assert_eq!(
        state("driving-licences", "traffic-police", "tp-file", "healthy"),
        1.0
    );
    assert_eq!(value(&m, r#"bohai_feeds{state="failing"}"#), 2.0);
    // Seals and licences.
    assert_eq!(value(&m, r#"bohai_seal_departments{state="valid"}"#), 2.0);
    assert_eq!(
        value(&m, r#"bohai_seal_departments{state="none"}"#),
        departments - 2.0
    );
    assert!((value(&m, "bohai_seal_coverage_ratio") - 2.0 / departments).abs() < 1e-9);
    assert_eq!(value(&m, r#"bohai_licences{state="valid"}"#), 1.0);
    assert_eq!(
        value(&m, r#"bohai_licence_events_total{event="issued"}"#),
        1.0
    );
    // HTTP requests by route template, never by raw path.
    let route = r#"route="/api/v1/datasets/{id}/records",method="POST""#;
    assert_eq!(
        value(
            &m,
            &format!(r#"bohai_http_requests_total{{{route},status="200"}}"#)
        ),
        2.0
    );
    assert_eq!(
        value(
            &m,
            &format!("bohai_http_request_duration_seconds_count{{{route}}}")
        ),
        2.0
    );
    assert_eq!(
        value(
            &m,
            &format!(r#"bohai_http_request_duration_seconds_bucket{{{route},le="+Inf"}}"#)
        ),
        2.0
    );
    assert_eq!(
        value(
            &m,
            r#"bohai_http_requests_total{route="unmatched",method="GET",status="404"}"#
        ),
        1.0
    );
    assert!(!metrics.contains("/api/v1/datasets/business-registrations/records"));

    // Feed health over the API.
    let feeds: Vec<Value> = fx.get("/api/v1/ops/feeds").await.json().await.unwrap();
    let feed = |dataset: &str, source: &str| {
        feeds
            .iter()
            .find(|f| f["dataset"] == dataset && f["source"] == source)
            .unwrap_or_else(|| panic!("no feed {dataset}/{source} in {feeds:#?}"))
            .clone()
    };
    let f = feed("administrative-penalties", "http-push");
    assert_eq!(f["state"], "failing");
    assert_eq!(f["kind"], "push");
    assert!(
        (f["reject_ratio"].as_f64().unwrap() - 0.9).abs() < 1e-9,
        "{f}"
    );
    assert!(
        f["reasons"][0]
            .as_str()
            .unwrap()
            .contains("90.0% of records rejected"),
        "{f}"
    );
    let f = feed("business-registrations", "http-push");
    assert_eq!(f["state"], "healthy", "{f}");
    assert_eq!(f["read_total"], 6);
    assert!(f["read_per_minute"].as_f64().unwrap() > 0.0, "{f}");
    assert!(f["last_record_at"].is_string());
    let f = feed("real-estate-registrations", "registry-sync");
    assert_eq!(f["state"], "stale");
    assert!(
        f["reasons"][0]
            .as_str()
            .unwrap()
            .contains("expected every 1h"),
        "{f}"
    );
    assert_eq!(
        feed("resident-registrations", "legacy-sftp")["state"],
        "paused"
    );
    let f = feed("driving-licences", "tp-file");
    assert_eq!(
        (f["kind"].as_str(), f["connector_state"].as_str()),
        (Some("connector"), Some("finished"))
    );
    assert!(f["last_success_at"].is_string());
    let f = feed("social-insurance-contributions", "hrss-file");
    assert_eq!(f["state"], "failing", "{f}");
    assert_eq!(f["connector_state"], "failed");
    let why = f["reasons"][0].as_str().unwrap();
    assert!(
        why.starts_with("connector stopped: ") && why.contains("checkpoint"),
        "{why}"
    );
    assert_eq!(feeds.len(), 6, "{feeds:#?}");

    // The OpenAPI document describes the new endpoints.
    let doc: Value = fx.get("/api/v1/openapi.json").await.json().await.unwrap();
    for path in [
        "/metrics",
        "/api/v1/ops/feeds",
        "/api/v1/ops/overview",
        "/api/v1/ops/rates",
        "/api/v1/ops/dead-letters",
    ] {
        assert!(
            doc["paths"].get(path).is_some(),
            "{path} missing from the OpenAPI document"
        );
    }

    // `bohai status` shows the same, as JSON and as text.
    let status: Value = serde_json::from_str(&bohai_ok(&fx.file, &["status", "--json"])).unwrap();
    assert_eq!(
        status["feed_states"],
        json!({"healthy": 2, "stale": 1, "failing": 2, "paused": 1})
    );
    assert_eq!(status["licences"]["by_state"]["valid"], 1);
    assert_eq!(status["seals"]["valid"], 2);
    let text = bohai_ok(&fx.file, &["status"]);
    assert!(
        text.contains("FEEDS  6 (2 failing, 2 healthy, 1 paused, 1 stale)"),
        "{text}"
    );
    let line = text
        .lines()
        .find(|l| l.starts_with("administrative-penalties"))
        .unwrap();
    assert!(line.contains("failing") && line.contains("90.0"), "{line}");
    assert!(
        text.contains("LICENCES  expired 0, revoked 0, superseded 0, suspended 0, valid 1"),
        "{text}"
    );
}

/// Scripts that read the feed table and the dead-letter table of the dashboard.
const READ_FEEDS: &str = "return [...document.querySelectorAll('#feeds tbody tr[data-state]')].map(tr => ({dataset: tr.dataset.dataset, source: tr.dataset.source, state: tr.dataset.state, read: tr.querySelector('[data-field=read]').textContent, text: tr.textContent}));";
const READ_DEAD_LETTERS: &str = "return [...document.querySelectorAll('#dead-letters tbody tr[data-dataset]')].map(tr => ({department: tr.dataset.department, dataset: tr.dataset.dataset, masking: tr.dataset.masking, reasons: tr.querySelector('.reasons').textContent, payload: tr.querySelector('.payload').textContent}));";

#[tokio::test]
async fn the_dashboard_shows_live_feeds_rates_masked_dead_letters_seals_and_licences() {
    let fx = Fixture::new().await;
    fx.push_feeds().await;
    fx.caught_up().await;

    // The page and its assets come from the hub alone.
    for path in ["/", "/dashboard/app.js", "/dashboard/app.css"] {
        let r = fx.get(path).await;
        assert_eq!(r.status().as_u16(), 200, "{path}");
        let text = r.text().await.unwrap();
        assert!(
            !text.contains("https://") && !text.contains("//cdn"),
            "{path} loads something from elsewhere"
        );
    }

    let browser = bohai_tests::webdriver::Browser::start(1400, 2200)
        .await
        .unwrap();
    browser.goto(&fx.hub.url("/")).await.unwrap();
    browser
        .eval("window.__sameDocument = true; return null;")
        .await
        .unwrap();

    // It asks for a token; one without the `ops` scope is refused with the reason, and the
    // page asks again; the ops token signs in.
    let sign_in = |token: String| {
        let browser = &browser;
        async move {
            eventually(Duration::from_secs(30), "the sign-in form", || async {
                let shown = browser
                    .eval("return !document.getElementById('sign-in').hidden;")
                    .await
                    .unwrap();
                (shown == true).then_some(())
            })
            .await;
            browser
                .eval(&format!("document.getElementById('token').value = {}; document.getElementById('sign-in').requestSubmit(); return null;", json!(token)))
                .await
                .unwrap();
        }
    };
    sign_in(fx.market_token.clone()).await;
    let refused = eventually(Duration::from_secs(30), "the refusal", || async {
        let why = browser
            .eval("const e = document.getElementById('sign-in-error'); return e.hidden ? null : e.textContent;")
            .await
            .unwrap();
        why.as_str().map(str::to_owned)
    })
    .await;
    assert!(refused.contains("`ops`"), "{refused}");
    sign_in(fx.ops_token.clone()).await;

    // The feed table: every feed with its state.
    let feeds = eventually(Duration::from_secs(30), "the feed table", || async {
        let rows = browser.eval(READ_FEEDS).await.unwrap();
        (rows.as_array().unwrap().len() == 6).then_some(rows)
    })
    .await;
    let state_of = |dataset: &str, source: &str| {
        feeds
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["dataset"] == dataset && r["source"] == source)
            .map(|r| r["state"].as_str().unwrap().to_owned())
            .unwrap_or_else(|| panic!("no row {dataset}/{source}: {feeds:#}"))
    };
    assert_eq!(state_of("administrative-penalties", "http-push"), "failing");
    assert_eq!(state_of("business-registrations", "http-push"), "healthy");
    assert_eq!(state_of("driving-licences", "tp-file"), "healthy");
    assert_eq!(
        state_of("real-estate-registrations", "registry-sync"),
        "stale"
    );
    assert_eq!(state_of("resident-registrations", "legacy-sftp"), "paused");
    assert_eq!(
        state_of("social-insurance-contributions", "hrss-file"),
        "failing"
    );
    // Worst first.
    assert_eq!(feeds[0]["state"], "failing");
    let failing_text = feeds[0]["text"].as_str().unwrap();
    assert!(
        failing_text.contains("90.0% of records rejected"),
        "{failing_text}"
    );

    // Summary cards, seal coverage and licence statistics.
    let departments = bohai_schemas::Registry::load(&fx.config.registry.dir)
        .unwrap()
        .departments
        .len();
    // The page refreshes itself; a refresh whose lag probe missed its budget shows "?".
    let summary = eventually(Duration::from_secs(30), "the sink lag card to show a lag", || async {
        let summary = browser
            .eval("return {feeds: document.getElementById('feed-count').textContent, failing: document.querySelector('#feed-states [data-state=failing]').dataset.count, coverage: document.getElementById('seal-coverage').textContent, licences: document.getElementById('licences-valid').textContent, issued: document.querySelector('#licence-events tr[data-event=issued] .num').textContent, sealRows: [...document.querySelectorAll('#seals tr[data-department]')].map(r => r.dataset.department + ':' + r.dataset.state).sort(), lag: document.getElementById('sink-lag').textContent};")
            .await
            .unwrap();
        let measured = summary["lag"] != "?" && summary["lag"] != "–";
        measured.then_some(summary)
    })
    .await;
    assert_eq!(summary["feeds"], "6");
    assert_eq!(summary["failing"], "2");
    assert_eq!(
        summary["coverage"],
        format!("{:.1}%", 200.0 / departments as f64)
    );
    assert_eq!(summary["licences"], "1");
    assert_eq!(summary["issued"], "1");
    assert_eq!(
        summary["sealRows"],
        json!(["data-administration:valid", "traffic-police:valid"])
    );
    assert_eq!(summary["lag"], "0");

    // The dead-letter viewer: reasons shown, PII masked.
    let dead = eventually(Duration::from_secs(30), "dead letters", || async {
        let rows = browser.eval(READ_DEAD_LETTERS).await.unwrap();
        (rows.as_array().unwrap().len() >= 10).then_some(rows)
    })
    .await;
    let business = dead
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["dataset"] == "business-registrations")
        .unwrap();
    assert!(
        business["reasons"]
            .as_str()
            .unwrap()
            .contains("/legal_rep_id_number"),
        "{business}"
    );
    let payload: Value = serde_json::from_str(business["payload"].as_str().unwrap()).unwrap();
    assert!(
        payload["legal_rep_id_number"]
            .as_str()
            .unwrap()
            .starts_with("hash:"),
        "{payload}"
    );
    assert!(
        payload["legal_rep_name"].as_str().unwrap().contains('*'),
        "{payload}"
    );
    assert!(
        payload.get("contact_mobile").is_none()
            || payload["contact_mobile"].as_str().unwrap().contains('*')
    );
    assert!(
        !dead.to_string().contains("11010519491231002Y"),
        "an identity number is shown unmasked"
    );

    // Filter by department: only traffic police's rejects (from the connector's file), masked.
    browser
        .click("#filter-department option[value=traffic-police]")
        .await
        .unwrap();
    let dead = eventually(
        Duration::from_secs(30),
        "the filtered dead letters",
        || async {
            let rows = browser.eval(READ_DEAD_LETTERS).await.unwrap();
            let rows = rows.as_array().unwrap().clone();
            (!rows.is_empty() && rows.iter().all(|r| r["department"] == "traffic-police"))
                .then_some(rows)
        },
    )
    .await;
    assert_eq!(dead.len() as i64, fx.connector_invalid.min(25));
    for r in &dead {
        if r["masking"] == "pii_fields" {
            let p: Value = serde_json::from_str(r["payload"].as_str().unwrap()).unwrap();
            if let Some(name) = p.get("name").and_then(Value::as_str) {
                assert!(name.contains('*') || name.chars().count() < 2, "{p}");
            }
        }
    }
    let url = browser.eval("return location.search;").await.unwrap();
    assert_eq!(url, "?department=traffic-police");
    browser
        .click("#filter-department option[value='']")
        .await
        .unwrap();

    // It refreshes by itself: records pushed now appear without a reload, in the table and
    // in the ingest chart.
    let records: Vec<Value> = (0..3)
        .map(|i| example("business-registrations", i))
        .collect();
    fx.push("business-registrations", Value::Array(records))
        .await;
    eventually(
        Duration::from_secs(30),
        "the new records on the page",
        || async {
            let rows = browser.eval(READ_FEEDS).await.unwrap();
            rows.as_array()
                .unwrap()
                .iter()
                .any(|r| {
                    r["dataset"] == "business-registrations"
                        && r["source"] == "http-push"
                        && r["read"] == "9"
                })
                .then_some(())
        },
    )
    .await;
    let chart = eventually(Duration::from_secs(30), "the ingest chart", || async {
        let c = browser
            .eval("const f = document.getElementById('chart-read'); return {points: Number(f.dataset.points), total: Number(f.dataset.total), line: !!f.querySelector('svg polyline'), rejected: Number(document.getElementById('chart-rejected').dataset.total)};")
            .await
            .unwrap();
        // Everything pushed after the first sample round: 6 + 10 + 3 records, 1 + 9 rejected.
        (c["total"].as_f64().unwrap() >= 19.0 && c["rejected"].as_f64().unwrap() >= 10.0).then_some(c)
    })
    .await;
    assert!(chart["points"].as_f64().unwrap() >= 2.0, "{chart}");
    assert_eq!(chart["line"], true);
    let same = browser
        .eval(
            "return window.__sameDocument === true && Number(document.body.dataset.refreshes) > 1;",
        )
        .await
        .unwrap();
    assert_eq!(same, true, "the page reloaded instead of refreshing itself");

    // A screenshot for the docs: BOHAI_DASHBOARD_SCREENSHOT=docs/dashboard.png keeps it.
    let png = browser.screenshot().await.unwrap();
    assert!(png.starts_with(b"\x89PNG"));
    if let Ok(path) = std::env::var("BOHAI_DASHBOARD_SCREENSHOT") {
        std::fs::write(path, &png).unwrap();
    }
    browser.quit().await;
}

#[tokio::test]
async fn sink_lag_is_measured_in_records_and_seconds_while_the_sink_is_off() {
    let mut config = prepared_config().await.unwrap();
    config.pipeline.sink = false;
    let db = bohai_hub::database::pool(&config.database).unwrap();
    let token = bohai_tests::token(&db, "market-regulation").await;
    let dir = tempfile::tempdir().unwrap();
    let file = write_config(&config, dir.path()).unwrap();
    let prefix = config.kafka.topic_prefix.clone();
    // Every partition of every dataset topic.
    let partitions = bohai_hub::registry::load(&config.registry)
        .unwrap()
        .datasets
        .len()
        * usize::try_from(config.kafka.partitions).unwrap();
    let hub = RunningHub::start(config).await.unwrap();
    let http = reqwest::Client::new();
    let records: Vec<Value> = (0..5)
        .map(|i| example("business-registrations", i))
        .collect();
    let r = http
        .post(hub.url("/api/v1/datasets/business-registrations/records"))
        .bearer_auth(&token)
        .json(&records)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    tokio::time::sleep(Duration::from_secs(2)).await;

    let topic = format!("{prefix}dataset.business-registrations");
    let labels =
        |p: i32| format!(r#"{{topic="{topic}",dataset="business-registrations",partition="{p}"}}"#);
    // The lag probe reads the broker within a 3 s budget, which a busy shared broker can
    // miss: that scrape lacks the lag (or its age). Scrape until one has both.
    let m = eventually(
        Duration::from_secs(30),
        "a scrape with the sink lag measured",
        || async {
            let m = samples(&hub_metrics(&http, &hub).await);
            let measured = m.get("bohai_sink_lag_available") == Some(&1.0)
                && (0..2).all(|p| m.contains_key(&format!("bohai_sink_lag_seconds{}", labels(p))));
            measured.then_some(m)
        },
    )
    .await;
    let mut lag = 0.0;
    for p in 0..2 {
        let labels = labels(p);
        let records = value(&m, &format!("bohai_sink_lag_records{labels}"));
        let seconds = value(&m, &format!("bohai_sink_lag_seconds{labels}"));
        lag += records;
        if records > 0.0 {
            // Written at least two seconds ago, and not before this test began.
            assert!((2.0..600.0).contains(&seconds), "{seconds}");
        } else {
            assert_eq!(seconds, 0.0);
        }
    }
    assert_eq!(lag, 5.0);
    assert_eq!(
        value(
            &m,
            r#"bohai_sink_pending_records{dataset="business-registrations",department="market-regulation"}"#
        ),
        5.0
    );
    let status = eventually(
        Duration::from_secs(30),
        "`bohai status` with the sink lag",
        || async {
            let status = bohai_ok(&file, &["status"]);
            (!status.contains("SINK LAG  unknown")).then_some(status)
        },
    )
    .await;
    assert!(
        status.contains(&format!(
            "SINK LAG  5 record(s) over {partitions} partition(s)"
        )),
        "{status}"
    );
}

async fn hub_metrics(http: &reqwest::Client, hub: &RunningHub) -> String {
    let r = http.get(hub.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    r.text().await.unwrap()
}

/// The operations endpoints.
const OPS_PATHS: [&str; 4] = [
    "/api/v1/ops/dead-letters",
    "/api/v1/ops/overview",
    "/api/v1/ops/feeds",
    "/api/v1/ops/rates",
];

/// Issue 15, item 6: the operations endpoints answered anyone, and the dead letters quoted
/// rejected identity numbers in their reasons, nested PII fields in clear and departments'
/// idempotency keys in their origins. Now: 401 without a token, 403 without the `ops` scope
/// (a department's read or admin token), and with it reasons masked as the payload is.
#[tokio::test]
async fn operations_data_needs_an_ops_token_and_quotes_no_rejected_identity_number() {
    use bohai_hub::auth::Scope;
    let config = prepared_config().await.unwrap();
    let db = bohai_hub::database::pool(&config.database).unwrap();
    let hub = RunningHub::start(config).await.unwrap();
    let http = reqwest::Client::new();
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

    // A rejected record: the identity number of the wrong type (the reason quotes it), a
    // nested copy of the PII fields, pushed under an idempotency key.
    const ID_NUMBER: &str = "211102195001209203";
    const NESTED_ID: &str = "21110219500120920X";
    const NESTED_NAME: &str = "欧阳明华";
    const KEY: &str = "mr-batch-secret-4711";
    let mut bad = example("business-registrations", 0);
    bad["legal_rep_id_number"] = json!(211_102_195_001_209_203_u64);
    bad["previous"] = json!({"legal_rep_id_number": NESTED_ID, "legal_rep_name": NESTED_NAME});
    let r = http
        .post(hub.url("/api/v1/datasets/business-registrations/records"))
        .bearer_auth(&publish)
        .header("Idempotency-Key", KEY)
        .json(&json!([bad]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let answer: Value = r.json().await.unwrap();
    assert_eq!(answer["rejected"], 1, "{answer}");

    // Without a token: 401, on every operations endpoint.
    for path in OPS_PATHS {
        let r = http.get(hub.url(path)).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 401, "{path}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["code"], "token_missing", "{path}: {body}");
    }
    // A department's tokens, even admin: 403.
    for scopes in [&[Scope::Read, Scope::Publish][..], &[Scope::Admin][..]] {
        let t = token("market-regulation", scopes).await;
        for path in OPS_PATHS {
            let r = http
                .get(hub.url(path))
                .bearer_auth(&t)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status().as_u16(), 403, "{path} with {scopes:?}");
            let body: Value = r.json().await.unwrap();
            assert_eq!(body["code"], "wrong_scope", "{path}: {body}");
        }
    }

    // With the ops scope: the reject, its reasons and origin masked like its payload.
    let ops = token("data-administration", &[Scope::Ops]).await;
    for path in OPS_PATHS {
        let r = http
            .get(hub.url(path))
            .bearer_auth(&ops)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200, "{path}");
    }
    let dead: Vec<Value> = eventually(Duration::from_secs(30), "the dead letter", || async {
        let dead: Vec<Value> = http
            .get(hub.url("/api/v1/ops/dead-letters"))
            .bearer_auth(&ops)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        (!dead.is_empty()).then_some(dead)
    })
    .await;
    assert_eq!(dead.len(), 1, "{dead:#?}");
    let d = &dead[0];
    let reasons = d["reasons"].to_string();
    assert!(reasons.contains("/legal_rep_id_number"), "{reasons}");
    let text = serde_json::to_string(&dead).unwrap();
    for secret in [ID_NUMBER, NESTED_ID, NESTED_NAME, KEY] {
        assert!(!text.contains(secret), "`{secret}` shown in clear: {text}");
    }
    // The reason about the masked identity number keeps its pointer and rule and says the
    // field is masked instead of quoting it (a check may reshape a value, as the birth date
    // of an identity number, where no replacement of its text finds it).
    let payload: Value = serde_json::from_str(d["payload"].as_str().unwrap()).unwrap();
    let masked = payload["legal_rep_id_number"].as_str().unwrap();
    assert!(masked.starts_with("hash:"), "{payload}");
    assert!(
        reasons.contains("masks `legal_rep_id_number` (hash)"),
        "{reasons}"
    );
    assert_eq!(payload["previous"]["legal_rep_name"], "欧**华", "{payload}");
    assert!(
        payload["previous"]["legal_rep_id_number"]
            .as_str()
            .unwrap()
            .starts_with("hash:"),
        "{payload}"
    );
    // The origin still tells which push it was, by a masked key.
    let origin = d["origin"].as_str().unwrap();
    assert!(
        origin.starts_with("http:market-regulation:hash:"),
        "{origin}"
    );
}
