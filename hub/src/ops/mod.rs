//! Operations: what the ops team watches. Feed health (`feeds`: a pure judge), the overview
//! gathered from PostgreSQL and the broker (`overview`), Prometheus metrics (`metrics`),
//! samples of the feed counts for rates over time (`samples`), the connectors' run state
//! (`connectors`), the short-lived cache of expensive answers (`recent`), components stopped by a failure that needs someone (`components`), and the dead-letter viewer's masked rejects (`dead_letters`, `mask`).
//!
//! Served by `http/ops.rs` (`/metrics`, `/api/v1/ops/...`) and `http/dashboard.rs` (`/`),
//! shown in the terminal by `bohai status`.

pub mod components;
pub mod connectors;
pub mod dead_letters;
pub mod feeds;
pub mod mask;
pub mod metrics;
pub mod overview;
pub mod recent;
pub mod samples;

/// What the HTTP side of ops keeps in process.
#[derive(Debug)]
pub struct OpsState {
    /// Request counters and latency histograms.
    pub http: metrics::HttpMetrics,
    /// Key of the `hash` masking rule in the dead-letter viewer: random per process, so
    /// masked values cannot be looked up in a precomputed table.
    pub mask_key: ring::hmac::Key,
    /// The overview behind `/metrics` and `/api/v1/ops/overview`, kept `ops.answer_cache`.
    pub overview: recent::Recent<overview::Overview>,
    /// The broker client the overview reads watermarks with, kept between overviews.
    pub lag_client: overview::LagClient,
}

impl Default for OpsState {
    fn default() -> Self {
        Self {
            http: metrics::HttpMetrics::default(),
            mask_key: ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &rand::random::<[u8; 32]>()),
            overview: recent::Recent::default(),
            lag_client: overview::LagClient::default(),
        }
    }
}
