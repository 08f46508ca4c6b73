//! The loop by which one instance takes part in the cluster: heartbeat, renew, balance, take.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::{balance, store, Instance, Lease};

/// Starts a duty under the lease just taken: the future runs until it ends by itself or is
/// dropped when the lease is lost or given back.
pub type DutyStarter = Arc<dyn Fn(Lease) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// A duty this instance holds.
struct Held {
    epoch: i64,
    task: JoinHandle<()>,
}

/// Takes part in the cluster until `stop` completes: every third of `lease`, renews this
/// instance's heartbeat and leases, stops the duties whose lease was lost, gives back those
/// above its share and takes free ones up to it, starting each with `starter`. `duties` are
/// the duties this instance can run, the most wanted first. On `stop`, stops its duties,
/// gives their leases back and leaves, so that the others take over at once.
pub async fn run(
    db: PgPool,
    me: Instance,
    duties: Vec<String>,
    lease: Duration,
    starter: DutyStarter,
    standing: tokio::sync::watch::Sender<bool>,
    stop: impl Future<Output = ()>,
) {
    let holder: Arc<str> = me.id.as_str().into();
    let tick = lease / 3;
    let mut member = Member {
        db,
        me,
        duties,
        lease,
        starter,
        holder,
        held: HashMap::new(),
        renewed: Instant::now(),
        refused: false,
        beat: None,
        standing,
    };
    if let Err(e) = store::declare(&member.db, &member.duties).await {
        tracing::warn!(error = %e, "cannot declare the duties yet; retrying at the next tick");
    }
    tokio::pin!(stop);
    loop {
        let started = Instant::now();
        member.tick(started).await;
        tokio::select! {
            () = tokio::time::sleep_until(started + tick) => {}
            () = &mut stop => break,
        }
    }
    member.leave().await;
}

struct Member {
    db: PgPool,
    me: Instance,
    duties: Vec<String>,
    lease: Duration,
    starter: DutyStarter,
    holder: Arc<str>,
    held: HashMap<String, Held>,
    /// When the last renewal that succeeded was sent: the leases are surely valid until two
    /// thirds of a lease after it.
    renewed: Instant,
    /// Whether the heartbeat was refused (another process with this identity is alive).
    refused: bool,
    /// When the last heartbeat that was taken was sent.
    beat: Option<Instant>,
    /// Whether this instance is a member in good standing: its heartbeat taken within two
    /// thirds of a lease, and its identity its own. Work that is not a duty (the repository
    /// sink) runs only while it is.
    standing: tokio::sync::watch::Sender<bool>,
}

impl Member {
    /// The moment by which this instance's duties must have stopped unless renewed.
    fn deadline(&self) -> Instant {
        self.renewed + self.lease * 2 / 3
    }

    async fn tick(&mut self, sent: Instant) {
        if !self.held.is_empty() && Instant::now() >= self.deadline() {
            tracing::error!(instance = %self.me.id, "the duties' leases could not be renewed in time: stopping them");
            self.stop_all().await;
        }
        // Every statement of the tick ends before the leases may expire.
        let limit = if self.held.is_empty() {
            sent + self.lease / 3
        } else {
            self.deadline()
        };
        match tokio::time::timeout_at(limit, self.round(sent)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(instance = %self.me.id, error = %e, "the cluster tick failed; retrying")
            }
            Err(_) => {
                tracing::warn!(instance = %self.me.id, "the cluster tick timed out; retrying")
            }
        }
        if !self.held.is_empty() && Instant::now() >= self.deadline() {
            tracing::error!(instance = %self.me.id, "the duties' leases could not be renewed in time: stopping them");
            self.stop_all().await;
        }
        let now = Instant::now();
        let ok = !self.refused && self.beat.is_some_and(|b| now < b + self.lease * 2 / 3);
        self.standing.send_if_modified(|was| {
            let changed = *was != ok;
            *was = ok;
            changed
        });
    }

    async fn round(&mut self, sent: Instant) -> Result<(), sqlx::Error> {
        if !store::heartbeat(&self.db, &self.me, self.lease).await? {
            if !self.refused {
                tracing::error!(instance = %self.me.id, "another bohai serve with this identity is running: this one serves HTTP only until that one stops (set cluster.instance to tell them apart)");
                self.refused = true;
            }
            self.stop_all().await;
            return Ok(());
        }
        self.refused = false;
        self.beat = Some(sent);
        store::declare(&self.db, &self.duties).await?;
        if !self.held.is_empty() {
            let held: Vec<(String, i64)> = self
                .held
                .iter()
                .map(|(d, h)| (d.clone(), h.epoch))
                .collect();
            let still = store::renew(&self.db, &self.me, &held, self.lease).await?;
            self.renewed = sent;
            let lost: Vec<String> = self
                .held
                .keys()
                .filter(|d| !still.contains(d))
                .cloned()
                .collect();
            for duty in lost {
                tracing::error!(instance = %self.me.id, duty, "the lease on the duty was lost: the duty stopped here");
                if let Some(h) = self.held.remove(&duty) {
                    stop(h.task).await;
                }
            }
        }
        let live = usize::try_from(store::live_instances(&self.db).await?).unwrap_or(1);
        let held = self.held_in_order();
        let plan = balance::plan(&held, self.duties.len(), live);
        for duty in plan.give_back {
            if let Some(h) = self.held.remove(&duty) {
                stop(h.task).await;
                store::release(&self.db, &self.me, &duty, h.epoch).await?;
                tracing::info!(instance = %self.me.id, duty, live, "duty given back for another instance to take");
            }
        }
        if plan.take > 0 {
            let candidates: Vec<String> = self
                .duties
                .iter()
                .filter(|d| !self.held.contains_key(*d))
                .cloned()
                .collect();
            let was_empty = self.held.is_empty();
            let taken = store::take(&self.db, &self.me, &candidates, plan.take, self.lease).await?;
            if was_empty && !taken.is_empty() {
                self.renewed = sent;
            }
            for (duty, epoch) in taken {
                tracing::info!(instance = %self.me.id, duty, epoch, "this instance runs the duty");
                let lease = Lease {
                    duty: duty.as_str().into(),
                    holder: Arc::clone(&self.holder),
                    epoch,
                    idle_limit: self.lease,
                };
                let task = tokio::spawn((self.starter)(lease));
                self.held.insert(duty, Held { epoch, task });
            }
        }
        Ok(())
    }

    /// The duties held, most wanted first.
    fn held_in_order(&self) -> Vec<String> {
        self.duties
            .iter()
            .filter(|d| self.held.contains_key(*d))
            .cloned()
            .collect()
    }

    async fn stop_all(&mut self) {
        for (_, h) in self.held.drain() {
            stop(h.task).await;
        }
    }

    async fn leave(mut self) {
        let held: Vec<(String, i64)> = self
            .held
            .iter()
            .map(|(d, h)| (d.clone(), h.epoch))
            .collect();
        self.stop_all().await;
        for (duty, epoch) in held {
            if let Err(e) = store::release(&self.db, &self.me, &duty, epoch).await {
                tracing::warn!(duty, error = %e, "cannot give the duty back; another instance takes it when its lease expires");
            }
        }
        if let Err(e) = store::leave(&self.db, &self.me).await {
            tracing::warn!(error = %e, "cannot say that this instance leaves; the others count it out when its heartbeat expires");
        }
    }
}

/// Stops a duty's task and waits until it has.
async fn stop(task: JoinHandle<()>) {
    task.abort();
    let _ = task.await;
}
