//! Test material made by code: a city PKI, seals, CRLs and odd certificates built with rcgen.
//! Nothing is read from files; every run makes fresh keys.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use bohai_certs::{
    init_city_ca, issue_crl, issue_seal, sign_document, CaCert, CaNames, CityPki, IssuedSeal,
    RevokedSeal, SealKey, SealRequest, SealSignature, SealType, TrustAnchors, Validity,
};
use chrono::{DateTime, Duration, TimeZone, Utc};
use ring::digest::{digest, SHA256};

/// A fixed "now" so times in failures are readable: 2026-03-01T08:00:00Z.
pub fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 8, 0, 0).unwrap()
}

pub fn city() -> CityPki {
    init_city_ca(
        &CaNames::for_city("盘锦市", "盘锦市人民政府"),
        now() - Duration::days(30),
    )
    .unwrap()
}

/// A city PKI made at the real current time, for tests where OpenSSL checks dates with the
/// real clock.
pub fn city_at_real_now() -> CityPki {
    init_city_ca(
        &CaNames::for_city("盘锦市", "盘锦市人民政府"),
        Utc::now() - Duration::hours(1),
    )
    .unwrap()
}

/// A seal valid around the real current time, under `pki`.
pub fn seal_at_real_now(pki: &CityPki) -> IssuedSeal {
    let mut req = request();
    req.validity = Validity {
        not_before: Utc::now() - Duration::minutes(30),
        not_after: Utc::now() + Duration::days(30),
    };
    issue_seal(&pki.issuing, &req, Utc::now()).unwrap()
}

pub fn other_city() -> CityPki {
    init_city_ca(
        &CaNames::for_city("大连市", "大连市人民政府"),
        now() - Duration::days(30),
    )
    .unwrap()
}

pub fn trust(pki: &CityPki) -> TrustAnchors {
    TrustAnchors::from_pem(&pki.root.cert_pem()).unwrap()
}

/// A seal valid from `now - 10 days` to `now + 365 days`.
pub fn request() -> SealRequest {
    SealRequest {
        dept_code: "SCJG".to_owned(),
        dept_name_zh: "盘锦市市场监督管理局".to_owned(),
        credit_code: "91350100M000100Y43".to_owned(),
        seal_name: "盘锦市市场监督管理局公章".to_owned(),
        seal_type: SealType::Official,
        validity: Validity {
            not_before: now() - Duration::days(10),
            not_after: now() + Duration::days(365),
        },
        image_digest: sha(b"seal image png"),
        crl_distribution_url: Some("http://pki.panjin.example/issuing.crl".to_owned()),
    }
}

pub fn seal(pki: &CityPki) -> IssuedSeal {
    issue_seal(&pki.issuing, &request(), now() - Duration::days(10)).unwrap()
}

pub fn sha(bytes: &[u8]) -> [u8; 32] {
    digest(&SHA256, bytes).as_ref().try_into().unwrap()
}

pub const DOCUMENT: &[u8] = "营业执照 电子证照 document body".as_bytes();

pub fn sign(key: &SealKey, at: DateTime<Utc>) -> SealSignature {
    sign_document(key, sha(DOCUMENT), at).unwrap()
}

/// A fresh CRL from `issuer` listing `revoked` serials, valid a week around `now`.
pub fn crl(issuer: &CaCert, revoked: &[Vec<u8>]) -> Vec<u8> {
    let entries: Vec<RevokedSeal> = revoked
        .iter()
        .map(|serial| RevokedSeal {
            serial: serial.clone(),
            revoked_at: now() - Duration::days(1),
            reason: bohai_certs::RevocationReason::KeyCompromise,
        })
        .collect();
    issue_crl(
        issuer,
        &entries,
        1,
        now() - Duration::days(1),
        now() + Duration::days(6),
    )
    .unwrap()
}

/// Current CRLs of the whole path of a city seal: the issuing CA's, listing `revoked`, and
/// the root's, listing nothing.
pub fn crls(pki: &CityPki, revoked: &[Vec<u8>]) -> Vec<Vec<u8>> {
    vec![crl(&pki.issuing, revoked), crl(&pki.root, &[])]
}

/// A seal of the city (the market regulator's) with the intermediates `chain` carried.
pub fn city_seal_carrying(pki: &CityPki, chain: Vec<Vec<u8>>) -> SealKey {
    let issued = seal(pki);
    SealKey::new(issued.cert_der, issued.key, issued.record, chain).unwrap()
}

/// A seal certificate made from `params` and `key` under the city issuing CA, DER.
pub fn issued_by_city(
    pki: &CityPki,
    params: rcgen::CertificateParams,
    key: &rcgen::KeyPair,
) -> Vec<u8> {
    params
        .signed_by(key, &rcgen_issuer(&pki.issuing))
        .unwrap()
        .der()
        .to_vec()
}

/// The seal certificate profile as rcgen parameters (valid all of 2026; `now()` is inside):
/// not a CA, keyUsage digitalSignature + nonRepudiation, EKU documentSigning. Tests change
/// one thing of it to make a negative case.
pub fn seal_params(common_name: &str) -> rcgen::CertificateParams {
    let mut params = params_2026(common_name);
    params.is_ca = rcgen::IsCa::ExplicitNoCa;
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::DigitalSignature,
        rcgen::KeyUsagePurpose::ContentCommitment,
    ];
    params.extended_key_usages = vec![document_signing_eku()];
    params
}

/// Certificate parameters with only a common name, the authority key identifier and a
/// validity of all 2026.
fn params_2026(common_name: &str) -> rcgen::CertificateParams {
    let mut params = rcgen::CertificateParams::default();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, common_name);
    params.not_before = rcgen::date_time_ymd(2026, 1, 1);
    params.not_after = rcgen::date_time_ymd(2027, 1, 1);
    params.use_authority_key_identifier_extension = true;
    params
}

/// id-kp-documentSigning (1.3.6.1.5.5.7.3.36).
pub fn document_signing_eku() -> rcgen::ExtendedKeyUsagePurpose {
    rcgen::ExtendedKeyUsagePurpose::Other(vec![1, 3, 6, 1, 5, 5, 7, 3, 36])
}

/// CA parameters (cA TRUE with `constraint`, keyCertSign + cRLSign), valid all of 2026.
pub fn ca_params(
    common_name: &str,
    constraint: rcgen::BasicConstraints,
) -> rcgen::CertificateParams {
    let mut params = params_2026(common_name);
    params.is_ca = rcgen::IsCa::Ca(constraint);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    params
}

/// A city CA (root or issuing) as an rcgen issuer.
pub fn rcgen_issuer(ca: &CaCert) -> rcgen::Issuer<'static, rcgen::KeyPair> {
    let key = rcgen::KeyPair::try_from(ca.key().expose_secret()).unwrap();
    rcgen::Issuer::from_ca_cert_der(&ca.cert_der().to_vec().into(), key).unwrap()
}

/// A fresh P-256 key pair.
pub fn p256_key() -> rcgen::KeyPair {
    rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap()
}

/// A seal record for `cert_der` made (and so vouched for) by the city issuing CA, valid all of
/// 2026: the record is never what a test built on it is about.
pub fn record_for(pki: &CityPki, cert_der: &[u8]) -> bohai_certs::SealRecord {
    use bohai_certs::{SealInfo, SealRecord};
    let info = SealInfo {
        seal_id: "TEST-custom".to_owned(),
        seal_type: SealType::Business,
        name: "测试章".to_owned(),
        cert_digest: sha(cert_der),
        create_date: Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
        valid_start: Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
        valid_end: Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap(),
        picture_digest: sha(b"img"),
    };
    SealRecord::make(info, &pki.issuing).unwrap()
}

/// A seal key for a certificate made with rcgen, its P-256 key, a record made by the city
/// issuing CA, and the intermediates `chain` (carried as given, right or wrong).
pub fn seal_key_from(
    pki: &CityPki,
    cert_der: Vec<u8>,
    key_pair: &rcgen::KeyPair,
    chain: Vec<Vec<u8>>,
) -> SealKey {
    let record = record_for(pki, &cert_der);
    SealKey::new(
        cert_der,
        bohai_certs::SecretBytes::new(key_pair.serialize_der()),
        record,
        chain,
    )
    .unwrap()
}

/// A seal certificate made directly with rcgen under the city issuing CA, with the given key
/// usages and EKUs, plus a record for it made by the issuing CA.
pub fn custom_seal(
    pki: &CityPki,
    key_usages: Vec<rcgen::KeyUsagePurpose>,
    ekus: Vec<rcgen::ExtendedKeyUsagePurpose>,
) -> SealKey {
    let key_pair = p256_key();
    let mut params = seal_params("测试章");
    params.key_usages = key_usages;
    params.extended_key_usages = ekus;
    let cert = params
        .signed_by(&key_pair, &rcgen_issuer(&pki.issuing))
        .unwrap();
    seal_key_from(
        pki,
        cert.der().to_vec(),
        &key_pair,
        vec![pki.issuing.cert_der().to_vec()],
    )
}

/// DER object identifier of ecdsa-with-SHA256, as it stands in a seal signature.
pub const ECDSA_WITH_SHA256_DER: [u8; 10] =
    [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02];

/// One DER TLV with a definite length.
pub fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(u8::try_from(len).unwrap());
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | u8::try_from(bytes.len()).unwrap());
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

/// A seal signature assembled by hand, as an attacker with arbitrary keys and certificates
/// would: `TBS_Sign` (docs/formats.md) over `record`, `signing_time`, `data_hash` and
/// `cert_chain` (signer first), signed by `signer` (any rcgen key, any algorithm) and labelled
/// with the DER object identifier `algorithm`.
pub fn hand_made_signature(
    record: &bohai_certs::SealRecord,
    signing_time: DateTime<Utc>,
    data_hash: [u8; 32],
    cert_chain: &[Vec<u8>],
    signer: &rcgen::KeyPair,
    algorithm: &[u8],
) -> Vec<u8> {
    use rcgen::SigningKey as _;
    let time = signing_time.format("%Y%m%d%H%M%SZ").to_string();
    let chain: Vec<u8> = cert_chain.iter().flat_map(|c| tlv(0x04, c)).collect();
    let tbs = tlv(
        0x30,
        &[
            tlv(0x02, &[4]),
            record.to_der().unwrap(),
            tlv(0x18, time.as_bytes()),
            tlv(0x04, &data_hash),
            tlv(0x0c, b"bohai-detached-v1"),
            tlv(0x30, &chain),
        ]
        .concat(),
    );
    let signature = signer.sign(&tbs).unwrap();
    let bits = [&[0u8][..], &signature].concat();
    tlv(0x30, &[tbs, algorithm.to_vec(), tlv(0x03, &bits)].concat())
}
