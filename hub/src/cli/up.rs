//! `bohai up`: everything a new user needs, in one command.
//!
//! It runs the project's `scripts/stack up` (the local Kafka-API broker and PostgreSQL), takes
//! the stack's addresses unless the environment already names others, applies the
//! migrations, and serves, printing where everything is.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};

use super::{load_config_with, Cli};
use crate::config::{DATABASE_OWNER_URL_ENV, DATABASE_URL_ENV, KAFKA_BROKERS_ENV};
use crate::database;
use crate::server::{shutdown_signal, BoundHub};

/// Options of `bohai up`.
#[derive(Debug, clap::Args)]
pub struct UpArgs {
    /// Do not start the local stack: use the broker and database the configuration names.
    #[arg(long)]
    pub no_stack: bool,
    /// The stack script. Default: $BOHAI_STACK_SCRIPT, else `scripts/stack` in the current
    /// folder or in the source tree this binary was built from.
    #[arg(long, value_name = "SCRIPT")]
    pub stack: Option<PathBuf>,
    /// Do not feed the sample datasets.
    #[arg(long)]
    pub no_samples: bool,
    /// Where the sample feeds' drop folders are. Default: ~/.local/state/bohai/samples.
    #[arg(long, value_name = "DIR")]
    pub samples: Option<PathBuf>,
    /// Records in each first sample feed.
    #[arg(long, default_value_t = 1000)]
    pub sample_records: u64,
}

impl UpArgs {
    fn samples_dir(&self) -> PathBuf {
        self.samples.clone().unwrap_or_else(|| {
            let home = std::env::var_os("HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| ".".into());
            home.join(".local/state/bohai/samples")
        })
    }
}

/// Sample feeds for a new user: a drop folder per dataset with a connector watching it. The
/// first time, each folder gets a generated feed (5% invalid records, to show the rejects);
/// later runs find the files already finished and feed nothing twice. Returns the connector
/// files.
fn sample_feeds(
    config: &crate::config::Config,
    dir: &Path,
    records: u64,
) -> anyhow::Result<Vec<PathBuf>> {
    let registry = crate::registry::load(&config.registry)?;
    let mut files = Vec::new();
    for ds in &registry.datasets {
        let drop = dir.join(&ds.id).join("in");
        let done = dir.join(&ds.id).join("done");
        std::fs::create_dir_all(&drop).with_context(|| format!("creating {}", drop.display()))?;
        let empty = |d: &Path| {
            std::fs::read_dir(d)
                .map(|mut e| e.next().is_none())
                .unwrap_or(true)
        };
        if empty(&drop) && empty(&done) {
            let mut generator = crate::gen::Generator::new(ds, 2026, 0.05)?;
            let mut text = String::new();
            for _ in 0..records {
                text.push_str(&serde_json::to_string(&generator.next_record().record)?);
                text.push('\n');
            }
            // Written under a hidden name and renamed, as the drop folder expects.
            let tmp = drop.join(format!(".sample-{}.jsonl", ds.id));
            std::fs::write(&tmp, text)?;
            std::fs::rename(&tmp, drop.join(format!("sample-{}.jsonl", ds.id)))?;
        }
        let connector = dir.join(format!("{}.toml", ds.id));
        std::fs::write(
            &connector,
            format!(
                "# Sample feed written by `bohai up`.\nname = \"sample-{id}\"\ndataset = \"{id}\"\n[source]\nkind = \"file\"\ndrop_dir = \"{drop}\"\ndone_dir = \"{done}\"\nformat = \"jsonl\"\n",
                id = ds.id,
                drop = drop.display(),
                done = done.display()
            ),
        )?;
        files.push(connector);
    }
    Ok(files)
}

/// The sample licences for a new user: the city CA (and the master key file) if there is
/// none, a seal for every department that issues a licence type and for the status
/// authority, and, when no licence exists yet, one generated licence of each type. Returns
/// a line per sample licence.
async fn sample_licences(
    config: &crate::config::Config,
    pool: &sqlx::PgPool,
) -> anyhow::Result<Vec<String>> {
    use crate::licences::service::{Actor, LicenceState};
    use crate::seals::{create_master_key, SealsService};
    let registry = crate::registry::load(&config.registry)?;
    crate::registry::sync(pool, &registry).await?;
    let (master, _) = create_master_key(&config.pki.master_key_file)?;
    let seals = SealsService::with_key(pool, &config.pki, master);
    let now = chrono::Utc::now();
    if crate::seals::store::load_ca(pool).await?.is_none() {
        seals.init_ca(false, now).await?;
    }
    let mut issuers: Vec<&str> = registry
        .licence_types
        .iter()
        .map(|t| t.department.as_str())
        .chain([config.licences.status_authority.as_str()])
        .collect();
    issuers.sort_unstable();
    issuers.dedup();
    for code in issuers {
        // The status authority signs only with a seal of the city CA.
        let has_seal = if code == config.licences.status_authority {
            seals.authority_seal(code, now).await.is_ok()
        } else {
            seals.newest_valid_seal(code, now).await.is_ok()
        };
        if !has_seal {
            let dept = registry
                .department(code)
                .with_context(|| format!("no department `{code}` in the registry"))?;
            seals
                .issue(dept, None, bohai_certs::SealType::Official, 730, None, now)
                .await?;
        }
    }
    let (existing,): (i64,) = sqlx::query_as("SELECT count(*) FROM licences")
        .fetch_one(pool)
        .await?;
    if existing > 0 {
        return Ok(vec![format!(
            "{existing} licences on file (`bohai licence show NUMBER`)"
        )]);
    }
    let state = LicenceState::default();
    let service = crate::licences::LicenceService::new(pool, &registry, config, &state, true)?;
    let mut lines = Vec::new();
    for t in &registry.licence_types {
        let mut generator = crate::gen::Generator::for_licence_type(t, 2026, 0.0)?;
        let mut subject = generator.next_record().record;
        let request = crate::licences::IssueRequest {
            licence_type: t.id.clone(),
            holder: subject.remove("holder").unwrap_or_default(),
            fields: subject.remove("fields").unwrap_or_default(),
            valid_from: None,
            valid_until: None,
            discipline_override: None,
        };
        let issued = service
            .issue(&Actor::current_operator(), &t.department, request, now)
            .await?;
        lines.push(format!(
            "{} {} ({})",
            issued.number, t.title_zh, t.department
        ));
    }
    Ok(lines)
}

pub(super) async fn run(cli: &Cli, args: &UpArgs) -> anyhow::Result<()> {
    let mut stack_env = Vec::new();
    if !args.no_stack {
        let script = find_stack_script(args.stack.clone())?;
        eprintln!("bringing the local stack up with {}", script.display());
        let status = Command::new(&script)
            .arg("up")
            .status()
            .with_context(|| format!("cannot run {}", script.display()))?;
        if !status.success() {
            bail!("{} up failed ({status})", script.display());
        }
        stack_env = stack_exports(&script)?;
    }
    // The environment wins over the stack: an operator who names a broker or database keeps it.
    let config = load_config_with(cli, |key| {
        std::env::var(key).ok().or_else(|| {
            stack_env
                .iter()
                .find(|(k, _)| {
                    k == key
                        && (k == KAFKA_BROKERS_ENV
                            || k == DATABASE_URL_ENV
                            || k == DATABASE_OWNER_URL_ENV)
                })
                .map(|(_, v)| v.clone())
        })
    })?;
    let mut config = config;
    let separation = database::prepare_schema(&config.database)
        .await
        .context("migrating the database")?;
    if let Some(warning) = separation.warning() {
        eprintln!("warning: {warning}");
    }
    let pool = database::pool(&config.database)?;
    let mut licences = Vec::new();
    if !args.no_samples {
        let samples = sample_feeds(&config, &args.samples_dir(), args.sample_records)?;
        config.pipeline.connectors.extend(samples);
        licences = sample_licences(&config, &pool).await?;
    }
    let hub = BoundHub::bind(config).await?;
    let base = format!("http://{}", hub.local_addr());
    println!("Bohai is up.");
    println!("  dashboard:  {base}/ (sign in with a token of scope ops: `bohai dept token create data-administration --scope ops`)");
    println!("  metrics:    {base}/metrics");
    println!("  API:        {base}/api/v1/");
    println!("  OpenAPI:    {base}/api/v1/openapi.json");
    println!("  readiness:  {base}/readyz");
    println!("  datasets:   {base}/api/v1/datasets");
    if !args.no_samples {
        println!(
            "  samples:    {} (drop more JSON Lines files into a dataset's in/ folder)",
            args.samples_dir().display()
        );
        println!("  licences:   {base}/api/v1/licences/{{number}} (status list: {base}/api/v1/licences/status-list)");
        for l in &licences {
            println!("              {l}");
        }
    }
    println!("Stop with Ctrl-C; stop the local stack with `scripts/stack down`.");
    hub.serve(shutdown_signal()).await?;
    Ok(())
}

fn find_stack_script(flag: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    let candidates = flag
        .into_iter()
        .chain(std::env::var_os("BOHAI_STACK_SCRIPT").map(PathBuf::from))
        .chain([
            PathBuf::from("scripts/stack"),
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/stack"),
        ]);
    let tried: Vec<PathBuf> = candidates.collect();
    tried
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .with_context(|| {
            format!(
                "no stack script found (tried {}); pass --stack SCRIPT, or --no-stack to use the \
             broker and database of the configuration",
                tried
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
}

/// The `export` lines of `stack env`: the local broker's and database's addresses.
fn stack_exports(script: &Path) -> anyhow::Result<Vec<(String, String)>> {
    let out = Command::new(script)
        .arg("env")
        .output()
        .with_context(|| format!("cannot run {} env", script.display()))?;
    if !out.status.success() {
        bail!(
            "{} env failed: {}",
            script.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(parse_exports(&String::from_utf8_lossy(&out.stdout)))
}

/// Parses `export KEY=VALUE` lines (values optionally single- or double-quoted).
fn parse_exports(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|line| line.trim().strip_prefix("export "))
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| {
            let v = v.trim();
            let v = v
                .strip_prefix('\'')
                .and_then(|v| v.strip_suffix('\''))
                .or_else(|| v.strip_prefix('"').and_then(|v| v.strip_suffix('"')))
                .unwrap_or(v);
            (k.trim().to_owned(), v.to_owned())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::parse_exports;

    #[test]
    fn reads_the_stack_exports() {
        let parsed = parse_exports(
            "export BOHAI_KAFKA_BROKERS='127.0.0.1:19092'\nexport DATABASE_URL=\"postgres://b@h/d\"\n# comment\n",
        );
        assert_eq!(
            parsed,
            vec![
                (
                    "BOHAI_KAFKA_BROKERS".to_owned(),
                    "127.0.0.1:19092".to_owned()
                ),
                ("DATABASE_URL".to_owned(), "postgres://b@h/d".to_owned()),
            ]
        );
    }
}
