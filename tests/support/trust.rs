//! Reading verification reports and licences, and sealing as an attacker would: shared by the
//! licence and seal tests.

use anyhow::Context as _;
use base64::Engine as _;
use bohai_certs::licence::LicenceClaims;
use bohai_certs::{import_seal, CaNames, ImportRequest, SealKey, SealType, TrustAnchors};
use bohai_certs_testkit::{DeptCa, SealFiles};
use chrono::Utc;
use serde_json::Value;

/// The codes of a report's checks that did not pass, in order.
pub fn problem_codes(report: &Value) -> Vec<String> {
    report["checks"]
        .as_array()
        .map(|checks| {
            checks
                .iter()
                .filter(|c| c["result"] != "pass")
                .map(|c| c["code"].as_str().unwrap_or("?").to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// A licence JWS's claims, read without verification.
pub fn licence_claims(jws: &str) -> anyhow::Result<LicenceClaims> {
    let payload = jws.split('.').nth(1).context("not a compact JWS")?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload)?;
    Ok(serde_json::from_slice(&bytes)?)
}

/// The signing key of `seal`, a certificate `ca` (a department's own CA) made, for `dept`:
/// what whoever holds that CA can seal licences with, registered or not. Its seal record is
/// made by a CA of no standing (licences carry no record).
pub fn seal_key_made_by(ca: &DeptCa, seal: &SealFiles, dept: &str) -> anyhow::Result<SealKey> {
    let files = ca.openssl();
    let forger = bohai_certs::init_city_ca(&CaNames::for_city("伪", "伪"), Utc::now())?.issuing;
    let anchors = TrustAnchors::from_pem(&files.read("ca.pem"))?;
    let issued = import_seal(
        &forger,
        &ImportRequest {
            cert_pem: files.read(&seal.cert),
            key_pem: files.read(&seal.key_pkcs8),
            chain_pem: vec![],
            dept_code: dept.to_owned(),
            seal_type: SealType::Official,
            image_digest: [0; 32],
        },
        &anchors,
        Utc::now(),
    )?;
    Ok(issued.into_seal_key()?)
}
