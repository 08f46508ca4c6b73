//! `bohai status`: the operations overview in the terminal, the same one the dashboard and
//! `GET /api/v1/ops/overview` show, read from the database (and the broker for the lag).

use std::fmt::Write as _;

use crate::config::Config;
use crate::ops::overview::{self, Overview};
use crate::{database, registry};

/// Options of `bohai status`.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// Print the overview as JSON (the body of `GET /api/v1/ops/overview`).
    #[arg(long)]
    pub json: bool,
}

pub(super) async fn run(config: &Config, args: &StatusArgs) -> anyhow::Result<()> {
    let registry = registry::load(&config.registry)?;
    let db = database::pool(&config.database)?;
    let overview =
        overview::gather(config, &db, &registry, &overview::LagClient::default()).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&overview)?);
    } else {
        print!("{}", render(&overview));
    }
    Ok(())
}

fn opt(v: Option<f64>, f: impl Fn(f64) -> String) -> String {
    v.map_or_else(|| "-".to_owned(), f)
}

/// The overview as terminal text.
fn render(o: &Overview) -> String {
    let mut out = String::new();
    let states: Vec<String> = o
        .feed_states
        .iter()
        .map(|(s, n)| format!("{n} {s}"))
        .collect();
    let secs =
        |t: &chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let live = o.cluster.instances.iter().filter(|i| i.live).count();
    let _ = writeln!(
        out,
        "INSTANCES  {live} live of {}",
        o.cluster.instances.len()
    );
    for i in &o.cluster.instances {
        let _ = writeln!(
            out,
            "  {:<28} {:<5} http {:<21} heartbeat {}  sink partitions: {}  duties: {}",
            i.id,
            if i.live { "live" } else { "gone" },
            i.http_addr,
            secs(&i.heartbeat_at),
            i.sink_partitions,
            if i.duties.is_empty() {
                "-".to_owned()
            } else {
                i.duties.join(", ")
            }
        );
    }
    let free: Vec<&str> = o
        .cluster
        .duties
        .iter()
        .filter(|d| d.holder.is_none())
        .map(|d| d.duty.as_str())
        .collect();
    if !free.is_empty() {
        let _ = writeln!(out, "  not held: {}", free.join(", "));
    }
    for c in &o.stopped_components {
        let _ = writeln!(
            out,
            "STOPPED  {} in {} since {}: {}",
            c.component,
            c.instance,
            c.since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            c.reason
        );
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "FEEDS  {} ({})", o.feeds.len(), states.join(", "));
    let _ = writeln!(
        out,
        "{:<32} {:<24} {:<8} {:>10} {:>9} {:>8} {:>9}  {:<20} WHY",
        "DATASET", "SOURCE", "STATE", "READ", "REJECTED", "REJECT%", "READ/MIN", "LAST RECORD"
    );
    for f in &o.feeds {
        let _ = writeln!(
            out,
            "{:<32} {:<24} {:<8} {:>10} {:>9} {:>8} {:>9}  {:<20} {}",
            f.dataset,
            f.source,
            f.state.as_str(),
            f.read_total,
            f.rejected_total,
            opt(f.reject_ratio, |r| format!("{:.1}", r * 100.0)),
            opt(f.read_per_minute, |r| format!("{r:.1}")),
            f.last_record_at.map_or_else(
                || "never".to_owned(),
                |t| t.format("%Y-%m-%d %H:%M:%S").to_string()
            ),
            f.reasons.join("; ")
        );
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "REPOSITORY  {:<32} {:>10} {:>10} {:>8}  RECONCILED",
        "DATASET", "ROWS", "VALID", "PENDING"
    );
    for d in &o.datasets {
        let _ = writeln!(
            out,
            "            {:<32} {:>10} {:>10} {:>8}  {}",
            d.dataset,
            d.rows,
            d.valid,
            d.pending,
            if d.reconciled { "yes" } else { "no" }
        );
    }
    let _ = writeln!(out);
    match &o.sink_lag_error {
        Some(e) => {
            let _ = writeln!(out, "SINK LAG  unknown: {e}");
        }
        None => {
            let total: i64 = o.sink_lag.iter().map(|l| l.lag_records).sum();
            let _ = writeln!(
                out,
                "SINK LAG  {total} record(s) over {} partition(s)",
                o.sink_lag.len()
            );
            for l in o.sink_lag.iter().filter(|l| l.lag_records > 0) {
                let _ = writeln!(
                    out,
                    "          {}/{}: {} record(s), oldest {}",
                    l.topic,
                    l.partition,
                    l.lag_records,
                    opt(l.lag_seconds, |s| format!("{s:.0}s ago"))
                );
            }
        }
    }
    let s = &o.seals;
    let _ = writeln!(
        out,
        "SEALS     {:.1}% of {} departments covered (valid {}, expiring {}, expired {}, revoked {}, none {})",
        s.coverage_percent, s.departments_total, s.valid, s.expiring, s.expired, s.revoked, s.none
    );
    let join = |m: &std::collections::BTreeMap<String, i64>| {
        m.iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let _ = writeln!(out, "LICENCES  {}", join(&o.licences.by_state));
    let _ = writeln!(out, "EVENTS    {}", join(&o.licences.events));
    out
}
