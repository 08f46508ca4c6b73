//! The bodies of the fuzz targets: every parser of `bohai-certs` that takes untrusted bytes,
//! fed the same input. A body returns normally for any input; a panic is a bug.
//!
//! The cargo-fuzz targets in `fuzz_targets/` call these, and `certs/tests/fuzz_bodies.rs`
//! includes this file to feed them a corpus of malformed and mutated inputs on stable Rust.

use bohai_certs::licence::{
    parse_compact, verify_status_list, LicenceInputs, LicencePolicy, LicenceTypes, LicenceVerifier,
    ParsedJws, SealDirectory, StatusList, TypeVerdict,
};
use bohai_certs::{
    read_crl, verify_seal_signature, CertificateInfo, SealImage, SealRecord, SealSignature,
    TrustAnchors, VerifyContext, VerifyPolicy,
};
use chrono::{TimeZone as _, Utc};

/// Certificate and CRL parsing: the certificate facts, a trust anchor from DER, trust anchors
/// from PEM, a CRL from DER or PEM, and a seal image.
pub fn certificate(data: &[u8]) {
    let _ = CertificateInfo::from_der(data);
    let _ = TrustAnchors::new().add_der(data.to_vec());
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = TrustAnchors::from_pem(text);
    }
    let _ = read_crl(data);
    let _ = SealImage::from_bytes(data.to_vec());
}

/// Seal-signature parsing: the signature from DER and PEM, the seal record, and a whole
/// verification of the bytes as a signature (with the same bytes offered as a CRL).
pub fn seal_signature(data: &[u8]) {
    if let Ok(sig) = SealSignature::from_der(data) {
        // What parses must encode back to the same bytes (canonical DER).
        let again = sig.to_der().map(|der| der == data);
        assert!(
            matches!(again, Ok(true)),
            "a parsed signature re-encodes differently"
        );
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = SealSignature::from_pem(text);
    }
    let _ = SealRecord::from_der(data);
    let trust = TrustAnchors::new();
    let crls = [data.to_vec()];
    let at = Utc
        .with_ymd_and_hms(2026, 3, 1, 8, 0, 0)
        .single()
        .unwrap_or_default();
    let ctx = VerifyContext {
        trust: &trust,
        crls: &crls,
        at,
        policy: VerifyPolicy::default(),
        revoked_seals: &[],
    };
    let (report, verified) = verify_seal_signature([0; 32], data, &ctx);
    // Nothing verifies without a trust anchor.
    assert!(!report.is_valid() && verified.is_none());
}

/// Knows no type: every licence type is unknown.
struct NoTypes;

impl LicenceTypes for NoTypes {
    fn judge(&self, _: &str, _: &str, _: &serde_json::Value) -> TypeVerdict {
        TypeVerdict::Unknown
    }

    fn credit_code(&self, _: &str) -> Option<&str> {
        None
    }
    fn seal_department(&self, _: &[u8; 32]) -> Option<&str> {
        None
    }
    fn number_prefix(&self, _: &str) -> Option<&str> {
        None
    }
}

/// Holds no seal.
struct NoSeals;

impl SealDirectory for NoSeals {
    fn chain(&self, _: &str) -> Option<Vec<Vec<u8>>> {
        None
    }
}

/// Licence decoding: the bytes as a licence JWS, a QR payload, a status list token and a
/// compressed status list, and whole verifications of both licence forms.
pub fn licence(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = ParsedJws::parse(text);
    let _ = parse_compact(text);
    let _ = StatusList::decode(text);
    let trust = TrustAnchors::new();
    assert!(verify_status_list(text, &trust, "91350100M000100Y43").is_err());
    let verifier = LicenceVerifier::new(trust, vec![data.to_vec()], LicencePolicy::default());
    let inputs = LicenceInputs {
        status: None,
        types: &NoTypes,
        at: Utc
            .with_ymd_and_hms(2026, 3, 1, 8, 0, 0)
            .single()
            .unwrap_or_default(),
    };
    // Nothing verifies without a trust anchor, a type or a seal.
    assert!(!verifier.verify(text, inputs).0.is_valid());
    assert!(!verifier.verify_compact(text, &NoSeals, inputs).0.is_valid());
}
