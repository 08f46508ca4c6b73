//! `GET /metrics` in the Prometheus text format (0.0.4), with `prometheus-client`.
//!
//! Two kinds of metric: the HTTP requests the hub served (counted in process by a tower
//! middleware, labelled by the matched route template, never the raw path, so the label set
//! stays bounded), and the state of the pipeline, seals and licences, read from the
//! [`Overview`] at every scrape (the counts live in PostgreSQL, so every hub process reports
//! the same totals and a restart loses nothing).

use std::collections::BTreeMap;
use std::time::Duration;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use super::feeds::{ConnectorState, FeedState};
use super::overview::Overview;

/// The `Content-Type` of the answer.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

type RequestLabels = [(&'static str, String); 3];
type LatencyLabels = [(&'static str, String); 2];
type VerdictLabels = [(&'static str, String); 2];

/// The hub's HTTP request metrics, shared by every request.
#[derive(Debug, Clone)]
pub struct HttpMetrics {
    requests: Family<RequestLabels, Counter>,
    latency: Family<LatencyLabels, Histogram>,
    /// Licence verifications answered by the hub, by form (`jws`, `qr`) and verdict.
    licence_verifications: Family<VerdictLabels, Counter>,
}

impl Default for HttpMetrics {
    fn default() -> Self {
        Self {
            requests: Family::default(),
            // 1 ms to about 16 s.
            latency: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.001, 2.0, 15))
            }),
            licence_verifications: Family::default(),
        }
    }
}

impl HttpMetrics {
    /// Counts one licence verification by its form (`jws` or `qr`) and verdict
    /// (`VALID`, `INVALID`, `INDETERMINATE`): bounded labels.
    pub fn observe_licence_verification(&self, form: &'static str, verdict: &'static str) {
        self.licence_verifications
            .get_or_create(&[("form", form.to_owned()), ("verdict", verdict.to_owned())])
            .inc();
    }
}

/// The route label of a request that matched no route.
pub const UNMATCHED_ROUTE: &str = "unmatched";

impl HttpMetrics {
    /// Counts one answered request.
    pub fn observe(&self, route: &str, method: &str, status: u16, elapsed: Duration) {
        self.requests
            .get_or_create(&[
                ("route", route.to_owned()),
                ("method", method.to_owned()),
                ("status", status.to_string()),
            ])
            .inc();
        self.latency
            .get_or_create(&[("route", route.to_owned()), ("method", method.to_owned())])
            .observe(elapsed.as_secs_f64());
    }
}

/// What the pipeline of this process waited out: records the broker did not take, and
/// operations retried because the broker, the database or a source was away. Counted in
/// process (they are events of this process, not state in the database), so a restart starts
/// them at zero, as Prometheus counters expect.
#[derive(Debug, Default)]
pub struct PipelineMetrics {
    produce_errors: Family<[(&'static str, String); 1], Counter>,
    retries: Family<[(&'static str, &'static str); 2], Counter>,
}

/// The pipeline metrics of this process.
pub static PIPELINE: std::sync::LazyLock<PipelineMetrics> =
    std::sync::LazyLock::new(PipelineMetrics::default);

/// Which part of the pipeline retried.
#[derive(Debug, Clone, Copy)]
pub enum Component {
    /// A connector (in `bohai serve` or `bohai connect run`).
    Connector,
    /// The repository sink.
    Sink,
    /// The licence-events publisher.
    LicenceEvents,
    /// The subscription-topic delivery.
    SubscriptionDelivery,
    /// A periodic duty (licence expiry, CRL reissue, ops samples).
    Duty,
}

/// What was retried.
#[derive(Debug, Clone, Copy)]
pub enum Stage {
    /// Handing records to the broker, or waiting for its acknowledgement.
    Produce,
    /// Recording a delivered batch (counts, rejects, checkpoint) in the database.
    Commit,
    /// Reading from, or finishing a batch at, the source.
    Source,
    /// Reading from the broker.
    Consume,
    /// Writing the repository.
    RepositoryWrite,
    /// A round of a periodic duty.
    Duty,
}

impl PipelineMetrics {
    /// Counts `records` of `dataset` the broker did not take.
    pub fn produce_failed(&self, dataset: &str, records: u64) {
        self.produce_errors
            .get_or_create(&[("dataset", dataset.to_owned())])
            .inc_by(records);
    }

    /// Counts one retry.
    pub fn retried(&self, component: Component, stage: Stage) {
        let component = match component {
            Component::Connector => "connector",
            Component::Sink => "sink",
            Component::LicenceEvents => "licence_events",
            Component::SubscriptionDelivery => "subscription_delivery",
            Component::Duty => "duty",
        };
        let stage = match stage {
            Stage::Produce => "produce",
            Stage::Commit => "commit",
            Stage::Source => "source",
            Stage::Consume => "consume",
            Stage::RepositoryWrite => "repository_write",
            Stage::Duty => "round",
        };
        self.retries
            .get_or_create(&[("component", component), ("stage", stage)])
            .inc();
    }
}

/// The methods that get their own label value; anything else is `other`.
fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// The middleware that counts every request by its matched route template, method and
/// status, and times it.
pub async fn track(State(metrics): State<HttpMetrics>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| UNMATCHED_ROUTE.to_owned(), |p| p.as_str().to_owned());
    let method = method_label(request.method());
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    metrics.observe(
        &route,
        method,
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

/// Renders the metrics: the HTTP metrics plus those of `overview`.
pub fn render(http: &HttpMetrics, overview: Overview) -> Result<String, std::fmt::Error> {
    let mut registry = Registry::default();
    registry.register(
        "bohai_http_requests",
        "HTTP requests answered, by matched route template, method and status",
        http.requests.clone(),
    );
    registry.register(
        "bohai_http_request_duration_seconds",
        "Time to answer an HTTP request, by matched route template and method",
        http.latency.clone(),
    );
    registry.register(
        "bohai_licence_verifications",
        "Licence verifications answered by the hub, by form (jws, qr) and verdict",
        http.licence_verifications.clone(),
    );
    registry.register(
        "bohai_pipeline_produce_errors",
        "Records the broker did not take (refused or not acknowledged), by dataset; each is produced again",
        PIPELINE.produce_errors.clone(),
    );
    registry.register(
        "bohai_pipeline_retries",
        "Operations retried because the broker, the database or a source was away, by component and stage",
        PIPELINE.retries.clone(),
    );
    registry.register_collector(Box::new(OverviewCollector(overview)));
    let mut out = String::new();
    prometheus_client::encoding::prometheus_text::encode(&mut out, &registry)?;
    Ok(out)
}

/// The metrics of one overview, emitted at one scrape.
#[derive(Debug)]
struct OverviewCollector(Overview);

type Labels = Vec<(&'static str, String)>;

/// One metric family of constant values.
fn family(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    metric_type: MetricType,
    samples: impl IntoIterator<Item = (Labels, f64)>,
) -> Result<(), std::fmt::Error> {
    let mut metric = encoder.encode_descriptor(name, help, None, metric_type)?;
    for (labels, value) in samples {
        let e = metric.encode_family(&labels)?;
        match metric_type {
            MetricType::Counter => ConstCounter::new(value).encode(e)?,
            _ => ConstGauge::new(value).encode(e)?,
        }
    }
    Ok(())
}

fn ts(t: Option<chrono::DateTime<chrono::Utc>>) -> Option<f64> {
    t.map(|t| t.timestamp_millis() as f64 / 1000.0)
}

impl Collector for OverviewCollector {
    fn encode(&self, mut e: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let o = &self.0;
        let feed = |f: &super::overview::FeedHealth| -> Labels {
            vec![
                ("dataset", f.dataset.clone()),
                ("department", f.department.clone()),
                ("source", f.source.clone()),
            ]
        };
        use MetricType::{Counter as C, Gauge as G};
        family(
            &mut e,
            "bohai_cluster_instance_heartbeat_timestamp_seconds",
            "The last heartbeat of a bohai serve instance of the hub (Unix time)",
            G,
            o.cluster.instances.iter().filter_map(|i| {
                ts(Some(i.heartbeat_at)).map(|t| (vec![("instance", i.id.clone())], t))
            }),
        )?;
        family(
            &mut e,
            "bohai_cluster_instance_live",
            "1 when an instance's heartbeat is fresh, 0 when it stopped or died",
            G,
            o.cluster.instances.iter().map(|i| {
                (
                    vec![("instance", i.id.clone())],
                    f64::from(u8::from(i.live)),
                )
            }),
        )?;
        family(
            &mut e,
            "bohai_cluster_instance_sink_partitions",
            "How many dataset topic partitions an instance's repository sink holds",
            G,
            o.cluster
                .instances
                .iter()
                .map(|i| (vec![("instance", i.id.clone())], i.sink_partitions as f64)),
        )?;
        family(
            &mut e,
            "bohai_cluster_duty_held",
            "1 for the instance that holds a duty's lease; a duty nobody holds has instance=\"\" and 0",
            G,
            o.cluster.duties.iter().map(|d| {
                let labels = vec![
                    ("duty", d.duty.clone()),
                    ("instance", d.holder.clone().unwrap_or_default()),
                ];
                (labels, if d.holder.is_some() { 1.0 } else { 0.0 })
            }),
        )?;
        family(
            &mut e,
            "bohai_feed_records_read",
            "Records read by a feed",
            C,
            o.feeds.iter().map(|f| (feed(f), f.read_total as f64)),
        )?;
        family(
            &mut e,
            "bohai_feed_records_valid",
            "Records of a feed that passed validation",
            C,
            o.feeds.iter().map(|f| (feed(f), f.valid_total as f64)),
        )?;
        family(
            &mut e,
            "bohai_feed_records_rejected",
            "Records of a feed rejected by validation (kept in the dead-letter topic)",
            C,
            o.feeds.iter().map(|f| (feed(f), f.rejected_total as f64)),
        )?;
        family(
            &mut e,
            "bohai_feed_last_record_timestamp_seconds",
            "When a feed's newest record was read (Unix time)",
            G,
            o.feeds
                .iter()
                .filter_map(|f| ts(f.last_record_at).map(|t| (feed(f), t))),
        )?;
        family(
            &mut e,
            "bohai_feed_state",
            "1 for the state a feed is in (healthy, stale, failing, paused), 0 for the others",
            G,
            o.feeds.iter().flat_map(|f| {
                FeedState::ALL.iter().map(move |s| {
                    let mut l = feed(f);
                    l.push(("state", s.as_str().to_owned()));
                    (l, f64::from(u8::from(f.state == *s)))
                })
            }),
        )?;
        family(
            &mut e,
            "bohai_feeds",
            "Feeds in each state",
            G,
            o.feed_states
                .iter()
                .map(|(s, n)| (vec![("state", s.clone())], *n as f64)),
        )?;
        let connectors: Vec<_> = o.feeds.iter().filter(|f| f.kind == "connector").collect();
        family(&mut e, "bohai_connector_state", "1 for the state a connector run by the hub is in (running, finished, failed), 0 for the others", G,
            connectors.iter().filter(|f| f.connector_state.is_some()).flat_map(|f| ConnectorState::ALL.iter().map(move |s| {
                (vec![("connector", f.source.clone()), ("dataset", f.dataset.clone()), ("state", s.as_str().to_owned())],
                 f64::from(u8::from(f.connector_state == Some(*s))))
            })))?;
        family(
            &mut e,
            "bohai_connector_last_success_timestamp_seconds",
            "When a connector last committed a checkpoint (Unix time)",
            G,
            connectors.iter().filter_map(|f| {
                ts(f.last_success_at).map(|t| {
                    (
                        vec![
                            ("connector", f.source.clone()),
                            ("dataset", f.dataset.clone()),
                        ],
                        t,
                    )
                })
            }),
        )?;
        let ds = |d: &crate::pipeline::stats::DatasetStats| -> Labels {
            vec![
                ("dataset", d.dataset.clone()),
                ("department", d.department.clone()),
            ]
        };
        family(
            &mut e,
            "bohai_repository_rows",
            "Rows in the shared repository",
            G,
            o.datasets.iter().map(|d| (ds(d), d.rows as f64)),
        )?;
        family(
            &mut e,
            "bohai_sink_records_inserted",
            "Repository rows created by the sink",
            C,
            o.datasets.iter().map(|d| (ds(d), d.inserted as f64)),
        )?;
        family(
            &mut e,
            "bohai_sink_records_updated",
            "Repository rows updated by the sink (newer versions)",
            C,
            o.datasets.iter().map(|d| (ds(d), d.updated as f64)),
        )?;
        family(
            &mut e,
            "bohai_sink_duplicates_skipped",
            "Deliveries the sink skipped because the repository already had them",
            C,
            o.datasets
                .iter()
                .map(|d| (ds(d), d.duplicates_skipped as f64)),
        )?;
        family(
            &mut e,
            "bohai_sink_pending_records",
            "Valid records not yet written to the repository",
            G,
            o.datasets.iter().map(|d| (ds(d), d.pending as f64)),
        )?;
        family(
            &mut e,
            "bohai_sink_last_write_timestamp_seconds",
            "When the sink last wrote a dataset (Unix time)",
            G,
            o.datasets
                .iter()
                .filter_map(|d| ts(d.last_write_at).map(|t| (ds(d), t))),
        )?;
        family(
            &mut e,
            "bohai_sink_lag_records",
            "Records on a dataset topic partition that the repository sink has not written",
            G,
            o.sink_lag.iter().map(|l| {
                (
                    vec![
                        ("topic", l.topic.clone()),
                        ("dataset", l.dataset.clone()),
                        ("partition", l.partition.to_string()),
                    ],
                    l.lag_records as f64,
                )
            }),
        )?;
        family(
            &mut e,
            "bohai_sink_lag_seconds",
            "Age of the oldest record on a dataset topic partition that the repository sink has not written (0 without lag)",
            G,
            o.sink_lag.iter().filter_map(|l| {
                l.lag_seconds.map(|s| {
                    (
                        vec![
                            ("topic", l.topic.clone()),
                            ("dataset", l.dataset.clone()),
                            ("partition", l.partition.to_string()),
                        ],
                        s,
                    )
                })
            }),
        )?;
        family(
            &mut e,
            "bohai_sink_lag_available",
            "1 when the broker answered for the sink lag, 0 when it did not",
            G,
            [(Vec::new(), f64::from(u8::from(o.sink_lag_error.is_none())))],
        )?;
        let s = &o.seals;
        family(
            &mut e,
            "bohai_seal_coverage_ratio",
            "Share of departments holding a valid seal (valid or expiring)",
            G,
            [(
                Vec::new(),
                if s.departments_total == 0 {
                    0.0
                } else {
                    (s.valid + s.expiring) as f64 / s.departments_total as f64
                },
            )],
        )?;
        family(
            &mut e,
            "bohai_seal_departments",
            "Departments by the state of their best seal",
            G,
            [
                ("valid", s.valid),
                ("expiring", s.expiring),
                ("expired", s.expired),
                ("revoked", s.revoked),
                ("none", s.none),
            ]
            .into_iter()
            .map(|(k, n)| (vec![("state", k.to_owned())], n as f64)),
        )?;
        family(
            &mut e,
            "bohai_licences",
            "Licence versions by state (expired: valid but past its validity)",
            G,
            o.licences
                .by_state
                .iter()
                .map(|(k, n)| (vec![("state", k.clone())], *n as f64)),
        )?;
        family(
            &mut e,
            "bohai_licence_events",
            "Licence lifecycle events (issued, renewed, revoked, ...)",
            C,
            o.licences
                .events
                .iter()
                .map(|(k, n)| (vec![("event", k.clone())], *n as f64)),
        )?;
        // By dataset only: which department reads which dataset is for the ops scope
        // (`/api/v1/ops/overview`), and /metrics answers anyone who can reach it.
        let mut by_dataset: BTreeMap<&str, (f64, f64)> = BTreeMap::new();
        for s in &o.subscriptions {
            let entry = by_dataset.entry(s.dataset.as_str()).or_default();
            entry.0 += s.active as f64;
            entry.1 += s.delivered_total as f64;
        }
        let dataset = |d: &str| -> Labels { vec![("dataset", d.to_owned())] };
        family(
            &mut e,
            "bohai_subscriptions_active",
            "Approved, unexpired subscriptions, by dataset (all reading departments together)",
            G,
            by_dataset
                .iter()
                .map(|(d, (active, _))| (dataset(d), *active)),
        )?;
        family(
            &mut e,
            "bohai_subscription_records_delivered",
            "Records put on subscription topics, by dataset (all reading departments together)",
            C,
            by_dataset
                .iter()
                .map(|(d, (_, delivered))| (dataset(d), *delivered)),
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipeline_failures_are_counted_with_bounded_labels() {
        let m = PipelineMetrics::default();
        m.produce_failed("business-registrations", 3);
        m.produce_failed("business-registrations", 2);
        m.retried(Component::Sink, Stage::RepositoryWrite);
        m.retried(Component::Connector, Stage::Produce);
        m.retried(Component::Connector, Stage::Produce);
        let mut registry = Registry::default();
        registry.register(
            "bohai_pipeline_produce_errors",
            "h",
            m.produce_errors.clone(),
        );
        registry.register("bohai_pipeline_retries", "h", m.retries.clone());
        let mut out = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut out, &registry).unwrap();
        for line in [
            r#"bohai_pipeline_produce_errors_total{dataset="business-registrations"} 5"#,
            r#"bohai_pipeline_retries_total{component="sink",stage="repository_write"} 1"#,
            r#"bohai_pipeline_retries_total{component="connector",stage="produce"} 2"#,
        ] {
            assert!(out.contains(line), "{line} missing from\n{out}");
        }
    }

    #[test]
    fn http_requests_are_counted_by_route_template_with_a_latency_histogram() {
        let m = HttpMetrics::default();
        m.observe(
            "/api/v1/datasets/{id}",
            "GET",
            200,
            Duration::from_millis(3),
        );
        m.observe(
            "/api/v1/datasets/{id}",
            "GET",
            200,
            Duration::from_millis(5),
        );
        m.observe(
            "/api/v1/datasets/{id}",
            "GET",
            404,
            Duration::from_millis(1),
        );
        let mut registry = Registry::default();
        registry.register("bohai_http_requests", "h", m.requests.clone());
        registry.register(
            "bohai_http_request_duration_seconds",
            "h",
            m.latency.clone(),
        );
        let mut out = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut out, &registry).unwrap();
        assert!(
            out.contains("# TYPE bohai_http_requests_total counter"),
            "{out}"
        );
        assert!(
            out.contains(r#"bohai_http_requests_total{route="/api/v1/datasets/{id}",method="GET",status="200"} 2"#),
            "{out}"
        );
        assert!(out.contains(r#"bohai_http_request_duration_seconds_count{route="/api/v1/datasets/{id}",method="GET"} 3"#), "{out}");
        assert!(out.contains(r#"bohai_http_request_duration_seconds_bucket{le="0.004",route="/api/v1/datasets/{id}",method="GET"} 2"#)
            || out.contains(r#"bohai_http_request_duration_seconds_bucket{route="/api/v1/datasets/{id}",method="GET",le="0.004"} 2"#), "{out}");
    }
}
