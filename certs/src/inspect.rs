//! What a certificate says, for people: `bohai seal show` and the seal API describe seal
//! certificates and their chains with [`CertificateInfo`]. Reading only; nothing here
//! decides whether a certificate is trusted (that is [`crate::verify`]).

use chrono::{DateTime, Utc};
use serde::Serialize;
use x509_parser::extensions::{DistributionPointName, GeneralName, ParsedExtension};
use x509_parser::prelude::{FromDer as _, X509Certificate};

use crate::cert_facts::hex_lower;
use crate::seal::{sha256, SealError};
use crate::timestamp;
use crate::OID_DOCUMENT_SIGNING;

/// Largest certificate described.
const MAX_CERT_LEN: usize = 64 * 1024;

/// The facts of one X.509 certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertificateInfo {
    /// Subject name, e.g. `C=CN, O=盘锦市市场监督管理局, 2.5.4.97=…, CN=…电子公章`.
    pub subject: String,
    /// The subject's organizationIdentifier (2.5.4.97): for a seal certificate, the unified
    /// social credit code of the department it names.
    pub organization_identifier: Option<String>,
    /// Issuer name.
    pub issuer: String,
    /// Serial number, lowercase hex of the DER INTEGER content.
    pub serial_hex: String,
    /// Start of validity.
    pub not_before: DateTime<Utc>,
    /// End of validity.
    pub not_after: DateTime<Utc>,
    /// SHA-256 of the DER, lowercase hex.
    pub sha256_fingerprint: String,
    /// Public key algorithm, e.g. `ECDSA P-256`, else the algorithm's OID.
    pub public_key: String,
    /// keyUsage bits set (`digitalSignature`, `nonRepudiation`, `keyCertSign`, ...); empty
    /// when the extension is absent.
    pub key_usage: Vec<String>,
    /// extendedKeyUsage purposes (`documentSigning` or dotted OIDs); empty when absent.
    pub extended_key_usage: Vec<String>,
    /// basicConstraints cA.
    pub is_ca: bool,
    /// basicConstraints pathLenConstraint.
    pub path_len: Option<u32>,
    /// CRL distribution point URIs.
    pub crl_distribution_points: Vec<String>,
}

impl CertificateInfo {
    /// Describes one DER certificate (at most 64 KiB, no trailing bytes).
    pub fn from_der(der: &[u8]) -> Result<Self, SealError> {
        let bad = |reason: String| SealError::Certificate(reason);
        if der.len() > MAX_CERT_LEN {
            return Err(bad(format!("{} bytes is over the 64 KiB limit", der.len())));
        }
        let (rest, cert) = X509Certificate::from_der(der)
            .map_err(|e| bad(format!("not an X.509 certificate: {e}")))?;
        if !rest.is_empty() {
            return Err(bad("trailing bytes after the certificate".to_owned()));
        }
        let time = |t: i64| {
            timestamp::from_timestamp(t).map_err(|e| bad(format!("time {} out of range", e.0)))
        };
        let key_usage = match cert.key_usage() {
            Ok(Some(ku)) => {
                let v = ku.value;
                [
                    (v.digital_signature(), "digitalSignature"),
                    (v.non_repudiation(), "nonRepudiation"),
                    (v.key_encipherment(), "keyEncipherment"),
                    (v.data_encipherment(), "dataEncipherment"),
                    (v.key_agreement(), "keyAgreement"),
                    (v.key_cert_sign(), "keyCertSign"),
                    (v.crl_sign(), "cRLSign"),
                    (v.encipher_only(), "encipherOnly"),
                    (v.decipher_only(), "decipherOnly"),
                ]
                .into_iter()
                .filter(|(set, _)| *set)
                .map(|(_, name)| name.to_owned())
                .collect()
            }
            Ok(None) => Vec::new(),
            Err(e) => return Err(bad(format!("bad keyUsage extension: {e}"))),
        };
        let extended_key_usage = match cert.extended_key_usage() {
            Ok(Some(eku)) => {
                let v = eku.value;
                let mut out: Vec<String> = [
                    (v.any, "anyExtendedKeyUsage"),
                    (v.server_auth, "serverAuth"),
                    (v.client_auth, "clientAuth"),
                    (v.code_signing, "codeSigning"),
                    (v.email_protection, "emailProtection"),
                    (v.time_stamping, "timeStamping"),
                    (v.ocsp_signing, "OCSPSigning"),
                ]
                .into_iter()
                .filter(|(set, _)| *set)
                .map(|(_, name)| name.to_owned())
                .collect();
                out.extend(v.other.iter().map(|oid| {
                    let dotted = oid.to_id_string();
                    if dotted == OID_DOCUMENT_SIGNING {
                        "documentSigning".to_owned()
                    } else {
                        dotted
                    }
                }));
                out
            }
            Ok(None) => Vec::new(),
            Err(e) => return Err(bad(format!("bad extendedKeyUsage extension: {e}"))),
        };
        let (is_ca, path_len) = match cert.basic_constraints() {
            Ok(Some(bc)) => (bc.value.ca, bc.value.path_len_constraint),
            Ok(None) => (false, None),
            Err(e) => return Err(bad(format!("bad basicConstraints extension: {e}"))),
        };
        let crl_distribution_points = cert
            .iter_extensions()
            .filter_map(|e| match e.parsed_extension() {
                ParsedExtension::CRLDistributionPoints(points) => Some(points),
                _ => None,
            })
            .flat_map(|points| points.points.iter())
            .filter_map(|p| match &p.distribution_point {
                Some(DistributionPointName::FullName(names)) => Some(names),
                _ => None,
            })
            .flatten()
            .filter_map(|name| match name {
                GeneralName::URI(uri) => Some((*uri).to_owned()),
                _ => None,
            })
            .collect();
        let organization_identifier = cert
            .subject()
            .iter_attributes()
            .find(|a| {
                a.attr_type().to_id_string() == crate::cert_facts::OID_ORGANIZATION_IDENTIFIER
            })
            .and_then(|a| a.as_str().ok().map(str::to_owned));
        Ok(Self {
            subject: cert.subject().to_string(),
            organization_identifier,
            issuer: cert.issuer().to_string(),
            serial_hex: hex_lower(cert.raw_serial()),
            not_before: time(cert.validity().not_before.timestamp())?,
            not_after: time(cert.validity().not_after.timestamp())?,
            sha256_fingerprint: hex_lower(&sha256(der)),
            public_key: public_key_name(&cert),
            key_usage,
            extended_key_usage,
            is_ca,
            path_len,
            crl_distribution_points,
        })
    }
}

fn public_key_name(cert: &X509Certificate<'_>) -> String {
    let spki = cert.public_key();
    let algorithm = spki.algorithm.algorithm.to_id_string();
    let curve = spki
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.as_oid().ok())
        .map(|oid| oid.to_id_string());
    match (algorithm.as_str(), curve.as_deref()) {
        ("1.2.840.10045.2.1", Some("1.2.840.10045.3.1.7")) => "ECDSA P-256".to_owned(),
        ("1.2.840.10045.2.1", Some("1.3.132.0.34")) => "ECDSA P-384".to_owned(),
        ("1.2.840.113549.1.1.1", _) => "RSA".to_owned(),
        ("1.3.101.112", _) => "Ed25519".to_owned(),
        (other, _) => other.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ca::{init_city_ca, CaNames};
    use crate::seal::issue_seal;

    #[test]
    fn describes_seal_and_ca_certificates() {
        let now = Utc::now();
        let pki = init_city_ca(&CaNames::for_city("盘锦市", "盘锦市人民政府"), now).unwrap();
        let mut request = crate::seal::tests::request(now);
        request.crl_distribution_url = Some("http://pki.example.cn/crl".to_owned());
        let seal = issue_seal(&pki.issuing, &request, now).unwrap();
        let info = CertificateInfo::from_der(&seal.cert_der).unwrap();
        assert!(
            info.subject.contains("盘锦市市场监督管理局公章"),
            "{}",
            info.subject
        );
        assert!(
            info.issuer.contains("盘锦市电子印章签发证书"),
            "{}",
            info.issuer
        );
        assert_eq!(info.key_usage, vec!["digitalSignature", "nonRepudiation"]);
        assert_eq!(info.extended_key_usage, vec!["documentSigning"]);
        assert!(!info.is_ca);
        assert_eq!(info.public_key, "ECDSA P-256");
        assert_eq!(
            info.crl_distribution_points,
            vec!["http://pki.example.cn/crl"]
        );
        assert_eq!(info.sha256_fingerprint, hex_lower(&sha256(&seal.cert_der)));
        assert_eq!(info.serial_hex.len(), 32);

        let ca = CertificateInfo::from_der(pki.issuing.cert_der()).unwrap();
        assert!(ca.is_ca);
        assert_eq!(ca.path_len, Some(0));
        assert_eq!(ca.key_usage, vec!["keyCertSign", "cRLSign"]);

        assert!(CertificateInfo::from_der(&[]).is_err());
        assert!(CertificateInfo::from_der(&seal.cert_der[..100]).is_err());
    }
}
