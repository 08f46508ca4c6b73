//! The `bohai` command line. Each command group is its own module; this file holds the
//! top-level parser and the dispatch.

mod audit;
mod connect;
mod credit;
mod dataset;
mod dept;
mod dlq;
mod gen;
mod licence;
mod seal;
mod sharing;
mod status;
mod up;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{Config, LogFormat};
use crate::server::{shutdown_signal, BoundHub};
use crate::{database, registry, telemetry};

/// Bohai: a city's data-sharing hub and e-licence / e-seal exchange.
#[derive(Debug, Parser)]
#[command(name = "bohai", version, about, long_about = None)]
pub struct Cli {
    /// The configuration file (TOML). Default: $BOHAI_CONFIG, else built-in defaults.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Log format: `human` lines or `json` objects. Overrides `log.format`.
    #[arg(long, global = true, value_enum)]
    pub log_format: Option<LogFormat>,
    /// Log what the command does (at `log.filter`, default `info`) on standard error; without
    /// it, a command other than `serve` and `up` logs only warnings and errors. `RUST_LOG`,
    /// when set, overrides both.
    #[arg(long, short, global = true)]
    pub verbose: bool,
    /// The person running this command: the audit log records them with every act of the
    /// operator (seal and CA operations, token and request decisions, licence actions).
    /// Default: $BOHAI_ACTOR, else $USER.
    #[arg(long, global = true, value_name = "PERSON")]
    pub actor: Option<String>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the HTTP API and run the pipeline workers.
    Serve,
    /// The main job for a new user: bring the local stack up, migrate, load the samples,
    /// serve, and print the URLs.
    Up(up::UpArgs),
    /// Apply the database migrations and exit.
    Migrate,
    /// Print the OpenAPI document of the HTTP API.
    Openapi,
    /// The registry's datasets.
    #[command(subcommand)]
    Dataset(dataset::DatasetCommand),
    /// Run connectors.
    #[command(subcommand)]
    Connect(connect::ConnectCommand),
    /// Write a realistic generated feed for a dataset.
    Gen(gen::GenArgs),
    /// Rejected records.
    #[command(subcommand)]
    Dlq(DlqCommand),
    /// Departments and their tokens.
    #[command(subcommand)]
    Dept(dept::DeptCommand),
    /// The city PKI and electronic seals.
    #[command(subcommand)]
    Seal(seal::SealCommand),
    /// Electronic licences.
    #[command(subcommand)]
    Licence(licence::LicenceCommand),
    /// The catalogue of shared datasets.
    Catalogue(sharing::CatalogueArgs),
    /// Access requests (subscriptions) and their decisions.
    #[command(subcommand)]
    Sub(sharing::SubCommand),
    /// Credit profiles: every credit entry about a subject.
    #[command(subcommand)]
    Credit(credit::CreditCommand),
    /// The hash-chained audit log.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// The operations overview: feed health, repository, sink lag, seals, licences.
    Status(status::StatusArgs),
}

/// `bohai dlq ...`
#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// The latest rejected records with their reasons.
    Show(dlq::DlqShowArgs),
}

/// Parses the arguments, runs the command, and turns any error into a message and exit code 1.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn env(key: &str) -> Option<String> {
    std::env::var(key).ok()
}

/// Loads the configuration for the global flags, and sets up logging from it.
fn load_config(cli: &Cli) -> anyhow::Result<Config> {
    load_config_with(cli, env)
}

/// [`load_config`] with another environment lookup.
fn load_config_with(cli: &Cli, env: impl Fn(&str) -> Option<String>) -> anyhow::Result<Config> {
    let file = Config::file_from(cli.config.clone(), &env);
    let config = Config::load(file.as_deref(), &env)?;
    // The services log what they do; a command prints what was asked on standard output and
    // only warnings and errors on standard error, unless asked for more.
    let service = matches!(cli.command, Command::Serve | Command::Up(_));
    let filter = if service || cli.verbose {
        config.log.filter.as_str()
    } else {
        "warn"
    };
    telemetry::init(cli.log_format.unwrap_or(config.log.format), filter);
    Ok(config)
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    if let Some(person) = cli
        .actor
        .clone()
        .or_else(|| env("BOHAI_ACTOR"))
        .or_else(|| env("USER"))
        .filter(|p| !p.trim().is_empty())
    {
        crate::audit::set_operator_person(person.trim());
    }
    match &cli.command {
        Command::Serve => {
            let config = load_config(&cli)?;
            let hub = BoundHub::bind(config).await?;
            hub.serve(shutdown_signal()).await?;
        }
        Command::Up(args) => up::run(&cli, args).await?,
        Command::Migrate => {
            let config = load_config(&cli)?;
            let (db, registry) = prepare(&config).await?;
            println!(
                "database schema is up to date; registry loaded ({} departments, {} datasets)",
                registry.departments.len(),
                registry.datasets.len()
            );
            match database::separation(&db).await? {
                database::Separation::Separate { runtime } => println!(
                    "the hub's role `{runtime}` owns nothing: it may read and append the audit log, never change it"
                ),
                single => {
                    if let Some(w) = single.warning() {
                        println!("WARNING: {w}");
                    }
                }
            }
        }
        Command::Openapi => println!("{}", crate::http::openapi_json()),
        Command::Dataset(command) => dataset::run(&load_config(&cli)?, command).await?,
        Command::Connect(command) => connect::run(&load_config(&cli)?, command).await?,
        Command::Gen(args) => gen::run(&load_config(&cli)?, args)?,
        Command::Dlq(DlqCommand::Show(args)) => dlq::show(&load_config(&cli)?, args).await?,
        Command::Dept(command) => dept::run(&load_config(&cli)?, command).await?,
        Command::Seal(command) => seal::run(&load_config(&cli)?, command).await?,
        Command::Licence(command) => licence::run(&load_config(&cli)?, command).await?,
        Command::Catalogue(args) => sharing::catalogue(&load_config(&cli)?, args).await?,
        Command::Sub(command) => sharing::run(&load_config(&cli)?, command).await?,
        Command::Credit(command) => credit::run(&load_config(&cli)?, command).await?,
        Command::Audit(command) => audit::run(&load_config(&cli)?, command).await?,
        Command::Status(args) => status::run(&load_config(&cli)?, args).await?,
    }
    Ok(())
}

/// Opens the database, applies the migrations and loads the registry into it: what every
/// command that writes needs first.
async fn prepare(config: &Config) -> anyhow::Result<(sqlx::PgPool, bohai_schemas::Registry)> {
    let registry = registry::load(&config.registry)?;
    let separation = database::prepare_schema(&config.database).await?;
    if let Some(warning) = separation.warning() {
        tracing::warn!("{warning}");
    }
    let pool = database::pool(&config.database)?;
    registry::sync(&pool, &registry).await?;
    Ok((pool, registry))
}

/// CRL files given on the command line (`--crl`), each DER or one PEM `X509 CRL`: their DER.
/// A file that holds no CRL is an error, never an empty list.
fn read_crl_files(paths: &[std::path::PathBuf]) -> anyhow::Result<Vec<Vec<u8>>> {
    use anyhow::Context as _;
    paths
        .iter()
        .map(|path| {
            let bytes =
                std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
            bohai_certs::read_crl(&bytes)
                .with_context(|| format!("--crl {}: not a CRL", path.display()))
        })
        .collect()
}
