//! Trust anchors (the city root plus operator-added roots) and chain validation with webpki.

use chrono::{DateTime, Utc};
use rustls_pki_types::{CertificateDer, SignatureVerificationAlgorithm, TrustAnchor};
use webpki::{EndEntityCert, KeyUsage, RevocationOptions};
use x509_parser::prelude::{FromDer as _, X509Certificate};

use crate::timestamp;

/// DER content octets of id-kp-documentSigning, 1.3.6.1.5.5.7.3.36 (RFC 9336).
const EKU_DOCUMENT_SIGNING: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x24];
/// Most trust anchors held at once.
const MAX_ANCHORS: usize = 64;
/// Longest PEM text accepted by [`TrustAnchors::from_pem`].
const MAX_PEM_LEN: usize = 1024 * 1024;

/// Signature algorithms accepted in certificate chains and CRLs (seal keys themselves must
/// be ECDSA P-256; operator CAs may also use P-384, Ed25519 or RSA).
pub(crate) static CHAIN_ALGS: &[&dyn SignatureVerificationAlgorithm] = &[
    webpki::ring::ECDSA_P256_SHA256,
    webpki::ring::ECDSA_P256_SHA384,
    webpki::ring::ECDSA_P384_SHA256,
    webpki::ring::ECDSA_P384_SHA384,
    webpki::ring::ED25519,
    webpki::ring::RSA_PKCS1_2048_8192_SHA256,
    webpki::ring::RSA_PKCS1_2048_8192_SHA384,
    webpki::ring::RSA_PKCS1_2048_8192_SHA512,
    webpki::ring::RSA_PSS_2048_8192_SHA256_LEGACY_KEY,
    webpki::ring::RSA_PSS_2048_8192_SHA384_LEGACY_KEY,
    webpki::ring::RSA_PSS_2048_8192_SHA512_LEGACY_KEY,
];

/// Errors of the `trust` module.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    /// The PEM text cannot be read.
    #[error("trust anchor PEM: {0}")]
    Pem(String),
    /// No `CERTIFICATE` block was found.
    #[error("no CERTIFICATE block in the trust anchor PEM")]
    Empty,
    /// More anchors than the limit.
    #[error("more than {MAX_ANCHORS} trust anchors")]
    TooMany,
    /// The city root was given as more (or fewer) than one certificate.
    #[error(
        "the city root must be one certificate, not {0}: give operators' roots apart (--operator-roots)"
    )]
    NotOneRoot(usize),
    /// A certificate cannot serve as a trust anchor.
    #[error("certificate #{index} cannot be a trust anchor: {reason}")]
    BadAnchor {
        /// Position of the certificate (0-based) in what was given.
        index: usize,
        /// Why it was rejected.
        reason: String,
    },
}

/// The roots a verifier trusts: the city root plus any operator-added roots.
#[derive(Debug, Clone, Default)]
pub struct TrustAnchors {
    certs: Vec<CertificateDer<'static>>,
    anchors: Vec<TrustAnchor<'static>>,
}

impl TrustAnchors {
    /// No anchors (nothing verifies).
    pub fn new() -> Self {
        Self::default()
    }

    /// Anchors from PEM text holding one or more `CERTIFICATE` blocks.
    pub fn from_pem(pem_text: &str) -> Result<Self, TrustError> {
        let mut anchors = Self::new();
        anchors.add_pem(pem_text)?;
        Ok(anchors)
    }

    /// The city root alone, from PEM text holding exactly one `CERTIFICATE`: a self-signed CA
    /// certificate (subject and issuer the same, signed by its own key). What a verifier
    /// pins for the status authority's signatures: a file that also holds an operator's root,
    /// or an intermediate pinned in the root's place (a CA revoked by the root's CRL would
    /// then never be checked), is refused rather than trusted for the authority.
    pub fn city_root_from_pem(pem_text: &str) -> Result<Self, TrustError> {
        let anchors = Self::from_pem(pem_text)?;
        let [root] = anchors.certs() else {
            return Err(TrustError::NotOneRoot(anchors.len()));
        };
        let bad = |reason: &str| TrustError::BadAnchor {
            index: 0,
            reason: reason.to_owned(),
        };
        let (_, cert) = X509Certificate::from_der(root).map_err(|e| bad(&e.to_string()))?;
        if cert.subject().as_raw() != cert.issuer().as_raw() || cert.verify_signature(None).is_err()
        {
            return Err(bad(
                "it is not self-signed: pin the city root, not a CA under it",
            ));
        }
        if !cert.is_ca() {
            return Err(bad("it is not a CA certificate"));
        }
        Ok(anchors)
    }

    /// Adds every `CERTIFICATE` block of `pem_text` (other blocks are ignored).
    pub fn add_pem(&mut self, pem_text: &str) -> Result<(), TrustError> {
        if pem_text.len() > MAX_PEM_LEN {
            return Err(TrustError::Pem("longer than 1 MiB".to_owned()));
        }
        let blocks = pem::parse_many(pem_text).map_err(|e| TrustError::Pem(e.to_string()))?;
        let mut found = false;
        for block in blocks.into_iter().filter(|b| b.tag() == "CERTIFICATE") {
            found = true;
            self.add_der(block.into_contents())?;
        }
        if found {
            Ok(())
        } else {
            Err(TrustError::Empty)
        }
    }

    /// Adds one DER certificate as an anchor.
    pub fn add_der(&mut self, der: Vec<u8>) -> Result<(), TrustError> {
        let index = self.certs.len();
        if index >= MAX_ANCHORS {
            return Err(TrustError::TooMany);
        }
        let cert = CertificateDer::from(der);
        let anchor = webpki::anchor_from_trusted_cert(&cert)
            .map_err(|e| TrustError::BadAnchor {
                index,
                reason: e.to_string(),
            })?
            .to_owned();
        self.anchors.push(anchor);
        self.certs.push(cert);
        Ok(())
    }

    /// The anchors' certificates, DER, in the order added.
    pub fn certs(&self) -> &[CertificateDer<'static>] {
        &self.certs
    }

    /// Number of anchors.
    pub fn len(&self) -> usize {
        self.certs.len()
    }

    /// True when there is no anchor.
    pub fn is_empty(&self) -> bool {
        self.certs.is_empty()
    }

    /// Validates `leaf` through `intermediates` to an anchor at `at`, for document signing,
    /// with optional revocation options. webpki also enforces basic constraints, path length
    /// and name chaining. EKU: every certificate of the path that has an extendedKeyUsage
    /// extension must list id-kp-documentSigning; that the leaf *has* the extension is
    /// checked by the callers (webpki's "required" mode would demand it of the CAs too).
    pub(crate) fn verify_document_signer(
        &self,
        leaf: &[u8],
        intermediates: &[CertificateDer<'_>],
        at: DateTime<Utc>,
        revocation: Option<RevocationOptions<'_>>,
    ) -> Result<(), webpki::Error> {
        let leaf = CertificateDer::from(leaf);
        let ee = EndEntityCert::try_from(&leaf)?;
        let time = timestamp::to_unix_time(at).map_err(|_| webpki::Error::BadDerTime)?;
        ee.verify_for_usage(
            CHAIN_ALGS,
            &self.anchors,
            intermediates,
            time,
            KeyUsage::required_if_present(EKU_DOCUMENT_SIGNING),
            revocation,
            None,
        )
        .map(|_| ())
    }

    /// The intermediates of the path `leaf` verifies on at `at` (no revocation asked), as
    /// DER: the CA certificates whose revocation speaks for the leaf. Certificates carried
    /// but off that path (a decoy bearing a CA's name, say) are not among them.
    pub(crate) fn verified_intermediates(
        &self,
        leaf: &[u8],
        intermediates: &[CertificateDer<'_>],
        at: DateTime<Utc>,
    ) -> Result<Vec<Vec<u8>>, webpki::Error> {
        let leaf = CertificateDer::from(leaf);
        let ee = EndEntityCert::try_from(&leaf)?;
        let time = timestamp::to_unix_time(at).map_err(|_| webpki::Error::BadDerTime)?;
        let path = ee.verify_for_usage(
            CHAIN_ALGS,
            &self.anchors,
            intermediates,
            time,
            KeyUsage::required_if_present(EKU_DOCUMENT_SIGNING),
            None,
            None,
        )?;
        Ok(path
            .intermediate_certificates()
            .map(|c| c.der().to_vec())
            .collect())
    }

    /// Checks that `maker` (a seal-record maker CA certificate) is trusted at `at`: it is an
    /// anchor itself, or it was issued directly by an anchor, is a CA with keyCertSign and is
    /// valid at `at`. (webpki cannot validate a CA certificate as an end entity, so this one
    /// level is checked with x509-parser's signature verification.)
    pub(crate) fn check_maker(&self, maker: &[u8], at: DateTime<Utc>) -> Result<(), String> {
        if self.certs.iter().any(|c| c.as_ref() == maker) {
            return Ok(());
        }
        let (rest, cert) =
            X509Certificate::from_der(maker).map_err(|e| format!("maker certificate: {e}"))?;
        if !rest.is_empty() {
            return Err("maker certificate has trailing bytes".to_owned());
        }
        if !cert.is_ca() {
            return Err("maker certificate is not a CA".to_owned());
        }
        let key_cert_sign = cert
            .key_usage()
            .ok()
            .flatten()
            .is_some_and(|ku| ku.value.key_cert_sign());
        if !key_cert_sign {
            return Err("maker certificate lacks keyCertSign".to_owned());
        }
        let t = at.timestamp();
        let validity = cert.validity();
        if t < validity.not_before.timestamp() || t > validity.not_after.timestamp() {
            return Err("maker certificate is not valid at the signing time".to_owned());
        }
        for anchor_der in &self.certs {
            let Ok((_, anchor)) = X509Certificate::from_der(anchor_der) else {
                continue;
            };
            if anchor.subject().as_raw() == cert.issuer().as_raw()
                && cert.verify_signature(Some(anchor.public_key())).is_ok()
            {
                return Ok(());
            }
        }
        Err("maker certificate was not issued by a trust anchor".to_owned())
    }
}

/// Reads every `CERTIFICATE` block of several PEM texts, in order.
pub(crate) fn certs_from_pems(pems: &[String]) -> Result<Vec<CertificateDer<'static>>, String> {
    let mut out = Vec::new();
    for (i, text) in pems.iter().enumerate() {
        if text.len() > MAX_PEM_LEN {
            return Err(format!("chain PEM #{i} is longer than 1 MiB"));
        }
        let blocks = pem::parse_many(text).map_err(|e| format!("chain PEM #{i}: {e}"))?;
        out.extend(
            blocks
                .into_iter()
                .filter(|b| b.tag() == "CERTIFICATE")
                .map(|b| CertificateDer::from(b.into_contents())),
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ca::{init_city_ca, CaNames};

    #[test]
    fn a_city_root_is_one_self_signed_ca_certificate() {
        let a = init_city_ca(&CaNames::for_city("盘锦市", "盘锦市人民政府"), Utc::now()).unwrap();
        let b = init_city_ca(&CaNames::for_city("大连市", "大连市人民政府"), Utc::now()).unwrap();
        assert_eq!(
            TrustAnchors::city_root_from_pem(&a.root.cert_pem())
                .unwrap()
                .len(),
            1
        );
        let both = format!("{}{}", a.root.cert_pem(), b.root.cert_pem());
        assert!(matches!(
            TrustAnchors::city_root_from_pem(&both),
            Err(TrustError::NotOneRoot(2))
        ));
        let issuing = TrustAnchors::city_root_from_pem(&a.issuing.cert_pem()).unwrap_err();
        assert!(issuing.to_string().contains("not self-signed"), "{issuing}");
    }

    #[test]
    fn anchors_from_pem() {
        let a = init_city_ca(&CaNames::for_city("盘锦市", "盘锦市人民政府"), Utc::now()).unwrap();
        let b = init_city_ca(&CaNames::for_city("大连市", "大连市人民政府"), Utc::now()).unwrap();
        let both = format!("{}{}", a.root.cert_pem(), b.root.cert_pem());
        let anchors = TrustAnchors::from_pem(&both).unwrap();
        assert_eq!(anchors.len(), 2);
        anchors
            .check_maker(a.issuing.cert_der(), Utc::now())
            .unwrap();
        let only_b = TrustAnchors::from_pem(&b.root.cert_pem()).unwrap();
        assert!(only_b
            .check_maker(a.issuing.cert_der(), Utc::now())
            .is_err());
        assert!(matches!(TrustAnchors::from_pem(""), Err(TrustError::Empty)));
        assert!(TrustAnchors::from_pem(
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
        )
        .is_err());
    }
}
