//! The city's certificate authorities: a self-signed root and one issuing intermediate.
//!
//! The root signs only the issuing CA (and its CRLs); it can be kept offline, since every
//! day-to-day operation — seal certificates, seal records, CRLs for seals — needs only the
//! issuing CA's [`CaCert`].

use chrono::{DateTime, Months, Utc};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, DnValue, IsCa, Issuer,
    KeyIdMethod, KeyPair, KeyUsagePurpose, SerialNumber,
};
use rustls_pki_types::CertificateDer;

use crate::cert_facts::CertFacts;
use crate::keys::{self, KeyError, SigningKey};
use crate::secret::SecretBytes;
use crate::timestamp;

/// Validity of the root CA in months (20 years).
const ROOT_VALIDITY_MONTHS: u32 = 12 * 20;
/// Validity of the issuing CA in months (10 years).
const ISSUING_VALIDITY_MONTHS: u32 = 12 * 10;

/// Errors of the `ca` module.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    /// A key could not be generated or loaded, or does not match its certificate.
    #[error("CA key: {0}")]
    Key(#[from] KeyError),
    /// rcgen refused to build the certificate.
    #[error("cannot build the {which} certificate: {source}")]
    Build {
        /// "root" or "issuing".
        which: &'static str,
        /// The rcgen error.
        source: rcgen::Error,
    },
    /// A timestamp is outside what certificates can carry.
    #[error("time {0} is out of range for a certificate")]
    TimeOutOfRange(i64),
    /// The certificate given as a CA cannot act as one.
    #[error("not a usable CA certificate: {0}")]
    NotACa(String),
    /// The PEM text has no `CERTIFICATE` block.
    #[error("CA certificate PEM: {0}")]
    Pem(String),
}

/// The subject names of the city CAs, in Chinese, encoded as UTF8String.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaNames {
    /// Common name of the root, e.g. `盘锦市电子印章根证书`.
    pub root_common_name: String,
    /// Common name of the issuing CA, e.g. `盘锦市电子印章签发证书`.
    pub issuing_common_name: String,
    /// Organization, e.g. `盘锦市人民政府`.
    pub organization: String,
}

impl CaNames {
    /// The usual names for a city: `{city}电子印章根证书`, `{city}电子印章签发证书`, and the
    /// government as organization.
    pub fn for_city(city_zh: &str, government_zh: &str) -> Self {
        Self {
            root_common_name: format!("{city_zh}电子印章根证书"),
            issuing_common_name: format!("{city_zh}电子印章签发证书"),
            organization: government_zh.to_owned(),
        }
    }
}

/// A CA certificate together with its private key.
#[derive(Debug, Clone)]
pub struct CaCert {
    cert_der: Vec<u8>,
    key: SecretBytes,
    facts: CertFacts,
}

impl CaCert {
    /// A CA from its certificate (DER) and PKCS#8 key, as loaded from storage. Checks that the
    /// certificate is a CA (basicConstraints cA, keyUsage keyCertSign) with a P-256 key, and
    /// that the key belongs to it.
    pub fn from_parts(cert_der: Vec<u8>, key: SecretBytes) -> Result<Self, CaError> {
        let facts = CertFacts::from_der(&cert_der).map_err(CaError::NotACa)?;
        if !facts.is_ca {
            return Err(CaError::NotACa("basicConstraints cA is not set".to_owned()));
        }
        if !facts.key_usage.is_some_and(|ku| ku.key_cert_sign) {
            return Err(CaError::NotACa("keyUsage lacks keyCertSign".to_owned()));
        }
        let point = facts
            .p256_point
            .as_deref()
            .ok_or_else(|| CaError::NotACa("public key is not ECDSA P-256".to_owned()))?;
        SigningKey::from_pkcs8(&key)?.check_matches(point)?;
        Ok(Self {
            cert_der,
            key,
            facts,
        })
    }

    /// A CA from a PEM certificate and a PEM PKCS#8 (`PRIVATE KEY`) key.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self, CaError> {
        let cert = pem::parse(cert_pem).map_err(|e| CaError::Pem(e.to_string()))?;
        if cert.tag() != "CERTIFICATE" {
            return Err(CaError::Pem(format!(
                "expected CERTIFICATE, found {}",
                cert.tag()
            )));
        }
        Self::from_parts(cert.into_contents(), keys::pkcs8_from_pem(key_pem)?)
    }

    /// The certificate, DER.
    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// The certificate, PEM.
    pub fn cert_pem(&self) -> String {
        cert_to_pem(&self.cert_der)
    }

    /// The private key (PKCS#8 DER), for export or encrypted storage.
    pub fn key(&self) -> &SecretBytes {
        &self.key
    }

    /// The certificate's serial number (the DER INTEGER's content octets), as a CRL names it.
    pub fn serial(&self) -> &[u8] {
        &self.facts.serial
    }

    /// The CA's subject common name.
    pub fn common_name(&self) -> Option<&str> {
        self.facts.subject_cn.as_deref()
    }

    /// Start of the CA certificate's validity (Unix seconds).
    pub(crate) fn not_before(&self) -> i64 {
        self.facts.not_before
    }

    /// End of the CA certificate's validity (Unix seconds).
    pub(crate) fn not_after(&self) -> i64 {
        self.facts.not_after
    }

    /// An rcgen issuer for this CA, to sign certificates and CRLs.
    pub(crate) fn issuer(&self) -> Result<Issuer<'static, KeyPair>, CaError> {
        let key = keys::rcgen_key_pair(&self.key)?;
        Issuer::from_ca_cert_der(&CertificateDer::from(self.cert_der.as_slice()), key)
            .map_err(|e| CaError::NotACa(format!("rcgen cannot use it as issuer: {e}")))
    }

    /// The CA's signing key, to sign seal records.
    pub(crate) fn signing_key(&self) -> Result<SigningKey, KeyError> {
        SigningKey::from_pkcs8(&self.key)
    }
}

/// The city PKI made by [`init_city_ca`]: the root and the issuing CA, each with its key.
#[derive(Debug, Clone)]
pub struct CityPki {
    /// The self-signed root CA; store its key offline.
    pub root: CaCert,
    /// The issuing CA (intermediate, pathlen 0) that signs seal certificates and records.
    pub issuing: CaCert,
}

/// Makes a new city PKI at `now`: an ECDSA P-256 root (20 years; cA critical; keyCertSign
/// and cRLSign critical) and an issuing CA signed by it (10 years; cA with pathlen 0).
pub fn init_city_ca(names: &CaNames, now: DateTime<Utc>) -> Result<CityPki, CaError> {
    let now = timestamp::whole_seconds(now);
    let root_key = keys::generate_p256()?;
    let root_params = ca_params(
        &names.root_common_name,
        &names.organization,
        now,
        ROOT_VALIDITY_MONTHS,
        BasicConstraints::Unconstrained,
    )?;
    let root_pair = keys::rcgen_key_pair(&root_key)?;
    let root_cert = root_params
        .self_signed(&root_pair)
        .map_err(|source| CaError::Build {
            which: "root",
            source,
        })?;
    let root_issuer = Issuer::new(root_params, root_pair);
    let issuing = issuing_ca_under(&root_issuer, names, now)?;
    Ok(CityPki {
        root: CaCert::from_parts(root_cert.der().to_vec(), root_key)?,
        issuing,
    })
}

/// A new issuing CA signed by the existing city `root` at `now` (10 years; cA with pathlen
/// 0): the replacement of an issuing CA that was revoked. Seals of the old one are not
/// carried over; each department's seal is issued again under the new one.
pub fn new_issuing_ca(
    root: &CaCert,
    names: &CaNames,
    now: DateTime<Utc>,
) -> Result<CaCert, CaError> {
    issuing_ca_under(&root.issuer()?, names, now)
}

fn issuing_ca_under(
    root: &Issuer<'_, KeyPair>,
    names: &CaNames,
    now: DateTime<Utc>,
) -> Result<CaCert, CaError> {
    let now = timestamp::whole_seconds(now);
    let issuing_key = keys::generate_p256()?;
    let mut issuing_params = ca_params(
        &names.issuing_common_name,
        &names.organization,
        now,
        ISSUING_VALIDITY_MONTHS,
        BasicConstraints::Constrained(0),
    )?;
    issuing_params.use_authority_key_identifier_extension = true;
    let issuing_pair = keys::rcgen_key_pair(&issuing_key)?;
    let issuing_cert = issuing_params
        .signed_by(&issuing_pair, root)
        .map_err(|source| CaError::Build {
            which: "issuing",
            source,
        })?;
    CaCert::from_parts(issuing_cert.der().to_vec(), issuing_key)
}

fn ca_params(
    common_name: &str,
    organization: &str,
    now: DateTime<Utc>,
    months: u32,
    constraints: BasicConstraints,
) -> Result<CertificateParams, CaError> {
    let not_after = now
        .checked_add_months(Months::new(months))
        .ok_or(CaError::TimeOutOfRange(now.timestamp()))?;
    let mut params = CertificateParams::default();
    params.distinguished_name = chinese_name(common_name, organization)?;
    params.not_before = timestamp::to_offset(now).map_err(|e| CaError::TimeOutOfRange(e.0))?;
    params.not_after = timestamp::to_offset(not_after).map_err(|e| CaError::TimeOutOfRange(e.0))?;
    params.serial_number = Some(random_serial()?);
    params.is_ca = IsCa::Ca(constraints);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.key_identifier_method = KeyIdMethod::Sha256;
    Ok(params)
}

/// `CN=<cn>, O=<org>, C=CN` with CN and O as UTF8String and C as PrintableString.
pub(crate) fn chinese_name(
    common_name: &str,
    organization: &str,
) -> Result<DistinguishedName, CaError> {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CountryName, country_cn()?);
    dn.push(
        DnType::OrganizationName,
        DnValue::Utf8String(organization.to_owned()),
    );
    dn.push(
        DnType::CommonName,
        DnValue::Utf8String(common_name.to_owned()),
    );
    Ok(dn)
}

pub(crate) fn country_cn() -> Result<DnValue, CaError> {
    let printable = rcgen::string::PrintableString::try_from("CN")
        .map_err(|e| CaError::NotACa(format!("country code: {e}")))?;
    Ok(DnValue::PrintableString(printable))
}

/// A random positive 16-byte serial number (first byte in 0x40..=0x7f, so always 16 bytes).
pub(crate) fn random_serial() -> Result<SerialNumber, KeyError> {
    use ring::rand::SecureRandom as _;
    let mut bytes = [0u8; 16];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| KeyError::Crypto("random serial"))?;
    bytes[0] = (bytes[0] & 0x3f) | 0x40;
    Ok(SerialNumber::from_slice(&bytes))
}

/// PEM `CERTIFICATE` armour for a DER certificate.
pub(crate) fn cert_to_pem(der: &[u8]) -> String {
    pem::encode(&pem::Pem::new("CERTIFICATE", der.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use x509_parser::prelude::{FromDer as _, X509Certificate};

    fn pki() -> CityPki {
        init_city_ca(&CaNames::for_city("盘锦市", "盘锦市人民政府"), Utc::now()).unwrap()
    }

    #[test]
    fn root_and_issuing_profiles() {
        let pki = pki();
        let (_, root) = X509Certificate::from_der(pki.root.cert_der()).unwrap();
        assert_eq!(root.subject(), root.issuer());
        let bc = root.basic_constraints().unwrap().unwrap();
        assert!(bc.critical && bc.value.ca && bc.value.path_len_constraint.is_none());
        let ku = root.key_usage().unwrap().unwrap();
        assert!(ku.critical && ku.value.key_cert_sign() && ku.value.crl_sign());
        assert!(!ku.value.digital_signature());
        let cn = root.subject().iter_common_name().next().unwrap();
        assert_eq!(cn.as_str().unwrap(), "盘锦市电子印章根证书");
        // UTF8String tag is 12.
        assert_eq!(cn.attr_value().tag().0, 12);
        let years = (root.validity().not_after.timestamp()
            - root.validity().not_before.timestamp())
            / (365 * 86_400);
        assert_eq!(years, 20);

        let (_, issuing) = X509Certificate::from_der(pki.issuing.cert_der()).unwrap();
        assert_eq!(issuing.issuer(), root.subject());
        let bc = issuing.basic_constraints().unwrap().unwrap();
        assert!(bc.critical && bc.value.ca);
        assert_eq!(bc.value.path_len_constraint, Some(0));
        issuing
            .verify_signature(Some(root.public_key()))
            .expect("issuing CA is signed by the root");
        // The AKI of the issuing CA is the SKI of the root.
        let ski = root
            .iter_extensions()
            .find_map(|e| match e.parsed_extension() {
                x509_parser::extensions::ParsedExtension::SubjectKeyIdentifier(k) => Some(k.0),
                _ => None,
            })
            .unwrap();
        let aki = issuing
            .iter_extensions()
            .find_map(|e| match e.parsed_extension() {
                x509_parser::extensions::ParsedExtension::AuthorityKeyIdentifier(a) => {
                    a.key_identifier.as_ref().map(|k| k.0)
                }
                _ => None,
            })
            .unwrap();
        assert_eq!(ski, aki);
    }

    #[test]
    fn ca_reloads_from_pem_and_rejects_wrong_key() {
        let pki = pki();
        let pem_key = pki.issuing.key().to_pkcs8_pem();
        let again = CaCert::from_pem(&pki.issuing.cert_pem(), &pem_key).unwrap();
        assert_eq!(again.cert_der(), pki.issuing.cert_der());
        assert!(matches!(
            CaCert::from_parts(pki.issuing.cert_der().to_vec(), pki.root.key().clone()),
            Err(CaError::Key(KeyError::Mismatch))
        ));
        assert!(format!("{:?}", pki.root).contains("REDACTED"));
    }
}
