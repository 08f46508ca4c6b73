//! The registry inside the hub: loaded from the configured folder at start, copied into the
//! database (departments, datasets) so that queries and foreign keys can use it, and shown as
//! [`DatasetView`] by the API and the CLI.

use std::collections::BTreeMap;

use bohai_schemas::{Dataset, Registry};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use utoipa::ToSchema;

use crate::config::RegistryConfig;

/// Loads the registry the configuration names.
pub fn load(config: &RegistryConfig) -> Result<Registry, bohai_schemas::RegistryError> {
    Registry::load(&config.dir)
}

/// Why the registry cannot be copied into the database.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// A dataset's new schema version breaks an earlier version.
    #[error("dataset `{dataset}`: schema version {version} is not backward compatible with version {earlier}: {}", changes.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Incompatible {
        /// The dataset.
        dataset: String,
        /// The new version.
        version: u32,
        /// The earlier version it breaks.
        earlier: i32,
        /// Every incompatible change: field, old rule, new rule.
        changes: Vec<bohai_schemas::compat::Incompatibility>,
    },
    /// A stored schema version was edited instead of getting a new version number.
    #[error("dataset `{dataset}`: schema version {version} differs from the stored version {version}; give the changed schema a new schema_version")]
    Changed {
        /// The dataset.
        dataset: String,
        /// The version.
        version: u32,
    },
    /// The registry's version is older than one already stored.
    #[error(
        "dataset `{dataset}`: schema version {version} is older than the stored version {stored}"
    )]
    Older {
        /// The dataset.
        dataset: String,
        /// The registry's version.
        version: u32,
        /// The newest stored version.
        stored: i32,
    },
    /// The database failed.
    #[error("the database failed: {0}")]
    Database(#[from] sqlx::Error),
}

/// Checks `ds`'s schema against every stored version of it and stores it if it is new:
/// a new version must be backward compatible with each earlier one (which makes the check
/// transitive over the whole history).
async fn check_schema_history(tx: &mut sqlx::PgConnection, ds: &Dataset) -> Result<(), SyncError> {
    let version = i32::try_from(ds.schema_version).unwrap_or(i32::MAX);
    let stored: Vec<(i32, serde_json::Value)> = sqlx::query_as(
        "SELECT version, schema FROM dataset_schemas WHERE dataset = $1 ORDER BY version",
    )
    .bind(&ds.id)
    .fetch_all(&mut *tx)
    .await?;
    if let Some((_, same)) = stored.iter().find(|(v, _)| *v == version) {
        return if *same == ds.schema {
            Ok(())
        } else {
            Err(SyncError::Changed {
                dataset: ds.id.clone(),
                version: ds.schema_version,
            })
        };
    }
    if let Some((newest, _)) = stored.iter().rev().find(|(v, _)| *v > version) {
        return Err(SyncError::Older {
            dataset: ds.id.clone(),
            version: ds.schema_version,
            stored: *newest,
        });
    }
    for (earlier, old) in &stored {
        let changes = bohai_schemas::compat::incompatibilities(old, &ds.schema);
        if !changes.is_empty() {
            return Err(SyncError::Incompatible {
                dataset: ds.id.clone(),
                version: ds.schema_version,
                earlier: *earlier,
                changes,
            });
        }
    }
    sqlx::query("INSERT INTO dataset_schemas (dataset, version, schema) VALUES ($1, $2, $3)")
        .bind(&ds.id)
        .bind(version)
        .bind(&ds.schema)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// Upserts every department and dataset in one transaction; a dataset's schema is accepted
/// only if compatible with its earlier versions (see [`SyncError`]).
pub async fn sync(pool: &PgPool, registry: &Registry) -> Result<(), SyncError> {
    let mut tx = pool.begin().await?;
    for d in &registry.departments {
        sqlx::query(
            "INSERT INTO departments (code, name_zh, name_en, credit_code) VALUES ($1, $2, $3, $4)
             ON CONFLICT (code) DO UPDATE SET name_zh = EXCLUDED.name_zh, name_en = EXCLUDED.name_en,
               credit_code = EXCLUDED.credit_code, loaded_at = now()",
        )
        .bind(&d.code)
        .bind(&d.name_zh)
        .bind(&d.name_en)
        .bind(&d.credit_code)
        .execute(&mut *tx)
        .await?;
    }
    for ds in &registry.datasets {
        sqlx::query(
            "INSERT INTO datasets (id, department, title_zh, title_en, description, primary_key,
                 schema_version, schema, pii, sharing, update_interval)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, make_interval(secs => $11))
             ON CONFLICT (id) DO UPDATE SET department = EXCLUDED.department,
               title_zh = EXCLUDED.title_zh, title_en = EXCLUDED.title_en,
               description = EXCLUDED.description, primary_key = EXCLUDED.primary_key,
               schema_version = EXCLUDED.schema_version, schema = EXCLUDED.schema,
               pii = EXCLUDED.pii, sharing = EXCLUDED.sharing,
               update_interval = EXCLUDED.update_interval, loaded_at = now()",
        )
        .bind(&ds.id)
        .bind(&ds.department)
        .bind(&ds.title_zh)
        .bind(&ds.title_en)
        .bind(&ds.description)
        .bind(&ds.primary_key)
        .bind(i32::try_from(ds.schema_version).unwrap_or(i32::MAX))
        .bind(&ds.schema)
        .bind(serde_json::to_value(&ds.pii).unwrap_or_default())
        .bind(ds.sharing.as_str())
        .bind(ds.update_interval.as_secs_f64())
        .execute(&mut *tx)
        .await?;
        check_schema_history(&mut tx, ds).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// A dataset as the API and the CLI show it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DatasetView {
    /// Stable id.
    pub id: String,
    /// Owning department's code.
    pub department: String,
    /// Chinese title.
    pub title_zh: String,
    /// English title.
    pub title_en: String,
    /// What a record is.
    pub description: String,
    /// Fields that identify a record.
    pub primary_key: Vec<String>,
    /// Version of the record schema.
    pub schema_version: u32,
    /// Expected delivery interval, e.g. `1day`.
    pub update_interval: String,
    /// `unconditional`, `conditional` or `not-shared`.
    pub sharing: String,
    /// PII fields and their masking rule (`partial`, `hash`, `drop`).
    pub pii: BTreeMap<String, String>,
    /// The JSON Schema of one record (only in the single-dataset view).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schema: Option<serde_json::Value>,
}

impl DatasetView {
    /// The view of `ds`, with or without its schema.
    pub fn of(ds: &Dataset, with_schema: bool) -> Self {
        Self {
            id: ds.id.clone(),
            department: ds.department.clone(),
            title_zh: ds.title_zh.clone(),
            title_en: ds.title_en.clone(),
            description: ds.description.clone(),
            primary_key: ds.primary_key.clone(),
            schema_version: ds.schema_version,
            update_interval: humantime::format_duration(ds.update_interval).to_string(),
            sharing: ds.sharing.as_str().to_owned(),
            pii: ds
                .pii
                .iter()
                .map(|(k, v)| {
                    let rule = serde_json::to_value(v)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_default();
                    (k.clone(), rule)
                })
                .collect(),
            schema: with_schema.then(|| ds.schema.clone()),
        }
    }
}
