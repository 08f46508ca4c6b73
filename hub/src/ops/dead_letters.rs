//! The latest rejected records for the dashboard's dead-letter viewer: payloads masked by the
//! dataset's PII rules (`mask`), and the reasons and origins, which quote the record, masked
//! alike.

use bohai_schemas::Registry;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;
use utoipa::ToSchema;

use super::mask::{self, Masking};

/// One rejected record as the ops team sees it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DeadLetter {
    /// Its id in `rejected_records`.
    pub id: i64,
    /// Dataset id.
    pub dataset: String,
    /// Department that delivered it.
    pub department: String,
    /// The connector's name, or `http-push`.
    pub source: String,
    /// Where in the source it was (file and line, table row, request), with the values the
    /// payload masks masked and an HTTP push's idempotency key as its keyed hash.
    pub origin: String,
    /// Every reason, as `{pointer, rule, message}` objects; the messages with every value
    /// the payload masks masked as the payload shows it.
    #[schema(value_type = Vec<Object>)]
    pub reasons: serde_json::Value,
    /// The payload, masked.
    pub payload: String,
    /// How `payload` was masked.
    pub masking: Masking,
    /// When it was rejected.
    pub rejected_at: DateTime<Utc>,
}

/// Which rejects to list.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Only this dataset.
    pub dataset: Option<String>,
    /// Only this department.
    pub department: Option<String>,
    /// How many, newest first (at most 500).
    pub limit: i64,
}

/// The original bytes of a record as text: UTF-8, else GB18030 (GBK files), else lossy.
/// Returns the text and the decoding used: `utf-8`, `gb18030` or `lossy`.
pub fn decode_raw(raw: &[u8]) -> (String, &'static str) {
    if let Ok(s) = std::str::from_utf8(raw) {
        return (s.to_owned(), "utf-8");
    }
    if let Some(s) = encoding_rs::GB18030.decode_without_bom_handling_and_without_replacement(raw) {
        return (s.into_owned(), "gb18030");
    }
    (String::from_utf8_lossy(raw).into_owned(), "lossy")
}

#[derive(Debug, sqlx::FromRow)]
struct Row {
    id: i64,
    dataset: String,
    department: String,
    source: String,
    origin: String,
    reasons: serde_json::Value,
    raw: Vec<u8>,
    rejected_at: DateTime<Utc>,
}

/// The latest rejects matching `filter`, masked; `key` keys the `hash` masking rule.
pub async fn latest(
    db: &PgPool,
    registry: &Registry,
    filter: &Filter,
    key: &ring::hmac::Key,
) -> Result<Vec<DeadLetter>, sqlx::Error> {
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT id, dataset, department, source, origin, reasons, raw, rejected_at
         FROM rejected_records
         WHERE ($1::text IS NULL OR dataset = $1) AND ($2::text IS NULL OR department = $2)
         ORDER BY id DESC LIMIT $3",
    )
    .bind(&filter.dataset)
    .bind(&filter.department)
    .bind(filter.limit.clamp(1, 500))
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let (text, _) = decode_raw(&r.raw);
            // A dataset unknown to the registry has no rules: mask everything.
            let rules = registry.dataset(&r.dataset).map(|d| &d.pii);
            let (masked, reasons, origin) =
                mask::mask_reject(&text, &r.reasons, &r.origin, rules, key);
            DeadLetter {
                id: r.id,
                dataset: r.dataset,
                department: r.department,
                source: r.source,
                origin,
                reasons,
                payload: masked.text,
                masking: masked.masking,
                rejected_at: r.rejected_at,
            }
        })
        .collect())
}
