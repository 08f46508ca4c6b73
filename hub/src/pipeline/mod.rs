//! The ingest pipeline: department feeds → validated Kafka topics → the shared repository.
//!
//! - `topics`: the names of the hub's topics, and creating them;
//! - `ingest`: validate a batch, deliver it (valid → dataset topic, rejected → dead-letter
//!   topic), record it (counts, rejects, checkpoint) — shared by connectors and HTTP push;
//! - `leases`: one HTTP push request of a stream at a time;
//! - `connector`: runs one connector from its TOML file, from its stored checkpoint;
//! - `partitions`: which instance writes each dataset topic partition, at which epoch, and
//!   where it resumes (`sink_offsets`);
//! - `sink`: consumes the dataset topics into `repository_records`, storing offsets in the
//!   same transaction;
//! - `stats`: the reconciliation counts per dataset.

pub mod connector;
pub mod ingest;
pub mod leases;
pub mod partitions;
pub mod sink;
pub mod stats;
pub mod topics;

use std::time::Duration;

/// Waits between retries of an operation whose dependency is away: starts at 200 ms, doubles,
/// stays at 10 s. The one retry policy of the pipeline.
#[derive(Debug)]
pub struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            next: Duration::from_millis(200),
        }
    }
}

impl Backoff {
    /// Sleeps for the current wait and lengthens the next one.
    pub async fn wait(&mut self) {
        tokio::time::sleep(self.next).await;
        self.next = (self.next * 2).min(Duration::from_secs(10));
    }
}

/// A task aborted when this is dropped: work tied to the scope that started it (a fetcher,
/// a recorder, the sink of a serving instance).
#[derive(Debug)]
pub struct AbortOnDrop<T>(pub tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}
