//! The hub's configuration: one TOML file plus a few environment overrides.
//!
//! Every key is documented on its field below and in `docs/configuration.md`. Loading reports
//! every problem it finds at once (unknown keys, wrong types, bad values), each with the file
//! or environment variable and the key it came from, so an operator fixes them in one pass.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Deserialize;

/// Environment variable naming the configuration file when `--config` is not given.
pub const CONFIG_ENV: &str = "BOHAI_CONFIG";
/// Environment override for [`KafkaConfig::brokers`].
pub const KAFKA_BROKERS_ENV: &str = "BOHAI_KAFKA_BROKERS";
/// Overrides `kafka.replication_factor` (`scripts/stack env` sets it for a three-node Kafka).
pub const KAFKA_REPLICATION_FACTOR_ENV: &str = "BOHAI_KAFKA_REPLICATION_FACTOR";
/// Overrides `kafka.min_insync_replicas`.
pub const KAFKA_MIN_INSYNC_REPLICAS_ENV: &str = "BOHAI_KAFKA_MIN_INSYNC_REPLICAS";
/// Environment override for [`DatabaseConfig::url`].
pub const DATABASE_URL_ENV: &str = "DATABASE_URL";
/// Environment override for [`DatabaseConfig::owner_url`].
pub const DATABASE_OWNER_URL_ENV: &str = "BOHAI_DATABASE_OWNER_URL";
/// Environment override for [`HttpConfig::addr`].
pub const HTTP_ADDR_ENV: &str = "BOHAI_HTTP_ADDR";

/// The whole configuration of one hub process.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// `[http]`: the HTTP API and dashboard.
    pub http: HttpConfig,
    /// `[kafka]`: the Kafka cluster the pipeline runs on.
    pub kafka: KafkaConfig,
    /// `[database]`: the PostgreSQL database holding the shared repository.
    pub database: DatabaseConfig,
    /// `[log]`: how the process logs.
    pub log: LogConfig,
    /// `[registry]`: where the departments and dataset manifests are read from.
    pub registry: RegistryConfig,
    /// `[pipeline]`: which workers `bohai serve` runs.
    pub pipeline: PipelineConfig,
    /// `[pki]`: the city PKI and electronic seals.
    pub pki: PkiConfig,
    /// `[licences]`: electronic licences, their status list and verification.
    pub licences: LicencesConfig,
    /// `[sharing]`: access requests and masked reads.
    pub sharing: SharingConfig,
    /// `[ops]`: feed health thresholds, rate sampling and the dashboard.
    pub ops: OpsConfig,
    /// `[audit]`: signed checkpoints of the audit log.
    pub audit: AuditConfig,
    /// `[cluster]`: how the `bohai serve` instances of one hub share the duties.
    pub cluster: ClusterConfig,
}

/// `[cluster]` section: several `bohai serve` instances on one hub database (see
/// `docs/operations.md`, "Several instances").
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct ClusterConfig {
    /// This instance's identity among the instances of the hub: unique per instance, stable
    /// across its restarts. Default the host name and the HTTP port, `host:port`.
    pub instance: Option<String>,
    /// How long an instance's heartbeat and each lease on a duty last unless renewed (both
    /// are renewed every third of it). A dead instance's duties run elsewhere within this time
    /// plus a third of it; a holder that cannot renew stops its duties after two thirds of
    /// it. Default `9s` (takeover within 12 s).
    #[serde(with = "humantime_serde")]
    pub lease: Duration,
    /// How long the Kafka consumer group of the repository sink waits for an instance that
    /// stopped answering before its partitions go to the others (`session.timeout.ms`; the
    /// brokers accept 6 s to 30 min unless configured otherwise). Default `10s`.
    #[serde(with = "humantime_serde")]
    pub sink_session: Duration,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            instance: None,
            lease: Duration::from_secs(9),
            sink_session: Duration::from_secs(10),
        }
    }
}

/// `[audit]` section: the signed checkpoints that anchor the audit log's hash chain.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct AuditConfig {
    /// How often `bohai serve` signs a checkpoint of the audit log (when it grew), stores it
    /// and publishes it to the `<prefix>audit-checkpoints` topic. Default `1h`.
    #[serde(with = "humantime_serde")]
    pub checkpoint_interval: Duration,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            checkpoint_interval: Duration::from_secs(3600),
        }
    }
}

/// `[sharing]` section: access requests, approvals and masked reads.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct SharingConfig {
    /// The secret salt of `hash` masking: a file of at least 16 bytes. Default
    /// `~/.local/state/bohai/sharing-salt.key`; created (32 random bytes, mode 0600) when
    /// missing. Changing it changes every hashed value readers see.
    pub hash_salt_file: PathBuf,
    /// How many days an owning department has to answer a request before it is flagged
    /// overdue. Default 10.
    pub reply_days: u32,
    /// How often `bohai serve` looks for records to put on the subscription topics when it
    /// found none last time. Default `1s`.
    #[serde(with = "humantime_serde")]
    pub delivery_interval: Duration,
}

impl Default for SharingConfig {
    fn default() -> Self {
        let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
        Self {
            hash_salt_file: home.join(".local/state/bohai/sharing-salt.key"),
            reply_days: 10,
            delivery_interval: Duration::from_secs(1),
        }
    }
}

/// `[ops]` section: how feed health is judged (`GET /api/v1/ops/feeds`, `bohai status`, the
/// dashboard) and how ingest rates are sampled.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct OpsConfig {
    /// A feed is `stale` when its newest record is older than its dataset's expected update
    /// interval times this factor. Default 1.0 (exactly the interval).
    pub stale_factor: f64,
    /// A feed is `failing` when more than this share of its recent records (within
    /// `rate_window`) was rejected. Default 0.2.
    pub reject_ratio_failing: f64,
    /// The reject ratio is judged only over at least this many records: the recent window's
    /// when it has that many, else the feed's whole history. Default 20.
    pub min_records: u64,
    /// The window over which rates and the recent reject ratio are computed. Default `15m`.
    #[serde(with = "humantime_serde")]
    pub rate_window: Duration,
    /// How often `bohai serve` samples the feed counts (the points of the rate charts).
    /// Default `15s`.
    #[serde(with = "humantime_serde")]
    pub sample_interval: Duration,
    /// How long samples are kept. Default `24h`.
    #[serde(with = "humantime_serde")]
    pub sample_retention: Duration,
    /// Feeds switched off on purpose: shown as `paused`, never as stale or failing. Each
    /// entry is a connector name, or `DATASET/SOURCE` (e.g. `business-registrations/http-push`).
    /// Default none.
    pub paused: Vec<String>,
    /// How often the dashboard reloads its data. Default `10s`.
    #[serde(with = "humantime_serde")]
    pub dashboard_refresh: Duration,
    /// How long the operations overview behind `/metrics` and `/api/v1/ops/overview` is
    /// reused (it asks the broker for every partition and the database for every feed): a
    /// scraper, the dashboards and other clients at once cost one overview in this time.
    /// Default 2 s; 0 makes one for every request.
    #[serde(with = "humantime_serde")]
    pub answer_cache: Duration,
}

impl Default for OpsConfig {
    fn default() -> Self {
        Self {
            stale_factor: 1.0,
            reject_ratio_failing: 0.2,
            min_records: 20,
            rate_window: Duration::from_secs(15 * 60),
            sample_interval: Duration::from_secs(15),
            sample_retention: Duration::from_secs(24 * 3600),
            paused: Vec::new(),
            dashboard_refresh: Duration::from_secs(10),
            answer_cache: Duration::from_secs(2),
        }
    }
}

/// `[licences]` section: electronic licences (`bohai licence ...`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct LicencesConfig {
    /// Public URL of the status list, written into every licence as its status list URI.
    /// Default: `http://{http.addr}/api/v1/licences/status-list`.
    pub status_list_url: Option<String>,
    /// The status list's maximum age: verifiers treat an older list as stale. The hub makes
    /// a new list whenever a status changed and at the latest when half of this has passed.
    /// Default `5m`.
    #[serde(with = "humantime_serde")]
    pub status_max_age: Duration,
    /// The department whose seal signs the status list and the trust bundle (the city's data
    /// administration). Default `data-administration`.
    pub status_authority: String,
    /// Clock-skew tolerance when judging validity periods. Default `5m`.
    #[serde(with = "humantime_serde")]
    pub clock_skew: Duration,
    /// How long an offline trust bundle may be used after it was made: verifiers refuse it
    /// after that, by their own clock. Default `24h`; at most 7 days, the most any verifier
    /// accepts (`bohai_certs::licence::MAX_OFFLINE_TRUST`).
    #[serde(with = "humantime_serde")]
    pub bundle_validity: Duration,
    /// Whether issuing consults the credit lists each licence type names (joint discipline,
    /// `[discipline]` of its manifest). Default `true`; `false` only to measure what the
    /// check costs (`scripts/bench-credit`): a hub that issues without it ignores the lists.
    pub credit_discipline: bool,
}

impl Default for LicencesConfig {
    fn default() -> Self {
        Self {
            status_list_url: None,
            status_max_age: Duration::from_secs(300),
            status_authority: "data-administration".to_owned(),
            clock_skew: Duration::from_secs(300),
            bundle_validity: Duration::from_secs(24 * 3600),
            credit_discipline: true,
        }
    }
}

impl Config {
    /// The status list URI written into licences.
    pub fn status_list_url(&self) -> String {
        self.licences
            .status_list_url
            .clone()
            .unwrap_or_else(|| format!("http://{}/api/v1/licences/status-list", self.http.addr))
    }
}

/// `[pki]` section: the city PKI and electronic seals (`bohai seal ...`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct PkiConfig {
    /// The 32-byte master key that encrypts every private key at rest: a file of 64 hex
    /// digits or 32 raw bytes. Default `~/.local/state/bohai/master.key`; `bohai seal init-ca`
    /// creates it (mode 0600) when missing.
    pub master_key_file: PathBuf,
    /// Extra trust anchors (PEM files of `CERTIFICATE` blocks) besides the city root, e.g. a
    /// department's own CA whose seals are imported. Default none.
    pub trust_anchors: Vec<PathBuf>,
    /// CRL files (DER or PEM `X509 CRL`) of the operator-added CAs of `trust_anchors`, so that
    /// seals imported under them verify VALID (or revoked) instead of INDETERMINATE. Each must
    /// be signed by one of `trust_anchors`; they are read again at every verification, so an
    /// operator replaces a file to publish a newer CRL. Default none.
    pub crls: Vec<PathBuf>,
    /// How long a CRL is valid. It is reissued on every revocation and, by `bohai serve`,
    /// once half of this has passed. Default `7d`.
    #[serde(with = "humantime_serde")]
    pub crl_validity: Duration,
    /// How long a CRL of the city root is valid. `bohai serve` reissues it once half of this
    /// has passed while the root key is in the hub; with the key kept off the hub, `bohai
    /// seal root-crl --root-key FILE` makes it there. Every seal verifies INDETERMINATE once
    /// the root's CRL is past its next update. Default `365d`, at least `1d`.
    #[serde(with = "humantime_serde")]
    pub root_crl_validity: Duration,
    /// URL of the CRL written as the CRL distribution point of new seal certificates.
    /// Default none.
    pub crl_url: Option<String>,
    /// The city's Chinese name, used in the CA names. Default `盘锦市`.
    pub city_zh: String,
    /// The city government's Chinese name, the CAs' O. Default `盘锦市人民政府`.
    pub government_zh: String,
}

impl Default for PkiConfig {
    fn default() -> Self {
        Self {
            master_key_file: default_master_key_file(),
            trust_anchors: Vec::new(),
            crls: Vec::new(),
            crl_validity: Duration::from_secs(7 * 24 * 3600),
            root_crl_validity: Duration::from_secs(365 * 24 * 3600),
            crl_url: None,
            city_zh: "盘锦市".to_owned(),
            government_zh: "盘锦市人民政府".to_owned(),
        }
    }
}

fn default_master_key_file() -> PathBuf {
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
    home.join(".local/state/bohai/master.key")
}

/// `[pipeline]` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct PipelineConfig {
    /// Connector files (TOML, see `docs/connectors.md`) that `bohai serve` runs. Default none.
    pub connectors: Vec<PathBuf>,
    /// Whether `bohai serve` runs the repository sink. Default true.
    pub sink: bool,
    /// How often a periodic duty stopped by a failure that needs someone (a permission
    /// denied, an unreadable master key) tries again: at least its own period. Default 5 min.
    #[serde(with = "humantime_serde")]
    pub stopped_duty_retry: Duration,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            connectors: Vec::new(),
            sink: true,
            stopped_duty_retry: Duration::from_secs(300),
        }
    }
}

/// `[registry]` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct RegistryConfig {
    /// Folder holding `departments.toml` and `datasets/`. Default: the `schemas/` folder of the
    /// source tree the binary was built from.
    pub dir: PathBuf,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        Self {
            dir: bohai_schemas::registry::builtin_dir(),
        }
    }
}

/// `[http]` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct HttpConfig {
    /// Address the HTTP API listens on. Default `127.0.0.1:8080`; env `BOHAI_HTTP_ADDR`.
    pub addr: SocketAddr,
    /// Largest body of one HTTP push, in bytes; a larger one is answered 413 naming this
    /// limit. The body is read as a stream, so the hub's memory does not grow with it.
    /// Default 256 MiB.
    pub max_push_bytes: u64,
    /// How long a request may take before it is answered 503 `timeout`. For HTTP push, how
    /// long the hub waits for the next piece of the body (answered 408). Default `60s`.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// How long a client may take to send a request's line and headers, counted from when
    /// the hub starts reading them; past it the connection is closed. A client that sends
    /// its headers a byte at a time holds a connection no longer than this, and so does a
    /// kept-alive connection that sends no next request. Default `20s`.
    #[serde(with = "humantime_serde")]
    pub header_timeout: Duration,
    /// Requests one token may make per minute, on average; past it (and its burst) the hub
    /// answers 429 `rate_limited` with `Retry-After`. Default 3000 (50 a second).
    pub token_requests_per_minute: u32,
    /// Requests one token may make at once, above its average rate, before it is limited.
    /// Default 300.
    pub token_burst: u32,
    /// Most HTTP pushes of one department read at once by this instance; one more is
    /// answered 429 `too_many_pushes` with `Retry-After`. Each push holds up to 16 MiB of
    /// records while it reads, so this bounds what one department's slow or stalled pushes
    /// can hold. Default 4; 1 to 256.
    pub department_pushes: u32,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            addr: default_http_addr(),
            max_push_bytes: 256 * 1024 * 1024,
            request_timeout: Duration::from_secs(60),
            header_timeout: Duration::from_secs(20),
            token_requests_per_minute: 3000,
            token_burst: 300,
            department_pushes: 4,
        }
    }
}

fn default_http_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}

/// `[kafka]` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct KafkaConfig {
    /// Bootstrap brokers, comma separated `host:port`. Default `127.0.0.1:19092` (the local
    /// stack); env `BOHAI_KAFKA_BROKERS`.
    pub brokers: String,
    /// Prefix of every topic the hub creates, so that one cluster can host several hubs.
    /// Default `bohai.`.
    pub topic_prefix: String,
    /// Partitions of each topic the hub creates. Default 3.
    pub partitions: i32,
    /// Replication factor of each topic the hub creates. Default 1 (the local stack has one
    /// broker); use 3 on a production cluster.
    pub replication_factor: i32,
    /// `min.insync.replicas` of each topic the hub creates: how many replicas must have a
    /// record before the broker acknowledges it (the producers ask for all). Default 1; use 2
    /// on a production cluster with replication factor 3.
    pub min_insync_replicas: i32,
    /// How long the topics the hub creates keep records (`retention.ms`). The dataset topics
    /// carry every record between a feed and the repository: a sink stopped for longer than
    /// this loses what it had not read. Default 30 days.
    #[serde(with = "humantime_serde")]
    pub retention: Duration,
    /// `compression.type` of the topics the hub creates: `producer` (keep what producers
    /// send), `zstd`, `lz4`, `snappy`, `gzip` or `uncompressed`. Default `producer`.
    pub compression: String,
    /// How long a broker request may take before the hub calls the broker unreachable.
    /// Default `5s`.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Most records, in MiB, each department's ingest producer holds that the brokers have
    /// not taken yet (librdkafka's `queue.buffering.max.kbytes`). A department whose records
    /// are not taken waits when its queue is full (HTTP push answers 503); the other
    /// departments, each with a producer of its own, go on. While the brokers are away, the
    /// hub may hold this much for every department that sends. Default 64, from 4 (above the
    /// largest record batch, 3 MiB) to 16384.
    pub producer_queue_mib: u32,
    /// Extra librdkafka client properties passed as they are, for example
    /// `"security.protocol" = "SASL_SSL"`, `"sasl.mechanisms" = "SCRAM-SHA-512"`.
    pub options: BTreeMap<String, String>,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        Self {
            brokers: default_brokers(),
            topic_prefix: "bohai.".to_owned(),
            partitions: 3,
            replication_factor: 1,
            min_insync_replicas: 1,
            retention: Duration::from_secs(30 * 24 * 3600),
            compression: "producer".to_owned(),
            request_timeout: Duration::from_secs(5),
            producer_queue_mib: 64,
            options: BTreeMap::new(),
        }
    }
}

fn default_brokers() -> String {
    "127.0.0.1:19092".to_owned()
}

/// `[database]` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct DatabaseConfig {
    /// PostgreSQL URL of the role the hub runs as (serving, commands). Default
    /// `postgres://bohai:bohai@127.0.0.1:5432/bohai?sslmode=disable` (the local stack, on
    /// loopback); env `DATABASE_URL`.
    pub url: String,
    /// PostgreSQL URL of the role that owns the schema: migrations run as it, and it grants
    /// the role of `url` what the hub needs, which excludes changing or deleting audit
    /// entries. Default none: migrations run as the role of `url`, which then owns the audit
    /// log and could rewrite it (the hub warns); env `BOHAI_DATABASE_OWNER_URL`.
    pub owner_url: Option<String>,
    /// Largest number of pooled connections for authenticated requests, the token checks
    /// and the hub's own work. Default 10.
    pub max_connections: u32,
    /// Largest number of connections of the separate pool that serves the requests made
    /// without a token (readiness, dataset statistics, seals, CRLs, licence status and
    /// verification, the trust bundle, `/metrics`): however many such requests arrive, they
    /// hold at most these, and never one of `max_connections`. Default 3.
    pub public_max_connections: u32,
    /// How long to wait for a connection before calling the database unreachable.
    /// Default `5s`.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: default_database_url(),
            owner_url: None,
            max_connections: 10,
            public_max_connections: 3,
            connect_timeout: Duration::from_secs(5),
        }
    }
}

fn default_database_url() -> String {
    "postgres://bohai:bohai@127.0.0.1:5432/bohai?sslmode=disable".to_owned()
}

/// `[log]` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct LogConfig {
    /// `human` (default) or `json` (one JSON object a line, for log shippers). The
    /// `--log-format` flag overrides it.
    pub format: LogFormat,
    /// A tracing filter such as `info` or `bohai_hub=debug,info`. Default `info`; the
    /// `RUST_LOG` environment variable overrides it.
    pub filter: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Human,
            filter: "info".to_owned(),
        }
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Readable lines for a terminal.
    Human,
    /// One JSON object a line.
    Json,
}

/// One problem found while loading the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// Where the value came from: a file path or `environment variable NAME`.
    pub origin: String,
    /// The dotted key, e.g. `kafka.partitions`; empty for a whole-file problem.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}: {}", self.origin, self.message)
        } else {
            write!(f, "{}: key `{}`: {}", self.origin, self.key, self.message)
        }
    }
}

/// Every problem found in the configuration, reported together.
#[derive(Debug, thiserror::Error)]
pub struct ConfigError {
    /// The problems, in the order they were found.
    pub problems: Vec<ConfigProblem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "the configuration has {} problem(s):",
            self.problems.len()
        )?;
        for p in &self.problems {
            writeln!(f, "  - {p}")?;
        }
        Ok(())
    }
}

impl Config {
    /// Loads the configuration: defaults, then the file (if any), then the environment.
    ///
    /// `env` looks up an environment variable; pass `|k| std::env::var(k).ok()` in the
    /// binary and a map in tests.
    pub fn load(
        file: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let mut problems = Vec::new();
        let mut config = Config::default();
        if let Some(path) = file {
            config = Self::from_file(path, &mut problems);
        }
        config.apply_env(&env, &mut problems);
        config.check(file, &mut problems);
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError { problems })
        }
    }

    /// The file named by `--config`, else by `BOHAI_CONFIG`, else none.
    pub fn file_from(
        flag: Option<PathBuf>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Option<PathBuf> {
        flag.or_else(|| env(CONFIG_ENV).filter(|v| !v.is_empty()).map(PathBuf::from))
    }

    fn from_file(path: &Path, problems: &mut Vec<ConfigProblem>) -> Config {
        let origin = path.display().to_string();
        let mut config = Config::default();
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) => {
                problems.push(ConfigProblem {
                    origin,
                    key: String::new(),
                    message: format!("cannot read the file: {e}"),
                });
                return config;
            }
        };
        let table: toml::Table = match text.parse() {
            Ok(t) => t,
            Err(e) => {
                problems.push(ConfigProblem {
                    origin,
                    key: String::new(),
                    message: format!("not valid TOML: {e}"),
                });
                return config;
            }
        };
        for (section, value) in table {
            match section.as_str() {
                "http" => section_into(&origin, &section, value, &mut config.http, problems),
                "kafka" => section_into(&origin, &section, value, &mut config.kafka, problems),
                "database" => {
                    section_into(&origin, &section, value, &mut config.database, problems)
                }
                "log" => section_into(&origin, &section, value, &mut config.log, problems),
                "pipeline" => {
                    section_into(&origin, &section, value, &mut config.pipeline, problems)
                }
                "registry" => {
                    section_into(&origin, &section, value, &mut config.registry, problems)
                }
                "pki" => section_into(&origin, &section, value, &mut config.pki, problems),
                "licences" => {
                    section_into(&origin, &section, value, &mut config.licences, problems)
                }
                "sharing" => {
                    section_into(&origin, &section, value, &mut config.sharing, problems)
                }
                "ops" => section_into(&origin, &section, value, &mut config.ops, problems),
                "audit" => section_into(&origin, &section, value, &mut config.audit, problems),
                "cluster" => {
                    section_into(&origin, &section, value, &mut config.cluster, problems)
                }
                _ => problems.push(ConfigProblem {
                    origin: origin.clone(),
                    key: section.clone(),
                    message:
                        "unknown section; known: http, kafka, database, log, registry, pipeline, pki, licences, sharing, ops, audit, cluster"
                            .to_owned(),
                }),
            }
        }
        config
    }

    fn apply_env(
        &mut self,
        env: &impl Fn(&str) -> Option<String>,
        problems: &mut Vec<ConfigProblem>,
    ) {
        if let Some(v) = env(KAFKA_BROKERS_ENV).filter(|v| !v.is_empty()) {
            self.kafka.brokers = v;
        }
        for (name, key, field) in [
            (
                KAFKA_REPLICATION_FACTOR_ENV,
                "kafka.replication_factor",
                &mut self.kafka.replication_factor,
            ),
            (
                KAFKA_MIN_INSYNC_REPLICAS_ENV,
                "kafka.min_insync_replicas",
                &mut self.kafka.min_insync_replicas,
            ),
        ] {
            if let Some(v) = env(name).filter(|v| !v.is_empty()) {
                match v.parse() {
                    Ok(n) => *field = n,
                    Err(e) => problems.push(ConfigProblem {
                        origin: format!("environment variable {name}"),
                        key: key.to_owned(),
                        message: format!("`{v}` is not a whole number: {e}"),
                    }),
                }
            }
        }
        if let Some(v) = env(DATABASE_URL_ENV).filter(|v| !v.is_empty()) {
            self.database.url = v;
        }
        if let Some(v) = env(DATABASE_OWNER_URL_ENV).filter(|v| !v.is_empty()) {
            self.database.owner_url = Some(v);
        }
        if let Some(v) = env(HTTP_ADDR_ENV).filter(|v| !v.is_empty()) {
            match v.parse() {
                Ok(addr) => self.http.addr = addr,
                Err(e) => problems.push(ConfigProblem {
                    origin: format!("environment variable {HTTP_ADDR_ENV}"),
                    key: "http.addr".to_owned(),
                    message: format!("`{v}` is not a socket address like 127.0.0.1:8080: {e}"),
                }),
            }
        }
    }

    /// Value checks that types alone cannot express.
    fn check(&self, file: Option<&Path>, problems: &mut Vec<ConfigProblem>) {
        let origin = file
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "defaults and environment".to_owned());
        let mut bad = |key: &str, message: String| {
            problems.push(ConfigProblem {
                origin: origin.clone(),
                key: key.to_owned(),
                message,
            })
        };
        if self.kafka.brokers.split(',').any(|b| b.trim().is_empty()) {
            bad(
                "kafka.brokers",
                format!(
                    "`{}` must be a comma-separated list of host:port",
                    self.kafka.brokers
                ),
            );
        }
        if self.kafka.partitions < 1 {
            bad(
                "kafka.partitions",
                format!("must be at least 1, found {}", self.kafka.partitions),
            );
        }
        if self.kafka.replication_factor < 1 {
            bad(
                "kafka.replication_factor",
                format!(
                    "must be at least 1, found {}",
                    self.kafka.replication_factor
                ),
            );
        }
        if !(1..=self.kafka.replication_factor.max(1)).contains(&self.kafka.min_insync_replicas) {
            bad(
                "kafka.min_insync_replicas",
                format!(
                    "must be between 1 and the replication factor ({}), found {}",
                    self.kafka.replication_factor, self.kafka.min_insync_replicas
                ),
            );
        }
        const COMPRESSIONS: [&str; 6] =
            ["producer", "zstd", "lz4", "snappy", "gzip", "uncompressed"];
        if !COMPRESSIONS.contains(&self.kafka.compression.as_str()) {
            bad(
                "kafka.compression",
                format!(
                    "must be one of {}, found `{}`",
                    COMPRESSIONS.join(", "),
                    self.kafka.compression
                ),
            );
        }
        if self.kafka.retention < Duration::from_secs(3600) {
            bad(
                "kafka.retention",
                "must be at least 1 hour: the sink reads the dataset topics after their feeds"
                    .to_owned(),
            );
        }
        if !self
            .kafka
            .topic_prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        {
            bad(
                "kafka.topic_prefix",
                format!(
                    "`{}` may hold only ASCII letters, digits, '.', '_' and '-'",
                    self.kafka.topic_prefix
                ),
            );
        }
        let is_pg = |u: &str| u.starts_with("postgres://") || u.starts_with("postgresql://");
        if !is_pg(&self.database.url) {
            bad(
                "database.url",
                "must be a PostgreSQL URL starting with postgres:// or postgresql://".to_owned(),
            );
        }
        if self
            .database
            .owner_url
            .as_deref()
            .is_some_and(|u| !is_pg(u))
        {
            bad(
                "database.owner_url",
                "must be a PostgreSQL URL starting with postgres:// or postgresql://".to_owned(),
            );
        }
        if self.audit.checkpoint_interval < Duration::from_secs(10) {
            bad(
                "audit.checkpoint_interval",
                "must be at least 10s".to_owned(),
            );
        }
        if self.http.max_push_bytes < 1024 * 1024 {
            bad(
                "http.max_push_bytes",
                format!(
                    "must be at least 1 MiB (1048576, one record at its limit), found {}",
                    self.http.max_push_bytes
                ),
            );
        }
        if self.http.request_timeout < Duration::from_secs(1) {
            bad("http.request_timeout", "must be at least 1s".to_owned());
        }
        if self.pki.root_crl_validity < Duration::from_secs(24 * 3600) {
            bad("pki.root_crl_validity", "must be at least 1d".to_owned());
        }
        if !(4..=16384).contains(&self.kafka.producer_queue_mib) {
            bad(
                "kafka.producer_queue_mib",
                format!(
                    "must be from 4 to 16384 (MiB), found {}",
                    self.kafka.producer_queue_mib
                ),
            );
        }
        if self.database.max_connections == 0 {
            bad("database.max_connections", "must be at least 1".to_owned());
        }
        if self.database.public_max_connections == 0 {
            bad(
                "database.public_max_connections",
                "must be at least 1".to_owned(),
            );
        }
        if self.http.header_timeout < Duration::from_millis(100) {
            bad("http.header_timeout", "must be at least 100ms".to_owned());
        }
        if self.http.token_requests_per_minute == 0 {
            bad(
                "http.token_requests_per_minute",
                "must be at least 1".to_owned(),
            );
        }
        if self.http.token_burst == 0 {
            bad("http.token_burst", "must be at least 1".to_owned());
        }
        if self.licences.status_max_age < Duration::from_secs(10) {
            bad(
                "licences.status_max_age",
                "must be at least 10s (the hub remakes the list at half of it)".to_owned(),
            );
        }
        let most = bohai_certs::licence::MAX_OFFLINE_TRUST;
        for (key, value) in [
            ("licences.status_max_age", self.licences.status_max_age),
            ("licences.bundle_validity", self.licences.bundle_validity),
        ] {
            if value > most {
                bad(
                    key,
                    "must be at most 7 days: verifiers accept no longer offline trust".to_owned(),
                );
            }
        }
        if self.licences.bundle_validity < Duration::from_secs(60) {
            bad("licences.bundle_validity", "must be at least 1m".to_owned());
        }
        if let Some(url) = &self.licences.status_list_url {
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                bad(
                    "licences.status_list_url",
                    format!("`{url}` must be an http:// or https:// URL"),
                );
            }
        }
        if self.sharing.reply_days == 0 {
            bad("sharing.reply_days", "must be at least 1".to_owned());
        }
        if !(self.ops.stale_factor.is_finite() && self.ops.stale_factor > 0.0) {
            bad(
                "ops.stale_factor",
                format!("must be a positive number, found {}", self.ops.stale_factor),
            );
        }
        if !(self.ops.reject_ratio_failing > 0.0 && self.ops.reject_ratio_failing <= 1.0) {
            bad(
                "ops.reject_ratio_failing",
                format!(
                    "must be above 0 and at most 1, found {}",
                    self.ops.reject_ratio_failing
                ),
            );
        }
        if !(1..=256).contains(&self.http.department_pushes) {
            bad(
                "http.department_pushes",
                format!("must be 1 to 256, found {}", self.http.department_pushes),
            );
        }
        if self.cluster.lease < Duration::from_secs(1)
            || self.cluster.lease > Duration::from_secs(600)
        {
            bad(
                "cluster.lease",
                format!(
                    "{} is out of range: between 1s and 10min",
                    humantime::format_duration(self.cluster.lease)
                ),
            );
        }
        if self.cluster.sink_session < Duration::from_secs(1)
            || self.cluster.sink_session > Duration::from_secs(1800)
        {
            bad(
                "cluster.sink_session",
                format!(
                    "{} is out of range: between 1s and 30min",
                    humantime::format_duration(self.cluster.sink_session)
                ),
            );
        }
        if let Some(id) = &self.cluster.instance {
            if id.is_empty()
                || id.len() > 200
                || id.chars().any(|c| c.is_whitespace() || c.is_control())
            {
                bad(
                    "cluster.instance",
                    format!(
                        "`{id}` must be 1 to 200 characters without spaces or control characters"
                    ),
                );
            }
        }
        if self.ops.sample_interval < Duration::from_secs(1) {
            bad("ops.sample_interval", "must be at least 1s".to_owned());
        }
        if self.ops.rate_window < self.ops.sample_interval {
            bad(
                "ops.rate_window",
                "must be at least ops.sample_interval".to_owned(),
            );
        }
        if self.ops.dashboard_refresh < Duration::from_secs(1) {
            bad("ops.dashboard_refresh", "must be at least 1s".to_owned());
        }
        for (key, message) in self.pki.check_files() {
            bad(key, message);
        }
    }
}

impl PkiConfig {
    /// Reads every `trust_anchors` and `crls` file and checks that each CRL issued by a trust
    /// anchor is signed by it (a CRL of a CA below the anchors is checked where it is used);
    /// returns the problems as (key, message).
    fn check_files(&self) -> Vec<(&'static str, String)> {
        let mut problems = Vec::new();
        let mut anchors = bohai_certs::TrustAnchors::new();
        for path in &self.trust_anchors {
            let added = std::fs::read_to_string(path)
                .map_err(|e| e.to_string())
                .and_then(|text| anchors.add_pem(&text).map_err(|e| e.to_string()));
            if let Err(e) = added {
                problems.push(("pki.trust_anchors", format!("{}: {e}", path.display())));
            }
        }
        for path in &self.crls {
            let checked = std::fs::read(path)
                .map_err(|e| e.to_string())
                .and_then(|bytes| bohai_certs::read_crl(&bytes).map_err(|e| e.to_string()))
                .and_then(|der| {
                    match bohai_certs::check_crl_signed_by_anchor(&der, &anchors) {
                        // An issuing CA's CRL (RFC 5280 §6.3): its signature is checked with
                        // that CA's validated certificate on each path it is used on.
                        Ok(_) | Err(bohai_certs::CrlError::UnknownIssuer { .. }) => Ok(()),
                        Err(e) => Err(e.to_string()),
                    }
                });
            if let Err(e) = checked {
                problems.push(("pki.crls", format!("{}: {e}", path.display())));
            }
        }
        problems
    }
}

/// Deserializes one section into `slot`, recording unknown keys and type errors with their
/// dotted key instead of stopping at the first.
fn section_into<T: DeserializeOwned>(
    origin: &str,
    section: &str,
    value: toml::Value,
    slot: &mut T,
    problems: &mut Vec<ConfigProblem>,
) {
    let mut unknown = Vec::new();
    let result = {
        let mut record_unknown = |path: serde_ignored::Path<'_>| unknown.push(path.to_string());
        let de = serde_ignored::Deserializer::new(value, &mut record_unknown);
        serde_path_to_error::deserialize::<_, T>(de)
    };
    match result {
        Ok(v) => *slot = v,
        Err(e) => {
            let inner = e.path().to_string();
            problems.push(ConfigProblem {
                origin: origin.to_owned(),
                key: if inner == "." {
                    section.to_owned()
                } else {
                    format!("{section}.{inner}")
                },
                // The toml deserializer appends "in `key`" lines; the key is already named.
                message: e
                    .into_inner()
                    .to_string()
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .to_owned(),
            });
        }
    }
    for key in unknown {
        problems.push(ConfigProblem {
            origin: origin.to_owned(),
            key: format!("{section}.{key}"),
            message: "unknown key".to_owned(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn file_with(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f
    }

    #[test]
    fn cluster_settings_are_checked_all_at_once() {
        let c = Config::load(None, no_env).unwrap();
        assert_eq!(c.cluster.lease, Duration::from_secs(9));
        assert_eq!(c.cluster.instance, None);
        assert_eq!(c.cluster.sink_session, Duration::from_secs(10));
        let f = file_with(
            "[cluster]\ninstance = \"hub a\"\nlease = \"500ms\"\nsink_session = \"1h\"\n",
        );
        let e = Config::load(Some(f.path()), no_env).unwrap_err();
        let keys: Vec<&str> = e.problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            ["cluster.lease", "cluster.sink_session", "cluster.instance"],
            "{e}"
        );
        let f = file_with("[cluster]\ninstance = \"hub-a\"\nlease = \"3s\"\n");
        let c = Config::load(Some(f.path()), no_env).unwrap();
        assert_eq!(c.cluster.instance.as_deref(), Some("hub-a"));
        assert_eq!(c.cluster.lease, Duration::from_secs(3));
    }

    #[test]
    fn defaults_point_at_the_local_stack() {
        let c = Config::load(None, no_env).unwrap();
        assert_eq!(c.http.addr.to_string(), "127.0.0.1:8080");
        assert_eq!(c.kafka.brokers, "127.0.0.1:19092");
        assert!(c.database.url.ends_with("/bohai?sslmode=disable"));
        assert_eq!(c.log.format, LogFormat::Human);
    }

    #[test]
    fn file_values_and_environment_overrides() {
        let f = file_with(
            "[http]\naddr = \"0.0.0.0:9000\"\n[kafka]\nbrokers = \"k1:9092,k2:9092\"\npartitions = 6\nrequest_timeout = \"2s\"\n[kafka.options]\n\"security.protocol\" = \"SSL\"\n[log]\nformat = \"json\"\n",
        );
        let c = Config::load(Some(f.path()), no_env).unwrap();
        assert_eq!(c.http.addr.to_string(), "0.0.0.0:9000");
        assert_eq!(c.kafka.brokers, "k1:9092,k2:9092");
        assert_eq!(c.kafka.partitions, 6);
        assert_eq!(c.kafka.request_timeout, Duration::from_secs(2));
        assert_eq!(c.kafka.options["security.protocol"], "SSL");
        assert_eq!(c.log.format, LogFormat::Json);

        let env = |k: &str| match k {
            "BOHAI_KAFKA_BROKERS" => Some("elsewhere:9092".to_owned()),
            "DATABASE_URL" => Some("postgres://u@db/x".to_owned()),
            "BOHAI_HTTP_ADDR" => Some("127.0.0.1:1234".to_owned()),
            _ => None,
        };
        let c = Config::load(Some(f.path()), env).unwrap();
        assert_eq!(c.kafka.brokers, "elsewhere:9092");
        assert_eq!(c.database.url, "postgres://u@db/x");
        assert_eq!(c.http.addr.port(), 1234);
    }

    #[test]
    fn a_three_node_stack_sets_the_topics_copies_through_the_environment() {
        let env = |k: &str| match k {
            KAFKA_REPLICATION_FACTOR_ENV => Some("3".to_owned()),
            KAFKA_MIN_INSYNC_REPLICAS_ENV => Some("2".to_owned()),
            _ => None,
        };
        let c = Config::load(None, env).unwrap();
        assert_eq!(
            (c.kafka.replication_factor, c.kafka.min_insync_replicas),
            (3, 2)
        );
        let bad = |k: &str| (k == KAFKA_REPLICATION_FACTOR_ENV).then(|| "three".to_owned());
        let err = Config::load(None, bad).unwrap_err();
        assert!(err
            .problems
            .iter()
            .any(|p| p.key == "kafka.replication_factor"
                && p.origin.contains(KAFKA_REPLICATION_FACTOR_ENV)));
    }

    #[test]
    fn the_owner_url_is_optional_and_checked() {
        let c = Config::load(None, no_env).unwrap();
        assert_eq!(c.database.owner_url, None);
        let env =
            |k: &str| (k == DATABASE_OWNER_URL_ENV).then(|| "postgres://owner@db/x".to_owned());
        let c = Config::load(None, env).unwrap();
        assert_eq!(
            c.database.owner_url.as_deref(),
            Some("postgres://owner@db/x")
        );
        let f = file_with(
            "[database]\nowner_url = \"mysql://x\"\n[audit]\ncheckpoint_interval = \"1s\"\n",
        );
        let err = Config::load(Some(f.path()), no_env).unwrap_err();
        let keys: Vec<&str> = err.problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(keys, ["database.owner_url", "audit.checkpoint_interval"]);
    }

    #[test]
    fn every_problem_is_reported_at_once_with_file_and_key() {
        let f = file_with(
            "[http]\naddr = \"nonsense\"\n[kafka]\npartitions = 0\nbrokrs = \"x\"\n[database]\nurl = \"mysql://x\"\nmax_conections = 3\n[metrics]\nx = 1\n",
        );
        let err = Config::load(Some(f.path()), |k| {
            (k == HTTP_ADDR_ENV).then(|| "also-nonsense".to_owned())
        })
        .unwrap_err();
        let keys: Vec<&str> = err.problems.iter().map(|p| p.key.as_str()).collect();
        for expected in [
            "http.addr",
            "kafka.brokrs",
            "kafka.partitions",
            "database.url",
            "database.max_conections",
            "metrics",
        ] {
            assert!(keys.contains(&expected), "{expected} missing from {keys:?}");
        }
        let path = f.path().display().to_string();
        assert!(err.problems.iter().any(|p| p.origin == path));
        assert!(err
            .problems
            .iter()
            .any(|p| p.origin.contains("BOHAI_HTTP_ADDR")));
        let text = err.to_string();
        assert!(text.contains("kafka.brokrs"), "{text}");
    }

    #[test]
    fn the_documented_example_is_a_valid_configuration() {
        let doc = include_str!("../../docs/configuration.md");
        let example = doc
            .split("```toml\n")
            .nth(1)
            .and_then(|rest| rest.split("```").next())
            .expect("docs/configuration.md has a toml block");
        let f = file_with(example);
        let c = Config::load(Some(f.path()), no_env).unwrap();
        let d = Config::default();
        assert_eq!(c.http.addr, d.http.addr);
        assert_eq!(c.kafka.brokers, d.kafka.brokers);
        assert_eq!(c.database.url, d.database.url);
        assert_eq!(c.ops.rate_window, d.ops.rate_window);
        assert!((c.ops.reject_ratio_failing - d.ops.reject_ratio_failing).abs() < f64::EPSILON);
    }

    #[test]
    fn the_documented_ops_section_parses_and_bad_thresholds_are_reported() {
        let doc = include_str!("../../docs/configuration.md");
        let ops = doc
            .split("\n[ops]\n")
            .nth(1)
            .and_then(|rest| rest.split("```").next())
            .expect("docs/configuration.md documents [ops]");
        let f = file_with(&format!("[ops]\n{ops}"));
        let c = Config::load(Some(f.path()), no_env).unwrap();
        assert_eq!(c.ops.sample_interval, Duration::from_secs(15));
        assert_eq!(c.ops.min_records, 20);
        assert!(c.ops.paused.is_empty());

        let f = file_with(
            "[ops]\nreject_ratio_failing = 1.5\nstale_factor = 0.0\nsample_interval = \"10ms\"\npaused = [\"mr-csv\"]\n",
        );
        let err = Config::load(Some(f.path()), no_env).unwrap_err();
        let keys: Vec<&str> = err.problems.iter().map(|p| p.key.as_str()).collect();
        for expected in [
            "ops.reject_ratio_failing",
            "ops.stale_factor",
            "ops.sample_interval",
        ] {
            assert!(keys.contains(&expected), "{expected} missing from {keys:?}");
        }
    }

    #[test]
    fn pki_crls_of_an_anchor_must_be_signed_by_it_and_those_of_ca_below_are_taken() {
        use bohai_certs::{crl_to_pem, init_city_ca, issue_crl, CaNames};
        let now = chrono::Utc::now();
        let pki = init_city_ca(&CaNames::for_city("盘锦市", "盘锦市人民政府"), now).unwrap();
        let week = now + chrono::Duration::days(7);
        let anchor = file_with(&pki.root.cert_pem());
        let good = file_with(&crl_to_pem(
            &issue_crl(&pki.root, &[], 1, now, week).unwrap(),
        ));
        // The issuing CA's CRL: checked on the paths it is used on, not here.
        let below = file_with(&crl_to_pem(
            &issue_crl(&pki.issuing, &[], 1, now, week).unwrap(),
        ));
        // A CRL naming the anchor as its issuer, signed by another key of the same name.
        let impostor = init_city_ca(&CaNames::for_city("盘锦市", "盘锦市人民政府"), now).unwrap();
        let forged = file_with(&crl_to_pem(
            &issue_crl(&impostor.root, &[], 1, now, week).unwrap(),
        ));
        let garbage = file_with("not a CRL");
        let config = |crls: &[&Path]| {
            let list: Vec<String> = crls
                .iter()
                .map(|p| format!("{:?}", p.display().to_string()))
                .collect();
            file_with(&format!(
                "[pki]\ntrust_anchors = [{:?}]\ncrls = [{}]\n",
                anchor.path().display().to_string(),
                list.join(", ")
            ))
        };
        let ok = config(&[good.path(), below.path()]);
        let c = Config::load(Some(ok.path()), no_env).unwrap();
        assert_eq!(
            c.pki.crls,
            vec![good.path().to_owned(), below.path().to_owned()]
        );

        let bad = config(&[
            good.path(),
            forged.path(),
            garbage.path(),
            Path::new("/nonexistent.crl"),
        ]);
        let err = Config::load(Some(bad.path()), no_env).unwrap_err();
        let crl_problems: Vec<&ConfigProblem> = err
            .problems
            .iter()
            .filter(|p| p.key == "pki.crls")
            .collect();
        assert_eq!(crl_problems.len(), 3, "{err}");
        assert!(crl_problems[0].message.contains("signature"), "{err}");
        assert!(crl_problems[0]
            .message
            .contains(&forged.path().display().to_string()));
        assert!(
            crl_problems[1].message.contains("not a usable CRL"),
            "{err}"
        );
        assert!(
            crl_problems[2].message.contains("/nonexistent.crl"),
            "{err}"
        );
    }

    #[test]
    fn topic_settings_are_checked_together() {
        let f = file_with(
            "[kafka]\nreplication_factor = 3\nmin_insync_replicas = 2\nretention = \"7days\"\ncompression = \"zstd\"\n",
        );
        let c = Config::load(Some(f.path()), no_env).unwrap();
        assert_eq!(
            (c.kafka.min_insync_replicas, c.kafka.compression.as_str()),
            (2, "zstd")
        );
        assert_eq!(c.kafka.retention, Duration::from_secs(7 * 24 * 3600));
        let f = file_with(
            "[kafka]\nmin_insync_replicas = 2\ncompression = \"brotli\"\nretention = \"5min\"\n",
        );
        let err = Config::load(Some(f.path()), no_env).unwrap_err();
        let keys: Vec<&str> = err.problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "kafka.min_insync_replicas",
                "kafka.compression",
                "kafka.retention"
            ],
            "{err}"
        );
    }

    #[test]
    fn unreadable_and_malformed_files_are_named() {
        let err = Config::load(Some(Path::new("/nonexistent/bohai.toml")), no_env).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/bohai.toml"));
        let f = file_with("[http\naddr=");
        let err = Config::load(Some(f.path()), no_env).unwrap_err();
        assert!(err.problems[0].message.contains("not valid TOML"));
    }
}
