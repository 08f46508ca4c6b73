//! Latency of credit lookups in a loaded repository (issue 19, "Scale"), each beside a plain
//! indexed `SELECT` of the same rows in the same run: the credit profile of a subject
//! (`bohai credit show`, `GET /api/v1/credit/{subject}`: the lookup, the publication and
//! masking rules, and its audit entry) and the joint-discipline check of one licence at the
//! counter (`credit::discipline::entries_in_force`), for subjects that are listed and subjects
//! that are not, alternating.
//!
//! cargo bench -p bohai-hub --bench credit_lookup -- DATABASE_URL SUBJECTS [LOOKUPS]
//!
//! SUBJECTS holds one credit code or identity number a line. `scripts/bench-credit` runs it
//! after loading its entries. Figures: p50 and p99 of LOOKUPS (default 2,000) of each, in
//! microseconds, and the ratio of the p50s to the baseline's.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark that cannot read its input stops

use std::collections::BTreeSet;
use std::future::Future;
use std::time::Instant;

use bohai_hub::credit::{self, discipline, Reader};
use bohai_hub::sharing::mask::Salt;

/// The baseline: the rows naming a subject by one of the two expression indexes, nothing else.
const PLAIN_SELECT: &str = "SELECT dataset, pk, data FROM repository_records
    WHERE dataset IN ('credit-commitments', 'credit-red-list', 'credit-black-list',
                      'administrative-penalties')
      AND (COALESCE(data->>'subject_credit_code', data->>'party_credit_code') = $1
           OR COALESCE(data->>'subject_id_number', data->>'party_id_number') = $1)";

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let [url, subjects, rest @ ..] = args.as_slice() else {
        eprintln!("usage: credit_lookup DATABASE_URL SUBJECTS [LOOKUPS]");
        std::process::exit(2);
    };
    let lookups: usize = rest.first().map_or(2_000, |s| s.parse().expect("LOOKUPS"));
    let subjects: Vec<String> = std::fs::read_to_string(subjects)
        .expect("subjects")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    assert!(!subjects.is_empty(), "no subjects");
    let db = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect(url)
        .await
        .expect("database");
    let registry = bohai_schemas::Registry::load_builtin().expect("registry");
    let salt = Salt::new(b"bench-credit-lookup");
    let lists: BTreeSet<&str> = ["credit-black-list"].into();
    let now = chrono::Utc::now();
    let subject = |i: usize| subjects[i % subjects.len()].as_str();

    // Warm the caches and the prepared statements alike.
    for i in 0..subjects.len().min(200) {
        sqlx::query(PLAIN_SELECT)
            .bind(subject(i))
            .fetch_all(&db)
            .await
            .unwrap();
    }

    let plain = timed(lookups, |i| {
        let db = &db;
        async move {
            sqlx::query(PLAIN_SELECT)
                .bind(subject(i))
                .fetch_all(db)
                .await
                .expect("plain select");
        }
    })
    .await;
    let profile = timed(lookups, |i| {
        let (db, registry, salt) = (&db, &registry, &salt);
        async move {
            credit::profile(db, registry, Reader::Operator, subject(i), salt, now)
                .await
                .expect("credit profile")
                .entries
                .len()
        }
    })
    .await;
    let discipline = timed(lookups, |i| {
        let (db, lists) = (&db, &lists);
        async move {
            let values: BTreeSet<&str> = [subject(i)].into();
            let in_force = discipline::entries_in_force(db, lists, &values, now)
                .await
                .expect("discipline check");
            usize::from(!in_force.is_empty())
        }
    })
    .await;
    println!("lookups of each kind                      {lookups:>10}");
    println!(
        "with a profile entry / listed in force    {:>10} / {}",
        profile.found, discipline.found
    );
    for (name, t) in [
        ("plain indexed SELECT (baseline)", &plain),
        ("credit profile", &profile),
        ("joint-discipline check of a licence", &discipline),
    ] {
        println!(
            "{name:<40}  p50 {:>8.0} us  p99 {:>8.0} us  p50 ratio to baseline {:>5.2}",
            t.p50,
            t.p99,
            t.p50 / plain.p50
        );
    }
}

/// Latencies of `n` calls of `op`, one at a time.
struct Timings {
    p50: f64,
    p99: f64,
    /// How many calls found something (`op`'s answer not 0).
    found: usize,
}

async fn timed<F, Fut, T>(n: usize, mut op: F) -> Timings
where
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = T>,
    T: Into<Found>,
{
    let mut micros = Vec::with_capacity(n);
    let mut found = 0;
    for i in 0..n {
        let start = Instant::now();
        let answer: Found = op(i).await.into();
        micros.push(start.elapsed().as_secs_f64() * 1e6);
        found += usize::from(answer.0);
    }
    micros.sort_by(f64::total_cmp);
    // The nearest rank: the value below which `percent` of the calls fall.
    let at = |percent: usize| micros[(micros.len() - 1) * percent / 100];
    Timings {
        p50: at(50),
        p99: at(99),
        found,
    }
}

/// Whether a call found something.
struct Found(bool);

impl From<()> for Found {
    fn from((): ()) -> Self {
        Found(false)
    }
}

impl From<usize> for Found {
    fn from(n: usize) -> Self {
        Found(n > 0)
    }
}
