//! `bohai credit show SUBJECT`: a subject's credit profile as the hub's operator sees it
//! (every dataset, personal fields masked), audited like a department's read.

use clap::{Args, Subcommand};

use super::prepare;
use crate::config::Config;
use crate::credit::{self, CreditProfile, Reader};
use crate::sharing::load_or_create_salt;

/// `bohai credit ...`
#[derive(Debug, Subcommand)]
pub enum CreditCommand {
    /// Every credit entry about a subject (credit commitments, red and black lists,
    /// administrative penalties) and whether each is published now.
    Show(ShowArgs),
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
    let CreditCommand::Show(args) = command;
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
