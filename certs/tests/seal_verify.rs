//! Seal signature round trips and every failure the verifier reports.

mod common;

use bohai_certs::{
    verify_seal_signature, CheckResult, EncryptedKey, MasterKey, ReasonCode, Report,
    RevocationPolicy, SealSignature, SecretError, Verdict, VerifiedSeal, VerifyContext,
    VerifyPolicy,
};
use chrono::{DateTime, Duration, Utc};
use common::*;
use rcgen::{ExtendedKeyUsagePurpose as Eku, KeyUsagePurpose as Ku};

fn verify_with(
    trust: &bohai_certs::TrustAnchors,
    crls: &[Vec<u8>],
    at: DateTime<Utc>,
    policy: VerifyPolicy,
    document: &[u8],
    sig_der: &[u8],
) -> (Report, Option<VerifiedSeal>) {
    let ctx = VerifyContext {
        trust,
        crls,
        at,
        policy,
        revoked_seals: &[],
    };
    verify_seal_signature(sha(document), sig_der, &ctx)
}

fn code_of(report: &Report, check: &str) -> ReasonCode {
    report
        .check(check)
        .unwrap_or_else(|| panic!("no {check} line"))
        .code
}

fn doc_document_signing() -> Eku {
    Eku::Other(vec![1, 3, 6, 1, 5, 5, 7, 3, 36])
}

#[test]
fn sign_then_verify_is_valid_with_every_check_passed() {
    let pki = city();
    let key = seal(&pki).into_seal_key().unwrap();
    let sig = sign(&key, now());
    let der = sig.to_der().unwrap();
    let crls = crls(&pki, &[vec![0x42; 16]]);
    let (report, verified) = verify_with(
        &trust(&pki),
        &crls,
        now() + Duration::hours(1),
        VerifyPolicy::default(),
        DOCUMENT,
        &der,
    );
    assert_eq!(report.overall, Verdict::Valid, "{report:#?}");
    assert_eq!(report.checks.len(), 10);
    for check in &report.checks {
        assert_eq!(check.result, CheckResult::Pass, "{check:?}");
        assert_eq!(check.code, ReasonCode::Ok);
    }
    let verified = verified.expect("VALID yields a VerifiedSeal");
    assert_eq!(verified.seal_name(), "盘锦市市场监督管理局公章");
    assert_eq!(verified.organization(), Some("盘锦市市场监督管理局"));
    assert_eq!(verified.credit_code(), Some("91350100M000100Y43"));
    assert_eq!(verified.signing_time(), now());
    assert!(verified.seal_id().starts_with("SCJG-"));

    // The report serializes in the agreed JSON shape.
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["overall"], "VALID");
    assert_eq!(json["checks"][1]["check"], "document_hash");
    assert_eq!(json["checks"][1]["result"], "pass");
    assert_eq!(json["checks"][1]["code"], "OK");

    // PEM armour carries the same signature.
    let from_pem = SealSignature::from_pem(&sig.to_pem().unwrap()).unwrap();
    assert_eq!(from_pem.to_der().unwrap(), der);
}

#[test]
fn tampered_document_is_invalid() {
    let pki = city();
    let key = seal(&pki).into_seal_key().unwrap();
    let der = sign(&key, now()).to_der().unwrap();
    let crls = crls(&pki, &[]);
    let (report, verified) = verify_with(
        &trust(&pki),
        &crls,
        now(),
        VerifyPolicy::default(),
        b"another document",
        &der,
    );
    assert_eq!(report.overall, Verdict::Invalid);
    assert_eq!(
        code_of(&report, "document_hash"),
        ReasonCode::DocumentHashMismatch
    );
    assert_eq!(
        report.problem_codes(),
        vec![ReasonCode::DocumentHashMismatch]
    );
    assert!(verified.is_none());
}

#[test]
fn tampered_tbs_byte_is_signature_invalid() {
    let pki = city();
    let key = seal(&pki).into_seal_key().unwrap();
    let der = sign(&key, now()).to_der().unwrap();
    // Change one byte of dataHash inside TBS_Sign and present the matching document hash,
    // so the only thing wrong is the signature over the TBS bytes.
    let hash = sha(DOCUMENT);
    let pos = der
        .windows(32)
        .position(|w| w == hash)
        .expect("dataHash in the DER");
    let mut tampered = der.clone();
    tampered[pos] ^= 0x01;
    let mut tampered_hash = hash;
    tampered_hash[0] ^= 0x01;
    let crls = crls(&pki, &[]);
    let ctx = VerifyContext {
        trust: &trust(&pki),
        crls: &crls,
        at: now(),
        policy: VerifyPolicy::default(),
        revoked_seals: &[],
    };
    let (report, _) = verify_seal_signature(tampered_hash, &tampered, &ctx);
    assert_eq!(report.overall, Verdict::Invalid);
    assert_eq!(code_of(&report, "document_hash"), ReasonCode::Ok);
    assert_eq!(report.problem_codes(), vec![ReasonCode::SignatureInvalid]);
}

#[test]
fn untrusted_root_is_chain_untrusted() {
    let pki = city();
    let key = seal(&pki).into_seal_key().unwrap();
    let der = sign(&key, now()).to_der().unwrap();
    let (report, verified) = verify_with(
        &trust(&other_city()),
        &[],
        now(),
        VerifyPolicy::default(),
        DOCUMENT,
        &der,
    );
    assert_eq!(report.overall, Verdict::Invalid);
    assert_eq!(code_of(&report, "chain"), ReasonCode::ChainUntrusted);
    // The record maker (this city's issuing CA) is not trusted either.
    assert_eq!(
        code_of(&report, "seal_record"),
        ReasonCode::SealRecordInvalid
    );
    assert_eq!(
        report.check("revocation").unwrap().result,
        CheckResult::Skipped
    );
    assert!(verified.is_none());
}

#[test]
fn signing_outside_certificate_validity() {
    let pki = city();
    let key = seal(&pki).into_seal_key().unwrap();
    let trust = trust(&pki);
    let crls = crls(&pki, &[]);

    let early = now() - Duration::days(20);
    let der = sign(&key, early).to_der().unwrap();
    let (report, _) = verify_with(
        &trust,
        &crls,
        now(),
        VerifyPolicy::default(),
        DOCUMENT,
        &der,
    );
    assert_eq!(report.overall, Verdict::Invalid);
    assert_eq!(code_of(&report, "chain"), ReasonCode::CertNotYetValid);
    assert_eq!(code_of(&report, "seal_validity"), ReasonCode::SealExpired);

    let late = now() + Duration::days(400);
    let der = sign(&key, late).to_der().unwrap();
    let (report, _) = verify_with(
        &trust,
        &crls,
        late + Duration::hours(1),
        VerifyPolicy::default(),
        DOCUMENT,
        &der,
    );
    assert_eq!(report.overall, Verdict::Invalid);
    assert_eq!(code_of(&report, "chain"), ReasonCode::CertExpired);
    assert_eq!(code_of(&report, "seal_validity"), ReasonCode::SealExpired);
}

#[test]
fn signing_time_in_the_future_is_rejected() {
    let pki = city();
    let key = seal(&pki).into_seal_key().unwrap();
    let der = sign(&key, now() + Duration::days(2)).to_der().unwrap();
    let crls = crls(&pki, &[]);
    let (report, _) = verify_with(
        &trust(&pki),
        &crls,
        now(),
        VerifyPolicy::default(),
        DOCUMENT,
        &der,
    );
    assert_eq!(
        report.problem_codes(),
        vec![ReasonCode::SigningTimeInFuture]
    );
}

#[test]
fn revoked_seal_is_invalid() {
    let pki = city();
    let key = seal(&pki).into_seal_key().unwrap();
    let der = sign(&key, now()).to_der().unwrap();
    let crls = crls(&pki, &[vec![0x42; 16], key.serial().to_vec()]);
    let (report, verified) = verify_with(
        &trust(&pki),
        &crls,
        now(),
        VerifyPolicy::default(),
        DOCUMENT,
        &der,
    );
    assert_eq!(report.overall, Verdict::Invalid);
    assert_eq!(report.problem_codes(), vec![ReasonCode::CertRevoked]);
    assert!(verified.is_none());
}

#[test]
fn revoked_intermediate_is_invalid_when_the_root_crl_is_given() {
    let pki = city();
    let key = seal(&pki).into_seal_key().unwrap();
    let der = sign(&key, now()).to_der().unwrap();
    let issuing_serial = {
        use x509_parser::prelude::{FromDer, X509Certificate};
        let (_, c) = X509Certificate::from_der(pki.issuing.cert_der()).unwrap();
        c.raw_serial().to_vec()
    };
    let crls = vec![crl(&pki.issuing, &[]), crl(&pki.root, &[issuing_serial])];
    let (report, _) = verify_with(
        &trust(&pki),
        &crls,
        now(),
        VerifyPolicy::default(),
        DOCUMENT,
        &der,
    );
    assert_eq!(report.problem_codes(), vec![ReasonCode::CertRevoked]);
}

/// A CRL of `issuer` listing `revoked`, numbered `number`, made `days_ago`.
fn crl_of(
    issuer: &bohai_certs::CaCert,
    revoked: &[Vec<u8>],
    number: u64,
    days_ago: i64,
) -> Vec<u8> {
    let entries: Vec<bohai_certs::RevokedSeal> = revoked
        .iter()
        .map(|serial| bohai_certs::RevokedSeal {
            serial: serial.clone(),
            revoked_at: now() - Duration::days(days_ago),
            reason: bohai_certs::RevocationReason::KeyCompromise,
        })
        .collect();
    let this_update = now() - Duration::days(days_ago);
    bohai_certs::issue_crl(
        issuer,
        &entries,
        number,
        this_update,
        now() + Duration::days(6),
    )
    .expect("a CRL")
}

/// The serial number of a certificate (DER), as CRLs list it.
fn serial_of(der: &[u8]) -> Vec<u8> {
    use x509_parser::prelude::{FromDer, X509Certificate};
    X509Certificate::from_der(der)
        .expect("a certificate")
        .1
        .raw_serial()
        .to_vec()
}

/// Per issuer, the newest CRL whose signature verifies under that issuer's key decides: an
/// older CRL of the same issuer, one that merely names the issuer (signed by another key,
/// newer still), or one of the same date with a lower CRL number, configured first, cannot
/// hide a revocation, of the issuing CA or of the seal.
#[test]
fn the_newest_crl_that_verifies_decides_whatever_is_configured_before_it() {
    let pki = city();
    // The same names, other keys: CRLs "of" the city's CAs that the city never signed.
    let impostor = bohai_certs::init_city_ca(
        &bohai_certs::CaNames::for_city("盘锦市", "盘锦市人民政府"),
        now() - Duration::days(30),
    )
    .unwrap();
    let issued = seal(&pki);
    let seal_serial = serial_of(&issued.cert_der);
    let issuing_serial = serial_of(pki.issuing.cert_der());
    let der = sign(&issued.into_seal_key().unwrap(), now())
        .to_der()
        .unwrap();
    let judge = |crls: Vec<Vec<u8>>| {
        verify_with(
            &trust(&pki),
            &crls,
            now(),
            VerifyPolicy::default(),
            DOCUMENT,
            &der,
        )
        .0
    };
    let issuing_ok = crl_of(&pki.issuing, &[], 1, 1);

    // The issuing CA, revoked by the root.
    let revoking = crl_of(&pki.root, std::slice::from_ref(&issuing_serial), 2, 2);
    for (case, hiding) in [
        ("older", crl_of(&pki.root, &[], 1, 3)),
        ("newer, another key", crl_of(&impostor.root, &[], 9, 0)),
        ("the same day, a lower number", crl_of(&pki.root, &[], 1, 2)),
    ] {
        let report = judge(vec![issuing_ok.clone(), hiding.clone(), revoking.clone()]);
        assert_eq!(
            report.problem_codes(),
            vec![ReasonCode::CertRevoked],
            "{case}: {report:#?}"
        );
        // Only the hiding CRL: the root's own (older, or the same day) does not list the
        // issuing CA, and is what the verifier knows; one the root never signed says nothing,
        // so the issuing CA's status is unknown.
        let report = judge(vec![issuing_ok.clone(), hiding]);
        if case == "newer, another key" {
            assert_eq!(
                report.problem_codes(),
                vec![ReasonCode::RevocationUnknown],
                "{report:#?}"
            );
        } else {
            assert_eq!(report.overall, Verdict::Valid, "{report:#?}");
        }
    }

    // The seal, revoked by the issuing CA.
    let revoking = crl_of(&pki.issuing, &[seal_serial], 2, 2);
    for (case, hiding) in [
        ("older", crl_of(&pki.issuing, &[], 1, 3)),
        ("newer, another key", crl_of(&impostor.issuing, &[], 9, 0)),
        (
            "the same day, a lower number",
            crl_of(&pki.issuing, &[], 1, 2),
        ),
    ] {
        let report = judge(vec![hiding, revoking.clone()]);
        assert_eq!(
            report.problem_codes(),
            vec![ReasonCode::CertRevoked],
            "{case}: {report:#?}"
        );
    }
    // Only an impostor's CRL: no usable CRL, the revocation is unknown.
    let report = judge(vec![crl_of(&impostor.issuing, &[], 9, 0)]);
    assert_eq!(report.overall, Verdict::Indeterminate, "{report:#?}");
    assert_eq!(report.problem_codes(), vec![ReasonCode::RevocationUnknown]);
}

#[test]
fn missing_crl_follows_the_revocation_policy() {
    let pki = city();
    let key = seal(&pki).into_seal_key().unwrap();
    let der = sign(&key, now()).to_der().unwrap();
    // A CRL from another issuer does not count.
    let crls = vec![crl(&other_city().issuing, &[])];
    let (report, verified) = verify_with(
        &trust(&pki),
        &crls,
        now(),
        VerifyPolicy::default(),
        DOCUMENT,
        &der,
    );
    assert_eq!(report.overall, Verdict::Indeterminate);
    assert_eq!(report.problem_codes(), vec![ReasonCode::RevocationUnknown]);
    assert!(verified.is_none());

    let lenient = VerifyPolicy {
        revocation: RevocationPolicy::AllowUnknown,
        ..VerifyPolicy::default()
    };
    let (report, verified) = verify_with(&trust(&pki), &[], now(), lenient, DOCUMENT, &der);
    assert_eq!(report.overall, Verdict::Valid);
    let line = report.check("revocation").unwrap();
    assert_eq!(line.result, CheckResult::Skipped);
    assert_eq!(line.code, ReasonCode::RevocationUnknown);
    assert!(verified.is_some());
}

#[test]
fn expired_crl_is_indeterminate() {
    let pki = city();
    let key = seal(&pki).into_seal_key().unwrap();
    let der = sign(&key, now()).to_der().unwrap();
    let crls = crls(&pki, &[]);
    let (report, _) = verify_with(
        &trust(&pki),
        &crls,
        now() + Duration::days(30),
        VerifyPolicy::default(),
        DOCUMENT,
        &der,
    );
    assert_eq!(report.overall, Verdict::Indeterminate);
    assert_eq!(report.problem_codes(), vec![ReasonCode::CrlExpired]);
}

#[test]
fn forged_crl_is_not_used() {
    let pki = city();
    let key = seal(&pki).into_seal_key().unwrap();
    let der = sign(&key, now()).to_der().unwrap();
    let mut forged = crl(&pki.issuing, &[]);
    let last = forged.len() - 3;
    forged[last] ^= 0x01; // inside the CRL's signature
    let (report, _) = verify_with(
        &trust(&pki),
        &[forged],
        now(),
        VerifyPolicy::default(),
        DOCUMENT,
        &der,
    );
    assert_eq!(report.overall, Verdict::Indeterminate);
    assert_eq!(report.problem_codes(), vec![ReasonCode::RevocationUnknown]);
}

#[test]
fn certificate_without_non_repudiation_is_key_usage_missing() {
    let pki = city();
    let key = custom_seal(
        &pki,
        vec![Ku::DigitalSignature],
        vec![doc_document_signing()],
    );
    let der = sign(&key, now()).to_der().unwrap();
    let crls = crls(&pki, &[]);
    let (report, _) = verify_with(
        &trust(&pki),
        &crls,
        now(),
        VerifyPolicy::default(),
        DOCUMENT,
        &der,
    );
    assert_eq!(report.overall, Verdict::Invalid);
    assert_eq!(report.problem_codes(), vec![ReasonCode::KeyUsageMissing]);
}

#[test]
fn certificate_without_document_signing_eku_is_eku_missing() {
    let pki = city();
    let ku = vec![Ku::DigitalSignature, Ku::ContentCommitment];
    for ekus in [vec![], vec![Eku::ClientAuth]] {
        let key = custom_seal(&pki, ku.clone(), ekus);
        let der = sign(&key, now()).to_der().unwrap();
        let crls = crls(&pki, &[]);
        let (report, _) = verify_with(
            &trust(&pki),
            &crls,
            now(),
            VerifyPolicy::default(),
            DOCUMENT,
            &der,
        );
        assert_eq!(report.overall, Verdict::Invalid);
        assert_eq!(
            code_of(&report, "extended_key_usage"),
            ReasonCode::EkuMissing
        );
    }
    // Control: the same construction with the EKU verifies.
    let key = custom_seal(&pki, ku, vec![doc_document_signing()]);
    let der = sign(&key, now()).to_der().unwrap();
    let crls = crls(&pki, &[]);
    let (report, _) = verify_with(
        &trust(&pki),
        &crls,
        now(),
        VerifyPolicy::default(),
        DOCUMENT,
        &der,
    );
    assert_eq!(report.overall, Verdict::Valid, "{report:#?}");
}

#[test]
fn record_from_an_untrusted_maker_is_seal_record_invalid() {
    let pki = city();
    let other = other_city();
    let issued = seal(&pki);
    // The other city's issuing CA re-makes the record for this certificate.
    let forged_record =
        bohai_certs::SealRecord::make(issued.record.info().clone(), &other.issuing).unwrap();
    let key = bohai_certs::SealKey::new(
        issued.cert_der.clone(),
        issued.key.clone(),
        forged_record,
        issued.chain.clone(),
    )
    .unwrap();
    let der = sign(&key, now()).to_der().unwrap();
    let crls = crls(&pki, &[]);
    let (report, _) = verify_with(
        &trust(&pki),
        &crls,
        now(),
        VerifyPolicy::default(),
        DOCUMENT,
        &der,
    );
    assert_eq!(report.problem_codes(), vec![ReasonCode::SealRecordInvalid]);
}

#[test]
fn truncated_and_garbage_input_is_malformed_never_a_panic() {
    let pki = city();
    let key = seal(&pki).into_seal_key().unwrap();
    let der = sign(&key, now()).to_der().unwrap();
    let trust = trust(&pki);
    let mut inputs: Vec<Vec<u8>> = vec![
        vec![],
        vec![0x30],
        vec![0x30, 0x80],
        vec![0xff; 100],
        b"-----BEGIN BOHAI SEAL SIGNATURE-----".to_vec(),
        vec![0x30; 70 * 1024],
    ];
    inputs.extend((0..der.len()).step_by(13).map(|n| der[..n].to_vec()));
    for input in &inputs {
        let (report, verified) =
            verify_with(&trust, &[], now(), VerifyPolicy::default(), DOCUMENT, input);
        assert_eq!(report.overall, Verdict::Invalid);
        assert_eq!(code_of(&report, "parse"), ReasonCode::Malformed);
        assert_eq!(report.checks.len(), 10);
        assert!(verified.is_none());
    }
    // Single-byte corruptions anywhere: never a panic, never VALID.
    for i in 0..der.len() {
        let mut bad = der.clone();
        bad[i] ^= 0x80;
        let (report, _) = verify_with(&trust, &[], now(), VerifyPolicy::default(), DOCUMENT, &bad);
        assert_ne!(report.overall, Verdict::Valid, "byte {i}");
    }
}

#[test]
fn seal_key_encrypted_at_rest() {
    let pki = city();
    let issued = seal(&pki);
    let master = MasterKey::generate().unwrap();
    let stored = EncryptedKey::encrypt(&master, issued.seal_id(), &issued.key)
        .unwrap()
        .to_string();
    let loaded: EncryptedKey = stored.parse().unwrap();
    let key = loaded.decrypt(&master, issued.seal_id()).unwrap();
    assert_eq!(key.expose_secret(), issued.key.expose_secret());
    let wrong = MasterKey::generate().unwrap();
    assert!(matches!(
        loaded.decrypt(&wrong, issued.seal_id()),
        Err(SecretError::DecryptFailed)
    ));
    // Nothing secret in Debug output.
    let debug = format!("{issued:?} {master:?} {:?}", pki.issuing);
    assert!(debug.contains("REDACTED"));
    assert!(!debug.contains(&format!("{:?}", issued.key.expose_secret())));
}

/// With the seal image at hand the verifier adds a `seal_image` line: PASS for the image the
/// record names, SEAL_RECORD_INVALID for another image or another type.
#[test]
fn the_seal_image_is_checked_against_the_record_when_given() {
    use bohai_certs::{issue_seal_with_image, verify_seal_signature_with_image, SealImage};
    let pki = city();
    let image = SealImage::official_svg("盘锦市市场监督管理局", bohai_certs::SealType::Official);
    let issued =
        issue_seal_with_image(&pki.issuing, &request(), &image, now() - Duration::days(10))
            .unwrap();
    assert_eq!(issued.record.info().picture_digest, image.digest());
    let key = issued.into_seal_key().unwrap();
    let der = sign(&key, now()).to_der().unwrap();
    let crls = crls(&pki, &[]);
    let trust = trust(&pki);
    let ctx = VerifyContext {
        trust: &trust,
        crls: &crls,
        at: now() + Duration::hours(1),
        policy: VerifyPolicy::default(),
        revoked_seals: &[],
    };
    let (report, verified) =
        verify_seal_signature_with_image(sha(DOCUMENT), &der, &ctx, Some(&image));
    assert_eq!(report.overall, Verdict::Valid, "{report:#?}");
    assert!(verified.is_some());
    assert_eq!(report.checks.len(), 11);
    let names: Vec<&str> = report.checks.iter().map(|c| c.check.as_str()).collect();
    let at = names.iter().position(|n| *n == "seal_record").unwrap();
    assert_eq!(names[at + 1], "seal_image");

    let other = SealImage::official_svg("盘锦市公安局", bohai_certs::SealType::Official);
    let (report, verified) =
        verify_seal_signature_with_image(sha(DOCUMENT), &der, &ctx, Some(&other));
    assert_eq!(report.overall, Verdict::Invalid);
    assert!(verified.is_none());
    assert_eq!(
        code_of(&report, "seal_image"),
        ReasonCode::SealRecordInvalid
    );
    assert_eq!(report.problem_codes(), vec![ReasonCode::SealRecordInvalid]);

    // Without the image, the report is the usual ten lines.
    let (report, _) = verify_seal_signature(sha(DOCUMENT), &der, &ctx);
    assert!(report.check("seal_image").is_none());
    // A signature that does not parse: the image line is skipped like the others.
    let (report, _) =
        verify_seal_signature_with_image(sha(DOCUMENT), &der[..10], &ctx, Some(&image));
    assert_eq!(report.checks.len(), 11);
    assert_eq!(
        report.check("seal_image").unwrap().result,
        CheckResult::Skipped
    );
}

// ---------------------------------------------------------------------------------------
// Negative cases of issue 4, each with its own reason code. Every certificate is made here
// with rcgen; each case changes one thing of a seal that otherwise verifies, so the reason
// code asserted is the only problem in the report unless the case says otherwise.

/// Verifies `der` over [`DOCUMENT`] at `now()` against the city root, with fresh CRLs of the
/// city's CAs that list nothing.
fn verify_city(pki: &bohai_certs::CityPki, der: &[u8]) -> Report {
    let crls = crls(pki, &[]);
    verify_with(
        &trust(pki),
        &crls,
        now(),
        VerifyPolicy::default(),
        DOCUMENT,
        der,
    )
    .0
}

#[test]
fn tampered_signature_value_is_signature_invalid() {
    let pki = city();
    let key = seal(&pki).into_seal_key().unwrap();
    let mut der = sign(&key, now()).to_der().unwrap();
    // The last byte is the last byte of s in the Ecdsa-Sig-Value.
    *der.last_mut().unwrap() ^= 0x01;
    let report = verify_city(&pki, &der);
    assert_eq!(report.overall, Verdict::Invalid);
    assert_eq!(report.problem_codes(), vec![ReasonCode::SignatureInvalid]);
}

/// Department B (the public security bureau) holds its own genuine seal and wants a document
/// to carry department A's (the market regulator's) seal.
#[test]
fn signed_with_another_departments_key() {
    let pki = city();
    let a = seal(&pki);
    let mut b_request = request();
    b_request.dept_code = "GA".to_owned();
    b_request.dept_name_zh = "盘锦市公安局".to_owned();
    b_request.credit_code = "11211100MB00000017".to_owned();
    b_request.seal_name = "盘锦市公安局公章".to_owned();
    let b = bohai_certs::issue_seal(&pki.issuing, &b_request, now() - Duration::days(10)).unwrap();
    let b_key = rcgen::KeyPair::try_from(b.key.expose_secret()).unwrap();
    let a_key = rcgen::KeyPair::try_from(a.key.expose_secret()).unwrap();
    let issuing = pki.issuing.cert_der().to_vec();
    let a_chain = vec![a.cert_der.clone(), issuing.clone()];
    let b_chain = vec![b.cert_der.clone(), issuing];
    let sign_as = |chain: &[Vec<u8>], key: &rcgen::KeyPair| {
        hand_made_signature(
            &a.record,
            now(),
            sha(DOCUMENT),
            chain,
            key,
            &ECDSA_WITH_SHA256_DER,
        )
    };

    // Control: the hand-made structure signed by A's own key is A's valid seal signature.
    let report = verify_city(&pki, &sign_as(&a_chain, &a_key));
    assert_eq!(report.overall, Verdict::Valid, "{report:#?}");

    // A's record spliced onto B's certificate and key: signature and chain are B's and good,
    // but the record names A's certificate.
    let report = verify_city(&pki, &sign_as(&b_chain, &b_key));
    assert_eq!(report.overall, Verdict::Invalid);
    assert_eq!(report.problem_codes(), vec![ReasonCode::SealCertMismatch]);
    assert_eq!(
        code_of(&report, "seal_record"),
        ReasonCode::SealCertMismatch
    );
    assert!(report
        .check("seal_record")
        .unwrap()
        .message_en
        .contains("another seal's key"));

    // A's record and certificate, signed with B's key: the signature does not verify with
    // A's key. Without B's certificate in the signature this cannot be told from a tampered
    // signature value, so it shares SIGNATURE_INVALID.
    let report = verify_city(&pki, &sign_as(&a_chain, &b_key));
    assert_eq!(report.overall, Verdict::Invalid);
    assert_eq!(report.problem_codes(), vec![ReasonCode::SignatureInvalid]);
}

#[test]
fn ca_certificate_used_as_a_seal_is_ca_cert_as_seal() {
    let pki = city();
    // A CA certificate with the whole seal profile besides cA TRUE (and keyCertSign).
    let key = p256_key();
    let mut params = seal_params("盘锦市市场监督管理局CA");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.key_usages.push(Ku::KeyCertSign);
    let cert = issued_by_city(&pki, params, &key);
    let seal = seal_key_from(&pki, cert, &key, vec![pki.issuing.cert_der().to_vec()]);
    let report = verify_city(&pki, &sign(&seal, now()).to_der().unwrap());
    assert_eq!(report.overall, Verdict::Invalid);
    assert_eq!(report.problem_codes(), vec![ReasonCode::CaCertAsSeal]);

    // The city issuing CA's own certificate and key used to seal: the chain says so first
    // (its key usages and EKU are a CA's, so those lines fail as well).
    let issuing = rcgen::KeyPair::try_from(pki.issuing.key().expose_secret()).unwrap();
    let seal = seal_key_from(&pki, pki.issuing.cert_der().to_vec(), &issuing, vec![]);
    let report = verify_city(&pki, &sign(&seal, now()).to_der().unwrap());
    assert_eq!(code_of(&report, "chain"), ReasonCode::CaCertAsSeal);
    assert_eq!(
        report.problem_codes(),
        vec![
            ReasonCode::CaCertAsSeal,
            ReasonCode::KeyUsageMissing,
            ReasonCode::EkuMissing
        ]
    );
}

#[test]
fn self_signed_seal_certificate_is_self_signed_leaf() {
    let pki = city();
    let key = p256_key();
    let cert = seal_params("盘锦市市场监督管理局公章")
        .self_signed(&key)
        .unwrap()
        .der()
        .to_vec();
    for chain in [vec![], vec![pki.issuing.cert_der().to_vec()]] {
        let seal = seal_key_from(&pki, cert.clone(), &key, chain);
        let report = verify_city(&pki, &sign(&seal, now()).to_der().unwrap());
        assert_eq!(report.overall, Verdict::Invalid);
        assert_eq!(report.problem_codes(), vec![ReasonCode::SelfSignedLeaf]);
    }
}

#[test]
fn path_length_exceeded_is_path_length_exceeded() {
    let pki = city();
    // The issuing CA has pathLen 0, yet issued a department CA that issued the seal.
    let dept_ca_key = p256_key();
    let dept_ca_params = ca_params(
        "盘锦市市场监督管理局自建CA",
        rcgen::BasicConstraints::Unconstrained,
    );
    let dept_ca = dept_ca_params
        .clone()
        .signed_by(&dept_ca_key, &rcgen_issuer(&pki.issuing))
        .unwrap();
    let dept_issuer = rcgen::Issuer::new(dept_ca_params, dept_ca_key);
    let key = p256_key();
    let cert = seal_params("盘锦市市场监督管理局公章")
        .signed_by(&key, &dept_issuer)
        .unwrap();
    let chain = vec![dept_ca.der().to_vec(), pki.issuing.cert_der().to_vec()];
    let seal = seal_key_from(&pki, cert.der().to_vec(), &key, chain);
    let report = verify_city(&pki, &sign(&seal, now()).to_der().unwrap());
    assert_eq!(report.overall, Verdict::Invalid);
    assert_eq!(report.problem_codes(), vec![ReasonCode::PathLengthExceeded]);

    // Control: the same department CA issued by the root (no path length limit) is fine.
    let (dept_ca_params, dept_ca_key) = (
        ca_params(
            "盘锦市市场监督管理局自建CA",
            rcgen::BasicConstraints::Unconstrained,
        ),
        p256_key(),
    );
    let dept_ca = dept_ca_params
        .clone()
        .signed_by(&dept_ca_key, &rcgen_issuer(&pki.root))
        .unwrap();
    let dept_issuer = rcgen::Issuer::new(dept_ca_params, dept_ca_key);
    let cert = seal_params("盘锦市市场监督管理局公章")
        .signed_by(&key, &dept_issuer)
        .unwrap();
    let seal = seal_key_from(
        &pki,
        cert.der().to_vec(),
        &key,
        vec![dept_ca.der().to_vec()],
    );
    let lenient = VerifyPolicy {
        revocation: RevocationPolicy::AllowUnknown,
        ..VerifyPolicy::default()
    };
    let der = sign(&seal, now()).to_der().unwrap();
    let (report, _) = verify_with(&trust(&pki), &[], now(), lenient, DOCUMENT, &der);
    assert_eq!(report.overall, Verdict::Valid, "{report:#?}");
}

#[test]
fn seal_certificate_with_an_unknown_critical_extension_is_rejected() {
    let pki = city();
    let key = p256_key();
    let made = |critical: bool| {
        // A private OID under a made-up enterprise arc, content DER NULL.
        let mut ext =
            rcgen::CustomExtension::from_oid_content(&[1, 3, 6, 1, 4, 1, 99999, 1], vec![5, 0]);
        ext.set_criticality(critical);
        let mut params = seal_params("盘锦市市场监督管理局公章");
        params.custom_extensions = vec![ext];
        let cert = issued_by_city(&pki, params, &key);
        let seal = seal_key_from(&pki, cert, &key, vec![pki.issuing.cert_der().to_vec()]);
        verify_city(&pki, &sign(&seal, now()).to_der().unwrap())
    };
    let report = made(true);
    assert_eq!(report.overall, Verdict::Invalid);
    assert_eq!(
        report.problem_codes(),
        vec![ReasonCode::UnknownCriticalExtension]
    );
    // Control: the same extension, not critical, is ignored.
    let report = made(false);
    assert_eq!(report.overall, Verdict::Valid, "{report:#?}");
}

#[test]
fn unsupported_algorithms_are_algorithm_unsupported() {
    let pki = city();
    // A seal certificate with a P-384 key (validly issued by the city), and a signature made
    // with that key: seal keys must be P-256.
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
    let cert = issued_by_city(&pki, seal_params("盘锦市市场监督管理局公章"), &key);
    let der = hand_made_signature(
        &record_for(&pki, &cert),
        now(),
        sha(DOCUMENT),
        &[cert, pki.issuing.cert_der().to_vec()],
        &key,
        &ECDSA_WITH_SHA256_DER,
    );
    let report = verify_city(&pki, &der);
    assert_eq!(report.overall, Verdict::Invalid);
    assert_eq!(
        report.problem_codes(),
        vec![ReasonCode::AlgorithmUnsupported]
    );
    assert_eq!(
        code_of(&report, "signature"),
        ReasonCode::AlgorithmUnsupported
    );

    // A good signature whose signatureAlgorithm says ecdsa-with-SHA384: the structure's own
    // identifier is the last one in the DER (the record and certificates hold others).
    let seal = seal(&pki).into_seal_key().unwrap();
    let mut der = sign(&seal, now()).to_der().unwrap();
    let at = der
        .windows(ECDSA_WITH_SHA256_DER.len())
        .rposition(|w| w == ECDSA_WITH_SHA256_DER)
        .unwrap();
    der[at + ECDSA_WITH_SHA256_DER.len() - 1] = 0x03;
    let report = verify_city(&pki, &der);
    assert_eq!(report.overall, Verdict::Invalid);
    assert_eq!(code_of(&report, "parse"), ReasonCode::AlgorithmUnsupported);
    assert!(report
        .check("parse")
        .unwrap()
        .message_en
        .contains("1.2.840.10045.4.3.3"));
}

#[test]
fn broken_issuer_chains_are_issuer_chain_broken() {
    let pki = city();
    let mut tampered_issuing = pki.issuing.cert_der().to_vec();
    *tampered_issuing.last_mut().unwrap() ^= 0x01; // inside the issuing CA's signature
    let cases = [
        // The intermediate is missing between the seal and the root carried after it.
        ("missing intermediate", vec![pki.root.cert_der().to_vec()]),
        // An intermediate that did not issue the seal (another city's issuing CA).
        (
            "wrong intermediate",
            vec![other_city().issuing.cert_der().to_vec()],
        ),
        // The issuing CA's certificate with a signature the root's key does not verify.
        ("forged intermediate", vec![tampered_issuing]),
    ];
    for (case, chain) in cases {
        let seal = city_seal_carrying(&pki, chain);
        let report = verify_city(&pki, &sign(&seal, now()).to_der().unwrap());
        assert_eq!(report.overall, Verdict::Invalid, "{case}");
        assert_eq!(
            report.problem_codes(),
            vec![ReasonCode::IssuerChainBroken],
            "{case}: {report:#?}"
        );
    }
    // Only the seal certificate carried: as far as the verifier can tell, its issuer is just
    // one it does not know, as with a seal from an untrusted CA.
    let seal = city_seal_carrying(&pki, vec![]);
    let report = verify_city(&pki, &sign(&seal, now()).to_der().unwrap());
    assert_eq!(report.problem_codes(), vec![ReasonCode::ChainUntrusted]);
}

#[test]
fn seal_certificate_issuing_another_is_ca_constraint_violated() {
    let pki = city();
    // A seal certificate (not a CA) used as the issuer of another seal certificate.
    let middle_key = p256_key();
    let middle_params = seal_params("盘锦市市场监督管理局公章");
    let middle = issued_by_city(&pki, middle_params.clone(), &middle_key);
    let key = p256_key();
    let cert = seal_params("冒充的印章")
        .signed_by(&key, &rcgen::Issuer::new(middle_params, middle_key))
        .unwrap();
    let chain = vec![middle, pki.issuing.cert_der().to_vec()];
    let seal = seal_key_from(&pki, cert.der().to_vec(), &key, chain);
    let report = verify_city(&pki, &sign(&seal, now()).to_der().unwrap());
    assert_eq!(
        report.problem_codes(),
        vec![ReasonCode::CaConstraintViolated]
    );
}

/// The subject of `der` as the verifier names it.
fn subject_of(der: &[u8]) -> String {
    use x509_parser::prelude::{FromDer, X509Certificate};
    X509Certificate::from_der(der)
        .expect("a certificate")
        .1
        .subject()
        .to_string()
}

/// RFC 5280 §6.3: each certificate of the path is checked against its issuer's CRL. With the
/// issuing CA's CRL but none from the root (which alone says whether the issuing CA was
/// revoked), or with the root's past its nextUpdate, the seal's status is not known: the
/// verdict is INDETERMINATE, naming the CA whose status is unknown.
#[test]
fn a_missing_or_stale_crl_of_a_ca_above_the_seal_is_indeterminate_naming_that_ca() {
    let pki = city();
    let key = seal(&pki).into_seal_key().unwrap();
    let der = sign(&key, now()).to_der().unwrap();
    let judge = |crls: Vec<Vec<u8>>, policy: VerifyPolicy| {
        verify_with(&trust(&pki), &crls, now(), policy, DOCUMENT, &der).0
    };
    let issuing_ca = subject_of(pki.issuing.cert_der());

    let report = judge(vec![crl(&pki.issuing, &[])], VerifyPolicy::default());
    assert_eq!(report.overall, Verdict::Indeterminate, "{report:#?}");
    assert_eq!(report.problem_codes(), vec![ReasonCode::RevocationUnknown]);
    let line = report.check("revocation").unwrap();
    assert!(line.message_en.contains(&issuing_ca), "{line:?}");

    // The root's CRL made ten days ago, past its nextUpdate three days ago.
    let stale = bohai_certs::issue_crl(
        &pki.root,
        &[],
        1,
        now() - Duration::days(10),
        now() - Duration::days(3),
    )
    .unwrap();
    let report = judge(vec![crl(&pki.issuing, &[]), stale], VerifyPolicy::default());
    assert_eq!(report.overall, Verdict::Indeterminate, "{report:#?}");
    assert_eq!(report.problem_codes(), vec![ReasonCode::CrlExpired]);
    assert!(report
        .check("revocation")
        .unwrap()
        .message_en
        .contains(&issuing_ca));

    // Both current: VALID.
    let report = judge(crls(&pki, &[]), VerifyPolicy::default());
    assert_eq!(report.overall, Verdict::Valid, "{report:#?}");

    // A verifier that allows an unknown status still says the root's status is unknown.
    let allow = VerifyPolicy {
        revocation: RevocationPolicy::AllowUnknown,
        ..VerifyPolicy::default()
    };
    let report = judge(vec![crl(&pki.issuing, &[])], allow);
    assert_eq!(report.overall, Verdict::Valid, "{report:#?}");
    assert_eq!(
        report.check("revocation").unwrap().result,
        CheckResult::Skipped
    );
}

/// A carried certificate that only bears the name of a CA on the seal's path must not decide
/// that CA's revocation: the seal's issuing CA, revoked by the root, carried behind a decoy
/// with its subject name and issued by another CA whose CRL is at hand, is still revoked.
#[test]
fn a_decoy_bearing_a_revoked_cas_name_does_not_hide_its_revocation() {
    let pki = city();
    let other = other_city();
    let issuing_serial = {
        use x509_parser::prelude::{FromDer, X509Certificate};
        let (_, c) = X509Certificate::from_der(pki.issuing.cert_der()).unwrap();
        c.raw_serial().to_vec()
    };
    // The decoy: the city issuing CA's name, a CA, issued by the other city's issuing CA.
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = {
        use rcgen::{DnType, DnValue};
        let mut dn = rcgen::DistinguishedName::new();
        let country = rcgen::string::PrintableString::try_from("CN").unwrap();
        dn.push(DnType::CountryName, DnValue::PrintableString(country));
        dn.push(
            DnType::OrganizationName,
            DnValue::Utf8String("盘锦市人民政府".to_owned()),
        );
        dn.push(
            DnType::CommonName,
            DnValue::Utf8String("盘锦市电子印章签发证书".to_owned()),
        );
        dn
    };
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.serial_number = Some(rcgen::SerialNumber::from_slice(&[0x5e, 0xc0, 0x01]));
    let decoy = params
        .signed_by(&p256_key(), &rcgen_issuer(&other.issuing))
        .unwrap()
        .der()
        .to_vec();
    assert_eq!(subject_of(&decoy), subject_of(pki.issuing.cert_der()));
    let seal = city_seal_carrying(&pki, vec![decoy, pki.issuing.cert_der().to_vec()]);
    let der = sign(&seal, now()).to_der().unwrap();
    let crls = vec![
        crl(&pki.issuing, &[]),
        crl(&pki.root, &[issuing_serial]),
        crl(&other.issuing, &[]),
    ];
    let (report, _) = verify_with(
        &trust(&pki),
        &crls,
        now(),
        VerifyPolicy::default(),
        DOCUMENT,
        &der,
    );
    assert_eq!(report.overall, Verdict::Invalid, "{report:#?}");
    assert_eq!(report.problem_codes(), vec![ReasonCode::CertRevoked]);
}
