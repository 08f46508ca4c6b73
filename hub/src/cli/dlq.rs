//! `bohai dlq show`: the latest rejected records with their reasons.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::config::Config;
use crate::database;
use crate::ops::dead_letters::decode_raw;

/// Options of `bohai dlq show`.
#[derive(Debug, clap::Args)]
pub struct DlqShowArgs {
    /// Only this dataset.
    #[arg(long)]
    pub dataset: Option<String>,
    /// How many, newest first.
    #[arg(long, default_value_t = 20)]
    pub limit: i64,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// One rejected record as stored.
#[derive(Debug, sqlx::FromRow)]
struct Row {
    dataset: String,
    department: String,
    source: String,
    origin: String,
    reasons: serde_json::Value,
    raw: Vec<u8>,
    rejected_at: DateTime<Utc>,
}

/// One rejected record as shown.
#[derive(Debug, Serialize)]
struct Reject {
    dataset: String,
    department: String,
    source: String,
    origin: String,
    reasons: serde_json::Value,
    /// The original bytes as text.
    raw: String,
    /// How `raw` was decoded: `utf-8`, `gb18030`, or `lossy` (invalid bytes replaced).
    raw_encoding: &'static str,
    rejected_at: DateTime<Utc>,
}

pub(super) async fn show(config: &Config, args: &DlqShowArgs) -> anyhow::Result<()> {
    let db = database::pool(&config.database)?;
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT dataset, department, source, origin, reasons, raw, rejected_at
         FROM rejected_records WHERE $1::text IS NULL OR dataset = $1
         ORDER BY id DESC LIMIT $2",
    )
    .bind(&args.dataset)
    .bind(args.limit)
    .fetch_all(&db)
    .await?;
    let rows: Vec<Reject> = rows
        .into_iter()
        .map(|r| {
            let (raw, raw_encoding) = decode_raw(&r.raw);
            Reject {
                dataset: r.dataset,
                department: r.department,
                source: r.source,
                origin: r.origin,
                reasons: r.reasons,
                raw,
                raw_encoding,
                rejected_at: r.rejected_at,
            }
        })
        .collect();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    if rows.is_empty() {
        println!("no rejected records");
    }
    for r in rows {
        println!(
            "{}  {} / {}  {}  ({})",
            r.rejected_at.format("%Y-%m-%d %H:%M:%S"),
            r.department,
            r.dataset,
            r.origin,
            r.source
        );
        if let Some(reasons) = r.reasons.as_array() {
            for reason in reasons {
                println!(
                    "    {} [{}] {}",
                    reason["pointer"]
                        .as_str()
                        .filter(|p| !p.is_empty())
                        .unwrap_or("(record)"),
                    reason["rule"].as_str().unwrap_or_default(),
                    reason["message"].as_str().unwrap_or_default()
                );
            }
        }
        println!("    raw: {}", r.raw.trim_end());
    }
    Ok(())
}
