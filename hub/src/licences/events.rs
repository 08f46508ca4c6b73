//! The licence-events topic: every lifecycle event, published from the `licence_events`
//! outbox so that an event reaches the topic if and only if its change committed.
//!
//! Key: the licence number (all events of a licence stay in order on one partition). Value:
//! JSON `{"id", "number", "version", "event", "licence_type", "department", "actor",
//! "reason", "at"}`. Delivery is at least once: an event published just before a crash is
//! published again after it; consumers de-duplicate by `id`.

use std::time::Duration;

use chrono::Utc;
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, FutureRecord};
use sqlx::PgPool;

use super::store;
use crate::config::KafkaConfig;
use crate::failure::Failure;
use crate::kafka::{client_config, topic_name};
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

/// Publishes unpublished events until the task is dropped: transient failures are waited out
/// and counted; one that needs someone (a missing table, an authorization the broker refuses)
/// stops the publisher and is recorded for `bohai status`.
pub async fn run_publisher(db: PgPool, kafka: KafkaConfig, instance: std::sync::Arc<str>) {
    let producer: FutureProducer = match client_config(&kafka)
        .set("enable.idempotence", "true")
        .create()
    {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(error = %e, "licence events: cannot create the producer");
            components::record_failure(&db, COMPONENT, &instance, &e.to_string()).await;
            return;
        }
    };
    let topic = topic(&kafka);
    components::clear_failure(&db, COMPONENT).await;
    let mut backoff = Backoff::default();
    loop {
        match publish_round(&db, &producer, &topic).await {
            Ok(n) => {
                backoff = Backoff::default();
                if n == 0 {
                    tokio::time::sleep(IDLE).await;
                } else {
                    tracing::debug!(events = n, "licence events published");
                }
            }
            Err(e) if e.class() == Failure::Transient => {
                tracing::warn!(error = %e, "licence events: publishing failed; retrying");
                PIPELINE.retried(Component::LicenceEvents, Stage::Produce);
                backoff.wait().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "licence events stopped: they cannot be published until this is fixed");
                components::record_failure(&db, COMPONENT, &instance, &e.to_string()).await;
                return;
            }
        }
    }
}

async fn publish_round(
    db: &PgPool,
    producer: &FutureProducer,
    topic: &str,
) -> Result<usize, PublishError> {
    let events = store::unpublished_events(db, BATCH).await?;
    if events.is_empty() {
        return Ok(0);
    }
    let mut deliveries = Vec::with_capacity(events.len());
    for store::OutboxEvent {
        event: e,
        licence_type,
        department,
    } in &events
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
    let mut ids = Vec::with_capacity(events.len());
    for (d, store::OutboxEvent { event: e, .. }) in deliveries.into_iter().zip(&events) {
        match d.await {
            Ok(Ok(_)) => ids.push(e.id),
            Ok(Err((err, _))) => {
                store::mark_published(db, &ids, Utc::now()).await?;
                return Err(err.into());
            }
            Err(_) => break,
        }
    }
    store::mark_published(db, &ids, Utc::now()).await?;
    Ok(ids.len())
}
