//! Offline licence verifications per second on one thread, beside raw ring ECDSA P-256
//! verifications per second of the same signatures, measured in the same run.
//!
//! cargo bench -p bohai-hub --bench licence_verify -- BUNDLE ROOT.pem LICENCES [SECONDS]
//!
//! LICENCES holds one licence JWS a line (`bohai licence import --documents`); BUNDLE is
//! `bohai licence bundle`; ROOT.pem the city root. `scripts/bench-licences` runs it pinned to
//! one core. Each figure is the median of five rounds.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark that cannot read its input stops

use std::time::{Duration, Instant};

use bohai_certs::licence::{LicencePolicy, ParsedJws};
use bohai_hub::licences::bundle::OfflineVerifier;
use ring::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_FIXED};
use x509_parser::prelude::{FromDer as _, X509Certificate};

const ROUNDS: usize = 5;

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let [bundle, root, licences, rest @ ..] = args.as_slice() else {
        eprintln!("usage: licence_verify BUNDLE ROOT.pem LICENCES [SECONDS]");
        std::process::exit(2);
    };
    let seconds: f64 = rest.first().map_or(2.0, |s| s.parse().expect("SECONDS"));
    let registry = bohai_schemas::Registry::load_builtin().expect("registry");
    let authority = &registry
        .department("data-administration")
        .expect("status authority")
        .credit_code;
    let verifier = OfflineVerifier::load(
        &std::fs::read_to_string(bundle).expect("bundle"),
        bohai_hub::licences::bundle::PinnedTrust {
            city_root: &std::fs::read_to_string(root).expect("root"),
            operator_roots: "",
            crls: &[],
        },
        authority,
        LicencePolicy::default(),
        chrono::Utc::now(),
    )
    .expect("the bundle verifies");
    let documents: Vec<String> = std::fs::read_to_string(licences)
        .expect("licences")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_owned)
        .collect();
    assert!(!documents.is_empty(), "no licences in {licences}");

    // Raw baseline: the same signatures, the same public keys, nothing else.
    let raw: Vec<(Vec<u8>, Vec<u8>, Vec<u8>)> = documents
        .iter()
        .map(|d| {
            let jws = ParsedJws::parse(d).expect("a JWS");
            let (_, cert) = X509Certificate::from_der(&jws.chain[0]).expect("x5c[0]");
            let point = cert.public_key().subject_public_key.data.to_vec();
            let cut = d.rfind('.').expect("three parts");
            let sig = base64_url(&d[cut + 1..]);
            (d.as_bytes()[..cut].to_vec(), sig, point)
        })
        .collect();
    let now = chrono::Utc::now();
    for d in documents.iter().take(3) {
        let report = verifier.verify(d, now);
        assert!(
            report.is_valid(),
            "the benchmark's licences must be VALID: {report:#?}"
        );
    }

    let budget = Duration::from_secs_f64(seconds / f64::from(u32::try_from(ROUNDS).unwrap()));
    let raw_rate = median_rate(budget, |i| {
        let (input, sig, point) = &raw[i % raw.len()];
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point)
            .verify(input, sig)
            .expect("raw verification");
    });
    let offline_rate = median_rate(budget, |i| {
        let report = verifier.verify(&documents[i % documents.len()], now);
        assert!(report.is_valid());
    });
    println!(
        "licences in the set                     {:>10}",
        documents.len()
    );
    println!("raw ring ECDSA P-256 verifications/s    {raw_rate:>10.0}");
    println!("offline licence verifications/s         {offline_rate:>10.0}");
    println!(
        "ratio offline / raw                     {:>10.2}",
        offline_rate / raw_rate
    );
}

/// Runs `op` for `budget` in each of five rounds; the median of the rounds' rates.
fn median_rate(budget: Duration, mut op: impl FnMut(usize)) -> f64 {
    let mut rates: Vec<f64> = (0..ROUNDS)
        .map(|_| {
            let start = Instant::now();
            let mut n = 0usize;
            while start.elapsed() < budget {
                for _ in 0..64 {
                    op(n);
                    n += 1;
                }
            }
            f64::from(u32::try_from(n).unwrap_or(u32::MAX)) / start.elapsed().as_secs_f64()
        })
        .collect();
    rates.sort_by(f64::total_cmp);
    rates[ROUNDS / 2]
}

fn base64_url(text: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text)
        .expect("base64url")
}
