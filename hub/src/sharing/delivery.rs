//! Subscription topics: for every active subscription the hub fills a Kafka topic,
//! `{topic_prefix}sub.{id}`, with the dataset's records as the subscriber may see them (the
//! approved fields, PII masked: the same projection as a read through the API), first every
//! record in the repository, then each change as the sink stores it. Every delivered batch
//! is in the audit log (`deliver`, with the keys), so `who-received` answers for topic
//! readers as for API readers. When access ends (expiry or withdrawal) nothing more is put on
//! the topic. A withdrawn subscription's topic is then deleted, with its records: the
//! requester no longer needs them, or the owner ended the access. An expired one's topic
//! stays until its records age out (`kafka.retention`); who may read a topic is the
//! cluster's ACLs, set by its operators. A topic the broker refuses to delete (the hub's
//! principal without `DELETE` on it) is logged for the operators and left to them.
//!
//! Order and completeness: rows are taken in (`change_xid`, `pk`) order and only below the
//! oldest transaction still running, so a row committed late by a transaction that began
//! early is never passed over. Each record goes out once: a batch is audited and marked
//! pending before it is produced (in a transaction of the duty's fenced producer) and marked
//! delivered, with where the topic's partitions end, after the transaction committed. A
//! batch still pending when the next round (or the duty's next holder) comes is looked for
//! beyond those ends first: found, it is marked; not found, it is produced. Message key: the salted hash of the primary key (stable, so a
//! compacted topic keeps the latest state, and it does not reveal the key); value: JSON
//! `{"subscription", "dataset", "key", "updated_at", "data"}`, `key` and `data` masked.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use bohai_schemas::{Dataset, Registry};
use chrono::{DateTime, Utc};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::Value;
use sqlx::PgPool;

use super::mask::{self, Salt, View};
use super::subscriptions::Subscription;
use super::SharingState;
use crate::audit::Entry;
use crate::cluster::Lease;
use crate::config::{KafkaConfig, SharingConfig};
use crate::failure::Failure;
use crate::kafka;
use crate::ops::components;
use crate::ops::metrics::{Component, Stage, PIPELINE};

/// The component name the delivery's state is recorded under.
pub const COMPONENT: &str = "subscription-delivery";

/// Most records produced and audited as one batch.
const BATCH: i64 = 1000;

/// The topic of subscription `id`.
pub fn topic(config: &KafkaConfig, id: uuid::Uuid) -> String {
    kafka::topic_name(config, &format!("sub.{id}"))
}

/// `sub` with its topic named, while it is active.
pub fn with_topic(mut sub: Subscription, config: &KafkaConfig) -> Subscription {
    if sub.active {
        sub.topic = Some(topic(config, sub.id));
    }
    sub
}

/// An active subscription, as the worker needs it.
#[derive(Debug, Clone, sqlx::FromRow)]
struct Active {
    id: uuid::Uuid,
    dataset: String,
    department: String,
    fields: Vec<String>,
    purpose: String,
}

/// A position in (`change_xid`, `pk`) order; the xid as text (PostgreSQL's `xid8`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Position {
    xid: String,
    pk: String,
}

impl Position {
    /// How a batch ending here is named in [`BATCH_HEADER`].
    fn batch_name(&self) -> String {
        format!("{}:{}", self.xid, self.pk)
    }
}

/// Whether subscription `id` is approved and unexpired now; locks it against a withdrawal
/// until the end of the caller's transaction.
async fn still_active(tx: &mut sqlx::PgConnection, id: uuid::Uuid) -> Result<bool, sqlx::Error> {
    let row: Option<(i32,)> = sqlx::query_as(
        "SELECT 1 FROM subscriptions WHERE id = $1 AND status = 'approved' AND valid_until > now()
         FOR SHARE",
    )
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?;
    Ok(row.is_some())
}

/// The header every record of a delivered batch carries: the batch's end position
/// (`xid:pk`), by which a batch left pending is recognised on the topic.
const BATCH_HEADER: &str = "bohai-batch";

/// The next offset of each partition of a subscription topic.
type TopicOffsets = std::collections::BTreeMap<i32, i64>;

/// Moves `partition`'s end in `offsets` up to `next` (never back).
fn advance(offsets: &mut TopicOffsets, partition: i32, next: i64) {
    let at = offsets.entry(partition).or_insert(0);
    *at = (*at).max(next);
}

/// Where a subscription's delivery stands.
struct DeliveryState {
    /// The end of the last batch marked delivered.
    last: Position,
    /// The end of a batch audited and perhaps produced, not marked delivered.
    pending: Option<Position>,
    /// Where the topic's partitions ended after the last batch marked delivered; `None` for
    /// a topic filled before they were kept.
    topic_offsets: Option<TopicOffsets>,
}

/// A pending batch found on the topic.
struct Found {
    /// How many records it had.
    records: usize,
    /// Where the topic's partitions end after it.
    offsets: TopicOffsets,
}

/// One repository row to deliver.
#[derive(Debug, sqlx::FromRow)]
struct Row {
    pk: String,
    data: Value,
    updated_at: DateTime<Utc>,
    xid: String,
}

/// Why a round failed; every kind is retried.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// The database failed.
    #[error("the database failed: {0}")]
    Database(#[from] sqlx::Error),
    /// The broker failed.
    #[error(transparent)]
    Broker(#[from] kafka::BrokerError),
    /// The broker refused or lost a record.
    #[error("producing to {topic} failed: {error}")]
    Produce {
        /// The subscription's topic.
        topic: String,
        /// Why.
        #[source]
        error: rdkafka::error::KafkaError,
    },
    /// The salt cannot be read.
    #[error(transparent)]
    Sharing(#[from] super::SharingError),
}

impl DeliveryError {
    /// What the failure means: the database's by its code; a broker client that cannot be
    /// configured needs someone; anything else of the broker's passes.
    fn class(&self) -> Failure {
        match self {
            DeliveryError::Database(e) => Failure::of_database(e),
            DeliveryError::Broker(kafka::BrokerError::Config(_)) => Failure::Component,
            DeliveryError::Broker(
                kafka::BrokerError::CreateTopic { code, .. }
                | kafka::BrokerError::DeleteTopic { code, .. },
            ) => Failure::of_broker_for_own_record(&rdkafka::error::KafkaError::AdminOp(*code)),
            // A shared record is a repository row, which fits the topic the hub made for it.
            DeliveryError::Produce { error, .. } => Failure::of_broker_for_own_record(error),
            DeliveryError::Broker(_) | DeliveryError::Sharing(_) => Failure::Transient,
        }
    }

    /// The stage a retry of this failure is counted under.
    fn stage(&self) -> Stage {
        match self {
            DeliveryError::Database(_) => Stage::Commit,
            _ => Stage::Produce,
        }
    }
}

/// Fills the topics of active subscriptions and closes those of ended ones until the task is
/// dropped; a failure that needs someone stops it and is recorded for `bohai status`.
pub async fn run(
    db: PgPool,
    kafka: KafkaConfig,
    config: SharingConfig,
    registry: Arc<Registry>,
    state: Arc<SharingState>,
    lease: Lease,
) {
    let instance = Arc::clone(&lease.holder);
    let mut backoff = crate::pipeline::Backoff::default();
    let producer = loop {
        match make_producer(&db, &kafka, &lease).await {
            Ok(p) => break p,
            Err(DeliveryError::Database(e)) if crate::cluster::is_lease_lost(&e) => return,
            Err(e) if e.class() == Failure::Transient => {
                tracing::warn!(error = %e, "subscription delivery: cannot make the producer yet");
                backoff.wait().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "subscription delivery stopped: it cannot make its producer until this is fixed");
                components::record_failure(&db, COMPONENT, &instance, &e.to_string()).await;
                return;
            }
        }
    };
    components::clear_failure(&db, COMPONENT).await;
    let mut worker = Worker {
        db,
        kafka,
        registry,
        producer,
        lease,
        created: HashSet::new(),
        undeletable: HashSet::new(),
    };
    loop {
        let salt = match state.salt(&config) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "subscription delivery: no salt; retrying");
                tokio::time::sleep(config.delivery_interval.max(Duration::from_secs(5))).await;
                continue;
            }
        };
        match worker.round(&salt).await {
            Ok(0) => tokio::time::sleep(config.delivery_interval).await,
            Ok(n) => tracing::debug!(records = n, "subscription topics filled"),
            Err(DeliveryError::Database(e)) if crate::cluster::is_lease_lost(&e) => {
                tracing::warn!(
                    "subscription delivery: the lease on the duty moved on; stopping here"
                );
                return;
            }
            Err(e) if e.class() == Failure::Transient => {
                tracing::warn!(error = %e, "subscription delivery failed; retrying");
                PIPELINE.retried(Component::SubscriptionDelivery, e.stage());
                tokio::time::sleep(config.delivery_interval.max(Duration::from_secs(1))).await;
            }
            Err(e) => {
                tracing::error!(error = %e, "subscription delivery stopped: it cannot go on until this is fixed");
                components::record_failure(&worker.db, COMPONENT, &instance, &e.to_string()).await;
                return;
            }
        }
    }
}

/// The duty's transactional producer, made under `lease` (which fences the earlier holder's).
async fn make_producer(
    db: &PgPool,
    kafka: &KafkaConfig,
    lease: &Lease,
) -> Result<FutureProducer, DeliveryError> {
    lease.check(db).await?;
    kafka::fenced::producer(kafka, COMPONENT)
        .await
        .map_err(|error| DeliveryError::Produce {
            topic: "(transactional producer)".to_owned(),
            error,
        })
}

struct Worker {
    db: PgPool,
    kafka: KafkaConfig,
    registry: Arc<Registry>,
    /// Transactional: a later holder of the duty fences it.
    producer: FutureProducer,
    /// The lease on the duty, which every write is fenced with.
    lease: Lease,
    /// Subscriptions whose topic this worker made sure of.
    created: HashSet<uuid::Uuid>,
    /// Withdrawn subscriptions whose topic the broker refused to delete: said once, not
    /// asked again until the hub restarts.
    undeletable: HashSet<uuid::Uuid>,
}

impl Worker {
    /// One pass over every subscription; how many records it produced.
    async fn round(&mut self, salt: &Salt) -> Result<usize, DeliveryError> {
        self.close_ended().await?;
        self.delete_withdrawn().await?;
        let active: Vec<Active> = sqlx::query_as(
            "SELECT id, dataset, department, fields, purpose FROM subscriptions
             WHERE status = 'approved' AND valid_until > now() AND kind = 'dataset'
             ORDER BY decided_at, id",
        )
        .fetch_all(&self.db)
        .await?;
        let mut produced = 0;
        let registry = Arc::clone(&self.registry);
        for sub in &active {
            let Some(dataset) = registry.dataset(&sub.dataset) else {
                continue;
            };
            // One subscription that keeps failing (a topic the cluster will not create, a
            // record over its size limit) must not hold up the others.
            let delivered = match self.open(sub).await {
                Ok(()) => self.deliver_batch(sub, dataset, salt).await,
                Err(e) => Err(e),
            };
            match delivered {
                Ok(n) => produced += n,
                Err(DeliveryError::Database(e)) if crate::cluster::is_lease_lost(&e) => {
                    return Err(e.into());
                }
                Err(e) => {
                    tracing::warn!(subscription = %sub.id, error = %e, "subscription delivery failed; retrying");
                    PIPELINE.retried(Component::SubscriptionDelivery, e.stage());
                }
            }
        }
        Ok(produced)
    }

    /// Creates the subscription's topic and its delivery row, once.
    async fn open(&mut self, sub: &Active) -> Result<(), DeliveryError> {
        if self.created.contains(&sub.id) {
            return Ok(());
        }
        let name = topic(&self.kafka, sub.id);
        kafka::ensure_topics(&self.kafka, std::slice::from_ref(&name)).await?;
        sqlx::query(
            "INSERT INTO subscription_deliveries (subscription, topic) VALUES ($1, $2)
             ON CONFLICT (subscription) DO NOTHING",
        )
        .bind(sub.id)
        .bind(&name)
        .execute(&self.db)
        .await?;
        tracing::info!(subscription = %sub.id, topic = %name, "subscription topic opened");
        self.created.insert(sub.id);
        Ok(())
    }

    /// Stops filling the topics of subscriptions that expired or were withdrawn.
    async fn close_ended(&mut self) -> Result<(), DeliveryError> {
        let ended: Vec<(uuid::Uuid, String)> = sqlx::query_as(
            "SELECT d.subscription, d.topic FROM subscription_deliveries d
             JOIN subscriptions s ON s.id = d.subscription
             WHERE d.closed_at IS NULL AND NOT (s.status = 'approved' AND s.valid_until > now())",
        )
        .fetch_all(&self.db)
        .await?;
        for (id, name) in ended {
            sqlx::query(
                "UPDATE subscription_deliveries SET closed_at = now() WHERE subscription = $1",
            )
            .bind(id)
            .execute(&self.db)
            .await?;
            self.created.remove(&id);
            tracing::info!(subscription = %id, topic = %name, "access ended; subscription topic closed");
        }
        Ok(())
    }

    /// Deletes the topics of withdrawn subscriptions. A topic that cannot be deleted now (the
    /// broker away) is tried again next round without holding up the deliveries; one the
    /// broker refuses to delete is logged once and left to the cluster's operators.
    async fn delete_withdrawn(&mut self) -> Result<(), DeliveryError> {
        let withdrawn: Vec<(uuid::Uuid, String)> = sqlx::query_as(
            "SELECT d.subscription, d.topic FROM subscription_deliveries d
             JOIN subscriptions s ON s.id = d.subscription
             WHERE s.status = 'withdrawn' AND d.closed_at IS NOT NULL
               AND d.topic_deleted_at IS NULL",
        )
        .fetch_all(&self.db)
        .await?;
        for (id, name) in withdrawn {
            if self.undeletable.contains(&id) {
                continue;
            }
            match kafka::delete_topics(&self.kafka, std::slice::from_ref(&name)).await {
                Ok(()) => {
                    sqlx::query(
                        "UPDATE subscription_deliveries SET topic_deleted_at = now()
                         WHERE subscription = $1",
                    )
                    .bind(id)
                    .execute(&self.db)
                    .await?;
                    tracing::info!(subscription = %id, topic = %name, "subscription withdrawn; its topic deleted");
                }
                // A cluster with topic deletion switched off says so for every topic.
                Err(
                    e @ kafka::BrokerError::DeleteTopic {
                        code: rdkafka::types::RDKafkaErrorCode::TopicDeletionDisabled,
                        ..
                    },
                ) => self.cannot_delete(id, &name, &e),
                Err(e) => {
                    let e = DeliveryError::Broker(e);
                    if e.class() == Failure::Transient {
                        tracing::warn!(subscription = %id, topic = %name, error = %e,
                            "deleting the withdrawn subscription's topic failed; retrying");
                        PIPELINE.retried(Component::SubscriptionDelivery, Stage::Produce);
                    } else {
                        self.cannot_delete(id, &name, &e);
                    }
                }
            }
        }
        Ok(())
    }

    /// Says once that the broker refuses to delete withdrawn subscription `id`'s topic.
    fn cannot_delete(&mut self, id: uuid::Uuid, name: &str, error: &dyn std::fmt::Display) {
        tracing::error!(subscription = %id, topic = %name, error = %error,
            "the broker refuses to delete the withdrawn subscription's topic: allow the hub to delete it (topic deletion on, DELETE in the ACLs), or delete it by hand");
        self.undeletable.insert(id);
    }

    /// Produces the next batch of `sub` (or the batch a crash interrupted); how many records.
    async fn deliver_batch(
        &mut self,
        sub: &Active,
        dataset: &Dataset,
        salt: &Salt,
    ) -> Result<usize, DeliveryError> {
        let state = self.delivery_state(sub.id).await?;
        let name = topic(&self.kafka, sub.id);
        let (rows, end, offsets) = match state.pending {
            // A crash (or a failed mark) interrupted this batch after it was audited.
            Some(end) => {
                if !still_active(&mut *self.db.acquire().await?, sub.id).await? {
                    return Ok(0);
                }
                if let Some(from) = &state.topic_offsets {
                    if let Some(found) = self.found_on_topic(&name, from, &end).await? {
                        tracing::info!(subscription = %sub.id, records = found.records,
                            "the batch left pending is on the topic already: marked delivered, not produced again");
                        self.mark_delivered(sub.id, &end, found.records, &found.offsets)
                            .await?;
                        return Ok(found.records);
                    }
                }
                let rows = self.rows_between(&sub.dataset, &state.last, &end).await?;
                (rows, end, state.topic_offsets)
            }
            None => {
                // Where the topic ends before this batch, if not known yet (a topic filled
                // before the offsets were kept): nothing of this subscription's is in flight.
                let offsets = match state.topic_offsets {
                    Some(known) => known,
                    None => self.topic_ends(&name).await?,
                };
                let mut tx = self.lease.begin(&self.db).await?;
                // Access may have ended since the round began: nothing more goes out then.
                // The lock keeps a withdrawal from committing until this batch is marked.
                if !still_active(&mut tx, sub.id).await? {
                    return Ok(0);
                }
                let rows: Vec<Row> = sqlx::query_as(
                    "SELECT pk, data, updated_at, change_xid::text AS xid FROM repository_records
                     WHERE dataset = $1 AND (change_xid, pk) > ($2::text::xid8, $3)
                       AND change_xid < pg_snapshot_xmin(pg_current_snapshot())
                     ORDER BY change_xid, pk LIMIT $4",
                )
                .bind(&sub.dataset)
                .bind(&state.last.xid)
                .bind(&state.last.pk)
                .bind(BATCH)
                .fetch_all(&mut *tx)
                .await?;
                let Some(tail) = rows.last() else {
                    return Ok(0);
                };
                let end = Position {
                    xid: tail.xid.clone(),
                    pk: tail.pk.clone(),
                };
                Entry::new(&sub.department, "deliver")
                    .dataset(&sub.dataset)
                    .subject(sub.id)
                    .purpose(&sub.purpose)
                    .keys(rows.iter().map(|r| r.pk.clone()).collect())
                    .detail(&serde_json::json!({"fields": sub.fields, "topic": name}))
                    .append(&mut tx)
                    .await?;
                sqlx::query(
                    "UPDATE subscription_deliveries SET pending_xid = $2::text::xid8, pending_pk = $3,
                         topic_offsets = $4
                     WHERE subscription = $1",
                )
                .bind(sub.id)
                .bind(&end.xid)
                .bind(&end.pk)
                .bind(sqlx::types::Json(&offsets))
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                (rows, end, Some(offsets))
            }
        };
        let produced = self
            .produce_fenced(sub, dataset, &rows, &end, salt, &name)
            .await?;
        let offsets = match offsets {
            Some(mut known) => {
                for (partition, next) in produced {
                    advance(&mut known, partition, next);
                }
                known
            }
            // Produced again without knowing what was there: from here on it is known.
            None => self.topic_ends(&name).await?,
        };
        self.mark_delivered(sub.id, &end, rows.len(), &offsets)
            .await?;
        Ok(rows.len())
    }

    /// Where `sub`'s delivery stands.
    async fn delivery_state(&self, sub: uuid::Uuid) -> Result<DeliveryState, DeliveryError> {
        let (xid, pk, pending_xid, pending_pk, offsets): (
            String,
            String,
            Option<String>,
            Option<String>,
            Option<sqlx::types::Json<TopicOffsets>>,
        ) = sqlx::query_as(
            "SELECT last_xid::text, last_pk, pending_xid::text, pending_pk, topic_offsets
             FROM subscription_deliveries WHERE subscription = $1",
        )
        .bind(sub)
        .fetch_one(&self.db)
        .await?;
        Ok(DeliveryState {
            last: Position { xid, pk },
            pending: pending_xid
                .zip(pending_pk)
                .map(|(xid, pk)| Position { xid, pk }),
            topic_offsets: offsets.map(|o| o.0),
        })
    }

    /// The records of the batch ending at `end` on topic `name` beyond `from`, if it is
    /// there: made visible before its mark was lost. Each record names its batch
    /// ([`BATCH_HEADER`]); records of other batches beyond `from` (produced by a version that
    /// did not keep the ends, say) do not count, and the batch is then produced again: a
    /// record twice rather than none. (The duty's producer was made before this is read,
    /// which ended any transaction an earlier producer left open.)
    async fn found_on_topic(
        &self,
        name: &str,
        from: &TopicOffsets,
        end: &Position,
    ) -> Result<Option<Found>, DeliveryError> {
        let found = kafka::fenced::committed_tail(&self.kafka, name, from.clone())
            .await
            .map_err(|error| DeliveryError::Produce {
                topic: name.to_owned(),
                error,
            })?;
        let batch = end.batch_name();
        let records = found
            .iter()
            .filter(|r| r.header(BATCH_HEADER) == Some(batch.as_bytes()))
            .count();
        if records == 0 {
            return Ok(None);
        }
        let mut offsets = from.clone();
        for record in &found {
            advance(&mut offsets, record.partition, record.offset + 1);
        }
        Ok(Some(Found { records, offsets }))
    }

    /// Where each partition of topic `name` ends now.
    async fn topic_ends(&self, name: &str) -> Result<TopicOffsets, DeliveryError> {
        kafka::fenced::end_offsets(&self.producer, name, self.kafka.request_timeout)
            .await
            .map_err(|error| DeliveryError::Produce {
                topic: name.to_owned(),
                error,
            })
    }

    /// Marks the pending batch ending at `end` delivered (`records` records), with where the
    /// topic's partitions end after it.
    async fn mark_delivered(
        &self,
        sub: uuid::Uuid,
        end: &Position,
        records: usize,
        offsets: &TopicOffsets,
    ) -> Result<(), DeliveryError> {
        let mut tx = self.lease.begin(&self.db).await?;
        sqlx::query(
            "UPDATE subscription_deliveries SET last_xid = pending_xid, last_pk = pending_pk,
                 pending_xid = NULL, pending_pk = NULL, topic_offsets = $5,
                 delivered_total = delivered_total + $2, last_delivery_at = now()
             WHERE subscription = $1 AND pending_xid = $3::text::xid8 AND pending_pk = $4",
        )
        .bind(sub)
        .bind(i64::try_from(records).unwrap_or(i64::MAX))
        .bind(&end.xid)
        .bind(&end.pk)
        .bind(sqlx::types::Json(offsets))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The rows after `last` up to and including `end`, still in the repository as they are
    /// now. (A row changed since was moved past `end`; it is delivered again later.)
    async fn rows_between(
        &self,
        dataset: &str,
        last: &Position,
        end: &Position,
    ) -> Result<Vec<Row>, sqlx::Error> {
        sqlx::query_as(
            "SELECT pk, data, updated_at, change_xid::text AS xid FROM repository_records
             WHERE dataset = $1 AND (change_xid, pk) > ($2::text::xid8, $3)
               AND (change_xid, pk) <= ($4::text::xid8, $5)
             ORDER BY change_xid, pk",
        )
        .bind(dataset)
        .bind(&last.xid)
        .bind(&last.pk)
        .bind(&end.xid)
        .bind(&end.pk)
        .fetch_all(&self.db)
        .await
    }

    /// [`Self::produce`] in a transaction of the duty's producer: the records become visible
    /// only if this producer was not fenced by a later holder of the duty. A failed
    /// transaction leaves the producer unusable: a new one is made, under the lease.
    async fn produce_fenced(
        &mut self,
        sub: &Active,
        dataset: &Dataset,
        rows: &[Row],
        end: &Position,
        salt: &Salt,
        name: &str,
    ) -> Result<TopicOffsets, DeliveryError> {
        let failed = |error| DeliveryError::Produce {
            topic: name.to_owned(),
            error,
        };
        let result = async {
            kafka::fenced::begin(&self.producer).await.map_err(failed)?;
            let produced = match self.produce(sub, dataset, rows, end, salt, name).await {
                Ok(produced) => produced,
                Err(e) => {
                    kafka::fenced::abort(&self.producer).await;
                    return Err(e);
                }
            };
            kafka::fenced::commit(&self.producer)
                .await
                .map_err(failed)?;
            Ok(produced)
        }
        .await;
        if result.is_err() {
            self.producer = make_producer(&self.db, &self.kafka, &self.lease).await?;
        }
        result
    }

    /// Produces `rows` as `sub` may see them and waits until the broker has every one; where
    /// each partition they went to ends after them.
    async fn produce(
        &self,
        sub: &Active,
        dataset: &Dataset,
        rows: &[Row],
        end: &Position,
        salt: &Salt,
        name: &str,
    ) -> Result<TopicOffsets, DeliveryError> {
        let failed = |error| DeliveryError::Produce {
            topic: name.to_owned(),
            error,
        };
        let view = View::Shared {
            fields: &sub.fields,
        };
        let subscription = sub.id.to_string();
        let batch = end.batch_name();
        // A credit entry whose repair was approved says so (approving it sends it again).
        let repaired: std::collections::HashMap<String, (i64, chrono::DateTime<chrono::Utc>)> =
            if dataset.repair.is_some() {
                let pks: Vec<&str> = rows.iter().map(|r| r.pk.as_str()).collect();
                crate::credit::repair::approved_among(&self.db, &dataset.id, &pks)
                    .await?
                    .into_iter()
                    .map(|(entry, id, at)| (entry, (id, at)))
                    .collect()
            } else {
                std::collections::HashMap::new()
            };
        let mut deliveries = Vec::with_capacity(rows.len());
        for row in rows {
            let mut value = serde_json::json!({
                "subscription": sub.id,
                "dataset": sub.dataset,
                "key": mask::key(dataset, &row.pk, &row.data, view, salt),
                "updated_at": row.updated_at,
                "data": mask::project(dataset, &row.data, view, salt),
            });
            if let Some((id, at)) = repaired.get(&row.pk) {
                value["credit_repair"] = serde_json::json!({"id": id, "approved_at": at});
            }
            let value = value.to_string();
            let key = mask::salted_hash(salt, &Value::String(row.pk.clone()));
            let headers = OwnedHeaders::new()
                .insert(Header {
                    key: "bohai-dataset",
                    value: Some(&sub.dataset),
                })
                .insert(Header {
                    key: "bohai-subscription",
                    value: Some(&subscription),
                })
                .insert(Header {
                    key: BATCH_HEADER,
                    value: Some(&batch),
                });
            let record = FutureRecord::to(name)
                .key(&key)
                .payload(&value)
                .headers(headers);
            deliveries.push(
                self.producer
                    .send_result(record)
                    .map_err(|(e, _)| failed(e))?,
            );
        }
        let mut ends = TopicOffsets::new();
        for d in deliveries {
            match d.await {
                Ok(Ok(delivery)) => advance(&mut ends, delivery.partition, delivery.offset + 1),
                Ok(Err((e, _))) => return Err(failed(e)),
                Err(_) => return Err(failed(rdkafka::error::KafkaError::Canceled)),
            }
        }
        Ok(ends)
    }
}
