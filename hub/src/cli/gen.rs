//! `bohai gen DATASET N`: write a realistic feed.

use std::io::{BufWriter, Write};
use std::path::PathBuf;

use anyhow::Context;
use serde_json::Value;

use crate::config::Config;
use crate::gen::Generator;
use crate::registry;

/// Output formats of `bohai gen`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum GenFormat {
    /// One JSON object a line.
    Jsonl,
    /// CSV with a header row.
    Csv,
}

/// Output encodings of `bohai gen` (CSV only).
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum GenEncoding {
    /// UTF-8.
    Utf8,
    /// GBK, as many department exports are.
    Gbk,
}

/// Options of `bohai gen`.
#[derive(Debug, clap::Args)]
pub struct GenArgs {
    /// The dataset.
    pub dataset: String,
    /// How many records.
    pub count: u64,
    /// Output file (default: standard output).
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value = "jsonl")]
    pub format: GenFormat,
    /// Character encoding of CSV output.
    #[arg(long, value_enum, default_value = "utf8")]
    pub encoding: GenEncoding,
    /// Share of records made invalid on purpose (0–1).
    #[arg(long, default_value_t = 0.05)]
    pub invalid_ratio: f64,
    /// Random seed: the same seed gives the same feed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Print a JSON summary (counts) on standard error when done.
    #[arg(long)]
    pub json: bool,
}

pub(super) fn run(config: &Config, args: &GenArgs) -> anyhow::Result<()> {
    let registry = registry::load(&config.registry)?;
    let ds = registry
        .dataset(&args.dataset)
        .with_context(|| format!("no dataset `{}`", args.dataset))?;
    let mut generator = Generator::new(ds, args.seed, args.invalid_ratio)?;
    let sink: Box<dyn Write> = match &args.output {
        Some(p) => {
            Box::new(std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?)
        }
        None => Box::new(std::io::stdout().lock()),
    };
    let mut out = BufWriter::with_capacity(1 << 20, sink);
    let columns: Vec<String> = ds
        .schema
        .get("properties")
        .and_then(Value::as_object)
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default();
    let bar = if args.output.is_some() && !args.json {
        indicatif::ProgressBar::new(args.count)
    } else {
        indicatif::ProgressBar::hidden()
    };
    let mut line = String::new();
    let write_text = |out: &mut BufWriter<Box<dyn Write>>, text: &str| -> std::io::Result<()> {
        match args.encoding {
            GenEncoding::Utf8 => out.write_all(text.as_bytes()),
            GenEncoding::Gbk => out.write_all(&encoding_rs::GBK.encode(text).0),
        }
    };
    if let GenFormat::Csv = args.format {
        line.clear();
        line.push_str(
            &columns
                .iter()
                .map(|c| csv_field(c))
                .collect::<Vec<_>>()
                .join(","),
        );
        line.push('\n');
        write_text(&mut out, &line)?;
    }
    let mut invalid = 0u64;
    for i in 0..args.count {
        let g = generator.next_record();
        if !g.valid {
            invalid += 1;
        }
        line.clear();
        match args.format {
            GenFormat::Jsonl => {
                line.push_str(&serde_json::to_string(&g.record)?);
            }
            GenFormat::Csv => {
                let cells: Vec<String> = columns
                    .iter()
                    .map(|c| match g.record.get(c) {
                        None | Some(Value::Null) => String::new(),
                        Some(Value::String(s)) => csv_field(s),
                        Some(other) => csv_field(&other.to_string()),
                    })
                    .collect();
                line.push_str(&cells.join(","));
            }
        }
        line.push('\n');
        write_text(&mut out, &line)?;
        if i % 10_000 == 0 {
            bar.set_position(i);
        }
    }
    out.flush()?;
    bar.finish_and_clear();
    if args.json {
        eprintln!(
            "{}",
            serde_json::json!({"dataset": ds.id, "records": args.count, "invalid": invalid})
        );
    } else {
        eprintln!(
            "wrote {} records of {} ({invalid} invalid on purpose)",
            args.count, ds.id
        );
    }
    Ok(())
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}
