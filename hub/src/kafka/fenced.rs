//! Transactional producers, the broker's own fencing: all producers of one duty share a
//! `transactional.id`, and making a new one (`init_transactions`) aborts the transaction the
//! previous one left open and fences that producer, so that an instance that lost the duty's
//! lease (paused, cut off) can never again make a record visible on the duty's topics, even
//! if it resumes in the middle of a batch. Readers that use `isolation.level =
//! read_committed` (librdkafka's default) see committed transactions only.
//!
//! The transaction calls of librdkafka block; they run on the blocking pool.

use std::time::Duration;

use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::producer::{FutureProducer, Producer};

use super::client_config;
use crate::config::KafkaConfig;

/// How long a transaction call may wait for the broker.
const TXN_TIMEOUT: Duration = Duration::from_secs(30);

/// The `transactional.id` of duty `duty` of this hub (its topic prefix keeps hubs that share
/// a cluster apart).
pub fn transactional_id(config: &KafkaConfig, duty: &str) -> String {
    format!("{}duty.{duty}", config.topic_prefix)
}

/// A transactional producer for `duty`, ready: every earlier producer of the duty is fenced
/// once this returns. Make it only while holding the duty's lease.
pub async fn producer(config: &KafkaConfig, duty: &str) -> KafkaResult<FutureProducer> {
    let producer: FutureProducer = client_config(config)
        .set("enable.idempotence", "true")
        .set("transactional.id", transactional_id(config, duty))
        .create()?;
    blocking(&producer, |p| p.init_transactions(TXN_TIMEOUT)).await?;
    Ok(producer)
}

/// Begins a transaction.
pub async fn begin(producer: &FutureProducer) -> KafkaResult<()> {
    blocking(producer, |p| p.begin_transaction()).await
}

/// Commits the open transaction: its records become visible, unless this producer was fenced.
pub async fn commit(producer: &FutureProducer) -> KafkaResult<()> {
    blocking(producer, |p| p.commit_transaction(TXN_TIMEOUT)).await
}

/// Aborts the open transaction, as well as it can (a fenced producer cannot: its transaction
/// was aborted by the one that fenced it).
pub async fn abort(producer: &FutureProducer) {
    if let Err(e) = blocking(producer, |p| p.abort_transaction(TXN_TIMEOUT)).await {
        tracing::debug!(error = %e, "cannot abort the transaction");
    }
}

async fn blocking(
    producer: &FutureProducer,
    call: impl FnOnce(&FutureProducer) -> KafkaResult<()> + Send + 'static,
) -> KafkaResult<()> {
    let producer = producer.clone();
    tokio::task::spawn_blocking(move || call(&producer))
        .await
        .unwrap_or(Err(KafkaError::Canceled))
}

/// Where each partition of `topic` ends now (its high watermark): with only this duty's
/// producer writing the topic, after a committed transaction every record it made is below.
pub async fn end_offsets(
    producer: &FutureProducer,
    topic: &str,
    timeout: Duration,
) -> KafkaResult<std::collections::BTreeMap<i32, i64>> {
    let producer = producer.clone();
    let topic = topic.to_owned();
    tokio::task::spawn_blocking(move || {
        let client = producer.client();
        let metadata = client.fetch_metadata(Some(&topic), timeout)?;
        let mut ends = std::collections::BTreeMap::new();
        for p in metadata.topics().iter().flat_map(|t| t.partitions()) {
            let (_, high) = client.fetch_watermarks(&topic, p.id(), timeout)?;
            ends.insert(p.id(), high);
        }
        Ok(ends)
    })
    .await
    .unwrap_or(Err(KafkaError::Canceled))
}

/// One committed record of a topic.
#[derive(Debug, Clone)]
pub struct Committed {
    /// Its partition.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
    /// Its value.
    pub payload: Vec<u8>,
    /// Its headers, by name (a header without a value as empty).
    pub headers: Vec<(String, Vec<u8>)>,
}

impl Committed {
    /// The value of its header `name`, if it has one.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }
}

/// The committed records of `topic` from `from` (the next offset of each partition; a
/// partition not named is read from its beginning) up to its end now. Called by a new holder
/// of a duty after [`producer`], which waits until the previous holder's last transaction is
/// committed or aborted: what this returns is every record the previous holders made visible
/// beyond the positions the duty recorded.
pub async fn committed_tail(
    config: &KafkaConfig,
    topic: &str,
    from: std::collections::BTreeMap<i32, i64>,
) -> KafkaResult<Vec<Committed>> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::Headers as _;
    use rdkafka::{Message, Offset, TopicPartitionList};

    let client = client_config(config)
        .set("group.id", format!("{topic}.tail"))
        .set("isolation.level", "read_committed")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .to_owned();
    let timeout = config.request_timeout;
    let topic = topic.to_owned();
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = client.create()?;
        let metadata = consumer.fetch_metadata(Some(&topic), timeout)?;
        let mut list = TopicPartitionList::new();
        let mut ends = Vec::new();
        for p in metadata.topics().iter().flat_map(|t| t.partitions()) {
            let start = from.get(&p.id()).copied().unwrap_or(0);
            let (low, high) = consumer.fetch_watermarks(&topic, p.id(), timeout)?;
            if high > start.max(low) {
                list.add_partition_offset(&topic, p.id(), Offset::Offset(start.max(low)))?;
                ends.push((p.id(), high));
            }
        }
        let mut found = Vec::new();
        if ends.is_empty() {
            return Ok(found);
        }
        consumer.assign(&list)?;
        let deadline = std::time::Instant::now() + TXN_TIMEOUT.max(timeout * 4);
        loop {
            let position = consumer.position()?;
            let done = ends.iter().all(|(p, high)| {
                matches!(
                    position.find_partition(&topic, *p).map(|e| e.offset()),
                    Some(Offset::Offset(o)) if o >= *high
                )
            });
            if done {
                return Ok(found);
            }
            if std::time::Instant::now() >= deadline {
                return Err(KafkaError::Canceled);
            }
            if let Some(m) = consumer.poll(Duration::from_millis(200)) {
                let m = m?;
                let headers = m
                    .headers()
                    .map(|hs| {
                        hs.iter()
                            .map(|h| (h.key.to_owned(), h.value.unwrap_or_default().to_vec()))
                            .collect()
                    })
                    .unwrap_or_default();
                found.push(Committed {
                    partition: m.partition(),
                    offset: m.offset(),
                    payload: m.payload().unwrap_or_default().to_vec(),
                    headers,
                });
            }
        }
    })
    .await
    .unwrap_or(Err(KafkaError::Canceled))
}
