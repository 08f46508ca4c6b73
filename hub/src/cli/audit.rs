//! `bohai audit verify|checkpoint|who-received`: the hash-chained audit log and its signed
//! checkpoints.

use std::path::PathBuf;

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
        /// A signed checkpoint (from `bohai audit checkpoint` or the audit-checkpoints topic):
        /// also check that the entries it covers are all there and hash to what it signed, so
        /// that a truncation or a rewrite before it is found.
        #[arg(long, value_name = "CHECKPOINT_FILE")]
        against: Option<PathBuf>,
        /// PEM file of the city root the checkpoint's signer (a seal of the city CA) must
        /// chain to. Default: the city root this hub's database holds (pin it to not trust the
        /// database).
        #[arg(long, value_name = "PEM", requires = "against")]
        root: Option<PathBuf>,
        /// A CRL of the city (DER or PEM, as `GET /api/v1/pki/crl` and `/api/v1/pki/root-crl`
        /// publish them), kept apart from the hub; repeat for both. When given, only these
        /// are read: the database's, which its owner can delete, are not.
        #[arg(long, value_name = "FILE", requires = "against")]
        crl: Vec<PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Sign a checkpoint of the audit log now with the status authority's seal, store it and
    /// publish it to the audit-checkpoints topic (`bohai serve` does so every
    /// `audit.checkpoint_interval`).
    Checkpoint {
        /// Also write the signed checkpoint (compact JWS) to this file.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
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
        AuditCommand::Verify {
            against,
            root,
            crl,
            json,
        } => {
            let v = match against {
                None => audit::verify(&db).await?,
                Some(file) => {
                    let token = std::fs::read_to_string(file)
                        .with_context(|| format!("cannot read {}", file.display()))?;
                    let seals = crate::seals::SealsService::public(&db, &config.pki);
                    // Only a seal of the city CA signs checkpoints: the city root alone, never
                    // the operator anchors (see `SealsService::authority_seal`).
                    let trust = match root {
                        Some(pem) => {
                            let text = std::fs::read_to_string(pem)
                                .with_context(|| format!("cannot read {}", pem.display()))?;
                            bohai_certs::TrustAnchors::city_root_from_pem(&text)
                                .with_context(|| format!("{}", pem.display()))?
                        }
                        None => seals.city_root().await?,
                    };
                    let authority = &config.licences.status_authority;
                    let credit_code = registry
                        .department(authority)
                        .map(|d| d.credit_code.clone())
                        .with_context(|| {
                            format!("licences.status_authority `{authority}` is not a department of the registry")
                        })?;
                    // The city's CRLs, the auditor's or else the database's: a checkpoint its
                    // seal signed after being revoked is not the authority's. (Imported seals'
                    // revocations do not matter: no imported seal signs checkpoints.)
                    let crls = if crl.is_empty() {
                        seals.crls().await?
                    } else {
                        super::read_crl_files(crl)?
                    };
                    let checkpoint =
                        audit::checkpoint::verify(
                            &token,
                            &trust,
                            bohai_certs::licence::SignerRevocation {
                                crls: &crls,
                                revoked_seals: &[],
                                now: chrono::Utc::now(),
                            },
                            &credit_code,
                        )
                        .with_context(|| {
                            format!(
                            "{}: its signer must be a seal of the city CA, under the city root{}",
                            file.display(),
                            if root.is_some() { "" } else { " of the database" }
                        )
                        })?;
                    audit::verify_against(&db, &checkpoint).await?
                }
            };
            if *json {
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else if v.intact {
                println!("the audit log is intact: {} entries verified", v.entries);
                if let Some(c) = &v.checkpoint {
                    println!(
                        "it holds the {} entries of the checkpoint signed by {} at {}",
                        c.seq, c.authority, c.issued_at
                    );
                }
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
        AuditCommand::Checkpoint { out, json } => {
            let mut made =
                audit::checkpoint::make(&db, config, &registry, chrono::Utc::now(), None).await?;
            if let Some(path) = out {
                std::fs::write(path, format!("{}\n", made.token))
                    .with_context(|| format!("cannot write {}", path.display()))?;
            }
            audit::checkpoint::publish(&config.kafka, &mut made).await?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&made)?);
            } else {
                println!(
                    "checkpoint of entry {} (hash {}) signed by {} at {}, published to {}",
                    made.summary.seq,
                    made.summary.hash,
                    made.summary.authority,
                    made.summary.issued_at,
                    made.published_to.as_deref().unwrap_or("-")
                );
                if out.is_none() {
                    println!("{}", made.token);
                }
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
