//! Interoperability with the OpenSSL command line (`openssl` 3.x on PATH): chains, CRLs and
//! the seal signature's TBS bytes, and a department CA made entirely with OpenSSL.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use bohai_certs::{
    crl_to_pem, import_seal, sign_document, verify_seal_signature, ImportRequest, SealError,
    SealType, TrustAnchors, Verdict, VerifyContext, VerifyPolicy,
};
use chrono::Utc;
use common::*;

fn openssl(dir: &Path, args: &[&str]) -> Output {
    Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the openssl command line must be installed for these tests")
}

fn ok(dir: &Path, args: &[&str]) -> String {
    let out = openssl(dir, args);
    assert!(
        out.status.success(),
        "openssl {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn write(dir: &Path, name: &str, bytes: impl AsRef<[u8]>) {
    std::fs::write(dir.join(name), bytes).expect("write test file");
}

#[test]
fn openssl_verifies_the_seal_chain_and_honours_the_crl() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let pki = city_at_real_now();
    let revoked = seal_at_real_now(&pki);
    let good = seal_at_real_now(&pki);
    let revoked_serial = revoked.clone().into_seal_key().unwrap().serial().to_vec();
    write(d, "root.pem", pki.root.cert_pem());
    write(d, "issuing.pem", pki.issuing.cert_pem());
    write(d, "revoked.pem", revoked.cert_pem());
    write(d, "good.pem", good.cert_pem());
    // OpenSSL checks CRL dates against the real clock, so this CRL is current now.
    let crl = bohai_certs::issue_crl(
        &pki.issuing,
        &[bohai_certs::RevokedSeal {
            serial: revoked_serial,
            revoked_at: Utc::now(),
            reason: bohai_certs::RevocationReason::Superseded,
        }],
        2,
        Utc::now() - chrono::Duration::hours(1),
        Utc::now() + chrono::Duration::days(7),
    )
    .unwrap();
    write(d, "crl.pem", crl_to_pem(&crl));

    let out = ok(
        d,
        &[
            "verify",
            "-CAfile",
            "root.pem",
            "-untrusted",
            "issuing.pem",
            "good.pem",
        ],
    );
    assert!(out.contains("good.pem: OK"), "{out}");

    let text = ok(d, &["crl", "-in", "crl.pem", "-noout", "-text"]);
    assert!(text.contains("Certificate Revocation List"), "{text}");
    assert!(text.contains("Superseded"), "{text}");
    assert!(text.contains("X509v3 Authority Key Identifier"), "{text}");
    assert!(text.contains("X509v3 CRL Number"), "{text}");

    let crl_check = |leaf: &str| {
        openssl(
            d,
            &[
                "verify",
                "-crl_check",
                "-CRLfile",
                "crl.pem",
                "-CAfile",
                "root.pem",
                "-untrusted",
                "issuing.pem",
                leaf,
            ],
        )
    };
    let out = crl_check("revoked.pem");
    assert!(!out.status.success(), "revoked seal must be rejected");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("certificate revoked")
            || String::from_utf8_lossy(&out.stdout).contains("certificate revoked"),
        "{out:?}"
    );
    let out = crl_check("good.pem");
    assert!(out.status.success(), "{out:?}");

    // The certificate profile as OpenSSL sees it.
    let text = ok(d, &["x509", "-in", "good.pem", "-noout", "-text"]);
    assert!(
        text.contains("Digital Signature, Non Repudiation"),
        "{text}"
    );
    assert!(
        text.contains("1.3.6.1.5.5.7.3.36") || text.contains("Document Signing"),
        "{text}"
    );
    assert!(text.contains("CA:FALSE"), "{text}");
}

#[test]
fn openssl_verifies_the_tbs_signature() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let pki = city_at_real_now();
    let issued = seal_at_real_now(&pki);
    write(d, "seal.pem", issued.cert_pem());
    let key = issued.into_seal_key().unwrap();
    let sig = sign(&key, Utc::now());
    write(d, "tbs.der", sig.tbs_der());
    write(d, "sig.bin", sig.signature_bytes());
    write(d, "signature.der", sig.to_der().unwrap());
    ok(
        d,
        &[
            "x509", "-in", "seal.pem", "-pubkey", "-noout", "-out", "pub.pem",
        ],
    );
    let out = ok(
        d,
        &[
            "dgst",
            "-sha256",
            "-verify",
            "pub.pem",
            "-signature",
            "sig.bin",
            "tbs.der",
        ],
    );
    assert!(out.contains("Verified OK"), "{out}");
    // OpenSSL's ASN.1 parser reads the whole structure.
    let out = ok(d, &["asn1parse", "-inform", "DER", "-in", "signature.der"]);
    assert!(out.contains("bohai-detached-v1"), "{out}");
    assert!(out.contains("ecdsa-with-SHA256"), "{out}");

    // A flipped TBS byte no longer verifies.
    let mut tbs = sig.tbs_der().to_vec();
    let last = tbs.len() - 1;
    tbs[last] ^= 1;
    write(d, "tbs.der", tbs);
    let out = openssl(
        d,
        &[
            "dgst",
            "-sha256",
            "-verify",
            "pub.pem",
            "-signature",
            "sig.bin",
            "tbs.der",
        ],
    );
    assert!(!out.status.success());
}

/// An operator-added department CA made with the OpenSSL command line, and a seal
/// certificate under it with the seal profile; `import_seal` accepts it and it signs.
#[test]
fn seal_made_with_openssl_is_imported_and_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(
        d,
        &[
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-noout",
            "-out",
            "ca.key",
        ],
    );
    ok(
        d,
        &[
            "req",
            "-x509",
            "-new",
            "-key",
            "ca.key",
            "-sha256",
            "-days",
            "3650",
            "-utf8",
            "-subj",
            "/C=CN/O=盘锦市公安局/CN=盘锦市公安局印章CA",
            "-out",
            "ca.pem",
        ],
    );
    ok(
        d,
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            "seal.key",
        ],
    );
    ok(
        d,
        &[
            "req",
            "-new",
            "-key",
            "seal.key",
            "-utf8",
            "-subj",
            "/C=CN/O=盘锦市公安局/CN=盘锦市公安局公章",
            "-out",
            "seal.csr",
        ],
    );
    write(
        d,
        "seal.ext",
        "basicConstraints=critical,CA:FALSE\n\
         keyUsage=critical,digitalSignature,nonRepudiation\n\
         extendedKeyUsage=1.3.6.1.5.5.7.3.36\n\
         subjectKeyIdentifier=hash\n\
         authorityKeyIdentifier=keyid\n",
    );
    ok(
        d,
        &[
            "x509",
            "-req",
            "-in",
            "seal.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "365",
            "-sha256",
            "-extfile",
            "seal.ext",
            "-out",
            "seal.pem",
        ],
    );
    ok(
        d,
        &[
            "pkcs8",
            "-topk8",
            "-nocrypt",
            "-in",
            "seal.key",
            "-out",
            "seal.p8.pem",
        ],
    );
    let read = |name: &str| std::fs::read_to_string(d.join(name)).unwrap();

    let pki = city_at_real_now();
    let mut trust = TrustAnchors::from_pem(&pki.root.cert_pem()).unwrap();
    trust.add_pem(&read("ca.pem")).unwrap();
    let request = ImportRequest {
        cert_pem: read("seal.pem"),
        key_pem: read("seal.p8.pem"),
        chain_pem: vec![],
        dept_code: "GAJ".to_owned(),
        seal_type: SealType::Official,
        image_digest: sha(b"police seal image"),
    };
    let at = Utc::now();
    let imported = import_seal(&pki.issuing, &request, &trust, at).unwrap();
    assert_eq!(imported.record.info().name, "盘锦市公安局公章");
    assert!(imported.seal_id().starts_with("GAJ-"));

    // Without the operator anchor, the import is refused with a chain error.
    let city_only = TrustAnchors::from_pem(&pki.root.cert_pem()).unwrap();
    assert!(matches!(
        import_seal(&pki.issuing, &request, &city_only, at),
        Err(SealError::Chain(_))
    ));
    // The key of another seal does not match.
    let mut wrong_key = request.clone();
    wrong_key.key_pem = seal_at_real_now(&pki).key.to_pkcs8_pem().to_string();
    assert!(matches!(
        import_seal(&pki.issuing, &wrong_key, &trust, at),
        Err(SealError::Key(bohai_certs::KeyError::Mismatch))
    ));
    // The CA certificate itself is not a seal certificate.
    let mut ca_as_seal = request.clone();
    ca_as_seal.cert_pem = read("ca.pem");
    assert!(import_seal(&pki.issuing, &ca_as_seal, &trust, at).is_err());

    let key = imported.into_seal_key().unwrap();
    let sig = sign_document(&key, sha(DOCUMENT), at).unwrap();
    let der = sig.to_der().unwrap();
    // The department CA publishes no CRL here, so revocation is allowed to be unknown.
    let policy = VerifyPolicy {
        revocation: bohai_certs::RevocationPolicy::AllowUnknown,
        ..VerifyPolicy::default()
    };
    let ctx = VerifyContext {
        trust: &trust,
        crls: &[],
        at,
        policy,
    };
    let (report, verified) = verify_seal_signature(sha(DOCUMENT), &der, &ctx);
    assert_eq!(report.overall, Verdict::Valid, "{report:#?}");
    assert_eq!(verified.unwrap().organization(), Some("盘锦市公安局"));
    // Under the default policy the missing CRL leaves the result undecided.
    let strict = VerifyContext {
        policy: VerifyPolicy::default(),
        ..ctx
    };
    assert_eq!(
        verify_seal_signature(sha(DOCUMENT), &der, &strict)
            .0
            .overall,
        Verdict::Indeterminate
    );
}

/// An OpenSSL-made seal certificate without nonRepudiation is refused at import.
#[test]
fn openssl_seal_without_non_repudiation_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(
        d,
        &[
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-noout",
            "-out",
            "ca.key",
        ],
    );
    ok(
        d,
        &[
            "req",
            "-x509",
            "-new",
            "-key",
            "ca.key",
            "-sha256",
            "-days",
            "30",
            "-subj",
            "/C=CN/CN=Dept CA",
            "-out",
            "ca.pem",
        ],
    );
    ok(
        d,
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            "seal.key",
        ],
    );
    ok(
        d,
        &[
            "req", "-new", "-key", "seal.key", "-subj", "/CN=seal", "-out", "seal.csr",
        ],
    );
    write(
        d,
        "seal.ext",
        "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n\
         extendedKeyUsage=1.3.6.1.5.5.7.3.36\n",
    );
    ok(
        d,
        &[
            "x509",
            "-req",
            "-in",
            "seal.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "10",
            "-extfile",
            "seal.ext",
            "-out",
            "seal.pem",
        ],
    );
    let read = |name: &str| std::fs::read_to_string(d.join(name)).unwrap();
    let pki = city_at_real_now();
    let mut trust = TrustAnchors::from_pem(&pki.root.cert_pem()).unwrap();
    trust.add_pem(&read("ca.pem")).unwrap();
    let request = ImportRequest {
        cert_pem: read("seal.pem"),
        key_pem: read("seal.key"),
        chain_pem: vec![],
        dept_code: "X".to_owned(),
        seal_type: SealType::Business,
        image_digest: [0; 32],
    };
    assert!(matches!(
        import_seal(&pki.issuing, &request, &trust, Utc::now()),
        Err(SealError::KeyUsage)
    ));
}
