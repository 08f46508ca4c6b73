//! Interoperability with the OpenSSL command line (`openssl` 3.x on PATH): chains, CRLs and
//! the seal signature's TBS bytes, and a department CA made entirely with OpenSSL.

#![allow(clippy::unwrap_used)] // a test that cannot unwrap should fail loudly

mod common;

use bohai_certs::{
    check_crl_signed_by_anchor, crl_to_pem, import_seal, read_crl, sign_document,
    verify_seal_signature, CrlError, ImportRequest, ReasonCode, SealError, SealType, TrustAnchors,
    Verdict, VerifyContext, VerifyPolicy,
};
use bohai_certs_testkit::{DeptCa, Openssl};
use chrono::Utc;
use common::*;

#[test]
fn openssl_verifies_the_seal_chain_and_honours_the_crl() {
    let dir = tempfile::tempdir().unwrap();
    let o = Openssl::in_dir(dir.path());
    let pki = city_at_real_now();
    let revoked = seal_at_real_now(&pki);
    let good = seal_at_real_now(&pki);
    let revoked_serial = revoked.clone().into_seal_key().unwrap().serial().to_vec();
    o.write("root.pem", pki.root.cert_pem());
    o.write("issuing.pem", pki.issuing.cert_pem());
    o.write("revoked.pem", revoked.cert_pem());
    o.write("good.pem", good.cert_pem());
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
    o.write("crl.pem", crl_to_pem(&crl));

    let out = o.ok(&[
        "verify",
        "-CAfile",
        "root.pem",
        "-untrusted",
        "issuing.pem",
        "good.pem",
    ]);
    assert!(out.contains("good.pem: OK"), "{out}");

    let text = o.ok(&["crl", "-in", "crl.pem", "-noout", "-text"]);
    assert!(text.contains("Certificate Revocation List"), "{text}");
    assert!(text.contains("Superseded"), "{text}");
    assert!(text.contains("X509v3 Authority Key Identifier"), "{text}");
    assert!(text.contains("X509v3 CRL Number"), "{text}");

    let crl_check = |leaf: &str| {
        o.run(&[
            "verify",
            "-crl_check",
            "-CRLfile",
            "crl.pem",
            "-CAfile",
            "root.pem",
            "-untrusted",
            "issuing.pem",
            leaf,
        ])
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
    let text = o.ok(&["x509", "-in", "good.pem", "-noout", "-text"]);
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
    let o = Openssl::in_dir(dir.path());
    let pki = city_at_real_now();
    let issued = seal_at_real_now(&pki);
    o.write("seal.pem", issued.cert_pem());
    let key = issued.into_seal_key().unwrap();
    let sig = sign(&key, Utc::now());
    o.write("tbs.der", sig.tbs_der());
    o.write("sig.bin", sig.signature_bytes());
    o.write("signature.der", sig.to_der().unwrap());
    o.ok(&[
        "x509", "-in", "seal.pem", "-pubkey", "-noout", "-out", "pub.pem",
    ]);
    let dgst_verify = || {
        o.run(&[
            "dgst",
            "-sha256",
            "-verify",
            "pub.pem",
            "-signature",
            "sig.bin",
            "tbs.der",
        ])
    };
    let out = dgst_verify();
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("Verified OK"),
        "{out:?}"
    );
    // OpenSSL's ASN.1 parser reads the whole structure.
    let out = o.ok(&["asn1parse", "-inform", "DER", "-in", "signature.der"]);
    assert!(out.contains("bohai-detached-v1"), "{out}");
    assert!(out.contains("ecdsa-with-SHA256"), "{out}");

    // A flipped TBS byte no longer verifies.
    let mut tbs = sig.tbs_der().to_vec();
    let last = tbs.len() - 1;
    tbs[last] ^= 1;
    o.write("tbs.der", tbs);
    assert!(!dgst_verify().status.success());
}

/// A department CA made with OpenSSL in `dir` and a seal certificate under it; the city PKI;
/// the anchors (city root plus the department CA); and the import request for the seal.
fn operator_seal(
    dir: &std::path::Path,
    dept_code: &str,
) -> (DeptCa, bohai_certs::CityPki, TrustAnchors, ImportRequest) {
    let ca = DeptCa::new(dir, "/C=CN/O=盘锦市公安局/CN=盘锦市公安局印章CA");
    let files = ca.issue_seal("seal", "/C=CN/O=盘锦市公安局/CN=盘锦市公安局公章");
    let pki = city_at_real_now();
    let mut trust = TrustAnchors::from_pem(&pki.root.cert_pem()).unwrap();
    trust.add_pem(&ca.cert_pem()).unwrap();
    let request = ImportRequest {
        cert_pem: ca.openssl().read(&files.cert),
        key_pem: ca.openssl().read(&files.key_pkcs8),
        chain_pem: vec![],
        dept_code: dept_code.to_owned(),
        seal_type: SealType::Official,
        image_digest: sha(b"police seal image"),
    };
    (ca, pki, trust, request)
}

/// An operator-added department CA made with the OpenSSL command line, and a seal
/// certificate under it with the seal profile; `import_seal` accepts it and it signs.
#[test]
fn seal_made_with_openssl_is_imported_and_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, pki, trust, request) = operator_seal(dir.path(), "GAJ");
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
    ca_as_seal.cert_pem = ca.cert_pem();
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
        revoked_seals: &[],
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

/// The CRL of an operator-added department CA, made with `openssl ca -gencrl`: read as PEM,
/// checked against the anchors, and used by the verifier: VALID while the seal is not
/// listed, INVALID (CERT_REVOKED) once `openssl ca -revoke` lists it.
#[test]
fn openssl_made_crls_of_an_operator_ca_decide_revocation() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, pki, trust, request) = operator_seal(dir.path(), "public-security");
    let at = Utc::now();
    let key = import_seal(&pki.issuing, &request, &trust, at)
        .unwrap()
        .into_seal_key()
        .unwrap();
    let der = sign_document(&key, sha(DOCUMENT), at)
        .unwrap()
        .to_der()
        .unwrap();
    let verdict = |crls: &[Vec<u8>]| {
        let ctx = VerifyContext {
            trust: &trust,
            crls,
            at,
            policy: VerifyPolicy::default(),
            revoked_seals: &[],
        };
        verify_seal_signature(sha(DOCUMENT), &der, &ctx).0
    };
    assert_eq!(verdict(&[]).overall, Verdict::Indeterminate);

    let empty = read_crl(&std::fs::read(ca.crl("empty.crl")).unwrap()).unwrap();
    let info = check_crl_signed_by_anchor(&empty, &trust).unwrap();
    assert_eq!(info.revoked, 0);
    assert!(
        info.issuer.contains("盘锦市公安局印章CA"),
        "{}",
        info.issuer
    );
    let report = verdict(&[empty]);
    assert_eq!(report.overall, Verdict::Valid, "{report:#?}");

    ca.revoke("seal.pem");
    let listed = read_crl(&std::fs::read(ca.crl("revoked.crl")).unwrap()).unwrap();
    assert_eq!(
        check_crl_signed_by_anchor(&listed, &trust).unwrap().revoked,
        1
    );
    let report = verdict(std::slice::from_ref(&listed));
    assert_eq!(report.overall, Verdict::Invalid, "{report:#?}");
    assert_eq!(report.problem_codes(), vec![ReasonCode::CertRevoked]);

    // The same CRL is not one of the city's anchors' without the department CA.
    let city_only = TrustAnchors::from_pem(&pki.root.cert_pem()).unwrap();
    assert!(matches!(
        check_crl_signed_by_anchor(&listed, &city_only),
        Err(CrlError::UnknownIssuer { .. })
    ));
}

/// An OpenSSL-made seal certificate without nonRepudiation is refused at import.
#[test]
fn openssl_seal_without_non_repudiation_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ca = DeptCa::new(dir.path(), "/C=CN/CN=Dept CA");
    let files = ca.issue(
        "seal",
        "/CN=seal",
        "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n\
         extendedKeyUsage=1.3.6.1.5.5.7.3.36\n",
        10,
    );
    let read = |name: &str| ca.openssl().read(name);
    let pki = city_at_real_now();
    let mut trust = TrustAnchors::from_pem(&pki.root.cert_pem()).unwrap();
    trust.add_pem(&ca.cert_pem()).unwrap();
    let request = ImportRequest {
        cert_pem: read(&files.cert),
        key_pem: read(&files.key_pkcs8),
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
