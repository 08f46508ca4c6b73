//! The licence-events topic: every lifecycle event, published from the `licence_events`
//! outbox so that an event reaches the topic if and only if its change committed.
//!
//! Key: the licence number (all events of a licence stay in order on one partition). Value:
//! JSON `{"id", "number", "version", "event", "licence_type", "department", "actor",
//! "reason", "at"}`. The events are produced in Kafka transactions: read the topic with
//! `isolation.level = read_committed` (librdkafka's default; Java's is not). Delivery is at
//! least once: an event whose transaction committed just before a crash, before the outbox
//! marked it, is published again after it; consumers de-duplicate by `id`. An instance that
//! lost the duty publishes nothing more ([`run_publisher`]).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, FutureRecord};
use sqlx::PgPool;

use super::store;
use crate::cluster::{self, Lease};
use crate::config::KafkaConfig;
use crate::failure::Failure;
use crate::kafka::{fenced, topic_name};
use crate::ops::components;
use crate::ops::metrics::{Component, Stage, PIPELINE};
use crate::pipeline::Backoff;

/// The component name the publisher's state is recorded under.
pub const COMPONENT: &str = "licence-events";

/// Why a round of publishing failed.
#[derive(Debug, thiserror::Error)]
enum PublishError {
    /// The outbox could not be read or marked.
    #[error("the licence outbox failed: {0}")]
    Database(#[from] sqlx::Error),
    /// The broker did not take an event.
    #[error("the broker did not take a licence event: {0}")]
    Broker(#[from] KafkaError),
}

impl PublishError {
    fn class(&self) -> Failure {
        match self {
            PublishError::Database(e) => Failure::of_database(e),
            // An event is a few hundred bytes the hub wrote itself: a broker that refuses one
            // refuses them all, which needs someone.
            PublishError::Broker(e) => Failure::of_broker_for_own_record(e),
        }
    }
}

/// Most events published in one round.
const BATCH: i64 = 500;
/// Pause when there is nothing to publish, and after a failure.
const IDLE: Duration = Duration::from_millis(500);

/// The licence-events topic.
pub fn topic(config: &KafkaConfig) -> String {
    topic_name(config, "licence-events")
}

/// Publishes unpublished events until the task is dropped, while `lease` on the
/// `licence-events` duty holds: transient failures are waited out and counted; one that needs
/// someone (a missing table, an authorization the broker refuses) stops the publisher and is
/// recorded for `bohai status`.
///
/// Fencing, so that an event is published once although the duty changes hands: the outbox
/// is read and marked in transactions fenced by the lease, and the events are produced in a
/// Kafka transaction of the duty's transactional producer, which a later holder fences when
/// it makes its own. A holder that lost the lease can neither mark an event nor make one
/// visible to a `read_committed` reader.
pub async fn run_publisher(db: PgPool, kafka: KafkaConfig, lease: Lease) {
    let instance = Arc::clone(&lease.holder);
    let topic = topic(&kafka);
    let mut backoff = Backoff::default();
    let mut cleared = false;
    loop {
        // Made only under a lease that holds now: making it fences the earlier holder's.
        let made = match lease.check(&db).await {
            Ok(()) => fenced::producer(&kafka, COMPONENT)
                .await
                .map_err(PublishError::from),
            Err(e) => Err(e.into()),
        };
        let producer = match made {
            Ok(p) => p,
            Err(e) => match stop_or_wait(&db, &instance, &e, &mut backoff).await {
                true => return,
                false => continue,
            },
        };
        // What the previous holders made visible but did not record (they died or were
        // paused between the two) is recorded now, not published again.
        match recover(&db, &kafka, &topic, &lease).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                events = n,
                "licence events found on the topic beyond the recorded positions: recorded as published"
            ),
            Err(e) => {
                if stop_or_wait(&db, &instance, &e, &mut backoff).await {
                    return;
                }
                continue;
            }
        }
        if !cleared {
            components::clear_failure(&db, COMPONENT).await;
            cleared = true;
        }
        loop {
            match publish_round(&db, &producer, &topic, &lease).await {
                Ok(n) => {
                    backoff = Backoff::default();
                    if n == 0 {
                        tokio::time::sleep(IDLE).await;
                    } else {
                        tracing::debug!(events = n, "licence events published");
                    }
                }
                Err(e) => {
                    if stop_or_wait(&db, &instance, &e, &mut backoff).await {
                        return;
                    }
                    if matches!(e, PublishError::Broker(_)) {
                        // A transaction that failed leaves the producer unusable (fenced, or
                        // its state unknown): a new one is made, under the lease.
                        break;
                    }
                }
            }
        }
    }
}

/// After failure `e`: true when the publisher must stop (its lease is gone, or the failure
/// needs someone, which is recorded); otherwise waits before the next try.
async fn stop_or_wait(
    db: &PgPool,
    instance: &str,
    e: &PublishError,
    backoff: &mut Backoff,
) -> bool {
    if let PublishError::Database(d) = e {
        if cluster::is_lease_lost(d) {
            tracing::warn!("licence events: the lease on the duty moved on; stopping here");
            return true;
        }
    }
    if e.class() == Failure::Transient {
        tracing::warn!(error = %e, "licence events: publishing failed; retrying");
        PIPELINE.retried(Component::LicenceEvents, Stage::Produce);
        backoff.wait().await;
        false
    } else {
        tracing::error!(error = %e, "licence events stopped: they cannot be published until this is fixed");
        components::record_failure(db, COMPONENT, instance, &e.to_string()).await;
        true
    }
}

/// Reads the topic beyond the recorded positions and marks the events found there as
/// published; how many it found.
async fn recover(
    db: &PgPool,
    kafka: &KafkaConfig,
    topic: &str,
    lease: &Lease,
) -> Result<usize, PublishError> {
    let from = {
        let mut tx = lease.begin(db).await?;
        let from = store::event_positions(&mut tx).await?;
        tx.commit().await?;
        from
    };
    let found = fenced::committed_tail(kafka, topic, from).await?;
    if found.is_empty() {
        return Ok(0);
    }
    let mut positions = BTreeMap::new();
    let mut ids = Vec::with_capacity(found.len());
    for record in &found {
        let next = positions.entry(record.partition).or_insert(0);
        *next = (*next).max(record.offset + 1);
        // A record the hub did not write (no id) is passed over.
        if let Some(id) = serde_json::from_slice::<serde_json::Value>(&record.payload)
            .ok()
            .and_then(|v| v["id"].as_i64())
        {
            ids.push(id);
        }
    }
    let mut tx = lease.begin(db).await?;
    store::mark_published(&mut tx, &ids, Utc::now()).await?;
    store::advance_event_positions(&mut tx, &positions).await?;
    tx.commit().await?;
    Ok(ids.len())
}

async fn publish_round(
    db: &PgPool,
    producer: &FutureProducer,
    topic: &str,
    lease: &Lease,
) -> Result<usize, PublishError> {
    let events = {
        let mut tx = lease.begin(db).await?;
        let events = store::unpublished_events(&mut tx, BATCH).await?;
        tx.commit().await?;
        events
    };
    if events.is_empty() {
        return Ok(0);
    }
    fenced::begin(producer).await?;
    let produced = produce(producer, topic, &events).await;
    let positions = match produced {
        Ok(p) => p,
        Err(e) => {
            fenced::abort(producer).await;
            return Err(e);
        }
    };
    // Visible to readers from here on, unless this producer was fenced meanwhile.
    fenced::commit(producer).await?;
    let ids: Vec<i64> = events.iter().map(|e| e.event.id).collect();
    let mut tx = lease.begin(db).await?;
    store::mark_published(&mut tx, &ids, Utc::now()).await?;
    store::advance_event_positions(&mut tx, &positions).await?;
    tx.commit().await?;
    Ok(ids.len())
}

/// Produces `events` in the open transaction and waits until the broker has every one; the
/// offset after the last one on each partition.
async fn produce(
    producer: &FutureProducer,
    topic: &str,
    events: &[store::OutboxEvent],
) -> Result<BTreeMap<i32, i64>, PublishError> {
    let mut deliveries = Vec::with_capacity(events.len());
    for store::OutboxEvent {
        event: e,
        licence_type,
        department,
    } in events
    {
        let value = serde_json::json!({
            "id": e.id,
            "number": e.number,
            "version": e.version,
            "event": e.event,
            "licence_type": licence_type,
            "department": department,
            "actor": e.actor,
            "reason": e.reason,
            "at": e.at,
        })
        .to_string();
        let record = FutureRecord::to(topic).key(&e.number).payload(&value);
        deliveries.push(producer.send_result(record).map_err(|(err, _)| err)?);
    }
    let mut positions = BTreeMap::new();
    for d in deliveries {
        match d.await {
            Ok(Ok(delivery)) => {
                let next = positions.entry(delivery.partition).or_insert(0);
                *next = (*next).max(delivery.offset + 1);
            }
            Ok(Err((err, _))) => return Err(err.into()),
            Err(_) => return Err(KafkaError::Canceled.into()),
        }
    }
    Ok(positions)
}
