//! Why a signer certificate's chain did not validate, as a stable reason code.
//!
//! webpki's errors are mapped one to one where they are precise. Its catch-all, "unknown
//! issuer", is examined further with x509-parser, because two attacks hide behind it: a
//! self-signed signer certificate (`SELF_SIGNED_LEAF`) and carried certificates that do not
//! link up (`ISSUER_CHAIN_BROKEN`). What remains is `CHAIN_UNTRUSTED`: a chain that links up
//! but ends at an issuer that is neither carried nor a trust anchor. (A chain that carries only
//! the signer certificate and lacks its intermediate looks exactly like one from an untrusted
//! CA, so it is `CHAIN_UNTRUSTED` too.)

use x509_parser::prelude::{FromDer as _, X509Certificate};

use crate::report::ReasonCode;

/// A chain failure: the reason code and a detail for the report line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ChainFailure {
    pub(crate) code: ReasonCode,
    pub(crate) detail: String,
}

impl ChainFailure {
    fn new(code: ReasonCode, detail: impl Into<String>) -> Self {
        Self {
            code,
            detail: detail.into(),
        }
    }
}

/// The reason code for webpki's error `e` when validating `leaf` with the carried
/// `intermediates` (in any order).
#[allow(deprecated)] // webpki still returns the deprecated variants in places.
pub(crate) fn chain_failure(
    e: &webpki::Error,
    leaf: &[u8],
    intermediates: &[impl AsRef<[u8]>],
) -> ChainFailure {
    use webpki::Error as E;
    let code = match e {
        E::CertExpired { .. } => ReasonCode::CertExpired,
        E::CertNotValidYet { .. } => ReasonCode::CertNotYetValid,
        E::RequiredEkuNotFound | E::RequiredEkuNotFoundContext(_) | E::EmptyEkuExtension => {
            ReasonCode::EkuMissing
        }
        E::CaUsedAsEndEntity => ReasonCode::CaCertAsSeal,
        E::PathLenConstraintViolated => ReasonCode::PathLengthExceeded,
        E::EndEntityUsedAsCa => ReasonCode::CaConstraintViolated,
        E::UnsupportedCriticalExtension => ReasonCode::UnknownCriticalExtension,
        E::UnsupportedSignatureAlgorithm
        | E::UnsupportedSignatureAlgorithmContext(_)
        | E::UnsupportedSignatureAlgorithmForPublicKey
        | E::UnsupportedSignatureAlgorithmForPublicKeyContext(_) => {
            ReasonCode::AlgorithmUnsupported
        }
        E::InvalidSignatureForPublicKey => {
            return ChainFailure::new(
                ReasonCode::IssuerChainBroken,
                format!("a certificate's signature does not verify with the key of the issuer it names ({e})"),
            )
        }
        E::BadDer | E::BadDerTime | E::TrailingData(_) => ReasonCode::Malformed,
        E::UnknownIssuer => return diagnose_unknown_issuer(leaf, intermediates),
        _ => ReasonCode::ChainUntrusted,
    };
    ChainFailure::new(code, e.to_string())
}

/// Tells a self-signed leaf and a chain whose carried certificates do not link up from a
/// chain that ends at an untrusted issuer.
fn diagnose_unknown_issuer(leaf: &[u8], intermediates: &[impl AsRef<[u8]>]) -> ChainFailure {
    let untrusted = |detail: &str| ChainFailure::new(ReasonCode::ChainUntrusted, detail);
    let Ok((_, leaf)) = X509Certificate::from_der(leaf) else {
        return untrusted("unknown issuer");
    };
    if is_self_signed(&leaf) {
        return ChainFailure::new(
            ReasonCode::SelfSignedLeaf,
            format!(
                "the signer certificate is its own issuer ({}) and is not a trust anchor",
                leaf.subject()
            ),
        );
    }
    let carried: Vec<Option<X509Certificate<'_>>> = intermediates
        .iter()
        .map(|der| X509Certificate::from_der(der.as_ref()).ok().map(|(_, c)| c))
        .collect();
    // Climb from the leaf through the carried certificates, each used at most once.
    let mut used = vec![false; carried.len()];
    let mut current = &leaf;
    loop {
        let next = carried.iter().enumerate().find(|(i, cand)| {
            !used[*i]
                && cand.as_ref().is_some_and(|issuer| {
                    issuer.subject().as_raw() == current.issuer().as_raw()
                        && current.verify_signature(Some(issuer.public_key())).is_ok()
                })
        });
        match next {
            Some((i, Some(issuer))) => {
                used[i] = true;
                current = issuer;
            }
            _ => break,
        }
    }
    match used.iter().position(|u| !u) {
        Some(i) => ChainFailure::new(
            ReasonCode::IssuerChainBroken,
            format!(
                "chain certificate {} (0 is the signer's) is not on the signer certificate's \
                 issuer chain, which stops at {}, whose issuer ({}) is not carried",
                i + 1,
                current.subject(),
                current.issuer()
            ),
        ),
        None => untrusted(&format!(
            "the issuer of {} ({}) is neither carried nor a trust anchor",
            current.subject(),
            current.issuer()
        )),
    }
}

/// Subject equals issuer and the certificate's signature verifies with its own key.
fn is_self_signed(cert: &X509Certificate<'_>) -> bool {
    cert.subject().as_raw() == cert.issuer().as_raw() && cert.verify_signature(None).is_ok()
}
