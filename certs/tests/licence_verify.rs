//! Licence sealing, status lists and every verdict the licence verifier gives.
#![allow(clippy::unwrap_used)]

mod common;

use bohai_certs::licence::{
    authentic_with_status_unknown, seal_licence, sign_status_list, verify_status_list, Issuer,
    Licence, LicenceInputs, LicencePolicy, LicenceStatus, LicenceTypes, LicenceVerifier,
    StatusList, StatusListRef, TypeVerdict, VerifiedStatusList,
};
use bohai_certs::{issue_seal, ReasonCode, Report, RevocationPolicy, SealKey, Verdict};
use chrono::{DateTime, Duration, Utc};
use common::*;
use serde_json::{json, Value};

const URI: &str = "https://hub.panjin.example/api/v1/licences/status-list";
/// The test seal's credit code (common::request) doubles as the status authority's here.
const CREDIT: &str = "91350100M000100Y43";

/// Knows `business-licence`, issued by `market-regulation`, whose fields need `scope`.
struct Types;

impl LicenceTypes for Types {
    fn judge(&self, licence_type: &str, dept: &str, subject: &Value) -> TypeVerdict {
        if licence_type != "business-licence" {
            return TypeVerdict::Unknown;
        }
        if dept != "market-regulation" {
            return TypeVerdict::WrongIssuer {
                expected: "market-regulation".to_owned(),
            };
        }
        if subject["fields"].get("scope").is_none() {
            return TypeVerdict::Invalid(vec!["/fields/scope: required".to_owned()]);
        }
        TypeVerdict::Valid
    }

    fn credit_code(&self, department: &str) -> Option<&str> {
        // public-security shares the test seal's code here only so that a licence of a type
        // it does not issue reaches the type's check.
        matches!(department, "market-regulation" | "public-security").then_some(CREDIT)
    }
    fn seal_department(&self, _: &[u8; 32]) -> Option<&str> {
        // The test seal is the only certificate here: held for market-regulation.
        Some("market-regulation")
    }
    fn number_prefix(&self, licence_type: &str) -> Option<&str> {
        match licence_type {
            "business-licence" => Some("BL"),
            "food-business-permit" => Some("FB"),
            "driving-licence" => Some("DL"),
            _ => None,
        }
    }
}

/// The same types, in a registry that binds `market-regulation` to another credit code than
/// the test seal's: the seal is another department's.
struct OtherRegistry;

impl LicenceTypes for OtherRegistry {
    fn judge(&self, licence_type: &str, dept: &str, subject: &Value) -> TypeVerdict {
        Types.judge(licence_type, dept, subject)
    }

    fn credit_code(&self, department: &str) -> Option<&str> {
        (department == "market-regulation").then_some("11211100052825450R")
    }
    fn seal_department(&self, leaf: &[u8; 32]) -> Option<&str> {
        Types.seal_department(leaf)
    }
    fn number_prefix(&self, licence_type: &str) -> Option<&str> {
        Types.number_prefix(licence_type)
    }
}

fn licence(idx_version: u32) -> Licence {
    Licence {
        licence_type: "business-licence".to_owned(),
        number: "BL-2026-00000001".to_owned(),
        version: idx_version,
        issuer: Issuer {
            department: "market-regulation".to_owned(),
            name_zh: "盘锦市市场监督管理局".to_owned(),
            credit_code: CREDIT.to_owned(),
        },
        holder: json!({"name": "盘锦渤海数据有限公司", "credit_code": "91211100MA0Q3XKJ4U"}),
        fields: json!({"scope": "数据处理服务"}),
        valid_from: now() - Duration::days(1),
        valid_until: now() + Duration::days(30),
        issued_at: now() - Duration::days(1),
        supersedes: None,
    }
}

fn entry(idx: u64) -> StatusListRef {
    StatusListRef {
        idx,
        uri: URI.to_owned(),
    }
}

fn status(
    key: &SealKey,
    pki: &bohai_certs::CityPki,
    set: &[(u64, LicenceStatus)],
    made: DateTime<Utc>,
) -> VerifiedStatusList {
    let mut list = StatusList::with_capacity(16);
    // Every index is the test licence's (a licence and its renewals).
    for i in 0..16 {
        list.bind(i, "BL-2026-00000001").unwrap();
    }
    for (i, s) in set {
        list.set(*i, *s).unwrap();
    }
    let token = sign_status_list(key, URI, &list, made, 300).unwrap();
    verify_status_list(&token, &trust(pki), CREDIT).unwrap()
}

fn verifier(pki: &bohai_certs::CityPki, crls: Vec<Vec<u8>>) -> LicenceVerifier {
    LicenceVerifier::new(trust(pki), crls, LicencePolicy::default())
}

fn verify(
    v: &LicenceVerifier,
    jws: &str,
    list: Option<&VerifiedStatusList>,
    at: DateTime<Utc>,
) -> Report {
    v.verify(
        jws,
        LicenceInputs {
            status: list,
            types: &Types,
            at,
        },
    )
    .0
}

fn code(report: &Report, check: &str) -> ReasonCode {
    report
        .check(check)
        .unwrap_or_else(|| panic!("no {check}"))
        .code
}

struct Fixture {
    pki: bohai_certs::CityPki,
    key: SealKey,
    crls: Vec<Vec<u8>>,
}

fn fixture() -> Fixture {
    let pki = city();
    let key = seal(&pki).into_seal_key().unwrap();
    let crls = crls(&pki, &[]);
    Fixture { pki, key, crls }
}

#[test]
fn sealed_licence_verifies_with_every_check_passed() {
    let f = fixture();
    let jws = seal_licence(&f.key, licence(1), entry(3)).unwrap();
    let list = status(&f.key, &f.pki, &[], now());
    let v = verifier(&f.pki, f.crls.clone());
    let (report, verified) = v.verify(
        &jws,
        LicenceInputs {
            status: Some(&list),
            types: &Types,
            at: now(),
        },
    );
    assert_eq!(report.overall, Verdict::Valid, "{report:#?}");
    assert_eq!(report.checks.len(), 11);
    assert_eq!(report.status_as_of, Some(now()));
    let verified = verified.unwrap();
    assert_eq!(verified.licence().number, "BL-2026-00000001");
    assert_eq!(verified.status_index(), 3);
    // The second verification of the same seal uses the remembered chain and agrees.
    assert_eq!(verify(&v, &jws, Some(&list), now()).overall, Verdict::Valid);
}

#[test]
fn statuses_in_the_list_decide() {
    let f = fixture();
    let jws = seal_licence(&f.key, licence(1), entry(5)).unwrap();
    let v = verifier(&f.pki, f.crls.clone());
    for (s, expected) in [
        (LicenceStatus::Revoked, ReasonCode::LicenceRevoked),
        (LicenceStatus::Suspended, ReasonCode::LicenceSuspended),
        (LicenceStatus::Superseded, ReasonCode::LicenceSuperseded),
    ] {
        let list = status(&f.key, &f.pki, &[(5, s)], now());
        let report = verify(&v, &jws, Some(&list), now());
        assert_eq!(report.overall, Verdict::Invalid);
        assert_eq!(code(&report, "status"), expected);
    }
}

#[test]
fn a_stale_or_missing_status_list_is_indeterminate_never_valid_or_invalid() {
    let f = fixture();
    let jws = seal_licence(&f.key, licence(1), entry(5)).unwrap();
    let v = verifier(&f.pki, f.crls.clone());
    // Made 10 minutes ago with a 5-minute maximum age, and even though it says "revoked".
    let old = status(
        &f.key,
        &f.pki,
        &[(5, LicenceStatus::Revoked)],
        now() - Duration::minutes(10),
    );
    let report = verify(&v, &jws, Some(&old), now());
    assert_eq!(report.overall, Verdict::Indeterminate);
    assert_eq!(code(&report, "status"), ReasonCode::StatusStale);
    assert!(!authentic_with_status_unknown(&report));
    let report = verify(&v, &jws, None, now());
    assert_eq!(report.overall, Verdict::Indeterminate);
    assert_eq!(code(&report, "status"), ReasonCode::StatusUnknown);
    assert!(authentic_with_status_unknown(&report));
    // A list too short for the licence's index (16 entries, index 20): unknown too, and a
    // newer list may answer.
    let jws = seal_licence(&f.key, licence(1), entry(20)).unwrap();
    let report = verify(&v, &jws, Some(&status(&f.key, &f.pki, &[], now())), now());
    assert_eq!(code(&report, "status"), ReasonCode::StatusUnknown);
    assert!(authentic_with_status_unknown(&report));
}

#[test]
fn validity_is_judged_at_the_verification_time_with_bounded_skew() {
    let f = fixture();
    // Ends within the CRL's validity (common::crl: a week around now).
    let mut l = licence(1);
    l.valid_until = now() + Duration::days(2);
    let jws = seal_licence(&f.key, l.clone(), entry(0)).unwrap();
    let v = verifier(&f.pki, f.crls.clone());
    // Within the skew: still valid; beyond it: expired / not yet valid.
    let list_late = status(&f.key, &f.pki, &[], l.valid_until + Duration::minutes(4));
    let at = l.valid_until + Duration::minutes(4);
    assert_eq!(
        verify(&v, &jws, Some(&list_late), at).overall,
        Verdict::Valid
    );
    let at = l.valid_until + Duration::minutes(6);
    let list_later = status(&f.key, &f.pki, &[], at);
    let report = verify(&v, &jws, Some(&list_later), at);
    assert_eq!(code(&report, "validity"), ReasonCode::LicenceExpired);

    let mut future = licence(1);
    future.valid_from = now() + Duration::days(2);
    let jws = seal_licence(&f.key, future, entry(0)).unwrap();
    let report = verify(&v, &jws, Some(&status(&f.key, &f.pki, &[], now())), now());
    assert_eq!(code(&report, "validity"), ReasonCode::LicenceNotYetValid);
}

#[test]
fn tampered_forged_and_wrong_issuer_licences_are_invalid() {
    let f = fixture();
    let v = verifier(&f.pki, f.crls.clone());
    let list = status(&f.key, &f.pki, &[], now());
    let jws = seal_licence(&f.key, licence(1), entry(0)).unwrap();

    // Tampered: the payload re-encoded with another holder name, the signature kept.
    let parts: Vec<&str> = jws.split('.').collect();
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut payload: Value = serde_json::from_slice(&b64.decode(parts[1]).unwrap()).unwrap();
    payload["licence"]["holder"]["name"] = json!("冒名顶替有限公司");
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        b64.encode(serde_json::to_vec(&payload).unwrap()),
        parts[2]
    );
    let report = verify(&v, &tampered, Some(&list), now());
    assert_eq!(code(&report, "signature"), ReasonCode::SignatureInvalid);
    // Its status unknown too, it is still not worth a newer status list.
    let report = verify(&v, &tampered, None, now());
    assert_eq!(code(&report, "status"), ReasonCode::StatusUnknown);
    assert!(!authentic_with_status_unknown(&report));

    // Forged: sealed under another city's CA.
    let other = other_city();
    let forged_key = issue_seal(&other.issuing, &request(), now() - Duration::days(10))
        .unwrap()
        .into_seal_key()
        .unwrap();
    let forged = seal_licence(&forged_key, licence(1), entry(0)).unwrap();
    let report = verify(&v, &forged, Some(&list), now());
    assert_eq!(report.overall, Verdict::Invalid);
    assert_eq!(code(&report, "chain"), ReasonCode::ChainUntrusted);
    assert!(!authentic_with_status_unknown(&verify(
        &v,
        &forged,
        None,
        now()
    )));

    // Wrong issuer: a department that does not issue business licences.
    let mut wrong = licence(1);
    wrong.issuer.department = "public-security".to_owned();
    let jws = seal_licence(&f.key, wrong, entry(0)).unwrap();
    let report = verify(&v, &jws, Some(&list), now());
    assert_eq!(code(&report, "issuer"), ReasonCode::IssuerNotAuthorised);

    // Unknown type and fields that break the schema.
    let mut unknown = licence(1);
    unknown.licence_type = "fishing-permit".to_owned();
    let jws = seal_licence(&f.key, unknown, entry(0)).unwrap();
    assert_eq!(
        code(&verify(&v, &jws, Some(&list), now()), "licence_type"),
        ReasonCode::LicenceTypeUnknown
    );
    let mut bad_fields = licence(1);
    bad_fields.fields = json!({"other": 1});
    let jws = seal_licence(&f.key, bad_fields, entry(0)).unwrap();
    assert_eq!(
        code(&verify(&v, &jws, Some(&list), now()), "fields"),
        ReasonCode::LicenceFieldsInvalid
    );
}

#[test]
fn a_revoked_seal_certificate_invalidates_its_licences() {
    let f = fixture();
    let v = verifier(&f.pki, crls(&f.pki, &[f.key.serial().to_vec()]));
    let jws = seal_licence(&f.key, licence(1), entry(0)).unwrap();
    let list = status(&f.key, &f.pki, &[], now());
    let report = verify(&v, &jws, Some(&list), now());
    assert_eq!(code(&report, "revocation"), ReasonCode::CertRevoked);
    // Without any CRL the safe default is INDETERMINATE; a policy may accept it.
    let report = verify(&verifier(&f.pki, vec![]), &jws, Some(&list), now());
    assert_eq!(report.overall, Verdict::Indeterminate);
    let lenient = LicenceVerifier::new(
        trust(&f.pki),
        vec![],
        LicencePolicy {
            revocation: RevocationPolicy::AllowUnknown,
            ..LicencePolicy::default()
        },
    );
    assert_eq!(
        verify(&lenient, &jws, Some(&list), now()).overall,
        Verdict::Valid
    );
}

#[test]
fn a_licence_in_another_departments_name_is_invalid_whatever_it_claims() {
    // The seal is the test seal's department's (CREDIT); the licence names market-regulation
    // with that same credit code, so the seal certificate and the licence agree, and the type
    // is market-regulation's. Only the registry knows market-regulation's code is another.
    let f = fixture();
    let jws = seal_licence(&f.key, licence(1), entry(3)).unwrap();
    let list = status(&f.key, &f.pki, &[], now());
    let v = verifier(&f.pki, f.crls.clone());
    let (report, verified) = v.verify(
        &jws,
        LicenceInputs {
            status: Some(&list),
            types: &OtherRegistry,
            at: now(),
        },
    );
    assert_eq!(report.overall, Verdict::Invalid, "{report:#?}");
    assert_eq!(code(&report, "issuer"), ReasonCode::SealNotOfIssuer);
    assert!(verified.is_none());
    // A department the registry does not know at all.
    let mut l = licence(1);
    l.issuer.department = "ghost-bureau".to_owned();
    let jws = seal_licence(&f.key, l, entry(3)).unwrap();
    let report = verify(&v, &jws, Some(&list), now());
    assert_eq!(code(&report, "issuer"), ReasonCode::SealNotOfIssuer);
}

/// The same types and codes, in a registry that holds the test seal's certificate for no
/// department, or for another one: a certificate its CA made outside the registry.
struct SealHeldBy(Option<&'static str>);

impl LicenceTypes for SealHeldBy {
    fn judge(&self, licence_type: &str, dept: &str, subject: &Value) -> TypeVerdict {
        Types.judge(licence_type, dept, subject)
    }

    fn credit_code(&self, department: &str) -> Option<&str> {
        Types.credit_code(department)
    }

    fn seal_department(&self, _: &[u8; 32]) -> Option<&str> {
        self.0
    }
    fn number_prefix(&self, licence_type: &str) -> Option<&str> {
        Types.number_prefix(licence_type)
    }
}

#[test]
fn a_seal_certificate_the_registry_does_not_hold_for_the_issuer_seals_nothing() {
    let f = fixture();
    let jws = seal_licence(&f.key, licence(1), entry(3)).unwrap();
    let list = status(&f.key, &f.pki, &[], now());
    let v = verifier(&f.pki, f.crls.clone());
    for (held_by, expected) in [
        (None, ReasonCode::SealNotRegistered),
        (Some("public-security"), ReasonCode::SealNotOfIssuer),
    ] {
        let (report, verified) = v.verify(
            &jws,
            LicenceInputs {
                status: Some(&list),
                types: &SealHeldBy(held_by),
                at: now(),
            },
        );
        assert_eq!(report.overall, Verdict::Invalid, "{report:#?}");
        assert_eq!(code(&report, "issuer"), expected);
        assert!(verified.is_none());
    }
    assert_eq!(verify(&v, &jws, Some(&list), now()).overall, Verdict::Valid);
}

#[test]
fn a_forgery_reusing_another_licences_index_is_invalid_and_a_new_index_is_unknown() {
    let f = fixture();
    let v = verifier(&f.pki, f.crls.clone());
    let mut list = StatusList::with_capacity(16);
    list.bind(3, "BL-2026-00000007").unwrap();
    let token = sign_status_list(&f.key, URI, &list, now(), 300).unwrap();
    let list = verify_status_list(&token, &trust(&f.pki), CREDIT).unwrap();
    // Licence BL-2026-00000001 naming index 3, which is BL-2026-00000007's.
    let jws = seal_licence(&f.key, licence(1), entry(3)).unwrap();
    let report = verify(&v, &jws, Some(&list), now());
    assert_eq!(report.overall, Verdict::Invalid, "{report:#?}");
    assert_eq!(code(&report, "status"), ReasonCode::StatusIndexMismatch);
    // The same serial in a number of another type (or year): not index 3's licence either.
    for number in ["FB-2026-00000007", "BL-2025-00000007", "BL-2026-7"] {
        let mut other = licence(1);
        other.number = number.to_owned();
        let jws = seal_licence(&f.key, other, entry(3)).unwrap();
        let report = verify(&v, &jws, Some(&list), now());
        assert_eq!(
            code(&report, "status"),
            ReasonCode::StatusIndexMismatch,
            "{number}"
        );
    }
    let mut same = licence(1);
    same.number = "BL-2026-00000007".to_owned();
    let jws = seal_licence(&f.key, same, entry(3)).unwrap();
    assert_eq!(verify(&v, &jws, Some(&list), now()).overall, Verdict::Valid);
    // An index the list has no licence at yet: issued after the list, a newer one may tell.
    let jws = seal_licence(&f.key, licence(1), entry(4)).unwrap();
    let report = verify(&v, &jws, Some(&list), now());
    assert_eq!(code(&report, "status"), ReasonCode::StatusUnknown);
    assert!(authentic_with_status_unknown(&report));
}

/// A business licence carrying a driving licence's very number, at that number's index: the
/// index is bound to the number, but the number is not of a business licence's form.
#[test]
fn a_licence_carrying_another_types_number_is_not_of_its_type() {
    let f = fixture();
    let v = verifier(&f.pki, f.crls.clone());
    let mut list = StatusList::with_capacity(16);
    list.bind(3, "DL-2026-00000007").unwrap();
    list.bind(4, "BL-2026-00000008").unwrap();
    let token = sign_status_list(&f.key, URI, &list, now(), 300).unwrap();
    let list = verify_status_list(&token, &trust(&f.pki), CREDIT).unwrap();
    let mut copied = licence(1);
    copied.number = "DL-2026-00000007".to_owned();
    let jws = seal_licence(&f.key, copied, entry(3)).unwrap();
    let report = verify(&v, &jws, Some(&list), now());
    assert_eq!(report.overall, Verdict::Invalid, "{report:#?}");
    assert_eq!(
        report.problem_codes(),
        vec![ReasonCode::LicenceNumberNotOfType]
    );
    let mut own = licence(1);
    own.number = "BL-2026-00000008".to_owned();
    let jws = seal_licence(&f.key, own, entry(4)).unwrap();
    assert_eq!(verify(&v, &jws, Some(&list), now()).overall, Verdict::Valid);
}

#[test]
fn a_status_list_from_the_future_or_with_an_endless_age_does_not_last() {
    let f = fixture();
    let v = verifier(&f.pki, f.crls.clone());
    let jws = seal_licence(&f.key, licence(1), entry(3)).unwrap();
    // Made a day after the verification time: never "fresh".
    let future = status(&f.key, &f.pki, &[], now() + Duration::days(1));
    let report = verify(&v, &jws, Some(&future), now());
    assert_eq!(report.overall, Verdict::Indeterminate, "{report:#?}");
    assert_eq!(code(&report, "status"), ReasonCode::StatusUnknown);
    // A list that says it may be relied on for a hundred years is stale after 7 days.
    let mut list = StatusList::with_capacity(16);
    list.bind(3, "BL-2026-00000001").unwrap();
    let made = now() - Duration::days(8);
    let token = sign_status_list(&f.key, URI, &list, made, 100 * 365 * 86_400).unwrap();
    let endless = verify_status_list(&token, &trust(&f.pki), CREDIT).unwrap();
    assert!(endless.is_stale_at(now()));
    assert!(!endless.is_stale_at(made + Duration::days(6)));
}

#[test]
fn a_seal_of_another_department_cannot_seal_the_licence() {
    let f = fixture();
    let mut l = licence(1);
    l.issuer.credit_code = "11211100052825450R".to_owned();
    assert!(seal_licence(&f.key, l, entry(0)).is_err());
}

#[test]
fn status_list_from_another_signer_or_garbage_is_refused() {
    let f = fixture();
    let list = StatusList::with_capacity(8);
    let token = sign_status_list(&f.key, URI, &list, now(), 300).unwrap();
    assert!(verify_status_list(&token, &trust(&f.pki), "11211100052825450R").is_err());
    assert!(verify_status_list(&token, &trust(&other_city()), CREDIT).is_err());
    assert!(verify_status_list("a.b.c", &trust(&f.pki), CREDIT).is_err());
}

#[test]
fn malformed_input_is_malformed_and_never_panics() {
    let f = fixture();
    let v = verifier(&f.pki, vec![]);
    let jws = seal_licence(&f.key, licence(1), entry(0)).unwrap();
    let mut inputs: Vec<String> = vec![
        String::new(),
        "....".to_owned(),
        "x".repeat(100),
        "eyJhbGciOiJFUzI1NiJ9.e30.AAAA".to_owned(),
    ];
    for cut in (0..jws.len()).step_by(97) {
        inputs.push(jws[..cut].to_owned());
    }
    for input in &inputs {
        let report = verify(&v, input, None, now());
        assert_eq!(report.overall, Verdict::Invalid, "{input}");
        assert_eq!(code(&report, "parse"), ReasonCode::Malformed, "{input}");
    }
    let hs = "eyJhbGciOiJIUzI1NiJ9.e30.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    assert_eq!(
        code(&verify(&v, hs, None, now()), "parse"),
        ReasonCode::AlgorithmUnsupported
    );
}

/// A directory of one seal.
struct OneSeal(String, Vec<Vec<u8>>);

impl bohai_certs::licence::SealDirectory for OneSeal {
    fn chain(&self, kid: &str) -> Option<Vec<Vec<u8>>> {
        (kid == self.0).then(|| self.1.clone())
    }
}

#[test]
fn the_compact_qr_form_verifies_with_a_key_id_and_fits_a_phone_qr_code() {
    use bohai_certs::licence::{key_id, seal_compact, QR_PREFIX};
    let f = fixture();
    let v = verifier(&f.pki, f.crls.clone());
    let list = status(&f.key, &f.pki, &[], now());
    // A realistic licence: a driving licence's holder and fields in Chinese.
    let mut l = licence(1);
    l.holder = json!({"name": "王海洋", "id_type": "resident-id", "id_number": "211103198507140311", "mobile": "13904278526"});
    l.fields = json!({"scope": "准驾车型C1", "gender": "男", "nationality": "中国", "birth_date": "1985-07-14",
        "address": "辽宁省盘锦市兴隆台区兴隆街道石油大街88号3单元502室", "domicile_division_code": "211103",
        "permitted_classes": ["C1"], "first_issued_on": "2006-08-15", "file_number": "211100385126"});
    let qr = seal_compact(&f.key, l, entry(7)).unwrap();
    assert!(qr.starts_with(QR_PREFIX));
    // Alphanumeric mode holds 1,852 characters at version 25 (117×117 modules) with error
    // correction level L; a payload this size scans at a normal phone distance.
    assert!(qr.len() < 1_852, "QR payload is {} characters", qr.len());
    let mut chain = vec![f.key.cert_der().to_vec()];
    chain.extend(f.key.chain().iter().cloned());
    let seals = OneSeal(key_id(f.key.cert_der()), chain);
    let inputs = LicenceInputs {
        status: Some(&list),
        types: &Types,
        at: now(),
    };
    let (report, verified) = v.verify_compact(&qr, &seals, inputs);
    assert_eq!(report.overall, Verdict::Valid, "{report:#?}");
    assert_eq!(verified.unwrap().status_index(), 7);

    // Unknown key id, tampered payload, garbage: each with its code, never a panic.
    let nobody = OneSeal("0000000000000000".to_owned(), vec![]);
    let (report, _) = v.verify_compact(&qr, &nobody, inputs);
    assert_eq!(code(&report, "parse"), ReasonCode::SealKeyUnknown);
    let mut tampered = qr.clone().into_bytes();
    let last = tampered.len() - 3;
    tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
    let (report, _) = v.verify_compact(&String::from_utf8(tampered).unwrap(), &seals, inputs);
    assert_eq!(report.overall, Verdict::Invalid);
    for bad in ["", "BHL1:", "BHL1:%%%%", "HC1:ABC", &qr[..qr.len() / 2]] {
        let (report, _) = v.verify_compact(bad, &seals, inputs);
        assert_eq!(code(&report, "parse"), ReasonCode::Malformed, "{bad}");
    }
}

/// An authentic licence (signature and chain passed) is handed back for the issuer's record to
/// confirm or refute whatever else its report says, its status unknown included (online, a
/// forgery with a number no list covers yet is then INVALID, not INDETERMINATE); one whose
/// signature fails is not.
#[test]
fn an_authentic_licence_of_unknown_status_is_handed_back_for_the_record_check() {
    let f = fixture();
    let jws = seal_licence(&f.key, licence(1), entry(3)).unwrap();
    let v = verifier(&f.pki, f.crls.clone());
    let inputs = |at| LicenceInputs {
        status: None,
        types: &Types,
        at,
    };
    let (report, verified) = v.verify(&jws, inputs(now()));
    assert_eq!(report.overall, Verdict::Indeterminate, "{report:#?}");
    assert_eq!(code(&report, "status"), ReasonCode::StatusUnknown);
    assert_eq!(verified.unwrap().licence().number, licence(1).number);
    // Expired: INVALID, and still handed back (the record can refute a forgery, and no
    // check it adds can make the verdict better).
    let (report, verified) = v.verify(&jws, inputs(now() + Duration::days(60)));
    assert_eq!(report.overall, Verdict::Invalid, "{report:#?}");
    assert!(verified.is_some());
    // Its signature broken: not authentic, nothing handed back.
    let (head, sig) = jws.rsplit_once('.').unwrap();
    let flipped = if sig.starts_with('A') { "B" } else { "A" };
    let broken = format!("{head}.{flipped}{}", &sig[1..]);
    let (report, verified) = v.verify(&broken, inputs(now()));
    assert_eq!(report.overall, Verdict::Invalid, "{report:#?}");
    assert!(verified.is_none());
}
