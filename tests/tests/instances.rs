//! Several `bohai serve` instances on one hub database share the work: the repository sink's
//! partitions are spread over them by its consumer group, each duty is held by one instance
//! through its lease, the duties are spread over the instances, a killed or paused
//! instance's partitions and duties move on, and a holder that lost a lease or a partition
//! (paused past it) writes nothing for it afterwards.

#![allow(clippy::unwrap_used)] // a test that cannot unwrap should fail loudly

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use bohai_hub::cluster::{self, ClusterView, Instance, Lease};
use bohai_hub::config::Config;
use bohai_hub::pipeline::stats::dataset_stats;
use bohai_tests::serve::ServeProcess;
use bohai_tests::{bohai, bohai_ok, command_ok, eventually, prepared_config};
use rdkafka::producer::FutureRecord;
use serde_json::{json, Value};
use sqlx::PgPool;

/// The duties of a hub without connectors: licence events, subscription delivery and the
/// four periodic duties.
const DUTIES: usize = 6;

/// A prepared hub with short leases and a master key of its own.
async fn cluster_config(dir: &std::path::Path) -> Config {
    let mut config = prepared_config().await.unwrap();
    config.cluster.lease = Duration::from_secs(2);
    // The least the brokers accept unless configured otherwise.
    config.cluster.sink_session = Duration::from_secs(6);
    config.pki.master_key_file = dir.join("state/master.key");
    config
}

async fn view(db: &PgPool) -> ClusterView {
    cluster::view(db).await.unwrap()
}

/// Who holds which duty (only unexpired leases).
fn holders(v: &ClusterView) -> BTreeMap<String, String> {
    v.duties
        .iter()
        .filter_map(|d| d.holder.clone().map(|h| (d.duty.clone(), h)))
        .collect()
}

/// Waits until exactly `live` instances are live, every duty is held by one of them and each
/// holds its share: at least one, at most the duties divided among them, rounded up. (On the
/// way there an instance may hold more for a tick or two, until it gives the rest back.)
async fn spread_over(db: &PgPool, live: &[&str]) -> ClusterView {
    duties_spread_over(db, live, DUTIES).await
}

/// [`spread_over`] for a hub of `duties` duties (connectors run inside `serve` are duties too).
async fn duties_spread_over(db: &PgPool, live: &[&str], duties: usize) -> ClusterView {
    let live: BTreeSet<String> = live.iter().map(|s| (*s).to_owned()).collect();
    eventually(
        Duration::from_secs(60),
        &format!("the duties to be spread over {live:?}"),
        || async {
            let v = view(db).await;
            let now_live: BTreeSet<String> = v
                .instances
                .iter()
                .filter(|i| i.live)
                .map(|i| i.id.clone())
                .collect();
            let h = holders(&v);
            let every_duty_held = v.duties.len() == duties
                && h.len() == duties
                && h.values().all(|holder| live.contains(holder));
            let share = duties.div_ceil(live.len());
            let each_works = live.iter().all(|i| {
                let n = h.values().filter(|holder| *holder == i).count();
                (1..=share).contains(&n)
            });
            (now_live == live && every_duty_held && each_works).then_some(v)
        },
    )
    .await
}

/// How many partitions the dataset topics have in all.
fn all_partitions(config: &Config) -> usize {
    let registry = bohai_hub::registry::load(&config.registry).unwrap();
    registry.datasets.len() * usize::try_from(config.kafka.partitions).unwrap()
}

/// Waits until the sink partitions are spread over exactly the instances `live`: every
/// partition held by one of them (its last claim theirs), each holding some.
async fn partitions_spread_over(db: &PgPool, config: &Config, live: &[&str]) -> ClusterView {
    let all = all_partitions(config);
    eventually(
        Duration::from_secs(60),
        &format!("the sink's partitions to be spread over {live:?}"),
        || async {
            let v = view(db).await;
            let by: BTreeMap<&str, usize> = v
                .instances
                .iter()
                .filter(|i| i.live)
                .map(|i| (i.id.as_str(), i.sink_partitions))
                .collect();
            let spread = live.iter().all(|i| by.get(i).is_some_and(|n| *n > 0))
                && live
                    .iter()
                    .map(|i| by.get(i).copied().unwrap_or(0))
                    .sum::<usize>()
                    == all
                && v.partitions.len() == all;
            spread.then_some(v)
        },
    )
    .await
}

/// Generates `n` valid resident registrations into `feed` with `instance`'s configuration;
/// their lines.
fn residents(instance: &ServeProcess, feed: &std::path::Path, n: usize) -> Vec<String> {
    command_ok(
        bohai(&instance.config_file)
            .args(["gen", "resident-registrations", &n.to_string()])
            .args(["--invalid-ratio", "0", "-o"])
            .arg(feed),
    );
    std::fs::read_to_string(feed)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
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

/// Waits until `instance` is up (its HTTP API answers).
async fn answering(instance: &ServeProcess) {
    eventually(
        Duration::from_secs(30),
        &format!("{} to answer", instance.instance),
        || async {
            reqwest::get(instance.url("/healthz"))
                .await
                .ok()
                .filter(|r| r.status().is_success())
                .map(|_| ())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duties_spread_over_three_instances_and_a_killed_ones_move_on() {
    let dir = tempfile::tempdir().unwrap();
    let config = cluster_config(dir.path()).await;
    let db = bohai_hub::database::pool(&config.database).unwrap();
    let police = bohai_tests::token(&db, "public-security").await;
    let feed = dir.path().join("residents.jsonl");
    let a = ServeProcess::start(&config, "hub-a").unwrap();
    let lines = residents(&a, &feed, 200);

    // Alone, A holds every duty.
    spread_over(&db, &["hub-a"]).await;
    // B and C join: the duties spread over the three, each holding some.
    let b = ServeProcess::start(&config, "hub-b").unwrap();
    let mut c = ServeProcess::start(&config, "hub-c").unwrap();
    spread_over(&db, &["hub-a", "hub-b", "hub-c"]).await;

    // The sink's partitions too; records pushed to any instance are written once.
    partitions_spread_over(&db, &config, &["hub-a", "hub-b", "hub-c"]).await;
    answering(&b).await;
    assert_eq!(push(&b.base_url, &police, &lines[..100]).await, 100);
    written_once(&db, 100).await;

    // `bohai status --json`, the ops overview and /metrics show the instances and who holds
    // which duty.
    let status: Value = serde_json::from_slice(&command_ok(
        bohai(&a.config_file).args(["status", "--json"]),
    ))
    .unwrap();
    let listed: BTreeSet<&str> = status["cluster"]["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        listed,
        BTreeSet::from(["hub-a", "hub-b", "hub-c"]),
        "{status}"
    );
    assert_eq!(
        status["cluster"]["duties"].as_array().unwrap().len(),
        DUTIES
    );
    let text = String::from_utf8(command_ok(bohai(&a.config_file).arg("status"))).unwrap();
    assert!(text.contains("INSTANCES  3 live of 3"), "{text}");
    let metrics = reqwest::get(b.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("bohai_cluster_instance_heartbeat_timestamp_seconds{instance=\"hub-c\"}"),
        "{metrics}"
    );
    let held_series = metrics
        .lines()
        .filter(|l| l.starts_with("bohai_cluster_duty_held{") && l.ends_with(" 1.0"))
        .count();
    assert_eq!(held_series, DUTIES, "{metrics}");
    let partitions_series = metrics
        .lines()
        .filter_map(|l| l.strip_prefix("bohai_cluster_instance_sink_partitions{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>();
    assert_eq!(
        partitions_series,
        all_partitions(&config) as f64,
        "{metrics}"
    );
    assert!(text.contains("sink partitions: "), "{text}");

    // C is killed: its duties run elsewhere once its leases expired, never before.
    let before = view(&db).await;
    let c_duties: BTreeMap<String, chrono::DateTime<chrono::Utc>> = before
        .duties
        .iter()
        .filter(|d| d.holder.as_deref() == Some("hub-c"))
        .map(|d| (d.duty.clone(), d.expires_at))
        .collect();
    assert!(!c_duties.is_empty());
    let killed_at = chrono::Utc::now();
    c.kill();
    let after = spread_over(&db, &["hub-a", "hub-b"]).await;
    // Its partitions are taken by the others within the group's session and a rebalance.
    let moved = partitions_spread_over(&db, &config, &["hub-a", "hub-b"]).await;
    let last_taken = moved
        .partitions
        .iter()
        .filter_map(|p| p.since)
        .max()
        .unwrap();
    let took = last_taken - killed_at;
    eprintln!("C's sink partitions taken over {took} after it was killed");
    assert!(
        took <= chrono::Duration::from_std(config.cluster.sink_session * 3).unwrap(),
        "C's partitions were taken over {took} after it was killed"
    );
    for d in after
        .duties
        .iter()
        .filter(|d| c_duties.contains_key(&d.duty))
    {
        let taken_at = d.since.unwrap();
        let c_expired_at = c_duties[&d.duty];
        // C's last renewal may have landed after the view above was read: allow one renewal.
        assert!(
            taken_at + chrono::Duration::from_std(config.cluster.lease).unwrap() >= c_expired_at,
            "{} was taken at {taken_at}, while C's lease ran until {c_expired_at}",
            d.duty
        );
    }
    // ... and within the bound: the next tick of a survivor after C's leases expired (a third
    // of a lease), allowed a whole lease for a slow machine. Database times on both sides.
    for d in after
        .duties
        .iter()
        .filter(|d| c_duties.contains_key(&d.duty))
    {
        let late = d.since.unwrap() - c_duties[&d.duty];
        eprintln!("{} taken over {late} after C's lease expired", d.duty);
        assert!(
            late <= chrono::Duration::from_std(config.cluster.lease).unwrap(),
            "{} taken over {late} after C's lease expired",
            d.duty
        );
    }
    let gone = after.instances.iter().find(|i| i.id == "hub-c").unwrap();
    assert!(!gone.live && gone.duties.is_empty(), "{after:#?}");

    // The sink runs on: records pushed now are written once too.
    assert_eq!(push(&a.base_url, &police, &lines[100..]).await, 100);
    written_once(&db, 200).await;

    // A stops cleanly: it gives its duties and partitions back and leaves, and B runs them
    // all.
    a.signal("TERM");
    let last = spread_over(&db, &["hub-b"]).await;
    partitions_spread_over(&db, &config, &["hub-b"]).await;
    let left = last.instances.iter().find(|i| i.id == "hub-a").unwrap();
    assert!(!left.live && left.duties.is_empty(), "{last:#?}");
}

/// Issues `n` driving licences through `instance`; their numbers.
async fn issue(instance: &ServeProcess, token: &str, n: usize) -> Vec<String> {
    issued(instance, token, n)
        .await
        .iter()
        .map(|b| b["number"].as_str().unwrap().to_owned())
        .collect()
}

/// Issues `n` driving licences through `instance`; the answers (number, document, ...).
async fn issued(instance: &ServeProcess, token: &str, n: usize) -> Vec<Value> {
    let path = bohai_schemas::registry::builtin_dir()
        .join("licences/driving-licence/examples/valid.jsonl");
    let text = std::fs::read_to_string(path).unwrap();
    let subject: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    let mut numbers = Vec::new();
    for _ in 0..n {
        let r = reqwest::Client::new()
            .post(instance.url("/api/v1/licences"))
            .bearer_auth(token)
            .json(&json!({"type": "driving-licence", "holder": subject["holder"], "fields": subject["fields"]}))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let body: Value = r.json().await.unwrap();
        assert_eq!(status, 201, "{body}");
        numbers.push(body);
    }
    numbers
}

/// Waits until no licence event waits to be published; returns how many there are.
async fn all_published(db: &PgPool) -> i64 {
    eventually(
        Duration::from_secs(60),
        "every licence event to be published",
        || async {
            let (total, unpublished): (i64, i64) = sqlx::query_as(
                "SELECT count(*), count(*) FILTER (WHERE published_at IS NULL) FROM licence_events",
            )
            .fetch_one(db)
            .await
            .unwrap();
            (unpublished == 0).then_some(total)
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_holder_publishes_no_licence_event_it_lost() {
    let dir = tempfile::tempdir().unwrap();
    let config = cluster_config(dir.path()).await;
    let db = bohai_hub::database::pool(&config.database).unwrap();
    let a = ServeProcess::start(&config, "hub-a").unwrap();
    bohai_ok(&a.config_file, &["seal", "init-ca"]);
    bohai_ok(&a.config_file, &["seal", "issue", "traffic-police"]);
    let police = bohai_tests::token(&db, "traffic-police").await;
    spread_over(&db, &["hub-a"]).await;
    let b = ServeProcess::start(&config, "hub-b").unwrap();
    let v = spread_over(&db, &["hub-a", "hub-b"]).await;
    answering(&a).await;
    answering(&b).await;
    let (holder, other) = if holders(&v)["licence-events"] == "hub-a" {
        (&a, &b)
    } else {
        (&b, &a)
    };

    let mut numbers = issue(other, &police, 3).await;
    all_published(&db).await;

    // A backlog of events keeps the holder publishing batch after batch; it is paused in the
    // middle of that work, past its lease: the other instance takes the duty over and
    // publishes the rest, including whatever batch the paused one was in the middle of.
    const BACKLOG: i64 = 30_000;
    sqlx::query(
        "INSERT INTO licence_events (number, version, event, actor, at)
         SELECT number, version, 'renewed', 'test-backlog', now()
         FROM licences, generate_series(1, $1 / 3)",
    )
    .bind(BACKLOG)
    .execute(&db)
    .await
    .unwrap();
    eventually(
        Duration::from_secs(60),
        "the holder to be publishing the backlog",
        || async {
            let unpublished: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM licence_events WHERE published_at IS NULL",
            )
            .fetch_one(&db)
            .await
            .unwrap();
            (unpublished > 0 && unpublished < BACKLOG).then_some(())
        },
    )
    .await;
    holder.signal("STOP");
    eventually(
        Duration::from_secs(30),
        "the licence events to move to the other instance",
        || async {
            (holders(&view(&db).await).get("licence-events") == Some(&other.instance)).then_some(())
        },
    )
    .await;
    all_published(&db).await;

    // Resumed, the old holder finds its lease gone and publishes nothing more; events issued
    // through it are published (once) by the new holder.
    holder.signal("CONT");
    eventually(
        Duration::from_secs(30),
        "the resumed instance to find that it lost its leases",
        || async {
            let log = holder.log();
            (log.contains("could not be renewed in time") || log.contains("was lost")).then_some(())
        },
    )
    .await;
    numbers.extend(issue(holder, &police, 3).await);
    let total = all_published(&db).await;
    assert_eq!(total, BACKLOG + 6);

    published_once(&config, total, &numbers);
}

/// Reads the licence-events topic: `total` events, each once, the `issued` ones those of
/// licences `numbers`.
fn published_once(config: &Config, total: i64, numbers: &[String]) {
    let topic = bohai_hub::licences::events::topic(&config.kafka);
    let events = bohai_tests::topic_to_end(&config.kafka.brokers, &topic);
    let mut by_id: BTreeMap<i64, usize> = BTreeMap::new();
    for e in &events {
        *by_id.entry(e["id"].as_i64().unwrap()).or_default() += 1;
    }
    let twice: Vec<(&i64, &usize)> = by_id.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        twice.is_empty(),
        "{} events published more than once, e.g. {:?}",
        twice.len(),
        &twice[..twice.len().min(5)]
    );
    assert_eq!(by_id.len(), usize::try_from(total).unwrap());
    let issued: BTreeSet<&str> = events
        .iter()
        .filter(|e| e["event"] == "issued")
        .map(|e| e["number"].as_str().unwrap())
        .collect();
    assert_eq!(issued, numbers.iter().map(String::as_str).collect());
}

/// Two instances of the test, as the cluster sees them.
fn instance(id: &str) -> Instance {
    Instance::this("127.0.0.1:1".parse().unwrap(), Some(id))
}

/// Waits until `me` takes `duty` (free, or its lease expired).
async fn take(db: &PgPool, me: &Instance, duty: &str, lease: Duration) -> Lease {
    let (duty, epoch) = eventually(Duration::from_secs(30), "the duty to be taken", || async {
        cluster::store::take(db, me, &[duty.to_owned()], 1, lease)
            .await
            .unwrap()
            .pop()
    })
    .await;
    Lease {
        duty: duty.as_str().into(),
        holder: me.id.as_str().into(),
        epoch,
        idle_limit: lease,
    }
}

#[tokio::test]
async fn a_holder_whose_lease_moved_on_can_write_nothing_for_the_duty() {
    let config = prepared_config().await.unwrap();
    let db = bohai_hub::database::pool(&config.database).unwrap();
    let duty = bohai_hub::duties::LICENCE_EXPIRY;
    cluster::store::declare(&db, &[duty.to_owned()])
        .await
        .unwrap();
    let (old, new) = (instance("old"), instance("new"));
    // The old holder's lease lapses (it was paused, or cut off) and the new one takes it.
    let old_lease = take(&db, &old, duty, Duration::from_secs(1)).await;
    let new_lease = take(&db, &new, duty, Duration::from_secs(30)).await;
    assert_eq!(new_lease.epoch, old_lease.epoch + 1);
    assert!(cluster::store::renew(
        &db,
        &old,
        &[(duty.to_owned(), old_lease.epoch)],
        Duration::from_secs(30)
    )
    .await
    .unwrap()
    .is_empty());

    // The old holder's write fails inside its transaction; the new holder's goes through.
    let now = chrono::Utc::now();
    let stale = bohai_hub::licences::store::expire_due(&db, now, Some(&old_lease)).await;
    assert!(
        stale.as_ref().is_err_and(cluster::is_lease_lost),
        "a stale holder wrote: {stale:?}"
    );
    bohai_hub::licences::store::expire_due(&db, now, Some(&new_lease))
        .await
        .unwrap();
    let stale =
        bohai_hub::ops::samples::sample_once(&db, Duration::from_secs(60), Some(&old_lease)).await;
    assert!(stale.is_err_and(|e| cluster::is_lease_lost(&e)));
}

#[tokio::test]
async fn a_fenced_producer_makes_nothing_visible() {
    let config = prepared_config().await.unwrap();
    let topic = bohai_hub::licences::events::topic(&config.kafka);
    bohai_hub::kafka::ensure_topics(&config.kafka, std::slice::from_ref(&topic))
        .await
        .unwrap();
    use bohai_hub::kafka::fenced;
    // The old holder began a batch; the new holder makes its producer before the old one
    // commits (the old one was paused in between).
    let old = fenced::producer(&config.kafka, "licence-events")
        .await
        .unwrap();
    fenced::begin(&old).await.unwrap();
    let sent = old
        .send_result(FutureRecord::to(&topic).key("k").payload(r#"{"id": 1}"#))
        .map_err(|(e, _)| e)
        .unwrap();
    let _ = sent.await;
    let new = fenced::producer(&config.kafka, "licence-events")
        .await
        .unwrap();
    assert!(
        fenced::commit(&old).await.is_err(),
        "a fenced producer committed"
    );
    fenced::begin(&new).await.unwrap();
    new.send_result(FutureRecord::to(&topic).key("k").payload(r#"{"id": 2}"#))
        .map_err(|(e, _)| e)
        .unwrap()
        .await
        .unwrap()
        .unwrap();
    fenced::commit(&new).await.unwrap();
    let seen: Vec<i64> = bohai_tests::topic_to_end(&config.kafka.brokers, &topic)
        .iter()
        .map(|v| v["id"].as_i64().unwrap())
        .collect();
    assert_eq!(seen, [2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_that_lost_its_lease_issues_no_crl_and_no_checkpoint() {
    use bohai_hub::audit::checkpoint::{self, CheckpointError};
    use bohai_hub::seals::SealsError;
    let dir = tempfile::tempdir().unwrap();
    let config = cluster_config(dir.path()).await;
    let file = bohai_tests::write_config_with_master_key(&config, dir.path()).unwrap();
    bohai_ok(&file, &["seal", "init-ca"]);
    bohai_ok(&file, &["seal", "issue", &config.licences.status_authority]);
    let db = bohai_hub::database::pool(&config.database).unwrap();
    let registry = bohai_hub::registry::load(&config.registry).unwrap();
    let (crl, audit) = (
        bohai_hub::duties::CRL_REISSUE,
        bohai_hub::duties::AUDIT_CHECKPOINT,
    );
    cluster::store::declare(&db, &[crl.to_owned(), audit.to_owned()])
        .await
        .unwrap();
    let (old, new) = (instance("old"), instance("new"));
    let old_crl = take(&db, &old, crl, Duration::from_secs(1)).await;
    let old_audit = take(&db, &old, audit, Duration::from_secs(1)).await;
    take(&db, &new, crl, Duration::from_secs(30)).await;
    take(&db, &new, audit, Duration::from_secs(30)).await;

    let crls_before: i64 = sqlx::query_scalar("SELECT count(*) FROM crls")
        .fetch_one(&db)
        .await
        .unwrap();
    // Due: a year on, half the CRL's validity has surely passed.
    let later = chrono::Utc::now() + chrono::Duration::days(365);
    let stale =
        bohai_hub::seals::service::reissue_if_due(&db, &config.pki, later, Some(&old_crl)).await;
    assert!(
        matches!(&stale, Err(SealsError::Database(e)) if cluster::is_lease_lost(e)),
        "a stale holder reissued the CRL: {stale:?}"
    );
    let crls_after: i64 = sqlx::query_scalar("SELECT count(*) FROM crls")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(crls_after, crls_before);

    // The root's CRL alone due: the issuing CA's CRL is reissued at `later`, so that only
    // the root's (half of a year's validity passed) is left for the old holder.
    bohai_hub::seals::SealsService::with_master_key(&db, &config.pki)
        .unwrap()
        .reissue_crl(later)
        .await
        .unwrap();
    let root_crls_before: i64 =
        sqlx::query_scalar("SELECT count(*) FROM crls WHERE issuer = 'root'")
            .fetch_one(&db)
            .await
            .unwrap();
    let stale = bohai_hub::seals::service::reissue_if_due(
        &db,
        &config.pki,
        later + chrono::Duration::hours(1),
        Some(&old_crl),
    )
    .await;
    let root_crls_after: i64 =
        sqlx::query_scalar("SELECT count(*) FROM crls WHERE issuer = 'root'")
            .fetch_one(&db)
            .await
            .unwrap();
    assert_eq!(
        root_crls_after, root_crls_before,
        "a stale holder reissued the root's CRL: {stale:?}"
    );
    assert!(
        matches!(&stale, Err(SealsError::Database(e)) if cluster::is_lease_lost(e)),
        "a stale holder's round succeeded: {stale:?}"
    );

    let stale = checkpoint::make(
        &db,
        &config,
        &registry,
        chrono::Utc::now(),
        Some(&old_audit),
    )
    .await;
    assert!(
        matches!(&stale, Err(CheckpointError::Database(e)) if cluster::is_lease_lost(e)),
        "a stale holder stored a checkpoint: {:?}",
        stale.map(|m| m.summary)
    );
    assert_eq!(checkpoint::latest_seq(&db).await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connector_whose_lease_moved_on_commits_no_checkpoint() {
    use bohai_hub::pipeline::connector::{self, RunUntil};
    let config = prepared_config().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = bohai_tests::write_config(&config, dir.path()).unwrap();
    let feed = dir.path().join("residents.jsonl");
    command_ok(
        bohai(&file)
            .args(["gen", "resident-registrations", "20", "-o"])
            .arg(&feed),
    );
    let connector_file = dir.path().join("stale.toml");
    std::fs::write(
        &connector_file,
        format!(
            "name = \"stale\"\ndataset = \"resident-registrations\"\n[source]\nkind = \"file\"\npath = \"{}\"\nformat = \"jsonl\"\n",
            feed.display()
        ),
    )
    .unwrap();
    let c = bohai_connectors::ConnectorConfig::load(&connector_file).unwrap();
    let db = bohai_hub::database::pool(&config.database).unwrap();
    let registry = std::sync::Arc::new(bohai_hub::registry::load(&config.registry).unwrap());
    let ingestor =
        bohai_hub::pipeline::ingest::Ingestor::new(&config.kafka, db.clone(), registry).unwrap();
    let duty = cluster::connector_duty("stale");
    cluster::store::declare(&db, std::slice::from_ref(&duty))
        .await
        .unwrap();
    let (old, new) = (instance("old"), instance("new"));
    let old_lease = take(&db, &old, &duty, Duration::from_secs(1)).await;
    take(&db, &new, &duty, Duration::from_secs(30)).await;

    let run = connector::run(
        &c,
        &ingestor,
        &db,
        RunUntil::Finished,
        Some(&old_lease),
        |_| {},
    )
    .await;
    assert!(
        run.as_ref()
            .is_err_and(connector::ConnectorError::is_lease_lost),
        "a stale holder ran the connector: {run:?}"
    );
    assert_eq!(bohai_tests::connector_position(&db, "stale").await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_that_lost_a_partition_commits_no_batch_for_it() {
    use bohai_hub::pipeline::partitions;
    let config = prepared_config().await.unwrap();
    let db = bohai_hub::database::pool(&config.database).unwrap();
    let topic = format!("{}fencing-test", config.kafka.topic_prefix);
    let wanted = BTreeSet::from([(topic.clone(), 0)]);
    let key = (topic.as_str(), 0);

    // A takes the partition and starts writing a batch: its transaction holds the row.
    let mut a = db.acquire().await.unwrap();
    let taken = partitions::claim(&mut a, "hub-a", &wanted).await.unwrap();
    let a_epoch = taken[&(topic.clone(), 0)].epoch;
    let mut a_tx = db.begin().await.unwrap();
    let moved = partitions::hold(&mut a_tx, "hub-a", &BTreeMap::from([(key, a_epoch)]))
        .await
        .unwrap();
    assert!(moved.is_empty(), "{moved:?}");

    // B is given the partition meanwhile: its claim waits for A's batch to end, and then
    // resumes where that batch ended.
    let (b_db, b_wanted) = (db.clone(), wanted.clone());
    let b_claim = tokio::spawn(async move {
        let mut b = b_db.acquire().await.unwrap();
        partitions::claim(&mut b, "hub-b", &b_wanted).await.unwrap()
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !b_claim.is_finished(),
        "B took the partition in the middle of A's batch"
    );
    partitions::advance(&mut a_tx, &BTreeMap::from([(key, 42)]))
        .await
        .unwrap();
    a_tx.commit().await.unwrap();
    let b_taken = b_claim.await.unwrap();
    let b = &b_taken[&(topic.clone(), 0)];
    assert_eq!((b.next_offset, b.epoch), (42, a_epoch + 1));

    // A's next batch, at the epoch it took the partition at, is refused: nothing of it is
    // written, whatever the timing.
    let mut a_tx = db.begin().await.unwrap();
    let moved = partitions::hold(&mut a_tx, "hub-a", &BTreeMap::from([(key, a_epoch)]))
        .await
        .unwrap();
    assert_eq!(moved, BTreeSet::from([(topic.clone(), 0)]));
    a_tx.rollback().await.unwrap();
    // B's is not.
    let mut b_tx = db.begin().await.unwrap();
    let moved = partitions::hold(&mut b_tx, "hub-b", &BTreeMap::from([(key, b.epoch)]))
        .await
        .unwrap();
    assert!(moved.is_empty(), "{moved:?}");
    b_tx.rollback().await.unwrap();
    // Nor does A get it back by claiming under B's name at B's epoch from a stale view: a
    // claim always makes a new epoch.
    let again = partitions::claim(&mut a, "hub-a", &wanted).await.unwrap();
    assert_eq!(again[&(topic.clone(), 0)].epoch, b.epoch + 1);
}

/// An instance older than the sink's consumer group (before migration 0018) ran the sink as a
/// duty, unfenced; left running during an upgrade it declared the duty again and wrote beside
/// the group. Its declaration (the statement it sends, word for word) is refused now, so its
/// cluster rounds fail and it stops its duties.
#[tokio::test]
async fn an_instance_older_than_the_sink_group_cannot_declare_the_sink_duty() {
    let config = prepared_config().await.unwrap();
    let db = bohai_hub::database::pool(&config.database).unwrap();
    let old_declare =
        "INSERT INTO duty_leases (duty) SELECT unnest($1::text[]) ON CONFLICT (duty) DO NOTHING";
    let refused = sqlx::query(old_declare)
        .bind(vec!["sink", "licence-events"])
        .execute(&db)
        .await
        .expect_err("an old instance declared the sink duty");
    let code = refused.as_database_error().and_then(|e| e.code());
    assert_eq!(code.as_deref(), Some("BH002"), "{refused}");
    assert!(refused.to_string().contains("upgrade"), "{refused}");
    let sink_rows: i64 = sqlx::query_scalar("SELECT count(*) FROM duty_leases WHERE duty = 'sink'")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(sink_rows, 0);
    // The duties of this version are declared as before.
    sqlx::query(old_declare)
        .bind(vec!["licence-events"])
        .execute(&db)
        .await
        .unwrap();
}

/// A claim that reaches the database after the group moved on (from an instance paused in
/// the middle of claiming and resumed after its partitions went to another) takes the
/// partitions from the instance the group gives them to. That instance finds it out at its
/// next batch: it leaves the group and joins again, claiming them back, and every record is
/// written, once. Before, it stopped reading those partitions, silently, for as long as the
/// group left them with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_claim_from_an_instance_the_group_moved_on_from_leaves_no_partition_unread() {
    use bohai_hub::pipeline::{partitions, topics};
    let dir = tempfile::tempdir().unwrap();
    let config = cluster_config(dir.path()).await;
    let db = bohai_hub::database::pool(&config.database).unwrap();
    let police = bohai_tests::token(&db, "public-security").await;
    let a = ServeProcess::start(&config, "hub-a").unwrap();
    let lines = residents(&a, &dir.path().join("residents.jsonl"), 300);
    partitions_spread_over(&db, &config, &["hub-a"]).await;
    answering(&a).await;
    assert_eq!(push(&a.base_url, &police, &lines[..100]).await, 100);
    written_once(&db, 100).await;

    let topic = topics::dataset_topic(&config.kafka, "resident-registrations");
    let late: BTreeSet<(String, i32)> = (0..config.kafka.partitions)
        .map(|p| (topic.clone(), p))
        .collect();
    let mut conn = db.acquire().await.unwrap();
    partitions::claim(&mut conn, "hub-gone", &late)
        .await
        .unwrap();

    assert_eq!(push(&a.base_url, &police, &lines[100..]).await, 200);
    written_once(&db, 300).await;
    let owners: BTreeSet<Option<String>> = partitions::owners(&db)
        .await
        .unwrap()
        .into_iter()
        .filter(|p| p.topic == topic)
        .map(|p| p.owner)
        .collect();
    assert_eq!(owners, BTreeSet::from([Some("hub-a".to_owned())]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_instances_partitions_are_written_by_the_others_and_it_writes_nothing_stale() {
    let dir = tempfile::tempdir().unwrap();
    let config = cluster_config(dir.path()).await;
    let db = bohai_hub::database::pool(&config.database).unwrap();
    let police = bohai_tests::token(&db, "public-security").await;
    let feed = dir.path().join("residents.jsonl");
    let a = ServeProcess::start(&config, "hub-a").unwrap();
    let b = ServeProcess::start(&config, "hub-b").unwrap();
    let lines = residents(&a, &feed, 600);
    partitions_spread_over(&db, &config, &["hub-a", "hub-b"]).await;
    answering(&a).await;
    answering(&b).await;
    assert_eq!(push(&a.base_url, &police, &lines[..200]).await, 200);
    written_once(&db, 200).await;

    // A is paused while records are being written: B takes its partitions (within the
    // group's session and a rebalance) and writes them all, once.
    assert_eq!(push(&b.base_url, &police, &lines[200..400]).await, 200);
    a.signal("STOP");
    let paused_at = std::time::Instant::now();
    let v = partitions_spread_over(&db, &config, &["hub-b"]).await;
    let took = paused_at.elapsed();
    eprintln!("A's partitions taken over {took:?} after it was paused");
    assert!(took <= config.cluster.sink_session * 3, "{took:?}");
    assert!(
        v.partitions
            .iter()
            .all(|p| p.owner.as_deref() == Some("hub-b")),
        "{v:#?}"
    );
    written_once(&db, 400).await;

    // A resumes: it wrote nothing stale, and it gets partitions back and writes again.
    a.signal("CONT");
    partitions_spread_over(&db, &config, &["hub-a", "hub-b"]).await;
    answering(&a).await;
    assert_eq!(push(&a.base_url, &police, &lines[400..]).await, 200);
    written_once(&db, 600).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_give_identical_verification_reports() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = cluster_config(dir.path()).await;
    // The hub's public address, the same for every instance (docs/deployment.md): each
    // instance's own would name itself in the licences it seals.
    config.licences.status_list_url =
        Some("https://licences.example.gov.cn/api/v1/licences/status-list".to_owned());
    let db = bohai_hub::database::pool(&config.database).unwrap();
    let a = ServeProcess::start(&config, "hub-a").unwrap();
    let b = ServeProcess::start(&config, "hub-b").unwrap();
    bohai_ok(&a.config_file, &["seal", "init-ca"]);
    bohai_ok(&a.config_file, &["seal", "issue", "traffic-police"]);
    bohai_ok(
        &a.config_file,
        &["seal", "issue", &config.licences.status_authority],
    );
    let police = bohai_tests::token(&db, "traffic-police").await;
    answering(&a).await;
    answering(&b).await;

    // Valid, revoked (through B), suspended (through A), and one altered after sealing.
    let licences = issued(&a, &police, 3).await;
    let document = |i: usize| licences[i]["document"].as_str().unwrap().to_owned();
    let act = |instance: &ServeProcess, i: usize, action: &str| {
        let url = instance.url(&format!(
            "/api/v1/licences/{}/{action}",
            licences[i]["number"].as_str().unwrap()
        ));
        let police = police.clone();
        async move {
            let r = reqwest::Client::new()
                .post(url)
                .bearer_auth(police)
                .json(&json!({"reason": "test"}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status().as_u16(), 200, "{}", r.text().await.unwrap());
        }
    };
    act(&b, 1, "revoke").await;
    act(&a, 2, "suspend").await;
    let mut altered = document(0);
    let cut = altered.rfind('.').unwrap();
    altered.replace_range(cut + 1..cut + 3, "AA");
    let cases = [document(0), document(1), document(2), altered];

    // Asked in turn of A and B, at one instant: the same report, check by check.
    let at = chrono::Utc::now() + chrono::Duration::seconds(1);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let verify = |instance: &ServeProcess, licence: &str| {
        let url = instance.url("/api/v1/licences/verify");
        let body = json!({"licence": licence, "at": at});
        async move {
            let r = reqwest::Client::new()
                .post(url)
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status().as_u16(), 200);
            r.json::<Value>().await.unwrap()
        }
    };
    let mut overall = Vec::new();
    for (i, licence) in cases.iter().enumerate() {
        let (first, second) = if i % 2 == 0 { (&a, &b) } else { (&b, &a) };
        let one = verify(first, licence).await;
        let other = verify(second, licence).await;
        assert_eq!(
            one, other,
            "case {i}: {} and {} differ",
            first.instance, second.instance
        );
        overall.push(one["overall"].as_str().unwrap().to_owned());
    }
    assert_eq!(overall[0], "VALID", "{overall:?}");
    assert_eq!(overall[1], "INVALID", "{overall:?}");
    assert_ne!(overall[2], "VALID", "{overall:?}");
    assert_eq!(overall[3], "INVALID", "{overall:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_cut_off_from_the_database_hands_over_and_writes_nothing_stale() {
    use bohai_tests::proxy::TcpProxy;
    let dir = tempfile::tempdir().unwrap();
    let config = cluster_config(dir.path()).await;
    let db = bohai_hub::database::pool(&config.database).unwrap();
    let police = bohai_tests::token(&db, "public-security").await;
    // A reaches PostgreSQL through a proxy the test cuts; B and the test do not.
    let mut url = reqwest::Url::parse(&config.database.url).unwrap();
    let target = tokio::net::lookup_host(format!(
        "{}:{}",
        url.host_str().unwrap(),
        url.port().unwrap_or(5432)
    ))
    .await
    .unwrap()
    .next()
    .unwrap();
    let proxy = TcpProxy::start(target).await.unwrap();
    url.set_port(Some(proxy.addr().port())).unwrap();
    let mut a_config = config.clone();
    a_config.database.url = url.to_string();
    let a = ServeProcess::start(&a_config, "hub-a").unwrap();
    let b = ServeProcess::start(&config, "hub-b").unwrap();
    let feed = dir.path().join("residents.jsonl");
    let lines = residents(&b, &feed, 600);
    spread_over(&db, &["hub-a", "hub-b"]).await;
    partitions_spread_over(&db, &config, &["hub-a", "hub-b"]).await;
    answering(&b).await;
    assert_eq!(push(&b.base_url, &police, &lines[..200]).await, 200);
    written_once(&db, 200).await;

    // A is cut off from the database: its duties move to B once its leases expire, and its
    // sink, unable to write what reaches its partitions, leaves the group, so that B writes
    // them too.
    proxy.cut();
    let cut_at = std::time::Instant::now();
    assert_eq!(push(&b.base_url, &police, &lines[200..400]).await, 200);
    spread_over(&db, &["hub-b"]).await;
    partitions_spread_over(&db, &config, &["hub-b"]).await;
    written_once(&db, 400).await;
    eprintln!(
        "A's duties and partitions ran on B and the records pushed meanwhile were written {:?} after the cut",
        cut_at.elapsed()
    );

    // A comes back: it takes part again and writes nothing stale.
    proxy.restore();
    spread_over(&db, &["hub-a", "hub-b"]).await;
    partitions_spread_over(&db, &config, &["hub-a", "hub-b"]).await;
    answering(&a).await;
    assert_eq!(push(&a.base_url, &police, &lines[400..]).await, 200);
    written_once(&db, 600).await;
}

/// Issue 18's acceptance test. Three instances share the work of a 110,000-record feed
/// (100,000 residents, 2 % invalid, then 10,000 of them changed) read by a connector inside
/// `serve`, a subscription topic of the dataset, and licences issued through them meanwhile.
/// The instance running the connector is killed with SIGKILL in the middle of the feed, then
/// another is stopped with SIGTERM, then both start again. Afterwards the repository matches
/// the source record by record and version by version, the subscription topic carries every
/// record and no value twice, every licence event is published once, the publish audit
/// entries count the source once, and the audit log verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_feed_over_three_instances_with_one_killed_and_one_stopped_loses_and_doubles_nothing() {
    const FEED: &str = "residents-feed";
    let dir = tempfile::tempdir().unwrap();
    let mut config = cluster_config(dir.path()).await;
    let db = bohai_hub::database::pool(&config.database).unwrap();
    let registry = bohai_hub::registry::load(&config.registry).unwrap();

    // The source: generated residents, then a tenth of them changed (their second version).
    let source = dir.path().join("residents.jsonl");
    let gen_config = bohai_tests::write_config(&config, dir.path()).unwrap();
    command_ok(
        bohai(&gen_config)
            .args(["gen", "resident-registrations", "100000", "--seed", "18"])
            .args(["--invalid-ratio", "0.02", "-o"])
            .arg(&source),
    );
    let mut lines: Vec<String> = std::fs::read_to_string(&source)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    let changed: Vec<String> = lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["domicile_address"].is_string())
        .take(10_000)
        .map(|mut v| {
            let moved = format!("{}附1号", v["domicile_address"].as_str().unwrap());
            v["domicile_address"] = Value::from(moved);
            v["updated_at"] = Value::from("2026-12-01T08:00:00+08:00");
            v.to_string()
        })
        .collect();
    lines.extend(changed);
    std::fs::write(&source, lines.join("\n") + "\n").unwrap();
    let connector = dir.path().join("residents-feed.toml");
    std::fs::write(
        &connector,
        format!(
            "name = \"{FEED}\"\ndataset = \"resident-registrations\"\nbatch_size = 500\n[source]\nkind = \"file\"\npath = \"{}\"\nformat = \"jsonl\"\n",
            source.display()
        ),
    )
    .unwrap();
    config.pipeline.connectors = vec![connector];

    // A subscription and licences before the feed starts: the instances start with the
    // connector, so the city's PKI and the approval are made through the first one alone.
    let mut instances = vec![ServeProcess::start(&config, "hub-a").unwrap()];
    answering(&instances[0]).await;
    bohai_ok(&instances[0].config_file, &["seal", "init-ca"]);
    bohai_ok(
        &instances[0].config_file,
        &["seal", "issue", "traffic-police"],
    );
    let traffic = bohai_tests::token(&db, "traffic-police").await;
    let police = bohai_tests::token(&db, "public-security").await;
    let civil = bohai_hub::auth::create_scoped_token(
        &db,
        "civil-affairs",
        &[bohai_hub::auth::Scope::Read],
        None,
    )
    .await
    .unwrap()
    .secret;
    let until = chrono::Utc::now() + chrono::Duration::days(30);
    let (status, requested) = bohai_tests::post_json(
        &instances[0].url("/api/v1/subscriptions"),
        &civil,
        &json!({"dataset": "resident-registrations", "fields": ["id_number", "name", "domicile_address"], "purpose": "minimum living allowance checks", "until": until}),
    )
    .await;
    assert_eq!(status, 201, "{requested}");
    let id = requested["id"].as_str().unwrap().to_owned();
    let approve = instances[0].url(&format!("/api/v1/subscriptions/{id}/approve"));
    let (status, approved) = bohai_tests::post_json(&approve, &police, &json!({})).await;
    assert_eq!(status, 200, "{approved}");
    let subscription_topic = format!("{}sub.{id}", config.kafka.topic_prefix);
    let mut licences = issue(&instances[0], &traffic, 5).await;

    instances.push(ServeProcess::start(&config, "hub-b").unwrap());
    instances.push(ServeProcess::start(&config, "hub-c").unwrap());
    duties_spread_over(&db, &["hub-a", "hub-b", "hub-c"], DUTIES + 1).await;
    for instance in &instances {
        answering(instance).await;
    }

    // In the middle of the feed, the instance running its connector is killed.
    let total = i64::try_from(lines.len()).unwrap();
    eventually(
        Duration::from_secs(120),
        "the connector to be in the middle of the feed",
        || async {
            let at = bohai_tests::connector_position(&db, FEED)
                .await
                .and_then(|p| p["seq"].as_i64())
                .unwrap_or(0);
            (at > 0).then_some(())
        },
    )
    .await;
    let connector_holder = holders(&view(&db).await)[&format!("connector:{FEED}")].clone();
    let killed = instances
        .iter()
        .position(|i| i.instance == connector_holder)
        .unwrap();
    let read_before: i64 = dataset_stats(&db, Some("resident-registrations"))
        .await
        .unwrap()[0]
        .read;
    assert!(read_before < total, "the feed ended before the kill");
    instances[killed].kill();
    eprintln!("{connector_holder} (running the connector) killed with {read_before} of {total} records read");
    let survivors: Vec<usize> = (0..3).filter(|i| *i != killed).collect();
    let names = |idx: &[usize]| -> Vec<String> {
        idx.iter().map(|i| instances[*i].instance.clone()).collect()
    };
    let survivor_names = names(&survivors);
    let survivor_refs: Vec<&str> = survivor_names.iter().map(String::as_str).collect();
    duties_spread_over(&db, &survivor_refs, DUTIES + 1).await;
    licences.extend(issue(&instances[survivors[0]], &traffic, 5).await);

    // Then another is stopped cleanly.
    let stopped = survivors[1];
    instances[stopped].signal("TERM");
    eprintln!(
        "{} stopped with {} of {total} records read",
        instances[stopped].instance,
        dataset_stats(&db, Some("resident-registrations"))
            .await
            .unwrap()[0]
            .read
    );
    let last = [instances[survivors[0]].instance.as_str()];
    duties_spread_over(&db, &last, DUTIES + 1).await;
    licences.extend(issue(&instances[survivors[0]], &traffic, 5).await);

    // Both start again, under their own identities.
    for i in [killed, stopped] {
        let name = instances[i].instance.clone();
        instances[i] = ServeProcess::start(&config, &name).unwrap();
    }
    duties_spread_over(&db, &["hub-a", "hub-b", "hub-c"], DUTIES + 1).await;
    answering(&instances[killed]).await;
    licences.extend(issue(&instances[killed], &traffic, 5).await);

    // The repository: every valid record once, each key at its number of versions.
    let s = eventually(
        Duration::from_secs(240),
        "the whole feed to be read and written",
        || async {
            let s = dataset_stats(&db, Some("resident-registrations"))
                .await
                .unwrap()
                .remove(0);
            assert!(s.read <= total, "read past the source: {s:?}");
            (s.read == total && s.pending == 0).then_some(s)
        },
    )
    .await;
    assert!(s.reconciled, "{s:?}");
    let expected = bohai_tests::expected_repository(&registry, "resident-registrations", &source);
    bohai_tests::assert_repository_matches(&db, "resident-registrations", &expected).await;

    // The subscription topic: every record, no value twice, a key at most once a version.
    let delivered = eventually(
        Duration::from_secs(120),
        "the subscription topic to carry every record",
        || async {
            let delivered = bohai_tests::topic_to_end(&config.kafka.brokers, &subscription_topic);
            let keys: BTreeSet<&str> = delivered.iter().filter_map(|v| v["key"].as_str()).collect();
            (keys.len() == expected.len()).then_some(delivered.clone())
        },
    )
    .await;
    let mut values: BTreeMap<String, usize> = BTreeMap::new();
    let mut per_key: BTreeMap<&str, usize> = BTreeMap::new();
    for v in &delivered {
        *values
            .entry(format!("{}|{}", v["key"], v["data"]))
            .or_default() += 1;
        *per_key.entry(v["key"].as_str().unwrap()).or_default() += 1;
    }
    let twice = values.values().filter(|n| **n > 1).count();
    assert_eq!(twice, 0, "{twice} values on the subscription topic twice");
    let most_versions = expected.values().map(|(_, v)| *v).max().unwrap();
    assert!(per_key
        .values()
        .all(|n| *n <= usize::try_from(most_versions).unwrap()));

    // Licence events: each published once.
    let events_total = all_published(&db).await;
    published_once(&config, events_total, &licences);

    // The audit log: the feed's publish entries count the source once; the chain verifies.
    let audited: Option<i64> = sqlx::query_scalar(
        "SELECT sum((detail::jsonb ->> 'read')::bigint)::bigint FROM audit_log
         WHERE action = 'publish' AND detail::jsonb ->> 'source' = $1",
    )
    .bind(FEED)
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(audited, Some(total));
    let verified: Value = serde_json::from_slice(&command_ok(
        bohai(&instances[killed].config_file).args(["audit", "verify", "--json"]),
    ))
    .unwrap();
    assert_eq!(verified["intact"], true, "{verified}");
}
