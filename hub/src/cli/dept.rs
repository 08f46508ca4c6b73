//! `bohai dept token create|list|revoke`: department bearer tokens. Every token action is
//! written to the audit log (actor `operator`).

use clap::Subcommand;

use super::prepare;
use crate::audit::{Entry, OPERATOR};
use crate::auth::{self, Scope};
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
        /// What it allows (repeat for several): publish (push records, decide requests for
        /// the department's datasets), read (catalogue, requests, reads), issue (licences,
        /// seal signatures), admin (decide any access request), ops (the operations
        /// endpoints and the dashboard).
        #[arg(long = "scope", value_enum, required = true)]
        scopes: Vec<Scope>,
        /// Days until it expires (default: until revoked).
        #[arg(long)]
        days: Option<u32>,
        /// The person who will hold it: audit entries of its acts name them, and the rule
        /// that approving is a different person from requesting is judged by it (an admin
        /// approving its own department's request needs it).
        #[arg(long = "holder", value_name = "PERSON")]
        holder: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List tokens (never their secrets).
    List {
        /// Only this department's.
        #[arg(long)]
        dept: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token by its id; it stops working at once.
    Revoke {
        /// The token's id, from `list`.
        id: uuid::Uuid,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

pub(super) async fn run(config: &Config, command: &DeptCommand) -> anyhow::Result<()> {
    let DeptCommand::Token(command) = command;
    let (db, _) = prepare(config).await?;
    match command {
        TokenCommand::Create {
            dept,
            scopes,
            days,
            holder,
            json,
        } => {
            let token = auth::create_token_for(&db, dept, scopes, *days, holder.as_deref()).await?;
            let names: Vec<&str> = scopes.iter().map(|s| s.as_str()).collect();
            Entry::new(OPERATOR, "token.create")
                .subject(token.id)
                .detail(&serde_json::json!({"department": dept, "scopes": names, "expires_at": token.expires_at, "holder": holder}))
                .append_to(&db)
                .await?;
            if *json {
                println!(
                    "{}",
                    serde_json::json!({"id": token.id, "department": dept, "scopes": names,
                        "expires_at": token.expires_at, "holder": holder, "token": token.secret})
                );
            } else {
                println!("{}", token.secret);
                let until = token
                    .expires_at
                    .map_or_else(|| "until revoked".to_owned(), |t| format!("until {t}"));
                eprintln!(
                    "token {} for {dept} ({}), valid {until}: shown once, keep it safe",
                    token.id,
                    names.join(", ")
                );
            }
        }
        TokenCommand::List { dept, json } => {
            let tokens = auth::list_tokens(&db, dept.as_deref()).await?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&tokens)?);
            } else {
                let now = chrono::Utc::now();
                println!(
                    "{:<36}  {:<28} {:<26} {:<20} STATE",
                    "ID", "DEPARTMENT", "SCOPES", "EXPIRES"
                );
                for t in tokens {
                    let state = match t.check_live(now) {
                        Ok(()) => "live".to_owned(),
                        Err(why) => why.code().trim_start_matches("token_").to_owned(),
                    };
                    println!(
                        "{:<36}  {:<28} {:<26} {:<20} {state}",
                        t.id,
                        t.department,
                        t.scopes.join(","),
                        t.expires_at.map_or_else(
                            || "never".to_owned(),
                            |e| e.format("%Y-%m-%d %H:%M").to_string()
                        ),
                    );
                }
            }
        }
        TokenCommand::Revoke { id, json } => {
            let token = auth::revoke_token(&db, *id).await?;
            Entry::new(OPERATOR, "token.revoke")
                .subject(id)
                .detail(&serde_json::json!({"department": token.department}))
                .append_to(&db)
                .await?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&token)?);
            } else {
                println!("token {id} of {} is revoked", token.department);
            }
        }
    }
    Ok(())
}
