//! `bohai dept token create DEPT`: department bearer tokens.

use clap::Subcommand;

use super::prepare;
use crate::auth;
use crate::config::Config;

/// `bohai dept ...`
#[derive(Debug, Subcommand)]
pub enum DeptCommand {
    /// Bearer tokens of a department.
    #[command(subcommand)]
    Token(TokenCommand),
}

/// `bohai dept token ...`
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token for DEPT and print it once; only its hash is stored.
    Create {
        /// Department code, e.g. market-regulation.
        dept: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

pub(super) async fn run(config: &Config, command: &DeptCommand) -> anyhow::Result<()> {
    let DeptCommand::Token(TokenCommand::Create { dept, json }) = command;
    let (db, _) = prepare(config).await?;
    let token = auth::create_token(&db, dept).await?;
    if *json {
        println!(
            "{}",
            serde_json::json!({"id": token.id, "department": dept, "token": token.secret})
        );
    } else {
        println!("{}", token.secret);
        eprintln!("token {} for {dept}: shown once, keep it safe", token.id);
    }
    Ok(())
}
