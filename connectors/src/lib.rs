//! Bohai's source connectors: each reads one department's feed and hands the hub batches of
//! raw records with a checkpoint.
//!
//! A connector is one config struct (serde, unknown keys refused, every field documented) plus
//! one [`Source`] implementation. Adding a connector is one new module and one variant in
//! [`SourceConfig`]. The hub validates the records, delivers them to the broker, stores the
//! checkpoint (in PostgreSQL, in the same transaction as the feed's counts), and only then
//! calls [`Source::committed`]; a source that restarts from its last committed checkpoint
//! re-reads the same records with the same sequence numbers, which is how the repository
//! recognises and skips what was delivered before a crash.
//!
//! HTTP push is not a polling source: the hub's `POST /api/v1/datasets/{id}/records` feeds the
//! same pipeline directly.

pub mod config;
pub mod file;
mod json;
pub mod mysql_table;
pub mod postgres_table;
pub mod push;
pub mod table;
mod text;

use std::collections::BTreeMap;

pub use config::{ConnectorConfig, SourceConfig};

/// One record as the source read it, before validation.
#[derive(Debug, Clone)]
pub struct SourceRecord {
    /// Where it came from, for people: `business.csv line 17`.
    pub origin: String,
    /// Position of the record in its stream; the same record always gets the same number.
    pub seq: u64,
    /// The record's own stream when it is not the batch's: a table row is a stream of its
    /// own, whose versions are numbered by their update time (see [`table`]).
    pub stream: Option<String>,
    /// What was read: the fields, the record's JSON text (in `raw`) or why the bytes are not
    /// a record.
    pub body: Body,
    /// The original bytes (capped at [`RAW_KEEP_LIMIT`]), kept for the dead-letter topic.
    pub raw: Vec<u8>,
}

impl SourceRecord {
    /// The record's fields, parsing its JSON text if it came as text; or why its bytes are
    /// not a record.
    pub fn fields(&self) -> Result<serde_json::Map<String, serde_json::Value>, ReadFailure> {
        self.body.clone().into_fields(&self.raw)
    }
}

/// What a source read for one record.
#[derive(Debug, Clone)]
pub enum Body {
    /// The fields, read from a row or a CSV line.
    Fields(serde_json::Map<String, serde_json::Value>),
    /// The record is the UTF-8 JSON text in [`SourceRecord::raw`], whole (a UTF-8 JSON Lines
    /// line, an element of an HTTP push). It is parsed where it is checked, by
    /// [`parse_json_record`], on the hub's checking threads rather than on the thread that
    /// reads the source; a valid one is published as those bytes.
    JsonText,
    /// The bytes could not be read as a record.
    Unreadable(ReadFailure),
}

impl Body {
    /// The fields, parsing the JSON text in `raw` (the record's [`SourceRecord::raw`]) if
    /// the record came as text; or why its bytes are not a record.
    pub fn into_fields(
        self,
        raw: &[u8],
    ) -> Result<serde_json::Map<String, serde_json::Value>, ReadFailure> {
        match self {
            Body::Fields(map) => Ok(map),
            Body::JsonText => parse_json_record(raw),
            Body::Unreadable(failure) => Err(failure),
        }
    }
}

impl From<Result<serde_json::Map<String, serde_json::Value>, ReadFailure>> for Body {
    fn from(read: Result<serde_json::Map<String, serde_json::Value>, ReadFailure>) -> Self {
        match read {
            Ok(map) => Body::Fields(map),
            Err(failure) => Body::Unreadable(failure),
        }
    }
}

/// Parses UTF-8 JSON text (surrounding whitespace allowed) that must be one JSON object;
/// or says why it is not: `encoding` (not UTF-8), `json_syntax` or `not_an_object`.
pub fn parse_json_record(
    bytes: &[u8],
) -> Result<serde_json::Map<String, serde_json::Value>, ReadFailure> {
    let text = text::Encoding::Utf8
        .decode(bytes)
        .map_err(|why| ReadFailure {
            pointer: String::new(),
            rule: "encoding",
            message: why,
        })?;
    json::json_object(&text)
}

/// The most original bytes kept with a rejected record; the origin names where the rest is.
pub const RAW_KEEP_LIMIT: usize = 64 * 1024;

/// Why bytes could not be read as a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadFailure {
    /// JSON pointer of the field concerned (`/name`), or empty for the whole record.
    pub pointer: String,
    /// `csv_syntax`, `encoding`, `json_syntax`, `not_an_object` or `size_limit`.
    pub rule: &'static str,
    /// What is wrong.
    pub message: String,
}

/// A batch of records from one stream, with the checkpoint that follows them.
#[derive(Debug, Clone)]
pub struct Batch {
    /// The stream the records belong to (a file with its fingerprint, a table): with
    /// [`SourceRecord::seq`] it identifies each record across restarts.
    pub stream: String,
    /// The records, in source order.
    pub records: Vec<SourceRecord>,
    /// Where to resume after these records.
    pub checkpoint: Checkpoint,
}

/// An opaque resume position, stored by the hub as JSON.
pub type Checkpoint = serde_json::Value;

/// What can go wrong reading a source. Bad records are not errors (they come back as
/// [`ReadFailure`]s); these are failures of the source itself.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// A file or folder could not be read, moved or listed.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The stored checkpoint does not fit this source (its file changed, say).
    #[error("the checkpoint does not fit this source: {0}")]
    Checkpoint(String),
    /// The source's database did not answer or refused a query; retriable.
    #[error("the source database failed: {0}")]
    Database(String),
    /// The source does not fit the configuration (a table, column or key the connector
    /// needs is missing, or of a type it cannot read); waiting does not help.
    #[error("the source does not fit the configuration: {0}")]
    Config(String),
    /// A blocking read task failed.
    #[error("a read task failed: {0}")]
    Task(String),
}

impl SourceError {
    /// Whether waiting and retrying may help.
    pub fn is_retriable(&self) -> bool {
        matches!(self, SourceError::Database(_) | SourceError::Io { .. })
    }
}

/// Types of a dataset's top-level fields (`integer`, `number`, `boolean`, `string`), so that
/// text sources such as CSV produce typed JSON values.
pub type FieldTypes = BTreeMap<String, String>;

/// A department feed.
#[async_trait::async_trait]
pub trait Source: Send {
    /// The next batch of at most `max_records` records after the last checkpoint, or `None`
    /// when nothing is available now.
    async fn next_batch(&mut self, max_records: usize) -> Result<Option<Batch>, SourceError>;

    /// Called once `checkpoint` is durably stored: finish what must happen only then (a drop
    /// folder moves a finished file aside).
    async fn committed(&mut self, checkpoint: &Checkpoint) -> Result<(), SourceError>;

    /// True when the source will never yield more (a single file read to its end).
    fn finished(&self) -> bool;
}
