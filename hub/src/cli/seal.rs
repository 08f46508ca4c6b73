//! `bohai seal ...`: the city PKI and electronic seals (电子印章): make the CA, issue and
//! import seals, show them and their images, sign and verify documents, revoke, and report
//! coverage.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use bohai_certs::{CheckResult, Report, SealImage, SealSignature, SealType, Verdict};
use chrono::{DateTime, Utc};
use clap::{Subcommand, ValueEnum};

use super::prepare;
use crate::config::Config;
use crate::seals::service::{sha256, write_private_file};
use crate::seals::{create_master_key, SealsService};

/// Exit code of `bohai seal verify` for an INVALID signature.
const EXIT_INVALID: i32 = 2;
/// Exit code of `bohai seal verify` for an INDETERMINATE one.
const EXIT_INDETERMINATE: i32 = 3;

/// `bohai seal ...`
#[derive(Debug, Subcommand)]
pub enum SealCommand {
    /// Create the city root CA and the issuing CA (and the master key file if missing).
    InitCa {
        /// Replace an existing CA: every existing seal then stops verifying.
        #[arg(long)]
        force: bool,
    },
    /// Write the root CA's private key (PKCS#8 PEM, mode 0600) for offline keeping.
    ExportRootKey {
        /// The file to write (must not exist).
        #[arg(short, long, value_name = "FILE")]
        output: PathBuf,
        /// Delete the root key from the hub once written.
        #[arg(long)]
        remove: bool,
    },
    /// Issue a new CRL of the city root (valid `pki.root_crl_validity`), with the root key the
    /// hub keeps or, where the key is kept off the hub, with `--root-key`. `bohai serve`
    /// reissues it by itself only while the hub has the key.
    RootCrl {
        /// The root key (PKCS#8 PEM, as `export-root-key` wrote it).
        #[arg(long, value_name = "FILE")]
        root_key: Option<PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke the city's issuing CA (its key compromised, say) and make a new one under the
    /// same root: every seal of the old CA is revoked with it and the root's CRL lists it, so
    /// that what those seals sealed verifies INVALID. Each department then needs a new seal
    /// (`seal issue`). Uses the root key the hub keeps or, where it is kept off the hub,
    /// `--root-key`.
    RevokeCa {
        /// CRL reason: key_compromise, ca_compromise, superseded, cessation_of_operation, ...
        #[arg(long)]
        reason: String,
        /// The root key (PKCS#8 PEM, as `export-root-key` wrote it).
        #[arg(long, value_name = "FILE")]
        root_key: Option<PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Issue a seal certificate and seal record for a department.
    Issue {
        /// Department code, e.g. market-regulation.
        dept: String,
        /// Seal name. Default `<department name>电子公章` (or 合同专用章 / 业务专用章).
        #[arg(long)]
        name: Option<String>,
        /// Kind of seal.
        #[arg(long = "type", value_enum, default_value = "official")]
        seal_type: SealTypeArg,
        /// Validity in days.
        #[arg(long, default_value_t = 730)]
        days: u32,
        /// The seal image (印模), PNG or SVG, at most 1 MiB. Default: the round official-seal
        /// SVG drawn from the department's name and the seal type.
        #[arg(long, value_name = "FILE.png|FILE.svg")]
        image: Option<PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Import a department's own seal certificate and key (PEM, PKCS#8), made by a CA that
    /// chains to a configured trust anchor. The certificate must name the department's
    /// registered credit code as its organizationIdentifier.
    Import {
        /// Department code.
        dept: String,
        /// The seal certificate, PEM.
        #[arg(long, value_name = "CERT.pem")]
        cert: PathBuf,
        /// The private key, PEM PKCS#8.
        #[arg(long, value_name = "KEY.pem")]
        key: PathBuf,
        /// Intermediate certificates, PEM.
        #[arg(long, value_name = "CHAIN.pem")]
        chain: Option<PathBuf>,
        /// Kind of seal.
        #[arg(long = "type", value_enum, default_value = "official")]
        seal_type: SealTypeArg,
        /// The seal image, PNG or SVG. Default: the round official-seal SVG.
        #[arg(long, value_name = "FILE.png|FILE.svg")]
        image: Option<PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Every seal (never a key).
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// One seal: certificate facts, chain, validity, state, seal record and image (never a key).
    Show {
        /// Seal id (from `bohai seal list`).
        seal: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write a seal's image (PNG or SVG, as stored) to a file.
    Image {
        /// Seal id.
        seal: String,
        /// The file to write. Default `SEAL.svg` or `SEAL.png`.
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Seal a file: a detached seal signature (PEM) with the department's newest valid seal.
    Sign {
        /// Department code.
        #[arg(long)]
        dept: String,
        /// The document.
        file: PathBuf,
        /// Where to write the signature. Default FILE.sig.
        #[arg(short, long, value_name = "SIG")]
        output: Option<PathBuf>,
    },
    /// Verify a seal signature over a file. Exit 0 only for VALID (2 INVALID, 3 INDETERMINATE).
    Verify {
        /// The document.
        file: PathBuf,
        /// The signature (PEM or DER).
        sig: PathBuf,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// Verify as of this time (RFC 3339). Default now.
        #[arg(long)]
        at: Option<DateTime<Utc>>,
    },
    /// Revoke a seal and reissue the CRL.
    Revoke {
        /// Seal id (from `bohai seal list`).
        seal: String,
        /// CRL reason: unspecified, key_compromise, ca_compromise, affiliation_changed,
        /// superseded, cessation_of_operation, privilege_withdrawn.
        #[arg(long)]
        reason: String,
    },
    /// Seal state of every department of the registry and the coverage percentage.
    Coverage {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Kind of seal on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SealTypeArg {
    /// 公章.
    Official,
    /// 合同专用章.
    Contract,
    /// 业务专用章.
    Business,
}

impl From<SealTypeArg> for SealType {
    fn from(t: SealTypeArg) -> Self {
        match t {
            SealTypeArg::Official => Self::Official,
            SealTypeArg::Contract => Self::Contract,
            SealTypeArg::Business => Self::Business,
        }
    }
}

fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

fn read_text(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

/// The seal image of `--image`, if given.
fn read_image(path: Option<&PathBuf>) -> anyhow::Result<Option<SealImage>> {
    path.map(|p| {
        SealImage::from_bytes(read(p)?)
            .with_context(|| format!("{} cannot be a seal image", p.display()))
    })
    .transpose()
}

/// Records the operator's seal or CA act `action` on `subject` (a seal id) in the audit log,
/// with the person running the command (`bohai --actor`).
async fn record(
    db: &sqlx::PgPool,
    action: &str,
    subject: Option<&str>,
    detail: serde_json::Value,
) -> Result<i64, sqlx::Error> {
    let mut entry = crate::audit::Entry::new(crate::audit::OPERATOR, action).detail(&detail);
    if let Some(s) = subject {
        entry = entry.subject(s);
    }
    entry.append_to(db).await
}

pub(super) async fn run(config: &Config, command: &SealCommand) -> anyhow::Result<()> {
    let (db, registry) = prepare(config).await?;
    let pki = &config.pki;
    let now = Utc::now();
    let department = |code: &str| {
        registry
            .department(code)
            .cloned()
            .ok_or_else(|| crate::seals::SealsError::UnknownDepartment(code.to_owned()))
    };
    match command {
        SealCommand::InitCa { force } => {
            let (master, created) = create_master_key(&pki.master_key_file)?;
            if created {
                eprintln!(
                    "created the master key file {} (mode 0600): keep a copy, no seal signs without it",
                    pki.master_key_file.display()
                );
            }
            let made = SealsService::with_key(&db, pki, master)
                .init_ca(*force, now)
                .await?;
            record(
                &db,
                "ca.init",
                None,
                serde_json::json!({"force": force, "crl_number": made.crl_number}),
            )
            .await?;
            print!("{}{}", made.root_pem, made.issuing_pem);
            eprintln!(
                "city root and issuing CA made; CRL {} issued",
                made.crl_number
            );
        }
        SealCommand::ExportRootKey { output, remove } => {
            let service = SealsService::with_master_key(&db, pki)?;
            let pem = service.export_root_key(false).await?;
            write_private_file(output, pem.expose_secret())
                .with_context(|| format!("cannot write {}", output.display()))?;
            record(
                &db,
                "ca.export_root_key",
                None,
                serde_json::json!({"removed": remove, "to": output}),
            )
            .await?;
            if *remove {
                service.export_root_key(true).await?;
                eprintln!(
                    "root key written to {} and removed from the hub",
                    output.display()
                );
            } else {
                eprintln!("root key written to {}", output.display());
            }
        }
        SealCommand::RevokeCa {
            reason,
            root_key,
            json,
        } => {
            let reason_text = reason;
            let reason = crate::seals::service::parse_reason(reason)?;
            let key = read_root_key(root_key.as_deref())?;
            let key_pem = key
                .as_ref()
                .map(|k| std::str::from_utf8(k.expose_secret()))
                .transpose()
                .context("the root key file is not PEM text")?;
            let done = SealsService::with_master_key(&db, pki)?
                .revoke_issuing_ca(reason, now, key_pem)
                .await?;
            record(
                &db,
                "ca.revoke_issuing",
                None,
                serde_json::json!({
                    "reason": reason_text,
                    "revoked_serial": done.revoked_serial,
                    "seals_revoked": done.seals_revoked,
                    "records_remade": done.records_remade,
                    "root_crl_number": done.root_crl_number,
                    "crl_number": done.crl_number,
                    "offline_key": key_pem.is_some(),
                }),
            )
            .await?;
            if *json {
                println!(
                    "{}",
                    serde_json::json!({
                        "revoked_serial": done.revoked_serial,
                        "issuing_pem": done.issuing_pem,
                        "seals_revoked": done.seals_revoked,
                        "records_remade": done.records_remade,
                        "root_crl_number": done.root_crl_number,
                        "crl_number": done.crl_number,
                    })
                );
            } else {
                print!("{}", done.issuing_pem);
                eprintln!(
                    "issuing CA {} revoked ({reason_text}) and replaced; root CRL {} and CRL {} issued; {} seals revoked with it.\nNext: `bohai seal issue {}` first (the licence status list and trust bundle are sealed with it: until then online licence verification fails), then a new seal for each department that seals (`bohai seal issue DEPT`); the records of {} imported seals were made again by the new CA",
                    done.revoked_serial,
                    done.root_crl_number,
                    done.crl_number,
                    done.seals_revoked,
                    config.licences.status_authority,
                    done.records_remade
                );
            }
        }
        SealCommand::RootCrl { root_key, json } => {
            let key = read_root_key(root_key.as_deref())?;
            let key_pem = key
                .as_ref()
                .map(|k| std::str::from_utf8(k.expose_secret()))
                .transpose()
                .context("the root key file is not PEM text")?;
            let service = match key_pem {
                Some(_) => SealsService::public(&db, pki),
                None => SealsService::with_master_key(&db, pki)?,
            };
            let crl = service.reissue_root_crl(now, key_pem).await?;
            record(
                &db,
                "ca.root_crl",
                None,
                serde_json::json!({"crl_number": crl.number, "next_update": crl.next_update, "offline_key": key_pem.is_some()}),
            )
            .await?;
            if *json {
                println!(
                    "{}",
                    serde_json::json!({
                        "crl_number": crl.number,
                        "this_update": crl.this_update,
                        "next_update": crl.next_update,
                    })
                );
            } else {
                println!(
                    "root CRL {} issued, valid until {}",
                    crl.number,
                    crl.next_update.to_rfc3339()
                );
            }
        }
        SealCommand::Issue {
            dept,
            name,
            seal_type,
            days,
            image,
            json,
        } => {
            let dept = department(dept)?;
            let image = read_image(image.as_ref())?;
            let seal = SealsService::with_master_key(&db, pki)?
                .issue(
                    &dept,
                    name.as_deref(),
                    (*seal_type).into(),
                    *days,
                    image,
                    now,
                )
                .await?;
            record(
                &db,
                "seal.issue",
                Some(&seal.seal_id),
                serde_json::json!({"department": dept.code}),
            )
            .await?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&seal)?);
            } else {
                println!(
                    "{}  {}  valid {} .. {}",
                    seal.seal_id, seal.name, seal.not_before, seal.not_after
                );
            }
        }
        SealCommand::Import {
            dept,
            cert,
            key,
            chain,
            seal_type,
            image,
            json,
        } => {
            let dept = department(dept)?;
            let image = read_image(image.as_ref())?;
            let chain = match chain {
                Some(p) => vec![read_text(p)?],
                None => Vec::new(),
            };
            let seal = SealsService::with_master_key(&db, pki)?
                .import(
                    &dept,
                    read_text(cert)?,
                    read_text(key)?,
                    chain,
                    (*seal_type).into(),
                    image,
                    now,
                )
                .await?;
            record(
                &db,
                "seal.import",
                Some(&seal.seal_id),
                serde_json::json!({"department": dept.code}),
            )
            .await?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&seal)?);
            } else {
                println!("{}  {}  imported", seal.seal_id, seal.name);
            }
        }
        SealCommand::List { json } => {
            let seals = SealsService::public(&db, pki).list(now).await?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&seals)?);
            } else {
                println!(
                    "{:<40} {:<24} {:<9} {:<12} {:<10} NAME",
                    "SEAL", "DEPARTMENT", "TYPE", "NOT AFTER", "STATE"
                );
                for s in &seals {
                    println!(
                        "{:<40} {:<24} {:<9} {:<12} {:<10} {}",
                        s.seal_id,
                        s.department,
                        s.seal_type,
                        s.not_after.format("%Y-%m-%d"),
                        serde_json::to_value(s.state)?.as_str().unwrap_or("?"),
                        s.name
                    );
                }
            }
        }
        SealCommand::Show { seal, json } => {
            let details = SealsService::public(&db, pki).show(seal, now).await?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&details)?);
            } else {
                print_details(&details)?;
            }
        }
        SealCommand::Image { seal, output } => {
            let image = SealsService::public(&db, pki).image(seal).await?;
            let output = output.clone().unwrap_or_else(|| {
                PathBuf::from(format!("{seal}.{}", image.image_type().extension()))
            });
            std::fs::write(&output, image.bytes())
                .with_context(|| format!("cannot write {}", output.display()))?;
            eprintln!(
                "{} ({}, {} bytes) written to {}",
                seal,
                image.image_type().media_type(),
                image.bytes().len(),
                output.display()
            );
        }
        SealCommand::Sign { dept, file, output } => {
            let dept = department(dept)?;
            let service = SealsService::with_master_key(&db, pki)?;
            let seal_id = service.newest_valid_seal(&dept.code, now).await?;
            let digest = sha256(&read(file)?);
            let sig = service.sign(&seal_id, digest, now).await?;
            record(
                &db,
                "seal.sign",
                Some(&seal_id),
                serde_json::json!({"department": dept.code, "document_sha256": crate::seals::service::hex_lower(&digest)}),
            )
            .await?;
            let output = output.clone().unwrap_or_else(|| {
                let mut name = file.as_os_str().to_owned();
                name.push(".sig");
                PathBuf::from(name)
            });
            std::fs::write(&output, sig.to_pem()?)
                .with_context(|| format!("cannot write {}", output.display()))?;
            eprintln!(
                "sealed {} with {seal_id}: {}",
                file.display(),
                output.display()
            );
        }
        SealCommand::Verify {
            file,
            sig,
            json,
            at,
        } => {
            let bytes = read(sig)?;
            let der = match std::str::from_utf8(&bytes) {
                Ok(text) if text.trim_start().starts_with("-----BEGIN") => {
                    SealSignature::from_pem(text)
                        .with_context(|| format!("{} is not a seal signature", sig.display()))?
                        .to_der()?
                }
                _ => bytes,
            };
            let report = SealsService::public(&db, pki)
                .verify(sha256(&read(file)?), &der, at.unwrap_or(now))
                .await?;
            exit_with_report(&report, *json)?;
        }
        SealCommand::Revoke { seal, reason } => {
            let reason_text = reason;
            let reason = crate::seals::service::parse_reason(reason)?;
            let crl = SealsService::with_master_key(&db, pki)?
                .revoke(seal, reason, now)
                .await?;
            record(
                &db,
                "seal.revoke",
                Some(seal),
                serde_json::json!({"reason": reason_text, "crl_number": crl.number}),
            )
            .await?;
            println!("revoked {seal}; CRL {} issued", crl.number);
        }
        SealCommand::Coverage { json } => {
            let coverage = SealsService::public(&db, pki).coverage(now).await?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&coverage)?);
            } else {
                for d in &coverage.departments {
                    println!(
                        "{:<28} {:<9} {:<12} {}",
                        d.department,
                        serde_json::to_value(d.state)?.as_str().unwrap_or("?"),
                        d.not_after
                            .map(|t| t.format("%Y-%m-%d").to_string())
                            .unwrap_or_default(),
                        d.name_zh
                    );
                }
                println!(
                    "coverage {:.1}% ({} valid, {} expiring, {} expired, {} revoked, {} none of {})",
                    coverage.coverage_percent,
                    coverage.valid,
                    coverage.expiring,
                    coverage.expired,
                    coverage.revoked,
                    coverage.none,
                    coverage.departments_total
                );
            }
        }
    }
    Ok(())
}

fn print_details(d: &crate::seals::SealDetails) -> anyhow::Result<()> {
    let s = &d.seal;
    let state = serde_json::to_value(s.state)?;
    println!(
        "seal        {}  ({})",
        s.seal_id,
        state.as_str().unwrap_or("?")
    );
    println!("name        {}", s.name);
    println!("department  {}", s.department);
    println!("type        {}", s.seal_type);
    println!("valid       {} .. {}", s.not_before, s.not_after);
    println!("imported    {}", s.imported);
    if let (Some(at), Some(reason)) = (s.revoked_at, &s.revocation_reason) {
        println!("revoked     {at} ({reason})");
    }
    let c = &d.certificate;
    println!("certificate");
    println!("  subject   {}", c.subject);
    println!("  issuer    {}", c.issuer);
    println!("  serial    {}", c.serial_hex);
    println!("  valid     {} .. {}", c.not_before, c.not_after);
    println!("  key       {}", c.public_key);
    println!("  usage     {}", c.key_usage.join(", "));
    println!("  ext usage {}", c.extended_key_usage.join(", "));
    println!("  sha256    {}", c.sha256_fingerprint);
    for url in &c.crl_distribution_points {
        println!("  CRL at    {url}");
    }
    for (i, ca) in d.chain.iter().enumerate() {
        println!("chain #{}    {} (issuer {})", i + 1, ca.subject, ca.issuer);
    }
    let r = &d.record;
    println!("record");
    println!("  seal id   {}", r.seal_id);
    println!("  made      {} by {}", r.create_date, r.maker);
    println!(
        "  maker signature {}",
        if r.maker_signature_valid {
            "verifies"
        } else {
            "DOES NOT VERIFY"
        }
    );
    println!("  cert      sha256 {}", r.cert_digest);
    println!(
        "  picture   sha256 {} {}",
        r.picture_digest,
        r.picture_type.as_deref().unwrap_or("")
    );
    match &d.image {
        Some(i) => println!(
            "image       {} {} bytes, sha256 {} ({})",
            i.media_type,
            i.size,
            i.sha256,
            if i.matches_record {
                "matches the record"
            } else {
                "DOES NOT MATCH the record"
            }
        ),
        None => println!("image       none stored"),
    }
    Ok(())
}

/// Prints a verification report (JSON or lines) and exits 0 only for VALID (2 INVALID,
/// 3 INDETERMINATE): shared by seal and licence verification.
pub(super) fn exit_with_report(report: &Report, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(report)?);
    } else {
        print_report(report)?;
        if let Some(t) = report.status_as_of {
            println!("  status as of {t}");
        }
    }
    std::io::stdout().flush()?;
    match report.overall {
        Verdict::Valid => Ok(()),
        Verdict::Invalid => std::process::exit(EXIT_INVALID),
        Verdict::Indeterminate => std::process::exit(EXIT_INDETERMINATE),
    }
}

fn print_report(report: &Report) -> anyhow::Result<()> {
    println!(
        "{}  (checked at {})",
        serde_json::to_value(report.overall)?
            .as_str()
            .unwrap_or("?"),
        report.checked_at
    );
    for c in &report.checks {
        let mark = match c.result {
            CheckResult::Pass => "ok  ",
            CheckResult::Fail => "FAIL",
            CheckResult::Indeterminate => "??  ",
            CheckResult::Skipped => "skip",
        };
        println!(
            "  {mark} {:<20} {:<28} {} / {}",
            c.check,
            c.code.as_str(),
            c.message_zh,
            c.message_en
        );
    }
    Ok(())
}

/// The root key file `--root-key` names, if any, read into a zeroized buffer.
fn read_root_key(
    path: Option<&std::path::Path>,
) -> anyhow::Result<Option<bohai_certs::secret::SecretBytes>> {
    path.map(|path| {
        std::fs::read(path)
            .map(bohai_certs::secret::SecretBytes::new)
            .with_context(|| format!("cannot read {}", path.display()))
    })
    .transpose()
}
