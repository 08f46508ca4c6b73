//! The hub's only way to the broker: the Kafka protocol through rdkafka.
//!
//! Nothing here knows which broker implementation answers; the local stack runs tansu, a
//! production hub points `kafka.brokers` at any Kafka cluster. Topics are created through the
//! admin API because a broker may not create them on first use.

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
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
    for (k, v) in &config.options {
        c.set(k, v);
    }
    c
}

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

/// Creates the topics that do not exist yet, each with the configured partitions and
/// replication; topics that already exist are left as they are.
pub async fn ensure_topics(config: &KafkaConfig, topics: &[String]) -> Result<(), BrokerError> {
    if topics.is_empty() {
        return Ok(());
    }
    let admin: AdminClient<DefaultClientContext> = client_config(config)
        .create()
        .map_err(BrokerError::Config)?;
    let new_topics: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|t| {
            NewTopic::new(
                t,
                config.partitions,
                TopicReplication::Fixed(config.replication_factor),
            )
        })
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(config.request_timeout));
    let results = admin
        .create_topics(new_topics.iter(), &options)
        .await
        .map_err(|source| BrokerError::Unreachable {
            brokers: config.brokers.clone(),
            source,
        })?;
    // Dropping an admin client waits for its polling thread, which wakes every 100 ms:
    // let that happen beside whatever the caller does next.
    std::thread::spawn(move || drop(admin));
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => return Err(BrokerError::CreateTopic { topic, code }),
        }
    }
    Ok(())
}
