//! Checks of the certificate that signed a JWS (the `x5c` chain): the same seal-certificate
//! rules as seal signatures (chain to a trust anchor at a given time, keyUsage
//! digitalSignature + nonRepudiation, extended key usage documentSigning).

use rustls_pki_types::CertificateDer;

use super::jws::ParsedJws;
use crate::cert_facts::CertFacts;
use crate::trust::TrustAnchors;
use chrono::{DateTime, Utc};

/// What is wrong with a JWS signer.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub(crate) enum SignerProblem {
    /// No `x5c`, or its first certificate cannot be read.
    #[error("{0}")]
    Malformed(String),
    /// The signature does not verify with the certificate's key.
    #[error("the signature does not verify with the x5c certificate's key")]
    Signature,
    /// The chain does not validate at the time asked.
    #[error("certificate chain: {0}")]
    Chain(webpki::Error),
    /// keyUsage lacks digitalSignature or nonRepudiation.
    #[error("the signer certificate's keyUsage lacks digitalSignature or nonRepudiation")]
    KeyUsage,
    /// extendedKeyUsage lacks documentSigning.
    #[error("the signer certificate's extendedKeyUsage lacks documentSigning")]
    Eku,
}

/// The signer certificate's facts, read from `x5c[0]`.
pub(crate) fn signer_facts(jws: &ParsedJws) -> Result<CertFacts, SignerProblem> {
    let leaf = jws
        .signer_cert()
        .ok_or_else(|| SignerProblem::Malformed("the JWS header has no x5c chain".to_owned()))?;
    CertFacts::from_der(leaf).map_err(|e| SignerProblem::Malformed(format!("x5c[0]: {e}")))
}

/// The signature with the signer certificate's key.
pub(crate) fn check_signature(jws: &ParsedJws, facts: &CertFacts) -> Result<(), SignerProblem> {
    let point = facts
        .p256_point
        .as_deref()
        .ok_or(SignerProblem::Signature)?;
    jws.verify_with_point(point)
        .map_err(|_| SignerProblem::Signature)
}

/// The `x5c` chain to `trust` at `at`, for document signing.
pub(crate) fn check_chain(
    trust: &TrustAnchors,
    chain: &[Vec<u8>],
    at: DateTime<Utc>,
) -> Result<(), webpki::Error> {
    let Some((leaf, rest)) = chain.split_first() else {
        return Err(webpki::Error::UnknownIssuer);
    };
    let intermediates: Vec<CertificateDer<'_>> = rest
        .iter()
        .map(|c| CertificateDer::from(c.as_slice()))
        .collect();
    trust.verify_document_signer(leaf, &intermediates, at, None)
}

/// Every signer check at once: signature, chain at `at`, keyUsage and EKU.
pub(crate) fn check_signer(
    jws: &ParsedJws,
    trust: &TrustAnchors,
    at: DateTime<Utc>,
) -> Result<CertFacts, SignerProblem> {
    let facts = signer_facts(jws)?;
    check_signature(jws, &facts)?;
    check_chain(trust, &jws.chain, at).map_err(SignerProblem::Chain)?;
    if !facts.has_seal_key_usage() {
        return Err(SignerProblem::KeyUsage);
    }
    if !facts.has_document_signing_eku() {
        return Err(SignerProblem::Eku);
    }
    Ok(facts)
}

/// What a verifier knows of revocations when it checks an authority's signature
/// ([`check_signed_by_unrevoked`]).
#[derive(Debug, Clone, Copy)]
pub struct SignerRevocation<'a> {
    /// The CRLs at hand (DER): the signer's issuer's, and its CAs' issuers'.
    pub crls: &'a [Vec<u8>],
    /// The SHA-256 of every revoked imported seal's certificate (the registry's revocation,
    /// which no CRL of the city carries).
    pub revoked_seals: &'a [[u8; 32]],
    /// The verifier's own clock: the CRLs must be current then.
    pub now: DateTime<Utc>,
}

/// [`check_signed_by`], and the signer certificate (and intermediates whose issuers' CRLs are
/// among `revocation.crls`) not revoked before `at`, by a CRL of its issuer that is current at
/// `revocation.now` (a missing or expired one is a refusal), nor a revoked imported seal: an
/// authority key that was revoked signs nothing a verifier accepts once the CRL saying so is
/// out, and an old CRL cannot hide it for longer than that CRL's own validity.
pub fn check_signed_by_unrevoked(
    jws: &ParsedJws,
    trust: &TrustAnchors,
    revocation: SignerRevocation<'_>,
    at: DateTime<Utc>,
    credit_code: &str,
) -> Result<(), String> {
    check_signed_by(jws, trust, at, credit_code)?;
    let facts = signer_facts(jws).map_err(|p| p.to_string())?;
    let ctx = crate::verify::VerifyContext {
        trust,
        crls: revocation.crls,
        at: revocation.now,
        policy: crate::verify::VerifyPolicy {
            revocation: crate::verify::RevocationPolicy::RequireCrl,
            ..Default::default()
        },
        revoked_seals: revocation.revoked_seals,
    };
    let (leaf, rest) = jws
        .chain
        .split_first()
        .ok_or_else(|| "the JWS header has no x5c chain".to_owned())?;
    let intermediates: Vec<CertificateDer<'_>> = rest
        .iter()
        .map(|c| CertificateDer::from(c.as_slice()))
        .collect();
    let (check, _) = crate::verify::check_signer_revocation(&ctx, leaf, &facts, &intermediates, at);
    match check.result {
        crate::report::CheckResult::Pass => Ok(()),
        _ => Err(format!("the signer's revocation: {}", check.message_en)),
    }
}

/// Checks that a JWS was signed, at `at`, by a document-signing certificate chaining to
/// `trust` whose organizationIdentifier is `credit_code` (an authority pinned by the caller).
pub fn check_signed_by(
    jws: &ParsedJws,
    trust: &TrustAnchors,
    at: DateTime<Utc>,
    credit_code: &str,
) -> Result<(), String> {
    let facts = check_signer(jws, trust, at).map_err(|p| p.to_string())?;
    if facts.subject_org_id.as_deref() == Some(credit_code) {
        Ok(())
    } else {
        Err(format!(
            "signed by {:?}, not by the authority {credit_code}",
            facts.subject_org_id
        ))
    }
}
