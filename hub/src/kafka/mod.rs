//! The hub's only way to the broker: the Kafka protocol through rdkafka.
//!
//! Nothing here knows which broker implementation answers; the local stack runs Apache Kafka
//! as one KRaft node, a production hub points `kafka.brokers` at any Kafka cluster. Topics
//! are created through the admin API because a broker may not create them on first use.

pub mod fenced;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::FromClientConfigAndContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::ToBytes;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientConfig;

use crate::config::KafkaConfig;

/// What went wrong talking to the broker.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// The client could not be built from the configuration (a bad `kafka.options` key).
    #[error("cannot configure the Kafka client: {0}")]
    Config(#[source] KafkaError),
    /// The broker did not answer in time or refused the request; retriable.
    #[error("the broker at {brokers} did not answer: {source}")]
    Unreachable {
        /// The configured bootstrap brokers.
        brokers: String,
        /// The client's error.
        #[source]
        source: KafkaError,
    },
    /// The broker refused to create a topic.
    #[error("the broker refused to create topic `{topic}`: {code}")]
    CreateTopic {
        /// The topic.
        topic: String,
        /// The broker's error code.
        code: RDKafkaErrorCode,
    },
    /// The broker refused to delete a topic.
    #[error("the broker refused to delete topic `{topic}`: {code}")]
    DeleteTopic {
        /// The topic.
        topic: String,
        /// The broker's error code.
        code: RDKafkaErrorCode,
    },
    /// A blocking broker call's task failed.
    #[error("a broker task failed: {0}")]
    Task(String),
}

/// A librdkafka client configuration for the configured cluster, with the operator's extra
/// properties applied last so that they can change anything.
pub fn client_config(config: &KafkaConfig) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &config.brokers);
    // Produce and fetch requests keep librdkafka's own timeouts (30 s request, 60 s socket):
    // a shorter one makes a slow broker look failed, and the retries it causes are what an
    // idempotent producer should never need. `request_timeout` bounds admin and metadata
    // calls, which take it explicitly.
    c.set("log_level", "3");
    // Above the largest record a feed may send (1 MiB, `max_record_bytes`) with its headers,
    // so that a record the hub accepted is never one the client refuses to send.
    c.set("message.max.bytes", MAX_MESSAGE_BYTES);
    for (k, v) in &config.options {
        c.set(k, v);
    }
    c
}

/// The largest record batch the hub's clients send and its topics take (3 MiB): above the
/// largest record a feed may send, with its headers.
pub const MAX_MESSAGE_BYTES: &str = "3145728";

/// The full name of a hub topic: the configured prefix plus the topic's own name.
pub fn topic_name(config: &KafkaConfig, name: &str) -> String {
    format!("{}{}", config.topic_prefix, name)
}

/// Asks the broker for its cluster metadata; `Ok` with the number of brokers that answered.
/// This is the readiness probe: it proves the broker speaks the Kafka protocol to us.
pub async fn probe(config: &KafkaConfig) -> Result<usize, BrokerError> {
    let client_config = client_config(config);
    let timeout = config.request_timeout;
    let brokers = config.brokers.clone();
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = client_config.create().map_err(BrokerError::Config)?;
        let metadata = consumer
            .fetch_metadata(None, timeout)
            .map_err(|source| BrokerError::Unreachable { brokers, source })?;
        Ok(metadata.brokers().len())
    })
    .await
    .map_err(|e| BrokerError::Task(e.to_string()))?
}

/// An admin client for the configured cluster.
fn admin_client(config: &KafkaConfig) -> Result<AdminClient<DefaultClientContext>, BrokerError> {
    client_config(config).create().map_err(BrokerError::Config)
}

/// Admin requests wait for the broker up to `request_timeout`.
fn admin_options(config: &KafkaConfig) -> AdminOptions {
    AdminOptions::new().operation_timeout(Some(config.request_timeout))
}

/// An admin request that got no answer: the broker is unreachable.
fn unreachable(config: &KafkaConfig) -> impl FnOnce(KafkaError) -> BrokerError + '_ {
    |source| BrokerError::Unreachable {
        brokers: config.brokers.clone(),
        source,
    }
}

/// Drops an admin client on a thread of its own: dropping it waits for its polling thread,
/// which wakes every 100 ms; let that happen beside whatever the caller does next.
fn drop_beside(admin: AdminClient<DefaultClientContext>) {
    std::thread::spawn(move || drop(admin));
}

/// Creates the topics that do not exist yet, each with the configured partitions,
/// replication, `min.insync.replicas`, retention and compression; topics that already exist
/// are left as they are.
pub async fn ensure_topics(config: &KafkaConfig, topics: &[String]) -> Result<(), BrokerError> {
    if topics.is_empty() {
        return Ok(());
    }
    let admin = admin_client(config)?;
    let min_insync = config.min_insync_replicas.to_string();
    let retention_ms = config.retention.as_millis().to_string();
    let new_topics: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|t| {
            NewTopic::new(
                t,
                config.partitions,
                TopicReplication::Fixed(config.replication_factor),
            )
            .set("min.insync.replicas", &min_insync)
            .set("retention.ms", &retention_ms)
            .set("compression.type", &config.compression)
            .set("max.message.bytes", MAX_MESSAGE_BYTES)
        })
        .collect();
    let results = admin
        .create_topics(new_topics.iter(), &admin_options(config))
        .await
        .map_err(unreachable(config))?;
    drop_beside(admin);
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => return Err(BrokerError::CreateTopic { topic, code }),
        }
    }
    Ok(())
}

/// Deletes the topics, with their records; a topic that is already gone counts as deleted.
/// The first topic the broker refuses to delete (an ACL without `DELETE`, say) is the error.
pub async fn delete_topics(config: &KafkaConfig, topics: &[String]) -> Result<(), BrokerError> {
    if topics.is_empty() {
        return Ok(());
    }
    let admin = admin_client(config)?;
    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
    let results = admin
        .delete_topics(&names, &admin_options(config))
        .await
        .map_err(unreachable(config))?;
    drop_beside(admin);
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::UnknownTopicOrPartition)) => {}
            Err((topic, code)) => return Err(BrokerError::DeleteTopic { topic, code }),
        }
    }
    Ok(())
}

/// How long the polling thread of a [`PolledProducer`] waits for an event at a time: also how
/// long dropping the producer may wait for that thread. An idle producer's thread wakes a
/// hundred times a second, which costs next to nothing.
const PRODUCER_POLL: Duration = Duration::from_millis(10);

/// A record the producer did not take, with the reason (a full queue, say).
pub type NotQueued<'a, K, P, O> = (KafkaError, BaseRecord<'a, K, P, O>);

/// A producer whose events (delivery reports above all) are served by a thread of its own.
///
/// rdkafka's `ThreadedProducer` does the same, but its thread waits up to 100 ms at a time,
/// and dropping it waits for that thread: a command that produces and exits lost that much at
/// its end. This one waits [`PRODUCER_POLL`].
pub struct PolledProducer<C: ProducerContext + 'static> {
    producer: Arc<BaseProducer<C>>,
    stop: Arc<AtomicBool>,
    poller: Option<JoinHandle<()>>,
}

impl<C: ProducerContext + 'static> PolledProducer<C> {
    /// A producer for `config` with `context`, its polling thread started.
    pub fn new(config: &ClientConfig, context: C) -> Result<Self, BrokerError> {
        let producer = Arc::new(
            BaseProducer::from_config_and_context(config, context).map_err(BrokerError::Config)?,
        );
        let stop = Arc::new(AtomicBool::new(false));
        let poller = {
            let producer = Arc::clone(&producer);
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name("producer events".into())
                .spawn(move || {
                    while !stop.load(Ordering::Acquire) {
                        producer.poll(PRODUCER_POLL);
                    }
                })
                .map_err(|e| BrokerError::Task(format!("cannot start a thread: {e}")))?
        };
        Ok(Self {
            producer,
            stop,
            poller: Some(poller),
        })
    }

    /// Queues one record; see rdkafka's `BaseProducer::send`.
    #[allow(clippy::result_large_err)] // rdkafka gives the record back with its error
    pub fn send<'a, K, P>(
        &self,
        record: BaseRecord<'a, K, P, C::DeliveryOpaque>,
    ) -> Result<(), NotQueued<'a, K, P, C::DeliveryOpaque>>
    where
        K: ToBytes + ?Sized,
        P: ToBytes + ?Sized,
    {
        self.producer.send(record)
    }

    /// How many records the producer holds that the brokers have not answered for.
    pub fn in_flight_count(&self) -> i32 {
        self.producer.in_flight_count()
    }

    /// The fatal error the producer met, if it met one: it then delivers nothing more (its
    /// queued records fail) and must be replaced.
    pub fn fatal_error(&self) -> Option<(RDKafkaErrorCode, String)> {
        self.producer.client().fatal_error()
    }

    /// Asks the cluster for the metadata of `topic`, waiting for a broker to be up.
    ///
    /// Besides filling the producer's metadata cache, every metadata answer makes an
    /// idempotent producer ask for its producer id if it has none. It asks once at start,
    /// when no broker is up yet (the bootstrap broker is retired as soon as the cluster's own
    /// brokers are known), and then only every 500 ms: without this, its first records waited
    /// for that timer.
    pub async fn fetch_metadata(
        &self,
        topic: &str,
        brokers: &str,
        timeout: Duration,
    ) -> Result<(), BrokerError> {
        let producer = Arc::clone(&self.producer);
        let topic = topic.to_owned();
        let brokers = brokers.to_owned();
        tokio::task::spawn_blocking(move || {
            producer
                .client()
                .fetch_metadata(Some(&topic), timeout)
                .map(drop)
                .map_err(|source| BrokerError::Unreachable { brokers, source })
        })
        .await
        .map_err(|e| BrokerError::Task(e.to_string()))?
    }
}

impl<C: ProducerContext + 'static> std::fmt::Debug for PolledProducer<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolledProducer").finish_non_exhaustive()
    }
}

impl<C: ProducerContext + 'static> Drop for PolledProducer<C> {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(poller) = self.poller.take() {
            // The thread only polls; a panic there has nothing left to report.
            let _ = poller.join();
        }
    }
}
