//! The fuzz targets' bodies (`certs/fuzz/src/lib.rs`) on stable Rust: every parser of the
//! crate is fed valid seeds (certificates, CRLs, seal records and signatures, DER and PEM)
//! and thousands of deterministic mutations of them — truncations, bit flips, random bytes,
//! odd DER lengths, splices. Any panic fails the test. The coverage-guided fuzzer itself
//! (`cargo fuzz`, see certs/README.md) explores far more; this keeps the same bodies honest
//! in every `cargo test`.

#![allow(clippy::unwrap_used)] // a test that cannot unwrap should fail loudly

#[allow(unreachable_pub)] // public for the fuzz crate, which is its own workspace
#[path = "../fuzz/src/lib.rs"]
mod bodies;
mod common;

use bohai_certs::{crl_to_pem, SealImage, SealType};
use chrono::Duration;
use common::*;

/// Random edits made of each seed.
const ROUNDS: usize = 1500;

/// A small deterministic generator (xorshift64*), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % u64::try_from(n.max(1)).unwrap()).unwrap()
    }
}

/// Mutations of `seed`: every truncation of its first 256 bytes, `rounds` random edits
/// (flip, replace, insert, delete, a DER length byte made long or huge), and splices with
/// `other`.
fn mutations(seed: &[u8], other: &[u8], rounds: usize, rng: &mut Rng) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = (0..seed.len().min(256))
        .map(|n| seed[..n].to_vec())
        .collect();
    for _ in 0..rounds {
        let mut m = seed.to_vec();
        for _ in 0..=rng.below(3) {
            if m.is_empty() {
                break;
            }
            let i = rng.below(m.len());
            match rng.below(6) {
                0 => m[i] ^= 1 << rng.below(8),
                1 => m[i] = u8::try_from(rng.below(256)).unwrap(),
                2 => m.insert(i, u8::try_from(rng.below(256)).unwrap()),
                3 => {
                    m.remove(i);
                }
                4 => m[i] = [0x80, 0x81, 0x82, 0x84, 0xff][rng.below(5)],
                _ => {
                    let j = rng.below(other.len());
                    m.truncate(i);
                    m.extend_from_slice(&other[j..]);
                }
            }
        }
        out.push(m);
    }
    out
}

fn seeds() -> Vec<Vec<u8>> {
    let pki = city();
    let issued = seal(&pki);
    let cert = issued.cert_der.clone();
    let record = issued.record.to_der().unwrap();
    let key = issued.into_seal_key().unwrap();
    let sig = sign(&key, now() + Duration::hours(1));
    let crl = crl(&pki.issuing, &[vec![0x42; 16]]);
    let (licence, qr, status_list) = licence_seeds(&key);
    vec![
        cert,
        pki.root.cert_der().to_vec(),
        pki.root.cert_pem().into_bytes(),
        record,
        sig.to_der().unwrap(),
        sig.to_pem().unwrap().into_bytes(),
        crl_to_pem(&crl).into_bytes(),
        crl,
        SealImage::official_svg("盘锦市公安局", SealType::Official).into_bytes(),
        licence.clone().into_bytes(),
        qr.into_bytes(),
        status_list.into_bytes(),
    ]
}

#[test]
fn the_fuzz_bodies_never_panic_on_mutated_inputs() {
    let seeds = seeds();
    let mut rng = Rng(0x5eed_b0ba_1c0d_e5ea);
    let mut fed = 0usize;
    for (i, seed) in seeds.iter().enumerate() {
        let other = &seeds[(i + 1) % seeds.len()];
        for input in std::iter::once(seed.clone()).chain(mutations(seed, other, ROUNDS, &mut rng)) {
            bodies::certificate(&input);
            bodies::seal_signature(&input);
            bodies::licence(&input);
            fed += 1;
        }
    }
    // The corpus really is that large (so this test cannot pass by feeding nothing).
    assert!(fed > seeds.len() * ROUNDS, "{fed}");
}

#[test]
fn the_fuzz_bodies_never_panic_on_odd_shapes() {
    let long_length = [0x30, 0x84, 0xff, 0xff, 0xff, 0xff, 0x02, 0x01, 0x00];
    let deep: Vec<u8> = std::iter::repeat_n([0x30u8, 0x80], 2000)
        .flatten()
        .collect();
    for input in [
        &[][..],
        &[0x30][..],
        &[0x30, 0x00][..],
        &long_length[..],
        &deep[..],
        b"-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n",
        b"-----BEGIN BOHAI SEAL SIGNATURE-----\nMAA=\n-----END BOHAI SEAL SIGNATURE-----\n",
        b"-----BEGIN X509 CRL-----\n!!\n-----END X509 CRL-----\n",
        &[0xff; 70 * 1024][..],
    ] {
        bodies::certificate(input);
        bodies::seal_signature(input);
        bodies::licence(input);
    }
}

/// A sealed licence, its QR payload and a status list token.
fn licence_seeds(key: &bohai_certs::SealKey) -> (String, String, String) {
    use bohai_certs::licence::{
        seal_compact, seal_licence, sign_status_list, Issuer, Licence, StatusList, StatusListRef,
    };
    let licence = Licence {
        licence_type: "business-licence".to_owned(),
        number: "BL-2026-00000001".to_owned(),
        version: 1,
        issuer: Issuer {
            department: "market-regulation".to_owned(),
            name_zh: "盘锦市市场监督管理局".to_owned(),
            credit_code: "91350100M000100Y43".to_owned(),
        },
        holder: serde_json::json!({"name": "盘锦渤海数据有限公司"}),
        fields: serde_json::json!({"scope": "数据处理"}),
        valid_from: now(),
        valid_until: now() + Duration::days(30),
        issued_at: now(),
        supersedes: None,
    };
    let status = StatusListRef {
        idx: 3,
        uri: "https://hub.example/api/v1/licences/status-list".to_owned(),
    };
    let jws = seal_licence(key, licence.clone(), status.clone()).unwrap();
    let qr = seal_compact(key, licence, status).unwrap();
    let list = sign_status_list(
        key,
        &status_uri(),
        &StatusList::with_capacity(64),
        now(),
        300,
    )
    .unwrap();
    (jws, qr, list)
}

fn status_uri() -> String {
    "https://hub.example/api/v1/licences/status-list".to_owned()
}

/// Writes the seeds as files for the coverage-guided fuzzer's starting corpus:
/// `cargo test -p bohai-certs --test fuzz_bodies -- --ignored write_fuzz_seeds` fills
/// `certs/fuzz/seeds/` (see certs/README.md, "Fuzzing"). A tool, not a check.
#[test]
#[ignore = "writes files; run on demand"]
fn write_fuzz_seeds() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds");
    std::fs::create_dir_all(&dir).unwrap();
    for (i, seed) in seeds().iter().enumerate() {
        std::fs::write(dir.join(format!("seed-{i}")), seed).unwrap();
    }
}
