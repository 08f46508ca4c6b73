//! The catalogue: every dataset with its owner, fields, PII tags, sharing class, update
//! interval, record count and freshness.

use std::collections::HashMap;

use bohai_schemas::{Dataset, Registry};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::PgPool;
use utoipa::ToSchema;

use crate::registry::DatasetView;

/// One field of a dataset, from its schema.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CatalogueField {
    /// The field name.
    pub name: String,
    /// The JSON type(s) the schema declares, e.g. `string`.
    pub r#type: Option<Value>,
    /// The named format, e.g. `resident-id`.
    pub format: Option<String>,
    /// What it holds.
    pub description: Option<String>,
    /// Whether every record has it.
    pub required: bool,
    /// Whether it is part of the primary key.
    pub primary_key: bool,
    /// The masking rule if it is personal information: `partial`, `hash` or `drop`.
    pub pii: Option<String>,
}

/// One dataset in the catalogue.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CatalogueEntry {
    /// Dataset id.
    pub id: String,
    /// Owning department's code.
    pub owner: String,
    /// Owning department's Chinese name.
    pub owner_name_zh: String,
    /// Chinese title.
    pub title_zh: String,
    /// English title.
    pub title_en: String,
    /// What a record is.
    pub description: String,
    /// `unconditional`, `conditional` or `not-shared`.
    pub sharing: String,
    /// Expected delivery interval, e.g. `1h`.
    pub update_interval: String,
    /// Version of the record schema.
    pub schema_version: u32,
    /// The fields, in schema order.
    pub fields: Vec<CatalogueField>,
    /// PII fields and their masking rules.
    pub pii: std::collections::BTreeMap<String, String>,
    /// Records in the repository.
    pub records: i64,
    /// The latest update in the repository, if any.
    pub latest_update: Option<DateTime<Utc>>,
    /// Whether the latest update is within one update interval.
    pub fresh: bool,
}

/// The fields of `ds` as its schema declares them.
pub fn fields(ds: &Dataset) -> Vec<CatalogueField> {
    let required: Vec<&str> = ds
        .schema
        .get("required")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let Some(props) = ds.schema.get("properties").and_then(Value::as_object) else {
        return Vec::new();
    };
    props
        .iter()
        .map(|(name, p)| CatalogueField {
            name: name.clone(),
            r#type: p.get("type").cloned(),
            format: p.get("format").and_then(Value::as_str).map(str::to_owned),
            description: p
                .get("description")
                .and_then(Value::as_str)
                .map(str::to_owned),
            required: required.contains(&name.as_str()),
            primary_key: ds.primary_key.contains(name),
            pii: ds.pii.get(name).and_then(|r| {
                serde_json::to_value(r)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
            }),
        })
        .collect()
}

/// The catalogue at `now`.
pub async fn catalogue(
    db: &PgPool,
    registry: &Registry,
    now: DateTime<Utc>,
) -> Result<Vec<CatalogueEntry>, sqlx::Error> {
    // One index probe per dataset for the latest update; the count kept by the sink.
    let stats: HashMap<String, (i64, Option<DateTime<Utc>>)> =
        sqlx::query_as::<_, (String, i64, Option<DateTime<Utc>>)>(
            "SELECT d.id, COALESCE(s.inserted_total, 0),
                    (SELECT max(r.updated_at) FROM repository_records r WHERE r.dataset = d.id)
             FROM datasets d LEFT JOIN sink_counts s ON s.dataset = d.id",
        )
        .fetch_all(db)
        .await?
        .into_iter()
        .map(|(id, n, at)| (id, (n, at)))
        .collect();
    Ok(registry
        .datasets
        .iter()
        .map(|ds| {
            let view = DatasetView::of(ds, false);
            let (records, latest_update) = stats.get(&ds.id).cloned().unwrap_or((0, None));
            let fresh = latest_update.is_some_and(|at| {
                chrono::Duration::from_std(ds.update_interval)
                    .is_ok_and(|interval| now - at <= interval)
            });
            CatalogueEntry {
                owner_name_zh: registry
                    .department(&ds.department)
                    .map(|d| d.name_zh.clone())
                    .unwrap_or_default(),
                id: view.id,
                owner: view.department,
                title_zh: view.title_zh,
                title_en: view.title_en,
                description: view.description,
                sharing: view.sharing,
                update_interval: view.update_interval,
                schema_version: view.schema_version,
                fields: fields(ds),
                pii: view.pii,
                records,
                latest_update,
                fresh,
            }
        })
        .collect())
}
