//! The facts Bohai reads from an X.509 certificate (via x509-parser), copied out into an
//! owned value so callers need not juggle the parser's lifetimes.

use x509_parser::prelude::{FromDer as _, X509Certificate};

use crate::OID_DOCUMENT_SIGNING;

/// Object identifier of id-ecPublicKey.
const OID_EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
/// Object identifier of the P-256 curve (prime256v1, secp256r1).
const OID_P256: &str = "1.2.840.10045.3.1.7";
/// Object identifier of organizationIdentifier (X.520, 2.5.4.97).
pub(crate) const OID_ORGANIZATION_IDENTIFIER: &str = "2.5.4.97";

/// What a certificate says, as far as seals are concerned.
#[derive(Debug, Clone)]
pub(crate) struct CertFacts {
    /// Serial number, big-endian content octets of the DER INTEGER.
    pub(crate) serial: Vec<u8>,
    /// The issuer Name, DER (for matching CRLs to the certificate).
    pub(crate) issuer_raw: Vec<u8>,
    pub(crate) subject_cn: Option<String>,
    pub(crate) subject_o: Option<String>,
    pub(crate) subject_org_id: Option<String>,
    pub(crate) not_before: i64,
    pub(crate) not_after: i64,
    /// `(digitalSignature, nonRepudiation)` if the keyUsage extension is present.
    pub(crate) key_usage: Option<KeyUsageBits>,
    /// Extended key usage OIDs, dotted; `None` when the extension is absent.
    pub(crate) eku: Option<Vec<String>>,
    /// basicConstraints cA flag (false when absent).
    pub(crate) is_ca: bool,
    /// The uncompressed P-256 public point, if the key is ECDSA P-256.
    pub(crate) p256_point: Option<Vec<u8>>,
}

/// The keyUsage bits that matter here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct KeyUsageBits {
    pub(crate) digital_signature: bool,
    pub(crate) non_repudiation: bool,
    pub(crate) key_cert_sign: bool,
    pub(crate) crl_sign: bool,
}

impl CertFacts {
    /// Parses one DER certificate; trailing bytes are an error.
    pub(crate) fn from_der(der: &[u8]) -> Result<Self, String> {
        let (rest, cert) =
            X509Certificate::from_der(der).map_err(|e| format!("not an X.509 certificate: {e}"))?;
        if !rest.is_empty() {
            return Err("trailing bytes after the certificate".to_owned());
        }
        Self::from_cert(&cert)
    }

    fn from_cert(cert: &X509Certificate<'_>) -> Result<Self, String> {
        let key_usage = cert
            .key_usage()
            .map_err(|e| format!("bad keyUsage extension: {e}"))?
            .map(|ext| KeyUsageBits {
                digital_signature: ext.value.digital_signature(),
                non_repudiation: ext.value.non_repudiation(),
                key_cert_sign: ext.value.key_cert_sign(),
                crl_sign: ext.value.crl_sign(),
            });
        let eku = cert
            .extended_key_usage()
            .map_err(|e| format!("bad extendedKeyUsage extension: {e}"))?
            .map(|ext| {
                let eku = ext.value;
                let mut oids: Vec<String> = eku.other.iter().map(|o| o.to_id_string()).collect();
                if eku.any {
                    oids.push("2.5.29.37.0".to_owned());
                }
                oids
            });
        let is_ca = cert
            .basic_constraints()
            .map_err(|e| format!("bad basicConstraints extension: {e}"))?
            .is_some_and(|ext| ext.value.ca);
        let spki = cert.public_key();
        let is_p256 = spki.algorithm.algorithm.to_id_string() == OID_EC_PUBLIC_KEY
            && spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .is_some_and(|oid| oid.to_id_string() == OID_P256);
        let subject = cert.subject();
        let first_attr = |oid: &str| {
            subject
                .iter_attributes()
                .find(|a| a.attr_type().to_id_string() == oid)
                .and_then(|a| a.as_str().ok().map(str::to_owned))
        };
        Ok(Self {
            serial: cert.raw_serial().to_vec(),
            issuer_raw: cert.issuer().as_raw().to_vec(),
            subject_cn: first_attr("2.5.4.3"),
            subject_o: first_attr("2.5.4.10"),
            subject_org_id: first_attr(OID_ORGANIZATION_IDENTIFIER),
            not_before: cert.validity().not_before.timestamp(),
            not_after: cert.validity().not_after.timestamp(),
            key_usage,
            eku,
            is_ca,
            p256_point: is_p256.then(|| spki.subject_public_key.data.to_vec()),
        })
    }

    /// True when the extendedKeyUsage extension lists id-kp-documentSigning.
    pub(crate) fn has_document_signing_eku(&self) -> bool {
        self.eku
            .as_ref()
            .is_some_and(|oids| oids.iter().any(|o| o == OID_DOCUMENT_SIGNING))
    }

    /// True when keyUsage is present with both digitalSignature and nonRepudiation.
    pub(crate) fn has_seal_key_usage(&self) -> bool {
        self.key_usage
            .is_some_and(|ku| ku.digital_signature && ku.non_repudiation)
    }

    /// The serial number in lowercase hex.
    pub(crate) fn serial_hex(&self) -> String {
        hex_lower(&self.serial)
    }
}

/// Lowercase hex of bytes (serial numbers, digests in messages).
pub(crate) fn hex_lower(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}
