//! A connector's configuration file (TOML). Unknown keys are refused; `docs/connectors.md`
//! documents every key with an example per connector.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::file::FileConfig;
use crate::mysql_table::MysqlTableConfig;
use crate::postgres_table::PostgresTableConfig;
use crate::{Checkpoint, FieldTypes, Source, SourceError};

/// One connector: which dataset it feeds and where it reads.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectorConfig {
    /// Stable name of the connector; its checkpoint and counts are stored under it.
    pub name: String,
    /// The dataset the records belong to.
    pub dataset: String,
    /// Most records in one batch (one broker round trip and one checkpoint). Default 1000.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// Largest record in bytes; a larger one is rejected with `size_limit`. Default 1 MiB,
    /// at most [`MAX_RECORD_BYTES_LIMIT`] (2 MiB): the hub's topics and clients take records of
    /// up to 3 MiB with their headers, and a record accepted here must never be one the broker
    /// refuses.
    #[serde(default = "default_max_record_bytes")]
    pub max_record_bytes: usize,
    /// How long to wait before looking again when the source has nothing new. Default `2s`.
    #[serde(default = "default_poll_interval", with = "humantime_serde")]
    pub poll_interval: Duration,
    /// Where the records come from.
    pub source: SourceConfig,
}

fn default_batch_size() -> usize {
    1000
}

/// The largest `max_record_bytes` a connector may set.
pub const MAX_RECORD_BYTES_LIMIT: usize = 2 * 1024 * 1024;

fn default_max_record_bytes() -> usize {
    1024 * 1024
}

fn default_poll_interval() -> Duration {
    Duration::from_secs(2)
}

/// The kinds of source, chosen by `kind` in the `[source]` table. Adding a connector adds a
/// variant here.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum SourceConfig {
    /// CSV or JSON Lines files: one file or a watched drop folder.
    File(FileConfig),
    /// A PostgreSQL table, read incrementally by its update-time column.
    PostgresTable(PostgresTableConfig),
    /// A MariaDB or MySQL table, read incrementally by its update-time column.
    MysqlTable(MysqlTableConfig),
}

/// What a source needs from the hub to start.
#[derive(Debug, Clone)]
pub struct SourceContext {
    /// The connector's name.
    pub name: String,
    /// Types of the dataset's fields.
    pub field_types: FieldTypes,
    /// Largest record in bytes.
    pub max_record_bytes: usize,
    /// The last committed checkpoint, if any.
    pub checkpoint: Option<Checkpoint>,
}

/// Why a connector configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: cannot read: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a valid connector configuration; the message names the key.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong, with the key and line.
        message: String,
    },
}

impl ConnectorConfig {
    /// Reads and checks a connector file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text).map_err(|message| ConfigError::Invalid {
            path: path.to_owned(),
            message,
        })
    }

    /// Parses and checks a connector configuration.
    pub fn parse(text: &str) -> Result<Self, String> {
        let config: ConnectorConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut problems = Vec::new();
        if config.name.is_empty()
            || !config
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            problems.push(format!(
                "key `name`: `{}` must be non-empty ASCII letters, digits, '-', '_' or '.'",
                config.name
            ));
        }
        if config.batch_size == 0 {
            problems.push("key `batch_size`: must be at least 1".to_owned());
        }
        if !(64..=MAX_RECORD_BYTES_LIMIT).contains(&config.max_record_bytes) {
            problems.push(format!(
                "key `max_record_bytes`: must be between 64 and {MAX_RECORD_BYTES_LIMIT} (2 MiB)"
            ));
        }
        match &config.source {
            SourceConfig::File(f) => problems.extend(f.check()),
            SourceConfig::PostgresTable(t) => {
                problems.extend(t.check(crate::postgres_table::SCHEMES))
            }
            SourceConfig::MysqlTable(t) => problems.extend(t.check(crate::mysql_table::SCHEMES)),
        }
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(problems.join("; "))
        }
    }

    /// Builds the source, resuming from `context.checkpoint`.
    pub fn build(&self, context: SourceContext) -> Result<Box<dyn Source>, SourceError> {
        match &self.source {
            SourceConfig::File(f) => {
                Ok(Box::new(crate::file::FileSource::open(f.clone(), context)?))
            }
            SourceConfig::PostgresTable(t) => {
                Ok(Box::new(crate::postgres_table::open(t.clone(), context)?))
            }
            SourceConfig::MysqlTable(t) => {
                Ok(Box::new(crate::mysql_table::open(t.clone(), context)?))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_connector_parses_with_defaults() {
        let c = ConnectorConfig::parse(
            "name = \"mr-csv\"\ndataset = \"business-registrations\"\n[source]\nkind = \"file\"\npath = \"/tmp/x.csv\"\nformat = \"csv\"\nencoding = \"gbk\"\n",
        )
        .unwrap();
        assert_eq!(c.batch_size, 1000);
        assert_eq!(c.max_record_bytes, 1024 * 1024);
        let SourceConfig::File(f) = c.source else {
            panic!("a file source")
        };
        assert_eq!(f.path.as_deref(), Some(Path::new("/tmp/x.csv")));
    }

    #[test]
    fn table_connectors_parse_with_defaults() {
        let c = ConnectorConfig::parse(
            "name = \"mr-db\"\ndataset = \"business-registrations\"\npoll_interval = \"5s\"\n[source]\nkind = \"postgres-table\"\nurl = \"postgres://reader:pw@db.mr.local/registry\"\ntable = \"business\"\n",
        )
        .unwrap();
        assert_eq!(c.poll_interval, Duration::from_secs(5));
        let SourceConfig::PostgresTable(t) = &c.source else {
            panic!("a postgres-table source")
        };
        assert_eq!(t.updated_at_column, "updated_at");
        assert_eq!(t.lag, Duration::from_secs(30));
        assert_eq!(t.statement_timeout, Duration::from_secs(10));
        assert_eq!(t.time_zone, "+08:00");
        assert_eq!(t.max_connections, 1);
        assert!(t.columns.is_none() && t.key_columns.is_none() && t.schema.is_none());
        assert!(
            !format!("{c:?}").contains("pw@"),
            "the password is redacted"
        );

        let c = ConnectorConfig::parse(
            "name = \"psb-db\"\ndataset = \"resident-registrations\"\n[source]\nkind = \"mysql-table\"\nurl = \"mariadb://reader@127.0.0.1:3306/hukou\"\nschema = \"hukou\"\ntable = \"residents\"\ncolumns = [\"id_number\", \"name\"]\nupdated_at_column = \"modified\"\nkey_columns = [\"id\"]\nlag = \"2m\"\nstatement_timeout = \"5s\"\ntime_zone = \"+00:00\"\nmax_connections = 2\n",
        )
        .unwrap();
        let SourceConfig::MysqlTable(t) = &c.source else {
            panic!("a mysql-table source")
        };
        assert_eq!(t.lag, Duration::from_secs(120));
        assert_eq!(t.key_columns.as_deref(), Some(&["id".to_owned()][..]));
    }

    #[test]
    fn table_connectors_refuse_unknown_keys_and_bad_values() {
        let base = "name = \"x\"\ndataset = \"d\"\n[source]\n";
        let err = ConnectorConfig::parse(&format!(
            "{base}kind = \"postgres-table\"\nurl = \"postgres://h/db\"\ntable = \"t\"\nupdated_at = \"m\"\n"
        ))
        .unwrap_err();
        assert!(err.contains("updated_at"), "{err}");
        let err = ConnectorConfig::parse(&format!(
            "{base}kind = \"mysql-table\"\nurl = \"postgres://h/db\"\ntable = \"t; DROP TABLE x\"\nlag = \"soon\"\n"
        ))
        .unwrap_err();
        assert!(err.contains("\"soon\", expected a duration"), "{err}");
        let err = ConnectorConfig::parse(&format!(
            "{base}kind = \"mysql-table\"\nurl = \"postgres://h/db\"\ntable = \"t; DROP TABLE x\"\ncolumns = [\"a\", \"b c\"]\n"
        ))
        .unwrap_err();
        for key in ["source.url", "source.table", "source.columns"] {
            assert!(err.contains(key), "{key} in {err}");
        }
        let err =
            ConnectorConfig::parse(&format!("{base}kind = \"postgres-table\"\ntable = \"t\"\n"))
                .unwrap_err();
        assert!(err.contains("url"), "{err}");
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused() {
        let err = ConnectorConfig::parse(
            "name = \"x\"\ndataset = \"d\"\nbatch_sise = 5\n[source]\nkind = \"file\"\npath = \"/tmp/x.csv\"\nformat = \"csv\"\n",
        )
        .unwrap_err();
        assert!(err.contains("batch_sise"), "{err}");
        let err = ConnectorConfig::parse(
            "name = \"x\"\ndataset = \"d\"\n[source]\nkind = \"file\"\npath = \"/tmp/x.csv\"\nformat = \"csv\"\nencodng = \"gbk\"\n",
        )
        .unwrap_err();
        assert!(err.contains("encodng"), "{err}");
        let err =
            ConnectorConfig::parse("name = \"x\"\ndataset = \"d\"\n[source]\nkind = \"ftp\"\n")
                .unwrap_err();
        assert!(err.contains("ftp"), "{err}");
        let err = ConnectorConfig::parse(
            "name = \"x y\"\ndataset = \"d\"\nbatch_size = 0\n[source]\nkind = \"file\"\nformat = \"csv\"\n",
        )
        .unwrap_err();
        assert!(
            err.contains("name") && err.contains("batch_size") && err.contains("path"),
            "{err}"
        );
    }
}
