//! `bohai licence ...`: issue, import, renew, replace, revoke, suspend, resume, show and
//! verify electronic licences (电子证照).

use std::io::{BufRead, Write as _};
use std::path::PathBuf;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;

use super::prepare;
use super::seal::exit_with_report;
use crate::config::Config;
use crate::licences::service::{Actor, LicenceState, SealedBatch};
use crate::licences::{IssueRequest, IssuedLicence, LicenceEvent, LicenceService, LicenceView};

/// Licences per transaction when importing.
const IMPORT_CHUNK: usize = 10_000;

/// `bohai licence ...`
#[derive(Debug, Subcommand)]
pub enum LicenceCommand {
    /// Issue a licence: validate the holder and fields, number it and seal it.
    Issue {
        /// Licence type id, e.g. driving-licence.
        #[arg(long = "type")]
        licence_type: String,
        /// JSON file `{"holder": {...}, "fields": {...}}` as the type's schema describes.
        #[arg(long, value_name = "FILE")]
        holder: PathBuf,
        /// Start of validity (RFC 3339). Default now.
        #[arg(long)]
        valid_from: Option<DateTime<Utc>>,
        /// End of validity (RFC 3339). Default: the type's default validity.
        #[arg(long)]
        valid_until: Option<DateTime<Utc>>,
        /// Write the sealed licence (JWS) to this file.
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
        #[command(flatten)]
        discipline: OverrideArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write N realistic licence requests of a type as JSON Lines (input for `import`):
    /// fresh names, valid identity numbers and credit codes, Panjin addresses.
    Gen {
        /// Licence type id.
        #[arg(long = "type")]
        licence_type: String,
        /// How many.
        count: u64,
        /// The file to write.
        #[arg(short, long, value_name = "FILE")]
        output: PathBuf,
        /// Random seed (the same seed gives the same file).
        #[arg(long, default_value_t = 2026)]
        seed: u64,
    },
    /// Import licences in bulk from JSON Lines (one `{"type", "holder", "fields",
    /// "valid_from"?, "valid_until"?}` a line), with a progress bar.
    Import {
        /// The file.
        file: PathBuf,
        /// Also write every sealed licence (one JWS a line) to this file, e.g. to hand the
        /// documents back to the system they came from.
        #[arg(long, value_name = "FILE")]
        documents: Option<PathBuf>,
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Renew: a new version with a new validity; the previous version is superseded.
    Renew {
        /// Licence number.
        number: String,
        /// End of the new validity. Default: the type's default validity from now.
        #[arg(long)]
        valid_until: Option<DateTime<Utc>>,
        #[command(flatten)]
        discipline: OverrideArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Replace a lost or damaged licence: a new number; the old one is revoked (`replaced`).
    Replace {
        /// Licence number.
        number: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a licence.
    Revoke {
        /// Licence number.
        number: String,
        /// Why.
        #[arg(long)]
        reason: String,
    },
    /// Suspend a licence.
    Suspend {
        /// Licence number.
        number: String,
        /// Why.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Resume a suspended licence.
    Resume {
        /// Licence number.
        number: String,
    },
    /// A licence with every version and its history.
    Show {
        /// Licence number.
        number: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Verify a licence (a JWS file): online against the hub's status list, or offline with a
    /// trust bundle and the pinned city root. Exit 0 only for VALID (2 INVALID,
    /// 3 INDETERMINATE).
    Verify {
        /// The licence file (compact JWS).
        file: PathBuf,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// Verify as of this time (RFC 3339). Default now.
        #[arg(long)]
        at: Option<DateTime<Utc>>,
        /// Verify offline with this trust bundle (`bohai licence bundle`); needs `--root`.
        #[arg(long, value_name = "BUNDLE", requires = "root")]
        offline: Option<PathBuf>,
        /// The pinned city root certificate (PEM) for offline verification: the bundle's
        /// signer must be a seal under it.
        #[arg(long, value_name = "ROOT.pem")]
        root: Option<PathBuf>,
        /// Roots of departments' own CAs (PEM) whose seals are accepted on licences offline,
        /// as the hub's `pki.trust_anchors`; they never vouch for the bundle itself.
        #[arg(long, value_name = "PEM", requires = "offline")]
        operator_roots: Option<PathBuf>,
        /// A CRL fetched apart from the bundle (DER or PEM: `GET /api/v1/pki/crl`,
        /// `/api/v1/pki/root-crl`); repeat for each. Beside the bundle's, the newest of each
        /// issuer decides: a revocation newer than the bundle's CRLs reaches the verifier.
        #[arg(long, value_name = "FILE", requires = "offline")]
        crl: Vec<PathBuf>,
    },
    /// Render a licence's compact form as a QR code (PNG or SVG by the file's extension),
    /// verifiable offline with the trust bundle.
    Qr {
        /// Licence number.
        number: String,
        /// The image to write: FILE.png or FILE.svg.
        #[arg(short, long, value_name = "FILE")]
        output: PathBuf,
        /// Also write the QR payload text to this file.
        #[arg(long, value_name = "FILE")]
        payload: Option<PathBuf>,
    },
    /// Write the signed offline trust bundle: trust anchors, seal certificates, CRL, status
    /// list and licence types.
    Bundle {
        /// The file to write.
        #[arg(short, long, value_name = "FILE")]
        output: PathBuf,
    },
    /// Record the expiry of every licence whose validity ended (`bohai serve` does this
    /// every minute).
    Expire,
    /// List the licence types: issuer, number prefix, holder kind, default validity, and the
    /// fields a subscription to the type may be granted.
    Types {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Runs a licence command.
/// An officer's override of a joint-discipline refusal (`issue`, `renew`), where the type
/// allows one; the officer is `bohai --actor NAME` (or the login name).
#[derive(Debug, Args)]
pub struct OverrideArgs {
    /// Issue despite the entries named by `--override-entry`: why. Recorded with the licence.
    #[arg(long, value_name = "REASON", requires = "override_entries")]
    override_reason: Option<String>,
    /// An entry the override covers, as the refusal named it; once per entry, every entry
    /// the refusal named.
    #[arg(long = "override-entry", value_name = "ENTRY")]
    override_entries: Vec<String>,
}

impl OverrideArgs {
    fn to_override(&self) -> Option<crate::licences::DisciplineOverride> {
        self.override_reason
            .as_ref()
            .map(|reason| crate::licences::DisciplineOverride {
                reason: reason.clone(),
                entries: self.override_entries.clone(),
            })
    }
}

pub(super) async fn run(config: &Config, command: &LicenceCommand) -> anyhow::Result<()> {
    if let LicenceCommand::Gen {
        licence_type,
        count,
        output,
        seed,
    } = command
    {
        return generate(config, licence_type, *count, output, *seed);
    }
    if let LicenceCommand::Types { json } = command {
        return list_types(config, *json);
    }
    if let LicenceCommand::Verify {
        file,
        json,
        at,
        offline: Some(bundle),
        root: Some(root),
        operator_roots,
        crl,
    } = command
    {
        let pinned = Pinned {
            city_root: root,
            operator_roots: operator_roots.as_ref(),
            crls: crl,
        };
        return verify_offline(config, file, bundle, &pinned, *at, *json);
    }
    let (db, registry) = prepare(config).await?;
    let state = LicenceState::default();
    let with_keys = matches!(
        command,
        LicenceCommand::Issue { .. }
            | LicenceCommand::Import { .. }
            | LicenceCommand::Renew { .. }
            | LicenceCommand::Replace { .. }
            | LicenceCommand::Qr { .. }
            | LicenceCommand::Bundle { .. }
    );
    let service = LicenceService::new(&db, &registry, config, &state, with_keys)?;
    let actor = Actor::current_operator();
    let now = Utc::now();
    match command {
        LicenceCommand::Issue {
            licence_type,
            holder,
            valid_from,
            valid_until,
            output,
            discipline,
            json,
        } => {
            let text = std::fs::read_to_string(holder)
                .with_context(|| format!("cannot read {}", holder.display()))?;
            let subject: Value = serde_json::from_str(&text)
                .with_context(|| format!("{} is not JSON", holder.display()))?;
            let department = registry
                .licence_type(licence_type)
                .map(|t| t.department.clone())
                .with_context(|| format!("unknown licence type `{licence_type}`"))?;
            let request = IssueRequest {
                licence_type: licence_type.clone(),
                holder: subject.get("holder").cloned().unwrap_or(Value::Null),
                fields: subject.get("fields").cloned().unwrap_or(Value::Null),
                valid_from: *valid_from,
                valid_until: *valid_until,
                discipline_override: discipline.to_override(),
            };
            let issued = service.issue(&actor, &department, request, now).await?;
            finish_issued(&issued, output.as_ref(), *json)?;
        }
        LicenceCommand::Import {
            file,
            documents,
            json,
        } => import(&service, &registry, &actor, file, documents.as_ref(), *json).await?,
        LicenceCommand::Renew {
            number,
            valid_until,
            discipline,
            json,
        } => {
            let issued = service
                .renew(
                    &actor,
                    number,
                    (*valid_until, discipline.to_override()),
                    now,
                )
                .await?;
            finish_issued(&issued, None, *json)?;
        }
        LicenceCommand::Replace { number, json } => {
            let issued = service.replace(&actor, number, now).await?;
            finish_issued(&issued, None, *json)?;
        }
        LicenceCommand::Revoke { number, reason } => {
            let v = service
                .transition(&actor, number, LicenceEvent::Revoked, Some(reason), now)
                .await?;
            println!("{}/v{} is now {}", v.number, v.version, v.state);
        }
        LicenceCommand::Suspend { number, reason } => {
            let v = service
                .transition(
                    &actor,
                    number,
                    LicenceEvent::Suspended,
                    reason.as_deref(),
                    now,
                )
                .await?;
            println!("{}/v{} is now {}", v.number, v.version, v.state);
        }
        LicenceCommand::Resume { number } => {
            let v = service
                .transition(&actor, number, LicenceEvent::Resumed, None, now)
                .await?;
            println!("{}/v{} is now {}", v.number, v.version, v.state);
        }
        LicenceCommand::Show { number, json } => {
            let view = service.show(number, now).await?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&view)?);
            } else {
                print_view(&view);
            }
        }
        LicenceCommand::Qr {
            number,
            output,
            payload,
        } => {
            let text = service.qr_payload(number, now).await?;
            let code = crate::licences::qr::symbol(&text)?;
            let image = match output.extension().and_then(|e| e.to_str()) {
                Some("svg") => crate::licences::qr::svg(&code).into_bytes(),
                Some("png") => crate::licences::qr::png(&code)?,
                _ => anyhow::bail!("{}: the QR file must end in .png or .svg", output.display()),
            };
            std::fs::write(output, image)
                .with_context(|| format!("cannot write {}", output.display()))?;
            if let Some(p) = payload {
                std::fs::write(p, &text)
                    .with_context(|| format!("cannot write {}", p.display()))?;
            }
            println!(
                "{}: QR version {:?}, {} modules a side, payload {} characters",
                output.display(),
                code.version(),
                code.width(),
                text.len()
            );
        }
        LicenceCommand::Bundle { output } => {
            let bundle = service.bundle(now).await?;
            std::fs::write(output, &bundle)
                .with_context(|| format!("cannot write {}", output.display()))?;
            println!(
                "trust bundle written to {} ({} bytes)",
                output.display(),
                bundle.len()
            );
        }
        LicenceCommand::Verify { file, json, at, .. } => {
            let document = std::fs::read_to_string(file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let report = service
                .verify(&[document.trim().to_owned()], at.unwrap_or(now))
                .await?
                .pop()
                .context("no report")?;
            exit_with_report(&report, *json)?;
        }
        LicenceCommand::Expire => {
            let n = service.expire_due(now).await?;
            println!("{n} licence(s) expired");
        }
        // Answered above, without the database.
        LicenceCommand::Gen { .. } | LicenceCommand::Types { .. } => {}
    }
    Ok(())
}

/// Writes `count` generated licence requests of one type.
/// `bohai licence types`.
fn list_types(config: &Config, json: bool) -> anyhow::Result<()> {
    let registry = crate::registry::load(&config.registry)?;
    let types = crate::licences::types::views(&registry);
    if json {
        println!("{}", serde_json::to_string_pretty(&types)?);
        return Ok(());
    }
    println!(
        "{:<26} {:<6} {:<26} {:<12} {:<10} TITLE",
        "TYPE", "PREFIX", "ISSUER", "HOLDER", "VALIDITY"
    );
    for t in &types {
        println!(
            "{:<26} {:<6} {:<26} {:<12} {:<10} {}",
            t.id, t.number_prefix, t.department, t.holder_kind, t.default_validity, t.title_zh
        );
    }
    Ok(())
}

fn generate(
    config: &Config,
    licence_type: &str,
    count: u64,
    output: &PathBuf,
    seed: u64,
) -> anyhow::Result<()> {
    let registry = crate::registry::load(&config.registry)?;
    let t = registry
        .licence_type(licence_type)
        .with_context(|| format!("unknown licence type `{licence_type}`"))?;
    let mut generator = crate::gen::Generator::for_licence_type(t, seed, 0.0)?;
    let file = std::fs::File::create(output)
        .with_context(|| format!("cannot create {}", output.display()))?;
    let mut out = std::io::BufWriter::new(file);
    let bar = ProgressBar::new(count);
    for _ in 0..count {
        let mut subject = generator.next_record().record;
        let line = serde_json::json!({
            "type": licence_type,
            "holder": subject.remove("holder").unwrap_or_default(),
            "fields": subject.remove("fields").unwrap_or_default(),
        });
        serde_json::to_writer(&mut out, &line)?;
        out.write_all(b"\n")?;
        bar.inc(1);
    }
    out.flush()?;
    bar.finish_and_clear();
    println!(
        "wrote {count} {licence_type} requests to {}",
        output.display()
    );
    Ok(())
}

/// The files of what an offline verifier pins (`licence verify --offline`).
struct Pinned<'a> {
    city_root: &'a PathBuf,
    operator_roots: Option<&'a PathBuf>,
    crls: &'a [PathBuf],
}

/// Offline verification: no database, no network; the bundle and the pinned root only.
fn verify_offline(
    config: &Config,
    file: &PathBuf,
    bundle: &PathBuf,
    pinned: &Pinned<'_>,
    at: Option<DateTime<Utc>>,
    json: bool,
) -> anyhow::Result<()> {
    let read = |p: &PathBuf| {
        std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))
    };
    let registry = crate::registry::load(&config.registry)?;
    let authority = registry
        .department(&config.licences.status_authority)
        .with_context(|| {
            format!(
                "licences.status_authority `{}` is not in the registry",
                config.licences.status_authority
            )
        })?;
    let policy = bohai_certs::licence::LicencePolicy {
        clock_skew: chrono::Duration::from_std(config.licences.clock_skew)?,
        ..Default::default()
    };
    let operators = pinned
        .operator_roots
        .map(read)
        .transpose()?
        .unwrap_or_default();
    let crls = super::read_crl_files(pinned.crls)?;
    let verifier = crate::licences::bundle::OfflineVerifier::load(
        &read(bundle)?,
        crate::licences::bundle::PinnedTrust {
            city_root: &read(pinned.city_root)?,
            operator_roots: &operators,
            crls: &crls,
        },
        &authority.credit_code,
        policy,
        Utc::now(),
    )?;
    let report = verifier.verify(read(file)?.trim(), at.unwrap_or_else(Utc::now));
    exit_with_report(&report, json)
}

fn finish_issued(
    issued: &IssuedLicence,
    output: Option<&PathBuf>,
    json: bool,
) -> anyhow::Result<()> {
    if let Some(path) = output {
        std::fs::write(path, &issued.document)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if json {
        println!("{}", serde_json::to_string_pretty(issued)?);
    } else {
        println!(
            "{}/v{}  valid {} to {}  status index {}{}",
            issued.number,
            issued.version,
            issued.valid_from,
            issued.valid_until,
            issued.status_index,
            output
                .map(|p| format!("  written to {}", p.display()))
                .unwrap_or_default()
        );
    }
    Ok(())
}

fn print_view(view: &LicenceView) {
    for v in &view.versions {
        println!(
            "{}/v{}  {:<10} {:<24} {}  valid {} to {}  seal {}{}{}",
            v.number,
            v.version,
            v.state,
            v.licence_type,
            v.holder_name,
            v.valid_from.format("%Y-%m-%d"),
            v.valid_until.format("%Y-%m-%d"),
            v.seal_id,
            v.successor
                .as_ref()
                .map(|s| format!("  → {s}"))
                .unwrap_or_default(),
            v.revocation_reason
                .as_ref()
                .map(|r| format!("  ({r})"))
                .unwrap_or_default(),
        );
    }
    for e in &view.events {
        println!(
            "  {}  v{} {:<9} by {}{}",
            e.at,
            e.version,
            e.event.as_str(),
            e.actor,
            e.reason
                .as_ref()
                .map(|r| format!(": {r}"))
                .unwrap_or_default()
        );
    }
    for o in &view.discipline_overrides {
        let entries: Vec<&str> = o.matches.iter().map(|m| m.entry.as_str()).collect();
        println!(
            "  v{} issued despite joint discipline ({}) by officer {} ({}) at {}: {}",
            o.version,
            entries.join(", "),
            o.officer,
            o.actor,
            o.at,
            o.reason
        );
    }
}

/// Imports a JSON Lines file in chunks, each sealed and stored as one batch. A bad line is
/// reported with its number and reasons and the import goes on.
async fn import(
    service: &LicenceService<'_>,
    registry: &bohai_schemas::Registry,
    actor: &Actor,
    file: &PathBuf,
    documents: Option<&PathBuf>,
    json: bool,
) -> anyhow::Result<()> {
    let mut documents = match documents {
        Some(p) => Some(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("cannot create {}", p.display()))?,
        )),
        None => None,
    };
    // Streamed: a registry of millions of licences is read a line at a time, after one quick
    // pass that counts the lines for the progress bar.
    let open = || {
        std::fs::File::open(file)
            .map(std::io::BufReader::new)
            .with_context(|| format!("cannot open {}", file.display()))
    };
    let mut total = 0usize;
    for line in open()?.lines() {
        let line = line.with_context(|| format!("cannot read {}", file.display()))?;
        if !line.trim().is_empty() {
            total += 1;
        }
    }
    // On standard error, and only when it is a terminal: `--json` output on standard output
    // stays clean, and a benchmark run by hand still shows its progress.
    let bar = ProgressBar::new(u64::try_from(total).unwrap_or(0));
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} licences  {per_sec}  eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let now = Utc::now();
    let handle = tokio::runtime::Handle::current();
    // Two threads, one batch apart: this one reads, plans and seals (on both cores); the
    // other stores, so that PostgreSQL writes one batch while the next is sealed.
    let (issued, mut rejected) = tokio::task::block_in_place(|| {
        std::thread::scope(|scope| -> anyhow::Result<(usize, Vec<Value>)> {
            let (to_store, sealed) =
                std::sync::mpsc::sync_channel::<(Vec<usize>, SealedBatch<'_>)>(1);
            let documents = documents.as_mut();
            let handle_ref = &handle;
            let storer =
                scope.spawn(move || store_batches(service, actor, handle_ref, sealed, documents));
            let read = read_and_seal(
                service,
                registry,
                actor,
                &handle,
                open()?,
                &bar,
                &to_store,
                now,
            );
            // Dropping the sender ends the storer; its error (if any) is why reading stopped.
            drop(to_store);
            let (issued, store_rejects) = storer
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))?;
            let mut rejected = read?;
            rejected.extend(store_rejects);
            Ok((issued, rejected))
        })
    })?;
    rejected.sort_by_key(|r| r["line"].as_u64());
    if let Some(d) = documents.as_mut() {
        d.flush()?;
    }
    bar.finish();
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "read": total, "issued": issued, "rejected": rejected.len(), "rejects": rejected
            }))?
        );
    } else {
        for r in &rejected {
            eprintln!("line {}: {}", r["line"], r["error"].as_str().unwrap_or("?"));
        }
        println!("read {total}, issued {issued}, rejected {}", rejected.len());
    }
    Ok(())
}

/// Licences per batch when importing (one department's, sealed and stored together).
const IMPORT_BATCH: usize = 2_500;

/// What goes from the sealing thread to the storing thread: the batch's line numbers and the
/// batch.
type ToStore<'a> = std::sync::mpsc::SyncSender<(Vec<usize>, SealedBatch<'a>)>;

/// Reads the file, refusing unreadable lines and unknown types, and sends the rest, planned
/// and sealed, in batches of one department each (grouped within chunks of
/// [`IMPORT_CHUNK`] lines), to the storing thread. Returns the refused lines.
#[allow(clippy::too_many_arguments)]
fn read_and_seal<'a>(
    service: &LicenceService<'a>,
    registry: &bohai_schemas::Registry,
    actor: &Actor,
    handle: &tokio::runtime::Handle,
    reader: impl BufRead,
    bar: &ProgressBar,
    to_store: &ToStore<'a>,
    now: DateTime<Utc>,
) -> anyhow::Result<Vec<Value>> {
    let mut rejected: Vec<Value> = Vec::new();
    let mut pending: Vec<(usize, String, IssueRequest)> = Vec::new();
    for (i, line) in reader.lines().enumerate() {
        let line_no = i + 1;
        let line = match line {
            Ok(l) => l,
            Err(e) => {
                // Not UTF-8, say: this line is refused, the rest goes on.
                rejected.push(
                    serde_json::json!({"line": line_no, "error": format!("unreadable line: {e}")}),
                );
                continue;
            }
        };
        if line.trim().is_empty() {
            continue;
        }
        bar.inc(1);
        match serde_json::from_str::<IssueRequest>(&line) {
            Err(e) => rejected.push(serde_json::json!({"line": line_no, "error": e.to_string()})),
            Ok(r) => match registry.licence_type(&r.licence_type) {
                None => rejected.push(serde_json::json!({
                    "line": line_no, "error": format!("unknown licence type `{}`", r.licence_type)
                })),
                Some(t) => pending.push((line_no, t.department.clone(), r)),
            },
        }
        if pending.len() >= IMPORT_CHUNK
            && !seal_chunk(service, actor, handle, &mut pending, to_store, now)?
        {
            // The storing thread stopped; its error is reported, and nothing more is read.
            return Ok(rejected);
        }
    }
    seal_chunk(service, actor, handle, &mut pending, to_store, now)?;
    Ok(rejected)
}

/// Plans and seals the pending lines in batches of one department each and hands each
/// batch to the storing thread (waiting while it still stores the one before). `false` when
/// the storing thread has stopped.
fn seal_chunk<'a>(
    service: &LicenceService<'a>,
    actor: &Actor,
    handle: &tokio::runtime::Handle,
    pending: &mut Vec<(usize, String, IssueRequest)>,
    to_store: &ToStore<'a>,
    now: DateTime<Utc>,
) -> anyhow::Result<bool> {
    let mut all = std::mem::take(pending);
    all.sort_by(|a, b| a.1.cmp(&b.1).then(a.0.cmp(&b.0)));
    let mut rest = all.into_iter().peekable();
    while let Some((_, dept, _)) = rest.peek() {
        let dept = dept.clone();
        let mut lines = Vec::new();
        let mut requests = Vec::new();
        while let Some((line_no, _, request)) = rest.next_if(|p| p.1 == dept) {
            lines.push(line_no);
            requests.push(request);
            if lines.len() == IMPORT_BATCH {
                break;
            }
        }
        let plan = handle.block_on(service.plan_issue(actor, &dept, requests, now))?;
        if to_store.send((lines, plan.seal())).is_err() {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Stores each sealed batch as it comes and writes the documents. Returns how many were
/// issued and the refused lines.
fn store_batches<'a>(
    service: &LicenceService<'a>,
    actor: &Actor,
    handle: &tokio::runtime::Handle,
    sealed: std::sync::mpsc::Receiver<(Vec<usize>, SealedBatch<'a>)>,
    mut documents: Option<&mut std::io::BufWriter<std::fs::File>>,
) -> anyhow::Result<(usize, Vec<Value>)> {
    let mut issued = 0;
    let mut rejected = Vec::new();
    for (lines, batch) in sealed {
        let outcomes = handle.block_on(service.store_issued(actor, batch))?;
        for (line_no, r) in lines.into_iter().zip(outcomes) {
            match r {
                Ok(l) => {
                    issued += 1;
                    if let Some(d) = documents.as_mut() {
                        writeln!(d, "{}", l.document)?;
                    }
                }
                Err(e) => {
                    rejected.push(serde_json::json!({"line": line_no, "error": e.to_string()}))
                }
            }
        }
    }
    Ok((issued, rejected))
}
