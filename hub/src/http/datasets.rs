//! The datasets of the registry.

use axum::extract::State;
use axum::Json;

use super::extract::Path;
use super::{ApiError, AppState};
use crate::pipeline::stats::{self, DatasetStats};
use crate::registry::DatasetView;

/// Every dataset of the registry.
#[utoipa::path(
    get,
    path = "/api/v1/datasets",
    tag = "datasets",
    responses((status = 200, description = "The datasets, sorted by id", body = [DatasetView]))
)]
pub(super) async fn list_datasets(State(state): State<AppState>) -> Json<Vec<DatasetView>> {
    Json(
        state
            .registry
            .datasets
            .iter()
            .map(|d| DatasetView::of(d, false))
            .collect(),
    )
}

/// One dataset, with its record schema.
#[utoipa::path(
    get,
    path = "/api/v1/datasets/{id}",
    tag = "datasets",
    params(("id" = String, Path, description = "Dataset id, e.g. business-registrations")),
    responses(
        (status = 200, description = "The dataset", body = DatasetView),
        (status = 404, description = "No such dataset", body = super::ErrorBody),
    )
)]
pub(super) async fn show_dataset(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<DatasetView>, ApiError> {
    state
        .registry
        .dataset(&id)
        .map(|d| Json(DatasetView::of(d, true)))
        .ok_or_else(|| ApiError::not_found(format!("no dataset `{id}`")))
}

/// Reconciliation counts of one dataset: read = valid + rejected, valid = inserted + updated +
/// refused.
#[utoipa::path(
    get,
    path = "/api/v1/datasets/{id}/stats",
    tag = "datasets",
    params(("id" = String, Path, description = "Dataset id")),
    responses(
        (status = 200, description = "The dataset's counts", body = DatasetStats),
        (status = 404, description = "No such dataset", body = super::ErrorBody),
    )
)]
pub(super) async fn dataset_stats(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<DatasetStats>, ApiError> {
    stats::dataset_stats(&state.db, Some(&id))
        .await?
        .into_iter()
        .next()
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no dataset `{id}`")))
}
