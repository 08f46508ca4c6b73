//! A TCP proxy that a test can cut and restore, to make a database go away and come back
//! while a connector reads from it; or that loses PostgreSQL's answers to commits, so that a
//! client sees its commit fail although the server made it.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// A PostgreSQL simple-query message `COMMIT` (how sqlx ends a transaction): `Q`, its length
/// (4 + 7), the text and its NUL.
const COMMIT_MESSAGE: &[u8] = b"Q\0\0\0\x0bCOMMIT\0";

/// Forwards connections from its own loopback port to a target.
#[derive(Debug)]
pub struct TcpProxy {
    addr: SocketAddr,
    up: Arc<AtomicBool>,
    /// How many more commits' answers to lose.
    commits_to_lose: Arc<AtomicUsize>,
    connections: Arc<Mutex<Vec<JoinHandle<()>>>>,
    accept: JoinHandle<()>,
}

impl TcpProxy {
    /// Listens on a free loopback port and forwards to `target`.
    pub async fn start(target: SocketAddr) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let up = Arc::new(AtomicBool::new(true));
        let commits_to_lose = Arc::new(AtomicUsize::new(0));
        let connections: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let accept = {
            let up = Arc::clone(&up);
            let connections = Arc::clone(&connections);
            let commits_to_lose = Arc::clone(&commits_to_lose);
            tokio::spawn(async move {
                while let Ok((inbound, _)) = listener.accept().await {
                    // Checked and registered under the lock `cut` takes, so that a connection
                    // accepted while the proxy is being cut is either refused or closed by it.
                    let mut open = connections.lock().expect("not poisoned");
                    if !up.load(Ordering::SeqCst) {
                        // Cut: the connection is closed at once, as by a host that is away.
                        drop(inbound);
                        continue;
                    }
                    let commits_to_lose = Arc::clone(&commits_to_lose);
                    open.push(tokio::spawn(async move {
                        if let Ok(outbound) = TcpStream::connect(target).await {
                            forward(inbound, outbound, &commits_to_lose).await;
                        }
                    }));
                }
            })
        };
        Ok(Self {
            addr,
            up,
            commits_to_lose,
            connections,
            accept,
        })
    }

    /// A proxy in front of `config`'s database, which `config.database.url` is pointed at:
    /// the hub run with `config` goes through it, a test's own connections (made before) do
    /// not.
    pub async fn in_front_of_database(
        config: &mut bohai_hub::config::Config,
    ) -> anyhow::Result<Self> {
        let mut url = reqwest::Url::parse(&config.database.url)?;
        let host = url.host_str().unwrap_or("127.0.0.1").to_owned();
        let port = url.port().unwrap_or(5432);
        let target = tokio::net::lookup_host((host, port))
            .await?
            .next()
            .ok_or_else(|| anyhow::anyhow!("the database's host has no address"))?;
        let proxy = Self::start(target).await?;
        url.set_ip_host(proxy.addr().ip())
            .map_err(|()| anyhow::anyhow!("cannot point the database URL at the proxy"))?;
        url.set_port(Some(proxy.addr().port()))
            .map_err(|()| anyhow::anyhow!("cannot point the database URL at the proxy"))?;
        config.database.url = url.to_string();
        Ok(proxy)
    }

    /// The address to connect to instead of the target.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Closes every open connection and refuses new ones until [`TcpProxy::restore`].
    pub fn cut(&self) {
        let mut open = self.connections.lock().expect("not poisoned");
        self.up.store(false, Ordering::SeqCst);
        for task in open.drain(..) {
            task.abort();
        }
    }

    /// Loses the answers to the next `n` commits, whichever connections send them: each
    /// reaches the server, and its connection is closed before the answer comes back.
    pub fn lose_commit_answers(&self, n: usize) {
        self.commits_to_lose.store(n, Ordering::SeqCst);
    }

    /// How many of the commits' answers it was told to lose are still to be lost.
    pub fn commit_answers_to_lose(&self) -> usize {
        self.commits_to_lose.load(Ordering::SeqCst)
    }

    /// Forwards new connections again.
    pub fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}

/// Forwards both ways until either side closes; a commit whose answer is to be lost is sent
/// on, and then both connections are closed without a byte of the answer.
async fn forward(inbound: TcpStream, outbound: TcpStream, commits_to_lose: &AtomicUsize) {
    let (mut from_client, mut to_client) = inbound.into_split();
    let (mut from_server, mut to_server) = outbound.into_split();
    let doomed = AtomicBool::new(false);
    let upstream = async {
        let mut buf = vec![0u8; 64 * 1024];
        // The end of what came before, for a message split between two reads.
        let mut tail: Vec<u8> = Vec::new();
        loop {
            let n = match from_client.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            let mut seen = std::mem::take(&mut tail);
            seen.extend_from_slice(&buf[..n]);
            let commits = seen
                .windows(COMMIT_MESSAGE.len())
                .any(|w| w == COMMIT_MESSAGE);
            if commits
                && commits_to_lose
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
                        left.checked_sub(1)
                    })
                    .is_ok()
            {
                // Before the server can answer: the answer is not forwarded.
                doomed.store(true, Ordering::SeqCst);
            }
            if to_server.write_all(&buf[..n]).await.is_err() {
                return;
            }
            let keep = seen.len().min(COMMIT_MESSAGE.len() - 1);
            tail = seen.split_off(seen.len() - keep);
        }
    };
    let downstream = async {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match from_server.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            if doomed.load(Ordering::SeqCst) {
                return;
            }
            if to_client.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    };
    // Either side ending drops all four halves: both connections close.
    tokio::select! {
        () = upstream => {}
        () = downstream => {}
    }
}
