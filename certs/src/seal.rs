//! Seal certificates and seal keys: issuing a seal under the city issuing CA, importing a
//! department's own seal certificate, and the [`SealKey`] that signs documents.
//!
//! Seal certificate profile: ECDSA P-256; subject `C=CN, O=<department>,
//! organizationIdentifier (2.5.4.97)=<18-char unified social credit code>, CN=<seal name>`;
//! keyUsage digitalSignature + nonRepudiation (critical); extendedKeyUsage
//! id-kp-documentSigning (RFC 9336); basicConstraints cA false (critical); subject and
//! authority key identifiers; optional CRL distribution point; random 16-byte serial.

use chrono::{DateTime, Utc};
use rcgen::{
    CertificateParams, CrlDistributionPoint, DistinguishedName, DnType, DnValue,
    ExtendedKeyUsagePurpose, IsCa, KeyUsagePurpose,
};
use ring::digest::{digest, SHA256};

use crate::record::SealType;

use crate::ca::{self, CaCert, CaError};
use crate::cert_facts::{hex_lower, CertFacts, OID_ORGANIZATION_IDENTIFIER};
use crate::image::{ImageType, SealImage};
use crate::keys::{self, KeyError, SigningKey};
use crate::record::{SealInfo, SealRecord, SealRecordError};
use crate::secret::SecretBytes;
use crate::timestamp;
use crate::trust::{self, TrustAnchors};

/// Longest department code: the registry allows 32 characters (`^[a-z][a-z0-9-]{1,31}$`).
pub const MAX_DEPT_CODE_LEN: usize = 32;
/// Most intermediates kept with a seal (and accepted in a signature's chain).
pub(crate) const MAX_CHAIN_LEN: usize = 4;
/// Characters of a unified social credit code (GB 32100-2015), in value order.
const USCC_ALPHABET: &[u8] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";
/// Weights of the first 17 characters of a unified social credit code.
const USCC_WEIGHTS: [u32; 17] = [
    1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28,
];

/// Errors of the `seal` module. Each names what failed.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// A request field is not acceptable.
    #[error("invalid {field}: {reason}")]
    InvalidRequest {
        /// The request field.
        field: &'static str,
        /// Why it is rejected.
        reason: String,
    },
    /// A key could not be generated or loaded, or does not match the certificate.
    #[error("seal key: {0}")]
    Key(#[from] KeyError),
    /// The issuing CA cannot be used.
    #[error("issuing CA: {0}")]
    Ca(#[from] CaError),
    /// rcgen refused to build the seal certificate.
    #[error("cannot build the seal certificate: {0}")]
    Build(rcgen::Error),
    /// The seal record cannot be made or does not fit the certificate.
    #[error("seal record: {0}")]
    Record(#[from] SealRecordError),
    /// PEM input cannot be read.
    #[error("{what} PEM: {reason}")]
    Pem {
        /// Which input.
        what: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The certificate cannot be parsed or is not a seal certificate.
    #[error("seal certificate: {0}")]
    Certificate(String),
    /// The certificate does not chain to a trust anchor for document signing at the time.
    #[error("seal certificate chain does not verify for document signing: {0}")]
    Chain(webpki::Error),
    /// The certificate lacks the id-kp-documentSigning extended key usage.
    #[error(
        "seal certificate extendedKeyUsage must include id-kp-documentSigning (1.3.6.1.5.5.7.3.36)"
    )]
    Eku,
    /// The certificate lacks keyUsage digitalSignature and nonRepudiation.
    #[error("seal certificate keyUsage must include digitalSignature and nonRepudiation")]
    KeyUsage,
}

fn invalid(field: &'static str, reason: impl Into<String>) -> SealError {
    SealError::InvalidRequest {
        field,
        reason: reason.into(),
    }
}

/// Validity period of a seal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    /// First instant the seal may sign.
    pub not_before: DateTime<Utc>,
    /// Last instant the seal may sign.
    pub not_after: DateTime<Utc>,
}

/// What a department asks for when the city issues it a seal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealRequest {
    /// Department code from the registry: 1–32 of `A-Z a-z 0-9 - _`.
    pub dept_code: String,
    /// Department name in Chinese, the certificate's O.
    pub dept_name_zh: String,
    /// 18-character unified social credit code (统一社会信用代码), checksum verified.
    pub credit_code: String,
    /// Seal name, the certificate's CN, e.g. `盘锦市市场监督管理局公章`.
    pub seal_name: String,
    /// Kind of seal.
    pub seal_type: SealType,
    /// Validity of the certificate and of the seal record.
    pub validity: Validity,
    /// SHA-256 of the seal image.
    pub image_digest: [u8; 32],
    /// URL of the issuing CA's CRL, written as a CRL distribution point when given.
    pub crl_distribution_url: Option<String>,
}

/// A seal as issued or imported: certificate, private key, record and intermediates.
#[derive(Debug, Clone)]
pub struct IssuedSeal {
    /// The seal certificate, DER.
    pub cert_der: Vec<u8>,
    /// The seal's private key, PKCS#8 DER. Store it encrypted ([`crate::EncryptedKey`]).
    pub key: SecretBytes,
    /// The seal record signed by the city seal authority.
    pub record: SealRecord,
    /// Intermediate certificates (DER) from the seal certificate towards the root.
    pub chain: Vec<Vec<u8>>,
}

impl IssuedSeal {
    /// The seal certificate, PEM.
    pub fn cert_pem(&self) -> String {
        ca::cert_to_pem(&self.cert_der)
    }

    /// The seal id of the record.
    pub fn seal_id(&self) -> &str {
        &self.record.info().seal_id
    }

    /// Loads the key for signing (see [`SealKey::new`]).
    pub fn into_seal_key(self) -> Result<SealKey, SealError> {
        SealKey::new(self.cert_der, self.key, self.record, self.chain)
    }
}

/// Everything needed to sign with a seal, checked to belong together.
#[derive(Debug)]
pub struct SealKey {
    cert_der: Vec<u8>,
    record: SealRecord,
    chain: Vec<Vec<u8>>,
    signer: SigningKey,
    serial: Vec<u8>,
}

impl SealKey {
    /// Checks that `key` belongs to `cert_der` (P-256, same public key, a probe signature
    /// verifies), that `record` is the record of this certificate (certDigest) with a valid
    /// maker signature, and that the chain is at most 4 certificates.
    pub fn new(
        cert_der: Vec<u8>,
        key: SecretBytes,
        record: SealRecord,
        chain: Vec<Vec<u8>>,
    ) -> Result<Self, SealError> {
        let facts = CertFacts::from_der(&cert_der).map_err(SealError::Certificate)?;
        let point = facts
            .p256_point
            .as_deref()
            .ok_or_else(|| SealError::Certificate("public key is not ECDSA P-256".to_owned()))?;
        let signer = SigningKey::from_pkcs8(&key)?;
        signer.check_matches(point)?;
        if record.info().cert_digest != sha256(&cert_der) {
            return Err(SealError::Record(SealRecordError::InvalidField {
                field: "certDigest",
                reason: "is not the SHA-256 of this seal certificate".to_owned(),
            }));
        }
        record.verify_maker_signature()?;
        if chain.len() > MAX_CHAIN_LEN {
            return Err(invalid("chain", "more than 4 intermediate certificates"));
        }
        Ok(Self {
            cert_der,
            record,
            chain,
            signer,
            serial: facts.serial,
        })
    }

    /// The seal certificate, DER.
    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// The seal record.
    pub fn record(&self) -> &SealRecord {
        &self.record
    }

    /// Intermediate certificates, DER.
    pub fn chain(&self) -> &[Vec<u8>] {
        &self.chain
    }

    /// Serial number of the seal certificate (DER INTEGER content octets).
    pub fn serial(&self) -> &[u8] {
        &self.serial
    }

    pub(crate) fn signer(&self) -> &SigningKey {
        &self.signer
    }
}

pub(crate) fn sha256(bytes: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest(&SHA256, bytes).as_ref());
    out
}

/// Issues a seal under the city issuing CA at `now`: a fresh P-256 key, the seal certificate
/// (profile in the module docs) and a seal record signed by the issuing CA.
pub fn issue_seal(
    issuing: &CaCert,
    request: &SealRequest,
    now: DateTime<Utc>,
) -> Result<IssuedSeal, SealError> {
    issue(issuing, request, None, now)
}

/// Like [`issue_seal`], with the seal image: the record's `pictureDigest` is the image's
/// SHA-256 (whatever `request.image_digest` says) and its `pictureType` the image's type.
pub fn issue_seal_with_image(
    issuing: &CaCert,
    request: &SealRequest,
    image: &SealImage,
    now: DateTime<Utc>,
) -> Result<IssuedSeal, SealError> {
    let request = SealRequest {
        image_digest: image.digest(),
        ..request.clone()
    };
    issue(issuing, &request, Some(image.image_type()), now)
}

fn issue(
    issuing: &CaCert,
    request: &SealRequest,
    picture_type: Option<ImageType>,
    now: DateTime<Utc>,
) -> Result<IssuedSeal, SealError> {
    check_dept_code(&request.dept_code)?;
    check_credit_code(&request.credit_code)?;
    for (field, value) in [
        ("dept_name_zh", &request.dept_name_zh),
        ("seal_name", &request.seal_name),
    ] {
        if value.trim().is_empty() || value.len() > 256 {
            return Err(invalid(field, "must be 1 to 256 bytes and not blank"));
        }
    }
    let not_before = timestamp::whole_seconds(request.validity.not_before);
    let not_after = timestamp::whole_seconds(request.validity.not_after);
    if not_before >= not_after {
        return Err(invalid("validity", "not_before must be before not_after"));
    }
    if not_after.timestamp() > issuing.not_after() || not_before.timestamp() < issuing.not_before()
    {
        return Err(invalid(
            "validity",
            "must lie within the issuing CA certificate's validity",
        ));
    }

    let key = keys::generate_p256()?;
    let key_pair = keys::rcgen_key_pair(&key)?;
    let serial = ca::random_serial()?;
    let serial_hex = hex_lower(&serial.to_bytes());

    let mut dn = DistinguishedName::new();
    dn.push(DnType::CountryName, ca::country_cn()?);
    dn.push(
        DnType::OrganizationName,
        DnValue::Utf8String(request.dept_name_zh.clone()),
    );
    let credit = rcgen::string::PrintableString::try_from(request.credit_code.as_str())
        .map_err(|e| invalid("credit_code", e.to_string()))?;
    dn.push(
        DnType::CustomDnType(oid_arcs(OID_ORGANIZATION_IDENTIFIER)),
        DnValue::PrintableString(credit),
    );
    dn.push(
        DnType::CommonName,
        DnValue::Utf8String(request.seal_name.clone()),
    );

    let mut params = CertificateParams::default();
    params.distinguished_name = dn;
    params.not_before = timestamp::to_offset(not_before)
        .map_err(|e| invalid("validity", format!("time {} out of range", e.0)))?;
    params.not_after = timestamp::to_offset(not_after)
        .map_err(|e| invalid("validity", format!("time {} out of range", e.0)))?;
    params.serial_number = Some(serial);
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::ContentCommitment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::Other(oid_arcs(
        crate::OID_DOCUMENT_SIGNING,
    ))];
    params.use_authority_key_identifier_extension = true;
    if let Some(url) = &request.crl_distribution_url {
        params.crl_distribution_points = vec![CrlDistributionPoint {
            uris: vec![url.clone()],
        }];
    }
    let issuer = issuing.issuer()?;
    let cert = params
        .signed_by(&key_pair, &issuer)
        .map_err(SealError::Build)?;
    let cert_der = cert.der().to_vec();

    let info = SealInfo {
        seal_id: format!("{}-{serial_hex}", request.dept_code),
        seal_type: request.seal_type,
        name: request.seal_name.clone(),
        cert_digest: sha256(&cert_der),
        create_date: timestamp::whole_seconds(now),
        valid_start: not_before,
        valid_end: not_after,
        picture_digest: request.image_digest,
    };
    let record = SealRecord::make_with_picture_type(info, picture_type, issuing)?;
    Ok(IssuedSeal {
        cert_der,
        key,
        record,
        chain: vec![issuing.cert_der().to_vec()],
    })
}

/// A department's own seal certificate and key, made by its own CA, to be registered.
#[derive(Debug, Clone)]
pub struct ImportRequest {
    /// The seal certificate, PEM.
    pub cert_pem: String,
    /// The seal private key, PEM PKCS#8 (`PRIVATE KEY`), ECDSA P-256.
    pub key_pem: String,
    /// Intermediate certificates, PEM texts each holding one or more certificates.
    pub chain_pem: Vec<String>,
    /// Department code from the registry (prefix of the seal id).
    pub dept_code: String,
    /// Kind of seal.
    pub seal_type: SealType,
    /// SHA-256 of the seal image.
    pub image_digest: [u8; 32],
}

/// Imports a department's own seal certificate at `now`. Accepted only if the certificate
/// chains to one of `trust` at `now` for document signing (EKU id-kp-documentSigning), has
/// keyUsage digitalSignature and nonRepudiation, is not a CA, has a P-256 key, and the key
/// matches it (a probe signature verifies). The city seal authority `maker` then signs a seal
/// record for it (name = certificate CN, validity = certificate validity).
pub fn import_seal(
    maker: &CaCert,
    request: &ImportRequest,
    trust: &TrustAnchors,
    now: DateTime<Utc>,
) -> Result<IssuedSeal, SealError> {
    import(maker, request, trust, None, now)
}

/// Like [`import_seal`], with the seal image: the record's `pictureDigest` is the image's
/// SHA-256 (whatever `request.image_digest` says) and its `pictureType` the image's type.
pub fn import_seal_with_image(
    maker: &CaCert,
    request: &ImportRequest,
    trust: &TrustAnchors,
    image: &SealImage,
    now: DateTime<Utc>,
) -> Result<IssuedSeal, SealError> {
    let request = ImportRequest {
        image_digest: image.digest(),
        ..request.clone()
    };
    import(maker, &request, trust, Some(image.image_type()), now)
}

fn import(
    maker: &CaCert,
    request: &ImportRequest,
    trust: &TrustAnchors,
    picture_type: Option<ImageType>,
    now: DateTime<Utc>,
) -> Result<IssuedSeal, SealError> {
    check_dept_code(&request.dept_code)?;
    let cert = pem::parse(&request.cert_pem).map_err(|e| SealError::Pem {
        what: "seal certificate",
        reason: e.to_string(),
    })?;
    if cert.tag() != "CERTIFICATE" {
        return Err(SealError::Pem {
            what: "seal certificate",
            reason: format!("expected CERTIFICATE, found {}", cert.tag()),
        });
    }
    let cert_der = cert.into_contents();
    let key = keys::pkcs8_from_pem(&request.key_pem)?;
    let chain = trust::certs_from_pems(&request.chain_pem).map_err(|reason| SealError::Pem {
        what: "chain",
        reason,
    })?;
    if chain.len() > MAX_CHAIN_LEN {
        return Err(invalid(
            "chain_pem",
            "more than 4 intermediate certificates",
        ));
    }
    let facts = CertFacts::from_der(&cert_der).map_err(SealError::Certificate)?;
    if facts.is_ca {
        return Err(SealError::Certificate(
            "is a CA certificate, not a seal certificate".to_owned(),
        ));
    }
    if !facts.has_document_signing_eku() {
        return Err(SealError::Eku);
    }
    if !facts.has_seal_key_usage() {
        return Err(SealError::KeyUsage);
    }
    trust
        .verify_document_signer(&cert_der, &chain, now, None)
        .map_err(SealError::Chain)?;
    let point = facts
        .p256_point
        .as_deref()
        .ok_or_else(|| SealError::Certificate("public key is not ECDSA P-256".to_owned()))?;
    SigningKey::from_pkcs8(&key)?.check_matches(point)?;
    let name = facts
        .subject_cn
        .clone()
        .ok_or_else(|| SealError::Certificate("subject has no CN (seal name)".to_owned()))?;
    let time = |t: i64| {
        timestamp::from_timestamp(t)
            .map_err(|_| SealError::Certificate(format!("validity time {t} out of range")))
    };
    let info = SealInfo {
        seal_id: format!("{}-{}", request.dept_code, facts.serial_hex()),
        seal_type: request.seal_type,
        name,
        cert_digest: sha256(&cert_der),
        create_date: timestamp::whole_seconds(now),
        valid_start: time(facts.not_before)?,
        valid_end: time(facts.not_after)?,
        picture_digest: request.image_digest,
    };
    let record = SealRecord::make_with_picture_type(info, picture_type, maker)?;
    Ok(IssuedSeal {
        cert_der,
        key,
        record,
        chain: chain.into_iter().map(|c| c.to_vec()).collect(),
    })
}

fn check_dept_code(code: &str) -> Result<(), SealError> {
    let ok = !code.is_empty()
        && code.len() <= MAX_DEPT_CODE_LEN
        && code
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(invalid(
            "dept_code",
            "must be 1 to 32 characters of A-Z a-z 0-9 - _",
        ))
    }
}

/// Checks an 18-character unified social credit code and its check character (GB 32100).
pub(crate) fn check_credit_code(code: &str) -> Result<(), SealError> {
    let bytes = code.as_bytes();
    if bytes.len() != 18 {
        return Err(invalid(
            "credit_code",
            format!("must be 18 characters, found {}", code.chars().count()),
        ));
    }
    let mut values = [0u32; 18];
    for (value, b) in values.iter_mut().zip(bytes) {
        let position = USCC_ALPHABET.iter().position(|c| c == b).ok_or_else(|| {
            invalid(
                "credit_code",
                "has a character outside 0-9 and A-Y (no I, O, S, V, Z)",
            )
        })?;
        *value = u32::try_from(position).unwrap_or(u32::MAX);
    }
    let sum: u32 = values.iter().zip(USCC_WEIGHTS).map(|(v, w)| v * w).sum();
    let check = (31 - sum % 31) % 31;
    if values[17] != check {
        return Err(invalid("credit_code", "check character does not match"));
    }
    Ok(())
}

fn oid_arcs(dotted: &str) -> Vec<u64> {
    dotted.split('.').filter_map(|a| a.parse().ok()).collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::ca::{init_city_ca, CaNames};
    use chrono::Duration;
    use x509_parser::prelude::{FromDer as _, X509Certificate};

    pub(crate) fn request(now: DateTime<Utc>) -> SealRequest {
        SealRequest {
            dept_code: "SCJG".to_owned(),
            dept_name_zh: "盘锦市市场监督管理局".to_owned(),
            credit_code: "91350100M000100Y43".to_owned(),
            seal_name: "盘锦市市场监督管理局公章".to_owned(),
            seal_type: SealType::Official,
            validity: Validity {
                not_before: now,
                not_after: now + Duration::days(365 * 3),
            },
            image_digest: [9; 32],
            crl_distribution_url: Some("http://pki.example.cn/crl/issuing.crl".to_owned()),
        }
    }

    #[test]
    fn credit_codes() {
        check_credit_code("91350100M000100Y43").unwrap();
        assert!(check_credit_code("91350100M000100Y44").is_err());
        assert!(check_credit_code("91350100M000100Y4").is_err());
        assert!(check_credit_code("91350100M000100I43").is_err());
    }

    #[test]
    fn seal_certificate_profile() {
        let now = Utc::now();
        let pki = init_city_ca(&CaNames::for_city("盘锦市", "盘锦市人民政府"), now).unwrap();
        let seal = issue_seal(&pki.issuing, &request(now), now).unwrap();
        let (_, cert) = X509Certificate::from_der(&seal.cert_der).unwrap();
        let ku = cert.key_usage().unwrap().unwrap();
        assert!(ku.critical);
        assert!(ku.value.digital_signature() && ku.value.non_repudiation());
        assert!(!ku.value.key_cert_sign());
        let eku = cert.extended_key_usage().unwrap().unwrap();
        assert_eq!(
            eku.value.other[0].to_id_string(),
            crate::OID_DOCUMENT_SIGNING
        );
        let bc = cert.basic_constraints().unwrap().unwrap();
        assert!(bc.critical && !bc.value.ca);
        assert_eq!(cert.raw_serial().len(), 16);
        let facts = CertFacts::from_der(&seal.cert_der).unwrap();
        assert_eq!(facts.subject_org_id.as_deref(), Some("91350100M000100Y43"));
        assert_eq!(facts.subject_o.as_deref(), Some("盘锦市市场监督管理局"));
        assert_eq!(
            facts.subject_cn.as_deref(),
            Some("盘锦市市场监督管理局公章")
        );
        assert!(seal.seal_id().starts_with("SCJG-"));
        assert_eq!(seal.record.info().cert_digest, sha256(&seal.cert_der));
        seal.record.verify_maker_signature().unwrap();
        let key = seal.into_seal_key().unwrap();
        assert_eq!(key.serial(), facts.serial.as_slice());
    }

    #[test]
    fn bad_requests_are_refused() {
        let now = Utc::now();
        let pki = init_city_ca(&CaNames::for_city("盘锦市", "盘锦市人民政府"), now).unwrap();
        let mut r = request(now);
        r.dept_code = "有中文".to_owned();
        assert!(matches!(
            issue_seal(&pki.issuing, &r, now),
            Err(SealError::InvalidRequest {
                field: "dept_code",
                ..
            })
        ));
        let mut r = request(now);
        r.validity.not_after = r.validity.not_before;
        assert!(issue_seal(&pki.issuing, &r, now).is_err());
    }

    #[test]
    fn every_registry_code_fits_whole_with_an_image() {
        let now = Utc::now();
        let pki = init_city_ca(&CaNames::for_city("盘锦市", "盘锦市人民政府"), now).unwrap();
        let mut r = request(now);
        // The longest code the registry allows (32 characters).
        r.dept_code = "human-resources-social-security1".to_owned();
        let image = SealImage::official_svg(&r.dept_name_zh, r.seal_type);
        let seal = issue_seal_with_image(&pki.issuing, &r, &image, now).unwrap();
        assert!(seal
            .seal_id()
            .starts_with("human-resources-social-security1-"));
        assert_eq!(seal.record.info().picture_digest, image.digest());
        assert_eq!(seal.record.picture_type(), Some(ImageType::Svg));
        seal.record.verify_maker_signature().unwrap();
        // An imported certificate's 20-byte serial (42 hex digits with a leading 00) fits too.
        let id = format!("{}-{}", r.dept_code, "00".repeat(21));
        crate::record::SealInfo {
            seal_id: id,
            ..seal.record.info().clone()
        }
        .to_der()
        .unwrap();
        r.dept_code.push('x');
        assert!(issue_seal(&pki.issuing, &r, now).is_err());
    }

    #[test]
    fn seal_key_rejects_mismatched_parts() {
        let now = Utc::now();
        let pki = init_city_ca(&CaNames::for_city("盘锦市", "盘锦市人民政府"), now).unwrap();
        let a = issue_seal(&pki.issuing, &request(now), now).unwrap();
        let b = issue_seal(&pki.issuing, &request(now), now).unwrap();
        assert!(matches!(
            SealKey::new(a.cert_der.clone(), b.key.clone(), a.record.clone(), vec![]),
            Err(SealError::Key(KeyError::Mismatch))
        ));
        assert!(matches!(
            SealKey::new(a.cert_der.clone(), a.key.clone(), b.record.clone(), vec![]),
            Err(SealError::Record(_))
        ));
    }
}
