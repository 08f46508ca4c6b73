//! The hub's topics: one per dataset (valid records, key = primary key), one dead-letter
//! topic (rejected records with their reasons), the licence-events topic and the
//! audit-checkpoints topic.

use bohai_schemas::Registry;

use crate::config::KafkaConfig;
use crate::kafka::{self, BrokerError};

/// The topic of a dataset's valid records.
pub fn dataset_topic(config: &KafkaConfig, dataset: &str) -> String {
    kafka::topic_name(config, &format!("dataset.{dataset}"))
}

/// The dead-letter topic.
pub fn dead_letter_topic(config: &KafkaConfig) -> String {
    kafka::topic_name(config, "dead-letter")
}

/// Every topic the pipeline needs for `registry`.
pub fn all(config: &KafkaConfig, registry: &Registry) -> Vec<String> {
    let mut topics: Vec<String> = registry
        .datasets
        .iter()
        .map(|d| dataset_topic(config, &d.id))
        .collect();
    topics.push(dead_letter_topic(config));
    topics.push(crate::licences::events::topic(config));
    topics.push(crate::audit::checkpoint::topic(config));
    topics
}

/// Creates the pipeline's topics that do not exist yet.
pub async fn ensure(config: &KafkaConfig, registry: &Registry) -> Result<(), BrokerError> {
    kafka::ensure_topics(config, &all(config, registry)).await
}
