//! Shared support for the integration tests: the stack's addresses, fresh databases and
//! topics with random names (so tests run in parallel), and an in-process hub.
//!
//! The tests need the real broker and PostgreSQL; `scripts/test` starts them and exports
//! `BOHAI_KAFKA_BROKERS` and `DATABASE_URL`.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use bohai_hub::config::Config;
use bohai_hub::server::BoundHub;
use sqlx::{Connection, PgConnection};
use tokio::sync::oneshot;

/// The broker the stack runs, from `BOHAI_KAFKA_BROKERS`.
pub fn brokers() -> String {
    std::env::var("BOHAI_KAFKA_BROKERS")
        .expect("BOHAI_KAFKA_BROKERS is not set: run the tests with scripts/test")
}

/// The stack's database URL, from `DATABASE_URL`.
pub fn database_url() -> String {
    std::env::var("DATABASE_URL").expect("DATABASE_URL is not set: run the tests with scripts/test")
}

/// A short random suffix for names of topics and databases.
pub fn unique(prefix: &str) -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("{prefix}{}", &id[..12])
}

/// Creates an empty database with a fresh name on the stack's server and returns its URL.
/// `scripts/test` drops the test databases of earlier runs.
pub async fn fresh_database() -> anyhow::Result<String> {
    let base = database_url();
    let name = unique("bohai_test_");
    let mut conn = PgConnection::connect(&base)
        .await
        .with_context(|| format!("connecting to {base}"))?;
    // The name is ours (prefix plus hex), never input: safe to place in the statement.
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await?;
    conn.close().await?;
    Ok(replace_database(&base, &name))
}

/// `url` with its database name replaced.
pub fn replace_database(url: &str, name: &str) -> String {
    let (without_query, query) = match url.split_once('?') {
        Some((u, q)) => (u, Some(q)),
        None => (url, None),
    };
    let head = without_query
        .rsplit_once('/')
        .map(|(h, _)| h)
        .unwrap_or(without_query);
    match query {
        Some(q) => format!("{head}/{name}?{q}"),
        None => format!("{head}/{name}"),
    }
}

/// A configuration pointing at the stack, with a fresh database and a free HTTP port.
pub async fn test_config() -> anyhow::Result<Config> {
    let mut config = Config::default();
    config.kafka.brokers = brokers();
    config.kafka.partitions = 1;
    config.kafka.request_timeout = Duration::from_secs(5);
    config.database.url = fresh_database().await?;
    config.http.addr = SocketAddr::from(([127, 0, 0, 1], 0));
    Ok(config)
}

/// A hub serving in this process; dropped, it shuts down.
#[derive(Debug)]
pub struct RunningHub {
    /// `http://127.0.0.1:PORT`.
    pub base_url: String,
    stop: Option<oneshot::Sender<()>>,
}

impl RunningHub {
    /// Binds and serves `config` on a background task.
    pub async fn start(config: Config) -> anyhow::Result<Self> {
        let hub = BoundHub::bind(config).await?;
        let base_url = format!("http://{}", hub.local_addr());
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = hub
                .serve(async move {
                    let _ = stopped.await;
                })
                .await;
        });
        Ok(Self {
            base_url,
            stop: Some(stop),
        })
    }

    /// `base_url` joined with `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base_url, path)
    }
}

impl Drop for RunningHub {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
