//! `bohai dataset list|show`: the registry's datasets.

use anyhow::Context;
use clap::Subcommand;

use crate::config::Config;
use crate::database;
use crate::pipeline::stats;
use crate::registry::{self, DatasetView};

/// `bohai dataset ...`
#[derive(Debug, Subcommand)]
pub enum DatasetCommand {
    /// List every dataset.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show one dataset with its schema.
    Show {
        /// The dataset id.
        id: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Reconciliation counts: read = valid + rejected, valid = inserted + updated + refused.
    Stats {
        /// One dataset (default: all).
        id: Option<String>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

pub(super) async fn run(config: &Config, command: &DatasetCommand) -> anyhow::Result<()> {
    let registry = registry::load(&config.registry)?;
    match command {
        DatasetCommand::Stats { id, json } => {
            let db = database::pool(&config.database)?;
            if let Some(id) = id {
                registry.dataset(id).with_context(|| {
                    format!("no dataset `{id}`; `bohai dataset list` shows them")
                })?;
            }
            let all = stats::dataset_stats(&db, id.as_deref()).await?;
            if *json {
                let out = match id {
                    Some(_) => serde_json::to_string_pretty(&all.first())?,
                    None => serde_json::to_string_pretty(&all)?,
                };
                println!("{out}");
            } else {
                println!(
                    "{:<32} {:>10} {:>10} {:>9} {:>10} {:>9} {:>8} {:>10} {:>8}  RECONCILED",
                    "DATASET",
                    "READ",
                    "VALID",
                    "REJECTED",
                    "INSERTED",
                    "UPDATED",
                    "REFUSED",
                    "ROWS",
                    "PENDING"
                );
                for s in all {
                    println!(
                        "{:<32} {:>10} {:>10} {:>9} {:>10} {:>9} {:>8} {:>10} {:>8}  {}",
                        s.dataset,
                        s.read,
                        s.valid,
                        s.rejected,
                        s.inserted,
                        s.updated,
                        s.refused,
                        s.rows,
                        s.pending,
                        if s.reconciled { "yes" } else { "no" }
                    );
                }
            }
        }
        DatasetCommand::List { json } => {
            let views: Vec<DatasetView> = registry
                .datasets
                .iter()
                .map(|d| DatasetView::of(d, false))
                .collect();
            if *json {
                println!("{}", serde_json::to_string_pretty(&views)?);
            } else {
                println!(
                    "{:<32} {:<28} {:<13} {:<10} TITLE",
                    "ID", "DEPARTMENT", "SHARING", "INTERVAL"
                );
                for v in views {
                    println!(
                        "{:<32} {:<28} {:<13} {:<10} {} / {}",
                        v.id, v.department, v.sharing, v.update_interval, v.title_zh, v.title_en
                    );
                }
            }
        }
        DatasetCommand::Show { id, json } => {
            let ds = registry
                .dataset(id)
                .with_context(|| format!("no dataset `{id}`; `bohai dataset list` shows them"))?;
            let view = DatasetView::of(ds, true);
            if *json {
                println!("{}", serde_json::to_string_pretty(&view)?);
            } else {
                let dept = registry
                    .department(&view.department)
                    .map(|d| format!("{} ({})", d.name_zh, d.code))
                    .unwrap_or_else(|| view.department.clone());
                println!("{} — {} / {}", view.id, view.title_zh, view.title_en);
                println!("  department:      {dept}");
                println!("  description:     {}", view.description);
                println!("  primary key:     {}", view.primary_key.join(", "));
                println!("  schema version:  {}", view.schema_version);
                println!("  update interval: {}", view.update_interval);
                println!("  sharing:         {}", view.sharing);
                for (field, rule) in &view.pii {
                    println!("  PII:             {field} ({rule})");
                }
                if let Some(props) = ds.schema.get("properties").and_then(|p| p.as_object()) {
                    println!("  fields:");
                    for (name, prop) in props {
                        let ty = prop.get("type").map(|t| t.to_string()).unwrap_or_default();
                        let format = prop
                            .get("format")
                            .and_then(|f| f.as_str())
                            .map(|f| format!(" format={f}"))
                            .unwrap_or_default();
                        let desc = prop
                            .get("description")
                            .and_then(|d| d.as_str())
                            .unwrap_or_default();
                        println!("    {name:<28} {ty}{format}  {desc}");
                    }
                }
            }
        }
    }
    Ok(())
}
