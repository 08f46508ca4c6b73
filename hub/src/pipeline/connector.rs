//! Runs one connector: reads batches from its source, starting at its stored checkpoint,
//! and passes each through the ingest step. Used by `bohai connect run FILE` and by
//! `bohai serve` for every connector file it is configured with.

use std::sync::Arc;

use bohai_connectors::config::SourceContext;
use bohai_connectors::{Checkpoint, ConnectorConfig};
use serde::Serialize;
use sqlx::PgPool;

use super::ingest::{Checked, Commit, InFlight, IngestError, Ingestor};
use super::{AbortOnDrop, Backoff};
use crate::failure::Failure;
use crate::ops::metrics::{Component, Stage, PIPELINE};

/// Why a connector could not run.
#[derive(Debug, thiserror::Error)]
pub enum ConnectorError {
    /// The connector names a dataset the registry does not have.
    #[error("connector `{connector}`: no dataset `{dataset}` in the registry")]
    UnknownDataset {
        /// The connector.
        connector: String,
        /// The dataset it names.
        dataset: String,
    },
    /// The source failed in a way waiting does not fix.
    #[error("connector `{connector}`: {source}")]
    Source {
        /// The connector.
        connector: String,
        /// Why.
        #[source]
        source: bohai_connectors::SourceError,
    },
    /// Delivering or recording a batch failed in a way waiting does not fix (a missing table,
    /// a permission denied): the connector stops rather than retry for ever.
    #[error("connector `{connector}`: {source}")]
    Ingest {
        /// The connector.
        connector: String,
        /// Why.
        #[source]
        source: IngestError,
    },
    /// The checkpoint could not be read.
    #[error("connector `{connector}`: reading its checkpoint failed: {source}")]
    Checkpoint {
        /// The connector.
        connector: String,
        /// Why.
        #[source]
        source: sqlx::Error,
    },
}

impl ConnectorError {
    /// Whether the run stopped because its lease on the connector's duty moved on (another
    /// instance runs the connector now).
    pub fn is_lease_lost(&self) -> bool {
        matches!(
            self,
            ConnectorError::Ingest {
                source: IngestError::Database(e),
                ..
            } if crate::cluster::is_lease_lost(e)
        )
    }
}

/// What one run did.
#[derive(Debug, Default, Clone, Copy, Serialize)]
pub struct RunSummary {
    /// Records read.
    pub read: u64,
    /// Records that passed.
    pub valid: u64,
    /// Records rejected (each in the dead-letter topic and `rejected_records`).
    pub rejected: u64,
}

/// When a run ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunUntil {
    /// When the source is finished or has nothing now.
    Idle,
    /// When the source is finished (a single file); a drop folder is watched for ever.
    Finished,
}

/// Runs `config` until `until`; `progress` is called after every committed batch. Under
/// `lease` (the connector's duty in `bohai serve`), each batch's checkpoint is committed only
/// while the lease holds ([`crate::cluster::Lease::fence`]).
pub async fn run(
    config: &ConnectorConfig,
    ingestor: &Ingestor,
    db: &PgPool,
    until: RunUntil,
    lease: Option<&crate::cluster::Lease>,
    mut progress: impl FnMut(&RunSummary),
) -> Result<RunSummary, ConnectorError> {
    let registry = Arc::clone(ingestor.registry());
    let dataset_index = registry
        .datasets
        .iter()
        .position(|d| d.id == config.dataset)
        .ok_or_else(|| ConnectorError::UnknownDataset {
            connector: config.name.clone(),
            dataset: config.dataset.clone(),
        })?;
    let dataset = &registry.datasets[dataset_index];
    let checkpoint = load_checkpoint(db, &config.name).await?;
    let field_types = dataset
        .schema
        .get("properties")
        .and_then(|p| p.as_object())
        .map(|props| {
            props
                .keys()
                .filter_map(|k| dataset.field_type(k).map(|t| (k.clone(), t.to_owned())))
                .collect()
        })
        .unwrap_or_default();
    let source_error = |source| ConnectorError::Source {
        connector: config.name.clone(),
        source,
    };
    let mut source = config
        .build(SourceContext {
            name: config.name.clone(),
            field_types,
            max_record_bytes: config.max_record_bytes,
            checkpoint,
        })
        .map_err(source_error)?;
    let mut backoff = Backoff::default();
    let mut handoff = Handoff::new(config, ingestor, lease.cloned());
    // The batch read while the one before it was checked.
    let mut read_ahead = None;
    loop {
        let next = match read_ahead.take() {
            Some(next) => next,
            None => source.next_batch(config.batch_size).await,
        };
        match next {
            Ok(Some(batch)) => {
                // Check on the blocking pool (on every core) while the batch before is handed
                // to the broker and the source reads the next one.
                let checking = {
                    let ingestor = ingestor.clone();
                    let registry = Arc::clone(&registry);
                    tokio::task::spawn_blocking(move || {
                        let dataset = &registry.datasets[dataset_index];
                        ingestor.check(dataset, batch)
                    })
                };
                if handoff.send_checked(source.as_mut()).await? {
                    progress(&handoff.summary);
                }
                read_ahead = Some(source.next_batch(config.batch_size).await);
                let checked = checking
                    .await
                    .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
                handoff.checked_last = Some(checked);
            }
            Ok(None) if handoff.pending() => {
                handoff.send_checked(source.as_mut()).await?;
                handoff.finish_all(source.as_mut()).await?;
                progress(&handoff.summary);
            }
            Ok(None) => {
                if source.finished() || until == RunUntil::Idle {
                    return Ok(handoff.summary);
                }
                tokio::time::sleep(config.poll_interval).await;
            }
            Err(e) if e.is_retriable() => {
                tracing::warn!(connector = %config.name, error = %e, "source not readable; retrying");
                PIPELINE.retried(Component::Connector, Stage::Source);
                backoff.wait().await;
            }
            Err(e) => return Err(source_error(e)),
        }
    }
}

/// Most batches handed to the broker and not yet committed.
const MAX_IN_FLIGHT: usize = 8;

/// How long a batch waits for the broker's acknowledgements before the wait is logged and
/// counted as a retry (the producer itself never gives up on a record).
const ACK_STALL: std::time::Duration = std::time::Duration::from_secs(30);

/// Checked batches on their way to the broker and into the database, in source order.
///
/// Three things overlap: the checking of the next batch (on the blocking pool), handing the
/// batch checked before it to the broker (here), and recording delivered batches in the
/// database (a task of their own, [`record_delivered`], one batch after another so that
/// checkpoints and counts advance in order). Recording took a quarter of a run's time when
/// this loop waited for it.
///
/// When a batch fails, no later batch may reach the broker before it is delivered again: the
/// sink skips a stream's records at or below the last one it applied, so a record sent again
/// after later ones would be taken for one already applied. The [`SendGate`] keeps handing
/// over and repairing apart.
struct Handoff<'a> {
    config: &'a ConnectorConfig,
    ingestor: &'a Ingestor,
    /// The batch checked last, not yet handed to the broker: it is handed over while the next
    /// one is checked.
    checked_last: Option<Checked>,
    /// To the recording task: batches handed to the broker, oldest first. Its capacity bounds
    /// how many are in flight.
    to_record: tokio::sync::mpsc::Sender<(Checked, InFlight)>,
    /// From the recording task: batches committed, in order, or why it stopped.
    recorded: tokio::sync::mpsc::UnboundedReceiver<Result<Recorded, IngestError>>,
    /// Held while a batch is handed over, and by the recording task while it repairs.
    gate: Arc<SendGate>,
    /// Batches handed to the recording task and not yet back.
    recording: usize,
    /// The generation of the producer the last batch was handed to.
    generation: Option<u64>,
    /// The recording task: stopped with the handoff, so that a connector stopped from
    /// outside (its task aborted) commits nothing more.
    _recorder: AbortOnDrop<()>,
    /// What the committed batches held.
    summary: RunSummary,
}

/// What became of a batch to hand over.
enum Handed {
    Sent,
    /// The recording task stopped.
    Stopped,
    /// The producer was replaced while batches were in flight.
    Replaced,
}

/// Handing batches over and delivering failed ones again exclude each other; `true` once the
/// recording task stopped (nothing more may be handed over).
type SendGate = tokio::sync::Mutex<bool>;

/// A batch whose delivery, counts and checkpoint are committed.
#[derive(Debug)]
struct Recorded {
    checkpoint: Checkpoint,
    read: u64,
    valid: u64,
    rejected: u64,
}

impl<'a> Handoff<'a> {
    fn new(
        config: &'a ConnectorConfig,
        ingestor: &'a Ingestor,
        lease: Option<crate::cluster::Lease>,
    ) -> Self {
        let (to_record, queue) = tokio::sync::mpsc::channel(MAX_IN_FLIGHT - 1);
        let (done, recorded) = tokio::sync::mpsc::unbounded_channel();
        let gate = Arc::new(SendGate::new(false));
        let recorder = AbortOnDrop(tokio::spawn(record_delivered(
            config.name.clone(),
            ingestor.clone(),
            lease,
            Arc::clone(&gate),
            queue,
            done,
        )));
        Self {
            config,
            ingestor,
            checked_last: None,
            to_record,
            recorded,
            gate,
            recording: 0,
            generation: None,
            _recorder: recorder,
            summary: RunSummary::default(),
        }
    }

    /// Whether a batch is checked and not yet committed.
    fn pending(&self) -> bool {
        self.checked_last.is_some() || self.recording > 0
    }

    /// Hands the batch checked last, if any, to the broker and queues it to be recorded
    /// (waiting while too many are in flight); finishes the batches recorded meanwhile.
    /// Whether there was one.
    async fn send_checked(
        &mut self,
        source: &mut dyn bohai_connectors::Source,
    ) -> Result<bool, ConnectorError> {
        let Some(batch) = self.checked_last.take() else {
            return Ok(false);
        };
        let mut checked = Some(batch);
        let (name, ingestor) = (self.config.name.clone(), self.ingestor);
        while let Some(batch) = checked.as_ref() {
            // A place in the queue first, so that the gate is never held while waiting for
            // one (the recording task may need the gate to empty the queue).
            let Ok(place) = self.to_record.clone().reserve_owned().await else {
                return Err(self.stopped(source).await);
            };
            // The producer the batches in flight went to: a batch handed to a newer one could
            // overtake them if they failed with the old one.
            let earlier = self.generation.filter(|_| self.recording > 0);
            let outcome = {
                let gate = self.gate.lock().await;
                if *gate {
                    Handed::Stopped
                } else {
                    let mut backoff = Backoff::default();
                    loop {
                        match ingestor.send_after(batch, &name, earlier).await {
                            Ok(sent) => {
                                // Queued under the gate: a repair started after this sees it.
                                self.generation = Some(sent.generation());
                                if let Some(batch) = checked.take() {
                                    place.send((batch, sent));
                                }
                                break Handed::Sent;
                            }
                            Err(IngestError::ProducerReplaced) => break Handed::Replaced,
                            Err(e) if e.class() == Failure::Transient => {
                                tracing::warn!(connector = %name, error = %e, "retrying");
                                PIPELINE.retried(Component::Connector, Stage::Produce);
                                backoff.wait().await;
                            }
                            Err(source) => {
                                tracing::error!(connector = %name, error = %source, "stopping: retrying cannot mend this");
                                return Err(ConnectorError::Ingest {
                                    connector: name,
                                    source,
                                });
                            }
                        }
                    }
                }
            };
            match outcome {
                Handed::Sent => break,
                Handed::Stopped => return Err(self.stopped(source).await),
                // Every batch in flight is recorded first (delivered again if it failed with
                // the old producer); then nothing can be overtaken.
                Handed::Replaced => self.finish_all(source).await?,
            }
        }
        self.recording += 1;
        while let Ok(recorded) = self.recorded.try_recv() {
            self.finish(recorded, source).await?;
        }
        Ok(true)
    }

    /// Why the recording task stopped, after finishing the batches it recorded before.
    async fn stopped(&mut self, source: &mut dyn bohai_connectors::Source) -> ConnectorError {
        loop {
            match self.recorded.recv().await {
                Some(recorded) => {
                    if let Err(e) = self.finish(recorded, source).await {
                        return e;
                    }
                }
                None => {
                    return ConnectorError::Ingest {
                        connector: self.config.name.clone(),
                        source: IngestError::Stopped,
                    }
                }
            }
        }
    }

    /// Waits until every batch handed over is recorded, and finishes each.
    async fn finish_all(
        &mut self,
        source: &mut dyn bohai_connectors::Source,
    ) -> Result<(), ConnectorError> {
        while self.recording > 0 {
            let Some(recorded) = self.recorded.recv().await else {
                return Err(self.stopped(source).await);
            };
            self.finish(recorded, source).await?;
        }
        Ok(())
    }

    /// Lets the source finish a recorded batch (a drop folder moves a finished file aside).
    async fn finish(
        &mut self,
        recorded: Result<Recorded, IngestError>,
        source: &mut dyn bohai_connectors::Source,
    ) -> Result<(), ConnectorError> {
        self.recording = self.recording.saturating_sub(1);
        let name = &self.config.name;
        let recorded = recorded.map_err(|source| ConnectorError::Ingest {
            connector: name.clone(),
            source,
        })?;
        let mut backoff = Backoff::default();
        loop {
            match source.committed(&recorded.checkpoint).await {
                Ok(()) => break,
                Err(e) if e.is_retriable() => {
                    tracing::warn!(connector = %name, error = %e, "finishing a batch failed; retrying");
                    PIPELINE.retried(Component::Connector, Stage::Source);
                    backoff.wait().await;
                }
                Err(e) => {
                    return Err(ConnectorError::Source {
                        connector: name.clone(),
                        source: e,
                    })
                }
            }
        }
        self.summary.read += recorded.read;
        self.summary.rejected += recorded.rejected;
        self.summary.valid += recorded.valid;
        Ok(())
    }
}

/// The recording task: for each batch in order, waits for the broker's acknowledgements,
/// then commits it (rejects, counts, audit entry and checkpoint in one transaction),
/// retrying while the database is away. Ends when the handoff is dropped, after the batches
/// already queued, or at the first failure waiting does not mend (the gate then says so).
///
/// A batch the broker failed is repaired under the gate: no batch is handed over meanwhile;
/// every batch already handed over is waited for; then the failed batches are delivered
/// again, oldest first, each before the next. In each partition what the broker took of them
/// is a prefix of what was sent (the producer fails every record after a refused one), so
/// what the sink already applied is exactly what it skips.
async fn record_delivered(
    name: String,
    ingestor: Ingestor,
    lease: Option<crate::cluster::Lease>,
    gate: Arc<SendGate>,
    mut queue: tokio::sync::mpsc::Receiver<(Checked, InFlight)>,
    done: tokio::sync::mpsc::UnboundedSender<Result<Recorded, IngestError>>,
) {
    while let Some((checked, sent)) = queue.recv().await {
        let result = match acknowledged(&name, &sent).await {
            Ok(()) => commit(&name, &ingestor, &checked, lease.as_ref()).await,
            Err(failure) => {
                let mut stopped = gate.lock().await;
                // Every batch handed over is in the queue now: none is handed over while the
                // gate is held.
                let mut later = Vec::new();
                while let Ok(next) = queue.try_recv() {
                    later.push(next);
                }
                let mut failures = vec![Err(failure)];
                for (_, sent) in &later {
                    failures.push(acknowledged(&name, sent).await);
                }
                let batches = std::iter::once(&checked).chain(later.iter().map(|(c, _)| c));
                let mut ended = false;
                for (checked, first) in batches.zip(failures) {
                    let result = match first {
                        Ok(()) => commit(&name, &ingestor, checked, lease.as_ref()).await,
                        Err(e) => deliver_again(&name, &ingestor, checked, e, lease.as_ref()).await,
                    };
                    ended = result.is_err();
                    // The handoff is gone when its run ended (the task is then aborted).
                    let _ = done.send(result);
                    if ended {
                        break;
                    }
                }
                if ended {
                    *stopped = true;
                    return;
                }
                continue;
            }
        };
        let ended = result.is_err();
        if ended {
            *gate.lock().await = true;
        }
        let _ = done.send(result);
        if ended {
            return;
        }
    }
}

/// Waits for the broker's answer for every record of a batch, saying so while it waits.
async fn acknowledged(name: &str, sent: &InFlight) -> Result<(), IngestError> {
    loop {
        match tokio::time::timeout(ACK_STALL, sent.delivered()).await {
            Ok(result) => return result,
            Err(_) => {
                tracing::warn!(connector = name, waiting = sent.waiting(), "the broker has not acknowledged a batch yet; waiting (the producer never drops a record)");
                PIPELINE.retried(Component::Connector, Stage::Produce);
            }
        }
    }
}

/// Delivers a failed batch again (while its failure passes) and commits it.
async fn deliver_again(
    name: &str,
    ingestor: &Ingestor,
    checked: &Checked,
    failure: IngestError,
    lease: Option<&crate::cluster::Lease>,
) -> Result<Recorded, IngestError> {
    if failure.class() != Failure::Transient {
        tracing::error!(connector = name, error = %failure, "stopping: retrying cannot mend this");
        return Err(failure);
    }
    tracing::warn!(connector = name, error = %failure, "a batch was not acknowledged; delivering it again");
    PIPELINE.retried(Component::Connector, Stage::Produce);
    retry(name, Stage::Produce, || ingestor.deliver(checked, name)).await?;
    commit(name, ingestor, checked, lease).await
}

/// Commits a delivered batch, retrying while the database is away.
async fn commit(
    name: &str,
    ingestor: &Ingestor,
    checked: &Checked,
    lease: Option<&crate::cluster::Lease>,
) -> Result<Recorded, IngestError> {
    let mut again = false;
    retry(name, Stage::Commit, || {
        let attempt = ingestor.commit(checked, name, Commit::Connector { lease, again });
        again = true;
        attempt
    })
    .await?;
    Ok(Recorded {
        checkpoint: checked.checkpoint().clone(),
        read: checked.read() as u64,
        valid: checked.accepted() as u64,
        rejected: checked.rejected.len() as u64,
    })
}

/// Retries `op` while it fails for a reason that passes (a broker or database that is away),
/// counting each retry under `stage`; any other failure is returned, and so is a lease that
/// moved on (no retry can mend it).
async fn retry<T, F, Fut>(connector: &str, stage: Stage, mut op: F) -> Result<T, IngestError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, IngestError>>,
{
    let mut backoff = Backoff::default();
    loop {
        match op().await {
            Ok(v) => return Ok(v),
            Err(IngestError::Database(e)) if crate::cluster::is_lease_lost(&e) => {
                tracing::warn!(
                    connector,
                    "the lease on the connector moved on; stopping here"
                );
                return Err(IngestError::Database(e));
            }
            Err(e) if e.class() == Failure::Transient => {
                tracing::warn!(connector, error = %e, "retrying");
                PIPELINE.retried(Component::Connector, stage);
                backoff.wait().await;
            }
            Err(e) => {
                tracing::error!(connector, error = %e, "stopping: retrying cannot mend this");
                return Err(e);
            }
        }
    }
}

async fn load_checkpoint(
    db: &PgPool,
    connector: &str,
) -> Result<Option<serde_json::Value>, ConnectorError> {
    let mut backoff = Backoff::default();
    loop {
        match sqlx::query_scalar::<_, serde_json::Value>(
            "SELECT position FROM connector_checkpoints WHERE connector = $1",
        )
        .bind(connector)
        .fetch_optional(db)
        .await
        {
            Ok(v) => return Ok(v),
            Err(e @ (sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut)) => {
                tracing::warn!(connector, error = %e, "database away; waiting to read the checkpoint");
                PIPELINE.retried(Component::Connector, Stage::Commit);
                backoff.wait().await;
            }
            Err(source) => {
                return Err(ConnectorError::Checkpoint {
                    connector: connector.to_owned(),
                    source,
                })
            }
        }
    }
}
