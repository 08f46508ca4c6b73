//! The operations overview: every feed judged, the datasets' counts, the sink's lag per
//! topic partition, seal coverage and licence statistics, gathered from PostgreSQL (and the
//! broker for the lag). `GET /api/v1/ops/overview`, `GET /metrics`, `bohai status` and the
//! dashboard all show this one value.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use bohai_schemas::Registry;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;
use utoipa::ToSchema;

use super::feeds::{self, ConnectorState, FeedFacts, FeedState, Thresholds, WindowCounts};
use crate::config::{Config, KafkaConfig, OpsConfig};
use crate::pipeline::stats::{self, DatasetStats};
use crate::pipeline::topics;
use crate::seals::{Coverage, SealsService};

/// The source name HTTP push records carry in `feed_counts`.
const PUSH_SOURCE: &str = "http-push";

/// One feed: a connector or push source of one dataset, judged.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FeedHealth {
    /// Dataset id.
    pub dataset: String,
    /// Owning department.
    pub department: String,
    /// The connector's name, or `http-push`.
    pub source: String,
    /// `connector`, `push`, or `other` (a producer outside the hub).
    pub kind: String,
    /// healthy, stale, failing or paused.
    pub state: FeedState,
    /// Why it is not healthy; empty when healthy.
    pub reasons: Vec<String>,
    /// When its newest record was read.
    pub last_record_at: Option<DateTime<Utc>>,
    /// The dataset's expected update interval, e.g. `1h`.
    pub expected_interval: String,
    /// Records read, ever.
    pub read_total: i64,
    /// Records that passed validation, ever.
    pub valid_total: i64,
    /// Records rejected, ever.
    pub rejected_total: i64,
    /// The reject ratio the state was judged by (recent window, else whole history), when
    /// there were at least `ops.min_records` records.
    pub reject_ratio: Option<f64>,
    /// Records read per minute over `ops.rate_window` (none before the first sample round).
    pub read_per_minute: Option<f64>,
    /// Records rejected per minute over `ops.rate_window`.
    pub rejected_per_minute: Option<f64>,
    /// For a connector run by `bohai serve`: running, finished or failed.
    pub connector_state: Option<ConnectorState>,
    /// When the connector last committed a checkpoint (its last success).
    pub last_success_at: Option<DateTime<Utc>>,
}

/// The sink's lag in one topic partition.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PartitionLag {
    /// Topic.
    pub topic: String,
    /// The dataset of the topic.
    pub dataset: String,
    /// Partition.
    pub partition: i32,
    /// The broker's high watermark: the offset of the next record to be written.
    pub high_watermark: i64,
    /// The sink's next offset (0 before it wrote anything).
    pub sink_next_offset: i64,
    /// Records on the topic that the repository does not have yet.
    pub lag_records: i64,
    /// Age of the oldest record the repository does not have yet (its broker timestamp), in
    /// seconds; 0 without lag, none when it could not be read in time.
    pub lag_seconds: Option<f64>,
}

/// Licences by state and lifecycle events by kind.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct LicenceStats {
    /// Licence versions by state: valid, expired (valid but past `valid_until`), suspended,
    /// revoked, superseded.
    pub by_state: BTreeMap<String, i64>,
    /// Lifecycle events by kind: issued, renewed, replaced, revoked, suspended, resumed,
    /// expired.
    pub events: BTreeMap<String, i64>,
}

/// The whole operations overview.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Overview {
    /// When it was gathered.
    pub at: DateTime<Utc>,
    /// Number of feeds in each state (every state present, zero included).
    pub feed_states: BTreeMap<String, usize>,
    /// Every feed, by dataset and source.
    pub feeds: Vec<FeedHealth>,
    /// Reconciliation counts of every dataset.
    pub datasets: Vec<DatasetStats>,
    /// The sink's lag per dataset topic partition; empty when the broker did not answer.
    pub sink_lag: Vec<PartitionLag>,
    /// Why `sink_lag` is empty, when the broker did not answer.
    pub sink_lag_error: Option<String>,
    /// Seal coverage of the departments.
    pub seals: Coverage,
    /// Licence statistics.
    pub licences: LicenceStats,
    /// What the subscription topics carry, by dataset and reading department.
    pub subscriptions: Vec<SubscriptionDeliveries>,
    /// The `bohai serve` instances of the hub, and which holds which duty.
    pub cluster: crate::cluster::ClusterView,
    /// Components stopped by a failure that needs someone, with the reason.
    pub stopped_components: Vec<super::components::ComponentFailure>,
}

#[derive(Debug, sqlx::FromRow)]
struct FeedRow {
    dataset: String,
    department: String,
    source: String,
    read_total: i64,
    valid_total: i64,
    rejected_total: i64,
    last_record_at: Option<DateTime<Utc>>,
    checkpoint_at: Option<DateTime<Utc>>,
    run_state: Option<String>,
    run_error: Option<String>,
    base_at: Option<DateTime<Utc>>,
    base_read: Option<i64>,
    base_rejected: Option<i64>,
}

/// Every feed, judged at the database's `now()` by the thresholds of `ops`.
pub async fn feeds(
    db: &PgPool,
    registry: &Registry,
    ops: &OpsConfig,
) -> Result<Vec<FeedHealth>, sqlx::Error> {
    let (now, rows): (DateTime<Utc>, Vec<FeedRow>) = {
        let mut tx = db.begin().await?;
        let now: DateTime<Utc> = sqlx::query_scalar("SELECT now()")
            .fetch_one(&mut *tx)
            .await?;
        // The window starts at the oldest sample round inside it. A feed missing from that
        // round had no counts yet then, so its baseline is zero.
        let rows = sqlx::query_as::<_, FeedRow>(
            "WITH feeds AS (
               SELECT dataset, source FROM feed_counts
               UNION SELECT dataset, connector FROM connector_checkpoints
               UNION SELECT dataset, connector FROM ops_connector_runs),
             w AS (SELECT min(at) AS start FROM ops_feed_samples
                   WHERE at >= now() - make_interval(secs => $1))
             SELECT f.dataset, d.department, f.source,
                    COALESCE(c.read_total, 0) AS read_total, COALESCE(c.valid_total, 0) AS valid_total,
                    COALESCE(c.rejected_total, 0) AS rejected_total, c.last_record_at,
                    k.updated_at AS checkpoint_at, r.state AS run_state, r.error AS run_error,
                    w.start AS base_at,
                    CASE WHEN w.start IS NOT NULL THEN COALESCE(b.read_total, 0) END AS base_read,
                    CASE WHEN w.start IS NOT NULL THEN COALESCE(b.rejected_total, 0) END AS base_rejected
             FROM feeds f
             CROSS JOIN w
             JOIN datasets d ON d.id = f.dataset
             LEFT JOIN feed_counts c ON c.dataset = f.dataset AND c.source = f.source
             LEFT JOIN connector_checkpoints k ON k.connector = f.source AND k.dataset = f.dataset
             LEFT JOIN ops_connector_runs r ON r.connector = f.source AND r.dataset = f.dataset
             LEFT JOIN ops_feed_samples b
               ON b.dataset = f.dataset AND b.source = f.source AND b.at = w.start
             ORDER BY f.dataset, f.source",
        )
        .bind(ops.rate_window.as_secs_f64())
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        (now, rows)
    };
    let thresholds = Thresholds::from(ops);
    let sink_stopped = super::components::failures(db)
        .await?
        .into_iter()
        .find(|c| c.component == crate::pipeline::sink::COMPONENT);
    Ok(rows
        .into_iter()
        .map(|r| {
            let mut feed = feed_health(r, registry, ops, &thresholds, now);
            // Nothing of any feed reaches the repository while the sink is stopped.
            if let Some(stopped) = &sink_stopped {
                if feed.state != FeedState::Paused {
                    feed.state = FeedState::Failing;
                    feed.reasons
                        .push(format!("the repository sink stopped: {}", stopped.reason));
                }
            }
            feed
        })
        .collect())
}

fn feed_health(
    r: FeedRow,
    registry: &Registry,
    ops: &OpsConfig,
    thresholds: &Thresholds,
    now: DateTime<Utc>,
) -> FeedHealth {
    let expected_interval = registry
        .dataset(&r.dataset)
        .map_or(Duration::from_secs(24 * 3600), |d| d.update_interval);
    let connector_state = r.run_state.as_deref().and_then(ConnectorState::parse);
    let kind = if r.source == PUSH_SOURCE {
        "push"
    } else if r.checkpoint_at.is_some() || connector_state.is_some() {
        "connector"
    } else {
        "other"
    };
    let paused = ops
        .paused
        .iter()
        .any(|p| *p == r.source || *p == format!("{}/{}", r.dataset, r.source));
    let count = |v: i64| u64::try_from(v).unwrap_or(0);
    // The recent window: from its first sample round until now.
    let recent = match (r.base_at, r.base_read, r.base_rejected) {
        (Some(at), Some(read), Some(rejected)) => Some((
            at,
            WindowCounts {
                read: count(r.read_total - read),
                rejected: count(r.rejected_total - rejected),
            },
        )),
        _ => None,
    };
    let facts = FeedFacts {
        last_record_at: r.last_record_at,
        expected_interval,
        total: WindowCounts {
            read: count(r.read_total),
            rejected: count(r.rejected_total),
        },
        recent: recent.map(|(_, c)| c),
        connector: connector_state,
        connector_error: r.run_error,
        paused,
    };
    let judgement = feeds::judge(&facts, thresholds, now);
    let per_minute = |n: u64, since: DateTime<Utc>| {
        let secs = (now - since).num_milliseconds() as f64 / 1000.0;
        (secs > 0.0).then(|| n as f64 * 60.0 / secs)
    };
    FeedHealth {
        department: r.department,
        kind: kind.to_owned(),
        state: judgement.state,
        reasons: judgement.reasons,
        last_record_at: r.last_record_at,
        expected_interval: humantime::format_duration(expected_interval).to_string(),
        read_total: r.read_total,
        valid_total: r.valid_total,
        rejected_total: r.rejected_total,
        reject_ratio: judgement.reject_ratio,
        read_per_minute: recent.and_then(|(at, c)| per_minute(c.read, at)),
        rejected_per_minute: recent.and_then(|(at, c)| per_minute(c.rejected, at)),
        connector_state,
        last_success_at: r.checkpoint_at,
        dataset: r.dataset,
        source: r.source,
    }
}

/// What the subscription topics carry, for one dataset and one reading department.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct SubscriptionDeliveries {
    /// The dataset.
    pub dataset: String,
    /// The reading department.
    pub department: String,
    /// Its subscriptions to the dataset that are approved and not expired.
    pub active: i64,
    /// Records put on its subscription topics, all subscriptions together.
    pub delivered_total: i64,
    /// When a batch last reached one of those topics.
    pub last_delivery_at: Option<DateTime<Utc>>,
}

/// Subscription deliveries by dataset and reading department (every pair that ever had an
/// approved subscription).
pub async fn subscription_deliveries(
    db: &PgPool,
) -> Result<Vec<SubscriptionDeliveries>, sqlx::Error> {
    sqlx::query_as(
        "SELECT s.dataset, s.department,
                count(*) FILTER (WHERE s.status = 'approved' AND s.valid_until > now()) AS active,
                COALESCE(sum(d.delivered_total), 0)::bigint AS delivered_total,
                max(d.last_delivery_at) AS last_delivery_at
         FROM subscriptions s LEFT JOIN subscription_deliveries d ON d.subscription = s.id
         WHERE s.decided_at IS NOT NULL AND s.status IN ('approved', 'withdrawn')
         GROUP BY s.dataset, s.department ORDER BY s.dataset, s.department",
    )
    .fetch_all(db)
    .await
}

/// Licence versions by state and events by kind.
pub async fn licence_stats(db: &PgPool) -> Result<LicenceStats, sqlx::Error> {
    let by_state: Vec<(String, i64)> = sqlx::query_as(
        "SELECT CASE WHEN status = 'valid' AND valid_until <= now() THEN 'expired' ELSE status END AS state,
                count(*) FROM licences GROUP BY 1",
    )
    .fetch_all(db)
    .await?;
    let events: Vec<(String, i64)> =
        sqlx::query_as("SELECT event, count(*) FROM licence_events GROUP BY event")
            .fetch_all(db)
            .await?;
    let mut stats = LicenceStats::default();
    for state in ["valid", "expired", "suspended", "revoked", "superseded"] {
        stats.by_state.insert(state.to_owned(), 0);
    }
    for event in [
        "issued",
        "renewed",
        "replaced",
        "revoked",
        "suspended",
        "resumed",
        "expired",
    ] {
        stats.events.insert(event.to_owned(), 0);
    }
    stats.by_state.extend(by_state);
    stats.events.extend(events);
    Ok(stats)
}

/// The broker client that reads topic metadata and watermarks for the sink lag, made on first
/// use and kept: a process that makes the overview again and again (`/metrics` scraped every
/// few seconds) connects to the broker once, not at every scrape.
#[derive(Default)]
pub struct LagClient(std::sync::Mutex<Option<Arc<rdkafka::consumer::BaseConsumer>>>);

impl std::fmt::Debug for LagClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LagClient")
    }
}

impl LagClient {
    /// The kept client, made from `config` if there is none yet.
    fn client(
        &self,
        config: &rdkafka::ClientConfig,
    ) -> Result<Arc<rdkafka::consumer::BaseConsumer>, String> {
        let mut slot = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(client) = slot.as_ref() {
            return Ok(Arc::clone(client));
        }
        let client = Arc::new(config.create().map_err(|e| e.to_string())?);
        *slot = Some(Arc::clone(&client));
        Ok(client)
    }
}

/// The sink's lag in every partition of every dataset topic: the broker's high watermarks
/// against the offsets the sink stored with its rows, and the age of the oldest record it has
/// not written. `lag_client` keeps the broker client between calls.
pub async fn sink_lag(
    kafka: &KafkaConfig,
    db: &PgPool,
    registry: &Registry,
    lag_client: &LagClient,
) -> Result<Vec<PartitionLag>, String> {
    let stored: HashMap<(String, i32), i64> = crate::pipeline::partitions::next_offsets(db)
        .await
        .map_err(|e| format!("database: {e}"))?
        .into_iter()
        .collect();
    let topics: Vec<(String, String)> = registry
        .datasets
        .iter()
        .map(|d| (topics::dataset_topic(kafka, &d.id), d.id.clone()))
        .collect();
    let client_config = crate::kafka::client_config(kafka);
    // A scrape must not hang on an absent broker for long.
    let timeout = kafka.request_timeout.min(Duration::from_secs(3));
    let consumer = lag_client.client(&client_config)?;
    tokio::task::spawn_blocking(move || {
        broker_lag(&consumer, &client_config, &topics, &stored, timeout)
    })
    .await
    .map_err(|e| e.to_string())?
}

/// The blocking part of [`sink_lag`]: watermarks of every partition of `topics`, and the
/// timestamp of the first unwritten record of each lagging one.
fn broker_lag(
    consumer: &rdkafka::consumer::BaseConsumer,
    client_config: &rdkafka::ClientConfig,
    topics: &[(String, String)],
    stored: &HashMap<(String, i32), i64>,
    timeout: Duration,
) -> Result<Vec<PartitionLag>, String> {
    use rdkafka::consumer::Consumer;
    let metadata = consumer
        .fetch_metadata(None, timeout)
        .map_err(|e| format!("broker metadata: {e}"))?;
    let partitions: HashMap<&str, Vec<i32>> = metadata
        .topics()
        .iter()
        .map(|t| (t.name(), t.partitions().iter().map(|p| p.id()).collect()))
        .collect();
    let now_ms = Utc::now().timestamp_millis();
    // Reading the oldest unwritten records shares one budget, so that a large lag over many
    // partitions cannot make a scrape slow.
    let deadline = std::time::Instant::now() + timeout;
    let mut out = Vec::new();
    for (topic, dataset) in topics {
        let mut ids = partitions.get(topic.as_str()).cloned().unwrap_or_default();
        ids.sort_unstable();
        for p in ids {
            let (_, high) = consumer
                .fetch_watermarks(topic, p, timeout)
                .map_err(|e| format!("watermarks of {topic}/{p}: {e}"))?;
            let next = stored.get(&(topic.clone(), p)).copied().unwrap_or(0);
            let lag_records = (high - next).max(0);
            let lag_seconds = if lag_records == 0 {
                Some(0.0)
            } else {
                record_timestamp_ms(client_config, topic, p, next, deadline)
                    .map(|ts| ((now_ms - ts).max(0)) as f64 / 1000.0)
            };
            out.push(PartitionLag {
                topic: topic.clone(),
                dataset: dataset.clone(),
                partition: p,
                high_watermark: high,
                sink_next_offset: next,
                lag_records,
                lag_seconds,
            });
        }
    }
    Ok(out)
}

/// The broker timestamp (ms) of the record at `offset` (or the first after it) of
/// `topic`/`partition`, read before `deadline`.
fn record_timestamp_ms(
    client_config: &rdkafka::ClientConfig,
    topic: &str,
    partition: i32,
    offset: i64,
    deadline: std::time::Instant,
) -> Option<i64> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::Message as _;
    let mut config = client_config.clone();
    // Assigned, never subscribed: the group id is required but no offset is ever committed.
    config
        .set("group.id", "bohai-ops-lag-probe")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest");
    let consumer: BaseConsumer = config.create().ok()?;
    let mut list = rdkafka::TopicPartitionList::new();
    list.add_partition_offset(topic, partition, rdkafka::Offset::Offset(offset))
        .ok()?;
    consumer.assign(&list).ok()?;
    while std::time::Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) if m.topic() == topic && m.partition() == partition => {
                return m.timestamp().to_millis();
            }
            Some(Err(e)) => {
                tracing::debug!(topic, partition, error = %e, "cannot read the oldest unwritten record");
                return None;
            }
            _ => {}
        }
    }
    None
}

/// Gathers the whole overview. The broker is asked only for the lag; when it does not answer,
/// the rest is still returned.
pub async fn gather(
    config: &Config,
    db: &PgPool,
    registry: &Registry,
    lag_client: &LagClient,
) -> Result<Overview, OverviewError> {
    let feeds = feeds(db, registry, &config.ops).await?;
    let datasets = stats::dataset_stats(db, None).await?;
    let seals = SealsService::public(db, &config.pki)
        .coverage(Utc::now())
        .await
        .map_err(|e| OverviewError::Seals(e.to_string()))?;
    let licences = licence_stats(db).await?;
    let subscriptions = subscription_deliveries(db).await?;
    let cluster = crate::cluster::view(db).await?;
    let stopped_components = super::components::failures(db).await?;
    let (sink_lag, sink_lag_error) = match sink_lag(&config.kafka, db, registry, lag_client).await {
        Ok(l) => (l, None),
        Err(e) => (Vec::new(), Some(e)),
    };
    let mut feed_states: BTreeMap<String, usize> = FeedState::ALL
        .iter()
        .map(|s| (s.as_str().to_owned(), 0))
        .collect();
    for f in &feeds {
        *feed_states.entry(f.state.as_str().to_owned()).or_default() += 1;
    }
    Ok(Overview {
        at: Utc::now(),
        feed_states,
        feeds,
        datasets,
        sink_lag,
        sink_lag_error,
        seals,
        licences,
        subscriptions,
        cluster,
        stopped_components,
    })
}

/// Why the overview could not be gathered.
#[derive(Debug, thiserror::Error)]
pub enum OverviewError {
    /// The database failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// Seal coverage failed.
    #[error("seal coverage: {0}")]
    Seals(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lag_client_is_made_once_and_kept() {
        let lag = LagClient::default();
        let mut config = rdkafka::ClientConfig::new();
        // Made without connecting: no broker is needed to make it.
        config.set("bootstrap.servers", "127.0.0.1:1");
        let first = lag.client(&config).unwrap();
        let second = lag.client(&config).unwrap();
        assert!(Arc::ptr_eq(&first, &second), "a new client was made");
    }
}
