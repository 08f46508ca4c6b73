//! `bohai audit verify|who-received`: the hash-chained audit log.

use anyhow::Context;
use clap::Subcommand;

use super::prepare;
use crate::audit;
use crate::config::Config;

/// `bohai audit ...`
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Recompute the hash chain; name the first broken entry (exit 1 if any).
    Verify {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Which departments received a record, when, and for what purpose.
    WhoReceived {
        /// The dataset.
        #[arg(long)]
        dataset: String,
        /// The record's primary key, as stored.
        #[arg(long)]
        key: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

pub(super) async fn run(config: &Config, command: &AuditCommand) -> anyhow::Result<()> {
    let (db, registry) = prepare(config).await?;
    match command {
        AuditCommand::Verify { json } => {
            let v = audit::verify(&db).await?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else if v.intact {
                println!("the audit log is intact: {} entries verified", v.entries);
            } else {
                println!(
                    "the audit log is BROKEN at entry {}: {}",
                    v.first_broken.unwrap_or_default(),
                    v.reason.as_deref().unwrap_or_default()
                );
            }
            if !v.intact {
                anyhow::bail!(
                    "audit chain broken at entry {}",
                    v.first_broken.unwrap_or_default()
                );
            }
        }
        AuditCommand::WhoReceived { dataset, key, json } => {
            registry
                .dataset(dataset)
                .with_context(|| format!("no dataset `{dataset}`; `bohai catalogue` lists them"))?;
            let receipts = audit::who_received(&db, dataset, key).await?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&receipts)?);
            } else if receipts.is_empty() {
                println!("no department received {dataset} record {key}");
            } else {
                println!(
                    "{:<28} {:<26} {:<8} {:<36}  PURPOSE",
                    "DEPARTMENT", "AT", "HOW", "SUBSCRIPTION"
                );
                for r in receipts {
                    println!(
                        "{:<28} {:<26} {:<8} {:<36}  {}",
                        r.department,
                        r.at.format("%Y-%m-%d %H:%M:%S%.3f"),
                        r.action,
                        r.subscription.as_deref().unwrap_or("-"),
                        r.purpose.as_deref().unwrap_or("-")
                    );
                }
            }
        }
    }
    Ok(())
}
