//! The offline trust bundle: everything a verifier without network needs to judge licences
//! (trust anchors, seal certificates by key id, the CRL, the status list, the licence types'
//! schemas), signed by the status authority as a JWS (`typ` `bohai-trust-bundle+jwt`).
//!
//! A verifier pins the city root and the status authority out of band; the bundle is
//! accepted only if its signer chains to that root and is that authority. Its status list
//! carries its own maximum age: an old bundle gives INDETERMINATE statuses, never VALID.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use bohai_certs::licence::{
    jws::{key_id, sign_compact},
    verify_status_list, LicenceInputs, LicencePolicy, LicenceTypes, LicenceVerifier, ParsedJws,
    SealDirectory, TypeVerdict, VerifiedStatusList,
};
use bohai_certs::{Report, TrustAnchors};
use bohai_schemas::{RecordValidator, Violation};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::types::describe;
use super::LicenceError;

/// JOSE `typ` of a trust bundle.
pub const BUNDLE_TYP: &str = "bohai-trust-bundle+jwt";

/// A seal certificate with its chain, by key id.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BundleSeal {
    /// Key id (first 8 bytes of the certificate's SHA-256, hex), as in licence headers.
    pub kid: String,
    /// Department code.
    pub department: String,
    /// Seal certificate then intermediates, base64 DER.
    pub chain: Vec<String>,
}

/// A licence type as a bundle carries it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BundleType {
    /// Type id.
    pub id: String,
    /// The department that issues it.
    pub department: String,
    /// JSON Schema of the licence subject.
    pub schema: Value,
}

/// The bundle's payload.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustBundle {
    /// Format version, 1.
    pub bundle_version: u32,
    /// When it was made.
    pub issued_at: DateTime<Utc>,
    /// Trust anchors besides the pinned root, PEM.
    pub trust_anchors: Vec<String>,
    /// Every seal certificate that may have sealed a licence.
    pub seals: Vec<BundleSeal>,
    /// CRLs of the seal CAs, base64 DER.
    pub crls: Vec<String>,
    /// The signed status list (`statuslist+jwt`).
    pub status_list: String,
    /// The licence types.
    pub licence_types: Vec<BundleType>,
}

/// Signs a bundle with the authority's seal.
pub fn sign_bundle(
    authority: &bohai_certs::SealKey,
    bundle: &TrustBundle,
) -> Result<String, LicenceError> {
    let payload = serde_json::to_vec(bundle).map_err(|e| LicenceError::Stored(e.to_string()))?;
    Ok(sign_compact(authority, BUNDLE_TYP, &payload)?)
}

/// The seal chains of a bundle entry, DER.
pub fn seal_entry(kid_source: &[u8], department: &str, chain: &[Vec<u8>]) -> BundleSeal {
    BundleSeal {
        kid: key_id(kid_source),
        department: department.to_owned(),
        chain: chain.iter().map(|c| STANDARD.encode(c)).collect(),
    }
}

/// Licence types compiled from a bundle.
#[derive(Debug)]
pub struct BundleTypes(Vec<(BundleType, RecordValidator)>);

impl LicenceTypes for BundleTypes {
    fn judge(&self, licence_type: &str, issuer_department: &str, subject: &Value) -> TypeVerdict {
        let Some((t, validator)) = self.0.iter().find(|(t, _)| t.id == licence_type) else {
            return TypeVerdict::Unknown;
        };
        if t.department != issuer_department {
            return TypeVerdict::WrongIssuer {
                expected: t.department.clone(),
            };
        }
        let violations: Vec<Violation> = validator.validate(subject);
        if violations.is_empty() {
            TypeVerdict::Valid
        } else {
            TypeVerdict::Invalid(violations.iter().map(describe).collect())
        }
    }
}

/// A bundle whose signature, signer and status list were checked: ready to verify licences
/// offline.
#[derive(Debug)]
pub struct OfflineVerifier {
    bundle_issued_at: DateTime<Utc>,
    verifier: LicenceVerifier,
    status: VerifiedStatusList,
    types: BundleTypes,
    seals: Vec<BundleSeal>,
}

impl SealDirectory for OfflineVerifier {
    fn chain(&self, kid: &str) -> Option<Vec<Vec<u8>>> {
        let s = self.seals.iter().find(|s| s.kid == kid)?;
        s.chain.iter().map(|c| STANDARD.decode(c).ok()).collect()
    }
}

/// Why a bundle cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("trust bundle: {0}")]
pub struct BundleError(pub String);

impl OfflineVerifier {
    /// Checks `bundle_jws` against the pinned `root_pem` and status authority credit code.
    pub fn load(
        bundle_jws: &str,
        root_pem: &str,
        authority_credit_code: &str,
        policy: LicencePolicy,
    ) -> Result<Self, BundleError> {
        let bad = |m: String| BundleError(m);
        let mut anchors =
            TrustAnchors::from_pem(root_pem).map_err(|e| bad(format!("root: {e}")))?;
        let jws = ParsedJws::parse(bundle_jws).map_err(|e| bad(e.to_string()))?;
        if jws.header.typ.as_deref() != Some(BUNDLE_TYP) {
            return Err(bad(format!(
                "typ is {:?}, expected {BUNDLE_TYP}",
                jws.header.typ
            )));
        }
        let bundle: TrustBundle =
            serde_json::from_slice(&jws.payload).map_err(|e| bad(format!("payload: {e}")))?;
        bohai_certs::licence::check_signed_by(
            &jws,
            &anchors,
            bundle.issued_at,
            authority_credit_code,
        )
        .map_err(|e| bad(format!("signature: {e}")))?;
        for pem in &bundle.trust_anchors {
            anchors
                .add_pem(pem)
                .map_err(|e| bad(format!("anchor: {e}")))?;
        }
        let status = verify_status_list(&bundle.status_list, &anchors, authority_credit_code)
            .map_err(|e| bad(format!("status list: {e}")))?;
        let crls = bundle
            .crls
            .iter()
            .map(|c| STANDARD.decode(c))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| bad(format!("crl: {e}")))?;
        let types = bundle
            .licence_types
            .into_iter()
            .map(|t| {
                RecordValidator::new(&t.schema)
                    .map(|v| (t, v))
                    .map_err(|e| bad(format!("licence type schema: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            bundle_issued_at: bundle.issued_at,
            verifier: LicenceVerifier::new(anchors, crls, policy),
            status,
            types: BundleTypes(types),
            seals: bundle.seals,
        })
    }

    /// When the bundle was made.
    pub fn issued_at(&self) -> DateTime<Utc> {
        self.bundle_issued_at
    }

    /// Verifies a licence (JWS, or a QR payload) at `at`.
    pub fn verify(&self, licence: &str, at: DateTime<Utc>) -> Report {
        let inputs = LicenceInputs {
            status: Some(&self.status),
            types: &self.types,
            at,
        };
        if licence.trim().starts_with(bohai_certs::licence::QR_PREFIX) {
            self.verifier.verify_compact(licence, self, inputs).0
        } else {
            self.verifier.verify(licence, inputs).0
        }
    }
}
