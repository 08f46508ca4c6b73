//! The licence-events topic: every lifecycle event, published from the `licence_events`
//! outbox so that an event reaches the topic if and only if its change committed.
//!
//! Key: the licence number (all events of a licence stay in order on one partition). Value:
//! JSON `{"id", "number", "version", "event", "licence_type", "department", "actor",
//! "reason", "at"}`. Delivery is at least once: an event published just before a crash is
//! published again after it; consumers de-duplicate by `id`.

use std::time::Duration;

use chrono::Utc;
use rdkafka::producer::{FutureProducer, FutureRecord};
use sqlx::PgPool;

use super::store;
use crate::config::KafkaConfig;
use crate::kafka::{client_config, topic_name};
use crate::ops::metrics::{Component, Stage, PIPELINE};

/// Most events published in one round.
const BATCH: i64 = 500;
/// Pause when there is nothing to publish, and after a failure.
const IDLE: Duration = Duration::from_millis(500);

/// The licence-events topic.
pub fn topic(config: &KafkaConfig) -> String {
    topic_name(config, "licence-events")
}

/// Publishes unpublished events forever; failures are logged and retried.
pub async fn run_publisher(db: PgPool, kafka: KafkaConfig) {
    let producer: FutureProducer = match client_config(&kafka)
        .set("enable.idempotence", "true")
        .create()
    {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(error = %e, "licence events: cannot create the producer");
            return;
        }
    };
    let topic = topic(&kafka);
    loop {
        match publish_round(&db, &producer, &topic).await {
            Ok(0) => tokio::time::sleep(IDLE).await,
            Ok(n) => tracing::debug!(events = n, "licence events published"),
            Err(e) => {
                tracing::warn!(error = %e, "licence events: publishing failed; retrying");
                PIPELINE.retried(Component::LicenceEvents, Stage::Produce);
                tokio::time::sleep(IDLE).await;
            }
        }
    }
}

async fn publish_round(
    db: &PgPool,
    producer: &FutureProducer,
    topic: &str,
) -> Result<usize, Box<dyn std::error::Error + Send + Sync>> {
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
                return Err(Box::new(err));
            }
            Err(_) => break,
        }
    }
    store::mark_published(db, &ids, Utc::now()).await?;
    Ok(ids.len())
}
