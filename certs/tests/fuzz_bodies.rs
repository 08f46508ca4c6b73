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
    }
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
