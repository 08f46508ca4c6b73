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
    /// Continue after the page that returned this `next_cursor` (opaque; valid only for the
    /// same dataset and department).
    pub cursor: Option<String>,
    /// Records per page, 1 to 1000; default 100.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// Only the record with this primary key (as stored: the key field's value, or a JSON
    /// array of the values of a composite key). Only for a caller who sees the key unmasked
    /// (the owning department, or a dataset whose key fields are not personal data);
    /// otherwise 400 `key_masked`, so that no one learns whether a raw value exists.
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

/// Paging cursors are opaque: the position (update time and primary key) sealed with
/// AES-256-GCM under a key derived from the masking salt, bound to the dataset and the reading
/// department. A caller sees nothing of the key it holds (a raw identity number, where the
/// reader sees it hashed), and a cursor is refused for another dataset or department.
struct Cursors {
    key: ring::aead::LessSafeKey,
    /// What a cursor is bound to: the dataset and the reading department.
    context: String,
}

/// What a refused cursor is told.
fn bad_cursor() -> SharingError {
    SharingError::BadParameter {
        name: "cursor",
        why: "is not a cursor this API returned to you for this dataset".to_owned(),
    }
}

impl Cursors {
    fn new(salt: &Salt, dataset: &str, department: &str) -> Self {
        let raw = salt.derive_key("bohai paging cursor v1");
        let key = ring::aead::LessSafeKey::new(
            ring::aead::UnboundKey::new(&ring::aead::AES_256_GCM, &raw)
                .unwrap_or_else(|_| unreachable!("32 bytes is an AES-256 key")),
        );
        Self {
            key,
            context: format!("{dataset}\n{department}"),
        }
    }

    fn encode(&self, at: DateTime<Utc>, pk: &str) -> Result<String, SharingError> {
        let mut nonce = [0u8; ring::aead::NONCE_LEN];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut nonce).map_err(
            |_| SharingError::BadRequest("no randomness available for a cursor".to_owned()),
        )?;
        let mut sealed = format!("{}|{pk}", at.timestamp_micros()).into_bytes();
        self.key
            .seal_in_place_append_tag(
                ring::aead::Nonce::assume_unique_for_key(nonce),
                ring::aead::Aad::from(self.context.as_bytes()),
                &mut sealed,
            )
            .map_err(|_| SharingError::BadRequest("cannot seal a cursor".to_owned()))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(out))
    }

    fn decode(&self, cursor: &str) -> Result<(DateTime<Utc>, String), SharingError> {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(cursor)
            .map_err(|_| bad_cursor())?;
        if bytes.len() < ring::aead::NONCE_LEN {
            return Err(bad_cursor());
        }
        let (nonce, sealed) = bytes.split_at(ring::aead::NONCE_LEN);
        let nonce =
            ring::aead::Nonce::try_assume_unique_for_key(nonce).map_err(|_| bad_cursor())?;
        let mut sealed = sealed.to_vec();
        let opened = self
            .key
            .open_in_place(
                nonce,
                ring::aead::Aad::from(self.context.as_bytes()),
                &mut sealed,
            )
            .map_err(|_| bad_cursor())?;
        let text = std::str::from_utf8(opened).map_err(|_| bad_cursor())?;
        let (micros, pk) = text.split_once('|').ok_or_else(bad_cursor)?;
        let at = micros
            .parse::<i64>()
            .ok()
            .and_then(DateTime::from_timestamp_micros)
            .ok_or_else(bad_cursor)?;
        Ok((at, pk.to_owned()))
    }
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
            subscriptions::grant_for_read(
                db,
                department,
                (subscriptions::Kind::Dataset, &dataset.id),
                query.subscription,
                now,
            )
            .await?,
        )
    };
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(SharingError::BadParameter {
            name: "limit",
            why: format!("must be between 1 and {MAX_LIMIT}"),
        });
    }
    // A key filter on a key the reader sees masked would answer whether a raw value exists.
    if let (Some(_), Some(_)) = (&grant, &query.key) {
        if let Some(field) = dataset
            .primary_key
            .iter()
            .find(|f| dataset.pii.contains_key(*f))
        {
            return Err(SharingError::KeyMasked {
                dataset: dataset.id.clone(),
                field: field.clone(),
            });
        }
    }
    let cursors = Cursors::new(salt, &dataset.id, department);
    let after = query
        .cursor
        .as_deref()
        .map(|c| cursors.decode(c))
        .transpose()?;
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
    let next_cursor = match rows.last() {
        Some((pk, _, at)) if more => Some(cursors.encode(*at, pk)?),
        _ => None,
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
    fn cursors_round_trip_hide_the_key_and_stay_with_their_reader() {
        let salt = Salt::new(b"a salt of at least sixteen bytes");
        let at = DateTime::from_timestamp_micros(1_760_000_000_123_456).unwrap();
        let mine = Cursors::new(&salt, "resident-registrations", "civil-affairs");
        let c = mine.encode(at, "211102195001209203").unwrap();
        assert_eq!(
            mine.decode(&c).unwrap(),
            (at, "211102195001209203".to_owned())
        );
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(&c)
            .unwrap();
        assert!(!String::from_utf8_lossy(&raw).contains("211102195001209203"));
        // Another reader, another dataset, another salt, a changed byte, garbage.
        for other in [
            Cursors::new(&salt, "resident-registrations", "education"),
            Cursors::new(&salt, "business-registrations", "civil-affairs"),
            Cursors::new(
                &Salt::new(b"another salt, sixteen bytes+"),
                "resident-registrations",
                "civil-affairs",
            ),
        ] {
            assert!(other.decode(&c).is_err());
        }
        let mut changed = raw.clone();
        changed[20] ^= 1;
        let changed = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(changed);
        assert!(mine.decode(&changed).is_err());
        assert!(mine.decode("not a cursor!").is_err());
        assert!(mine.decode("").is_err());
    }
}
