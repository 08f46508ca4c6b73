//! Reconciliation counts per dataset: what the feeds read, passed and rejected, and what the
//! sink wrote. Once the sink has caught up, `read = valid + rejected` and
//! `valid = inserted + updated + refused`, and `rows = inserted`.

use serde::Serialize;
use sqlx::PgPool;
use utoipa::ToSchema;

/// The counts of one dataset.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct DatasetStats {
    /// Dataset id.
    pub dataset: String,
    /// Owning department.
    pub department: String,
    /// Records read by all its feeds.
    pub read: i64,
    /// Records that passed validation.
    pub valid: i64,
    /// Records rejected (see `bohai dlq show`).
    pub rejected: i64,
    /// Repository rows created.
    pub inserted: i64,
    /// Updates of an existing row (a newer version of a record).
    pub updated: i64,
    /// Deliveries skipped because the repository already had them (replays after a crash).
    pub duplicates_skipped: i64,
    /// Valid records the repository refused (the database's reason is with the rejected
    /// records and on the dead-letter topic).
    pub refused: i64,
    /// Rows in the repository now.
    pub rows: i64,
    /// Valid records the sink has not written yet (0 when caught up).
    pub pending: i64,
    /// True when every count agrees: read = valid + rejected, valid = inserted + updated +
    /// refused, rows = inserted.
    pub reconciled: bool,
    /// When the last record was read (RFC 3339), if ever.
    pub last_record_at: Option<chrono::DateTime<chrono::Utc>>,
    /// When the sink last wrote, if ever.
    pub last_write_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// Counts for one dataset, or for all when `dataset` is `None`.
pub async fn dataset_stats(
    db: &PgPool,
    dataset: Option<&str>,
) -> Result<Vec<DatasetStats>, sqlx::Error> {
    sqlx::query_as::<_, DatasetStats>(
        "SELECT d.id AS dataset, d.department,
                COALESCE(f.read, 0) AS read, COALESCE(f.valid, 0) AS valid,
                COALESCE(f.rejected, 0) AS rejected,
                COALESCE(s.inserted_total, 0) AS inserted, COALESCE(s.updated_total, 0) AS updated,
                COALESCE(s.duplicates_skipped_total, 0) AS duplicates_skipped,
                COALESCE(s.refused_total, 0) AS refused,
                (SELECT count(*) FROM repository_records r WHERE r.dataset = d.id) AS rows,
                COALESCE(f.valid, 0) - COALESCE(s.inserted_total, 0) - COALESCE(s.updated_total, 0)
                  - COALESCE(s.refused_total, 0) AS pending,
                false AS reconciled,
                f.last_record_at, s.last_write_at
         FROM datasets d
         LEFT JOIN (SELECT dataset, sum(read_total)::bigint AS read, sum(valid_total)::bigint AS valid,
                           sum(rejected_total)::bigint AS rejected, max(last_record_at) AS last_record_at
                    FROM feed_counts GROUP BY dataset) f ON f.dataset = d.id
         LEFT JOIN sink_counts s ON s.dataset = d.id
         WHERE $1::text IS NULL OR d.id = $1
         ORDER BY d.id",
    )
    .bind(dataset)
    .fetch_all(db)
    .await
    .map(|rows| {
        rows.into_iter()
            .map(|mut s| {
                s.reconciled = s.read == s.valid + s.rejected
                    && s.valid == s.inserted + s.updated + s.refused
                    && s.rows == s.inserted;
                s
            })
            .collect()
    })
}
