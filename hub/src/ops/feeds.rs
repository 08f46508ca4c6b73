//! Feed health: whether each feed (one connector or push source of one dataset) delivers as
//! its dataset expects. [`judge`] is pure: it takes the facts of one feed, the thresholds of
//! `[ops]` and the time, and says healthy, stale, failing or paused, with the reasons.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::config::OpsConfig;

/// The state of one feed.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum FeedState {
    /// Records arrive within the expected interval and few are rejected.
    Healthy,
    /// Nothing arrived within the dataset's expected update interval (or never).
    Stale,
    /// Too many recent records are rejected, or the connector stopped with an error.
    Failing,
    /// Switched off on purpose (`ops.paused`); not judged.
    Paused,
}

impl FeedState {
    /// Every state, in the order the dashboard and the metrics list them.
    pub const ALL: [FeedState; 4] = [
        FeedState::Healthy,
        FeedState::Stale,
        FeedState::Failing,
        FeedState::Paused,
    ];

    /// The lowercase name used in JSON, metrics and the terminal.
    pub fn as_str(self) -> &'static str {
        match self {
            FeedState::Healthy => "healthy",
            FeedState::Stale => "stale",
            FeedState::Failing => "failing",
            FeedState::Paused => "paused",
        }
    }
}

/// How a connector's last run stands, as `bohai serve` recorded it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConnectorState {
    /// Reading its source.
    Running,
    /// Its source is complete (a single file read to its end).
    Finished,
    /// Stopped with an error.
    Failed,
}

impl ConnectorState {
    /// Every state.
    pub const ALL: [ConnectorState; 3] = [
        ConnectorState::Running,
        ConnectorState::Finished,
        ConnectorState::Failed,
    ];

    /// The lowercase name stored in `ops_connector_runs.state`.
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectorState::Running => "running",
            ConnectorState::Finished => "finished",
            ConnectorState::Failed => "failed",
        }
    }

    /// Parses a stored state.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// Counts of one feed over a window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WindowCounts {
    /// Records read in the window.
    pub read: u64,
    /// Records rejected in the window.
    pub rejected: u64,
}

/// What is known about one feed, the input of [`judge`].
#[derive(Debug, Clone, PartialEq)]
pub struct FeedFacts {
    /// When its newest record was read, if ever.
    pub last_record_at: Option<DateTime<Utc>>,
    /// The dataset's expected update interval.
    pub expected_interval: Duration,
    /// Counts over the whole history.
    pub total: WindowCounts,
    /// Counts over the recent window, when samples cover it.
    pub recent: Option<WindowCounts>,
    /// The connector's state, for a connector feed that `bohai serve` runs.
    pub connector: Option<ConnectorState>,
    /// The connector's error when it failed.
    pub connector_error: Option<String>,
    /// Whether `ops.paused` names this feed.
    pub paused: bool,
}

/// The thresholds of [`judge`], from `[ops]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    /// Stale after the expected interval times this.
    pub stale_factor: f64,
    /// Failing above this reject ratio.
    pub reject_ratio_failing: f64,
    /// The ratio is judged over at least this many records.
    pub min_records: u64,
}

impl From<&OpsConfig> for Thresholds {
    fn from(c: &OpsConfig) -> Self {
        Self {
            stale_factor: c.stale_factor,
            reject_ratio_failing: c.reject_ratio_failing,
            min_records: c.min_records,
        }
    }
}

/// The verdict on one feed.
#[derive(Debug, Clone, PartialEq)]
pub struct Judgement {
    /// The state.
    pub state: FeedState,
    /// The reject ratio the verdict used (recent, else whole history), when there were
    /// enough records to judge.
    pub reject_ratio: Option<f64>,
    /// Why it is not healthy (empty when healthy); every reason found, worst first.
    pub reasons: Vec<String>,
}

/// The reject ratio to judge: the recent window's when it has `min_records`, else the whole
/// history's when that has them, else none.
pub fn judged_ratio(facts: &FeedFacts, min_records: u64) -> Option<f64> {
    let min = min_records.max(1);
    let ratio = |c: WindowCounts| c.rejected as f64 / c.read as f64;
    match facts.recent {
        Some(r) if r.read >= min => Some(ratio(r)),
        _ if facts.total.read >= min => Some(ratio(facts.total)),
        _ => None,
    }
}

/// Judges one feed at `now`. Paused wins over everything; then failing (a failed connector,
/// a reject ratio above the threshold); then stale (nothing within the expected interval
/// times `stale_factor`, or never anything).
pub fn judge(facts: &FeedFacts, t: &Thresholds, now: DateTime<Utc>) -> Judgement {
    let reject_ratio = judged_ratio(facts, t.min_records);
    if facts.paused {
        return Judgement {
            state: FeedState::Paused,
            reject_ratio,
            reasons: vec!["paused by ops.paused".to_owned()],
        };
    }
    let mut failing = Vec::new();
    if facts.connector == Some(ConnectorState::Failed) {
        failing.push(format!(
            "connector stopped: {}",
            facts.connector_error.as_deref().unwrap_or("unknown error")
        ));
    }
    if let Some(r) = reject_ratio {
        if r > t.reject_ratio_failing {
            failing.push(format!(
                "{:.1}% of records rejected (threshold {:.1}%)",
                r * 100.0,
                t.reject_ratio_failing * 100.0
            ));
        }
    }
    let allowed = facts.expected_interval.mul_f64(t.stale_factor);
    let stale = match facts.last_record_at {
        None => Some("no record yet".to_owned()),
        Some(last) => {
            let age = (now - last).to_std().unwrap_or_default();
            (age > allowed).then(|| {
                format!(
                    "last record {} ago, expected every {}",
                    humantime::format_duration(Duration::from_secs(age.as_secs())),
                    humantime::format_duration(allowed)
                )
            })
        }
    };
    let state = if !failing.is_empty() {
        FeedState::Failing
    } else if stale.is_some() {
        FeedState::Stale
    } else {
        FeedState::Healthy
    };
    let mut reasons = failing;
    reasons.extend(stale);
    Judgement {
        state,
        reject_ratio,
        reasons,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    fn now() -> DateTime<Utc> {
        "2026-11-27T12:00:00Z".parse().unwrap_or_default()
    }

    fn thresholds() -> Thresholds {
        Thresholds {
            stale_factor: 1.0,
            reject_ratio_failing: 0.2,
            min_records: 20,
        }
    }

    fn fresh() -> FeedFacts {
        FeedFacts {
            last_record_at: Some(now() - chrono::Duration::minutes(10)),
            expected_interval: HOUR,
            total: WindowCounts {
                read: 1000,
                rejected: 10,
            },
            recent: Some(WindowCounts {
                read: 100,
                rejected: 1,
            }),
            connector: Some(ConnectorState::Running),
            connector_error: None,
            paused: false,
        }
    }

    #[test]
    fn a_feed_delivering_within_its_interval_with_few_rejects_is_healthy() {
        let j = judge(&fresh(), &thresholds(), now());
        assert_eq!(j.state, FeedState::Healthy);
        assert!(j.reasons.is_empty());
        assert_eq!(j.reject_ratio, Some(0.01));
    }

    #[test]
    fn nothing_within_the_expected_interval_is_stale_and_the_factor_stretches_it() {
        let mut f = fresh();
        f.last_record_at = Some(now() - chrono::Duration::minutes(61));
        let j = judge(&f, &thresholds(), now());
        assert_eq!(j.state, FeedState::Stale);
        assert!(j.reasons[0].contains("1h 1m"), "{:?}", j.reasons);
        let lenient = Thresholds {
            stale_factor: 1.5,
            ..thresholds()
        };
        assert_eq!(judge(&f, &lenient, now()).state, FeedState::Healthy);
        // Exactly at the interval is still on time.
        f.last_record_at = Some(now() - chrono::Duration::minutes(60));
        assert_eq!(judge(&f, &thresholds(), now()).state, FeedState::Healthy);
    }

    #[test]
    fn a_feed_that_never_delivered_is_stale() {
        let mut f = fresh();
        f.last_record_at = None;
        f.total = WindowCounts::default();
        f.recent = None;
        let j = judge(&f, &thresholds(), now());
        assert_eq!(j.state, FeedState::Stale);
        assert_eq!(j.reject_ratio, None);
        assert_eq!(j.reasons, vec!["no record yet".to_owned()]);
    }

    #[test]
    fn a_recent_reject_ratio_above_the_threshold_is_failing() {
        let mut f = fresh();
        f.recent = Some(WindowCounts {
            read: 50,
            rejected: 11,
        });
        let j = judge(&f, &thresholds(), now());
        assert_eq!(j.state, FeedState::Failing);
        assert!(
            j.reasons[0].contains("22.0% of records rejected"),
            "{:?}",
            j.reasons
        );
        // At the threshold exactly is not above it.
        f.recent = Some(WindowCounts {
            read: 50,
            rejected: 10,
        });
        assert_eq!(judge(&f, &thresholds(), now()).state, FeedState::Healthy);
    }

    #[test]
    fn too_few_recent_records_fall_back_to_the_whole_history_and_too_few_overall_are_not_judged() {
        let mut f = fresh();
        // 5 of 5 recent records rejected, but 5 is below min_records: history (1%) decides.
        f.recent = Some(WindowCounts {
            read: 5,
            rejected: 5,
        });
        assert_eq!(judge(&f, &thresholds(), now()).state, FeedState::Healthy);
        // A bad history with a clean, large recent window is healthy again.
        f.total = WindowCounts {
            read: 1000,
            rejected: 900,
        };
        f.recent = Some(WindowCounts {
            read: 100,
            rejected: 0,
        });
        assert_eq!(judge(&f, &thresholds(), now()).state, FeedState::Healthy);
        // No window yet: the history decides.
        f.recent = None;
        assert_eq!(judge(&f, &thresholds(), now()).state, FeedState::Failing);
        // Too few records anywhere: no ratio, not failing.
        f.total = WindowCounts {
            read: 3,
            rejected: 3,
        };
        let j = judge(&f, &thresholds(), now());
        assert_eq!(j.state, FeedState::Healthy);
        assert_eq!(j.reject_ratio, None);
    }

    #[test]
    fn a_failed_connector_is_failing_even_when_fresh_and_failing_outranks_stale() {
        let mut f = fresh();
        f.connector = Some(ConnectorState::Failed);
        f.connector_error = Some("file /data/x.csv: permission denied".to_owned());
        let j = judge(&f, &thresholds(), now());
        assert_eq!(j.state, FeedState::Failing);
        assert!(j.reasons[0].contains("permission denied"));
        f.last_record_at = Some(now() - chrono::Duration::days(2));
        let j = judge(&f, &thresholds(), now());
        assert_eq!(j.state, FeedState::Failing);
        assert_eq!(
            j.reasons.len(),
            2,
            "both reasons are given: {:?}",
            j.reasons
        );
        // A finished connector (its file is complete) is not failing.
        f.connector = Some(ConnectorState::Finished);
        assert_eq!(judge(&f, &thresholds(), now()).state, FeedState::Stale);
    }

    #[test]
    fn a_paused_feed_is_paused_whatever_else_is_wrong() {
        let mut f = fresh();
        f.paused = true;
        f.connector = Some(ConnectorState::Failed);
        f.last_record_at = None;
        let j = judge(&f, &thresholds(), now());
        assert_eq!(j.state, FeedState::Paused);
    }

    #[test]
    fn connector_states_round_trip_through_their_names() {
        for s in ConnectorState::ALL {
            assert_eq!(ConnectorState::parse(s.as_str()), Some(s));
        }
        assert_eq!(ConnectorState::parse("exploded"), None);
    }
}
