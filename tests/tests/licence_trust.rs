//! Attacks on licence trust (issue 15, items 3 and 4), against the real hub and database:
//! one department's seal key minting another department's licence, a forgery reusing a valid
//! licence's status index, and offline trust bundles that should have stopped being trusted
//! (made in the future, expired, signed with a revoked authority key).

#![allow(clippy::unwrap_used)] // a test that cannot unwrap should fail loudly

use base64::Engine as _;
use bohai_certs::licence::{seal_licence, LicenceClaims, LicencePolicy};
use bohai_certs::SealKey;
use bohai_hub::licences::bundle::{sign_bundle, OfflineVerifier, PinnedTrust, TrustBundle};
use bohai_hub::licences::service::{LicenceService, LicenceState};
use bohai_hub::seals::SealsService;
use bohai_tests::trust::{licence_claims, problem_codes as problems, seal_key_made_by};
use bohai_tests::{bohai_ok as ok, prepared_config, write_config_with_master_key, RunningHub};
use chrono::{Duration, Utc};
use serde_json::{json, Value};

struct Fixture {
    dir: tempfile::TempDir,
    file: std::path::PathBuf,
    root_pem: String,
    config: bohai_hub::config::Config,
    db: sqlx::PgPool,
    registry: bohai_schemas::Registry,
}

impl Fixture {
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = prepared_config().await.unwrap();
        config.pki.master_key_file = dir.path().join("state/master.key");
        let file = write_config_with_master_key(&config, dir.path()).unwrap();
        let pems = ok(&file, &["seal", "init-ca"]);
        let root_pem = bohai_tests::city_root_pem(&pems);
        for dept in ["traffic-police", "education", "data-administration"] {
            ok(&file, &["seal", "issue", dept]);
        }
        let db = bohai_hub::database::pool(&config.database).unwrap();
        let registry = bohai_hub::registry::load(&config.registry).unwrap();
        Self {
            dir,
            file,
            root_pem,
            config,
            db,
            registry,
        }
    }

    /// The private key of `dept`'s newest seal: what an attacker who stole it holds.
    async fn stolen_key(&self, dept: &str) -> SealKey {
        let seals = SealsService::with_master_key(&self.db, &self.config.pki).unwrap();
        let id = seals.newest_valid_seal(dept, Utc::now()).await.unwrap();
        seals.signing_key(&id, Utc::now()).await.unwrap()
    }

    /// A driving licence issued by traffic police through the hub: the document and its claims.
    fn real_licence(&self) -> (String, LicenceClaims) {
        self.issue("driving-licence")
    }

    /// A licence of `licence_type` issued through the hub (its issuing department must have a
    /// seal) for its first valid example: the document and its claims.
    fn issue(&self, licence_type: &str) -> (String, LicenceClaims) {
        let holder = self.dir.path().join(format!("{licence_type}.holder.json"));
        let text = std::fs::read_to_string(
            bohai_schemas::registry::builtin_dir()
                .join(format!("licences/{licence_type}/examples/valid.jsonl")),
        )
        .unwrap();
        std::fs::write(&holder, text.lines().next().unwrap()).unwrap();
        let out = self.dir.path().join(format!("{licence_type}.jws"));
        ok(
            &self.file,
            &[
                "licence",
                "issue",
                "--type",
                licence_type,
                "--holder",
                holder.to_str().unwrap(),
                "-o",
                out.to_str().unwrap(),
            ],
        );
        let document = std::fs::read_to_string(&out).unwrap();
        (document.clone(), claims(&document))
    }

    /// Trusts `ca` (a department's own CA, its files in `dir`) as the operator does for
    /// imported seals: its root in `pki.trust_anchors` and its CRL in `pki.crls`, in the
    /// configuration file; the configuration and the root's PEM file.
    fn trust_department_ca(
        &self,
        ca: &bohai_certs_testkit::DeptCa,
        dir: &std::path::Path,
    ) -> (bohai_hub::config::Config, std::path::PathBuf) {
        let crl = ca.crl("dept.crl");
        let ca_pem = dir.join("ca.pem");
        let mut config = self.config.clone();
        config.pki.trust_anchors = vec![ca_pem.clone()];
        config.pki.crls = vec![crl.clone()];
        let mut text = std::fs::read_to_string(&self.file).unwrap();
        text.push_str(&format!(
            "trust_anchors = [\"{}\"]\ncrls = [\"{}\"]\n",
            ca_pem.display(),
            crl.display()
        ));
        std::fs::write(&self.file, text).unwrap();
        (config, ca_pem)
    }

    fn service<'a>(&'a self, state: &'a LicenceState) -> LicenceService<'a> {
        LicenceService::new(&self.db, &self.registry, &self.config, state, true).unwrap()
    }

    /// The bundle loaded by an offline verifier pinning the city root alone, at `now`.
    fn offline(&self, bundle: &str, now: chrono::DateTime<Utc>) -> Result<OfflineVerifier, String> {
        let pinned = PinnedTrust {
            city_root: &self.root_pem,
            operator_roots: "",
            crls: &[],
        };
        self.offline_with(bundle, pinned, now)
    }

    /// The bundle loaded by an offline verifier pinning `pinned`, at `now`.
    fn offline_with(
        &self,
        bundle: &str,
        pinned: PinnedTrust<'_>,
        now: chrono::DateTime<Utc>,
    ) -> Result<OfflineVerifier, String> {
        let authority = self.registry.department("data-administration").unwrap();
        OfflineVerifier::load(
            bundle,
            pinned,
            &authority.credit_code,
            LicencePolicy::default(),
            now,
        )
        .map_err(|e| e.to_string())
    }
}

/// What a signed trust bundle says, read without verification: what an attacker re-signs.
fn bundle_payload(jws: &str) -> TrustBundle {
    let part = jws.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part)
            .unwrap(),
    )
    .unwrap()
}

/// The signer certificate (DER) of a JWS.
fn signer_of(jws: &str) -> Vec<u8> {
    bohai_certs::licence::ParsedJws::parse(jws).unwrap().chain[0].clone()
}

fn claims(jws: &str) -> LicenceClaims {
    licence_claims(jws).unwrap()
}

/// The overall verdict of `document` verified offline now, and the codes of its problems.
fn offline_verdict(offline: &OfflineVerifier, document: &str) -> (String, Vec<String>) {
    let report = serde_json::to_value(offline.verify(document, Utc::now())).unwrap();
    (
        report["overall"].as_str().unwrap().to_owned(),
        problems(&report),
    )
}

async fn verify_online(hub: &RunningHub, document: &str) -> Value {
    let resp = reqwest::Client::new()
        .post(hub.url("/api/v1/licences/verify"))
        .json(&json!({ "licence": document }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let answer: Value = resp.json().await.unwrap();
    answer["reports"][0].clone()
}

#[tokio::test]
async fn a_departments_seal_cannot_mint_another_departments_licence_or_reuse_an_index() {
    let f = Fixture::new().await;
    let (real, real_claims) = f.real_licence();
    let hub = RunningHub::start(f.config.clone()).await.unwrap();
    assert_eq!(verify_online(&hub, &real).await["overall"], "VALID");

    // Education's seal key, stolen or misused: a driving licence (traffic police's type) that
    // names traffic police as its issuing department, with education's credit code, so that
    // the seal certificate and the licence agree; the real licence's number and index.
    let education = f.registry.department("education").unwrap();
    let mut forged = real_claims.licence.clone();
    forged.issuer.credit_code = education.credit_code.clone();
    forged.holder["name"] = json!("冒名顶替");
    let minted = seal_licence(
        &f.stolen_key("education").await,
        forged,
        real_claims.status.status_list.clone(),
    )
    .unwrap();
    let report = verify_online(&hub, &minted).await;
    assert_eq!(report["overall"], "INVALID", "{report:#}");
    assert_eq!(problems(&report), ["SEAL_NOT_OF_ISSUER"], "{report:#}");

    // Traffic police's own key, off the registry: a licence with a number the hub never
    // issued, reusing the real licence's index so that it would share its status for ever.
    let mut unregistered = real_claims.licence.clone();
    unregistered.number = "DL-2026-99999999".to_owned();
    let off_registry = seal_licence(
        &f.stolen_key("traffic-police").await,
        unregistered,
        real_claims.status.status_list.clone(),
    )
    .unwrap();
    let report = verify_online(&hub, &off_registry).await;
    assert_eq!(report["overall"], "INVALID", "{report:#}");
    // Online, the record says too that no such licence was issued.
    assert_eq!(
        problems(&report),
        ["STATUS_INDEX_MISMATCH", "LICENCE_NOT_ON_RECORD"],
        "{report:#}"
    );

    // Offline, with a trust bundle, the same verdicts.
    let state = LicenceState::default();
    let bundle = f.service(&state).bundle(Utc::now()).await.unwrap();
    let offline = f.offline(&bundle, Utc::now()).unwrap();
    let verdict = |document: &str| offline_verdict(&offline, document);
    assert_eq!(verdict(&real), ("VALID".to_owned(), vec![]));
    assert_eq!(
        verdict(&minted),
        ("INVALID".to_owned(), vec!["SEAL_NOT_OF_ISSUER".to_owned()])
    );
    assert_eq!(
        verdict(&off_registry),
        (
            "INVALID".to_owned(),
            vec!["STATUS_INDEX_MISMATCH".to_owned()]
        )
    );
}

/// A licence serial is unique across the city, but only the whole number names a licence: a
/// department may seal a licence of its own type whose number ends in another department's
/// licence's serial, and give it that licence's status index. Bound by serial alone, the
/// index's status (VALID for ever, as the other department never revokes its own licence) was
/// the forgery's, and the registry could never revoke it.
#[tokio::test]
async fn a_licence_of_another_type_cannot_take_an_index_by_sharing_its_serial_or_number() {
    let f = Fixture::new().await;
    ok(&f.file, &["seal", "issue", "market-regulation"]);
    let (real, real_claims) = f.real_licence();
    let (_, business) = f.issue("business-licence");
    let serial = real_claims.licence.number.rsplit('-').next().unwrap();
    let year = real_claims.licence.number.split('-').nth(1).unwrap();

    // Market regulation seals a business licence of its own, off the registry, numbered with
    // the driving licence's year and serial, at the driving licence's index.
    let mut own_type = business.licence.clone();
    own_type.number = format!("BL-{year}-{serial}");
    own_type.holder["name"] = json!("影子公司");
    let forgery = seal_licence(
        &f.stolen_key("market-regulation").await,
        own_type,
        real_claims.status.status_list.clone(),
    )
    .unwrap();

    let hub = RunningHub::start(f.config.clone()).await.unwrap();
    assert_eq!(verify_online(&hub, &real).await["overall"], "VALID");
    let report = verify_online(&hub, &forgery).await;
    assert_eq!(report["overall"], "INVALID", "{report:#}");
    assert_eq!(
        problems(&report),
        ["STATUS_INDEX_MISMATCH", "LICENCE_NOT_ON_RECORD"],
        "{report:#}"
    );
    let detail = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == "status")
        .unwrap()["message_en"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(detail.contains(&real_claims.licence.number), "{detail}");

    // The driving licence's very number on the business licence: the index's number, but
    // not a number of the business licence's type.
    let mut same_number = business.licence.clone();
    same_number.number = real_claims.licence.number.clone();
    let copied = seal_licence(
        &f.stolen_key("market-regulation").await,
        same_number,
        real_claims.status.status_list.clone(),
    )
    .unwrap();
    let report = verify_online(&hub, &copied).await;
    assert_eq!(report["overall"], "INVALID", "{report:#}");
    assert_eq!(
        problems(&report),
        ["LICENCE_NUMBER_NOT_OF_TYPE", "LICENCE_NOT_ON_RECORD"],
        "{report:#}"
    );

    let state = LicenceState::default();
    let bundle = f.service(&state).bundle(Utc::now()).await.unwrap();
    let offline = f.offline(&bundle, Utc::now()).unwrap();
    let report = serde_json::to_value(offline.verify(&forgery, Utc::now())).unwrap();
    assert_eq!(report["overall"], "INVALID", "{report:#}");
    assert_eq!(problems(&report), ["STATUS_INDEX_MISMATCH"], "{report:#}");
    let report = serde_json::to_value(offline.verify(&copied, Utc::now())).unwrap();
    assert_eq!(report["overall"], "INVALID", "{report:#}");
    assert_eq!(
        problems(&report),
        ["LICENCE_NUMBER_NOT_OF_TYPE"],
        "{report:#}"
    );
    let report = serde_json::to_value(offline.verify(&real, Utc::now())).unwrap();
    assert_eq!(report["overall"], "VALID", "{report:#}");
}

#[tokio::test]
async fn offline_trust_ends_by_the_verifiers_clock_and_with_the_authoritys_revocation() {
    let f = Fixture::new().await;
    let (real, _) = f.real_licence();
    let state = LicenceState::default();
    let service = f.service(&state);
    let now = Utc::now();
    let validity = Duration::from_std(f.config.licences.bundle_validity).unwrap();

    // A bundle is good from when it was made until its end, by the verifier's clock.
    let bundle = service.bundle(now).await.unwrap();
    f.offline(&bundle, now).unwrap();
    f.offline(&bundle, now + validity - Duration::minutes(1))
        .unwrap();
    let expired = f
        .offline(&bundle, now + validity + Duration::hours(1))
        .unwrap_err();
    assert!(expired.contains("expired"), "{expired}");
    let early = f.offline(&bundle, now - Duration::hours(1)).unwrap_err();
    assert!(
        early.contains("later than this verifier's clock"),
        "{early}"
    );

    // The authority's key leaks. Whoever holds it re-signs the bundle as they like: for ten
    // years, or made "tomorrow" so that it never seems old.
    let leaked = f.stolen_key("data-administration").await;
    let mut endless = bundle_payload(&bundle);
    endless.valid_until = now + Duration::days(3650);
    let endless = sign_bundle(&leaked, &endless).unwrap();
    let refused = f.offline(&endless, now).unwrap_err();
    assert!(refused.contains("longer than the 7 days"), "{refused}");
    let mut backwards = bundle_payload(&bundle);
    backwards.valid_until = now - Duration::hours(1);
    let refused = f
        .offline(&sign_bundle(&leaked, &backwards).unwrap(), now)
        .unwrap_err();
    assert!(refused.contains("before it was made"), "{refused}");
    // A bundle loaded while good is not trusted past its end by a verifier that keeps it
    // loaded: a licence verified after it is INDETERMINATE, though the status list inside is
    // still within its own maximum age.
    let mut short = bundle_payload(&bundle);
    short.valid_until = short.issued_at + Duration::seconds(60);
    let kept = OfflineVerifier::load(
        &sign_bundle(&leaked, &short).unwrap(),
        PinnedTrust {
            city_root: &f.root_pem,
            operator_roots: "",
            crls: &[],
        },
        &f.registry
            .department("data-administration")
            .unwrap()
            .credit_code,
        LicencePolicy {
            clock_skew: Duration::seconds(10),
            ..LicencePolicy::default()
        },
        now,
    )
    .unwrap();
    let report = serde_json::to_value(kept.verify(&real, now)).unwrap();
    assert_eq!(report["overall"], "VALID", "{report:#}");
    let report =
        serde_json::to_value(kept.verify(&real, short.issued_at + Duration::seconds(120))).unwrap();
    assert_eq!(report["overall"], "INDETERMINATE", "{report:#}");
    assert_eq!(problems(&report), ["STATUS_STALE"], "{report:#}");

    // The city revokes the leaked seal; the new CRL lists it. A bundle signed with the leaked
    // key after that, carrying the new CRL, is refused; carrying the old CRL (which does not
    // list it), it is refused once that CRL is out of date: the old CRL cannot hide the
    // revocation for longer than its own validity.
    let seals = SealsService::with_master_key(&f.db, &f.config.pki).unwrap();
    let old_crl = seals.latest_crl().await.unwrap().unwrap();
    let authority_seal = seals
        .newest_valid_seal("data-administration", now)
        .await
        .unwrap();
    let revoked_at = Utc::now();
    let new_crl = seals
        .revoke(
            &authority_seal,
            bohai_certs::RevocationReason::KeyCompromise,
            revoked_at,
        )
        .await
        .unwrap();
    let later = revoked_at + Duration::minutes(10);
    let mut with_new_crl = bundle_payload(&bundle);
    with_new_crl.issued_at = later;
    with_new_crl.valid_until = later + Duration::hours(1);
    with_new_crl.crls = vec![base64::engine::general_purpose::STANDARD.encode(&new_crl.der)];
    let refused = f
        .offline(&sign_bundle(&leaked, &with_new_crl).unwrap(), later)
        .unwrap_err();
    assert!(refused.contains("revoked"), "{refused}");
    let mut with_old_crl = bundle_payload(&bundle);
    let after_old_crl = old_crl.next_update + Duration::minutes(10);
    with_old_crl.issued_at = after_old_crl;
    with_old_crl.valid_until = after_old_crl + Duration::hours(1);
    let refused = f
        .offline(&sign_bundle(&leaked, &with_old_crl).unwrap(), after_old_crl)
        .unwrap_err();
    assert!(refused.contains("revocation"), "{refused}");
}

/// A department trusted with a CA of its own (an operator anchor) makes seal certificates as
/// it likes: one in traffic police's name (their credit code), sealing a driving licence that
/// reuses a real licence's number and index with another holder. It chains to a configured
/// anchor, its CA's CRL does not list it, and the credit codes agree: only the registry knows
/// the certificate is not a seal it holds for traffic police.
#[tokio::test]
async fn a_department_ca_cannot_mint_a_seal_in_another_departments_name() {
    let f = Fixture::new().await;
    let (real, real_claims) = f.real_licence();
    let d = f.dir.path().join("ps-ca");
    std::fs::create_dir_all(&d).unwrap();
    let ca = bohai_certs_testkit::DeptCa::new(&d, "/C=CN/O=盘锦市公安局/CN=盘锦市公安局印章CA");
    // The operator configures the department's CA and its CRL, as for an imported seal.
    let (config, ca_pem) = f.trust_department_ca(&ca, &d);

    let traffic = f.registry.department("traffic-police").unwrap();
    let minted = ca.issue_seal(
        "tp",
        &format!(
            "/C=CN/O=盘锦市公安局交通警察支队/organizationIdentifier={}/CN=盘锦市公安局交通警察支队公章",
            traffic.credit_code
        ),
    );
    // Sealing needs only the key and certificate.
    let key = seal_key_made_by(&ca, &minted, "traffic-police").unwrap();
    let mut forged = real_claims.licence.clone();
    forged.holder["name"] = json!("冒名顶替");
    // Sealed now, after the certificate was made (it is judged at the licence's issuance).
    forged.issued_at =
        bohai_hub::licences::service::whole_seconds(Utc::now()) + Duration::seconds(1);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let forgery = seal_licence(&key, forged, real_claims.status.status_list.clone()).unwrap();

    let hub = RunningHub::start(config.clone()).await.unwrap();
    assert_eq!(verify_online(&hub, &real).await["overall"], "VALID");
    let report = verify_online(&hub, &forgery).await;
    assert_eq!(report["overall"], "INVALID", "{report:#}");
    assert_eq!(problems(&report), ["SEAL_NOT_REGISTERED"], "{report:#}");

    // Offline, the verifier pinning the city root and the department's CA: the same.
    let state = LicenceState::default();
    let service = LicenceService::new(&f.db, &f.registry, &config, &state, true).unwrap();
    let bundle = service.bundle(Utc::now()).await.unwrap();
    let operators = std::fs::read_to_string(&ca_pem).unwrap();
    let authority = f.registry.department("data-administration").unwrap();
    let offline = OfflineVerifier::load(
        &bundle,
        PinnedTrust {
            city_root: &f.root_pem,
            operator_roots: &operators,
            crls: &[],
        },
        &authority.credit_code,
        LicencePolicy::default(),
        Utc::now(),
    )
    .unwrap();
    let verdict = |document: &str| offline_verdict(&offline, document);
    assert_eq!(verdict(&real), ("VALID".to_owned(), vec![]));
    assert_eq!(
        verdict(&forgery),
        ("INVALID".to_owned(), vec!["SEAL_NOT_REGISTERED".to_owned()])
    );
}

/// The issuing department's own registered seal key, used outside the hub (an insider, or a
/// thief): a licence with the number and status index of one the department issued, its
/// holder changed. Everything the document can be checked against agrees (the seal is the
/// issuer's, the index is bound to the number, the status is valid); only the record of what
/// was issued says otherwise. Online it is INVALID with LICENCE_NOT_ON_RECORD, as is a
/// version the hub never issued; offline, with no record, it cannot be told apart (see
/// docs/security.md).
#[tokio::test]
async fn a_licence_sealed_with_the_issuers_own_key_but_never_issued_is_refused_online() {
    let f = Fixture::new().await;
    let (real, real_claims) = f.real_licence();
    let hub = RunningHub::start(f.config.clone()).await.unwrap();
    let key = f.stolen_key("traffic-police").await;
    let status = real_claims.status.status_list.clone();

    let mut altered = real_claims.licence.clone();
    altered.holder["name"] = json!("冒名顶替");
    let minted = seal_licence(&key, altered, status.clone()).unwrap();
    let report = verify_online(&hub, &minted).await;
    assert_eq!(report["overall"], "INVALID", "{report:#}");
    assert_eq!(problems(&report), ["LICENCE_NOT_ON_RECORD"], "{report:#}");

    let mut later = real_claims.licence.clone();
    later.version = 7;
    let unissued_version = seal_licence(&key, later, status.clone()).unwrap();
    let report = verify_online(&hub, &unissued_version).await;
    assert_eq!(report["overall"], "INVALID", "{report:#}");
    assert_eq!(problems(&report), ["LICENCE_NOT_ON_RECORD"], "{report:#}");

    // A number never issued, at an index no list covers yet: its status is unknown, and so
    // it was INDETERMINATE ("try again later") before, not refused. The record says it was
    // never issued, whatever its status.
    let mut unnumbered = real_claims.licence.clone();
    let (prefix, _) = unnumbered.number.rsplit_once('-').unwrap();
    unnumbered.number = format!("{prefix}-99999999");
    let mut beyond = status.clone();
    beyond.idx = 4_000_000;
    let never_issued = seal_licence(&key, unnumbered, beyond).unwrap();
    let report = verify_online(&hub, &never_issued).await;
    assert_eq!(report["overall"], "INVALID", "{report:#}");
    assert!(
        problems(&report).contains(&"LICENCE_NOT_ON_RECORD".to_owned()),
        "{report:#}"
    );

    // The licence as issued, and the same claims sealed again (an ES256 signature differs
    // each time): what was issued, so VALID.
    let report = verify_online(&hub, &real).await;
    assert_eq!(report["overall"], "VALID", "{report:#}");
    assert_eq!(
        report["checks"].as_array().unwrap().last().unwrap()["check"],
        "record"
    );
    let resealed = seal_licence(&key, real_claims.licence.clone(), status).unwrap();
    assert_ne!(resealed, real);
    assert_eq!(verify_online(&hub, &resealed).await["overall"], "VALID");

    // Offline there is no record to compare with.
    let state = LicenceState::default();
    let bundle = f.service(&state).bundle(Utc::now()).await.unwrap();
    let offline = f.offline(&bundle, Utc::now()).unwrap();
    assert_eq!(
        offline_verdict(&offline, &minted),
        ("VALID".to_owned(), vec![])
    );
}

/// The status authority's department trusted with a CA of its own (an operator anchor, its CRL
/// configured): the seals that CA makes may seal the department's licences, but they do not
/// speak for the status authority. Only a seal of the city CA signs trust bundles, status lists
/// and audit checkpoints, and verifiers check those signers against the city root alone: an
/// operator CA can mint a certificate in the authority's name (no CRL of the city can revoke
/// it), and an imported seal's revocation is the registry's word, which a bundle signed with
/// that seal's key leaves out.
#[tokio::test]
async fn only_a_seal_of_the_city_ca_speaks_for_the_status_authority() {
    let f = Fixture::new().await;
    let (real, _) = f.real_licence();
    let authority = f.registry.department("data-administration").unwrap();
    let d = f.dir.path().join("da-ca");
    std::fs::create_dir_all(&d).unwrap();
    let ca = bohai_certs_testkit::DeptCa::new(
        &d,
        "/C=CN/O=盘锦市大数据管理局/CN=盘锦市大数据管理局印章CA",
    );
    let subject = format!(
        "/C=CN/O=盘锦市大数据管理局/organizationIdentifier={}/CN=盘锦市大数据管理局公章",
        authority.credit_code
    );
    let own = ca.issue_seal("own", &subject);
    let minted = ca.issue_seal("minted", &subject);
    let (config, ca_pem) = f.trust_department_ca(&ca, &d);
    // The department's own seal, imported: its newest seal from now on.
    let imported: Value = serde_json::from_str(&ok(
        &f.file,
        &[
            "seal",
            "import",
            "data-administration",
            "--cert",
            d.join(&own.cert).to_str().unwrap(),
            "--key",
            d.join(&own.key_pkcs8).to_str().unwrap(),
            "--json",
        ],
    ))
    .unwrap();
    let imported = imported["seal_id"].as_str().unwrap().to_owned();
    // A verifier pinning the city root, and the department's CA for seals on licences.
    let operators = std::fs::read_to_string(&ca_pem).unwrap();
    let load = |bundle: &str| {
        let pinned = PinnedTrust {
            city_root: &f.root_pem,
            operator_roots: &operators,
            crls: &[],
        };
        f.offline_with(bundle, pinned, Utc::now()).map(|_| ())
    };

    let state = LicenceState::default();
    let service = LicenceService::new(&f.db, &f.registry, &config, &state, true).unwrap();
    let bundle = service.bundle(Utc::now()).await.unwrap();

    // A certificate the department's CA made in the authority's name, never imported: its
    // CA's CRL does not list it, and it chains to a pinned root.
    let minted_key = seal_key_made_by(&ca, &minted, "data-administration").unwrap();
    let refused = load(&sign_bundle(&minted_key, &bundle_payload(&bundle)).unwrap()).unwrap_err();
    assert!(refused.contains("not a seal of the city CA"), "{refused}");

    // The imported seal is revoked in the registry; its key (the department has it) signs a
    // bundle leaving that revocation out.
    ok(
        &f.file,
        &["seal", "revoke", &imported, "--reason", "key_compromise"],
    );
    let own_key = seal_key_made_by(&ca, &own, "data-administration").unwrap();
    let fresh = LicenceState::default();
    let after = LicenceService::new(&f.db, &f.registry, &config, &fresh, true).unwrap();
    let mut quiet = bundle_payload(&after.bundle(Utc::now()).await.unwrap());
    assert_eq!(quiet.revoked_seals.len(), 1, "the hub's bundle lists it");
    quiet.revoked_seals.clear();
    let refused = load(&sign_bundle(&own_key, &quiet).unwrap()).unwrap_err();
    assert!(refused.contains("not a seal of the city CA"), "{refused}");

    // An audit checkpoint signed by the minted certificate: refused by `audit verify`, which
    // by default trusts the city root of its database, not the operator anchors.
    let claims = bohai_hub::audit::checkpoint::CheckpointClaims {
        checkpoint_version: bohai_hub::audit::checkpoint::CHECKPOINT_VERSION,
        seq: 0,
        hash: "0".repeat(64),
        issued_at: bohai_hub::audit::chain::truncate(Utc::now()),
        authority: "data-administration".to_owned(),
    };
    let forged = f.dir.path().join("forged-checkpoint.jws");
    std::fs::write(
        &forged,
        bohai_hub::audit::checkpoint::sign(&minted_key, &claims).unwrap(),
    )
    .unwrap();
    let out = bohai_tests::bohai_run(
        &f.file,
        &["audit", "verify", "--against", forged.to_str().unwrap()],
    );
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "accepted: {said}");
    assert!(said.contains("must be a seal of the city CA"), "{said}");
    // A verifier that gives the department's CA in the city root's file (as the docs once
    // said to) is refused, not trusted for the authority: operators' roots go apart.
    let combined = format!("{}{operators}", f.root_pem);
    let pinned = PinnedTrust {
        city_root: &combined,
        operator_roots: "",
        crls: &[],
    };
    let refused = f
        .offline_with(&bundle, pinned, Utc::now())
        .map(|_| ())
        .unwrap_err();
    assert!(refused.contains("must be one certificate"), "{refused}");
    let combined_file = f.dir.path().join("city-and-department.pem");
    std::fs::write(&combined_file, &combined).unwrap();
    let out = bohai_tests::bohai_run(
        &f.file,
        &[
            "audit",
            "verify",
            "--against",
            forged.to_str().unwrap(),
            "--root",
            combined_file.to_str().unwrap(),
        ],
    );
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "accepted: {said}");
    assert!(said.contains("must be one certificate"), "{said}");

    // The hub signs with the city seal, though the imported one was newer: its bundle loads
    // for a verifier pinning the city root alone, as for one pinning the department's CA too.
    load(&bundle).unwrap();
    let offline = f.offline(&bundle, Utc::now()).unwrap();
    assert_eq!(
        offline_verdict(&offline, &real),
        ("VALID".to_owned(), vec![])
    );
}

/// The authority's seal is revoked and a new one issued. A status list the revoked seal
/// signed (stored before the revocation, or by whoever holds its key) is neither served by the
/// hub nor accepted inside a bundle the new seal signed. And a bundle the revoked key signs,
/// carrying the CRL from before its revocation (still current), is refused by a verifier that
/// fetched the new CRL itself.
#[tokio::test]
async fn a_revoked_authority_seal_signs_no_status_list_and_the_verifiers_own_crl_decides() {
    let f = Fixture::new().await;
    let (real, _) = f.real_licence();
    let state = LicenceState::default();
    let first = f.service(&state).bundle(Utc::now()).await.unwrap();
    let old_list = bundle_payload(&first).status_list;
    let leaked = f.stolen_key("data-administration").await;
    let seals = SealsService::with_master_key(&f.db, &f.config.pki).unwrap();
    let old_crl = seals.latest_crl().await.unwrap().unwrap();
    bohai_tests::revoke_seal_of(&f.file, "data-administration");
    let new_crl = seals.latest_crl().await.unwrap().unwrap();
    assert!(new_crl.number > old_crl.number);
    ok(&f.file, &["seal", "issue", "data-administration"]);
    let current = f.stolen_key("data-administration").await;

    // The process that made the list still holds it in memory: it signs a new one with the
    // new seal rather than serve it.
    let held = f
        .service(&state)
        .status_list(Utc::now(), bohai_hub::licences::status::Recheck::Now)
        .await
        .unwrap();
    assert_ne!(
        signer_of(&held.token),
        signer_of(&old_list),
        "the revoked seal's list was served from memory"
    );
    // The hub signs a new list with the new seal rather than serve the stored one.
    let fresh = LicenceState::default();
    let bundle = f.service(&fresh).bundle(Utc::now()).await.unwrap();
    assert_ne!(
        signer_of(&bundle_payload(&bundle).status_list),
        signer_of(&old_list),
        "the revoked seal's list was served"
    );
    let offline = f.offline(&bundle, Utc::now()).unwrap();
    assert_eq!(
        offline_verdict(&offline, &real),
        ("VALID".to_owned(), vec![])
    );

    // The new seal's key wraps the revoked seal's list: refused.
    let mut wrapped = bundle_payload(&bundle);
    wrapped.status_list = old_list;
    let refused = f
        .offline(&sign_bundle(&current, &wrapped).unwrap(), Utc::now())
        .map(|_| ())
        .unwrap_err();
    assert!(
        refused.contains("status list") && refused.contains("revoked"),
        "{refused}"
    );

    // The revoked key signs a bundle carrying the issuing CA's CRL from before the revocation.
    let mut quiet = bundle_payload(&bundle);
    quiet.crls[0] = base64::engine::general_purpose::STANDARD.encode(&old_crl.der);
    let quiet = sign_bundle(&leaked, &quiet).unwrap();
    f.offline(&quiet, Utc::now())
        .map(|_| ())
        .expect("the bundle's own CRLs hide the revocation until the old one's nextUpdate");
    let own_crls = [new_crl.der];
    let pinned = PinnedTrust {
        city_root: &f.root_pem,
        operator_roots: "",
        crls: &own_crls,
    };
    let refused = f
        .offline_with(&quiet, pinned, Utc::now())
        .map(|_| ())
        .unwrap_err();
    assert!(refused.contains("revoked"), "{refused}");
    // Padded with copies of the old CRL, so that a verification reading 32 CRLs would never
    // reach the verifier's own: refused for their number.
    // (the root's CRL kept, as the issuing CA's path needs it).
    let mut padded = bundle_payload(&bundle);
    let root_crl = padded.crls[1].clone();
    padded.crls = vec![base64::engine::general_purpose::STANDARD.encode(&old_crl.der); 31];
    padded.crls.insert(0, root_crl);
    let padded = sign_bundle(&leaked, &padded).unwrap();
    let refused = f
        .offline_with(&padded, pinned, Utc::now())
        .map(|_| ())
        .unwrap_err();
    assert!(refused.contains("more than the 32"), "{refused}");
}

/// After `seal init-ca --force` (the city's CA replaced: its root key lost, say), the
/// authority's seals of the old CA sign nothing for it: no bundle until a seal of the new CA
/// is issued, and then one that a verifier pinning the new root accepts.
#[tokio::test]
async fn after_the_city_ca_is_replaced_only_a_seal_of_the_new_one_signs_for_the_authority() {
    let f = Fixture::new().await;
    let pems = ok(&f.file, &["seal", "init-ca", "--force"]);
    let new_root = bohai_tests::city_root_pem(&pems);
    let refused = f
        .service(&LicenceState::default())
        .bundle(Utc::now())
        .await
        .unwrap_err()
        .to_string();
    assert!(refused.contains("no valid seal"), "{refused}");
    ok(&f.file, &["seal", "issue", "data-administration"]);
    let bundle = f
        .service(&LicenceState::default())
        .bundle(Utc::now())
        .await
        .unwrap();
    let pinned = PinnedTrust {
        city_root: &new_root,
        operator_roots: "",
        crls: &[],
    };
    f.offline_with(&bundle, pinned, Utc::now())
        .map(|_| ())
        .unwrap();
}
