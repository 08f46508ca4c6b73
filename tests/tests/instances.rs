//! One `bohai serve` per hub database runs the workers: a second one serves its HTTP API,
//! says who holds the workers, and takes them over when that instance stops (at once) or
//! crashes (once its hold expires); records pushed to any instance are written once.

#![allow(clippy::unwrap_used)] // a test that cannot unwrap should fail loudly

use std::net::{SocketAddr, TcpListener};
use std::process::Stdio;
use std::time::Duration;

use bohai_hub::auth;
use bohai_hub::pipeline::stats::dataset_stats;
use bohai_hub::workers::{holder, Holder};
use bohai_tests::{bohai, command_ok, eventually, kill, prepared_config, write_config, RunningHub};
use serde_json::Value;
use sqlx::PgPool;

async fn holder_now(db: &PgPool) -> Option<Holder> {
    holder(db).await.unwrap()
}

/// Pushes `lines` (NDJSON) to the hub at `base` as `token`; how many were accepted.
async fn push(base: &str, token: &str, lines: &[String]) -> u64 {
    let r = reqwest::Client::new()
        .post(format!(
            "{base}/api/v1/datasets/resident-registrations/records"
        ))
        .bearer_auth(token)
        .header("content-type", "application/x-ndjson")
        .body(lines.join("\n"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    r.json::<Value>().await.unwrap()["accepted"]
        .as_u64()
        .unwrap()
}

/// Waits until the sink wrote `valid` residents, each once.
async fn written_once(db: &PgPool, valid: i64) {
    let s = eventually(
        Duration::from_secs(60),
        "the pushed records to be written",
        || async {
            let s = dataset_stats(db, Some("resident-registrations"))
                .await
                .unwrap()
                .remove(0);
            (s.valid == valid && s.pending == 0).then_some(s)
        },
    )
    .await;
    assert_eq!((s.inserted, s.updated, s.rows), (valid, 0, valid), "{s:?}");
    assert!(s.reconciled, "{s:?}");
}

#[tokio::test]
async fn a_second_instance_waits_for_the_workers_and_takes_them_over() {
    let mut config = prepared_config().await.unwrap();
    config.pipeline.worker_hold = Duration::from_secs(3);
    let db = bohai_hub::database::pool(&config.database).unwrap();
    let police = auth::create_token(&db, "public-security")
        .await
        .unwrap()
        .secret;
    let dir = tempfile::tempdir().unwrap();
    let feed = dir.path().join("residents.jsonl");
    let config_file = write_config(&config, dir.path()).unwrap();
    command_ok(
        bohai(&config_file)
            .args([
                "gen",
                "resident-registrations",
                "300",
                "--invalid-ratio",
                "0",
                "-o",
            ])
            .arg(&feed),
    );
    let lines: Vec<String> = std::fs::read_to_string(&feed)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();

    // A takes the workers.
    let a = RunningHub::start(config.clone()).await.unwrap();
    let a_port = a.base_url.rsplit(':').next().unwrap().to_owned();
    let held_by_a = eventually(Duration::from_secs(30), "A to take the workers", || async {
        holder_now(&db)
            .await
            .filter(|h| h.http_addr.ends_with(&format!(":{a_port}")))
    })
    .await;

    // B, started on the same database, serves HTTP only and says who holds the workers.
    let b_addr: SocketAddr = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut b_config = config.clone();
    b_config.http.addr = b_addr;
    let b_dir = tempfile::tempdir().unwrap();
    let b_file = write_config(&b_config, b_dir.path()).unwrap();
    let b_log = b_dir.path().join("serve.log");
    let mut b = bohai(&b_file)
        .env("RUST_LOG", "info")
        .arg("serve")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&b_log).unwrap())
        .spawn()
        .unwrap();
    let b_url = format!("http://{b_addr}");
    eventually(
        Duration::from_secs(30),
        "B to say who holds the workers",
        || async {
            let log = std::fs::read_to_string(&b_log).unwrap_or_default();
            (log.contains("another bohai serve runs the workers")
                && log.contains(&held_by_a.instance))
            .then_some(())
        },
    )
    .await;
    assert_eq!(holder_now(&db).await.unwrap().instance, held_by_a.instance);

    // Records pushed to B are written once, by A's sink.
    assert_eq!(push(&b_url, &police, &lines[..100]).await, 100);
    written_once(&db, 100).await;

    // A stops cleanly: B takes the workers over at once (within its polling, a third of the
    // hold), not after the hold expires.
    drop(a);
    let held_by_b = eventually(Duration::from_secs(10), "B to take the workers", || async {
        holder_now(&db)
            .await
            .filter(|h| h.http_addr == b_addr.to_string())
    })
    .await;
    assert_ne!(held_by_b.instance, held_by_a.instance);
    assert_eq!(push(&b_url, &police, &lines[100..200]).await, 100);
    written_once(&db, 200).await;

    // B crashes: C waits for B's hold to expire, then takes the workers.
    let crashed_at = chrono::Utc::now();
    let b_expires_at = holder_now(&db).await.unwrap().expires_at;
    kill(&mut b);
    let c = RunningHub::start(config.clone()).await.unwrap();
    let c_port = c.base_url.rsplit(':').next().unwrap().to_owned();
    let held_by_c = eventually(Duration::from_secs(30), "C to take the workers", || async {
        holder_now(&db)
            .await
            .filter(|h| h.http_addr.ends_with(&format!(":{c_port}")))
    })
    .await;
    assert!(
        held_by_c.since >= b_expires_at,
        "C took the workers at {} although B's hold ran until {b_expires_at} (B killed at {crashed_at})",
        held_by_c.since
    );
    assert_eq!(push(&c.base_url, &police, &lines[200..]).await, 100);
    written_once(&db, 300).await;

    // `bohai status` names the holder.
    let status: Value =
        serde_json::from_slice(&command_ok(bohai(&config_file).args(["status", "--json"])))
            .unwrap();
    assert_eq!(status["workers"]["instance"], held_by_c.instance.as_str());
}
