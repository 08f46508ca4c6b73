//! Samples of the feed counts, taken by `bohai serve` every `ops.sample_interval` (the
//! `ops-samples` duty, [`crate::duties`]), from
//! which rates over time are drawn: the difference between two consecutive samples of a feed
//! is what it read in between.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;
use utoipa::ToSchema;

/// Copies every feed's totals into `ops_feed_samples` under one time, and forgets samples
/// older than `retention`; under `lease` when the `ops-samples` duty takes it.
pub async fn sample_once(
    db: &PgPool,
    retention: std::time::Duration,
    lease: Option<&crate::cluster::Lease>,
) -> Result<(), sqlx::Error> {
    let mut tx = db.begin().await?;
    if let Some(lease) = lease {
        lease.fence(&mut tx).await?;
    }
    sqlx::query(
        "INSERT INTO ops_feed_samples (at, dataset, source, read_total, valid_total, rejected_total)
         SELECT now(), dataset, source, read_total, valid_total, rejected_total FROM feed_counts
         ON CONFLICT DO NOTHING",
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query("DELETE FROM ops_feed_samples WHERE at < now() - make_interval(secs => $1)")
        .bind(retention.as_secs_f64())
        .execute(&mut *tx)
        .await?;
    tx.commit().await
}

/// Ingest between two consecutive samples, summed over the feeds asked for.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RatePoint {
    /// When the later sample was taken.
    pub at: DateTime<Utc>,
    /// Seconds since the previous sample.
    pub seconds: f64,
    /// Records read in between.
    pub read: i64,
    /// Records that passed in between.
    pub valid: i64,
    /// Records rejected in between.
    pub rejected: i64,
    /// `read` per minute.
    pub read_per_minute: f64,
    /// `rejected` per minute.
    pub rejected_per_minute: f64,
}

/// Which feeds a rate series sums.
#[derive(Debug, Clone, Default)]
pub struct SeriesFilter {
    /// Only this dataset.
    pub dataset: Option<String>,
    /// Only datasets of this department.
    pub department: Option<String>,
}

/// The rate series of the last `window`, oldest first: one point per sample round after the
/// first. A feed absent from the previous round had no counts then and counts from zero.
pub async fn series(
    db: &PgPool,
    window: std::time::Duration,
    filter: &SeriesFilter,
) -> Result<Vec<RatePoint>, sqlx::Error> {
    let rows: Vec<SampleRow> = sqlx::query_as(
        "SELECT s.at, s.dataset, s.source, s.read_total, s.valid_total, s.rejected_total
         FROM ops_feed_samples s JOIN datasets d ON d.id = s.dataset
         WHERE s.at >= now() - make_interval(secs => $1)
           AND ($2::text IS NULL OR s.dataset = $2)
           AND ($3::text IS NULL OR d.department = $3)
         ORDER BY s.at",
    )
    .bind(window.as_secs_f64())
    .bind(&filter.dataset)
    .bind(&filter.department)
    .fetch_all(db)
    .await?;
    // Every round, also those in which none of the filtered feeds had counts yet: a feed
    // that first appears in a round counts from zero since the round before.
    let rounds: Vec<DateTime<Utc>> = sqlx::query_scalar(
        "SELECT DISTINCT at FROM ops_feed_samples
         WHERE at >= now() - make_interval(secs => $1) ORDER BY at",
    )
    .bind(window.as_secs_f64())
    .fetch_all(db)
    .await?;
    Ok(rate_points(&rounds, &rows))
}

/// One stored sample.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SampleRow {
    /// The round.
    pub at: DateTime<Utc>,
    /// Dataset id.
    pub dataset: String,
    /// Source.
    pub source: String,
    /// Totals at `at`.
    pub read_total: i64,
    /// Totals at `at`.
    pub valid_total: i64,
    /// Totals at `at`.
    pub rejected_total: i64,
}

/// The points between consecutive `rounds`, from the samples of the feeds asked for.
pub fn rate_points(rounds: &[DateTime<Utc>], samples: &[SampleRow]) -> Vec<RatePoint> {
    use std::collections::HashMap;
    let mut by_round: HashMap<DateTime<Utc>, Vec<&SampleRow>> = HashMap::new();
    for s in samples {
        by_round.entry(s.at).or_default().push(s);
    }
    let mut last: HashMap<(&str, &str), (i64, i64, i64)> = HashMap::new();
    let mut points = Vec::new();
    for (i, at) in rounds.iter().enumerate() {
        let mut delta = (0i64, 0i64, 0i64);
        for s in by_round.get(at).into_iter().flatten() {
            let now = (s.read_total, s.valid_total, s.rejected_total);
            let before = last
                .insert((s.dataset.as_str(), s.source.as_str()), now)
                .unwrap_or_default();
            delta.0 += (now.0 - before.0).max(0);
            delta.1 += (now.1 - before.1).max(0);
            delta.2 += (now.2 - before.2).max(0);
        }
        // The first round is the baseline: what came before it is not in the window.
        let Some(previous) = i.checked_sub(1).map(|p| rounds[p]) else {
            continue;
        };
        let seconds = (*at - previous).num_milliseconds() as f64 / 1000.0;
        let per_minute = |n: i64| {
            if seconds > 0.0 {
                n as f64 * 60.0 / seconds
            } else {
                0.0
            }
        };
        points.push(RatePoint {
            at: *at,
            seconds,
            read: delta.0,
            valid: delta.1,
            rejected: delta.2,
            read_per_minute: per_minute(delta.0),
            rejected_per_minute: per_minute(delta.2),
        });
    }
    points
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap()
    }

    fn sample(t: i64, source: &str, read: i64, rejected: i64) -> SampleRow {
        SampleRow {
            at: at(t),
            dataset: "business-registrations".to_owned(),
            source: source.to_owned(),
            read_total: read,
            valid_total: read - rejected,
            rejected_total: rejected,
        }
    }

    #[test]
    fn rates_are_differences_between_rounds_and_a_new_feed_counts_from_zero() {
        let rounds = [at(0), at(10), at(20), at(30)];
        let samples = [
            sample(0, "a", 100, 0),
            sample(10, "a", 160, 6),
            // `b` appears in the third round: its 30 records came after the second.
            sample(20, "a", 160, 6),
            sample(20, "b", 30, 3),
            sample(30, "a", 170, 6),
            sample(30, "b", 30, 3),
        ];
        let points = rate_points(&rounds, &samples);
        assert_eq!(points.len(), 3, "the first round is only the baseline");
        assert_eq!((points[0].read, points[0].rejected), (60, 6));
        assert!((points[0].read_per_minute - 360.0).abs() < 1e-9);
        assert!((points[0].rejected_per_minute - 36.0).abs() < 1e-9);
        assert_eq!((points[1].read, points[1].rejected), (30, 3));
        assert_eq!((points[2].read, points[2].valid), (10, 10));
        assert_eq!(points[2].at, at(30));
        assert!((points[2].seconds - 10.0).abs() < 1e-9);
    }

    #[test]
    fn no_rounds_no_points() {
        assert!(rate_points(&[], &[]).is_empty());
        assert!(rate_points(&[at(0)], &[sample(0, "a", 5, 0)]).is_empty());
    }
}
