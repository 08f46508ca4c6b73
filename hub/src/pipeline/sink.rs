//! The repository sink: consumes every dataset topic and keeps the latest version of each
//! record in `repository_records`.
//!
//! Every instance runs the sink as a member of one Kafka consumer group, which spreads the
//! partitions of the dataset topics over the instances and moves them on join, leave and
//! failure (cooperative rebalancing, `cluster.sink_session`). An instance given a partition
//! claims it in the database and reads from the offset stored there; every batch holds its
//! partitions at the epochs they were claimed at ([`super::partitions`]), so that an instance
//! that lost a partition never commits a batch for it afterwards.
//!
//! Exactly once: the consumer positions live in PostgreSQL (`sink_offsets`) and are written in
//! the same transaction as the rows, so a crash at any moment resumes where the last committed
//! batch ended. Records a connector delivered twice (it crashed after delivering and before
//! storing its checkpoint) carry a stream and sequence number at or below the stream's mark
//! in `sink_stream_marks` and are skipped. Each batch reads the marks of its own streams in
//! its transaction, so the sink's memory does not grow with the number of streams (a table
//! connector makes one per row).
//!
//! One record never stops the others: when the database refuses a batch for a record's value
//! ([`Failure::Record`]), the batch is written again row by row, each row under a savepoint;
//! a row the database refuses is sent to the dead-letter topic with the database's reason,
//! kept in `rejected_records` and counted as refused, and the rest of the batch is written.
//! Transient failures are waited out; a failure of the component itself (a missing table, a
//! permission denied) stops the sink, recorded in `ops_component_failures` for `bohai status`,
//! the feeds endpoint and the dashboard, and leaves the rest of the hub running.
//!
//! Fetching overlaps writing: a task gathers the next batches from the broker while the
//! current ones are written; at most [`BATCHES_AHEAD`] batches wait per writer, so memory
//! stays bounded.
//!
//! Writing runs on [`WRITERS`] connections at once, each its own lane of partitions
//! (partition `p` of every topic in lane `p % WRITERS`), so that the database works on more
//! than one core: its upserts are most of the sink's cost. A partition's records stay in
//! order in their lane, and what each transaction commits (rows, the stream marks and
//! offsets of its own partitions) is what it alone writes; only the per-dataset counts are
//! shared, updated last, in dataset order, so that two lanes never wait for each other in a
//! cycle.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bohai_schemas::Registry;
use rdkafka::client::ClientContext;
use rdkafka::consumer::{
    BaseConsumer, Consumer, ConsumerContext, RebalanceProtocol, StreamConsumer,
};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{Offset, TopicPartitionList};
use sqlx::{Connection, PgPool};
use tokio::sync::{mpsc, watch};

use super::ingest::header;
use super::partitions::{self, Partition};
use super::{topics, AbortOnDrop, Backoff};
use crate::config::{ClusterConfig, KafkaConfig};
use crate::failure::Failure;
use crate::kafka::{self, client_config};
use crate::ops::components;
use crate::ops::metrics::{Component, Stage, PIPELINE};

/// Most records written in one transaction.
const MAX_BATCH: usize = 5000;
/// How long to gather records for a batch once the first one arrived.
const GATHER: Duration = Duration::from_millis(200);
/// Batches fetched and waiting, per writer, while one is written.
const BATCHES_AHEAD: usize = 1;
/// Transactions written at once, each for its own lane of partitions.
const WRITERS: usize = 2;

/// One record read from a dataset topic, owned.
#[derive(Debug)]
struct Delivered {
    dataset: Arc<str>,
    topic: Arc<str>,
    partition: i32,
    offset: i64,
    /// The epoch this instance held the partition at when it read the record.
    epoch: i64,
    stream: String,
    seq: i64,
    source: String,
    key: String,
    /// The record as JSON text, or why it is not JSON.
    payload: Result<String, String>,
    /// The payload's bytes when it is not JSON (kept for the dead-letter topic).
    raw: Vec<u8>,
}

impl Delivered {
    /// Where the record is, for people.
    fn origin(&self) -> String {
        format!(
            "{} partition {} offset {}",
            self.topic, self.partition, self.offset
        )
    }
}

/// The component name the sink's state is recorded under.
pub const COMPONENT: &str = "repository-sink";

/// Why the sink could not write a batch.
#[derive(Debug, thiserror::Error)]
enum SinkError {
    /// The database failed.
    #[error("the repository database failed: {0}")]
    Database(#[from] sqlx::Error),
    /// The dead-letter topic did not take a refused record.
    #[error("the dead-letter topic did not take a refused record: {0}")]
    DeadLetter(#[from] KafkaError),
}

impl SinkError {
    fn class(&self) -> Failure {
        match self {
            SinkError::Database(e) => Failure::of_database(e),
            // A refused record is dead-lettered as the bytes the broker already took once: a
            // refusal now (an authorization, say) is the component's, not the record's.
            SinkError::DeadLetter(e) => Failure::of_broker_for_own_record(e),
        }
    }
}

/// Runs the sink on this instance (`owner`, its identity in the cluster) until the task is
/// dropped. Broker and database outages are waited out; a failure that needs someone (a
/// missing table, a permission denied) stops the sink and is recorded for `bohai status`.
pub async fn run(
    kafka: KafkaConfig,
    cluster: ClusterConfig,
    db: PgPool,
    registry: Arc<Registry>,
    owner: Arc<str>,
) {
    let mut backoff = Backoff::default();
    loop {
        match run_once(&kafka, &cluster, &db, &registry, &owner).await {
            Ok(()) => return,
            // A record the database refuses is dealt with inside the batch; one that escapes
            // (a stream mark it cannot keep, say) would fail the same batch for ever: stop.
            Err(e) if e.class() != Failure::Transient => {
                tracing::error!(error = %e, "repository sink stopped: it cannot work until this is fixed");
                components::record_failure(&db, COMPONENT, &owner, &e.to_string()).await;
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "repository sink stopped; restarting");
                PIPELINE.retried(Component::Sink, Stage::Consume);
                backoff.wait().await;
            }
        }
    }
}

/// Why a run of the sink ended.
#[derive(Debug, thiserror::Error)]
enum RunError {
    /// Writing failed in a way that retrying the batch cannot mend.
    #[error(transparent)]
    Write(SinkError),
    /// Anything else on the way (topics, consumer, offsets): retried.
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl RunError {
    fn class(&self) -> Failure {
        match self {
            RunError::Write(e) => e.class(),
            RunError::Other(e) => match e.downcast_ref::<sqlx::Error>() {
                Some(db) => Failure::of_database(db),
                None => Failure::Transient,
            },
        }
    }
}

/// How long a claim may take to connect to the database, beyond the time its statement may
/// wait for locks.
const CLAIM_CONNECT_WAIT: Duration = Duration::from_secs(5);

/// The partitions this instance holds, with the epoch it claimed each at; kept by the
/// consumer's rebalance callback, read by the fetcher and the writers.
#[derive(Debug, Default)]
struct Held(Mutex<HashMap<String, HashMap<i32, i64>>>);

impl Held {
    fn epoch(&self, topic: &str, partition: i32) -> Option<i64> {
        let held = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        held.get(topic)?.get(&partition).copied()
    }

    fn set(&self, topic: &str, partition: i32, epoch: Option<i64>) {
        let mut held = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        match epoch {
            Some(e) => {
                held.entry(topic.to_owned())
                    .or_default()
                    .insert(partition, e);
            }
            None => {
                if let Some(parts) = held.get_mut(topic) {
                    parts.remove(&partition);
                }
            }
        }
    }

    fn clear(&self) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    fn count(&self) -> usize {
        let held = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        held.values().map(HashMap::len).sum()
    }
}

/// The sink's consumer context: claims each partition the group gives this instance before it
/// is read, from the offset stored with the rows.
struct SinkContext {
    db: PgPool,
    owner: Arc<str>,
    held: Arc<Held>,
    /// How long a claim waits for a batch still written under an earlier epoch.
    claim_wait: Duration,
    /// Why a claim failed: the run ends (leaving the group) and starts again.
    failed: watch::Sender<Option<String>>,
}

impl ClientContext for SinkContext {}

impl ConsumerContext for SinkContext {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        let cooperative = matches!(
            consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        );
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                let wanted: BTreeSet<Partition> = tpl
                    .elements()
                    .iter()
                    .map(|e| (e.topic().to_owned(), e.partition()))
                    .collect();
                // Nothing to claim (cooperative rebalances often add no partition here).
                let claimed = if wanted.is_empty() {
                    Ok(BTreeMap::new())
                } else {
                    self.claim(&wanted)
                };
                let claimed = match claimed {
                    Ok(claimed) => claimed,
                    Err(e) => {
                        // Nothing is read from partitions not claimed: the run ends and the
                        // group gives them to another instance (or to this one again).
                        let _ = self.failed.send(Some(format!(
                            "cannot claim the partitions the group gave this instance: {e}"
                        )));
                        return;
                    }
                };
                if !cooperative {
                    self.held.clear();
                }
                for ((topic, partition), c) in &claimed {
                    if let Err(e) =
                        tpl.set_partition_offset(topic, *partition, Offset::Offset(c.next_offset))
                    {
                        tracing::warn!(topic, partition, error = %e, "cannot set where to read the partition from");
                    }
                    self.held.set(topic, *partition, Some(c.epoch));
                }
                let assigned = if cooperative {
                    consumer.incremental_assign(tpl)
                } else {
                    consumer.assign(tpl)
                };
                match assigned {
                    Ok(()) => tracing::info!(
                        taken = claimed.len(),
                        held = self.held.count(),
                        "the repository sink took partitions"
                    ),
                    Err(e) => {
                        let _ = self
                            .failed
                            .send(Some(format!("cannot read the partitions taken: {e}")));
                    }
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                for e in tpl.elements() {
                    self.held.set(e.topic(), e.partition(), None);
                }
                if !cooperative {
                    self.held.clear();
                }
                let unassigned = if cooperative {
                    consumer.incremental_unassign(tpl)
                } else {
                    consumer.unassign()
                };
                if let Err(e) = unassigned {
                    tracing::warn!(error = %e, "cannot give partitions back");
                }
                tracing::info!(
                    given_back = tpl.count(),
                    held = self.held.count(),
                    "the repository sink gave partitions back"
                );
            }
            other => {
                tracing::error!(error = ?other, "the sink's consumer group failed to rebalance");
            }
        }
    }
}

impl SinkContext {
    /// [`partitions::claim`], from the consumer's callback (which must not wait on the
    /// runtime it is called from): on a thread of its own, with a connection of its own.
    fn claim(
        &self,
        wanted: &BTreeSet<Partition>,
    ) -> Result<BTreeMap<Partition, partitions::Claimed>, sqlx::Error> {
        let options = self.db.connect_options();
        let wait_ms = self.claim_wait.as_millis().max(1).to_string();
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .map_err(sqlx::Error::Io)?;
                    // The consumer waits for this callback: a database that does not answer
                    // (packets dropped, not refused) ends the claim, and the run, in bounded
                    // time rather than holding the consumer for ever.
                    let limit = self.claim_wait + CLAIM_CONNECT_WAIT;
                    runtime.block_on(async {
                        let claiming = async {
                            let mut conn = sqlx::PgConnection::connect_with(&options).await?;
                            sqlx::query(
                                "SELECT set_config('lock_timeout', $1, false),
                                        set_config('statement_timeout', $1, false)",
                            )
                            .bind(&wait_ms)
                            .execute(&mut conn)
                            .await?;
                            let claimed = partitions::claim(&mut conn, &self.owner, wanted).await;
                            let _ = conn.close().await;
                            claimed
                        };
                        tokio::time::timeout(limit, claiming)
                            .await
                            .unwrap_or_else(|_| {
                                Err(sqlx::Error::Io(std::io::Error::new(
                                    std::io::ErrorKind::TimedOut,
                                    format!(
                                        "the database did not answer the claim within {limit:?}"
                                    ),
                                )))
                            })
                    })
                })
                .join()
                .unwrap_or_else(|_| {
                    Err(sqlx::Error::Protocol(
                        "the claiming thread panicked".to_owned(),
                    ))
                })
        })
    }
}

async fn run_once(
    kafka: &KafkaConfig,
    cluster: &ClusterConfig,
    db: &PgPool,
    registry: &Registry,
    owner: &Arc<str>,
) -> Result<(), RunError> {
    topics::ensure(kafka, registry)
        .await
        .map_err(anyhow::Error::from)?;
    let topic_to_dataset: HashMap<Arc<str>, Arc<str>> = registry
        .datasets
        .iter()
        .map(|d| {
            (
                topics::dataset_topic(kafka, &d.id).into(),
                d.id.as_str().into(),
            )
        })
        .collect();
    let session = cluster.sink_session;
    let held = Arc::new(Held::default());
    let (failed, mut claim_failed) = watch::channel(None);
    let context = SinkContext {
        db: db.clone(),
        owner: Arc::clone(owner),
        held: Arc::clone(&held),
        claim_wait: session * 2,
        failed,
    };
    let consumer: StreamConsumer<SinkContext> = client_config(kafka)
        .set("group.id", kafka::topic_name(kafka, "repository-sink"))
        .set("partition.assignment.strategy", "cooperative-sticky")
        .set("session.timeout.ms", session.as_millis().to_string())
        .set(
            "heartbeat.interval.ms",
            (session / 3).as_millis().clamp(100, 3000).to_string(),
        )
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", "100")
        .create_with_context(context)
        .map_err(anyhow::Error::from)?;
    let dead_letters = DeadLetters {
        producer: client_config(kafka)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .create()
            .map_err(anyhow::Error::from)?,
        topic: topics::dead_letter_topic(kafka),
        departments: registry
            .datasets
            .iter()
            .map(|d| (d.id.clone(), d.department.clone()))
            .collect(),
    };
    let subscribed: Vec<&str> = topic_to_dataset.keys().map(|t| &**t).collect();
    consumer
        .subscribe(&subscribed)
        .map_err(anyhow::Error::from)?;
    tracing::info!(instance = %owner, topics = subscribed.len(), "repository sink joined its consumer group");
    components::clear_failure(db, COMPONENT).await;
    let (lanes, nexts): (Vec<_>, Vec<_>) = (0..WRITERS)
        .map(|_| mpsc::channel::<Vec<Delivered>>(BATCHES_AHEAD))
        .unzip();
    let fetch_held = Arc::clone(&held);
    let mut fetcher = AbortOnDrop(tokio::spawn(async move {
        gather(&consumer, &topic_to_dataset, &fetch_held, &lanes).await
    }));
    let dead_letters = Arc::new(dead_letters);
    let writer = Writer {
        db: db.clone(),
        owner: Arc::clone(owner),
        held,
        dead_letters,
        idle_limit: session,
    };
    // Dropped (on a failure, or when the sink is stopped), the set aborts its writers: their
    // open transactions are rolled back.
    let mut writers = tokio::task::JoinSet::new();
    let mut watching_claims = true;
    for mut next in nexts {
        let writer = writer.clone();
        writers.spawn(async move {
            while let Some(batch) = next.recv().await {
                writer.write_with_retries(batch).await?;
            }
            Ok::<(), RunError>(())
        });
    }
    loop {
        tokio::select! {
            // A writer ends on a failure, or when the fetcher stopped.
            ended = writers.join_next() => match ended {
                Some(ended) => ended.map_err(anyhow::Error::from)??,
                None => break,
            },
            changed = claim_failed.changed(), if watching_claims => match changed {
                Ok(()) => {
                    if let Some(why) = claim_failed.borrow().clone() {
                        return Err(RunError::Other(anyhow::anyhow!(why)));
                    }
                }
                // The consumer is gone (the fetcher stopped): the writers end next.
                Err(_) => watching_claims = false,
            },
        }
    }
    // The fetcher stopped: say why.
    Ok((&mut fetcher.0).await.map_err(anyhow::Error::from)??)
}

/// What a writer of the sink needs; one per lane.
#[derive(Clone)]
struct Writer {
    db: PgPool,
    owner: Arc<str>,
    held: Arc<Held>,
    dead_letters: Arc<DeadLetters>,
    /// How long a writing transaction may sit idle or wait on a lock (`cluster.sink_session`):
    /// a paused instance's open transaction would otherwise keep its partitions' rows locked,
    /// and their new owner from claiming them. Also how long writes may fail before the sink
    /// leaves the group.
    idle_limit: Duration,
}

impl Writer {
    /// Writes one batch, waiting out transient failures. Records of partitions this instance
    /// no longer holds (or holds at a later epoch than when it read them) are left to their
    /// owner.
    ///
    /// A database this instance cannot write to for `idle_limit` (cut off from it, say) ends
    /// the run: the sink leaves the consumer group, so that instances that can write take its
    /// partitions, and joins again after a back-off.
    async fn write_with_retries(&self, mut batch: Vec<Delivered>) -> Result<(), RunError> {
        let mut backoff = Backoff::default();
        let mut failing_since: Option<tokio::time::Instant> = None;
        loop {
            let before = batch.len();
            batch.retain(|d| self.held.epoch(&d.topic, d.partition) == Some(d.epoch));
            if batch.len() < before {
                tracing::info!(
                    records = before - batch.len(),
                    "records of partitions this instance gave up are left to their new owner"
                );
            }
            if batch.is_empty() {
                return Ok(());
            }
            match write_batch(self, &batch).await {
                Ok(Written::All) => return Ok(()),
                Ok(Written::NoneMoved(moved)) => {
                    // Taken by another instance while the group still gives them to this one
                    // (the callback did not take them back): a claim that reached the database
                    // after the group moved on, or this instance was dropped from the group
                    // without hearing it yet. Reading on would leave them unread for as long
                    // as the group keeps them here; joining again makes the group give them
                    // out afresh, and whoever gets them claims them at a new epoch.
                    let still_given: BTreeSet<&Partition> = moved
                        .iter()
                        .filter(|(topic, partition)| {
                            batch.iter().any(|d| {
                                &*d.topic == topic.as_str()
                                    && d.partition == *partition
                                    && self.held.epoch(&d.topic, d.partition) == Some(d.epoch)
                            })
                        })
                        .collect();
                    if !still_given.is_empty() {
                        return Err(RunError::Other(anyhow::anyhow!(
                            "partitions {still_given:?} were claimed by another instance while the consumer group still gave them to this one: joining the group again"
                        )));
                    }
                    tracing::info!(partitions = ?moved, "partitions moved to another instance before this batch was written: their records are left to it");
                    batch.retain(|d| !moved.contains(&(d.topic.to_string(), d.partition)));
                }
                Err(e) if e.class() == Failure::Transient => {
                    let since = *failing_since.get_or_insert_with(tokio::time::Instant::now);
                    if since.elapsed() >= self.idle_limit {
                        return Err(RunError::Other(anyhow::anyhow!(
                            "cannot write the repository for {:.0?} ({e}): leaving the consumer group so that other instances write this instance's partitions",
                            since.elapsed()
                        )));
                    }
                    tracing::warn!(error = %e, records = batch.len(), "cannot write the repository yet; retrying");
                    PIPELINE.retried(Component::Sink, Stage::RepositoryWrite);
                    backoff.wait().await;
                }
                Err(e) => return Err(RunError::Write(e)),
            }
        }
    }
}

/// What became of a batch.
enum Written {
    /// Every record was written.
    All,
    /// Nothing was written: these partitions of the batch are no longer this instance's.
    NoneMoved(BTreeSet<Partition>),
}

/// The dead-letter topic, for records the repository refused.
struct DeadLetters {
    producer: FutureProducer,
    topic: String,
    /// Dataset id → owning department.
    departments: HashMap<String, String>,
}

impl DeadLetters {
    /// Sends each refused record with its reasons and waits until the broker took them all.
    async fn send(&self, refused: &[Refused<'_>]) -> Result<(), KafkaError> {
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let mut pending = Vec::with_capacity(refused.len());
        for r in refused {
            let d = r.delivered;
            let mut position = String::new();
            header::write_position(&mut position, u64::try_from(d.seq).unwrap_or(0), &d.stream);
            let origin = d.origin();
            let reasons = r.reasons.to_string();
            let department = self.departments.get(&*d.dataset).map_or("", String::as_str);
            let headers = OwnedHeaders::new_with_capacity(8)
                .insert(h(header::DATASET, &d.dataset))
                .insert(h(header::DEPARTMENT, department))
                .insert(h(header::SOURCE, &d.source))
                .insert(h(header::POSITION, &position))
                .insert(h(header::INGEST_TIME, &now))
                .insert(h(header::ORIGIN, &origin))
                .insert(h(header::REASONS, &reasons));
            let payload: &[u8] = match &d.payload {
                Ok(text) => text.as_bytes(),
                Err(_) => &d.raw,
            };
            let record = FutureRecord::to(&self.topic)
                .key(d.stream.as_str())
                .payload(payload)
                .headers(headers);
            pending.push(self.producer.send_result(record).map_err(|(e, _)| e)?);
        }
        for delivery in pending {
            match delivery.await {
                Ok(Ok(_)) => {}
                Ok(Err((e, _))) => return Err(e),
                Err(_) => return Err(KafkaError::Canceled),
            }
        }
        Ok(())
    }
}

fn h<'a>(key: &'a str, value: &'a str) -> Header<'a, &'a str> {
    Header {
        key,
        value: Some(value),
    }
}

/// Fetches for ever, in rounds: waits for a first record, then gathers more for up to
/// [`GATHER`], each into the batch of its partition's lane; a batch of [`MAX_BATCH`] records
/// goes to its writer at once, the others at the end of the round. A record of a partition
/// this instance does not hold (given back since it was fetched) is passed over. Returns when
/// a writer is gone.
async fn gather(
    consumer: &StreamConsumer<SinkContext>,
    topic_to_dataset: &HashMap<Arc<str>, Arc<str>>,
    held: &Held,
    lanes: &[mpsc::Sender<Vec<Delivered>>],
) -> anyhow::Result<()> {
    let lane_of = |d: &Delivered| usize::try_from(d.partition).unwrap_or(0) % lanes.len();
    let mut batches: Vec<Vec<Delivered>> = lanes.iter().map(|_| Vec::new()).collect();
    loop {
        let Some(first) = own(&consumer.recv().await?, topic_to_dataset, held) else {
            continue;
        };
        batches[lane_of(&first)].push(first);
        let deadline = tokio::time::Instant::now() + GATHER;
        loop {
            let delivered = match tokio::time::timeout_at(deadline, consumer.recv()).await {
                Ok(Ok(m)) => match own(&m, topic_to_dataset, held) {
                    Some(d) => d,
                    None => continue,
                },
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "consumer error");
                    break;
                }
                Err(_) => break,
            };
            let lane = lane_of(&delivered);
            batches[lane].push(delivered);
            if batches[lane].len() >= MAX_BATCH {
                let batch = std::mem::replace(&mut batches[lane], Vec::with_capacity(MAX_BATCH));
                if lanes[lane].send(batch).await.is_err() {
                    return Ok(());
                }
            }
        }
        for (lane, batch) in lanes.iter().zip(batches.iter_mut()) {
            if !batch.is_empty() && lane.send(std::mem::take(batch)).await.is_err() {
                return Ok(());
            }
        }
    }
}

/// The record `m`, owned, with the epoch its partition is held at; `None` when this instance
/// does not hold the partition.
fn own(
    m: &BorrowedMessage<'_>,
    topic_to_dataset: &HashMap<Arc<str>, Arc<str>>,
    held: &Held,
) -> Option<Delivered> {
    let epoch = held.epoch(m.topic(), m.partition())?;
    let mut position = None;
    let mut stream = None;
    let mut seq = None;
    let mut source = None;
    if let Some(headers) = m.headers() {
        for h in headers.iter() {
            let value = h.value.and_then(|v| std::str::from_utf8(v).ok());
            match h.key {
                header::POSITION => position = value.and_then(header::parse_position),
                header::STREAM => stream = value,
                header::SEQ => seq = value.and_then(|v| v.parse::<i64>().ok()),
                header::SOURCE => source = value.map(str::to_owned),
                _ => {}
            }
        }
    }
    let (topic, dataset) = topic_to_dataset
        .get_key_value(m.topic())
        .map(|(t, d)| (Arc::clone(t), Arc::clone(d)))
        .unwrap_or_else(|| (m.topic().into(), "".into()));
    // Records written before the position header carry the stream and sequence number in two
    // headers. A record from a producer other than the hub: its own position is its identity.
    let (stream, seq) = match (position, stream, seq) {
        (Some((q, s)), _, _) | (None, Some(s), Some(q)) => (s.to_owned(), q),
        _ => (format!("kafka:{}:{}", topic, m.partition()), m.offset()),
    };
    let (payload, raw) = match m.payload() {
        Some(p) => match serde_json::from_slice::<serde::de::IgnoredAny>(p) {
            // Valid JSON is valid UTF-8.
            Ok(_) => (Ok(String::from_utf8_lossy(p).into_owned()), Vec::new()),
            Err(e) => (
                Err(format!("payload is not JSON: {e}")),
                p[..p.len().min(bohai_connectors::RAW_KEEP_LIMIT)].to_vec(),
            ),
        },
        None => (Err("empty payload".to_owned()), Vec::new()),
    };
    Some(Delivered {
        dataset,
        partition: m.partition(),
        offset: m.offset(),
        epoch,
        key: m
            .key()
            .map(|k| String::from_utf8_lossy(k).into_owned())
            .unwrap_or_default(),
        source: source.unwrap_or_else(|| "kafka".to_owned()),
        topic,
        stream,
        seq,
        payload,
        raw,
    })
}

/// The latest state of one primary key within a batch.
#[derive(Debug)]
struct Upsert<'a> {
    data: &'a str,
    versions: i32,
    source: &'a str,
    /// The delivery that carried `data`.
    delivered: &'a Delivered,
    /// The earlier versions of the key in this batch, oldest first: written instead, latest
    /// first, when the repository refuses the latest.
    earlier: Vec<(&'a str, &'a Delivered)>,
}

/// What one batch writes into one dataset.
#[derive(Debug, Default)]
struct DatasetWrites<'a> {
    /// The latest state per primary key.
    upserts: HashMap<&'a str, Upsert<'a>>,
    /// Primary keys in order of first appearance.
    order: Vec<&'a str>,
    /// Deliveries skipped as already applied.
    duplicates: i64,
    /// Deliveries that are not JSON, refused before any write.
    refused: i64,
}

/// A record the repository will not keep, with the reasons.
#[derive(Debug)]
struct Refused<'a> {
    delivered: &'a Delivered,
    /// `[{pointer, rule, message}]`, as rejected records carry them.
    reasons: serde_json::Value,
}

/// A stream's mark in one topic partition.
type MarkKey<'a> = (&'a str, &'a str, i32);

/// The marks of the batch's streams, read in the batch's transaction.
async fn load_marks(
    tx: &mut sqlx::PgConnection,
    batch: &[Delivered],
) -> Result<HashMap<(String, String, i32), i64>, sqlx::Error> {
    let mut streams: Vec<&str> = batch.iter().map(|d| d.stream.as_str()).collect();
    streams.sort_unstable();
    streams.dedup();
    Ok(sqlx::query_as::<_, (String, String, i32, i64)>(
        "SELECT stream, topic, partition, last_seq FROM sink_stream_marks WHERE stream = ANY($1)",
    )
    .bind(&streams)
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .map(|(s, t, p, q)| ((s, t, p), q))
    .collect())
}

/// The upsert of many rows of one dataset; also used for one row at a time.
const UPSERT: &str = "WITH up AS (
       INSERT INTO repository_records (dataset, pk, data, version, source)
       SELECT $1, u.pk, u.data::jsonb, u.n, u.source
       FROM UNNEST($2::text[], $3::text[], $4::int[], $5::text[]) AS u(pk, data, n, source)
       ON CONFLICT (dataset, pk) DO UPDATE SET data = EXCLUDED.data,
         version = repository_records.version + EXCLUDED.version,
         updated_at = now(), source = EXCLUDED.source,
         change_xid = pg_current_xact_id()
       RETURNING (xmax = 0) AS inserted)
     SELECT count(*) FILTER (WHERE inserted) FROM up";

/// Upserts the rows of `keys`; how many were new.
async fn upsert(
    tx: &mut sqlx::PgConnection,
    dataset: &str,
    keys: &[&str],
    upserts: &HashMap<&str, Upsert<'_>>,
) -> Result<i64, sqlx::Error> {
    let data: Vec<&str> = keys.iter().map(|k| upserts[k].data).collect();
    let versions: Vec<i32> = keys.iter().map(|k| upserts[k].versions).collect();
    let sources: Vec<&str> = keys.iter().map(|k| upserts[k].source).collect();
    upsert_rows(tx, dataset, keys, &data, &versions, &sources).await
}

/// Upserts rows given column by column; how many were new.
async fn upsert_rows(
    tx: &mut sqlx::PgConnection,
    dataset: &str,
    keys: &[&str],
    data: &[&str],
    versions: &[i32],
    sources: &[&str],
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(UPSERT)
        .bind(dataset)
        .bind(keys)
        .bind(data)
        .bind(versions)
        .bind(sources)
        .fetch_one(&mut *tx)
        .await
}

/// A record the repository refused, with the database's reason, for the dead-letter topic.
fn refusal<'a>(dataset: &str, key: &str, delivered: &'a Delivered, e: &sqlx::Error) -> Refused<'a> {
    let message = match e {
        sqlx::Error::Database(db) => format!(
            "the repository refused the record: {} (SQLSTATE {})",
            db.message(),
            db.code().unwrap_or_default()
        ),
        other => format!("the repository refused the record: {other}"),
    };
    tracing::error!(dataset, key, origin = %delivered.origin(), reason = %message, "a record the repository refused goes to the dead-letter topic");
    Refused {
        delivered,
        reasons: serde_json::json!([{
            "pointer": "", "rule": "repository_refused", "message": message,
        }]),
    }
}

/// Upserts the rows of one dataset: all at once, or, when the database refuses a record's
/// value, row by row under savepoints, so that only the rows it refuses are left out (and
/// returned with the database's reason). How many rows were new.
async fn upsert_dataset<'a>(
    tx: &mut sqlx::PgConnection,
    dataset: &str,
    writes: &DatasetWrites<'a>,
    refused: &mut Vec<Refused<'a>>,
) -> Result<(i64, i64), sqlx::Error> {
    sqlx::query("SAVEPOINT dataset_rows")
        .execute(&mut *tx)
        .await?;
    match upsert(tx, dataset, &writes.order, &writes.upserts).await {
        Ok(inserted) => {
            sqlx::query("RELEASE SAVEPOINT dataset_rows")
                .execute(&mut *tx)
                .await?;
            return Ok((inserted, 0));
        }
        Err(e) if Failure::of_database(&e) == Failure::Record => {
            tracing::warn!(dataset, error = %e, "the repository refused a record; writing the batch row by row");
            sqlx::query("ROLLBACK TO SAVEPOINT dataset_rows")
                .execute(&mut *tx)
                .await?;
        }
        Err(e) => return Err(e),
    }
    let (mut inserted, mut refused_versions) = (0, 0);
    for key in &writes.order {
        sqlx::query("SAVEPOINT one_row").execute(&mut *tx).await?;
        match upsert(tx, dataset, std::slice::from_ref(key), &writes.upserts).await {
            Ok(n) => {
                inserted += n;
                sqlx::query("RELEASE SAVEPOINT one_row")
                    .execute(&mut *tx)
                    .await?;
            }
            Err(e) if Failure::of_database(&e) == Failure::Record => {
                sqlx::query("ROLLBACK TO SAVEPOINT one_row")
                    .execute(&mut *tx)
                    .await?;
                let u = &writes.upserts[key];
                refused.push(refusal(dataset, key, u.delivered, &e));
                refused_versions += 1;
                // The key's state is then its latest version the repository takes, as if
                // the refused one had never come: earlier versions are tried, latest first.
                let mut versions = u.versions - 1;
                for (data, delivered) in u.earlier.iter().rev() {
                    sqlx::query("SAVEPOINT one_row").execute(&mut *tx).await?;
                    let sources = [delivered.source.as_str()];
                    match upsert_rows(tx, dataset, &[key], &[data], &[versions], &sources).await {
                        Ok(n) => {
                            inserted += n;
                            sqlx::query("RELEASE SAVEPOINT one_row")
                                .execute(&mut *tx)
                                .await?;
                            break;
                        }
                        Err(e) if Failure::of_database(&e) == Failure::Record => {
                            sqlx::query("ROLLBACK TO SAVEPOINT one_row")
                                .execute(&mut *tx)
                                .await?;
                            refused.push(refusal(dataset, key, delivered, &e));
                            refused_versions += 1;
                            versions -= 1;
                        }
                        Err(e) => return Err(e),
                    }
                }
            }
            Err(e) => return Err(e),
        }
    }
    Ok((inserted, refused_versions))
}

/// Writes one batch in one transaction: the rows, the counts, the stream marks it advanced
/// and the consumer offsets. Records the repository refuses go to the dead-letter topic
/// before the transaction commits (at least once: a crash in between sends them again).
async fn write_batch(writer: &Writer, batch: &[Delivered]) -> Result<Written, SinkError> {
    let mut tx = writer.db.begin().await?;
    let limit_ms = writer.idle_limit.as_millis().max(1).to_string();
    sqlx::query(
        "SELECT set_config('idle_in_transaction_session_timeout', $1, true),
                set_config('lock_timeout', $1, true)",
    )
    .bind(limit_ms)
    .execute(&mut *tx)
    .await?;
    let epochs: BTreeMap<(&str, i32), i64> = batch
        .iter()
        .map(|d| ((&*d.topic, d.partition), d.epoch))
        .collect();
    let moved = partitions::hold(&mut tx, &writer.owner, &epochs).await?;
    if !moved.is_empty() {
        return Ok(Written::NoneMoved(moved));
    }
    let stored = load_marks(&mut tx, batch).await?;
    let mut marks: HashMap<MarkKey<'_>, i64> = HashMap::new();
    // dataset -> (pk -> upsert, order of first appearance), duplicates skipped
    let mut per_dataset: HashMap<&str, DatasetWrites<'_>> = HashMap::new();
    let mut offsets: BTreeMap<(&str, i32), i64> = BTreeMap::new();
    let mut refused: Vec<Refused<'_>> = Vec::new();
    for d in batch {
        offsets.insert((&d.topic, d.partition), d.offset + 1);
        let mark_key = (d.stream.as_str(), &*d.topic, d.partition);
        let mark = match marks.get(&mark_key) {
            Some(q) => *q,
            None => stored
                .get(&(d.stream.clone(), d.topic.to_string(), d.partition))
                .copied()
                .unwrap_or(-1),
        };
        let entry = per_dataset.entry(&d.dataset).or_default();
        if d.seq <= mark {
            entry.duplicates += 1;
            continue;
        }
        marks.insert(mark_key, d.seq);
        match &d.payload {
            Ok(data) => match entry.upserts.get_mut(d.key.as_str()) {
                Some(u) => {
                    u.earlier.push((u.data, u.delivered));
                    u.data = data;
                    u.versions += 1;
                    u.source = &d.source;
                    u.delivered = d;
                }
                None => {
                    entry.order.push(&d.key);
                    entry.upserts.insert(
                        &d.key,
                        Upsert {
                            data,
                            versions: 1,
                            source: &d.source,
                            delivered: d,
                            earlier: Vec::new(),
                        },
                    );
                }
            },
            Err(why) => {
                tracing::error!(origin = %d.origin(), reason = %why, "a record on a dataset topic is not JSON; it goes to the dead-letter topic");
                entry.refused += 1;
                refused.push(Refused {
                    delivered: d,
                    reasons: serde_json::json!([{"pointer": "", "rule": "json_syntax", "message": why}]),
                });
            }
        }
    }

    // Datasets in order: the counts rows are locked in that order (see the module's doc).
    let mut datasets: Vec<(&str, &DatasetWrites<'_>)> =
        per_dataset.iter().map(|(d, w)| (*d, w)).collect();
    datasets.sort_unstable_by_key(|(d, _)| *d);
    let mut counts = Vec::with_capacity(datasets.len());
    for (dataset, writes) in datasets {
        let total: i64 = writes.upserts.values().map(|u| i64::from(u.versions)).sum();
        let (inserted, refused_versions) = if writes.order.is_empty() {
            (0, 0)
        } else {
            upsert_dataset(&mut tx, dataset, writes, &mut refused).await?
        };
        counts.push((
            dataset,
            inserted,
            total - inserted - refused_versions,
            writes.duplicates,
            writes.refused + refused_versions,
        ));
    }
    for r in &refused {
        let d = r.delivered;
        sqlx::query(
            "INSERT INTO rejected_records (dataset, department, source, stream, seq, origin, reasons, raw)
             SELECT $1, department, $2, $3, $4, $5, $6, $7 FROM datasets WHERE id = $1
             ON CONFLICT (stream, seq) DO NOTHING",
        )
        .bind(&*d.dataset)
        .bind(&d.source)
        .bind(&d.stream)
        .bind(d.seq)
        .bind(d.origin())
        .bind(&r.reasons)
        .bind(match &d.payload {
            Ok(text) => text.as_bytes(),
            Err(_) => d.raw.as_slice(),
        })
        .execute(&mut *tx)
        .await?;
    }
    let (streams, mark_topics, mark_parts, seqs): (Vec<&str>, Vec<&str>, Vec<i32>, Vec<i64>) = {
        let mut a = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for ((s, t, p), q) in &marks {
            a.0.push(*s);
            a.1.push(*t);
            a.2.push(*p);
            a.3.push(*q);
        }
        a
    };
    sqlx::query(
        "INSERT INTO sink_stream_marks (stream, topic, partition, last_seq)
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::int[], $4::bigint[])
         ON CONFLICT (stream, topic, partition) DO UPDATE SET last_seq = EXCLUDED.last_seq",
    )
    .bind(&streams)
    .bind(&mark_topics)
    .bind(&mark_parts)
    .bind(&seqs)
    .execute(&mut *tx)
    .await?;
    partitions::advance(&mut tx, &offsets).await?;
    if !refused.is_empty() {
        writer.dead_letters.send(&refused).await?;
    }
    // Last before the commit: another lane's batch of the same dataset waits for this row.
    for (dataset, inserted, updated, duplicates, refused_n) in counts {
        sqlx::query(
            "INSERT INTO sink_counts (dataset, inserted_total, updated_total, duplicates_skipped_total, refused_total, last_write_at)
             VALUES ($1, $2, $3, $4, $5, now())
             ON CONFLICT (dataset) DO UPDATE SET
               inserted_total = sink_counts.inserted_total + EXCLUDED.inserted_total,
               updated_total = sink_counts.updated_total + EXCLUDED.updated_total,
               duplicates_skipped_total = sink_counts.duplicates_skipped_total + EXCLUDED.duplicates_skipped_total,
               refused_total = sink_counts.refused_total + EXCLUDED.refused_total,
               last_write_at = now()",
        )
        .bind(dataset)
        .bind(inserted)
        .bind(updated)
        .bind(duplicates)
        .bind(refused_n)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(Written::All)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A database that accepts connections and never answers (packets dropped on the way,
    /// not refused) ends a claim in bounded time: the consumer's callback waits for it.
    #[test]
    fn a_claim_on_a_database_that_never_answers_ends() {
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = silent.local_addr().unwrap();
        // Held open, never read: the connection's startup message gets no answer.
        let _accepted = std::thread::spawn(move || silent.accept().map(|(conn, _)| conn));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let db = runtime.block_on(async {
            sqlx::postgres::PgPoolOptions::new()
                .connect_lazy(&format!("postgres://bohai@{addr}/bohai"))
                .unwrap()
        });
        let (failed, _) = watch::channel(None);
        let context = SinkContext {
            db,
            owner: "hub-a".into(),
            held: Arc::default(),
            claim_wait: Duration::from_millis(100),
            failed,
        };
        let (done, outcome) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let wanted = BTreeSet::from([("bohai.residents".to_owned(), 0)]);
            let _ = done.send(context.claim(&wanted).map(|c| c.len()));
        });
        let claimed = outcome
            .recv_timeout(CLAIM_CONNECT_WAIT * 4)
            .expect("the claim still waits on a database that never answers");
        let error = claimed.expect_err("claimed on a database that never answers");
        assert!(error.to_string().contains("did not answer"), "{error}");
    }
}
