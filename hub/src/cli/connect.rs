//! `bohai connect run FILE`: run one connector in this process.

use std::path::PathBuf;
use std::sync::Arc;

use bohai_connectors::ConnectorConfig;
use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};

use super::prepare;
use crate::config::Config;
use crate::pipeline::connector::{self, RunUntil};
use crate::pipeline::ingest::Ingestor;
use crate::pipeline::topics;

/// `bohai connect ...`
#[derive(Debug, Subcommand)]
pub enum ConnectCommand {
    /// Run a connector from its TOML file until its source is finished (a single file), or
    /// for ever (a drop folder, a table). Resumes from its stored checkpoint.
    Run {
        /// The connector file.
        file: PathBuf,
        /// Stop as soon as the source has nothing new.
        #[arg(long)]
        once: bool,
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
    },
}

pub(super) async fn run(config: &Config, command: &ConnectCommand) -> anyhow::Result<()> {
    let ConnectCommand::Run { file, once, json } = command;
    let connector = ConnectorConfig::load(file)?;
    let (db, registry) = prepare(config).await?;
    let registry = Arc::new(registry);
    // The producer first: it reaches the brokers while the topics are created.
    let ingestor = Ingestor::new(&config.kafka, db.clone(), Arc::clone(&registry))?;
    topics::ensure(&config.kafka, &registry).await?;
    ingestor.connect(&connector.dataset).await;
    // On standard error, and only when it is a terminal: `--json` output on standard output
    // stays clean, and a benchmark run by hand still shows its progress.
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {elapsed_precise} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    let until = if *once {
        RunUntil::Idle
    } else {
        RunUntil::Finished
    };
    let started = std::time::Instant::now();
    let summary = connector::run(&connector, &ingestor, &db, until, None, |s| {
        let rate = s.read as f64 / bar.elapsed().as_secs_f64().max(0.001);
        bar.set_message(format!(
            "{}: read {} valid {} rejected {} ({rate:.0} records/s)",
            connector.name, s.read, s.valid, s.rejected
        ));
    })
    .await?;
    bar.finish_and_clear();
    // From the connector's start (checkpoint read, source opened) to its last batch
    // committed: what the run took without the process's own start-up.
    let seconds = (started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0;
    if *json {
        let report = RunReport { summary, seconds };
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "{}: read {}, valid {}, rejected {} in {seconds} s (see `bohai dlq show --dataset {}`)",
            connector.name, summary.read, summary.valid, summary.rejected, connector.dataset
        );
    }
    Ok(())
}

/// What `bohai connect run --json` prints.
#[derive(Debug, serde::Serialize)]
struct RunReport {
    #[serde(flatten)]
    summary: connector::RunSummary,
    /// Seconds from the connector's start to its last batch committed.
    seconds: f64,
}
