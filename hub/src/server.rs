//! `bohai serve`: the HTTP API plus this instance's share of the hub's duties, in one process.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::cluster::{self, Instance};
use crate::config::Config;
use crate::http::{self, AppState};
use crate::pipeline::connector::{self, RunUntil};
use crate::pipeline::ingest::Ingestor;
use crate::pipeline::{sink, topics, AbortOnDrop, Backoff};

/// How long a stopping instance waits for its duties to stop and their leases to be given back.
const LEAVE_LIMIT: Duration = Duration::from_secs(10);
use crate::{database, registry};
use bohai_connectors::ConnectorConfig;
use bohai_schemas::Registry;

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The database configuration is unusable.
    #[error(transparent)]
    Database(#[from] database::DatabaseError),
    /// The registry (departments, dataset manifests) has problems.
    #[error(transparent)]
    Registry(#[from] bohai_schemas::RegistryError),
    /// The Kafka client could not be configured.
    #[error(transparent)]
    Broker(#[from] crate::kafka::BrokerError),
    /// A connector file is unusable.
    #[error(transparent)]
    Connector(#[from] bohai_connectors::config::ConfigError),
    /// The HTTP address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The configured address.
        addr: std::net::SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The HTTP server failed.
    #[error("the HTTP server failed: {0}")]
    Http(#[source] std::io::Error),
}

/// A hub whose listener is bound: the address is known before it serves, so a caller (or a
/// test) can print it or connect to it.
#[derive(Debug)]
pub struct BoundHub {
    listener: TcpListener,
    state: AppState,
    connectors: Vec<ConnectorConfig>,
}

impl BoundHub {
    /// Opens the pool and binds the HTTP address. Nothing is served yet.
    pub async fn bind(config: Config) -> Result<Self, ServeError> {
        let db = database::pool(&config.database)?;
        let public_db = database::public_pool(&config.database)?;
        let limits = Arc::new(http::TokenLimits::from_config(&config.http));
        let push_slots = Arc::new(http::PushSlots::new(config.http.department_pushes));
        let registry = Arc::new(registry::load(&config.registry)?);
        let ingestor = Ingestor::new(&config.kafka, db.clone(), Arc::clone(&registry))?;
        let connectors = config
            .pipeline
            .connectors
            .iter()
            .map(|p| ConnectorConfig::load(p))
            .collect::<Result<Vec<_>, _>>()?;
        let addr = config.http.addr;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| ServeError::Bind { addr, source })?;
        Ok(Self {
            listener,
            state: AppState {
                config: Arc::new(config),
                db,
                public_db,
                limits,
                push_slots,
                registry,
                ingestor: Some(ingestor),
                licences: Arc::default(),
                sharing: Arc::default(),
                ops: Arc::default(),
            },
            connectors,
        })
    }

    /// The address actually bound (port 0 in the configuration picks a free port).
    pub fn local_addr(&self) -> std::net::SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or(self.state.config.http.addr)
    }

    /// Serves until `shutdown` completes. The database schema is migrated in the background,
    /// retried while PostgreSQL is away, so that `/healthz` and `/readyz` answer meanwhile.
    pub async fn serve(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        tracing::info!(addr = %self.local_addr(), "serving the HTTP API");
        if self.state.config.licences.status_list_url.is_none() {
            tracing::warn!(
                status_list = %self.state.config.status_list_url(),
                "licences.status_list_url is not set: licences sealed here name this instance's own address as their status list, which verifiers elsewhere cannot reach and other instances do not serve as theirs; set it to the hub's public URL (docs/deployment.md)"
            );
        }
        let me = Instance::this(
            self.local_addr(),
            self.state.config.cluster.instance.as_deref(),
        );
        let (stop_workers, workers_stop) = tokio::sync::oneshot::channel();
        let workers = tokio::spawn(run_workers(
            self.state.clone(),
            self.connectors,
            me,
            workers_stop,
        ));
        let header_timeout = self.state.config.http.header_timeout;
        let app = http::router(self.state);
        let served = serve_http(self.listener, app, header_timeout, shutdown)
            .await
            .map_err(ServeError::Http);
        // The duties stop and their leases are given back, so that the other instances take
        // them at once; a database that does not answer lets the leases expire instead.
        let _ = stop_workers.send(());
        let mut workers = workers;
        if tokio::time::timeout(LEAVE_LIMIT, &mut workers)
            .await
            .is_err()
        {
            workers.abort();
        }
        served
    }
}

/// Serves `app` on `listener` until `shutdown` completes, then lets the requests in progress
/// finish. HTTP/1.1 with keep-alive, as `axum::serve` did, and a client that has not sent a
/// request's head within `header_timeout` of the hub starting to read it is disconnected
/// (`axum::serve` sets no such limit: one connection per slow client, for as long as it
/// likes).
async fn serve_http(
    listener: TcpListener,
    app: axum::Router,
    header_timeout: Duration,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::service::TowerToHyperService;

    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .keep_alive(true);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, or a connection reset before it was taken:
                    // the listener itself is fine.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let connection =
            http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app.clone()));
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(%peer, error = %e, "HTTP connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// The background work of a hub: prepare the database and the topics, then take part in the
/// cluster of the instances on this database ([`crate::cluster`]), running the duties this
/// instance holds, until `stop` completes.
async fn run_workers(
    state: AppState,
    connectors: Vec<ConnectorConfig>,
    me: Instance,
    stop: tokio::sync::oneshot::Receiver<()>,
) {
    let stop = async {
        let _ = stop.await;
    };
    tokio::pin!(stop);
    let ready = async {
        prepare_database(
            state.config.database.clone(),
            state.db.clone(),
            Arc::clone(&state.registry),
        )
        .await;
        let mut backoff = Backoff::default();
        while let Err(e) = topics::ensure(&state.config.kafka, &state.registry).await {
            tracing::warn!(error = %e, "cannot create the pipeline topics yet");
            backoff.wait().await;
        }
    };
    tokio::select! {
        () = ready => {}
        () = &mut stop => return,
    }
    let duties = duty_names(&connectors);
    tracing::info!(instance = %me.id, duties = duties.len(), "joining the instances of this hub database");
    // The repository sink runs on every instance, as a member of one consumer group, while
    // the instance is a member in good standing of the cluster: one cut off from the database
    // (or refused its identity) leaves the group, so that the others take its partitions. It
    // stops (leaving the group at once) with the rest.
    let (standing, standing_now) = tokio::sync::watch::channel(false);
    let sink = state.config.pipeline.sink.then(|| {
        AbortOnDrop(tokio::spawn(run_sink(
            state.clone(),
            me.id.as_str().into(),
            standing_now,
        )))
    });
    let lease = state.config.cluster.lease;
    let starter = starter(state.clone(), connectors);
    cluster::run(state.db.clone(), me, duties, lease, starter, standing, stop).await;
    if let Some(mut sink) = sink {
        sink.0.abort();
        let _ = (&mut sink.0).await;
    }
}

/// Runs the repository sink whenever `standing` says this instance is a member in good
/// standing of the cluster, and stops it (leaving its consumer group) whenever it is not.
async fn run_sink(
    state: AppState,
    owner: Arc<str>,
    mut standing: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let joined = standing.wait_for(|ok| *ok).await.is_ok();
        if !joined {
            return;
        }
        tracing::info!(instance = %owner, "the repository sink starts on this instance");
        let mut running = AbortOnDrop(tokio::spawn(sink::run(
            state.config.kafka.clone(),
            state.config.cluster.clone(),
            state.db.clone(),
            Arc::clone(&state.registry),
            Arc::clone(&owner),
        )));
        tokio::select! {
            // Stopped by itself (a failure that needs someone): it stays stopped.
            _ = &mut running.0 => return,
            lost = async { standing.wait_for(|ok| !*ok).await.is_ok() } => {
                running.0.abort();
                let _ = (&mut running.0).await;
                if !lost {
                    return;
                }
                tracing::warn!(instance = %owner, "this instance is not a member of the cluster in good standing (its heartbeat is not taken): its repository sink left the consumer group for the others to write its partitions");
            }
        }
    }
}

/// The duties this instance can run, the most wanted first (given back last when the
/// instance holds more than its share).
fn duty_names(connectors: &[ConnectorConfig]) -> Vec<String> {
    let mut duties = Vec::new();
    duties.push(crate::licences::events::COMPONENT.to_owned());
    duties.push(crate::sharing::delivery::COMPONENT.to_owned());
    duties.extend(connectors.iter().map(|c| cluster::connector_duty(&c.name)));
    duties.extend(crate::duties::PERIODIC.iter().map(|d| (*d).to_owned()));
    duties
}

/// What runs each duty, under its lease.
fn starter(state: AppState, connectors: Vec<ConnectorConfig>) -> cluster::DutyStarter {
    let connectors = Arc::new(connectors);
    Arc::new(move |lease: cluster::Lease| {
        let state = state.clone();
        let connectors = Arc::clone(&connectors);
        Box::pin(async move {
            let duty = Arc::clone(&lease.duty);
            match &*duty {
                crate::licences::events::COMPONENT => {
                    crate::licences::events::run_publisher(
                        state.db.clone(),
                        state.config.kafka.clone(),
                        lease,
                    )
                    .await;
                }
                crate::sharing::delivery::COMPONENT => {
                    crate::sharing::delivery::run(
                        state.db.clone(),
                        state.config.kafka.clone(),
                        state.config.sharing.clone(),
                        Arc::clone(&state.registry),
                        Arc::clone(&state.sharing),
                        lease,
                    )
                    .await;
                }
                name => {
                    if let Some(connector) = name
                        .strip_prefix(cluster::CONNECTOR_PREFIX)
                        .and_then(|n| connectors.iter().find(|c| c.name == n))
                    {
                        run_connector(&state, connector, &lease).await;
                    } else if !crate::duties::run_periodic(&state, lease).await {
                        tracing::error!(duty = name, "this instance does not know the duty");
                    }
                }
            }
        })
    })
}

/// Runs connector `c` until it finishes or fails, recording its state.
async fn run_connector(state: &AppState, c: &ConnectorConfig, lease: &cluster::Lease) {
    use crate::ops::connectors::record;
    use crate::ops::feeds::ConnectorState;
    let Some(ingestor) = state.ingestor.clone() else {
        return;
    };
    // The department's producer is made before the connector reads (a department that only
    // pushes has its producer made at its first push).
    ingestor.connect(&c.dataset).await;
    let db = &state.db;
    record(db, &c.name, &c.dataset, ConnectorState::Running, None).await;
    match connector::run(c, &ingestor, db, RunUntil::Finished, Some(lease), |_| {}).await {
        Ok(s) => {
            tracing::info!(connector = %c.name, read = s.read, valid = s.valid, rejected = s.rejected, "connector finished");
            record(db, &c.name, &c.dataset, ConnectorState::Finished, None).await;
        }
        // Another instance runs it now: its state is that instance's to record.
        Err(e) if e.is_lease_lost() => {
            tracing::warn!(connector = %c.name, "the connector's lease moved on; stopped here");
        }
        Err(e) => {
            tracing::error!(connector = %c.name, error = %e, "connector stopped");
            let error = e.to_string();
            record(
                db,
                &c.name,
                &c.dataset,
                ConnectorState::Failed,
                Some(&error),
            )
            .await;
        }
    }
}

/// Applies the migrations (as the owner role when one is configured) and copies the registry
/// into the database, waiting and retrying while the database is unreachable.
async fn prepare_database(
    config: crate::config::DatabaseConfig,
    db: sqlx::PgPool,
    registry: Arc<Registry>,
) {
    let mut wait = Duration::from_millis(500);
    loop {
        let result = match database::prepare_schema(&config).await {
            Ok(separation) => {
                if let Some(warning) = separation.warning() {
                    tracing::warn!("{warning}");
                }
                registry::sync(&db, &registry)
                    .await
                    .map_err(|e| e.to_string())
            }
            Err(e) => Err(e.to_string()),
        };
        match result {
            Ok(()) => {
                tracing::info!(
                    departments = registry.departments.len(),
                    datasets = registry.datasets.len(),
                    "database schema is up to date and the registry is loaded"
                );
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?wait, "cannot prepare the database yet");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(30));
            }
        }
    }
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down");
}
