//! Bohai as a cluster: any number of `bohai serve` instances on one hub database share the
//! duties that must run once, with no coordinator of their own. PostgreSQL is the only
//! meeting point:
//!
//! - every instance registers itself in `hub_instances` and renews its heartbeat every third
//!   of `cluster.lease`; an instance whose heartbeat expired is dead for the others;
//! - the repository sink runs on every instance, as one Kafka consumer group that spreads the
//!   dataset topics' partitions over them, each partition fenced by its own epoch
//!   ([`crate::pipeline::partitions`]);
//! - each duty (the licence-event publisher, subscription delivery, each periodic duty, each
//!   connector configured in `serve`) is held by one instance at a time
//!   through its own row of `duty_leases`, renewed with the heartbeat. Its `epoch` grows each
//!   time the duty changes hands and fences the holder: a duty's writing transaction starts
//!   with [`Lease::fence`], which fails once the lease moved on, so that a holder that was
//!   paused or cut off writes nothing afterwards (timing is not relied on);
//! - a holder that cannot renew within two thirds of the lease stops its duties before
//!   anybody else may take them; an expired lease is taken by another instance at its next
//!   tick, so a dead holder's duties run elsewhere within `cluster.lease` plus a third of it;
//! - the duties are spread: an instance takes a free duty only while it holds fewer than its
//!   share (the duties divided by the live instances, rounded up) and gives back those above
//!   its share when another instance joins ([`balance`]).
//!
//! Times are the database's (`now()`), so the instances' clocks do not matter.

pub mod balance;
mod run;
pub mod store;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::pipeline::partitions::PartitionOwner;

pub use run::{run, DutyStarter};

/// The SQLSTATE [`Lease::fence`] fails with when the lease moved on.
pub const LEASE_LOST: &str = "BH001";

/// The prefix of a connector's duty: `connector:NAME`.
pub const CONNECTOR_PREFIX: &str = "connector:";

/// The duty of connector `name`.
pub fn connector_duty(name: &str) -> String {
    format!("{CONNECTOR_PREFIX}{name}")
}

/// This process, as the instances of one hub tell each other apart.
#[derive(Debug, Clone)]
pub struct Instance {
    /// `cluster.instance`, default `host:port`: the name the others know it by.
    pub id: String,
    /// This run of it: a second process started with the same identity is refused while
    /// this one lives.
    pub incarnation: uuid::Uuid,
    /// The machine's name.
    pub host: String,
    /// The process id.
    pub pid: u32,
    /// Where its HTTP API listens.
    pub http_addr: String,
}

impl Instance {
    /// This process, serving HTTP on `http_addr`, named `configured` or else `host:port`.
    pub fn this(http_addr: std::net::SocketAddr, configured: Option<&str>) -> Self {
        let host = host_name();
        Self {
            id: configured
                .map(str::to_owned)
                .unwrap_or_else(|| format!("{host}:{}", http_addr.port())),
            incarnation: uuid::Uuid::new_v4(),
            host,
            pid: std::process::id(),
            http_addr: http_addr.to_string(),
        }
    }
}

/// The machine's host name (`localhost` when it cannot be read).
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// A duty's lease as its holder took it: the fencing token its writes carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The duty.
    pub duty: Arc<str>,
    /// The instance that took it.
    pub holder: Arc<str>,
    /// The epoch it was taken at.
    pub epoch: i64,
    /// How long a transaction of the holder may sit idle while it keeps the lease row locked
    /// (the lease's length): a holder paused in the middle of one would otherwise keep its
    /// lease from ever moving on.
    pub idle_limit: std::time::Duration,
}

impl Lease {
    /// Fences the transaction `tx` runs in: fails with SQLSTATE [`LEASE_LOST`] unless this
    /// lease is still held and unexpired, and keeps it from changing hands until `tx` ends.
    /// Call it first in every transaction through which the duty writes.
    pub async fn fence(&self, tx: &mut sqlx::PgConnection) -> Result<(), sqlx::Error> {
        store::fence(tx, self).await
    }

    /// Begins a transaction on `db` fenced by this lease ([`Self::fence`]): the one way a
    /// duty that always holds a lease starts a writing transaction.
    pub async fn begin(
        &self,
        db: &sqlx::PgPool,
    ) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, sqlx::Error> {
        let mut tx = db.begin().await?;
        self.fence(&mut tx).await?;
        Ok(tx)
    }

    /// Fails with SQLSTATE [`LEASE_LOST`] unless this lease is still held (before work done
    /// outside the database, such as making a transactional producer).
    pub async fn check(&self, db: &sqlx::PgPool) -> Result<(), sqlx::Error> {
        self.begin(db).await?.commit().await
    }
}

/// Whether `error` says that a lease moved on ([`Lease::fence`]).
pub fn is_lease_lost(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(e) if e.code().as_deref() == Some(LEASE_LOST))
}

/// An instance of the hub, as `bohai status` and the ops overview show it.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct InstanceView {
    /// Its identity.
    pub id: String,
    /// Its machine.
    pub host: String,
    /// Its process id.
    pub pid: i32,
    /// Where its HTTP API listens.
    pub http_addr: String,
    /// When this run of it started.
    pub started_at: DateTime<Utc>,
    /// Its last heartbeat.
    pub heartbeat_at: DateTime<Utc>,
    /// Whether its heartbeat is fresh: false for an instance that stopped or died.
    pub live: bool,
    /// The duties it holds.
    #[sqlx(skip)]
    pub duties: Vec<String>,
    /// How many dataset topic partitions its repository sink holds (none once it is not live).
    #[sqlx(skip)]
    pub sink_partitions: usize,
}

/// A duty's lease, as `bohai status` and the ops overview show it.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct DutyView {
    /// The duty (`licence-events`, `connector:NAME`, ...).
    pub duty: String,
    /// The instance that holds it; none when it is free or its lease expired.
    pub holder: Option<String>,
    /// How many times it changed hands.
    pub epoch: i64,
    /// Since when its holder holds it.
    pub since: Option<DateTime<Utc>>,
    /// When its holder last renewed the lease.
    pub renewed_at: Option<DateTime<Utc>>,
    /// When the lease ends unless renewed (also for a lease that expired or was given back).
    pub expires_at: DateTime<Utc>,
}

/// The cluster: its instances and who holds which duty.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ClusterView {
    /// Every instance that registered, live ones first.
    pub instances: Vec<InstanceView>,
    /// Every duty, by name.
    pub duties: Vec<DutyView>,
    /// Every dataset topic partition the repository sink wrote, with the instance that last
    /// took it.
    pub partitions: Vec<PartitionOwner>,
}

/// The cluster as it is now.
pub async fn view(db: &sqlx::PgPool) -> Result<ClusterView, sqlx::Error> {
    let duties = store::duties(db).await?;
    let mut instances = store::instances(db).await?;
    let partitions = crate::pipeline::partitions::owners(db).await?;
    for i in &mut instances {
        i.duties = duties
            .iter()
            .filter(|d| d.holder.as_deref() == Some(i.id.as_str()))
            .map(|d| d.duty.clone())
            .collect();
        if i.live {
            i.sink_partitions = partitions
                .iter()
                .filter(|p| p.owner.as_deref() == Some(i.id.as_str()))
                .count();
        }
    }
    Ok(ClusterView {
        instances,
        duties,
        partitions,
    })
}
