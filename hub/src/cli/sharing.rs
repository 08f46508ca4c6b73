//! `bohai catalogue` and `bohai sub list|show|approve|reject|withdraw`: the catalogue and access
//! requests, decided by a hub operator (actor `operator` in the audit log).

use clap::{Args, Subcommand};

use super::prepare;
use crate::config::Config;
use crate::sharing::subscriptions::{self, Decider, Filter, Subscription};
use crate::sharing::{catalogue, delivery};

/// `bohai catalogue`
#[derive(Debug, Args)]
pub struct CatalogueArgs {
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// `bohai sub ...`
#[derive(Debug, Subcommand)]
pub enum SubCommand {
    /// List access requests, newest first; overdue ones are flagged.
    List {
        /// Only this dataset's.
        #[arg(long)]
        dataset: Option<String>,
        /// Only those a department asked for or owns the dataset of.
        #[arg(long)]
        dept: Option<String>,
        /// Only those in this status (pending, approved, rejected, withdrawn).
        #[arg(long)]
        status: Option<String>,
        /// Only pending requests past their reply deadline.
        #[arg(long)]
        overdue: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show one request.
    Show {
        /// The subscription id.
        id: uuid::Uuid,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Approve a pending request.
    Approve {
        /// The subscription id.
        id: uuid::Uuid,
        /// Why (optional).
        #[arg(long)]
        reason: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Reject a pending request, with a reason.
    Reject {
        /// The subscription id.
        id: uuid::Uuid,
        /// Why (required).
        #[arg(long)]
        reason: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Withdraw a pending or approved subscription: access ends and its topic is deleted.
    Withdraw {
        /// The subscription id.
        id: uuid::Uuid,
        /// Why (required).
        #[arg(long)]
        reason: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

pub(super) async fn catalogue(config: &Config, args: &CatalogueArgs) -> anyhow::Result<()> {
    let (db, registry) = prepare(config).await?;
    let entries = catalogue::catalogue(&db, &registry, chrono::Utc::now()).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&entries)?);
        return Ok(());
    }
    println!(
        "{:<32} {:<28} {:<13} {:<8} {:>10}  {:<20} FRESH  PII",
        "DATASET", "OWNER", "SHARING", "INTERVAL", "RECORDS", "LATEST UPDATE"
    );
    for e in entries {
        let pii: Vec<String> = e.pii.iter().map(|(f, r)| format!("{f}:{r}")).collect();
        println!(
            "{:<32} {:<28} {:<13} {:<8} {:>10}  {:<20} {:<5}  {}",
            e.id,
            e.owner,
            e.sharing,
            e.update_interval,
            e.records,
            e.latest_update.map_or_else(
                || "never".to_owned(),
                |t| t.format("%Y-%m-%d %H:%M").to_string()
            ),
            if e.fresh { "yes" } else { "no" },
            pii.join(", ")
        );
    }
    Ok(())
}

fn print(config: &Config, sub: Subscription, json: bool) -> anyhow::Result<()> {
    let sub = delivery::with_topic(sub, &config.kafka);
    if json {
        println!("{}", serde_json::to_string_pretty(&sub)?);
    } else {
        println!("subscription {}", sub.id);
        println!("  dataset:    {}", sub.dataset);
        println!("  requester:  {}", sub.department);
        println!("  fields:     {}", sub.fields.join(", "));
        println!("  purpose:    {}", sub.purpose);
        println!(
            "  status:     {}{}",
            sub.status,
            if sub.overdue { " (OVERDUE)" } else { "" }
        );
        println!(
            "  requested:  {} (reply due {})",
            sub.requested_at, sub.reply_due
        );
        println!("  until:      {}", sub.valid_until);
        if let (Some(at), Some(by)) = (sub.decided_at, &sub.decided_by) {
            println!(
                "  decided:    {at} by {by}{}",
                sub.reason
                    .as_deref()
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default()
            );
        }
        if let (Some(at), Some(by)) = (sub.withdrawn_at, &sub.withdrawn_by) {
            println!(
                "  withdrawn:  {at} by {by}: {}",
                sub.withdrawal_reason.as_deref().unwrap_or_default()
            );
        }
        if let Some(topic) = &sub.topic {
            println!("  topic:      {topic}");
        }
    }
    Ok(())
}

pub(super) async fn run(config: &Config, command: &SubCommand) -> anyhow::Result<()> {
    let (db, registry) = prepare(config).await?;
    let now = chrono::Utc::now();
    match command {
        SubCommand::List {
            dataset,
            dept,
            status,
            overdue,
            json,
        } => {
            let filter = Filter {
                department: dept.as_deref(),
                dataset: dataset.as_deref(),
                status: status.as_deref(),
                overdue: *overdue,
            };
            let subs: Vec<Subscription> = subscriptions::list(&db, &registry, &filter, now)
                .await?
                .into_iter()
                .map(|s| delivery::with_topic(s, &config.kafka))
                .collect();
            if *json {
                println!("{}", serde_json::to_string_pretty(&subs)?);
            } else {
                println!(
                    "{:<36}  {:<30} {:<28} {:<9} {:<10} PURPOSE",
                    "ID", "DATASET", "REQUESTER", "STATUS", "REPLY DUE"
                );
                for s in subs {
                    println!(
                        "{:<36}  {:<30} {:<28} {:<9} {:<10} {}",
                        s.id,
                        s.dataset,
                        s.department,
                        s.status,
                        if s.overdue {
                            "OVERDUE".to_owned()
                        } else {
                            s.reply_due.format("%Y-%m-%d").to_string()
                        },
                        s.purpose
                    );
                }
            }
        }
        SubCommand::Show { id, json } => {
            print(config, subscriptions::get(&db, *id, now).await?, *json)?;
        }
        SubCommand::Approve { id, reason, json } => {
            let sub = subscriptions::decide(
                &db,
                &registry,
                *id,
                &Decider::Operator,
                true,
                reason.as_deref(),
                now,
            )
            .await?;
            print(config, sub, *json)?;
        }
        SubCommand::Reject { id, reason, json } => {
            let sub = subscriptions::decide(
                &db,
                &registry,
                *id,
                &Decider::Operator,
                false,
                Some(reason),
                now,
            )
            .await?;
            print(config, sub, *json)?;
        }
        SubCommand::Withdraw { id, reason, json } => {
            let sub = subscriptions::withdraw(&db, &registry, *id, &Decider::Operator, reason, now)
                .await?;
            print(config, sub, *json)?;
        }
    }
    Ok(())
}
