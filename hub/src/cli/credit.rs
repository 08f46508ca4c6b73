//! `bohai credit show SUBJECT`: a subject's credit profile as the hub's operator sees it
//! (every dataset, personal fields masked), audited like a department's read; and
//! `bohai credit repair ...`: apply for, decide and list credit repairs as the operator
//! acting for the departments (`bohai --actor NAME` names the person, which repair needs).

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, Subcommand};

use super::prepare;
use crate::config::Config;
use crate::credit::repair::{self, Decision, Repair, RepairApplication, RepairDocument};
use crate::credit::{self, CreditProfile, Reader};
use crate::sharing::load_or_create_salt;

/// `bohai credit ...`
#[derive(Debug, Subcommand)]
pub enum CreditCommand {
    /// Every credit entry about a subject (credit commitments, red and black lists,
    /// administrative penalties) and whether each is published now.
    Show(ShowArgs),
    /// Credit repair (信用修复): apply for it, decide it, list the applications.
    #[command(subcommand)]
    Repair(RepairCommand),
}

/// `bohai credit repair ...`
#[derive(Debug, Subcommand)]
pub enum RepairCommand {
    /// Apply, for the department that listed the entry, with the documents the dataset's
    /// rule asks for.
    Apply {
        /// The dataset of the entry (credit-black-list, administrative-penalties).
        #[arg(long)]
        dataset: String,
        /// The entry's key (a black-list entry's number).
        #[arg(long)]
        entry: String,
        /// Why the subject should be repaired.
        #[arg(long)]
        reason: String,
        /// A document as KIND=FILE (its kind as the rule names it, and the file, whose name
        /// and SHA-256 are recorded); once per document.
        #[arg(long = "document", value_name = "KIND=FILE", required = true)]
        documents: Vec<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Approve an application: the entry leaves publication and the discipline check.
    Approve(DecideArgs),
    /// Reject an application: the entry stays.
    Reject(DecideArgs),
    /// The applications, newest first.
    List {
        /// Only those still pending.
        #[arg(long)]
        pending: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `bohai credit repair approve|reject`
#[derive(Debug, Args)]
pub struct DecideArgs {
    /// The application's id.
    id: i64,
    /// Why.
    #[arg(long)]
    reason: String,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// `bohai credit show`
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// A unified social credit code or a resident identity number.
    subject: String,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub(super) async fn run(config: &Config, command: &CreditCommand) -> anyhow::Result<()> {
    let args = match command {
        CreditCommand::Show(args) => args,
        CreditCommand::Repair(command) => return run_repair(config, command).await,
    };
    let (db, registry) = prepare(config).await?;
    let salt = load_or_create_salt(&config.sharing.hash_salt_file)?;
    let profile = credit::profile(
        &db,
        &registry,
        Reader::Operator,
        &args.subject,
        &salt,
        chrono::Utc::now(),
    )
    .await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&profile)?);
    } else {
        print(&profile);
    }
    Ok(())
}

fn print(profile: &CreditProfile) {
    let day = |d: Option<chrono::NaiveDate>| d.map_or_else(|| "-".to_owned(), |d| d.to_string());
    println!(
        "credit profile of {}: {} entries",
        profile.subject,
        profile.entries.len()
    );
    println!(
        "{:<26} {:<40} {:<32} {:<10} {:<10} PUBLISHED",
        "DATASET", "KEY", "DEPARTMENT", "LISTED", "ENDS"
    );
    for e in &profile.entries {
        println!(
            "{:<26} {:<40} {:<32} {:<10} {:<10} {}",
            e.dataset,
            e.key.as_deref().unwrap_or("-"),
            e.department,
            day(e.list_date),
            day(e.end_date),
            if e.published {
                "published"
            } else {
                "not published"
            }
        );
    }
}

async fn run_repair(config: &Config, command: &RepairCommand) -> anyhow::Result<()> {
    let (db, registry) = prepare(config).await?;
    let actor = repair::Actor {
        department: None,
        person: crate::audit::operator_person(),
    };
    let now = chrono::Utc::now();
    let (shown, json) = match command {
        RepairCommand::Apply {
            dataset,
            entry,
            reason,
            documents,
            json,
        } => {
            let documents = documents
                .iter()
                .map(|d| document(d))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let application = RepairApplication {
                dataset: dataset.clone(),
                entry: entry.clone(),
                reason: reason.clone(),
                documents,
            };
            let made = repair::apply(&db, &registry, actor, application, now).await?;
            (vec![made], *json)
        }
        RepairCommand::Approve(args) | RepairCommand::Reject(args) => {
            let decision = match command {
                RepairCommand::Approve(_) => Decision::Approve,
                _ => Decision::Reject,
            };
            let decided = repair::decide(
                &db,
                &registry,
                actor,
                args.id,
                (decision, &args.reason),
                now,
            )
            .await?;
            (vec![decided], args.json)
        }
        RepairCommand::List { pending, json } => {
            (repair::list(&db, &registry, None, *pending).await?, *json)
        }
    };
    if json {
        let one = matches!(command, RepairCommand::List { .. });
        if one {
            println!("{}", serde_json::to_string_pretty(&shown)?);
        } else {
            println!("{}", serde_json::to_string_pretty(&shown[0])?);
        }
    } else {
        print_repairs(&shown, now);
    }
    Ok(())
}

/// `KIND=FILE` as a document: its kind, the file's name and SHA-256.
fn document(arg: &str) -> anyhow::Result<RepairDocument> {
    let (kind, file) = arg
        .split_once('=')
        .with_context(|| format!("--document `{arg}` is not KIND=FILE"))?;
    let file = PathBuf::from(file);
    let bytes = std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
    Ok(RepairDocument {
        kind: kind.to_owned(),
        name: file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        sha256: crate::seals::service::hex_lower(&crate::seals::service::sha256(&bytes)),
    })
}

fn print_repairs(repairs: &[Repair], now: chrono::DateTime<chrono::Utc>) {
    println!(
        "{:<6} {:<26} {:<22} {:<22} {:<9} DECIDE BY",
        "ID", "DATASET", "ENTRY", "APPLICANT", "STATE"
    );
    for r in repairs {
        println!(
            "{:<6} {:<26} {:<22} {:<22} {:<9} {}{}",
            r.id,
            r.dataset,
            r.entry,
            r.applicant,
            r.state,
            r.decide_by.format("%Y-%m-%d"),
            if r.overdue(now) { "  OVERDUE" } else { "" }
        );
    }
}
