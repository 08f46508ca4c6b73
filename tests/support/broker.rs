//! A Kafka node (or a cluster of them) of a test's own, so that a test can kill a node and
//! start it again on the same ports and storage while the hub runs: Apache Kafka in KRaft
//! mode, broker and controller in one JVM per node, the log folders in a temporary folder. The jars come from `BOHAI_KAFKA_HOME` and the
//! java from `BOHAI_JAVA` (default `java` on the path); `scripts/stack env` prints both, and
//! `scripts/stack up` installs the jars.

use std::ffi::OsString;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::Context;
use base64::Engine as _;
use rdkafka::consumer::{BaseConsumer, Consumer};

/// How long a start (a JVM, then the node's election and registration) may take before the
/// test fails; a start takes 2 to 5 s on a quiet 2-core machine.
const START_LIMIT: Duration = Duration::from_secs(90);

/// JVM settings for a short-lived test node: a small heap, and only the quick first JIT tier,
/// which brings a fresh node to ready about a third sooner (median 2.7 s instead of 4.1 s over
/// four starts each on a 2-core machine busy with a Rust build) and is fast enough for the
/// records a test sends.
const JVM_OPTIONS: &[&str] = &[
    "-Xms256m",
    "-Xmx512m",
    "-XX:+UseG1GC",
    "-XX:TieredStopAtLevel=1",
    "-XX:+ExitOnOutOfMemoryError",
    "-Djava.awt.headless=true",
];

/// A private Kafka cluster of one or more nodes, each broker and controller in one JVM, all
/// voters of one KRaft quorum; killed when dropped, its storage removed with it.
#[derive(Debug)]
pub struct PrivateCluster {
    java: PathBuf,
    /// `<BOHAI_KAFKA_HOME>/libs/*`: the JVM expands the wildcard itself.
    classpath: OsString,
    dir: tempfile::TempDir,
    nodes: Vec<Node>,
}

/// One node of a [`PrivateCluster`].
#[derive(Debug)]
struct Node {
    /// Its client address.
    addr: SocketAddr,
    child: Option<Child>,
}

/// A private single-node Kafka ([`PrivateCluster`] of one node).
#[derive(Debug)]
pub struct PrivateBroker(PrivateCluster);

impl PrivateBroker {
    /// Formats storage for a new cluster in a temporary folder, starts the node on two free
    /// loopback ports (clients, controller) and waits until it serves clients.
    pub async fn start() -> anyhow::Result<Self> {
        Ok(Self(PrivateCluster::start(1).await?))
    }

    /// `host:port` for `kafka.brokers`.
    pub fn brokers(&self) -> String {
        self.0.brokers()
    }

    /// Kills the node with SIGKILL, as a crash or a lost host would.
    pub fn kill(&mut self) {
        self.0.kill(0);
    }

    /// Starts the node again on the same ports and storage; see [`PrivateCluster::resume`].
    pub async fn resume(&mut self) -> anyhow::Result<()> {
        self.0.resume(0).await
    }
}

impl PrivateCluster {
    /// Formats storage for a new cluster of `n` nodes in a temporary folder, starts each on
    /// two free loopback ports (clients, controller) and waits until every node serves clients
    /// as a broker of the cluster. With three nodes or more, topics keep three replicas and a
    /// write needs two in sync, as in production.
    pub async fn start(n: usize) -> anyhow::Result<Self> {
        // The ports are found free, then given to Kafka: another process of the test run may
        // take one in between. Such a start is tried again on other ports.
        let mut attempt = 1;
        loop {
            match Self::start_once(n).await {
                Err(e) if attempt < 3 && port_taken(&e) => {
                    eprintln!("private Kafka: a port was taken meanwhile; starting on others");
                    attempt += 1;
                }
                started => return started,
            }
        }
    }

    async fn start_once(n: usize) -> anyhow::Result<Self> {
        anyhow::ensure!(n >= 1, "a cluster has at least one node");
        let home = std::env::var_os("BOHAI_KAFKA_HOME")
            .map(PathBuf::from)
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "BOHAI_KAFKA_HOME is not set: run the tests with scripts/test, or \
                     `scripts/stack up` and `eval \"$(scripts/stack env)\"` first"
                )
            })?;
        let libs = home.join("libs");
        anyhow::ensure!(
            libs.is_dir(),
            "BOHAI_KAFKA_HOME={} has no libs folder: `scripts/stack up` installs Kafka there",
            home.display()
        );
        let java =
            std::env::var_os("BOHAI_JAVA").map_or_else(|| PathBuf::from("java"), PathBuf::from);
        let mut classpath = libs.into_os_string();
        classpath.push("/*");
        // Every port is taken at once so that they differ, then given to Kafka.
        let ports = {
            let listeners = (0..2 * n)
                .map(|_| TcpListener::bind("127.0.0.1:0"))
                .collect::<Result<Vec<_>, _>>()?;
            listeners
                .iter()
                .map(TcpListener::local_addr)
                .collect::<Result<Vec<_>, _>>()?
        };
        let (addrs, controllers) = ports.split_at(n);
        let cluster = Self {
            java,
            classpath,
            dir: tempfile::tempdir()?,
            nodes: addrs
                .iter()
                .map(|addr| Node {
                    addr: *addr,
                    child: None,
                })
                .collect(),
        };
        let id = cluster_id();
        for i in 0..n {
            cluster.write_config(i, controllers)?;
            cluster.format(i, &id).await?;
        }
        let mut cluster = cluster;
        for i in 0..n {
            cluster.spawn(i)?;
        }
        for i in 0..n {
            cluster.wait_ready(i).await?;
        }
        Ok(cluster)
    }

    /// Every node's `host:port`, comma-separated, for `kafka.brokers`.
    pub fn brokers(&self) -> String {
        self.nodes
            .iter()
            .map(|n| n.addr.to_string())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Kills node `i` with SIGKILL, as a crash or a lost host would.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.nodes[i].child.take() {
            crate::kill(&mut child);
        }
    }

    /// Starts node `i` again on the same ports and storage (the same cluster) and waits until
    /// it serves clients and the cluster names every node as a broker. After a kill, that
    /// includes waiting out the killed incarnation's session with the controller
    /// (`broker.session.timeout.ms` below).
    pub async fn resume(&mut self, i: usize) -> anyhow::Result<()> {
        self.spawn(i)?;
        self.wait_ready(i).await
    }

    fn spawn(&mut self, i: usize) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log(i))?;
        let child = Command::new(&self.java)
            .args(JVM_OPTIONS)
            .arg(self.log4j_option())
            .arg("-cp")
            .arg(&self.classpath)
            .arg("kafka.Kafka")
            .arg(self.properties(i))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot run {} (BOHAI_JAVA)", self.java.display()))?;
        self.nodes[i].child = Some(child);
        Ok(())
    }

    async fn wait_ready(&mut self, i: usize) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + START_LIMIT;
        loop {
            if let Some(status) = self.nodes[i]
                .child
                .as_mut()
                .and_then(|c| c.try_wait().transpose())
            {
                self.nodes[i].child = None;
                anyhow::bail!(
                    "node {} of the private Kafka exited while starting ({}):\n{}",
                    i + 1,
                    status?,
                    self.log_tail(i)
                );
            }
            if self.serves_clients(i).await {
                return Ok(());
            }
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "node {} of the private Kafka on {} did not serve clients within {} s:\n{}",
                i + 1,
                self.nodes[i].addr,
                START_LIMIT.as_secs(),
                self.log_tail(i)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// True when node `i` names every node of the cluster as a live broker in its metadata:
    /// registered with the controller and unfenced, so that topics can be created and written
    /// with all their replicas. A listening socket, or one that answers ApiVersions, is not
    /// that far yet.
    async fn serves_clients(&self, i: usize) -> bool {
        let addr = self.nodes[i].addr;
        if tokio::net::TcpStream::connect(addr).await.is_err() {
            return false;
        }
        let (addr, n) = (addr.to_string(), self.nodes.len());
        tokio::task::spawn_blocking(move || {
            let consumer: BaseConsumer = match rdkafka::ClientConfig::new()
                .set("bootstrap.servers", &addr)
                .set("log_level", "3")
                .create()
            {
                Ok(c) => c,
                Err(_) => return false,
            };
            consumer
                .fetch_metadata(None, Duration::from_secs(2))
                .is_ok_and(|m| m.brokers().len() >= n)
        })
        .await
        .unwrap_or(false)
    }

    /// Node `i`'s settings: a KRaft node on loopback, voter of the quorum of `controllers`,
    /// its data in its own folder.
    fn write_config(&self, i: usize, controllers: &[SocketAddr]) -> anyhow::Result<()> {
        let addr = self.nodes[i].addr;
        let controller = controllers[i];
        let voters = controllers
            .iter()
            .enumerate()
            .map(|(k, c)| format!("{}@{c}", k + 1))
            .collect::<Vec<_>>()
            .join(",");
        let (replicas, in_sync) = if self.nodes.len() >= 3 {
            (3, 2)
        } else {
            (1, 1)
        };
        let data = self.dir.path().join(format!("data-{}", i + 1));
        let properties = format!(
            "process.roles=broker,controller\n\
             node.id={node}\n\
             controller.quorum.voters={voters}\n\
             listeners=PLAINTEXT://{addr},CONTROLLER://{controller}\n\
             advertised.listeners=PLAINTEXT://{addr}\n\
             listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT\n\
             controller.listener.names=CONTROLLER\n\
             inter.broker.listener.name=PLAINTEXT\n\
             log.dirs={data}\n\
             default.replication.factor={replicas}\n\
             min.insync.replicas={in_sync}\n\
             offsets.topic.replication.factor={replicas}\n\
             transaction.state.log.replication.factor={replicas}\n\
             transaction.state.log.min.isr={in_sync}\n\
             share.coordinator.state.topic.replication.factor={replicas}\n\
             share.coordinator.state.topic.min.isr={in_sync}\n\
             group.initial.rebalance.delay.ms=0\n\
             auto.create.topics.enable=false\n\
             delete.topic.enable=true\n\
             # A restarted node's controller refuses the new incarnation until the killed\n\
             # one's session has expired: 3 s instead of 9 s, heartbeats to match.\n\
             broker.session.timeout.ms=3000\n\
             broker.heartbeat.interval.ms=500\n",
            node = i + 1,
            data = data.display()
        );
        std::fs::write(self.properties(i), properties)?;
        // Warnings and errors only, to the node's log file (its standard output).
        let log4j = "rootLogger.level = WARN\n\
                     rootLogger.appenderRef.out.ref = out\n\
                     appender.out.type = Console\n\
                     appender.out.name = out\n\
                     appender.out.layout.type = PatternLayout\n\
                     appender.out.layout.pattern = [%d] %p %m (%c)%n\n";
        std::fs::write(self.dir.path().join("log4j2.properties"), log4j)?;
        Ok(())
    }

    /// Formats node `i`'s storage once, for the cluster `id`; later starts reuse it.
    async fn format(&self, i: usize, id: &str) -> anyhow::Result<()> {
        let out = tokio::process::Command::new(&self.java)
            .args(["-Xmx256m", "-XX:TieredStopAtLevel=1"])
            .arg(self.log4j_option())
            .arg("-cp")
            .arg(&self.classpath)
            .arg("kafka.tools.StorageTool")
            .args(["format", "--cluster-id", id, "--config"])
            .arg(self.properties(i))
            .stdin(Stdio::null())
            .output()
            .await
            .with_context(|| format!("cannot run {} (BOHAI_JAVA)", self.java.display()))?;
        anyhow::ensure!(
            out.status.success(),
            "formatting the storage of node {} of the private Kafka failed ({}):\n{}{}",
            i + 1,
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(())
    }

    fn properties(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("server-{}.properties", i + 1))
    }

    fn log(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("broker-{}.log", i + 1))
    }

    fn log4j_option(&self) -> OsString {
        let mut option = OsString::from("-Dlog4j2.configurationFile=");
        option.push(self.dir.path().join("log4j2.properties"));
        option
    }

    /// The end of node `i`'s log, for a failure message.
    fn log_tail(&self, i: usize) -> String {
        tail(&self.log(i), 30)
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill(i);
        }
    }
}

/// Whether a node failed to start because one of its ports was taken.
fn port_taken(e: &anyhow::Error) -> bool {
    let text = format!("{e:#}");
    text.contains("Address already in use") || text.contains("Unable to start acceptor")
}

/// A cluster id as Kafka writes them: 16 random bytes in URL-safe base64 without padding, not
/// starting with `-` (it would read as an option on the storage tool's command line).
fn cluster_id() -> String {
    loop {
        let id = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(uuid::Uuid::new_v4().as_bytes());
        if !id.starts_with('-') {
            return id;
        }
    }
}

/// The last `n` lines of the file at `path`, or why it cannot be read.
fn tail(path: &Path, n: usize) -> String {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(n)..].join("\n")
        }
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    use rdkafka::consumer::StreamConsumer;
    use rdkafka::message::Message;
    use rdkafka::producer::{FutureProducer, FutureRecord};
    use std::time::Instant;

    fn client(broker: &PrivateBroker) -> rdkafka::ClientConfig {
        let mut c = rdkafka::ClientConfig::new();
        c.set("bootstrap.servers", broker.brokers());
        c
    }

    async fn produce(broker: &PrivateBroker, topic: &str, value: &str) {
        let producer: FutureProducer = client(broker).create().unwrap();
        producer
            .send(
                FutureRecord::to(topic).key("k").payload(value),
                Duration::from_secs(30),
            )
            .await
            .unwrap();
    }

    async fn read_all(broker: &PrivateBroker, topic: &str, n: usize) -> Vec<String> {
        let consumer: StreamConsumer = client(broker)
            .set("group.id", crate::unique("private-broker-"))
            .set("auto.offset.reset", "earliest")
            .create()
            .unwrap();
        consumer.subscribe(&[topic]).unwrap();
        let mut values = Vec::new();
        while values.len() < n {
            let m = tokio::time::timeout(Duration::from_secs(60), consumer.recv())
                .await
                .expect("a record within 60 s")
                .unwrap();
            values.push(String::from_utf8(m.payload().unwrap().to_vec()).unwrap());
        }
        values
    }

    /// The contract the outage tests rely on: after SIGKILL, `resume` brings the same node
    /// back on the same port, with its topics and records. (Start-up times are printed for
    /// whoever tunes the JVM settings; they are not checked.)
    #[tokio::test]
    async fn a_killed_node_resumes_on_its_port_with_its_records() {
        let t = Instant::now();
        let mut broker = PrivateBroker::start().await.unwrap();
        eprintln!("format and start: {:.1} s", t.elapsed().as_secs_f64());
        let topic = crate::unique("private-broker-");
        let admin: AdminClient<DefaultClientContext> = client(&broker).create().unwrap();
        let created = admin
            .create_topics(
                &[NewTopic::new(&topic, 2, TopicReplication::Fixed(1))],
                &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
            )
            .await
            .unwrap();
        assert!(created.iter().all(Result::is_ok), "{created:?}");
        drop(admin);
        produce(&broker, &topic, "before").await;
        let before = broker.brokers();

        broker.kill();
        let t = Instant::now();
        broker.resume().await.unwrap();
        eprintln!("restart after SIGKILL: {:.1} s", t.elapsed().as_secs_f64());
        assert_eq!(broker.brokers(), before);
        produce(&broker, &topic, "after").await;
        let mut values = read_all(&broker, &topic, 2).await;
        values.sort();
        assert_eq!(values, ["after", "before"]);
    }
}
