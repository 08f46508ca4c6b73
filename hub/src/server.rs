//! `bohai serve`: the HTTP API plus the pipeline workers, in one process.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::config::Config;
use crate::http::{self, AppState};
use crate::pipeline::connector::{self, RunUntil};
use crate::pipeline::ingest::Ingestor;
use crate::pipeline::{sink, topics, Backoff};
use crate::workers::{self, Instance, Taken};
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
        let me = Instance::this(self.local_addr());
        let db = self.state.db.clone();
        let workers = tokio::spawn(run_workers(self.state.clone(), self.connectors, me.clone()));
        let header_timeout = self.state.config.http.header_timeout;
        let app = http::router(self.state);
        let served = serve_http(self.listener, app, header_timeout, shutdown)
            .await
            .map_err(ServeError::Http);
        workers.abort();
        let _ = workers.await;
        workers::give_back(&db, &me).await;
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

/// The background work of a hub: prepare the database, then, while this instance holds the
/// workers of the database (see [`crate::workers`]), create the topics and run the repository
/// sink, the configured connectors and the duties. Each waits out outages by itself.
async fn run_workers(state: AppState, connectors: Vec<ConnectorConfig>, me: Instance) {
    prepare_database(
        state.config.database.clone(),
        state.db.clone(),
        Arc::clone(&state.registry),
    )
    .await;
    let hold = state.config.pipeline.worker_hold;
    loop {
        let taken_at = wait_for_hold(&state.db, &me, hold).await;
        tracing::info!(instance = %me.id, "this instance runs the workers of the hub database");
        // The hold is kept from the moment it was taken, also while the workers start (the
        // topics may wait for the broker longer than the hold lasts).
        let keeper = keep_hold(&state.db, &me, hold, taken_at);
        tokio::pin!(keeper);
        let mut tasks = tokio::select! {
            tasks = spawn_workers(&state, &connectors, &me) => tasks,
            () = &mut keeper => {
                tracing::error!(instance = %me.id, "this instance lost the hold on the workers while starting them; waiting to take them again");
                continue;
            }
        };
        keeper.await;
        // Lost: nothing more may be done by these workers.
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
        tracing::error!(instance = %me.id, "this instance lost the hold on the workers and stopped them; waiting to take them again");
    }
}

/// Returns once this instance holds the workers, with when it took them. While another
/// does, says who, once per holder.
async fn wait_for_hold(db: &sqlx::PgPool, me: &Instance, hold: Duration) -> tokio::time::Instant {
    let mut told: Option<String> = None;
    let mut backoff = Backoff::default();
    loop {
        let asked_at = tokio::time::Instant::now();
        match workers::take(db, me, hold).await {
            Ok(Taken::Held) => return asked_at,
            Ok(Taken::HeldBy(Some(h))) => {
                if told.as_deref() != Some(h.instance.as_str()) {
                    tracing::warn!(
                        holder = %h.instance, host = %h.host, pid = h.pid, http = %h.http_addr, since = %h.since,
                        "another bohai serve runs the workers of this hub database; this instance serves its HTTP API only and takes the workers over when that hold ends"
                    );
                    told = Some(h.instance);
                }
                tokio::time::sleep(hold / 3).await;
            }
            Ok(Taken::HeldBy(None)) => {}
            Err(e) => {
                tracing::warn!(error = %e, "cannot take the workers' hold yet");
                backoff.wait().await;
            }
        }
    }
}

/// Renews the hold every third of its length; returns when it is lost, or at the latest two
/// thirds of its length after the last renewal that succeeded (counted from when the request
/// was sent), so that the workers stop before another instance may take them.
async fn keep_hold(
    db: &sqlx::PgPool,
    me: &Instance,
    hold: Duration,
    taken_at: tokio::time::Instant,
) {
    let mut renewed = taken_at;
    loop {
        let deadline = renewed + hold * 2 / 3;
        let next = (tokio::time::Instant::now() + hold / 3).min(deadline);
        tokio::time::sleep_until(next).await;
        if tokio::time::Instant::now() >= deadline {
            tracing::warn!("the workers' hold could not be renewed in time");
            return;
        }
        let sent = tokio::time::Instant::now();
        match tokio::time::timeout_at(deadline, workers::renew(db, me, hold)).await {
            Ok(Ok(true)) => renewed = sent,
            Ok(Ok(false)) => return,
            Ok(Err(e)) => tracing::warn!(error = %e, "cannot renew the workers' hold"),
            Err(_) => {
                tracing::warn!("renewing the workers' hold timed out");
                return;
            }
        }
    }
}

/// Starts the workers: the topics first, then the sink, the connectors and the duties.
async fn spawn_workers(
    state: &AppState,
    connectors: &[ConnectorConfig],
    me: &Instance,
) -> tokio::task::JoinSet<()> {
    let mut backoff = Backoff::default();
    while let Err(e) = topics::ensure(&state.config.kafka, &state.registry).await {
        tracing::warn!(error = %e, "cannot create the pipeline topics yet");
        backoff.wait().await;
    }
    let mut tasks = tokio::task::JoinSet::new();
    if let Some(ingestor) = state.ingestor.clone() {
        // Beside the workers, not before them: the producers of the departments whose
        // connectors run here (a department that only pushes has its producer made at its
        // first push).
        let datasets: Vec<String> = connectors.iter().map(|c| c.dataset.clone()).collect();
        tasks.spawn(async move {
            for dataset in datasets {
                ingestor.connect(&dataset).await;
            }
        });
    }
    let instance: Arc<str> = me.id.as_str().into();
    crate::duties::spawn(&mut tasks, state, &instance);
    tasks.spawn(crate::licences::events::run_publisher(
        state.db.clone(),
        state.config.kafka.clone(),
        Arc::clone(&instance),
    ));
    tasks.spawn(crate::sharing::delivery::run(
        state.db.clone(),
        state.config.kafka.clone(),
        state.config.sharing.clone(),
        Arc::clone(&state.registry),
        Arc::clone(&state.sharing),
        Arc::clone(&instance),
    ));
    if state.config.pipeline.sink {
        tasks.spawn(sink::run(
            state.config.kafka.clone(),
            state.db.clone(),
            Arc::clone(&state.registry),
            instance,
        ));
    }
    if let Some(ingestor) = state.ingestor.clone() {
        for c in connectors.iter().cloned() {
            let ingestor = ingestor.clone();
            let db = state.db.clone();
            tasks.spawn(async move {
                use crate::ops::connectors::record;
                use crate::ops::feeds::ConnectorState;
                record(&db, &c.name, &c.dataset, ConnectorState::Running, None).await;
                match connector::run(&c, &ingestor, &db, RunUntil::Finished, |_| {}).await {
                    Ok(s) => {
                        tracing::info!(connector = %c.name, read = s.read, valid = s.valid, rejected = s.rejected, "connector finished");
                        record(&db, &c.name, &c.dataset, ConnectorState::Finished, None).await;
                    }
                    Err(e) => {
                        tracing::error!(connector = %c.name, error = %e, "connector stopped");
                        let error = e.to_string();
                        record(&db, &c.name, &c.dataset, ConnectorState::Failed, Some(&error)).await;
                    }
                }
            });
        }
    }
    tasks
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
