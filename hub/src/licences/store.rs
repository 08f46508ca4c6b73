//! The licence tables (migration `0005_licences.sql`): versions, events, status lists.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::{PgPool, Postgres, Transaction};

use super::{EventView, LicenceEvent, LicenceVersion};

/// A licence version row to insert.
#[derive(Debug, Clone)]
pub struct NewVersion<'a> {
    /// Licence number.
    pub number: &'a str,
    /// Version.
    pub version: i32,
    /// Type id.
    pub licence_type: &'a str,
    /// Issuing department.
    pub department: &'a str,
    /// Holder's name.
    pub holder_name: &'a str,
    /// Holder's identity number or credit code.
    pub holder_id: &'a str,
    /// Status list index.
    pub status_index: i64,
    /// Validity.
    pub valid_from: DateTime<Utc>,
    /// Validity.
    pub valid_until: DateTime<Utc>,
    /// Sealing time.
    pub issued_at: DateTime<Utc>,
    /// Sealing seal.
    pub seal_id: &'a str,
    /// The JWS.
    pub document: &'a str,
    /// The version it follows.
    pub supersedes: Option<(&'a str, i32)>,
}

/// Reserves `n` consecutive status-list indexes and licence serials.
pub async fn reserve(db: &PgPool, n: i64) -> Result<Vec<(i64, i64)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT nextval('licence_status_index'), nextval('licence_number_serial') \
         FROM generate_series(1, $1)",
    )
    .bind(n)
    .fetch_all(db)
    .await
}

/// Reserves one status-list index.
pub async fn reserve_index(db: &PgPool) -> Result<i64, sqlx::Error> {
    let (i,): (i64,) = sqlx::query_as("SELECT nextval('licence_status_index')")
        .fetch_one(db)
        .await?;
    Ok(i)
}

/// Inserts versions and their events in `tx` (one statement each, whatever their number).
pub async fn insert_versions(
    tx: &mut Transaction<'_, Postgres>,
    versions: &[NewVersion<'_>],
    event: LicenceEvent,
    actor: &str,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    macro_rules! column {
        ($f:expr) => {
            versions.iter().map($f).collect::<Vec<_>>()
        };
    }
    sqlx::query(
        "INSERT INTO licences (number, version, licence_type, department, holder_name, holder_id, \
         status, status_index, valid_from, valid_until, issued_at, seal_id, document, \
         supersedes_number, supersedes_version) \
         SELECT n, v, t, d, hn, hi, 'valid', si, vf, vu, ia, s, doc, sn, sv FROM UNNEST(\
         $1::text[], $2::int[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bigint[], \
         $8::timestamptz[], $9::timestamptz[], $10::timestamptz[], $11::text[], $12::text[], \
         $13::text[], $14::int[]) AS x(n, v, t, d, hn, hi, si, vf, vu, ia, s, doc, sn, sv)",
    )
    .bind(column!(|v| v.number))
    .bind(column!(|v| v.version))
    .bind(column!(|v| v.licence_type))
    .bind(column!(|v| v.department))
    .bind(column!(|v| v.holder_name))
    .bind(column!(|v| v.holder_id))
    .bind(column!(|v| v.status_index))
    .bind(column!(|v| v.valid_from))
    .bind(column!(|v| v.valid_until))
    .bind(column!(|v| v.issued_at))
    .bind(column!(|v| v.seal_id))
    .bind(column!(|v| v.document))
    .bind(column!(|v| v.supersedes.map(|s| s.0)))
    .bind(column!(|v| v.supersedes.map(|s| s.1)))
    .execute(&mut **tx)
    .await?;
    sqlx::query(
        "INSERT INTO licence_events (number, version, event, actor, at) \
         SELECT n, v, $3, $4, $5 FROM UNNEST($1::text[], $2::int[]) AS x(n, v)",
    )
    .bind(column!(|v| v.number))
    .bind(column!(|v| v.version))
    .bind(event.as_str())
    .bind(actor)
    .bind(at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Records one event.
pub async fn insert_event(
    tx: &mut Transaction<'_, Postgres>,
    (number, version): (&str, i32),
    event: LicenceEvent,
    actor: &str,
    reason: Option<&str>,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO licence_events (number, version, event, actor, reason, at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(number)
    .bind(version)
    .bind(event.as_str())
    .bind(actor)
    .bind(reason)
    .bind(at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

const VERSION_COLUMNS: &str = "number, version, licence_type, department, holder_name, \
    status AS state, status_index, valid_from, valid_until, issued_at, seal_id, revocation_reason, \
    CASE WHEN supersedes_number IS NULL THEN NULL ELSE supersedes_number || '/v' || supersedes_version END AS supersedes, \
    CASE WHEN successor_number IS NULL THEN NULL ELSE successor_number || '/v' || successor_version END AS successor, \
    document";

impl sqlx::FromRow<'_, sqlx::postgres::PgRow> for LicenceVersion {
    fn from_row(row: &sqlx::postgres::PgRow) -> Result<Self, sqlx::Error> {
        use sqlx::Row as _;
        Ok(Self {
            number: row.try_get("number")?,
            version: row.try_get("version")?,
            licence_type: row.try_get("licence_type")?,
            department: row.try_get("department")?,
            holder_name: row.try_get("holder_name")?,
            state: row.try_get("state")?,
            status_index: row.try_get("status_index")?,
            valid_from: row.try_get("valid_from")?,
            valid_until: row.try_get("valid_until")?,
            issued_at: row.try_get("issued_at")?,
            seal_id: row.try_get("seal_id")?,
            revocation_reason: row.try_get("revocation_reason")?,
            supersedes: row.try_get("supersedes")?,
            successor: row.try_get("successor")?,
            document: row.try_get("document")?,
        })
    }
}

/// The stored documents of the licence versions `wanted` (number, version) that exist.
pub async fn documents(
    db: &PgPool,
    wanted: &[(String, i32)],
) -> Result<HashMap<(String, i32), String>, sqlx::Error> {
    let (numbers, versions): (Vec<&str>, Vec<i32>) =
        wanted.iter().map(|(n, v)| (n.as_str(), *v)).unzip();
    let rows: Vec<(String, i32, String)> = sqlx::query_as(
        "SELECT l.number, l.version, l.document FROM licences l
         JOIN UNNEST($1::text[], $2::int[]) AS w(number, version)
           ON l.number = w.number AND l.version = w.version",
    )
    .bind(&numbers)
    .bind(&versions)
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(number, version, document)| ((number, version), document))
        .collect())
}

/// Every version of a licence, newest first, locked for update when `tx` is a transaction.
pub async fn versions(
    tx: &mut Transaction<'_, Postgres>,
    number: &str,
    lock: bool,
) -> Result<Vec<LicenceVersion>, sqlx::Error> {
    let lock = if lock { " FOR UPDATE" } else { "" };
    // Safe: only constants (VERSION_COLUMNS, FOR UPDATE or not) are formatted in.
    sqlx::query_as::<_, LicenceVersion>(sqlx::AssertSqlSafe(format!(
        "SELECT {VERSION_COLUMNS} FROM licences WHERE number = $1 ORDER BY version DESC{lock}"
    )))
    .bind(number)
    .fetch_all(&mut **tx)
    .await
}

impl sqlx::FromRow<'_, sqlx::postgres::PgRow> for EventView {
    fn from_row(row: &sqlx::postgres::PgRow) -> Result<Self, sqlx::Error> {
        use sqlx::Row as _;
        let event: String = row.try_get("event")?;
        Ok(Self {
            id: row.try_get("id")?,
            number: row.try_get("number")?,
            version: row.try_get("version")?,
            event: serde_json::from_value(serde_json::Value::String(event.clone()))
                .map_err(|_| sqlx::Error::Decode(format!("unknown event `{event}`").into()))?,
            actor: row.try_get("actor")?,
            reason: row.try_get("reason")?,
            at: row.try_get("at")?,
        })
    }
}

/// Records the joint-discipline override `granted` that let `number` version `version` be
/// issued.
pub async fn insert_override(
    tx: &mut Transaction<'_, Postgres>,
    number: &str,
    version: i32,
    granted: &super::discipline::Granted,
    actor: &str,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO licence_discipline_overrides
             (number, version, matches, reason, officer, actor, at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(number)
    .bind(version)
    .bind(sqlx::types::Json(&granted.matches))
    .bind(&granted.reason)
    .bind(&granted.officer)
    .bind(actor)
    .bind(at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A stored override.
#[derive(sqlx::FromRow)]
struct OverrideRow {
    version: i32,
    matches: sqlx::types::Json<Vec<crate::credit::discipline::ListMatch>>,
    reason: String,
    officer: String,
    actor: String,
    at: DateTime<Utc>,
}

/// The joint-discipline overrides a licence was issued under, oldest version first.
pub async fn overrides(
    db: &PgPool,
    number: &str,
) -> Result<Vec<super::OverrideRecord>, sqlx::Error> {
    let rows: Vec<OverrideRow> = sqlx::query_as(
        "SELECT version, matches, reason, officer, actor, at
         FROM licence_discipline_overrides WHERE number = $1 ORDER BY version",
    )
    .bind(number)
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| super::OverrideRecord {
            version: r.version,
            matches: r.matches.0,
            reason: r.reason,
            officer: r.officer,
            actor: r.actor,
            at: r.at,
        })
        .collect())
}

/// Every event of a licence, oldest first.
pub async fn events(db: &PgPool, number: &str) -> Result<Vec<EventView>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, number, version, event, actor, reason, at FROM licence_events \
         WHERE number = $1 ORDER BY id",
    )
    .bind(number)
    .fetch_all(db)
    .await
}

/// Sets a version's status (and revocation reason / successor when given).
pub async fn set_status(
    tx: &mut Transaction<'_, Postgres>,
    (number, version): (&str, i32),
    status: &str,
    revocation_reason: Option<&str>,
    successor: Option<(&str, i32)>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE licences SET status = $3, revocation_reason = COALESCE($4, revocation_reason), \
         successor_number = COALESCE($5, successor_number), \
         successor_version = COALESCE($6, successor_version) \
         WHERE number = $1 AND version = $2",
    )
    .bind(number)
    .bind(version)
    .bind(status)
    .bind(revocation_reason)
    .bind(successor.map(|s| s.0))
    .bind(successor.map(|s| s.1))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Marks versions whose validity ended by `now` as expired and records an `expired` event
/// for each; returns how many.
pub async fn expire_due(
    db: &PgPool,
    now: DateTime<Utc>,
    lease: Option<&crate::cluster::Lease>,
) -> Result<u64, sqlx::Error> {
    let mut tx = db.begin().await?;
    if let Some(lease) = lease {
        lease.fence(&mut tx).await?;
    }
    let done = sqlx::query(
        "WITH due AS (UPDATE licences SET expired_at = $1 \
           WHERE expired_at IS NULL AND valid_until <= $1 AND status IN ('valid', 'suspended') \
           RETURNING number, version) \
         INSERT INTO licence_events (number, version, event, actor, at) \
         SELECT number, version, 'expired', 'hub', $1 FROM due",
    )
    .bind(now)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(done.rows_affected())
}

/// The newest event id (0 when none): a status list made after it reflects every change.
pub async fn newest_event_id(db: &PgPool) -> Result<i64, sqlx::Error> {
    let (id,): (Option<i64>,) = sqlx::query_as("SELECT max(id) FROM licence_events")
        .fetch_one(db)
        .await?;
    Ok(id.unwrap_or(0))
}

/// The highest status index in use (-1 without licences).
pub async fn highest_status_index(db: &PgPool) -> Result<i64, sqlx::Error> {
    let (max,): (Option<i64>,) = sqlx::query_as("SELECT max(status_index) FROM licences")
        .fetch_one(db)
        .await?;
    Ok(max.unwrap_or(-1))
}

/// Versions by status index, a page at a time: the status index, number and status of each
/// version with an index above `after`, at most `limit`, in index order.
pub async fn status_entries(
    db: &PgPool,
    after: i64,
    limit: i64,
) -> Result<Vec<(i64, String, String)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT status_index, number, status FROM licences WHERE status_index > $1 \
         ORDER BY status_index LIMIT $2",
    )
    .bind(after)
    .bind(limit)
    .fetch_all(db)
    .await
}

/// Stores a signed status list.
pub async fn insert_status_list(
    db: &PgPool,
    token: &str,
    issued_at: DateTime<Utc>,
    changes_through: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO licence_status_lists (token, issued_at, changes_through) VALUES ($1, $2, $3)",
    )
    .bind(token)
    .bind(issued_at)
    .bind(changes_through)
    .execute(db)
    .await?;
    Ok(())
}

/// The newest stored status list: token, issuance, changes through.
pub async fn latest_status_list(
    db: &PgPool,
) -> Result<Option<(String, DateTime<Utc>, i64)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT token, issued_at, changes_through FROM licence_status_lists \
         ORDER BY id DESC LIMIT 1",
    )
    .fetch_optional(db)
    .await
}

/// An event to publish, with its licence's type and department.
#[derive(Debug, sqlx::FromRow)]
pub struct OutboxEvent {
    /// The event.
    #[sqlx(flatten)]
    pub event: EventView,
    /// Licence type id.
    pub licence_type: String,
    /// Issuing department.
    pub department: String,
}

/// Unpublished events, oldest first.
pub async fn unpublished_events(
    db: &mut sqlx::PgConnection,
    limit: i64,
) -> Result<Vec<OutboxEvent>, sqlx::Error> {
    sqlx::query_as(
        "SELECT e.id, e.number, e.version, e.event, e.actor, e.reason, e.at, l.licence_type, \
         l.department FROM licence_events e JOIN licences l USING (number, version) \
         WHERE e.published_at IS NULL ORDER BY e.id LIMIT $1",
    )
    .bind(limit)
    .fetch_all(db)
    .await
}

/// Where the publisher stands on each partition of the licence-events topic: the offset after
/// the last event it recorded there.
pub async fn event_positions(
    db: &mut sqlx::PgConnection,
) -> Result<std::collections::BTreeMap<i32, i64>, sqlx::Error> {
    let rows: Vec<(i32, i64)> =
        sqlx::query_as("SELECT partition, next_offset FROM licence_event_positions")
            .fetch_all(db)
            .await?;
    Ok(rows.into_iter().collect())
}

/// Records that the events up to these offsets (exclusive) are on the topic.
pub async fn advance_event_positions(
    db: &mut sqlx::PgConnection,
    positions: &std::collections::BTreeMap<i32, i64>,
) -> Result<(), sqlx::Error> {
    let (partitions, offsets): (Vec<i32>, Vec<i64>) =
        positions.iter().map(|(p, o)| (*p, *o)).unzip();
    sqlx::query(
        "INSERT INTO licence_event_positions (partition, next_offset)
         SELECT * FROM unnest($1::int[], $2::bigint[])
         ON CONFLICT (partition) DO UPDATE
           SET next_offset = GREATEST(licence_event_positions.next_offset, EXCLUDED.next_offset)",
    )
    .bind(&partitions)
    .bind(&offsets)
    .execute(db)
    .await?;
    Ok(())
}

/// Marks events published.
pub async fn mark_published(
    db: &mut sqlx::PgConnection,
    ids: &[i64],
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE licence_events SET published_at = $2 WHERE id = ANY($1) AND published_at IS NULL",
    )
    .bind(ids)
    .bind(at)
    .execute(db)
    .await?;
    Ok(())
}
