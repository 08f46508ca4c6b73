//! Which `bohai serve` runs the workers of a hub database.
//!
//! The workers (the repository sink, the connectors, licence events, subscription delivery
//! and the background duties) must run in one instance per database until instances can share
//! the work: two sinks would write every record twice. An instance runs them only while it
//! holds the `workers` row of `worker_holds`; it renews the hold every third of
//! `pipeline.worker_hold`. Another instance finds the hold, says who has it, serves its HTTP
//! API, and takes the workers over once the hold ends: at once when its holder stops cleanly
//! (it gives the hold back), within `worker_hold` when its holder crashed. A holder that could
//! not renew in time stops its workers before anybody else may take them.
//!
//! Times are the database's (`now()`), so the instances' clocks do not matter.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;
use utoipa::ToSchema;

/// The name of the hold on the workers.
const WORKERS: &str = "workers";

/// This process, as the instances of one hub tell each other apart.
#[derive(Debug, Clone)]
pub struct Instance {
    /// `host:port/pid/random`: unique among the instances of one hub, even for containers
    /// that share a host name, a port and a pid.
    pub id: String,
    /// The machine's name.
    pub host: String,
    /// The process id.
    pub pid: u32,
    /// Where its HTTP API listens.
    pub http_addr: String,
}

impl Instance {
    /// This process, serving HTTP on `http_addr`.
    pub fn this(http_addr: std::net::SocketAddr) -> Self {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "localhost".to_owned());
        let pid = std::process::id();
        let random = uuid::Uuid::new_v4().simple().to_string();
        Self {
            id: format!("{host}:{}/{pid}/{}", http_addr.port(), &random[..8]),
            host,
            pid,
            http_addr: http_addr.to_string(),
        }
    }
}

/// The instance that holds the workers, as `bohai status` and the ops overview show it.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct Holder {
    /// `host:port/pid/random`.
    pub instance: String,
    /// Its machine.
    pub host: String,
    /// Its process id.
    pub pid: i32,
    /// Where its HTTP API listens.
    pub http_addr: String,
    /// Since when it holds the workers.
    pub since: DateTime<Utc>,
    /// When it last renewed the hold.
    pub renewed_at: DateTime<Utc>,
    /// When the hold ends unless renewed.
    pub expires_at: DateTime<Utc>,
}

/// What an attempt to take the workers found.
#[derive(Debug)]
pub enum Taken {
    /// This instance holds them now.
    Held,
    /// Another instance holds them (`None`: it gave them back a moment ago; try again).
    HeldBy(Option<Holder>),
}

/// Takes the workers if nobody holds them, their hold expired, or this instance held them.
pub async fn take(db: &PgPool, me: &Instance, hold: Duration) -> Result<Taken, sqlx::Error> {
    let taken = sqlx::query_scalar::<_, String>(
        "INSERT INTO worker_holds (name, instance, host, pid, http_addr, expires_at)
         VALUES ($1, $2, $3, $4, $5, now() + make_interval(secs => $6))
         ON CONFLICT (name) DO UPDATE SET instance = EXCLUDED.instance, host = EXCLUDED.host,
           pid = EXCLUDED.pid, http_addr = EXCLUDED.http_addr,
           since = CASE WHEN worker_holds.instance = EXCLUDED.instance THEN worker_holds.since
                        ELSE now() END,
           renewed_at = now(), expires_at = EXCLUDED.expires_at
         WHERE worker_holds.expires_at < now() OR worker_holds.instance = EXCLUDED.instance
         RETURNING instance",
    )
    .bind(WORKERS)
    .bind(&me.id)
    .bind(&me.host)
    .bind(i32::try_from(me.pid).unwrap_or(i32::MAX))
    .bind(&me.http_addr)
    .bind(hold.as_secs_f64())
    .fetch_optional(db)
    .await?;
    if taken.is_some() {
        return Ok(Taken::Held);
    }
    Ok(Taken::HeldBy(holder(db).await?))
}

/// Renews this instance's hold: false when it no longer holds the workers.
pub async fn renew(db: &PgPool, me: &Instance, hold: Duration) -> Result<bool, sqlx::Error> {
    Ok(sqlx::query(
        "UPDATE worker_holds SET renewed_at = now(), expires_at = now() + make_interval(secs => $3)
         WHERE name = $1 AND instance = $2 AND expires_at >= now()",
    )
    .bind(WORKERS)
    .bind(&me.id)
    .bind(hold.as_secs_f64())
    .execute(db)
    .await?
    .rows_affected()
        == 1)
}

/// Gives the workers back, so that a waiting instance takes them at once.
pub async fn give_back(db: &PgPool, me: &Instance) {
    if let Err(e) = sqlx::query("DELETE FROM worker_holds WHERE name = $1 AND instance = $2")
        .bind(WORKERS)
        .bind(&me.id)
        .execute(db)
        .await
    {
        tracing::warn!(error = %e, "cannot give the workers back; another instance takes them when the hold expires");
    }
}

/// The instance that holds the workers, if the hold has not expired.
pub async fn holder(db: &PgPool) -> Result<Option<Holder>, sqlx::Error> {
    sqlx::query_as::<_, Holder>(
        "SELECT instance, host, pid, http_addr, since, renewed_at, expires_at
         FROM worker_holds WHERE name = $1 AND expires_at >= now()",
    )
    .bind(WORKERS)
    .fetch_optional(db)
    .await
}
