//! The offline trust bundle: everything a verifier without network needs to judge licences
//! (trust anchors, seal certificates by key id, the CRL, the status list, the licence types'
//! schemas), signed by the status authority as a JWS (`typ` `bohai-trust-bundle+jwt`).
//!
//! A verifier pins the city root (and any operator roots it trusts for licences) and the status
//! authority out of band ([`PinnedTrust`]); the bundle is accepted only if its signer chains to
//! the city root alone (a seal of the city CA: an operator's CA can make certificates in the
//! authority's name, and an imported seal's revocation is only the registry's word, which a
//! bundle signed with that seal's key leaves out), is that authority, and is not revoked by
//! the bundle's CRL, which must be current by the verifier's clock. A bundle adds no trust
//! anchor. It is used from its `issued_at` to its `valid_until`
//! (the hub's `licences.bundle_validity`), by the verifier's own clock, never longer than
//! [`MAX_OFFLINE_TRUST`] and never before it was made. Its status list carries its own
//! maximum age: an old list gives INDETERMINATE statuses, never VALID.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use bohai_certs::licence::{
    jws::{key_id, sign_compact},
    verify_status_list, LicenceInputs, LicencePolicy, LicenceTypes, LicenceVerifier, ParsedJws,
    SealDirectory, TypeVerdict, VerifiedStatusList, MAX_OFFLINE_TRUST,
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
    /// Its licence numbers' prefix (`DL`).
    pub number_prefix: String,
    /// JSON Schema of the licence subject.
    pub schema: Value,
}

/// A department as a bundle carries it: the registry's binding of its code to its credit
/// code, which is all a seal certificate names.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BundleDepartment {
    /// Department code.
    pub code: String,
    /// Unified social credit code.
    pub credit_code: String,
}

/// The bundle format version this hub writes and reads. 3: its status list binds each index
/// to a whole licence number (type prefix, year and serial), not to the serial alone, and its
/// licence types carry their number prefixes; a verifier reading version 2 would take a
/// licence of another type sharing a serial or a number.
pub const BUNDLE_VERSION: u32 = 3;

/// The bundle's payload.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustBundle {
    /// Format version, [`BUNDLE_VERSION`].
    pub bundle_version: u32,
    /// When it was made.
    pub issued_at: DateTime<Utc>,
    /// Until when a verifier may use it.
    pub valid_until: DateTime<Utc>,
    /// Every department that may issue licences, with its credit code.
    pub departments: Vec<BundleDepartment>,
    /// Every seal certificate that may have sealed a licence.
    pub seals: Vec<BundleSeal>,
    /// CRLs of the seal CAs (the city's and the operators'), base64 DER.
    pub crls: Vec<String>,
    /// SHA-256 (hex) of the certificates of seals the registry revoked that no CRL lists
    /// (imported seals, issued by departments' own CAs).
    pub revoked_seals: Vec<String>,
    /// The signed status list (`statuslist+jwt`).
    pub status_list: String,
    /// The licence types.
    pub licence_types: Vec<BundleType>,
}

/// A bundle is used from when it was made to its `valid_until`, by the verifier's clock
/// (allowing the policy's clock skew), and never for longer than [`MAX_OFFLINE_TRUST`].
fn check_lifetime(
    bundle: &TrustBundle,
    now: DateTime<Utc>,
    policy: LicencePolicy,
) -> Result<(), String> {
    let skew = policy.clock_skew;
    let most = chrono::Duration::from_std(MAX_OFFLINE_TRUST).unwrap_or_default();
    if bundle.issued_at > now + skew {
        Err(format!(
            "made at {}, later than this verifier's clock ({now})",
            bundle.issued_at
        ))
    } else if bundle.valid_until < bundle.issued_at {
        Err(format!(
            "valid until {}, before it was made ({})",
            bundle.valid_until, bundle.issued_at
        ))
    } else if bundle.valid_until - bundle.issued_at > most {
        Err(format!(
            "valid from {} to {}: longer than the 7 days a verifier accepts",
            bundle.issued_at, bundle.valid_until
        ))
    } else if now - skew > bundle.valid_until {
        Err(format!(
            "expired at {} (now {now}): get a new bundle",
            bundle.valid_until
        ))
    } else {
        Ok(())
    }
}

/// Why a bundle made at `issued_at` and good until `valid_until` cannot speak for `at` (with
/// the clock skew), `None` when it can: a verifier that keeps a bundle loaded is held to its
/// end at every verification, not only when it loaded it.
fn outside_lifetime(
    (issued_at, valid_until): (DateTime<Utc>, DateTime<Utc>),
    skew: chrono::Duration,
    at: DateTime<Utc>,
) -> Option<String> {
    if at - skew > valid_until {
        Some(format!(
            "the trust bundle expired at {valid_until} (verification time {at}): get a new bundle"
        ))
    } else if at + skew < issued_at {
        Some(format!(
            "the trust bundle was made at {issued_at}, after the verification time {at}"
        ))
    } else {
        None
    }
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

/// Licence types compiled from a bundle, with its departments.
#[derive(Debug)]
pub struct BundleTypes {
    types: Vec<(BundleType, RecordValidator)>,
    departments: Vec<BundleDepartment>,
    /// The bundle's seal certificates, by SHA-256: their departments.
    seals: super::types::SealRegister,
}

impl LicenceTypes for BundleTypes {
    fn credit_code(&self, department: &str) -> Option<&str> {
        self.departments
            .iter()
            .find(|d| d.code == department)
            .map(|d| d.credit_code.as_str())
    }

    fn seal_department(&self, cert_sha256: &[u8; 32]) -> Option<&str> {
        self.seals.get(cert_sha256).map(String::as_str)
    }

    fn number_prefix(&self, licence_type: &str) -> Option<&str> {
        self.types
            .iter()
            .find(|(t, _)| t.id == licence_type)
            .map(|(t, _)| t.number_prefix.as_str())
    }

    fn judge(&self, licence_type: &str, issuer_department: &str, subject: &Value) -> TypeVerdict {
        let Some((t, validator)) = self.types.iter().find(|(t, _)| t.id == licence_type) else {
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
    valid_until: DateTime<Utc>,
    policy: LicencePolicy,
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

/// Why a bundle signed by a seal of an operator's CA is refused.
const NOT_A_CITY_SEAL: &str = "signed by a seal an operator's CA made, not a seal of the city CA: \
     only a seal under the city root speaks for the status authority";

/// What an offline verifier holds of its own, out of band: what no bundle can change.
#[derive(Debug, Clone, Copy)]
pub struct PinnedTrust<'a> {
    /// The city root (PEM, exactly one self-signed certificate): the only root the status
    /// authority's signatures (the bundle's, its status list's) may chain to.
    pub city_root: &'a str,
    /// Roots of departments' own CAs (PEM, empty for none) whose seals the verifier accepts on
    /// licences, as the hub's `pki.trust_anchors`.
    pub operator_roots: &'a str,
    /// CRLs (DER) the verifier fetched itself (`GET /api/v1/pki/crl`, `/api/v1/pki/root-crl`):
    /// with the bundle's, the newest of each issuer decides. A bundle's signer chooses which
    /// CRLs it carries; only these can show it a revocation newer than they are.
    pub crls: &'a [Vec<u8>],
}

/// Why a bundle cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("trust bundle: {0}")]
pub struct BundleError(pub String);

impl OfflineVerifier {
    /// Checks `bundle_jws` at `now` (the verifier's own clock) against the pinned roots and
    /// status authority credit code.
    pub fn load(
        bundle_jws: &str,
        pinned: PinnedTrust<'_>,
        authority_credit_code: &str,
        policy: LicencePolicy,
        now: DateTime<Utc>,
    ) -> Result<Self, BundleError> {
        let bad = |m: String| BundleError(m);
        let city = TrustAnchors::city_root_from_pem(pinned.city_root)
            .map_err(|e| bad(format!("city root: {e}")))?;
        let mut anchors = city.clone();
        if !pinned.operator_roots.trim().is_empty() {
            anchors
                .add_pem(pinned.operator_roots)
                .map_err(|e| bad(format!("operator roots: {e}")))?;
        }
        let jws = ParsedJws::parse(bundle_jws).map_err(|e| bad(e.to_string()))?;
        if jws.header.typ.as_deref() != Some(BUNDLE_TYP) {
            return Err(bad(format!(
                "typ is {:?}, expected {BUNDLE_TYP}",
                jws.header.typ
            )));
        }
        let version: Value =
            serde_json::from_slice(&jws.payload).map_err(|e| bad(format!("payload: {e}")))?;
        if version.get("bundle_version") != Some(&Value::from(BUNDLE_VERSION)) {
            return Err(bad(format!(
                "bundle_version is {}, this verifier reads {BUNDLE_VERSION}: get a new bundle",
                version.get("bundle_version").unwrap_or(&Value::Null)
            )));
        }
        let bundle: TrustBundle =
            serde_json::from_value(version).map_err(|e| bad(format!("payload: {e}")))?;
        check_lifetime(&bundle, now, policy).map_err(bad)?;
        // The verifier's own CRLs first, then the bundle's: for each issuer the newest
        // decides. A bundle carrying so many that the verifier's would not all be read is
        // refused, not cut short.
        if pinned.crls.len() + bundle.crls.len() > bohai_certs::MAX_CRLS {
            return Err(bad(format!(
                "{} CRLs with the verifier's {}: more than the {} a verification reads",
                bundle.crls.len(),
                pinned.crls.len(),
                bohai_certs::MAX_CRLS
            )));
        }
        let mut crls = pinned.crls.to_vec();
        for crl in &bundle.crls {
            crls.push(STANDARD.decode(crl).map_err(|e| bad(format!("crl: {e}")))?);
        }
        let revoked = bundle
            .revoked_seals
            .iter()
            .map(|hex| {
                crate::seals::service::hex_decode(hex)
                    .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
                    .ok_or_else(|| bad(format!("revoked seal `{hex}` is not a SHA-256 in hex")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        bohai_certs::licence::check_signed_by_unrevoked(
            &jws,
            &city,
            bohai_certs::licence::SignerRevocation {
                crls: &crls,
                revoked_seals: &revoked,
                now,
            },
            bundle.issued_at,
            authority_credit_code,
        )
        .map_err(|e| {
            let signed_under = |roots: &TrustAnchors| {
                bohai_certs::licence::check_signed_by(
                    &jws,
                    roots,
                    bundle.issued_at,
                    authority_credit_code,
                )
                .is_ok()
            };
            if !signed_under(&city) && signed_under(&anchors) {
                bad(NOT_A_CITY_SEAL.to_owned())
            } else {
                bad(format!("signature: {e}"))
            }
        })?;
        let status = verify_status_list(&bundle.status_list, &city, authority_credit_code)
            .map_err(|e| bad(format!("status list: {e}")))?;
        // The list's signer, too, must not be revoked: a revoked authority key's list, carried
        // by a bundle the current seal signed, says what that key's holder likes.
        let list_jws =
            ParsedJws::parse(&bundle.status_list).map_err(|e| bad(format!("status list: {e}")))?;
        bohai_certs::licence::check_signed_by_unrevoked(
            &list_jws,
            &city,
            bohai_certs::licence::SignerRevocation {
                crls: &crls,
                revoked_seals: &revoked,
                now,
            },
            status.issued_at(),
            authority_credit_code,
        )
        .map_err(|e| bad(format!("status list: {e}")))?;
        let types = bundle
            .licence_types
            .into_iter()
            .map(|t| {
                RecordValidator::new(&t.schema)
                    .map(|v| (t, v))
                    .map_err(|e| bad(format!("licence type schema: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        // The seal certificates the bundle holds, each for its department: only these seal
        // licences (a certificate that merely chains to an anchor does not).
        let register = bundle
            .seals
            .iter()
            .map(|seal| {
                let leaf = seal
                    .chain
                    .first()
                    .and_then(|c| STANDARD.decode(c).ok())
                    .ok_or_else(|| bad(format!("seal {}: no certificate", seal.kid)))?;
                Ok((
                    crate::seals::service::sha256(&leaf),
                    seal.department.clone(),
                ))
            })
            .collect::<Result<super::types::SealRegister, BundleError>>()?;
        Ok(Self {
            bundle_issued_at: bundle.issued_at,
            valid_until: bundle.valid_until,
            policy,
            verifier: LicenceVerifier::new(anchors, crls, policy).with_revoked_seals(revoked),
            status,
            types: BundleTypes {
                types,
                departments: bundle.departments,
                seals: register,
            },
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
        let report = if licence.trim().starts_with(bohai_certs::licence::QR_PREFIX) {
            self.verifier.verify_compact(licence, self, inputs).0
        } else {
            self.verifier.verify(licence, inputs).0
        };
        self.within_trust(report, at)
    }

    /// `report` as of `at`: a verification outside the bundle's lifetime (a verifier that
    /// keeps a loaded bundle past its end, or asks about a time before it was made) cannot
    /// rely on what the bundle says about status: INDETERMINATE, never VALID.
    fn within_trust(&self, mut report: Report, at: DateTime<Utc>) -> Report {
        let lifetime = (self.bundle_issued_at, self.valid_until);
        let Some(problem) = outside_lifetime(lifetime, self.policy.clock_skew, at) else {
            return report;
        };
        let mut checks = std::mem::take(&mut report.checks);
        checks.retain(|c| c.check != "status");
        checks.push(bohai_certs::Check::indeterminate(
            "status",
            bohai_certs::ReasonCode::StatusStale,
            problem,
        ));
        let status_as_of = report.status_as_of;
        let mut report = Report::from_checks(at, checks);
        report.status_as_of = status_as_of;
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, TimeZone as _};

    fn bundle(issued_at: DateTime<Utc>, valid_until: DateTime<Utc>) -> TrustBundle {
        TrustBundle {
            bundle_version: BUNDLE_VERSION,
            issued_at,
            valid_until,
            departments: vec![],
            seals: vec![],
            crls: vec![],
            revoked_seals: vec![],
            status_list: String::new(),
            licence_types: vec![],
        }
    }

    fn made() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 5, 8, 0, 0).unwrap()
    }

    #[test]
    fn a_bundle_is_used_from_its_making_to_its_end_by_the_verifiers_clock() {
        let policy = LicencePolicy::default();
        let day = bundle(made(), made() + Duration::hours(24));
        for now in [
            made(),
            made() + Duration::hours(23),
            made() - Duration::minutes(4),
        ] {
            assert_eq!(check_lifetime(&day, now, policy), Ok(()), "{now}");
        }
        // Within the clock skew of its end, then past it.
        assert_eq!(
            check_lifetime(
                &day,
                made() + Duration::hours(24) + Duration::minutes(4),
                policy
            ),
            Ok(())
        );
        let late = check_lifetime(&day, made() + Duration::hours(25), policy).unwrap_err();
        assert!(late.contains("expired"), "{late}");
        let early = check_lifetime(&day, made() - Duration::hours(1), policy).unwrap_err();
        assert!(
            early.contains("later than this verifier's clock"),
            "{early}"
        );
    }

    #[test]
    fn a_bundle_ending_before_its_making_or_lasting_too_long_is_refused() {
        let policy = LicencePolicy::default();
        // Ends two minutes before it was made: refused as such, also within the clock skew of
        // its end, where "expired" would not say so yet.
        let backwards = bundle(made(), made() - Duration::minutes(2));
        for now in [
            made(),
            made() + Duration::minutes(1),
            made() + Duration::days(1),
        ] {
            let refused = check_lifetime(&backwards, now, policy).unwrap_err();
            assert!(refused.contains("before it was made"), "{now}: {refused}");
        }
        let endless = bundle(made(), made() + Duration::days(3650));
        let refused = check_lifetime(&endless, made(), policy).unwrap_err();
        assert!(refused.contains("longer than the 7 days"), "{refused}");
        let week = bundle(made(), made() + Duration::days(7));
        assert_eq!(check_lifetime(&week, made(), policy), Ok(()));
    }

    #[test]
    fn a_loaded_bundle_speaks_only_for_times_within_its_lifetime() {
        let lifetime = (made(), made() + Duration::hours(1));
        let skew = Duration::minutes(5);
        for at in [
            made(),
            made() + Duration::minutes(64),
            made() - Duration::minutes(4),
        ] {
            assert_eq!(outside_lifetime(lifetime, skew, at), None, "{at}");
        }
        let late = outside_lifetime(lifetime, skew, made() + Duration::minutes(66)).unwrap();
        assert!(
            late.contains("expired at 2026-12-05 09:00:00 UTC"),
            "{late}"
        );
        let early = outside_lifetime(lifetime, skew, made() - Duration::minutes(6)).unwrap();
        assert!(early.contains("after the verification time"), "{early}");
    }
}
