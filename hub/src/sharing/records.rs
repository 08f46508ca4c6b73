//! Masked reads of the repository: a page of a dataset's records as the reader may see them,
//! and the audit entry that says who received which keys for what purpose.

use base64::Engine;
use bohai_schemas::Dataset;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::PgPool;
use utoipa::{IntoParams, ToSchema};

use super::mask::{self, Salt, View};
use super::{subscriptions, SharingError};
use crate::audit::Entry;

/// Default page size.
const DEFAULT_LIMIT: u32 = 100;
/// Largest page size.
const MAX_LIMIT: u32 = 1000;

/// Paging and filters of a read.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ReadQuery {
    /// Continue after the page that returned this `next_cursor`.
    pub cursor: Option<String>,
    /// Records per page, 1 to 1000; default 100.
    pub limit: Option<u32>,
    /// Only the record with this primary key (as stored: the key field's value, or a JSON
    /// array of the values of a composite key).
    pub key: Option<String>,
    /// Only records updated at or after this time (RFC 3339).
    pub updated_since: Option<DateTime<Utc>>,
    /// Only records updated before this time (RFC 3339).
    pub updated_before: Option<DateTime<Utc>>,
    /// Read under this subscription (default: the caller's active approval).
    pub subscription: Option<uuid::Uuid>,
}

/// One record as the reader sees it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SharedRecord {
    /// The primary key as the reader sees it (masked like its fields; absent if dropped).
    pub key: Option<String>,
    /// When the repository last updated it.
    pub updated_at: DateTime<Utc>,
    /// The approved fields, PII masked.
    #[schema(value_type = Object)]
    pub data: Value,
}

/// A page of records.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RecordPage {
    /// The dataset.
    pub dataset: String,
    /// The subscription read under (absent for the owning department).
    pub subscription: Option<uuid::Uuid>,
    /// The fields shown (absent for the owning department: every field).
    pub fields: Option<Vec<String>>,
    /// The records, oldest update first.
    pub records: Vec<SharedRecord>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

fn encode_cursor(at: DateTime<Utc>, pk: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(format!("{}|{pk}", at.timestamp_micros()))
}

fn decode_cursor(cursor: &str) -> Result<(DateTime<Utc>, String), SharingError> {
    let bad = || SharingError::BadRequest("`cursor` is not a cursor this API returned".to_owned());
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    let (micros, pk) = text.split_once('|').ok_or_else(bad)?;
    let at = micros
        .parse::<i64>()
        .ok()
        .and_then(DateTime::from_timestamp_micros)
        .ok_or_else(bad)?;
    Ok((at, pk.to_owned()))
}

/// Reads a page of `dataset` for `department`: every field for the owner, otherwise only the
/// fields of an active approval, masked. Every read is audited with the keys returned.
pub async fn read(
    db: &PgPool,
    dataset: &Dataset,
    department: &str,
    query: &ReadQuery,
    salt: &Salt,
    now: DateTime<Utc>,
) -> Result<RecordPage, SharingError> {
    let grant = if dataset.department == department {
        None
    } else {
        Some(
            subscriptions::grant_for_read(db, department, &dataset.id, query.subscription, now)
                .await?,
        )
    };
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(SharingError::BadRequest(format!(
            "`limit` must be between 1 and {MAX_LIMIT}"
        )));
    }
    let after = query.cursor.as_deref().map(decode_cursor).transpose()?;
    let rows: Vec<(String, Value, DateTime<Utc>)> = sqlx::query_as(
        "SELECT pk, data, updated_at FROM repository_records
         WHERE dataset = $1
           AND ($2::text IS NULL OR pk = $2)
           AND ($3::timestamptz IS NULL OR updated_at >= $3)
           AND ($4::timestamptz IS NULL OR updated_at < $4)
           AND ($5::timestamptz IS NULL OR (updated_at, pk) > ($5, $6))
         ORDER BY updated_at, pk
         LIMIT $7",
    )
    .bind(&dataset.id)
    .bind(&query.key)
    .bind(query.updated_since)
    .bind(query.updated_before)
    .bind(after.as_ref().map(|a| a.0))
    .bind(after.as_ref().map(|a| a.1.as_str()))
    .bind(i64::from(limit) + 1)
    .fetch_all(db)
    .await?;
    let more = rows.len() > limit as usize;
    let rows = &rows[..rows.len().min(limit as usize)];
    let view = match &grant {
        None => View::Owner,
        Some(g) => View::Shared { fields: &g.fields },
    };
    let records: Vec<SharedRecord> = rows
        .iter()
        .map(|(pk, data, at)| SharedRecord {
            key: mask::key(dataset, pk, data, view, salt),
            updated_at: *at,
            data: mask::project(dataset, data, view, salt),
        })
        .collect();
    let next_cursor = if more {
        rows.last().map(|(pk, _, at)| encode_cursor(*at, pk))
    } else {
        None
    };
    let mut entry = Entry::new(department, "read")
        .dataset(&dataset.id)
        .keys(rows.iter().map(|(pk, _, _)| pk.clone()).collect())
        .detail(&serde_json::json!({
            "fields": grant.as_ref().map(|g| &g.fields),
            "key": query.key,
            "updated_since": query.updated_since,
            "updated_before": query.updated_before,
            "cursor": query.cursor,
        }));
    entry = match &grant {
        Some(g) => entry.subject(g.id).purpose(&g.purpose),
        None => entry.purpose("owning department"),
    };
    entry.append_to(db).await?;
    Ok(RecordPage {
        dataset: dataset.id.clone(),
        subscription: grant.as_ref().map(|g| g.id),
        fields: grant.map(|g| g.fields),
        records,
        next_cursor,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let at = DateTime::from_timestamp_micros(1_760_000_000_123_456).unwrap();
        let c = encode_cursor(at, "[\"a|b\",2]");
        assert_eq!(decode_cursor(&c).unwrap(), (at, "[\"a|b\",2]".to_owned()));
        assert!(decode_cursor("not a cursor!").is_err());
    }
}
