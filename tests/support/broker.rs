//! A Kafka-API broker of a test's own (tansu with SQLite storage in a temporary folder), so
//! that a test can kill it and start it again on the same port and storage while the hub
//! runs. The binary comes from `BOHAI_TANSU_BIN` (`scripts/stack env` prints it).

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A private broker; killed when dropped.
#[derive(Debug)]
pub struct PrivateBroker {
    binary: PathBuf,
    dir: tempfile::TempDir,
    addr: SocketAddr,
    child: Option<Child>,
}

impl PrivateBroker {
    /// Starts a broker on a free loopback port and waits until it answers.
    pub async fn start() -> anyhow::Result<Self> {
        let binary = std::env::var_os("BOHAI_TANSU_BIN")
            .map(PathBuf::from)
            .ok_or_else(|| {
                anyhow::anyhow!("BOHAI_TANSU_BIN is not set: run the tests with scripts/test")
            })?;
        let addr = TcpListener::bind("127.0.0.1:0")?.local_addr()?;
        let mut broker = Self {
            binary,
            dir: tempfile::tempdir()?,
            addr,
            child: None,
        };
        broker.resume().await?;
        Ok(broker)
    }

    /// `host:port` for `kafka.brokers`.
    pub fn brokers(&self) -> String {
        self.addr.to_string()
    }

    /// Kills the broker with SIGKILL, as a crash or a lost host would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            crate::kill(&mut child);
        }
    }

    /// Starts the broker again on the same port and storage and waits until it answers.
    pub async fn resume(&mut self) -> anyhow::Result<()> {
        let url = format!("tcp://{}", self.addr);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("broker.log"))?;
        let child = Command::new(&self.binary)
            .current_dir(self.dir.path())
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", "sqlite://tansu.db"])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        self.child = Some(child);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            if tokio::net::TcpStream::connect(self.addr).await.is_ok() {
                break;
            }
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "the private broker did not listen on {} within 60 s; see {}",
                self.addr,
                self.dir.path().join("broker.log").display()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.index_headers()
    }

    /// tansu 0.6.0 keeps record headers in a SQLite table without an index, which makes
    /// reading back quadratic; `scripts/stack` adds the same index to the shared broker.
    fn index_headers(&self) -> anyhow::Result<()> {
        let db = self.dir.path().join("tansu.db");
        for _ in 0..50 {
            let out = Command::new("sqlite3")
                .args(["-cmd", ".timeout 30000"])
                .arg(&db)
                .arg("CREATE INDEX IF NOT EXISTS bohai_header_record ON header (topition, offset_id);")
                .output()?;
            if out.status.success() {
                return Ok(());
            }
            // The broker creates its tables just after it starts listening.
            std::thread::sleep(Duration::from_millis(100));
        }
        anyhow::bail!("cannot index the private broker's storage {}", db.display())
    }
}

impl Drop for PrivateBroker {
    fn drop(&mut self) {
        self.kill();
    }
}
