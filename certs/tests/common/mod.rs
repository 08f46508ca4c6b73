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

/// A seal certificate made directly with rcgen under the city issuing CA, with the given key
/// usages and EKUs, plus a record for it made by the issuing CA.
pub fn custom_seal(
    pki: &CityPki,
    key_usages: Vec<rcgen::KeyUsagePurpose>,
    ekus: Vec<rcgen::ExtendedKeyUsagePurpose>,
) -> SealKey {
    use bohai_certs::{SealInfo, SealRecord, SecretBytes};
    let key_pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = rcgen::CertificateParams::default();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "测试章");
    params.not_before = rcgen::date_time_ymd(2026, 1, 1);
    params.not_after = rcgen::date_time_ymd(2027, 1, 1);
    params.is_ca = rcgen::IsCa::ExplicitNoCa;
    params.key_usages = key_usages;
    params.extended_key_usages = ekus;
    params.use_authority_key_identifier_extension = true;
    let issuing_key = rcgen::KeyPair::try_from(pki.issuing.key().expose_secret()).unwrap();
    let issuer =
        rcgen::Issuer::from_ca_cert_der(&pki.issuing.cert_der().to_vec().into(), issuing_key)
            .unwrap();
    let cert = params.signed_by(&key_pair, &issuer).unwrap();
    let cert_der = cert.der().to_vec();
    let info = SealInfo {
        seal_id: "TEST-custom".to_owned(),
        seal_type: SealType::Business,
        name: "测试章".to_owned(),
        cert_digest: sha(&cert_der),
        create_date: Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
        valid_start: Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
        valid_end: Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap(),
        picture_digest: sha(b"img"),
    };
    let record = SealRecord::make(info, &pki.issuing).unwrap();
    SealKey::new(
        cert_der,
        SecretBytes::new(key_pair.serialize_der()),
        record,
        vec![pki.issuing.cert_der().to_vec()],
    )
    .unwrap()
}
