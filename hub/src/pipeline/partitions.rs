//! Who writes each dataset topic partition into the repository, and from where: the owner of
//! `sink_offsets`.
//!
//! The repository sink is a Kafka consumer group shared by every instance; the group gives
//! each partition to one instance at a time. An instance that is given a partition
//! [`claim`]s it: the partition's row records the instance as its owner and its epoch grows by
//! one, and the instance starts reading at the offset stored there. Each writing transaction
//! first [`hold`]s the rows of its partitions (locked until it ends) and checks that they
//! still carry the epochs it took them at: an instance that lost a partition (paused, cut off
//! from the database, slow) can never commit a batch for it afterwards, whatever the timing,
//! and a claim waits for a batch in progress under the old epoch to end.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use utoipa::ToSchema;

/// A topic partition.
pub type Partition = (String, i32);

/// A partition as its new owner took it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimed {
    /// The offset to read from next.
    pub next_offset: i64,
    /// The epoch the owner holds it at.
    pub epoch: i64,
}

/// Takes `partitions` for `owner`: each one's epoch grows by one (a partition never written
/// starts at offset 0). Waits for a batch still being written under an earlier epoch. The
/// partitions are locked in order, as [`hold`] locks them, so that the two never deadlock.
pub async fn claim(
    conn: &mut PgConnection,
    owner: &str,
    partitions: &BTreeSet<Partition>,
) -> Result<BTreeMap<Partition, Claimed>, sqlx::Error> {
    let (topics, parts): (Vec<&str>, Vec<i32>) =
        partitions.iter().map(|(t, p)| (t.as_str(), *p)).unzip();
    let rows: Vec<(String, i32, i64, i64)> = sqlx::query_as(
        "INSERT INTO sink_offsets (topic, partition, next_offset, owner, owner_epoch, owned_since)
         SELECT t, p, 0, $3, 1, now()
         FROM UNNEST($1::text[], $2::int[]) AS u(t, p)
         ORDER BY t, p
         ON CONFLICT (topic, partition) DO UPDATE
           SET owner = EXCLUDED.owner, owner_epoch = sink_offsets.owner_epoch + 1,
               owned_since = now()
         RETURNING topic, partition, next_offset, owner_epoch",
    )
    .bind(&topics)
    .bind(&parts)
    .bind(owner)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(t, p, next_offset, epoch)| ((t, p), Claimed { next_offset, epoch }))
        .collect())
}

/// Locks the rows of `held` (partition → the epoch it was taken at) for the transaction `tx`
/// and returns the partitions `owner` no longer holds at that epoch: their records must not be
/// written. The rest stay held until `tx` ends.
pub async fn hold(
    tx: &mut PgConnection,
    owner: &str,
    held: &BTreeMap<(&str, i32), i64>,
) -> Result<BTreeSet<(String, i32)>, sqlx::Error> {
    let (topics, parts): (Vec<&str>, Vec<i32>) = held.keys().copied().unzip();
    let rows: Vec<(String, i32, Option<String>, i64)> = sqlx::query_as(
        "SELECT s.topic, s.partition, s.owner, s.owner_epoch
         FROM sink_offsets s JOIN UNNEST($1::text[], $2::int[]) AS u(t, p)
           ON s.topic = u.t AND s.partition = u.p
         ORDER BY s.topic, s.partition
         FOR UPDATE OF s",
    )
    .bind(&topics)
    .bind(&parts)
    .fetch_all(&mut *tx)
    .await?;
    let still: BTreeSet<(&str, i32)> = rows
        .iter()
        .filter(|(t, p, o, e)| {
            o.as_deref() == Some(owner) && held.get(&(t.as_str(), *p)) == Some(e)
        })
        .map(|(t, p, _, _)| (t.as_str(), *p))
        .collect();
    Ok(held
        .keys()
        .filter(|k| !still.contains(*k))
        .map(|(t, p)| ((*t).to_owned(), *p))
        .collect())
}

/// Stores where each partition of a batch resumes, in the batch's transaction (after
/// [`hold`]).
pub async fn advance(
    tx: &mut PgConnection,
    next: &BTreeMap<(&str, i32), i64>,
) -> Result<(), sqlx::Error> {
    let mut topics = Vec::with_capacity(next.len());
    let mut parts = Vec::with_capacity(next.len());
    let mut offsets = Vec::with_capacity(next.len());
    for ((t, p), o) in next {
        topics.push(*t);
        parts.push(*p);
        offsets.push(*o);
    }
    sqlx::query(
        "UPDATE sink_offsets s SET next_offset = u.o
         FROM UNNEST($1::text[], $2::int[], $3::bigint[]) AS u(t, p, o)
         WHERE s.topic = u.t AND s.partition = u.p",
    )
    .bind(&topics)
    .bind(&parts)
    .bind(&offsets)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Where the sink resumes in every partition it ever wrote.
pub async fn next_offsets(db: &PgPool) -> Result<BTreeMap<Partition, i64>, sqlx::Error> {
    let rows: Vec<(String, i32, i64)> =
        sqlx::query_as("SELECT topic, partition, next_offset FROM sink_offsets")
            .fetch_all(db)
            .await?;
    Ok(rows.into_iter().map(|(t, p, o)| ((t, p), o)).collect())
}

/// A partition of a dataset topic with the instance that last took it.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct PartitionOwner {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The instance that last took it (it holds it while it is live).
    pub owner: Option<String>,
    /// How many times the partition changed hands.
    pub epoch: i64,
    /// When the owner took it.
    pub since: Option<DateTime<Utc>>,
    /// Where the sink resumes.
    pub next_offset: i64,
}

/// Every partition and its owner, by topic and partition.
pub async fn owners(db: &PgPool) -> Result<Vec<PartitionOwner>, sqlx::Error> {
    sqlx::query_as(
        "SELECT topic, partition, owner, owner_epoch AS epoch, owned_since AS since, next_offset
         FROM sink_offsets ORDER BY topic, partition",
    )
    .fetch_all(db)
    .await
}
