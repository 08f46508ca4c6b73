//! The bodies of the fuzz targets: every parser of `bohai-certs` that takes untrusted bytes,
//! fed the same input. A body returns normally for any input; a panic is a bug.
//!
//! The cargo-fuzz targets in `fuzz_targets/` call these, and `certs/tests/fuzz_bodies.rs`
//! includes this file to feed them a corpus of malformed and mutated inputs on stable Rust.

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
    };
    let (report, verified) = verify_seal_signature([0; 32], data, &ctx);
    // Nothing verifies without a trust anchor.
    assert!(!report.is_valid() && verified.is_none());
}
