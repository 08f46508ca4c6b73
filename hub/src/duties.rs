//! The hub's periodic duties, each run by the instance that holds its lease ([`crate::cluster`]): licence expiry, the
//! city CRL's reissue, the ops samples and the audit log's signed checkpoints. Each round's failure is classed
//! ([`crate::failure::Failure`]): one that passes is logged, counted and tried again after a
//! back-off no longer than the duty's period; one that needs someone stops that duty, recorded
//! for `bohai status`, `/api/v1/ops/feeds` and the dashboard, leaves the others running, and
//! is tried again only slowly (`pipeline.stopped_duty_retry`, 5 minutes unless configured) until it works.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;

use crate::failure::Failure;
use crate::ops::components;
use crate::ops::metrics::{Component, Stage, PIPELINE};
use crate::pipeline::Backoff;

/// An error a duty's round can end with: it knows its class.
pub trait DutyError: std::fmt::Display {
    /// What the failure means for the duty.
    fn class(&self) -> Failure;
}

impl DutyError for sqlx::Error {
    fn class(&self) -> Failure {
        Failure::of_database(self)
    }
}

impl DutyError for crate::seals::SealsError {
    fn class(&self) -> Failure {
        match self {
            crate::seals::SealsError::Database(e) => Failure::of_database(e),
            // A key that cannot be read, a CA that cannot sign: someone must look.
            _ => Failure::Component,
        }
    }
}

/// One periodic duty.
#[derive(Debug, Clone)]
pub struct Duty {
    /// Its component name in `ops_component_failures` (`licence-expiry`, ...).
    pub component: &'static str,
    /// Time between the starts of two rounds.
    pub period: Duration,
    /// How often the duty tries again once stopped (`pipeline.stopped_duty_retry`); at least
    /// its period.
    pub stopped_retry: Duration,
}

/// Licence expiry: records the expiry of every licence whose validity ended, every minute.
pub const LICENCE_EXPIRY: &str = "licence-expiry";
/// The city CRL's reissue when half its validity has passed.
pub const CRL_REISSUE: &str = "crl-reissue";
/// Samples of the feed counts, for the rates of the dashboard.
pub const OPS_SAMPLES: &str = "ops-samples";
/// Signed checkpoints of the audit log.
pub const AUDIT_CHECKPOINT: &str = "audit-checkpoint";

impl Duty {
    /// How long a stopped duty waits before it tries again: its period at least.
    fn retry_when_stopped(&self) -> Duration {
        self.period.max(self.stopped_retry)
    }

    /// Runs `round` every period until the task is dropped. A round that fails in a way that
    /// needs someone records the duty as stopped (for `bohai status`, `/api/v1/ops/feeds` and
    /// the dashboard) and the duty tries again only every [`Self::retry_when_stopped`]; a round
    /// that succeeds after failures clears the duty's record.
    pub async fn run<F, Fut, E>(self, db: PgPool, instance: Arc<str>, mut round: F)
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<(), E>>,
        E: DutyError,
    {
        let component = self.component;
        let mut backoff = Backoff::default();
        // Until the first round succeeds: the duty may have been recorded as stopped by an
        // earlier run.
        let mut failing = true;
        // Whether the duty is recorded as stopped (a failure that needs someone).
        let mut stopped = false;
        loop {
            let started = tokio::time::Instant::now();
            match round().await {
                Ok(()) => {
                    if failing {
                        if stopped {
                            tracing::info!(duty = component, "the duty works again");
                        }
                        components::clear_failure(&db, component).await;
                        failing = false;
                        stopped = false;
                    }
                    backoff = Backoff::default();
                    tokio::time::sleep_until(started + self.period).await;
                }
                Err(e) if e.class() == Failure::Transient => {
                    tracing::warn!(duty = component, error = %e, "a round of the duty failed; retrying");
                    PIPELINE.retried(Component::Duty, Stage::Duty);
                    failing = true;
                    tokio::time::timeout(self.period, backoff.wait()).await.ok();
                }
                Err(e) => {
                    // Stopped, and shown so, until someone mends the cause; tried again slowly
                    // meanwhile, because a duty that never runs again (the CRL's reissue
                    // above all: once the CRL expires, every seal of the city verifies
                    // INDETERMINATE) costs more than a round that fails again.
                    if !stopped {
                        tracing::error!(duty = component, error = %e, "the duty stopped: it cannot work until this is fixed; trying again every {} s", self.retry_when_stopped().as_secs());
                        components::record_failure(&db, component, &instance, &e.to_string()).await;
                        stopped = true;
                    }
                    failing = true;
                    tokio::time::sleep(self.retry_when_stopped()).await;
                }
            }
        }
    }
}

/// The periodic duties, each held through its own lease ([`crate::cluster`]).
pub const PERIODIC: [&str; 4] = [LICENCE_EXPIRY, CRL_REISSUE, OPS_SAMPLES, AUDIT_CHECKPOINT];

/// Runs the periodic duty `lease` names until the task is dropped (when the lease is lost or
/// given back); false at once when it names none. Each writes through transactions fenced by
/// the lease, so that a holder that lost it writes nothing.
pub async fn run_periodic(state: &crate::http::AppState, lease: crate::cluster::Lease) -> bool {
    let stopped_retry = state.config.pipeline.stopped_duty_retry;
    let instance = Arc::clone(&lease.holder);
    match &*lease.duty {
        LICENCE_EXPIRY => {
            let db = state.db.clone();
            Duty {
                component: LICENCE_EXPIRY,
                period: Duration::from_secs(60),
                stopped_retry,
            }
            .run(state.db.clone(), instance, move || {
                let (db, lease) = (db.clone(), lease.clone());
                async move {
                    let n =
                        crate::licences::store::expire_due(&db, chrono::Utc::now(), Some(&lease))
                            .await?;
                    if n > 0 {
                        tracing::info!(licences = n, "licence expiry recorded");
                    }
                    Ok::<_, sqlx::Error>(())
                }
            })
            .await;
        }
        CRL_REISSUE => {
            let (db, pki) = (state.db.clone(), state.config.pki.clone());
            Duty {
                component: CRL_REISSUE,
                period: crate::seals::service::crl_check_period(&pki),
                stopped_retry,
            }
            .run(state.db.clone(), instance, move || {
                let (db, pki, lease) = (db.clone(), pki.clone(), lease.clone());
                async move {
                    match crate::seals::service::reissue_if_due(
                        &db,
                        &pki,
                        chrono::Utc::now(),
                        Some(&lease),
                    )
                    .await
                    {
                        Ok(true) => {
                            crate::audit::Entry::new(crate::audit::HUB, "ca.crl_reissue")
                                .append_to(&db)
                                .await?;
                            Ok(())
                        }
                        // Not due, or no city CA yet: nothing to reissue.
                        Ok(false) | Err(crate::seals::SealsError::NoCa) => Ok(()),
                        Err(e) => Err(e),
                    }
                }
            })
            .await;
        }
        AUDIT_CHECKPOINT => {
            let (db, config, registry) = (
                state.db.clone(),
                Arc::clone(&state.config),
                Arc::clone(&state.registry),
            );
            Duty {
                component: AUDIT_CHECKPOINT,
                period: state.config.audit.checkpoint_interval,
                stopped_retry,
            }
            .run(state.db.clone(), instance, move || {
                let (db, config, registry, lease) = (
                    db.clone(),
                    Arc::clone(&config),
                    Arc::clone(&registry),
                    lease.clone(),
                );
                async move {
                    crate::audit::checkpoint::duty_round(&db, &config, &registry, &lease).await
                }
            })
            .await;
        }
        OPS_SAMPLES => {
            let (db, ops) = (state.db.clone(), state.config.ops.clone());
            Duty {
                component: OPS_SAMPLES,
                period: ops.sample_interval,
                stopped_retry,
            }
            .run(state.db.clone(), instance, move || {
                let (db, lease) = (db.clone(), lease.clone());
                async move {
                    crate::ops::samples::sample_once(&db, ops.sample_retention, Some(&lease)).await
                }
            })
            .await;
        }
        _ => return false,
    }
    true
}
