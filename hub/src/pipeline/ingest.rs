//! The ingest step shared by every connector and by HTTP push: validate a batch, deliver it
//! to the broker, then record it durably.
//!
//! The two halves are separate so that each is retried on its own: a broker that is away makes
//! [`Ingestor::deliver`] fail (the caller waits and delivers the batch again; the sink skips
//! what it already applied, by stream and sequence number), and a database that is away makes
//! [`Ingestor::commit`] fail (the caller waits and commits again, without producing twice).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bohai_connectors::{Batch, Body, ReadFailure, SourceRecord};
use bohai_schemas::{Dataset, Registry, Violation};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientContext;
use serde::Serialize;
use serde_json::Value;
use sqlx::PgPool;
use utoipa::ToSchema;

use super::leases::{StreamLease, StreamLeases};
use super::topics;
use crate::config::KafkaConfig;
use crate::failure::Failure;
use crate::kafka::{client_config, BrokerError, PolledProducer};
use crate::ops::metrics::PIPELINE;

/// Header names of records on the dataset and dead-letter topics.
pub mod header {
    /// Dataset id.
    pub const DATASET: &str = "bohai-dataset";
    /// Schema version the record was validated against.
    pub const SCHEMA_VERSION: &str = "bohai-schema-version";
    /// Publishing department's code.
    pub const DEPARTMENT: &str = "bohai-department";
    /// Connector name, or `http-push`.
    pub const SOURCE: &str = "bohai-source";
    /// The record's place in its source: `<seq>@<stream>`, its sequence number in its
    /// stream (a file with its fingerprint, a table row, an HTTP request). One header rather
    /// than two: fewer bytes and less header handling per record.
    pub const POSITION: &str = "bohai-position";
    /// Stream of a record written before [`POSITION`] existed; read, never written.
    pub const STREAM: &str = "bohai-stream";
    /// Sequence number of a record written before [`POSITION`] existed; read, never written.
    pub const SEQ: &str = "bohai-seq";
    /// When the hub ingested the record (RFC 3339).
    pub const INGEST_TIME: &str = "bohai-ingest-time";
    /// Where in the source the record came from.
    pub const ORIGIN: &str = "bohai-origin";
    /// Dead-letter only: the reasons, a JSON array of `{pointer, rule, message}`.
    pub const REASONS: &str = "bohai-reasons";

    /// Writes the value of [`POSITION`] for `seq` in `stream` into `value`, replacing what
    /// it held; without the formatting machinery, as it is done for every record.
    pub fn write_position(value: &mut String, seq: u64, stream: &str) {
        value.clear();
        value.push_str(itoa::Buffer::new().format(seq));
        value.push('@');
        value.push_str(stream);
    }

    /// The sequence number and stream of a [`POSITION`] value.
    pub fn parse_position(value: &str) -> Option<(i64, &str)> {
        let (seq, stream) = value.split_once('@')?;
        Some((seq.parse().ok()?, stream))
    }
}

/// Why a batch could not be delivered or recorded.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The broker did not take the batch.
    #[error("delivering to the broker failed: {0}{hint}", hint = broker_hint(.0))]
    Broker(#[source] KafkaError),
    /// The database did not record the batch.
    #[error("recording the batch in the database failed: {0}")]
    Database(#[from] sqlx::Error),
    /// The task recording delivered batches ended without saying why (it was aborted).
    #[error("the task recording delivered batches stopped")]
    Stopped,
    /// The producer was replaced while batches handed to the old one are still in flight:
    /// they must be settled before more is sent.
    #[error("the ingest producer was replaced while batches were in flight")]
    ProducerReplaced,
}

impl IngestError {
    /// What the failure means for the loop that met it. The broker's: one that may pass
    /// passes; a refusal is never one record's fault, because every record the hub accepts
    /// fits the topics it makes, and the broker refuses a whole produce batch at a time (a
    /// record refused with it may be innocent, and sending it again after the records that
    /// followed it would reorder its stream): it needs someone, and the batch stays unrecorded
    /// so that nothing is lost. The database's are classed by their code.
    pub fn class(&self) -> Failure {
        match self {
            IngestError::Broker(e) => Failure::of_broker_for_own_record(e),
            IngestError::Database(e) => Failure::of_database(e),
            IngestError::Stopped => Failure::Component,
            // Waiting for the batches in flight mends it (the connector does so).
            IngestError::ProducerReplaced => Failure::Transient,
        }
    }
}

/// What to do about a broker's refusal, where the hub knows.
fn broker_hint(error: &KafkaError) -> &'static str {
    match error.rdkafka_error_code() {
        Some(RDKafkaErrorCode::MessageSizeTooLarge) => {
            " (the topic takes smaller record batches than the hub sends: its max.message.bytes must be at least 3 MiB, as on the topics the hub creates)"
        }
        _ => "",
    }
}

/// What a committed batch came from.
#[derive(Debug, Clone, Copy)]
pub enum Commit<'a> {
    /// A connector: its checkpoint (the batch's) is stored under its name, under `lease`
    /// when it runs as a duty of `bohai serve` (a holder that lost it commits nothing).
    Connector {
        /// The connector's lease on its duty.
        lease: Option<&'a crate::cluster::Lease>,
        /// An earlier attempt to commit this batch failed: the database may have made it and
        /// only its answer been lost, which the stored checkpoint tells.
        again: bool,
    },
    /// A piece of an HTTP push; `progress` is what to store for its Idempotency-Key, if it
    /// had one.
    Push {
        /// The request's progress after this piece.
        progress: Option<PushProgress<'a>>,
    },
}

/// How far an HTTP push with an Idempotency-Key got: stored with each committed piece of
/// it, read back by a retry (`http_push_requests`).
#[derive(Debug, Clone, Copy)]
pub struct PushProgress<'a> {
    /// The answer so far (the whole answer once `complete`).
    pub response: &'a Value,
    /// How many of its records are committed: a retry resumes after them.
    pub records: u64,
    /// Whether the whole body was read and committed.
    pub complete: bool,
    /// SHA-256 of the whole body, once `complete`: a retry must send the same.
    pub body_sha256: Option<&'a [u8]>,
}

/// A stored [`PushProgress`].
#[derive(Debug, Clone, PartialEq)]
pub struct StoredPush {
    /// The dataset the request was for.
    pub dataset: String,
    /// The answer so far.
    pub response: Value,
    /// How many of its records are committed.
    pub records: u64,
    /// Whether the request was finished.
    pub complete: bool,
    /// SHA-256 of the finished request's body.
    pub body_sha256: Option<Vec<u8>>,
    /// How many of its records were handed to the broker (committed or not).
    pub sent_records: u64,
    /// SHA-256 of those records (migration 0015), if stored.
    pub sent_sha256: Option<Vec<u8>>,
}

/// A record that passed every check.
#[derive(Debug)]
struct Accepted {
    seq: u64,
    /// The record's own stream, when not the batch's.
    stream: Option<String>,
    key: String,
    payload: Vec<u8>,
}

/// A record that failed, with every reason.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Rejection {
    /// Position of the record in its stream (for HTTP push: its index in the request).
    pub seq: u64,
    /// Where it came from.
    pub origin: String,
    /// Every reason, each with a JSON pointer, the rule and a message.
    #[schema(value_type = Vec<Object>)]
    pub reasons: Vec<Violation>,
    #[serde(skip)]
    raw: Vec<u8>,
    #[serde(skip)]
    stream: Option<String>,
}

/// A validated batch, ready to deliver and commit. It owns its records, so that several
/// batches can be in flight at once.
#[derive(Debug)]
pub struct Checked {
    dataset: String,
    department: String,
    schema_version: String,
    stream: String,
    checkpoint: Value,
    read: usize,
    accepted: Vec<Accepted>,
    /// The rejected records.
    pub rejected: Vec<Rejection>,
    /// Held until the broker answered for every record of the batch.
    lease: Option<StreamLease>,
}

impl Checked {
    /// How many records passed.
    pub fn accepted(&self) -> usize {
        self.accepted.len()
    }

    /// How many records the batch had.
    pub fn read(&self) -> usize {
        self.read
    }

    /// The checkpoint after this batch.
    pub fn checkpoint(&self) -> &Value {
        &self.checkpoint
    }

    /// Has every delivery of the batch hold `lease` until the broker answered for all its
    /// records, whether or not anyone still waits for that answer.
    pub fn hold(&mut self, lease: StreamLease) {
        self.lease = Some(lease);
    }
}

/// The broker's acknowledgements a delivered batch waits for.
pub struct InFlight {
    dataset: String,
    acks: Arc<BatchAcks>,
    generation: u64,
}

impl std::fmt::Debug for InFlight {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "InFlight({} records waiting)", self.acks.waiting())
    }
}

impl InFlight {
    /// Waits until the broker acknowledged every record of the batch; the first failure, if
    /// any (every failed record is counted in the produce-error metric, once). The producer
    /// never gives up on a record by itself (no local timeout): while the brokers are away
    /// this waits, and a caller that wants to say so wraps it in a timeout and waits again.
    pub async fn delivered(&self) -> Result<(), IngestError> {
        // A producer that met a fatal error fails what it holds when it is replaced, which
        // the producers' keeper does within KEEPER_ROUND whether or not anything is sent.
        self.acks.all_acknowledged().await;
        let failed = self.acks.failed.load(Ordering::Acquire);
        if failed == 0 {
            return Ok(());
        }
        let mut first = self
            .acks
            .first_error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !self.acks.counted.swap(true, Ordering::AcqRel) {
            PIPELINE.produce_failed(&self.dataset, failed as u64);
        }
        Err(IngestError::Broker(
            first.get_or_insert(KafkaError::Canceled).clone(),
        ))
    }

    /// The generation of the producer the batch was handed to.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// How many of the batch's records the broker has not answered for yet.
    pub fn waiting(&self) -> usize {
        self.acks.waiting()
    }
}

/// Counts the broker's acknowledgements of one batch. Every record handed to the producer
/// carries a reference to it, which the producer's delivery callback gives back: no
/// allocation and no future per record.
#[derive(Debug, Default)]
struct BatchAcks {
    /// Records handed to the producer and not yet acknowledged, plus one while the batch is
    /// still being handed over.
    waiting: AtomicUsize,
    failed: AtomicUsize,
    /// Whether the failures were counted in the metrics.
    counted: std::sync::atomic::AtomicBool,
    first_error: std::sync::Mutex<Option<KafkaError>>,
    done: tokio::sync::Notify,
    /// The batch's stream lease, if it has one: let go when the last record is answered
    /// for (every record handed to the producer holds the batch).
    _lease: Option<StreamLease>,
}

impl BatchAcks {
    /// A batch about to be handed over (its count held open until [`Self::handed_over`]).
    fn new(lease: Option<StreamLease>) -> Arc<Self> {
        let acks = Self {
            _lease: lease,
            ..Self::default()
        };
        acks.waiting.store(1, Ordering::Release);
        Arc::new(acks)
    }

    fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Acquire)
    }

    /// One more record is about to be handed to the producer.
    fn expect_one(self: &Arc<Self>) -> Arc<Self> {
        self.waiting.fetch_add(1, Ordering::AcqRel);
        Arc::clone(self)
    }

    /// Every record was handed over: the count may now reach zero.
    fn handed_over(&self) {
        self.settle_one();
    }

    /// The broker's answer for one record.
    fn acknowledge(&self, result: Result<(), KafkaError>) {
        if let Err(e) = result {
            self.failed.fetch_add(1, Ordering::AcqRel);
            self.first_error
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .get_or_insert(e);
        }
        self.settle_one();
    }

    fn settle_one(&self) {
        if self.waiting.fetch_sub(1, Ordering::AcqRel) == 1 {
            // A stored permit: the waiter wakes even if it starts waiting later.
            self.done.notify_one();
        }
    }

    async fn all_acknowledged(&self) {
        while self.waiting() > 0 {
            self.done.notified().await;
        }
    }
}

/// The ingest producer's context: hands each record's acknowledgement to its batch.
struct AckContext;

impl ClientContext for AckContext {}

impl ProducerContext for AckContext {
    type DeliveryOpaque = Arc<BatchAcks>;

    fn delivery(&self, result: &DeliveryResult<'_>, batch: Arc<BatchAcks>) {
        batch.acknowledge(result.as_ref().map(|_| ()).map_err(|(e, _)| e.clone()));
    }
}

/// One department's ingest producer, replaced when it fails fatally.
///
/// Each department has its own: a topic that refuses one department's records (an ACL taken
/// away, a topic misconfigured) makes its producer fail every record queued after the refused
/// one, which must not touch another department's feeds; and a department whose records the
/// brokers are slow to take fills its own queue (`kafka.producer_queue_mib`), not the city's.
struct IngestProducer {
    /// The producer and its generation (raised at each replacement).
    current: std::sync::RwLock<(u64, Arc<PolledProducer<AckContext>>)>,
    /// When a sender last asked for it (seconds since the epoch).
    last_used: std::sync::atomic::AtomicI64,
}

impl IngestProducer {
    /// The producer to hand records to: the current one, or a new one if the current one
    /// met a fatal error (it delivers nothing more). Records of a batch are handed to one
    /// producer, so that their order within each partition is the order they were sent in.
    fn get(
        &self,
        config: &rdkafka::ClientConfig,
        department: &str,
    ) -> Result<(u64, Arc<PolledProducer<AckContext>>), IngestError> {
        self.last_used
            .store(chrono::Utc::now().timestamp(), Ordering::Relaxed);
        self.mend(config, department)
    }

    /// The current producer, replaced first if it met a fatal error.
    fn mend(
        &self,
        config: &rdkafka::ClientConfig,
        department: &str,
    ) -> Result<(u64, Arc<PolledProducer<AckContext>>), IngestError> {
        let (generation, current) = self
            .current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let Some((code, reason)) = current.fatal_error() else {
            return Ok((generation, current));
        };
        let mut slot = self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if Arc::ptr_eq(&slot.1, &current) {
            tracing::warn!(department, error = %reason, code = ?code, "a department's ingest producer failed; a new one takes over (the records it had not delivered are failed to their batches, which deliver them again in order)");
            let fresh = PolledProducer::new(config, AckContext)
                .map_err(|e| IngestError::Broker(KafkaError::ClientCreation(e.to_string())))?;
            let old = std::mem::replace(&mut *slot, (generation + 1, Arc::new(fresh)));
            retire(old.1);
        }
        Ok(slot.clone())
    }
}

/// Drops a replaced producer once no sender holds it, on a thread of its own: dropping it
/// fails what it still holds and waits for its threads, which must not block the runtime.
fn retire(producer: Arc<PolledProducer<AckContext>>) {
    let spawned = std::thread::Builder::new()
        .name("retired producer".into())
        .spawn(move || {
            let mut producer = producer;
            loop {
                match Arc::try_unwrap(producer) {
                    Ok(last) => return drop(last),
                    Err(shared) => producer = shared,
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot start a thread to drop a replaced producer; it is kept");
    }
}

/// The ingest producers, one per department, made at its first batch.
struct IngestProducers {
    config: rdkafka::ClientConfig,
    by_department: std::sync::Mutex<std::collections::HashMap<String, Arc<IngestProducer>>>,
}

/// How often the producers' keeper replaces failed producers and closes idle ones.
const KEEPER_ROUND: Duration = Duration::from_secs(5);

/// A department's producer unused this long, with nothing in flight, is closed (its threads
/// and broker connections with it); its next batch makes a new one.
const PRODUCER_IDLE: i64 = 600;

impl IngestProducers {
    /// The producer for `department`'s records and its generation.
    fn get(&self, department: &str) -> Result<(u64, Arc<PolledProducer<AckContext>>), IngestError> {
        if let Some(p) = self.of(department) {
            return p.get(&self.config, department);
        }
        // Made outside the lock: making a client starts its threads.
        let fresh =
            Arc::new(IngestProducer {
                current: std::sync::RwLock::new((
                    0,
                    Arc::new(PolledProducer::new(&self.config, AckContext).map_err(|e| {
                        IngestError::Broker(KafkaError::ClientCreation(e.to_string()))
                    })?),
                )),
                last_used: std::sync::atomic::AtomicI64::new(chrono::Utc::now().timestamp()),
            });
        let producer = {
            let mut all = self
                .by_department
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            Arc::clone(
                all.entry(department.to_owned())
                    .or_insert_with(|| Arc::clone(&fresh)),
            )
        };
        if !Arc::ptr_eq(&producer, &fresh) {
            // Another sender made one first.
            let (_, unused) = fresh
                .current
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone();
            retire(unused);
        }
        producer.get(&self.config, department)
    }

    /// The department's producer, marked used under the lock the keeper closes idle ones
    /// under, so that the keeper never closes one a sender has just taken.
    fn of(&self, department: &str) -> Option<Arc<IngestProducer>> {
        let all = self
            .by_department
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let producer = all.get(department)?;
        producer
            .last_used
            .store(chrono::Utc::now().timestamp(), Ordering::Relaxed);
        Some(Arc::clone(producer))
    }

    /// One round of the keeper: every producer that met a fatal error is replaced (what it
    /// held is then failed to its batches, which deliver it again), whether or not anything
    /// is being sent; a producer idle for [`PRODUCER_IDLE`] with nothing in flight is closed.
    fn keep(&self) {
        let now = chrono::Utc::now().timestamp();
        let all: Vec<(String, Arc<IngestProducer>)> = self
            .by_department
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .map(|(d, p)| (d.clone(), Arc::clone(p)))
            .collect();
        for (department, producer) in all {
            match producer.mend(&self.config, &department) {
                Ok((_, current)) => {
                    let idle = now - producer.last_used.load(Ordering::Relaxed) > PRODUCER_IDLE;
                    if idle && current.in_flight_count() == 0 {
                        let mut all = self
                            .by_department
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner);
                        // Asked for since, or still held by a sender (beyond the
                        // producer's own reference and this one): kept.
                        if now - producer.last_used.load(Ordering::Relaxed) > PRODUCER_IDLE
                            && Arc::strong_count(&current) <= 2
                        {
                            all.remove(&department);
                            drop(all);
                            tracing::info!(department, "closed an idle ingest producer");
                            retire(current);
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(department, error = %e, "cannot replace a failed ingest producer yet");
                }
            }
        }
    }
}

/// Keeps the producers while the ingestor they belong to lives.
fn spawn_keeper(producers: &Arc<IngestProducers>) {
    let producers = Arc::downgrade(producers);
    let spawned = std::thread::Builder::new()
        .name("producer keeper".into())
        .spawn(move || loop {
            std::thread::sleep(KEEPER_ROUND);
            match producers.upgrade() {
                Some(p) => p.keep(),
                None => return,
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot start the producer keeper: failed producers are replaced at their next batch only");
    }
}

/// Validation, delivery and recording of batches.
#[derive(Clone)]
pub struct Ingestor {
    producers: Arc<IngestProducers>,
    leases: Arc<StreamLeases>,
    kafka: Arc<KafkaConfig>,
    db: PgPool,
    registry: Arc<Registry>,
}

impl std::fmt::Debug for Ingestor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ingestor").finish_non_exhaustive()
    }
}

impl Ingestor {
    /// An ingestor with an idempotent producer to the configured cluster.
    pub fn new(
        kafka: &KafkaConfig,
        db: PgPool,
        registry: Arc<Registry>,
    ) -> Result<Self, BrokerError> {
        let mut config = client_config(kafka);
        config
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "20")
            .set("batch.num.messages", "10000")
            .set("queue.buffering.max.messages", "1000000")
            // Never give up on a record locally. A record the producer times out leaves a
            // gap: the records queued after it in its partition may still be written, and the
            // sink, which skips a stream's records at or below the last one it applied, would
            // then take the timed-out record, sent again, for one it already has. Waiting for
            // the brokers is what the connectors do anyway; HTTP push answers 503 after its
            // own timeout and leaves its records to be delivered.
            .set("message.timeout.ms", "0")
            // A refused record fails every record queued after it (the producer then stops
            // and is replaced), never just itself: in each partition, what reached the topic
            // is a prefix of what was sent, which is what the sink's skipping relies on.
            .set("enable.gapless.guarantee", "true")
            // Connect to every broker as soon as it is known: an idempotent producer sends
            // nothing until it holds a producer id, and it asks for one only from a broker it
            // is already connected to (librdkafka retries every 500 ms), so with the default
            // sparse connections the first batch waited a second for nothing.
            .set("enable.sparse.connections", "false")
            // The hub creates its topics itself (`topics::ensure`): a metadata request for a
            // topic that is not there (a connector naming an unknown dataset) must not
            // create it on a broker that would.
            .set("allow.auto.create.topics", "false");
        // Each department's producer queues at most this much; a department whose records the
        // brokers do not take waits when its queue is full, the others go on.
        config.set(
            "queue.buffering.max.kbytes",
            (u64::from(kafka.producer_queue_mib) * 1024).to_string(),
        );
        // A configuration librdkafka refuses is said now, not at the first batch.
        drop(PolledProducer::new(&config, AckContext)?);
        let producers = Arc::new(IngestProducers {
            config,
            by_department: std::sync::Mutex::default(),
        });
        spawn_keeper(&producers);
        Ok(Self {
            producers,
            leases: Arc::default(),
            kafka: Arc::new(kafka.clone()),
            db,
            registry,
        })
    }

    /// Connects the producer of `dataset`'s department: waits for a broker and fetches the
    /// metadata of the dataset's topic, which also has the idempotent producer take its
    /// producer id now rather than at its next retry. Call it once the producer has had a
    /// moment to reach the cluster's brokers (after the topics are ensured, say).
    ///
    /// A broker that does not answer is only logged: the first batch then waits for it, as
    /// any later batch would.
    pub async fn connect(&self, dataset: &str) {
        let Some(department) = self.registry.dataset(dataset).map(|d| d.department.clone()) else {
            return;
        };
        let topic = topics::dataset_topic(&self.kafka, dataset);
        let producer = match self.producers.get(&department) {
            Ok((_, p)) => p,
            Err(e) => {
                tracing::warn!(error = %e, "no ingest producer");
                return;
            }
        };
        if let Err(e) = producer
            .fetch_metadata(&topic, &self.kafka.brokers, self.kafka.request_timeout)
            .await
        {
            tracing::warn!(error = %e, "the ingest producer cannot reach the broker yet");
        }
    }

    /// The registry the ingestor validates against.
    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// Checks every record of `batch` against `dataset`, on every core for a large batch
    /// (validation is the pipeline's CPU-bound step). Blocks for as long as that takes: from
    /// async code, call it in `spawn_blocking`.
    pub fn check(&self, dataset: &Dataset, batch: Batch) -> Checked {
        let read = batch.records.len();
        // Small pieces, each taken by whichever thread is free next: a thread slowed by other
        // work on its core (the producer, the broker) takes fewer, and no core waits idle for
        // another at the end of the batch.
        let mut records = batch.records;
        let mut pieces = Vec::with_capacity(read.div_ceil(CHECK_PIECE));
        while records.len() > CHECK_PIECE {
            let rest = records.split_off(CHECK_PIECE);
            pieces.push(std::sync::Mutex::new(std::mem::replace(&mut records, rest)));
        }
        pieces.push(std::sync::Mutex::new(records));
        let results: Vec<std::sync::OnceLock<(Vec<Accepted>, Vec<Rejection>)>> =
            pieces.iter().map(|_| std::sync::OnceLock::new()).collect();
        let next = AtomicUsize::new(0);
        let work = || loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(piece) = pieces.get(i) else { break };
            let records = std::mem::take(
                &mut *piece
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner),
            );
            // Each piece is taken once, so its slot is empty.
            let _ = results[i].set(check_records(dataset, records));
        };
        let threads = std::thread::available_parallelism()
            .map_or(1, std::num::NonZeroUsize::get)
            .min(read / MIN_PARALLEL_CHUNK)
            .max(1);
        std::thread::scope(|scope| {
            let helpers: Vec<_> = (1..threads).map(|_| scope.spawn(work)).collect();
            work();
            for helper in helpers {
                helper
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            }
        });
        // Joined in piece order: records of a stream stay in order on the topic.
        let mut accepted = Vec::with_capacity(read);
        let mut rejected = Vec::new();
        for (a, r) in results
            .into_iter()
            .filter_map(std::sync::OnceLock::into_inner)
        {
            accepted.extend(a);
            rejected.extend(r);
        }
        Checked {
            dataset: dataset.id.clone(),
            department: dataset.department.clone(),
            schema_version: dataset.schema_version.to_string(),
            stream: batch.stream,
            checkpoint: batch.checkpoint,
            read,
            accepted,
            rejected,
            lease: None,
        }
    }

    /// Delivers the batch and waits until the broker acknowledged all of it.
    pub async fn deliver(&self, checked: &Checked, source: &str) -> Result<(), IngestError> {
        self.send(checked, source).await?.delivered().await
    }

    /// Hands the accepted records to the dataset's topic and the rejected ones to the
    /// dead-letter topic, without waiting for the broker: await [`InFlight::delivered`].
    pub async fn send(&self, checked: &Checked, source: &str) -> Result<InFlight, IngestError> {
        self.send_after(checked, source, None).await
    }

    /// [`Self::send`], refused with [`IngestError::ProducerReplaced`] when the producer is no
    /// longer of generation `earlier` (that of the caller's batches still in flight): records
    /// handed to a new producer could reach their partitions before those batches, failed
    /// with the old one, are delivered again.
    pub async fn send_after(
        &self,
        checked: &Checked,
        source: &str,
        earlier: Option<u64>,
    ) -> Result<InFlight, IngestError> {
        let topic = topics::dataset_topic(&self.kafka, &checked.dataset);
        let dead_letter = topics::dead_letter_topic(&self.kafka);
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let stream = checked.stream.as_str();
        let (generation, producer) = self.producers.get(&checked.department)?;
        if earlier.is_some_and(|g| g != generation) {
            return Err(IngestError::ProducerReplaced);
        }
        let acks = BatchAcks::new(checked.lease.clone());
        // The position's text is written into one buffer again and again: the producer copies
        // each header.
        let mut position = String::new();
        let mut headers_for = |seq: u64, stream: &str, extra: usize| {
            header::write_position(&mut position, seq, stream);
            OwnedHeaders::new_with_capacity(6 + extra)
                .insert(h(header::DATASET, &checked.dataset))
                .insert(h(header::SCHEMA_VERSION, &checked.schema_version))
                .insert(h(header::DEPARTMENT, &checked.department))
                .insert(h(header::SOURCE, source))
                .insert(h(header::POSITION, &position))
                .insert(h(header::INGEST_TIME, &now))
        };
        for a in &checked.accepted {
            let record = BaseRecord::with_opaque_to(&topic, acks.expect_one())
                .key(a.key.as_str())
                .payload(a.payload.as_slice())
                .headers(headers_for(a.seq, a.stream.as_deref().unwrap_or(stream), 0));
            Self::enqueue(&producer, record, &checked.dataset).await?;
        }
        for r in &checked.rejected {
            let reasons = serde_json::to_string(&r.reasons).unwrap_or_default();
            let record_stream = r.stream.as_deref().unwrap_or(stream);
            let record = BaseRecord::with_opaque_to(&dead_letter, acks.expect_one())
                .key(record_stream)
                .payload(r.raw.as_slice())
                .headers(
                    headers_for(r.seq, record_stream, 2)
                        .insert(h(header::ORIGIN, &r.origin))
                        .insert(h(header::REASONS, &reasons)),
                );
            Self::enqueue(&producer, record, &checked.dataset).await?;
        }
        acks.handed_over();
        Ok(InFlight {
            dataset: checked.dataset.clone(),
            acks,
            generation,
        })
    }

    /// Queues one record, waiting while the producer's queue is full.
    async fn enqueue<'a>(
        producer: &PolledProducer<AckContext>,
        mut record: BaseRecord<'a, str, [u8], Arc<BatchAcks>>,
        dataset: &str,
    ) -> Result<(), IngestError> {
        loop {
            match producer.send(record) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err((e, _)) => {
                    PIPELINE.produce_failed(dataset, 1);
                    return Err(IngestError::Broker(e));
                }
            }
        }
    }

    /// The lease of `stream` in this process, waiting up to `wait` for its holder (an
    /// earlier attempt of the same request, or its batches still with the broker).
    pub async fn lease(&self, stream: &str, wait: Duration) -> Option<StreamLease> {
        self.leases.acquire(stream, wait).await
    }

    /// How far the HTTP push request `stream` (one with an Idempotency-Key) got, if it was
    /// seen before.
    pub async fn push_progress(&self, stream: &str) -> Result<Option<StoredPush>, IngestError> {
        type Row = (
            String,
            Value,
            i64,
            bool,
            Option<Vec<u8>>,
            i64,
            Option<Vec<u8>>,
        );
        let row: Option<Row> = sqlx::query_as(
            "SELECT dataset, response, records, complete, body_sha256, sent_records, sent_sha256
             FROM http_push_requests WHERE stream = $1",
        )
        .bind(stream)
        .fetch_optional(&self.db)
        .await?;
        Ok(row.map(
            |(dataset, response, records, complete, body_sha256, sent, sent_sha256)| StoredPush {
                dataset,
                response,
                records: u64::try_from(records).unwrap_or_default(),
                complete,
                body_sha256,
                sent_records: u64::try_from(sent).unwrap_or_default(),
                sent_sha256,
            },
        ))
    }

    /// Records, before a piece of the HTTP push request `stream` is handed to the broker,
    /// that the request is `dataset`'s and that its first `sent_records` records (SHA-256
    /// `sent_sha256`) are being sent: whatever becomes of the attempt, a retry must send the
    /// same ones. A new row starts with nothing committed and the answer `response`; an
    /// existing one keeps its progress, and the furthest point sent.
    ///
    /// Returns the dataset the request already belongs to when that is another one: two
    /// first attempts of one key, for two datasets, on two instances at once, each found no
    /// earlier attempt when it began; the second to get here must not send.
    pub async fn push_sending(
        &self,
        stream: &str,
        dataset: &str,
        response: &Value,
        sent_records: u64,
        sent_sha256: &[u8],
    ) -> Result<Option<String>, IngestError> {
        let stored: Option<String> = sqlx::query_scalar(
            "INSERT INTO http_push_requests (stream, dataset, response, records, complete, sent_records, sent_sha256)
             VALUES ($1, $2, $3, 0, false, $4, $5)
             ON CONFLICT (stream) DO UPDATE SET
               sent_sha256 = CASE WHEN EXCLUDED.sent_records > http_push_requests.sent_records
                               AND http_push_requests.dataset = EXCLUDED.dataset
                             THEN EXCLUDED.sent_sha256 ELSE http_push_requests.sent_sha256 END,
               sent_records = CASE WHEN http_push_requests.dataset = EXCLUDED.dataset
                             THEN GREATEST(EXCLUDED.sent_records, http_push_requests.sent_records)
                             ELSE http_push_requests.sent_records END
             RETURNING dataset",
        )
        .bind(stream)
        .bind(dataset)
        .bind(response)
        .bind(i64::try_from(sent_records).unwrap_or(i64::MAX))
        .bind(sent_sha256)
        .fetch_optional(&self.db)
        .await?;
        Ok(stored.filter(|d| d != dataset))
    }

    /// Whether `connector`'s stored checkpoint is `checkpoint` (under [`Self::commit`]'s
    /// lock of the connector's commits).
    async fn checkpoint_is(
        &self,
        tx: &mut sqlx::PgConnection,
        connector: &str,
        checkpoint: &Value,
    ) -> Result<bool, sqlx::Error> {
        let same: Option<bool> = sqlx::query_scalar(
            "SELECT position = $2 FROM connector_checkpoints WHERE connector = $1",
        )
        .bind(connector)
        .bind(checkpoint)
        .fetch_optional(&mut *tx)
        .await?;
        Ok(same == Some(true))
    }

    /// Records a delivered batch: the rejected records, the feed's counts, its audit entry
    /// and, for a connector, its checkpoint (for an idempotent push, its answer), in one
    /// transaction.
    pub async fn commit(
        &self,
        checked: &Checked,
        source: &str,
        kind: Commit<'_>,
    ) -> Result<(), IngestError> {
        let mut tx = self.db.begin().await?;
        if let Commit::Connector { lease, again } = kind {
            if let Some(lease) = lease {
                lease.fence(&mut tx).await?;
            }
            // One commit of a connector at a time, until its transaction ends: a retry waits
            // for an attempt the server is still making (its first checkpoint has no row to
            // lock yet), and then sees what it stored.
            sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('bohai.connector-commit:' || $1, 0))")
                .bind(source)
                .execute(&mut *tx)
                .await?;
            // The checkpoint is stored in the batch's own transaction: stored already, the
            // batch was recorded (counts, rejects, audit entry) and must not be again.
            if again
                && self
                    .checkpoint_is(&mut tx, source, &checked.checkpoint)
                    .await?
            {
                tracing::info!(
                    connector = source,
                    "the batch was recorded by an attempt whose answer was lost"
                );
                return Ok(());
            }
        }
        if let Commit::Push {
            progress: Some(progress),
        } = kind
        {
            sqlx::query(
                "INSERT INTO http_push_requests (stream, dataset, response, records, complete, body_sha256)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (stream) DO UPDATE SET response = EXCLUDED.response,
                   records = EXCLUDED.records, complete = EXCLUDED.complete,
                   body_sha256 = EXCLUDED.body_sha256",
            )
            .bind(&checked.stream)
            .bind(&checked.dataset)
            .bind(progress.response)
            .bind(i64::try_from(progress.records).unwrap_or(i64::MAX))
            .bind(progress.complete)
            .bind(progress.body_sha256)
            .execute(&mut *tx)
            .await?;
        }
        if let Commit::Connector { .. } = kind {
            sqlx::query(
                "INSERT INTO connector_checkpoints (connector, dataset, position) VALUES ($1, $2, $3)
                 ON CONFLICT (connector) DO UPDATE SET position = EXCLUDED.position, dataset = EXCLUDED.dataset, updated_at = now()",
            )
            .bind(source)
            .bind(&checked.dataset)
            .bind(&checked.checkpoint)
            .execute(&mut *tx)
            .await?;
        }
        let read = i64::try_from(checked.read).unwrap_or(i64::MAX);
        let rejected = i64::try_from(checked.rejected.len()).unwrap_or(i64::MAX);
        sqlx::query(
            "INSERT INTO feed_counts (dataset, source, department, read_total, valid_total, rejected_total, last_record_at)
             VALUES ($1, $2, $3, $4, $5, $6, CASE WHEN $4 > 0 THEN now() END)
             ON CONFLICT (dataset, source) DO UPDATE SET
               read_total = feed_counts.read_total + EXCLUDED.read_total,
               valid_total = feed_counts.valid_total + EXCLUDED.valid_total,
               rejected_total = feed_counts.rejected_total + EXCLUDED.rejected_total,
               last_record_at = COALESCE(EXCLUDED.last_record_at, feed_counts.last_record_at)",
        )
        .bind(&checked.dataset)
        .bind(source)
        .bind(&checked.department)
        .bind(read)
        .bind(read - rejected)
        .bind(rejected)
        .execute(&mut *tx)
        .await?;
        if !checked.rejected.is_empty() {
            let seqs: Vec<i64> = checked
                .rejected
                .iter()
                .map(|r| i64::try_from(r.seq).unwrap_or(i64::MAX))
                .collect();
            let origins: Vec<&str> = checked.rejected.iter().map(|r| r.origin.as_str()).collect();
            let reasons: Vec<Value> = checked
                .rejected
                .iter()
                .map(|r| serde_json::to_value(&r.reasons).unwrap_or_default())
                .collect();
            let raws: Vec<&[u8]> = checked.rejected.iter().map(|r| r.raw.as_slice()).collect();
            let streams: Vec<&str> = checked
                .rejected
                .iter()
                .map(|r| r.stream.as_deref().unwrap_or(&checked.stream))
                .collect();
            sqlx::query(
                "INSERT INTO rejected_records (dataset, department, source, stream, seq, origin, reasons, raw)
                 SELECT $1, $2, $3, * FROM UNNEST($4::text[], $5::bigint[], $6::text[], $7::jsonb[], $8::bytea[])
                 ON CONFLICT (stream, seq) DO NOTHING",
            )
            .bind(&checked.dataset)
            .bind(&checked.department)
            .bind(source)
            .bind(&streams)
            .bind(&seqs)
            .bind(&origins)
            .bind(&reasons)
            .bind(&raws)
            .execute(&mut *tx)
            .await?;
        }
        // Every publish batch is on the record, committed with the batch itself.
        crate::audit::Entry::new(&checked.department, "publish")
            .dataset(&checked.dataset)
            .subject(&checked.stream)
            .count(checked.accepted.len())
            .detail(&serde_json::json!({
                "source": source,
                "read": checked.read,
                "rejected": checked.rejected.len(),
            }))
            .append(&mut tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }
}

/// Batches smaller than twice this are checked on one thread: starting a thread costs more
/// than checking a few hundred records.
const MIN_PARALLEL_CHUNK: usize = 500;

/// Records a checking thread takes at a time.
const CHECK_PIECE: usize = 250;

/// Checks records in order: the accepted ones and the rejected ones. JSON text is parsed
/// here, on the checking thread, so that the record is built and freed on the same thread.
fn check_records(dataset: &Dataset, records: Vec<SourceRecord>) -> (Vec<Accepted>, Vec<Rejection>) {
    let mut accepted = Vec::with_capacity(records.len());
    let mut rejected = Vec::new();
    for record in records {
        let json_text = matches!(record.body, Body::JsonText);
        match check_record(dataset, record.body.into_fields(&record.raw)) {
            Ok((key, value)) => accepted.push(Accepted {
                seq: record.seq,
                stream: record.stream,
                key,
                // The bytes it came as, when they are its JSON; else the record serialised.
                payload: if json_text {
                    trim_ascii_whitespace(record.raw)
                } else {
                    serde_json::to_vec(&value).unwrap_or_default()
                },
            }),
            // Reasons and origins quote the record: what PostgreSQL cannot store is escaped,
            // and their size is bounded, so that the rejection itself can always be recorded
            // and sent to the dead-letter topic.
            Err(reasons) => rejected.push(Rejection {
                seq: record.seq,
                origin: bohai_schemas::storable::storable_text(record.origin),
                reasons: bohai_schemas::storable::storable_reasons(reasons),
                raw: record.raw,
                stream: record.stream,
            }),
        }
    }
    (accepted, rejected)
}

/// `bytes` without leading and trailing ASCII whitespace, in place.
fn trim_ascii_whitespace(mut bytes: Vec<u8>) -> Vec<u8> {
    let len = bytes.trim_ascii_end().len();
    bytes.truncate(len);
    let lead = bytes.len() - bytes.trim_ascii_start().len();
    bytes.drain(..lead);
    bytes
}

fn h<'a>(key: &'a str, value: &'a str) -> Header<'a, &'a str> {
    Header {
        key,
        value: Some(value),
    }
}

/// Checks one record: readable, valid for the schema, with a primary key. Returns the key
/// and the record, or every reason it fails.
fn check_record(
    dataset: &Dataset,
    body: Result<serde_json::Map<String, Value>, ReadFailure>,
) -> Result<(String, Value), Vec<Violation>> {
    let map = body.map_err(|f| vec![Violation::new(f.pointer, f.rule, f.message)])?;
    // What the repository cannot store is refused here, never discovered by the sink.
    let mut violations = bohai_schemas::storable::check(&map);
    let key = primary_key(dataset, &map);
    let value = Value::Object(map);
    violations.extend(dataset.validator.validate(&value));
    match key {
        Ok(key) if violations.is_empty() => Ok((key, value)),
        Ok(_) => Err(violations),
        Err(v) => {
            // A missing key field is already a `required` violation; add ours only when the
            // schema said nothing about that field.
            if !violations
                .iter()
                .any(|x| x.rule == "required" && x.message.contains(&v.pointer[1..]))
            {
                violations.push(v);
            }
            Err(violations)
        }
    }
}

/// The record's primary key as text: the value of a single key field, or a JSON array of the
/// values of several.
pub fn primary_key(
    dataset: &Dataset,
    map: &serde_json::Map<String, Value>,
) -> Result<String, Violation> {
    let mut parts = Vec::with_capacity(dataset.primary_key.len());
    for field in &dataset.primary_key {
        match map.get(field) {
            Some(v @ Value::String(s)) if !s.is_empty() => parts.push(v),
            Some(v @ Value::Number(_)) => parts.push(v),
            Some(_) => {
                return Err(Violation::new(
                    format!("/{field}"),
                    "primary_key",
                    format!("primary-key field `{field}` must be a non-empty string or a number"),
                ))
            }
            None => {
                return Err(Violation::new(
                    format!("/{field}"),
                    "primary_key",
                    format!("primary-key field `{field}` is missing"),
                ))
            }
        }
    }
    let key = key_text(&parts);
    if key.len() > bohai_schemas::storable::MAX_KEY_BYTES {
        return Err(Violation::new(
            format!("/{}", dataset.primary_key[0]),
            "key_size",
            format!(
                "the primary key is {} bytes long; at most {} are stored",
                key.len(),
                bohai_schemas::storable::MAX_KEY_BYTES
            ),
        ));
    }
    Ok(key)
}

/// A key as text from the values of its fields: a single string as it is, a single number
/// as JSON, several values as a JSON array. A number is written in one spelling whatever its
/// record said: `100`, `100.0` and `1e2` are one number to JSON Schema and so one key.
pub fn key_text<V: std::borrow::Borrow<Value>>(parts: &[V]) -> String {
    match parts {
        [single] => match single.borrow() {
            Value::String(s) => s.clone(),
            other => canonical_number(other).to_string(),
        },
        _ => {
            let values: Vec<Value> = parts.iter().map(|v| canonical_number(v.borrow())).collect();
            serde_json::to_string(&values).unwrap_or_default()
        }
    }
}

/// 2^63, exactly.
const I64_BOUND: f64 = 9_223_372_036_854_775_808.0;
/// 2^64, exactly.
const U64_BOUND: f64 = 18_446_744_073_709_551_616.0;

/// `value` with a number that is whole written as an integer (`100.0` and `1e2` as `100`);
/// anything else as it is.
fn canonical_number(value: &Value) -> Value {
    match value {
        Value::Number(n) if n.is_f64() => match n.as_f64() {
            // Whole and within i64 (-2^63 <= f < 2^63), so the conversion is exact (-0.0 is 0).
            #[allow(clippy::cast_possible_truncation)]
            Some(f) if f.fract() == 0.0 && (-I64_BOUND..I64_BOUND).contains(&f) => {
                Value::from(f as i64)
            }
            // Whole and within u64: the integer spelling of such a number is taken too.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            Some(f) if f.fract() == 0.0 && (0.0..U64_BOUND).contains(&f) => Value::from(f as u64),
            // Beyond u64 only a spelling with a point or an exponent is accepted at ingest,
            // and every such spelling of one double is printed alike.
            _ => value.clone(),
        },
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::header::{parse_position, write_position};
    use super::key_text;
    use serde_json::{json, Value};

    #[test]
    fn a_number_has_one_key_whatever_its_spelling() {
        for spelling in ["100", "100.0", "1e2", "1.00E+2"] {
            let v: Value = serde_json::from_str(spelling).unwrap();
            assert_eq!(key_text(&[&v]), "100", "{spelling}");
            assert_eq!(key_text(&[&json!("a"), &v]), r#"["a",100]"#, "{spelling}");
        }
        let v: Value = serde_json::from_str("-0.0").unwrap();
        assert_eq!(key_text(&[&v]), "0");
        let v: Value = serde_json::from_str("100.5").unwrap();
        assert_eq!(key_text(&[&v]), "100.5");
        assert_eq!(key_text(&[&json!("100.0")]), "100.0");
        // Whole numbers beyond 9e18: the same key as their integer spelling, where one is
        // accepted (up to 2^64).
        for (float, integer) in [
            ("9.1e18", "9100000000000000000"),
            ("-9.223372036854775808e18", "-9223372036854775808"),
            ("1e19", "10000000000000000000"),
            ("1.8446744073709550e19", "18446744073709549568"),
        ] {
            let f: Value = serde_json::from_str(float).unwrap();
            let i: Value = serde_json::from_str(integer).unwrap();
            assert_eq!(key_text(&[&f]), key_text(&[&i]), "{float}");
            assert_eq!(key_text(&[&f]), integer, "{float}");
        }
        let v: Value = serde_json::from_str("1e20").unwrap();
        assert_eq!(key_text(&[&v]), "1e+20");
    }

    #[test]
    fn position_round_trips_streams_that_contain_separators() {
        // One buffer for all: each value replaces the one before, as when sending a batch.
        let mut position = String::from("left over");
        for stream in ["file:/in/a@b.jsonl#0f1e", "table:pg:[\"7\",\"x@y\"]", ""] {
            write_position(&mut position, 42, stream);
            assert_eq!(parse_position(&position), Some((42, stream)));
        }
        assert_eq!(parse_position("x@file:a"), None);
        assert_eq!(parse_position("17"), None);
    }
}
